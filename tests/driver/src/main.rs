//! `twofa-pam-driver`: runs one real PAM transaction through the system libpam with a scripted
//! conversation, and prints what a user of that service would have seen as one JSON object.
//!
//! ```text
//! twofa-pam-driver --service NAME [--user NAME] [--confdir DIR] [--rhost HOST] [--tty TTY]
//!                  [--env NAME=VALUE]... [--silent] [--tries N] [--keep-going] [--acct]
//!                  [--start-at UNIX_NS] < answers.json
//! ```
//!
//! * stdin: a JSON array of strings, the answers, consumed in order, one per
//!   `PAM_PROMPT_ECHO_OFF` / `PAM_PROMPT_ECHO_ON` prompt across all tries. When they run out, the
//!   conversation returns `PAM_CONV_ERR` (and answers nothing to that batch of messages).
//! * `--tries N` calls `pam_authenticate` up to N times on the same handle, as sudo does with its
//!   retries; like sudo it stops after the first success unless `--keep-going` is given.
//! * `--acct` calls `pam_acct_mgmt` after a successful `pam_authenticate`.
//! * `--env NAME=VALUE` is set in the PAM environment with `pam_putenv` (not in the process
//!   environment), e.g. `SSH_AUTH_INFO_0=publickey ssh-ed25519 AAAA...` as sshd does.
//! * `--confdir DIR` uses `pam_start_confdir` (Linux-PAM >= 1.4): the service file is read from
//!   DIR instead of /etc/pam.d.
//! * `--start-at UNIX_NS` waits, after `pam_start` (and the items above are set), until the
//!   wall clock reaches UNIX_NS (nanoseconds since the epoch) before the first
//!   `pam_authenticate`: many drivers started beforehand are released together, for tests of
//!   parallel logins. A time already past does not wait; one more than 120 s ahead is a usage
//!   error (so a mistake can't hang a test). The report then has `"start_late_usec"`: how
//!   long after UNIX_NS `pam_authenticate` was called (0 or more).
//!
//! stdout: one JSON object, e.g.
//! `{"tries":[{"result":"PAM_AUTH_ERR","code":7,"fail_delay_usec":1874322,
//! "fail_delay_requested_usec":2000000,"fail_delay_requests":[2000000,2000000],
//! "messages":[{"style":"echo_off","text":"Password: "}]}],"acct":null}`.
//! Exit status: 0 whenever PAM ran (whatever its results), 1 when `pam_start` failed, 2 on a
//! usage error.
//!
//! # The fail delay
//!
//! The driver sets the `PAM_FAIL_DELAY` item to a callback, so libpam calls it instead of
//! sleeping. What the callback receives is **not** the delay the modules requested: Linux-PAM's
//! `_pam_await_timer` (libpam/pam_delay.c) passes `_pam_compute_delay(begin, largest_request)`,
//! which is `largest_request * (1 + s)` with `s` the mean of three uniform draws in
//! `[0, 1)` minus 0.5: a value anywhere in `[0.5, 1.5)` times the largest request. The draws
//! come from getrandom(2) in Linux-PAM builds that have it, else from a linear congruential
//! generator seeded with `time(NULL)` at the start of `pam_authenticate`. Debian 12's libpam
//! (1.5.2) is the latter: checked empirically with pam_unix, which requests 2 s, the callback
//! got e.g. 2252378, 2467950, 2603542, 2407980 us: identical for every call started within the
//! same second, different from one second to the next. libpam also calls the callback on
//! success, and on a try where no module requested a delay (then with the largest request of an
//! earlier try on the same handle, since libpam only clears its "set" flag between calls), and
//! never for `pam_acct_mgmt`.
//!
//! So the callback's value is reported as `fail_delay_usec` (what an application would sleep),
//! and the exact requests are recorded separately: the driver exports its own `pam_fail_delay`,
//! which the modules' calls bind to (an executable's dynamic symbols come first in the global
//! lookup scope); it records the requested microseconds and forwards to libpam's
//! `pam_fail_delay` (found with `dlsym(RTLD_NEXT)`). `fail_delay_requests` lists every request
//! made during one `pam_authenticate` / `pam_acct_mgmt` call in order, and
//! `fail_delay_requested_usec` is their maximum (what libpam randomizes), or null when none.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::io::{Read, Write};
use std::panic::catch_unwind;
use std::ptr;
use std::sync::Mutex;

