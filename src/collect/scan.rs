//! Scanning at collect: when the lock has a `scan:` policy, every carried image platform is
//! scanned as soon as its blobs are in the cache (while the rest download: `scan_stage`) and
//! before the bundle is written. A failing gate stops collect (no bundle); a passing one adds,
//! per image and platform, the CycloneDX SBOM and the scan report as OCI artifacts referring to
//! the platform manifest, with the counts in `airlock.json`. With `--carry-db` the database
//! itself travels as an OCI artifact.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use super::scan_stage::download_and_scan;
use super::{CollectError, CollectOptions, Plan};
use crate::bundle::writer::BlobData;
use crate::bundle::{Artifact, ArtifactKind, BlobEntry, Origin};
use crate::lock::Lock;
use crate::oci::{media, Digest, ManifestKind, ParsedManifest, RepoName, Tag};
use crate::progress::Reporter;
use crate::registry::Registry;
use crate::scan::evidence::{self, BuiltArtifact, SubjectRef, DB_ARTIFACT_TYPE, EMPTY_CONFIG};
use crate::scan::flatten::Limits;
use crate::scan::image::{
    config_platform, ScanContext, ScanSummary, Target, REPORT_ARTIFACT_TYPE, SBOM_ARTIFACT_TYPE,
};
use crate::scan::pins;
use crate::scan::run::{open_database, scan_one, trivy_one, Scanner};
use crate::scan::source::{is_scannable_child, BlobDir};

/// One image platform scanned at collect, for the collect report.
#[derive(Debug, Clone, Serialize)]
pub struct CollectedScan {
    /// The image.
    pub image: String,
    /// Its platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The platform manifest.
    pub digest: Digest,
    /// The counts.
    pub summary: ScanSummary,
    /// Warnings that did not fail the gate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn scan_err(e: &dyn std::error::Error) -> CollectError {
    CollectError::Scan(crate::error_chain(e))
}

/// Airlock scans that run at once in collect: two keep both cores busy once the downloads are
/// done, while each scan's memory stays bounded by its limits.
const SCANS_AT_ONCE: usize = 2;

/// The images (platforms) of the plan, layers bottom first. A single-platform image's platform
/// is in its config, read when the scan starts ([`with_platform`]).
fn targets(plan: &Plan) -> Vec<Target> {
    let parse = |d: &Digest| -> Option<ParsedManifest> {
        let (bytes, mt) = plan.manifests.get(d)?;
        ParsedManifest::parse(bytes, Some(mt)).ok()
    };
    let mut out = Vec::new();
    for a in &plan.artifacts {
        if a.kind != ArtifactKind::Image || a.artifact_type.is_some() {
            continue;
        }
        let Some(root) = parse(&a.digest) else {
            continue;
        };
        if root.kind == ManifestKind::Index {
            for c in a.children.iter().filter(|c| c.included) {
                if !is_scannable_child(c.platform.as_ref(), &c.media_type) {
                    continue;
                }
                if let (Some(m), Some(raw)) = (parse(&c.digest), plan.manifests.get(&c.digest)) {
                    out.push(Target {
                        name: a.source.clone(),
                        digest: c.digest.clone(),
                        index: Some(a.digest.clone()),
                        platform: c.platform.clone(),
                        layers: m.layers,
                        config: m.config,
                        manifest: raw.clone(),
                    });
                }
            }
        } else {
            out.push(Target {
                name: a.source.clone(),
                digest: a.digest.clone(),
                index: None,
                platform: None,
                layers: root.layers,
                config: root.config,
                manifest: plan.manifests.get(&a.digest).cloned().unwrap_or_default(),
            });
        }
    }
    out
}

/// The config `t`'s platform must be read from: a single-platform image's, which has no index
/// entry to say it.
fn platform_config(t: &Target) -> Option<&crate::oci::Descriptor> {
    match (&t.index, &t.platform, &t.config) {
        (None, None, Some(c)) => Some(c),
        _ => None,
    }
}

