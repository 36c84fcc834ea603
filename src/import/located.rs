//! Large blobs read from the bundle by offset, several at once. The read stage passes over a
//! blob larger than [`CHUNK_SIZE`] without hashing it ([`Blob::Located`](super::read::Blob));
//! the upload stage then reads it here, on a blocking thread of its own, from the frame that
//! holds its first byte ([`RandomAccess`]), checks it against its digest as it goes and hands
//! it on in chunks. So one large blob's upload no longer waits for the one before it (a
//! registry takes more from two streams than from one), each byte is still hashed once, and
//! an upload ends cleanly only once its blob matched its digest.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::bundle::random::RandomAccess;
use crate::bundle::{blob_path, BlobEntry, BundleError, BundleSource};
use crate::oci::digest::CheckedReader;

use super::{ImportError, CHUNK_SIZE};

/// Bytes per chunk handed to an upload.
const CHUNK: usize = 1024 * 1024;
/// Chunks queued between a blob's reader and its upload.
pub(super) const QUEUE: usize = 2;
/// Memory one located blob in flight holds at most, counted against the upload stage's
/// budget: the reader's frame buffers (a compressed frame is decoded into a second buffer),
/// the chunks queued and the one in each side's hands.
pub(super) const COST: u64 =
    (2 * crate::bundle::seekable::FRAME_BYTES + (QUEUE + 2) * CHUNK) as u64;

/// The bundle, opened for reading blobs by offset.
pub(super) struct Located {
    random: RandomAccess,
    source: BundleSource,
}

impl Located {
    /// Opens `source` for reading by offset; `None` when its frames do not allow it (the read
    /// stage then reads every blob itself).
    pub fn open(source: &BundleSource) -> Option<Located> {
        Some(Located {
            random: RandomAccess::open(source)?,
            source: source.clone(),
        })
    }

    /// Reads `entry` from uncompressed `offset` and sends it on `chunks` (`Some(chunk)`
    /// each, then `None` once the blob matched its digest), counting the bytes sent in `read`
    /// (its bar); stops quietly when the receiver is gone (the upload failed and says why).
    /// Without the final `None` the upload fails.
    pub fn send(
        &self,
        entry: &BlobEntry,
        offset: u64,
        chunks: &tokio::sync::mpsc::Sender<Option<Bytes>>,
        read: &AtomicU64,
    ) -> Result<(), ImportError> {
        let mut reader = self.open_blob(entry, offset)?;
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            let n = (&mut reader)
                .take(CHUNK as u64)
                .read_to_end(&mut buf)
                .map_err(|e| self.failed(entry, &mut reader, e))?;
            if n == 0 {
                break;
            }
            if chunks.blocking_send(Some(Bytes::from(buf))).is_err() {
                return Ok(());
            }
            read.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = chunks.blocking_send(None);
        Ok(())
    }

    /// Reads and checks `entry` from uncompressed `offset` (a blob the target has already),
    /// counting the bytes read in `read`.
    pub fn check(
        &self,
        entry: &BlobEntry,
        offset: u64,
        read: &AtomicU64,
    ) -> Result<(), ImportError> {
        let mut reader = self.open_blob(entry, offset)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => read.fetch_add(n as u64, Ordering::Relaxed),
                Err(e) => return Err(self.failed(entry, &mut reader, e)),
            };
        }
    }

    fn open_blob(
        &self,
        entry: &BlobEntry,
        offset: u64,
    ) -> Result<CheckedReader<'static, impl Read>, ImportError> {
        let from = self
            .random
            .read_from(offset)
            .map_err(|e| self.corrupt(entry, e.to_string()))?;
        Ok(CheckedReader::new(
            from.take(entry.size),
            entry.digest.clone(),
            entry.size,
        ))
    }

    /// The error for a blob that failed to read or did not match its digest: a damaged part
    /// of a split bundle is named, as the read stage names it.
    fn failed<R: Read>(
        &self,
        entry: &BlobEntry,
        reader: &mut CheckedReader<'static, R>,
        e: io::Error,
    ) -> ImportError {
        if let BundleSource::Parts(set) = &self.source {
            if let Some(source) = set.first_damaged(usize::MAX) {
                return BundleError::Part {
                    path: set.path.clone(),
                    source,
                }
                .into();
            }
        }
        match reader.take_mismatch() {
            Some(actual) => BundleError::DigestMismatch {
                path: self.source.path().to_path_buf(),
                entry: blob_path(&entry.digest),
                expected: entry.digest.clone(),
                actual,
            }
            .into(),
            None => self.corrupt(entry, e.to_string()),
        }
    }

    fn corrupt(&self, entry: &BlobEntry, why: String) -> ImportError {
        BundleError::Corrupt {
            path: self.source.path().to_path_buf(),
            where_: format!("entry `{}`", blob_path(&entry.digest)),
            why,
        }
        .into()
    }
}

/// Whether the read stage leaves `entry` to be read here.
pub(super) fn is_large(entry: &BlobEntry) -> bool {
    entry.size > CHUNK_SIZE as u64
}
