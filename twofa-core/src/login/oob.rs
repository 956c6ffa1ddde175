//! Codes sent out of band (mail, push, a script): which factor, and sending one.

use zeroize::Zeroizing;

use super::store_reason;
use super::verify::Attempt;
use crate::audit::Reason;
use crate::config::Config;
use crate::enrollment::{DeliveryFactor, Enrollment};
use crate::recovery;
use crate::store::{Challenge, SendOutcome, StoreError};

/// The user's first out-of-band factor that the policy offers (in the policy's order).
pub(super) fn first_delivery<'e>(config: &Config, e: &'e Enrollment) -> Option<&'e DeliveryFactor> {
    config
        .factors
        .iter()
        .find_map(|name| e.deliveries().find(|d| d.method.name() == name))
        .filter(|d| config.delivery.method(d.method).is_some())
}

/// Whether, in the policy's order, the user's first factor (recovery codes aside) is sent out
/// of band rather than read from an app or token.
pub(super) fn primary_is_delivery(config: &Config, e: &Enrollment) -> bool {
    for name in &config.factors {
        match name.as_str() {
            "totp" if e.totp().is_some() => return false,
            "hotp" if e.hotp().is_some() => return false,
            "recovery" => {}
            other if e.deliveries().any(|d| d.method.name() == other) => return true,
            _ => {}
        }
    }
    false
}

/// `digits` random decimal digits, uniformly (rejection sampling over the OS CSPRNG).
pub fn random_code(digits: u32) -> Option<Zeroizing<String>> {
    let modulus = 10u64.checked_pow(digits)?;
    let limit = u64::MAX - u64::MAX % modulus;
    loop {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).ok()?;
        let v = u64::from_ne_bytes(b);
        if v < limit {
            return Some(Zeroizing::new(format!(
                "{:0width$}",
                v % modulus,
                width = digits as usize
            )));
        }
    }
}

/// Why a code was not sent: the reason logged, and the program's words if any.
pub(super) type SendFailure = (Reason, Option<String>);

impl Attempt<'_> {
    /// Sends a fresh code by `d`: counted against the send limit first (atomically, so parallel
    /// logins can't exceed it), kept only as a salted HMAC with its expiry, then handed to the
    /// delivery program. Tells the user where it went, or why not.
    pub(super) fn send_code(&mut self, d: &DeliveryFactor) -> Result<(), SendFailure> {
        let (config, store, req, account) = (self.config, self.store, self.req, self.account);
        let policy = &config.delivery;
        let Some(method) = policy.method(d.method) else {
            return Err((
                Reason::DeliveryFailed,
                Some(format!("no [delivery.{}] in the policy", d.method.name())),
            ));
        };
        let state_error =
            |e: StoreError| (store_reason(&e, Reason::StateError), Some(e.to_string()));
        match store
            .count_send(
                account,
                req.now,
                policy.max_sends,
                policy.send_window_seconds,
            )
            .map_err(state_error)?
        {
            SendOutcome::Allowed => {}
            SendOutcome::Limited => {
                self.conv.show_error("Too many codes were sent; try again later, or use your authenticator app or a recovery code.");
                return Err((Reason::SendLimited, None));
            }
        }
        let code = random_code(policy.code_digits)
            .ok_or((Reason::InternalError, Some("no random code".into())))?;
        let mut salt = vec![0u8; 16];
        getrandom::getrandom(&mut salt)
            .map_err(|e| (Reason::InternalError, Some(e.to_string())))?;
        let challenge = Challenge {
            salt: crate::hex::encode(&salt),
            hash: crate::hex::encode(&recovery::hash(&salt, code.as_bytes())),
            expires: req.now.saturating_add(method.code_ttl_seconds),
        };
        store
            .put_challenge(account, challenge)
            .map_err(state_error)?;
        if let Err(e) = self
            .deliver
            .send(&account.name, d, &code, method.code_ttl_seconds)
        {
            self.conv.show_error("Could not send the code; use your authenticator app or a recovery code, or contact your administrator.");
            return Err((Reason::DeliveryFailed, Some(e.to_string())));
        }
        let minutes = method.code_ttl_seconds.div_ceil(60);
        self.conv.show_notice(&format!(
            "A code was sent to {}. It is valid for {minutes} minute{}.",
            d.masked(),
            if minutes == 1 { "" } else { "s" }
        ));
        Ok(())
    }
}
