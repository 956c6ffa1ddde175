//! One login's second-factor step, from the PAM user name to an outcome and its audit event.
//!
//! The PAM module gathers the request, provides the conversation and maps the outcome to a PAM
//! code; everything else happens here, where it can be tested without PAM. The order follows
//! DESIGN "Writes, locks, crashes": read the enrollment, converse, then one atomic store
//! operation (lock, re-read, decide, write, unlock). No lock is held while the user types.

use zeroize::Zeroizing;

use crate::audit::{Event, Outcome, Reason};
use crate::config::Config;
use crate::delivery::Deliverer;
use crate::enrollment::DeliveryFactor;
use crate::enrollment::{Enrollment, Factor, RecoveryFactor, TotpFactor};
use crate::identity::{Account, Directory};
use crate::otp;
use crate::policy::{self, Plan, Who};
use crate::qr;
use crate::recovery;
use crate::secret::Secret;
use crate::store::{
    Challenge, ChallengeOutcome, Confirmation, FailureOutcome, RecoveryOutcome, SendOutcome,
    StepOutcome, Store, StoreError,
};
use crate::uri;

/// The prompt for the code, the same for every user and every path.
pub const CODE_PROMPT: &str = "Verification code: ";

/// The conversation failed (the client went away, or the application has no conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationError;

/// Talking to the user, as the PAM conversation does.
pub trait Conversation {
    /// Asks with echo off; `Ok(None)` when the application returned no answer.
    fn ask_hidden(&mut self, prompt: &str)
        -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError>;
    /// Shows a message the user must see (PAM_ERROR_MSG, even under PAM_SILENT: sudo always
    /// sets it). Best effort: an application that can't show it (vsftpd) is no reason to fail.
    fn show_error(&mut self, message: &str);
    /// Shows text the user must read to go on (PAM_TEXT_INFO, even under PAM_SILENT): the QR
    /// code and recovery codes of a self-enrollment.
    fn show_notice(&mut self, message: &str);
    /// Shows an advisory line (PAM_TEXT_INFO); the application's PAM_SILENT hides it.
    fn show_info(&mut self, message: &str);
}

/// What a locked user reads, only after the password was verified.
pub fn locked_message(until: u64, now: u64) -> String {
    let minutes = until.saturating_sub(now).div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("Too many failed attempts; try again in {minutes} {unit}.")
}

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

fn answer(
    req: &Request<'_>,
    conv: &mut dyn Conversation,
) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
    match &req.code {
        CodeSource::Ask => conv.ask_hidden(CODE_PROMPT),
        CodeSource::Field(code) => Ok(code.clone()),
    }
}

/// A password field split into the password and the code typed after it.
#[derive(Debug)]
pub struct Split {
    /// What goes on to the password module as PAM_AUTHTOK.
    pub password: Zeroizing<Vec<u8>>,
    /// The code, for the `Verify` line; `None` when nothing was cut.
    pub code: Option<Zeroizing<Vec<u8>>>,
}

/// Splits "password followed by code" for the `concat` line, before any password is checked.
///
/// The code is the last `digits` characters of the user's own enrollment. Everyone else (a
/// name with no account, an unenrolled user who will be denied, an enrollment that can't be
/// read) is split at the policy's default length, so the split says nothing about who exists;
/// an unreadable enrollment is reported by the `Verify` line, after the password. Users who
/// will be let in without a code (unenrolled under `allow` or in grace, exempt by group or
/// service) keep the whole field as the password.
pub fn split_field(
    config: &Config,
    store: &dyn Store,
    dir: &dyn Directory,
    req: &Request<'_>,
    field: &[u8],
) -> Split {
    // A recovery code typed with its dashes ends the field the same way for everyone.
    if recovery::formatted_suffix(field) {
        return cut_code(field, recovery::FORMATTED_LEN as u32);
    }
    let whole = || Split {
        password: Zeroizing::new(field.to_vec()),
        code: None,
    };
    let default = config.totp.params.digits;
    let Ok(Some(account)) = dir.lookup(req.user) else {
        return cut_code(field, default);
    };
    if exemption_of(config, dir, req.service, &account)
        .ok()
        .flatten()
        .is_some()
    {
        return whole();
    }
    match store.enrollment(&account) {
        Ok(Some(e)) => {
            let digits = e
                .totp()
                .map(|t| t.params.digits)
                .or_else(|| e.hotp().map(|h| h.params.digits));
            cut_code(field, digits.unwrap_or(default))
        }
        Ok(None) => match policy::plan(false, Who::NotEnrolled, None, config.unenrolled, req.now) {
            Plan::Ignore(_) | Plan::Grace(_) => whole(),
            _ => cut_code(field, default),
        },
        Err(_) => cut_code(field, default),
    }
}

/// Cuts the last `digits` bytes of `field` as the code; the rest is the password. A field
/// shorter than that is all code (the password part is empty and will fail).
pub fn cut_code(field: &[u8], digits: u32) -> Split {
    let cut = field.len().saturating_sub(digits as usize);
    let (password, code) = field.split_at(cut);
    Split {
        password: Zeroizing::new(password.to_vec()),
        code: Some(Zeroizing::new(code.to_vec())),
    }
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

/// What a user reads once their self-enrollment is saved: the confirming code is spent.
pub const SELF_ENROLLED_MESSAGE: &str = "You are enrolled. The code you just typed is now used up: at your next login, use the next code from your app.";

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

    let account = match dir.lookup(req.user) {
        Ok(a) => a,
        // After a failed password nothing but the prompt matters: don't reveal a broken
        // directory service either.
        Err(_) if req.password_failed => None,
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
        Err(_) if req.password_failed => None,
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
    // Exemptions are only looked at once the password is verified and the account known.
    let exempt = match (&account, req.password_failed) {
        (Some(a), false) => match exemption_of(config, dir, req.service, a) {
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
            let answer = answer(req, conv);
            // Do the same work as a real check, so the time taken says nothing either; the
            // result is thrown away: nothing is spent or counted.
            if let (Ok(a), Some(e)) = (&answer, &enrollment) {
                let from = e.hotp().map_or(0, |h| h.counter);
                let _ = match_answer(config, e, a.as_deref().map(Vec::as_slice), req.now, from);
            }
            decide(event, Outcome::Deny, reason, None)
        }
        Plan::SelfEnroll => match account.as_ref() {
            Some(a) => self_enroll(config, store, conv, req, event, a),
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
            verify(
                config, store, deliver, conv, req, event, account, enrollment,
            )
        }
    }
}

/// `2026-12-31` for the day before the Unix time `end` (an exclusive end of day).
fn day_of(end: u64) -> String {
    crate::calendar::utc_day(end.saturating_sub(1))
}

/// What an answer matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matched {
    /// A TOTP code of this step.
    Totp(u64),
    /// An HOTP code of this counter.
    Hotp(u64),
    /// The recovery code with this index in the enrollment.
    Recovery(usize),
    /// Nothing; why.
    Nothing(Reason),
}

/// Checks an answer against the user's factors: a TOTP or HOTP code if it has that shape
/// (TOTP first), then a recovery code if it has that shape. `hotp_from` is the next HOTP
/// counter. Pure: nothing is spent here.
fn match_answer(
    config: &Config,
    e: &Enrollment,
    answer: Option<&[u8]>,
    now: u64,
    hotp_from: u64,
) -> Matched {
    let Some(a) = answer.filter(|a| !a.is_empty()) else {
        return Matched::Nothing(Reason::NoCode);
    };
    if let Some(t) = e.totp() {
        if let Some(code) = otp::normalize_code(a, t.params.digits) {
            let window = config.totp.window;
            if let Some(step) = otp::verify_totp(t.secret.bytes(), &t.params, &code, now, window) {
                return Matched::Totp(step);
            }
        }
    }
    if let Some(h) = e.hotp() {
        if let Some(code) = otp::normalize_code(a, h.params.digits) {
            // Also look as far behind: a press already used is then reported as a replay
            // (the store refuses it) rather than as a wrong code.
            let look = config.hotp_look_ahead;
            let start = hotp_from.saturating_sub(look.max(1));
            let span = hotp_from - start + look;
            if let Some(c) = otp::verify_hotp(h.secret.bytes(), &h.params, &code, start, span) {
                return Matched::Hotp(c);
            }
        }
    }
    // Then a recovery code (or an imported 8-digit scratch code, which has the shape of an
    // 8-digit TOTP code: so recovery codes are tried after the OTP factors, not instead).
    if let (Some(r), Some(code)) = (e.recovery(), recovery::normalize(a)) {
        return recovery::find(&r.salt, &r.hashes, &code)
            .map_or(Matched::Nothing(Reason::WrongCode), Matched::Recovery);
    }
    Matched::Nothing(Reason::WrongCode)
}

