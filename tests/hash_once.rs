//! Every byte is hashed once on every path that moves a bundle's blobs (issue 12): collect with
//! a scan policy (cold and warm cache), verify from the file and from split parts, scan of a
//! bundle, and import. Counted with `airlock::oci::digest::bytes_hashed`, the bytes fed to
//! every `Hasher` of this process: this file holds one test, so nothing else hashes meanwhile
//! (the CLI runs it starts are other processes).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::fixtures;
use common::{airlock, ok, rt, TestRegistry};

use airlock::bundle::parts;
use airlock::bundle::reader::{read_table_of_contents, VerifyOnly};
use airlock::bundle::signature::SignaturePolicy;
use airlock::bundle::BundleSource;
use airlock::collect::collect;
use airlock::lock::Lock;
use airlock::oci::digest::bytes_hashed;
use airlock::progress::NoProgress;
use airlock::registry::Repo;
use airlock::scan::run::{ScanInput, ScanRequest};
use airlock::trust::keys::{PublicKey, SigningKey};

/// The bytes `f` hashed, and what it returned.
fn hashed<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = bytes_hashed();
    let out = f();
    (bytes_hashed() - before, out)
}

#[test]
fn every_path_hashes_each_byte_once() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    // An Alpine root the scanner finds packages in, with 300 kB of incompressible data on top,
    // and a second image of three plain layers, one over 8 MiB (import reads such a blob from
    // the bundle by offset, after the read stage passed over it unhashed).
    let os = fixtures::files_image(
        &[
            fixtures::alpine_318_files(),
            vec![("data/noise", fixtures::noise(7, 300_000))],
        ],
        "linux/amd64",
    );
    let plain = fixtures::image(
        vec![
            fixtures::layer(1, 300_000, fixtures::Compression::Gzip, false),
            fixtures::layer(2, 200_000, fixtures::Compression::Gzip, false),
            fixtures::layer(3, 9 << 20, fixtures::Compression::None, false),
        ],
        "linux/amd64",
        false,
    );
    for (repo, img) in [("apps/os", &os), ("apps/plain", &plain)] {
        rt().block_on(fixtures::push_image(
            &src.client(),
            &Repo::parse(&src.host, repo).expect("repository"),
            img,
            Some("1"),
        ));
    }
    let layer_bytes: u64 = [&os, &plain]
        .iter()
        .flat_map(|i| i.layers.iter())
        .map(|l| l.bytes.len() as u64)
        .sum();

    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    ok(&airlock(
        dir,
        &["key", "generate", "--out", "k", "--password-file", "pw"],
    ));
    common::build_vuln_db(dir);
    // A scan policy whose gate never fails: the scan reads every layer either way.
    std::fs::write(
        dir.join("p.yaml"),
        format!(
            "name: p\nimages:\n  - ref: {h}/apps/os:1\n  - ref: {h}/apps/plain:1\nscan:\n  db: vuln.db\n  unknown_os: warn\n",
            h = src.host
        ),
    )
    .expect("spec");
    let mut lock_args = vec!["lock".to_string(), "p.yaml".into()];
    lock_args.extend(src.cli_flags());
    let lock_args: Vec<&str> = lock_args.iter().map(String::as_str).collect();
    ok(&airlock(dir, &lock_args));

    // Collect, in process, into an empty cache and then again from the warm one.
    let (lock, lock_digest) = Lock::load(&dir.join("p.lock")).expect("lock");
    let key = SigningKey::load(&dir.join("k.key"), b"pw").expect("signing key");
    let registry = src.client();
    let collect_to = |out: &str| {
        let opts = common::collect_options(dir, out, vec![key.clone()]);
        hashed(|| {
            rt().block_on(collect(&lock, &lock_digest, &registry, &opts, &NoProgress))
                .expect("collect")
        })
    };
    let (cold, report) = collect_to("b.tar.zst");
    assert_eq!(report.scans.len(), 2, "both images were scanned");
    let (warm, _) = collect_to("warm.tar.zst");
    let bundle = dir.join("b.tar.zst");
    assert_eq!(
        std::fs::read(&bundle).expect("bundle"),
        std::fs::read(dir.join("warm.tar.zst")).expect("bundle"),
        "a warm cache changes nothing in the bundle"
    );
    let blobs = read_table_of_contents(&bundle)
        .expect("bundle")
        .manifest
        .total_blob_bytes();
    let compressed = std::fs::metadata(&bundle).expect("stat").len();
    // Every layer is checked once: cold, as it downloads (the scan and the writer trust the
    // download's check); warm, as the scan reads it from the cache (the writer trusts the
    // scan's). Hashing the layers twice would pass `blobs + layer_bytes`.
    for (run, n) in [("cold", cold), ("warm", warm)] {
        assert!(
            n >= layer_bytes,
            "{run} collect hashed {n} of {layer_bytes}"
        );
        assert!(
            n < blobs + layer_bytes / 2,
            "{run} collect hashed {n}: blobs {blobs}, layers {layer_bytes}"
        );
    }

    // Verify, from the file and from its split parts.
    parts::split(&bundle, &dir.join("parts"), 64 * 1024, &[key], &NoProgress).expect("split");
    let policy = SignaturePolicy {
        trusted: vec![PublicKey::load(&dir.join("k.pub")).expect("key")],
        require: 1,
        allow_unsigned: false,
    };
    let verify = |path: &Path| {
        let source = BundleSource::resolve(path).expect("source");
        let mut v = VerifyOnly {
            path,
            policy: &policy,
            status: None,
        };
        hashed(|| source.read(&policy, &mut v, &NoProgress).expect("verifies")).0
    };
    let from_file = verify(&bundle);
    let from_parts = verify(&dir.join("parts"));
    // Every blob byte is checked against its digest; nothing else is hashed on either path
    // (parts once added their compressed bytes twice: per part and whole).
    assert!(
        from_file >= blobs,
        "{from_file} bytes hashed for {blobs} blob bytes"
    );
    assert!(
        from_file < blobs + compressed / 2,
        "{from_file} vs {blobs} + {compressed}"
    );
    assert_eq!(from_parts, from_file);

    // Scan of the bundle: its layers are checked as they are spooled, not again by the scan.
    let req = ScanRequest {
        scanner: Default::default(),
        input: ScanInput::Bundle(bundle.clone()),
        platforms: Vec::new(),
        db: Some(dir.join("vuln.db")),
        policy: Default::default(),
        policy_dir: dir.to_owned(),
        cache: dir.join("scan-cache"),
        spool_parent: dir.to_owned(),
        now: std::time::SystemTime::now(),
    };
    let (scanned, outcome) = hashed(|| {
        rt().block_on(airlock::scan::run::run(&req, &registry, &NoProgress))
            .expect("scan")
    });
    assert_eq!(outcome.images.len(), 2, "both images were scanned");
    assert!(scanned >= blobs, "scan hashed {scanned} of {blobs}");
    assert!(
        scanned < blobs + layer_bytes / 2,
        "scan hashed {scanned}: blobs {blobs}, layers {layer_bytes}"
    );

    // Import: each blob is checked once as the bundle is read.
    let opts = common::import_options(&dst.host, policy.clone());
    let target = Arc::new(dst.client());
    let (imported, _) = hashed(|| {
        rt().block_on(airlock::import::import(&bundle, target, &opts, &NoProgress))
            .expect("import")
    });
    assert!(imported >= blobs, "import hashed {imported} of {blobs}");
    assert!(
        imported < blobs + compressed / 2,
        "import hashed {imported}: blobs {blobs}, compressed {compressed}"
    );
}
