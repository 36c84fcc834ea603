//! Regular scans of what is already inside: `airlock rescan` re-judges every image the ledger
//! admitted against a (newer) database, from the SBOM collect made and the ledger recorded at
//! import (the copy in the ledger's evidence store, else the internal registry's referrer with
//! that very content: the `sha256-<hex>` referrers fallback tag the importer keeps, else the
//! registry's referrers API) or, where none was recorded, from the image's layers pulled from
//! the internal registry. A publisher's own SBOM referrer is never used. What changed since the
//! previous rescan (new and fixed findings per image) comes from that rescan's evidence file,
//! which the new rescan entry references in turn (`docs/LEDGER.md`, rescan entries).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::image::{self, ImageScan, ScanContext, ScanError, Target, SBOM_ARTIFACT_TYPE};
use super::source::{self, SourceError};
use crate::ledger::{ArtifactRecord, Entry, EntryError, EvidenceRef, Outcome, RescanRecord};
use crate::oci::{media, Digest, ManifestError, ManifestKind, ParsedManifest};
use crate::progress::NoProgress;
use crate::reference::Reference;
use crate::registry::referrers::Referrers;
use crate::registry::{Registry, RegistryError, Repo};

/// The evidence kind of a rescan's findings file.
pub const FINDINGS_EVIDENCE: &str = "rescan-findings";
/// Media type of that file.
pub const FINDINGS_MEDIA_TYPE: &str = "application/vnd.airlock.rescan-findings.v1+json";
/// The largest carried SBOM read.
const MAX_SBOM_BYTES: u64 = 64 * 1024 * 1024;

/// Why a rescan could not run.
#[derive(Debug, thiserror::Error)]
pub enum RescanError {
    /// The ledger's entries could not be read.
    #[error("ledger `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An entry does not parse.
    #[error("ledger `{path}`: entry {index}: {source}")]
    Entry {
        /// The entries file.
        path: PathBuf,
        /// Its line number from 0.
        index: usize,
        /// Why.
        source: EntryError,
    },
    /// A ledger evidence file (the previous rescan's findings, a stored SBOM) is unusable.
    #[error("ledger evidence `{path}`: {why}")]
    Evidence {
        /// The evidence file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// An admitted image's reference does not parse.
    #[error("ledger entry {index}: target `{target}` is not an image reference: {why}")]
    Reference {
        /// The entry.
        index: u64,
        /// The reference.
        target: String,
        /// Why.
        why: String,
    },
    /// The registry failed.
    #[error("{image}: {source}")]
    Registry {
        /// The image.
        image: String,
        /// The error.
        source: RegistryError,
    },
    /// A manifest does not parse.
    #[error("{image}: {source}")]
    Manifest {
        /// The image.
        image: String,
        /// The error.
        source: ManifestError,
    },
    /// The carried SBOM is unusable.
    #[error("{image}: carried SBOM {digest}: {why}")]
    Sbom {
        /// The image.
        image: String,
        /// The SBOM blob or manifest.
        digest: String,
        /// Why.
        why: String,
    },
    /// Pulling the layers failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Scanning failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// An image the ledger admitted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Admitted {
    /// Where it was pushed (`registry/prefix/repo:tag`).
    pub target_ref: String,
    /// Its digest (an index or a manifest).
    pub digest: Digest,
    /// The entry that admitted it.
    pub entry: u64,
}

/// Reads the complete entries of a ledger (a torn last line, an interrupted append, is not an
/// entry and is left out).
pub fn read_entries(dir: &Path) -> Result<Vec<Entry>, RescanError> {
    let path = dir.join(crate::ledger::ENTRIES);
    let io_err = |source| RescanError::Io {
        path: path.clone(),
        source,
    };
    let file = fs_err::File::open(&path).map_err(io_err)?;
    let mut out = Vec::new();
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            break;
        }
        line.pop();
        let e = Entry::from_line(&line).map_err(|source| RescanError::Entry {
            path: path.clone(),
            index: out.len(),
            source,
        })?;
        out.push(e);
    }
    Ok(out)
}

