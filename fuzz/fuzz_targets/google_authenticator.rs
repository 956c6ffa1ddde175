//! cargo-fuzz target `google_authenticator`: the checks live in `fuzz/checks.rs`, shared with
//! the stable replay of the corpus (`twofa-core/tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::google_authenticator(data));
