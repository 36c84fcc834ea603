//! airlock's findings against trivy's on the same images and the same advisories.
//!
//! trivy 0.76 (from PyPI, `scripts/peer-fixtures.sh`) matches only against its own database, so
//! the test writes one (`common::trivydb`: a bbolt file in the trivy-db schema 2 layout) from
//! the very OSV records `airlock db build` compiles, then scans each image with both tools
//! offline and compares the findings as sets of (package, installed version, vulnerability,
//! fixed version, status). Any difference not listed in [`deliberate`] fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use airlock::registry::Repo;
use common::fixtures::{self, Image};
use common::peers::{image_of_tars, inventory_roots, peers, tar_dir, trivy_json, write_layout};
use common::{airlock, ok, TestRegistry};

/// The advisories both tools get: real records (`tests/data/osv`, provenance there) and the
/// ones written for the fixture packages (`tests/data/osv/authored`, marked as such).
fn advisory_dirs() -> Vec<std::path::PathBuf> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    ["debian", "alpine", "lang", "authored"]
        .iter()
        .map(|d| data.join(d))
        .collect()
}

/// One finding, normalised: (package, installed version, vulnerability, fixed version, status).
type Finding = (String, String, String, String, String);

/// A multiset of findings (the same package in two files is two findings), with the ecosystem
/// of each: finding → (ecosystem, how many).
type Findings = BTreeMap<Finding, (&'static str, usize)>;

/// airlock's findings per ecosystem label, with every ID each finding is known by.
struct Ours {
    findings: Findings,
    /// (package, any of its IDs or aliases) → the finding's own ID.
    names: BTreeMap<(String, String), String>,
}

fn s(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn ecosystem_of(result_type: &str) -> &'static str {
    match result_type {
        "debian" => "deb",
        "alpine" => "apk",
        "alma" | "almalinux" | "redhat" | "rhel" | "rocky" => "rpm",
        "go-module" | "gobinary" => "go",
        "python" | "python-pkg" => "pypi",
        "npm" | "node-pkg" => "npm",
        "java" | "jar" => "maven",
        "nuget" | "dotnet-core" => "nuget",
        _ => "other",
    }
}

fn ours(report: &serde_json::Value) -> Ours {
    let mut o = Ours {
        findings: BTreeMap::new(),
        names: BTreeMap::new(),
    };
    for r in report["Results"].as_array().into_iter().flatten() {
        let eco = ecosystem_of(r["Type"].as_str().unwrap_or_default());
        for v in r["Vulnerabilities"].as_array().into_iter().flatten() {
            let (pkg, id) = (s(&v["PkgName"]), s(&v["VulnerabilityID"]));
            for alias in std::iter::once(&v["VulnerabilityID"])
                .chain(v["VendorIDs"].as_array().into_iter().flatten())
            {
                o.names.insert((pkg.clone(), s(alias)), id.clone());
            }
            let f = (
                pkg,
                s(&v["InstalledVersion"]),
                id,
                s(&v["FixedVersion"]),
                s(&v["Status"]),
            );
            o.findings.entry(f).or_insert((eco, 0)).1 += 1;
        }
    }
    o
}

/// trivy's findings, named as airlock names them where the two agree on the advisory: trivy-db
/// keys an advisory by its CVE aliases (one finding per CVE) where airlock keeps the advisory's
/// own ID with the CVEs as aliases; trivy lists every patched version of a language advisory
/// (`7.5.2, 6.3.1, 5.7.2`) where airlock gives the lowest above the installed one.
fn theirs(report: &serde_json::Value, ours: &Ours) -> Findings {
    let mut out = BTreeMap::new();
    for r in report["Results"].as_array().into_iter().flatten() {
        let eco = ecosystem_of(r["Type"].as_str().unwrap_or_default());
        for v in r["Vulnerabilities"].as_array().into_iter().flatten() {
            let pkg = s(&v["PkgName"]);
            let ids = std::iter::once(&v["VulnerabilityID"])
                .chain(v["VendorIDs"].as_array().into_iter().flatten())
                .map(s);
            let id = ids
                .clone()
                .find_map(|i| ours.names.get(&(pkg.clone(), i)).cloned())
                .unwrap_or_else(|| s(&v["VulnerabilityID"]));
            let installed = s(&v["InstalledVersion"]);
            let mut fixed = s(&v["FixedVersion"]);
            if let Some(((_, _, _, f, _), _)) = ours
                .findings
                .iter()
                .find(|((p, i, x, _, _), _)| *p == pkg && *i == installed && *x == id)
            {
                if fixed.split(", ").any(|x| x == f) {
                    fixed = f.clone();
                }
            }
            let f = (pkg, installed, id, fixed, s(&v["Status"]));
            out.entry(f).or_insert((eco, 0)).1 += 1;
        }
    }
    out
}

/// Differences that are understood and documented in docs/SCAN.md ("Findings against trivy").
fn deliberate(image: &str, _f: &Finding, only_ours: bool) -> bool {
    // trivy matches an rpm only when its vendor is the OS's (its list of OS vendors): a
    // package without one (EPEL, Docker's, a site's own) is third-party and never matched.
    // airlock matches every installed rpm by name against the OS's advisories.
    image == "alma-third-party" && only_ours
}

/// The images of the comparison: (name, image): the roots of the inventory comparison (the
/// RHEL one left out: trivy matches RHEL only through its CPE mapping of repositories), a
/// distroless Debian 9, an AlmaLinux 9.4 root whose rpms carry the vendor, and the vendor-less
/// rpms of the RHEL root under an AlmaLinux release (an upper layer replaces the release files).
fn images(peers: &Path) -> Vec<(&'static str, Image)> {
    let mut images: Vec<(&str, Image)> = inventory_roots(peers)
        .into_iter()
        .filter(|(name, _)| *name != "rpm")
        .map(|(name, tar)| (name, image_of_tars(vec![tar])))
        .collect();
    let mut debian9 = fixtures::debian9_files();
    // trivy detects a distroless Debian by `etc/debian_version`, as real ones carry.
    debian9.push(("etc/debian_version", b"9.13\n".to_vec()));
    let debian9: Vec<(&str, &[u8])> = debian9.iter().map(|(p, b)| (*p, &b[..])).collect();
    images.push(("debian9", image_of_tars(vec![fixtures::tar_of(&debian9)])));
    images.push((
        "alma",
        image_of_tars(vec![tar_dir(&peers.join("alma-root"), &[])]),
    ));
    let alma_release = std::fs::read(peers.join("alma-root/etc/os-release")).expect("os-release");
    let alma_upper = fixtures::tar_of(&[
        ("etc/os-release", &alma_release),
        (
            "etc/redhat-release",
            b"AlmaLinux release 9.4 (Seafoam Ocelot)\n",
        ),
    ]);
    images.push((
        "alma-third-party",
        image_of_tars(vec![tar_dir(&peers.join("rpm-root"), &[]), alma_upper]),
    ));
    images
}

#[test]
fn findings_equal_trivys_on_the_same_advisories() {
    let peers = peers();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let dirs = advisory_dirs();
    // airlock's database and trivy's, from the same records.
    let mut args = vec!["db".to_string(), "build".into()];
    for d in &dirs {
        args.extend(["--osv".into(), d.display().to_string()]);
    }
    args.extend(["-o".into(), "vuln.db".into()]);
    ok(&airlock(
        dir,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let cache = dir.join("trivy-cache");
    let dir_refs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    common::trivydb::write_cache(&dir_refs, &cache);

    let reg = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let mut table = Vec::new();
    let mut common_per_ecosystem: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut counts = BTreeMap::new();
    for (name, img) in images(&peers) {
        let repo = format!("cmp/{name}");
        rt.block_on(fixtures::push_image(
            &reg.client(),
            &Repo::parse(reg.host.clone(), &repo).expect("repository"),
            &img,
            Some("1"),
        ));
        let reference = format!("{}/{repo}:1", reg.host);
        let mut a = vec!["scan", &reference, "--db", "vuln.db", "--format", "json"];
        let flags = reg.cli_flags();
        a.extend(flags.iter().map(String::as_str));
        let v: serde_json::Value = serde_json::from_str(&ok(&airlock(dir, &a))).expect("json");
        let ours = ours(&v["images"][0]["report"]);
        let layout = dir.join(format!("layout-{name}"));
        write_layout(&img, &layout);
        let theirs = theirs(&trivy_json(&peers, &layout, &cache, "vuln", &[]), &ours);
        let keys: BTreeSet<&Finding> = ours.findings.keys().chain(theirs.keys()).collect();
        let (mut n_ours, mut n_theirs, mut n_both) = (0, 0, 0);
        for f in keys {
            let (eco, a) = ours.findings.get(f).copied().unwrap_or(("", 0));
            let (_, t) = theirs.get(f).copied().unwrap_or(("", 0));
            (n_ours, n_theirs, n_both) = (n_ours + a, n_theirs + t, n_both + a.min(t));
            if a.min(t) > 0 {
                *common_per_ecosystem.entry(eco).or_default() += a.min(t);
            }
            if a != t && !deliberate(name, f, a > t) {
                failures.push(format!("{name}: airlock {a}, trivy {t} times {f:?}"));
            }
        }
        counts.insert(name, (n_ours, n_theirs));
        table.push(format!("| {name} | {n_ours} | {n_theirs} | {n_both} |"));
    }
    eprintln!(
        "| image | airlock | trivy 0.76 | both |\n|---|---|---|---|\n{}\ncommon per ecosystem: {common_per_ecosystem:?}",
        table.join("\n")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The third-party difference is there to see, not vacuous.
    let (ours_3p, theirs_3p) = counts["alma-third-party"];
    assert!(ours_3p > 0 && theirs_3p == 0, "{counts:?}");
    for eco in ["deb", "apk", "rpm", "go", "pypi", "npm", "maven", "nuget"] {
        assert!(
            common_per_ecosystem.get(eco).copied().unwrap_or(0) > 0,
            "no finding in {eco} that both report: {common_per_ecosystem:?}"
        );
    }
}

/// `airlock scan --scanner trivy` hands Trivy only checked blobs. Trivy reads the layer files
/// itself: a layer downloaded this run was checked on its way into the cache; one already in
/// the cache (an earlier run's) is checked before Trivy sees it, and a damaged one stops the
/// scan with the file named, before Trivy runs.
#[test]
fn trivy_is_handed_only_checked_blobs() {
    let peers = peers();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let trivy_cache = dir.join("trivy-cache");
    let dirs = advisory_dirs();
    let dir_refs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    common::trivydb::write_cache(&dir_refs, &trivy_cache);
    let (_, img) = images(&peers)
        .into_iter()
        .find(|(name, _)| *name == "debian9")
        .expect("debian9 image");
    let reg = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(fixtures::push_image(
        &reg.client(),
        &Repo::parse(reg.host.clone(), "trivy/debian9").expect("repository"),
        &img,
        Some("1"),
    ));
    let reference = format!("{}/trivy/debian9:1", reg.host);
    let flags = reg.cli_flags();
    let mut args = vec![
        "scan",
        &reference,
        "--scanner",
        "trivy",
        "--cache",
        "blobs",
        "--format",
        "json",
    ];
    args.extend(flags.iter().map(String::as_str));
    let path = format!("{}:/usr/bin:/bin", peers.join("venv/bin").display());
    let env = [
        ("PATH", path.as_str()),
        ("TRIVY_CACHE_DIR", trivy_cache.to_str().expect("utf-8 path")),
    ];
    let packages = |out: &std::process::Output| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&ok(out)).expect("json");
        v["images"][0]["summary"]["packages"]
            .as_u64()
            .expect("packages")
    };

    // Downloaded (checked on the way in), then from the cache (checked before Trivy).
    let fresh = packages(&common::airlock_env(dir, &args, &env));
    assert!(fresh > 0, "Trivy found no package in the debian9 image");
    assert_eq!(packages(&common::airlock_env(dir, &args, &env)), fresh);

    // The cached layer damaged in place, its size kept: refused, the file named.
    let layer = format!("blobs/sha256/{}", img.layers[0].digest().hex());
    let mut bytes = std::fs::read(dir.join(&layer)).expect("cached layer");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(dir.join(&layer), &bytes).expect("damage");
    let out = common::airlock_env(dir, &args, &env);
    let stderr = common::fails_with(&out, &format!("`{layer}`: blob sha256:"));
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    assert!(stderr.contains("delete the file"), "{stderr}");
    // Trivy's layout was never written.
    let left: Vec<_> = std::fs::read_dir(dir.join("blobs"))
        .expect("cache")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".airlock-trivy-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The cached config damaged instead (its platform is read from it): refused the same way.
    bytes[last] ^= 0xff;
    std::fs::write(dir.join(&layer), &bytes).expect("mend");
    let config = format!("blobs/sha256/{}", img.config.digest().hex());
    let mut bytes = std::fs::read(dir.join(&config)).expect("cached config");
    bytes[0] ^= 0x20;
    std::fs::write(dir.join(&config), &bytes).expect("damage");
    let out = common::airlock_env(dir, &args, &env);
    let stderr = common::fails_with(&out, &format!("`{config}`: blob sha256:"));
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    // airlock's own scanner reads the platform from that config too: refused before that.
    common::build_vuln_db(dir);
    let mut ours = vec!["scan", &reference, "--db", "vuln.db", "--cache", "blobs"];
    ours.extend(flags.iter().map(String::as_str));
    let out = common::airlock(dir, &ours);
    let stderr = common::fails_with(&out, &format!("`{config}`: blob sha256:"));
    assert!(stderr.contains("digest mismatch"), "{stderr}");
}
