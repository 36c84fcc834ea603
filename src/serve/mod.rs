//! `airlock serve`: a read-only OCI distribution registry straight from a bundle (or its split
//! parts), so a site can bootstrap its first registry or a node can pull directly.
//!
//! Opening checks the signature gate (as `verify` and `import` do) before anything else is read,
//! indexes the zstd frames ([`crate::bundle::seekable`]) and the tar entries ([`layout`]) without
//! unpacking, and reads and checks every manifest. Blobs stay in the bundle: each is decoded from
//! the nearest frame when requested and hashed as it streams ([`blob`]); the first complete read
//! marks it verified, and a mismatch aborts the response before its last bytes are sent.

pub mod blob;
pub mod catalog;
pub mod http;
pub mod layout;
pub mod routes;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::bundle::seekable::{index_frames, FrameError, FrameIndex};
use crate::bundle::signature::{SignaturePolicy, SignatureStatus};
use crate::bundle::{BundleContents, BundleError, BundleSource};
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::{media, Digest, ParsedManifest};

pub use catalog::Catalog;
pub use layout::BlobAt;

/// Why a bundle cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The bundle failed a check `verify` also makes (signature gate, `airlock.json`, parts).
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The bundle's files cannot be opened, or a part's size is not the listed one.
    #[error(transparent)]
    Open(#[from] crate::bundle::random::OpenError),
    /// The zstd frames cannot be walked.
    #[error("bundle `{path}`: {source}")]
    Frames {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        source: FrameError,
    },
    /// A tar entry `airlock.json` does not account for.
    #[error("bundle `{path}`: entry `{entry}` at uncompressed byte {offset}: {why}")]
    Entry {
        /// The bundle.
        path: PathBuf,
        /// Uncompressed offset of its header.
        offset: u64,
        /// Entry name.
        entry: String,
        /// What is wrong.
        why: String,
    },
    /// A blob `airlock.json` lists is not in the archive.
    #[error(
        "bundle `{path}`: blob {digest} listed in airlock.json is missing (truncated bundle?)"
    )]
    MissingBlob {
        /// The bundle.
        path: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// A manifest's bytes do not hash to its digest.
    #[error("bundle `{path}`: manifest {digest}: digest mismatch (got {actual}); the bundle was altered")]
    ManifestMismatch {
        /// The bundle.
        path: PathBuf,
        /// Expected digest.
        digest: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A manifest cannot be read or parsed.
    #[error("bundle `{path}`: manifest {digest}: {why}")]
    BadManifest {
        /// The bundle.
        path: PathBuf,
        /// The manifest.
        digest: Digest,
        /// What is wrong.
        why: String,
    },
    /// A delta bundle lacks blobs the site already holds: it cannot be served alone.
    #[error("bundle `{path}`: a delta bundle ({omitted} blobs left out for the receipt's registry) cannot be served on its own; serve a full bundle")]
    Delta {
        /// The bundle.
        path: PathBuf,
        /// Blobs left out.
        omitted: usize,
    },
    /// Two artifacts give one tag different digests.
    #[error("bundle `{path}`: tag `{repository}:{tag}` names both {first} and {second}")]
    TagConflict {
        /// The bundle.
        path: PathBuf,
        /// Repository.
        repository: String,
        /// Tag.
        tag: String,
        /// One digest.
        first: Digest,
        /// The other.
        second: Digest,
    },
    /// The TLS certificate or key cannot be used.
    #[error("TLS: `{path}`: {why}")]
    Tls {
        /// The certificate or key file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A manifest held in memory: its exact bytes and what airlock reads from it.
#[derive(Debug, Clone)]
pub struct HeldManifest {
    /// The exact bytes (what is served).
    pub bytes: Bytes,
    /// The media type `airlock.json` lists (the `Content-Type` served).
    pub media_type: String,
    /// The parsed view.
    pub parsed: ParsedManifest,
}

/// Something that went wrong while serving, for the operator's log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Incident {
    /// A blob's bytes did not hash to its digest: the response was cut short.
    #[error("blob {digest}: digest mismatch (got {actual}); response aborted, the bundle is damaged or was altered")]
    Mismatch {
        /// The blob.
        digest: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// Reading or decoding a blob failed: the response was cut short.
    #[error("blob {digest}: read failed, response aborted: {why}")]
    ReadFailed {
        /// The blob.
        digest: Digest,
        /// The error.
        why: String,
    },
}

/// Where the server reports incidents (the CLI prints them).
pub trait Log: Send + Sync {
    /// An incident happened.
    fn incident(&self, incident: &Incident);
}

/// An opened bundle, ready to serve.
pub struct Store {
    /// The bundle path, for messages.
    pub path: PathBuf,
    /// `airlock.json`, parsed.
    pub manifest: crate::bundle::BundleManifest,
    /// The signature gate's outcome.
    pub signature: SignatureStatus,
    /// The parts manifest signature gate's outcome (split bundles).
    pub parts_signature: Option<SignatureStatus>,
    /// Whether every zstd frame records its size (bundles written with seekable frames).
    pub seekable: bool,
    /// Frames indexed.
    pub frames: usize,
    compressed: Arc<Compressed>,
    frame_index: FrameIndex,
    blobs: HashMap<Digest, BlobAt>,
    manifests: HashMap<Digest, HeldManifest>,
    /// Repositories, tags and what each may serve.
    pub catalog: Catalog,
    verified: Mutex<HashSet<Digest>>,
}

use crate::bundle::random::Compressed;

impl Store {
    /// Opens `source`: the signature gate (parts manifest, then `airlock.json`) before anything
    /// else is read, then the frame and entry indexes and every manifest, checked.
    pub fn open(source: &BundleSource, policy: &SignaturePolicy) -> Result<Store, ServeError> {
        let path = source.path().to_path_buf();
        let parts_signature = source.check_parts_signature(policy)?;
        let toc = source.table_of_contents()?;
        let signature = crate::bundle::signature::check(&path, &toc, policy)?;
        if !toc.manifest.omitted.is_empty() {
            return Err(ServeError::Delta {
                path,
                omitted: toc.manifest.omitted.len(),
            });
        }
        let compressed = Arc::new(Compressed::open(source)?);
        let frame_index =
            index_frames(compressed.as_ref()).map_err(|source| ServeError::Frames {
                path: path.clone(),
                source,
            })?;
        let blobs = layout::locate(&compressed, &frame_index, &toc.manifest, &path)?;
        let manifests = read_manifests(&compressed, &frame_index, &toc, &blobs, &path)?;
        let contents = BundleContents {
            manifests: manifests
                .iter()
                .map(|(d, m)| (d.clone(), (m.bytes.clone(), m.parsed.clone())))
                .collect(),
            ..toc
        };
        crate::bundle::reader::check_complete(&path, &contents)?;
        let catalog = Catalog::build(&contents.manifest, &manifests, &path)?;
        Ok(Store {
            seekable: frame_index.uncompressed_len.is_some(),
            frames: frame_index.frames.len(),
            path,
            manifest: contents.manifest,
            signature,
            parts_signature,
            compressed,
            frame_index,
            blobs,
            manifests,
            catalog,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// A manifest by digest.
    pub fn manifest(&self, digest: &Digest) -> Option<&HeldManifest> {
        self.manifests.get(digest)
    }

    /// Where a blob lies.
    pub fn blob(&self, digest: &Digest) -> Option<BlobAt> {
        self.blobs.get(digest).copied()
    }

    /// Whether a blob has been read whole and matched its digest.
    pub fn is_verified(&self, digest: &Digest) -> bool {
        self.verified
            .lock()
            .map(|v| v.contains(digest))
            .unwrap_or(false)
    }

    fn mark_verified(&self, digest: &Digest) {
        if let Ok(mut v) = self.verified.lock() {
            v.insert(digest.clone());
        }
    }
}

/// Reads every manifest blob (they are small and listed first) and checks its digest.
fn read_manifests(
    src: &Arc<Compressed>,
    frames: &FrameIndex,
    toc: &BundleContents,
    blobs: &HashMap<Digest, BlobAt>,
    path: &std::path::Path,
) -> Result<HashMap<Digest, HeldManifest>, ServeError> {
    let mut out = HashMap::new();
    let mut decoder = None;
    let mut listed: Vec<_> = toc
        .manifest
        .blobs
        .iter()
        .filter(|b| media::is_manifest(&b.media_type))
        .filter_map(|b| blobs.get(&b.digest).map(|at| (at, b)))
        .collect();
    listed.sort_by_key(|(at, _)| at.offset);
    for (at, entry) in listed {
        let bad = |why: String| ServeError::BadManifest {
            path: path.to_path_buf(),
            digest: entry.digest.clone(),
            why,
        };
        if at.size > MAX_MANIFEST_BYTES as u64 {
            return Err(bad(format!("{} bytes, over the manifest limit", at.size)));
        }
        let mut d =
            crate::bundle::random::Decoded::reuse_or_open(decoder.take(), src, frames, at.offset)
                .map_err(|e| bad(e.to_string()))?;
        let mut bytes = vec![0u8; at.size as usize];
        d.read_exact(&mut bytes).map_err(|e| bad(e.to_string()))?;
        decoder = Some(d);
        let actual = Digest::of(&bytes);
        if actual != entry.digest {
            return Err(ServeError::ManifestMismatch {
                path: path.to_path_buf(),
                digest: entry.digest.clone(),
                actual,
            });
        }
        let parsed = ParsedManifest::parse(&bytes, Some(&entry.media_type))
            .map_err(|e| bad(crate::error_chain(&e)))?;
        out.insert(
            entry.digest.clone(),
            HeldManifest {
                bytes: Bytes::from(bytes),
                media_type: entry.media_type.clone(),
                parsed,
            },
        );
    }
    Ok(out)
}
