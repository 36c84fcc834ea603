//! Decodes a bundle's zstd stream frame by frame, without libzstd's streaming copies where it
//! can.
//!
//! A bundle is a run of frames of at most [`FRAME_BYTES`] each, most of them *stored* (raw
//! blocks: layers do not compress; see [`super::seekable`]). libzstd's streaming decoder copies
//! every byte of a raw block twice (into its window, then out); here a frame is read whole into
//! one buffer, its checksum checked, and the reader is served straight from the raw blocks in
//! that buffer. A frame with compressed blocks is decoded whole by libzstd (which checks its
//! content size and checksum). Whatever this fast path does not expect — a frame without a
//! content size (bundles written before frames were cut), a larger one, a dictionary, too many
//! blocks — hands the rest of the stream, from that frame's first byte, to libzstd's streaming
//! decoder, so every valid zstd stream decodes as before and memory stays bounded.

use std::io::{self, Read};

use super::seekable::FRAME_BYTES;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
/// zstd's `Block_Maximum_Size`.
const MAX_BLOCK: usize = 128 * 1024;
/// Blocks one frame may have on the fast path (a full frame of 128 KiB blocks has 32).
const MAX_BLOCKS: usize = 1024;
/// Compressed bytes one frame may have on the fast path: its content plus block headers.
const MAX_FRAME_BUFFER: usize = FRAME_BYTES + 64 * 1024;

type Fallback<R> =
    zstd::stream::read::Decoder<'static, io::BufReader<io::Chain<io::Cursor<Vec<u8>>, R>>>;

/// A `Read` over the decoded bytes of a zstd stream.
pub struct FrameReader<R: Read> {
    state: State<R>,
}

enum State<R: Read> {
    Frames(Frames<R>),
    Stream(Box<Fallback<R>>),
    /// The streaming decoder failed after a chunk's worth was handed out: the error is next.
    Failed(io::Error),
    /// After an error or the end: nothing more is read.
    Done,
}

struct Frames<R> {
    input: R,
    /// The current frame's compressed bytes.
    frame: Vec<u8>,
    /// Decoded bytes of a compressed frame.
    decoded: Vec<u8>,
    /// What is left to hand out: ranges of `frame` (stored) or one range of `decoded`.
    ranges: Vec<(usize, usize)>,
    from_decoded: bool,
    next: usize,
    /// The error that cut a stored frame short, returned once what came before it is read
    /// (as libzstd's streaming decoder would), so the reader above sees where the cut is.
    deferred: Option<io::Error>,
    decompressor: zstd::bulk::Decompressor<'static>,
}

/// What reading one frame's header found.
enum Header {
    /// The stream ended cleanly between frames.
    End,
    /// A skippable frame was skipped.
    Skipped,
    /// A frame the fast path takes: its header length, content size and checksum flag.
    Frame { content: usize, checksum: bool },
    /// A frame the fast path does not take: the streaming decoder goes on from here.
    Other,
}

fn malformed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd stream: {why}"))
}

fn cut() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "zstd stream: the stream ends inside a frame",
    )
}

/// Reads exactly `n` more bytes of `input` onto the end of `buf`. `read_to_end` reads into the
/// spare capacity, zero-filling it only for a reader that cannot take uninitialised memory.
fn append<R: Read>(input: &mut R, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    buf.reserve(n);
    let got = input.take(n as u64).read_to_end(buf)?;
    if got < n {
        return Err(cut());
    }
    Ok(())
}

/// Decoded bytes handed out whole by [`FrameReader::next_chunk`]: `buf[a..b]` for each of
/// `ranges`, in order (a stored frame's raw blocks lie between their block headers).
#[derive(Debug, Default)]
pub struct Chunk {
    /// The bytes.
    pub buf: Vec<u8>,
    /// Where in `buf` the decoded bytes are, in order; none empty.
    pub ranges: Vec<(usize, usize)>,
}

