//! The store protocol between the module (or the CLI) and the fleet store helper.
//!
//! The module must not carry a database client (sshd and sudo load it), so in fleet mode each
//! [`Store`] operation is a line sent to `twofa-store serve` over a socket and a line back.
//! Both ends are here, so they can't drift: [`Request`] is one trait call, [`serve`] is the
//! helper's loop over any `Store`, and [`crate::fleet::HelperStore`] is the module's side.
//!
//! One message is one line of space-separated fields: a word, a decimal number, or bytes as
//! `x` followed by lowercase hex (`x` alone is empty), so names, hosts and TOML text never
//! need quoting. An account is three fields: name, uid, gid. Replies start with `ok` or
//! `err KIND xMESSAGE` where KIND is `unavailable`, `backend` or `already-enrolled`.

use std::io::{self, BufRead, Write};

use zeroize::Zeroizing;

use crate::enrollment::Enrollment;
use crate::identity::Account;
use crate::state::{
    Challenge, ChallengeOutcome, Confirmation, FailureOutcome, Lockout, RecoveryOutcome,
    SendOutcome, StepOutcome, UserState,
};
use crate::store::{Store, StoreError};

/// Longest line either side accepts (an enrollment with many recovery codes is a few KiB).
pub const MAX_LINE: usize = 256 * 1024;

/// One store operation, as sent to the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// [`Store::enrollment`].
    Enrollment(Account),
    /// [`Store::put_enrollment`] (the enrollment as its TOML text).
    PutEnrollment(Account, bool, Zeroizing<String>),
    /// [`Store::disable_enrollment`].
    DisableEnrollment(Account, u64),
    /// [`Store::enrolled_names`].
    EnrolledNames,
    /// [`Store::state`].
    State(Account),
    /// [`Store::accept_step`].
    AcceptStep(Account, u64, u64),
    /// [`Store::accept_hotp`].
    AcceptHotp(Account, u64, u64, u64),
    /// [`Store::spend_confirmation`].
    SpendConfirmation(Account, Confirmation),
    /// [`Store::remember_host`].
    RememberHost(Account, String, u64, u64),
    /// [`Store::consume_recovery`].
    ConsumeRecovery(Account, String, u64),
    /// [`Store::count_send`].
    CountSend(Account, u64, u32, u64),
    /// [`Store::put_challenge`].
    PutChallenge(Account, Challenge),
    /// [`Store::take_challenge`] (the answer as typed).
    TakeChallenge(Account, Zeroizing<Vec<u8>>, u64),
    /// [`Store::record_failure`].
    RecordFailure(Account, u64, Lockout),
    /// [`Store::reset_failures`].
    ResetFailures(Account),
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(1 + 2 * bytes.len());
    s.push('x');
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn unhex(field: &str) -> Option<Vec<u8>> {
    let digits = field.strip_prefix('x')?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    digits
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

fn unhex_text(field: &str) -> Option<String> {
    String::from_utf8(unhex(field)?).ok()
}

/// The fields of one line, taken in order.
struct Fields<'a>(std::str::SplitAsciiWhitespace<'a>);

impl<'a> Fields<'a> {
    fn word(&mut self) -> Option<&'a str> {
        self.0.next()
    }
    fn num<T: std::str::FromStr>(&mut self) -> Option<T> {
        let w = self.0.next()?;
        // `u64::from_str` takes a leading `+`: this protocol never writes one.
        if w.bytes().all(|b| b.is_ascii_digit()) {
            w.parse().ok()
        } else {
            None
        }
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        unhex(self.0.next()?)
    }
    fn text(&mut self) -> Option<String> {
        unhex_text(self.0.next()?)
    }
    fn account(&mut self) -> Option<Account> {
        Some(Account {
            name: self.text()?,
            uid: self.num()?,
            gid: self.num()?,
        })
    }
    fn end(mut self) -> Option<()> {
        self.0.next().is_none().then_some(())
    }
}

fn account(a: &Account) -> String {
    format!("{} {} {}", hex(a.name.as_bytes()), a.uid, a.gid)
}

