//! Scan evidence as OCI artifacts: per image and platform, the CycloneDX SBOM
//! ([`SBOM_ARTIFACT_TYPE`](super::image::SBOM_ARTIFACT_TYPE)) and the scan report
//! ([`REPORT_ARTIFACT_TYPE`](super::image::REPORT_ARTIFACT_TYPE)), each an OCI 1.1 manifest
//! whose `subject` is the platform manifest, so registries list them as its referrers and
//! `oras discover` / `cosign tree` find them. Deterministic: the same scan gives the same
//! bytes (no clock: the creation annotation is the caller's, i.e. the lock's, time).
//!
//! Which carried artifacts count as scan evidence is decided here, once ([`collected`]): only
//! the SBOMs and reports collect made itself, marked [`Origin::Collect`] in the signed
//! `airlock.json`. A publisher can attach any CycloneDX referrer (or an SBOM attestation) to
//! its image upstream; those cross as ordinary referrers but are never judged or recorded as
//! evidence, since they would let the source say what is inside its own image.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::bundle::reader::BundleContents;
use crate::bundle::{Artifact, ArtifactKind, Origin};
use crate::oci::{media, Descriptor, Digest};

/// The empty config (`{}`) OCI artifacts without a config point at.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// The ledger evidence kind of a carried SBOM (`evidence[].kind` of the admitting entry).
pub const SBOM_EVIDENCE: &str = "sbom";
/// The ledger evidence kind of a carried scan report.
pub const REPORT_EVIDENCE: &str = "scan-report";

/// The ledger evidence kind of a scan evidence artifact in `airlock.json`: [`SBOM_EVIDENCE`] or
/// [`REPORT_EVIDENCE`] for an SBOM or scan report referrer collect made, `None` for anything
/// else (an upstream referrer of the same `artifactType`, an attestation, an attachment).
pub fn evidence_kind(a: &Artifact) -> Option<&'static str> {
    use super::image::{REPORT_ARTIFACT_TYPE, SBOM_ARTIFACT_TYPE};
    if a.kind != ArtifactKind::Referrer || a.origin != Origin::Collect {
        return None;
    }
    match a.artifact_type.as_deref()? {
        SBOM_ARTIFACT_TYPE => Some(SBOM_EVIDENCE),
        REPORT_ARTIFACT_TYPE => Some(REPORT_EVIDENCE),
        _ => None,
    }
}

/// One piece of scan evidence a bundle carries.
#[derive(Debug, Clone, Copy)]
pub struct Collected<'a> {
    /// Its entry in `airlock.json`.
    pub artifact: &'a Artifact,
    /// [`SBOM_EVIDENCE`] or [`REPORT_EVIDENCE`].
    pub kind: &'static str,
    /// The image platform manifest it describes.
    pub subject: &'a Digest,
    /// Its content blob's descriptor.
    pub blob: &'a Descriptor,
    /// The content (checked against its digest by the bundle reader).
    pub bytes: &'a [u8],
}

/// The scan evidence collect made, in bundle order ([`evidence_kind`]), with its content; one
/// whose manifest or content the bundle lacks is left out (the reader refuses such a bundle).
pub fn collected(contents: &BundleContents) -> impl Iterator<Item = Collected<'_>> {
    contents.manifest.artifacts.iter().filter_map(|a| {
        let kind = evidence_kind(a)?;
        let subject = a.subject.as_ref()?;
        let (_, m) = contents.manifests.get(&a.digest)?;
        let blob = m.layers.first()?;
        let bytes = contents.evidence.get(&blob.digest)?;
        Some(Collected {
            artifact: a,
            kind,
            subject,
            blob,
            bytes,
        })
    })
}

