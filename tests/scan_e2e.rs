//! `airlock scan` end to end against a real registry and real bundles: fixture images built
//! from the real package databases in `tests/data/packages`, matched against a database compiled
//! from the real OSV records in `tests/data/osv`.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use airlock::oci::Digest;
use airlock::registry::Repo;
use common::fixtures::{self, Image};
use common::proxy::{Fault, Proxy};
use common::{airlock, fails_as, fails_with, ferro, ok, TestRegistry};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt")
}

fn args<'a>(base: &[&'a str], extra: &'a [String]) -> Vec<&'a str> {
    let mut v: Vec<&str> = base.to_vec();
    v.extend(extra.iter().map(String::as_str));
    v
}

/// Compiles the real OSV records with the CLI into `dir/vuln.db`.
fn build_db(dir: &Path) {
    common::build_vuln_db(dir);
}

/// `multi:1`: an index of Alpine 3.18 (linux/amd64) and Debian 9 (linux/arm64); returns them.
fn push_two_platforms(reg: &TestRegistry) -> (Image, Image) {
    let alpine = fixtures::files_image(&[fixtures::alpine_318_files()], "linux/amd64");
    let debian = fixtures::files_image(&[fixtures::debian9_files()], "linux/arm64");
    let idx = fixtures::index(&[alpine.clone(), debian.clone()], false);
    let client = reg.client();
    rt().block_on(fixtures::push_index(
        &client,
        &Repo::parse(reg.host.clone(), "scan/multi").expect("repository"),
        &[alpine.clone(), debian.clone()],
        &idx,
        "1",
    ));
    (alpine, debian)
}

