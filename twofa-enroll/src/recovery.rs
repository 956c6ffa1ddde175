//! `twofa-enroll recovery USER`: a new set of recovery codes (the old set stops working), and
//! the issuing and printing of codes that enrollment shares.

use std::path::Path;

use twofa_core::enrollment::{Enrollment, RecoveryFactor};
use twofa_core::recovery;
use twofa_core::store::Store;
use zeroize::Zeroizing;

use crate::context::{for_user, now, ForUser};
use crate::output::Failure;

/// Arguments of `recovery`.
#[derive(Debug, clap::Args)]
pub struct RecoveryArgs {
    /// The account to give a new set of recovery codes.
    user: String,
    /// Print the codes as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `recovery`: a new set of codes; the old set stops working.
pub fn run(config_path: Option<&Path>, args: &RecoveryArgs) -> Result<(), Failure> {
    let ForUser {
        config,
        account,
        store,
    } = for_user(config_path, &args.user)?;
    let Some(mut enrollment) = store.enrollment(&account)? else {
        return Err(Failure::new(format!("{} is not enrolled", account.name))
            .hint(format!("enroll first: twofa-enroll {}", account.name)));
    };
    let count = if config.recovery_codes == 0 {
        10
    } else {
        config.recovery_codes
    };
    let codes = issue_recovery(&mut enrollment, count, now())?;
    store.put_enrollment(&account, &enrollment, true)?;
    if args.json {
        let out = serde_json::json!({
            "account": account.name,
            "recovery_codes": codes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        });
        say!("{out}");
    } else {
        say!(
            "New recovery codes for {}; the old ones no longer work.",
            account.name
        );
        print_recovery(&account.name, &codes);
    }
    Ok(())
}

/// Adds `count` fresh recovery codes to `enrollment` and returns them (shown once).
pub fn issue_recovery(
    enrollment: &mut Enrollment,
    count: usize,
    now: u64,
) -> Result<Vec<Zeroizing<String>>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let set = recovery::issue(count)?;
    enrollment.set_recovery(RecoveryFactor {
        salt: set.salt,
        hashes: set.hashes,
        issued_at: now,
    });
    Ok(set.codes)
}

/// Prints recovery codes once, with what they are for.
pub fn print_recovery(account: &str, codes: &[Zeroizing<String>]) {
    if codes.is_empty() {
        return;
    }
    say!();
    say!("Recovery codes for {account}: each works once in place of a verification code.");
    say!("Keep them somewhere safe (not on the phone); they are not shown again.");
    for pair in codes.chunks(2) {
        let line: Vec<&str> = pair.iter().map(|c| c.as_str()).collect();
        say!("    {}", line.join("    "));
    }
}
