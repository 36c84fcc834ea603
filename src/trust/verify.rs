//! The one entry point of image-signature verification: given an image digest, its source
//! repository, the signature artifacts found for it and the policy rule that applies, which
//! signers vouched for it — or why not enough did.
//!
//! Signature artifacts are what `collect` fetched: cosign `.sig` images (tag
//! `sha256-<hex>.sig`; layers of [`SIMPLE_SIGNING_MEDIA_TYPE`]) and OCI referrers holding
//! Sigstore bundles (layers of a bundle media type, see [`is_bundle_media_type`]). Each is given
//! as its media type, its manifest bytes and the blobs it references, fetched by digest; every
//! blob is checked against its digest here, so the caller may hand over bytes from anywhere.
//! Artifacts of other kinds (SBOMs, attestations in `.att` images) are ignored: they do not
//! count as signatures.
//!
//! Each signature layer is tried against every signer of the rule. A signer is satisfied when
//! one of its signatures verifies and binds this image: for simple signing, the payload's
//! `docker-manifest-digest` equals the image digest and its `docker-reference` names the source
//! repository; for bundles, the message digest or in-toto subject is the image digest. The
//! image passes when at least `require` distinct signers are satisfied; otherwise the error
//! lists every signature that failed and why.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::policy::ResolvedRule;
use super::sigstore_bundle::{
    self, is_bundle_media_type, BundleArtifact, BundleError, BundleSigner,
};
use super::simple_signing::{self, SigLayer, SimpleSigningError, SIMPLE_SIGNING_MEDIA_TYPE};
use super::trusted_root::TrustedRoot;
use super::{KeyId, PublicKey};
use crate::oci::{Digest, ParsedManifest};

/// A signature artifact found for an image: a `.sig` image or a referrer.
#[derive(Debug, Clone)]
pub struct SignatureArtifact {
    /// The manifest media type the registry (or bundle) gave.
    pub media_type: String,
    /// The manifest bytes, exactly as fetched.
    pub manifest: Vec<u8>,
    /// The blobs the manifest references, by digest (missing ones fail the signature).
    pub blobs: BTreeMap<Digest, Vec<u8>>,
}

/// How a signature was carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// A cosign simple-signing layer of a `.sig` image.
    SimpleSigning,
    /// A Sigstore bundle (v0.1–v0.3) found as a referrer.
    SigstoreBundle,
}

/// Who signed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signer {
    /// A key of the rule.
    Key {
        /// Its key id.
        key_id: KeyId,
    },
    /// A keyless signer: the certificate's identity and issuer.
    Keyless {
        /// The certificate SAN.
        identity: String,
        /// The OIDC issuer.
        issuer: String,
    },
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Key { key_id } => write!(f, "key {key_id}"),
            Signer::Keyless { identity, issuer } => write!(f, "{identity} (issuer {issuer})"),
        }
    }
}

/// One verified signature that satisfied a signer of the rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureResult {
    /// Who signed.
    pub signer: Signer,
    /// The Rekor log index, when a transparency-log entry was verified.
    pub rekor_log_index: Option<u64>,
    /// The Rekor integrated time (Unix seconds), when verified.
    pub integrated_time: Option<i64>,
    /// An RFC 3161 timestamp's time (Unix seconds), when the bundle carried a verified one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// The kind and version of the verified log entry (`hashedrekord 0.0.2`, `dsse 0.0.2`),
    /// for bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_entry: Option<String>,
    /// How the signature was carried.
    pub kind: SignatureKind,
    /// The digest of the signature artifact's manifest.
    pub artifact: Digest,
    /// The digest of the carried Sigstore bundle (the referrer's layer), for bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Digest>,
    /// The pattern of the policy rule that admitted the image.
    pub rule: String,
}

/// The transparency and time evidence of one verified signature.
#[derive(Debug, Clone, Default)]
struct Evidence {
    rekor_log_index: Option<u64>,
    integrated_time: Option<i64>,
    timestamp: Option<i64>,
    rekor_entry: Option<String>,
}

