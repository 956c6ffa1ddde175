//! Too many wrong codes: locked, told for how long, and in again once it is over.

use super::fakes::*;
use crate::audit::{Outcome, Reason};
use crate::config::Config;
use crate::login::{locked_message, CodeSource, Request, CODE_PROMPT};
use crate::store::Lockout;

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
    let at = |now| Request {
        rhost: None,
        now,
        ..req_for("alice", CodeSource::Ask)
    };
    let mut last = None;
    for _ in 0..3 {
        let mut conv = User::typing(["000000"]);
        let d = login_with(&c, &s, &Sends::default(), &mut conv, &at(NOW));
        last = Some((d, conv));
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
    let mut conv = User::typing(["050471"]);
    let d = login_with(&c, &s, &Sends::default(), &mut conv, &at(NOW + 1));
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
    // After the lock, the right code works (NOW + 300 is 10 steps later: that step's code).
    let mut conv = User::typing([alice_code_at(NOW + 300)?]);
    assert_eq!(
        login_with(&c, &s, &Sends::default(), &mut conv, &at(NOW + 300)).outcome,
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
