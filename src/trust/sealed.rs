//! cosign's encrypted private key envelope ("sealed" keys).
//!
//! `cosign generate-key-pair` writes the private key as a PEM block whose body is a JSON document:
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<b64, 32 bytes>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<b64, 24 bytes>"},
//!  "ciphertext":"<b64>"}
//! ```
//!
//! The 32-byte secretbox key is `scrypt(password, salt, N, r, p)`; the ciphertext is NaCl
//! `secretbox` (XSalsa20-Poly1305, the 16-byte Poly1305 tag first). The layout comes from go-tuf's
//! `encrypted` package, which sigstore's `cryptoutils` and so cosign use. Speaking this format means
//! keys made by cosign load in airlock and keys made by airlock load in cosign.
//!
//! The file is attacker-reachable input (a key file handed over with a bundle, a tampered
//! checkout), and its scrypt parameters are *not* covered by the MAC, so they are capped before any
//! work is done: a file asking for `N = 2^40` gets [`SealError::KdfParams`], not a hung or
//! OOM-killed process.

use base64::Engine as _;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::XSalsa20Poly1305;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::pem::{self, PemError};

/// PEM label cosign ≥ 1.x writes (and airlock writes) for encrypted ECDSA keys.
pub const LABEL_SIGSTORE: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of older cosign keys and of keys written by sigstore-rs; same envelope.
pub const LABEL_COSIGN: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// PEM label airlock uses for the ledger's Ed25519 signing key, so a ledger key cannot be mistaken
/// for a cosign key by eye (the envelope is the same).
pub const LABEL_AIRLOCK_LEDGER: &str = "ENCRYPTED AIRLOCK LEDGER PRIVATE KEY";
/// Every label [`open`] accepts.
pub const ACCEPTED_LABELS: &[&str] = &[LABEL_SIGSTORE, LABEL_COSIGN, LABEL_AIRLOCK_LEDGER];

/// Largest scrypt memory (`128 · N · r` bytes) a key file may ask for: 256 MiB, four times what
/// cosign's own default (N = 2^16, r = 8 → 64 MiB) needs.
pub const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// Largest scrypt work (`128 · N · r · p`, bytes mixed) a key file may ask for: 8× cosign's
/// default, a few seconds at most.
pub const MAX_SCRYPT_WORK: u64 = 512 * 1024 * 1024;

