//! The connected side: resolve a spec to a lock (`lock`), then pull everything the lock pins and
//! pack it into a bundle (`collect`).

pub mod chart;
pub mod chart_images;
pub mod discover;
pub mod scan;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::bundle::parts::{PartsError, PartsWriter, SplitReport};
use crate::bundle::writer::{write_bundle, write_stream, BlobData, Contents, WriteError};
use crate::bundle::{Artifact, ArtifactKind, BlobEntry, BundleManifest, Child, BUNDLE_FORMAT};
use crate::lock::{Lock, LockedChart, LockedChild, LockedImage, LOCK_FORMAT};
use crate::oci::{
    media, Descriptor, Digest, ManifestError, ManifestKind, ParsedManifest, Platform, RepoName, Tag,
};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError, Repo};
use crate::spec::{parse_oci_chart_ref, ChartSource, Spec};

pub use chart::ChartError;

/// What can go wrong on the connected side. Each names the artifact.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Registry trouble.
    #[error("{artifact}: {source}")]
    Registry {
        /// The artifact.
        artifact: String,
        /// The error.
        source: RegistryError,
    },
    /// A name that cannot become a repository or tag at the target.
    #[error("{artifact}: {source}")]
    Name {
        /// The artifact.
        artifact: String,
        /// The name problem.
        source: crate::oci::NameError,
    },
    /// A file from the spec's `files:` could not be carried.
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    /// The output or cache filesystem lacks room for what collect would write.
    #[error(transparent)]
    NoSpace(#[from] crate::disk::NoSpace),
    /// A manifest that cannot be carried.
    #[error("{artifact}: {source}")]
    Manifest {
        /// The artifact.
        artifact: String,
        /// The error.
        source: ManifestError,
    },
    /// Chart repository trouble.
    #[error("{artifact}: {source}")]
    Chart {
        /// The artifact.
        artifact: String,
        /// The error.
        source: ChartError,
    },
    /// A chart whose images cannot be found (it does not render, or renders a bad `image`).
    #[error("chart {chart}: {source}")]
    ChartImages {
        /// The chart as the spec wrote it.
        chart: String,
        /// What went wrong (boxed: render errors are large).
        source: Box<chart_images::ChartImagesError>,
    },
    /// The lock and what the registry serves disagree.
    #[error("{artifact}: {why}")]
    Mismatch {
        /// The artifact.
        artifact: String,
        /// What differs.
        why: String,
    },
    /// A referrer whose own manifest names another subject than the one it was listed for.
    #[error("{artifact}: referrer {referrer} is listed for {listed_for} but its manifest names {}; refused", names.as_ref().map(|d| format!("subject {d}")).unwrap_or_else(|| "no subject".into()))]
    ReferrerSubject {
        /// Where it was listed (repository and subject, or the fallback tag).
        artifact: String,
        /// The referrer's manifest digest.
        referrer: Digest,
        /// The digest it was listed for.
        listed_for: Digest,
        /// The subject its manifest names.
        names: Option<Digest>,
    },
    /// Content airlock will not carry.
    #[error("{artifact}: {why}")]
    Unsupported {
        /// The artifact.
        artifact: String,
        /// What and why.
        why: String,
    },
    /// An image's signatures do not satisfy the trust policy.
    #[error("{artifact}: {source}")]
    Untrusted {
        /// The artifact.
        artifact: String,
        /// Which rule, which digest, why (boxed: it lists every failed signature).
        source: Box<crate::trust::verify::VerifyError>,
    },
    /// The trust policy cannot be used (a key or trusted root that does not load).
    #[error("trust policy: {0}")]
    Policy(String),
    /// A spec reference that is not pinned.
    #[error("{reference} is not pinned to a digest; run `airlock lock` on the spec and collect the lockfile")]
    Unpinned {
        /// The reference.
        reference: String,
    },
    /// Writing the bundle.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Writing the bundle's parts (`--split`).
    #[error(transparent)]
    Parts(#[from] PartsError),
    /// The scan policy, database or an image scan cannot be used.
    #[error("scan: {0}")]
    Scan(String),
    /// A scan policy file that cannot be pinned, or is not what the lock pins.
    #[error(transparent)]
    ScanPin(#[from] crate::scan::pins::PinError),
    /// An image fails the lock's scan policy: every failing finding, with image, ID, package
    /// and version.
    #[error("scan gate failed, no bundle written: {}", failures.join("; "))]
    ScanGate {
        /// `image (platform): ID in package version (severity, fixed in …)` per finding.
        failures: Vec<String>,
    },
    /// Local I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The most content an attachment (signature, attestation, SBOM, referrers index) may carry:
/// checked from its manifest before any of its blobs is downloaded.
pub const MAX_ATTACHMENT_BYTES: u64 = crate::bundle::evidence::MAX_EVIDENCE_ARTIFACT;

/// The cosign tag suffixes airlock carries.
pub const ATTACHMENT_SUFFIXES: &[&str] = &[".sig", ".att", ".sbom", ""];

/// Now, or `SOURCE_DATE_EPOCH` when set, as RFC 3339.
pub fn now_rfc3339() -> String {
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
        .unwrap_or_else(std::time::SystemTime::now);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn reg_err(artifact: &str) -> impl Fn(RegistryError) -> CollectError + '_ {
    move |source| CollectError::Registry {
        artifact: artifact.to_string(),
        source,
    }
}

fn repo_of(r: &Reference) -> Repo {
    r.repo()
}

fn children_of(index: &ParsedManifest, wanted: &[Platform]) -> Vec<LockedChild> {
    index
        .manifests
        .iter()
        .map(|d| {
            let platform = d.platform.as_ref().map(|p| p.to_platform());
            let selected = wanted.is_empty()
                || platform
                    .as_ref()
                    .is_some_and(|p| wanted.iter().any(|w| p.selected_by(w)));
            LockedChild {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                platform,
                selected,
            }
        })
        .collect()
}

async fn resolve_manifest(
    registry: &Registry,
    r: &Reference,
    wanted: &[Platform],
) -> Result<LockedImage, CollectError> {
    let name = r.to_string();
    let raw = registry
        .get_manifest(&repo_of(r), &r.reference_part())
        .await
        .map_err(reg_err(&name))?;
    let parsed =
        ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(|source| {
            CollectError::Manifest {
                artifact: name.clone(),
                source,
            }
        })?;
    let children = if parsed.kind == ManifestKind::Index {
        let c = children_of(&parsed, wanted);
        if !c.iter().any(|c| c.selected) {
            let have: Vec<String> = c
                .iter()
                .filter_map(|c| c.platform.as_ref().map(|p| p.to_string()))
                .collect();
            return Err(CollectError::Mismatch {
                artifact: name,
                why: format!(
                    "no child matches platforms [{}]; the index has [{}]",
                    wanted
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    have.join(", ")
                ),
            });
        }
        c
    } else {
        Vec::new()
    };
    Ok(LockedImage {
        source: r.clone(),
        digest: raw.digest,
        media_type: parsed.media_type,
        platforms: wanted.to_vec(),
        children,
        attachments: Vec::new(),
        charts: Vec::new(),
    })
}

/// The policy with every key file replaced by its PEM text, so a lock pins the keys it was
/// made with and collect does not depend on files beside it.
fn inline_keys(
    policy: &crate::trust::policy::TrustPolicy,
    dir: &Path,
) -> Result<crate::trust::policy::TrustPolicy, CollectError> {
    use crate::trust::policy::KeyRef;
    let mut p = policy.clone();
    for rule in &mut p.rules {
        for key in &mut rule.keys {
            if let KeyRef::Path(_) = key {
                let loaded = key
                    .load(dir)
                    .map_err(|e| CollectError::Policy(crate::error_chain(&e)))?;
                *key = KeyRef::Pem(loaded.to_pem());
            }
        }
    }
    Ok(p)
}

/// Reads a blob of at most [`MAX_ATTACHMENT_BYTES`] through the cache (downloading it when
/// missing). The caller checks its digest.
async fn small_blob(
    registry: &Registry,
    repo: &Repo,
    d: &Descriptor,
    cache: &Path,
) -> Result<Vec<u8>, CollectError> {
    let path = cache_path(cache, &d.digest);
    if !path.exists() {
        registry
            .download_blob(repo, &d.digest, d.size, &path, &crate::progress::NoProgress)
            .await
            .map_err(reg_err(&format!("{repo}")))?;
    }
    crate::io::read_capped(&path, MAX_ATTACHMENT_BYTES, "cached attachment").map_err(|e| {
        CollectError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    })
}

/// The signature material pinned for `subject` (the image or one of its children): each
/// attachment's manifest (and each child of an attached index) with its blobs, read through the
/// cache.
async fn signature_artifacts(
    img: &LockedImage,
    subject: &Digest,
    plan: &Plan,
    registry: &Registry,
    repo: &Repo,
    cache: &Path,
) -> Result<Vec<crate::trust::verify::SignatureArtifact>, CollectError> {
    let mut artifacts = Vec::new();
    for att in img.attachments.iter().filter(|a| &a.subject == subject) {
        let mut manifests = vec![att.digest.clone()];
        if let Some((bytes, _)) = plan.manifests.get(&att.digest) {
            if let Ok(p) = ParsedManifest::parse(bytes, Some(&att.media_type)) {
                manifests.extend(p.manifests.iter().map(|d| d.digest.clone()));
            }
        }
        for m in manifests {
            let Some((bytes, media_type)) = plan.manifests.get(&m).cloned() else {
                continue;
            };
            let Ok(parsed) = ParsedManifest::parse(&bytes, Some(&media_type)) else {
                continue;
            };
            let mut blobs = BTreeMap::new();
            for d in parsed.blobs() {
                blobs.insert(
                    d.digest.clone(),
                    small_blob(registry, repo, d, cache).await?,
                );
            }
            artifacts.push(crate::trust::verify::SignatureArtifact {
                media_type,
                manifest: bytes.to_vec(),
                blobs,
            });
        }
    }
    Ok(artifacts)
}

/// Checks every image a rule of the lock's trust policy covers against its carried
/// signatures; records what verified in the artifact.
async fn verify_signatures(
    lock: &Lock,
    plan: &mut Plan,
    registry: &Registry,
    opts: &CollectOptions,
) -> Result<(), CollectError> {
    let Some(policy) = &lock.trust else {
        return Ok(());
    };
    let root = policy
        .load_trusted_root(&opts.base_dir)
        .map_err(|e| CollectError::Policy(crate::error_chain(&e)))?;
    for img in &lock.images {
        let repo_name = format!("{}/{}", img.source.registry, img.source.repository);
        let Some(rule) = policy.rule_for(&repo_name) else {
            continue;
        };
        let resolved = rule
            .resolve(&opts.base_dir)
            .map_err(|e| CollectError::Policy(crate::error_chain(&e)))?;
        let repo = repo_of(&img.source);
        let children: Vec<&Digest> = if rule.require_children {
            img.children
                .iter()
                .filter(|c| c.selected)
                .map(|c| &c.digest)
                .collect()
        } else {
            Vec::new()
        };
        let mut by_subject: BTreeMap<Digest, Vec<crate::trust::verify::SignatureArtifact>> =
            BTreeMap::new();
        for subject in std::iter::once(&img.digest).chain(children.iter().copied()) {
            let found =
                signature_artifacts(img, subject, plan, registry, &repo, &opts.cache).await?;
            by_subject.insert(subject.clone(), found);
        }
        let artifacts = by_subject.get(&img.digest).cloned().unwrap_or_default();
        let results = crate::trust::verify::verify_image(
            &img.digest,
            &repo_name,
            &artifacts,
            &resolved,
            root.as_ref(),
        )
        .and_then(|mut results| {
            results.extend(crate::trust::verify::verify_children(
                children.iter().copied(),
                &repo_name,
                |d| by_subject.get(d).cloned().unwrap_or_default(),
                &resolved,
                root.as_ref(),
            )?);
            Ok(results)
        })
        .map_err(|source| CollectError::Untrusted {
            artifact: img.source.to_string(),
            source: Box::new(source),
        })?;
        if let Some(a) = plan.artifacts.iter_mut().find(|a| {
            a.kind == ArtifactKind::Image
                && a.digest == img.digest
                && a.source == img.source.to_string()
        }) {
            a.verification = results
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
        }
    }
    Ok(())
}

/// Locks one image: resolves its reference, then finds what is attached to it and to each
/// carried child. Everything per image is here, so the resolve stage can run many images at
/// once; `discovery` carries what earlier images taught about the registry.
pub async fn lock_image(
    discovery: &discover::Discovery,
    registry: &Registry,
    reference: &Reference,
    platforms: &[Platform],
) -> Result<LockedImage, CollectError> {
    let mut locked = resolve_manifest(registry, reference, platforms).await?;
    let subjects: Vec<Digest> = std::iter::once(locked.digest.clone())
        .chain(
            locked
                .children
                .iter()
                .filter(|c| c.selected)
                .map(|c| c.digest.clone()),
        )
        .collect();
    locked.attachments =
        discover::discover_attachments(discovery, registry, reference, &subjects).await?;
    Ok(locked)
}

/// Resolves every reference of a spec to digests. `previous` keeps the creation time when
/// nothing changed, so re-locking an unchanged spec gives the same lockfile.
pub async fn lock_spec(
    spec: &Spec,
    spec_digest: Digest,
    spec_dir: &Path,
    registry: &Registry,
    previous: Option<&Lock>,
    reporter: &dyn Reporter,
) -> Result<Lock, CollectError> {
    let trust = spec
        .trust
        .as_ref()
        .map(|t| inline_keys(t, spec_dir))
        .transpose()?;
    // The resolve stage: images locked concurrently (the registry's adaptive limit paces the
    // requests), collected in spec order whatever order they finish in.
    // Counted in references resolved: one per image and chart of the spec.
    reporter.phase_items("lock", (spec.images.len() + spec.charts.len()) as u64);
    let discovery = &discover::Discovery::default();
    let mut images: Vec<LockedImage> = stream::iter(spec.images.iter().map(|img| async move {
        let locked = lock_image(discovery, registry, &img.reference, &img.platforms).await?;
        reporter.item(&format!("resolved {}", img.reference));
        reporter.advance(1);
        Ok::<_, CollectError>(locked)
    }))
    .buffered(registry.limit().max())
    .try_collect()
    .await?;
    let mut charts = Vec::new();
    let tmp = tempfile::tempdir().map_err(|source| CollectError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut chart_sets = Vec::new();
    for c in &spec.charts {
        let render = c.render();
        let discover = chart_images::wants_discovery(&render);
        let (locked, tgz) = match &c.source {
            ChartSource::Oci { reference } => {
                let r = parse_oci_chart_ref(reference).map_err(|why| CollectError::Mismatch {
                    artifact: reference.clone(),
                    why,
                })?;
                let locked = resolve_manifest(registry, &r, &[]).await?;
                let tgz = if discover {
                    Some(
                        chart_images::fetch_oci_chart(registry, &r, &locked.digest, tmp.path())
                            .await?,
                    )
                } else {
                    None
                };
                let chart = LockedChart::Oci {
                    source: r,
                    digest: locked.digest,
                    media_type: locked.media_type,
                };
                (chart, tgz)
            }
            ChartSource::Http {
                repo,
                name,
                version,
                sha256,
            } => {
                let artifact = format!("{repo} {name}:{version}");
                let chart_err = |source| CollectError::Chart {
                    artifact: artifact.clone(),
                    source,
                };
                let (url, claimed) = chart::resolve(registry.http(), repo, name, version)
                    .await
                    .map_err(chart_err)?;
                let pinned = sha256.as_deref().and_then(|s| Digest::from_hex(s).ok());
                let expected = pinned.as_ref().or(claimed.as_ref());
                let path = tmp.path().join("chart.tgz");
                let (digest, _) = chart::download(
                    registry.http(),
                    &url,
                    &path,
                    expected,
                    chart::MAX_CHART_BYTES,
                )
                .await
                .map_err(chart_err)?;
                let tgz = if discover {
                    Some(
                        crate::io::read_capped(
                            &path,
                            crate::chart::archive::MAX_CHART_BYTES,
                            "chart",
                        )
                        .map_err(|e| CollectError::ChartImages {
                            chart: c.label(),
                            source: Box::new(e.into()),
                        })?,
                    )
                } else {
                    None
                };
                let chart = LockedChart::Http {
                    repo: repo.clone(),
                    name: name.clone(),
                    version: version.clone(),
                    url,
                    sha256: digest,
                };
                (chart, tgz)
            }
        };
        charts.push(locked);
        if let Some(tgz) = tgz {
            chart_sets.push(chart_images::discover(&c.label(), tgz, render, spec_dir)?);
        }
        reporter.item(&format!("resolved {}", c.label()));
        reporter.advance(1);
    }
    reporter.finish_phase();
    // Images the charts deploy: one already in the spec gains the chart's name; a new one is
    // pinned like a spec image (all platforms), concurrently, in the order the charts list them.
    let mut new_images: Vec<(Reference, Vec<String>)> = Vec::new();
    for set in &chart_sets {
        for r in &set.images {
            let name = r.to_string();
            if let Some(i) = images.iter_mut().find(|i| i.source.to_string() == name) {
                if !i.charts.contains(&set.chart) {
                    i.charts.push(set.chart.clone());
                }
            } else if let Some((_, charts)) = new_images.iter_mut().find(|(n, _)| n == r) {
                charts.push(set.chart.clone());
            } else {
                new_images.push((r.clone(), vec![set.chart.clone()]));
            }
        }
    }
    if !new_images.is_empty() {
        reporter.phase_items("images", new_images.len() as u64);
    }
    let from_charts: Vec<LockedImage> =
        stream::iter(new_images.into_iter().map(|(r, charts)| async move {
            let mut locked = lock_image(discovery, registry, &r, &[]).await?;
            locked.charts = charts;
            reporter.item(&format!("resolved {r}"));
            reporter.advance(1);
            Ok::<_, CollectError>(locked)
        }))
        .buffered(registry.limit().max())
        .try_collect()
        .await?;
    reporter.finish_phase();
    images.extend(from_charts);
    let files = spec
        .files
        .iter()
        .map(crate::files::lock_file)
        .collect::<Result<Vec<_>, _>>()?;
    let scan_files = match &spec.scan {
        Some(p) => crate::scan::pins::pin(p, spec_dir)?,
        None => Vec::new(),
    };
    let mut lock = Lock {
        format: LOCK_FORMAT.to_string(),
        name: spec.name.clone(),
        spec_digest,
        created: now_rfc3339(),
        images,
        charts,
        trust,
        scan: spec.scan.clone(),
        scan_files,
        files,
    };
    if let Some(prev) = previous {
        if prev.same_content(&lock) {
            lock.created = prev.created.clone();
        }
    }
    Ok(lock)
}

/// Refuses a spec with unpinned references and turns a fully pinned one into a lock, so that
/// `collect SPEC` works only when the spec itself pins everything.
pub async fn lock_pinned_spec(
    spec: &Spec,
    spec_digest: Digest,
    spec_dir: &Path,
    registry: &Registry,
    reporter: &dyn Reporter,
) -> Result<Lock, CollectError> {
    for img in &spec.images {
        if !img.reference.is_pinned() {
            return Err(CollectError::Unpinned {
                reference: img.reference.to_string(),
            });
        }
    }
    for c in &spec.charts {
        match &c.source {
            ChartSource::Oci { reference } if !reference.contains('@') => {
                return Err(CollectError::Unpinned {
                    reference: reference.clone(),
                })
            }
            ChartSource::Http {
                sha256: None,
                name,
                version,
                ..
            } => {
                return Err(CollectError::Unpinned {
                    reference: format!("chart {name}:{version} (no sha256)"),
                })
            }
            _ => {}
        }
    }
    let mut lock = lock_spec(spec, spec_digest, spec_dir, registry, None, reporter).await?;
    // A chart's templates may name images by tag: those are not pinned by this spec.
    if let Some(i) = lock.images.iter().find(|i| !i.source.is_pinned()) {
        return Err(CollectError::Unpinned {
            reference: format!("{} (deployed by chart {})", i.source, i.charts.join(", ")),
        });
    }
    // A pinned spec is its own source of truth: the creation time comes from the environment
    // (SOURCE_DATE_EPOCH) or the epoch, never the clock, so the bundle is reproducible.
    if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
        lock.created = "1970-01-01T00:00:00Z".into();
    }
    Ok(lock)
}

/// Options for `collect`.
#[derive(Debug)]
pub struct CollectOptions {
    /// Output bundle path.
    pub output: PathBuf,
    /// Content-addressed cache of pulled blobs (kept across runs; completed blobs are not
    /// downloaded again).
    pub cache: PathBuf,
    /// Blobs in flight at once.
    pub jobs: usize,
    /// Keys that sign `airlock.json` (none: an unsigned bundle).
    pub signers: Vec<crate::trust::keys::SigningKey>,
    /// Where the lock lives: the trust policy's `trusted_root` path is relative to it.
    pub base_dir: PathBuf,
    /// The bundle's replay sequence; `None`: the creation time in Unix seconds.
    pub sequence: Option<u64>,
    /// The vulnerability database for the lock's scan policy (else the policy's `db`).
    pub scan_db: Option<PathBuf>,
    /// Carry the vulnerability database in the bundle as an OCI artifact.
    pub carry_db: bool,
    /// Which scanner makes the evidence (with a scan policy).
    pub scanner: crate::scan::run::Scanner,
    /// A delta bundle: the site's receipt and its digest; every blob it lists is left out.
    pub have: Option<(crate::receipt::Receipt, Digest)>,
    /// Write parts of this many bytes (and `NAME.parts.json`, signed by `signers`) next to
    /// where `output` would be, instead of the bundle file.
    pub split: Option<u64>,
}

/// One artifact in a collect report.
#[derive(Debug, Clone, Serialize)]
pub struct CollectedArtifact {
    /// Image or chart.
    pub kind: ArtifactKind,
    /// Source.
    pub source: String,
    /// Root digest.
    pub digest: Digest,
    /// Platforms carried.
    pub platforms: Vec<String>,
    /// Bytes of its blobs (shared blobs count for each artifact).
    pub size: u64,
}

/// What `collect` did.
#[derive(Debug, Clone, Serialize)]
pub struct CollectReport {
    /// Bundle path.
    pub bundle: PathBuf,
    /// Digest of the bundle's `airlock.json`: what identifies the bundle and what its
    /// signatures cover.
    pub bundle_digest: Digest,
    /// Bundle file size.
    pub bundle_size: u64,
    /// Artifacts.
    pub artifacts: Vec<CollectedArtifact>,
    /// Distinct blobs.
    pub blobs: usize,
    /// Bytes of distinct blobs.
    pub blob_bytes: u64,
    /// Bytes downloaded in this run (the rest came from the cache).
    pub downloaded_bytes: u64,
    /// Key ids that signed the bundle.
    pub signers: Vec<String>,
    /// Every image platform scanned (when the lock has a scan policy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scans: Vec<scan::CollectedScan>,
    /// The parts written instead of the bundle file (`split`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<SplitReport>,
}

/// One registry artifact as the lock pins it.
struct Pinned<'a> {
    kind: ArtifactKind,
    source: &'a Reference,
    digest: &'a Digest,
    media_type: &'a str,
    platforms: &'a [Platform],
    children: &'a [LockedChild],
    /// For a referrer carried by digest: its subject and artifact type.
    subject: Option<(&'a Digest, Option<&'a str>)>,
}

struct Plan {
    artifacts: Vec<Artifact>,
    manifests: BTreeMap<Digest, (Bytes, String)>,
    /// Blobs to pull: digest → (descriptor, source repo).
    pulls: BTreeMap<Digest, (Descriptor, Repo)>,
    /// Blobs built locally (chart configs, chart archives).
    local: HashMap<Digest, (BlobData, BlobEntry)>,
}

impl Plan {
    /// A plain file: fetched into the cache (checked against its sha256), packed as an OCI
    /// artifact (empty config, one titled layer) bound for `files/<name>:<version>`.
    async fn add_file(
        &mut self,
        f: &crate::files::LockedFile,
        registry: &Registry,
        opts: &CollectOptions,
    ) -> Result<(), CollectError> {
        use crate::files::{FileError, EMPTY_CONFIG, FILE_LAYER_MEDIA_TYPE};
        let cached = cache_path(&opts.cache, &f.sha256);
        let (size, fresh) = match fs_err::metadata(&cached) {
            Ok(m) => (m.len(), false),
            Err(_) if f.is_url() => {
                let (_, n) = chart::download(
                    registry.http(),
                    &f.source,
                    &cached,
                    Some(&f.sha256),
                    u64::MAX,
                )
                .await
                .map_err(|e| match e {
                    chart::ChartError::Mismatch {
                        expected, actual, ..
                    } => FileError::Mismatch {
                        source_: f.source.clone(),
                        expected,
                        actual,
                    },
                    other => FileError::Fetch {
                        source_: f.source.clone(),
                        why: crate::error_chain(&other),
                    },
                })?;
                (n, true)
            }
            Err(_) => {
                let src = crate::files::local_path(f, &opts.base_dir);
                (crate::files::copy_verified(&src, &cached, &f.sha256)?, true)
            }
        };
        let manifest = crate::files::file_manifest(f, size);
        let mdigest = Digest::of(&manifest);
        let config = Bytes::from_static(EMPTY_CONFIG);
        let config_digest = Digest::of(&config);
        self.local.insert(
            config_digest.clone(),
            (
                BlobData::Memory(config.clone()),
                BlobEntry {
                    digest: config_digest,
                    size: config.len() as u64,
                    media_type: media::OCI_EMPTY.into(),
                },
            ),
        );
        self.local.insert(
            f.sha256.clone(),
            (
                BlobData::File {
                    path: cached,
                    verified: fresh,
                },
                BlobEntry {
                    digest: f.sha256.clone(),
                    size,
                    media_type: FILE_LAYER_MEDIA_TYPE.into(),
                },
            ),
        );
        let manifest_len = manifest.len() as u64;
        self.manifests
            .insert(mdigest.clone(), (manifest, media::OCI_MANIFEST.into()));
        self.artifacts.push(Artifact {
            verification: Vec::new(),
            size: size + config.len() as u64 + manifest_len,
            kind: ArtifactKind::File,
            source: f.source.clone(),
            registry: None,
            repository: RepoName::try_from(format!("files/{}", f.name)).map_err(|source| {
                CollectError::Name {
                    artifact: f.source.clone(),
                    source,
                }
            })?,
            tag: Some(Tag::parse(&f.version).map_err(|source| CollectError::Name {
                artifact: f.source.clone(),
                source,
            })?),
            digest: mdigest,
            media_type: media::OCI_MANIFEST.into(),
            platforms: Vec::new(),
            children: Vec::new(),
            subject: None,
            artifact_type: Some(crate::files::FILE_ARTIFACT_TYPE.into()),
            scan: None,
        });
        Ok(())
    }

    /// Drops every non-manifest blob `receipt` lists from what is pulled or packed, and returns
    /// them (sorted by digest) for `airlock.json`.
    /// The blobs of evidence artifacts (signatures, SBOMs, reports): listed right after the
    /// manifests, and never left out of a delta.
    fn evidence(&self) -> std::collections::BTreeSet<Digest> {
        let parsed: BTreeMap<&Digest, ParsedManifest> = self
            .manifests
            .iter()
            .filter_map(|(d, (bytes, mt))| Some((d, ParsedManifest::parse(bytes, Some(mt)).ok()?)))
            .collect();
        crate::bundle::evidence::evidence_blobs(&self.artifacts, |d| parsed.get(d))
    }

    /// The blobs to pull that the cache lacks (absent, or of the wrong size), with where to
    /// pull each from.
    fn not_in_cache(&self, cache: &Path) -> Vec<(Digest, Descriptor, Repo)> {
        self.pulls
            .iter()
            .filter(|(d, (desc, _))| {
                fs_err::metadata(cache_path(cache, d))
                    .map(|m| m.len() != desc.size)
                    .unwrap_or(true)
            })
            .map(|(d, (desc, repo))| (d.clone(), desc.clone(), repo.clone()))
            .collect()
    }

    fn omit(&mut self, receipt: &crate::receipt::Receipt) -> Vec<crate::bundle::OmittedBlob> {
        // Evidence stays in the bundle: the isolated side checks it before it trusts the target.
        let evidence = self.evidence();
        let mut out = Vec::new();
        for held in receipt
            .blobs
            .iter()
            .filter(|b| !evidence.contains(&b.digest))
        {
            let size = match (self.pulls.get(&held.digest), self.local.get(&held.digest)) {
                (Some((desc, _)), _) => desc.size,
                (None, Some((_, entry))) => entry.size,
                (None, None) => continue,
            };
            if size != held.size {
                continue;
            }
            self.pulls.remove(&held.digest);
            self.local.remove(&held.digest);
            out.push(crate::bundle::OmittedBlob {
                digest: held.digest.clone(),
                size,
                repositories: held.repositories.clone(),
            });
        }
        out
    }

    fn add_image_blobs(
        &mut self,
        artifact: &str,
        m: &ParsedManifest,
        repo: &Repo,
    ) -> Result<u64, CollectError> {
        let mut total = 0;
        for d in m.blobs() {
            if !d.urls.is_empty() || media::is_foreign_layer(&d.media_type) {
                return Err(CollectError::Unsupported {
                    artifact: artifact.to_string(),
                    why: format!(
                        "layer {} is a foreign (non-distributable) layer fetched from {}; airlock does not carry foreign layers",
                        d.digest,
                        d.urls.first().map(String::as_str).unwrap_or("an external URL")
                    ),
                });
            }
            total += d.size;
            self.pulls
                .entry(d.digest.clone())
                .or_insert_with(|| (d.clone(), repo.clone()));
        }
        Ok(total)
    }

    /// The plan stage for one registry artifact: its fetched manifests, the blobs they name
    /// and its entry in `airlock.json`. Runs in lock order, so the plan (and the bundle) does
    /// not depend on which fetch finished first.
    fn add_fetched(&mut self, f: Fetched<'_>) -> Result<(), CollectError> {
        let Fetched {
            pin,
            root,
            children: fetched_children,
            children_listed,
        } = f;
        let name = pin.source.to_string();
        let repo = repo_of(pin.source);
        let (root_bytes, root_parsed) = root;
        let mut size = root_parsed.blobs().map(|d| d.size).sum::<u64>() + root_bytes.len() as u64;
        self.manifests.insert(
            pin.digest.clone(),
            (root_bytes, root_parsed.media_type.clone()),
        );
        if root_parsed.kind != ManifestKind::Index {
            self.add_image_blobs(&name, &root_parsed, &repo)?;
        }
        for (digest, bytes, parsed) in fetched_children {
            size += self.add_image_blobs(&name, &parsed, &repo)? + bytes.len() as u64;
            self.manifests
                .insert(digest, (bytes, parsed.media_type.clone()));
        }
        self.artifacts.push(Artifact {
            verification: Vec::new(),
            subject: pin.subject.map(|(d, _)| d.clone()),
            artifact_type: pin.subject.and_then(|(_, t)| t.map(str::to_string)),
            scan: None,
            size,
            kind: pin.kind,
            source: name,
            registry: Some(pin.source.registry.clone()),
            repository: pin.source.repository.clone(),
            tag: pin.source.tag.clone(),
            digest: pin.digest.clone(),
            media_type: pin.media_type.to_string(),
            platforms: pin.platforms.to_vec(),
            children: children_listed,
        });
        Ok(())
    }
}

/// One registry artifact's manifests, fetched and checked against the lock, waiting for the
/// plan stage.
struct Fetched<'a> {
    pin: Pinned<'a>,
    /// The root manifest's bytes, parsed.
    root: (Bytes, ParsedManifest),
    /// Each carried child of an index, in the index's order.
    children: Vec<(Digest, Bytes, ParsedManifest)>,
    /// Every child of an index, carried or not, for `airlock.json`.
    children_listed: Vec<Child>,
}

/// Fetches one manifest by digest and checks its media type against the lock's.
async fn fetch_manifest(
    registry: &Registry,
    artifact: &str,
    repo: &Repo,
    digest: &Digest,
    media_type: &str,
) -> Result<(Bytes, ParsedManifest), CollectError> {
    let raw = registry
        .get_manifest(repo, digest)
        .await
        .map_err(reg_err(artifact))?;
    let parsed = ParsedManifest::parse(&raw.bytes, Some(media_type)).map_err(|source| {
        CollectError::Manifest {
            artifact: artifact.to_string(),
            source,
        }
    })?;
    if parsed.media_type != media_type {
        return Err(CollectError::Mismatch {
            artifact: artifact.to_string(),
            why: format!(
                "manifest {digest} is `{}` but the lock says `{media_type}`",
                parsed.media_type
            ),
        });
    }
    Ok((raw.bytes, parsed))
}

/// The fetch stage for one registry artifact: its root manifest, then its carried children
/// (all at once), each checked against what the lock pins.
async fn fetch_artifact<'a>(
    registry: &Registry,
    pin: Pinned<'a>,
) -> Result<Fetched<'a>, CollectError> {
    let name = pin.source.to_string();
    let repo = repo_of(pin.source);
    let digest = pin.digest;
    let (root_bytes, root) = fetch_manifest(registry, &name, &repo, digest, pin.media_type).await?;
    // An attachment's index (referrers) carries every child; the lock does not list them.
    let all_children: Vec<LockedChild>;
    let locked_children = if pin.kind.is_evidence() {
        let declared = root.blobs().map(|d| d.size).sum::<u64>()
            + root_bytes.len() as u64
            + root.manifests.iter().map(|d| d.size).sum::<u64>();
        if declared > MAX_ATTACHMENT_BYTES {
            return Err(CollectError::Unsupported {
                artifact: name,
                why: format!("attachment {digest} declares {declared} bytes, over the {MAX_ATTACHMENT_BYTES}-byte limit for signature material; refused before download"),
            });
        }
        all_children = children_of(&root, &[]);
        &all_children[..]
    } else {
        pin.children
    };
    let mut children = Vec::new();
    let mut listed = Vec::new();
    if root.kind == ManifestKind::Index {
        let want: BTreeMap<&Digest, &LockedChild> =
            locked_children.iter().map(|c| (&c.digest, c)).collect();
        let have: BTreeMap<&Digest, &Descriptor> =
            root.manifests.iter().map(|d| (&d.digest, d)).collect();
        if want.keys().collect::<Vec<_>>() != have.keys().collect::<Vec<_>>() {
            return Err(CollectError::Mismatch {
                artifact: name,
                why: format!("index {digest} has other children than the lock lists; run `airlock lock` again"),
            });
        }
        if let Some(c) = locked_children
            .iter()
            .find(|c| c.selected && media::is_index(&c.media_type))
        {
            return Err(CollectError::Unsupported {
                artifact: name,
                why: format!(
                    "child {} is itself an index; nested indexes are not supported",
                    c.digest
                ),
            });
        }
        let (name, repo) = (&name, &repo);
        children = stream::iter(locked_children.iter().filter(|c| c.selected).map(
            |c| async move {
                let (bytes, parsed) =
                    fetch_manifest(registry, name, repo, &c.digest, &c.media_type).await?;
                Ok::<_, CollectError>((c.digest.clone(), bytes, parsed))
            },
        ))
        .buffered(registry.limit().max())
        .try_collect()
        .await?;
        listed = locked_children
            .iter()
            .map(|c| Child {
                digest: c.digest.clone(),
                media_type: c.media_type.clone(),
                platform: c.platform.clone(),
                included: c.selected,
            })
            .collect();
    }
    Ok(Fetched {
        pin,
        root: (root_bytes, root),
        children,
        children_listed: listed,
    })
}

