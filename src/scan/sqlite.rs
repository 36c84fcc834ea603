//! A read-only reader for the SQLite file format (<https://www.sqlite.org/fileformat2.html>),
//! just enough to list the rows of one table of a database held in memory: the rpm database of
//! RHEL/UBI 8+ and Fedora (`rpmdb.sqlite`). Pure Rust and bounded: every page number is checked
//! against the file, each page is visited at most once (a cycle is an error, not a hang), and a
//! payload is never longer than the file. Uncommitted `-wal` content is not read (an image's
//! rpm database is closed, so checkpointed).

use std::collections::HashSet;

/// Why the database could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqliteError {
    /// Not an SQLite 3 file.
    #[error("not an SQLite 3 database")]
    NotSqlite,
    /// A page number points past the end of the file.
    #[error("page {page} is past the end of the file ({pages} pages): truncated?")]
    Truncated {
        /// The page.
        page: u64,
        /// Pages in the file.
        pages: u64,
    },
    /// The structure is inconsistent.
    #[error("corrupt at page {page}: {what}")]
    Corrupt {
        /// The page.
        page: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// No such table.
    #[error("no table `{0}`")]
    NoTable(String),
}

/// One column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL (also an `INTEGER PRIMARY KEY` column, stored as the rowid).
    Null,
    /// An integer.
    Int(i64),
    /// A float, as its bits.
    Float(u64),
    /// Text (bytes as stored).
    Text(Vec<u8>),
    /// A blob.
    Blob(Vec<u8>),
}

/// A database file in memory.
pub struct Db<'a> {
    bytes: &'a [u8],
    page_size: usize,
    usable: usize,
    pages: u64,
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x: u64 = 0;
    for i in 0..9 {
        let c = *b.get(i)?;
        if i == 8 {
            return Some(((x << 8) | u64::from(c), 9));
        }
        x = (x << 7) | u64::from(c & 0x7f);
        if c < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, &c| (a << 8) | u64::from(c))
}

impl<'a> Db<'a> {
    /// Checks the header.
    pub fn open(bytes: &'a [u8]) -> Result<Db<'a>, SqliteError> {
        if bytes.len() < 100 || &bytes[..16] != b"SQLite format 3\0" {
            return Err(SqliteError::NotSqlite);
        }
        let page_size = match be(&bytes[16..18]) {
            1 => 65536,
            n if (512..=32768).contains(&n) && n.is_power_of_two() => n as usize,
            _ => return Err(SqliteError::NotSqlite),
        };
        let reserved = usize::from(bytes[20]);
        if page_size - reserved < 480 {
            return Err(SqliteError::NotSqlite);
        }
        Ok(Db {
            bytes,
            page_size,
            usable: page_size - reserved,
            pages: (bytes.len() / page_size) as u64,
        })
    }

    fn page(&self, n: u64) -> Result<&'a [u8], SqliteError> {
        if n == 0 || n > self.pages {
            return Err(SqliteError::Truncated {
                page: n,
                pages: self.pages,
            });
        }
        let start = (n as usize - 1) * self.page_size;
        Ok(&self.bytes[start..start + self.page_size])
    }

    /// Every row of a table, in rowid order: the record's columns.
    pub fn rows(&self, table: &str) -> Result<Vec<Vec<Value>>, SqliteError> {
        let schema = self.table_rows(1)?;
        let root = schema
            .iter()
            .find(|r| {
                r.first() == Some(&Value::Text(b"table".to_vec()))
                    && r.get(1) == Some(&Value::Text(table.as_bytes().to_vec()))
            })
            .and_then(|r| match r.get(3) {
                Some(Value::Int(n)) if *n > 0 => Some(*n as u64),
                _ => None,
            })
            .ok_or_else(|| SqliteError::NoTable(table.to_string()))?;
        self.table_rows(root)
    }

