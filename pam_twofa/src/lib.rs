//! pam_twofa.so: asks for a one-time code after the password.
//!
//! A thin adapter: it gathers what PAM knows (user, rhost, the "password failed" mark,
//! SSH_AUTH_INFO_0), lets `twofa_core::login` decide, logs the decision and maps it to a PAM
//! code. It never writes to stdout or stderr (vsftpd runs PAM with the FTP control connection
//! on fds 0-2), and no panic leaves it: each hook catches its own and denies.

// vsftpd runs PAM with the FTP control socket on fds 0-2: not one byte may go there.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod ffi;
mod syslog;

use std::cell::Cell;
use std::ffi::CStr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use pam::constants::{
    PamFlag, PamResultCode, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_SILENT, PAM_TEXT_INFO,
};
use pam::conv::Conv;
use pam::items::{RHost, Service};
use pam::module::{PamHandle, PamHooks};
use twofa_core::args::{self, Mode, ModuleArgs};
use twofa_core::audit::{Outcome, Reason};
use twofa_core::config;
use twofa_core::delivery::Programs;
use twofa_core::fleet;
use twofa_core::identity::System;
use twofa_core::login::{self, CodeSource, Conversation, ConversationError, Decision, Request};
use zeroize::Zeroizing;

use crate::syslog::Level;

/// The requested fail delay, the same on every path and in every mode (pam_unix asks 2 s too),
/// so the delay says nothing about which part failed.
pub const FAIL_DELAY_USEC: u32 = 2_000_000;

/// pam_set_data name of the "password failed" mark.
const MARK: &CStr = c"twofa.password_failed";
/// pam_set_data name of the code that the `concat` line cut from the password field.
const KEPT: &CStr = c"twofa.kept_code";
/// The prompt of the `concat` line when no earlier module collected the password.
const FIELD_PROMPT: &CStr = c"Password & verification code: ";

/// What the `concat` line leaves for the code-checking line: the code it cut (`None`: none).
/// Dropped (and wiped) by libpam through pam-bindings' cleanup when the entry is replaced or
/// the handle ends.
struct KeptCode(Option<Zeroizing<Vec<u8>>>);

struct TwoFa;
pam::pam_hooks!(TwoFa);

impl PamHooks for TwoFa {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        guarded(pamh, |pamh| {
            #[cfg(feature = "panic-probe")]
            #[allow(clippy::panic)] // the point of the test-only feature
            if args.iter().any(|a| a.to_bytes() == b"debug_panic") {
                panic!("debug_panic: a panic on request (feature panic-probe)");
            }
            authenticate(pamh, &args, flags)
        })
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        // No credentials to set; success keeps the stack's jump counts the same as in auth.
        PamResultCode::PAM_SUCCESS
    }
}

