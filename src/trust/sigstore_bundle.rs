//! Offline verification of Sigstore bundles (`application/vnd.dev.sigstore.bundle…`, v0.1 to
//! v0.3), the form cosign v3 and the `sigstore-*` clients attach to images as OCI referrers.
//!
//! A bundle carries the signature (a `messageSignature` over the artifact or a DSSE envelope
//! whose in-toto subject names the artifact), the verification material (a Fulcio certificate,
//! or a hint of a managed public key) and the transparency-log entries (Rekor v1 or v2 with
//! their inclusion proof to a signed checkpoint and/or the signed entry timestamp). Everything
//! is checked against a [`TrustedRoot`] read from a file; nothing is fetched.
//!
//! The checks are those of the `sigstore-verify` crate (the Sigstore client specification's
//! steps: certificate chain at the signing time, SCT, Rekor inclusion proof and checkpoint
//! signature, SET, integrated time within the certificate validity, signature, and the log
//! entry's consistency with the bundle). This module picks the policy, and reports what was
//! verified: who signed (key id, or certificate identity and issuer) and at which log index.
//! Matching the identity against a trust policy is [`super::verify`]'s job.

use sigstore_verify::types::{Bundle, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy};

use super::rekor_v2_dsse::{self, DsseEntryError};
use super::trusted_root::TrustedRoot;
use super::{KeyId, PublicKey};
use crate::oci::Digest;

/// Largest bundle accepted (real bundles are a few KiB; DSSE attestations can be larger).
pub const MAX_BUNDLE_BYTES: usize = 4 * 1024 * 1024;

/// Media types of Sigstore bundles, as layers or `artifactType` of referrers.
pub const BUNDLE_MEDIA_TYPES: &[&str] = &[
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
];

/// True for a media type that names a Sigstore bundle of a version we read.
pub fn is_bundle_media_type(media_type: &str) -> bool {
    BUNDLE_MEDIA_TYPES.contains(&media_type)
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle is larger than [`MAX_BUNDLE_BYTES`].
    #[error("the Sigstore bundle is {len} bytes, more than {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The bundle is not valid JSON or not a bundle of a known version.
    #[error("malformed Sigstore bundle: {detail}")]
    Malformed {
        /// What the parser said.
        detail: String,
    },
    /// The artifact digest is not a sha256 digest.
    #[error("cannot verify a Sigstore bundle over {digest}: only sha256 digests are supported")]
    UnsupportedDigest {
        /// The digest given.
        digest: Digest,
    },
    /// No trusted root was given: bundles cannot be verified without one.
    #[error("a trusted root is needed to verify Sigstore bundles, and none was given")]
    NoTrustedRoot,
    /// The bundle is signed by a kind of signer the rule does not name.
    #[error("the bundle is signed {found}, and the rule names no {wanted}")]
    SignerKind {
        /// `with a managed key` or `keyless (with a certificate)`.
        found: &'static str,
        /// `keys` or `keyless signers`.
        wanted: &'static str,
    },
    /// The keyless signing certificate was not valid when the signature was made, by the time
    /// the log entry or a verified RFC 3161 timestamp gives: an expired (or not yet valid)
    /// certificate with no timestamp inside its validity.
    #[error(
        "the signing certificate was not valid at signing time: {evidence} is {time}, and the \
         certificate is valid from {not_before} to {not_after}"
    )]
    CertificateNotValidAtSigning {
        /// `the Rekor integrated time` or `the RFC 3161 timestamp`.
        evidence: &'static str,
        /// That time (RFC 3339).
        time: String,
        /// The certificate's notBefore (RFC 3339).
        not_before: String,
        /// The certificate's notAfter (RFC 3339).
        not_after: String,
    },
    /// A Rekor v2 `dsse` 0.0.2 entry does not bind the envelope, or is not in the log.
    #[error("Rekor v2 dsse entry (log index {log_index}): {source}")]
    RekorV2Dsse {
        /// The entry's log index, as it states it.
        log_index: String,
        /// What is wrong.
        #[source]
        source: DsseEntryError,
    },
    /// A check failed (signature, certificate, log entry, timestamp, …).
    #[error("Sigstore bundle verification failed: {source}")]
    Verification {
        /// What failed, as the verifier says it.
        #[source]
        source: Box<sigstore_verify::Error>,
    },
}