/// Bytes the download stage may hold ahead of the pack stage (downloaded or downloading, not
/// yet taken by the writer): what keeps a slow writer from letting downloads run without
/// bound. A blob larger than this still goes, alone.
const DOWNLOAD_AHEAD_BYTES: u64 = 256 << 20;
/// The unit of [`DOWNLOAD_AHEAD_BYTES`] as semaphore permits.
const AHEAD_UNIT: u64 = 64 << 10;

/// Permits of the download-ahead budget for a blob of `size` bytes (at least one, at most the
/// whole budget).
fn ahead_permits(size: u64) -> u32 {
    let all = DOWNLOAD_AHEAD_BYTES / AHEAD_UNIT;
    u32::try_from(size.div_ceil(AHEAD_UNIT).clamp(1, all)).unwrap_or(u32::MAX)
}

/// A downloaded blob handed to the pack stage, with its share of the download-ahead budget
/// (released when the writer takes it).
type Arrival = (Digest, tokio::sync::OwnedSemaphorePermit);

/// The download stage: blobs the cache lacks, started in pack order, `jobs` at a time and
/// within [`DOWNLOAD_AHEAD_BYTES`] of the pack stage, finishing in any order (a slow blob
/// holds only its own slot); each is handed to the pack stage in pack order through the
/// queue, as soon as every blob before it has been.
async fn download_stage(
    registry: &Registry,
    cache: &Path,
    missing: Vec<(Digest, Descriptor, Repo)>,
    jobs: usize,
    arrived: tokio::sync::mpsc::Sender<Arrival>,
    reporter: &dyn Reporter,
) -> Result<(), CollectError> {
    let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(
        usize::try_from(DOWNLOAD_AHEAD_BYTES / AHEAD_UNIT).unwrap_or(1),
    ));
    let download = |i: usize, digest: Digest, desc: Descriptor, repo: Repo, permit| {
        let dest = cache_path(cache, &digest);
        async move {
            // Its own bar, labelled with what is downloading now; the phase counts the blob
            // once, when it is packed.
            let id = digest.to_string();
            reporter.task_start(&id, &format!("{repo} {}", digest.short()), desc.size);
            let task = crate::progress::Task {
                parent: reporter,
                id: &id,
            };
            let got = registry
                .download_blob(&repo, &digest, desc.size, &dest, &task)
                .await;
            reporter.task_done(&id);
            got.map_err(|source| CollectError::Registry {
                artifact: format!("{repo}"),
                source,
            })?;
            Ok::<_, CollectError>((i, (digest, permit)))
        }
    };
    let mut queue = missing.into_iter().enumerate().peekable();
    let mut running = futures_util::stream::FuturesUnordered::new();
    // Finished out of order, waiting for the blobs before them.
    let mut done: BTreeMap<usize, Arrival> = BTreeMap::new();
    let mut next = 0;
    loop {
        while running.len() < jobs.max(1) {
            let Some((_, (_, desc, _))) = queue.peek() else {
                break;
            };
            let want = ahead_permits(desc.size);
            let permit = match budget.clone().try_acquire_many_owned(want) {
                Ok(p) => p,
                // Nothing running: what holds the budget is with the writer; wait for it.
                Err(_) if running.is_empty() => budget
                    .clone()
                    .acquire_many_owned(want)
                    .await
                    .map_err(|_| WriteError::Aborted("download budget closed".into()))?,
                Err(_) => break,
            };
            let Some((i, (digest, desc, repo))) = queue.next() else {
                break;
            };
            running.push(download(i, digest, desc, repo, permit));
        }
        let Some(finished) = running.next().await else {
            break;
        };
        let (i, arrival) = finished?;
        done.insert(i, arrival);
        while let Some(arrival) = done.remove(&next) {
            // The queue holds every blob (see `collect`): this never waits on the writer.
            if arrived.send(arrival).await.is_err() {
                return Err(CollectError::Write(WriteError::Aborted(
                    "the bundle writer stopped".into(),
                )));
            }
            next += 1;
        }
    }
    Ok(())
}

