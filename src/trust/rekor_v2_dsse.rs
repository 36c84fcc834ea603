//! Rekor v2 log entries of kind `dsse` 0.0.2, checked offline: how Rekor v2 logs attestations
//! signed as DSSE envelopes. `sigstore-verify` 0.15 reads only `hashedrekord` 0.0.2 of Rekor
//! v2 and refuses a bundle naming another kind, so [`super::sigstore_bundle`] takes these
//! entries out of the bundle before handing it over and checks them here:
//!
//! * the canonicalized body is `{"apiVersion":"0.0.2","kind":"dsse","spec":{"dsseV002":…}}`
//!   (protobuf-specs `rekor/v2/dsse.proto`, `DSSELogEntryV002`): its `payloadHash` must be the
//!   SHA-256 of the envelope's payload, and its `signatures` exactly the envelope's signatures,
//!   each with the bundle's own verifier (certificate or public key), so the entry binds what
//!   was signed and by whom;
//! * the body is a leaf (RFC 6962 leaf hash) of the tree the inclusion proof leads to, and that
//!   tree's root and size are the ones a checkpoint signed by a log of the trusted root states
//!   (Rekor v2 trusts the checkpoint's root, not the proof's copy of it).
//!
//! Rekor v2 gives no integrated time: the signing time comes from the bundle's RFC 3161
//! timestamps, which the rest of the verification requires.

use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest as _;

use sigstore_verify::types::{Checkpoint, DsseEnvelope, Sha256Hash};

/// Why a `dsse` 0.0.2 entry does not prove what the bundle claims.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DsseEntryError {
    /// The entry or its body is not what Rekor v2 writes.
    #[error("malformed dsse 0.0.2 entry: {0}")]
    Malformed(String),
    /// The logged payload hash is not the envelope payload's.
    #[error(
        "the entry logs payload sha256:{logged}, and the envelope's payload is sha256:{actual}"
    )]
    PayloadHash {
        /// The hash in the entry (hex).
        logged: String,
        /// The hash of the carried payload (hex).
        actual: String,
    },
    /// The logged signatures are not the envelope's, by the bundle's verifier.
    #[error("the entry does not log the envelope's signature by the bundle's {verifier}")]
    Signatures {
        /// `certificate` or `public key`.
        verifier: &'static str,
    },
    /// The inclusion proof does not lead from the entry to the checkpoint's root.
    #[error("inclusion proof: {0}")]
    InclusionProof(String),
    /// The checkpoint is unreadable or not signed by a log of the trusted root.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// One `dsse` 0.0.2 entry as a bundle carries it (`verificationMaterial.tlogEntries[]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    log_index: String,
    canonicalized_body: String,
    inclusion_proof: Option<InclusionProof>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProof {
    log_index: String,
    tree_size: String,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: CheckpointText,
}

#[derive(Debug, Clone, Deserialize)]
struct CheckpointText {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    api_version: String,
    kind: String,
    spec: Spec,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(rename = "dsseV002")]
    dsse_v002: Logged,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Logged {
    payload_hash: HashOutput,
    signatures: Vec<LoggedSignature>,
}

