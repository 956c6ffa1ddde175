//! The store protocol between the module (or the CLI) and the fleet store helper, and the
//! stable text forms of state operations and their outcomes.
//!
//! The module must not carry a database client (sshd and sudo load it), so in fleet mode each
//! [`Store`] call is a line sent to `twofa-store serve` over a socket and a line back. Both
//! ends are here, so they can't drift: [`Request`] is one trait call, [`serve`] is the
//! helper's loop over any `Store`, and [`crate::fleet::HelperStore`] is the module's side.
//!
//! One message is one line of space-separated fields: a word, a decimal number, or bytes as
//! `x` followed by lowercase hex (`x` alone is empty), so names, hosts and TOML text never
//! need quoting. An account is three fields: name, uid, gid. Replies start with `ok` or
//! `err KIND xMESSAGE` where KIND is `unavailable`, `backend` or `already-enrolled`.
//!
//! ```text
//! protocol 2                      -> ok protocol 2        first line of every session
//! enrollment ACCOUNT              -> ok none | ok xTOML
//! put_enrollment ACCOUNT 0|1 xTOML -> ok
//! disable_enrollment ACCOUNT NOW  -> ok none | ok xWHERE
//! enrolled_names                  -> ok xNAME...
//! state ACCOUNT                   -> ok xTOML
//! update ACCOUNT OP               -> ok OUTCOME
//! ```
//!
//! **Versions.** A session starts with `protocol N` ([`PROTOCOL`]); the helper answers
//! `ok protocol N` or refuses every line of the session with a `backend` error that names
//! both versions. Protocol 1, the releases before operations were values, had no such line
//! and a request word per operation: a module and a helper from different releases (an
//! upgrade half done on a host) refuse each other as a store *error*, which denies, never as
//! "unavailable", which could fall back to the host's own files.
//!
//! **Operations.** `OP` is the text form of a [`StateOp`] and `OUTCOME` that of an
//! [`OpOutcome`], each starting with its own format version ([`OP_FORMAT`], `v1`). The same
//! text is what an offline journal keeps, so it is stable: a change is a new format
//! version, and a new release still reads the old one.
//!
//! ```text
//! v1 accept_step STEP NOW                      v1 step accepted|replayed|locked UNTIL
//! v1 accept_hotp COUNTER ENROLLED_COUNTER NOW  v1 step ...
//! v1 spend_confirmation totp STEP|hotp COUNTER v1 step accepted|replayed
//! v1 consume_recovery xHASH NOW                v1 recovery consumed|already-used|locked UNTIL
//! v1 remember_host xHOST NOW UNTIL             v1 done
//! v1 count_send NOW LIMIT WINDOW               v1 send allowed|limited
//! v1 put_challenge xSALT xHASH EXPIRES         v1 done
//! v1 take_challenge xANSWER NOW                v1 challenge valid|expired|wrong|locked UNTIL
//! v1 record_failure NOW MAX_FAILURES WINDOW DURATION
//!                                              v1 failure counted N|locked UNTIL|already-locked UNTIL
//! v1 reset_failures                            v1 done
//! ```

use std::fmt;
use std::io::{self, BufRead, Write};

use zeroize::Zeroizing;

use crate::enrollment::Enrollment;
use crate::identity::Account;
use crate::state::{
    Challenge, ChallengeOutcome, Confirmation, FailureOutcome, Lockout, OpOutcome, RecoveryOutcome,
    SendOutcome, StateOp, StepOutcome, UserState,
};
use crate::store::{Store, StoreError};

/// Longest line either side accepts (an enrollment with many recovery codes is a few KiB).
pub const MAX_LINE: usize = 256 * 1024;

/// The version of the helper protocol this twofa speaks. 1 was the unversioned protocol of a
/// request word per store operation; 2 carries operations as values (`update`).
pub const PROTOCOL: u32 = 2;

/// The first field of the text form of every [`StateOp`] and [`OpOutcome`].
pub const OP_FORMAT: &str = "v1";

/// One store call, as sent to the helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The first line of a session: the protocol version the module speaks.
    Protocol(u32),
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
    /// [`Store::update`].
    Update(Account, StateOp),
}

