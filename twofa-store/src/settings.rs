//! The helper's settings, `/etc/twofa/store.toml`: where the fleet's PostgreSQL is, how to
//! reach it safely, and where this host's fleet key lives.
//!
//! Root-only (0600, root-owned, opened with `O_NOFOLLOW` through `securefile`): it may hold the
//! database password. Read key by key with `tomlfile`, so every error names the file, the line
//! and the key, and an unknown key is an error, never ignored (an admin who misspelt `ca_file`
//! must not believe the CA is pinned).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::config::Host;
use twofa_core::securefile::{self, FileError, Rules};
use twofa_core::tomlfile::{Doc, FieldError, Fields};

/// Where the settings live unless `--settings` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/twofa/store.toml";
/// Where the fleet key lives unless `key_file` says otherwise.
pub const DEFAULT_KEY_FILE: &str = "/etc/twofa/fleet.key";
/// The only settings format version.
pub const VERSION: i64 = 1;
/// `connect_timeout_ms` unless set: long enough for a TLS handshake across a data centre,
/// short enough that a login does not hang on a dead primary before trying the next host.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2000;
/// Bounds of `connect_timeout_ms`.
const CONNECT_TIMEOUT_RANGE: (u64, u64) = (100, 60_000);

/// How the connection to PostgreSQL is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// TLS required, and the server's certificate must chain to the one CA of `ca_file` and
    /// name the host connected to.
    VerifyFull {
        /// PEM file of the CA (or CAs) trusted; nothing else is, not the system bundle.
        ca_file: PathBuf,
    },
    /// No TLS (a local socket, or a network the admin trusts).
    Off,
}

/// Everything the helper needs to reach the store.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file they came from, for messages.
    pub source: PathBuf,
    /// Hosts, port, database, user and password. The password is only in here, whose `Debug`
    /// prints `_` for it.
    pub connection: postgres::Config,
    /// `tls` and `ca_file`.
    pub tls: Tls,
    /// `connect_timeout_ms`: for each host tried.
    pub connect_timeout: Duration,
    /// `key_file`: the fleet key that seals enrollments.
    pub key_file: PathBuf,
}

