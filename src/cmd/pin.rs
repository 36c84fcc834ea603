//! `airlock pin`: rewrite the image references of Kubernetes manifests and Helm values files
//! to the internal registry by digest, as the ledger admitted them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{print_json, print_table, Format, Global};

/// Arguments of `airlock pin`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["in_place", "out"])))]
pub struct Args {
    /// Manifests or Helm values files (YAML, several documents allowed).
    #[arg(required = true, value_name = "FILE.yaml")]
    pub files: Vec<PathBuf>,
    /// Ledger whose admitted imports say which digests may run.
    #[arg(long, value_name = "DIR")]
    pub ledger: PathBuf,
    /// The internal registry as the cluster names it, when it differs from where import
    /// pushed: `RECORDED=NEW` (e.g. `127.0.0.1:5000/mirror=registry.internal/mirror`).
    #[arg(long, value_name = "RECORDED=NEW")]
    pub registry: Option<String>,
    /// Rewrite the files themselves.
    #[arg(long)]
    pub in_place: bool,
    /// Write the pinned files into this directory (same file names).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Largest file read.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Runs `airlock pin`: every file is pinned in memory first, so one refused reference leaves
/// every file untouched.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let admitted =
        super::mirror_config::load_admitted(Some(&args.ledger), None, args.registry.as_deref())?;
    let mut results = Vec::new();
    for path in &args.files {
        let bytes = airlock::io::read_capped(path, MAX_FILE_BYTES, "manifest or values file")?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{}: not UTF-8 text", path.display()))?;
        let (pinned, report) =
            airlock::cluster::pin_text(&path.display().to_string(), &text, &admitted)?;
        results.push((path, pinned, report));
    }
    if let Some(dir) = &args.out {
        let mut names = std::collections::HashSet::new();
        for (path, _, _) in &results {
            let name = path
                .file_name()
                .context("a file argument has no file name")?;
            anyhow::ensure!(
                names.insert(name.to_owned()),
                "two files are named `{}`; -o DIR would write one over the other",
                name.to_string_lossy()
            );
        }
        fs_err::create_dir_all(dir)?;
    }
    for (path, text, _) in &results {
        let dest = match &args.out {
            Some(dir) => dir.join(path.file_name().context("no file name")?),
            None => (*path).clone(),
        };
        let tmp = dest.with_extension("airlock-partial");
        fs_err::write(&tmp, text)?;
        fs_err::rename(&tmp, &dest)?;
    }
    let reports: Vec<_> = results.into_iter().map(|(_, _, r)| r).collect();
    match g.format {
        Format::Json => print_json(&reports)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = reports
                .iter()
                .flat_map(|r| {
                    r.pinned.iter().map(|p| {
                        vec![
                            format!("{}:{}", r.file, p.line),
                            p.from.clone(),
                            p.to.clone(),
                        ]
                    })
                })
                .collect();
            print_table(&["WHERE", "IMAGE", "PINNED"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}