/// Why a line (or an operation's text) could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A text form of a version this twofa does not read.
    Version(String),
    /// A word that names no request, operation or outcome this twofa knows.
    Unknown(String),
    /// A field missing, extra, or not of its type.
    Malformed,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Version(v) => write!(
                f,
                "operation format `{v}` is not known to this twofa (it reads {OP_FORMAT}): \
                 upgrade twofa on this host"
            ),
            DecodeError::Unknown(w) => write!(f, "unknown operation `{w}`"),
            DecodeError::Malformed => f.write_str("a field is missing, extra or malformed"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A byte field: `x` and lowercase hex (so an empty field is still a word).
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(1 + 2 * bytes.len());
    s.push('x');
    crate::hex::encode_into(&mut s, bytes);
    s
}

/// A byte field as [`hex`] writes it, and only so: one spelling per message.
fn unhex(field: &str) -> Option<Vec<u8>> {
    crate::hex::decode_lowercase(field.strip_prefix('x')?)
}

fn unhex_text(field: &str) -> Option<String> {
    String::from_utf8(unhex(field)?).ok()
}

/// The fields of one line, taken in order.
struct Fields<'a>(std::str::SplitAsciiWhitespace<'a>);

impl<'a> Fields<'a> {
    fn new(line: &'a str) -> Fields<'a> {
        Fields(line.split_ascii_whitespace())
    }
    fn word(&mut self) -> Result<&'a str, DecodeError> {
        self.0.next().ok_or(DecodeError::Malformed)
    }
    fn num<T: std::str::FromStr>(&mut self) -> Result<T, DecodeError> {
        let w = self.word()?;
        // `u64::from_str` takes a leading `+`: this protocol never writes one.
        if w.bytes().all(|b| b.is_ascii_digit()) {
            w.parse().map_err(|_| DecodeError::Malformed)
        } else {
            Err(DecodeError::Malformed)
        }
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        unhex(self.word()?).ok_or(DecodeError::Malformed)
    }
    fn text(&mut self) -> Result<String, DecodeError> {
        unhex_text(self.word()?).ok_or(DecodeError::Malformed)
    }
    fn account(&mut self) -> Result<Account, DecodeError> {
        Ok(Account {
            name: self.text()?,
            uid: self.num()?,
            gid: self.num()?,
        })
    }
    /// The format version that starts an operation or an outcome.
    fn op_format(&mut self) -> Result<(), DecodeError> {
        match self.word()? {
            OP_FORMAT => Ok(()),
            other => Err(DecodeError::Version(other.to_string())),
        }
    }
    fn end(mut self) -> Result<(), DecodeError> {
        match self.0.next() {
            None => Ok(()),
            Some(_) => Err(DecodeError::Malformed),
        }
    }
}

fn account(a: &Account) -> String {
    format!("{} {} {}", hex(a.name.as_bytes()), a.uid, a.gid)
}

