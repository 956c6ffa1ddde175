//! Runs and their figures: workers released together, probes (strace, callgrind), module
//! load in a C program, real sshd logins.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::codes::{base32, mono_ns, secret, user_name};
use crate::setup::{repo_root, World};
use crate::stats::{median, percentile, PerLogin, ProbeCounts, Stats};
use crate::worker::{user_for, Mode};

/// The load rows' baseline: libpam with pam_permit (pam_start + pam_end), or pam_permit.so
/// alone (dlopen + dlclose in a C program).
pub(crate) const LOAD_BASE: &str = "pam_permit (libpam alone)";

/// dlopen + dlclose of each object in a C program (bench/src/cload.c, built with `cc`): what
/// loading costs in sshd's connection process, which has no libgcc_s loaded, unlike the Rust
/// workers. Returns (name, p50 µs, p90 µs); empty, with a note, where there is no `cc`.
pub(crate) fn c_program_load(
    base: &Path,
    objects: &[(String, PathBuf)],
    iterations: usize,
) -> Result<Vec<(String, f64, f64)>, String> {
    let src = base.join("cload.c");
    let exe = base.join("cload");
    std::fs::write(&src, include_str!("cload.c")).map_err(|e| format!("{}: {e}", src.display()))?;
    let built = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-ldl")
        .output();
    match built {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "cc cload.c: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => {
            eprintln!("   (no C program load rows: cc: {e})");
            return Ok(Vec::new());
        }
    }
    let out = Command::new(&exe)
        .arg(iterations.max(1).to_string())
        .args(objects.iter().map(|(_, p)| p))
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "C program load failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for ((name, _), line) in objects.iter().zip(text.lines()) {
        let mut f = line.split_whitespace();
        let (Some(Ok(p50)), Some(Ok(p90))) = (f.next().map(str::parse), f.next().map(str::parse))
        else {
            return Err(format!("C program load: unexpected line {line:?}"));
        };
        eprintln!("   {name:<26} load in a C program (dlopen+dlclose): p50 {p50:>6.0} us  p90 {p90:>6.0} us");
        rows.push((name.clone(), p50, p90));
    }
    if rows.len() != objects.len() {
        return Err(format!(
            "C program load: {} lines for {} objects",
            rows.len(),
            objects.len()
        ));
    }
    Ok(rows)
}

/// What runs a probe: strace or callgrind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrap {
    Strace,
    Callgrind,
}

pub(crate) struct Bench {
    pub(crate) exe: PathBuf,
    pub(crate) base: PathBuf,
    /// Fail on any unexpected PAM result (--smoke), instead of counting it.
    pub(crate) strict: bool,
}

/// What the workers of one run report, before any statistics.
pub(crate) struct Collected {
    pub(crate) ok: usize,
    pub(crate) refused: usize,
    /// When the workers were released, and when the last one finished (CLOCK_MONOTONIC ns).
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// Each login's latency in ns, in the order run (worker after worker).
    pub(crate) lat: Vec<u64>,
}

pub(crate) struct RunSpec<'a> {
    pub(crate) world: &'a World,
    pub(crate) service: &'a str,
    pub(crate) mode: Mode,
    pub(crate) workers: usize,
    pub(crate) logins: usize,
}

impl Bench {
    pub(crate) fn worker_command(&self, r: &RunSpec, index: usize, start: u64) -> Vec<String> {
        let mut v = vec![
            self.exe.display().to_string(),
            "--worker".into(),
            "--mode".into(),
            r.mode.name().into(),
            "--confdir".into(),
            r.world.confdir.display().to_string(),
            "--service".into(),
            r.service.into(),
            "--users".into(),
            r.world.users.to_string(),
            "--logins".into(),
            r.logins.to_string(),
            "--index".into(),
            index.to_string(),
            "--workers".into(),
            r.workers.to_string(),
            "--start-mono".into(),
            start.to_string(),
        ];
        if r.mode.is_floor() {
            v.push("--floor-dir".into());
            v.push(r.world.floor_dir().display().to_string());
        }
        v
    }

