//! The mirror path end to end against real registries: spec → lock → collect → verify → import,
//! checked with skopeo as an independent client.

mod common;

use std::path::Path;

use airlock::registry::Repo;
use common::fixtures::{self, Compression, Image};
use common::{airlock, ok, TestRegistry};

/// Everything pushed to the source registry, for later comparison.
struct Source {
    single: Image,
    multi: Vec<Image>,
    multi_index: fixtures::Blob,
    docker: Image,
    docker_list_images: Vec<Image>,
    docker_list: fixtures::Blob,
    zstd: Image,
    shared_a: Image,
    shared_b: Image,
    oci_chart: airlock::oci::Digest,
    single_sig: Image,
    zstd_referrers: (Image, fixtures::Blob),
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt")
}

/// Builds the fixture set in `reg`: single-arch OCI, multi-arch index, Docker schema2 image and
/// manifest list, zstd layer, two images sharing a layer, an OCI Helm chart.
fn populate(reg: &TestRegistry) -> Source {
    let client = reg.client();
    let single = fixtures::image(
        vec![
            fixtures::layer(1, 3000, Compression::Gzip, false),
            fixtures::layer(2, 70_000, Compression::Gzip, false),
        ],
        "linux/amd64",
        false,
    );
    let multi = vec![
        fixtures::small_image(10, 5000),
        fixtures::image(
            vec![fixtures::layer(11, 6000, Compression::Gzip, false)],
            "linux/arm64/v8",
            false,
        ),
    ];
    let multi_index = fixtures::index(&multi, false);
    let docker = fixtures::image(
        vec![fixtures::layer(20, 4000, Compression::Gzip, true)],
        "linux/amd64",
        true,
    );
    let docker_list_images = vec![
        fixtures::image(
            vec![fixtures::layer(21, 4100, Compression::Gzip, true)],
            "linux/amd64",
            true,
        ),
        fixtures::image(
            vec![fixtures::layer(22, 4200, Compression::Gzip, true)],
            "linux/arm64/v8",
            true,
        ),
    ];
    let docker_list = fixtures::index(&docker_list_images, true);
    let zstd = fixtures::image(
        vec![fixtures::layer(30, 20_000, Compression::Zstd, false)],
        "linux/amd64",
        false,
    );
    let shared_layer = fixtures::layer(40, 50_000, Compression::Gzip, false);
    let shared_a = fixtures::image(
        vec![
            shared_layer.clone(),
            fixtures::layer(41, 100, Compression::None, false),
        ],
        "linux/amd64",
        false,
    );
    let shared_b = fixtures::image(
        vec![
            shared_layer,
            fixtures::layer(42, 200, Compression::Gzip, false),
        ],
        "linux/amd64",
        false,
    );
    let (oci_chart, single_sig, zstd_referrers) = rt().block_on(async {
        let h = &reg.host;
        fixtures::push_image(
            &client,
            &Repo::parse(h, "apps/single").expect("repository"),
            &single,
            Some("1.0"),
        )
        .await;
        fixtures::push_index(
            &client,
            &Repo::parse(h, "apps/multi").expect("repository"),
            &multi,
            &multi_index,
            "2.0",
        )
        .await;
        fixtures::push_image(
            &client,
            &Repo::parse(h, "legacy/docker").expect("repository"),
            &docker,
            Some("v1"),
        )
        .await;
        fixtures::push_index(
            &client,
            &Repo::parse(h, "legacy/list").expect("repository"),
            &docker_list_images,
            &docker_list,
            "v2",
        )
        .await;
        fixtures::push_image(
            &client,
            &Repo::parse(h, "apps/zstd").expect("repository"),
            &zstd,
            Some("1"),
        )
        .await;
        fixtures::push_image(
            &client,
            &Repo::parse(h, "apps/shared-a").expect("repository"),
            &shared_a,
            Some("1"),
        )
        .await;
        fixtures::push_image(
            &client,
            &Repo::parse(h, "apps/shared-b").expect("repository"),
            &shared_b,
            Some("1"),
        )
        .await;
        let single_repo = Repo::parse(h, "apps/single").expect("repository");
        let sig =
            fixtures::push_signature(&client, &single_repo, &single.manifest.digest(), None).await;
        let refs = fixtures::push_referrer(
            &client,
            &Repo::parse(h, "apps/zstd").expect("repository"),
            &zstd.manifest,
        )
        .await;
        let chart = fixtures::push_oci_chart(
            &client,
            &Repo::parse(h, "charts/web").expect("repository"),
            "web",
            "1.2.3",
        )
        .await;
        (chart, sig, refs)
    });
    Source {
        single,
        multi,
        multi_index,
        docker,
        docker_list_images,
        docker_list,
        zstd,
        shared_a,
        shared_b,
        oci_chart,
        single_sig,
        zstd_referrers,
    }
}

