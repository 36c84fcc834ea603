//! Where the images to scan come from, and how their layers get to files in layer order.
//!
//! - **Registry** (`airlock scan REF`): the manifest (and, for an index, each platform's
//!   manifest) is fetched byte-exact; layers are downloaded into the content-addressed blob
//!   cache that `collect` uses (`CACHE/sha256/<hex>`, digest and size checked while writing), so
//!   a later collect of the same image downloads nothing again. Disk: the image's compressed
//!   layers, kept in the cache. Memory: one download buffer per blob.
//! - **Bundle** (`airlock scan BUNDLE`): a bundle stores blobs by size, not in layer order, so it
//!   is read once with the streaming reader (every digest checked) and the layers (and configs)
//!   of the images to scan are copied to a spool directory the caller owns and deletes
//!   afterwards. Disk: the compressed layers of the images scanned, for the length of the scan;
//!   memory: the bundle's manifests only.
//!
//! Either way [`super::image::scan_image`] then streams each layer file bottom first.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::image::{config_platform, layers_needed, Target};
use crate::bundle::reader::{BlobVisitor, BundleContents, BundleError};
use crate::bundle::signature::SignaturePolicy;
use crate::bundle::source::BundleSource;
use crate::bundle::{ArtifactKind, BlobEntry};
use crate::oci::digest::CheckedReader;
use crate::oci::{
    media, Descriptor, Digest, ManifestError, ManifestKind, ParsedManifest, Platform,
};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError, Repo};

/// Why the images to scan could not be found or fetched. Every variant names the image or file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Registry trouble.
    #[error("{image}: {source}")]
    Registry {
        /// The image.
        image: String,
        /// The error.
        source: RegistryError,
    },
    /// A manifest that cannot be read.
    #[error("{image}: {source}")]
    Manifest {
        /// The image.
        image: String,
        /// The error.
        source: ManifestError,
    },
    /// The bundle cannot be read.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Local I/O.
    #[error("`{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// No platform of the image is the one asked for.
    #[error("{image}: no image for platform {wanted} (it has: {have})")]
    NoPlatform {
        /// The image.
        image: String,
        /// The platform asked for.
        wanted: String,
        /// What it has.
        have: String,
    },
    /// A bundle with no image in it.
    #[error("bundle `{path}` carries no image to scan")]
    NoImages {
        /// The bundle.
        path: PathBuf,
    },
    /// A blob file from an earlier run (the cache) is not the blob its name says.
    #[error("`{path}`: blob {digest}: {source}; delete the file and it is fetched again")]
    BadBlobFile {
        /// The file.
        path: PathBuf,
        /// The blob it should hold.
        digest: Digest,
        /// The size or digest mismatch, or the read error.
        source: io::Error,
    },
}

/// The file a blob is kept in, in a content-addressed directory (`DIR/sha256/<hex>`): the collect
/// cache's layout.
pub fn blob_file(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("sha256").join(digest.hex())
}

/// A content-addressed directory a scan reads blobs from (`dir/sha256/<hex>`), and which of
/// them this run wrote there through a digest check moments ago. A scan reads those with a
/// length check only, so no byte is hashed twice; it checks every other file (a cache entry
/// from an earlier run) against its digest as it reads it.
#[derive(Debug, Clone, Copy)]
pub struct BlobDir<'a> {
    /// The directory.
    pub dir: &'a Path,
    /// Blobs this run wrote into it through a digest check.
    pub checked: &'a HashSet<Digest>,
}

impl BlobDir<'_> {
    /// The file `digest` is kept in.
    pub fn file(&self, digest: &Digest) -> PathBuf {
        blob_file(self.dir, digest)
    }

    /// Checks the files of `blobs` against their digests and sizes, except those this run
    /// wrote through a digest check: for a tool that reads the files itself (Trivy), so it
    /// never sees a byte that was not checked, and no byte is hashed twice.
    pub fn check<'d>(
        &self,
        blobs: impl IntoIterator<Item = &'d Descriptor>,
    ) -> Result<(), SourceError> {
        for d in blobs {
            if self.checked.contains(&d.digest) {
                continue;
            }
            let path = self.file(&d.digest);
            let bad = |source| SourceError::BadBlobFile {
                path: path.clone(),
                digest: d.digest.clone(),
                source,
            };
            let file = std::fs::File::open(&path).map_err(bad)?;
            let mut reader = CheckedReader::new(
                io::BufReader::with_capacity(1 << 20, file),
                d.digest.clone(),
                d.size,
            );
            io::copy(&mut reader, &mut io::sink()).map_err(bad)?;
        }
        Ok(())
    }
}