/// The images admitted by import entries under `registry` (`HOST[/PREFIX]`), each once (the
/// latest admission of a digest at a reference wins), in reference order.
pub fn admitted_images(entries: &[Entry], registry: &str) -> Vec<Admitted> {
    let base = registry.trim_end_matches('/');
    let mut out: BTreeMap<(String, Digest), u64> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.admitted()) {
        for a in &e.artifacts {
            let (Some(t), true) = (&a.target_ref, matches!(a.kind.as_str(), "image" | "index"))
            else {
                continue;
            };
            let under = t.strip_prefix(base).is_some_and(|r| r.starts_with('/'));
            let Ok(digest) = a.digest.parse::<Digest>() else {
                continue;
            };
            if under {
                out.insert((t.clone(), digest), e.index);
            }
        }
    }
    out.into_iter()
        .map(|((target_ref, digest), entry)| Admitted {
            target_ref,
            digest,
            entry,
        })
        .collect()
}

/// The active findings of one image platform, as kept between rescans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFindings {
    /// The image reference.
    pub image: String,
    /// Its platform, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `ID package@version` of every active finding.
    pub findings: BTreeSet<String>,
    /// Whether the policy passes it.
    pub passed: bool,
    /// Whether it was judged from the carried SBOM (else from its layers).
    pub from_sbom: bool,
    /// Where that SBOM was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<SbomSource>,
}

/// Where a rescan found an image's carried SBOM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SbomSource {
    /// The ledger's evidence store (stored at import).
    Ledger,
    /// The internal registry's `sha256-<hex>` referrers fallback index.
    FallbackTag,
    /// The internal registry's referrers API.
    ReferrersApi,
}

/// The SBOMs the ledger's evidence store holds, by the image platform manifest they describe
/// (from the `evidence` of admitting entries; the latest admission wins).
#[derive(Debug, Clone, Default)]
pub struct LedgerSboms {
    dir: PathBuf,
    by_subject: BTreeMap<Digest, String>,
}

impl LedgerSboms {
    /// Collects them from the entries of the ledger in `dir`.
    pub fn from_entries(dir: &Path, entries: &[Entry]) -> LedgerSboms {
        let by_subject = entries
            .iter()
            .filter(|e| e.admitted())
            .flat_map(|e| &e.evidence)
            .filter(|ev| ev.kind == super::evidence::SBOM_EVIDENCE)
            .filter_map(|ev| Some((ev.subject.as_ref()?.parse().ok()?, ev.digest.clone())))
            .collect();
        LedgerSboms {
            dir: dir.to_path_buf(),
            by_subject,
        }
    }

    /// The content digest of the SBOM the ledger recorded for `subject` at import (collect's
    /// own: import records no other), whether or not its file is here.
    fn recorded(&self, subject: &Digest) -> Option<&str> {
        self.by_subject.get(subject).map(String::as_str)
    }

    /// The SBOM stored for `subject`, read back into an inventory; `None` when the ledger has
    /// none or its file is not here (evidence may be archived elsewhere). A stored file that
    /// does not hash to its digest is an error naming it, never used.
    fn read(&self, subject: &Digest, image: &str) -> Result<Option<super::Inventory>, RescanError> {
        let Some(digest) = self.by_subject.get(subject) else {
            return Ok(None);
        };
        let Some(path) = crate::ledger::evidence_path(&self.dir, digest) else {
            return Ok(None);
        };
        let bytes = match crate::io::read_capped(&path, MAX_SBOM_BYTES, "ledger evidence") {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => {
                return Err(RescanError::Evidence {
                    path,
                    why: e.to_string(),
                })
            }
        };
        if Digest::of(&bytes).as_str() != digest {
            return Err(RescanError::Evidence {
                path,
                why: format!(
                    "does not hash to {digest}: changed or damaged (`airlock ledger verify`)"
                ),
            });
        }
        sbom_inventory(&bytes, image, digest)
    }
}

/// A rescan's findings, per platform manifest digest: the evidence file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingsDoc {
    /// The database's digest.
    pub database: String,
    /// Per platform manifest digest.
    pub images: BTreeMap<String, ImageFindings>,
}

/// What changed for one image since the previous rescan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Findings the previous rescan did not have (all of them for an image it did not see).
    pub new: Vec<String>,
    /// Findings that are gone.
    pub fixed: Vec<String>,
}

