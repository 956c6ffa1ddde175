//! Recovery codes at the code prompt: each works once, and the user is told how many are left.

use super::fakes::*;
use crate::audit::{Outcome, Reason};
use crate::login::CodeSource;

#[test]
fn a_recovery_code_logs_in_once_and_says_how_many_are_left() -> Result<(), String> {
    let s = world()?;
    let codes = s.with_recovery("alice", 5)?;
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
