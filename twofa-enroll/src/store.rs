//! `twofa-enroll store init|check|import`: the fleet store (`[store] kind = "postgres"`).
//!
//! `init` and `check` are the helper's own commands (it holds the database client and the
//! fleet key); this CLI finds the helper and its settings in the policy and runs it with the
//! terminal, so what it says reaches the admin as it is. `import` copies this host's
//! enrollments into the store through the same helper the module uses.

use std::path::Path;
use std::process::Command;

use twofa_core::config::{Config, StoreKind};
use twofa_core::fleet::HelperStore;
use twofa_core::identity;
use twofa_core::store::{FileStore, Store, StoreError};

use crate::context::load_config;
use crate::output::{self, Failure};

/// Arguments of `store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create the fleet key (if missing) and create or migrate the database schema.
    Init {
        /// Write login state in this form from now on. 2 (a sliding failure window) only once
        /// EVERY host runs this release or later: an older host denies the logins of each
        /// account written so. It does not go back.
        #[arg(long, value_name = "VERSION", value_parser = clap::value_parser!(u8).range(1..=2))]
        state_format: Option<u8>,
    },
    /// Connect to the store and check its schema and this host's fleet key.
    Check,
    /// Copy this host's enrollments (under [storage] dir) into the store; existing ones are kept.
    Import,
}

/// Runs `store ACTION`.
pub fn run(config_path: Option<&Path>, args: &Args) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    if config.store.kind != StoreKind::Postgres {
        return Err(Failure::new(format!(
            "{} does not use a fleet store ([store] kind is \"files\"); nothing was done",
            config.source.display()
        ))
        .hint("set [store] kind = \"postgres\" and settings = FILE; see twofa.toml(5) and docs/fleet.md"));
    }
    match args.action {
        Action::Init { state_format } => {
            let format = state_format.map(|v| format!("--state-format={v}"));
            helper(&config, "init", format.as_deref())
        }
        Action::Check => helper(&config, "check", None),
        Action::Import => import(&config),
    }
}

/// Runs the helper's own `init` or `check` with this terminal.
fn helper(config: &Config, word: &str, extra: Option<&str>) -> Result<(), Failure> {
    let status = Command::new(&config.store.helper)
        .arg(word)
        .arg("--settings")
        .arg(&config.store.settings)
        .args(extra)
        .status()
        .map_err(|e| {
            Failure::new(format!(
                "could not run the store helper {}: {e}",
                config.store.helper.display()
            ))
            .hint("[store] helper names it; the package installs /usr/lib/twofa/twofa-store")
        })?;
    if status.success() {
        Ok(())
    } else {
        // The helper said why on stderr.
        Err(Failure::new(format!(
            "store {word} failed; nothing else was done"
        )))
    }
}

/// Copies every local enrollment into the store; one already there is left as it is.
fn import(config: &Config) -> Result<(), Failure> {
    let local = FileStore::new(&config.storage_dir);
    let remote = HelperStore::new(
        &config.store.helper,
        &config.store.settings,
        // An admin's command, not a login: room for a slow link, still never a hang.
        config.store.timeout.max(std::time::Duration::from_secs(10)),
    )
    .per_answer();
    let names = local.enrolled_names()?;
    if names.is_empty() {
        say!(
            "No enrollments under {}: nothing to import.",
            config.storage_dir.display()
        );
        return Ok(());
    }
    let (mut imported, mut kept, mut failed) = (0, 0, 0);
    for name in names {
        let account = match identity::lookup(&name) {
            Ok(Some(a)) => a,
            Ok(None) => {
                output::warn(&format!("{name}: no such account on this host; skipped"));
                failed += 1;
                continue;
            }
            Err(e) => {
                output::warn(&format!("{name}: {e}; skipped"));
                failed += 1;
                continue;
            }
        };
        let enrollment = match local.enrollment(&account) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                output::warn(&format!("{name}: {e}; skipped"));
                failed += 1;
                continue;
            }
        };
        match remote.put_enrollment(&account, &enrollment, false) {
            Ok(()) => {
                say!("imported {name}");
                imported += 1;
            }
            Err(StoreError::AlreadyEnrolled(_)) => {
                say!("kept {name}: already enrolled in the store");
                kept += 1;
            }
            Err(e @ StoreError::Unavailable(_)) => {
                return Err(
                    Failure::new(format!("{e}; imported {imported} before that"))
                        .hint("check the connection with: twofa-enroll store check"),
                )
            }
            Err(e) => {
                output::warn(&format!("{name}: {e}; skipped"));
                failed += 1;
            }
        }
    }
    say!(
        "Imported {imported}, kept {kept} already in the store, {failed} skipped. The local files under {} are unchanged (on_store_error = \"local\" uses them).",
        config.storage_dir.display()
    );
    if failed > 0 {
        return Err(Failure::new(format!(
            "{failed} enrollments were not imported (see above)"
        )));
    }
    Ok(())
}
