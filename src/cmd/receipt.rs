//! `airlock receipt --registry HOST [--prefix P] -o receipt.json`: on the isolated side, list
//! what the internal registry holds, so the connected side can collect a delta bundle
//! (`collect --have receipt.json`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use super::{human_bytes, print_json, Format, Global, RegistryArgs};

/// Arguments of `airlock receipt`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The registry to walk, and optionally only repositories under a path:
    /// `HOST[:PORT][/PREFIX]` (as `import --to` takes it).
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub registry: String,
    /// Only repositories under this path (e.g. the import prefix); the same as a `/PREFIX` on
    /// `--registry`.
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<String>,
    /// Only repositories that imports recorded (admitted) in this ledger pushed to: what
    /// airlock manages, not whatever else the registry holds.
    #[arg(long, value_name = "DIR")]
    pub ledger: Option<PathBuf>,
    /// Receipt to write.
    #[arg(
        short = 'o',
        long = "output",
        alias = "out",
        value_name = "RECEIPT.json"
    )]
    pub out: PathBuf,
    /// Sign the receipt with the `--ledger`'s own key, into `RECEIPT.json.note` (a signed
    /// note the connected side checks with `collect --trust-receipt ledger.vkey`).
    #[arg(long)]
    pub sign_with_ledger: bool,
    /// File holding the ledger key's password (else `AIRLOCK_PASSWORD`, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub ledger_password_file: Option<PathBuf>,
    /// Sign the receipt with this key (cosign format), into `RECEIPT.json.sig`. Repeatable.
    #[arg(long, value_name = "KEY")]
    pub key: Vec<PathBuf>,
    /// File holding the key's password (else `AIRLOCK_PASSWORD`, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    receipt: &'a PathBuf,
    digest: airlock::oci::Digest,
    registry: &'a str,
    manifests: usize,
    blobs: usize,
    blob_bytes: u64,
    signers: Vec<String>,
}

/// Runs `airlock receipt`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let signers = super::split::load_signers(&args.key, args.password_file.as_deref())?;
    // The ledger key is loaded first: a receipt that cannot be signed is not taken.
    let ledger_signer = match (&args.ledger, args.sign_with_ledger) {
        (Some(dir), true) => {
            let pw = airlock::trust::password::read_password(
                args.ledger_password_file.as_deref(),
                "ledger key",
                false,
            )?;
            Some(airlock::ledger::LedgerSigner::load(dir, pw.as_bytes())?)
        }
        _ => None,
    };
    let target: airlock::import::Target = args.registry.parse().context("--registry")?;
    let prefix = match (target.prefix.as_str(), args.prefix.as_deref()) {
        ("", p) => p.map(str::to_string),
        (p, None) => Some(p.to_string()),
        (a, Some(b)) if a == b.trim_matches('/') => Some(a.to_string()),
        (a, Some(b)) => {
            return Err(airlock::error_kind::UsageError(format!(
                "--registry names prefix `{a}` and --prefix `{b}`: give the prefix once"
            ))
            .into())
        }
    };
    let host = target.registry.as_str();
    let registry = args.registry_args.client(g, Some(host))?;
    let bars = super::progress::Bars::new(g.quiet);
    airlock::progress::Reporter::phase(&bars, "receipt", 0);
    let only = match &args.ledger {
        Some(dir) => Some(airlock::receipt::ledger_repositories(dir, host)?),
        None => None,
    };
    let receipt =
        airlock::receipt::take(&registry, host, prefix.as_deref(), only.as_ref(), &bars).await;
    airlock::progress::Reporter::finish_phase(&bars);
    let receipt = receipt.with_context(|| format!("taking a receipt of {}", args.registry))?;
    super::create_parent_dir(&args.out)?;
    let mut signers = receipt.write(&args.out, &signers)?;
    if let Some(s) = &ledger_signer {
        airlock::receipt::sign_with_ledger(&args.out, s)?;
        signers.push(format!("ledger {}", s.verifier().name()));
    }
    let report = Report {
        receipt: &args.out,
        digest: airlock::oci::Digest::of(&receipt.to_vec()),
        registry: &args.registry,
        manifests: receipt.manifests.len(),
        blobs: receipt.blobs.len(),
        blob_bytes: receipt.blobs.iter().map(|b| b.size).sum(),
        signers,
    };
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => outln!(
            "wrote {} ({}): {} manifests, {} blobs ({}) held by {}{}",
            args.out.display(),
            report.digest,
            report.manifests,
            report.blobs,
            human_bytes(report.blob_bytes),
            args.registry,
            if report.signers.is_empty() {
                ", UNSIGNED".to_string()
            } else {
                format!(", signed by {}", report.signers.join(", "))
            }
        ),
    }
    Ok(ExitCode::SUCCESS)
}
