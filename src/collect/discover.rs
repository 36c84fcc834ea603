//! Finding what is attached to an image at lock time, the way `cosign verify` looks: the OCI
//! referrers API first, then (on a registry without it) the referrers tag schema's
//! `sha256-<hex>` index, then cosign's `.sig`, `.att` and `.sbom` tags. Referrers of referrers
//! (a signature on an SBOM) are followed to [`MAX_DEPTH`] hops and each is pinned once.
//!
//! A referrer is believed only after its own manifest is read by digest: its `subject` must be
//! the digest it was listed for (a registry's listing, or another tool's fallback index, could
//! point anywhere), and its declared content must fit [`MAX_ATTACHMENT_BYTES`] before any blob
//! of it is downloaded. Its artifact type comes from the manifest, not from the listing.

use std::collections::{BTreeSet, VecDeque};

use super::{reg_err, repo_of, CollectError, ATTACHMENT_SUFFIXES, MAX_ATTACHMENT_BYTES};
use crate::lock::LockedAttachment;
use crate::oci::{Digest, ParsedManifest, Tag};
use crate::reference::Reference;
use crate::registry::referrers::{Referrers, MAX_REFERRERS};
use crate::registry::{Registry, Repo};

/// How many referrer hops from a carried manifest are followed (1: its referrers; 2: their
/// referrers; …).
pub const MAX_DEPTH: usize = 3;

/// The artifact type a referrer declares: `artifactType`, else its config's media type.
pub fn artifact_type_of(m: &ParsedManifest) -> Option<String> {
    m.artifact_type
        .clone()
        .or_else(|| m.config.as_ref().map(|c| c.media_type.clone()))
}

/// The content a manifest declares (its blobs and, for an index, its children), refused over
/// [`MAX_ATTACHMENT_BYTES`] before anything of it is downloaded.
fn check_size(what: &str, digest: &Digest, m: &ParsedManifest) -> Result<(), CollectError> {
    let size: u64 =
        m.blobs().map(|d| d.size).sum::<u64>() + m.manifests.iter().map(|d| d.size).sum::<u64>();
    if size > MAX_ATTACHMENT_BYTES {
        return Err(CollectError::Unsupported {
            artifact: what.to_string(),
            why: format!(
                "attachment {digest} declares {size} bytes of content, over the {MAX_ATTACHMENT_BYTES}-byte limit for signature material; refused before download"
            ),
        });
    }
    Ok(())
}

/// Reads a listed referrer by digest and checks it names `subject`.
async fn read_referrer(
    registry: &Registry,
    repo: &Repo,
    what: &str,
    subject: &Digest,
    digest: &Digest,
) -> Result<ParsedManifest, CollectError> {
    let raw = registry
        .get_manifest(repo, digest)
        .await
        .map_err(reg_err(what))?;
    let parsed =
        ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(|source| {
            CollectError::Manifest {
                artifact: format!("{what}: referrer {digest}"),
                source,
            }
        })?;
    let names = parsed.subject.as_ref().map(|s| &s.digest);
    if names != Some(subject) {
        return Err(CollectError::ReferrerSubject {
            artifact: what.to_string(),
            referrer: digest.clone(),
            listed_for: subject.clone(),
            names: names.cloned(),
        });
    }
    check_size(what, digest, &parsed)?;
    Ok(parsed)
}

/// A manifest under a tag, when the tag exists.
async fn tagged(
    registry: &Registry,
    repo: &Repo,
    what: &str,
    tag: &Tag,
) -> Result<Option<(Digest, ParsedManifest)>, CollectError> {
    if registry
        .head_manifest(repo, tag)
        .await
        .map_err(reg_err(what))?
        .is_none()
    {
        return Ok(None);
    }
    let raw = registry
        .get_manifest(repo, tag)
        .await
        .map_err(reg_err(what))?;
    let parsed =
        ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(|source| {
            CollectError::Manifest {
                artifact: what.to_string(),
                source,
            }
        })?;
    check_size(what, &raw.digest, &parsed)?;
    Ok(Some((raw.digest, parsed)))
}

/// Everything attached to `subjects` (an image's root and its carried children) in the
/// repository of `r`, each pinned by digest once.
pub async fn discover_attachments(
    registry: &Registry,
    r: &Reference,
    subjects: &[Digest],
) -> Result<Vec<LockedAttachment>, CollectError> {
    let repo = repo_of(r);
    let name = format!("{}/{}", r.registry, r.repository);
    let mut out: Vec<LockedAttachment> = Vec::new();
    let mut seen: BTreeSet<Digest> = subjects.iter().cloned().collect();
    let mut queue: VecDeque<(Digest, usize)> = subjects.iter().map(|s| (s.clone(), 0)).collect();
    while let Some((subject, depth)) = queue.pop_front() {
        let what = format!("{name}@{subject}");
        let mut found: Vec<Digest> = Vec::new();
        match registry
            .list_referrers(&repo, &subject)
            .await
            .map_err(reg_err(&what))?
        {
            Referrers::Listed(list) => {
                for d in list {
                    if !seen.insert(d.digest.clone()) {
                        continue;
                    }
                    let m = read_referrer(registry, &repo, &what, &subject, &d.digest).await?;
                    out.push(LockedAttachment {
                        subject: subject.clone(),
                        tag: None,
                        digest: d.digest.clone(),
                        media_type: m.media_type.clone(),
                        artifact_type: artifact_type_of(&m),
                    });
                    found.push(d.digest);
                }
            }
            Referrers::NoApi => {
                // The referrers tag schema: an index listing them, carried whole.
                let tag = Tag::for_subject(&subject, "");
                let at = format!("{name}:{tag}");
                if let Some((digest, index)) = tagged(registry, &repo, &at, &tag).await? {
                    if index.manifests.len() > MAX_REFERRERS {
                        return Err(CollectError::Unsupported {
                            artifact: at,
                            why: format!(
                                "the referrers index {digest} lists {} entries, more than {MAX_REFERRERS}; refused",
                                index.manifests.len()
                            ),
                        });
                    }
                    if seen.insert(digest.clone()) {
                        for d in &index.manifests {
                            read_referrer(registry, &repo, &at, &subject, &d.digest).await?;
                            if seen.insert(d.digest.clone()) {
                                found.push(d.digest.clone());
                            }
                        }
                        out.push(LockedAttachment {
                            subject: subject.clone(),
                            tag: Some(tag),
                            digest,
                            media_type: index.media_type,
                            artifact_type: None,
                        });
                    }
                }
            }
        }
        for suffix in ATTACHMENT_SUFFIXES.iter().filter(|s| !s.is_empty()) {
            let tag = Tag::for_subject(&subject, suffix);
            let at = format!("{name}:{tag}");
            if let Some((digest, m)) = tagged(registry, &repo, &at, &tag).await? {
                if seen.insert(digest.clone()) {
                    out.push(LockedAttachment {
                        subject: subject.clone(),
                        tag: Some(tag),
                        digest,
                        media_type: m.media_type,
                        artifact_type: None,
                    });
                }
            }
        }
        if depth + 1 < MAX_DEPTH {
            queue.extend(found.into_iter().map(|d| (d, depth + 1)));
        }
    }
    Ok(out)
}
