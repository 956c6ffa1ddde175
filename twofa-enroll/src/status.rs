//! `status [USER | --all]`, `disable USER`, `unlock USER`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use twofa_core::config::{Config, StoreKind};
use twofa_core::enrollment::{Enrollment, Factor};
use twofa_core::fleet;
use twofa_core::identity::{self, Account};
use twofa_core::login::expired_age;
use twofa_core::recovery::to_hex;
use twofa_core::state::UserState;
use twofa_core::store::Store;

use crate::context::{account, load_config, no_account};
use crate::orphans::{self, Presence};
use crate::output::{self, utc, Failure};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The account to show.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    user: Option<String>,
    /// Every enrolled account, as a table.
    #[arg(long)]
    all: bool,
    /// Print JSON on stdout (an object for USER, an array for --all).
    #[arg(long)]
    json: bool,
}

/// Arguments of `disable`.
#[derive(Debug, clap::Args)]
pub struct DisableArgs {
    /// The account (with --orphan: the name the enrollment is stored under).
    user: String,
    /// Remove the enrollment of an account that no longer exists (an orphan), by its stored
    /// name; refused when an account of that name exists, or when the account database can't
    /// be asked.
    #[arg(long)]
    orphan: bool,
}

/// Arguments of `unlock`.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
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

/// What `status` says about one account.
struct Summary {
    account: String,
    /// Whether the account exists on this host.
    presence: Presence,
    /// Fleet mode: an account absent here may live on another host.
    fleet: bool,
    enrollment: Option<Enrollment>,
    state: UserState,
    /// When the OTP factor was enrolled.
    enrolled_at: Option<u64>,
    /// Days since enrollment, if enrolled with an OTP factor.
    age_days: Option<u64>,
    expired: bool,
    recovery_left: Option<usize>,
    locked_until: Option<u64>,
}

impl Summary {
    fn new(
        config: &Config,
        account: String,
        presence: Presence,
        enrollment: Option<Enrollment>,
        state: UserState,
        now: u64,
    ) -> Summary {
        let enrolled_at = enrollment.as_ref().and_then(|e| {
            e.factors.iter().find_map(|f| match f {
                Factor::Totp(t) => Some(t.enrolled_at),
                Factor::Hotp(h) => Some(h.enrolled_at),
                Factor::Recovery(_) | Factor::Delivery(_) => None,
            })
        });
        let expired = enrollment
            .as_ref()
            .is_some_and(|e| expired_age(config, e, now).is_some());
        let recovery_left = enrollment.as_ref().and_then(|e| e.recovery()).map(|r| {
            r.hashes
                .iter()
                .filter(|h| !state.used_recovery.contains(&to_hex(h.as_slice())))
                .count()
        });
        Summary {
            account,
            presence,
            fleet: config.store.kind == StoreKind::Postgres,
            enrolled_at,
            age_days: enrolled_at.map(|t| now.saturating_sub(t) / 86_400),
            expired,
            recovery_left,
            locked_until: state.locked_at(now),
            enrollment,
            state,
        }
    }

    /// An enrollment whose account no longer exists, on a host with its own files.
    fn orphan(&self) -> bool {
        self.presence == Presence::Absent && !self.fleet
    }

    fn method(&self) -> String {
        match &self.enrollment {
            None => "-".to_string(),
            Some(e) => e
                .factors
                .iter()
                .map(|f| f.kind())
                .collect::<Vec<_>>()
                .join("+"),
        }
    }

