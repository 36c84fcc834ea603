//! Inclusion proofs in C2SP tlog-proof form (<https://c2sp.org/tlog-proof>) and consistency
//! proofs between an older checkpoint and the current one.
//!
//! An airlock inclusion proof carries the entry line itself in the `extra` line, so that
//! `verify-proof` needs nothing but the proof and the log's verifier key: it hashes the entry,
//! checks the Merkle path against the checkpoint's root and the checkpoint's signature.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use super::checkpoint::{parse_decimal, Checkpoint, SignedCheckpoint};
use super::derived::{entry_line, StoredTree};
use super::entry::{Entry, MAX_ENTRY_BYTES};
use super::lines::{Line, LineReader};
use super::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, root_at, verify_consistency,
    verify_inclusion, Hash, Subtrees, Tree,
};
use super::note::VerifierKey;
use super::store::{
    acquire_lock, open_checkpoint_bytes, read_capped, CHECKPOINT, ENTRIES, LOCK,
    MAX_CHECKPOINT_BYTES,
};
use super::verify::ledger_key;
use super::LedgerError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// First line of a C2SP tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The largest proof file read (`ledger verify-proof`): a checkpoint, an entry and at most 64
/// hashes are a few KiB.
pub const MAX_PROOF_BYTES: u64 = 1024 * 1024;

/// An inclusion proof for one entry, with the checkpoint it is relative to.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    /// The entry's index.
    pub index: u64,
    /// The entry line (the leaf data), carried in the `extra` line.
    pub entry: Option<Vec<u8>>,
    /// Merkle path, from the leaf's sibling up.
    pub hashes: Vec<Hash>,
    /// The checkpoint note, verbatim (with any cosignatures).
    pub checkpoint: String,
}

impl InclusionProof {
    /// The C2SP tlog-proof text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(e) = &self.entry {
            s.push_str(&format!("extra {}\n", B64.encode(e)));
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// The tree size of the checkpoint carried (unverified).
    pub fn tree_size(&self) -> Option<u64> {
        super::store::peek_size(self.checkpoint.as_bytes())
    }

