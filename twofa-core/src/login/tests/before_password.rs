//! Before the password is verified, every name costs the same: shown by what a login asks of
//! the store and the directory (the same calls for an enrolled user, an unenrolled one and a
//! name with no account), not by timing it. The benchmark's row "pam_twofa after a failed
//! password, by name" measures the time (docs/benchmarks.md).

use zeroize::Zeroizing;

use super::fakes::*;
use crate::audit::{Outcome, Reason};
use crate::config::{Config, Unenrolled};
use crate::login::{authenticate, split_field, CodeSource, Request};

/// alice enrolled, bob an account with no enrollment, a name with no account.
const NAMES: [&str; 3] = ["alice", "bob", "nobody-here"];

/// Policies that look at more of the user (groups, grace, self-enrollment) than the default.
fn policies() -> Vec<Config> {
    let mut all = vec![Config::default()];
    for unenrolled in [
        Unenrolled::Allow,
        Unenrolled::Grace(NOW + 86_400),
        Unenrolled::Enroll,
    ] {
        all.push(Config {
            unenrolled,
            ..Config::default()
        });
    }
    all.push(Config {
        exempt_groups: vec!["backup".into()],
        enforce_groups: vec!["alice".into(), "bob".into()],
        ..Config::default()
    });
    all
}

#[test]
fn after_a_failed_password_nothing_about_the_name_is_looked_up_or_read() -> Result<(), String> {
    let s = world()?;
    let field = || CodeSource::Field(Some(Zeroizing::new(b"050471".to_vec())));
    for c in policies() {
        for code in [CodeSource::Ask, field()] {
            let mut seen = Vec::new();
            for name in NAMES {
                let rec = Recorder::new(&s);
                let mut conv = User::typing(["050471"]);
                let req = Request {
                    password_failed: true,
                    code: code.clone(),
                    ..req_for(name, CodeSource::Ask)
                };
                let d = authenticate(&c, &rec, &rec, &Sends::default(), &mut conv, &req);
                assert_eq!(
                    (d.outcome, d.event.reason),
                    (Outcome::Deny, Reason::PasswordFailed),
                    "{name}"
                );
                assert_eq!(d.event.account, None, "{name}: no account was looked up");
                assert_eq!(d.event.factor, None, "{name}: no enrollment was read");
                seen.push((rec.calls_for(name), conv.prompts));
            }
            // No lookup, no store operation at all, and the same prompt, for all three.
            assert_eq!(seen[0].0, Vec::<String>::new(), "{:?}", c.unenrolled);
            assert!(seen.iter().all(|x| *x == seen[0]), "{seen:?}");
        }
    }
    // The right code typed after the wrong password was not spent: it still logs alice in.
    let (d, _) = run(&s, &Config::default(), "alice", false, "050471");
    assert_eq!(d.outcome, Outcome::Success);
    Ok(())
}

#[test]
fn the_one_field_split_makes_the_same_calls_for_every_name() -> Result<(), String> {
    let s = world()?;
    for c in policies() {
        let seen: Vec<Vec<String>> = NAMES
            .iter()
            .map(|name| {
                let rec = Recorder::new(&s);
                let req = req_for(name, CodeSource::Ask);
                let _ = split_field(&c, &rec, &rec, &req, b"hunter2050471");
                rec.calls_for(name)
            })
            .collect();
        // One lookup, the groups if the policy names any, one enrollment read: for everyone.
        let groups = !c.exempt_groups.is_empty();
        let want: Vec<String> = ["lookup NAME", "groups NAME", "enrollment NAME"]
            .iter()
            .filter(|call| groups || !call.starts_with("groups"))
            .map(|call| call.to_string())
            .collect();
        for (name, calls) in NAMES.iter().zip(&seen) {
            assert_eq!(*calls, want, "{name} under {:?}", c.unenrolled);
        }
    }
    Ok(())
}
