//! The isolated side: stream a bundle, verify every byte, push blobs, then manifests by digest,
//! then record, then tags. Nothing is tagged unless the whole bundle verified and, with a
//! ledger, the import is recorded. The order is [`stages`]: each stage's type consumes the one
//! before, so tagging before recording does not compile. The blobs go through `read.rs` (the
//! bundle read once, through the gates), `plan.rs` (what the target lacks) and `upload.rs`
//! (the uploads), joined by bounded queues in `pipeline.rs`; manifests and tags are `push.rs`.

pub mod gate;
mod located;
pub mod mapping;
mod pipeline;
mod plan;
mod push;
mod read;
pub mod record;
pub mod referrers;
pub mod replay;
pub mod stages;
mod upload;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::bundle::{Artifact, ArtifactKind, BundleError};
use crate::oci::Digest;
use crate::registry::{RegistryError, Repo};

pub use mapping::{Mapping, MappingError, Target};
pub use push::{MANIFESTS_TASK, TAGS_TASK};
pub use record::{RecordError, Recorder};
pub use stages::{import, import_from, run};

/// Upload chunk size: a blob up to this size is read whole and sent in one request; larger
/// ones go in chunks of this size. Bounds memory: see [`MAX_INFLIGHT`].
pub const CHUNK_SIZE: usize = 8 * 1024 * 1024;
/// Blob data in flight, in chunks: uploads run within `MAX_INFLIGHT * CHUNK_SIZE` bytes (see
/// `upload::run`). With the queues between the stages (`pipeline.rs`: one blob or chunk
/// queued from read to plan and one from plan to upload, one in each stage's hands, two queued
/// for a streaming upload), at most about `(MAX_INFLIGHT + 6) * CHUNK_SIZE` bytes of blob data
/// are in memory.
pub const MAX_INFLIGHT: usize = 4;

/// How many scan-gate failures an import error names; the rest are counted. Every one is in
/// the carried report, which the rejected ledger entry keeps as evidence, so the message (and
/// the ledger line recording it, capped at 256 KiB) stays small however many findings fail.
const FAILURES_SHOWN: usize = 20;

