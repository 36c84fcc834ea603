//! C2SP signed notes (<https://c2sp.org/signed-note>), compatible with Go's
//! `golang.org/x/mod/sumdb/note`, plus Ed25519 cosignatures (<https://c2sp.org/tlog-cosignature>).
//!
//! A note is UTF-8 text ending in a newline, a blank line, then one or more signature lines
//! `— <name> <base64(key hash (4 bytes, big-endian) ‖ signature)>`. A verifier key is written
//! `<name>+<key hash, 8 hex digits>+<base64(type byte ‖ public key)>`, and the key hash is the
//! first four bytes of `SHA-256(name ‖ "\n" ‖ type byte ‖ public key)`. Type `0x01` is an
//! Ed25519 signature over the note text; type `0x04` is a `cosignature/v1`: an 8-byte
//! big-endian timestamp followed by an Ed25519 signature over
//! `"cosignature/v1\ntime <timestamp>\n" ‖ note text`.
//!
//! [`open`] follows `note.Open` exactly (the Go test vectors pass): malformed notes are
//! rejected, signatures by unknown keys are kept aside as unverified, a known key with a bad
//! signature is an error, and a note needs at least one verified signature.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Signature type byte of an Ed25519 note signature.
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte of an Ed25519 `cosignature/v1`.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// At most this many signature lines are parsed, as in Go.
pub const MAX_SIGNATURES: usize = 100;
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note or key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is not well formed (bad characters, no signature block, bad signature line,
    /// more than 100 signatures, …).
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// The note text cannot be signed (it must be non-empty valid text ending in a newline).
    #[error("note text cannot be signed: {0}")]
    BadText(&'static str),
    /// A verifier key string is malformed.
    #[error("malformed verifier key: {0}")]
    MalformedKey(&'static str),
    /// The key hash in a verifier key does not match its name and key.
    #[error("verifier key hash does not match its name and key")]
    KeyHashMismatch,
    /// The verifier key has a signature type this implementation does not know.
    #[error("unknown verifier key type {0:#04x}")]
    UnknownAlgorithm(u8),
    /// Two known verifier keys have the same name and key hash.
    #[error("ambiguous key {0}")]
    AmbiguousKey(String),
    /// A signature by a known key does not verify.
    #[error("invalid signature for key {0}")]
    InvalidSignature(String),
    /// No signature on the note is by a known key.
    #[error("note has no verifiable signatures (signed by: {})", list_or_none(.0))]
    NoVerifiableSignatures(Vec<String>),
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "nobody".to_owned()
    } else {
        v.join(", ")
    }
}

/// Whether `name` is a valid key name: non-empty, no whitespace, no `+`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The key hash: first four bytes of `SHA-256(name ‖ "\n" ‖ alg ‖ public key)`, big-endian.
pub fn key_hash(name: &str, alg: u8, public: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A public verifier key (`name+hash+base64`).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    hash: u32,
    alg: u8,
    key: VerifyingKey,
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl VerifierKey {
    /// A verifier key for Ed25519 note signatures (type `0x01`).
    pub fn ed25519(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        Self::with_alg(name, ALG_ED25519, key)
    }

    /// A verifier key for Ed25519 `cosignature/v1` signatures (type `0x04`).
    pub fn cosignature_v1(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        Self::with_alg(name, ALG_COSIGNATURE_V1, key)
    }

    fn with_alg(name: &str, alg: u8, key: VerifyingKey) -> Result<Self, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::MalformedKey("invalid key name"));
        }
        let hash = key_hash(name, alg, key.as_bytes());
        Ok(Self {
            name: name.to_owned(),
            hash,
            alg,
            key,
        })
    }

    /// Parses `name+hash+base64(alg ‖ key)`, as `note.NewVerifier` does.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let (name, rest) = s.split_once('+').unwrap_or((s, ""));
        let (hash16, key64) = rest.split_once('+').unwrap_or((rest, ""));
        if hash16.len() != 8 || !hash16.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedKey("key hash is not 8 hex digits"));
        }
        let hash = u32::from_str_radix(hash16, 16)
            .map_err(|_| NoteError::MalformedKey("key hash is not 8 hex digits"))?;
        let key = B64
            .decode(key64)
            .map_err(|_| NoteError::MalformedKey("key is not base64"))?;
        if !is_valid_name(name) {
            return Err(NoteError::MalformedKey("invalid key name"));
        }
        let Some((&alg, public)) = key.split_first() else {
            return Err(NoteError::MalformedKey("empty key"));
        };
        if key_hash(name, alg, public) != hash {
            return Err(NoteError::KeyHashMismatch);
        }
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(NoteError::UnknownAlgorithm(alg));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::MalformedKey("Ed25519 key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::MalformedKey("not an Ed25519 public key"))?;
        Ok(Self {
            name: name.to_owned(),
            hash,
            alg,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key hash.
    pub fn hash(&self) -> u32 {
        self.hash
    }

    /// The signature type byte.
    pub fn alg(&self) -> u8 {
        self.alg
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// `name+hash` — how signatures by this key are named in reports.
    pub fn id(&self) -> String {
        format!("{}+{:08x}", self.name, self.hash)
    }

    /// Verifies one signature (the bytes after the 4-byte key hash) over `text`; returns the
    /// cosignature timestamp for `cosignature/v1` keys.
    fn verify(&self, text: &str, sig: &[u8]) -> Result<Option<u64>, ()> {
        match self.alg {
            ALG_ED25519 => {
                let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| ())?;
                self.key
                    .verify(text.as_bytes(), &sig)
                    .map(|_| None)
                    .map_err(|_| ())
            }
            ALG_COSIGNATURE_V1 => {
                if sig.len() != 72 {
                    return Err(());
                }
                let (ts, sig) = sig.split_at(8);
                let ts = u64::from_be_bytes(ts.try_into().map_err(|_| ())?);
                if ts > i64::MAX as u64 {
                    return Err(());
                }
                let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| ())?;
                let msg = cosignature_message(ts, text);
                self.key
                    .verify(msg.as_bytes(), &sig)
                    .map(|_| Some(ts))
                    .map_err(|_| ())
            }
            _ => Err(()),
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut k = Vec::with_capacity(33);
        k.push(self.alg);
        k.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.hash, B64.encode(k))
    }
}

/// The message an Ed25519 `cosignature/v1` signs.
pub fn cosignature_message(timestamp: u64, text: &str) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// A private key that signs notes (Ed25519, type `0x01`) or cosignatures (type `0x04`).
pub struct NoteSigner {
    name: String,
    hash: u32,
    alg: u8,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NoteSigner({}+{:08x}, private key redacted)",
            self.name, self.hash
        )
    }
}