impl Settings {
    /// The hosts and ports tried, for messages: `10.0.0.5:5432, 10.0.0.6:5432`.
    pub fn endpoints(&self) -> String {
        let c = &self.connection;
        let ports = c.get_ports();
        let port = |i: usize| {
            ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432)
        };
        let mut names: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if names.is_empty() {
            names = c.get_hostaddrs().iter().map(|a| a.to_string()).collect();
        }
        names
            .iter()
            .enumerate()
            .map(|(i, n)| host_port(n, port(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('/') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why the settings could not be used.
#[derive(Debug)]
pub enum SettingsError {
    /// The file does not exist.
    Missing(PathBuf),
    /// The file could not be opened safely (owner, mode, symlink, size...).
    File(FileError),
    /// A syntax error or a bad key or value.
    Field(PathBuf, FieldError),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Missing(p) => write!(
                f,
                "{}: no such file ([store] kind = \"postgres\" needs it; see docs/fleet.md)",
                p.display()
            ),
            SettingsError::File(e) => write!(f, "{e}"),
            SettingsError::Field(p, e) if e.line.is_some() => write!(f, "{}:{e}", p.display()),
            SettingsError::Field(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for SettingsError {}

/// Reads the settings at `path` (root-owned, 0600 at most, not a symlink).
pub fn load(path: &Path) -> Result<Settings, SettingsError> {
    match securefile::read_file(path, &Rules::SECRET) {
        Ok(Some(text)) => parse(&text, path),
        Ok(None) => Err(SettingsError::Missing(path.to_path_buf())),
        Err(e) => Err(SettingsError::File(e)),
    }
}

/// Parses and validates settings text; `path` is only used in messages and `source`.
pub fn parse(text: &str, path: &Path) -> Result<Settings, SettingsError> {
    let field = |e| SettingsError::Field(path.to_path_buf(), e);
    let doc = Doc::parse(text).map_err(field)?;
    let mut root = doc.root();
    match root.integer("version").map_err(field)? {
        Some(VERSION) => {}
        Some(v) => {
            return Err(field(root.error(
                "version",
                format!("version {v} is not known to this twofa (it reads version {VERSION})"),
            )))
        }
        None => {
            return Err(field(FieldError {
                line: None,
                key: "version".into(),
                message: format!("missing; the first line must be `version = {VERSION}`"),
            }))
        }
    }
    let Some(mut pg) = root.table("postgres").map_err(field)? else {
        return Err(field(FieldError {
            line: None,
            key: "postgres".into(),
            message: "missing: the [postgres] table says where the store is".into(),
        }));
    };
    let settings = read_postgres(&mut pg, path).map_err(field)?;
    pg.finish().map_err(field)?;
    root.finish().map_err(field)?;
    Ok(settings)
}

fn read_postgres(pg: &mut Fields<'_>, path: &Path) -> Result<Settings, FieldError> {
    let text = pg.string("connection")?.ok_or_else(|| {
        pg.error(
            "connection",
            "missing: like \"host=db1 dbname=twofa user=twofa\"",
        )
    })?;
    // libpq's own TLS and timeout keywords would be a second, weaker way to say what `tls` and
    // `connect_timeout_ms` say (`sslmode=prefer` falls back to plain text): one way only.
    for word in ["sslmode", "sslnegotiation", "connect_timeout"] {
        if text.to_ascii_lowercase().contains(word) {
            return Err(pg.error(
                "connection",
                format!(
                    "leave {word} out: set `tls` and `connect_timeout_ms` in this file instead"
                ),
            ));
        }
    }
    // The parser's messages name the option, never its value (which may be a password).
    let mut connection: postgres::Config = text.parse().map_err(|e: postgres::Error| {
        pg.error(
            "connection",
            format!(
                "not a valid connection string: {}",
                crate::db_error::chain(&e)
            ),
        )
    })?;
    if connection.get_hosts().is_empty() && connection.get_hostaddrs().is_empty() {
        return Err(pg.error("connection", "names no host (host=...)"));
    }
    if let Some(password) = pg.string("password")? {
        if connection.get_password().is_some() {
            return Err(pg.error(
                "password",
                "the connection string has a password too: give it in one place",
            ));
        }
        connection.password(password);
    }
    if connection.get_application_name().is_none() {
        // So that an admin can tell twofa's sessions apart in pg_stat_activity.
        connection.application_name("twofa-store");
    }

    let tls_word = pg.string("tls")?.unwrap_or("verify-full");
    let ca_file = match pg.string("ca_file")? {
        Some(p) if !p.starts_with('/') => {
            return Err(pg.error("ca_file", "must be an absolute path"));
        }
        other => other.map(PathBuf::from),
    };
    let tls =
        match (tls_word, ca_file) {
            ("verify-full", Some(ca_file)) => Tls::VerifyFull { ca_file },
            ("verify-full", None) => return Err(pg.error(
                "ca_file",
                "missing: tls = \"verify-full\" needs the CA that signed the server's certificate \
                 (or tls = \"off\")",
            )),
            ("off", None) => Tls::Off,
            ("off", Some(_)) => {
                return Err(pg.error("ca_file", "only applies to tls = \"verify-full\""))
            }
            (other, _) => {
                return Err(pg.error(
                    "tls",
                    format!("must be \"verify-full\" or \"off\", not \"{other}\""),
                ))
            }
        };
    if let Tls::VerifyFull { .. } = tls {
        // The name checked against the certificate is `host`: an address given only as
        // hostaddr leaves nothing to check, and PostgreSQL has no TLS on a Unix socket.
        if connection.get_hosts().is_empty() {
            return Err(pg.error(
                "connection",
                "tls = \"verify-full\" needs host=NAME (the name in the server's certificate)",
            ));
        }
        if connection
            .get_hosts()
            .iter()
            .any(|h| matches!(h, Host::Unix(_)))
        {
            return Err(pg.error(
                "connection",
                "a Unix socket has no TLS: use tls = \"off\" for a local socket",
            ));
        }
    }
    let (min, max) = CONNECT_TIMEOUT_RANGE;
    let connect_timeout = Duration::from_millis(
        pg.unsigned("connect_timeout_ms", min, max)?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
    );
    connection.connect_timeout(connect_timeout);
    // A host that stops acknowledging mid-query (gone, cable pulled) is given up after the
    // same time instead of the kernel's fifteen minutes of retransmissions.
    connection.tcp_user_timeout(connect_timeout);
    let key_file = match pg.string("key_file")? {
        None => PathBuf::from(DEFAULT_KEY_FILE),
        Some(p) if p.starts_with('/') => PathBuf::from(p),
        Some(_) => return Err(pg.error("key_file", "must be an absolute path")),
    };
    Ok(Settings {
        source: path.to_path_buf(),
        connection,
        tls,
        connect_timeout,
        key_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"version = 1
[postgres]
connection = "host=10.0.0.5,10.0.0.6 port=5432 dbname=twofa user=twofa target_session_attrs=read-write"
password = "hunter2-db"
tls = "verify-full"
ca_file = "/etc/twofa/store-ca.pem"
connect_timeout_ms = 1500
key_file = "/etc/twofa/other.key"
"#;

    fn err_of(text: &str) -> String {
        match parse(text, Path::new("/etc/twofa/store.toml")) {
            Ok(_) => "parsed".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_documented_example_parses() -> Result<(), SettingsError> {
        let s = parse(GOOD, Path::new("/etc/twofa/store.toml"))?;
        assert_eq!(
            s.tls,
            Tls::VerifyFull {
                ca_file: PathBuf::from("/etc/twofa/store-ca.pem")
            }
        );
        assert_eq!(s.connect_timeout, Duration::from_millis(1500));
        assert_eq!(s.key_file, PathBuf::from("/etc/twofa/other.key"));
        assert_eq!(s.connection.get_password(), Some(&b"hunter2-db"[..]));
        assert_eq!(s.endpoints(), "10.0.0.5:5432, 10.0.0.6:5432");
        assert_eq!(s.connection.get_application_name(), Some("twofa-store"));
        Ok(())
    }

    #[test]
    fn defaults_are_verify_full_two_seconds_and_the_fleet_key() -> Result<(), SettingsError> {
        let s = parse(
            "version = 1\n[postgres]\nconnection = \"host=db\"\nca_file = \"/ca.pem\"\n",
            Path::new("/s.toml"),
        )?;
        assert!(matches!(s.tls, Tls::VerifyFull { .. }));
        assert_eq!(s.connect_timeout, Duration::from_millis(2000));
        assert_eq!(s.key_file, PathBuf::from(DEFAULT_KEY_FILE));
        assert_eq!(s.endpoints(), "db:5432");
        Ok(())
    }

    #[test]
    fn the_password_never_shows_in_debug_output() -> Result<(), SettingsError> {
        let s = parse(GOOD, Path::new("/etc/twofa/store.toml"))?;
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2-db"), "{shown}");
        let in_string = GOOD
            .replace("user=twofa ", "user=twofa password=in-the-string ")
            .replace("password = \"hunter2-db\"\n", "");
        let s = parse(&in_string, Path::new("/s.toml"))?;
        assert!(!format!("{s:?}").contains("in-the-string"));
        Ok(())
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("tls = ", "colour = \"red\"\ntls = ");
        assert_eq!(
            err_of(&text),
            "/etc/twofa/store.toml:5: key `postgres.colour`: unknown key"
        );
        assert_eq!(
            err_of("version = 1\nfleet = 2\n[postgres]\nconnection = \"host=a\"\ntls = \"off\"\n"),
            "/etc/twofa/store.toml:2: key `fleet`: unknown key"
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let cases = [
            (
                GOOD.replace("verify-full", "verify-ca"),
                "postgres.tls`: must be",
            ),
            (
                GOOD.replace("ca_file = \"/etc/twofa/store-ca.pem\"\n", ""),
                "postgres.ca_file`: missing",
            ),
            (
                GOOD.replace("\"/etc/twofa/store-ca.pem\"", "\"ca.pem\""),
                "absolute path",
            ),
            (
                GOOD.replace("1500", "5"),
                "postgres.connect_timeout_ms`: must be from 100",
            ),
            (
                GOOD.replace("dbname=twofa", "dbname=twofa sslmode=prefer"),
                "leave sslmode out",
            ),
            (
                GOOD.replace("port=5432", "port=fifty"),
                "not a valid connection string",
            ),
            (
                GOOD.replace("user=twofa ", "user=twofa password=x "),
                "give it in one place",
            ),
            (
                GOOD.replace("version = 1", "version = 2"),
                "version 2 is not known",
            ),
            (GOOD.replace("version = 1\n", ""), "key `version`: missing"),
            (
                GOOD.replace("host=10.0.0.5,10.0.0.6", "host=/run/postgresql"),
                "Unix socket",
            ),
            (
                GOOD.replace("host=10.0.0.5,10.0.0.6", "hostaddr=10.0.0.5"),
                "needs host=NAME",
            ),
            ("version = 1\n".to_string(), "[postgres] table"),
        ];
        for (text, want) in cases {
            let got = err_of(&text);
            assert!(got.contains(want), "want {want:?}, got {got:?}");
            assert!(!got.contains("hunter2-db"), "{got}");
        }
    }

    #[test]
    fn tls_off_takes_no_ca_and_allows_a_local_socket() -> Result<(), SettingsError> {
        let s = parse(
            "version = 1\n[postgres]\nconnection = \"host=/run/postgresql dbname=twofa\"\ntls = \"off\"\n",
            Path::new("/s.toml"),
        )?;
        assert_eq!(s.tls, Tls::Off);
        let e = err_of(
            "version = 1\n[postgres]\nconnection = \"host=db\"\ntls = \"off\"\nca_file = \"/ca.pem\"\n",
        );
        assert!(e.contains("only applies"), "{e}");
        Ok(())
    }
}
