//! Charts bring their images: `lock` renders every chart of a spec (served from an HTTP chart
//! repository and from an OCI registry) with the entry's `values:`/`set:`, pins each image it
//! deploys, and `collect`/`import` carry and push them. `chart images` takes the same remote
//! sources. Real charts (tests/data/charts, rendered by the real Helm engine) and real
//! registries; results checked with skopeo.

#[path = "common/chart_fixtures.rs"]
mod chart_fixtures;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock::registry::Repo;
use common::fixtures;
use common::{airlock, fails_with, ok, rt, FileServer, TestRegistry};

fn chart_data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/charts")
        .join(rel)
}

fn args<'a>(base: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    let mut v = base.to_vec();
    v.extend(flags.iter().map(String::as_str));
    v
}

fn lock_json(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(name)).expect("lock")).expect("json")
}

/// The docker-registry 3.0.0 chart (real, upstream) over HTTP and the same chart over OCI, each
/// pointed at the test registry through `set:` or a `values:` file; one of the images is also
/// listed by the spec itself.
#[test]
fn lock_pins_chart_images_and_collect_and_import_carry_them() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let h = src.host.clone();
    let tgz = std::fs::read(chart_data("docker-registry/docker-registry-3.0.0.tgz")).expect("tgz");
    let (by_set, by_values, by_values_2, chart_digest) = rt().block_on(async {
        let reg = src.client();
        let a = fixtures::small_image(11, 300);
        let b = fixtures::small_image(12, 300);
        let c = fixtures::small_image(13, 300);
        let repo_a = Repo::parse(h.as_str(), "library/registry").expect("repo");
        let repo_b = Repo::parse(h.as_str(), "mirror/registry").expect("repo");
        fixtures::push_image(&reg, &repo_a, &a, Some("3.0.0")).await;
        fixtures::push_image(&reg, &repo_b, &b, Some("3.0.0")).await;
        fixtures::push_image(&reg, &repo_b, &c, Some("3.0.1")).await;
        let chart = fixtures::push_oci_chart_tgz(
            &reg,
            &Repo::parse(h.as_str(), "charts/oci-registry").expect("repo"),
            "docker-registry",
            "3.0.0",
            tgz.clone(),
        )
        .await;
        (
            a.manifest.digest(),
            b.manifest.digest(),
            c.manifest.digest(),
            chart,
        )
    });
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    fixtures::write_chart_repo_tgz(&dir.join("www/charts"), "docker-registry", "3.0.0", &tgz);
    let www = FileServer::serve(dir.join("www"));
    std::fs::create_dir_all(dir.join("values")).expect("dir");
    std::fs::write(
        dir.join("values/mirror.yaml"),
        format!("image:\n  repository: {h}/mirror/registry\n"),
    )
    .expect("values");
    let spec = |tag: &str| {
        format!(
            "name: charts\nimages:\n  - ref: {h}/library/registry:3.0.0\ncharts:\n  - repo: {url}/charts\n    name: docker-registry\n    version: 3.0.0\n    set:\n      image.repository: {h}/library/registry\n  - ref: oci://{h}/charts/oci-registry:3.0.0\n    values: [values/mirror.yaml]\n    set:\n      image.tag: \"{tag}\"\n",
            url = www.url
        )
    };
    std::fs::write(dir.join("charts.yaml"), spec("3.0.0")).expect("spec");
    let sflags = src.cli_flags();
    ok(&airlock(dir, &args(&["lock", "charts.yaml"], &sflags)));
    let lock = lock_json(dir, "charts.lock");
    let images = lock["images"].as_array().expect("images");
    assert_eq!(images.len(), 2, "{lock:#}");
    // The spec's own image, also deployed by the HTTP chart: listed once, with the chart named.
    assert_eq!(images[0]["source"], format!("{h}/library/registry:3.0.0"));
    assert_eq!(images[0]["digest"], by_set.to_string());
    let http_label = format!("{}/charts docker-registry:3.0.0", www.url);
    assert_eq!(images[0]["charts"], serde_json::json!([http_label]));
    // The OCI chart's image, through the values file: pinned like a spec image.
    assert_eq!(images[1]["source"], format!("{h}/mirror/registry:3.0.0"));
    assert_eq!(images[1]["digest"], by_values.to_string());
    assert_eq!(
        images[1]["charts"],
        serde_json::json!([format!("oci://{h}/charts/oci-registry:3.0.0")])
    );
    assert_eq!(lock["charts"][1]["digest"], chart_digest.to_string());

    // A chart value change moves an image: `lock --check` reports drift (exit 3) naming both.
    std::fs::write(dir.join("charts.yaml"), spec("3.0.1")).expect("spec");
    let out = airlock(dir, &args(&["lock", "charts.yaml", "--check"], &sflags));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{h}/mirror/registry:3.0.1")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{h}/mirror/registry:3.0.0")),
        "{stdout}"
    );
    ok(&airlock(dir, &args(&["lock", "charts.yaml"], &sflags)));
    let lock = lock_json(dir, "charts.lock");
    assert_eq!(lock["images"][1]["digest"], by_values_2.to_string());

    // collect carries them, import pushes them beside the charts under the same mapping.
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    ok(&airlock(
        dir,
        &["key", "generate", "--out", "k", "--password-file", "pw"],
    ));
    ok(&airlock(
        dir,
        &args(
            &[
                "collect",
                "charts.lock",
                "-o",
                "b.tar.zst",
                "--sign",
                "k.key",
                "--password-file",
                "pw",
            ],
            &sflags,
        ),
    ));
    let to = format!("{}/site", dst.host);
    ok(&airlock(
        dir,
        &args(
            &["import", "b.tar.zst", "--to", &to, "--trust", "k.pub"],
            &dst.cli_flags(),
        ),
    ));
    let pushed = dst.skopeo_raw("site/mirror/registry:3.0.1");
    assert_eq!(airlock::oci::Digest::of(&pushed), by_values_2);
    let pushed = dst.skopeo_raw("site/library/registry:3.0.0");
    assert_eq!(airlock::oci::Digest::of(&pushed), by_set);
    assert!(!dst.tags("site/charts/docker-registry").is_empty());
}

