//! Read-only views of manifests and indexes. Parsing never feeds back into the bytes we push.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{media, Digest, Platform};

/// The largest manifest airlock accepts, the same limit the distribution registry applies.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A content descriptor as it appears in manifests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// External URLs (foreign layers); airlock refuses to carry them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Platform, for index children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<RawPlatform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// The platform object of an index entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RawPlatform {
    /// Operating system.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl RawPlatform {
    /// As a [`Platform`].
    pub fn to_platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone().unwrap_or_default(),
        }
    }
}

/// What a manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image (or artifact) manifest: config + layers.
    Image,
    /// An index or manifest list: children.
    Index,
}

/// Why manifest bytes are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not the shape of a manifest.
    #[error("manifest {digest} is not valid JSON: {source}")]
    NotJson {
        /// The manifest's digest.
        digest: Digest,
        /// Parser error.
        source: serde_json::Error,
    },
    /// Docker schema 1.
    #[error("manifest {digest} is Docker schema 1, which cannot be carried with a stable digest; re-push the image with a current tool (schema 2 or OCI)")]
    Schema1 {
        /// The manifest's digest.
        digest: Digest,
    },
    /// A media type airlock does not know how to carry.
    #[error("manifest {digest} has unknown media type `{media_type}`")]
    UnknownMediaType {
        /// The manifest's digest.
        digest: Digest,
        /// The media type.
        media_type: String,
    },
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest {digest} is {size} bytes, over the {MAX_MANIFEST_BYTES} byte limit")]
    TooLarge {
        /// The manifest's digest.
        digest: Digest,
        /// Its size.
        size: usize,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<u64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    artifact_type: Option<String>,
}

/// The parts of a manifest airlock reads: what it references.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    /// The digest of the bytes this was parsed from.
    pub digest: Digest,
    /// The effective media type (the `mediaType` field, else the one the registry sent).
    pub media_type: String,
    /// Image or index.
    pub kind: ManifestKind,
    /// Config descriptor (images).
    pub config: Option<Descriptor>,
    /// Layers (images).
    pub layers: Vec<Descriptor>,
    /// Children (indexes).
    pub manifests: Vec<Descriptor>,
    /// Subject (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// Artifact type (OCI 1.1).
    pub artifact_type: Option<String>,
}

impl ParsedManifest {
    /// Parses manifest bytes. `content_type` is what the registry (or the bundle) said the media
    /// type is; the document's own `mediaType` wins when present.
    pub fn parse(
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<ParsedManifest, ManifestError> {
        let digest = Digest::of(bytes);
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                digest,
                size: bytes.len(),
            });
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|source| ManifestError::NotJson {
            digest: digest.clone(),
            source,
        })?;
        if raw.schema_version == Some(1) {
            return Err(ManifestError::Schema1 { digest });
        }
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain");
        let media_type = match (raw.media_type.as_deref(), content_type) {
            (Some(m), _) => m.to_string(),
            (None, Some(c)) => c.to_string(),
            (None, None) if raw.manifests.is_some() => media::OCI_INDEX.to_string(),
            (None, None) if raw.config.is_some() => media::OCI_MANIFEST.to_string(),
            (None, None) => {
                return Err(ManifestError::UnknownMediaType {
                    digest,
                    media_type: "(none)".into(),
                })
            }
        };
        if media_type == media::DOCKER_SCHEMA1 || media_type == media::DOCKER_SCHEMA1_SIGNED {
            return Err(ManifestError::Schema1 { digest });
        }
        let kind = match media_type.as_str() {
            media::OCI_INDEX | media::DOCKER_MANIFEST_LIST => ManifestKind::Index,
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => ManifestKind::Image,
            _ => {
                return Err(ManifestError::UnknownMediaType { digest, media_type });
            }
        };
        if kind == ManifestKind::Image && raw.config.is_none() {
            return Err(ManifestError::NotJson {
                digest,
                source: serde::de::Error::custom("image manifest has no `config`"),
            });
        }
        if kind == ManifestKind::Index && raw.manifests.is_none() {
            return Err(ManifestError::NotJson {
                digest,
                source: serde::de::Error::custom("index has no `manifests`"),
            });
        }
        Ok(ParsedManifest {
            digest,
            media_type,
            kind,
            config: raw.config,
            layers: raw.layers,
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            artifact_type: raw.artifact_type,
        })
    }

    /// Every blob (not manifest) this manifest needs: config then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_image_manifest() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
        let p = ParsedManifest::parse(m, None).expect("parse");
        assert_eq!(p.kind, ManifestKind::Image);
        assert_eq!(p.blobs().count(), 1);
    }

    #[test]
    fn refuses_schema1_and_garbage() {
        assert!(matches!(
            ParsedManifest::parse(br#"{"schemaVersion":1,"name":"x"}"#, None),
            Err(ManifestError::Schema1 { .. })
        ));
        assert!(matches!(
            ParsedManifest::parse(b"not json", None),
            Err(ManifestError::NotJson { .. })
        ));
        assert!(matches!(
            ParsedManifest::parse(
                br#"{"schemaVersion":2,"mediaType":"application/x-weird","config":{}}"#,
                None
            ),
            Err(ManifestError::NotJson { .. } | ManifestError::UnknownMediaType { .. })
        ));
        assert!(matches!(
            ParsedManifest::parse(
                br#"{"schemaVersion":2,"mediaType":"application/x-weird"}"#,
                None
            ),
            Err(ManifestError::UnknownMediaType { .. })
        ));
    }
}