/// `t` with its platform: from the index, or else from its config in `blobs` (checked against
/// its digest first, unless this run downloaded it: the scan reads only verified blobs).
fn with_platform(t: &Target, blobs: BlobDir<'_>) -> Result<Target, CollectError> {
    let mut t = t.clone();
    if let Some(c) = platform_config(&t) {
        let path = blobs.file(&c.digest);
        let bytes =
            crate::io::read_capped(&path, c.size, "image config").map_err(|e| scan_err(&e))?;
        let actual = match blobs.checked.contains(&c.digest) {
            true => c.digest.clone(),
            false => Digest::of(&bytes),
        };
        if actual != c.digest {
            return Err(CollectError::Scan(format!(
                "{}: config {} in the cache at `{}` hashes to {actual}; delete the cache and collect again",
                t.name,
                c.digest,
                path.display()
            )));
        }
        t.platform = config_platform(&bytes);
    }
    Ok(t)
}

/// The blobs this run checks against their digest before the writer packs them, so it need
/// not hash them again: those downloaded, the configs platforms are read from, and every layer
/// scanned (airlock's scanner streams each through its digest check; Trivy's are checked before
/// it reads them: see [`trivy_one`]).
fn checked_this_run(downloading: &HashSet<Digest>, targets: &[Target]) -> HashSet<Digest> {
    let configs = targets.iter().filter_map(platform_config);
    let layers = targets.iter().flat_map(|t| t.layers.iter());
    downloading
        .iter()
        .cloned()
        .chain(configs.chain(layers).map(|d| d.digest.clone()))
        .collect()
}

/// Adds one built artifact (manifest, empty config, content blob) to the plan.
fn add_artifact(plan: &mut Plan, built: &BuiltArtifact, mut artifact: Artifact) {
    plan.manifests.insert(
        built.digest.clone(),
        (built.manifest.clone(), media::OCI_MANIFEST.to_string()),
    );
    let empty = Bytes::from_static(EMPTY_CONFIG);
    for (digest, bytes, mt) in [
        (
            Digest::of(EMPTY_CONFIG),
            empty,
            media::OCI_EMPTY.to_string(),
        ),
        (
            built.blob_digest.clone(),
            built.blob.clone(),
            built.artifact_type.clone(),
        ),
    ] {
        let entry = BlobEntry {
            digest: digest.clone(),
            size: bytes.len() as u64,
            media_type: mt,
        };
        plan.local
            .entry(digest)
            .or_insert((BlobData::Memory(bytes), entry));
    }
    artifact.size = built.size();
    plan.artifacts.push(artifact);
}

fn referrer(image: &Artifact, built: &BuiltArtifact, target: &Target) -> Artifact {
    let what = if built.artifact_type == SBOM_ARTIFACT_TYPE {
        "SBOM"
    } else {
        "scan report"
    };
    let platform = target
        .platform
        .as_ref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    Artifact {
        kind: ArtifactKind::Referrer,
        // For people and the ledger: what it is and what it describes.
        source: format!("{what} of {}{platform}", image.source),
        registry: image.registry.clone(),
        repository: image.repository.clone(),
        tag: None,
        digest: built.digest.clone(),
        media_type: media::OCI_MANIFEST.into(),
        platforms: Vec::new(),
        children: Vec::new(),
        size: 0,
        verification: Vec::new(),
        subject: Some(target.digest.clone()),
        artifact_type: Some(built.artifact_type.clone()),
        scan: None,
        origin: Origin::Collect,
    }
}

