//! Seekable zstd: how a bundle's compressed stream is cut into frames so `serve` can start
//! decoding near any offset, and how the frames are found again without decompressing.
//!
//! The writer ends a zstd frame before every tar entry and every [`FRAME_BYTES`] inside an entry,
//! and compresses each frame in one call, so its header carries the frame content size. Frames
//! one after another are still one plain zstd stream (`zstd -d`, `tar -I zstd` read it as
//! before), and the cut points depend only on the content, so bundles stay byte-reproducible.
//! [`index_frames`] walks frame and block headers (3 bytes per ≤128 KiB block, nothing
//! decompressed) and returns each frame's compressed and uncompressed offsets. A frame without a
//! content size (bundles written before this change are one such frame) ends the index there:
//! reads past it decode from its start.
//!
//! A frame whose content does not compress (gzip or zstd layers, the bulk of a bundle) is
//! written as a *stored* frame: raw blocks, its content size and xxh64 checksum, built here
//! without running the compressor at all. zstd would reach nearly the same bytes (it falls back
//! to raw blocks when a block does not shrink) only after searching every block for matches and
//! copying it twice; the decision is made by trial-compressing the frame's first block, so it
//! depends on the content alone and bundles stay reproducible.

use std::io::{self, Write};

/// The most uncompressed bytes in one frame: the most a random read decodes and throws away.
pub const FRAME_BYTES: usize = 4 * 1024 * 1024;

/// The largest block of a frame (zstd's `Block_Maximum_Size`), also the trial sample.
const BLOCK_BYTES: usize = 128 * 1024;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames use magics `0x184D2A50..=0x184D2A5F`.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// A zstd writer that ends a frame every [`FRAME_BYTES`] and on [`FrameWriter::end_frame`],
/// each frame compressed whole (so its header records its content size).
pub struct FrameWriter<W: Write> {
    inner: W,
    compressor: zstd::bulk::Compressor<'static>,
    /// Single-threaded, same level: tries the first block of each frame.
    trial: zstd::bulk::Compressor<'static>,
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    /// A writer with the bundle's fixed parameters: `level`, `workers` (the output depends on
    /// neither the machine nor the timing), and a checksum in every frame.
    pub fn new(inner: W, level: i32, workers: u32) -> io::Result<Self> {
        let mut compressor = zstd::bulk::Compressor::new(level)?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::NbWorkers(workers))?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))?;
        Ok(FrameWriter {
            inner,
            compressor,
            trial: zstd::bulk::Compressor::new(level)?,
            pending: Vec::with_capacity(FRAME_BYTES),
            out: Vec::new(),
        })
    }

    /// Compresses what is pending as one frame (nothing when nothing is pending).
    pub fn end_frame(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.out.clear();
        let sample = &self.pending[..self.pending.len().min(BLOCK_BYTES)];
        self.out
            .reserve(zstd::zstd_safe::compress_bound(sample.len()));
        self.trial.compress_to_buffer(sample, &mut self.out)?;
        if compresses(sample.len(), self.out.len()) {
            self.out.clear();
            self.out
                .reserve(zstd::zstd_safe::compress_bound(self.pending.len()));
            self.compressor
                .compress_to_buffer(&self.pending, &mut self.out)?;
            self.inner.write_all(&self.out)?;
        } else {
            write_stored_frame(&mut self.inner, &self.pending)?;
        }
        self.pending.clear();
        Ok(())
    }

    /// Ends the last frame and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_frame()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(FRAME_BYTES - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == FRAME_BYTES {
            self.end_frame()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether a trial that turned `sample` bytes into `compressed` saved enough (3 %) to be worth
/// compressing the frame.
fn compresses(sample: usize, compressed: usize) -> bool {
    compressed.saturating_mul(100) < sample.saturating_mul(97)
}

