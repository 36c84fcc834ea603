//! Writes a bundle: deterministic tar (fixed order, mtime, uid/gid 0) in fixed-parameter zstd,
//! to a temporary file renamed into place only when complete.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::seekable::FrameWriter;
use super::{
    blob_path, BundleManifest, INDEX_ENTRY, LAYOUT_CONTENT, LAYOUT_ENTRY, MANIFEST_ENTRY,
    SIGNATURE_ENTRY, ZSTD_LEVEL, ZSTD_WORKERS,
};
use crate::oci::Digest;
use crate::progress::Reporter;

/// Where a blob's bytes are while packing.
#[derive(Debug, Clone)]
pub enum BlobData {
    /// Small content built or fetched in memory (manifests, configs).
    Memory(Bytes),
    /// A file in the cache. `verified` is true when this run downloaded and checked it;
    /// otherwise it is hashed again while packed, so a cache changed on disk is caught.
    File {
        /// The file.
        path: PathBuf,
        /// Already checked against its digest in this run.
        verified: bool,
    },
}

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// I/O on the output or a cached blob.
    #[error("writing bundle `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A cached blob changed since it was verified.
    #[error("blob {digest} from `{path}` no longer matches its digest (got {actual}); the cache is corrupt, delete it and collect again")]
    CacheCorrupt {
        /// Expected digest.
        digest: Digest,
        /// The cache file.
        path: PathBuf,
        /// What it hashes to now.
        actual: Digest,
    },
    /// A blob listed in the manifest has no data.
    #[error("internal: no data for blob {0}")]
    NoData(Digest),
    /// The blobs were handed over in another order than the manifest lists them.
    #[error("internal: blob {got} handed to the writer where {expected} is next")]
    OutOfOrder {
        /// The manifest's next blob.
        expected: Digest,
        /// What came instead.
        got: Digest,
    },
    /// Writing stopped because the content it waited for will not come.
    #[error("bundle not written: {0}")]
    Aborted(String),
}

/// The summary of a written bundle.
#[derive(Debug, Clone)]
pub struct Written {
    /// Size of the `.tar.zst` file.
    pub size: u64,
}

/// One blob's bytes as the writer takes it: what the pack stage hands over, one per blob of the
/// manifest, in the manifest's order (collect hands a blob over once it is downloaded).
#[derive(Debug, Clone)]
pub struct InPlace {
    /// The blob.
    pub digest: Digest,
    /// Where its bytes are.
    pub data: BlobData,
}

/// What a bundle is being written for: its `airlock.json` and signature, and the OCI layout's
/// `index.json` (the blobs come separately, in order, as [`InPlace`] values).
pub struct Contents<'a> {
    /// The manifest (its blob list gives the order).
    pub manifest: &'a BundleManifest,
    /// The exact `airlock.json` bytes.
    pub manifest_bytes: &'a [u8],
    /// `airlock.json.sig`, when signed.
    pub signature: Option<&'a [u8]>,
    /// The layout's `index.json`.
    pub index_json: &'a [u8],
}

