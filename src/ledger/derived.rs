//! The ledger's derived files, which make proofs O(log n) instead of a rehash of the log:
//!
//! * `tree-hashes`: every perfect-subtree hash of the tree, 32 bytes each, in stored-hash
//!   order ([`stored_hash_index`]), so any subtree is one seek away;
//! * `entry-offsets`: the byte offset in `entries.jsonl` of each entry line, 8 bytes
//!   little-endian each, so an entry is one seek away.
//!
//! Both grow by appends after the commit point and are never trusted: [`Ledger::open`]
//! checks their lengths and the subtrees of the tree's right edge against the signed
//! checkpoint (O(log n)) and rebuilds both from `entries.jsonl` when anything disagrees; a
//! proof made from them is checked against the signed root before it is handed out, and
//! recomputed from `entries.jsonl` when it does not verify. An old ledger without them gets
//! them at its next open.
//!
//! [`Ledger::open`]: super::Ledger::open

use std::cell::Cell;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use super::entry::MAX_ENTRY_BYTES;
use super::merkle::{leaf_hash, stored_hash_count, stored_hash_index, Frontier, Hash, Subtrees};
use super::store::ENTRIES;
use super::LedgerError;

/// Every perfect-subtree hash, in stored-hash order.
pub const TREE_HASHES: &str = "tree-hashes";
/// The byte offset of each entry line, `u64` little-endian.
pub const ENTRY_OFFSETS: &str = "entry-offsets";

/// The tree read from `tree-hashes`, one positioned read per subtree.
pub(crate) struct StoredTree {
    file: std::fs::File,
    size: u64,
    failed: Cell<bool>,
}

impl StoredTree {
    /// Opens `tree-hashes` for a tree of `size` leaves; `None` when it is missing or shorter
    /// than such a tree needs.
    pub fn open(dir: &Path, size: u64) -> Option<Self> {
        let file = std::fs::File::open(dir.join(TREE_HASHES)).ok()?;
        let len = file.metadata().ok()?.len();
        (len >= stored_hash_count(size) * 32).then(|| Self {
            file,
            size,
            failed: Cell::new(false),
        })
    }

    /// Whether a read failed (the hashes handed out since are meaningless).
    pub fn failed(&self) -> bool {
        self.failed.get()
    }
}

impl Subtrees for StoredTree {
    fn size(&self) -> u64 {
        self.size
    }

    fn subtree(&self, level: u32, index: u64) -> Hash {
        let mut h = [0u8; 32];
        let at = stored_hash_index(level, index) * 32;
        if self.file.read_exact_at(&mut h, at).is_err() {
            self.failed.set(true);
        }
        h
    }
}

