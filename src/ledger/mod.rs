//! The provenance ledger: a signed, append-only log of every import (see `docs/LEDGER.md`).
//!
//! A ledger is a directory:
//!
//! ```text
//! entries.jsonl          one RFC 8785 canonical JSON entry per line; the line's bytes are the leaf
//! checkpoint             the latest C2SP checkpoint, a signed note (Ed25519)
//! checkpoints/<size>     every checkpoint ever issued
//! ledger.vkey            the log's verifier key, `origin+keyhash+base64`
//! ledger.key             the log's Ed25519 private key, PKCS#8 in cosign's encrypted envelope
//! evidence/sha256/<hex>  large evidence, stored by digest and referenced from entries
//! tree-state             cache of the tree's right edge (O(log n) appends); rebuilt if stale
//! tree-hashes            every subtree hash (O(log n) proofs); derived, checked, rebuilt
//! entry-offsets          where each entry line starts; derived, checked, rebuilt
//! lock                   held exclusively by an appender, shared by readers
//! recovered/             bytes removed from the end of entries.jsonl by crash recovery
//! ```
//!
//! * [`init`] makes a ledger; [`Ledger::open`] takes the lock (repairing a torn or uncommitted
//!   tail left by a crash, see [`Recovery`]); [`Ledger::append`] writes one entry and issues a
//!   checkpoint.
//! * [`verify()`] recomputes everything an auditor can check and lists every problem, first
//!   bad index first; [`find`] answers "where did this digest come from".
//! * [`prove_inclusion`] / [`verify_inclusion_proof`] make and check C2SP `tlog-proof` files;
//!   [`prove_consistency`] shows the log grew append-only since an older checkpoint.
//! * [`witness`] cosigns checkpoints with a second, offline key; [`export`] packs the ledger for
//!   an auditor.
//!
//! The formats are plain modules usable on their own: [`merkle`], [`note`], [`checkpoint`],
//! [`entry`].

use std::path::PathBuf;

pub mod checkpoint;
mod derived;
pub mod entry;
mod entry_scan;
mod export;
mod keys;
mod lines;
pub mod merkle;
pub mod note;
mod proof;
mod query;
pub mod report;
mod store;
mod verify;
pub mod witness;

pub use checkpoint::{Checkpoint, SignedCheckpoint};
pub use entry::{
    ArtifactRecord, BundleRecord, Entry, EntryError, EvidenceRef, Outcome, RescanRecord,
    SignatureResult, Verdict, ENTRY_SCHEMA,
};
pub use export::{export, import_export, ExportReport, WITNESSES};
pub use keys::{read_vkey, vkey_from_arg, LedgerSigner, KEY_PEM_LABEL};
pub use merkle::{Hash, ProofError};
pub use note::{NoteError, VerifierKey};
pub use proof::{
    prove_consistency, prove_inclusion, verify_inclusion_proof, ConsistencyProof, InclusionProof,
    VerifiedInclusion, MAX_PROOF_BYTES,
};
pub use query::{find, FindResult, Match, Query};
pub use report::{write_report, ReportSummary};
pub use store::{
    evidence_path, init, AppendReceipt, Durability, InitReport, Ledger, OpenOptions, Recovery,
    CHECKPOINT, CHECKPOINTS, ENTRIES, EVIDENCE, KEY, LOCK, MAX_CHECKPOINT_BYTES, RECOVERED, STATE,
    VKEY,
};
pub use verify::{verify, VerifyOptions, VerifyReport};

