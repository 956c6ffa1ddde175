//! twofa-enroll(1) and the bash and zsh completions, generated from the clap definition so
//! that they can't drift from the flags.
//!
//! A test, not a code path of the binary (clap_mangen and clap_complete are dev-dependencies):
//! `cargo test` renders the three files and fails if they differ from the committed
//! `docs/man/twofa-enroll.1`, `completions/twofa-enroll.bash` and `completions/_twofa-enroll`.
//! With `TWOFA_GEN_DIR=DIR` set it writes them below DIR instead; `cargo run -p xtask -- gen`
//! and `-- check` run it that way.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use crate::Cli;

/// The generated files: path below the repository, contents.
fn rendered() -> io::Result<Vec<(&'static str, Vec<u8>)>> {
    Ok(vec![
        ("docs/man/twofa-enroll.1", man_page()?),
        (
            "completions/twofa-enroll.bash",
            completion(clap_complete::Shell::Bash),
        ),
        (
            "completions/_twofa-enroll",
            completion(clap_complete::Shell::Zsh),
        ),
    ])
}

fn completion(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "twofa-enroll", &mut out);
    out
}

/// A section rendered by clap_mangen, without roff's preamble (written once, by the title)
/// and without its `.SH` line, so it can sit under a `.SS` of ours.
fn fragment(render: impl Fn(&mut dyn Write) -> io::Result<()>) -> io::Result<String> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let preamble = Roff::new().render();
    let text = text.strip_prefix(&preamble).unwrap_or(&text);
    Ok(text
        .lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// One page: clap_mangen's title, name, synopsis, description and global options; then every
/// command with its own synopsis and options (clap_mangen would point to one page per
/// command); then the examples and exit status of `--help`, kept as written.
fn man_page() -> io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let man = Man::new(cmd.clone()).manual("twofa manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    type Section = fn(&Man, &mut dyn Write) -> io::Result<()>;
    let sections: [(&str, Section); 4] = [
        ("NAME", Man::render_name_section),
        ("SYNOPSIS", Man::render_synopsis_section),
        ("DESCRIPTION", Man::render_description_section),
        ("OPTIONS", Man::render_options_section),
    ];
    for (heading, render) in sections {
        let mut roff = Roff::new();
        roff.control("SH", [heading]);
        out.extend(roff.to_roff().bytes());
        out.extend(fragment(|w| render(&man, w))?.bytes());
    }

    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    roff.text([roman(
        "A bare user name means the enroll command: twofa-enroll alice is twofa-enroll enroll alice.",
    )]);
    out.extend(roff.to_roff().bytes());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("twofa-enroll {}", sub.get_name());
        let sub_man = Man::new(sub.clone().bin_name(&name).disable_help_flag(true));
        let mut roff = Roff::new();
        roff.control("SS", [name.as_str()]);
        out.extend(roff.to_roff().bytes());
        out.extend(fragment(|w| sub_man.render_synopsis_section(w))?.bytes());
        out.extend(b".PP\n");
        out.extend(fragment(|w| sub_man.render_description_section(w))?.bytes());
        let options = fragment(|w| sub_man.render_options_section(w))?;
        if !options.is_empty() {
            out.extend(b".PP\n");
            out.extend(options.bytes());
        }
    }

    let after = cmd
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let (examples, exit) = after.split_once("\n\n").unwrap_or((&after, ""));
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]).control("nf", []);
    for line in examples.lines().skip_while(|l| l.ends_with(':')) {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    if let Some(exit) = exit.strip_prefix("Exit status: ") {
        roff.control("SH", ["EXIT STATUS"]).text([roman(exit)]);
    }
    roff.control("SH", ["FILES"])
        .control("TP", [])
        .text([bold("/etc/twofa/twofa.toml")])
        .text([roman("The policy (see twofa.toml(5)).")])
        .control("TP", [])
        .text([bold("/var/lib/twofa/")])
        .text([roman(
            "Enrollments (users/), replay and lockout state (state/), locks (lock/), backups of disabled enrollments (disabled/); root's, mode 0700.",
        )]);
    roff.control("SH", ["SEE ALSO"]).text([roman(
        "pam_twofa(8), twofa.toml(5), sshd_config(5), pam.conf(5)",
    )]);
    out.extend(roff.to_roff().bytes());
    Ok(out)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_man_page_and_completions_match_the_command_line() -> io::Result<()> {
    let files = rendered()?;
    if let Some(dir) = std::env::var_os("TWOFA_GEN_DIR") {
        for (path, contents) in &files {
            let target = Path::new(&dir).join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, contents)?;
        }
        return Ok(());
    }
    let stale: Vec<&str> = files
        .iter()
        .filter(|(path, contents)| std::fs::read(repo().join(path)).ok().as_ref() != Some(contents))
        .map(|(path, _)| *path)
        .collect();
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the command line defines: run `cargo run -p xtask -- gen` and commit the result"
    );
    Ok(())
}