/// The images a source gave to scan, and the blobs it wrote for them through a digest check
/// (see [`BlobDir`]).
#[derive(Debug)]
pub struct Sourced {
    /// The images (platforms) to scan, layers bottom first.
    pub targets: Vec<Target>,
    /// Blobs downloaded or copied into the directory this run, each checked on the way.
    pub checked: HashSet<Digest>,
}

fn selected(p: Option<&Platform>, wanted: &[Platform]) -> bool {
    wanted.is_empty() || p.is_some_and(|p| wanted.iter().any(|w| p.selected_by(w)))
}

fn platforms_text(ps: &[Option<Platform>]) -> String {
    let v: Vec<String> = ps
        .iter()
        .map(|p| p.as_ref().map_or("unknown".into(), |p| p.to_string()))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// An index child that is an image of a real platform (buildx attaches attestation manifests
/// as `unknown/unknown` children: they have no filesystem to scan).
pub(crate) fn is_scannable_child(p: Option<&Platform>, media_type: &str) -> bool {
    media::is_manifest(media_type)
        && !media::is_index(media_type)
        && p.is_none_or(|p| p.os != "unknown")
}

/// Fetches `reference`'s manifests (each wanted platform of an index) and makes sure every layer
/// is in `cache`; returns the images to scan, layers bottom first, and the blobs downloaded.
pub async fn from_registry(
    registry: &Registry,
    reference: &Reference,
    wanted: &[Platform],
    cache: &Path,
    reporter: &dyn Reporter,
) -> Result<Sourced, SourceError> {
    let name = reference.to_string();
    let repo = Repo::new(reference.registry.clone(), reference.repository.clone());
    let reg_err = |source| SourceError::Registry {
        image: name.clone(),
        source,
    };
    let man_err = |source| SourceError::Manifest {
        image: name.clone(),
        source,
    };
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io { path, source }
    };
    fs_err::create_dir_all(cache.join("sha256")).map_err(io_err(cache))?;
    let raw = registry
        .get_manifest(&repo, &reference.reference_part())
        .await
        .map_err(reg_err)?;
    let root = ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(man_err)?;
    let mut targets = Vec::new();
    let mut seen = Vec::new();
    // Blobs downloaded (and so checked) this run.
    let mut checked = HashSet::new();
    if root.kind == ManifestKind::Index {
        for d in &root.manifests {
            let p = d.platform.as_ref().map(|p| p.to_platform());
            if !is_scannable_child(p.as_ref(), &d.media_type) {
                continue;
            }
            seen.push(p.clone());
            if !selected(p.as_ref(), wanted) {
                continue;
            }
            let raw = registry
                .get_manifest(&repo, &d.digest)
                .await
                .map_err(reg_err)?;
            let m = ParsedManifest::parse(&raw.bytes, Some(&d.media_type)).map_err(man_err)?;
            targets.push(Target {
                name: name.clone(),
                digest: m.digest.clone(),
                index: Some(root.digest.clone()),
                platform: p,
                layers: m.layers.clone(),
                config: m.config.clone(),
                manifest: (raw.bytes.clone(), m.media_type.clone()),
            });
        }
    } else {
        let mut platform = None;
        if let Some(c) = &root.config {
            let path = blob_file(cache, &c.digest);
            if fs_err::metadata(&path).map(|m| m.len()).ok() != Some(c.size) {
                registry
                    .download_blob(&repo, &c.digest, c.size, &path, reporter)
                    .await
                    .map_err(reg_err)?;
                checked.insert(c.digest.clone());
            }
            // A cached config (an earlier run's) is checked before its platform is trusted.
            BlobDir {
                dir: cache,
                checked: &checked,
            }
            .check([c])?;
            checked.insert(c.digest.clone());
            let bytes = fs_err::read(&path).map_err(io_err(&path))?;
            platform = config_platform(&bytes);
        }
        seen.push(platform.clone());
        if selected(platform.as_ref(), wanted) {
            targets.push(Target {
                name: name.clone(),
                digest: root.digest.clone(),
                index: None,
                platform,
                layers: root.layers.clone(),
                config: root.config.clone(),
                manifest: (raw.bytes.clone(), root.media_type.clone()),
            });
        }
    }
    if targets.is_empty() {
        return Err(SourceError::NoPlatform {
            image: name,
            wanted: wanted
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            have: platforms_text(&seen),
        });
    }
    let configs = targets.iter().filter_map(|t| t.config.clone());
    let missing: Vec<_> = layers_needed(&targets)
        .into_values()
        .chain(configs)
        .filter(|d| {
            fs_err::metadata(blob_file(cache, &d.digest))
                .map(|m| m.len() != d.size)
                .unwrap_or(true)
        })
        .collect();
    reporter.phase("pull", missing.iter().map(|d| d.size).sum());
    for d in missing {
        registry
            .download_blob(
                &repo,
                &d.digest,
                d.size,
                &blob_file(cache, &d.digest),
                reporter,
            )
            .await
            .map_err(reg_err)?;
        reporter.item(d.digest.short());
        checked.insert(d.digest);
    }
    reporter.finish_phase();
    Ok(Sourced { targets, checked })
}

