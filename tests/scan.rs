//! Scanning tests on real upstream data (see tests/data/*/PROVENANCE.md).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use airlock::scan::version::{apk, dpkg};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("parsing {rel}: {e}"))
}

fn sign(o: Ordering) -> i64 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

#[test]
fn dpkg_version_corpus_every_case() {
    let v = json("versions/dpkg-version-compare.json");
    let mut n = 0;
    for c in v["comparisons"].as_array().expect("comparisons") {
        let (a, b) = (c["a"].as_str().unwrap(), c["b"].as_str().unwrap());
        let want = c["expected"].as_i64().unwrap();
        assert_eq!(sign(dpkg::compare(a, b)), want, "compare({a}, {b})");
        assert_eq!(sign(dpkg::compare(b, a)), -want, "compare({b}, {a})");
        n += 1;
    }
    assert_eq!(n, 43);
    let sorts = v["sorts"].as_array().expect("sorts");
    assert_eq!(sorts.len(), 3);
    let cmps: [fn(&str, &str) -> Ordering; 3] =
        [dpkg::compare, dpkg::compare_part, dpkg::compare_string];
    for (s, cmp) in sorts.iter().zip(cmps) {
        let mut list: Vec<&str> = s["unsorted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        list.sort_by(|a, b| cmp(a, b));
        let want: Vec<&str> = s["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(list, want, "{}", s["compare"]);
    }
    let validity = v["validity"].as_array().expect("validity");
    assert_eq!(validity.len(), 9);
    for c in validity {
        let ver = c["version"].as_str().unwrap();
        assert_eq!(
            dpkg::DebVersion::parse(ver).is_ok(),
            c["valid"].as_bool().unwrap(),
            "validity of `{ver}` ({})",
            c["note"]
        );
    }
    let er = v["has_epoch_revision"]
        .as_array()
        .expect("has_epoch_revision");
    assert_eq!(er.len(), 5);
    for c in er {
        let ver = c["version"].as_str().unwrap();
        let p = dpkg::DebVersion::parse(ver).unwrap_or_else(|e| panic!("{ver}: {e}"));
        assert_eq!(p.epoch.is_some(), c["epoch"].as_bool().unwrap(), "{ver}");
        assert_eq!(
            p.revision.is_some(),
            c["revision"].as_bool().unwrap(),
            "{ver}"
        );
    }
}

#[test]
fn apk_version_corpus_every_line() {
    let text = String::from_utf8(read("versions/apk-tools-version.data")).expect("utf-8");
    let (mut compares, mut validity) = (0, 0);
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            [a, op, b] => {
                let (invert, op) = match op.strip_prefix('!') {
                    Some(op) => (true, op),
                    None => (false, *op),
                };
                assert_eq!(apk::matches(a, op, b), !invert, "line {}: {line}", i + 1);
                compares += 1;
            }
            [v] => {
                let (invert, v) = match v.strip_prefix('!') {
                    Some(v) => (true, v),
                    None => (false, *v),
                };
                assert_eq!(apk::validate(v), !invert, "line {}: {line}", i + 1);
                validity += 1;
            }
            _ => panic!("line {}: unexpected shape {line}", i + 1),
        }
    }
    assert_eq!(compares + validity, 785);
    assert!(validity >= 30, "{validity}");
}

// ---------------------------------------------------------------------------------------------
// Package databases (real files, upstream expectations).

use airlock::scan::flatten::{Compression, Layer, Limits, RootFs};
use airlock::scan::{self as scan, apk as apkdb, dpkg as dpkgdb, PackageKind};

fn s<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("field {k} in {v}"))
}

#[test]
fn dpkg_ubuntu_bionic_status_matches_trivy_expectation() {
    let text = String::from_utf8(read(
        "packages/debian/trivy-ubuntu-bionic/var/lib/dpkg/status",
    ))
    .expect("utf-8");
    let pkgs = dpkgdb::parse_status(&text, "var/lib/dpkg/status").expect("parse");
    let want = json("packages/debian/trivy-ubuntu-bionic/expected-packages.json");
    let want = want["packages"].as_array().expect("packages");
    assert_eq!(want.len(), 90);
    assert_eq!(pkgs.len(), 90, "91 stanzas, the deinstalled `git` skipped");
    assert!(!pkgs.iter().any(|p| p.name == "git"));
    for w in want {
        let name = s(w, "Name");
        let p = pkgs
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        // trivy splits epoch and revision; ours is the full version string.
        let id_version = s(w, "ID").split_once('@').map(|x| x.1).unwrap_or("");
        assert_eq!(p.version, id_version, "{name}");
        assert_eq!(p.source_name, s(w, "SrcName"), "{name}");
        let mut src_version = s(w, "SrcVersion").to_string();
        if let Some(e) = w
            .get("SrcEpoch")
            .and_then(|e| e.as_i64())
            .filter(|e| *e > 0)
        {
            src_version = format!("{e}:{src_version}");
        }
        if let Some(r) = w
            .get("SrcRelease")
            .and_then(|r| r.as_str())
            .filter(|r| !r.is_empty())
        {
            src_version = format!("{src_version}-{r}");
        }
        assert_eq!(p.source_version, src_version, "{name}");
        assert_eq!(p.architecture.as_deref(), Some(s(w, "Arch")), "{name}");
        assert_eq!(p.maintainer.as_deref(), Some(s(w, "Maintainer")), "{name}");
    }
}

fn fs_from_dir(rel: &str) -> RootFs {
    let root = data(rel);
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    RootFs::from_files(files)
}

