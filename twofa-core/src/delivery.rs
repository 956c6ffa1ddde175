//! Out-of-band codes: the policy of each method (`[delivery.email]`, `[delivery.pushover]`,
//! `[delivery.script]`), and sending a code through the delivery program with the runner.
//!
//! The module never talks to a mail server or an HTTPS API itself (sshd and sudo load it): it
//! runs `twofa-deliver METHOD` as an unprivileged user with a deadline, the code in the
//! environment (never argv), and the method's settings and credentials on stdin. The
//! credentials come from a root-only secrets file the delivery program can't read itself.
//!
//! No regular expressions here: `[delivery.script] destination_pattern` is carried as text,
//! checked by `twofa-enroll` where a destination is set and when it loads the policy, and by
//! `twofa-deliver` before every send. A regex engine in the module was 91 KB of
//! `pam_twofa.so` (issue 8: under 1 MiB), for a check the delivery program can do.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::enrollment::{quote, DeliveryFactor, Method};
use crate::runner::{self, RunAs};
use crate::securefile::{self, Rules};
use crate::tomlfile::{Doc, FieldError, Fields};

/// Where the delivery program is installed.
pub const DEFAULT_PROGRAM: &str = "/usr/lib/twofa/twofa-deliver";
/// The system user delivery programs run as.
pub const DEFAULT_RUN_AS: &str = "twofa";
/// Where credentials live (root, 0600).
pub const DEFAULT_SECRETS: &str = "/etc/twofa/secrets.toml";

/// A setting passed to the delivery program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Text(String),
    /// A whole number.
    Number(i64),
}

/// The policy of one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodPolicy {
    /// Which method.
    pub method: Method,
    /// The program to run (`twofa-deliver`, or a replacement with the same contract).
    pub program: PathBuf,
    /// The user it runs as.
    pub run_as: String,
    /// Seconds before the program is killed and the send counted as failed.
    pub timeout_seconds: u64,
    /// Seconds a sent code stays valid.
    pub code_ttl_seconds: u64,
    /// Settings for the program's stdin (smtp_host, from, api_url, ...), in file order.
    pub settings: Vec<(String, Value)>,
    /// Script destinations must match this regular expression, if set.
    pub destination_pattern: Option<DestinationPattern>,
}

/// `[delivery.script] destination_pattern`: a regular expression every script destination must
/// match (an unanchored search, as `regex_lite::Regex::is_match`; admins write `^...$`).
///
/// Kept as text and never compiled by this crate (see the module documentation): whoever links
/// a regex engine checks it with [`crate::config::check_patterns`], and the policy keeps the
/// pattern's line so that error names it as the loader's own errors do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPattern {
    text: String,
    line: Option<usize>,
}

impl DestinationPattern {
    /// A pattern that stood on `line` (1-based) of the policy, if known.
    pub fn new(text: impl Into<String>, line: Option<usize>) -> Self {
        DestinationPattern {
            text: text.into(),
            line,
        }
    }

    /// The regular expression, as the admin wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The line of the policy file it is on, if it came from one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

/// `[delivery]`: the methods and what they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// The configured methods.
    pub methods: Vec<MethodPolicy>,
    /// Most sends per user within `send_window_seconds` (0: no limit).
    pub max_sends: u32,
    /// The window of the send limit.
    pub send_window_seconds: u64,
    /// Digits of a sent code.
    pub code_digits: u32,
    /// The credentials file.
    pub secrets: PathBuf,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            methods: Vec::new(),
            max_sends: 5,
            send_window_seconds: 900,
            code_digits: 6,
            secrets: PathBuf::from(DEFAULT_SECRETS),
        }
    }
}

impl DeliveryPolicy {
    /// The policy of `method`, if it is configured.
    pub fn method(&self, method: Method) -> Option<&MethodPolicy> {
        self.methods.iter().find(|m| m.method == method)
    }
}

/// (key, required, is a number) per method: every other key of a `[delivery.X]` table is an
/// error, so a typo can't silently drop a setting.
fn method_keys(method: Method) -> &'static [(&'static str, bool, bool)] {
    match method {
        Method::Email => &[
            ("smtp_host", true, false),
            ("smtp_port", false, true),
            ("tls", false, false),
            ("ca_file", false, false),
            ("username", false, false),
            ("from", true, false),
            ("subject", false, false),
            ("body", false, false),
            ("helo", false, false),
        ],
        Method::Pushover => &[
            ("api_url", false, false),
            ("ca_file", false, false),
            ("title", false, false),
            ("message", false, false),
        ],
        Method::Script => &[("command", true, false)],
    }
}

