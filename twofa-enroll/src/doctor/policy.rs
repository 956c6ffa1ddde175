//! The policy file (twofa.toml): whether it loads, and the ways in without a code it opens.

use std::path::{Path, PathBuf};

use twofa_core::config::{self, Config, Unenrolled, DEFAULT_PATH};

use super::pam::Stack;
use super::Finding;

/// Checks the policy the module will load (`config_path`, else the first stack's `config=`,
/// else the default) and every other `config=` a stack names; returns the findings and the
/// first policy (the defaults if it doesn't load).
pub(super) fn check_configs(
    config_path: Option<&Path>,
    stacks: &[Stack],
) -> (Vec<Finding>, Config) {
    let primary = config_path
        .map(Path::to_path_buf)
        .or_else(|| stacks.iter().find_map(|s| s.config_arg.clone()));
    let mut findings = Vec::new();
    let mut checked: Vec<Option<PathBuf>> = Vec::new();
    let (config_finding, loaded) = check_config(primary.as_deref());
    findings.push(config_finding);
    checked.push(primary.clone());
    for other in stacks.iter().filter_map(|s| s.config_arg.clone()) {
        if !checked.contains(&Some(other.clone())) {
            checked.push(Some(other.clone()));
            findings.push(check_config(Some(&other)).0);
        }
    }
    (findings, loaded.unwrap_or_default())
}

/// Whether the policy file at `path` (the default when `None`) loads, and the policy.
fn check_config(path: Option<&Path>) -> (Finding, Option<Config>) {
    let shown = path.map_or(DEFAULT_PATH.to_string(), |p| p.display().to_string());
    match config::load(path) {
        Ok(c) if path.is_none() && !Path::new(DEFAULT_PATH).exists() => (
            Finding::ok(
                "config",
                format!("{shown} is not present: the defaults apply"),
            ),
            Some(c),
        ),
        Ok(c) => match crate::context::check_destination_patterns(&c) {
            Ok(()) => (
                Finding::ok(
                    "config",
                    format!("{shown}: valid, root's, not writable by others"),
                ),
                Some(c),
            ),
            // The module loads it (it does not compile patterns), so logins go on; only the
            // script method is broken.
            Err(e) => (
                Finding::error(
                    "config",
                    format!("{e}: twofa-deliver refuses every script code"),
                    format!("fix it, then check with: twofa-enroll check-config {shown}"),
                ),
                Some(c),
            ),
        },
        Err(e) => (
            Finding::error(
                "config",
                format!("{e}: the module refuses every login (fail closed)"),
                format!("fix it, then check with: twofa-enroll check-config {shown}"),
            ),
            None,
        ),
    }
}

/// Can the code-checking line return PAM_IGNORE (someone let in without a code)? Then a later
/// line must succeed, or libpam ends the stack in PAM_PERM_DENIED.
pub(super) fn may_ignore(config: &Config) -> bool {
    matches!(config.unenrolled, Unenrolled::Allow | Unenrolled::Grace(_))
        || !config.enforce_groups.is_empty()
        || !config.exempt_groups.is_empty()
        || !config.exempt_services.is_empty()
}

/// Seconds since the epoch, to tell whether a grace period still runs.
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Ways in without a code that the policy itself opens.
pub(super) fn policy_ways_in(config: &Config, now: u64) -> Vec<String> {
    let mut out = Vec::new();
    match config.unenrolled {
        Unenrolled::Allow => out.push(
            "unenrolled = \"allow\": users with no enrollment log in without a code".to_string(),
        ),
        Unenrolled::Grace(until) if until > now => out.push(format!(
            "unenrolled = \"grace\": users with no enrollment log in without a code until {}",
            crate::output::utc(until)
        )),
        Unenrolled::Enroll => out.push(
            "unenrolled = \"enroll\": users with no enrollment enroll at their next login"
                .to_string(),
        ),
        Unenrolled::Grace(_) | Unenrolled::Deny => {}
    }
    if !config.exempt_groups.is_empty() {
        out.push(format!(
            "exempt_groups: members of {} log in without a code",
            config.exempt_groups.join(", ")
        ));
    }
    if !config.exempt_services.is_empty() {
        out.push(format!(
            "exempt_services: {} ask no code",
            config.exempt_services.join(", ")
        ));
    }
    if !config.enforce_groups.is_empty() {
        out.push(format!(
            "enforce_groups: only members of {} need a code",
            config.enforce_groups.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_opens_ways_in_only_while_they_last() {
        let mut c = Config::default();
        assert_eq!(policy_ways_in(&c, 1000), Vec::<String>::new());
        c.unenrolled = Unenrolled::Grace(2000);
        assert_eq!(policy_ways_in(&c, 1000).len(), 1);
        assert_eq!(policy_ways_in(&c, 3000), Vec::<String>::new());
        assert!(!may_ignore(&Config::default()));
        c.exempt_services = vec!["login".into()];
        assert!(may_ignore(&c));
        assert_eq!(
            policy_ways_in(&c, 3000),
            ["exempt_services: login ask no code"]
        );
    }
}
