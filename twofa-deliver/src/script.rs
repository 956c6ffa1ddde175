//! The script method: the admin's program replaces this process.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use toml_edit::DocumentMut;

use crate::error::Failure;
use crate::request::Invocation;
use crate::settings::Settings;

/// The only variable besides `TWOFA_*` a script gets.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The program to run.
#[derive(Debug)]
pub(crate) struct ScriptSettings {
    program: PathBuf,
}

impl ScriptSettings {
    pub(crate) fn from_document(document: &DocumentMut) -> Result<Self, Failure> {
        let settings = Settings::new(document, "script", &["program"])?;
        let program = PathBuf::from(settings.required_string("program")?);
        if !program.is_absolute() {
            return Err(Failure::settings(
                "script setting `program` must be an absolute path",
            ));
        }
        Ok(ScriptSettings { program })
    }
}

/// Replaces this process with the script; returns only if that failed. The destination gets no
/// check beyond one line: what it means is the script's business.
pub(crate) fn exec(settings: &ScriptSettings, invocation: &Invocation) -> Failure {
    let err = Command::new(&settings.program)
        .env_clear()
        .envs(invocation.environment())
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .current_dir("/")
        .exec();
    Failure::delivery(format!("cannot run {}: {err}", settings.program.display()))
}
