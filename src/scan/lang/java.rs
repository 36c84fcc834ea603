//! Java archives (jar, war, ear and the Jenkins jpi/hpi), nested archives included: every
//! `META-INF/maven/GROUP/ARTIFACT/pom.properties` is a package; an archive without one falls
//! back to `META-INF/MANIFEST.MF` (`Implementation-*`, then `Bundle-*` headers), then to its file
//! name (`name-1.2.3.jar`).
//!
//! A zip's directory is at its end, so the archive is spooled to an unlinked temporary file
//! (disk, not memory). Everything is bounded, so a zip bomb is refused, not inflated: entries per
//! archive, nesting depth, bytes inflated per file read and in total for the outermost archive;
//! the declared size is checked before reading and the actual bytes are capped while reading.

use std::io::{self, Cursor, Read, Seek};

use super::{package, Found};
use crate::scan::PackageKind;

/// Nested archives are opened this deep (the outermost is depth 0).
pub const MAX_DEPTH: usize = 3;
/// The most entries an archive (each nested one too) may have.
pub const MAX_ENTRIES: usize = 100_000;
/// The most bytes inflated from one archive and everything nested in it.
pub const MAX_INFLATED_BYTES: u64 = 512 * 1024 * 1024;
/// The largest nested archive read (into memory).
pub const MAX_NESTED_BYTES: u64 = 64 * 1024 * 1024;
/// The largest `pom.properties` or `MANIFEST.MF` read.
const MAX_META_BYTES: u64 = 1024 * 1024;

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JavaError {
    /// Not a readable zip.
    #[error("{archive}: not a readable zip archive: {source}")]
    Zip {
        /// The archive (`outer.jar!inner.jar` for a nested one).
        archive: String,
        /// The zip error.
        source: zip::result::ZipError,
    },
    /// Spooling or inflating failed.
    #[error("{archive}: {source}")]
    Io {
        /// The archive.
        archive: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Too many entries.
    #[error("{archive}: {entries} entries, over the limit of {MAX_ENTRIES}")]
    TooManyEntries {
        /// The archive.
        archive: String,
        /// Its entry count.
        entries: usize,
    },
    /// More would be inflated than allowed: a zip bomb, or an archive too large to read.
    #[error("{archive}: `{entry}` would inflate past the {limit} byte limit (zip bomb?)")]
    TooMuchInflated {
        /// The archive.
        archive: String,
        /// The entry.
        entry: String,
        /// The limit.
        limit: u64,
    },
}

/// Whether a path names a Java archive.
pub fn is_archive(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".jar", ".war", ".ear", ".jpi", ".hpi"]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// Maven coordinates as found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Coordinates {
    group: String,
    artifact: String,
    version: String,
}

struct Budget {
    inflated: u64,
}

/// Reads one archive from a stream.
pub fn read(path: &str, content: &mut dyn Read) -> Found {
    let mut spool = || -> Result<std::fs::File, JavaError> {
        let io_err = |source| JavaError::Io {
            archive: path.to_string(),
            source,
        };
        let mut f = tempfile::tempfile().map_err(io_err)?;
        io::copy(&mut content.take(super::MAX_ARCHIVE_BYTES), &mut f).map_err(io_err)?;
        f.rewind().map_err(io_err)?;
        Ok(f)
    };
    let mut found = Found::default();
    let result = spool().and_then(|f| {
        let mut budget = Budget { inflated: 0 };
        read_archive(
            path,
            path,
            io::BufReader::new(f),
            0,
            &mut budget,
            &mut found,
        )
    });
    if let Err(e) = result {
        found.warnings.push(format!("{e}; skipped"));
    }
    found
}

/// Reads an archive held in memory (tests, benches).
pub fn read_bytes(path: &str, bytes: &[u8]) -> Result<Found, JavaError> {
    let mut found = Found::default();
    let mut budget = Budget { inflated: 0 };
    read_archive(path, path, Cursor::new(bytes), 0, &mut budget, &mut found)?;
    Ok(found)
}

fn read_archive<R: Read + Seek>(
    location: &str,
    name: &str,
    reader: R,
    depth: usize,
    budget: &mut Budget,
    found: &mut Found,
) -> Result<(), JavaError> {
    let zip_err = |source| JavaError::Zip {
        archive: name.to_string(),
        source,
    };
    let mut zip = zip::ZipArchive::new(reader).map_err(zip_err)?;
    if zip.len() > MAX_ENTRIES {
        return Err(JavaError::TooManyEntries {
            archive: name.to_string(),
            entries: zip.len(),
        });
    }
    let mut poms = Vec::new();
    let mut manifest = None;
    let mut nested = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(zip_err)?;
        if entry.is_dir() {
            continue;
        }
        let entry_name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let is_pom =
            entry_name.starts_with("META-INF/maven/") && entry_name.ends_with("/pom.properties");
        let is_manifest = entry_name.eq_ignore_ascii_case("META-INF/MANIFEST.MF");
        let is_nested = depth < MAX_DEPTH && is_archive(&entry_name);
        if !(is_pom || is_manifest || is_nested) {
            continue;
        }
        let cap = if is_nested {
            MAX_NESTED_BYTES
        } else {
            MAX_META_BYTES
        };
        let limit = MAX_INFLATED_BYTES.saturating_sub(budget.inflated).min(cap);
        let too_much = || JavaError::TooMuchInflated {
            archive: name.to_string(),
            entry: entry_name.clone(),
            limit: MAX_INFLATED_BYTES.min(cap),
        };
        if entry.size() > limit {
            return Err(too_much());
        }
        let mut buf = Vec::new();
        (&mut entry)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|source| JavaError::Io {
                archive: name.to_string(),
                source,
            })?;
        if buf.len() as u64 > limit {
            return Err(too_much());
        }
        budget.inflated += buf.len() as u64;
        if is_pom {
            if let Some(c) = parse_pom_properties(&String::from_utf8_lossy(&buf)) {
                poms.push(c);
            }
        } else if is_manifest {
            manifest = Some(String::from_utf8_lossy(&buf).into_owned());
        } else {
            nested.push((entry_name, buf));
        }
    }
    drop(zip);
    let file_name = name.rsplit(['/', '!']).next().unwrap_or(name);
    let mut coords = poms;
    if coords.is_empty() {
        coords.extend(
            manifest
                .as_deref()
                .and_then(|m| from_manifest(m, file_name))
                .or_else(|| from_file_name(file_name)),
        );
    }
    for c in coords {
        let id = if c.group.is_empty() {
            c.artifact.clone()
        } else {
            format!("{}:{}", c.group, c.artifact)
        };
        let purl = super::purl(
            "maven",
            &format!("{}/{}", c.group, c.artifact),
            &c.version,
            &[],
        );
        let purl = purl.replace("pkg:maven//", "pkg:maven/");
        found.packages.push(package(
            PackageKind::Java,
            &id,
            &c.version,
            purl,
            location,
            None,
        ));
    }
    for (entry_name, bytes) in nested {
        let inner = format!("{name}!{entry_name}");
        read_archive(
            location,
            &inner,
            Cursor::new(bytes),
            depth + 1,
            budget,
            found,
        )?;
    }
    Ok(())
}

