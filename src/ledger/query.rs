//! `ledger show`: where a digest, a reference or a bundle came from.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::entry::{ArtifactRecord, Entry, Outcome, SignatureResult};
use super::lines::{Line, LineReader};
use super::merkle::{empty_root, leaf_hash, Frontier};
use super::note::VerifierKey;
use super::store::{
    acquire_lock, open_checkpoint_bytes, read_capped, CHECKPOINT, ENTRIES, LOCK,
    MAX_CHECKPOINT_BYTES,
};
use super::verify::ledger_key;
use super::LedgerError;

/// What to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Query {
    /// Every entry.
    All,
    /// An artifact (or bundle) digest, `sha256:<hex>`.
    Digest(String),
    /// A source or target reference, exactly as recorded.
    Ref(String),
    /// A bundle digest or bundle name.
    Bundle(String),
}

/// One entry that matched, with the artifacts that matched.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    /// Entry index.
    pub index: u64,
    /// When.
    pub time: String,
    /// Who.
    pub operator: String,
    /// With which importer.
    pub importer: String,
    /// Bundle digest.
    pub bundle: String,
    /// Bundle name.
    pub bundle_name: Option<String>,
    /// The bundle's signatures and their results.
    pub bundle_signatures: Vec<SignatureResult>,
    /// The bundle's replay sequence, when recorded.
    pub bundle_sequence: Option<u64>,
    /// Policy digest.
    pub policy_digest: Option<String>,
    /// Target registry.
    pub target_registry: String,
    /// Admitted or rejected.
    pub result: Outcome,
    /// The matching artifacts (all of them for bundle and all-entries queries).
    pub artifacts: Vec<ArtifactRecord>,
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, Serialize)]
pub struct FindResult {
    /// Matches, in log order.
    pub matches: Vec<Match>,
    /// Size of the latest checkpoint, when it verified and the entries match it.
    pub checkpoint_size: Option<u64>,
    /// Why the entries could not be tied to the latest checkpoint (run `ledger verify`).
    pub unverified_reason: Option<String>,
    /// Lines that are not valid entries (skipped).
    pub skipped_lines: Vec<u64>,
    /// Whole lines after the latest checkpoint: an append that never reached its commit
    /// point. They are not entries and are not searched.
    pub uncommitted: u64,
}

/// Searches the ledger in `dir` (under a shared lock). The answer says whether the entries
/// match the latest signed checkpoint; a full audit is [`verify`](super::verify()).
pub fn find(dir: &Path, query: &Query) -> Result<FindResult, LedgerError> {
    let vkey = ledger_key(dir, None)?;
    let _lock = acquire_lock(&dir.join(LOCK), false, Duration::from_secs(30))?;
    find_locked(dir, &vkey, query)
}

/// [`find`] for a caller that already holds the lock (an open [`Ledger`](super::Ledger)).
///
/// Only committed entries count: whole lines after the latest checkpoint's size (an append
/// killed before its commit point) are not entries, and are left out and counted in
/// [`FindResult::uncommitted`] (the next [`Ledger::open`](super::Ledger::open) moves them to
/// `recovered/`). So a crash never makes the ledger unreadable to its readers.
pub(crate) fn find_locked(
    dir: &Path,
    vkey: &VerifierKey,
    query: &Query,
) -> Result<FindResult, LedgerError> {
    let path = dir.join(CHECKPOINT);
    let latest = read_capped(&path, MAX_CHECKPOINT_BYTES)
        .and_then(|b| open_checkpoint_bytes(&path, &b, vkey, &[]));
    // One pass: every line is searched and hashed; whether the lines past the checkpoint
    // count is known only at the end, so their matches are kept apart until then.
    let signed_size = latest.as_ref().map_or(u64::MAX, |c| c.checkpoint.size);
    let mut lines = LineReader::open(&dir.join(ENTRIES))?;
    let mut frontier = Frontier::new();
    let mut root_at_size = (signed_size == 0).then(empty_root);
    let mut matches = Vec::new();
    let mut past = Vec::new();
    let mut skipped_lines = Vec::new();
    let mut skipped_past = Vec::new();
    loop {
        let i = frontier.size();
        let (leaf, entry) = match lines.next_line()? {
            Some(Line::Whole { bytes, .. }) => (leaf_hash(bytes), Entry::from_line(bytes).ok()),
            Some(Line::Long { leaf, .. }) => (leaf, None),
            Some(Line::Torn { .. }) | None => break,
        };
        frontier.push(leaf);
        if frontier.size() == signed_size {
            root_at_size = Some(frontier.root());
        }
        let (found, skipped) = if i < signed_size {
            (&mut matches, &mut skipped_lines)
        } else {
            (&mut past, &mut skipped_past)
        };
        match entry {
            Some(e) => found.extend(matching(e, query)),
            None => skipped.push(i),
        }
    }
    let all = frontier.size();
    let checked = latest.and_then(|cp| match root_at_size {
        Some(r) if r == cp.checkpoint.root => Ok(cp.checkpoint.size),
        Some(_) => Err(LedgerError::EntryMismatch {
            index: 0,
            last: cp.checkpoint.size.saturating_sub(1),
            checkpoint: cp.checkpoint.size,
        }),
        None => Err(LedgerError::Truncated {
            index: all,
            expected: cp.checkpoint.size,
        }),
    });
    let (checkpoint_size, unverified_reason) = match checked {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.full_message())),
    };
    let committed = checkpoint_size.unwrap_or(all).min(all);
    let uncommitted = all - committed;
    if checkpoint_size.is_none() {
        matches.append(&mut past);
        skipped_lines.append(&mut skipped_past);
    }
    Ok(FindResult {
        matches,
        checkpoint_size,
        unverified_reason,
        skipped_lines,
        uncommitted,
    })
}

/// The match `e` gives for `query`, if any.
fn matching(e: Entry, query: &Query) -> Option<Match> {
    let artifacts: Vec<ArtifactRecord> = match query {
        Query::All => e.artifacts.clone(),
        Query::Bundle(b) if &e.bundle.digest == b || e.bundle.name.as_ref() == Some(b) => {
            e.artifacts.clone()
        }
        Query::Bundle(_) => return None,
        Query::Digest(d) => {
            let hits: Vec<_> = e
                .artifacts
                .iter()
                .filter(|a| &a.digest == d)
                .cloned()
                .collect();
            if hits.is_empty() && &e.bundle.digest != d {
                return None;
            }
            hits
        }
        Query::Ref(r) => {
            let hits: Vec<_> = e
                .artifacts
                .iter()
                .filter(|a| &a.source_ref == r || a.target_ref.as_ref() == Some(r))
                .cloned()
                .collect();
            if hits.is_empty() {
                return None;
            }
            hits
        }
    };
    Some(Match {
        index: e.index,
        time: e.time,
        operator: e.operator,
        importer: e.importer,
        bundle: e.bundle.digest,
        bundle_name: e.bundle.name,
        bundle_signatures: e.bundle.signatures,
        bundle_sequence: e.bundle.sequence,
        policy_digest: e.policy_digest,
        target_registry: e.target_registry,
        result: e.result,
        artifacts,
    })
}