/// Why one signature (or signature artifact) did not count.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// The artifact's manifest is unusable.
    #[error("signature artifact {artifact}: {detail}")]
    Manifest {
        /// The artifact's manifest digest.
        artifact: Digest,
        /// What is wrong.
        detail: String,
    },
    /// A blob the manifest references was not given.
    #[error("signature artifact {artifact}: blob {blob} is missing")]
    MissingBlob {
        /// The artifact's manifest digest.
        artifact: Digest,
        /// The missing blob.
        blob: Digest,
    },
    /// A blob's bytes do not hash to its digest.
    #[error("signature artifact {artifact}: blob {expected} has digest {actual}")]
    BlobDigest {
        /// The artifact's manifest digest.
        artifact: Digest,
        /// The digest it was fetched by.
        expected: Digest,
        /// The digest of the bytes.
        actual: Digest,
    },
    /// A simple-signing layer failed.
    #[error("signature {layer} in {artifact}{}: {source}", signer_suffix(.signer))]
    SimpleSigning {
        /// The artifact's manifest digest.
        artifact: Digest,
        /// The layer (payload) digest.
        layer: Digest,
        /// The signer tried (key id), when the failure is specific to one.
        signer: Option<KeyId>,
        /// Why.
        #[source]
        source: SimpleSigningError,
    },
    /// A Sigstore bundle failed.
    #[error("Sigstore bundle {layer} in {artifact}{}: {source}", signer_suffix(.signer))]
    Bundle {
        /// The artifact's manifest digest.
        artifact: Digest,
        /// The bundle blob digest.
        layer: Digest,
        /// The signer tried (key id), when the failure is specific to one.
        signer: Option<KeyId>,
        /// Why.
        #[source]
        source: BundleError,
    },
    /// A valid keyless signature by an identity the rule does not trust.
    #[error(
        "signature {layer} in {artifact} is by {identity} (issuer {issuer}), which no keyless \
         entry of the rule accepts"
    )]
    UntrustedIdentity {
        /// The artifact's manifest digest.
        artifact: Digest,
        /// The layer digest.
        layer: Digest,
        /// The certificate SAN.
        identity: String,
        /// The OIDC issuer.
        issuer: String,
    },
}

fn signer_suffix(signer: &Option<KeyId>) -> String {
    match signer {
        Some(k) => format!(" (key {k})"),
        None => String::new(),
    }
}

/// Why an image did not pass its rule. Every variant names the rule and the image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Fewer distinct signers than required have a valid signature on the image.
    #[error(
        "image {image} fails trust rule `{rule}`: {valid} of {required} required signer(s) \
         verified ({signatures} signature(s) found){}",
        failure_list(.failures)
    )]
    NotEnoughSigners {
        /// The rule's pattern.
        rule: String,
        /// The image digest.
        image: Digest,
        /// Distinct signers satisfied.
        valid: usize,
        /// The rule's threshold.
        required: usize,
        /// Signature layers found (simple-signing layers and bundles).
        signatures: usize,
        /// Why each signature that did not count failed.
        failures: Vec<SignatureFailure>,
        /// The signatures that did verify.
        verified: Vec<SignatureResult>,
    },
    /// The rule has keyless signers or requires Rekor entries, and no trusted root was given.
    #[error(
        "image {image}: trust rule `{rule}` needs a trusted root (keyless signers or Rekor \
         entries) and none was given"
    )]
    NoTrustedRoot {
        /// The rule's pattern.
        rule: String,
        /// The image digest.
        image: Digest,
    },
}

fn failure_list(failures: &[SignatureFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("\n  - {f}"))
        .collect::<String>()
}

/// Verifies the signatures on `image` (from `source_repository`, e.g.
/// `registry.example/org/app`, tag or digest allowed) against `rule`.
///
/// Returns one [`SignatureResult`] per distinct signer satisfied (the first signature found for
/// it), in the order of the rule's keys then keyless entries.
pub fn verify_image(
    image: &Digest,
    source_repository: &str,
    artifacts: &[SignatureArtifact],
    rule: &ResolvedRule,
    root: Option<&TrustedRoot>,
) -> Result<Vec<SignatureResult>, VerifyError> {
    if root.is_none() && (!rule.keyless.is_empty() || rule.require_tlog) {
        return Err(VerifyError::NoTrustedRoot {
            rule: rule.pattern.clone(),
            image: image.clone(),
        });
    }
    let mut satisfied: BTreeMap<usize, SignatureResult> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut signatures = 0;
    for artifact in artifacts {
        let manifest = match ParsedManifest::parse(&artifact.manifest, Some(&artifact.media_type)) {
            Ok(m) => m,
            Err(e) => {
                failures.push(SignatureFailure::Manifest {
                    artifact: Digest::of(&artifact.manifest),
                    detail: e.to_string(),
                });
                continue;
            }
        };
        for layer in &manifest.layers {
            let kind = if layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE {
                SignatureKind::SimpleSigning
            } else if is_bundle_media_type(&layer.media_type) {
                SignatureKind::SigstoreBundle
            } else {
                continue;
            };
            signatures += 1;
            let blob = match blob(artifact, &manifest.digest, &layer.digest) {
                Ok(b) => b,
                Err(f) => {
                    failures.push(*f);
                    continue;
                }
            };
            let ctx = LayerCtx {
                image,
                source_repository,
                artifact: &manifest.digest,
                layer: &layer.digest,
                rule,
                root,
            };
            match kind {
                SignatureKind::SimpleSigning => {
                    ctx.simple_signing(blob, &layer.annotations, &mut satisfied, &mut failures)
                }
                SignatureKind::SigstoreBundle => ctx.bundle(blob, &mut satisfied, &mut failures),
            }
        }
    }
    if satisfied.len() >= rule.require {
        return Ok(satisfied.into_values().collect());
    }
    Err(VerifyError::NotEnoughSigners {
        rule: rule.pattern.clone(),
        image: image.clone(),
        valid: satisfied.len(),
        required: rule.require,
        signatures,
        failures,
        verified: satisfied.into_values().collect(),
    })
}