/// Per image digest, what changed; images whose findings did not change are left out.
pub fn diff(previous: Option<&FindingsDoc>, now: &FindingsDoc) -> BTreeMap<String, Change> {
    let empty = BTreeSet::new();
    let mut out = BTreeMap::new();
    for (digest, img) in &now.images {
        let before = previous
            .and_then(|p| p.images.get(digest))
            .map_or(&empty, |i| &i.findings);
        let c = Change {
            new: img.findings.difference(before).cloned().collect(),
            fixed: before.difference(&img.findings).cloned().collect(),
        };
        if !c.new.is_empty() || !c.fixed.is_empty() {
            out.insert(digest.clone(), c);
        }
    }
    out
}

/// The key a finding is tracked by between rescans.
fn finding_key(f: &super::matcher::Finding) -> String {
    format!("{} {}@{}", f.id, f.package.name, f.package.version)
}

/// What one rescan found.
#[derive(Debug)]
pub struct RescanOutcome {
    /// Every image platform, judged.
    pub scans: Vec<ImageScan>,
    /// The findings file (evidence).
    pub findings: FindingsDoc,
    /// What changed since the previous rescan.
    pub changes: BTreeMap<String, Change>,
    /// The previous rescan's entry index.
    pub previous: Option<u64>,
}

impl RescanOutcome {
    /// True when the policy passes every image.
    pub fn passed(&self) -> bool {
        self.scans.iter().all(|s| s.verdict.passed)
    }

    /// The rescan's ledger entry; `evidence` is the stored findings file.
    pub fn entry(&self, operator: &str, registry: &str, evidence: EvidenceRef) -> Entry {
        let result = if self.passed() {
            Outcome::Admitted
        } else {
            let failed: Vec<String> = self
                .scans
                .iter()
                .filter(|s| !s.verdict.passed)
                .map(|s| {
                    format!(
                        "{}: {}",
                        s.target.name,
                        s.verdict.reasons.first().cloned().unwrap_or_default()
                    )
                })
                .collect();
            Outcome::Rejected {
                reason: format!("scan policy now fails: {}", failed.join("; ")),
            }
        };
        let db = self.scans.first().map(|s| s.database.clone());
        let mut e = Entry::new(operator, &self.findings.database, registry, result);
        for s in &self.scans {
            e.artifacts.push(ArtifactRecord {
                kind: "image".into(),
                source_ref: s.target.name.clone(),
                target_ref: Some(s.target.name.clone()),
                digest: s.target.digest.to_string(),
                media_type: Some(s.target.manifest.1.clone()),
                signatures: Vec::new(),
                scan: serde_json::to_value(s.summary().findings).ok(),
            });
        }
        e.evidence.push(evidence);
        let (new, fixed) = self
            .changes
            .values()
            .fold((0, 0), |(n, f), c| (n + c.new.len(), f + c.fixed.len()));
        e.rescan = Some(RescanRecord {
            database_built_at: db.map(|d| d.built_at).unwrap_or_default(),
            images: self.scans.len() as u64,
            from_sbom: self
                .findings
                .images
                .values()
                .filter(|i| i.from_sbom)
                .count() as u64,
            findings: self
                .findings
                .images
                .values()
                .map(|i| i.findings.len() as u64)
                .sum(),
            new_findings: new as u64,
            fixed_findings: fixed as u64,
            failed: self.scans.iter().filter(|s| !s.verdict.passed).count() as u64,
            previous: self.previous,
        });
        e
    }
}

/// The previous rescan: its entry index and findings file, if the ledger has one.
pub fn previous_rescan(
    dir: &Path,
    entries: &[Entry],
) -> Result<Option<(u64, FindingsDoc)>, RescanError> {
    let Some(e) = entries.iter().rev().find(|e| e.rescan.is_some()) else {
        return Ok(None);
    };
    let Some(ev) = e.evidence.iter().find(|v| v.kind == FINDINGS_EVIDENCE) else {
        return Ok(None);
    };
    let Some(path) = crate::ledger::evidence_path(dir, &ev.digest) else {
        return Err(RescanError::Evidence {
            path: dir.join(crate::ledger::EVIDENCE),
            why: format!("`{}` is not a sha256 digest", ev.digest),
        });
    };
    let bad = |why: String| RescanError::Evidence {
        path: path.clone(),
        why,
    };
    let bytes = fs_err::read(&path).map_err(|e| bad(e.to_string()))?;
    if Digest::of(&bytes).to_string() != ev.digest {
        return Err(bad(format!("does not hash to {}", ev.digest)));
    }
    let doc = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    Ok(Some((e.index, doc)))
}

