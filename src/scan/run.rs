//! `airlock scan`: scan an image in a registry, or every image of a bundle, against a database
//! and a policy, and say whether the gate passes. The CLI only parses and prints this.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::db::{Database, DbError};
use super::flatten::Limits;
use super::image::{scan_image, ImageScan, ScanContext, ScanError, ScanSummary};
use super::policy::{Decision, PolicyError, ScanPolicy};
use super::source::{self, SourceError};
use crate::oci::{Digest, Platform};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::Registry;

/// What to scan.
#[derive(Debug, Clone)]
pub enum ScanInput {
    /// An image (or index) in a registry.
    Registry(Reference),
    /// Every image of a bundle.
    Bundle(PathBuf),
}

/// Which scanner produces the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scanner {
    /// airlock's own offline scanner and database.
    #[default]
    Airlock,
    /// An installed `trivy`, run offline on an OCI layout of each image; its JSON is the
    /// report, judged with the same policy.
    Trivy,
}

/// A scan to run.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// Which scanner.
    pub scanner: Scanner,
    /// What to scan.
    pub input: ScanInput,
    /// Platforms to scan (empty: every platform).
    pub platforms: Vec<Platform>,
    /// The database (else the policy's `db`).
    pub db: Option<PathBuf>,
    /// The policy.
    pub policy: ScanPolicy,
    /// The directory the policy's relative paths (`vex`, `db`) are resolved against.
    pub policy_dir: PathBuf,
    /// The blob cache registry layers are downloaded into.
    pub cache: PathBuf,
    /// Where a bundle's layers are spooled while it is scanned (a temporary directory below it,
    /// deleted afterwards).
    pub spool_parent: PathBuf,
    /// The time the gate is judged at.
    pub now: SystemTime,
}

/// Why a scan could not run (a gate that fails is not an error: see [`ScanOutcome::passed`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No database was given.
    #[error("no vulnerability database: give --db FILE or `db:` in the scan policy (build one with `airlock db build`)")]
    NoDatabase,
    /// The database cannot be used.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The policy cannot be used.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The images cannot be found or fetched.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An image cannot be scanned.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// Trivy is not installed.
    #[error(transparent)]
    TrivyMissing(#[from] super::trivy::TrivyError),
    /// Trivy failed.
    #[error(transparent)]
    Trivy(#[from] super::trivy::TrivyRunError),
    /// The spool directory cannot be made.
    #[error("spool directory below `{path}`: {source}")]
    Spool {
        /// Its parent.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The database a scan used.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseUsed {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub digest: Digest,
    /// When it was built.
    pub built_at: String,
}

/// The gate's result for one image.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    /// Whether it passed.
    pub passed: bool,
    /// Why not.
    pub reasons: Vec<String>,
    /// What did not fail it but is worth knowing.
    pub warnings: Vec<String>,
}

/// One image's result.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    /// The image reference.
    pub image: String,
    /// Its platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The platform manifest digest.
    pub digest: Digest,
    /// Counts.
    pub summary: ScanSummary,
    /// The gate.
    pub gate: GateResult,
    /// The Trivy-compatible report (Trivy's own with `--scanner trivy`).
    pub report: serde_json::Value,
    /// Every finding with its decision (what the table shows; the report has the same).
    #[serde(skip)]
    pub decisions: Vec<Decision>,
}

impl From<ImageScan> for ImageResult {
    fn from(s: ImageScan) -> Self {
        ImageResult {
            image: s.target.name.clone(),
            platform: s.target.platform.as_ref().map(|p| p.to_string()),
            digest: s.target.digest.clone(),
            summary: s.summary(),
            gate: GateResult {
                passed: s.verdict.passed,
                reasons: s.verdict.reasons.clone(),
                warnings: s.verdict.warnings.clone(),
            },
            report: serde_json::to_value(&s.report).unwrap_or_default(),
            decisions: s.verdict.decisions,
        }
    }
}

