//! The ledger directory: creation, the lock, crash-safe O(log n) appends, crash recovery.
//!
//! An append goes lock → write the line → fsync → sign → write `checkpoint` (temp file, fsync,
//! rename, fsync the directory: the commit point) → `checkpoints/<size>` → `tree-state`.
//! [`Ledger::open`] undoes whatever a crash left after the last committed checkpoint (a torn
//! line, or whole lines without a checkpoint), saving the removed bytes under `recovered/`,
//! and reports it as a [`Recovery`].

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use super::derived::{self, DerivedWriter, Rebuild};
use super::entry::{Entry, EntryError, MAX_ENTRY_BYTES};
use super::keys::{read_vkey, LedgerSigner};
use super::lines::{Line, LineReader};
use super::merkle::{empty_root, leaf_hash, Frontier, Hash};
use super::note::{self, NoteError, VerifierKey};
use super::LedgerError;

/// The entries file.
pub const ENTRIES: &str = "entries.jsonl";
/// The latest checkpoint.
pub const CHECKPOINT: &str = "checkpoint";
/// Directory of every checkpoint issued, named by tree size.
pub const CHECKPOINTS: &str = "checkpoints";
/// The log's verifier key.
pub const VKEY: &str = "ledger.vkey";
/// The log's sealed private key.
pub const KEY: &str = "ledger.key";
/// The lock file.
pub const LOCK: &str = "lock";
/// Cache of the tree's right edge.
pub const STATE: &str = "tree-state";
/// Evidence store (`evidence/sha256/<hex>`).
pub const EVIDENCE: &str = "evidence/sha256";
/// Where crash recovery saves the bytes it removes.
pub const RECOVERED: &str = "recovered";
/// The file [`Ledger::check_writable`] writes and removes.
const PROBE: &str = ".write-probe";
/// Largest checkpoint file read.
pub const MAX_CHECKPOINT_BYTES: u64 = 64 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Whether appends wait for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// fsync the entry, the checkpoint and their directories (the default).
    #[default]
    Full,
    /// No fsync at all: a power loss can lose or tear entries. Only for benchmarks and tests.
    DangerousNoSync,
}

/// How [`Ledger::open_with`] opens a ledger.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long to wait for another process to release the lock.
    pub lock_timeout: Duration,
    /// Whether appends fsync.
    pub durability: Durability,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(30),
            durability: Durability::Full,
        }
    }
}

/// What [`init`] made.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The ledger directory.
    pub dir: PathBuf,
    /// The log origin (and key name).
    pub origin: String,
    /// The verifier key, `origin+hash+base64`; give it to auditors.
    pub vkey: String,
    /// The sealed private key file.
    pub key: PathBuf,
    /// The first checkpoint (size 0).
    pub checkpoint: String,
}

/// What [`Ledger::open`] repaired after a crash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Recovery {
    /// Byte offset in `entries.jsonl` where the removed bytes started (the end of the last
    /// committed entry).
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// Whole entry lines removed (written, but no checkpoint was issued for them).
    pub complete_lines: u64,
    /// Whether the bytes ended in a torn (partial) line.
    pub torn: bool,
    /// Where the removed bytes were saved.
    pub saved_to: Option<PathBuf>,
    /// Whether `checkpoints/<size>` of the latest checkpoint was missing and rewritten.
    pub restored_checkpoint: bool,
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct AppendReceipt {
    /// Index of the (first) entry appended.
    pub index: u64,
    /// Number of entries appended.
    pub count: u64,
    /// Leaf hash of the last entry appended.
    pub leaf_hash: Hash,
    /// The checkpoint issued for the new tree.
    pub checkpoint: SignedCheckpoint,
    /// Non-fatal problems after the commit point (e.g. `checkpoints/<size>` not written; the
    /// next open repairs it).
    pub warnings: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct TreeState {
    size: u64,
    offset: u64,
    last_leaf: Option<String>,
    frontier: Vec<String>,
}

/// An open ledger holding the exclusive lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct Ledger {
    dir: PathBuf,
    _lock: fs_err::File,
    vkey: VerifierKey,
    latest: SignedCheckpoint,
    frontier: Frontier,
    last_leaf: Option<Hash>,
    offset: u64,
    entries: fs_err::File,
    /// Appends to `tree-hashes` and `entry-offsets`; `None` after a failed write (the next
    /// open rebuilds them).
    derived: Option<DerivedWriter>,
    durability: Durability,
    recovery: Option<Recovery>,
    poisoned: bool,
}

