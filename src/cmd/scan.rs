//! `airlock scan IMAGE-REF|BUNDLE --db FILE [--policy FILE]`: inventory, findings and the gate,
//! on either side of the gap.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use airlock::scan::image::ScanSummary;
use airlock::scan::policy::{ScanPolicy, Suppression};
use airlock::scan::run::{ScanInput, ScanOutcome, ScanRequest, Scanner};

use super::{print_json, print_table, Format, Global, RegistryArgs, EXIT_POLICY};

/// Which scanner produces the evidence.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScannerArg {
    /// airlock's own offline scanner (OSV database from `airlock db build`).
    Airlock,
    /// An installed `trivy`, run offline (`--offline-scan --skip-db-update --skip-version-check --disable-telemetry`).
    Trivy,
}

impl From<ScannerArg> for Scanner {
    fn from(a: ScannerArg) -> Scanner {
        match a {
            ScannerArg::Airlock => Scanner::Airlock,
            ScannerArg::Trivy => Scanner::Trivy,
        }
    }
}

/// Arguments of `airlock scan`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An image reference (`registry/repo:tag`, `…@sha256:…`), a bundle file, or a split
    /// bundle (`NAME.parts.json` or the directory of its parts).
    pub target: String,
    /// The vulnerability database (`airlock db build`); else the policy's `db:`.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The scan policy (YAML: the keys of a spec's `scan:` section). Without one, findings are
    /// listed but only an image whose packages cannot be checked fails.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Scan only this platform of an index (`os/arch[/variant]`). Repeatable.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Vec<String>,
    /// Blob cache registry layers are downloaded into (the one `collect` uses).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Which scanner to run.
    #[arg(long, value_enum, default_value_t = ScannerArg::Airlock)]
    pub scanner: ScannerArg,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `airlock scan`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let platforms = args
        .platform
        .iter()
        .map(|p| p.parse())
        .collect::<Result<Vec<airlock::oci::Platform>, _>>()?;
    let (policy, policy_dir) = match &args.policy {
        Some(p) => (
            ScanPolicy::load(p)?,
            p.parent().map(|d| d.to_path_buf()).unwrap_or_default(),
        ),
        None => (ScanPolicy::default(), PathBuf::new()),
    };
    let as_path = PathBuf::from(&args.target);
    // Something that looks like a file never falls through to a registry lookup: a mistyped
    // bundle name would otherwise be asked of Docker Hub.
    let looks_like_file = args.target.ends_with(".zst")
        || args.target.ends_with(".json")
        || args.target.ends_with(".tar")
        || args.target.starts_with("./")
        || args.target.starts_with('/');
    let input = if as_path.is_file() || as_path.is_dir() {
        ScanInput::Bundle(as_path.clone())
    } else if looks_like_file {
        anyhow::bail!("bundle `{}` does not exist", args.target);
    } else {
        ScanInput::Registry(args.target.parse().with_context(|| {
            format!(
                "`{}` is neither a bundle file nor an image reference",
                args.target
            )
        })?)
    };
    let cache = args.cache.clone().unwrap_or_else(super::default_cache_dir);
    let req = ScanRequest {
        scanner: args.scanner.into(),
        input,
        platforms,
        db: args.db.clone(),
        policy,
        policy_dir,
        spool_parent: match &as_path.parent() {
            Some(p) if as_path.exists() && !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()),
        },
        cache,
        now: std::time::SystemTime::now(),
    };
    let registry = args.registry.client(g, None)?;
    let bars = super::progress::Bars::new(g.quiet);
    let outcome = airlock::scan::run::run(&req, &registry, &bars)
        .await
        .with_context(|| format!("scanning `{}`", args.target))?;
    match g.format {
        Format::Json => print_json(&outcome)?,
        Format::Table => print_human(&outcome),
    }
    if outcome.passed {
        return Ok(ExitCode::SUCCESS);
    }
    for i in outcome.images.iter().filter(|i| !i.gate.passed) {
        for r in &i.gate.reasons {
            errln!(
                "error: scan gate failed: {}{}: {r}",
                i.image,
                i.platform
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::from(EXIT_POLICY))
}

/// The per-image table: image, platform, OS, packages, counts by severity, gate.
pub fn print_summaries<'a>(
    rows: impl Iterator<Item = (&'a str, Option<&'a str>, &'a ScanSummary, bool)>,
) {
    let rows: Vec<Vec<String>> = rows
        .map(|(image, platform, s, passed)| {
            vec![
                image.to_string(),
                platform.unwrap_or("-").to_string(),
                s.os.clone().unwrap_or_else(|| "unknown".into()),
                s.packages.to_string(),
                s.findings.critical.to_string(),
                s.findings.high.to_string(),
                s.findings.medium.to_string(),
                s.findings.low.to_string(),
                s.findings.unknown.to_string(),
                s.suppressed.to_string(),
                if passed { "pass" } else { "FAIL" }.into(),
            ]
        })
        .collect();
    print_table(
        &[
            "IMAGE",
            "PLATFORM",
            "OS",
            "PACKAGES",
            "CRITICAL",
            "HIGH",
            "MEDIUM",
            "LOW",
            "UNKNOWN",
            "SUPPRESSED",
            "GATE",
        ],
        &rows,
    );
}

fn print_human(o: &ScanOutcome) {
    print_summaries(o.images.iter().map(|i| {
        (
            i.image.as_str(),
            i.platform.as_deref(),
            &i.summary,
            i.gate.passed,
        )
    }));
    let mut findings = Vec::new();
    for i in &o.images {
        for d in &i.decisions {
            let f = &d.finding;
            findings.push(vec![
                i.platform.clone().unwrap_or_else(|| "-".into()),
                f.id.clone(),
                f.package.name.clone(),
                f.package.version.clone(),
                f.fixed_version.clone().unwrap_or_else(|| "-".into()),
                f.status().into(),
                f.severity.as_str().to_string(),
                match &d.suppressed {
                    None if d.fails_gate => "- (fails gate)".into(),
                    None => "-".into(),
                    Some(Suppression::Vex(m)) => {
                        format!("VEX {} ({})", m.status.as_str(), m.source)
                    }
                    Some(Suppression::Allow(a)) => {
                        format!("allow {} until {}: {}", a.id, a.expires, a.reason)
                    }
                },
            ]);
        }
    }
    if !findings.is_empty() {
        outln!();
        print_table(
            &[
                "PLATFORM",
                "ID",
                "PACKAGE",
                "INSTALLED",
                "FIXED",
                "STATUS",
                "SEVERITY",
                "SUPPRESSED-BY",
            ],
            &findings,
        );
    }
    for i in &o.images {
        for w in &i.gate.warnings {
            errln!("warning: {}: {w}", i.image);
        }
        for d in &i.decisions {
            for n in &d.notes {
                errln!("note: {} {}: {n}", d.finding.id, d.finding.package.name);
            }
        }
    }
    match &o.database {
        Some(db) => outln!(
            "\ndatabase {} ({}, built {})",
            db.path.display(),
            db.digest.short(),
            db.built_at
        ),
        None => outln!("\nscanner: trivy (its own offline database)"),
    }
}
