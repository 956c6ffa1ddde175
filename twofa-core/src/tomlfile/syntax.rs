//! twofa's own reader for the strict subset of TOML that its files use.
//!
//! Why not a TOML crate: the PAM module must stay under 1 MiB (issue 8), and toml_edit with
//! winnow and their float parsing was the largest removable part of it, for three small files
//! whose every key twofa writes or documents itself. What is read here:
//!
//! - comments, blank lines, LF or CRLF line ends, a leading UTF-8 byte order mark;
//! - `[a.b]` tables and `[[a.b]]` arrays of tables, with bare or quoted key parts;
//! - `key = value`, with a bare or quoted key (not dotted);
//! - basic strings (`"..."` with the TOML escapes), literal strings (`'...'`), decimal
//!   integers in the i64 range, `true`, `false`, local dates (`2026-12-31`), and lists of
//!   these on one or several lines;
//! - dates with a time of day, accepted by the syntax but refused by every accessor.
//!
//! Everything else TOML has (floats, inline tables, multi-line strings, dotted keys, lists of
//! lists, hexadecimal numbers, times alone) is a syntax error that says twofa does not support
//! it, with the line, so an admin is never left guessing. A malformed file is always an error:
//! nothing is skipped or guessed.
//!
//! Safety against hostile input (the fuzzers feed it anything): no recursion (tables live in
//! one flat list and refer to each other by index; lists cannot nest), no indexing that can
//! panic (`get` everywhere), and linear work in the input's length (each key is looked up in
//! its table's ordered index, never by a scan).

use std::collections::BTreeMap;
use std::fmt;

/// What is wrong with the syntax, and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub line: usize,
    pub message: String,
}

type Parsed<T> = Result<T, SyntaxError>;

/// A value on the right of `=` (or in a list).
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Value {
    /// A basic or literal string, escapes resolved.
    Str(String),
    Int(i64),
    Bool(bool),
    /// A local date `YYYY-MM-DD`, already checked to be a real day.
    Date(String),
    /// A date with a time or an offset: valid TOML that no twofa key takes, so the accessors
    /// can say "must be a date like 2026-12-31" instead of a syntax error.
    DateTime,
    /// A list of values, none of them a list.
    Array(Vec<Value>),
}

/// What a key holds.
pub(super) enum Item {
    Value(Value),
    /// `[key]`: index of the table in [`Tree`].
    Table(usize),
    /// `[[key]]`: the tables, in the order of their headers.
    Tables(Vec<usize>),
}

/// One key of a table, with the line that defined it (a header's line, for a table).
pub(super) struct Entry {
    pub key: String,
    pub line: usize,
    pub item: Item,
}

/// One table: its keys in the order of the file.
pub(super) struct Table {
    /// Line of the header that defined it, or of the first header that named it; none for the
    /// top level.
    pub line: Option<usize>,
    /// Defined by its own `[header]`: a second one is an error. False for a table only named
    /// on the way to another (`a` in `[a.b]`), which TOML lets a later `[a]` define.
    explicit: bool,
    pub entries: Vec<Entry>,
    /// Key to position in `entries`: duplicate checks and look-ups without a scan.
    index: BTreeMap<String, usize>,
}

impl Table {
    fn new(line: Option<usize>, explicit: bool) -> Self {
        Table {
            line,
            explicit,
            entries: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    /// The entry for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.index.get(key).and_then(|&i| self.entries.get(i))
    }

    /// Where `key`'s entry stands in [`Table::entries`], if it is there.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        let i = *self.index.get(key)?;
        self.entries.get_mut(i)
    }
}

