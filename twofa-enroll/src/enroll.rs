//! `twofa-enroll enroll USER`: a new TOTP enrollment, checked with one code before it is saved.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use twofa_core::config::Config;
use twofa_core::delivery::{Deliverer, Programs};
use twofa_core::enrollment::{DeliveryFactor, Enrollment, Factor, HotpFactor, Method, TotpFactor};
use twofa_core::identity::Account;
use twofa_core::otp::{self, Algorithm, Params};
use twofa_core::secret::{Secret, RECOMMENDED_BITS};
use twofa_core::store::{Confirmation, Store, StoreError};
use twofa_core::uri;
use zeroize::Zeroizing;

use crate::context::{compile_pattern, for_user, now, ForUser};
use crate::input::Input;
use crate::output::{self, Failure};
use crate::qr;
use crate::recovery::{issue_recovery, print_recovery};

/// Arguments of `enroll`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The account to enroll (a name of the passwd database).
    pub user: String,
    /// Keep an existing secret, read from FILE (`-`: the first line of standard input): base32,
    /// or an otpauth://totp/ URI (its algorithm, digits and period are kept too).
    /// Never pass a secret in argv: other users see it in ps.
    #[arg(long, value_name = "FILE|-")]
    secret_file: Option<PathBuf>,
    /// Save without asking for a code first (for scripts; the user can't confirm the app then).
    #[arg(long)]
    no_verify: bool,
    /// Replace an existing enrollment (its old secret stops working).
    #[arg(long)]
    pub force: bool,
    /// Hash for this user: SHA1, SHA256 or SHA512 (default: the policy's [totp] algorithm).
    #[arg(long, value_parser = parse_algorithm)]
    algorithm: Option<Algorithm>,
    /// Code length for this user, 6 to 8 (default: the policy's).
    #[arg(long, value_parser = clap::value_parser!(u32).range(6..=8))]
    digits: Option<u32>,
    /// The first factor: totp (an authenticator app, the default), hotp (a token), or a code
    /// sent by email, pushover or script (needs the destination below).
    #[arg(long, value_enum)]
    method: Option<MethodArg>,
    /// Same as --method hotp: an HOTP token (e.g. a YubiKey's OATH-HOTP slot).
    #[arg(long, conflicts_with = "method")]
    hotp: bool,
    /// Send codes to this address (repeat for several); with --method totp, a fallback the user
    /// asks for with an empty answer.
    #[arg(long, value_name = "ADDRESS")]
    email: Vec<String>,
    /// Send codes to this Pushover user key.
    #[arg(long, value_name = "USER_KEY")]
    pushover: Option<String>,
    /// Send codes through the policy's script to this destination (e.g. a phone number).
    #[arg(long, value_name = "DESTINATION")]
    script_to: Option<String>,
    /// The token's current counter (with --hotp).
    #[arg(long, default_value_t = 0)]
    counter: u64,
    /// Seconds per code for this user (default: the policy's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    period: Option<u64>,
    /// Also write the QR code to FILE as a PNG (mode 0600: it holds the secret).
    #[arg(long, value_name = "FILE")]
    qr_png: Option<PathBuf>,
    /// Don't draw the QR code in the terminal.
    #[arg(long)]
    no_qr: bool,
    /// Print the result as JSON on stdout (prompts go to stderr).
    #[arg(long)]
    json: bool,
}

/// The first factor of an enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Time-based codes from an authenticator app.
    Totp,
    /// Counter-based codes from a token.
    Hotp,
    /// Codes sent by email.
    Email,
    /// Codes sent by Pushover.
    Pushover,
    /// Codes sent by the policy's script.
    Script,
}

