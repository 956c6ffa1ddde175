//! SMTP replies as they come off the wire: the bounded line reader, the reply parser and the
//! EHLO keywords. No socket: [`read`] takes any `Read`, so the client (smtp.rs, on its
//! transport) and the fuzz target `smtp_reply` (on the fuzz input) run the same code on a
//! server's bytes.
//!
//! Why a file of its own that the fuzz crate compiles in with `#[path]` (as
//! `twofa-deliver/tests/fuzz_corpus.rs` does for the stable replay), rather than a dependency
//! of `fuzz/` on twofa-deliver: that dependency would build ring's C code, rustls, ureq,
//! lettre and toml_edit with the sanitizer flags for a parser that needs only std. Measured on
//! the 2-core dev machine (cold `cargo +nightly fuzz build`, nightly 2026-05-15): 69 s for the
//! fuzz crate with twofa-core alone, 130 s with twofa-deliver added (ring, rustls and the rest
//! built for nothing; the machine is shared, so the figures are rough). And twofa-deliver's library
//! would have to make this module public for the fuzz crate alone. So this file uses std and
//! nothing of the crate (`crate::` would not compile in the fuzz build or the replay).

use std::fmt;
use std::io::{self, Read};

/// Longest reply line accepted, its line end included (RFC 5321 says 512; some servers are
/// generous).
pub const MAX_LINE: usize = 2048;
/// Bytes asked for in one read. The buffer never holds more than `MAX_LINE` plus one read.
pub const READ_CHUNK: usize = 1024;
/// Most lines in one multi-line reply.
pub const MAX_REPLY_LINES: usize = 100;

/// Why no reply could be read. Each message is one line without the server's name (the
/// caller adds it).
#[derive(Debug)]
pub enum ReplyError {
    /// Not `ddd`, `ddd text` or `ddd-text` with a code from 200 to 599, or a CR without LF.
    Malformed,
    /// The lines of one multi-line reply carry different codes.
    MixedCodes,
    /// More than `MAX_REPLY_LINES` lines in one reply.
    TooManyLines,
    /// `MAX_LINE` bytes without a line end.
    LineTooLong,
    /// The connection ended before the reply did.
    Closed,
    /// The read itself failed (timeout, TLS error, reset).
    Io(io::Error),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Malformed => f.write_str("malformed SMTP reply"),
            ReplyError::MixedCodes => f.write_str("SMTP reply lines with different codes"),
            ReplyError::TooManyLines => f.write_str("SMTP reply has too many lines"),
            ReplyError::LineTooLong => f.write_str("SMTP reply line is too long"),
            ReplyError::Closed => f.write_str("the connection was closed"),
            ReplyError::Io(err) => write!(f, "SMTP read failed: {err}"),
        }
    }
}

/// One server reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The reply for an error message: code and first line, trimmed.
    pub fn summary(&self) -> String {
        let text: String = self
            .lines
            .first()
            .map(|l| l.chars().take(200).collect())
            .unwrap_or_default();
        format!("{} {}", self.code, text).trim_end().to_string()
    }
}

/// The bytes received and not yet consumed as lines.
#[derive(Debug)]
pub struct LineBuffer {
    bytes: Vec<u8>,
}

impl Default for LineBuffer {
    fn default() -> Self {
        LineBuffer {
            // Allocated once: never more is kept (see `next_line`).
            bytes: Vec::with_capacity(MAX_LINE + READ_CHUNK),
        }
    }
}

impl LineBuffer {
    /// Nothing received beyond the lines read so far (what STARTTLS requires after its 220).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Reads one line (without its LF, and without the CR before it), reading from `source`
    /// only while no line end is buffered and fewer than `MAX_LINE` bytes are.
    ///
    /// The bound is on the line, LF included, wherever the reads happened to split it: a line
    /// that came whole in one read is refused at the same length as one that came byte by
    /// byte. (Checking only the buffer before each read let a line of up to
    /// `MAX_LINE + READ_CHUNK` bytes through when its LF came in the read that crossed the
    /// limit; the fuzz target found that, `fuzz/regressions/smtp_reply/`.)
    pub fn next_line(&mut self, source: &mut impl Read) -> Result<String, ReplyError> {
        loop {
            if let Some(end) = self.bytes.iter().position(|&b| b == b'\n') {
                if end >= MAX_LINE {
                    return Err(ReplyError::LineTooLong);
                }
                let line: Vec<u8> = self.bytes.drain(..=end).collect();
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Ok(String::from_utf8_lossy(line).into_owned());
            }
            if self.bytes.len() >= MAX_LINE {
                return Err(ReplyError::LineTooLong);
            }
            let mut chunk = [0u8; READ_CHUNK];
            match source.read(&mut chunk) {
                Ok(0) => return Err(ReplyError::Closed),
                Ok(n) => self.bytes.extend_from_slice(&chunk[..n.min(READ_CHUNK)]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(ReplyError::Io(err)),
            }
        }
    }
}

/// Reads one complete (possibly multi-line) reply from `source`, through `buffer`.
pub fn read(source: &mut impl Read, buffer: &mut LineBuffer) -> Result<Reply, ReplyError> {
    let mut parser = ReplyParser::default();
    loop {
        let line = buffer.next_line(source)?;
        if let Some(reply) = parser.push(&line)? {
            return Ok(reply);
        }
    }
}

/// Accumulates reply lines (`250-first`, `250-second`, `250 last`) until the reply is complete.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Feeds one line (without its CRLF); returns the reply when this line was its last.
    ///
    /// A CR left in the line is malformed (RFC 5321 2.3.8: CR and LF only together as CRLF),
    /// so a reply's text never holds one.
    pub fn push(&mut self, line: &str) -> Result<Option<Reply>, ReplyError> {
        if line.contains(['\r', '\n']) {
            return Err(ReplyError::Malformed);
        }
        let bytes = line.as_bytes();
        let code = match bytes.get(..3) {
            Some(digits @ [b'2'..=b'5', b'0'..=b'9', b'0'..=b'9']) => digits
                .iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')),
            _ => return Err(ReplyError::Malformed),
        };
        if self.code.is_some_and(|first| first != code) {
            return Err(ReplyError::MixedCodes);
        }
        self.code = Some(code);
        let last = match bytes.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(ReplyError::Malformed),
        };
        self.lines.push(line.get(4..).unwrap_or("").to_string());
        if last {
            let lines = std::mem::take(&mut self.lines);
            self.code = None;
            return Ok(Some(Reply { code, lines }));
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        Ok(None)
    }
}

