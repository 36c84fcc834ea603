//! Reads `entries.jsonl` line by line in bounded memory: a line is kept only up to
//! [`MAX_ENTRY_BYTES`]; a longer one (never a valid entry) is hashed as it streams past, so
//! the tree can still be recomputed, and reported by length.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::entry::MAX_ENTRY_BYTES;
use super::merkle::Hash;
use super::LedgerError;

/// One line of `entries.jsonl`.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// A line of at most [`MAX_ENTRY_BYTES`], without its newline.
    Whole {
        /// Byte offset of its start.
        offset: u64,
        /// Its bytes.
        bytes: &'a [u8],
    },
    /// A line longer than [`MAX_ENTRY_BYTES`]: not kept, only its leaf hash.
    Long {
        /// Byte offset of its start.
        offset: u64,
        /// Its length without the newline.
        len: u64,
        /// Its RFC 6962 leaf hash.
        leaf: Hash,
    },
    /// Bytes at the end of the file with no final newline (an interrupted write).
    Torn {
        /// Byte offset of their start.
        offset: u64,
        /// How many.
        len: u64,
    },
}

/// Streams the lines of a file.
pub(crate) struct LineReader {
    path: PathBuf,
    input: BufReader<fs_err::File>,
    buf: Vec<u8>,
    pos: u64,
    /// Bytes of `input`'s buffer the last line returned borrowed, consumed on the next call.
    lent: usize,
}

impl LineReader {
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let f = fs_err::File::open(path).map_err(|e| LedgerError::io("read", path, e))?;
        Ok(Self {
            path: path.to_owned(),
            input: BufReader::with_capacity(1 << 20, f),
            buf: Vec::new(),
            pos: 0,
            lent: 0,
        })
    }

    /// Byte offset just after the last line returned.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next line, `None` at the end of the file. A line that lies whole in the read
    /// buffer is lent from it, not copied.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, LedgerError> {
        self.input.consume(std::mem::take(&mut self.lent));
        let offset = self.pos;
        let chunk = self
            .input
            .fill_buf()
            .map_err(|e| LedgerError::io("read", &self.path, e))?;
        if let Some(i) = memchr::memchr(b'\n', chunk).filter(|&i| i <= MAX_ENTRY_BYTES) {
            self.lent = i + 1;
            self.pos += i as u64 + 1;
            return Ok(Some(Line::Whole {
                offset,
                bytes: &self.input.buffer()[..i],
            }));
        }
        self.buf.clear();
        let mut long: Option<sha2::Sha256> = None;
        let mut len = 0u64;
        let newline = loop {
            let chunk = self
                .input
                .fill_buf()
                .map_err(|e| LedgerError::io("read", &self.path, e))?;
            if chunk.is_empty() {
                break false;
            }
            let (take, found) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let part = &chunk[..take];
            len += take as u64;
            match long.as_mut() {
                Some(h) => h.update(part),
                None if self.buf.len() + take > MAX_ENTRY_BYTES => {
                    let mut h = sha2::Sha256::new();
                    h.update([0u8]);
                    h.update(&self.buf);
                    h.update(part);
                    self.buf.clear();
                    long = Some(h);
                }
                None => self.buf.extend_from_slice(part),
            }
            let used = take + usize::from(found);
            self.input.consume(used);
            if found {
                break true;
            }
        };
        if !newline {
            self.pos += len;
            return Ok((len > 0).then_some(Line::Torn { offset, len }));
        }
        self.pos += len + 1;
        Ok(Some(match long {
            Some(h) => Line::Long {
                offset,
                len,
                leaf: h.finalize().into(),
            },
            None => Line::Whole {
                offset,
                bytes: &self.buf,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::merkle::leaf_hash;

    #[test]
    fn lines_long_lines_and_a_torn_tail() {
        let t = tempfile::tempdir().expect("tmp");
        let p = t.path().join("e");
        let long = vec![b'x'; MAX_ENTRY_BYTES + 5];
        let mut data = b"a\n\n".to_vec();
        data.extend_from_slice(&long);
        data.extend_from_slice(b"\nb\ntorn");
        std::fs::write(&p, &data).expect("write");
        let mut r = LineReader::open(&p).expect("open");
        assert!(matches!(
            r.next_line(),
            Ok(Some(Line::Whole {
                offset: 0,
                bytes: b"a"
            }))
        ));
        assert!(matches!(
            r.next_line(),
            Ok(Some(Line::Whole {
                offset: 2,
                bytes: b""
            }))
        ));
        match r.next_line().expect("read") {
            Some(Line::Long { offset, len, leaf }) => {
                assert_eq!((offset, len), (3, long.len() as u64));
                assert_eq!(leaf, leaf_hash(&long));
            }
            other => panic!("{other:?}"),
        }
        let b_at = 3 + long.len() as u64 + 1;
        match r.next_line().expect("read") {
            Some(Line::Whole { offset, bytes }) => assert_eq!((offset, bytes), (b_at, &b"b"[..])),
            other => panic!("{other:?}"),
        }
        match r.next_line().expect("read") {
            Some(Line::Torn { offset, len }) => assert_eq!((offset, len), (b_at + 2, 4)),
            other => panic!("{other:?}"),
        }
        assert!(r.next_line().expect("end").is_none());
        assert_eq!(r.position(), data.len() as u64);
    }

    /// Lines lent from the read buffer and lines copied across its refills read the same as
    /// splitting the file at its newlines.
    #[test]
    fn lines_across_buffer_refills_read_as_split() {
        let t = tempfile::tempdir().expect("tmp");
        let p = t.path().join("e");
        let mut data = Vec::new();
        let mut want = Vec::new();
        for i in 0..5000usize {
            let line = vec![b'a' + (i % 26) as u8; (i * 7919) % 1500];
            want.push((data.len() as u64, line.clone()));
            data.extend_from_slice(&line);
            data.push(b'\n');
        }
        assert!(data.len() > 3 << 20, "spans several 1 MiB refills");
        std::fs::write(&p, &data).expect("write");
        let mut r = LineReader::open(&p).expect("open");
        for (offset, line) in &want {
            match r.next_line().expect("read") {
                Some(Line::Whole { offset: o, bytes }) => {
                    assert_eq!((o, bytes), (*offset, &line[..]));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(r.next_line().expect("end").is_none());
        assert_eq!(r.position(), data.len() as u64);
    }
}
