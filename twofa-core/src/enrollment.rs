//! A user's enrollment: the list of their second factors, with each factor's own parameters,
//! so that changing the policy's defaults never breaks an existing user.
//!
//! Written only by root (the CLI, or the module for self-enrollment) into
//! `<storage>/users/<account>.toml`, 0600. The file names its account: an enrollment copied
//! over another user's file is refused rather than used.

use crate::hex;
use crate::otp::{Algorithm, Params, MAX_DIGITS, MIN_DIGITS};
use crate::recovery::CodeHash;
use crate::secret::Secret;
use crate::tomlfile::{Doc, FieldError, Fields};
use zeroize::Zeroizing;

/// The enrollment file format version.
pub const VERSION: i64 = 1;

/// A TOTP factor (RFC 6238).
#[derive(Debug, Clone)]
pub struct TotpFactor {
    /// The shared key.
    pub secret: Secret,
    /// This user's hash, digits and period.
    pub params: Params,
    /// Unix time of enrollment.
    pub enrolled_at: u64,
}

/// An HOTP factor (RFC 4226), e.g. a hardware token; its next counter lives in the state.
#[derive(Debug, Clone)]
pub struct HotpFactor {
    /// The shared key.
    pub secret: Secret,
    /// Hash and digits (`period` is unused).
    pub params: Params,
    /// The counter the token started at, at enrollment.
    pub counter: u64,
    /// Unix time of enrollment.
    pub enrolled_at: u64,
}

/// How an out-of-band code reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// By mail (SMTP), to one or more addresses.
    Email,
    /// By the Pushover push service, to a user key.
    Pushover,
    /// By an admin's program (SMS gateway, chat...), to a destination it understands.
    Script,
}

impl Method {
    /// The name in files, config tables (`[delivery.NAME]`) and the delivery program's argv.
    pub fn name(self) -> &'static str {
        match self {
            Method::Email => "email",
            Method::Pushover => "pushover",
            Method::Script => "script",
        }
    }

    /// Parses a method name.
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "email" => Some(Method::Email),
            "pushover" => Some(Method::Pushover),
            "script" => Some(Method::Script),
            _ => None,
        }
    }

    /// Whether `to` is a well-formed destination for this method (the script's own pattern
    /// is checked against the policy separately). No control characters, no spaces: a
    /// destination ends up in mail headers and environment variables.
    pub fn valid_destination(self, to: &str) -> bool {
        if to.is_empty()
            || to.len() > 254
            || to.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return false;
        }
        match self {
            Method::Email => {
                let Some((local, domain)) = to.rsplit_once('@') else {
                    return false;
                };
                !local.is_empty()
                    && !local.contains(['<', '>', ',', '"', '(', ')', '\\'])
                    && domain.contains('.')
                    && domain.split('.').all(|l| {
                        !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    })
            }
            Method::Pushover => to.len() == 30 && to.chars().all(|c| c.is_ascii_alphanumeric()),
            Method::Script => !to.contains(['\'', '"', '`', '$', ';', '|', '&']),
        }
    }
}

/// An out-of-band method of a user, with the destinations an admin set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFactor {
    /// How the code is sent.
    pub method: Method,
    /// Where (email: one or more addresses; pushover: one user key; script: one destination).
    pub to: Vec<String>,
}

