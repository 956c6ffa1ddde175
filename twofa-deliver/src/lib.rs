//! `twofa-deliver`: sends one out-of-band twofa code, then exits.
//!
//! pam_twofa never loads a network client into sshd's or sudo's address space: for each code it
//! runs this program through its runner (hard deadline, SIGKILL at the deadline), as a dedicated
//! unprivileged system user, with closed descriptors. This program reads no file of twofa's: the
//! module passes everything it needs.
//!
//! # Contract
//!
//! **argv**: exactly one word, the method: `twofa-deliver email|pushover|script`. Anything else
//! is a usage error (exit 2).
//!
//! **environment**:
//! - `TWOFA_USER`: the account the code is for.
//! - `TWOFA_SENDTO`: the destination. email: one address or a comma-separated list; pushover: the
//!   user (or group) key, 30 letters and digits; script: any single-line string, given to the
//!   script as is.
//! - `TWOFA_CODE`: the code, 4 to 12 digits. Never in argv.
//! - `TWOFA_TTL`: seconds the code stays valid (1 to 86400).
//! - `TWOFA_METHOD`: optional; if set it must equal the argv word.
//!
//! **stdin**: a TOML document (at most 64 KiB) with the method's settings and credentials, read
//! to its end before anything is checked (so the writer never meets a closed pipe because an
//! argument was wrong). An unknown key is an error, never ignored.
//! - email: `smtp_host`, `smtp_port` (default 587 for `starttls`, 465 for `implicit`, 25 for
//!   `none`), `tls` = `"starttls"` (default) | `"implicit"` | `"none"` (`none` only for
//!   127.0.0.1, ::1 or localhost), `ca_file` (PEM CAs trusted *instead of* the system roots),
//!   `username` + `password` (AUTH PLAIN, else AUTH LOGIN; never without TLS except on
//!   loopback), `from`, `subject`, `body`, `helo` (default: this host's name),
//!   `timeout_seconds` (default 8).
//! - pushover: `api_url` (default `https://api.pushover.net/1/messages.json`; `http://` only for
//!   loopback), `token`, `ca_file`, `title`, `message`, `timeout_seconds` (default 8).
//! - script: `program` (an absolute path), `destination_pattern` (optional: a regular
//!   expression, `regex-lite` syntax, searched in `TWOFA_SENDTO`; no match, or an invalid
//!   pattern, is a settings error and the program does not run). The program replaces this
//!   process (exec) with the same `TWOFA_*` environment plus `PATH=/usr/sbin:/usr/bin:/sbin:/bin`
//!   and nothing else, stdin from /dev/null, working directory `/`; its exit status is the
//!   result. pam_twofa does not check the pattern itself (no regex engine in the module): a
//!   replacement for this program must refuse a destination outside it.
//!
//! Templates (`subject`, `body`, `title`, `message`) know `{code}`, `{ttl_minutes}` (whole
//! minutes, at least 1), `{user}` and `{host}` (this machine's name); `{{` and `}}` are literal
//! braces; any other `{name}` is an error.
//!
//! **exit status**: 0 = sent (for script: the script's own status). 1 = not sent (network,
//! TLS, server refused, timeout). 2 = usage or settings error (nothing was attempted). On any
//! non-zero exit, exactly one line on stderr says why; it never holds the code, the password or
//! the token.
//!
//! First thing at start, every descriptor above 2 is closed, so nothing the PAM application had
//! open leaks into an admin's script.
#![forbid(unsafe_code)]

mod address;
mod error;
mod fds;
mod http;
mod mail;
mod net;
mod pushover;
mod reply;
mod request;
mod script;
mod settings;
mod smtp;
mod template;
mod tls;

use std::io::{IsTerminal, Read};

pub use error::Failure;
use request::{Invocation, Method};

/// Largest settings document accepted on stdin.
const MAX_STDIN: u64 = 64 * 1024;

/// Runs the program with the process's own arguments, environment and stdin; returns the exit
/// status after printing the one-line reason of a failure.
pub fn run() -> i32 {
    // Before anything else: nothing inherited beyond stdin, stdout and stderr.
    fds::close_inherited();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut secrets = Vec::new();
    match deliver(&args, &mut secrets) {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("twofa-deliver: {}", failure.redacted(&secrets));
            failure.exit_code()
        }
    }
}

/// Parses everything, then sends. `secrets` collects every value that must never appear in the
/// error line, as soon as it is known.
fn deliver(args: &[std::ffi::OsString], secrets: &mut Vec<String>) -> Result<(), Failure> {
    // stdin first, whole: a caller writing the settings never meets a closed pipe because an
    // argument or a variable was wrong.
    let text = read_stdin()?;
    let method = Method::from_args(args)?;
    let invocation = Invocation::from_env(method, |name| std::env::var_os(name))?;
    secrets.push(invocation.code.clone());
    let document = settings::parse(&text)?;
    match method {
        Method::Email => {
            let settings = mail::EmailSettings::from_document(&document, secrets)?;
            mail::send(&settings, &invocation)
        }
        Method::Pushover => {
            let settings = pushover::PushoverSettings::from_document(&document, secrets)?;
            pushover::send(&settings, &invocation)
        }
        Method::Script => {
            let settings = script::ScriptSettings::from_document(&document)?;
            settings.check_destination(&invocation.sendto)?;
            Err(script::exec(&settings, &invocation))
        }
    }
}

fn read_stdin() -> Result<String, Failure> {
    let mut text = String::new();
    // A person trying the program at a terminal gets the usage line, not a silent wait.
    if std::io::stdin().is_terminal() {
        return Ok(text);
    }
    let read = std::io::stdin()
        .lock()
        .take(MAX_STDIN + 1)
        .read_to_string(&mut text);
    if let Err(err) = read {
        return Err(Failure::settings(format!(
            "cannot read the settings on stdin: {err}"
        )));
    }
    if text.len() as u64 > MAX_STDIN {
        return Err(Failure::settings(
            "the settings on stdin are larger than 64 KiB",
        ));
    }
    Ok(text)
}
