//! What the policy decides once the password is verified: unenrolled users, grace, exempt
//! groups and services, remembered hosts.

use super::fakes::*;
use crate::audit::{Outcome, Reason};
use crate::config::{Config, Unenrolled};
use crate::login::{CodeSource, Request, CODE_PROMPT};

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
fn unenrolled_users_in_grace_are_told_until_when_then_denied() -> Result<(), String> {
    let s = world()?;
    let c = Config {
        unenrolled: Unenrolled::Grace(NOW + 86_400),
        ..Config::default()
    };
    let (d, prompts) = run_with(&c, &s, "bob", [""; 0]);
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
    let (d, prompts) = run_with(&c, &s, "bob", ["123456"]);
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
    let (d, prompts) = run_with(&c, &s, "carol", [""; 0]);
    assert_eq!(
        (d.outcome, d.event.reason, prompts.len()),
        (Outcome::Ignore, Reason::ExemptGroup, 0)
    );
    let req = Request {
        service: "console",
        ..req_for("alice", CodeSource::Ask)
    };
    assert_eq!(
        login_with(&c, &s, &Sends::default(), &mut User::silent(), &req)
            .event
            .reason,
        Reason::ExemptService
    );
    // A wrong password is never let through by an exemption.
    let (d, prompts) = run(&s, &c, "carol", true, "1");
    assert_eq!(
        (d.outcome, prompts),
        (Outcome::Deny, vec![CODE_PROMPT.to_string()])
    );
    // enforce_groups: only members need a code.
    let c = Config {
        enforce_groups: vec!["admins".into()],
        ..Config::default()
    };
    assert_eq!(
        run_with(&c, &s, "alice", [""; 0]).0.event.reason,
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
    let (d, _) = run_with(&c, &s, "alice", ["050471"]);
    assert_eq!(d.outcome, Outcome::Success);
    let (d, prompts) = run_with(&c, &s, "alice", [""; 0]);
    assert_eq!(
        (d.outcome, d.event.reason, prompts.len()),
        (Outcome::Success, Reason::RememberedHost, 0)
    );
    // Another host, the same one an hour later, or an empty host name: asked for a code (and
    // this silent user answers nothing).
    let other = Request {
        rhost: Some("198.51.100.9"),
        ..req_for("alice", CodeSource::Ask)
    };
    let later = Request {
        now: NOW + 3600,
        ..req_for("alice", CodeSource::Ask)
    };
    let empty = Request {
        rhost: Some(""),
        ..req_for("alice", CodeSource::Ask)
    };
    for req in [other, later, empty] {
        assert_eq!(
            login_with(&c, &s, &Sends::default(), &mut User::silent(), &req)
                .event
                .reason,
            Reason::ConversationFailed,
            "{req:?}"
        );
    }
    Ok(())
}
