//! The lockfile: every artifact of a spec pinned by digest. `collect` reads only this.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::oci::{Digest, Platform};
use crate::reference::Reference;

/// Format identifier written in every lockfile.
pub const LOCK_FORMAT: &str = "airlock.lock/v1";
/// The largest lockfile accepted.
pub const MAX_LOCK_BYTES: u64 = 16 * 1024 * 1024;

/// A lockfile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Always [`LOCK_FORMAT`].
    pub format: String,
    /// Bundle name, from the spec.
    pub name: String,
    /// Digest of the spec file bytes this lock was made from.
    pub spec_digest: Digest,
    /// When the pinned content last changed (RFC 3339, UTC). Bundles made from this lock take
    /// it as their creation time unless `SOURCE_DATE_EPOCH` is set, so they are reproducible.
    pub created: String,
    /// Images.
    #[serde(default)]
    pub images: Vec<LockedImage>,
    /// Charts.
    #[serde(default)]
    pub charts: Vec<LockedChart>,
    /// The spec's trust policy, with its keys inlined (so the lock pins the keys too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::trust::policy::TrustPolicy>,
    /// The spec's scan policy, as written (`vex` and `db` paths relative to the lock's
    /// directory); collect scans every image against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::scan::policy::ScanPolicy>,
    /// The digests of the scan policy's database and VEX files: collect refuses a file that
    /// differs, and a changed one is drift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scan_files: Vec<crate::scan::pins::PinnedFile>,
    /// Plain files, pinned by sha256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::files::LockedFile>,
}

/// An image pinned by digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    /// The reference as the spec wrote it, normalized (keeps the tag for the target).
    pub source: Reference,
    /// The digest the tag resolved to.
    pub digest: Digest,
    /// Media type of that manifest.
    pub media_type: String,
    /// Platforms asked for (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    /// For an index: every child with its platform and whether it is carried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<LockedChild>,
    /// Signatures, attestations and SBOMs found for the image and its carried children
    /// (cosign tags `sha256-<hex>.sig|.att|.sbom`, and the OCI referrers tag `sha256-<hex>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<LockedAttachment>,
    /// The charts whose rendered templates deploy this image (`oci://…` or `REPO NAME:VERSION`),
    /// so a reviewer sees why an image the spec does not list is carried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<String>,
}

/// A signature, attestation or SBOM attached to an image: by tag (cosign's
/// `sha256-<hex>.sig|.att|.sbom`, the referrers tag schema's `sha256-<hex>` index), or by
/// digest alone (an OCI 1.1 referrer listed by the source's referrers API, as cosign v3
/// pushes its signatures).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockedAttachment {
    /// The digest it is attached to.
    pub subject: Digest,
    /// The tag it lives under; `None` for a referrer found by the referrers API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<crate::oci::Tag>,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its manifest media type.
    pub media_type: String,
    /// A referrer's artifact type (its `artifactType`, else its config media type), read from
    /// the manifest itself rather than from the registry's listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl LockedAttachment {
    /// How `lock` names it when reporting drift: the tag, or for a tagless referrer its
    /// artifact type and subject (its digest is what drifts).
    pub fn label(&self) -> String {
        match (&self.tag, &self.artifact_type) {
            (Some(tag), _) => format!(":{tag}"),
            (None, Some(t)) => format!(" referrer ({t}) of {}", self.subject),
            (None, None) => format!(" referrer of {}", self.subject),
        }
    }
}

/// A child of an index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockedChild {
    /// Digest of the child manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its platform, when the index gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Whether the bundle carries it.
    pub selected: bool,
}

/// A chart pinned by digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LockedChart {
    /// A chart in an OCI registry.
    Oci {
        /// The reference (without `oci://`).
        source: Reference,
        /// Manifest digest.
        digest: Digest,
        /// Manifest media type.
        media_type: String,
    },
    /// A chart from an HTTP chart repository.
    Http {
        /// Repository URL.
        repo: String,
        /// Chart name.
        name: String,
        /// Chart version.
        version: String,
        /// The `.tgz` URL.
        url: String,
        /// sha256 of the `.tgz`.
        sha256: Digest,
    },
}

