//! `twofa-bench`: the login cost of pam_twofa beside google-authenticator-libpam and pam_oath,
//! through the system's real libpam (see docs/benchmarks.md for the figures and how to read them).
//!
//! ```text
//! cargo run --release -p twofa-bench -- [--users 1000,10000] [--logins 2000] [--workers 1,2]
//!     [--modules twofa,google,oath] [--load-iters 2000] [--no-sshd] [--no-probes]
//!     [--markdown FILE] [--keep] [--smoke] [--fleet] [--fleet-sessions 20]
//! ```
//!
//! Every login is `pam_start_confdir` + `pam_authenticate` (a conversation that answers the
//! right code) + `pam_end`, for a different enrolled user, against a private PAM config dir
//! whose service holds one line, `auth required /path/to/module.so ARGS`. Each module is set up
//! as equally as it allows: TOTP SHA1, 6 digits, 30 s, one step either side; replay protection
//! (twofa always; google-authenticator `DISALLOW_REUSE`; pam_oath's last-OTP tracking in its
//! users file); rate limiting (twofa `max_failures`; google-authenticator `RATE_LIMIT`; pam_oath
//! has none); state on disk.
//!
//! Beside the modules, every round runs two floors: pam_permit plus one durable write by the
//! bench, and the same plus one getpwnam_r of the user (what resolving the PAM user costs).
//! Targets that compare two rows take their ratio within each round. Module load is measured
//! in the worker (pam_start + pam_end) and in a C program (`cload.c`: dlopen + dlclose), which
//! unlike this Rust program has no libgcc_s loaded, like sshd.
//!
//! Users: twofa looks accounts up with getpwnam, so the enrolled users must exist. The bench
//! never edits /etc/passwd: it enters a private mount namespace (unshare(CLONE_NEWNS), `/` made
//! private) and mounts an overlayfs on /etc whose upper layer holds its own /etc/passwd and
//! /etc/shadow (the system's lines plus `twofa-e2e-bNNNNN`). Only the bench and its children see the users; nothing
//! needs removing afterwards but the temporary directory.
//!
//! The log: the namespace gets its own /dev/log, read by a thread as quickly as journald, and
//! an overlay on /run (`devlog.rs`); a probe measures pam_twofa's log wait with that reader
//! stopped and checks that every line it could not send was counted.
//!
//! Concurrency: N workers are N processes (this program re-run with `--worker`), released
//! together at one CLOCK_MONOTONIC instant. Processes, not threads, because that is what a PAM
//! login is (sshd forks one process per connection, sudo is one process), and because
//! pam_oath's users-file lock is an fcntl lock, which does not exclude two threads of one
//! process.
//!
//! `--smoke` (CI): 20 users, 50 logins, 1 worker, every installed module, right and wrong
//! codes, module load; it fails if any login gets an unexpected PAM result, and asserts no
//! timing.
//!
//! `--fleet` adds pam_twofa with the fleet store (PostgreSQL direct and through PgBouncer,
//! started by the bench: see `fleet.rs`), in the same rounds as the file rows. It is off
//! unless asked for, `--smoke` included: it needs PostgreSQL 15, PgBouncer and release builds
//! of twofa-store and twofa-enroll. `--smoke --fleet` is the fleet's smoke (same sizes, direct
//! and session pool, strict).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::ptr;

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use twofa_core::hex;
use twofa_pam_client::ffi::{PAM_AUTH_ERR, PAM_SUCCESS};
use twofa_pam_client::{Conversation, Secret, Transaction};

mod devlog;
mod fleet;

// ---------------------------------------------------------------------------------------------
// One login through libpam (twofa-pam-client, as tests/driver).

/// The bench's user: answers every prompt with the same text.
struct Answer(CString);

impl Conversation for Answer {
    fn prompt(&mut self, _style: c_int, _text: &[u8]) -> Option<Secret> {
        Some(Secret(self.0.as_bytes().to_vec()))
    }
    // The fail delay is caught and not slept: a refused login costs what the module does, not
    // the delay it asks for (the same for every module).
}

/// One PAM transaction: start (the module is loaded), optionally authenticate with `answer`,
/// end. Returns pam_authenticate's result (or pam_start's when not authenticating).
fn login(confdir: &CStr, service: &CStr, user: &CStr, answer: Option<&CStr>) -> c_int {
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

// ---------------------------------------------------------------------------------------------
// Codes, secrets, names, clocks.

const PERIOD: u64 = 30;
/// The bench users' UIDs start here (far above any real account; they exist only in the
/// bench's private /etc/passwd).
const UID_BASE: u64 = 3_000_000;

/// RFC 4226 HOTP with HMAC-SHA1, 6 digits.
fn hotp(key: &[u8], counter: u64) -> Result<u32, String> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).map_err(|e| e.to_string())?;
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h[19] & 0x0f);
    let v = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    Ok(v % 1_000_000)
}

/// User `i`'s 160-bit secret (deterministic, so every process can compute it).
fn secret(i: usize) -> Vec<u8> {
    Sha1::digest(format!("twofa-bench secret {i}").as_bytes()).to_vec()
}

fn user_name(i: usize) -> String {
    format!("twofa-e2e-b{i:05}")
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every worker process.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Which user the `k`-th login of a run uses: a stride through all users, so a run of fewer
/// logins than users touches users spread over the whole store, each at most once.
/// The load rows' baseline: libpam with pam_permit (pam_start + pam_end), or pam_permit.so
/// alone (dlopen + dlclose in a C program).
const LOAD_BASE: &str = "pam_permit (libpam alone)";

/// dlopen + dlclose of each object in a C program (bench/src/cload.c, built with `cc`): what
/// loading costs in sshd's connection process, which has no libgcc_s loaded, unlike the Rust
/// workers. Returns (name, p50 µs, p90 µs); empty, with a note, where there is no `cc`.
fn c_program_load(
    base: &Path,
    objects: &[(String, PathBuf)],
    iterations: usize,
) -> Result<Vec<(String, f64, f64)>, String> {
    let src = base.join("cload.c");
    let exe = base.join("cload");
    std::fs::write(&src, include_str!("cload.c")).map_err(|e| format!("{}: {e}", src.display()))?;
    let built = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-ldl")
        .output();
    match built {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "cc cload.c: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => {
            eprintln!("   (no C program load rows: cc: {e})");
            return Ok(Vec::new());
        }
    }
    let out = Command::new(&exe)
        .arg(iterations.max(1).to_string())
        .args(objects.iter().map(|(_, p)| p))
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "C program load failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for ((name, _), line) in objects.iter().zip(text.lines()) {
        let mut f = line.split_whitespace();
        let (Some(Ok(p50)), Some(Ok(p90))) = (f.next().map(str::parse), f.next().map(str::parse))
        else {
            return Err(format!("C program load: unexpected line {line:?}"));
        };
        eprintln!("   {name:<26} load in a C program (dlopen+dlclose): p50 {p50:>6.0} us  p90 {p90:>6.0} us");
        rows.push((name.clone(), p50, p90));
    }
    if rows.len() != objects.len() {
        return Err(format!(
            "C program load: {} lines for {} objects",
            rows.len(),
            objects.len()
        ));
    }
    Ok(rows)
}

/// The floor's row name: pam_permit plus one durable write.
const FLOOR: &str = "floor";
/// The floor plus one getpwnam_r of the user ([`Mode::FloorLookup`]).
const FLOOR_LOOKUP: &str = "floor + getpwnam";

fn user_for(k: usize, users: usize) -> usize {
    const STRIDE: usize = 7919; // prime, coprime with every --users that is not a multiple
    (k * STRIDE + 1) % users
}

