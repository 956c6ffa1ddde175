//! One login's second-factor step, from the PAM user name to an outcome and its audit event.
//!
//! The PAM module gathers the request, provides the conversation and maps the outcome to a PAM
//! code; everything else happens here, where it can be tested without PAM. The order follows
//! DESIGN "Writes, locks, crashes": read the enrollment, converse, then one atomic store
//! operation (lock, re-read, decide, write, unlock). No lock is held while the user types.
//!
//! [`authenticate`] looks the user up and asks the policy what to do; then one of
//! - [`verify`]: the code check after a verified password (its matching in [`matching`], codes
//!   sent out of band in [`oob`]);
//! - [`self_enroll`]: a new enrollment in the login conversation.
//!
//! [`field`] splits "password followed by code" for the one-field (`concat`) line.

mod conversation;
mod field;
mod matching;
mod oob;
mod self_enroll;
mod verify;

#[cfg(test)]
mod tests;

pub use conversation::{Conversation, ConversationError, CODE_PROMPT};
pub use field::{cut_code, split_field, Split};
pub use oob::random_code;
pub use self_enroll::SELF_ENROLLED_MESSAGE;
pub use verify::{
    expired_age, locked_message, FEW_RECOVERY_CODES, REPLAYED_HOTP_MESSAGE,
    REPLAYED_RECOVERY_MESSAGE, REPLAYED_TOTP_MESSAGE,
};

use zeroize::Zeroizing;

use crate::audit::{Event, Outcome, Reason};
use crate::config::Config;
use crate::delivery::Deliverer;
use crate::enrollment::Enrollment;
use crate::identity::{Account, Directory};
use crate::policy::{self, Plan, Who};
use crate::store::{Store, StoreError};

/// Where the code comes from.
#[derive(Debug, Clone)]
pub enum CodeSource {
    /// Ask for it in the conversation.
    Ask,
    /// It was cut from the password field by the `concat` line (`None`: nothing was cut, as
    /// for an unenrolled user under `allow`). Never ask then: an FTP daemon can answer only
    /// one question.
    Field(Option<Zeroizing<Vec<u8>>>),
}

/// What the module knows about this login.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// PAM_USER.
    pub user: &'a str,
    /// PAM_SERVICE.
    pub service: &'a str,
    /// PAM_RHOST, if any.
    pub rhost: Option<&'a str>,
    /// The stack marked the password as failed (`password_failed` line ran).
    pub password_failed: bool,
    /// Unix time now.
    pub now: u64,
    /// Where the code comes from.
    pub code: CodeSource,
}

/// The outcome and what to log about it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// How the step ends.
    pub outcome: Outcome,
    /// The log record.
    pub event: Event,
}

fn decide(mut event: Event, outcome: Outcome, reason: Reason, detail: Option<String>) -> Decision {
    event.outcome = outcome;
    event.reason = reason;
    event.detail = detail;
    Decision { outcome, event }
}

/// The reason a store error is logged under: an unreachable store (fleet mode) is named as
/// such, so the log says where to look and the user is told the service is down.
fn store_reason(e: &StoreError, otherwise: Reason) -> Reason {
    match e {
        StoreError::Unavailable(_) => Reason::StoreUnavailable,
        // Only the fleet store reports backend errors (files report the file and the line).
        StoreError::Backend(_) => Reason::StoreError,
        _ => otherwise,
    }
}

/// The decision when the store failed: an error (fail closed), under [`store_reason`].
fn store_failed(event: Event, e: StoreError, otherwise: Reason) -> Decision {
    decide(
        event,
        Outcome::Error,
        store_reason(&e, otherwise),
        Some(e.to_string()),
    )
}

/// A decision made before anything about the user was looked at (broken config, bad module
/// arguments, a caught panic): fail closed.
pub fn unavailable(req: &Request<'_>, reason: Reason, detail: String) -> Decision {
    decide(
        Event::new(req.user, req.rhost),
        Outcome::Error,
        reason,
        Some(detail),
    )
}

/// The policy's exemption of `account` on `service`, looking groups up only if the policy
/// names any.
fn exemption_of(
    config: &Config,
    dir: &dyn Directory,
    service: &str,
    account: &Account,
) -> Result<Option<Reason>, crate::identity::LookupError> {
    let groups = if policy::needs_groups(config) {
        dir.groups(account)?
    } else {
        Vec::new()
    };
    Ok(policy::exemption(config, service, &groups))
}

/// What a user is told when the fleet store can't be reached: not their fault, not their code.
pub const STORE_UNAVAILABLE_MESSAGE: &str =
    "The two-factor service can't be reached right now; try again in a minute, or ask your administrator.";

