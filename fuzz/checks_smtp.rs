//! What the fuzz target `smtp_reply` checks, in one place: included by
//! `fuzz/fuzz_targets/smtp_reply.rs` and by the stable replay of its corpus,
//! `twofa-deliver/tests/fuzz_corpus.rs`. Apart from `checks.rs` because that file needs
//! twofa-core, this one twofa-deliver's reply module: each includer compiles
//! `twofa-deliver/src/reply.rs` in with `#[path]` as `crate::reply` (reply.rs says why).
//!
//! The input is a server's reply stream. It goes through `reply::read` (the line reader with
//! its `MAX_LINE` bound and the reply parser: what `smtp::Session::reply` runs) until an error
//! or the end of the input, delivered in reads of three sizes; each outcome is checked against
//! a plain reading of the input line by line, and all three must agree.
// A failed check panics: that is what libFuzzer and the test harness catch.
#![allow(dead_code, clippy::panic)]

use std::io::{self, Read};

use crate::reply::{self, Extensions, LineBuffer, Reply, ReplyError, MAX_LINE, READ_CHUNK};

/// The checks of one target, on one input.
pub type Check = fn(&[u8]);

/// The targets, by name: the names of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`.
pub const TARGETS: &[(&str, Check)] = &[("smtp_reply", smtp_reply)];

/// A server that sends `data` at most `step` bytes per read, and checks on every read that
/// the client never holds more than `MAX_LINE + READ_CHUNK` bytes.
struct Server<'a> {
    data: &'a [u8],
    sent: usize,
    step: usize,
}

impl Read for Server<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(buf.len() <= READ_CHUNK, "a read of {} bytes", buf.len());
        // The client reads only when it holds no line end, so it holds every byte sent since
        // the last one.
        let sent = &self.data[..self.sent];
        let held = sent.len() - sent.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let n = buf.len().min(self.step).min(self.data.len() - self.sent);
        buf[..n].copy_from_slice(&self.data[self.sent..self.sent + n]);
        self.sent += n;
        assert!(
            held + n <= MAX_LINE + READ_CHUNK,
            "the client holds {} bytes",
            held + n
        );
        Ok(n)
    }
}

/// The replies read from `data`, and the error that ended the reading.
fn session(data: &[u8], step: usize) -> (Vec<Reply>, ReplyError) {
    let mut server = Server {
        data,
        sent: 0,
        step,
    };
    let mut buffer = LineBuffer::default();
    let mut replies = Vec::new();
    loop {
        match reply::read(&mut server, &mut buffer) {
            Ok(reply) => replies.push(reply),
            Err(err) => return (replies, err),
        }
    }
}

/// The input's lines, each with its LF (the last one may have none).
fn raw_lines(data: &[u8]) -> Vec<&[u8]> {
    data.split_inclusive(|&b| b == b'\n').collect()
}

/// `smtp_reply`: replies are exactly what the input's lines say (a code from 200 to 599 on
/// every line of a reply, text without CR or LF, no line longer than `MAX_LINE`); an over-long
/// line is an error whatever the read sizes, and the client's memory stays bounded; errors are
/// one printable line; EHLO keywords come from lines of the input.
pub fn smtp_reply(data: &[u8]) {
    let (replies, error) = session(data, READ_CHUNK);
    let message = error.to_string();
    assert!(!message.is_empty());
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(!matches!(error, ReplyError::Io(_)), "{message}");

    let lines = raw_lines(data);
    let mut next = 0;
    for reply in &replies {
        assert!((200..=599).contains(&reply.code), "{reply:?}");
        assert!(!reply.lines.is_empty() && reply.lines.len() <= reply::MAX_REPLY_LINES);
        let code = reply.code.to_string();
        for (i, text) in reply.lines.iter().enumerate() {
            let Some(&raw) = lines.get(next) else {
                panic!("{text:?}: a line the input does not have");
            };
            next += 1;
            let shown = String::from_utf8_lossy(&raw[..raw.len().min(80)]);
            assert!(raw.ends_with(b"\n"), "{shown:?}: no line end");
            assert!(raw.len() <= MAX_LINE, "a line of {} bytes read", raw.len());
            assert!(
                raw.starts_with(code.as_bytes()),
                "{shown:?} in a {code} reply"
            );
            let last = i + 1 == reply.lines.len();
            let mark = raw.get(3).copied();
            assert!(
                if last {
                    matches!(mark, Some(b' ' | b'\r' | b'\n'))
                } else {
                    mark == Some(b'-')
                },
                "{shown:?}"
            );
            assert!(!text.contains(['\r', '\n']), "{text:?}");
            let bare = raw.strip_suffix(b"\n").unwrap_or(raw);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            assert_eq!(
                *text,
                String::from_utf8_lossy(bare.get(4..).unwrap_or_default())
            );
        }
        if reply.code == 250 {
            ehlo_keywords_come_from_the_input(reply);
        }
    }

    // Where reading stopped, decided by the input alone: the first line from there on that
    // is not a whole line within the bound (`end`) is where the line reader gave up.
    let fits = |r: &&&[u8]| r.ends_with(b"\n") && r.len() <= MAX_LINE;
    let end = next + lines[next..].iter().take_while(fits).count();
    let stop = lines.get(end).map(|r| (r.len(), r.ends_with(b"\n")));
    match &error {
        ReplyError::LineTooLong => assert!(
            stop.is_some_and(|(len, lf)| len > MAX_LINE || (!lf && len == MAX_LINE)),
            "too long: {stop:?}"
        ),
        ReplyError::Closed => assert!(
            stop.is_none_or(|(len, lf)| !lf && len < MAX_LINE),
            "closed at {stop:?}"
        ),
        _ => assert!(end > next, "{message} without a whole line"),
    }

    // How the bytes were split into reads changes nothing.
    for step in [5, 61] {
        let (other_replies, other_error) = session(data, step);
        assert_eq!(other_replies, replies, "reads of {step} bytes");
        assert_eq!(other_error.to_string(), message, "reads of {step} bytes");
    }
}

/// Each keyword `from_ehlo` found is on a line after the first of the reply.
fn ehlo_keywords_come_from_the_input(reply: &Reply) {
    let ext = Extensions::from_ehlo(reply);
    let later: Vec<String> = reply
        .lines
        .iter()
        .skip(1)
        .map(|l| l.to_ascii_uppercase())
        .collect();
    let has = |start: &str, word: &str| {
        later
            .iter()
            .any(|l| l.starts_with(start) && l.split([' ', '=']).any(|w| w == word))
    };
    assert!(!ext.starttls || has("STARTTLS", "STARTTLS"), "{reply:?}");
    assert!(!ext.eight_bit || has("8BITMIME", "8BITMIME"), "{reply:?}");
    assert!(!ext.auth_plain || has("AUTH", "PLAIN"), "{reply:?}");
    assert!(!ext.auth_login || has("AUTH", "LOGIN"), "{reply:?}");
}
