//! Flattens an image's layers into the few files the detectors need, streaming: each layer is
//! read once from start to end, in order, and only wanted regular files (each capped in size)
//! are kept in memory. Whiteouts (`.wh.<name>`) and opaque directories (`.wh..wh..opq`) from
//! upper layers remove what lower layers put there; a file in an upper layer replaces the
//! lower one (and hides everything below a lower directory of the same name).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use crate::oci::media;

/// The largest single file read into memory (a large dpkg `status` is a few MiB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The most bytes of wanted files kept at once across all layers.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;
/// How many symbolic links [`RootFs::read`] follows before giving up.
const MAX_SYMLINK_HOPS: usize = 16;

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (also multi-member).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression a layer media type implies; `None` for a media type that is not a
    /// filesystem layer airlock can read.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            media::OCI_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => {
                Some(Compression::None)
            }
            media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => Some(Compression::Gzip),
            media::OCI_LAYER_ZSTD | "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }
}

/// One layer to flatten: a name for messages (its digest), its compression and its bytes.
pub struct Layer<R> {
    /// What to call this layer in errors, e.g. its digest.
    pub name: String,
    /// How its bytes are compressed.
    pub compression: Compression,
    /// The layer's bytes, as stored in the registry or bundle.
    pub reader: R,
}

/// Limits on what flattening keeps in memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest single wanted file.
    pub max_file_bytes: u64,
    /// The most bytes of wanted files held at once.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

/// Why an image could not be flattened.
#[derive(Debug, thiserror::Error)]
pub enum FlattenError {
    /// The layer's bytes are not a readable (compressed) tar stream.
    #[error("layer {layer}: not a readable tar stream: {source}")]
    Read {
        /// The layer.
        layer: String,
        /// The I/O or format error.
        source: io::Error,
    },
    /// A wanted file is larger than [`Limits::max_file_bytes`].
    #[error(
        "layer {layer}: `{path}` is {size} bytes, over the {limit} byte limit for a scanned file"
    )]
    FileTooLarge {
        /// The layer.
        layer: String,
        /// The file's path in the image.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The wanted files together are larger than [`Limits::max_total_bytes`].
    #[error("layer {layer}: the scanned files add up to more than {limit} bytes (at `{path}`)")]
    TotalTooLarge {
        /// The layer.
        layer: String,
        /// The file that went over.
        path: String,
        /// The limit.
        limit: u64,
    },
}

/// A kept entry of the flattened filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file and its content.
    File(Vec<u8>),
    /// A symbolic link and its target as written.
    Symlink(String),
    /// A file an [`Analyzer`] read while it streamed by: what it found, not the content (a
    /// binary or an archive is never held in memory).
    Found(super::lang::Found),
}

/// Reads files too large or too many to keep (binaries, archives, package manifests) while
/// the layer streams by, keeping only what it finds. Upper layers' whiteouts remove the
/// finding like the file.
pub trait Analyzer {
    /// Whether the regular file at `path` (tar mode bits, size from the header) is one to read.
    fn wants(&self, path: &str, mode: u32, size: u64) -> bool;
    /// Reads the file (as much of it as needed) and says what it holds.
    fn analyze(&self, path: &str, size: u64, content: &mut dyn Read) -> super::lang::Found;
}

/// The analyzer that reads nothing.
pub struct NoAnalyzer;

impl Analyzer for NoAnalyzer {
    fn wants(&self, _: &str, _: u32, _: u64) -> bool {
        false
    }
    fn analyze(&self, _: &str, _: u64, _: &mut dyn Read) -> super::lang::Found {
        super::lang::Found::default()
    }
}

/// The wanted files of a flattened image, keyed by normalized path (no leading `/` or `./`).
#[derive(Debug, Clone, Default)]
pub struct RootFs {
    nodes: BTreeMap<String, Node>,
}

impl RootFs {
    /// Builds a filesystem view from `(path, content)` pairs, e.g. for tests or a directory.
    pub fn from_files<P: AsRef<str>>(files: impl IntoIterator<Item = (P, Vec<u8>)>) -> RootFs {
        let mut nodes = BTreeMap::new();
        for (p, c) in files {
            if let Some(p) = normalize(p.as_ref()) {
                nodes.insert(p, Node::File(c));
            }
        }
        RootFs { nodes }
    }

