//! What each fuzz target checks, in one place: included (`#[path = ...] mod checks;`) by the
//! cargo-fuzz targets in `fuzz/fuzz_targets/` and by the stable replay of the corpus,
//! `twofa-core/tests/fuzz_corpus.rs`, so the two can't drift apart.
//!
//! Every function takes the raw fuzz input and panics (through `assert!`) when a property does
//! not hold; an input that is not UTF-8 is skipped by the text parsers (their files are checked
//! for UTF-8 before they are parsed).
// A failed check panics: that is what libFuzzer and the test harness catch. (Each fuzz target
// uses one of the functions.)
#![allow(dead_code, clippy::panic)]

use std::path::Path;

use twofa_core::config::{self, ConfigError, MAX_WINDOW};
use twofa_core::enrollment::{Enrollment, Factor};
use twofa_core::google_authenticator::{self, ParseError};
use twofa_core::login::cut_code;
use twofa_core::otp::{self, Algorithm, Params, MAX_DIGITS, MIN_DIGITS};
use twofa_core::recovery;
use twofa_core::secret::{SecretError, MIN_BITS};
use twofa_core::state::{OpOutcome, StateOp, UserState};
use twofa_core::tomlfile::{Doc, FieldError};
use twofa_core::uri;
use twofa_core::wire::Request;

/// The checks of one target, on one input.
pub type Check = fn(&[u8]);

/// The targets, by name: the names of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("config", config),
    ("enrollment", enrollment),
    ("state", state),
    ("otpauth_uri", otpauth_uri),
    ("concat_split", concat_split),
    ("store_wire", store_wire),
    ("google_authenticator", google_authenticator),
];

/// An error's line, when it has one, is a line of the text.
fn check_line(text: &str, e: &FieldError) {
    if let Some(line) = e.line {
        let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
        assert!(
            (1..=lines).contains(&line),
            "error line {line} outside 1..={lines}: {e}"
        );
    }
    assert!(!e.to_string().is_empty());
}

fn valid_params(p: &Params) {
    assert!((MIN_DIGITS..=MAX_DIGITS).contains(&p.digits), "{p:?}");
    assert!((1..=3600).contains(&p.period), "{p:?}");
}

/// `config::parse`: never panics; what it accepts is within the documented ranges; every
/// error names the file, and its line is a line of the file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/twofa/twofa.toml");
    match config::parse(text, path) {
        Ok(c) => {
            assert_eq!(c.source, path);
            valid_params(&c.totp.params);
            assert!(c.totp.window <= MAX_WINDOW);
            let issuer = &c.totp.issuer;
            assert!(!issuer.is_empty() && !issuer.contains(':'));
            assert!(!issuer.chars().any(char::is_control));
            assert!(c.lockout.max_failures <= 100_000);
            assert!((1..=7 * 86_400).contains(&c.lockout.window));
            assert!((1..=7 * 86_400).contains(&c.lockout.duration));
            assert!(c.storage_dir.is_absolute());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("/etc/twofa/twofa.toml"), "{message}");
            match &e {
                ConfigError::Field(_, f) => check_line(text, f),
                other => unreachable!("parse read a file: {other}"),
            }
        }
    }
}