// Keys only: the values of enrollment files are secrets and must not reach a log by `{:?}`.
impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("line", &self.line)
            .field(
                "keys",
                &self.entries.iter().map(|e| &e.key).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Stands for a missing top level, which [`parse`] never returns; keeps [`Tree::root`] total.
static EMPTY: Table = Table {
    line: None,
    explicit: true,
    entries: Vec::new(),
    index: BTreeMap::new(),
};

/// A parsed document: every table, the top level first.
pub(super) struct Tree {
    tables: Vec<Table>,
}

impl Tree {
    /// The top-level table (always there: [`parse`] starts with it).
    pub fn root(&self) -> &Table {
        self.tables.first().unwrap_or(&EMPTY)
    }

    /// The table that an [`Item::Table`] or [`Item::Tables`] names.
    pub fn table(&self, id: usize) -> Option<&Table> {
        self.tables.get(id)
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree")
            .field("tables", &self.tables)
            .finish()
    }
}

/// Parses `text`, or names the line of the first thing twofa does not read.
pub(super) fn parse(text: &str) -> Parsed<Tree> {
    let mut p = Parser {
        src: text,
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
        tables: vec![Table::new(None, true)],
        current: 0,
    };
    p.document()?;
    Ok(Tree { tables: p.tables })
}

/// What a key of a table holds, copied out so the parser can then change the tables.
enum Found {
    Nothing,
    Table {
        id: usize,
        explicit: bool,
    },
    /// An array of tables, with its last table (where `[a.b]` after `[[a]]` goes).
    Tables {
        last: Option<usize>,
    },
    Value,
}

/// A cursor over the text; `line` is the 1-based line of `pos`.
struct Parser<'t> {
    src: &'t str,
    bytes: &'t [u8],
    pos: usize,
    line: usize,
    tables: Vec<Table>,
    /// The table that `key = value` lines go to: the last header's.
    current: usize,
}

const UNSUPPORTED_VALUE: &str =
    "expected a value: a string in double quotes, a whole number, true, false, a date or a list";

/// A byte that TOML forbids raw in strings and comments (tab is allowed).
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn is_bare_key(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Where a value written without quotes ends.
fn ends_token(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'#')
}

fn fail<T>(line: usize, message: impl Into<String>) -> Parsed<T> {
    Err(SyntaxError {
        line,
        message: message.into(),
    })
}