/// How much of the streaming decoder's output one chunk holds.
const STREAM_CHUNK: usize = 1 << 20;

impl<R: Read> FrameReader<R> {
    /// Decodes `input`, a zstd stream.
    pub fn new(input: R) -> io::Result<Self> {
        Ok(FrameReader {
            state: State::Frames(Frames {
                input,
                frame: Vec::new(),
                decoded: Vec::new(),
                ranges: Vec::new(),
                from_decoded: false,
                next: 0,
                deferred: None,
                decompressor: zstd::bulk::Decompressor::new()?,
            }),
        })
    }
}

impl<R: Read> Frames<R> {
    /// Reads the next frame header into `self.frame`.
    fn header(&mut self) -> io::Result<Header> {
        self.frame.clear();
        // The magic: a clean end is no bytes at all.
        let mut filled = 0;
        self.frame.resize(4, 0);
        while filled < 4 {
            match self.input.read(&mut self.frame[filled..]) {
                Ok(0) if filled == 0 => return Ok(Header::End),
                Ok(0) => {
                    self.frame.truncate(filled);
                    return Err(cut());
                }
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let magic =
            u32::from_le_bytes([self.frame[0], self.frame[1], self.frame[2], self.frame[3]]);
        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
            let mut len = [0u8; 4];
            self.input
                .read_exact(&mut len)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => cut(),
                    _ => e,
                })?;
            let len = u64::from(u32::from_le_bytes(len));
            let skipped = io::copy(&mut (&mut self.input).take(len), &mut io::sink())?;
            if skipped < len {
                return Err(cut());
            }
            return Ok(Header::Skipped);
        }
        if magic != ZSTD_MAGIC {
            return Err(malformed("bad magic number"));
        }
        append(&mut self.input, &mut self.frame, 1)?;
        let d = self.frame[4];
        let checksum = d & 0x04 != 0;
        let has_dict = d & 0x03 != 0;
        let (window_len, fcs_len) = super::seekable::header_layout(d);
        if fcs_len == 0 || has_dict || d & 0x18 != 0 {
            // No content size, a dictionary, or reserved bits: libzstd decides.
            return Ok(Header::Other);
        }
        append(&mut self.input, &mut self.frame, window_len + fcs_len)?;
        let mut b = [0u8; 8];
        b[..fcs_len].copy_from_slice(&self.frame[5 + window_len..]);
        let v = u64::from_le_bytes(b);
        let content = if fcs_len == 2 { v + 256 } else { v };
        match usize::try_from(content) {
            Ok(content) if content <= FRAME_BYTES => Ok(Header::Frame { content, checksum }),
            _ => Ok(Header::Other),
        }
    }

    /// Reads the blocks of a frame whose header is in `self.frame` and makes its content
    /// ready to hand out; `false` when the frame is not one for the fast path.
    fn frame(&mut self, content: usize, checksum: bool) -> io::Result<bool> {
        self.ranges.clear();
        let mut raw_total = 0usize;
        let mut all_raw = true;
        for _ in 0..MAX_BLOCKS {
            let at = self.frame.len();
            if let Err(e) = append(&mut self.input, &mut self.frame, 3) {
                return self.cut_short(all_raw, None, e);
            }
            let h = u32::from_le_bytes([self.frame[at], self.frame[at + 1], self.frame[at + 2], 0]);
            let last = h & 1 != 0;
            let kind = (h >> 1) & 3;
            let size = (h >> 3) as usize;
            if size > MAX_BLOCK {
                return Err(malformed("block larger than 128 KiB"));
            }
            let stored = match kind {
                0 => size,
                1 => 1,
                2 => size,
                _ => return Err(malformed("reserved block type")),
            };
            if self.frame.len() + stored > MAX_FRAME_BUFFER {
                return Ok(false);
            }
            if let Err(e) = append(&mut self.input, &mut self.frame, stored) {
                return self.cut_short(all_raw && kind == 0, Some(at + 3), e);
            }
            if kind == 0 {
                raw_total += size;
                if raw_total > content {
                    return Err(malformed("more content than the frame header says"));
                }
                self.ranges.push((at + 3, at + 3 + size));
            } else {
                all_raw = false;
            }
            if last {
                if checksum {
                    append(&mut self.input, &mut self.frame, 4)?;
                }
                return self
                    .ready(all_raw, raw_total, content, checksum)
                    .map(|()| true);
            }
        }
        Ok(false)
    }

    /// A frame the input ended (or failed) inside: when every block so far is stored, what
    /// arrived of it (through the partial block starting at `partial`) is handed out before
    /// the error; otherwise the error comes at once.
    fn cut_short(&mut self, raw: bool, partial: Option<usize>, e: io::Error) -> io::Result<bool> {
        if !raw {
            return Err(e);
        }
        if let Some(start) = partial.filter(|&p| p < self.frame.len()) {
            self.ranges.push((start, self.frame.len()));
        }
        self.next = 0;
        self.from_decoded = false;
        self.deferred = Some(e);
        Ok(true)
    }

    /// Checks a frame read whole and sets up what it decodes to.
    fn ready(
        &mut self,
        all_raw: bool,
        raw_total: usize,
        content: usize,
        checksum: bool,
    ) -> io::Result<()> {
        self.next = 0;
        if all_raw {
            if raw_total != content {
                return Err(malformed("less content than the frame header says"));
            }
            if checksum {
                let mut h = xxhash_rust::xxh64::Xxh64::new(0);
                for &(a, b) in &self.ranges {
                    h.update(&self.frame[a..b]);
                }
                let end = self.frame.len();
                let want = u32::from_le_bytes([
                    self.frame[end - 4],
                    self.frame[end - 3],
                    self.frame[end - 2],
                    self.frame[end - 1],
                ]);
                if h.digest() as u32 != want {
                    return Err(malformed("frame checksum mismatch"));
                }
            }
            self.from_decoded = false;
            return Ok(());
        }
        self.decoded.clear();
        self.decoded.reserve(content);
        let n = self
            .decompressor
            .decompress_to_buffer(&self.frame, &mut self.decoded)
            .map_err(|e| malformed(&e.to_string()))?;
        if n != content {
            return Err(malformed(
                "the frame decodes to another size than its header says",
            ));
        }
        self.ranges.clear();
        self.ranges.push((0, n));
        self.from_decoded = true;
        Ok(())
    }

    /// What is left of the current frame as a chunk, its buffer handed over whole (the
    /// next frame is read into the spare [`FrameReader::next_chunk`] gets); `None` when the
    /// frame is used up.
    fn take_ready(&mut self, spare: &mut Chunk) -> Option<Chunk> {
        let mut ranges = std::mem::take(&mut spare.ranges);
        ranges.clear();
        ranges.extend(self.ranges.drain(self.next..).filter(|(a, b)| a < b));
        self.ranges.clear();
        self.next = 0;
        if ranges.is_empty() {
            spare.ranges = ranges;
            return None;
        }
        let own = if self.from_decoded {
            &mut self.decoded
        } else {
            &mut self.frame
        };
        Some(Chunk {
            buf: std::mem::take(own),
            ranges,
        })
    }

    /// Gives `spare`'s buffer to whichever of the frame buffers was handed out last, so the
    /// next frame is read into it: with the parser's chunk and the one waiting to be sent,
    /// two frame buffers are in use, not three.
    fn refill_from(&mut self, spare: &mut Chunk) {
        let empty = if self.frame.capacity() == 0 {
            &mut self.frame
        } else if self.decoded.capacity() == 0 {
            &mut self.decoded
        } else {
            return;
        };
        *empty = std::mem::take(&mut spare.buf);
        empty.clear();
    }

    /// Copies what is ready into `buf`; 0 when the current frame is used up.
    fn serve(&mut self, buf: &mut [u8]) -> usize {
        let src = if self.from_decoded {
            &self.decoded
        } else {
            &self.frame
        };
        while let Some(&(a, b)) = self.ranges.get(self.next) {
            if a == b {
                self.next += 1;
                continue;
            }
            let n = buf.len().min(b - a);
            buf[..n].copy_from_slice(&src[a..a + n]);
            self.ranges[self.next].0 += n;
            return n;
        }
        0
    }
}

