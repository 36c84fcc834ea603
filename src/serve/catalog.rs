//! What the registry answers for names: repositories, their tags, which digests each may
//! serve (a blob is only served under a repository whose artifacts use it, as a registry
//! scopes blobs), and the referrers of each manifest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;

use crate::bundle::BundleManifest;
use crate::oci::{Digest, ManifestKind, RepoName};

use super::{HeldManifest, ServeError};

/// One repository.
#[derive(Debug, Default)]
pub struct Repository {
    /// Tag → manifest digest.
    pub tags: BTreeMap<String, Digest>,
    /// Every manifest and blob digest this repository serves.
    pub digests: BTreeSet<Digest>,
    /// Manifests in this repository that name a `subject`: subject → descriptors.
    pub referrers: BTreeMap<Digest, Vec<ReferrerDescriptor>>,
}

/// A referrer as the referrers API lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerDescriptor {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its `artifactType`, else its config's media type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Its annotations.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub annotations: serde_json::Map<String, serde_json::Value>,
}

/// Every repository, by name.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Repositories by name (sorted, as `_catalog` lists them).
    pub repositories: BTreeMap<RepoName, Repository>,
}

impl Catalog {
    /// Builds the catalog from the artifacts of `airlock.json` and the manifests read.
    pub fn build(
        manifest: &BundleManifest,
        manifests: &HashMap<Digest, HeldManifest>,
        path: &Path,
    ) -> Result<Catalog, ServeError> {
        let mut catalog = Catalog::default();
        for a in &manifest.artifacts {
            let repo = catalog
                .repositories
                .entry(a.repository.clone())
                .or_default();
            if let Some(tag) = &a.tag {
                if let Some(first) = repo.tags.get(tag.as_str()).filter(|d| **d != a.digest) {
                    return Err(ServeError::TagConflict {
                        path: path.to_path_buf(),
                        repository: a.repository.to_string(),
                        tag: tag.to_string(),
                        first: first.clone(),
                        second: a.digest.clone(),
                    });
                }
                repo.tags.insert(tag.to_string(), a.digest.clone());
            }
            let mut todo = vec![a.digest.clone()];
            while let Some(d) = todo.pop() {
                let Some(m) = manifests.get(&d) else {
                    continue;
                };
                if !repo.digests.insert(d.clone()) {
                    continue;
                }
                if let Some(subject) = &m.parsed.subject {
                    let list = repo.referrers.entry(subject.digest.clone()).or_default();
                    if !list.iter().any(|r| r.digest == d) {
                        list.push(referrer(&d, m));
                    }
                }
                match m.parsed.kind {
                    ManifestKind::Image => {
                        repo.digests
                            .extend(m.parsed.blobs().map(|b| b.digest.clone()));
                    }
                    ManifestKind::Index => {
                        todo.extend(m.parsed.manifests.iter().map(|c| c.digest.clone()));
                    }
                }
            }
        }
        Ok(catalog)
    }
}

fn referrer(digest: &Digest, m: &HeldManifest) -> ReferrerDescriptor {
    let annotations = serde_json::from_slice::<serde_json::Value>(&m.bytes)
        .ok()
        .and_then(|v| v.get("annotations").and_then(|a| a.as_object()).cloned())
        .unwrap_or_default();
    // The spec: `artifactType` if present, else the config's media type.
    let artifact_type = m
        .parsed
        .artifact_type
        .clone()
        .or_else(|| m.parsed.config.as_ref().map(|c| c.media_type.clone()));
    ReferrerDescriptor {
        media_type: m.media_type.clone(),
        digest: digest.clone(),
        size: m.bytes.len() as u64,
        artifact_type,
        annotations,
    }
}