/// Re-judges every admitted image. `cache` holds downloaded SBOMs and, for images without one,
/// layers.
pub async fn rescan(
    registry: &Registry,
    images: &[Admitted],
    previous: Option<(u64, FindingsDoc)>,
    sboms: &LedgerSboms,
    cache: &Path,
    ctx: &ScanContext<'_>,
) -> Result<RescanOutcome, RescanError> {
    let mut scans = Vec::new();
    let mut doc = FindingsDoc {
        database: ctx.db.digest().to_string(),
        images: BTreeMap::new(),
    };
    fs_err::create_dir_all(cache.join("sha256")).map_err(|source| RescanError::Io {
        path: cache.to_path_buf(),
        source,
    })?;
    for a in images {
        let reference: Reference =
            a.target_ref
                .parse()
                .map_err(
                    |e: crate::reference::ReferenceError| RescanError::Reference {
                        index: a.entry,
                        target: a.target_ref.clone(),
                        why: e.to_string(),
                    },
                )?;
        let repo = reference.repo();
        let admitted: &Digest = &a.digest;
        let reg = |source| RescanError::Registry {
            image: a.target_ref.clone(),
            source,
        };
        let man = |source| RescanError::Manifest {
            image: a.target_ref.clone(),
            source,
        };
        let raw = registry.get_manifest(&repo, admitted).await.map_err(reg)?;
        let root = ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(man)?;
        // (platform manifest digest, media type, platform, index)
        let mut platforms = Vec::new();
        if root.kind == ManifestKind::Index {
            for d in &root.manifests {
                let p = d.platform.as_ref().map(|p| p.to_platform());
                if source::is_scannable_child(p.as_ref(), &d.media_type) {
                    platforms.push((d.digest.clone(), p, Some(root.digest.clone())));
                }
            }
        } else {
            platforms.push((root.digest.clone(), None, None));
        }
        for (digest, platform, index) in platforms {
            let pinned = Reference {
                digest: Some(digest.clone()),
                tag: None,
                ..reference.clone()
            };
            // Only the SBOM the ledger recorded counts; the registry may also list the
            // publisher's own CycloneDX referrers, which are never taken for it.
            let sbom = match (sboms.read(&digest, &a.target_ref)?, sboms.recorded(&digest)) {
                (Some(inv), _) => Some((inv, SbomSource::Ledger)),
                (None, Some(blob)) => {
                    let wanted = RecordedSbom {
                        subject: &digest,
                        blob,
                    };
                    registry_sbom(registry, &repo, wanted, cache, &a.target_ref).await?
                }
                (None, None) => None,
            };
            let from = sbom.as_ref().map(|(_, from)| *from);
            let scan = match sbom {
                Some((inventory, _)) => {
                    let raw = registry.get_manifest(&repo, &digest).await.map_err(reg)?;
                    let m = ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref())
                        .map_err(man)?;
                    let target = Target {
                        name: a.target_ref.clone(),
                        digest: digest.clone(),
                        index: index.clone(),
                        platform: platform.clone(),
                        layers: m.layers.clone(),
                        config: m.config.clone(),
                        manifest: (raw.bytes.clone(), m.media_type.clone()),
                    };
                    image::evaluate_inventory(&target, inventory, ctx)?
                }
                None => {
                    let mut sourced =
                        source::from_registry(registry, &pinned, &[], cache, &NoProgress).await?;
                    let mut target = sourced.targets.remove(0);
                    target.name = a.target_ref.clone();
                    target.index = index.clone();
                    if platform.is_some() {
                        target.platform = platform.clone();
                    }
                    tokio::task::block_in_place(|| {
                        let blobs = source::BlobDir {
                            dir: cache,
                            checked: &sourced.checked,
                        };
                        image::scan_image(&target, blobs, ctx)
                    })?
                }
            };
            doc.images.insert(
                digest.to_string(),
                ImageFindings {
                    image: a.target_ref.clone(),
                    platform: scan.target.platform.as_ref().map(|p| p.to_string()),
                    findings: scan
                        .verdict
                        .decisions
                        .iter()
                        .filter(|d| d.suppressed.is_none())
                        .map(|d| finding_key(&d.finding))
                        .collect(),
                    passed: scan.verdict.passed,
                    from_sbom: from.is_some(),
                    sbom: from,
                },
            );
            scans.push(scan);
        }
    }
    let changes = diff(previous.as_ref().map(|(_, d)| d), &doc);
    Ok(RescanOutcome {
        scans,
        findings: doc,
        changes,
        previous: previous.map(|(i, _)| i),
    })
}

