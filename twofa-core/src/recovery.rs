//! Single-use recovery codes: the way back in when the phone is lost.
//!
//! A code is 12 characters of Crockford's base32 (60 bits), shown as `k7p2-9xq4-m3vd`. Only
//! HMAC-SHA256(salt, code) is stored, with a random salt per user: a stolen enrollment file does
//! not give the codes away, and checking one costs one HMAC (a slow KDF per attempt would let a
//! guesser burn the host's CPU). Typing is forgiving: any case, dashes or spaces anywhere, and
//! the look-alikes `i`/`l` -> `1`, `o` -> `0`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::secret::SecretError;

/// Characters of a code (Crockford's base32: no i, l, o, u).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters per code: 12 x 5 bits = 60 bits.
pub const CODE_CHARS: usize = 12;
/// Length as shown and as typed in a one-field (concat) login: `xxxx-xxxx-xxxx`.
pub const FORMATTED_LEN: usize = CODE_CHARS + 2;
/// Bytes of the per-user salt.
pub const SALT_BYTES: usize = 16;

/// The stored form of one code.
pub type CodeHash = [u8; 32];

/// A fresh set of codes: the plain codes (shown once) and what is stored.
#[derive(Debug)]
pub struct Issued {
    /// The codes as the user sees them, `xxxx-xxxx-xxxx`. Wiped when dropped.
    pub codes: Vec<Zeroizing<String>>,
    /// The salt for [`hash`].
    pub salt: Vec<u8>,
    /// HMAC-SHA256 of each code, in the same order.
    pub hashes: Vec<CodeHash>,
}

/// Makes `count` new codes from the OS CSPRNG.
pub fn issue(count: usize) -> Result<Issued, SecretError> {
    let mut salt = vec![0u8; SALT_BYTES];
    getrandom::getrandom(&mut salt).map_err(|e| SecretError::Random(e.to_string()))?;
    let mut codes = Vec::with_capacity(count);
    let mut hashes = Vec::with_capacity(count);
    for _ in 0..count {
        let mut raw = Zeroizing::new([0u8; CODE_CHARS]);
        getrandom::getrandom(raw.as_mut()).map_err(|e| SecretError::Random(e.to_string()))?;
        let plain: Zeroizing<Vec<u8>> =
            Zeroizing::new(raw.iter().map(|b| ALPHABET[usize::from(b & 31)]).collect());
        hashes.push(hash(&salt, &plain));
        let mut shown = Zeroizing::new(String::with_capacity(FORMATTED_LEN));
        for (i, &c) in plain.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                shown.push('-');
            }
            shown.push(char::from(c));
        }
        codes.push(shown);
    }
    Ok(Issued {
        codes,
        salt,
        hashes,
    })
}

/// The canonical form of a typed answer if it has the shape of a recovery code: 12 code
/// characters once dashes and spaces are dropped, look-alikes mapped; or the 8 digits of a
/// scratch code imported from google-authenticator. `None` otherwise.
pub fn normalize(answer: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(CODE_CHARS));
    for &b in answer {
        let c = match b.to_ascii_lowercase() {
            b'-' | b' ' | b'\t' => continue,
            b'i' | b'l' => b'1',
            b'o' => b'0',
            c if ALPHABET.contains(&c) => c,
            _ => return None,
        };
        out.push(c);
        if out.len() > CODE_CHARS {
            return None;
        }
    }
    let scratch =
        out.len() == SCRATCH_DIGITS && answer.iter().all(|b| b.is_ascii_digit() || *b == b' ');
    (out.len() == CODE_CHARS || scratch).then_some(out)
}

/// Digits of a google-authenticator scratch code.
pub const SCRATCH_DIGITS: usize = 8;

/// Stores imported scratch codes like our own: salted HMACs (a fresh salt).
pub fn import_scratch(codes: &[String]) -> Result<(Vec<u8>, Vec<CodeHash>), SecretError> {
    let mut salt = vec![0u8; SALT_BYTES];
    getrandom::getrandom(&mut salt).map_err(|e| SecretError::Random(e.to_string()))?;
    let hashes = codes
        .iter()
        .filter_map(|c| normalize(c.as_bytes()))
        .map(|n| hash(&salt, &n))
        .collect();
    Ok((salt, hashes))
}