/// A key or dotted table name as written, safe to show: control characters escaped.
fn shown(path: &[String]) -> String {
    let parts: Vec<String> = path.iter().map(|k| k.escape_debug().to_string()).collect();
    parts.join(".")
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    /// The text from `start` to the cursor. Both ends always sit before an ASCII byte or at
    /// the end, so the slice exists; the empty fallback only keeps this free of panics.
    fn since(&self, start: usize) -> &str {
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// The whole document: one header, key, comment or blank line at a time.
    fn document(&mut self) -> Parsed<()> {
        if self.rest().starts_with('\u{feff}') {
            self.pos = '\u{feff}'.len_utf8();
        }
        loop {
            self.skip_spaces();
            match self.peek() {
                None => return Ok(()),
                Some(b'#') => self.comment()?,
                Some(b'\n' | b'\r') => self.newline()?,
                Some(b'[') => {
                    self.header()?;
                    self.end_of_line()?;
                }
                Some(_) => {
                    self.key_value()?;
                    self.end_of_line()?;
                }
            }
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Spaces, comments and line ends, as inside a list.
    fn skip_blank(&mut self) -> Parsed<()> {
        loop {
            self.skip_spaces();
            match self.peek() {
                Some(b'#') => self.comment()?,
                Some(b'\n' | b'\r') => self.newline()?,
                _ => return Ok(()),
            }
        }
    }

    /// From `#` to the end of the line (left for [`Parser::newline`]).
    fn comment(&mut self) -> Parsed<()> {
        while let Some(b) = self.peek() {
            if b == b'\n' || b == b'\r' {
                break;
            }
            if is_control(b) {
                return fail(self.line, "control character in a comment");
            }
            self.pos += 1;
        }
        Ok(())
    }

    /// LF or CRLF; a CR alone is an error.
    fn newline(&mut self) -> Parsed<()> {
        match (self.peek(), self.bytes.get(self.pos + 1)) {
            (Some(b'\n'), _) => self.pos += 1,
            (Some(b'\r'), Some(b'\n')) => self.pos += 2,
            _ => {
                return fail(
                    self.line,
                    "a carriage return must be followed by a line feed",
                )
            }
        }
        self.line += 1;
        Ok(())
    }

    /// After a header or a value: only spaces and a comment may follow on the line.
    fn end_of_line(&mut self) -> Parsed<()> {
        self.skip_spaces();
        if self.peek() == Some(b'#') {
            self.comment()?;
        }
        match self.peek() {
            None => Ok(()),
            Some(b'\n' | b'\r') => self.newline(),
            Some(_) => fail(self.line, "expected the end of the line (or a # comment)"),
        }
    }

    /// One key: bare (`A-Za-z0-9_-`) or quoted.
    fn key(&mut self) -> Parsed<String> {
        match self.peek() {
            Some(b'"') => self.basic_string(),
            Some(b'\'') => self.literal_string(),
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(is_bare_key) {
                    self.pos += 1;
                }
                if start == self.pos {
                    return fail(
                        self.line,
                        "expected a key: letters, digits, `_` and `-`, or a quoted string",
                    );
                }
                Ok(self.since(start).to_string())
            }
        }
    }

    /// `a.b.c` in a header, spaces allowed around the dots.
    fn key_path(&mut self) -> Parsed<Vec<String>> {
        let mut path = Vec::new();
        loop {
            self.skip_spaces();
            path.push(self.key()?);
            self.skip_spaces();
            if self.peek() != Some(b'.') {
                return Ok(path);
            }
            self.pos += 1;
        }
    }

    /// `[a.b]` or `[[a.b]]`: the table that the next keys go to.
    fn header(&mut self) -> Parsed<()> {
        let line = self.line;
        self.pos += 1;
        let array = self.peek() == Some(b'[');
        if array {
            self.pos += 1;
        }
        let path = self.key_path()?;
        let closing = if array { "]]" } else { "]" };
        if !self.rest().starts_with(closing) {
            return fail(line, format!("expected `{closing}` after the table name"));
        }
        self.pos += closing.len();
        self.current = if array {
            self.open_array_table(&path, line)?
        } else {
            self.open_table(&path, line)?
        };
        Ok(())
    }

    /// What `key` of table `id` holds.
    fn find(&self, id: usize, key: &str) -> Found {
        let Some(entry) = self.tables.get(id).and_then(|t| t.get(key)) else {
            return Found::Nothing;
        };
        match &entry.item {
            Item::Value(_) => Found::Value,
            Item::Table(t) => Found::Table {
                id: *t,
                explicit: self.tables.get(*t).is_some_and(|t| t.explicit),
            },
            Item::Tables(ts) => Found::Tables {
                last: ts.last().copied(),
            },
        }
    }

    /// Adds `key` to table `id`; a key defined twice is an error, as TOML says.
    fn insert(&mut self, id: usize, key: &str, line: usize, item: Item) -> Parsed<()> {
        let Some(table) = self.tables.get_mut(id) else {
            return fail(line, "internal error: no such table");
        };
        if table.index.contains_key(key) {
            return fail(
                line,
                format!("key `{}` is defined twice", key.escape_debug()),
            );
        }
        table.index.insert(key.to_string(), table.entries.len());
        table.entries.push(Entry {
            key: key.to_string(),
            line,
            item,
        });
        Ok(())
    }

    fn new_table(&mut self, line: usize, explicit: bool) -> usize {
        self.tables.push(Table::new(Some(line), explicit));
        self.tables.len() - 1
    }

    /// The table named by `path` (all but the last part of a header), made on the way if
    /// missing; through an array of tables, its last table.
    fn walk(&mut self, path: &[String], line: usize) -> Parsed<usize> {
        let mut id = 0;
        for (n, key) in path.iter().enumerate() {
            id = match self.find(id, key) {
                Found::Nothing => {
                    let new = self.new_table(line, false);
                    self.insert(id, key, line, Item::Table(new))?;
                    new
                }
                Found::Table { id, .. } | Found::Tables { last: Some(id) } => id,
                Found::Tables { last: None } | Found::Value => {
                    let name = shown(path.get(..=n).unwrap_or(path));
                    return fail(line, format!("`{name}` is a value, not a table"));
                }
            };
        }
        Ok(id)
    }

    /// `[path]`: a new table, or one so far only named on the way to another.
    fn open_table(&mut self, path: &[String], line: usize) -> Parsed<usize> {
        let Some((last, parents)) = path.split_last() else {
            return fail(line, "expected a table name");
        };
        let parent = self.walk(parents, line)?;
        let name = shown(path);
        match self.find(parent, last) {
            Found::Nothing => {
                let id = self.new_table(line, true);
                self.insert(parent, last, line, Item::Table(id))?;
                Ok(id)
            }
            Found::Table {
                id,
                explicit: false,
            } => {
                if let Some(t) = self.tables.get_mut(id) {
                    t.explicit = true;
                    t.line = Some(line);
                }
                if let Some(e) = self.tables.get_mut(parent).and_then(|t| t.get_mut(last)) {
                    e.line = line;
                }
                Ok(id)
            }
            Found::Table { explicit: true, .. } => {
                fail(line, format!("table [{name}] is defined twice"))
            }
            Found::Tables { .. } => fail(
                line,
                format!("[{name}] is an array of tables: write [[{name}]]"),
            ),
            Found::Value => fail(line, format!("`{name}` is a value, not a table")),
        }
    }

    /// `[[path]]`: one more table in the array.
    fn open_array_table(&mut self, path: &[String], line: usize) -> Parsed<usize> {
        let Some((last, parents)) = path.split_last() else {
            return fail(line, "expected a table name");
        };
        let parent = self.walk(parents, line)?;
        let name = shown(path);
        match self.find(parent, last) {
            Found::Nothing => {
                let id = self.new_table(line, true);
                self.insert(parent, last, line, Item::Tables(vec![id]))?;
                Ok(id)
            }
            Found::Tables { .. } => {
                let id = self.new_table(line, true);
                if let Some(Entry {
                    item: Item::Tables(ids),
                    ..
                }) = self.tables.get_mut(parent).and_then(|t| t.get_mut(last))
                {
                    ids.push(id);
                }
                Ok(id)
            }
            Found::Table { .. } => fail(
                line,
                format!("[{name}] is a table: an array of tables is written [[{name}]] every time"),
            ),
            Found::Value => fail(line, format!("`{name}` is a value, not a table")),
        }
    }

    /// `key = value`, into the current table.
    fn key_value(&mut self) -> Parsed<()> {
        let line = self.line;
        let key = self.key()?;
        self.skip_spaces();
        match self.peek() {
            Some(b'=') => self.pos += 1,
            Some(b'.') => {
                return fail(
                    line,
                    "dotted keys are not supported by twofa: write the key under a [table] header",
                )
            }
            _ => return fail(line, "expected `=` after the key"),
        }
        self.skip_spaces();
        let value = self.value(false)?;
        self.insert(self.current, &key, line, Item::Value(value))
    }

    /// One value; `in_list` refuses a list inside a list.
    fn value(&mut self, in_list: bool) -> Parsed<Value> {
        let line = self.line;
        match self.peek() {
            Some(b'"') => self.basic_string().map(Value::Str),
            Some(b'\'') => self.literal_string().map(Value::Str),
            Some(b'[') if in_list => fail(line, "lists inside lists are not supported by twofa"),
            Some(b'[') => self.list(),
            Some(b'{') => fail(
                line,
                "inline tables are not supported by twofa: write a [table]",
            ),
            _ => self.scalar(),
        }
    }

    /// `[v, v, ...]`, over several lines if need be, with comments and a trailing comma.
    fn list(&mut self) -> Parsed<Value> {
        let line = self.line;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_blank()?;
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return fail(line, "unterminated list: the closing `]` is missing"),
                Some(_) => items.push(self.value(true)?),
            }
            self.skip_blank()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return fail(line, "unterminated list: the closing `]` is missing"),
                Some(_) => return fail(self.line, "expected `,` or `]` in the list"),
            }
        }
    }

    /// A value without quotes: a number, a boolean or a date (with a time, `T` or one space
    /// between them).
    fn scalar(&mut self) -> Parsed<Value> {
        let line = self.line;
        let start = self.pos;
        self.skip_token();
        let date_then_time =
            self.rest().as_bytes().get(..2).is_some_and(|b| {
                b.first() == Some(&b' ') && b.get(1).is_some_and(u8::is_ascii_digit)
            });
        if date_then_time && is_date_shape(self.since(start)) {
            self.pos += 1;
            self.skip_token();
        }
        classify(self.since(start)).or_else(|message| fail(line, message))
    }

    fn skip_token(&mut self) {
        while self.peek().is_some_and(|b| !ends_token(b)) {
            self.pos += 1;
        }
    }

    /// `"..."` on one line, escapes resolved.
    fn basic_string(&mut self) -> Parsed<String> {
        let line = self.line;
        if self.rest().starts_with("\"\"\"") {
            return fail(
                line,
                "multi-line strings (\"\"\") are not supported by twofa",
            );
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b != b'"' && b != b'\\' && !is_control(b))
            {
                self.pos += 1;
            }
            out.push_str(self.since(start));
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                None | Some(b'\n' | b'\r') => {
                    return fail(line, "unterminated string: the closing `\"` is missing")
                }
                Some(_) => {
                    return fail(
                        line,
                        "control characters in a string must be escaped (\\t, \\n, \\u0001...)",
                    )
                }
            }
        }
    }

    /// After a backslash: one escape of a basic string.
    fn escape(&mut self) -> Parsed<char> {
        let c = match self.peek() {
            Some(b'b') => '\u{8}',
            Some(b't') => '\t',
            Some(b'n') => '\n',
            Some(b'f') => '\u{c}',
            Some(b'r') => '\r',
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'u') => return self.unicode(4),
            Some(b'U') => return self.unicode(8),
            _ => {
                return fail(
                    self.line,
                    "invalid escape: use \\\\ \\\" \\b \\t \\n \\f \\r \\uXXXX or \\UXXXXXXXX",
                )
            }
        };
        self.pos += 1;
        Ok(c)
    }

    /// `\uXXXX` or `\UXXXXXXXX` (cursor on the `u`): a Unicode scalar value, not a surrogate.
    fn unicode(&mut self, digits: usize) -> Parsed<char> {
        let start = self.pos + 1;
        let c = self
            .src
            .get(start..start + digits)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match c {
            Some(c) => {
                self.pos = start + digits;
                Ok(c)
            }
            None => fail(
                self.line,
                format!(
                    "invalid escape: {} needs {digits} hex digits of a Unicode character (not a surrogate)",
                    if digits == 4 { "\\u" } else { "\\U" }
                ),
            ),
        }
    }

    /// `'...'` on one line, taken as written.
    fn literal_string(&mut self) -> Parsed<String> {
        let line = self.line;
        if self.rest().starts_with("'''") {
            return fail(line, "multi-line strings (''') are not supported by twofa");
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b'\'') => break,
                None | Some(b'\n' | b'\r') => {
                    return fail(line, "unterminated string: the closing `'` is missing")
                }
                Some(b) if is_control(b) => {
                    return fail(line, "control characters are not allowed in a '...' string")
                }
                Some(_) => self.pos += 1,
            }
        }
        let s = self.since(start).to_string();
        self.pos += 1;
        Ok(s)
    }
}

