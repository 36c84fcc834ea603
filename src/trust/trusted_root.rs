//! The Sigstore trust anchors for offline verification: a `trusted_root.json` read from a file.
//!
//! A [`TrustedRoot`] holds the Fulcio certificate authorities, the Rekor (transparency log)
//! keys, the certificate-transparency log keys and the timestamp authorities that keyless
//! signatures and Rekor entries are checked against. It is always given as a file (the
//! `trusted_root.json` of the Sigstore `TrustedRoot` protobuf, as `cosign trusted-root create`
//! or the TUF repository ship it): nothing is fetched, so it works on the isolated side.
//!
//! For trust material that comes as loose PEM files (a Fulcio root and a `rekor.pub`, as cosign
//! and containers/image take them), [`TrustedRoot::from_pems`] builds the same structure.
//!
//! The parsing and the checks are those of the `sigstore-verify` / `sigstore-trust-root`
//! crates. They call cryptography through a provider trait; airlock installs a pure-Rust one
//! (RustCrypto `p256`, `p384`, `rsa`, `ed25519-dalek`, `sha2`) so no C toolchain is needed to build.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use sha2::Digest as _;

/// Largest `trusted_root.json` read (the production one is about 10 KiB).
pub const MAX_TRUSTED_ROOT_BYTES: usize = 1024 * 1024;

/// Why a trusted root could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustedRootError {
    /// The file could not be read.
    #[error("cannot read trusted root `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_TRUSTED_ROOT_BYTES`].
    #[error("trusted root `{}` is larger than {max} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        max: usize,
    },
    /// The JSON is not a valid Sigstore trusted root.
    #[error("invalid trusted root `{origin}`: {detail}")]
    Invalid {
        /// The file, or `<inline>` / `<pem>` for in-memory input.
        origin: String,
        /// What the parser or the checks of the trust material said.
        detail: String,
    },
    /// A PEM given to [`TrustedRoot::from_pems`] is malformed.
    #[error("invalid {what} PEM: {detail}")]
    Pem {
        /// `Fulcio certificate` or `Rekor public key`.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// A parsed and checked `trusted_root.json`, ready to verify signatures against.
#[derive(Clone)]
pub struct TrustedRoot {
    inner: Arc<sigstore_verify::trust_root::TrustedRoot>,
    verifier: Arc<sigstore_verify::Verifier>,
    origin: String,
}

impl std::fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedRoot")
            .field("origin", &self.origin)
            .field("fulcio_cas", &self.inner.certificate_authorities.len())
            .field("tlogs", &self.inner.tlogs.len())
            .field("ctlogs", &self.inner.ctlogs.len())
            .field("tsas", &self.inner.timestamp_authorities.len())
            .finish()
    }
}

impl TrustedRoot {
    /// Reads and checks a `trusted_root.json` file.
    pub fn load(path: &Path) -> Result<Self, TrustedRootError> {
        let bytes = crate::io::read_capped(path, MAX_TRUSTED_ROOT_BYTES as u64, "trusted root")
            .map_err(|e| match e {
                crate::io::ReadError::Io { source, .. } => TrustedRootError::Read {
                    path: path.to_owned(),
                    source,
                },
                _ => TrustedRootError::TooLarge {
                    path: path.to_owned(),
                    max: MAX_TRUSTED_ROOT_BYTES,
                },
            })?;
        let text = String::from_utf8(bytes).map_err(|_| TrustedRootError::Invalid {
            origin: path.display().to_string(),
            detail: "not UTF-8 text".into(),
        })?;
        Self::from_json_named(&text, &path.display().to_string())
    }

    /// Parses and checks a `trusted_root.json` text.
    pub fn from_json(json: &str) -> Result<Self, TrustedRootError> {
        Self::from_json_named(json, "<inline>")
    }