/// Makes a new ledger in `dir` (created; must be absent or empty): an Ed25519 key pair named
/// `origin` (the private key sealed with `password`), an empty `entries.jsonl` and the
/// checkpoint of the empty tree.
pub fn init(dir: &Path, origin: &str, password: &[u8]) -> Result<InitReport, LedgerError> {
    if !note::is_valid_name(origin) {
        return Err(LedgerError::InvalidOrigin {
            origin: origin.to_owned(),
        });
    }
    if dir.exists() {
        let mut it = fs_err::read_dir(dir).map_err(|e| LedgerError::io("read", dir, e))?;
        if it.next().is_some() {
            return Err(LedgerError::AlreadyExists {
                path: dir.to_owned(),
            });
        }
    }
    fs_err::create_dir_all(dir.join(CHECKPOINTS)).map_err(|e| LedgerError::io("create", dir, e))?;
    let signer = LedgerSigner::generate(origin)?;
    signer.save_pair(&dir.join(KEY), &dir.join(VKEY), password)?;
    for f in [ENTRIES, LOCK] {
        let p = dir.join(f);
        fs_err::File::create(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| LedgerError::io("create", &p, e))?;
    }
    let cp = Checkpoint::new(origin, 0, empty_root());
    let note = sign_checkpoint(&cp, &signer)?;
    write_atomic(&dir.join(CHECKPOINTS).join("0"), note.as_bytes(), true)?;
    write_atomic(&dir.join(CHECKPOINT), note.as_bytes(), true)?;
    write_state(dir, &Frontier::new(), 0, None)?;
    // The derived files of the empty tree: empty.
    derived::Rebuild::start(dir)?.finish()?;
    sync_dir(dir)?;
    Ok(InitReport {
        dir: dir.to_owned(),
        origin: origin.to_owned(),
        vkey: signer.verifier().to_string(),
        key: dir.join(KEY),
        checkpoint: note,
    })
}

pub(crate) fn sign_checkpoint(
    cp: &Checkpoint,
    signer: &LedgerSigner,
) -> Result<String, LedgerError> {
    note::sign(&cp.body(), &[&signer.note], 0).map_err(|e| LedgerError::Key {
        path: PathBuf::from(signer.name()),
        reason: format!("cannot sign checkpoint: {e}"),
    })
}

