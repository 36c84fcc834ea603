//! The pack stage of `collect`: the bundle (or its parts) written in its fixed order, and the
//! OCI layout index it carries.

use std::path::{Path, PathBuf};

use super::{CollectError, CollectOptions};
use crate::bundle::parts::{PartsWriter, SplitReport};
use crate::bundle::writer::{write_bundle, write_stream, Contents};
use crate::bundle::BundleManifest;
use crate::oci::media;
use crate::progress::Reporter;

/// The pack stage: the bundle file at `out`, or with `opts.split` its parts in `out`'s
/// directory, written straight from the stream (one copy on disk, never the file and its parts).
pub(super) fn pack_stage(
    out: &Path,
    opts: &CollectOptions,
    contents: &Contents<'_>,
    ready: crate::bundle::writer::Ready<'_>,
    reporter: &dyn Reporter,
) -> Result<(crate::bundle::writer::Written, Option<SplitReport>), CollectError> {
    let Some(part_size) = opts.split else {
        return Ok((write_bundle(out, contents, ready, reporter)?, None));
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
    let (parts, written) = write_stream(parts, out, contents, ready, reporter)?;
    let report = parts.finish(&contents.manifest.name, &opts.signers)?;
    Ok((written, Some(report)))
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
