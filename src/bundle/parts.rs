//! Split bundles: `NAME.tar.zst.part-0001…` plus `NAME.parts.json`, so a bundle fits the media
//! that carries it (DVDs, USB disks, one-way diodes) and a lost or damaged part costs one part,
//! not the whole transfer.
//!
//! `NAME.parts.json` lists every part (name, size, sha256) and the whole bundle's size and
//! sha256; `NAME.parts.json.sig`, next to it, holds signatures over its exact bytes in the same
//! format as `airlock.json.sig` (see [`crate::trust::bundle_sig`]). Each part can be checked on
//! its own ([`check_parts`]), and the parts are read in sequence as one bundle stream
//! ([`PartsReader`]) that checks every part's size as it passes, so nothing is ever
//! reassembled on disk. Reading hashes each byte once, as from the one file: the bundle
//! reader checks every blob against its digest; the part digests name a damaged part after
//! a failure ([`PartsReader::diagnose`]) and are what `verify-parts` checks.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::oci::digest::Hasher;
use crate::oci::Digest;
use crate::progress::Reporter;
use crate::trust::bundle_sig::sign_manifest;
use crate::trust::keys::SigningKey;

/// Format identifier in `NAME.parts.json`.
pub const PARTS_FORMAT: &str = "airlock.parts/v1";
/// Suffix of the parts manifest (`NAME.parts.json`).
pub const PARTS_SUFFIX: &str = ".parts.json";
/// Suffix of the parts manifest's signature file.
pub const PARTS_SIG_SUFFIX: &str = ".parts.json.sig";
/// The largest `NAME.parts.json` accepted (about 150 bytes per part).
pub const MAX_PARTS_FILE: u64 = 16 * 1024 * 1024;
/// The largest `NAME.parts.json.sig` accepted.
pub const MAX_PARTS_SIG_FILE: u64 = crate::trust::bundle_sig::MAX_SIG_FILE_BYTES as u64;
/// The smallest part size accepted: smaller parts only multiply files.
pub const MIN_PART_SIZE: u64 = 4096;

const BUF: usize = 1 << 20;

/// What is wrong with a parts set, a part size or a split. Every variant names its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartsError {
    /// A size such as `700MiB` that does not parse.
    #[error("invalid size `{input}`: {why} (examples: 700MiB, 4GiB, 1GB, 1048576)")]
    Size {
        /// What was given.
        input: String,
        /// What is wrong.
        why: String,
    },
    /// A file could not be read or written.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// `NAME.parts.json` does not parse or breaks a rule.
    #[error("`{}`: {why}", path.display())]
    BadManifest {
        /// The parts manifest.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A directory holds no parts manifest, or more than one.
    #[error("`{}`: {why}", dir.display())]
    NotFound {
        /// The directory.
        dir: PathBuf,
        /// What was found.
        why: String,
    },
    /// A part is missing, short, too long or damaged.
    #[error(transparent)]
    Part(#[from] PartError),
    /// Some parts failed their check (from [`check_parts`] callers that need one error).
    #[error("{bad} of {total} parts are bad: {list}")]
    BadParts {
        /// How many are bad.
        bad: usize,
        /// How many parts there are.
        total: usize,
        /// `NAME (missing), NAME (bad digest)…`.
        list: String,
        /// Whether any part is there but wrong (size or digest): damage or tampering, not
        /// only parts left behind.
        damaged: bool,
    },
    /// The output directory lacks room for the parts.
    #[error(transparent)]
    NoSpace(#[from] crate::disk::NoSpace),
    /// The file to split is not a bundle.
    #[error("`{}` is not a bundle: {why}", path.display())]
    NotABundle {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// One part that failed a check, named. Cloneable so a reader can keep it for diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    /// The part file does not exist.
    #[error("part `{}` is missing", part.display())]
    Missing {
        /// The part file.
        part: PathBuf,
    },
    /// The part file could not be read.
    #[error("part `{}` cannot be read: {why}", part.display())]
    Unreadable {
        /// The part file.
        part: PathBuf,
        /// The I/O error.
        why: String,
    },
    /// The part has another size than listed (truncated or with data appended).
    #[error("part `{}` is {actual} bytes, but the parts manifest lists {expected}", part.display())]
    WrongSize {
        /// The part file.
        part: PathBuf,
        /// Listed size.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// The part's bytes do not hash to the listed digest (damaged, or parts swapped).
    #[error("part `{}`: sha256 mismatch: expected {expected}, got {actual}", part.display())]
    BadDigest {
        /// The part file.
        part: PathBuf,
        /// Listed digest.
        expected: Digest,
        /// Digest of the bytes found.
        actual: Digest,
    },
    /// Every part matched, but together they do not hash to the listed bundle digest.
    #[error("the parts join to {actual} ({actual_size} bytes), but the parts manifest lists the bundle as {expected} ({expected_size} bytes)")]
    WholeMismatch {
        /// Listed bundle digest.
        expected: Digest,
        /// Listed bundle size.
        expected_size: u64,
        /// Digest of the joined parts.
        actual: Digest,
        /// Size of the joined parts.
        actual_size: u64,
    },
}

/// Parses a size as people write it: `700MiB`, `4GiB`, `1GB`, `1.5GiB`, `4096`, `64k`.
/// Binary units (`KiB`, `MiB`, `GiB`, `TiB`, and bare `K`, `M`, `G`, `T`) are powers of 1024;
/// decimal ones (`kB`, `MB`, `GB`, `TB`) powers of 1000. Refuses 0, negative numbers, unknown
/// units and sizes beyond `u64`.
pub fn parse_size(input: &str) -> Result<u64, PartsError> {
    let err = |why: &str| PartsError::Size {
        input: input.to_string(),
        why: why.to_string(),
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(err("no number"));
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(err("unknown unit")),
    };
    let value = match num.split_once('.') {
        None => num
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .ok_or_else(|| err("too large"))?,
        Some((int, frac)) => {
            if frac.is_empty() || frac.contains('.') || frac.len() > 9 {
                return Err(err("not a number"));
            }
            let int: u64 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| err("too large"))?
            };
            let scale = 10u64.pow(frac.len() as u32);
            let frac: u64 = frac.parse().map_err(|_| err("not a number"))?;
            let whole = int.checked_mul(mult).ok_or_else(|| err("too large"))?;
            let part = (frac as u128 * mult as u128 / scale as u128) as u64;
            whole.checked_add(part).ok_or_else(|| err("too large"))?
        }
    };
    if value == 0 {
        return Err(err("must be more than 0 bytes"));
    }
    Ok(value)
}

/// `NAME.parts.json`: the parts of one bundle, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartsManifest {
    /// [`PARTS_FORMAT`].
    pub format: String,
    /// The bundle's name (from its `airlock.json`).
    pub name: String,
    /// The bundle's file name (`NAME.tar.zst`); parts are `<bundle>.part-0001`…
    pub bundle: String,
    /// Size of the whole bundle.
    pub size: u64,
    /// sha256 of the whole bundle (what a reassembled file would hash to).
    pub sha256: Digest,
    /// The size every part but the last has.
    pub part_size: u64,
    /// The parts, in order.
    pub parts: Vec<Part>,
}

/// One part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// File name, next to `NAME.parts.json`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the part's bytes.
    pub sha256: Digest,
}