/// The SBOM the ledger recorded for an image platform manifest.
#[derive(Debug, Clone, Copy)]
struct RecordedSbom<'a> {
    /// The platform manifest it describes.
    subject: &'a Digest,
    /// Its content blob's digest, as the ledger recorded it.
    blob: &'a str,
}

/// The recorded SBOM of a platform manifest, from the internal registry, read back into an
/// inventory: among the CycloneDX referrers listed in the `sha256-<hex>` fallback index, else
/// by the registry's referrers API, the one whose content is the blob the ledger recorded (a
/// publisher's own SBOM referrer crossed too, and is never taken). `None` when none is listed.
async fn registry_sbom(
    registry: &Registry,
    repo: &Repo,
    wanted: RecordedSbom<'_>,
    cache: &Path,
    image: &str,
) -> Result<Option<(super::Inventory, SbomSource)>, RescanError> {
    let subject = wanted.subject;
    let reg = |source| RescanError::Registry {
        image: image.to_string(),
        source,
    };
    let sboms = |ds: &[crate::oci::Descriptor]| -> Vec<Digest> {
        ds.iter()
            .filter(|d| d.artifact_type.as_deref() == Some(SBOM_ARTIFACT_TYPE))
            .map(|d| d.digest.clone())
            .collect()
    };
    let tag = crate::oci::Tag::for_subject(subject, "");
    let fallback = match registry.get_manifest(repo, &tag).await {
        Ok(raw) => {
            let index = ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(
                |source| RescanError::Manifest {
                    image: image.to_string(),
                    source,
                },
            )?;
            sboms(&index.manifests)
        }
        Err(RegistryError::Status { status, .. }) if status.as_u16() == 404 => Vec::new(),
        Err(e) => return Err(reg(e)),
    };
    let mut found = recorded_among(registry, repo, &fallback, wanted, image).await?;
    let mut from = SbomSource::FallbackTag;
    if found.is_none() {
        let api = match registry.list_referrers(repo, subject).await.map_err(reg)? {
            Referrers::Listed(ds) => sboms(&ds),
            Referrers::NoApi => Vec::new(),
        };
        found = recorded_among(registry, repo, &api, wanted, image).await?;
        from = SbomSource::ReferrersApi;
    }
    let Some(blob) = found else {
        return Ok(None);
    };
    if blob.size > MAX_SBOM_BYTES {
        return Err(sbom_err(
            image,
            blob.digest.as_str(),
            format!("{} bytes, over the {MAX_SBOM_BYTES} byte limit", blob.size),
        ));
    }
    let path = source::blob_file(cache, &blob.digest);
    registry
        .download_blob(repo, &blob.digest, blob.size, &path, &NoProgress)
        .await
        .map_err(reg)?;
    let bytes =
        fs_err::read(&path).map_err(|e| sbom_err(image, blob.digest.as_str(), e.to_string()))?;
    Ok(sbom_inventory(&bytes, image, blob.digest.as_str())?.map(|inv| (inv, from)))
}

/// Of the listed SBOM artifact manifests, the content blob of the one whose content is the
/// recorded SBOM; the others (a publisher's own) are passed over, even when they do not parse
/// (a publisher's malformed referrer must not stop the rescan of its image).
async fn recorded_among(
    registry: &Registry,
    repo: &Repo,
    listed: &[Digest],
    wanted: RecordedSbom<'_>,
    image: &str,
) -> Result<Option<crate::oci::Descriptor>, RescanError> {
    for manifest in listed {
        let raw = registry
            .get_manifest(repo, manifest)
            .await
            .map_err(|source| RescanError::Registry {
                image: image.to_string(),
                source,
            })?;
        let Ok(m) = ParsedManifest::parse(&raw.bytes, Some(media::OCI_MANIFEST)) else {
            continue;
        };
        let Some(blob) = m.layers.first() else {
            continue;
        };
        if blob.digest.as_str() != wanted.blob {
            continue;
        }
        // A listing is the registry's word; the manifest itself must say what it is about.
        if m.subject.as_ref().map(|s| &s.digest) != Some(wanted.subject) {
            return Err(sbom_err(
                image,
                manifest.as_str(),
                format!(
                    "is listed for {} but its manifest names another subject",
                    wanted.subject
                ),
            ));
        }
        return Ok(Some(blob.clone()));
    }
    Ok(None)
}

