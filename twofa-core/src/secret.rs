//! Shared secrets of OTP factors: generated from the OS CSPRNG, kept in zeroizing memory,
//! written as base32 (RFC 4648, as authenticator apps expect).

use std::fmt;

use zeroize::Zeroizing;

use crate::base32;

/// Fewest bits twofa accepts at all (old google-authenticator files have 80); less is refused.
pub const MIN_BITS: usize = 80;
/// Fewest bits of a secret that twofa would generate itself (RFC 4226 recommends 160).
pub const RECOMMENDED_BITS: usize = 160;

/// An OTP key. Its bytes are wiped when dropped; `Debug` never shows them.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// Not base32 (letters A-Z and digits 2-7).
    NotBase32,
    /// Fewer bits than [`MIN_BITS`].
    TooShort(usize),
    /// The OS random number generator failed.
    Random(String),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::NotBase32 => {
                write!(f, "the secret is not base32 (letters A-Z and digits 2-7)")
            }
            SecretError::TooShort(bits) => write!(
                f,
                "the secret has {bits} bits; at least {MIN_BITS} are needed ({RECOMMENDED_BITS} recommended)"
            ),
            SecretError::Random(e) => write!(f, "the system's random number generator failed: {e}"),
        }
    }
}

impl std::error::Error for SecretError {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bits, redacted)", self.bits())
    }
}

impl Secret {
    /// `bytes` random bytes from getrandom(2).
    pub fn generate(bytes: usize) -> Result<Secret, SecretError> {
        let mut buf = Zeroizing::new(vec![0u8; bytes]);
        getrandom::getrandom(&mut buf).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Secret(buf))
    }

    /// Parses base32 as people paste it: any case; spaces, tabs, line breaks, dashes and `=`
    /// padding ignored; symbols after the last whole byte dropped (see [`base32::decode`]).
    /// Refuses fewer than [`MIN_BITS`] bits.
    pub fn from_base32(text: &str) -> Result<Secret, SecretError> {
        let bytes = base32::decode(text).map_err(|base32::NotBase32| SecretError::NotBase32)?;
        let secret = Secret(bytes);
        if secret.bits() < MIN_BITS {
            return Err(SecretError::TooShort(secret.bits()));
        }
        Ok(secret)
    }

    /// Base32 without padding, as otpauth URIs carry it.
    pub fn to_base32(&self) -> Zeroizing<String> {
        base32::encode(&self.0)
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Size in bits.
    pub fn bits(&self) -> usize {
        self.0.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips_and_ignores_formatting() -> Result<(), SecretError> {
        let s = Secret::generate(20)?;
        let text = s.to_base32();
        assert_eq!(text.len(), 32);
        let spaced: String = text
            .to_lowercase()
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(Secret::from_base32(&spaced)?.bytes(), s.bytes());
        Ok(())
    }

    #[test]
    fn google_authenticator_26_character_secrets_decode_to_16_bytes() -> Result<(), SecretError> {
        let s = Secret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEH")?;
        assert_eq!(s.bits(), 128);
        Ok(())
    }

    #[test]
    fn short_and_invalid_secrets_are_refused() {
        assert_eq!(
            Secret::from_base32("JBSWY3DP").err(),
            Some(SecretError::TooShort(40))
        );
        assert_eq!(
            Secret::from_base32("JBSWY3DPEHPK3PX1").err(),
            Some(SecretError::NotBase32)
        );
        assert!(Secret::from_base32("JBSWY3DPEHPK3PXP").is_ok()); // 80 bits
    }

    #[test]
    fn debug_never_shows_the_secret() -> Result<(), SecretError> {
        let s = Secret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")?;
        assert!(!format!("{s:?}").contains("JBSW"));
        Ok(())
    }
}