/// The pack stage's side of the queue: before packing a blob this run downloads, takes the
/// next arrival, which is that very blob (the download stage hands them over in pack order),
/// and releases its share of the download-ahead budget.
fn await_arrival(
    arrivals: &std::sync::Mutex<tokio::sync::mpsc::Receiver<Arrival>>,
    d: &Digest,
    downloading: &std::collections::HashSet<Digest>,
) -> Result<(), WriteError> {
    if !downloading.contains(d) {
        return Ok(());
    }
    let mut rx = arrivals
        .lock()
        .map_err(|_| WriteError::Aborted("download queue poisoned".into()))?;
    match rx.blocking_recv() {
        Some((got, _permit)) if &got == d => Ok(()),
        Some((got, _)) => Err(WriteError::Aborted(format!(
            "blob {got} arrived where {d} was expected"
        ))),
        None => Err(WriteError::Aborted(format!("blob {d} was not downloaded"))),
    }
}

/// The pack stage: the bundle file at `out`, or with `opts.split` its parts in `out`'s
/// directory, written straight from the stream (one copy on disk, never the file and its parts).
fn pack_stage(
    out: &Path,
    opts: &CollectOptions,
    contents: &Contents<'_>,
    ready: crate::bundle::writer::Ready<'_>,
    reporter: &dyn Reporter,
) -> Result<(crate::bundle::writer::Written, Option<SplitReport>), CollectError> {
    let Some(part_size) = opts.split else {
        return Ok((write_bundle(out, contents, ready, reporter)?, None));
    };
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts = PartsWriter::create(&dir, &name, part_size)?;
    let (parts, written) = write_stream(parts, out, contents, ready, reporter)?;
    let report = parts.finish(&contents.manifest.name, &opts.signers)?;
    Ok((written, Some(report)))
}

