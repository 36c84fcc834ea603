//! Plain files (installers, firmware, CA bundles, air-gapped tool binaries) carried beside the
//! images: pinned by sha256 in the spec, packed as OCI artifacts the way `oras push` makes them
//! (an empty config, one layer per file with an `org.opencontainers.image.title` annotation and
//! an `artifactType`), and pushed at import under `PREFIX/files/<name>:<version>`, where
//! `oras pull` or `skopeo copy` gets them back.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::oci::digest::Hasher;
use crate::oci::name::valid_tag;
use crate::oci::{media, Digest};

/// `artifactType` of a carried file's manifest.
pub const FILE_ARTIFACT_TYPE: &str = "application/vnd.airlock.file.v1";
/// Media type of the layer holding the file's bytes.
pub const FILE_LAYER_MEDIA_TYPE: &str = "application/octet-stream";
/// The empty config (`{}`) every file artifact has, as OCI 1.1 recommends for artifacts.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// Annotation holding the file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Annotation holding the version.
pub const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";

/// One file in the spec: a local path or an http(s) URL, pinned by sha256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// A local file (relative to the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// An http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// sha256 of the content (`sha256:<hex>` or bare hex): required, files are never trusted
    /// on first download.
    pub sha256: String,
    /// Name at the target (`files/<name>`); default: the file name of the path or URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tag at the target; default `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A file as the lock pins it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    /// The path (relative to the lock) or URL.
    pub source: String,
    /// sha256 of the content.
    pub sha256: Digest,
    /// Name at the target (`files/<name>`), also the title annotation.
    pub name: String,
    /// Tag at the target.
    pub version: String,
}

/// What is wrong with a file entry or its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The spec entry is unusable.
    #[error("file `{source_}`: {why}")]
    Spec {
        /// The path or URL.
        source_: String,
        /// What is wrong.
        why: String,
    },
    /// Reading, downloading or caching failed.
    #[error("file `{source_}`: {why}")]
    Fetch {
        /// The path or URL.
        source_: String,
        /// What went wrong.
        why: String,
    },
    /// The content does not hash to the pinned sha256.
    #[error("file `{source_}`: sha256 mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The path or URL.
        source_: String,
        /// Pinned.
        expected: Digest,
        /// Found.
        actual: Digest,
    },
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Checks a spec entry and pins it: exactly one of `path`/`url`, a valid sha256, a name that
/// is a valid repository component and a version that is a valid tag.
pub fn lock_file(f: &FileSpec) -> Result<LockedFile, FileError> {
    let source = match (&f.path, &f.url) {
        (Some(p), None) => p.clone(),
        (None, Some(u)) => {
            let parsed = url::Url::parse(u).map_err(|e| FileError::Spec {
                source_: u.clone(),
                why: e.to_string(),
            })?;
            if parsed.scheme() != "http" && parsed.scheme() != "https" {
                return Err(FileError::Spec {
                    source_: u.clone(),
                    why: "must be an http(s) URL".into(),
                });
            }
            u.clone()
        }
        _ => {
            return Err(FileError::Spec {
                source_: f.name.clone().unwrap_or_default(),
                why: "give exactly one of `path` and `url`".into(),
            })
        }
    };
    let spec_err = |why: String| FileError::Spec {
        source_: source.clone(),
        why,
    };
    let hex = f.sha256.strip_prefix("sha256:").unwrap_or(&f.sha256);
    let sha256 = Digest::from_hex(hex).map_err(|e| spec_err(format!("sha256: {e}")))?;
    let name = match &f.name {
        Some(n) => n.clone(),
        None => source
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase(),
    };
    if !valid_name(&name) {
        return Err(spec_err(format!(
            "name `{name}` must be lowercase letters, digits, `.`, `_`, `-` (set `name:`)"
        )));
    }
    let version = f.version.clone().unwrap_or_else(|| "latest".into());
    if !valid_tag(&version) {
        return Err(spec_err(format!("version `{version}` is not a valid tag")));
    }
    Ok(LockedFile {
        source,
        sha256,
        name,
        version,
    })
}

impl LockedFile {
    /// Whether the source is a URL (else a path relative to the lock).
    pub fn is_url(&self) -> bool {
        self.source.starts_with("http://") || self.source.starts_with("https://")
    }
}

