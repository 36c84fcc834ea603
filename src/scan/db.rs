//! The compact vulnerability database `airlock db build` writes and scans read: OSV records
//! for `Debian:<N>`, `Alpine:v<x.y>`, `AlmaLinux:<N>`, `Rocky Linux:<N>`, Red Hat (kept as
//! `Red Hat:<N>`), Go, PyPI, npm, Maven, crates.io and NuGet, reduced to what matching needs, indexed by
//! (ecosystem, package) so a scan decompresses only the packages an image has. The layout is
//! documented in `docs/SCAN.md`:
//!
//! ```text
//! magic "AIRLKVDB" | u32 LE format (2; 1 is read too) | u32 LE header length | header JSON
//! | u32 LE index length | index (zstd JSON [[ecosystem, package, offset, length], ...])
//! | blocks (each zstd JSON [advisory, ...]) | SHA-256 of everything before (32 bytes)
//! ```

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::matcher;
use super::osv::{self, OsvError, OsvEvent, OsvRecord, Severity, SourceInfo};
use super::version::VersionScheme;
use crate::oci::Digest;

/// The first bytes of every database file.
pub const MAGIC: &[u8; 8] = b"AIRLKVDB";
/// The format version this code writes. Format 2 added the application ecosystems and rpm
/// distributions; its layout is format 1's, so a format 1 file (Debian and Alpine only) still
/// opens, while an older airlock refuses a format 2 file by name.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this code reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// The most bytes one decompressed block or index may have (the largest real block, all the
/// advisories of one package, is a few MiB).
const MAX_BLOCK_BYTES: u64 = 64 * 1024 * 1024;
/// The largest database file opened: it is read whole (a database of every Debian and Alpine
/// advisory is tens of MiB).
pub const MAX_DB_BYTES: u64 = 1024 * 1024 * 1024;
/// zstd level for blocks: small files, fast enough to build.
const ZSTD_LEVEL: i32 = 9;

/// The application ecosystems the database keeps, as OSV names them.
pub const APP_ECOSYSTEMS: &[&str] = &["Go", "PyPI", "npm", "Maven", "crates.io", "NuGet"];

fn is_number(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
}

/// The ecosystem an OSV record's ecosystem is kept under, if it is kept at all: Red Hat's
/// `Red Hat:enterprise_linux:9::appstream` becomes `Red Hat:9`; the others are kept as named.
pub fn kept_as(ecosystem: &str) -> Option<String> {
    if let Some(rest) = ecosystem.strip_prefix("Red Hat:") {
        let major = rest
            .strip_prefix("enterprise_linux:")
            .and_then(|r| r.split([':', '.']).next())
            .or_else(|| Some(rest).filter(|r| is_number(r)))?;
        return is_number(major).then(|| format!("Red Hat:{major}"));
    }
    kept_ecosystem(ecosystem).then(|| ecosystem.to_string())
}

/// The version order of a kept ecosystem.
pub fn scheme_of(ecosystem: &str) -> Option<VersionScheme> {
    let family = ecosystem.split(':').next().unwrap_or(ecosystem);
    Some(match family {
        "Debian" => VersionScheme::Dpkg,
        "Alpine" => VersionScheme::Apk,
        "AlmaLinux" | "Rocky Linux" | "Red Hat" => VersionScheme::Rpm,
        "Go" | "npm" | "crates.io" | "NuGet" => VersionScheme::Semver,
        "PyPI" => VersionScheme::Pep440,
        "Maven" => VersionScheme::Maven,
        _ => return None,
    })
}

/// The name a package is kept and looked up under: PyPI names PEP 503-normalised, NuGet names
/// lower case (both are case-insensitive upstream), others as written.
pub fn package_key(ecosystem: &str, name: &str) -> String {
    match ecosystem {
        "PyPI" => super::lang::python::normalize_name(name),
        "NuGet" => name.to_ascii_lowercase(),
        _ => name.to_string(),
    }
}