/// Runs the second-factor step.
pub fn authenticate(
    config: &Config,
    store: &dyn Store,
    dir: &dyn Directory,
    deliver: &dyn Deliverer,
    conv: &mut dyn Conversation,
    req: &Request<'_>,
) -> Decision {
    let decision = authenticate_inner(config, store, dir, deliver, conv, req);
    if matches!(
        decision.event.reason,
        Reason::StoreUnavailable | Reason::StoreError
    ) {
        conv.show_error(STORE_UNAVAILABLE_MESSAGE);
    }
    decision
}

fn authenticate_inner(
    config: &Config,
    store: &dyn Store,
    dir: &dyn Directory,
    deliver: &dyn Deliverer,
    conv: &mut dyn Conversation,
    req: &Request<'_>,
) -> Decision {
    let mut event = Event::new(req.user, req.rhost);

    if req.password_failed {
        return password_failed(req, conv, event);
    }

    let account = match dir.lookup(req.user) {
        Ok(a) => a,
        Err(e) => {
            return decide(
                event,
                Outcome::Error,
                Reason::AccountLookupError,
                Some(e.to_string()),
            )
        }
    };
    event.account = account.as_ref().map(|a| a.name.clone());

    let enrollment = match &account {
        None => Ok(None),
        Some(a) => store.enrollment(a),
    };
    let enrollment: Option<Enrollment> = match enrollment {
        // Only the factors the policy offers count; none offered is as good as none enrolled.
        Ok(e) => e
            .map(|e| offered(config, e))
            .filter(|e| !e.factors.is_empty()),
        Err(e) => return store_failed(event, e, Reason::EnrollmentError),
    };
    event.factor = enrollment.as_ref().and_then(|e| {
        if e.totp().is_some() {
            Some("totp")
        } else if e.hotp().is_some() {
            Some("hotp")
        } else {
            None
        }
    });

    let who = match (&account, &enrollment) {
        (None, _) => Who::Unknown,
        (Some(_), None) => Who::NotEnrolled,
        (Some(_), Some(_)) => Who::Enrolled,
    };
    // Exemptions are only looked at once the account is known.
    let exempt = match &account {
        Some(a) => match exemption_of(config, dir, req.service, a) {
            Ok(e) => e,
            Err(e) => {
                return decide(
                    event,
                    Outcome::Error,
                    Reason::AccountLookupError,
                    Some(e.to_string()),
                )
            }
        },
        _ => None,
    };

    match policy::plan(req.password_failed, who, exempt, config.unenrolled, req.now) {
        Plan::Ignore(reason) => decide(event, Outcome::Ignore, reason, None),
        Plan::Grace(until) => {
            conv.show_notice(&format!(
                "Two-factor authentication will be required from {}: ask your administrator to enroll you (twofa-enroll).",
                day_of(until)
            ));
            decide(
                event,
                Outcome::Ignore,
                Reason::Grace,
                Some(format!("grace until {}", day_of(until))),
            )
        }
        Plan::AskThenDeny(reason) => {
            // Asked like anyone's, never checked: there is nothing to check it against.
            let _ = conversation::answer(req, conv);
            decide(event, Outcome::Deny, reason, None)
        }
        Plan::SelfEnroll => match account.as_ref() {
            Some(a) => self_enroll::self_enroll(config, store, conv, req, event, a),
            None => decide(
                event,
                Outcome::Error,
                Reason::InternalError,
                Some("no account".into()),
            ),
        },
        Plan::AskAndVerify => {
            let (Some(account), Some(enrollment)) = (account.as_ref(), enrollment.as_ref()) else {
                return decide(
                    event,
                    Outcome::Error,
                    Reason::InternalError,
                    Some("no enrollment".into()),
                );
            };
            verify::verify(verify::Attempt {
                config,
                store,
                deliver,
                conv,
                req,
                account,
                enrollment,
                event,
            })
        }
    }
}

/// After a failed password: the code is asked like after a right one (so the prompts say
/// nothing), then denied before any per-user work. No account lookup, no enrollment or state
/// read, no code computed: the same work for an enrolled user, an unenrolled one and a name
/// with no account, so the time taken says nothing either (docs/design.md, "Oracles"). The
/// log line names the user as typed; the account and factor were never looked up.
fn password_failed(req: &Request<'_>, conv: &mut dyn Conversation, event: Event) -> Decision {
    let _ = conversation::answer(req, conv);
    decide(event, Outcome::Deny, Reason::PasswordFailed, None)
}

/// `2026-12-31` for the day before the Unix time `end` (an exclusive end of day).
fn day_of(end: u64) -> String {
    crate::calendar::utc_day(end.saturating_sub(1))
}

/// The enrollment with only the factors `[policy] factors` offers.
fn offered(config: &Config, mut e: Enrollment) -> Enrollment {
    e.factors
        .retain(|f| config.factors.iter().any(|name| name == f.kind()));
    e
}
