//! Python distributions: the core metadata headers (`Name`, `Version`, `License`) of
//! `*.dist-info/METADATA` (wheels, pip installs) and `*.egg-info/PKG-INFO` or a `*.egg-info`
//! file (setuptools), read up to the first blank line (the description after it is not needed).

use std::io::{BufRead, BufReader, Read};

use super::{package, Found};
use crate::scan::PackageKind;

/// The longest header section read.
const MAX_HEADER_BYTES: u64 = 1024 * 1024;

/// Whether a path is a distribution's metadata file.
pub fn is_metadata(path: &str) -> bool {
    let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
    let parent = dir.rsplit('/').next().unwrap_or(dir);
    (base == "METADATA" && parent.ends_with(".dist-info"))
        || (base == "PKG-INFO" && parent.ends_with(".egg-info"))
        || base.ends_with(".egg-info")
}

/// The PEP 503 normalized name (`Foo_Bar.baz` → `foo-bar-baz`), what PyPI and advisories key by.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Reads one metadata file.
pub fn read(path: &str, content: &mut dyn Read) -> Found {
    let mut r = BufReader::new(content.take(MAX_HEADER_BYTES));
    let (mut name, mut version, mut license) = (None, None, None);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Found::warning(path, format_args!("unreadable: {e}")),
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        if let Some((k, v)) = text.split_once(':') {
            let v = v.trim().to_string();
            match k {
                "Name" if name.is_none() => name = Some(v),
                "Version" if version.is_none() => version = Some(v),
                "License" if license.is_none() && !v.is_empty() && v != "UNKNOWN" => {
                    license = Some(v)
                }
                "License-Expression" => license = Some(v),
                _ => {}
            }
        }
    }
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => {
            let purl = super::purl("pypi", &normalize_name(&n), &v, &[]);
            Found {
                packages: vec![package(PackageKind::Python, &n, &v, purl, path, license)],
                warnings: Vec::new(),
            }
        }
        _ => Found::warning(path, "Python metadata without Name and Version; skipped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_only() {
        let m = b"Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.2\nLicense: BSD-3-Clause\n\nVersion: 9\n";
        let f = read(
            "usr/lib/python3/dist-packages/Jinja2-3.1.2.dist-info/METADATA",
            &mut &m[..],
        );
        assert_eq!(f.packages[0].name, "Jinja2");
        assert_eq!(f.packages[0].version, "3.1.2");
        assert_eq!(f.packages[0].purl, "pkg:pypi/jinja2@3.1.2");
        assert_eq!(f.packages[0].license.as_deref(), Some("BSD-3-Clause"));
        assert!(is_metadata("a/b.egg-info/PKG-INFO"));
        assert!(is_metadata("a/b-1.0.egg-info"));
        assert!(!is_metadata("a/METADATA"));
        assert_eq!(normalize_name("Foo__Bar.baz"), "foo-bar-baz");
        assert_eq!(read("x.egg-info", &mut &b"Name: x\n"[..]).warnings.len(), 1);
    }
}
