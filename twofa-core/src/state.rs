//! A user's mutable state: the TOTP replay watermark and failure counts.
//!
//! Kept apart from the enrollment (google-authenticator mixes them in one user-writable file):
//! the module writes state on every login, the enrollment only changes when an admin acts.

use crate::tomlfile::{Doc, FieldError, Fields};

/// The state file format version.
pub const VERSION: i64 = 1;

/// Everything that changes at login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserState {
    /// Highest TOTP step ever accepted: a step at or below it is a replay.
    pub totp_last_step: Option<u64>,
    /// Failed code attempts since the last success.
    pub failures: u32,
    /// Unix time of the last failure.
    pub last_failure_at: Option<u64>,
    /// Unix time of the last success.
    pub last_success_at: Option<u64>,
}

impl UserState {
    /// Parses a state file.
    pub fn parse(text: &str) -> Result<UserState, FieldError> {
        let doc = Doc::parse(text)?;
        let mut root = doc.root();
        check_version(&mut root)?;
        let max = u64::MAX >> 1;
        let state = UserState {
            totp_last_step: root.unsigned("totp_last_step", 0, max)?,
            failures: root
                .unsigned("failures", 0, u64::from(u32::MAX))?
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            last_failure_at: root.unsigned("last_failure_at", 0, max)?,
            last_success_at: root.unsigned("last_success_at", 0, max)?,
        };
        root.finish()?;
        Ok(state)
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "# twofa state: written at every login, do not edit by hand.\nversion = {VERSION}\nfailures = {}\n",
            self.failures
        );
        for (key, value) in [
            ("totp_last_step", self.totp_last_step),
            ("last_failure_at", self.last_failure_at),
            ("last_success_at", self.last_success_at),
        ] {
            if let Some(v) = value {
                out.push_str(&format!("{key} = {v}\n"));
            }
        }
        out
    }
}

fn check_version(root: &mut Fields<'_>) -> Result<(), FieldError> {
    match root.integer("version")? {
        Some(VERSION) => Ok(()),
        Some(v) => Err(root.error("version", format!("version {v} is not known to this twofa"))),
        None => Err(root.error("version", "missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() -> Result<(), FieldError> {
        let s = UserState {
            totp_last_step: Some(58_000_000),
            failures: 3,
            last_failure_at: Some(1_700_000_100),
            last_success_at: None,
        };
        assert_eq!(UserState::parse(&s.to_toml())?, s);
        Ok(())
    }

    #[test]
    fn broken_state_is_refused() {
        for text in [
            "version = 1\nfailures = -1\n",
            "version = 2\n",
            "version = 1\nwatermark = 3\n",
            "failures = 1\n",
        ] {
            assert!(UserState::parse(text).is_err(), "{text}");
        }
    }
}
