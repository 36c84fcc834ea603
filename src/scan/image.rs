//! One image (one platform) scanned end to end: its layers, in layer order, streamed from blob
//! files through [`super::flatten`] (each layer's digest and size checked as it is read), then
//! inventory, matching, the policy gate, the Trivy-compatible report and the CycloneDX SBOM.
//!
//! The layers are read from files named by digest (the collect cache, or a spool directory a
//! bundle's layers were copied into) because flattening needs them bottom first while a
//! registry or a bundle delivers them in another order; a file is only ever read as a stream.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::db::{Database, DbError};
use super::evidence::DatabaseRecord;
use super::flatten::{Compression, Layer, Limits};
use super::matcher::{self, Matches};
use super::osv::Severity;
use super::policy::{self, PolicyError, ScanPolicy, Verdict};
use super::report::{self, Report};
use super::sbom;
use super::source::BlobDir;
use super::vex::{ImageContext, VexDocument};
use super::{Inventory, InventoryError};
use crate::oci::digest::CheckedReader;
use crate::oci::{Descriptor, Digest, Platform};

/// The artifact type of the CycloneDX SBOM attached to a platform manifest.
pub const SBOM_ARTIFACT_TYPE: &str = "application/vnd.cyclonedx+json";
/// The artifact type of airlock's scan report (the Trivy-compatible JSON of [`report`]).
pub const REPORT_ARTIFACT_TYPE: &str = "application/vnd.airlock.scan-report.v1+json";

/// One image manifest to scan.
#[derive(Debug, Clone)]
pub struct Target {
    /// The image reference, for people and the report (`registry/repo:tag`).
    pub name: String,
    /// The platform manifest's digest (what the SBOM and report describe).
    pub digest: Digest,
    /// The index it was reached through, if any (VEX statements may name it).
    pub index: Option<Digest>,
    /// Its platform, when known (from the index or the config).
    pub platform: Option<Platform>,
    /// Its layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// Its config (what `--scanner trivy` needs besides the layers).
    pub config: Option<Descriptor>,
    /// The manifest's bytes and media type, exactly as carried.
    pub manifest: (bytes::Bytes, String),
}

/// Everything the gate needs besides the image.
pub struct ScanContext<'a> {
    /// The policy.
    pub policy: &'a ScanPolicy,
    /// Its VEX documents, loaded.
    pub vex: &'a [VexDocument],
    /// The vulnerability database.
    pub db: &'a Database,
    /// The time allow entries and the database age are judged at.
    pub now: SystemTime,
    /// The time written into SBOMs (the lock's creation time at collect: reproducible).
    pub sbom_time: SystemTime,
    /// Flattening limits.
    pub limits: Limits,
}

/// Why an image could not be scanned. Every variant names the image.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A layer whose media type is not a filesystem layer airlock can read.
    #[error("{image}: layer {layer} has media type `{media_type}`, which is not a tar layer airlock can scan")]
    UnsupportedLayer {
        /// The image.
        image: String,
        /// The layer digest.
        layer: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A layer's blob file cannot be opened.
    #[error("{image}: layer {layer}: `{path}`: {source}")]
    Open {
        /// The image.
        image: String,
        /// The layer digest.
        layer: Digest,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The layers cannot be flattened or the package databases parsed.
    #[error("{image}: {source}")]
    Inventory {
        /// The image.
        image: String,
        /// The error.
        source: InventoryError,
    },
    /// The vulnerability database failed during lookups.
    #[error("{image}: {source}")]
    Db {
        /// The image.
        image: String,
        /// The error.
        source: DbError,
    },
    /// The policy cannot be applied.
    #[error("{image}: {source}")]
    Policy {
        /// The image.
        image: String,
        /// The error.
        source: PolicyError,
    },
}

/// Findings counted by severity (active ones: suppressed findings are counted apart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityCounts {
    /// CRITICAL.
    pub critical: usize,
    /// HIGH.
    pub high: usize,
    /// MEDIUM.
    pub medium: usize,
    /// LOW.
    pub low: usize,
    /// UNKNOWN.
    pub unknown: usize,
}

impl SeverityCounts {
    fn add(&mut self, s: Severity) {
        match s {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
            Severity::Unknown => self.unknown += 1,
        }
    }
}

/// What one image's scan amounts to, small enough for `airlock.json` and the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanSummary {
    /// The OS (`alpine 3.18.0`), if detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Packages inventoried.
    pub packages: usize,
    /// Active findings by severity.
    pub findings: SeverityCounts,
    /// Findings suppressed by VEX or allow entries.
    pub suppressed: usize,
    /// Whether the gate passed.
    pub passed: bool,
    /// The database the packages were matched against (none for `--scanner trivy`, whose
    /// database is Trivy's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseRecord>,
}

/// One image's scan.
#[derive(Debug, Clone)]
pub struct ImageScan {
    /// What was scanned.
    pub target: Target,
    /// Its packages.
    pub inventory: Inventory,
    /// Its matches.
    pub matches: Matches,
    /// The gate's decision.
    pub verdict: Verdict,
    /// The Trivy-compatible report.
    pub report: Report,
    /// The CycloneDX SBOM.
    pub sbom: serde_json::Value,
    /// The database used.
    pub database: DatabaseRecord,
}

