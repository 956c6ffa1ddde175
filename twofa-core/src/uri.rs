//! `otpauth://` URIs, as authenticator apps read them from a QR code
//! (the Key Uri Format of Google Authenticator).

use std::fmt;

use zeroize::Zeroizing;

use crate::otp::{Algorithm, Params, MAX_DIGITS, MIN_DIGITS};
use crate::secret::{Secret, SecretError};

/// What an `otpauth://totp/` URI holds.
#[derive(Debug, Clone)]
pub struct TotpUri {
    /// The shared key.
    pub secret: Secret,
    /// Hash, digits, period (the app defaults where the URI says nothing).
    pub params: Params,
    /// The issuer (from the `issuer` parameter, else the label's prefix), if any.
    pub issuer: Option<String>,
    /// The label's account part.
    pub account: String,
}

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    /// Not `otpauth://totp/...` (HOTP URIs are refused until HOTP enrollment exists).
    NotTotp,
    /// A parameter is malformed or out of range.
    Parameter(String),
    /// No `secret=` parameter.
    NoSecret,
    /// The secret is not acceptable.
    Secret(SecretError),
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::NotTotp => write!(f, "not an otpauth://totp/ URI"),
            UriError::Parameter(p) => write!(f, "bad URI parameter: {p}"),
            UriError::NoSecret => write!(f, "the URI has no secret= parameter"),
            UriError::Secret(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UriError {}

fn decode(s: &str) -> Result<String, UriError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    // from_str_radix alone would take a sign: "%+1" is not an escape.
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| UriError::Parameter("bad %-escape".into()))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| UriError::Parameter("not UTF-8".into()))
}

/// Parses `otpauth://totp/[ISSUER:]ACCOUNT?secret=...[&issuer=..][&algorithm=..][&digits=..][&period=..]`.
/// Unknown parameters (e.g. `image`) are ignored, as apps do; known ones must be valid.
pub fn parse_totp_uri(text: &str) -> Result<TotpUri, UriError> {
    let rest = text
        .trim()
        .strip_prefix("otpauth://")
        .ok_or(UriError::NotTotp)?;
    let (kind, rest) = rest.split_once('/').ok_or(UriError::NotTotp)?;
    if !kind.eq_ignore_ascii_case("totp") {
        return Err(UriError::NotTotp);
    }
    let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
    let label = decode(label)?;
    let (label_issuer, account) = match label.split_once(':') {
        Some((i, a)) => (Some(i.trim().to_string()), a.trim().to_string()),
        None => (None, label.trim().to_string()),
    };
    let mut params = Params::DEFAULT;
    let mut secret = None;
    let mut issuer = label_issuer;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = Zeroizing::new(decode(value)?);
        match key.to_ascii_lowercase().as_str() {
            "secret" => secret = Some(Secret::from_base32(&value).map_err(UriError::Secret)?),
            "issuer" => issuer = Some(value.to_string()),
            "algorithm" => {
                params.algorithm = Algorithm::parse(&value)
                    .ok_or_else(|| UriError::Parameter(format!("algorithm={}", value.as_str())))?
            }
            "digits" => {
                params.digits = value
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (MIN_DIGITS..=MAX_DIGITS).contains(d))
                    .ok_or_else(|| {
                        UriError::Parameter(format!("digits={} (6 to 8)", value.as_str()))
                    })?
            }
            "period" => {
                params.period = value
                    .parse::<u64>()
                    .ok()
                    .filter(|p| (1..=3600).contains(p))
                    .ok_or_else(|| {
                        UriError::Parameter(format!("period={} (1 to 3600)", value.as_str()))
                    })?
            }
            _ => {}
        }
    }
    Ok(TotpUri {
        secret: secret.ok_or(UriError::NoSecret)?,
        params,
        issuer,
        account,
    })
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=...&digits=...&period=...`.
/// Algorithm, digits and period are always written, so an app that reads them gets them right.
pub fn totp_uri(
    issuer: &str,
    account: &str,
    secret: &Secret,
    params: &Params,
) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        encode(issuer),
        encode(account),
        secret.to_base32().as_str(),
        encode(issuer),
        params.algorithm,
        params.digits,
        params.period
    ))
}

/// `otpauth://hotp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=...&digits=...&counter=N`.
pub fn hotp_uri(
    issuer: &str,
    account: &str,
    secret: &Secret,
    params: &Params,
    counter: u64,
) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "otpauth://hotp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&counter={}",
        encode(issuer),
        encode(account),
        secret.to_base32().as_str(),
        encode(issuer),
        params.algorithm,
        params.digits,
        counter
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::Algorithm;

    #[test]
    fn a_uri_we_write_parses_back_to_the_same_factor() -> Result<(), String> {
        let s = Secret::generate(32).map_err(|e| e.to_string())?;
        let p = Params {
            algorithm: Algorithm::Sha256,
            digits: 7,
            period: 45,
        };
        let uri = totp_uri("Example Co", "alice@host", &s, &p);
        let back = parse_totp_uri(&uri).map_err(|e| e.to_string())?;
        assert_eq!(back.secret.bytes(), s.bytes());
        assert_eq!(back.params, p);
        assert_eq!(back.issuer.as_deref(), Some("Example Co"));
        assert_eq!(back.account, "alice@host");
        Ok(())
    }

    #[test]
    fn bad_uris_are_refused_with_a_reason() {
        let cases = [
            (
                "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=1",
                UriError::NotTotp,
            ),
            ("https://example.com", UriError::NotTotp),
            ("otpauth://totp/x?issuer=a", UriError::NoSecret),
            (
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=9",
                UriError::Parameter("digits=9 (6 to 8)".into()),
            ),
            (
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=0",
                UriError::Parameter("period=0 (1 to 3600)".into()),
            ),
            (
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=MD5",
                UriError::Parameter("algorithm=MD5".into()),
            ),
            (
                "otpauth://totp/x?secret=JBSW",
                UriError::Secret(SecretError::TooShort(16)),
            ),
            (
                "otpauth://totp/%zz?secret=JBSWY3DPEHPK3PXP",
                UriError::Parameter("bad %-escape".into()),
            ),
            (
                "otpauth://totp/%+1alice?secret=JBSWY3DPEHPK3PXP",
                UriError::Parameter("bad %-escape".into()),
            ),
            (
                "otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP&issuer=%+4",
                UriError::Parameter("bad %-escape".into()),
            ),
        ];
        for (uri, want) in cases {
            assert_eq!(parse_totp_uri(uri).err(), Some(want), "{uri}");
        }
    }

    #[test]
    fn uri_carries_every_parameter_and_escapes_names() -> Result<(), crate::secret::SecretError> {
        let s = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?;
        let p = Params {
            algorithm: Algorithm::Sha256,
            digits: 8,
            period: 60,
        };
        let uri = totp_uri("Example Co", "alice@host", &s, &p);
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Example%20Co:alice%40host?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Co&algorithm=SHA256&digits=8&period=60"
        );
        Ok(())
    }
}
