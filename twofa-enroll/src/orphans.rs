//! Enrollments whose account is gone: an orphan is an enrollment whose name the passwd
//! database (NSS) says definitively does not exist.
//!
//! Only a definite "no such account" makes an orphan: a lookup that fails (SSSD offline, an
//! LDAP server down) says nothing about the account, and is shown as such. An orphan matters
//! because enrollments are keyed by name: a new account created with that name would inherit
//! the enrollment, second factor and recovery codes included. In fleet mode the enrollments
//! come from the database, shared by every host: an account absent here may live elsewhere,
//! so it is only "not on this host", and nothing suggests removing it.

use twofa_core::identity::{self, Account};

/// Whether an enrolled name has an account on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The passwd database has it.
    Here,
    /// The passwd database says there is no such account.
    Absent,
    /// The passwd database could not be asked; why.
    Unknown(String),
}

impl Presence {
    /// Looks `name` up as stored in the enrollment.
    pub fn of(name: &str) -> Presence {
        match identity::lookup(name) {
            Ok(Some(_)) => Presence::Here,
            Ok(None) => Presence::Absent,
            Err(e) => Presence::Unknown(e.to_string()),
        }
    }

    /// `true` / `false` / `null` (could not be asked), for `--json`.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Presence::Here => serde_json::Value::Bool(true),
            Presence::Absent => serde_json::Value::Bool(false),
            Presence::Unknown(_) => serde_json::Value::Null,
        }
    }

    /// The short note `status --all` shows, if any: `orphan` (files) or `not on this host`
    /// (fleet), or that the account could not be looked up.
    pub fn note(&self, fleet: bool) -> Option<&'static str> {
        match (self, fleet) {
            (Presence::Here, _) => None,
            (Presence::Absent, false) => Some("orphan"),
            (Presence::Absent, true) => Some("not on this host"),
            (Presence::Unknown(_), _) => Some("lookup failed"),
        }
    }
}

/// The account an enrollment is stored under, for reaching an orphan by its stored name (the
/// stores key enrollments by name only; uid and gid are not looked at).
pub fn stored(name: &str) -> Account {
    Account {
        name: name.to_string(),
        uid: 0,
        gid: 0,
    }
}

/// What a new account of an orphan's name would get, said where orphans are reported.
pub fn inheritance_warning(name: &str) -> String {
    format!("a new account created with the name {name} would inherit this enrollment (its second factor and recovery codes)")
}

/// The command that removes an orphan (one name at a time).
pub fn removal(name: &str) -> String {
    format!("twofa-enroll disable --orphan {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_definite_no_makes_an_orphan_and_never_in_a_fleet() {
        assert_eq!(Presence::of("root"), Presence::Here);
        assert_eq!(Presence::of("twofa-no-such-user-x9"), Presence::Absent);
        assert_eq!(Presence::Absent.note(false), Some("orphan"));
        assert_eq!(Presence::Absent.note(true), Some("not on this host"));
        assert_eq!(
            Presence::Unknown("sssd".into()).note(false),
            Some("lookup failed")
        );
        assert_eq!(Presence::Here.note(false), None);
    }
}
