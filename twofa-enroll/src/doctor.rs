//! `doctor`: checks what breaks logins in practice, and says how to fix each thing.
//!
//! sshd's effective settings (`sshd -T`), the PAM stacks that load pam_twofa (their order and
//! jump counts against the shipped patterns), the policy and storage permissions, the clock,
//! and whether anyone can still get in. Reading the system happens in [`run`] and a few small
//! functions; the analysis of texts (stacks, `sshd -T` output) is pure and unit-tested against
//! the shipped `conf/pam.d` stacks and broken variants of them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use twofa_core::args::{self, Mode};
use twofa_core::config::{self, Config, Unenrolled, DEFAULT_PATH};

use crate::output::Failure;

/// Arguments of `doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// sshd configuration to check, passed to `sshd -T -f FILE` (default: the system's).
    #[arg(long, value_name = "FILE")]
    sshd_config: Option<PathBuf>,
    /// Directory of PAM service files to check.
    #[arg(long, value_name = "DIR", default_value = "/etc/pam.d")]
    pam_dir: PathBuf,
    /// Print JSON on stdout: an array of {check, status, message, fix}.
    #[arg(long)]
    json: bool,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
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
pub struct Finding {
    /// The area: `sshd`, `pam sshd`, `config`, `storage`, `clock`, `break-glass`.
    pub check: String,
    /// How bad.
    pub status: Status,
    /// What was found, one line.
    pub message: String,
    /// What to do (empty when nothing).
    pub fix: String,
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
    let stacks = read_stacks(&args.pam_dir);

    // sshd's settings matter only where its PAM service asks for the code.
    let sshd = if stacks.iter().any(|s| s.name == "sshd") {
        read_sshd(args.sshd_config.as_deref())
    } else {
        SshdView::NotUsed
    };
    match &sshd {
        SshdView::Missing => findings.push(Finding::ok("sshd", "sshd is not installed: skipped")),
        SshdView::NotUsed => findings.push(Finding::ok(
            "sshd",
            format!(
                "{} doesn't load pam_twofa: sshd's settings not checked",
                args.pam_dir.join("sshd").display()
            ),
        )),
        SshdView::Failed(why) => findings.push(Finding::error(
            "sshd",
            format!("sshd -T failed: {why}"),
            "run `sshd -t` (as root) and fix what it reports",
        )),
        SshdView::Read { global, root } => findings.extend(check_sshd(global, root)),
    }

    let primary = config_path
        .map(Path::to_path_buf)
        .or_else(|| stacks.iter().find_map(|s| s.config_arg.clone()));
    let mut checked = Vec::new();
    let (config_finding, loaded) = check_config(primary.as_deref());
    findings.push(config_finding);
    checked.push(primary.clone());
    for other in stacks.iter().filter_map(|s| s.config_arg.clone()) {
        if !checked.contains(&Some(other.clone())) {
            checked.push(Some(other.clone()));
            findings.push(check_config(Some(&other)).0);
        }
    }
    let config = loaded.unwrap_or_default();

    if stacks.is_empty() {
        findings.push(Finding::warning(
            "pam",
            format!(
                "no PAM service in {} loads pam_twofa: no login asks for a code",
                args.pam_dir.display()
            ),
            "add the auth lines of conf/pam.d/sshd and conf/pam.d/sudo to /etc/pam.d/sshd and /etc/pam.d/sudo",
        ));
    }
    let dirs = module_dirs();
    for stack in &stacks {
        findings.extend(stack.problems.iter().cloned());
        findings.extend(check_module_paths(&stack.name, &stack.lines, |m| {
            module_exists(m, &dirs)
        }));
        findings.extend(check_stack(&stack.name, &stack.lines, may_ignore(&config)));
    }

    findings.extend(check_storage(&config.storage_dir));
    findings.push(check_clock(&config));

    let enrolled = count_enrollments(&config.storage_dir);
    let mut paths = policy_ways_in(&config, now());
    if let Some(p) = console_without_twofa(&args.pam_dir) {
        paths.push(p);
    }
    if let SshdView::Read { global, root } = &sshd {
        paths.extend(sshd_bypasses(global, root, args.sshd_config.as_deref()));
    }
    findings.push(check_break_glass(&paths, enrolled, !stacks.is_empty()));

    print(&findings, args.json)?;
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

// ------------------------------------------------------------------------------------------
// sshd

/// What `sshd -T` said.
#[derive(Debug)]
enum SshdView {
    /// The `sshd` PAM service doesn't load pam_twofa.
    NotUsed,
    /// No sshd binary.
    Missing,
    /// It ran and failed (bad config, no host keys...).
    Failed(String),
    /// The global settings (no Match applied) and root's (Match applied for root on localhost).
    Read {
        global: BTreeMap<String, String>,
        root: BTreeMap<String, String>,
    },
}

fn sshd_binary() -> Option<PathBuf> {
    let fixed = Path::new("/usr/sbin/sshd");
    if fixed.exists() {
        return Some(fixed.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("sshd"))
        .find(|p| p.exists())
}

fn read_sshd(config: Option<&Path>) -> SshdView {
    let Some(bin) = sshd_binary() else {
        return SshdView::Missing;
    };
    let run = |connection: Option<&str>| -> Result<BTreeMap<String, String>, String> {
        let mut cmd = Command::new(&bin);
        cmd.arg("-T");
        if let Some(c) = config {
            cmd.arg("-f").arg(c);
        }
        if let Some(c) = connection {
            cmd.arg("-C").arg(c);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(format!("{} ({})", last.trim(), out.status));
        }
        Ok(parse_sshd_t(&String::from_utf8_lossy(&out.stdout)))
    };
    match (
        run(None),
        run(Some("user=root,host=localhost,addr=127.0.0.1")),
    ) {
        (Ok(global), Ok(root)) => SshdView::Read { global, root },
        (Err(e), _) | (_, Err(e)) => SshdView::Failed(e),
    }
}

/// `sshd -T` output: lowercase keyword -> value (the first line of each keyword).
fn parse_sshd_t(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if !key.is_empty() {
            out.entry(key.to_ascii_lowercase())
                .or_insert_with(|| value.trim().to_string());
        }
    }
    out
}

/// `AuthenticationMethods`: `None` for `any`, else each list's methods (submethods dropped).
fn method_lists(value: &str) -> Option<Vec<Vec<String>>> {
    if value.is_empty() || value == "any" {
        return None;
    }
    Some(
        value
            .split_whitespace()
            .map(|list| {
                list.split(',')
                    .map(|m| m.split(':').next().unwrap_or(m).to_string())
                    .collect()
            })
            .collect(),
    )
}

const KBD: &str = "keyboard-interactive";
const SSHD_METHODS: &str =
    "AuthenticationMethods publickey,keyboard-interactive keyboard-interactive";

fn setting<'a>(map: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    map.get(key).map(String::as_str).unwrap_or("")
}

