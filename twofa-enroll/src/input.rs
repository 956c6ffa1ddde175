//! Lines of standard input: a secret (`--secret-file -`) and the codes typed at a prompt.

use std::io::{BufRead, IsTerminal, Write};

use zeroize::Zeroizing;

use crate::output::Failure;

/// Lines of standard input, shared by `--secret-file -` and the code prompt.
pub struct Input {
    stdin: std::io::StdinLock<'static>,
}

impl Input {
    /// Standard input, locked for the command.
    pub fn new() -> Input {
        Input {
            stdin: std::io::stdin().lock(),
        }
    }

    /// Prints `prompt` on stderr and reads the answer. When the answer comes from a pipe, not a
    /// person at a terminal, the line is ended here so that what follows starts on its own.
    pub fn ask(&mut self, prompt: &str) -> Result<Zeroizing<String>, Failure> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let line = self.line()?;
        if !std::io::stdin().is_terminal() {
            eprintln!();
        }
        Ok(line)
    }

    pub fn line(&mut self) -> Result<Zeroizing<String>, Failure> {
        let mut line = Zeroizing::new(String::new());
        self.stdin
            .read_line(&mut line)
            .map_err(|e| Failure::new(format!("could not read standard input: {e}")))?;
        Ok(line)
    }
}