fn blob<'a>(
    artifact: &'a SignatureArtifact,
    manifest: &Digest,
    digest: &Digest,
) -> Result<&'a [u8], Box<SignatureFailure>> {
    let bytes = artifact.blobs.get(digest).ok_or_else(|| {
        Box::new(SignatureFailure::MissingBlob {
            artifact: manifest.clone(),
            blob: digest.clone(),
        })
    })?;
    let actual = Digest::of(bytes);
    if &actual != digest {
        return Err(Box::new(SignatureFailure::BlobDigest {
            artifact: manifest.clone(),
            expected: digest.clone(),
            actual,
        }));
    }
    Ok(bytes)
}

struct LayerCtx<'a> {
    image: &'a Digest,
    source_repository: &'a str,
    artifact: &'a Digest,
    layer: &'a Digest,
    rule: &'a ResolvedRule,
    root: Option<&'a TrustedRoot>,
}

impl LayerCtx<'_> {
    fn simple_signing(
        &self,
        payload: &[u8],
        annotations: &BTreeMap<String, String>,
        satisfied: &mut BTreeMap<usize, SignatureResult>,
        failures: &mut Vec<SignatureFailure>,
    ) {
        let fail = |signer: Option<KeyId>, source| SignatureFailure::SimpleSigning {
            artifact: self.artifact.clone(),
            layer: self.layer.clone(),
            signer,
            source,
        };
        // Bind the payload to this image first: a signature over another image or repository
        // is refused whoever made it.
        let bound = simple_signing::parse_payload(payload)
            .and_then(|p| simple_signing::check_payload(&p, self.image, self.source_repository));
        if let Err(e) = bound {
            failures.push(fail(None, e));
            return;
        }
        let layer = SigLayer {
            payload,
            annotations,
        };
        for (i, key) in self.rule.keys.iter().enumerate() {
            match simple_signing::verify_sig_layer(
                layer,
                BundleSigner::Key(key),
                self.root,
                self.rule.require_tlog,
            ) {
                Ok(v) => record(
                    satisfied,
                    i,
                    self.key_result(
                        key,
                        Evidence {
                            rekor_log_index: v.rekor_log_index,
                            integrated_time: v.integrated_time,
                            timestamp: None,
                            rekor_entry: None,
                        },
                        SignatureKind::SimpleSigning,
                    ),
                ),
                Err(e) => failures.push(fail(Some(key.key_id().clone()), e)),
            }
        }
        if self.rule.keyless.is_empty() {
            return;
        }
        if !annotations.contains_key(simple_signing::ANNOTATION_CERTIFICATE)
            && !self.rule.keys.is_empty()
        {
            // A key signature: its failure is already reported per key.
            return;
        }
        match simple_signing::verify_sig_layer(layer, BundleSigner::Keyless, self.root, true) {
            Ok(v) => self.keyless_matched(
                v.identity,
                v.issuer,
                Evidence {
                    rekor_log_index: v.rekor_log_index,
                    integrated_time: v.integrated_time,
                    timestamp: None,
                    rekor_entry: None,
                },
                SignatureKind::SimpleSigning,
                satisfied,
                failures,
            ),
            Err(e) => failures.push(fail(None, e)),
        }
    }

    /// The result of a key signature that verified.
    fn key_result(&self, key: &PublicKey, e: Evidence, kind: SignatureKind) -> SignatureResult {
        self.result(
            Signer::Key {
                key_id: key.key_id().clone(),
            },
            e,
            kind,
        )
    }

    /// A verified signature by `signer`, with the rule and (for a bundle) the bundle's digest.
    fn result(&self, signer: Signer, e: Evidence, kind: SignatureKind) -> SignatureResult {
        SignatureResult {
            signer,
            rekor_log_index: e.rekor_log_index,
            integrated_time: e.integrated_time,
            timestamp: e.timestamp,
            rekor_entry: e.rekor_entry,
            kind,
            artifact: self.artifact.clone(),
            bundle: (kind == SignatureKind::SigstoreBundle).then(|| self.layer.clone()),
            rule: self.rule.pattern.clone(),
        }
    }

    fn bundle(
        &self,
        json: &[u8],
        satisfied: &mut BTreeMap<usize, SignatureResult>,
        failures: &mut Vec<SignatureFailure>,
    ) {
        let fail = |signer: Option<KeyId>, source| SignatureFailure::Bundle {
            artifact: self.artifact.clone(),
            layer: self.layer.clone(),
            signer,
            source,
        };
        let bundle = match sigstore_bundle::parse_bundle(json) {
            Ok(b) => b,
            Err(e) => {
                failures.push(fail(None, e));
                return;
            }
        };
        let Some(root) = self.root else {
            failures.push(fail(None, BundleError::NoTrustedRoot));
            return;
        };
        let artifact = BundleArtifact::Digest(self.image);
        let has_certificate = bundle.signing_certificate().is_some();
        if !has_certificate {
            for (i, key) in self.rule.keys.iter().enumerate() {
                match sigstore_bundle::verify_parsed_bundle(
                    &bundle,
                    artifact,
                    root,
                    BundleSigner::Key(key),
                ) {
                    Ok(v) => record(
                        satisfied,
                        i,
                        self.key_result(key, bundle_evidence(&v), SignatureKind::SigstoreBundle),
                    ),
                    Err(e) => failures.push(fail(Some(key.key_id().clone()), e)),
                }
            }
            if self.rule.keys.is_empty() {
                failures.push(fail(
                    None,
                    BundleError::SignerKind {
                        found: "with a managed key",
                        wanted: "keys",
                    },
                ));
            }
            return;
        }
        if self.rule.keyless.is_empty() {
            failures.push(fail(
                None,
                BundleError::SignerKind {
                    found: "keyless (with a certificate)",
                    wanted: "keyless signers",
                },
            ));
            return;
        }
        match sigstore_bundle::verify_parsed_bundle(&bundle, artifact, root, BundleSigner::Keyless)
        {
            Ok(v) => self.keyless_matched(
                v.identity.clone(),
                v.issuer.clone(),
                bundle_evidence(&v),
                SignatureKind::SigstoreBundle,
                satisfied,
                failures,
            ),
            Err(e) => failures.push(fail(None, e)),
        }
    }

    fn keyless_matched(
        &self,
        identity: Option<String>,
        issuer: Option<String>,
        evidence: Evidence,
        kind: SignatureKind,
        satisfied: &mut BTreeMap<usize, SignatureResult>,
        failures: &mut Vec<SignatureFailure>,
    ) {
        let identity = identity.unwrap_or_default();
        let issuer = issuer.unwrap_or_default();
        let offset = self.rule.keys.len();
        let matched: BTreeSet<usize> = self
            .rule
            .keyless
            .iter()
            .enumerate()
            .filter(|(_, k)| !identity.is_empty() && k.matches(&identity, &issuer))
            .map(|(i, _)| offset + i)
            .collect();
        if matched.is_empty() {
            failures.push(SignatureFailure::UntrustedIdentity {
                artifact: self.artifact.clone(),
                layer: self.layer.clone(),
                identity,
                issuer,
            });
            return;
        }
        let result = self.result(Signer::Keyless { identity, issuer }, evidence, kind);
        // One identity is one signer, however many entries of the rule it matches.
        if let Some(i) = matched.into_iter().find(|i| !satisfied.contains_key(i)) {
            record(satisfied, i, result);
        }
    }
}

