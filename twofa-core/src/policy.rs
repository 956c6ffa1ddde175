//! The pure decision of what to do before a code is typed: from what is known of the user and
//! the password, and the policy, to "ask and verify", "ask, then deny", or "let through".
//!
//! The order is the security argument: the "password failed" mark is looked at before
//! anything else, so no allow/exempt decision can let a wrong password through, and until the
//! password is verified every user gets the same prompt (DESIGN "Oracles").

use crate::audit::Reason;
use crate::config::Unenrolled;

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
    /// Ask for a code like for anyone, then deny without checking, spending or counting it.
    AskThenDeny(Reason),
    /// Ask for the code and check it.
    AskAndVerify,
}

/// Decides before the prompt. `password_failed`: the stack marked the password as wrong.
pub fn plan(password_failed: bool, who: Who, unenrolled: Unenrolled) -> Plan {
    if password_failed {
        return Plan::AskThenDeny(Reason::PasswordFailed);
    }
    match (who, unenrolled) {
        (Who::Enrolled, _) => Plan::AskAndVerify,
        (Who::Unknown, _) => Plan::AskThenDeny(Reason::UnknownUser),
        (Who::NotEnrolled, Unenrolled::Deny) => Plan::AskThenDeny(Reason::NotEnrolled),
        (Who::NotEnrolled, Unenrolled::Allow) => Plan::Ignore(Reason::NotEnrolled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_password_is_never_let_through_whatever_the_policy() {
        for who in [Who::Unknown, Who::NotEnrolled, Who::Enrolled] {
            for u in [Unenrolled::Deny, Unenrolled::Allow] {
                assert_eq!(
                    plan(true, who, u),
                    Plan::AskThenDeny(Reason::PasswordFailed)
                );
            }
        }
    }

    #[test]
    fn after_a_verified_password_the_policy_decides() {
        assert_eq!(
            plan(false, Who::Enrolled, Unenrolled::Deny),
            Plan::AskAndVerify
        );
        assert_eq!(
            plan(false, Who::Enrolled, Unenrolled::Allow),
            Plan::AskAndVerify
        );
        assert_eq!(
            plan(false, Who::NotEnrolled, Unenrolled::Deny),
            Plan::AskThenDeny(Reason::NotEnrolled)
        );
        assert_eq!(
            plan(false, Who::NotEnrolled, Unenrolled::Allow),
            Plan::Ignore(Reason::NotEnrolled)
        );
        assert_eq!(
            plan(false, Who::Unknown, Unenrolled::Allow),
            Plan::AskThenDeny(Reason::UnknownUser)
        );
    }
}
