//! `airlock.json.sig`: the signatures over a bundle's manifest, and M-of-N verification.
//!
//! The file is JSON, one entry per signer, each over the exact bytes of `airlock.json`:
//!
//! ```json
//! {
//!   "signatures": [
//!     {"keyid": "<hex sha256 of the signer's DER public key>", "sig": "<base64 DER ECDSA-P256-SHA256>"}
//!   ]
//! }
//! ```
//!
//! Each `sig` is exactly what `cosign sign-blob --key NAME.key airlock.json` prints, so any single
//! signature can be checked without airlock: `cosign verify-blob --key NAME.pub --signature <(echo
//! SIG) airlock.json` or `openssl dgst -sha256 -verify NAME.pub -signature sig.der airlock.json`.
//!
//! The file arrives with the bundle, from the untrusted side of the gap: it is size-capped before
//! parsing, decoded strictly (unknown fields, duplicate key ids, bad base64 and trailing bytes are
//! errors), and the `keyid` in it is only a hint for which trusted key to try; a signature counts
//! only if it verifies with a key the verifier was given.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::{KeyId, PublicKey, SigningKey};
use super::TrustError;

/// Name of the signature file inside a bundle.
pub const SIG_FILE_NAME: &str = "airlock.json.sig";
/// Largest signature file we parse. One entry is about 200 bytes.
pub const MAX_SIG_FILE_BYTES: usize = 64 * 1024;
/// Most signatures one file may carry.
pub const MAX_SIGNATURES: usize = 64;

/// Why a signature file was refused before any signature was checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigFileError {
    /// The file is larger than [`MAX_SIG_FILE_BYTES`].
    #[error("{SIG_FILE_NAME} is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The file is not JSON of the expected shape (includes truncation).
    #[error("{SIG_FILE_NAME} is not a valid signature file")]
    Json(#[source] serde_json::Error),
    /// The file has no signatures.
    #[error("{SIG_FILE_NAME} has no signatures")]
    Empty,
    /// The file has more than [`MAX_SIGNATURES`] entries.
    #[error("{SIG_FILE_NAME} has {count} signatures, more than the {max} allowed")]
    TooMany {
        /// Entries found.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// Two entries name the same key.
    #[error("{SIG_FILE_NAME} has more than one signature for key {key_id}")]
    DuplicateKeyId {
        /// The repeated key id.
        key_id: KeyId,
    },
    /// An entry's `sig` is not base64.
    #[error("{SIG_FILE_NAME}: the signature for key {key_id} is not valid base64")]
    Base64 {
        /// The entry's key id.
        key_id: KeyId,
    },
}

/// One signer's signature over the manifest bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigEntry {
    /// Which key claims to have signed (checked against the trusted keys, never trusted itself).
    pub key_id: KeyId,
    /// The DER ECDSA signature.
    pub signature: Vec<u8>,
}

/// A parsed `airlock.json.sig`: entries sorted by key id, key ids unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigFile {
    signatures: Vec<SigEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigFile {
    signatures: Vec<RawEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    keyid: KeyId,
    sig: String,
}

impl SigFile {
    /// Parses the bytes of a signature file, enforcing the size cap first.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SigFileError> {
        if bytes.len() > MAX_SIG_FILE_BYTES {
            return Err(SigFileError::TooLarge {
                len: bytes.len(),
                max: MAX_SIG_FILE_BYTES,
            });
        }
        let raw: RawSigFile = serde_json::from_slice(bytes).map_err(SigFileError::Json)?;
        if raw.signatures.is_empty() {
            return Err(SigFileError::Empty);
        }
        if raw.signatures.len() > MAX_SIGNATURES {
            return Err(SigFileError::TooMany {
                count: raw.signatures.len(),
                max: MAX_SIGNATURES,
            });
        }
        let mut by_key = BTreeMap::new();
        for entry in raw.signatures {
            let signature = base64::engine::general_purpose::STANDARD
                .decode(&entry.sig)
                .map_err(|_| SigFileError::Base64 {
                    key_id: entry.keyid.clone(),
                })?;
            if by_key.contains_key(&entry.keyid) {
                return Err(SigFileError::DuplicateKeyId {
                    key_id: entry.keyid,
                });
            }
            by_key.insert(entry.keyid, signature);
        }
        Ok(SigFile {
            signatures: by_key
                .into_iter()
                .map(|(key_id, signature)| SigEntry { key_id, signature })
                .collect(),
        })
    }

    /// The file's bytes: pretty JSON, entries sorted by key id, trailing newline. Deterministic,
    /// so the same keys over the same manifest give the same file.
    pub fn to_vec(&self) -> Vec<u8> {
        let raw = RawSigFile {
            signatures: self
                .signatures
                .iter()
                .map(|e| RawEntry {
                    keyid: e.key_id.clone(),
                    sig: base64::engine::general_purpose::STANDARD.encode(&e.signature),
                })
                .collect(),
        };
        // Serializing strings and a Vec into a Vec<u8> cannot fail.
        let mut out = serde_json::to_vec_pretty(&raw).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The entries, sorted by key id.
    pub fn signatures(&self) -> &[SigEntry] {
        &self.signatures
    }
}

/// A trusted key whose signature over the manifest verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSigner {
    /// The signer's key id.
    pub key_id: KeyId,
}

/// Signs the exact `manifest` bytes with every key. The same key given twice signs once.
pub fn sign_manifest(manifest: &[u8], keys: &[SigningKey]) -> SigFile {
    let mut by_key = BTreeMap::new();
    for key in keys {
        by_key
            .entry(key.key_id().clone())
            .or_insert_with(|| key.sign(manifest));
    }
    SigFile {
        signatures: by_key
            .into_iter()
            .map(|(key_id, signature)| SigEntry { key_id, signature })
            .collect(),
    }
}

/// Checks that at least `require` distinct keys of `trusted` signed the exact `manifest` bytes.
///
/// - A signature whose key id is not among `trusted` is ignored: bundles may carry signatures for
///   other sites.
/// - A signature claiming a trusted key that does not verify is an error naming that key: the
///   manifest or the signature was altered, and that is never quietly outvoted.
/// - The same trusted key given twice counts once.
/// - `require` must be at least 1 and at most the number of distinct trusted keys.
///
/// Returns the verified signers sorted by key id.
pub fn verify_manifest(
    manifest: &[u8],
    sigs: &SigFile,
    trusted: &[PublicKey],
    require: usize,
) -> Result<Vec<VerifiedSigner>, TrustError> {
    let trusted: BTreeMap<&KeyId, &PublicKey> = trusted.iter().map(|k| (k.key_id(), k)).collect();
    if require == 0 || require > trusted.len() {
        return Err(TrustError::InvalidThreshold {
            required: require,
            trusted: trusted.len(),
        });
    }
    let mut verified = Vec::new();
    for entry in &sigs.signatures {
        let Some(key) = trusted.get(&entry.key_id) else {
            tracing::debug!(key_id = %entry.key_id, "ignoring signature by an untrusted key");
            continue;
        };
        key.verify(manifest, &entry.signature)
            .map_err(|source| TrustError::BadSignature {
                key_id: entry.key_id.clone(),
                source,
            })?;
        verified.push(VerifiedSigner {
            key_id: entry.key_id.clone(),
        });
    }
    if verified.len() < require {
        return Err(TrustError::NotEnoughSignatures {
            valid: verified.len(),
            required: require,
            trusted: trusted.len(),
        });
    }
    Ok(verified)
}
