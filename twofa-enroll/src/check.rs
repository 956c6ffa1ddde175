//! `check-config [FILE]`: is the policy valid, and what does it set?

use std::path::{Path, PathBuf};

use twofa_core::config::{self, Unenrolled, DEFAULT_PATH};

use crate::output::{utc, Failure};

/// Arguments of `check-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to check (default: --config, else /etc/twofa/twofa.toml).
    file: Option<PathBuf>,
}

/// Runs `check-config`.
pub fn run(config_path: Option<&Path>, args: &Args) -> Result<(), Failure> {
    let explicit = args.file.as_deref().or(config_path);
    // The module loads the pattern without compiling it; this is where an admin learns it is
    // invalid (twofa-deliver would refuse every script code).
    let config = config::load(explicit)
        .and_then(|c| crate::context::check_destination_patterns(&c).map(|()| c))
        .map_err(|e| Failure::new(e.to_string()))?;
    if explicit.is_none() && !Path::new(DEFAULT_PATH).exists() {
        say!("{DEFAULT_PATH}: not present; the defaults apply:");
    } else {
        say!("{}: OK", config.source.display());
    }
    let p = config.totp.params;
    say!(
        "  totp:       issuer \"{}\", {}, {} digits, {} s, window ±{}",
        config.totp.issuer,
        p.algorithm,
        p.digits,
        p.period,
        config.totp.window
    );
    let unenrolled = match config.unenrolled {
        Unenrolled::Deny => "deny (asked for a code, then refused)".to_string(),
        Unenrolled::Allow => "allow (let in after the password, no code)".to_string(),
        Unenrolled::Grace(until) => format!(
            "grace until {} (then refused)",
            utc(until.saturating_sub(1))
        ),
        Unenrolled::Enroll => "enroll (shown a QR code at their next login)".to_string(),
    };
    say!("  unenrolled: {unenrolled}");
    let l = config.lockout;
    if l.max_failures == 0 {
        say!("  lockout:    off");
    } else {
        say!(
            "  lockout:    {} failures within {} s lock for {} s",
            l.max_failures,
            l.window,
            l.duration
        );
    }
    say!(
        "  recovery:   {} codes per enrollment",
        config.recovery_codes
    );
    say!("  hotp:       look-ahead {}", config.hotp_look_ahead);
    match config.enrollment_max_age_days {
        0 => say!("  max age:    none"),
        d => say!("  max age:    {d} days (older enrollments are reported)"),
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    say!(
        "  enforce:    {}",
        if config.enforce_groups.is_empty() {
            "everyone".to_string()
        } else {
            format!("members of {}", list(&config.enforce_groups))
        }
    );
    say!(
        "  exempt:     groups {}; services {}",
        list(&config.exempt_groups),
        list(&config.exempt_services)
    );
    match config.remember_host_seconds {
        0 => say!("  remember:   off"),
        s => say!("  remember:   the same remote host for {s} s"),
    }
    say!("  storage:    {}", config.storage_dir.display());
    if config.store.kind == twofa_core::config::StoreKind::Postgres {
        say!(
            "  store:      fleet (postgres) through {} with {}; a login waits at most {} ms for it",
            config.store.helper.display(),
            config.store.settings.display(),
            config.store.timeout.as_millis()
        );
        say!(
            "  store down: {}",
            match config.on_store_error {
                twofa_core::config::OnStoreError::Deny => "deny the login",
                twofa_core::config::OnStoreError::Local =>
                    "use this host's files (no fleet-wide replay protection or lockout meanwhile)",
            }
        );
    }
    Ok(())
}
