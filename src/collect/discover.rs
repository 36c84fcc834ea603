//! Finding what is attached to an image at lock time, the way `cosign verify` looks: the OCI
//! referrers API first, then (on a registry without it) the referrers tag schema's
//! `sha256-<hex>` index, then cosign's `.sig`, `.att` and `.sbom` tags. Referrers of referrers
//! (a signature on an SBOM) are followed to [`MAX_DEPTH`] hops and each is pinned once.
//!
//! A referrer is believed only after its own manifest is read by digest: its `subject` must be
//! the digest it was listed for (a registry's listing, or another tool's fallback index, could
//! point anywhere), and its declared content must fit [`MAX_ATTACHMENT_BYTES`] before any blob
//! of it is downloaded. Its artifact type comes from the manifest, not from the listing.
//!
//! Asking costs a round trip each, so one [`Discovery`] serves a whole lock run and asks each
//! question once: a registry that answered "no referrers API" (404, 400, 405, not an index) is
//! not asked again, and a repository's tags are listed once and only the attachment tags that
//! exist are fetched, instead of a probe per candidate tag and subject. A listing longer than
//! [`MAX_TAG_LISTING_BYTES`] or [`MAX_TAG_LISTING_PAGES`] (or refused) is not read further:
//! that repository gets the probes.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{reg_err, repo_of, CollectError, ATTACHMENT_SUFFIXES, MAX_ATTACHMENT_BYTES};
use crate::lock::LockedAttachment;
use crate::oci::{Digest, ParsedManifest, Tag};
use crate::reference::Reference;
use crate::registry::referrers::{Referrers, MAX_REFERRERS};
use crate::registry::{Registry, RegistryError, Repo};

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

/// Most bytes of one repository's tag listing read to find its attachment tags (all pages).
pub const MAX_TAG_LISTING_BYTES: usize = 1024 * 1024;
/// Most pages of one repository's tag listing read.
pub const MAX_TAG_LISTING_PAGES: usize = 16;
/// Most attachment tags one lock run keeps in memory over all repositories; a repository whose
/// tags would pass it gets the probes.
pub const MAX_KEPT_TAGS: usize = 65_536;

/// Whether `tag` is one an attachment could be under: `sha256-<64 hex>` plus a suffix of
/// [`ATTACHMENT_SUFFIXES`].
pub fn is_attachment_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = rest.split_at(rest.len().min(64));
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && ATTACHMENT_SUFFIXES.contains(&suffix)
}

/// What is known of a repository's attachment tags.
enum AttachmentTags {
    /// The listing was read: these attachment tags exist, no others.
    Listed(HashSet<Tag>),
    /// The listing was too long or refused: ask for each tag.
    Probe,
}

/// What one lock run has learnt about the registries it asks, shared by every image.
#[derive(Default)]
pub struct Discovery {
    /// Per registry host: `Some(false)` once it answered "no referrers API", `Some(true)` once
    /// it listed. The async lock makes the first question about a host the only one in flight.
    api: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<bool>>>>>,
    /// Per repository: its attachment tags, listed once.
    tags: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<AttachmentTags>>>>,
    /// Attachment tags held over all repositories (bounded by [`MAX_KEPT_TAGS`]).
    kept: AtomicUsize,
}

impl Discovery {
    /// The referrers of `subject`, without asking a registry already known to have no API.
    async fn referrers(
        &self,
        registry: &Registry,
        repo: &Repo,
        subject: &Digest,
    ) -> Result<Referrers, RegistryError> {
        let host = self
            .api
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(repo.registry.clone())
            .or_default()
            .clone();
        let mut known = host.lock().await;
        match *known {
            Some(false) => Ok(Referrers::NoApi),
            Some(true) => {
                drop(known);
                registry.list_referrers(repo, subject).await
            }
            None => {
                // An error leaves it unknown: the next subject asks again.
                let answer = registry.list_referrers(repo, subject).await?;
                *known = Some(matches!(answer, Referrers::Listed(_)));
                Ok(answer)
            }
        }
    }

    /// The attachment tags of `repo`, listed on first use.
    async fn tags(
        &self,
        registry: &Registry,
        repo: &Repo,
    ) -> Result<Arc<tokio::sync::OnceCell<AttachmentTags>>, RegistryError> {
        let cell = self
            .tags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(repo.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let listed = registry
                .list_tags_within(
                    repo,
                    MAX_TAG_LISTING_PAGES,
                    MAX_TAG_LISTING_BYTES,
                    is_attachment_tag,
                )
                .await?;
            let Some(listed) = listed else {
                return Ok(AttachmentTags::Probe);
            };
            let n = listed.len();
            if self.kept.fetch_add(n, Ordering::Relaxed) + n > MAX_KEPT_TAGS {
                self.kept.fetch_sub(n, Ordering::Relaxed);
                return Ok(AttachmentTags::Probe);
            }
            Ok::<_, RegistryError>(AttachmentTags::Listed(listed.into_iter().collect()))
        })
        .await?;
        Ok(cell)
    }

    /// A manifest under a tag, when the tag exists: looked up in the repository's listing
    /// (then one GET), or asked with a HEAD where the repository is probed.
    async fn tagged(
        &self,
        registry: &Registry,
        repo: &Repo,
        what: &str,
        tag: &Tag,
    ) -> Result<Option<(Digest, ParsedManifest)>, CollectError> {
        let tags = self.tags(registry, repo).await.map_err(reg_err(what))?;
        let exists = match tags.get() {
            Some(AttachmentTags::Listed(set)) => set.contains(tag),
            Some(AttachmentTags::Probe) | None => registry
                .head_manifest(repo, tag)
                .await
                .map_err(reg_err(what))?
                .is_some(),
        };
        if !exists {
            return Ok(None);
        }
        read_tagged(registry, repo, what, tag).await.map(Some)
    }
}

/// Reads the manifest under a tag known to exist, checked like a referrer's.
async fn read_tagged(
    registry: &Registry,
    repo: &Repo,
    what: &str,
    tag: &Tag,
) -> Result<(Digest, ParsedManifest), CollectError> {
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
    Ok((raw.digest, parsed))
}

/// Everything attached to `subjects` (an image's root and its carried children) in the
/// repository of `r`, each pinned by digest once.
pub async fn discover_attachments(
    discovery: &Discovery,
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
        match discovery
            .referrers(registry, &repo, &subject)
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
                if let Some((digest, index)) = discovery.tagged(registry, &repo, &at, &tag).await? {
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
            if let Some((digest, m)) = discovery.tagged(registry, &repo, &at, &tag).await? {
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
