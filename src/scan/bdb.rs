//! A read-only reader for the Berkeley DB hash database that rpm < 4.16 keeps its packages in
//! (`var/lib/rpm/Packages` of RHEL/CentOS 5–8), after libdb's `dbinc/db_page.h`: just enough
//! to list the values of one file held in memory. Page 0 is the hash metadata page (magic,
//! page size, last page); hash pages (types 2 and 13) hold an index of alternating key and
//! value items; an rpm header never fits in a page, so its value is an off-page item (type 3:
//! first overflow page and total length) whose bytes follow a chain of overflow pages (type 7).
//!
//! Bounded: every page number is checked against the file, each overflow page belongs to at
//! most one chain (a cycle or a shared page is an error, not a hang or a second copy), and a
//! value is never longer than [`MAX_VALUE_BYTES`], so the values together never exceed the
//! file. Inline values are not headers (rpm's instance counter) and are skipped, as syft and
//! trivy (go-rpmdb) skip them.

/// The largest value (rpm header) read: rpm's own headers stay far below it (a kernel's file
/// list is a few MiB), and it bounds one allocation whatever a corrupt length field says.
pub const MAX_VALUE_BYTES: usize = 32 * 1024 * 1024;

const HASH_MAGIC: u32 = 0x0006_1561;
const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const H_OFFPAGE: u8 = 3;

/// Why the database could not be read. Offsets are bytes from the start of the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BdbError {
    /// Not a Berkeley DB hash database.
    #[error("not a Berkeley DB hash database (no hash magic at offset 12)")]
    NotHash,
    /// A page size Berkeley DB never writes.
    #[error("page size {0} at offset 20 is not a Berkeley DB page size")]
    PageSize(u32),
    /// Encrypted or checksummed pages, which rpm never writes.
    #[error("encrypted or checksummed pages (flags at offset 24) are not read")]
    Unsupported,
    /// A page number points past the end of the file.
    #[error(
        "page {page} (offset {offset}) is past the end of the file ({pages} pages): truncated?"
    )]
    Truncated {
        /// The page.
        page: u32,
        /// Its offset.
        offset: u64,
        /// Whole pages in the file.
        pages: u32,
    },
    /// The structure is inconsistent.
    #[error("corrupt at offset {offset} (page {page}): {what}")]
    Corrupt {
        /// The page.
        page: u32,
        /// Where.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
}

/// A hash database in memory, its metadata checked.
pub struct HashDb<'a> {
    bytes: &'a [u8],
    page_size: usize,
    last_page: u32,
    big_endian: bool,
}

