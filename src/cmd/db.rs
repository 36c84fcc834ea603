//! `airlock db build`: compile OSV records into the offline vulnerability database.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{print_json, Format, Global};

/// Arguments of `airlock db`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: DbCommand,
}

/// `airlock db` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum DbCommand {
    /// Compile OSV records (directories of JSON, or osv.dev `all.zip` dumps) for Debian and
    /// Alpine into one indexed, checksummed file to carry across the gap.
    Build {
        /// OSV sources: directories of `.json` records or `all.zip` files. Repeatable.
        #[arg(long = "osv", required = true, value_name = "PATH")]
        osv: Vec<PathBuf>,
        /// The database file to write.
        #[arg(short = 'o', long = "output", alias = "out", value_name = "FILE")]
        out: PathBuf,
    },
}

/// Runs `airlock db`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        DbCommand::Build { osv, out } => {
            super::create_parent_dir(&out)?;
            let header = airlock::scan::db::build(&osv, &out, std::time::SystemTime::now())?;
            match g.format {
                Format::Json => print_json(&header)?,
                Format::Table => {
                    outln!(
                        "wrote {} ({} records read, {} skipped) built {}",
                        out.display(),
                        header.records,
                        header.skipped_records,
                        header.built_at
                    );
                    for (eco, n) in &header.ecosystems {
                        outln!("  {eco:<16} {n} advisories");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