#[test]
fn dpkg_debian12_matches_osv_scalibr_expectation() {
    let inv = scan::inventory(&fs_from_dir("packages/debian/osv-scalibr-debian12")).expect("inv");
    let os = inv.os.clone().expect("os");
    assert_eq!(os.osv_ecosystem().as_deref(), Some("Debian:12"));
    assert_eq!(os.codename.as_deref(), Some("bookworm"));
    let want = json("packages/debian/osv-scalibr-debian12/expected-packages.json");
    let want = want["packages"].as_array().expect("packages");
    assert_eq!(inv.packages.len(), want.len());
    assert_eq!(want.len(), 7);
    for w in want {
        let p = inv
            .packages
            .iter()
            .find(|p| p.name == s(w, "name"))
            .expect("package");
        assert_eq!(p.version, s(w, "version"));
        assert_eq!(p.arch.as_deref(), Some(s(w, "Architecture")));
        assert_eq!(p.maintainer.as_deref(), Some(s(w, "Maintainer")));
        assert_eq!(p.kind, PackageKind::Deb);
        assert!(p.purl.contains("distro=debian-12"), "{}", p.purl);
        assert!(p.purl.starts_with("pkg:deb/debian/"), "{}", p.purl);
    }
    let ul = inv
        .packages
        .iter()
        .find(|p| p.name == "util-linux-extra")
        .expect("util-linux-extra");
    assert_eq!(
        (ul.source_name.as_str(), ul.source_version.as_str()),
        ("util-linux", "2.38.1-5")
    );
    assert_eq!(ul.version, "2.38.1-5+b1");
    assert_eq!(
        ul.purl,
        "pkg:deb/debian/util-linux-extra@2.38.1-5%2Bb1?arch=amd64&distro=debian-12&upstream=util-linux%402.38.1-5"
    );
}

#[test]
fn distroless_status_d_entries() {
    let inv =
        scan::inventory(&fs_from_dir("packages/debian/osv-scalibr-status.d")).expect("inventory");
    let names: Vec<(&str, &str, Option<&str>, Option<&str>)> = inv
        .packages
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.version.as_str(),
                p.arch.as_deref(),
                p.maintainer.as_deref(),
            )
        })
        .collect();
    assert_eq!(names, [("foo", "1.2.3", Some("amd64"), Some("someone"))]);

    let inv = scan::inventory(&fs_from_dir("packages/debian/syft-distroless")).expect("inventory");
    let want = json("packages/debian/syft-distroless/package-list.DERIVED.json");
    let want = want["packages"].as_array().expect("packages");
    assert_eq!(inv.packages.len(), want.len());
    for w in want {
        let p = inv
            .packages
            .iter()
            .find(|p| p.name == s(w, "name"))
            .expect("package");
        assert_eq!(p.version, s(w, "version"));
        assert_eq!(p.arch.as_deref(), Some(s(w, "architecture")));
        let src = w["source"].as_str().unwrap_or(&p.name);
        assert_eq!(p.source_name, src, "{}", p.name);
        assert!(p.location.starts_with("var/lib/dpkg/status.d/"));
    }
    let selinux = inv
        .packages
        .iter()
        .find(|p| p.name == "libselinux1")
        .expect("libselinux1");
    assert_eq!(
        (
            selinux.source_name.as_str(),
            selinux.source_version.as_str()
        ),
        ("libselinux", "3.4-1")
    );
}

#[test]
fn apk_installed_matches_osv_scalibr_expectation() {
    let inv =
        scan::inventory(&fs_from_dir("packages/alpine/osv-scalibr-alpine-3.18")).expect("inv");
    let os = inv.os.clone().expect("os");
    assert_eq!(os.osv_ecosystem().as_deref(), Some("Alpine:v3.18"));
    let want = json("packages/alpine/osv-scalibr-alpine-3.18/expected-packages.json");
    let want = want["packages"].as_array().expect("packages");
    assert_eq!(want.len(), 15);
    assert_eq!(inv.packages.len(), 15);
    for w in want {
        let p = inv
            .packages
            .iter()
            .find(|p| p.name == s(w, "name"))
            .expect("package");
        assert_eq!(p.version, s(w, "version"));
        assert_eq!(p.source_name, s(w, "origin"));
        assert_eq!(p.arch.as_deref(), Some(s(w, "arch")));
        assert_eq!(p.maintainer.as_deref(), Some(s(w, "maintainer")));
        assert_eq!(p.license.as_deref(), Some(s(w, "license")));
        assert_eq!(p.kind, PackageKind::Apk);
    }
    let ssl = inv
        .packages
        .iter()
        .find(|p| p.name == "libssl3")
        .expect("libssl3");
    assert_eq!(
        ssl.purl,
        "pkg:apk/alpine/libssl3@3.1.0-r4?arch=x86_64&distro=alpine-3.18.0&upstream=openssl"
    );
    let raw = String::from_utf8(read(
        "packages/alpine/osv-scalibr-alpine-3.18/lib/apk/db/installed",
    ))
    .unwrap();
    assert_eq!(
        apkdb::parse_installed(&raw, "installed")
            .expect("parse")
            .len(),
        15
    );
}

