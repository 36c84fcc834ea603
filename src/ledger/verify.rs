//! `ledger verify`: recompute the tree from the entries and check every checkpoint against it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use sha2::Digest as _;

use std::io::{BufRead as _, Read as _};

use super::checkpoint::Checkpoint;
use super::derived::{ENTRY_OFFSETS, TREE_HASHES};
use super::entry::{Entry, EntryError, EvidenceRef};
use super::entry_scan::scan_entry;
use super::keys::read_vkey;
use super::lines::{Line, LineReader};
use super::merkle::{leaf_hash, Frontier, Hash};
use super::note::{Note, VerifierKey};
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
    /// Check the log signature of every stored checkpoint, also those the latest checkpoint
    /// vouches for (same root as the entries at their size). Implies `every_checkpoint`.
    pub every_signature: bool,
    /// Read every stored checkpoint and check the root it states against the entries, also
    /// those below the latest checkpoint's size, which it vouches for (a full audit: one file
    /// read per append). Without it they are read only when the latest does not verify or
    /// does not match the entries.
    pub every_checkpoint: bool,
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
    /// Stored checkpoint files that are sound: their log signature verified, or the latest
    /// checkpoint vouches for the root they state.
    pub checkpoints_verified: usize,
    /// Of those, how many had their own log signature checked.
    pub checkpoint_signatures_checked: usize,
    /// Stored checkpoints below the latest checkpoint's size not read: the latest verified
    /// and the entries hash to its root, so it vouches for the tree at every smaller size
    /// (read them with [`VerifyOptions::every_checkpoint`]).
    pub checkpoints_not_read: usize,
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

/// Lines handed to the parsing threads at a time (and at most [`BATCH_BYTES`]).
const BATCH_LINES: usize = 8192;
/// Bytes of lines in a batch (two are held: one parsed, the next read meanwhile): what bounds
/// `verify`'s memory, with the 16 bytes a line of the index-order check.
const BATCH_BYTES: usize = 16 << 20;

/// One line of a batch.
enum Slot {
    /// `buf[start..end]`.
    Whole(usize, usize),
    /// Longer than any entry: its leaf hash and length.
    Long(Hash, u64),
}

/// Lines read from `entries.jsonl` and handed to the parsing threads together.
#[derive(Default)]
struct Batch {
    /// The bytes of its whole lines, one after another.
    buf: Vec<u8>,
    slots: Vec<Slot>,
    /// Where each line starts in the file.
    offsets: Vec<u64>,
    /// The torn tail that ended the file after these lines: its offset and length.
    torn: Option<(u64, u64)>,
}

impl Batch {
    fn clear(&mut self) {
        self.buf.clear();
        self.slots.clear();
        self.offsets.clear();
        self.torn = None;
    }

    /// Reads the next [`BATCH_LINES`] lines (at most about [`BATCH_BYTES`]); none at the end.
    fn fill(&mut self, reader: &mut LineReader) -> Result<(), LedgerError> {
        self.clear();
        while self.slots.len() < BATCH_LINES && self.buf.len() < BATCH_BYTES {
            match reader.next_line()? {
                None => break,
                Some(Line::Torn { offset, len }) => {
                    self.torn = Some((offset, len));
                    break;
                }
                Some(Line::Whole { offset, bytes }) => {
                    let start = self.buf.len();
                    self.buf.extend_from_slice(bytes);
                    self.slots.push(Slot::Whole(start, self.buf.len()));
                    self.offsets.push(offset);
                }
                Some(Line::Long { offset, len, leaf }) => {
                    self.slots.push(Slot::Long(leaf, len));
                    self.offsets.push(offset);
                }
            }
        }
        Ok(())
    }
}

/// What a parsing thread found in one line.
struct Parsed {
    leaf: Hash,
    /// The entry's index and evidence, or why it is not an entry (and the index it states).
    entry: Result<(u64, Vec<EvidenceRef>), (EntryError, Option<u64>)>,
}

