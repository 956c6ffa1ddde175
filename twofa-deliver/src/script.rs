//! The script method: the admin's program replaces this process, once the destination has
//! passed the policy's `destination_pattern`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use regex_lite::Regex;
use toml_edit::DocumentMut;

use crate::error::Failure;
use crate::request::Invocation;
use crate::settings::Settings;

/// The only variable besides `TWOFA_*` a script gets.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The program to run, and the pattern its destination must match.
#[derive(Debug)]
pub(crate) struct ScriptSettings {
    program: PathBuf,
    destination_pattern: Option<Regex>,
}

impl ScriptSettings {
    pub(crate) fn from_document(document: &DocumentMut) -> Result<Self, Failure> {
        let settings = Settings::new(document, "script", &["program", "destination_pattern"])?;
        let program = PathBuf::from(settings.required_string("program")?);
        if !program.is_absolute() {
            return Err(Failure::settings(
                "script setting `program` must be an absolute path",
            ));
        }
        // The module passes the policy's pattern without compiling it (it links no regex
        // engine), so an invalid one is first found here; `twofa-enroll check-config` finds it
        // earlier. Refused rather than skipped: a pattern that can't be checked allows nothing.
        let destination_pattern = settings
            .string("destination_pattern")?
            .map(|p| {
                Regex::new(&p).map_err(|e| {
                    Failure::settings(format!(
                        "script setting `destination_pattern` is not a valid regular expression: {e}"
                    ))
                })
            })
            .transpose()?;
        Ok(ScriptSettings {
            program,
            destination_pattern,
        })
    }

    /// Refuses a destination outside the policy's pattern, before the script runs: the pattern
    /// is the admin's limit on where codes go (phone numbers of one country, say), and an
    /// enrollment made before the pattern was tightened must not get past it. The message is
    /// the one the module logged when it made this check itself.
    pub(crate) fn check_destination(&self, sendto: &str) -> Result<(), Failure> {
        match &self.destination_pattern {
            Some(re) if !re.is_match(sendto) => Err(Failure::settings(format!(
                "destination {sendto} does not match destination_pattern"
            ))),
            _ => Ok(()),
        }
    }
}

/// Replaces this process with the script; returns only if that failed. Beyond
/// [`ScriptSettings::check_destination`] and one line, what the destination means is the
/// script's business.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings;

    fn script_settings(text: &str) -> Result<ScriptSettings, Failure> {
        ScriptSettings::from_document(&settings::parse(text)?)
    }

    #[test]
    fn destinations_are_searched_with_the_pattern_as_written() -> Result<(), Failure> {
        let s = script_settings(
            "program = \"/usr/local/lib/twofa/sms\"\ndestination_pattern = '^\\+41[0-9]{9}$'\n",
        )?;
        assert!(s.check_destination("+41791234567").is_ok());
        let err = s
            .check_destination("+4179123456")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("destination +4179123456 does not match destination_pattern")
        );
        assert!(s.check_destination("+33612345678").is_err());
        // Unanchored, as `Regex::is_match`: the admin anchors with ^ and $.
        let s = script_settings("program = \"/x\"\ndestination_pattern = \"[0-9]{4}\"\n")?;
        assert!(s.check_destination("ab1234cd").is_ok());
        assert!(s.check_destination("ab123cd").is_err());
        Ok(())
    }

    #[test]
    fn without_a_pattern_every_destination_passes() -> Result<(), Failure> {
        let s = script_settings("program = \"/x\"\n")?;
        assert!(s.check_destination("anything at all").is_ok());
        Ok(())
    }

    #[test]
    fn an_invalid_pattern_is_a_settings_error() {
        let err = script_settings("program = \"/x\"\ndestination_pattern = \"(\"\n").err();
        assert_eq!(err.as_ref().map(Failure::exit_code), Some(2));
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("`destination_pattern` is not a valid regular expression"),
            "{text}"
        );
        let err = script_settings("program = \"/x\"\ndestination_pattern = 5\n").err();
        assert!(err.is_some());
    }
}
