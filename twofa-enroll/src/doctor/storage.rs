//! The storage directory: root's and closed to others, or the module refuses it; and how many
//! are enrolled there.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Finding;

/// One storage directory: root's, closed to group and others.
fn check_dir(path: &Path, what: &str) -> Option<Finding> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let fix = format!("chown root:root {0} && chmod 0700 {0}", path.display());
    if !meta.is_dir() {
        return Some(Finding::error(
            "storage",
            format!(
                "{}: not a directory{}",
                path.display(),
                if meta.file_type().is_symlink() {
                    " (a symlink)"
                } else {
                    ""
                }
            ),
            format!("move it away; twofa creates {what} itself"),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 {
        return Some(Finding::error(
            "storage",
            format!(
                "{}: owned by uid {}, not root: the module refuses it",
                path.display(),
                meta.uid()
            ),
            fix,
        ));
    }
    if mode & 0o077 != 0 {
        return Some(Finding::error(
            "storage",
            format!(
                "{}: mode {mode:04o}, open to group or others: the module refuses it",
                path.display()
            ),
            fix,
        ));
    }
    None
}

/// The storage directory and its users/, state/ and lock/.
pub(super) fn check_storage(dir: &Path) -> Vec<Finding> {
    if std::fs::symlink_metadata(dir).is_err() {
        return vec![Finding::warning(
            "storage",
            format!("{} does not exist: nobody is enrolled yet", dir.display()),
            "enroll someone: twofa-enroll USER (it creates the directory, root's, 0700)",
        )];
    }
    let mut out: Vec<Finding> = std::iter::once(check_dir(dir, "the storage directory"))
        .chain(
            ["users", "state", "lock"]
                .iter()
                .map(|s| check_dir(&dir.join(s), s)),
        )
        .flatten()
        .collect();
    if out.is_empty() {
        out.push(Finding::ok(
            "storage",
            format!(
                "{}: root's, mode 0700 (users/, state/, lock/ too)",
                dir.display()
            ),
        ));
    }
    out
}

/// Enrollment files, `None` when they can't be counted.
pub(super) fn count_enrollments(dir: &Path) -> Option<usize> {
    match std::fs::read_dir(dir.join("users")) {
        Ok(entries) => Some(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".toml"))
                .count(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}