/// `dir/ledger`, its key protected by the password in `dir/pw`.
fn init_ledger(dir: &Path) {
    std::fs::write(dir.join("pw"), "correct horse\n").expect("pw");
    common::init_ledger(dir, "test.invalid/airlock");
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// (platform, ID, package, installed, fixed, severity) of every active finding.
fn findings(v: &serde_json::Value) -> Vec<(String, String, String, String, String, String)> {
    let mut out = Vec::new();
    for img in v["images"].as_array().expect("images") {
        let platform = img["platform"].as_str().unwrap_or("-").to_string();
        for r in img["report"]["Results"].as_array().into_iter().flatten() {
            for f in r["Vulnerabilities"].as_array().into_iter().flatten() {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                out.push((
                    platform.clone(),
                    s("VulnerabilityID"),
                    s("PkgName"),
                    s("InstalledVersion"),
                    s("FixedVersion"),
                    s("Severity"),
                ));
            }
        }
    }
    out.sort();
    out
}

fn expected_two_platforms() -> Vec<(String, String, String, String, String, String)> {
    let t = |p: &str, id: &str, pkg: &str, v: &str, f: &str, s: &str| {
        (
            p.to_string(),
            id.to_string(),
            pkg.to_string(),
            v.to_string(),
            f.to_string(),
            s.to_string(),
        )
    };
    vec![
        t(
            "linux/amd64",
            "ALPINE-CVE-2025-26519",
            "musl",
            "1.2.4-r0",
            "1.2.4-r3",
            "HIGH",
        ),
        t(
            "linux/amd64",
            "ALPINE-CVE-2025-26519",
            "musl-utils",
            "1.2.4-r0",
            "1.2.4-r3",
            "HIGH",
        ),
        t(
            "linux/arm64",
            "DLA-3008-1",
            "libssl1.1",
            "1.1.0l-1~deb9u5",
            "1.1.0l-1~deb9u6",
            "UNKNOWN",
        ),
    ]
}

#[test]
fn scan_registry_index_both_platforms_known_findings() {
    let reg = TestRegistry::start();
    let (alpine, debian) = push_two_platforms(&reg);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    let flags = reg.cli_flags();
    let image = format!("{}/scan/multi:1", reg.host);

    // No policy: findings listed, nothing fails (both OSes are covered).
    let out = airlock(
        dir,
        &args(
            &["scan", &image, "--db", "vuln.db", "--format", "json"],
            &flags,
        ),
    );
    let v = json(&out);
    ok(&out);
    assert_eq!(v["passed"], true);
    assert_eq!(findings(&v), expected_two_platforms());
    let imgs = v["images"].as_array().expect("images");
    assert_eq!(imgs.len(), 2);
    assert_eq!(imgs[0]["digest"], alpine.manifest.digest().to_string());
    assert_eq!(imgs[0]["summary"]["packages"], 15);
    assert_eq!(imgs[0]["summary"]["os"], "alpine 3.18.0");
    assert_eq!(imgs[0]["summary"]["findings"]["high"], 2);
    assert_eq!(imgs[1]["digest"], debian.manifest.digest().to_string());
    assert_eq!(imgs[1]["summary"]["packages"], 2);
    assert_eq!(imgs[1]["summary"]["findings"]["unknown"], 1);
    assert_eq!(imgs[0]["report"]["SchemaVersion"], 2);
    assert_eq!(
        v["database"]["digest"],
        airlock::oci::Digest::of(&std::fs::read(dir.join("vuln.db")).expect("db")).to_string()
    );

    // fail_on: high → the Alpine platform fails, exit 1, the error names image, CVE, package.
    std::fs::write(dir.join("policy.yaml"), "fail_on: high\n").expect("policy");
    let out = airlock(
        dir,
        &args(
            &["scan", &image, "--db", "vuln.db", "--policy", "policy.yaml"],
            &flags,
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("IMAGE") && stdout.contains("SUPPRESSED-BY"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("linux/amd64")
            && l.contains("alpine 3.18.0")
            && l.contains("FAIL")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("linux/arm64") && l.contains("pass")),
        "{stdout}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 2, "one line per failing finding: {stderr}");
    assert!(
        errors.iter().any(|e| e.contains(&image)
            && e.contains("linux/amd64")
            && e.contains("ALPINE-CVE-2025-26519 in musl 1.2.4-r0")),
        "{stderr}"
    );

    // --platform picks one child: the Debian one passes alone.
    let out = airlock(
        dir,
        &args(
            &[
                "scan",
                &image,
                "--db",
                "vuln.db",
                "--policy",
                "policy.yaml",
                "--platform",
                "linux/arm64",
                "--format",
                "json",
            ],
            &flags,
        ),
    );
    let v = json(&out);
    ok(&out);
    assert_eq!(findings(&v), expected_two_platforms()[2..].to_vec());

    // A platform the index does not have: a clear error naming what it has.
    let out = airlock(
        dir,
        &args(
            &[
                "scan",
                &image,
                "--db",
                "vuln.db",
                "--platform",
                "linux/s390x",
            ],
            &flags,
        ),
    );
    fails_with(
        &out,
        "no image for platform linux/s390x (it has: linux/amd64, linux/arm64)",
    );
}

#[test]
fn scan_bundle_gives_the_same_findings_and_whiteouts_remove_packages() {
    let reg = TestRegistry::start();
    push_two_platforms(&reg);
    // An image whose top layer whites out libssl1.1's status.d entry.
    let wh = fixtures::files_image(
        &[
            fixtures::debian9_files(),
            vec![("var/lib/dpkg/status.d/.wh.libssl1.1", Vec::new())],
        ],
        "linux/amd64",
    );
    rt().block_on(fixtures::push_image(
        &reg.client(),
        &Repo::parse(reg.host.clone(), "scan/whiteout").expect("repository"),
        &wh,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    let flags = reg.cli_flags();
    std::fs::write(
        dir.join("scan.yaml"),
        format!(
            "name: scan\nimages:\n  - ref: {h}/scan/multi:1\n  - ref: {h}/scan/whiteout:1\n",
            h = reg.host
        ),
    )
    .expect("spec");
    ok(&airlock(dir, &args(&["lock", "scan.yaml"], &flags)));
    ok(&airlock(
        dir,
        &args(&["collect", "scan.lock", "-o", "scan.tar.zst"], &flags),
    ));

    let out = airlock(
        dir,
        &[
            "scan",
            "scan.tar.zst",
            "--db",
            "vuln.db",
            "--format",
            "json",
        ],
    );
    let v = json(&out);
    ok(&out);
    assert_eq!(findings(&v), expected_two_platforms());
    let imgs = v["images"].as_array().expect("images");
    assert_eq!(imgs.len(), 3);
    let whiteout = imgs
        .iter()
        .find(|i| i["image"].as_str().is_some_and(|s| s.contains("whiteout")))
        .expect("whiteout image");
    assert_eq!(whiteout["summary"]["packages"], 1, "only tzdata is left");
    assert_eq!(whiteout["platform"], "linux/amd64", "from its config");
    // The spool directory is gone; the bundle is untouched.
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".airlock-scan"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Split into parts: scanned as one stream, the same findings.
    ok(&airlock(
        dir,
        &[
            "split",
            "scan.tar.zst",
            "--size",
            "4096",
            "--out-dir",
            "parts",
        ],
    ));
    let out = airlock(
        dir,
        &[
            "scan",
            "parts/scan.parts.json",
            "--db",
            "vuln.db",
            "--format",
            "json",
        ],
    );
    let v = json(&out);
    ok(&out);
    assert_eq!(findings(&v), expected_two_platforms());
    let out = airlock(
        dir,
        &["scan", "parts", "--db", "vuln.db", "--format", "json"],
    );
    ok(&out);
    assert_eq!(findings(&json(&out)), expected_two_platforms());

    // The same image straight from the registry: same packages.
    let out = airlock(
        dir,
        &args(
            &[
                "scan",
                &format!("{}/scan/whiteout:1", reg.host),
                "--db",
                "vuln.db",
                "--format",
                "json",
            ],
            &flags,
        ),
    );
    let v = json(&out);
    ok(&out);
    assert_eq!(v["images"][0]["summary"]["packages"], 1);
    assert!(findings(&v).is_empty());

    // A bundle with a corrupted byte: the scan refuses it, naming the bundle.
    let mut bytes = std::fs::read(dir.join("scan.tar.zst")).expect("bundle");
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    std::fs::write(dir.join("bad.tar.zst"), bytes).expect("write");
    let out = airlock(dir, &["scan", "bad.tar.zst", "--db", "vuln.db"]);
    fails_with(&out, "bad.tar.zst");
}

#[test]
fn vex_allow_and_database_age_decide_the_gate() {
    let reg = TestRegistry::start();
    let (alpine, _) = push_two_platforms(&reg);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    let flags = reg.cli_flags();
    let image = format!("{}/scan/multi:1", reg.host);
    let scan = |policy: &str, extra: &[&str]| {
        std::fs::write(dir.join("policy.yaml"), policy).expect("policy");
        let mut a = vec![
            "scan",
            image.as_str(),
            "--db",
            "vuln.db",
            "--policy",
            "policy.yaml",
            "--platform",
            "linux/amd64",
        ];
        a.extend_from_slice(extra);
        airlock(dir, &args(&a, &flags))
    };

    // VEX for this image's musl: suppressed, and the table says by what.
    let vex = format!(
        r#"{{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex-1",
            "author": "airlock tests", "timestamp": "2026-01-01T00:00:00Z", "version": 1,
            "statements": [{{"vulnerability": {{"name": "CVE-2025-26519"}},
              "products": [{{"@id": "pkg:oci/multi@{}", "subcomponents": [{{"@id": "pkg:apk/alpine/musl@1.2.4-r0"}}]}}],
              "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}}]}}"#,
        alpine.manifest.digest().as_str().replace(':', "%3A")
    );
    std::fs::create_dir_all(dir.join("vex")).expect("vex dir");
    std::fs::write(dir.join("vex/musl.openvex.json"), vex).expect("vex");
    let out = scan("fail_on: high\nvex: [vex/musl.openvex.json]\n", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(5), "musl-utils still fails");
    let musl = stdout
        .lines()
        .find(|l| l.contains(" musl ") && l.contains("ALPINE-CVE-2025-26519"))
        .expect("musl row");
    assert!(
        musl.contains("VEX not_affected") && musl.contains("musl.openvex.json"),
        "{musl}"
    );
    let utils = stdout
        .lines()
        .find(|l| l.contains("musl-utils"))
        .expect("utils row");
    assert!(utils.contains("fails gate"), "{utils}");

    // An allow entry valid today suppresses both and the gate passes; the JSON says by what.
    let out = scan(
        "fail_on: high\nallow:\n  - {id: CVE-2025-26519, expires: 2999-12-31, reason: iconv unused}\n",
        &["--format", "json"],
    );
    let v = json(&out);
    ok(&out);
    let modified = &v["images"][0]["report"]["Results"][0]["ExperimentalModifiedFindings"];
    assert_eq!(modified.as_array().map(Vec::len), Some(2));
    assert_eq!(modified[0]["Status"], "ignored");
    assert_eq!(modified[0]["Statement"], "iconv unused");
    assert_eq!(v["images"][0]["summary"]["suppressed"], 2);

    // The same entry expired: it suppresses nothing, and says so.
    let out = scan(
        "fail_on: high\nallow:\n  - {id: CVE-2025-26519, expires: 2020-01-31, reason: iconv unused}\n",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("allow entry for CVE-2025-26519 expired on 2020-01-31"),
        "{stderr}"
    );

    // A database older than max_db_age fails the gate, naming the age.
    let mut b = airlock::scan::db::Builder::new();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    b.add_source(&data.join("alpine")).expect("alpine");
    b.write(
        &dir.join("old.db"),
        SystemTime::now() - Duration::from_secs(10 * 86_400),
    )
    .expect("write");
    std::fs::write(dir.join("policy.yaml"), "max_db_age: 72h\n").expect("policy");
    let out = airlock(
        dir,
        &args(
            &[
                "scan",
                &image,
                "--db",
                "old.db",
                "--policy",
                "policy.yaml",
                "--platform",
                "linux/amd64",
            ],
            &flags,
        ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("old.db was built 10days")
            && stderr.contains("older than max_db_age 3days"),
        "{stderr}"
    );
}

#[test]
fn unknown_os_fails_closed_unless_the_policy_warns() {
    let reg = TestRegistry::start();
    let img = fixtures::small_image(7, 4000);
    rt().block_on(fixtures::push_image(
        &reg.client(),
        &Repo::parse(reg.host.clone(), "scan/noos").expect("repository"),
        &img,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    let flags = reg.cli_flags();
    let image = format!("{}/scan/noos:1", reg.host);
    let out = airlock(dir, &args(&["scan", &image, "--db", "vuln.db"], &flags));
    fails_with(
        &out,
        "no supported OS detected: packages were not checked (policy unknown_os: fail)",
    );
    std::fs::write(dir.join("policy.yaml"), "unknown_os: warn\n").expect("policy");
    let out = airlock(
        dir,
        &args(
            &["scan", &image, "--db", "vuln.db", "--policy", "policy.yaml"],
            &flags,
        ),
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning:"));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    let mut db = std::fs::read(dir.join("vuln.db")).expect("db");
    let n = db.len() / 2;
    db[n] ^= 0x01;
    std::fs::write(dir.join("corrupt.db"), &db).expect("write");
    // Checked before any registry is contacted.
    let out = airlock(dir, &["scan", "127.0.0.1:9/none:1", "--db", "corrupt.db"]);
    fails_with(&out, "corrupt.db");
    // A bundle that is not there is never looked up in a registry.
    let out = airlock(dir, &["scan", "missing.tar.zst", "--db", "vuln.db"]);
    fails_with(&out, "bundle `missing.tar.zst` does not exist");
    // No database at all.
    let out = airlock(dir, &["scan", "127.0.0.1:9/none:1"]);
    fails_with(&out, "no vulnerability database");
    // A policy with an unknown key.
    std::fs::write(dir.join("policy.yaml"), "fail_on: high\nfail_onn: low\n").expect("w");
    let out = airlock(
        dir,
        &[
            "scan",
            "127.0.0.1:9/none:1",
            "--db",
            "vuln.db",
            "--policy",
            "policy.yaml",
        ],
    );
    fails_with(&out, "scan policy `policy.yaml`: unknown field `fail_onn`");
    // trivy is not installed here: a clear error, never a silent pass.
    let out = common::airlock_env(
        dir,
        &["scan", "127.0.0.1:9/none:1", "--scanner", "trivy"],
        &[("PATH", "/usr/bin:/bin")],
    );
    fails_with(&out, "--scanner trivy: no `trivy` executable on PATH");
}

/// Lists a bundle's entries (`zstd -d | tar t`, i.e. what any OCI tool sees).
fn bundle_entries(path: &Path) -> Vec<String> {
    let f = std::fs::File::open(path).expect("bundle");
    let dec = zstd::stream::read::Decoder::new(f).expect("zstd");
    let mut a = tar::Archive::new(dec);
    a.entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

/// Reads one blob of a bundle.
fn bundle_blob(path: &Path, digest: &str) -> Vec<u8> {
    use std::io::Read as _;
    let want = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let f = std::fs::File::open(path).expect("bundle");
    let dec = zstd::stream::read::Decoder::new(f).expect("zstd");
    let mut a = tar::Archive::new(dec);
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path().expect("path").display().to_string() == want {
            let mut v = Vec::new();
            e.read_to_end(&mut v).expect("read");
            return v;
        }
    }
    panic!("{want} not in bundle");
}

#[test]
fn collect_gate_fails_without_a_bundle_or_carries_sbom_and_report() {
    let reg = TestRegistry::start();
    let (alpine, debian) = push_two_platforms(&reg);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    let flags = reg.cli_flags();
    let spec = |scan: &str| {
        std::fs::write(
            dir.join("s.yaml"),
            format!(
                "name: s\nimages:\n  - ref: {}/scan/multi:1\nscan:\n{scan}",
                reg.host
            ),
        )
        .expect("spec");
        ok(&airlock(dir, &args(&["lock", "s.yaml"], &flags)));
    };

    // fail_on: high → no bundle, the error names image, platform, ID, package and version.
    spec("  fail_on: high\n  db: vuln.db\n");
    let lock = std::fs::read_to_string(dir.join("s.lock")).expect("lock");
    assert!(lock.contains("\"fail_on\": \"HIGH\""), "{lock}");
    let out = airlock(
        dir,
        &args(&["collect", "s.lock", "-o", "s.tar.zst"], &flags),
    );
    let stderr = fails_with(&out, "scan gate failed, no bundle written");
    assert!(
        stderr.contains(&format!(
            "{}/scan/multi:1 (linux/amd64): ALPINE-CVE-2025-26519 in musl 1.2.4-r0 (HIGH, fixed in 1.2.4-r3)",
            reg.host
        )),
        "{stderr}"
    );
    assert!(stderr.contains("musl-utils 1.2.4-r0"), "{stderr}");
    assert!(!dir.join("s.tar.zst").exists());
    assert!(
        std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .all(|e| !e.file_name().to_string_lossy().contains("s.tar.zst")),
        "no partial bundle left"
    );

    // `--scanner trivy` without Trivy: a clear error before anything is pulled, no bundle.
    let out = common::airlock_env(
        dir,
        &args(
            &["collect", "s.lock", "-o", "t.tar.zst", "--scanner", "trivy"],
            &flags,
        ),
        &[("PATH", "/usr/bin:/bin")],
    );
    fails_with(&out, "--scanner trivy: no `trivy` executable on PATH");
    assert!(!dir.join("t.tar.zst").exists());

    // A passing gate (allow entry): SBOM and report per platform as referrers.
    spec("  fail_on: high\n  allow:\n    - {id: CVE-2025-26519, expires: 2999-01-01, reason: iconv unused}\n");
    let out = airlock(
        dir,
        &args(
            &[
                "collect",
                "s.lock",
                "-o",
                "s.tar.zst",
                "--db",
                "vuln.db",
                "--carry-db",
                "--format",
                "json",
            ],
            &flags,
        ),
    );
    let report = json(&out);
    ok(&out);
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("s.lock")).expect("lock")).expect("json");
    let lock_created = lock["created"].as_str().expect("created").to_string();
    let scans = report["scans"].as_array().expect("scans");
    assert_eq!(scans.len(), 2);
    assert_eq!(scans[0]["summary"]["suppressed"], 2);
    assert_eq!(scans[1]["summary"]["findings"]["unknown"], 1);

    let out = airlock(dir, &["inspect", "s.tar.zst", "--format", "json"]);
    let inspect = json(&out);
    let arts = inspect["manifest"]["artifacts"]
        .as_array()
        .expect("artifacts");
    let referrers: Vec<&serde_json::Value> =
        arts.iter().filter(|a| a["kind"] == "referrer").collect();
    assert_eq!(referrers.len(), 4, "SBOM + report for each of 2 platforms");
    let db_digest =
        airlock::oci::Digest::of(&std::fs::read(dir.join("vuln.db")).expect("db")).to_string();
    for (img, platform) in [(&alpine, "linux/amd64"), (&debian, "linux/arm64")] {
        let subject = img.manifest.digest().to_string();
        let mine: Vec<_> = referrers
            .iter()
            .filter(|a| a["subject"] == subject.as_str())
            .collect();
        assert_eq!(mine.len(), 2, "{platform}");
        let sbom = mine
            .iter()
            .find(|a| a["artifact_type"] == "application/vnd.cyclonedx+json")
            .expect("sbom");
        let rep = mine
            .iter()
            .find(|a| a["artifact_type"] == "application/vnd.airlock.scan-report.v1+json")
            .expect("report");
        assert_eq!(rep["scan"]["database"]["digest"], db_digest.as_str());
        assert_eq!(rep["scan"]["passed"], true);
        // The referrer manifests, SBOM and report are in the bundle's blobs.
        let bundle = dir.join("s.tar.zst");
        let m: serde_json::Value = serde_json::from_slice(&bundle_blob(
            &bundle,
            sbom["digest"].as_str().expect("digest"),
        ))
        .expect("manifest");
        assert_eq!(m["subject"]["digest"], subject.as_str());
        assert_eq!(m["artifactType"], "application/vnd.cyclonedx+json");
        let doc: serde_json::Value = serde_json::from_slice(&bundle_blob(
            &bundle,
            m["layers"][0]["digest"].as_str().expect("layer"),
        ))
        .expect("sbom json");
        assert_eq!(doc["bomFormat"], "CycloneDX");
        assert_eq!(doc["metadata"]["component"]["version"], subject.as_str());
        assert_eq!(
            doc["metadata"]["timestamp"], lock_created,
            "the lock's time, not the clock"
        );
        let m: serde_json::Value = serde_json::from_slice(&bundle_blob(
            &bundle,
            rep["digest"].as_str().expect("digest"),
        ))
        .expect("manifest");
        let r: serde_json::Value = serde_json::from_slice(&bundle_blob(
            &bundle,
            m["layers"][0]["digest"].as_str().expect("layer"),
        ))
        .expect("report json");
        assert_eq!(r["SchemaVersion"], 2);
        assert_eq!(r["Airlock"]["Database"]["Digest"], db_digest.as_str());
    }
    // The database travels too, byte for byte.
    let db_art = arts
        .iter()
        .find(|a| a["artifact_type"] == "application/vnd.airlock.vulndb.v1")
        .expect("db artifact");
    assert_eq!(db_art["repository"], "airlock/vulndb");
    let m: serde_json::Value = serde_json::from_slice(&bundle_blob(
        &dir.join("s.tar.zst"),
        db_art["digest"].as_str().expect("digest"),
    ))
    .expect("manifest");
    assert_eq!(m["layers"][0]["digest"], db_digest.as_str());
    assert!(bundle_entries(&dir.join("s.tar.zst")).contains(&format!(
        "blobs/sha256/{}",
        db_digest.trim_start_matches("sha256:")
    )));

    // Reproducible: the same lock and database give the same bytes.
    let first = std::fs::read(dir.join("s.tar.zst")).expect("bundle");
    ok(&airlock(
        dir,
        &args(
            &[
                "collect",
                "s.lock",
                "-o",
                "s2.tar.zst",
                "--db",
                "vuln.db",
                "--carry-db",
            ],
            &flags,
        ),
    ));
    assert!(first == std::fs::read(dir.join("s2.tar.zst")).expect("bundle"));

    // Import: the SBOMs and reports become the platform manifests' referrers at the target,
    // the database an artifact of its own.
    let dst = TestRegistry::start();
    let to = format!("{}/m", dst.host);
    ok(&airlock(
        dir,
        &args(
            &["import", "s.tar.zst", "--to", &to, "--allow-unsigned"],
            &dst.cli_flags(),
        ),
    ));
    let tags = dst.tags(&format!("m/{}", "scan/multi"));
    for img in [&alpine, &debian] {
        let t = format!("sha256-{}", img.manifest.digest().hex());
        assert!(tags.contains(&t), "{t} not in {tags:?}");
    }
    assert_eq!(dst.tags("m/airlock/vulndb").len(), 1);

    // A layer altered in the cache is caught while it is scanned (its digest is checked as
    // it streams): no bundle.
    let layer = alpine.layers[0].digest();
    let cached = dir.join("cache/airlock/sha256").join(layer.hex());
    let mut bytes = std::fs::read(&cached).expect("cached layer");
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    std::fs::write(&cached, bytes).expect("write");
    let out = airlock(
        dir,
        &args(
            &["collect", "s.lock", "-o", "s3.tar.zst", "--db", "vuln.db"],
            &flags,
        ),
    );
    let stderr = fails_with(&out, &format!("layer {layer}"));
    assert!(
        stderr.contains("digest mismatch") || stderr.contains("not a readable tar stream"),
        "{stderr}"
    );
    assert!(!dir.join("s3.tar.zst").exists());
    std::fs::remove_file(&cached).expect("remove");

    // `airlock scan` of the bundle skips the carried database and scans both platforms.
    let out = airlock(
        dir,
        &["scan", "s.tar.zst", "--db", "vuln.db", "--format", "json"],
    );
    ok(&out);
    assert_eq!(findings(&json(&out)), expected_two_platforms());
}

/// Hears which tasks start and end, in order, and lets the held download through as soon as
/// a scan starts.
struct ScanWatch<'a> {
    proxy: &'a Proxy,
    events: std::sync::Mutex<Vec<String>>,
}

impl airlock::progress::Reporter for ScanWatch<'_> {
    fn task_start(&self, id: &str, _label: &str, _total: u64) {
        self.events
            .lock()
            .expect("events")
            .push(format!("start {id}"));
        if id.starts_with("scan ") {
            self.proxy.release();
        }
    }
    fn task_done(&self, id: &str) {
        self.events
            .lock()
            .expect("events")
            .push(format!("done {id}"));
    }
}

/// With a scan policy, a platform is scanned while another platform's layer still downloads:
/// the proxy holds the Debian layer's GET until a scan has started. A collect that pulled
/// everything before scanning would start no scan before that GET is answered (it fails, its
/// one attempt timed out), so the order of events, not the clock, shows the overlap. The bundle is the same bytes as one
/// collected with nothing held (scans finishing in another order).
#[test]
fn collect_scans_one_platform_while_another_still_downloads() {
    let reg = TestRegistry::start();
    let (alpine, debian) = push_two_platforms(&reg);
    let held = debian.layers[0].digest();
    let proxy = Proxy::start(
        &reg.host,
        Fault::StallAfter {
            n: 0,
            needle: format!("GET /v2/scan/multi/blobs/{held}"),
        },
    );
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "name: s\nimages:\n  - ref: {}/scan/multi:1\nscan:\n  fail_on: high\n  allow:\n    - {{id: CVE-2025-26519, expires: 2999-01-01, reason: iconv unused}}\n",
            proxy.host
        ),
    )
    .expect("spec");
    ok(&airlock(
        dir,
        &["lock", "s.yaml", "--insecure-registry", &proxy.host],
    ));
    let (lock, lock_digest) = airlock::lock::Lock::load(&dir.join("s.lock")).expect("lock");
    // One short attempt per request: a collect that waits for the held layer before any
    // scan fails in 20 s instead of retrying the two-minute hold.
    let registry = airlock::registry::Registry::new(airlock::registry::RegistryOptions {
        insecure: vec![proxy.host.clone()],
        retry: airlock::registry::RetryPolicy {
            attempts: 1,
            deadline: Duration::from_secs(20),
            ..Default::default()
        },
        ..Default::default()
    })
    .expect("client");
    let collect = |out: &str, cache: &str, reporter: &dyn airlock::progress::Reporter| {
        let opts = airlock::collect::CollectOptions {
            output: dir.join(out),
            cache: dir.join(cache),
            jobs: 4,
            signers: Vec::new(),
            base_dir: dir.to_owned(),
            sequence: None,
            scan_db: Some(dir.join("vuln.db")),
            carry_db: false,
            scanner: Default::default(),
            have: None,
            split: None,
        };
        rt().block_on(airlock::collect::collect(
            &lock,
            &lock_digest,
            &registry,
            &opts,
            reporter,
        ))
        .expect("collect")
    };
    let watch = ScanWatch {
        proxy: &proxy,
        events: Default::default(),
    };
    let report = collect("held.tar.zst", "c1", &watch);
    assert_eq!(report.scans.len(), 2);
    let events = watch.events.into_inner().expect("events");
    let at = |event: &str| {
        events
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("no `{event}` in {events:#?}"))
    };
    let alpine_scan = at(&format!(
        "start scan {}/scan/multi:1 {}",
        proxy.host,
        alpine.manifest.digest()
    ));
    let held_done = at(&format!("done {held}"));
    assert!(
        alpine_scan < held_done,
        "the Alpine scan started only after the held Debian layer was in: {events:#?}"
    );
    assert_eq!(proxy.count(&format!("GET /v2/scan/multi/blobs/{held}")), 1);

    // Nothing held, a cold cache: the same bytes.
    collect("free.tar.zst", "c2", &airlock::progress::NoProgress);
    assert!(
        std::fs::read(dir.join("held.tar.zst")).expect("bundle")
            == std::fs::read(dir.join("free.tar.zst")).expect("bundle"),
        "bundles differ"
    );
}

/// Collects `HOST/REPO:1` into `s.tar.zst` in a new work directory (with `vuln.db`), under a
/// connected-side policy that fails on high findings but accepts musl's CVE-2025-26519.
fn collect_accepting_musl(reg: &TestRegistry, repo: &str) -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    let flags = reg.cli_flags();
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "name: s\nimages:\n  - ref: {}/{repo}:1\nscan:\n  fail_on: high\n  db: vuln.db\n  allow:\n    - {{id: CVE-2025-26519, expires: 2999-01-01, reason: iconv unused}}\n",
            reg.host
        ),
    )
    .expect("spec");
    ok(&airlock(dir, &args(&["lock", "s.yaml"], &flags)));
    ok(&airlock(
        dir,
        &args(&["collect", "s.lock", "-o", "s.tar.zst"], &flags),
    ));
    work
}

/// `airlock rescan --format json` of what the ledger `dir/ledger` admitted under `registry`,
/// against `vuln.db`, caching in `dir/rcache`.
fn rescan_json(dir: &Path, registry: &str, flags: &[String]) -> std::process::Output {
    airlock(
        dir,
        &args(
            &[
                "rescan",
                "--ledger",
                "ledger",
                "--registry",
                registry,
                "--db",
                "vuln.db",
                "--ledger-password-file",
                "pw",
                "--cache",
                "rcache",
                "--format",
                "json",
            ],
            flags,
        ),
    )
}

/// The last entry of the ledger in `dir/ledger`.
fn last_entry(dir: &Path) -> serde_json::Value {
    let entries = std::fs::read_to_string(dir.join("ledger/entries.jsonl")).expect("ledger");
    serde_json::from_str(entries.lines().last().expect("entry")).expect("json")
}

#[test]
fn import_with_a_stricter_isolated_policy_refuses_and_pushes_nothing() {
    let reg = TestRegistry::start();
    push_two_platforms(&reg);
    // The connected side accepts musl's finding; the isolated side does not.
    let work = collect_accepting_musl(&reg, "scan/multi");
    let dir = work.path();
    let flags = reg.cli_flags();
    init_ledger(dir);
    std::fs::create_dir_all(dir.join("site")).expect("site");
    std::fs::write(dir.join("site/strict.yaml"), "fail_on: high\n").expect("policy");
    let dst = TestRegistry::start();
    let to = format!("{}/m", dst.host);
    let import = |extra: &[&str]| {
        let mut a = vec![
            "import",
            "s.tar.zst",
            "--to",
            &to,
            "--allow-unsigned",
            "--ledger",
            "ledger",
            "--ledger-password-file",
            "pw",
            "--operator",
            "tester",
        ];
        a.extend_from_slice(extra);
        let owned: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        let flags = dst.cli_flags();
        let all: Vec<&str> = owned
            .iter()
            .map(String::as_str)
            .chain(flags.iter().map(String::as_str))
            .collect();
        airlock(dir, &all)
    };

    // SBOMs re-matched against the isolated side's database: refused, naming image and CVE.
    let out = import(&["--scan-policy", "site/strict.yaml", "--db", "vuln.db"]);
    let stderr = fails_with(&out, "scan gate failed, nothing pushed");
    assert!(
        stderr.contains("(linux/amd64): ALPINE-CVE-2025-26519 in musl 1.2.4-r0 (HIGH"),
        "{stderr}"
    );
    assert!(dst.tags("m/scan/multi").is_empty(), "nothing pushed");
    let last = last_entry(dir);
    let text = last.to_string();
    assert!(
        text.contains("rejected") && text.contains("ALPINE-CVE-2025-26519"),
        "{text}"
    );
    // The rejection keeps what it judged: each platform's carried SBOM and report, stored in
    // the ledger's evidence and hashed by `ledger verify`.
    let evidence = last["evidence"].as_array().expect("rejection evidence");
    let mut kinds: Vec<&str> = evidence.iter().filter_map(|e| e["kind"].as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["sbom", "sbom", "scan-report", "scan-report"],
        "{last}"
    );
    let subjects: std::collections::BTreeSet<&str> = evidence
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert_eq!(subjects.len(), 2, "one SBOM and report per platform");
    for e in evidence {
        let digest = e["digest"].as_str().expect("digest");
        let bytes = std::fs::read(dir.join("ledger/evidence/sha256").join(&digest[7..]))
            .expect("stored evidence");
        assert_eq!(Digest::of(&bytes).to_string(), digest);
    }
    ok(&airlock(dir, &["ledger", "verify", "ledger"]));

    // No database on this side: the carried reports are judged; the connected side's allow
    // entry does not count here.
    let out = import(&["--scan-policy", "site/strict.yaml"]);
    fails_with(&out, "ALPINE-CVE-2025-26519 in musl 1.2.4-r0");
    assert!(dst.tags("m/scan/multi").is_empty(), "nothing pushed");

    // The isolated side's own allow entry lets it in.
    std::fs::write(
        dir.join("site/ok.yaml"),
        "fail_on: high\nallow:\n  - {id: CVE-2025-26519, package: musl, expires: 2999-01-01, reason: reviewed on site}\n",
    )
    .expect("policy");
    ok(&import(&[
        "--scan-policy",
        "site/ok.yaml",
        "--db",
        "vuln.db",
    ]));
    assert_eq!(
        dst.tags("m/scan/multi").len(),
        3,
        "tag 1 and two referrer indexes"
    );
    // The ledger entry carries what collect's scans found, per platform.
    let last = last_entry(dir);
    let image = last["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == "image")
        .expect("image");
    let scans = image["scan"].as_array().expect("scan summaries");
    assert_eq!(scans.len(), 2, "{image}");
    assert!(scans.iter().all(|s| s["database"]["digest"]
        .as_str()
        .is_some_and(|d| d.starts_with("sha256:"))));

    // A bundle without scan evidence fails a scan gate closed.
    std::fs::write(
        dir.join("bare.yaml"),
        format!("name: bare\nimages:\n  - ref: {}/scan/multi:1\n", reg.host),
    )
    .expect("spec");
    ok(&airlock(dir, &args(&["lock", "bare.yaml"], &flags)));
    ok(&airlock(
        dir,
        &args(&["collect", "bare.lock", "-o", "bare.tar.zst"], &flags),
    ));
    let out = airlock(
        dir,
        &args(
            &[
                "import",
                "bare.tar.zst",
                "--to",
                &format!("{}/bare", dst.host),
                "--allow-unsigned",
                "--scan-policy",
                "site/ok.yaml",
                "--db",
                "vuln.db",
            ],
            &dst.cli_flags(),
        ),
    );
    fails_with(&out, "no SBOM carried for");
    assert!(dst.tags("bare/scan/multi").is_empty());
}

/// What `--scanner trivy` hands Trivy is a valid OCI layout: skopeo (an independent client)
/// copies it, checking every digest. (Trivy itself is not installed here.)
#[test]
fn trivy_layout_is_a_valid_oci_layout() {
    let reg = TestRegistry::start();
    let (alpine, _) = push_two_platforms(&reg);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let client = reg.client();
    let reference: airlock::reference::Reference =
        format!("{}/scan/multi:1", reg.host).parse().expect("ref");
    let amd64: airlock::oci::Platform = "linux/amd64".parse().expect("platform");
    let cache = dir.join("cache");
    let targets = rt()
        .block_on(airlock::scan::source::from_registry(
            &client,
            &reference,
            &[amd64],
            &cache,
            &airlock::progress::NoProgress,
        ))
        .expect("targets")
        .targets;
    assert_eq!(targets.len(), 1);
    let layout = dir.join("layout");
    airlock::scan::trivy::write_layout(&layout, &targets[0], |d| {
        airlock::scan::source::blob_file(&cache, d)
    })
    .expect("layout");
    let out = common::skopeo(&[
        "copy".into(),
        format!("oci:{}", layout.display()),
        format!("dir:{}", dir.join("copy").display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.join("copy/manifest.json")).expect("manifest"),
        alpine.manifest.bytes
    );
}

/// Both gates of the isolated side at once: the image-signature policy covers the signed image
/// (the carried database, which collect made, needs no rule) and the scan policy passes.
#[test]
fn signature_and_scan_gates_together_with_a_carried_database() {
    let reg = TestRegistry::start();
    let key = airlock::trust::keys::SigningKey::generate().expect("key");
    let img = fixtures::files_image(&[fixtures::debian9_files()], "linux/arm64");
    let repo = Repo::parse(reg.host.clone(), "signed/deb").expect("repository");
    rt().block_on(async {
        let client = reg.client();
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        fixtures::push_signed(&client, &repo, &img.manifest.digest(), None, Some(&key)).await;
        // Unsigned, and with a HIGH finding the site's scan policy refuses.
        let alpine = fixtures::files_image(&[fixtures::alpine_318_files()], "linux/amd64");
        let other = Repo::parse(reg.host.clone(), "unsigned/alp").expect("repository");
        fixtures::push_image(&client, &other, &alpine, Some("1")).await;
    });
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    std::fs::create_dir_all(dir.join("keys")).expect("keys");
    std::fs::write(dir.join("keys/release.pub"), key.public_key().to_pem()).expect("pub");
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "name: s\nimages:\n  - ref: {h}/signed/deb:1\n  - ref: {h}/unsigned/alp:1\ntrust:\n  rules:\n    - pattern: {h}/signed/*\n      keys: [keys/release.pub]\nscan:\n  fail_on: critical\n  db: vuln.db\n",
            h = reg.host
        ),
    )
    .expect("spec");
    let flags = reg.cli_flags();
    ok(&airlock(dir, &args(&["lock", "s.yaml"], &flags)));
    ok(&airlock(
        dir,
        &args(
            &["collect", "s.lock", "-o", "s.tar.zst", "--carry-db"],
            &flags,
        ),
    ));
    std::fs::write(
        dir.join("trust.yaml"),
        format!(
            "rules:\n  - pattern: {}/signed/*\n    keys: [keys/release.pub]\n",
            reg.host
        ),
    )
    .expect("policy");
    std::fs::write(dir.join("site.yaml"), "fail_on: high\nmax_db_age: 1h\n").expect("policy");
    let dst = TestRegistry::start();
    let to = format!("{}/m", dst.host);
    let import = |extra: &[&str]| {
        let mut a = vec![
            "import",
            "s.tar.zst",
            "--to",
            &to,
            "--allow-unsigned",
            "--policy",
            "trust.yaml",
            "--scan-policy",
            "site.yaml",
            "--db",
            "vuln.db",
        ];
        a.extend_from_slice(extra);
        airlock(dir, &args(&a, &dst.cli_flags()))
    };
    // The unsigned image fails the signature policy first: the bundle is refused.
    common::fails_with(&import(&[]), "no rule covers");
    assert_eq!(dst.stored_blobs(), 0);
    // Left out, it is not judged by the scan gate either (its HIGH finding would fail it).
    ok(&import(&["--on-untrusted", "skip-artifact"]));
    assert!(dst.tags("m/unsigned/alp").is_empty());
    assert!(dst.tags("m/signed/deb").contains(&"1".to_string()));
    assert_eq!(
        dst.tags("m/airlock/vulndb").len(),
        1,
        "the database crossed too"
    );
}

#[test]
fn lock_pins_the_scan_database_and_vex_files_by_digest() {
    let reg = TestRegistry::start();
    push_two_platforms(&reg);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    let real_vex = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vex/openvex-v0.2.0-alpine-openssl.json");
    std::fs::copy(&real_vex, dir.join("site.openvex.json")).expect("vex");
    let flags = reg.cli_flags();
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "name: s\nimages:\n  - ref: {}/scan/multi:1\nscan:\n  fail_on: critical\n  db: vuln.db\n  vex: [site.openvex.json]\n",
            reg.host
        ),
    )
    .expect("spec");
    ok(&airlock(dir, &args(&["lock", "s.yaml"], &flags)));
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("s.lock")).expect("lock")).expect("json");
    let digest_of = |name: &str| {
        airlock::oci::Digest::of(&std::fs::read(dir.join(name)).expect("file")).to_string()
    };
    assert_eq!(
        lock["scan_files"],
        serde_json::json!([
            {"kind": "database", "path": "vuln.db", "sha256": digest_of("vuln.db")},
            {"kind": "vex", "path": "site.openvex.json", "sha256": digest_of("site.openvex.json")},
        ])
    );
    let collect = |out: &str| airlock(dir, &args(&["collect", "s.lock", "-o", out], &flags));
    ok(&collect("a.tar.zst"));
    ok(&airlock(dir, &args(&["lock", "s.yaml", "--check"], &flags)));

    // An edited VEX file: collect refuses it as drift (exit 3) and writes nothing;
    // `lock --check` names it.
    let mut edited = std::fs::read(&real_vex).expect("vex");
    edited.extend_from_slice(b"\n");
    std::fs::write(dir.join("site.openvex.json"), &edited).expect("vex");
    let out = collect("b.tar.zst");
    let stderr = common::fails_as(&out, 3, "VEX file `");
    assert!(
        stderr.contains(&format!(
            "is {}, the lock pins {}",
            airlock::oci::Digest::of(&edited),
            lock["scan_files"][1]["sha256"].as_str().expect("pin")
        )),
        "{stderr}"
    );
    assert!(!dir.join("b.tar.zst").exists());
    let out = airlock(dir, &args(&["lock", "s.yaml", "--check"], &flags));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("VEX file site.openvex.json"), "{stdout}");
    assert!(
        !stdout.contains("scan database"),
        "only the VEX file drifted: {stdout}"
    );

    // Locked again, then a rebuilt database (other records): drift again, whether it is the
    // policy's file or another one given with `--db`.
    ok(&airlock(dir, &args(&["lock", "s.yaml"], &flags)));
    ok(&collect("c.tar.zst"));
    let old_db = std::fs::read(dir.join("vuln.db")).expect("db");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv/alpine");
    ok(&airlock(
        dir,
        &[
            "db",
            "build",
            "--osv",
            &data.display().to_string(),
            "-o",
            "other.db",
        ],
    ));
    let out = airlock(
        dir,
        &args(
            &["collect", "s.lock", "-o", "d.tar.zst", "--db", "other.db"],
            &flags,
        ),
    );
    common::fails_as(&out, 3, "scan database `other.db` is sha256:");
    assert!(!dir.join("d.tar.zst").exists());
    std::fs::copy(dir.join("other.db"), dir.join("vuln.db")).expect("db");
    assert_ne!(old_db, std::fs::read(dir.join("vuln.db")).expect("db"));
    common::fails_as(&collect("d.tar.zst"), 3, "the lock pins");
    let out = airlock(dir, &args(&["lock", "s.yaml", "--check"], &flags));
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("scan database vuln.db"));
}

