//! Which of the user's factors an answer matches, without spending anything.

use crate::audit::Reason;
use crate::config::Config;
use crate::enrollment::Enrollment;
use crate::otp;
use crate::recovery;
use crate::state::UserState;

/// What an answer matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Matched {
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
pub(super) fn match_answer(
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

/// Whether the TOTP watermark lies beyond every step the window accepts now.
pub(super) fn watermark_ahead(
    config: &Config,
    e: &Enrollment,
    state: &UserState,
    now: u64,
) -> bool {
    let Some(t) = e.totp() else {
        return false;
    };
    let newest = otp::step_at(now, t.params.period).saturating_add(config.totp.window);
    state.totp_last_step.is_some_and(|w| w >= newest)
}