/// Lists of `AuthenticationMethods` that don't ask for the code, `None` for `any`.
fn lists_without_kbd(map: &BTreeMap<String, String>) -> Option<Vec<String>> {
    method_lists(setting(map, "authenticationmethods")).map(|lists| {
        lists
            .into_iter()
            .filter(|l| !l.iter().any(|m| m == KBD))
            .map(|l| l.join(","))
            .collect()
    })
}

fn check_sshd(global: &BTreeMap<String, String>, root: &BTreeMap<String, String>) -> Vec<Finding> {
    let mut out = Vec::new();
    if setting(global, "usepam") == "yes" {
        out.push(Finding::ok("sshd", "UsePAM yes"));
    } else {
        out.push(Finding::error(
            "sshd",
            "UsePAM is not yes: sshd never runs the PAM stack, so no code is asked",
            "UsePAM yes (conf/sshd_config.d/twofa.conf)",
        ));
    }
    // OpenSSH < 8.7 prints the old name.
    let kbd = global
        .get("kbdinteractiveauthentication")
        .or_else(|| global.get("challengeresponseauthentication"))
        .map(String::as_str)
        .unwrap_or("");
    if kbd == "yes" {
        out.push(Finding::ok("sshd", "KbdInteractiveAuthentication yes"));
    } else {
        out.push(Finding::error(
            "sshd",
            "KbdInteractiveAuthentication is not yes: the code is asked through keyboard-interactive, which is off",
            "KbdInteractiveAuthentication yes (Debian's sshd_config sets no: a drop-in in sshd_config.d wins, being read first)",
        ));
    }
    let missing = lists_without_kbd(global);
    match &missing {
        None => out.push(Finding::error(
            "sshd",
            "AuthenticationMethods any: a key alone logs in, without the code",
            SSHD_METHODS,
        )),
        Some(lists) if !lists.is_empty() => out.push(Finding::error(
            "sshd",
            format!(
                "AuthenticationMethods: {} never ask{} for the code (no keyboard-interactive)",
                lists
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if lists.len() == 1 { "s" } else { "" }
            ),
            format!("add keyboard-interactive to every list: {SSHD_METHODS}"),
        )),
        Some(_) => out.push(Finding::ok(
            "sshd",
            "AuthenticationMethods: every list ends in keyboard-interactive (the code)",
        )),
    }
    let kbd_everywhere = matches!(&missing, Some(l) if l.is_empty());
    if setting(global, "passwordauthentication") == "yes" && !kbd_everywhere {
        out.push(Finding::error(
            "sshd",
            "PasswordAuthentication yes and a method list without keyboard-interactive: a password login skips the code prompt (UsePAM no) or fails and counts a wrong code (UsePAM yes: sshd answers every prompt with the password)",
            format!("PasswordAuthentication no, and {SSHD_METHODS}"),
        ));
    }
    out.push(check_root_login(root));
    out
}

/// PermitRootLogin, from root's point of view (Match blocks applied).
fn check_root_login(root: &BTreeMap<String, String>) -> Finding {
    // sshd -T shows prohibit-password under its old name.
    let permit = match setting(root, "permitrootlogin") {
        "without-password" => "prohibit-password",
        other => other,
    };
    let root_lists = lists_without_kbd(root);
    let kbd_everywhere = matches!(&root_lists, Some(l) if l.is_empty());
    match permit {
        "prohibit-password" if kbd_everywhere => Finding::warning(
            "sshd",
            format!(
                "PermitRootLogin {permit}: sshd refuses keyboard-interactive for root, and every method list needs it, so root can't log in over SSH (not even key + code)"
            ),
            "keep it so and use sudo (its stack asks the code); or `PermitRootLogin yes` for root's key + code (and password + code); or a `Match User root` block with `AuthenticationMethods publickey` as a break-glass key",
        ),
        "prohibit-password" => Finding::ok(
            "sshd",
            format!("PermitRootLogin {permit}: root logs in with a key only"),
        ),
        "no" => Finding::ok("sshd", "PermitRootLogin no: root can't log in over SSH"),
        "" => Finding::ok("sshd", "PermitRootLogin not shown by sshd -T"),
        other => Finding::ok(
            "sshd",
            format!("PermitRootLogin {other}: root logs in like everyone (key + code, or password + code)"),
        ),
    }
}