/// Why a lockfile is unusable.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Cannot read, or over [`MAX_LOCK_BYTES`].
    #[error(transparent)]
    Read(#[from] crate::io::ReadError),
    /// Malformed.
    #[error("lockfile `{path}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// One difference between two locks, for `airlock lock` to print.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    /// The artifact (source reference or chart name).
    pub artifact: String,
    /// Digest before (`None`: new).
    pub old: Option<Digest>,
    /// Digest after (`None`: removed).
    pub new: Option<Digest>,
}

impl Lock {
    /// Parses a lockfile's bytes.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Lock, LockError> {
        let lock: Lock = serde_json::from_slice(bytes).map_err(|e| LockError::Invalid {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        if lock.format != LOCK_FORMAT {
            return Err(LockError::Invalid {
                path: path.to_string(),
                message: format!("format `{}` is not `{LOCK_FORMAT}`", lock.format),
            });
        }
        for img in &lock.images {
            if img.source.digest.as_ref().is_some_and(|d| d != &img.digest) {
                return Err(LockError::Invalid {
                    path: path.to_string(),
                    message: format!(
                        "image {} is pinned in its reference to a different digest than {}",
                        img.source, img.digest
                    ),
                });
            }
        }
        Ok(lock)
    }

    /// Reads a lockfile.
    pub fn load(path: &Path) -> Result<(Lock, Digest), LockError> {
        let p = path.display().to_string();
        let bytes = crate::io::read_capped(path, MAX_LOCK_BYTES, "lockfile")?;
        Ok((Lock::parse(&bytes, &p)?, Digest::of(&bytes)))
    }

    /// The canonical bytes of a lockfile: pretty JSON with a trailing newline, so it diffs well.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    fn pins(&self) -> Vec<(String, Digest)> {
        let mut out: Vec<(String, Digest)> = Vec::new();
        for i in &self.images {
            out.push((i.source.to_string(), i.digest.clone()));
            // Each attachment drifts on its own: a re-signed image keeps its digest.
            for a in &i.attachments {
                let name = match &a.tag {
                    Some(_) => format!("{}{}", i.source, a.label()),
                    // A tagless referrer has no name but its digest: it appears or vanishes.
                    None => format!("{}{} = {}", i.source, a.label(), a.digest),
                };
                out.push((name, a.digest.clone()));
            }
        }
        for c in &self.charts {
            match c {
                LockedChart::Oci { source, digest, .. } => {
                    out.push((format!("oci://{source}"), digest.clone()))
                }
                LockedChart::Http {
                    repo,
                    name,
                    version,
                    sha256,
                    ..
                } => out.push((format!("{repo} {name}:{version}"), sha256.clone())),
            }
        }
        for f in &self.scan_files {
            out.push((f.label(), f.sha256.clone()));
        }
        out
    }

    /// What changed from `old` to `self`: artifacts whose digest moved, appeared or vanished.
    /// Children selection changes show as the parent's digest staying put, so they are listed
    /// through the content comparison in [`Lock::same_content`].
    pub fn changes_from(&self, old: &Lock) -> Vec<Change> {
        let old_pins = old.pins();
        let new_pins = self.pins();
        let mut out = Vec::new();
        for (name, d) in &new_pins {
            match old_pins.iter().find(|(n, _)| n == name) {
                Some((_, od)) if od == d => {}
                Some((_, od)) => out.push(Change {
                    artifact: name.clone(),
                    old: Some(od.clone()),
                    new: Some(d.clone()),
                }),
                None => out.push(Change {
                    artifact: name.clone(),
                    old: None,
                    new: Some(d.clone()),
                }),
            }
        }
        for (name, od) in &old_pins {
            if !new_pins.iter().any(|(n, _)| n == name) {
                out.push(Change {
                    artifact: name.clone(),
                    old: Some(od.clone()),
                    new: None,
                });
            }
        }
        out
    }

