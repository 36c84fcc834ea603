//! Every byte is hashed once when a bundle is read, from the one file or from its split parts
//! (issue 12). Counted with `airlock::oci::digest::bytes_hashed`, the bytes fed to every
//! `Hasher` of this process: this file holds one test, so nothing else hashes meanwhile.

mod common;

use common::fixtures::{self, Compression};
use common::{airlock, ok, rt, TestRegistry};

use airlock::bundle::parts;
use airlock::bundle::reader::VerifyOnly;
use airlock::bundle::signature::SignaturePolicy;
use airlock::bundle::BundleSource;
use airlock::oci::digest::bytes_hashed;
use airlock::progress::NoProgress;
use airlock::registry::Repo;
use airlock::trust::keys::{PublicKey, SigningKey};

#[test]
fn reading_parts_hashes_each_byte_once_as_reading_the_file_does() {
    let src = TestRegistry::start();
    let img = fixtures::image(
        vec![
            fixtures::layer(1, 300_000, Compression::Gzip, false),
            fixtures::layer(2, 200_000, Compression::Gzip, false),
        ],
        "linux/amd64",
        false,
    );
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(&src.host, "apps/a").expect("repository"),
        &img,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    ok(&airlock(
        dir,
        &["key", "generate", "--out", "k", "--password-file", "pw"],
    ));
    std::fs::write(
        dir.join("p.yaml"),
        format!("name: p\nimages:\n  - ref: {}/apps/a:1\n", src.host),
    )
    .expect("spec");
    let run = |args: &[&str]| {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(src.cli_flags());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(&airlock(dir, &a))
    };
    run(&["lock", "p.yaml"]);
    run(&[
        "collect",
        "p.lock",
        "-o",
        "b.tar.zst",
        "--sign",
        "k.key",
        "--password-file",
        "pw",
        "--cache",
        "cache",
    ]);
    let bundle = dir.join("b.tar.zst");
    let key = SigningKey::load(&dir.join("k.key"), b"pw").expect("signing key");
    parts::split(&bundle, &dir.join("parts"), 64 * 1024, &[key], &NoProgress).expect("split");

    let policy = SignaturePolicy {
        trusted: vec![PublicKey::load(&dir.join("k.pub")).expect("key")],
        require: 1,
        allow_unsigned: false,
    };
    let hashed = |path: &std::path::Path| {
        let source = BundleSource::resolve(path).expect("source");
        let before = bytes_hashed();
        let mut v = VerifyOnly {
            path,
            policy: &policy,
            status: None,
        };
        let summary = source.read(&policy, &mut v, &NoProgress).expect("verifies");
        (
            bytes_hashed() - before,
            summary.contents.manifest.total_blob_bytes(),
        )
    };
    let (from_file, blobs) = hashed(&bundle);
    let (from_parts, _) = hashed(&dir.join("parts"));
    let compressed = std::fs::metadata(&bundle).expect("stat").len();
    // Every blob byte is checked against its digest; nothing else is hashed on either path
    // (before this change parts added their compressed bytes twice: per part and whole).
    assert!(
        from_file >= blobs,
        "{from_file} bytes hashed for {blobs} blob bytes"
    );
    assert!(
        from_file < blobs + compressed / 2,
        "{from_file} vs {blobs} + {compressed}"
    );
    assert_eq!(from_parts, from_file);
}