fn bundle_evidence(v: &sigstore_bundle::VerifiedBundle) -> Evidence {
    Evidence {
        rekor_log_index: v.rekor_log_index,
        integrated_time: v.integrated_time,
        timestamp: v.timestamp,
        rekor_entry: v.rekor_entry.clone(),
    }
}

/// Counts `result` for the rule's signer `index`, unless that signer is already satisfied or
/// the same key or identity already satisfied another entry (a key listed twice, or an
/// identity matched by two keyless entries, is still one signer towards the threshold).
fn record(satisfied: &mut BTreeMap<usize, SignatureResult>, index: usize, result: SignatureResult) {
    if satisfied.contains_key(&index) || satisfied.values().any(|r| r.signer == result.signer) {
        return;
    }
    satisfied.insert(index, result);
}

/// [`verify_image`] for each carried child of an index, on the signatures attached to that
/// child (`artifacts` gives them by digest): what a rule with `require_children` asks. Stops at
/// the first child that fails.
pub fn verify_children<'a>(
    children: impl IntoIterator<Item = &'a Digest>,
    source_repository: &str,
    artifacts: impl Fn(&Digest) -> Vec<SignatureArtifact>,
    rule: &ResolvedRule,
    root: Option<&TrustedRoot>,
) -> Result<Vec<SignatureResult>, VerifyError> {
    let mut out = Vec::new();
    for child in children {
        out.extend(verify_image(
            child,
            source_repository,
            &artifacts(child),
            rule,
            root,
        )?);
    }
    Ok(out)
}
