//! `twofa-enroll reset USER`: a new secret at the admin's terminal, or back to
//! self-enrollment.

use std::path::Path;

use twofa_core::config::Unenrolled;
use twofa_core::store::Store;

use crate::context::{for_user, now, ForUser};
use crate::enroll::Args;
use crate::output::Failure;

/// Arguments of `reset`.
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    #[command(flatten)]
    enroll: Args,
    /// Remove the enrollment instead, so that the user enrolls at the next login with a QR code
    /// (needs unenrolled = "enroll" in the policy).
    #[arg(long)]
    self_enroll: bool,
}

/// Runs `reset`: a new secret for an enrolled user, at the admin's terminal (the same checks
/// as `enroll`), or back to self-enrollment.
pub fn run(config_path: Option<&Path>, args: &ResetArgs) -> Result<(), Failure> {
    let ForUser {
        config,
        account,
        store,
    } = for_user(config_path, &args.enroll.user)?;
    if args.self_enroll {
        if config.unenrolled != Unenrolled::Enroll {
            return Err(Failure::new(
                "reset --self-enroll needs unenrolled = \"enroll\" in the policy; nothing was changed",
            )
            .hint("otherwise the user would be treated as unenrolled and could not enroll; use reset without --self-enroll"));
        }
        return match store.disable_enrollment(&account, now())? {
            Some(backup) => {
                say!(
                    "Reset {}: they will be shown a QR code to enroll at their next login. The old enrollment is kept at {} (root only).",
                    account.name,
                    backup
                );
                Ok(())
            }
            None => Err(Failure::new(format!(
                "{} is not enrolled; nothing was changed",
                account.name
            ))),
        };
    }
    if store.enrollment(&account)?.is_none() {
        return Err(Failure::new(format!(
            "{} is not enrolled; nothing was changed",
            account.name
        ))
        .hint(format!("enroll them: twofa-enroll {}", account.name)));
    }
    let mut again = args.enroll.clone();
    again.force = true;
    crate::enroll::run(config_path, &again)
}