/// Scans every image of the plan against the lock's policy (nothing when it has none), fails
/// on a failing gate, and adds the evidence artifacts. `created` is the bundle's creation time.
/// Also returns the blobs whose digest this run has checked (downloaded, or streamed through
/// the scan), which the writer need not hash again.
pub(super) async fn scan_plan(
    lock: &Lock,
    plan: &mut Plan,
    registry: &Registry,
    opts: &CollectOptions,
    created: &str,
    reporter: &dyn Reporter,
) -> Result<(Vec<CollectedScan>, HashSet<Digest>), CollectError> {
    let Some(policy) = &lock.scan else {
        if opts.scan_db.is_some() || opts.carry_db {
            return Err(CollectError::Scan(
                "--db/--carry-db given but the lock has no `scan:` policy (add one to the spec and lock again)".into(),
            ));
        }
        return Ok((Vec::new(), HashSet::new()));
    };
    policy.validate().map_err(|e| scan_err(&e))?;
    // Everything local is checked before anything is pulled.
    let trivy = match opts.scanner {
        Scanner::Trivy => {
            if opts.carry_db || opts.scan_db.is_some() {
                return Err(CollectError::Scan(
                    "--db/--carry-db are for airlock's scanner; Trivy uses its own database".into(),
                ));
            }
            Some(crate::scan::trivy::find().map_err(|e| scan_err(&e))?)
        }
        Scanner::Airlock => None,
    };
    let db = match trivy {
        Some(_) => None,
        None => Some(
            open_database(opts.scan_db.as_deref(), policy, &opts.base_dir)
                .map_err(|e| scan_err(&e))?,
        ),
    };
    if let Some(db) = &db {
        pins::check_database(&lock.scan_files, policy, db.path(), db.digest())?;
    }
    let vex = pins::load_vex(&lock.scan_files, policy, &opts.base_dir)?;

    // Each image is scanned from the cache as soon as its blobs are there, while the rest
    // still download (see `scan_stage`); the phase is the scans.
    let missing = plan.not_in_cache(&opts.cache);
    let downloading: HashSet<Digest> = missing.iter().map(|(d, _, _)| d.clone()).collect();
    let targets = targets(plan);
    // A download checks its blob as it writes it: the scan reads those with a length check
    // only, and the writer need not hash them either.
    let blobs = BlobDir {
        dir: &opts.cache,
        checked: &downloading,
    };
    let checked = checked_this_run(&downloading, &targets);
    let now = SystemTime::now();
    let cache = opts.cache.as_path();
    let found: Vec<Evidence> = match (&trivy, &db) {
        (Some(bin), _) => {
            reporter.phase_items("trivy", targets.len() as u64);
            // One Trivy at a time: each is heavy, and they share Trivy's own cache.
            let scan = |t: &Target| -> Result<Evidence, CollectError> {
                let target = with_platform(t, blobs)?;
                let r = trivy_one(bin, &target, blobs, policy, &vex, now, reporter)
                    .map_err(|e| scan_err(&e))?;
                Ok(Evidence {
                    target,
                    reasons: r.gate.reasons,
                    warnings: r.gate.warnings,
                    summary: r.summary,
                    sbom: None,
                    report: json_bytes(&r.report),
                })
            };
            download_and_scan(
                registry, cache, missing, opts.jobs, &targets, 1, &scan, reporter,
            )?
        }
        (None, Some(db)) => {
            reporter.phase(
                "scan",
                targets
                    .iter()
                    .flat_map(|t| t.layers.iter())
                    .map(|d| d.size)
                    .sum(),
            );
            let ctx = ScanContext {
                policy,
                vex: &vex,
                db,
                now,
                sbom_time: humantime::parse_rfc3339(created).unwrap_or(SystemTime::UNIX_EPOCH),
                limits: Limits::default(),
            };
            let scan = |t: &Target| -> Result<Evidence, CollectError> {
                let target = with_platform(t, blobs)?;
                let s = scan_one(&target, blobs, &ctx, reporter).map_err(|e| scan_err(&e))?;
                Ok(Evidence {
                    summary: s.summary(),
                    sbom: Some(json_bytes(&s.sbom)),
                    report: json_bytes(&s.report),
                    reasons: s.verdict.reasons,
                    warnings: s.verdict.warnings,
                    target,
                })
            };
            download_and_scan(
                registry,
                cache,
                missing,
                opts.jobs,
                &targets,
                SCANS_AT_ONCE,
                &scan,
                reporter,
            )?
        }
        (None, None) => return Err(CollectError::Scan("no vulnerability database".into())),
    };
    reporter.finish_phase();

    let failures: Vec<String> = found
        .iter()
        .flat_map(|e| {
            let image = match &e.target.platform {
                Some(p) => format!("{} ({p})", e.target.name),
                None => e.target.name.clone(),
            };
            e.reasons.iter().map(move |r| format!("{image}: {r}"))
        })
        .collect();
    if !failures.is_empty() {
        return Err(CollectError::ScanGate { failures });
    }

    let images: HashMap<Digest, Artifact> = plan
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Image)
        .map(|a| (a.digest.clone(), a.clone()))
        .collect();
    let mut out = Vec::new();
    for e in found {
        let t = &e.target;
        let root = t.index.as_ref().unwrap_or(&t.digest);
        let Some(image) = images.get(root) else {
            continue;
        };
        let Some((bytes, mt)) = plan.manifests.get(&t.digest) else {
            continue;
        };
        let subject = SubjectRef {
            digest: t.digest.clone(),
            media_type: mt.clone(),
            size: bytes.len() as u64,
        };
        if let Some(sbom) = e.sbom {
            let sbom = evidence::artifact(SBOM_ARTIFACT_TYPE, sbom, Some(&subject), created);
            add_artifact(plan, &sbom, referrer(image, &sbom, t));
        }
        let report = evidence::artifact(REPORT_ARTIFACT_TYPE, e.report, Some(&subject), created);
        let mut r = referrer(image, &report, t);
        r.scan = Some(e.summary.clone());
        add_artifact(plan, &report, r);
        out.push(CollectedScan {
            image: t.name.clone(),
            platform: t.platform.as_ref().map(|p| p.to_string()),
            digest: t.digest.clone(),
            summary: e.summary,
            warnings: e.warnings,
        });
    }

    if let (true, Some(db)) = (opts.carry_db, &db) {
        let path = db.path().to_path_buf();
        let bytes = crate::io::read_capped(&path, crate::scan::db::MAX_DB_BYTES, "database")
            .map_err(|e| CollectError::Io {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let bytes = Bytes::from(bytes);
        if &Digest::of(&bytes) != db.digest() {
            return Err(CollectError::Scan(format!(
                "vulnerability database `{}` changed while collect was running",
                path.display()
            )));
        }
        let built = evidence::artifact(DB_ARTIFACT_TYPE, bytes, None, created);
        let tag = format!(
            "db-{}",
            db.header()
                .built_at
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(64)
                .collect::<String>()
        );
        let tag = Tag::parse(&tag).map_err(|source| CollectError::Name {
            artifact: format!("vulnerability database `{}`", path.display()),
            source,
        })?;
        add_artifact(
            plan,
            &built,
            Artifact {
                kind: ArtifactKind::Image,
                source: format!("vulnerability database {}", db.digest()),
                registry: None,
                repository: RepoName::parse("airlock/vulndb")
                    .expect("`airlock/vulndb` is a repository name"),
                tag: Some(tag),
                digest: built.digest.clone(),
                media_type: media::OCI_MANIFEST.into(),
                platforms: Vec::new(),
                children: Vec::new(),
                size: 0,
                verification: Vec::new(),
                subject: None,
                artifact_type: Some(DB_ARTIFACT_TYPE.into()),
                scan: None,
                origin: Origin::Collect,
            },
        );
    }
    Ok((out, checked))
}

/// One image platform's scan, whichever scanner made it.
struct Evidence {
    target: Target,
    reasons: Vec<String>,
    warnings: Vec<String>,
    summary: ScanSummary,
    /// The CycloneDX SBOM (airlock's scanner only).
    sbom: Option<Bytes>,
    /// The report (airlock's, or Trivy's own JSON).
    report: Bytes,
}

/// Pretty JSON with a final newline: how SBOMs and reports are stored.
fn json_bytes<T: Serialize>(v: &T) -> Bytes {
    let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Descriptor;

    fn desc(name: &str) -> Descriptor {
        Descriptor {
            media_type: media::OCI_LAYER_GZIP.into(),
            digest: Digest::of(name.as_bytes()),
            size: 1,
            urls: Vec::new(),
            platform: None,
            annotations: Default::default(),
            artifact_type: None,
        }
    }

    /// Every layer scanned counts as checked (both scanners check it before reading it), a
    /// config only when the platform is read from it, downloads always.
    #[test]
    fn checked_this_run_trusts_only_what_is_hashed() {
        let single = Target {
            name: "single".into(),
            digest: Digest::of(b"m1"),
            index: None,
            platform: None,
            layers: vec![desc("cached layer")],
            config: Some(desc("single config")),
            manifest: Default::default(),
        };
        let child = Target {
            name: "child".into(),
            digest: Digest::of(b"m2"),
            index: Some(Digest::of(b"index")),
            platform: Some("linux/arm64".parse().expect("platform")),
            layers: vec![desc("fresh layer")],
            config: Some(desc("child config")),
            manifest: Default::default(),
        };
        let downloading: HashSet<Digest> = [desc("fresh layer").digest].into();
        let d = |n: &str| desc(n).digest;
        assert_eq!(
            checked_this_run(&downloading, &[single, child]),
            [d("fresh layer"), d("single config"), d("cached layer")].into(),
            "the child's config (platform from the index, not read) is left to the writer"
        );
    }
}
