//! The bench's private world: a mount namespace, an overlay on /etc, its temporary directory.

use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use crate::setup::mkdir;

/// Enters a private mount namespace: mounts made from now on are seen by this process and its
/// children only, and vanish with them.
pub(crate) fn private_mount_namespace() -> Result<(), String> {
    // SAFETY: plain system calls with constant arguments; called while single-threaded.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    if rc != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: NUL-terminated literals; MS_REC|MS_PRIVATE stops propagation to the host.
    let rc = unsafe {
        libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "making / private: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Mounts an overlay on /etc (in the private namespace): the bench's /etc/passwd and
/// /etc/shadow (and sshd_login.py's /etc/pam.d/twofa-e2e-sshd-* services) are written to
/// `upper` and seen by this process and its children only; the real /etc is never written.
/// Not a bind mount of the files: useradd/userdel elsewhere on the host rename a new
/// /etc/passwd into place, and since Linux 3.18 a rename over a mount point detaches the
/// mount in every namespace, so the bench's users would vanish mid-run.
pub(crate) fn overlay_etc(base: &Path) -> Result<(), String> {
    let (upper, work) = (base.join("etc-upper"), base.join("etc-work"));
    mkdir(&upper, 0o755)?;
    mkdir(&work, 0o700)?;
    let data = CString::new(format!(
        "lowerdir=/etc,upperdir={},workdir={}",
        upper.display(),
        work.display()
    ))
    .map_err(|e| e.to_string())?;
    // SAFETY: NUL-terminated strings; overlay's options are a NUL-terminated string.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            c"/etc".as_ptr(),
            c"overlay".as_ptr(),
            0,
            data.as_ptr() as *const c_void,
        )
    };
    if rc != 0 {
        return Err(format!(
            "overlay on /etc: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Detaches the overlay on /etc (before its directories are removed).
pub(crate) fn unmount_etc() {
    // SAFETY: a NUL-terminated literal; only this namespace's overlay is detached.
    unsafe { libc::umount2(c"/etc".as_ptr(), libc::MNT_DETACH) };
}

/// syncfs(2) on the file system holding `dir`: setup writes don't land inside a measurement.
pub(crate) fn syncfs(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor.
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
}

pub(crate) fn mktemp_dir() -> Result<PathBuf, String> {
    let mut template = *b"/tmp/twofa-e2e-bench-XXXXXX\0";
    // SAFETY: a writable NUL-terminated template ending in XXXXXX.
    let p = unsafe { libc::mkdtemp(template.as_mut_ptr() as *mut c_char) };
    if p.is_null() {
        return Err(format!("mkdtemp: {}", std::io::Error::last_os_error()));
    }
    let path = PathBuf::from(
        std::str::from_utf8(&template[..template.len() - 1]).map_err(|e| e.to_string())?,
    );
    mkdir(&path, 0o755)?;
    Ok(path)
}
