//! The bundle signature gate: checked on `airlock.json` before a single blob is read.

use std::path::Path;

use serde::Serialize;

use super::reader::{BundleContents, BundleError};
use crate::trust::bundle_sig::{verify_manifest, SigFile};
use crate::trust::keys::PublicKey;

/// What the isolated side requires of a bundle's signatures.
#[derive(Debug, Clone, Default)]
pub struct SignaturePolicy {
    /// Public keys whose signatures count.
    pub trusted: Vec<PublicKey>,
    /// How many distinct trusted keys must have signed (M of N).
    pub require: usize,
    /// Accept an unsigned bundle (labs only; reported loudly).
    pub allow_unsigned: bool,
}

/// The outcome of the gate.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// Enough trusted keys signed; their key ids.
    Verified {
        /// Key ids of the trusted signers whose signatures verified.
        signers: Vec<String>,
    },
    /// No check was made because `--allow-unsigned` was given and no key was trusted.
    UncheckedAllowed,
}

/// Checks `contents` against `policy`. Fails closed: an unsigned bundle, a bundle with no
/// trusted key given, a bad signature by a trusted key or too few signers all refuse it.
pub fn check(
    path: &Path,
    contents: &BundleContents,
    policy: &SignaturePolicy,
) -> Result<SignatureStatus, BundleError> {
    check_bytes(
        path,
        &contents.manifest_bytes,
        contents.signature.as_deref(),
        super::SIGNATURE_ENTRY,
        policy,
    )
}

/// Checks the signature file `signature` (named `sig_name` in messages) over the exact bytes
/// `signed` against `policy`, with the rules of [`check`]. Used for `airlock.json` and for a
/// split bundle's `NAME.parts.json`.
pub fn check_bytes(
    path: &Path,
    signed: &[u8],
    signature: Option<&[u8]>,
    sig_name: &str,
    policy: &SignaturePolicy,
) -> Result<SignatureStatus, BundleError> {
    let refuse = |why: String| BundleError::Untrusted {
        path: path.to_path_buf(),
        why,
    };
    let unsigned = |why: String| BundleError::Unsigned {
        path: path.to_path_buf(),
        why,
    };
    if policy.trusted.is_empty() {
        if policy.allow_unsigned {
            return Ok(SignatureStatus::UncheckedAllowed);
        }
        return Err(unsigned(if signature.is_some() {
            "no trusted key given; pass --trust KEY.pub (or --allow-unsigned, for labs only)".into()
        } else {
            "the bundle is not signed; collect it with --sign, or pass --allow-unsigned (labs only)"
                .into()
        }));
    }
    let Some(sig_bytes) = signature else {
        if policy.allow_unsigned {
            return Ok(SignatureStatus::UncheckedAllowed);
        }
        return Err(unsigned(format!(
            "the bundle is not signed (no {sig_name})"
        )));
    };
    let sigs = SigFile::from_slice(sig_bytes)
        .map_err(|e| refuse(format!("{sig_name}: {}", crate::error_chain(&e))))?;
    let verified = verify_manifest(signed, &sigs, &policy.trusted, policy.require.max(1))
        .map_err(|e| refuse(format!("{sig_name}: {}", crate::error_chain(&e))))?;
    Ok(SignatureStatus::Verified {
        signers: verified.into_iter().map(|v| v.key_id.to_string()).collect(),
    })
}