/// Copies the layers (and configs) of a bundle's images to `spool` while reading the bundle once.
struct Spooler<'a> {
    path: &'a Path,
    spool: &'a Path,
    wanted: &'a [Platform],
    targets: Vec<Target>,
    /// Single-manifest images whose platform comes from their config: target index → config.
    configs: BTreeMap<usize, Digest>,
    needed: BTreeSet<Digest>,
    /// Blobs copied into `spool`, each through the reader's digest check.
    written: HashSet<Digest>,
    seen: Vec<Option<Platform>>,
}

impl Spooler<'_> {
    fn plan(&mut self, contents: &BundleContents) -> Result<(), SourceError> {
        let bad = |image: &str, source| SourceError::Manifest {
            image: image.to_string(),
            source,
        };
        for a in &contents.manifest.artifacts {
            // Images only: not charts, evidence, or a carried database (`artifact_type` set).
            if a.kind != ArtifactKind::Image || a.artifact_type.is_some() {
                continue;
            }
            let Some((root_bytes, root)) = contents.manifests.get(&a.digest) else {
                continue;
            };
            if root.kind == ManifestKind::Index {
                for c in a.children.iter().filter(|c| c.included) {
                    if !is_scannable_child(c.platform.as_ref(), &c.media_type) {
                        continue;
                    }
                    self.seen.push(c.platform.clone());
                    if !selected(c.platform.as_ref(), self.wanted) {
                        continue;
                    }
                    let Some((bytes, m)) = contents.manifests.get(&c.digest) else {
                        continue;
                    };
                    if m.kind != ManifestKind::Image {
                        // Checked already by the reader; re-parse only for the error message.
                        ParsedManifest::parse(bytes, Some(&c.media_type))
                            .map_err(|e| bad(&a.source, e))?;
                        continue;
                    }
                    self.targets.push(Target {
                        name: a.source.clone(),
                        digest: c.digest.clone(),
                        index: Some(a.digest.clone()),
                        platform: c.platform.clone(),
                        layers: m.layers.clone(),
                        config: m.config.clone(),
                        manifest: (bytes.clone(), m.media_type.clone()),
                    });
                }
            } else {
                if let Some(cfg) = &root.config {
                    self.configs.insert(self.targets.len(), cfg.digest.clone());
                }
                self.targets.push(Target {
                    name: a.source.clone(),
                    digest: a.digest.clone(),
                    index: None,
                    platform: None,
                    layers: root.layers.clone(),
                    config: root.config.clone(),
                    manifest: (root_bytes.clone(), root.media_type.clone()),
                });
            }
        }
        self.needed = layers_needed(&self.targets).into_keys().collect();
        // Configs too (small): a single-manifest image's platform, and what Trivy reads.
        self.needed.extend(
            self.targets
                .iter()
                .filter_map(|t| t.config.as_ref())
                .map(|c| c.digest.clone()),
        );
        Ok(())
    }
}