impl DeliveryFactor {
    /// The destination as the user may see it in "a code was sent to ...": `a***@example.com`,
    /// `+41******89`, `uQiR****`.
    pub fn masked(&self) -> String {
        self.to
            .iter()
            .map(|t| mask(self.method, t))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn mask(method: Method, to: &str) -> String {
    let chars: Vec<char> = to.chars().collect();
    match method {
        Method::Email => match to.split_once('@') {
            Some((local, domain)) => {
                format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
            }
            None => "***".into(),
        },
        _ if chars.len() > 6 => {
            let head: String = chars[..3].iter().collect();
            let tail: String = chars[chars.len() - 2..].iter().collect();
            format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
        }
        _ => "*".repeat(chars.len()),
    }
}

/// A set of single-use recovery codes, stored only as salted HMACs.
#[derive(Debug, Clone)]
pub struct RecoveryFactor {
    /// Per-user HMAC key.
    pub salt: Vec<u8>,
    /// HMAC-SHA256 of each code; which ones are used is in the state file.
    pub hashes: Vec<CodeHash>,
    /// Unix time the set was issued.
    pub issued_at: u64,
}

/// One second factor of a user.
#[derive(Debug, Clone)]
pub enum Factor {
    /// Time-based codes from an authenticator app.
    Totp(TotpFactor),
    /// Counter-based codes from a token.
    Hotp(HotpFactor),
    /// Single-use recovery codes.
    Recovery(RecoveryFactor),
    /// Codes sent out of band (email, push, an admin's script).
    Delivery(DeliveryFactor),
}

impl Factor {
    /// The factor's name in files, logs and output.
    pub fn kind(&self) -> &'static str {
        match self {
            Factor::Totp(_) => "totp",
            Factor::Hotp(_) => "hotp",
            Factor::Recovery(_) => "recovery",
            Factor::Delivery(d) => d.method.name(),
        }
    }
}

/// Everything enrolled for one account.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The canonical account name this enrollment belongs to.
    pub account: String,
    /// The factors, in the order they are offered.
    pub factors: Vec<Factor>,
}

impl Enrollment {
    /// The first TOTP factor, if any.
    pub fn totp(&self) -> Option<&TotpFactor> {
        self.factors.iter().find_map(|f| match f {
            Factor::Totp(t) => Some(t),
            _ => None,
        })
    }

    /// The first HOTP factor, if any.
    pub fn hotp(&self) -> Option<&HotpFactor> {
        self.factors.iter().find_map(|f| match f {
            Factor::Hotp(h) => Some(h),
            _ => None,
        })
    }

    /// The recovery codes, if any.
    pub fn recovery(&self) -> Option<&RecoveryFactor> {
        self.factors.iter().find_map(|f| match f {
            Factor::Recovery(r) => Some(r),
            _ => None,
        })
    }

    /// The out-of-band methods, in the order they were enrolled.
    pub fn deliveries(&self) -> impl Iterator<Item = &DeliveryFactor> {
        self.factors.iter().filter_map(|f| match f {
            Factor::Delivery(d) => Some(d),
            _ => None,
        })
    }

    /// Replaces the recovery codes (or adds them).
    pub fn set_recovery(&mut self, r: RecoveryFactor) {
        self.factors.retain(|f| !matches!(f, Factor::Recovery(_)));
        self.factors.push(Factor::Recovery(r));
    }

    /// Parses an enrollment file; `account` is the account it is read for.
    pub fn parse(text: &str, account: &str) -> Result<Enrollment, FieldError> {
        let doc = Doc::parse(text)?;
        let mut root = doc.root();
        check_version(&mut root)?;
        let named = root
            .string("account")?
            .ok_or_else(|| root.error("account", "missing"))?;
        if named != account {
            return Err(root.error(
                "account",
                format!("this enrollment belongs to \"{named}\", not to \"{account}\""),
            ));
        }
        let mut factors = Vec::new();
        for mut f in root.tables("factor")? {
            factors.push(parse_factor(&mut f)?);
            f.finish()?;
        }
        root.finish()?;
        if factors.is_empty() {
            return Err(FieldError {
                line: None,
                key: "factor".into(),
                message: "no factor enrolled".into(),
            });
        }
        Ok(Enrollment {
            account: account.to_string(),
            factors,
        })
    }

