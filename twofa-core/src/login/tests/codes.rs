//! Codes from an app or token: accepted once, refused and counted when wrong.

use super::fakes::*;
use crate::audit::{Outcome, Reason};
use crate::config::{Config, Unenrolled};
use crate::enrollment::{Factor, HotpFactor};
use crate::login::{CodeSource, Request, CODE_PROMPT};
use crate::otp::Params;
use crate::secret::Secret;
use crate::store::Store;

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
    assert_eq!(s.failures("alice"), None);
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
    assert_eq!(s.failures("alice"), Some(4));
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
    assert_eq!(s.failures("alice").unwrap_or(0), 0);
    let (d, _) = run(&s, &c, "alice", false, "050471");
    assert_eq!(d.outcome, Outcome::Success);
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

#[test]
fn an_hotp_token_logs_in_with_look_ahead_and_each_press_works_once() -> Result<(), String> {
    let s = MemStore::default();
    let secret = Secret::from_base32(SECRET).map_err(|e| e.to_string())?;
    s.enroll(
        "bob",
        Factor::Hotp(HotpFactor {
            secret,
            params: Params::DEFAULT,
            counter: 0,
            enrolled_at: 0,
        }),
    );
    let c = Config::default();
    let go = |answer: &str| {
        let req = Request {
            rhost: None,
            ..req_for("bob", CodeSource::Ask)
        };
        login_with(&c, &s, &Sends::default(), &mut User::typing([answer]), &req)
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

#[test]
fn an_old_enrollment_still_works_and_says_so() -> Result<(), String> {
    let s = world()?;
    let c = Config {
        enrollment_max_age_days: 30,
        ..Config::default()
    };
    let req = Request {
        now: NOW + 40 * 86_400,
        ..req_for("alice", CodeSource::Ask)
    };
    let mut conv = User::typing([alice_code_at(req.now)?]);
    let d = login_with(&c, &s, &Sends::default(), &mut conv, &req);
    assert_eq!(d.outcome, Outcome::Success);
    assert_eq!(conv.prompts.last().map(String::as_str), Some("info: Your 2FA enrollment is 40 days old; re-enroll with twofa-enroll (ask your administrator)."));
    Ok(())
}

#[test]
fn factors_the_policy_does_not_offer_do_not_count() -> Result<(), String> {
    let s = world()?;
    let c = Config {
        factors: vec!["email".into()],
        ..Config::default()
    };
    let (dec, _) = run_with(&c, &s, "alice", ["050471"]);
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
    s.accept_step(
        &account("alice"),
        crate::otp::step_at(NOW, 30) + 1_000_000,
        NOW,
    )
    .map_err(|e| e.to_string())?;
    let (d, _) = run_with(&c, &s, "alice", ["050471"]);
    assert_eq!(
        (d.outcome, d.event.reason),
        (Outcome::Deny, Reason::WatermarkAhead)
    );
    Ok(())
}
