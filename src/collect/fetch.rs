//! The fetch stage of `collect`: every registry artifact the lock pins ([`Pinned`]), its root
//! manifest and carried children fetched by digest and checked against the lock, handed to the
//! plan stage as [`Fetched`] in lock order.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::{children_of, reg_err, repo_of, CollectError, MAX_ATTACHMENT_BYTES};
use crate::bundle::{ArtifactKind, Child};
use crate::lock::{Lock, LockedChild};
use crate::oci::{media, Descriptor, Digest, ManifestKind, ParsedManifest, Platform};
use crate::reference::Reference;
use crate::registry::{Registry, Repo};

/// One registry artifact as the lock pins it.
pub(super) struct Pinned<'a> {
    pub(super) kind: ArtifactKind,
    pub(super) source: &'a Reference,
    pub(super) digest: &'a Digest,
    pub(super) media_type: &'a str,
    pub(super) platforms: &'a [Platform],
    pub(super) children: &'a [LockedChild],
    /// For a referrer carried by digest: its subject and artifact type.
    pub(super) subject: Option<(&'a Digest, Option<&'a str>)>,
}

/// One registry artifact's manifests, fetched and checked against the lock, waiting for the
/// plan stage.
pub(super) struct Fetched<'a> {
    pub(super) pin: Pinned<'a>,
    /// The root manifest's bytes, parsed.
    pub(super) root: (Bytes, ParsedManifest),
    /// Each carried child of an index, in the index's order.
    pub(super) children: Vec<(Digest, Bytes, ParsedManifest)>,
    /// Every child of an index, carried or not, for `airlock.json`.
    pub(super) children_listed: Vec<Child>,
}

/// Fetches one manifest by digest and checks its media type against the lock's.
pub(super) async fn fetch_manifest(
    registry: &Registry,
    artifact: &str,
    repo: &Repo,
    digest: &Digest,
    media_type: &str,
) -> Result<(Bytes, ParsedManifest), CollectError> {
    let raw = registry
        .get_manifest(repo, digest)
        .await
        .map_err(reg_err(artifact))?;
    let parsed = ParsedManifest::parse(&raw.bytes, Some(media_type)).map_err(|source| {
        CollectError::Manifest {
            artifact: artifact.to_string(),
            source,
        }
    })?;
    if parsed.media_type != media_type {
        return Err(CollectError::Mismatch {
            artifact: artifact.to_string(),
            why: format!(
                "manifest {digest} is `{}` but the lock says `{media_type}`",
                parsed.media_type
            ),
        });
    }
    Ok((raw.bytes, parsed))
}