fn failures_summary(failures: &[String]) -> String {
    let mut s = failures
        .iter()
        .take(FAILURES_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > FAILURES_SHOWN {
        s.push_str(&format!(
            "; and {} more (the scan report lists every one)",
            failures.len() - FAILURES_SHOWN
        ));
    }
    s
}

/// What can go wrong importing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bundle is bad; nothing was tagged.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The target registry failed; nothing was tagged unless the report says so.
    #[error("{what}: {source}")]
    Registry {
        /// What was being done.
        what: String,
        /// The error.
        source: RegistryError,
    },
    /// Path mapping.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The isolated side's image policy refused the bundle before anything was pushed.
    #[error("refused: {0}")]
    Gate(#[from] gate::GateError),
    /// The bundle is older than one the ledger says was admitted.
    #[error("refused: {0}")]
    Replay(#[from] replay::ReplayError),
    /// The scan gate could not judge the carried evidence; nothing was pushed.
    #[error("refused: scan gate")]
    ScanGate(#[source] crate::scan::gate::GateError),
    /// The scan gate failed the bundle; nothing was pushed.
    #[error(
        "refused: scan gate failed, nothing pushed: {}",
        failures_summary(failures)
    )]
    ScanFailed {
        /// Image, platform, advisory, package and version of each failure.
        failures: Vec<String>,
        /// The carried SBOMs and reports the gate judged: the rejection's evidence in the
        /// ledger.
        evidence: record::CarriedEvidence,
    },
    /// A delta bundle leaves out blobs the target does not have; nothing was pushed.
    #[error("refused: delta bundle: {} blob(s) it leaves out are not in the target registry: {}; import the bundle the receipt was taken after first, or collect without --have", missing.len(), missing.join(", "))]
    OmittedMissing {
        /// `<digest> (<size> bytes) for <repository>`, each.
        missing: Vec<String>,
    },
    /// The registry declined to mount a streamed blob into a second repository.
    #[error("{repo}: the registry refused to mount blob {digest} from {from}; re-run the import with a mapping that puts both artifacts in one repository")]
    MountRefused {
        /// The repository that needed it.
        repo: String,
        /// The blob.
        digest: Digest,
        /// Where it was uploaded.
        from: String,
    },
    /// The target refused an index with missing children and no derived index could be made.
    #[error("{source_ref}: cannot derive an index of the carried platforms from {digest}")]
    DeriveIndex {
        /// The artifact.
        source_ref: String,
        /// Its index.
        digest: Digest,
    },
    /// A referrers fallback index at the target cannot be merged (e.g. a non-index there).
    #[error("{what}: {why}")]
    Referrers {
        /// Repository, tag and subject.
        what: String,
        /// Why.
        why: String,
    },
    /// The ledger cannot take the record; see the variant for what was pushed.
    #[error(transparent)]
    Record(Box<record::RecordError>),
    /// The import is recorded as admitted but a tag could not be set.
    #[error("recorded as admitted at entry {index} of ledger `{}`, but not every tag is set; run the import again to set them (no second entry is made)", ledger.display())]
    TagsAfterRecord {
        /// The entry.
        index: u64,
        /// The ledger directory.
        ledger: std::path::PathBuf,
        /// What failed.
        #[source]
        source: Box<ImportError>,
    },
    /// The import failed and its rejection could not be recorded either.
    #[error("{} (and the ledger could not record the rejection: {record})", crate::error_chain(error.as_ref()))]
    RejectionUnrecorded {
        /// Why the import failed.
        error: Box<ImportError>,
        /// Why the record failed, one line.
        record: String,
    },
    /// The upload side stopped (its own error says why).
    #[error("the upload side stopped")]
    UploadStopped,
    /// An upload task died.
    #[error("upload task failed")]
    UploadTask(#[source] tokio::task::JoinError),
    /// The bundle reader thread panicked.
    #[error("the bundle reader panicked")]
    ReaderPanicked,
}

impl From<record::RecordError> for ImportError {
    fn from(e: record::RecordError) -> Self {
        ImportError::Record(Box::new(e))
    }
}

/// One artifact as imported.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedArtifact {
    /// Image or chart.
    pub kind: ArtifactKind,
    /// Where it came from.
    pub source: String,
    /// Target repository (`host/prefix/path`).
    pub target: String,
    /// Tag set, if any.
    pub tag: Option<String>,
    /// The original root digest (what signatures cover).
    pub digest: Digest,
    /// When the target refused an index with missing children: the derived index of the carried
    /// children that was pushed and tagged instead.
    pub derived_digest: Option<Digest>,
    /// Signatures verified at import against the isolated side's policy (`--policy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<crate::trust::verify::SignatureResult>,
    /// Why the artifact was left out (`--on-untrusted skip-artifact`); nothing of it was pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What the ledger records as the policy an import applied: the sha256 of the one policy file
/// given (`--policy` or `--scan-policy`), or with both, the sha256 of
/// `"<policy digest>\n<scan-policy digest>\n"`; `None` when neither was given.
pub fn policy_digest(opts: &ImportOptions) -> Option<Digest> {
    let image = opts.image_policy.as_ref().map(|p| p.digest.clone());
    let scan = opts.scan_gate.as_ref().map(|g| g.policy_digest.clone());
    match (image, scan) {
        (None, None) => None,
        (Some(d), None) | (None, Some(d)) => Some(d),
        (Some(i), Some(s)) => Some(Digest::of(format!("{i}\n{s}\n").as_bytes())),
    }
}

impl ImportedArtifact {
    fn new(
        a: &Artifact,
        repo: &Repo,
        derived_digest: Option<Digest>,
        signatures: Vec<crate::trust::verify::SignatureResult>,
        skipped: Option<String>,
    ) -> Self {
        ImportedArtifact {
            kind: a.kind,
            source: a.source.clone(),
            target: repo.to_string(),
            tag: a.tag.as_ref().map(|t| t.to_string()),
            digest: a.digest.clone(),
            derived_digest,
            signatures,
            skipped,
        }
    }
}

/// What `import` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ImportReport {
    /// Bundle name.
    pub bundle: String,
    /// Artifacts.
    pub artifacts: Vec<ImportedArtifact>,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Blobs mounted from another repository of the target.
    pub blobs_mounted: usize,
    /// Blobs the target already had.
    pub blobs_skipped: usize,
    /// Bytes uploaded.
    pub bytes_pushed: u64,
    /// Manifests pushed.
    pub manifests_pushed: usize,
    /// Manifests the target already had.
    pub manifests_skipped: usize,
    /// Tags set or moved.
    pub tags_set: usize,
    /// Tags that already pointed at the right digest.
    pub tags_unchanged: usize,
    /// The bundle signature gate's outcome.
    pub signature: Option<crate::bundle::signature::SignatureStatus>,
    /// Referrers fallback indexes (`sha256-<hex>` tags) created or extended.
    pub referrer_indexes_updated: usize,
    /// Referrers fallback indexes that already listed everything.
    pub referrer_indexes_unchanged: usize,
    /// Subjects whose referrers the target's referrers API lists by itself.
    pub referrers_via_api: usize,
}

/// Options for `import`.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// What the bundle's signatures must satisfy.
    pub signature: crate::bundle::signature::SignaturePolicy,
    /// The target registry and prefix.
    pub target: Target,
    /// How names map.
    pub mapping: Mapping,
    /// Concurrent registry checks.
    pub jobs: usize,
    /// The isolated side's scan gate, judged on the carried evidence before anything is
    /// pushed (none: no scan gate).
    pub scan_gate: Option<Arc<crate::scan::gate::ImportGate>>,
    /// The isolated side's image-signature policy, checked before anything is pushed.
    pub image_policy: Option<gate::ImagePolicy>,
    /// Skip the replay check a ledger makes (`--allow-older`: a deliberate rollback).
    pub allow_older: bool,
    /// Also write the bundle's plain files (`files:`) here, each verified before it appears.
    pub files_to: Option<std::path::PathBuf>,
}

pub(crate) fn reg<'e>(
    what: impl Into<String> + 'e,
) -> impl FnOnce(RegistryError) -> ImportError + 'e {
    move |source| ImportError::Registry {
        what: what.into(),
        source,
    }
}

/// The index of only the carried children, for registries that refuse an index whose children
/// are not all present. Everything else in the original index is kept.
pub fn derived_index(original: &[u8], included: &HashSet<&Digest>) -> Option<Bytes> {
    let mut v: serde_json::Value = serde_json::from_slice(original).ok()?;
    let list = v.get_mut("manifests")?.as_array_mut()?;
    list.retain(|m| {
        m.get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse::<Digest>().ok())
            .is_some_and(|d| included.contains(&d))
    });
    serde_json::to_vec(&v).ok().map(Bytes::from)
}
