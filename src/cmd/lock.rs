//! `airlock lock SPEC`: resolve tags to digests and write (or check) the lockfile.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use airlock::lock::{Change, Lock};
use airlock::spec::Spec;

use super::{print_json, print_table, Format, Global, RegistryArgs, EXIT_DRIFT};

/// Arguments of `airlock lock`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  airlock lock app.yaml                 # writes app.lock beside it
  airlock lock app.yaml --check         # exit 3 when a tag moved since app.lock was written")]
pub struct Args {
    /// The spec (`bundles/NAME.yaml`).
    pub spec: PathBuf,
    /// Lockfile to write (default: the spec path with `.lock`).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Do not write; exit 3 if the lockfile is missing or differs from what the registries
    /// serve now.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    lockfile: &'a PathBuf,
    written: bool,
    drift: bool,
    changes: &'a [Change],
    lock: &'a Lock,
}

/// Runs `airlock lock`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let (spec, spec_digest) = Spec::load(&args.spec)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.spec.with_extension("lock"));
    let previous = if out.exists() {
        Some(Lock::load(&out)?.0)
    } else {
        None
    };
    let registry = args.registry.client(g, None)?;
    let bars = super::progress::Bars::new(g.quiet);
    let spec_dir = args
        .spec
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let lock = airlock::collect::lock_spec(
        &spec,
        spec_digest,
        &spec_dir,
        &registry,
        previous.as_ref(),
        &bars,
    )
    .await
    .with_context(|| format!("locking `{}`", args.spec.display()))?;
    let changes = match &previous {
        Some(p) => lock.changes_from(p),
        None => lock.changes_from(&Lock {
            images: vec![],
            charts: vec![],
            ..lock.clone()
        }),
    };
    let same = previous
        .as_ref()
        .is_some_and(|p| p.same_content(&lock) && p.spec_digest == lock.spec_digest);
    let drift = !same;
    let mut written = false;
    if !args.check && drift {
        let tmp = out.with_extension("lock.partial");
        fs_err::write(&tmp, lock.to_bytes())?;
        fs_err::rename(&tmp, &out)?;
        written = true;
    }
    match g.format {
        Format::Json => print_json(&Report {
            lockfile: &out,
            written,
            drift,
            changes: &changes,
            lock: &lock,
        })?,
        Format::Table => {
            if changes.is_empty() && !drift {
                if !g.quiet {
                    outln!(
                        "{}: up to date ({} images, {} charts)",
                        out.display(),
                        lock.images.len(),
                        lock.charts.len()
                    );
                }
            } else {
                let rows: Vec<Vec<String>> = changes
                    .iter()
                    .map(|c| {
                        vec![
                            c.artifact.clone(),
                            c.old
                                .as_ref()
                                .map(|d| d.short().to_string())
                                .unwrap_or_else(|| "(new)".into()),
                            c.new
                                .as_ref()
                                .map(|d| d.short().to_string())
                                .unwrap_or_else(|| "(removed)".into()),
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    print_table(&["ARTIFACT", "OLD", "NEW"], &rows);
                }
                if written {
                    outln!("wrote {}", out.display());
                } else if args.check {
                    outln!(
                        "{}: drift (not written; run without --check to update)",
                        out.display()
                    );
                }
            }
        }
    }
    if args.check && drift {
        return Ok(ExitCode::from(EXIT_DRIFT));
    }
    Ok(ExitCode::SUCCESS)
}