/// Whether an OSV ecosystem is one the database keeps: `Debian:<N>`, `Alpine:v<x.y>`,
/// `AlmaLinux:<N>`, `Rocky Linux:<N>`, `Red Hat:<N>` or an application ecosystem.
pub fn kept_ecosystem(ecosystem: &str) -> bool {
    if APP_ECOSYSTEMS.contains(&ecosystem) {
        return true;
    }
    for prefix in ["Debian:", "AlmaLinux:", "Rocky Linux:", "Red Hat:"] {
        if let Some(n) = ecosystem.strip_prefix(prefix) {
            return is_number(n);
        }
    }
    if let Some(v) = ecosystem.strip_prefix("Alpine:v") {
        let mut it = v.split('.');
        return matches!((it.next(), it.next(), it.next()), (Some(a), Some(b), None)
            if !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()));
    }
    false
}

/// One advisory for one package of one ecosystem: what matching needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    /// The record ID.
    pub id: String,
    /// Aliases and upstream IDs (CVE numbers), for VEX and allow entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The record's summary, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Severity from the record.
    pub severity: Severity,
    /// `ECOSYSTEM` ranges, each a list of events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Vec<OsvEvent>>,
    /// Explicitly affected versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// The database header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// When it was built (RFC 3339, UTC).
    pub built_at: String,
    /// The airlock version that built it.
    pub tool_version: String,
    /// The inputs, with their digests.
    pub sources: Vec<SourceInfo>,
    /// Advisory entries per ecosystem.
    pub ecosystems: BTreeMap<String, u64>,
    /// Records read in total.
    pub records: u64,
    /// Records with nothing for a kept ecosystem (or withdrawn).
    pub skipped_records: u64,
}

