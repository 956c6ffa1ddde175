//! [`PgStore`]: the [`Store`] trait on PostgreSQL, with the file store's semantics.
//!
//! [`Store::update`] (every change of state, an operation value) is one transaction that does
//! what `FileStore` does under the account's lock: lock the account's row and read its state
//! (an upsert that returns the row, so a first login has a row to lock too), apply the
//! operation with the same pure [`UserState::apply`] in Rust, write it back only if it
//! changed, commit. The row lock serializes the hosts of a fleet
//! the way `flock` serializes the logins of one host: sixteen hosts presenting the same TOTP
//! code get one `Accepted`. The rules live once, in twofa-core.
//!
//! The state is written in the form the fleet's switch names ([`schema::Meta::state_format`],
//! read with the schema version at every connection): version 1, which every release reads,
//! until an admin runs `twofa-enroll store init --state-format 2`. Until then the lockout
//! keeps the fixed window of the releases before (a version 1 state keeps its rule, see
//! [`twofa_core::state::Format`]), so that old and new hosts count alike. A row is never
//! moved back to an older form.
//!
//! Errors keep the trait's distinction: [`StoreError::Unavailable`] when the database could not
//! be reached or the connection was lost (the policy may fall back to the host's own files),
//! [`StoreError::Backend`] when it was reached but refused (a login, a schema, a row that does
//! not decrypt), which never falls back.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use postgres::config::SslMode;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Transaction};
use twofa_core::enrollment::Enrollment;
use twofa_core::identity::Account;
use twofa_core::state::{Format, UserState};
use twofa_core::store::{OpOutcome, StateOp, Store, StoreError};

use crate::db_error::store_error;
use crate::schema;
use crate::seal::FleetKey;
use crate::settings::{self, host_port, Settings, Tls};

/// Attempts of one transaction: the first and three retries after a serialization failure or
/// a deadlock (the database's way of saying "try again", never a lasting error).
const ATTEMPTS: u32 = 4;

/// The fleet store. Connects at the first operation (a login that needs no store costs
/// nothing), checks the schema and the fleet key once per connection, and reconnects after a
/// lost connection.
pub struct PgStore {
    setup: Setup,
    conn: Mutex<Option<Client>>,
    /// Whether the fleet's switch says version 2 ([`schema::Meta::state_format`]), as read
    /// when the current connection was made.
    writes_v2: AtomicBool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("setup", &self.setup)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Setup {
    Ready {
        settings: Box<Settings>,
        key: FleetKey,
    },
    /// The settings or the key could not be read: every operation says why.
    Broken(String),
}

/// What [`PgStore::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The server's `address:port` (or the socket it was reached on).
    pub server: String,
    /// The schema version.
    pub schema_version: u32,
    /// The form in which the fleet's hosts write the state.
    pub state_format: Format,
}

/// How a transaction body ends: both return the value; only `Commit` writes.
enum Finish<T> {
    Commit(T),
    Rollback(T),
}

/// Why a transaction body stopped.
enum Failure {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl PgStore {
    /// A store with these settings and fleet key; nothing is connected yet.
    pub fn new(settings: Settings, key: FleetKey) -> PgStore {
        PgStore {
            setup: Setup::Ready {
                settings: Box::new(settings),
                key,
            },
            conn: Mutex::new(None),
            writes_v2: AtomicBool::new(false),
        }
    }

    /// The store of `serve`: settings from `path`, key from the file they name. If either
    /// can't be read, the store still answers, each operation with `Backend(why)`, so the
    /// module logs the reason instead of an unexplained end of the conversation.
    pub fn open(path: &Path) -> PgStore {
        let setup = match settings::load(path) {
            Err(e) => Setup::Broken(e.to_string()),
            Ok(settings) => match FleetKey::load(&settings.key_file) {
                Ok(key) => Setup::Ready {
                    settings: Box::new(settings),
                    key,
                },
                Err(e) => Setup::Broken(e.to_string()),
            },
        };
        PgStore {
            setup,
            conn: Mutex::new(None),
            writes_v2: AtomicBool::new(false),
        }
    }

    fn ready(&self) -> Result<(&Settings, &FleetKey), StoreError> {
        match &self.setup {
            Setup::Ready { settings, key } => Ok((settings, key)),
            Setup::Broken(why) => Err(StoreError::Backend(why.clone())),
        }
    }

