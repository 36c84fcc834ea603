//! Resume and disk (issue #6): a collect killed mid-download does not download completed blobs
//! again; a collect that cannot fit its output stops before the first byte with the figures; an
//! import killed mid-push resumes, and the ledger records only the import that completed; an
//! import uploads only the blobs the target lacks, large streamed ones included.

mod common;

use common::rt;

use std::path::Path;

use airlock::registry::Repo;
use common::fixtures::{self, Blob, Compression, Image};
use common::proxy::{Fault, Proxy};
use common::{airlock, fails_with, ok, spawn_airlock, wait_for, TestRegistry, Tmpfs};

/// An image of `layers` incompressible gzip layers of distinct sizes, pushed to `apps/a:1`.
fn image_with(src: &TestRegistry, layers: &[usize]) -> Image {
    let img = fixtures::image(
        layers
            .iter()
            .enumerate()
            .map(|(i, size)| fixtures::layer(100 + i as u64, *size, Compression::Gzip, false))
            .collect(),
        "linux/amd64",
        false,
    );
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(&src.host, "apps/a").expect("repository"),
        &img,
        Some("1"),
    ));
    img
}

/// `airlock import i.tar.zst --to TO` through the plain-HTTP proxy at `proxy`, then `extra`.
fn import_via<'a>(to: &'a str, proxy: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "import",
        "i.tar.zst",
        "--to",
        to,
        "--insecure-registry",
        proxy,
    ];
    a.extend_from_slice(extra);
    a
}

