//! trivy's vulnerability database written offline from OSV records, so that trivy (which
//! matches only against its own database, never OSV) can be run on the same advisories airlock's
//! `db build` compiles, and the two scanners' findings compared.
//!
//! Two parts, each written from the public format descriptions, not from their code:
//! - [`bolt_file`]: a bbolt (BoltDB) file: meta pages 0 and 1 (FNV-1a checksummed), an empty
//!   freelist page, then one leaf page (with overflow pages when it is larger than a page) per
//!   bucket; nested buckets are referenced by their root page, never inlined.
//! - [`buckets_from_osv`]: the trivy-db schema 2 layout: `data-source` (bucket name → source),
//!   `<platform>` → `<package>` → `<vulnerability id>` → advisory JSON, and `vulnerability`
//!   (id → title, severity). Platforms as trivy's detectors ask for them: `debian 12`,
//!   `alpine 3.18`, `alma 9`, `rocky 9`, `go::The Go Vulnerability Database` (stdlib and
//!   `golang.org/x/*`), `go::`, `pip::`, `npm::`, `maven::`, `nuget::`, `cargo::GitHub Security
//!   Advisory …`. As trivy-db's OSV conversion does, an advisory is keyed by its CVE aliases
//!   when it has any (the other IDs become `VendorIDs`), language ranges become
//!   `VulnerableVersions` (`>=1.0, <1.2`) and `PatchedVersions`, several `affected[]` entries of
//!   one package are merged, OS advisories carry the `FixedVersion` (or status `affected`), and
//!   PyPI and NuGet names are normalised the way trivy looks them up.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

/// bbolt's page size as written in the meta page (readers take it from there).
const PAGE: usize = 4096;
const MAGIC: u32 = 0xED0C_DAED;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const FREELIST: u16 = 0x10;
const BUCKET_FLAG: u32 = 0x01;

/// A bbolt bucket: keys in byte order (bbolt searches pages by binary search), each a value or
/// a nested bucket.
#[derive(Default)]
pub struct Bucket(BTreeMap<Vec<u8>, Item>);

pub enum Item {
    Value(Vec<u8>),
    Bucket(Bucket),
}

impl Bucket {
    /// The nested bucket `name`, created when absent.
    pub fn bucket(&mut self, name: &str) -> &mut Bucket {
        match self
            .0
            .entry(name.as_bytes().to_vec())
            .or_insert_with(|| Item::Bucket(Bucket::default()))
        {
            Item::Bucket(b) => b,
            Item::Value(_) => panic!("`{name}` is a value, not a bucket"),
        }
    }

    pub fn put(&mut self, key: &str, value: &Value) {
        self.0.insert(
            key.as_bytes().to_vec(),
            Item::Value(value.to_string().into_bytes()),
        );
    }

