//! A throwaway PostgreSQL for the integration tests: one server per test binary, one database
//! per test.
//!
//! The server is Debian's PostgreSQL (`/usr/lib/postgresql/N/bin`), initialised as the
//! `postgres` system user (initdb refuses root) in a fresh directory under /tmp, listening on
//! 127.0.0.1 at a free port with TLS on (a certificate for IP 127.0.0.1 from a CA made here by
//! rcgen) and on a Unix socket in its own directory. Password logins only (scram-sha-256).
//!
//! Each test gets its own schema in the one database `twofa_test` (the connection string sets
//! `search_path`), which is much quicker to make and drop than a database and is how an admin
//! who keeps twofa's tables in a schema of a shared database would run it.
//!
//! Cleanup: each test's [`TestEnv`] drops its schema and files when it goes out of scope,
//! failed or not. The server outlives single tests (it is shared), and Rust runs no destructor
//! of a static at exit, so a watchdog started with it (its own session, so a Ctrl-C of the
//! test run does not take it first) waits for the test process to end, however it ends, and
//! then stops the server (`pg_ctl stop -m immediate`) and removes its directory.
//!
//! Without PostgreSQL installed the tests are skipped with a printed reason, unless `CI` is
//! set: there a missing server is a failure, never a silent pass.
#![allow(dead_code)] // each test binary uses its own part of the harness
#![allow(clippy::print_stderr)]

use std::error::Error;
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use postgres::{Client, NoTls};
use ring::rand::{SecureRandom, SystemRandom};
use twofa_core::enrollment::Enrollment;
use twofa_core::identity::Account;
use twofa_store::pg::{self, PgStore};
use twofa_store::schema::{self, KeyOrigin};
use twofa_store::seal::FleetKey;
use twofa_store::settings::{self, Settings};

pub type TestResult = Result<(), Box<dyn Error>>;

/// The superuser's password on the test server (not a secret: the server lives for one run,
/// on 127.0.0.1, in a directory only root and postgres can enter).
const ADMIN_PASSWORD: &str = "twofa-test-admin";
/// The password of the `twofa` role the store logs in as.
pub const STORE_PASSWORD: &str = "twofa-test-store-pw";
/// The database every test's schema lives in.
pub const DATABASE: &str = "twofa_test";
/// A TOTP secret whose base32 text must never appear in the database.
pub const SECRET_B32: &str = "KRUGKIDROVUWG2ZAMJZG653OEBTG66BANJ2W24DTEBXXMZLSEB2GQZJA";

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = SystemRandom::new().fill(&mut b);
    u64::from_ne_bytes(b)
}

/// One PostgreSQL cluster: where it is, how to reach it, and the CA its certificate is from.
pub struct Server {
    pub base: PathBuf,
    pub bin: PathBuf,
    pub port: u16,
    /// PEM of the CA that signed the server's certificate.
    pub ca_pem: String,
    /// PEM of a CA that signed nothing the server has.
    pub other_ca_pem: String,
}

impl Server {
    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    /// A superuser connection over the Unix socket (no TLS: only tests use it).
    pub fn admin(&self, db: &str) -> Result<Client, Box<dyn Error>> {
        Ok(postgres::Config::new()
            .host_path(&self.base)
            .port(self.port)
            .user("postgres")
            .password(ADMIN_PASSWORD)
            .dbname(db)
            .connect(NoTls)?)
    }

