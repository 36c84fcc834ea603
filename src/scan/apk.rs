//! The apk database `lib/apk/db/installed`: one stanza per package, `X:value` lines
//! (`P` name, `V` version, `A` arch, `o` origin, `m` maintainer, `L` license, `c` commit).
//! Advisories are keyed by the origin (source) package; without `o:` it is the package itself.

use serde::Serialize;

/// The apk installed database.
pub const INSTALLED_FILE: &str = "lib/apk/db/installed";
/// Where a `/usr`-merged system keeps it (read when [`INSTALLED_FILE`] is absent).
pub const INSTALLED_FILE_USR: &str = "usr/lib/apk/db/installed";

/// A package from the apk database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApkPackage {
    /// Package name.
    pub name: String,
    /// Version (`1.2.4-r0`).
    pub version: String,
    /// Origin (source) package.
    pub origin: String,
    /// Architecture.
    pub arch: Option<String>,
    /// Maintainer.
    pub maintainer: Option<String>,
    /// License expression.
    pub license: Option<String>,
    /// The aports commit it was built from.
    pub commit: Option<String>,
}

/// An apk database that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApkError {
    /// A stanza lacks a field every package has.
    #[error("{file}: the stanza at line {line} ({package}) has no `{field}:` field")]
    MissingField {
        /// The database file.
        file: String,
        /// The stanza's first line (1-based).
        line: usize,
        /// The package, or `?` when the name is what is missing.
        package: String,
        /// The field letter.
        field: &'static str,
    },
}

/// Parses an installed database; `file` names it in errors.
pub fn parse_installed(text: &str, file: &str) -> Result<Vec<ApkPackage>, ApkError> {
    #[derive(Default)]
    struct Stanza {
        start: usize,
        seen: bool,
        name: Option<String>,
        version: Option<String>,
        origin: Option<String>,
        arch: Option<String>,
        maintainer: Option<String>,
        license: Option<String>,
        commit: Option<String>,
    }
    let finish = |s: Stanza, out: &mut Vec<ApkPackage>| -> Result<(), ApkError> {
        if !s.seen {
            return Ok(());
        }
        let Some(name) = s.name else {
            return Err(ApkError::MissingField {
                file: file.to_string(),
                line: s.start,
                package: "?".into(),
                field: "P",
            });
        };
        let Some(version) = s.version else {
            return Err(ApkError::MissingField {
                file: file.to_string(),
                line: s.start,
                package: name,
                field: "V",
            });
        };
        out.push(ApkPackage {
            origin: s.origin.unwrap_or_else(|| name.clone()),
            name,
            version,
            arch: s.arch,
            maintainer: s.maintainer,
            license: s.license,
            commit: s.commit,
        });
        Ok(())
    };
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            finish(std::mem::take(&mut cur), &mut out)?;
            continue;
        }
        if !cur.seen {
            cur.seen = true;
            cur.start = i + 1;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        match k {
            "P" => cur.name = v,
            "V" => cur.version = v,
            "o" => cur.origin = v,
            "A" => cur.arch = v,
            "m" => cur.maintainer = v,
            "L" => cur.license = v,
            "c" => cur.commit = v,
            _ => {}
        }
    }
    finish(cur, &mut out)?;
    Ok(out)
}
