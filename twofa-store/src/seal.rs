//! The fleet key, and enrollments sealed with it before they reach the database.
//!
//! An enrollment holds TOTP/HOTP secrets: whoever reads the table (a backup, a replica, a DBA)
//! must learn nothing from it. Each enrollment is sealed with ChaCha20-Poly1305 under the fleet
//! key (one 32-byte key that every host of the fleet has in a root-only file), with a fresh
//! random 96-bit nonce per write, stored as `nonce || ciphertext || tag`. The associated data
//! binds the row to its account: a row copied onto another account does not open, so nobody
//! with write access to the table can make alice's secret log in as root.
//!
//! A key-check value (a constant sealed under its own associated data) in the meta table lets
//! each host tell "this host has the wrong fleet key" apart from "this row is damaged".
//!
//! The key bytes live in a zeroizing buffer; `ring` expands them into its own key schedule for
//! the length of one seal or open, which is not wiped (ring offers no way to), so no key
//! object is kept around between operations.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use twofa_core::hex;
use twofa_core::securefile::{self, FileError, Rules};
use zeroize::Zeroizing;

/// Length of the fleet key in bytes (ChaCha20's key size).
pub const KEY_LEN: usize = 32;
/// Associated data of an enrollment, followed by the account name.
const ENROLLMENT_AD: &[u8] = b"twofa enrollment v1\0";
/// Associated data of the key check.
const KEY_CHECK_AD: &[u8] = b"twofa key check v1";
/// What the key check seals: a constant, so that opening it proves the key.
const KEY_CHECK_PLAIN: &[u8] = b"twofa fleet key check";
/// Poly1305 tag length.
const TAG_LEN: usize = 16;

/// Why the fleet key file could not be used or made. Never holds key material.
#[derive(Debug)]
pub enum KeyError {
    /// The file does not exist.
    Missing(PathBuf),
    /// The file could not be opened or created safely (owner, mode, symlink, exists...).
    File(FileError),
    /// The file is not 64 hex characters and a newline.
    Format(PathBuf),
    /// The system's random generator failed.
    Random,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Missing(p) => write!(
                f,
                "{}: no such file: copy the fleet key from a host of the fleet (root-only, 0600), \
                 or run `twofa-store init` once for a new store",
                p.display()
            ),
            KeyError::File(e) => write!(f, "{e}"),
            KeyError::Format(p) => write!(
                f,
                "{}: must hold the fleet key as 64 hex characters and a newline",
                p.display()
            ),
            KeyError::Random => write!(f, "the system's random number generator failed"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A sealed value that does not open: wrong key, damaged, or sealed for another account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "does not decrypt with this fleet key")
    }
}

impl std::error::Error for OpenError {}

/// The fleet key. Wiped from memory when dropped; its `Debug` shows nothing of it.
pub struct FleetKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetKey(..)")
    }
}

