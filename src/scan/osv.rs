//! OSV records (<https://ossf.github.io/osv-schema/>): reading them from the per-ecosystem
//! `all.zip` dumps, directories of JSON files or single files, and the parts the database
//! keeps. Unknown fields are accepted (the schema grows); a record that is not JSON or not
//! the shape of an OSV record is an error naming the file (and zip entry).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::oci::Digest;

/// The largest single record read (osv.dev records are a few KiB; the largest some 100 KiB).
pub const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;
/// The most a zip of OSV records may inflate to in all (osv.dev's Debian dump inflates to a
/// few hundred MiB): a zip bomb stops here, whatever its entries declare.
pub const MAX_ZIP_INFLATED: u64 = 4 * 1024 * 1024 * 1024;

/// Severity levels, lowest first. `Unknown` is kept as unknown, never guessed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// The record gives no severity airlock can read.
    #[default]
    Unknown,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Parses a level word (`critical`, `HIGH`, `moderate`, ...); `None` for anything else.
    pub fn from_word(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" => Some(Severity::Critical),
            "high" | "important" => Some(Severity::High),
            "medium" | "moderate" => Some(Severity::Medium),
            "low" | "negligible" => Some(Severity::Low),
            "unknown" => Some(Severity::Unknown),
            _ => None,
        }
    }

    /// The CVSS v3 qualitative rating of a base score.
    pub fn from_cvss3_score(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// The upper-case name (`CRITICAL`), as in Trivy reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "UNKNOWN",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `severity[]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct OsvSeverity {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector or score.
    pub score: String,
}

/// `affected[].package`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct OsvPackage {
    /// `Debian:12`, `Alpine:v3.18`, ...
    pub ecosystem: String,
    /// The (source) package name.
    pub name: String,
    /// Its purl.
    #[serde(default)]
    pub purl: Option<String>,
}

/// One range event; exactly one field is set.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Default)]
pub struct OsvEvent {
    /// Versions from here on are affected (`0`: from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// Versions from here on are fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// The last affected version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    /// Versions from here on are out of the range's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// `affected[].ranges[]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct OsvRange {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The events.
    #[serde(default)]
    pub events: Option<Vec<OsvEvent>>,
}

/// `affected[]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct OsvAffected {
    /// The package (absent for GIT-only entries).
    #[serde(default)]
    pub package: Option<OsvPackage>,
    /// Per-package severity (schema 1.5+).
    #[serde(default)]
    pub severity: Option<Vec<OsvSeverity>>,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Option<Vec<OsvRange>>,
    /// Explicitly affected versions.
    #[serde(default)]
    pub versions: Option<Vec<String>>,
    /// Ecosystem-specific data (read for a severity word only).
    #[serde(default)]
    pub ecosystem_specific: Option<serde_json::Value>,
    /// Database-specific data (read for a severity word only).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// An OSV record: the fields airlock reads.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct OsvRecord {
    /// `DLA-3008-1`, `ALPINE-CVE-2025-26519`, `CVE-2018-5407`.
    pub id: String,
    /// Last modification time.
    #[serde(default)]
    pub modified: Option<String>,
    /// Set when the record was withdrawn: it is then ignored.
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// Other IDs of the same vulnerability.
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    /// IDs this record was derived from.
    #[serde(default)]
    pub upstream: Option<Vec<String>>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Longer details.
    #[serde(default)]
    pub details: Option<String>,
    /// Record-level severity.
    #[serde(default)]
    pub severity: Option<Vec<OsvSeverity>>,
    /// Affected packages.
    #[serde(default)]
    pub affected: Option<Vec<OsvAffected>>,
    /// Database-specific data (read for a severity word only).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// Why OSV input cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    /// The file or directory cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A zip archive that cannot be read.
    #[error("{path}: not a readable zip archive: {message}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What the zip reader said.
        message: String,
    },
    /// A record that is not valid OSV JSON.
    #[error("{file}: not a valid OSV record: {source}")]
    Malformed {
        /// The file (`archive.zip!entry.json` for zip entries).
        file: String,
        /// The JSON error (with line and column).
        source: serde_json::Error,
    },
    /// A zip whose records inflate to more than [`MAX_ZIP_INFLATED`] in all.
    #[error(
        "{path}: records inflate to more than the {MAX_ZIP_INFLATED} byte limit for one archive"
    )]
    ZipTooLarge {
        /// The archive.
        path: PathBuf,
    },
    /// Neither a directory, a zip, nor a regular file (a device, a FIFO).
    #[error("{path}: not a directory, zip archive or JSON file")]
    NotASource {
        /// The path.
        path: PathBuf,
    },
    /// A record larger than [`MAX_RECORD_BYTES`].
    #[error("{file}: {size} bytes, over the {MAX_RECORD_BYTES} byte limit for one OSV record")]
    TooLarge {
        /// The file.
        file: String,
        /// Its size.
        size: u64,
    },
}