    fn table_rows(&self, root: u64) -> Result<Vec<Vec<Value>>, SqliteError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![root];
        // Depth-first, right child pushed first so rows come out in key order.
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                return Err(SqliteError::Corrupt {
                    page: n,
                    what: "page reached twice (cycle)",
                });
            }
            let page = self.page(n)?;
            let h = if n == 1 { 100 } else { 0 };
            let corrupt = |what| SqliteError::Corrupt { page: n, what };
            let hdr = page.get(h..h + 12).ok_or(corrupt("short header"))?;
            let kind = hdr[0];
            let cells = be(&hdr[3..5]) as usize;
            let (ptrs, interior) = match kind {
                0x0d => (h + 8, false),
                0x05 => (h + 12, true),
                _ => return Err(corrupt("not a table b-tree page")),
            };
            let ptr_bytes = page
                .get(ptrs..ptrs + 2 * cells)
                .ok_or(corrupt("cell pointers past the page"))?;
            let offsets: Vec<usize> = ptr_bytes.chunks(2).map(|c| be(c) as usize).collect();
            if interior {
                stack.push(be(&hdr[8..12]));
                for &o in offsets.iter().rev() {
                    let c = page.get(o..o + 4).ok_or(corrupt("cell past the page"))?;
                    stack.push(be(c));
                }
            } else {
                for &o in &offsets {
                    let cell = page.get(o..).ok_or(corrupt("cell past the page"))?;
                    let payload = self.payload(n, cell, &mut seen)?;
                    out.push(record(&payload).ok_or(corrupt("malformed record"))?);
                }
            }
        }
        Ok(out)
    }

    /// A leaf cell's payload, following overflow pages.
    fn payload(
        &self,
        n: u64,
        cell: &[u8],
        seen: &mut HashSet<u64>,
    ) -> Result<Vec<u8>, SqliteError> {
        let corrupt = |what| SqliteError::Corrupt { page: n, what };
        let (len, a) = varint(cell).ok_or(corrupt("bad payload length"))?;
        let (_rowid, b) = varint(&cell[a..]).ok_or(corrupt("bad rowid"))?;
        if len > self.bytes.len() as u64 {
            return Err(corrupt("payload longer than the file"));
        }
        let len = len as usize;
        let body = &cell[a + b..];
        let u = self.usable;
        let x = u - 35;
        let local = if len <= x {
            len
        } else {
            let m = (u - 12) * 32 / 255 - 23;
            let k = m + (len - m) % (u - 4);
            if k <= x {
                k
            } else {
                m
            }
        };
        let mut out = body
            .get(..local)
            .ok_or(corrupt("payload past the page"))?
            .to_vec();
        if local < len {
            let mut next = be(body
                .get(local..local + 4)
                .ok_or(corrupt("overflow pointer past the page"))?);
            while out.len() < len {
                if !seen.insert(next) {
                    return Err(SqliteError::Corrupt {
                        page: next,
                        what: "overflow page reached twice (cycle)",
                    });
                }
                let page = self.page(next)?;
                let take = (len - out.len()).min(u - 4);
                out.extend_from_slice(&page[4..4 + take]);
                next = be(&page[..4]);
            }
        }
        Ok(out)
    }
}

/// Decodes a record: header of serial types, then the values.
fn record(p: &[u8]) -> Option<Vec<Value>> {
    let (hlen, mut i) = varint(p)?;
    let hlen = usize::try_from(hlen).ok()?;
    let mut types = Vec::new();
    while i < hlen {
        let (t, n) = varint(p.get(i..hlen)?)?;
        types.push(t);
        i += n;
    }
    let mut at = hlen;
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let int = |n: usize, at: usize| -> Option<i64> {
            let b = p.get(at..at + n)?;
            let v = be(b);
            let shift = 64 - 8 * n as u32;
            Some(((v << shift) as i64) >> shift)
        };
        let (v, n) = match t {
            0 => (Value::Null, 0),
            1..=4 => {
                let n = t as usize;
                (Value::Int(int(n, at)?), n)
            }
            5 => (Value::Int(int(6, at)?), 6),
            6 => (Value::Int(int(8, at)?), 8),
            7 => (Value::Float(be(p.get(at..at + 8)?)), 8),
            8 => (Value::Int(0), 0),
            9 => (Value::Int(1), 0),
            10 | 11 => return None,
            t => {
                let n = usize::try_from((t - 12) / 2).ok()?;
                let b = p.get(at..at.checked_add(n)?)?.to_vec();
                (
                    if t % 2 == 0 {
                        Value::Blob(b)
                    } else {
                        Value::Text(b)
                    },
                    n,
                )
            }
        };
        out.push(v);
        at += n;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_records() {
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0x7f]), Some((127, 1)));
        // header len 3, types NULL and blob(2); body 0xAB 0xCD
        let r = record(&[3, 0, 16, 0xab, 0xcd]).expect("record");
        assert_eq!(r, vec![Value::Null, Value::Blob(vec![0xab, 0xcd])]);
        assert_eq!(record(&[3, 0, 16, 0xab]), None);
        assert_eq!(Db::open(b"nope").err(), Some(SqliteError::NotSqlite));
    }
}
