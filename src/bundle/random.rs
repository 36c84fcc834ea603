//! Random access to a bundle's bytes without unpacking it: the compressed file (or split parts,
//! read as one) by offset, and a decoder that starts at the frame nearest an uncompressed offset
//! (`serve` answers requests with it; `import` reads large blobs with it, several at once).

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use super::seekable::{FrameIndex, ReadAt};
use super::BundleSource;

/// Why the compressed stream cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file cannot be opened or read.
    #[error("bundle `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A part's size differs from its parts manifest.
    #[error("part `{path}`: {actual} bytes, but the parts manifest lists {listed}")]
    PartSize {
        /// The part.
        path: PathBuf,
        /// Listed size.
        listed: u64,
        /// Size on disk.
        actual: u64,
    },
}

/// One file of the compressed stream and where it starts in it.
#[derive(Debug)]
struct Piece {
    file: std::fs::File,
    start: u64,
    len: u64,
}

/// The compressed bundle: one file, or the parts of a split bundle in order.
#[derive(Debug)]
pub struct Compressed {
    pieces: Vec<Piece>,
    len: u64,
}

impl Compressed {
    /// Opens the file or every part; a part whose size differs from the parts manifest is
    /// refused here (its bytes are checked as blobs are served).
    pub fn open(source: &BundleSource) -> Result<Compressed, OpenError> {
        let paths: Vec<(PathBuf, Option<u64>)> = match source {
            BundleSource::File(p) => vec![(p.clone(), None)],
            BundleSource::Parts(set) => (0..set.manifest.parts.len())
                .map(|i| (set.part_path(i), Some(set.manifest.parts[i].size)))
                .collect(),
        };
        let mut pieces = Vec::with_capacity(paths.len());
        let mut start = 0u64;
        for (path, listed) in paths {
            let io_err = |source| OpenError::Io {
                path: path.clone(),
                source,
            };
            let file = fs_err::File::open(&path).map_err(io_err)?;
            let len = file.metadata().map_err(io_err)?.len();
            if let Some(listed) = listed.filter(|l| *l != len) {
                return Err(OpenError::PartSize {
                    path,
                    listed,
                    actual: len,
                });
            }
            pieces.push(Piece {
                file: file.into_parts().0,
                start,
                len,
            });
            start += len;
        }
        Ok(Compressed { pieces, len: start })
    }
}

impl ReadAt for Compressed {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let i = self.pieces.partition_point(|p| p.start <= offset);
        let Some(piece) = i.checked_sub(1).and_then(|i| self.pieces.get(i)) else {
            return Ok(0);
        };
        let within = offset - piece.start;
        if within >= piece.len {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(piece.len - within) as usize;
        piece.file.read_at(&mut buf[..n], within)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A `Read` over the compressed bytes from an offset.
struct Cursor {
    src: Arc<Compressed>,
    at: u64,
}

impl Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read_at(self.at, buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The uncompressed stream from some offset, decoded from the frame that holds it.
pub struct Decoded {
    dec: zstd::stream::read::Decoder<'static, io::BufReader<Cursor>>,
    at: u64,
}

impl Decoded {
    /// Starts decoding at the frame holding uncompressed offset `at` and skips to it.
    pub fn open(src: &Arc<Compressed>, frames: &FrameIndex, at: u64) -> io::Result<Decoded> {
        let frame = frames.frame_for(at);
        let dec = zstd::stream::read::Decoder::new(Cursor {
            src: Arc::clone(src),
            at: frame.compressed,
        })?;
        let mut d = Decoded {
            dec,
            at: frame.uncompressed,
        };
        d.skip_to(at)?;
        Ok(d)
    }

    /// Reuses `current` when `at` is ahead of it with no frame start in between (one decoding
    /// pass for a bundle of one frame), else opens a new decoder.
    pub fn reuse_or_open(
        current: Option<Decoded>,
        src: &Arc<Compressed>,
        frames: &FrameIndex,
        at: u64,
    ) -> io::Result<Decoded> {
        match current {
            Some(mut d) if d.at <= at && frames.frame_for(at).uncompressed <= d.at => {
                d.skip_to(at)?;
                Ok(d)
            }
            _ => Decoded::open(src, frames, at),
        }
    }

    /// The uncompressed offset of the next byte read.
    pub fn position(&self) -> u64 {
        self.at
    }

    fn skip_to(&mut self, at: u64) -> io::Result<()> {
        let want = at.saturating_sub(self.at);
        skip(self, want, at)
    }
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.dec.read(buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Reads and drops `want` bytes of `r`, which should then stand at uncompressed offset `at`.
fn skip(r: &mut impl Read, want: u64, at: u64) -> io::Result<()> {
    if io::copy(&mut r.by_ref().take(want), &mut io::sink())? < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the bundle ends before uncompressed byte {at}"),
        ));
    }
    Ok(())
}

/// A bundle opened for reading blobs at their offsets: the compressed stream and its frame
/// index. Only a bundle whose every frame records its size (every bundle written with seekable
/// frames) is opened so; a read from an older one would decode from its start each time.
pub struct RandomAccess {
    src: Arc<Compressed>,
    frames: FrameIndex,
}

impl RandomAccess {
    /// Opens `source` and indexes its frames; `None` when it cannot be (a bundle without
    /// seekable frames, or one the sequential reader will refuse and say why).
    pub fn open(source: &BundleSource) -> Option<RandomAccess> {
        let src = Compressed::open(source).ok()?;
        let frames = super::seekable::index_frames(&src).ok()?;
        frames.uncompressed_len?;
        Some(RandomAccess {
            src: Arc::new(src),
            frames,
        })
    }

    /// The uncompressed stream from offset `at` on, decoded from the frame that holds it by
    /// [`super::frames::FrameReader`] (each frame's checksum checked).
    pub fn read_from(&self, at: u64) -> io::Result<impl Read + Send + 'static> {
        let frame = self.frames.frame_for(at);
        let mut reader = super::frames::FrameReader::new(Cursor {
            src: Arc::clone(&self.src),
            at: frame.compressed,
        })?;
        skip(&mut reader, at - frame.uncompressed, at)?;
        Ok(reader)
    }
}