fn cached(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("sha256"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.contains('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn collect_killed_mid_download_does_not_download_completed_blobs_again() {
    let src = TestRegistry::start();
    let img = image_with(&src, &[200_000, 210_000, 220_000, 230_000]);
    // Every blob GET goes through the proxy; after the config and two layers, GETs hang.
    let blob_get = "GET /v2/apps/a/blobs/sha256:".to_string();
    let proxy = Proxy::start(
        &src.host,
        Fault::StallAfter {
            n: 3,
            needle: blob_get.clone(),
        },
    );
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(
        dir.join("r.yaml"),
        format!(
            "name: r\nimages:\n  - ref: {}/apps/a:1@{}\n",
            proxy.host,
            img.manifest.digest()
        ),
    )
    .expect("spec");
    let args = [
        "collect",
        "r.yaml",
        "-o",
        "r.tar.zst",
        "--cache",
        "c",
        "--jobs",
        "1",
        "--insecure-registry",
        &proxy.host,
    ];
    let mut child = spawn_airlock(dir, &args, None);
    wait_for("three blobs in the cache", || {
        cached(&dir.join("c")).len() == 3
    });
    wait_for("the fourth blob GET", || proxy.count(&blob_get) >= 4);
    child.kill().expect("kill -9");
    let _ = child.wait();
    let done = cached(&dir.join("c"));
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(
        !dir.join("r.tar.zst").exists(),
        "no bundle from the killed run"
    );

    proxy.release();
    let out = airlock(dir, &[&args[..], &["--format", "json"]].concat());
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    ok(&airlock(dir, &["verify", "r.tar.zst", "--allow-unsigned"]));
    let all: Vec<airlock::oci::Digest> = std::iter::once(&img.config)
        .chain(img.layers.iter())
        .map(|b| b.digest())
        .collect();
    for d in &all {
        let gets = proxy.count(&format!("GET /v2/apps/a/blobs/{d}"));
        if done.contains(&d.hex().to_string()) {
            assert_eq!(
                gets, 1,
                "{d} was complete in the cache but downloaded again"
            );
        } else {
            assert!((1..=2).contains(&gets), "{d}: {gets} GETs");
        }
    }
    let total: u64 = std::iter::once(&img.config)
        .chain(img.layers.iter())
        .map(|b| b.bytes.len() as u64)
        .sum();
    let downloaded = report["downloaded_bytes"]
        .as_u64()
        .expect("downloaded_bytes");
    assert!(
        downloaded < total,
        "{downloaded} of {total} downloaded again"
    );
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn collect_refuses_before_downloading_when_the_output_lacks_room() {
    let src = TestRegistry::start();
    let img = image_with(&src, &[700_000, 710_000]);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let Some(_small) = Tmpfs::mount(&dir.join("small"), "1m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    std::fs::write(
        dir.join("d.yaml"),
        format!(
            "name: d\nimages:\n  - ref: {}/apps/a:1@{}\n",
            src.host,
            img.manifest.digest()
        ),
    )
    .expect("spec");
    let mut args = vec!["collect", "d.yaml", "-o", "small/d.tar.zst", "--cache", "c"];
    let flags = src.cli_flags();
    args.extend(flags.iter().map(String::as_str));
    let out = airlock(dir, &args);
    let err = fails_with(&out, "not enough space in `small`");
    let needed: u64 = err
        .split("the bundle needs ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("needed bytes in the message");
    let content: u64 = std::iter::once(&img.config)
        .chain(img.layers.iter())
        .map(|b| b.bytes.len() as u64)
        .sum();
    assert!(
        (content..content + 128 * 1024).contains(&needed),
        "{needed} for {content} bytes of content"
    );
    let free = airlock::disk::available_bytes(&dir.join("small")).expect("statvfs");
    assert!(err.contains(&format!("only {free} bytes")), "{err}");
    assert!(
        cached(&dir.join("c")).is_empty(),
        "blobs were downloaded before the check"
    );
    let left: Vec<_> = std::fs::read_dir(dir.join("small")).expect("ls").collect();
    assert!(
        left.is_empty(),
        "files left on the full filesystem: {left:?}"
    );

    // Splitting onto media too small: refused before a part is written.
    let mut args = vec!["collect", "d.yaml", "-o", "d.tar.zst", "--cache", "c"];
    args.extend(flags.iter().map(String::as_str));
    ok(&airlock(dir, &args));
    let out = airlock(
        dir,
        &[
            "split",
            "d.tar.zst",
            "--size",
            "100KiB",
            "--out-dir",
            "small",
        ],
    );
    let err = fails_with(
        &out,
        "not enough space in `small`: splitting the bundle needs",
    );
    assert!(err.contains(&format!("only {free} bytes")), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.join("small")).expect("ls").collect();
    assert!(
        left.is_empty(),
        "parts left on the full filesystem: {left:?}"
    );
}

#[test]
fn import_killed_mid_push_resumes_and_the_ledger_records_only_the_completed_one() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let img = image_with(&src, &[300_000, 310_000, 320_000]);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    common::collect_with_ledger(&src, dir, "i", &[(&img, "apps/a:1")], "ledger");

    // Uploads finish with a PUT; the second one hangs until airlock is killed.
    let proxy = Proxy::start(
        &dst.host,
        Fault::StallAfter {
            n: 1,
            needle: "PUT /v2/".into(),
        },
    );
    let to = format!("{}/m", proxy.host);
    let ledger = [
        "--ledger",
        "ledger",
        "--ledger-password-file",
        "pw",
        "--allow-unsigned",
    ];
    let mut a = import_via(&to, &proxy.host, &["--jobs", "1"]);
    a.extend_from_slice(&ledger);
    let mut child = spawn_airlock(dir, &a, None);
    wait_for("a stalled upload", || proxy.count("PUT /v2/") >= 2);
    child.kill().expect("kill -9");
    let _ = child.wait();
    let entries = || {
        std::fs::read_to_string(dir.join("ledger/entries.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(
        entries().is_empty(),
        "the killed import left a ledger entry"
    );
    assert!(dst.tags("m/apps/a").is_empty(), "tagged by a killed import");
    proxy.release();

    let to = format!("{}/m", dst.host);
    let mut a = vec!["import", "i.tar.zst", "--to", &to, "--format", "json"];
    a.extend_from_slice(&ledger);
    let dflags = dst.cli_flags();
    a.extend(dflags.iter().map(String::as_str));
    let report: serde_json::Value = serde_json::from_str(&ok(&airlock(dir, &a))).expect("json");
    assert!(
        report["blobs_skipped"].as_u64().expect("skipped") >= 1,
        "{report}"
    );
    assert_eq!(dst.skopeo_raw("m/apps/a:1"), img.manifest.bytes);
    let e = entries();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("admitted"), "{}", e[0]);
}

/// The plan stage drops the blobs the target has and passes on those it lacks, large ones
/// (streamed in chunks) included: a target that holds the first and last of three large
/// layers is sent only the middle one, in one streamed `PATCH`, and the image lands whole.
#[test]
fn an_import_uploads_only_the_large_blobs_the_target_lacks() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    // Each over the 8 MiB a blob is read whole up to: every layer streams in chunks.
    let img = image_with(&src, &[9_000_000, 9_500_000, 10_000_000]);
    let present = [&img.layers[0], &img.layers[2]];
    let target = Repo::parse(&dst.host, "m/apps/a").expect("repository");
    let client = dst.client();
    rt().block_on(async {
        for b in present {
            client
                .push_blob_bytes(&target, &b.digest(), b.bytes.clone())
                .await
                .expect("seed the target");
        }
    });
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    common::collect_with_ledger(&src, dir, "i", &[(&img, "apps/a:1")], "ledger");

    let proxy = Proxy::start(&dst.host, Fault::None);
    let to = format!("{}/m", proxy.host);
    let import = import_via(&to, &proxy.host, &["--allow-unsigned", "--format", "json"]);
    let out = ok(&airlock(dir, &import));
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["blobs_skipped"], 2, "{report}");
    assert_eq!(
        report["blobs_pushed"], 2,
        "the config and the middle layer: {report}"
    );
    assert_eq!(
        report["bytes_pushed"].as_u64(),
        Some((img.config.bytes.len() + img.layers[1].bytes.len()) as u64),
        "{report}"
    );
    let log = proxy.log.lock().expect("log").clone();
    let completed = |b: &Blob| {
        log.iter()
            .filter(|l| l.starts_with("PUT ") && l.contains(b.digest().hex()))
            .count()
    };
    assert_eq!(completed(&img.layers[1]), 1, "{log:?}");
    for b in present {
        assert_eq!(completed(b), 0, "uploaded a blob the target had: {log:?}");
    }
    let patches = log.iter().filter(|l| l.starts_with("PATCH ")).count();
    assert_eq!(
        patches, 1,
        "one streamed upload, of the missing layer: {log:?}"
    );
    assert_eq!(dst.skopeo_raw("m/apps/a:1"), img.manifest.bytes);
    rt().block_on(async {
        for b in std::iter::once(&img.config).chain(&img.layers) {
            assert!(
                client
                    .blob_exists(&target, &b.digest())
                    .await
                    .expect("head"),
                "{} missing at the target",
                b.digest()
            );
        }
    });
}