impl NoteSigner {
    /// An Ed25519 note signer named `name`.
    pub fn ed25519(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        Self::with_alg(name, ALG_ED25519, key)
    }

    /// An Ed25519 `cosignature/v1` signer named `name`.
    pub fn cosignature_v1(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        Self::with_alg(name, ALG_COSIGNATURE_V1, key)
    }

    fn with_alg(name: &str, alg: u8, key: SigningKey) -> Result<Self, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::MalformedKey("invalid key name"));
        }
        let hash = key_hash(name, alg, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            hash,
            alg,
            key,
        })
    }

    /// Parses Go's private signer key form `PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)`.
    pub fn parse_go_private_key(s: &str) -> Result<Self, NoteError> {
        let rest = s
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey("missing PRIVATE+KEY+ prefix"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash16), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedKey(
                "expected PRIVATE+KEY+name+hash+key",
            ));
        };
        if hash16.len() != 8 || !hash16.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedKey("key hash is not 8 hex digits"));
        }
        let hash = u32::from_str_radix(hash16, 16)
            .map_err(|_| NoteError::MalformedKey("key hash is not 8 hex digits"))?;
        let key = zeroize::Zeroizing::new(
            B64.decode(key64)
                .map_err(|_| NoteError::MalformedKey("key is not base64"))?,
        );
        if key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(NoteError::MalformedKey("not an Ed25519 signer key"));
        }
        let seed: [u8; 32] = key[1..]
            .try_into()
            .map_err(|_| NoteError::MalformedKey("seed is not 32 bytes"))?;
        let signer = Self::ed25519(name, SigningKey::from_bytes(&seed))?;
        if signer.hash != hash {
            return Err(NoteError::KeyHashMismatch);
        }
        Ok(signer)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key hash.
    pub fn hash(&self) -> u32 {
        self.hash
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            hash: self.hash,
            alg: self.alg,
            key: self.key.verifying_key(),
        }
    }

    /// A signature line (without the trailing newline) over `text`. For cosignature keys,
    /// `timestamp` is the cosignature time (ignored for plain Ed25519 keys).
    pub fn signature_line(&self, text: &str, timestamp: u64) -> String {
        let mut sig = self.hash.to_be_bytes().to_vec();
        if self.alg == ALG_COSIGNATURE_V1 {
            sig.extend_from_slice(&timestamp.to_be_bytes());
            let msg = cosignature_message(timestamp, text);
            sig.extend_from_slice(&self.key.sign(msg.as_bytes()).to_bytes());
        } else {
            sig.extend_from_slice(&self.key.sign(text.as_bytes()).to_bytes());
        }
        format!("{SIG_PREFIX}{} {}", self.name, B64.encode(sig))
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key hash.
    pub hash: u32,
    /// Base64 of key hash ‖ signature, as written.
    pub base64: String,
    /// Cosignature timestamp, for verified `cosignature/v1` signatures.
    pub timestamp: Option<u64>,
}

