//! What every command starts from: the policy file (destination patterns compiled), the
//! account, the time.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use twofa_core::config::{self, Config};
use twofa_core::fleet::{self, Configured};
use twofa_core::identity::{self, Account};

use crate::output::{self, Failure};

/// Unix time now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Loads the policy named by --config, or the default one, destination patterns compiled.
pub fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    config::load(path)
        .and_then(|c| check_destination_patterns(&c).map(|()| c))
        .map_err(|e| Failure::new(e.to_string()).hint("check it with: twofa-enroll check-config"))
}

/// Compiles the policy's `destination_pattern`s, with the file, line and key of the first bad
/// one. The module's loader can't (it links no regex engine, to keep pam_twofa.so small), so
/// every command that loads the policy here does: an invalid pattern is still refused where
/// the admin works, rather than found by twofa-deliver refusing every script code.
pub fn check_destination_patterns(config: &Config) -> Result<(), config::ConfigError> {
    config::check_patterns(config, |p| {
        compile_pattern(p).map(drop).map_err(|e| e.to_string())
    })
}

/// A destination pattern as twofa-deliver compiles it (the same crate, the same syntax).
pub fn compile_pattern(pattern: &str) -> Result<regex_lite::Regex, regex_lite::Error> {
    regex_lite::Regex::new(pattern)
}

/// Resolves USER in the passwd database.
pub fn account(user: &str) -> Result<Account, Failure> {
    match identity::lookup(user) {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(no_account(user)),
        Err(e) => Err(Failure::new(e.to_string())),
    }
}

/// The failure for a name the passwd database does not have.
pub fn no_account(user: &str) -> Failure {
    Failure::new(format!("no account named `{user}`"))
        .hint("twofa enrolls accounts of the passwd database (getent passwd NAME)")
}

/// What a command about one user works with.
pub struct ForUser {
    pub config: Config,
    pub account: Account,
    pub store: Configured,
}

/// Root checked, then the policy, the account and the store (fleet or files, as the policy
/// says): how every command about one user starts.
pub fn for_user(config_path: Option<&Path>, user: &str) -> Result<ForUser, Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let account = account(user)?;
    let store = fleet::open_admin(&config);
    Ok(ForUser {
        config,
        account,
        store,
    })
}
