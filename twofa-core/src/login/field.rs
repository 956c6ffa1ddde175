//! "Password followed by code" in one field, for the `concat` line of FTP-style daemons.

use zeroize::Zeroizing;

use super::{exemption_of, Request};
use crate::config::Config;
use crate::identity::{Account, Directory};
use crate::policy::{self, Plan, Who};
use crate::recovery;
use crate::store::Store;

/// A password field split into the password and the code typed after it.
#[derive(Debug)]
pub struct Split {
    /// What goes on to the password module as PAM_AUTHTOK.
    pub password: Zeroizing<Vec<u8>>,
    /// The code, for the `Verify` line; `None` when nothing was cut.
    pub code: Option<Zeroizing<Vec<u8>>>,
}

/// Splits "password followed by code" for the `concat` line, before any password is checked.
///
/// The code is the last `digits` characters of the user's own enrollment. Everyone else (a
/// name with no account, an unenrolled user who will be denied, an enrollment that can't be
/// read) is split at the policy's default length, so the split says nothing about who exists;
/// an unreadable enrollment is reported by the `Verify` line, after the password. Users who
/// will be let in without a code (unenrolled under `allow` or in grace, exempt by group or
/// service) keep the whole field as the password.
///
/// This is the one per-user step before the password, and it can't be skipped: where the
/// field is cut depends on the account. So every name costs the same steps, whatever each
/// finds: one account lookup (the one pam_unix makes next on the same name), the groups if
/// the policy names any, and one enrollment read; a name with no account goes through them
/// as a stand-in account of that name, and their answers are thrown away. What still differs
/// is the name service's own time: an unknown name is a miss in every NSS source
/// (docs/security.md, "A remote guesser").
pub fn split_field(
    config: &Config,
    store: &dyn Store,
    dir: &dyn Directory,
    req: &Request<'_>,
    field: &[u8],
) -> Split {
    // A recovery code typed with its dashes ends the field the same way for everyone.
    if recovery::formatted_suffix(field) {
        return cut_code(field, recovery::FORMATTED_LEN as u32);
    }
    let whole = || Split {
        password: Zeroizing::new(field.to_vec()),
        code: None,
    };
    let default = config.totp.params.digits;
    // The same steps for every name, each whatever the one before found; only then is the
    // field cut.
    let account = dir.lookup(req.user).ok().flatten();
    let known = account.is_some();
    let account = account.unwrap_or_else(|| stand_in(req.user));
    let exempt = exemption_of(config, dir, req.service, &account)
        .ok()
        .flatten()
        .is_some();
    let enrollment = store.enrollment(&account);
    if !known {
        return cut_code(field, default);
    }
    if exempt {
        return whole();
    }
    match enrollment {
        Ok(Some(e)) => {
            let digits = e
                .totp()
                .map(|t| t.params.digits)
                .or_else(|| e.hotp().map(|h| h.params.digits));
            cut_code(field, digits.unwrap_or(default))
        }
        Ok(None) => match policy::plan(false, Who::NotEnrolled, None, config.unenrolled, req.now) {
            Plan::Ignore(_) | Plan::Grace(_) => whole(),
            _ => cut_code(field, default),
        },
        Err(_) => cut_code(field, default),
    }
}

/// The account a name with no account goes through [`split_field`]'s steps as: the name as
/// typed (its file stem is as safe as any account's), no uid or gid. Only read, never
/// written: such a name creates no file.
fn stand_in(name: &str) -> Account {
    Account {
        name: name.to_string(),
        uid: u32::MAX,
        gid: u32::MAX,
    }
}

/// Cuts the last `digits` bytes of `field` as the code; the rest is the password. A field
/// shorter than that is all code (the password part is empty and will fail).
pub fn cut_code(field: &[u8], digits: u32) -> Split {
    let cut = field.len().saturating_sub(digits as usize);
    let (password, code) = field.split_at(cut);
    Split {
        password: Zeroizing::new(password.to_vec()),
        code: Some(Zeroizing::new(code.to_vec())),
    }
}