    /// The file's text. It holds secrets: the buffer is wiped when dropped.
    pub fn to_toml(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        out.push_str("# twofa enrollment: written by twofa-enroll, do not edit by hand.\n");
        out.push_str(&format!(
            "version = {VERSION}\naccount = {}\n",
            quote(&self.account)
        ));
        for f in &self.factors {
            match f {
                Factor::Totp(t) => {
                    out.push_str("\n[[factor]]\ntype = \"totp\"\n");
                    out.push_str(&format!("secret = \"{}\"\n", t.secret.to_base32().as_str()));
                    out.push_str(&format!(
                        "algorithm = \"{}\"\ndigits = {}\nperiod = {}\nenrolled_at = {}\n",
                        t.params.algorithm, t.params.digits, t.params.period, t.enrolled_at
                    ));
                }
                Factor::Hotp(h) => {
                    out.push_str("\n[[factor]]\ntype = \"hotp\"\n");
                    out.push_str(&format!("secret = \"{}\"\n", h.secret.to_base32().as_str()));
                    out.push_str(&format!(
                        "algorithm = \"{}\"\ndigits = {}\ncounter = {}\nenrolled_at = {}\n",
                        h.params.algorithm, h.params.digits, h.counter, h.enrolled_at
                    ));
                }
                Factor::Delivery(d) => {
                    out.push_str(&format!(
                        "\n[[factor]]\ntype = \"{}\"\nto = [",
                        d.method.name()
                    ));
                    let list: Vec<String> = d.to.iter().map(|t| quote(t)).collect();
                    out.push_str(&list.join(", "));
                    out.push_str("]\n");
                }
                Factor::Recovery(r) => {
                    out.push_str("\n[[factor]]\ntype = \"recovery\"\n");
                    out.push_str(&format!(
                        "salt = \"{}\"\nissued_at = {}\ncodes = [\n",
                        hex::encode(&r.salt),
                        r.issued_at
                    ));
                    for h in &r.hashes {
                        out.push_str(&format!("    \"{}\",\n", hex::encode(h)));
                    }
                    out.push_str("]\n");
                }
            }
        }
        out
    }
}

/// A TOML basic string for `s` (escapes quotes, backslashes and control characters), which
/// `Doc::parse` reads back as `s`: the escaper sits next to the parser it must agree with.
pub fn quote(s: &str) -> String {
    crate::tomlfile::quote(s)
}

fn check_version(root: &mut Fields<'_>) -> Result<(), FieldError> {
    match root.integer("version")? {
        Some(VERSION) => Ok(()),
        Some(v) => Err(root.error("version", format!("version {v} is not known to this twofa"))),
        None => Err(root.error("version", "missing")),
    }
}

fn parse_delivery(f: &mut Fields<'_>, kind: &str) -> Result<Factor, FieldError> {
    let method = Method::parse(kind).ok_or_else(|| f.error("type", "unknown method"))?;
    let to: Vec<String> = f
        .strings("to")?
        .ok_or_else(|| f.error("to", "missing: where the code is sent"))?
        .into_iter()
        .map(str::to_string)
        .collect();
    if to.is_empty() || (method != Method::Email && to.len() != 1) {
        return Err(f.error("to", "one destination (email: one or more addresses)"));
    }
    if let Some(bad) = to.iter().find(|t| !method.valid_destination(t)) {
        return Err(f.error("to", format!("\"{bad}\" is not a valid {kind} destination")));
    }
    Ok(Factor::Delivery(DeliveryFactor { method, to }))
}

fn parse_recovery(f: &mut Fields<'_>) -> Result<Factor, FieldError> {
    let salt = f
        .string("salt")?
        .and_then(hex::decode)
        .filter(|s| s.len() >= 8)
        .ok_or_else(|| f.error("salt", "missing, or not hex of at least 8 bytes"))?;
    let issued_at = f.unsigned("issued_at", 0, u64::MAX >> 1)?.unwrap_or(0);
    let mut hashes = Vec::new();
    for h in f.strings("codes")?.unwrap_or_default() {
        let bytes = hex::decode(h)
            .and_then(|b| CodeHash::try_from(b.as_slice()).ok())
            .ok_or_else(|| f.error("codes", "each must be 64 hex characters (an HMAC-SHA256)"))?;
        hashes.push(bytes);
    }
    if hashes.len() > 1000 {
        return Err(f.error("codes", "more than 1000 codes"));
    }
    Ok(Factor::Recovery(RecoveryFactor {
        salt,
        hashes,
        issued_at,
    }))
}