    /// Connects (or reuses the connection), checks schema and key, and says where it is.
    pub fn check(&self) -> Result<Checked, StoreError> {
        let schema_version = schema::needed();
        let server = self.with_client(|client, _| {
            let row = client
                .query_typed_one("SELECT host(inet_server_addr()), inet_server_port()", &[])?;
            let addr: Option<String> = row.try_get(0)?;
            let port: Option<i32> = row.try_get(1)?;
            Ok(match (addr, port.and_then(|p| u16::try_from(p).ok())) {
                (Some(a), Some(p)) => host_port(&a, p),
                _ => "a local socket".to_string(),
            })
        })?;
        Ok(Checked {
            server,
            schema_version,
            state_format: self.format(),
        })
    }

    /// The form this store writes states in (the fleet's switch, as of the last connection).
    pub fn format(&self) -> Format {
        if self.writes_v2.load(Ordering::Relaxed) {
            Format::V2
        } else {
            Format::V1
        }
    }

    /// Runs `f` on the checked connection, connecting first if there is none or it was lost.
    /// A lost connection is dropped, so the next operation reconnects. Reads call this
    /// directly: one statement is atomic by itself, and a login's read of its enrollment saves
    /// the BEGIN and COMMIT round trips.
    fn with_client<T>(
        &self,
        mut f: impl FnMut(&mut Client, &FleetKey) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let (settings, key) = self.ready()?;
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in 1..=ATTEMPTS {
            if guard.as_ref().is_none_or(Client::is_closed) {
                let mut client = connect(settings)?;
                let meta = schema::check(&mut client, key)?;
                self.writes_v2
                    .store(meta.state_format >= Format::V2, Ordering::Relaxed);
                *guard = Some(client);
            }
            let Some(client) = guard.as_mut() else {
                return Err(StoreError::Unavailable("no connection".into()));
            };
            match f(client, key) {
                Ok(v) => return Ok(v),
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Pg(e)) if attempt < ATTEMPTS && is_retryable(&e) => continue,
                Err(Failure::Pg(e)) => {
                    let e = store_error(e);
                    if matches!(e, StoreError::Unavailable(_)) {
                        *guard = None;
                    }
                    return Err(e);
                }
            }
        }
        Err(StoreError::Backend(
            "the database kept reporting conflicts; gave up".into(),
        ))
    }

    /// `body` in one transaction, retried whole on a serialization failure or deadlock.
    fn transact<T>(
        &self,
        mut body: impl FnMut(&mut Transaction<'_>, &FleetKey) -> Result<Finish<T>, Failure>,
    ) -> Result<T, StoreError> {
        self.with_client(|client, key| {
            let mut tx = client.transaction()?;
            match body(&mut tx, key)? {
                Finish::Commit(v) => {
                    tx.commit()?;
                    Ok(v)
                }
                Finish::Rollback(v) => {
                    tx.rollback()?;
                    Ok(v)
                }
            }
        })
    }

    /// Runs `change` on the account's state with its row locked, writing it only if changed.
    fn update_state<T>(
        &self,
        account: &Account,
        mut change: impl FnMut(&mut UserState) -> T,
    ) -> Result<T, StoreError> {
        let name = account.name.as_str();
        self.transact(|tx, _| {
            let mut state = lock_state(tx, name, self.format())?;
            let before = state.clone();
            let out = change(&mut state);
            if state == before {
                // Nothing to write; rolling back also drops the row a first lock inserted.
                return Ok(Finish::Rollback(out));
            }
            write_state(tx, name, &state)?;
            Ok(Finish::Commit(out))
        })
    }
}

/// Opens a connection as the settings say, without looking at the schema. The whole attempt
/// (every host, TLS, login) has a deadline of `connect_timeout_ms` per host: a server that
/// accepts the connection and then says nothing can't hang `init` or `check`.
pub fn connect(settings: &Settings) -> Result<Client, StoreError> {
    let mut config = settings.connection.clone();
    let tls = match &settings.tls {
        Tls::Off => {
            config.ssl_mode(SslMode::Disable);
            None
        }
        Tls::VerifyFull { ca_file } => {
            config.ssl_mode(SslMode::Require);
            Some(crate::tls::connector(ca_file).map_err(StoreError::Backend)?)
        }
    };
    let hosts = config
        .get_hosts()
        .len()
        .max(config.get_hostaddrs().len())
        .max(1);
    let deadline = settings
        .connect_timeout
        .saturating_mul(u32::try_from(hosts).unwrap_or(u32::MAX));
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let result = match tls {
            None => config.connect(NoTls),
            Some(tls) => config.connect(tls),
        };
        // The receiver may have given up: then this connection is simply dropped.
        let _ = send.send(result);
    });
    match receive.recv_timeout(deadline) {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(connect_error(settings, e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "PostgreSQL at {}: no answer within {} ms",
            settings.endpoints(),
            deadline.as_millis()
        ))),
    }
}