// ---------------------------------------------------------------------------------------------
// libpam (twofa-pam-client), and the driver's own interposer of `pam_fail_delay`.

use twofa_pam_client::ffi::{
    result_name, PamHandle, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_RHOST,
    PAM_SILENT, PAM_SUCCESS, PAM_SYSTEM_ERR, PAM_TEXT_INFO, PAM_TTY,
};
use twofa_pam_client::{wipe, Conversation, Secret, Transaction};

type FailDelayFn = unsafe extern "C" fn(*mut PamHandle, c_uint) -> c_int;

// From glibc (libc.so.6 has dlsym since 2.34; the standard library links libc).
extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `RTLD_NEXT` from <dlfcn.h>.
const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

// ---------------------------------------------------------------------------------------------
// What a transaction records.

#[derive(Debug, Clone)]
struct Message {
    style: String,
    text: String,
}

#[derive(Debug, Default)]
struct Call {
    messages: Vec<Message>,
    delay: Option<u32>,
}

/// The scripted user: answers in order, and what each call showed.
struct ConvState {
    answers: VecDeque<Secret>,
    current: Call,
}

impl ConvState {
    fn record(&mut self, style: c_int, text: &[u8]) {
        self.current.messages.push(Message {
            style: style_name(style),
            text: String::from_utf8_lossy(text).into_owned(),
        });
    }
}

impl Conversation for ConvState {
    fn prompt(&mut self, style: c_int, text: &[u8]) -> Option<Secret> {
        self.record(style, text);
        self.answers.pop_front()
    }
    fn show(&mut self, style: c_int, text: &[u8]) {
        self.record(style, text);
    }
    fn fail_delay(&mut self, usec: c_uint) {
        self.current.delay = Some(usec);
    }
}

/// Every `pam_fail_delay` request since the last reset (see the crate documentation).
static DELAY_REQUESTS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn take_delay_requests() -> Vec<u32> {
    match DELAY_REQUESTS.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    }
}

/// Interposes libpam's `pam_fail_delay` for every module loaded into this process: records the
/// request, then forwards it to libpam.
///
/// # Safety
/// Called by PAM modules with the handle they were given.
#[no_mangle]
pub unsafe extern "C" fn pam_fail_delay(pamh: *mut PamHandle, usec: c_uint) -> c_int {
    let recorded = catch_unwind(|| match DELAY_REQUESTS.lock() {
        Ok(mut v) => v.push(usec),
        Err(poisoned) => poisoned.into_inner().push(usec),
    });
    if recorded.is_err() {
        return PAM_SYSTEM_ERR;
    }
    // SAFETY: the symbol name is a NUL-terminated literal; RTLD_NEXT asks for the next
    // definition after this executable, i.e. libpam's.
    let real = unsafe { dlsym(RTLD_NEXT, c"pam_fail_delay".as_ptr()) };
    if real.is_null() {
        return PAM_SYSTEM_ERR;
    }
    // SAFETY: libpam's pam_fail_delay has exactly this signature
    // (`int pam_fail_delay(pam_handle_t *, unsigned int)`).
    let real: FailDelayFn = unsafe { std::mem::transmute::<*mut c_void, FailDelayFn>(real) };
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { real(pamh, usec) }
}

