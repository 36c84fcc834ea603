//! Cosign "simple signing" signatures: the `.sig` image (tag `sha256-<hex>.sig`) whose layers
//! each hold one signed payload.
//!
//! A layer of media type [`SIMPLE_SIGNING_MEDIA_TYPE`] is the payload, a small JSON document
//! naming the signed image:
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"registry.example/app"},
//!              "image":{"docker-manifest-digest":"sha256:…"},
//!              "type":"cosign container image signature"},
//!  "optional":null}
//! ```
//!
//! and its annotations carry the proof:
//! - [`ANNOTATION_SIGNATURE`]: base64 of the ECDSA (DER) signature over the payload bytes;
//! - [`ANNOTATION_CERTIFICATE`] and [`ANNOTATION_CHAIN`]: for keyless signatures, the Fulcio
//!   certificate (PEM) and its intermediates;
//! - [`ANNOTATION_BUNDLE`]: the Rekor entry: `SignedEntryTimestamp` (the log's signature over
//!   the canonical JSON `{body,integratedTime,logID,logIndex}`) and that `Payload`, whose body
//!   is the `hashedrekord` entry naming the payload's hash, the signature and the key or
//!   certificate.
//!
//! [`verify_sig_layer`] checks one layer: the signature with a key or with a certificate
//! chained to the trusted root; the Rekor SET with the log key from the trusted root, the
//! entry's body against this payload, signature and key, and (keyless) the certificate's
//! validity at the integrated time. The Rekor and certificate checks are done by
//! `sigstore-verify`, on the v0.1 Sigstore bundle these annotations are equivalent to.
//! [`check_payload`] then binds the payload to the image digest and source repository.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use base64::Engine as _;
use sha2::Digest as _;

use super::sigstore_bundle::{self, BundleArtifact, BundleError, BundleSigner};
use super::trusted_root::TrustedRoot;
use super::KeyId;
use crate::oci::Digest;
use crate::reference::Reference;

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation with the base64 signature over the payload.
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// Annotation with the signing certificate (PEM), keyless signatures.
pub const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
/// Annotation with the certificate's intermediates (PEM), keyless signatures.
pub const ANNOTATION_CHAIN: &str = "dev.sigstore.cosign/chain";
/// Annotation with the Rekor bundle (SET and entry).
pub const ANNOTATION_BUNDLE: &str = "dev.sigstore.cosign/bundle";
/// The `critical.type` of a cosign payload.
pub const COSIGN_PAYLOAD_TYPE: &str = "cosign container image signature";
/// Largest payload accepted (real ones are a few hundred bytes).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Why a simple-signing signature was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimpleSigningError {
    /// The payload is too large, not JSON, or lacks a required field.
    #[error("malformed simple-signing payload: {detail}")]
    MalformedPayload {
        /// What is wrong.
        detail: String,
    },
    /// The payload's `critical.type` is not cosign's.
    #[error("simple-signing payload has type `{found}`, expected `{COSIGN_PAYLOAD_TYPE}`")]
    PayloadType {
        /// The type found.
        found: String,
    },
    /// The payload signs another image.
    #[error("the signature is over image {signed}, not {expected}")]
    DigestMismatch {
        /// The image being verified.
        expected: Digest,
        /// `docker-manifest-digest` of the payload.
        signed: Digest,
    },
    /// The payload's `docker-reference` names another repository.
    #[error("the signature is for repository `{signed}`, not `{expected}`")]
    ReferenceMismatch {
        /// The source repository (normalized).
        expected: String,
        /// The payload's `docker-reference` (normalized when it parses).
        signed: String,
    },
    /// A required annotation is missing.
    #[error("the signature layer has no `{annotation}` annotation")]
    MissingAnnotation {
        /// The annotation key.
        annotation: &'static str,
    },
    /// An annotation is malformed (bad base64, PEM or JSON).
    #[error("malformed `{annotation}` annotation: {detail}")]
    MalformedAnnotation {
        /// The annotation key.
        annotation: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The signature does not verify with the key over the payload.
    #[error("the signature does not verify with key {key_id}: wrong key, or payload or signature altered")]
    BadSignature {
        /// The key tried.
        key_id: KeyId,
    },
    /// Keyless or Rekor verification needs a trusted root and none was given.
    #[error("a trusted root is needed to verify {what}, and none was given")]
    NoTrustedRoot {
        /// What needed it.
        what: &'static str,
    },
    /// The rule requires a Rekor entry and the signature has none.
    #[error("the signature has no Rekor entry (`{ANNOTATION_BUNDLE}`), and the rule requires one")]
    MissingTlog,
    /// The certificate, the Rekor entry or the signature failed the Sigstore checks.
    #[error(transparent)]
    Sigstore(#[from] BundleError),
}

/// The fields of a simple-signing payload airlock checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: Digest,
    /// `optional` (annotations given at signing time), as JSON; `null` when absent.
    pub optional: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct RawPayload {
    critical: RawCritical,
    #[serde(default)]
    optional: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct RawCritical {
    identity: RawIdentity,
    image: RawImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(serde::Deserialize)]
struct RawIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(serde::Deserialize)]
struct RawImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Parses a payload and checks its type.
pub fn parse_payload(bytes: &[u8]) -> Result<Payload, SimpleSigningError> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(SimpleSigningError::MalformedPayload {
            detail: format!("{} bytes, more than {MAX_PAYLOAD_BYTES}", bytes.len()),
        });
    }
    let raw: RawPayload =
        serde_json::from_slice(bytes).map_err(|e| SimpleSigningError::MalformedPayload {
            detail: e.to_string(),
        })?;
    if raw.critical.kind != COSIGN_PAYLOAD_TYPE {
        return Err(SimpleSigningError::PayloadType {
            found: raw.critical.kind,
        });
    }
    let manifest_digest = raw
        .critical
        .image
        .docker_manifest_digest
        .parse::<Digest>()
        .map_err(|e| SimpleSigningError::MalformedPayload {
            detail: format!("docker-manifest-digest: {e}"),
        })?;
    Ok(Payload {
        docker_reference: raw.critical.identity.docker_reference,
        manifest_digest,
        optional: raw.optional,
    })
}