impl StateOp {
    /// The operation's word in its text form (and in messages).
    pub fn word(&self) -> &'static str {
        match self {
            StateOp::AcceptStep { .. } => "accept_step",
            StateOp::AcceptHotp { .. } => "accept_hotp",
            StateOp::SpendConfirmation(_) => "spend_confirmation",
            StateOp::ConsumeRecovery { .. } => "consume_recovery",
            StateOp::RememberHost { .. } => "remember_host",
            StateOp::CountSend { .. } => "count_send",
            StateOp::PutChallenge(_) => "put_challenge",
            StateOp::TakeChallenge { .. } => "take_challenge",
            StateOp::RecordFailure { .. } => "record_failure",
            StateOp::ResetFailures => "reset_failures",
        }
    }

    /// The stable text form (see the module's documentation), without a newline; zeroizing,
    /// as a `take_challenge` carries a code.
    pub fn encode(&self) -> Zeroizing<String> {
        let fields = match self {
            StateOp::AcceptStep { step, now } => format!("{step} {now}"),
            StateOp::AcceptHotp {
                counter,
                enrolled_counter,
                now,
            } => format!("{counter} {enrolled_counter} {now}"),
            StateOp::SpendConfirmation(Confirmation::Totp(step)) => format!("totp {step}"),
            StateOp::SpendConfirmation(Confirmation::Hotp(counter)) => format!("hotp {counter}"),
            StateOp::ConsumeRecovery { hash_hex, now } => {
                format!("{} {now}", hex(hash_hex.as_bytes()))
            }
            StateOp::RememberHost { host, now, until } => {
                format!("{} {now} {until}", hex(host.as_bytes()))
            }
            StateOp::CountSend { now, limit, window } => format!("{now} {limit} {window}"),
            StateOp::PutChallenge(c) => format!(
                "{} {} {}",
                hex(c.salt.as_bytes()),
                hex(c.hash.as_bytes()),
                c.expires
            ),
            StateOp::TakeChallenge { answer, now } => format!("{} {now}", hex(answer)),
            StateOp::RecordFailure { now, lockout: l } => {
                format!("{now} {} {} {}", l.max_failures, l.window, l.duration)
            }
            StateOp::ResetFailures => String::new(),
        };
        let fields = Zeroizing::new(fields);
        Zeroizing::new(if fields.is_empty() {
            format!("{OP_FORMAT} {}", self.word())
        } else {
            format!("{OP_FORMAT} {} {}", self.word(), fields.as_str())
        })
    }

    /// Reads the text [`StateOp::encode`] writes; anything else is an error, never a panic.
    pub fn decode(text: &str) -> Result<StateOp, DecodeError> {
        let mut f = Fields::new(text);
        let op = StateOp::take(&mut f)?;
        f.end()?;
        Ok(op)
    }

    /// The operation at the start of `f`.
    fn take(f: &mut Fields<'_>) -> Result<StateOp, DecodeError> {
        f.op_format()?;
        Ok(match f.word()? {
            "accept_step" => StateOp::AcceptStep {
                step: f.num()?,
                now: f.num()?,
            },
            "accept_hotp" => StateOp::AcceptHotp {
                counter: f.num()?,
                enrolled_counter: f.num()?,
                now: f.num()?,
            },
            "spend_confirmation" => StateOp::SpendConfirmation(match f.word()? {
                "totp" => Confirmation::Totp(f.num()?),
                "hotp" => Confirmation::Hotp(f.num()?),
                _ => return Err(DecodeError::Malformed),
            }),
            "consume_recovery" => StateOp::ConsumeRecovery {
                hash_hex: f.text()?,
                now: f.num()?,
            },
            "remember_host" => StateOp::RememberHost {
                host: f.text()?,
                now: f.num()?,
                until: f.num()?,
            },
            "count_send" => StateOp::CountSend {
                now: f.num()?,
                limit: f.num()?,
                window: f.num()?,
            },
            "put_challenge" => StateOp::PutChallenge(Challenge {
                salt: f.text()?,
                hash: f.text()?,
                expires: f.num()?,
            }),
            "take_challenge" => StateOp::TakeChallenge {
                answer: Zeroizing::new(f.bytes()?),
                now: f.num()?,
            },
            "record_failure" => StateOp::RecordFailure {
                now: f.num()?,
                lockout: Lockout {
                    max_failures: f.num()?,
                    window: f.num()?,
                    duration: f.num()?,
                },
            },
            "reset_failures" => StateOp::ResetFailures,
            other => return Err(DecodeError::Unknown(other.to_string())),
        })
    }
}

impl OpOutcome {
    /// The stable text form (see the module's documentation), without a newline.
    pub fn encode(&self) -> String {
        let (kind, word, n): (&str, &str, Option<u64>) = match *self {
            OpOutcome::Done => ("done", "", None),
            OpOutcome::Step(o) => match o {
                StepOutcome::Accepted => ("step", "accepted", None),
                StepOutcome::Replayed => ("step", "replayed", None),
                StepOutcome::Locked(u) => ("step", "locked", Some(u)),
            },
            OpOutcome::Recovery(o) => match o {
                RecoveryOutcome::Consumed => ("recovery", "consumed", None),
                RecoveryOutcome::AlreadyUsed => ("recovery", "already-used", None),
                RecoveryOutcome::Locked(u) => ("recovery", "locked", Some(u)),
            },
            OpOutcome::Send(o) => match o {
                SendOutcome::Allowed => ("send", "allowed", None),
                SendOutcome::Limited => ("send", "limited", None),
            },
            OpOutcome::Challenge(o) => match o {
                ChallengeOutcome::Valid => ("challenge", "valid", None),
                ChallengeOutcome::Expired => ("challenge", "expired", None),
                ChallengeOutcome::Wrong => ("challenge", "wrong", None),
                ChallengeOutcome::Locked(u) => ("challenge", "locked", Some(u)),
            },
            OpOutcome::Failure(o) => match o {
                FailureOutcome::Counted(n) => ("failure", "counted", Some(u64::from(n))),
                FailureOutcome::Locked(u) => ("failure", "locked", Some(u)),
                FailureOutcome::AlreadyLocked(u) => ("failure", "already-locked", Some(u)),
            },
        };
        let mut out = format!("{OP_FORMAT} {kind}");
        for w in [
            word.to_string(),
            n.map(|n| n.to_string()).unwrap_or_default(),
        ] {
            if !w.is_empty() {
                out.push(' ');
                out.push_str(&w);
            }
        }
        out
    }

