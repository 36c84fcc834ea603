//! Where a bundle's bytes come from: one `NAME.tar.zst` file, or its split parts read in
//! sequence (`NAME.parts.json`, or a directory holding one). `verify` and `import` take either
//! and read it as one stream through the same reader; parts are never reassembled on disk.

use std::io;
use std::path::{Path, PathBuf};

use super::parts::{PartsError, PartsSet, PARTS_SIG_SUFFIX, PARTS_SUFFIX};
use super::reader::{read_bundle_from, read_table_of_contents_from, BlobVisitor, ReadSummary};
use super::signature::{check_bytes, SignaturePolicy, SignatureStatus};
use super::{BundleContents, BundleError};
use crate::oci::Digest;

/// A bundle file or a set of parts.
#[derive(Debug, Clone)]
pub enum BundleSource {
    /// One `.tar.zst` file.
    File(PathBuf),
    /// Split parts described by `NAME.parts.json`.
    Parts(Box<PartsSet>),
}

fn parts_error(path: &Path, e: PartsError) -> BundleError {
    match e {
        PartsError::Part(part) => BundleError::Part {
            path: path.to_path_buf(),
            source: part,
        },
        other => BundleError::Parts {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    }
}

impl BundleSource {
    /// A directory or a `*.parts.json` path is a parts set; anything else a bundle file.
    pub fn resolve(path: &Path) -> Result<Self, BundleError> {
        let is_parts = path.is_dir()
            || path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(PARTS_SUFFIX));
        if !is_parts {
            return Ok(BundleSource::File(path.to_path_buf()));
        }
        let set = PartsSet::load(path).map_err(|e| parts_error(path, e))?;
        Ok(BundleSource::Parts(Box::new(set)))
    }

    /// The path named in messages: the bundle file or the parts manifest.
    pub fn path(&self) -> &Path {
        match self {
            BundleSource::File(p) => p,
            BundleSource::Parts(s) => &s.path,
        }
    }

    /// The parts manifest's signature gate (its `NAME.parts.json.sig` against `policy`, with
    /// the rules of `airlock.json.sig`); `None` for a single file, which has no parts manifest.
    pub fn check_parts_signature(
        &self,
        policy: &SignaturePolicy,
    ) -> Result<Option<SignatureStatus>, BundleError> {
        match self {
            BundleSource::File(_) => Ok(None),
            BundleSource::Parts(s) => {
                let sig_name = format!(
                    "{}{PARTS_SIG_SUFFIX}",
                    s.manifest.bundle.trim_end_matches(".tar.zst")
                );
                check_bytes(&s.path, &s.bytes, s.signature.as_deref(), &sig_name, policy).map(Some)
            }
        }
    }

    /// The sha256 of the whole bundle: for parts, what the parts manifest lists (checked as the
    /// parts are read); for a file, computed by reading it.
    pub fn sha256(&self) -> Result<Digest, BundleError> {
        match self {
            BundleSource::Parts(s) => Ok(s.manifest.sha256.clone()),
            BundleSource::File(p) => {
                let io_err = |source| BundleError::Io {
                    path: p.clone(),
                    source,
                };
                let mut f = fs_err::File::open(p).map_err(io_err)?;
                let mut w = crate::oci::DigestWriter::new(io::sink());
                io::copy(&mut f, &mut w).map_err(io_err)?;
                Ok(w.finish().1)
            }
        }
    }

    /// Reads `airlock.json` (and its signature): the first part suffices for parts.
    pub fn table_of_contents(&self) -> Result<BundleContents, BundleError> {
        match self {
            BundleSource::File(p) => super::reader::read_table_of_contents(p),
            BundleSource::Parts(s) => {
                let mut reader = s.open().map_err(|e| parts_error(&s.path, e))?;
                read_table_of_contents_from(io::BufReader::new(&mut reader), &s.path).map_err(|e| {
                    match reader.diagnose() {
                        Some(part) => BundleError::Part {
                            path: s.path.clone(),
                            source: part,
                        },
                        None => e,
                    }
                })
            }
        }
    }

    /// Checks the parts manifest's signature against `policy` (parts only), then reads the
    /// bundle through `visitor`. A failure while reading parts names the part at fault: the one
    /// that failed its size or digest check, or, when the decoder stopped first, the part it
    /// stopped in if that part's digest does not match.
    pub fn read<V: BlobVisitor>(
        &self,
        policy: &SignaturePolicy,
        visitor: &mut V,
        progress: &dyn crate::progress::Reporter,
    ) -> Result<ReadSummary, V::Error> {
        match self {
            BundleSource::File(p) => super::reader::read_bundle(p, visitor, progress),
            BundleSource::Parts(s) => {
                self.check_parts_signature(policy)?;
                let mut reader = s.open().map_err(|e| parts_error(&s.path, e))?;
                let result = read_bundle_from(
                    io::BufReader::with_capacity(1 << 20, &mut reader),
                    &s.path,
                    visitor,
                    progress,
                );
                // Whatever the bundle reader left, the parts must still end where listed and
                // hash to the bundle digest.
                let rest = match &result {
                    Ok(_) => io::copy(&mut reader, &mut io::sink()).map(|_| ()),
                    Err(_) => Ok(()),
                };
                let part = match (&result, rest) {
                    (Err(_), _) => reader.diagnose(),
                    (Ok(_), Err(_)) => reader.failure(),
                    (Ok(_), Ok(())) => None,
                };
                match part {
                    Some(source) => Err(BundleError::Part {
                        path: s.path.clone(),
                        source,
                    }
                    .into()),
                    None => result,
                }
            }
        }
    }
}
