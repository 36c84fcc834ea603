//! `chart images` against what the real Helm engine (v4.2.3) rendered for real upstream charts
//! (`tests/data/charts/*/expected.json`, see its PROVENANCE.md).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock::chart::{chart_images, ChartInput, ImageReport, RenderOptions};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/charts")
}

/// Renders like the oracle did: release `rel`, namespace `ns`.
pub fn render(tgz: &Path, values: Option<&Path>) -> Result<ImageReport, String> {
    let mut opts = RenderOptions {
        release: "rel".into(),
        namespace: "ns".into(),
        ..RenderOptions::default()
    };
    if let Some(v) = values {
        opts.values_files
            .push((v.display().to_string(), std::fs::read(v).unwrap()));
    }
    let input = ChartInput::Archive {
        bytes: std::fs::read(tgz).unwrap(),
        label: tgz.display().to_string(),
    };
    chart_images(input, opts).map_err(|e| format!("{}: {e}", tgz.display()))
}

/// The images of rendered objects (what expected.json's `images` lists).
pub fn rendered_images(r: &ImageReport) -> BTreeSet<String> {
    r.found
        .iter()
        .filter(|f| f.kind != "annotation" && f.kind != "values")
        .map(|f| f.image.clone())
        .collect()
}

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