/// The out-of-band factors the flags ask for, checked against the policy.
fn delivery_factors(config: &Config, args: &Args) -> Result<Vec<DeliveryFactor>, Failure> {
    let mut out = Vec::new();
    let mut add = |method: Method, to: Vec<String>| -> Result<(), Failure> {
        let Some(policy) = config.delivery.method(method) else {
            return Err(
                Failure::new(format!("the policy has no [delivery.{}]", method.name()))
                    .hint("configure the method in twofa.toml first (see twofa.toml(5))"),
            );
        };
        for t in &to {
            if !method.valid_destination(t) {
                return Err(Failure::new(format!(
                    "`{t}` is not a valid {} destination",
                    method.name()
                )));
            }
            if let Some(p) = &policy.destination_pattern {
                // load_config compiled it already; a policy that did not come through it is
                // refused here, never matched loosely.
                let re = compile_pattern(p.as_str()).map_err(|e| {
                    Failure::new(format!(
                        "the policy's destination_pattern is not a valid regular expression: {e}"
                    ))
                    .hint("check it with: twofa-enroll check-config")
                })?;
                if !re.is_match(t) {
                    return Err(Failure::new(format!(
                        "`{t}` does not match the policy's destination_pattern"
                    )));
                }
            }
        }
        out.push(DeliveryFactor { method, to });
        Ok(())
    };
    if !args.email.is_empty() {
        add(Method::Email, args.email.clone())?;
    }
    if let Some(k) = &args.pushover {
        add(Method::Pushover, vec![k.clone()])?;
    }
    if let Some(d) = &args.script_to {
        add(Method::Script, vec![d.clone()])?;
    }
    Ok(out)
}

/// Enrolls a user whose first factor is a sent code: one code is sent and must come back
/// (that proves the destination works), unless --no-verify.
fn enroll_delivery(
    config: &Config,
    store: &dyn Store,
    account: &Account,
    args: &Args,
    factors: Vec<DeliveryFactor>,
    method: Method,
) -> Result<(), Failure> {
    let Some(first) = factors.iter().find(|f| f.method == method).cloned() else {
        return Err(
            Failure::new(format!("--method {} needs its destination", method.name()))
                .hint("e.g. --email alice@example.com, --pushover KEY or --script-to +41790000000"),
        );
    };
    if !args.no_verify {
        let policy = config
            .delivery
            .method(method)
            .map(|m| m.code_ttl_seconds)
            .unwrap_or(300);
        let code = twofa_core::login::random_code(config.delivery.code_digits)
            .ok_or_else(|| Failure::new("no random code"))?;
        let deliver = Programs {
            policy: &config.delivery,
        };
        deliver
            .send(&account.name, &first, &code, policy)
            .map_err(|e| {
                Failure::new(format!(
                    "could not send a code to {}: {e}; nothing was saved",
                    first.masked()
                ))
            })?;
        eprintln!("A code was sent to {}.", first.masked());
        let mut input = Input::new();
        let digits = config.delivery.code_digits;
        confirm(
            &mut input,
            digits,
            "check the destination, and that the code was typed within its time",
            |c| otp::codes_equal(c, code.as_bytes()).then_some(0),
        )?;
    }
    let now = now();
    let mut enrollment = Enrollment {
        account: account.name.clone(),
        factors: factors.into_iter().map(Factor::Delivery).collect(),
    };
    let codes = issue_recovery(&mut enrollment, config.recovery_codes, now)?;
    store
        .put_enrollment(account, &enrollment, args.force)
        .map_err(|e| match e {
            StoreError::AlreadyEnrolled(_) => Failure::new(format!("{e}; nothing was changed"))
                .hint("add --force to replace the enrollment"),
            other => Failure::new(other.to_string()),
        })?;
    if args.json {
        let out = serde_json::json!({
            "account": account.name,
            "factor": method.name(),
            "to": first.to,
            "verified": !args.no_verify,
            "recovery_codes": codes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        });
        say!("{out}");
    } else {
        say!(
            "Enrolled {}: codes by {} to {}.",
            account.name,
            method.name(),
            first.masked()
        );
        say_where_asked("a code is sent at login");
        print_recovery(&account.name, &codes);
    }
    Ok(())
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s).ok_or_else(|| format!("`{s}` is not SHA1, SHA256 or SHA512"))
}

