//! Streams a blob (or a range of it) out of the bundle, checked against its digest.
//!
//! A blob not yet verified is decoded from its first byte and hashed whole, even for a range
//! (only the range's bytes are sent), and the last chunk is held back until the digest matched:
//! on a mismatch the response is aborted short, so no client ever receives a complete-looking
//! body with wrong bytes. The first complete, matching read marks the blob verified; later reads
//! decode only from the frame nearest the range.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;

use crate::oci::digest::Hasher;
use crate::oci::Digest;

use super::{Incident, Log, Store};
use crate::bundle::random::Decoded;

/// Bytes per chunk sent to the client.
pub const CHUNK: usize = 256 * 1024;

/// Where chunks go; `false` when the client is gone.
pub trait Sink {
    /// Sends a chunk, or the error that aborts the response.
    fn send(&mut self, item: io::Result<Bytes>) -> bool;
}

/// Sends bytes `start..=end` of blob `digest` to `sink`, verifying as described above. Runs on
/// a blocking thread.
pub fn stream(
    store: &Arc<Store>,
    digest: &Digest,
    (start, end): (u64, u64),
    sink: &mut dyn Sink,
    log: &dyn Log,
) {
    let Some(at) = store.blob(digest) else {
        return;
    };
    let failed = |why: String, sink: &mut dyn Sink| {
        let incident = Incident::ReadFailed {
            digest: digest.clone(),
            why,
        };
        log.incident(&incident);
        sink.send(Err(io::Error::other(incident.to_string())));
    };
    if store.is_verified(digest) {
        let mut d = match Decoded::open(&store.compressed, &store.frame_index, at.offset + start) {
            Ok(d) => d,
            Err(e) => return failed(e.to_string(), sink),
        };
        let mut left = end - start + 1;
        while left > 0 {
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            if let Err(e) = d.read_exact(&mut buf) {
                return failed(e.to_string(), sink);
            }
            left -= buf.len() as u64;
            if !sink.send(Ok(Bytes::from(buf))) {
                return;
            }
        }
        return;
    }
    let mut d = match Decoded::open(&store.compressed, &store.frame_index, at.offset) {
        Ok(d) => d,
        Err(e) => return failed(e.to_string(), sink),
    };
    let mut hasher = Hasher::new();
    let mut held: Option<Bytes> = None;
    let mut pos = 0u64;
    while pos < at.size {
        let mut buf = vec![0u8; CHUNK.min((at.size - pos) as usize)];
        if let Err(e) = d.read_exact(&mut buf) {
            return failed(e.to_string(), sink);
        }
        hasher.update(&buf);
        let chunk_end = pos + buf.len() as u64;
        if chunk_end > start && pos <= end {
            let from = start.saturating_sub(pos) as usize;
            let to = ((end + 1).min(chunk_end) - pos) as usize;
            let piece = Bytes::from(buf).slice(from..to);
            if let Some(prev) = held.replace(piece) {
                if !sink.send(Ok(prev)) {
                    return;
                }
            }
        }
        pos = chunk_end;
    }
    let actual = hasher.finish();
    if &actual != digest {
        let incident = Incident::Mismatch {
            digest: digest.clone(),
            actual,
        };
        log.incident(&incident);
        sink.send(Err(io::Error::other(incident.to_string())));
        return;
    }
    store.mark_verified(digest);
    if let Some(last) = held {
        sink.send(Ok(last));
    }
}