    /// Runs `r` with its workers released together; fails on any unexpected PAM result.
    pub(crate) fn run(&self, r: &RunSpec) -> Result<Stats, String> {
        let mut c = self.collect(r)?;
        c.lat.sort_unstable();
        let secs = (c.end - c.start) as f64 / 1e9;
        Ok(Stats {
            logins: c.ok + c.refused,
            refused: c.refused,
            rate: (c.ok + c.refused) as f64 / secs,
            p50_us: percentile(&c.lat, 0.50),
            p99_us: percentile(&c.lat, 0.99),
        })
    }

    /// Runs `r` with its workers released together and returns every login's latency in ns,
    /// worker after worker, each in the order of its logins; fails on any unexpected PAM
    /// result when strict.
    pub(crate) fn collect(&self, r: &RunSpec) -> Result<Collected, String> {
        // Only logins that can succeed or count a failure change a user's state.
        if !matches!(r.mode, Mode::Load | Mode::PasswordFailed) {
            r.world.reset(Some(r.logins))?;
        }
        let start = mono_ns() + 300_000_000;
        let mut children = Vec::new();
        for i in 0..r.workers {
            let argv = self.worker_command(r, i, start);
            let child = Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("spawning a worker: {e}"))?;
            children.push(child);
        }
        let mut lat = Vec::new();
        let (mut ok, mut refused, mut end_max) = (0usize, 0usize, start);
        let mut errors = Vec::new();
        for child in children {
            let out = child
                .wait_with_output()
                .map_err(|e| format!("worker: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                errors.push(format!("worker exited {}: {text}", out.status));
                continue;
            }
            let mut lines = text.lines();
            let head: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
            let field = |name: &str| -> Result<u64, String> {
                head.iter()
                    .position(|f| *f == name)
                    .and_then(|i| head.get(i + 1))
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("worker output without {name}: {text}"))
            };
            ok += field("ok")? as usize;
            if field("bad")? > 0 {
                refused += field("bad")? as usize;
                eprintln!(
                    "   !! {} {} {} logins got an unexpected PAM result (first user:code {})",
                    field("bad")?,
                    r.service,
                    r.mode.name(),
                    head.last().unwrap_or(&"?")
                );
            }
            end_max = end_max.max(field("end")?);
            if let Some(l) = lines.next() {
                lat.extend(l.split(',').filter_map(|x| x.parse::<u64>().ok()));
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        if self.strict && refused > 0 {
            return Err(format!(
                "{refused} {} logins got an unexpected PAM result",
                r.service
            ));
        }
        Ok(Collected {
            ok,
            refused,
            start,
            end: end_max,
            lat,
        })
    }

    /// Runs one worker (no barrier) under strace or callgrind; returns the raw counts.
    pub(crate) fn probe(&self, r: &RunSpec, wrap: Wrap, tag: &str) -> Result<ProbeCounts, String> {
        if r.mode != Mode::Load {
            r.world.reset(Some(r.logins))?;
        }
        let argv = self.worker_command(r, 0, 0);
        let out_file = self.base.join(format!("probe-{tag}"));
        let mut cmd = match wrap {
            Wrap::Strace => {
                let mut c = Command::new("strace");
                c.arg("-f").arg("-c").arg("-o").arg(&out_file);
                c
            }
            Wrap::Callgrind => {
                let mut c = Command::new("valgrind");
                c.arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", out_file.display()));
                c
            }
        };
        let out = cmd
            .args(&argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("running {wrap:?}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.starts_with(&format!("ok {} bad 0", r.logins)) {
            return Err(format!(
                "{wrap:?} probe of {} failed: {stdout}\n{}",
                r.service,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut c = ProbeCounts::default();
        match wrap {
            Wrap::Strace => {
                let text = std::fs::read_to_string(&out_file).map_err(|e| e.to_string())?;
                for line in text.lines() {
                    let t: Vec<&str> = line.split_whitespace().collect();
                    if t.len() < 5 || t[0].parse::<f64>().is_err() {
                        continue;
                    }
                    let calls: u64 = t[3].parse().unwrap_or(0);
                    match t[t.len() - 1] {
                        "total" => c.syscalls = calls,
                        "fsync" | "fdatasync" | "syncfs" | "sync_file_range" | "msync" => {
                            c.fsyncs += calls
                        }
                        "rename" | "renameat" | "renameat2" => c.renames += calls,
                        _ => {}
                    }
                }
            }
            Wrap::Callgrind => {
                let err = String::from_utf8_lossy(&out.stderr);
                c.instructions = err
                    .lines()
                    .find_map(|l| {
                        let (_, rest) = l.split_once("Collected :")?;
                        rest.trim().parse::<u64>().ok()
                    })
                    .ok_or(format!("no 'Collected' line from callgrind:\n{err}"))?;
            }
        }
        Ok(c)
    }

    /// Per-login marginal counts: (probe with `hi` logins - probe with `lo`) / (hi - lo), so
    /// process start-up and the warm-up are not counted.
    pub(crate) fn per_login(
        &self,
        world: &World,
        service: &str,
        mode: Mode,
        wrap: Wrap,
        lo: usize,
        hi: usize,
    ) -> Result<PerLogin, String> {
        let spec = |logins| RunSpec {
            world,
            service,
            mode,
            workers: 1,
            logins,
        };
        let a = self.probe(&spec(lo), wrap, &format!("{service}-{}-{lo}", mode.name()))?;
        let b = self.probe(&spec(hi), wrap, &format!("{service}-{}-{hi}", mode.name()))?;
        let d = (hi - lo) as f64;
        Ok(ProbeCounts {
            syscalls: b.syscalls.saturating_sub(a.syscalls),
            fsyncs: b.fsyncs.saturating_sub(a.fsyncs),
            renames: b.renames.saturating_sub(a.renames),
            instructions: b.instructions.saturating_sub(a.instructions),
        }
        .scaled(d))
    }
}

/// One real sshd keyboard-interactive login per user, per stack (bench/sshd_login.py).
pub(crate) fn sshd_logins(
    world: &World,
    password: &str,
    n: usize,
) -> Result<Vec<(String, Vec<f64>)>, String> {
    world.reset(Some(n + 1))?;
    let mut stacks = vec![(
        "pam_unix alone".to_string(),
        "auth required pam_unix.so\n".to_string(),
    )];
    for (m, p) in &world.modules {
        stacks.push((
            format!("pam_unix + {}", m.name()),
            format!("auth required pam_unix.so\n{}\n", world.auth_line(*m, p)),
        ));
    }
    let json_str = |s: &str| {
        let mut o = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                '\n' => o.push_str("\\n"),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    };
    let stacks_json: Vec<String> = stacks
        .iter()
        .map(|(n, a)| format!("{{\"name\":{},\"auth\":{}}}", json_str(n), json_str(a)))
        .collect();
    let users_json: Vec<String> = (0..=n.min(world.users - 1))
        .map(|k| {
            let i = user_for(k, world.users);
            format!("[\"{}\",\"{}\"]", user_name(i), base32(&secret(i)))
        })
        .collect();
    let input = format!(
        "{{\"password\":{},\"logins\":{},\"stacks\":[{}],\"users\":[{}]}}",
        json_str(password),
        n.min(world.users - 1),
        stacks_json.join(","),
        users_json.join(",")
    );
    let script = repo_root().join("bench/sshd_login.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    }
    let st = child.wait().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("sshd logins failed ({st}): {out}"));
    }
    // {"name": [s, s, ...], ...}: the names are ours, the values plain numbers.
    let mut res = Vec::new();
    for (name, _) in &stacks {
        let key = json_str(name);
        let at = out.find(&key).ok_or(format!("no {name} in {out}"))?;
        let rest = &out[at + key.len()..];
        let open = rest.find('[').ok_or("bad sshd output")?;
        let close = rest.find(']').ok_or("bad sshd output")?;
        let vals: Vec<f64> = rest[open + 1..close]
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        eprintln!(
            "   sshd {name:<38} median {:>6.1} ms over {} logins",
            median(&vals) * 1000.0,
            vals.len()
        );
        res.push((name.clone(), vals));
    }
    Ok(res)
}