fn write_spec(dir: &Path, src: &TestRegistry, chart_repo: &str) -> std::path::PathBuf {
    let h = &src.host;
    let spec = format!(
        "name: platform\nimages:\n  - ref: {h}/apps/single:1.0\n  - ref: {h}/apps/multi:2.0\n  - ref: {h}/legacy/docker:v1\n  - ref: {h}/legacy/list:v2\n    platforms: [linux/arm64]\n  - ref: {h}/apps/zstd:1\n  - ref: {h}/apps/shared-a:1\n  - ref: {h}/apps/shared-b:1\ncharts:\n  - ref: oci://{h}/charts/web:1.2.3\n  - repo: {chart_repo}/charts\n    name: podinfo\n    version: 6.4.0\n"
    );
    let p = dir.join("platform.yaml");
    std::fs::write(&p, spec).expect("spec");
    p
}

fn args<'a>(base: &[&'a str], extra: &'a [String]) -> Vec<&'a str> {
    let mut v: Vec<&str> = base.to_vec();
    v.extend(extra.iter().map(String::as_str));
    v
}

#[test]
fn mirror_end_to_end_byte_exact_and_idempotent() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = populate(&src);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let charts_dir = dir.join("www/charts");
    let chart_digest = fixtures::write_chart_repo(&charts_dir, "podinfo", "6.4.0");
    let www = common::FileServer::serve(dir.join("www"));
    let spec = write_spec(dir, &src, &www.url);
    let sflags = src.cli_flags();
    std::fs::write(dir.join("pw"), "correct horse\n").expect("pw");
    ok(&airlock(
        dir,
        &[
            "key",
            "generate",
            "--output",
            "keys/release",
            "--password-file",
            "pw",
        ],
    ));
    ok(&airlock(
        dir,
        &[
            "key",
            "generate",
            "--output",
            "keys/other",
            "--password-file",
            "pw",
        ],
    ));
    common::init_ledger(dir, "test.invalid/airlock");

    // lock
    let out = airlock(dir, &args(&["lock", "platform.yaml"], &sflags));
    let stdout = ok(&out);
    assert!(stdout.contains("wrote"), "{stdout}");
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("platform.lock")).expect("lock"))
            .expect("json");
    assert_eq!(lock["images"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        lock["images"][1]["digest"],
        source.multi_index.digest().to_string()
    );
    let list_children = lock["images"][3]["children"].as_array().expect("children");
    assert_eq!(list_children.len(), 2);
    assert_eq!(list_children[0]["selected"], false, "amd64 not asked for");
    assert_eq!(list_children[1]["selected"], true);
    assert_eq!(list_children[1]["platform"], "linux/arm64/v8");
    assert_eq!(lock["charts"][0]["digest"], source.oci_chart.to_string());
    let sig_tag = format!("sha256-{}.sig", source.single.manifest.digest().hex());
    assert_eq!(lock["images"][0]["attachments"][0]["tag"], sig_tag);
    assert_eq!(
        lock["images"][0]["attachments"][0]["digest"],
        source.single_sig.manifest.digest().to_string()
    );
    let ref_tag = format!("sha256-{}", source.zstd.manifest.digest().hex());
    assert_eq!(lock["images"][4]["attachments"][0]["tag"], ref_tag);
    assert_eq!(
        lock["images"][4]["attachments"][0]["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(lock["charts"][1]["sha256"], chart_digest.to_string());
    assert!(lock["charts"][1]["url"]
        .as_str()
        .expect("url")
        .ends_with("/charts/podinfo-6.4.0.tgz"));

    // re-lock: unchanged, exit 0, file untouched
    let before = std::fs::read(dir.join("platform.lock")).expect("lock");
    let out = airlock(dir, &args(&["lock", "platform.yaml", "--check"], &sflags));
    ok(&out);
    assert_eq!(
        std::fs::read(dir.join("platform.lock")).expect("lock"),
        before
    );

    // collect twice: byte-identical bundles
    let out = airlock(
        dir,
        &args(
            &[
                "collect",
                "platform.lock",
                "-o",
                "b1.tar.zst",
                "--cache",
                "c1",
                "--key",
                "keys/release.key",
                "--password-file",
                "pw",
            ],
            &sflags,
        ),
    );
    ok(&out);
    let out = airlock(
        dir,
        &args(
            &[
                "collect",
                "platform.lock",
                "-o",
                "b2.tar.zst",
                "--cache",
                "c2",
                "--key",
                "keys/release.key",
                "--password-file",
                "pw",
            ],
            &sflags,
        ),
    );
    ok(&out);
    assert_eq!(
        common::sha256_file(&dir.join("b1.tar.zst")),
        common::sha256_file(&dir.join("b2.tar.zst")),
        "same lock must give a byte-identical bundle"
    );

    // every blob once, even when shared
    let out = airlock(dir, &["inspect", "b1.tar.zst", "--format", "json"]);
    let inspect: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    let blobs = inspect["manifest"]["blobs"].as_array().expect("blobs");
    let shared = source.shared_a.layers[0].digest().to_string();
    assert_eq!(blobs.iter().filter(|b| b["digest"] == shared).count(), 1);
    let amd64_list_child = source.docker_list_images[0].manifest.digest().to_string();
    assert_eq!(
        blobs
            .iter()
            .filter(|b| b["digest"] == amd64_list_child)
            .count(),
        0,
        "unselected platform carried"
    );

    // verify: the signature gate first
    let out = airlock(
        dir,
        &["verify", "b1.tar.zst", "--trust", "keys/release.pub"],
    );
    assert!(ok(&out).contains("OK"));
    let out = airlock(dir, &["verify", "b1.tar.zst"]);
    common::fails_with(&out, "no trusted key given");
    let out = airlock(dir, &["verify", "b1.tar.zst", "--trust", "keys/other.pub"]);
    common::fails_with(&out, "refused before reading any blob");
    let out = airlock(
        dir,
        &[
            "verify",
            "b1.tar.zst",
            "--trust",
            "keys/release.pub",
            "--trust",
            "keys/other.pub",
            "--require",
            "2",
        ],
    );
    common::fails_with(&out, "refused before reading any blob");

    // import
    let dflags = dst.cli_flags();
    let to = format!("{}/mirror", dst.host);
    // An untrusted signer is refused before any blob is read, recorded as rejected.
    let ledger_flags = [
        "--ledger",
        "ledger",
        "--ledger-password-file",
        "pw",
        "--operator",
        "tester",
    ];
    let out = airlock(
        dir,
        &args(
            &[
                &[
                    "import",
                    "b1.tar.zst",
                    "--to",
                    &to,
                    "--trust",
                    "keys/other.pub",
                ][..],
                &ledger_flags,
            ]
            .concat(),
            &dflags,
        ),
    );
    common::fails_with(&out, "refused before reading any blob");
    assert!(dst.tags("mirror/apps/single").is_empty());
    let out = airlock(
        dir,
        &args(
            &[
                &[
                    "import",
                    "b1.tar.zst",
                    "--to",
                    &to,
                    "--format",
                    "json",
                    "--trust",
                    "keys/release.pub",
                ][..],
                &ledger_flags,
            ]
            .concat(),
            &dflags,
        ),
    );
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(report["signature"]["status"], "verified", "{report}");
    // 9 artifacts from the spec, plus the signature of apps/single and the referrers index of
    // apps/zstd found at lock time.
    assert_eq!(report["artifacts"].as_array().map(Vec::len), Some(11));
    assert!(
        report["blobs_mounted"].as_u64().expect("mounted") >= 1,
        "shared layer mounted: {report}"
    );

    // skopeo reads byte-identical manifests at the same digests
    let check = |repo: &str, tag: &str, img_bytes: &[u8]| {
        let by_tag = dst.skopeo_raw(&format!("mirror/{repo}:{tag}"));
        assert_eq!(by_tag, img_bytes, "{repo}:{tag}");
        let d = airlock::oci::Digest::of(img_bytes);
        assert_eq!(dst.skopeo_raw(&format!("mirror/{repo}@{d}")), img_bytes);
    };
    check("apps/single", "1.0", &source.single.manifest.bytes);
    check("apps/multi", "2.0", &source.multi_index.bytes);
    for child in &source.multi {
        let d = child.manifest.digest();
        assert_eq!(
            dst.skopeo_raw(&format!("mirror/apps/multi@{d}")),
            child.manifest.bytes
        );
    }
    check("legacy/docker", "v1", &source.docker.manifest.bytes);
    check("apps/zstd", "1", &source.zstd.manifest.bytes);
    check("apps/shared-a", "1", &source.shared_a.manifest.bytes);
    check("apps/shared-b", "1", &source.shared_b.manifest.bytes);
    // The platform subset: the original index if the registry took it, else a derived one.
    let list = report["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| {
            a["source"]
                .as_str()
                .is_some_and(|s| s.ends_with("/legacy/list:v2"))
        })
        .expect("legacy/list");
    assert_eq!(list["digest"], source.docker_list.digest().to_string());
    let tagged = dst.skopeo_raw("mirror/legacy/list:v2");
    // The distribution registry refuses an index whose children are not all present, so the
    // derived index of the carried child is what lands and is tagged; the report keeps both.
    let derived = list["derived_digest"]
        .as_str()
        .expect("a derived index was needed");
    assert_eq!(airlock::oci::Digest::of(&tagged).to_string(), derived);
    let v: serde_json::Value = serde_json::from_slice(&tagged).expect("json");
    assert_eq!(v["manifests"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["manifests"][0]["platform"]["architecture"], "arm64");
    assert_eq!(
        v["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    // Signatures and referrers crossed too, at the same tags, byte-exact.
    assert_eq!(
        dst.skopeo_raw(&format!("mirror/apps/single:{sig_tag}")),
        source.single_sig.manifest.bytes
    );
    assert_eq!(
        dst.skopeo_raw(&format!("mirror/apps/zstd:{ref_tag}")),
        source.zstd_referrers.1.bytes
    );
    let referrer = source.zstd_referrers.0.manifest.digest();
    assert_eq!(
        dst.skopeo_raw(&format!("mirror/apps/zstd@{referrer}")),
        source.zstd_referrers.0.manifest.bytes
    );

    // Charts: OCI chart as-is; HTTP chart as an OCI Helm chart under charts/<name>.
    let chart_manifest = dst.skopeo_raw("mirror/charts/web:1.2.3");
    assert_eq!(airlock::oci::Digest::of(&chart_manifest), source.oci_chart);
    let podinfo: serde_json::Value =
        serde_json::from_slice(&dst.skopeo_raw("mirror/charts/podinfo:6.4.0")).expect("json");
    assert_eq!(
        podinfo["config"]["mediaType"],
        "application/vnd.cncf.helm.config.v1+json"
    );
    assert_eq!(
        podinfo["layers"][0]["mediaType"],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    );
    assert_eq!(podinfo["layers"][0]["digest"], chart_digest.to_string());

    // a re-run of a completed import pushes nothing new
    let out = airlock(
        dir,
        &args(
            &[
                "import",
                "b1.tar.zst",
                "--to",
                &to,
                "--format",
                "json",
                "--trust",
                "keys/release.pub",
            ],
            &dflags,
        ),
    );
    let again: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(again["blobs_pushed"], 0, "{again}");
    assert_eq!(again["blobs_mounted"], 0, "{again}");
    assert_eq!(again["manifests_pushed"], 0, "{again}");
    assert_eq!(again["tags_set"], 0, "{again}");

    // The ledger answers where a digest came from, and verifies.
    let single = source.single.manifest.digest().to_string();
    let out = airlock(
        dir,
        &[
            "ledger", "show", "ledger", "--digest", &single, "--format", "json",
        ],
    );
    let shown = ok(&out);
    assert!(
        shown.contains(&format!("{}/apps/single:1.0", src.host)),
        "{shown}"
    );
    assert!(shown.contains("tester"), "{shown}");
    assert!(shown.contains("admitted"), "{shown}");
    // A bundle too broken to read is still recorded, by the sha256 of the file.
    std::fs::write(dir.join("garbage.tar.zst"), b"not a bundle at all").expect("garbage");
    let mut garbage_import = vec![
        "import",
        "garbage.tar.zst",
        "--to",
        &to,
        "--trust",
        "keys/release.pub",
    ];
    garbage_import.extend(ledger_flags);
    let out = airlock(dir, &args(&garbage_import, &dflags));
    common::fails_with(&out, "garbage.tar.zst");
    let out = airlock(dir, &["ledger", "verify", "ledger"]);
    ok(&out);
    let entries = std::fs::read_to_string(dir.join("ledger/entries.jsonl")).expect("entries");
    let lines: Vec<&str> = entries.lines().collect();
    assert_eq!(lines.len(), 3, "rejected, admitted, rejected: {entries}");
    assert!(lines[0].contains("rejected") && lines[0].contains("refused before reading any blob"));
    assert!(lines[1].contains("admitted"));
    let garbage_digest = airlock::oci::Digest::of(b"not a bundle at all").to_string();
    assert!(
        lines[2].contains("rejected") && lines[2].contains(&garbage_digest),
        "{}",
        lines[2]
    );

    // skopeo reads every image from the decompressed bundle as an oci-archive
    let tar = dir.join("b1.tar");
    let st = std::process::Command::new("zstd")
        .args(["-q", "-d", "-f", "b1.tar.zst", "-o", "b1.tar"])
        .current_dir(dir)
        .status()
        .expect("zstd");
    assert!(st.success());
    for (name, want) in [
        (
            format!("{}/apps/single:1.0", src.host),
            source.single.manifest.digest(),
        ),
        (
            format!("{}/apps/zstd:1", src.host),
            source.zstd.manifest.digest(),
        ),
    ] {
        let out = common::skopeo(&[
            "inspect".into(),
            "--raw".into(),
            format!("oci-archive:{}:{name}", tar.display()),
        ]);
        assert!(
            out.status.success(),
            "skopeo oci-archive {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(airlock::oci::Digest::of(&out.stdout), want);
    }
    drop(spec);
}

/// Two registries started with `cfg`, one single-layer image pushed to `repo:1` on the first,
/// and a work dir holding the spec `NAME.yaml` for it.
fn pair_with_one_image(
    cfg: impl Fn() -> common::RegistryConfig,
    repo: &str,
    name: &str,
) -> (TestRegistry, TestRegistry, Image, tempfile::TempDir) {
    let src = TestRegistry::start_with(cfg());
    let dst = TestRegistry::start_with(cfg());
    let img = fixtures::small_image(7, 9000);
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(&src.host, repo).expect("repository"),
        &img,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    std::fs::write(
        work.path().join(format!("{name}.yaml")),
        format!("name: {name}\nimages:\n  - ref: {}/{repo}:1\n", src.host),
    )
    .expect("spec");
    (src, dst, img, work)
}

#[test]
fn tls_and_basic_auth_on_both_sides() {
    let cfg = || common::RegistryConfig {
        tls: true,
        basic_auth: Some(("alice".into(), "s3cret-pw".into())),
        ..Default::default()
    };
    let (src, dst, img, work) = pair_with_one_image(cfg, "secure/app", "s");
    let dir = work.path();

    // No credentials: a clear auth error naming the registry, with a hint.
    let ca = src.tls.as_ref().expect("tls").ca_file.display().to_string();
    let out = airlock(dir, &["lock", "s.yaml", "--ca-file", &ca]);
    let err = common::fails_with(&out, "authentication failed");
    assert!(err.contains(&src.host) && err.contains("--creds"), "{err}");
    // No CA: TLS refuses the throwaway certificate.
    let creds = format!("{}=alice:s3cret-pw", src.host);
    let out = airlock(dir, &["lock", "s.yaml", "--creds", &creds]);
    common::fails_with(&out, &src.host);

    let sflags = src.cli_flags();
    ok(&airlock(dir, &args(&["lock", "s.yaml"], &sflags)));
    let out = airlock(
        dir,
        &args(&["collect", "s.lock", "-o", "s.tar.zst"], &sflags),
    );
    let stdout = ok(&out);
    assert!(!stdout.contains("s3cret-pw"));
    // The target's credentials come from a docker config.json (HOME is the test dir), not
    // from --creds: the way operators already keep them.
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw");
    std::fs::create_dir_all(dir.join(".docker")).expect("dir");
    std::fs::write(
        dir.join(".docker/config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, dst.host),
    )
    .expect("docker config");
    let dst_ca = dst.tls.as_ref().expect("tls").ca_file.display().to_string();
    let to = format!("{}/m", dst.host);
    let out = airlock(
        dir,
        &[
            "import",
            "s.tar.zst",
            "--to",
            &to,
            "--allow-unsigned",
            "--ca-file",
            &dst_ca,
        ],
    );
    let all = format!("{}{}", ok(&out), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("s3cret-pw"), "password leaked: {all}");
    assert_eq!(dst.skopeo_raw("m/secure/app:1"), img.manifest.bytes);
}

#[test]
fn lock_reports_drift_and_collect_refuses_unpinned_specs() {
    let src = TestRegistry::start();
    let client = src.client();
    let v1 = fixtures::small_image(50, 1000);
    let v2 = fixtures::small_image(51, 1000);
    let repo = Repo::parse(&src.host, "drift/app").expect("repository");
    rt().block_on(fixtures::push_image(&client, &repo, &v1, Some("1")));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(
        dir.join("d.yaml"),
        format!("name: d\nimages:\n  - ref: {}/drift/app:1\n", src.host),
    )
    .expect("spec");
    let flags = src.cli_flags();
    ok(&airlock(dir, &args(&["lock", "d.yaml"], &flags)));

    // collect refuses the unpinned spec itself, naming the reference
    let out = airlock(
        dir,
        &args(&["collect", "d.yaml", "-o", "x.tar.zst"], &flags),
    );
    common::fails_with(&out, &format!("{}/drift/app:1 is not pinned", src.host));
    assert!(!dir.join("x.tar.zst").exists());

    rt().block_on(fixtures::push_image(&client, &repo, &v2, Some("1")));
    let out = airlock(dir, &args(&["lock", "d.yaml", "--check"], &flags));
    assert_eq!(out.status.code(), Some(3), "drift must exit 3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(v1.manifest.digest().short())
            && stdout.contains(v2.manifest.digest().short()),
        "{stdout}"
    );
    let lock = std::fs::read_to_string(dir.join("d.lock")).expect("lock");
    assert!(
        lock.contains(v1.manifest.digest().as_str()),
        "--check must not write"
    );

    let out = airlock(dir, &args(&["lock", "d.yaml", "--format", "json"], &flags));
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(
        report["changes"][0]["old"],
        v1.manifest.digest().to_string()
    );
    assert_eq!(
        report["changes"][0]["new"],
        v2.manifest.digest().to_string()
    );
    ok(&airlock(dir, &args(&["lock", "d.yaml", "--check"], &flags)));

    // a pinned spec collects directly
    std::fs::write(
        dir.join("p.yaml"),
        format!(
            "name: p\nimages:\n  - ref: {}/drift/app:1@{}\n",
            src.host,
            v2.manifest.digest()
        ),
    )
    .expect("spec");
    ok(&airlock(
        dir,
        &args(&["collect", "p.yaml", "-o", "p.tar.zst"], &flags),
    ));
    ok(&airlock(dir, &["verify", "p.tar.zst", "--allow-unsigned"]));

    // Path mapping at import: default, --flatten, --keep-source-host, and a mapping file.
    let dst = TestRegistry::start();
    std::fs::write(
        dir.join("map.yaml"),
        format!(
            "rewrites:\n  - from: {}/drift\n    to: platform/base\n",
            src.host
        ),
    )
    .expect("mapping");
    let host_part = src.host.replace(':', "_");
    let cases: [(&str, &[&str], String); 4] = [
        ("d", &[], "d/drift/app".to_string()),
        ("f", &["--flatten"], "f/drift-app".to_string()),
        (
            "k",
            &["--keep-source-host"],
            format!("k/{host_part}/drift/app"),
        ),
        (
            "m",
            &["--mapping", "map.yaml"],
            "platform/base/app".to_string(),
        ),
    ];
    for (prefix, extra, want) in cases {
        let to = format!("{}/{prefix}", dst.host);
        let mut a = vec!["import", "p.tar.zst", "--to", &to, "--allow-unsigned"];
        a.extend_from_slice(extra);
        let out = airlock(dir, &args(&a, &dst.cli_flags()));
        let stdout = ok(&out);
        assert!(
            stdout.contains(&format!("{}/{want}", dst.host)),
            "{extra:?}: {stdout}"
        );
        assert_eq!(dst.tags(&want), vec!["1".to_string()], "{extra:?}");
        assert_eq!(
            dst.skopeo_raw(&format!("{want}:1")),
            v2.manifest.bytes,
            "{extra:?}"
        );
    }
    // A mapping file that does not parse is a clear error, and nothing is pushed.
    std::fs::write(dir.join("bad-map.yaml"), "rewrites: [{from: x}]\n").expect("bad mapping");
    let to = format!("{}/bad", dst.host);
    let out = airlock(
        dir,
        &args(
            &[
                "import",
                "p.tar.zst",
                "--to",
                &to,
                "--allow-unsigned",
                "--mapping",
                "bad-map.yaml",
            ],
            &dst.cli_flags(),
        ),
    );
    common::fails_with(&out, "mapping file `bad-map.yaml`");
    assert!(dst.tags("bad/drift/app").is_empty());
}

#[test]
fn bearer_token_auth() {
    // The registry delegates auth to a token server (as Docker Hub, Harbor and GitLab do):
    // airlock must follow the challenge, fetch a scoped token with its credentials, and use it.
    let cfg = || common::RegistryConfig {
        token_auth: Some(("alice".into(), "t0ken-pw".into())),
        ..Default::default()
    };
    let (src, dst, img, work) = pair_with_one_image(cfg, "tok/app", "t");
    let dir = work.path();
    // Wrong password: the token server refuses, and the error says so.
    let bad = format!("{}=alice:wrong", src.host);
    let token_host = src.token.as_ref().expect("token server").host();
    let out = airlock(
        dir,
        &[
            "lock",
            "t.yaml",
            "--insecure-registry",
            &src.host,
            "--insecure-registry",
            &token_host,
            "--creds",
            &bad,
        ],
    );
    common::fails_with(&out, "token endpoint");
    // The realm is plain HTTP on another port: without naming it, the password stays home.
    let out = airlock(
        dir,
        &[
            "lock",
            "t.yaml",
            "--insecure-registry",
            &src.host,
            "--creds",
            &bad,
        ],
    );
    common::fails_with(&out, "refusing to send credentials to token realm");
    let sflags = src.cli_flags();
    ok(&airlock(dir, &args(&["lock", "t.yaml"], &sflags)));
    ok(&airlock(
        dir,
        &args(&["collect", "t.lock", "-o", "t.tar.zst"], &sflags),
    ));
    let to = format!("{}/m", dst.host);
    ok(&airlock(
        dir,
        &args(
            &["import", "t.tar.zst", "--to", &to, "--allow-unsigned"],
            &dst.cli_flags(),
        ),
    ));
    assert_eq!(dst.skopeo_raw("m/tok/app:1"), img.manifest.bytes);
}

#[test]
fn refuses_oversized_signature_material_before_download() {
    let src = TestRegistry::start();
    let client = src.client();
    let img = fixtures::small_image(60, 1000);
    let repo = Repo::parse(&src.host, "sig/app").expect("repository");
    rt().block_on(async {
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        // A signature manifest declaring a 1 GiB layer.
        fixtures::push_signature(&client, &repo, &img.manifest.digest(), Some(1 << 30)).await;
    });
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(
        dir.join("g.yaml"),
        format!("name: g\nimages:\n  - ref: {}/sig/app:1\n", src.host),
    )
    .expect("spec");
    let out = airlock(dir, &args(&["lock", "g.yaml"], &src.cli_flags()));
    let err = common::fails_with(&out, "over the 16777216-byte limit for signature material");
    assert!(
        err.contains(&format!(
            "sig/app:sha256-{}.sig",
            img.manifest.digest().hex()
        )),
        "{err}"
    );
    assert!(!dir.join("g.lock").exists());
}

#[test]
fn collect_verifies_image_signatures_against_the_spec_policy() {
    use airlock::trust::keys::SigningKey;
    let src = TestRegistry::start();
    let client = src.client();
    let release = SigningKey::generate().expect("key");
    let other = SigningKey::generate().expect("key");
    let signed = fixtures::small_image(70, 1000);
    let unsigned = fixtures::small_image(71, 1000);
    rt().block_on(async {
        let repo = Repo::parse(&src.host, "signed/app").expect("repository");
        fixtures::push_image(&client, &repo, &signed, Some("1")).await;
        fixtures::push_signed(
            &client,
            &repo,
            &signed.manifest.digest(),
            None,
            Some(&release),
        )
        .await;
        fixtures::push_image(
            &client,
            &Repo::parse(&src.host, "unsigned/app").expect("repository"),
            &unsigned,
            Some("1"),
        )
        .await;
    });
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::create_dir_all(dir.join("keys")).expect("keys");
    std::fs::write(dir.join("keys/release.pub"), release.public_key().to_pem()).expect("pub");
    std::fs::write(dir.join("keys/other.pub"), other.public_key().to_pem()).expect("pub");
    let flags = src.cli_flags();
    let spec = |name: &str, repo: &str, key: &str| {
        std::fs::write(
            dir.join(format!("{name}.yaml")),
            format!(
                "name: {name}\nimages:\n  - ref: {h}/{repo}:1\ntrust:\n  rules:\n    - pattern: {h}/*/app\n      keys: [keys/{key}.pub]\n",
                h = src.host
            ),
        )
        .expect("spec");
    };

    // Signed by the trusted key: collected, and the result is in airlock.json.
    spec("good", "signed/app", "release");
    ok(&airlock(dir, &args(&["lock", "good.yaml"], &flags)));
    let lock = std::fs::read_to_string(dir.join("good.lock")).expect("lock");
    assert!(
        lock.contains("BEGIN PUBLIC KEY"),
        "the lock pins the key itself: {lock}"
    );
    ok(&airlock(
        dir,
        &args(&["collect", "good.lock", "-o", "good.tar.zst"], &flags),
    ));
    let out = airlock(dir, &["inspect", "good.tar.zst", "--format", "json"]);
    let inspect: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    let v = &inspect["manifest"]["artifacts"][0]["verification"][0];
    assert_eq!(
        v["signer"]["key"]["key_id"],
        release.key_id().to_string(),
        "{inspect}"
    );

    // The isolated side's ledger keeps who signed each image, as checked at collect.
    let dst = TestRegistry::start();
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    common::init_ledger(dir, "test.invalid/l");
    let to = format!("{}/m", dst.host);
    let import = [
        "import",
        "good.tar.zst",
        "--to",
        &to,
        "--allow-unsigned",
        "--ledger",
        "ledger",
        "--ledger-password-file",
        "pw",
    ];
    ok(&airlock(dir, &args(&import, &dst.cli_flags())));
    let entries = std::fs::read_to_string(dir.join("ledger/entries.jsonl")).expect("entries");
    assert!(entries.contains("verified at collect"), "{entries}");
    assert!(entries.contains(release.key_id().as_str()), "{entries}");

    // The policy trusts another key: refused, naming image, rule and why; no bundle written.
    spec("wrong", "signed/app", "other");
    ok(&airlock(dir, &args(&["lock", "wrong.yaml"], &flags)));
    let out = airlock(
        dir,
        &args(&["collect", "wrong.lock", "-o", "wrong.tar.zst"], &flags),
    );
    let err = common::fails_with(&out, "fails trust rule");
    assert!(
        err.contains("signed/app") && err.contains("0 of 1"),
        "{err}"
    );
    assert!(!dir.join("wrong.tar.zst").exists());

    // A key file the policy names but that does not exist: the lock says which, writes nothing.
    spec("nokey", "signed/app", "absent");
    let out = airlock(dir, &args(&["lock", "nokey.yaml"], &flags));
    let err = common::fails_with(&out, "trust policy");
    assert!(err.contains("absent.pub"), "{err}");
    assert!(!dir.join("nokey.lock").exists());

    // No signature at all where the policy wants one: refused.
    spec("missing", "unsigned/app", "release");
    ok(&airlock(dir, &args(&["lock", "missing.yaml"], &flags)));
    let out = airlock(
        dir,
        &args(
            &["collect", "missing.lock", "-o", "missing.tar.zst"],
            &flags,
        ),
    );
    let err = common::fails_with(&out, "fails trust rule");
    assert!(
        err.contains("unsigned/app") && err.contains("0 signature(s) found"),
        "{err}"
    );
    assert!(!dir.join("missing.tar.zst").exists());
}

#[test]
fn referrers_merge_into_the_targets_fallback_index() {
    let (src, dst, img, work) = pair_with_one_image(Default::default, "ref/app", "r");
    let dir = work.path();
    // At the source: one referrer (an SBOM) listed by the referrers tag schema.
    let (carried, _) = rt().block_on(fixtures::push_referrer(
        &src.client(),
        &Repo::parse(&src.host, "ref/app").expect("repository"),
        &img.manifest,
    ));
    // At the target, before the import: another tool already listed its own referrer.
    let (theirs, _) = rt().block_on(fixtures::push_referrer_numbered(
        &dst.client(),
        &Repo::parse(&dst.host, "m/ref/app").expect("repository"),
        &img.manifest,
        2,
    ));
    let sflags = src.cli_flags();
    ok(&airlock(dir, &args(&["lock", "r.yaml"], &sflags)));
    ok(&airlock(
        dir,
        &args(&["collect", "r.lock", "-o", "r.tar.zst"], &sflags),
    ));
    let to = format!("{}/m", dst.host);
    let import = [
        "import",
        "r.tar.zst",
        "--to",
        &to,
        "--allow-unsigned",
        "--format",
        "json",
    ];
    let out = airlock(dir, &args(&import, &dst.cli_flags()));
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(report["referrer_indexes_updated"], 1, "{report}");
    let tag = format!("m/ref/app:sha256-{}", img.manifest.digest().hex());
    let index: serde_json::Value =
        serde_json::from_slice(&dst.skopeo_raw(&tag)).expect("index json");
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|d| d["digest"].as_str())
        .collect();
    let (t, c) = (
        theirs.manifest.digest().to_string(),
        carried.manifest.digest().to_string(),
    );
    assert_eq!(
        listed,
        vec![t.as_str(), c.as_str()],
        "existing entry kept first"
    );
    assert_eq!(
        dst.skopeo_raw(&format!("m/ref/app@{c}")),
        carried.manifest.bytes
    );
    // Importing again changes nothing.
    let out = airlock(dir, &args(&import, &dst.cli_flags()));
    let again: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(again["referrer_indexes_updated"], 0, "{again}");
    assert_eq!(again["referrer_indexes_unchanged"], 1, "{again}");
}
