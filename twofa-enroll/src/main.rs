//! twofa-enroll: enroll, inspect and disable twofa second factors.
//!
//! This file only parses arguments and dispatches; each command lives in its own module.
#![forbid(unsafe_code)]

#[macro_use]
mod output;
mod check;
mod context;
mod doctor;
mod enroll;
mod import;
mod input;
mod orphans;
mod qr;
mod recovery;
#[cfg(test)]
mod reference;
mod reset;
mod resync;
mod status;
mod store;
mod test_delivery;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Failure;

const EXAMPLES: &str = "\
Examples:
  twofa-enroll alice                      enroll alice: QR code, then one code to confirm
  twofa-enroll enroll alice --qr-png /root/alice.png
  twofa-enroll enroll alice --secret-file - --no-verify < secret.txt
                                          keep a secret alice already has (never in argv)
  twofa-enroll enroll carol --method email --email carol@example.com
                                          codes by mail (a first code is sent to check it)
  twofa-enroll test-delivery carol        send carol a test code
  twofa-enroll enroll bob --hotp --secret-file token.txt
                                          an HOTP hardware token (counter-based)
  twofa-enroll resync bob                 two consecutive codes bring bob's token back in step
  twofa-enroll import-google-authenticator --all
                                          move every local user from google-authenticator
  twofa-enroll status alice               is alice enrolled? failures? last login?
  twofa-enroll status --all               everyone enrolled, as a table (--json for scripts)
  twofa-enroll reset alice                a new secret for alice (lost phone), QR and one code
  twofa-enroll disable alice              remove alice's enrollment (a backup is kept)
  twofa-enroll disable --orphan bob       remove the enrollment of bob, whose account was deleted
  twofa-enroll unlock alice               lift a lockout after too many wrong codes
  twofa-enroll recovery alice             new recovery codes for alice (the old ones stop working)
  twofa-enroll check-config               check /etc/twofa/twofa.toml
  twofa-enroll doctor                     check sshd, the PAM stacks, files and clock; each finding with its fix
  twofa-enroll store init                 fleet mode: create the fleet key and the database schema
  twofa-enroll store import               fleet mode: copy this host's enrollments into the store

Exit status: 0 done, 1 error (nothing was changed), 2 bad usage.";

/// Enroll users in twofa (a second factor for Linux logins) and manage their enrollments.
#[derive(Debug, Parser)]
#[command(name = "twofa-enroll", version, after_help = EXAMPLES)]
struct Cli {
    /// Policy file to use instead of /etc/twofa/twofa.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll USER with a TOTP authenticator app (the default command: `twofa-enroll USER`).
    Enroll(enroll::Args),
    /// Show whether USER is enrolled, with which parameters, and their recent logins.
    Status(status::StatusArgs),
    /// Remove USER's enrollment, keeping a root-only backup; the policy for unenrolled users
    /// applies. With --orphan, the enrollment of a deleted account, by its stored name.
    Disable(status::DisableArgs),
    /// Give enrolled USER a new secret (same checks as enroll), or with --self-enroll send them
    /// back to enrolling at their next login.
    Reset(reset::ResetArgs),
    /// Clear USER's failed attempts and lift a lockout.
    Unlock(status::UnlockArgs),
    /// Give USER a new set of single-use recovery codes (the old set stops working).
    Recovery(recovery::RecoveryArgs),
    /// Bring USER's drifted HOTP token back in step with two consecutive codes.
    Resync(resync::ResyncArgs),
    /// Enroll USER with the secret of their ~/.google_authenticator (they keep their app entry).
    ImportGoogleAuthenticator(import::Args),
    /// Check a policy file (default: --config, else /etc/twofa/twofa.toml) and print what it sets.
    CheckConfig(check::Args),
    /// Check what breaks logins: sshd settings, PAM stacks, file permissions, clock, a way in.
    Doctor(doctor::Args),
    /// Send a test code to USER's email, pushover or script destinations, and say what happened.
    TestDelivery(test_delivery::TestDeliveryArgs),
    /// The fleet store ([store] kind = "postgres"): init, check, import.
    Store(store::Args),
}

/// `twofa-enroll USER` means `twofa-enroll enroll USER`: insert the word before the first
/// argument that is neither an option nor a command.
fn with_default_command(mut argv: Vec<String>) -> Vec<String> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let is_command = |word: &str| word == "help" || cli.find_subcommand(word).is_some();
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--config" {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        if !is_command(a) {
            argv.insert(i, "enroll".to_string());
        }
        break;
    }
    argv
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(with_default_command(std::env::args().collect()));
    let config = cli.config.as_deref();
    let result: Result<(), Failure> = match &cli.command {
        Command::Enroll(a) => enroll::run(config, a),
        Command::Status(a) => status::status(config, a),
        Command::Disable(a) => status::disable(config, a),
        Command::Unlock(a) => status::unlock(config, a),
        Command::Reset(a) => reset::run(config, a),
        Command::Recovery(a) => recovery::run(config, a),
        Command::Resync(a) => resync::run(config, a),
        Command::ImportGoogleAuthenticator(a) => import::run(config, a),
        Command::CheckConfig(a) => check::run(config, a),
        Command::Doctor(a) => doctor::run(config, a),
        Command::TestDelivery(a) => test_delivery::run(config, a),
        Command::Store(a) => store::run(config, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            output::print_failure(&f);
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_bare_user_name_means_enroll() {
        assert_eq!(
            with_default_command(args(&["t", "alice"])),
            args(&["t", "enroll", "alice"])
        );
        assert_eq!(
            with_default_command(args(&["t", "--config", "/x", "alice", "--no-verify"])),
            args(&["t", "--config", "/x", "enroll", "alice", "--no-verify"])
        );
        assert_eq!(
            with_default_command(args(&["t", "status", "alice"])),
            args(&["t", "status", "alice"])
        );
        assert_eq!(
            with_default_command(args(&["t", "--help"])),
            args(&["t", "--help"])
        );
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
