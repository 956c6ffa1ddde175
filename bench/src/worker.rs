//! A worker: one process running its share of one run's logins, each one PAM transaction
//! through libpam (twofa-pam-client, as tests/driver).

use std::ffi::{c_int, CStr, CString};
use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use twofa_pam_client::ffi::{PAM_AUTH_ERR, PAM_SUCCESS};
use twofa_pam_client::{Conversation, Secret, Transaction};

use crate::codes::{hotp, mono_ns, secret, unix_now, user_name, PERIOD};
use crate::oracle;

/// The bench's user: answers every prompt with the same text.
pub(crate) struct Answer(CString);

impl Conversation for Answer {
    fn prompt(&mut self, _style: c_int, _text: &[u8]) -> Option<Secret> {
        Some(Secret(self.0.as_bytes().to_vec()))
    }
    // The fail delay is caught and not slept: a refused login costs what the module does, not
    // the delay it asks for (the same for every module).
}

/// One PAM transaction: start (the module is loaded), optionally authenticate with `answer`,
/// end. Returns pam_authenticate's result (or pam_start's when not authenticating).
pub(crate) fn login(confdir: &CStr, service: &CStr, user: &CStr, answer: Option<&CStr>) -> c_int {
    let conv = Answer(answer.map_or_else(CString::default, CStr::to_owned));
    let mut pam = match Transaction::start(service, Some(user), Some(confdir), conv) {
        Ok(t) => t,
        Err(rc) => return rc,
    };
    let mut result = PAM_SUCCESS;
    if answer.is_some() {
        pam.catch_fail_delay();
        result = pam.authenticate(0);
    }
    pam.end(result);
    result
}

/// The floor's row name: pam_permit plus one durable write.
pub(crate) const FLOOR: &str = "floor";

/// The floor plus one getpwnam_r of the user ([`Mode::FloorLookup`]).
pub(crate) const FLOOR_LOOKUP: &str = "floor + getpwnam";

/// Which user the `k`-th login of a run uses: a stride through all users, so a run of fewer
/// logins than users touches users spread over the whole store, each at most once.
pub(crate) fn user_for(k: usize, users: usize) -> usize {
    const STRIDE: usize = 7919; // prime, coprime with every --users that is not a multiple
    (k * STRIDE + 1) % users
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// pam_authenticate with the right code: PAM_SUCCESS expected.
    Right,
    /// pam_authenticate with a wrong code: PAM_AUTH_ERR expected.
    Wrong,
    /// pam_start + pam_end only: the module is loaded and unloaded.
    Load,
    /// The floor: pam_permit, plus one durable write per login by the bench itself.
    Floor,
    /// The floor plus one getpwnam_r of the user: what any module that resolves the PAM user
    /// to its account (pam_unix, twofa) pays to NSS, which grows with /etc/passwd.
    FloorLookup,
    /// A stack whose password step always fails (pam_deny in pam_unix's place), for an
    /// enrolled, an unenrolled and an unknown name in turn ([`crate::oracle`]): PAM_AUTH_ERR
    /// expected for all three.
    PasswordFailed,
}

impl Mode {
    pub(crate) fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "right" => Mode::Right,
            "wrong" => Mode::Wrong,
            "load" => Mode::Load,
            "floor" => Mode::Floor,
            "floor-lookup" => Mode::FloorLookup,
            "password-failed" => Mode::PasswordFailed,
            _ => return Err(format!("unknown mode {s:?}")),
        })
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Right => "right",
            Mode::Wrong => "wrong",
            Mode::Load => "load",
            Mode::Floor => "floor",
            Mode::FloorLookup => "floor-lookup",
            Mode::PasswordFailed => "password-failed",
        }
    }
    /// Whether the bench itself writes durably after each login (the floors).
    pub(crate) fn is_floor(self) -> bool {
        matches!(self, Mode::Floor | Mode::FloorLookup)
    }
}

pub(crate) struct WorkerArgs {
    pub(crate) mode: Mode,
    pub(crate) confdir: String,
    pub(crate) service: String,
    pub(crate) users: usize,
    pub(crate) logins: usize,
    pub(crate) index: usize,
    pub(crate) workers: usize,
    pub(crate) start_mono: u64,
    pub(crate) floor_dir: Option<PathBuf>,
}

pub(crate) fn parse_worker(args: &[String]) -> Result<WorkerArgs, String> {
    let mut w = WorkerArgs {
        mode: Mode::Right,
        confdir: String::new(),
        service: String::new(),
        users: 0,
        logins: 0,
        index: 0,
        workers: 1,
        start_mono: 0,
        floor_dir: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--mode" => w.mode = Mode::parse(v)?,
            "--confdir" => w.confdir = v.clone(),
            "--service" => w.service = v.clone(),
            "--users" => w.users = num()? as usize,
            "--logins" => w.logins = num()? as usize,
            "--index" => w.index = num()? as usize,
            "--workers" => w.workers = num()? as usize,
            "--start-mono" => w.start_mono = num()?,
            "--floor-dir" => w.floor_dir = Some(PathBuf::from(v)),
            _ => return Err(format!("worker: unknown argument {a}")),
        }
    }
    if w.users == 0 || w.workers == 0 {
        return Err("worker: --users and --workers must be > 0".into());
    }
    Ok(w)
}

