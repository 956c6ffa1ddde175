//! Closing every inherited descriptor above stderr.

use std::os::fd::RawFd;

/// Highest descriptor tried when /proc is not mounted.
const FALLBACK_MAX_FD: RawFd = 4096;

/// Closes every descriptor >= 3, so nothing sshd or sudo had open (sockets, the PAM
/// application's files) reaches the network code or an admin's script.
pub(crate) fn close_inherited() {
    let listed = std::fs::read_dir("/proc/self/fd").map(|dir| {
        dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
            .filter(|fd| *fd > 2)
            .collect::<Vec<_>>()
    });
    // The directory's own descriptor is in the list, already closed: EBADF, ignored.
    let fds = listed.unwrap_or_else(|_| (3..FALLBACK_MAX_FD).collect());
    for fd in fds {
        let _ = nix::unistd::close(fd);
    }
}