impl ScanSummary {
    /// Counts a verdict's decisions: active findings by severity, and suppressed ones.
    pub fn new(
        os: Option<String>,
        packages: usize,
        verdict: &Verdict,
        database: Option<DatabaseRecord>,
    ) -> ScanSummary {
        let mut findings = SeverityCounts::default();
        let mut suppressed = 0;
        for d in &verdict.decisions {
            if d.suppressed.is_some() {
                suppressed += 1;
            } else {
                findings.add(d.finding.severity);
            }
        }
        ScanSummary {
            os,
            packages,
            findings,
            suppressed,
            passed: verdict.passed,
            database,
        }
    }
}

impl ImageScan {
    /// The counts for tables, `airlock.json` and the ledger.
    pub fn summary(&self) -> ScanSummary {
        let os = self.inventory.os.as_ref().map(|o| {
            format!(
                "{} {}",
                o.id,
                o.version_id
                    .clone()
                    .or(o.release.clone())
                    .unwrap_or_default()
            )
            .trim()
            .to_string()
        });
        ScanSummary::new(
            os,
            self.inventory.packages.len(),
            &self.verdict,
            Some(self.database.clone()),
        )
    }
}

/// The last path component of a repository (`alpine` for `docker.io/library/alpine:3.18`), what
/// VEX `pkg:oci/<name>` products name.
fn short_name(name: &str) -> Option<String> {
    let no_digest = name.split('@').next().unwrap_or(name);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let repo = last.split(':').next().unwrap_or(last);
    (!repo.is_empty()).then(|| repo.to_string())
}

/// Scans one image whose layers are files in `blobs`. Layers are opened and streamed bottom
/// first, each checked against its descriptor: its size always, its digest unless this run
/// wrote the file through a digest check already.
pub fn scan_image(
    target: &Target,
    blobs: BlobDir<'_>,
    ctx: &ScanContext<'_>,
) -> Result<ImageScan, ScanError> {
    let image = || match &target.platform {
        Some(p) => format!("{} ({p})", target.name),
        None => target.name.clone(),
    };
    let mut layers = Vec::with_capacity(target.layers.len());
    for d in &target.layers {
        let compression = Compression::from_media_type(&d.media_type).ok_or_else(|| {
            ScanError::UnsupportedLayer {
                image: image(),
                layer: d.digest.clone(),
                media_type: d.media_type.clone(),
            }
        })?;
        let path = blobs.file(&d.digest);
        let file = fs_err::File::open(&path).map_err(|source| ScanError::Open {
            image: image(),
            layer: d.digest.clone(),
            path: path.clone(),
            source,
        })?;
        let file = io::BufReader::with_capacity(1 << 20, file);
        let reader = if blobs.checked.contains(&d.digest) {
            CheckedReader::already_checked(file, d.digest.clone(), d.size)
        } else {
            CheckedReader::new(file, d.digest.clone(), d.size)
        };
        layers.push(Layer {
            name: d.digest.to_string(),
            compression,
            reader,
        });
    }
    let inventory =
        super::inventory_layers(layers, ctx.limits).map_err(|source| ScanError::Inventory {
            image: image(),
            source,
        })?;
    evaluate_inventory(target, inventory, ctx)
}

/// Matches, gates and reports an inventory already taken (from layers, or from a carried SBOM).
pub fn evaluate_inventory(
    target: &Target,
    inventory: Inventory,
    ctx: &ScanContext<'_>,
) -> Result<ImageScan, ScanError> {
    let image = || match &target.platform {
        Some(p) => format!("{} ({p})", target.name),
        None => target.name.clone(),
    };
    let matches = matcher::match_inventory(&inventory, ctx.db).map_err(|source| ScanError::Db {
        image: image(),
        source,
    })?;
    let image_ctx = ImageContext {
        digests: std::iter::once(target.digest.clone())
            .chain(target.index.clone())
            .collect(),
        name: short_name(&target.name),
    };
    let verdict = policy::evaluate(
        &matches,
        ctx.policy,
        ctx.vex,
        &image_ctx,
        Some(ctx.db),
        ctx.now,
    )
    .map_err(|source| ScanError::Policy {
        image: image(),
        source,
    })?;
    let report = report::build(&target.name, &inventory, &matches, &verdict, Some(ctx.db));
    let sbom = sbom::cyclonedx(
        &sbom::Subject {
            name: &target.name,
            digest: &target.digest,
            platform: target.platform.as_ref(),
        },
        &inventory,
        ctx.sbom_time,
    );
    Ok(ImageScan {
        target: target.clone(),
        inventory,
        matches,
        verdict,
        report,
        sbom,
        database: DatabaseRecord {
            digest: ctx.db.digest().clone(),
            built_at: ctx.db.header().built_at.clone(),
        },
    })
}

/// The platform an image config declares (`os`, `architecture`, `variant`), if it is JSON.
pub fn config_platform(config: &[u8]) -> Option<Platform> {
    #[derive(serde::Deserialize)]
    struct Cfg {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let c: Cfg = serde_json::from_slice(config).ok()?;
    Some(Platform {
        os: c.os?,
        architecture: c.architecture?,
        variant: c.variant.unwrap_or_default(),
    })
}

/// Layer descriptors of several targets, deduplicated: what must be on disk to scan them.
pub fn layers_needed(targets: &[Target]) -> BTreeMap<Digest, Descriptor> {
    targets
        .iter()
        .flat_map(|t| t.layers.iter())
        .map(|d| (d.digest.clone(), d.clone()))
        .collect()
}