/// A value written without quotes, or why it is refused.
fn classify(token: &str) -> Result<Value, String> {
    match token {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if is_date_shape(token) {
        return match super::parse_date(token) {
            Some(_) => Ok(Value::Date(token.to_string())),
            None => Err(format!("{token} is not a real date")),
        };
    }
    if let (Some(date), Some(time)) = (token.get(..10), token.get(10..)) {
        if is_date_shape(date) {
            return match super::parse_date(date).is_some() && is_time_part(time) {
                true => Ok(Value::DateTime),
                false => Err("invalid date and time".to_string()),
            };
        }
    }
    if token.contains(':') {
        return Err("times of day are not supported by twofa".to_string());
    }
    integer(token).map(Value::Int).map_err(str::to_string)
}

/// `dddd-dd-dd`, digits not yet checked to make a real day.
fn is_date_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// `Thh:mm:ss[.frac][Z|±hh:mm]` after a date (`T`, `t` or a space first).
fn is_time_part(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['T', 't', ' ']) else {
        return false;
    };
    let Some((hms, rest)) = rest.split_at_checked(8) else {
        return false;
    };
    if !is_clock(hms, true) {
        return false;
    }
    let rest = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return false;
            }
            frac.get(digits..).unwrap_or("")
        }
        None => rest,
    };
    match rest {
        "" | "Z" | "z" => true,
        _ => rest
            .strip_prefix(['+', '-'])
            .is_some_and(|offset| is_clock(offset, false)),
    }
}