#[derive(Deserialize)]
struct HashOutput {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
struct LoggedSignature {
    content: String,
    verifier: Verifier,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verifier {
    x509_certificate: Option<RawBytes>,
    public_key: Option<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

/// Who signed the envelope, as the bundle says.
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    /// The signing certificate (DER).
    Certificate(&'a [u8]),
    /// The managed key (SPKI DER).
    PublicKey(&'a [u8]),
}

/// True for a `kindVersion` naming `dsse` 0.0.2.
pub fn is_dsse_v002(kind_version: &serde_json::Value) -> bool {
    kind_version["kind"] == "dsse" && kind_version["version"] == "0.0.2"
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>, DsseEntryError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| DsseEntryError::Malformed(format!("{what} is not base64: {e}")))
}

fn number(what: &str, s: &str) -> Result<u64, DsseEntryError> {
    s.parse()
        .map_err(|_| DsseEntryError::Malformed(format!("{what} `{s}` is not a number")))
}

fn hash32(what: &str, bytes: &[u8]) -> Result<Sha256Hash, DsseEntryError> {
    <[u8; 32]>::try_from(bytes)
        .map(Sha256Hash::new)
        .map_err(|_| DsseEntryError::Malformed(format!("{what} is not 32 bytes")))
}

impl Entry {
    /// The entry's log index.
    pub fn log_index(&self) -> Result<u64, DsseEntryError> {
        number("logIndex", &self.log_index)
    }

    /// Checks that this entry logs `envelope` signed by `signer`, and that a log of `logs`
    /// included it; returns its log index.
    pub fn verify(
        &self,
        envelope: &DsseEnvelope,
        signer: Signer<'_>,
        logs: &sigstore_verify::crypto::Keyring,
    ) -> Result<u64, DsseEntryError> {
        let body = b64("canonicalizedBody", &self.canonicalized_body)?;
        self.check_body(&body, envelope, signer)?;
        self.check_inclusion(&body, logs)?;
        self.log_index()
    }

    fn check_body(
        &self,
        body: &[u8],
        envelope: &DsseEnvelope,
        signer: Signer<'_>,
    ) -> Result<(), DsseEntryError> {
        let parsed: Body = serde_json::from_slice(body)
            .map_err(|e| DsseEntryError::Malformed(format!("body: {e}")))?;
        if parsed.kind != "dsse" || parsed.api_version != "0.0.2" {
            return Err(DsseEntryError::Malformed(format!(
                "body is {} {}, not dsse 0.0.2",
                crate::untrusted::shorten(&parsed.kind),
                crate::untrusted::shorten(&parsed.api_version)
            )));
        }
        let logged = parsed.spec.dsse_v002;
        if logged.payload_hash.algorithm != "SHA2_256" {
            return Err(DsseEntryError::Malformed(format!(
                "payload hash algorithm `{}` is not SHA2_256",
                crate::untrusted::shorten(&logged.payload_hash.algorithm)
            )));
        }
        let logged_hash = b64("payloadHash.digest", &logged.payload_hash.digest)?;
        let actual = sha2::Sha256::digest(envelope.payload.as_bytes());
        if logged_hash != actual.as_slice() {
            return Err(DsseEntryError::PayloadHash {
                logged: hex::encode(&logged_hash),
                actual: hex::encode(actual),
            });
        }
        let (verifier, ours) = match signer {
            Signer::Certificate(der) => ("certificate", der),
            Signer::PublicKey(der) => ("public key", der),
        };
        let by_us = |s: &LoggedSignature| -> Result<bool, DsseEntryError> {
            let theirs = match (signer, &s.verifier) {
                (
                    Signer::Certificate(_),
                    Verifier {
                        x509_certificate: Some(c),
                        ..
                    },
                ) => c,
                (
                    Signer::PublicKey(_),
                    Verifier {
                        public_key: Some(k),
                        ..
                    },
                ) => k,
                _ => return Ok(false),
            };
            Ok(b64("verifier", &theirs.raw_bytes)? == ours
                && b64("signature content", &s.content)? == envelope.signature.sig.as_bytes())
        };
        // The envelope carries one signature: the entry must log exactly it.
        let [only] = logged.signatures.as_slice() else {
            return Err(DsseEntryError::Signatures { verifier });
        };
        if !by_us(only)? {
            return Err(DsseEntryError::Signatures { verifier });
        }
        Ok(())
    }

    fn check_inclusion(
        &self,
        body: &[u8],
        logs: &sigstore_verify::crypto::Keyring,
    ) -> Result<(), DsseEntryError> {
        let proof = self
            .inclusion_proof
            .as_ref()
            .ok_or_else(|| DsseEntryError::InclusionProof("the entry has none".into()))?;
        let index = number("inclusionProof.logIndex", &proof.log_index)?;
        let size = number("inclusionProof.treeSize", &proof.tree_size)?;
        let checkpoint = Checkpoint::from_text(&proof.checkpoint.envelope)
            .map_err(|e| DsseEntryError::Checkpoint(format!("unreadable: {e}")))?;
        let now = jiff::Timestamp::now();
        let signed = checkpoint.signatures().iter().any(|sig| {
            logs.keys_by_hint(&sig.key_id, now)
                .any(|key| key.verify(checkpoint.signed_data(), &sig.signature).is_ok())
        });
        if !signed {
            return Err(DsseEntryError::Checkpoint(
                "not signed by a transparency log of the trusted root".into(),
            ));
        }
        if checkpoint.tree_size() != size {
            return Err(DsseEntryError::InclusionProof(format!(
                "proof for a tree of {size} entries, checkpoint of {}",
                checkpoint.tree_size()
            )));
        }
        let hashes = proof
            .hashes
            .iter()
            .map(|h| hash32("proof hash", &b64("proof hash", h)?))
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = sigstore_merkle::hash_leaf(body);
        sigstore_merkle::verify_inclusion_proof(&leaf, index, size, &hashes, checkpoint.root_hash())
            .map_err(|e| DsseEntryError::InclusionProof(e.to_string()))
    }
}
