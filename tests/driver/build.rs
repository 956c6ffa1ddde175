//! Exports the driver's `pam_fail_delay` in the dynamic symbol table, so that the PAM modules
//! loaded at run time bind to it (see the crate documentation, "The fail delay").

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=pam_fail_delay");
    println!("cargo:rerun-if-changed=build.rs");
}
