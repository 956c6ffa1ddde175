//! `doctor`: checks what breaks logins in practice, and says how to fix each thing.
//!
//! sshd's effective settings (`sshd -T`), the PAM stacks that load pam_twofa (their order and
//! jump counts against the shipped patterns), the policy and storage permissions, the clock,
//! and whether anyone can still get in. Reading the system happens in [`run`] and a few small
//! functions; the analysis of texts (stacks, `sshd -T` output) is pure and unit-tested against
//! the shipped `conf/pam.d` stacks and broken variants of them.
//!
//! - [`sshd`]: `sshd -T` and the sshd configuration (Match blocks).
//! - [`pam`]: PAM service files read into auth lines (includes expanded), module paths.
//! - [`stack`]: the rules one stack's auth lines must follow.
//! - [`policy`]: the policy file, and the ways in without a code it opens.
//! - [`storage`]: the storage directory's owner and mode, enrollments counted.
//! - [`clock`]: whether the clock is synchronized (TOTP).
//! - [`fleet`]: the fleet store answers its check (fleet mode only).
//! - [`break_glass`]: whether anyone can still get in, with or without a code.
//! - [`orphans`]: enrollments whose account no longer exists.
//! - [`logging`]: whether something reads /dev/log fast enough; log lines lost.

mod break_glass;
mod clock;
mod fleet;
mod logging;
mod orphans;
mod pam;
mod policy;
mod sshd;
mod stack;
mod storage;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::output::Failure;

/// Arguments of `doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// sshd configuration to check, passed to `sshd -T -f FILE` (default: the system's).
    #[arg(long, value_name = "FILE")]
    sshd_config: Option<PathBuf>,
    /// The PAM service of the sshd to check: sshd names it after its program, so a second
    /// sshd started through a symlink named sshd-twofa uses /etc/pam.d/sshd-twofa.
    #[arg(long, value_name = "NAME", default_value = "sshd")]
    sshd_service: String,
    /// Directory of PAM service files to check.
    #[arg(long, value_name = "DIR", default_value = PAM_DIR)]
    pam_dir: PathBuf,
    /// Print JSON on stdout: an array of {check, status, message, fix}.
    #[arg(long)]
    json: bool,
}

/// Where libpam reads the service files.
pub const PAM_DIR: &str = "/etc/pam.d";

/// The PAM services of `dir` with an auth line that loads pam_twofa, by name: the services
/// that ask for a code (the same reading of the stacks as doctor's).
pub fn services_with_twofa(dir: &Path) -> Vec<String> {
    pam::read_stacks(dir)
        .into_iter()
        .filter(pam::Stack::loads_twofa)
        .map(|s| s.name)
        .collect()
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but worth a look.
    Warning,
    /// Breaks logins, or lets one through without the code.
    Error,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => "error",
        }
    }
}

/// One thing doctor found: what, how bad, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    /// The area: `sshd`, `pam sshd`, `config`, `storage`, `clock`, `log`, `break-glass`.
    check: String,
    /// How bad.
    status: Status,
    /// What was found, one line.
    message: String,
    /// What to do (empty when nothing).
    fix: String,
}

impl Finding {
    fn ok(check: &str, message: impl Into<String>) -> Finding {
        Finding {
            check: check.to_string(),
            status: Status::Ok,
            message: message.into(),
            fix: String::new(),
        }
    }

    fn warning(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.to_string(),
            status: Status::Warning,
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn error(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.to_string(),
            status: Status::Error,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Runs `doctor`: every check, then the findings; an error among them is exit status 1.
pub fn run(config_path: Option<&Path>, args: &Args) -> Result<(), Failure> {
    let mut findings = Vec::new();
    let stacks = pam::read_stacks(&args.pam_dir);

    // sshd's settings matter only where its PAM service asks for the code.
    let sshd = if stacks.iter().any(|s| s.name == args.sshd_service) {
        sshd::read_sshd(args.sshd_config.as_deref())
    } else {
        sshd::SshdView::NotUsed
    };
    findings.extend(sshd::check_view(
        &sshd,
        &args.pam_dir.join(&args.sshd_service),
    ));

    let (config_findings, config) = policy::check_configs(config_path, &stacks);
    findings.extend(config_findings);

    let may_ignore = policy::may_ignore(&config);
    findings.extend(pam::check_stacks(&stacks, &args.pam_dir, |s| {
        stack::check_stack(&s.name, &s.lines, may_ignore)
    }));
    findings.extend(storage::check_storage(&config.storage_dir));
    findings.extend(fleet::check_fleet(&config));
    findings.extend(orphans::check_orphans(&config));
    findings.push(clock::check_clock(&config));
    findings.extend(logging::check_logging());

    let mut paths = policy::policy_ways_in(&config, policy::now());
    paths.extend(break_glass::console_without_twofa(&args.pam_dir));
    if let sshd::SshdView::Read { global, root } = &sshd {
        paths.extend(sshd::sshd_bypasses(
            global,
            root,
            args.sshd_config.as_deref(),
        ));
    }
    let enrolled = storage::count_enrollments(&config.storage_dir);
    findings.push(break_glass::check_break_glass(
        &paths,
        enrolled,
        !stacks.is_empty(),
    ));

    print(&findings, args.json)?;
    outcome(&findings)
}

/// The first of `names` (process names as in `/proc/*/comm`, 15 characters at most) that a
/// running process has.
fn running_process(names: &[&str]) -> Option<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .find(|c| names.contains(&c.as_str()))
}

/// Exit status 1, with a count, when any finding is an error.
fn outcome(findings: &[Finding]) -> Result<(), Failure> {
    let errors = findings
        .iter()
        .filter(|f| f.status == Status::Error)
        .count();
    if errors == 0 {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "doctor found {errors} error{}",
            if errors == 1 { "" } else { "s" }
        ))
        .hint("fix the errors above, then run twofa-enroll doctor again"))
    }
}

fn print(findings: &[Finding], json: bool) -> Result<(), Failure> {
    if json {
        let list: Vec<_> = findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "check": f.check,
                    "status": f.status.word(),
                    "message": f.message,
                    "fix": f.fix,
                })
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for f in findings {
        let word = format!("{:<7}", f.status.word());
        let word = match (colour, f.status) {
            (false, _) => word,
            (true, Status::Ok) => format!("\x1b[32m{word}\x1b[0m"),
            (true, Status::Warning) => format!("\x1b[1;33m{word}\x1b[0m"),
            (true, Status::Error) => format!("\x1b[1;31m{word}\x1b[0m"),
        };
        say!("{word} {}: {}", f.check, f.message);
        if !f.fix.is_empty() {
            say!("        fix: {}", f.fix);
        }
    }
    Ok(())
}