/// The fetch stage for one registry artifact: its root manifest, then its carried children
/// (all at once), each checked against what the lock pins.
pub(super) async fn fetch_artifact<'a>(
    registry: &Registry,
    pin: Pinned<'a>,
) -> Result<Fetched<'a>, CollectError> {
    let name = pin.source.to_string();
    let repo = repo_of(pin.source);
    let digest = pin.digest;
    let (root_bytes, root) = fetch_manifest(registry, &name, &repo, digest, pin.media_type).await?;
    // An attachment's index (referrers) carries every child; the lock does not list them.
    let all_children: Vec<LockedChild>;
    let locked_children = if pin.kind.is_evidence() {
        let declared = root.blobs().map(|d| d.size).sum::<u64>()
            + root_bytes.len() as u64
            + root.manifests.iter().map(|d| d.size).sum::<u64>();
        if declared > MAX_ATTACHMENT_BYTES {
            return Err(CollectError::Unsupported {
                artifact: name,
                why: format!("attachment {digest} declares {declared} bytes, over the {MAX_ATTACHMENT_BYTES}-byte limit for signature material; refused before download"),
            });
        }
        all_children = children_of(&root, &[]);
        &all_children[..]
    } else {
        pin.children
    };
    let mut children = Vec::new();
    let mut listed = Vec::new();
    if root.kind == ManifestKind::Index {
        let want: BTreeMap<&Digest, &LockedChild> =
            locked_children.iter().map(|c| (&c.digest, c)).collect();
        let have: BTreeMap<&Digest, &Descriptor> =
            root.manifests.iter().map(|d| (&d.digest, d)).collect();
        if want.keys().collect::<Vec<_>>() != have.keys().collect::<Vec<_>>() {
            return Err(CollectError::Mismatch {
                artifact: name,
                why: format!("index {digest} has other children than the lock lists; run `airlock lock` again"),
            });
        }
        if let Some(c) = locked_children
            .iter()
            .find(|c| c.selected && media::is_index(&c.media_type))
        {
            return Err(CollectError::Unsupported {
                artifact: name,
                why: format!(
                    "child {} is itself an index; nested indexes are not supported",
                    c.digest
                ),
            });
        }
        let (name, repo) = (&name, &repo);
        children = stream::iter(locked_children.iter().filter(|c| c.selected).map(
            |c| async move {
                let (bytes, parsed) =
                    fetch_manifest(registry, name, repo, &c.digest, &c.media_type).await?;
                Ok::<_, CollectError>((c.digest.clone(), bytes, parsed))
            },
        ))
        .buffered(registry.limit().max())
        .try_collect()
        .await?;
        listed = locked_children
            .iter()
            .map(|c| Child {
                digest: c.digest.clone(),
                media_type: c.media_type.clone(),
                platform: c.platform.clone(),
                included: c.selected,
            })
            .collect();
    }
    Ok(Fetched {
        pin,
        root: (root_bytes, root),
        children,
        children_listed: listed,
    })
}

/// Where each attachment of each image of `lock` is fetched from: a tagged attachment under its
/// tag, a referrer by digest. Built before the pins, which borrow them.
pub(super) fn attachment_sources(lock: &Lock) -> Vec<Vec<(ArtifactKind, Reference)>> {
    lock.images
        .iter()
        .map(|img| {
            img.attachments
                .iter()
                .map(|att| match &att.tag {
                    Some(tag) => (
                        ArtifactKind::Attachment,
                        Reference {
                            tag: Some(tag.clone()),
                            digest: None,
                            ..img.source.clone()
                        },
                    ),
                    None => (
                        ArtifactKind::Referrer,
                        Reference {
                            tag: None,
                            digest: Some(att.digest.clone()),
                            ..img.source.clone()
                        },
                    ),
                })
                .collect()
        })
        .collect()
}

/// Every registry artifact `lock` pins, in lock order: each image, then its attachments (a
/// referrer with its subject and artifact type).
pub(super) fn pins<'a>(
    lock: &'a Lock,
    attachment_sources: &'a [Vec<(ArtifactKind, Reference)>],
) -> Vec<Pinned<'a>> {
    let mut pins: Vec<Pinned> = Vec::new();
    for (img, sources) in lock.images.iter().zip(attachment_sources) {
        pins.push(Pinned {
            kind: ArtifactKind::Image,
            source: &img.source,
            digest: &img.digest,
            media_type: &img.media_type,
            platforms: &img.platforms,
            children: &img.children,
            subject: None,
        });
        for (att, (kind, source)) in img.attachments.iter().zip(sources) {
            let subject = (*kind == ArtifactKind::Referrer)
                .then_some((&att.subject, att.artifact_type.as_deref()));
            pins.push(Pinned {
                kind: *kind,
                source,
                digest: &att.digest,
                media_type: &att.media_type,
                platforms: &[],
                children: &[],
                subject,
            });
        }
    }
    pins
}

/// The fetch stage: each pin's manifests, many pins at once within the registry's limit,
/// yielded in pin order (a bounded queue of at most that many fetched artifacts).
pub(super) fn fetch_stage<'a>(
    registry: &'a Registry,
    pins: Vec<Pinned<'a>>,
) -> impl futures_util::Stream<Item = Result<Fetched<'a>, CollectError>> + 'a {
    stream::iter(
        pins.into_iter()
            .map(move |pin| fetch_artifact(registry, pin)),
    )
    .buffered(registry.limit().max())
}