fn parse_factor(f: &mut Fields<'_>) -> Result<Factor, FieldError> {
    let kind = f
        .string("type")?
        .ok_or_else(|| f.error("type", "missing"))?;

    match kind {
        "totp" | "hotp" => {}
        "recovery" => return parse_recovery(f),
        "email" | "pushover" | "script" => return parse_delivery(f, kind),
        other => return Err(f.error("type", format!("unknown factor type \"{other}\""))),
    }
    let secret_text = f
        .string("secret")?
        .ok_or_else(|| f.error("secret", "missing"))?;
    let secret = Secret::from_base32(secret_text).map_err(|e| f.error("secret", e.to_string()))?;
    let alg = f
        .string("algorithm")?
        .ok_or_else(|| f.error("algorithm", "missing"))?;
    let algorithm = Algorithm::parse(alg)
        .ok_or_else(|| f.error("algorithm", format!("unknown algorithm \"{alg}\"")))?;
    let digits = f
        .unsigned("digits", u64::from(MIN_DIGITS), u64::from(MAX_DIGITS))?
        .ok_or_else(|| f.error("digits", "missing"))?;
    let enrolled_at = f.unsigned("enrolled_at", 0, u64::MAX >> 1)?.unwrap_or(0);
    if kind == "hotp" {
        let counter = f
            .unsigned("counter", 0, u64::MAX >> 1)?
            .ok_or_else(|| f.error("counter", "missing"))?;
        return Ok(Factor::Hotp(HotpFactor {
            secret,
            params: Params {
                algorithm,
                digits: u32::try_from(digits).unwrap_or(MIN_DIGITS),
                period: Params::DEFAULT.period,
            },
            counter,
            enrolled_at,
        }));
    }
    let period = f
        .unsigned("period", 1, 3600)?
        .ok_or_else(|| f.error("period", "missing"))?;
    Ok(Factor::Totp(TotpFactor {
        secret,
        params: Params {
            algorithm,
            digits: u32::try_from(digits).unwrap_or(MIN_DIGITS),
            period,
        },
        enrolled_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Result<Enrollment, String> {
        Ok(Enrollment {
            account: "alice".into(),
            factors: vec![Factor::Totp(TotpFactor {
                secret: Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
                    .map_err(|e| e.to_string())?,
                params: Params {
                    algorithm: Algorithm::Sha256,
                    digits: 8,
                    period: 60,
                },
                enrolled_at: 1_700_000_000,
            })],
        })
    }

    #[test]
    fn enrollment_round_trips_with_its_own_parameters() -> Result<(), String> {
        let e = sample()?;
        let text = e.to_toml();
        let back = Enrollment::parse(&text, "alice").map_err(|e| e.to_string())?;
        let t = back.totp().ok_or("no totp")?;
        assert_eq!(
            t.params,
            Params {
                algorithm: Algorithm::Sha256,
                digits: 8,
                period: 60
            }
        );
        assert_eq!(t.secret.bytes(), b"12345678901234567890");
        assert_eq!(t.enrolled_at, 1_700_000_000);
        Ok(())
    }

    #[test]
    fn hotp_factors_round_trip_with_their_counter() -> Result<(), String> {
        let secret =
            Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").map_err(|e| e.to_string())?;
        let e = Enrollment {
            account: "bob".into(),
            factors: vec![Factor::Hotp(HotpFactor {
                secret,
                params: Params::DEFAULT,
                counter: 42,
                enrolled_at: 7,
            })],
        };
        let back = Enrollment::parse(&e.to_toml(), "bob").map_err(|e| e.to_string())?;
        let h = back.hotp().ok_or("no hotp")?;
        assert_eq!((h.counter, h.params.digits, h.enrolled_at), (42, 6, 7));
        assert!(back.totp().is_none());
        Ok(())
    }

    #[test]
    fn delivery_factors_round_trip_and_mask_their_destinations() -> Result<(), String> {
        let e = Enrollment {
            account: "carol".into(),
            factors: vec![
                Factor::Delivery(DeliveryFactor {
                    method: Method::Email,
                    to: vec!["carol@example.com".into(), "c@x.org".into()],
                }),
                Factor::Delivery(DeliveryFactor {
                    method: Method::Script,
                    to: vec!["+41791234589".into()],
                }),
            ],
        };
        let back = Enrollment::parse(&e.to_toml(), "carol").map_err(|e| e.to_string())?;
        let d: Vec<&DeliveryFactor> = back.deliveries().collect();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].masked(), "c***@example.com, c***@x.org");
        assert_eq!(d[1].masked(), "+41*******89");
        Ok(())
    }

    #[test]
    fn an_enrollment_copied_to_another_account_is_refused() -> Result<(), String> {
        let text = sample()?.to_toml();
        let err = Enrollment::parse(&text, "mallory")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("3: key `account`: this enrollment belongs to \"alice\", not to \"mallory\"")
        );
        Ok(())
    }

    #[test]
    fn broken_enrollments_say_what_is_wrong() {
        let base = "version = 1\naccount = \"alice\"\n[[factor]]\ntype = \"totp\"\n";
        let cases = [
            (format!("{base}secret = \"!!!\"\nalgorithm = \"SHA1\"\ndigits = 6\nperiod = 30\n"), "not base32"),
            (format!("{base}secret = \"JBSWY3DP\"\nalgorithm = \"SHA1\"\ndigits = 6\nperiod = 30\n"), "40 bits"),
            (format!("{base}secret = \"JBSWY3DPEHPK3PXP\"\nalgorithm = \"MD5\"\ndigits = 6\nperiod = 30\n"), "unknown algorithm"),
            (format!("{base}secret = \"JBSWY3DPEHPK3PXP\"\nalgorithm = \"SHA1\"\ndigits = 10\nperiod = 30\n"), "from 6 to 8"),
            (format!("{base}secret = \"JBSWY3DPEHPK3PXP\"\nalgorithm = \"SHA1\"\ndigits = 6\nperiod = 0\n"), "from 1 to 3600"),
            ("version = 7\naccount = \"alice\"\n".to_string(), "version 7"),
            ("version = 1\naccount = \"alice\"\n".to_string(), "no factor"),
            ("version = 1\naccount = \"alice\"\n[[factor]]\ntype = \"email\"\n".to_string(), "missing: where the code is sent"),
            ("version = 1\naccount = \"alice\"\n[[factor]]\ntype = \"email\"\nto = [\"a@b\\nBcc: x@y.z\"]\n".to_string(), "not a valid email destination"),
            ("version = 1\naccount = \"alice\"\n[[factor]]\ntype = \"pushover\"\nto = [\"short\"]\n".to_string(), "not a valid pushover destination"),
            (format!("{}secret = \"JBSWY3DPEHPK3PXP\"\nalgorithm = \"SHA1\"\ndigits = 6\n", base.replace("totp", "hotp")), "key `factor.counter`: missing"),
            ("version = 1\naccount = \"alice\"\n[[factor]]\ntype = \"recovery\"\nsalt = \"00112233445566778899\"\ncodes = [\"abc\"]\n".to_string(), "64 hex"),
            ("version = 1\naccount = \"ali".to_string(), "not valid TOML"),
        ];
        for (text, want) in cases {
            let err = Enrollment::parse(&text, "alice")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