/// Parses one record; `file` names it in errors.
pub fn parse_record(bytes: &[u8], file: &str) -> Result<OsvRecord, OsvError> {
    serde_json::from_slice(bytes).map_err(|source| OsvError::Malformed {
        file: file.to_string(),
        source,
    })
}

/// Where records came from, as the database header lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The path as given.
    pub path: String,
    /// `zip`, `dir` or `file`.
    pub kind: String,
    /// For `zip` and `file` the SHA-256 of the file; for `dir` the SHA-256 of the sorted
    /// `sha256sum`-style listing (`<hex>  <relative path>\n` per JSON file).
    pub digest: Digest,
    /// Records read from it.
    pub records: u64,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> OsvError + '_ {
    move |source| OsvError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads one record, at most [`MAX_RECORD_BYTES`] whatever its size claimed to be.
fn read_record(r: impl Read, size_hint: u64, file: &str) -> Result<Vec<u8>, OsvError> {
    crate::io::read_stream_capped(r, MAX_RECORD_BYTES, size_hint).map_err(|e| match e {
        crate::io::StreamError::Io(source) => OsvError::Io {
            path: PathBuf::from(file),
            source,
        },
        crate::io::StreamError::TooLarge(_) => OsvError::TooLarge {
            file: file.to_string(),
            size: MAX_RECORD_BYTES + 1,
        },
    })
}

fn sha256_file(path: &Path) -> Result<Digest, OsvError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest::from_sha256(h.finalize().into()))
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), OsvError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let ft = e.file_type().map_err(io_err(&p))?;
        if ft.is_dir() {
            json_files(&p, out)?;
        } else if ft.is_file() && p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads every record under `path` (an `all.zip`, a directory searched recursively for
/// `*.json`, or one JSON file), handing each to `each`, one at a time. Returns the source's
/// description for the database header.
pub fn read_source(
    path: &Path,
    mut each: impl FnMut(OsvRecord) -> Result<(), OsvError>,
) -> Result<SourceInfo, OsvError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    let shown = path.display().to_string();
    let mut records = 0u64;
    if meta.is_dir() {
        let mut files = Vec::new();
        json_files(path, &mut files)?;
        let mut listing = Sha256::new();
        for f in files {
            let bytes = {
                let file = File::open(&f).map_err(io_err(&f))?;
                let len = file.metadata().map_err(io_err(&f))?.len();
                if len > MAX_RECORD_BYTES {
                    return Err(OsvError::TooLarge {
                        file: f.display().to_string(),
                        size: len,
                    });
                }
                read_record(file, len, &f.display().to_string())?
            };
            let rel = f
                .strip_prefix(path)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('\\', "/");
            listing.update(format!("{}  {rel}\n", hex::encode(Sha256::digest(&bytes))));
            each(parse_record(&bytes, &f.display().to_string())?)?;
            records += 1;
        }
        return Ok(SourceInfo {
            path: shown,
            kind: "dir".into(),
            digest: Digest::from_sha256(listing.finalize().into()),
            records,
        });
    }
    // A device or FIFO (`/dev/zero`) would be hashed, or read, forever.
    if !meta.is_file() {
        return Err(OsvError::NotASource {
            path: path.to_path_buf(),
        });
    }
    let is_zip = {
        let mut magic = [0u8; 4];
        let mut f = File::open(path).map_err(io_err(path))?;
        let n = f.read(&mut magic).map_err(io_err(path))?;
        n == 4 && magic == *b"PK\x03\x04"
    };
    let digest = sha256_file(path)?;
    if is_zip {
        let file = File::open(path).map_err(io_err(path))?;
        let zip_err = |e: zip::result::ZipError| OsvError::Zip {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut archive = zip::ZipArchive::new(io::BufReader::new(file)).map_err(zip_err)?;
        let mut names: Vec<String> = archive
            .file_names()
            .map(|r| r.map(|c| c.into_owned()))
            .collect::<Result<_, _>>()
            .map_err(zip_err)?;
        names.sort();
        let mut inflated = 0u64;
        for name in names {
            if !name.ends_with(".json") {
                continue;
            }
            let entry = archive.by_name(&name).map_err(zip_err)?;
            let label = format!("{shown}!{name}");
            if entry.size() > MAX_RECORD_BYTES {
                return Err(OsvError::TooLarge {
                    file: label,
                    size: entry.size(),
                });
            }
            let size = entry.size();
            // The declared size is the zip's word; what it inflates to is counted.
            let bytes = read_record(entry, size, &label)?;
            inflated += bytes.len() as u64;
            if inflated > MAX_ZIP_INFLATED {
                return Err(OsvError::ZipTooLarge {
                    path: path.to_path_buf(),
                });
            }
            each(parse_record(&bytes, &label)?)?;
            records += 1;
        }
        return Ok(SourceInfo {
            path: shown,
            kind: "zip".into(),
            digest,
            records,
        });
    }
    if meta.len() > MAX_RECORD_BYTES {
        return Err(OsvError::TooLarge {
            file: shown,
            size: meta.len(),
        });
    }
    let file = File::open(path).map_err(io_err(path))?;
    let bytes = read_record(file, meta.len(), &shown)?;
    each(parse_record(&bytes, &shown)?)?;
    Ok(SourceInfo {
        path: shown,
        kind: "file".into(),
        digest,
        records: 1,
    })
}

/// The severity of one affected entry of a record: a CVSS vector (v3.x, then v2) of the
/// entry or the record, else a severity word the record states, else `Unknown`.
pub fn severity_of(record: &OsvRecord, affected: &OsvAffected) -> Severity {
    let vectors = affected
        .severity
        .iter()
        .flatten()
        .chain(record.severity.iter().flatten());
    let mut best: Option<Severity> = None;
    for s in vectors {
        let level = match s.kind.as_str() {
            "CVSS_V3" => cvss3_score(&s.score).map(Severity::from_cvss3_score),
            "CVSS_V2" => cvss2_score(&s.score).map(|x| {
                if x >= 7.0 {
                    Severity::High
                } else if x >= 4.0 {
                    Severity::Medium
                } else {
                    Severity::Low
                }
            }),
            _ => None,
        };
        if let Some(l) = level {
            // v3 first: the first readable vector of the most specific place wins.
            if s.kind == "CVSS_V3" {
                return l;
            }
            best.get_or_insert(l);
        }
    }
    if let Some(b) = best {
        return b;
    }
    let word = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .and_then(|v| v.get("severity"))
            .and_then(|s| s.as_str())
            .and_then(Severity::from_word)
    };
    word(&affected.ecosystem_specific)
        .or_else(|| word(&affected.database_specific))
        .or_else(|| word(&record.database_specific))
        .unwrap_or(Severity::Unknown)
}

