//! The settings document on stdin: parsed once, then read key by key with every unknown key
//! refused.

use std::time::Duration;

use toml_edit::{DocumentMut, Item, Table};

use crate::error::Failure;

/// Default budget for one whole delivery (connect, TLS, every read and write).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(8);

/// Parses the document. A syntax error names the line only: the parser's own display quotes the
/// source line, which may be the password's.
pub(crate) fn parse(text: &str) -> Result<DocumentMut, Failure> {
    text.parse::<DocumentMut>().map_err(|err| {
        let line = err
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let first = err.message().lines().next().unwrap_or("syntax error");
        match line {
            Some(line) => Failure::settings(format!("settings on stdin, line {line}: {first}")),
            None => Failure::settings(format!("settings on stdin: {first}")),
        }
    })
}

/// One method's view of the document.
#[derive(Debug)]
pub(crate) struct Settings<'a> {
    method: &'static str,
    table: &'a Table,
}

impl<'a> Settings<'a> {
    /// Checks that every top-level key is one `method` knows.
    pub(crate) fn new(
        document: &'a DocumentMut,
        method: &'static str,
        known: &[&str],
    ) -> Result<Self, Failure> {
        let table = document.as_table();
        if let Some((key, _)) = table.iter().find(|(key, _)| !known.contains(key)) {
            return Err(Failure::settings(format!(
                "unknown setting `{key}` for {method} (known: {})",
                known.join(", ")
            )));
        }
        Ok(Settings { method, table })
    }

    fn item(&self, key: &str) -> Option<&'a Item> {
        self.table.get(key).filter(|item| !item.is_none())
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, Failure> {
        match self.item(key) {
            None => Ok(None),
            Some(item) => item.as_str().map(|s| Some(s.to_string())).ok_or_else(|| {
                Failure::settings(format!("{} setting `{key}` must be a string", self.method))
            }),
        }
    }

    pub(crate) fn required_string(&self, key: &str) -> Result<String, Failure> {
        self.string(key)?
            .ok_or_else(|| Failure::settings(format!("{} setting `{key}` is missing", self.method)))
    }

    pub(crate) fn integer(&self, key: &str) -> Result<Option<i64>, Failure> {
        match self.item(key) {
            None => Ok(None),
            Some(item) => item.as_integer().map(Some).ok_or_else(|| {
                Failure::settings(format!(
                    "{} setting `{key}` must be an integer",
                    self.method
                ))
            }),
        }
    }

    /// `timeout_seconds`: the budget for the whole delivery, 1 to 120 s, default 8 s. The
    /// runner's own deadline (which SIGKILLs) should be a little longer.
    pub(crate) fn timeout(&self) -> Result<Duration, Failure> {
        match self.integer("timeout_seconds")? {
            None => Ok(DEFAULT_TIMEOUT),
            Some(secs @ 1..=120) => Ok(Duration::from_secs(secs.unsigned_abs())),
            Some(_) => Err(Failure::settings(format!(
                "{} setting `timeout_seconds` must be 1 to 120",
                self.method
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_the_line_but_never_quotes_it() {
        let text = "smtp_host = \"mail\"\npassword = \"hunter2\n";
        let err = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let doc = parse("smtp_host = \"x\"\nsmtp_hots = \"y\"\n");
        let err = doc
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|d| Settings::new(d, "email", &["smtp_host"]).map(|_| ()));
        let err = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("`smtp_hots`"), "{err}");
    }

    #[test]
    fn types_and_timeouts_are_checked() -> Result<(), Failure> {
        let doc = parse("a = 1\nb = \"s\"\ntimeout_seconds = 500\n")?;
        let s = Settings::new(&doc, "email", &["a", "b", "timeout_seconds"])?;
        assert!(s.string("a").is_err());
        assert!(s.integer("b").is_err());
        assert_eq!(s.integer("a")?, Some(1));
        assert_eq!(s.string("missing")?, None);
        assert!(s.required_string("missing").is_err());
        assert!(s.timeout().is_err());
        Ok(())
    }
}
