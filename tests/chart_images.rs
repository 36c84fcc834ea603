//! `chart images` against what the real Helm engine (v4.2.3) rendered for real upstream charts
//! (`tests/data/charts/*/expected.json`, see its PROVENANCE.md).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock::chart::{chart_images, ChartInput, RenderOptions};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/charts")
}

use fixtures::{render_rel_ns as render, rendered_images};

#[test]
fn matches_helm_on_the_five_expected_charts() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for name in [
        "docker-registry",
        "external-dns",
        "metrics-server",
        "traefik",
        "zot",
    ] {
        let exp: serde_json::Value = serde_json::from_slice(
            &std::fs::read(data().join(name).join("expected.json")).unwrap(),
        )
        .unwrap();
        let tgz = data().join(exp["tgz"].as_str().unwrap());
        for r in exp["renders"].as_array().unwrap() {
            let values = r["values_file"].as_str().map(|v| data().join(v));
            let got = match render(&tgz, values.as_deref()) {
                Ok(g) => g,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            let want: BTreeSet<String> = r["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect();
            if rendered_images(&got) != want {
                failures.push(format!(
                    "{name} / {}: got {:?}, want {want:?}",
                    r["label"],
                    rendered_images(&got)
                ));
                continue;
            }
            assert!(got.unresolved.is_empty(), "{name}: {:?}", got.unresolved);
            // Every image the walk reports is in `images`, each found where a container is.
            for f in got.found.iter().filter(|f| f.kind != "values") {
                assert!(got.images.contains(&f.image));
                assert!(f.template.starts_with(&format!("{name}/")), "{f:?}");
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, 10);
}

#[path = "common/chart_fixtures.rs"]
mod fixtures;

fn err_of(input: ChartInput, opts: RenderOptions) -> String {
    let started = std::time::Instant::now();
    let e = chart_images(input, opts)
        .expect_err("must fail")
        .to_string();
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

fn archive(bytes: Vec<u8>) -> ChartInput {
    ChartInput::Archive {
        bytes,
        label: "bad.tgz".into(),
    }
}

#[test]
fn hostile_archives_are_refused() {
    use fixtures::{tgz, CHART_YAML};
    let chart = CHART_YAML.as_bytes();
    let cases = [
        (
            tgz(&[
                ("c/Chart.yaml", b'0', chart, ""),
                ("c/../../evil", b'0', b"x", ""),
            ]),
            "`c/../../evil` escapes the chart",
        ),
        (
            tgz(&[("/c/Chart.yaml", b'0', chart, "")]),
            "escapes the chart",
        ),
        (
            tgz(&[
                ("c/Chart.yaml", b'0', chart, ""),
                ("c/templates/x.yaml", b'2', b"", "/etc/passwd"),
            ]),
            "`c/templates/x.yaml` is a link",
        ),
        (
            tgz(&[
                ("c/Chart.yaml", b'0', chart, ""),
                ("c/values.yaml", b'1', b"", "c/Chart.yaml"),
            ]),
            "`c/values.yaml` is a link",
        ),
        (
            fixtures::gzip_bomb(),
            "file `c/templates/big.yaml` inflates to more than 5242880 bytes",
        ),
        (b"not gzip".to_vec(), "bad.tgz: not a chart archive"),
    ];
    for (bytes, want) in cases {
        let e = err_of(archive(bytes), RenderOptions::default());
        assert!(e.contains(want), "{e} (want {want})");
    }
}

#[test]
fn runaway_and_failing_templates_stop_with_the_template_named() {
    let work = tempfile::tempdir().unwrap();
    for (name, tpl, want) in [
        ("recurse", fixtures::RECURSE, "c/templates/t.yaml: rendering template has a nested reference name exceeded max recursion depth (1000)"),
        ("spin", fixtures::SPIN, "c/templates/t.yaml: template execution exceeded its step budget"),
        ("fail", fixtures::FAIL, "chart c: c/templates/t.yaml: execution error: set .Values.password"),
    ] {
        let d = work.path().join(name);
        fixtures::chart_dir(&d, tpl);
        let e = err_of(ChartInput::Dir(d), RenderOptions::default());
        assert!(e.contains(want), "{e} (want {want})");
    }
}

#[test]
fn values_that_are_not_yaml_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path().join("c");
    fixtures::chart_dir(&d, fixtures::POD);
    let opts = RenderOptions {
        values_files: vec![("bad.yaml".into(), b"image: [unclosed\n".to_vec())],
        ..RenderOptions::default()
    };
    let e = err_of(ChartInput::Dir(d.clone()), opts);
    assert!(e.starts_with("bad.yaml: not a YAML map of values:"), "{e}");
    let opts = RenderOptions {
        values_files: vec![("list.yaml".into(), b"- a\n- b\n".to_vec())],
        ..RenderOptions::default()
    };
    let e = err_of(ChartInput::Dir(d.clone()), opts);
    assert_eq!(
        e,
        "list.yaml: not a YAML map of values: the document is a slice"
    );
    // And the same chart with good values renders the image they name.
    let opts = RenderOptions {
        set: vec!["image=quay.io/x/y:2".into()],
        ..RenderOptions::default()
    };
    let r = chart_images(ChartInput::Dir(d), opts).unwrap();
    assert_eq!(r.images, vec!["quay.io/x/y:2".to_string()]);
    assert_eq!(r.found[0].kind, "Pod");
    assert_eq!(r.found[0].container, "app");
}

#[test]
fn kube_version_constraint_names_the_chart() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path().join("c");
    fixtures::chart_dir(&d, fixtures::POD);
    std::fs::write(
        d.join("Chart.yaml"),
        format!("{}kubeVersion: \">=1.40.0-0\"\n", fixtures::CHART_YAML),
    )
    .unwrap();
    let e = err_of(ChartInput::Dir(d.clone()), RenderOptions::default());
    assert_eq!(e, "chart c requires kubeVersion >=1.40.0-0, which is incompatible with Kubernetes v1.36.0 (set --kube-version)");
    let opts = RenderOptions {
        kube_version: "v1.41.0".into(),
        ..RenderOptions::default()
    };
    assert_eq!(
        chart_images(ChartInput::Dir(d), opts).unwrap().images,
        vec!["docker.io/library/nginx:1.27".to_string()]
    );
}

#[test]
fn image_shaped_values_are_reported_apart() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path().join("c");
    fixtures::chart_dir(&d, fixtures::POD);
    std::fs::write(
        d.join("values.yaml"),
        "image: nginx:1.27\noperator:\n  agentImage:\n    registry: quay.io\n    repository: acme/agent\n    tag: \"2.1\"\n",
    )
    .unwrap();
    let r = chart_images(ChartInput::Dir(d.clone()), RenderOptions::default()).unwrap();
    assert_eq!(r.images, vec!["docker.io/library/nginx:1.27".to_string()]);
    let v: Vec<_> = r.found.iter().filter(|f| f.kind == "values").collect();
    assert_eq!(v.len(), 1, "{:?}", r.found);
    assert_eq!(v[0].image, "quay.io/acme/agent:2.1");
    assert_eq!(v[0].name, "operator.agentImage");
    let opts = RenderOptions {
        set: vec!["global.imageRegistry=mirror.example:5000".into()],
        ..RenderOptions::default()
    };
    let r = chart_images(ChartInput::Dir(d), opts).unwrap();
    assert!(
        r.found
            .iter()
            .any(|f| f.kind == "values" && f.image == "mirror.example:5000/acme/agent:2.1"),
        "{:?}",
        r.found
    );
}
