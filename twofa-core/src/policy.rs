//! The pure decision of what to do before a code is typed: from what is known of the user and
//! the password, and the policy, to "ask and verify", "ask, then deny", "let through", "grace"
//! or "enroll now".
//!
//! The order is the security argument: the "password failed" mark is looked at before
//! anything else, so no allow/exempt/grace decision can let a wrong password through, and until
//! the password is verified every user gets the same prompt (DESIGN "Oracles").

use crate::audit::Reason;
use crate::config::{Config, Unenrolled};

/// What is known about the user before asking for a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The name is no account.
    Unknown,
    /// An account with no enrollment.
    NotEnrolled,
    /// An account with a factor to check.
    Enrolled,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Let through without a code (PAM_IGNORE).
    Ignore(Reason),
    /// Let through without a code, telling the user to enroll before this Unix time.
    Grace(u64),
    /// Ask for a code like for anyone, then deny without checking, spending or counting it.
    AskThenDeny(Reason),
    /// Ask for the code and check it.
    AskAndVerify,
    /// Show a new secret as a QR code and enroll the user with one confirmed code.
    SelfEnroll,
}

/// Whether the policy spares this user a second factor here: an exempt service, a member of
/// an exempt group, or (when `enforce_groups` is set) a member of none of those groups.
/// `groups` are the account's group names.
pub fn exemption(config: &Config, service: &str, groups: &[String]) -> Option<Reason> {
    if config.exempt_services.iter().any(|s| s == service) {
        return Some(Reason::ExemptService);
    }
    if groups.iter().any(|g| config.exempt_groups.contains(g)) {
        return Some(Reason::ExemptGroup);
    }
    if !config.enforce_groups.is_empty()
        && !groups.iter().any(|g| config.enforce_groups.contains(g))
    {
        return Some(Reason::NotEnforced);
    }
    None
}

/// Whether group membership matters for this policy (so it is looked up at all).
pub fn needs_groups(config: &Config) -> bool {
    !config.exempt_groups.is_empty() || !config.enforce_groups.is_empty()
}

/// Decides before the prompt. `password_failed`: the stack marked the password as wrong;
/// `exempt`: what [`exemption`] found for a known account.
pub fn plan(
    password_failed: bool,
    who: Who,
    exempt: Option<Reason>,
    unenrolled: Unenrolled,
    now: u64,
) -> Plan {
    if password_failed {
        return Plan::AskThenDeny(Reason::PasswordFailed);
    }
    if who == Who::Unknown {
        return Plan::AskThenDeny(Reason::UnknownUser);
    }
    if let Some(reason) = exempt {
        return Plan::Ignore(reason);
    }
    match (who, unenrolled) {
        (Who::Enrolled, _) | (Who::Unknown, _) => Plan::AskAndVerify,
        (Who::NotEnrolled, Unenrolled::Deny) => Plan::AskThenDeny(Reason::NotEnrolled),
        (Who::NotEnrolled, Unenrolled::Allow) => Plan::Ignore(Reason::NotEnrolled),
        (Who::NotEnrolled, Unenrolled::Grace(until)) if now < until => Plan::Grace(until),
        (Who::NotEnrolled, Unenrolled::Grace(_)) => Plan::AskThenDeny(Reason::GraceExpired),
        (Who::NotEnrolled, Unenrolled::Enroll) => Plan::SelfEnroll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_POLICIES: [Unenrolled; 4] = [
        Unenrolled::Deny,
        Unenrolled::Allow,
        Unenrolled::Grace(2_000),
        Unenrolled::Enroll,
    ];

    #[test]
    fn a_failed_password_is_never_let_through_whatever_the_policy() {
        for who in [Who::Unknown, Who::NotEnrolled, Who::Enrolled] {
            for u in ALL_POLICIES {
                for exempt in [None, Some(Reason::ExemptGroup), Some(Reason::ExemptService)] {
                    assert_eq!(
                        plan(true, who, exempt, u, 1_000),
                        Plan::AskThenDeny(Reason::PasswordFailed)
                    );
                }
            }
        }
    }

    #[test]
    fn after_a_verified_password_the_policy_decides() {
        let p = |who, u| plan(false, who, None, u, 1_000);
        assert_eq!(p(Who::Enrolled, Unenrolled::Deny), Plan::AskAndVerify);
        assert_eq!(p(Who::Enrolled, Unenrolled::Allow), Plan::AskAndVerify);
        assert_eq!(
            p(Who::NotEnrolled, Unenrolled::Deny),
            Plan::AskThenDeny(Reason::NotEnrolled)
        );
        assert_eq!(
            p(Who::NotEnrolled, Unenrolled::Allow),
            Plan::Ignore(Reason::NotEnrolled)
        );
        assert_eq!(
            p(Who::NotEnrolled, Unenrolled::Grace(2_000)),
            Plan::Grace(2_000)
        );
        assert_eq!(
            p(Who::NotEnrolled, Unenrolled::Grace(1_000)),
            Plan::AskThenDeny(Reason::GraceExpired)
        );
        assert_eq!(p(Who::NotEnrolled, Unenrolled::Enroll), Plan::SelfEnroll);
        assert_eq!(
            p(Who::Unknown, Unenrolled::Allow),
            Plan::AskThenDeny(Reason::UnknownUser)
        );
        let exempt = plan(
            false,
            Who::Enrolled,
            Some(Reason::ExemptGroup),
            Unenrolled::Deny,
            0,
        );
        assert_eq!(exempt, Plan::Ignore(Reason::ExemptGroup));
    }

    #[test]
    fn groups_and_services_exempt_or_enforce() {
        let mut c = Config {
            exempt_services: vec!["login".into()],
            exempt_groups: vec!["backup".into()],
            ..Config::default()
        };
        let g = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(exemption(&c, "login", &g(&[])), Some(Reason::ExemptService));
        assert_eq!(
            exemption(&c, "sshd", &g(&["users", "backup"])),
            Some(Reason::ExemptGroup)
        );
        assert_eq!(exemption(&c, "sshd", &g(&["users"])), None);
        c.enforce_groups = vec!["admins".into()];
        assert_eq!(
            exemption(&c, "sshd", &g(&["users"])),
            Some(Reason::NotEnforced)
        );
        assert_eq!(exemption(&c, "sshd", &g(&["users", "admins"])), None);
        assert!(needs_groups(&c));
        assert!(!needs_groups(&Config::default()));
    }
}
