//! The bundle format: one `.tar.zst` whose first entry, `airlock.json`, lists every artifact and
//! blob, followed by an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`).
//!
//! Entry order is fixed and checked: `airlock.json`, optional `airlock.json.sig`, `oci-layout`,
//! `index.json`, then the blobs exactly in the order `airlock.json` lists them (manifests first,
//! then the blobs of evidence artifacts (signatures, SBOMs, reports: see [`evidence`]), then
//! the rest, each group by size and digest). So a reader learns the whole plan, and every manifest,
//! before the first layer byte, and a missing, extra or duplicated entry is named precisely.

pub mod evidence;
pub mod frames;
pub mod manifest;
pub mod parts;
pub mod random;
pub mod reader;
pub mod seekable;
pub mod signature;
pub mod source;
pub mod writer;

pub use manifest::{Artifact, ArtifactKind, BlobEntry, BundleManifest, Child, OmittedBlob, Origin};
pub use reader::{read_bundle, BlobVisitor, BundleContents, BundleError};
pub use source::BundleSource;

/// Name of the bundle manifest entry.
pub const MANIFEST_ENTRY: &str = "airlock.json";
/// Name of the signature entry.
pub const SIGNATURE_ENTRY: &str = "airlock.json.sig";
/// Name of the OCI layout marker entry.
pub const LAYOUT_ENTRY: &str = "oci-layout";
/// Name of the OCI index entry.
pub const INDEX_ENTRY: &str = "index.json";
/// Content of `oci-layout`.
pub const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Format identifier in `airlock.json`.
pub const BUNDLE_FORMAT: &str = "airlock.bundle/v1";
/// The largest `airlock.json` accepted.
pub const MAX_MANIFEST_ENTRY: u64 = 64 * 1024 * 1024;
/// The largest `index.json` / signature file accepted.
pub const MAX_SMALL_ENTRY: u64 = 16 * 1024 * 1024;
/// The most manifest bytes a reader holds for one bundle, checked against the sizes
/// `airlock.json` lists before any is read (each is also capped at 4 MiB). A bundle of 1,000
/// multi-platform images holds a few MiB of manifests.
pub const MAX_MANIFESTS_TOTAL: u64 = 64 * 1024 * 1024;
/// The most a reader holds in memory for one bundle besides `airlock.json`: manifests and
/// evidence together, checked against the listed sizes before the evidence is read.
pub const MAX_HELD_TOTAL: u64 = 256 * 1024 * 1024;
/// zstd level used for bundles (fixed, part of reproducibility).
pub const ZSTD_LEVEL: i32 = 1;
/// zstd workers (fixed: the output depends on it).
pub const ZSTD_WORKERS: u32 = 2;

/// The path of a blob inside the layout.
pub fn blob_path(digest: &crate::oci::Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}