/// Copies a local file to `dest` (through `dest.partial`), hashing while copying; renames it
/// into place only when it hashes to `expected`. Returns the size.
pub fn copy_verified(src: &Path, dest: &Path, expected: &Digest) -> Result<u64, FileError> {
    let source_ = src.display().to_string();
    let fetch = |why: String| FileError::Fetch {
        source_: source_.clone(),
        why,
    };
    let partial = dest.with_extension("partial");
    let mut input = fs_err::File::open(src).map_err(|e| fetch(e.to_string()))?;
    let mut out = fs_err::File::create(&partial).map_err(|e| fetch(e.to_string()))?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).map_err(|e| fetch(e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| fetch(e.to_string()))?;
    }
    drop(out);
    let size = h.len();
    let actual = h.finish();
    if &actual != expected {
        let _ = fs_err::remove_file(&partial);
        return Err(FileError::Mismatch {
            source_,
            expected: expected.clone(),
            actual,
        });
    }
    fs_err::rename(&partial, dest).map_err(|e| fetch(e.to_string()))?;
    Ok(size)
}

/// The path a locked file's local source resolves to.
pub fn local_path(file: &LockedFile, base_dir: &Path) -> PathBuf {
    base_dir.join(&file.source)
}

/// The artifact manifest for a file: OCI image manifest with `artifactType`, the empty config
/// and one layer titled with the file's name. Deterministic bytes (same file, same manifest).
pub fn file_manifest(file: &LockedFile, size: u64) -> Bytes {
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": FILE_ARTIFACT_TYPE,
        "config": {
            "mediaType": media::OCI_EMPTY,
            "digest": Digest::of(EMPTY_CONFIG),
            "size": EMPTY_CONFIG.len(),
        },
        "layers": [{
            "mediaType": FILE_LAYER_MEDIA_TYPE,
            "digest": file.sha256,
            "size": size,
            "annotations": { TITLE_ANNOTATION: file.name },
        }],
        "annotations": { VERSION_ANNOTATION: file.version },
    });
    // Serializing a json! value cannot fail.
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// Writes the files a bundle carries into a directory while the bundle streams past, as a
/// wrapper around another visitor (`verify` or `import`): each file goes to a new temporary
/// file `.<name>.<random>.partial` (created exclusively, never through a link) and is renamed
/// to `<name>` only once the reader has checked its digest, so a file in the directory is
/// always complete and verified. `<name>` is a single path component (see `valid_name`).
pub struct ExtractFiles<'a, V> {
    inner: &'a mut V,
    dir: PathBuf,
    wanted: std::collections::HashMap<Digest, Vec<String>>,
    /// Files written, in bundle order.
    pub written: Vec<PathBuf>,
}

impl<'a, V> ExtractFiles<'a, V> {
    /// Wraps `inner`, writing files into `dir` (created if needed).
    pub fn new(inner: &'a mut V, dir: &Path) -> Self {
        ExtractFiles {
            inner,
            dir: dir.to_path_buf(),
            wanted: Default::default(),
            written: Vec::new(),
        }
    }
}

/// A new temporary file in `dir` for `name`: a random name created with `O_CREAT|O_EXCL` (so a
/// file or symlink planted there is never opened, let alone followed), removed when dropped.
fn exclusive_temp(dir: &Path, name: &str) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
}

/// A reader that copies what passes through it into a file.
struct Tee<'r, W: Write> {
    inner: &'r mut dyn Read,
    out: W,
}