/// Says where the new enrollment will be asked for: the PAM services of this host that load
/// pam_twofa (read as doctor reads them), or that none does yet and what to do. An enrollment
/// is no use until a stack asks for the code, and "from now on a code is asked" would be
/// untrue.
fn say_where_asked(what: &str) {
    let services = crate::doctor::services_with_twofa(Path::new(crate::doctor::PAM_DIR));
    if services.is_empty() {
        say!("No PAM service on this host asks for the code yet: add pam_twofa to the stacks (README, \"Add it to sshd and sudo\"), then check them with: twofa-enroll doctor");
    } else {
        say!(
            "From now on {what} (PAM services: {}).",
            services.join(", ")
        );
    }
}

/// A secret to keep, and the parameters its URI carried (if it was a URI).
fn read_secret(path: &Path, input: &mut Input) -> Result<(Secret, Option<Params>), Failure> {
    let text = if path == Path::new("-") {
        input.line()?
    } else {
        let mut s = Zeroizing::new(String::new());
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut s))
            .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
        let first = Zeroizing::new(s.lines().next().unwrap_or("").to_string());
        first
    };
    let text = text.trim();
    let (secret, params) = if text.starts_with("otpauth://") {
        let parsed = uri::parse_totp_uri(text).map_err(|e| Failure::new(e.to_string()))?;
        (parsed.secret, Some(parsed.params))
    } else {
        (
            Secret::from_base32(text).map_err(|e| Failure::new(e.to_string()))?,
            None,
        )
    };
    if secret.bits() < RECOMMENDED_BITS {
        output::warn(&format!(
            "the secret has only {} bits; {RECOMMENDED_BITS} or more are recommended (enroll without --secret-file for a new one)",
            secret.bits()
        ));
    }
    Ok((secret, params))
}

/// Asks for codes until `check` accepts one (three tries on a terminal, one otherwise);
/// returns what it matched (a TOTP step or an HOTP counter). `hint` says what to look at.
fn confirm(
    input: &mut Input,
    digits: u32,
    hint: &str,
    check: impl Fn(&[u8]) -> Option<u64>,
) -> Result<u64, Failure> {
    let tries = if std::io::stdin().is_terminal() { 3 } else { 1 };
    for attempt in 1..=tries {
        let line = input.ask("Verification code: ")?;
        if line.is_empty() {
            return Err(Failure::new("no code was entered; nothing was saved"));
        }
        if let Some(m) = otp::normalize_code(line.trim().as_bytes(), digits).and_then(|c| check(&c))
        {
            return Ok(m);
        }
        if attempt < tries {
            eprintln!("That code is not right; try the next one the app shows.");
        }
    }
    Err(Failure::new("the code did not match; nothing was saved").hint(hint.to_string()))
}