impl FleetKey {
    /// A key from its bytes (tests, and the key file's parser).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> FleetKey {
        FleetKey(Zeroizing::new(bytes))
    }

    /// A new random key from the system's generator (getrandom(2)).
    pub fn generate() -> Result<FleetKey, KeyError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(&mut key[..])
            .map_err(|_| KeyError::Random)?;
        Ok(FleetKey(key))
    }

    /// Reads the key file: root-owned, 0600 at most, one link, not a symlink.
    pub fn load(path: &Path) -> Result<FleetKey, KeyError> {
        let text = match securefile::read_file(path, &Rules::SECRET) {
            Ok(Some(text)) => text,
            Ok(None) => return Err(KeyError::Missing(path.to_path_buf())),
            Err(e) => return Err(KeyError::File(e)),
        };
        let digits = text.strip_suffix('\n').unwrap_or(&text);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        match hex::decode_into(digits, &mut key[..]) {
            Some(()) => Ok(FleetKey(key)),
            None => Err(KeyError::Format(path.to_path_buf())),
        }
    }

    /// Writes the key to a new file `path` (`O_EXCL`, 0600, not following a symlink), durably:
    /// an existing file is never replaced, it may be the key every host already has.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let io = |e: std::io::Error| KeyError::File(FileError::Io(path.to_path_buf(), e));
        let mut file = securefile::create_private(path, false).map_err(KeyError::File)?;
        let mut text = Zeroizing::new(String::with_capacity(2 * KEY_LEN + 1));
        hex::encode_into(&mut text, &self.0[..]);
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    /// Seals an enrollment's text for `account`.
    pub fn seal_enrollment(&self, account: &str, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.seal(&enrollment_ad(account), plain)
    }

    /// Opens a sealed enrollment of `account`; fails if it was sealed for another account,
    /// under another key, or was altered.
    pub fn open_enrollment(
        &self,
        account: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        self.open(&enrollment_ad(account), sealed)
    }

    /// The key-check value stored in the store's meta table (hex text).
    pub fn key_check(&self) -> Result<String, KeyError> {
        Ok(hex::encode(&self.seal(KEY_CHECK_AD, KEY_CHECK_PLAIN)?))
    }

    /// Whether `check` (from the meta table) was made with this key.
    pub fn matches_key_check(&self, check: &str) -> bool {
        let Some(sealed) = hex::decode(check) else {
            return false;
        };
        self.open(KEY_CHECK_AD, &sealed)
            .is_ok_and(|plain| plain.as_slice() == KEY_CHECK_PLAIN)
    }

    fn aead_key(&self) -> Result<LessSafeKey, OpenError> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &self.0[..]).map_err(|_| OpenError)?;
        Ok(LessSafeKey::new(unbound))
    }

    fn seal(&self, ad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Random)?;
        let key = self.aead_key().map_err(|_| KeyError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        let mut body = Zeroizing::new(plain.to_vec());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ad),
                &mut body[..],
            )
            .map_err(|_| KeyError::Random)?;
        out.extend_from_slice(&body);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open(&self, ad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .aead_key()?
            .open_in_place(nonce, Aad::from(ad), &mut buf[..])
            .map_err(|_| OpenError)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// `b"twofa enrollment v1\0" || account`: the NUL keeps the prefix and the name apart.
fn enrollment_ad(account: &str) -> Vec<u8> {
    let mut ad = ENROLLMENT_AD.to_vec();
    ad.extend_from_slice(account.as_bytes());
    ad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> FleetKey {
        FleetKey::from_bytes([n; KEY_LEN])
    }

    #[test]
    fn a_sealed_enrollment_opens_for_its_account_only() -> Result<(), KeyError> {
        let k = key(7);
        let sealed = k.seal_enrollment("alice", b"secret = \"JBSWY3DPEHPK3PXP\"")?;
        assert_eq!(
            k.open_enrollment("alice", &sealed)
                .ok()
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"secret = \"JBSWY3DPEHPK3PXP\""[..])
        );
        assert_eq!(k.open_enrollment("root", &sealed), Err(OpenError));
        assert_eq!(k.open_enrollment("alic", &sealed), Err(OpenError));
        assert_eq!(key(8).open_enrollment("alice", &sealed), Err(OpenError));
        Ok(())
    }

    #[test]
    fn the_secret_is_not_in_the_sealed_bytes_and_each_seal_differs() -> Result<(), KeyError> {
        let k = key(1);
        let a = k.seal_enrollment("alice", b"JBSWY3DPEHPK3PXP")?;
        let b = k.seal_enrollment("alice", b"JBSWY3DPEHPK3PXP")?;
        assert_ne!(a, b, "a fresh nonce per write");
        assert_eq!(a.len(), NONCE_LEN + 16 + TAG_LEN);
        assert!(!a.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"));
        Ok(())
    }

    #[test]
    fn a_flipped_bit_or_a_short_row_does_not_open() -> Result<(), KeyError> {
        let k = key(2);
        let sealed = k.seal_enrollment("alice", b"x = 1")?;
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(k.open_enrollment("alice", &bad), Err(OpenError), "byte {i}");
        }
        assert_eq!(k.open_enrollment("alice", &sealed[..20]), Err(OpenError));
        assert_eq!(k.open_enrollment("alice", b""), Err(OpenError));
        Ok(())
    }

    #[test]
    fn the_key_check_tells_keys_apart() -> Result<(), KeyError> {
        let check = key(3).key_check()?;
        assert!(key(3).matches_key_check(&check));
        assert!(!key(4).matches_key_check(&check));
        assert!(!key(3).matches_key_check("zz"));
        assert!(!key(3).matches_key_check(""));
        // An enrollment sealed for an account named like the check's AD can't pass for it.
        let fake = hex::encode(&key(3).seal_enrollment("", KEY_CHECK_PLAIN)?);
        assert!(!key(3).matches_key_check(&fake));
        Ok(())
    }

    /// A root-only directory for key files (the checks want root-owned files).
    fn private_dir() -> Option<PathBuf> {
        if !securefile::running_as_root() {
            return None;
        }
        let mut b = [0u8; 8];
        SystemRandom::new().fill(&mut b).ok()?;
        let p = std::env::temp_dir().join(format!("twofa-seal-test-{}", hex::encode(&b)));
        std::fs::create_dir(&p).ok()?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700)).ok()?;
        Some(p)
    }

    #[test]
    fn a_new_key_file_is_private_reads_back_and_is_never_replaced() -> Result<(), KeyError> {
        let Some(dir) = private_dir() else {
            return Ok(());
        };
        let path = dir.join("fleet.key");
        let k = FleetKey::generate()?;
        k.write_new(&path)?;
        let mode = securefile::mode_of(&path).ok();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let again = k.write_new(&path);
        let back = FleetKey::load(&path);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(mode, Some(0o600));
        assert_eq!(text.len(), 65);
        assert!(matches!(again, Err(KeyError::File(_))), "{again:?}");
        let sealed = k.seal_enrollment("alice", b"x")?;
        assert!(back?.open_enrollment("alice", &sealed).is_ok());
        Ok(())
    }

    #[test]
    fn a_malformed_or_open_key_file_is_refused_without_showing_it() -> Result<(), KeyError> {
        let Some(dir) = private_dir() else {
            return Ok(());
        };
        let write = |name: &str, text: &str, mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, text).ok();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).ok();
            p
        };
        let good = "0123456789abcdef".repeat(4);
        let short = write("short", "abcd\n", 0o600);
        let spaced = write("spaced", &format!(" {}\n", &good[1..]), 0o600);
        let not_hex = write("nothex", &format!("{}zz\n", &good[2..]), 0o600);
        let open = write("open", &format!("{good}\n"), 0o644);
        let no_newline = write("nonl", &good, 0o600);
        let results = [
            FleetKey::load(&short),
            FleetKey::load(&spaced),
            FleetKey::load(&not_hex),
            FleetKey::load(&open),
            FleetKey::load(&dir.join("missing")),
        ];
        let fine = FleetKey::load(&no_newline);
        std::fs::remove_dir_all(&dir).ok();
        let messages: Vec<String> = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect();
        for m in &messages[..3] {
            assert!(
                m.ends_with("must hold the fleet key as 64 hex characters and a newline"),
                "{m}"
            );
        }
        assert!(messages[3].contains("mode 0644"), "{}", messages[3]);
        assert!(messages[4].contains("no such file"), "{}", messages[4]);
        assert!(messages.iter().all(|m| !m.contains("0123456789abcdef")));
        assert!(fine.is_ok());
        Ok(())
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", key(0x41)), "FleetKey(..)");
    }
}
