//! `airlock mirror-config`: node configuration that sends pulls of the source registries to
//! the internal registry, from what the ledger (or one import report) says was admitted.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;
use serde::Serialize;

use airlock::cluster::{mirror_config, Admitted, MirrorFormat, MirrorOptions};

use super::{print_json, print_table, Format, Global};

/// Which runtime's configuration to write.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Runtime {
    /// containerd `HOST/hosts.toml` (point `config_path` or `ctr --hosts-dir` at the directory).
    Containerd,
    /// k3s / RKE2 `registries.yaml`.
    K3s,
    /// CRI-O / podman `registries.conf.d/50-airlock.conf`.
    Crio,
    /// OpenShift `ImageDigestMirrorSet` and `ImageTagMirrorSet`.
    Idms,
}

/// Arguments of `airlock mirror-config`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ledger whose admitted imports give the source → internal mapping.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "from_report",
        conflicts_with = "from_report"
    )]
    pub ledger: Option<PathBuf>,
    /// An import's `--output json` report instead of the ledger.
    #[arg(long, value_name = "FILE")]
    pub from_report: Option<PathBuf>,
    /// The runtime (or platform) whose configuration to write.
    #[arg(long, value_enum)]
    pub runtime: Runtime,
    /// CA certificate (PEM) the nodes must trust for the internal registry.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// The internal registry as the nodes name it, when it differs from where import pushed:
    /// `RECORDED=NEW` (e.g. `127.0.0.1:5000/mirror=registry.internal/mirror`).
    #[arg(long, value_name = "RECORDED=NEW")]
    pub registry: Option<String>,
    /// The internal registry speaks plain HTTP (labs only; production uses TLS).
    #[arg(long)]
    pub plain_http: bool,
    /// CRI-O: take only pulls by digest from the mirror (`pull-from-mirror = "digest-only"`).
    #[arg(long)]
    pub digest_only: bool,
    /// Output directory (created if needed).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Serialize)]
struct Report {
    mirrors: Vec<airlock::cluster::Mirror>,
    files: Vec<PathBuf>,
}

/// Loads the admitted images from `--ledger` or `--from-report`, applying `--registry`.
pub fn load_admitted(
    ledger: Option<&PathBuf>,
    report: Option<&PathBuf>,
    registry: Option<&str>,
) -> anyhow::Result<Admitted> {
    // A report given wins over a ledger: clap refuses both on the command line, so a ledger
    // beside a report is the configuration file's default.
    let admitted = match (ledger, report) {
        (_, Some(file)) => Admitted::from_report(file)?,
        (Some(dir), None) => Admitted::from_ledger(dir)?,
        (None, None) => anyhow::bail!("give --ledger DIR or --from-report FILE"),
    };
    Ok(match registry {
        Some(r) => {
            let (from, to) = r
                .split_once('=')
                .with_context(|| format!("--registry `{r}`: expected RECORDED=NEW"))?;
            admitted.with_registry(from, to)
        }
        None => admitted,
    })
}

/// Runs `airlock mirror-config`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let admitted = load_admitted(
        args.ledger.as_ref(),
        args.from_report.as_ref(),
        args.registry.as_deref(),
    )?;
    let mirrors = mirror_config::mirrors(&admitted)?;
    let ca = match &args.ca_file {
        Some(p) => Some((
            p.clone(),
            airlock::io::read_capped(p, airlock::io::MAX_CA_FILE_BYTES, "CA file")?,
        )),
        None => None,
    };
    let format = match args.runtime {
        Runtime::Containerd => MirrorFormat::Containerd,
        Runtime::K3s => MirrorFormat::K3s,
        Runtime::Crio => MirrorFormat::Crio,
        Runtime::Idms => MirrorFormat::Idms,
    };
    let opts = MirrorOptions {
        ca,
        plain_http: args.plain_http,
        digest_only: args.digest_only,
    };
    let files = mirror_config::render(format, &mirrors, &opts)?;
    mirror_config::write(&args.out, &files)?;
    let report = Report {
        mirrors,
        files: files.iter().map(|f| args.out.join(&f.path)).collect(),
    };
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = report
                .mirrors
                .iter()
                .map(|m| vec![m.source.clone(), m.location()])
                .collect();
            print_table(&["SOURCE", "MIRROR"], &rows);
            for f in &report.files {
                outln!("wrote {}", f.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