/// Whether `field` ends in a recovery code written with its dashes (`xxxx-xxxx-xxxx`): how a
/// one-field (concat) login tells a recovery code from a TOTP code, whose last characters
/// are digits and can never have a dash where a recovery code has one.
pub fn formatted_suffix(field: &[u8]) -> bool {
    if field.len() < FORMATTED_LEN {
        return false;
    }
    let tail = &field[field.len() - FORMATTED_LEN..];
    tail.iter().enumerate().all(|(i, &b)| {
        if i == 4 || i == 9 {
            b == b'-'
        } else {
            normalize(&[b, b, b, b, b, b, b, b, b, b, b, b]).is_some()
        }
    })
}

/// HMAC-SHA256(salt, normalized code).
pub fn hash(salt: &[u8], normalized: &[u8]) -> CodeHash {
    let mut out = [0u8; 32];
    // HMAC takes keys of any length; an error is impossible, and would leave a hash that
    // matches nothing.
    if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(salt) {
        mac.update(normalized);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// The index of the stored hash that `normalized` matches, comparing every one in constant
/// time.
pub fn find(salt: &[u8], hashes: &[CodeHash], normalized: &[u8]) -> Option<usize> {
    let h = hash(salt, normalized);
    let mut found = None;
    for (i, stored) in hashes.iter().enumerate() {
        if bool::from(stored.ct_eq(&h)) {
            found = Some(i);
        }
    }
    found
}

// The stored form of a hash or salt is the crate's one hex codec; these names stay for the
// state and store code that compares stored hashes.
pub use crate::hex::{decode as from_hex, encode as to_hex};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_codes_look_right_and_match_only_their_hash() -> Result<(), SecretError> {
        let set = issue(10)?;
        assert_eq!(set.codes.len(), 10);
        for (i, code) in set.codes.iter().enumerate() {
            assert_eq!(code.len(), FORMATTED_LEN);
            assert_eq!((&code[4..5], &code[9..10]), ("-", "-"));
            let n = normalize(code.as_bytes());
            assert_eq!(n.and_then(|n| find(&set.salt, &set.hashes, &n)), Some(i));
        }
        let other = normalize(b"0000-0000-0000");
        assert_eq!(other.and_then(|n| find(&set.salt, &set.hashes, &n)), None);
        Ok(())
    }

    #[test]
    fn typing_is_forgiving_but_the_shape_is_strict() {
        let want = normalize(b"k7p2-9xq4-m3vd");
        assert!(want.is_some());
        assert_eq!(normalize(b"K7P2 9XQ4 M3VD"), want);
        assert_eq!(normalize(b"k7p29xq4m3vd"), want);
        assert_eq!(normalize(b"k7p2-9xq4-m3v0"), normalize(b"K7P2-9XQ4-M3VO"));
        assert!(normalize(b"k7p2-9xq4-m3v").is_none());
        assert!(normalize(b"k7p2-9xq4-m3vd1").is_none());
        assert!(normalize(b"k7p2-9xq4-m3vu").is_none()); // u is not in the alphabet
        assert!(normalize(b"123456").is_none());
        assert_eq!(
            normalize(b"1234 5678").as_deref().map(Vec::as_slice),
            Some(&b"12345678"[..])
        );
        assert!(normalize(b"1234-5678").is_none()); // scratch codes are digits only
        assert!(normalize(b"abcd5678").is_none());
    }

    #[test]
    fn a_one_field_login_tells_recovery_codes_from_totp_codes() {
        assert!(formatted_suffix(b"hunter2k7p2-9xq4-m3vd"));
        assert!(formatted_suffix(b"k7p2-9xq4-m3vd"));
        assert!(!formatted_suffix(b"hunter2123456"));
        assert!(!formatted_suffix(b"ab-cdef-12345678"));
        assert!(!formatted_suffix(b"k7p29xq4m3vd"));
    }

    #[test]
    fn imported_scratch_codes_match_once_normalized() -> Result<(), SecretError> {
        let (salt, hashes) = import_scratch(&["12345678".into(), "87654321".into()])?;
        let n = normalize(b"8765 4321");
        assert_eq!(n.and_then(|n| find(&salt, &hashes, &n)), Some(1));
        Ok(())
    }

    #[test]
    fn a_stolen_file_does_not_show_the_codes() -> Result<(), SecretError> {
        let set = issue(1)?;
        let stored = to_hex(&set.hashes[0]);
        assert!(!stored.contains(&set.codes[0].replace('-', "")));
        assert_eq!(from_hex(&stored), Some(set.hashes[0].to_vec()));
        Ok(())
    }
}