    fn from_json_named(json: &str, origin: &str) -> Result<Self, TrustedRootError> {
        ensure_crypto_provider();
        let invalid = |detail: String| TrustedRootError::Invalid {
            origin: origin.to_owned(),
            detail,
        };
        if json.len() > MAX_TRUSTED_ROOT_BYTES {
            return Err(invalid(format!(
                "larger than {MAX_TRUSTED_ROOT_BYTES} bytes"
            )));
        }
        let inner = sigstore_verify::trust_root::TrustedRoot::from_json(json)
            .map_err(|e| invalid(e.to_string()))?;
        let verifier =
            sigstore_verify::Verifier::new(&inner).map_err(|e| invalid(e.to_string()))?;
        Ok(TrustedRoot {
            inner: Arc::new(inner),
            verifier: Arc::new(verifier),
            origin: origin.to_owned(),
        })
    }

    /// Builds a trusted root from loose PEM files: Fulcio CA certificates (each `chain` is one
    /// authority: root last or alone) and Rekor public keys (`rekor.pub`). No CT log and no
    /// timestamp authority: certificate SCTs are then not checked (see
    /// [`TrustedRoot::has_ct_logs`]). Every authority and key is valid from the Unix epoch on.
    pub fn from_pems(
        fulcio_chains: &[&str],
        rekor_public_keys: &[&str],
    ) -> Result<Self, TrustedRootError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut cas = Vec::new();
        for (i, chain) in fulcio_chains.iter().enumerate() {
            let certs =
                pem_blocks(chain, "CERTIFICATE").map_err(|detail| TrustedRootError::Pem {
                    what: "Fulcio certificate",
                    detail,
                })?;
            let certificates: Vec<_> = certs
                .iter()
                .map(|der| serde_json::json!({ "rawBytes": b64.encode(der) }))
                .collect();
            cas.push(serde_json::json!({
                "subject": { "organization": "airlock", "commonName": format!("fulcio-{i}") },
                "uri": format!("https://fulcio-{i}.invalid"),
                "certChain": { "certificates": certificates },
                "validFor": { "start": "1970-01-01T00:00:00Z" },
            }));
        }
        let mut tlogs = Vec::new();
        for (i, pem) in rekor_public_keys.iter().enumerate() {
            let keys = pem_blocks(pem, "PUBLIC KEY").map_err(|detail| TrustedRootError::Pem {
                what: "Rekor public key",
                detail,
            })?;
            for der in keys {
                let details = if super::PublicKey::from_spki_der(&der).is_ok() {
                    "PKIX_ECDSA_P256_SHA_256"
                } else {
                    "PKIX_ED25519"
                };
                tlogs.push(serde_json::json!({
                    "baseUrl": format!("https://rekor-{i}.invalid"),
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": b64.encode(&der),
                        "keyDetails": details,
                        "validFor": { "start": "1970-01-01T00:00:00Z" },
                    },
                    "logId": { "keyId": b64.encode(sha2::Sha256::digest(&der)) },
                }));
            }
        }
        let json = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": tlogs,
            "certificateAuthorities": cas,
            "ctlogs": [],
            "timestampAuthorities": [],
        });
        Self::from_json_named(&json.to_string(), "<pem>")
    }

    /// Where the root came from (file path, `<inline>` or `<pem>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// True when the root lists certificate-transparency logs, so the SCT embedded in a Fulcio
    /// certificate can be (and is) checked.
    pub fn has_ct_logs(&self) -> bool {
        !self.inner.ctlogs.is_empty()
    }

    /// True when the root lists at least one transparency log (Rekor) key.
    pub fn has_tlogs(&self) -> bool {
        !self.inner.tlogs.is_empty()
    }

    /// The underlying parsed root.
    pub fn sigstore(&self) -> &sigstore_verify::trust_root::TrustedRoot {
        &self.inner
    }

    /// The verifier prepared from this root.
    pub(crate) fn verifier(&self) -> &sigstore_verify::Verifier {
        &self.verifier
    }
}