/// Checks that `payload` signs `image_digest` of `source_repository`: the digest must be equal,
/// and the `docker-reference` (without its tag, normalized like `docker.io/library/nginx`) must
/// name the same repository as `source_repository` (which may carry a tag or digest).
pub fn check_payload(
    payload: &Payload,
    image_digest: &Digest,
    source_repository: &str,
) -> Result<(), SimpleSigningError> {
    if &payload.manifest_digest != image_digest {
        return Err(SimpleSigningError::DigestMismatch {
            expected: image_digest.clone(),
            signed: payload.manifest_digest.clone(),
        });
    }
    let expected = normalize_repository(source_repository);
    let signed = normalize_repository(&payload.docker_reference);
    if expected != signed {
        return Err(SimpleSigningError::ReferenceMismatch { expected, signed });
    }
    Ok(())
}

/// `registry/repository` of a reference, normalized; the input unchanged if it does not parse.
fn normalize_repository(reference: &str) -> String {
    Reference::from_str(reference)
        .map(|r| r.name())
        .unwrap_or_else(|_| reference.to_owned())
}

/// One layer of a `.sig` image: the payload bytes (fetched by the layer digest, already
/// checked against it) and the layer's annotations.
#[derive(Debug, Clone, Copy)]
pub struct SigLayer<'a> {
    /// The payload blob.
    pub payload: &'a [u8],
    /// The layer descriptor's annotations.
    pub annotations: &'a BTreeMap<String, String>,
}

/// What a verified `.sig` layer proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSig {
    /// The parsed payload (not yet bound to an image: see [`check_payload`]).
    pub payload: Payload,
    /// The key that signed, for key signatures.
    pub key_id: Option<KeyId>,
    /// The certificate's SAN, for keyless signatures.
    pub identity: Option<String>,
    /// The certificate's OIDC issuer, for keyless signatures.
    pub issuer: Option<String>,
    /// The Rekor log index, when a Rekor entry was verified.
    pub rekor_log_index: Option<u64>,
    /// The Rekor integrated time, when a Rekor entry was verified.
    pub integrated_time: Option<i64>,
}