/// Why a database cannot be built or opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Reading OSV input failed.
    #[error(transparent)]
    Osv(#[from] OsvError),
    /// Not an airlock database at all.
    #[error("{path} is not an airlock vulnerability database (bad magic)")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// A format version this airlock does not read.
    #[error("{path}: database format {version} is not supported (this airlock reads formats {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}); rebuild it with `airlock db build`")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// Damaged: checksum mismatch, truncation, undecodable sections.
    #[error("{path} is corrupted: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Collects OSV records into a database.
#[derive(Debug, Default)]
pub struct Builder {
    entries: BTreeMap<(String, String), Vec<Advisory>>,
    sources: Vec<SourceInfo>,
    records: u64,
    skipped: u64,
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds one record (kept ecosystems only).
    pub fn add_record(&mut self, record: OsvRecord) {
        self.records += 1;
        if record.withdrawn.is_some() {
            self.skipped += 1;
            return;
        }
        let mut aliases: Vec<String> = record
            .aliases
            .iter()
            .flatten()
            .chain(record.upstream.iter().flatten())
            .filter(|a| **a != record.id)
            .cloned()
            .collect();
        aliases.sort();
        aliases.dedup();
        let mut kept = false;
        for affected in record.affected.iter().flatten() {
            let Some(pkg) = &affected.package else {
                continue;
            };
            let Some(ecosystem) = kept_as(&pkg.ecosystem) else {
                continue;
            };
            let ranges: Vec<Vec<OsvEvent>> = affected
                .ranges
                .iter()
                .flatten()
                // Go, npm and crates.io records use SEMVER ranges; git ranges name commits.
                .filter(|r| r.kind == "ECOSYSTEM" || r.kind == "SEMVER")
                .map(|r| r.events.clone().unwrap_or_default())
                .filter(|e| !e.is_empty())
                .collect();
            // Listed versions that the ranges already cover add nothing: osv.dev enumerates
            // them from the ranges. Dropping them keeps the file compact and matching exact.
            let Some(scheme) = scheme_of(&ecosystem) else {
                continue;
            };
            let mut versions = affected.versions.clone().unwrap_or_default();
            versions.retain(|v| {
                !ranges
                    .iter()
                    .any(|r| matcher::in_range(scheme, v, r).is_some())
            });
            if ranges.is_empty() && versions.is_empty() {
                continue;
            }
            kept = true;
            self.entries
                .entry((ecosystem.clone(), package_key(&ecosystem, &pkg.name)))
                .or_default()
                .push(Advisory {
                    id: record.id.clone(),
                    aliases: aliases.clone(),
                    summary: record
                        .summary
                        .clone()
                        .map(|s| s.chars().take(200).collect()),
                    severity: osv::severity_of(&record, affected),
                    ranges,
                    versions,
                });
        }
        if !kept {
            self.skipped += 1;
        }
    }

    /// Adds every record of an `all.zip`, a directory of JSON files or one JSON file.
    pub fn add_source(&mut self, path: &Path) -> Result<&SourceInfo, DbError> {
        let info = osv::read_source(path, |r| {
            self.add_record(r);
            Ok(())
        })?;
        let at = self.sources.len();
        self.sources.push(info);
        Ok(&self.sources[at])
    }

    /// Serializes the database.
    pub fn to_bytes(&self, built_at: SystemTime) -> Result<Vec<u8>, io::Error> {
        let mut ecosystems: BTreeMap<String, u64> = BTreeMap::new();
        let mut body = Vec::new();
        let mut index: Vec<(String, String, u64, u64)> = Vec::new();
        for ((eco, pkg), advisories) in &self.entries {
            let mut advisories = advisories.clone();
            advisories.sort_by(|a, b| a.id.cmp(&b.id));
            *ecosystems.entry(eco.clone()).or_default() += advisories.len() as u64;
            let json = serde_json::to_vec(&advisories)?;
            let block = zstd::stream::encode_all(&json[..], ZSTD_LEVEL)?;
            index.push((
                eco.clone(),
                pkg.clone(),
                body.len() as u64,
                block.len() as u64,
            ));
            body.extend_from_slice(&block);
        }
        let header = Header {
            built_at: humantime::format_rfc3339_seconds(built_at).to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            sources: self.sources.clone(),
            ecosystems,
            records: self.records,
            skipped_records: self.skipped,
        };
        let header = serde_json::to_vec(&header)?;
        let index = zstd::stream::encode_all(&serde_json::to_vec(&index)?[..], ZSTD_LEVEL)?;
        if u32::try_from(header.len()).is_err() || u32::try_from(index.len()).is_err() {
            return Err(io::Error::other("database header or index over 4 GiB"));
        }
        let mut out = Vec::with_capacity(body.len() + index.len() + header.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(index.len() as u32).to_le_bytes());
        out.extend_from_slice(&index);
        out.extend_from_slice(&body);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }

    /// Writes the database to `path` atomically (a temporary file renamed into place).
    pub fn write(&self, path: &Path, built_at: SystemTime) -> Result<(), DbError> {
        let io_err = |source| DbError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = self.to_bytes(built_at).map_err(io_err)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
        tmp.write_all(&bytes).map_err(io_err)?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(path).map_err(|e| io_err(e.error))?;
        Ok(())
    }
}

/// `airlock db build --osv PATH... -o FILE`: reads every source, writes the database
/// atomically, and returns its header.
pub fn build(sources: &[PathBuf], out: &Path, built_at: SystemTime) -> Result<Header, DbError> {
    let mut b = Builder::new();
    for s in sources {
        b.add_source(s)?;
    }
    b.write(out, built_at)?;
    Ok(Database::open(out)?.header)
}

/// An opened, checksum-verified database.
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    header: Header,
    digest: Digest,
    index: BTreeMap<(String, String), (usize, usize)>,
    bytes: Vec<u8>,
    body_start: usize,
}

