//! Codes sent out of band: at once for a mail-only user, on an empty answer for an app user,
//! never before the password, once each, and a failed send is what the log says.

use zeroize::Zeroizing;

use super::fakes::*;
use crate::audit::{Outcome, Reason};
use crate::config::Config;
use crate::login::{CodeSource, Request, CODE_PROMPT};

/// The store of `world`, with dave getting codes by mail only.
fn dave_by_mail() -> Result<MemStore, String> {
    let s = world()?;
    s.enroll("dave", email("dave@example.com"));
    Ok(s)
}

fn mail_policy() -> Config {
    let mut c = Config::default();
    with_email(&mut c);
    c
}

#[test]
fn an_email_only_user_gets_a_code_at_once_and_it_works_once_before_it_expires() -> Result<(), String>
{
    let s = dave_by_mail()?;
    let c = mail_policy();
    let d = Sends::default();
    let mut conv = User::silent();
    let dec = login_with(&c, &s, &d, &mut conv, &req_for("dave", CodeSource::Ask));
    assert_eq!(dec.event.reason, Reason::ConversationFailed);
    assert_eq!(
        conv.prompts[0],
        "notice: A code was sent to d***@example.com. It is valid for 5 minutes."
    );
    assert_eq!(conv.prompts[1], CODE_PROMPT);
    // The sender's code is read back from the fake delivery, as the user reads their mail.
    let code = d.last_code().ok_or("nothing sent")?;
    // A new login sends a new code: the old one no longer works.
    let (dec, _) = ask(&c, &s, &d, "dave", [code], NOW + 1);
    assert_eq!(
        (dec.outcome, dec.event.reason),
        (Outcome::Deny, Reason::WrongCode)
    );
    let code = d.last_code().ok_or("nothing sent")?;
    assert_eq!(d.sent.borrow().len(), 2);
    // The send limit (2) is reached: a third login is refused before anything is sent.
    let (dec, prompts) = ask(&c, &s, &d, "dave", [code], NOW + 2);
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
    let s = dave_by_mail()?;
    let mut c = mail_policy();
    c.delivery.max_sends = 0;
    let d = Sends::default();
    let dec = login_with(
        &c,
        &s,
        &d,
        &mut User::reading(&d),
        &req_for("dave", CodeSource::Ask),
    );
    assert_eq!(
        (dec.outcome, dec.event.factor),
        (Outcome::Success, Some("email"))
    );
    let code = d.last_code().ok_or("nothing sent")?;
    assert_eq!(code.len(), 6);
    // Typed at a later login's prompt (after that login sent another), it is spent: refused.
    let (dec, _) = ask(&c, &s, &d, "dave", [code], NOW + 5);
    assert_eq!(dec.outcome, Outcome::Deny);
    // The code of that later login, typed after it expired.
    let late = d.last_code().ok_or("nothing sent")?;
    let req = Request {
        now: NOW + 5 + 301,
        ..req_for("dave", CodeSource::Ask)
    };
    let dec = login_with(&c, &s, &Sends::failing(), &mut User::typing([late]), &req);
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
    s.enroll("alice", email("alice@example.com"));
    let c = mail_policy();
    let d = Sends::default();
    // The app's code works at the first prompt, which offers the fallback.
    let (dec, prompts) = ask(&c, &s, &d, "alice", ["050471"], NOW);
    assert_eq!(dec.outcome, Outcome::Success);
    assert_eq!(
        prompts,
        vec!["Verification code (or Enter to get one by email): "]
    );
    assert!(d.sent.borrow().is_empty());
    // An empty answer sends a code and asks again.
    let (dec, prompts) = ask(&c, &s, &d, "alice", ["", "000000"], NOW + 30);
    assert_eq!(dec.outcome, Outcome::Deny);
    assert_eq!(
        prompts[1],
        "notice: A code was sent to a***@example.com. It is valid for 5 minutes."
    );
    assert_eq!(prompts[2], CODE_PROMPT);
    assert_eq!(d.sent.borrow().len(), 1);
    // Nothing is ever sent before the password is verified, nor in a one-field login.
    let mut conv = User::typing([""]);
    let failed = Request {
        password_failed: true,
        ..req_for("alice", CodeSource::Ask)
    };
    let dec = login_with(&c, &s, &d, &mut conv, &failed);
    assert_eq!(
        (dec.outcome, conv.prompts),
        (Outcome::Deny, vec![CODE_PROMPT.to_string()])
    );
    let field = req_for("alice", CodeSource::Field(Some(Zeroizing::new(Vec::new()))));
    let _ = login_with(&c, &s, &d, &mut User::silent(), &field);
    assert_eq!(d.sent.borrow().len(), 1);
    Ok(())
}

#[test]
fn a_failed_delivery_falls_back_to_the_app_or_denies() -> Result<(), String> {
    let s = dave_by_mail()?;
    let mut c = mail_policy();
    let failing = Sends::failing();
    let (dec, prompts) = ask(&c, &s, &failing, "dave", [""; 0], NOW);
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
    s.enroll("alice", email("alice@example.com"));
    let (dec, prompts) = ask(&c, &s, &failing, "alice", ["050471"], NOW);
    assert_eq!(dec.outcome, Outcome::Success, "{prompts:?}");
    assert_eq!(prompts[1], CODE_PROMPT);
    Ok(())
}

#[test]
fn a_failed_send_is_what_the_log_says_even_when_a_recovery_code_could_be_typed(
) -> Result<(), String> {
    let s = dave_by_mail()?;
    s.with_recovery("dave", 2)?;
    let c = mail_policy();
    let failing = Sends::failing();
    let (d, prompts) = ask(&c, &s, &failing, "dave", ["0000-0000-0000"], NOW);
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
    let (d, _) = ask(&c, &s, &failing, "dave", [""], NOW + 1);
    assert_eq!(d.event.reason, Reason::DeliveryFailed);
    assert_eq!(s.failures("dave"), Some(1));
    Ok(())
}
