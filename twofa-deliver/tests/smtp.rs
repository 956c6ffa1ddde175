//! The email method against an in-process SMTP server on 127.0.0.1: plain, STARTTLS and
//! implicit TLS, AUTH PLAIN and LOGIN, refusals and timeouts.

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use data_encoding::BASE64;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

#[derive(Clone, Copy, PartialEq)]
enum Tls {
    Plain,
    Starttls,
    Implicit,
}

#[derive(Clone)]
struct Options {
    tls: Tls,
    /// Username and password the server accepts; AUTH is offered only when set.
    auth: Option<(&'static str, &'static str)>,
    mechanisms: &'static str,
    reject_rcpt: bool,
    silent: bool,
    /// Answers STARTTLS with its 220 and a forged reply in the same write, as a man in the
    /// middle would inject it in clear text.
    inject_after_starttls: bool,
    /// Greets with a line that never ends.
    endless_greeting: bool,
}

impl Options {
    fn new(tls: Tls) -> Self {
        Options {
            tls,
            auth: None,
            mechanisms: "PLAIN LOGIN",
            reject_rcpt: false,
            silent: false,
            inject_after_starttls: false,
            endless_greeting: false,
        }
    }
}

/// What the server saw.
#[derive(Debug, Default)]
struct Transcript {
    commands: Vec<String>,
    authenticated: Option<String>,
    tls_at_auth: bool,
    tls_at_mail: bool,
    data: Option<String>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    Gone,
}

struct Server {
    conn: Conn,
    buf: Vec<u8>,
}

impl Server {
    fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok(String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string());
            }
            let mut chunk = [0u8; 4096];
            let n = match &mut self.conn {
                Conn::Plain(s) => s.read(&mut chunk)?,
                Conn::Tls(s) => s.read(&mut chunk)?,
                Conn::Gone => 0,
            };
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(&mut self, text: &str) -> io::Result<()> {
        match &mut self.conn {
            Conn::Plain(s) => s.write_all(text.as_bytes()),
            Conn::Tls(s) => s.write_all(text.as_bytes()).and_then(|()| s.flush()),
            Conn::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn is_tls(&self) -> bool {
        matches!(self.conn, Conn::Tls(_))
    }

    fn upgrade(&mut self, config: &Arc<ServerConfig>) -> io::Result<()> {
        if let Conn::Plain(sock) = std::mem::replace(&mut self.conn, Conn::Gone) {
            let conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
            self.conn = Conn::Tls(Box::new(StreamOwned::new(conn, sock)));
        }
        Ok(())
    }
}

fn b64(text: &str) -> String {
    BASE64
        .decode(text.as_bytes())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Starts a one-connection SMTP server; returns its port and the transcript at the end.
fn start(
    options: Options,
    tls: Arc<ServerConfig>,
) -> io::Result<(u16, JoinHandle<io::Result<Transcript>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept()?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut t = Transcript::default();
        let mut server = Server {
            conn: Conn::Plain(sock),
            buf: Vec::new(),
        };
        if options.silent {
            // Never greet: the client must give up at its deadline.
            let _ = server.read_line();
            return Ok(t);
        }
        if options.endless_greeting {
            return endless_line(&mut server).map(|()| t);
        }
        if options.tls == Tls::Implicit {
            server.upgrade(&tls)?;
        }
        server.send("220 fake.test ESMTP ready\r\n")?;
        loop {
            let line = match server.read_line() {
                Ok(line) => line,
                Err(_) => return Ok(t),
            };
            t.commands.push(line.clone());
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO ") {
                let mut reply = String::from("250-fake.test greets you\r\n250-PIPELINING\r\n");
                if options.tls == Tls::Starttls && !server.is_tls() {
                    reply.push_str("250-STARTTLS\r\n");
                }
                if options.auth.is_some() && (server.is_tls() || options.tls == Tls::Plain) {
                    reply.push_str(&format!("250-AUTH {}\r\n", options.mechanisms));
                }
                reply.push_str("250 8BITMIME\r\n");
                server.send(&reply)?;
            } else if upper == "STARTTLS" && options.inject_after_starttls {
                server.send("220 ready\r\n250 injected\r\n")?;
                server.upgrade(&tls)?;
            } else if upper == "STARTTLS" && options.tls == Tls::Starttls {
                server.send("220 2.0.0 go ahead\r\n")?;
                server.upgrade(&tls)?;
            } else if let Some(initial) = upper.strip_prefix("AUTH PLAIN ").map(|_| &line[11..]) {
                t.tls_at_auth = server.is_tls();
                let decoded = b64(initial);
                let expected = options.auth.map(|(u, p)| format!("\0{u}\0{p}"));
                if Some(&decoded) == expected.as_ref() {
                    t.authenticated = options.auth.map(|(u, _)| u.to_string());
                    server.send("235 2.7.0 ok\r\n")?;
                } else {
                    // A careless server that echoes what it got: must not reach stderr.
                    server.send(&format!("535 5.7.8 bad credentials {decoded:?}\r\n"))?;
                }
            } else if upper == "AUTH LOGIN" {
                t.tls_at_auth = server.is_tls();
                server.send("334 VXNlcm5hbWU6\r\n")?;
                let user = b64(&server.read_line()?);
                server.send("334 UGFzc3dvcmQ6\r\n")?;
                let pass = b64(&server.read_line()?);
                if options.auth == Some((user.as_str(), pass.as_str())) {
                    t.authenticated = Some(user);
                    server.send("235 2.7.0 ok\r\n")?;
                } else {
                    server.send(&format!("535 5.7.8 bad password {pass}\r\n"))?;
                }
            } else if upper.starts_with("MAIL FROM:") {
                t.tls_at_mail = server.is_tls();
                if options.auth.is_some() && t.authenticated.is_none() {
                    server.send("530 5.7.0 authentication required\r\n")?;
                } else {
                    server.send("250 2.1.0 ok\r\n")?;
                }
            } else if upper.starts_with("RCPT TO:") {
                if options.reject_rcpt {
                    server.send("550 5.1.1 no such user\r\n")?;
                } else {
                    server.send("250 2.1.5 ok\r\n")?;
                }
            } else if upper == "DATA" {
                server.send("354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = String::new();
                loop {
                    let line = server.read_line()?;
                    if line == "." {
                        break;
                    }
                    data.push_str(&line);
                    data.push('\n');
                }
                t.data = Some(data);
                server.send("250 2.0.0 queued as 42\r\n")?;
            } else if upper == "QUIT" {
                let _ = server.send("221 2.0.0 bye\r\n");
                return Ok(t);
            } else {
                server.send("500 5.5.2 what?\r\n")?;
            }
        }
    });
    Ok((port, handle))
}

