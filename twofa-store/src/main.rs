//! twofa-store: placeholder, filled in by the fleet-store work.
fn main() {}
