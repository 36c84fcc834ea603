//! Referrers at the target: what lists the signatures, SBOMs and reports of an image.
//!
//! A target with the OCI 1.1 referrers API indexes every pushed manifest that names a
//! `subject` by itself. A target without it (the distribution registry 2.x) relies on the
//! referrers tag schema: an index tagged `sha256-<hex of the subject>` listing each referrer.
//! Such a tag may already exist at the target (an earlier import, another tool), so airlock
//! merges into it rather than replacing it: nothing another import put there is lost.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use super::{reg, ImportError};
use crate::bundle::{Artifact, ArtifactKind, BundleContents};
use crate::oci::{media, Digest, Tag};
use crate::registry::referrers::Referrers;
use crate::registry::{Registry, Repo};

/// The tag of the referrers tag schema for `subject`.
pub fn fallback_tag(subject: &Digest) -> Tag {
    Tag::for_subject(subject, "")
}

/// The subject a carried referrers-tag-schema index names, when `a` is one: an attachment
/// tagged exactly `sha256-<64 hex>` whose root is an index.
pub fn carried_fallback_subject(a: &Artifact, contents: &BundleContents) -> Option<Digest> {
    let tag = a.tag.as_deref()?;
    let hex = tag.strip_prefix("sha256-")?;
    if a.kind != ArtifactKind::Attachment || !media::is_index(&a.media_type) {
        return None;
    }
    contents.manifests.get(&a.digest)?;
    Digest::from_hex(hex).ok()
}

/// The descriptor a referrers index lists for a referrer manifest (OCI distribution spec:
/// `artifactType`, else the config's media type, and the manifest's annotations).
pub fn referrer_descriptor(bytes: &[u8], media_type: &str) -> Option<Value> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let artifact_type = v
        .get("artifactType")
        .or_else(|| v.get("config").and_then(|c| c.get("mediaType")))
        .cloned();
    let mut d = serde_json::Map::new();
    d.insert("mediaType".into(), Value::from(media_type));
    d.insert("digest".into(), Value::from(Digest::of(bytes).as_str()));
    d.insert("size".into(), Value::from(bytes.len() as u64));
    if let Some(t) = artifact_type {
        d.insert("artifactType".into(), t);
    }
    if let Some(a) = v.get("annotations").filter(|a| a.is_object()) {
        d.insert("annotations".into(), a.clone());
    }
    Some(Value::Object(d))
}

/// What one subject's referrers need at the target.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Descriptors to list, in bundle order.
    pub descriptors: Vec<Value>,
    /// The index carried from the source, byte-exact, when there was one.
    pub carried: Option<Bytes>,
}

/// Groups the bundle's referrers by (target repository, subject). `repos` gives each
/// artifact's target, `None` for one left out.
pub fn wanted(
    contents: &BundleContents,
    repos: &[Option<&Repo>],
) -> BTreeMap<(Repo, Digest), Wanted> {
    let mut out: BTreeMap<(Repo, Digest), Wanted> = BTreeMap::new();
    for (a, repo) in contents.manifest.artifacts.iter().zip(repos) {
        let Some(repo) = *repo else { continue };
        let Some((bytes, parsed)) = contents.manifests.get(&a.digest) else {
            continue;
        };
        if let Some(subject) = carried_fallback_subject(a, contents) {
            let w = out.entry(((*repo).clone(), subject)).or_default();
            let list: Vec<Value> = serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|v| v.get("manifests").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            for d in list {
                push_unique(&mut w.descriptors, d);
            }
            w.carried = Some(bytes.clone());
        } else if a.kind == ArtifactKind::Referrer {
            let Some(subject) = a
                .subject
                .clone()
                .or_else(|| parsed.subject.as_ref().map(|s| s.digest.clone()))
            else {
                continue;
            };
            if let Some(d) = referrer_descriptor(bytes, &parsed.media_type) {
                let w = out.entry(((*repo).clone(), subject)).or_default();
                push_unique(&mut w.descriptors, d);
            }
        }
    }
    out
}

fn digest_of(d: &Value) -> Option<&str> {
    d.get("digest").and_then(Value::as_str)
}