    fn json(&self) -> serde_json::Value {
        let state = &self.state;
        let factors: Vec<_> = self
            .enrollment
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
                Factor::Delivery(d) => serde_json::json!({
                    "type": d.method.name(),
                    "to": d.to,
                }),
                Factor::Recovery(r) => serde_json::json!({
                    "type": "recovery",
                    "issued_at": r.issued_at,
                    "codes": r.hashes.len(),
                    "left": self.recovery_left,
                }),
            })
            .collect();
        serde_json::json!({
            "account": self.account,
            "enrolled": self.enrollment.is_some(),
            "factors": factors,
            "age_days": self.age_days,
            "expired": self.expired,
            "recovery_codes_left": self.recovery_left,
            "account_here": self.presence.json(),
            "orphan": self.orphan(),
            "enrolled_at": self.enrolled_at,
            "failures": state.failures,
            "locked_until": self.locked_until,
            // Logins with a code; an enrollment's confirmation is not one.
            "last_login_at": state.last_success_at,
            // The same, under its name before "last_login_at" (kept for existing scripts).
            "last_success_at": state.last_success_at,
            "last_failure_at": state.last_failure_at,
        })
    }

    fn print_detail(&self) {
        let state = &self.state;
        match (&self.presence, self.fleet) {
            (Presence::Here, _) => say!("account:       {}", self.account),
            (Presence::Absent, false) => say!(
                "account:       {} (orphan: no account of that name exists)",
                self.account
            ),
            (Presence::Absent, true) => say!(
                "account:       {} (not on this host; it may live on other hosts of the fleet)",
                self.account
            ),
            (Presence::Unknown(why), _) => {
                say!(
                    "account:       {} (could not be looked up: {why})",
                    self.account
                )
            }
        }
        match &self.enrollment {
            None => say!("enrolled:      no (the policy for unenrolled users applies)"),
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
                        Factor::Delivery(d) => {
                            say!("sent codes:    {} to {}", d.method.name(), d.to.join(", "))
                        }
                        Factor::Recovery(r) => say!(
                            "recovery:      {} of {} codes left (issued {})",
                            self.recovery_left.unwrap_or(0),
                            r.hashes.len(),
                            utc(r.issued_at)
                        ),
                    }
                }
                if let Some(age) = self.age_days {
                    say!(
                        "age:           {age} days{}",
                        if self.expired {
                            ", expired: re-enroll (twofa-enroll reset)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        say!("failures:      {} since the last login", state.failures);
        match self.locked_until {
            Some(until) => say!(
                "locked until:  {} (twofa-enroll unlock {} lifts it)",
                utc(until),
                self.account
            ),
            None => say!("locked:        no"),
        }
        say!("last login:    {}", when(state.last_success_at));
        say!("last failure:  {}", when(state.last_failure_at));
        if self.orphan() {
            say!(
                "orphan:        {}; remove it: {}",
                orphans::inheritance_warning(&self.account),
                orphans::removal(&self.account)
            );
        }
    }
}

/// Runs `status`.
pub fn status(config_path: Option<&Path>, args: &StatusArgs) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let store = fleet::open_admin(&config);
    let now = now();
    if let Some(user) = &args.user {
        let (account, presence) = account_or_orphan(&store, user)?;
        let s = Summary::new(
            &config,
            account.name.clone(),
            presence,
            store.enrollment(&account)?,
            store.state(&account)?,
            now,
        );
        if args.json {
            say!("{}", s.json());
        } else {
            s.print_detail();
        }
        return Ok(());
    }
    let mut all = Vec::new();
    for name in store.enrolled_names()? {
        // Enrolled accounts are read by their stored name, even if the account was since
        // removed from the passwd database: status shows what is on disk, orphans marked.
        let account = orphans::stored(&name);
        let presence = Presence::of(&name);
        let enrollment = match store.enrollment(&account) {
            Ok(e) => e,
            Err(e) => {
                output::warn(&e.to_string());
                continue;
            }
        };
        all.push(Summary::new(
            &config,
            name,
            presence,
            enrollment,
            store.state(&account)?,
            now,
        ));
    }
    if args.json {
        say!(
            "{}",
            serde_json::Value::Array(all.iter().map(Summary::json).collect())
        );
        return Ok(());
    }
    if all.is_empty() {
        say!(
            "Nobody is enrolled (storage: {}).",
            config.storage_dir.display()
        );
        return Ok(());
    }
    say!(
        "{:<20} {:<14} {:>5} {:<7} {:<20} {:>8} {:<20} {:>8}  {}",
        "ACCOUNT",
        "METHOD",
        "AGE",
        "EXPIRED",
        "LAST LOGIN",
        "FAILURES",
        "LOCKED UNTIL",
        "RECOVERY",
        "NOTE"
    );
    for s in &all {
        say!(
            "{:<20} {:<14} {:>5} {:<7} {:<20} {:>8} {:<20} {:>8}  {}",
            s.account,
            s.method(),
            s.age_days.map_or("-".to_string(), |d| format!("{d}d")),
            if s.expired { "yes" } else { "no" },
            when(s.state.last_success_at),
            s.state.failures,
            s.locked_until.map_or("-".to_string(), utc),
            s.recovery_left.map_or("-".to_string(), |n| n.to_string()),
            s.presence.note(s.fleet).unwrap_or(""),
        );
    }
    if all.iter().any(Summary::orphan) {
        say!();
        say!("orphan: no account of that name exists any more; a new account created with that name would inherit the enrollment. Remove each one: twofa-enroll disable --orphan NAME");
    }
    if all
        .iter()
        .any(|s| s.fleet && s.presence == Presence::Absent)
    {
        say!();
        say!("not on this host: enrolled in the fleet store; the account may live on other hosts.");
    }
    Ok(())
}

