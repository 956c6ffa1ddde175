//! `--fleet`: pam_twofa with the fleet store (`[store] kind = "postgres"`), measured in the same
//! run, with the same users and logins, as pam_twofa with files.
//!
//! The bench starts its own throwaway servers, on 127.0.0.1 only, in its temporary directory:
//!
//! - PostgreSQL 15 (Debian's `/usr/lib/postgresql/15/bin`, `TWOFA_PG_BIN` to override), run as
//!   the `postgres` user, TLS on with a server certificate from a CA made here with openssl,
//!   role `twofa` with a SCRAM password, `fsync`, `synchronous_commit` and `full_page_writes` at
//!   their durable defaults: a login's COMMIT waits for its WAL flush, as in production;
//! - PgBouncer (`/usr/sbin/pgbouncer`), as `postgres`, TLS to clients with a certificate from
//!   the same CA, SCRAM (the auth file holds the role's SCRAM secret, read from `pg_authid`, so
//!   PgBouncer logs into PostgreSQL with the client's own proof), to PostgreSQL over its Unix
//!   socket. Two pools: `twofa` (`pool_mode = session`) and `twofa_tx` (`pool_mode =
//!   transaction`, `pool_size = 1`, so that concurrent helpers take turns on one server
//!   connection: each transaction may run where another helper's last one ran).
//!
//! The helper and twofa-enroll are the workspace's release builds, copied (like the module) so
//! a rebuild in the shared target directory can't swap them mid-run. Enrollments reach the
//! store the way an admin's do: the World's enrollment files (the same users and secrets as the
//! file rows) are imported with `twofa-enroll store import`.
//!
//! Everything started here is stopped when [`Fleet`] is dropped (on success, on error, and by
//! the kernel if the bench itself is killed: the daemons get a parent-death signal).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use twofa_core::hex;

use crate::codes::{unix_now, user_name, PERIOD, UID_BASE};
use crate::setup::{mkdir, repo_root, write_file, Module, World};
use crate::stats::{median, ratio, Stats};
use crate::worker::user_for;

/// How a fleet login reaches PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Straight to PostgreSQL, TLS verify-full (the production setting without a pooler).
    Direct,
    /// Through PgBouncer's session pool, TLS to PgBouncer.
    Session,
    /// Through PgBouncer's transaction pool (one server connection), TLS to PgBouncer.
    Transaction,
    /// Cost split only: straight to PostgreSQL without TLS (SCRAM still).
    DirectNoTls,
    /// Cost split only: straight to PostgreSQL, neither TLS nor a password (`trust`).
    DirectTrust,
}

impl Route {
    /// Routes measured as login rows (the transaction pool only outside `--smoke`).
    pub(crate) fn logins(smoke: bool) -> Vec<Route> {
        if smoke {
            vec![Route::Direct, Route::Session]
        } else {
            vec![Route::Direct, Route::Session, Route::Transaction]
        }
    }

    /// Columns of the cost split.
    const SPLIT: [Route; 5] = [
        Route::Direct,
        Route::DirectNoTls,
        Route::DirectTrust,
        Route::Session,
        Route::Transaction,
    ];

    /// The row name in the logins table.
    pub(crate) fn row(self) -> &'static str {
        match self {
            Route::Direct => "pam_twofa fleet: direct, TLS",
            Route::Session => "pam_twofa fleet: PgBouncer session pool, TLS",
            Route::Transaction => "pam_twofa fleet: PgBouncer transaction pool, TLS",
            Route::DirectNoTls => "pam_twofa fleet: direct, no TLS",
            Route::DirectTrust => "pam_twofa fleet: direct, no TLS, trust",
        }
    }

    /// A short column title for the cost split.
    fn column(self) -> &'static str {
        match self {
            Route::Direct => "direct, TLS + SCRAM",
            Route::Session => "PgBouncer session, TLS + SCRAM",
            Route::Transaction => "PgBouncer transaction, TLS + SCRAM",
            Route::DirectNoTls => "direct, SCRAM, no TLS",
            Route::DirectTrust => "direct, no TLS, no password",
        }
    }

    /// The PAM service of the route's login rows.
    pub(crate) fn service(self) -> &'static str {
        match self {
            Route::Direct => "bench-fleet-direct",
            Route::Session => "bench-fleet-session",
            Route::Transaction => "bench-fleet-transaction",
            Route::DirectNoTls => "bench-fleet-direct-notls",
            Route::DirectTrust => "bench-fleet-direct-trust",
        }
    }

    fn tag(self) -> &'static str {
        self.service().trim_start_matches("bench-fleet-")
    }
}