/// A failed connection attempt: a login or database refused is `Backend` (fix the settings,
/// don't fall back), anything on the way there is `Unavailable`. The two TLS failures an
/// admin meets first get a hint.
fn connect_error(settings: &Settings, e: postgres::Error) -> StoreError {
    let endpoints = settings.endpoints();
    let ca_file = match &settings.tls {
        Tls::VerifyFull { ca_file } => ca_file.display().to_string(),
        Tls::Off => String::new(),
    };
    match store_error(e) {
        StoreError::Unavailable(m) if m.contains("UnknownIssuer") => {
            StoreError::Unavailable(format!(
                "could not connect to PostgreSQL at {endpoints}: {m} (the server's certificate \
                 is not from the CA in {ca_file})"
            ))
        }
        StoreError::Unavailable(m) => StoreError::Unavailable(format!(
            "could not connect to PostgreSQL at {endpoints}: {m}"
        )),
        StoreError::Backend(m) if m.contains("server does not support TLS") => {
            StoreError::Backend(format!(
                "PostgreSQL at {endpoints} offers no TLS, and {} asks for tls = \"verify-full\" \
                 (turn ssl on in the server, or set tls = \"off\" for a trusted network)",
                settings.source.display()
            ))
        }
        StoreError::Backend(m) => {
            StoreError::Backend(format!("PostgreSQL at {endpoints} refused: {m}"))
        }
        other => other,
    }
}

/// Whether the database asked for the transaction to be run again.
fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
    )
}

fn unix_time_i64(t: u64) -> Result<i64, Failure> {
    i64::try_from(t)
        .map_err(|_| Failure::Store(StoreError::Backend(format!("time {t} is out of range"))))
}

/// Locks the account's state row (creating an empty one if needed) and returns its state, in
/// `format` or the row's own if newer.
fn lock_state(tx: &mut Transaction<'_>, name: &str, format: Format) -> Result<UserState, Failure> {
    let row = tx.query_typed_one(
        "INSERT INTO twofa_state (account, state) VALUES ($1, '')
         ON CONFLICT (account) DO UPDATE SET account = EXCLUDED.account
         RETURNING state",
        &[(&name, Type::TEXT)],
    )?;
    let text: String = row.try_get(0)?;
    parse_state(name, &text, format)
}

/// The state of a row's text (empty: a row just created), moved forward to `format`.
fn parse_state(name: &str, text: &str, format: Format) -> Result<UserState, Failure> {
    let mut state = if text.is_empty() {
        UserState::empty(format)
    } else {
        UserState::parse(text).map_err(|e| {
            Failure::Store(StoreError::Backend(format!(
                "the state of {name} in the store is not valid: {e}"
            )))
        })?
    };
    state.upgrade_to(format);
    Ok(state)
}

fn write_state(tx: &mut Transaction<'_>, name: &str, state: &UserState) -> Result<(), Failure> {
    let text = state.to_toml();
    tx.query_typed(
        "UPDATE twofa_state SET state = $2, updated_at = EXTRACT(EPOCH FROM now())::bigint
         WHERE account = $1",
        &[(&name, Type::TEXT), (&text, Type::TEXT)],
    )?;
    Ok(())
}

/// Opens and parses a sealed enrollment of `name`.
fn open_enrollment(key: &FleetKey, name: &str, sealed: &[u8]) -> Result<Enrollment, StoreError> {
    let plain = key.open_enrollment(name, sealed).map_err(|_| {
        StoreError::Backend(format!(
            "enrollment of {name} does not decrypt with this host's fleet key (wrong key, or the \
             row was moved)"
        ))
    })?;
    let text = std::str::from_utf8(&plain).map_err(|_| {
        StoreError::Backend(format!("enrollment of {name} in the store is not text"))
    })?;
    Enrollment::parse(text, name).map_err(|e| {
        StoreError::Backend(format!(
            "enrollment of {name} in the store is not valid: {e}"
        ))
    })
}

