//! ECDSA P-256 signing keys in cosign's formats.
//!
//! - Private keys are PKCS#8 DER sealed in cosign's encrypted envelope ([`super::sealed`]), PEM
//!   label `ENCRYPTED SIGSTORE PRIVATE KEY`: the files `cosign generate-key-pair` writes, so either
//!   tool reads the other's keys. A SEC1 (`EC PRIVATE KEY`) plaintext is refused, as cosign refuses
//!   it, so that a key that works here also works there.
//! - Public keys are PKIX `SubjectPublicKeyInfo` in PEM (`PUBLIC KEY`), what `cosign.pub` holds.
//! - Signatures are ECDSA P-256 over SHA-256 of the message, ASN.1 DER encoded: what
//!   `cosign sign-blob` and `openssl dgst -sha256 -sign` produce.
//!
//! # Key id
//!
//! A key is named by its [`KeyId`]: the lower-case hex SHA-256 of the DER `SubjectPublicKeyInfo`
//! in its canonical encoding (uncompressed point, named curve), which is what Go's
//! `x509.MarshalPKIXPublicKey` and so cosign write. It is the same convention Rekor uses for log
//! ids and the Sigstore trusted root uses for managed keys, so the id can be recomputed from a
//! `.pub` file with `openssl pkey -pubin -outform DER | sha256sum`.
//!
//! RSA and Ed25519 keys in the same envelope are recognised and refused with
//! [`KeyError::UnsupportedKeyType`] naming the type: bundle signatures are ECDSA P-256 only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::der::Decode as _;
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    ObjectIdentifier, PrivateKeyInfo, SubjectPublicKeyInfoRef,
};
use sha2::{Digest as _, Sha256};

use super::sealed::{self, SealError};
use super::TrustError;

/// PEM label of public key files (PKIX `SubjectPublicKeyInfo`).
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Why key material or a signature was refused. Path-free: [`TrustError`] adds the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The encrypted envelope could not be opened (wrong password, malformed file, …).
    #[error(transparent)]
    Sealed(#[from] SealError),
    /// The decrypted key is SEC1 `EC PRIVATE KEY` DER instead of PKCS#8.
    #[error(
        "the decrypted key is SEC1 (`EC PRIVATE KEY`) DER, not PKCS#8; cosign refuses such keys \
         too (\"use ParseECPrivateKey instead for this key format\"): make a new key pair"
    )]
    Sec1NotPkcs8,
    /// The decrypted key is not PKCS#8 DER at all.
    #[error("the decrypted key is not a PKCS#8 private key")]
    NotPkcs8,
    /// The key parses but is not ECDSA P-256.
    #[error(
        "unsupported key type {key_type}: airlock signs and verifies with ECDSA P-256 keys only"
    )]
    UnsupportedKeyType {
        /// What the key is, e.g. `RSA`, `Ed25519`, `ECDSA P-384`.
        key_type: String,
    },
    /// The PKCS#8 structure names P-256 but its contents are invalid.
    #[error("invalid ECDSA P-256 private key")]
    InvalidPrivateKey,
    /// The public key PEM is malformed.
    #[error(transparent)]
    Pem(#[from] super::PemError),
    /// The public key is not a valid `SubjectPublicKeyInfo` or not a valid P-256 point.
    #[error("invalid public key: {detail}")]
    InvalidPublicKey {
        /// What the parser said.
        detail: String,
    },
    /// The signature is neither DER nor base64 text of DER.
    #[error("the signature is not an ASN.1 DER ECDSA signature (raw or base64)")]
    SignatureEncoding,
    /// The signature is well formed but does not verify with this key over these bytes.
    #[error("the signature does not verify with key {key_id}")]
    BadSignature {
        /// The key that was tried.
        key_id: KeyId,
    },
    /// Encoding a key failed (not expected for valid keys).
    #[error("cannot encode the key")]
    Encode,
}