/// What a bundle is checked against.
#[derive(Debug, Clone, Copy)]
pub enum BundleSigner<'a> {
    /// A managed key: the bundle must be signed by this key.
    Key(&'a PublicKey),
    /// Keyless: a Fulcio certificate chaining to the trusted root. The identity and issuer are
    /// returned in [`VerifiedBundle`] for the caller to match.
    Keyless,
}

/// The artifact a bundle signs.
#[derive(Debug, Clone, Copy)]
pub enum BundleArtifact<'a> {
    /// The artifact bytes.
    Bytes(&'a [u8]),
    /// The artifact's digest (an image manifest digest): used for `messageSignature`
    /// digests and DSSE in-toto subjects.
    Digest(&'a Digest),
}

/// What a verified bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// The bundle's media type.
    pub media_type: String,
    /// The managed key that signed, for [`BundleSigner::Key`].
    pub key_id: Option<KeyId>,
    /// The certificate's subject alternative name (email or URI), for keyless bundles.
    pub identity: Option<String>,
    /// The certificate's OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8, or .1.1).
    pub issuer: Option<String>,
    /// The Rekor log index of the (first) transparency-log entry.
    pub rekor_log_index: Option<u64>,
    /// The Rekor integrated time (seconds since the epoch), when a SET or checkpoint gave one.
    pub integrated_time: Option<i64>,
    /// The earliest verified signing time other than the log's integrated time: an RFC 3161
    /// timestamp the bundle carries (Unix seconds).
    pub timestamp: Option<i64>,
    /// The kind and version of the (first) log entry (`hashedrekord 0.0.2`, `dsse 0.0.2`).
    pub rekor_entry: Option<String>,
}

/// A parsed bundle: what `sigstore-verify` reads, plus the Rekor v2 `dsse` 0.0.2 entries it
/// does not, taken out of `tlogEntries` to be checked by [`rekor_v2_dsse`].
#[derive(Debug, Clone)]
pub struct ParsedBundle {
    bundle: Bundle,
    dsse_v002: Vec<rekor_v2_dsse::Entry>,
}

impl std::ops::Deref for ParsedBundle {
    type Target = Bundle;
    fn deref(&self) -> &Bundle {
        &self.bundle
    }
}

impl From<Bundle> for ParsedBundle {
    fn from(bundle: Bundle) -> Self {
        ParsedBundle {
            bundle,
            dsse_v002: Vec::new(),
        }
    }
}