/// `Enrollment::parse`: never panics; an accepted enrollment has valid factors, and
/// `to_toml` writes it back to a file that parses to the same factors (and the same text).
///
/// The account is the one the file names, when it names one as a string: so that names
/// with quotes, backslashes, control or non-ASCII characters go through `quote` too.
pub fn enrollment(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let named: Option<String> = Doc::parse(text)
        .ok()
        .and_then(|d| d.root().string("account").ok().flatten().map(str::to_owned));
    let account = named.as_deref().unwrap_or("alice");
    let e = match Enrollment::parse(text, account) {
        Ok(e) => e,
        Err(err) => return check_line(text, &err),
    };
    assert_eq!(e.account, account);
    assert!(!e.factors.is_empty());
    for f in &e.factors {
        match f {
            Factor::Totp(t) => {
                valid_params(&t.params);
                assert!(t.secret.bits() >= MIN_BITS);
                assert!(t.enrolled_at <= u64::MAX >> 1);
            }
            Factor::Hotp(h) => {
                valid_params(&h.params);
                assert!(h.secret.bits() >= MIN_BITS);
                assert!(h.counter <= u64::MAX >> 1);
                assert!(h.enrolled_at <= u64::MAX >> 1);
            }
            Factor::Recovery(r) => {
                assert!(r.salt.len() >= 8);
                assert!(r.hashes.len() <= 1000);
                assert!(r.issued_at <= u64::MAX >> 1);
            }
            // A kind added later: the round trip below still compares its text.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    let written = e.to_toml();
    let back = match Enrollment::parse(&written, account) {
        Ok(back) => back,
        Err(err) => panic!(
            "to_toml wrote what parse refuses: {err}\n{}",
            written.as_str()
        ),
    };
    assert_eq!(back.account, e.account);
    assert_eq!(back.factors.len(), e.factors.len());
    for (a, b) in e.factors.iter().zip(&back.factors) {
        match (a, b) {
            (Factor::Totp(a), Factor::Totp(b)) => {
                assert!(a.secret.bytes() == b.secret.bytes(), "secret changed");
                assert_eq!(a.params, b.params);
                assert_eq!(a.enrolled_at, b.enrolled_at);
            }
            (Factor::Hotp(a), Factor::Hotp(b)) => {
                assert!(a.secret.bytes() == b.secret.bytes(), "secret changed");
                assert_eq!(a.params, b.params);
                assert_eq!(a.counter, b.counter);
                assert_eq!(a.enrolled_at, b.enrolled_at);
            }
            (Factor::Recovery(a), Factor::Recovery(b)) => {
                assert_eq!(a.salt, b.salt);
                assert_eq!(a.hashes, b.hashes);
                assert_eq!(a.issued_at, b.issued_at);
            }
            (a, b) => assert_eq!(a.kind(), b.kind(), "a factor came back as another kind"),
        }
    }
    assert!(
        back.to_toml().as_str() == written.as_str(),
        "to_toml is not stable"
    );
}

/// `UserState::parse`: never panics, a used recovery code is 64 hex characters, and
/// `parse(to_toml(s)) == s`.
pub fn state(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match UserState::parse(text) {
        Ok(s) => {
            for h in &s.used_recovery {
                assert!(
                    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
                    "used_recovery entry {h:?} is not 64 hex characters"
                );
            }
            let written = s.to_toml();
            assert_eq!(UserState::parse(&written), Ok(s), "{written}");
        }
        Err(err) => check_line(text, &err),
    }
}

/// `uri::parse_totp_uri`: never panics; an accepted URI has a usable secret and valid
/// parameters, and the URI `totp_uri` writes for it parses back to the same secret,
/// parameters and issuer, and to the same account when the issuer has no `:` (the label is
/// `ISSUER:ACCOUNT`, split at the first `:`).
pub fn otpauth_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let u = match uri::parse_totp_uri(text) {
        Ok(u) => u,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(u.secret.bits() >= MIN_BITS);
    valid_params(&u.params);
    assert_eq!(u.account, u.account.trim());
    let issuer = u.issuer.clone().unwrap_or_default();
    let written = uri::totp_uri(&issuer, &u.account, &u.secret, &u.params);
    let back = match uri::parse_totp_uri(&written) {
        Ok(back) => back,
        Err(e) => panic!("totp_uri wrote what parse_totp_uri refuses: {e}"),
    };
    assert!(back.secret.bytes() == u.secret.bytes(), "secret changed");
    assert_eq!(back.params, u.params);
    assert_eq!(back.issuer.as_deref(), Some(issuer.as_str()));
    if !issuer.contains(':') {
        assert_eq!(back.account, u.account);
    }
}

/// Reads the fuzz input as the header of `concat_split` and then the field.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| (n << 8) | u64::from(self.byte()))
    }
}

/// `login::cut_code`, `otp::normalize_code`, `otp::verify_totp` and the recovery-code
/// recognition of the concat field (`recovery::formatted_suffix`, `recovery::normalize`)
/// on any input.
///
/// Input: digits (1 byte, any value 0..=255), window (1 byte, taken modulo 16: the config
/// allows at most 10), algorithm (1 byte, modulo 3), period (2 bytes, 0 included), now
/// (8 bytes, big-endian, any value), then the field (password followed by code), which is
/// also the HMAC key. A short input reads as zeros.
pub fn concat_split(data: &[u8]) {
    let mut input = Input(data);
    let digits = u32::from(input.byte());
    let window = u64::from(input.byte() % 16);
    let algorithm =
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(input.byte() % 3)];
    let period = (u64::from(input.byte()) << 8) | u64::from(input.byte());
    let now = input.u64();
    let field = input.0;

    // The split: password + code is the field, the code is the last min(digits, len) bytes.
    let split = cut_code(field, digits);
    let code = split.code.as_deref().map(Vec::as_slice).unwrap_or_default();
    assert!(split.code.is_some());
    assert_eq!(code.len(), field.len().min(digits as usize));
    assert_eq!([split.password.as_slice(), code].concat(), field);

    // Normalizing: exactly `digits` ASCII digits, the input's digits in order, or nothing.
    for answer in [code, field] {
        if let Some(n) = otp::normalize_code(answer, digits) {
            assert_eq!(n.len(), digits as usize);
            let typed: Vec<u8> = answer
                .iter()
                .copied()
                .filter(|b| !matches!(b, b' ' | b'\t'))
                .collect();
            assert_eq!(n.as_slice(), typed.as_slice());
            assert!(n.iter().all(u8::is_ascii_digit));
        }
    }

    // A recovery code typed with its dashes at the end of the field is read as a recovery
    // code, and can never be a TOTP code.
    if recovery::formatted_suffix(field) {
        let tail = field
            .get(field.len() - recovery::FORMATTED_LEN..)
            .unwrap_or_default();
        assert!(recovery::normalize(tail).is_some());
        assert!(otp::normalize_code(tail, digits).is_none());
    }
    for answer in [code, field] {
        let _ = recovery::normalize(answer);
    }

    // Verifying: a match is a step of the window whose code is the code, and the code of the
    // current step always matches (at that step or a later one of the window).
    let params = Params {
        algorithm,
        digits,
        period,
    };
    let current = otp::step_at(now, period);
    let (first, last) = (
        current.saturating_sub(window),
        current.saturating_add(window),
    );
    for candidate in [code, field] {
        if let Some(step) = otp::verify_totp(field, &params, candidate, now, window) {
            assert!((first..=last).contains(&step));
            let expected = otp::totp_at_step(field, step, &params);
            assert_eq!(expected.as_deref().map(String::as_bytes), Some(candidate));
        }
    }
    let Some(current_code) = otp::totp_at_step(field, current, &params) else {
        panic!("no code for step {current}");
    };
    let matched = otp::verify_totp(field, &params, current_code.as_bytes(), now, window);
    assert!(
        matched.is_some_and(|s| (current..=last).contains(&s)),
        "{matched:?}"
    );
}