#[test]
fn malformed_package_databases_name_the_file() {
    let e = dpkgdb::parse_status(
        "Package: x\nStatus: install ok installed\n\n",
        "var/lib/dpkg/status",
    )
    .expect_err("no version");
    assert!(
        e.to_string().contains("var/lib/dpkg/status") && e.to_string().contains("Version"),
        "{e}"
    );
    let e = dpkgdb::parse_status("garbage line\n", "status.d/x").expect_err("bad line");
    assert!(e.to_string().contains("status.d/x:1"), "{e}");
    let e = apkdb::parse_installed("P:musl\nA:x86_64\n", "lib/apk/db/installed").expect_err("no V");
    assert!(
        e.to_string().contains("musl") && e.to_string().contains("V:"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Fixture images: layers built here from the real package databases.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use airlock::oci::Digest;
use airlock::scan::db::{self, Builder, Database, DbError};
use airlock::scan::matcher::{self, Matches};
use airlock::scan::osv::{self, Severity};
use airlock::scan::policy::{self, AllowEntry, ScanPolicy, Suppression};
use airlock::scan::vex::{self, ImageContext, VexStatus};

enum E<'a> {
    F(&'a str, Vec<u8>),
    D(&'a str),
    L(&'a str, &'a str),
}

fn tar_layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        match e {
            E::F(p, c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                b.append_data(&mut h, p, &c[..]).expect("append");
            }
            E::D(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).expect("append");
            }
            E::L(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, t).expect("append");
            }
        }
    }
    b.into_inner().expect("tar")
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

fn zst(b: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(b, 3).expect("zstd")
}

fn layers(ls: Vec<(Compression, Vec<u8>)>) -> Vec<Layer<std::io::Cursor<Vec<u8>>>> {
    ls.into_iter()
        .map(|(c, b)| Layer {
            name: Digest::of(&b).to_string(),
            compression: c,
            reader: std::io::Cursor::new(b),
        })
        .collect()
}

const ALPINE: &str = "packages/alpine/osv-scalibr-alpine-3.18";

/// Alpine 3.18: base layer (gzip) with the real db, os-release as a symlink into usr/lib, and
/// an unrelated big file; second layer (zstd) adds apk repositories.
fn alpine_image() -> Vec<Layer<std::io::Cursor<Vec<u8>>>> {
    let base = tar_layer(&[
        E::D("./etc/"),
        E::L("./etc/os-release", "../usr/lib/os-release"),
        E::F(
            "./usr/lib/os-release",
            read(&format!("{ALPINE}/etc/os-release")),
        ),
        E::F("./etc/alpine-release", b"3.18.0\n".to_vec()),
        E::F(
            "./lib/apk/db/installed",
            read(&format!("{ALPINE}/lib/apk/db/installed")),
        ),
        E::F("./usr/bin/big", vec![0u8; 300_000]),
    ]);
    let top = tar_layer(&[E::F(
        "etc/apk/repositories",
        b"https://dl-cdn.alpinelinux.org/alpine/v3.18/main\nhttps://dl-cdn.alpinelinux.org/alpine/v3.18/community\n".to_vec(),
    )]);
    layers(vec![
        (Compression::Gzip, gzip(&base)),
        (Compression::Zstd, zst(&top)),
    ])
}

fn build_db(dir: &Path, built_at: SystemTime) -> PathBuf {
    let mut b = Builder::new();
    b.add_source(&data("osv/debian")).expect("debian");
    b.add_source(&data("osv/alpine")).expect("alpine");
    let out = dir.join("vuln.db");
    b.write(&out, built_at).expect("write");
    out
}

fn alpine_matches(db: &Database) -> (scan::Inventory, Matches) {
    let inv = scan::inventory_layers(alpine_image(), Limits::default()).expect("inventory");
    let m = matcher::match_inventory(&inv, db).expect("match");
    (inv, m)
}

#[test]
fn alpine_fixture_image_known_findings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(&build_db(dir.path(), SystemTime::now())).expect("open");
    let (inv, m) = alpine_matches(&db);
    assert_eq!(inv.packages.len(), 15);
    assert_eq!(m.ecosystem.as_deref(), Some("Alpine:v3.18"));
    assert!(m.covered);
    let expected = json("osv/expected-matches.DERIVED.json");
    let mut want: Vec<(String, String, String)> = expected["expected_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                s(f, "advisory").into(),
                s(f, "package").into(),
                s(f, "installed").into(),
            )
        })
        .collect();
    want.sort();
    let got: Vec<(String, String, String)> = m
        .findings
        .iter()
        .map(|f| {
            (
                f.id.clone(),
                f.package.name.clone(),
                f.package.version.clone(),
            )
        })
        .collect();
    assert_eq!(got, want, "exactly the derived expectation, nothing else");
    for f in &m.findings {
        assert_eq!(f.fixed_version.as_deref(), Some("1.2.4-r3"));
        assert_eq!(
            f.severity,
            Severity::High,
            "CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:H/I:H/A:H = 7.0"
        );
        assert!(f.is_named("CVE-2025-26519"));
    }
    // The report, Trivy-shaped.
    let verdict = policy::evaluate(
        &m,
        &ScanPolicy::default(),
        &[],
        &ImageContext::default(),
        Some(&db),
        SystemTime::now(),
    )
    .expect("evaluate");
    assert!(verdict.passed);
    let r = serde_json::to_value(airlock::scan::report::build(
        "alpine:3.18",
        &inv,
        &m,
        &verdict,
        Some(&db),
    ))
    .expect("json");
    let v = &r["Results"][0]["Vulnerabilities"];
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["VulnerabilityID"], "ALPINE-CVE-2025-26519");
    assert_eq!(v[0]["PkgName"], "musl");
    assert_eq!(v[0]["InstalledVersion"], "1.2.4-r0");
    assert_eq!(v[0]["FixedVersion"], "1.2.4-r3");
    assert_eq!(v[0]["Status"], "fixed");
    assert_eq!(v[0]["Severity"], "HIGH");
    assert_eq!(r["Metadata"]["OS"]["Family"], "alpine");
}

