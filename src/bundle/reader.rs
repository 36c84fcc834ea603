//! Reads a bundle as one stream: checks structure, order, sizes and every digest as the bytes go
//! past, and hands blobs to a visitor (`verify` drains them, `import` pushes them). Nothing is
//! extracted to disk; no entry is trusted before it has been checked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::evidence::{evidence_blobs, MAX_EVIDENCE_ARTIFACT, MAX_EVIDENCE_TOTAL};
use super::frames::{Chunk, FrameReader};
use super::{
    blob_path, BlobEntry, BundleManifest, BUNDLE_FORMAT, INDEX_ENTRY, LAYOUT_ENTRY, MANIFEST_ENTRY,
    MAX_HELD_TOTAL, MAX_MANIFESTS_TOTAL, MAX_MANIFEST_ENTRY, MAX_SMALL_ENTRY, SIGNATURE_ENTRY,
};
use crate::oci::digest::{short_blob, CheckedReader, Hasher};
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::{media, Digest, ManifestError, ManifestKind, ParsedManifest};
use crate::tarstream::{self, Extensions, TarError};
use crate::untrusted::shorten as shown_name;

/// What is wrong with a bundle. Every variant names the bundle and, where there is one, the entry.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Cannot open or read the file.
    #[error("bundle `{path}`: {source}")]
    Io {
        /// The bundle.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The compressed stream or tar structure is broken (truncated, corrupt).
    #[error("bundle `{path}`: {where_}: the archive is truncated or corrupt ({why})")]
    Corrupt {
        /// The bundle.
        path: PathBuf,
        /// Where (after which entry).
        where_: String,
        /// Decoder message.
        why: String,
    },
    /// An entry that must never be in a bundle (path escape, link, device…).
    #[error("bundle `{path}`: entry {index} `{entry}`: {why}")]
    UnsafeEntry {
        /// The bundle.
        path: PathBuf,
        /// Entry number (0-based).
        index: usize,
        /// Entry name as stored.
        entry: String,
        /// What is wrong.
        why: String,
    },
    /// An entry that is not where the format says it must be.
    #[error("bundle `{path}`: entry {index} `{entry}`: {why}")]
    UnexpectedEntry {
        /// The bundle.
        path: PathBuf,
        /// Entry number (0-based).
        index: usize,
        /// Entry name.
        entry: String,
        /// What was expected instead.
        why: String,
    },
    /// `airlock.json` does not parse or breaks a rule.
    #[error("bundle `{path}`: airlock.json: {why}")]
    BadManifest {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An entry's bytes do not hash to its name.
    #[error(
        "bundle `{path}`: entry `{entry}`: digest mismatch: expected {expected}, got {actual}"
    )]
    DigestMismatch {
        /// The bundle.
        path: PathBuf,
        /// Entry name.
        entry: String,
        /// Expected digest.
        expected: Digest,
        /// Actual digest.
        actual: Digest,
    },
    /// An entry's size differs from what `airlock.json` lists.
    #[error("bundle `{path}`: entry `{entry}`: size {actual} differs from the {expected} bytes airlock.json lists")]
    SizeMismatch {
        /// The bundle.
        path: PathBuf,
        /// Entry name.
        entry: String,
        /// Listed size.
        expected: u64,
        /// Size in the tar header.
        actual: u64,
    },
    /// The bundle carries no signature the policy can check (unsigned, or no `--trust` key
    /// given) and unsigned bundles are not allowed; nothing past `airlock.json` was read.
    #[error("bundle `{path}`: refused before reading any blob: {why}")]
    Unsigned {
        /// The bundle.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A signature that does not verify against the trusted keys (or too few of them); nothing
    /// past `airlock.json` was read.
    #[error("bundle `{path}`: refused before reading any blob: {why}")]
    Untrusted {
        /// The bundle.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A manifest blob that cannot be used.
    #[error("bundle `{path}`: {source}")]
    BadBlobManifest {
        /// The bundle.
        path: PathBuf,
        /// The manifest problem.
        source: ManifestError,
    },
    /// Something a manifest needs is not in the bundle.
    #[error("bundle `{path}`: incomplete: {why}")]
    Incomplete {
        /// The bundle.
        path: PathBuf,
        /// What is missing and who needs it.
        why: String,
    },
    /// A part of a split bundle is missing, the wrong size or damaged.
    #[error("bundle `{path}`: {source}")]
    Part {
        /// The parts manifest.
        path: PathBuf,
        /// Which part and what is wrong.
        source: super::parts::PartError,
    },
    /// A split bundle's parts manifest cannot be used (unreadable, malformed, parts missing).
    #[error("bundle `{path}`: {source}")]
    Parts {
        /// The parts manifest or directory.
        path: PathBuf,
        /// What is wrong.
        source: Box<super::parts::PartsError>,
    },
}

/// Everything small in a bundle, available before the first layer is read.
#[derive(Debug, Clone)]
pub struct BundleContents {
    /// Parsed `airlock.json`.
    pub manifest: BundleManifest,
    /// Its exact bytes (what signatures cover).
    pub manifest_bytes: Vec<u8>,
    /// `airlock.json.sig`, if present.
    pub signature: Option<Vec<u8>>,
    /// Every manifest blob, verified, by digest.
    pub manifests: BTreeMap<Digest, (Bytes, ParsedManifest)>,
    /// Every evidence blob (of signatures, attestations, SBOMs, reports), verified, by digest:
    /// complete when [`BlobVisitor::before_blobs`] runs.
    pub evidence: BTreeMap<Digest, Bytes>,
}

/// Receives a bundle's content as it streams. The error type lets callers add their own failures.
pub trait BlobVisitor {
    /// The visitor's error type.
    type Error: From<BundleError>;

    /// `airlock.json` (and signature) parsed, before anything else is read. Refuse here to stop
    /// before a single blob is read (an unsigned or untrusted bundle).
    fn manifest(&mut self, _contents: &BundleContents) -> Result<(), Self::Error> {
        Ok(())
    }

    /// All manifests and evidence blobs read, verified and checked for completeness, before
    /// the first other blob is handed to [`BlobVisitor::blob`]. Gates run here: refusing here
    /// means no blob was seen by the visitor. Evidence blobs are then passed to `blob` too.
    fn before_blobs(&mut self, _contents: &BundleContents) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Whether [`BlobVisitor::blob`] uses the blobs' bytes. A visitor that only verifies says
    /// no: the reader then hashes the blobs on worker threads, several blobs at once (each
    /// byte still hashed once), and does not call `blob` for them.
    fn reads_blobs(&self) -> bool {
        true
    }

    /// Offered each non-manifest, non-evidence blob before its bytes are read, with the
    /// uncompressed offset of its first byte. A visitor that returns `true` takes on reading
    /// *and checking* the blob itself, from the bundle at that offset
    /// ([`super::random::RandomAccess`]): the reader then passes over its bytes without hashing
    /// them (the zstd frames' checksums are still checked) and does not call
    /// [`BlobVisitor::blob`] for it. `import` reads large blobs so, several at once.
    fn defer(&mut self, _entry: &BlobEntry, _offset: u64) -> Result<bool, Self::Error> {
        Ok(false)
    }

    /// A non-manifest blob. `data` yields exactly its bytes and fails with an error at the end if
    /// they do not match the digest, so a visitor that commits only after reading to the end
    /// commits only verified bytes. Whatever the visitor leaves unread is drained and checked.
    fn blob(&mut self, _entry: &BlobEntry, data: &mut dyn Read) -> Result<(), Self::Error> {
        io::copy(data, &mut io::sink()).map(|_| ()).map_err(|e| {
            BundleError::Corrupt {
                path: PathBuf::new(),
                where_: "blob".into(),
                why: e.to_string(),
            }
            .into()
        })
    }
}

/// A visitor that checks the signature gate, then only verifies.
pub struct VerifyOnly<'a> {
    /// The bundle path, for messages.
    pub path: &'a Path,
    /// The signature policy.
    pub policy: &'a super::signature::SignaturePolicy,
    /// The gate's outcome, once `airlock.json` was read.
    pub status: Option<super::signature::SignatureStatus>,
}