/// How many of the user's recovery codes are still unused, per `state`.
fn recovery_left(e: &Enrollment, used: &[String]) -> usize {
    e.recovery().map_or(0, |r| {
        r.hashes
            .iter()
            .filter(|h| !used.contains(&recovery::to_hex(h.as_slice())))
            .count()
    })
}

/// Fewest recovery codes left before the login says so.
pub const FEW_RECOVERY_CODES: usize = 3;

/// The enrolled-at time of the factor a code login used.
fn enrolled_at(e: &Enrollment) -> Option<u64> {
    e.factors.iter().find_map(|f| match f {
        Factor::Totp(t) => Some(t.enrolled_at),
        Factor::Hotp(h) => Some(h.enrolled_at),
        Factor::Recovery(_) | Factor::Delivery(_) => None,
    })
}

/// Whether an enrollment is older than the policy's `enrollment_max_age_days`; its age in
/// days if so.
pub fn expired_age(config: &Config, e: &Enrollment, now: u64) -> Option<u64> {
    let max = config.enrollment_max_age_days;
    let age = now.saturating_sub(enrolled_at(e)?) / 86_400;
    (max > 0 && age > max).then_some(age)
}

/// A success: the code login is in. Tells the user if the enrollment is old, and remembers the
/// remote host if the policy says so.
fn success(
    c: &Checked<'_>,
    conv: &mut dyn Conversation,
    event: Event,
    detail: Option<String>,
) -> Decision {
    let (config, store, req, account, enrollment) =
        (c.config, c.store, c.req, c.account, c.enrollment);
    if let Some(age) = expired_age(config, enrollment, req.now) {
        conv.show_info(&format!(
            "Your 2FA enrollment is {age} days old; re-enroll with twofa-enroll (ask your administrator)."
        ));
    }
    let mut detail = detail;
    if let Some(host) = rememberable(config, req) {
        let until = req.now.saturating_add(config.remember_host_seconds);
        if let Err(e) = store.remember_host(account, host, req.now, until) {
            detail = Some(format!("host not remembered: {e}"));
        }
    }
    decide(event, Outcome::Success, Reason::Ok, detail)
}

/// Whether the TOTP watermark lies beyond every step the window accepts now.
fn watermark_ahead(
    config: &Config,
    e: &Enrollment,
    state: &crate::state::UserState,
    now: u64,
) -> bool {
    let Some(t) = e.totp() else {
        return false;
    };
    let newest = otp::step_at(now, t.params.period).saturating_add(config.totp.window);
    state.totp_last_step.is_some_and(|w| w >= newest)
}

/// The enrollment with only the factors `[policy] factors` offers.
fn offered(config: &Config, mut e: Enrollment) -> Enrollment {
    e.factors
        .retain(|f| config.factors.iter().any(|name| name == f.kind()));
    e
}

/// The user's first out-of-band factor that the policy offers (in the policy's order).
fn first_delivery<'e>(config: &Config, e: &'e Enrollment) -> Option<&'e DeliveryFactor> {
    config
        .factors
        .iter()
        .find_map(|name| e.deliveries().find(|d| d.method.name() == name))
        .filter(|d| config.delivery.method(d.method).is_some())
}

/// Whether, in the policy's order, the user's first factor (recovery codes aside) is sent out
/// of band rather than read from an app or token.
fn primary_is_delivery(config: &Config, e: &Enrollment) -> bool {
    for name in &config.factors {
        match name.as_str() {
            "totp" if e.totp().is_some() => return false,
            "hotp" if e.hotp().is_some() => return false,
            "recovery" => {}
            other if e.deliveries().any(|d| d.method.name() == other) => return true,
            _ => {}
        }
    }
    false
}

/// `digits` random decimal digits, uniformly (rejection sampling over the OS CSPRNG).
pub fn random_code(digits: u32) -> Option<Zeroizing<String>> {
    let modulus = 10u64.checked_pow(digits)?;
    let limit = u64::MAX - u64::MAX % modulus;
    loop {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).ok()?;
        let v = u64::from_ne_bytes(b);
        if v < limit {
            return Some(Zeroizing::new(format!(
                "{:0width$}",
                v % modulus,
                width = digits as usize
            )));
        }
    }
}

/// Sends a fresh code by `d`: counted against the send limit first (atomically, so parallel
/// logins can't exceed it), kept only as a salted HMAC with its expiry, then handed to the
/// delivery program. Tells the user where it went, or why not.
fn send_code(
    c: &Checked<'_>,
    conv: &mut dyn Conversation,
    d: &DeliveryFactor,
) -> Result<(), (Reason, Option<String>)> {
    let (config, store, req, account) = (c.config, c.store, c.req, c.account);
    let policy = &config.delivery;
    let Some(method) = policy.method(d.method) else {
        return Err((
            Reason::DeliveryFailed,
            Some(format!("no [delivery.{}] in the policy", d.method.name())),
        ));
    };
    let state_error = |e: StoreError| (store_reason(&e, Reason::StateError), Some(e.to_string()));
    match store
        .count_send(
            account,
            req.now,
            policy.max_sends,
            policy.send_window_seconds,
        )
        .map_err(state_error)?
    {
        SendOutcome::Allowed => {}
        SendOutcome::Limited => {
            conv.show_error("Too many codes were sent; try again later, or use your authenticator app or a recovery code.");
            return Err((Reason::SendLimited, None));
        }
    }
    let code = random_code(policy.code_digits)
        .ok_or((Reason::InternalError, Some("no random code".into())))?;
    let mut salt = vec![0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| (Reason::InternalError, Some(e.to_string())))?;
    let challenge = Challenge {
        salt: recovery::to_hex(&salt),
        hash: recovery::to_hex(&recovery::hash(&salt, code.as_bytes())),
        expires: req.now.saturating_add(method.code_ttl_seconds),
    };
    store
        .put_challenge(account, challenge)
        .map_err(state_error)?;
    if let Err(e) = c
        .deliver
        .send(&account.name, d, &code, method.code_ttl_seconds)
    {
        conv.show_error("Could not send the code; use your authenticator app or a recovery code, or contact your administrator.");
        return Err((Reason::DeliveryFailed, Some(e.to_string())));
    }
    let minutes = method.code_ttl_seconds.div_ceil(60);
    conv.show_notice(&format!(
        "A code was sent to {}. It is valid for {minutes} minute{}.",
        d.masked(),
        if minutes == 1 { "" } else { "s" }
    ));
    Ok(())
}

/// What a code check after a verified password works with.
struct Checked<'a> {
    config: &'a Config,
    store: &'a dyn Store,
    deliver: &'a dyn Deliverer,
    req: &'a Request<'a>,
    account: &'a Account,
    enrollment: &'a Enrollment,
}

/// The remote host to remember, if the policy remembers hosts and there is one.
fn rememberable<'a>(config: &Config, req: &Request<'a>) -> Option<&'a str> {
    req.rhost
        .filter(|h| config.remember_host_seconds > 0 && !h.trim().is_empty())
}

