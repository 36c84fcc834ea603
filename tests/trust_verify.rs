//! Offline image-signature verification (`airlock::trust::{verify, simple_signing,
//! sigstore_bundle, trusted_root, policy}`) against real upstream data: the containers/image
//! cosign simple-signing cases, a production keyless `.sig` from ghcr.io, the complete
//! sigstore-conformance bundle-verify suite and two more bundles (cosign v3 blob, OCI
//! attestation). Data and provenance: `tests/data/sigstore/` and its `PROVENANCE.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock::trust::sigstore_bundle::{self, BundleArtifact, BundleSigner};
use airlock::trust::trusted_root::TrustedRoot;
use airlock::trust::PublicKey;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore")
}

fn read(path: &Path) -> Vec<u8> {
    fs_err::read(path).unwrap_or_else(|e| panic!("test data missing: {e}"))
}

fn read_text(path: &Path) -> String {
    fs_err::read_to_string(path).unwrap_or_else(|e| panic!("test data missing: {e}"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&read(path)).expect("test data is JSON")
}

fn production_root() -> TrustedRoot {
    TrustedRoot::load(&data().join("bundles/trusted_root.public-good.json")).expect("root")
}

/// Conformance cases this verifier does not get right, each with the reason. Strict: a case
/// listed here that passes fails the test, so the list cannot go stale.
const CONFORMANCE_XFAIL: &[(&str, &str)] = &[];

/// Runs one conformance case; `Ok` means the bundle verified.
fn run_conformance_case(case: &serde_json::Value) -> Result<(), String> {
    let dir = data().join("bundles/conformance");
    let name = case["case"].as_str().expect("case name");
    let case_dir = dir.join(name);
    let bundle = fs_err::read(case_dir.join("bundle.sigstore.json"))
        .map_err(|e| format!("missing bundle: {e}"))?;
    let own_root = case_dir.join("trusted_root.json");
    let root = if own_root.exists() {
        TrustedRoot::load(&own_root).map_err(|e| e.to_string())?
    } else {
        production_root()
    };
    let artifact_path = if case_dir.join("artifact").exists() {
        case_dir.join("artifact")
    } else {
        dir.join("a.txt")
    };
    let artifact = read(&artifact_path);
    let key_path = case_dir.join("key.pub");
    if key_path.exists() {
        let key = PublicKey::from_pem(&read_text(&key_path)).map_err(|e| e.to_string())?;
        sigstore_bundle::verify_bundle(
            &bundle,
            BundleArtifact::Bytes(&artifact),
            &root,
            BundleSigner::Key(&key),
        )
        .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let verified = sigstore_bundle::verify_bundle(
        &bundle,
        BundleArtifact::Bytes(&artifact),
        &root,
        BundleSigner::Keyless,
    )
    .map_err(|e| e.to_string())?;
    let identity = case["identity"].as_str().expect("identity");
    let issuer = case["issuer"].as_str().expect("issuer");
    if verified.identity.as_deref() != Some(identity) {
        return Err(format!("identity {:?} != {identity}", verified.identity));
    }
    if verified.issuer.as_deref() != Some(issuer) {
        return Err(format!("issuer {:?} != {issuer}", verified.issuer));
    }
    Ok(())
}

#[test]
fn conformance_bundles_pass_and_fail_as_upstream_says() {
    let cases = json(&data().join("bundles/conformance/cases.json"));
    let cases = cases["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 70, "the whole conformance suite is present");
    let xfail: BTreeSet<&str> = CONFORMANCE_XFAIL.iter().map(|(n, _)| *n).collect();
    let mut wrong = Vec::new();
    let (mut pass, mut fail) = (0, 0);
    for case in cases {
        let name = case["case"].as_str().expect("case name");
        let expected_pass = match case["expected"].as_str() {
            Some("PASS") => true,
            Some("FAIL") => false,
            other => panic!("{name}: unexpected expectation {other:?}"),
        };
        let outcome = run_conformance_case(case);
        let as_expected = outcome.is_ok() == expected_pass;
        if expected_pass {
            pass += 1;
        } else {
            fail += 1;
        }
        if as_expected == xfail.contains(name) {
            wrong.push(format!(
                "{name}: expected {}, got {:?}{}",
                if expected_pass { "PASS" } else { "FAIL" },
                outcome,
                if xfail.contains(name) {
                    " (listed as xfail)"
                } else {
                    ""
                }
            ));
        }
    }
    assert_eq!((pass, fail), (21, 49));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
