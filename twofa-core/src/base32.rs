//! RFC 4648 base32 (alphabet `A-Z2-7`), the text form of OTP secrets in otpauth URIs,
//! enrollment files and google-authenticator files.
//!
//! Written here rather than taken from a general encoding crate: twofa needs one alphabet,
//! unpadded output and one lenient input form, and the general crate's generic code cost
//! 88 KB of `pam_twofa.so` (issue 8: the module must stay under 1 MiB). Everything that passes
//! through here is a secret, so both directions write straight into zeroizing buffers allocated
//! at their final size (a growing buffer would leave copies behind in freed memory), and the
//! decoder makes no cleaned-up copy of its input.

use zeroize::Zeroizing;

/// The RFC 4648 §6 alphabet: a symbol's value is its index.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The input is not base32: a character outside `A-Z`, `a-z`, `2-7` and the skipped
/// separators. Deliberately says nothing about which character: the input is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBase32;

/// Length of the unpadded encoding of `len` bytes: 8 symbols per 5 bytes, and for a last
/// partial group of 1-4 bytes the symbols that hold its bits (2, 4, 5 or 7).
pub fn encoded_len(len: usize) -> usize {
    const PARTIAL: [usize; 5] = [0, 2, 4, 5, 7];
    len / 5 * 8 + PARTIAL[len % 5]
}

/// Encodes `bytes` without `=` padding, as authenticator apps expect in an otpauth URI (several
/// refuse a padded secret). The last symbol's unused low bits are zero, as RFC 4648 requires.
pub fn encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(encoded_len(bytes.len())));
    // Bits not yet written, right-aligned in `pending`; never more than 12 of them.
    let mut pending: u16 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        pending = (pending << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(pending >> bits));
        }
        pending &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(symbol(pending << (5 - bits)));
    }
    out
}