fn style_name(style: c_int) -> String {
    match style {
        PAM_PROMPT_ECHO_OFF => "echo_off".to_owned(),
        PAM_PROMPT_ECHO_ON => "echo_on".to_owned(),
        PAM_ERROR_MSG => "error".to_owned(),
        PAM_TEXT_INFO => "info".to_owned(),
        other => format!("style_{other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON in (an array of strings) and out.

/// Parses the answers; the intermediate copies of their text are wiped before returning.
fn parse_answers(input: &str) -> Result<Vec<Secret>, String> {
    let mut chars: Vec<char> = input.chars().collect();
    let parsed = parse_answer_chars(&chars);
    for c in chars.iter_mut() {
        // SAFETY: `c` is a valid, exclusive reference; volatile so the wipe is not elided.
        unsafe { ptr::write_volatile(c, '\0') };
    }
    parsed
}

fn parse_answer_chars(chars: &[char]) -> Result<Vec<Secret>, String> {
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if i == chars.len() {
        return Ok(Vec::new());
    }
    if chars.get(i) != Some(&'[') {
        return Err("stdin must be a JSON array of strings".into());
    }
    i += 1;
    let mut out = Vec::new();
    skip_ws(&mut i);
    if chars.get(i) == Some(&']') {
        i += 1;
    } else {
        loop {
            skip_ws(&mut i);
            if chars.get(i) != Some(&'"') {
                return Err(format!("expected a string at character {i}"));
            }
            i += 1;
            // Room for the longest possible answer: no reallocation leaves a copy behind.
            let mut s = String::with_capacity(4 * (chars.len() - i));
            loop {
                let Some(&c) = chars.get(i) else {
                    return Err("unterminated string".into());
                };
                i += 1;
                match c {
                    '"' => break,
                    '\\' => {
                        let Some(&e) = chars.get(i) else {
                            return Err("unterminated escape".into());
                        };
                        i += 1;
                        match e {
                            '"' => s.push('"'),
                            '\\' => s.push('\\'),
                            '/' => s.push('/'),
                            'b' => s.push('\u{8}'),
                            'f' => s.push('\u{c}'),
                            'n' => s.push('\n'),
                            'r' => s.push('\r'),
                            't' => s.push('\t'),
                            'u' => {
                                let hi = hex4(chars, &mut i)?;
                                let cp = if (0xD800..0xDC00).contains(&hi) {
                                    if chars.get(i) != Some(&'\\') || chars.get(i + 1) != Some(&'u')
                                    {
                                        return Err("lone surrogate".into());
                                    }
                                    i += 2;
                                    let lo = hex4(chars, &mut i)?;
                                    if !(0xDC00..0xE000).contains(&lo) {
                                        return Err("bad surrogate pair".into());
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else {
                                    hi
                                };
                                match char::from_u32(cp) {
                                    Some(ch) => s.push(ch),
                                    None => return Err("bad \\u escape".into()),
                                }
                            }
                            _ => return Err(format!("bad escape \\{e}")),
                        }
                    }
                    c if (c as u32) < 0x20 => return Err("control character in string".into()),
                    c => s.push(c),
                }
            }
            let answer = Secret(s.into_bytes());
            if answer.0.contains(&0) {
                return Err("an answer cannot contain NUL".into());
            }
            out.push(answer);
            skip_ws(&mut i);
            match chars.get(i) {
                Some(',') => i += 1,
                Some(']') => {
                    i += 1;
                    break;
                }
                _ => return Err(format!("expected ',' or ']' at character {i}")),
            }
        }
    }
    skip_ws(&mut i);
    if i != chars.len() {
        return Err("trailing data after the array".into());
    }
    Ok(out)
}

fn hex4(chars: &[char], i: &mut usize) -> Result<u32, String> {
    let mut v = 0u32;
    for _ in 0..4 {
        let Some(d) = chars.get(*i).and_then(|c| c.to_digit(16)) else {
            return Err("bad \\u escape".into());
        };
        v = v * 16 + d;
        *i += 1;
    }
    Ok(v)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt_u32(v: Option<u32>) -> String {
    v.map_or_else(|| "null".to_owned(), |d| d.to_string())
}

fn call_json(code: c_int, call: &Call, requests: &[u32]) -> String {
    let messages: Vec<String> = call
        .messages
        .iter()
        .map(|m| {
            format!(
                "{{\"style\":{},\"text\":{}}}",
                json_str(&m.style),
                json_str(&m.text)
            )
        })
        .collect();
    let reqs: Vec<String> = requests.iter().map(|r| r.to_string()).collect();
    format!(
        "{{\"result\":{},\"code\":{},\"fail_delay_usec\":{},\"fail_delay_requested_usec\":{},\
         \"fail_delay_requests\":[{}],\"messages\":[{}]}}",
        json_str(&result_name(code)),
        code,
        json_opt_u32(call.delay),
        json_opt_u32(requests.iter().copied().max()),
        reqs.join(","),
        messages.join(",")
    )
}

// ---------------------------------------------------------------------------------------------
// Command line.

#[derive(Debug, Default)]
struct Options {
    service: String,
    user: Option<String>,
    confdir: Option<String>,
    rhost: Option<String>,
    tty: Option<String>,
    env: Vec<String>,
    silent: bool,
    tries: u32,
    keep_going: bool,
    acct: bool,
    start_at_ns: Option<u128>,
}

const USAGE: &str = "usage: twofa-pam-driver --service NAME [--user NAME] [--confdir DIR] \
[--rhost HOST] [--tty TTY] [--env NAME=VALUE]... [--silent] [--tries N] [--keep-going] [--acct] \
[--start-at UNIX_NS] < answers.json";

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        tries: 1,
        ..Options::default()
    };
    let mut service = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<String, String> {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--service" => service = Some(value(a)?),
            "--user" => o.user = Some(value(a)?),
            "--confdir" => o.confdir = Some(value(a)?),
            "--rhost" => o.rhost = Some(value(a)?),
            "--tty" => o.tty = Some(value(a)?),
            "--env" => {
                let v = value(a)?;
                match v.split_once('=') {
                    Some((name, _)) if !name.is_empty() => o.env.push(v),
                    _ => return Err(format!("--env wants NAME=VALUE, got {v:?}")),
                }
            }
            "--silent" => o.silent = true,
            "--keep-going" => o.keep_going = true,
            "--acct" => o.acct = true,
            "--tries" => {
                let v = value(a)?;
                o.tries = match v.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("--tries wants a number >= 1, got {v:?}")),
                };
            }
            "--start-at" => {
                let v = value(a)?;
                let ns = v.parse::<u128>().map_err(|_| {
                    format!("--start-at wants nanoseconds since the epoch, got {v:?}")
                })?;
                if ns > unix_now_ns().saturating_add(MAX_START_AHEAD_NS) {
                    return Err(format!("--start-at {v} is more than 120 s ahead"));
                }
                o.start_at_ns = Some(ns);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    o.service = service.ok_or("--service is required")?;
    Ok(o)
}

/// How far ahead `--start-at` may be.
const MAX_START_AHEAD_NS: u128 = 120_000_000_000;

fn unix_now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Sleeps until the wall clock reaches `target_ns`; returns how late it woke (microseconds).
fn wait_until(target_ns: u128) -> u128 {
    loop {
        let now = unix_now_ns();
        if now >= target_ns {
            return (now - target_ns) / 1000;
        }
        let left = (target_ns - now).min(MAX_START_AHEAD_NS);
        std::thread::sleep(std::time::Duration::from_nanos(left as u64));
    }
}

fn cstring(what: &str, s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

fn usage_error(msg: &str) -> std::process::ExitCode {
    let mut err = std::io::stderr().lock();
    if !msg.is_empty() {
        let _ = writeln!(err, "twofa-pam-driver: {msg}");
    }
    let _ = writeln!(err, "{USAGE}");
    std::process::ExitCode::from(2)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        return usage_error(&format!("reading stdin: {e}"));
    }
    let answers = parse_answers(&input);
    wipe(string_bytes_for_wipe(&mut input));
    let answers = match answers {
        Ok(a) => a,
        Err(e) => return usage_error(&format!("answers: {e}")),
    };
    match run(&opts, answers) {
        Ok(json) => {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{json}").and_then(|()| out.flush()).is_err() {
                return std::process::ExitCode::from(1);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(Failure::Usage(e)) => usage_error(&e),
        Err(Failure::Pam(e)) => {
            let _ = writeln!(std::io::stderr().lock(), "twofa-pam-driver: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// The bytes of a `String`, to wipe it (zeros are valid UTF-8, so the String stays valid).
fn string_bytes_for_wipe(s: &mut str) -> &mut [u8] {
    // SAFETY: only zeros are written through the slice (see `wipe`), which keeps it UTF-8.
    unsafe { s.as_bytes_mut() }
}

enum Failure {
    Usage(String),
    Pam(String),
}

fn run(opts: &Options, answers: Vec<Secret>) -> Result<String, Failure> {
    let service = cstring("--service", &opts.service).map_err(Failure::Usage)?;
    let user = match &opts.user {
        Some(u) => Some(cstring("--user", u).map_err(Failure::Usage)?),
        None => None,
    };
    let confdir = match &opts.confdir {
        Some(d) => Some(cstring("--confdir", d).map_err(Failure::Usage)?),
        None => None,
    };
    let rhost = match &opts.rhost {
        Some(h) => Some(cstring("--rhost", h).map_err(Failure::Usage)?),
        None => None,
    };
    let tty = match &opts.tty {
        Some(t) => Some(cstring("--tty", t).map_err(Failure::Usage)?),
        None => None,
    };
    let env: Vec<CString> = opts
        .env
        .iter()
        .map(|e| cstring("--env", e))
        .collect::<Result<_, _>>()
        .map_err(Failure::Usage)?;

    let conv = ConvState {
        answers: answers.into(),
        current: Call::default(),
    };
    let mut pam = match Transaction::start(&service, user.as_deref(), confdir.as_deref(), conv) {
        Ok(t) => t,
        Err(rc) => {
            return Err(Failure::Pam(format!(
                "pam_start failed: {} ({rc})",
                result_name(rc)
            )))
        }
    };
    let outcome = transact(&mut pam, opts, rhost.as_ref(), tty.as_ref(), &env);
    let last = match &outcome {
        Ok((_, last)) => *last,
        Err(_) => PAM_SYSTEM_ERR,
    };
    pam.end(last);
    outcome.map(|(json, _)| json)
}

fn set_item(pam: &mut Pam, item: c_int, value: &CStr, what: &str) -> Result<(), Failure> {
    match pam.set_item(item, value) {
        PAM_SUCCESS => Ok(()),
        rc => Err(Failure::Pam(format!(
            "pam_set_item({what}) failed: {}",
            result_name(rc)
        ))),
    }
}

type Pam = Transaction<ConvState>;

fn transact(
    pam: &mut Pam,
    opts: &Options,
    rhost: Option<&CString>,
    tty: Option<&CString>,
    env: &[CString],
) -> Result<(String, c_int), Failure> {
    let rc = pam.catch_fail_delay();
    if rc != PAM_SUCCESS {
        return Err(Failure::Pam(format!(
            "pam_set_item(PAM_FAIL_DELAY) failed: {}",
            result_name(rc)
        )));
    }
    if let Some(h) = rhost {
        set_item(pam, PAM_RHOST, h, "PAM_RHOST")?;
    }
    if let Some(t) = tty {
        set_item(pam, PAM_TTY, t, "PAM_TTY")?;
    }
    for e in env {
        let rc = pam.putenv(e);
        if rc != PAM_SUCCESS {
            return Err(Failure::Pam(format!(
                "pam_putenv failed: {}",
                result_name(rc)
            )));
        }
    }
    let flags = if opts.silent { PAM_SILENT } else { 0 };
    let start_late = opts.start_at_ns.map(wait_until);
    let mut tries = Vec::new();
    let mut last = PAM_SYSTEM_ERR;
    for _ in 0..opts.tries {
        take_delay_requests();
        reset_call(pam)?;
        last = pam.authenticate(flags);
        let requests = take_delay_requests();
        let call = finish_call(pam)?;
        tries.push(call_json(last, &call, &requests));
        if last == PAM_SUCCESS && !opts.keep_going {
            break;
        }
    }
    let acct = if opts.acct && last == PAM_SUCCESS {
        take_delay_requests();
        reset_call(pam)?;
        let rc = pam.acct_mgmt(flags);
        let requests = take_delay_requests();
        let call = finish_call(pam)?;
        last = rc;
        call_json(rc, &call, &requests)
    } else {
        "null".to_owned()
    };
    let panicked = pam.panicked();
    let remaining = pam.with_conversation(|s| s.answers.len()).unwrap_or(0);
    let late = start_late.map_or_else(String::new, |l| format!(",\"start_late_usec\":{l}"));
    let json = format!(
        "{{\"tries\":[{}],\"acct\":{},\"unused_answers\":{},\"conversation_panicked\":{}{}}}",
        tries.join(","),
        acct,
        remaining,
        panicked,
        late
    );
    Ok((json, last))
}

fn reset_call(pam: &Pam) -> Result<(), Failure> {
    pam.with_conversation(|s| s.current = Call::default())
        .ok_or_else(|| Failure::Pam("conversation state busy".into()))
}

fn finish_call(pam: &Pam) -> Result<Call, Failure> {
    pam.with_conversation(|s| std::mem::take(&mut s.current))
        .ok_or_else(|| Failure::Pam("conversation state busy".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers_with_escapes() {
        let a = parse_answers(r#" ["hunter2", "a\"b\\c\n", "\u00e9\ud83d\ude00", ""] "#).unwrap();
        let got: Vec<String> = a
            .iter()
            .map(|s| String::from_utf8(s.0.clone()).unwrap())
            .collect();
        assert_eq!(got, vec!["hunter2", "a\"b\\c\n", "é😀", ""]);
        assert!(parse_answers("").unwrap().is_empty());
        assert!(parse_answers("[]").unwrap().is_empty());
        assert!(parse_answers("[1]").is_err());
        assert!(parse_answers(r#"["a""#).is_err());
        assert!(parse_answers(r#"["a\u0000"]"#).is_err());
        assert!(parse_answers(r#"["a"] x"#).is_err());
    }

    #[test]
    fn escapes_json_strings() {
        assert_eq!(json_str("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn args() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let o = parse_args(&v("--service x --tries 3 --env A=b=c --silent")).unwrap();
        assert_eq!(o.service, "x");
        assert_eq!(o.tries, 3);
        assert_eq!(o.env, vec!["A=b=c"]);
        assert!(o.silent);
        assert!(parse_args(&v("--user x")).is_err());
        assert!(parse_args(&v("--service x --tries 0")).is_err());
        assert!(parse_args(&v("--service x --env =y")).is_err());
        let soon = (unix_now_ns() + 1_000_000_000).to_string();
        assert_eq!(
            parse_args(&v(&format!("--service x --start-at {soon}")))
                .unwrap()
                .start_at_ns,
            Some(soon.parse().unwrap())
        );
        let later = (unix_now_ns() + 600_000_000_000).to_string();
        assert!(parse_args(&v(&format!("--service x --start-at {later}"))).is_err());
        assert!(parse_args(&v("--service x --start-at soon")).is_err());
    }
}