/// Keys of `[delivery]` itself.
const SHARED_KEYS: &[&str] = &["max_sends", "send_window_seconds", "code_digits", "secrets"];
/// Keys every method table has.
const COMMON_METHOD_KEYS: &[&str] = &["program", "run_as", "timeout_seconds", "code_ttl_seconds"];

/// Every key of `[delivery]` and its method tables, dotted (`delivery.email.smtp_host`): what
/// the man page must document (checked by `cargo test`, from the same tables the reader uses).
pub fn keys() -> Vec<String> {
    let mut out: Vec<String> = SHARED_KEYS
        .iter()
        .map(|k| format!("delivery.{k}"))
        .collect();
    for method in [Method::Email, Method::Pushover, Method::Script] {
        let m = method.name();
        out.extend(
            COMMON_METHOD_KEYS
                .iter()
                .map(|k| format!("delivery.{m}.{k}")),
        );
        out.extend(
            method_keys(method)
                .iter()
                .map(|(k, _, _)| format!("delivery.{m}.{k}")),
        );
        if method == Method::Script {
            out.push(format!("delivery.{m}.destination_pattern"));
        }
    }
    out
}

/// Reads `[delivery]` and its method tables.
pub fn read(fields: &mut Fields<'_>) -> Result<DeliveryPolicy, FieldError> {
    let mut out = DeliveryPolicy::default();
    if let Some(n) = fields.unsigned("max_sends", 0, 1000)? {
        out.max_sends = u32::try_from(n).unwrap_or(5);
    }
    if let Some(w) = fields.unsigned("send_window_seconds", 1, 7 * 86_400)? {
        out.send_window_seconds = w;
    }
    if let Some(d) = fields.unsigned("code_digits", 6, 10)? {
        out.code_digits = u32::try_from(d).unwrap_or(6);
    }
    if let Some(p) = fields.string("secrets")? {
        if !p.starts_with('/') {
            return Err(fields.error("secrets", "must be an absolute path"));
        }
        out.secrets = PathBuf::from(p);
    }
    for method in [Method::Email, Method::Pushover, Method::Script] {
        let Some(mut t) = fields.table(method.name())? else {
            continue;
        };
        let mut m = MethodPolicy {
            method,
            program: PathBuf::from(DEFAULT_PROGRAM),
            run_as: DEFAULT_RUN_AS.to_string(),
            timeout_seconds: 10,
            code_ttl_seconds: 300,
            settings: Vec::new(),
            destination_pattern: None,
        };
        if let Some(p) = t.string("program")? {
            if !p.starts_with('/') {
                return Err(t.error("program", "must be an absolute path"));
            }
            m.program = PathBuf::from(p);
        }
        if let Some(u) = t.string("run_as")? {
            if u.is_empty() || u == "root" {
                return Err(t.error("run_as", "must name an unprivileged system user, not root"));
            }
            m.run_as = u.to_string();
        }
        if let Some(s) = t.unsigned("timeout_seconds", 1, 120)? {
            m.timeout_seconds = s;
        }
        if let Some(s) = t.unsigned("code_ttl_seconds", 30, 3600)? {
            m.code_ttl_seconds = s;
        }
        if method == Method::Script {
            if let Some(p) = t.string("destination_pattern")? {
                // Compiled by twofa-enroll (config::check_patterns) and twofa-deliver, not here.
                m.destination_pattern =
                    Some(DestinationPattern::new(p, t.line("destination_pattern")));
            }
        }
        for &(key, required, number) in method_keys(method) {
            let value = if number {
                t.integer(key)?.map(Value::Number)
            } else {
                t.string(key)?.map(|s| Value::Text(s.to_string()))
            };
            match value {
                Some(Value::Text(s)) if s.contains('\0') => {
                    return Err(t.error(key, "must not contain NUL"))
                }
                Some(v) => m.settings.push((key.to_string(), v)),
                None if required => {
                    return Err(t.error(
                        key,
                        format!("missing: [delivery.{}] needs it", method.name()),
                    ))
                }
                None => {}
            }
        }
        if let Some((_, Value::Text(c))) = m.settings.iter().find(|(k, _)| k == "command") {
            if !c.starts_with('/') {
                return Err(t.error("command", "must be an absolute path"));
            }
        }
        t.finish()?;
        out.methods.push(m);
    }
    Ok(out)
}

