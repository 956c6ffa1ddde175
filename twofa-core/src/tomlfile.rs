//! Reading twofa's TOML files key by key, so every error can name the key and its line.
//!
//! The config, enrollment and state files are all read through [`Doc`] and [`Fields`]: no serde,
//! because an admin needs "`/etc/twofa/twofa.toml:7: key `totp.digits`: must be 6 to 8`", and
//! because a key that a later version will support must say "not supported yet" instead of
//! "unknown key". Every key of a table must be taken, or [`Fields::finish`] reports it.

use std::fmt;
use std::marker::PhantomData;

mod syntax;

use syntax::{Item, Table, Tree, Value};

/// What is wrong with one key (or the file's syntax), with its 1-based line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// 1-based line of the key or value, if known.
    pub line: Option<usize>,
    /// Dotted key, such as `totp.digits`; empty for a syntax error.
    pub key: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}: ")?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "key `{}`: {}", self.key, self.message)
        }
    }
}

/// A parsed TOML document that remembers where each key stood.
///
/// It owns every value (escapes resolved), so [`Fields`] hand out `&str` borrowed from it.
/// The lifetime is that of the text, kept so callers written for a borrowing parser still
/// compile.
#[derive(Debug)]
pub struct Doc<'a> {
    tree: Tree,
    text: PhantomData<&'a str>,
}

impl<'a> Doc<'a> {
    /// Parses `text` (twofa's subset of TOML, see `tomlfile/syntax.rs`); a syntax error names
    /// its line.
    pub fn parse(text: &'a str) -> Result<Self, FieldError> {
        match syntax::parse(text) {
            Ok(tree) => Ok(Doc {
                tree,
                text: PhantomData,
            }),
            Err(e) => Err(FieldError {
                line: Some(e.line),
                key: String::new(),
                message: format!("not valid TOML: {}", e.message),
            }),
        }
    }

    /// The top-level table's fields.
    pub fn root(&self) -> Fields<'_> {
        Fields::new(&self.tree, self.tree.root(), "")
    }
}

/// A TOML basic string for `s`, quotes included, that [`Doc::parse`] reads back as `s`.
pub fn quote(s: &str) -> String {
    syntax::quote(s)
}

/// The keys of one table, taken one by one; whatever is not taken is reported as unknown.
#[derive(Debug)]
pub struct Fields<'a> {
    tree: &'a Tree,
    table: &'a Table,
    prefix: String,
    /// Which of the table's entries were taken, by position (a key that is absent needs no
    /// record: a login's policy file takes dozens of keys and has few).
    taken: Vec<bool>,
}

impl<'a> Fields<'a> {
    fn new(tree: &'a Tree, table: &'a Table, prefix: &str) -> Self {
        Fields {
            tree,
            table,
            prefix: prefix.to_string(),
            taken: vec![false; table.entries.len()],
        }
    }

