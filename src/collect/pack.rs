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
    /// `blobs` (the manifest's list) in order; those `in_place` lacks come from `downloads`.
    pub(super) fn new(
        blobs: &'a [BlobEntry],
        in_place: &'a HashMap<Digest, BlobData>,
        downloads: tokio::sync::mpsc::Receiver<Downloaded>,
    ) -> Self {
        InPackOrder {
            blobs: blobs.iter(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(d: &Digest) -> BlobEntry {
        BlobEntry {
            digest: d.clone(),
            size: 1,
            media_type: "application/octet-stream".into(),
        }
    }

    /// Downloads finishing in any order come out in the manifest's order, each as a checked
    /// cache file; blobs already in place come out as they are; and the budget a download
    /// holds is given back once the writer has taken it.
    #[test]
    fn downloads_finishing_out_of_order_come_out_in_the_bundle_order() {
        let [m, a, b, c] = [b"m", b"a", b"b", b"c"].map(|x| Digest::of(&x[..]));
        let blobs: Vec<BlobEntry> = [&m, &a, &b, &c].into_iter().map(entry).collect();
        let in_place = HashMap::from([(m.clone(), BlobData::Memory(bytes::Bytes::from("m")))]);
        let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(3));
        let (tx, rx) = tokio::sync::mpsc::channel(3);
        for d in [&c, &a, &b] {
            let permit = budget.clone().try_acquire_owned().expect("permit");
            tx.try_send(Downloaded::new(d.clone(), d.hex().into(), permit))
                .expect("room");
        }
        drop(tx);
        let mut order = InPackOrder::new(&blobs, &in_place, rx);
        let first = order.next().expect("m").expect("in place");
        assert_eq!(first.digest, m);
        assert!(matches!(first.data, BlobData::Memory(_)));
        let second = order.next().expect("a").expect("downloaded");
        assert_eq!(second.digest, a);
        assert!(matches!(
            &second.data,
            BlobData::File { path, verified: true } if path == Path::new(a.hex())
        ));
        // `c` came first and waits, `b` is still in the queue; `a`'s share of the budget is
        // back.
        assert_eq!(order.early.len(), 1);
        assert_eq!(budget.available_permits(), 1);
        let rest: Vec<Digest> = order.map(|r| r.expect("blob").digest).collect();
        assert_eq!(rest, [b, c]);
        assert_eq!(budget.available_permits(), 3);
    }

    /// A blob the download stage never hands over (it stopped) is an error naming the blob.
    #[test]
    fn a_blob_that_never_arrives_is_named() {
        let a = Digest::of(b"a");
        let blobs = [entry(&a)];
        let in_place = HashMap::new();
        let (tx, rx) = tokio::sync::mpsc::channel::<Downloaded>(1);
        drop(tx);
        let err = InPackOrder::new(&blobs, &in_place, rx)
            .next()
            .expect("one blob")
            .expect_err("never downloaded");
        assert_eq!(
            err.to_string(),
            format!("bundle not written: blob {a} was not downloaded")
        );
    }
}