#[test]
fn rescan_finds_the_sbom_through_the_referrers_api_when_the_ledger_has_none() {
    let src = TestRegistry::start();
    let debian = fixtures::files_image(&[fixtures::debian9_files()], "linux/amd64");
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(src.host.clone(), "app/base").expect("repository"),
        &debian,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    build_db(dir);
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "name: s\nimages:\n  - ref: {}/app/base:1\nscan:\n  db: vuln.db\n",
            src.host
        ),
    )
    .expect("spec");
    let flags = src.cli_flags();
    ok(&airlock(dir, &args(&["lock", "s.yaml"], &flags)));
    ok(&airlock(
        dir,
        &args(&["collect", "s.lock", "-o", "s.tar.zst"], &flags),
    ));
    init_ledger(dir);
    // The target serves the referrers API: no fallback tag is written there.
    let fer = ferro::start();
    let fflags = fer.cli_flags();
    let to = format!("{}/m", fer.host);
    ok(&airlock(
        dir,
        &args(
            &[
                "import",
                "s.tar.zst",
                "--to",
                &to,
                "--allow-unsigned",
                "--ledger",
                "ledger",
                "--ledger-password-file",
                "pw",
            ],
            &fflags,
        ),
    ));
    // The ledger's copy of the SBOM archived away (absent evidence is allowed).
    let entry: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("ledger/entries.jsonl"))
            .expect("ledger")
            .lines()
            .next()
            .expect("entry"),
    )
    .expect("json");
    let sbom = entry["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .find(|e| e["kind"] == "sbom")
        .expect("sbom evidence");
    let sbom_blob = sbom["digest"].as_str().expect("digest").to_string();
    std::fs::remove_file(dir.join("ledger/evidence/sha256").join(&sbom_blob[7..]))
        .expect("archive");
    let out = rescan_json(dir, &to, &fflags);
    let v = json(&out);
    ok(&out);
    let img = &v["images"][0];
    assert_eq!(img["sbom"], "referrers-api", "{v}");
    assert_eq!(img["digest"], debian.manifest.digest().to_string());
    assert_eq!(img["summary"]["packages"], 2, "{v}");
    assert_eq!(
        img["changes"]["new"],
        serde_json::json!(["DLA-3008-1 libssl1.1@1.1.0l-1~deb9u5"])
    );
    // Only the SBOM blob was downloaded, no layer.
    let cached: Vec<String> = std::fs::read_dir(dir.join("rcache/sha256"))
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cached, [sbom_blob[7..].to_string()]);
}