/// Verifies one `.sig` layer with `signer` (see the module docs).
///
/// With a key, a Rekor entry is checked when present and a trusted root is given, and required
/// when `require_tlog`. Keyless signatures always need the certificate, the Rekor entry and
/// the trusted root.
pub fn verify_sig_layer(
    layer: SigLayer<'_>,
    signer: BundleSigner<'_>,
    root: Option<&TrustedRoot>,
    require_tlog: bool,
) -> Result<VerifiedSig, SimpleSigningError> {
    let payload = parse_payload(layer.payload)?;
    let signature_b64 = layer.annotations.get(ANNOTATION_SIGNATURE).ok_or(
        SimpleSigningError::MissingAnnotation {
            annotation: ANNOTATION_SIGNATURE,
        },
    )?;
    // Go's base64 decoder, which cosign uses, skips line breaks; so do we.
    let signature_b64: String = signature_b64
        .chars()
        .filter(|c| !matches!(c, '\n' | '\r'))
        .collect();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| SimpleSigningError::MalformedAnnotation {
            annotation: ANNOTATION_SIGNATURE,
            detail: format!("not base64: {e}"),
        })?;
    let rekor = layer
        .annotations
        .get(ANNOTATION_BUNDLE)
        .map(|text| parse_rekor_bundle(text))
        .transpose()?;

    match signer {
        BundleSigner::Key(key) => {
            key.verify(layer.payload, &signature).map_err(|_| {
                SimpleSigningError::BadSignature {
                    key_id: key.key_id().clone(),
                }
            })?;
            let mut verified = VerifiedSig {
                payload,
                key_id: Some(key.key_id().clone()),
                identity: None,
                issuer: None,
                rekor_log_index: None,
                integrated_time: None,
            };
            match (rekor, root) {
                (None, _) if require_tlog => return Err(SimpleSigningError::MissingTlog),
                (None, _) => {}
                (Some(_), None) if require_tlog => {
                    return Err(SimpleSigningError::NoTrustedRoot {
                        what: "the Rekor entry",
                    })
                }
                // No log key to check the entry with: the key signature stands on its own.
                (Some(_), None) => {}
                (Some(rekor), Some(root)) => {
                    let bundle = v01_bundle(&rekor, &signature, layer.payload, None)?;
                    let result = sigstore_bundle::verify_parsed_bundle(
                        &bundle,
                        BundleArtifact::Bytes(layer.payload),
                        root,
                        BundleSigner::Key(key),
                    )?;
                    verified.rekor_log_index = result.rekor_log_index;
                    verified.integrated_time = result.integrated_time;
                }
            }
            Ok(verified)
        }
        BundleSigner::Keyless => {
            let root = root.ok_or(SimpleSigningError::NoTrustedRoot {
                what: "a keyless (certificate) signature",
            })?;
            let cert_pem = layer.annotations.get(ANNOTATION_CERTIFICATE).ok_or(
                SimpleSigningError::MissingAnnotation {
                    annotation: ANNOTATION_CERTIFICATE,
                },
            )?;
            let rekor = rekor.ok_or(SimpleSigningError::MissingAnnotation {
                annotation: ANNOTATION_BUNDLE,
            })?;
            let mut certs = super::trusted_root::certificate_ders(cert_pem).map_err(|detail| {
                SimpleSigningError::MalformedAnnotation {
                    annotation: ANNOTATION_CERTIFICATE,
                    detail,
                }
            })?;
            if certs.len() != 1 {
                return Err(SimpleSigningError::MalformedAnnotation {
                    annotation: ANNOTATION_CERTIFICATE,
                    detail: format!("{} certificates, expected one", certs.len()),
                });
            }
            if let Some(chain) = layer.annotations.get(ANNOTATION_CHAIN) {
                let chain = super::trusted_root::certificate_ders(chain).map_err(|detail| {
                    SimpleSigningError::MalformedAnnotation {
                        annotation: ANNOTATION_CHAIN,
                        detail,
                    }
                })?;
                certs.extend(chain);
            }
            let bundle = v01_bundle(&rekor, &signature, layer.payload, Some(&certs))?;
            let result = sigstore_bundle::verify_parsed_bundle(
                &bundle,
                BundleArtifact::Bytes(layer.payload),
                root,
                BundleSigner::Keyless,
            )?;
            Ok(VerifiedSig {
                payload,
                key_id: None,
                identity: result.identity,
                issuer: result.issuer,
                rekor_log_index: result.rekor_log_index,
                integrated_time: result.integrated_time,
            })
        }
    }
}