/// The file name of part `index` (0-based) of `bundle`.
pub fn part_name(bundle: &str, index: usize) -> String {
    format!("{bundle}.part-{:04}", index + 1)
}

/// The parts manifest's file name for a bundle file name: `NAME.tar.zst` → `NAME.parts.json`.
pub fn parts_file_name(bundle: &str) -> String {
    let stem = bundle.strip_suffix(".tar.zst").unwrap_or(bundle);
    format!("{stem}{PARTS_SUFFIX}")
}

fn is_plain_file_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']) && !s.starts_with('.')
}

impl PartsManifest {
    /// Parses and checks a parts manifest: known format, plain file names exactly
    /// `<bundle>.part-NNNN` in order, sizes that add up, every part but the last of `part_size`.
    pub fn from_slice(path: &Path, bytes: &[u8]) -> Result<Self, PartsError> {
        let bad = |why: String| PartsError::BadManifest {
            path: path.to_path_buf(),
            why,
        };
        let m: PartsManifest = serde_json::from_slice(bytes).map_err(|e| {
            bad(if e.is_data() {
                format!("not a parts manifest: {e}")
            } else {
                format!("not valid JSON: {e}")
            })
        })?;
        if m.format != PARTS_FORMAT {
            return Err(bad(format!(
                "format `{}` is not `{PARTS_FORMAT}`; this airlock reads only that",
                m.format
            )));
        }
        if !is_plain_file_name(&m.bundle) {
            return Err(bad(format!(
                "bundle name `{}` is not a plain file name",
                m.bundle
            )));
        }
        if m.parts.is_empty() {
            return Err(bad("lists no parts".into()));
        }
        if m.part_size == 0 {
            return Err(bad("part_size is 0".into()));
        }
        let mut total = 0u64;
        let last = m.parts.len() - 1;
        for (i, p) in m.parts.iter().enumerate() {
            let want = part_name(&m.bundle, i);
            if p.name != want {
                return Err(bad(format!(
                    "part {} is named `{}`, expected `{want}`",
                    i + 1,
                    p.name
                )));
            }
            let size_ok = if i == last {
                p.size > 0 && p.size <= m.part_size
            } else {
                p.size == m.part_size
            };
            if !size_ok {
                return Err(bad(format!(
                    "part `{}` is listed with {} bytes; parts are {} bytes except a shorter last one",
                    p.name, p.size, m.part_size
                )));
            }
            total = total
                .checked_add(p.size)
                .ok_or_else(|| bad("part sizes overflow".into()))?;
        }
        if total != m.size {
            return Err(bad(format!(
                "the parts add up to {total} bytes, but the bundle is listed as {} bytes",
                m.size
            )));
        }
        Ok(m)
    }

