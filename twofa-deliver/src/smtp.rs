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
//!   `reply::LineBuffer` gives up once `MAX_LINE` bytes have come without one.
//!
//! The dialogue is a dozen commands, under 400 lines with its reply parser (reply.rs, apart so
//! that the fuzz target `smtp_reply` runs it); lettre still builds the message itself (mail.rs:
//! MIME, encodings, the Date header).

use std::io::{self, Read, Write};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rustls::ClientConfig;

use crate::address::Host;
use crate::error::Failure;
use crate::net::DeadlineStream;
use crate::reply::{Extensions, LineBuffer, Reply, ReplyError};
use crate::tls::{self, TlsStream};

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
    buffer: LineBuffer,
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
            buffer: LineBuffer::default(),
            host,
        }
    }

    pub(crate) fn tls(stream: TlsStream, host: Host) -> Self {
        Session {
            transport: Transport::Tls(Box::new(stream)),
            buffer: LineBuffer::default(),
            host,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    fn io_error(&self, what: &str, err: &io::Error) -> Failure {
        Failure::delivery(format!("SMTP {what} with {}: {err}", self.host))
    }

    /// Reads one complete (possibly multi-line) reply (reply.rs: the line bound, the syntax).
    pub(crate) fn reply(&mut self) -> Result<Reply, Failure> {
        crate::reply::read(&mut self.transport, &mut self.buffer).map_err(|err| match err {
            ReplyError::Closed => {
                Failure::delivery(format!("SMTP server {} closed the connection", self.host))
            }
            ReplyError::Io(err) => self.io_error("read", &err),
            ReplyError::LineTooLong => {
                Failure::delivery(format!("SMTP reply line from {} is too long", self.host))
            }
            other => Failure::delivery(format!("{other} from {}", self.host)),
        })
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

    #[test]
    fn lines_starting_with_a_dot_are_doubled_and_the_message_ends_in_crlf() {
        assert_eq!(
            dot_stuffed(b".a\r\nb.\r\n..c\r\n."),
            b"..a\r\nb.\r\n...c\r\n..\r\n"
        );
        assert_eq!(dot_stuffed(b"x\r\n"), b"x\r\n");
    }
}
