//! Enrollments whose account no longer exists (see [`crate::orphans`]): each one a warning
//! with its fix on a host with its own files; in fleet mode only "not on this host", since
//! the account may live on another host of the fleet.

use twofa_core::config::{Config, StoreKind};
use twofa_core::fleet;
use twofa_core::store::Store;

use super::Finding;
use crate::orphans::{self, Presence};

const CHECK: &str = "enrollments";

/// Most names listed in one summary line.
const LISTED: usize = 10;

/// Looks every enrolled name up; a store that can't be read is left to the storage and store
/// checks, which say why.
pub(super) fn check_orphans(config: &Config) -> Vec<Finding> {
    let Ok(names) = fleet::open_admin(config).enrolled_names() else {
        return Vec::new();
    };
    let found: Vec<(String, Presence)> = names
        .into_iter()
        .map(|n| {
            let p = Presence::of(&n);
            (n, p)
        })
        .collect();
    findings(&found, config.store.kind == StoreKind::Postgres)
}

/// `a, b, c and 4 more`.
fn list(names: &[&str]) -> String {
    let mut text = names
        .iter()
        .take(LISTED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED {
        text.push_str(&format!(" and {} more", names.len() - LISTED));
    }
    text
}

/// The findings for enrolled names and whether each has an account here.
fn findings(found: &[(String, Presence)], fleet: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let absent: Vec<&str> = found
        .iter()
        .filter(|(_, p)| *p == Presence::Absent)
        .map(|(n, _)| n.as_str())
        .collect();
    let unknown: Vec<(&str, &str)> = found
        .iter()
        .filter_map(|(n, p)| match p {
            Presence::Unknown(why) => Some((n.as_str(), why.as_str())),
            _ => None,
        })
        .collect();
    if fleet {
        if !absent.is_empty() {
            out.push(Finding::ok(
                CHECK,
                format!(
                    "{} enrolled in the fleet store not on this host (they may live on other hosts): {}",
                    absent.len(),
                    list(&absent)
                ),
            ));
        }
    } else {
        for name in &absent {
            out.push(Finding::warning(
                CHECK,
                format!(
                    "{name} is enrolled, but no account of that name exists (an orphan): {}",
                    orphans::inheritance_warning(name)
                ),
                format!(
                    "{} (the enrollment is kept as a root-only backup)",
                    orphans::removal(name)
                ),
            ));
        }
    }
    if let Some((_, why)) = unknown.first() {
        let names: Vec<&str> = unknown.iter().map(|(n, _)| *n).collect();
        out.push(Finding::warning(
            CHECK,
            format!(
                "{} enrolled account(s) could not be looked up, so whether they still exist is unknown ({why}): {}",
                names.len(),
                list(&names)
            ),
            "check the account database: getent passwd NAME (is SSSD or the LDAP server reachable?)",
        ));
    }
    if out.is_empty() && !found.is_empty() {
        out.push(Finding::ok(
            CHECK,
            format!(
                "{} enrolled, each with an account on this host",
                found.len()
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn found(list: &[(&str, Presence)]) -> Vec<(String, Presence)> {
        list.iter()
            .map(|(n, p)| (n.to_string(), p.clone()))
            .collect()
    }

    #[test]
    fn each_orphan_is_a_warning_with_its_removal_and_the_inheritance_risk() {
        let f = findings(
            &found(&[("alice", Presence::Here), ("bob", Presence::Absent)]),
            false,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Warning);
        assert!(f[0].message.starts_with("bob is enrolled, but no account"));
        assert!(f[0].message.contains("would inherit this enrollment"));
        assert!(f[0].fix.starts_with("twofa-enroll disable --orphan bob"));
    }

    #[test]
    fn in_a_fleet_an_absent_account_is_only_not_on_this_host() {
        let f = findings(
            &found(&[("alice", Presence::Absent), ("bob", Presence::Absent)]),
            true,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Ok);
        assert!(
            f[0].message.contains("not on this host"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.ends_with("alice, bob"));
        assert!(!f[0].message.contains("disable") && f[0].fix.is_empty());
    }

    #[test]
    fn a_failed_lookup_is_no_orphan() {
        let f = findings(
            &found(&[("carol", Presence::Unknown("sssd is down".into()))]),
            false,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Warning);
        assert!(f[0]
            .message
            .contains("whether they still exist is unknown (sssd is down): carol"));
        assert!(!f[0].fix.contains("disable"));
    }

    #[test]
    fn long_lists_are_cut() {
        let many: Vec<(String, Presence)> = (0..12)
            .map(|i| (format!("u{i:02}"), Presence::Absent))
            .collect();
        let f = findings(&many, true);
        assert!(f[0].message.ends_with("u09 and 2 more"), "{}", f[0].message);
        assert_eq!(
            findings(&found(&[("alice", Presence::Here)]), false)[0].message,
            "1 enrolled, each with an account on this host"
        );
    }
}
