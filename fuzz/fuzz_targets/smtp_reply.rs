//! cargo-fuzz target `smtp_reply`: a server's reply stream through twofa-deliver's SMTP reply
//! reader. The checks live in `fuzz/checks_smtp.rs`, shared with the stable replay of the
//! corpus (`twofa-deliver/tests/fuzz_corpus.rs`).
#![no_main]

/// twofa-deliver's own file, compiled in (not a copy, and not the whole crate: reply.rs says
/// why). Not every item is used here.
#[allow(dead_code)]
#[path = "../../twofa-deliver/src/reply.rs"]
mod reply;

#[path = "../checks_smtp.rs"]
mod checks_smtp;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks_smtp::smtp_reply(data));