/// The helper protocol's requests and the text forms of state operations and outcomes (what
/// the helper reads from the module, and a journal from disk): never a panic, and what is
/// accepted is written back as text that reads as the same value.
pub fn store_wire(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok(r) = Request::decode(line) {
            let again = r.encode();
            assert_eq!(Request::decode(&again).as_ref(), Ok(&r), "{line:?}");
        }
        if let Ok(op) = StateOp::decode(line) {
            let again = op.encode();
            assert_eq!(StateOp::decode(&again).as_ref(), Ok(&op), "{line:?}");
        }
        if let Ok(o) = OpOutcome::decode(line) {
            assert_eq!(OpOutcome::decode(&o.encode()), Ok(o), "{line:?}");
        }
    }
}

/// `google_authenticator::parse`, the user-writable `~/.google_authenticator` that
/// `twofa-enroll import-google-authenticator` reads as root: never panics; what it accepts holds
/// a secret of at least [`MIN_BITS`], a step size in range and scratch codes that are lines of
/// the file, 8 digits each; an error names a line of the file and never quotes the secret line.
pub fn google_authenticator(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    match google_authenticator::parse(text) {
        Ok(g) => {
            assert!(g.secret.bits() >= MIN_BITS, "{} bits", g.secret.bits());
            if let Some(step) = g.step_size {
                assert!((1..=3600).contains(&step), "step {step}");
            }
            assert!(g.scratch_codes.len() < lines.len().max(1));
            for code in &g.scratch_codes {
                assert!(code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()));
                assert!(lines.iter().skip(1).any(|l| l.trim() == code));
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            assert!(!message.chars().any(char::is_control), "{message:?}");
            match &e {
                ParseError::Empty => assert!(lines.is_empty(), "{text:?}"),
                ParseError::Secret(_) => assert!(message.starts_with("line 1: "), "{message}"),
                ParseError::Line(n, _) => {
                    assert!((2..=lines.len()).contains(n), "line {n} of {}", lines.len())
                }
            }
            // Never quotes the secret line. Not "the message doesn't contain it": a first line
            // may be a piece of the message's own fixed words (the fuzzer found one). Instead:
            // a complaint about line 1 is one of the fixed texts, and any other complaint is
            // the same whatever the secret is.
            match &e {
                ParseError::Secret(SecretError::NotBase32) => assert_eq!(
                    message,
                    format!("line 1: {}", SecretError::NotBase32),
                    "{message}"
                ),
                ParseError::Secret(SecretError::TooShort(bits)) => assert_eq!(
                    message,
                    format!("line 1: {}", SecretError::TooShort(*bits)),
                    "{message}"
                ),
                ParseError::Secret(SecretError::Random(_)) => {
                    panic!("parsing asked for random bytes")
                }
                ParseError::Line(..) => {
                    let other = [
                        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                    ]
                    .into_iter()
                    .find(|s| lines.first().map(|l| l.trim()) != Some(*s))
                    .unwrap_or_default();
                    let rest = text.split_once('\n').map(|(_, r)| r).unwrap_or("");
                    let again = google_authenticator::parse(&format!("{other}\n{rest}"))
                        .err()
                        .map(|e| e.to_string());
                    assert_eq!(again.as_deref(), Some(message.as_str()), "{text:?}");
                }
                ParseError::Empty => {}
            }
        }
    }
}