/// What a scan found.
#[derive(Debug, Clone, Serialize)]
pub struct ScanOutcome {
    /// True when every image passed the gate.
    pub passed: bool,
    /// The database used (none with `--scanner trivy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseUsed>,
    /// Every image (platform) scanned.
    pub images: Vec<ImageResult>,
}

/// Opens the database a request names (`--db`, else the policy's `db` relative to its file).
pub fn open_database(
    db: Option<&Path>,
    policy: &ScanPolicy,
    policy_dir: &Path,
) -> Result<Database, RunError> {
    let path = match (db, &policy.db) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => policy_dir.join(p),
        (None, None) => return Err(RunError::NoDatabase),
    };
    Ok(Database::open(&path)?)
}

/// Runs a scan. `registry` is needed for [`ScanInput::Registry`].
pub async fn run(
    req: &ScanRequest,
    registry: &Registry,
    reporter: &dyn Reporter,
) -> Result<ScanOutcome, RunError> {
    req.policy.validate()?;
    // Everything local is checked before the network is touched.
    let trivy = match req.scanner {
        Scanner::Trivy => Some(super::trivy::find()?),
        Scanner::Airlock => None,
    };
    let db = match trivy {
        Some(_) => None,
        None => Some(open_database(
            req.db.as_deref(),
            &req.policy,
            &req.policy_dir,
        )?),
    };
    let vex = req.policy.load_vex(&req.policy_dir)?;
    let spool;
    let (sourced, dir) = match &req.input {
        ScanInput::Registry(r) => (
            source::from_registry(registry, r, &req.platforms, &req.cache, reporter).await?,
            req.cache.clone(),
        ),
        ScanInput::Bundle(path) => {
            fs_err::create_dir_all(&req.spool_parent).map_err(|source| RunError::Spool {
                path: req.spool_parent.clone(),
                source,
            })?;
            spool = tempfile::Builder::new()
                .prefix(".airlock-scan-")
                .tempdir_in(&req.spool_parent)
                .map_err(|source| RunError::Spool {
                    path: req.spool_parent.clone(),
                    source,
                })?;
            let targets = tokio::task::block_in_place(|| {
                source::from_bundle(path, &req.platforms, spool.path(), reporter)
            })?;
            (targets, spool.path().to_path_buf())
        }
    };
    let images: Vec<ImageResult> = match (&trivy, &db) {
        (Some(bin), _) => tokio::task::block_in_place(|| {
            run_trivy(
                bin,
                &sourced.targets,
                source::BlobDir {
                    dir: &dir,
                    checked: &sourced.checked,
                },
                &req.policy,
                &vex,
                req.now,
                reporter,
            )
        })?,
        (None, Some(db)) => {
            let ctx = ScanContext {
                policy: &req.policy,
                vex: &vex,
                db,
                now: req.now,
                sbom_time: req.now,
                limits: Limits::default(),
            };
            let blobs = source::BlobDir {
                dir: &dir,
                checked: &sourced.checked,
            };
            tokio::task::block_in_place(|| scan_all(&sourced.targets, blobs, &ctx, reporter))?
                .into_iter()
                .map(ImageResult::from)
                .collect()
        }
        (None, None) => return Err(RunError::NoDatabase),
    };
    Ok(ScanOutcome {
        passed: images.iter().all(|i| i.gate.passed),
        database: db.as_ref().map(|db| DatabaseUsed {
            path: db.path().to_path_buf(),
            digest: db.digest().clone(),
            built_at: db.header().built_at.clone(),
        }),
        images,
    })
}

/// Runs Trivy on each target (an OCI layout next to the blobs, deleted afterwards) and judges
/// its report with `policy`: a phase counted in images.
pub fn run_trivy(
    bin: &Path,
    targets: &[super::image::Target],
    blobs: source::BlobDir<'_>,
    policy: &ScanPolicy,
    vex: &[super::vex::VexDocument],
    now: SystemTime,
    reporter: &dyn Reporter,
) -> Result<Vec<ImageResult>, RunError> {
    reporter.phase_items("trivy", targets.len() as u64);
    let out = targets
        .iter()
        .map(|t| trivy_one(bin, t, blobs, policy, vex, now, reporter))
        .collect::<Result<Vec<_>, _>>()?;
    reporter.finish_phase();
    Ok(out)
}