/// Every PEM block labelled `label` in `text`, decoded; other labels are an error.
fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let body = rest
            .strip_prefix(begin.as_str())
            .ok_or_else(|| format!("expected `{begin}`"))?;
        let stop = body
            .find(end.as_str())
            .ok_or_else(|| format!("no `{end}` line"))?;
        let b64: String = body[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| format!("`{label}` block is not valid base64"))?;
        out.push(der);
        rest = body[stop + end.len()..].trim_start();
    }
    if out.is_empty() {
        return Err(format!("no `{begin}` block"));
    }
    Ok(out)
}

/// Decodes every `CERTIFICATE` block of a PEM text (a certificate or a chain).
pub(crate) fn certificate_ders(text: &str) -> Result<Vec<Vec<u8>>, String> {
    pem_blocks(text, "CERTIFICATE")
}

/// Installs airlock's pure-Rust cryptography provider for the sigstore crates, once per process.
/// If another provider was installed first, that one stays.
pub(crate) fn ensure_crypto_provider() {
    static PROVIDER: provider::RustCryptoProvider = provider::RustCryptoProvider;
    let _ = sigstore_verify::crypto::install_default_provider(&PROVIDER);
}

mod provider {
    //! A verification-only `sigstore-crypto` provider on RustCrypto: ECDSA P-256 / P-384
    //! (ASN.1 DER signatures), Ed25519, RSA PKCS#1 v1.5 and PSS (2048 to 8192 bits), SHA-256/384/512.
    //! ML-DSA is refused as an unsupported algorithm.

    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    use sha2::Digest as _;
    use sigstore_verify::crypto::{CryptoProvider, Error, HashContext, SigningScheme};
    use sigstore_verify::types::HashAlgorithm;

    #[derive(Debug)]
    pub(super) struct RustCryptoProvider;

    struct Hash<D>(D);

    impl<D: sha2::Digest + Send + 'static> HashContext for Hash<D> {
        fn update(&mut self, data: &[u8]) {
            sha2::Digest::update(&mut self.0, data);
        }

