//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) with SHA1, SHA256 and SHA512,
//! 6 to 8 digits and any period.
//!
//! RFC 4226 fits in a few lines on `hmac`; `totp-rs` has no counter API, and a second
//! implementation to audit would cost more than it saves.

use std::fmt;

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The HMAC hash of an OTP factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1: what every authenticator app supports.
    Sha1,
    /// HMAC-SHA256: supported by fewer apps.
    Sha256,
    /// HMAC-SHA512: supported by fewer apps.
    Sha512,
}

impl Algorithm {
    /// The name used in config files and otpauth URIs.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses `SHA1`, `SHA256` or `SHA512` (any case).
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Secret size for new enrollments: the hash's output size (RFC 4226 asks for at least
    /// 128 bits and recommends 160 for SHA1).
    pub fn new_secret_bytes(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fewest digits a code may have.
pub const MIN_DIGITS: u32 = 6;
/// Most digits a code may have.
pub const MAX_DIGITS: u32 = 8;

/// The parameters that make a code: hash, length and (for TOTP) period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Code length, [`MIN_DIGITS`]..=[`MAX_DIGITS`].
    pub digits: u32,
    /// Seconds per TOTP step, at least 1.
    pub period: u64,
}

impl Params {
    /// What authenticator apps assume when a URI says nothing.
    pub const DEFAULT: Params = Params {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };

    /// Whether common apps (Google Authenticator and others) would silently ignore these.
    pub fn is_widely_supported(&self) -> bool {
        self.algorithm == Algorithm::Sha1 && self.digits == 6 && self.period == 30
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
    m.update(msg);
    Some(Zeroizing::new(m.finalize().into_bytes().to_vec()))
}

/// HOTP value of `counter` (RFC 4226 section 5.3), as a number below 10^digits.
///
/// `None` only if HMAC refused the key, which it never does for any length; callers treat
/// `None` as "no code matches", so even that impossible case fails closed.
pub fn hotp(key: &[u8], counter: u64, algorithm: Algorithm, digits: u32) -> Option<u32> {
    let msg = counter.to_be_bytes();
    let digest = match algorithm {
        Algorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(key, &msg)?,
        Algorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(key, &msg)?,
        Algorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(key, &msg)?,
    };
    let offset = usize::from(digest.last()? & 0x0f);
    let b = digest.get(offset..offset + 4)?;
    let binary = u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]);
    let modulus = 10u32.checked_pow(digits.clamp(1, 9))?;
    Some(binary % modulus)
}

/// Whether two codes are equal, in time that depends on their length only: the one way
/// twofa compares a typed code with an expected one.
pub fn codes_equal(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// The code as the user types it: zero-padded to `digits`.
pub fn format_code(value: u32, digits: u32) -> Zeroizing<String> {
    Zeroizing::new(format!("{:0width$}", value, width = digits as usize))
}

/// The TOTP time step of `unix_seconds` (RFC 6238 with T0 = 0).
pub fn step_at(unix_seconds: u64, period: u64) -> u64 {
    unix_seconds / period.max(1)
}

/// The code of TOTP step `step`.
pub fn totp_at_step(key: &[u8], step: u64, params: &Params) -> Option<Zeroizing<String>> {
    hotp(key, step, params.algorithm, params.digits).map(|v| format_code(v, params.digits))
}

/// What a typed answer is once spaces are removed: exactly `digits` ASCII digits, or nothing.
///
/// People type codes as `123 456`; anything else is not a code of this length.
pub fn normalize_code(answer: &[u8], digits: u32) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(answer.len()));
    for &b in answer {
        match b {
            b' ' | b'\t' => {}
            b'0'..=b'9' => out.push(b),
            _ => return None,
        }
    }
    (out.len() == digits as usize).then_some(out)
}

/// Checks a normalized code against every step within `window` of `now`'s step, in constant
/// time per step and without stopping at the first match, and returns the highest step whose
/// code matches. The caller still has to refuse a step at or below the user's watermark.
pub fn verify_totp(key: &[u8], params: &Params, code: &[u8], now: u64, window: u64) -> Option<u64> {
    let current = step_at(now, params.period);
    let first = current.saturating_sub(window);
    let last = current.saturating_add(window);
    let mut matched = None;
    for step in first..=last {
        if let Some(expected) = totp_at_step(key, step, params) {
            if codes_equal(expected.as_bytes(), code) {
                matched = Some(step);
            }
        }
    }
    matched
}

/// Checks a normalized code against HOTP counters `next..=next + look_ahead` (all of them, in
/// constant time each) and returns the lowest matching counter. The caller moves the user's
/// counter past it atomically; a counter below the user's next one is a replay.
pub fn verify_hotp(
    key: &[u8],
    params: &Params,
    code: &[u8],
    next: u64,
    look_ahead: u64,
) -> Option<u64> {
    let mut matched = None;
    for counter in (next..=next.saturating_add(look_ahead)).rev() {
        if let Some(v) = hotp(key, counter, params.algorithm, params.digits) {
            if codes_equal(format_code(v, params.digits).as_bytes(), code) {
                matched = Some(counter);
            }
        }
    }
    matched
}

