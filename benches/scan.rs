//! Scan benchmark (not a test). Run with `cargo bench --bench scan`; prints a Markdown table.
//!
//! 1. Inventory throughput: a synthetic ~200 MiB image (4 gzip layers of incompressible files,
//!    an Alpine apk database in the bottom layer, a whiteout on top) is written to blob files,
//!    then scanned the way `airlock scan` does it: each layer streamed from its file, its
//!    digest checked while reading, gunzipped, its tar walked, wanted files kept.
//! 2. Matching: 1 000 installed packages against a database of 50 000 synthetic OSV records
//!    (10 per package name over 5 000 names, each with an `introduced`/`fixed` range).
//!
//! 3. Application inventory: one gzip layer of 2 000 npm `package.json`, 200 Python `METADATA`,
//!    20 jars (with `pom.properties`) and a 64 MiB executable ELF file without Go build info
//!    (searched end to end, the worst case for the Go reader).
//!
//! `SCAN_BENCH_MIB` overrides the image size (MiB of layer content).

use std::io::Write as _;
use std::path::Path;
use std::time::{Instant, SystemTime};

use airlock::oci::digest::CheckedReader;
use airlock::oci::{Descriptor, Digest};
use airlock::scan::db::{Builder, Database};
use airlock::scan::flatten::{Compression, Layer, Limits};
use airlock::scan::os::{Family, OsInfo};
use airlock::scan::osv::OsvRecord;
use airlock::scan::{Inventory, Package, PackageKind};

/// xorshift noise, incompressible like real binaries' compressed layers.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A gzip layer of `files` files of `size` bytes (plus `extra` files), written to `dir`.
fn layer(
    dir: &Path,
    seed: u64,
    files: usize,
    size: usize,
    extra: &[(&str, &[u8])],
) -> (Descriptor, u64) {
    let path = dir.join(format!("layer-{seed}"));
    let file = std::fs::File::create(&path).expect("create");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut raw = 0u64;
    let mut add = |b: &mut tar::Builder<_>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, data).expect("append");
        raw += data.len() as u64;
    };
    for (name, data) in extra {
        add(&mut b, name, data);
    }
    for i in 0..files {
        let data = noise(seed * 1_000_003 + i as u64, size);
        add(&mut b, &format!("usr/share/bench/{seed}/file-{i}"), &data);
    }
    let gz = b.into_inner().expect("tar");
    gz.finish().expect("gzip").flush().expect("flush");
    let bytes = std::fs::read(&path).expect("read");
    let digest = Digest::of(&bytes);
    std::fs::rename(&path, dir.join(digest.hex())).expect("rename");
    let d: Descriptor = serde_json::from_value(serde_json::json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": digest,
        "size": bytes.len(),
    }))
    .expect("descriptor");
    (d, raw)
}

fn inventory_throughput(mib: usize) -> (f64, u64, u64, usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/packages/alpine/osv-scalibr-alpine-3.18");
    let os_release = std::fs::read(data.join("etc/os-release")).expect("os-release");
    let installed = std::fs::read(data.join("lib/apk/db/installed")).expect("installed");
    let per_layer = mib * 1024 * 1024 / 4;
    let file_size = 256 * 1024;
    let files = per_layer / file_size;
    let mut layers = Vec::new();
    let mut raw = 0;
    for i in 0..4u64 {
        let extra: Vec<(&str, &[u8])> = match i {
            0 => vec![
                ("etc/os-release", &os_release[..]),
                ("etc/alpine-release", b"3.18.0\n"),
                ("lib/apk/db/installed", &installed[..]),
            ],
            3 => vec![("usr/share/bench/0/.wh.file-0", b"")],
            _ => vec![],
        };
        let (d, r) = layer(dir.path(), i + 1, files, file_size, &extra);
        raw += r;
        layers.push(d);
    }
    let compressed: u64 = layers.iter().map(|d| d.size).sum();
    // Warm the page cache once, then measure.
    for d in &layers {
        let _ = std::fs::read(dir.path().join(d.digest.hex()));
    }
    let start = Instant::now();
    let inputs = layers.iter().map(|d| {
        let f = std::fs::File::open(dir.path().join(d.digest.hex())).expect("open");
        Layer {
            name: d.digest.to_string(),
            compression: Compression::Gzip,
            reader: CheckedReader::new(
                std::io::BufReader::with_capacity(1 << 20, f),
                d.digest.clone(),
                d.size,
            ),
        }
    });
    let inv = airlock::scan::inventory_layers(inputs.collect::<Vec<_>>(), Limits::default())
        .expect("inventory");
    let secs = start.elapsed().as_secs_f64();
    (secs, compressed, raw, inv.packages.len())
}

