//! `airlock admission-policy`: Kyverno or sigstore policy-controller policies from the site's
//! trust policy, for the internal names of what the ledger admitted.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;
use serde::Serialize;

use airlock::cluster::admission::{self, AdmissionFormat};
use airlock::cluster::mirror_config;

use super::{print_json, Format, Global};

/// Which admission controller to write for.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Controller {
    /// Kyverno `ClusterPolicy` with `verifyImages`.
    Kyverno,
    /// sigstore policy-controller `ClusterImagePolicy` (+ `TrustRoot` for offline keyless).
    PolicyController,
}

/// Arguments of `airlock admission-policy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The site's trust policy (the `import --policy` file).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Ledger whose admitted imports give the source → internal names.
    #[arg(long, value_name = "DIR")]
    pub ledger: PathBuf,
    /// The internal registry as the cluster names it, when it differs from where import
    /// pushed: `RECORDED=NEW`.
    #[arg(long, value_name = "RECORDED=NEW")]
    pub registry: Option<String>,
    /// The admission controller.
    #[arg(long, value_enum)]
    pub controller: Controller,
    /// Output directory (created if needed).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Serialize)]
struct Report {
    files: Vec<PathBuf>,
}

/// Runs `airlock admission-policy`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let text = airlock::io::read_text_capped(
        &args.policy,
        airlock::trust::policy::MAX_POLICY_BYTES,
        "policy",
    )?;
    let policy = airlock::trust::policy::TrustPolicy::from_yaml(&text)
        .with_context(|| format!("trust policy `{}`", args.policy.display()))?;
    let admitted =
        super::mirror_config::load_admitted(Some(&args.ledger), None, args.registry.as_deref())?;
    let mirrors = mirror_config::mirrors(&admitted)?;
    let format = match args.controller {
        Controller::Kyverno => AdmissionFormat::Kyverno,
        Controller::PolicyController => AdmissionFormat::PolicyController,
    };
    let files = admission::render(format, &policy, &args.policy, &mirrors)?;
    mirror_config::write(&args.out, &files)?;
    let report = Report {
        files: files.iter().map(|f| args.out.join(&f.path)).collect(),
    };
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            for f in &report.files {
                outln!("wrote {}", f.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
