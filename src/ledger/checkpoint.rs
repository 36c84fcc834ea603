//! C2SP tlog-checkpoint bodies (<https://c2sp.org/tlog-checkpoint>): `<origin>\n<size>\n<base64
//! root>\n` followed by optional non-empty extension lines, carried as a signed note.

use std::fmt;

use base64::Engine as _;

use super::merkle::Hash;
use super::note::{self, NoteError, OpenedNote, VerifierKey};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a checkpoint body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The body has fewer than three lines or does not end in a newline.
    #[error("checkpoint body needs origin, size and root lines, each ending in a newline")]
    MissingLines,
    /// The origin line is empty.
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    /// The size line is not a decimal without leading zeros that fits 64 bits.
    #[error("checkpoint size {0:?} is not a decimal number without leading zeros")]
    BadSize(String),
    /// The root line is not the base64 of 32 bytes.
    #[error("checkpoint root {0:?} is not the base64 of a SHA-256 hash")]
    BadRoot(String),
    /// An extension line is empty.
    #[error("checkpoint extension lines must not be empty")]
    EmptyExtension,
    /// The checkpoint's origin is not the name of the log key that signed it.
    #[error("checkpoint origin {origin:?} is not the log key name {key:?}")]
    OriginMismatch {
        /// Origin line.
        origin: String,
        /// Log key name.
        key: String,
    },
    /// The signed note around the checkpoint is bad, or no trusted key signed it.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A checkpoint body: the log's claim that its tree of `size` leaves has root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash.
    pub root: Hash,
    /// Extension lines (opaque; airlock writes none).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, size: u64, root: Hash) -> Self {
        Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The note text: `origin\nsize\nbase64(root)\n` plus extension lines.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a checkpoint body (the note text, without signatures).
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingLines)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::MissingLines);
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_decimal(size).ok_or_else(|| CheckpointError::BadSize(size.to_owned()))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| CheckpointError::BadRoot(root.to_owned()))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::EmptyExtension);
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Base64 of the root hash, as written in the body.
    pub fn root_base64(&self) -> String {
        B64.encode(self.root)
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} size {} root {}",
            self.origin,
            self.size,
            self.root_base64()
        )
    }
}

/// Parses an ASCII decimal with no sign and no leading zeros (except `0` itself).
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// A checkpoint whose note was verified with the log's key (and possibly witness keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint body.
    pub checkpoint: Checkpoint,
    /// The note as read, byte for byte.
    pub note: String,
    /// The verified signatures and the ones by unknown keys.
    pub opened: OpenedNote,
}

impl SignedCheckpoint {
    /// Verifies a checkpoint note: `log_key` must have signed it, its key name must be the
    /// origin, and any `witnesses` whose signatures are present must verify (cosignatures by
    /// unknown keys are kept as unverified).
    pub fn open(
        note_bytes: &[u8],
        log_key: &VerifierKey,
        witnesses: &[VerifierKey],
    ) -> Result<Self, CheckpointError> {
        let mut keys = Vec::with_capacity(1 + witnesses.len());
        keys.push(log_key.clone());
        keys.extend(witnesses.iter().cloned());
        let opened = note::open(note_bytes, &keys)?;
        if !opened.is_signed_by(log_key) {
            let mut signers: Vec<String> = opened.verified.iter().map(|s| s.id()).collect();
            signers.extend(opened.unverified.iter().map(|s| s.id()));
            return Err(NoteError::NoVerifiableSignatures(signers).into());
        }
        let checkpoint = Checkpoint::parse_body(&opened.text)?;
        if checkpoint.origin != log_key.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin,
                key: log_key.name().to_owned(),
            });
        }
        // `note_bytes` parsed as UTF-8 inside `note::open`.
        let note = String::from_utf8_lossy(note_bytes).into_owned();
        Ok(Self {
            checkpoint,
            note,
            opened,
        })
    }

    /// Key ids (`name+hash`) of verified witness cosignatures.
    pub fn cosigners(&self, log_key: &VerifierKey) -> Vec<String> {
        self.opened
            .verified
            .iter()
            .filter(|s| !(s.name == log_key.name() && s.hash == log_key.hash()))
            .map(|s| s.id())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trip_and_strictness() {
        let c = Checkpoint::new("example.com/log", 20852163, [3u8; 32]);
        assert_eq!(Checkpoint::parse_body(&c.body()).unwrap(), c);
        for bad in [
            "example.com/log\n012\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n",
            "example.com/log\n-1\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n",
            "example.com/log\n+1\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n",
            "example.com/log\n1\nAwMD\n",
            "example.com/log\n1\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=",
            "\n1\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n",
            "example.com/log\n18446744073709551616\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n",
        ] {
            assert!(Checkpoint::parse_body(bad).is_err(), "{bad:?}");
        }
    }
}