fn vector_metrics(vector: &str) -> std::collections::HashMap<&str, &str> {
    vector
        .split('/')
        .filter_map(|m| m.split_once(':'))
        .collect()
}

/// The CVSS v3.0/v3.1 base score of a vector (`CVSS:3.1/AV:N/AC:L/...`); `None` if malformed.
pub fn cvss3_score(vector: &str) -> Option<f64> {
    if !vector.starts_with("CVSS:3.") {
        return None;
    }
    let m = vector_metrics(vector);
    let changed = match *m.get("S")? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let av = match *m.get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match *m.get("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (*m.get("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match *m.get("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |k: &str| -> Option<f64> {
        match *m.get(k)? {
            "H" => Some(0.56),
            "L" => Some(0.22),
            "N" => Some(0.0),
            _ => None,
        }
    };
    let iss = 1.0 - (1.0 - cia("C")?) * (1.0 - cia("I")?) * (1.0 - cia("A")?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02_f64).powi(15)
    } else {
        6.42 * iss
    };
    if impact <= 0.0 {
        return Some(0.0);
    }
    let exploitability = 8.22 * av * ac * pr * ui;
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    // CVSS v3.1 Roundup.
    let int_input = (raw * 100_000.0).round() as i64;
    Some(if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) + 1) as f64 / 10.0
    })
}

/// The CVSS v2 base score of a vector (`AV:N/AC:L/Au:N/C:P/I:P/A:P`); `None` if malformed.
pub fn cvss2_score(vector: &str) -> Option<f64> {
    let m = vector_metrics(vector.trim_start_matches('(').trim_end_matches(')'));
    let av = match *m.get("AV")? {
        "L" => 0.395,
        "A" => 0.646,
        "N" => 1.0,
        _ => return None,
    };
    let ac = match *m.get("AC")? {
        "H" => 0.35,
        "M" => 0.61,
        "L" => 0.71,
        _ => return None,
    };
    let au = match *m.get("Au")? {
        "M" => 0.45,
        "S" => 0.56,
        "N" => 0.704,
        _ => return None,
    };
    let cia = |k: &str| -> Option<f64> {
        match *m.get(k)? {
            "N" => Some(0.0),
            "P" => Some(0.275),
            "C" => Some(0.660),
            _ => None,
        }
    };
    let impact = 10.41 * (1.0 - (1.0 - cia("C")?) * (1.0 - cia("I")?) * (1.0 - cia("A")?));
    let exploitability = 20.0 * av * ac * au;
    let f = if impact == 0.0 { 0.0 } else { 1.176 };
    Some((((0.6 * impact) + (0.4 * exploitability) - 1.5) * f * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_scores() {
        assert_eq!(
            cvss3_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            Some(9.8)
        );
        assert_eq!(
            cvss3_score("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N"),
            Some(6.4)
        );
        assert_eq!(
            cvss3_score("CVSS:3.0/AV:L/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"),
            Some(5.1)
        );
        assert_eq!(cvss2_score("AV:N/AC:L/Au:N/C:P/I:P/A:P"), Some(7.5));
        assert_eq!(cvss3_score("garbage"), None);
    }
}
