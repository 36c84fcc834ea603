//! `chart images` against the real Helm engine as an independent oracle: every shared chart
//! (the five with expected.json, with and without their values file, and the 14 extras) is
//! rendered by Helm v4.2.3's Go library (PyPI helm-python-sdk 0.2.2, driven by
//! `scripts/helm_oracle.py`) and by airlock, and the image sets must be equal.
//! `scripts/test.sh` installs the oracle under `target/helm-oracle/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock::chart::images::normalise;

#[path = "common/chart_fixtures.rs"]
mod fixtures;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn oracle_python() -> PathBuf {
    let p = std::env::var_os("AIRLOCK_HELM_ORACLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/helm-oracle/venv/bin/python"));
    assert!(
        p.exists(),
        "the Helm oracle is not installed at {}: run scripts/test.sh (it installs helm-python-sdk)",
        p.display()
    );
    p
}

fn oracle(tgz: &Path, values: Option<&Path>) -> BTreeSet<String> {
    let mut cmd = Command::new(oracle_python());
    cmd.arg(root().join("scripts/helm_oracle.py")).arg(tgz);
    if let Some(v) = values {
        cmd.arg(v);
    }
    let out = cmd.output().expect("run the oracle");
    assert!(
        out.status.success(),
        "oracle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("oracle JSON");
    assert!(
        v.get("error").is_none(),
        "Helm failed on {}: {}",
        tgz.display(),
        v["error"]
    );
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| normalise(i.as_str().unwrap()).unwrap())
        .collect()
}

fn ours(tgz: &Path, values: Option<&Path>) -> Result<BTreeSet<String>, String> {
    fixtures::render_rel_ns(tgz, values).map(|r| fixtures::rendered_images(&r))
}

fn cases() -> Vec<(PathBuf, Option<PathBuf>)> {
    let data = root().join("tests/data/charts");
    let mut out = Vec::new();
    for dir in [data.clone(), data.join("extra")] {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for d in names
            .into_iter()
            .filter(|p| p.is_dir() && !p.ends_with("extra"))
        {
            let files: Vec<PathBuf> = std::fs::read_dir(&d)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            let tgz = files
                .iter()
                .find(|p| p.extension().is_some_and(|e| e == "tgz"))
                .unwrap()
                .clone();
            out.push((tgz.clone(), None));
            for v in files.iter().filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("values-")
            }) {
                out.push((tgz.clone(), Some(v.clone())));
            }
        }
    }
    out
}

#[test]
fn equals_real_helm_on_every_shared_chart() {
    let cases = cases();
    assert_eq!(cases.len(), 24, "19 charts, 5 of them with a values file");
    let mut failures = Vec::new();
    for (tgz, values) in &cases {
        let want = oracle(tgz, values.as_deref());
        let label = format!(
            "{}{}",
            tgz.file_name().unwrap().to_string_lossy(),
            values
                .as_ref()
                .map(|v| format!(" -f {}", v.file_name().unwrap().to_string_lossy()))
                .unwrap_or_default()
        );
        match ours(tgz, values.as_deref()) {
            Ok(got) if got == want => eprintln!("equal: {label} ({} images)", got.len()),
            Ok(got) => failures.push(format!(
                "{label}: only airlock {:?}, only Helm {:?}",
                got.difference(&want).collect::<Vec<_>>(),
                want.difference(&got).collect::<Vec<_>>()
            )),
            Err(e) => failures.push(format!("{label}: airlock failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