fn matching(records: usize, packages: usize) -> (f64, f64, usize) {
    let names = records / 10;
    let mut b = Builder::new();
    for i in 0..records {
        let pkg = i % names;
        let severity = ["low", "medium", "high", "critical"][i % 4];
        let rec: OsvRecord = serde_json::from_value(serde_json::json!({
            "id": format!("BENCH-{i}"),
            "aliases": [format!("CVE-2099-{i}")],
            "summary": "synthetic",
            "affected": [{
                "package": {"ecosystem": "Alpine:v3.18", "name": format!("pkg-{pkg}")},
                "ranges": [{"type": "ECOSYSTEM", "events": [
                    {"introduced": "0"},
                    {"fixed": format!("1.{}.{}-r0", i % 7, i % 13)}
                ]}],
                "ecosystem_specific": {"severity": severity},
            }],
        }))
        .expect("record");
        b.add_record(rec);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bench.db");
    b.write(&path, SystemTime::now()).expect("write");
    let start = Instant::now();
    let db = Database::open(&path).expect("open");
    let open_secs = start.elapsed().as_secs_f64();
    let inv = Inventory {
        os: Some(OsInfo {
            family: Family::Alpine,
            id: "alpine".into(),
            version_id: Some("3.18.0".into()),
            release: Some("v3.18".into()),
            codename: None,
            pretty_name: None,
        }),
        packages: (0..packages)
            .map(|i| Package {
                kind: PackageKind::Apk,
                name: format!("pkg-{i}"),
                version: "1.3.5-r0".into(),
                source_name: format!("pkg-{i}"),
                source_version: "1.3.5-r0".into(),
                arch: Some("x86_64".into()),
                maintainer: None,
                license: None,
                location: "lib/apk/db/installed".into(),
                purl: format!("pkg:apk/alpine/pkg-{i}@1.3.5-r0"),
            })
            .collect(),
        warnings: Vec::new(),
    };
    let start = Instant::now();
    let m = airlock::scan::matcher::match_inventory(&inv, &db).expect("match");
    (open_secs, start.elapsed().as_secs_f64(), m.findings.len())
}

/// Inventory of application packages (see 3. above): seconds, packages found.
fn app_inventory() -> (f64, usize, u64) {
    use std::io::Write as _;
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let add = |b: &mut tar::Builder<_>, name: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        b.append_data(&mut h, name, data).expect("append");
    };
    for i in 0..2000 {
        let pj = format!(r#"{{"name":"pkg-{i}","version":"1.{i}.0","license":"MIT"}}"#);
        add(
            &mut b,
            &format!("app/node_modules/pkg-{i}/package.json"),
            pj.as_bytes(),
            0o644,
        );
    }
    for i in 0..200 {
        let m =
            format!("Metadata-Version: 2.1\nName: py-{i}\nVersion: 0.{i}\n\nlong description\n");
        add(
            &mut b,
            &format!("usr/lib/python3/site-packages/py_{i}-0.{i}.dist-info/METADATA"),
            m.as_bytes(),
            0o644,
        );
    }
    for i in 0..20 {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file(format!("META-INF/maven/org.x/lib-{i}/pom.properties"), opts)
            .expect("zip");
        write!(w, "groupId=org.x\nartifactId=lib-{i}\nversion=1.{i}\n").expect("zip");
        w.start_file("org/x/Big.class", opts).expect("zip");
        w.write_all(&noise(i, 1 << 20)).expect("zip");
        let jar = w.finish().expect("zip").into_inner();
        add(&mut b, &format!("opt/lib/lib-{i}-1.{i}.jar"), &jar, 0o644);
    }
    let mut elf = b"\x7fELF".to_vec();
    elf.extend_from_slice(&noise(99, 64 << 20));
    add(&mut b, "usr/bin/big", &elf, 0o755);
    let gz = b.into_inner().expect("tar").finish().expect("gzip");
    let size = gz.len() as u64;
    let start = Instant::now();
    let inv = airlock::scan::inventory_layers(
        [Layer {
            name: "app".into(),
            compression: Compression::Gzip,
            reader: std::io::Cursor::new(gz),
        }],
        Limits::default(),
    )
    .expect("inventory");
    (start.elapsed().as_secs_f64(), inv.packages.len(), size)
}

fn main() {
    let mib: usize = std::env::var("SCAN_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let (secs, compressed, raw, pkgs) = inventory_throughput(mib);
    let (open, matched, findings) = matching(50_000, 1_000);
    let (app_secs, app_pkgs, app_size) = app_inventory();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| inventory of a {:.0} MiB image (4 gzip layers, {:.0} MiB compressed), digest checked | {:.2} s, {:.0} MB/s of layer data ({:.0} MB/s uncompressed), {pkgs} packages |",
        raw as f64 / 1048576.0,
        compressed as f64 / 1048576.0,
        secs,
        compressed as f64 / 1e6 / secs,
        raw as f64 / 1e6 / secs
    );
    println!(
        "| open a 50 000-record database (checksum, index) | {:.1} ms |",
        open * 1e3
    );
    println!(
        "| match 1 000 packages against 50 000 records | {:.1} ms, {findings} findings |",
        matched * 1e3
    );
    println!(
        "| application inventory: 2 000 npm, 200 Python, 20 jars (1 MiB each), a 64 MiB ELF searched for Go build info ({:.0} MiB gzip layer) | {:.2} s, {app_pkgs} packages |",
        app_size as f64 / 1048576.0,
        app_secs
    );
}
