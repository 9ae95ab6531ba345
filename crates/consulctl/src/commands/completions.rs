//! `consulctl completions SHELL`: the shell's completion script (clap_complete), on stdout.
//!
//! Installed as the README says, e.g. `consulctl completions bash >
//! /etc/bash_completion.d/consulctl`; the script completes commands, subcommands, flags and
//! the values of enumerated flags (`--output`, `--health`, the shells themselves).

use std::io::Write;

use anyhow::anyhow;
use clap::CommandFactory;
use consulctl_core::error::Error;

use crate::cli::{Cli, CompletionsArgs};

pub fn run(args: &CompletionsArgs) -> Result<(), Error> {
    let script = script(args.shell);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        // `consulctl completions bash | head`: the reader has what it wanted
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Runtime(anyhow!(
            "cannot write the completion script: {e}"
        ))),
        Ok(()) => Ok(()),
    }
}

/// The completion script for `shell`.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "consulctl", &mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_shell_gets_a_script_that_knows_the_commands() {
        for shell in clap_complete::Shell::value_variants() {
            let text = String::from_utf8(script(*shell)).unwrap();
            for word in ["consulctl", "apply", "catalog", "inventory", "completions"] {
                assert!(text.contains(word), "{shell}: no {word:?} in\n{text}");
            }
        }
        let bash = String::from_utf8(script(clap_complete::Shell::Bash)).unwrap();
        assert!(bash.contains("complete -F _consulctl"), "{bash}");
    }
}
