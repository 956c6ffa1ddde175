//! The code check after a verified password, as steps over one [`Attempt`]:
//! [`Attempt::admit`] (locked? a remembered host?), [`Attempt::ask`] (the prompt, and a code
//! sent out of band first or on an empty answer), [`Attempt::spend`] (what the answer matched,
//! spent in one atomic store operation) and [`Attempt::refuse`] (an empty answer, a failed
//! send, a counted failure). Each step either goes on or ends the login with a [`Decision`].

use std::ops::ControlFlow::{self, Break, Continue};

use zeroize::Zeroizing;

use super::matching::{match_answer, watermark_ahead, Matched};
use super::oob::{first_delivery, primary_is_delivery, SendFailure};
use super::CODE_PROMPT;
use super::{decide, store_failed, CodeSource, Conversation, ConversationError, Decision, Request};
use crate::audit::{Event, Outcome, Reason};
use crate::config::Config;
use crate::delivery::Deliverer;
use crate::enrollment::{Enrollment, Factor};
use crate::identity::Account;
use crate::otp;
use crate::state::UserState;
use crate::store::{
    ChallengeOutcome, FailureOutcome, RecoveryOutcome, StepOutcome, Store, StoreError,
};

/// What a user who typed a TOTP code already used is told, after a verified password: most
/// often the code that just confirmed an enrollment, typed again within the same 30 s.
pub const REPLAYED_TOTP_MESSAGE: &str =
    "That code was already used; wait for the next code from your app, then try again.";

/// What a user who typed an HOTP code already used is told, after a verified password.
pub const REPLAYED_HOTP_MESSAGE: &str =
    "That code was already used; press your token for a new one, then try again.";

/// What a user who typed a used recovery code is told, after a verified password.
pub const REPLAYED_RECOVERY_MESSAGE: &str =
    "That recovery code was already used; each one works once.";

/// The log detail of an empty answer, which is refused but not counted.
const NO_CODE_DETAIL: &str = "no code typed; not counted toward lockout";

/// Fewest recovery codes left before the login says so.
pub const FEW_RECOVERY_CODES: usize = 3;

/// What a locked user reads, only after the password was verified.
pub fn locked_message(until: u64, now: u64) -> String {
    let minutes = until.saturating_sub(now).div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("Too many failed attempts; try again in {minutes} {unit}.")
}

/// Whether an enrollment is older than the policy's `enrollment_max_age_days`; its age in
/// days if so.
pub fn expired_age(config: &Config, e: &Enrollment, now: u64) -> Option<u64> {
    let max = config.enrollment_max_age_days;
    let age = now.saturating_sub(enrolled_at(e)?) / 86_400;
    (max > 0 && age > max).then_some(age)
}

/// The enrolled-at time of the factor a code login used.
fn enrolled_at(e: &Enrollment) -> Option<u64> {
    e.factors.iter().find_map(|f| match f {
        Factor::Totp(t) => Some(t.enrolled_at),
        Factor::Hotp(h) => Some(h.enrolled_at),
        Factor::Recovery(_) | Factor::Delivery(_) => None,
    })
}

/// How many of the user's recovery codes are still unused, per `state`.
fn recovery_left(e: &Enrollment, used: &[String]) -> usize {
    e.recovery().map_or(0, |r| {
        r.hashes
            .iter()
            .filter(|h| !used.contains(&crate::hex::encode(h.as_slice())))
            .count()
    })
}

/// The remote host to remember, if the policy remembers hosts and there is one.
fn rememberable<'a>(config: &Config, req: &Request<'a>) -> Option<&'a str> {
    req.rhost
        .filter(|h| config.remember_host_seconds > 0 && !h.trim().is_empty())
}

/// One code check after a verified password: the login's parts and the event being written.
pub(super) struct Attempt<'a> {
    pub(super) config: &'a Config,
    pub(super) store: &'a dyn Store,
    pub(super) deliver: &'a dyn Deliverer,
    pub(super) conv: &'a mut dyn Conversation,
    pub(super) req: &'a Request<'a>,
    pub(super) account: &'a Account,
    pub(super) enrollment: &'a Enrollment,
    pub(super) event: Event,
}