/// Reads entry line `index` (without its newline) through `entry-offsets`, with its offset:
/// `None` unless the offset points just after a newline (or at 0) and a whole line of at most
/// [`MAX_ENTRY_BYTES`] starts there. The caller still checks the line's leaf hash against a
/// signed root.
pub(crate) fn entry_line(dir: &Path, index: u64) -> Option<(u64, Vec<u8>)> {
    let offsets = std::fs::File::open(dir.join(ENTRY_OFFSETS)).ok()?;
    let mut raw = [0u8; 8];
    offsets
        .read_exact_at(&mut raw, index.checked_mul(8)?)
        .ok()?;
    let offset = u64::from_le_bytes(raw);
    let entries = std::fs::File::open(dir.join(ENTRIES)).ok()?;
    let start = offset.saturating_sub(1);
    // Read in growing steps until the line's newline: an entry is usually a few KiB, and
    // reading the whole cap (4 MiB) each time would dominate `prove`.
    let cap = MAX_ENTRY_BYTES + 2;
    let body = usize::from(offset != 0);
    let mut buf = Vec::new();
    let mut step = 64 * 1024;
    loop {
        let scanned = buf.len();
        let want = cap.min(scanned + step);
        buf.resize(want, 0);
        let mut filled = scanned;
        while filled < want {
            match entries.read_at(&mut buf[filled..], start + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        buf.truncate(filled);
        // Not just after a newline: not the start of a line.
        if body == 1 && buf.first() != Some(&b'\n') {
            return None;
        }
        let from = scanned.max(body);
        if let Some(i) = memchr::memchr(b'\n', buf.get(from..)?) {
            return Some((offset, buf[body..from + i].to_vec()));
        }
        // The end of the file, or the cap, without a newline: no whole line starts here.
        if filled < want || filled >= cap {
            return None;
        }
        step *= 4;
    }
}

/// Appends to the derived files (held by the writer).
#[derive(Debug)]
pub(crate) struct DerivedWriter {
    hashes: std::fs::File,
    offsets: std::fs::File,
}

impl DerivedWriter {
    /// Opens both files for appending, after [`check`] or [`Rebuild::finish`].
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        let open = |name: &str| {
            let p = dir.join(name);
            std::fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .map_err(|e| LedgerError::io("open", &p, e))
        };
        Ok(Self {
            hashes: open(TREE_HASHES)?,
            offsets: open(ENTRY_OFFSETS)?,
        })
    }

    /// Records appended lines: their offsets and the hashes they completed.
    pub fn append(&mut self, offsets: &[u64], hashes: &[Hash]) -> std::io::Result<()> {
        let raw: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        self.offsets.write_all(&raw)?;
        self.hashes.write_all(hashes.as_flattened())
    }
}

/// Whether the derived files describe the committed tree: `frontier` (checked against the
/// signed checkpoint), whose last line ends at `end` and has leaf hash `last_leaf`.
/// O(log n) reads.
pub(crate) fn check(dir: &Path, frontier: &Frontier, end: u64, last_leaf: Option<Hash>) -> bool {
    let size = frontier.size();
    let lens = |name: &str| std::fs::metadata(dir.join(name)).map(|m| m.len()).ok();
    if lens(TREE_HASHES) != Some(stored_hash_count(size) * 32)
        || lens(ENTRY_OFFSETS) != Some(size * 8)
    {
        return false;
    }
    let Some(tree) = StoredTree::open(dir, size) else {
        return false;
    };
    // The right edge: one perfect subtree per set bit of the size, largest first.
    let mut start = 0u64;
    for (bit, want) in (0..64u32)
        .rev()
        .filter(|b| size >> b & 1 == 1)
        .zip(frontier.hashes())
    {
        if tree.subtree(bit, start >> bit) != *want {
            return false;
        }
        start += 1 << bit;
    }
    if tree.failed() {
        return false;
    }
    match size.checked_sub(1) {
        None => true,
        Some(last) => entry_line(dir, last).is_some_and(|(o, line)| {
            o + line.len() as u64 + 1 == end && Some(leaf_hash(&line)) == last_leaf
        }),
    }
}

/// Rewrites both derived files from scratch (temporary names, renamed by [`Rebuild::finish`]),
/// fed one committed line at a time.
pub(crate) struct Rebuild {
    dir: std::path::PathBuf,
    hashes: std::io::BufWriter<std::fs::File>,
    offsets: std::io::BufWriter<std::fs::File>,
}

impl Rebuild {
    pub fn start(dir: &Path) -> Result<Self, LedgerError> {
        let create = |name: &str| {
            let p = dir.join(format!(".{name}.tmp"));
            std::fs::File::create(&p)
                .map(|f| std::io::BufWriter::with_capacity(1 << 16, f))
                .map_err(|e| LedgerError::io("create", &p, e))
        };
        Ok(Self {
            dir: dir.to_owned(),
            hashes: create(TREE_HASHES)?,
            offsets: create(ENTRY_OFFSETS)?,
        })
    }

    /// Adds the line starting at `offset` whose leaf hash is `leaf`, pushing it onto
    /// `frontier`.
    pub fn push(
        &mut self,
        frontier: &mut Frontier,
        offset: u64,
        leaf: Hash,
    ) -> Result<(), LedgerError> {
        let mut err = None;
        let hashes = &mut self.hashes;
        frontier.push_stored(leaf, |h| {
            if let Err(e) = hashes.write_all(h) {
                err.get_or_insert(e);
            }
        });
        if let Some(e) = err {
            return Err(LedgerError::io("write", self.dir.join(TREE_HASHES), e));
        }
        self.offsets
            .write_all(&offset.to_le_bytes())
            .map_err(|e| LedgerError::io("write", self.dir.join(ENTRY_OFFSETS), e))
    }

    /// Flushes and renames both files into place.
    pub fn finish(self) -> Result<(), LedgerError> {
        for (name, w) in [(TREE_HASHES, self.hashes), (ENTRY_OFFSETS, self.offsets)] {
            let tmp = self.dir.join(format!(".{name}.tmp"));
            w.into_inner()
                .map_err(|e| LedgerError::io("write", &tmp, e.into_error()))?;
            let dest = self.dir.join(name);
            std::fs::rename(&tmp, &dest).map_err(|e| LedgerError::io("rename", &dest, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_line_finds_lines_of_any_length_up_to_the_cap() {
        let dir = tempfile::tempdir().expect("tmp");
        let lens = [
            10,
            100_000,
            300_000,
            MAX_ENTRY_BYTES,
            MAX_ENTRY_BYTES + 1,
            5,
        ];
        let (mut entries, mut offsets) = (Vec::new(), Vec::new());
        for (i, &n) in lens.iter().enumerate() {
            offsets.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            entries.extend(std::iter::repeat_n(b'a' + i as u8, n));
            entries.push(b'\n');
        }
        // An offset that is not just after a newline.
        offsets.extend_from_slice(&3u64.to_le_bytes());
        std::fs::write(dir.path().join(ENTRIES), &entries).expect("entries");
        std::fs::write(dir.path().join(ENTRY_OFFSETS), &offsets).expect("offsets");
        let mut at = 0u64;
        for (i, &n) in lens.iter().enumerate() {
            let got = entry_line(dir.path(), i as u64);
            if n > MAX_ENTRY_BYTES {
                assert!(got.is_none(), "line {i} is over the cap");
            } else {
                let (offset, line) = got.expect("line");
                assert_eq!(offset, at);
                assert_eq!(line, vec![b'a' + i as u8; n], "line {i}");
            }
            at += n as u64 + 1;
        }
        assert!(entry_line(dir.path(), lens.len() as u64).is_none());
        assert!(entry_line(dir.path(), lens.len() as u64 + 1).is_none());
        // A last line cut before its newline is not a line.
        std::fs::write(dir.path().join(ENTRIES), &entries[..entries.len() - 1]).expect("cut");
        assert!(entry_line(dir.path(), lens.len() as u64 - 1).is_none());
    }
}