    /// True when two locks pin the same content (ignoring `created` and `spec_digest`).
    pub fn same_content(&self, other: &Lock) -> bool {
        self.name == other.name
            && self.images == other.images
            && self.charts == other.charts
            && self.trust == other.trust
            && self.scan == other.scan
            && self.scan_files == other.scan_files
            && self.files == other.files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn lock(images: Vec<(&str, Digest)>) -> Lock {
        Lock {
            format: LOCK_FORMAT.into(),
            name: "t".into(),
            spec_digest: d(0),
            created: "2026-01-01T00:00:00Z".into(),
            images: images
                .into_iter()
                .map(|(r, dg)| LockedImage {
                    source: r.parse().expect("ref"),
                    digest: dg,
                    media_type: crate::oci::media::OCI_MANIFEST.into(),
                    platforms: vec![],
                    children: vec![],
                    attachments: vec![],
                    charts: vec![],
                })
                .collect(),
            charts: vec![],
            trust: None,
            scan: None,
            scan_files: Vec::new(),
            files: Vec::new(),
        }
    }

    #[test]
    fn reports_moved_new_and_removed() {
        let old = lock(vec![("a:1", d(1)), ("b:1", d(2))]);
        let new = lock(vec![("a:1", d(3)), ("c:1", d(4))]);
        let ch = new.changes_from(&old);
        assert_eq!(ch.len(), 3);
        assert_eq!(ch[0].old, Some(d(1)));
        assert_eq!(ch[0].new, Some(d(3)));
        assert_eq!(ch[1].old, None);
        assert_eq!(ch[2].new, None);
        assert!(new.changes_from(&new).is_empty());
    }

    #[test]
    fn reports_drift_per_attachment_and_reads_old_tagged_attachments() {
        let att = |digest: Digest, tag: Option<&str>| LockedAttachment {
            subject: d(1),
            tag: tag.map(|t| t.parse().expect("tag")),
            digest,
            media_type: crate::oci::media::OCI_MANIFEST.into(),
            artifact_type: tag
                .is_none()
                .then(|| "application/vnd.dev.sigstore.bundle.v0.3+json".into()),
        };
        let mut old = lock(vec![("a:1", d(1))]);
        old.images[0].attachments = vec![att(d(5), Some("sha256-x.sig")), att(d(6), None)];
        let mut new = old.clone();
        new.images[0].attachments = vec![att(d(7), Some("sha256-x.sig")), att(d(8), None)];
        let ch = new.changes_from(&old);
        // The image is unchanged; the tagged signature moved; one referrer replaced another.
        assert_eq!(ch.len(), 3, "{ch:?}");
        assert!(ch[0].artifact.ends_with(":sha256-x.sig"));
        assert_eq!(
            (ch[0].old.clone(), ch[0].new.clone()),
            (Some(d(5)), Some(d(7)))
        );
        assert!(ch[1]
            .artifact
            .contains("referrer (application/vnd.dev.sigstore.bundle.v0.3+json)"));
        assert_eq!((ch[1].old.clone(), ch[1].new.clone()), (None, Some(d(8))));
        assert_eq!((ch[2].old.clone(), ch[2].new.clone()), (Some(d(6)), None));
        // A lock written before referrers had no `artifact_type` and always a tag.
        let mut v: serde_json::Value = serde_json::from_slice(&old.to_bytes()).expect("json");
        v["images"][0]["attachments"] = serde_json::json!([{"subject": d(1), "tag": "sha256-x.sig", "digest": d(5), "media_type": "x"}]);
        let back =
            Lock::parse(&serde_json::to_vec(&v).expect("json"), "old.lock").expect("old lock");
        assert_eq!(
            back.images[0].attachments[0].tag.as_deref(),
            Some("sha256-x.sig")
        );
        assert_eq!(back.images[0].attachments[0].artifact_type, None);
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let l = lock(vec![("a:1", d(1))]);
        let back = Lock::parse(&l.to_bytes(), "x.lock").expect("parse");
        assert_eq!(back, l);
        let err = Lock::parse(b"{}", "x.lock").expect_err("empty").to_string();
        assert!(err.starts_with("lockfile `x.lock`"), "{err}");
        let mut wrong = l.clone();
        wrong.format = "other".into();
        assert!(Lock::parse(&wrong.to_bytes(), "x.lock").is_err());
    }
}