fn push_unique(list: &mut Vec<Value>, d: Value) {
    if !list.iter().any(|x| digest_of(x) == digest_of(&d)) {
        list.push(d);
    }
}

/// Merges `wanted` into an existing fallback index. Returns the new index bytes, or `None`
/// when the existing one already lists everything. Entries already there keep their place.
pub fn merge_index(existing: Option<&[u8]>, wanted: &Wanted) -> Result<Option<Bytes>, String> {
    let Some(existing) = existing else {
        // Nothing there: the carried index byte-exact when it lists everything.
        if let Some(carried) = &wanted.carried {
            let listed: Vec<Value> = serde_json::from_slice::<Value>(carried)
                .ok()
                .and_then(|v| v.get("manifests").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            if wanted
                .descriptors
                .iter()
                .all(|d| listed.iter().any(|x| digest_of(x) == digest_of(d)))
            {
                return Ok(Some(carried.clone()));
            }
        }
        return Ok(Some(render(wanted.descriptors.clone())));
    };
    let v: Value = serde_json::from_slice(existing)
        .map_err(|e| format!("the existing tag does not hold JSON: {e}"))?;
    let is_index = v.get("mediaType").and_then(Value::as_str) == Some(media::OCI_INDEX)
        || v.get("manifests").is_some_and(Value::is_array);
    if !is_index {
        return Err(
            "the existing tag holds something other than an OCI index; refusing to replace it"
                .into(),
        );
    }
    let mut list: Vec<Value> = v
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let before = list.len();
    for d in &wanted.descriptors {
        push_unique(&mut list, d.clone());
    }
    if list.len() == before {
        return Ok(None);
    }
    Ok(Some(render(list)))
}

fn render(manifests: Vec<Value>) -> Bytes {
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// What the tag stage does for one subject's referrers.
#[derive(Debug)]
pub enum Plan {
    /// The target's referrers API lists every one already (checked after they were pushed).
    Api,
    /// The fallback index already lists every one.
    Unchanged,
    /// Merge into the fallback index at this tag (re-read when written: see [`write`]).
    Write {
        /// `sha256-<hex>` of the subject.
        tag: Tag,
    },
}

/// How often [`write`] re-reads and merges when another writer changed the fallback index
/// between its read and its write.
pub const MAX_MERGE_ATTEMPTS: usize = 5;

/// The fallback index at `tag`, if there is one.
async fn read_index(
    registry: &Registry,
    repo: &Repo,
    tag: &Tag,
    what: &str,
) -> Result<Option<Bytes>, ImportError> {
    Ok(
        match registry
            .head_manifest(repo, tag)
            .await
            .map_err(reg(what.to_string()))?
        {
            Some(_) => Some(
                registry
                    .get_manifest(repo, tag)
                    .await
                    .map_err(reg(what.to_string()))?
                    .bytes,
            ),
            None => None,
        },
    )
}

/// Decides how one subject's referrers are brought up to date at the target, once they are
/// pushed by digest. A target with the referrers API must list each of them now (else the
/// import fails before it is recorded); one without it gets the fallback index merged, and a
/// non-index at the fallback tag is refused here, before anything is tagged.
pub async fn plan(
    registry: &Registry,
    repo: &Repo,
    subject: &Digest,
    wanted: &Wanted,
) -> Result<Plan, ImportError> {
    let tag = fallback_tag(subject);
    let what = || format!("{repo}:{tag}: updating the referrers of {subject}");
    match registry
        .list_referrers(repo, subject)
        .await
        .map_err(reg(what()))?
    {
        Referrers::Listed(listed) => {
            let missing: Vec<&str> = wanted
                .descriptors
                .iter()
                .filter_map(digest_of)
                .filter(|d| !listed.iter().any(|l| l.digest.as_str() == *d))
                .collect();
            if !missing.is_empty() {
                return Err(ImportError::Referrers {
                    what: what(),
                    why: format!(
                        "the target's referrers API does not list {} after it was pushed",
                        missing.join(", ")
                    ),
                });
            }
            Ok(Plan::Api)
        }
        Referrers::NoApi => {
            let existing = read_index(registry, repo, &tag, &what()).await?;
            let merged = merge_index(existing.as_deref(), wanted)
                .map_err(|why| ImportError::Referrers { what: what(), why })?;
            Ok(match merged {
                None => Plan::Unchanged,
                Some(_) => Plan::Write { tag },
            })
        }
    }
}

/// Merges `wanted` into the fallback index at `tag`: reads it, merges, writes, and reads it
/// back; when another writer replaced it in between so that an entry of ours is missing,
/// merges again with what is there now, up to [`MAX_MERGE_ATTEMPTS`] times. Entries others
/// listed are never dropped.
pub async fn write(
    registry: &Registry,
    repo: &Repo,
    tag: &Tag,
    wanted: &Wanted,
) -> Result<(), ImportError> {
    let what = format!("{repo}:{tag}: writing the referrers index");
    for _ in 0..MAX_MERGE_ATTEMPTS {
        let existing = read_index(registry, repo, tag, &what).await?;
        let merged =
            merge_index(existing.as_deref(), wanted).map_err(|why| ImportError::Referrers {
                what: what.clone(),
                why,
            })?;
        let Some(index) = merged else {
            return Ok(());
        };
        registry
            .put_manifest(repo, tag, &index, media::OCI_INDEX)
            .await
            .map_err(reg(what.clone()))?;
        let now = read_index(registry, repo, tag, &what).await?;
        if matches!(merge_index(now.as_deref(), wanted), Ok(None)) {
            return Ok(());
        }
    }
    Err(ImportError::Referrers {
        what,
        why: format!(
            "another writer kept replacing the index; gave up after {MAX_MERGE_ATTEMPTS} merges"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(hex: char) -> Value {
        serde_json::json!({"mediaType": media::OCI_MANIFEST, "digest": format!("sha256:{}", hex.to_string().repeat(64)), "size": 10})
    }

    #[test]
    fn merges_without_losing_existing_entries() {
        let existing = render(vec![desc('a'), desc('b')]);
        let w = Wanted {
            descriptors: vec![desc('b'), desc('c')],
            carried: None,
        };
        let merged = merge_index(Some(&existing), &w).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&merged).unwrap();
        let digests: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(digest_of)
            .collect();
        assert_eq!(digests.len(), 3);
        assert!(
            digests[0].ends_with('a') && digests[1].ends_with('b') && digests[2].ends_with('c')
        );
        // Merging again changes nothing.
        assert_eq!(merge_index(Some(&merged), &w).unwrap(), None);
    }

    #[test]
    fn carried_index_is_pushed_byte_exact_when_nothing_exists() {
        let carried = Bytes::from_static(br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":10,"mediaType":"x"}]}"#);
        let w = Wanted {
            descriptors: vec![desc('a')],
            carried: Some(carried.clone()),
        };
        assert_eq!(merge_index(None, &w).unwrap(), Some(carried));
    }

    #[test]
    fn refuses_to_replace_something_that_is_not_an_index() {
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        let w = Wanted {
            descriptors: vec![desc('a')],
            carried: None,
        };
        let err = merge_index(Some(image), &w).unwrap_err();
        assert!(err.contains("other than an OCI index"), "{err}");
        assert!(merge_index(Some(b"not json"), &w).is_err());
    }

    #[test]
    fn descriptor_uses_artifact_type_then_config_media_type() {
        let with_type = br#"{"schemaVersion":2,"artifactType":"application/vnd.cyclonedx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"annotations":{"k":"v"}}"#;
        let d = referrer_descriptor(with_type, media::OCI_MANIFEST).unwrap();
        assert_eq!(d["artifactType"], "application/vnd.cyclonedx+json");
        assert_eq!(d["annotations"]["k"], "v");
        assert_eq!(d["size"], with_type.len() as u64);
        let cfg_only = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.dev.cosign.artifact.sig.v1+json"}}"#;
        let d = referrer_descriptor(cfg_only, media::OCI_MANIFEST).unwrap();
        assert_eq!(
            d["artifactType"],
            "application/vnd.dev.cosign.artifact.sig.v1+json"
        );
    }
}
