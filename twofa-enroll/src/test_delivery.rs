//! `twofa-enroll test-delivery USER`: a test code by each of the user's out-of-band methods.

use std::path::Path;

use twofa_core::delivery::{Deliverer, Programs};
use twofa_core::enrollment::DeliveryFactor;
use twofa_core::fleet;
use twofa_core::store::Store;

use crate::context::{account, load_config};
use crate::output::{self, Failure};

/// Arguments of `test-delivery`.
#[derive(Debug, clap::Args)]
pub struct TestDeliveryArgs {
    /// The account whose out-of-band destinations get a test code.
    user: String,
}

/// Runs `test-delivery`: sends a code (that works nowhere) to each of the user's out-of-band
/// destinations and says what happened.
pub fn run(config_path: Option<&Path>, args: &TestDeliveryArgs) -> Result<(), Failure> {
    output::require_root()?;
    let config = load_config(config_path)?;
    let account = account(&args.user)?;
    let store = fleet::open_admin(&config);
    let Some(enrollment) = store.enrollment(&account)? else {
        return Err(Failure::new(format!("{} is not enrolled", account.name)));
    };
    let deliveries: Vec<&DeliveryFactor> = enrollment.deliveries().collect();
    if deliveries.is_empty() {
        return Err(Failure::new(format!(
            "{} has no email, pushover or script method",
            account.name
        ))
        .hint(format!(
            "add one: twofa-enroll reset {} --email ADDRESS",
            account.name
        )));
    }
    let deliver = Programs {
        policy: &config.delivery,
    };
    let mut failed = 0;
    for d in deliveries {
        let code = twofa_core::login::random_code(config.delivery.code_digits)
            .ok_or_else(|| Failure::new("no random code"))?;
        let ttl = config
            .delivery
            .method(d.method)
            .map(|m| m.code_ttl_seconds)
            .unwrap_or(300);
        match deliver.send(&account.name, d, &code, ttl) {
            Ok(()) => say!(
                "{}: sent a test code to {} (it works nowhere).",
                d.method.name(),
                d.masked()
            ),
            Err(e) => {
                failed += 1;
                output::print_failure(&Failure::new(format!(
                    "{}: not sent to {}: {e}",
                    d.method.name(),
                    d.masked()
                )));
            }
        }
    }
    if failed > 0 {
        return Err(Failure::new(format!("{failed} method(s) could not send")));
    }
    Ok(())
}
