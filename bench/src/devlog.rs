//! The bench's own /dev/log (a reader as quick as journald) and /run, and the probe of
//! pam_twofa's bound on a login's log wait with a stalled reader.
//!
//! In the bench's private mount namespace: an overlay on /run (pam_twofa's lost-line counter,
//! /run/twofa/log-lost, lands in the bench's directory, never on the host's /run), and a /dev
//! of its own: a tmpfs holding every entry of the real /dev (each bind-mounted from a
//! descriptor opened before the tmpfs covered it, so no mount of the real /dev sits under the
//! bench's directory, which is removed recursively at the end) plus the bench's socket as
//! /dev/log. Every row then logs as on a host with a log daemon, whether or not this host has
//! one, and the host's journal gets none of the bench's lines.

use std::ffi::{c_void, CString};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::runs::{Bench, RunSpec};
use crate::setup::{mkdir, World};
use crate::stats::Stats;
use crate::worker::Mode;

/// The socket's reader: a thread of the bench's main process, reading as fast as it can
/// (journald's way) unless paused (a stopped daemon).
pub struct DevLog {
    paused: Arc<AtomicBool>,
    /// Set by the reader once it has seen `paused` and will not read until it is cleared.
    parked: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn mount(
    source: &str,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let (source_c, target_c) = (c(source)?, c(target)?);
    let fstype_c = fstype.map(c).transpose()?;
    let data_c = data.map(c).transpose()?;
    // SAFETY: NUL-terminated strings that outlive the call, or null where the kernel allows it.
    let rc = unsafe {
        libc::mount(
            source_c.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            flags,
            data_c
                .as_ref()
                .map_or(ptr::null(), |s| s.as_ptr() as *const c_void),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount {source} on {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// An overlay on /run whose upper layer is under `base`.
fn overlay_run(base: &Path) -> Result<(), String> {
    let (upper, work) = (base.join("run-upper"), base.join("run-work"));
    mkdir(&upper, 0o755)?;
    mkdir(&work, 0o700)?;
    let data = format!(
        "lowerdir=/run,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mount("overlay", "/run", Some("overlay"), 0, Some(&data))
}

/// A tmpfs on /dev with every entry of the real one but `log`.
fn private_dev() -> Result<(), String> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir("/dev")
        .map_err(|e| format!("/dev: {e}"))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "log" {
            continue;
        }
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_symlink() {
            if let Ok(to) = std::fs::read_link(e.path()) {
                entries.push((name, Entry::Link(to)));
            }
            continue;
        }
        let opened = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(e.path());
        if let Ok(f) = opened {
            entries.push((name, Entry::Node(f, kind.is_dir())));
        }
    }
    mount(
        "twofa-bench-dev",
        "/dev",
        Some("tmpfs"),
        0,
        Some("mode=0755"),
    )?;
    for (name, entry) in entries {
        let target = Path::new("/dev").join(&name);
        match entry {
            Entry::Link(to) => {
                symlink(&to, &target).map_err(|e| format!("{}: {e}", target.display()))?
            }
            Entry::Node(f, dir) => {
                if dir {
                    std::fs::create_dir(&target)
                } else {
                    std::fs::File::create(&target).map(drop)
                }
                .map_err(|e| format!("{}: {e}", target.display()))?;
                let source = format!("/proc/self/fd/{}", f.as_raw_fd());
                // A node that can't be bound (a busy device) is left out: the bench uses few.
                let _ = mount(
                    &source,
                    &target.display().to_string(),
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                );
            }
        }
    }
    Ok(())
}

enum Entry {
    Link(std::path::PathBuf),
    Node(std::fs::File, bool),
}

impl DevLog {
    /// Gives the namespace its own /run and /dev, binds /dev/log and starts reading it.
    pub fn start(base: &Path) -> Result<DevLog, String> {
        overlay_run(base)?;
        private_dev()?;
        let sock = UnixDatagram::bind("/dev/log").map_err(|e| format!("/dev/log: {e}"))?;
        std::fs::set_permissions("/dev/log", std::fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("/dev/log: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
        let paused = Arc::new(AtomicBool::new(false));
        let parked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let thread = {
            let (paused, parked) = (paused.clone(), parked.clone());
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while !stop.load(Ordering::Relaxed) {
                    if paused.load(Ordering::SeqCst) {
                        parked.store(true, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    parked.store(false, Ordering::SeqCst);
                    if sock.recv(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Ok(DevLog {
            paused,
            parked,
            stop,
            received,
            thread: Some(thread),
        })
    }

    /// Pauses or resumes the reader. Pausing waits (up to a second) until the reader is parked:
    /// a read still in flight would otherwise take one datagram from the queue `fill` filled,
    /// and the next line would get through (on a loaded machine the probe then counted one
    /// lost line too few).
    fn pause(&self, paused: bool) {
        if paused {
            // Only a `parked` set after this counts (not one left from an earlier pause).
            self.parked.store(false, Ordering::SeqCst);
        }
        self.paused.store(paused, Ordering::SeqCst);
        if paused {
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while !self.parked.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Datagrams read so far.
    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Fills the queue (non-blocking sends until the kernel refuses): as a daemon that stopped
    /// reading a while ago leaves it.
    fn fill(&self) {
        let Ok(s) = UnixDatagram::unbound() else {
            return;
        };
        if s.set_nonblocking(true).is_err() {
            return;
        }
        for _ in 0..100_000 {
            if s.send_to(b"<14>twofa-bench: filler", "/dev/log").is_err() {
                return;
            }
        }
    }

    /// Waits until the reader has read nothing for 100 ms.
    fn settle(&self) {
        let mut last = self.received();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.received();
            if now == last {
                return;
            }
            last = now;
        }
    }
}

impl Drop for DevLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: NUL-terminated literals; only this namespace's mounts are detached.
        unsafe {
            libc::umount2(c"/dev".as_ptr(), libc::MNT_DETACH);
            libc::umount2(c"/run".as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// What the stalled-reader probe found.
#[derive(Debug, Clone, Default)]
pub struct LogWait {
    /// Wrong-code logins, reader running.
    pub reading: Option<Stats>,
    /// The same with the reader stopped and its queue full.
    pub stalled: Option<Stats>,
    /// Lines pam_twofa counted as lost during the stalled run (the counter's value).
    pub counted: u64,
    /// Logins in each run.
    pub logins: usize,
}

/// pam_twofa's lost-line counter as the bench's namespace sees it.
fn counter() -> u64 {
    std::fs::read_to_string("/run/twofa/log-lost")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// `logins` wrong-code logins with the reader running, then the same with it stopped and
/// its queue full: the difference per login is what a stalled log daemon costs (bounded by
/// pam_twofa at 250 ms), and every one of the stalled logins' lines must be counted.
pub fn probe(
    bench: &Bench,
    world: &World,
    service: &str,
    log: &DevLog,
    logins: usize,
) -> Result<LogWait, String> {
    let spec = RunSpec {
        world,
        service,
        mode: Mode::Wrong,
        workers: 1,
        logins,
    };
    log.settle();
    let reading = bench.run(&spec)?;
    log.settle();
    // A count left by earlier rows (there should be none: the reader keeps up) is taken by
    // the first login below; start from a clean counter to make the figure exact.
    let _ = std::fs::remove_file("/run/twofa/log-lost");
    log.pause(true);
    log.fill();
    let stalled = bench.run(&spec);
    let counted = counter();
    log.pause(false);
    let stalled = stalled?;
    log.settle();
    if counted != logins as u64 {
        return Err(format!(
            "stalled log reader: {logins} logins, but {counted} lines counted as lost in /run/twofa/log-lost"
        ));
    }
    Ok(LogWait {
        reading: Some(reading),
        stalled: Some(stalled),
        counted,
        logins,
    })
}