/// Runs Trivy on one target whose blobs are in `blobs` and judges its report with `policy`;
/// the current phase advances by one image when it is done. Trivy reads the files itself, so
/// those this run did not check on the way in are checked first.
pub fn trivy_one(
    bin: &Path,
    t: &super::image::Target,
    blobs: source::BlobDir<'_>,
    policy: &ScanPolicy,
    vex: &[super::vex::VexDocument],
    now: SystemTime,
    reporter: &dyn Reporter,
) -> Result<ImageResult, RunError> {
    blobs.check(t.config.iter().chain(t.layers.iter()))?;
    let layout = tempfile::Builder::new()
        .prefix(".airlock-trivy-")
        .tempdir_in(blobs.dir)
        .map_err(|source| RunError::Spool {
            path: blobs.dir.to_path_buf(),
            source,
        })?;
    super::trivy::write_layout(layout.path(), t, |d| blobs.file(d))?;
    let report = super::trivy::run(bin, layout.path(), &t.name)?;
    let verdict = super::gate::judge_report(policy, vex, t, &report, now)?;
    let packages = report
        .get("Results")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("Packages").and_then(serde_json::Value::as_array))
        .map(Vec::len)
        .sum();
    let os = report.pointer("/Metadata/OS").map(|o| {
        format!(
            "{} {}",
            o.get("Family").and_then(|v| v.as_str()).unwrap_or_default(),
            o.get("Name").and_then(|v| v.as_str()).unwrap_or_default()
        )
        .trim()
        .to_string()
    });
    reporter.advance(1);
    Ok(ImageResult {
        image: t.name.clone(),
        platform: t.platform.as_ref().map(|p| p.to_string()),
        digest: t.digest.clone(),
        summary: ScanSummary::new(os, packages, &verdict, None),
        gate: GateResult {
            passed: verdict.passed,
            reasons: verdict.reasons.clone(),
            warnings: verdict.warnings.clone(),
        },
        report,
        decisions: verdict.decisions,
    })
}

/// Scans every target whose layers are in `blobs`: a phase of their layers' bytes.
pub fn scan_all(
    targets: &[super::image::Target],
    blobs: source::BlobDir<'_>,
    ctx: &ScanContext<'_>,
    reporter: &dyn Reporter,
) -> Result<Vec<ImageScan>, ScanError> {
    let total: u64 = targets
        .iter()
        .flat_map(|t| t.layers.iter())
        .map(|d| d.size)
        .sum();
    reporter.phase("scan", total);
    let out = targets
        .iter()
        .map(|t| scan_one(t, blobs, ctx, reporter))
        .collect::<Result<Vec<_>, _>>();
    reporter.finish_phase();
    out
}

/// Scans one target whose layers are in `blobs`, as a task of its layers' bytes; the current
/// phase advances by them when it is done.
pub fn scan_one(
    t: &super::image::Target,
    blobs: source::BlobDir<'_>,
    ctx: &ScanContext<'_>,
    reporter: &dyn Reporter,
) -> Result<ImageScan, ScanError> {
    let bytes: u64 = t.layers.iter().map(|d| d.size).sum();
    let id = format!("scan {} {}", t.name, t.digest);
    reporter.task_start(&id, &format!("scan {}", t.name), bytes);
    let scanned = scan_image(t, blobs, ctx);
    if scanned.is_ok() {
        reporter.task_advance(&id, bytes);
    }
    reporter.task_done(&id);
    if scanned.is_ok() {
        reporter.advance(bytes);
        reporter.item(&format!("scanned {}", t.name));
    }
    scanned
}