impl Request {
    /// The line for this request, without its newline.
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(match self {
            Request::Enrollment(a) => format!("enrollment {}", account(a)),
            Request::PutEnrollment(a, replace, toml) => format!(
                "put_enrollment {} {} {}",
                account(a),
                u8::from(*replace),
                hex(toml.as_bytes())
            ),
            Request::DisableEnrollment(a, now) => {
                format!("disable_enrollment {} {now}", account(a))
            }
            Request::EnrolledNames => "enrolled_names".to_string(),
            Request::State(a) => format!("state {}", account(a)),
            Request::AcceptStep(a, step, now) => format!("accept_step {} {step} {now}", account(a)),
            Request::AcceptHotp(a, counter, enrolled, now) => {
                format!("accept_hotp {} {counter} {enrolled} {now}", account(a))
            }
            Request::SpendConfirmation(a, c) => {
                let (kind, n) = match c {
                    Confirmation::Totp(step) => ("totp", step),
                    Confirmation::Hotp(counter) => ("hotp", counter),
                };
                format!("spend_confirmation {} {kind} {n}", account(a))
            }
            Request::RememberHost(a, host, now, until) => format!(
                "remember_host {} {} {now} {until}",
                account(a),
                hex(host.as_bytes())
            ),
            Request::ConsumeRecovery(a, hash, now) => {
                format!(
                    "consume_recovery {} {} {now}",
                    account(a),
                    hex(hash.as_bytes())
                )
            }
            Request::CountSend(a, now, limit, window) => {
                format!("count_send {} {now} {limit} {window}", account(a))
            }
            Request::PutChallenge(a, c) => format!(
                "put_challenge {} {} {} {}",
                account(a),
                hex(c.salt.as_bytes()),
                hex(c.hash.as_bytes()),
                c.expires
            ),
            Request::TakeChallenge(a, answer, now) => {
                format!("take_challenge {} {} {now}", account(a), hex(answer))
            }
            Request::RecordFailure(a, now, l) => format!(
                "record_failure {} {now} {} {} {}",
                account(a),
                l.max_failures,
                l.window,
                l.duration
            ),
            Request::ResetFailures(a) => format!("reset_failures {}", account(a)),
        })
    }

    /// Parses a request line; `None` for anything malformed.
    pub fn decode(line: &str) -> Option<Request> {
        let mut f = Fields(line.split_ascii_whitespace());
        let r = match f.word()? {
            "enrollment" => Request::Enrollment(f.account()?),
            "put_enrollment" => {
                let a = f.account()?;
                let replace = match f.word()? {
                    "0" => false,
                    "1" => true,
                    _ => return None,
                };
                Request::PutEnrollment(a, replace, Zeroizing::new(f.text()?))
            }
            "disable_enrollment" => Request::DisableEnrollment(f.account()?, f.num()?),
            "enrolled_names" => Request::EnrolledNames,
            "state" => Request::State(f.account()?),
            "accept_step" => Request::AcceptStep(f.account()?, f.num()?, f.num()?),
            "accept_hotp" => Request::AcceptHotp(f.account()?, f.num()?, f.num()?, f.num()?),
            "spend_confirmation" => {
                let a = f.account()?;
                let c = match f.word()? {
                    "totp" => Confirmation::Totp(f.num()?),
                    "hotp" => Confirmation::Hotp(f.num()?),
                    _ => return None,
                };
                Request::SpendConfirmation(a, c)
            }
            "remember_host" => Request::RememberHost(f.account()?, f.text()?, f.num()?, f.num()?),
            "consume_recovery" => Request::ConsumeRecovery(f.account()?, f.text()?, f.num()?),
            "count_send" => Request::CountSend(f.account()?, f.num()?, f.num()?, f.num()?),
            "put_challenge" => Request::PutChallenge(
                f.account()?,
                Challenge {
                    salt: f.text()?,
                    hash: f.text()?,
                    expires: f.num()?,
                },
            ),
            "take_challenge" => {
                Request::TakeChallenge(f.account()?, Zeroizing::new(f.bytes()?), f.num()?)
            }
            "record_failure" => Request::RecordFailure(
                f.account()?,
                f.num()?,
                Lockout {
                    max_failures: f.num()?,
                    window: f.num()?,
                    duration: f.num()?,
                },
            ),
            "reset_failures" => Request::ResetFailures(f.account()?),
            _ => return None,
        };
        f.end()?;
        Some(r)
    }
}