/// Thousands of failing findings: the ledger line of the import stays small, admitted or
/// rejected (findings are evidence by reference, the rejection's reason names the first few and
/// counts the rest), where the whole list would exceed the ledger's 256 KiB line cap and leave
/// the rejection unrecorded.
#[test]
fn thousands_of_findings_keep_the_ledger_line_small() {
    let reg = TestRegistry::start();
    push_two_platforms(&reg);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    // 3000 advisories written here (synthetic, not real) against Alpine 3.18's musl 1.2.4-r0:
    // with musl-utils, 6000 HIGH findings on the amd64 platform.
    const ADVISORIES: usize = 3000;
    let many = dir.join("many");
    std::fs::create_dir_all(&many).expect("dir");
    for i in 0..ADVISORIES {
        let id = format!("AIRLOCK-SYNTHETIC-{i:04}");
        let record = serde_json::json!({
            "id": id, "modified": "2026-11-28T00:00:00Z", "summary": "synthetic, for the test",
            "affected": [{"package": {"ecosystem": "Alpine:v3.18", "name": "musl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.4-r3"}]}]}],
            "database_specific": {"severity": "HIGH"}
        });
        std::fs::write(many.join(format!("{id}.json")), record.to_string()).expect("record");
    }
    let debian = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv/debian");
    ok(&airlock(
        dir,
        &[
            "db",
            "build",
            "--osv",
            "many",
            "--osv",
            &debian.display().to_string(),
            "-o",
            "vuln.db",
        ],
    ));
    let flags = reg.cli_flags();
    std::fs::write(
        dir.join("s.yaml"),
        format!(
            "name: s\nimages:\n  - ref: {}/scan/multi:1\nscan:\n  db: vuln.db\n",
            reg.host
        ),
    )
    .expect("spec");
    ok(&airlock(dir, &args(&["lock", "s.yaml"], &flags)));
    ok(&airlock(
        dir,
        &args(&["collect", "s.lock", "-o", "s.tar.zst"], &flags),
    ));
    init_ledger(dir);
    std::fs::create_dir_all(dir.join("site")).expect("site");
    std::fs::write(dir.join("site/strict.yaml"), "fail_on: high\n").expect("policy");
    std::fs::write(dir.join("site/lenient.yaml"), "ignore_unfixed: true\n").expect("policy");
    let dst = TestRegistry::start();
    let to = format!("{}/m", dst.host);
    let import = |policy: &str| {
        let mut a = vec![
            "import".to_string(),
            "s.tar.zst".into(),
            "--to".into(),
            to.clone(),
            "--allow-unsigned".into(),
            "--ledger".into(),
            "ledger".into(),
            "--ledger-password-file".into(),
            "pw".into(),
            "--scan-policy".into(),
            policy.into(),
            "--db".into(),
            "vuln.db".into(),
        ];
        a.extend(dst.cli_flags());
        airlock(dir, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let last_line = || {
        let entries = std::fs::read_to_string(dir.join("ledger/entries.jsonl")).expect("ledger");
        entries.lines().last().expect("entry").to_string()
    };
    // Refused: recorded, the reason naming the first failures and counting the others.
    let stderr = fails_with(
        &import("site/strict.yaml"),
        "scan gate failed, nothing pushed",
    );
    assert!(
        stderr.contains("AIRLOCK-SYNTHETIC-0000 in musl 1.2.4-r0 (HIGH, fixed in 1.2.4-r3)")
            && stderr.contains(&format!("and {} more", 2 * ADVISORIES - 20)),
        "{stderr}"
    );
    let rejected = last_line();
    let entry: serde_json::Value = serde_json::from_str(&rejected).expect("json");
    assert_eq!(entry["result"]["status"], "rejected", "{entry}");
    assert_eq!(entry["evidence"].as_array().map(Vec::len), Some(4));
    // Admitted (no finding fails this policy): the entry counts findings, never lists them.
    ok(&import("site/lenient.yaml"));
    let admitted = last_line();
    let entry: serde_json::Value = serde_json::from_str(&admitted).expect("json");
    assert_eq!(entry["result"]["status"], "admitted", "{entry}");
    eprintln!(
        "ledger line with {} findings: rejected {} bytes, admitted {} bytes",
        2 * ADVISORIES,
        rejected.len(),
        admitted.len()
    );
    for line in [&rejected, &admitted] {
        assert!(line.len() < 16 * 1024, "{} bytes", line.len());
    }
    ok(&airlock(dir, &["ledger", "verify", "ledger"]));
}

/// The content blob digest of a referrer the bundle carries (its manifest's first layer).
fn referrer_blob(bundle: &Path, manifest: &str) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&bundle_blob(bundle, manifest)).expect("referrer manifest");
    m["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string()
}

