//! The email method: settings, the message, and the SMTP dialogue that sends it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64;
use rustls::RootCertStore;
use toml_edit::DocumentMut;

use crate::address::{self, Host};
use crate::error::Failure;
use crate::net::{self, Deadline};
use crate::request::Invocation;
use crate::settings::Settings;
use crate::smtp::Session;
use crate::template::{self, Vars};
use crate::tls;

const KNOWN: &[&str] = &[
    "smtp_host",
    "smtp_port",
    "tls",
    "ca_file",
    "username",
    "password",
    "from",
    "subject",
    "body",
    "helo",
    "timeout_seconds",
];

const DEFAULT_SUBJECT: &str = "Login code for {user} on {host}";
const DEFAULT_BODY: &str = "Your login code for {user} on {host} is {code}.\n\
                            It is valid for {ttl_minutes} minutes.\n\
                            If you did not try to log in, tell your administrator.\n";

/// Longest subject and body once filled in.
const MAX_SUBJECT: usize = 200;
const MAX_BODY: usize = 10_000;
/// RFC 5322's limit on a line, CRLF excluded.
const MAX_BODY_LINE: usize = 998;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Plain connection, then STARTTLS, required: a server that does not offer it is refused.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS: loopback relays only.
    None,
}

/// Everything the email method needs besides the invocation.
#[derive(Debug)]
pub(crate) struct EmailSettings {
    host: Host,
    port: u16,
    tls: TlsMode,
    roots: Option<Arc<RootCertStore>>,
    credentials: Option<(String, String)>,
    from: String,
    subject: String,
    body: String,
    helo: String,
    timeout: Duration,
}

impl EmailSettings {
    /// Reads and checks the settings; adds the password to `secrets` before anything could
    /// mention it.
    pub(crate) fn from_document(
        document: &DocumentMut,
        secrets: &mut Vec<String>,
    ) -> Result<Self, Failure> {
        let settings = Settings::new(document, "email", KNOWN)?;
        let password = settings.string("password")?;
        if let Some(password) = &password {
            secrets.push(password.clone());
        }
        // ca_file first: a file this unprivileged program cannot read is the likeliest
        // mistake, and nothing should be sent before it is known.
        let ca_file = settings.string("ca_file")?;
        let tls = match settings.string("tls")?.as_deref() {
            None | Some("starttls") => TlsMode::StartTls,
            Some("implicit") => TlsMode::Implicit,
            Some("none") => TlsMode::None,
            Some(_) => {
                return Err(Failure::settings(
                    "email setting `tls` must be \"starttls\", \"implicit\" or \"none\"",
                ))
            }
        };
        let roots = match (tls, &ca_file) {
            (TlsMode::None, Some(_)) => {
                return Err(Failure::settings(
                    "email setting `ca_file` makes no sense with tls = \"none\"",
                ))
            }
            (TlsMode::None, None) => None,
            (_, ca_file) => Some(tls::load_roots(absolute(ca_file.as_deref())?)?),
        };
        let host_text = settings.required_string("smtp_host")?;
        let host = address::parse_host(&host_text).ok_or_else(|| {
            Failure::settings(format!(
                "email setting `smtp_host`: `{}` is not a host name or IP address",
                host_text.escape_default()
            ))
        })?;
        if tls == TlsMode::None && !host.is_loopback() {
            return Err(Failure::settings(format!(
                "email: tls = \"none\" is only allowed for a relay on 127.0.0.1, ::1 or \
                 localhost, not {host}"
            )));
        }
        let default_port = match tls {
            TlsMode::StartTls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        };
        let port = match settings.integer("smtp_port")? {
            None => default_port,
            Some(port) => u16::try_from(port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| Failure::settings("email setting `smtp_port` must be 1 to 65535"))?,
        };
        let credentials = match (settings.string("username")?, password) {
            (None, None) => None,
            (Some(user), Some(pass)) => {
                if user.is_empty() || user.chars().any(char::is_control) || pass.is_empty() {
                    return Err(Failure::settings(
                        "email settings `username` and `password` must be non-empty, one line",
                    ));
                }
                Some((user, pass))
            }
            _ => {
                return Err(Failure::settings(
                    "email settings `username` and `password` go together",
                ))
            }
        };
        if credentials.is_some() && tls == TlsMode::None && !host.is_loopback() {
            return Err(Failure::settings(
                "email: refusing to send credentials without TLS",
            ));
        }
        let from = settings.required_string("from")?;
        if !address::is_plausible_address(&from) {
            return Err(Failure::settings(format!(
                "email setting `from`: `{}` is not a plausible address",
                from.escape_default()
            )));
        }
        let helo = match settings.string("helo")? {
            Some(helo) => {
                if !address::is_domain(&helo) {
                    return Err(Failure::settings(
                        "email setting `helo` must be a host name",
                    ));
                }
                helo
            }
            None => net::hostname(),
        };
        Ok(EmailSettings {
            host,
            port,
            tls,
            roots,
            credentials,
            from,
            subject: settings
                .string("subject")?
                .unwrap_or_else(|| DEFAULT_SUBJECT.to_string()),
            body: settings
                .string("body")?
                .unwrap_or_else(|| DEFAULT_BODY.to_string()),
            helo,
            timeout: settings.timeout()?,
        })
    }
}