impl BlobVisitor for VerifyOnly<'_> {
    type Error = BundleError;

    fn manifest(&mut self, contents: &BundleContents) -> Result<(), BundleError> {
        self.status = Some(super::signature::check(self.path, contents, self.policy)?);
        Ok(())
    }

    fn reads_blobs(&self) -> bool {
        false
    }
}

/// Counts of what was read.
#[derive(Debug, Clone)]
pub struct ReadSummary {
    /// The small contents.
    pub contents: BundleContents,
    /// Blob bytes read (uncompressed).
    pub blob_bytes: u64,
    /// Blobs read.
    pub blobs: usize,
}

/// Checks an entry's path and type without trusting anything in it.
fn check_entry_safety(
    path: &Path,
    index: usize,
    name: &str,
    kind: tar::EntryType,
) -> Result<(), BundleError> {
    let unsafe_entry = |why: &str| BundleError::UnsafeEntry {
        path: path.to_path_buf(),
        index,
        entry: shown_name(name),
        why: why.to_string(),
    };
    let p = Path::new(name);
    if p.is_absolute() || name.starts_with('/') {
        return Err(unsafe_entry(
            "absolute path; bundles hold relative paths only",
        ));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(unsafe_entry(
            "path contains `..` and would escape the bundle",
        ));
    }
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => Ok(()),
        tar::EntryType::Symlink => Err(unsafe_entry(
            "is a symlink; bundles contain regular files only",
        )),
        tar::EntryType::Link => Err(unsafe_entry(
            "is a hard link; bundles contain regular files only",
        )),
        other => Err(unsafe_entry(&format!(
            "has tar type {other:?}; bundles contain regular files only"
        ))),
    }
}

fn read_small<R: Read>(r: R, cap: u64) -> Result<Vec<u8>, crate::io::StreamError> {
    crate::io::read_stream_capped(r, cap, 0)
}

/// A tar-level failure: an extension header (never in a bundle) is an unsafe entry, anything
/// else a corrupt archive.
fn tar_error(path: &Path, where_: String, e: TarError) -> BundleError {
    match e {
        TarError::Extension { index, .. } | TarError::Unsupported { index, .. } => {
            BundleError::UnsafeEntry {
                path: path.to_path_buf(),
                index,
                entry: "(tar extension header)".into(),
                why: e.to_string(),
            }
        }
        TarError::Io(e) => BundleError::Corrupt {
            path: path.to_path_buf(),
            where_,
            why: e.to_string(),
        },
    }
}

