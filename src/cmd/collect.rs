//! `airlock collect LOCK -o BUNDLE`: pull by digest and pack.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use airlock::lock::Lock;
use airlock::spec::Spec;

use super::{human_bytes, print_json, print_table, Format, Global, RegistryArgs};

/// Arguments of `airlock collect`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  airlock collect app.lock -o out/app.tar.zst --key release.key
  airlock collect app.lock -o usb/app.tar.zst --key release.key --split 4GiB
  airlock collect app.lock -o delta.tar.zst --key release.key --have receipt.json --trust-receipt ledger.vkey")]
pub struct Args {
    /// A lockfile (`NAME.lock`), or a spec whose every reference is pinned by digest.
    pub input: PathBuf,
    /// Bundle to write (`NAME.tar.zst`).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "BUNDLE")]
    pub out: PathBuf,
    /// Blob cache (default: `$XDG_CACHE_HOME/airlock` or `~/.cache/airlock`).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Blobs downloaded at once (each streams to the cache, so this costs little memory; a
    /// registry a round trip away needs many in flight).
    #[arg(long, default_value_t = 16)]
    pub jobs: usize,
    /// Replay sequence recorded in `airlock.json` (default: the lock's creation time in Unix
    /// seconds). Importers with a ledger refuse a bundle lower than the last admitted one of
    /// the same name and signer.
    #[arg(long, value_name = "N")]
    pub sequence: Option<u64>,
    /// Sign `airlock.json` with this key (cosign format). Repeatable: several signers.
    #[arg(
        long = "key",
        alias = "sign",
        value_name = "KEY",
        help_heading = "Signing"
    )]
    pub sign: Vec<PathBuf>,
    /// File holding the signing keys' password (else `AIRLOCK_PASSWORD`, else a prompt).
    #[arg(long, value_name = "FILE", help_heading = "Signing")]
    pub password_file: Option<PathBuf>,
    /// Vulnerability database for the lock's `scan:` policy (else the policy's `db:`).
    #[arg(long, value_name = "FILE", help_heading = "Scanning")]
    pub db: Option<PathBuf>,
    /// Carry the vulnerability database in the bundle (an OCI artifact, imported as
    /// `airlock/vulndb:db-<build time>`), so the isolated side can re-check with it.
    #[arg(long, help_heading = "Scanning")]
    pub carry_db: bool,
    /// Which scanner makes the evidence for the lock's `scan:` policy (`trivy`: an installed
    /// Trivy, offline; its JSON is carried as the report, without an SBOM).
    #[arg(long, value_enum, default_value_t = super::scan::ScannerArg::Airlock, help_heading = "Scanning")]
    pub scanner: super::scan::ScannerArg,
    /// Write the bundle as parts of this size (`4GiB`, `700MiB`, `4.7GB`, bytes) plus
    /// `NAME.parts.json` (signed with the `--sign` keys) instead of one file: packed straight
    /// into the parts, so the disk needs room for one copy.
    #[arg(long, value_name = "SIZE")]
    pub split: Option<String>,
    /// A delta bundle: leave out every blob this receipt (`airlock receipt`, taken on the
    /// isolated side) says the site's registry holds.
    #[arg(long, value_name = "RECEIPT.json", help_heading = "Delta bundles")]
    pub have: Option<PathBuf>,
    /// Who must have signed the `--have` receipt: a cosign public key (`KEY.pub`, checks
    /// `receipt.json.sig`) or the site's ledger verifier key (`ledger.vkey`, checks
    /// `receipt.json.note`). Repeatable (any one suffices). Without it the receipt is used
    /// unchecked: a false one only makes the import fail.
    #[arg(
        long,
        value_name = "KEY.pub|ledger.vkey",
        help_heading = "Delta bundles"
    )]
    pub trust_receipt: Vec<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `airlock collect`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let split = match &args.split {
        Some(s) => Some(
            airlock::bundle::parts::parse_size(s)
                .and_then(|n| airlock::bundle::parts::check_part_size(n).map(|()| n))
                .context("--split")?,
        ),
        None => None,
    };
    let mut signers = Vec::new();
    if !args.sign.is_empty() {
        let pw = airlock::trust::password::read_password(
            args.password_file.as_deref(),
            "signing key",
            false,
        )?;
        for k in &args.sign {
            signers.push(airlock::trust::keys::SigningKey::load(k, pw.as_bytes())?);
        }
    }
    let have = match &args.have {
        Some(path) => {
            let mut trust = airlock::receipt::ReceiptTrust::default();
            for p in &args.trust_receipt {
                let head = airlock::io::read_capped(
                    p,
                    airlock::trust::MAX_KEY_FILE_BYTES as u64,
                    "receipt key",
                )?;
                if head.starts_with(b"-----BEGIN") {
                    trust.keys.push(airlock::trust::keys::PublicKey::load(p)?);
                } else {
                    trust.ledgers.push(airlock::ledger::read_vkey(p)?);
                }
            }
            if args.trust_receipt.is_empty() && !g.quiet {
                errln!(
                    "warning: receipt `{}` used without a signature check (no --trust-receipt)",
                    path.display()
                );
            }
            Some(airlock::receipt::Receipt::load(path, &trust)?)
        }
        None => None,
    };
    super::create_parent_dir(&args.out)?;
    let registry = args.registry.client(g, None)?;
    let bars = super::progress::Bars::new(g.quiet);
    let is_spec = matches!(
        args.input.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml")
    );
    let (lock, lock_digest) = if is_spec {
        let (spec, spec_digest) = Spec::load(&args.input)?;
        let dir = args
            .input
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let lock =
            airlock::collect::lock_pinned_spec(&spec, spec_digest, &dir, &registry, &bars).await?;
        let d = airlock::oci::Digest::of(&lock.to_bytes());
        (lock, d)
    } else {
        Lock::load(&args.input)?
    };
    let opts = airlock::collect::CollectOptions {
        output: args.out.clone(),
        cache: args.cache.clone().unwrap_or_else(super::default_cache_dir),
        jobs: args.jobs,
        signers,
        base_dir: args
            .input
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
        sequence: args.sequence,
        scan_db: args.db.clone(),
        carry_db: args.carry_db,
        scanner: args.scanner.into(),
        have,
        split,
    };
    let report = airlock::collect::collect(&lock, &lock_digest, &registry, &opts, &bars)
        .await
        .with_context(|| format!("collecting `{}`", args.input.display()))?;
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = report
                .artifacts
                .iter()
                .map(|a| {
                    vec![
                        format!("{:?}", a.kind).to_lowercase(),
                        a.source.clone(),
                        a.digest.short().to_string(),
                        if a.platforms.is_empty() {
                            "-".into()
                        } else {
                            a.platforms.join(",")
                        },
                        human_bytes(a.size),
                    ]
                })
                .collect();
            print_table(&["KIND", "SOURCE", "DIGEST", "PLATFORMS", "SIZE"], &rows);
            if !report.scans.is_empty() {
                outln!();
                super::scan::print_summaries(report.scans.iter().map(|s| {
                    (
                        s.image.as_str(),
                        s.platform.as_deref(),
                        &s.summary,
                        s.summary.passed,
                    )
                }));
                for s in &report.scans {
                    for w in &s.warnings {
                        errln!("warning: {}: {w}", s.image);
                    }
                }
            }
            let wrote = match &report.parts {
                Some(p) => format!(
                    "{} parts of {} and {}",
                    p.manifest.parts.len(),
                    report.bundle.display(),
                    p.parts_json.display()
                ),
                None => report.bundle.display().to_string(),
            };
            outln!(
                "wrote {wrote} ({}, {} blobs, {} of content, {} downloaded); bundle {}{}",
                human_bytes(report.bundle_size),
                report.blobs,
                human_bytes(report.blob_bytes),
                human_bytes(report.downloaded_bytes),
                report.bundle_digest,
                if report.signers.is_empty() {
                    ", UNSIGNED".to_string()
                } else {
                    format!(", signed by {}", report.signers.join(", "))
                }
            );
        }
    }
    if let (Format::Table, Some(p)) = (g.format, &report.parts) {
        super::split::print_split(p);
    }
    Ok(ExitCode::SUCCESS)
}