    /// Runs a PostgreSQL program as the postgres user, reaching the server by its socket.
    pub fn run_as_postgres(&self, program: &str, args: &[&str]) -> Result<String, Box<dyn Error>> {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .env("PGHOST", &self.base)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGPASSWORD", ADMIN_PASSWORD)
            .current_dir("/")
            .output()?;
        if !out.status.success() {
            return Err(
                format!("{program}: {}", String::from_utf8_lossy(&out.stderr).trim()).into(),
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

/// Where Debian put PostgreSQL's programs, the newest version first.
fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop()
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The shared server, started at the first call. `Ok(None)`: no PostgreSQL here (skip).
pub fn server() -> Result<Option<&'static Server>, Box<dyn Error>> {
    if !nix_is_root() {
        return skip("the tests need root (initdb runs as the postgres user through runuser)");
    }
    let Some(bin) = pg_bin() else {
        return skip("no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)");
    };
    match SERVER.get_or_init(|| start(&bin, true).map_err(|e| e.to_string())) {
        Ok(s) => Ok(Some(s)),
        Err(e) => Err(format!("starting the test PostgreSQL: {e}").into()),
    }
}

fn skip<T>(why: &str) -> Result<Option<T>, Box<dyn Error>> {
    if std::env::var_os("CI").is_some() {
        return Err(format!("CI is set and {why}").into());
    }
    eprintln!("skipped: {why}");
    Ok(None)
}

fn nix_is_root() -> bool {
    twofa_core::securefile::running_as_root()
}

/// A fresh cluster: initdb, certificates, start, and the `twofa` role. `ssl`: whether the
/// server offers TLS at all.
pub fn start_server(ssl: bool) -> Result<Option<Server>, Box<dyn Error>> {
    if !nix_is_root() {
        return skip("the tests need root");
    }
    let Some(bin) = pg_bin() else {
        return skip("no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)");
    };
    Ok(Some(start(&bin, ssl)?))
}

fn postgres_ids() -> Result<(u32, u32), Box<dyn Error>> {
    let out = Command::new("id").arg("-u").arg("postgres").output()?;
    let uid: u32 = String::from_utf8(out.stdout)?.trim().parse()?;
    let out = Command::new("id").arg("-g").arg("postgres").output()?;
    let gid: u32 = String::from_utf8(out.stdout)?.trim().parse()?;
    Ok((uid, gid))
}

fn start(bin: &Path, ssl: bool) -> Result<Server, Box<dyn Error>> {
    let (uid, gid) = postgres_ids()?;
    let base = std::env::temp_dir().join(format!("twofa-store-pg-{:016x}", random_u64()));
    fs::create_dir(&base)?;
    fs::set_permissions(&base, fs::Permissions::from_mode(0o700))?;
    chown(&base, Some(uid), Some(gid))?;
    watchdog(bin, &base)?;

    let private = |path: &Path, text: &str| -> Result<(), Box<dyn Error>> {
        fs::write(path, text)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        chown(path, Some(uid), Some(gid))?;
        Ok(())
    };
    private(&base.join("pw"), ADMIN_PASSWORD)?;

    let (ca_pem, issuer) = new_ca("twofa test CA")?;
    let (other_ca_pem, _) = new_ca("twofa other CA")?;
    let server_key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&server_key, &issuer)?;
    private(&base.join("server.crt"), &cert.pem())?;
    private(&base.join("server.key"), &server_key.serialize_pem())?;

    let data = base.join("data");
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "scram-sha-256", "-U", "postgres", "-E", "UTF8"])
        .args(["--locale=C.UTF-8", "--no-sync", "--no-instructions"])
        .arg(format!("--pwfile={}", base.join("pw").display()))
        .current_dir("/")
        .output()?;
    if !out.status.success() {
        return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)).into());
    }

    let port = free_port()?;
    let mut options = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} \
         -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200",
        base = base.display()
    );
    if ssl {
        options.push_str(&format!(
            " -c ssl=on -c ssl_cert_file={b}/server.crt -c ssl_key_file={b}/server.key",
            b = base.display()
        ));
    }
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("pg_ctl"))
        .arg("start")
        .args(["-w", "-t", "60", "-D"])
        .arg(&data)
        .arg("-l")
        .arg(base.join("log"))
        .arg("-o")
        .arg(&options)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        let log = fs::read_to_string(base.join("log")).unwrap_or_default();
        return Err(format!(
            "pg_ctl start: {} {log}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let server = Server {
        base,
        bin: bin.to_path_buf(),
        port,
        ca_pem,
        other_ca_pem,
    };
    let mut admin = server.admin("postgres")?;
    admin.batch_execute(&format!(
        "CREATE ROLE twofa LOGIN PASSWORD '{STORE_PASSWORD}'"
    ))?;
    // Not in one batch with the above: CREATE DATABASE refuses to run inside a transaction.
    admin.batch_execute(&format!("CREATE DATABASE {DATABASE} OWNER twofa"))?;
    Ok(server)
}

impl Server {
    /// Stops the server now (tests of an unreachable store).
    pub fn stop(&self) -> Result<(), Box<dyn Error>> {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data())
            .current_dir("/")
            .output()?;
        if !out.status.success() {
            return Err(format!("pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(())
    }
}

/// Stops the server and removes `base` once this test process is gone, however it ended.
fn watchdog(bin: &Path, base: &Path) -> Result<(), Box<dyn Error>> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         runuser -u postgres -- {pg_ctl} stop -m immediate -D {data} >/dev/null 2>&1; \
         rm -rf {base}",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = base.join("data").display(),
        base = base.display(),
    );
    Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .status()?;
    Ok(())
}

fn free_port() -> Result<u16, Box<dyn Error>> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn new_ca(name: &str) -> Result<(String, rcgen::Issuer<'static, rcgen::KeyPair>), Box<dyn Error>> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), rcgen::Issuer::new(params, key)))
}

/// A root-only directory that passes twofa's file checks (0700 under /tmp, which is sticky).
pub struct PrivateDir(pub PathBuf);

