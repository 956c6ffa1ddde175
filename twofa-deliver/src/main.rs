//! See the library's documentation for the contract (argv, environment, stdin, exit status).

fn main() {
    std::process::exit(twofa_deliver::run());
}