    /// The manifest's bytes: pretty JSON with a trailing newline (what signatures cover).
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing plain strings and numbers into a Vec cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// A parts manifest as found on disk, with its exact bytes and signature file (if any).
#[derive(Debug, Clone)]
pub struct PartsSet {
    /// Path of `NAME.parts.json`.
    pub path: PathBuf,
    /// The directory holding it and the parts.
    pub dir: PathBuf,
    /// The parsed manifest.
    pub manifest: PartsManifest,
    /// Its exact bytes (what signatures cover).
    pub bytes: Vec<u8>,
    /// `NAME.parts.json.sig`, if present.
    pub signature: Option<Vec<u8>>,
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, PartsError> {
    crate::io::read_capped(path, cap, "parts file").map_err(|e| match e {
        crate::io::ReadError::Io { source, .. } => PartsError::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => PartsError::BadManifest {
            path: path.to_path_buf(),
            why: format!("larger than the {cap} bytes allowed"),
        },
    })
}

impl PartsSet {
    /// Finds the parts manifest: `path` itself when it names a `*.parts.json` file, or the one
    /// `*.parts.json` in the directory `path`.
    pub fn find(path: &Path) -> Result<PathBuf, PartsError> {
        if !path.is_dir() {
            return Ok(path.to_path_buf());
        }
        let rd = fs_err::read_dir(path).map_err(|source| PartsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut found = Vec::new();
        for e in rd {
            let e = e.map_err(|source| PartsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(PARTS_SUFFIX) && !name.starts_with('.') {
                found.push(name);
            }
        }
        found.sort();
        match found.len() {
            1 => Ok(path.join(&found[0])),
            0 => Err(PartsError::NotFound {
                dir: path.to_path_buf(),
                why: format!("no `*{PARTS_SUFFIX}` in this directory"),
            }),
            _ => Err(PartsError::NotFound {
                dir: path.to_path_buf(),
                why: format!(
                    "more than one parts manifest ({}); name the one to use",
                    found.join(", ")
                ),
            }),
        }
    }

    /// Loads `NAME.parts.json` (or the one in directory `path`) and its signature file.
    pub fn load(path: &Path) -> Result<Self, PartsError> {
        let path = Self::find(path)?;
        let bytes = read_capped(&path, MAX_PARTS_FILE)?;
        let manifest = PartsManifest::from_slice(&path, &bytes)?;
        let sig_path = sig_path_for(&path);
        let signature = if sig_path.exists() {
            Some(read_capped(&sig_path, MAX_PARTS_SIG_FILE)?)
        } else {
            None
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(PartsSet {
            path,
            dir,
            manifest,
            bytes,
            signature,
        })
    }

    /// Hashes parts `0..=last` (at most every part) and returns the first whose size or digest
    /// is not the listed one: after a read stopped with an error, names a damaged part.
    pub fn first_damaged(&self, last: usize) -> Option<PartError> {
        let last = last.min(self.manifest.parts.len().saturating_sub(1));
        (0..=last).find_map(|i| check_part(&self.part_path(i), &self.manifest.parts[i]).err())
    }

    /// The path of part `index`.
    pub fn part_path(&self, index: usize) -> PathBuf {
        self.dir.join(&self.manifest.parts[index].name)
    }

    /// Checks that every part exists with its listed size (a `stat` each, no reading): the
    /// problems, all of them, in part order.
    pub fn check_present(&self) -> Vec<PartError> {
        (0..self.manifest.parts.len())
            .filter_map(|i| stat_part(&self.part_path(i), self.manifest.parts[i].size).err())
            .collect()
    }

    /// Opens the parts as one stream. Fails before reading if a part is missing or has the
    /// wrong size, naming every such part.
    pub fn open(&self) -> Result<PartsReader, PartsError> {
        let problems = self.check_present();
        if !problems.is_empty() {
            return Err(bad_parts(&self.manifest, &problems));
        }
        Ok(PartsReader::new(self.clone()))
    }
}

/// The signature file next to a parts manifest.
pub fn sig_path_for(parts_json: &Path) -> PathBuf {
    let mut s = parts_json.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

impl PartError {
    /// A part that is there but wrong (size, digest, the join): damage or tampering, as
    /// opposed to one left behind or unreadable.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            PartError::WrongSize { .. }
                | PartError::BadDigest { .. }
                | PartError::WholeMismatch { .. }
        )
    }
}

/// One error listing every bad part.
pub fn bad_parts(m: &PartsManifest, problems: &[PartError]) -> PartsError {
    if let [one] = problems {
        return PartsError::Part(one.clone());
    }
    PartsError::BadParts {
        bad: problems.len(),
        total: m.parts.len(),
        list: problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        damaged: problems.iter().any(PartError::is_damage),
    }
}

fn stat_part(path: &Path, expected: u64) -> Result<(), PartError> {
    match fs_err::metadata(path) {
        Ok(md) if md.len() == expected => Ok(()),
        Ok(md) => Err(PartError::WrongSize {
            part: path.to_path_buf(),
            expected,
            actual: md.len(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(PartError::Missing {
            part: path.to_path_buf(),
        }),
        Err(e) => Err(PartError::Unreadable {
            part: path.to_path_buf(),
            why: e.to_string(),
        }),
    }
}

/// The outcome of checking one part on its own.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartStatus {
    /// Part file name.
    pub name: String,
    /// Listed size.
    pub size: u64,
    /// Listed digest.
    pub sha256: Digest,
    /// `ok`, `missing`, `wrong_size`, `bad_digest` or `unreadable`.
    pub status: &'static str,
    /// Size found, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_size: Option<u64>,
    /// Digest found, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<Digest>,
    /// The problem in words, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of checking every part of a set.
#[derive(Debug, Clone, Serialize)]
pub struct PartsCheck {
    /// Every part, in order.
    pub parts: Vec<PartStatus>,
    /// Whether the joined parts hash to the listed bundle digest (`None` when some part is bad,
    /// so the whole could not be checked).
    pub bundle_ok: Option<bool>,
    /// What was wrong with each bad part, in order.
    #[serde(skip)]
    pub problems: Vec<PartError>,
    /// The parts' join does not match the listed bundle.
    #[serde(skip)]
    pub whole: Option<PartError>,
}

impl PartsCheck {
    /// The parts that failed.
    pub fn bad(&self) -> impl Iterator<Item = &PartStatus> {
        self.parts.iter().filter(|p| p.status != "ok")
    }

    /// The check as one error, classed as `verify` classes it (a damaged part is tampering or
    /// damage, a missing one is not), naming every bad part; `None` when all is well.
    pub fn error(&self, m: &PartsManifest) -> Option<PartsError> {
        if !self.problems.is_empty() {
            return Some(bad_parts(m, &self.problems));
        }
        self.whole.as_ref().map(|e| PartsError::Part(e.clone()))
    }
}

/// Checks every part on its own (size, then sha256 of its bytes) and, when all are good, the
/// whole bundle's sha256 too. Reads each part once; reports every bad part, not just the first.
pub fn check_parts(set: &PartsSet, progress: &dyn Reporter) -> PartsCheck {
    let m = &set.manifest;
    let mut whole = Some(Hasher::new());
    let mut parts = Vec::with_capacity(m.parts.len());
    let mut problems = Vec::new();
    let mut buf = vec![0u8; BUF];
    for (i, p) in m.parts.iter().enumerate() {
        let path = set.part_path(i);
        let mut st = PartStatus {
            name: p.name.clone(),
            size: p.size,
            sha256: p.sha256.clone(),
            status: "ok",
            actual_size: None,
            actual_sha256: None,
            error: None,
        };
        let result = stat_part(&path, p.size).and_then(|()| {
            let mut f = fs_err::File::open(&path).map_err(|e| PartError::Unreadable {
                part: path.clone(),
                why: e.to_string(),
            })?;
            let mut h = Hasher::new();
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(PartError::Unreadable {
                            part: path.clone(),
                            why: e.to_string(),
                        })
                    }
                };
                h.update(&buf[..n]);
                if let Some(w) = whole.as_mut() {
                    w.update(&buf[..n]);
                }
                progress.advance(n as u64);
            }
            if h.len() != p.size {
                return Err(PartError::WrongSize {
                    part: path.clone(),
                    expected: p.size,
                    actual: h.len(),
                });
            }
            let actual = h.finish();
            if actual != p.sha256 {
                return Err(PartError::BadDigest {
                    part: path.clone(),
                    expected: p.sha256.clone(),
                    actual,
                });
            }
            Ok(())
        });
        if let Err(e) = result {
            whole = None;
            st.status = match &e {
                PartError::Missing { .. } => "missing",
                PartError::WrongSize { actual, .. } => {
                    st.actual_size = Some(*actual);
                    "wrong_size"
                }
                PartError::BadDigest { actual, .. } => {
                    st.actual_sha256 = Some(actual.clone());
                    "bad_digest"
                }
                _ => "unreadable",
            };
            st.error = Some(e.to_string());
            problems.push(e);
        }
        progress.item(&p.name);
        parts.push(st);
    }
    let joined = whole.map(|h| (h.len(), h.finish()));
    let bundle_ok = joined
        .as_ref()
        .map(|(len, digest)| *len == m.size && *digest == m.sha256);
    let whole = match joined {
        Some((actual_size, actual)) if bundle_ok == Some(false) => Some(PartError::WholeMismatch {
            expected: m.sha256.clone(),
            expected_size: m.size,
            actual,
            actual_size,
        }),
        _ => None,
    };
    PartsCheck {
        parts,
        bundle_ok,
        problems,
        whole,
    }
}

/// Reads the parts of a bundle in order as one stream, checking each part's size as it
/// passes (and that nothing follows it). It hashes nothing: the bundle reader above checks
/// every blob against its digest, and hashing the same bytes again per part and for the
/// whole would triple the hashing of a read from parts. When the consumer stops with an
/// error, [`PartsReader::diagnose`] hashes the parts read so far to name a damaged one. A
/// failure is an I/O error whose message names the part; the typed error stays available
/// from [`PartsReader::failure`] (the decoders above this reader may rewrap the message), so
/// pass it by `&mut` to keep it.
pub struct PartsReader {
    set: PartsSet,
    index: usize,
    file: Option<fs_err::File>,
    /// Bytes read from the current part.
    in_part: u64,
    done: bool,
    failure: Option<PartError>,
}

impl PartsReader {
    fn new(set: PartsSet) -> Self {
        PartsReader {
            set,
            index: 0,
            file: None,
            in_part: 0,
            done: false,
            failure: None,
        }
    }

    /// The first failure this reader met, if any.
    pub fn failure(&self) -> Option<PartError> {
        self.failure.clone()
    }

    fn fail(&mut self, e: PartError) -> io::Error {
        if self.failure.is_none() {
            self.failure = Some(e.clone());
        }
        self.done = true;
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    }

    /// After the consumer above stopped with an error: hashes every part up to the one it
    /// stopped in (damage may surface only when a later blob's digest is checked) and returns
    /// the first whose size or digest is wrong, or `None` when they are sound (the fault lies
    /// in the bundle itself). Costs a second read of those parts, on failure only.
    pub fn diagnose(&mut self) -> Option<PartError> {
        if let Some(e) = self.failure() {
            return Some(e);
        }
        self.set.first_damaged(self.index)
    }

    fn path(&self) -> PathBuf {
        self.set.part_path(self.index)
    }

    /// Opens the current part, checking its size on disk first.
    fn open_current(&mut self) -> Result<(), PartError> {
        let path = self.path();
        stat_part(&path, self.set.manifest.parts[self.index].size)?;
        let f = fs_err::File::open(&path).map_err(|e| PartError::Unreadable {
            part: path.clone(),
            why: e.to_string(),
        })?;
        self.file = Some(f);
        self.in_part = 0;
        Ok(())
    }

    /// Checks that nothing follows the current part's listed bytes (all of them read).
    fn close_current(&mut self) -> Result<(), PartError> {
        let path = self.path();
        let expected = &self.set.manifest.parts[self.index];
        let mut extra = [0u8; 1];
        if let Some(f) = self.file.as_mut() {
            match f.read(&mut extra) {
                Ok(0) => {}
                Ok(_) => {
                    let actual = fs_err::metadata(&path)
                        .map(|m| m.len())
                        .unwrap_or(expected.size + 1);
                    return Err(PartError::WrongSize {
                        part: path,
                        expected: expected.size,
                        actual,
                    });
                }
                Err(e) => {
                    return Err(PartError::Unreadable {
                        part: path,
                        why: e.to_string(),
                    })
                }
            }
        }
        self.file = None;
        self.index += 1;
        Ok(())
    }
}

/// Reads one part whole and checks its size and sha256.
fn check_part(path: &Path, p: &Part) -> Result<(), PartError> {
    let unreadable = |e: io::Error| PartError::Unreadable {
        part: path.to_path_buf(),
        why: e.to_string(),
    };
    let f = fs_err::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => PartError::Missing {
            part: path.to_path_buf(),
        },
        _ => unreadable(e),
    })?;
    let mut w = crate::oci::DigestWriter::new(io::sink());
    io::copy(&mut f.take(p.size + 1), &mut w).map_err(unreadable)?;
    let (_, actual, size) = w.finish();
    if size != p.size {
        return Err(PartError::WrongSize {
            part: path.to_path_buf(),
            expected: p.size,
            actual: size,
        });
    }
    if actual != p.sha256 {
        return Err(PartError::BadDigest {
            part: path.to_path_buf(),
            expected: p.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.done {
                if let Some(e) = self.failure() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
                return Ok(0);
            }
            if self.index == self.set.manifest.parts.len() {
                self.done = true;
                return Ok(0);
            }
            if self.file.is_none() {
                if let Err(e) = self.open_current() {
                    return Err(self.fail(e));
                }
            }
            let size = self.set.manifest.parts[self.index].size;
            let left = size - self.in_part;
            if left == 0 {
                if let Err(e) = self.close_current() {
                    return Err(self.fail(e));
                }
                continue;
            }
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let Some(f) = self.file.as_mut() else {
                continue;
            };
            let n = match f.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let e = PartError::Unreadable {
                        part: self.path(),
                        why: e.to_string(),
                    };
                    return Err(self.fail(e));
                }
            };
            if n == 0 {
                let e = PartError::WrongSize {
                    part: self.path(),
                    expected: size,
                    actual: self.in_part,
                };
                return Err(self.fail(e));
            }
            self.in_part += n as u64;
            return Ok(n);
        }
    }
}

/// What [`split`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    /// The parts manifest written.
    pub parts_json: PathBuf,
    /// Its signature file, when signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<PathBuf>,
    /// The manifest.
    pub manifest: PartsManifest,
    /// Key ids that signed the manifest.
    pub signers: Vec<String>,
}

