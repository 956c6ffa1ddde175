//! From the name PAM was given to the account twofa keys everything by.
//!
//! The PAM user is looked up in the passwd database (getpwnam_r, so SSSD and LDAP users work);
//! state and enrollment are keyed by the canonical name it returns, so `ALICE` or
//! `alice@EXAMPLE.COM` that resolve to alice share alice's files. A name that resolves to no
//! account creates no file (see "Oracles" in docs/design.md).

use std::fmt;

use nix::unistd::User;

/// Longest PAM user name looked up at all.
pub const MAX_NAME_BYTES: usize = 256;

/// A passwd account, canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The name the passwd database returned (not the one typed).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

/// Where accounts and their groups are looked up: the system's passwd and group databases
/// ([`System`]), or a stand-in in tests.
pub trait Directory {
    /// The canonical account of `name`; `Ok(None)`: no such account.
    fn lookup(&self, name: &str) -> Result<Option<Account>, LookupError>;
    /// The names of the account's groups (primary and supplementary).
    fn groups(&self, account: &Account) -> Result<Vec<String>, LookupError>;
}

/// The system's passwd and group databases, through NSS.
#[derive(Debug, Clone, Copy)]
pub struct System;

impl Directory for System {
    fn lookup(&self, name: &str) -> Result<Option<Account>, LookupError> {
        lookup(name)
    }

    fn groups(&self, account: &Account) -> Result<Vec<String>, LookupError> {
        let name = std::ffi::CString::new(account.name.as_str())
            .map_err(|e| LookupError(e.to_string()))?;
        let gids = nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(account.gid))
            .map_err(|e| LookupError(e.to_string()))?;
        let mut names = Vec::with_capacity(gids.len());
        for gid in gids {
            match nix::unistd::Group::from_gid(gid) {
                Ok(Some(g)) => names.push(g.name),
                Ok(None) => {}
                Err(e) => return Err(LookupError(e.to_string())),
            }
        }
        Ok(names)
    }
}

/// The passwd database could not be asked (not the same as "no such account").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError(pub String);

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the account database could not be read: {}", self.0)
    }
}

impl std::error::Error for LookupError {}

/// Whether `name` is worth asking the passwd database about: not empty, not too long, no
/// NUL, `/` or control characters, not `.` or `..`.
pub fn plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c.is_control())
}

/// Looks `name` up in the passwd database. `Ok(None)`: no such account (or a name that can't
/// be one); such a name must create no file.
///
/// "No such account" is only getpwnam_r returning 0 with no entry, which is how glibc (and
/// musl) report a name every source answered "not found" for. getpwnam(3) also lists ENOENT,
/// ESRCH, EBADF and EPERM as "not found" on some systems, but on glibc they mean a source
/// failed (glibc returns the errno of the last source it could not use): measured on Debian
/// 12 with `passwd: files hesiod` and no Hesiod domain, an unknown name gives ENOENT. So
/// every non-zero return is a [`LookupError`]: an account that can't be looked up is never
/// taken for a deleted one (`status` and `doctor` call an enrollment an orphan only on a
/// definite "no").
pub fn lookup(name: &str) -> Result<Option<Account>, LookupError> {
    if !plausible_name(name) {
        return Ok(None);
    }
    match User::from_name(name) {
        Ok(Some(user)) if plausible_name(&user.name) => Ok(Some(Account {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })),
        Ok(_) => Ok(None),
        Err(e) => Err(LookupError(e.to_string())),
    }
}

/// The home directory of account `name`, from the passwd database.
pub fn home_of(name: &str) -> Option<std::path::PathBuf> {
    User::from_name(name).ok().flatten().map(|u| u.dir)
}

/// The account name a file stem stands for (the inverse of [`Account::file_stem`]).
pub fn name_from_stem(stem: &str) -> Option<String> {
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Account {
    /// The account's file name stem: letters, digits, `_`, `-` and (not first) `.` kept;
    /// every other byte written `%XX`. No stem is empty, `.`/`..`, or contains `/`.
    pub fn file_stem(&self) -> String {
        let mut out = String::with_capacity(self.name.len());
        for (i, b) in self.name.bytes().enumerate() {
            let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
            if keep {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> Account {
        Account {
            name: name.to_string(),
            uid: 1000,
            gid: 1000,
        }
    }

    #[test]
    fn file_stems_are_safe_names() {
        assert_eq!(account("alice").file_stem(), "alice");
        assert_eq!(account("john.doe").file_stem(), "john.doe");
        assert_eq!(account(".hidden").file_stem(), "%2Ehidden");
        assert_eq!(account("a/b").file_stem(), "a%2Fb");
        assert_eq!(
            account("alice@EXAMPLE.COM").file_stem(),
            "alice%40EXAMPLE.COM"
        );
        assert_eq!(account("..").file_stem(), "%2E.");
    }

    #[test]
    fn file_stems_decode_back_to_names() {
        for name in ["alice", "john.doe", ".hidden", "alice@EXAMPLE.COM", "a%b"] {
            assert_eq!(
                name_from_stem(&account(name).file_stem()).as_deref(),
                Some(name)
            );
        }
        assert_eq!(name_from_stem("bad%zz"), None);
    }

    #[test]
    fn names_that_cannot_be_accounts_are_not_looked_up() {
        for bad in ["", ".", "..", "a/b", "a\0b", "a\nb", &"x".repeat(300)] {
            assert!(!plausible_name(bad), "{bad:?}");
            assert_eq!(lookup(bad), Ok(None));
        }
    }

    #[test]
    fn root_is_in_the_root_group() -> Result<(), LookupError> {
        let root = lookup("root")?.ok_or(LookupError("no root".into()))?;
        assert!(System.groups(&root)?.contains(&"root".to_string()));
        Ok(())
    }

    #[test]
    fn root_resolves_to_itself_and_unknown_names_to_nothing() {
        assert_eq!(lookup("root").ok().flatten().map(|a| a.uid), Some(0));
        assert_eq!(lookup("twofa-no-such-user-x9").ok().flatten(), None);
    }
}
