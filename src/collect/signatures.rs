//! Signature verification in `collect`: every image a rule of the lock's trust policy covers,
//! checked against its carried signatures before any layer moves.

use std::collections::BTreeMap;
use std::path::Path;

use super::plan::Plan;
use super::{cache_path, reg_err, repo_of, CollectError, CollectOptions, MAX_ATTACHMENT_BYTES};
use crate::bundle::ArtifactKind;
use crate::lock::{Lock, LockedImage};
use crate::oci::{Descriptor, Digest, ParsedManifest};
use crate::registry::{Registry, Repo};

/// Reads a blob of at most [`MAX_ATTACHMENT_BYTES`] through the cache (downloading it when
/// missing). The caller checks its digest.
pub(super) async fn small_blob(
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
pub(super) async fn signature_artifacts(
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
pub(super) async fn verify_signatures(
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