/// The check after a verified password: lock, remembered host, answer, one atomic store
/// operation.
#[allow(clippy::too_many_arguments)] // the login's parts, named; bundled in `Checked` below
fn verify(
    config: &Config,
    store: &dyn Store,
    deliver: &dyn Deliverer,
    conv: &mut dyn Conversation,
    req: &Request<'_>,
    mut event: Event,
    account: &Account,
    enrollment: &Enrollment,
) -> Decision {
    let checked = Checked {
        config,
        store,
        deliver,
        req,
        account,
        enrollment,
    };
    let locked = |conv: &mut dyn Conversation, event: Event, until: u64| {
        conv.show_error(&locked_message(until, req.now));
        decide(
            event,
            Outcome::Deny,
            Reason::Locked,
            Some(format!("locked until {until}")),
        )
    };
    // A locked account is told so (the password was right) and not asked for a code.
    let state = match store.state(account) {
        Ok(s) => s,
        Err(e) => return store_failed(event, e, Reason::StateError),
    };
    if let Some(until) = state.locked_at(req.now) {
        return locked(conv, event, until);
    }
    if let Some(host) = rememberable(config, req) {
        if state.host_remembered(host, req.now) {
            return decide(event, Outcome::Success, Reason::RememberedHost, None);
        }
    }
    // Out-of-band: sent at once when it is the user's first factor, or on an empty answer when
    // it follows an app or token. Never in a one-field login.
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
            match send_code(&checked, conv, d) {
                Ok(()) => sent = true,
                Err(f) if prompt_factors => send_failure = Some(f),
                Err((reason, detail)) => return decide(event, Outcome::Deny, reason, detail),
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
        CodeSource::Ask => conv.ask_hidden(prompt),
        CodeSource::Field(code) => Ok(code.clone()),
    };
    if let (Ok(None), Some(d)) | (Ok(Some(_)), Some(d)) = (&answer, oob) {
        let empty = answer
            .as_ref()
            .ok()
            .and_then(|a| a.as_ref())
            .is_none_or(|a| a.is_empty());
        if empty && !sent && send_failure.is_none() {
            match send_code(&checked, conv, d) {
                Ok(()) => {
                    sent = true;
                    answer = conv.ask_hidden(CODE_PROMPT);
                }
                Err((reason, detail)) => return decide(event, Outcome::Deny, reason, detail),
            }
        }
    }
    let answer = match answer {
        Ok(a) => a,
        Err(ConversationError) => {
            return decide(event, Outcome::Deny, Reason::ConversationFailed, None)
        }
    };
    if sent || state.challenge.is_some() {
        if let Some(d) = oob.or_else(|| first_delivery(config, enrollment)) {
            event.factor = Some(d.method.name());
        }
    }
    let hotp_from = state.hotp_from(enrollment.hotp().map_or(0, |h| h.counter));
    let matched = match_answer(
        config,
        enrollment,
        answer.as_deref().map(Vec::as_slice),
        req.now,
        hotp_from,
    );
    let reason = match matched {
        Matched::Totp(step) => match store.accept_step(account, step, req.now) {
            Ok(StepOutcome::Accepted) => return success(&checked, conv, event, None),
            // A right code for now, refused because the watermark is ahead of the clock: say
            // so, an admin has to look at the clock (or reset the user).
            Ok(StepOutcome::Replayed) if watermark_ahead(config, enrollment, &state, req.now) => {
                Reason::WatermarkAhead
            }
            Ok(StepOutcome::Replayed) => {
                conv.show_error(REPLAYED_TOTP_MESSAGE);
                Reason::ReplayedCode
            }
            // Locked by a parallel login meanwhile: refused, not counted.
            Ok(StepOutcome::Locked(until)) => return locked(conv, event, until),
            Err(e) => return store_failed(event, e, Reason::StateError),
        },
        Matched::Hotp(counter) => {
            event.factor = Some("hotp");
            let start = enrollment.hotp().map_or(0, |h| h.counter);
            match store.accept_hotp(account, counter, start, req.now) {
                Ok(StepOutcome::Accepted) => return success(&checked, conv, event, None),
                Ok(StepOutcome::Replayed) => {
                    conv.show_error(REPLAYED_HOTP_MESSAGE);
                    Reason::ReplayedCode
                }
                Ok(StepOutcome::Locked(until)) => return locked(conv, event, until),
                Err(e) => return store_failed(event, e, Reason::StateError),
            }
        }
        Matched::Recovery(index) => {
            event.factor = Some("recovery");
            let hex = enrollment
                .recovery()
                .and_then(|r| r.hashes.get(index))
                .map(|h| recovery::to_hex(h.as_slice()))
                .unwrap_or_default();
            match store.consume_recovery(account, &hex, req.now) {
                Ok(RecoveryOutcome::Consumed) => {
                    let left = recovery_left(enrollment, &state.used_recovery).saturating_sub(1);
                    let mut info = format!("Recovery code accepted; {left} left.");
                    if left <= FEW_RECOVERY_CODES {
                        info.push_str(
                            " Ask your administrator for new ones (twofa-enroll recovery).",
                        );
                    }
                    conv.show_info(&info);
                    let detail = Some(format!("{left} recovery codes left"));
                    return success(&checked, conv, event, detail);
                }
                Ok(RecoveryOutcome::AlreadyUsed) => {
                    conv.show_error(REPLAYED_RECOVERY_MESSAGE);
                    Reason::ReplayedCode
                }
                Ok(RecoveryOutcome::Locked(until)) => return locked(conv, event, until),
                Err(e) => return store_failed(event, e, Reason::StateError),
            }
        }
        Matched::Nothing(reason) => {
            // A sent code (this login's, or one still pending from a recent one).
            let digits = config.delivery.code_digits;
            let code = answer
                .as_deref()
                .and_then(|a| otp::normalize_code(a, digits));
            match code {
                Some(code) if sent || state.challenge.is_some() => {
                    match store.take_challenge(account, &code, req.now) {
                        Ok(ChallengeOutcome::Valid) => return success(&checked, conv, event, None),
                        Ok(ChallengeOutcome::Expired) => Reason::ExpiredCode,
                        Ok(ChallengeOutcome::Wrong) => reason,
                        Ok(ChallengeOutcome::Locked(until)) => return locked(conv, event, until),
                        Err(e) => return store_failed(event, e, Reason::StateError),
                    }
                }
                _ => reason,
            }
        }
    };
    // In a one-field login the code is the end of what was typed: a field too short to hold
    // one is a wrong code (a guess), never an empty answer.
    let mut reason = match (reason, &req.code) {
        (Reason::NoCode, CodeSource::Field(Some(_))) => Reason::WrongCode,
        (r, _) => r,
    };
    // The code could not be sent and nothing else was typed right: the send failure is what
    // happened (logged with the program's reason).
    let mut prefix = String::new();
    if let Some((send_reason, send_detail)) = &send_failure {
        if matches!(reason, Reason::WrongCode | Reason::NoCode) {
            prefix = format!("{}; ", send_detail.as_deref().unwrap_or("not sent"));
            if reason == Reason::NoCode {
                return decide(
                    event,
                    Outcome::Deny,
                    *send_reason,
                    Some(format!("{prefix}{NO_CODE_DETAIL}")),
                );
            }
            reason = *send_reason;
        }
    }
    // An empty answer is not a guess (an ssh client without a terminal answers every prompt
    // with an empty line): refused, but not counted toward lockout, or a misconfigured script
    // would lock its user out.
    if reason == Reason::NoCode {
        return decide(
            event,
            Outcome::Deny,
            Reason::NoCode,
            Some(NO_CODE_DETAIL.to_string()),
        );
    }
    // A failure is on disk before the module returns; if it can't be, still deny.
    let detail = match store.record_failure(account, req.now, &config.lockout) {
        Ok(FailureOutcome::Counted(n)) => {
            Some(format!("{prefix}{}", config.lockout.describe_failure(n)))
        }
        Ok(FailureOutcome::Locked(until)) => {
            conv.show_error(&locked_message(until, req.now));
            Some(format!("{prefix}too many failures; locked until {until}"))
        }
        Ok(FailureOutcome::AlreadyLocked(until)) => return locked(conv, event, until),
        Err(e) => Some(format!("{prefix}failure not recorded: {e}")),
    };
    decide(event, Outcome::Deny, reason, detail)
}

