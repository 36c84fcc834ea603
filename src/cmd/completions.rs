//! `airlock completions SHELL`: a completion script generated from the clap definition, so it
//! never lags behind the flags.

use std::process::ExitCode;

use clap::CommandFactory;

/// Arguments of `airlock completions`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  airlock completions bash > /etc/bash_completion.d/airlock
  airlock completions zsh > \"${fpath[1]}/_airlock\"
  airlock completions fish > ~/.config/fish/completions/airlock.fish")]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Runs `airlock completions`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "airlock", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