impl<R: Read> Read for FrameReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let f = match &mut self.state {
                State::Done => return Ok(0),
                State::Stream(dec) => return dec.read(buf),
                State::Failed(_) => return Err(self.take_failure()),
                State::Frames(f) => f,
            };
            let n = f.serve(buf);
            if n > 0 {
                return Ok(n);
            }
            self.advance()?;
        }
    }
}

impl<R: Read> FrameReader<R> {
    /// The next decoded bytes, `None` at the end: a fast-path frame's own buffer, handed out
    /// without a copy; the streaming decoder's output a megabyte at a time. `spare`, a chunk
    /// the caller is done with, becomes the buffer the next frame is read into, so buffers go
    /// round rather than being allocated. Bytes a [`Read::read`] left of a frame come first.
    pub fn next_chunk(&mut self, mut spare: Chunk) -> io::Result<Option<Chunk>> {
        loop {
            let f = match &mut self.state {
                State::Done => return Ok(None),
                State::Stream(dec) => {
                    spare.buf.resize(STREAM_CHUNK, 0);
                    let mut n = 0;
                    while n < spare.buf.len() {
                        match dec.read(&mut spare.buf[n..]) {
                            Ok(0) => break,
                            Ok(k) => n += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            // What was decoded before the error comes first, as from `read`.
                            Err(e) if n > 0 => {
                                self.state = State::Failed(e);
                                break;
                            }
                            Err(e) => {
                                self.state = State::Done;
                                return Err(e);
                            }
                        }
                    }
                    if n == 0 {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    spare.ranges.clear();
                    spare.ranges.push((0, n));
                    return Ok(Some(spare));
                }
                State::Failed(_) => return Err(self.take_failure()),
                State::Frames(f) => f,
            };
            if let Some(chunk) = f.take_ready(&mut spare) {
                return Ok(Some(chunk));
            }
            f.refill_from(&mut spare);
            self.advance()?;
        }
    }

    /// The error a `Failed` state holds; the reader is `Done` after it.
    fn take_failure(&mut self) -> io::Error {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Failed(e) => e,
            _ => io::Error::other("zstd stream: no failure to report"),
        }
    }

