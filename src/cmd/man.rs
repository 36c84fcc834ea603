//! `airlock man [-o DIR]`: man pages from the clap definition (clap_mangen), with the sections
//! clap does not know: exit status, environment and files.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

/// Arguments of `airlock man`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  airlock man | man -l -
  airlock man -o /usr/local/share/man/man1")]
pub struct Args {
    /// Write `airlock.1` and one page per command (`airlock-import.1`, …) into this directory
    /// (created when missing) instead of printing `airlock.1`.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Runs `airlock man`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            page(&cmd, &mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            fs_err::create_dir_all(dir)?;
            let mut written = 0;
            write_pages(&cmd, dir, &mut written)?;
            errln!("{written} man pages written to `{}`", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One page per command, nested ones included (`airlock-ledger-verify.1`).
fn write_pages(
    cmd: &clap::Command,
    dir: &std::path::Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    let mut file = std::io::BufWriter::new(fs_err::File::create(&path)?);
    page(cmd, &mut file).with_context(|| format!("writing `{}`", path.display()))?;
    file.flush()?;
    *written += 1;
    Ok(())
}

/// A whole page: clap_mangen's sections, then EXIT STATUS, ENVIRONMENT and FILES.
fn page(cmd: &clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    if cmd.get_name() != "airlock" && cmd.get_after_help().is_some() {
        man.render_extra_section(w)?;
    }
    w.write_all(extra_sections().as_bytes())?;
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// Exit codes from [`airlock::error_kind`], the variable rule and the configuration file.
fn extra_sections() -> String {
    let mut s = String::from(".SH \"EXIT STATUS\"\n.TP\n0\nsuccess\n");
    for k in airlock::error_kind::ErrorKind::ALL {
        s.push_str(&format!(
            ".TP\n{}\n{} ({})\n",
            k.exit_code(),
            roff(k.meaning()),
            k.name()
        ));
    }
    s.push_str(".PP\nWith \\-\\-format json, a failure prints {\"error\": {\"kind\", \"message\", \"artifact\"}} on stdout.\n");
    s.push_str(".SH ENVIRONMENT\n");
    s.push_str(&roff(super::SETTINGS_HELP.trim_start_matches("Settings: ")));
    s.push('\n');
    s.push_str(".SH FILES\n.TP\n$XDG_CONFIG_HOME/airlock/airlock.toml\nThe configuration file (default ~/.config/airlock/airlock.toml); see the README, \"Configuration\".\n");
    s
}

/// Text for a roff line: backslashes and hyphens escaped, no line starting with a control
/// character.
fn roff(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
