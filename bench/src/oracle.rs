//! Timing before the password: how long a login whose password fails takes for an enrolled
//! account, an account with no enrollment and a name with no account (docs/security.md, "A
//! remote guesser"). Through the README's stacks with `pam_deny` in pam_unix's place, so the
//! password is wrong for everyone and pam_unix's own timing (it skips hashing for a name with
//! no account) is out of the picture; libpam's fail delay is caught, not slept. The three names
//! take turns within one run, so they share every moment of it: a disk or a neighbour that
//! slows one slows all three.

use std::path::Path;

use crate::codes::{user_name, UID_BASE};
use crate::runs::{Bench, RunSpec};
use crate::setup::World;
use crate::stats::percentile;
use crate::worker::Mode;

/// An account with no enrollment (in the bench's /etc/passwd, after the enrolled users).
pub(crate) const UNENROLLED: &str = "twofa-e2e-bnoenroll";
/// Its uid: above every enrolled user's (`--users` is at most 99,999).
pub(crate) const UNENROLLED_UID: u64 = UID_BASE + 100_000;
/// A name with no account.
pub(crate) const UNKNOWN: &str = "twofa-e2e-bnosuch";
/// What the user types at every prompt: the code prompt of the two-prompt stack, or the one
/// field (a wrong password followed by six digits).
pub(crate) const ANSWER: &str = "bench-wrong-password123456";
/// The three names' labels, in the order of [`names`].
pub(crate) const LABELS: [&str; 3] = ["enrolled", "no enrollment", "no account"];

/// The target: the three medians within 10 % of each other, their interquartile ranges
/// overlapping.
pub(crate) const TARGET: &str = "the three medians within 10 % of each other, ranges overlapping";

/// The names, in turn: the last enrolled user (just before [`UNENROLLED`] in /etc/passwd, so
/// a lookup of either reads as far), the unenrolled account, the unknown name.
pub(crate) fn names(users: usize) -> [String; 3] {
    [
        user_name(users.saturating_sub(1)),
        UNENROLLED.into(),
        UNKNOWN.into(),
    ]
}

/// The stacks measured: (row name, PAM service).
pub(crate) const STACKS: [(&str, &str); 2] = [
    ("password, then code (sudo, sshd)", "bench-twofa-password"),
    ("one field (concat: FTP)", "bench-twofa-concat"),
];

/// The service files of [`STACKS`]: the README's stacks, pam_deny in pam_unix's place.
pub(crate) fn services(module: &Path, args: &str) -> [(&'static str, String); 2] {
    let m = module.display();
    [
        (
            STACKS[0].1,
            format!(
                "auth [success=1 default=ignore] pam_deny.so\n\
                 auth required {m} password_failed {args}\n\
                 auth required {m} {args}\n\
                 auth optional pam_permit.so\n"
            ),
        ),
        (
            STACKS[1].1,
            format!(
                "auth requisite {m} concat {args}\n\
                 auth [success=1 default=ignore] pam_deny.so use_first_pass\n\
                 auth required {m} password_failed {args}\n\
                 auth required {m} {args}\n"
            ),
        ),
    ]
}

/// One stack's logins, per name (in the order of [`names`]), in ns.
pub(crate) struct Row {
    pub(crate) stack: &'static str,
    pub(crate) lat: [Vec<u64>; 3],
}

impl Row {
    /// (25th percentile, median, 75th percentile) of name `i`, in µs.
    pub(crate) fn quartiles(&self, i: usize) -> (f64, f64, f64) {
        let mut v = self.lat[i].clone();
        v.sort_unstable();
        (
            percentile(&v, 0.25),
            percentile(&v, 0.50),
            percentile(&v, 0.75),
        )
    }

    /// The highest median over the lowest.
    pub(crate) fn spread(&self) -> f64 {
        let medians: Vec<f64> = (0..3).map(|i| self.quartiles(i).1).collect();
        let hi = medians.iter().copied().fold(0.0, f64::max);
        let lo = medians.iter().copied().fold(f64::INFINITY, f64::min);
        hi / lo.max(1e-9)
    }

    /// Whether the three interquartile ranges share a point.
    pub(crate) fn overlap(&self) -> bool {
        let q: Vec<(f64, f64, f64)> = (0..3).map(|i| self.quartiles(i)).collect();
        let top_low = q.iter().map(|x| x.0).fold(0.0, f64::max);
        let bottom_high = q.iter().map(|x| x.2).fold(f64::INFINITY, f64::min);
        top_low <= bottom_high
    }

    pub(crate) fn met(&self) -> bool {
        self.spread() <= 1.10 && self.overlap()
    }
}

/// `rounds` runs of each stack, `each` logins per name per run, one worker; every login must
/// be refused (PAM_AUTH_ERR), whatever the mode (the bench is strict about it in `--smoke`).
pub(crate) fn probe(
    bench: &Bench,
    world: &World,
    rounds: usize,
    each: usize,
) -> Result<Vec<Row>, String> {
    let mut rows: Vec<Row> = STACKS
        .iter()
        .map(|(stack, _)| Row {
            stack,
            lat: Default::default(),
        })
        .collect();
    for _ in 0..rounds {
        for (row, (_, service)) in rows.iter_mut().zip(STACKS) {
            let c = bench.collect(&RunSpec {
                world,
                service,
                mode: Mode::PasswordFailed,
                workers: 1,
                logins: 3 * each,
            })?;
            if c.refused > 0 {
                return Err(format!(
                    "{service}: {} logins after a failed password were not refused",
                    c.refused
                ));
            }
            for (k, l) in c.lat.into_iter().enumerate() {
                row.lat[k % 3].push(l);
            }
        }
    }
    Ok(rows)
}
