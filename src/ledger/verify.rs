//! `ledger verify`: recompute the tree from the entries and check every checkpoint against it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use sha2::Digest as _;

use super::checkpoint::SignedCheckpoint;
use super::entry::{Entry, EntryError};
use super::keys::read_vkey;
use super::merkle::{empty_root, leaf_hash, Tree};
use super::note::VerifierKey;
use super::store::{
    acquire_lock, evidence_path, open_checkpoint_bytes, read_capped, CHECKPOINT, CHECKPOINTS,
    ENTRIES, LOCK, MAX_CHECKPOINT_BYTES, VKEY,
};
use super::LedgerError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The largest evidence file hashed (evidence is an `airlock.json` or a report, each capped
/// lower when it was recorded).
const MAX_EVIDENCE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What to verify against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The log's verifier key from a source the auditor trusts; without it the key in the
    /// ledger directory is used (which an attacker who rewrote the directory also controls).
    pub vkey: Option<VerifierKey>,
    /// A checkpoint the auditor saved earlier (note bytes and where it came from): the ledger
    /// must still extend it.
    pub trusted_checkpoint: Option<(PathBuf, Vec<u8>)>,
    /// Witness keys whose cosignatures are checked (and reported) when present.
    pub witnesses: Vec<VerifierKey>,
}

/// The outcome of [`verify`]: what was checked and every problem found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The ledger directory.
    pub dir: PathBuf,
    /// The log origin.
    pub origin: String,
    /// The verifier key used.
    pub vkey: String,
    /// Whether that key came from the caller (`true`) or from the ledger directory itself.
    pub vkey_given: bool,
    /// Complete entry lines.
    pub entries: u64,
    /// Root of the tree of all complete lines (base64).
    pub root: String,
    /// Size of the `checkpoint` file, when it verified.
    pub checkpoint_size: Option<u64>,
    /// Checkpoint files whose signature verified.
    pub checkpoints_verified: usize,
    /// Witness key ids with a verified cosignature on the latest checkpoint.
    pub cosigned_by: Vec<String>,
    /// Size of the trusted checkpoint checked, if any.
    pub trusted_checkpoint: Option<u64>,
    /// Every problem, first bad index first.
    #[serde(serialize_with = "ser_problems")]
    pub problems: Vec<LedgerError>,
    /// Things worth knowing that are not failures.
    pub warnings: Vec<String>,
}

fn ser_problems<S: serde::Serializer>(p: &[LedgerError], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct P<'a> {
        kind: &'a str,
        index: Option<u64>,
        message: String,
    }
    s.collect_seq(p.iter().map(|e| P {
        kind: e.kind(),
        index: e.index(),
        message: e.full_message(),
    }))
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The first problem (checkpoint forgeries first, then the lowest entry index).
    pub fn first_problem(&self) -> Option<&LedgerError> {
        self.problems.first()
    }
}

/// The entries file split into complete lines, plus a torn tail if any.
pub(crate) struct Lines {
    pub bytes: Vec<u8>,
    /// `(start, end)` of each complete line, without its newline.
    pub spans: Vec<(usize, usize)>,
    /// `(offset, len)` of a final line with no newline.
    pub torn: Option<(u64, u64)>,
}

impl Lines {
    pub fn read(dir: &Path) -> Result<Self, LedgerError> {
        let path = dir.join(ENTRIES);
        let bytes = fs_err::read(&path).map_err(|e| LedgerError::io("read", &path, e))?;
        let mut spans = Vec::new();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                spans.push((start, i));
                start = i + 1;
            }
        }
        let torn = (start < bytes.len()).then(|| (start as u64, (bytes.len() - start) as u64));
        Ok(Self { bytes, spans, torn })
    }

    pub fn line(&self, i: usize) -> &[u8] {
        let (s, e) = self.spans[i];
        &self.bytes[s..e]
    }

    pub fn tree(&self) -> Tree {
        Tree::from_leaf_hashes(par_map(&self.spans, |&(s, e)| leaf_hash(&self.bytes[s..e])))
    }
}

/// Maps `f` over `items` on all cores (order kept); sequential for small inputs.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16);
    if threads <= 1 || items.len() < 4096 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|c| scope.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            // A worker only runs `f`, which does not panic on any input; re-raise if it did.
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The key to check a ledger with: the caller's, else the directory's own.
pub(crate) fn ledger_key(
    dir: &Path,
    given: Option<&VerifierKey>,
) -> Result<VerifierKey, LedgerError> {
    match given {
        Some(k) => Ok(k.clone()),
        None if dir.join(VKEY).is_file() => read_vkey(&dir.join(VKEY)),
        None => Err(LedgerError::NotALedger {
            path: dir.to_owned(),
            missing: VKEY,
        }),
    }
}

