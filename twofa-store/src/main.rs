//! `twofa-store`: the fleet store helper.
//!
//! ```text
//! twofa-store serve [--settings FILE]   the store protocol on stdin/stdout (run by pam_twofa)
//! twofa-store init  [--settings FILE] [--state-format 2]
//!                                       create the fleet key if missing; create or migrate the
//!                                       schema; turn the state format switch on
//! twofa-store check [--settings FILE]   connect; check the schema and this host's fleet key
//! ```
//! `serve`'s stdin and stdout are one socket to the module: nothing but protocol lines is
//! ever written there. Exit status: 0 done, 1 failed (one line on stderr), 2 usage.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use twofa_core::state::Format;
use twofa_core::store::StoreError;
use twofa_store::pg::{self, PgStore};
use twofa_store::schema::{self, FormatChange, KeyOrigin, SchemaChange};
use twofa_store::seal::{FleetKey, KeyError};
use twofa_store::settings::{self, DEFAULT_PATH};

const USAGE: &str = "usage: twofa-store serve|init|check [--settings FILE] [--state-format 2]";

const HELP: &str = "\
twofa-store: the fleet store helper of twofa (enrollments and login state in PostgreSQL)

usage: twofa-store serve|init|check [--settings FILE] [--state-format 2]

  serve   answer the store protocol on stdin/stdout (pam_twofa and twofa-enroll run this)
  init    create the fleet key if missing, then create or migrate the database schema
  check   connect, and check the schema version, this host's fleet key and the state format

  --settings FILE     the settings (default /etc/twofa/store.toml; root-only, 0600)
  --state-format 2    (init) write login state in its version 2 form from now on: a sliding
                      failure window. Only once EVERY host runs this release or later: an older
                      host denies the logins of each account it finds in the new form. There is
                      no going back.

examples:
  twofa-store init                    on the first host: key, schema, key check
  twofa-store check                   on every host after copying store.toml and fleet.key
  twofa-store init --state-format 2   once every host is upgraded
  twofa-enroll store init|check       the same, with the paths from /etc/twofa/twofa.toml

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
    let (command, settings, state_format) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("twofa-store: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Serve => serve(&settings),
        Command::Init => init(&settings, state_format),
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

/// The command, the settings file and `init`'s `--state-format`.
type Parsed = (Command, PathBuf, Option<Format>);

fn parse_args(args: &[String]) -> Result<Parsed, String> {
    let mut command = None;
    let mut settings = None;
    let mut state_format = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let format_value = match arg.as_str() {
            "--state-format" => Some(
                rest.next()
                    .ok_or("--state-format needs a version")?
                    .as_str(),
            ),
            other => other.strip_prefix("--state-format="),
        };
        if let Some(v) = format_value {
            if state_format.is_some() {
                return Err("--state-format given twice".into());
            }
            let format = v
                .parse::<i64>()
                .ok()
                .and_then(Format::from_version)
                .ok_or_else(|| {
                    format!(
                        "--state-format {v}: this twofa writes state formats 1 and {}",
                        twofa_core::state::VERSION
                    )
                })?;
            state_format = Some(format);
            continue;
        }
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
    if state_format.is_some() && command != Command::Init {
        return Err("--state-format goes with init only".into());
    }
    Ok((
        command,
        settings.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
        state_format,
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

fn init(path: &Path, state_format: Option<Format>) -> Result<(), String> {
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
    match state_format.map(|f| schema::set_state_format(&mut client, f)) {
        None => {
            let meta = schema::check(&mut client, &key).map_err(|e| e.to_string())?;
            println!("{}", format_line(meta.state_format));
        }
        Some(Err(e)) => return Err(e.to_string()),
        Some(Ok(FormatChange::Current(f))) => {
            println!("{}; nothing to do", format_line(f));
        }
        Some(Ok(FormatChange::Switched(from, to))) => println!(
            "switched the state format from {} to {}: hosts now write login state in version \
             {} (a sliding failure window); a host older than this release denies the logins \
             of each account written so (\"version {} is not known to this twofa\")",
            from.version(),
            to.version(),
            to.version(),
            to.version()
        ),
    }
    Ok(())
}

/// What `init` and `check` say about the state format switch.
fn format_line(format: Format) -> String {
    match format {
        Format::V1 => "state format 1: the fixed failure window of earlier releases; once every \
                       host runs this release, `twofa-enroll store init --state-format 2` \
                       turns on the sliding window"
            .to_string(),
        f => format!(
            "state format {}: every host must run a release that reads it",
            f.version()
        ),
    }
}

fn check(path: &Path) -> Result<(), String> {
    let settings = settings::load(path).map_err(|e| e.to_string())?;
    let key = FleetKey::load(&settings.key_file).map_err(|e| e.to_string())?;
    let checked = PgStore::new(settings, key)
        .check()
        .map_err(|e| e.to_string())?;
    println!(
        "ok: {}, schema version {}, fleet key matches, state format {}",
        checked.server,
        checked.schema_version,
        checked.state_format.version()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Parsed, String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn commands_and_the_settings_option_are_understood() {
        assert_eq!(
            parsed(&["serve"]),
            Ok((Command::Serve, PathBuf::from(DEFAULT_PATH), None))
        );
        assert_eq!(
            parsed(&["check", "--settings", "/s.toml"]),
            Ok((Command::Check, PathBuf::from("/s.toml"), None))
        );
        assert_eq!(
            parsed(&["--settings=/s.toml", "init"]),
            Ok((Command::Init, PathBuf::from("/s.toml"), None))
        );
        assert_eq!(
            parsed(&["init", "--state-format", "2"]),
            Ok((Command::Init, PathBuf::from(DEFAULT_PATH), Some(Format::V2)))
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
            &["serve", "--state-format", "2"],
            &["init", "--state-format", "3"],
            &["init", "--state-format"],
            &["init", "--state-format=2", "--state-format=2"],
        ] {
            assert!(parsed(bad).is_err(), "{bad:?}");
        }
    }
}