    /// Dotted name of `key` in this table.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.prefix, key)
        }
    }

    /// Line of `key` (for a table, its header's), if present.
    pub fn line(&self, key: &str) -> Option<usize> {
        self.table.get(key).map(|e| e.line)
    }

    /// An error about `key`, with its line (else the line of this table's header).
    pub fn error(&self, key: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            line: self.line(key).or(self.table.line),
            key: self.path(key),
            message: message.into(),
        }
    }

    fn take(&mut self, key: &str) -> Option<&'a Item> {
        let table: &'a Table = self.table;
        let at = table.position(key)?;
        if let Some(t) = self.taken.get_mut(at) {
            *t = true;
        }
        table.entries.get(at).map(|e| &e.item)
    }

    /// Takes `key` if it holds a plain value; `Err(())` if it holds a table.
    fn take_value(&mut self, key: &str) -> Result<Option<&'a Value>, ()> {
        match self.take(key) {
            None => Ok(None),
            Some(Item::Value(v)) => Ok(Some(v)),
            Some(_) => Err(()),
        }
    }

    /// Whether the table has `key` at all.
    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    /// A string value, if present.
    pub fn string(&mut self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.take_value(key) {
            Ok(None) => Ok(None),
            Ok(Some(Value::Str(s))) => Ok(Some(s)),
            _ => Err(self.error(key, "must be a string (in double quotes)")),
        }
    }

    /// An integer value, if present.
    pub fn integer(&mut self, key: &str) -> Result<Option<i64>, FieldError> {
        match self.take_value(key) {
            Ok(None) => Ok(None),
            Ok(Some(Value::Int(i))) => Ok(Some(*i)),
            _ => Err(self.error(key, "must be a whole number")),
        }
    }

    /// A non-negative integer no larger than `max`, if present.
    pub fn unsigned(&mut self, key: &str, min: u64, max: u64) -> Result<Option<u64>, FieldError> {
        match self.integer(key)? {
            None => Ok(None),
            Some(i) => match u64::try_from(i) {
                Ok(u) if (min..=max).contains(&u) => Ok(Some(u)),
                _ => Err(self.error(key, format!("must be from {min} to {max}, not {i}"))),
            },
        }
    }

    /// A calendar date (`2026-12-31` as a TOML date, or the same in quotes), if present,
    /// as days since 1970-01-01. A date with a time is refused: twofa counts whole days.
    pub fn date(&mut self, key: &str) -> Result<Option<i64>, FieldError> {
        let text = match self.take_value(key) {
            Ok(None) => return Ok(None),
            Ok(Some(Value::Str(s) | Value::Date(s))) => s.as_str(),
            _ => "",
        };
        parse_date(text)
            .map(Some)
            .ok_or_else(|| self.error(key, "must be a date like 2026-12-31"))
    }

    /// An array of strings, if present.
    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<&'a str>>, FieldError> {
        let array = match self.take_value(key) {
            Ok(None) => return Ok(None),
            Ok(Some(Value::Array(a))) => a,
            _ => return Err(self.error(key, "must be a list of strings, like [\"a\", \"b\"]")),
        };
        let mut out = Vec::with_capacity(array.len());
        for v in array {
            match v {
                Value::Str(s) => out.push(s.as_str()),
                _ => return Err(self.error(key, "must be a list of strings")),
            }
        }
        Ok(Some(out))
    }

    /// A sub-table `[prefix.key]`, if present.
    pub fn table(&mut self, key: &str) -> Result<Option<Fields<'a>>, FieldError> {
        let tree: &'a Tree = self.tree;
        let Some(item) = self.take(key) else {
            return Ok(None);
        };
        let path = self.path(key);
        match item {
            Item::Table(id) => match tree.table(*id) {
                Some(t) => Ok(Some(Fields::new(tree, t, &path))),
                None => Err(self.error(key, format!("must be a table, written [{path}]"))),
            },
            _ => Err(self.error(key, format!("must be a table, written [{path}]"))),
        }
    }

    /// An array of tables `[[prefix.key]]`, possibly empty.
    pub fn tables(&mut self, key: &str) -> Result<Vec<Fields<'a>>, FieldError> {
        let tree: &'a Tree = self.tree;
        let Some(item) = self.take(key) else {
            return Ok(Vec::new());
        };
        let path = self.path(key);
        match item {
            Item::Tables(ids) => Ok(ids
                .iter()
                .filter_map(|&id| tree.table(id))
                .map(|t| Fields::new(tree, t, &path))
                .collect()),
            _ => Err(self.error(key, format!("must be written [[{path}]]"))),
        }
    }

    /// Takes `key` if present and reports it as a key that a later version supports.
    pub fn not_supported_yet(&mut self, key: &str) -> Result<(), FieldError> {
        if self.has(key) {
            let err = self.error(key, "not supported yet by this version of twofa");
            let _ = self.take(key);
            return Err(err);
        }
        Ok(())
    }

    /// Fails on the first key that was not taken: an unknown key is an error, never ignored.
    pub fn finish(&self) -> Result<(), FieldError> {
        for (entry, taken) in self.table.entries.iter().zip(&self.taken) {
            if !taken {
                return Err(self.error(&entry.key, "unknown key"));
            }
        }
        Ok(())
    }
}

/// `YYYY-MM-DD` as days since 1970-01-01 (proleptic Gregorian), if it is a real date.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || text.len() != 10 {
        return None;
    }
    crate::calendar::days_from_civil(y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_since_the_epoch() -> Result<(), FieldError> {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-12-31"), Some(20_818));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        for bad in [
            "2025-02-29",
            "2026-13-01",
            "2026-1-1",
            "tomorrow",
            "2026-12-31x",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        let doc = Doc::parse("a = 2026-12-31\nb = \"2026-12-31\"\nc = 2026-12-31T10:00:00Z\n")?;
        let mut root = doc.root();
        assert_eq!(root.date("a")?, Some(20_818));
        assert_eq!(root.date("b")?, Some(20_818));
        assert!(root.date("c").is_err());
        Ok(())
    }

    #[test]
    fn syntax_error_names_its_line() {
        let err = Doc::parse("a = 1\nb = = 2\n").err();
        assert_eq!(err.and_then(|e| e.line), Some(2));
    }

    #[test]
    fn unknown_key_names_key_and_line() -> Result<(), FieldError> {
        let doc = Doc::parse("version = 1\n\n[totp]\ndigits = 6\ncolour = \"red\"\n")?;
        let mut root = doc.root();
        root.integer("version")?;
        let mut totp = root
            .table("totp")?
            .ok_or_else(|| root.error("totp", "missing"))?;
        totp.integer("digits")?;
        let err = totp.finish().err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("5: key `totp.colour`: unknown key".to_string())
        );
        Ok(())
    }

    #[test]
    fn wrong_type_and_range_are_reported() -> Result<(), FieldError> {
        let doc = Doc::parse("a = \"x\"\nb = 99\n")?;
        let mut root = doc.root();
        assert!(root.integer("a").is_err());
        let e = root.unsigned("b", 6, 8).err();
        assert_eq!(
            e.map(|e| e.to_string()),
            Some("2: key `b`: must be from 6 to 8, not 99".into())
        );
        Ok(())
    }
}
