//! Scan evidence as OCI artifacts: per image and platform, the CycloneDX SBOM
//! ([`SBOM_ARTIFACT_TYPE`](super::image::SBOM_ARTIFACT_TYPE)) and the scan report
//! ([`REPORT_ARTIFACT_TYPE`](super::image::REPORT_ARTIFACT_TYPE)), each an OCI 1.1 manifest
//! whose `subject` is the platform manifest, so registries list them as its referrers and
//! `oras discover` / `cosign tree` find them. Deterministic: the same scan gives the same
//! bytes (no clock: the creation annotation is the caller's, i.e. the lock's, time).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::oci::{media, Digest};

/// The empty config (`{}`) OCI artifacts without a config point at.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// The ledger evidence kind of a carried SBOM (`evidence[].kind` of the admitting entry).
pub const SBOM_EVIDENCE: &str = "sbom";
/// The ledger evidence kind of a carried scan report.
pub const REPORT_EVIDENCE: &str = "scan-report";

/// The artifact type of a carried vulnerability database (`collect --carry-db`).
pub const DB_ARTIFACT_TYPE: &str = "application/vnd.airlock.vulndb.v1";

/// The manifest a referrer points at.
#[derive(Debug, Clone)]
pub struct SubjectRef {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One OCI artifact built here: its manifest and its one content blob.
#[derive(Debug, Clone)]
pub struct BuiltArtifact {
    /// The manifest bytes (an OCI image manifest with `artifactType`).
    pub manifest: Bytes,
    /// Its digest.
    pub digest: Digest,
    /// `artifactType`.
    pub artifact_type: String,
    /// The content blob.
    pub blob: Bytes,
    /// Its digest.
    pub blob_digest: Digest,
}

impl BuiltArtifact {
    /// Bytes of everything it carries (manifest, empty config, content).
    pub fn size(&self) -> u64 {
        (self.manifest.len() + EMPTY_CONFIG.len() + self.blob.len()) as u64
    }
}

/// Builds an OCI artifact of one blob, referring to `subject` when given. `created` (RFC 3339)
/// goes in the `org.opencontainers.image.created` annotation.
pub fn artifact(
    artifact_type: &str,
    blob: Bytes,
    subject: Option<&SubjectRef>,
    created: &str,
) -> BuiltArtifact {
    let blob_digest = Digest::of(&blob);
    let manifest = manifest(
        artifact_type,
        &blob_digest,
        blob.len() as u64,
        subject,
        created,
    );
    BuiltArtifact {
        digest: Digest::of(&manifest),
        manifest,
        artifact_type: artifact_type.to_string(),
        blob,
        blob_digest,
    }
}

/// The manifest of an OCI artifact of one blob (`blob_digest`, `blob_size`), for blobs too big
/// to hold in memory (a carried database).
pub fn manifest(
    artifact_type: &str,
    blob_digest: &Digest,
    blob_size: u64,
    subject: Option<&SubjectRef>,
    created: &str,
) -> Bytes {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": media::OCI_EMPTY,
            "digest": Digest::of(EMPTY_CONFIG),
            "size": EMPTY_CONFIG.len(),
            "data": "e30=",
        },
        "layers": [{
            "mediaType": artifact_type,
            "digest": blob_digest,
            "size": blob_size,
        }],
        "annotations": {
            "org.opencontainers.image.created": created,
        },
    });
    if let Some(s) = subject {
        m["subject"] = serde_json::json!({
            "mediaType": s.media_type,
            "digest": s.digest,
            "size": s.size,
        });
    }
    // serde_json::Value keeps keys sorted: the bytes depend only on the content.
    Bytes::from(serde_json::to_vec(&m).unwrap_or_default())
}

/// The database a bundle's scans were made with, as recorded in `airlock.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseRecord {
    /// SHA-256 of the database file.
    pub digest: Digest,
    /// When it was built (RFC 3339).
    pub built_at: String,
}