impl NoteSignature {
    /// `name+hash`.
    pub fn id(&self) -> String {
        format!("{}+{:08x}", self.name, self.hash)
    }

    /// The line as written in a note, without its newline.
    pub fn line(&self) -> String {
        format!("{SIG_PREFIX}{} {}", self.name, self.base64)
    }
}

/// A parsed note: its text and its signatures, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, ending in a newline.
    pub text: String,
    /// Every signature line, in order.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note; checks the structure only (no signature is verified).
    pub fn parse(msg: &[u8]) -> Result<Self, NoteError> {
        let msg = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed("not UTF-8"))?;
        if msg.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("control character"));
        }
        let split = msg
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no signature block"))?;
        let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must end in a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            let line = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
                "signature line does not start with an em dash",
            ))?;
            let (name, b64) = line.split_once(' ').unwrap_or((line, ""));
            let sig = B64
                .decode(b64)
                .map_err(|_| NoteError::Malformed("signature not base64"))?;
            if !is_valid_name(name) || b64.is_empty() || sig.len() < 5 {
                return Err(NoteError::Malformed("bad signature line"));
            }
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed("more than 100 signatures"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                hash: u32::from_be_bytes([sig[0], sig[1], sig[2], sig[3]]),
                base64: b64.to_owned(),
                timestamp: None,
            });
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note as bytes: text, blank line, one line per signature.
    pub fn to_text(&self) -> String {
        let mut s = self.text.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.line());
            s.push('\n');
        }
        s
    }
}

/// A note whose signatures were checked against a set of known keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The signed text.
    pub text: String,
    /// Signatures by known keys that verified (one per key).
    pub verified: Vec<NoteSignature>,
    /// Signatures by unknown keys (identical lines collapsed).
    pub unverified: Vec<NoteSignature>,
}

impl OpenedNote {
    /// Whether `key` has a verified signature on the note.
    pub fn is_signed_by(&self, key: &VerifierKey) -> bool {
        self.verified
            .iter()
            .any(|s| s.name == key.name && s.hash == key.hash)
    }
}

