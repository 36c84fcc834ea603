//! The dpkg database: `var/lib/dpkg/status` and distroless `var/lib/dpkg/status.d/*`.
//! Packages whose `Status` says they are being removed (`deinstall`, `purge`) or no longer
//! installed (`not-installed`, `config-files`) are skipped; a stanza without `Status` (as
//! distroless writes them) counts as installed. `Source: name (version)` gives the source
//! package; without it the source is the binary package, and without `(version)` the source
//! version is the binary version.

use serde::Serialize;

/// The dpkg status file.
pub const STATUS_FILE: &str = "var/lib/dpkg/status";
/// The distroless per-package status directory.
pub const STATUS_DIR: &str = "var/lib/dpkg/status.d";

/// A package from the dpkg database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DpkgPackage {
    /// Binary package name.
    pub name: String,
    /// Binary version (`[epoch:]upstream[-revision]`).
    pub version: String,
    /// Source package name.
    pub source_name: String,
    /// Source package version.
    pub source_version: String,
    /// Architecture.
    pub architecture: Option<String>,
    /// Maintainer.
    pub maintainer: Option<String>,
    /// The `Status` field as written, if any.
    pub status: Option<String>,
}

/// A dpkg database that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpkgError {
    /// A stanza lacks a field every package has.
    #[error("{file}: the stanza at line {line} ({package}) has no `{field}` field")]
    MissingField {
        /// The database file.
        file: String,
        /// The stanza's first line (1-based).
        line: usize,
        /// The package, or `?` when the name is what is missing.
        package: String,
        /// The field.
        field: &'static str,
    },
    /// A line that is neither `Field: value` nor a continuation.
    #[error("{file}:{line}: not a `Field: value` line")]
    BadLine {
        /// The database file.
        file: String,
        /// The line (1-based).
        line: usize,
    },
}

/// Whether a `Status` value (`want flag state`) describes an installed package.
pub fn is_installed(status: &str) -> bool {
    let words: Vec<&str> = status.split_whitespace().collect();
    let want = words.first().copied().unwrap_or("");
    let state = words.get(2).copied().unwrap_or("");
    !matches!(want, "deinstall" | "purge") && !matches!(state, "not-installed" | "config-files")
}

/// Splits `Source: name (version)`.
fn parse_source(source: &str) -> (String, Option<String>) {
    let source = source.trim();
    match source.split_once('(') {
        Some((name, rest)) => (
            name.trim().to_string(),
            Some(rest.trim_end().trim_end_matches(')').trim().to_string())
                .filter(|v| !v.is_empty()),
        ),
        None => (source.to_string(), None),
    }
}

/// Parses a status file (or one `status.d` file); `file` names it in errors.
pub fn parse_status(text: &str, file: &str) -> Result<Vec<DpkgPackage>, DpkgError> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut start = 0usize;
    let finish = |fields: &mut Vec<(String, String)>,
                  start: usize,
                  out: &mut Vec<DpkgPackage>|
     -> Result<(), DpkgError> {
        if fields.is_empty() {
            return Ok(());
        }
        let fields = std::mem::take(fields);
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.trim().to_string())
        };
        let status = get("Status");
        let installed = status.as_deref().is_none_or(is_installed);
        let name = get("Package");
        if !installed {
            return Ok(());
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err(DpkgError::MissingField {
                file: file.to_string(),
                line: start,
                package: "?".into(),
                field: "Package",
            });
        };
        let Some(version) = get("Version").filter(|v| !v.is_empty()) else {
            return Err(DpkgError::MissingField {
                file: file.to_string(),
                line: start,
                package: name,
                field: "Version",
            });
        };
        let (source_name, source_version) = match get("Source") {
            Some(s) if !s.is_empty() => parse_source(&s),
            _ => (name.clone(), None),
        };
        out.push(DpkgPackage {
            source_version: source_version.unwrap_or_else(|| version.clone()),
            source_name,
            name,
            version,
            architecture: get("Architecture"),
            maintainer: get("Maintainer"),
            status,
        });
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            finish(&mut fields, start, &mut out)?;
            continue;
        }
        if fields.is_empty() {
            start = i + 1;
        }
        if line.starts_with([' ', '\t']) {
            match fields.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line);
                }
                None => {
                    return Err(DpkgError::BadLine {
                        file: file.to_string(),
                        line: i + 1,
                    })
                }
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains(' ') => {
                fields.push((k.to_string(), v.trim().to_string()))
            }
            _ => {
                return Err(DpkgError::BadLine {
                    file: file.to_string(),
                    line: i + 1,
                })
            }
        }
    }
    finish(&mut fields, start, &mut out)?;
    Ok(out)
}

/// Whether a file in `status.d` is a package stanza file (not a `.md5sums` companion).
pub fn is_status_d_entry(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    !base.is_empty() && !base.starts_with('.') && !base.ends_with(".md5sums")
}