/// Nothing crosses silently: a chart that does not render, or renders an `image` that is not a
/// reference, stops `lock` with one line naming the chart and the template; `images: none`
/// carries the chart alone.
#[test]
fn lock_refuses_charts_whose_images_cannot_be_found() {
    let src = TestRegistry::start();
    let h = src.host.clone();
    let chart = |template: &str| {
        chart_fixtures::tgz(&[
            (
                "c/Chart.yaml",
                b'0',
                chart_fixtures::CHART_YAML.as_bytes(),
                "",
            ),
            ("c/values.yaml", b'0', b"image: \"Not A Reference!\"\n", ""),
            ("c/templates/t.yaml", b'0', template.as_bytes(), ""),
        ])
    };
    rt().block_on(async {
        let reg = src.client();
        for (repo, tgz) in [
            ("charts/fails", chart(chart_fixtures::FAIL)),
            ("charts/bad-image", chart(chart_fixtures::POD)),
        ] {
            let r = Repo::parse(h.as_str(), repo).expect("repo");
            fixtures::push_oci_chart_tgz(&reg, &r, "c", "0.1.0", tgz).await;
        }
        // A manifest that declares a chart layer bigger than the renderer reads (the blob
        // behind it is small: the cap must hold before anything is downloaded).
        let r = Repo::parse(h.as_str(), "charts/huge").expect("repo");
        let claimed = airlock::chart::archive::MAX_CHART_BYTES + 1;
        fixtures::push_oci_chart_claiming(
            &reg,
            &r,
            "c",
            "0.1.0",
            chart(chart_fixtures::POD),
            Some(claimed),
        )
        .await;
    });
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let sflags = src.cli_flags();
    let spec = |repo: &str, extra: &str| {
        format!("name: c\ncharts:\n  - ref: oci://{h}/charts/{repo}:0.1.0\n{extra}")
    };

    std::fs::write(dir.join("fails.yaml"), spec("fails", "")).expect("spec");
    let out = airlock(dir, &args(&["lock", "fails.yaml"], &sflags));
    let err = fails_with(&out, &format!("chart oci://{h}/charts/fails:0.1.0"));
    assert!(err.contains("c/templates/t.yaml"), "{err}");
    assert!(err.contains("set .Values.password"), "{err}");
    assert!(!dir.join("fails.lock").exists());

    std::fs::write(dir.join("bad.yaml"), spec("bad-image", "")).expect("spec");
    let out = airlock(dir, &args(&["lock", "bad.yaml"], &sflags));
    let err = fails_with(&out, &format!("chart oci://{h}/charts/bad-image:0.1.0"));
    assert!(err.contains("c/templates/t.yaml"), "{err}");
    assert!(err.contains("Not A Reference!"), "{err}");
    assert!(err.contains("images: none"), "{err}");
    assert!(!dir.join("bad.lock").exists());

    std::fs::write(dir.join("huge.yaml"), spec("huge", "")).expect("spec");
    let out = airlock(dir, &args(&["lock", "huge.yaml"], &sflags));
    let err = fails_with(&out, &format!("chart oci://{h}/charts/huge:0.1.0"));
    assert!(
        err.contains(&format!(
            "{} bytes",
            airlock::chart::archive::MAX_CHART_BYTES + 1
        )),
        "{err}"
    );
    assert!(!dir.join("huge.lock").exists());

    // `images: none`: the chart is pinned and nothing is rendered.
    std::fs::write(dir.join("none.yaml"), spec("fails", "    images: none\n")).expect("spec");
    ok(&airlock(dir, &args(&["lock", "none.yaml"], &sflags)));
    let lock = lock_json(dir, "none.lock");
    assert_eq!(lock["charts"].as_array().map(Vec::len), Some(1));
    assert!(lock
        .get("images")
        .is_none_or(|i| i.as_array().is_some_and(Vec::is_empty)));

    // A spec value that fixes the image makes the same chart lock... once the image exists.
    std::fs::write(
        dir.join("fixed.yaml"),
        spec(
            "bad-image",
            &format!("    set:\n      image: {h}/nowhere/app:1\n"),
        ),
    )
    .expect("spec");
    let out = airlock(dir, &args(&["lock", "fixed.yaml"], &sflags));
    fails_with(&out, &format!("{h}/nowhere/app:1"));
}