/// What the user answered, and what was sent out of band on the way.
struct Answered {
    answer: Option<Zeroizing<Vec<u8>>>,
    /// A code was sent in this login.
    sent: bool,
    /// Sending failed, but the user could still type a code from an app, a token or a
    /// recovery list.
    send_failure: Option<SendFailure>,
}

/// The check after a verified password: lock, remembered host, answer, one atomic store
/// operation.
pub(super) fn verify(mut attempt: Attempt<'_>) -> Decision {
    match attempt.check() {
        Break(decision) => decision,
        Continue((reason, send_failure)) => attempt.refuse(reason, send_failure),
    }
}

impl Attempt<'_> {
    /// The steps up to the answer's outcome: a decision, or why the answer is refused (and
    /// the send failure on the way, if any).
    fn check(&mut self) -> ControlFlow<Decision, (Reason, Option<SendFailure>)> {
        let state = self.admit()?;
        let answered = self.ask(&state)?;
        let reason = self.spend(&state, &answered)?;
        Continue((reason, answered.send_failure))
    }

    fn decide(&self, outcome: Outcome, reason: Reason, detail: Option<String>) -> Decision {
        decide(self.event.clone(), outcome, reason, detail)
    }

    fn store_failed(&self, e: StoreError, otherwise: Reason) -> Decision {
        store_failed(self.event.clone(), e, otherwise)
    }

    /// Refused without looking at the code: the account is locked (the password was right,
    /// so the user is told until when).
    fn locked(&mut self, until: u64) -> Decision {
        self.conv.show_error(&locked_message(until, self.req.now));
        self.decide(
            Outcome::Deny,
            Reason::Locked,
            Some(format!("locked until {until}")),
        )
    }

    /// The user's state, unless the account is locked (told so, not asked for a code) or the
    /// remote host is remembered (in without a code).
    fn admit(&mut self) -> ControlFlow<Decision, UserState> {
        let state = match self.store.state(self.account) {
            Ok(s) => s,
            Err(e) => return Break(self.store_failed(e, Reason::StateError)),
        };
        if let Some(until) = state.locked_at(self.req.now) {
            return Break(self.locked(until));
        }
        if let Some(host) = rememberable(self.config, self.req) {
            if state.host_remembered(host, self.req.now) {
                return Break(self.decide(Outcome::Success, Reason::RememberedHost, None));
            }
        }
        Continue(state)
    }

    /// Asks for the code. Out-of-band: sent at once when it is the user's first factor, or on
    /// an empty answer when it follows an app or token. Never in a one-field login.
    fn ask(&mut self, state: &UserState) -> ControlFlow<Decision, Answered> {
        let (config, enrollment, req) = (self.config, self.enrollment, self.req);
        let oob = match req.code {
            CodeSource::Ask => first_delivery(config, enrollment),
            CodeSource::Field(_) => None,
        };
        let prompt_factors = enrollment.totp().is_some()
            || enrollment.hotp().is_some()
            || enrollment.recovery().is_some();
        let mut sent = false;
        let mut send_failure = None;
        if let Some(d) = oob {
            if primary_is_delivery(config, enrollment) {
                match self.send_code(d) {
                    Ok(()) => sent = true,
                    Err(f) if prompt_factors => send_failure = Some(f),
                    Err((reason, detail)) => {
                        return Break(self.decide(Outcome::Deny, reason, detail))
                    }
                }
            }
        }
        let fallback_prompt;
        let prompt = match oob {
            Some(d) if !sent && send_failure.is_none() => {
                fallback_prompt = format!(
                    "Verification code (or Enter to get one by {}): ",
                    d.method.name()
                );
                fallback_prompt.as_str()
            }
            _ => CODE_PROMPT,
        };
        let mut answer = match &req.code {
            CodeSource::Ask => self.conv.ask_hidden(prompt),
            CodeSource::Field(code) => Ok(code.clone()),
        };
        if let (Ok(None), Some(d)) | (Ok(Some(_)), Some(d)) = (&answer, oob) {
            let empty = answer
                .as_ref()
                .ok()
                .and_then(|a| a.as_ref())
                .is_none_or(|a| a.is_empty());
            if empty && !sent && send_failure.is_none() {
                match self.send_code(d) {
                    Ok(()) => {
                        sent = true;
                        answer = self.conv.ask_hidden(CODE_PROMPT);
                    }
                    Err((reason, detail)) => {
                        return Break(self.decide(Outcome::Deny, reason, detail))
                    }
                }
            }
        }
        let answer = match answer {
            Ok(a) => a,
            Err(ConversationError) => {
                return Break(self.decide(Outcome::Deny, Reason::ConversationFailed, None))
            }
        };
        if sent || state.challenge.is_some() {
            if let Some(d) = oob.or_else(|| first_delivery(config, enrollment)) {
                self.event.factor = Some(d.method.name());
            }
        }
        Continue(Answered {
            answer,
            sent,
            send_failure,
        })
    }

    /// Spends what the answer matched, in one atomic store operation; why it is refused if
    /// nothing could be spent.
    fn spend(&mut self, state: &UserState, answered: &Answered) -> ControlFlow<Decision, Reason> {
        let enrollment = self.enrollment;
        let hotp_from = state.hotp_from(enrollment.hotp().map_or(0, |h| h.counter));
        let answer = answered.answer.as_deref().map(Vec::as_slice);
        match match_answer(self.config, enrollment, answer, self.req.now, hotp_from) {
            Matched::Totp(step) => self.spend_totp(state, step),
            Matched::Hotp(counter) => self.spend_hotp(counter),
            Matched::Recovery(index) => self.spend_recovery(state, index),
            Matched::Nothing(reason) => self.spend_sent(state, answered, reason),
        }
    }

    fn spend_totp(&mut self, state: &UserState, step: u64) -> ControlFlow<Decision, Reason> {
        let now = self.req.now;
        Continue(match self.store.accept_step(self.account, step, now) {
            Ok(StepOutcome::Accepted) => return Break(self.success(None)),
            // A right code for now, refused because the watermark is ahead of the clock: say
            // so, an admin has to look at the clock (or reset the user).
            Ok(StepOutcome::Replayed)
                if watermark_ahead(self.config, self.enrollment, state, now) =>
            {
                Reason::WatermarkAhead
            }
            Ok(StepOutcome::Replayed) => {
                self.conv.show_error(REPLAYED_TOTP_MESSAGE);
                Reason::ReplayedCode
            }
            // Locked by a parallel login meanwhile: refused, not counted.
            Ok(StepOutcome::Locked(until)) => return Break(self.locked(until)),
            Err(e) => return Break(self.store_failed(e, Reason::StateError)),
        })
    }

    fn spend_hotp(&mut self, counter: u64) -> ControlFlow<Decision, Reason> {
        self.event.factor = Some("hotp");
        let start = self.enrollment.hotp().map_or(0, |h| h.counter);
        let now = self.req.now;
        Continue(
            match self.store.accept_hotp(self.account, counter, start, now) {
                Ok(StepOutcome::Accepted) => return Break(self.success(None)),
                Ok(StepOutcome::Replayed) => {
                    self.conv.show_error(REPLAYED_HOTP_MESSAGE);
                    Reason::ReplayedCode
                }
                Ok(StepOutcome::Locked(until)) => return Break(self.locked(until)),
                Err(e) => return Break(self.store_failed(e, Reason::StateError)),
            },
        )
    }

    fn spend_recovery(&mut self, state: &UserState, index: usize) -> ControlFlow<Decision, Reason> {
        self.event.factor = Some("recovery");
        let enrollment = self.enrollment;
        let hex = enrollment
            .recovery()
            .and_then(|r| r.hashes.get(index))
            .map(|h| crate::hex::encode(h.as_slice()))
            .unwrap_or_default();
        Continue(
            match self
                .store
                .consume_recovery(self.account, &hex, self.req.now)
            {
                Ok(RecoveryOutcome::Consumed) => {
                    let left = recovery_left(enrollment, &state.used_recovery).saturating_sub(1);
                    let mut info = format!("Recovery code accepted; {left} left.");
                    if left <= FEW_RECOVERY_CODES {
                        info.push_str(
                            " Ask your administrator for new ones (twofa-enroll recovery).",
                        );
                    }
                    self.conv.show_info(&info);
                    let detail = Some(format!("{left} recovery codes left"));
                    return Break(self.success(detail));
                }
                Ok(RecoveryOutcome::AlreadyUsed) => {
                    self.conv.show_error(REPLAYED_RECOVERY_MESSAGE);
                    Reason::ReplayedCode
                }
                Ok(RecoveryOutcome::Locked(until)) => return Break(self.locked(until)),
                Err(e) => return Break(self.store_failed(e, Reason::StateError)),
            },
        )
    }

    /// A sent code (this login's, or one still pending from a recent one); `otherwise` when
    /// there is none to check.
    fn spend_sent(
        &mut self,
        state: &UserState,
        answered: &Answered,
        otherwise: Reason,
    ) -> ControlFlow<Decision, Reason> {
        let digits = self.config.delivery.code_digits;
        let code = answered
            .answer
            .as_deref()
            .and_then(|a| otp::normalize_code(a, digits));
        Continue(match code {
            Some(code) if answered.sent || state.challenge.is_some() => {
                match self.store.take_challenge(self.account, &code, self.req.now) {
                    Ok(ChallengeOutcome::Valid) => return Break(self.success(None)),
                    Ok(ChallengeOutcome::Expired) => Reason::ExpiredCode,
                    Ok(ChallengeOutcome::Wrong) => otherwise,
                    Ok(ChallengeOutcome::Locked(until)) => return Break(self.locked(until)),
                    Err(e) => return Break(self.store_failed(e, Reason::StateError)),
                }
            }
            _ => otherwise,
        })
    }

    /// A success: the code login is in. Tells the user if the enrollment is old, and remembers
    /// the remote host if the policy says so.
    fn success(&mut self, detail: Option<String>) -> Decision {
        let (config, req) = (self.config, self.req);
        if let Some(age) = expired_age(config, self.enrollment, req.now) {
            self.conv.show_info(&format!(
                "Your 2FA enrollment is {age} days old; re-enroll with twofa-enroll (ask your administrator)."
            ));
        }
        let mut detail = detail;
        if let Some(host) = rememberable(config, req) {
            let until = req.now.saturating_add(config.remember_host_seconds);
            if let Err(e) = self.store.remember_host(self.account, host, req.now, until) {
                detail = Some(format!("host not remembered: {e}"));
            }
        }
        self.decide(Outcome::Success, Reason::Ok, detail)
    }

    /// The refusal of an answer for `reason`: what is logged, and whether it counts toward
    /// lockout.
    fn refuse(&mut self, reason: Reason, send_failure: Option<SendFailure>) -> Decision {
        let req = self.req;
        // In a one-field login the code is the end of what was typed: a field too short to
        // hold one is a wrong code (a guess), never an empty answer.
        let mut reason = match (reason, &req.code) {
            (Reason::NoCode, CodeSource::Field(Some(_))) => Reason::WrongCode,
            (r, _) => r,
        };
        // The code could not be sent and nothing else was typed right: the send failure is
        // what happened (logged with the program's reason).
        let mut prefix = String::new();
        if let Some((send_reason, send_detail)) = &send_failure {
            if matches!(reason, Reason::WrongCode | Reason::NoCode) {
                prefix = format!("{}; ", send_detail.as_deref().unwrap_or("not sent"));
                if reason == Reason::NoCode {
                    return self.decide(
                        Outcome::Deny,
                        *send_reason,
                        Some(format!("{prefix}{NO_CODE_DETAIL}")),
                    );
                }
                reason = *send_reason;
            }
        }
        // An empty answer is not a guess (an ssh client without a terminal answers every
        // prompt with an empty line): refused, but not counted toward lockout, or a
        // misconfigured script would lock its user out.
        if reason == Reason::NoCode {
            return self.decide(
                Outcome::Deny,
                Reason::NoCode,
                Some(NO_CODE_DETAIL.to_string()),
            );
        }
        // A failure is on disk before the module returns; if it can't be, still deny.
        let lockout = &self.config.lockout;
        let detail = match self.store.record_failure(self.account, req.now, lockout) {
            Ok(FailureOutcome::Counted(n)) => {
                Some(format!("{prefix}{}", lockout.describe_failure(n)))
            }
            Ok(FailureOutcome::Locked(until)) => {
                self.conv.show_error(&locked_message(until, req.now));
                Some(format!("{prefix}too many failures; locked until {until}"))
            }
            Ok(FailureOutcome::AlreadyLocked(until)) => return self.locked(until),
            Err(e) => Some(format!("{prefix}failure not recorded: {e}")),
        };
        self.decide(Outcome::Deny, reason, detail)
    }
}