/// The collect-made evidence of `kind` for the image platform manifest `subject`, if any.
pub fn collected_for<'a>(
    contents: &'a BundleContents,
    subject: &Digest,
    kind: &str,
) -> Option<Collected<'a>> {
    collected(contents).find(|c| c.subject == subject && c.kind == kind)
}

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bundle::BundleManifest;
    use crate::oci::{ParsedManifest, RepoName};
    use crate::scan::image::{REPORT_ARTIFACT_TYPE, SBOM_ARTIFACT_TYPE};

    const IN_TOTO_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

    fn subject() -> SubjectRef {
        SubjectRef {
            digest: Digest::of(b"the image platform manifest"),
            media_type: media::OCI_MANIFEST.into(),
            size: 27,
        }
    }

    fn entry(
        kind: ArtifactKind,
        origin: Origin,
        built: &BuiltArtifact,
        subject: Option<&Digest>,
    ) -> Artifact {
        Artifact {
            kind,
            source: "test".into(),
            registry: None,
            repository: RepoName::parse("app/web").expect("repository"),
            tag: None,
            digest: built.digest.clone(),
            media_type: media::OCI_MANIFEST.into(),
            platforms: Vec::new(),
            children: Vec::new(),
            size: built.size(),
            verification: Vec::new(),
            subject: subject.cloned(),
            artifact_type: Some(built.artifact_type.clone()),
            scan: None,
            origin,
        }
    }

    /// A bundle's contents holding `built`, listed as `artifacts`.
    fn contents(built: &[&BuiltArtifact], artifacts: Vec<Artifact>) -> BundleContents {
        let mut manifests = BTreeMap::new();
        let mut evidence = BTreeMap::new();
        for b in built {
            let parsed =
                ParsedManifest::parse(&b.manifest, Some(media::OCI_MANIFEST)).expect("manifest");
            manifests.insert(b.digest.clone(), (b.manifest.clone(), parsed));
            evidence.insert(b.blob_digest.clone(), b.blob.clone());
        }
        BundleContents {
            manifest: BundleManifest {
                format: crate::bundle::BUNDLE_FORMAT.into(),
                name: "b".into(),
                created: "2026-01-01T00:00:00Z".into(),
                sequence: 0,
                tool: "airlock test".into(),
                lock_digest: Digest::of(b"lock"),
                artifacts,
                blobs: Vec::new(),
                receipt: None,
                omitted: Vec::new(),
            },
            manifest_bytes: Vec::new(),
            signature: None,
            manifests,
            evidence,
        }
    }

    #[test]
    fn only_sbom_and_report_referrers_collect_made_are_evidence() {
        let s = subject();
        let d = Some(&s.digest);
        let built = |t: &str| artifact(t, Bytes::from_static(b"{}"), Some(&s), "t");
        let (sbom, report, bundle) = (
            built(SBOM_ARTIFACT_TYPE),
            built(REPORT_ARTIFACT_TYPE),
            built(IN_TOTO_BUNDLE),
        );
        let db = artifact(DB_ARTIFACT_TYPE, Bytes::from_static(b"db"), None, "t");
        use ArtifactKind::{Attachment, Image, Referrer};
        let cases = [
            (
                entry(Referrer, Origin::Collect, &sbom, d),
                Some(SBOM_EVIDENCE),
            ),
            (
                entry(Referrer, Origin::Collect, &report, d),
                Some(REPORT_EVIDENCE),
            ),
            // The publisher's own, of the very same artifact types.
            (entry(Referrer, Origin::Upstream, &sbom, d), None),
            (entry(Referrer, Origin::Upstream, &report, d), None),
            // Attestations (an in-toto CycloneDX predicate in a Sigstore bundle) never are.
            (entry(Referrer, Origin::Upstream, &bundle, d), None),
            (entry(Referrer, Origin::Collect, &bundle, d), None),
            (entry(Attachment, Origin::Upstream, &sbom, d), None),
            (entry(Attachment, Origin::Collect, &sbom, d), None),
            // The carried database is collect's, but not evidence about an image.
            (entry(Image, Origin::Collect, &db, None), None),
        ];
        for (a, want) in &cases {
            assert_eq!(
                evidence_kind(a),
                *want,
                "{:?} {:?} {:?}",
                a.kind,
                a.origin,
                a.artifact_type
            );
        }
    }

    #[test]
    fn the_collectors_sbom_is_taken_even_after_a_publishers_own() {
        let s = subject();
        let d = Some(&s.digest);
        let theirs = artifact(
            SBOM_ARTIFACT_TYPE,
            Bytes::from_static(br#"{"bomFormat":"CycloneDX","components":[]}"#),
            Some(&s),
            "t",
        );
        let ours = artifact(
            SBOM_ARTIFACT_TYPE,
            Bytes::from_static(br#"{"bomFormat":"CycloneDX","components":[{"name":"musl"}]}"#),
            Some(&s),
            "t",
        );
        let report = artifact(
            REPORT_ARTIFACT_TYPE,
            Bytes::from_static(b"{}"),
            Some(&s),
            "t",
        );
        // As collect writes them: what it discovered upstream first, its own after.
        let c = contents(
            &[&theirs, &ours, &report],
            vec![
                entry(ArtifactKind::Referrer, Origin::Upstream, &theirs, d),
                entry(ArtifactKind::Referrer, Origin::Collect, &ours, d),
                entry(ArtifactKind::Referrer, Origin::Collect, &report, d),
            ],
        );
        let got = collected_for(&c, &s.digest, SBOM_EVIDENCE).expect("collect's SBOM");
        assert_eq!(got.blob.digest, ours.blob_digest);
        assert_eq!(got.bytes, &ours.blob[..]);
        let all: Vec<(&str, &Digest)> = collected(&c).map(|e| (e.kind, &e.blob.digest)).collect();
        assert_eq!(
            all,
            [
                (SBOM_EVIDENCE, &ours.blob_digest),
                (REPORT_EVIDENCE, &report.blob_digest)
            ]
        );
        assert!(collected_for(&c, &Digest::of(b"another"), SBOM_EVIDENCE).is_none());

        // A bundle written before the mark (or only the publisher's): no evidence at all.
        let old = contents(
            &[&theirs, &ours],
            vec![
                entry(ArtifactKind::Referrer, Origin::Upstream, &theirs, d),
                entry(ArtifactKind::Referrer, Origin::Upstream, &ours, d),
            ],
        );
        assert_eq!(collected(&old).count(), 0);
    }
}