    pub fn get(&self, key: &str) -> Option<&Item> {
        self.0.get(key.as_bytes())
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn page_header(out: &mut [u8], id: u64, flags: u16, count: u16, overflow: u32) {
    out[0..8].copy_from_slice(&id.to_le_bytes());
    out[8..10].copy_from_slice(&flags.to_le_bytes());
    out[10..12].copy_from_slice(&count.to_le_bytes());
    out[12..16].copy_from_slice(&overflow.to_le_bytes());
}

/// Appends `b` (its nested buckets first) as one leaf node and returns its page id.
fn write_leaf(b: &Bucket, out: &mut Vec<u8>) -> u64 {
    let mut items: Vec<(&[u8], u32, Vec<u8>)> = Vec::with_capacity(b.0.len());
    for (k, item) in &b.0 {
        match item {
            Item::Value(v) => items.push((k, 0, v.clone())),
            Item::Bucket(child) => {
                // The bucket header: root page id and sequence.
                let mut v = write_leaf(child, out).to_le_bytes().to_vec();
                v.extend(0u64.to_le_bytes());
                items.push((k, BUCKET_FLAG, v));
            }
        }
    }
    assert!(items.len() < 0xFFFF, "one leaf holds fewer than 65535 keys");
    let mut node = vec![0u8; 16 + 16 * items.len()];
    for (i, (k, flags, v)) in items.iter().enumerate() {
        let elem = 16 + 16 * i;
        // `pos` counts from the element itself to its key.
        let pos = (node.len() - elem) as u32;
        node[elem..elem + 4].copy_from_slice(&flags.to_le_bytes());
        node[elem + 4..elem + 8].copy_from_slice(&pos.to_le_bytes());
        node[elem + 8..elem + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
        node[elem + 12..elem + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
        node.extend_from_slice(k);
        node.extend_from_slice(v);
    }
    let pages = node.len().div_ceil(PAGE).max(1);
    let id = (out.len() / PAGE) as u64;
    page_header(&mut node, id, LEAF, items.len() as u16, (pages - 1) as u32);
    node.resize(pages * PAGE, 0);
    out.extend_from_slice(&node);
    id
}

/// A complete bbolt file holding `root`'s buckets.
pub fn bolt_file(root: &Bucket) -> Vec<u8> {
    let mut out = vec![0u8; 3 * PAGE];
    let root_page = write_leaf(root, &mut out);
    let high_water = (out.len() / PAGE) as u64;
    page_header(&mut out[2 * PAGE..], 2, FREELIST, 0, 0);
    for txid in [0u64, 1] {
        let at = txid as usize * PAGE;
        page_header(&mut out[at..], txid, META, 0, 0);
        let mut meta = Vec::with_capacity(64);
        meta.extend(MAGIC.to_le_bytes());
        meta.extend(2u32.to_le_bytes()); // format version
        meta.extend((PAGE as u32).to_le_bytes());
        meta.extend(0u32.to_le_bytes()); // flags
        meta.extend(root_page.to_le_bytes());
        meta.extend(0u64.to_le_bytes()); // root sequence
        meta.extend(2u64.to_le_bytes()); // freelist page
        meta.extend(high_water.to_le_bytes());
        meta.extend(txid.to_le_bytes());
        let sum = fnv1a64(&meta);
        meta.extend(sum.to_le_bytes());
        out[at + 16..at + 16 + meta.len()].copy_from_slice(&meta);
    }
    out
}

/// Where trivy looks an OSV `affected[]` entry up: (platform bucket, data source, package
/// key, whether it is a language ecosystem), or `None` for an ecosystem this writer skips.
fn platform(ecosystem: &str, name: &str) -> Option<(String, Value, String, bool)> {
    let ghsa = |eco: &str, label: &str| {
        let bucket = format!("{eco}::GitHub Security Advisory {label}");
        let source = json!({"ID": "ghsa", "Name": format!("GitHub Security Advisory {label}"),
            "URL": format!("https://github.com/advisories?query=type%3Areviewed+ecosystem%3A{}", label.to_lowercase())});
        (bucket, source)
    };
    let os = |bucket: String, id: &str, label: &str| {
        Some((
            bucket,
            json!({"ID": id, "Name": label}),
            name.to_string(),
            false,
        ))
    };
    if let Some(n) = ecosystem.strip_prefix("Debian:") {
        return os(format!("debian {n}"), "debian", "Debian Security Tracker");
    }
    if let Some(v) = ecosystem.strip_prefix("Alpine:v") {
        return os(format!("alpine {v}"), "alpine", "Alpine Secdb");
    }
    if let Some(n) = ecosystem.strip_prefix("AlmaLinux:") {
        return os(format!("alma {n}"), "alma", "AlmaLinux Product Errata");
    }
    if let Some(n) = ecosystem.strip_prefix("Rocky Linux:") {
        return os(format!("rocky {n}"), "rocky", "Rocky Linux updateinfo");
    }
    let ((bucket, source), key) = match ecosystem {
        "Go" if name == "stdlib" || name.starts_with("golang.org/x/") => (
            (
                "go::The Go Vulnerability Database".to_string(),
                json!({"ID": "govulndb", "Name": "The Go Vulnerability Database", "URL": "https://pkg.go.dev/vuln/"}),
            ),
            name.to_string(),
        ),
        "Go" => (ghsa("go", "Go"), name.to_string()),
        "PyPI" => (ghsa("pip", "pip"), name.to_lowercase().replace('_', "-")),
        "npm" => (ghsa("npm", "npm"), name.to_lowercase()),
        "Maven" => (ghsa("maven", "Maven"), name.to_lowercase()),
        "NuGet" => (ghsa("nuget", "NuGet"), name.to_lowercase()),
        "crates.io" => (ghsa("cargo", "Rust"), name.to_lowercase()),
        _ => return None,
    };
    Some((bucket, source, key, true))
}

/// One range of `affected[].ranges[]` as trivy-db writes it: `>=A, <B`, `<B` (from `0`),
/// `<=B` (last affected), `=A` (introduced and last affected the same), `>=A` (open).
fn constraint(from: &str, to: Option<(&str, bool)>) -> String {
    match to {
        None => format!(">={from}"),
        Some((t, true)) if t == from => format!("={t}"),
        Some((t, inclusive)) => {
            let op = if inclusive { "<=" } else { "<" };
            if from == "0" {
                format!("{op}{t}")
            } else {
                format!(">={from}, {op}{t}")
            }
        }
    }
}

/// (vulnerable ranges, patched versions, first fixed version) of one `affected[]` entry.
fn ranges(affected: &Value) -> (Vec<String>, Vec<String>, Option<String>) {
    let mut open: Vec<(String, Option<(String, bool)>)> = Vec::new();
    let mut patched = Vec::new();
    for r in affected["ranges"].as_array().into_iter().flatten() {
        if r["type"] == "GIT" {
            continue;
        }
        for e in r["events"].as_array().into_iter().flatten() {
            if let Some(i) = e["introduced"].as_str() {
                open.push((i.to_string(), None));
            } else if let Some(f) = e["fixed"].as_str() {
                if let Some(last) = open.last_mut() {
                    last.1 = Some((f.to_string(), false));
                }
                patched.push(f.to_string());
            } else if let Some(l) = e["last_affected"].as_str() {
                if let Some(last) = open.last_mut() {
                    last.1 = Some((l.to_string(), true));
                }
            }
        }
    }
    let mut vulnerable: Vec<String> = open
        .iter()
        .map(|(f, t)| constraint(f, t.as_ref().map(|(t, i)| (t.as_str(), *i))))
        .collect();
    if open.is_empty() {
        for v in affected["versions"].as_array().into_iter().flatten() {
            vulnerable.extend(v.as_str().map(|v| format!("={v}")));
        }
    }
    let first_fixed = patched.first().cloned();
    (vulnerable, patched, first_fixed)
}

/// One package's `affected[]` entries of one record, merged.
#[derive(Default)]
struct Affected {
    /// The `data-source` entry of its platform bucket.
    source: Value,
    /// A language ecosystem (ranges) rather than an OS (a fixed version).
    lang: bool,
    vulnerable: Vec<String>,
    patched: Vec<String>,
    /// The first `fixed` event (OS advisories).
    fixed: Option<String>,
}

/// trivy-db's buckets for the OSV records in `paths` (files, or directories searched
/// recursively for `*.json`).
pub fn buckets_from_osv(paths: &[&Path]) -> Bucket {
    let mut files = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).expect("read OSV directory") {
                stack.push(e.expect("entry").path());
            }
        } else if p.extension().is_some_and(|e| e == "json") {
            files.push(p);
        }
    }
    files.sort();
    let mut root = Bucket::default();
    for f in files {
        let record: Value =
            serde_json::from_slice(&std::fs::read(&f).expect("OSV record")).expect("OSV JSON");
        let Some(id) = record["id"].as_str() else {
            continue; // not an OSV record (an index or a provenance file)
        };
        if record["withdrawn"].is_string() {
            continue;
        }
        let mut all: Vec<String> = Vec::new();
        for a in ["aliases", "upstream"] {
            for x in record[a].as_array().into_iter().flatten() {
                if let Some(x) = x.as_str().filter(|x| !all.iter().any(|y| y == x)) {
                    all.push(x.to_string());
                }
            }
        }
        all.push(id.to_string());
        let (cves, others): (Vec<String>, Vec<String>) =
            all.into_iter().partition(|x| x.starts_with("CVE-"));
        let (ids, vendor_ids) = if cves.is_empty() {
            (
                vec![id.to_string()],
                others.into_iter().filter(|x| x != id).collect(),
            )
        } else {
            (cves, others)
        };
        // (bucket, package) → what its `affected[]` entries say, merged.
        let mut merged: BTreeMap<(String, String), Affected> = BTreeMap::new();
        for a in record["affected"].as_array().into_iter().flatten() {
            let (Some(eco), Some(name)) = (
                a["package"]["ecosystem"].as_str(),
                a["package"]["name"].as_str(),
            ) else {
                continue;
            };
            let Some((bucket, source, key, lang)) = platform(eco, name) else {
                continue;
            };
            let (vulnerable, patched, fixed) = ranges(a);
            let m = merged.entry((bucket, key)).or_insert_with(|| Affected {
                source,
                lang,
                ..Affected::default()
            });
            m.vulnerable.extend(vulnerable);
            m.patched.extend(patched);
            m.fixed = m.fixed.take().or(fixed);
        }
        let severity = record["database_specific"]["severity"]
            .as_str()
            .map(|s| if s == "MODERATE" { "MEDIUM" } else { s })
            .map(str::to_uppercase);
        for ((bucket, key), a) in merged {
            root.bucket("data-source").put(&bucket, &a.source);
            let mut advisory = serde_json::Map::new();
            if !vendor_ids.is_empty() {
                advisory.insert("VendorIDs".into(), json!(vendor_ids));
            }
            if a.lang {
                advisory.insert("VulnerableVersions".into(), json!(a.vulnerable));
                if !a.patched.is_empty() {
                    advisory.insert("PatchedVersions".into(), json!(a.patched));
                }
            } else if let Some(f) = a.fixed {
                advisory.insert("FixedVersion".into(), json!(f));
            } else {
                advisory.insert("Status".into(), json!(2)); // affected: no fix yet
            }
            for vid in &ids {
                root.bucket(&bucket)
                    .bucket(&key)
                    .put(vid, &Value::Object(advisory.clone()));
                let mut detail = json!({"Title": record["summary"].as_str().unwrap_or_default()});
                if let Some(s) = &severity {
                    detail["Severity"] = json!(s);
                }
                root.bucket("vulnerability").put(vid, &detail);
            }
        }
    }
    root
}

/// trivy-java-db's tables (schema 1), empty.
const JAVA_DB_SCHEMA: &str = "CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT);
CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB, archive_type TEXT, foreign key (artifact_id) references artifacts(id));
CREATE UNIQUE INDEX artifacts_idx ON artifacts(artifact_id, group_id);
CREATE INDEX indices_artifact_idx ON indices(artifact_id);
CREATE UNIQUE INDEX indices_sha1_idx ON indices(sha1);";

