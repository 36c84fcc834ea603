//! The connected side: resolve a spec to a lock (`lock`), then pull everything the lock pins and
//! pack it into a bundle (`collect`).

pub mod chart;
pub mod chart_images;
pub mod discover;
pub mod scan;

mod download;
mod fetch;
mod pack;
mod plan;
mod resolve;
mod scan_stage;
mod signatures;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use futures_util::stream::StreamExt;
use serde::Serialize;

use crate::bundle::parts::{PartsError, SplitReport};
use crate::bundle::writer::{Contents, WriteError};
use crate::bundle::{ArtifactKind, BundleManifest, BUNDLE_FORMAT};
use crate::lock::{Lock, LockedChart};
use crate::oci::{Digest, ManifestError};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError, Repo};

pub use chart::ChartError;
pub use pack::layout_index;
pub use resolve::{lock_image, lock_pinned_spec, lock_spec};

use download::download_stage;
use fetch::{fetch_artifact, Pinned};
use pack::{pack_stage, InPackOrder};
use plan::Plan;
use resolve::children_of;
use signatures::verify_signatures;

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
    // Resolve is `lock`; here the stages run: fetch manifests → plan → verify → download →
    // pack, or with a scan policy download → scan, then pack. The fetch stage feeds the plan
    // stage through a bounded queue: manifests are fetched many at once, planned one by one in
    // lock order.
    let sources = fetch::attachment_sources(lock);
    let mut fetched = fetch::fetch_stage(registry, fetch::pins(lock, &sources));
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
                plan.add_http_chart(registry, &opts.cache, repo, name, version, url, sha256)
                    .await?;
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

    // Which blobs the cache lacks (none after a scan, which waits for them all).
    let missing = plan.not_in_cache(&opts.cache);
    let to_download: u64 = missing.iter().map(|(_, d, _)| d.size).sum();
    let fresh: std::collections::HashSet<Digest> =
        missing.iter().map(|(d, _, _)| d.clone()).collect();

    // The pack order, and where each blob's bytes come from.
    let (blobs, data) = plan.pack_order(&opts.cache, &fresh, &checked);

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
    // Pull and pack at once: downloads start in pack order, several at a time, and the pack
    // stage takes each from the queue when its turn comes, so the bundle is written while the
    // rest still downloads.
    let mut order: HashMap<&Digest, usize> = HashMap::new();
    for (i, b) in manifest.blobs.iter().enumerate() {
        order.insert(&b.digest, i);
    }
    let mut missing = missing;
    missing.sort_by_key(|(d, _, _)| order.get(d).copied().unwrap_or(usize::MAX));
    let (downloaded, downloads) = download::queue(missing.len());
    // The phase is the bundle's blob bytes as they are packed, each once; downloads are tasks.
    reporter.phase("collect", manifest.total_blob_bytes());
    let rt = tokio::runtime::Handle::current();
    let contents = Contents {
        manifest: &manifest,
        manifest_bytes: &manifest_bytes,
        signature: signature.as_deref(),
        index_json: &index_json,
    };
    let blobs = InPackOrder::new(&manifest.blobs, &data, downloads);
    let (written, pulled) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            // The pack stage, on its own thread: the bundle in its fixed order. When it stops
            // it drops its end of the queue, which stops the download stage.
            let writer = scope.spawn(|| pack_stage(&out, opts, &contents, blobs, reporter));
            let pulled = rt.block_on(download_stage(
                registry,
                &opts.cache,
                missing,
                opts.jobs,
                downloaded,
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