/// Ways sshd lets someone in without the code: root's own Match, or `Match` blocks in the
/// configuration that set AuthenticationMethods without keyboard-interactive.
fn sshd_bypasses(
    global: &BTreeMap<String, String>,
    root: &BTreeMap<String, String>,
    config: Option<&Path>,
) -> Vec<String> {
    let mut out = Vec::new();
    let global_ok = matches!(lists_without_kbd(global), Some(l) if l.is_empty());
    let root_permit = setting(root, "permitrootlogin");
    if global_ok && root_permit != "no" {
        if let Some(lists) = lists_without_kbd(root) {
            if !lists.is_empty() {
                out.push(format!(
                    "sshd lets root in with `{}` (a Match block)",
                    lists.join(" ")
                ));
            }
        }
    }
    let main = config.unwrap_or(Path::new("/etc/ssh/sshd_config"));
    let mut text = String::new();
    read_sshd_config(main, &mut text, 0);
    for m in match_bypasses(&text) {
        let line = format!("sshd `{m}` sets AuthenticationMethods without keyboard-interactive");
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// Reads an sshd configuration and the files it `Include`s, in order (a `*` in the last
/// path component is expanded; relative paths are under /etc/ssh).
fn read_sshd_config(path: &Path, out: &mut String, depth: usize) {
    if depth > 8 {
        return;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("include"))
        {
            for pattern in &words[1..] {
                let p = Path::new("/etc/ssh").join(pattern);
                for file in expand_glob(&p) {
                    read_sshd_config(&file, out, depth + 1);
                }
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
}

fn expand_glob(p: &Path) -> Vec<PathBuf> {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name.filter(|n| n.contains('*')) else {
        return vec![p.to_path_buf()];
    };
    let (prefix, suffix) = name.split_once('*').unwrap_or((&name, ""));
    let dir = p.parent().unwrap_or(Path::new("/"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|f| {
            f.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
                n.starts_with(prefix)
                    && n.ends_with(suffix)
                    && n.len() >= prefix.len() + suffix.len()
            })
        })
        .collect();
    files.sort();
    files
}

/// `Match` lines whose block sets AuthenticationMethods without keyboard-interactive.
fn match_bypasses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        if key.eq_ignore_ascii_case("match") {
            current = Some(format!("Match {}", rest.join(" ")));
        } else if key.eq_ignore_ascii_case("authenticationmethods") {
            if let Some(m) = &current {
                let lists = method_lists(&rest.join(" "));
                let bypass = lists.is_none_or(|ls| ls.iter().any(|l| !l.iter().any(|x| x == KBD)));
                if bypass && !out.contains(m) {
                    out.push(m.clone());
                }
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// PAM stacks

/// One `auth` line, after `@include`s are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamLine {
    /// The file it was read from (a service name in the PAM directory).
    pub file: String,
    /// Its line number there.
    pub lineno: usize,
    /// `required`, `requisite`, `sufficient`, `optional`, or the `[...]` text.
    pub control: String,
    /// The module as written (a name or a path).
    pub module: String,
    /// The module's arguments.
    pub args: Vec<String>,
    /// `-auth`: a missing module is silently skipped.
    pub optional_module: bool,
}

impl PamLine {
    fn base(&self) -> &str {
        self.module.rsplit('/').next().unwrap_or(&self.module)
    }

    /// pam_twofa, under its installed name or a build's (`libpam_twofa.so`).
    fn is_twofa(&self) -> bool {
        let b = self.base();
        b.ends_with(".so") && b.contains("pam_twofa")
    }

    fn twofa_mode(&self) -> Option<Result<Mode, String>> {
        self.is_twofa().then(|| {
            args::parse(self.args.iter().map(String::as_str))
                .map(|a| a.mode)
                .map_err(|e| e.to_string())
        })
    }

    fn is(&self, mode: Mode) -> bool {
        matches!(self.twofa_mode(), Some(Ok(m)) if m == mode)
    }

    fn is_module(&self, name: &str) -> bool {
        self.base() == format!("{name}.so") || self.base() == name
    }

    /// `[...]` actions: value=action pairs (empty for a plain word).
    fn actions(&self) -> Vec<(String, String)> {
        let Some(inner) = self
            .control
            .strip_prefix('[')
            .and_then(|c| c.strip_suffix(']'))
        else {
            return Vec::new();
        };
        inner
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()))
            .collect()
    }

    fn action(&self, value: &str) -> Option<String> {
        self.actions()
            .into_iter()
            .find(|(k, _)| k == value)
            .map(|(_, v)| v)
    }

    /// The line `success=N` lands on (index into the stack), if it is a jump.
    fn success_jump(&self, index: usize) -> Option<usize> {
        self.action("success")
            .and_then(|v| v.parse::<usize>().ok())
            .map(|n| index + 1 + n)
    }

    fn at(&self) -> String {
        format!("{}:{}", self.file, self.lineno)
    }
}

/// A service file that loads pam_twofa, with its auth lines.
#[derive(Debug)]
struct Stack {
    name: String,
    lines: Vec<PamLine>,
    /// The first `config=` of its pam_twofa lines.
    config_arg: Option<PathBuf>,
    /// Unreadable includes and the like.
    problems: Vec<Finding>,
}

fn read_stacks(dir: &Path) -> Vec<Stack> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !n.starts_with('.')
                && !n.ends_with('~')
                && !n.ends_with(".dpkg-old")
                && !n.ends_with(".dpkg-dist")
        })
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        if !text.contains("pam_twofa") {
            continue;
        }
        let mut problems = Vec::new();
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).ok();
        let lines = auth_lines(&name, &text, &read, &mut problems, 0);
        let config_arg = lines.iter().filter(|l| l.is_twofa()).find_map(|l| {
            l.args
                .iter()
                .find_map(|a| a.strip_prefix("config=").map(PathBuf::from))
        });
        out.push(Stack {
            name,
            lines,
            config_arg,
            problems,
        });
    }
    out
}

/// The `auth` lines of a service file, `@include`s and `auth include|substack` expanded from
/// `read` (files of the same directory).
pub fn auth_lines(
    file: &str,
    text: &str,
    read: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Finding>,
    depth: usize,
) -> Vec<PamLine> {
    let mut out = Vec::new();
    let check = format!("pam {file}");
    // Backslash-newline continues a line, as libpam reads it.
    let joined = text.replace("\\\n", " ");
    for (i, raw) in joined.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let words = tokens(line);
        let Some(first) = words.first() else { continue };
        let include = if first == "@include" {
            words.get(1).cloned()
        } else if (first == "auth" || first == "-auth")
            && matches!(
                words.get(1).map(String::as_str),
                Some("include" | "substack")
            )
        {
            words.get(2).cloned()
        } else {
            None
        };
        if let Some(name) = include {
            if depth > 8 {
                continue;
            }
            match read(&name) {
                Some(t) => out.extend(auth_lines(&name, &t, read, problems, depth + 1)),
                None => problems.push(Finding::error(
                    &check,
                    format!("{file}:{}: includes `{name}`, which can't be read", i + 1),
                    format!("create {name} in the PAM directory or remove the include"),
                )),
            }
            continue;
        }
        if first != "auth" && first != "-auth" {
            continue;
        }
        if words.len() < 3 {
            continue;
        }
        out.push(PamLine {
            file: file.to_string(),
            lineno: i + 1,
            control: words[1].clone(),
            module: words[2].clone(),
            args: words[3..].to_vec(),
            optional_module: first == "-auth",
        });
    }
    out
}

