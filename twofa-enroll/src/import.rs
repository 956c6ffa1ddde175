//! `import-google-authenticator`: users keep their app entry when a host moves from
//! google-authenticator-libpam to twofa.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use twofa_core::enrollment::{Enrollment, Factor, HotpFactor, RecoveryFactor, TotpFactor};
use twofa_core::fleet;
use twofa_core::google_authenticator;
use twofa_core::identity::{self, Account};
use twofa_core::otp::{Algorithm, Params};
use twofa_core::recovery;
use twofa_core::secret::RECOMMENDED_BITS;
use twofa_core::securefile;
use twofa_core::store::Store;

use crate::context::{account, load_config};
use crate::output::{self, Failure};

/// Arguments of `import-google-authenticator`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The account whose ~/.google_authenticator to import.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    user: Option<String>,
    /// Import every local account (/etc/passwd) that has a ~/.google_authenticator.
    #[arg(long)]
    all: bool,
    /// Read this file instead of the user's ~/.google_authenticator.
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    file: Option<PathBuf>,
    /// Replace an existing twofa enrollment.
    #[arg(long)]
    force: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Imports one account; returns a one-line summary.
fn import_one(
    store: &dyn Store,
    policy_window: u64,
    account: &Account,
    file: &Path,
    force: bool,
) -> Result<String, Failure> {
    if !force && store.enrollment(account)?.is_some() {
        return Err(Failure::new(format!(
            "{} is already enrolled in twofa; nothing was changed",
            account.name
        ))
        .hint("add --force to replace it with the google-authenticator secret"));
    }
    // Owned by the user, reached without following any symlink: a link to /etc/shadow is
    // refused before a byte of it is read.
    let text =
        securefile::read_user_file(file, account.uid).map_err(|e| Failure::new(e.to_string()))?;
    let ga = google_authenticator::parse(&text)
        .map_err(|e| Failure::new(format!("{}: {e}", file.display())))?;
    if ga.secret.bits() < RECOMMENDED_BITS {
        output::warn(&format!(
            "{}: the secret has only {} bits ({RECOMMENDED_BITS} recommended); imported so the app keeps working, but enroll {} anew when you can",
            account.name,
            ga.secret.bits(),
            account.name
        ));
    }
    if let Some(w) = ga.window_size {
        let theirs = w.saturating_sub(1) / 2;
        if theirs != policy_window && ga.hotp_counter.is_none() {
            output::warn(&format!(
                "{}: google-authenticator accepted codes ±{theirs} steps; twofa's policy window is ±{policy_window} for everyone",
                account.name
            ));
        }
    }
    let enrolled_at = now();
    let params = Params {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: ga.step_size.unwrap_or(30),
    };
    let factor = match ga.hotp_counter {
        Some(counter) => Factor::Hotp(HotpFactor {
            secret: ga.secret.clone(),
            params,
            counter,
            enrolled_at,
        }),
        None => Factor::Totp(TotpFactor {
            secret: ga.secret.clone(),
            params,
            enrolled_at,
        }),
    };
    let kind = factor.kind();
    let mut enrollment = Enrollment {
        account: account.name.clone(),
        factors: vec![factor],
    };
    if !ga.scratch_codes.is_empty() {
        let (salt, hashes) = recovery::import_scratch(&ga.scratch_codes)?;
        enrollment.set_recovery(RecoveryFactor {
            salt,
            hashes,
            issued_at: enrolled_at,
        });
    }
    store.put_enrollment(account, &enrollment, force)?;
    Ok(format!(
        "Imported {}: {kind}{}, {} scratch code(s) as recovery codes, from {}.",
        account.name,
        if kind == "totp" {
            format!(" ({} s)", params.period)
        } else {
            String::new()
        },
        ga.scratch_codes.len(),
        file.display()
    ))
}

/// Local accounts with a home directory, from /etc/passwd (NSS directories can't be listed).
fn local_accounts() -> Result<Vec<(String, PathBuf)>, Failure> {
    let text = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| Failure::new(format!("/etc/passwd: {e}")))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7).then(|| (f[0].to_string(), PathBuf::from(f[5])))
        })
        .collect())
}

/// Runs `import-google-authenticator`.
pub fn run(config_path: Option<&Path>, args: &Args) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let store = fleet::open_admin(&config);
    if let Some(user) = &args.user {
        let account = account(user)?;
        let file = match &args.file {
            Some(f) => f.clone(),
            None => identity::home_of(&account.name)
                .ok_or_else(|| Failure::new(format!("{} has no home directory", account.name)))?
                .join(".google_authenticator"),
        };
        let line = import_one(&store, config.totp.window, &account, &file, args.force)?;
        say!("{line}");
        say!("The user's file is left in place; remove it once every PAM stack uses twofa.");
        return Ok(());
    }
    let mut failed = 0;
    let mut imported = 0;
    for (name, home) in local_accounts()? {
        let file = home.join(".google_authenticator");
        if std::fs::symlink_metadata(&file).is_err() {
            continue;
        }
        let result = identity::lookup(&name)
            .ok()
            .flatten()
            .ok_or_else(|| Failure::new(format!("no account named `{name}`")))
            .and_then(|account| {
                import_one(&store, config.totp.window, &account, &file, args.force)
            });
        match result {
            Ok(line) => {
                imported += 1;
                say!("{line}");
            }
            Err(f) => {
                failed += 1;
                output::print_failure(&Failure {
                    message: format!("{name}: {}", f.message),
                    hint: f.hint,
                });
            }
        }
    }
    say!("{imported} imported, {failed} failed.");
    if failed > 0 {
        return Err(Failure::new(format!(
            "{failed} account(s) could not be imported (see above)"
        )));
    }
    Ok(())
}
