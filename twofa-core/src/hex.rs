//! Hexadecimal, the one codec for every text format twofa writes: hashes and salts in the
//! enrollment and state files, the helper protocol's byte fields, the fleet key file, sealed
//! rows' key check.
//!
//! Output is always lowercase, so every format stays byte-identical to what earlier releases
//! wrote. Input: [`decode`] and [`decode_into`] take either case, as the file readers always
//! did (a file edited by hand, or written by another tool, may say `AB`); [`decode_lowercase`]
//! takes only what [`encode`] writes, for the helper protocol, where each message has exactly
//! one spelling. No reader takes a sign, a prefix, whitespace or an odd number of digits.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    encode_into(&mut out, bytes);
    out
}

/// Appends the lowercase hex of `bytes` to `out` (a `Zeroizing` string for a secret, so no
/// copy is left behind).
pub fn encode_into(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// The bytes of hex `text`, digits in either case; `None` if it is not hex.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = vec![0; text.len() / 2];
    decode_into(text, &mut out).map(|()| out)
}

/// Decodes hex `text` (either case) into `out`, which it must fill exactly: for secrets, read
/// straight into a `Zeroizing` buffer. `None`, and `out` in an unspecified state, if it is not
/// hex of that length.
pub fn decode_into(text: &str, out: &mut [u8]) -> Option<()> {
    decode_with(text, out, nibble)
}

/// The bytes of hex `text` as [`encode`] writes it: lowercase only.
pub fn decode_lowercase(text: &str) -> Option<Vec<u8>> {
    let mut out = vec![0; text.len() / 2];
    decode_with(text, &mut out, |c| match c {
        b'A'..=b'F' => None,
        c => nibble(c),
    })
    .map(|()| out)
}

fn decode_with(text: &str, out: &mut [u8], nibble: impl Fn(u8) -> Option<u8>) -> Option<()> {
    let digits = text.as_bytes();
    if digits.len() != 2 * out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_lowercase_and_round_trips() {
        assert_eq!(encode(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(decode("0001abff"), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(decode_lowercase("0001abff"), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(encode(&[]), "");
        assert_eq!(decode(""), Some(vec![]));
    }

    #[test]
    fn files_take_either_case_the_protocol_only_lowercase() {
        assert_eq!(decode("00ffAB"), Some(vec![0x00, 0xff, 0xab]));
        assert_eq!(decode_lowercase("00ffAB"), None);
        assert_eq!(decode_lowercase("FF"), None);
    }

    #[test]
    fn hex_is_only_hex_digits() {
        // u8::from_str_radix takes a sign: "+a" was once read as 0x0a (fuzz/regressions/state).
        for text in ["+a", "0+aa", "-1", "abc", "é1", "g0", " a", "0x", "a\n"] {
            assert_eq!(decode(text), None, "{text:?}");
            assert_eq!(decode_lowercase(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_secret_is_decoded_into_its_buffer_at_its_exact_length() {
        let mut key = [0u8; 2];
        assert_eq!(decode_into("abCD", &mut key), Some(()));
        assert_eq!(key, [0xab, 0xcd]);
        assert_eq!(decode_into("abcdef", &mut key), None);
        assert_eq!(decode_into("ab", &mut key), None);
        let mut text = String::from("x");
        encode_into(&mut text, &key);
        assert_eq!(text, "xabcd");
    }
}