/// The name of a public key: lower-case hex SHA-256 of its canonical DER `SubjectPublicKeyInfo`
/// (see the module docs). Parsing checks it is 64 lower-case hex digits, so a key id from a
/// signature file can be compared byte for byte.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The key id of a DER `SubjectPublicKeyInfo`, hashed as given.
    pub fn of_spki_der(der: &[u8]) -> KeyId {
        KeyId(hex::encode(Sha256::digest(der)))
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// Why a string is not a [`KeyId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid key id `{input}`: expected 64 lower-case hex digits (sha256 of the public key)")]
pub struct KeyIdError {
    /// The string given (cut to 80 characters).
    pub input: String,
}

impl FromStr for KeyId {
    type Err = KeyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(KeyId(s.to_owned()))
        } else {
            Err(KeyIdError {
                input: s.chars().take(80).collect(),
            })
        }
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ECDSA P-256 public key that signatures are checked against.
#[derive(Clone)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
    spki_der: Vec<u8>,
    key_id: KeyId,
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (PKIX) block, the content of a `cosign.pub`.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = super::pem::decode(text, &[PUBLIC_KEY_LABEL])?;
        Self::from_spki_der(&block.der)
    }

    /// Parses a DER `SubjectPublicKeyInfo`. Non-P-256 keys are [`KeyError::UnsupportedKeyType`].
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki =
            SubjectPublicKeyInfoRef::from_der(der).map_err(|e| KeyError::InvalidPublicKey {
                detail: e.to_string(),
            })?;
        check_algorithm(spki.algorithm.oid, spki.algorithm.parameters_oid().ok())?;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| {
            KeyError::InvalidPublicKey {
                detail: e.to_string(),
            }
        })?;
        Self::from_verifying_key(key)
    }

    /// Reads and parses a public key file, naming it in any error.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let text = read_key_file(path)?;
        Self::from_pem(&text).map_err(|source| TrustError::PublicKey {
            path: path.to_owned(),
            source,
        })
    }

    fn from_verifying_key(key: p256::ecdsa::VerifyingKey) -> Result<Self, KeyError> {
        // Re-encode so the key id does not depend on how a file happened to encode the point.
        let spki_der = key
            .to_public_key_der()
            .map_err(|_| KeyError::Encode)?
            .into_vec();
        let key_id = KeyId::of_spki_der(&spki_der);
        Ok(PublicKey {
            key,
            spki_der,
            key_id,
        })
    }

    /// The key id (hex SHA-256 of [`Self::spki_der`]).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The canonical DER `SubjectPublicKeyInfo`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The PEM text of a `.pub` file: `PUBLIC KEY`, 64-column base64, trailing newline.
    pub fn to_pem(&self) -> String {
        super::pem::encode(PUBLIC_KEY_LABEL, &self.spki_der)
    }

    /// Checks an ECDSA-P256-SHA256 `signature` over `message`. The signature may be raw DER or
    /// the base64 text of DER (what `cosign sign-blob` prints), surrounding whitespace allowed.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let sig = decode_signature(signature)?;
        self.key
            .verify(message, &sig)
            .map_err(|_| KeyError::BadSignature {
                key_id: self.key_id.clone(),
            })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl Eq for PublicKey {}

/// An ECDSA P-256 private key. `Debug` shows the key id only; the scalar is wiped on drop.
#[derive(Clone)]
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        Self::from_signing_key(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng))
    }

    fn from_signing_key(key: p256::ecdsa::SigningKey) -> Result<Self, KeyError> {
        let public = PublicKey::from_verifying_key(*key.verifying_key())?;
        Ok(SigningKey { key, public })
    }

    /// Parses a PKCS#8 DER private key (the plaintext of a cosign envelope).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = match PrivateKeyInfo::from_der(der) {
            Ok(info) => info,
            Err(_) if p256::SecretKey::from_sec1_der(der).is_ok() => {
                return Err(KeyError::Sec1NotPkcs8)
            }
            Err(_) => return Err(KeyError::NotPkcs8),
        };
        check_algorithm(info.algorithm.oid, info.algorithm.parameters_oid().ok())?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(der)
            .map_err(|_| KeyError::InvalidPrivateKey)?;
        Self::from_signing_key(key)
    }

    /// Decrypts and parses a cosign encrypted private key (`ENCRYPTED SIGSTORE PRIVATE KEY` or
    /// `ENCRYPTED COSIGN PRIVATE KEY`).
    pub fn from_encrypted_pem(text: &str, password: &[u8]) -> Result<Self, KeyError> {
        let opened = sealed::open_with_labels(
            text,
            password,
            &[sealed::LABEL_SIGSTORE, sealed::LABEL_COSIGN],
        )?;
        Self::from_pkcs8_der(&opened.plaintext)
    }

    /// Reads, decrypts and parses a private key file, naming it in any error.
    pub fn load(path: &Path, password: &[u8]) -> Result<Self, TrustError> {
        let text = read_key_file(path)?;
        Self::from_encrypted_pem(&text, password).map_err(|source| TrustError::PrivateKey {
            path: path.to_owned(),
            source,
        })
    }

    /// The key as cosign stores it: PKCS#8 DER sealed under `password`, PEM label
    /// `ENCRYPTED SIGSTORE PRIVATE KEY`.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String, KeyError> {
        self.to_encrypted_pem_with(password, sealed::ScryptParams::COSIGN)
    }

    /// [`Self::to_encrypted_pem`] with explicit scrypt parameters (cheap keys for tests).
    pub fn to_encrypted_pem_with(
        &self,
        password: &[u8],
        params: sealed::ScryptParams,
    ) -> Result<String, KeyError> {
        let der = self.key.to_pkcs8_der().map_err(|_| KeyError::Encode)?;
        Ok(sealed::seal_with_params(
            der.as_bytes(),
            password,
            sealed::LABEL_SIGSTORE,
            params,
        )?)
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> &KeyId {
        self.public.key_id()
    }

    /// Signs `message`: ECDSA P-256 over SHA-256, deterministic nonce (RFC 6979), DER encoded.
    /// Deterministic signatures keep bundles byte-reproducible.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.key.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", self.key_id())
            .finish_non_exhaustive()
    }
}