/// The floor's durable write: what one state update costs at least (temp file, write, fsync,
/// rename, fsync of the directory), as twofa-core's `SecureDir::write_atomic` does.
pub(crate) fn durable_write(dir: &Path, name: &str, contents: &[u8]) -> Result<(), String> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(contents).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| e.to_string())?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// getpwnam_r of `name`, as twofa's account lookup does it (a 16 KiB buffer); an account that
/// is not found is an error (every bench user exists).
pub(crate) fn lookup_account(name: &CStr) -> Result<(), String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value of this plain C struct (null pointers,
    // zero ids); getpwnam_r fills it in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated; `pwd`, `buf` (with its true length) and `found` are
    // valid for writes for the whole call, and nothing else refers to them.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(format!(
            "getpwnam_r({}) found no account (error {rc})",
            name.to_string_lossy()
        ));
    }
    Ok(())
}

/// The code a login of `mode` types for `key` at TOTP step `step`: the right one, or (wrong
/// codes) one that matches no step of the window.
fn code_for(mode: Mode, key: &[u8], step: u64) -> Result<u32, String> {
    let right = hotp(key, step)?;
    if mode != Mode::Wrong {
        return Ok(right);
    }
    let near = [hotp(key, step - 1)?, right, hotp(key, step + 1)?];
    let mut c = (right + 1) % 1_000_000;
    while near.contains(&c) {
        c = (c + 1) % 1_000_000;
    }
    Ok(c)
}

pub(crate) fn run_worker(w: &WorkerArgs) -> Result<(), String> {
    let confdir = CString::new(w.confdir.as_str()).map_err(|e| e.to_string())?;
    let service = CString::new(w.service.as_str()).map_err(|e| e.to_string())?;
    let mine: Vec<usize> = (0..w.logins)
        .filter(|k| k % w.workers == w.index)
        .map(|k| user_for(k, w.users))
        .collect();
    let names: Vec<CString> = mine
        .iter()
        .enumerate()
        .map(|(k, &i)| match w.mode {
            // The three names in turn, so that they share every moment of the run.
            Mode::PasswordFailed => oracle::names(w.users)[k % 3].clone(),
            _ => user_name(i),
        })
        .map(|n| CString::new(n).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let secrets: Vec<Vec<u8>> = mine.iter().map(|&i| secret(i)).collect();
    // Warm-up (libpam, the module's pages): one load, no authentication, no state touched.
    let warm = CString::new("twofa-e2e-b-warmup").map_err(|e| e.to_string())?;
    let _ = login(&confdir, &service, &warm, None);
    while mono_ns() < w.start_mono {
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let start = mono_ns();
    let mut lat = Vec::with_capacity(mine.len());
    let (mut ok, mut bad, mut first_bad) = (0usize, 0usize, None);
    for (k, name) in names.iter().enumerate() {
        let step = unix_now() / PERIOD;
        let answer = match w.mode {
            // Every prompt (the code prompt, or the one field) gets the same text: no password
            // is right in this stack, so no code is looked at.
            Mode::PasswordFailed => CString::new(oracle::ANSWER),
            _ => CString::new(format!("{:06}", code_for(w.mode, &secrets[k], step)?)),
        }
        .map_err(|e| e.to_string())?;
        let t0 = mono_ns();
        let rc = match w.mode {
            Mode::Load => login(&confdir, &service, name, None),
            _ => login(&confdir, &service, name, Some(&answer)),
        };
        if w.mode == Mode::FloorLookup && rc == PAM_SUCCESS {
            lookup_account(name)?;
        }
        if w.mode.is_floor() && rc == PAM_SUCCESS {
            let dir = w.floor_dir.as_deref().ok_or("floor needs --floor-dir")?;
            let text = format!("version = 1\nfailures = 0\ntotp_last_step = {step}\n");
            durable_write(
                dir,
                &format!("{}.toml", user_name(mine[k])),
                text.as_bytes(),
            )?;
        }
        let t1 = mono_ns();
        lat.push(t1 - t0);
        let expected = if matches!(w.mode, Mode::Wrong | Mode::PasswordFailed) {
            PAM_AUTH_ERR
        } else {
            PAM_SUCCESS
        };
        if rc == expected {
            ok += 1;
        } else {
            bad += 1;
            first_bad.get_or_insert((name.to_string_lossy().into_owned(), rc));
        }
    }
    let end = mono_ns();
    let mut out = String::new();
    let fb = first_bad.map_or_else(|| "-".to_string(), |(n, rc)| format!("{n}:{rc}"));
    let _ = writeln!(
        out,
        "ok {ok} bad {bad} start {start} end {end} first_bad {fb}"
    );
    let lats: Vec<String> = lat.iter().map(u64::to_string).collect();
    let _ = writeln!(out, "{}", lats.join(","));
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| e.to_string())
}