fn sbom_err(image: &str, digest: &str, why: String) -> RescanError {
    RescanError::Sbom {
        image: image.to_string(),
        digest: digest.to_string(),
        why,
    }
}

/// A carried CycloneDX SBOM (`digest` names it in errors) read back into an inventory.
fn sbom_inventory(
    bytes: &[u8],
    image: &str,
    digest: &str,
) -> Result<Option<super::Inventory>, RescanError> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| sbom_err(image, digest, e.to_string()))?;
    super::sbom::inventory_from(&json)
        .map(Some)
        .map_err(|why| sbom_err(image, digest, why))
}

/// The Prometheus text exposition (textfile collector) of a rescan.
pub fn metrics(outcome: &RescanOutcome, now: SystemTime) -> String {
    use std::fmt::Write as _;
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, rows: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let label = |s: &ImageScan| {
        format!(
            "image=\"{}\",platform=\"{}\",digest=\"{}\"",
            esc(&s.target.name),
            esc(&s
                .target
                .platform
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default()),
            s.target.digest
        )
    };
    let mut findings = Vec::new();
    let mut passed = Vec::new();
    let mut changes = Vec::new();
    for s in &outcome.scans {
        let c = s.summary().findings;
        for (sev, n) in [
            ("critical", c.critical),
            ("high", c.high),
            ("medium", c.medium),
            ("low", c.low),
            ("unknown", c.unknown),
        ] {
            findings.push((
                format!("{{{},severity=\"{sev}\"}}", label(s)),
                n.to_string(),
            ));
        }
        passed.push((
            format!("{{{}}}", label(s)),
            u8::from(s.verdict.passed).to_string(),
        ));
        let ch = outcome.changes.get(&s.target.digest.to_string());
        for (kind, n) in [
            ("new", ch.map_or(0, |c| c.new.len())),
            ("fixed", ch.map_or(0, |c| c.fixed.len())),
        ] {
            changes.push((format!("{{{},change=\"{kind}\"}}", label(s)), n.to_string()));
        }
    }
    metric(
        "airlock_rescan_findings",
        "Active findings per image platform and severity at the last rescan.",
        &findings,
    );
    metric(
        "airlock_rescan_changed_findings",
        "Findings new or fixed since the previous rescan, per image platform.",
        &changes,
    );
    metric(
        "airlock_rescan_image_passed",
        "1 when the scan policy passes the image platform, else 0.",
        &passed,
    );
    metric(
        "airlock_rescan_passed",
        "1 when the scan policy passes every image, else 0.",
        &[(String::new(), u8::from(outcome.passed()).to_string())],
    );
    metric(
        "airlock_rescan_images",
        "Image platforms re-judged by the last rescan.",
        &[(String::new(), outcome.scans.len().to_string())],
    );
    metric(
        "airlock_rescan_timestamp_seconds",
        "When the last rescan ran (Unix time).",
        &[(String::new(), secs(now).to_string())],
    );
    out
}

pub use crate::io::write_atomically;

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(images: &[(&str, &[&str])]) -> FindingsDoc {
        FindingsDoc {
            database: "sha256:00".into(),
            images: images
                .iter()
                .map(|(d, f)| {
                    (
                        d.to_string(),
                        ImageFindings {
                            findings: f.iter().map(|s| s.to_string()).collect(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn diff_new_and_fixed() {
        let before = doc(&[("a", &["CVE-1 x@1", "CVE-2 y@1"]), ("b", &["CVE-3 z@1"])]);
        let after = doc(&[
            ("a", &["CVE-1 x@1", "CVE-4 y@1"]),
            ("b", &["CVE-3 z@1"]),
            ("c", &["CVE-5 q@1"]),
        ]);
        let d = diff(Some(&before), &after);
        assert_eq!(d["a"].new, ["CVE-4 y@1"]);
        assert_eq!(d["a"].fixed, ["CVE-2 y@1"]);
        assert!(!d.contains_key("b"));
        assert_eq!(d["c"].new, ["CVE-5 q@1"]);
        assert_eq!(diff(None, &after)["b"].new, ["CVE-3 z@1"]);
    }
}