/// `ca_file` must be absolute: this program's working directory is not the admin's.
pub(crate) fn absolute(path: Option<&str>) -> Result<Option<&Path>, Failure> {
    match path.map(Path::new) {
        Some(path) if !path.is_absolute() => Err(Failure::settings(
            "setting `ca_file` must be an absolute path",
        )),
        other => Ok(other),
    }
}

/// Sends the code to every address of `TWOFA_SENDTO`.
pub(crate) fn send(settings: &EmailSettings, invocation: &Invocation) -> Result<(), Failure> {
    let recipients = address::parse_recipients(&invocation.sendto)?;
    let host = net::hostname();
    let vars = Vars::new(invocation, &host);
    let subject = template::render_line(&settings.subject, &vars, "subject", MAX_SUBJECT)?;
    let body = template::render_text(&settings.body, &vars, "body", MAX_BODY)?;
    let message = compose(
        &settings.from,
        &recipients,
        &subject,
        &body,
        &host,
        SystemTime::now(),
    )?;

    let deadline = Deadline::after(settings.timeout);
    let sock = net::connect(
        &settings.host,
        settings.port,
        deadline,
        settings.tls == TlsMode::None,
    )?;
    let config = match &settings.roots {
        Some(roots) => Some(tls::client_config(Arc::clone(roots))?),
        None => None,
    };
    let mut session = match (settings.tls, &config) {
        (TlsMode::Implicit, Some(config)) => Session::tls(
            tls::handshake(config, &settings.host, sock)?,
            settings.host.clone(),
        ),
        _ => Session::plain(sock, settings.host.clone()),
    };
    session.greeting()?;
    let mut ext = session.ehlo(&settings.helo)?;
    if let (TlsMode::StartTls, Some(config)) = (settings.tls, &config) {
        if !ext.starttls {
            return Err(Failure::delivery(format!(
                "SMTP server {} does not offer STARTTLS (set tls = \"implicit\" for port 465)",
                settings.host
            )));
        }
        session.starttls(config)?;
        ext = session.ehlo(&settings.helo)?;
    }
    if let Some((username, password)) = &settings.credentials {
        if !session.is_tls() && !settings.host.is_loopback() {
            return Err(Failure::settings(
                "email: refusing to send credentials without TLS",
            ));
        }
        session.authenticate(&ext, username, password)?;
    }
    session.expect(
        &format!("MAIL FROM:<{}>", settings.from),
        "the sender",
        &[250],
    )?;
    for recipient in &recipients {
        session.expect(
            &format!("RCPT TO:<{recipient}>"),
            &format!("recipient {recipient}"),
            &[250, 251],
        )?;
    }
    session.data(&message)?;
    session.quit();
    Ok(())
}

/// The message as sent after DATA: headers, a blank line, the body; CRLF line ends; body lines
/// starting with a dot doubled (RFC 5321 4.5.2). ASCII bodies go as 7bit, others as base64.
pub(crate) fn compose(
    from: &str,
    recipients: &[String],
    subject: &str,
    body: &str,
    host: &str,
    now: SystemTime,
) -> Result<String, Failure> {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!(
        "Date: {}\r\n",
        rfc5322_date(since_epoch.as_secs())
    ));
    out.push_str(&format!("From: {from}\r\n"));
    out.push_str(&format!("To: {}\r\n", recipients.join(", ")));
    out.push_str(&format!("Subject: {}\r\n", encode_header(subject)));
    out.push_str(&format!(
        "Message-ID: <twofa.{}.{}.{}@{host}>\r\n",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
        std::process::id()
    ));
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    // RFC 3834: vacation responders and list software leave it alone.
    out.push_str("Auto-Submitted: auto-generated\r\n");
    if body.is_ascii() {
        out.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
        for line in body.trim_end_matches('\n').split('\n') {
            if line.len() > MAX_BODY_LINE {
                return Err(Failure::settings(format!(
                    "`body` has a line longer than {MAX_BODY_LINE} characters"
                )));
            }
            if line.starts_with('.') {
                out.push('.');
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
    } else {
        out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        let encoded = BASE64.encode(body.replace('\n', "\r\n").as_bytes());
        for chunk in encoded.as_bytes().chunks(76) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push_str("\r\n");
        }
    }
    Ok(out)
}

