//! The email method: settings, the message (built by lettre), and the SMTP dialogue that sends
//! it (ours: smtp.rs says why).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::{header, Mailbox, SinglePart};
use lettre::Message;
use rustls::pki_types::CertificateDer;
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
    roots: Option<Arc<Vec<CertificateDer<'static>>>>,
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
        Some(roots) => Some(tls::client_config(roots)?),
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
    session.data(&message.formatted())?;
    session.quit();
    Ok(())
}

/// The message: plain text, UTF-8, lettre choosing 7bit, quoted-printable or base64 for the body
/// and RFC 2047 words for a non-ASCII subject; CRLF line ends. Every value was checked before
/// (addresses by `address`, subject and body by `template`): lettre's own parsing is a second
/// check, so a failure here is a settings error.
pub(crate) fn compose(
    from: &str,
    recipients: &[String],
    subject: &str,
    body: &str,
    host: &str,
    now: SystemTime,
) -> Result<Message, Failure> {
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|err| Failure::settings(format!("`{}`: {err}", text.escape_default())))
    };
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut builder = Message::builder()
        .from(mailbox(from)?)
        .subject(subject)
        .date(now)
        .message_id(Some(format!(
            "<twofa.{}.{}.{}@{host}>",
            since_epoch.as_secs(),
            since_epoch.subsec_nanos(),
            std::process::id()
        )))
        // RFC 3834: vacation responders and list software leave it alone.
        .raw_header(header::HeaderValue::new(
            header::HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
    for recipient in recipients {
        builder = builder.to(mailbox(recipient)?);
    }
    builder
        .singlepart(SinglePart::plain(body.to_string()))
        .map_err(|err| Failure::settings(format!("cannot build the message: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings;

    fn text(message: &Message) -> String {
        String::from_utf8_lossy(&message.formatted()).into_owned()
    }

    #[test]
    fn the_message_has_the_headers_a_relay_expects_and_crlf_line_ends() -> Result<(), Failure> {
        let message = compose(
            "twofa@example.com",
            &["a@example.com".into(), "b@example.com".into()],
            "Code",
            "Code: 123456\n.\n..x\n",
            "host.example.com",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )?;
        let msg = text(&message);
        assert!(
            msg.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"),
            "{msg}"
        );
        assert!(msg.contains("From: twofa@example.com\r\n"), "{msg}");
        assert!(
            msg.contains("To: a@example.com, b@example.com\r\n"),
            "{msg}"
        );
        assert!(msg.contains("Subject: Code\r\n"), "{msg}");
        assert!(msg.contains("Message-ID: <twofa.1700000000.0."), "{msg}");
        assert!(msg.contains("@host.example.com>\r\n"), "{msg}");
        assert!(msg.contains("MIME-Version: 1.0\r\n"), "{msg}");
        assert!(msg.contains("Auto-Submitted: auto-generated\r\n"), "{msg}");
        assert!(msg.contains("Content-Transfer-Encoding: 7bit\r\n"), "{msg}");
        // Dot-stuffing happens on the wire (smtp.rs), not in the message.
        assert!(
            msg.contains("\r\n\r\nCode: 123456\r\n.\r\n..x\r\n"),
            "{msg}"
        );
        assert!(!msg.replace("\r\n", "").contains('\n'));
        let to: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(to, ["a@example.com", "b@example.com"]);
        Ok(())
    }

    #[test]
    fn non_ascii_is_encoded_and_lines_stay_short() -> Result<(), Failure> {
        let body = format!(
            "Votre code : 123456 — valable 5 minutes\n{}\n",
            "x".repeat(1200)
        );
        let msg = text(&compose(
            "twofa@example.com",
            &["a@example.com".into()],
            "Code de connexion à usage unique pour éviter les problèmes",
            &body,
            "h",
            UNIX_EPOCH,
        )?);
        assert!(
            msg.contains("Subject: Code de connexion =?utf-8?b?w6A=?= usage"),
            "{msg}"
        );
        assert!(msg.contains("Content-Transfer-Encoding: "), "{msg}");
        assert!(!msg.contains("Content-Transfer-Encoding: 7bit"), "{msg}");
        assert!(msg.is_ascii());
        assert!(msg.split("\r\n").all(|l| l.len() <= 998));
        Ok(())
    }

    #[test]
    fn an_address_lettre_cannot_parse_is_a_settings_error() {
        let err = compose("not an address", &[], "s", "b", "h", UNIX_EPOCH).err();
        assert_eq!(err.map(|e| e.exit_code()), Some(2));
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
