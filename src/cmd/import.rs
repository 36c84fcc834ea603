//! `airlock import BUNDLE --to HOST[/PREFIX]`: verify and push.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use airlock::import::{ImportOptions, Mapping, Target};

use super::{human_bytes, print_json, print_table, Global, Output, RegistryArgs, TrustArgs};

/// `--on-untrusted`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum OnUntrusted {
    /// Refuse the bundle; nothing is pushed.
    RejectBundle,
    /// Leave the untrusted image and its attachments out; import the rest.
    SkipArtifact,
}

/// Arguments of `airlock import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`.tar.zst`), or its split parts: `NAME.parts.json` or a directory holding one.
    pub bundle: PathBuf,
    /// Target registry and optional prefix: `HOST[:PORT][/PREFIX]`.
    #[arg(long)]
    pub to: String,
    /// Keep the source registry as a path component (`PREFIX/ghcr.io/org/app`).
    #[arg(long)]
    pub keep_source_host: bool,
    /// One path component under the prefix (`PREFIX/org-app`), for registries that limit nesting.
    #[arg(long)]
    pub flatten: bool,
    /// YAML file of explicit rewrites: `rewrites: [{from: SRC/REPO, to: TARGET/PATH}]`.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// Registry checks in flight at once.
    #[arg(long, default_value_t = 8)]
    pub jobs: usize,
    /// Append a signed entry for this import (admitted or rejected) to this ledger.
    #[arg(long, value_name = "DIR")]
    pub ledger: Option<PathBuf>,
    /// File holding the ledger key's password (else `AIRLOCK_PASSWORD`, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub ledger_password_file: Option<PathBuf>,
    /// Also write the bundle's plain files (`files:` in the spec) into this directory, each
    /// renamed into place only once verified.
    #[arg(long, value_name = "DIR")]
    pub files_to: Option<PathBuf>,
    /// Who runs the import, for the ledger (default: `$USER`).
    #[arg(long)]
    pub operator: Option<String>,
    /// This side's scan policy (YAML, the keys of a spec's `scan:`): the bundle's carried SBOMs
    /// (or reports) must pass it before anything is pushed.
    #[arg(long, value_name = "FILE")]
    pub scan_policy: Option<PathBuf>,
    /// Vulnerability database to re-match the carried SBOMs against (else the policy's `db:`;
    /// else the carried reports are judged).
    #[arg(long, value_name = "FILE", requires = "scan_policy")]
    pub db: Option<PathBuf>,
    /// The isolated side's image-signature policy (the format of a spec's `trust:` section;
    /// key paths relative to the file). Every image is verified offline against it, on the
    /// signatures the bundle carries, before anything is pushed; an image no rule covers fails.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// What an image that fails `--policy` costs: the whole bundle, or that image and what is
    /// attached to it.
    #[arg(long, value_enum, default_value_t = OnUntrusted::RejectBundle, requires = "policy")]
    pub on_untrusted: OnUntrusted,
    /// Import a signed bundle even when the ledger has admitted a newer one (higher
    /// `sequence`) of the same name from the same signer: a deliberate rollback.
    #[arg(long)]
    pub allow_older: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `airlock import`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let target: Target = args.to.parse()?;
    let rewrites = match &args.mapping {
        Some(p) => Mapping::load_rewrites(p)?,
        None => Vec::new(),
    };
    let mapping = Mapping {
        prefix: target.prefix.clone(),
        keep_source_host: args.keep_source_host,
        flatten: args.flatten,
        rewrites,
    };
    let policy = args.trust.policy()?;
    let scan_gate = match &args.scan_policy {
        Some(p) => Some(std::sync::Arc::new(airlock::scan::gate::ImportGate::load(
            p,
            args.db.as_deref(),
        )?)),
        None => None,
    };
    let image_policy = match &args.policy {
        Some(file) => Some(load_image_policy(file, args.on_untrusted)?),
        None => None,
    };
    let registry = args.registry.client(Some(&target.registry))?;
    // Load the ledger key first: an import that cannot be recorded does not start.
    let ledger_signer = match &args.ledger {
        Some(dir) => {
            let pw = airlock::trust::password::read_password(
                args.ledger_password_file.as_deref(),
                "ledger key",
                false,
            )?;
            Some(airlock::ledger::LedgerSigner::load(dir, pw.as_bytes())?)
        }
        None => None,
    };
    // Replay protection reads the ledger before the bundle: a rolled-back bundle is refused
    // before a blob is read.
    let replay = match (&args.ledger, args.allow_older) {
        (Some(dir), false) => Some(airlock::import::replay::ReplayGuard::load(dir)?),
        _ => None,
    };
    let bars = super::progress::Bars::new(g.quiet);
    // A parts manifest too broken to use is still recorded as offered (by its file's sha256);
    // a directory without one offered nothing and is only an error.
    let (source, toc) = match airlock::bundle::BundleSource::resolve(&args.bundle) {
        Ok(s) => {
            let toc = s.table_of_contents();
            (s, toc)
        }
        Err(e) => match airlock::bundle::parts::PartsSet::find(&args.bundle) {
            Ok(file) if file.is_file() => (airlock::bundle::BundleSource::File(file), Err(e)),
            _ => return Err(e.into()),
        },
    };
    let total = toc
        .as_ref()
        .map(|t| t.manifest.total_blob_bytes())
        .unwrap_or(0);
    airlock::progress::Reporter::phase(&bars, "import", total);
    let opts = ImportOptions {
        target,
        mapping,
        jobs: args.jobs,
        signature: policy,
        scan_gate,
        image_policy,
        replay,
        files_to: args.files_to.clone(),
    };
    let report = match &toc {
        Ok(_) => airlock::import::import_from(&source, std::sync::Arc::new(registry), &opts, &bars)
            .await
            .with_context(|| format!("importing `{}` into {}", args.bundle.display(), args.to)),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    airlock::progress::Reporter::finish_phase(&bars);
    if let (Some(dir), Some(signer)) = (&args.ledger, &ledger_signer) {
        let operator = args
            .operator
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".into());
        let outcome = match &report {
            Ok(r) => Ok(r),
            Err(e) => Err(format!("{e:#}")),
        };
        let mut entry = airlock::import::record::ledger_entry_for(
            &source,
            toc.as_ref().ok(),
            &args.to,
            &operator,
            outcome,
        )?;
        entry.policy_digest = airlock::import::policy_digest(&opts).map(|d| d.to_string());
        let mut ledger = airlock::ledger::Ledger::open(dir)?;
        if let Some(r) = ledger.recovery() {
            errln!(
                "warning: ledger `{}` was repaired on open: {r:?}",
                dir.display()
            );
        }
        let receipt = ledger.append(&entry, signer)?;
        if !g.quiet {
            errln!(
                "ledger: entry {} appended to `{}` (tree size {})",
                receipt.index,
                dir.display(),
                receipt.count
            );
        }
    }
    let report = report?;
    super::warn_unsigned(&report.signature);
    match g.output {
        Output::Json => print_json(&report)?,
        Output::Human => {
            let rows: Vec<Vec<String>> = report
                .artifacts
                .iter()
                .map(|a| {
                    let target = match &a.tag {
                        Some(t) => format!("{}:{t}", a.target),
                        None => a.target.clone(),
                    };
                    let digest = match &a.derived_digest {
                        Some(d) => format!(
                            "{} (derived {}; original {})",
                            d,
                            d.short(),
                            a.digest.short()
                        ),
                        None => a.digest.to_string(),
                    };
                    let trust = match (&a.skipped, a.signatures.as_slice()) {
                        (Some(why), _) => format!("LEFT OUT: {why}"),
                        (None, []) => String::new(),
                        (None, s) => format!(
                            "signed by {}",
                            s.iter()
                                .map(|r| r.signer.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    vec![
                        a.source.clone(),
                        format!("→ {target}"),
                        format!("@ {digest}"),
                        trust,
                    ]
                })
                .collect();
            print_table(&["SOURCE", "TARGET", "DIGEST", "POLICY"], &rows);
            outln!(
                "blobs: {} pushed ({}), {} mounted, {} already present; manifests: {} pushed, {} present; tags: {} set, {} unchanged",
                report.blobs_pushed,
                human_bytes(report.bytes_pushed),
                report.blobs_mounted,
                report.blobs_skipped,
                report.manifests_pushed,
                report.manifests_skipped,
                report.tags_set,
                report.tags_unchanged
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the isolated side's image policy: a `trust:`-shaped YAML file.
fn load_image_policy(
    file: &std::path::Path,
    on_untrusted: OnUntrusted,
) -> anyhow::Result<airlock::import::gate::ImagePolicy> {
    let text = airlock::io::read_capped(file, airlock::trust::policy::MAX_POLICY_BYTES, "policy")?;
    let digest = airlock::oci::Digest::of(&text);
    let text = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("policy `{}` is not UTF-8", file.display()))?;
    let policy = airlock::trust::policy::TrustPolicy::from_yaml(&text)
        .with_context(|| format!("policy `{}`", file.display()))?;
    Ok(airlock::import::gate::ImagePolicy {
        policy,
        base_dir: file.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        file: file.to_path_buf(),
        digest,
        on_untrusted: match on_untrusted {
            OnUntrusted::RejectBundle => airlock::import::gate::OnUntrusted::RejectBundle,
            OnUntrusted::SkipArtifact => airlock::import::gate::OnUntrusted::SkipArtifact,
        },
    })
}
