//! Statistics of a run: percentiles, medians, ratios, probe counts.

#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    pub(crate) logins: usize,
    /// Logins that got another PAM result than expected (refused right codes...).
    pub(crate) refused: usize,
    pub(crate) rate: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

impl Stats {
    /// Several rounds of one row as one: logins and refusals summed, and the median round of
    /// rate, p50 and p99 (each separately).
    pub(crate) fn median_of(runs: &[&Stats]) -> Stats {
        let med = |f: fn(&Stats) -> f64| median(&runs.iter().map(|s| f(s)).collect::<Vec<_>>());
        Stats {
            logins: runs.iter().map(|s| s.logins).sum(),
            refused: runs.iter().map(|s| s.refused).sum(),
            rate: med(|s| s.rate),
            p50_us: med(|s| s.p50_us),
            p99_us: med(|s| s.p99_us),
        }
    }
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProbeCounts {
    pub(crate) syscalls: u64,
    pub(crate) fsyncs: u64,
    pub(crate) renames: u64,
    pub(crate) instructions: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PerLogin {
    pub(crate) syscalls: f64,
    pub(crate) fsyncs: f64,
    pub(crate) renames: f64,
    pub(crate) instructions: f64,
}

impl ProbeCounts {
    pub(crate) fn scaled(self, d: f64) -> PerLogin {
        PerLogin {
            syscalls: self.syscalls as f64 / d,
            fsyncs: self.fsyncs as f64 / d,
            renames: self.renames as f64 / d,
            instructions: self.instructions as f64 / d,
        }
    }
}

pub(crate) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "—".into()
    }
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}