thread_local! {
    static IN_MODULE: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once per process, a panic hook that is silent while our code runs and defers to
/// the host's previous hook otherwise (the host may be a Rust program with its own).
fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_MODULE.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs a hook with panics caught: a panic is logged and denied (PAM_AUTH_ERR).
fn guarded(
    pamh: &mut PamHandle,
    hook: impl FnOnce(&mut PamHandle) -> PamResultCode,
) -> PamResultCode {
    install_quiet_panic_hook();
    IN_MODULE.with(|f| f.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| hook(pamh)));
    IN_MODULE.with(|f| f.set(false));
    result.unwrap_or_else(|_| {
        syslog::send(
            pamh,
            Level::Error,
            "pam_twofa: internal error (caught panic); access denied",
        );
        PamResultCode::PAM_AUTH_ERR
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn service_name(pamh: &PamHandle) -> String {
    match pamh.get_item::<Service>() {
        Ok(Some(s)) => s.to_string_lossy().into_owned(),
        _ => "?".to_string(),
    }
}

fn authenticate(pamh: &mut PamHandle, words: &[&CStr], flags: PamFlag) -> PamResultCode {
    ffi::request_fail_delay(pamh, FAIL_DELAY_USEC);
    let service = service_name(pamh);
    let prefix = format!("pam_twofa({service}:auth)");
    let words: Vec<String> = words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let args = match args::parse(words.iter().map(String::as_str)) {
        Ok(a) => a,
        Err(e) => {
            syslog::send(pamh, Level::Error, &format!("{prefix}: {e}; access denied"));
            return PamResultCode::PAM_AUTHINFO_UNAVAIL;
        }
    };
    match args.mode {
        Mode::PasswordFailed => {
            if !ffi::set_mark(pamh, MARK) {
                syslog::send(
                    pamh,
                    Level::Error,
                    &format!("{prefix}: could not set the password-failed mark"),
                );
            }
            PamResultCode::PAM_AUTH_ERR
        }
        Mode::PubkeyDone => pubkey_done(pamh, &args, &prefix),
        Mode::Concat => concat(pamh, &args, &service, &prefix),
        Mode::Verify => verify(pamh, &args, &service, &prefix, flags & PAM_SILENT != 0),
    }
}

/// Success when sshd's PAM environment names a public key that sshd has verified for this
/// connection (SSH_AUTH_INFO_0 lists completed methods, one per line); otherwise PAM_IGNORE.
fn pubkey_done(pamh: &mut PamHandle, args: &ModuleArgs, prefix: &str) -> PamResultCode {
    let info = ffi::pam_env(pamh, c"SSH_AUTH_INFO_0").unwrap_or_default();
    let key = info.lines().any(|l| l.starts_with("publickey "));
    if args.debug {
        syslog::send(
            pamh,
            Level::Debug,
            &format!("{prefix}: pubkey_done: public key verified: {key}"),
        );
    }
    if key {
        PamResultCode::PAM_SUCCESS
    } else {
        PamResultCode::PAM_IGNORE
    }
}

/// Takes (and removes) the code the `concat` line kept; `None` if no `concat` line ran.
fn take_kept_code(pamh: &mut PamHandle) -> Option<Option<Zeroizing<Vec<u8>>>> {
    let key = KEPT.to_str().unwrap_or_default();
    // SAFETY: the only value ever stored under KEPT is a `KeptCode`, by `concat` below.
    let kept = unsafe { pamh.get_data::<KeptCode>(key) }
        .ok()
        .map(|k| k.0.clone());
    if kept.is_some() {
        ffi::clear_data(pamh, KEPT);
    }
    kept
}

/// PAM_USER and PAM_RHOST; without a user name nothing can be decided (logged, denied).
fn user_and_rhost(
    pamh: &mut PamHandle,
    prefix: &str,
) -> Result<(String, Option<String>), PamResultCode> {
    let user = match pamh.get_user(None) {
        Ok(user) => user,
        Err(e) => {
            syslog::send(
                pamh,
                Level::Error,
                &format!("{prefix}: could not get the user name ({e:?}); access denied"),
            );
            return Err(PamResultCode::PAM_AUTH_ERR);
        }
    };
    let rhost = match pamh.get_item::<RHost>() {
        Ok(Some(h)) => Some(h.to_string_lossy().into_owned()),
        _ => None,
    };
    Ok((user, rhost))
}

/// FTP-style one-field login: cut the code from the end of the field, hand the password on as
/// PAM_AUTHTOK for `pam_unix.so use_first_pass`, keep the code for the checking line.
/// PAM_SUCCESS for every user, unknown ones included: nothing is decided here.
fn concat(pamh: &mut PamHandle, args: &ModuleArgs, service: &str, prefix: &str) -> PamResultCode {
    // A code kept by an earlier try on this handle must never be used by this one.
    let _ = take_kept_code(pamh);
    let config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            syslog::send(
                pamh,
                Level::Error,
                &format!("{prefix}: outcome=error reason=config-error: {e}"),
            );
            return PamResultCode::PAM_AUTHINFO_UNAVAIL;
        }
    };
    let (user, rhost) = match user_and_rhost(pamh, prefix) {
        Ok(u) => u,
        Err(code) => return code,
    };
    let Some(field) = ffi::authtok(pamh, FIELD_PROMPT) else {
        syslog::send(
            pamh,
            Level::Notice,
            &format!("{prefix}: no password field (conversation failed); access denied"),
        );
        return PamResultCode::PAM_AUTH_ERR;
    };
    let store = fleet::open(&config);
    let req = Request {
        user: &user,
        service,
        rhost: rhost.as_deref(),
        password_failed: false,
        now: unix_now(),
        code: CodeSource::Ask,
    };
    let split = login::split_field(&config, &store, &System, &req, &field);
    if !ffi::set_authtok(pamh, &split.password) {
        syslog::send(
            pamh,
            Level::Error,
            &format!("{prefix}: could not hand the password on (PAM_AUTHTOK); access denied"),
        );
        return PamResultCode::PAM_AUTH_ERR;
    }
    let key = KEPT.to_str().unwrap_or_default();
    if pamh.set_data(key, Box::new(KeptCode(split.code))).is_err() {
        syslog::send(
            pamh,
            Level::Error,
            &format!("{prefix}: could not keep the code for the next line; access denied"),
        );
        return PamResultCode::PAM_AUTH_ERR;
    }
    if args.debug {
        syslog::send(
            pamh,
            Level::Debug,
            &format!("{prefix}: concat: field split for user {user:?}"),
        );
    }
    PamResultCode::PAM_SUCCESS
}

/// The PAM conversation, as `twofa_core::login` needs it.
struct PamConversation<'a> {
    pamh: &'a PamHandle,
    /// PAM_SILENT: hide advisory lines (not errors the user must see).
    silent: bool,
}

