//! A read-only reader for rpm's own "ndb" package database (`Packages.db`, rpm ≥ 4.16's
//! `lib/backend/ndb/rpmpkg.c`; the default of SUSE since SLE 15 SP3), held in memory. All
//! little-endian: a 32-byte header (`RpmP`, version 0, generation, slot page count), then
//! 4096-byte slot pages of 16-byte slots (`Slot`, package index, block offset, block count;
//! index 0 is a free slot), each naming a run of 16-byte blocks that holds a blob head
//! (`BlbS`, package index, generation, length), the blob (an rpm header), and at the run's end
//! a tail (Adler-32 of the run up to the tail, length, `BlbE`).
//!
//! Bounded: the slot pages and every run are checked against the file before they are read,
//! and each blob is borrowed from the file, not copied. The checksum is checked, so a damaged
//! blob is named rather than parsed.

const HEADER_MAGIC: &[u8; 4] = b"RpmP";
const SLOT_MAGIC: &[u8; 4] = b"Slot";
const HEAD_MAGIC: &[u8; 4] = b"BlbS";
const TAIL_MAGIC: &[u8; 4] = b"BlbE";
const HEADER: usize = 32;
const SLOT_PAGE: usize = 4096;
const SLOT: usize = 16;
const BLOCK: usize = 16;
const BLOB_HEAD: usize = 16;
const BLOB_TAIL: usize = 12;

/// Why the database could not be read. Offsets are bytes from the start of the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NdbError {
    /// Not an ndb package database.
    #[error("not an rpm ndb database (no `RpmP` version 0 header)")]
    NotNdb,
    /// Something the file names lies past its end.
    #[error("{what} at offset {offset} ends past the end of the file ({len} bytes): truncated?")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// The file's length.
        len: u64,
    },
    /// The structure is inconsistent.
    #[error("corrupt at offset {offset}: {what}")]
    Corrupt {
        /// Where.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// RFC 1950's Adler-32, the checksum rpm writes in each blob's tail.
fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that can be summed before the u32 sums must be reduced.
    for chunk in bytes.chunks(5552) {
        for &c in chunk {
            a += u32::from(c);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Every package blob (rpm header) of the database, in slot order, each with the offset of its
/// block run (for error messages about what it holds).
pub fn blobs(bytes: &[u8]) -> Result<Vec<(u64, &[u8])>, NdbError> {
    let len = bytes.len() as u64;
    if bytes.get(..4) != Some(HEADER_MAGIC.as_slice())
        || bytes.len() < HEADER
        || u32_at(bytes, 4) != 0
    {
        return Err(NdbError::NotNdb);
    }
    let slot_pages = u32_at(bytes, 12) as usize;
    let slots_end = slot_pages.saturating_mul(SLOT_PAGE);
    if slot_pages == 0 {
        return Err(NdbError::Corrupt {
            offset: 12,
            what: "no slot pages",
        });
    }
    if slots_end > bytes.len() {
        return Err(NdbError::Truncated {
            what: "the slot pages",
            offset: HEADER as u64,
            len,
        });
    }
    let mut out = Vec::new();
    for at in (HEADER..slots_end).step_by(SLOT) {
        let corrupt = |offset: usize, what| NdbError::Corrupt {
            offset: offset as u64,
            what,
        };
        if &bytes[at..at + 4] != SLOT_MAGIC {
            return Err(corrupt(at, "slot without its `Slot` magic"));
        }
        let index = u32_at(bytes, at + 4);
        if index == 0 {
            continue; // a free slot
        }
        let start = u32_at(bytes, at + 8) as usize * BLOCK;
        let run = u32_at(bytes, at + 12) as usize * BLOCK;
        if start < slots_end || run < BLOB_HEAD + BLOB_TAIL {
            return Err(corrupt(
                at + 8,
                "slot names blocks inside the slot pages or too few",
            ));
        }
        let Some(blocks) = bytes.get(start..start.saturating_add(run)) else {
            return Err(NdbError::Truncated {
                what: "a package's blocks",
                offset: start as u64,
                len,
            });
        };
        if &blocks[..4] != HEAD_MAGIC || u32_at(blocks, 4) != index {
            return Err(corrupt(
                start,
                "blob head without `BlbS` or of another package",
            ));
        }
        let blob_len = u32_at(blocks, 12) as usize;
        if BLOB_HEAD + blob_len > run - BLOB_TAIL {
            return Err(corrupt(start + 12, "blob longer than its blocks"));
        }
        let tail = run - BLOB_TAIL;
        if &blocks[tail + 8..] != TAIL_MAGIC || u32_at(blocks, tail + 4) as usize != blob_len {
            return Err(corrupt(
                start + tail,
                "blob tail without `BlbE` or of another length",
            ));
        }
        if adler32(&blocks[..tail]) != u32_at(blocks, tail) {
            return Err(corrupt(start + tail, "blob checksum does not match"));
        }
        out.push((start as u64, &blocks[BLOB_HEAD..BLOB_HEAD + blob_len]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_rfc1950_examples() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
        // Past one reduction chunk, against zlib's value for 100 000 bytes of 0xff.
        assert_eq!(adler32(&[0xff; 100_000]), 0x149a_302c);
    }
}
