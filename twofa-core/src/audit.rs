//! The audit record of one decision: one syslog line, never a secret, code or password.

use std::fmt;

/// How a login step ended, as PAM will be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The code was right: PAM_SUCCESS.
    Success,
    /// Wrong, replayed or missing code, failed password, not enrolled under `deny`: PAM_AUTH_ERR.
    Deny,
    /// Nothing for twofa to check (unenrolled under `allow`): PAM_IGNORE.
    Ignore,
    /// twofa could not decide (broken config, unreadable files): PAM_AUTHINFO_UNAVAIL.
    Error,
}

impl Outcome {
    /// The word in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Deny => "deny",
            Outcome::Ignore => "ignore",
            Outcome::Error => "error",
        }
    }
}

/// Why, in one word for log searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The code matched a step above the watermark.
    Ok,
    /// The code matched no step in the window.
    WrongCode,
    /// The code matched a step already used.
    ReplayedCode,
    /// The account is locked after too many failures; nothing was checked.
    Locked,
    /// The password before it failed; the code was not checked.
    PasswordFailed,
    /// The account has no enrollment.
    NotEnrolled,
    /// The name is no account.
    UnknownUser,
    /// An empty answer.
    NoCode,
    /// The policy file is broken.
    ConfigError,
    /// The passwd database could not be asked.
    AccountLookupError,
    /// The enrollment could not be read.
    EnrollmentError,
    /// The state could not be read or written.
    StateError,
    /// The conversation with the user failed (client gone).
    ConversationFailed,
    /// The module's arguments are wrong.
    ArgumentError,
    /// A bug (caught panic).
    InternalError,
    /// The PAM service is in `exempt_services`.
    ExemptService,
    /// The account is in an `exempt_groups` group.
    ExemptGroup,
    /// `enforce_groups` is set and the account is in none of them.
    NotEnforced,
    /// Unenrolled, let in during the grace period.
    Grace,
    /// Unenrolled and the grace period is over.
    GraceExpired,
    /// The user enrolled at this login (self-enrollment) and is in.
    Enrolled,
    /// Self-enrollment was not completed (wrong confirmation code, no interactive conversation).
    SelfEnrollFailed,
    /// The code was skipped for a remote host remembered after a recent code login.
    RememberedHost,
    /// The answer was a sent code that had expired.
    ExpiredCode,
    /// The user reached the limit of sent codes.
    SendLimited,
    /// The code could not be sent (program failed, timed out, not configured).
    DeliveryFailed,
    /// The enrollment has no factor the policy offers here.
    NoAllowedFactor,
    /// The replay watermark is ahead of the clock (the clock went back, or the state file
    /// was written from the future): no code can be accepted until the clock catches up.
    WatermarkAhead,
    /// The fleet store could not be reached within its deadline (and the policy does not fall
    /// back to local files, or they failed too).
    StoreUnavailable,
    /// The fleet store answered with an error (a wrong fleet key, an old schema, a refused
    /// database login): denied whatever `on_store_error` says.
    StoreError,
}

impl Reason {
    /// The word in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::WrongCode => "wrong-code",
            Reason::ReplayedCode => "replayed-code",
            Reason::Locked => "locked",
            Reason::PasswordFailed => "password-failed",
            Reason::NotEnrolled => "not-enrolled",
            Reason::UnknownUser => "unknown-user",
            Reason::NoCode => "no-code",
            Reason::ConfigError => "config-error",
            Reason::AccountLookupError => "account-lookup-error",
            Reason::EnrollmentError => "enrollment-error",
            Reason::StateError => "state-error",
            Reason::ConversationFailed => "conversation-failed",
            Reason::ArgumentError => "argument-error",
            Reason::InternalError => "internal-error",
            Reason::ExemptService => "exempt-service",
            Reason::ExemptGroup => "exempt-group",
            Reason::NotEnforced => "not-in-enforce-groups",
            Reason::Grace => "grace",
            Reason::GraceExpired => "grace-expired",
            Reason::Enrolled => "self-enrolled",
            Reason::SelfEnrollFailed => "self-enroll-failed",
            Reason::RememberedHost => "remembered-host",
            Reason::ExpiredCode => "expired-code",
            Reason::SendLimited => "send-limited",
            Reason::DeliveryFailed => "delivery-failed",
            Reason::NoAllowedFactor => "no-allowed-factor",
            Reason::WatermarkAhead => "watermark-ahead-of-clock",
            Reason::StoreUnavailable => "store-unavailable",
            Reason::StoreError => "store-error",
        }
    }
}

/// One decision, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The name PAM was given.
    pub user: String,
    /// The canonical account, if the name is one.
    pub account: Option<String>,
    /// The remote host PAM was given, if any.
    pub rhost: Option<String>,
    /// The factor checked, if any.
    pub factor: Option<&'static str>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why.
    pub reason: Reason,
    /// More, for an admin (a file and what is wrong with it). Never a secret.
    pub detail: Option<String>,
}

impl Event {
    /// An event about `user` with nothing decided yet.
    pub fn new(user: &str, rhost: Option<&str>) -> Event {
        Event {
            user: user.to_string(),
            account: None,
            rhost: rhost.map(str::to_string),
            factor: None,
            outcome: Outcome::Error,
            reason: Reason::InternalError,
            detail: None,
        }
    }
}

/// Writes `s` so that it can't break the line or fake another field: bytes outside printable
/// ASCII, spaces, `=` and `\` become `\xNN`.
fn clean(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if s.is_empty() {
        return f.write_str("\"\"");
    }
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'=' && b != b'\\' {
            write!(f, "{}", char::from(b))?;
        } else {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("user=")?;
        clean(f, &self.user)?;
        f.write_str(" account=")?;
        clean(f, self.account.as_deref().unwrap_or("-"))?;
        f.write_str(" rhost=")?;
        clean(
            f,
            self.rhost
                .as_deref()
                .filter(|r| !r.is_empty())
                .unwrap_or("-"),
        )?;
        write!(
            f,
            " factor={} outcome={} reason={}",
            self.factor.unwrap_or("-"),
            self.outcome.as_str(),
            self.reason.as_str()
        )?;
        if let Some(d) = &self.detail {
            // Free text for admins, but still one line.
            let one_line: String = d
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            write!(f, ": {one_line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_user_name_cannot_forge_fields_or_lines() {
        let mut e = Event::new("bob outcome=success\nx", Some("10.0.0.1"));
        e.outcome = Outcome::Deny;
        e.reason = Reason::WrongCode;
        let line = e.to_string();
        assert_eq!(
            line,
            "user=bob\\x20outcome\\x3dsuccess\\x0ax account=- rhost=10.0.0.1 factor=- outcome=deny reason=wrong-code"
        );
    }
}
