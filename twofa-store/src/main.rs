//! `twofa-store`: the fleet store helper.
//!
//! ```text
//! twofa-store serve [--settings FILE]   the store protocol on stdin/stdout (run by pam_twofa)
//! twofa-store init  [--settings FILE]   create the fleet key if missing; create or migrate the schema
//! twofa-store check [--settings FILE]   connect; check the schema and this host's fleet key
//! ```
//! `serve`'s stdin and stdout are one socket to the module: nothing but protocol lines is
//! ever written there. Exit status: 0 done, 1 failed (one line on stderr), 2 usage.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use twofa_core::store::StoreError;
use twofa_store::pg::{self, PgStore};
use twofa_store::schema::{self, KeyOrigin, SchemaChange};
use twofa_store::seal::{FleetKey, KeyError};
use twofa_store::settings::{self, DEFAULT_PATH};

const USAGE: &str = "usage: twofa-store serve|init|check [--settings FILE]";

const HELP: &str = "\
twofa-store: the fleet store helper of twofa (enrollments and login state in PostgreSQL)

usage: twofa-store serve|init|check [--settings FILE]

  serve   answer the store protocol on stdin/stdout (pam_twofa and twofa-enroll run this)
  init    create the fleet key if missing, then create or migrate the database schema
  check   connect, and check the schema version and this host's fleet key

  --settings FILE   the settings (default /etc/twofa/store.toml; root-only, 0600)

examples:
  twofa-store init                 on the first host: key, schema, key check
  twofa-store check                on every host after copying store.toml and fleet.key
  twofa-enroll store init|check    the same, with the paths from /etc/twofa/twofa.toml

exit status: 0 done, 1 failed (one line on stderr says why), 2 usage error.
See docs/fleet.md.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Serve,
    Init,
    Check,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let (command, settings) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("twofa-store: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Serve => serve(&settings),
        Command::Init => init(&settings),
        Command::Check => check(&settings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("twofa-store: error: {why}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(args: &[String]) -> Result<(Command, PathBuf), String> {
    let mut command = None;
    let mut settings = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = match arg.as_str() {
            "serve" | "init" | "check" if command.is_some() => {
                return Err(format!("one command only, not also {arg}"))
            }
            "serve" => {
                command = Some(Command::Serve);
                continue;
            }
            "init" => {
                command = Some(Command::Init);
                continue;
            }
            "check" => {
                command = Some(Command::Check);
                continue;
            }
            "--settings" => rest.next().ok_or("--settings needs a file")?.as_str(),
            other => match other.strip_prefix("--settings=") {
                Some(v) => v,
                None => return Err(format!("unknown argument {other:?}")),
            },
        };
        if settings.is_some() {
            return Err("--settings given twice".into());
        }
        if !value.starts_with('/') {
            return Err(format!("--settings {value}: must be an absolute path"));
        }
        settings = Some(PathBuf::from(value));
    }
    let command = command.ok_or("no command")?;
    Ok((
        command,
        settings.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
    ))
}

/// The store protocol until end of input. Settings are read now, the database is reached at
/// the first request; a broken setting is the answer to every request, not a silent exit.
fn serve(path: &Path) -> Result<(), String> {
    // Run by the module inside sshd or sudo: whatever they left open is not ours.
    twofa_core::runner::close_inherited_fds();
    let store = PgStore::open(path);
    twofa_core::wire::serve(&store, std::io::stdin().lock(), std::io::stdout().lock())
        .map_err(|e| format!("the module's socket: {e}"))
}

fn init(path: &Path) -> Result<(), String> {
    let settings = settings::load(path).map_err(|e| e.to_string())?;
    let key_file = settings.key_file.clone();
    let (key, origin) = match FleetKey::load(&key_file) {
        Ok(key) => (key, KeyOrigin::File),
        Err(KeyError::Missing(_)) => (
            FleetKey::generate().map_err(|e| e.to_string())?,
            KeyOrigin::New,
        ),
        Err(e) => return Err(e.to_string()),
    };
    let mut client = pg::connect(&settings).map_err(|e| e.to_string())?;
    let created = Cell::new(false);
    let report = schema::init(&mut client, &key, origin, || {
        if origin == KeyOrigin::New {
            key.write_new(&key_file)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            created.set(true);
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    if created.get() {
        println!(
            "created fleet key {}: copy it to every host, root-only, 0600",
            key_file.display()
        );
    }
    match report.schema {
        SchemaChange::Created(v) => println!("created schema version {v}"),
        SchemaChange::Current(v) => println!("schema is at version {v}; nothing to do"),
        SchemaChange::Migrated(from, to) => println!("migrated schema from {from} to {to}"),
    }
    if report.key_check_written {
        println!("wrote the fleet key check: hosts with another key will be refused");
    }
    Ok(())
}

fn check(path: &Path) -> Result<(), String> {
    let settings = settings::load(path).map_err(|e| e.to_string())?;
    let key = FleetKey::load(&settings.key_file).map_err(|e| e.to_string())?;
    let checked = PgStore::new(settings, key)
        .check()
        .map_err(|e| e.to_string())?;
    println!(
        "ok: {}, schema version {}, fleet key matches",
        checked.server, checked.schema_version
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<(Command, PathBuf), String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn commands_and_the_settings_option_are_understood() {
        assert_eq!(
            parsed(&["serve"]),
            Ok((Command::Serve, PathBuf::from(DEFAULT_PATH)))
        );
        assert_eq!(
            parsed(&["check", "--settings", "/s.toml"]),
            Ok((Command::Check, PathBuf::from("/s.toml")))
        );
        assert_eq!(
            parsed(&["--settings=/s.toml", "init"]),
            Ok((Command::Init, PathBuf::from("/s.toml")))
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            &[][..],
            &["serve", "init"],
            &["serve", "--settings"],
            &["serve", "--settings", "rel.toml"],
            &["serve", "--settings=/a", "--settings=/b"],
            &["serve", "-v"],
        ] {
            assert!(parsed(bad).is_err(), "{bad:?}");
        }
    }
}