fn parse_slot(buf: &[u8], slot: &Slot) -> Parsed {
    match *slot {
        Slot::Whole(s, e) => {
            let line = &buf[s..e];
            Parsed {
                leaf: leaf_hash(line),
                entry: read_entry(line),
            }
        }
        Slot::Long(leaf, size) => Parsed {
            leaf,
            entry: Err((
                EntryError::TooLarge {
                    size: usize::try_from(size).unwrap_or(usize::MAX),
                    max: super::entry::MAX_ENTRY_BYTES,
                },
                None,
            )),
        },
    }
}

/// The index and evidence of entry line `line`, or why it is not an entry (and the index it
/// states): read in one pass, or by [`Entry::from_line`] when that pass cannot accept it.
fn read_entry(line: &[u8]) -> Result<(u64, Vec<EvidenceRef>), (EntryError, Option<u64>)> {
    match scan_entry(line) {
        Some(e) => Ok((e.index, e.evidence)),
        None => Entry::from_line(line)
            .map(|e| (e.index, e.evidence))
            .map_err(|err| (err, stated_index(line))),
    }
}

/// Roots of the tree at the sizes checkpoints name, collected while the leaves stream past.
struct Roots {
    /// Sizes wanted, ascending, deduplicated.
    wanted: Vec<u64>,
    next: usize,
    found: Vec<(u64, Hash)>,
}

impl Roots {
    fn new(mut wanted: Vec<u64>) -> Self {
        wanted.sort_unstable();
        wanted.dedup();
        let mut r = Self {
            wanted,
            next: 0,
            found: Vec::new(),
        };
        r.reached(&Frontier::new());
        r
    }

    /// Records the root if `frontier` has a wanted size.
    fn reached(&mut self, frontier: &Frontier) {
        while self
            .wanted
            .get(self.next)
            .is_some_and(|&w| w <= frontier.size())
        {
            if self.wanted[self.next] == frontier.size() {
                self.found.push((frontier.size(), frontier.root()));
            }
            self.next += 1;
        }
    }

    /// The root at `size`, if the entries reach it.
    fn at(&self, size: u64) -> Option<Hash> {
        self.found
            .binary_search_by_key(&size, |(s, _)| *s)
            .ok()
            .map(|i| self.found[i].1)
    }
}

/// Compares the derived `tree-hashes` and `entry-offsets` with what the entries give, as
/// they stream past; remembers the first disagreement.
struct DerivedCheck {
    hashes: Option<std::io::BufReader<fs_err::File>>,
    offsets: Option<std::io::BufReader<fs_err::File>>,
    hash_at: u64,
    problem: Option<String>,
}

impl DerivedCheck {
    fn open(dir: &Path) -> Self {
        let open = |name: &str| {
            fs_err::File::open(dir.join(name))
                .ok()
                .map(|f| std::io::BufReader::with_capacity(1 << 16, f))
        };
        Self {
            hashes: open(TREE_HASHES),
            offsets: open(ENTRY_OFFSETS),
            hash_at: 0,
            problem: None,
        }
    }

    fn present(&self) -> bool {
        self.hashes.is_some() && self.offsets.is_some()
    }

    fn offset(&mut self, index: u64, offset: u64) {
        let mut raw = [0u8; 8];
        if let (None, Some(r)) = (&self.problem, self.offsets.as_mut()) {
            if r.read_exact(&mut raw).is_err() || u64::from_le_bytes(raw) != offset {
                self.problem = Some(format!(
                    "`{ENTRY_OFFSETS}` disagrees with entries.jsonl at entry {index}"
                ));
            }
        }
    }

    fn hash(&mut self, h: &Hash) {
        let mut raw = [0u8; 32];
        if let (None, Some(r)) = (&self.problem, self.hashes.as_mut()) {
            if r.read_exact(&mut raw).is_err() || raw != *h {
                self.problem = Some(format!(
                    "`{TREE_HASHES}` disagrees with entries.jsonl at hash {}",
                    self.hash_at
                ));
            }
        }
        self.hash_at += 1;
    }
}