/// Whether a row name is one of the fleet rows (they get their own table).
pub(crate) fn is_fleet_row(name: &str) -> bool {
    name.starts_with("pam_twofa fleet")
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// A server started by the bench, stopped when dropped: `stop` signal, up to 10 s, then
/// SIGQUIT, then SIGKILL, always reaped.
#[derive(Debug)]
struct Daemon {
    name: &'static str,
    child: Child,
    stop: libc::c_int,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` as `owner`, its stdout and stderr to `log`. The kernel sends it
    /// `death_signal` if the bench dies without dropping it.
    fn spawn(
        name: &'static str,
        mut cmd: Command,
        owner: Owner,
        log: &Path,
        stop: libc::c_int,
        death_signal: libc::c_int,
    ) -> Result<Daemon, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        owner.apply(&mut cmd);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl(2) is async-signal-safe and the closure touches no memory of the
        // parent. It runs after the uid change (which would clear it), before exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Daemon {
            name,
            child,
            stop,
            log: log.to_path_buf(),
        })
    }

    /// An error if the daemon has exited, with the end of its log.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid; it is not reaped yet, so not reused.
            unsafe { libc::kill(pid, sig) };
        }
    }

    fn wait_for(&mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if Instant::now() >= until => return false,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.signal(self.stop);
        if self.wait_for(Duration::from_secs(10)) {
            return;
        }
        eprintln!(
            "   !! {} did not stop within 10 s: SIGQUIT, then SIGKILL",
            self.name
        );
        self.signal(libc::SIGQUIT);
        if !self.wait_for(Duration::from_secs(2)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last ~3000 bytes of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = text.len().saturating_sub(3000);
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// The account the servers run as (`postgres`): they refuse to run as root.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl Owner {
    fn postgres() -> Result<Owner, String> {
        let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
        passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[0] == "postgres")
                    .then(|| {
                        Some(Owner {
                            uid: f[2].parse().ok()?,
                            gid: f[3].parse().ok()?,
                        })
                    })
                    .flatten()
            })
            .ok_or_else(|| "no postgres account (apt-get install postgresql-15)".to_string())
    }

    /// Runs `cmd` as this account (std drops the supplementary groups too).
    fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }

    /// Copies `src` to `dst` owned by this account, 0600 (keys and certificates a server
    /// reads: PostgreSQL refuses a key others can read).
    fn copy(self, src: &Path, dst: &Path) -> Result<(), String> {
        std::fs::copy(src, dst).map_err(|e| format!("{}: {e}", src.display()))?;
        self.chown(dst)?;
        std::fs::set_permissions(dst, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", dst.display()))
    }

    fn chown(self, path: &Path) -> Result<(), String> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))
    }
}

/// Runs a command to completion; its stdout, or an error with both outputs.
fn run(what: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A TCP port on 127.0.0.1 nobody listens on right now (the kernel picks it).
fn free_port() -> Result<u16, String> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Random hex from the kernel (database passwords).
fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(hex::encode(&buf))
}

// ---------------------------------------------------------------------------------------------
// Binaries.

/// The helper and the CLI, copied into the bench's directory.
#[derive(Debug)]
struct Bins {
    helper: PathBuf,
    enroll: PathBuf,
}

/// Builds twofa-store and twofa-enroll when run through cargo (as `build_module` does for the
/// module), unless both are given by `TWOFA_STORE_HELPER` and `TWOFA_ENROLL`.
fn build_bins() -> Result<(), String> {
    if std::env::var_os("TWOFA_STORE_HELPER").is_some()
        && std::env::var_os("TWOFA_ENROLL").is_some()
    {
        return Ok(());
    }
    crate::cargo_build_release(&["twofa-store", "twofa-enroll"])
}

fn copy_bins(dir: &Path) -> Result<Bins, String> {
    let pick = |var: &str, name: &str| {
        std::env::var_os(var).map_or_else(
            || repo_root().join("target/release").join(name),
            PathBuf::from,
        )
    };
    let mut copies = Vec::new();
    for (var, name) in [
        ("TWOFA_STORE_HELPER", "twofa-store"),
        ("TWOFA_ENROLL", "twofa-enroll"),
    ] {
        let src = pick(var, name);
        if !src.is_file() {
            return Err(format!(
                "{}: not built (cargo build --release -p {name}, or set {var})",
                src.display()
            ));
        }
        let dst = dir.join(name);
        std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
        std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", dst.display()))?;
        eprintln!("== {name}: {} (copied)", src.display());
        copies.push(dst);
    }
    let enroll = copies.pop().ok_or("no twofa-enroll")?;
    let helper = copies.pop().ok_or("no twofa-store")?;
    Ok(Bins { helper, enroll })
}

// ---------------------------------------------------------------------------------------------
// The servers.

/// PostgreSQL, PgBouncer, the PKI, the store settings of every route, and the binaries.
/// Field order is drop order: PgBouncer stops before PostgreSQL.
#[derive(Debug)]
pub(crate) struct Fleet {
    pgbouncer: Daemon,
    postgres: Daemon,
    dir: PathBuf,
    pg_bin: PathBuf,
    owner: Owner,
    sockdir: PathBuf,
    pg_port: u16,
    bins: Bins,
    /// Server versions and durability settings, for the report.
    pub(crate) setup: String,
}

impl Fleet {
    /// Starts everything under `base/fleet`; nothing is left running if this fails.
    pub(crate) fn start(base: &Path) -> Result<Fleet, String> {
        let pg_bin = std::env::var_os("TWOFA_PG_BIN").map_or_else(
            || PathBuf::from("/usr/lib/postgresql/15/bin"),
            PathBuf::from,
        );
        for tool in ["initdb", "postgres", "psql"] {
            if !pg_bin.join(tool).is_file() {
                return Err(format!(
                    "{}: missing (apt-get install postgresql-15, or set TWOFA_PG_BIN)",
                    pg_bin.join(tool).display()
                ));
            }
        }
        if !Path::new(PGBOUNCER).is_file() {
            return Err(format!("{PGBOUNCER}: missing (apt-get install pgbouncer)"));
        }
        let owner = Owner::postgres()?;
        build_bins()?;
        let t = Instant::now();
        let dir = base.join("fleet");
        mkdir(&dir, 0o755)?;
        let bin_dir = dir.join("bin");
        mkdir(&bin_dir, 0o755)?;
        let bins = copy_bins(&bin_dir)?;
        let pki = Pki::create(&dir.join("pki"))?;
        let (postgres, pg) = start_postgres(&dir, &pg_bin, owner, &pki)?;
        let (pgbouncer, pgb_port, pgb_version) = start_pgbouncer(&dir, owner, &pki, &pg)?;
        write_settings(&dir, &pki, pg.port, pgb_port, &pg.password)?;
        let fleet = Fleet {
            pgbouncer,
            postgres,
            dir,
            pg_bin,
            owner,
            sockdir: pg.sockdir,
            pg_port: pg.port,
            bins,
            setup: format!("PostgreSQL {}; {pgb_version}", pg.setup),
        };
        let init = run(
            "twofa-store init",
            Command::new(&fleet.bins.helper)
                .arg("init")
                .arg("--settings")
                .arg(settings_path(&fleet.dir, Route::Direct)),
        )?;
        eprintln!("== twofa-store init: {}", init.trim().replace('\n', "; "));
        for route in Route::SPLIT {
            let out = fleet.check(route)?;
            eprintln!("   twofa-store check ({}): {}", route.column(), out.trim());
        }
        eprintln!(
            "== fleet: {}; PostgreSQL on 127.0.0.1:{}, PgBouncer on 127.0.0.1:{pgb_port}; ready in {:.1} s",
            fleet.setup,
            fleet.pg_port,
            t.elapsed().as_secs_f64()
        );
        Ok(fleet)
    }

    fn admin(&self) -> Admin<'_> {
        Admin {
            pg_bin: &self.pg_bin,
            owner: self.owner,
            sockdir: &self.sockdir,
            port: self.pg_port,
            cwd: &self.dir,
        }
    }

    /// An error if a server has stopped (with its log), so a run fails with the cause.
    fn check_alive(&mut self) -> Result<(), String> {
        self.postgres.check_alive()?;
        self.pgbouncer.check_alive()
    }

    /// `twofa-store check` for a route: its output line, or its error.
    fn check(&self, route: Route) -> Result<String, String> {
        run(
            &format!("twofa-store check ({})", route.column()),
            Command::new(&self.bins.helper)
                .arg("check")
                .arg("--settings")
                .arg(settings_path(&self.dir, route)),
        )
    }

    /// Points the world at the store: a policy and a PAM service per route, and the world's
    /// users (only them) enrolled in the store by `twofa-enroll store import`. Returns the
    /// import's wall time in seconds.
    pub(crate) fn prepare_world(&mut self, world: &World) -> Result<f64, String> {
        self.check_alive()?;
        let module = world
            .modules
            .iter()
            .find(|(m, _)| *m == Module::Twofa)
            .map(|(_, p)| p.clone())
            .ok_or("--fleet measures pam_twofa: add twofa to --modules")?;
        let files_policy = std::fs::read_to_string(world.twofa_config())
            .map_err(|e| format!("{}: {e}", world.twofa_config().display()))?;
        for route in Route::SPLIT {
            let policy = self.policy_path(world, route);
            let text = format!(
                "{files_policy}\n[store]\nkind = \"postgres\"\nhelper = \"{}\"\nsettings = \"{}\"\n\
                 timeout_ms = 3000\n",
                self.bins.helper.display(),
                settings_path(&self.dir, route).display()
            );
            write_file(&policy, text.as_bytes(), 0o644)?;
            let line = format!(
                "auth required {} config={}\n",
                module.display(),
                policy.display()
            );
            write_file(&world.confdir.join(route.service()), line.as_bytes(), 0o644)?;
        }
        self.admin().sql(
            "twofa",
            "TRUNCATE twofa_enrollments, twofa_state, twofa_disabled",
        )?;
        let t = Instant::now();
        let out = run(
            "twofa-enroll store import",
            Command::new(&self.bins.enroll)
                .arg("--config")
                .arg(self.policy_path(world, Route::Direct))
                .args(["store", "import"]),
        )?;
        let secs = t.elapsed().as_secs_f64();
        let count = self
            .admin()
            .sql("twofa", "SELECT count(*) FROM twofa_enrollments")?;
        if count.trim() != world.users.to_string() {
            return Err(format!(
                "after import the store holds {} enrollments, not {}; import said: {}",
                count.trim(),
                world.users,
                out.lines().last().unwrap_or("")
            ));
        }
        eprintln!(
            "   fleet: {} users imported in {secs:.1} s ({})",
            world.users,
            out.lines().last().unwrap_or("").trim()
        );
        self.reset(world, None)?;
        Ok(secs)
    }

    fn policy_path(&self, world: &World, route: Route) -> PathBuf {
        world.dir.join(format!("twofa-fleet-{}.toml", route.tag()))
    }

    /// Puts the store state of the users the first `logins` logins use (all: `None`) back to
    /// "last login yesterday", as `World::reset` does for the files; then VACUUM and CHECKPOINT,
    /// so neither dead rows nor dirty pages of the reset land in the measurement.
    pub(crate) fn reset(&mut self, world: &World, logins: Option<usize>) -> Result<(), String> {
        self.check_alive()?;
        let before = unix_now() - 86_400;
        let old_step = before / PERIOD;
        let state = format!(
            "# twofa state: written at every login, do not edit by hand.\nversion = 1\n\
             failures = 0\ntotp_last_step = {old_step}\nlast_success_at = {before}\n"
        );
        let names: Vec<String> = match logins {
            None => (0..world.users).map(user_name).collect(),
            Some(n) => (0..n.min(world.users))
                .map(|k| user_name(user_for(k, world.users)))
                .collect(),
        };
        // Our names are [a-z0-9-]: safe between quotes. The state between dollar quotes.
        let list = names
            .iter()
            .map(|n| format!("('{n}')"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "INSERT INTO twofa_state (account, state, updated_at)\n\
             SELECT v.account, $st${state}$st$, {before} FROM (VALUES {list}) AS v(account)\n\
             ON CONFLICT (account) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at;\n\
             VACUUM twofa_state;\nCHECKPOINT;\n"
        );
        self.admin().sql("twofa", &sql).map(|_| ())
    }

    /// One helper session as the module runs it for a login (`enrollment`, `state`,
    /// `accept_step`, end of input), timed from the spawn: the reply times, the exit time, and
    /// the replies. Over a socketpair like the module's, with the module's 3 s deadline.
    fn session(&self, route: Route, user: usize) -> Result<Session, String> {
        let name = user_name(user);
        let account = format!(
            "x{} {} {UID_BASE}",
            hex::encode(name.as_bytes()),
            UID_BASE + user as u64
        );
        let now = unix_now();
        // As the module sends them (twofa-core's `wire`, store protocol 2): the protocol line
        // goes with the first request, in one write, and is answered first.
        let requests = [
            format!("protocol 2\nenrollment {account}\n"),
            format!("state {account}\n"),
            format!("update {account} v1 accept_step {} {now}\n", now / PERIOD),
        ];
        let (mut ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let out = theirs.try_clone().map_err(|e| format!("socket: {e}"))?;
        let t0 = Instant::now();
        let mut child = Command::new(&self.bins.helper)
            .arg("serve")
            .arg("--settings")
            .arg(settings_path(&self.dir, route))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(out)))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bins.helper.display()))?;
        let result: Result<(Vec<f64>, Vec<String>), String> = (|| {
            ours.set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(|e| e.to_string())?;
            let mut times = Vec::new();
            let mut replies = Vec::new();
            let mut pending = Vec::new();
            for (i, req) in requests.iter().enumerate() {
                ours.write_all(req.as_bytes())
                    .map_err(|e| format!("writing to the helper: {e}"))?;
                if i == 0 {
                    let hello = read_line(&mut ours, &mut pending)?;
                    if hello != "ok protocol 2" {
                        return Err(format!(
                            "the helper refused store protocol 2: {}",
                            decode_reply(&hello)
                        ));
                    }
                }
                let line = read_line(&mut ours, &mut pending)?;
                times.push(t0.elapsed().as_secs_f64() * 1000.0);
                replies.push(decode_reply(&line));
            }
            Ok((times, replies))
        })();
        let _ = ours.shutdown(std::net::Shutdown::Write);
        let exited = wait_exit(&mut child, Duration::from_secs(3));
        let end = t0.elapsed().as_secs_f64() * 1000.0;
        let (times, replies) = result?;
        if !exited {
            return Err(format!(
                "twofa-store serve ({}) did not exit within 3 s of its end of input",
                route.column()
            ));
        }
        Ok(Session {
            times,
            end,
            replies,
        })
    }

    /// Where a fleet login's time goes, per route: `n` sessions each, medians, with the routes
    /// interleaved (session k of every route, then k + 1...) so that a busy moment of a shared
    /// machine lands on all of them alike. Every session has a user of its own (`n` x routes
    /// users, reset first), so each `accept_step` is a first use of its step, as in a login.
    /// Also the helper alone (no request) and `twofa-store check`, each a process of its own.
    pub(crate) fn split(&mut self, world: &World, n: usize) -> Result<Vec<SplitColumn>, String> {
        let routes = Route::SPLIT;
        let n = n.clamp(1, (world.users / routes.len()).max(1));
        self.reset(world, Some(n * routes.len()))?;
        // Per route, per phase: the samples (phases as in `markdown`).
        let mut samples: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 7]; routes.len()];
        for k in 0..n {
            for (r, &route) in routes.iter().enumerate() {
                let rows = &mut samples[r];
                // The helper alone: settings and key read, end of input at once, exit.
                let t = Instant::now();
                let st = Command::new(&self.bins.helper)
                    .arg("serve")
                    .arg("--settings")
                    .arg(settings_path(&self.dir, route))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map_err(|e| format!("{}: {e}", self.bins.helper.display()))?;
                if !st.success() {
                    return Err(format!("twofa-store serve with no input exited {st}"));
                }
                rows[0].push(t.elapsed().as_secs_f64() * 1000.0);
                let user = user_for(k * routes.len() + r, world.users);
                let s = self.session(route, user)?;
                let ok = s.replies.first().is_some_and(|r| r.starts_with("ok x"))
                    && s.replies.get(1).is_some_and(|r| r.starts_with("ok x"))
                    && s.replies.get(2).is_some_and(|r| r == "ok v1 step accepted");
                if !ok {
                    return Err(format!(
                        "a helper session ({}, {}) got an unexpected reply: {}",
                        route.column(),
                        user_name(user),
                        s.replies.join(" | ")
                    ));
                }
                let at = |i: usize| s.times.get(i).copied().unwrap_or(0.0);
                rows[1].push(at(0));
                rows[2].push(at(1) - at(0));
                rows[3].push(at(2) - at(1));
                rows[4].push(s.end - at(2));
                rows[5].push(s.end);
                let t = Instant::now();
                self.check(route)?;
                rows[6].push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let mut columns = Vec::new();
        for (route, rows) in routes.into_iter().zip(samples) {
            let medians: Vec<f64> = rows.iter().map(|v| median(v)).collect();
            eprintln!(
                "   fleet split {:<34} start {:>5.1}  1st {:>5.1}  2nd {:>5.1}  3rd {:>5.1}  exit {:>5.1}  session {:>5.1}  check {:>5.1} ms",
                route.column(),
                medians[0],
                medians[1],
                medians[2],
                medians[3],
                medians[4],
                medians[5],
                medians[6]
            );
            columns.push(SplitColumn {
                route,
                medians,
                sessions: n,
            });
        }
        Ok(columns)
    }

    /// For a fleet row with refused logins: the replies of one helper session that runs a
    /// login's store operations on that route, so the report says why (the module's own log
    /// line goes to syslog, which the bench does not read). `None` for a non-fleet service.
    pub(crate) fn diagnose(&mut self, world: &World, service: &str) -> Option<String> {
        let route = Route::SPLIT.into_iter().find(|r| r.service() == service)?;
        let session = self
            .reset(world, Some(1))
            .and_then(|()| self.session(route, user_for(0, world.users)));
        Some(match session {
            Ok(s) => s.replies.join(" | "),
            Err(e) => e,
        })
    }

    /// `pool_mode = transaction`: `twofa-store init` and `check` through the transaction pool,
    /// and one login's session, verbatim. (The login rows of that route come from the runs.)
    pub(crate) fn transaction_pool(&mut self, world: &World) -> Result<Vec<String>, String> {
        self.check_alive()?;
        let mut found = Vec::new();
        let route = Route::Transaction;
        for word in ["init", "check"] {
            let out = Command::new(&self.bins.helper)
                .arg(word)
                .arg("--settings")
                .arg(settings_path(&self.dir, route))
                .output()
                .map_err(|e| format!("{}: {e}", self.bins.helper.display()))?;
            found.push(format!(
                "`twofa-store {word}` through the transaction pool: exit {}, `{}`",
                out.status.code().map_or("signal".into(), |c| c.to_string()),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
                .trim()
                .replace('\n', "; ")
            ));
        }
        self.reset(world, Some(1))?;
        let s = self.session(route, user_for(0, world.users))?;
        let short: Vec<String> = s
            .replies
            .iter()
            .map(|r| match r.strip_prefix("ok x") {
                Some(_) => "ok (text)".to_string(),
                None => r.clone(),
            })
            .collect();
        found.push(format!(
            "one login's helper session (enrollment, state, accept_step): {}",
            short.join(", ")
        ));
        Ok(found)
    }
}

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// What the rest of the setup needs to know about the running PostgreSQL.
#[derive(Debug)]
struct PgInfo {
    sockdir: PathBuf,
    port: u16,
    /// Role `twofa`'s password (random), and its SCRAM secret as stored by the server.
    password: String,
    scram: String,
    /// Version and durability settings, as the server reports them.
    setup: String,
}

/// initdb (without syncing its own files: setup speed only; the server's fsync stays on), TLS
/// with the bench's certificate, SCRAM, 127.0.0.1 on a free port and a private socket
/// directory; roles `twofa` (password) and `twofa_trust` (cost split only), database `twofa`.
fn start_postgres(
    dir: &Path,
    pg_bin: &Path,
    owner: Owner,
    pki: &Pki,
) -> Result<(Daemon, PgInfo), String> {
    let pg_dir = dir.join("pg");
    let sockdir = dir.join("sock");
    for d in [&pg_dir, &sockdir] {
        mkdir(d, 0o700)?;
        owner.chown(d)?;
    }
    let data = pg_dir.join("data");
    let mut initdb = Command::new(pg_bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth-local=peer", "--auth-host=reject"])
        .args(["-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        .current_dir(&pg_dir);
    owner.apply(&mut initdb);
    run("initdb", &mut initdb)?;
    owner.copy(&pki.server_crt, &data.join("server.crt"))?;
    owner.copy(&pki.server_key, &data.join("server.key"))?;
    let port = free_port()?;
    let conf = format!(
        "\n# twofa-bench --fleet. fsync, synchronous_commit, full_page_writes: defaults (on).\n\
         listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
         ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
         password_encryption = 'scram-sha-256'\n",
        sockdir.display()
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut f| f.write_all(conf.as_bytes()))
        .map_err(|e| format!("postgresql.conf: {e}"))?;
    // The hosts: TLS + SCRAM only. PgBouncer: the Unix socket, SCRAM. The two `hostnossl`
    // lines serve only the cost split (what TLS and SCRAM cost), never a login row: the
    // helper with tls = "verify-full" never tries without TLS.
    let hba = "local     all    postgres                 peer\n\
               local     twofa  twofa                    scram-sha-256\n\
               hostssl   twofa  twofa       127.0.0.1/32 scram-sha-256\n\
               hostnossl twofa  twofa       127.0.0.1/32 scram-sha-256\n\
               hostnossl twofa  twofa_trust 127.0.0.1/32 trust\n";
    write_file(&data.join("pg_hba.conf"), hba.as_bytes(), 0o600)?;
    owner.chown(&data.join("pg_hba.conf"))?;
    let mut cmd = Command::new(pg_bin.join("postgres"));
    cmd.arg("-D").arg(&data).current_dir(&pg_dir);
    // SIGINT: fast shutdown. SIGQUIT if the bench dies: immediate, backends included.
    let mut daemon = Daemon::spawn(
        "postgres",
        cmd,
        owner,
        &pg_dir.join("postgres.log"),
        libc::SIGINT,
        libc::SIGQUIT,
    )?;
    let admin = Admin {
        pg_bin,
        owner,
        sockdir: &sockdir,
        port,
        cwd: &pg_dir,
    };
    // Ready when psql gets an answer (up to 30 s).
    let mut ready = false;
    for _ in 0..300 {
        daemon.check_alive()?;
        if admin
            .sql("postgres", "SELECT 1")
            .is_ok_and(|o| o.trim() == "1")
        {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !ready {
        return Err(format!(
            "PostgreSQL did not answer within 30 s; end of its log:\n{}",
            tail(&daemon.log)
        ));
    }
    let password = random_hex(18)?;
    admin.sql(
        "postgres",
        &format!(
            "CREATE ROLE twofa LOGIN PASSWORD '{password}';\n\
             CREATE ROLE twofa_trust LOGIN IN ROLE twofa;\n\
             CREATE DATABASE twofa OWNER twofa;\n"
        ),
    )?;
    let scram = admin
        .sql(
            "postgres",
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'twofa'",
        )?
        .trim()
        .to_string();
    if !scram.starts_with("SCRAM-SHA-256$") {
        return Err(format!("role twofa has no SCRAM secret: {scram:?}"));
    }
    let setup = admin.sql(
        "postgres",
        "SELECT split_part(version(), ' ', 2) || ', fsync ' || current_setting('fsync') \
         || ', synchronous_commit ' || current_setting('synchronous_commit') \
         || ', full_page_writes ' || current_setting('full_page_writes') \
         || ', wal_sync_method ' || current_setting('wal_sync_method')",
    )?;
    Ok((
        daemon,
        PgInfo {
            sockdir,
            port,
            password,
            scram,
            setup: setup.trim().to_string(),
        },
    ))
}

/// PgBouncer as `postgres` on 127.0.0.1 and a free port: TLS to clients with the bench's
/// certificate (same CA), SCRAM with the role's own secret (so it logs into PostgreSQL with the
/// client's proof), to PostgreSQL over its Unix socket. Two pools: `twofa` in session mode and
/// `twofa_tx` in transaction mode with one server connection. Returns the port and version.
fn start_pgbouncer(
    dir: &Path,
    owner: Owner,
    pki: &Pki,
    pg: &PgInfo,
) -> Result<(Daemon, u16, String), String> {
    let pgb_dir = dir.join("pgbouncer");
    mkdir(&pgb_dir, 0o700)?;
    owner.chown(&pgb_dir)?;
    owner.copy(&pki.server_crt, &pgb_dir.join("server.crt"))?;
    owner.copy(&pki.server_key, &pgb_dir.join("server.key"))?;
    let userlist = pgb_dir.join("userlist.txt");
    write_file(
        &userlist,
        format!("\"twofa\" \"{}\"\n", pg.scram).as_bytes(),
        0o600,
    )?;
    owner.chown(&userlist)?;
    let port = free_port()?;
    let ini = format!(
        "[databases]\n\
         twofa = host={sock} port={pg_port} dbname=twofa\n\
         twofa_tx = host={sock} port={pg_port} dbname=twofa pool_mode=transaction pool_size=1\n\
         \n[pgbouncer]\n\
         listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = scram-sha-256\nauth_file = {userlist}\n\
         pool_mode = session\n\
         client_tls_sslmode = require\n\
         client_tls_cert_file = {dir}/server.crt\nclient_tls_key_file = {dir}/server.key\n",
        sock = pg.sockdir.display(),
        pg_port = pg.port,
        userlist = userlist.display(),
        dir = pgb_dir.display(),
    );
    let ini_path = pgb_dir.join("pgbouncer.ini");
    write_file(&ini_path, ini.as_bytes(), 0o600)?;
    owner.chown(&ini_path)?;
    let mut cmd = Command::new(PGBOUNCER);
    cmd.arg(&ini_path).current_dir(&pgb_dir);
    // SIGTERM: PgBouncer's immediate shutdown.
    let mut daemon = Daemon::spawn(
        "pgbouncer",
        cmd,
        owner,
        &pgb_dir.join("pgbouncer.log"),
        libc::SIGTERM,
        libc::SIGTERM,
    )?;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let mut listening = false;
    for _ in 0..300 {
        daemon.check_alive()?;
        if TcpStream::connect_timeout(&addr.into(), Duration::from_millis(100)).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !listening {
        return Err(format!(
            "PgBouncer did not listen within 30 s; end of its log:\n{}",
            tail(&daemon.log)
        ));
    }
    let version = Command::new(PGBOUNCER)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    Ok((daemon, port, version))
}

/// The store settings of each route (root, 0600, in a root-only directory), one fleet key.
fn write_settings(
    dir: &Path,
    pki: &Pki,
    pg_port: u16,
    pgb_port: u16,
    password: &str,
) -> Result<(), String> {
    let etc = dir.join("etc");
    mkdir(&etc, 0o700)?;
    let key_file = etc.join("fleet.key");
    for route in Route::SPLIT {
        let (port, db, user, tls) = match route {
            Route::Direct => (pg_port, "twofa", "twofa", true),
            Route::Session => (pgb_port, "twofa", "twofa", true),
            Route::Transaction => (pgb_port, "twofa_tx", "twofa", true),
            Route::DirectNoTls => (pg_port, "twofa", "twofa", false),
            Route::DirectTrust => (pg_port, "twofa", "twofa_trust", false),
        };
        let mut text = format!(
            "version = 1\n[postgres]\nconnection = \"host=127.0.0.1 port={port} dbname={db} user={user}\"\n"
        );
        if user == "twofa" {
            let _ = writeln!(text, "password = \"{password}\"");
        }
        if tls {
            let _ = writeln!(
                text,
                "tls = \"verify-full\"\nca_file = \"{}\"",
                pki.ca.display()
            );
        } else {
            let _ = writeln!(text, "tls = \"off\"");
        }
        let _ = writeln!(
            text,
            "connect_timeout_ms = 2000\nkey_file = \"{}\"",
            key_file.display()
        );
        write_file(&settings_path(dir, route), text.as_bytes(), 0o600)?;
    }
    Ok(())
}

/// The administrator's psql: as `postgres`, over the Unix socket (peer), the SQL on stdin.
struct Admin<'a> {
    pg_bin: &'a Path,
    owner: Owner,
    sockdir: &'a Path,
    port: u16,
    cwd: &'a Path,
}

impl Admin<'_> {
    fn sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(self.pg_bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.sockdir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-d", db])
            .env("HOME", self.cwd)
            .current_dir(self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.owner.apply(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("psql: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(sql.as_bytes())
                .map_err(|e| format!("psql: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let shown: String = sql.chars().take(200).collect();
            Err(format!(
                "psql ({shown}...) failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

fn settings_path(dir: &Path, route: Route) -> PathBuf {
    dir.join("etc").join(format!("store-{}.toml", route.tag()))
}

/// Reads one reply line (without its newline) within the socket's read timeout.
fn read_line(sock: &mut UnixStream, pending: &mut Vec<u8>) -> Result<String, String> {
    let mut chunk = [0u8; 4096];
    for _ in 0..4096 {
        if let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..=end);
            return Ok(line);
        }
        match sock.read(&mut chunk) {
            Ok(0) => return Err("the helper closed its socket without answering".into()),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("no answer from the helper within 3 s: {e}")),
        }
    }
    Err("reply from the helper too long".into())
}

/// A reply as the report shows it: `ok ...` as is, `err KIND xHEX` with the message decoded.
fn decode_reply(line: &str) -> String {
    let mut words = line.split_ascii_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("err"), Some(kind), Some(msg)) => {
            let bytes: Vec<u8> = msg
                .trim_start_matches('x')
                .as_bytes()
                .chunks(2)
                .filter_map(|p| {
                    std::str::from_utf8(p)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect();
            format!("err {kind}: {}", String::from_utf8_lossy(&bytes))
        }
        _ => line.to_string(),
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

/// One timed helper session.
#[derive(Debug)]
struct Session {
    /// Milliseconds from the spawn to each reply.
    times: Vec<f64>,
    /// Milliseconds from the spawn to the helper's exit after its end of input.
    end: f64,
    replies: Vec<String>,
}

/// The cost split of one route: medians in ms of, in order, the helper alone, the first reply,
/// the second, the third, the exit, the whole session, `twofa-store check`.
#[derive(Debug)]
pub(crate) struct SplitColumn {
    route: Route,
    medians: Vec<f64>,
    sessions: usize,
}

// ---------------------------------------------------------------------------------------------
// PKI.

/// A CA and a server certificate for 127.0.0.1 (openssl, EC P-256, 2 days).
#[derive(Debug)]
struct Pki {
    ca: PathBuf,
    server_crt: PathBuf,
    server_key: PathBuf,
}

impl Pki {
    fn create(dir: &Path) -> Result<Pki, String> {
        mkdir(dir, 0o755)?;
        let ca = dir.join("ca.pem");
        let ca_key = dir.join("ca.key");
        let server_crt = dir.join("server.crt");
        let server_key = dir.join("server.key");
        let csr = dir.join("server.csr");
        let ext = dir.join("server.ext");
        run(
            "openssl req (CA)",
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca)
                .args(["-days", "2", "-subj", "/CN=twofa-bench fleet CA"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        )?;
        write_file(
            &ext,
            b"basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
              extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n",
            0o644,
        )?;
        run(
            "openssl req (server)",
            Command::new("openssl")
                .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
                .arg(&server_key)
                .arg("-out")
                .arg(&csr)
                .args(["-subj", "/CN=localhost"]),
        )?;
        run(
            "openssl x509 (server)",
            Command::new("openssl")
                .args(["x509", "-req", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .args(["-CAcreateserial", "-days", "2", "-out"])
                .arg(&server_crt)
                .arg("-extfile")
                .arg(&ext),
        )?;
        // The helper trusts ca_file only if root-owned and not writable by others.
        write_file(
            &ca,
            &std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?,
            0o644,
        )?;
        Ok(Pki {
            ca,
            server_crt,
            server_key,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Report.

/// What the fleet part found, beside the login rows (which are in `Report::logins`).
#[derive(Debug, Default)]
pub(crate) struct FleetReport {
    pub(crate) setup: String,
    /// (users, import seconds).
    pub(crate) imports: Vec<(usize, f64)>,
    pub(crate) split: Vec<SplitColumn>,
    pub(crate) split_users: usize,
    pub(crate) transaction: Vec<String>,
}

/// The `### Fleet mode` part of the report: login rows beside the file rows with the ratios,
/// the cost split, the transaction-pool finding.
pub(crate) fn markdown(
    out: &mut String,
    fleet: &FleetReport,
    logins: &[(String, usize, usize, Stats)],
) {
    let s = out;
    let _ = writeln!(s, "\n### Fleet mode: login latency with the store\n");
    let _ = writeln!(s, "Servers: {}.", fleet.setup);
    for (users, secs) in &fleet.imports {
        let _ = writeln!(
            s,
            "{users} users imported with `twofa-enroll store import` in {secs:.1} s."
        );
    }
    let _ = writeln!(
        s,
        "\n| store | users | workers | logins (refused) | logins/s | p50 µs | p99 µs | fleet/files logins/s | fleet/files p50 | fleet/files p99 |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let files = Module::Twofa.name();
    let mut keys: Vec<(usize, usize)> = Vec::new();
    for (n, u, w, _) in logins {
        if is_fleet_row(n) && !keys.contains(&(*u, *w)) {
            keys.push((*u, *w));
        }
    }
    let find = |name: &str, u: usize, w: usize| {
        logins
            .iter()
            .find(|(n, uu, ww, _)| n == name && *uu == u && *ww == w)
            .map(|r| &r.3)
    };
    for (u, w) in keys {
        let base = find(files, u, w);
        let mut names = vec![files.to_string()];
        names.extend(
            logins
                .iter()
                .filter(|(n, uu, ww, _)| is_fleet_row(n) && *uu == u && *ww == w)
                .map(|r| r.0.clone()),
        );
        for name in names {
            let Some(st) = find(&name, u, w) else {
                continue;
            };
            let shown = if name == files {
                "pam_twofa files".to_string()
            } else {
                name.clone()
            };
            let r = |a: f64, b: Option<f64>| b.map_or("—".into(), |b| ratio(a, b));
            let _ = writeln!(
                s,
                "| {shown} | {u} | {w} | {} ({}) | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
                st.logins,
                st.refused,
                st.rate,
                st.p50_us,
                st.p99_us,
                r(st.rate, base.map(|b| b.rate)),
                r(st.p50_us, base.map(|b| b.p50_us)),
                r(st.p99_us, base.map(|b| b.p99_us)),
            );
        }
    }
    if !fleet.split.is_empty() {
        let n = fleet.split.first().map_or(0, |c| c.sessions);
        let _ = writeln!(
            s,
            "\n### Fleet mode: where a login's helper time goes (ms, median of {n} sessions, {} users)\n",
            fleet.split_users
        );
        let _ = write!(s, "| phase |");
        for c in &fleet.split {
            let _ = write!(s, " {} |", c.route.column());
        }
        let _ = writeln!(s);
        let _ = write!(s, "|---|");
        for _ in &fleet.split {
            let _ = write!(s, "---:|");
        }
        let _ = writeln!(s);
        let phases = [
            "helper alone: exec, settings + key read, exit (no database)",
            "1st reply `enrollment` from spawn: exec + connect + TLS + SCRAM + schema/key check + SELECT + unseal",
            "2nd reply `state`: one SELECT",
            "3rd reply `accept_step`: BEGIN, row lock (upsert), UPDATE, COMMIT (WAL flush)",
            "end of input to exit (Terminate, exit)",
            "whole session",
            "`twofa-store check` (a process: connect, checks, one query)",
        ];
        for (i, phase) in phases.iter().enumerate() {
            let _ = write!(s, "| {phase} |");
            for c in &fleet.split {
                let _ = write!(s, " {:.2} |", c.medians.get(i).copied().unwrap_or(0.0));
            }
            let _ = writeln!(s);
        }
    }
    if !fleet.transaction.is_empty() {
        let _ = writeln!(
            s,
            "\n### Fleet mode: PgBouncer `pool_mode = transaction` (`pool_size = 1`)\n"
        );
        for line in &fleet.transaction {
            let _ = writeln!(s, "- {line}");
        }
    }
}
