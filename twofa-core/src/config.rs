//! The policy file, `/etc/twofa/twofa.toml`: parsed, validated, and every error naming the
//! file, the key and the line.
//!
//! No file at the default path means the documented defaults; a path given explicitly
//! (`config=` of the module, `--config` of the CLI) that does not exist is an error, so a typo
//! in a PAM stack can't silently fall back to defaults. A key that a later version of twofa
//! supports is reported as "not supported yet", any other unknown key as "unknown key": never
//! ignored, because an admin who wrote `enforce_groups = [...]` must not believe it is enforced.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::delivery::DeliveryPolicy;
use crate::otp::{Algorithm, Params, MAX_DIGITS, MIN_DIGITS};
use crate::securefile::{self, FileError, Rules};
use crate::state::Lockout;
use crate::tomlfile::{Doc, FieldError, Fields};

/// Where the policy lives unless `config=`/`--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/twofa/twofa.toml";
/// Where enrollments and state live unless `[storage] dir` says otherwise.
pub const DEFAULT_STORAGE: &str = "/var/lib/twofa";
/// The only config format version.
pub const VERSION: i64 = 1;
/// Largest accepted `window`: each step more is another code an attacker may guess.
pub const MAX_WINDOW: u64 = 10;

/// What happens to a user with no enrollment once the password is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unenrolled {
    /// Asked for a code like everyone, then denied.
    Deny,
    /// Let through without a code (PAM_IGNORE).
    Allow,
    /// Let through with a line telling them to enroll, until this Unix time (the end of the
    /// `grace_until` day, UTC); denied from then on.
    Grace(u64),
    /// Shown a QR code in the login conversation and asked for one code to enroll.
    Enroll,
}

/// The `[totp]` table: defaults for new enrollments, and the verification window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    /// Shown in the app beside the account name.
    pub issuer: String,
    /// Hash, digits and period given to new enrollments (existing ones keep theirs).
    pub params: Params,
    /// Steps accepted either side of now, for clock drift.
    pub window: u64,
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from (or the default path when defaults were used), for messages.
    pub source: PathBuf,
    /// `[totp]`.
    pub totp: Totp,
    /// `[policy] unenrolled`.
    pub unenrolled: Unenrolled,
    /// `[policy] max_failures`, `failure_window_seconds`, `lockout_seconds`.
    pub lockout: Lockout,
    /// `[policy] recovery_codes`: how many single-use codes a new enrollment gets (0: none).
    pub recovery_codes: usize,
    /// `[hotp] look_ahead`: how many counters past the expected one a code may be.
    pub hotp_look_ahead: u64,
    /// `[policy] enrollment_max_age_days`: older enrollments are reported (0: never).
    pub enrollment_max_age_days: u64,
    /// `[policy] enforce_groups`: if not empty, only members must use a second factor.
    pub enforce_groups: Vec<String>,
    /// `[policy] exempt_groups`: members skip the second factor (each skip logged).
    pub exempt_groups: Vec<String>,
    /// `[policy] exempt_services`: PAM services where the second factor is skipped.
    pub exempt_services: Vec<String>,
    /// `[delivery]`: out-of-band methods.
    pub delivery: DeliveryPolicy,
    /// `[policy] factors`: the factors offered, in order (the first a user has is asked first;
    /// an out-of-band one after it is a fallback the user asks for with an empty answer).
    pub factors: Vec<String>,
    /// `[policy] remember_host_seconds`: no code again for the same user and remote host
    /// within this time after a code login (0: off; never for an empty remote host).
    pub remember_host_seconds: u64,
    /// `[storage] dir`.
    pub storage_dir: PathBuf,
    /// `[store]`: where enrollments and state live (files, or the fleet database).
    pub store: StoreSettings,
    /// `[policy] on_store_error`: what a login does when the fleet store can't be reached.
    pub on_store_error: OnStoreError,
}