#[test]
fn sbom_is_cyclonedx_1_5_and_deterministic() {
    let inv = scan::inventory_layers(alpine_image(), Limits::default()).expect("inventory");
    let digest = Digest::of(b"manifest");
    let platform: airlock::oci::Platform = "linux/amd64".parse().expect("platform");
    let subject = airlock::scan::sbom::Subject {
        name: "alpine:3.18",
        digest: &digest,
        platform: Some(&platform),
    };
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let a = airlock::scan::sbom::cyclonedx(&subject, &inv, t);
    let b = airlock::scan::sbom::cyclonedx(&subject, &inv, t);
    assert_eq!(a, b);
    assert_eq!(a["bomFormat"], "CycloneDX");
    assert_eq!(a["specVersion"], "1.5");
    assert_eq!(a["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    let comps = a["components"].as_array().expect("components");
    assert_eq!(comps.len(), 16, "the OS and 15 packages");
    assert_eq!(comps[0]["type"], "operating-system");
    assert!(comps[1..].iter().all(|c| c["purl"]
        .as_str()
        .is_some_and(|p| p.starts_with("pkg:apk/alpine/"))));
    assert!(a["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
}

#[test]
fn sbom_reads_back_as_the_same_inventory() {
    let inv = scan::inventory_layers(alpine_image(), Limits::default()).expect("inventory");
    let digest = Digest::of(b"manifest");
    let subject = airlock::scan::sbom::Subject {
        name: "alpine:3.18",
        digest: &digest,
        platform: None,
    };
    let doc = airlock::scan::sbom::cyclonedx(&subject, &inv, SystemTime::UNIX_EPOCH);
    let back = airlock::scan::sbom::inventory_from(&doc).expect("read back");
    assert_eq!(back, inv, "what import re-matches is what collect found");
    // An SBOM without what matching needs is refused, naming the package.
    let mut bad = doc.clone();
    bad["components"][1]["properties"] = serde_json::json!([]);
    let err = airlock::scan::sbom::inventory_from(&bad).expect_err("no properties");
    assert!(err.contains("airlock:package:type"), "{err}");
    assert!(airlock::scan::sbom::inventory_from(&serde_json::json!({})).is_err());
}

#[test]
fn whiteouts_and_opaque_dirs_remove_packages() {
    let sd = "packages/debian/syft-distroless/var/lib/dpkg/status.d";
    let base = tar_layer(&[
        E::F(
            "etc/os-release",
            read("packages/debian/osv-scalibr-debian12/etc/os-release"),
        ),
        E::F(
            "var/lib/dpkg/status.d/libsqlite3-0",
            read(&format!("{sd}/libsqlite3-0")),
        ),
        E::F(
            "var/lib/dpkg/status.d/libsqlite3-0.md5sums",
            read(&format!("{sd}/libsqlite3-0.md5sums")),
        ),
        E::F(
            "var/lib/dpkg/status.d/coreutils",
            read(&format!("{sd}/coreutils-relationships")),
        ),
    ]);
    let names = |inv: &scan::Inventory| -> Vec<String> {
        let mut n: Vec<String> = inv.packages.iter().map(|p| p.name.clone()).collect();
        n.dedup();
        n
    };
    let one = scan::inventory_layers(
        layers(vec![(Compression::None, base.clone())]),
        Limits::default(),
    )
    .expect("inventory");
    assert!(names(&one).contains(&"libsqlite3-0".to_string()));
    assert_eq!(one.packages.len(), 10);

    // A whiteout in the upper layer removes libsqlite3-0.
    let wh = tar_layer(&[E::F("var/lib/dpkg/status.d/.wh.libsqlite3-0", Vec::new())]);
    let two = scan::inventory_layers(
        layers(vec![
            (Compression::None, base.clone()),
            (Compression::Gzip, gzip(&wh)),
        ]),
        Limits::default(),
    )
    .expect("inventory");
    assert!(!names(&two).contains(&"libsqlite3-0".to_string()));
    assert_eq!(two.packages.len(), 9);

    // An opaque directory hides everything below it; what the same layer adds stays.
    let opq = tar_layer(&[
        E::F("var/lib/dpkg/status.d/.wh..wh..opq", Vec::new()),
        E::F(
            "var/lib/dpkg/status.d/foo",
            read("packages/debian/osv-scalibr-status.d/var/lib/dpkg/status.d/foo"),
        ),
    ]);
    let three = scan::inventory_layers(
        layers(vec![
            (Compression::None, base.clone()),
            (Compression::Zstd, zst(&opq)),
        ]),
        Limits::default(),
    )
    .expect("inventory");
    assert_eq!(names(&three), ["foo"]);

    // A whiteout of the whole directory, then a file replacing a lower file.
    let gone = tar_layer(&[E::F("var/lib/dpkg/.wh.status.d", Vec::new())]);
    let four = scan::inventory_layers(
        layers(vec![(Compression::None, base), (Compression::None, gone)]),
        Limits::default(),
    )
    .expect("inventory");
    assert!(four.packages.is_empty());
    assert_eq!(
        four.os.expect("os").osv_ecosystem().as_deref(),
        Some("Debian:12")
    );
}

#[test]
fn flatten_limits_and_bad_layers() {
    let big = tar_layer(&[E::F("var/lib/dpkg/status", vec![b'x'; 5000])]);
    let e = flatten::flatten(
        layers(vec![(Compression::None, big)]),
        scan::wanted,
        Limits {
            max_file_bytes: 4096,
            max_total_bytes: 1 << 20,
        },
    )
    .expect_err("too large");
    assert!(
        e.to_string().contains("var/lib/dpkg/status") && e.to_string().contains("4096"),
        "{e}"
    );
    let e = scan::inventory_layers(
        layers(vec![(Compression::Gzip, b"not gzip at all".to_vec())]),
        Limits::default(),
    )
    .expect_err("bad gzip");
    assert!(e.to_string().contains("sha256:"), "names the layer: {e}");
    assert_eq!(
        Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
        Some(Compression::Zstd)
    );
    assert_eq!(
        Compression::from_media_type("application/vnd.cncf.helm.chart.content.v1.tar+gzip"),
        None
    );
}

use airlock::scan::flatten;

// ---------------------------------------------------------------------------------------------
// OSV input and the database file.

#[test]
fn database_from_real_osv_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let db = Database::open(&build_db(dir.path(), t)).expect("open");
    let h = db.header();
    assert_eq!(h.records, 10);
    assert_eq!(h.sources.len(), 2);
    assert!(h
        .sources
        .iter()
        .all(|s| s.kind == "dir" && s.digest.as_str().starts_with("sha256:")));
    assert_eq!(db.built_at().expect("time"), t);
    for eco in [
        "Debian:7",
        "Debian:9",
        "Debian:10",
        "Debian:11",
        "Alpine:v3.3",
        "Alpine:v3.18",
        "Alpine:v3.24",
    ] {
        assert!(db.covers(eco), "{eco}");
    }
    // Debian by source package and dpkg order: DLA-3008-1 (openssl, fixed 1.1.0l-1~deb9u6).
    let adv = db.lookup("Debian:9", "openssl").expect("lookup");
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].id, "DLA-3008-1");
    assert!(adv[0].aliases.contains(&"CVE-2022-1292".to_string()));
    assert_eq!(adv[0].severity, Severity::Unknown, "the record gives none");
    assert!(
        adv[0].versions.is_empty(),
        "all 19 listed versions are inside the range"
    );
    let d = airlock::scan::version::VersionScheme::Dpkg;
    assert_eq!(
        matcher::affects(d, "1.1.0l-1~deb9u5", &adv[0]),
        Some(Some("1.1.0l-1~deb9u6".into()))
    );
    assert_eq!(matcher::affects(d, "1.1.0l-1~deb9u6", &adv[0]), None);
    assert_eq!(
        matcher::affects(d, "1.1.0l-1", &adv[0]),
        None,
        "~ sorts before the bare revision"
    );
    // CVE-2018-5407: CVSS 3.1 vector C:H only => 4.7 MEDIUM; its GIT-only entry is dropped.
    let adv = db.lookup("Alpine:v3.8", "openssl").expect("lookup");
    assert_eq!(adv[0].severity, Severity::Medium);
    assert!(db
        .lookup("Debian:12", "openssl")
        .expect("lookup")
        .is_empty());
    assert!(db.keys().all(|(e, _)| db::kept_ecosystem(e)));
}

#[test]
fn debian_image_matched_by_source_package() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(&build_db(dir.path(), SystemTime::now())).expect("open");
    // A Debian 9 image whose libssl1.1 comes from source openssl (the record is keyed by it).
    let status = "Package: libssl1.1\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 1.1.0l-1~deb9u5\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2021a-0+deb9u4\n\nPackage: dpkg\nStatus: deinstall ok config-files\nVersion: 1.18.25\n";
    let img = tar_layer(&[
        E::F(
            "etc/os-release",
            b"ID=debian\nVERSION_ID=\"9\"\nVERSION_CODENAME=stretch\n".to_vec(),
        ),
        E::F("var/lib/dpkg/status", status.as_bytes().to_vec()),
    ]);
    let inv = scan::inventory_layers(layers(vec![(Compression::None, img)]), Limits::default())
        .expect("inv");
    let m = matcher::match_inventory(&inv, &db).expect("match");
    let got: Vec<(&str, &str, Option<&str>)> = m
        .findings
        .iter()
        .map(|f| {
            (
                f.id.as_str(),
                f.package.name.as_str(),
                f.fixed_version.as_deref(),
            )
        })
        .collect();
    assert_eq!(got, [("DLA-3008-1", "libssl1.1", Some("1.1.0l-1~deb9u6"))]);
}

