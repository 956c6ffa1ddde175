//! The command line.

use std::path::PathBuf;

use crate::setup::{Module, ALL_MODULES};

pub(crate) struct Options {
    pub(crate) users: Vec<usize>,
    pub(crate) logins: usize,
    pub(crate) workers: Vec<usize>,
    pub(crate) modules: Vec<Module>,
    pub(crate) load_iters: usize,
    pub(crate) sshd: bool,
    pub(crate) sshd_logins: usize,
    pub(crate) probes: bool,
    pub(crate) keep: bool,
    pub(crate) smoke: bool,
    pub(crate) rounds: usize,
    pub(crate) markdown: Option<PathBuf>,
    /// `--fleet`: the fleet store rows (see fleet.rs).
    pub(crate) fleet: bool,
    /// Helper sessions per route for the fleet's cost split.
    pub(crate) fleet_sessions: usize,
}

pub(crate) const USAGE: &str = "usage: twofa-bench [--users 1000,10000] [--logins 2000] [--workers 1,2] \
[--modules twofa,google,oath] [--rounds 3] [--load-iters 2000] [--sshd-logins 10] [--no-sshd] [--no-probes] \
[--markdown FILE] [--keep] [--smoke] [--fleet] [--fleet-sessions 20]";

pub(crate) fn list(v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("not a number: {x}"))
        })
        .collect()
}

pub(crate) fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        users: vec![1000, 10_000],
        logins: 2000,
        workers: vec![1, 2],
        modules: ALL_MODULES.to_vec(),
        load_iters: 2000,
        sshd: true,
        sshd_logins: 10,
        probes: true,
        keep: false,
        smoke: false,
        rounds: 3,
        markdown: None,
        fleet: false,
        fleet_sessions: 20,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--users" => o.users = list(&value()?)?,
            "--logins" => o.logins = list(&value()?)?.first().copied().unwrap_or(0),
            "--workers" => o.workers = list(&value()?)?,
            "--load-iters" => o.load_iters = list(&value()?)?.first().copied().unwrap_or(0),
            "--rounds" => o.rounds = list(&value()?)?.first().copied().unwrap_or(0).max(1),
            "--sshd-logins" => o.sshd_logins = list(&value()?)?.first().copied().unwrap_or(0),
            "--modules" => {
                o.modules = value()?
                    .split(',')
                    .map(|m| match m {
                        "twofa" => Ok(Module::Twofa),
                        "google" => Ok(Module::Google),
                        "oath" => Ok(Module::Oath),
                        _ => Err(format!("unknown module {m} (twofa, google, oath)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--no-sshd" => o.sshd = false,
            "--no-probes" => o.probes = false,
            "--keep" => o.keep = true,
            "--markdown" => o.markdown = Some(PathBuf::from(value()?)),
            "--smoke" => o.smoke = true,
            "--fleet" => o.fleet = true,
            "--fleet-sessions" => {
                o.fleet_sessions = list(&value()?)?.first().copied().unwrap_or(0).max(1)
            }
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.smoke {
        o.users = vec![50];
        o.logins = 50;
        o.workers = vec![1];
        o.rounds = 1;
        o.load_iters = 50;
        o.sshd = false;
        o.probes = false;
        o.fleet_sessions = 3;
    }
    if o.users
        .iter()
        .any(|&u| u == 0 || u > 99_999 || u % 7919 == 0)
    {
        return Err("--users: each from 1 to 99999".into());
    }
    if o.workers.iter().any(|&w| w == 0 || w > 64) {
        return Err("--workers: each from 1 to 64".into());
    }
    if o.logins == 0 {
        return Err("--logins must be > 0".into());
    }
    Ok(o)
}