    /// Parses a C2SP tlog-proof (`path` names it in errors).
    pub fn parse(path: &Path, text: &[u8]) -> Result<Self, LedgerError> {
        let bad = |reason: &str| LedgerError::ProofFile {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(bad("first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
        let mut entry = None;
        if let Some(extra) = line.strip_prefix("extra ") {
            let bytes = B64.decode(extra).map_err(|_| bad("extra is not base64"))?;
            if bytes.len() > MAX_ENTRY_BYTES {
                return Err(bad("extra is larger than an entry can be"));
            }
            entry = Some(bytes);
            line = lines.next().ok_or_else(|| bad("no index line"))?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or_else(|| bad("bad index line (want `index N`, decimal without leading zeros)"))?;
        let mut hashes = Vec::new();
        for l in lines {
            let h: Hash = B64
                .decode(l)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("a proof line is not the base64 of a SHA-256 hash"))?;
            if hashes.len() == 64 {
                return Err(bad("more than 64 proof hashes"));
            }
            hashes.push(h);
        }
        Ok(Self {
            index,
            entry,
            hashes,
            checkpoint: checkpoint.to_owned(),
        })
    }
}

/// A verified inclusion proof.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedInclusion {
    /// The entry's index.
    pub index: u64,
    /// Base64 leaf hash.
    pub leaf_hash: String,
    /// Tree size of the checkpoint.
    pub tree_size: u64,
    /// Root of the checkpoint (base64).
    pub root: String,
    /// Log origin.
    pub origin: String,
    /// Witnesses with a verified cosignature.
    pub cosigned_by: Vec<String>,
    /// The entry, parsed (when the proof or the caller supplied it).
    pub entry: Option<serde_json::Value>,
}

fn latest_for(dir: &Path, vkey: &VerifierKey) -> Result<SignedCheckpoint, LedgerError> {
    let path = dir.join(CHECKPOINT);
    let bytes = read_capped(&path, MAX_CHECKPOINT_BYTES)?;
    open_checkpoint_bytes(&path, &bytes, vkey, &[])
}

/// The tree of the first `cp.size` entry lines, recomputed from `entries.jsonl` (O(n)), and
/// line `want` if asked: the slow path when the derived `tree-hashes` cannot be used. Fails
/// when the entries do not give the checkpoint's root.
fn tree_from_entries(
    dir: &Path,
    cp: &Checkpoint,
    want: Option<u64>,
) -> Result<(Tree, Option<Vec<u8>>), LedgerError> {
    let mut lines = LineReader::open(&dir.join(ENTRIES))?;
    let mut tree = Tree::new();
    let mut wanted = None;
    while tree.size() < cp.size {
        let leaf = match lines.next_line()? {
            Some(Line::Whole { bytes, .. }) => {
                if want == Some(tree.size()) {
                    wanted = Some(bytes.to_vec());
                }
                leaf_hash(bytes)
            }
            Some(Line::Long { leaf, .. }) => leaf,
            Some(Line::Torn { .. }) | None => {
                return Err(LedgerError::Truncated {
                    index: tree.size(),
                    expected: cp.size,
                })
            }
        };
        tree.push_leaf_hash(leaf);
    }
    if tree.root() != cp.root {
        return Err(LedgerError::EntryMismatch {
            index: 0,
            last: cp.size.saturating_sub(1),
            checkpoint: cp.size,
        });
    }
    Ok((tree, wanted))
}

/// Runs `f` on the ledger's tree at the signed checkpoint `cp`: on the derived `tree-hashes`
/// (O(log n) reads) when its root there is `cp.root`, and, if `f` fails on it, on the tree
/// recomputed from `entries.jsonl`, whose answer stands. `f` checks what it makes against
/// signed roots, so a damaged derived file costs time, never a wrong answer.
pub(crate) fn on_signed_tree<T>(
    dir: &Path,
    cp: &Checkpoint,
    f: impl Fn(&dyn Subtrees) -> Result<T, LedgerError>,
) -> Result<T, LedgerError> {
    if let Some(t) = StoredTree::open(dir, cp.size) {
        if root_at(&t, cp.size) == Some(cp.root) && !t.failed() {
            if let Ok(v) = f(&t) {
                if !t.failed() {
                    return Ok(v);
                }
            }
        }
    }
    let (tree, _) = tree_from_entries(dir, cp, None)?;
    f(&tree)
}

/// Makes an inclusion proof for entry `index` relative to the ledger's latest checkpoint.
/// The ledger must verify up to that checkpoint. `vkey` defaults to the ledger's own key.
pub fn prove_inclusion(
    dir: &Path,
    index: u64,
    vkey: Option<&VerifierKey>,
) -> Result<InclusionProof, LedgerError> {
    let vkey = ledger_key(dir, vkey)?;
    let _lock = acquire_lock(&dir.join(LOCK), false, Duration::from_secs(30))?;
    let latest = latest_for(dir, &vkey)?;
    let size = latest.checkpoint.size;
    if index >= size {
        return Err(LedgerError::IndexOutOfRange { index, size });
    }
    let root = latest.checkpoint.root;
    let proof_error = |source| LedgerError::Proof {
        what: format!("inclusion proof for entry {index}"),
        source,
    };
    // From the derived files: the line through `entry-offsets`, the path through
    // `tree-hashes`, used only if they verify against the signed root.
    let fast = || {
        let (_, line) = entry_line(dir, index)?;
        let t = StoredTree::open(dir, size)?;
        let hashes = inclusion_proof(&t, index, size).ok()?;
        verify_inclusion(index, size, &leaf_hash(&line), &hashes, &root).ok()?;
        (!t.failed()).then_some((line, hashes))
    };
    let (line, hashes) = match fast() {
        Some(found) => found,
        None => {
            let (tree, line) = tree_from_entries(dir, &latest.checkpoint, Some(index))?;
            let hashes = tree.inclusion_proof(index, size).map_err(proof_error)?;
            // `index < size`, and every line below `size` was read.
            let line = line.ok_or(LedgerError::IndexOutOfRange { index, size })?;
            (line, hashes)
        }
    };
    Ok(InclusionProof {
        index,
        entry: Some(line),
        hashes,
        checkpoint: latest.note,
    })
}

/// Verifies a tlog-proof file with nothing but the log's key (and optionally witness keys):
/// the checkpoint's signature, then the entry's inclusion under its root. `entry` supplies the
/// entry line when the proof carries none (if both are present they must be equal).
pub fn verify_inclusion_proof(
    path: &Path,
    proof_text: &[u8],
    vkey: &VerifierKey,
    witnesses: &[VerifierKey],
    entry: Option<&[u8]>,
) -> Result<VerifiedInclusion, LedgerError> {
    let proof = InclusionProof::parse(path, proof_text)?;
    let cp = open_checkpoint_bytes(path, proof.checkpoint.as_bytes(), vkey, witnesses)?;
    let line: &[u8] = match (&proof.entry, entry) {
        (Some(p), Some(e)) if p.as_slice() != e => {
            return Err(LedgerError::ProofFile {
                path: path.to_owned(),
                reason: "the entry given is not the entry in the proof".into(),
            })
        }
        (Some(p), _) => p,
        (None, Some(e)) => e,
        (None, None) => {
            return Err(LedgerError::ProofFile {
                path: path.to_owned(),
                reason: "the proof carries no entry (no `extra` line); pass the entry".into(),
            })
        }
    };
    let leaf = leaf_hash(line);
    verify_inclusion(
        proof.index,
        cp.checkpoint.size,
        &leaf,
        &proof.hashes,
        &cp.checkpoint.root,
    )
    .map_err(|source| LedgerError::Proof {
        what: format!("inclusion proof for entry {}", proof.index),
        source,
    })?;
    let entry = serde_json::from_slice::<serde_json::Value>(line).ok();
    if let Some(e) = Entry::from_line(line)
        .ok()
        .filter(|e| e.index != proof.index)
    {
        return Err(LedgerError::EntryOutOfPlace {
            index: proof.index,
            found: e.index,
        });
    }
    Ok(VerifiedInclusion {
        index: proof.index,
        leaf_hash: B64.encode(leaf),
        tree_size: cp.checkpoint.size,
        root: cp.checkpoint.root_base64(),
        origin: cp.checkpoint.origin.clone(),
        cosigned_by: cp.cosigners(vkey),
        entry,
    })
}

/// A consistency proof from an older checkpoint to the latest one.
#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyProof {
    /// Size of the older checkpoint.
    pub old_size: u64,
    /// Its root (base64).
    pub old_root: String,
    /// Size of the latest checkpoint.
    pub new_size: u64,
    /// Its root (base64).
    pub new_root: String,
    /// The proof hashes (base64), RFC 9162 §2.1.4.
    pub proof: Vec<String>,
    /// The latest checkpoint note.
    pub checkpoint: String,
    /// Where the older checkpoint came from.
    pub from: PathBuf,
}

impl ConsistencyProof {
    /// Text form, as in C2SP tlog-witness: `old <size>`, the proof hashes, an empty line, then
    /// the new checkpoint.
    pub fn to_text(&self) -> String {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(h);
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }
}

/// Proves that the ledger grew append-only since `old` (a checkpoint note, e.g. one an
/// auditor kept): checks its signature, builds the consistency proof to the latest checkpoint
/// and verifies it. A rollback (older than `old`) or a fork (a different tree) is an error.
pub fn prove_consistency(
    dir: &Path,
    from: &Path,
    old: &[u8],
    vkey: Option<&VerifierKey>,
) -> Result<ConsistencyProof, LedgerError> {
    let vkey = ledger_key(dir, vkey)?;
    let old_cp = open_checkpoint_bytes(from, old, &vkey, &[])?.checkpoint;
    let _lock = acquire_lock(&dir.join(LOCK), false, Duration::from_secs(30))?;
    let latest = latest_for(dir, &vkey)?;
    let new = &latest.checkpoint;
    if old_cp.size > new.size {
        return Err(LedgerError::Rollback {
            path: dir.join(CHECKPOINT),
            presented: new.size,
            newest: old_cp.size,
        });
    }
    let proof = on_signed_tree(dir, new, |tree| {
        let old_root = root_at(tree, old_cp.size).unwrap_or_else(empty_root);
        if old_root != old_cp.root {
            return Err(LedgerError::Fork {
                size: old_cp.size,
                path: from.to_owned(),
                expected: B64.encode(old_root),
                found: old_cp.root_base64(),
            });
        }
        let proof_error = |source| LedgerError::Proof {
            what: format!("consistency proof {} -> {}", old_cp.size, new.size),
            source,
        };
        let proof = consistency_proof(tree, old_cp.size, new.size).map_err(proof_error)?;
        if old_cp.size > 0 {
            verify_consistency(old_cp.size, new.size, &proof, &old_cp.root, &new.root)
                .map_err(proof_error)?;
        }
        Ok(proof)
    })?;
    Ok(ConsistencyProof {
        old_size: old_cp.size,
        old_root: old_cp.root_base64(),
        new_size: new.size,
        new_root: new.root_base64(),
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
        checkpoint: latest.note.clone(),
        from: from.to_owned(),
    })
}