/// Words of a PAM line; a `[...]` control (which may contain spaces) is one word.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if rest.starts_with('[') && out.len() == 1 {
            let end = rest.find(']').map_or(rest.len(), |e| e + 1);
            out.push(rest[..end].split_whitespace().collect::<Vec<_>>().join(" "));
            rest = rest[end..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    out
}

const SHIPPED: &str = "see the matching stack in conf/pam.d (e.g. conf/pam.d/sshd)";

/// Can the code-checking line return PAM_IGNORE (someone let in without a code)? Then a later
/// line must succeed, or libpam ends the stack in PAM_PERM_DENIED.
fn may_ignore(config: &Config) -> bool {
    matches!(config.unenrolled, Unenrolled::Allow | Unenrolled::Grace(_))
        || !config.enforce_groups.is_empty()
        || !config.exempt_groups.is_empty()
        || !config.exempt_services.is_empty()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Ways in without a code that the policy itself opens.
fn policy_ways_in(config: &Config, now: u64) -> Vec<String> {
    let mut out = Vec::new();
    match config.unenrolled {
        Unenrolled::Allow => out.push(
            "unenrolled = \"allow\": users with no enrollment log in without a code".to_string(),
        ),
        Unenrolled::Grace(until) if until > now => out.push(format!(
            "unenrolled = \"grace\": users with no enrollment log in without a code until {}",
            crate::output::utc(until)
        )),
        Unenrolled::Enroll => out.push(
            "unenrolled = \"enroll\": users with no enrollment enroll at their next login"
                .to_string(),
        ),
        Unenrolled::Grace(_) | Unenrolled::Deny => {}
    }
    if !config.exempt_groups.is_empty() {
        out.push(format!(
            "exempt_groups: members of {} log in without a code",
            config.exempt_groups.join(", ")
        ));
    }
    if !config.exempt_services.is_empty() {
        out.push(format!(
            "exempt_services: {} ask no code",
            config.exempt_services.join(", ")
        ));
    }
    if !config.enforce_groups.is_empty() {
        out.push(format!(
            "enforce_groups: only members of {} need a code",
            config.enforce_groups.join(", ")
        ));
    }
    out
}

/// Checks one stack's auth lines against the shipped patterns (pure: no file is read).
/// `may_ignore`: the policy lets some logins through without a code (PAM_IGNORE).
pub fn check_stack(service: &str, lines: &[PamLine], may_ignore: bool) -> Vec<Finding> {
    let check = format!("pam {service}");
    let mut out = Vec::new();
    let err = |out: &mut Vec<Finding>, msg: String, fix: String| {
        out.push(Finding::error(&check, msg, fix));
    };

    for l in lines {
        if let Some(Err(e)) = l.twofa_mode() {
            err(
                &mut out,
                format!("{}: {e}: the module fails closed, so no one logs in through {service}", l.at()),
                "use only config=/absolute/path, debug, and one of password_failed, pubkey_done, concat".into(),
            );
        }
    }

    let verify: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].is(Mode::Verify))
        .collect();
    let Some(&first_verify) = verify.first() else {
        if lines.iter().any(PamLine::is_twofa) {
            err(
                &mut out,
                format!("no line checks the code (`pam_twofa.so` without a mode word) in the auth stack of {service}"),
                format!("add `auth required pam_twofa.so` after the password lines; {SHIPPED}"),
            );
        }
        return out;
    };
    let before_errors = out.len();

    // Jumps: in range, not across an @include, never over a code check.
    for (i, l) in lines.iter().enumerate() {
        for (value, action) in l.actions() {
            let Ok(n) = action.parse::<usize>() else {
                continue;
            };
            let target = i + 1 + n;
            if target > lines.len() {
                err(
                    &mut out,
                    format!(
                        "{}: `{value}={n}` jumps past the end of the auth stack",
                        l.at()
                    ),
                    format!("count the lines again; {SHIPPED}"),
                );
                continue;
            }
            let spanned = &lines[i + 1..target.min(lines.len() - 1) + 1];
            if let Some(other) = spanned.iter().find(|s| s.file != l.file) {
                err(
                    &mut out,
                    format!(
                        "{}: `{value}={n}` counts lines of `{}` (an @include): the jump depends on that file, which pam-auth-update rewrites",
                        l.at(),
                        other.file
                    ),
                    format!("write the lines inline instead of the @include; {SHIPPED}"),
                );
            }
            if let Some(skipped) = lines[i + 1..target.min(lines.len())]
                .iter()
                .find(|s| s.is(Mode::Verify))
            {
                err(
                    &mut out,
                    format!(
                        "{}: `{value}={n}` jumps over the code check at {}: that path logs in without the code",
                        l.at(),
                        skipped.at()
                    ),
                    format!(
                        "{}; {SHIPPED}",
                        if l.is_module("pam_unix") {
                            "put `auth required pam_twofa.so password_failed` right after pam_unix (its success=1 jumps over that line only)"
                        } else {
                            "make the jump land on the code-checking line"
                        }
                    ),
                );
            }
        }
    }

    // Before the first code check, nothing may end the stack with success.
    for l in &lines[..first_verify] {
        let ends = l.control == "sufficient" || l.action("success").as_deref() == Some("done");
        if ends && !l.is_module("pam_rootok") {
            err(
                &mut out,
                format!(
                    "{}: when {} succeeds the stack ends: the code is never asked",
                    l.at(),
                    l.base()
                ),
                format!("use `[success=1 default=ignore]` and a password_failed line; {SHIPPED}"),
            );
        }
        if l.control == "requisite" && !l.is(Mode::Concat) {
            out.push(Finding::warning(
                &check,
                format!(
                    "{}: {} is requisite before the code prompt: a wrong password ends the stack at once, so the prompts tell a guesser it was wrong",
                    l.at(),
                    l.base()
                ),
                format!("use `[success=1 default=ignore]` plus a password_failed line; {SHIPPED}"),
            ));
        }
    }

    // The code check itself must decide.
    for &v in &verify {
        let l = &lines[v];
        let decides = matches!(l.control.as_str(), "required" | "requisite")
            || matches!(l.action("default").as_deref(), Some("bad" | "die"));
        if !decides {
            err(
                &mut out,
                format!(
                    "{}: the code check is `{}`: a wrong code does not fail the login",
                    l.at(),
                    l.control
                ),
                "auth required pam_twofa.so".into(),
            );
        }
    }

    // password_failed: right after the password line, whose success=1 lands on the code check.
    let pf: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].is(Mode::PasswordFailed))
        .collect();
    for &i in &pf {
        let l = &lines[i];
        if l.control != "required" {
            err(
                &mut out,
                format!("{}: password_failed is `{}`, not required: the prompts or the result change after a wrong password", l.at(), l.control),
                "auth required pam_twofa.so password_failed".into(),
            );
        }
        match i.checked_sub(1).map(|p| (p, &lines[p])) {
            Some((p, prev)) if !prev.is_twofa() => match prev.success_jump(p) {
                Some(t) if t == i + 1 => {}
                Some(t) => err(
                    &mut out,
                    format!(
                        "{}: {}'s `success={}` lands on {}, not on the code check right after password_failed",
                        prev.at(),
                        prev.base(),
                        t - p - 1,
                        lines.get(t).map_or("the end of the stack".to_string(), PamLine::at)
                    ),
                    format!("auth [success=1 default=ignore] {} ...; {SHIPPED}", prev.base()),
                ),
                None => err(
                    &mut out,
                    format!(
                        "{}: {} before password_failed doesn't jump over it: a right password fails too",
                        prev.at(),
                        prev.base()
                    ),
                    format!("auth [success=1 default=ignore] {} ...; {SHIPPED}", prev.base()),
                ),
            },
            _ => err(
                &mut out,
                format!("{}: password_failed does not follow the password line", l.at()),
                format!("put it right after `auth [success=1 default=ignore] pam_unix.so`; {SHIPPED}"),
            ),
        }
        if !lines.get(i + 1).is_some_and(|n| n.is(Mode::Verify)) {
            err(
                &mut out,
                format!(
                    "{}: password_failed is not followed by the code-checking line",
                    l.at()
                ),
                format!("put `auth required pam_twofa.so` right after it; {SHIPPED}"),
            );
        }
    }
    if pf.is_empty()
        && lines[..first_verify]
            .iter()
            .any(|l| l.is_module("pam_unix"))
    {
        out.push(Finding::warning(
            &check,
            format!("no password_failed line before the code check at {}: a code may be checked and spent after a wrong password", lines[first_verify].at()),
            format!("auth [success=1 default=ignore] pam_unix.so, then auth required pam_twofa.so password_failed; {SHIPPED}"),
        ));
    }

    // pubkey_done: success=N lands on the code check.
    for (i, l) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is(Mode::PubkeyDone))
    {
        match l.success_jump(i) {
            Some(t) if lines.get(t).is_some_and(|x| x.is(Mode::Verify)) => {}
            Some(t) => err(
                &mut out,
                format!(
                    "{}: pubkey_done's `success={}` lands on {}, not on the code check",
                    l.at(),
                    t - i - 1,
                    lines.get(t).map_or("the end of the stack".to_string(), |x| format!("{} ({})", x.at(), x.base()))
                ),
                format!("count the lines to `auth required pam_twofa.so`; {SHIPPED}"),
            ),
            None => err(
                &mut out,
                format!("{}: pubkey_done has no `success=N` jump: after a key the password is asked too, or the code is skipped", l.at()),
                "auth [success=2 default=ignore] pam_twofa.so pubkey_done (conf/pam.d/sshd)".into(),
            ),
        }
        for env in lines[..i].iter().filter(|e| e.is_module("pam_env")) {
            if env.args.iter().any(|a| a == "user_readenv=1") {
                err(
                    &mut out,
                    format!("{}: pam_env with user_readenv=1 before pubkey_done: a user's ~/.pam_environment could set SSH_AUTH_INFO_0 and skip the password", env.at()),
                    "drop user_readenv=1 from the auth line (or keep pam_env in the session stack only)".into(),
                );
            }
        }
    }

    // concat: requisite, then pam_unix use_first_pass.
    for (i, l) in lines.iter().enumerate().filter(|(_, l)| l.is(Mode::Concat)) {
        if l.control != "requisite" {
            err(
                &mut out,
                format!("{}: concat is `{}`, not requisite", l.at(), l.control),
                "auth requisite pam_twofa.so concat (conf/pam.d/vsftpd)".into(),
            );
        }
        let next = lines.get(i + 1);
        if !next.is_some_and(|n| {
            n.is_module("pam_unix") && n.args.iter().any(|a| a == "use_first_pass")
        }) {
            err(
                &mut out,
                format!(
                    "{}: concat must be followed by `pam_unix.so use_first_pass`{}: otherwise the password is asked again, or checked with the code still on it",
                    l.at(),
                    next.map_or(String::new(), |n| format!(" (found {} at {})", n.base(), n.at()))
                ),
                "auth [success=1 default=ignore] pam_unix.so use_first_pass (conf/pam.d/vsftpd)".into(),
            );
        }
    }

    // PAM_IGNORE from the code check needs a later line that succeeds.
    if may_ignore {
        let Some(&last) = verify.last() else {
            return out;
        };
        let records = lines[last + 1..].iter().any(|l| {
            matches!(l.control.as_str(), "required" | "requisite" | "optional")
                || l.action("success").as_deref() == Some("ok")
        });
        if !records {
            err(
                &mut out,
                format!("nothing after the code check at {} succeeds: a user the policy lets in without a code (unenrolled = \"allow\" or \"grace\", exempt or not enforced) is refused (PAM_PERM_DENIED)", lines[last].at()),
                "add `auth optional pam_permit.so` after the code-checking line".into(),
            );
        }
    }

    if out.len() == before_errors && !out.iter().any(|f| f.status != Status::Ok) {
        let modes: Vec<&str> = lines
            .iter()
            .filter_map(|l| match l.twofa_mode() {
                Some(Ok(Mode::PubkeyDone)) => Some("pubkey_done"),
                Some(Ok(Mode::PasswordFailed)) => Some("password_failed"),
                Some(Ok(Mode::Concat)) => Some("concat"),
                Some(Ok(Mode::Verify)) => Some("code"),
                _ => None,
            })
            .collect();
        out.push(Finding::ok(
            &check,
            format!(
                "auth lines in the shipped order ({}); jumps land on the code check",
                modes.join(", ")
            ),
        ));
    }
    out
}

