//! .NET packages: the `libraries` of a `*.deps.json` (what `dotnet publish` writes beside an
//! application), keeping, as trivy does, the application project and every package that puts
//! assets on the runtime path (`runtime`, `runtimeTargets` or `native` in one of the file's
//! `targets`). Build-only packages (analyzers, source-link tasks, compilers) have no assets
//! there: they are not in the image's running code, and listing them would only raise findings
//! for code that never runs. syft lists them too; `docs/SCAN.md` records the difference.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use serde::Deserialize;

use super::{package, read_capped, Found, MAX_MANIFEST_BYTES};
use crate::scan::PackageKind;

/// Whether a path is a dependency manifest written by the .NET SDK.
pub fn is_deps_json(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.len() > ".deps.json".len() && base.ends_with(".deps.json")
}

#[derive(Deserialize)]
struct DepsFile {
    #[serde(default)]
    targets: BTreeMap<String, BTreeMap<String, TargetLibrary>>,
    #[serde(default)]
    libraries: BTreeMap<String, Library>,
}

#[derive(Deserialize, Default)]
struct TargetLibrary {
    #[serde(default)]
    runtime: Option<serde_json::Value>,
    #[serde(default, rename = "runtimeTargets")]
    runtime_targets: Option<serde_json::Value>,
    #[serde(default)]
    native: Option<serde_json::Value>,
}

impl TargetLibrary {
    fn has_runtime_assets(&self) -> bool {
        let non_empty = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .is_some_and(|v| v.as_object().is_none_or(|o| !o.is_empty()))
        };
        non_empty(&self.runtime) || non_empty(&self.runtime_targets) || non_empty(&self.native)
    }
}

#[derive(Deserialize)]
struct Library {
    #[serde(rename = "type")]
    kind: String,
}

/// Reads one `*.deps.json`.
pub fn read(path: &str, content: &mut dyn Read) -> Found {
    let bytes = match read_capped(content, MAX_MANIFEST_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Found::warning(
                path,
                format_args!("deps.json over the {MAX_MANIFEST_BYTES} byte limit; not read"),
            )
        }
        Err(e) => return Found::warning(path, format_args!("unreadable: {e}")),
    };
    let deps: DepsFile = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => return Found::warning(path, format_args!("not a .NET deps.json: {e}")),
    };
    let on_runtime_path: HashSet<&str> = deps
        .targets
        .values()
        .flat_map(|libs| libs.iter())
        .filter(|(_, l)| l.has_runtime_assets())
        .map(|(k, _)| k.as_str())
        .collect();
    let mut found = Found::default();
    for (key, lib) in &deps.libraries {
        if lib.kind != "package" && lib.kind != "project" {
            continue;
        }
        if !on_runtime_path.contains(key.as_str()) {
            continue;
        }
        let Some((name, version)) = key.split_once('/') else {
            found.warnings.push(format!(
                "{path}: library `{key}` is not NAME/VERSION; skipped"
            ));
            continue;
        };
        if name.is_empty() || version.is_empty() {
            continue;
        }
        let purl = super::purl("nuget", name, version, &[]);
        found
            .packages
            .push(package(PackageKind::Nuget, name, version, purl, path, None));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_runtime_libraries_and_the_project() {
        assert!(is_deps_json("app/Web.deps.json"));
        assert!(!is_deps_json("app/.deps.json"));
        assert!(!is_deps_json("app/deps.json.bak"));
        let text = br#"{
          "targets": {".NETCoreApp,Version=v8.0": {
            "Web/1.0.0": {"dependencies": {"Newtonsoft.Json": "13.0.1"}, "runtime": {"Web.dll": {}}},
            "Newtonsoft.Json/13.0.1": {"runtime": {"lib/net6.0/Newtonsoft.Json.dll": {}}},
            "SQLite.Native/3.0.0": {"runtimeTargets": {"runtimes/linux-x64/native/libe_sqlite3.so": {}}},
            "Analyzer/1.0.0": {},
            "Meta/1.0.0": {"dependencies": {"Newtonsoft.Json": "13.0.1"}}
          }},
          "libraries": {
            "Web/1.0.0": {"type": "project"},
            "Newtonsoft.Json/13.0.1": {"type": "package"},
            "SQLite.Native/3.0.0": {"type": "package"},
            "Analyzer/1.0.0": {"type": "package"},
            "Meta/1.0.0": {"type": "package"},
            "Ref/1.0.0": {"type": "reference"}
          }}"#;
        let f = read("app/Web.deps.json", &mut &text[..]);
        let names: Vec<&str> = f.packages.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(
            names,
            [
                "pkg:nuget/Newtonsoft.Json@13.0.1",
                "pkg:nuget/SQLite.Native@3.0.0",
                "pkg:nuget/Web@1.0.0"
            ]
        );
        assert!(f.packages.iter().all(|p| p.location == "app/Web.deps.json"));
        assert!(read("a.deps.json", &mut &b"[1]"[..]).warnings[0].contains("not a .NET deps.json"));
    }

    #[test]
    fn refuses_an_oversized_stream_and_skips_keys_that_are_not_name_slash_version() {
        // A reader that does not stop at the cap: read up to it, then refused.
        let mut big = std::io::repeat(b' ').take(MAX_MANIFEST_BYTES + 1);
        let f = read("x.deps.json", &mut big);
        assert!(f.packages.is_empty());
        assert_eq!(
            f.warnings,
            ["x.deps.json: deps.json over the 8388608 byte limit; not read"]
        );
        let text = br#"{"targets": {"t": {"NoSlash": {"runtime": {"a.dll": {}}}, "A/1.0": {"native": {"a.so": {}}}}},
                        "libraries": {"NoSlash": {"type": "package"}, "A/1.0": {"type": "package"}}}"#;
        let f = read("y.deps.json", &mut &text[..]);
        let purls: Vec<&str> = f.packages.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(purls, ["pkg:nuget/A@1.0"]);
        assert_eq!(
            f.warnings,
            ["y.deps.json: library `NoSlash` is not NAME/VERSION; skipped"]
        );
    }
}