/// Default fleet store helper.
pub const DEFAULT_STORE_HELPER: &str = "/usr/lib/twofa/twofa-store";
/// Default fleet store connection settings (root-only: a password and the fleet key's path).
pub const DEFAULT_STORE_SETTINGS: &str = "/etc/twofa/store.toml";
/// Default deadline for each answer of the fleet store.
pub const DEFAULT_STORE_TIMEOUT_MS: u64 = 3000;

/// `[store] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Files under `[storage] dir` (the default).
    Files,
    /// PostgreSQL shared by a fleet of hosts, through the store helper.
    Postgres,
}

/// The `[store]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// `kind`.
    pub kind: StoreKind,
    /// `helper`: the program that talks to the database (the module carries no client).
    pub helper: PathBuf,
    /// `settings`: the helper's connection settings file.
    pub settings: PathBuf,
    /// `timeout_ms`: each store answer must come within this, or the helper is killed.
    pub timeout: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: StoreKind::Files,
            helper: PathBuf::from(DEFAULT_STORE_HELPER),
            settings: PathBuf::from(DEFAULT_STORE_SETTINGS),
            timeout: Duration::from_millis(DEFAULT_STORE_TIMEOUT_MS),
        }
    }
}

/// `[policy] on_store_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Deny the login (the default): fleet-wide replay protection and lockout always hold.
    Deny,
    /// Use this host's own files for the login: it goes on, but a code used on another host
    /// may be used again here and failures elsewhere don't count.
    Local,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: PathBuf::from(DEFAULT_PATH),
            totp: Totp {
                issuer: "twofa".to_string(),
                params: Params::DEFAULT,
                window: 1,
            },
            unenrolled: Unenrolled::Deny,
            lockout: Lockout::DEFAULT,
            recovery_codes: 10,
            hotp_look_ahead: 10,
            enrollment_max_age_days: 180,
            enforce_groups: Vec::new(),
            exempt_groups: Vec::new(),
            exempt_services: Vec::new(),
            remember_host_seconds: 0,
            delivery: DeliveryPolicy::default(),
            factors: DEFAULT_FACTORS.iter().map(|s| s.to_string()).collect(),
            storage_dir: PathBuf::from(DEFAULT_STORAGE),
            store: StoreSettings::default(),
            on_store_error: OnStoreError::Deny,
        }
    }
}

/// Why the policy could not be used.
#[derive(Debug)]
pub enum ConfigError {
    /// An explicitly named file does not exist.
    Missing(PathBuf),
    /// The file could not be opened safely (owner, mode, symlink, size...).
    File(FileError),
    /// A syntax error or a bad key or value.
    Field(PathBuf, FieldError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(p) => write!(f, "{}: no such file", p.display()),
            ConfigError::File(e) => write!(f, "{e}"),
            ConfigError::Field(p, e) if e.line.is_some() => write!(f, "{}:{e}", p.display()),
            ConfigError::Field(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Keys of later issues: known, documented, and refused with "not supported yet".
const LATER_POLICY_KEYS: &[&str] = &["fail_delay_ms"];

/// Every factor twofa knows, in the default order.
pub const DEFAULT_FACTORS: &[&str] = &["totp", "hotp", "recovery", "email", "pushover", "script"];
const LATER_TABLES: &[&str] = &["recovery", "fleet"];
/// Largest HOTP look-ahead: every counter more is another code an attacker may guess.
pub const MAX_LOOK_AHEAD: u64 = 100;

/// Loads the policy: `explicit` must exist; without it, a missing default file means defaults.
pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_PATH));
    match securefile::read_file(path, &Rules::POLICY) {
        Ok(Some(text)) => parse(&text, path),
        Ok(None) if explicit.is_none() => Ok(Config::default()),
        Ok(None) => Err(ConfigError::Missing(path.to_path_buf())),
        Err(e) => Err(ConfigError::File(e)),
    }
}