impl Ledger {
    /// Opens the ledger in `dir` for appending: takes the lock (waiting up to 30 s for
    /// another importer), checks the latest checkpoint's signature, and repairs what a crash
    /// left (see [`Ledger::recovery`]).
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        Self::open_with(dir, &OpenOptions::default())
    }

    /// [`Ledger::open`] with options.
    pub fn open_with(dir: &Path, opts: &OpenOptions) -> Result<Self, LedgerError> {
        for f in [VKEY, CHECKPOINT, ENTRIES] {
            if !dir.join(f).is_file() {
                return Err(LedgerError::NotALedger {
                    path: dir.to_owned(),
                    missing: f,
                });
            }
        }
        let lock = acquire_lock(&dir.join(LOCK), true, opts.lock_timeout)?.ok_or(
            LedgerError::NotALedger {
                path: dir.to_owned(),
                missing: LOCK,
            },
        )?;
        let vkey = read_vkey(&dir.join(VKEY))?;
        let latest = read_signed_checkpoint(&dir.join(CHECKPOINT), &vkey, &[])?;
        // Temporary files of a writer killed mid-write: never read, but left alone they
        // would pile up. We hold the exclusive lock, so no writer is using them.
        remove_stale_temps(dir)?;
        // `checkpoints/<size+1>` is written only after `checkpoint` moved past `size`: if it
        // exists, an older checkpoint was put back. Appending now would sign a fork.
        let size = latest.checkpoint.size;
        if let Some(next) = size.checked_add(1) {
            if dir.join(CHECKPOINTS).join(next.to_string()).exists() {
                return Err(LedgerError::Rollback {
                    path: dir.join(CHECKPOINT),
                    presented: size,
                    newest: next,
                });
            }
        }
        let entries_path = dir.join(ENTRIES);
        let entries = fs_err::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&entries_path)
            .map_err(|e| LedgerError::io("open", &entries_path, e))?;
        let len = entries
            .metadata()
            .map_err(|e| LedgerError::io("stat", &entries_path, e))?
            .len();
        let (frontier, offset, last_leaf) =
            match read_state(dir, size, &latest.checkpoint.root, len) {
                Some(s) if derived::check(dir, &s.0, s.1, s.2) => s,
                _ => {
                    let s = rebuild(dir, &latest.checkpoint)?;
                    // A stale cache is only a cache: failing to refresh it costs a rebuild later.
                    let _ = write_state(dir, &s.0, s.1, s.2);
                    s
                }
            };
        let derived = DerivedWriter::open(dir).ok();
        let mut ledger = Self {
            dir: dir.to_owned(),
            _lock: lock,
            vkey,
            latest,
            frontier,
            last_leaf,
            offset,
            entries,
            derived,
            durability: opts.durability,
            recovery: None,
            poisoned: false,
        };
        if len > offset {
            ledger.recovery = Some(ledger.remove_tail(len)?);
        }
        let named = dir.join(CHECKPOINTS).join(size.to_string());
        if !named.exists() {
            fs_err::create_dir_all(dir.join(CHECKPOINTS))
                .map_err(|e| LedgerError::io("create", dir.join(CHECKPOINTS), e))?;
            write_atomic(&named, ledger.latest.note.as_bytes(), ledger.sync())?;
            let r = ledger.recovery.get_or_insert(Recovery {
                offset,
                bytes: 0,
                complete_lines: 0,
                torn: false,
                saved_to: None,
                restored_checkpoint: false,
            });
            r.restored_checkpoint = true;
        }
        Ok(ledger)
    }

    fn sync(&self) -> bool {
        self.durability == Durability::Full
    }

    /// Moves the bytes after the last committed entry to `recovered/` and truncates.
    fn remove_tail(&mut self, len: u64) -> Result<Recovery, LedgerError> {
        let path = self.dir.join(ENTRIES);
        let mut tail = Vec::new();
        self.entries
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| {
                (&mut self.entries)
                    .take(len - self.offset)
                    .read_to_end(&mut tail)
            })
            .map_err(|e| LedgerError::io("read", &path, e))?;
        let rec_dir = self.dir.join(RECOVERED);
        fs_err::create_dir_all(&rec_dir).map_err(|e| LedgerError::io("create", &rec_dir, e))?;
        // Named by position and content: a recovery killed after saving but before the
        // truncate saves the same bytes to the same name when it runs again.
        let sum = hex::encode(sha2::Sha256::digest(&tail));
        let saved = rec_dir.join(format!("entries-at-{}-{}.jsonl", self.offset, &sum[..16]));
        write_atomic(&saved, &tail, true)?;
        self.entries
            .set_len(self.offset)
            .and_then(|_| self.entries.sync_all())
            .map_err(|e| LedgerError::io("truncate", &path, e))?;
        Ok(Recovery {
            offset: self.offset,
            bytes: tail.len() as u64,
            complete_lines: tail.iter().filter(|&&b| b == b'\n').count() as u64,
            torn: !tail.ends_with(b"\n"),
            saved_to: Some(saved),
            restored_checkpoint: false,
        })
    }

    /// What [`Ledger::open`] repaired after a crash, if anything. Callers should tell the
    /// operator: a torn or uncommitted entry means an earlier import did not finish.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        self.vkey.name()
    }

    /// The log's verifier key.
    pub fn vkey(&self) -> &VerifierKey {
        &self.vkey
    }

    /// The latest checkpoint.
    pub fn latest(&self) -> &SignedCheckpoint {
        &self.latest
    }

    /// [`find`](super::find) under the lock this handle holds: committed entries only, and
    /// whether they match the latest checkpoint.
    pub fn find(&self, query: &super::Query) -> Result<super::FindResult, LedgerError> {
        super::query::find_locked(&self.dir, &self.vkey, query)
    }

    /// Checks, before an import pushes anything, that its record can be written: a file can
    /// be created, written, synced and renamed in the ledger directory and in `checkpoints/`
    /// (what an append does), and the filesystem has `room` bytes free.
    pub fn check_writable(&self, room: u64) -> Result<(), LedgerError> {
        for dir in [self.dir.clone(), self.dir.join(CHECKPOINTS)] {
            let probe = dir.join(PROBE);
            write_atomic(&probe, b"airlock ledger write probe\n", self.sync())?;
            fs_err::remove_file(&probe).map_err(|e| LedgerError::io("remove", &probe, e))?;
        }
        let available = crate::disk::available_bytes(&self.dir)
            .map_err(|e| LedgerError::io("statvfs", &self.dir, e))?;
        if available < room {
            return Err(LedgerError::NoRoom {
                path: self.dir.clone(),
                available,
                needed: room,
            });
        }
        Ok(())
    }

    /// Appends one entry (its `index` is set to the next index), then issues and stores a new
    /// checkpoint signed by `signer`, which must be the ledger's key. O(log n).
    pub fn append(
        &mut self,
        entry: &Entry,
        signer: &LedgerSigner,
    ) -> Result<AppendReceipt, LedgerError> {
        self.append_all(std::slice::from_ref(entry), signer)
    }

    /// Appends several entries under one checkpoint. Prefer one [`Ledger::append`] per
    /// import: verification pins an edited entry to the range between two checkpoints.
    pub fn append_all(
        &mut self,
        entries: &[Entry],
        signer: &LedgerSigner,
    ) -> Result<AppendReceipt, LedgerError> {
        if self.poisoned {
            return Err(LedgerError::Poisoned);
        }
        let key = signer.verifier();
        if key != self.vkey {
            return Err(LedgerError::SignerMismatch {
                expected: self.vkey.id(),
                found: key.id(),
            });
        }
        if entries.is_empty() {
            return Err(LedgerError::InvalidEntry(EntryError::Invalid {
                field: "entries".into(),
                reason: "is empty: nothing to append".into(),
            }));
        }
        let first = self.size();
        let mut frontier = self.frontier.clone();
        let mut buf = Vec::new();
        let mut last = [0u8; 32];
        let mut offsets = Vec::with_capacity(entries.len());
        let mut stored = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let mut e = e.clone();
            e.index = first + i as u64;
            let line = e.to_line().map_err(LedgerError::InvalidEntry)?;
            last = leaf_hash(&line);
            frontier.push_stored(last, |h| stored.push(*h));
            offsets.push(self.offset + buf.len() as u64);
            buf.extend_from_slice(&line);
            buf.push(b'\n');
        }
        let path = self.dir.join(ENTRIES);
        let sync = self.sync();
        let written = self.entries.write_all(&buf).and_then(|_| {
            if sync {
                self.entries.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            self.undo_tail();
            return Err(LedgerError::io("append to", &path, e));
        }
        let cp = Checkpoint::new(self.vkey.name(), frontier.size(), frontier.root());
        let note = match sign_checkpoint(&cp, signer) {
            Ok(n) => n,
            Err(e) => {
                self.undo_tail();
                return Err(e);
            }
        };
        if let Err(e) = write_atomic(&self.dir.join(CHECKPOINT), note.as_bytes(), sync) {
            self.undo_tail();
            return Err(e);
        }
        // Committed.
        self.offset += buf.len() as u64;
        self.frontier = frontier;
        self.last_leaf = Some(last);
        let mut warnings = Vec::new();
        let named = self.dir.join(CHECKPOINTS).join(cp.size.to_string());
        if let Err(e) = write_atomic(&named, note.as_bytes(), sync) {
            warnings.push(format!("{}", e));
        }
        if let Some(d) = self.derived.as_mut() {
            if let Err(e) = d.append(&offsets, &stored) {
                warnings.push(format!(
                    "cannot append to the tree hashes (the next open rebuilds them): {e}"
                ));
                self.derived = None;
            }
        }
        if let Err(e) = write_state(&self.dir, &self.frontier, self.offset, self.last_leaf) {
            warnings.push(format!("{}", e));
        }
        let opened =
            note::open(note.as_bytes(), std::slice::from_ref(&self.vkey)).map_err(|e| {
                LedgerError::Key {
                    path: self.dir.join(KEY),
                    reason: e.to_string(),
                }
            })?;
        self.latest = SignedCheckpoint {
            checkpoint: cp,
            note,
            opened,
        };
        Ok(AppendReceipt {
            index: first,
            count: entries.len() as u64,
            leaf_hash: last,
            checkpoint: self.latest.clone(),
            warnings,
        })
    }

    /// Removes a partly written append; if that fails the handle is poisoned (the next open
    /// repairs the file).
    fn undo_tail(&mut self) {
        let ok = self
            .entries
            .set_len(self.offset)
            .and_then(|_| self.entries.sync_all())
            .is_ok();
        if !ok {
            self.poisoned = true;
        }
    }

    /// Replaces the latest checkpoint note (same body, more signatures: a cosignature).
    pub(crate) fn replace_latest_note(&mut self, note_text: String) -> Result<(), LedgerError> {
        let sync = self.sync();
        let named = self
            .dir
            .join(CHECKPOINTS)
            .join(self.latest.checkpoint.size.to_string());
        write_atomic(&named, note_text.as_bytes(), sync)?;
        write_atomic(&self.dir.join(CHECKPOINT), note_text.as_bytes(), sync)?;
        self.latest.note = note_text;
        Ok(())
    }

    /// Stores `bytes` as evidence (`evidence/sha256/<hex>`, written once) and returns its
    /// digest, to reference from an entry's `evidence`.
    pub fn put_evidence(&self, bytes: &[u8]) -> Result<String, LedgerError> {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        let dir = self.dir.join(EVIDENCE);
        let path = dir.join(&hex);
        if !path.exists() {
            fs_err::create_dir_all(&dir).map_err(|e| LedgerError::io("create", &dir, e))?;
            write_atomic(&path, bytes, self.sync())?;
        }
        Ok(format!("sha256:{hex}"))
    }
}

