//! `airlock rescan --ledger DIR --registry HOST[/PREFIX] --db NEW.db [--policy FILE]
//! [--metrics FILE]`: re-judges every image the ledger admitted against a newer database,
//! reports what changed since the last rescan, records a rescan entry and exits 1 when the
//! policy now fails.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use airlock::scan::image::ScanContext;
use airlock::scan::policy::ScanPolicy;
use airlock::scan::rescan;

use super::{print_json, Format, Global, RegistryArgs, EXIT_POLICY};

/// Arguments of `airlock rescan`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ledger whose admitted images are re-judged (and which records the rescan).
    #[arg(long, value_name = "DIR")]
    pub ledger: PathBuf,
    /// The internal registry (and prefix) the images were imported into; only images admitted
    /// under it are re-judged.
    #[arg(long, value_name = "HOST[/PREFIX]")]
    pub registry: String,
    /// The (newer) vulnerability database.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// The scan policy (the import's `--scan-policy`). Without one, only an image whose
    /// packages cannot be checked fails.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Write a Prometheus textfile-collector file here (atomically).
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Who runs the rescan, for the ledger (default: `$USER`).
    #[arg(long)]
    pub operator: Option<String>,
    /// File holding the ledger key's password (default: `AIRLOCK_LEDGER_PASSWORD` or a prompt).
    #[arg(long, value_name = "FILE")]
    pub ledger_password_file: Option<PathBuf>,
    /// Where SBOMs and, for images without one, layers are downloaded.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// Runs `airlock rescan`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let (policy, policy_dir) = match &args.policy {
        Some(p) => (
            ScanPolicy::load(p)?,
            p.parent().map(|d| d.to_path_buf()).unwrap_or_default(),
        ),
        None => (ScanPolicy::default(), PathBuf::new()),
    };
    policy.validate()?;
    let db = airlock::scan::run::open_database(Some(&args.db), &policy, &policy_dir)?;
    let vex = policy.load_vex(&policy_dir)?;
    // The key first: a rescan that cannot be recorded does not start.
    let pw = airlock::trust::password::read_password(
        args.ledger_password_file.as_deref(),
        "ledger key",
        false,
    )?;
    let signer = airlock::ledger::LedgerSigner::load(&args.ledger, pw.as_bytes())?;
    let entries = rescan::read_entries(&args.ledger)?;
    let images = rescan::admitted_images(&entries, &args.registry);
    if images.is_empty() {
        anyhow::bail!(
            "ledger `{}` has no admitted image under {}",
            args.ledger.display(),
            args.registry
        );
    }
    let previous = rescan::previous_rescan(&args.ledger, &entries)?;
    let host = args.registry.split('/').next().unwrap_or(&args.registry);
    let registry = args.registry_args.client(g, Some(host))?;
    let cache = args.cache.clone().unwrap_or_else(super::default_cache_dir);
    let now = std::time::SystemTime::now();
    let ctx = ScanContext {
        policy: &policy,
        vex: &vex,
        db: &db,
        now,
        sbom_time: now,
        limits: Default::default(),
    };
    let sboms = rescan::LedgerSboms::from_entries(&args.ledger, &entries);
    let outcome = rescan::rescan(&registry, &images, previous, &sboms, &cache, &ctx)
        .await
        .with_context(|| format!("rescanning the images of `{}`", args.ledger.display()))?;
    // Record first, then report: the ledger is the record of what was found.
    let mut ledger = airlock::ledger::Ledger::open(&args.ledger)?;
    let doc = serde_json::to_vec(&outcome.findings)?;
    let digest = ledger.put_evidence(&doc)?;
    let operator = args
        .operator
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let entry = outcome.entry(
        &operator,
        &args.registry,
        airlock::ledger::EvidenceRef {
            kind: rescan::FINDINGS_EVIDENCE.into(),
            digest,
            size: doc.len() as u64,
            media_type: Some(rescan::FINDINGS_MEDIA_TYPE.into()),
            subject: None,
        },
    );
    let receipt = ledger.append(&entry, &signer)?;
    if let Some(path) = &args.metrics {
        rescan::write_atomically(path, rescan::metrics(&outcome, now).as_bytes())
            .with_context(|| format!("writing metrics to `{}`", path.display()))?;
    }
    match g.format {
        Format::Json => print_json(&serde_json::json!({
            "passed": outcome.passed(),
            "ledger_entry": receipt.index,
            "database": {"digest": db.digest(), "built_at": db.header().built_at},
            "previous": outcome.previous,
            "images": outcome.scans.iter().map(|s| serde_json::json!({
                "image": s.target.name,
                "platform": s.target.platform.as_ref().map(|p| p.to_string()),
                "digest": s.target.digest,
                "summary": s.summary(),
                "gate": {"passed": s.verdict.passed, "reasons": s.verdict.reasons},
                "changes": outcome.changes.get(&s.target.digest.to_string()),
                "sbom": outcome.findings.images.get(&s.target.digest.to_string()).and_then(|i| i.sbom),
            })).collect::<Vec<_>>(),
        }))?,
        Format::Table => {
            let rows: Vec<_> = outcome
                .scans
                .iter()
                .map(|s| {
                    let platform = s.target.platform.as_ref().map(|p| p.to_string());
                    (s, platform, s.summary())
                })
                .collect();
            super::scan::print_summaries(
                rows.iter().map(|(s, p, sum)| {
                    (s.target.name.as_str(), p.as_deref(), sum, s.verdict.passed)
                }),
            );
            for s in &outcome.scans {
                if let Some(c) = outcome.changes.get(&s.target.digest.to_string()) {
                    for f in &c.new {
                        println!("new    {} {}: {f}", s.target.name, s.target.digest.short());
                    }
                    for f in &c.fixed {
                        println!("fixed  {} {}: {f}", s.target.name, s.target.digest.short());
                    }
                }
            }
            if outcome.changes.is_empty() {
                match outcome.previous {
                    Some(i) => println!("no change since the rescan of ledger entry {i}"),
                    None => println!("first rescan: nothing to compare with"),
                }
            }
            if !g.quiet {
                eprintln!(
                    "ledger: rescan entry {} appended to `{}`",
                    receipt.index,
                    args.ledger.display()
                );
            }
        }
    }
    if outcome.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    for s in outcome.scans.iter().filter(|s| !s.verdict.passed) {
        for r in &s.verdict.reasons {
            eprintln!("error: scan policy now fails: {}: {r}", s.target.name);
        }
    }
    Ok(ExitCode::from(EXIT_POLICY))
}
