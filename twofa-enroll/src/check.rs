//! `check-config [FILE]`: is the policy valid, and what does it set?

use std::path::{Path, PathBuf};

use twofa_core::config::{self, Unenrolled, DEFAULT_PATH};

use crate::output::Failure;

/// Arguments of `check-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to check (default: --config, else /etc/twofa/twofa.toml).
    file: Option<PathBuf>,
}

/// Runs `check-config`.
pub fn run(config_path: Option<&Path>, args: &Args) -> Result<(), Failure> {
    let explicit = args.file.as_deref().or(config_path);
    let config = config::load(explicit).map_err(|e| Failure::new(e.to_string()))?;
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
    say!(
        "  unenrolled: {}",
        match config.unenrolled {
            Unenrolled::Deny => "deny (asked for a code, then refused)",
            Unenrolled::Allow => "allow (let in after the password, no code)",
        }
    );
    say!("  storage:    {}", config.storage_dir.display());
    Ok(())
}