/// Path of evidence `digest` (`sha256:<hex>`) in the ledger `dir`, if the digest is well formed.
pub fn evidence_path(dir: &Path, digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| dir.join(EVIDENCE).join(hex))
}

/// Takes the lock file's lock: exclusive (creating the file) for writers, shared for
/// readers. Readers get `None` when the file cannot be opened (read-only copies).
// `File::try_lock` is std since Rust 1.89 (flock / LockFileEx, no extra crate).
pub(crate) fn acquire_lock(
    path: &Path,
    exclusive: bool,
    timeout: Duration,
) -> Result<Option<fs_err::File>, LedgerError> {
    let file = if exclusive {
        fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    } else {
        fs_err::File::open(path)
    };
    let file = match file {
        Ok(f) => f,
        Err(_) if !exclusive => return Ok(None),
        Err(e) => return Err(LedgerError::io("open", path, e)),
    };
    let start = Instant::now();
    loop {
        let r = if exclusive {
            file.file().try_lock()
        } else {
            file.file().try_lock_shared()
        };
        match r {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                let waited = start.elapsed();
                if waited >= timeout {
                    return Err(LedgerError::Locked {
                        path: path.to_owned(),
                        waited_ms: waited.as_millis(),
                    });
                }
                std::thread::sleep((timeout - waited).min(Duration::from_millis(50)));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(LedgerError::io("lock", path, e)),
        }
    }
}