#[test]
fn osv_zip_dump_equals_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zip_path = dir.path().join("all.zip");
    {
        let f = std::fs::File::create(&zip_path).expect("create");
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for e in std::fs::read_dir(data("osv/alpine")).expect("dir") {
            let p = e.expect("entry").path();
            z.start_file(p.file_name().unwrap().to_string_lossy(), opts)
                .expect("start");
            z.write_all(&std::fs::read(&p).expect("read"))
                .expect("write");
        }
        z.finish().expect("finish");
    }
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let mut a = Builder::new();
    let info = a.add_source(&zip_path).expect("zip").clone();
    assert_eq!((info.kind.as_str(), info.records), ("zip", 3));
    let mut b = Builder::new();
    b.add_source(&data("osv/alpine")).expect("dir");
    let (da, db_) = (
        Database::from_bytes(a.to_bytes(t).expect("bytes"), Path::new("a")).expect("a"),
        Database::from_bytes(b.to_bytes(t).expect("bytes"), Path::new("b")).expect("b"),
    );
    let ka: Vec<_> = da.keys().collect();
    assert_eq!(ka, db_.keys().collect::<Vec<_>>());
    for (e, p) in ka {
        assert_eq!(da.lookup(e, p).expect("a"), db_.lookup(e, p).expect("b"));
    }
}