fn cache_path(cache: &Path, digest: &Digest) -> PathBuf {
    cache.join("sha256").join(digest.hex())
}

/// Pulls everything a lock pins and writes the bundle.
pub async fn collect(
    lock: &Lock,
    lock_digest: &Digest,
    registry: &Registry,
    opts: &CollectOptions,
    reporter: &dyn Reporter,
) -> Result<CollectReport, CollectError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CollectError::Io { path, source }
    };
    fs_err::create_dir_all(opts.cache.join("sha256")).map_err(io_err(&opts.cache))?;
    // The output's directory must exist before anything is pulled: found out at the end, a
    // missing one would waste the whole download.
    let out_dir = match opts.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !out_dir.is_dir() {
        return Err(CollectError::Io {
            path: opts.output.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "the output directory `{}` does not exist; create it first",
                    out_dir.display()
                ),
            ),
        });
    }
    let mut plan = Plan {
        artifacts: Vec::new(),
        manifests: BTreeMap::new(),
        pulls: BTreeMap::new(),
        local: HashMap::new(),
    };
    // A tagged attachment travels under its tag; a referrer by digest, with its subject. The
    // sources are built first: the pins borrow them.
    let attachment_sources: Vec<Vec<(ArtifactKind, Reference)>> = lock
        .images
        .iter()
        .map(|img| {
            img.attachments
                .iter()
                .map(|att| match &att.tag {
                    Some(tag) => (
                        ArtifactKind::Attachment,
                        Reference {
                            tag: Some(tag.clone()),
                            digest: None,
                            ..img.source.clone()
                        },
                    ),
                    None => (
                        ArtifactKind::Referrer,
                        Reference {
                            tag: None,
                            digest: Some(att.digest.clone()),
                            ..img.source.clone()
                        },
                    ),
                })
                .collect()
        })
        .collect();
    let mut pins: Vec<Pinned> = Vec::new();
    for (img, sources) in lock.images.iter().zip(&attachment_sources) {
        pins.push(Pinned {
            kind: ArtifactKind::Image,
            source: &img.source,
            digest: &img.digest,
            media_type: &img.media_type,
            platforms: &img.platforms,
            children: &img.children,
            subject: None,
        });
        for (att, (kind, source)) in img.attachments.iter().zip(sources) {
            let subject = (*kind == ArtifactKind::Referrer)
                .then_some((&att.subject, att.artifact_type.as_deref()));
            pins.push(Pinned {
                kind: *kind,
                source,
                digest: &att.digest,
                media_type: &att.media_type,
                platforms: &[],
                children: &[],
                subject,
            });
        }
    }
    // The fetch stage feeds the plan stage through a bounded queue: manifests are fetched
    // many at once, planned one by one in lock order.
    let mut fetched = stream::iter(pins.into_iter().map(|pin| fetch_artifact(registry, pin)))
        .buffered(registry.limit().max());
    while let Some(f) = fetched.next().await {
        plan.add_fetched(f?)?;
    }
    drop(fetched);
    for c in &lock.charts {
        match c {
            LockedChart::Oci {
                source,
                digest,
                media_type,
            } => {
                let pin = Pinned {
                    kind: ArtifactKind::Chart,
                    source,
                    digest,
                    media_type,
                    platforms: &[],
                    children: &[],
                    subject: None,
                };
                plan.add_fetched(fetch_artifact(registry, pin).await?)?;
            }
            LockedChart::Http {
                repo,
                name,
                version,
                url,
                sha256,
            } => {
                let artifact = format!("{repo} {name}:{version}");
                let chart_err = |source| CollectError::Chart {
                    artifact: artifact.clone(),
                    source,
                };
                let tgz = cache_path(&opts.cache, sha256);
                let (size, fresh_tgz) = match fs_err::metadata(&tgz) {
                    Ok(m) => (m.len(), false),
                    Err(_) => {
                        let (_, n) = chart::download(
                            registry.http(),
                            url,
                            &tgz,
                            Some(sha256),
                            chart::MAX_CHART_BYTES,
                        )
                        .await
                        .map_err(chart_err)?;
                        (n, true)
                    }
                };
                let config =
                    Bytes::from(chart::chart_config(&tgz, name, version).map_err(chart_err)?);
                let manifest = chart::chart_manifest(&config, sha256, size, name, version);
                let mdigest = Digest::of(&manifest);
                let manifest_len = manifest.len() as u64;
                let config_digest = Digest::of(&config);
                plan.local.insert(
                    config_digest.clone(),
                    (
                        BlobData::Memory(config.clone()),
                        BlobEntry {
                            digest: config_digest,
                            size: config.len() as u64,
                            media_type: media::HELM_CONFIG.into(),
                        },
                    ),
                );
                plan.local.insert(
                    sha256.clone(),
                    (
                        BlobData::File {
                            path: tgz,
                            verified: fresh_tgz,
                        },
                        BlobEntry {
                            digest: sha256.clone(),
                            size,
                            media_type: media::HELM_CHART.into(),
                        },
                    ),
                );
                plan.manifests
                    .insert(mdigest.clone(), (manifest, media::OCI_MANIFEST.into()));
                plan.artifacts.push(Artifact {
                    verification: Vec::new(),
                    subject: None,
                    artifact_type: None,
                    scan: None,
                    size: size + config.len() as u64 + manifest_len,
                    kind: ArtifactKind::Chart,
                    source: url.clone(),
                    registry: None,
                    repository: RepoName::try_from(format!("charts/{name}")).map_err(|source| {
                        CollectError::Name {
                            artifact: url.clone(),
                            source,
                        }
                    })?,
                    // OCI tags cannot hold SemVer build metadata: Helm writes `+` as `_`.
                    tag: Some(Tag::parse(&version.replace('+', "_")).map_err(|source| {
                        CollectError::Name {
                            artifact: url.clone(),
                            source,
                        }
                    })?),
                    digest: mdigest,
                    media_type: media::OCI_MANIFEST.into(),
                    platforms: Vec::new(),
                    children: Vec::new(),
                });
            }
        }
    }

    for f in &lock.files {
        plan.add_file(f, registry, opts).await?;
    }

    // Image signatures first: a missing or bad one stops the collect before any layer moves.
    verify_signatures(lock, &mut plan, registry, opts).await?;

    let created = bundle_created(lock);
    // Then the scan gate: a failing image stops the collect before the bundle is written.
    let (scans, checked) =
        scan::scan_plan(lock, &mut plan, registry, opts, &created, reporter).await?;

    // A delta against what the site holds: leave out every blob its receipt lists.
    let omitted = match &opts.have {
        Some((receipt, _)) => plan.omit(receipt),
        None => Vec::new(),
    };

    // Which blobs the cache lacks.
    let missing = plan.not_in_cache(&opts.cache);
    let to_download: u64 = missing.iter().map(|(_, d, _)| d.size).sum();
    let fresh: std::collections::HashSet<Digest> =
        missing.iter().map(|(d, _, _)| d.clone()).collect();

    // Order: manifests by digest, then every other blob by (size, digest).
    let mut data: HashMap<Digest, BlobData> = HashMap::new();
    let mut blobs: Vec<BlobEntry> = Vec::new();
    for (d, (bytes, mt)) in &plan.manifests {
        blobs.push(BlobEntry {
            digest: d.clone(),
            size: bytes.len() as u64,
            media_type: mt.clone(),
        });
        data.insert(d.clone(), BlobData::Memory(bytes.clone()));
    }
    let mut rest: Vec<BlobEntry> = Vec::new();
    for (d, (desc, _)) in &plan.pulls {
        rest.push(BlobEntry {
            digest: d.clone(),
            size: desc.size,
            media_type: desc.media_type.clone(),
        });
        data.insert(
            d.clone(),
            BlobData::File {
                path: cache_path(&opts.cache, d),
                verified: fresh.contains(d) || checked.contains(d),
            },
        );
    }
    for (d, (bd, entry)) in &plan.local {
        if !data.contains_key(d) {
            rest.push(entry.clone());
            data.insert(d.clone(), bd.clone());
        }
    }
    // Evidence (signatures, SBOMs, reports) right after the manifests, so an importer can
    // check it before pushing anything; then everything else. Each group by (size, digest).
    let evidence = plan.evidence();
    rest.sort_by(|a, b| {
        (!evidence.contains(&a.digest), a.size, &a.digest).cmp(&(
            !evidence.contains(&b.digest),
            b.size,
            &b.digest,
        ))
    });
    rest.dedup_by(|a, b| a.digest == b.digest);
    blobs.extend(rest);

    // Room for the bundle (its blobs plus a tar header each and airlock.json) and for the
    // downloads the cache lacks, checked before the first byte moves.
    let bundle_estimate = blobs.iter().map(|b| b.size + 1024).sum::<u64>() + (64 << 10);
    crate::disk::check_room(&[
        (opts.output.as_path(), "the bundle", bundle_estimate),
        (
            opts.cache.as_path(),
            "blobs to download into the cache",
            to_download,
        ),
    ])?;

    let sequence = opts.sequence.unwrap_or_else(|| {
        humantime::parse_rfc3339(&created)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT.into(),
        name: lock.name.clone(),
        created,
        sequence,
        tool: format!("airlock {}", env!("CARGO_PKG_VERSION")),
        lock_digest: lock_digest.clone(),
        artifacts: plan.artifacts.clone(),
        blobs,
        receipt: opts.have.as_ref().map(|(_, d)| d.clone()),
        omitted,
    };
    let mut manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CollectError::Io {
            path: opts.output.clone(),
            source: e.into(),
        })?;
    manifest_bytes.push(b'\n');
    let index_json = layout_index(&manifest);
    let out = opts.output.clone();
    let signature = (!opts.signers.is_empty())
        .then(|| crate::trust::bundle_sig::sign_manifest(&manifest_bytes, &opts.signers).to_vec());
    // Pull and pack at once: downloads start in pack order, several at a time, and the writer
    // waits for each blob only when its turn comes, so the bundle is written while the rest
    // still downloads.
    let mut order: HashMap<&Digest, usize> = HashMap::new();
    for (i, b) in manifest.blobs.iter().enumerate() {
        order.insert(&b.digest, i);
    }
    let mut missing = missing;
    missing.sort_by_key(|(d, _, _)| order.get(d).copied().unwrap_or(usize::MAX));
    // Room for every blob: the download stage never waits on the queue (the bytes ahead of
    // the writer are bounded by its budget instead).
    let (arrived, arrivals) = tokio::sync::mpsc::channel::<Arrival>(missing.len().max(1));
    let arrivals = std::sync::Mutex::new(arrivals);
    // The phase is the bundle's blob bytes as they are packed, each once; downloads are tasks.
    reporter.phase("collect", manifest.total_blob_bytes());
    let rt = tokio::runtime::Handle::current();
    let contents = Contents {
        manifest: &manifest,
        manifest_bytes: &manifest_bytes,
        signature: signature.as_deref(),
        index_json: &index_json,
        data: &data,
    };
    let (written, pulled) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            // The pack stage, on its own thread: the bundle in its fixed order, each blob this
            // run downloads taken from the queue when its turn comes.
            let writer = scope.spawn(|| {
                let ready = |d: &Digest| await_arrival(&arrivals, d, &fresh);
                let r = pack_stage(&out, opts, &contents, &ready, reporter);
                // Closing the queue stops the download stage when the writer fails.
                if let Ok(mut rx) = arrivals.lock() {
                    rx.close();
                }
                r
            });
            let pulled = rt.block_on(download_stage(
                registry,
                &opts.cache,
                missing,
                opts.jobs,
                arrived,
                reporter,
            ));
            let written = writer.join().unwrap_or_else(|_| {
                Err(WriteError::Aborted("the bundle writer panicked".into()).into())
            });
            (written, pulled)
        })
    });
    reporter.finish_phase();
    // A download failure explains a writer that stopped waiting for it.
    pulled?;
    let (written, parts) = written?;
    let artifacts = plan
        .artifacts
        .iter()
        .map(|a| CollectedArtifact {
            kind: a.kind,
            source: a.source.clone(),
            digest: a.digest.clone(),
            platforms: a
                .children
                .iter()
                .filter(|c| c.included)
                .filter_map(|c| c.platform.as_ref().map(|p| p.to_string()))
                .collect(),
            size: a.size,
        })
        .collect();
    Ok(CollectReport {
        bundle: opts.output.clone(),
        bundle_digest: Digest::of(&manifest_bytes),
        bundle_size: written.size,
        parts,
        artifacts,
        blobs: manifest.blobs.len(),
        blob_bytes: manifest.total_blob_bytes(),
        downloaded_bytes: to_download,
        signers: opts
            .signers
            .iter()
            .map(|k| k.key_id().to_string())
            .collect(),
        scans,
    })
}