/// Sends `220 ` and then `x` without end, until the client hangs up (or 64 MiB, far more than
/// any client should take).
fn endless_line(server: &mut Server) -> io::Result<()> {
    server.send("220 ")?;
    let chunk = "x".repeat(64 * 1024);
    for _ in 0..1024 {
        if server.send(&chunk).is_err() {
            return Ok(());
        }
    }
    Err(io::Error::other("the client read 64 MiB of one reply line"))
}

fn transcript(handle: JoinHandle<io::Result<Transcript>>) -> io::Result<Transcript> {
    handle
        .join()
        .map_err(|_| io::Error::other("server thread panicked"))?
}

fn settings(port: u16, tls: &str, extra: &str) -> String {
    format!(
        "smtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"{tls}\"\n\
         from = \"twofa@example.com\"\nhelo = \"client.example.com\"\ntimeout_seconds = 5\n\
         subject = \"Code for {{user}}\"\n{extra}"
    )
}

#[test]
fn starttls_with_auth_plain_delivers_the_code_to_every_recipient() -> TestResult {
    let cert = TestCert::new()?;
    let mut options = Options::new(Tls::Starttls);
    options.auth = Some(("mailer", PASSWORD));
    let (port, handle) = start(options, Arc::clone(&cert.server))?;
    let extra = format!(
        "ca_file = \"{}\"\nusername = \"mailer\"\npassword = \"{PASSWORD}\"\n",
        cert.ca_file()
    );
    let output = deliver(
        "email",
        "alice@example.com,bob@example.org",
        &settings(port, "starttls", &extra),
    )?;
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let t = transcript(handle)?;
    assert_eq!(
        t.commands
            .iter()
            .map(|c| c.split(' ').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    );
    assert_eq!(t.commands[0], "EHLO client.example.com");
    assert!(t.tls_at_auth && t.tls_at_mail);
    assert_eq!(t.authenticated.as_deref(), Some("mailer"));
    assert_eq!(t.commands[4], "MAIL FROM:<twofa@example.com>");
    assert_eq!(t.commands[5], "RCPT TO:<alice@example.com>");
    assert_eq!(t.commands[6], "RCPT TO:<bob@example.org>");
    let data = t.data.unwrap_or_default();
    assert!(data.contains("Subject: Code for alice\n"), "{data}");
    assert!(
        data.contains("To: alice@example.com, bob@example.org\n"),
        "{data}"
    );
    assert!(data.contains(&format!("is {CODE}.")), "{data}");
    assert!(data.contains("valid for 5 minutes"), "{data}");
    Ok(())
}

#[test]
fn implicit_tls_uses_auth_login_when_that_is_all_the_server_offers() -> TestResult {
    let cert = TestCert::new()?;
    let mut options = Options::new(Tls::Implicit);
    options.auth = Some(("mailer", PASSWORD));
    options.mechanisms = "LOGIN";
    let (port, handle) = start(options, Arc::clone(&cert.server))?;
    let extra = format!(
        "ca_file = \"{}\"\nusername = \"mailer\"\npassword = \"{PASSWORD}\"\n\
         body = \"code={{code}}\\n.leading dot\\n\"\n",
        cert.ca_file()
    );
    let output = deliver(
        "email",
        "alice@example.com",
        &settings(port, "implicit", &extra),
    )?;
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let t = transcript(handle)?;
    assert!(t.commands.iter().any(|c| c == "AUTH LOGIN"));
    assert!(t.tls_at_auth);
    let data = t.data.unwrap_or_default();
    // Dot-stuffed on the wire: the server sees the doubled dot before un-stuffing.
    assert!(
        data.contains(&format!("code={CODE}\n..leading dot\n")),
        "{data}"
    );
    Ok(())
}

#[test]
fn a_loopback_relay_without_tls_gets_the_mail() -> TestResult {
    let cert = TestCert::new()?;
    let (port, handle) = start(Options::new(Tls::Plain), Arc::clone(&cert.server))?;
    let output = deliver("email", "alice@example.com", &settings(port, "none", ""))?;
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let t = transcript(handle)?;
    assert!(!t.commands.iter().any(|c| c.starts_with("STARTTLS")));
    assert!(t.data.unwrap_or_default().contains(CODE));
    Ok(())
}

#[test]
fn a_server_without_starttls_is_refused_before_any_credential_is_sent() -> TestResult {
    let cert = TestCert::new()?;
    let mut options = Options::new(Tls::Plain);
    options.auth = Some(("mailer", PASSWORD));
    let (port, handle) = start(options, Arc::clone(&cert.server))?;
    let extra = format!(
        "ca_file = \"{}\"\nusername = \"mailer\"\npassword = \"{PASSWORD}\"\n",
        cert.ca_file()
    );
    let output = deliver(
        "email",
        "alice@example.com",
        &settings(port, "starttls", &extra),
    )?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    assert!(stderr(&output).contains("STARTTLS"), "{}", stderr(&output));
    let t = transcript(handle)?;
    assert!(!t
        .commands
        .iter()
        .any(|c| c.starts_with("AUTH") || c.starts_with("MAIL")));
    Ok(())
}

#[test]
fn an_untrusted_certificate_is_refused() -> TestResult {
    let server_cert = TestCert::new()?;
    let other = TestCert::new()?;
    let mut options = Options::new(Tls::Starttls);
    options.auth = Some(("mailer", PASSWORD));
    let (port, handle) = start(options, Arc::clone(&server_cert.server))?;
    let extra = format!(
        "ca_file = \"{}\"\nusername = \"mailer\"\npassword = \"{PASSWORD}\"\n",
        other.ca_file()
    );
    let output = deliver(
        "email",
        "alice@example.com",
        &settings(port, "starttls", &extra),
    )?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    assert!(
        stderr(&output).contains("certificate"),
        "{}",
        stderr(&output)
    );
    let t = transcript(handle)?;
    assert_eq!(t.authenticated, None);
    assert!(!t.commands.iter().any(|c| c.starts_with("AUTH")));
    Ok(())
}

#[test]
fn a_wrong_password_fails_without_the_echoed_password_in_the_log_line() -> TestResult {
    let cert = TestCert::new()?;
    let mut options = Options::new(Tls::Starttls);
    options.auth = Some(("mailer", "the-right-one"));
    let (port, handle) = start(options, Arc::clone(&cert.server))?;
    let extra = format!(
        "ca_file = \"{}\"\nusername = \"mailer\"\npassword = \"{PASSWORD}\"\n",
        cert.ca_file()
    );
    let output = deliver(
        "email",
        "alice@example.com",
        &settings(port, "starttls", &extra),
    )?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    let err = stderr(&output);
    assert!(err.contains("AUTH PLAIN") && err.contains("535"), "{err}");
    let t = transcript(handle)?;
    assert!(!t.commands.iter().any(|c| c.starts_with("MAIL")));
    Ok(())
}

#[test]
fn a_refused_recipient_means_not_sent() -> TestResult {
    let cert = TestCert::new()?;
    let mut options = Options::new(Tls::Plain);
    options.reject_rcpt = true;
    let (port, handle) = start(options, Arc::clone(&cert.server))?;
    let output = deliver("email", "nobody@example.com", &settings(port, "none", ""))?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    assert!(stderr(&output).contains("550"), "{}", stderr(&output));
    let t = transcript(handle)?;
    assert_eq!(t.data, None);
    Ok(())
}

#[test]
fn a_silent_server_is_given_up_at_the_deadline() -> TestResult {
    let cert = TestCert::new()?;
    let mut options = Options::new(Tls::Plain);
    options.silent = true;
    let (port, _handle) = start(options, Arc::clone(&cert.server))?;
    let started = Instant::now();
    let text = settings(port, "none", "").replace("timeout_seconds = 5", "timeout_seconds = 1");
    let output = deliver("email", "alice@example.com", &text)?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    assert!(stderr(&output).contains("timed out"), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(4));
    Ok(())
}

#[test]
fn plaintext_to_a_remote_relay_and_bad_destinations_are_settings_errors() -> TestResult {
    let remote = "smtp_host = \"mail.example.com\"\ntls = \"none\"\nfrom = \"t@example.com\"\n";
    let output = deliver("email", "alice@example.com", remote)?;
    assert_eq!(output.status.code(), Some(2));
    assert_one_clean_line(&output);
    let local =
        "smtp_host = \"127.0.0.1\"\nsmtp_port = 9\ntls = \"none\"\nfrom = \"t@example.com\"\n";
    for bad in [
        "alice",
        "alice@example.com bob@example.com",
        "<alice@example.com>",
    ] {
        let output = deliver("email", bad, local)?;
        assert_eq!(output.status.code(), Some(2), "{bad}: {}", stderr(&output));
        assert_one_clean_line(&output);
    }
    Ok(())
}

#[test]
fn a_reply_injected_in_clear_text_behind_the_starttls_220_is_refused() -> TestResult {
    let cert = TestCert::new()?;
    let mut options = Options::new(Tls::Starttls);
    options.auth = Some(("mailer", PASSWORD));
    options.inject_after_starttls = true;
    let (port, handle) = start(options, Arc::clone(&cert.server))?;
    let extra = format!(
        "ca_file = \"{}\"\nusername = \"mailer\"\npassword = \"{PASSWORD}\"\n",
        cert.ca_file()
    );
    let output = deliver(
        "email",
        "alice@example.com",
        &settings(port, "starttls", &extra),
    )?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    let err = stderr(&output);
    assert!(err.contains("after its STARTTLS reply"), "{err}");
    // Nothing more was said: no EHLO over TLS answered by the forged line, no AUTH, no mail.
    let t = transcript(handle)?;
    assert_eq!(t.commands, ["EHLO client.example.com", "STARTTLS"]);
    assert_eq!(t.authenticated, None);
    Ok(())
}

#[test]
fn a_reply_line_without_end_is_refused_long_before_the_deadline() -> TestResult {
    let cert = TestCert::new()?;
    let mut options = Options::new(Tls::Plain);
    options.endless_greeting = true;
    let (port, handle) = start(options, Arc::clone(&cert.server))?;
    let started = Instant::now();
    let output = deliver("email", "alice@example.com", &settings(port, "none", ""))?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    let err = stderr(&output);
    assert!(err.contains("too long"), "{err}");
    // Refused at the line limit, not read on until the 5 s deadline (or to the server's end).
    assert!(started.elapsed() < Duration::from_secs(3));
    transcript(handle)?;
    Ok(())
}
