//! `otpauth://` URIs, as authenticator apps read them from a QR code
//! (the Key Uri Format of Google Authenticator).

use zeroize::Zeroizing;

use crate::otp::Params;
use crate::secret::Secret;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::Algorithm;

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
