//! The modules and their set-ups: one user count's stores, PAM services and passwd/shadow
//! copies, each module configured as equally as it allows.

use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use twofa_core::hex;

use crate::codes::{base32, hotp, iso8601, secret, unix_now, user_name, PERIOD, UID_BASE};
use crate::namespace::syncfs;
use crate::oracle;
use crate::worker::user_for;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Module {
    Twofa,
    Google,
    Oath,
}

impl Module {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Module::Twofa => "pam_twofa",
            Module::Google => "pam_google_authenticator",
            Module::Oath => "pam_oath",
        }
    }
    pub(crate) fn service(self) -> &'static str {
        match self {
            Module::Twofa => "bench-twofa",
            Module::Google => "bench-google",
            Module::Oath => "bench-oath",
        }
    }
}

/// Every module the bench knows, in table order.
pub(crate) const ALL_MODULES: [Module; 3] = [Module::Twofa, Module::Google, Module::Oath];

pub(crate) fn security_dir_module(file: &str) -> Option<PathBuf> {
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

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn module_path(m: Module) -> Option<PathBuf> {
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

pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
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

pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One user count's world: stores of all modules, the PAM services, the passwd/shadow copies.
pub(crate) struct World {
    pub(crate) dir: PathBuf,
    pub(crate) users: usize,
    pub(crate) confdir: PathBuf,
    pub(crate) modules: Vec<(Module, PathBuf)>,
}

/// A time well in the past for "the previous login" in the steady-state files.
pub(crate) fn yesterday() -> u64 {
    unix_now() - 86_400
}

impl World {
    pub(crate) fn twofa_storage(&self) -> PathBuf {
        self.dir.join("twofa")
    }
    pub(crate) fn twofa_config(&self) -> PathBuf {
        self.dir.join("twofa.toml")
    }
    pub(crate) fn ga_dir(&self) -> PathBuf {
        self.dir.join("google")
    }
    pub(crate) fn oath_file(&self) -> PathBuf {
        self.dir.join("oath").join("users.oath")
    }
    pub(crate) fn floor_dir(&self) -> PathBuf {
        self.dir.join("floor")
    }

    /// The module's `auth` line arguments (after the path).
    pub(crate) fn args(&self, m: Module) -> String {
        match m {
            Module::Twofa => format!("config={}", self.twofa_config().display()),
            Module::Google => format!("secret={}/${{USER}} user=root", self.ga_dir().display()),
            Module::Oath => format!("usersfile={} window=1 digits=6", self.oath_file().display()),
        }
    }

    pub(crate) fn auth_line(&self, m: Module, path: &Path) -> String {
        format!("auth required {} {}", path.display(), self.args(m))
    }

    pub(crate) fn create(
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
        // One account with no enrollment, for the timing before the password (oracle.rs).
        let _ = writeln!(
            pw,
            "{}:x:{}:{UID_BASE}:twofa bench:/nonexistent:/usr/sbin/nologin",
            oracle::UNENROLLED,
            oracle::UNENROLLED_UID
        );
        let _ = writeln!(sh, "{}:{hash}:{day}:0:99999:7:::", oracle::UNENROLLED);
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
            if *m == Module::Twofa {
                for (service, text) in oracle::services(path, &w.args(*m)) {
                    write_file(&w.confdir.join(service), text.as_bytes(), 0o644)?;
                }
            }
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
    pub(crate) fn reset(&self, logins: Option<usize>) -> Result<(), String> {
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
