//! Keys and signatures: what airlock trusts and how it proves it.
//!
//! - [`sealed`]: cosign's encrypted private-key envelope (scrypt + NaCl secretbox in PEM).
//! - [`password`]: where key passwords come from (file, environment, terminal).
//! - [`keys`]: ECDSA P-256 key pairs in cosign's formats, key ids, sign and verify.
//! - [`bundle_sig`]: `airlock.json.sig` and M-of-N verification of a bundle manifest.
//!
//! Formats and checks are plain functions over bytes; the functions that touch disk
//! ([`keys::SigningKey::load`], [`keys::PublicKey::load`], [`keys::write_key_pair`]) return
//! [`TrustError`], whose every variant names the key file or the key id.

use std::path::PathBuf;

pub mod bundle_sig;
pub mod keys;
pub mod password;
mod pem;
pub mod policy;
pub mod rekor_v2_dsse;
pub mod sealed;
pub mod sigstore_bundle;
pub mod simple_signing;
pub mod trusted_root;
pub mod verify;

pub use bundle_sig::{sign_manifest, verify_manifest, SigFile, SigFileError, VerifiedSigner};
pub use keys::{KeyError, KeyId, PublicKey, SigningKey};
pub use password::{read_password, PasswordError};
pub use pem::PemError;
pub use sealed::SealError;

/// Largest key file (private or public) we read: an RSA-4096 cosign key is about 5 KiB.
pub const MAX_KEY_FILE_BYTES: usize = 64 * 1024;

/// Errors of key files and signature checks, each naming the file or key involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A key file could not be read.
    #[error("cannot read key file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key file is larger than [`MAX_KEY_FILE_BYTES`].
    #[error("key file `{}` is larger than {max} bytes; it is not a key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        max: usize,
    },
    /// A key file is not UTF-8 text (PEM is ASCII).
    #[error("key file `{}` is not PEM text", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// A private key file could not be opened or parsed (wrong password, SEC1, RSA, …).
    #[error("cannot load private key `{}`", path.display())]
    PrivateKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// A public key file could not be parsed.
    #[error("cannot load public key `{}`", path.display())]
    PublicKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// Refusing to replace a key file.
    #[error("`{}` already exists; pass --force to replace it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A key file could not be written.
    #[error("cannot write key file `{}`", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The signature file is malformed.
    #[error(transparent)]
    SigFile(#[from] SigFileError),
    /// A signature that claims a trusted key does not verify.
    #[error("signature by trusted key {key_id} is invalid: the signed bytes or the signature were altered")]
    BadSignature {
        /// The trusted key named by the signature entry.
        key_id: KeyId,
        /// The verification failure.
        #[source]
        source: KeyError,
    },
    /// Fewer trusted keys signed than required.
    #[error(
        "only {valid} valid signature(s) by trusted keys, {required} required \
         ({trusted} trusted key(s) given)"
    )]
    NotEnoughSignatures {
        /// Distinct trusted keys whose signature verified.
        valid: usize,
        /// How many are required.
        required: usize,
        /// Distinct trusted keys given.
        trusted: usize,
    },
    /// The threshold cannot be met by the trusted keys given (or is zero).
    #[error(
        "cannot require {required} signature(s) with {trusted} distinct trusted key(s): \
         the threshold must be between 1 and the number of trusted keys"
    )]
    InvalidThreshold {
        /// The threshold asked for.
        required: usize,
        /// Distinct trusted keys given.
        trusted: usize,
    },
}