/// `chart images` fetches from an OCI registry and from an HTTP repository and lists what the
/// real Helm engine rendered for the traefik chart.
#[test]
fn chart_images_takes_oci_and_repo_sources() {
    let src = TestRegistry::start();
    let h = src.host.clone();
    let tgz = std::fs::read(chart_data("traefik/traefik-41.3.0.tgz")).expect("tgz");
    rt().block_on(async {
        let r = Repo::parse(h.as_str(), "charts/traefik").expect("repo");
        fixtures::push_oci_chart_tgz(&src.client(), &r, "traefik", "41.3.0", tgz.clone()).await;
    });
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    fixtures::write_chart_repo_tgz(&dir.join("www"), "traefik", "41.3.0", &tgz);
    let www = FileServer::serve(dir.join("www"));
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(chart_data("traefik/expected.json")).expect("expected"),
    )
    .expect("json");
    let want: BTreeSet<String> = expected["renders"][0]["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i.as_str().expect("str").to_string())
        .collect();
    assert!(!want.is_empty());
    let sflags = src.cli_flags();
    let oci = format!("oci://{h}/charts/traefik:41.3.0");
    for source in [
        args(
            &["chart", "images", &oci, "--release", "rel", "-n", "ns"],
            &sflags,
        ),
        vec![
            "chart",
            "images",
            "traefik",
            "--repo",
            &www.url,
            "--version",
            "41.3.0",
            "--release",
            "rel",
            "-n",
            "ns",
        ],
    ] {
        let mut a = source.clone();
        a.extend(["--format", "json"]);
        let out = ok(&airlock(dir, &a));
        let report: serde_json::Value = serde_json::from_str(&out).expect("json");
        let got: BTreeSet<String> = report["found"]
            .as_array()
            .expect("found")
            .iter()
            .filter(|f| f["kind"] != "annotation" && f["kind"] != "values")
            .map(|f| f["image"].as_str().expect("str").to_string())
            .collect();
        assert_eq!(got, want, "{source:?}");
    }
    // A version the repository does not have: one line naming it.
    let out = airlock(
        dir,
        &[
            "chart",
            "images",
            "traefik",
            "--repo",
            &www.url,
            "--version",
            "9.9.9",
        ],
    );
    fails_with(&out, "no version `9.9.9`");
}