/// Writes `airlock.json` (exact bytes), an optional signature, the OCI layout and every blob
/// listed in the manifest, in that order, to `path` (a temporary file renamed when complete).
/// `blobs` yields each blob's bytes in the manifest's order.
pub fn write_bundle(
    path: &Path,
    contents: &Contents<'_>,
    blobs: impl Iterator<Item = Result<InPlace, WriteError>>,
    reporter: &dyn Reporter,
) -> Result<Written, WriteError> {
    let tmp = path.with_file_name(format!(
        ".{}.partial",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let io_err = |source| WriteError::Io {
        path: tmp.clone(),
        source,
    };
    let result = fs_err::File::create(&tmp)
        .map_err(io_err)
        .and_then(|file| write_stream(file, &tmp, contents, blobs, reporter));
    match result {
        Ok((_, w)) => {
            fs_err::rename(&tmp, path).map_err(|source| WriteError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(w)
        }
        Err(e) => {
            let _ = fs_err::remove_file(&tmp);
            Err(e)
        }
    }
}

fn mtime_of(created: &str) -> u64 {
    humantime::parse_rfc3339(created)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header(name: &str, size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Writes the bundle stream of `contents` to `out` (`label` names it in errors) and hands
/// `out` back: a file for [`write_bundle`], a [`super::parts::PartsWriter`] for
/// `collect --split`, so both give the same bytes. `blobs` yields each blob's bytes in the
/// manifest's order; the writer takes the next only when the one before is written.
pub fn write_stream<W: io::Write>(
    out: W,
    label: &Path,
    contents: &Contents<'_>,
    mut blobs: impl Iterator<Item = Result<InPlace, WriteError>>,
    reporter: &dyn Reporter,
) -> Result<(W, Written), WriteError> {
    let Contents {
        manifest,
        manifest_bytes,
        signature,
        index_json,
    } = *contents;
    let tmp = label;
    let io_err = |source| WriteError::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let out = CountingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, out),
        written: 0,
    };
    // Frames end at every entry and every few MiB, so `serve` can seek (see `seekable`).
    let enc = FrameWriter::new(out, ZSTD_LEVEL, ZSTD_WORKERS).map_err(io_err)?;
    let mut tar = tar::Builder::new(enc);
    tar.mode(tar::HeaderMode::Deterministic);
    let mtime = mtime_of(&manifest.created);
    let small = |tar: &mut tar::Builder<FrameWriter<CountingWriter<io::BufWriter<W>>>>,
                 name: &str,
                 bytes: &[u8]|
     -> Result<(), WriteError> {
        let h = header(name, bytes.len() as u64, mtime).map_err(io_err)?;
        tar.get_mut().end_frame().map_err(io_err)?;
        tar.append(&h, bytes).map_err(io_err)
    };
    small(&mut tar, MANIFEST_ENTRY, manifest_bytes)?;
    if let Some(sig) = signature {
        small(&mut tar, SIGNATURE_ENTRY, sig)?;
    }
    small(&mut tar, LAYOUT_ENTRY, LAYOUT_CONTENT)?;
    small(&mut tar, INDEX_ENTRY, index_json)?;
    for blob in &manifest.blobs {
        let h = header(&blob_path(&blob.digest), blob.size, mtime).map_err(io_err)?;
        tar.get_mut().end_frame().map_err(io_err)?;
        let next = blobs
            .next()
            .ok_or_else(|| WriteError::NoData(blob.digest.clone()))??;
        if next.digest != blob.digest {
            return Err(WriteError::OutOfOrder {
                expected: blob.digest.clone(),
                got: next.digest,
            });
        }
        match &next.data {
            BlobData::Memory(b) => {
                tar.append(&h, &b[..]).map_err(io_err)?;
                reporter.advance(b.len() as u64);
            }
            BlobData::File { path: p, verified } => {
                let f = fs_err::File::open(p).map_err(|source| WriteError::Io {
                    path: p.clone(),
                    source,
                })?;
                // Hash what we copy: the cache is only trusted as far as this check.
                let mut reader = HashingRead {
                    inner: f.take(blob.size),
                    hasher: (!*verified).then(crate::oci::digest::Hasher::new),
                    reporter,
                };
                tar.append(&h, &mut reader)
                    .map_err(|source| WriteError::Io {
                        path: p.clone(),
                        source,
                    })?;
                if let Some(actual) = reader
                    .hasher
                    .map(|h| h.finish())
                    .filter(|a| a != &blob.digest)
                {
                    return Err(WriteError::CacheCorrupt {
                        digest: blob.digest.clone(),
                        path: p.clone(),
                        actual,
                    });
                }
            }
        }
    }
    tar.get_mut().end_frame().map_err(io_err)?;
    let enc = tar.into_inner().map_err(io_err)?;
    let out = enc.finish().map_err(io_err)?;
    let CountingWriter {
        inner: buf,
        written: size,
    } = out;
    // No fsync: the bundle is only renamed into place once fully written, and `verify` (run
    // before media leave, and again on import) checks every byte; forcing a GiB to disk here
    // would double the time of a collect for no added guarantee.
    let out = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
    Ok((out, Written { size }))
}

struct HashingRead<'a, R> {
    inner: R,
    hasher: Option<crate::oci::digest::Hasher>,
    reporter: &'a dyn Reporter,
}

struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: io::Write> io::Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for HashingRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.reporter.advance(n as u64);
        Ok(n)
    }
}
