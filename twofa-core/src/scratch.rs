//! Test-only: private scratch directories (0700 under the system's temp dir, as the storage
//! rules want them) and whether the tests run as root (the rules' owner checks need it). One
//! place for what the file, log and counter tests all need.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A new directory `<temp>/<prefix>-<random>`, mode 0700; the test removes it.
pub(crate) fn dir(prefix: &str) -> PathBuf {
    let mut b = [0u8; 4];
    let _ = getrandom::getrandom(&mut b);
    let p = std::env::temp_dir().join(format!("{prefix}-{:08x}", u32::from_ne_bytes(b)));
    std::fs::create_dir(&p).ok();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).ok();
    p
}

/// Whether the tests run as root.
pub(crate) fn is_root() -> bool {
    crate::securefile::running_as_root()
}
