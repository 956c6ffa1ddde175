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
//!
//! Modules: `options` (the command line), `codes` (codes, secrets, names, clocks),
//! `namespace` (the private mount namespace and /etc overlay), `setup` (each module's users,
//! stores and PAM services), `worker` (one process's logins through twofa-pam-client),
//! `runs` (runs, probes, module load, sshd logins), `oracle` (the time of a failed password,
//! by name), `stats`, `report`, `devlog` (the namespace's /dev/log) and `fleet` (the fleet
//! rows).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use twofa_core::hex;

use crate::codes::{check_codes_with_oathtool, secret, unix_now};
use crate::namespace::{mktemp_dir, overlay_etc, private_mount_namespace, unmount_etc};
use crate::options::{parse_options, Options, USAGE};
use crate::report::{so_size, Report};
use crate::runs::{c_program_load, sshd_logins, Bench, RunSpec, Wrap, LOAD_BASE};
use crate::setup::{module_path, repo_root, security_dir_module, Module, World};
use crate::stats::PerLogin;
use crate::worker::{parse_worker, run_worker, Mode, FLOOR, FLOOR_LOOKUP};

mod codes;
mod devlog;
mod fleet;
mod namespace;
mod options;
mod oracle;
mod report;
mod runs;
mod setup;
mod stats;
mod worker;

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
            // Timing before the password: a few logins in --smoke (results checked, no timing
            // asserted), 100 per name per round otherwise.
            let (rounds, each) = if o.smoke { (1, 5) } else { (o.rounds, 100) };
            report.oracle = oracle::probe(&bench, &world, rounds, each)?;
            for row in &report.oracle {
                let q: Vec<String> = (0..3)
                    .map(|i| {
                        let (lo, mid, hi) = row.quartiles(i);
                        format!("{} {mid:.0} us ({lo:.0}-{hi:.0})", oracle::LABELS[i])
                    })
                    .collect();
                eprintln!(
                    "   pam_twofa after a failed password, {}: {}; spread {:.2}",
                    row.stack,
                    q.join(", "),
                    row.spread()
                );
            }
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