/// Verifies a signed note against `known` keys, with the semantics of Go's `note.Open`.
pub fn open(msg: &[u8], known: &[VerifierKey]) -> Result<OpenedNote, NoteError> {
    let note = Note::parse(msg)?;
    let sig_bytes = |s: &NoteSignature| B64.decode(&s.base64).unwrap_or_default();
    let mut verified: Vec<NoteSignature> = Vec::new();
    let mut unverified: Vec<NoteSignature> = Vec::new();
    for sig in note.signatures {
        let mut matches = known
            .iter()
            .filter(|k| k.name == sig.name && k.hash == sig.hash);
        let Some(key) = matches.next() else {
            if !unverified
                .iter()
                .any(|u| u.name == sig.name && u.base64 == sig.base64)
            {
                unverified.push(sig);
            }
            continue;
        };
        if matches.next().is_some() {
            return Err(NoteError::AmbiguousKey(sig.id()));
        }
        if verified
            .iter()
            .any(|v| v.name == sig.name && v.hash == sig.hash)
        {
            continue;
        }
        let raw = sig_bytes(&sig);
        match key.verify(&note.text, &raw[4..]) {
            Ok(timestamp) => verified.push(NoteSignature { timestamp, ..sig }),
            Err(()) => return Err(NoteError::InvalidSignature(sig.id())),
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoVerifiableSignatures(
            unverified.iter().map(|s| s.id()).collect(),
        ));
    }
    Ok(OpenedNote {
        text: note.text,
        verified,
        unverified,
    })
}

/// Checks that `text` can be the text of a note.
pub fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::BadText("text must end in a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::BadText("control character"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(NoteError::BadText("empty line"));
    }
    Ok(())
}

/// Signs `text` with `signers`; the result is the complete note, as Go's `note.Sign` makes it.
pub fn sign(text: &str, signers: &[&NoteSigner], timestamp: u64) -> Result<String, NoteError> {
    check_text(text)?;
    let mut out = String::with_capacity(text.len() + 100 * signers.len());
    out.push_str(text);
    out.push('\n');
    for s in signers {
        out.push_str(&s.signature_line(text, timestamp));
        out.push('\n');
    }
    Ok(out)
}

/// Adds `signer`'s signature to an existing note, replacing an older signature by the same key
/// (same name and key hash). The note's other signatures are kept unchanged.
pub fn add_signature(msg: &[u8], signer: &NoteSigner, timestamp: u64) -> Result<String, NoteError> {
    let mut note = Note::parse(msg)?;
    note.signatures
        .retain(|s| !(s.name == signer.name && s.hash == signer.hash));
    let line = signer.signature_line(&note.text, timestamp);
    let b64 = line
        .rsplit_once(' ')
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    note.signatures.push(NoteSignature {
        name: signer.name.clone(),
        hash: signer.hash,
        base64: b64,
        timestamp: None,
    });
    if note.signatures.len() > MAX_SIGNATURES {
        return Err(NoteError::Malformed("more than 100 signatures"));
    }
    Ok(note.to_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosignature_round_trip_and_key_forms() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let log = NoteSigner::ed25519("example.com/log", key.clone()).unwrap();
        let w = NoteSigner::cosignature_v1("witness.example/w1", SigningKey::from_bytes(&[9; 32]))
            .unwrap();
        let text = "example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let note = sign(text, &[&log], 0).unwrap();
        let cosigned = add_signature(note.as_bytes(), &w, 1_679_315_147).unwrap();
        let opened = open(cosigned.as_bytes(), &[log.verifier(), w.verifier()]).unwrap();
        assert_eq!(opened.verified.len(), 2);
        assert_eq!(opened.verified[1].timestamp, Some(1_679_315_147));
        // Round trip of the vkey text form.
        let vk = w.verifier().to_string();
        assert_eq!(VerifierKey::parse(&vk).unwrap(), w.verifier());
        // Re-cosigning replaces the old line.
        let again = add_signature(cosigned.as_bytes(), &w, 1_679_315_148).unwrap();
        assert_eq!(Note::parse(again.as_bytes()).unwrap().signatures.len(), 2);
        // A cosignature over another checkpoint does not verify.
        let other = cosigned.replace("\n3\n", "\n4\n");
        assert!(matches!(
            open(other.as_bytes(), &[w.verifier()]),
            Err(NoteError::InvalidSignature(_))
        ));
    }
}
