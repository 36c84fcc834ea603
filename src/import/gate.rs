//! The isolated side's own check of image signatures, made offline on the evidence the bundle
//! carries, before anything is pushed.
//!
//! Collect already verified signatures against the connected side's policy; the isolated side
//! trusts its own keys, not the collector's word. The signatures travel as evidence (their blobs
//! come before any layer), so the importer verifies every image its policy covers while it
//! still holds nothing but manifests and evidence, and either refuses the bundle or leaves the
//! untrusted images (and what is attached to them) out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::bundle::{Artifact, ArtifactKind, BundleContents};
use crate::oci::{Digest, ParsedManifest, RepoName};
use crate::trust::policy::TrustPolicy;
use crate::trust::verify::{verify_children, verify_image, SignatureArtifact, SignatureResult};

/// What to do with an image that fails the isolated side's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUntrusted {
    /// Refuse the whole bundle: nothing is pushed (the default; an auditor sees one decision).
    #[default]
    RejectBundle,
    /// Leave that image and its attachments out; import the rest.
    SkipArtifact,
}

/// The isolated side's image-signature policy.
#[derive(Debug, Clone)]
pub struct ImagePolicy {
    /// The rules (the same format as a spec's `trust:` section).
    pub policy: TrustPolicy,
    /// Where the policy file is: key paths and `trusted_root` are relative to it.
    pub base_dir: PathBuf,
    /// The policy file, for messages.
    pub file: PathBuf,
    /// The sha256 of the policy file's bytes, for the ledger.
    pub digest: Digest,
    /// What an untrusted image costs.
    pub on_untrusted: OnUntrusted,
}

impl ImagePolicy {
    /// Largest policy file read.
    pub const MAX_BYTES: u64 = crate::trust::policy::MAX_POLICY_BYTES;

