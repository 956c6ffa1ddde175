//! Self-enrollment at login (`unenrolled = "enroll"`), after a verified password.

use super::CODE_PROMPT;
use super::{decide, store_failed, CodeSource, Conversation, ConversationError, Decision, Request};
use crate::audit::{Event, Outcome, Reason};
use crate::config::Config;
use crate::enrollment::{Enrollment, Factor, RecoveryFactor, TotpFactor};
use crate::identity::Account;
use crate::otp;
use crate::qr;
use crate::recovery;
use crate::secret::{Secret, SecretError};
use crate::store::{Confirmation, Store};
use crate::uri;

/// What a user reads once their self-enrollment is saved: the confirming code is spent.
pub const SELF_ENROLLED_MESSAGE: &str = "You are enrolled. The code you just typed is now used up: at your next login, use the next code from your app.";

/// Self-enrollment at login (`unenrolled = "enroll"`), after a verified password: a new
/// secret shown as a QR code and URI, one code to confirm, recovery codes shown once, and the
/// root-owned enrollment written. A wrong code writes nothing: the user is asked to enroll
/// again at the next login.
pub(super) fn self_enroll(
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
    // Recovery codes are made now and shown with the QR code, before the confirmation: sshd
    // shows messages that come after a successful authentication only to an interactive
    // session, so an `ssh host command` login would never see them. They only work once the
    // enrollment is written.
    let (secret, recovery_set) = match new_factors(config) {
        Ok(f) => f,
        Err(e) => {
            return decide(
                event,
                Outcome::Error,
                Reason::InternalError,
                Some(e.to_string()),
            )
        }
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

/// A new secret for the policy's algorithm, and the policy's number of recovery codes (none
/// if it issues none).
fn new_factors(config: &Config) -> Result<(Secret, Option<recovery::Issued>), SecretError> {
    let secret = Secret::generate(config.totp.params.algorithm.new_secret_bytes())?;
    let codes = match config.recovery_codes {
        0 => None,
        n => Some(recovery::issue(n)?),
    };
    Ok((secret, codes))
}
