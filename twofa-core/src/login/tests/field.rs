//! Password and code in one field (the `concat` line): the split, and the code it kept.

use zeroize::Zeroizing;

use super::fakes::*;
use crate::audit::{Outcome, Reason};
use crate::config::{Config, Unenrolled};
use crate::login::{cut_code, split_field, CodeSource, Request};

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
        let mut conv = User::silent();
        let req = Request {
            rhost: None,
            password_failed: failed,
            ..req_for(
                "alice",
                CodeSource::Field(Some(Zeroizing::new(code.as_bytes().to_vec()))),
            )
        };
        let d = login_with(&c, &s, &Sends::default(), &mut conv, &req);
        assert_eq!(d.outcome, outcome, "{failed} {code}");
        assert!(conv.prompts.is_empty());
    }
    Ok(())
}

#[test]
fn a_one_field_login_too_short_for_a_code_is_a_counted_wrong_code() -> Result<(), String> {
    let s = world()?;
    let c = Config::default();
    for field in ["", "123", "12345"] {
        // As the concat line cuts it: all code, no password (so the password check would
        // fail too; a password-less account under nullok would get this far).
        let cut = cut_code(field.as_bytes(), 6);
        let req = req_for("alice", CodeSource::Field(cut.code));
        let d = login_with(&c, &s, &Sends::default(), &mut User::silent(), &req);
        assert_eq!(
            (d.outcome, d.event.reason),
            (Outcome::Deny, Reason::WrongCode),
            "{field:?}"
        );
    }
    assert_eq!(s.failures("alice"), Some(3));
    Ok(())
}

#[test]
fn a_recovery_code_works_in_one_field_too() -> Result<(), String> {
    let s = world()?;
    let codes = s.with_recovery("alice", 2)?;
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