    /// Makes the next frame ready (the current one is used up): an error the current frame
    /// deferred, else the next header and frame, else the streaming decoder from here on. At
    /// the end of the stream the state is `Done`.
    fn advance(&mut self) -> io::Result<()> {
        let State::Frames(f) = &mut self.state else {
            return Ok(());
        };
        if let Some(e) = f.deferred.take() {
            self.state = State::Done;
            return Err(e);
        }
        let next = match f.header() {
            Ok(Header::End) => {
                self.state = State::Done;
                return Ok(());
            }
            Ok(Header::Skipped) => Ok(true),
            Ok(Header::Frame { content, checksum }) => f.frame(content, checksum),
            Ok(Header::Other) => Ok(false),
            Err(e) => Err(e),
        };
        match next {
            Ok(true) => Ok(()),
            Ok(false) => self.fall_back(),
            Err(e) => {
                self.state = State::Done;
                Err(e)
            }
        }
    }

    /// Hands the rest of the stream, starting with the bytes of the current frame read so
    /// far, to libzstd's streaming decoder.
    fn fall_back(&mut self) -> io::Result<()> {
        let State::Frames(f) = std::mem::replace(&mut self.state, State::Done) else {
            return Ok(());
        };
        let Frames { input, frame, .. } = f;
        let dec = zstd::stream::read::Decoder::new(io::Cursor::new(frame).chain(input))?;
        self.state = State::Stream(Box::new(dec));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::bundle::seekable::{noise, FrameWriter};

    fn text(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"airlock bundle "[i % 15]).collect()
    }

