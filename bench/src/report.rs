//! The report: the tables, the machine, and the markdown file docs/benchmarks.md quotes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::codes::{iso8601, unix_now};
use crate::devlog;
use crate::fleet;
use crate::options::Options;
use crate::oracle;
use crate::runs::LOAD_BASE;
use crate::setup::Module;
use crate::stats::{median, ratio, PerLogin, Stats};
use crate::worker::{FLOOR, FLOOR_LOOKUP};

pub(crate) fn so_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) logins: Vec<(String, usize, usize, Stats)>,
    pub(crate) wrong: Vec<(String, Stats)>,
    pub(crate) load: Vec<(String, Stats)>,
    /// dlopen + dlclose in a C program: (name, p50 µs, p90 µs).
    pub(crate) c_load: Vec<(String, f64, f64)>,
    /// Every run of `logins` and `wrong` before [`Report::aggregate`], in the order run: the
    /// rounds that paired ratios are taken from.
    pub(crate) rounds: Vec<(String, usize, usize, Stats)>,
    pub(crate) probes: Vec<(String, PerLogin)>,
    pub(crate) sshd: Vec<(String, Vec<f64>)>,
    pub(crate) sizes: Vec<(String, u64)>,
    /// `--fleet`: what the fleet part found beside its login rows (which are in `logins`).
    pub(crate) fleet: Option<fleet::FleetReport>,
    /// pam_twofa's log wait with a stalled /dev/log reader.
    pub(crate) log_wait: Option<devlog::LogWait>,
    /// pam_twofa after a failed password, per stack and name.
    pub(crate) oracle: Vec<oracle::Row>,
}

impl Report {
    /// One row per (module, users, workers): the median round of rate, p50 and p99 (each
    /// separately), logins and refusals summed.
    pub(crate) fn aggregate(&mut self) {
        let first_users = self.logins.first().map_or(0, |r| r.1);
        self.rounds = self.logins.clone();
        self.rounds.extend(
            self.wrong
                .iter()
                .map(|(n, st)| (format!("{n} (wrong code)"), first_users, 1, st.clone())),
        );
        let mut keys: Vec<(String, usize, usize)> = Vec::new();
        for (n, u, w, _) in &self.logins {
            if !keys.iter().any(|k| k.0 == *n && k.1 == *u && k.2 == *w) {
                keys.push((n.clone(), *u, *w));
            }
        }
        let mut out = Vec::new();
        for (n, u, w) in keys {
            let runs: Vec<&Stats> = self
                .logins
                .iter()
                .filter(|r| r.0 == n && r.1 == u && r.2 == w)
                .map(|r| &r.3)
                .collect();
            out.push((n, u, w, Stats::median_of(&runs)));
        }
        self.logins = out;
        let mut wrong: Vec<(String, Stats)> = Vec::new();
        for (n, _) in &self.wrong {
            if wrong.iter().any(|(w, _)| w == n) {
                continue;
            }
            let runs: Vec<&Stats> = self
                .wrong
                .iter()
                .filter(|r| r.0 == *n)
                .map(|r| &r.1)
                .collect();
            wrong.push((n.clone(), Stats::median_of(&runs)));
        }
        self.wrong = wrong;
    }

    /// p50 of `a` over p50 of `b`, taken round by round (both ran within seconds of each other
    /// in every round), as (median, lowest, highest) over the rounds. The machine's disk
    /// drifts between rounds by more than the differences measured; a ratio within one round
    /// does not see that drift.
    pub(crate) fn paired(
        &self,
        a: &str,
        b: &str,
        users: usize,
        workers: usize,
    ) -> Option<(f64, f64, f64)> {
        let runs = |n: &str| -> Vec<f64> {
            self.rounds
                .iter()
                .filter(|r| r.0 == n && r.1 == users && r.2 == workers)
                .map(|r| r.3.p50_us)
                .collect()
        };
        let ratios: Vec<f64> = runs(a)
            .iter()
            .zip(runs(b))
            .map(|(x, y)| x / y.max(1e-9))
            .collect();
        if ratios.is_empty() {
            return None;
        }
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        Some((median(&ratios), lo, hi))
    }

    pub(crate) fn login(&self, name: &str, users: usize, workers: usize) -> Option<&Stats> {
        self.logins
            .iter()
            .find(|(n, u, w, _)| n == name && *u == users && *w == workers)
            .map(|(_, _, _, s)| s)
    }