/// Finds the counter `c` within `next..=next + search` where `first` is the code of `c` and
/// `second` the code of `c + 1`: a token that drifted far ahead, brought back in step.
pub fn resync_hotp(
    key: &[u8],
    params: &Params,
    first: &[u8],
    second: &[u8],
    next: u64,
    search: u64,
) -> Option<u64> {
    let end = next.saturating_add(search);
    let code =
        |c| hotp(key, c, params.algorithm, params.digits).map(|v| format_code(v, params.digits));
    let mut previous = code(next)?;
    for c in next..end {
        let following = code(c + 1)?;
        if codes_equal(previous.as_bytes(), first) && codes_equal(following.as_bytes(), second) {
            return Some(c);
        }
        previous = following;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4226 Appendix D: secret "12345678901234567890", counters 0..9.
    const RFC4226: [u32; 10] = [
        755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
    ];

    #[test]
    fn rfc4226_appendix_d_vectors() {
        for (counter, want) in RFC4226.iter().enumerate() {
            let got = hotp(b"12345678901234567890", counter as u64, Algorithm::Sha1, 6);
            assert_eq!(got, Some(*want), "counter {counter}");
        }
    }

    // RFC 6238 Appendix B: 8 digits, 30 s, seeds of 20/32/64 bytes.
    const SEED1: &[u8] = b"12345678901234567890";
    const SEED256: &[u8] = b"12345678901234567890123456789012";
    const SEED512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in table {
            for (seed, alg, want) in [
                (SEED1, Algorithm::Sha1, sha1),
                (SEED256, Algorithm::Sha256, sha256),
                (SEED512, Algorithm::Sha512, sha512),
            ] {
                let p = Params {
                    algorithm: alg,
                    digits: 8,
                    period: 30,
                };
                let got = totp_at_step(seed, step_at(t, 30), &p);
                assert_eq!(
                    got.as_deref().map(String::as_str),
                    Some(want),
                    "{alg} at {t}"
                );
            }
        }
    }

    #[test]
    fn seven_digits_and_other_periods_are_the_same_hotp_cut_shorter() {
        // The 8-digit RFC value mod 10^7, at a 60-second period (step = t / 60).
        let p = Params {
            algorithm: Algorithm::Sha1,
            digits: 7,
            period: 60,
        };
        let step = step_at(1111111109, 60);
        let eight = hotp(SEED1, step, Algorithm::Sha1, 8);
        let seven = totp_at_step(SEED1, step, &p);
        assert_eq!(seven.as_deref().map(String::len), Some(7));
        assert_eq!(
            eight.map(|v| format!("{:07}", v % 10_000_000)),
            seven.map(|s| s.to_string())
        );
    }

    #[test]
    fn verification_reports_the_matching_step_within_the_window() {
        let p = Params {
            algorithm: Algorithm::Sha1,
            digits: 8,
            period: 30,
        };
        let now = 1111111111; // step 37037037
        let code = |step| totp_at_step(SEED1, step, &p).map(|c| c.as_bytes().to_vec());
        let at = |s: u64| code(s).and_then(|c| verify_totp(SEED1, &p, &c, now, 1));
        assert_eq!(at(37037037), Some(37037037));
        assert_eq!(at(37037036), Some(37037036));
        assert_eq!(at(37037038), Some(37037038));
        assert_eq!(at(37037035), None);
        assert_eq!(at(37037039), None);
        let none = code(37037036).and_then(|c| verify_totp(SEED1, &p, &c, now, 0));
        assert_eq!(none, None);
    }

    #[test]
    fn hotp_verification_looks_ahead_and_reports_the_counter() {
        let p = Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        };
        // RFC 4226 counter 5 is 254676.
        assert_eq!(verify_hotp(SEED1, &p, b"254676", 0, 10), Some(5));
        assert_eq!(verify_hotp(SEED1, &p, b"254676", 0, 4), None);
        assert_eq!(verify_hotp(SEED1, &p, b"254676", 6, 10), None);
        assert_eq!(verify_hotp(SEED1, &p, b"755224", 0, 0), Some(0));
    }

    #[test]
    fn two_consecutive_codes_resync_a_token() {
        let p = Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        };
        // RFC 4226 counters 7 and 8: 162583, 399871.
        assert_eq!(
            resync_hotp(SEED1, &p, b"162583", b"399871", 0, 100),
            Some(7)
        );
        assert_eq!(resync_hotp(SEED1, &p, b"399871", b"162583", 0, 100), None);
        assert_eq!(resync_hotp(SEED1, &p, b"162583", b"399871", 8, 100), None);
    }

    #[test]
    fn typed_codes_are_normalized_or_refused() {
        assert_eq!(
            normalize_code(b"123 456", 6).as_deref().map(Vec::as_slice),
            Some(&b"123456"[..])
        );
        assert!(normalize_code(b"12345", 6).is_none());
        assert!(normalize_code(b"1234567", 6).is_none());
        assert!(normalize_code(b"12345a", 6).is_none());
        assert!(normalize_code(b"", 6).is_none());
        assert!(normalize_code("１２３４５６".as_bytes(), 6).is_none());
    }

    proptest::proptest! {
        #[test]
        fn codes_always_have_the_requested_length(key in proptest::collection::vec(0u8.., 1..80),
                                                  counter in 0u64.., digits in 6u32..=8) {
            for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
                let v = hotp(&key, counter, alg, digits);
                proptest::prop_assert!(v.is_some());
                let c = format_code(v.unwrap_or(0), digits);
                proptest::prop_assert_eq!(c.len(), digits as usize);
            }
        }

        #[test]
        fn a_code_verifies_at_its_own_step(key in proptest::collection::vec(0u8.., 10..64),
                                           now in 0u64..4_000_000_000, period in 1u64..300) {
            let p = Params { algorithm: Algorithm::Sha1, digits: 6, period };
            let step = step_at(now, period);
            let code = totp_at_step(&key, step, &p);
            proptest::prop_assert!(code.is_some());
            let got = code.and_then(|c| verify_totp(&key, &p, c.as_bytes(), now, 0));
            proptest::prop_assert_eq!(got, Some(step));
        }
    }
}