/// Writes `content` (at most [`FRAME_BYTES`], not empty) as one zstd frame of raw blocks: the
/// header records the content size (single segment, so no window descriptor) and a checksum,
/// as the compressor's frames do, so decoders and [`index_frames`] treat both alike.
fn write_stored_frame<W: Write>(out: &mut W, content: &[u8]) -> io::Result<()> {
    debug_assert!(!content.is_empty() && content.len() <= FRAME_BYTES);
    let size = u32::try_from(content.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut header = [0u8; 9];
    header[..4].copy_from_slice(&ZSTD_MAGIC.to_le_bytes());
    // Frame_Header_Descriptor: 4-byte content size (0b10 << 6), single segment (0x20),
    // checksum (0x04), no dictionary.
    header[4] = (2 << 6) | 0x20 | 0x04;
    header[5..].copy_from_slice(&size.to_le_bytes());
    out.write_all(&header)?;
    let mut blocks = content.chunks(BLOCK_BYTES).peekable();
    while let Some(block) = blocks.next() {
        let last = u32::from(blocks.peek().is_none());
        // Block_Header: last flag, type 0 (raw), size; 3 bytes little-endian.
        let h = last | ((block.len() as u32) << 3);
        out.write_all(&h.to_le_bytes()[..3])?;
        out.write_all(block)?;
    }
    let checksum = xxhash_rust::xxh64::xxh64(content, 0) as u32;
    out.write_all(&checksum.to_le_bytes())
}

/// Where a frame starts, compressed and uncompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the frame's first byte in the compressed stream.
    pub compressed: u64,
    /// Offset of its first decoded byte in the uncompressed stream.
    pub uncompressed: u64,
}

/// The frames of a stream, in order. `complete` is false when a frame without a content size
/// stopped the walk: its uncompressed extent, and any frame after it, is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameIndex {
    /// Every frame found, by offset.
    pub frames: Vec<Frame>,
    /// The stream's uncompressed length, when every frame recorded its size.
    pub uncompressed_len: Option<u64>,
}

impl FrameIndex {
    /// The last frame starting at or before uncompressed offset `at`.
    pub fn frame_for(&self, at: u64) -> Frame {
        let i = self.frames.partition_point(|f| f.uncompressed <= at);
        self.frames
            .get(i.saturating_sub(1))
            .copied()
            .unwrap_or(Frame {
                compressed: 0,
                uncompressed: 0,
            })
    }
}

/// Why frame headers could not be walked.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Reading the stream failed.
    #[error("reading the zstd stream at byte {offset}: {source}")]
    Io {
        /// Compressed offset.
        offset: u64,
        /// The error.
        source: io::Error,
    },
    /// Something that is not a zstd frame, or a frame cut short.
    #[error("not a valid zstd frame at byte {offset}: {why}")]
    Malformed {
        /// Compressed offset.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
}

/// Random access to the compressed bytes: a file, or parts read as one.
pub trait ReadAt {
    /// Fills `buf` from `offset`; fewer bytes only at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The total length.
    fn len(&self) -> u64;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn read_exact_at(src: &dyn ReadAt, offset: u64, buf: &mut [u8]) -> Result<(), FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = src
            .read_at(offset + filled as u64, &mut buf[filled..])
            .map_err(|source| FrameError::Io { offset, source })?;
        if n == 0 {
            return Err(FrameError::Malformed {
                offset,
                why: "the stream ends inside a frame",
            });
        }
        filled += n;
    }
    Ok(())
}

