//! `airlock import BUNDLE --to HOST[/PREFIX]`: verify and push.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use airlock::import::gate::ImagePolicy;
use airlock::import::{ImportOptions, Mapping, Recorder, Target};

use super::{human_bytes, print_json, print_table, Format, Global, RegistryArgs, TrustArgs};

/// `--on-untrusted`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum OnUntrusted {
    /// Refuse the bundle; nothing is pushed.
    RejectBundle,
    /// Leave the untrusted image and its attachments out; import the rest.
    SkipArtifact,
}

impl From<OnUntrusted> for airlock::import::gate::OnUntrusted {
    fn from(o: OnUntrusted) -> Self {
        match o {
            OnUntrusted::RejectBundle => Self::RejectBundle,
            OnUntrusted::SkipArtifact => Self::SkipArtifact,
        }
    }
}

/// Arguments of `airlock import`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  airlock import app.tar.zst --to registry.internal:5000/mirror --trust release.pub
  airlock import usb/ --to registry.internal/mirror --trust release.pub --ledger /srv/airlock/ledger
  airlock import app.tar.zst --to registry.internal --policy site-trust.yaml --scan-policy scan.yaml --db vuln.db
(registries, trusted keys and the ledger can come from airlock.toml: see `airlock config show`)")]
pub struct Args {
    /// The bundle (`.tar.zst`), or its split parts: `NAME.parts.json` or a directory holding one.
    pub bundle: PathBuf,
    /// Target registry and optional prefix: `HOST[:PORT][/PREFIX]`.
    #[arg(long, help_heading = "Target names")]
    pub to: String,
    /// Keep the source registry as a path component (`PREFIX/ghcr.io/org/app`).
    #[arg(long, help_heading = "Target names")]
    pub keep_source_host: bool,
    /// One path component under the prefix (`PREFIX/org-app`), for registries that limit nesting.
    #[arg(long, help_heading = "Target names")]
    pub flatten: bool,
    /// YAML file of explicit rewrites: `rewrites: [{from: SRC/REPO, to: TARGET/PATH}]`.
    #[arg(long, value_name = "FILE", help_heading = "Target names")]
    pub mapping: Option<PathBuf>,
    /// Registry checks in flight at once.
    #[arg(long, default_value_t = 8)]
    pub jobs: usize,
    /// Append a signed entry for this import (admitted or rejected) to this ledger.
    #[arg(long, value_name = "DIR", help_heading = "Ledger")]
    pub ledger: Option<PathBuf>,
    /// File holding the ledger key's password (else `AIRLOCK_PASSWORD`, else a prompt).
    #[arg(long, value_name = "FILE", help_heading = "Ledger")]
    pub ledger_password_file: Option<PathBuf>,
    /// Seconds to wait for another process holding the ledger's lock before giving up
    /// (nothing is pushed then). Only with a ledger (which may come from the configuration).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        help_heading = "Ledger"
    )]
    pub ledger_wait: u64,
    /// Also write the bundle's plain files (`files:` in the spec) into this directory, each
    /// renamed into place only once verified.
    #[arg(long, value_name = "DIR")]
    pub files_to: Option<PathBuf>,
    /// Who runs the import, for the ledger (default: `$USER`).
    #[arg(long, help_heading = "Ledger")]
    pub operator: Option<String>,
    /// This side's scan policy (YAML, the keys of a spec's `scan:`): the bundle's carried SBOMs
    /// (or reports) must pass it before anything is pushed.
    #[arg(long, value_name = "FILE", help_heading = "Site policy")]
    pub scan_policy: Option<PathBuf>,
    /// Vulnerability database to re-match the carried SBOMs against (else the policy's `db:`;
    /// else the carried reports are judged).
    #[arg(long, value_name = "FILE", help_heading = "Site policy")]
    pub db: Option<PathBuf>,
    /// The isolated side's image-signature policy (the format of a spec's `trust:` section;
    /// key paths relative to the file). Every image is verified offline against it, on the
    /// signatures the bundle carries, before anything is pushed; an image no rule covers fails.
    #[arg(long, value_name = "FILE", help_heading = "Site policy")]
    pub policy: Option<PathBuf>,
    /// What an image that fails `--policy` costs: the whole bundle, or that image and what is
    /// attached to it.
    #[arg(long, value_enum, default_value_t = OnUntrusted::RejectBundle, help_heading = "Site policy")]
    pub on_untrusted: OnUntrusted,
    /// Import a signed bundle even when the ledger has admitted a newer one (higher
    /// `sequence`) of the same name from the same signer: a deliberate rollback.
    #[arg(long, help_heading = "Site policy")]
    pub allow_older: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `airlock import`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let target: Target = args.to.parse().context("--to")?;
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
        Some(file) => Some(ImagePolicy::load(file, args.on_untrusted.into())?),
        None => None,
    };
    let registry = args.registry.client(g, Some(&target.registry))?;
    // The ledger first: an import that cannot be recorded does not start.
    let mut recorder = match &args.ledger {
        Some(dir) => {
            let pw = airlock::trust::password::read_password(
                args.ledger_password_file.as_deref(),
                "ledger key",
                false,
            )?;
            let operator = airlock::import::record::operator(args.operator.as_deref());
            let wait = std::time::Duration::from_secs(args.ledger_wait);
            Some(Recorder::open(dir, pw.as_bytes(), operator, wait)?)
        }
        None => None,
    };
    if let Some(r) = recorder.as_ref().and_then(|r| r.recovery().map(|x| (r, x))) {
        errln!(
            "warning: ledger `{}` was repaired on open (an earlier import or append was interrupted): {:?}",
            r.0.dir().display(),
            r.1
        );
    }
    let bars = super::progress::Bars::new(g.quiet);
    let opts = ImportOptions {
        target,
        mapping,
        jobs: args.jobs,
        signature: policy,
        scan_gate,
        image_policy,
        allow_older: args.allow_older,
        files_to: args.files_to.clone(),
    };
    let report = airlock::import::run(
        &args.bundle,
        std::sync::Arc::new(registry),
        &opts,
        recorder.as_mut(),
        &bars,
    )
    .await
    .with_context(|| format!("importing `{}` into {}", args.bundle.display(), args.to));
    if let Some(r) = &recorder {
        for e in r.recorded() {
            if g.quiet {
                continue;
            }
            let what = if e.admitted { "admitted" } else { "rejected" };
            if e.appended {
                errln!(
                    "ledger: entry {} ({what}) appended to `{}`",
                    e.index,
                    r.dir().display()
                );
            } else {
                errln!(
                    "ledger: entry {} of `{}` already records this import; not appended again",
                    e.index,
                    r.dir().display()
                );
            }
        }
    }
    let report = report?;
    super::warn_unsigned(&report.signature);
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
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
