//! Links GCC's unwinder into the module (`libgcc_eh.a`) instead of depending on `libgcc_s.so.1`.
//!
//! The module must unwind: a panic is caught at each PAM entry point and denied
//! (`panic = "abort"` would take sshd's connection process down with it). Rust's std asks
//! for the unwinder as `-lgcc_s`, but none of the programs that load the module (sshd, sudo,
//! su, vsftpd, pamtester) has libgcc_s loaded, so every login mapped and relocated one more
//! shared library for a module that never panics: about 120 µs per sshd connection on the
//! benchmark machine (docs/benchmarks.md). Naming the static archive first resolves the
//! unwinder's symbols inside the module; the linker's `--as-needed` (rustc's default) then
//! drops the `libgcc_s` entry. The archive is built with hidden symbols, so nothing of it is
//! exported to the host. Its licence (GCC Runtime Library Exception) allows this.
//!
//! Where the compiler driver has no `libgcc_eh.a` (not GCC, not glibc), nothing changes and
//! the module keeps its `libgcc_s` dependency.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os != "linux" || target_env != "gnu" {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let found = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match found {
        // GCC prints the bare name back when it has no such file.
        Some(path) if path.is_absolute() && path.is_file() => {
            if let Some(dir) = path.parent() {
                println!("cargo:rustc-link-search=native={}", dir.display());
                println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
            }
        }
        _ => println!(
            "cargo:warning=no libgcc_eh.a from `{cc} -print-file-name=libgcc_eh.a`: pam_twofa.so keeps its libgcc_s.so.1 dependency"
        ),
    }
}