/// Why a code could not be sent. Never holds the code or a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The method is not configured in the policy.
    NotConfigured(Method),
    /// The secrets file could not be read.
    Secrets(String),
    /// The program failed, timed out, or could not be started.
    Program(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConfigured(m) => write!(f, "no [delivery.{}] in the policy", m.name()),
            SendError::Secrets(e) => write!(f, "secrets: {e}"),
            SendError::Program(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Sends codes (the login flow's view; tests use a stand-in).
pub trait Deliverer {
    /// Sends `code` to the factor's destinations for `account`, valid `ttl` seconds.
    fn send(
        &self,
        account: &str,
        factor: &DeliveryFactor,
        code: &str,
        ttl: u64,
    ) -> Result<(), SendError>;
}

/// The real thing: the policy's programs, run through [`runner`].
#[derive(Debug)]
pub struct Programs<'a> {
    /// The delivery policy.
    pub policy: &'a DeliveryPolicy,
}

/// The `[METHOD]` table of the secrets file (`password` for email, `token` for pushover).
fn secrets_for(path: &Path, method: Method) -> Result<Vec<(String, Zeroizing<String>)>, SendError> {
    let rules = Rules::SECRET;
    let text = match securefile::read_file(path, &rules) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => return Err(SendError::Secrets(e.to_string())),
    };
    let doc =
        Doc::parse(&text).map_err(|e| SendError::Secrets(format!("{}:{e}", path.display())))?;
    let mut root = doc.root();
    let mut out = Vec::new();
    for m in [Method::Email, Method::Pushover, Method::Script] {
        let Some(mut t) = root
            .table(m.name())
            .map_err(|e| SendError::Secrets(format!("{}:{e}", path.display())))?
        else {
            continue;
        };
        let keys: &[&str] = match m {
            Method::Email => &["password"],
            Method::Pushover => &["token"],
            Method::Script => &[],
        };
        for key in keys {
            if let Some(v) = t
                .string(key)
                .map_err(|e| SendError::Secrets(format!("{}:{e}", path.display())))?
            {
                if m == method {
                    out.push((key.to_string(), Zeroizing::new(v.to_string())));
                }
            }
        }
        t.finish()
            .map_err(|e| SendError::Secrets(format!("{}:{e}", path.display())))?;
    }
    root.finish()
        .map_err(|e| SendError::Secrets(format!("{}:{e}", path.display())))?;
    Ok(out)
}

/// The TOML document on the program's stdin: the method's settings and credentials.
fn stdin_doc(m: &MethodPolicy, secrets: &[(String, Zeroizing<String>)]) -> Zeroizing<String> {
    let mut doc = Zeroizing::new(String::new());
    // The program gives up a second before the runner would kill it, so its own reason for
    // failing reaches the log (a killed program says nothing). Scripts time themselves.
    if m.method != Method::Script {
        doc.push_str(&format!(
            "timeout_seconds = {}\n",
            m.timeout_seconds.saturating_sub(1).max(1)
        ));
    }
    for (key, value) in &m.settings {
        let key = if key == "command" {
            "program"
        } else {
            key.as_str()
        };
        match value {
            Value::Text(s) => doc.push_str(&format!("{key} = {}\n", quote(s))),
            Value::Number(n) => doc.push_str(&format!("{key} = {n}\n")),
        }
    }
    // twofa-deliver refuses a destination outside the pattern before it runs the script.
    if let Some(p) = &m.destination_pattern {
        doc.push_str(&format!("destination_pattern = {}\n", quote(p.as_str())));
    }
    for (key, value) in secrets {
        doc.push_str(&format!("{key} = {}\n", quote(value)));
    }
    doc
}

impl Deliverer for Programs<'_> {
    fn send(
        &self,
        account: &str,
        factor: &DeliveryFactor,
        code: &str,
        ttl: u64,
    ) -> Result<(), SendError> {
        let m = self
            .policy
            .method(factor.method)
            .ok_or(SendError::NotConfigured(factor.method))?;
        let secrets = secrets_for(&self.policy.secrets, factor.method)?;
        let input = stdin_doc(m, &secrets);
        let to = factor.to.join(",");
        let ttl_text = ttl.to_string();
        let env = [
            ("TWOFA_USER", account),
            ("TWOFA_SENDTO", to.as_str()),
            ("TWOFA_CODE", code),
            ("TWOFA_TTL", ttl_text.as_str()),
            ("TWOFA_METHOD", factor.method.name()),
        ];
        let run_as = RunAs::user(&m.run_as).map_err(SendError::Program)?;
        let out = runner::run(
            &m.program,
            &[factor.method.name()],
            &env,
            input.as_bytes(),
            Some(run_as),
            Duration::from_secs(m.timeout_seconds),
        )
        .map_err(|e| SendError::Program(e.to_string()))?;
        if out.success {
            Ok(())
        } else {
            let why = out.stderr.lines().last().unwrap_or("").trim().to_string();
            Err(SendError::Program(match out.status {
                Some(code) => format!("{} exited {code}: {why}", m.program.display()),
                None => format!("{} was killed: {why}", m.program.display()),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn parse(text: &str) -> Result<config::Config, String> {
        config::parse(text, Path::new("/etc/twofa/twofa.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn method_tables_are_read_and_checked() -> Result<(), String> {
        let c = parse(
            "version = 1\n[delivery]\nmax_sends = 3\n[delivery.email]\nsmtp_host = \"mail.example.com\"\nsmtp_port = 465\ntls = \"implicit\"\nfrom = \"twofa@example.com\"\ncode_ttl_seconds = 180\n\
             [delivery.script]\ncommand = \"/usr/local/lib/twofa/sms\"\ndestination_pattern = \"^\\\\+[0-9]{8,15}$\"\n",
        )?;
        assert_eq!(c.delivery.max_sends, 3);
        let email = c.delivery.method(Method::Email).ok_or("no email")?;
        assert_eq!(email.code_ttl_seconds, 180);
        assert!(email
            .settings
            .contains(&("smtp_port".into(), Value::Number(465))));
        let doc = stdin_doc(
            email,
            &[("password".into(), Zeroizing::new("s3cret\"".into()))],
        );
        let parsed = Doc::parse(&doc).map_err(|e| e.to_string())?;
        let mut root = parsed.root();
        assert_eq!(
            root.string("password").map_err(|e| e.to_string())?,
            Some("s3cret\"")
        );
        assert_eq!(
            root.string("smtp_host").map_err(|e| e.to_string())?,
            Some("mail.example.com")
        );
        assert!(c.delivery.method(Method::Pushover).is_none());
        Ok(())
    }

    #[test]
    fn bad_method_tables_name_key_and_line() {
        let cases = [
            ("version = 1\n[delivery.email]\nfrom = \"a@b.c\"\n", "key `delivery.email.smtp_host`: missing"),
            ("version = 1\n[delivery.email]\nsmtp_host = \"h\"\nfrom = \"a@b.c\"\nsmpt_port = 25\n", "5: key `delivery.email.smpt_port`: unknown key"),
            ("version = 1\n[delivery.script]\ncommand = \"sms\"\n", "3: key `delivery.script.command`: must be an absolute path"),
            ("version = 1\n[delivery.pushover]\nrun_as = \"root\"\n", "3: key `delivery.pushover.run_as`: must name an unprivileged system user"),
            ("version = 1\n[delivery.fax]\n", "key `delivery.fax`: unknown key"),
        ];
        for (text, want) in cases {
            let got = parse(text).err().unwrap_or_default();
            assert!(got.contains(want), "{text}: {got}");
        }
    }

    #[test]
    fn the_pattern_reaches_the_delivery_program_on_stdin_unchanged() -> Result<(), String> {
        // Backslashes and quotes survive the TOML round trip: twofa-deliver checks the very
        // pattern the admin wrote.
        let pattern = r#"^\+[0-9]{8,15}$|^"x"$"#;
        let c = parse(&format!(
            "version = 1\n[delivery.script]\ncommand = \"/usr/local/lib/twofa/sms\"\ndestination_pattern = {}\n",
            quote(pattern)
        ))?;
        let script = c.delivery.method(Method::Script).ok_or("no script")?;
        assert_eq!(
            script
                .destination_pattern
                .as_ref()
                .map(DestinationPattern::as_str),
            Some(pattern)
        );
        let doc = stdin_doc(script, &[]);
        let parsed = Doc::parse(&doc).map_err(|e| e.to_string())?;
        let mut root = parsed.root();
        assert_eq!(
            root.string("destination_pattern")
                .map_err(|e| e.to_string())?,
            Some(pattern)
        );
        assert_eq!(
            root.string("program").map_err(|e| e.to_string())?,
            Some("/usr/local/lib/twofa/sms")
        );
        root.finish().map_err(|e| e.to_string())?;
        // Without a pattern, the key is absent (twofa-deliver then checks nothing).
        let c = parse("version = 1\n[delivery.script]\ncommand = \"/x\"\n")?;
        let script = c.delivery.method(Method::Script).ok_or("no script")?;
        assert!(!stdin_doc(script, &[]).contains("destination_pattern"));
        Ok(())
    }

    #[test]
    fn only_script_tables_take_a_destination_pattern() {
        let text = "version = 1\n[delivery.email]\nsmtp_host = \"h\"\nfrom = \"a@b.c\"\ndestination_pattern = \"x\"\n";
        let got = parse(text).err().unwrap_or_default();
        assert!(
            got.contains("5: key `delivery.email.destination_pattern`: unknown key"),
            "{got}"
        );
    }
}