    /// Reads the text [`OpOutcome::encode`] writes; anything else is an error, never a panic.
    pub fn decode(text: &str) -> Result<OpOutcome, DecodeError> {
        let mut f = Fields::new(text);
        f.op_format()?;
        let kind = f.word()?;
        let out = if kind == "done" {
            OpOutcome::Done
        } else {
            let word = f.word()?;
            match (kind, word) {
                ("step", "accepted") => OpOutcome::Step(StepOutcome::Accepted),
                ("step", "replayed") => OpOutcome::Step(StepOutcome::Replayed),
                ("step", "locked") => OpOutcome::Step(StepOutcome::Locked(f.num()?)),
                ("recovery", "consumed") => OpOutcome::Recovery(RecoveryOutcome::Consumed),
                ("recovery", "already-used") => OpOutcome::Recovery(RecoveryOutcome::AlreadyUsed),
                ("recovery", "locked") => OpOutcome::Recovery(RecoveryOutcome::Locked(f.num()?)),
                ("send", "allowed") => OpOutcome::Send(SendOutcome::Allowed),
                ("send", "limited") => OpOutcome::Send(SendOutcome::Limited),
                ("challenge", "valid") => OpOutcome::Challenge(ChallengeOutcome::Valid),
                ("challenge", "expired") => OpOutcome::Challenge(ChallengeOutcome::Expired),
                ("challenge", "wrong") => OpOutcome::Challenge(ChallengeOutcome::Wrong),
                ("challenge", "locked") => OpOutcome::Challenge(ChallengeOutcome::Locked(f.num()?)),
                ("failure", "counted") => OpOutcome::Failure(FailureOutcome::Counted(f.num()?)),
                ("failure", "locked") => OpOutcome::Failure(FailureOutcome::Locked(f.num()?)),
                ("failure", "already-locked") => {
                    OpOutcome::Failure(FailureOutcome::AlreadyLocked(f.num()?))
                }
                _ => return Err(DecodeError::Unknown(format!("{kind} {word}"))),
            }
        };
        f.end()?;
        Ok(out)
    }
}

impl Request {
    /// The line for this request, without its newline.
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(match self {
            Request::Protocol(v) => format!("protocol {v}"),
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
            Request::Update(a, op) => format!("update {} {}", account(a), op.encode().as_str()),
        })
    }

    /// Parses a request line.
    pub fn decode(line: &str) -> Result<Request, DecodeError> {
        let mut f = Fields::new(line);
        let r = match f.word()? {
            "protocol" => Request::Protocol(f.num()?),
            "enrollment" => Request::Enrollment(f.account()?),
            "put_enrollment" => {
                let a = f.account()?;
                let replace = match f.word()? {
                    "0" => false,
                    "1" => true,
                    _ => return Err(DecodeError::Malformed),
                };
                Request::PutEnrollment(a, replace, Zeroizing::new(f.text()?))
            }
            "disable_enrollment" => Request::DisableEnrollment(f.account()?, f.num()?),
            "enrolled_names" => Request::EnrolledNames,
            "state" => Request::State(f.account()?),
            "update" => Request::Update(f.account()?, StateOp::take(&mut f)?),
            other => return Err(DecodeError::Unknown(other.to_string())),
        };
        f.end()?;
        Ok(r)
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
        Request::Protocol(PROTOCOL) => ok(format!("protocol {PROTOCOL}")),
        Request::Protocol(v) => Err(StoreError::Backend(refusal(Some(v)))),
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
        Request::Update(a, op) => store.update(&a, &op).and_then(|o| ok(o.encode())),
    };
    Zeroizing::new(match reply {
        Ok(line) => line,
        Err(e) => error_line(&e),
    })
}

/// Why the helper refuses a session: the module asked for protocol `asked`, or (`None`) sent
/// no protocol line at all, as modules of protocol 1 did.
fn refusal(asked: Option<u32>) -> String {
    let asked = match asked {
        Some(v) => format!("the module (or twofa-enroll) speaks store protocol {v}"),
        None => "the module (or twofa-enroll) sent no protocol line: it speaks store protocol 1"
            .to_string(),
    };
    format!(
        "twofa-store speaks store protocol {PROTOCOL} and {asked}: they come from different \
         twofa releases; finish upgrading the twofa package on this host so both are the same \
         version"
    )
}