/// Runs `enroll`.
pub fn run(config_path: Option<&Path>, args: &Args) -> Result<(), Failure> {
    let ForUser {
        config,
        account,
        store,
    } = for_user(config_path, &args.user)?;
    match store.enrollment(&account) {
        Ok(Some(_)) if !args.force => {
            return Err(Failure::new(format!(
                "{} is already enrolled; nothing was changed",
                account.name
            ))
            .hint("add --force to replace the enrollment (the old secret stops working)"))
        }
        Ok(_) => {}
        Err(e) if args.force => output::warn(&format!("replacing an unreadable enrollment: {e}")),
        Err(e) => return Err(Failure::new(e.to_string()).hint("add --force to replace it")),
    }
    let deliveries = delivery_factors(&config, args)?;
    let method = match (args.hotp, args.method) {
        (true, _) => MethodArg::Hotp,
        (false, m) => m.unwrap_or(MethodArg::Totp),
    };
    let oob = match method {
        MethodArg::Email => Some(Method::Email),
        MethodArg::Pushover => Some(Method::Pushover),
        MethodArg::Script => Some(Method::Script),
        MethodArg::Totp | MethodArg::Hotp => None,
    };
    if let Some(m) = oob {
        return enroll_delivery(&config, &store, &account, args, deliveries, m);
    }
    let hotp = method == MethodArg::Hotp;
    if hotp && args.period.is_some() {
        return Err(Failure::new(
            "--period is for TOTP; an HOTP token counts presses, not time",
        ));
    }

    let mut input = Input::new();
    let (secret, uri_params) = match &args.secret_file {
        Some(path) => {
            let (s, p) = read_secret(path, &mut input)?;
            (Some(s), p)
        }
        None => (None, None),
    };
    // Flags win over the URI's parameters, which win over the policy's defaults.
    let base = uri_params.unwrap_or(config.totp.params);
    let params = Params {
        algorithm: args.algorithm.unwrap_or(base.algorithm),
        digits: args.digits.unwrap_or(base.digits),
        period: args.period.unwrap_or(base.period),
    };
    let widely_supported =
        params.algorithm == Algorithm::Sha1 && params.digits == 6 && (hotp || params.period == 30);
    if !widely_supported {
        output::warn(&format!(
            "{}, {} digits{}: many authenticator apps (Google Authenticator among them) ignore these and show wrong codes; SHA1, 6 digits, 30 s works everywhere",
            params.algorithm,
            params.digits,
            if hotp { String::new() } else { format!(", {} s", params.period) }
        ));
    }
    let secret = match secret {
        Some(s) => s,
        None => Secret::generate(params.algorithm.new_secret_bytes())?,
    };
    let uri = if hotp {
        uri::hotp_uri(
            &config.totp.issuer,
            &account.name,
            &secret,
            &params,
            args.counter,
        )
    } else {
        uri::totp_uri(&config.totp.issuer, &account.name, &secret, &params)
    };

    if !args.json {
        if !args.no_qr {
            say!("{}", qr::terminal(&uri)?);
        }
        say!(
            "Scan the QR code with an authenticator app, or enter this key: {}",
            secret.to_base32().as_str()
        );
        say!("{}", uri.as_str());
    }
    if let Some(png) = &args.qr_png {
        qr::write_png(&uri, png, args.force)?;
        if !args.json {
            say!(
                "QR code written to {} (mode 0600; delete it once scanned).",
                png.display()
            );
        }
    }

    let confirmed = if args.no_verify {
        None
    } else if hotp {
        let hint = "press the token once and type the code it shows; if it was pressed many times, use --counter or resync later";
        Some(confirm(&mut input, params.digits, hint, |code| {
            otp::verify_hotp(
                secret.bytes(),
                &params,
                code,
                args.counter,
                config.hotp_look_ahead,
            )
        })?)
    } else {
        let hint = format!(
            "check that the phone's clock is right and that the app uses {}, {} digits, {} s",
            params.algorithm, params.digits, params.period
        );
        Some(confirm(&mut input, params.digits, &hint, |code| {
            otp::verify_totp(secret.bytes(), &params, code, now(), config.totp.window)
        })?)
    };

    let enrolled_at = now();
    let factor = if hotp {
        Factor::Hotp(HotpFactor {
            secret: secret.clone(),
            params,
            counter: args.counter,
            enrolled_at,
        })
    } else {
        Factor::Totp(TotpFactor {
            secret: secret.clone(),
            params,
            enrolled_at,
        })
    };
    let kind = factor.kind();
    let mut enrollment = Enrollment {
        account: account.name.clone(),
        factors: vec![factor],
    };
    // Out-of-band methods given as well are fallbacks after the app or token.
    enrollment
        .factors
        .extend(deliveries.into_iter().map(Factor::Delivery));
    let codes = issue_recovery(&mut enrollment, config.recovery_codes, enrolled_at)?;
    store
        .put_enrollment(&account, &enrollment, args.force)
        .map_err(|e| match e {
            StoreError::AlreadyEnrolled(_) => Failure::new(format!("{e}; nothing was changed"))
                .hint("add --force to replace the enrollment"),
            other => Failure::new(other.to_string()),
        })?;
    // The code typed to confirm is spent: it can't be replayed at a login. It is the
    // enrollment, not a login: `status` shows "last login: never" until the first one.
    if let Some(m) = confirmed {
        let spent = if hotp {
            Confirmation::Hotp(m)
        } else {
            Confirmation::Totp(m)
        };
        if let Err(e) = store.spend_confirmation(&account, spent) {
            output::warn(&format!(
                "enrolled, but the confirmation code could not be marked used: {e}"
            ));
        }
    }

    if args.json {
        let mut out = serde_json::json!({
            "account": account.name,
            "factor": kind,
            "uri": uri.as_str(),
            "secret": secret.to_base32().as_str(),
            "algorithm": params.algorithm.name(),
            "digits": params.digits,
            "enrolled_at": enrolled_at,
            "verified": confirmed.is_some(),
            "recovery_codes": codes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        });
        if hotp {
            out["counter"] = serde_json::json!(args.counter);
        } else {
            out["period"] = serde_json::json!(params.period);
        }
        say!("{out}");
    } else {
        let what = if hotp {
            format!(
                "HOTP ({}, {} digits, counter {})",
                params.algorithm, params.digits, args.counter
            )
        } else {
            format!(
                "TOTP ({}, {} digits, {} s)",
                params.algorithm, params.digits, params.period
            )
        };
        say!("Enrolled {}: {what}.", account.name);
        if confirmed.is_some() {
            say!(
                "{}",
                if hotp {
                    "The code just typed is used up: for the first login, press the token for a new one."
                } else {
                    "The code just typed is used up: for the first login, use the next code the app shows."
                }
            );
        }
        say_where_asked("a verification code is asked at login");
        print_recovery(&account.name, &codes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::check_destination_patterns;
    use clap::Parser;
    use twofa_core::config;

    /// `Args` alone on a command line.
    #[derive(Debug, clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Args,
    }

    fn policy_with_pattern(pattern: &str) -> Result<Config, String> {
        let text = format!(
            "version = 1\n[delivery.script]\ncommand = \"/x\"\ndestination_pattern = {}\n",
            twofa_core::enrollment::quote(pattern)
        );
        config::parse(&text, Path::new("/etc/twofa/twofa.toml")).map_err(|e| e.to_string())
    }

    fn script_to(config: &Config, to: &str) -> Result<Vec<DeliveryFactor>, String> {
        let cmd = Cmd::try_parse_from(["enroll", "carol", "--script-to", to])
            .map_err(|e| e.to_string())?;
        delivery_factors(config, &cmd.args).map_err(|f| f.message)
    }

    #[test]
    fn an_invalid_destination_pattern_is_refused_with_file_line_and_key() -> Result<(), String> {
        let config = policy_with_pattern("^(\\+41")?;
        let err = check_destination_patterns(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(
                "/etc/twofa/twofa.toml:4: key `delivery.script.destination_pattern`: not a valid regular expression: "
            ),
            "{err}"
        );
        assert!(check_destination_patterns(&policy_with_pattern("^\\+41[0-9]{9}$")?).is_ok());
        Ok(())
    }

    #[test]
    fn a_script_destination_outside_the_pattern_is_refused_at_enrollment() -> Result<(), String> {
        let config = policy_with_pattern("^\\+4178[0-9]{7}$")?;
        assert_eq!(
            script_to(&config, "+41791234567").err().as_deref(),
            Some("`+41791234567` does not match the policy's destination_pattern")
        );
        let factors = script_to(&config, "+41781234567")?;
        assert_eq!(factors.len(), 1);
        assert_eq!(factors[0].to, ["+41781234567"]);
        Ok(())
    }

    #[test]
    fn an_uncompiled_invalid_pattern_refuses_every_destination() -> Result<(), String> {
        // A policy that did not come through load_config: refused, not matched loosely.
        let config = policy_with_pattern("(")?;
        let err = script_to(&config, "+41781234567").err().unwrap_or_default();
        assert!(err.contains("not a valid regular expression"), "{err}");
        Ok(())
    }
}
