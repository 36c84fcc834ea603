//! Issue 10, class 5 (local half): memory stays bounded against hostile local input. Each case
//! hands airlock a bundle with a huge tar extension header, a bundle whose manifests add up past
//! the reader's budget, or `/dev/zero` (endless) in place of a local file, and checks a
//! one-line error naming the input, exit 1 and a peak RSS under [`MAX_BAD_INPUT_RSS`] (measured with
//! `/usr/bin/time -f %M`).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;

use airlock::oci::{media, Digest};
use common::tarball::{self, offline_bundle, Ent};
use common::{airlock, airlock_peak, ok, MAX_BAD_INPUT_RSS};

/// Asserts exit 1 (other), 4 (verification: a bundle past its caps) or 7 (ledger: a ledger's
/// key or files past theirs), exactly one short `error:` line holding every needle, and bounded memory.
/// Returns the peak RSS in KiB.
fn refused(case: &str, (out, peak): (Output, u64), needles: &[&str]) -> u64 {
    let rss = peak / 1024;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 4 | 7)),
        "{case}: exit code {:?}; stderr: {stderr}",
        out.status.code()
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{case}: one error line expected: {stderr}");
    for n in needles {
        assert!(
            errors[0].contains(n),
            "{case}: `{n}` missing from: {}",
            errors[0]
        );
    }
    assert!(
        errors[0].len() < 600,
        "{case}: the error line is {} bytes long",
        errors[0].len()
    );
    assert!(
        peak < MAX_BAD_INPUT_RSS,
        "{case}: peak RSS {rss} KiB, over {MAX_BAD_INPUT_RSS} bytes"
    );
    eprintln!("{case}: peak RSS {rss} KiB");
    rss
}

/// A tar stream whose first header is an extension of `kind` declaring `size` bytes (all
/// present, all `a`: zstd makes 512 MiB of them about 17 KiB), then the entries of `rest`.
fn with_huge_extension(path: &Path, kind: tar::EntryType, size: u64, before: &[Ent]) {
    let file = std::fs::File::create(path).expect("create");
    let mut z = zstd::stream::write::Encoder::new(file, 3).expect("zstd");
    for e in before {
        let mut b = tar::Builder::new(Vec::new());
        b.append(&e.header, &e.data[..]).expect("append");
        let mut bytes = b.into_inner().expect("tar");
        bytes.truncate(bytes.len() - 1024); // no end-of-archive marker yet
        z.write_all(&bytes).expect("write");
    }
    let mut h = tar::Header::new_gnu();
    h.set_path("././@LongLink").expect("path");
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    z.write_all(h.as_bytes()).expect("header");
    let chunk = vec![b'a'; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        z.write_all(&chunk[..n]).expect("data");
        left -= n as u64;
    }
    let pad = (512 - size % 512) % 512;
    z.write_all(&vec![0u8; pad as usize + 1024]).expect("pad");
    z.finish().expect("finish");
}

#[test]
fn huge_tar_extension_headers_are_refused_before_buffering() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let good = offline_bundle(&[("etc/os-release", b"ID=alpine\n")]);
    std::fs::write(dir.join("good.tar.zst"), tarball::pack(&good)).expect("write");
    ok(&airlock(
        dir,
        &["verify", "good.tar.zst", "--allow-unsigned"],
    ));

    let huge = 512 * 1024 * 1024;
    for (name, kind, before) in [
        ("longname-first", tar::EntryType::GNULongName, &good[..0]),
        ("pax-first", tar::EntryType::XHeader, &good[..0]),
        (
            "longname-after-manifest",
            tar::EntryType::GNULongName,
            &good[..1],
        ),
        (
            "longlink-after-layout",
            tar::EntryType::GNULongLink,
            &good[..2],
        ),
    ] {
        let file = format!("{name}.tar.zst");
        with_huge_extension(&dir.join(&file), kind, huge, before);
        assert!(std::fs::metadata(dir.join(&file)).expect("meta").len() < 64 * 1024);
        // `inspect` reads only the first entries: it meets the header only when it is first.
        let mut commands = vec![vec!["verify", file.as_str(), "--allow-unsigned"]];
        if before.is_empty() {
            commands.push(vec!["inspect", file.as_str()]);
        }
        for args in commands {
            let case = format!("{name}: {}", args[0]);
            refused(
                &case,
                airlock_peak(dir, &args, &[]),
                &["header of 536870912 bytes", "never holds one"],
            );
        }
    }
}

