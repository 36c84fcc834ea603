//! The ledger's Ed25519 keys: the private key is PKCS#8 DER sealed in cosign's encrypted
//! envelope (scrypt + NaCl secretbox, see [`crate::trust::sealed`]) under the PEM label
//! [`KEY_PEM_LABEL`]; the public key is a C2SP verifier key (`name+hash+base64`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::SigningKey;

use super::note::{NoteSigner, VerifierKey};
use super::LedgerError;
use crate::trust::sealed;

/// PEM label of sealed ledger and witness private keys.
pub const KEY_PEM_LABEL: &str = sealed::LABEL_AIRLOCK_LEDGER;
/// Largest key file read.
const MAX_KEY_BYTES: u64 = 64 * 1024;

/// A private key that signs checkpoints (the log's key) or cosignatures (a witness key).
#[derive(Debug)]
pub struct LedgerSigner {
    pub(crate) note: NoteSigner,
}

impl LedgerSigner {
    /// A new random log key named `origin`.
    pub fn generate(origin: &str) -> Result<Self, LedgerError> {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let note = NoteSigner::ed25519(origin, key).map_err(|_| LedgerError::InvalidOrigin {
            origin: origin.to_owned(),
        })?;
        Ok(Self { note })
    }

    /// A new random witness (cosignature/v1) key named `name`.
    pub fn generate_witness(name: &str) -> Result<Self, LedgerError> {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let note =
            NoteSigner::cosignature_v1(name, key).map_err(|_| LedgerError::InvalidOrigin {
                origin: name.to_owned(),
            })?;
        Ok(Self { note })
    }

    /// Signs `text` as a C2SP signed note with this key: what a receipt's `.note` holds, so
    /// the connected side can check a receipt came from the ledger it knows.
    pub fn sign_note(&self, text: &str) -> Result<String, LedgerError> {
        super::note::sign(text, &[&self.note], 0).map_err(|e| LedgerError::Key {
            path: PathBuf::new(),
            reason: e.to_string(),
        })
    }

    /// Loads the log key of the ledger in `dir` (`ledger.key`, named by `ledger.vkey`).
    pub fn load(dir: &Path, password: &[u8]) -> Result<Self, LedgerError> {
        Self::load_pair(&dir.join(super::KEY), &dir.join(super::VKEY), password)
    }

    /// Loads a private key from `key` whose verifier key (which gives the name and kind) is in
    /// `vkey`; checks that they are halves of one pair.
    pub fn load_pair(key: &Path, vkey: &Path, password: &[u8]) -> Result<Self, LedgerError> {
        let verifier = read_vkey(vkey)?;
        let pem = read_small(key)?;
        let pem = String::from_utf8(pem).map_err(|_| LedgerError::Key {
            path: key.to_owned(),
            reason: "not PEM text".into(),
        })?;
        let opened =
            sealed::open_with_labels(&pem, password, &[KEY_PEM_LABEL]).map_err(|source| {
                LedgerError::Seal {
                    path: key.to_owned(),
                    source,
                }
            })?;
        let signing =
            SigningKey::from_pkcs8_der(&opened.plaintext).map_err(|e| LedgerError::Key {
                path: key.to_owned(),
                reason: format!("not an Ed25519 PKCS#8 key: {e}"),
            })?;
        let note = match verifier.alg() {
            super::note::ALG_COSIGNATURE_V1 => NoteSigner::cosignature_v1(verifier.name(), signing),
            _ => NoteSigner::ed25519(verifier.name(), signing),
        }
        .map_err(|e| LedgerError::Key {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
        if note.verifier() != verifier {
            return Err(LedgerError::Key {
                path: key.to_owned(),
                reason: format!("is not the private half of `{}`", vkey.display()),
            });
        }
        Ok(Self { note })
    }

    /// Writes the sealed private key to `key` (mode 0600, refusing to overwrite) and the
    /// verifier key to `vkey`.
    pub fn save_pair(&self, key: &Path, vkey: &Path, password: &[u8]) -> Result<(), LedgerError> {
        let der = self
            .note_key()
            .to_pkcs8_der()
            .map_err(|e| LedgerError::Key {
                path: key.to_owned(),
                reason: format!("cannot encode PKCS#8: {e}"),
            })?;
        let pem = sealed::seal(der.as_bytes(), password, KEY_PEM_LABEL).map_err(|source| {
            LedgerError::Seal {
                path: key.to_owned(),
                source,
            }
        })?;
        write_new(key, pem.as_bytes(), true)?;
        write_new(vkey, format!("{}\n", self.verifier()).as_bytes(), false)
    }

    fn note_key(&self) -> &SigningKey {
        self.note.signing_key()
    }

    /// The verifier key (`name+hash+base64`).
    pub fn verifier(&self) -> VerifierKey {
        self.note.verifier()
    }

    /// The key name (the log origin, or the witness name).
    pub fn name(&self) -> &str {
        self.note.name()
    }
}

/// Reads a verifier key from a file (first line) or, if `arg` is not a file, parses `arg`
/// itself as `name+hash+base64`.
pub fn vkey_from_arg(arg: &str) -> Result<VerifierKey, LedgerError> {
    let path = Path::new(arg);
    if path.is_file() {
        return read_vkey(path);
    }
    VerifierKey::parse(arg.trim()).map_err(|e| LedgerError::Key {
        path: path.to_owned(),
        reason: format!("neither a file nor a verifier key: {e}"),
    })
}

/// Reads a verifier key file (one line).
pub fn read_vkey(path: &Path) -> Result<VerifierKey, LedgerError> {
    let bytes = read_small(path)?;
    let text = String::from_utf8(bytes).map_err(|_| LedgerError::Key {
        path: path.to_owned(),
        reason: "not UTF-8".into(),
    })?;
    let line = text.lines().next().unwrap_or("").trim();
    VerifierKey::parse(line).map_err(|e| LedgerError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn read_small(path: &Path) -> Result<Vec<u8>, LedgerError> {
    crate::io::read_capped(path, MAX_KEY_BYTES, "key file").map_err(|e| match e {
        crate::io::ReadError::Io { source, .. } => LedgerError::io("read", path, source),
        e => LedgerError::Key {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    })
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), LedgerError> {
    let mut opts = fs_err::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use fs_err::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts
        .open(path)
        .map_err(|e| LedgerError::io("create", path, e))?;
    f.write_all(bytes)
        .map_err(|e| LedgerError::io("write", path, e))?;
    f.sync_all().map_err(|e| LedgerError::io("sync", path, e))
}