impl BlobVisitor for Spooler<'_> {
    type Error = SourceError;

    fn before_blobs(&mut self, contents: &BundleContents) -> Result<(), SourceError> {
        self.plan(contents)
    }

    fn blob(&mut self, entry: &BlobEntry, data: &mut dyn Read) -> Result<(), SourceError> {
        if !self.needed.contains(&entry.digest) {
            io::copy(data, &mut io::sink()).map_err(|e| BundleError::Corrupt {
                path: self.path.to_path_buf(),
                where_: format!("blob {}", entry.digest),
                why: e.to_string(),
            })?;
            return Ok(());
        }
        let dest = blob_file(self.spool, &entry.digest);
        let partial = dest.with_extension("partial");
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SourceError::Io { path, source }
        };
        let mut out = fs_err::File::create(&partial).map_err(io_err(&partial))?;
        // The reader fails at the end of a blob whose bytes do not match its digest: the copy
        // then fails and the partial file is never renamed into place.
        if let Err(e) = io::copy(data, &mut out) {
            drop(out);
            let _ = fs_err::remove_file(&partial);
            return Err(BundleError::Corrupt {
                path: self.path.to_path_buf(),
                where_: format!("blob {}", entry.digest),
                why: e.to_string(),
            }
            .into());
        }
        drop(out);
        fs_err::rename(&partial, &dest).map_err(io_err(&dest))?;
        self.written.insert(entry.digest.clone());
        Ok(())
    }
}

/// Reads a bundle (a file, or its split parts) once, checking every digest, and copies the
/// layers of its images (the wanted platforms) into `spool` (`spool/sha256/<hex>`); returns the
/// images to scan and the blobs copied.
pub fn from_bundle(
    path: &Path,
    wanted: &[Platform],
    spool: &Path,
    reporter: &dyn Reporter,
) -> Result<Sourced, SourceError> {
    fs_err::create_dir_all(spool.join("sha256")).map_err(|source| SourceError::Io {
        path: spool.to_path_buf(),
        source,
    })?;
    let mut v = Spooler {
        path,
        spool,
        wanted,
        targets: Vec::new(),
        configs: BTreeMap::new(),
        needed: BTreeSet::new(),
        written: HashSet::new(),
        seen: Vec::new(),
    };
    // A bundle file or its split parts (`NAME.parts.json` or their directory), read as one
    // stream. Signatures are not checked here (`airlock verify --trust` does that); every
    // digest and the structure are.
    let source = BundleSource::resolve(path)?;
    let unchecked = SignaturePolicy {
        trusted: Vec::new(),
        require: 0,
        allow_unsigned: true,
    };
    // The table of contents comes first: reading it alone is cheap, and gives the bar its
    // total (the reader reports uncompressed blob bytes).
    let total = source.table_of_contents()?.manifest.total_blob_bytes();
    reporter.phase("read", total);
    let read = source.read(&unchecked, &mut v, reporter);
    reporter.finish_phase();
    read?;
    let mut targets = Vec::new();
    for (i, mut t) in std::mem::take(&mut v.targets).into_iter().enumerate() {
        if let Some(cfg) = v.configs.get(&i) {
            let f = blob_file(spool, cfg);
            let bytes = fs_err::read(&f).map_err(|source| SourceError::Io { path: f, source })?;
            t.platform = config_platform(&bytes);
            v.seen.push(t.platform.clone());
            if !selected(t.platform.as_ref(), wanted) {
                continue;
            }
        }
        targets.push(t);
    }
    if targets.is_empty() {
        if v.seen.is_empty() {
            return Err(SourceError::NoImages {
                path: path.to_path_buf(),
            });
        }
        return Err(SourceError::NoPlatform {
            image: path.display().to_string(),
            wanted: wanted
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            have: platforms_text(&v.seen),
        });
    }
    Ok(Sourced {
        targets,
        checked: v.written,
    })
}