/// `good` with `extra` manifest blobs of `size` bytes each listed first in `airlock.json`.
fn with_listed_manifests(good: &[Ent], extra: usize, size: u64) -> Vec<Ent> {
    let mut entries = good.to_vec();
    let mut m: serde_json::Value = serde_json::from_slice(&entries[0].data).expect("json");
    let blobs = m["blobs"].as_array_mut().expect("blobs");
    for i in 0..extra {
        blobs.insert(
            0,
            serde_json::json!({"digest": Digest::of(format!("m{i}").as_bytes()), "size": size,
                               "media_type": media::OCI_MANIFEST}),
        );
    }
    entries[0].set_data(serde_json::to_vec(&m).expect("json"));
    entries
}

#[test]
fn manifests_over_the_readers_budget_are_refused_before_reading() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let good = offline_bundle(&[("etc/os-release", b"ID=alpine\n")]);
    // 300 manifests of 4 MiB: each under the per-manifest cap, 1.2 GiB together.
    let bad = with_listed_manifests(&good, 300, 4 * 1024 * 1024);
    std::fs::write(dir.join("many.tar.zst"), tarball::pack(&bad)).expect("write");
    let osv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv/alpine");
    let osv = osv.to_str().expect("utf-8 path");
    ok(&airlock(dir, &["db", "build", "--osv", osv, "-o", "v.db"]));
    for args in [
        vec!["verify", "many.tar.zst", "--allow-unsigned"],
        vec!["inspect", "many.tar.zst"],
        vec!["scan", "many.tar.zst", "--db", "v.db"],
    ] {
        refused(
            &format!("300 x 4 MiB manifests: {}", args[0]),
            airlock_peak(dir, &args, &[]),
            &["manifest blobs total 12582", "over the 67108864-byte limit"],
        );
    }
}

/// Files the commands below need besides the one under test.
fn fixtures(dir: &Path) {
    let good = offline_bundle(&[("etc/os-release", b"ID=alpine\n")]);
    std::fs::write(dir.join("b.tar.zst"), tarball::pack(&good)).expect("bundle");
    std::fs::write(dir.join("f.bin"), b"file").expect("file");
    std::fs::write(
        dir.join("t.yaml"),
        format!(
            "name: t\nfiles:\n  - path: f.bin\n    sha256: {}\n",
            Digest::of(b"file").hex()
        ),
    )
    .expect("spec");
    ok(&airlock(dir, &["lock", "t.yaml"]));
    std::fs::write(dir.join("pw"), b"password\n").expect("pw");
    std::fs::write(dir.join("receipt.json"), b"{}").expect("receipt");
    ok(&airlock(
        dir,
        &[
            "ledger",
            "init",
            "led",
            "--origin",
            "t.example/l",
            "--password-file",
            "pw",
        ],
    ));
}