/// Encodes an error reply.
fn error_line(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(m) => format!("err unavailable {}", hex(m.as_bytes())),
        StoreError::AlreadyEnrolled(a) => format!("err already-enrolled {}", hex(a.as_bytes())),
        // Files and parse errors of a helper's store are the helper's business: a backend error.
        other => {
            let m = match other {
                StoreError::Backend(m) => m.clone(),
                e => e.to_string(),
            };
            format!("err backend {}", hex(m.as_bytes()))
        }
    }
}

fn step_word(o: StepOutcome) -> String {
    match o {
        StepOutcome::Accepted => "accepted".into(),
        StepOutcome::Replayed => "replayed".into(),
        StepOutcome::Locked(u) => format!("locked {u}"),
    }
}

/// Runs one request against `store`, returning the reply line (without its newline).
pub fn handle(store: &dyn Store, req: Request) -> Zeroizing<String> {
    let ok = |s: String| {
        Ok(if s.is_empty() {
            "ok".to_string()
        } else {
            format!("ok {s}")
        })
    };
    let reply: Result<String, StoreError> = match req {
        Request::Enrollment(a) => store.enrollment(&a).and_then(|e| {
            ok(match e {
                None => "none".into(),
                Some(e) => hex(e.to_toml().as_bytes()),
            })
        }),
        Request::PutEnrollment(a, replace, toml) => match Enrollment::parse(&toml, &a.name) {
            Err(e) => Err(StoreError::Backend(format!(
                "enrollment sent is not valid: {e}"
            ))),
            Ok(e) => store
                .put_enrollment(&a, &e, replace)
                .and_then(|()| ok(String::new())),
        },
        Request::DisableEnrollment(a, now) => store.disable_enrollment(&a, now).and_then(|d| {
            ok(match d {
                None => "none".into(),
                Some(d) => hex(d.as_bytes()),
            })
        }),
        Request::EnrolledNames => store.enrolled_names().and_then(|names| {
            ok(names
                .iter()
                .map(|n| hex(n.as_bytes()))
                .collect::<Vec<_>>()
                .join(" "))
        }),
        Request::State(a) => store
            .state(&a)
            .and_then(|s| ok(hex(s.to_toml().as_bytes()))),
        Request::AcceptStep(a, step, now) => store
            .accept_step(&a, step, now)
            .and_then(|o| ok(step_word(o))),
        Request::AcceptHotp(a, counter, enrolled, now) => store
            .accept_hotp(&a, counter, enrolled, now)
            .and_then(|o| ok(step_word(o))),
        Request::SpendConfirmation(a, c) => store
            .spend_confirmation(&a, c)
            .and_then(|o| ok(step_word(o))),
        Request::RememberHost(a, host, now, until) => store
            .remember_host(&a, &host, now, until)
            .and_then(|()| ok(String::new())),
        Request::ConsumeRecovery(a, hash, now) => {
            store.consume_recovery(&a, &hash, now).and_then(|o| {
                ok(match o {
                    RecoveryOutcome::Consumed => "consumed".into(),
                    RecoveryOutcome::AlreadyUsed => "already-used".into(),
                    RecoveryOutcome::Locked(u) => format!("locked {u}"),
                })
            })
        }
        Request::CountSend(a, now, limit, window) => {
            store.count_send(&a, now, limit, window).and_then(|o| {
                ok(match o {
                    SendOutcome::Allowed => "allowed".into(),
                    SendOutcome::Limited => "limited".into(),
                })
            })
        }
        Request::PutChallenge(a, c) => store.put_challenge(&a, c).and_then(|()| ok(String::new())),
        Request::TakeChallenge(a, answer, now) => {
            store.take_challenge(&a, &answer, now).and_then(|o| {
                ok(match o {
                    ChallengeOutcome::Valid => "valid".into(),
                    ChallengeOutcome::Expired => "expired".into(),
                    ChallengeOutcome::Wrong => "wrong".into(),
                    ChallengeOutcome::Locked(u) => format!("locked {u}"),
                })
            })
        }
        Request::RecordFailure(a, now, lockout) => {
            store.record_failure(&a, now, &lockout).and_then(|o| {
                ok(match o {
                    FailureOutcome::Counted(n) => format!("counted {n}"),
                    FailureOutcome::Locked(u) => format!("locked {u}"),
                    FailureOutcome::AlreadyLocked(u) => format!("already-locked {u}"),
                })
            })
        }
        Request::ResetFailures(a) => store.reset_failures(&a).and_then(|()| ok(String::new())),
    };
    Zeroizing::new(match reply {
        Ok(line) => line,
        Err(e) => error_line(&e),
    })
}