/// A header value: as is when printable ASCII, else RFC 2047 encoded words of at most 45 bytes
/// of UTF-8 each, on folded lines.
fn encode_header(value: &str) -> String {
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return value.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| format!("=?UTF-8?B?{}?=", BASE64.encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// `Thu, 01 Jan 1970 00:00:00 +0000` for a Unix time (UTC: no time zone database needed).
fn rfc5322_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31): Howard Hinnant's algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
    }

    #[test]
    fn bodies_are_dot_stuffed_with_crlf_line_ends() -> Result<(), Failure> {
        let msg = compose(
            "twofa@example.com",
            &["a@example.com".into(), "b@example.com".into()],
            "Code",
            "Code: 123456\n.\n..x\n",
            "host.example.com",
            UNIX_EPOCH,
        )?;
        assert!(msg.contains("To: a@example.com, b@example.com\r\n"));
        assert!(msg.contains("\r\n\r\nCode: 123456\r\n..\r\n...x\r\n"));
        assert!(msg.ends_with("...x\r\n"));
        assert!(!msg.replace("\r\n", "").contains('\n'));
        Ok(())
    }

    #[test]
    fn non_ascii_goes_base64_and_encoded_words() -> Result<(), Failure> {
        let msg = compose(
            "twofa@example.com",
            &["a@example.com".into()],
            "Code de connexion à usage unique pour éviter les problèmes",
            "Votre code : 123456 — valable 5 minutes\n",
            "h",
            UNIX_EPOCH,
        )?;
        assert!(msg.contains("Subject: =?UTF-8?B?"));
        assert!(msg.contains("?=\r\n =?UTF-8?B?"));
        assert!(msg.contains("Content-Transfer-Encoding: base64"));
        assert!(msg.lines().all(|l| l.len() <= 998));
        Ok(())
    }

    #[test]
    fn overlong_body_lines_are_refused() {
        let body = "x".repeat(MAX_BODY_LINE + 1);
        assert!(compose("f@example.com", &[], "s", &body, "h", UNIX_EPOCH).is_err());
    }

    fn settings_from(text: &str) -> Result<EmailSettings, Failure> {
        let doc = settings::parse(text)?;
        EmailSettings::from_document(&doc, &mut Vec::new())
    }

    #[test]
    fn plaintext_is_refused_for_a_remote_relay() {
        let err = settings_from(
            "smtp_host = \"mail.example.com\"\ntls = \"none\"\nfrom = \"t@example.com\"\n",
        );
        assert!(err.is_err());
        let ok =
            settings_from("smtp_host = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"t@example.com\"\n");
        assert_eq!(ok.map(|s| s.port).ok(), Some(25));
    }

    #[test]
    fn a_password_without_user_and_a_relative_ca_file_are_refused() {
        let base = "smtp_host = \"127.0.0.1\"\nfrom = \"t@example.com\"\n";
        assert!(settings_from(&format!("{base}password = \"x\"\ntls = \"none\"\n")).is_err());
        assert!(settings_from(&format!("{base}ca_file = \"ca.pem\"\n")).is_err());
        assert!(settings_from(&format!("{base}tls = \"ssl\"\n")).is_err());
        assert!(settings_from(&format!("{base}smtp_port = 70000\ntls = \"none\"\n")).is_err());
    }

    #[test]
    fn the_password_is_a_secret_as_soon_as_it_is_read() -> Result<(), Failure> {
        let doc = settings::parse(
            "smtp_host = \"bad host\"\npassword = \"hunter2\"\nusername = \"u\"\n",
        )?;
        let mut secrets = Vec::new();
        let err = EmailSettings::from_document(&doc, &mut secrets).err();
        assert!(err.is_some());
        assert_eq!(secrets, vec!["hunter2".to_string()]);
        Ok(())
    }
}
