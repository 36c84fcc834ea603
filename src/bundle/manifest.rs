//! `airlock.json`: the bundle's table of contents, the thing signatures cover.

use serde::{Deserialize, Serialize};

use crate::oci::{Digest, Platform, RepoName, Tag};

/// The bundle manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Always [`super::BUNDLE_FORMAT`].
    pub format: String,
    /// Bundle name (from the spec).
    pub name: String,
    /// Creation time, RFC 3339 UTC (from the lock or `SOURCE_DATE_EPOCH`: reproducible).
    pub created: String,
    /// Replay protection: a number that grows with every bundle of this name a signer
    /// releases (default: `created` in Unix seconds). An importer with a ledger refuses one
    /// lower than the last it admitted from the same signer and name.
    #[serde(default)]
    pub sequence: u64,
    /// The tool that wrote it (`airlock 0.1.0`).
    pub tool: String,
    /// Digest of the lockfile it was collected from.
    pub lock_digest: Digest,
    /// Every artifact.
    pub artifacts: Vec<Artifact>,
    /// Every blob in entry order, manifests first.
    pub blobs: Vec<BlobEntry>,
    /// A delta bundle: digest of the receipt (`airlock receipt`) it was collected against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Digest>,
    /// A delta bundle: blobs the manifests need that are left out because the receipt says
    /// the site holds them. The reader accepts these, and only these, as absent; import checks
    /// each is in the target before it pushes anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<OmittedBlob>,
}

/// A blob intentionally left out of a delta bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OmittedBlob {
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Repositories on the site's registry (from the receipt) that hold it: import mounts from
    /// these when the target repository lacks it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepoName>,
}

/// What an artifact is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// A container image (or index).
    Image,
    /// A Helm chart as an OCI artifact.
    Chart,
    /// A signature, attestation, SBOM or referrers index attached to an image by tag.
    Attachment,
    /// A plain file carried as an OCI artifact (`files:` in the spec).
    File,
    /// An OCI artifact whose manifest names a `subject` (an SBOM, a scan report): pushed by
    /// digest and listed in the subject's referrers (API or `sha256-<hex>` fallback index).
    Referrer,
}

impl ArtifactKind {
    /// Evidence kinds: small, read whole and checked before anything is pushed.
    pub fn is_evidence(self) -> bool {
        matches!(self, ArtifactKind::Attachment | ArtifactKind::Referrer)
    }
}

/// Who made an artifact. Only what collect made itself counts as scan evidence: an upstream
/// referrer's `artifactType` and annotations are the publisher's word, while this field sits in
/// `airlock.json`, which the collector signs. Absent (bundles written before it existed, and
/// everything pulled from a source) means [`Origin::Upstream`].
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Pulled from a source registry or URL, attachments and referrers included.
    #[default]
    Upstream,
    /// Made by collect: its SBOMs, scan reports and a carried vulnerability database.
    Collect,
}

impl Origin {
    /// For `skip_serializing_if`: the default is left out, so bundles without collect-made
    /// artifacts keep their bytes.
    pub fn is_upstream(&self) -> bool {
        *self == Origin::Upstream
    }
}

/// One artifact: a root manifest and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Image or chart.
    pub kind: ArtifactKind,
    /// Where it came from, for people and the ledger (reference or chart URL).
    pub source: String,
    /// Source registry host, when it came from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Repository path the importer maps under its prefix (`library/nginx`, `charts/podinfo`):
    /// validated on parse, since it becomes part of a request path at the target.
    pub repository: RepoName,
    /// Tag to set at the target, if any (validated on parse, like the repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// Root manifest digest (what signatures cover).
    pub digest: Digest,
    /// Root manifest media type (sent as a header when pushed: the reader checks its grammar).
    pub media_type: String,
    /// Platforms asked for (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    /// Children of an index, with whether each is carried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Child>,
    /// Bytes of everything it carries (manifests, configs, layers; shared blobs counted for
    /// each artifact that uses them).
    pub size: u64,
    /// Image signatures verified at collect against the spec's trust policy: signer, Rekor
    /// log index, signature artifact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification: Vec<serde_json::Value>,
    /// For a referrer: the manifest it refers to (its `subject`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// For a referrer: its `artifactType` (`application/vnd.cyclonedx+json`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// For a scan report made at collect: what it found (OS, packages, findings by severity,
    /// suppressed, gate result, database digest and build time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::scan::image::ScanSummary>,
    /// Who made it (`collect` for its own evidence; absent: upstream).
    #[serde(default, skip_serializing_if = "Origin::is_upstream")]
    pub origin: Origin,
}

/// A child of an index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Child {
    /// Manifest digest.
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// Platform when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Whether the bundle carries it.
    pub included: bool,
}

/// A blob in the bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BlobEntry {
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type (manifests are recognized by it).
    pub media_type: String,
}

impl BundleManifest {
    /// Total bytes of all blobs.
    pub fn total_blob_bytes(&self) -> u64 {
        self.blobs
            .iter()
            .fold(0u64, |n, b| n.saturating_add(b.size))
    }

    /// True when the artifact's children list leaves some out (a platform subset).
    pub fn is_subset(artifact: &Artifact) -> bool {
        artifact.children.iter().any(|c| !c.included)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERRER: &str = r#"{"kind":"referrer","source":"s","repository":"app/web","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","media_type":"application/vnd.oci.image.manifest.v1+json","size":1,"subject":"sha256:1111111111111111111111111111111111111111111111111111111111111111","artifact_type":"application/vnd.cyclonedx+json"}"#;

    #[test]
    fn origin_absent_is_upstream_and_upstream_is_not_written() {
        // A bundle from before the field: its referrers are the publisher's.
        let a: Artifact = serde_json::from_str(REFERRER).expect("older artifact");
        assert_eq!(a.origin, Origin::Upstream);
        // Written back byte for byte: bundles without collect-made evidence keep their bytes.
        assert_eq!(serde_json::to_string(&a).expect("json"), REFERRER);
        let ours = Artifact {
            origin: Origin::Collect,
            ..a
        };
        let text = serde_json::to_string(&ours).expect("json");
        assert!(text.ends_with(r#","origin":"collect"}"#), "{text}");
        assert_eq!(serde_json::from_str::<Artifact>(&text).expect("back"), ours);
        let forged = REFERRER.replace('}', r#","origin":"airlock"}"#);
        let err = serde_json::from_str::<Artifact>(&forged).expect_err("unknown origin");
        assert!(
            err.to_string().contains("unknown variant `airlock`"),
            "{err}"
        );
    }
}