fn sealed_of(
    client: &mut impl postgres::GenericClient,
    name: &str,
) -> Result<Option<Vec<u8>>, Failure> {
    let row = client.query_typed_opt(
        "SELECT sealed FROM twofa_enrollments WHERE account = $1",
        &[(&name, Type::TEXT)],
    )?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

impl Store for PgStore {
    fn enrollment(&self, account: &Account) -> Result<Option<Enrollment>, StoreError> {
        let name = account.name.as_str();
        self.with_client(|client, key| match sealed_of(client, name)? {
            None => Ok(None),
            Some(sealed) => Ok(Some(open_enrollment(key, name, &sealed)?)),
        })
    }

    fn put_enrollment(
        &self,
        account: &Account,
        e: &Enrollment,
        replace: bool,
    ) -> Result<(), StoreError> {
        let name = account.name.as_str();
        self.transact(|tx, key| {
            // The state row is the account's lock for every writer, enrollments included.
            let mut state = lock_state(tx, name, self.format())?;
            // A replaced enrollment that can't be read is replaced all the same (--force).
            let old = match sealed_of(tx, name)? {
                None => None,
                Some(_) if !replace => {
                    return Err(StoreError::AlreadyEnrolled(name.to_string()).into())
                }
                Some(sealed) => Some(open_enrollment(key, name, &sealed).ok()),
            };
            let sealed = key
                .seal_enrollment(name, e.to_toml().as_bytes())
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            tx.query_typed(
                "INSERT INTO twofa_enrollments (account, sealed, updated_at)
                 VALUES ($1, $2, EXTRACT(EPOCH FROM now())::bigint)
                 ON CONFLICT (account)
                 DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = EXCLUDED.updated_at",
                &[(&name, Type::TEXT), (&sealed, Type::BYTEA)],
            )?;
            // The state follows: counters of a replaced secret and used codes of a replaced
            // recovery set mean nothing any more.
            let before = state.clone();
            state.follow_enrollment(old.flatten().as_ref(), e);
            if state != before {
                write_state(tx, name, &state)?;
            }
            Ok(Finish::Commit(()))
        })
    }

    fn disable_enrollment(
        &self,
        account: &Account,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        let name = account.name.as_str();
        self.transact(|tx, _| {
            lock_state(tx, name, self.format())?;
            let at = unix_time_i64(now)?;
            // Moved in one statement: the sealed row is kept as it was (it still opens for
            // this account only), nothing an admin removes is lost.
            let params: [(&(dyn ToSql + Sync), Type); 2] = [(&name, Type::TEXT), (&at, Type::INT8)];
            let row = tx.query_typed_opt(
                "WITH moved AS (
                     DELETE FROM twofa_enrollments WHERE account = $1 RETURNING account, sealed
                 )
                 INSERT INTO twofa_disabled (account, sealed, disabled_at)
                 SELECT account, sealed, $2 FROM moved
                 RETURNING id",
                &params,
            )?;
            match row {
                None => Ok(Finish::Rollback(None)),
                Some(r) => {
                    let id: i64 = r.try_get(0)?;
                    Ok(Finish::Commit(Some(format!(
                        "table twofa_disabled, id {id}"
                    ))))
                }
            }
        })
    }

    fn enrolled_names(&self) -> Result<Vec<String>, StoreError> {
        let mut names = self.with_client(|client, _| {
            let rows = client.query_typed("SELECT account FROM twofa_enrollments", &[])?;
            let mut names = Vec::with_capacity(rows.len());
            for r in rows {
                names.push(r.try_get::<_, String>(0)?);
            }
            Ok(names)
        })?;
        // Sorted as Rust sorts (bytes), whatever the database's collation.
        names.sort();
        Ok(names)
    }

    fn state(&self, account: &Account) -> Result<UserState, StoreError> {
        let name = account.name.as_str();
        self.with_client(|client, _| {
            let row = client.query_typed_opt(
                "SELECT state FROM twofa_state WHERE account = $1",
                &[(&name, Type::TEXT)],
            )?;
            match row {
                None => Ok(UserState::empty(self.format())),
                Some(r) => parse_state(name, &r.try_get::<_, String>(0)?, self.format()),
            }
        })
    }

    fn update(&self, account: &Account, op: &StateOp) -> Result<OpOutcome, StoreError> {
        self.update_state(account, |s| s.apply(op))
    }
}