/// Verifies the ledger in `dir` (see `docs/ARCHITECTURE.md`, "What `ledger verify` proves"):
/// every line is a canonical entry whose index is its position; the tree recomputed from the
/// entries matches the latest checkpoint, whose log signature verifies; every stored
/// checkpoint states the tree's root at its size and carries a signature line by the log key,
/// and that signature is checked unless the latest checkpoint already vouches for the root
/// (always with [`VerifyOptions::every_signature`]); `checkpoint` is the newest; nothing was truncated; a
/// trusted checkpoint, if given, is still extended. Streams `entries.jsonl` in bounded
/// memory. Returns `Err` only when the ledger cannot be read at all; every finding is in
/// [`VerifyReport::problems`].
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Result<VerifyReport, LedgerError> {
    if !dir.join(ENTRIES).is_file() {
        return Err(LedgerError::NotALedger {
            path: dir.to_owned(),
            missing: ENTRIES,
        });
    }
    let vkey = ledger_key(dir, opts.vkey.as_ref())?;
    let _lock = acquire_lock(&dir.join(LOCK), false, Duration::from_secs(30))?;
    let mut auth_problems: Vec<LedgerError> = Vec::new();
    let mut problems: Vec<(u64, u8, LedgerError)> = Vec::new();
    let mut warnings = Vec::new();

    // 1. The checkpoints' names and the latest one, so the roots at their sizes can be taken
    // as the entries stream past.
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
    let trusted = opts.trusted_checkpoint.as_ref().and_then(|(path, bytes)| {
        match open_checkpoint_bytes(path, bytes, &vkey, &opts.witnesses) {
            Ok(t) => Some((path, t)),
            Err(e) => {
                auth_problems.push(e);
                None
            }
        }
    });
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

    // 2. Entries, streamed once with the roots at the sizes of the checkpoints that must be
    // read; again with every stored checkpoint's size when the latest does not vouch for
    // the entries (the stored ones then pin an edit between two of them).
    let all_sizes = || {
        let mut w: Vec<u64> = names.iter().map(|(s, _)| *s).collect();
        w.extend(latest.iter().map(|c| c.checkpoint.size));
        w.extend(trusted.iter().map(|(_, t)| t.checkpoint.size));
        w
    };
    let mut every = opts.every_signature || opts.every_checkpoint;
    let mut pass = if every {
        entries_pass(dir, all_sizes())?
    } else {
        let mut w: Vec<u64> = latest.iter().map(|c| c.checkpoint.size).collect();
        w.extend(trusted.iter().map(|(_, t)| t.checkpoint.size));
        entries_pass(dir, w)?
    };
    let vouched_up_to = latest
        .as_ref()
        .filter(|c| pass.roots.at(c.checkpoint.size) == Some(c.checkpoint.root))
        .map(|c| c.checkpoint.size);
    if vouched_up_to.is_none() && !every {
        every = true;
        pass = entries_pass(dir, all_sizes())?;
    }
    let EntriesPass {
        frontier,
        roots,
        stated,
        problems: mut entry_problems,
        warnings: entry_warnings,
    } = pass;
    problems.append(&mut entry_problems);
    warnings.extend(entry_warnings);
    let n = frontier.size();

    // 3. Every checkpoint that must be read against the tree: all of them, or (when the latest
    // vouches for the entries) only those it cannot vouch for: the one of its own size (a
    // fork) and any larger (a rollback). The latest one's signature is always checked; a
    // stored checkpoint at or below its size that states the same root as the entries has its
    // own signature checked only with `every_signature`.
    let latest_size = latest.as_ref().map(|c| c.checkpoint.size);
    let mut not_read = 0;
    let names: Vec<(u64, PathBuf)> = names
        .into_iter()
        .filter(|(size, _)| {
            let read =
                every || vouched_up_to.is_none_or(|v| *size >= v) || Some(*size) == latest_size;
            not_read += usize::from(!read);
            read
        })
        .collect();
    let every_signature = opts.every_signature || vouched_up_to.is_none();
    let opened = par_map(&names, |(size, path)| {
        let bytes = read_capped(path, MAX_CHECKPOINT_BYTES)?;
        if !every_signature {
            if let Some(body) = vouchable_body(&bytes, &vkey) {
                let vouched = body.size == *size
                    && body.origin == vkey.name()
                    && vouched_up_to.is_some_and(|v| body.size <= v)
                    && roots.at(body.size) == Some(body.root);
                if vouched {
                    return Ok((body, false));
                }
            }
        }
        open_checkpoint_bytes(path, &bytes, &vkey, &opts.witnesses).map(|c| (c.checkpoint, true))
    });
    let mut stored: Vec<(u64, Checkpoint)> = Vec::new();
    let mut signatures_checked = 0;
    for ((size, path), cp) in names.into_iter().zip(opened) {
        let (cp, signature_checked) = match cp {
            Ok(c) => c,
            Err(e) => {
                auth_problems.push(e);
                continue;
            }
        };
        signatures_checked += usize::from(signature_checked);
        if cp.size != size {
            auth_problems.push(LedgerError::CheckpointSizeMismatch {
                path,
                name: size,
                body: cp.size,
            });
            continue;
        }
        stored.push((size, cp));
    }

    // Each stored checkpoint must match the tree; the first mismatch pins the edited entry
    // between the last matching checkpoint and it.
    let mut last_good = 0u64;
    let mut newest = 0u64;
    let mut mismatch_reported = false;
    for (size, cp) in &stored {
        newest = newest.max(*size);
        match roots.at(*size) {
            Some(root) if root == cp.root => last_good = *size,
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
        match stored.iter().find(|(s, _)| *s == size) {
            Some((_, c)) if c.root != cp.checkpoint.root => {
                problems.push((
                    size,
                    3,
                    LedgerError::Fork {
                        size,
                        path: latest_path.clone(),
                        expected: B64.encode(c.root),
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
        match roots.at(size) {
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

    // 4. Index order: line i must hold entry i.
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

    // 5. A checkpoint the auditor kept.
    let mut trusted_size = None;
    if let Some((path, t)) = &trusted {
        let size = t.checkpoint.size;
        trusted_size = Some(size);
        match roots.at(size) {
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
                    path: (*path).clone(),
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

    problems.sort_by_key(|(i, rank, _)| (*i, *rank));
    auth_problems.sort_by_key(|e| e.index());
    let mut all = auth_problems;
    all.extend(problems.into_iter().map(|(_, _, p)| p));
    if opts.vkey.is_none() {
        warnings.push("verified with the key stored in the ledger directory; pass --vkey for an independent check".into());
    }
    Ok(VerifyReport {
        dir: dir.to_owned(),
        origin: vkey.name().to_owned(),
        vkey: vkey.to_string(),
        vkey_given: opts.vkey.is_some(),
        entries: n,
        root: B64.encode(frontier.root()),
        checkpoint_size,
        checkpoints_verified: stored.len(),
        checkpoint_signatures_checked: signatures_checked,
        checkpoints_not_read: not_read,
        cosigned_by,
        trusted_checkpoint: trusted_size,
        problems: all,
        warnings,
    })
}

/// What one pass over `entries.jsonl` found.
struct EntriesPass {
    frontier: Frontier,
    /// The roots at the sizes asked for.
    roots: Roots,
    /// Each line's stated index, for the index-order check.
    stated: Vec<Option<u64>>,
    problems: Vec<(u64, u8, LedgerError)>,
    warnings: Vec<String>,
}

/// Streams the entries in batches parsed on all cores: canonical form, index, evidence, the
/// tree (with its roots at the sizes in `wanted`), and the derived files.
fn entries_pass(dir: &Path, wanted: Vec<u64>) -> Result<EntriesPass, LedgerError> {
    let mut roots = Roots::new(wanted);
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut frontier = Frontier::new();
    let mut derived = DerivedCheck::open(dir);
    let mut stated: Vec<Option<u64>> = Vec::new();
    let mut reader = LineReader::open(&dir.join(ENTRIES))?;
    // Two batches: the next is read while the threads parse this one.
    let mut batch = Batch::default();
    let mut next = Batch::default();
    batch.fill(&mut reader)?;
    let torn = loop {
        if batch.slots.is_empty() {
            break batch.torn;
        }
        let (parsed, filled) = std::thread::scope(|s| {
            let b = &batch;
            let parsing = s.spawn(move || par_map(&b.slots, |slot| parse_slot(&b.buf, slot)));
            let filled = if b.torn.is_none() {
                next.fill(&mut reader)
            } else {
                next.clear();
                Ok(())
            };
            // The parsing threads only run `parse_slot`, which does not panic on any input.
            let parsed = parsing
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (parsed, filled)
        });
        for (p, &offset) in parsed.into_iter().zip(&batch.offsets) {
            let index = frontier.size();
            derived.offset(index, offset);
            frontier.push_stored(p.leaf, |h| derived.hash(h));
            roots.reached(&frontier);
            match p.entry {
                Ok((stated_index, evidence)) => {
                    stated.push(Some(stated_index));
                    check_evidence(dir, stated_index, &evidence, &mut problems, &mut warnings);
                }
                Err((err, stated_index)) => {
                    let p = match err {
                        EntryError::NotCanonical => LedgerError::EntryNotCanonical { index },
                        source => LedgerError::EntryMalformed { index, source },
                    };
                    problems.push((index, 1, p));
                    stated.push(stated_index);
                }
            }
        }
        if batch.torn.is_some() {
            break batch.torn;
        }
        filled?;
        std::mem::swap(&mut batch, &mut next);
    };
    let n = frontier.size();
    if let Some((offset, len)) = torn {
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
    if !derived.present() {
        warnings.push(format!(
            "`{TREE_HASHES}` or `{ENTRY_OFFSETS}` is missing (derived; the next append or open rebuilds them)"
        ));
    } else if let Some(p) = derived.problem.take().or_else(|| {
        let (h, o) = (derived.hashes.as_mut(), derived.offsets.as_mut());
        let longer = |r: Option<&mut std::io::BufReader<fs_err::File>>| {
            r.is_some_and(|r| r.fill_buf().is_ok_and(|b| !b.is_empty()))
        };
        // Longer than the entries: only an interrupted append leaves that.
        (longer(h) || longer(o)).then(|| "the derived files run past the entries".to_owned())
    }) {
        warnings.push(format!(
            "{p} (a derived file: proofs check it and fall back to entries.jsonl; delete it and the next open rebuilds it)"
        ));
    }
    Ok(EntriesPass {
        frontier,
        roots,
        stated,
        problems,
        warnings,
    })
}

/// The body of a checkpoint note that carries a signature line by the log key (its name and
/// key hash; the signature itself is not checked), if it has one.
fn vouchable_body(bytes: &[u8], vkey: &VerifierKey) -> Option<Checkpoint> {
    let note = Note::parse(bytes).ok()?;
    note.signatures
        .iter()
        .any(|s| s.name == vkey.name() && s.hash == vkey.hash())
        .then(|| Checkpoint::parse_body(&note.text).ok())
        .flatten()
}

/// Checks the evidence files entry `index` references.
fn check_evidence(
    dir: &Path,
    index: u64,
    evidence: &[EvidenceRef],
    problems: &mut Vec<(u64, u8, LedgerError)>,
    warnings: &mut Vec<String>,
) {
    for ev in evidence {
        let Some(p) = evidence_path(dir, &ev.digest) else {
            continue;
        };
        let mismatch = || LedgerError::EvidenceMismatch {
            index,
            digest: ev.digest.clone(),
            path: p.clone(),
        };
        match crate::io::read_capped(&p, MAX_EVIDENCE_FILE_BYTES, "ledger evidence") {
            // Larger than any evidence airlock stores: it cannot be what was recorded.
            Err(err) if err.is_too_large() => problems.push((index, 5, mismatch())),
            Ok(bytes) => {
                let got = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
                if got != ev.digest {
                    problems.push((index, 5, mismatch()));
                }
            }
            Err(_) => warnings.push(format!(
                "entry {index}: evidence {} is not stored here",
                ev.digest
            )),
        }
    }
}

/// The `index` member of a line that is not a valid entry, if it has one.
fn stated_index(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()?
        .get("index")?
        .as_u64()
}