/// The helper's loop: one request per line from `input`, one reply per line to `output`,
/// until end of input. The first line must be `protocol N` with this twofa's [`PROTOCOL`]:
/// until it is, every line is refused with a backend error that names both versions. A
/// malformed line gets a backend error and the loop goes on.
pub fn serve<R: BufRead, W: Write>(
    store: &dyn Store,
    mut input: R,
    mut output: W,
) -> io::Result<()> {
    // The version the other end asked for, once it said one.
    let mut asked = None;
    loop {
        let mut line = Zeroizing::new(Vec::new());
        let n = <&mut R as io::Read>::take(&mut input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let request = std::str::from_utf8(&line)
            .ok()
            .filter(|_| line.len() <= MAX_LINE)
            .ok_or(DecodeError::Malformed)
            .and_then(|l| Request::decode(l.trim_end_matches('\n')));
        let reply = match request {
            Ok(req @ Request::Protocol(v)) => {
                asked = Some(v);
                handle(store, req)
            }
            _ if asked != Some(PROTOCOL) => {
                Zeroizing::new(error_line(&StoreError::Backend(refusal(asked))))
            }
            Ok(req) => handle(store, req),
            Err(e) => Zeroizing::new(error_line(&StoreError::Backend(format!(
                "malformed request: {e}"
            )))),
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

    /// An operation's [`OpOutcome`].
    pub fn outcome(self) -> Result<OpOutcome, StoreError> {
        OpOutcome::decode(&self.0.join(" ")).map_err(|_| malformed())
    }

    /// The protocol version in the answer to `protocol N`.
    pub fn protocol(self) -> Result<u32, StoreError> {
        match self.0.as_slice() {
            [w, v] if w == "protocol" && v.bytes().all(|b| b.is_ascii_digit()) => {
                v.parse().map_err(|_| malformed())
            }
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

    /// Every kind of operation, each with the text it must always have: the journal of a
    /// host that upgrades later is read by the new release, so a change here is a new
    /// format version, never an edit.
    fn golden_ops() -> Vec<(StateOp, &'static str)> {
        vec![
            (
                StateOp::AcceptStep {
                    step: 57_000_000,
                    now: 1_710_000_000,
                },
                "v1 accept_step 57000000 1710000000",
            ),
            (
                StateOp::AcceptHotp {
                    counter: 12,
                    enrolled_counter: 10,
                    now: 3,
                },
                "v1 accept_hotp 12 10 3",
            ),
            (
                StateOp::SpendConfirmation(Confirmation::Totp(57_000_001)),
                "v1 spend_confirmation totp 57000001",
            ),
            (
                StateOp::SpendConfirmation(Confirmation::Hotp(7)),
                "v1 spend_confirmation hotp 7",
            ),
            (
                StateOp::ConsumeRecovery {
                    hash_hex: "ab12".into(),
                    now: 6,
                },
                "v1 consume_recovery x61623132 6",
            ),
            (
                StateOp::RememberHost {
                    host: "host 1".into(),
                    now: 4,
                    until: 5,
                },
                "v1 remember_host x686f73742031 4 5",
            ),
            (
                StateOp::CountSend {
                    now: 7,
                    limit: 8,
                    window: 9,
                },
                "v1 count_send 7 8 9",
            ),
            (
                StateOp::PutChallenge(Challenge {
                    salt: "00".into(),
                    hash: "ff".into(),
                    expires: 10,
                }),
                "v1 put_challenge x3030 x6666 10",
            ),
            (
                StateOp::TakeChallenge {
                    answer: Zeroizing::new(b"12 34\n".to_vec()),
                    now: 11,
                },
                "v1 take_challenge x31322033340a 11",
            ),
            (
                StateOp::RecordFailure {
                    now: 12,
                    lockout: Lockout {
                        max_failures: 5,
                        window: 900,
                        duration: 300,
                    },
                },
                "v1 record_failure 12 5 900 300",
            ),
            (StateOp::ResetFailures, "v1 reset_failures"),
        ]
    }

    /// Every outcome, with the text it must always have.
    fn golden_outcomes() -> Vec<(OpOutcome, &'static str)> {
        vec![
            (OpOutcome::Done, "v1 done"),
            (OpOutcome::Step(StepOutcome::Accepted), "v1 step accepted"),
            (OpOutcome::Step(StepOutcome::Replayed), "v1 step replayed"),
            (
                OpOutcome::Step(StepOutcome::Locked(99)),
                "v1 step locked 99",
            ),
            (
                OpOutcome::Recovery(RecoveryOutcome::Consumed),
                "v1 recovery consumed",
            ),
            (
                OpOutcome::Recovery(RecoveryOutcome::AlreadyUsed),
                "v1 recovery already-used",
            ),
            (
                OpOutcome::Recovery(RecoveryOutcome::Locked(7)),
                "v1 recovery locked 7",
            ),
            (OpOutcome::Send(SendOutcome::Allowed), "v1 send allowed"),
            (OpOutcome::Send(SendOutcome::Limited), "v1 send limited"),
            (
                OpOutcome::Challenge(ChallengeOutcome::Valid),
                "v1 challenge valid",
            ),
            (
                OpOutcome::Challenge(ChallengeOutcome::Expired),
                "v1 challenge expired",
            ),
            (
                OpOutcome::Challenge(ChallengeOutcome::Wrong),
                "v1 challenge wrong",
            ),
            (
                OpOutcome::Challenge(ChallengeOutcome::Locked(u64::MAX)),
                "v1 challenge locked 18446744073709551615",
            ),
            (
                OpOutcome::Failure(FailureOutcome::Counted(3)),
                "v1 failure counted 3",
            ),
            (
                OpOutcome::Failure(FailureOutcome::Locked(1308)),
                "v1 failure locked 1308",
            ),
            (
                OpOutcome::Failure(FailureOutcome::AlreadyLocked(1308)),
                "v1 failure already-locked 1308",
            ),
        ]
    }

    #[test]
    fn every_operation_keeps_its_text_and_comes_back_from_it() {
        let ops = golden_ops();
        // One golden text per kind of operation: a new variant needs its own line here.
        assert_eq!(ops.len(), 11);
        for (op, golden) in ops {
            assert_eq!(op.encode().as_str(), golden);
            assert_eq!(StateOp::decode(golden), Ok(op), "{golden}");
        }
    }

    #[test]
    fn every_outcome_keeps_its_text_and_comes_back_from_it() {
        for (outcome, golden) in golden_outcomes() {
            assert_eq!(outcome.encode(), golden);
            assert_eq!(OpOutcome::decode(golden), Ok(outcome), "{golden}");
        }
    }

    #[test]
    fn operations_at_the_edges_of_their_fields_come_back_whole() {
        for op in [
            StateOp::AcceptStep {
                step: u64::MAX,
                now: 0,
            },
            StateOp::ConsumeRecovery {
                hash_hex: String::new(),
                now: u64::MAX,
            },
            StateOp::RememberHost {
                host: "é \"quoted\"\n\t x".into(),
                now: 0,
                until: u64::MAX,
            },
            StateOp::CountSend {
                now: 1,
                limit: u32::MAX,
                window: 0,
            },
            StateOp::TakeChallenge {
                answer: Zeroizing::new(Vec::new()),
                now: 1,
            },
            StateOp::TakeChallenge {
                answer: Zeroizing::new((0..=255).collect()),
                now: 1,
            },
        ] {
            let text = op.encode();
            assert!(!text.contains('\n'), "{text:?}");
            assert_eq!(StateOp::decode(&text), Ok(op), "{text:?}");
        }
    }

    #[test]
    fn unknown_operations_versions_and_extra_fields_are_errors() {
        use DecodeError::{Malformed, Unknown, Version};
        for (text, error) in [
            ("", Malformed),
            ("v1", Malformed),
            ("v1 drop_table", Unknown("drop_table".into())),
            ("v1 accept_stepx 1 2", Unknown("accept_stepx".into())),
            ("v2 accept_step 1 2", Version("v2".into())),
            ("V1 accept_step 1 2", Version("V1".into())),
            ("accept_step 1 2", Version("accept_step".into())),
            ("v1 accept_step 1", Malformed),
            ("v1 accept_step 1 2 3", Malformed),
            ("v1 accept_step 1 +2", Malformed),
            ("v1 accept_step 1 -2", Malformed),
            ("v1 accept_step 1 18446744073709551616", Malformed),
            ("v1 count_send 1 4294967296 1", Malformed),
            ("v1 reset_failures 1", Malformed),
            ("v1 consume_recovery 6162 1", Malformed),
            ("v1 consume_recovery x616 1", Malformed),
            ("v1 consume_recovery xFF 1", Malformed),
            ("v1 consume_recovery xff 1", Malformed),
            ("v1 take_challenge xzz 1", Malformed),
        ] {
            assert_eq!(StateOp::decode(text), Err(error), "{text:?}");
        }
        for (text, error) in [
            ("", Malformed),
            ("v1", Malformed),
            ("v1 step", Malformed),
            ("v1 step maybe", Unknown("step maybe".into())),
            ("v1 send locked 3", Unknown("send locked".into())),
            ("v1 step locked", Malformed),
            ("v1 step locked soon", Malformed),
            ("v1 step accepted 1", Malformed),
            ("v1 done done", Malformed),
            ("v1 failure counted 4294967296", Malformed),
            ("v9 step accepted", Version("v9".into())),
            ("accepted", Version("accepted".into())),
        ] {
            assert_eq!(OpOutcome::decode(text), Err(error), "{text:?}");
        }
        assert!(DecodeError::Version("v2".into())
            .to_string()
            .contains("upgrade twofa"));
    }

    proptest::proptest! {
        /// Lines made of the protocol's own words in any order: decoding never panics, and
        /// whatever it accepts is written back as the same line.
        #[test]
        fn decoding_any_line_is_an_answer_never_a_panic(
            words in proptest::collection::vec(0usize..24, 0..9)
        ) {
            const VOCABULARY: [&str; 24] = [
                "v1", "v2", "update", "protocol", "accept_step", "accept_hotp", "reset_failures",
                "take_challenge", "put_challenge", "record_failure", "count_send", "step",
                "locked", "accepted", "failure", "counted", "done", "x", "x61", "xg", "0", "1",
                "18446744073709551615", "18446744073709551616",
            ];
            let line = words.iter().map(|&i| VOCABULARY[i]).collect::<Vec<_>>().join(" ");
            if let Ok(op) = StateOp::decode(&line) {
                proptest::prop_assert_eq!(op.encode().to_string(), line.clone());
            }
            if let Ok(outcome) = OpOutcome::decode(&line) {
                proptest::prop_assert_eq!(outcome.encode(), line.clone());
            }
            if let Ok(req) = Request::decode(&line) {
                proptest::prop_assert_eq!(req.encode().to_string(), line.clone());
            }
        }
    }

    fn every_request() -> Vec<Request> {
        let a = alice();
        let mut all = vec![
            Request::Protocol(PROTOCOL),
            Request::Enrollment(a.clone()),
            Request::PutEnrollment(a.clone(), true, Zeroizing::new("x = 1\n\"é\"".into())),
            Request::DisableEnrollment(a.clone(), 7),
            Request::EnrolledNames,
            Request::State(a.clone()),
        ];
        for (op, _) in golden_ops() {
            all.push(Request::Update(a.clone(), op));
        }
        all
    }

    #[test]
    fn every_request_survives_the_line_it_becomes() {
        for r in every_request() {
            let line = r.encode();
            assert!(!line.contains('\n'), "{line:?}");
            assert_eq!(Request::decode(&line), Ok(r), "{line:?}");
        }
        assert_eq!(
            Request::Update(alice(), StateOp::ResetFailures)
                .encode()
                .as_str(),
            "update x616c206963650a 1000 1001 v1 reset_failures"
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for line in [
            "",
            "update",
            "update x61 1 1",
            "update x61 1 1 v1 accept_step 2",
            "update x61 1 1 v1 accept_step 2 3 4",
            "update x61 1 1 v1 accept_step +2 3",
            "update x61 1 1 v1 accept_step -2 3",
            "update 61 1 1 v1 accept_step 2 3",
            "update x6 1 1 v1 accept_step 2 3",
            "update xzz 1 1 v1 accept_step 2 3",
            "update xFF 1 1 v1 accept_step 2 3",
            "update x61 1 1 v2 accept_step 2 3",
            "accept_step x61 1 1 2 3",
            "put_enrollment x61 1 1 2 x",
            "drop_table x61 1 1",
            "state xff 1 1",
            "protocol",
            "protocol two",
            "protocol 2 3",
        ] {
            assert!(Request::decode(line).is_err(), "{line:?}");
        }
    }

    /// A store in a fresh directory, for the tests that serve one (root only).
    fn file_store() -> Option<(crate::store::FileStore, std::path::PathBuf)> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let mut b = [0u8; 4];
        let _ = getrandom::getrandom(&mut b);
        let dir =
            std::env::temp_dir().join(format!("twofa-wire-test-{:08x}", u32::from_ne_bytes(b)));
        std::fs::create_dir(&dir).ok();
        Some((crate::store::FileStore::new(&dir.join("lib")), dir))
    }

    /// The replies of `serve` to these lines.
    fn served(store: &dyn Store, lines: &[String]) -> Result<Vec<String>, StoreError> {
        let input = lines.join("\n");
        let mut out = Vec::new();
        serve(store, input.as_bytes(), &mut out).map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect())
    }

    fn bob() -> Account {
        Account {
            name: "bob".into(),
            uid: 1,
            gid: 1,
        }
    }

    fn update(op: StateOp) -> String {
        Request::Update(bob(), op).encode().to_string()
    }

    #[test]
    fn serving_a_file_store_gives_its_answers_and_survives_garbage() -> Result<(), StoreError> {
        let Some((store, dir)) = file_store() else {
            return Ok(());
        };
        let lines = served(
            &store,
            &[
                Request::Protocol(PROTOCOL).encode().to_string(),
                update(StateOp::AcceptStep { step: 5, now: 1 }),
                update(StateOp::AcceptStep { step: 5, now: 2 }),
                "nonsense".to_string(),
                update(StateOp::RecordFailure {
                    now: 3,
                    lockout: Lockout::DEFAULT,
                }),
                Request::Enrollment(bob()).encode().to_string(),
                Request::EnrolledNames.encode().to_string(),
            ],
        )?;
        assert_eq!(lines.len(), 7, "{lines:?}");
        assert_eq!(parse_reply(&lines[0])?.protocol()?, PROTOCOL);
        assert_eq!(
            parse_reply(&lines[1])?.outcome()?,
            OpOutcome::Step(StepOutcome::Accepted)
        );
        assert_eq!(
            parse_reply(&lines[2])?.outcome()?,
            OpOutcome::Step(StepOutcome::Replayed)
        );
        assert!(
            matches!(parse_reply(&lines[3]), Err(StoreError::Backend(m)) if m == "malformed request: unknown operation `nonsense`")
        );
        assert_eq!(
            parse_reply(&lines[4])?.outcome()?,
            OpOutcome::Failure(FailureOutcome::Counted(1))
        );
        assert!(parse_reply(&lines[5])?.optional_text()?.is_none());
        assert!(parse_reply(&lines[6])?.texts()?.is_empty());
        assert_eq!(store.state(&bob())?.failures, 1);
        std::fs::remove_dir_all(&dir).ok();
        Ok(())
    }

    #[test]
    fn a_module_of_protocol_1_is_refused_with_both_versions_and_changes_nothing(
    ) -> Result<(), StoreError> {
        let Some((store, dir)) = file_store() else {
            return Ok(());
        };
        // What a module of protocol 1 sent: no protocol line, a word per operation.
        let lines = served(
            &store,
            &[
                "accept_step x626f62 1 1 5 1".to_string(),
                "record_failure x626f62 1 1 3 5 900 300".to_string(),
                update(StateOp::AcceptStep { step: 5, now: 1 }),
            ],
        )?;
        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in &lines {
            match parse_reply(line) {
                Err(StoreError::Backend(m)) => assert!(
                    m.contains("twofa-store speaks store protocol 2")
                        && m.contains("it speaks store protocol 1")
                        && m.contains("upgrading the twofa package on this host"),
                    "{m}"
                ),
                other => return Err(StoreError::Backend(format!("{other:?}"))),
            }
        }
        assert_eq!(store.state(&bob())?, UserState::default());
        std::fs::remove_dir_all(&dir).ok();
        Ok(())
    }

    #[test]
    fn a_module_of_another_protocol_is_refused_until_it_speaks_this_one() -> Result<(), StoreError>
    {
        let Some((store, dir)) = file_store() else {
            return Ok(());
        };
        let step = |now| update(StateOp::AcceptStep { step: 5, now });
        let lines = served(
            &store,
            &[
                "protocol 3".to_string(),
                step(1),
                "protocol 1".to_string(),
                format!("protocol {PROTOCOL}"),
                step(2),
            ],
        )?;
        assert_eq!(lines.len(), 5, "{lines:?}");
        let refused = |line: &str, asked: &str| {
            matches!(parse_reply(line), Err(StoreError::Backend(m))
                if m.contains("twofa-store speaks store protocol 2")
                    && m.contains(&format!("speaks store protocol {asked}:")))
        };
        assert!(refused(&lines[0], "3"), "{}", lines[0]);
        assert!(refused(&lines[1], "3"), "{}", lines[1]);
        assert!(refused(&lines[2], "1"), "{}", lines[2]);
        assert_eq!(parse_reply(&lines[3])?.protocol()?, PROTOCOL);
        assert_eq!(
            parse_reply(&lines[4])?.outcome()?,
            OpOutcome::Step(StepOutcome::Accepted)
        );
        assert_eq!(store.state(&bob())?.last_success_at, Some(2));
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