/// Opens a bundle file and reads it through `visitor`.
pub fn read_bundle<V: BlobVisitor>(
    path: &Path,
    visitor: &mut V,
    progress: &dyn crate::progress::Reporter,
) -> Result<ReadSummary, V::Error> {
    let file = fs_err::File::open(path).map_err(|source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_bundle_from(
        io::BufReader::with_capacity(1 << 20, file),
        path,
        visitor,
        progress,
    )
}

/// Parses `airlock.json`, saying whether it is not JSON at all or JSON of the wrong shape.
fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<BundleManifest, BundleError> {
    serde_json::from_slice(bytes).map_err(|e| BundleError::BadManifest {
        path: path.to_path_buf(),
        why: if e.is_data() {
            format!("not a bundle manifest: {e}")
        } else {
            format!("not valid JSON: {e}")
        },
    })
}

/// Checks that `airlock.json` is internally sound: format, unique blobs, manifests first.
fn check_manifest(path: &Path, m: &BundleManifest) -> Result<(), BundleError> {
    let bad = |why: String| BundleError::BadManifest {
        path: path.to_path_buf(),
        why,
    };
    if m.format != BUNDLE_FORMAT {
        return Err(bad(format!(
            "format `{}` is not `{BUNDLE_FORMAT}`; this airlock reads only that",
            crate::untrusted::shorten(&m.format)
        )));
    }
    check_names(m).map_err(bad)?;
    let mut seen = HashSet::new();
    let mut in_manifests = true;
    for b in &m.blobs {
        if !seen.insert(&b.digest) {
            return Err(bad(format!("blob {} is listed twice", b.digest)));
        }
        let is_m = media::is_manifest(&b.media_type);
        if is_m && !in_manifests {
            return Err(bad(format!(
                "manifest blob {} is listed after non-manifest blobs",
                b.digest
            )));
        }
        in_manifests &= is_m;
        if is_m && b.size > MAX_MANIFEST_BYTES as u64 {
            return Err(bad(format!(
                "manifest blob {} is {} bytes, over the {MAX_MANIFEST_BYTES} limit",
                b.digest, b.size
            )));
        }
    }
    let manifests_total: u64 = manifest_bytes_listed(m);
    if manifests_total > MAX_MANIFESTS_TOTAL {
        return Err(bad(format!(
            "its manifest blobs total {manifests_total} bytes, over the {MAX_MANIFESTS_TOTAL}-byte limit a reader holds in memory"
        )));
    }
    if m.artifacts.is_empty() {
        return Err(bad("lists no artifacts".into()));
    }
    if !m.omitted.is_empty() && m.receipt.is_none() {
        return Err(bad("omits blobs but names no receipt".into()));
    }
    for o in &m.omitted {
        if !seen.insert(&o.digest) {
            return Err(bad(format!(
                "blob {} is both omitted and listed, or omitted twice",
                o.digest
            )));
        }
    }
    Ok(())
}

/// The bytes of every manifest blob `airlock.json` lists (what a reader keeps in memory).
fn manifest_bytes_listed(m: &BundleManifest) -> u64 {
    m.blobs
        .iter()
        .filter(|b| media::is_manifest(&b.media_type))
        .map(|b| b.size)
        .fold(0u64, u64::saturating_add)
}

/// Checks the names `airlock.json` holds that are not typed by parsing: media types become
/// request headers, a registry host becomes a path component with `--keep-source-host`.
/// (Repositories and tags are typed, so they were checked when the JSON was parsed.)
fn check_names(m: &BundleManifest) -> Result<(), String> {
    use crate::oci::name::valid_media_type;
    let media = |what: &str, t: &str| {
        if valid_media_type(t) {
            Ok(())
        } else {
            Err(format!(
                "{what}: `{}` is not a valid media type",
                crate::untrusted::shorten(t)
            ))
        }
    };
    for (i, a) in m.artifacts.iter().enumerate() {
        let what = format!("artifacts[{i}]");
        media(&what, &a.media_type)?;
        if let Some(t) = &a.artifact_type {
            media(&what, t)?;
        }
        for c in &a.children {
            media(&what, &c.media_type)?;
        }
        if let Some(r) = &a.registry {
            if !crate::reference::valid_host(r) {
                return Err(format!(
                    "{what}: `{}` is not a valid registry host",
                    crate::untrusted::shorten(r)
                ));
            }
        }
    }
    for b in &m.blobs {
        media(&format!("blob {}", b.digest), &b.media_type)?;
    }
    Ok(())
}

/// Checks that every artifact's manifests are present and everything they reference is listed.
pub(crate) fn check_complete(path: &Path, c: &BundleContents) -> Result<(), BundleError> {
    let incomplete = |why: String| BundleError::Incomplete {
        path: path.to_path_buf(),
        why,
    };
    let listed: HashMap<&Digest, &BlobEntry> =
        c.manifest.blobs.iter().map(|b| (&b.digest, b)).collect();
    // A delta bundle's omitted blobs count as listed (by size) but are never read.
    let omitted_entries: Vec<BlobEntry> = c
        .manifest
        .omitted
        .iter()
        .map(|o| BlobEntry {
            digest: o.digest.clone(),
            size: o.size,
            media_type: String::new(),
        })
        .collect();
    let listed: HashMap<&Digest, &BlobEntry> = listed
        .into_iter()
        .chain(omitted_entries.iter().map(|b| (&b.digest, b)))
        .collect();
    let mut referenced: HashSet<&Digest> = HashSet::new();
    let need_image = |digest: &Digest, who: &str| -> Result<(), BundleError> {
        let Some((_, parsed)) = c.manifests.get(digest) else {
            return Err(incomplete(format!(
                "{who}: manifest {digest} is not in the bundle"
            )));
        };
        if parsed.kind != ManifestKind::Image {
            return Err(incomplete(format!(
                "{who}: {digest} is an index where an image manifest was expected"
            )));
        }
        for d in parsed.blobs() {
            match listed.get(&d.digest) {
                None => {
                    return Err(incomplete(format!(
                        "{who}: blob {} needed by manifest {digest} is missing",
                        d.digest
                    )))
                }
                Some(b) if b.size != d.size => {
                    return Err(incomplete(format!(
                        "{who}: blob {} is {} bytes in airlock.json but {} in manifest {digest}",
                        d.digest, b.size, d.size
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    };
    for a in &c.manifest.artifacts {
        let who = a.source.as_str();
        let Some((_, root)) = c.manifests.get(&a.digest) else {
            return Err(incomplete(format!(
                "{who}: root manifest {} is not in the bundle",
                a.digest
            )));
        };
        referenced.insert(&a.digest);
        match root.kind {
            ManifestKind::Image => {
                need_image(&a.digest, who)?;
                for d in root.blobs() {
                    referenced.insert(&d.digest);
                }
            }
            ManifestKind::Index => {
                let in_index: HashSet<&Digest> = root.manifests.iter().map(|d| &d.digest).collect();
                let in_list: HashSet<&Digest> = a.children.iter().map(|d| &d.digest).collect();
                if in_index != in_list {
                    return Err(incomplete(format!(
                        "{who}: the children listed in airlock.json differ from those of index {}",
                        a.digest
                    )));
                }
                for child in a.children.iter().filter(|c| c.included) {
                    referenced.insert(&child.digest);
                    if media::is_index(&child.media_type) {
                        return Err(incomplete(format!(
                            "{who}: nested index {} is not supported",
                            child.digest
                        )));
                    }
                    need_image(&child.digest, who)?;
                    if let Some((_, m)) = c.manifests.get(&child.digest) {
                        for d in m.blobs() {
                            referenced.insert(&d.digest);
                        }
                    }
                }
            }
        }
    }
    for b in &c.manifest.blobs {
        if !referenced.contains(&b.digest) {
            return Err(incomplete(format!(
                "blob {} is listed but no artifact references it",
                b.digest
            )));
        }
    }
    for o in &c.manifest.omitted {
        if !referenced.contains(&o.digest) {
            return Err(incomplete(format!(
                "blob {} is listed as omitted but no artifact references it",
                o.digest
            )));
        }
    }
    Ok(())
}

/// Checks that the blobs of evidence artifacts are listed right after the manifests (from
/// position `start`) and fit in memory. Returns how many there are.
fn check_evidence(path: &Path, c: &BundleContents, start: usize) -> Result<usize, BundleError> {
    let bad = |why: String| BundleError::BadManifest {
        path: path.to_path_buf(),
        why,
    };
    let wanted = evidence_blobs(&c.manifest.artifacts, |d| {
        c.manifests.get(d).map(|(_, m)| m)
    });
    let listed = c
        .manifest
        .blobs
        .get(start..start + wanted.len())
        .unwrap_or_default();
    if let Some(out_of_place) = wanted
        .iter()
        .find(|d| !listed.iter().any(|b| &b.digest == *d))
    {
        return Err(bad(format!(
            "evidence blob {out_of_place} (of a signature, SBOM or report) must be listed right after the manifests, before any layer"
        )));
    }
    let total: u64 = listed
        .iter()
        .map(|b| b.size)
        .fold(0u64, u64::saturating_add);
    if total > MAX_EVIDENCE_TOTAL {
        return Err(bad(format!(
            "evidence blobs total {total} bytes, over the {MAX_EVIDENCE_TOTAL}-byte limit"
        )));
    }
    let held = total.saturating_add(manifest_bytes_listed(&c.manifest));
    if held > MAX_HELD_TOTAL {
        return Err(bad(format!(
            "manifests and evidence total {held} bytes, over the {MAX_HELD_TOTAL}-byte limit a reader holds in memory"
        )));
    }
    Ok(listed.len())
}

/// Runs the visitor's gate once all evidence is in memory, then hands it the evidence blobs.
fn release_evidence<V: BlobVisitor>(
    c: &BundleContents,
    evidence_end: usize,
    visitor: &mut V,
) -> Result<(), V::Error> {
    visitor.before_blobs(c)?;
    let start = evidence_end - c.evidence.len();
    for entry in &c.manifest.blobs[start..evidence_end] {
        if let Some(bytes) = c.evidence.get(&entry.digest) {
            visitor.blob(entry, &mut io::Cursor::new(bytes.as_ref()))?;
        }
    }
    Ok(())
}

/// Reads what follows the tar end-of-archive marker: only zero padding, up to a clean end of
/// the zstd stream (which checks the frame checksum).
fn check_end<R: Read>(mut rest: R) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match rest.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) if buf[..n].iter().all(|&b| b == 0) => {}
            Ok(_) => return Err("data follows the end-of-archive marker".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Reads a bundle from any byte stream (a file, or split parts read in sequence).
pub fn read_bundle_from<R: Read + Send, V: BlobVisitor>(
    input: R,
    path: &Path,
    visitor: &mut V,
    progress: &dyn crate::progress::Reporter,
) -> Result<ReadSummary, V::Error> {
    let dec = FrameReader::new(input).map_err(|e| BundleError::Corrupt {
        path: path.to_path_buf(),
        where_: "start".into(),
        why: e.to_string(),
    })?;
    // Decompression runs on its own thread, a frame or two ahead of the parsing and hashing
    // here: the two halves of the work overlap, as a `zstd -dc | sha256` pipeline's do.
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH_CHUNKS);
        let (back, spare) = std::sync::mpsc::channel();
        s.spawn(move || prefetch(dec, tx, spare));
        read_decoded(
            ChannelReader {
                rx,
                back,
                chunk: Chunk::default(),
                next: 0,
            },
            path,
            visitor,
            progress,
        )
    })
}

/// Decoded chunks (a frame each, at most 4 MiB) queued for the parser besides the one the
/// decoder holds ready: none. The decoder works one frame ahead of the parser (double
/// buffering), which keeps both busy; every frame queued would add 4 MiB to peak memory.
const PREFETCH_CHUNKS: usize = 0;

/// Decodes `from` to its end, sending each chunk (or the error that stopped it); a frame's
/// buffer travels as it is, not copied. The reader hands used chunks back through `spare` to
/// be filled again, so about four frame buffers exist: the parser's, the one sent next, and
/// the decoder's two (stored and compressed frames). Stops as soon as the receiving side is
/// gone.
fn prefetch<D: Read>(
    mut from: FrameReader<D>,
    to: std::sync::mpsc::SyncSender<io::Result<Chunk>>,
    spare: std::sync::mpsc::Receiver<Chunk>,
) {
    loop {
        let chunk = match from.next_chunk(spare.try_recv().unwrap_or_default()) {
            Ok(Some(chunk)) => Ok(chunk),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let failed = chunk.is_err();
        if to.send(chunk).is_err() || failed {
            return;
        }
    }
}

/// The parser's side of [`prefetch`]: a `Read` over the chunks as they arrive.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Chunk>>,
    /// Where used chunks go back to [`prefetch`] to be filled again.
    back: std::sync::mpsc::Sender<Chunk>,
    chunk: Chunk,
    /// The range of `chunk` being read.
    next: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((a, b)) = self.chunk.ranges.get_mut(self.next) {
                let n = buf.len().min(*b - *a);
                buf[..n].copy_from_slice(&self.chunk.buf[*a..*a + n]);
                *a += n;
                if a == b {
                    self.next += 1;
                }
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.chunk, chunk);
                    // Gone only once decompression ended; the chunk is then not needed.
                    let _ = self.back.send(used);
                    self.next = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The sender is gone after the end of the stream (or after an error it sent).
                Err(_) => return Ok(0),
            }
        }
    }
}

/// The reader proper, over the decompressed tar stream; with hashing workers when the
/// visitor does not read blobs.
fn read_decoded<D: Read, V: BlobVisitor>(
    dec: D,
    path: &Path,
    visitor: &mut V,
    progress: &dyn crate::progress::Reporter,
) -> Result<ReadSummary, V::Error> {
    if visitor.reads_blobs() {
        return read_entries(dec, path, visitor, progress, None);
    }
    std::thread::scope(|s| {
        let mut pool = HashPool::start(s);
        let read = read_entries(dec, path, visitor, progress, Some(&mut pool));
        // A blob handed to the workers was read before anything that failed after it, so
        // its mismatch is what a reader hashing in line would have stopped at first.
        match pool.finish(path) {
            Some(mismatch) => Err(mismatch.into()),
            None => read,
        }
    })
}

/// Over the tar entries: structure, order, sizes, digests; blobs go to the visitor, or to
/// `pool` to be hashed when there is one.
fn read_entries<D: Read, V: BlobVisitor>(
    dec: D,
    path: &Path,
    visitor: &mut V,
    progress: &dyn crate::progress::Reporter,
    mut pool: Option<&mut HashPool>,
) -> Result<ReadSummary, V::Error> {
    let p = || path.to_path_buf();
    let corrupt = |where_: String, e: &dyn std::fmt::Display| BundleError::Corrupt {
        path: p(),
        where_,
        why: e.to_string(),
    };
    let mut archive = tar::Archive::new(dec);
    // Raw entries: a long-name or PAX header is refused before its data is read (airlock
    // never writes one), so no header makes the reader buffer more than a block.
    let entries = tarstream::entries(&mut archive, Extensions::Refuse)
        .map_err(|e| corrupt("start".into(), &e))?;

    let mut contents: Option<BundleContents> = None;
    let mut layout_seen = false;
    let mut index_seen = false;
    let mut next_blob = 0usize;
    let mut blobs_started = false;
    // Blobs listed before this position are evidence, read whole before the gate.
    let mut evidence_end = 0usize;
    let mut gate_done = false;
    let mut blob_bytes = 0u64;
    let mut last_name = String::from("(start)");
    let mut seen_names: HashSet<String> = HashSet::new();

    for (index, entry) in entries.enumerate() {
        let entry = entry.map_err(|e| tar_error(path, format!("after entry `{last_name}`"), e))?;
        let name = entry.path_lossy();
        let mut entry = entry.inner;
        let kind = entry.header().entry_type();
        // Directory entries for the layout are harmless; anything else is checked strictly.
        if kind == tar::EntryType::Directory && (name == "blobs/" || name == "blobs/sha256/") {
            continue;
        }
        check_entry_safety(path, index, &name, kind)?;
        if !seen_names.insert(name.clone()) {
            return Err(BundleError::UnexpectedEntry {
                path: p(),
                index,
                entry: shown_name(&name),
                why: "duplicate entry".into(),
            }
            .into());
        }
        let unexpected = |why: String| BundleError::UnexpectedEntry {
            path: p(),
            index,
            entry: shown_name(&name),
            why,
        };
        let size = entry.size();
        last_name = shown_name(&name);
        if index == 0 {
            if name != MANIFEST_ENTRY {
                return Err(
                    unexpected(format!("the first entry must be `{MANIFEST_ENTRY}`")).into(),
                );
            }
            let bytes = read_small(&mut entry, MAX_MANIFEST_ENTRY)
                .map_err(|e| corrupt(format!("entry `{name}`"), &e))?;
            let manifest = parse_manifest(path, &bytes)?;
            check_manifest(path, &manifest)?;
            contents = Some(BundleContents {
                manifest,
                manifest_bytes: bytes,
                signature: None,
                manifests: BTreeMap::new(),
                evidence: BTreeMap::new(),
            });
            continue;
        }
        let Some(c) = contents.as_mut() else {
            return Err(unexpected("no airlock.json before it".into()).into());
        };
        if name == SIGNATURE_ENTRY {
            if index != 1 {
                return Err(unexpected(format!(
                    "`{SIGNATURE_ENTRY}` must directly follow `{MANIFEST_ENTRY}`"
                ))
                .into());
            }
            let bytes = read_small(&mut entry, MAX_SMALL_ENTRY)
                .map_err(|e| corrupt(format!("entry `{name}`"), &e))?;
            c.signature = Some(bytes);
            continue;
        }
        if name == LAYOUT_ENTRY {
            if index_seen || next_blob > 0 {
                return Err(unexpected(
                    "`oci-layout` must come before index.json and blobs".into(),
                )
                .into());
            }
            read_small(&mut entry, 4096).map_err(|e| corrupt(format!("entry `{name}`"), &e))?;
            layout_seen = true;
            // The signature decision happens once we know whether a signature entry exists.
            visitor.manifest(c)?;
            continue;
        }
        if name == INDEX_ENTRY {
            if !layout_seen || next_blob > 0 {
                return Err(unexpected(
                    "`index.json` must follow `oci-layout` and precede blobs".into(),
                )
                .into());
            }
            let bytes = read_small(&mut entry, MAX_SMALL_ENTRY)
                .map_err(|e| corrupt(format!("entry `{name}`"), &e))?;
            // Checked as JSON without building a tree (16 MiB of `[0,0,…]` is GiBs as values).
            serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
                .map_err(|e| unexpected(format!("index.json is not JSON: {e}")))?;
            index_seen = true;
            continue;
        }
        if !name.starts_with("blobs/sha256/") {
            return Err(unexpected("unknown entry; a bundle holds airlock.json, airlock.json.sig, oci-layout, index.json and blobs/sha256/<hex>".into()).into());
        }
        if !index_seen {
            return Err(unexpected("blob before `oci-layout` and `index.json`".into()).into());
        }
        let Some(expected) = c.manifest.blobs.get(next_blob).cloned() else {
            return Err(unexpected("blob not listed in airlock.json".into()).into());
        };
        if name != blob_path(&expected.digest) {
            let digest = Digest::from_hex(name.trim_start_matches("blobs/sha256/"));
            let why = match digest {
                Err(_) => "not a valid blob name".to_string(),
                Ok(d) if c.manifest.blobs[..next_blob].iter().any(|b| b.digest == d) => {
                    "duplicate blob".to_string()
                }
                Ok(d) if c.manifest.blobs.iter().any(|b| b.digest == d) => format!(
                    "out of order: blob {} (listed at position {next_blob}) is missing before it",
                    expected.digest
                ),
                Ok(_) => "blob not listed in airlock.json".to_string(),
            };
            return Err(unexpected(why).into());
        }
        if size != expected.size {
            return Err(BundleError::SizeMismatch {
                path: p(),
                entry: name,
                expected: expected.size,
                actual: size,
            }
            .into());
        }
        next_blob += 1;
        // Reads a small blob whole and checks its digest.
        let mut read_whole = |cap: u64| -> Result<Vec<u8>, BundleError> {
            let bytes =
                read_small(&mut entry, cap).map_err(|e| corrupt(format!("entry `{name}`"), &e))?;
            let actual = Digest::of(&bytes);
            if actual != expected.digest {
                return Err(BundleError::DigestMismatch {
                    path: p(),
                    entry: name.clone(),
                    expected: expected.digest.clone(),
                    actual,
                });
            }
            Ok(bytes)
        };
        if media::is_manifest(&expected.media_type) {
            let bytes = read_whole(MAX_MANIFEST_BYTES as u64)?;
            let parsed = ParsedManifest::parse(&bytes, Some(&expected.media_type))
                .map_err(|source| BundleError::BadBlobManifest { path: p(), source })?;
            if parsed.media_type != expected.media_type {
                return Err(unexpected(format!(
                    "manifest says media type `{}` but airlock.json lists `{}`",
                    parsed.media_type, expected.media_type
                ))
                .into());
            }
            progress.advance(bytes.len() as u64);
            blob_bytes += bytes.len() as u64;
            c.manifests
                .insert(expected.digest.clone(), (Bytes::from(bytes), parsed));
            continue;
        }
        if !blobs_started {
            blobs_started = true;
            check_complete(path, c)?;
            evidence_end = next_blob - 1 + check_evidence(path, c, next_blob - 1)?;
        }
        if next_blob <= evidence_end {
            let bytes = read_whole(MAX_EVIDENCE_ARTIFACT)?;
            progress.advance(bytes.len() as u64);
            blob_bytes += bytes.len() as u64;
            c.evidence
                .insert(expected.digest.clone(), Bytes::from(bytes));
            if next_blob == evidence_end {
                gate_done = true;
                release_evidence(c, evidence_end, visitor)?;
            }
            continue;
        }
        if !gate_done {
            gate_done = true;
            visitor.before_blobs(c)?;
        }
        if pool.is_none() && visitor.defer(&expected, entry.raw_file_position())? {
            let passed = io::copy(&mut entry, &mut io::sink())
                .map_err(|e| corrupt(format!("entry `{name}`"), &e))?;
            if passed != expected.size {
                return Err(corrupt(
                    format!("entry `{name}`"),
                    &format!("cut short after {passed} of {} bytes", expected.size),
                )
                .into());
            }
            progress.advance(expected.size);
            blob_bytes += expected.size;
            continue;
        }
        // Each blob is a task of its own (a bar while it is read), its bytes also the phase's.
        let task_id = format!("read {}", expected.digest);
        progress.task_start(
            &task_id,
            &format!("read {}", expected.digest.short()),
            expected.size,
        );
        let task = crate::progress::TaskInPhase {
            parent: progress,
            id: &task_id,
        };
        if let Some(pool) = pool.as_deref_mut() {
            let hashed = pool.hash(&mut entry, next_blob - 1, &expected, &task);
            progress.task_done(&task_id);
            hashed.map_err(|e| corrupt(format!("entry `{name}`"), &e))?;
            blob_bytes += expected.size;
            continue;
        }
        let mut reader = CheckedReader::new(&mut entry, expected.digest.clone(), expected.size)
            .with_progress(&task);
        let visited = visitor.blob(&expected, &mut reader);
        // Whatever the visitor left unread is read and checked here.
        let drained = io::copy(&mut reader, &mut io::sink());
        progress.task_done(&task_id);
        if let Some(actual) = reader.take_mismatch() {
            return Err(BundleError::DigestMismatch {
                path: p(),
                entry: name,
                expected: expected.digest,
                actual,
            }
            .into());
        }
        if let Err(e) = drained {
            return Err(corrupt(format!("entry `{name}`"), &e).into());
        }
        visited?;
        blob_bytes += expected.size;
    }
    let Some(c) = contents else {
        return Err(BundleError::Corrupt {
            path: p(),
            where_: "start".into(),
            why: "no entries (empty or not a bundle)".into(),
        }
        .into());
    };
    if !layout_seen || !index_seen {
        return Err(BundleError::Incomplete {
            path: p(),
            why: "oci-layout or index.json is missing".into(),
        }
        .into());
    }
    if next_blob < c.manifest.blobs.len() {
        let missing = &c.manifest.blobs[next_blob];
        return Err(BundleError::Incomplete {
            path: p(),
            why: format!(
                "blob {} ({} bytes) and {} more listed in airlock.json are missing (truncated bundle?)",
                missing.digest,
                missing.size,
                c.manifest.blobs.len() - next_blob - 1
            ),
        }
        .into());
    }
    // The end-of-archive marker is not the end of the file: read the rest too, so a bundle cut
    // short after its last entry, or with anything appended, is refused like any other.
    check_end(archive.into_inner()).map_err(|why| BundleError::Corrupt {
        path: p(),
        where_: format!("after the last entry `{last_name}`"),
        why,
    })?;
    if !blobs_started {
        check_complete(path, &c)?;
    }
    if !gate_done {
        visitor.before_blobs(&c)?;
    }
    Ok(ReadSummary {
        blobs: next_blob,
        blob_bytes,
        contents: c,
    })
}

/// Buffers of blob bytes between the reader and the hashing workers (what bounds the memory
/// the workers add), each [`HASH_CHUNK`] bytes.
const HASH_BUFFERS: usize = 8;
/// Size of one buffer handed to a hashing worker.
const HASH_CHUNK: usize = 1 << 20;

/// A message to a hashing worker.
enum HashJob {
    /// A new blob: its position in `airlock.json` and what it must hash to.
    Start(usize, Digest),
    /// The next bytes of the current blob: the buffer and how much of it is filled.
    Data(Vec<u8>, usize),
    /// The current blob was read whole: compare its digest.
    End,
}

/// A blob whose bytes did not hash to its name.
struct HashMismatch {
    at: usize,
    expected: Digest,
    actual: Digest,
}

/// Hashes the blobs a visitor does not read on worker threads (one blob per worker at a time;
/// each new blob goes to the worker with the least bytes queued), so verifying a bundle uses
/// every core while decompression runs on another thread. Each byte is still hashed once.
struct HashPool {
    workers: Vec<(
        std::sync::mpsc::SyncSender<HashJob>,
        std::sync::Arc<AtomicU64>,
    )>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    mismatches: std::sync::mpsc::Receiver<HashMismatch>,
}

impl HashPool {
    fn start<'s>(scope: &'s std::thread::Scope<'s, '_>) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        let (back, spare) = std::sync::mpsc::channel();
        for _ in 0..HASH_BUFFERS {
            let _ = back.send(vec![0u8; HASH_CHUNK]);
        }
        let (found, mismatches) = std::sync::mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<HashJob>(2 * HASH_BUFFERS);
                let queued = std::sync::Arc::new(AtomicU64::new(0));
                let (back, found, q) = (back.clone(), found.clone(), queued.clone());
                scope.spawn(move || {
                    let mut current: Option<(usize, Digest, Hasher)> = None;
                    // Ends when the reader drops its sender; a blob left without `End` (the
                    // reader failed inside it) is not judged.
                    for job in rx {
                        match job {
                            HashJob::Start(at, digest) => {
                                current = Some((at, digest, Hasher::new()))
                            }
                            HashJob::Data(buf, n) => {
                                if let Some((_, _, h)) = current.as_mut() {
                                    h.update(&buf[..n]);
                                }
                                q.fetch_sub(n as u64, Ordering::Relaxed);
                                let _ = back.send(buf);
                            }
                            HashJob::End => {
                                if let Some((at, expected, h)) = current.take() {
                                    let actual = h.finish();
                                    if actual != expected {
                                        let _ = found.send(HashMismatch {
                                            at,
                                            expected,
                                            actual,
                                        });
                                    }
                                }
                            }
                        }
                    }
                });
                (tx, queued)
            })
            .collect();
        Self {
            workers,
            spare,
            mismatches,
        }
    }

    /// Reads the blob listed at `at` from `data` to its end and queues it for hashing.
    /// Fails if the stream fails or ends before the blob does.
    fn hash(
        &mut self,
        data: &mut dyn Read,
        at: usize,
        blob: &BlobEntry,
        progress: &dyn crate::progress::Reporter,
    ) -> io::Result<()> {
        let Some((worker, queued)) = self
            .workers
            .iter()
            .min_by_key(|(_, q)| q.load(Ordering::Relaxed))
        else {
            return Err(io::Error::other("no hashing worker"));
        };
        let gone = || io::Error::other("a hashing worker stopped");
        worker
            .send(HashJob::Start(at, blob.digest.clone()))
            .map_err(|_| gone())?;
        let mut read = 0u64;
        while read < blob.size {
            let mut buf = self.spare.recv().map_err(|_| gone())?;
            let want = usize::try_from(blob.size - read).map_or(buf.len(), |r| r.min(buf.len()));
            let mut n = 0;
            while n < want {
                match data.read(&mut buf[n..want]) {
                    Ok(0) => return Err(short_blob(&blob.digest, read + n as u64, blob.size)),
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            read += n as u64;
            progress.advance(n as u64);
            queued.fetch_add(n as u64, Ordering::Relaxed);
            worker.send(HashJob::Data(buf, n)).map_err(|_| gone())?;
        }
        worker.send(HashJob::End).map_err(|_| gone())
    }

    /// Waits for the workers to hash everything queued; the first blob (in bundle order)
    /// whose digest did not match, if any.
    fn finish(self, path: &Path) -> Option<BundleError> {
        drop(self.workers);
        self.mismatches
            .iter()
            .min_by_key(|m| m.at)
            .map(|m| BundleError::DigestMismatch {
                path: path.to_path_buf(),
                entry: blob_path(&m.expected),
                expected: m.expected,
                actual: m.actual,
            })
    }
}

/// Reads only `airlock.json` (the first entry) and the signature if present: what `inspect`
/// shows, without touching a blob.
pub fn read_table_of_contents(path: &Path) -> Result<BundleContents, BundleError> {
    let file = fs_err::File::open(path).map_err(|source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_table_of_contents_from(io::BufReader::new(file), path)
}

/// [`read_table_of_contents`] from any byte stream (a file, or split parts read in sequence);
/// `path` names the bundle in messages.
pub fn read_table_of_contents_from<R: Read>(
    input: R,
    path: &Path,
) -> Result<BundleContents, BundleError> {
    let corrupt = |where_: &str, e: &dyn std::fmt::Display| BundleError::Corrupt {
        path: path.to_path_buf(),
        where_: where_.to_string(),
        why: e.to_string(),
    };
    let dec = FrameReader::new(input).map_err(|e| corrupt("start", &e))?;
    let mut archive = tar::Archive::new(dec);
    let mut entries =
        tarstream::entries(&mut archive, Extensions::Refuse).map_err(|e| corrupt("start", &e))?;
    let first = entries
        .next()
        .ok_or_else(|| corrupt("start", &"no entries (empty or not a bundle)"))?
        .map_err(|e| tar_error(path, "start".into(), e))?;
    let name = first.path_lossy();
    let mut first = first.inner;
    check_entry_safety(path, 0, &name, first.header().entry_type())?;
    if name != MANIFEST_ENTRY {
        return Err(BundleError::UnexpectedEntry {
            path: path.to_path_buf(),
            index: 0,
            entry: shown_name(&name),
            why: format!("the first entry must be `{MANIFEST_ENTRY}`"),
        });
    }
    let bytes = read_small(&mut first, MAX_MANIFEST_ENTRY)
        .map_err(|e| corrupt("entry `airlock.json`", &e))?;
    drop(first);
    let manifest = parse_manifest(path, &bytes)?;
    check_manifest(path, &manifest)?;
    let mut signature = None;
    if let Some(Ok(second)) = entries.next() {
        if second.path == SIGNATURE_ENTRY.as_bytes() {
            signature = Some(
                read_small(second.inner, MAX_SMALL_ENTRY)
                    .map_err(|e| corrupt("entry `airlock.json.sig`", &e))?,
            );
        }
    }
    Ok(BundleContents {
        manifest,
        manifest_bytes: bytes,
        signature,
        manifests: BTreeMap::new(),
        evidence: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Artifact, ArtifactKind, OmittedBlob};

    /// A one-image bundle's contents whose layer is omitted (a delta bundle).
    fn delta() -> (BundleContents, Digest) {
        let config = b"{}".to_vec();
        let layer = b"layer bytes".to_vec();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::of(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": Digest::of(&layer), "size": layer.len()}],
        }))
        .expect("json");
        let mdigest = Digest::of(&manifest);
        let parsed = ParsedManifest::parse(&manifest, Some(media::OCI_MANIFEST)).expect("parse");
        let m = BundleManifest {
            format: BUNDLE_FORMAT.into(),
            name: "d".into(),
            created: "1970-01-01T00:00:00Z".into(),
            sequence: 0,
            tool: "test".into(),
            lock_digest: Digest::of(b"lock"),
            artifacts: vec![Artifact {
                kind: ArtifactKind::Image,
                source: "r/a:1".into(),
                registry: Some("r".into()),
                repository: "a".parse().expect("repository"),
                tag: Some("1".parse().expect("tag")),
                digest: mdigest.clone(),
                media_type: media::OCI_MANIFEST.into(),
                platforms: vec![],
                children: vec![],
                size: 0,
                verification: vec![],
                subject: None,
                artifact_type: None,
                scan: None,
                origin: crate::bundle::Origin::Upstream,
            }],
            blobs: vec![
                BlobEntry {
                    digest: mdigest.clone(),
                    size: manifest.len() as u64,
                    media_type: media::OCI_MANIFEST.into(),
                },
                BlobEntry {
                    digest: Digest::of(&config),
                    size: config.len() as u64,
                    media_type: "application/vnd.oci.image.config.v1+json".into(),
                },
            ],
            receipt: Some(Digest::of(b"receipt")),
            omitted: vec![OmittedBlob {
                digest: Digest::of(&layer),
                size: layer.len() as u64,
                repositories: vec![],
            }],
        };
        let mut manifests = BTreeMap::new();
        manifests.insert(mdigest, (Bytes::from(manifest), parsed));
        (
            BundleContents {
                manifest: m,
                manifest_bytes: Vec::new(),
                signature: None,
                manifests,
                evidence: BTreeMap::new(),
            },
            Digest::of(&layer),
        )
    }

    fn check(c: &BundleContents) -> Result<(), BundleError> {
        let p = Path::new("b.tar.zst");
        check_manifest(p, &c.manifest)?;
        check_complete(p, c)
    }

    #[test]
    fn accepts_exactly_the_listed_omissions() {
        let (c, _) = delta();
        check(&c).expect("a delta bundle whose omissions are listed is complete");

        let mut no_list = c.clone();
        no_list.manifest.omitted.clear();
        let e = check(&no_list).expect_err("a missing layer not listed as omitted");
        assert!(e.to_string().contains("is missing"), "{e}");

        let mut wrong_size = c.clone();
        wrong_size.manifest.omitted[0].size += 1;
        let e = check(&wrong_size).expect_err("omitted with another size");
        assert!(e.to_string().contains("bytes in airlock.json"), "{e}");

        let mut no_receipt = c.clone();
        no_receipt.manifest.receipt = None;
        let e = check(&no_receipt).expect_err("omissions without a receipt");
        assert!(e.to_string().contains("names no receipt"), "{e}");

        let mut both = c.clone();
        let config = both.manifest.blobs[1].clone();
        both.manifest.omitted.push(OmittedBlob {
            digest: config.digest,
            size: config.size,
            repositories: vec![],
        });
        let e = check(&both).expect_err("a blob both carried and omitted");
        assert!(e.to_string().contains("both omitted and listed"), "{e}");

        let mut stray = c;
        stray.manifest.omitted.push(OmittedBlob {
            digest: Digest::of(b"unrelated"),
            size: 9,
            repositories: vec![],
        });
        let e = check(&stray).expect_err("an omission nothing references");
        assert!(e.to_string().contains("no artifact references it"), "{e}");
    }
}
