//! `ledger show`: where a digest, a reference or a bundle came from.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::entry::{ArtifactRecord, Entry, Outcome, SignatureResult};
use super::note::VerifierKey;
use super::store::{
    acquire_lock, open_checkpoint_bytes, read_capped, CHECKPOINT, LOCK, MAX_CHECKPOINT_BYTES,
};
use super::verify::{ledger_key, Lines};
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
    let lines = Lines::read(dir)?;
    let path = dir.join(CHECKPOINT);
    let checked = read_capped(&path, MAX_CHECKPOINT_BYTES)
        .and_then(|b| open_checkpoint_bytes(&path, &b, vkey, &[]))
        .and_then(|cp| {
            let tree = lines.tree();
            match tree.root_at(cp.checkpoint.size) {
                Some(r) if r == cp.checkpoint.root => Ok(cp.checkpoint.size),
                Some(_) => Err(LedgerError::EntryMismatch {
                    index: 0,
                    last: cp.checkpoint.size.saturating_sub(1),
                    checkpoint: cp.checkpoint.size,
                }),
                None => Err(LedgerError::Truncated {
                    index: tree.size(),
                    expected: cp.checkpoint.size,
                }),
            }
        });
    let (checkpoint_size, unverified_reason) = match checked {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.full_message())),
    };
    let all = lines.spans.len() as u64;
    let committed = checkpoint_size.unwrap_or(all).min(all);
    let uncommitted = all - committed;
    let mut matches = Vec::new();
    let mut skipped_lines = Vec::new();
    for i in 0..committed as usize {
        let Ok(e) = Entry::from_line(lines.line(i)) else {
            skipped_lines.push(i as u64);
            continue;
        };
        let artifacts: Vec<ArtifactRecord> = match query {
            Query::All => e.artifacts.clone(),
            Query::Bundle(b) if &e.bundle.digest == b || e.bundle.name.as_ref() == Some(b) => {
                e.artifacts.clone()
            }
            Query::Bundle(_) => continue,
            Query::Digest(d) => {
                let hits: Vec<_> = e
                    .artifacts
                    .iter()
                    .filter(|a| &a.digest == d)
                    .cloned()
                    .collect();
                if hits.is_empty() && &e.bundle.digest != d {
                    continue;
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
                    continue;
                }
                hits
            }
        };
        matches.push(Match {
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
        });
    }
    Ok(FindResult {
        matches,
        checkpoint_size,
        unverified_reason,
        skipped_lines,
        uncommitted,
    })
}