/// The bundle's creation time: `SOURCE_DATE_EPOCH` when set, else the lock's (never the clock).
fn bundle_created(lock: &Lock) -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|s| s.trim().parse::<u64>().is_ok())
        .map(|_| now_rfc3339())
        .unwrap_or_else(|| lock.created.clone())
}

/// The OCI layout `index.json`: one entry per artifact, named so `skopeo copy
/// oci-archive:BUNDLE.tar:NAME` finds it (NAME is the source reference without digest).
pub fn layout_index(m: &BundleManifest) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = m
        .artifacts
        .iter()
        .map(|a| {
            let size = m
                .blobs
                .iter()
                .find(|b| b.digest == a.digest)
                .map(|b| b.size)
                .unwrap_or(0);
            let ref_name = match (&a.registry, &a.tag) {
                (Some(reg), Some(tag)) => format!("{reg}/{}:{tag}", a.repository),
                (Some(reg), None) => format!("{reg}/{}", a.repository),
                (None, Some(tag)) => format!("{}:{tag}", a.repository),
                (None, None) => a.repository.to_string(),
            };
            serde_json::json!({
                "mediaType": a.media_type,
                "digest": a.digest,
                "size": size,
                "annotations": {
                    "org.opencontainers.image.ref.name": ref_name,
                    "io.airlock.source": a.source,
                }
            })
        })
        .collect();
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}