fn decompress(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(bytes)?
        .take(MAX_BLOCK_BYTES + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_BLOCK_BYTES {
        return Err(io::Error::other(
            "block decompresses to more than the limit",
        ));
    }
    Ok(out)
}

impl Database {
    /// Opens and verifies a database file.
    pub fn open(path: &Path) -> Result<Database, DbError> {
        let io_err = |source| DbError::Io {
            path: path.to_path_buf(),
            source,
        };
        // The magic first, so that `/dev/zero` or a wrong file is refused before it is read.
        let mut head = Vec::with_capacity(MAGIC.len());
        std::fs::File::open(path)
            .and_then(|f| f.take(MAGIC.len() as u64).read_to_end(&mut head))
            .map_err(io_err)?;
        if head != MAGIC {
            return Err(DbError::NotADatabase {
                path: path.to_path_buf(),
            });
        }
        let bytes = crate::io::read_capped(path, MAX_DB_BYTES, "vulnerability database")
            .map_err(|e| io_err(io::Error::other(e.to_string())))?;
        Database::from_bytes(bytes, path)
    }

    /// Verifies and indexes database bytes; `path` names them in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Database, DbError> {
        let corrupt = |reason: &str| DbError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(DbError::NotADatabase {
                path: path.to_path_buf(),
            });
        }
        if bytes.len() < 8 + 4 + 4 + 4 + 32 {
            return Err(corrupt("truncated"));
        }
        let u32_at = |o: usize| -> Option<u32> {
            bytes
                .get(o..o + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let version = u32_at(8).ok_or_else(|| corrupt("truncated"))?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(DbError::UnsupportedFormat {
                path: path.to_path_buf(),
                version,
            });
        }
        let content_len = bytes.len() - 32;
        let sum = Sha256::digest(&bytes[..content_len]);
        if sum[..] != bytes[content_len..] {
            return Err(corrupt(
                "checksum mismatch (the file was changed or damaged after it was built)",
            ));
        }
        let digest = Digest::of(&bytes);
        let hlen = u32_at(12).ok_or_else(|| corrupt("truncated"))? as usize;
        let hend = 16usize
            .checked_add(hlen)
            .filter(|&e| e + 4 <= content_len)
            .ok_or_else(|| corrupt("header runs past the end"))?;
        let header: Header = serde_json::from_slice(&bytes[16..hend])
            .map_err(|e| corrupt(&format!("header: {e}")))?;
        let ilen = u32_at(hend).ok_or_else(|| corrupt("truncated"))? as usize;
        let istart = hend + 4;
        let body_start = istart
            .checked_add(ilen)
            .filter(|&e| e <= content_len)
            .ok_or_else(|| corrupt("index runs past the end"))?;
        let raw_index =
            decompress(&bytes[istart..body_start]).map_err(|e| corrupt(&format!("index: {e}")))?;
        let entries: Vec<(String, String, u64, u64)> =
            serde_json::from_slice(&raw_index).map_err(|e| corrupt(&format!("index: {e}")))?;
        let body_len = (content_len - body_start) as u64;
        let mut index = BTreeMap::new();
        for (eco, pkg, off, len) in entries {
            if off.checked_add(len).is_none_or(|e| e > body_len) {
                return Err(corrupt(&format!(
                    "index entry {eco}/{pkg} points past the end"
                )));
            }
            index.insert((eco, pkg), (off as usize, len as usize));
        }
        Ok(Database {
            path: path.to_path_buf(),
            header,
            digest,
            index,
            bytes,
            body_start,
        })
    }

    /// The header: build time, sources and their digests, counts.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The SHA-256 of the whole file, for reports and the ledger.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The file it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When it was built.
    pub fn built_at(&self) -> Result<SystemTime, DbError> {
        humantime::parse_rfc3339(&self.header.built_at).map_err(|e| DbError::Corrupt {
            path: self.path.clone(),
            reason: format!("build time `{}`: {e}", self.header.built_at),
        })
    }

    /// How old it is at `now` (zero if built in the future).
    pub fn age(&self, now: SystemTime) -> Result<Duration, DbError> {
        Ok(now.duration_since(self.built_at()?).unwrap_or_default())
    }

    /// Whether the database has any advisory for an ecosystem.
    pub fn covers(&self, ecosystem: &str) -> bool {
        self.header.ecosystems.contains_key(ecosystem)
    }

    /// The advisories for one package of one ecosystem.
    pub fn lookup(&self, ecosystem: &str, package: &str) -> Result<Vec<Advisory>, DbError> {
        let Some(&(off, len)) = self
            .index
            .get(&(ecosystem.to_string(), package.to_string()))
        else {
            return Ok(Vec::new());
        };
        let start = self.body_start + off;
        let corrupt = |e: String| DbError::Corrupt {
            path: self.path.clone(),
            reason: format!("block {ecosystem}/{package}: {e}"),
        };
        let raw =
            decompress(&self.bytes[start..start + len]).map_err(|e| corrupt(e.to_string()))?;
        serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))
    }

    /// Every (ecosystem, package) key, in order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.index.keys().map(|(e, p)| (e.as_str(), p.as_str()))
    }
}