/// `groupId`, `artifactId`, `version` of a `pom.properties` (Java properties syntax, `=` or `:`).
fn parse_pom_properties(text: &str) -> Option<Coordinates> {
    let (mut g, mut a, mut v) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, val)) = line.split_once(['=', ':']) else {
            continue;
        };
        let val = val.trim().to_string();
        match k.trim() {
            "groupId" => g = Some(val),
            "artifactId" => a = Some(val),
            "version" => v = Some(val),
            _ => {}
        }
    }
    Some(Coordinates {
        group: g.unwrap_or_default(),
        artifact: a.filter(|a| !a.is_empty())?,
        version: v.filter(|v| !v.is_empty())?,
    })
}

/// Main-section headers of a manifest (continuation lines start with a space).
fn manifest_headers(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break; // the main section ends at the first blank line
        }
        if let Some(cont) = line.strip_prefix(' ') {
            if let Some(last) = out.last_mut() {
                last.1.push_str(cont);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn from_manifest(text: &str, file_name: &str) -> Option<Coordinates> {
    let h = manifest_headers(text);
    let get = |k: &str| {
        h.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let version = get("Implementation-Version")
        .or_else(|| get("Bundle-Version"))
        .or_else(|| get("Specification-Version"))?;
    let artifact = from_file_name(file_name)
        .map(|c| c.artifact)
        .or_else(|| get("Implementation-Title"))
        .or_else(|| {
            get("Bundle-SymbolicName").map(|s| s.split(';').next().unwrap_or(&s).to_string())
        })?;
    let group = get("Implementation-Vendor-Id").unwrap_or_default();
    Some(Coordinates {
        group,
        artifact,
        version,
    })
}

/// `commons-io-2.11.0.jar` → `commons-io` 2.11.0: the version starts at the first `-digit`.
fn from_file_name(file_name: &str) -> Option<Coordinates> {
    let stem = file_name
        .rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or(file_name);
    let b = stem.as_bytes();
    let at = (1..b.len()).find(|&i| b[i - 1] == b'-' && b[i].is_ascii_digit())?;
    Some(Coordinates {
        group: String::new(),
        artifact: stem[..at - 1].to_string(),
        version: stem[at..].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn jar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (n, c) in entries {
            w.start_file(*n, opts).expect("entry");
            w.write_all(c).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn pom_manifest_file_name_and_nested() {
        let inner = jar(&[(
            "META-INF/maven/org.x/inner/pom.properties",
            b"groupId=org.x\nartifactId=inner\nversion=1.0\n",
        )]);
        let outer = jar(&[
            (
                "META-INF/MANIFEST.MF",
                b"Manifest-Version: 1.0\nImplementation-Version: 2.0\n",
            ),
            ("BOOT-INF/lib/inner-1.0.jar", &inner),
        ]);
        let f = read_bytes("app/outer-2.0.jar", &outer).expect("reads");
        let p: Vec<_> = f.packages.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(p, ["pkg:maven/outer@2.0", "pkg:maven/org.x/inner@1.0"]);
        assert!(f.packages.iter().all(|p| p.location == "app/outer-2.0.jar"));
        assert_eq!(
            from_file_name("commons-io-2.11.0.jar")
                .map(|c| c.version)
                .as_deref(),
            Some("2.11.0")
        );
    }

    #[test]
    fn zip_bomb_is_refused() {
        // 600 MiB of zeros deflate to well under 1 MiB; the entry is a nested jar.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("lib/bomb.jar", opts).expect("entry");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..600 {
            w.write_all(&zeros).expect("write");
        }
        let bytes = w.finish().expect("finish").into_inner();
        assert!(bytes.len() < 4 << 20, "{}", bytes.len());
        let e = read_bytes("x.jar", &bytes).expect_err("refused");
        assert!(e.to_string().contains("zip bomb"), "{e}");
        let f = read("x.jar", &mut &bytes[..]);
        assert!(
            f.warnings[0].contains("would inflate past"),
            "{:?}",
            f.warnings
        );
    }
}