const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why an envelope could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The PEM wrapper is malformed or has a label we do not accept.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The PEM body is not the cosign JSON envelope.
    #[error("the PEM body is not a cosign encrypted-key JSON envelope")]
    Json(#[source] serde_json::Error),
    /// The envelope names a key-derivation function other than scrypt.
    #[error("unsupported key derivation function `{name}` (only `scrypt` is supported)")]
    UnsupportedKdf {
        /// The `kdf.name` found.
        name: String,
    },
    /// The envelope names a cipher other than NaCl secretbox.
    #[error("unsupported cipher `{name}` (only `nacl/secretbox` is supported)")]
    UnsupportedCipher {
        /// The `cipher.name` found.
        name: String,
    },
    /// The scrypt parameters are invalid or beyond what we are willing to compute.
    #[error("refusing scrypt parameters N={n}, r={r}, p={p}: {reason}")]
    KdfParams {
        /// `N` as found.
        n: u64,
        /// `r` as found.
        r: u64,
        /// `p` as found.
        p: u64,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A base64 field of the envelope does not decode.
    #[error("field `{field}` of the key envelope is not valid base64")]
    Base64 {
        /// JSON path of the field, e.g. `kdf.salt`.
        field: &'static str,
    },
    /// A decoded field has the wrong length.
    #[error("field `{field}` of the key envelope is {len} bytes, expected {expected}")]
    FieldLength {
        /// JSON path of the field.
        field: &'static str,
        /// Length found.
        len: usize,
        /// Length required, in words.
        expected: &'static str,
    },
    /// The secretbox MAC did not verify: the password is wrong (or the ciphertext was altered).
    #[error("wrong password (the key's authentication check failed; or the key file is corrupt)")]
    WrongPassword,
    /// A label passed to [`seal`] cannot appear in a PEM BEGIN line.
    #[error("invalid PEM label `{label}`: use upper-case letters, digits and single spaces")]
    InvalidLabel {
        /// The label given.
        label: String,
    },
    /// The cipher refused to encrypt (not expected for in-memory buffers).
    #[error("encryption failed")]
    Encrypt,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Rng(#[source] rand::Error),
}

/// scrypt cost parameters of an envelope. `N = 2^log_n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    /// log₂ of the CPU/memory cost `N`.
    pub log_n: u8,
    /// Block size `r`.
    pub r: u32,
    /// Parallelism `p`.
    pub p: u32,
}

impl ScryptParams {
    /// What current cosign writes (go-tuf's "standard" parameters, N = 2^16, r = 8, p = 1), so a
    /// key we seal costs an attacker as much to brute-force as one cosign seals.
    pub const COSIGN: ScryptParams = ScryptParams {
        log_n: 16,
        r: 8,
        p: 1,
    };

    /// Checks raw parameters from a file against scrypt's rules and our caps.
    fn from_file(n: u64, r: u64, p: u64) -> Result<Self, SealError> {
        let refuse = |reason| SealError::KdfParams { n, r, p, reason };
        if n < 2 || !n.is_power_of_two() {
            return Err(refuse("N must be a power of two and at least 2"));
        }
        if r == 0 || p == 0 {
            return Err(refuse("r and p must be at least 1"));
        }
        let memory = 128u64
            .checked_mul(n)
            .and_then(|m| m.checked_mul(r))
            .ok_or_else(|| refuse("memory cost overflows"))?;
        if memory > MAX_SCRYPT_MEMORY {
            return Err(refuse("needs more than 256 MiB of memory"));
        }
        let work = memory
            .checked_mul(p)
            .ok_or_else(|| refuse("work cost overflows"))?;
        if work > MAX_SCRYPT_WORK {
            return Err(refuse("needs more than 8x the work of cosign's defaults"));
        }
        // The caps above bound r and p far below u32::MAX and N below 2^22.
        let (Ok(r32), Ok(p32)) = (u32::try_from(r), u32::try_from(p)) else {
            return Err(refuse("r or p out of range"));
        };
        Ok(ScryptParams {
            log_n: n.trailing_zeros() as u8,
            r: r32,
            p: p32,
        })
    }

    /// `N` itself.
    pub fn n(&self) -> u64 {
        1u64 << self.log_n
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        let refuse = |reason| SealError::KdfParams {
            n: self.n(),
            r: u64::from(self.r),
            p: u64::from(self.p),
            reason,
        };
        let params = scrypt::Params::new(self.log_n, self.r, self.p, 32)
            .map_err(|_| refuse("rejected by scrypt"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        scrypt::scrypt(password, salt, &params, key.as_mut_slice())
            .map_err(|_| refuse("rejected by scrypt"))?;
        Ok(key)
    }
}

/// What [`open_with_labels`] returns: the plaintext and what the envelope said about itself.
pub struct Opened {
    /// The PEM label the file carried.
    pub label: String,
    /// The decrypted key material (PKCS#8 DER for cosign keys). Wiped on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The scrypt parameters the file used.
    pub params: ScryptParams,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("label", &self.label)
            .field("plaintext", &"<redacted>")
            .field("params", &self.params)
            .finish()
    }
}

/// The JSON envelope, field order as go-tuf writes it.
#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Encrypts `plaintext` under `password` with cosign's default scrypt cost and wraps it in a PEM
/// block labelled `pem_label` (use [`LABEL_SIGSTORE`] for cosign-compatible ECDSA keys).
pub fn seal(plaintext: &[u8], password: &[u8], pem_label: &str) -> Result<String, SealError> {
    seal_with_params(plaintext, password, pem_label, ScryptParams::COSIGN)
}

/// [`seal`] with explicit scrypt parameters. Meant for tests that need cheap keys; the parameters
/// are checked against the same caps [`open`] applies, so whatever this writes can be read back.
pub fn seal_with_params(
    plaintext: &[u8],
    password: &[u8],
    pem_label: &str,
    params: ScryptParams,
) -> Result<String, SealError> {
    let label_ok = !pem_label.is_empty()
        && !pem_label.starts_with(' ')
        && !pem_label.ends_with(' ')
        && !pem_label.contains("  ")
        && pem_label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ');
    if !label_ok {
        return Err(SealError::InvalidLabel {
            label: pem_label.to_owned(),
        });
    }
    let params = ScryptParams::from_file(
        1u64.checked_shl(u32::from(params.log_n)).unwrap_or(0),
        u64::from(params.r),
        u64::from(params.p),
    )?;

    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .map_err(SealError::Rng)?;
    rand::rngs::OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(SealError::Rng)?;

    let key = params.derive(password, &salt)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    // Encryption without associated data does not fail for in-memory buffers; map it anyway.
    let ciphertext = cipher
        .encrypt(nonce.as_ref().into(), plaintext)
        .map_err(|_| SealError::Encrypt)?;

    let b64 = base64::engine::general_purpose::STANDARD;
    let envelope = Envelope {
        kdf: Kdf {
            name: KDF_NAME.to_owned(),
            params: KdfParams {
                n: params.n(),
                r: u64::from(params.r),
                p: u64::from(params.p),
            },
            salt: b64.encode(salt),
        },
        cipher: Cipher {
            name: CIPHER_NAME.to_owned(),
            nonce: b64.encode(nonce),
        },
        ciphertext: b64.encode(&ciphertext),
    };
    let json = serde_json::to_vec(&envelope).map_err(SealError::Json)?;
    Ok(pem::encode(pem_label, &json))
}

/// Decrypts a cosign encrypted private key with any of the [`ACCEPTED_LABELS`].
///
/// A wrong password is [`SealError::WrongPassword`]; everything else names what is malformed.
pub fn open(pem: &str, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    open_with_labels(pem, password, ACCEPTED_LABELS).map(|o| o.plaintext)
}

/// Decrypts an envelope whose PEM label is one of `accepted`, returning the label and parameters
/// too (the ledger accepts only [`LABEL_AIRLOCK_LEDGER`]; key loading reports what it found).
pub fn open_with_labels(
    pem: &str,
    password: &[u8],
    accepted: &[&str],
) -> Result<Opened, SealError> {
    let block = pem::decode(pem, accepted)?;
    let envelope: Envelope = serde_json::from_slice(&block.der).map_err(SealError::Json)?;
    if envelope.kdf.name != KDF_NAME {
        return Err(SealError::UnsupportedKdf {
            name: envelope.kdf.name,
        });
    }
    if envelope.cipher.name != CIPHER_NAME {
        return Err(SealError::UnsupportedCipher {
            name: envelope.cipher.name,
        });
    }
    let params = ScryptParams::from_file(
        envelope.kdf.params.n,
        envelope.kdf.params.r,
        envelope.kdf.params.p,
    )?;
    let salt = decode_field("kdf.salt", &envelope.kdf.salt)?;
    if salt.is_empty() || salt.len() > 64 {
        return Err(SealError::FieldLength {
            field: "kdf.salt",
            len: salt.len(),
            expected: "1 to 64 bytes",
        });
    }
    let nonce = decode_field("cipher.nonce", &envelope.cipher.nonce)?;
    if nonce.len() != NONCE_LEN {
        return Err(SealError::FieldLength {
            field: "cipher.nonce",
            len: nonce.len(),
            expected: "24 bytes",
        });
    }
    let ciphertext = decode_field("ciphertext", &envelope.ciphertext)?;
    if ciphertext.len() < TAG_LEN {
        return Err(SealError::FieldLength {
            field: "ciphertext",
            len: ciphertext.len(),
            expected: "at least the 16-byte authentication tag",
        });
    }

    let key = params.derive(password, &salt)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let plaintext = cipher
        .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| SealError::WrongPassword)?;
    Ok(Opened {
        label: block.label,
        plaintext,
        params,
    })
}

fn decode_field(field: &'static str, value: &str) -> Result<Vec<u8>, SealError> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| SealError::Base64 { field })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so unit tests do not spend seconds in scrypt.
    const FAST: ScryptParams = ScryptParams {
        log_n: 4,
        r: 8,
        p: 1,
    };

    fn envelope_pem(json: &str) -> String {
        pem::encode(LABEL_SIGSTORE, json.as_bytes())
    }

    #[test]
    fn can_round_trip() {
        let pem = seal_with_params(b"secret", b"pw", LABEL_SIGSTORE, FAST).expect("seal");
        let opened = open_with_labels(&pem, b"pw", ACCEPTED_LABELS).expect("open");
        assert_eq!(opened.plaintext.as_slice(), b"secret");
        assert_eq!(opened.label, LABEL_SIGSTORE);
        assert_eq!(opened.params, FAST);
    }

    #[test]
    fn rejects_wrong_password() {
        let pem = seal_with_params(b"secret", b"pw", LABEL_COSIGN, FAST).expect("seal");
        assert!(matches!(open(&pem, b"pW"), Err(SealError::WrongPassword)));
        assert!(matches!(open(&pem, b""), Err(SealError::WrongPassword)));
    }

    #[test]
    fn refuses_unaccepted_label() {
        let pem = seal_with_params(b"x", b"pw", LABEL_AIRLOCK_LEDGER, FAST).expect("seal");
        let err = open_with_labels(&pem, b"pw", &[LABEL_SIGSTORE]).expect_err("label");
        assert!(matches!(
            err,
            SealError::Pem(PemError::UnexpectedLabel { .. })
        ));
        assert!(matches!(
            seal(b"x", b"pw", "bad label"),
            Err(SealError::InvalidLabel { .. })
        ));
    }

    #[test]
    fn refuses_absurd_kdf_params() {
        for (n, r, p) in [
            (1u64 << 40, 8u64, 1u64),
            (1 << 20, 8, 1),
            (1 << 16, 8, 64),
            (1 << 16, 1 << 40, 1),
            (3, 8, 1),
            (0, 8, 1),
            (1 << 16, 0, 1),
            (1 << 16, 8, 0),
            (u64::MAX, u64::MAX, u64::MAX),
        ] {
            let json = format!(
                r#"{{"kdf":{{"name":"scrypt","params":{{"N":{n},"r":{r},"p":{p}}},"salt":"AAAA"}},"cipher":{{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#
            );
            let err = open(&envelope_pem(&json), b"pw").expect_err("absurd params");
            assert!(
                matches!(err, SealError::KdfParams { .. }),
                "N={n} r={r} p={p}: {err}"
            );
        }
    }

    #[test]
    fn rejects_malformed_envelopes() {
        let good_nonce = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let cases = [
            ("not json".to_owned(), "Json"),
            (
                format!(r#"{{"kdf":{{"name":"argon2","params":{{"N":16,"r":8,"p":1}},"salt":"AAAA"}},"cipher":{{"name":"nacl/secretbox","nonce":"{good_nonce}"}},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#),
                "UnsupportedKdf",
            ),
            (
                format!(r#"{{"kdf":{{"name":"scrypt","params":{{"N":16,"r":8,"p":1}},"salt":"AAAA"}},"cipher":{{"name":"aes-gcm","nonce":"{good_nonce}"}},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#),
                "UnsupportedCipher",
            ),
            (
                format!(r#"{{"kdf":{{"name":"scrypt","params":{{"N":16,"r":8,"p":1}},"salt":"!!"}},"cipher":{{"name":"nacl/secretbox","nonce":"{good_nonce}"}},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#),
                "Base64",
            ),
            (
                r#"{"kdf":{"name":"scrypt","params":{"N":16,"r":8,"p":1},"salt":"AAAA"},"cipher":{"name":"nacl/secretbox","nonce":"AAAA"},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}"#.to_owned(),
                "FieldLength",
            ),
            (
                format!(r#"{{"kdf":{{"name":"scrypt","params":{{"N":16,"r":8,"p":1}},"salt":"AAAA"}},"cipher":{{"name":"nacl/secretbox","nonce":"{good_nonce}"}},"ciphertext":"AAAA"}}"#),
                "FieldLength",
            ),
            (
                format!(r#"{{"kdf":{{"name":"scrypt","params":{{"N":16,"r":8,"p":1}},"salt":"AAAA"}},"cipher":{{"name":"nacl/secretbox","nonce":"{good_nonce}"}},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#),
                "WrongPassword",
            ),
        ];
        for (json, want) in cases {
            let err = open(&envelope_pem(&json), b"pw").expect_err(&json);
            let got = format!("{err:?}");
            assert!(got.starts_with(want), "{json}: got {got}");
        }
    }

    #[test]
    fn can_detect_truncation() {
        let pem = seal_with_params(b"secret key bytes", b"pw", LABEL_SIGSTORE, FAST).expect("seal");
        let block = pem::decode(&pem, ACCEPTED_LABELS).expect("pem");
        for cut in 0..block.der.len() {
            let truncated = pem::encode(LABEL_SIGSTORE, &block.der[..cut]);
            assert!(open(&truncated, b"pw").is_err(), "cut at {cut} accepted");
        }
        for cut in 0..pem.trim_end().len() {
            if let Some(prefix) = pem.get(..cut) {
                assert!(open(prefix, b"pw").is_err(), "PEM cut at {cut} accepted");
            }
        }
    }
}