    /// The content of a file, following symbolic links among the kept entries.
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        let mut path = normalize(path)?;
        for _ in 0..MAX_SYMLINK_HOPS {
            match self.nodes.get(&path)? {
                Node::File(c) => return Some(c),
                Node::Symlink(target) => {
                    path = resolve_link(&path, target)?;
                }
                Node::Found(_) => return None,
            }
        }
        None
    }

    /// The regular files directly inside a directory, in name order.
    pub fn files_in<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let prefix = format!("{}/", dir.trim_matches('/'));
        let start = prefix.clone();
        let depth = prefix.len();
        self.nodes
            .range(start..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter_map(move |(k, n)| match n {
                Node::File(c) if !k[depth..].contains('/') => Some((k.as_str(), &c[..])),
                _ => None,
            })
    }

    /// Every kept path.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// What the analyzer found, by path, in path order.
    pub fn found(&self) -> impl Iterator<Item = (&str, &super::lang::Found)> {
        self.nodes.iter().filter_map(|(k, n)| match n {
            Node::Found(f) => Some((k.as_str(), f)),
            _ => None,
        })
    }

    fn total_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match n {
                Node::File(c) => c.len() as u64,
                Node::Symlink(t) => t.len() as u64,
                Node::Found(f) => f.weight(),
            })
            .sum()
    }

    /// Removes `path` and everything below it.
    fn remove_tree(&mut self, path: &str) {
        self.nodes.remove(path);
        self.remove_children(path);
    }

    /// Removes everything below `dir` (not `dir` itself).
    fn remove_children(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }
}