/// What EHLO told us the server can do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    pub starttls: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
    pub eight_bit: bool,
}

impl Extensions {
    /// Reads the lines after the greeting line of an EHLO reply.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let upper = line.to_ascii_uppercase();
            let mut words = upper.split([' ', '=']);
            match words.next() {
                Some("STARTTLS") => ext.starttls = true,
                Some("8BITMIME") => ext.eight_bit = true,
                Some("AUTH") => {
                    for mechanism in words {
                        match mechanism {
                            "PLAIN" => ext.auth_plain = true,
                            "LOGIN" => ext.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Vec<Reply>, ReplyError> {
        let mut parser = ReplyParser::default();
        let mut replies = Vec::new();
        for line in lines {
            if let Some(reply) = parser.push(line)? {
                replies.push(reply);
            }
        }
        Ok(replies)
    }

    #[test]
    fn a_multi_line_reply_ends_at_the_line_with_a_space() -> Result<(), ReplyError> {
        let replies = parse(&[
            "250-mail.example.com Hello",
            "250-PIPELINING",
            "250-AUTH=LOGIN",
            "250-AUTH PLAIN LOGIN",
            "250-STARTTLS",
            "250 8BITMIME",
        ])?;
        assert_eq!(replies.len(), 1);
        let reply = &replies[0];
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines.len(), 6);
        let ext = Extensions::from_ehlo(reply);
        assert_eq!(
            ext,
            Extensions {
                starttls: true,
                auth_plain: true,
                auth_login: true,
                eight_bit: true
            }
        );
        Ok(())
    }

    #[test]
    fn the_greeting_line_is_not_an_extension() -> Result<(), ReplyError> {
        let replies = parse(&["250-STARTTLS", "250 SIZE 1000"])?;
        assert!(!Extensions::from_ehlo(&replies[0]).starttls);
        Ok(())
    }

    #[test]
    fn a_bare_code_is_a_complete_reply() -> Result<(), ReplyError> {
        let replies = parse(&["354", "250 ok"])?;
        assert_eq!(
            replies.iter().map(|r| r.code).collect::<Vec<_>>(),
            [354, 250]
        );
        Ok(())
    }

    #[test]
    fn malformed_replies_are_errors() {
        for bad in [
            &["25 ok"][..],
            &["hello"],
            &["250x ok"],
            &["650 ok"],
            &["250-a", "251 b"],
            &[""],
            &["250 STARTTLS\rAUTH PLAIN"],
            &["250\r"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_endless_multi_line_reply_is_cut_off() {
        let lines = vec!["250-x"; MAX_REPLY_LINES + 1];
        assert!(matches!(parse(&lines), Err(ReplyError::TooManyLines)));
    }

    fn lines(data: &[u8]) -> Result<Vec<String>, ReplyError> {
        let mut buffer = LineBuffer::default();
        let mut source = data;
        let mut lines = Vec::new();
        loop {
            match buffer.next_line(&mut source) {
                Ok(line) => lines.push(line),
                Err(ReplyError::Closed) => return Ok(lines),
                Err(err) => return Err(err),
            }
        }
    }

    #[test]
    fn a_line_of_max_line_bytes_is_read_and_one_byte_more_is_refused() -> Result<(), ReplyError> {
        let at_max = format!("250 {}\r\n", "x".repeat(MAX_LINE - 6));
        assert_eq!(at_max.len(), MAX_LINE);
        assert_eq!(lines(at_max.as_bytes())?, [&at_max[..MAX_LINE - 2]]);
        // Over the limit by one byte, arriving in the same read as the rest of the line.
        let over = format!("250 {}\r\n", "x".repeat(MAX_LINE - 5));
        assert!(matches!(
            lines(over.as_bytes()),
            Err(ReplyError::LineTooLong)
        ));
        Ok(())
    }

    #[test]
    fn only_the_line_end_is_cut_and_a_bare_lf_ends_a_line() -> Result<(), ReplyError> {
        assert_eq!(
            lines(b"220 a\n250 b\r\n250 c\r\r\n")?,
            ["220 a", "250 b", "250 c\r"]
        );
        Ok(())
    }

    #[test]
    fn auth_mechanisms_are_read_case_insensitively() -> Result<(), ReplyError> {
        let replies = parse(&["250-hi", "250 auth login"])?;
        let ext = Extensions::from_ehlo(&replies[0]);
        assert!(ext.auth_login && !ext.auth_plain);
        Ok(())
    }
}