/// Walks every frame and block header of `src` (nothing is decompressed) and indexes the frames.
pub fn index_frames(src: &dyn ReadAt) -> Result<FrameIndex, FrameError> {
    let total = src.len();
    let mut frames = Vec::new();
    let mut at = 0u64;
    let mut uncompressed = 0u64;
    while at < total {
        let mut magic = [0u8; 4];
        read_exact_at(src, at, &mut magic)?;
        let magic = u32::from_le_bytes(magic);
        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
            let mut len = [0u8; 4];
            read_exact_at(src, at + 4, &mut len)?;
            at += 8 + u64::from(u32::from_le_bytes(len));
            continue;
        }
        if magic != ZSTD_MAGIC {
            return Err(FrameError::Malformed {
                offset: at,
                why: "bad magic number",
            });
        }
        let (header_len, content_size, checksum) = frame_header(src, at)?;
        frames.push(Frame {
            compressed: at,
            uncompressed,
        });
        let Some(size) = content_size else {
            return Ok(FrameIndex {
                frames,
                uncompressed_len: None,
            });
        };
        uncompressed += size;
        let start = at;
        at = skip_blocks(src, at + header_len, at)? + if checksum { 4 } else { 0 };
        if at > total {
            return Err(FrameError::Malformed {
                offset: start,
                why: "the stream ends inside a frame",
            });
        }
    }
    Ok(FrameIndex {
        frames,
        uncompressed_len: Some(uncompressed),
    })
}