/// The helper's loop: one request per line from `input`, one reply per line to `output`,
/// until end of input. A malformed line gets a backend error and the loop goes on.
pub fn serve<R: BufRead, W: Write>(
    store: &dyn Store,
    mut input: R,
    mut output: W,
) -> io::Result<()> {
    loop {
        let mut line = Zeroizing::new(Vec::new());
        let n = <&mut R as io::Read>::take(&mut input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let reply = match std::str::from_utf8(&line)
            .ok()
            .filter(|_| line.len() <= MAX_LINE)
            .and_then(|l| Request::decode(l.trim_end_matches('\n')))
        {
            Some(req) => handle(store, req),
            None => Zeroizing::new(error_line(&StoreError::Backend(
                "malformed request (is the helper the same version as the module?)".into(),
            ))),
        };
        output.write_all(reply.as_bytes())?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
}

/// A reply, split into its fields (after `ok`), or the error it carries.
#[derive(Debug)]
pub struct Reply(Vec<String>);

/// Parses a reply line into its `ok` fields, or the `StoreError` it carries.
pub fn parse_reply(line: &str) -> Result<Reply, StoreError> {
    let mut words = line.split_ascii_whitespace();
    let bad = || StoreError::Backend("malformed reply from the store helper".into());
    match words.next() {
        Some("ok") => Ok(Reply(words.map(str::to_string).collect())),
        Some("err") => {
            let kind = words.next().ok_or_else(bad)?;
            let msg = words.next().and_then(unhex_text).ok_or_else(bad)?;
            Err(match kind {
                "unavailable" => StoreError::Unavailable(msg),
                "already-enrolled" => StoreError::AlreadyEnrolled(msg),
                _ => StoreError::Backend(msg),
            })
        }
        _ => Err(bad()),
    }
}

fn malformed() -> StoreError {
    StoreError::Backend("malformed reply from the store helper".into())
}

impl Reply {
    fn only(&self) -> Result<&str, StoreError> {
        match self.0.as_slice() {
            [one] => Ok(one),
            _ => Err(malformed()),
        }
    }

    fn locked_or(&self, words: &[(&str, u8)]) -> Result<Result<u8, u64>, StoreError> {
        match self.0.as_slice() {
            [w, n] if w == "locked" => n.parse().map(Err).map_err(|_| malformed()),
            [w] => words
                .iter()
                .find(|(k, _)| k == w)
                .map(|(_, v)| Ok(*v))
                .ok_or_else(malformed),
            _ => Err(malformed()),
        }
    }

    /// A reply with no fields.
    pub fn unit(self) -> Result<(), StoreError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(malformed())
        }
    }

    /// `none` or one text field.
    pub fn optional_text(self) -> Result<Option<Zeroizing<String>>, StoreError> {
        match self.only()? {
            "none" => Ok(None),
            t => unhex_text(t)
                .map(|t| Some(Zeroizing::new(t)))
                .ok_or_else(malformed),
        }
    }

    /// Zero or more text fields.
    pub fn texts(self) -> Result<Vec<String>, StoreError> {
        self.0
            .iter()
            .map(|t| unhex_text(t).ok_or_else(malformed))
            .collect()
    }

    /// A state.
    pub fn state(self) -> Result<UserState, StoreError> {
        let text = unhex_text(self.only()?).ok_or_else(malformed)?;
        UserState::parse(&text)
            .map_err(|e| StoreError::Backend(format!("state from the store: {e}")))
    }

    /// A [`StepOutcome`].
    pub fn step(self) -> Result<StepOutcome, StoreError> {
        Ok(match self.locked_or(&[("accepted", 0), ("replayed", 1)])? {
            Ok(0) => StepOutcome::Accepted,
            Ok(_) => StepOutcome::Replayed,
            Err(u) => StepOutcome::Locked(u),
        })
    }

    /// A [`RecoveryOutcome`].
    pub fn recovery(self) -> Result<RecoveryOutcome, StoreError> {
        Ok(
            match self.locked_or(&[("consumed", 0), ("already-used", 1)])? {
                Ok(0) => RecoveryOutcome::Consumed,
                Ok(_) => RecoveryOutcome::AlreadyUsed,
                Err(u) => RecoveryOutcome::Locked(u),
            },
        )
    }

    /// A [`ChallengeOutcome`].
    pub fn challenge(self) -> Result<ChallengeOutcome, StoreError> {
        Ok(
            match self.locked_or(&[("valid", 0), ("expired", 1), ("wrong", 2)])? {
                Ok(0) => ChallengeOutcome::Valid,
                Ok(1) => ChallengeOutcome::Expired,
                Ok(_) => ChallengeOutcome::Wrong,
                Err(u) => ChallengeOutcome::Locked(u),
            },
        )
    }

    /// A [`SendOutcome`].
    pub fn send(self) -> Result<SendOutcome, StoreError> {
        match self.only()? {
            "allowed" => Ok(SendOutcome::Allowed),
            "limited" => Ok(SendOutcome::Limited),
            _ => Err(malformed()),
        }
    }

    /// A [`FailureOutcome`].
    pub fn failure(self) -> Result<FailureOutcome, StoreError> {
        let n = |s: &str| s.parse::<u64>().map_err(|_| malformed());
        match self.0.as_slice() {
            [w, c] if w == "counted" => Ok(FailureOutcome::Counted(
                c.parse::<u32>().map_err(|_| malformed())?,
            )),
            [w, u] if w == "locked" => Ok(FailureOutcome::Locked(n(u)?)),
            [w, u] if w == "already-locked" => Ok(FailureOutcome::AlreadyLocked(n(u)?)),
            _ => Err(malformed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Account {
        Account {
            name: "al ice\n".into(),
            uid: 1000,
            gid: 1001,
        }
    }

    fn every_request() -> Vec<Request> {
        let a = alice();
        vec![
            Request::Enrollment(a.clone()),
            Request::PutEnrollment(a.clone(), true, Zeroizing::new("x = 1\n\"é\"".into())),
            Request::DisableEnrollment(a.clone(), 7),
            Request::EnrolledNames,
            Request::State(a.clone()),
            Request::AcceptStep(a.clone(), u64::MAX, 3),
            Request::AcceptHotp(a.clone(), 1, 2, 3),
            Request::SpendConfirmation(a.clone(), Confirmation::Totp(u64::MAX)),
            Request::SpendConfirmation(a.clone(), Confirmation::Hotp(0)),
            Request::RememberHost(a.clone(), "host 1".into(), 4, 5),
            Request::ConsumeRecovery(a.clone(), "ab12".into(), 6),
            Request::CountSend(a.clone(), 7, 8, 9),
            Request::PutChallenge(
                a.clone(),
                Challenge {
                    salt: "00".into(),
                    hash: String::new(),
                    expires: 10,
                },
            ),
            Request::TakeChallenge(a.clone(), Zeroizing::new(b"12 34\n".to_vec()), 11),
            Request::RecordFailure(
                a.clone(),
                12,
                Lockout {
                    max_failures: 5,
                    window: 900,
                    duration: 300,
                },
            ),
            Request::ResetFailures(a),
        ]
    }

    #[test]
    fn every_request_survives_the_line_it_becomes() {
        for r in every_request() {
            let line = r.encode();
            assert!(!line.contains('\n'), "{line:?}");
            assert_eq!(Request::decode(&line), Some(r), "{line:?}");
        }
    }

    #[test]
    fn malformed_requests_are_refused() {
        for line in [
            "",
            "accept_step",
            "accept_step x61 1 1 2",
            "accept_step x61 1 1 2 3 4",
            "spend_confirmation x61 1 1 sms 2",
            "spend_confirmation x61 1 1 totp",
            "accept_step x61 1 1 +2 3",
            "accept_step x61 1 1 -2 3",
            "accept_step 61 1 1 2 3",
            "accept_step x6 1 1 2 3",
            "accept_step xzz 1 1 2 3",
            "accept_step xFF 1 1 2 3",
            "put_enrollment x61 1 1 2 x",
            "drop_table x61 1 1",
            "state xff 1 1",
        ] {
            assert_eq!(Request::decode(line), None, "{line:?}");
        }
    }

    #[test]
    fn serving_a_file_store_gives_its_answers_and_survives_garbage() -> Result<(), StoreError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        let mut b = [0u8; 4];
        let _ = getrandom::getrandom(&mut b);
        let dir =
            std::env::temp_dir().join(format!("twofa-wire-test-{:08x}", u32::from_ne_bytes(b)));
        std::fs::create_dir(&dir).ok();
        let store = crate::store::FileStore::new(&dir.join("lib"));
        let a = Account {
            name: "bob".into(),
            uid: 1,
            gid: 1,
        };
        let input = [
            Request::AcceptStep(a.clone(), 5, 1).encode().to_string(),
            Request::AcceptStep(a.clone(), 5, 2).encode().to_string(),
            "nonsense".to_string(),
            Request::RecordFailure(a.clone(), 3, Lockout::DEFAULT)
                .encode()
                .to_string(),
            Request::Enrollment(a.clone()).encode().to_string(),
            Request::EnrolledNames.encode().to_string(),
            Request::SpendConfirmation(a.clone(), Confirmation::Totp(5))
                .encode()
                .to_string(),
            Request::SpendConfirmation(a.clone(), Confirmation::Totp(6))
                .encode()
                .to_string(),
        ]
        .join("\n");
        let mut out = Vec::new();
        serve(&store, input.as_bytes(), &mut out)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let out = String::from_utf8_lossy(&out).to_string();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 8, "{out}");
        assert_eq!(parse_reply(lines[0])?.step()?, StepOutcome::Accepted);
        assert_eq!(parse_reply(lines[1])?.step()?, StepOutcome::Replayed);
        assert!(
            matches!(parse_reply(lines[2]), Err(StoreError::Backend(m)) if m.contains("malformed"))
        );
        assert_eq!(
            parse_reply(lines[3])?.failure()?,
            FailureOutcome::Counted(1)
        );
        assert!(parse_reply(lines[4])?.optional_text()?.is_none());
        assert!(parse_reply(lines[5])?.texts()?.is_empty());
        assert_eq!(parse_reply(lines[6])?.step()?, StepOutcome::Replayed);
        assert_eq!(parse_reply(lines[7])?.step()?, StepOutcome::Accepted);
        let state = store.state(&a)?;
        assert_eq!(state.failures, 1);
        // The confirmation moved the watermark and is no login: the last success is step 5's.
        assert_eq!(
            (state.totp_last_step, state.last_success_at),
            (Some(6), Some(1))
        );
        std::fs::remove_dir_all(&dir).ok();
        Ok(())
    }

    #[test]
    fn errors_cross_the_wire_as_their_kind() {
        for e in [
            StoreError::Unavailable("db down".into()),
            StoreError::Backend("bad key".into()),
            StoreError::AlreadyEnrolled("alice".into()),
        ] {
            let back = parse_reply(&error_line(&e));
            assert_eq!(format!("{back:?}"), format!("Err({e:?})"));
        }
    }
}