/// Where a key pair named `out` lives: `out.key` and `out.pub`. A trailing `.key` or `.pub` on
/// `out` is dropped, so `--out keys/release.key` does not make `release.key.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairPaths {
    /// The encrypted private key file (`NAME.key`).
    pub private_key: PathBuf,
    /// The public key file (`NAME.pub`).
    pub public_key: PathBuf,
}

impl KeyPairPaths {
    /// The two paths for the key pair named `out`.
    pub fn new(out: &Path) -> Self {
        let base = match out.extension().and_then(|e| e.to_str()) {
            Some("key" | "pub") => out.with_extension(""),
            _ => out.to_owned(),
        };
        let mut private_key = base.clone().into_os_string();
        private_key.push(".key");
        let mut public_key = base.into_os_string();
        public_key.push(".pub");
        KeyPairPaths {
            private_key: private_key.into(),
            public_key: public_key.into(),
        }
    }

    /// Fails with [`TrustError::Exists`] if either file exists and `force` is not set. Call it
    /// before asking for a password so the user is not prompted for nothing.
    pub fn check_free(&self, force: bool) -> Result<(), TrustError> {
        if force {
            return Ok(());
        }
        for path in [&self.private_key, &self.public_key] {
            match fs_err::symlink_metadata(path) {
                Ok(_) => return Err(TrustError::Exists { path: path.clone() }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TrustError::Write {
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// Writes `key` as `paths.private_key` (sealed under `password`, mode 0600) and
/// `paths.public_key` (PEM, mode 0644).
///
/// Both files are written to temporary files in the target directory, synced, and renamed into
/// place; if anything fails, no new file is left behind (with `force`, a replaced private key is
/// gone either way). Without `force`, existing files are never replaced: the final renames refuse
/// to clobber, so a file created meanwhile is safe too.
/// The parent directory is created if missing.
pub fn write_key_pair(
    key: &SigningKey,
    password: &[u8],
    paths: &KeyPairPaths,
    force: bool,
) -> Result<(), TrustError> {
    write_key_pair_with(key, password, paths, force, sealed::ScryptParams::COSIGN)
}

/// [`write_key_pair`] with explicit scrypt parameters (cheap keys for tests).
pub fn write_key_pair_with(
    key: &SigningKey,
    password: &[u8],
    paths: &KeyPairPaths,
    force: bool,
    params: sealed::ScryptParams,
) -> Result<(), TrustError> {
    paths.check_free(force)?;
    let private_pem = key
        .to_encrypted_pem_with(password, params)
        .map_err(|source| TrustError::PrivateKey {
            path: paths.private_key.clone(),
            source,
        })?;
    let public_pem = key.public_key().to_pem();

    let private_tmp = staged(&paths.private_key, private_pem.as_bytes(), 0o600)?;
    let public_tmp = staged(&paths.public_key, public_pem.as_bytes(), 0o644)?;

    place(private_tmp, &paths.private_key, force)?;
    if let Err(err) = place(public_tmp, &paths.public_key, force) {
        // Keep the promise of no half-written pair: the private key we just placed goes too.
        let _ = fs_err::remove_file(&paths.private_key);
        return Err(err);
    }
    if let Some(dir) = parent_dir(&paths.private_key) {
        // Make the renames durable; a failure here does not undo a complete pair.
        if let Ok(d) = fs_err::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// What [`generate_key_pair`] made.
#[derive(Debug)]
pub struct GeneratedKeyPair {
    /// Where the files are.
    pub paths: KeyPairPaths,
    /// The new key (its public half and id are what callers report).
    pub key: SigningKey,
}

/// Makes a new P-256 key and writes it as a cosign-compatible pair named `out` (see
/// [`KeyPairPaths::new`] and [`write_key_pair`]).
pub fn generate_key_pair(
    out: &Path,
    password: &[u8],
    force: bool,
) -> Result<GeneratedKeyPair, TrustError> {
    let paths = KeyPairPaths::new(out);
    paths.check_free(force)?;
    let key = SigningKey::generate().map_err(|source| TrustError::PrivateKey {
        path: paths.private_key.clone(),
        source,
    })?;
    write_key_pair(&key, password, &paths, force)?;
    Ok(GeneratedKeyPair { paths, key })
}

fn parent_dir(path: &Path) -> Option<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        other => other,
    }
}

fn staged(
    target: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<tempfile::NamedTempFile, TrustError> {
    use std::io::Write as _;
    let write_err = |source| TrustError::Write {
        path: target.to_owned(),
        source,
    };
    let dir = parent_dir(target).unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(write_err)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".airlock-key-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir).map_err(write_err)?;
    tmp.write_all(contents).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    Ok(tmp)
}

fn place(tmp: tempfile::NamedTempFile, target: &Path, force: bool) -> Result<(), TrustError> {
    let result = if force {
        tmp.persist(target)
    } else {
        tmp.persist_noclobber(target)
    };
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Err(TrustError::Exists {
            path: target.to_owned(),
        }),
        Err(e) => Err(TrustError::Write {
            path: target.to_owned(),
            source: e.error,
        }),
    }
}

/// Reads a key file with a size cap, naming the path in errors.
fn read_key_file(path: &Path) -> Result<String, TrustError> {
    let max = super::MAX_KEY_FILE_BYTES;
    let bytes = zeroize::Zeroizing::new(
        crate::io::read_capped(path, max as u64, "key file").map_err(|e| match e {
            crate::io::ReadError::Io { source, .. } => TrustError::Read {
                path: path.to_owned(),
                source,
            },
            _ => TrustError::TooLarge {
                path: path.to_owned(),
                max,
            },
        })?,
    );
    String::from_utf8(bytes.to_vec()).map_err(|_| TrustError::NotText {
        path: path.to_owned(),
    })
}

fn check_algorithm(
    oid: ObjectIdentifier,
    params: Option<ObjectIdentifier>,
) -> Result<(), KeyError> {
    let key_type = match (oid, params) {
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => return Ok(()),
        (OID_EC_PUBLIC_KEY, Some(OID_P384)) => "ECDSA P-384".to_owned(),
        (OID_EC_PUBLIC_KEY, Some(OID_P521)) => "ECDSA P-521".to_owned(),
        (OID_EC_PUBLIC_KEY, Some(curve)) => format!("ECDSA on curve {curve}"),
        (OID_EC_PUBLIC_KEY, None) => "ECDSA without a named curve".to_owned(),
        (OID_RSA, _) => "RSA".to_owned(),
        (OID_ED25519, _) => "Ed25519".to_owned(),
        (other, _) => format!("with algorithm {other}"),
    };
    Err(KeyError::UnsupportedKeyType { key_type })
}

fn decode_signature(signature: &[u8]) -> Result<p256::ecdsa::Signature, KeyError> {
    if let Ok(sig) = p256::ecdsa::Signature::from_der(signature) {
        return Ok(sig);
    }
    let text = std::str::from_utf8(signature).map_err(|_| KeyError::SignatureEncoding)?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| KeyError::SignatureEncoding)?;
    p256::ecdsa::Signature::from_der(&der).map_err(|_| KeyError::SignatureEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_parses_strictly() {
        let good = "a".repeat(64);
        assert!(good.parse::<KeyId>().is_ok());
        for bad in [
            "",
            "A".repeat(64).as_str(),
            &"a".repeat(63),
            &"g".repeat(64),
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_drop_key_or_pub_extension() {
        let p = KeyPairPaths::new(Path::new("keys/release.key"));
        assert_eq!(p.private_key, Path::new("keys/release.key"));
        assert_eq!(p.public_key, Path::new("keys/release.pub"));
        let p = KeyPairPaths::new(Path::new("keys/v1.2"));
        assert_eq!(p.private_key, Path::new("keys/v1.2.key"));
    }

    #[test]
    fn sign_is_deterministic_and_verifies_both_encodings() {
        let key = SigningKey::generate().expect("key");
        let sig = key.sign(b"hello");
        assert_eq!(sig, key.sign(b"hello"));
        key.public_key().verify(b"hello", &sig).expect("der");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&sig) + "\n";
        key.public_key()
            .verify(b"hello", b64.as_bytes())
            .expect("b64");
        assert!(matches!(
            key.public_key().verify(b"hellO", &sig),
            Err(KeyError::BadSignature { .. })
        ));
        assert!(matches!(
            key.public_key().verify(b"hello", b"garbage!"),
            Err(KeyError::SignatureEncoding)
        ));
    }
}