impl PrivateDir {
    pub fn new(prefix: &str) -> Result<PrivateDir, Box<dyn Error>> {
        let p = std::env::temp_dir().join(format!("{prefix}-{:016x}", random_u64()));
        fs::create_dir(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700))?;
        Ok(PrivateDir(p))
    }

    /// Writes a file with `mode`.
    pub fn write(&self, name: &str, text: &str, mode: u32) -> Result<PathBuf, Box<dyn Error>> {
        let p = self.0.join(name);
        fs::write(&p, text)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        Ok(p)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One test's database on the shared server, with settings, key and CA files for it.
pub struct TestEnv {
    pub server: &'static Server,
    /// This test's schema in [`DATABASE`].
    pub schema: String,
    pub dir: PrivateDir,
    pub settings_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestEnv {
    /// A new empty schema `t_<name>_<random>` owned by `twofa`, and settings for it
    /// (verify-full against the server's CA). `Ok(None)`: skipped.
    pub fn new(name: &str) -> Result<Option<TestEnv>, Box<dyn Error>> {
        let Some(server) = server()? else {
            return Ok(None);
        };
        TestEnv::on(server, name).map(Some)
    }

    /// [`TestEnv::new`] on another server than the shared one.
    pub fn on(server: &'static Server, name: &str) -> Result<TestEnv, Box<dyn Error>> {
        let schema = format!("t_{name}_{:08x}", random_u64() as u32);
        server
            .admin(DATABASE)?
            .batch_execute(&format!("CREATE SCHEMA {schema} AUTHORIZATION twofa"))?;
        let dir = PrivateDir::new("twofa-store-test")?;
        let key_path = dir.0.join("fleet.key");
        let env = TestEnv {
            server,
            schema,
            settings_path: dir.0.join("store.toml"),
            key_path,
            dir,
        };
        env.dir.write("ca.pem", &server.ca_pem, 0o644)?;
        env.write_settings("")?;
        let mut hex = String::new();
        for _ in 0..4 {
            hex.push_str(&format!("{:016x}", random_u64()));
        }
        env.dir.write("fleet.key", &format!("{hex}\n"), 0o600)?;
        Ok(env)
    }

    /// The settings text for this database; `extra` replaces nothing, it is appended to
    /// [postgres] (tests pass `tls = ...` and the like through `settings_text`).
    pub fn settings_text(&self, connection_extra: &str, tls: &str) -> String {
        format!(
            "version = 1\n[postgres]\nconnection = \"host=127.0.0.1 port={port} dbname={DATABASE} \
             user=twofa options='-c search_path={schema}'{connection_extra}\"\npassword = \"{STORE_PASSWORD}\"\n{tls}\
             connect_timeout_ms = 2000\nkey_file = \"{key}\"\n",
            port = self.server.port,
            schema = self.schema,
            key = self.key_path.display(),
        )
    }

    /// Writes verify-full settings (pinned test CA), with `connection_extra` appended to the
    /// connection string.
    pub fn write_settings(&self, connection_extra: &str) -> Result<(), Box<dyn Error>> {
        let tls = format!(
            "tls = \"verify-full\"\nca_file = \"{}\"\n",
            self.dir.0.join("ca.pem").display()
        );
        self.dir.write(
            "store.toml",
            &self.settings_text(connection_extra, &tls),
            0o600,
        )?;
        Ok(())
    }

    pub fn settings(&self) -> Result<Settings, Box<dyn Error>> {
        Ok(settings::load(&self.settings_path)?)
    }

    pub fn key(&self) -> Result<FleetKey, Box<dyn Error>> {
        Ok(FleetKey::load(&self.key_path)?)
    }

    /// Creates the schema and key check (what `twofa-store init` does).
    pub fn init(&self) -> Result<(), Box<dyn Error>> {
        let mut client = pg::connect(&self.settings()?)?;
        schema::init(&mut client, &self.key()?, KeyOrigin::File, || Ok(()))?;
        Ok(())
    }

    /// A store on this database (call [`TestEnv::init`] first for the schema).
    pub fn store(&self) -> Result<PgStore, Box<dyn Error>> {
        Ok(PgStore::new(self.settings()?, self.key()?))
    }

    /// A superuser connection to this test's schema.
    pub fn admin(&self) -> Result<Client, Box<dyn Error>> {
        let mut c = self.server.admin(DATABASE)?;
        c.batch_execute(&format!("SET search_path TO {}", self.schema))?;
        Ok(c)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Ok(mut c) = self.server.admin(DATABASE) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

pub fn account(name: &str) -> Account {
    Account {
        name: name.into(),
        uid: 1000,
        gid: 1000,
    }
}

/// A TOTP enrollment of `name` with [`SECRET_B32`], plus recovery codes and an HOTP token.
pub fn enrollment(name: &str, secret_b32: &str) -> Result<Enrollment, Box<dyn Error>> {
    let text = format!(
        "version = 1\naccount = \"{name}\"\n\
         [[factor]]\ntype = \"totp\"\nsecret = \"{secret_b32}\"\nalgorithm = \"SHA1\"\n\
         digits = 6\nperiod = 30\nenrolled_at = 1700000000\n\
         [[factor]]\ntype = \"hotp\"\nsecret = \"{secret_b32}\"\nalgorithm = \"SHA1\"\n\
         digits = 6\ncounter = 10\nenrolled_at = 1700000000\n\
         [[factor]]\ntype = \"recovery\"\nsalt = \"00112233445566778899\"\nissued_at = 1700000000\n\
         codes = [\"{a}\", \"{b}\"]\n",
        a = "aa".repeat(32),
        b = "bb".repeat(32),
    );
    Ok(Enrollment::parse(&text, name).map_err(|e| e.to_string())?)
}