impl<'a> HashDb<'a> {
    /// Checks the metadata page: magic (either byte order), page size, no encryption, and that
    /// the last page the metadata names is in the file.
    pub fn open(bytes: &'a [u8]) -> Result<Self, BdbError> {
        let word = |o: usize| -> Option<[u8; 4]> { bytes.get(o..o + 4)?.try_into().ok() };
        let magic = word(12).ok_or(BdbError::NotHash)?;
        let big_endian = if u32::from_le_bytes(magic) == HASH_MAGIC {
            false
        } else if u32::from_be_bytes(magic) == HASH_MAGIC {
            true
        } else {
            return Err(BdbError::NotHash);
        };
        let u32_at = |o: usize| {
            word(o).map(|w| {
                if big_endian {
                    u32::from_be_bytes(w)
                } else {
                    u32::from_le_bytes(w)
                }
            })
        };
        let page_size = u32_at(20).ok_or(BdbError::NotHash)?;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(BdbError::PageSize(page_size));
        }
        if bytes.get(25) != Some(&P_HASHMETA) {
            return Err(BdbError::NotHash);
        }
        // encrypt_alg (24) and metaflags (26, bit 0: checksums) change the page layout.
        if bytes.get(24) != Some(&0) || bytes.get(26).is_some_and(|f| f & 1 != 0) {
            return Err(BdbError::Unsupported);
        }
        let last_page = u32_at(32).ok_or(BdbError::NotHash)?;
        let db = HashDb {
            bytes,
            page_size: page_size as usize,
            last_page,
            big_endian,
        };
        db.page(last_page)?;
        Ok(db)
    }

    fn pages(&self) -> u32 {
        u32::try_from(self.bytes.len() / self.page_size).unwrap_or(u32::MAX)
    }

    fn offset(&self, page: u32) -> u64 {
        u64::from(page) * self.page_size as u64
    }

    fn page(&self, page: u32) -> Result<&'a [u8], BdbError> {
        let start = page as usize * self.page_size;
        self.bytes
            .get(start..start + self.page_size)
            .ok_or(BdbError::Truncated {
                page,
                offset: self.offset(page),
                pages: self.pages(),
            })
    }

    fn u16_at(&self, p: &[u8], o: usize) -> u16 {
        let w = [p[o], p[o + 1]];
        if self.big_endian {
            u16::from_be_bytes(w)
        } else {
            u16::from_le_bytes(w)
        }
    }

    fn u32_at(&self, p: &[u8], o: usize) -> u32 {
        let w = [p[o], p[o + 1], p[o + 2], p[o + 3]];
        if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    }

    /// Every off-page value of every hash page, in page order, each with the file offset of
    /// its item (for error messages about what it holds).
    pub fn values(&self) -> Result<Vec<(u64, Vec<u8>)>, BdbError> {
        let mut used = vec![false; self.last_page as usize + 1];
        let mut out = Vec::new();
        for n in 1..=self.last_page {
            let page = self.page(n)?;
            if page[25] != P_HASH && page[25] != P_HASH_UNSORTED {
                continue;
            }
            let corrupt = |at: usize, what| BdbError::Corrupt {
                page: n,
                offset: self.offset(n) + at as u64,
                what,
            };
            let entries = usize::from(self.u16_at(page, 20));
            if PAGE_HEADER + entries * 2 > self.page_size {
                return Err(corrupt(20, "more index entries than fit in the page"));
            }
            // Items alternate key, value: the values are the odd ones.
            for i in (1..entries).step_by(2) {
                let at = usize::from(self.u16_at(page, PAGE_HEADER + i * 2));
                if at + 12 > self.page_size {
                    if page.get(at) == Some(&H_OFFPAGE) || at >= self.page_size {
                        return Err(corrupt(PAGE_HEADER + i * 2, "item offset past the page"));
                    }
                    continue;
                }
                if page[at] != H_OFFPAGE {
                    continue;
                }
                let first = self.u32_at(page, at + 4);
                let len = self.u32_at(page, at + 8) as usize;
                if len > MAX_VALUE_BYTES {
                    return Err(corrupt(at + 8, "value longer than the 32 MiB limit"));
                }
                let value = self.overflow_chain(first, len, &mut used)?;
                out.push((self.offset(n) + at as u64, value));
            }
        }
        Ok(out)
    }

    /// The `len` bytes of the overflow chain starting at `first`, marking its pages used.
    fn overflow_chain(
        &self,
        first: u32,
        len: usize,
        used: &mut [bool],
    ) -> Result<Vec<u8>, BdbError> {
        let mut value = Vec::with_capacity(len.min(self.bytes.len()));
        let mut next = first;
        while value.len() < len {
            let n = next;
            let corrupt = |at: usize, what| BdbError::Corrupt {
                page: n,
                offset: self.offset(n) + at as u64,
                what,
            };
            if n == 0 || n > self.last_page {
                return Err(corrupt(0, "overflow chain ends before the value's length"));
            }
            let page = self.page(n)?;
            let seen = &mut used[n as usize];
            if *seen {
                return Err(corrupt(
                    0,
                    "overflow page already read (cyclic or shared chain)",
                ));
            }
            *seen = true;
            if page[25] != P_OVERFLOW {
                return Err(corrupt(
                    25,
                    "overflow chain reaches a page that is not overflow",
                ));
            }
            // An overflow page's hf_offset field holds how many bytes it carries.
            let here = usize::from(self.u16_at(page, 22));
            if PAGE_HEADER + here > self.page_size || value.len() + here > len {
                return Err(corrupt(
                    22,
                    "overflow page longer than the page or the value",
                ));
            }
            value.extend_from_slice(&page[PAGE_HEADER..PAGE_HEADER + here]);
            next = self.u32_at(page, 16);
        }
        Ok(value)
    }
}
