//! An SMTP client for exactly one message (RFC 5321, STARTTLS RFC 3207, AUTH RFC 4954).
//!
//! Our own, not lettre's `SmtpConnection`: this dialogue is where the relay's bytes cross our
//! trust boundary, and lettre 0.11.23 (the newest release; its source read in December 2026)
//! lets two things through that this file refuses:
//! - After the STARTTLS `220` it wraps its socket in TLS but keeps its read buffer: reply lines
//!   a man in the middle sent in clear text right behind the `220` are then read as if they
//!   came over TLS (the STARTTLS injection class, Postfix CVE-2011-0411).
//!   `Session::starttls` refuses a connection with any byte buffered after that reply.
//! - It reads a reply line to its end (`BufRead::read_line`) before applying its 1,000-byte
//!   limit, so a server that never sends a newline grows its memory until the deadline.
//!   `Session::read_line` gives up once `MAX_LINE` bytes have come without one.
//!
//! The dialogue is a dozen commands, under 400 lines with its reply parser; lettre still builds
//! the message itself (mail.rs: MIME, encodings, the Date header).

use std::io::{self, Read, Write};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rustls::ClientConfig;

use crate::address::Host;
use crate::error::Failure;
use crate::net::DeadlineStream;
use crate::tls::{self, TlsStream};

/// Longest reply line accepted (RFC 5321 says 512; some servers are generous). The buffer
/// never holds more than this plus one read (`READ_CHUNK`).
const MAX_LINE: usize = 2048;
/// Bytes asked for in one read.
const READ_CHUNK: usize = 1024;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 100;

/// One server reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) lines: Vec<String>,
}

impl Reply {
    /// The reply for an error message: code and first line, trimmed.
    pub(crate) fn summary(&self) -> String {
        let text: String = self
            .lines
            .first()
            .map(|l| l.chars().take(200).collect())
            .unwrap_or_default();
        format!("{} {}", self.code, text).trim_end().to_string()
    }
}

/// Accumulates reply lines (`250-first`, `250-second`, `250 last`) until the reply is complete.
#[derive(Debug, Default)]
pub(crate) struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Feeds one line (without its CRLF); returns the reply when this line was its last.
    pub(crate) fn push(&mut self, line: &str) -> Result<Option<Reply>, String> {
        let bytes = line.as_bytes();
        let code = match bytes.get(..3) {
            Some(digits @ [b'2'..=b'5', b'0'..=b'9', b'0'..=b'9']) => digits
                .iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')),
            _ => return Err("malformed SMTP reply".to_string()),
        };
        if self.code.is_some_and(|first| first != code) {
            return Err("SMTP reply lines with different codes".to_string());
        }
        self.code = Some(code);
        let last = match bytes.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err("malformed SMTP reply".to_string()),
        };
        self.lines.push(line.get(4..).unwrap_or("").to_string());
        if last {
            let lines = std::mem::take(&mut self.lines);
            self.code = None;
            return Ok(Some(Reply { code, lines }));
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err("SMTP reply has too many lines".to_string());
        }
        Ok(None)
    }
}

/// What EHLO told us the server can do.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Extensions {
    pub(crate) starttls: bool,
    pub(crate) auth_plain: bool,
    pub(crate) auth_login: bool,
    pub(crate) eight_bit: bool,
}