/// Verifies the ledger in `dir`: every line is a canonical entry whose index is its position;
/// every stored checkpoint is signed by the log key and matches the tree recomputed from the
/// entries; `checkpoint` is the newest; nothing was truncated; a trusted checkpoint, if given,
/// is still extended. Returns `Err` only when the ledger cannot be read at all; every finding
/// is in [`VerifyReport::problems`].
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Result<VerifyReport, LedgerError> {
    if !dir.join(ENTRIES).is_file() {
        return Err(LedgerError::NotALedger {
            path: dir.to_owned(),
            missing: ENTRIES,
        });
    }
    let vkey = ledger_key(dir, opts.vkey.as_ref())?;
    let _lock = acquire_lock(&dir.join(LOCK), false, Duration::from_secs(30))?;
    let lines = Lines::read(dir)?;
    let n = lines.spans.len() as u64;
    let mut auth_problems: Vec<LedgerError> = Vec::new();
    let mut problems: Vec<(u64, u8, LedgerError)> = Vec::new();
    let mut warnings = Vec::new();

    // 1. Entries one by one.
    if let Some((offset, len)) = lines.torn {
        problems.push((
            n,
            0,
            LedgerError::TornLine {
                index: n,
                offset,
                len,
            },
        ));
    }
    let mut stated: Vec<Option<u64>> = Vec::with_capacity(lines.spans.len());
    let mut parsed: Vec<Option<Entry>> = Vec::with_capacity(lines.spans.len());
    let indices: Vec<usize> = (0..lines.spans.len()).collect();
    let results = par_map(&indices, |&i| Entry::from_line(lines.line(i)));
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(e) => {
                stated.push(Some(e.index));
                parsed.push(Some(e));
            }
            Err(err) => {
                let index = i as u64;
                let p = match err {
                    EntryError::NotCanonical => LedgerError::EntryNotCanonical { index },
                    source => LedgerError::EntryMalformed { index, source },
                };
                problems.push((index, 1, p));
                stated.push(stated_index(lines.line(i)));
                parsed.push(None);
            }
        }
    }

    // 2. The tree and every checkpoint.
    let tree = lines.tree();
    let latest_path = dir.join(CHECKPOINT);
    let latest = match read_capped(&latest_path, MAX_CHECKPOINT_BYTES)
        .and_then(|b| open_checkpoint_bytes(&latest_path, &b, &vkey, &opts.witnesses))
    {
        Ok(c) => Some(c),
        Err(e) => {
            auth_problems.push(e);
            None
        }
    };
    let mut stored: Vec<(u64, PathBuf, SignedCheckpoint)> = Vec::new();
    let cps_dir = dir.join(CHECKPOINTS);
    let mut names = Vec::new();
    if cps_dir.is_dir() {
        for ent in fs_err::read_dir(&cps_dir).map_err(|e| LedgerError::io("read", &cps_dir, e))? {
            let ent = ent.map_err(|e| LedgerError::io("read", &cps_dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            match super::checkpoint::parse_decimal(&name) {
                Some(size) => names.push((size, ent.path())),
                None if name.starts_with('.') => {}
                None => warnings.push(format!(
                    "ignoring `{}`: not a checkpoint name",
                    ent.path().display()
                )),
            }
        }
    } else {
        warnings.push(format!("`{}` is missing", cps_dir.display()));
    }
    names.sort();
    let opened = par_map(&names, |(_, path)| {
        super::store::read_signed_checkpoint(path, &vkey, &opts.witnesses)
    });
    for ((size, path), cp) in names.into_iter().zip(opened) {
        let cp = match cp {
            Ok(c) => c,
            Err(e) => {
                auth_problems.push(e);
                continue;
            }
        };
        if cp.checkpoint.size != size {
            auth_problems.push(LedgerError::CheckpointSizeMismatch {
                path,
                name: size,
                body: cp.checkpoint.size,
            });
            continue;
        }
        stored.push((size, path, cp));
    }

    // Each stored checkpoint must match the tree; the first mismatch pins the edited entry
    // between the last matching checkpoint and it.
    let mut last_good = 0u64;
    let mut newest = 0u64;
    let mut mismatch_reported = false;
    for (size, _path, cp) in &stored {
        newest = newest.max(*size);
        match tree.root_at(*size) {
            Some(root) if root == cp.checkpoint.root => last_good = *size,
            Some(_) if !mismatch_reported => {
                mismatch_reported = true;
                problems.push((
                    last_good,
                    2,
                    LedgerError::EntryMismatch {
                        index: last_good,
                        last: size - 1,
                        checkpoint: *size,
                    },
                ));
            }
            _ => {}
        }
    }
    let mut checkpoint_size = None;
    let mut cosigned_by = Vec::new();
    if let Some(cp) = &latest {
        let size = cp.checkpoint.size;
        checkpoint_size = Some(size);
        cosigned_by = cp.cosigners(&vkey);
        for w in &opts.witnesses {
            if !cp.opened.is_signed_by(w) {
                warnings.push(format!(
                    "the latest checkpoint has no cosignature by witness {}",
                    w.id()
                ));
            }
        }
        if newest > size {
            problems.push((
                size,
                3,
                LedgerError::Rollback {
                    path: latest_path.clone(),
                    presented: size,
                    newest,
                },
            ));
        }
        match stored.iter().find(|(s, _, _)| *s == size) {
            Some((_, _, c)) if c.checkpoint.root != cp.checkpoint.root => {
                problems.push((
                    size,
                    3,
                    LedgerError::Fork {
                        size,
                        path: latest_path.clone(),
                        expected: B64.encode(c.checkpoint.root),
                        found: cp.checkpoint.root_base64(),
                    },
                ));
            }
            Some(_) => {}
            None => warnings.push(format!(
                "`{}/{size}` is missing (the next append or open writes it)",
                CHECKPOINTS
            )),
        }
        match tree.root_at(size) {
            Some(root) if root != cp.checkpoint.root && !mismatch_reported => {
                problems.push((
                    last_good,
                    2,
                    LedgerError::EntryMismatch {
                        index: last_good,
                        last: size - 1,
                        checkpoint: size,
                    },
                ));
            }
            _ => {}
        }
        newest = newest.max(size);
    }
    if n < newest {
        problems.push((
            n,
            4,
            LedgerError::Truncated {
                index: n,
                expected: newest,
            },
        ));
    } else if n > newest {
        problems.push((
            newest,
            4,
            LedgerError::UncommittedEntries {
                index: newest,
                count: n - newest,
            },
        ));
    }

    // 3. Index order: line i must hold entry i.
    if let Some(i) = (0..stated.len()).find(|&i| stated[i].is_some_and(|s| s != i as u64)) {
        let index = i as u64;
        let found = stated[i].unwrap_or(index);
        let later = (i + 1..stated.len()).find(|&j| stated[j] == Some(index));
        let p = match later {
            Some(j) => LedgerError::EntriesReordered {
                index,
                line: j as u64,
            },
            None if found > index && n < newest => LedgerError::EntryRemoved { index, found },
            None => LedgerError::EntryOutOfPlace { index, found },
        };
        problems.push((index, 1, p));
    }

    // 4. A checkpoint the auditor kept.
    let mut trusted_size = None;
    if let Some((path, bytes)) = &opts.trusted_checkpoint {
        match open_checkpoint_bytes(path, bytes, &vkey, &opts.witnesses) {
            Err(e) => auth_problems.push(e),
            Ok(t) => {
                let size = t.checkpoint.size;
                trusted_size = Some(size);
                match tree.root_at(size) {
                    None => problems.push((
                        n,
                        4,
                        LedgerError::Truncated {
                            index: n,
                            expected: size,
                        },
                    )),
                    Some(root) if root != t.checkpoint.root => problems.push((
                        size,
                        3,
                        LedgerError::Fork {
                            size,
                            path: path.clone(),
                            expected: B64.encode(root),
                            found: t.checkpoint.root_base64(),
                        },
                    )),
                    Some(_) => {}
                }
                if let Some(latest) = checkpoint_size {
                    if size > latest {
                        problems.push((
                            latest,
                            3,
                            LedgerError::Rollback {
                                path: latest_path.clone(),
                                presented: latest,
                                newest: size,
                            },
                        ));
                    }
                }
            }
        }
    }

    // 5. Evidence referenced by entries.
    for e in parsed.iter().flatten() {
        for ev in &e.evidence {
            let Some(p) = evidence_path(dir, &ev.digest) else {
                continue;
            };
            match crate::io::read_capped(&p, MAX_EVIDENCE_FILE_BYTES, "ledger evidence") {
                // Larger than any evidence airlock stores: it cannot be what was recorded.
                Err(err) if err.is_too_large() => problems.push((
                    e.index,
                    5,
                    LedgerError::EvidenceMismatch {
                        index: e.index,
                        digest: ev.digest.clone(),
                    },
                )),
                Ok(bytes) => {
                    let got = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
                    if got != ev.digest {
                        problems.push((
                            e.index,
                            5,
                            LedgerError::EvidenceMismatch {
                                index: e.index,
                                digest: ev.digest.clone(),
                            },
                        ));
                    }
                }
                Err(_) => warnings.push(format!(
                    "entry {}: evidence {} is not stored here",
                    e.index, ev.digest
                )),
            }
        }
    }

    problems.sort_by_key(|(i, rank, _)| (*i, *rank));
    auth_problems.sort_by_key(|e| e.index());
    let mut all = auth_problems;
    all.extend(problems.into_iter().map(|(_, _, p)| p));
    if opts.vkey.is_none() {
        warnings.push("verified with the key stored in the ledger directory; pass --vkey for an independent check".into());
    }
    let root = if n == 0 { empty_root() } else { tree.root() };
    Ok(VerifyReport {
        dir: dir.to_owned(),
        origin: vkey.name().to_owned(),
        vkey: vkey.to_string(),
        vkey_given: opts.vkey.is_some(),
        entries: n,
        root: B64.encode(root),
        checkpoint_size,
        checkpoints_verified: stored.len(),
        cosigned_by,
        trusted_checkpoint: trusted_size,
        problems: all,
        warnings,
    })
}

/// The `index` member of a line that is not a valid entry, if it has one.
fn stated_index(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()?
        .get("index")?
        .as_u64()
}
