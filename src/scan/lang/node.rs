//! npm packages: `name`, `version` and `license` of every `package.json` inside a
//! `node_modules` directory (what `npm install` put there, nested or not). The application's
//! own `package.json` outside `node_modules` is not a dependency and is not listed.

use std::io::Read;

use serde::Deserialize;

use super::{package, read_capped, Found, MAX_MANIFEST_BYTES};
use crate::scan::PackageKind;

/// Whether a path is a package's manifest under `node_modules`.
pub fn is_package_json(path: &str) -> bool {
    let Some(dir) = path.strip_suffix("/package.json") else {
        return false;
    };
    // node_modules/NAME/package.json or node_modules/@SCOPE/NAME/package.json
    let parts: Vec<&str> = dir.rsplit('/').take(3).collect();
    match parts.as_slice() {
        [_, "node_modules", ..] => true,
        [_, scope, "node_modules"] => scope.starts_with('@'),
        _ => false,
    }
}

#[derive(Deserialize)]
struct Manifest {
    name: Option<String>,
    version: Option<String>,
    license: Option<serde_json::Value>,
}

/// Reads one `package.json`.
pub fn read(path: &str, content: &mut dyn Read) -> Found {
    let bytes = match read_capped(content, MAX_MANIFEST_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Found::warning(
                path,
                format_args!("package.json over the {MAX_MANIFEST_BYTES} byte limit; not read"),
            )
        }
        Err(e) => return Found::warning(path, format_args!("unreadable: {e}")),
    };
    let m: Manifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => return Found::warning(path, format_args!("not valid JSON: {e}")),
    };
    let (Some(name), Some(version)) = (m.name, m.version) else {
        return Found::default();
    };
    if name.is_empty() || version.is_empty() {
        return Found::default();
    }
    let license = match m.license {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Object(o)) => {
            o.get("type").and_then(|t| t.as_str()).map(str::to_string)
        }
        _ => None,
    };
    let purl = super::purl("npm", &name, &version, &[]);
    Found {
        packages: vec![package(
            PackageKind::Npm,
            &name,
            &version,
            purl,
            path,
            license,
        )],
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scoped_and_plain() {
        assert!(is_package_json("app/node_modules/@babel/core/package.json"));
        assert!(is_package_json(
            "node_modules/a/node_modules/b/package.json"
        ));
        assert!(!is_package_json("app/package.json"));
        assert!(!is_package_json("node_modules/a/lib/package.json"));
        let f = read(
            "n/node_modules/@babel/core/package.json",
            &mut &br#"{"name":"@babel/core","version":"7.0.0","license":"MIT"}"#[..],
        );
        assert_eq!(f.packages[0].purl, "pkg:npm/%40babel/core@7.0.0");
        assert!(
            read("x/node_modules/y/package.json", &mut &b"{"[..]).warnings[0]
                .contains("not valid JSON")
        );
    }
}