impl<W: Write> Read for Tee<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl<V: crate::bundle::BlobVisitor> crate::bundle::BlobVisitor for ExtractFiles<'_, V> {
    type Error = V::Error;

    fn manifest(&mut self, contents: &crate::bundle::BundleContents) -> Result<(), V::Error> {
        self.inner.manifest(contents)
    }

    fn before_blobs(&mut self, contents: &crate::bundle::BundleContents) -> Result<(), V::Error> {
        use crate::bundle::ArtifactKind;
        for a in contents
            .manifest
            .artifacts
            .iter()
            .filter(|a| a.kind == ArtifactKind::File)
        {
            let Some(name) = a.repository.strip_prefix("files/") else {
                continue;
            };
            if !valid_name(name) {
                continue;
            }
            if let Some((_, parsed)) = contents.manifests.get(&a.digest) {
                if let Some(layer) = parsed.layers.first() {
                    self.wanted
                        .entry(layer.digest.clone())
                        .or_default()
                        .push(name.to_string());
                }
            }
        }
        if !self.wanted.is_empty() {
            fs_err::create_dir_all(&self.dir).map_err(|source| crate::bundle::BundleError::Io {
                path: self.dir.clone(),
                source,
            })?;
        }
        self.inner.before_blobs(contents)
    }

    /// A file to write is read here; any other blob may be left to the visitor within.
    fn defer(&mut self, entry: &crate::bundle::BlobEntry, offset: u64) -> Result<bool, V::Error> {
        if self.wanted.contains_key(&entry.digest) {
            return Ok(false);
        }
        self.inner.defer(entry, offset)
    }

    fn blob(
        &mut self,
        entry: &crate::bundle::BlobEntry,
        data: &mut dyn Read,
    ) -> Result<(), V::Error> {
        let Some(names) = self.wanted.get(&entry.digest).cloned() else {
            return self.inner.blob(entry, data);
        };
        let io = |path: &Path, source| crate::bundle::BundleError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = exclusive_temp(&self.dir, &names[0]).map_err(|e| io(&self.dir, e))?;
        let tmp_path = tmp.path().to_path_buf();
        let mut tee = Tee {
            inner: data,
            out: std::io::BufWriter::new(tmp.as_file_mut()),
        };
        let visited = self.inner.blob(entry, &mut tee);
        // The reader fails the read at the end when the digest does not match: reaching a
        // clean end here means every byte written was verified.
        let drained = std::io::copy(&mut tee, &mut std::io::sink()).and_then(|_| tee.out.flush());
        drop(tee);
        // On error `tmp` is dropped, which removes it.
        match (visited, drained) {
            (Err(e), _) => return Err(e),
            (Ok(()), Err(e)) => return Err(io(&tmp_path, e).into()),
            (Ok(()), Ok(())) => {}
        }
        // The same content under several names: copies, each through its own temporary file.
        for name in names.iter().skip(1) {
            let mut other = exclusive_temp(&self.dir, name).map_err(|e| io(&self.dir, e))?;
            let copied = tmp
                .as_file_mut()
                .seek(std::io::SeekFrom::Start(0))
                .and_then(|_| std::io::copy(tmp.as_file_mut(), other.as_file_mut()));
            copied.map_err(|e| io(other.path(), e))?;
            let dest = self.dir.join(name);
            other.persist(&dest).map_err(|e| io(&dest, e.error))?;
            self.written.push(dest);
        }
        let dest = self.dir.join(&names[0]);
        // rename(2) replaces whatever is at `dest` (a planted symlink included) without
        // following it.
        tmp.persist(&dest).map_err(|e| io(&dest, e.error))?;
        self.written.push(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: Option<&str>, url: Option<&str>, sha: &str) -> FileSpec {
        FileSpec {
            path: path.map(str::to_string),
            url: url.map(str::to_string),
            sha256: sha.into(),
            name: None,
            version: None,
        }
    }

    #[test]
    fn pins_a_file_with_defaults() {
        let sha = Digest::of(b"x");
        let l = lock_file(&spec(
            None,
            Some("https://e.example/dl/Tool-1.2.tgz"),
            sha.as_str(),
        ))
        .expect("lock");
        assert_eq!(l.name, "tool-1.2.tgz");
        assert_eq!(l.version, "latest");
        assert_eq!(l.sha256, sha);
        let l = lock_file(&spec(Some("a/b.bin"), None, sha.hex())).expect("bare hex");
        assert_eq!(l.name, "b.bin");
    }

    #[test]
    fn refuses_bad_file_entries() {
        let sha = Digest::of(b"x").to_string();
        for (f, needle) in [
            (spec(None, None, &sha), "exactly one"),
            (spec(Some("a"), Some("https://x/a"), &sha), "exactly one"),
            (spec(None, Some("ftp://x/a"), &sha), "http(s)"),
            (spec(Some("a"), None, "sha256:zz"), "sha256"),
            (spec(Some("dir/"), None, &sha), "name ``"),
        ] {
            let e = lock_file(&f).expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        }
        let mut f = spec(Some("a"), None, &sha);
        f.version = Some("1.0/x".into());
        assert!(lock_file(&f).is_err());
    }

    #[test]
    fn names_written_to_a_directory_are_one_plain_component() {
        for bad in [
            "", ".", "..", "../x", "a/b", "/abs", ".hidden", "A", "a\0b", "a\\b",
        ] {
            assert!(!valid_name(bad), "{bad:?} accepted");
        }
        for good in ["tool.bin", "ca-bundle", "x_1.2.tar.gz"] {
            assert!(valid_name(good), "{good:?} refused");
        }
    }

    #[test]
    fn manifest_is_an_oras_style_artifact() {
        let l = lock_file(&spec(Some("tool.bin"), None, Digest::of(b"x").as_str())).expect("lock");
        let m: serde_json::Value = serde_json::from_slice(&file_manifest(&l, 1)).expect("json");
        assert_eq!(m["artifactType"], FILE_ARTIFACT_TYPE);
        assert_eq!(m["layers"][0]["annotations"][TITLE_ANNOTATION], "tool.bin");
        assert_eq!(m["config"]["mediaType"], media::OCI_EMPTY);
    }
}
