//! twofa-store: the fleet store, enrollments and login state of many hosts in one PostgreSQL.
//!
//! The PAM module carries no network code: per login it runs the `twofa-store serve` helper
//! (this crate's binary) and talks to it over a socket. This library is the helper's
//! PostgreSQL side: [`pg::PgStore`] implements [`twofa_core::store::Store`] with the same
//! semantics as the file store, each operation one transaction that applies the same pure
//! transition of [`twofa_core::state::UserState`] (no second copy of the rules in SQL).
//! Enrollments are sealed with the fleet key ([`seal`]) before they leave the host.
#![forbid(unsafe_code)]
// A library: it reports, the binary decides what to print (stdout is the module's socket).
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod db_error;
pub mod pg;
pub mod schema;
pub mod seal;
pub mod settings;
mod tls;