/// Everything that can go wrong with a ledger. Each variant names the entry index, the
/// checkpoint size or the file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A file could not be read or written.
    #[error("cannot {op} `{}`", path.display())]
    Io {
        /// What was being done (`read`, `write`, `lock`, …).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The directory is not a ledger (a required file is missing).
    #[error("`{}` is not a ledger: `{missing}` is missing (make one with `airlock ledger init`)", path.display())]
    NotALedger {
        /// The directory.
        path: PathBuf,
        /// The missing file.
        missing: &'static str,
    },
    /// `init` refuses to overwrite an existing, non-empty directory.
    #[error("`{}` already exists and is not empty", path.display())]
    AlreadyExists {
        /// The directory.
        path: PathBuf,
    },
    /// Another process holds the ledger lock.
    #[error("ledger `{}` is locked by another process (waited {waited_ms} ms); another import is running", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited_ms: u128,
    },
    /// The ledger's filesystem has too little free space for the next record.
    #[error("ledger `{}` has {available} bytes free, a record needs up to {needed}", path.display())]
    NoRoom {
        /// The ledger directory.
        path: PathBuf,
        /// Bytes free.
        available: u64,
        /// Bytes a record may need.
        needed: u64,
    },
    /// An origin or key name with whitespace or `+`.
    #[error("invalid log origin {origin:?}: use a schema-less URL without spaces or '+', e.g. registry.example/airlock-ledger")]
    InvalidOrigin {
        /// The origin given.
        origin: String,
    },
    /// A private or public key file is unusable.
    #[error("key `{}`: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A private key could not be sealed or opened.
    #[error("key `{}`", path.display())]
    Seal {
        /// The key file.
        path: PathBuf,
        /// Why (wrong password, corrupt file, …).
        #[source]
        source: crate::trust::SealError,
    },
    /// The signer given is not the ledger's key.
    #[error("signer {found} is not this ledger's key {expected}")]
    SignerMismatch {
        /// The ledger's key id.
        expected: String,
        /// The signer's key id.
        found: String,
    },
    /// An entry to append is invalid.
    #[error("entry to append is invalid")]
    InvalidEntry(#[source] EntryError),
    /// The last line of `entries.jsonl` has no newline: a write was cut (power loss).
    #[error("entry {index} is torn: {len} bytes at offset {offset} of entries.jsonl have no final newline (an interrupted write)")]
    TornLine {
        /// Index the torn line would have had.
        index: u64,
        /// Byte offset where it starts.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A line is not a valid entry.
    #[error("entry {index} is malformed")]
    EntryMalformed {
        /// Line index.
        index: u64,
        /// What is wrong.
        #[source]
        source: EntryError,
    },
    /// A line is valid JSON but not canonical: it was edited.
    #[error("entry {index} was edited: it is not in canonical form")]
    EntryNotCanonical {
        /// Line index.
        index: u64,
    },
    /// An entry is missing: the line where it belongs holds a later one.
    #[error("entry {index} was removed: line {index} holds entry {found}")]
    EntryRemoved {
        /// The missing entry.
        index: u64,
        /// The entry found in its place.
        found: u64,
    },
    /// Entries are out of order.
    #[error("entries were reordered: entry {index} is on line {line}")]
    EntriesReordered {
        /// First entry out of place.
        index: u64,
        /// Where it is.
        line: u64,
    },
    /// A line holds an entry whose index is not its position.
    #[error("entry {index} was edited or moved: line {index} says it is entry {found}")]
    EntryOutOfPlace {
        /// Line index.
        index: u64,
        /// The index the entry states.
        found: u64,
    },
    /// The entries do not hash to what a signed checkpoint says: an entry was changed.
    #[error("{}: checkpoint {checkpoint} signed a different tree", if index == last { format!("entry {index} was edited") } else { format!("an entry in {index}..={last} was edited") })]
    EntryMismatch {
        /// First entry that can differ.
        index: u64,
        /// Last entry that can differ (equal to `index` when each append has a checkpoint).
        last: u64,
        /// Size of the first checkpoint that does not match.
        checkpoint: u64,
    },
    /// The ledger has fewer entries than a signed checkpoint covers.
    #[error("ledger was truncated: entries from {index} are missing, a signed checkpoint covers {expected}")]
    Truncated {
        /// First missing index.
        index: u64,
        /// Entries the newest checkpoint covers.
        expected: u64,
    },
    /// Entries after the newest checkpoint (an append interrupted before its checkpoint).
    #[error("{count} entr{} from index {index} are not covered by any checkpoint (an interrupted append; the next import rolls them back)", if *count == 1 { "y" } else { "ies" })]
    UncommittedEntries {
        /// First uncovered index.
        index: u64,
        /// How many.
        count: u64,
    },
    /// A checkpoint file cannot be parsed.
    #[error("checkpoint `{}` is malformed", path.display())]
    CheckpointMalformed {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: checkpoint::CheckpointError,
    },
    /// `checkpoints/<size>` holds a checkpoint of another size.
    #[error("checkpoint `{}` is named for size {name} but is for size {body}", path.display())]
    CheckpointSizeMismatch {
        /// The file.
        path: PathBuf,
        /// Size in the name.
        name: u64,
        /// Size in the body.
        body: u64,
    },
    /// A checkpoint not signed by the log's key.
    #[error("checkpoint `{}` (size {}) is forged: no signature by the log key {key} (signed by: {})", path.display(), fmt_size(*size), if signers.is_empty() { "nobody".to_owned() } else { signers.join(", ") })]
    ForgedCheckpoint {
        /// The file.
        path: PathBuf,
        /// The size it claims, if readable.
        size: Option<u64>,
        /// The log key id expected.
        key: String,
        /// Key ids that did sign it.
        signers: Vec<String>,
    },
    /// A checkpoint carries the log key's signature line, but it does not verify: the
    /// checkpoint was edited after signing.
    #[error("checkpoint `{}` (size {}) was edited: the log signature by {key} does not verify", path.display(), fmt_size(*size))]
    BadCheckpointSignature {
        /// The file.
        path: PathBuf,
        /// The size it claims, if readable.
        size: Option<u64>,
        /// The log key id.
        key: String,
    },
    /// A witness cosignature does not verify.
    #[error("checkpoint `{}`: cosignature by witness {witness} does not verify", path.display())]
    BadCosignature {
        /// The file.
        path: PathBuf,
        /// The witness key id.
        witness: String,
    },
    /// A checkpoint for another log.
    #[error("checkpoint `{}` is for origin {found:?}, this ledger is {expected:?}", path.display())]
    WrongOrigin {
        /// The file.
        path: PathBuf,
        /// The ledger's origin.
        expected: String,
        /// The checkpoint's origin.
        found: String,
    },
    /// `checkpoint` is older than a checkpoint already issued: an old checkpoint is presented
    /// as the newest.
    #[error("rollback: `{}` presents size {presented} as the newest checkpoint, but checkpoint {newest} was issued", path.display())]
    Rollback {
        /// The file presenting the older checkpoint.
        path: PathBuf,
        /// Its size.
        presented: u64,
        /// The newest size issued.
        newest: u64,
    },
    /// Two different trees signed for the same size, or a trusted checkpoint the current tree
    /// does not extend: the log was rewritten (a fork).
    #[error("fork: the checkpoint of size {size} in `{}` has root {found}, the ledger's tree has {expected}", path.display())]
    Fork {
        /// Tree size.
        size: u64,
        /// The checkpoint file.
        path: PathBuf,
        /// Root of the ledger's tree at that size (base64).
        expected: String,
        /// Root in the checkpoint (base64).
        found: String,
    },
    /// An index or size outside the tree.
    #[error("index {index} is outside the ledger (size {size})")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A proof does not verify.
    #[error("{what} does not verify")]
    Proof {
        /// Which proof.
        what: String,
        /// Why.
        #[source]
        source: ProofError,
    },
    /// A proof file is malformed.
    #[error("proof `{}` is malformed: {reason}", path.display())]
    ProofFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A stored evidence file does not hash to its name.
    #[error("evidence file `{}` referenced by entry {index} does not hash to {digest}: changed or damaged", path.display())]
    EvidenceMismatch {
        /// Entry that references it.
        index: u64,
        /// The digest.
        digest: String,
        /// The file.
        path: PathBuf,
    },
    /// The witness refuses: the checkpoint is older than one it cosigned.
    #[error("witness refuses rollback of {origin}: it cosigned size {cosigned}, the ledger presents {presented}")]
    WitnessRollback {
        /// Log origin.
        origin: String,
        /// Largest size the witness cosigned.
        cosigned: u64,
        /// Size presented.
        presented: u64,
    },
    /// The witness refuses: the checkpoint is not consistent with the one it cosigned.
    #[error("witness refuses fork of {origin}: checkpoint {presented} does not extend the checkpoint {cosigned} it cosigned")]
    WitnessFork {
        /// Log origin.
        origin: String,
        /// Largest size the witness cosigned.
        cosigned: u64,
        /// Size presented.
        presented: u64,
        /// Why.
        #[source]
        source: Option<ProofError>,
    },
    /// The witness state file is unusable.
    #[error("witness state `{}`: {reason}", path.display())]
    WitnessState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An export file is malformed.
    #[error("export `{}`: {reason}", path.display())]
    Export {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write failed and could not be undone; reopen the ledger to recover.
    #[error("ledger handle is unusable after a failed write; open the ledger again to recover")]
    Poisoned,
}

fn fmt_size(size: Option<u64>) -> String {
    size.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
}

impl LedgerError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The entry index this problem points at, if it is about an entry (or, for checkpoint
    /// problems, the checkpoint size).
    pub fn index(&self) -> Option<u64> {
        use LedgerError::*;
        match self {
            TornLine { index, .. }
            | EntryMalformed { index, .. }
            | EntryNotCanonical { index }
            | EntryRemoved { index, .. }
            | EntriesReordered { index, .. }
            | EntryOutOfPlace { index, .. }
            | EntryMismatch { index, .. }
            | Truncated { index, .. }
            | UncommittedEntries { index, .. }
            | EvidenceMismatch { index, .. }
            | IndexOutOfRange { index, .. } => Some(*index),
            Rollback { presented, .. } => Some(*presented),
            Fork { size, .. } => Some(*size),
            ForgedCheckpoint { size, .. } | BadCheckpointSignature { size, .. } => *size,
            CheckpointSizeMismatch { name, .. } => Some(*name),
            _ => None,
        }
    }

    /// A short stable name of the problem, for JSON reports and tests.
    pub fn kind(&self) -> &'static str {
        use LedgerError::*;
        match self {
            Io { .. } => "io",
            NotALedger { .. } => "not_a_ledger",
            AlreadyExists { .. } => "already_exists",
            Locked { .. } => "locked",
            NoRoom { .. } => "no_room",
            InvalidOrigin { .. } => "invalid_origin",
            Key { .. } | Seal { .. } => "key",
            SignerMismatch { .. } => "signer_mismatch",
            InvalidEntry(_) => "invalid_entry",
            TornLine { .. } => "torn_line",
            EntryMalformed { .. } => "entry_malformed",
            EntryNotCanonical { .. } => "entry_edited",
            EntryRemoved { .. } => "entry_removed",
            EntriesReordered { .. } => "entries_reordered",
            EntryOutOfPlace { .. } => "entry_out_of_place",
            EntryMismatch { .. } => "entry_edited",
            Truncated { .. } => "truncated",
            UncommittedEntries { .. } => "uncommitted_entries",
            CheckpointMalformed { .. } => "checkpoint_malformed",
            CheckpointSizeMismatch { .. } => "checkpoint_misnamed",
            ForgedCheckpoint { .. } => "forged_checkpoint",
            BadCheckpointSignature { .. } => "checkpoint_edited",
            BadCosignature { .. } => "bad_cosignature",
            WrongOrigin { .. } => "wrong_origin",
            Rollback { .. } => "rollback",
            Fork { .. } => "fork",
            IndexOutOfRange { .. } => "index_out_of_range",
            Proof { .. } => "proof",
            ProofFile { .. } => "proof_file",
            EvidenceMismatch { .. } => "evidence_mismatch",
            WitnessRollback { .. } => "witness_rollback",
            WitnessFork { .. } => "witness_fork",
            WitnessState { .. } => "witness_state",
            Export { .. } => "export",
            Poisoned => "poisoned",
        }
    }

    /// The message with its causes, on one line.
    pub fn full_message(&self) -> String {
        let mut s = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            s.push_str(": ");
            s.push_str(&e.to_string());
            src = e.source();
        }
        s
    }
}