/// Parses and validates policy text; `path` is only used in messages and `source`.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let field = |e| ConfigError::Field(path.to_path_buf(), e);
    let doc = Doc::parse(text).map_err(field)?;
    let mut root = doc.root();
    let mut config = Config {
        source: path.to_path_buf(),
        ..Config::default()
    };
    read_root(&mut root, &mut config).map_err(field)?;
    Ok(config)
}

fn read_root(root: &mut Fields<'_>, config: &mut Config) -> Result<(), FieldError> {
    match root.integer("version")? {
        Some(VERSION) => {}
        Some(v) => {
            return Err(root.error(
                "version",
                format!("version {v} is not known to this twofa (it reads version {VERSION})"),
            ))
        }
        None => {
            return Err(FieldError {
                line: None,
                key: "version".into(),
                message: format!("missing; the first line must be `version = {VERSION}`"),
            })
        }
    }
    if let Some(mut totp) = root.table("totp")? {
        read_totp(&mut totp, &mut config.totp)?;
        totp.finish()?;
    }
    if let Some(mut policy) = root.table("policy")? {
        let grace_until = policy.date("grace_until")?;
        if let Some(v) = policy.string("unenrolled")? {
            config.unenrolled = match (v, grace_until) {
                ("deny", None) => Unenrolled::Deny,
                ("allow", None) => Unenrolled::Allow,
                ("enroll", None) => Unenrolled::Enroll,
                ("grace", Some(day)) => {
                    Unenrolled::Grace(u64::try_from(day.saturating_add(1)).unwrap_or(0) * 86_400)
                }
                ("grace", None) => {
                    return Err(policy.error(
                        "unenrolled",
                        "\"grace\" needs grace_until, the last day of grace (like 2026-12-31)",
                    ))
                }
                ("deny" | "allow" | "enroll", Some(_)) => {
                    return Err(
                        policy.error("grace_until", "only applies to unenrolled = \"grace\"")
                    )
                }
                (other, _) => {
                    return Err(policy.error(
                        "unenrolled",
                        format!(
                            "must be \"deny\", \"allow\", \"grace\" or \"enroll\", not \"{other}\""
                        ),
                    ))
                }
            };
        } else if grace_until.is_some() {
            return Err(policy.error("grace_until", "only applies to unenrolled = \"grace\""));
        }
        if let Some(d) = policy.unsigned("enrollment_max_age_days", 0, 36_500)? {
            config.enrollment_max_age_days = d;
        }
        for (key, list) in [
            ("enforce_groups", &mut config.enforce_groups),
            ("exempt_groups", &mut config.exempt_groups),
            ("exempt_services", &mut config.exempt_services),
        ] {
            if let Some(names) = policy.strings(key)? {
                if names
                    .iter()
                    .any(|n| n.is_empty() || n.contains(char::is_whitespace))
                {
                    return Err(policy.error(key, "names must be non-empty, without spaces"));
                }
                *list = names.into_iter().map(str::to_string).collect();
            }
        }
        if let Some(list) = policy.strings("factors")? {
            if let Some(bad) = list.iter().find(|f| !DEFAULT_FACTORS.contains(f)) {
                return Err(policy.error(
                    "factors",
                    format!(
                        "unknown factor \"{bad}\" (known: {})",
                        DEFAULT_FACTORS.join(", ")
                    ),
                ));
            }
            if list.is_empty() {
                return Err(policy.error("factors", "must name at least one factor"));
            }
            config.factors = list.into_iter().map(str::to_string).collect();
        }
        if let Some(s) = policy.unsigned("remember_host_seconds", 0, 30 * 86_400)? {
            config.remember_host_seconds = s;
        }
        if let Some(n) = policy.unsigned("max_failures", 0, 100_000)? {
            config.lockout.max_failures = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(w) = policy.unsigned("failure_window_seconds", 1, 7 * 86_400)? {
            config.lockout.window = w;
        }
        if let Some(d) = policy.unsigned("lockout_seconds", 1, 7 * 86_400)? {
            config.lockout.duration = d;
        }
        if let Some(n) = policy.unsigned("recovery_codes", 0, 100)? {
            config.recovery_codes = usize::try_from(n).unwrap_or(10);
        }
        match policy.string("on_store_error")? {
            None => {}
            Some("deny") => config.on_store_error = OnStoreError::Deny,
            Some("local") => config.on_store_error = OnStoreError::Local,
            Some(other) => {
                return Err(policy.error(
                    "on_store_error",
                    format!("must be \"deny\" or \"local\", not \"{other}\""),
                ))
            }
        }
        for key in LATER_POLICY_KEYS {
            policy.not_supported_yet(key)?;
        }
        policy.finish()?;
    }
    if let Some(mut hotp) = root.table("hotp")? {
        if let Some(n) = hotp.unsigned("look_ahead", 0, MAX_LOOK_AHEAD)? {
            config.hotp_look_ahead = n;
        }
        hotp.finish()?;
    }
    if let Some(mut delivery) = root.table("delivery")? {
        config.delivery = crate::delivery::read(&mut delivery)?;
        delivery.finish()?;
    }
    if let Some(mut storage) = root.table("storage")? {
        if let Some(dir) = storage.string("dir")? {
            let p = PathBuf::from(dir);
            if !p.is_absolute() || dir.contains('\0') {
                return Err(storage.error("dir", "must be an absolute path"));
            }
            config.storage_dir = p;
        }
        storage.finish()?;
    }
    if let Some(mut store) = root.table("store")? {
        read_store(&mut store, &mut config.store)?;
        store.finish()?;
    }
    for key in LATER_TABLES {
        root.not_supported_yet(key)?;
    }
    root.finish()
}

fn read_store(store: &mut Fields<'_>, out: &mut StoreSettings) -> Result<(), FieldError> {
    match store.string("kind")? {
        None | Some("files") => out.kind = StoreKind::Files,
        Some("postgres") => out.kind = StoreKind::Postgres,
        Some(other) => {
            return Err(store.error(
                "kind",
                format!("must be \"files\" or \"postgres\", not \"{other}\""),
            ))
        }
    }
    let absolute = |store: &Fields<'_>, key: &str, p: &str| {
        if p.starts_with('/') && !p.contains('\0') {
            Ok(PathBuf::from(p))
        } else {
            Err(store.error(key, "must be an absolute path"))
        }
    };
    if let Some(p) = store.string("helper")? {
        out.helper = absolute(store, "helper", p)?;
    }
    if let Some(p) = store.string("settings")? {
        out.settings = absolute(store, "settings", p)?;
    }
    if let Some(ms) = store.unsigned("timeout_ms", 100, 60_000)? {
        out.timeout = Duration::from_millis(ms);
    }
    Ok(())
}