#[test]
fn every_local_file_input_is_capped_against_dev_zero() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    fixtures(dir);
    let z = "/dev/zero";
    let import = [
        "import",
        "b.tar.zst",
        "--to",
        "127.0.0.1:9/x",
        "--allow-unsigned",
    ];
    let collect = ["collect", "t.lock", "-o", "o.tar.zst"];
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "spec",
            vec!["lock", z],
            vec!["spec `/dev/zero`", "larger than"],
        ),
        (
            "lockfile",
            vec!["collect", z, "-o", "o.tar.zst"],
            vec!["lockfile", "larger than"],
        ),
        (
            "collect --have",
            [&collect[..], &["--have", z]].concat(),
            vec!["receipt `/dev/zero`", "larger than"],
        ),
        (
            "collect --trust-receipt",
            [
                &collect[..],
                &["--have", "receipt.json", "--trust-receipt", z],
            ]
            .concat(),
            vec!["/dev/zero", "larger than"],
        ),
        (
            "collect --password-file",
            [&collect[..], &["--key", "k.key", "--password-file", z]].concat(),
            vec!["/dev/zero", "larger than"],
        ),
        (
            "collect --sign",
            [&collect[..], &["--key", z, "--password-file", "pw"]].concat(),
            vec!["/dev/zero"],
        ),
        (
            "db build --osv",
            vec!["db", "build", "--osv", z, "-o", "v.db"],
            vec!["/dev/zero", "not a directory, zip archive or JSON file"],
        ),
        (
            "scan --db",
            vec!["scan", "b.tar.zst", "--db", z],
            vec!["/dev/zero", "not an airlock vulnerability database"],
        ),
        (
            "verify --trust",
            vec!["verify", "b.tar.zst", "--trust", z],
            vec!["/dev/zero"],
        ),
        (
            "bundle",
            vec!["verify", z, "--allow-unsigned"],
            vec!["/dev/zero"],
        ),
        (
            "verify-parts",
            vec!["verify-parts", z, "--allow-unsigned"],
            vec!["/dev/zero"],
        ),
        (
            "import --policy",
            [&import[..], &["--policy", z]].concat(),
            vec!["policy `/dev/zero`", "larger than"],
        ),
        (
            "import --scan-policy",
            [&import[..], &["--scan-policy", z]].concat(),
            vec!["/dev/zero", "larger than"],
        ),
        (
            "import --mapping",
            [&import[..], &["--mapping", z]].concat(),
            vec!["/dev/zero", "larger than"],
        ),
        (
            "receipt --ca-file",
            vec![
                "receipt",
                "--registry",
                "127.0.0.1:9",
                "-o",
                "r.json",
                "--ca-file",
                z,
            ],
            vec!["/dev/zero", "larger than"],
        ),
        (
            "ledger verify --trusted-checkpoint",
            vec!["ledger", "verify", "led", "--trusted-checkpoint", z],
            vec!["checkpoint `/dev/zero`", "larger than"],
        ),
        (
            "ledger verify --vkey",
            vec!["ledger", "verify", "led", "--vkey", z],
            vec!["key `/dev/zero`", "neither a file nor a verifier key"],
        ),
        (
            "ledger verify-proof",
            vec!["ledger", "verify-proof", z, "--vkey", "led/ledger.vkey"],
            vec!["proof `/dev/zero`", "larger than"],
        ),
        (
            "ledger consistency --from",
            vec!["ledger", "consistency", "led", "--from", z],
            vec!["checkpoint `/dev/zero`", "larger than"],
        ),
        (
            "key generate --password-file",
            vec!["key", "generate", "--output", "k2", "--password-file", z],
            vec!["/dev/zero", "larger than"],
        ),
    ];
    let mut worst = 0;
    let mut failed = Vec::new();
    for (case, args, needles) in cases {
        let run = airlock_peak(dir, &args, &[]);
        // Every case runs, so one failure does not hide the next.
        match std::panic::catch_unwind(|| refused(case, run, &needles)) {
            Ok(rss) => worst = worst.max(rss),
            Err(_) => failed.push(case),
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
    eprintln!("largest peak RSS over the /dev/zero cases: {worst} KiB");
}

#[test]
fn a_file_one_byte_over_its_cap_is_refused_before_it_is_read() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    fixtures(dir);
    // Sparse files: their size is checked before a byte is read, so they cost nothing.
    let sparse = |name: &str, len: u64| {
        let f = std::fs::File::create(dir.join(name)).expect("create");
        f.set_len(len).expect("set_len");
    };
    sparse("db.big", airlock::scan::db::MAX_DB_BYTES + 1);
    let mut head = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("db.big"))
        .expect("open");
    head.write_all(airlock::scan::db::MAGIC).expect("magic");
    sparse("receipt.big", airlock::receipt::MAX_RECEIPT_BYTES + 1);
    sparse("spec.big", airlock::spec::MAX_SPEC_BYTES + 1);
    sparse("auth.big", airlock::io::MAX_AUTH_FILE_BYTES + 1);
    let auth = [("REGISTRY_AUTH_FILE", "auth.big")];
    refused(
        "auth file over the cap",
        airlock_peak(
            dir,
            &["receipt", "--registry", "127.0.0.1:9", "-o", "r.json"],
            &auth,
        ),
        &["auth file `auth.big`", "larger than the 4.0 MiB limit"],
    );
    for (case, args, needles) in [
        (
            "scan --db over the cap",
            vec!["scan", "b.tar.zst", "--db", "db.big"],
            vec![
                "vulnerability database `db.big`",
                "larger than the 1.0 GiB limit",
            ],
        ),
        (
            "collect --have over the cap",
            vec![
                "collect",
                "t.lock",
                "-o",
                "o.tar.zst",
                "--have",
                "receipt.big",
            ],
            vec!["receipt `receipt.big`", "larger than the 64.0 MiB limit"],
        ),
        (
            "lock over the cap",
            vec!["lock", "spec.big"],
            vec!["spec `spec.big`", "larger than the 4.0 MiB limit"],
        ),
    ] {
        refused(case, airlock_peak(dir, &args, &[]), &needles);
    }
}

#[test]
fn an_osv_zip_entry_cannot_inflate_past_its_cap() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    // One record of 17 MiB of whitespace: a few KiB deflated, over the 16 MiB record cap.
    let mut record = vec![b' '; 17 * 1024 * 1024];
    record[0] = b'{';
    *record.last_mut().expect("last") = b'}';
    let file = std::fs::File::create(dir.join("bomb.zip")).expect("create");
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("DSA-1-1.json", opts).expect("entry");
    zip.write_all(&record).expect("write");
    zip.finish().expect("finish");
    assert!(std::fs::metadata(dir.join("bomb.zip")).expect("meta").len() < 1024 * 1024);
    refused(
        "db build --osv zip bomb",
        airlock_peak(
            dir,
            &["db", "build", "--osv", "bomb.zip", "-o", "v.db"],
            &[],
        ),
        &["bomb.zip!DSA-1-1.json", "limit for one OSV record"],
    );
    assert!(!dir.join("v.db").exists());
}