    /// A bundle-like stream: stored frames, compressed frames, a tiny one.
    fn bundle_stream() -> (Vec<u8>, Vec<u8>) {
        let mut w = FrameWriter::new(Vec::new(), 1, 2).expect("writer");
        let mut plain = Vec::new();
        for part in [
            noise(FRAME_BYTES + 5 * MAX_BLOCK + 3, 7),
            text(700_000),
            b"x".to_vec(),
            noise(1000, 9),
        ] {
            w.write_all(&part).expect("write");
            w.end_frame().expect("end");
            plain.extend_from_slice(&part);
        }
        (w.finish().expect("finish"), plain)
    }

    /// Decodes `z` through `read` with odd sizes (frames and blocks end inside reads).
    fn decode_by_read(z: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut r = FrameReader::new(z)?;
        let mut buf = vec![0u8; 70_001];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Decodes `z` through `next_chunk`, each used chunk handed back as the spare.
    fn decode_by_chunks(z: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut r = FrameReader::new(z)?;
        let mut spare = Chunk::default();
        while let Some(chunk) = r.next_chunk(spare)? {
            for &(a, b) in &chunk.ranges {
                assert!(a < b, "an empty range");
                out.extend_from_slice(&chunk.buf[a..b]);
            }
            spare = chunk;
        }
        Ok(out)
    }

    /// Decodes `z` both ways; they must agree.
    fn decode(z: &[u8]) -> io::Result<Vec<u8>> {
        let by_read = decode_by_read(z);
        let by_chunks = decode_by_chunks(z);
        match (&by_read, &by_chunks) {
            (Ok(a), Ok(b)) => assert!(a == b, "read and next_chunk decode differently"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("read: {:?}, next_chunk: {:?}", a.is_ok(), b.is_ok()),
        }
        by_read
    }

    #[test]
    fn decodes_what_libzstd_decodes() {
        let (z, plain) = bundle_stream();
        assert_eq!(decode(&z).expect("decode"), plain);

        // A stream without content sizes (bundles before frames were cut), after frames the
        // fast path took, and a skippable frame between them.
        let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("enc");
        streamed.write_all(&text(300_000)).expect("write");
        let streamed = streamed.finish().expect("finish");
        let mut mixed = z.clone();
        mixed.extend_from_slice(&0x184D_2A5Au32.to_le_bytes());
        mixed.extend_from_slice(&5u32.to_le_bytes());
        mixed.extend_from_slice(b"skip!");
        mixed.extend_from_slice(&streamed);
        mixed.extend_from_slice(&z);
        let want = zstd::decode_all(&mixed[..]).expect("libzstd");
        assert_eq!(want.len(), 2 * plain.len() + 300_000);
        assert_eq!(decode(&mixed).expect("decode"), want);
        assert_eq!(decode(&[]).expect("empty"), Vec::<u8>::new());
    }

    #[test]
    fn a_cut_skippable_frame_is_an_error() {
        let mut z = 0x184D_2A50u32.to_le_bytes().to_vec();
        z.extend_from_slice(&10u32.to_le_bytes());
        z.extend_from_slice(b"short");
        for cut in [5, 8, z.len()] {
            let e = decode(&z[..cut]).expect_err(&format!("cut at {cut}"));
            assert!(e.to_string().contains("ends inside a frame"), "{e}");
        }
    }

    #[test]
    fn a_frame_of_many_empty_blocks_goes_to_libzstd() {
        // Valid zstd: 2000 empty raw blocks, then one with the content. Past MAX_BLOCKS the
        // fast path hands the frame to libzstd rather than keep a range per block.
        let mut z = ZSTD_MAGIC.to_le_bytes().to_vec();
        z.push((2 << 6) | 0x20);
        z.extend_from_slice(&3u32.to_le_bytes());
        for _ in 0..2000 {
            z.extend_from_slice(&[0, 0, 0]);
        }
        z.extend_from_slice(&(1u32 | (3 << 3)).to_le_bytes()[..3]);
        z.extend_from_slice(b"abc");
        assert_eq!(zstd::decode_all(&z[..]).expect("libzstd"), b"abc");
        assert_eq!(decode(&z).expect("decode"), b"abc");
    }

    /// zstd caps a block at 128 KiB; a header claiming more is refused before its bytes are
    /// read, as libzstd refuses it.
    #[test]
    fn a_block_larger_than_zstd_allows_is_refused() {
        let mut z = ZSTD_MAGIC.to_le_bytes().to_vec();
        z.push((2 << 6) | 0x20);
        z.extend_from_slice(&(MAX_BLOCK as u32 + 1).to_le_bytes());
        z.extend_from_slice(&(1u32 | ((MAX_BLOCK as u32 + 1) << 3)).to_le_bytes()[..3]);
        z.extend_from_slice(&noise(MAX_BLOCK + 1, 5));
        assert!(zstd::decode_all(&z[..]).is_err(), "libzstd refuses it too");
        let e = decode(&z).expect_err("block of 128 KiB + 1");
        assert!(e.to_string().contains("block larger than 128 KiB"), "{e}");
    }

    #[test]
    fn a_frame_larger_than_its_content_is_not_buffered_whole() {
        // Content size 1, then 40 "compressed" blocks of 128 KiB of garbage: more than a
        // frame's worth is never held; libzstd gets the stream and refuses it.
        let mut z = ZSTD_MAGIC.to_le_bytes().to_vec();
        z.push(0x20);
        z.push(1);
        for _ in 0..40 {
            z.extend_from_slice(&(2u32 << 1 | (MAX_BLOCK as u32) << 3).to_le_bytes()[..3]);
            z.extend_from_slice(&noise(MAX_BLOCK, 3));
        }
        assert!(decode(&z).is_err());
    }

    #[test]
    fn a_cut_or_changed_stream_is_an_error_never_short_data() {
        let (z, plain) = bundle_stream();
        let frame_ends: Vec<u64> = crate::bundle::seekable::index_frames(&z)
            .expect("index")
            .frames
            .iter()
            .map(|f| f.compressed)
            .collect();
        for cut in [
            1,
            4,
            5,
            9,
            12,
            100,
            MAX_BLOCK + 20,
            FRAME_BYTES,
            z.len() - 5,
            z.len() - 1,
        ] {
            let got = decode(&z[..cut]);
            if frame_ends.contains(&(cut as u64)) {
                // A cut between frames is a shorter valid stream; the tar layer sees the cut.
                assert!(plain.starts_with(&got.expect("frame boundary")));
            } else {
                let e = got.expect_err(&format!("cut at {cut}"));
                assert!(e.to_string().contains("zstd"), "cut at {cut}: {e}");
            }
        }
        // A stream without content sizes goes to libzstd's streaming decoder; cut after more
        // than a chunk's worth of output, it hands out what it decoded, then the error.
        let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("enc");
        streamed
            .write_all(&noise(3 * STREAM_CHUNK, 4))
            .expect("write");
        let streamed = streamed.finish().expect("finish");
        let e = decode(&streamed[..streamed.len() / 2]).expect_err("cut streamed frame");
        assert!(
            e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("zstd"),
            "{e}"
        );
        // A flipped byte in a stored block's content, in a compressed frame, in a header.
        let second = frame_ends[1] as usize;
        for at in [9 + 3 + 77, second + 20, 4] {
            let mut bad = z.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {at}");
        }
    }
}
