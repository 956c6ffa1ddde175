//! twofa-core: everything twofa decides and stores, testable without PAM.
//!
//! The PAM module (`pam_twofa`) and the CLI (`twofa-enroll`) are thin shells around this
//! crate. It has no `unsafe` code: system calls go through `std` and `nix`'s safe wrappers.
#![forbid(unsafe_code)]
// A library: it reports, the CLI and the module decide what to print or log.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod args;
pub mod audit;
pub mod base32;
pub mod calendar;
pub mod config;
pub mod delivery;
pub mod enrollment;
pub mod fleet;
pub mod google_authenticator;
pub mod hex;
pub mod identity;
pub mod login;
pub mod lost_lines;
pub mod otp;
pub mod policy;
pub mod qr;
pub mod recovery;
pub mod runner;
#[cfg(test)]
mod scratch;
pub mod secret;
pub mod securefile;
pub mod state;
pub mod store;
pub mod syslog;
pub mod tomlfile;
pub mod uri;
pub mod wire;