/// `hh:mm:ss` (or `hh:mm` for an offset) with hours, minutes and seconds in range.
fn is_clock(s: &str, seconds: bool) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let limits: &[u32] = if seconds { &[23, 59, 60] } else { &[23, 59] };
    parts.len() == limits.len()
        && parts.iter().zip(limits).all(|(p, &max)| {
            p.len() == 2
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse().is_ok_and(|n: u32| n <= max)
        })
}

/// A decimal integer as TOML writes it: optional sign, `_` only between digits, no leading
/// zero, within i64.
fn integer(token: &str) -> Result<i64, &'static str> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    if ["0x", "0o", "0b"].iter().any(|p| digits.starts_with(p)) {
        return Err("hexadecimal, octal and binary numbers are not supported by twofa");
    }
    let float_chars =
        |b: u8| b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'e' | b'E' | b'+' | b'-');
    let is_float = matches!(digits, "inf" | "nan")
        || (digits.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
            && digits.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && digits.bytes().all(float_chars));
    if is_float {
        return Err("numbers with a fraction or exponent (floats) are not supported by twofa");
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return Err(UNSUPPORTED_VALUE);
    }
    if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return Err("`_` in a number must stand between two digits");
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err("a number must not start with 0");
    }
    let plain: String = token.chars().filter(|&c| c != '_').collect();
    plain
        .parse()
        .map_err(|_| "the number is too large (at most 9223372036854775807 either side of 0)")
}