/// Normalizes a tar path: no leading `/` or `./`, no `.` components, no trailing `/`. Paths
/// that climb out with `..` are refused (`None`).
pub fn normalize(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// Resolves a symlink target relative to the link's directory, within the image root.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// What one layer changes: removals (applied to lower layers) and new entries.
#[derive(Default)]
struct LayerDelta {
    whiteouts: BTreeSet<String>,
    opaque: BTreeSet<String>,
    /// Non-directory entries (wanted or not): they replace whatever was below at that path.
    replaced: BTreeSet<String>,
    /// Directory entries: they replace a lower non-directory at that exact path only.
    dirs: BTreeSet<String>,
    added: BTreeMap<String, Node>,
    added_bytes: u64,
}

/// Flattens `layers` (bottom first) keeping the regular files and symlinks whose normalized
/// path `wanted` accepts.
pub fn flatten<R, I, F>(layers: I, wanted: F, limits: Limits) -> Result<RootFs, FlattenError>
where
    R: Read,
    I: IntoIterator<Item = Layer<R>>,
    F: Fn(&str) -> bool,
{
    flatten_with(layers, wanted, &NoAnalyzer, limits)
}

/// [`flatten`], and every regular file `analyzer` wants (and `wanted` does not) streamed
/// through it, its findings kept in the file's place.
pub fn flatten_with<R, I, F>(
    layers: I,
    wanted: F,
    analyzer: &dyn Analyzer,
    limits: Limits,
) -> Result<RootFs, FlattenError>
where
    R: Read,
    I: IntoIterator<Item = Layer<R>>,
    F: Fn(&str) -> bool,
{
    let mut fs = RootFs::default();
    for layer in layers {
        let name = layer.name.clone();
        let read_err = |source: io::Error| FlattenError::Read {
            layer: name.clone(),
            source,
        };
        let delta = match layer.compression {
            Compression::None => read_layer(layer.reader, &name, &wanted, analyzer, &limits, &fs),
            Compression::Gzip => read_layer(
                flate2::read::MultiGzDecoder::new(layer.reader),
                &name,
                &wanted,
                analyzer,
                &limits,
                &fs,
            ),
            Compression::Zstd => {
                let dec = zstd::stream::read::Decoder::new(layer.reader).map_err(read_err)?;
                read_layer(dec, &name, &wanted, analyzer, &limits, &fs)
            }
        }?;
        for dir in &delta.opaque {
            fs.remove_children(dir);
        }
        for p in delta.whiteouts.iter().chain(delta.replaced.iter()) {
            fs.remove_tree(p);
        }
        for d in &delta.dirs {
            fs.nodes.remove(d);
        }
        fs.nodes.extend(delta.added);
        if fs.total_bytes() > limits.max_total_bytes {
            return Err(FlattenError::TotalTooLarge {
                layer: name,
                path: String::new(),
                limit: limits.max_total_bytes,
            });
        }
    }
    Ok(fs)
}

/// A regular file's entry: plain, contiguous, or GNU sparse (read raw, so only its size is
/// used: see `read_layer`).
fn is_regular(kind: tar::EntryType) -> bool {
    kind.is_file() || kind == tar::EntryType::Continuous || kind == tar::EntryType::GNUSparse
}

/// The size of a file's content: a GNU sparse entry's real size, not the bytes it stores.
fn content_size(h: &tar::Header) -> io::Result<u64> {
    match h.as_gnu() {
        Some(g) if h.entry_type() == tar::EntryType::GNUSparse => g.real_size(),
        _ => h.size(),
    }
}

fn read_layer<R: Read, F: Fn(&str) -> bool>(
    reader: R,
    name: &str,
    wanted: &F,
    analyzer: &dyn Analyzer,
    limits: &Limits,
    below: &RootFs,
) -> Result<LayerDelta, FlattenError> {
    let read_err = |source: io::Error| FlattenError::Read {
        layer: name.to_string(),
        source,
    };
    let mut delta = LayerDelta::default();
    let mut archive = tar::Archive::new(reader);
    let below_bytes = below.total_bytes();
    // Long names and PAX records are read up to a small cap, never whole.
    let entries = crate::tarstream::entries(&mut archive, crate::tarstream::Extensions::Apply)
        .map_err(read_err)?;
    for entry in entries {
        let entry = entry.map_err(|e| FlattenError::Read {
            layer: name.to_string(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        let raw = entry.path_lossy();
        let link = entry.link.as_deref().map(String::from_utf8_lossy);
        let link = link.map(|l| l.into_owned());
        let mut entry = entry.inner;
        let Some(path) = normalize(&raw) else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (d, b),
            None => ("", path.as_str()),
        };
        if base == ".wh..wh..opq" {
            delta.opaque.insert(dir.to_string());
            continue;
        }
        if let Some(hidden) = base.strip_prefix(".wh.") {
            let p = if dir.is_empty() {
                hidden.to_string()
            } else {
                format!("{dir}/{hidden}")
            };
            delta.whiteouts.insert(p);
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            // A directory over a lower non-directory replaces it; a directory over a
            // directory merges. Only kept nodes matter here, and kept nodes are never dirs.
            delta.added.remove(&path);
            delta.dirs.insert(path);
            continue;
        }
        delta.replaced.insert(path.clone());
        delta.added.remove(&path);
        if kind == tar::EntryType::GNUSparse {
            // Read raw, a sparse entry's data lacks its holes: only its size is known. The
            // analyzer may still refuse it by size (and say so); its content is never used.
            let mode = entry.header().mode().unwrap_or(0);
            let size = content_size(entry.header()).map_err(read_err)?;
            if analyzer.wants(&path, mode, size) {
                // Over a cap, the analyzer says so without reading; under it, it sees no
                // content and warns that the file could not be read.
                let found = analyzer.analyze(&path, size, &mut io::empty());
                if !found.is_empty() {
                    delta.added_bytes += found.weight();
                    delta.added.insert(path, Node::Found(found));
                }
            }
            continue;
        }
        if !wanted(&path) {
            if is_regular(kind) {
                let mode = entry.header().mode().unwrap_or(0);
                let size = content_size(entry.header()).map_err(read_err)?;
                if analyzer.wants(&path, mode, size) {
                    let found = analyzer.analyze(&path, size, &mut entry);
                    if !found.is_empty() {
                        delta.added_bytes += found.weight();
                        delta.added.insert(path, Node::Found(found));
                    }
                }
            }
            continue;
        }
        let node = if kind.is_symlink() {
            Node::Symlink(link.unwrap_or_default())
        } else if kind.is_hard_link() {
            // A hard link names another path of the same archive (or a lower layer).
            let target = link.as_deref().and_then(normalize).unwrap_or_default();
            match delta
                .added
                .get(&target)
                .or_else(|| below.nodes.get(&target))
            {
                Some(n) => n.clone(),
                None => Node::Symlink(format!("/{target}")),
            }
        } else if is_regular(kind) {
            let size = content_size(entry.header()).map_err(read_err)?;
            if size > limits.max_file_bytes {
                return Err(FlattenError::FileTooLarge {
                    layer: name.to_string(),
                    path,
                    size,
                    limit: limits.max_file_bytes,
                });
            }
            if below_bytes + delta.added_bytes + size > limits.max_total_bytes {
                return Err(FlattenError::TotalTooLarge {
                    layer: name.to_string(),
                    path,
                    limit: limits.max_total_bytes,
                });
            }
            let mut buf = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(limits.max_file_bytes)
                .read_to_end(&mut buf)
                .map_err(read_err)?;
            delta.added_bytes += buf.len() as u64;
            Node::File(buf)
        } else {
            continue;
        };
        delta.added.insert(path, node);
    }
    // Read to the end so that a digest-checking reader underneath sees every byte.
    let mut inner = archive.into_inner();
    io::copy(&mut inner, &mut io::sink()).map_err(read_err)?;
    Ok(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_resolves() {
        assert_eq!(
            normalize("./etc/os-release").as_deref(),
            Some("etc/os-release")
        );
        assert_eq!(normalize("/a//b/").as_deref(), Some("a/b"));
        assert_eq!(normalize("../etc"), None);
        assert_eq!(
            resolve_link("etc/os-release", "../usr/lib/os-release").as_deref(),
            Some("usr/lib/os-release")
        );
        assert_eq!(
            resolve_link("etc/os-release", "/usr/lib/os-release").as_deref(),
            Some("usr/lib/os-release")
        );
    }

    /// (path, file content, symlink target); neither: a directory.
    type Entry<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);

    fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match (content, link) {
                (Some(c), _) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    b.append_data(&mut h, path, *c).expect("append");
                }
                (None, Some(t)) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, t).expect("append");
                }
                (None, None) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, path, io::empty()).expect("append");
                }
            }
        }
        b.into_inner().expect("tar")
    }

    fn run(layers: Vec<Vec<u8>>) -> RootFs {
        let layers = layers.into_iter().enumerate().map(|(i, b)| Layer {
            name: format!("layer{i}"),
            compression: Compression::None,
            reader: io::Cursor::new(b),
        });
        flatten(layers, |p| p.starts_with("keep/"), Limits::default()).expect("flatten")
    }

    #[test]
    fn file_replaces_directory_and_dir_merges() {
        let lower = tar(&[
            ("keep/d/", None, None),
            ("keep/d/x", Some(b"x"), None),
            ("keep/e/y", Some(b"y"), None),
        ]);
        let upper = tar(&[
            ("keep/d", Some(b"now a file"), None),
            ("keep/e/", None, None),
        ]);
        let fs = run(vec![lower, upper]);
        assert_eq!(fs.read("keep/d/x"), None);
        assert_eq!(fs.read("keep/d"), Some(&b"now a file"[..]));
        assert_eq!(
            fs.read("keep/e/y"),
            Some(&b"y"[..]),
            "a directory entry merges"
        );
    }

    #[test]
    fn symlinks_resolve_and_loops_end() {
        let l = tar(&[
            ("keep/a", None, Some("b")),
            ("keep/b", None, Some("a")),
            ("keep/c", None, Some("/keep/real")),
            ("keep/real", Some(b"content"), None),
            ("other/ignored", Some(b"not kept"), None),
        ]);
        let fs = run(vec![l]);
        assert_eq!(fs.read("keep/a"), None);
        assert_eq!(fs.read("keep/c"), Some(&b"content"[..]));
        assert_eq!(fs.read("other/ignored"), None);
        assert_eq!(fs.paths().count(), 4);
    }

    #[test]
    fn whiteout_applies_only_to_lower_layers() {
        let lower = tar(&[("keep/a", Some(b"1"), None)]);
        let upper = tar(&[
            ("keep/b", Some(b"2"), None),
            ("keep/.wh.a", Some(b""), None),
            ("keep/.wh.b", Some(b""), None),
        ]);
        let fs = run(vec![lower, upper]);
        assert_eq!(fs.read("keep/a"), None);
        assert_eq!(
            fs.read("keep/b"),
            Some(&b"2"[..]),
            "same-layer entry survives"
        );
    }
}
