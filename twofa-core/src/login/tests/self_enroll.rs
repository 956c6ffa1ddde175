//! Self-enrollment at login: a QR code, one confirming code, recovery codes shown once.

use super::fakes::*;
use crate::audit::{Outcome, Reason};
use crate::config::{Config, Unenrolled};
use crate::login::{CodeSource, REPLAYED_TOTP_MESSAGE, SELF_ENROLLED_MESSAGE};
use crate::store::Store;

#[test]
fn self_enrollment_shows_a_qr_code_and_saves_only_a_confirmed_secret() -> Result<(), String> {
    let s = world()?;
    let c = Config {
        unenrolled: Unenrolled::Enroll,
        ..Config::default()
    };
    let d = Sends::default();
    let bob = req_for("bob", CodeSource::Ask);
    let mut wrong = User::typing(["000000"]);
    let dec = login_with(&c, &s, &d, &mut wrong, &bob);
    assert_eq!(
        (dec.outcome, dec.event.reason),
        (Outcome::Deny, Reason::SelfEnrollFailed)
    );
    assert!(s.enrolled.borrow().get("bob").is_none());
    assert!(
        wrong.prompts[0].contains("\u{2588}") && wrong.prompts[0].contains("Scan this QR code")
    );

    let mut app = User::replying([Reply::CodeOfShownKey]);
    let dec = login_with(&c, &s, &d, &mut app, &bob);
    assert_eq!(
        (dec.outcome, dec.event.reason),
        (Outcome::Success, Reason::Enrolled)
    );
    let saved = s.enrolled.borrow().get("bob").cloned().ok_or("not saved")?;
    let totp = saved.totp().ok_or("no TOTP saved")?;
    assert_eq!(saved.recovery().map(|r| r.hashes.len()), Some(10));
    assert!(app.prompts[0].contains("these recovery codes each work once"));
    assert_eq!(
        app.prompts.last(),
        Some(&format!("notice: {SELF_ENROLLED_MESSAGE}"))
    );
    // The enrollment is no login: the state has the spent step and no last success.
    let state = s.state(&account("bob")).ok();
    assert_eq!(
        state.map(|st| (st.totp_last_step.is_some(), st.last_success_at)),
        Some((true, None))
    );
    // The codes shown before the confirmation are the ones saved.
    let shown_code = app.prompts[0]
        .lines()
        .find(|l| l.len() == 14 && l.as_bytes()[4] == b'-')
        .ok_or("no code shown")?;
    let n = crate::recovery::normalize(shown_code.as_bytes()).ok_or("shape")?;
    let r = saved.recovery().ok_or("no recovery")?;
    assert!(crate::recovery::find(&r.salt, &r.hashes, &n).is_some());
    // The confirmation code is spent: the same code can't log in.
    let code = totp_at(totp.secret.bytes(), NOW).ok_or("code")?;
    let (dec, prompts) = run_with(&c, &s, "bob", [code]);
    assert_eq!(dec.event.reason, Reason::ReplayedCode);
    assert_eq!(
        prompts.last(),
        Some(&format!("error: {REPLAYED_TOTP_MESSAGE}"))
    );
    // A one-field login can't show a QR code.
    let carol = req_for("carol", CodeSource::Field(None));
    let dec = login_with(&c, &s, &d, &mut User::silent(), &carol);
    assert_eq!(dec.event.reason, Reason::SelfEnrollFailed);
    Ok(())
}
