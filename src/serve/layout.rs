//! Where each blob lies in the uncompressed tar stream: the tar headers are walked by offset
//! (each at a frame start in bundles written with seekable frames, so only its 512 bytes are
//! decoded; one decoding pass for older bundles), checked against `airlock.json`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::bundle::seekable::FrameIndex;
use crate::bundle::{
    blob_path, BundleManifest, INDEX_ENTRY, LAYOUT_ENTRY, MANIFEST_ENTRY, SIGNATURE_ENTRY,
};
use crate::oci::Digest;

use super::ServeError;
use crate::bundle::random::{Compressed, Decoded};

/// A blob's place in the uncompressed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobAt {
    /// Uncompressed offset of its first byte.
    pub offset: u64,
    /// Its size (as `airlock.json` lists it).
    pub size: u64,
}

const BLOCK: u64 = 512;

/// Finds every blob `manifest` lists. Refuses an entry `airlock.json` does not account for, a
/// size that differs from the listed one, a duplicate, a tar extension header and a listed blob
/// that is not there. (The bytes themselves are checked against their digests when served.)
pub fn locate(
    src: &Arc<Compressed>,
    frames: &FrameIndex,
    manifest: &BundleManifest,
    path: &Path,
) -> Result<HashMap<Digest, BlobAt>, ServeError> {
    let listed: HashMap<String, (&Digest, u64)> = manifest
        .blobs
        .iter()
        .map(|b| (blob_path(&b.digest), (&b.digest, b.size)))
        .collect();
    let mut found: HashMap<Digest, BlobAt> = HashMap::with_capacity(listed.len());
    // airlock.json, its signature, oci-layout, index.json, two directories at most, the blobs.
    let max_entries = listed.len() + 6;
    let mut at = 0u64;
    let mut decoder: Option<Decoded> = None;
    for index in 0.. {
        let bad = |why: String, entry: &str| ServeError::Entry {
            path: path.to_path_buf(),
            offset: at,
            entry: crate::untrusted::shorten(entry),
            why,
        };
        let io_err = |e: std::io::Error| bad(format!("cannot read the tar header: {e}"), "?");
        let mut d = Decoded::reuse_or_open(decoder.take(), src, frames, at).map_err(io_err)?;
        let mut block = [0u8; BLOCK as usize];
        d.read_exact(&mut block).map_err(io_err)?;
        if block.iter().all(|&b| b == 0) {
            break;
        }
        if index >= max_entries {
            return Err(bad("more entries than airlock.json lists".into(), "?"));
        }
        let header = tar::Header::from_byte_slice(&block);
        let name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
        let size = header
            .entry_size()
            .map_err(|e| bad(format!("bad size field: {e}"), &name))?;
        let kind = header.entry_type();
        let data = at + BLOCK;
        match (kind, name.as_str()) {
            (tar::EntryType::Directory, "blobs/" | "blobs/sha256/") => {}
            (
                tar::EntryType::Regular,
                MANIFEST_ENTRY | SIGNATURE_ENTRY | LAYOUT_ENTRY | INDEX_ENTRY,
            ) => {}
            (tar::EntryType::Regular, _) => {
                let Some((digest, listed_size)) = listed.get(&name) else {
                    return Err(bad("not listed in airlock.json".into(), &name));
                };
                if size != *listed_size {
                    return Err(bad(
                        format!("{size} bytes, but airlock.json lists {listed_size}"),
                        &name,
                    ));
                }
                let place = BlobAt { offset: data, size };
                if found.insert((*digest).clone(), place).is_some() {
                    return Err(bad("duplicate entry".into(), &name));
                }
            }
            (other, _) => {
                return Err(bad(
                    format!("tar type {other:?}; bundles hold regular files only"),
                    &name,
                ))
            }
        }
        at = data
            .checked_add(size.div_ceil(BLOCK) * BLOCK)
            .ok_or_else(|| bad("size out of range".into(), &name))?;
        decoder = Some(d);
    }
    if let Some(missing) = manifest
        .blobs
        .iter()
        .find(|b| !found.contains_key(&b.digest))
    {
        return Err(ServeError::MissingBlob {
            path: path.to_path_buf(),
            digest: missing.digest.clone(),
        });
    }
    Ok(found)
}