/// Writes `bytes` to `path` via a temporary file and a rename; with `sync`, fsyncs the file
/// before and the directory after the rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), LedgerError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = fs_err::File::create(&tmp).map_err(|e| LedgerError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| LedgerError::io("write", &tmp, e))?;
    if sync {
        f.sync_all().map_err(|e| LedgerError::io("sync", &tmp, e))?;
    }
    drop(f);
    fs_err::rename(&tmp, path).map_err(|e| LedgerError::io("rename", path, e))?;
    if sync {
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Removes what a killed writer left: `.NAME.tmp` files of [`write_atomic`] and the write
/// probe, in the ledger directory and the directories it writes into.
fn remove_stale_temps(dir: &Path) -> Result<(), LedgerError> {
    for d in [
        dir.to_path_buf(),
        dir.join(CHECKPOINTS),
        dir.join(EVIDENCE),
        dir.join(RECOVERED),
    ] {
        let Ok(list) = fs_err::read_dir(&d) else {
            continue;
        };
        for ent in list.flatten() {
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let stale = name == PROBE || (name.starts_with('.') && name.ends_with(".tmp"));
            if stale && ent.file_type().is_ok_and(|t| t.is_file()) {
                let p = ent.path();
                fs_err::remove_file(&p).map_err(|e| LedgerError::io("remove", &p, e))?;
            }
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    #[cfg(unix)]
    {
        fs_err::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LedgerError::io("sync", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Reads a ledger note or state file of at most `max` bytes ([`crate::io::read_capped`]); a
/// larger one is a malformed checkpoint.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, LedgerError> {
    crate::io::read_capped(path, max, "ledger file").map_err(|e| match e {
        crate::io::ReadError::Io { source, .. } => LedgerError::io("read", path, source),
        _ => LedgerError::CheckpointMalformed {
            path: path.to_owned(),
            source: CheckpointError::Note(NoteError::Malformed("file too large")),
        },
    })
}

/// The size a checkpoint note claims, read without verifying anything.
pub(crate) fn peek_size(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    super::checkpoint::parse_decimal(text.split('\n').nth(1)?)
}

/// Reads and verifies a checkpoint file, turning failures into the precise ledger error.
pub(crate) fn read_signed_checkpoint(
    path: &Path,
    vkey: &VerifierKey,
    witnesses: &[VerifierKey],
) -> Result<SignedCheckpoint, LedgerError> {
    let bytes = read_capped(path, MAX_CHECKPOINT_BYTES)?;
    open_checkpoint_bytes(path, &bytes, vkey, witnesses)
}

pub(crate) fn open_checkpoint_bytes(
    path: &Path,
    bytes: &[u8],
    vkey: &VerifierKey,
    witnesses: &[VerifierKey],
) -> Result<SignedCheckpoint, LedgerError> {
    SignedCheckpoint::open(bytes, vkey, witnesses).map_err(|e| {
        let path = path.to_owned();
        let size = peek_size(bytes);
        match e {
            CheckpointError::Note(NoteError::NoVerifiableSignatures(signers)) => {
                LedgerError::ForgedCheckpoint {
                    path,
                    size,
                    key: vkey.id(),
                    signers,
                }
            }
            CheckpointError::Note(NoteError::InvalidSignature(id)) if id == vkey.id() => {
                LedgerError::BadCheckpointSignature {
                    path,
                    size,
                    key: id,
                }
            }
            CheckpointError::Note(NoteError::InvalidSignature(id)) => {
                LedgerError::BadCosignature { path, witness: id }
            }
            CheckpointError::OriginMismatch { origin, key } => LedgerError::WrongOrigin {
                path,
                expected: key,
                found: origin,
            },
            source => LedgerError::CheckpointMalformed { path, source },
        }
    })
}

fn write_state(
    dir: &Path,
    frontier: &Frontier,
    offset: u64,
    last_leaf: Option<Hash>,
) -> Result<(), LedgerError> {
    let state = TreeState {
        size: frontier.size(),
        offset,
        last_leaf: last_leaf.map(|h| B64.encode(h)),
        frontier: frontier.hashes().iter().map(|h| B64.encode(h)).collect(),
    };
    let json = serde_json::to_vec(&state)
        .map_err(|e| LedgerError::io("encode", dir.join(STATE), e.into()))?;
    write_atomic(&dir.join(STATE), &json, false)
}

fn decode_hash(s: &str) -> Option<Hash> {
    B64.decode(s).ok()?.try_into().ok()
}

/// Reads the cached tree state; `None` unless it matches the checkpoint (`size`, `root`) and
/// the last committed line in `entries.jsonl` hashes to the cached last leaf.
fn read_state(
    dir: &Path,
    size: u64,
    root: &Hash,
    len: u64,
) -> Option<(Frontier, u64, Option<Hash>)> {
    let bytes = read_capped(&dir.join(STATE), 64 * 1024).ok()?;
    let state: TreeState = serde_json::from_slice(&bytes).ok()?;
    let hashes: Option<Vec<Hash>> = state.frontier.iter().map(|h| decode_hash(h)).collect();
    let frontier = Frontier::from_parts(state.size, hashes?)?;
    if state.size != size || frontier.root() != *root || state.offset > len {
        return None;
    }
    let last_leaf = match &state.last_leaf {
        Some(h) => Some(decode_hash(h)?),
        None => None,
    };
    if size == 0 {
        return (state.offset == 0).then_some((frontier, 0, None));
    }
    // The bytes just before the offset must be the last committed line.
    let start = state.offset.saturating_sub(MAX_ENTRY_BYTES as u64 + 1);
    let mut f = fs_err::File::open(dir.join(ENTRIES)).ok()?;
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(state.offset - start).read_to_end(&mut buf).ok()?;
    let body = buf.strip_suffix(b"\n")?;
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(p) => &body[p + 1..],
        None if start == 0 => body,
        None => return None,
    };
    (Some(leaf_hash(line)) == last_leaf).then_some((frontier, state.offset, last_leaf))
}

/// Recomputes the right edge from the first `cp.size` lines of `entries.jsonl` and rewrites
/// the derived files (O(n), only when a cache is missing, stale or disagrees).
fn rebuild(dir: &Path, cp: &Checkpoint) -> Result<(Frontier, u64, Option<Hash>), LedgerError> {
    let path = dir.join(ENTRIES);
    let mut lines = LineReader::open(&path)?;
    let mut derived = Rebuild::start(dir)?;
    let mut frontier = Frontier::new();
    let mut last = None;
    while frontier.size() < cp.size {
        let index = frontier.size();
        let truncated = LedgerError::Truncated {
            index,
            expected: cp.size,
        };
        // A line longer than any entry cannot be what was signed; the root check says so.
        let (offset, leaf) = match lines.next_line()? {
            Some(Line::Whole { offset, bytes }) => (offset, leaf_hash(bytes)),
            Some(Line::Long { offset, leaf, .. }) => (offset, leaf),
            Some(Line::Torn { .. }) | None => return Err(truncated),
        };
        derived.push(&mut frontier, offset, leaf)?;
        last = Some(leaf);
    }
    if frontier.root() != cp.root {
        return Err(LedgerError::EntryMismatch {
            index: 0,
            last: cp.size.saturating_sub(1),
            checkpoint: cp.size,
        });
    }
    derived.finish()?;
    Ok((frontier, lines.position(), last))
}

#[cfg(test)]
mod tests {
    //! Every state a writer killed mid-append can leave, written by hand: open must recover
    //! from each, keep every committed entry, and leave a ledger that verifies.
    use super::*;
    use crate::ledger::{verify, Outcome, Query, VerifyOptions};

    fn entry(n: u64) -> Entry {
        let digest = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(n.to_le_bytes()))
        );
        Entry::new(&format!("op-{n}"), &digest, "reg.test/m", Outcome::Admitted)
    }

    /// A ledger with `n` committed entries and its signer.
    fn ledger(n: u64) -> (tempfile::TempDir, PathBuf, LedgerSigner) {
        let t = tempfile::tempdir().expect("tmp");
        let dir = t.path().join("l");
        init(&dir, "test.example/l", b"pw").expect("init");
        let signer = LedgerSigner::load(&dir, b"pw").expect("key");
        let mut l = Ledger::open(&dir).expect("open");
        for i in 0..n {
            l.append(&entry(i), &signer).expect("append");
        }
        (t, dir, signer)
    }

    fn line(n: u64, index: u64) -> Vec<u8> {
        let mut e = entry(n);
        e.index = index;
        let mut l = e.to_line().expect("line");
        l.push(b'\n');
        l
    }

    fn add(path: &Path, bytes: &[u8]) {
        let mut f = fs_err::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(bytes).expect("write");
    }

    /// Opens (must succeed), checks the committed entries are the `n` written, appends one
    /// more, and verifies the whole ledger.
    fn recovers(dir: &Path, signer: &LedgerSigner, n: u64) -> Option<Recovery> {
        let mut l = Ledger::open(dir).expect("open after the crash");
        let rec = l.recovery().cloned();
        let found = l.find(&Query::All).expect("find");
        assert_eq!(found.unverified_reason, None);
        assert_eq!(found.matches.len() as u64, n);
        for (i, m) in found.matches.iter().enumerate() {
            assert_eq!(m.operator, format!("op-{i}"), "entry {i} lost or changed");
        }
        assert_eq!(l.append(&entry(n), signer).expect("append").index, n);
        drop(l);
        let report = verify(dir, &VerifyOptions::default()).expect("verify");
        assert!(report.is_ok(), "{:?}", report.problems);
        rec
    }

    #[test]
    fn open_recovers_a_half_written_line() {
        let (_t, dir, signer) = ledger(2);
        let committed = fs_err::read(dir.join(ENTRIES)).expect("read");
        let half = &line(2, 2)[..30];
        add(&dir.join(ENTRIES), half);
        let rec = recovers(&dir, &signer, 2).expect("recovery");
        assert!(rec.torn && rec.bytes == 30 && rec.offset == committed.len() as u64);
        assert_eq!(
            fs_err::read(rec.saved_to.expect("saved")).expect("saved"),
            half
        );
    }

    #[test]
    fn readers_skip_and_open_recovers_a_line_written_without_its_checkpoint() {
        let (_t, dir, signer) = ledger(2);
        add(&dir.join(ENTRIES), &line(9, 2));
        // Readers (replay check, receipt --ledger) see the committed entries only.
        let found = crate::ledger::find(&dir, &Query::All).expect("find");
        assert_eq!(found.unverified_reason, None);
        assert_eq!((found.matches.len(), found.uncommitted), (2, 1));
        let rec = recovers(&dir, &signer, 2).expect("recovery");
        assert_eq!((rec.complete_lines, rec.torn), (1, false));
    }

    #[test]
    fn open_removes_temporary_files_of_a_killed_writer() {
        let (_t, dir, signer) = ledger(1);
        let temps = [
            dir.join(".checkpoint.tmp"),
            dir.join(".tree-state.tmp"),
            dir.join(CHECKPOINTS).join(".1.tmp"),
            dir.join(PROBE),
        ];
        for t in &temps {
            fs_err::write(t, b"half a checkp").expect("write");
        }
        recovers(&dir, &signer, 1);
        for t in &temps {
            assert!(!t.exists(), "{} left", t.display());
        }
    }

    #[test]
    fn open_rebuilds_a_stale_or_missing_tree_state() {
        let (_t, dir, signer) = ledger(3);
        let old = fs_err::read(dir.join(STATE)).expect("state");
        Ledger::open(&dir)
            .expect("open")
            .append(&entry(3), &signer)
            .expect("append");
        // The state of size 3 put back after the append of entry 3: stale.
        fs_err::write(dir.join(STATE), &old).expect("write");
        recovers(&dir, &signer, 4);
        fs_err::remove_file(dir.join(STATE)).expect("rm");
        recovers(&dir, &signer, 5);
    }

    #[test]
    fn open_restores_the_numbered_copy_of_the_latest_checkpoint() {
        let (_t, dir, signer) = ledger(2);
        fs_err::remove_file(dir.join(CHECKPOINTS).join("2")).expect("rm");
        let rec = recovers(&dir, &signer, 2).expect("recovery");
        assert!(rec.restored_checkpoint);
    }

    #[test]
    fn a_recovery_killed_before_its_truncate_runs_again_without_a_second_copy() {
        let (_t, dir, signer) = ledger(1);
        add(&dir.join(ENTRIES), &line(7, 1));
        add(&dir.join(ENTRIES), b"{\"artif");
        // What the killed recovery saved before it could truncate.
        let l = Ledger::open(&dir).expect("open");
        let saved = l
            .recovery()
            .and_then(|r| r.saved_to.clone())
            .expect("saved");
        let bytes = fs_err::read(&saved).expect("read");
        drop(l);
        add(&dir.join(ENTRIES), &bytes);
        let rec = recovers(&dir, &signer, 1).expect("recovery");
        assert_eq!(rec.saved_to.as_deref(), Some(saved.as_path()));
        assert_eq!(
            fs_err::read_dir(dir.join(RECOVERED)).expect("ls").count(),
            1
        );
    }

    #[test]
    fn the_lock_of_a_dead_process_does_not_block() {
        let (_t, dir, signer) = ledger(1);
        // `flock` locks die with their process: a child that takes it and is killed.
        let mut child = std::process::Command::new("flock")
            .arg("--no-fork")
            .arg(dir.join(LOCK))
            .args(["sleep", "60"])
            .spawn()
            .expect("flock(1) from util-linux");
        let start = Instant::now();
        while acquire_lock(&dir.join(LOCK), true, Duration::ZERO).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "flock never took the lock"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let opts = OpenOptions {
            lock_timeout: Duration::from_secs(5),
            ..OpenOptions::default()
        };
        drop(Ledger::open_with(&dir, &opts).expect("open"));
        assert!(
            dir.join(LOCK).exists(),
            "the lock file stays; only the flock matters"
        );
        recovers(&dir, &signer, 1);
    }
}