/// Directories where libpam finds modules named without a path.
fn module_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/lib/security"),
        PathBuf::from("/usr/lib/security"),
    ];
    for base in ["/lib", "/usr/lib", "/lib64", "/usr/lib64"] {
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let d = e.path().join("security");
            if d.is_dir() && !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        let d = Path::new(base).join("security");
        if d.is_dir() && !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

fn module_exists(module: &str, dirs: &[PathBuf]) -> bool {
    if module.starts_with('/') {
        Path::new(module).exists()
    } else {
        dirs.iter().any(|d| d.join(module).exists())
    }
}

/// Modules that don't exist: libpam fails every login through the service.
pub fn check_module_paths(
    service: &str,
    lines: &[PamLine],
    exists: impl Fn(&str) -> bool,
) -> Vec<Finding> {
    lines
        .iter()
        .filter(|l| !l.optional_module && !exists(&l.module))
        .map(|l| {
            Finding::error(
                &format!("pam {service}"),
                format!(
                    "{}: module {} not found: every login through {service} fails",
                    l.at(),
                    l.module
                ),
                if l.is_twofa() {
                    "install it (packaging/install.sh) or correct the path".to_string()
                } else {
                    "install the module or correct the path".to_string()
                },
            )
        })
        .collect()
}

/// The console `login` service, if it exists and asks no code: a way in when twofa breaks.
fn console_without_twofa(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("login")).ok()?;
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).ok();
    let lines = auth_lines("login", &text, &read, &mut Vec::new(), 0);
    (!lines.is_empty() && !lines.iter().any(PamLine::is_twofa))
        .then(|| "console login (login) does not load pam_twofa".to_string())
}