/// Removes the temporary files of a split that did not finish.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs_err::remove_file(p);
        }
    }
}

fn temp_name(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.partial"))
}

/// Refuses a part size below [`MIN_PART_SIZE`].
pub fn check_part_size(part_size: u64) -> Result<(), PartsError> {
    if part_size < MIN_PART_SIZE {
        return Err(PartsError::Size {
            input: part_size.to_string(),
            why: format!("parts must be at least {MIN_PART_SIZE} bytes"),
        });
    }
    Ok(())
}

/// Writes a bundle stream straight into parts of `part_size` bytes in one directory, hashing
/// each part and the whole as the bytes pass: `collect --split` packs into it (the disk holds
/// one copy, never the whole file and its parts), and [`split`] copies a bundle file into it,
/// so both give the same bytes. Parts are written under temporary names; [`PartsWriter::finish`]
/// writes `NAME.parts.json` (and its signature) and renames everything into place, the parts
/// manifest last. Dropped unfinished, it removes what it wrote.
pub struct PartsWriter {
    dir: PathBuf,
    bundle_name: String,
    part_size: u64,
    /// The part being written, its temporary path and hasher.
    current: Option<(fs_err::File, PathBuf, Hasher)>,
    parts: Vec<Part>,
    whole: Hasher,
    cleanup: Cleanup,
}