/// Writes `CACHE/db/trivy.db` and `CACHE/db/metadata.json` (schema version 2) for `trivy
/// --cache-dir CACHE --skip-db-update`, and an empty Java index (`CACHE/java-db`, schema 1):
/// without one trivy refuses to scan an image holding jars (`--skip-java-db-update cannot be
/// specified on the first run`); with no rows in it, a jar is known by its `pom.properties`.
pub fn write_cache(osv: &[&Path], cache: &Path) {
    let meta = |version: u32| {
        json!({"Version": version, "NextUpdate": "2099-01-01T00:00:00Z",
            "UpdatedAt": "2026-01-01T00:00:00Z", "DownloadedAt": "2026-01-01T00:00:00Z"})
        .to_string()
    };
    let dir = cache.join("db");
    std::fs::create_dir_all(&dir).expect("trivy db dir");
    std::fs::write(dir.join("trivy.db"), bolt_file(&buckets_from_osv(osv))).expect("trivy.db");
    std::fs::write(dir.join("metadata.json"), meta(2)).expect("metadata.json");
    // Made by Python's sqlite3: the tests have no SQLite writer of their own.
    let java = cache.join("java-db");
    std::fs::create_dir_all(&java).expect("java db dir");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
        ])
        .arg(java.join("trivy-java.db"))
        .arg(JAVA_DB_SCHEMA)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python3 sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(java.join("metadata.json"), meta(1)).expect("java metadata.json");
}