        fn finalize(self: Box<Self>) -> Vec<u8> {
            self.0.finalize().to_vec()
        }
    }

    fn digest(algorithm: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(match algorithm {
            HashAlgorithm::Sha2256 => sha2::Sha256::digest(data).to_vec(),
            HashAlgorithm::Sha2384 => sha2::Sha384::digest(data).to_vec(),
            HashAlgorithm::Sha2512 => sha2::Sha512::digest(data).to_vec(),
            other => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "hash algorithm {other:?}"
                )))
            }
        })
    }

    fn invalid(scheme: SigningScheme) -> Error {
        Error::Verification(format!("{} signature invalid", scheme.name()))
    }

    fn unsupported(scheme: SigningScheme) -> Error {
        Error::UnsupportedAlgorithm(format!(
            "{} is not supported by airlock's verifier (ECDSA P-256/P-384, RSA, Ed25519 only)",
            scheme.name()
        ))
    }

    fn verify_ecdsa_prehash(
        scheme: SigningScheme,
        key: &[u8],
        prehash: &[u8],
        signature: &[u8],
    ) -> Result<(), Error> {
        match scheme {
            SigningScheme::EcdsaP256Sha256 | SigningScheme::EcdsaP256Sha384 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                    .map_err(|e| Error::InvalidKey(e.to_string()))?;
                let sig =
                    p256::ecdsa::Signature::from_der(signature).map_err(|_| invalid(scheme))?;
                key.verify_prehash(prehash, &sig)
                    .map_err(|_| invalid(scheme))
            }
            SigningScheme::EcdsaP384Sha256 | SigningScheme::EcdsaP384Sha384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key)
                    .map_err(|e| Error::InvalidKey(e.to_string()))?;
                let sig =
                    p384::ecdsa::Signature::from_der(signature).map_err(|_| invalid(scheme))?;
                key.verify_prehash(prehash, &sig)
                    .map_err(|_| invalid(scheme))
            }
            SigningScheme::RsaPkcs1Sha256
            | SigningScheme::RsaPkcs1Sha384
            | SigningScheme::RsaPkcs1Sha512
            | SigningScheme::RsaPssSha256
            | SigningScheme::RsaPssSha384
            | SigningScheme::RsaPssSha512 => verify_rsa_prehash(scheme, key, prehash, signature),
            _ => Err(unsupported(scheme)),
        }
    }

    fn verify_rsa_prehash(
        scheme: SigningScheme,
        key: &[u8],
        prehash: &[u8],
        signature: &[u8],
    ) -> Result<(), Error> {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        let key =
            rsa::RsaPublicKey::from_pkcs1_der(key).map_err(|e| Error::InvalidKey(e.to_string()))?;
        if !(2048..=8192).contains(&rsa::traits::PublicKeyParts::size(&key).saturating_mul(8)) {
            return Err(Error::InvalidKey(
                "RSA key size outside 2048..8192 bits".into(),
            ));
        }
        let result = match scheme {
            SigningScheme::RsaPkcs1Sha256 => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), prehash, signature)
            }
            SigningScheme::RsaPkcs1Sha384 => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), prehash, signature)
            }
            SigningScheme::RsaPkcs1Sha512 => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), prehash, signature)
            }
            SigningScheme::RsaPssSha256 => {
                key.verify(rsa::Pss::new::<sha2::Sha256>(), prehash, signature)
            }
            SigningScheme::RsaPssSha384 => {
                key.verify(rsa::Pss::new::<sha2::Sha384>(), prehash, signature)
            }
            SigningScheme::RsaPssSha512 => {
                key.verify(rsa::Pss::new::<sha2::Sha512>(), prehash, signature)
            }
            _ => return Err(unsupported(scheme)),
        };
        result.map_err(|_| invalid(scheme))
    }

    impl CryptoProvider for RustCryptoProvider {
        fn hash(&self, algorithm: HashAlgorithm) -> Result<Box<dyn HashContext>, Error> {
            Ok(match algorithm {
                HashAlgorithm::Sha2256 => Box::new(Hash(sha2::Sha256::new())),
                HashAlgorithm::Sha2384 => Box::new(Hash(sha2::Sha384::new())),
                HashAlgorithm::Sha2512 => Box::new(Hash(sha2::Sha512::new())),
                other => {
                    return Err(Error::UnsupportedAlgorithm(format!(
                        "hash algorithm {other:?}"
                    )))
                }
            })
        }

        fn verify_raw(
            &self,
            scheme: SigningScheme,
            spki_pubkey_bytes: &[u8],
            data: &[u8],
            signature: &[u8],
        ) -> Result<(), Error> {
            if scheme == SigningScheme::Ed25519 {
                let key: [u8; 32] = spki_pubkey_bytes
                    .try_into()
                    .map_err(|_| Error::InvalidKey("Ed25519 key is not 32 bytes".into()))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
                    .map_err(|e| Error::InvalidKey(e.to_string()))?;
                let sig =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| invalid(scheme))?;
                return key.verify_strict(data, &sig).map_err(|_| invalid(scheme));
            }
            let Some(algorithm) = scheme.hash_algorithm() else {
                return Err(unsupported(scheme));
            };
            verify_ecdsa_prehash(
                scheme,
                spki_pubkey_bytes,
                &digest(algorithm, data)?,
                signature,
            )
        }

        fn verify_prehashed(
            &self,
            scheme: SigningScheme,
            spki_pubkey_bytes: &[u8],
            digest: &[u8],
            signature: &[u8],
        ) -> Result<(), Error> {
            verify_ecdsa_prehash(scheme, spki_pubkey_bytes, digest, signature)
        }
    }
}