#[test]
fn osv_unknown_fields_accepted_malformed_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rec: serde_json::Value = json("osv/alpine/ALPINE-CVE-2025-26519.json");
    rec["x_future_field"] = serde_json::json!({"anything": [1, 2, 3]});
    rec["affected"][2]["x_new"] = serde_json::json!("ok");
    let good = dir.path().join("future.json");
    std::fs::write(&good, serde_json::to_vec(&rec).unwrap()).unwrap();
    let mut b = Builder::new();
    b.add_source(&good).expect("unknown fields are accepted");
    let db = Database::from_bytes(b.to_bytes(SystemTime::now()).unwrap(), Path::new("x")).unwrap();
    assert_eq!(db.lookup("Alpine:v3.18", "musl").unwrap().len(), 1);

    let bad_dir = dir.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    std::fs::copy(
        data("osv/alpine/CVE-2018-5407.json"),
        bad_dir.join("a.json"),
    )
    .unwrap();
    std::fs::write(
        bad_dir.join("broken-record.json"),
        br#"{"id": "X-1", "affected": "not a list"}"#,
    )
    .unwrap();
    let e = Builder::new()
        .add_source(&bad_dir)
        .map(|_| ())
        .expect_err("malformed");
    assert!(
        matches!(e, DbError::Osv(osv::OsvError::Malformed { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("broken-record.json"), "{e}");
    std::fs::write(bad_dir.join("broken-record.json"), b"{ not json").unwrap();
    let e = Builder::new()
        .add_source(&bad_dir)
        .map(|_| ())
        .expect_err("not json");
    assert!(e.to_string().contains("broken-record.json"), "{e}");
    // The shared index is not an OSV record either: a clear error, not a silent skip.
    let e = Builder::new()
        .add_source(&data("osv"))
        .map(|_| ())
        .expect_err("index.json");
    assert!(e.to_string().contains(".json"), "{e}");
}

#[test]
fn corrupted_database_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build_db(dir.path(), SystemTime::now());
    let good = std::fs::read(&path).unwrap();
    for at in [20, good.len() / 2, good.len() - 40, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let e = Database::open(&path).expect_err("corrupt");
        assert!(matches!(e, DbError::Corrupt { .. }), "byte {at}: {e:?}");
        assert!(
            e.to_string().contains("vuln.db") && e.to_string().contains("checksum"),
            "{e}"
        );
    }
    std::fs::write(&path, &good[..good.len() - 100]).unwrap();
    assert!(matches!(
        Database::open(&path),
        Err(DbError::Corrupt { .. })
    ));
    std::fs::write(&path, b"PK\x03\x04 this is a zip, not a db").unwrap();
    assert!(matches!(
        Database::open(&path),
        Err(DbError::NotADatabase { .. })
    ));
    let mut v3 = good.clone();
    v3[8] = 3;
    std::fs::write(&path, &v3).unwrap();
    assert!(matches!(
        Database::open(&path),
        Err(DbError::UnsupportedFormat { version: 3, .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Policy gate: VEX, allow entries, database age.

#[test]
fn real_openvex_document_parses() {
    let doc = vex::load(&data("vex/openvex-v0.2.0-alpine-openssl.json")).expect("parse");
    assert_eq!(doc.statements.len(), 5);
    let statuses: Vec<(&str, VexStatus)> = doc
        .statements
        .iter()
        .map(|s| (s.vulnerability.as_str(), s.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("CVE-2023-1255", VexStatus::Fixed),
            ("CVE-2023-2650", VexStatus::Fixed),
            ("CVE-2023-2975", VexStatus::Fixed),
            ("CVE-2023-3446", VexStatus::NotAffected),
            ("CVE-2023-3817", VexStatus::NotAffected),
        ]
    );
    assert!(doc
        .statements
        .iter()
        .all(|s| s.products[0].subcomponents.len() == 2));
    let e = vex::parse(
        br#"{"@context": "https://example.com", "statements": []}"#,
        "x.vex.json",
    )
    .expect_err("not openvex");
    assert!(e.to_string().contains("x.vex.json"), "{e}");
}

#[test]
fn vex_suppresses_and_the_report_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(&build_db(dir.path(), SystemTime::now())).expect("open");
    let (inv, m) = alpine_matches(&db);
    let image_digest = Digest::of(b"the alpine manifest");
    // Statement for the image, subcomponent musl only, by the CVE alias.
    let doc = format!(
        r#"{{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex-1",
            "author": "airlock tests", "timestamp": "2026-01-01T00:00:00Z", "version": 1,
            "statements": [{{"vulnerability": {{"name": "CVE-2025-26519"}},
              "products": [{{"@id": "pkg:oci/alpine@{}", "subcomponents": [{{"@id": "pkg:apk/alpine/musl@1.2.4-r0"}}]}}],
              "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}}]}}"#,
        image_digest.as_str().replace(':', "%3A")
    );
    let vex_path = dir.path().join("musl.openvex.json");
    std::fs::write(&vex_path, doc).unwrap();
    let pol: ScanPolicy =
        serde_yaml::from_str("fail_on: high\nvex: [musl.openvex.json]\n").expect("policy");
    let docs = pol.load_vex(dir.path()).expect("vex");
    let image = ImageContext {
        digests: vec![image_digest],
        name: Some("alpine".into()),
    };
    let v =
        policy::evaluate(&m, &pol, &docs, &image, Some(&db), SystemTime::now()).expect("evaluate");
    assert_eq!(v.decisions.len(), 2);
    let musl = v
        .decisions
        .iter()
        .find(|d| d.finding.package.name == "musl")
        .unwrap();
    assert!(
        matches!(&musl.suppressed, Some(Suppression::Vex(m)) if m.status == VexStatus::NotAffected)
    );
    let utils = v
        .decisions
        .iter()
        .find(|d| d.finding.package.name == "musl-utils")
        .unwrap();
    assert!(utils.suppressed.is_none() && utils.fails_gate);
    assert!(!v.passed, "musl-utils is still HIGH");
    let r = serde_json::to_value(airlock::scan::report::build(
        "alpine",
        &inv,
        &m,
        &v,
        Some(&db),
    ))
    .unwrap();
    assert_eq!(
        r["Results"][0]["Vulnerabilities"].as_array().unwrap().len(),
        1
    );
    let modified = &r["Results"][0]["ExperimentalModifiedFindings"][0];
    assert_eq!(modified["Status"], "not_affected");
    assert_eq!(modified["Finding"]["PkgName"], "musl");
    assert!(modified["Source"]
        .as_str()
        .unwrap()
        .ends_with("musl.openvex.json"));
    assert_eq!(r["Airlock"]["Passed"], false);

    // For another image digest the statement does not apply.
    let other = ImageContext {
        digests: vec![Digest::of(b"other")],
        name: None,
    };
    let v = policy::evaluate(&m, &pol, &docs, &other, Some(&db), SystemTime::now()).unwrap();
    assert!(v.decisions.iter().all(|d| d.suppressed.is_none()));
}

#[test]
fn allow_entries_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(&build_db(dir.path(), SystemTime::now())).expect("open");
    let (_, m) = alpine_matches(&db);
    let now = humantime::parse_rfc3339("2026-06-15T12:00:00Z").unwrap();
    let entry = |expires: &str, package: Option<&str>| AllowEntry {
        id: "CVE-2025-26519".into(),
        package: package.map(str::to_string),
        expires: expires.into(),
        reason: "iconv EUC-KR not used".into(),
    };
    let mut pol = ScanPolicy {
        fail_on: Some(Severity::High),
        ..Default::default()
    };
    pol.allow = vec![entry("2026-06-15", None)];
    let v = policy::evaluate(&m, &pol, &[], &ImageContext::default(), None, now).unwrap();
    assert!(v.passed, "valid through its expiry day: {:?}", v.reasons);
    assert!(v
        .decisions
        .iter()
        .all(|d| matches!(d.suppressed, Some(Suppression::Allow(_)))));

    pol.allow = vec![entry("2026-06-14", None)];
    let v = policy::evaluate(&m, &pol, &[], &ImageContext::default(), None, now).unwrap();
    assert!(!v.passed);
    assert_eq!(v.reasons.len(), 2);
    assert!(v
        .decisions
        .iter()
        .all(|d| d.suppressed.is_none()
            && d.notes.iter().any(|n| n.contains("expired on 2026-06-14"))));

    // `package` names a binary package or a source package (musl covers musl-utils).
    pol.allow = vec![entry("2027-01-01T00:00:00Z", Some("musl-utils"))];
    let v = policy::evaluate(&m, &pol, &[], &ImageContext::default(), None, now).unwrap();
    assert!(!v.passed, "musl is not covered by a musl-utils entry");
    assert_eq!(v.reasons.len(), 1);
    assert!(v.reasons[0].contains("in musl 1.2.4-r0"), "{:?}", v.reasons);
    pol.allow = vec![entry("2027-01-01T00:00:00Z", Some("musl"))];
    assert!(
        policy::evaluate(&m, &pol, &[], &ImageContext::default(), None, now)
            .unwrap()
            .passed
    );

    pol.allow = vec![entry("next tuesday", None)];
    assert!(policy::evaluate(&m, &pol, &[], &ImageContext::default(), None, now).is_err());
    assert!(serde_yaml::from_str::<ScanPolicy>("fail_on: severe\n").is_err());
    assert!(serde_yaml::from_str::<ScanPolicy>("fail_on: high\nfail_onn: low\n").is_err());
}

#[test]
fn unfixed_and_thresholds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(&build_db(dir.path(), SystemTime::now())).expect("open");
    let (_, mut m) = alpine_matches(&db);
    let now = SystemTime::now();
    let ctx = ImageContext::default();
    let pol = |y: &str| serde_yaml::from_str::<ScanPolicy>(y).expect("policy");
    assert!(
        !policy::evaluate(&m, &pol("fail_on: high"), &[], &ctx, None, now)
            .unwrap()
            .passed
    );
    assert!(
        policy::evaluate(&m, &pol("fail_on: critical"), &[], &ctx, None, now)
            .unwrap()
            .passed
    );
    // Unfixed: reported as `affected`, and ignore_unfixed keeps it from failing the gate.
    for f in &mut m.findings {
        f.fixed_version = None;
    }
    let v = policy::evaluate(
        &m,
        &pol("fail_on: low\nignore_unfixed: true"),
        &[],
        &ctx,
        None,
        now,
    )
    .unwrap();
    assert!(v.passed);
    assert_eq!(v.decisions.len(), 2, "still reported");
    assert!(
        !policy::evaluate(&m, &pol("fail_on: low"), &[], &ctx, None, now)
            .unwrap()
            .passed
    );
}

#[test]
fn database_older_than_max_db_age_fails_the_gate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let built = SystemTime::now() - Duration::from_secs(100 * 3600);
    let db = Database::open(&build_db(dir.path(), built)).expect("open");
    let (_, m) = alpine_matches(&db);
    let pol: ScanPolicy = serde_yaml::from_str("max_db_age: 72h").expect("policy");
    let v = policy::evaluate(
        &m,
        &pol,
        &[],
        &ImageContext::default(),
        Some(&db),
        SystemTime::now(),
    )
    .unwrap();
    assert!(!v.passed);
    assert!(v.reasons[0].contains("max_db_age"), "{:?}", v.reasons);
    let pol: ScanPolicy = serde_yaml::from_str("max_db_age: 5days").expect("policy");
    let v = policy::evaluate(
        &m,
        &pol,
        &[],
        &ImageContext::default(),
        Some(&db),
        SystemTime::now(),
    )
    .unwrap();
    assert!(v.passed, "{:?}", v.reasons);
    let pol: ScanPolicy = serde_yaml::from_str("max_db_age: soon").expect("policy");
    assert!(pol.validate().is_err());
}

#[test]
fn ubuntu_is_inventoried_but_not_covered() {
    let fs = RootFs::from_files([
        (
            "etc/os-release",
            b"NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"18.04\"\nVERSION_CODENAME=bionic\n".to_vec(),
        ),
        (
            "var/lib/dpkg/status",
            read("packages/debian/trivy-ubuntu-bionic/var/lib/dpkg/status"),
        ),
    ]);
    let inv = scan::inventory(&fs).expect("inventory");
    assert_eq!(inv.packages.len(), 90);
    assert!(
        inv.packages[0].purl.starts_with("pkg:deb/ubuntu/"),
        "{}",
        inv.packages[0].purl
    );
    assert!(inv.packages[0].purl.contains("distro=ubuntu-18.04"));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(&build_db(dir.path(), SystemTime::now())).expect("open");
    let m = matcher::match_inventory(&inv, &db).expect("match");
    assert_eq!(m.ecosystem.as_deref(), Some("Ubuntu:18.04"));
    assert!(!m.covered && m.findings.is_empty());
    // Fail closed by default: packages that were not checked do not cross silently.
    let pol: ScanPolicy = serde_yaml::from_str("fail_on: low").expect("policy");
    let v = policy::evaluate(
        &m,
        &pol,
        &[],
        &ImageContext::default(),
        Some(&db),
        SystemTime::now(),
    )
    .expect("evaluate");
    assert!(!v.passed);
    assert!(
        v.reasons[0].contains("no advisories for Ubuntu:18.04")
            && v.reasons[0].contains("unknown_os: fail"),
        "{:?}",
        v.reasons
    );
    // `unknown_os: warn` lets it pass, saying so.
    let pol: ScanPolicy = serde_yaml::from_str("fail_on: low\nunknown_os: warn").expect("policy");
    let v = policy::evaluate(
        &m,
        &pol,
        &[],
        &ImageContext::default(),
        Some(&db),
        SystemTime::now(),
    )
    .expect("evaluate");
    assert!(v.passed);
    assert!(v.warnings[0].contains("not checked"), "{:?}", v.warnings);
}

#[test]
fn advisory_folded_into_per_cve_finding() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A per-CVE record (synthetic, in osv.dev's DEBIAN-CVE shape) next to the real DLA-3008-1.
    let rec = br#"{"id": "DEBIAN-CVE-2022-1292", "upstream": ["CVE-2022-1292"],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{"package": {"ecosystem": "Debian:9", "name": "openssl"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.0l-1~deb9u6"}]}]}]}"#;
    let extra = dir.path().join("DEBIAN-CVE-2022-1292.json");
    std::fs::write(&extra, rec).unwrap();
    let out = dir.path().join("v.db");
    db::build(&[data("osv/debian"), extra], &out, SystemTime::now()).expect("build");
    let db = Database::open(&out).expect("open");
    let status =
        "Package: libssl1.1\nArchitecture: amd64\nSource: openssl\nVersion: 1.1.0l-1~deb9u1\n";
    let fs = RootFs::from_files([
        ("etc/debian_version", b"9.13\n".to_vec()),
        ("var/lib/dpkg/status", status.as_bytes().to_vec()),
    ]);
    let inv = scan::inventory(&fs).expect("inventory");
    let m = matcher::match_inventory(&inv, &db).expect("match");
    assert_eq!(m.findings.len(), 1, "{:?}", m.findings);
    let f = &m.findings[0];
    assert_eq!(f.id, "DEBIAN-CVE-2022-1292");
    assert_eq!(f.severity, Severity::Critical);
    assert!(
        f.is_named("DLA-3008-1") && f.is_named("CVE-2022-1292"),
        "{:?}",
        f.aliases
    );
    let pol: ScanPolicy = serde_yaml::from_str(
        "fail_on: high\nallow: [{id: DLA-3008-1, expires: 2999-01-01, reason: accepted}]",
    )
    .expect("policy");
    let v = policy::evaluate(
        &m,
        &pol,
        &[],
        &ImageContext::default(),
        None,
        SystemTime::now(),
    )
    .expect("evaluate");
    assert!(
        v.passed,
        "the allow entry names the folded advisory: {:?}",
        v.reasons
    );
}

#[test]
fn db_build_cli_compiles_osv_and_names_a_malformed_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["db", "build", "--format", "json", "-o"])
        .arg(dir.path().join("vuln.db"))
        .arg("--osv")
        .arg(data.join("alpine"))
        .arg("--osv")
        .arg(data.join("debian"))
        .output()
        .expect("run airlock");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ecosystems = header["ecosystems"].as_object().expect("ecosystems");
    assert!(
        ecosystems.keys().any(|k| k.starts_with("Alpine:")),
        "{header}"
    );
    assert!(
        ecosystems.keys().any(|k| k.starts_with("Debian:")),
        "{header}"
    );
    airlock::scan::db::Database::open(&dir.path().join("vuln.db")).expect("the file opens");

    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).expect("dir");
    std::fs::write(bad.join("BROKEN-1.json"), b"{\"id\": 42,").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["db", "build", "-o"])
        .arg(dir.path().join("bad.db"))
        .arg("--osv")
        .arg(&bad)
        .output()
        .expect("run airlock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("BROKEN-1.json"), "{stderr}");
    assert!(
        !dir.path().join("bad.db").exists(),
        "no database from bad input"
    );
}
