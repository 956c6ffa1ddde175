//! `status USER` and `disable USER`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use twofa_core::enrollment::Factor;
use twofa_core::recovery::to_hex;
use twofa_core::store::{FileStore, Store};

use crate::enroll::{account, load_config};
use crate::output::{self, utc, Failure};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The account to show.
    user: String,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Arguments of `disable` and `unlock`.
#[derive(Debug, clap::Args)]
pub struct DisableArgs {
    /// The account.
    user: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn when(ts: Option<u64>) -> String {
    ts.map(utc).unwrap_or_else(|| "never".to_string())
}

/// Runs `status`.
pub fn status(config_path: Option<&Path>, args: &StatusArgs) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let account = account(&args.user)?;
    let store = FileStore::new(&config.storage_dir);
    let enrollment = store.enrollment(&account)?;
    let state = store.state(&account)?;
    if args.json {
        let factors: Vec<_> = enrollment
            .iter()
            .flat_map(|e| e.factors.iter())
            .map(|f| match f {
                Factor::Totp(t) => serde_json::json!({
                    "type": "totp",
                    "algorithm": t.params.algorithm.name(),
                    "digits": t.params.digits,
                    "period": t.params.period,
                    "enrolled_at": t.enrolled_at,
                }),
                Factor::Hotp(h) => serde_json::json!({
                    "type": "hotp",
                    "algorithm": h.params.algorithm.name(),
                    "digits": h.params.digits,
                    "counter": state.hotp_from(h.counter),
                    "enrolled_at": h.enrolled_at,
                }),
                Factor::Recovery(r) => serde_json::json!({
                    "type": "recovery",
                    "issued_at": r.issued_at,
                    "codes": r.hashes.len(),
                    "left": r.hashes.iter().filter(|h| !state.used_recovery.contains(&to_hex(h.as_slice()))).count(),
                }),
            })
            .collect();
        let out = serde_json::json!({
            "account": account.name,
            "enrolled": enrollment.is_some(),
            "factors": factors,
            "failures": state.failures,
            "locked_until": state.locked_at(now()),
            "last_success_at": state.last_success_at,
            "last_failure_at": state.last_failure_at,
        });
        say!("{out}");
        return Ok(());
    }
    say!("account:       {}", account.name);
    match &enrollment {
        None => say!("enrolled:      no (policy for unenrolled users applies)"),
        Some(e) => {
            for f in &e.factors {
                match f {
                    Factor::Totp(t) => say!(
                        "enrolled:      yes, totp ({}, {} digits, {} s) since {}",
                        t.params.algorithm,
                        t.params.digits,
                        t.params.period,
                        utc(t.enrolled_at)
                    ),
                    Factor::Hotp(h) => say!(
                        "enrolled:      yes, hotp ({}, {} digits, next press {}) since {}",
                        h.params.algorithm,
                        h.params.digits,
                        state.hotp_from(h.counter),
                        utc(h.enrolled_at)
                    ),
                    Factor::Recovery(r) => {
                        let left = r
                            .hashes
                            .iter()
                            .filter(|h| !state.used_recovery.contains(&to_hex(h.as_slice())))
                            .count();
                        say!(
                            "recovery:      {left} of {} codes left (issued {})",
                            r.hashes.len(),
                            utc(r.issued_at)
                        );
                    }
                }
            }
        }
    }
    say!("failures:      {} since the last success", state.failures);
    match state.locked_at(now()) {
        Some(until) => say!(
            "locked until:  {} (twofa-enroll unlock {} lifts it)",
            utc(until),
            account.name
        ),
        None => say!("locked:        no"),
    }
    say!("last success:  {}", when(state.last_success_at));
    say!("last failure:  {}", when(state.last_failure_at));
    Ok(())
}

/// Runs `disable`.
pub fn disable(config_path: Option<&Path>, args: &DisableArgs) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let account = account(&args.user)?;
    let store = FileStore::new(&config.storage_dir);
    match store.disable_enrollment(&account, now())? {
        Some(backup) => {
            say!(
                "Disabled twofa for {}; the enrollment is kept at {} (root only).",
                account.name,
                backup.display()
            );
            say!(
                "The policy for unenrolled users now applies to {}.",
                account.name
            );
            Ok(())
        }
        None => Err(Failure::new(format!(
            "{} is not enrolled; nothing was changed",
            account.name
        ))),
    }
}

/// Runs `unlock`.
pub fn unlock(config_path: Option<&Path>, args: &DisableArgs) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let account = account(&args.user)?;
    let store = FileStore::new(&config.storage_dir);
    let before = store.state(&account)?;
    store.reset_failures(&account)?;
    match before.locked_at(now()) {
        Some(_) => say!(
            "Unlocked {}: the lockout is lifted and failed attempts are forgotten.",
            account.name
        ),
        None => say!(
            "{} was not locked; {} failed attempt(s) forgotten.",
            account.name,
            before.failures
        ),
    }
    Ok(())
}