/// The `dev.sigstore.cosign/bundle` annotation.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: RekorPayload,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RekorPayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Debug, serde::Deserialize)]
struct RekorBody {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
}

fn malformed_bundle(detail: impl Into<String>) -> SimpleSigningError {
    SimpleSigningError::MalformedAnnotation {
        annotation: ANNOTATION_BUNDLE,
        detail: detail.into(),
    }
}

fn parse_rekor_bundle(text: &str) -> Result<RekorBundle, SimpleSigningError> {
    if text.len() > super::sigstore_bundle::MAX_BUNDLE_BYTES {
        return Err(malformed_bundle("too large"));
    }
    serde_json::from_str(text).map_err(|e| malformed_bundle(e.to_string()))
}

/// The Sigstore bundle (v0.1) equivalent of a `.sig` layer's annotations.
fn v01_bundle(
    rekor: &RekorBundle,
    signature: &[u8],
    payload: &[u8],
    certificates: Option<&[Vec<u8>]>,
) -> Result<sigstore_bundle::ParsedBundle, SimpleSigningError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64
        .decode(rekor.payload.body.trim())
        .map_err(|e| malformed_bundle(format!("Payload.body is not base64: {e}")))?;
    let kind: RekorBody = serde_json::from_slice(&body)
        .map_err(|e| malformed_bundle(format!("Payload.body is not a Rekor entry: {e}")))?;
    let log_id = hex::decode(&rekor.payload.log_id)
        .map_err(|_| malformed_bundle("Payload.logID is not hex"))?;
    b64.decode(rekor.signed_entry_timestamp.trim())
        .map_err(|e| malformed_bundle(format!("SignedEntryTimestamp is not base64: {e}")))?;
    let material = match certificates {
        Some(certs) => serde_json::json!({
            "x509CertificateChain": {
                "certificates": certs
                    .iter()
                    .map(|der| serde_json::json!({ "rawBytes": b64.encode(der) }))
                    .collect::<Vec<_>>(),
            },
        }),
        None => serde_json::json!({ "publicKey": { "hint": "" } }),
    };
    let mut material = material;
    material["tlogEntries"] = serde_json::json!([{
        "logIndex": rekor.payload.log_index.to_string(),
        "logId": { "keyId": b64.encode(log_id) },
        "kindVersion": { "kind": kind.kind, "version": kind.api_version },
        "integratedTime": rekor.payload.integrated_time.to_string(),
        "inclusionPromise": { "signedEntryTimestamp": rekor.signed_entry_timestamp.trim() },
        "canonicalizedBody": rekor.payload.body.trim(),
    }]);
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": material,
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": b64.encode(sha2::Sha256::digest(payload)),
            },
            "signature": b64.encode(signature),
        },
    });
    Ok(sigstore_bundle::parse_bundle(
        bundle.to_string().as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"nginx"},"image":{"docker-manifest-digest":"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"},"type":"cosign container image signature"},"optional":null}"#;

    #[test]
    fn parses_and_binds_with_docker_hub_normalization() {
        let p = parse_payload(PAYLOAD.as_bytes()).expect("payload");
        let digest = p.manifest_digest.clone();
        check_payload(&p, &digest, "docker.io/library/nginx:1.25").expect("same repo");
        assert!(matches!(
            check_payload(&p, &digest, "docker.io/library/redis"),
            Err(SimpleSigningError::ReferenceMismatch { .. })
        ));
        let other = Digest::of(b"other");
        assert!(matches!(
            check_payload(&p, &other, "nginx"),
            Err(SimpleSigningError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn can_detect_truncation_of_a_payload() {
        for len in 0..PAYLOAD.len() {
            assert!(
                parse_payload(&PAYLOAD.as_bytes()[..len]).is_err(),
                "cut at {len} parsed"
            );
        }
    }

    #[test]
    fn rejects_other_payload_types_and_bad_digests() {
        let atomic = PAYLOAD.replace(COSIGN_PAYLOAD_TYPE, "atomic container signature");
        assert!(matches!(
            parse_payload(atomic.as_bytes()),
            Err(SimpleSigningError::PayloadType { .. })
        ));
        let bad = PAYLOAD.replace("sha256:634a", "sha256:634A");
        assert!(matches!(
            parse_payload(bad.as_bytes()),
            Err(SimpleSigningError::MalformedPayload { .. })
        ));
    }
}