impl Conversation for PamConversation<'_> {
    fn ask_hidden(
        &mut self,
        prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        let conv = match self.pamh.get_item::<Conv>() {
            Ok(Some(c)) => c,
            _ => return Err(ConversationError),
        };
        match conv.send(PAM_PROMPT_ECHO_OFF, prompt) {
            Ok(Some(reply)) => Ok(Some(Zeroizing::new(reply.as_bytes().to_vec()))),
            Ok(None) => Ok(None),
            Err(_) => Err(ConversationError),
        }
    }

    fn show_error(&mut self, message: &str) {
        if let Ok(Some(conv)) = self.pamh.get_item::<Conv>() {
            let _ = conv.send(PAM_ERROR_MSG, message);
        }
    }

    fn show_notice(&mut self, message: &str) {
        if let Ok(Some(conv)) = self.pamh.get_item::<Conv>() {
            let _ = conv.send(PAM_TEXT_INFO, message);
        }
    }

    fn show_info(&mut self, message: &str) {
        if !self.silent {
            self.show_notice(message);
        }
    }
}

fn verify(
    pamh: &mut PamHandle,
    args: &ModuleArgs,
    service: &str,
    prefix: &str,
    silent: bool,
) -> PamResultCode {
    // Taken (and removed) first, before any other decision, on every path.
    let password_failed = ffi::take_mark(pamh, MARK);
    let code = match take_kept_code(pamh) {
        Some(kept) => CodeSource::Field(kept),
        None => CodeSource::Ask,
    };
    let (user, rhost) = match user_and_rhost(pamh, prefix) {
        Ok(u) => u,
        Err(code) => return code,
    };
    let req = Request {
        user: &user,
        service,
        rhost: rhost.as_deref(),
        password_failed,
        now: unix_now(),
        code,
    };
    let mut fallback = None;
    let decision = match config::load(args.config.as_deref()) {
        Err(e) => login::unavailable(&req, Reason::ConfigError, e.to_string()),
        Ok(config) => {
            let store = fleet::open(&config);
            let mut conv = PamConversation { pamh, silent };
            let deliver = Programs {
                policy: &config.delivery,
            };
            let decision = login::authenticate(&config, &store, &System, &deliver, &mut conv, &req);
            fallback = store.fell_back();
            decision
        }
    };
    match fallback {
        // One line still: the decision, and that it was made on this host's files alone.
        Some(why) => log_decision(
            pamh,
            &format!("{prefix}: store=local (fleet store unreachable: {why})"),
            &decision,
        ),
        None => log_decision(pamh, prefix, &decision),
    }
    match decision.outcome {
        Outcome::Success => PamResultCode::PAM_SUCCESS,
        Outcome::Deny => PamResultCode::PAM_AUTH_ERR,
        Outcome::Ignore => PamResultCode::PAM_IGNORE,
        Outcome::Error => PamResultCode::PAM_AUTHINFO_UNAVAIL,
    }
}

fn log_decision(pamh: &mut PamHandle, prefix: &str, decision: &Decision) {
    let level = match decision.outcome {
        Outcome::Success | Outcome::Ignore => Level::Info,
        Outcome::Deny => Level::Notice,
        Outcome::Error => Level::Error,
    };
    syslog::send(pamh, level, &format!("{prefix}: {}", decision.event));
}