    pub(crate) fn markdown(&self, o: &Options, modules: &[(Module, PathBuf)]) -> String {
        let twofa = Module::Twofa.name();
        let peers: Vec<&str> = modules
            .iter()
            .map(|(m, _)| m.name())
            .filter(|n| *n != twofa)
            .collect();
        let has_twofa = modules.iter().any(|(m, _)| *m == Module::Twofa);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Machine: {} x {}, {}; logins per run {}, median of {} rounds; run {}.\n",
            nproc(),
            cpu_model(),
            disk_desc(),
            o.logins,
            o.rounds,
            iso8601(unix_now())
        );
        // Logins.
        let _ = writeln!(s, "### Logins (right code, a different user each)\n");
        let _ = write!(s, "| module | users | workers | logins (refused) | logins/s | p50 µs | p99 µs | p99/p50 |");
        if has_twofa {
            let _ = write!(s, " twofa/this logins/s | twofa/this p50 |");
        }
        let _ = writeln!(s);
        let _ = write!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        if has_twofa {
            let _ = write!(s, "---:|---:|");
        }
        let _ = writeln!(s);
        // The fleet rows have their own table (fleet::markdown), beside the file rows.
        for (name, users, workers, st) in self.logins.iter().filter(|r| !fleet::is_fleet_row(&r.0))
        {
            let _ = write!(
                s,
                "| {name} | {users} | {workers} | {} ({}) | {:.0} | {:.0} | {:.0} | {:.1} |",
                st.logins,
                st.refused,
                st.rate,
                st.p50_us,
                st.p99_us,
                st.p99_us / st.p50_us.max(1e-9)
            );
            if has_twofa {
                match self.login(twofa, *users, *workers) {
                    Some(t) => {
                        let _ = write!(
                            s,
                            " {} | {} |",
                            ratio(t.rate, st.rate),
                            ratio(t.p50_us, st.p50_us)
                        );
                    }
                    None => {
                        let _ = write!(s, " — | — |");
                    }
                }
            }
            let _ = writeln!(s);
        }
        // Wrong codes and load.
        let _ = writeln!(s, "\n### Wrong code, module load, size\n");
        let _ = writeln!(
            s,
            "| module | wrong code p50 µs | wrong/right p50 | load p50 µs (pam_start+pam_end) | load p99 µs | .so bytes | twofa/this load | twofa/this size |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        let first_users = o.users.first().copied().unwrap_or(0);
        let tw_load = self.load.iter().find(|(n, _)| n == twofa).map(|(_, s)| s);
        let tw_size = self.sizes.iter().find(|(n, _)| n == twofa).map(|(_, s)| *s);
        for (name, l) in &self.load {
            let wrong = self.wrong.iter().find(|(n, _)| n == name).map(|(_, s)| s);
            let right = self.login(name, first_users, 1);
            let size = self.sizes.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
                wrong.map_or("—".into(), |w| format!("{:.0}", w.p50_us)),
                match (wrong, right) {
                    (Some(w), Some(r)) => ratio(w.p50_us, r.p50_us),
                    _ => "—".into(),
                },
                l.p50_us,
                l.p99_us,
                size.map_or("—".into(), |b| b.to_string()),
                tw_load.map_or("—".into(), |t| ratio(t.p50_us, l.p50_us)),
                match (tw_size, size) {
                    (Some(t), Some(b)) => ratio(t as f64, b as f64),
                    _ => "—".into(),
                }
            );
        }
        // Load in a C program.
        if !self.c_load.is_empty() {
            let _ = writeln!(
                s,
                "\n### Module load in a C program (dlopen + dlclose, interleaved; no libgcc_s loaded, as in sshd)\n"
            );
            let _ = writeln!(s, "| object | p50 µs | p90 µs | twofa/this p50 |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            let tw = self.c_load.iter().find(|r| r.0 == twofa).map(|r| r.1);
            for (name, p50, p90) in &self.c_load {
                let shown = if name == LOAD_BASE {
                    "pam_permit.so"
                } else {
                    name.as_str()
                };
                let _ = writeln!(
                    s,
                    "| {shown} | {p50:.0} | {p90:.0} | {} |",
                    tw.map_or("—".into(), |t| ratio(t, *p50))
                );
            }
        }
        if let Some(w) = &self.log_wait {
            if let (Some(r), Some(st)) = (&w.reading, &w.stalled) {
                let _ = writeln!(
                    s,
                    "\n### pam_twofa's log wait: a stalled /dev/log reader (wrong code, one worker, {} logins each)\n",
                    w.logins
                );
                let _ = writeln!(
                    s,
                    "| /dev/log reader | p50 µs | p99 µs | lines counted as lost |"
                );
                let _ = writeln!(s, "|---|---:|---:|---:|");
                let _ = writeln!(s, "| reading | {:.0} | {:.0} | 0 |", r.p50_us, r.p99_us);
                let _ = writeln!(
                    s,
                    "| stopped, queue full | {:.0} | {:.0} | {} of {} |",
                    st.p50_us, st.p99_us, w.counted, w.logins
                );
                let _ = writeln!(
                    s,
                    "\nA stalled reader costs a login {:.0} ms at the median (bound: 250 ms of log wait per login).",
                    (st.p50_us - r.p50_us) / 1000.0
                );
            }
        }
        if !self.oracle.is_empty() {
            let each = self.oracle[0].lat[0].len();
            let _ = writeln!(
                s,
                "\n### pam_twofa after a failed password, by name (pam_deny in pam_unix's place, fail delay caught; {each} logins per name, interleaved)\n"
            );
            let _ = writeln!(
                s,
                "| stack | {} median µs (IQR) | {} | {} | highest / lowest median | IQRs overlap | target |",
                oracle::LABELS[0],
                oracle::LABELS[1],
                oracle::LABELS[2]
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---|---|");
            for row in &self.oracle {
                let cells: Vec<String> = (0..3)
                    .map(|i| {
                        let (lo, mid, hi) = row.quartiles(i);
                        format!("{mid:.1} ({lo:.1}–{hi:.1})")
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.2} | {} | {} |",
                    row.stack,
                    cells.join(" | "),
                    row.spread(),
                    if row.overlap() { "yes" } else { "no" },
                    if row.met() { "met" } else { "**missed**" }
                );
            }
            let _ = writeln!(s, "\nTarget: {}.", oracle::TARGET);
        }
        // Probes.
        if !self.probes.is_empty() {
            let _ = writeln!(
                s,
                "\n### Per login: durability and work (strace -f -c, valgrind --tool=callgrind; marginal: (40 - 10 logins) / 30, (25 - 5) / 20)\n"
            );
            let _ = writeln!(
                s,
                "| what | fsync/fdatasync | renames | syscalls | instructions (Ir) | twofa/this Ir |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
            let tw = self.probes.iter().find(|(n, _)| n == twofa).map(|(_, p)| p);
            for (name, p) in &self.probes {
                let _ = writeln!(
                    s,
                    "| {name} | {:.1} | {:.1} | {:.0} | {:.0} | {} |",
                    p.fsyncs,
                    p.renames,
                    p.syscalls,
                    p.instructions,
                    tw.map_or("—".into(), |t| ratio(t.instructions, p.instructions))
                );
            }
        }
        // sshd.
        if !self.sshd.is_empty() {
            let _ = writeln!(
                s,
                "\n### One real sshd keyboard-interactive login (127.0.0.1, paramiko; connect to authenticated; median)\n"
            );
            let _ = writeln!(
                s,
                "| PAM auth stack | median ms | min ms | max ms | minus pam_unix alone, ms |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|");
            let base = self.sshd.first().map_or(0.0, |(_, v)| median(v));
            for (name, v) in &self.sshd {
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = v.iter().copied().fold(0.0, f64::max);
                let _ = writeln!(
                    s,
                    "| {name} | {:.1} | {:.1} | {:.1} | {:+.1} |",
                    median(v) * 1000.0,
                    min * 1000.0,
                    max * 1000.0,
                    (median(v) - base) * 1000.0
                );
            }
        }
        // Targets.
        if has_twofa {
            let _ = writeln!(s, "\n### Targets (pam_twofa)\n");
            for line in self.targets(o, &peers) {
                let _ = writeln!(s, "- {line}");
            }
        }
        if let Some(f) = &self.fleet {
            fleet::markdown(&mut s, f, &self.logins);
        }
        s
    }

    pub(crate) fn targets(&self, o: &Options, peers: &[&str]) -> Vec<String> {
        let twofa = Module::Twofa.name();
        let mut out = Vec::new();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let u0 = o.users.first().copied().unwrap_or(0);
        let shown = |(m, lo, hi): (f64, f64, f64)| format!("{m:.2}x (rounds {lo:.2}–{hi:.2})");
        for &u in &o.users {
            for (floor, what) in [
                (
                    FLOOR,
                    "a successful login within 1.2x of the floor (pam_permit + one durable write)",
                ),
                (
                    FLOOR_LOOKUP,
                    "the same beside the floor + getpwnam (the account lookup, paid to NSS)",
                ),
            ] {
                if let Some(r) = self.paired(twofa, floor, u, 1) {
                    out.push(format!(
                        "{}: {what}, {u} users: p50 twofa / {floor}, per round: {}",
                        verdict(r.0 <= 1.2),
                        shown(r)
                    ));
                }
            }
        }
        if peers.contains(&Module::Google.name()) {
            for &w in &o.workers {
                for &u in &o.users {
                    if let (Some(t), Some(g)) = (
                        self.login(twofa, u, w),
                        self.login(Module::Google.name(), u, w),
                    ) {
                        out.push(format!(
                            "{}: logins/s at least google-authenticator's ({u} users, {w} workers): {:.0} vs {:.0}",
                            verdict(t.rate >= g.rate),
                            t.rate,
                            g.rate
                        ));
                    }
                }
            }
        }
        if let Some(r) = self.paired(&format!("{twofa} (wrong code)"), twofa, u0, 1) {
            out.push(format!(
                "{}: a wrong code no slower than a right one: p50 wrong / right, per round: {}",
                verdict(r.0 <= 1.05),
                shown(r)
            ));
        }
        if let (Some(&lo), Some(&hi)) = (o.users.first(), o.users.last()) {
            if lo != hi {
                for &w in &o.workers {
                    if let (Some(a), Some(b)) = (self.login(twofa, lo, w), self.login(twofa, hi, w))
                    {
                        let r = b.p50_us / a.p50_us;
                        out.push(format!(
                            "{}: cost independent of the number of enrolled users ({w} workers): p50 {hi} users / {lo} users = {r:.2}",
                            verdict(r <= 1.15),
                        ));
                        // The bench's accounts grow with its users: /etc/passwd has `hi`
                        // lines in the second world. Divide by the floor that looks the
                        // account up, measured in the same worlds, to see twofa's own part.
                        if let (Some(fa), Some(fb)) = (
                            self.paired(twofa, FLOOR_LOOKUP, lo, w),
                            self.paired(twofa, FLOOR_LOOKUP, hi, w),
                        ) {
                            let r = fb.0 / fa.0;
                            out.push(format!(
                                "{}: the same beside the account lookup ({w} workers): (twofa / floor + getpwnam) at {hi} users over at {lo} users = {r:.2}",
                                verdict(r <= 1.15),
                            ));
                        }
                    }
                }
            }
        }
        for (name, u, w, s) in &self.logins {
            if name == twofa {
                out.push(format!(
                    "{}: p99 under 3x p50 ({u} users, {w} workers): {:.1}x",
                    verdict(s.p99_us < 3.0 * s.p50_us),
                    s.p99_us / s.p50_us
                ));
            }
        }
        let load = |n: &str| {
            self.load
                .iter()
                .find(|(x, _)| x == n)
                .map(|(_, s)| s.p50_us)
        };
        if let (Some(t), Some(g)) = (load(twofa), load(Module::Google.name())) {
            out.push(format!(
                "{}: module load within 2x of google-authenticator's: {t:.0} vs {g:.0} µs = {:.2}x",
                verdict(t <= 2.0 * g),
                t / g
            ));
        }
        let c_load = |n: &str| self.c_load.iter().find(|r| r.0 == n).map(|r| r.1);
        if let (Some(t), Some(g)) = (c_load(twofa), c_load(Module::Google.name())) {
            out.push(format!(
                "{}: the same in a C program (dlopen + dlclose): {t:.0} vs {g:.0} µs = {:.2}x",
                verdict(t <= 2.0 * g),
                t / g
            ));
        }
        if let Some((_, b)) = self.sizes.iter().find(|(n, _)| n == twofa) {
            out.push(format!(
                "{}: .so under 1 MiB: {b} bytes ({:.2} MiB)",
                verdict(*b < 1 << 20),
                *b as f64 / (1u64 << 20) as f64
            ));
        }
        out
    }
}

pub(crate) fn disk_desc() -> String {
    // The file system of /tmp and the device behind it.
    let out = Command::new("findmnt")
        .args(["-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", "/tmp"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut parts = out.split_whitespace();
    let (src, fs) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
    let dev = src.rsplit('/').next().unwrap_or("");
    let rota = std::fs::read_to_string(format!("/sys/block/{dev}/queue/rotational"))
        .map(|r| {
            if r.trim() == "0" {
                "non-rotational"
            } else {
                "rotational"
            }
        })
        .unwrap_or("?");
    format!("/tmp on {src} ({fs}, {rota})")
}