/// From a frame header's descriptor byte: the length of its window descriptor (0 or 1) and of
/// its content-size field (0, 1, 2, 4 or 8; a 2-byte field holds the size minus 256).
pub(crate) fn header_layout(descriptor: u8) -> (usize, usize) {
    let single_segment = descriptor & 0x20 != 0;
    let fcs_len = match (descriptor >> 6, single_segment) {
        (0, true) => 1,
        (0, false) => 0,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    (usize::from(!single_segment), fcs_len)
}

/// Reads a frame header at `at`: its length, the content size if recorded, and whether a
/// checksum follows the blocks.
fn frame_header(src: &dyn ReadAt, at: u64) -> Result<(u64, Option<u64>, bool), FrameError> {
    let mut d = [0u8; 1];
    read_exact_at(src, at + 4, &mut d)?;
    let d = d[0];
    let checksum = d & 0x04 != 0;
    let dict_len = [0u64, 1, 2, 4][usize::from(d & 0x03)];
    let (window_len, fcs_len) = header_layout(d);
    let (window_len, fcs_len) = (window_len as u64, fcs_len as u64);
    let fcs_at = at + 5 + window_len + dict_len;
    let content_size = if fcs_len == 0 {
        None
    } else {
        let mut b = [0u8; 8];
        read_exact_at(src, fcs_at, &mut b[..fcs_len as usize])?;
        let v = u64::from_le_bytes(b);
        Some(if fcs_len == 2 { v + 256 } else { v })
    };
    Ok((5 + window_len + dict_len + fcs_len, content_size, checksum))
}

/// Skips the blocks starting at `at`, returning the offset after the last one.
fn skip_blocks(src: &dyn ReadAt, mut at: u64, frame: u64) -> Result<u64, FrameError> {
    loop {
        let mut h = [0u8; 4];
        read_exact_at(src, at, &mut h[..3])?;
        let h = u32::from_le_bytes(h);
        let last = h & 1 != 0;
        let kind = (h >> 1) & 3;
        let size = u64::from(h >> 3);
        let stored = match kind {
            0 | 2 => size,
            1 => 1,
            _ => {
                return Err(FrameError::Malformed {
                    offset: frame,
                    why: "reserved block type",
                })
            }
        };
        at += 3 + stored;
        if last {
            return Ok(at);
        }
    }
}

/// Bytes no compressor can shrink (xorshift from `seed`), the same every run.
#[cfg(test)]
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ReadAt for Vec<u8> {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            let start = (offset as usize).min(self.len());
            let n = buf.len().min(self.len() - start);
            buf[..n].copy_from_slice(&self[start..start + n]);
            Ok(n)
        }
        fn len(&self) -> u64 {
            Vec::len(self) as u64
        }
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 7 % 251) as u8 ^ (i / 4096) as u8)
            .collect()
    }

    #[test]
    fn frames_are_one_plain_stream_and_are_found_without_decoding() {
        let data = sample(FRAME_BYTES * 2 + 1000);
        let mut w = FrameWriter::new(Vec::new(), 1, 2).expect("writer");
        w.write_all(&data[..100]).expect("write");
        w.end_frame().expect("end");
        w.write_all(&data[100..]).expect("write");
        let z = w.finish().expect("finish");
        assert_eq!(zstd::decode_all(&z[..]).expect("one stream"), data);
        let index = index_frames(&z).expect("index");
        let starts: Vec<u64> = index.frames.iter().map(|f| f.uncompressed).collect();
        let f = FRAME_BYTES as u64;
        assert_eq!(starts, vec![0, 100, 100 + f, 100 + 2 * f]);
        assert_eq!(index.uncompressed_len, Some(data.len() as u64));
        // Decoding from any frame's compressed offset yields the data from its uncompressed one.
        for fr in &index.frames {
            let tail = zstd::decode_all(&z[fr.compressed as usize..]).expect("tail");
            assert_eq!(tail, data[fr.uncompressed as usize..]);
        }
        assert_eq!(index.frame_for(150).uncompressed, 100);
        assert_eq!(index.frame_for(99).uncompressed, 0);
    }

    fn noise(len: usize) -> Vec<u8> {
        super::noise(len, 0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn incompressible_frames_are_stored_and_decode_like_compressed_ones() {
        // noise, then text, then noise shorter than a block: stored, compressed, stored.
        let mut data = noise(FRAME_BYTES + 3 * BLOCK_BYTES + 17);
        let text = sample(FRAME_BYTES / 2);
        let mut w = FrameWriter::new(Vec::new(), 1, 2).expect("writer");
        w.write_all(&data).expect("write");
        w.end_frame().expect("end");
        w.write_all(&text).expect("write");
        w.end_frame().expect("end");
        w.write_all(&data[..1000]).expect("write");
        let z = w.finish().expect("finish");
        let tail = data[..1000].to_vec();
        data.extend_from_slice(&text);
        data.extend_from_slice(&tail);
        // The zstd library decodes it and checks every frame's checksum.
        assert_eq!(zstd::decode_all(&z[..]).expect("one stream"), data);
        // Stored frames: 9-byte header, 3 bytes per block, 4-byte checksum; nothing more.
        let stored = |n: usize| 9 + 3 * n.div_ceil(BLOCK_BYTES) + n + 4;
        let first = stored(FRAME_BYTES);
        let second = stored(3 * BLOCK_BYTES + 17);
        let index = index_frames(&z).expect("index");
        assert_eq!(index.frames[1].compressed, first as u64);
        assert_eq!(index.frames[2].compressed, (first + second) as u64);
        assert_eq!(
            z.len() as u64 - index.frames[3].compressed,
            stored(1000) as u64
        );
        // The text frame was compressed.
        assert!(index.frames[3].compressed - index.frames[2].compressed < (text.len() / 4) as u64);
        assert_eq!(index.uncompressed_len, Some(data.len() as u64));
        // A flipped content byte in a stored frame fails the frame checksum.
        let mut bad = z.clone();
        bad[first + 9 + 3 + 10] ^= 1;
        assert!(zstd::decode_all(&bad[..]).is_err());
    }

    #[test]
    fn a_stream_frame_without_content_size_ends_the_index() {
        let data = sample(300_000);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("enc");
        enc.write_all(&data).expect("write");
        let streamed = enc.finish().expect("finish");
        let index = index_frames(&streamed).expect("index");
        assert_eq!(index.frames.len(), 1);
        assert_eq!(index.uncompressed_len, None);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let mut w = FrameWriter::new(Vec::new(), 1, 2).expect("writer");
        w.write_all(&sample(200_000)).expect("write");
        let z = w.finish().expect("finish");
        for cut in [1, 4, 5, 8, z.len() / 2, z.len() - 1] {
            assert!(index_frames(&z[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        let mut bad = z.clone();
        bad[0] ^= 0xff;
        assert!(index_frames(&bad).is_err());
    }
}