/// `s` as a TOML basic string, quotes included, that [`parse`] reads back as `s`: backslash
/// and quote escaped, control characters as `\b \t \n \f \r` or `\uXXXX`.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            // C0, DEL and C1: the parser refuses the first two raw; C1 would reach terminals.
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The value of `key` at the top level of `text`.
    fn value(text: &str, key: &str) -> Result<Value, SyntaxError> {
        let tree = parse(text)?;
        match tree.root().get(key).map(|e| &e.item) {
            Some(Item::Value(v)) => Ok(v.clone()),
            _ => fail(0, format!("no value {key}")),
        }
    }

    /// The line and message of the syntax error in `text`.
    fn error(text: &str) -> (usize, String) {
        match parse(text) {
            Ok(_) => (0, format!("accepted: {text:?}")),
            Err(e) => (e.line, e.message),
        }
    }

    fn string(text: &str) -> Option<String> {
        match value(&format!("k = {text}\n"), "k") {
            Ok(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn int(text: &str) -> Option<i64> {
        match value(&format!("k = {text}\n"), "k") {
            Ok(Value::Int(i)) => Some(i),
            _ => None,
        }
    }

    #[test]
    fn every_supported_form_is_read() -> Result<(), SyntaxError> {
        let text = "\u{feff}# comment\r\n\
                    top = 'lit \"x\"' # trailing\r\n\
                    \"quoted key\" = true\n\
                    'lit key' = false\n\
                    \n\
                    [a . \"b\"]\n\
                    d = 2026-12-31\n\
                    dt = 1979-05-27 07:32:00.5+01:00\n\
                    list = [\n  \"x\", # one\n  'y',\n\n]\n\
                    empty = []\n\
                    [[f]]\n\
                    n = -3\n\
                    [f.sub]\n\
                    [[f]]\n\
                    n = 1_000\n\
                    [a]\n\
                    k = 1";
        let tree = parse(text)?;
        let root = tree.root();
        let keys: Vec<&str> = root.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["top", "quoted key", "lit key", "a", "f"]);
        assert_eq!(root.get("quoted key").map(|e| e.line), Some(3));
        assert!(
            matches!(root.get("top").map(|e| &e.item), Some(Item::Value(Value::Str(s))) if s == "lit \"x\"")
        );
        let Some(Item::Table(a)) = root.get("a").map(|e| &e.item) else {
            return fail(0, "no [a]");
        };
        let a = tree.table(*a).ok_or_else(|| SyntaxError {
            line: 0,
            message: "a".into(),
        })?;
        // `a` was named by [a.b] on line 6, then defined by [a] on line 20.
        assert_eq!(
            (a.line, root.get("a").map(|e| e.line)),
            (Some(20), Some(20))
        );
        let Some(Item::Tables(fs)) = root.get("f").map(|e| &e.item) else {
            return fail(0, "no [[f]]");
        };
        assert_eq!(fs.len(), 2);
        let lines: Vec<Option<usize>> = fs
            .iter()
            .map(|&i| tree.table(i).and_then(|t| t.line))
            .collect();
        assert_eq!(lines, [Some(15), Some(18)]);
        let first = fs.first().and_then(|&i| tree.table(i));
        assert!(first.is_some_and(|t| t.get("sub").is_some()));
        Ok(())
    }

    #[test]
    fn lists_hold_strings_and_numbers() -> Result<(), SyntaxError> {
        let v = value("k = [ 1, \"a\" ,\n# c\n 'b' , ]", "k")?;
        assert!(
            v == Value::Array(vec![
                Value::Int(1),
                Value::Str("a".into()),
                Value::Str("b".into())
            ])
        );
        Ok(())
    }

    #[test]
    fn integers_follow_toml() {
        assert_eq!(int("0"), Some(0));
        assert_eq!(int("-0"), Some(0));
        assert_eq!(int("+1"), Some(1));
        assert_eq!(int("1_000"), Some(1000));
        assert_eq!(int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(int("9_223_372_036_854_775_807"), Some(i64::MAX));
        for bad in [
            "01",
            "+01",
            "-0_1",
            "1__0",
            "_1",
            "1_",
            "9223372036854775808",
            "99999999999999999999999",
            "0x1F",
            "0o7",
            "0b1",
            "1.5",
            "1e3",
            "inf",
            "-nan",
            "+",
            "-",
            "1-2",
            "ten",
            "True",
        ] {
            assert_eq!(int(bad), None, "{bad}");
            assert_eq!(error(&format!("a = 1\nk = {bad}\n")).0, 2, "{bad}");
        }
    }

    #[test]
    fn escapes_are_resolved_and_checked() {
        assert_eq!(
            string(r#""a\\b\"c\b\t\n\f\r\u00e9\U0001F600""#).as_deref(),
            Some("a\\b\"c\u{8}\t\n\u{c}\r\u{e9}\u{1F600}")
        );
        assert_eq!(string("'C:\\path'").as_deref(), Some("C:\\path"));
        assert_eq!(string("\"\"").as_deref(), Some(""));
        assert_eq!(string("\"tab\tok é\"").as_deref(), Some("tab\tok é"));
        for bad in [
            r#""\x41""#,
            r#""\e""#,
            r#""\uD800""#,
            r#""\U00110000""#,
            r#""\u12""#,
            r#""\u+123""#,
            "\"bell\u{7}\"",
            "\"del\u{7f}\"",
            "'nul\u{0}'",
            r#""\"#,
            "\"a\\",
        ] {
            assert_eq!(error(&format!("\n\nk = {bad}\n")).0, 3, "{bad:?}");
        }
    }

    #[test]
    fn refused_forms_name_their_line() {
        for (text, line, words) in [
            ("a = 1\nb = = 2\n", 2, "expected a value"),
            ("a = 1\n\nx = { y = 1 }\n", 3, "inline tables"),
            ("a.b = 1\n", 1, "dotted keys"),
            ("k = \"\"\"x\"\"\"\n", 1, "multi-line"),
            ("k = '''x'''\n", 1, "multi-line"),
            ("k = 1.5\n", 1, "floats"),
            ("k = [[1]]\n", 1, "lists inside lists"),
            ("k = [1,\n2\n", 1, "unterminated list"),
            ("k = [1 2]\n", 1, "`,` or `]`"),
            ("k = [,]\n", 1, "expected a value"),
            ("k = 07:32:00\n", 1, "times of day"),
            ("k = 2026-02-30\n", 1, "not a real date"),
            ("k = 2026-12-31T25:00:00\n", 1, "date and time"),
            ("k = 2026-12-31T10:00:00Q\n", 1, "date and time"),
            ("[t]\nk = 1\n[t]\n", 3, "defined twice"),
            ("[t.u]\n[t.u]\n", 2, "defined twice"),
            ("[t]\nk = 1\nk = 2\n", 3, "defined twice"),
            ("t = 1\n[t]\n", 2, "is a value"),
            ("t = 1\n[t.u]\n", 2, "is a value"),
            ("[[t]]\n[t]\n", 2, "array of tables"),
            ("[t]\n[[t]]\n", 2, "is a table"),
            ("[t\n", 1, "`]`"),
            ("[[t]\n", 1, "`]]`"),
            ("[]\n", 1, "expected a key"),
            ("[t] x\n", 1, "end of the line"),
            ("k = 1 2\n", 1, "end of the line"),
            ("k\n", 1, "expected `=`"),
            ("k =\n", 1, "expected a value"),
            ("k = 1\r", 1, "carriage return"),
            ("# bell \u{7}\n", 1, "comment"),
            ("\n\nk = \"unterminated", 3, "unterminated string"),
            ("k = 'open\nx = 1'\n", 1, "unterminated string"),
        ] {
            let (got, message) = error(text);
            assert_eq!(got, line, "{text:?}: {message}");
            assert!(message.contains(words), "{text:?}: {message}");
        }
    }

    #[test]
    fn crlf_and_lf_count_lines_alike() {
        assert_eq!(error("a = 1\r\n\r\nb = ?\r\n").0, 3);
        assert_eq!(error("a = 1\n\nb = ?\n").0, 3);
    }

    #[test]
    fn quote_escapes_what_it_must() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            quote("\u{8}\t\n\u{c}\r\u{1}\u{7f}\u{85}é"),
            r#""\b\t\n\f\r\u0001\u007F\u0085é""#
        );
    }

    proptest! {
        #[test]
        fn quote_round_trips(s in any::<String>()) {
            prop_assert_eq!(string(&quote(&s)), Some(s));
        }

        #[test]
        fn any_text_parses_or_errs_within_its_lines(s in any::<String>()) {
            if let Err(e) = parse(&s) {
                let lines = s.bytes().filter(|&b| b == b'\n').count() + 1;
                prop_assert!((1..=lines).contains(&e.line));
            }
        }

        #[test]
        fn toml_like_text_never_panics(s in "[\\[\\]\"'=#.,:{}\\\\a-c0-9 \\t\\r\\n_+-]{0,60}") {
            let _ = parse(&s);
        }
    }
}