// ---------------------------------------------------------------------------------------------
// Worker: one process, a share of one run's logins.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
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
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "right" => Mode::Right,
            "wrong" => Mode::Wrong,
            "load" => Mode::Load,
            "floor" => Mode::Floor,
            "floor-lookup" => Mode::FloorLookup,
            _ => return Err(format!("unknown mode {s:?}")),
        })
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Right => "right",
            Mode::Wrong => "wrong",
            Mode::Load => "load",
            Mode::Floor => "floor",
            Mode::FloorLookup => "floor-lookup",
        }
    }
    /// Whether the bench itself writes durably after each login (the floors).
    fn is_floor(self) -> bool {
        matches!(self, Mode::Floor | Mode::FloorLookup)
    }
}

struct WorkerArgs {
    mode: Mode,
    confdir: String,
    service: String,
    users: usize,
    logins: usize,
    index: usize,
    workers: usize,
    start_mono: u64,
    floor_dir: Option<PathBuf>,
}

fn parse_worker(args: &[String]) -> Result<WorkerArgs, String> {
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
fn durable_write(dir: &Path, name: &str, contents: &[u8]) -> Result<(), String> {
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
fn lookup_account(name: &CStr) -> Result<(), String> {
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

fn run_worker(w: &WorkerArgs) -> Result<(), String> {
    let confdir = CString::new(w.confdir.as_str()).map_err(|e| e.to_string())?;
    let service = CString::new(w.service.as_str()).map_err(|e| e.to_string())?;
    let mine: Vec<usize> = (0..w.logins)
        .filter(|k| k % w.workers == w.index)
        .map(|k| user_for(k, w.users))
        .collect();
    let names: Vec<CString> = mine
        .iter()
        .map(|&i| CString::new(user_name(i)).map_err(|e| e.to_string()))
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
        let key = &secrets[k];
        let right = hotp(key, step)?;
        let code = match w.mode {
            Mode::Wrong => {
                let near = [hotp(key, step - 1)?, right, hotp(key, step + 1)?];
                let mut c = (right + 1) % 1_000_000;
                while near.contains(&c) {
                    c = (c + 1) % 1_000_000;
                }
                c
            }
            _ => right,
        };
        let answer = CString::new(format!("{code:06}")).map_err(|e| e.to_string())?;
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
        let expected = if w.mode == Mode::Wrong {
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

// ---------------------------------------------------------------------------------------------
// The world: a private mount namespace, users, stores, PAM config dirs.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Module {
    Twofa,
    Google,
    Oath,
}

impl Module {
    fn name(self) -> &'static str {
        match self {
            Module::Twofa => "pam_twofa",
            Module::Google => "pam_google_authenticator",
            Module::Oath => "pam_oath",
        }
    }
    fn service(self) -> &'static str {
        match self {
            Module::Twofa => "bench-twofa",
            Module::Google => "bench-google",
            Module::Oath => "bench-oath",
        }
    }
}

/// Every module the bench knows, in table order.
const ALL_MODULES: [Module; 3] = [Module::Twofa, Module::Google, Module::Oath];

fn security_dir_module(file: &str) -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu/security",
        "/usr/lib/x86_64-linux-gnu/security",
        "/lib/aarch64-linux-gnu/security",
        "/usr/lib/aarch64-linux-gnu/security",
        "/lib/security",
        "/usr/lib/security",
    ]
    .iter()
    .map(|d| Path::new(d).join(file))
    .find(|p| p.is_file())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn module_path(m: Module) -> Option<PathBuf> {
    match m {
        Module::Twofa => {
            let p = std::env::var_os("TWOFA_MODULE").map_or_else(
                || repo_root().join("target/release/libpam_twofa.so"),
                PathBuf::from,
            );
            p.is_file().then_some(p)
        }
        Module::Google => security_dir_module("pam_google_authenticator.so"),
        Module::Oath => security_dir_module("pam_oath.so"),
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(contents)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn mkdir(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Enters a private mount namespace: mounts made from now on are seen by this process and its
/// children only, and vanish with them.
fn private_mount_namespace() -> Result<(), String> {
    // SAFETY: plain system calls with constant arguments; called while single-threaded.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    if rc != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: NUL-terminated literals; MS_REC|MS_PRIVATE stops propagation to the host.
    let rc = unsafe {
        libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "making / private: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Mounts an overlay on /etc (in the private namespace): the bench's /etc/passwd and
/// /etc/shadow (and sshd_login.py's /etc/pam.d/twofa-e2e-sshd-* services) are written to
/// `upper` and seen by this process and its children only; the real /etc is never written.
/// Not a bind mount of the files: useradd/userdel elsewhere on the host rename a new
/// /etc/passwd into place, and since Linux 3.18 a rename over a mount point detaches the
/// mount in every namespace, so the bench's users would vanish mid-run.
fn overlay_etc(base: &Path) -> Result<(), String> {
    let (upper, work) = (base.join("etc-upper"), base.join("etc-work"));
    mkdir(&upper, 0o755)?;
    mkdir(&work, 0o700)?;
    let data = CString::new(format!(
        "lowerdir=/etc,upperdir={},workdir={}",
        upper.display(),
        work.display()
    ))
    .map_err(|e| e.to_string())?;
    // SAFETY: NUL-terminated strings; overlay's options are a NUL-terminated string.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            c"/etc".as_ptr(),
            c"overlay".as_ptr(),
            0,
            data.as_ptr() as *const c_void,
        )
    };
    if rc != 0 {
        return Err(format!(
            "overlay on /etc: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Detaches the overlay on /etc (before its directories are removed).
fn unmount_etc() {
    // SAFETY: a NUL-terminated literal; only this namespace's overlay is detached.
    unsafe { libc::umount2(c"/etc".as_ptr(), libc::MNT_DETACH) };
}

/// syncfs(2) on the file system holding `dir`: setup writes don't land inside a measurement.
fn syncfs(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor.
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
}

/// One user count's world: stores of all modules, the PAM services, the passwd/shadow copies.
struct World {
    dir: PathBuf,
    users: usize,
    confdir: PathBuf,
    modules: Vec<(Module, PathBuf)>,
}

/// A time well in the past for "the previous login" in the steady-state files.
fn yesterday() -> u64 {
    unix_now() - 86_400
}

impl World {
    fn twofa_storage(&self) -> PathBuf {
        self.dir.join("twofa")
    }
    fn twofa_config(&self) -> PathBuf {
        self.dir.join("twofa.toml")
    }
    fn ga_dir(&self) -> PathBuf {
        self.dir.join("google")
    }
    fn oath_file(&self) -> PathBuf {
        self.dir.join("oath").join("users.oath")
    }
    fn floor_dir(&self) -> PathBuf {
        self.dir.join("floor")
    }

    /// The module's `auth` line arguments (after the path).
    fn args(&self, m: Module) -> String {
        match m {
            Module::Twofa => format!("config={}", self.twofa_config().display()),
            Module::Google => format!("secret={}/${{USER}} user=root", self.ga_dir().display()),
            Module::Oath => format!("usersfile={} window=1 digits=6", self.oath_file().display()),
        }
    }

    fn auth_line(&self, m: Module, path: &Path) -> String {
        format!("auth required {} {}", path.display(), self.args(m))
    }

    fn create(
        base: &Path,
        users: usize,
        modules: &[(Module, PathBuf)],
        passwd: &str,
        shadow: &str,
        hash: &str,
    ) -> Result<World, String> {
        let dir = base.join(format!("u{users}"));
        mkdir(&dir, 0o755)?;
        let w = World {
            confdir: dir.join("pam.d"),
            dir,
            users,
            modules: modules.to_vec(),
        };
        // Users: the system's lines, then ours, in the private overlay on /etc.
        let mut pw = String::with_capacity(passwd.len() + users * 80);
        let mut sh = String::with_capacity(shadow.len() + users * 140);
        pw.push_str(passwd);
        sh.push_str(shadow);
        let day = unix_now() / 86_400;
        for i in 0..users {
            let n = user_name(i);
            let _ = writeln!(
                pw,
                "{n}:x:{}:{UID_BASE}:twofa bench:/nonexistent:/usr/sbin/nologin",
                UID_BASE + i as u64
            );
            let _ = writeln!(sh, "{n}:{hash}:{day}:0:99999:7:::");
        }
        write_file(Path::new("/etc/passwd"), pw.as_bytes(), 0o644)?;
        write_file(Path::new("/etc/shadow"), sh.as_bytes(), 0o640)?;

        // PAM services: one line each.
        mkdir(&w.confdir, 0o755)?;
        let deny: String = ["auth", "account", "password", "session"]
            .iter()
            .map(|t| format!("{t} required pam_deny.so\n"))
            .collect();
        write_file(&w.confdir.join("other"), deny.as_bytes(), 0o644)?;
        write_file(
            &w.confdir.join("bench-floor"),
            b"auth required pam_permit.so\n",
            0o644,
        )?;
        for (m, path) in modules {
            let line = w.auth_line(*m, path) + "\n";
            write_file(&w.confdir.join(m.service()), line.as_bytes(), 0o644)?;
        }

        // twofa: policy, enrollments (written once), lock files (exist in steady state).
        let storage = w.twofa_storage();
        mkdir(&storage, 0o700)?;
        for sub in ["users", "state", "lock"] {
            mkdir(&storage.join(sub), 0o700)?;
        }
        let config = format!(
            "version = 1\n\n[totp]\nissuer = \"bench\"\nalgorithm = \"SHA1\"\ndigits = 6\n\
             period = 30\nwindow = 1\n\n[policy]\nunenrolled = \"deny\"\nfactors = [\"totp\"]\n\
             max_failures = 5\nfailure_window_seconds = 900\nlockout_seconds = 300\n\n\
             [storage]\ndir = \"{}\"\n",
            storage.display()
        );
        write_file(&w.twofa_config(), config.as_bytes(), 0o644)?;
        let enrolled = yesterday();
        for i in 0..users {
            let n = user_name(i);
            let text = format!(
                "# twofa enrollment: written by twofa-enroll, do not edit by hand.\n\
                 version = 1\naccount = \"{n}\"\n\n[[factor]]\ntype = \"totp\"\n\
                 secret = \"{}\"\nalgorithm = \"SHA1\"\ndigits = 6\nperiod = 30\n\
                 enrolled_at = {enrolled}\n",
                base32(&secret(i))
            );
            write_file(
                &storage.join("users").join(format!("{n}.toml")),
                text.as_bytes(),
                0o600,
            )?;
            write_file(&storage.join("lock").join(&n), b"", 0o600)?;
        }
        mkdir(&w.ga_dir(), 0o700)?;
        if let Some(parent) = w.oath_file().parent() {
            mkdir(parent, 0o700)?;
        }
        mkdir(&w.floor_dir(), 0o700)?;
        w.reset(None)?;
        Ok(w)
    }

    /// Puts every module's per-user state back to "last login yesterday" for the users the
    /// first `logins` logins of a run use (all users: `None`), so that a run's logins are
    /// neither replays nor first logins. pam_oath's single file is always rewritten whole.
    fn reset(&self, logins: Option<usize>) -> Result<(), String> {
        let before = yesterday();
        let old_step = before / PERIOD;
        let touched: Vec<usize> = match logins {
            None => (0..self.users).collect(),
            Some(n) => (0..n.min(self.users))
                .map(|k| user_for(k, self.users))
                .collect(),
        };
        for &i in &touched {
            let n = user_name(i);
            let key = secret(i);
            let state = format!(
                "# twofa state: written at every login, do not edit by hand.\nversion = 1\n\
                 failures = 0\ntotp_last_step = {old_step}\nlast_success_at = {before}\n"
            );
            write_file(
                &self.twofa_storage().join("state").join(format!("{n}.toml")),
                state.as_bytes(),
                0o600,
            )?;
            // google-authenticator's file: secret, then options (google-authenticator -t -d
            // -r 3 -R 30 -w 3 writes the same), with yesterday's login in the state.
            let ga = format!(
                "{}\n\" RATE_LIMIT 3 30 {before}\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE {old_step}\n\
                 \" TOTP_AUTH\n",
                base32(&key)
            );
            write_file(&self.ga_dir().join(&n), ga.as_bytes(), 0o600)?;
            let floor = format!("version = 1\nfailures = 0\ntotp_last_step = {old_step}\n");
            write_file(
                &self.floor_dir().join(format!("{n}.toml")),
                floor.as_bytes(),
                0o600,
            )?;
        }
        // pam_oath: type, user, password ("-": none), key, then the moving factor, last OTP
        // and its time that liboath writes back after each login.
        let mut oath = String::with_capacity(self.users * 120);
        let iso = iso8601(before);
        for i in 0..self.users {
            let key = secret(i);
            let last = hotp(&key, old_step)?;
            let _ = writeln!(
                oath,
                "HOTP/T30/6\t{}\t-\t{}\t{old_step}\t{last:06}\t{iso}L",
                user_name(i),
                hex::encode(&key)
            );
        }
        write_file(&self.oath_file(), oath.as_bytes(), 0o600)?;
        syncfs(&self.dir);
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for pam_oath's users file.
fn iso8601(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Runs and their figures.

#[derive(Debug, Clone, Default)]
struct Stats {
    logins: usize,
    /// Logins that got another PAM result than expected (refused right codes...).
    refused: usize,
    rate: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Stats {
    /// Several rounds of one row as one: logins and refusals summed, and the median round of
    /// rate, p50 and p99 (each separately).
    fn median_of(runs: &[&Stats]) -> Stats {
        let med = |f: fn(&Stats) -> f64| median(&runs.iter().map(|s| f(s)).collect::<Vec<_>>());
        Stats {
            logins: runs.iter().map(|s| s.logins).sum(),
            refused: runs.iter().map(|s| s.refused).sum(),
            rate: med(|s| s.rate),
            p50_us: med(|s| s.p50_us),
            p99_us: med(|s| s.p99_us),
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

/// What runs a probe: strace or callgrind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrap {
    Strace,
    Callgrind,
}

struct Bench {
    exe: PathBuf,
    base: PathBuf,
    /// Fail on any unexpected PAM result (--smoke), instead of counting it.
    strict: bool,
}

struct RunSpec<'a> {
    world: &'a World,
    service: &'a str,
    mode: Mode,
    workers: usize,
    logins: usize,
}

impl Bench {
    fn worker_command(&self, r: &RunSpec, index: usize, start: u64) -> Vec<String> {
        let mut v = vec![
            self.exe.display().to_string(),
            "--worker".into(),
            "--mode".into(),
            r.mode.name().into(),
            "--confdir".into(),
            r.world.confdir.display().to_string(),
            "--service".into(),
            r.service.into(),
            "--users".into(),
            r.world.users.to_string(),
            "--logins".into(),
            r.logins.to_string(),
            "--index".into(),
            index.to_string(),
            "--workers".into(),
            r.workers.to_string(),
            "--start-mono".into(),
            start.to_string(),
        ];
        if r.mode.is_floor() {
            v.push("--floor-dir".into());
            v.push(r.world.floor_dir().display().to_string());
        }
        v
    }

    /// Runs `r` with its workers released together; fails on any unexpected PAM result.
    fn run(&self, r: &RunSpec) -> Result<Stats, String> {
        if r.mode != Mode::Load {
            r.world.reset(Some(r.logins))?;
        }
        let start = mono_ns() + 300_000_000;
        let mut children = Vec::new();
        for i in 0..r.workers {
            let argv = self.worker_command(r, i, start);
            let child = Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("spawning a worker: {e}"))?;
            children.push(child);
        }
        let mut lat = Vec::new();
        let (mut ok, mut refused, mut end_max) = (0usize, 0usize, start);
        let mut errors = Vec::new();
        for child in children {
            let out = child
                .wait_with_output()
                .map_err(|e| format!("worker: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                errors.push(format!("worker exited {}: {text}", out.status));
                continue;
            }
            let mut lines = text.lines();
            let head: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
            let field = |name: &str| -> Result<u64, String> {
                head.iter()
                    .position(|f| *f == name)
                    .and_then(|i| head.get(i + 1))
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("worker output without {name}: {text}"))
            };
            ok += field("ok")? as usize;
            if field("bad")? > 0 {
                refused += field("bad")? as usize;
                eprintln!(
                    "   !! {} {} {} logins got an unexpected PAM result (first user:code {})",
                    field("bad")?,
                    r.service,
                    r.mode.name(),
                    head.last().unwrap_or(&"?")
                );
            }
            end_max = end_max.max(field("end")?);
            if let Some(l) = lines.next() {
                lat.extend(l.split(',').filter_map(|x| x.parse::<u64>().ok()));
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        lat.sort_unstable();
        let secs = (end_max - start) as f64 / 1e9;
        if self.strict && refused > 0 {
            return Err(format!(
                "{refused} {} logins got an unexpected PAM result",
                r.service
            ));
        }
        Ok(Stats {
            logins: ok + refused,
            refused,
            rate: (ok + refused) as f64 / secs,
            p50_us: percentile(&lat, 0.50),
            p99_us: percentile(&lat, 0.99),
        })
    }

    /// Runs one worker (no barrier) under strace or callgrind; returns the raw counts.
    fn probe(&self, r: &RunSpec, wrap: Wrap, tag: &str) -> Result<ProbeCounts, String> {
        if r.mode != Mode::Load {
            r.world.reset(Some(r.logins))?;
        }
        let argv = self.worker_command(r, 0, 0);
        let out_file = self.base.join(format!("probe-{tag}"));
        let mut cmd = match wrap {
            Wrap::Strace => {
                let mut c = Command::new("strace");
                c.arg("-f").arg("-c").arg("-o").arg(&out_file);
                c
            }
            Wrap::Callgrind => {
                let mut c = Command::new("valgrind");
                c.arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", out_file.display()));
                c
            }
        };
        let out = cmd
            .args(&argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("running {wrap:?}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.starts_with(&format!("ok {} bad 0", r.logins)) {
            return Err(format!(
                "{wrap:?} probe of {} failed: {stdout}\n{}",
                r.service,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut c = ProbeCounts::default();
        match wrap {
            Wrap::Strace => {
                let text = std::fs::read_to_string(&out_file).map_err(|e| e.to_string())?;
                for line in text.lines() {
                    let t: Vec<&str> = line.split_whitespace().collect();
                    if t.len() < 5 || t[0].parse::<f64>().is_err() {
                        continue;
                    }
                    let calls: u64 = t[3].parse().unwrap_or(0);
                    match t[t.len() - 1] {
                        "total" => c.syscalls = calls,
                        "fsync" | "fdatasync" | "syncfs" | "sync_file_range" | "msync" => {
                            c.fsyncs += calls
                        }
                        "rename" | "renameat" | "renameat2" => c.renames += calls,
                        _ => {}
                    }
                }
            }
            Wrap::Callgrind => {
                let err = String::from_utf8_lossy(&out.stderr);
                c.instructions = err
                    .lines()
                    .find_map(|l| {
                        let (_, rest) = l.split_once("Collected :")?;
                        rest.trim().parse::<u64>().ok()
                    })
                    .ok_or(format!("no 'Collected' line from callgrind:\n{err}"))?;
            }
        }
        Ok(c)
    }

    /// Per-login marginal counts: (probe with `hi` logins - probe with `lo`) / (hi - lo), so
    /// process start-up and the warm-up are not counted.
    fn per_login(
        &self,
        world: &World,
        service: &str,
        mode: Mode,
        wrap: Wrap,
        lo: usize,
        hi: usize,
    ) -> Result<PerLogin, String> {
        let spec = |logins| RunSpec {
            world,
            service,
            mode,
            workers: 1,
            logins,
        };
        let a = self.probe(&spec(lo), wrap, &format!("{service}-{}-{lo}", mode.name()))?;
        let b = self.probe(&spec(hi), wrap, &format!("{service}-{}-{hi}", mode.name()))?;
        let d = (hi - lo) as f64;
        Ok(ProbeCounts {
            syscalls: b.syscalls.saturating_sub(a.syscalls),
            fsyncs: b.fsyncs.saturating_sub(a.fsyncs),
            renames: b.renames.saturating_sub(a.renames),
            instructions: b.instructions.saturating_sub(a.instructions),
        }
        .scaled(d))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ProbeCounts {
    syscalls: u64,
    fsyncs: u64,
    renames: u64,
    instructions: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct PerLogin {
    syscalls: f64,
    fsyncs: f64,
    renames: f64,
    instructions: f64,
}

impl ProbeCounts {
    fn scaled(self, d: f64) -> PerLogin {
        PerLogin {
            syscalls: self.syscalls as f64 / d,
            fsyncs: self.fsyncs as f64 / d,
            renames: self.renames as f64 / d,
            instructions: self.instructions as f64 / d,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Command line and report.

struct Options {
    users: Vec<usize>,
    logins: usize,
    workers: Vec<usize>,
    modules: Vec<Module>,
    load_iters: usize,
    sshd: bool,
    sshd_logins: usize,
    probes: bool,
    keep: bool,
    smoke: bool,
    rounds: usize,
    markdown: Option<PathBuf>,
    /// `--fleet`: the fleet store rows (see fleet.rs).
    fleet: bool,
    /// Helper sessions per route for the fleet's cost split.
    fleet_sessions: usize,
}

const USAGE: &str = "usage: twofa-bench [--users 1000,10000] [--logins 2000] [--workers 1,2] \
[--modules twofa,google,oath] [--rounds 3] [--load-iters 2000] [--sshd-logins 10] [--no-sshd] [--no-probes] \
[--markdown FILE] [--keep] [--smoke] [--fleet] [--fleet-sessions 20]";

fn list(v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("not a number: {x}"))
        })
        .collect()
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        users: vec![1000, 10_000],
        logins: 2000,
        workers: vec![1, 2],
        modules: ALL_MODULES.to_vec(),
        load_iters: 2000,
        sshd: true,
        sshd_logins: 10,
        probes: true,
        keep: false,
        smoke: false,
        rounds: 3,
        markdown: None,
        fleet: false,
        fleet_sessions: 20,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--users" => o.users = list(&value()?)?,
            "--logins" => o.logins = list(&value()?)?.first().copied().unwrap_or(0),
            "--workers" => o.workers = list(&value()?)?,
            "--load-iters" => o.load_iters = list(&value()?)?.first().copied().unwrap_or(0),
            "--rounds" => o.rounds = list(&value()?)?.first().copied().unwrap_or(0).max(1),
            "--sshd-logins" => o.sshd_logins = list(&value()?)?.first().copied().unwrap_or(0),
            "--modules" => {
                o.modules = value()?
                    .split(',')
                    .map(|m| match m {
                        "twofa" => Ok(Module::Twofa),
                        "google" => Ok(Module::Google),
                        "oath" => Ok(Module::Oath),
                        _ => Err(format!("unknown module {m} (twofa, google, oath)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--no-sshd" => o.sshd = false,
            "--no-probes" => o.probes = false,
            "--keep" => o.keep = true,
            "--markdown" => o.markdown = Some(PathBuf::from(value()?)),
            "--smoke" => o.smoke = true,
            "--fleet" => o.fleet = true,
            "--fleet-sessions" => {
                o.fleet_sessions = list(&value()?)?.first().copied().unwrap_or(0).max(1)
            }
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.smoke {
        o.users = vec![50];
        o.logins = 50;
        o.workers = vec![1];
        o.rounds = 1;
        o.load_iters = 50;
        o.sshd = false;
        o.probes = false;
        o.fleet_sessions = 3;
    }
    if o.users
        .iter()
        .any(|&u| u == 0 || u > 99_999 || u % 7919 == 0)
    {
        return Err("--users: each from 1 to 99999".into());
    }
    if o.workers.iter().any(|&w| w == 0 || w > 64) {
        return Err("--workers: each from 1 to 64".into());
    }
    if o.logins == 0 {
        return Err("--logins must be > 0".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return match parse_worker(&args[1..]).and_then(|w| run_worker(&w)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("twofa-bench worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("twofa-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run_all(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofa-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn mktemp_dir() -> Result<PathBuf, String> {
    let mut template = *b"/tmp/twofa-e2e-bench-XXXXXX\0";
    // SAFETY: a writable NUL-terminated template ending in XXXXXX.
    let p = unsafe { libc::mkdtemp(template.as_mut_ptr() as *mut c_char) };
    if p.is_null() {
        return Err(format!("mkdtemp: {}", std::io::Error::last_os_error()));
    }
    let path = PathBuf::from(
        std::str::from_utf8(&template[..template.len() - 1]).map_err(|e| e.to_string())?,
    );
    mkdir(&path, 0o755)?;
    Ok(path)
}

/// Checks our RFC 6238 codes against oathtool's once (a few users, now).
fn check_codes_with_oathtool() -> Result<String, String> {
    let now = unix_now();
    for i in [0usize, 1, 12_345] {
        let key = secret(i);
        let out = Command::new("oathtool")
            .args(["--totp", "-d", "6", "-s", "30s", "-N"])
            .arg(format!("@{now}"))
            .arg(hex::encode(&key))
            .output()
            .map_err(|e| format!("oathtool: {e} (apt-get install oathtool)"))?;
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ours = format!("{:06}", hotp(&key, now / PERIOD)?);
        if theirs != ours {
            return Err(format!(
                "code mismatch for user {i}: oathtool {theirs}, ours {ours}"
            ));
        }
    }
    Ok("codes agree with oathtool".into())
}

fn so_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "—".into()
    }
}

/// Builds the release module first when run through cargo (`cargo run` sets $CARGO).
fn build_module() -> Result<(), String> {
    if std::env::var_os("TWOFA_MODULE").is_some() {
        return Ok(());
    }
    cargo_build_release(&["pam_twofa"])
}

/// `cargo build --release --locked -p P...` when run through cargo (`cargo run` sets $CARGO);
/// nothing otherwise (the binaries are then whatever the environment names).
pub(crate) fn cargo_build_release(packages: &[&str]) -> Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let shown: Vec<String> = packages.iter().map(|p| format!("-p {p}")).collect();
    eprintln!("== cargo build --release {}", shown.join(" "));
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked"]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let st = cmd
        .current_dir(repo_root())
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("cargo build --release {} failed", shown.join(" ")))
    }
}

struct Cleanup {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        unmount_etc();
        if self.keep {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn run_all(o: &Options) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "run as root: the bench mounts private copies of /etc/passwd and /etc/shadow \
                    in its own mount namespace, and the modules read root-only files"
                .into(),
        );
    }
    // Read the real account files before anything is mounted over them.
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    let shadow = std::fs::read_to_string("/etc/shadow").map_err(|e| e.to_string())?;
    private_mount_namespace()?;
    build_module()?;
    eprintln!("== {}", check_codes_with_oathtool()?);
    let base = mktemp_dir()?;
    let _cleanup = Cleanup {
        dir: base.clone(),
        keep: o.keep,
    };
    overlay_etc(&base)?;
    // Declared after `_cleanup`, so dropped before it: /run and /dev are detached before the
    // directory under them is removed.
    let devlog = devlog::DevLog::start(&base)?;
    let mut modules: Vec<(Module, PathBuf)> = Vec::new();
    for &m in &o.modules {
        match module_path(m) {
            // A copy of pam_twofa: a rebuild in the shared target dir can't swap it mid-run.
            Some(p) if m == Module::Twofa => {
                let copy = base.join("libpam_twofa.so");
                std::fs::copy(&p, &copy).map_err(|e| format!("{}: {e}", p.display()))?;
                eprintln!("== pam_twofa: {} (copied)", p.display());
                modules.push((m, copy));
            }
            Some(p) => modules.push((m, p)),
            None => eprintln!("== {} is not installed: skipped", m.name()),
        }
    }
    if modules.is_empty() {
        return Err("no module to measure".into());
    }
    if o.fleet && !modules.iter().any(|(m, _)| *m == Module::Twofa) {
        return Err("--fleet measures pam_twofa: it must be built and in --modules".into());
    }
    // Declared after `_cleanup`, so dropped before it: the servers stop before their
    // directory is removed and /etc unmounted.
    let mut fleet = if o.fleet {
        Some(fleet::Fleet::start(&base)?)
    } else {
        None
    };
    let mut fleet_report = fleet.as_ref().map(|f| fleet::FleetReport {
        setup: f.setup.clone(),
        ..fleet::FleetReport::default()
    });
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bench = Bench {
        exe,
        base: base.clone(),
        strict: o.smoke,
    };
    // One password for the sshd logins (pam_unix): a SHA-512 crypt hash from openssl.
    let password = format!(
        "pw-{}",
        hex::encode(&secret(unix_now() as usize))[..12].to_owned()
    );
    let hash = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            if let Some(mut i) = c.stdin.take() {
                i.write_all(password.as_bytes())?;
            }
            c.wait_with_output()
        })
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    let hash = if hash.starts_with("$6$") {
        hash
    } else {
        "!".into()
    };

    let mut report = Report::default();
    for (ui, &users) in o.users.iter().enumerate() {
        let t = std::time::Instant::now();
        let world = World::create(&base, users, &modules, &passwd, &shadow, &hash)?;
        eprintln!(
            "== {users} users set up in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        if let (Some(f), Some(r)) = (fleet.as_mut(), fleet_report.as_mut()) {
            r.imports.push((users, f.prepare_world(&world)?));
        }
        let logins = o.logins.min(users);
        for round in 1..=o.rounds {
            eprintln!("   -- round {round}/{}", o.rounds);
            for &workers in &o.workers {
                let mut services: Vec<(String, &str, Mode)> = vec![
                    (FLOOR.into(), "bench-floor", Mode::Floor),
                    (FLOOR_LOOKUP.into(), "bench-floor", Mode::FloorLookup),
                ];
                services.extend(
                    world
                        .modules
                        .iter()
                        .map(|(m, _)| (m.name().to_string(), m.service(), Mode::Right)),
                );
                if fleet.is_some() {
                    services.extend(
                        fleet::Route::logins(o.smoke)
                            .into_iter()
                            .map(|r| (r.row().to_string(), r.service(), Mode::Right)),
                    );
                }
                // Wrong codes in the same rounds as the right ones (one worker, the first user
                // count), so that their ratio is not a comparison of two moments.
                if ui == 0 && workers == 1 {
                    services.extend(
                        world
                            .modules
                            .iter()
                            .map(|(m, _)| (m.name().to_string(), m.service(), Mode::Wrong)),
                    );
                }
                for (name, service, mode) in services {
                    if let (Some(f), true) = (fleet.as_mut(), fleet::is_fleet_row(&name)) {
                        f.reset(&world, Some(logins))?;
                    }
                    let s = bench.run(&RunSpec {
                        world: &world,
                        service,
                        mode,
                        workers,
                        logins,
                    })?;
                    if mode == Mode::Wrong {
                        eprintln!(
                            "   {name:<26} wrong code: p50 {:>8.0} us  p99 {:>8.0} us",
                            s.p50_us, s.p99_us
                        );
                        report.wrong.push((name, s));
                        continue;
                    }
                    eprintln!(
                    "   {name:<26} users {users:>6} workers {workers}: {:>8.0} logins/s  p50 {:>8.0} us  p99 {:>8.0} us",
                    s.rate, s.p50_us, s.p99_us
                );
                    if let (Some(f), true) = (fleet.as_mut(), s.refused > 0) {
                        if let Some(why) = f.diagnose(&world, service) {
                            eprintln!("   !! {name}: one helper session for a refused login's sequence: {why}");
                        }
                    }
                    report.logins.push((name, users, workers, s));
                }
            }
        }
        if ui != 0 {
            continue;
        }
        // Module load: at the first user count, one worker.
        let mut loads: Vec<(String, &str)> = vec![(LOAD_BASE.into(), "bench-floor")];
        loads.extend(
            world
                .modules
                .iter()
                .map(|(m, _)| (m.name().to_string(), m.service())),
        );
        for (name, service) in loads {
            let s = bench.run(&RunSpec {
                world: &world,
                service,
                mode: Mode::Load,
                workers: 1,
                logins: o.load_iters,
            })?;
            eprintln!(
                "   {name:<26} load (pam_start+pam_end): p50 {:>6.0} us  p99 {:>6.0} us",
                s.p50_us, s.p99_us
            );
            report.load.push((name, s));
        }
        let mut objects: Vec<(String, PathBuf)> = Vec::new();
        if let Some(p) = security_dir_module("pam_permit.so") {
            objects.push((LOAD_BASE.into(), p));
        }
        objects.extend(
            world
                .modules
                .iter()
                .map(|(m, p)| (m.name().to_string(), p.clone())),
        );
        report.c_load = c_program_load(&base, &objects, o.load_iters)?;
        if let (Some(f), Some(r)) = (fleet.as_mut(), fleet_report.as_mut()) {
            r.split_users = users;
            r.split = f.split(&world, o.fleet_sessions)?;
            if !o.smoke {
                r.transaction = f.transaction_pool(&world)?;
                for line in &r.transaction {
                    eprintln!("   fleet transaction pool: {line}");
                }
            }
        }
        if world.modules.iter().any(|(m, _)| *m == Module::Twofa) {
            let n = if o.smoke { 5 } else { 20 };
            let w = devlog::probe(&bench, &world, Module::Twofa.service(), &devlog, n)?;
            if let (Some(r), Some(st)) = (&w.reading, &w.stalled) {
                eprintln!(
                    "   pam_twofa log wait (wrong code): p50 {:>6.0} us reader running, {:>6.0} us reader stopped (+{:.0} ms; bound 250 ms), {} of {} lines counted",
                    r.p50_us, st.p50_us, (st.p50_us - r.p50_us) / 1000.0, w.counted, w.logins
                );
            }
            report.log_wait = Some(w);
        }
        if o.probes {
            let mut probes: Vec<(String, &str, Mode)> = vec![
                (FLOOR.into(), "bench-floor", Mode::Floor),
                (FLOOR_LOOKUP.into(), "bench-floor", Mode::FloorLookup),
            ];
            for (m, _) in &world.modules {
                probes.push((m.name().into(), m.service(), Mode::Right));
                probes.push((
                    format!("{} (wrong code)", m.name()),
                    m.service(),
                    Mode::Wrong,
                ));
            }
            for (name, service, mode) in probes {
                let st = bench.per_login(&world, service, mode, Wrap::Strace, 10, 40)?;
                let cg = bench.per_login(&world, service, mode, Wrap::Callgrind, 5, 25)?;
                eprintln!(
                    "   {name:<38} per login: {:>4.1} fsync, {:>4.1} rename, {:>6.1} syscalls, {:>9.0} instructions",
                    st.fsyncs, st.renames, st.syscalls, cg.instructions
                );
                report.probes.push((
                    name,
                    PerLogin {
                        instructions: cg.instructions,
                        ..st
                    },
                ));
            }
        }
        if o.sshd {
            report.sshd = sshd_logins(&world, &password, o.sshd_logins)?;
        }
    }
    for (m, p) in &modules {
        report.sizes.push((m.name().to_string(), so_size(p)));
    }
    report.aggregate();
    report.fleet = fleet_report;
    let md = report.markdown(o, &modules);
    println!("{md}");
    if let Some(path) = &o.markdown {
        std::fs::write(path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// One real sshd keyboard-interactive login per user, per stack (bench/sshd_login.py).
fn sshd_logins(world: &World, password: &str, n: usize) -> Result<Vec<(String, Vec<f64>)>, String> {
    world.reset(Some(n + 1))?;
    let mut stacks = vec![(
        "pam_unix alone".to_string(),
        "auth required pam_unix.so\n".to_string(),
    )];
    for (m, p) in &world.modules {
        stacks.push((
            format!("pam_unix + {}", m.name()),
            format!("auth required pam_unix.so\n{}\n", world.auth_line(*m, p)),
        ));
    }
    let json_str = |s: &str| {
        let mut o = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                '\n' => o.push_str("\\n"),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    };
    let stacks_json: Vec<String> = stacks
        .iter()
        .map(|(n, a)| format!("{{\"name\":{},\"auth\":{}}}", json_str(n), json_str(a)))
        .collect();
    let users_json: Vec<String> = (0..=n.min(world.users - 1))
        .map(|k| {
            let i = user_for(k, world.users);
            format!("[\"{}\",\"{}\"]", user_name(i), base32(&secret(i)))
        })
        .collect();
    let input = format!(
        "{{\"password\":{},\"logins\":{},\"stacks\":[{}],\"users\":[{}]}}",
        json_str(password),
        n.min(world.users - 1),
        stacks_json.join(","),
        users_json.join(",")
    );
    let script = repo_root().join("bench/sshd_login.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    }
    let st = child.wait().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("sshd logins failed ({st}): {out}"));
    }
    // {"name": [s, s, ...], ...}: the names are ours, the values plain numbers.
    let mut res = Vec::new();
    for (name, _) in &stacks {
        let key = json_str(name);
        let at = out.find(&key).ok_or(format!("no {name} in {out}"))?;
        let rest = &out[at + key.len()..];
        let open = rest.find('[').ok_or("bad sshd output")?;
        let close = rest.find(']').ok_or("bad sshd output")?;
        let vals: Vec<f64> = rest[open + 1..close]
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        eprintln!(
            "   sshd {name:<38} median {:>6.1} ms over {} logins",
            median(&vals) * 1000.0,
            vals.len()
        );
        res.push((name.clone(), vals));
    }
    Ok(res)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

#[derive(Default)]
struct Report {
    logins: Vec<(String, usize, usize, Stats)>,
    wrong: Vec<(String, Stats)>,
    load: Vec<(String, Stats)>,
    /// dlopen + dlclose in a C program: (name, p50 µs, p90 µs).
    c_load: Vec<(String, f64, f64)>,
    /// Every run of `logins` and `wrong` before [`Report::aggregate`], in the order run: the
    /// rounds that paired ratios are taken from.
    rounds: Vec<(String, usize, usize, Stats)>,
    probes: Vec<(String, PerLogin)>,
    sshd: Vec<(String, Vec<f64>)>,
    sizes: Vec<(String, u64)>,
    /// `--fleet`: what the fleet part found beside its login rows (which are in `logins`).
    fleet: Option<fleet::FleetReport>,
    /// pam_twofa's log wait with a stalled /dev/log reader.
    log_wait: Option<devlog::LogWait>,
}

impl Report {
    /// One row per (module, users, workers): the median round of rate, p50 and p99 (each
    /// separately), logins and refusals summed.
    fn aggregate(&mut self) {
        let first_users = self.logins.first().map_or(0, |r| r.1);
        self.rounds = self.logins.clone();
        self.rounds.extend(
            self.wrong
                .iter()
                .map(|(n, st)| (format!("{n} (wrong code)"), first_users, 1, st.clone())),
        );
        let mut keys: Vec<(String, usize, usize)> = Vec::new();
        for (n, u, w, _) in &self.logins {
            if !keys.iter().any(|k| k.0 == *n && k.1 == *u && k.2 == *w) {
                keys.push((n.clone(), *u, *w));
            }
        }
        let mut out = Vec::new();
        for (n, u, w) in keys {
            let runs: Vec<&Stats> = self
                .logins
                .iter()
                .filter(|r| r.0 == n && r.1 == u && r.2 == w)
                .map(|r| &r.3)
                .collect();
            out.push((n, u, w, Stats::median_of(&runs)));
        }
        self.logins = out;
        let mut wrong: Vec<(String, Stats)> = Vec::new();
        for (n, _) in &self.wrong {
            if wrong.iter().any(|(w, _)| w == n) {
                continue;
            }
            let runs: Vec<&Stats> = self
                .wrong
                .iter()
                .filter(|r| r.0 == *n)
                .map(|r| &r.1)
                .collect();
            wrong.push((n.clone(), Stats::median_of(&runs)));
        }
        self.wrong = wrong;
    }

    /// p50 of `a` over p50 of `b`, taken round by round (both ran within seconds of each other
    /// in every round), as (median, lowest, highest) over the rounds. The machine's disk
    /// drifts between rounds by more than the differences measured; a ratio within one round
    /// does not see that drift.
    fn paired(&self, a: &str, b: &str, users: usize, workers: usize) -> Option<(f64, f64, f64)> {
        let runs = |n: &str| -> Vec<f64> {
            self.rounds
                .iter()
                .filter(|r| r.0 == n && r.1 == users && r.2 == workers)
                .map(|r| r.3.p50_us)
                .collect()
        };
        let ratios: Vec<f64> = runs(a)
            .iter()
            .zip(runs(b))
            .map(|(x, y)| x / y.max(1e-9))
            .collect();
        if ratios.is_empty() {
            return None;
        }
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        Some((median(&ratios), lo, hi))
    }

    fn login(&self, name: &str, users: usize, workers: usize) -> Option<&Stats> {
        self.logins
            .iter()
            .find(|(n, u, w, _)| n == name && *u == users && *w == workers)
            .map(|(_, _, _, s)| s)
    }

    fn markdown(&self, o: &Options, modules: &[(Module, PathBuf)]) -> String {
        let twofa = Module::Twofa.name();
        let peers: Vec<&str> = modules
            .iter()
            .map(|(m, _)| m.name())
            .filter(|n| *n != twofa)
            .collect();
        let has_twofa = modules.iter().any(|(m, _)| *m == Module::Twofa);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Machine: {} x {}, {}; logins per run {}, median of {} rounds; run {}.\n",
            nproc(),
            cpu_model(),
            disk_desc(),
            o.logins,
            o.rounds,
            iso8601(unix_now())
        );
        // Logins.
        let _ = writeln!(s, "### Logins (right code, a different user each)\n");
        let _ = write!(s, "| module | users | workers | logins (refused) | logins/s | p50 µs | p99 µs | p99/p50 |");
        if has_twofa {
            let _ = write!(s, " twofa/this logins/s | twofa/this p50 |");
        }
        let _ = writeln!(s);
        let _ = write!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        if has_twofa {
            let _ = write!(s, "---:|---:|");
        }
        let _ = writeln!(s);
        // The fleet rows have their own table (fleet::markdown), beside the file rows.
        for (name, users, workers, st) in self.logins.iter().filter(|r| !fleet::is_fleet_row(&r.0))
        {
            let _ = write!(
                s,
                "| {name} | {users} | {workers} | {} ({}) | {:.0} | {:.0} | {:.0} | {:.1} |",
                st.logins,
                st.refused,
                st.rate,
                st.p50_us,
                st.p99_us,
                st.p99_us / st.p50_us.max(1e-9)
            );
            if has_twofa {
                match self.login(twofa, *users, *workers) {
                    Some(t) => {
                        let _ = write!(
                            s,
                            " {} | {} |",
                            ratio(t.rate, st.rate),
                            ratio(t.p50_us, st.p50_us)
                        );
                    }
                    None => {
                        let _ = write!(s, " — | — |");
                    }
                }
            }
            let _ = writeln!(s);
        }
        // Wrong codes and load.
        let _ = writeln!(s, "\n### Wrong code, module load, size\n");
        let _ = writeln!(
            s,
            "| module | wrong code p50 µs | wrong/right p50 | load p50 µs (pam_start+pam_end) | load p99 µs | .so bytes | twofa/this load | twofa/this size |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        let first_users = o.users.first().copied().unwrap_or(0);
        let tw_load = self.load.iter().find(|(n, _)| n == twofa).map(|(_, s)| s);
        let tw_size = self.sizes.iter().find(|(n, _)| n == twofa).map(|(_, s)| *s);
        for (name, l) in &self.load {
            let wrong = self.wrong.iter().find(|(n, _)| n == name).map(|(_, s)| s);
            let right = self.login(name, first_users, 1);
            let size = self.sizes.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
                wrong.map_or("—".into(), |w| format!("{:.0}", w.p50_us)),
                match (wrong, right) {
                    (Some(w), Some(r)) => ratio(w.p50_us, r.p50_us),
                    _ => "—".into(),
                },
                l.p50_us,
                l.p99_us,
                size.map_or("—".into(), |b| b.to_string()),
                tw_load.map_or("—".into(), |t| ratio(t.p50_us, l.p50_us)),
                match (tw_size, size) {
                    (Some(t), Some(b)) => ratio(t as f64, b as f64),
                    _ => "—".into(),
                }
            );
        }
        // Load in a C program.
        if !self.c_load.is_empty() {
            let _ = writeln!(
                s,
                "\n### Module load in a C program (dlopen + dlclose, interleaved; no libgcc_s loaded, as in sshd)\n"
            );
            let _ = writeln!(s, "| object | p50 µs | p90 µs | twofa/this p50 |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            let tw = self.c_load.iter().find(|r| r.0 == twofa).map(|r| r.1);
            for (name, p50, p90) in &self.c_load {
                let shown = if name == LOAD_BASE {
                    "pam_permit.so"
                } else {
                    name.as_str()
                };
                let _ = writeln!(
                    s,
                    "| {shown} | {p50:.0} | {p90:.0} | {} |",
                    tw.map_or("—".into(), |t| ratio(t, *p50))
                );
            }
        }
        if let Some(w) = &self.log_wait {
            if let (Some(r), Some(st)) = (&w.reading, &w.stalled) {
                let _ = writeln!(
                    s,
                    "\n### pam_twofa's log wait: a stalled /dev/log reader (wrong code, one worker, {} logins each)\n",
                    w.logins
                );
                let _ = writeln!(
                    s,
                    "| /dev/log reader | p50 µs | p99 µs | lines counted as lost |"
                );
                let _ = writeln!(s, "|---|---:|---:|---:|");
                let _ = writeln!(s, "| reading | {:.0} | {:.0} | 0 |", r.p50_us, r.p99_us);
                let _ = writeln!(
                    s,
                    "| stopped, queue full | {:.0} | {:.0} | {} of {} |",
                    st.p50_us, st.p99_us, w.counted, w.logins
                );
                let _ = writeln!(
                    s,
                    "\nA stalled reader costs a login {:.0} ms at the median (bound: 250 ms of log wait per login).",
                    (st.p50_us - r.p50_us) / 1000.0
                );
            }
        }
        // Probes.
        if !self.probes.is_empty() {
            let _ = writeln!(
                s,
                "\n### Per login: durability and work (strace -f -c, valgrind --tool=callgrind; marginal: (40 - 10 logins) / 30, (25 - 5) / 20)\n"
            );
            let _ = writeln!(
                s,
                "| what | fsync/fdatasync | renames | syscalls | instructions (Ir) | twofa/this Ir |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
            let tw = self.probes.iter().find(|(n, _)| n == twofa).map(|(_, p)| p);
            for (name, p) in &self.probes {
                let _ = writeln!(
                    s,
                    "| {name} | {:.1} | {:.1} | {:.0} | {:.0} | {} |",
                    p.fsyncs,
                    p.renames,
                    p.syscalls,
                    p.instructions,
                    tw.map_or("—".into(), |t| ratio(t.instructions, p.instructions))
                );
            }
        }
        // sshd.
        if !self.sshd.is_empty() {
            let _ = writeln!(
                s,
                "\n### One real sshd keyboard-interactive login (127.0.0.1, paramiko; connect to authenticated; median)\n"
            );
            let _ = writeln!(
                s,
                "| PAM auth stack | median ms | min ms | max ms | minus pam_unix alone, ms |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|");
            let base = self.sshd.first().map_or(0.0, |(_, v)| median(v));
            for (name, v) in &self.sshd {
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = v.iter().copied().fold(0.0, f64::max);
                let _ = writeln!(
                    s,
                    "| {name} | {:.1} | {:.1} | {:.1} | {:+.1} |",
                    median(v) * 1000.0,
                    min * 1000.0,
                    max * 1000.0,
                    (median(v) - base) * 1000.0
                );
            }
        }
        // Targets.
        if has_twofa {
            let _ = writeln!(s, "\n### Targets (pam_twofa)\n");
            for line in self.targets(o, &peers) {
                let _ = writeln!(s, "- {line}");
            }
        }
        if let Some(f) = &self.fleet {
            fleet::markdown(&mut s, f, &self.logins);
        }
        s
    }

    fn targets(&self, o: &Options, peers: &[&str]) -> Vec<String> {
        let twofa = Module::Twofa.name();
        let mut out = Vec::new();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let u0 = o.users.first().copied().unwrap_or(0);
        let shown = |(m, lo, hi): (f64, f64, f64)| format!("{m:.2}x (rounds {lo:.2}–{hi:.2})");
        for &u in &o.users {
            for (floor, what) in [
                (
                    FLOOR,
                    "a successful login within 1.2x of the floor (pam_permit + one durable write)",
                ),
                (
                    FLOOR_LOOKUP,
                    "the same beside the floor + getpwnam (the account lookup, paid to NSS)",
                ),
            ] {
                if let Some(r) = self.paired(twofa, floor, u, 1) {
                    out.push(format!(
                        "{}: {what}, {u} users: p50 twofa / {floor}, per round: {}",
                        verdict(r.0 <= 1.2),
                        shown(r)
                    ));
                }
            }
        }
        if peers.contains(&Module::Google.name()) {
            for &w in &o.workers {
                for &u in &o.users {
                    if let (Some(t), Some(g)) = (
                        self.login(twofa, u, w),
                        self.login(Module::Google.name(), u, w),
                    ) {
                        out.push(format!(
                            "{}: logins/s at least google-authenticator's ({u} users, {w} workers): {:.0} vs {:.0}",
                            verdict(t.rate >= g.rate),
                            t.rate,
                            g.rate
                        ));
                    }
                }
            }
        }
        if let Some(r) = self.paired(&format!("{twofa} (wrong code)"), twofa, u0, 1) {
            out.push(format!(
                "{}: a wrong code no slower than a right one: p50 wrong / right, per round: {}",
                verdict(r.0 <= 1.05),
                shown(r)
            ));
        }
        if let (Some(&lo), Some(&hi)) = (o.users.first(), o.users.last()) {
            if lo != hi {
                for &w in &o.workers {
                    if let (Some(a), Some(b)) = (self.login(twofa, lo, w), self.login(twofa, hi, w))
                    {
                        let r = b.p50_us / a.p50_us;
                        out.push(format!(
                            "{}: cost independent of the number of enrolled users ({w} workers): p50 {hi} users / {lo} users = {r:.2}",
                            verdict(r <= 1.15),
                        ));
                        // The bench's accounts grow with its users: /etc/passwd has `hi`
                        // lines in the second world. Divide by the floor that looks the
                        // account up, measured in the same worlds, to see twofa's own part.
                        if let (Some(fa), Some(fb)) = (
                            self.paired(twofa, FLOOR_LOOKUP, lo, w),
                            self.paired(twofa, FLOOR_LOOKUP, hi, w),
                        ) {
                            let r = fb.0 / fa.0;
                            out.push(format!(
                                "{}: the same beside the account lookup ({w} workers): (twofa / floor + getpwnam) at {hi} users over at {lo} users = {r:.2}",
                                verdict(r <= 1.15),
                            ));
                        }
                    }
                }
            }
        }
        for (name, u, w, s) in &self.logins {
            if name == twofa {
                out.push(format!(
                    "{}: p99 under 3x p50 ({u} users, {w} workers): {:.1}x",
                    verdict(s.p99_us < 3.0 * s.p50_us),
                    s.p99_us / s.p50_us
                ));
            }
        }
        let load = |n: &str| {
            self.load
                .iter()
                .find(|(x, _)| x == n)
                .map(|(_, s)| s.p50_us)
        };
        if let (Some(t), Some(g)) = (load(twofa), load(Module::Google.name())) {
            out.push(format!(
                "{}: module load within 2x of google-authenticator's: {t:.0} vs {g:.0} µs = {:.2}x",
                verdict(t <= 2.0 * g),
                t / g
            ));
        }
        let c_load = |n: &str| self.c_load.iter().find(|r| r.0 == n).map(|r| r.1);
        if let (Some(t), Some(g)) = (c_load(twofa), c_load(Module::Google.name())) {
            out.push(format!(
                "{}: the same in a C program (dlopen + dlclose): {t:.0} vs {g:.0} µs = {:.2}x",
                verdict(t <= 2.0 * g),
                t / g
            ));
        }
        if let Some((_, b)) = self.sizes.iter().find(|(n, _)| n == twofa) {
            out.push(format!(
                "{}: .so under 1 MiB: {b} bytes ({:.2} MiB)",
                verdict(*b < 1 << 20),
                *b as f64 / (1u64 << 20) as f64
            ));
        }
        out
    }
}

fn disk_desc() -> String {
    // The file system of /tmp and the device behind it.
    let out = Command::new("findmnt")
        .args(["-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", "/tmp"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut parts = out.split_whitespace();
    let (src, fs) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
    let dev = src.rsplit('/').next().unwrap_or("");
    let rota = std::fs::read_to_string(format!("/sys/block/{dev}/queue/rotational"))
        .map(|r| {
            if r.trim() == "0" {
                "non-rotational"
            } else {
                "rotational"
            }
        })
        .unwrap_or("?");
    format!("/tmp on {src} ({fs}, {rota})")
}