/// Decodes base32 as people paste it: either case; spaces, tabs, line breaks, dashes and `=`
/// skipped wherever they stand (so padded and grouped secrets work). Symbols left over after
/// the last whole byte are dropped, whatever their bits: a 26-symbol google-authenticator
/// secret is 130 bits and decodes to 16 bytes. Any other character refuses the whole input.
pub fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, NotBase32> {
    let symbols = text.chars().filter(|&c| !is_skipped(c)).count();
    // Whole bytes only: 5 bytes per 8 symbols, and floor(5n/8) for the last n < 8 symbols.
    let len = symbols / 8 * 5 + symbols % 8 * 5 / 8;
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    // Bits not yet stored, right-aligned in `pending`; never more than 12 of them.
    let mut pending: u16 = 0;
    let mut bits = 0u32;
    for c in text.chars().filter(|&c| !is_skipped(c)) {
        pending = (pending << 5) | u16::from(value(c).ok_or(NotBase32)?);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Truncation intended: the 8 bits above the `bits` still pending.
            out.push((pending >> bits) as u8);
            pending &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Formatting people and other programs put into secrets (groups of four, wrapped lines,
/// dashes, padding): skipped by [`decode`].
fn is_skipped(c: char) -> bool {
    matches!(c, ' ' | '\t' | '-' | '=' | '\n' | '\r')
}

/// The symbol of the low 5 bits of `v`.
fn symbol(v: u16) -> char {
    char::from(ALPHABET[usize::from(v & 31)])
}

/// The value of a symbol in either case; `None` for anything else, non-ASCII included (no
/// Unicode case folding: `ı` is not `I`).
fn value(c: char) -> Option<u8> {
    match c {
        'A'..='Z' => Some(c as u8 - b'A'),
        'a'..='z' => Some(c as u8 - b'a'),
        '2'..='7' => Some(c as u8 - b'2' + 26),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 4648 §10, base32 column, with the padding removed (`encode` writes none).
    const RFC4648: &[(&str, &str, &str)] = &[
        ("", "", ""),
        ("f", "MY", "MY======"),
        ("fo", "MZXQ", "MZXQ===="),
        ("foo", "MZXW6", "MZXW6==="),
        ("foob", "MZXW6YQ", "MZXW6YQ="),
        ("fooba", "MZXW6YTB", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI", "MZXW6YTBOI======"),
    ];

    fn decoded(text: &str) -> Result<Vec<u8>, NotBase32> {
        decode(text).map(|b| b.to_vec())
    }

    #[test]
    fn rfc4648_test_vectors_encode_unpadded() {
        for (plain, unpadded, _) in RFC4648 {
            assert_eq!(encode(plain.as_bytes()).as_str(), *unpadded, "{plain:?}");
            assert_eq!(encoded_len(plain.len()), unpadded.len(), "{plain:?}");
        }
    }

    #[test]
    fn rfc4648_test_vectors_decode_padded_unpadded_and_lowercase() {
        for (plain, unpadded, padded) in RFC4648 {
            for text in [
                unpadded.to_string(),
                padded.to_string(),
                padded.to_lowercase(),
            ] {
                assert_eq!(decoded(&text), Ok(plain.as_bytes().to_vec()), "{text:?}");
            }
        }
    }

    #[test]
    fn formatting_is_skipped_wherever_it_stands() {
        for text in [
            "mzxw 6ytb oi",
            "MZXW-6YTB-OI",
            "MZXW\t6YTB\r\nOI\n",
            "=MZ=XW6YTBOI=",
            "  mZxW6yTbOi  ",
        ] {
            assert_eq!(decoded(text), Ok(b"foobar".to_vec()), "{text:?}");
        }
    }

    #[test]
    fn symbols_after_the_last_whole_byte_are_dropped_whatever_their_bits() {
        // 6 symbols = 30 bits: 3 bytes and 6 leftover bits.
        assert_eq!(decoded("MZXW6Y"), Ok(b"foo".to_vec()));
        // `7` sets the low bit that belongs to no byte (a non-canonical encoding): accepted.
        assert_eq!(decoded("MZXW7"), Ok(b"foo".to_vec()));
        // One symbol is 5 bits: not a byte.
        assert_eq!(decoded("M"), Ok(Vec::new()));
        // google-authenticator's 26-symbol secrets: 130 bits, 16 bytes.
        assert_eq!(
            decoded("JBSWY3DPEHPK3PXPJBSWY3DPEH").map(|b| b.len()),
            Ok(16)
        );
    }

    #[test]
    fn anything_else_refuses_the_whole_input() {
        for text in [
            "MZXW6YTB0I", // 0, 1, 8, 9 are not base32
            "MZXW6YTB1I",
            "MZXW6YTB8I",
            "MZXW6YTB9I",
            "MZXW6YTB_I",
            "MZXW6YTB+/", // base64's extra symbols
            "MZXW6YTB.I",
            "MZXW6YTBOİ", // non-ASCII, even where it upper-cases to a symbol
            "MZXW6YTBOı",
            "MZXW6YTB\u{a0}OI", // no-break space is not skipped
            "MZXW6YTB\0OI",
            "MZXW6YTBOIÉ",
        ] {
            assert_eq!(decoded(text), Err(NotBase32), "{text:?}");
        }
    }

    #[test]
    fn buffers_are_allocated_at_their_final_size() -> Result<(), NotBase32> {
        // A buffer that grew would have left copies of the secret in freed memory.
        let bytes: Vec<u8> = (0..=255).collect();
        let text = encode(&bytes);
        assert_eq!(text.capacity(), text.len());
        let spaced = format!("{} ==", text.as_str().to_lowercase());
        let back = decode(&spaced)?;
        assert_eq!(back.capacity(), back.len());
        assert_eq!(back.as_slice(), bytes.as_slice());
        Ok(())
    }

    /// The bytes of `text` computed the slow, obvious way: every symbol's 5 bits into one list,
    /// then every whole 8 of them into a byte.
    fn reference_decode(text: &str) -> Option<Vec<u8>> {
        let mut bits = Vec::new();
        for c in text.chars() {
            if " \t-=\n\r".contains(c) {
                continue;
            }
            let upper = c.to_ascii_uppercase();
            let v = ALPHABET.iter().position(|&a| char::from(a) == upper)?;
            bits.extend((0..5).rev().map(|i| (v >> i) & 1 == 1));
        }
        Some(
            bits.chunks_exact(8)
                .map(|byte| byte.iter().fold(0u8, |acc, &b| acc << 1 | u8::from(b)))
                .collect(),
        )
    }

    proptest! {
        #[test]
        fn every_byte_string_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let text = encode(&bytes);
            prop_assert_eq!(text.len(), encoded_len(bytes.len()));
            prop_assert!(text.bytes().all(|b| ALPHABET.contains(&b)));
            prop_assert_eq!(decoded(&text), Ok(bytes));
        }

        #[test]
        fn pasted_forms_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                   lower in any::<bool>(), group in 1usize..9,
                                   sep in prop::sample::select(vec![" ", "-", "\n", "\r\n", "\t"]),
                                   pad in 0usize..7) {
            let text = encode(&bytes);
            let text = if lower { text.to_lowercase() } else { text.to_string() };
            let chars: Vec<char> = text.chars().collect();
            let grouped: Vec<String> =
                chars.chunks(group).map(|c| c.iter().collect()).collect();
            let pasted = format!("{}{}", grouped.join(sep), "=".repeat(pad));
            prop_assert_eq!(decoded(&pasted), Ok(bytes));
        }

        #[test]
        fn decode_agrees_with_the_obvious_model(
            text in "[A-Za-z2-7 =\\-\t\r\n01890_.é]{0,40}",
        ) {
            prop_assert_eq!(decoded(&text).ok(), reference_decode(&text));
        }
    }
}