/// Parses a bundle strictly: JSON, known media type, structural rules of its version. Rekor
/// v2 `dsse` 0.0.2 entries are set aside for [`rekor_v2_dsse`]; a bundle mixing them with
/// other entry kinds is refused (the others would then go unchecked).
pub fn parse_bundle(json: &[u8]) -> Result<ParsedBundle, BundleError> {
    if json.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge {
            len: json.len(),
            max: MAX_BUNDLE_BYTES,
        });
    }
    let text = std::str::from_utf8(json).map_err(|_| BundleError::Malformed {
        detail: "not UTF-8 text".into(),
    })?;
    let malformed = |detail: String| BundleError::Malformed { detail };
    let mut doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let dsse_v002: Vec<serde_json::Value> = match doc
        .pointer_mut("/verificationMaterial/tlogEntries")
        .and_then(serde_json::Value::as_array_mut)
    {
        Some(entries)
            if entries
                .iter()
                .any(|e| rekor_v2_dsse::is_dsse_v002(&e["kindVersion"])) =>
        {
            let (v2, rest): (Vec<_>, Vec<_>) = std::mem::take(entries)
                .into_iter()
                .partition(|e| rekor_v2_dsse::is_dsse_v002(&e["kindVersion"]));
            if !rest.is_empty() {
                return Err(malformed(
                    "it mixes Rekor v2 dsse 0.0.2 entries with entries of other kinds".into(),
                ));
            }
            v2
        }
        _ => Vec::new(),
    };
    if dsse_v002.is_empty() {
        return Bundle::from_json(text)
            .map(ParsedBundle::from)
            .map_err(|e| malformed(e.to_string()));
    }
    let dsse_v002 = dsse_v002
        .into_iter()
        .map(|e| serde_json::from_value(e).map_err(|e| malformed(format!("dsse 0.0.2 entry: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let bundle = serde_json::from_value(doc).map_err(|e| malformed(e.to_string()))?;
    Ok(ParsedBundle { bundle, dsse_v002 })
}

/// Verifies a Sigstore bundle over `artifact` against `root`, signed by `signer`.
///
/// Transparency-log inclusion is always required; the certificate's SCT is checked when the
/// trusted root lists CT logs ([`TrustedRoot::has_ct_logs`]).
pub fn verify_bundle(
    json: &[u8],
    artifact: BundleArtifact<'_>,
    root: &TrustedRoot,
    signer: BundleSigner<'_>,
) -> Result<VerifiedBundle, BundleError> {
    let bundle = parse_bundle(json)?;
    verify_parsed_bundle(&bundle, artifact, root, signer)
}

/// [`verify_bundle`] for an already parsed bundle.
pub fn verify_parsed_bundle(
    parsed: &ParsedBundle,
    artifact: BundleArtifact<'_>,
    root: &TrustedRoot,
    signer: BundleSigner<'_>,
) -> Result<VerifiedBundle, BundleError> {
    super::trusted_root::ensure_crypto_provider();
    let bundle = &parsed.bundle;
    // The log entries sigstore-verify cannot read are checked below instead: it checks
    // the rest (certificate chain at a verified timestamp, signature, TSA) without them.
    let own_tlog = !parsed.dsse_v002.is_empty();
    let verifier = root.verifier();
    let verification = |source| BundleError::Verification {
        source: Box::new(source),
    };
    let verification = |source: sigstore_verify::Error| match (&source, signer) {
        (sigstore_verify::Error::Certificate(_), BundleSigner::Keyless) => {
            certificate_time_mismatch(bundle, root).unwrap_or_else(|| verification(source))
        }
        _ => verification(source),
    };
    let result = match (artifact, signer) {
        (BundleArtifact::Bytes(bytes), BundleSigner::Keyless) => verifier
            .verify(bytes, bundle, &keyless_policy(root, own_tlog))
            .map_err(verification)?,
        (BundleArtifact::Bytes(bytes), BundleSigner::Key(key)) => verifier
            .verify(bytes, bundle, &key_policy(key, own_tlog))
            .map_err(verification)?,
        (BundleArtifact::Digest(digest), signer) => {
            let hash = sha256_of(digest)?;
            match signer {
                BundleSigner::Keyless => verifier
                    .verify(hash, bundle, &keyless_policy(root, own_tlog))
                    .map_err(verification)?,
                BundleSigner::Key(key) => verifier
                    .verify(hash, bundle, &key_policy(key, own_tlog))
                    .map_err(verification)?,
            }
        }
    };
    let (rekor_log_index, rekor_entry) = if own_tlog {
        (
            Some(verify_dsse_v002(parsed, root, signer)?),
            Some("dsse 0.0.2".to_string()),
        )
    } else {
        let first = bundle.verification_material.tlog_entries.first();
        (
            first.map(|e| e.log_index.get()),
            first.map(|e| format!("{} {}", e.kind_version.kind(), e.kind_version.version())),
        )
    };
    Ok(VerifiedBundle {
        media_type: bundle.media_type.as_str().to_owned(),
        key_id: match signer {
            BundleSigner::Key(key) => Some(key.key_id().clone()),
            BundleSigner::Keyless => None,
        },
        identity: result.identity().map(|san| san.as_str().to_owned()),
        issuer: result.issuer().map(str::to_owned),
        rekor_log_index,
        integrated_time: result.integrated_time().map(|t| t.as_second()),
        timestamp: result
            .verified_timestamps()
            .iter()
            .map(|t| t.as_second())
            .filter(|t| Some(*t) != result.integrated_time().map(|i| i.as_second()))
            .min(),
        rekor_entry,
    })
}

/// Checks every Rekor v2 `dsse` 0.0.2 entry of `parsed` (see [`rekor_v2_dsse`]) against the
/// envelope and the signer the rest of the verification accepted; the first entry's log index.
fn verify_dsse_v002(
    parsed: &ParsedBundle,
    root: &TrustedRoot,
    signer: BundleSigner<'_>,
) -> Result<u64, BundleError> {
    use sigstore_verify::types::SignatureContent;
    let refused = |entry: &rekor_v2_dsse::Entry, source| BundleError::RekorV2Dsse {
        log_index: entry
            .log_index()
            .map(|i| i.to_string())
            .unwrap_or_else(|_| "unreadable".into()),
        source,
    };
    let malformed = |detail: &str| BundleError::Malformed {
        detail: detail.into(),
    };
    let SignatureContent::DsseEnvelope(envelope) = &parsed.bundle.content else {
        return Err(malformed(
            "a dsse 0.0.2 log entry for a bundle without a DSSE envelope",
        ));
    };
    let who = match signer {
        BundleSigner::Key(key) => rekor_v2_dsse::Signer::PublicKey(key.spki_der()),
        BundleSigner::Keyless => rekor_v2_dsse::Signer::Certificate(
            parsed
                .bundle
                .signing_certificate()
                .ok_or_else(|| malformed("a keyless bundle without a certificate"))?
                .as_bytes(),
        ),
    };
    let logs = root
        .sigstore()
        .rekor_keys()
        .map_err(|e| BundleError::Verification {
            source: Box::new(sigstore_verify::Error::from(e)),
        })?;
    let mut first = None;
    for entry in &parsed.dsse_v002 {
        let index = entry
            .verify(envelope, who, &logs)
            .map_err(|e| refused(entry, e))?;
        first.get_or_insert(index);
    }
    first.ok_or_else(|| malformed("no dsse 0.0.2 entry"))
}

/// When a keyless bundle's certificate failed, whether a signing time lies outside the
/// certificate's validity: a verified RFC 3161 timestamp, or the log's integrated time (as the
/// entry states it; the verification has failed either way, this only names why).
fn certificate_time_mismatch(bundle: &Bundle, root: &TrustedRoot) -> Option<BundleError> {
    use sigstore_verify::types::SignatureContent;
    let info =
        sigstore_verify::crypto::parse_certificate_info(bundle.signing_certificate()?).ok()?;
    let (not_before, not_after) = (info.not_before.as_second(), info.not_after.as_second());
    let mismatch = |evidence, time: i64| {
        (time < not_before || time > not_after).then(|| BundleError::CertificateNotValidAtSigning {
            evidence,
            time: rfc3339(time),
            not_before: rfc3339(not_before),
            not_after: rfc3339(not_after),
        })
    };
    let signature = match &bundle.content {
        SignatureContent::DsseEnvelope(e) => e.signature.sig.clone(),
        SignatureContent::MessageSignature(m) => m.signature.clone(),
        _ => return None,
    };
    let authorities = root.sigstore().tsa_authorities();
    let material = &bundle.verification_material;
    for ts in &material.timestamp_verification_data.rfc3161_timestamps {
        for authority in &authorities {
            if let Ok(t) = sigstore_verify::tsa::verify_timestamp_for_authority(
                &ts.signed_timestamp,
                &signature,
                authority,
            ) {
                if let Some(e) = mismatch("the RFC 3161 timestamp", t.as_second()) {
                    return Some(e);
                }
            }
        }
    }
    material
        .tlog_entries
        .iter()
        .filter_map(|e| e.integrated_time)
        .find_map(|t| mismatch("the Rekor integrated time", t.as_second()))
}

fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `own_tlog`: the log entries are checked here ([`verify_dsse_v002`]), not by the policy.
fn keyless_policy(root: &TrustedRoot, own_tlog: bool) -> VerificationPolicy {
    let mut policy = VerificationPolicy::any_identity();
    if !root.has_ct_logs() {
        policy = policy.skip_sct();
    }
    if own_tlog {
        policy = policy.skip_tlog_unsafe();
    }
    policy
}

fn key_policy(key: &PublicKey, own_tlog: bool) -> PublicKeyVerificationPolicy {
    let policy = PublicKeyVerificationPolicy::new(sigstore_verify::types::DerPublicKey::new(
        key.spki_der().to_vec(),
    ));
    if own_tlog {
        policy.skip_tlog_unsafe()
    } else {
        policy
    }
}

fn sha256_of(digest: &Digest) -> Result<Sha256Hash, BundleError> {
    match digest.as_str().strip_prefix("sha256:") {
        Some(hex) => Sha256Hash::from_hex(hex).map_err(|_| BundleError::UnsupportedDigest {
            digest: digest.clone(),
        }),
        None => Err(BundleError::UnsupportedDigest {
            digest: digest.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_oversized_and_non_json_bundles() {
        assert!(matches!(
            parse_bundle(&vec![b' '; MAX_BUNDLE_BYTES + 1]),
            Err(BundleError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_bundle(b"{\"mediaType\":"),
            Err(BundleError::Malformed { .. })
        ));
        assert!(matches!(
            parse_bundle(&[0xff, 0xfe]),
            Err(BundleError::Malformed { .. })
        ));
    }

    #[test]
    fn knows_the_bundle_media_types() {
        assert!(is_bundle_media_type(
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        ));
        assert!(!is_bundle_media_type(
            "application/vnd.dev.sigstore.bundle+json;version=99.9"
        ));
    }
}