    /// Reads the isolated side's image policy: a `trust:`-shaped YAML file (key paths
    /// relative to it), at most [`ImagePolicy::MAX_BYTES`].
    pub fn load(file: &std::path::Path, on_untrusted: OnUntrusted) -> Result<Self, GateError> {
        let bad = |why: String| GateError::Policy {
            file: file.to_path_buf(),
            why,
        };
        let bytes = crate::io::read_capped(file, Self::MAX_BYTES, "policy")
            .map_err(|e| bad(e.to_string()))?;
        let digest = Digest::of(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8".into()))?;
        let policy = TrustPolicy::from_yaml(&text).map_err(|e| bad(crate::error_chain(&e)))?;
        Ok(ImagePolicy {
            policy,
            base_dir: file.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
            file: file.to_path_buf(),
            digest,
            on_untrusted,
        })
    }
}

/// What the gate decided, by artifact index in `airlock.json`.
#[derive(Debug, Default)]
pub struct GateOutcome {
    /// Images that passed, with the signatures that satisfied their rule.
    pub verified: BTreeMap<usize, Vec<SignatureResult>>,
    /// Artifacts left out, with why (images that failed and everything attached to them).
    pub skipped: BTreeMap<usize, String>,
}

/// Why the gate refused a bundle.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The policy itself cannot be used (missing key file, unreadable trusted root).
    #[error("policy `{file}`: {why}")]
    Policy {
        /// The policy file.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An image failed the policy and the bundle is refused.
    #[error("image {image} fails the isolated side's policy `{file}`{}: {why}; nothing was pushed (--on-untrusted skip-artifact imports the rest)", root_suffix(.root))]
    Untrusted {
        /// The image's source reference.
        image: String,
        /// The policy file.
        file: PathBuf,
        /// The trusted root the policy verified against (its file), when it names one.
        root: Option<String>,
        /// Why.
        why: String,
    },
}

fn root_suffix(root: &Option<String>) -> String {
    match root {
        Some(r) => format!(" (trusted root `{r}`)"),
        None => String::new(),
    }
}

/// The subject an attachment or referrer is attached to, when it says: cosign tags and the
/// referrers tag schema name it in the tag, a referrer in its `subject`.
pub fn subject_of(a: &Artifact, contents: &BundleContents) -> Option<Digest> {
    match a.kind {
        ArtifactKind::Referrer => a.subject.clone().or_else(|| {
            contents
                .manifests
                .get(&a.digest)
                .and_then(|(_, m)| m.subject.as_ref().map(|s| s.digest.clone()))
        }),
        ArtifactKind::Attachment => {
            let tag = a.tag.as_deref()?;
            let rest = tag.strip_prefix("sha256-")?;
            let hex = rest.split('.').next()?;
            Digest::from_hex(hex).ok()
        }
        _ => None,
    }
}

/// The signature material the bundle carries for `subject` (`image` or one of its children):
/// every evidence artifact attached to that digest in the image's source repository, each
/// manifest (and each child of an index) with its blobs from the evidence.
pub fn signature_artifacts(
    contents: &BundleContents,
    image: &Artifact,
    subject: &Digest,
) -> Vec<SignatureArtifact> {
    let mut out = Vec::new();
    for a in contents.manifest.artifacts.iter().filter(|a| {
        a.kind.is_evidence()
            && a.registry == image.registry
            && a.repository == image.repository
            && subject_of(a, contents).as_ref() == Some(subject)
    }) {
        let roots = std::iter::once(&a.digest)
            .chain(a.children.iter().filter(|c| c.included).map(|c| &c.digest));
        for d in roots {
            let Some((bytes, parsed)) = contents.manifests.get(d) else {
                continue;
            };
            out.push(artifact_from(bytes, parsed, &contents.evidence));
        }
    }
    out
}

fn artifact_from(
    bytes: &[u8],
    parsed: &ParsedManifest,
    evidence: &BTreeMap<Digest, bytes::Bytes>,
) -> SignatureArtifact {
    SignatureArtifact {
        media_type: parsed.media_type.clone(),
        manifest: bytes.to_vec(),
        blobs: parsed
            .blobs()
            .filter_map(|b| Some((b.digest.clone(), evidence.get(&b.digest)?.to_vec())))
            .collect(),
    }
}

/// Checks every image of the bundle against `policy`. An image no rule covers fails: the
/// isolated side admits only what its own policy speaks for.
pub fn check(contents: &BundleContents, policy: &ImagePolicy) -> Result<GateOutcome, GateError> {
    let policy_err = |e: &dyn std::error::Error| GateError::Policy {
        file: policy.file.clone(),
        why: crate::error_chain(e),
    };
    let root = policy
        .policy
        .load_trusted_root(&policy.base_dir)
        .map_err(|e| policy_err(&e))?;
    let mut outcome = GateOutcome::default();
    let mut failed: BTreeSet<(Option<String>, RepoName, Digest)> = BTreeSet::new();
    for (i, a) in contents.manifest.artifacts.iter().enumerate() {
        // Images pulled from registries; not what collect made itself (a carried
        // vulnerability database has an `artifact_type`), which the bundle signature covers.
        if a.kind != ArtifactKind::Image || a.artifact_type.is_some() {
            continue;
        }
        let repo_name = match &a.registry {
            Some(r) => format!("{r}/{}", a.repository),
            None => a.repository.to_string(),
        };
        let result = match policy.policy.rule_for(&repo_name) {
            None => Err(format!(
                "no rule covers `{repo_name}`; add a rule for it to the policy"
            )),
            Some(rule) => {
                let resolved = rule.resolve(&policy.base_dir).map_err(|e| policy_err(&e))?;
                let artifacts = signature_artifacts(contents, a, &a.digest);
                let children = a
                    .children
                    .iter()
                    .filter(|c| rule.require_children && c.included)
                    .map(|c| &c.digest);
                verify_image(&a.digest, &repo_name, &artifacts, &resolved, root.as_ref())
                    .and_then(|mut results| {
                        results.extend(verify_children(
                            children,
                            &repo_name,
                            |d| signature_artifacts(contents, a, d),
                            &resolved,
                            root.as_ref(),
                        )?);
                        Ok(results)
                    })
                    .map_err(|e| crate::error_chain(&e))
            }
        };
        match (result, policy.on_untrusted) {
            (Ok(results), _) => {
                outcome.verified.insert(i, results);
            }
            (Err(why), OnUntrusted::RejectBundle) => {
                return Err(GateError::Untrusted {
                    image: a.source.clone(),
                    file: policy.file.clone(),
                    root: root.as_ref().map(|r| r.origin().to_owned()),
                    why,
                })
            }
            (Err(why), OnUntrusted::SkipArtifact) => {
                for d in std::iter::once(&a.digest).chain(a.children.iter().map(|c| &c.digest)) {
                    failed.insert((a.registry.clone(), a.repository.clone(), d.clone()));
                }
                outcome.skipped.insert(i, why);
            }
        }
    }
    // What is attached to a skipped image stays out with it.
    for (i, a) in contents.manifest.artifacts.iter().enumerate() {
        if let Some(subject) = subject_of(a, contents) {
            if failed.contains(&(a.registry.clone(), a.repository.clone(), subject.clone())) {
                outcome
                    .skipped
                    .insert(i, format!("attached to {subject}, which was left out"));
            }
        }
    }
    Ok(outcome)
}