// ------------------------------------------------------------------------------------------
// Policy, storage, clock, break-glass

fn check_config(path: Option<&Path>) -> (Finding, Option<Config>) {
    let shown = path.map_or(DEFAULT_PATH.to_string(), |p| p.display().to_string());
    match config::load(path) {
        Ok(c) if path.is_none() && !Path::new(DEFAULT_PATH).exists() => (
            Finding::ok(
                "config",
                format!("{shown} is not present: the defaults apply"),
            ),
            Some(c),
        ),
        Ok(c) => (
            Finding::ok(
                "config",
                format!("{shown}: valid, root's, not writable by others"),
            ),
            Some(c),
        ),
        Err(e) => (
            Finding::error(
                "config",
                format!("{e}: the module refuses every login (fail closed)"),
                format!("fix it, then check with: twofa-enroll check-config {shown}"),
            ),
            None,
        ),
    }
}

/// One storage directory: root's, closed to group and others.
fn check_dir(path: &Path, what: &str) -> Option<Finding> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let fix = format!("chown root:root {0} && chmod 0700 {0}", path.display());
    if !meta.is_dir() {
        return Some(Finding::error(
            "storage",
            format!(
                "{}: not a directory{}",
                path.display(),
                if meta.file_type().is_symlink() {
                    " (a symlink)"
                } else {
                    ""
                }
            ),
            format!("move it away; twofa creates {what} itself"),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 {
        return Some(Finding::error(
            "storage",
            format!(
                "{}: owned by uid {}, not root: the module refuses it",
                path.display(),
                meta.uid()
            ),
            fix,
        ));
    }
    if mode & 0o077 != 0 {
        return Some(Finding::error(
            "storage",
            format!(
                "{}: mode {mode:04o}, open to group or others: the module refuses it",
                path.display()
            ),
            fix,
        ));
    }
    None
}

fn check_storage(dir: &Path) -> Vec<Finding> {
    if std::fs::symlink_metadata(dir).is_err() {
        return vec![Finding::warning(
            "storage",
            format!("{} does not exist: nobody is enrolled yet", dir.display()),
            "enroll someone: twofa-enroll USER (it creates the directory, root's, 0700)",
        )];
    }
    let mut out: Vec<Finding> = std::iter::once(check_dir(dir, "the storage directory"))
        .chain(
            ["users", "state", "lock"]
                .iter()
                .map(|s| check_dir(&dir.join(s), s)),
        )
        .flatten()
        .collect();
    if out.is_empty() {
        out.push(Finding::ok(
            "storage",
            format!(
                "{}: root's, mode 0700 (users/, state/, lock/ too)",
                dir.display()
            ),
        ));
    }
    out
}

/// Enrollment files, `None` when they can't be counted.
fn count_enrollments(dir: &Path) -> Option<usize> {
    match std::fs::read_dir(dir.join("users")) {
        Ok(entries) => Some(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".toml"))
                .count(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}

const TIME_DAEMONS: &[&str] = &["chronyd", "ntpd", "systemd-timesyn", "openntpd", "ntpsec"];

fn check_clock(config: &Config) -> Finding {
    let slack = config.totp.window * config.totp.params.period;
    let need = format!("TOTP needs a clock within ±{slack} seconds (window × period)");
    let synced = Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match synced.as_deref() {
        Some("yes") => {
            return Finding::ok("clock", "synchronized (timedatectl: NTPSynchronized=yes)")
        }
        Some("no") => {
            return Finding::warning(
                "clock",
                format!("not synchronized (timedatectl: NTPSynchronized=no): {need}"),
                "timedatectl set-ntp true (or install chrony)",
            )
        }
        _ => {}
    }
    let running = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .find(|c| TIME_DAEMONS.contains(&c.as_str()));
    match running {
        Some(d) => Finding::ok("clock", format!("{d} is running")),
        None => Finding::warning(
            "clock",
            format!("can't tell whether the clock is synchronized (no timedatectl answer, no chronyd, ntpd or systemd-timesyncd running): {need}"),
            "apt install systemd-timesyncd (or chrony)",
        ),
    }
}

/// Is there a way in when the second factor can't be given?
fn check_break_glass(paths: &[String], enrolled: Option<usize>, stacks: bool) -> Finding {
    if !paths.is_empty() {
        return Finding::ok("break-glass", paths.join("; "));
    }
    if !stacks {
        return Finding::ok(
            "break-glass",
            "no service loads pam_twofa: logins ask no code",
        );
    }
    if enrolled == Some(0) {
        return Finding::error(
            "break-glass",
            "nobody can log in: every checked service loads pam_twofa, unenrolled = \"deny\", and no one is enrolled",
            "enroll an admin first (twofa-enroll USER) from the root shell you still have open, or set unenrolled = \"allow\" while rolling out",
        );
    }
    Finding::warning(
        "break-glass",
        "no way in without a code: if twofa's files break, every login is refused",
        "keep console login (/etc/pam.d/login) without pam_twofa, or an sshd `Match Group breakglass` block with `AuthenticationMethods publickey`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSHD: &str = include_str!("../../conf/pam.d/sshd");
    const SUDO: &str = include_str!("../../conf/pam.d/sudo");
    const SU: &str = include_str!("../../conf/pam.d/su");
    const VSFTPD: &str = include_str!("../../conf/pam.d/vsftpd");
    const PROFTPD: &str = include_str!("../../conf/pam.d/proftpd");
    const PURE_FTPD: &str = include_str!("../../conf/pam.d/pure-ftpd");
    const COMMON_AUTH: &str = "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\n";

    fn lines(text: &str) -> Vec<PamLine> {
        let read = |n: &str| (n == "common-auth").then(|| COMMON_AUTH.to_string());
        auth_lines("svc", text, &read, &mut Vec::new(), 0)
    }

    fn problems(text: &str, may_ignore: bool) -> Vec<Finding> {
        check_stack("svc", &lines(text), may_ignore)
            .into_iter()
            .filter(|f| f.status != Status::Ok)
            .collect()
    }

    fn errors(text: &str) -> Vec<String> {
        problems(text, false)
            .into_iter()
            .filter(|f| f.status == Status::Error)
            .map(|f| f.message)
            .collect()
    }

    fn has(errors: &[String], needle: &str) -> bool {
        errors.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn every_shipped_stack_passes_under_both_policies() {
        for (name, text) in [
            ("sshd", SSHD),
            ("sudo", SUDO),
            ("su", SU),
            ("vsftpd", VSFTPD),
            ("proftpd", PROFTPD),
            ("pure-ftpd", PURE_FTPD),
        ] {
            for may_ignore in [false, true] {
                assert_eq!(problems(text, may_ignore), vec![], "{name} {may_ignore}");
            }
            let all = check_stack(name, &lines(text), false);
            assert_eq!(all.len(), 1, "{name}: one ok finding");
        }
    }

    #[test]
    fn include_lines_are_expanded_and_comments_dropped() {
        let l = lines(
            "# x\nauth required pam_env.so\n@include common-auth\naccount required pam_unix.so\n",
        );
        let mods: Vec<&str> = l.iter().map(|l| l.module.as_str()).collect();
        assert_eq!(
            mods,
            ["pam_env.so", "pam_unix.so", "pam_deny.so", "pam_permit.so"]
        );
        assert_eq!(l[1].file, "common-auth");
        assert_eq!(l[1].control, "[success=1 default=ignore]");
    }

    #[test]
    fn a_wrong_jump_over_password_failed_is_an_error() {
        let broken = SUDO.replace(
            "[success=1 default=ignore]  pam_unix.so",
            "[success=2 default=ignore]  pam_unix.so",
        );
        let e = errors(&broken);
        assert!(has(&e, "jumps over the code check"), "{e:?}");
        assert!(has(&e, "`success=2` lands on"), "{e:?}");
    }

    #[test]
    fn a_missing_password_failed_line_means_a_password_alone_logs_in() {
        let broken: String = SUDO
            .lines()
            .filter(|l| !l.contains("password_failed"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = errors(&broken);
        assert!(has(&e, "jumps over the code check"), "{e:?}");
    }

    #[test]
    fn pubkey_done_must_land_on_the_code_check() {
        let broken = SSHD.replace(
            "[success=2 default=ignore]  pam_twofa.so pubkey_done",
            "[success=1 default=ignore]  pam_twofa.so pubkey_done",
        );
        let e = errors(&broken);
        assert!(has(&e, "pubkey_done's `success=1` lands on svc:"), "{e:?}");
        let broken = SSHD.replace(
            "[success=2 default=ignore]  pam_twofa.so pubkey_done",
            "[success=3 default=ignore]  pam_twofa.so pubkey_done",
        );
        assert!(has(&errors(&broken), "jumps over the code check"));
    }

    #[test]
    fn concat_without_use_first_pass_is_an_error() {
        let broken = VSFTPD.replace("pam_unix.so use_first_pass", "pam_unix.so");
        assert!(has(
            &errors(&broken),
            "concat must be followed by `pam_unix.so use_first_pass`"
        ));
        let broken = VSFTPD.replace(
            "requisite                   pam_twofa.so concat",
            "required pam_twofa.so concat",
        );
        assert!(has(&errors(&broken), "concat is `required`, not requisite"));
    }

    #[test]
    fn pam_env_reading_user_files_before_pubkey_done_is_an_error() {
        let broken = SSHD.replace(
            "auth    [success=2 default=ignore]  pam_twofa.so pubkey_done",
            "auth required pam_env.so user_readenv=1\nauth    [success=2 default=ignore]  pam_twofa.so pubkey_done",
        );
        assert!(has(&errors(&broken), "user_readenv=1 before pubkey_done"));
        let fine = SSHD.replace(
            "auth    [success=2 default=ignore]  pam_twofa.so pubkey_done",
            "auth required pam_env.so\nauth    [success=2 default=ignore]  pam_twofa.so pubkey_done",
        );
        assert_eq!(errors(&fine), Vec::<String>::new());
    }

    #[test]
    fn jumps_counted_across_an_include_are_an_error() {
        let text = "auth [success=3 default=ignore] pam_twofa.so pubkey_done\n@include common-auth\nauth required pam_twofa.so\n";
        let e = errors(text);
        assert!(has(&e, "counts lines of `common-auth`"), "{e:?}");
    }

    #[test]
    fn the_code_line_added_after_common_auth_leaks_the_password_check() {
        let text = "@include common-auth\nauth required pam_twofa.so\n";
        let p = problems(text, false);
        assert!(p.iter().all(|f| f.status == Status::Warning), "{p:?}");
        assert!(p
            .iter()
            .any(|f| f.message.contains("pam_deny.so is requisite")));
        assert!(p
            .iter()
            .any(|f| f.message.contains("no password_failed line")));
    }

    #[test]
    fn a_code_check_that_does_not_decide_is_an_error() {
        let broken = SUDO.replace(
            "required                    pam_twofa.so\n",
            "sufficient pam_twofa.so\n",
        );
        assert!(has(&errors(&broken), "the code check is `sufficient`"));
    }

    #[test]
    fn allow_needs_a_line_that_succeeds_after_the_code_check() {
        let broken: String = SUDO
            .lines()
            .filter(|l| !l.contains("pam_permit"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(errors(&broken), Vec::<String>::new());
        let p = problems(&broken, true);
        assert!(
            p.iter().any(|f| f.message.contains("PAM_PERM_DENIED")),
            "{p:?}"
        );
    }

    #[test]
    fn a_module_argument_typo_is_an_error() {
        let broken = SSHD.replace("pam_twofa.so pubkey_done", "pam_twofa.so pubkey_don");
        assert!(has(&errors(&broken), "unknown argument `pubkey_don`"));
    }

    #[test]
    fn missing_modules_are_found() {
        let l = lines("auth required /nonexistent/pam_twofa.so\n-auth optional pam_gone.so\nauth required pam_unix.so\n");
        let f = check_module_paths("svc", &l, |m| m == "pam_unix.so");
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("/nonexistent/pam_twofa.so not found"));
    }

    fn sshd_t(text: &str) -> BTreeMap<String, String> {
        parse_sshd_t(text)
    }

    const SHIPPED_SSHD_T: &str = "port 22\nusepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\npermitrootlogin no\nauthenticationmethods publickey,keyboard-interactive keyboard-interactive\n";

    fn sshd_status(global: &str, root: &str) -> Vec<(Status, String)> {
        check_sshd(&sshd_t(global), &sshd_t(root))
            .into_iter()
            .map(|f| (f.status, f.message))
            .collect()
    }

    #[test]
    fn sshd_t_output_is_parsed() {
        let m = sshd_t(
            "UsePAM yes\nauthenticationmethods publickey,keyboard-interactive:pam password\n\n",
        );
        assert_eq!(m.get("usepam").map(String::as_str), Some("yes"));
        assert_eq!(
            method_lists(setting(&m, "authenticationmethods")),
            Some(vec![
                vec!["publickey".to_string(), KBD.to_string()],
                vec!["password".to_string()]
            ])
        );
        assert_eq!(method_lists("any"), None);
    }

    #[test]
    fn the_shipped_sshd_settings_pass() {
        let s = sshd_status(SHIPPED_SSHD_T, SHIPPED_SSHD_T);
        assert!(s.iter().all(|(st, _)| *st == Status::Ok), "{s:?}");
    }

    #[test]
    fn sshd_paths_that_skip_the_code_are_errors() {
        let broken = SHIPPED_SSHD_T
            .replace("passwordauthentication no", "passwordauthentication yes")
            .replace(
                "publickey,keyboard-interactive keyboard-interactive",
                "publickey,keyboard-interactive password",
            );
        let s = sshd_status(&broken, &broken);
        let errs: Vec<&String> = s
            .iter()
            .filter(|(st, _)| *st == Status::Error)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(errs.len(), 2, "{s:?}");
        assert!(errs[0].contains("`password` never asks for the code"));
        assert!(errs[1].contains("PasswordAuthentication yes"));
        let any =
            SHIPPED_SSHD_T.replace("publickey,keyboard-interactive keyboard-interactive", "any");
        assert!(sshd_status(&any, &any)
            .iter()
            .any(|(st, m)| *st == Status::Error && m.contains("a key alone logs in")));
        let nopam = SHIPPED_SSHD_T.replace("usepam yes", "usepam no").replace(
            "kbdinteractiveauthentication yes",
            "kbdinteractiveauthentication no",
        );
        assert_eq!(
            sshd_status(&nopam, &nopam)
                .iter()
                .filter(|(st, _)| *st == Status::Error)
                .count(),
            2
        );
    }

    #[test]
    fn root_under_prohibit_password_cannot_use_keyboard_interactive() {
        let root = SHIPPED_SSHD_T.replace("permitrootlogin no", "permitrootlogin without-password");
        let f = check_root_login(&sshd_t(&root));
        assert_eq!(f.status, Status::Warning);
        let breakglass = root.replace(
            "publickey,keyboard-interactive keyboard-interactive",
            "publickey",
        );
        assert_eq!(check_root_login(&sshd_t(&breakglass)).status, Status::Ok);
        let paths = sshd_bypasses(
            &sshd_t(SHIPPED_SSHD_T),
            &sshd_t(&breakglass),
            Some(Path::new("/nonexistent")),
        );
        assert_eq!(
            paths,
            vec!["sshd lets root in with `publickey` (a Match block)".to_string()]
        );
    }

    #[test]
    fn match_blocks_without_keyboard_interactive_are_break_glass_paths() {
        let text = include_str!("../../conf/sshd_config.d/twofa.conf");
        assert_eq!(match_bypasses(text), Vec::<String>::new());
        let uncommented = text
            .replace("# Match Group breakglass", "Match Group breakglass")
            .replace(
                "#     AuthenticationMethods publickey",
                "    AuthenticationMethods publickey",
            );
        assert_eq!(
            match_bypasses(&uncommented),
            vec!["Match Group breakglass".to_string()]
        );
    }

    #[test]
    fn the_policy_opens_ways_in_only_while_they_last() {
        let mut c = Config::default();
        assert_eq!(policy_ways_in(&c, 1000), Vec::<String>::new());
        c.unenrolled = Unenrolled::Grace(2000);
        assert_eq!(policy_ways_in(&c, 1000).len(), 1);
        assert_eq!(policy_ways_in(&c, 3000), Vec::<String>::new());
        assert!(!may_ignore(&Config::default()));
        c.exempt_services = vec!["login".into()];
        assert!(may_ignore(&c));
        assert_eq!(
            policy_ways_in(&c, 3000),
            ["exempt_services: login ask no code"]
        );
    }

    #[test]
    fn nobody_can_log_in_without_enrollment_or_break_glass() {
        assert_eq!(check_break_glass(&[], Some(0), true).status, Status::Error);
        assert_eq!(
            check_break_glass(&[], Some(2), true).status,
            Status::Warning
        );
        assert_eq!(
            check_break_glass(&["x".into()], Some(0), true).status,
            Status::Ok
        );
        assert_eq!(check_break_glass(&[], Some(0), false).status, Status::Ok);
    }
}