/// The account named `user`, or, when the passwd database definitively has none, an
/// enrollment stored under that name (an orphan): `status` reaches what is on disk.
fn account_or_orphan(store: &dyn Store, user: &str) -> Result<(Account, Presence), Failure> {
    match identity::lookup(user) {
        Ok(Some(a)) => Ok((a, Presence::Here)),
        Ok(None) if orphan_enrolled(store, user)? => Ok((orphans::stored(user), Presence::Absent)),
        Ok(None) => Err(no_account(user)),
        Err(e) => Err(Failure::new(e.to_string())),
    }
}

/// Whether an enrollment is stored under `user` (a name with no account).
fn orphan_enrolled(store: &dyn Store, user: &str) -> Result<bool, Failure> {
    if !identity::plausible_name(user) {
        return Ok(false);
    }
    Ok(store.enrollment(&orphans::stored(user))?.is_some())
}

/// Runs `disable`.
pub fn disable(config_path: Option<&Path>, args: &DisableArgs) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let store = fleet::open_admin(&config);
    if args.orphan {
        return disable_orphan(&config, &store, &args.user);
    }
    let account = match identity::lookup(&args.user) {
        Ok(Some(a)) => a,
        Ok(None) if orphan_enrolled(&store, &args.user)? => {
            let user = &args.user;
            return Err(if config.store.kind == StoreKind::Postgres {
                Failure::new(format!(
                    "no account named `{user}` on this host; its enrollment is in the fleet store, and the account may live on other hosts; nothing was changed"
                ))
                .hint(format!(
                    "disable it on a host where the account exists; only if it was deleted everywhere: {}",
                    orphans::removal(user)
                ))
            } else {
                Failure::new(format!(
                    "no account named `{user}`, but an enrollment is stored under that name (an orphan); nothing was changed"
                ))
                .hint(format!("remove it with: {}", orphans::removal(user)))
            });
        }
        Ok(None) => return Err(no_account(&args.user)),
        Err(e) => return Err(Failure::new(e.to_string())),
    };
    match store.disable_enrollment(&account, now())? {
        Some(backup) => {
            say!(
                "Disabled twofa for {}; the enrollment is kept at {} (root only).",
                account.name,
                backup
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

/// Runs `disable --orphan NAME`: removes the enrollment stored under NAME, only if the passwd
/// database definitively has no such account (a failed lookup is not "absent").
fn disable_orphan(config: &Config, store: &dyn Store, user: &str) -> Result<(), Failure> {
    match identity::lookup(user) {
        Ok(Some(a)) => {
            return Err(Failure::new(format!(
                "`{user}` is an account on this host: --orphan only removes the enrollment of an account that no longer exists; nothing was changed"
            ))
            .hint(format!("to remove its enrollment: twofa-enroll disable {}", a.name)))
        }
        Err(e) => {
            return Err(Failure::new(format!(
                "{e}; an account that can't be looked up is not taken for a deleted one, nothing was changed"
            ))
            .hint(format!(
                "try again once the account database answers (getent passwd {user})"
            )))
        }
        Ok(None) => {}
    }
    if !identity::plausible_name(user) {
        return Err(Failure::new(format!(
            "`{user}` can't be an account name; nothing was changed"
        )));
    }
    if config.store.kind == StoreKind::Postgres {
        output::warn(&format!(
            "fleet mode: {user} is not on this host, and the enrollment is removed for every host of the fleet"
        ));
    }
    match store.disable_enrollment(&orphans::stored(user), now())? {
        Some(backup) => {
            say!(
                "Removed the enrollment of {user}, whose account no longer exists; it is kept at {backup} (root only)."
            );
            Ok(())
        }
        None => Err(Failure::new(format!(
            "nothing is enrolled under the name {user}; nothing was changed"
        ))
        .hint("twofa-enroll status --all lists the enrollments, orphans marked")),
    }
}

/// Runs `unlock`.
pub fn unlock(config_path: Option<&Path>, args: &UnlockArgs) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let account = account(&args.user)?;
    let store = fleet::open_admin(&config);
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