impl PartsWriter {
    /// Starts the parts of the bundle file named `bundle_name` (a plain file name) in `dir`
    /// (created if missing).
    pub fn create(dir: &Path, bundle_name: &str, part_size: u64) -> Result<Self, PartsError> {
        check_part_size(part_size)?;
        if !is_plain_file_name(bundle_name) {
            return Err(PartsError::NotABundle {
                path: dir.join(bundle_name),
                why: "not a plain file name".into(),
            });
        }
        fs_err::create_dir_all(dir).map_err(|source| PartsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            bundle_name: bundle_name.to_string(),
            part_size,
            current: None,
            parts: Vec::new(),
            whole: Hasher::new(),
            cleanup: Cleanup(Vec::new()),
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.whole.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.whole.len() == 0
    }

    /// Closes the part being written, if any, recording its name, size and digest.
    fn close_part(&mut self) -> io::Result<()> {
        if let Some((file, _, h)) = self.current.take() {
            drop(file);
            self.parts.push(Part {
                name: part_name(&self.bundle_name, self.parts.len()),
                size: h.len(),
                sha256: h.finish(),
            });
        }
        Ok(())
    }

    /// Writes `NAME.parts.json` for the bundle `name` (its `airlock.json` name), signed by
    /// `signers` when there are any, then renames the parts and the manifest into place.
    pub fn finish(mut self, name: &str, signers: &[SigningKey]) -> Result<SplitReport, PartsError> {
        let io_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PartsError::Io { path, source }
        };
        self.close_part().map_err(io_at(&self.dir))?;
        let out_dir = self.dir.clone();
        if self.parts.is_empty() {
            return Err(PartsError::NotABundle {
                path: out_dir.join(&self.bundle_name),
                why: "empty file".into(),
            });
        }
        let manifest = PartsManifest {
            format: PARTS_FORMAT.into(),
            name: name.to_string(),
            bundle: self.bundle_name.clone(),
            size: self.whole.len(),
            sha256: std::mem::take(&mut self.whole).finish(),
            part_size: self.part_size,
            parts: std::mem::take(&mut self.parts),
        };
        let bytes = manifest.to_vec();
        let json_name = parts_file_name(&self.bundle_name);
        let json_path = out_dir.join(&json_name);
        let json_tmp = temp_name(&out_dir, &json_name);
        self.cleanup.0.push(json_tmp.clone());
        fs_err::write(&json_tmp, &bytes).map_err(io_at(&json_tmp))?;
        let sig_path = sig_path_for(&json_path);
        let mut signer_ids = Vec::new();
        let sig_tmp = if signers.is_empty() {
            None
        } else {
            let sigs = sign_manifest(&bytes, signers);
            signer_ids = sigs
                .signatures()
                .iter()
                .map(|s| s.key_id.to_string())
                .collect();
            let tmp = temp_name(&out_dir, &format!("{json_name}.sig"));
            self.cleanup.0.push(tmp.clone());
            fs_err::write(&tmp, sigs.to_vec()).map_err(io_at(&tmp))?;
            Some(tmp)
        };
        // Everything is written: rename into place, parts first, the parts manifest last, so a
        // parts manifest on disk always describes parts that are complete.
        for p in &manifest.parts {
            let tmp = temp_name(&out_dir, &p.name);
            let dest = out_dir.join(&p.name);
            fs_err::rename(&tmp, &dest).map_err(io_at(&dest))?;
        }
        match &sig_tmp {
            Some(tmp) => fs_err::rename(tmp, &sig_path).map_err(io_at(&sig_path))?,
            None => match fs_err::remove_file(&sig_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(PartsError::Io {
                        path: sig_path,
                        source,
                    })
                }
            },
        }
        fs_err::rename(&json_tmp, &json_path).map_err(io_at(&json_path))?;
        self.cleanup.0.clear();
        Ok(SplitReport {
            parts_json: json_path,
            signature: sig_tmp.map(|_| sig_path),
            manifest,
            signers: signer_ids,
        })
    }
}

