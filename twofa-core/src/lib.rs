//! twofa-core: everything twofa decides and stores, testable without PAM.
//!
//! The PAM module (`pam_twofa`) and the CLI (`twofa-enroll`) are thin shells around this
//! crate. It has no `unsafe` code: system calls go through `std` and `nix`'s safe wrappers.
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod enrollment;
pub mod identity;
pub mod login;
pub mod otp;
pub mod policy;
pub mod secret;
pub mod securefile;
pub mod state;
pub mod store;
pub mod tomlfile;
pub mod uri;
