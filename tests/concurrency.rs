//! Concurrency (issue #12): lock, collect and import run many requests at once under one
//! adaptive limit. What they produce must not depend on the order answers arrive in, and a
//! registry that answers 429/503 under load is backed off from, not hammered into failure.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;

use airlock::registry::Repo;
use common::fixtures;
use common::proxy::{Fault, Proxy};
use common::{airlock, airlock_env, ok, rt, sha256_file, TestRegistry};

/// Pushes 12 single-platform images (every third signed) and 3 two-platform indexes (one
/// signed) to `src`; returns the spec text naming them through `host`.
fn push_set(src: &TestRegistry, host: &str) -> String {
    let reg = src.client();
    let mut spec = String::from("name: many\nimages:\n");
    rt().block_on(async {
        for i in 0..12u64 {
            let img = fixtures::small_image(100 + i, 2048);
            let repo = Repo::parse(&src.host, &format!("many/img{i:02}")).expect("repository");
            fixtures::push_image(&reg, &repo, &img, Some("1")).await;
            if i % 3 == 0 {
                fixtures::push_signature(&reg, &repo, &img.manifest.digest(), None).await;
            }
            spec.push_str(&format!("  - ref: {host}/many/img{i:02}:1\n"));
        }
        for i in 0..3u64 {
            let images: Vec<_> = ["linux/amd64", "linux/arm64/v8"]
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    fixtures::image(
                        vec![fixtures::layer(
                            200 + 2 * i + k as u64,
                            2048,
                            fixtures::Compression::Gzip,
                            false,
                        )],
                        p,
                        false,
                    )
                })
                .collect();
            let idx = fixtures::index(&images, false);
            let repo = Repo::parse(&src.host, &format!("many/multi{i}")).expect("repository");
            fixtures::push_index(&reg, &repo, &images, &idx, "1").await;
            if i == 0 {
                fixtures::push_signature(&reg, &repo, &idx.digest(), None).await;
            }
            spec.push_str(&format!("  - ref: {host}/many/multi{i}:1\n"));
        }
    });
    spec
}

/// A fixed creation time, so two runs can be compared byte for byte.
const EPOCH: &[(&str, &str)] = &[("SOURCE_DATE_EPOCH", "1700000000")];

/// `airlock lock` then `collect` of `spec` in `dir` through `host`, with `--max-requests`.
fn lock_and_collect(dir: &Path, spec: &str, host: &str, max_requests: &str) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("many.yaml"), spec).expect("spec");
    ok(&airlock_env(
        dir,
        &[
            "lock",
            "many.yaml",
            "--insecure-registry",
            host,
            "--max-requests",
            max_requests,
        ],
        EPOCH,
    ));
    ok(&airlock_env(
        dir,
        &collect_args(host, &["--max-requests", max_requests]),
        EPOCH,
    ));
}

/// `airlock collect` of `many.lock` into `many.tar.zst` through `host`, plus `extra`.
fn collect_args<'a>(host: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "collect",
        "many.lock",
        "-o",
        "many.tar.zst",
        "--cache",
        "cache",
        "--insecure-registry",
        host,
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn lock_and_bundle_bytes_do_not_depend_on_concurrency_or_answer_order() {
    let src = TestRegistry::start();
    // Answers held 0-40 ms each, so concurrent requests finish out of order.
    let proxy = Proxy::start(&src.host, Fault::Jitter { max_ms: 40 });
    let spec = push_set(&src, &proxy.host);
    let work = tempfile::tempdir().expect("tmp");
    let one = work.path().join("one");
    let many = work.path().join("many");
    lock_and_collect(&one, &spec, &proxy.host, "1");
    let sequential_peak = proxy.peak_in_flight.swap(0, Ordering::SeqCst);
    lock_and_collect(&many, &spec, &proxy.host, "32");
    let concurrent_peak = proxy.peak_in_flight.load(Ordering::SeqCst);
    assert_eq!(
        sequential_peak, 1,
        "--max-requests 1 sends one request at a time"
    );
    assert!(
        concurrent_peak > 1,
        "the concurrent run never had two requests in flight"
    );
    let lock_one = std::fs::read(one.join("many.lock")).expect("lock");
    let lock_many = std::fs::read(many.join("many.lock")).expect("lock");
    assert_eq!(
        String::from_utf8_lossy(&lock_one),
        String::from_utf8_lossy(&lock_many),
        "the lock depends on concurrency"
    );
    let text = String::from_utf8_lossy(&lock_one);
    assert_eq!(text.matches("\"source\":").count(), 15, "{text}");
    assert_eq!(text.matches(".sig\"").count(), 5, "{text}");
    assert_eq!(
        sha256_file(&one.join("many.tar.zst")),
        sha256_file(&many.join("many.tar.zst")),
        "the bundle depends on concurrency"
    );
}