/// The evidence digests of a ledger entry, by kind.
fn evidence_digests(entry: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = entry["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind").to_string(),
                e["digest"].as_str().expect("digest").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A hostile publisher attaches its own CycloneDX referrer listing no packages to an Alpine image
/// whose musl is vulnerable. Collect carries it (an ordinary referrer, listed before collect's
/// own SBOM), but only collect's SBOM, marked in the signed `airlock.json`, is judged by the
/// isolated side's gate, recorded in the ledger and used by rescan. A bundle without that mark
/// (written before it existed) fails a `--db` gate for lack of evidence.
#[test]
fn a_publishers_own_sbom_is_never_judged_recorded_or_rescanned() {
    // The source serves the referrers API, so the publisher's SBOM is pinned as a referrer of
    // the image, with the very artifact type collect's own SBOM has.
    let reg = ferro::start();
    let alpine = fixtures::files_image(&[fixtures::alpine_318_files()], "linux/amd64");
    let repo = Repo::parse(reg.host.clone(), "scan/evil").expect("repository");
    // It names the OS but lists no packages, so judged alone it passes any gate.
    let theirs = fixtures::sbom_referrer(
        &alpine.manifest,
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"operating-system","name":"alpine","version":"3.18.0","properties":[{"name":"airlock:os:release","value":"v3.18"}]}]}"#.to_vec(),
    );
    rt().block_on(async {
        let client = reg.client();
        fixtures::push_image(&client, &repo, &alpine, Some("1")).await;
        fixtures::push_image(&client, &repo, &theirs, None).await;
    });
    let their_sbom = theirs.layers[0].digest().to_string();
    // The connected side accepts musl's finding, so collect passes.
    let work = collect_accepting_musl(&reg, "scan/evil");
    let dir = work.path();
    let bundle = dir.join("s.tar.zst");

    // The bundle carries both SBOM referrers of the image: the publisher's first, unmarked,
    // then collect's own, marked `origin: collect`.
    let entries = common::tarball::unpack(&bundle);
    let toc: serde_json::Value = serde_json::from_slice(&entries[0].data).expect("airlock.json");
    let sboms: Vec<&serde_json::Value> = toc["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter(|a| a["artifact_type"] == "application/vnd.cyclonedx+json")
        .collect();
    assert_eq!(sboms.len(), 2, "{toc}");
    assert_eq!(sboms[0]["digest"], theirs.manifest.digest().to_string());
    assert!(sboms[0].get("origin").is_none(), "{}", sboms[0]);
    assert_eq!(sboms[1]["origin"], "collect", "{}", sboms[1]);
    assert_eq!(sboms[1]["subject"], alpine.manifest.digest().to_string());
    let our_sbom = referrer_blob(&bundle, sboms[1]["digest"].as_str().expect("digest"));
    let report = toc["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["artifact_type"] == "application/vnd.airlock.scan-report.v1+json")
        .expect("collect's report");
    assert_eq!(report["origin"], "collect", "{report}");
    let our_report = referrer_blob(&bundle, report["digest"].as_str().expect("digest"));
    assert_ne!(our_sbom, their_sbom);
    let ours = vec![
        ("sbom".to_string(), our_sbom.clone()),
        ("scan-report".to_string(), our_report),
    ];

    init_ledger(dir);
    std::fs::create_dir_all(dir.join("site")).expect("site");
    std::fs::write(dir.join("site/strict.yaml"), "fail_on: high\n").expect("policy");
    std::fs::write(
        dir.join("site/ok.yaml"),
        "fail_on: high\nallow:\n  - {id: CVE-2025-26519, package: musl, expires: 2999-01-01, reason: reviewed on site}\n  - {id: CVE-2025-26519, package: musl-utils, expires: 2999-01-01, reason: reviewed on site}\n",
    )
    .expect("policy");
    let dst = TestRegistry::start();
    let import = |bundle: &str, prefix: &str, extra: &[&str]| {
        let to = format!("{}/{prefix}", dst.host);
        let mut a = vec![
            "import",
            bundle,
            "--to",
            &to,
            "--allow-unsigned",
            "--ledger",
            "ledger",
            "--ledger-password-file",
            "pw",
            "--db",
            "vuln.db",
            "--scan-policy",
        ];
        a.extend_from_slice(extra);
        let flags = dst.cli_flags();
        airlock(dir, &args(&a, &flags))
    };

    // The gate re-matches collect's SBOM, not the empty one: musl's finding refuses it.
    let out = import("s.tar.zst", "m", &["site/strict.yaml"]);
    let stderr = fails_with(&out, "scan gate failed, nothing pushed");
    assert!(
        stderr.contains("ALPINE-CVE-2025-26519 in musl 1.2.4-r0 (HIGH"),
        "{stderr}"
    );
    assert!(dst.tags("m/scan/evil").is_empty(), "nothing pushed");
    let rejected = last_entry(dir);
    assert_eq!(evidence_digests(&rejected), ours, "{rejected}");

    // Admitted on the site's own allow entries: the ledger records collect's evidence only.
    ok(&import("s.tar.zst", "m", &["site/ok.yaml"]));
    let admitted = last_entry(dir);
    assert_eq!(admitted["result"]["status"], "admitted", "{admitted}");
    assert_eq!(evidence_digests(&admitted), ours, "{admitted}");
    // The publisher's referrer crossed as an ordinary referrer, byte-exact.
    assert_eq!(
        dst.skopeo_raw(&format!("m/scan/evil@{}", theirs.manifest.digest())),
        theirs.manifest.bytes.to_vec()
    );

    // Rescan with the ledger's copy archived away: the internal registry lists both SBOMs for
    // the image; only the one the ledger recorded is read, and musl's finding is back.
    let stored = dir.join("ledger/evidence/sha256").join(&our_sbom[7..]);
    std::fs::rename(&stored, dir.join("archived-sbom")).expect("archive");
    let out = rescan_json(dir, &format!("{}/m", dst.host), &dst.cli_flags());
    let v = json(&out);
    let img = &v["images"][0];
    assert_eq!(img["sbom"], "fallback-tag", "{v}");
    let new = img["changes"]["new"].as_array().expect("new findings");
    assert!(
        new.iter()
            .any(|f| f == "ALPINE-CVE-2025-26519 musl@1.2.4-r0"),
        "{v}"
    );
    let cached: Vec<String> = std::fs::read_dir(dir.join("rcache/sha256"))
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        cached,
        [our_sbom[7..].to_string()],
        "only collect's SBOM read"
    );
    std::fs::rename(dir.join("archived-sbom"), &stored).expect("restore");

    // The same bundle as a collector before the mark wrote it: no evidence counts, so a `--db`
    // gate refuses it with one line naming the image, and without a database so does the
    // report gate.
    let mut old = entries.clone();
    let mut toc = toc.clone();
    for a in toc["artifacts"].as_array_mut().expect("artifacts") {
        a.as_object_mut().expect("artifact").remove("origin");
    }
    old[0].set_data(serde_json::to_vec_pretty(&toc).expect("json"));
    std::fs::write(dir.join("old.tar.zst"), common::tarball::pack(&old)).expect("old bundle");
    let source = format!("{}/scan/evil:1", reg.host);
    let out = import("old.tar.zst", "old", &["site/ok.yaml"]);
    let stderr = fails_as(
        &out,
        5,
        &format!(
            "{source}: no SBOM carried for {} that collect made",
            alpine.manifest.digest()
        ),
    );
    assert!(
        stderr.contains("scan gate failed, nothing pushed"),
        "{stderr}"
    );
    assert!(dst.tags("old/scan/evil").is_empty(), "nothing pushed");
    let to = format!("{}/old", dst.host);
    let out = airlock(
        dir,
        &args(
            &[
                "import",
                "old.tar.zst",
                "--to",
                &to,
                "--allow-unsigned",
                "--scan-policy",
                "site/ok.yaml",
            ],
            &dst.cli_flags(),
        ),
    );
    fails_as(
        &out,
        5,
        &format!(
            "{source}: no scan report carried for {} that collect made",
            alpine.manifest.digest()
        ),
    );
    assert!(dst.tags("old/scan/evil").is_empty(), "nothing pushed");
}