/// Self-enrollment at login (`unenrolled = "enroll"`), after a verified password: a new
/// secret shown as a QR code and URI, one code to confirm, recovery codes shown once, and the
/// root-owned enrollment written. A wrong code writes nothing: the user is asked to enroll
/// again at the next login.
fn self_enroll(
    config: &Config,
    store: &dyn Store,
    conv: &mut dyn Conversation,
    req: &Request<'_>,
    mut event: Event,
    account: &Account,
) -> Decision {
    event.factor = Some("totp");
    if matches!(req.code, CodeSource::Field(_)) {
        // One question only (FTP): there is no way to show a QR code and ask for a code.
        return decide(
            event,
            Outcome::Deny,
            Reason::SelfEnrollFailed,
            Some("enrollment needs an interactive login (ssh), not a one-field one".into()),
        );
    }
    let params = config.totp.params;
    let secret = match Secret::generate(params.algorithm.new_secret_bytes()) {
        Ok(s) => s,
        Err(e) => {
            return decide(
                event,
                Outcome::Error,
                Reason::InternalError,
                Some(e.to_string()),
            )
        }
    };
    // Recovery codes are made now and shown with the QR code, before the confirmation: sshd
    // shows messages that come after a successful authentication only to an interactive
    // session, so an `ssh host command` login would never see them. They only work once the
    // enrollment is written.
    let recovery_set = if config.recovery_codes > 0 {
        match recovery::issue(config.recovery_codes) {
            Ok(set) => Some(set),
            Err(e) => {
                return decide(
                    event,
                    Outcome::Error,
                    Reason::InternalError,
                    Some(e.to_string()),
                )
            }
        }
    } else {
        None
    };
    let recovery_text = match &recovery_set {
        Some(set) => {
            let list: Vec<&str> = set.codes.iter().map(|c| c.as_str()).collect();
            format!(
                "\nOnce you are enrolled, these recovery codes each work once in place of a code. Keep them somewhere safe (not on the phone); they are not shown again:\n{}\n",
                list.join("\n")
            )
        }
        None => String::new(),
    };
    let link = uri::totp_uri(&config.totp.issuer, &account.name, &secret, &params);
    let picture = qr::text(&link).unwrap_or_default();
    conv.show_notice(&format!(
        "Two-factor authentication is required for {}. Scan this QR code with an authenticator app:\n{picture}\nor enter this key: {}\n({}, {} digits, {} s).\n{recovery_text}Then type the code the app shows.",
        account.name,
        secret.to_base32().as_str(),
        params.algorithm,
        params.digits,
        params.period
    ));
    let answer = match conv.ask_hidden(CODE_PROMPT) {
        Ok(a) => a,
        Err(ConversationError) => {
            return decide(event, Outcome::Deny, Reason::ConversationFailed, None)
        }
    };
    let step = answer
        .as_deref()
        .and_then(|a| otp::normalize_code(a, params.digits))
        .and_then(|c| otp::verify_totp(secret.bytes(), &params, &c, req.now, config.totp.window));
    let Some(step) = step else {
        conv.show_error("That code is not right; nothing was saved. You will be asked to enroll again at your next login.");
        return decide(
            event,
            Outcome::Deny,
            Reason::SelfEnrollFailed,
            Some("wrong confirmation code".into()),
        );
    };
    let mut enrollment = Enrollment {
        account: account.name.clone(),
        factors: vec![Factor::Totp(TotpFactor {
            secret,
            params,
            enrolled_at: req.now,
        })],
    };
    if let Some(set) = recovery_set {
        enrollment.set_recovery(RecoveryFactor {
            salt: set.salt,
            hashes: set.hashes,
            issued_at: req.now,
        });
    }
    // Never replaces an enrollment (a parallel login may have enrolled first).
    if let Err(e) = store.put_enrollment(account, &enrollment, false) {
        return store_failed(event, e, Reason::EnrollmentError);
    }
    // The confirmation code is spent (a login within the same 30 s needs the next code), but
    // it is the enrollment, not a login: `status` keeps the two apart.
    let detail = match store.spend_confirmation(account, Confirmation::Totp(step)) {
        Ok(_) => None,
        Err(e) => Some(format!("confirmation code not marked used: {e}")),
    };
    // A notice, not advisory: sudo sets PAM_SILENT, and this says what the next login needs.
    conv.show_notice(SELF_ENROLLED_MESSAGE);
    decide(event, Outcome::Success, Reason::Enrolled, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Unenrolled;
    use crate::enrollment::{Factor, TotpFactor};
    use crate::otp::Params;
    use crate::secret::Secret;
    use crate::state::{OpOutcome, StateOp, UserState};
    use crate::store::Lockout;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A store in memory, to test the flow without files. State changes go through the same
    /// `UserState::apply` as the file store's.
    #[derive(Default)]
    struct MemStore {
        enrolled: RefCell<HashMap<String, Enrollment>>,
        state: RefCell<HashMap<String, UserState>>,
    }

    impl MemStore {
        fn with_state<T>(
            &self,
            a: &Account,
            f: impl FnOnce(&mut UserState) -> T,
        ) -> Result<T, StoreError> {
            Ok(f(self
                .state
                .borrow_mut()
                .entry(a.name.clone())
                .or_default()))
        }
    }

    impl Store for MemStore {
        fn enrollment(&self, a: &Account) -> Result<Option<Enrollment>, StoreError> {
            Ok(self.enrolled.borrow().get(&a.name).cloned())
        }
        fn put_enrollment(
            &self,
            a: &Account,
            e: &Enrollment,
            replace: bool,
        ) -> Result<(), StoreError> {
            let mut all = self.enrolled.borrow_mut();
            if !replace && all.contains_key(&a.name) {
                return Err(StoreError::AlreadyEnrolled(a.name.clone()));
            }
            all.insert(a.name.clone(), e.clone());
            Ok(())
        }
        fn disable_enrollment(&self, _: &Account, _: u64) -> Result<Option<String>, StoreError> {
            Ok(None)
        }
        fn enrolled_names(&self) -> Result<Vec<String>, StoreError> {
            let mut names: Vec<String> = self.enrolled.borrow().keys().cloned().collect();
            names.sort();
            Ok(names)
        }
        fn state(&self, a: &Account) -> Result<UserState, StoreError> {
            Ok(self
                .state
                .borrow()
                .get(&a.name)
                .cloned()
                .unwrap_or_default())
        }
        fn update(&self, a: &Account, op: &StateOp) -> Result<OpOutcome, StoreError> {
            self.with_state(a, |s| s.apply(op))
        }
    }

    /// A delivery that records what it sent (or fails, if told to).
    #[derive(Default)]
    struct Sends {
        sent: RefCell<Vec<(String, String)>>,
        fail: bool,
    }

    impl Deliverer for Sends {
        fn send(
            &self,
            _: &str,
            f: &DeliveryFactor,
            code: &str,
            _: u64,
        ) -> Result<(), crate::delivery::SendError> {
            if self.fail {
                return Err(crate::delivery::SendError::Program(
                    "smtp: connection refused".into(),
                ));
            }
            self.sent
                .borrow_mut()
                .push((f.to.join(","), code.to_string()));
            Ok(())
        }
    }

    /// alice (enrolled in `world`), bob (not), carol (in group "backup"); nobody else.
    struct Dir;

    impl Directory for Dir {
        fn lookup(&self, name: &str) -> Result<Option<Account>, crate::identity::LookupError> {
            Ok(["alice", "bob", "carol", "dave"]
                .contains(&name)
                .then(|| Account {
                    name: name.into(),
                    uid: 1000,
                    gid: 1000,
                }))
        }
        fn groups(&self, a: &Account) -> Result<Vec<String>, crate::identity::LookupError> {
            Ok(if a.name == "carol" {
                vec!["carol".into(), "backup".into()]
            } else {
                vec![a.name.clone()]
            })
        }
    }

    struct Script {
        answers: Vec<&'static str>,
        prompts: Vec<String>,
    }

    impl Script {
        fn errors(&self) -> Vec<&String> {
            self.prompts
                .iter()
                .filter(|p| p.starts_with("error: "))
                .collect()
        }
    }

    impl Conversation for Script {
        fn ask_hidden(
            &mut self,
            prompt: &str,
        ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
            self.prompts.push(prompt.to_string());
            if self.answers.is_empty() {
                return Err(ConversationError);
            }
            Ok(Some(Zeroizing::new(
                self.answers.remove(0).as_bytes().to_vec(),
            )))
        }
        fn show_error(&mut self, message: &str) {
            self.prompts.push(format!("error: {message}"));
        }
        fn show_info(&mut self, message: &str) {
            self.prompts.push(format!("info: {message}"));
        }
        fn show_notice(&mut self, message: &str) {
            self.prompts.push(format!("notice: {message}"));
        }
    }

    fn req_for(user: &str, code: CodeSource) -> Request<'_> {
        Request {
            service: "sshd",
            user,
            rhost: Some("192.0.2.7"),
            password_failed: false,
            now: NOW,
            code,
        }
    }

    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
    const NOW: u64 = 1_111_111_111; // RFC 6238: 6-digit SHA1 code 050471 at this time

    fn world() -> Result<MemStore, String> {
        let s = MemStore::default();
        let secret = Secret::from_base32(SECRET).map_err(|e| e.to_string())?;
        s.enrolled.borrow_mut().insert(
            "alice".into(),
            Enrollment {
                account: "alice".into(),
                factors: vec![Factor::Totp(TotpFactor {
                    secret,
                    params: Params::DEFAULT,
                    enrolled_at: NOW,
                })],
            },
        );
        Ok(s)
    }

    fn run(
        store: &MemStore,
        config: &Config,
        user: &'static str,
        failed: bool,
        answer: &'static str,
    ) -> (Decision, Vec<String>) {
        let mut conv = Script {
            answers: vec![answer],
            prompts: vec![],
        };
        let req = Request {
            service: "sshd",
            user,
            rhost: Some("192.0.2.7"),
            password_failed: failed,
            now: NOW,
            code: CodeSource::Ask,
        };
        let d = authenticate(config, store, &Dir, &Sends::default(), &mut conv, &req);
        (d, conv.prompts)
    }

    #[test]
    fn right_code_logs_in_once_and_its_replay_is_refused() -> Result<(), String> {
        let s = world()?;
        let c = Config::default();
        let (d, prompts) = run(&s, &c, "alice", false, "050471");
        assert_eq!((d.outcome, d.event.reason), (Outcome::Success, Reason::Ok));
        assert_eq!(prompts, vec![CODE_PROMPT]);
        let (d, _) = run(&s, &c, "alice", false, "050 471");
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::ReplayedCode)
        );
        Ok(())
    }

    #[test]
    fn a_right_code_after_a_failed_password_is_not_spent() -> Result<(), String> {
        let s = world()?;
        let c = Config::default();
        let (d, prompts) = run(&s, &c, "alice", true, "050471");
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::PasswordFailed)
        );
        assert_eq!(prompts, vec![CODE_PROMPT]);
        assert_eq!(s.state.borrow().get("alice").map(|st| st.failures), None);
        let (d, _) = run(&s, &c, "alice", false, "050471");
        assert_eq!(d.outcome, Outcome::Success);
        Ok(())
    }

    #[test]
    fn wrong_codes_are_denied_and_counted() -> Result<(), String> {
        let s = world()?;
        let c = Config::default();
        for bad in ["000000", "12345", "abcdef", "0"] {
            let (d, _) = run(&s, &c, "alice", false, bad);
            assert_eq!(d.outcome, Outcome::Deny, "{bad:?}");
        }
        assert_eq!(s.state.borrow().get("alice").map(|st| st.failures), Some(4));
        Ok(())
    }

    #[test]
    fn empty_answers_are_refused_but_never_lock_the_user_out() -> Result<(), String> {
        let s = world()?;
        let c = Config::default();
        // More empty answers than max_failures: none is counted, none locks.
        for _ in 0..c.lockout.max_failures + 2 {
            let (d, prompts) = run(&s, &c, "alice", false, "");
            assert_eq!((d.outcome, d.event.reason), (Outcome::Deny, Reason::NoCode));
            assert_eq!(
                d.event.detail.as_deref(),
                Some("no code typed; not counted toward lockout")
            );
            assert_eq!(prompts, vec![CODE_PROMPT]);
        }
        let failures = s.state.borrow().get("alice").map_or(0, |st| st.failures);
        assert_eq!(failures, 0);
        let (d, _) = run(&s, &c, "alice", false, "050471");
        assert_eq!(d.outcome, Outcome::Success);
        Ok(())
    }

    #[test]
    fn a_one_field_login_too_short_for_a_code_is_a_counted_wrong_code() -> Result<(), String> {
        let s = world()?;
        let c = Config::default();
        for field in ["", "123", "12345"] {
            // As the concat line cuts it: all code, no password (so the password check
            // would fail too; a password-less account under nullok would get this far).
            let cut = cut_code(field.as_bytes(), 6);
            let mut conv = Script {
                answers: vec![],
                prompts: vec![],
            };
            let req = req_for("alice", CodeSource::Field(cut.code));
            let d = authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req);
            assert_eq!(
                (d.outcome, d.event.reason),
                (Outcome::Deny, Reason::WrongCode),
                "{field:?}"
            );
        }
        assert_eq!(s.state.borrow().get("alice").map(|st| st.failures), Some(3));
        Ok(())
    }

    #[test]
    fn everyone_gets_the_same_prompt_before_the_password_is_verified() -> Result<(), String> {
        let s = world()?;
        let mut c = Config::default();
        for unenrolled in [Unenrolled::Deny, Unenrolled::Allow] {
            c.unenrolled = unenrolled;
            for user in ["alice", "bob", "nobody-here"] {
                let (d, prompts) = run(&s, &c, user, true, "123456");
                assert_eq!(d.outcome, Outcome::Deny);
                assert_eq!(prompts, vec![CODE_PROMPT], "{user}");
            }
        }
        Ok(())
    }

    #[test]
    fn unenrolled_users_follow_the_policy() -> Result<(), String> {
        let s = world()?;
        let mut c = Config::default();
        let (d, prompts) = run(&s, &c, "bob", false, "123456");
        assert_eq!(
            (d.outcome, d.event.reason, prompts.len()),
            (Outcome::Deny, Reason::NotEnrolled, 1)
        );
        c.unenrolled = Unenrolled::Allow;
        let (d, prompts) = run(&s, &c, "bob", false, "123456");
        assert_eq!((d.outcome, prompts.len()), (Outcome::Ignore, 0));
        Ok(())
    }

    #[test]
    fn the_audit_line_never_holds_the_code() -> Result<(), String> {
        let s = world()?;
        let (d, _) = run(&s, &Config::default(), "alice", false, "050471");
        let line = d.event.to_string();
        assert!(!line.contains("050471") && !line.contains(SECRET), "{line}");
        assert!(
            line.contains("user=alice") && line.contains("outcome=success"),
            "{line}"
        );
        Ok(())
    }

    fn split(c: &Config, s: &MemStore, user: &str, field: &str) -> (String, Option<String>) {
        let req = req_for(user, CodeSource::Ask);
        let sp = split_field(c, s, &Dir, &req, field.as_bytes());
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (text(&sp.password), sp.code.map(|c| text(&c)))
    }

    #[test]
    fn the_code_is_cut_from_the_end_of_the_field_for_everyone_alike() -> Result<(), String> {
        let s = world()?;
        let mut c = Config::default();
        let want = ("hunter2".to_string(), Some("050471".to_string()));
        assert_eq!(split(&c, &s, "alice", "hunter2050471"), want);
        assert_eq!(split(&c, &s, "bob", "hunter2050471"), want);
        assert_eq!(split(&c, &s, "nobody-here", "hunter2050471"), want);
        assert_eq!(
            split(&c, &s, "alice", "123"),
            (String::new(), Some("123".to_string()))
        );
        c.unenrolled = Unenrolled::Allow;
        assert_eq!(
            split(&c, &s, "bob", "hunter2050471"),
            ("hunter2050471".to_string(), None)
        );
        assert_eq!(split(&c, &s, "alice", "hunter2050471"), want);
        Ok(())
    }

    #[test]
    fn a_code_from_the_field_is_checked_without_asking() -> Result<(), String> {
        let s = world()?;
        let c = Config::default();
        for (failed, code, outcome) in [
            (true, "050471", Outcome::Deny),
            (false, "000000", Outcome::Deny),
            (false, "050471", Outcome::Success),
        ] {
            let mut conv = Script {
                answers: vec![],
                prompts: vec![],
            };
            let req = Request {
                service: "sshd",
                user: "alice",
                rhost: None,
                password_failed: failed,
                now: NOW,
                code: CodeSource::Field(Some(Zeroizing::new(code.as_bytes().to_vec()))),
            };
            let d = authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req);
            assert_eq!(d.outcome, outcome, "{failed} {code}");
            assert!(conv.prompts.is_empty());
        }
        Ok(())
    }

    #[test]
    fn too_many_wrong_codes_lock_the_account_and_say_for_how_long() -> Result<(), String> {
        let s = world()?;
        let c = Config {
            lockout: Lockout {
                max_failures: 3,
                window: 900,
                duration: 300,
            },
            ..Config::default()
        };
        let mut last = None;
        for _ in 0..3 {
            let mut conv = Script {
                answers: vec!["000000"],
                prompts: vec![],
            };
            let req = Request {
                service: "sshd",
                user: "alice",
                rhost: None,
                password_failed: false,
                now: NOW,
                code: CodeSource::Ask,
            };
            last = Some((
                authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req),
                conv,
            ));
        }
        let (d, conv) = last.ok_or("no run")?;
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::WrongCode)
        );
        assert_eq!(
            conv.errors(),
            vec!["error: Too many failed attempts; try again in 5 minutes."]
        );
        // Now even the right code is refused without a prompt, and nothing more is counted.
        let mut conv = Script {
            answers: vec!["050471"],
            prompts: vec![],
        };
        let req = Request {
            service: "sshd",
            user: "alice",
            rhost: None,
            password_failed: false,
            now: NOW + 1,
            code: CodeSource::Ask,
        };
        let d = authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req);
        assert_eq!((d.outcome, d.event.reason), (Outcome::Deny, Reason::Locked));
        assert_eq!(
            conv.prompts,
            vec!["error: Too many failed attempts; try again in 5 minutes."]
        );
        // Before the password is verified a locked user looks like anyone else.
        let (d, prompts) = run(&s, &c, "alice", true, "050471");
        assert_eq!(
            (d.outcome, prompts),
            (Outcome::Deny, vec![CODE_PROMPT.to_string()])
        );
        // After the lock, the right code works.
        let mut conv = Script {
            answers: vec!["050471"],
            prompts: vec![],
        };
        let req = Request {
            service: "sshd",
            user: "alice",
            rhost: None,
            password_failed: false,
            now: NOW + 300,
            code: CodeSource::Ask,
        };
        // NOW + 300 is 10 steps later: use that step's code.
        let later = crate::otp::totp_at_step(
            b"12345678901234567890",
            crate::otp::step_at(NOW + 300, 30),
            &Params::DEFAULT,
        )
        .map(|c| c.to_string())
        .ok_or("code")?;
        conv.answers = vec![Box::leak(later.into_boxed_str())];
        assert_eq!(
            authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req).outcome,
            Outcome::Success
        );
        Ok(())
    }

    #[test]
    fn lock_messages_round_up_to_whole_minutes() {
        assert_eq!(
            locked_message(1000, 1000 - 61),
            "Too many failed attempts; try again in 2 minutes."
        );
        assert_eq!(
            locked_message(1000, 999),
            "Too many failed attempts; try again in 1 minute."
        );
    }

    fn with_recovery(s: &mut MemStore, n: usize) -> Result<Vec<String>, String> {
        let set = crate::recovery::issue(n).map_err(|e| e.to_string())?;
        let mut all = s.enrolled.borrow_mut();
        let e = all.get_mut("alice").ok_or("alice")?;
        e.set_recovery(crate::enrollment::RecoveryFactor {
            salt: set.salt,
            hashes: set.hashes,
            issued_at: 0,
        });
        Ok(set.codes.iter().map(|c| c.to_string()).collect())
    }

    fn login(s: &MemStore, answer: String, code: CodeSource) -> (Decision, Vec<String>) {
        let mut conv = Script {
            answers: vec![Box::leak(answer.into_boxed_str())],
            prompts: vec![],
        };
        let req = Request {
            service: "sshd",
            user: "alice",
            rhost: None,
            password_failed: false,
            now: NOW,
            code,
        };
        let d = authenticate(
            &Config::default(),
            s,
            &Dir,
            &Sends::default(),
            &mut conv,
            &req,
        );
        (d, conv.prompts)
    }

    #[test]
    fn a_recovery_code_logs_in_once_and_says_how_many_are_left() -> Result<(), String> {
        let mut s = world()?;
        let codes = with_recovery(&mut s, 5)?;
        let (d, prompts) = login(
            &s,
            codes[2].to_uppercase().replace('-', " "),
            CodeSource::Ask,
        );
        assert_eq!(
            (d.outcome, d.event.factor),
            (Outcome::Success, Some("recovery"))
        );
        assert_eq!(
            prompts.last().map(String::as_str),
            Some("info: Recovery code accepted; 4 left.")
        );
        let (d, _) = login(&s, codes[2].clone(), CodeSource::Ask);
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::ReplayedCode)
        );
        let (d, prompts) = login(&s, codes[0].clone(), CodeSource::Ask);
        assert_eq!(d.outcome, Outcome::Success);
        assert_eq!(
            prompts.last().map(String::as_str),
            Some("info: Recovery code accepted; 3 left. Ask your administrator for new ones (twofa-enroll recovery).")
        );
        let (d, _) = login(&s, "0000-0000-0000".into(), CodeSource::Ask);
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::WrongCode)
        );
        Ok(())
    }

    #[test]
    fn a_recovery_code_works_in_one_field_too() -> Result<(), String> {
        let mut s = world()?;
        let codes = with_recovery(&mut s, 2)?;
        let field = format!("hunter2{}", codes[1]);
        let sp = split_field(
            &Config::default(),
            &s,
            &Dir,
            &req_for("alice", CodeSource::Ask),
            field.as_bytes(),
        );
        assert_eq!(sp.password.as_slice(), b"hunter2");
        let (d, _) = login(&s, String::new(), CodeSource::Field(sp.code));
        assert_eq!(
            (d.outcome, d.event.factor),
            (Outcome::Success, Some("recovery"))
        );
        Ok(())
    }

    #[test]
    fn an_hotp_token_logs_in_with_look_ahead_and_each_press_works_once() -> Result<(), String> {
        let s = MemStore::default();
        let secret = Secret::from_base32(SECRET).map_err(|e| e.to_string())?;
        s.enrolled.borrow_mut().insert(
            "bob".into(),
            Enrollment {
                account: "bob".into(),
                factors: vec![Factor::Hotp(crate::enrollment::HotpFactor {
                    secret,
                    params: Params::DEFAULT,
                    counter: 0,
                    enrolled_at: 0,
                })],
            },
        );
        let c = Config::default();
        let go = |answer: &'static str| {
            let mut conv = Script {
                answers: vec![answer],
                prompts: vec![],
            };
            let req = Request {
                service: "sshd",
                user: "bob",
                rhost: None,
                password_failed: false,
                now: NOW,
                code: CodeSource::Ask,
            };
            authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req)
        };
        // RFC 4226: counter 3 = 969429, 2 = 359152, 4 = 338314, 15 would be beyond look-ahead.
        let d = go("969429");
        assert_eq!(
            (d.outcome, d.event.factor),
            (Outcome::Success, Some("hotp"))
        );
        assert_eq!(go("969429").event.reason, Reason::ReplayedCode);
        assert_eq!(go("359152").outcome, Outcome::Deny); // an older press
        assert_eq!(go("338314").outcome, Outcome::Success);
        Ok(())
    }

    fn run_with(
        c: &Config,
        s: &MemStore,
        user: &'static str,
        answers: Vec<&'static str>,
    ) -> (Decision, Vec<String>) {
        let mut conv = Script {
            answers,
            prompts: vec![],
        };
        let d = authenticate(
            c,
            s,
            &Dir,
            &Sends::default(),
            &mut conv,
            &req_for(user, CodeSource::Ask),
        );
        (d, conv.prompts)
    }

    #[test]
    fn unenrolled_users_in_grace_are_told_until_when_then_denied() -> Result<(), String> {
        let s = world()?;
        let c = Config {
            unenrolled: Unenrolled::Grace(NOW + 86_400),
            ..Config::default()
        };
        let (d, prompts) = run_with(&c, &s, "bob", vec![]);
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Ignore, Reason::Grace)
        );
        assert_eq!(prompts.len(), 1);
        assert!(
            prompts[0]
                .starts_with("notice: Two-factor authentication will be required from 2005-03-19"),
            "{prompts:?}"
        );
        let c = Config {
            unenrolled: Unenrolled::Grace(NOW),
            ..Config::default()
        };
        let (d, prompts) = run_with(&c, &s, "bob", vec!["123456"]);
        assert_eq!(
            (d.outcome, d.event.reason, prompts),
            (
                Outcome::Deny,
                Reason::GraceExpired,
                vec![CODE_PROMPT.to_string()]
            )
        );
        Ok(())
    }

    #[test]
    fn exempt_groups_and_services_skip_the_code_only_after_the_password() -> Result<(), String> {
        let s = world()?;
        let c = Config {
            exempt_groups: vec!["backup".into()],
            exempt_services: vec!["console".into()],
            ..Config::default()
        };
        let (d, prompts) = run_with(&c, &s, "carol", vec![]);
        assert_eq!(
            (d.outcome, d.event.reason, prompts.len()),
            (Outcome::Ignore, Reason::ExemptGroup, 0)
        );
        let mut conv = Script {
            answers: vec![],
            prompts: vec![],
        };
        let req = Request {
            service: "console",
            ..req_for("alice", CodeSource::Ask)
        };
        assert_eq!(
            authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req)
                .event
                .reason,
            Reason::ExemptService
        );
        // A wrong password is never let through by an exemption.
        let mut conv = Script {
            answers: vec!["1"],
            prompts: vec![],
        };
        let req = Request {
            password_failed: true,
            ..req_for("carol", CodeSource::Ask)
        };
        let d = authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req);
        assert_eq!(
            (d.outcome, conv.prompts),
            (Outcome::Deny, vec![CODE_PROMPT.to_string()])
        );
        // enforce_groups: only members need a code.
        let c = Config {
            enforce_groups: vec!["admins".into()],
            ..Config::default()
        };
        assert_eq!(
            run_with(&c, &s, "alice", vec![]).0.event.reason,
            Reason::NotEnforced
        );
        Ok(())
    }

    #[test]
    fn a_remembered_host_needs_no_code_for_a_while_and_never_an_empty_one() -> Result<(), String> {
        let s = world()?;
        let c = Config {
            remember_host_seconds: 3600,
            ..Config::default()
        };
        let (d, _) = run_with(&c, &s, "alice", vec!["050471"]);
        assert_eq!(d.outcome, Outcome::Success);
        let (d, prompts) = run_with(&c, &s, "alice", vec![]);
        assert_eq!(
            (d.outcome, d.event.reason, prompts.len()),
            (Outcome::Success, Reason::RememberedHost, 0)
        );
        let mut conv = Script {
            answers: vec![],
            prompts: vec![],
        };
        let other = Request {
            rhost: Some("198.51.100.9"),
            ..req_for("alice", CodeSource::Ask)
        };
        assert_eq!(
            authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &other)
                .event
                .reason,
            Reason::ConversationFailed
        );
        let mut conv = Script {
            answers: vec![],
            prompts: vec![],
        };
        let later = Request {
            now: NOW + 3600,
            ..req_for("alice", CodeSource::Ask)
        };
        assert_eq!(
            authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &later)
                .event
                .reason,
            Reason::ConversationFailed
        );
        let mut conv = Script {
            answers: vec![],
            prompts: vec![],
        };
        let empty = Request {
            rhost: Some(""),
            ..req_for("alice", CodeSource::Ask)
        };
        assert_eq!(
            authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &empty)
                .event
                .reason,
            Reason::ConversationFailed
        );
        Ok(())
    }

    #[test]
    fn an_old_enrollment_still_works_and_says_so() -> Result<(), String> {
        let s = world()?;
        let c = Config {
            enrollment_max_age_days: 30,
            ..Config::default()
        };
        let mut conv = Script {
            answers: vec!["050471"],
            prompts: vec![],
        };
        let req = Request {
            now: NOW + 40 * 86_400,
            ..req_for("alice", CodeSource::Ask)
        };
        let code = crate::otp::totp_at_step(
            b"12345678901234567890",
            crate::otp::step_at(req.now, 30),
            &Params::DEFAULT,
        )
        .map(|c| c.to_string())
        .ok_or("code")?;
        conv.answers = vec![Box::leak(code.into_boxed_str())];
        let d = authenticate(&c, &s, &Dir, &Sends::default(), &mut conv, &req);
        assert_eq!(d.outcome, Outcome::Success);
        assert_eq!(conv.prompts.last().map(String::as_str), Some("info: Your 2FA enrollment is 40 days old; re-enroll with twofa-enroll (ask your administrator)."));
        Ok(())
    }

    /// A conversation that answers the code of the secret it was shown.
    struct App {
        shown: Vec<String>,
        wrong: bool,
    }

    impl Conversation for App {
        fn ask_hidden(&mut self, _: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
            let key = self
                .shown
                .iter()
                .find_map(|m| m.split("enter this key: ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .ok_or(ConversationError)?;
            let secret = Secret::from_base32(key).map_err(|_| ConversationError)?;
            let code = crate::otp::totp_at_step(
                secret.bytes(),
                crate::otp::step_at(NOW, 30),
                &Params::DEFAULT,
            )
            .ok_or(ConversationError)?;
            let answer = if self.wrong {
                "000000".to_string()
            } else {
                code.to_string()
            };
            Ok(Some(Zeroizing::new(answer.into_bytes())))
        }
        fn show_error(&mut self, m: &str) {
            self.shown.push(format!("error: {m}"));
        }
        fn show_notice(&mut self, m: &str) {
            self.shown.push(m.to_string());
        }
        fn show_info(&mut self, m: &str) {
            self.shown.push(m.to_string());
        }
    }

    #[test]
    fn self_enrollment_shows_a_qr_code_and_saves_only_a_confirmed_secret() -> Result<(), String> {
        let s = world()?;
        let c = Config {
            unenrolled: Unenrolled::Enroll,
            ..Config::default()
        };
        let mut wrong = App {
            shown: vec![],
            wrong: true,
        };
        let d = authenticate(
            &c,
            &s,
            &Dir,
            &Sends::default(),
            &mut wrong,
            &req_for("bob", CodeSource::Ask),
        );
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::SelfEnrollFailed)
        );
        assert!(s.enrolled.borrow().get("bob").is_none());
        assert!(
            wrong.shown[0].contains("\u{2588}") && wrong.shown[0].contains("Scan this QR code")
        );

        let mut app = App {
            shown: vec![],
            wrong: false,
        };
        let d = authenticate(
            &c,
            &s,
            &Dir,
            &Sends::default(),
            &mut app,
            &req_for("bob", CodeSource::Ask),
        );
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Success, Reason::Enrolled)
        );
        let saved = s.enrolled.borrow().get("bob").cloned().ok_or("not saved")?;
        assert!(saved.totp().is_some());
        assert_eq!(saved.recovery().map(|r| r.hashes.len()), Some(10));
        assert!(app.shown[0].contains("these recovery codes each work once"));
        assert_eq!(
            app.shown.last().map(String::as_str),
            Some(SELF_ENROLLED_MESSAGE)
        );
        // The enrollment is no login: the state has the spent step and no last success.
        let state = s
            .state(&Dir.lookup("bob").ok().flatten().ok_or("bob")?)
            .ok();
        assert_eq!(
            state.map(|st| (st.totp_last_step.is_some(), st.last_success_at)),
            Some((true, None))
        );
        // The codes shown before the confirmation are the ones saved.
        let shown_code = app.shown[0]
            .lines()
            .find(|l| l.len() == 14 && l.as_bytes()[4] == b'-')
            .ok_or("no code shown")?;
        let n = crate::recovery::normalize(shown_code.as_bytes()).ok_or("shape")?;
        let r = saved.recovery().ok_or("no recovery")?;
        assert!(crate::recovery::find(&r.salt, &r.hashes, &n).is_some());
        // The confirmation code is spent: the same code can't log in.
        let code = app.ask_hidden("").map_err(|_| "code")?.ok_or("code")?;
        let code: &'static str =
            Box::leak(String::from_utf8_lossy(&code).into_owned().into_boxed_str());
        let (d, prompts) = run_with(&c, &s, "bob", vec![code]);
        assert_eq!(d.event.reason, Reason::ReplayedCode);
        assert_eq!(
            prompts.last().map(String::as_str),
            Some(format!("error: {REPLAYED_TOTP_MESSAGE}").as_str())
        );
        // A one-field login can't show a QR code.
        let d = authenticate(
            &c,
            &s,
            &Dir,
            &Sends::default(),
            &mut app,
            &req_for("carol", CodeSource::Field(None)),
        );
        assert_eq!(d.event.reason, Reason::SelfEnrollFailed);
        Ok(())
    }

    fn with_email(c: &mut Config) {
        c.delivery = crate::delivery::DeliveryPolicy {
            methods: vec![crate::delivery::MethodPolicy {
                method: crate::enrollment::Method::Email,
                program: "/x".into(),
                run_as: "twofa".into(),
                timeout_seconds: 10,
                code_ttl_seconds: 300,
                settings: vec![],
                destination_pattern: None,
            }],
            max_sends: 2,
            ..Default::default()
        };
    }

    fn email(to: &str) -> Factor {
        Factor::Delivery(DeliveryFactor {
            method: crate::enrollment::Method::Email,
            to: vec![to.into()],
        })
    }

    fn ask(
        c: &Config,
        s: &MemStore,
        d: &Sends,
        user: &str,
        answers: Vec<String>,
        now: u64,
    ) -> (Decision, Vec<String>) {
        let answers: Vec<&'static str> = answers
            .into_iter()
            .map(|a| &*Box::leak(a.into_boxed_str()))
            .collect();
        let mut conv = Script {
            answers,
            prompts: vec![],
        };
        let req = Request {
            now,
            ..req_for(user, CodeSource::Ask)
        };
        let dec = authenticate(c, s, &Dir, d, &mut conv, &req);
        (dec, conv.prompts)
    }

    #[test]
    fn an_email_only_user_gets_a_code_at_once_and_it_works_once_before_it_expires(
    ) -> Result<(), String> {
        let s = world()?;
        s.enrolled.borrow_mut().insert(
            "dave".into(),
            Enrollment {
                account: "dave".into(),
                factors: vec![email("dave@example.com")],
            },
        );
        let mut c = Config::default();
        with_email(&mut c);
        let d = Sends::default();
        // The sender's code is read back from the fake delivery, as the user reads their mail.
        let mut conv = Script {
            answers: vec![],
            prompts: vec![],
        };
        let req = Request {
            now: NOW,
            ..req_for("dave", CodeSource::Ask)
        };
        let dec = authenticate(&c, &s, &Dir, &d, &mut conv, &req);
        assert_eq!(dec.event.reason, Reason::ConversationFailed);
        assert_eq!(
            conv.prompts[0],
            "notice: A code was sent to d***@example.com. It is valid for 5 minutes."
        );
        assert_eq!(conv.prompts[1], CODE_PROMPT);
        let code = d
            .sent
            .borrow()
            .last()
            .map(|(_, c)| c.clone())
            .ok_or("nothing sent")?;
        // A new login sends a new code: the old one no longer works.
        let (dec, _) = ask(&c, &s, &d, "dave", vec![code.clone()], NOW + 1);
        assert_eq!(
            (dec.outcome, dec.event.reason),
            (Outcome::Deny, Reason::WrongCode)
        );
        let code = d
            .sent
            .borrow()
            .last()
            .map(|(_, c)| c.clone())
            .ok_or("nothing sent")?;
        assert_eq!(d.sent.borrow().len(), 2);
        // The send limit (2) is reached: a third login is refused before anything is sent.
        let (dec, prompts) = ask(&c, &s, &d, "dave", vec![code.clone()], NOW + 2);
        assert_eq!(
            (dec.outcome, dec.event.reason),
            (Outcome::Deny, Reason::SendLimited)
        );
        assert!(
            prompts[0].starts_with("error: Too many codes were sent"),
            "{prompts:?}"
        );
        assert_eq!(d.sent.borrow().len(), 2);
        Ok(())
    }

    #[test]
    fn a_sent_code_logs_in_once_and_an_expired_one_is_refused() -> Result<(), String> {
        let s = world()?;
        s.enrolled.borrow_mut().insert(
            "dave".into(),
            Enrollment {
                account: "dave".into(),
                factors: vec![email("dave@example.com")],
            },
        );
        let mut c = Config::default();
        with_email(&mut c);
        c.delivery.max_sends = 0;
        let d = Sends::default();
        // Conversation that answers with the code just sent.
        struct Reader<'a>(&'a Sends, Vec<String>);
        impl Conversation for Reader<'_> {
            fn ask_hidden(
                &mut self,
                p: &str,
            ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
                self.1.push(p.to_string());
                let code = self
                    .0
                    .sent
                    .borrow()
                    .last()
                    .map(|(_, c)| c.clone())
                    .ok_or(ConversationError)?;
                Ok(Some(Zeroizing::new(code.into_bytes())))
            }
            fn show_error(&mut self, m: &str) {
                self.1.push(m.to_string());
            }
            fn show_notice(&mut self, m: &str) {
                self.1.push(m.to_string());
            }
            fn show_info(&mut self, m: &str) {
                self.1.push(m.to_string());
            }
        }
        let mut r = Reader(&d, vec![]);
        let dec = authenticate(
            &c,
            &s,
            &Dir,
            &d,
            &mut r,
            &Request {
                now: NOW,
                ..req_for("dave", CodeSource::Ask)
            },
        );
        assert_eq!(
            (dec.outcome, dec.event.factor),
            (Outcome::Success, Some("email"))
        );
        let code = d
            .sent
            .borrow()
            .last()
            .map(|(_, c)| c.clone())
            .ok_or("nothing sent")?;
        assert_eq!(code.len(), 6);
        // Typed at a later login's prompt (after that login sent another), it is spent: refused.
        let (dec, _) = ask(&c, &s, &d, "dave", vec![code], NOW + 5);
        assert_eq!(dec.outcome, Outcome::Deny);
        // The code of that later login, typed after it expired.
        let late = d
            .sent
            .borrow()
            .last()
            .map(|(_, c)| c.clone())
            .ok_or("nothing sent")?;
        let mut conv = Script {
            answers: vec![Box::leak(late.into_boxed_str())],
            prompts: vec![],
        };
        let dec = authenticate(
            &c,
            &s,
            &Dir,
            &Sends {
                fail: true,
                ..Default::default()
            },
            &mut conv,
            &Request {
                now: NOW + 5 + 301,
                ..req_for("dave", CodeSource::Ask)
            },
        );
        // (That login's own send failed, so nothing new is pending: the old code is checked.)
        assert_eq!(
            (dec.outcome, dec.event.reason),
            (Outcome::Deny, Reason::DeliveryFailed)
        );
        Ok(())
    }

    #[test]
    fn an_app_user_asks_for_an_email_code_with_an_empty_answer() -> Result<(), String> {
        let s = world()?;
        {
            let mut all = s.enrolled.borrow_mut();
            let e = all.get_mut("alice").ok_or("alice")?;
            e.factors.push(email("alice@example.com"));
        }
        let mut c = Config::default();
        with_email(&mut c);
        let d = Sends::default();
        // The app's code works at the first prompt, which offers the fallback.
        let (dec, prompts) = ask(&c, &s, &d, "alice", vec!["050471".into()], NOW);
        assert_eq!(dec.outcome, Outcome::Success);
        assert_eq!(
            prompts,
            vec!["Verification code (or Enter to get one by email): "]
        );
        assert!(d.sent.borrow().is_empty());
        // An empty answer sends a code and asks again.
        let (dec, prompts) = ask(
            &c,
            &s,
            &d,
            "alice",
            vec![String::new(), "000000".into()],
            NOW + 30,
        );
        assert_eq!(dec.outcome, Outcome::Deny);
        assert_eq!(
            prompts[1],
            "notice: A code was sent to a***@example.com. It is valid for 5 minutes."
        );
        assert_eq!(prompts[2], CODE_PROMPT);
        assert_eq!(d.sent.borrow().len(), 1);
        // Nothing is ever sent before the password is verified, nor in a one-field login.
        let mut conv = Script {
            answers: vec![""],
            prompts: vec![],
        };
        let dec = authenticate(
            &c,
            &s,
            &Dir,
            &d,
            &mut conv,
            &Request {
                password_failed: true,
                ..req_for("alice", CodeSource::Ask)
            },
        );
        assert_eq!(
            (dec.outcome, conv.prompts),
            (Outcome::Deny, vec![CODE_PROMPT.to_string()])
        );
        let mut conv = Script {
            answers: vec![],
            prompts: vec![],
        };
        let _ = authenticate(
            &c,
            &s,
            &Dir,
            &d,
            &mut conv,
            &req_for("alice", CodeSource::Field(Some(Zeroizing::new(Vec::new())))),
        );
        assert_eq!(d.sent.borrow().len(), 1);
        Ok(())
    }

    #[test]
    fn a_failed_delivery_falls_back_to_the_app_or_denies() -> Result<(), String> {
        let s = world()?;
        s.enrolled.borrow_mut().insert(
            "dave".into(),
            Enrollment {
                account: "dave".into(),
                factors: vec![email("dave@example.com")],
            },
        );
        let mut c = Config::default();
        with_email(&mut c);
        let failing = Sends {
            fail: true,
            ..Default::default()
        };
        let (dec, prompts) = ask(&c, &s, &failing, "dave", vec![], NOW);
        assert_eq!(
            (dec.outcome, dec.event.reason),
            (Outcome::Deny, Reason::DeliveryFailed)
        );
        assert_eq!(prompts, vec!["error: Could not send the code; use your authenticator app or a recovery code, or contact your administrator."]);
        assert!(dec
            .event
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("connection refused")));
        // email first, TOTP second: the failure is told and the app still works.
        c.factors = vec!["email".into(), "totp".into()];
        {
            let mut all = s.enrolled.borrow_mut();
            let e = all.get_mut("alice").ok_or("alice")?;
            e.factors.push(email("alice@example.com"));
        }
        let (dec, prompts) = ask(&c, &s, &failing, "alice", vec!["050471".into()], NOW);
        assert_eq!(dec.outcome, Outcome::Success, "{prompts:?}");
        assert_eq!(prompts[1], CODE_PROMPT);
        Ok(())
    }

    #[test]
    fn factors_the_policy_does_not_offer_do_not_count() -> Result<(), String> {
        let s = world()?;
        let c = Config {
            factors: vec!["email".into()],
            ..Config::default()
        };
        let (dec, _) = run_with(&c, &s, "alice", vec!["050471"]);
        assert_eq!(
            (dec.outcome, dec.event.reason),
            (Outcome::Deny, Reason::NotEnrolled)
        );
        Ok(())
    }

    #[test]
    fn a_watermark_ahead_of_the_clock_is_reported_as_such() -> Result<(), String> {
        let s = world()?;
        let c = Config::default();
        let acct = Account {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
        };
        s.accept_step(&acct, crate::otp::step_at(NOW, 30) + 1_000_000, NOW)
            .map_err(|e| e.to_string())?;
        let (d, _) = run_with(&c, &s, "alice", vec!["050471"]);
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::WatermarkAhead)
        );
        Ok(())
    }

    #[test]
    fn a_failed_send_is_what_the_log_says_even_when_a_recovery_code_could_be_typed(
    ) -> Result<(), String> {
        let mut s = world()?;
        s.enrolled.borrow_mut().insert(
            "dave".into(),
            Enrollment {
                account: "dave".into(),
                factors: vec![email("dave@example.com")],
            },
        );
        {
            let set = crate::recovery::issue(2).map_err(|e| e.to_string())?;
            let mut all = s.enrolled.borrow_mut();
            let e = all.get_mut("dave").ok_or("dave")?;
            e.set_recovery(crate::enrollment::RecoveryFactor {
                salt: set.salt,
                hashes: set.hashes,
                issued_at: 0,
            });
        }
        let _ = &mut s;
        let mut c = Config::default();
        with_email(&mut c);
        let failing = Sends {
            fail: true,
            ..Default::default()
        };
        let (d, prompts) = ask(&c, &s, &failing, "dave", vec!["0000-0000-0000".into()], NOW);
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::DeliveryFailed)
        );
        assert!(
            d.event
                .detail
                .as_deref()
                .is_some_and(|x| x.contains("connection refused") && x.contains("failure 1")),
            "{:?}",
            d.event.detail
        );
        assert_eq!(prompts[1], CODE_PROMPT);
        // Nothing typed: still the send failure, and not counted.
        let (d, _) = ask(&c, &s, &failing, "dave", vec![String::new()], NOW + 1);
        assert_eq!(d.event.reason, Reason::DeliveryFailed);
        assert_eq!(s.state.borrow().get("dave").map(|st| st.failures), Some(1));
        Ok(())
    }
}