#[test]
fn an_overloaded_registry_is_backed_off_from_and_the_run_completes() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    // Both registries take at most 3 requests at once and answer the rest 429 or 503
    // (some 429s with Retry-After: 1).
    let src_proxy = Proxy::start(&src.host, Fault::Overload { max_in_flight: 3 });
    let dst_proxy = Proxy::start(&dst.host, Fault::Overload { max_in_flight: 3 });
    let spec = push_set(&src, &src_proxy.host);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    lock_and_collect(dir, &spec, &src_proxy.host, "32");
    let target = format!("{}/mirror", dst_proxy.host);
    let out = airlock(
        dir,
        &[
            "import",
            "many.tar.zst",
            "--to",
            &target,
            "--insecure-registry",
            &dst_proxy.host,
            "--allow-unsigned",
        ],
    );
    ok(&out);
    for (name, proxy) in [("source", &src_proxy), ("target", &dst_proxy)] {
        let rejected = proxy.rejected.load(Ordering::SeqCst);
        let seen = proxy.requests.load(Ordering::SeqCst);
        let answered = seen - rejected;
        eprintln!("{name}: {seen} requests, {rejected} answered 429/503");
        // The fault was met: the limit starts above 3, so the first round overloads.
        assert!(rejected > 0, "{name}: the registry was never overloaded");
        // Backing off keeps refusals a small share; holding 32 in flight against a limit of 3
        // would have most requests refused (and run out of retries).
        assert!(
            rejected * 4 < answered,
            "{name}: {rejected} refused against {answered} answered: the limit did not back off"
        );
    }
    // Everything arrived: every image is tagged at the target.
    for i in 0..12 {
        let repo = format!("mirror/many/img{i:02}");
        assert!(
            dst.tags(&repo).contains(&"1".to_string()),
            "{repo} untagged"
        );
    }
}

/// A blob that answers slowly holds only its own download slot: with `--jobs 2` and the
/// first layer in pack order stalled at the proxy, every other blob is still requested (and
/// handed to the writer once the stalled one is), and the bundle is written when it is let
/// through.
#[test]
fn a_slow_blob_at_the_head_of_the_pack_order_does_not_hold_back_the_others() {
    let src = TestRegistry::start();
    let plain = Proxy::start(&src.host, Fault::None);
    let spec = push_set(&src, &plain.host);
    let work = tempfile::tempdir().expect("tmp");
    let first = work.path().join("first");
    lock_and_collect(&first, &spec, &plain.host, "32");
    let toc = airlock::bundle::reader::read_table_of_contents(&first.join("many.tar.zst"))
        .expect("bundle");
    let layers: Vec<String> = toc
        .manifest
        .blobs
        .iter()
        .filter(|b| b.media_type.contains("layer"))
        .map(|b| b.digest.to_string())
        .collect();
    assert!(layers.len() > 8, "{layers:?}");
    let head = layers[0].clone();

    // The same set through a proxy that holds every request for the head layer. The fixtures
    // are deterministic, so the pack order is the same.
    let stall = Proxy::start(
        &src.host,
        Fault::StallAfter {
            n: 0,
            needle: head.clone(),
        },
    );
    let spec = spec.replace(&plain.host, &stall.host);
    let dir = work.path().join("stalled");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("many.yaml"), &spec).expect("spec");
    ok(&airlock_env(
        &dir,
        &["lock", "many.yaml", "--insecure-registry", &stall.host],
        EPOCH,
    ));
    let mut child = common::airlock_spawn(&dir, &collect_args(&stall.host, &["--jobs", "2"]));
    let others_requested = || {
        layers[1..]
            .iter()
            .all(|d| stall.count(&format!("/blobs/{d}")) > 0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !others_requested() && std::time::Instant::now() < deadline {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "collect ended while the head layer was held"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let all_others = others_requested();
    let head_requested = stall.count(&format!("/blobs/{head}")) > 0;
    stall.release();
    let out = child.wait_with_output().expect("collect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(head_requested, "the head layer was never requested");
    assert!(
        all_others,
        "with the head layer held, not every other layer was requested"
    );
    assert!(dir.join("many.tar.zst").is_file());
}

/// An import streams its large blobs into the target at once: each is read from the bundle by
/// offset on its own, so with every streamed upload (`PATCH`) held at the target, a second one
/// still starts. Read in bundle order, the second would wait for the first's body, which is
/// larger than the socket buffers between them hold.
#[test]
fn an_import_streams_large_blobs_at_once() {
    const MIB: usize = 1 << 20;
    let src = TestRegistry::start();
    let img = fixtures::image(
        (0..3u64)
            .map(|i| {
                let size = (32 + i as usize) * MIB;
                fixtures::layer(300 + i, size, fixtures::Compression::None, false)
            })
            .collect(),
        "linux/amd64",
        false,
    );
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(&src.host, "big/app").expect("repository"),
        &img,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let spec = format!("name: big\nimages:\n  - ref: {}/big/app:1\n", src.host);
    lock_and_collect(dir, &spec, &src.host, "8");

    let dst = TestRegistry::start();
    let stall = Proxy::start(
        &dst.host,
        Fault::StallAfter {
            n: 0,
            needle: "PATCH".into(),
        },
    );
    let to = format!("{}/m", stall.host);
    let mut child = common::airlock_spawn(
        dir,
        &[
            "import",
            "many.tar.zst",
            "--to",
            &to,
            "--insecure-registry",
            &stall.host,
            "--allow-unsigned",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while stall.count("PATCH") < 2 && std::time::Instant::now() < deadline {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "import ended while its uploads were held"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = stall.count("PATCH");
    stall.release();
    let out = child.wait_with_output().expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started >= 2,
        "{started} large blob upload(s) started while the first was held"
    );
    // What arrived, seen by another client: the manifest byte for byte, every layer.
    assert_eq!(dst.skopeo_raw("m/big/app:1"), img.manifest.bytes.to_vec());
    let repo = Repo::parse(&dst.host, "m/big/app").expect("repository");
    for layer in &img.layers {
        assert!(rt()
            .block_on(dst.client().blob_exists(&repo, &layer.digest()))
            .expect("HEAD"));
    }
}