impl Extensions {
    /// Reads the lines after the greeting line of an EHLO reply.
    pub(crate) fn from_ehlo(reply: &Reply) -> Self {
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

enum Transport {
    Plain(DeadlineStream),
    Tls(Box<TlsStream>),
    /// Only while STARTTLS swaps one for the other.
    Closed,
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
            Transport::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
            Transport::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
            Transport::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// One SMTP connection.
pub(crate) struct Session {
    transport: Transport,
    buffer: Vec<u8>,
    host: Host,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("host", &self.host).finish()
    }
}

impl Session {
    pub(crate) fn plain(sock: DeadlineStream, host: Host) -> Self {
        Session {
            transport: Transport::Plain(sock),
            buffer: Vec::new(),
            host,
        }
    }

    pub(crate) fn tls(stream: TlsStream, host: Host) -> Self {
        Session {
            transport: Transport::Tls(Box::new(stream)),
            buffer: Vec::new(),
            host,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    fn io_error(&self, what: &str, err: &io::Error) -> Failure {
        Failure::delivery(format!("SMTP {what} with {}: {err}", self.host))
    }

    fn read_line(&mut self) -> Result<String, Failure> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                return Ok(line.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buffer.len() > MAX_LINE {
                return Err(Failure::delivery(format!(
                    "SMTP reply line from {} is too long",
                    self.host
                )));
            }
            let mut chunk = [0u8; READ_CHUNK];
            match self.transport.read(&mut chunk) {
                Ok(0) => {
                    return Err(Failure::delivery(format!(
                        "SMTP server {} closed the connection",
                        self.host
                    )))
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.io_error("read", &err)),
            }
        }
    }

    /// Reads one complete (possibly multi-line) reply.
    pub(crate) fn reply(&mut self) -> Result<Reply, Failure> {
        let mut parser = ReplyParser::default();
        loop {
            let line = self.read_line()?;
            match parser.push(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(why) => return Err(Failure::delivery(format!("{why} from {}", self.host))),
            }
        }
    }

    fn send_raw(&mut self, data: &[u8]) -> Result<(), Failure> {
        let result = self
            .transport
            .write_all(data)
            .and_then(|()| self.transport.flush());
        result.map_err(|err| self.io_error("write", &err))
    }

    /// Sends one command line and reads the reply.
    fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        debug_assert!(!line.contains(['\r', '\n']));
        self.send_raw(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// Sends a command and requires one of the `expected` codes. `shown` names the command in
    /// error messages: AUTH lines carry credentials and are never shown themselves.
    pub(crate) fn expect(
        &mut self,
        line: &str,
        shown: &str,
        expected: &[u16],
    ) -> Result<Reply, Failure> {
        let reply = self.command(line)?;
        if expected.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(Failure::delivery(format!(
                "SMTP server {} refused {shown}: {}",
                self.host,
                reply.summary()
            )))
        }
    }

    /// The greeting, which must be 220.
    pub(crate) fn greeting(&mut self) -> Result<(), Failure> {
        let reply = self.reply()?;
        if reply.code == 220 {
            Ok(())
        } else {
            Err(Failure::delivery(format!(
                "SMTP server {} does not accept mail: {}",
                self.host,
                reply.summary()
            )))
        }
    }

    pub(crate) fn ehlo(&mut self, helo: &str) -> Result<Extensions, Failure> {
        let reply = self.expect(&format!("EHLO {helo}"), "EHLO", &[250])?;
        Ok(Extensions::from_ehlo(&reply))
    }

    /// STARTTLS, then the handshake on the same socket. Anything the server sent after its
    /// 220 arrived in plaintext and could have been injected on the way: refuse it (the
    /// STARTTLS command-injection class of bugs, CVE-2011-0411 and kin).
    pub(crate) fn starttls(&mut self, config: &Arc<ClientConfig>) -> Result<(), Failure> {
        self.expect("STARTTLS", "STARTTLS", &[220])?;
        if !self.buffer.is_empty() {
            return Err(Failure::delivery(format!(
                "SMTP server {} sent data after its STARTTLS reply (refused)",
                self.host
            )));
        }
        let Transport::Plain(sock) = std::mem::replace(&mut self.transport, Transport::Closed)
        else {
            return Err(Failure::delivery(
                "STARTTLS on a connection that is not plain",
            ));
        };
        let stream = tls::handshake(config, &self.host, sock)?;
        self.transport = Transport::Tls(Box::new(stream));
        Ok(())
    }

    /// AUTH PLAIN when offered, else AUTH LOGIN. The credentials never appear in a message.
    pub(crate) fn authenticate(
        &mut self,
        ext: &Extensions,
        username: &str,
        password: &str,
    ) -> Result<(), Failure> {
        if ext.auth_plain {
            let token = BASE64.encode(format!("\0{username}\0{password}").as_bytes());
            let reply = self.expect(&format!("AUTH PLAIN {token}"), "AUTH PLAIN", &[235, 334])?;
            if reply.code == 334 {
                // A server that wants the initial response on its own line.
                self.expect(&token, "AUTH PLAIN", &[235])?;
            }
            Ok(())
        } else if ext.auth_login {
            self.expect("AUTH LOGIN", "AUTH LOGIN", &[334])?;
            self.expect(&BASE64.encode(username.as_bytes()), "the user name", &[334])?;
            self.expect(&BASE64.encode(password.as_bytes()), "the password", &[235])?;
            Ok(())
        } else {
            Err(Failure::delivery(format!(
                "SMTP server {} offers neither AUTH PLAIN nor AUTH LOGIN",
                self.host
            )))
        }
    }

    /// DATA, the message (CRLF line ends) dot-stuffed, and the final dot.
    pub(crate) fn data(&mut self, message: &[u8]) -> Result<(), Failure> {
        self.expect("DATA", "DATA", &[354])?;
        self.send_raw(&dot_stuffed(message))?;
        let reply = self.command(".")?;
        if reply.code == 250 {
            Ok(())
        } else {
            Err(Failure::delivery(format!(
                "SMTP server {} refused the message: {}",
                self.host,
                reply.summary()
            )))
        }
    }

    /// QUIT, best effort: the message is already accepted.
    pub(crate) fn quit(mut self) {
        let _ = self.command("QUIT");
        if let Transport::Tls(stream) = &mut self.transport {
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
    }
}

/// The message as it goes after DATA: a dot that starts a line doubled (RFC 5321 4.5.2), and
/// ending in CRLF so that the final dot is a line of its own.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut line_start = true;
    for &byte in message {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Vec<Reply>, String> {
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
    fn a_multi_line_reply_ends_at_the_line_with_a_space() -> Result<(), String> {
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
    fn the_greeting_line_is_not_an_extension() -> Result<(), String> {
        let replies = parse(&["250-STARTTLS", "250 SIZE 1000"])?;
        assert!(!Extensions::from_ehlo(&replies[0]).starttls);
        Ok(())
    }

    #[test]
    fn a_bare_code_is_a_complete_reply() -> Result<(), String> {
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
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_endless_multi_line_reply_is_cut_off() {
        let lines = vec!["250-x"; MAX_REPLY_LINES + 1];
        assert!(parse(&lines).is_err());
    }

    #[test]
    fn lines_starting_with_a_dot_are_doubled_and_the_message_ends_in_crlf() {
        assert_eq!(
            dot_stuffed(b".a\r\nb.\r\n..c\r\n."),
            b"..a\r\nb.\r\n...c\r\n..\r\n"
        );
        assert_eq!(dot_stuffed(b"x\r\n"), b"x\r\n");
    }

    #[test]
    fn auth_mechanisms_are_read_case_insensitively() -> Result<(), String> {
        let replies = parse(&["250-hi", "250 auth login"])?;
        let ext = Extensions::from_ehlo(&replies[0]);
        assert!(ext.auth_login && !ext.auth_plain);
        Ok(())
    }
}
