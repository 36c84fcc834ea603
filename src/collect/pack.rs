//! The pack stage of `collect`: the bundle (or its parts) written in its fixed order, and the
//! OCI layout index it carries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::download::Downloaded;
use super::{CollectError, CollectOptions};
use crate::bundle::parts::{PartsWriter, SplitReport};
use crate::bundle::writer::{write_bundle, write_stream, BlobData, Contents, InPlace, WriteError};
use crate::bundle::{BlobEntry, BundleManifest};
use crate::oci::{media, Digest};
use crate::progress::Reporter;

/// The pack stage: the bundle file at `out`, or with `opts.split` its parts in `out`'s
/// directory, written straight from the stream (one copy on disk, never the file and its parts),
/// its blobs taken in the manifest's order from `blobs`.
pub(super) fn pack_stage(
    out: &Path,
    opts: &CollectOptions,
    contents: &Contents<'_>,
    blobs: InPackOrder<'_>,
    reporter: &dyn Reporter,
) -> Result<(crate::bundle::writer::Written, Option<SplitReport>), CollectError> {
    let Some(part_size) = opts.split else {
        return Ok((write_bundle(out, contents, blobs, reporter)?, None));
    };
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts = PartsWriter::create(&dir, &name, part_size)?;
    let (parts, written) = write_stream(parts, out, contents, blobs, reporter)?;
    let report = parts.finish(&contents.manifest.name, &opts.signers)?;
    Ok((written, Some(report)))
}

/// The bundle's blobs in its fixed order, for the writer: those already in place (in memory,
/// or in the cache from before) from `in_place`, the rest from the download stage's queue as
/// they finish. A download that finishes before its turn waits in `early`: only its digest
/// and path, never its bytes, and no more than the download-ahead budget lets the download
/// stage run ahead.
pub(super) struct InPackOrder<'a> {
    blobs: std::slice::Iter<'a, BlobEntry>,
    in_place: &'a HashMap<Digest, BlobData>,
    downloads: tokio::sync::mpsc::Receiver<Downloaded>,
    early: HashMap<Digest, Downloaded>,
}

impl<'a> InPackOrder<'a> {
    /// The blobs of `manifest` in its order; those `in_place` lacks come from `downloads`.
    pub(super) fn new(
        manifest: &'a BundleManifest,
        in_place: &'a HashMap<Digest, BlobData>,
        downloads: tokio::sync::mpsc::Receiver<Downloaded>,
    ) -> Self {
        InPackOrder {
            blobs: manifest.blobs.iter(),
            in_place,
            downloads,
            early: HashMap::new(),
        }
    }

    /// Takes downloads off the queue (blocking) until `digest` comes.
    fn downloaded(&mut self, digest: &Digest) -> Result<Downloaded, WriteError> {
        if let Some(d) = self.early.remove(digest) {
            return Ok(d);
        }
        while let Some(d) = self.downloads.blocking_recv() {
            if &d.digest == digest {
                return Ok(d);
            }
            self.early.insert(d.digest.clone(), d);
        }
        Err(WriteError::Aborted(format!(
            "blob {digest} was not downloaded"
        )))
    }
}

impl Iterator for InPackOrder<'_> {
    type Item = Result<InPlace, WriteError>;

    fn next(&mut self) -> Option<Self::Item> {
        let blob = self.blobs.next()?;
        Some(match self.in_place.get(&blob.digest) {
            Some(data) => Ok(InPlace {
                digest: blob.digest.clone(),
                data: data.clone(),
            }),
            None => self.downloaded(&blob.digest).map(Downloaded::in_place),
        })
    }
}

/// The OCI layout `index.json`: one entry per artifact, named so `skopeo copy
/// oci-archive:BUNDLE.tar:NAME` finds it (NAME is the source reference without digest).
pub fn layout_index(m: &BundleManifest) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = m
        .artifacts
        .iter()
        .map(|a| {
            let size = m
                .blobs
                .iter()
                .find(|b| b.digest == a.digest)
                .map(|b| b.size)
                .unwrap_or(0);
            let ref_name = match (&a.registry, &a.tag) {
                (Some(reg), Some(tag)) => format!("{reg}/{}:{tag}", a.repository),
                (Some(reg), None) => format!("{reg}/{}", a.repository),
                (None, Some(tag)) => format!("{}:{tag}", a.repository),
                (None, None) => a.repository.to_string(),
            };
            serde_json::json!({
                "mediaType": a.media_type,
                "digest": a.digest,
                "size": size,
                "annotations": {
                    "org.opencontainers.image.ref.name": ref_name,
                    "io.airlock.source": a.source,
                }
            })
        })
        .collect();
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}