fn read_totp(totp: &mut Fields<'_>, out: &mut Totp) -> Result<(), FieldError> {
    if let Some(issuer) = totp.string("issuer")? {
        if issuer.is_empty() || issuer.contains(':') || issuer.chars().any(char::is_control) {
            return Err(totp.error(
                "issuer",
                "must be non-empty, without ':' or control characters",
            ));
        }
        out.issuer = issuer.to_string();
    }
    if let Some(alg) = totp.string("algorithm")? {
        out.params.algorithm = Algorithm::parse(alg).ok_or_else(|| {
            totp.error(
                "algorithm",
                format!("must be \"SHA1\", \"SHA256\" or \"SHA512\", not \"{alg}\""),
            )
        })?;
    }
    if let Some(d) = totp.unsigned("digits", u64::from(MIN_DIGITS), u64::from(MAX_DIGITS))? {
        out.params.digits = u32::try_from(d).unwrap_or(MIN_DIGITS);
    }
    if let Some(p) = totp.unsigned("period", 1, 3600)? {
        out.params.period = p;
    }
    if let Some(w) = totp.unsigned("window", 0, MAX_WINDOW)? {
        out.window = w;
    }
    Ok(())
}

/// Checks the policy's destination patterns with `compile` (a regex engine's constructor: the
/// caller links one, this crate does not). The error is the one a policy with an invalid
/// pattern always got: file, line, key, and `compile`'s reason, e.g.
/// ``/etc/twofa/twofa.toml:9: key `delivery.script.destination_pattern`: not a valid regular
/// expression: ...``.
pub fn check_patterns(
    config: &Config,
    compile: impl Fn(&str) -> Result<(), String>,
) -> Result<(), ConfigError> {
    for m in &config.delivery.methods {
        let Some(p) = &m.destination_pattern else {
            continue;
        };
        if let Err(why) = compile(p.as_str()) {
            return Err(ConfigError::Field(
                config.source.clone(),
                FieldError {
                    line: p.line(),
                    key: format!("delivery.{}.destination_pattern", m.method.name()),
                    message: format!("not a valid regular expression: {why}"),
                },
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, String> {
        parse(text, Path::new("/etc/twofa/twofa.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn shipped_example_parses_to_the_defaults() -> Result<(), String> {
        let text = include_str!("../../conf/twofa.toml");
        let c = parse_str(text)?;
        let d = Config::default();
        assert_eq!(
            (c.totp, c.unenrolled, c.storage_dir),
            (d.totp, d.unenrolled, d.storage_dir)
        );
        Ok(())
    }

    #[test]
    fn every_key_is_read() -> Result<(), String> {
        let c = parse_str(
            "version = 1\n[totp]\nissuer = \"corp\"\nalgorithm = \"sha512\"\ndigits = 8\nperiod = 60\nwindow = 2\n\
             [policy]\nunenrolled = \"allow\"\nmax_failures = 3\nfailure_window_seconds = 60\nlockout_seconds = 120\n[storage]\ndir = \"/srv/twofa\"\n",
        )?;
        assert_eq!(c.totp.issuer, "corp");
        assert_eq!(
            c.totp.params,
            Params {
                algorithm: Algorithm::Sha512,
                digits: 8,
                period: 60
            }
        );
        assert_eq!(c.totp.window, 2);
        assert_eq!(c.unenrolled, Unenrolled::Allow);
        assert_eq!(
            c.lockout,
            Lockout {
                max_failures: 3,
                window: 60,
                duration: 120
            }
        );
        assert_eq!(c.storage_dir, PathBuf::from("/srv/twofa"));
        Ok(())
    }

    #[test]
    fn errors_name_file_key_and_line() {
        let cases = [
            ("version = 1\n[totp]\ndigits = 9\n", "/etc/twofa/twofa.toml:3: key `totp.digits`: must be from 6 to 8, not 9"),
            ("version = 1\n[totp]\nperiod = 0\n", "/etc/twofa/twofa.toml:3: key `totp.period`: must be from 1 to 3600, not 0"),
            ("version = 1\n\n[policy]\nunenrolled = \"maybe\"\n", "/etc/twofa/twofa.toml:4: key `policy.unenrolled`: must be \"deny\", \"allow\", \"grace\" or \"enroll\", not \"maybe\""),
            ("version = 1\n[policy]\nfactors = []\n", "/etc/twofa/twofa.toml:3: key `policy.factors`: must name at least one factor"),
            ("version = 1\n[policy]\nfactors = [\"sms\"]\n", "/etc/twofa/twofa.toml:3: key `policy.factors`: unknown factor \"sms\" (known: totp, hotp, recovery, email, pushover, script)"),
            ("version = 1\n[policy]\nunenrolled = \"grace\"\n", "/etc/twofa/twofa.toml:3: key `policy.unenrolled`: \"grace\" needs grace_until, the last day of grace (like 2026-12-31)"),
            ("version = 1\n[policy]\ngrace_until = \"2026-02-30\"\nunenrolled = \"grace\"\n", "/etc/twofa/twofa.toml:3: key `policy.grace_until`: must be a date like 2026-12-31"),
            ("version = 1\n[policy]\ngrace_until = 2026-12-31\n", "/etc/twofa/twofa.toml:3: key `policy.grace_until`: only applies to unenrolled = \"grace\""),
            ("version = 1\n[policy]\nexempt_groups = [\"a b\"]\n", "/etc/twofa/twofa.toml:3: key `policy.exempt_groups`: names must be non-empty, without spaces"),
            ("version = 1\n[policy]\nlockout_seconds = 0\n", "/etc/twofa/twofa.toml:3: key `policy.lockout_seconds`: must be from 1 to 604800, not 0"),

            ("version = 1\n[totp]\ncolor = 1\n", "/etc/twofa/twofa.toml:3: key `totp.color`: unknown key"),
            ("version = 1\nfoo = 1\n", "/etc/twofa/twofa.toml:2: key `foo`: unknown key"),
            ("version = 2\n", "/etc/twofa/twofa.toml:1: key `version`: version 2 is not known to this twofa (it reads version 1)"),
            ("version = 1\n[totp]\nalgorithm = \"MD5\"\n", "/etc/twofa/twofa.toml:3: key `totp.algorithm`: must be \"SHA1\", \"SHA256\" or \"SHA512\", not \"MD5\""),
            ("version = 1\n[store]\nkind = \"mysql\"\n", "/etc/twofa/twofa.toml:3: key `store.kind`: must be \"files\" or \"postgres\", not \"mysql\""),
            ("version = 1\n[store]\nkind = \"postgres\"\nhelper = \"twofa-store\"\n", "/etc/twofa/twofa.toml:4: key `store.helper`: must be an absolute path"),
            ("version = 1\n[store]\ntimeout_ms = 5\n", "/etc/twofa/twofa.toml:3: key `store.timeout_ms`: must be from 100 to 60000, not 5"),
            ("version = 1\n[policy]\non_store_error = \"allow\"\n", "/etc/twofa/twofa.toml:3: key `policy.on_store_error`: must be \"deny\" or \"local\", not \"allow\""),
            ("version = 1\n[fleet]\n", "/etc/twofa/twofa.toml:2: key `fleet`: not supported yet by this version of twofa"),
            ("version = 1\n[storage]\ndir = \"relative\"\n", "/etc/twofa/twofa.toml:3: key `storage.dir`: must be an absolute path"),
            ("[totp]\n", "/etc/twofa/twofa.toml: key `version`: missing; the first line must be `version = 1`"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_str(text).err().as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn a_named_file_that_does_not_exist_is_an_error() {
        let e = load(Some(Path::new("/nonexistent/twofa.toml")));
        assert!(matches!(e, Err(ConfigError::Missing(_))));
    }

    fn policy(text: &str) -> Result<Config, String> {
        parse(text, Path::new("/etc/twofa/twofa.toml")).map_err(|e| e.to_string())
    }

    /// A stand-in regex engine: the core links none.
    fn only_parens_are_invalid(p: &str) -> Result<(), String> {
        if p.contains('(') {
            Err("unclosed group".into())
        } else {
            Ok(())
        }
    }

    #[test]
    fn an_invalid_pattern_is_reported_by_check_patterns_with_file_line_and_key(
    ) -> Result<(), String> {
        let c = policy(
            "version = 1\n[delivery.script]\ncommand = \"/x\"\ndestination_pattern = \"(\"\n",
        )?;
        let err = check_patterns(&c, only_parens_are_invalid)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("/etc/twofa/twofa.toml:4: key `delivery.script.destination_pattern`: not a valid regular expression: unclosed group")
        );
        let c = policy("version = 1\n[delivery.script]\ncommand = \"/x\"\ndestination_pattern = \"^[0-9]+$\"\n")?;
        assert!(check_patterns(&c, only_parens_are_invalid).is_ok());
        // No pattern: nothing to compile.
        let c = policy("version = 1\n[delivery.script]\ncommand = \"/x\"\n")?;
        assert!(check_patterns(&c, |_| Err("called".into())).is_ok());
        Ok(())
    }
}
