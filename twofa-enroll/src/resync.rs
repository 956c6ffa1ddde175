//! `twofa-enroll resync USER`: two consecutive codes bring a drifted HOTP token back in step.

use std::path::Path;

use twofa_core::otp;
use twofa_core::store::{StepOutcome, Store};
use zeroize::Zeroizing;

use crate::context::{for_user, now, ForUser};
use crate::input::Input;
use crate::output::Failure;

/// Arguments of `resync`.
#[derive(Debug, clap::Args)]
pub struct ResyncArgs {
    /// The account whose HOTP token drifted (pressed many times without logging in).
    user: String,
}

/// How far ahead `resync` searches for two consecutive codes.
const RESYNC_SEARCH: u64 = 10_000;

/// Runs `resync`: two consecutive codes bring a drifted HOTP token back in step.
pub fn run(config_path: Option<&Path>, args: &ResyncArgs) -> Result<(), Failure> {
    let ForUser {
        config: _,
        account,
        store,
    } = for_user(config_path, &args.user)?;
    let enrollment = store
        .enrollment(&account)?
        .ok_or_else(|| Failure::new(format!("{} is not enrolled", account.name)))?;
    let Some(h) = enrollment.hotp() else {
        return Err(
            Failure::new(format!("{} has no HOTP token to resync", account.name))
                .hint("TOTP codes follow the clock; check the phone's time instead"),
        );
    };
    let from = store.state(&account)?.hotp_from(h.counter);
    let mut input = Input::new();
    let mut read = |what: &str| -> Result<Zeroizing<Vec<u8>>, Failure> {
        let line = input.ask(&format!("{what} code: "))?;
        otp::normalize_code(line.trim().as_bytes(), h.params.digits).ok_or_else(|| {
            Failure::new(format!(
                "that is not a {}-digit code; nothing was changed",
                h.params.digits
            ))
        })
    };
    let first = read("First")?;
    let second = read("Next")?;
    let Some(c) = otp::resync_hotp(
        h.secret.bytes(),
        &h.params,
        &first,
        &second,
        from,
        RESYNC_SEARCH,
    ) else {
        return Err(Failure::new(format!(
            "no two consecutive codes match within {RESYNC_SEARCH} presses; nothing was changed"
        ))
        .hint("press the token twice and type both codes in order"));
    };
    // Both codes are now spent: the next accepted press is c + 2.
    match store.accept_hotp(&account, c + 1, h.counter, now())? {
        StepOutcome::Accepted => {
            say!(
                "Resynced {}: the token is at press {}.",
                account.name,
                c + 2
            );
            Ok(())
        }
        StepOutcome::Replayed => Err(Failure::new(
            "those codes were already used; nothing was changed",
        )),
        StepOutcome::Locked(_) => Err(Failure::new(format!("{} is locked", account.name))
            .hint(format!("twofa-enroll unlock {} first", account.name))),
    }
}