impl Write for PartsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self
            .current
            .as_ref()
            .is_some_and(|(_, _, h)| h.len() >= self.part_size)
        {
            self.close_part()?;
        }
        if self.current.is_none() {
            let tmp = temp_name(&self.dir, &part_name(&self.bundle_name, self.parts.len()));
            self.cleanup.0.push(tmp.clone());
            let file = fs_err::File::create(&tmp)?;
            self.current = Some((file, tmp, Hasher::new()));
        }
        let Some((file, _, h)) = self.current.as_mut() else {
            return Ok(0);
        };
        let room = usize::try_from(self.part_size - h.len()).unwrap_or(usize::MAX);
        let n = file.write(&buf[..buf.len().min(room)])?;
        h.update(&buf[..n]);
        self.whole.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some((file, _, _)) => file.flush(),
            None => Ok(()),
        }
    }
}

/// Splits the bundle file `bundle` into parts of `part_size` bytes in `out_dir` through a
/// [`PartsWriter`] (bounded memory: one 1 MiB buffer), signed by `signers` when there are any.
/// A failed split leaves nothing that looks complete.
pub fn split(
    bundle: &Path,
    out_dir: &Path,
    part_size: u64,
    signers: &[SigningKey],
    progress: &dyn Reporter,
) -> Result<SplitReport, PartsError> {
    check_part_size(part_size)?;
    let toc =
        super::reader::read_table_of_contents(bundle).map_err(|e| PartsError::NotABundle {
            path: bundle.to_path_buf(),
            why: crate::error_chain(&e),
        })?;
    let bundle_name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| is_plain_file_name(n))
        .ok_or_else(|| PartsError::NotABundle {
            path: bundle.to_path_buf(),
            why: "not a plain file name".into(),
        })?;
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PartsError::Io { path, source }
    };
    let mut input = fs_err::File::open(bundle).map_err(io_at(bundle))?;
    let total = input.metadata().map_err(io_at(bundle))?.len();
    if total == 0 {
        return Err(PartsError::NotABundle {
            path: bundle.to_path_buf(),
            why: "empty file".into(),
        });
    }
    let mut out = PartsWriter::create(out_dir, &bundle_name, part_size)?;
    crate::disk::check_room(&[(out_dir, "splitting the bundle", total)])?;
    progress.phase("split", total);
    let mut buf = vec![0u8; BUF];
    let mut part = 0;
    while out.len() < total {
        let want = buf
            .len()
            .min(usize::try_from(total - out.len()).unwrap_or(usize::MAX));
        let n = input.read(&mut buf[..want]).map_err(io_at(bundle))?;
        if n == 0 {
            return Err(PartsError::Io {
                path: bundle.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file shrank while being split (at byte {})", out.len()),
                ),
            });
        }
        out.write_all(&buf[..n]).map_err(io_at(out_dir))?;
        progress.advance(n as u64);
        // Name each part on the progress line as it completes.
        while part < usize::try_from(out.len() / part_size).unwrap_or(usize::MAX) {
            progress.item(&part_name(&bundle_name, part));
            part += 1;
        }
    }
    if total % part_size != 0 {
        progress.item(&part_name(&bundle_name, part));
    }
    progress.finish_phase();
    out.finish(&toc.manifest.name, signers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_as_people_write_them() {
        assert_eq!(parse_size("700MiB").ok(), Some(700 << 20));
        assert_eq!(parse_size("4GiB").ok(), Some(4 << 30));
        assert_eq!(parse_size("1GB").ok(), Some(1_000_000_000));
        assert_eq!(parse_size("1048576").ok(), Some(1 << 20));
        assert_eq!(parse_size("64k").ok(), Some(64 << 10));
        assert_eq!(parse_size(" 2 MiB ").ok(), Some(2 << 20));
        assert_eq!(parse_size("1.5GiB").ok(), Some(3 << 29));
        assert_eq!(parse_size("4.7GB").ok(), Some(4_700_000_000));
        assert_eq!(parse_size("10b").ok(), Some(10));
    }

    #[test]
    fn refuses_zero_and_nonsense_sizes() {
        for bad in [
            "",
            "0",
            "0MiB",
            "0.0GiB",
            "MiB",
            "-1",
            "1XB",
            "1.2.3",
            "1.",
            "abc",
            "4 GiBs",
            "99999999999999999999",
            "20000000TiB",
        ] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    fn set_with(dir: &Path, data: &[u8], part_size: usize) -> PartsSet {
        let bundle = "b.tar.zst".to_string();
        let parts: Vec<Part> = data
            .chunks(part_size)
            .enumerate()
            .map(|(i, c)| {
                let name = part_name(&bundle, i);
                std::fs::write(dir.join(&name), c).expect("write");
                Part {
                    name,
                    size: c.len() as u64,
                    sha256: Digest::of(c),
                }
            })
            .collect();
        let manifest = PartsManifest {
            format: PARTS_FORMAT.into(),
            name: "b".into(),
            bundle,
            size: data.len() as u64,
            sha256: Digest::of(data),
            part_size: part_size as u64,
            parts,
        };
        let bytes = manifest.to_vec();
        let path = dir.join("b.parts.json");
        std::fs::write(&path, &bytes).expect("write");
        PartsSet::load(dir).expect("load")
    }

    fn data() -> Vec<u8> {
        (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn chained_reader_yields_the_whole() {
        let tmp = tempfile::tempdir().expect("tmp");
        let set = set_with(tmp.path(), &data(), 3000);
        assert_eq!(set.manifest.parts.len(), 4);
        let mut out = Vec::new();
        set.open()
            .expect("open")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, data());
        let check = check_parts(&set, &crate::progress::NoProgress);
        assert_eq!(check.bad().count(), 0);
        assert_eq!(check.bundle_ok, Some(true));
    }

    #[test]
    fn chained_reader_names_a_damaged_part() {
        let tmp = tempfile::tempdir().expect("tmp");
        let set = set_with(tmp.path(), &data(), 3000);
        let p = set.part_path(1);
        let mut bytes = std::fs::read(&p).expect("read");
        bytes[10] ^= 1;
        std::fs::write(&p, bytes).expect("write");
        let mut r = set.open().expect("open");
        // The reader hashes nothing; the consumer's digest check fails, then diagnosis names
        // the part.
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("sizes are right");
        assert_ne!(crate::oci::Digest::of(&out), set.manifest.sha256);
        match r.diagnose() {
            Some(PartError::BadDigest { part, .. }) => assert_eq!(part, p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chained_reader_names_swapped_parts() {
        let tmp = tempfile::tempdir().expect("tmp");
        let set = set_with(tmp.path(), &data(), 3000);
        let (a, b) = (set.part_path(0), set.part_path(1));
        let tmpname = tmp.path().join("x");
        std::fs::rename(&a, &tmpname).expect("mv");
        std::fs::rename(&b, &a).expect("mv");
        std::fs::rename(&tmpname, &b).expect("mv");
        let mut r = set.open().expect("open");
        let mut first = vec![0u8; 3500];
        r.read_exact(&mut first).expect("read");
        let e = r.diagnose().expect("a bad part");
        assert!(
            e.to_string().contains("part-0001") && e.to_string().contains("sha256 mismatch"),
            "{e}"
        );
    }

    #[test]
    fn open_names_every_missing_or_short_part_before_reading() {
        let tmp = tempfile::tempdir().expect("tmp");
        let set = set_with(tmp.path(), &data(), 3000);
        std::fs::remove_file(set.part_path(0)).expect("rm");
        let p = set.part_path(2);
        let bytes = std::fs::read(&p).expect("read");
        std::fs::write(&p, &bytes[..100]).expect("write");
        let Err(e) = set.open() else {
            panic!("must fail")
        };
        let s = e.to_string();
        assert!(s.starts_with("2 of 4 parts are bad"), "{s}");
        assert!(s.contains("part-0001` is missing"), "{s}");
        assert!(s.contains("part-0003` is 100 bytes"), "{s}");
        let check = check_parts(&set, &crate::progress::NoProgress);
        let bad: Vec<_> = check.bad().map(|p| (p.name.as_str(), p.status)).collect();
        assert_eq!(
            bad,
            [
                ("b.tar.zst.part-0001", "missing"),
                ("b.tar.zst.part-0003", "wrong_size")
            ]
        );
        assert_eq!(check.bundle_ok, None);
    }

    #[test]
    fn chained_reader_catches_a_part_that_shrinks_while_read() {
        let tmp = tempfile::tempdir().expect("tmp");
        let set = set_with(tmp.path(), &data(), 3000);
        let mut r = set.open().expect("open");
        let mut first = vec![0u8; 10];
        r.read_exact(&mut first).expect("read");
        let p = set.part_path(0);
        let bytes = std::fs::read(&p).expect("read");
        std::fs::write(&p, &bytes[..2000]).expect("truncate");
        let e = r.read_to_end(&mut Vec::new()).expect_err("must fail");
        assert!(e.to_string().contains("part-0001"), "{e}");
        assert!(matches!(r.failure(), Some(PartError::WrongSize { .. })));
    }

    #[test]
    fn refuses_manifests_that_do_not_add_up_or_escape() {
        let tmp = tempfile::tempdir().expect("tmp");
        let set = set_with(tmp.path(), &data(), 3000);
        let mut m = set.manifest.clone();
        m.size += 1;
        let e = PartsManifest::from_slice(Path::new("x"), &m.to_vec()).expect_err("size");
        assert!(e.to_string().contains("add up"), "{e}");
        let mut m = set.manifest.clone();
        m.parts[0].name = "../../etc/passwd".into();
        let e = PartsManifest::from_slice(Path::new("x"), &m.to_vec()).expect_err("name");
        assert!(
            e.to_string().contains("expected `b.tar.zst.part-0001`"),
            "{e}"
        );
        let mut m = set.manifest.clone();
        m.bundle = "../b.tar.zst".into();
        let e = PartsManifest::from_slice(Path::new("x"), &m.to_vec()).expect_err("bundle");
        assert!(e.to_string().contains("plain file name"), "{e}");
        let mut m = set.manifest.clone();
        m.parts.swap(0, 1);
        assert!(PartsManifest::from_slice(Path::new("x"), &m.to_vec()).is_err());
        let e = PartsManifest::from_slice(Path::new("x"), b"{\"format\":").expect_err("json");
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
