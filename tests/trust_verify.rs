//! Offline image-signature verification (`airlock::trust::{verify, simple_signing,
//! sigstore_bundle, trusted_root, policy}`) against real upstream data: the containers/image
//! cosign simple-signing cases, a production keyless `.sig` from ghcr.io, the complete
//! sigstore-conformance bundle-verify suite and two more bundles (cosign v3 blob, OCI
//! attestation). Data and provenance: `tests/data/sigstore/` and its `PROVENANCE.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock::trust::sigstore_bundle::{self, BundleArtifact, BundleError, BundleSigner};
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

// ---------------------------------------------------------------------------------------------
// Simple signing (`.sig` layers): containers/image cases and a production keyless signature.

use std::collections::BTreeMap;

use airlock::oci::Digest;
use airlock::trust::policy::{KeylessIdentity, Matcher, RegexMatcher, ResolvedRule};
use airlock::trust::simple_signing::{SimpleSigningError, SIMPLE_SIGNING_MEDIA_TYPE};
use airlock::trust::verify::{
    verify_image, SignatureArtifact, SignatureFailure, SignatureKind, SignatureResult, Signer,
    VerifyError,
};

fn ci_dir() -> PathBuf {
    data().join("simple-signing/containers-image")
}

fn key(name: &str) -> PublicKey {
    PublicKey::from_pem(&read_text(&ci_dir().join(name))).expect("key")
}

fn annotations(path: &Path) -> BTreeMap<String, String> {
    serde_json::from_slice(&read(path)).expect("annotations")
}

/// A `.sig` image with one simple-signing layer, as cosign pushes it.
fn sig_artifact(payload: &[u8], annotations: &BTreeMap<String, String>) -> SignatureArtifact {
    let config = b"{}".to_vec();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::of(&config).to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
            "digest": Digest::of(payload).to_string(),
            "size": payload.len(),
            "annotations": annotations,
        }],
    });
    SignatureArtifact {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        manifest: serde_json::to_vec(&manifest).expect("json"),
        blobs: BTreeMap::from([
            (Digest::of(payload), payload.to_vec()),
            (Digest::of(&config), config),
        ]),
    }
}

/// The `.sig` artifact, image digest and source repository of a containers/image case.
fn ci_case(name: &str) -> (SignatureArtifact, Digest, String) {
    let cases = json(&ci_dir().join("cases.json"));
    let case = cases["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["case"] == name)
        .unwrap_or_else(|| panic!("case {name} missing"));
    let dir = ci_dir().join(name);
    let payload = read(&dir.join("payload.json"));
    let artifact = sig_artifact(&payload, &annotations(&dir.join("annotations.json")));
    // The image is the manifest when the case has one, else the digest upstream verified.
    let image = match fs_err::read(dir.join("manifest.json")) {
        Ok(bytes) => Digest::of(&bytes),
        Err(_) => case["signed_manifest_digest"]
            .as_str()
            .expect("digest")
            .parse()
            .expect("digest"),
    };
    let repo = case["image_reference_used_upstream"]
        .as_str()
        .or(case["docker_reference_in_payload"].as_str())
        .expect("reference")
        .to_owned();
    (artifact, image, repo)
}

fn key_rule(keys: Vec<PublicKey>, require: usize, require_tlog: bool) -> ResolvedRule {
    ResolvedRule {
        pattern: "test/*".into(),
        keys,
        keyless: vec![],
        require,
        require_tlog,
    }
}

fn keyless_rule(identity: Matcher, issuer: Matcher) -> ResolvedRule {
    ResolvedRule {
        pattern: "test/*".into(),
        keys: vec![],
        keyless: vec![KeylessIdentity { identity, issuer }],
        require: 1,
        require_tlog: false,
    }
}

fn exact(s: &str) -> Matcher {
    Matcher::Exact(s.into())
}

fn regex(s: &str) -> Matcher {
    Matcher::Regex(RegexMatcher::new(s).expect("regex"))
}

/// `rekor.pub` + `fulcio_v1.crt.pem`: the trust material containers/image uses.
fn pem_root() -> TrustedRoot {
    TrustedRoot::from_pems(
        &[&read_text(&ci_dir().join("fulcio_v1.crt.pem"))],
        &[&read_text(&ci_dir().join("rekor.pub"))],
    )
    .expect("pem root")
}

/// The failures of a rejected image, or a panic naming what was returned instead.
fn failures(result: Result<Vec<SignatureResult>, VerifyError>) -> Vec<SignatureFailure> {
    match result {
        Err(VerifyError::NotEnoughSigners {
            failures, valid, ..
        }) => {
            assert_eq!(valid, 0);
            failures
        }
        other => panic!("expected NotEnoughSigners, got {other:?}"),
    }
}

fn only_simple_signing_failure(
    result: Result<Vec<SignatureResult>, VerifyError>,
) -> SimpleSigningError {
    let mut f = failures(result);
    assert_eq!(f.len(), 1, "{f:?}");
    match f.remove(0) {
        SignatureFailure::SimpleSigning { source, .. } => source,
        other => panic!("expected a simple-signing failure, got {other}"),
    }
}

#[test]
fn simple_signing_valid_accepts_with_its_key_and_rejects_another_key() {
    let (artifact, image, repo) = ci_case("valid");
    let arts = [artifact];
    let ok = verify_image(
        &image,
        &repo,
        &arts,
        &key_rule(vec![key("cosign.pub")], 1, false),
        None,
    )
    .expect("valid case verifies with cosign.pub");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].kind, SignatureKind::SimpleSigning);
    assert_eq!(ok[0].rekor_log_index, None);
    assert_eq!(
        ok[0].signer,
        Signer::Key {
            key_id: key("cosign.pub").key_id().clone()
        }
    );
    // Wrong key.
    let err = verify_image(
        &image,
        &repo,
        &arts,
        &key_rule(vec![key("cosign2.pub")], 1, false),
        None,
    );
    let message = err.as_ref().map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("0 of 1 required"), "{message}");
    assert!(message.contains(image.as_str()), "{message}");
    assert!(
        message.contains(key("cosign2.pub").key_id().as_str()),
        "{message}"
    );
    assert!(
        matches!(only_simple_signing_failure(err), SimpleSigningError::BadSignature { key_id } if &key_id == key("cosign2.pub").key_id())
    );
}

#[test]
fn simple_signing_valid_with_tag_matches_the_repository() {
    let (artifact, image, repo) = ci_case("valid-with-tag");
    assert_eq!(repo, "192.168.64.2:5000/skopeo-signed:tag");
    let arts = [artifact];
    let rule = key_rule(vec![key("cosign.pub")], 1, false);
    verify_image(&image, &repo, &arts, &rule, None).expect("same tag");
    // airlock binds the repository, as cosign does; the tag is not part of the identity.
    verify_image(
        &image,
        "192.168.64.2:5000/skopeo-signed:othertag",
        &arts,
        &rule,
        None,
    )
    .expect("same repository, other tag");
    // `docker-reference` of another repository.
    let err = verify_image(&image, "192.168.64.2:5000/other-repo", &arts, &rule, None);
    assert!(matches!(
        only_simple_signing_failure(err),
        SimpleSigningError::ReferenceMismatch { expected, signed }
            if expected == "192.168.64.2:5000/other-repo" && signed == "192.168.64.2:5000/skopeo-signed"
    ));
}

#[test]
fn simple_signing_key_rekor_valid_checks_the_set() {
    let (artifact, image, repo) = ci_case("key-rekor-valid");
    let root = pem_root();
    let rule = key_rule(vec![key("cosign2.pub")], 1, true);
    let ok = verify_image(
        &image,
        &repo,
        std::slice::from_ref(&artifact),
        &rule,
        Some(&root),
    )
    .expect("key + Rekor SET");
    assert_eq!(ok[0].rekor_log_index, Some(11608800));
    assert_eq!(ok[0].integrated_time, Some(1674251859));
    // Also with the production trusted root (same Rekor key).
    verify_image(
        &image,
        &repo,
        std::slice::from_ref(&artifact),
        &rule,
        Some(&production_root()),
    )
    .expect("production root");

    // Bundle annotation removed while the rule requires Rekor.
    let dir = ci_dir().join("key-rekor-valid");
    let payload = read(&dir.join("payload.json"));
    let mut ann = annotations(&dir.join("annotations.json"));
    let bundle = ann.remove("dev.sigstore.cosign/bundle").expect("bundle");
    let err = verify_image(
        &image,
        &repo,
        &[sig_artifact(&payload, &ann)],
        &rule,
        Some(&root),
    );
    assert!(matches!(
        only_simple_signing_failure(err),
        SimpleSigningError::MissingTlog
    ));

    // SET altered: integratedTime changed.
    let mut altered: serde_json::Value = serde_json::from_str(&bundle).expect("bundle json");
    altered["Payload"]["integratedTime"] = serde_json::json!(1674251860);
    ann.insert("dev.sigstore.cosign/bundle".into(), altered.to_string());
    let err = verify_image(
        &image,
        &repo,
        &[sig_artifact(&payload, &ann)],
        &rule,
        Some(&root),
    );
    assert!(matches!(
        only_simple_signing_failure(err),
        SimpleSigningError::Sigstore(_)
    ));

    // SET checked with a key that is not Rekor's (cosign.pub as the "log" key).
    let wrong_root = TrustedRoot::from_pems(
        &[&read_text(&ci_dir().join("fulcio_v1.crt.pem"))],
        &[&read_text(&ci_dir().join("cosign.pub"))],
    )
    .expect("root");
    let err = verify_image(&image, &repo, &[artifact], &rule, Some(&wrong_root));
    assert!(matches!(
        only_simple_signing_failure(err),
        SimpleSigningError::Sigstore(_)
    ));
}

#[test]
fn simple_signing_rekor_entry_of_another_artifact_is_refused() {
    // key-rekor-valid's layer, signed by cosign2.pub, with fulcio-rekor-valid's Rekor entry
    // (same image, another payload and signature): the key signature verifies, the log entry
    // names another artifact.
    let (_, image, repo) = ci_case("key-rekor-valid");
    let dir = ci_dir().join("key-rekor-valid");
    let payload = read(&dir.join("payload.json"));
    let mut ann = annotations(&dir.join("annotations.json"));
    let other = annotations(&ci_dir().join("fulcio-rekor-valid/annotations.json"));
    ann.insert(
        "dev.sigstore.cosign/bundle".into(),
        other["dev.sigstore.cosign/bundle"].clone(),
    );
    let rule = key_rule(vec![key("cosign2.pub")], 1, true);
    let err = verify_image(
        &image,
        &repo,
        &[sig_artifact(&payload, &ann)],
        &rule,
        Some(&pem_root()),
    );
    let e = only_simple_signing_failure(err);
    assert!(matches!(e, SimpleSigningError::Sigstore(_)), "{e}");
}

#[test]
fn simple_signing_fulcio_rekor_valid_checks_identity_and_issuer() {
    let (artifact, image, repo) = ci_case("fulcio-rekor-valid");
    let arts = [artifact];
    let root = pem_root();
    let ok = verify_image(
        &image,
        &repo,
        &arts,
        &keyless_rule(
            exact("mitr@redhat.com"),
            exact("https://github.com/login/oauth"),
        ),
        Some(&root),
    )
    .expect("keyless");
    assert_eq!(
        ok[0].signer,
        Signer::Keyless {
            identity: "mitr@redhat.com".into(),
            issuer: "https://github.com/login/oauth".into()
        }
    );
    assert_eq!(ok[0].rekor_log_index, Some(11605770));
    // Wrong identity.
    let err = verify_image(
        &image,
        &repo,
        &arts,
        &keyless_rule(
            exact("someone@redhat.com"),
            exact("https://github.com/login/oauth"),
        ),
        Some(&root),
    );
    let f = failures(err);
    assert!(
        matches!(&f[..], [SignatureFailure::UntrustedIdentity { identity, .. }] if identity == "mitr@redhat.com"),
        "{f:?}"
    );
    // Wrong issuer, identity by regex.
    let err = verify_image(
        &image,
        &repo,
        &arts,
        &keyless_rule(
            regex(".*@redhat\\.com"),
            exact("https://accounts.google.com"),
        ),
        Some(&root),
    );
    assert!(matches!(
        &failures(err)[..],
        [SignatureFailure::UntrustedIdentity { .. }]
    ));
    verify_image(
        &image,
        &repo,
        &arts,
        &keyless_rule(regex(".*@redhat\\.com"), regex("https://github\\.com/.*")),
        Some(&root),
    )
    .expect("regex identity and issuer");
    // A key rule does not accept a keyless signature.
    let err = verify_image(
        &image,
        &repo,
        &arts,
        &key_rule(vec![key("cosign.pub")], 1, false),
        Some(&root),
    );
    assert!(matches!(
        only_simple_signing_failure(err),
        SimpleSigningError::BadSignature { .. }
    ));
}

#[test]
fn simple_signing_pki_valid_without_rekor_is_refused() {
    // Upstream (containers/image with a private PKI and no Rekor) accepts this signature.
    // airlock refuses keyless signatures without a verified Rekor entry: without one there is
    // no trusted signing time to check the certificate against. Deliberate difference.
    let (artifact, image, repo) = ci_case("pki-valid");
    let root = TrustedRoot::from_pems(
        &[&format!(
            "{}\n{}",
            read_text(&ci_dir().join("pki_intermediate_crts.pem")),
            read_text(&ci_dir().join("pki_root_crts.pem"))
        )],
        &[&read_text(&ci_dir().join("rekor.pub"))],
    )
    .expect("pki root");
    let err = verify_image(
        &image,
        &repo,
        &[artifact],
        &keyless_rule(exact("qiwan@redhat.com"), regex(".*")),
        Some(&root),
    );
    let e = only_simple_signing_failure(err);
    assert!(
        matches!(
            e,
            SimpleSigningError::MissingAnnotation {
                annotation: "dev.sigstore.cosign/bundle"
            }
        ),
        "{e:?}"
    );
}

#[test]
fn simple_signing_modified_manifest_is_a_signature_over_another_digest() {
    let (artifact, image, repo) = ci_case("modified-manifest");
    assert!(image.as_str().starts_with("sha256:d9dcafdb"), "{image}");
    let err = verify_image(
        &image,
        &repo,
        &[artifact],
        &key_rule(vec![key("cosign.pub")], 1, false),
        None,
    );
    assert!(matches!(
        only_simple_signing_failure(err),
        SimpleSigningError::DigestMismatch { expected, signed }
            if expected == image && signed.as_str().starts_with("sha256:634a8f35")
    ));
}

#[test]
fn simple_signing_unknown_key_is_refused() {
    let (artifact, image, repo) = ci_case("unknown-key");
    let arts = [artifact];
    for k in ["cosign.pub", "cosign2.pub"] {
        let err = verify_image(
            &image,
            &repo,
            &arts,
            &key_rule(vec![key(k)], 1, false),
            None,
        );
        assert!(matches!(
            only_simple_signing_failure(err),
            SimpleSigningError::BadSignature { .. }
        ));
    }
}

fn podinfo() -> (SignatureArtifact, Digest, &'static str) {
    let dir = data().join("simple-signing/ghcr-podinfo-6.4.0");
    let payload = read(&dir.join("payload.json"));
    let config = read(&dir.join("sig-config.json"));
    let artifact = SignatureArtifact {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        manifest: read(&dir.join("sig-manifest.json")),
        blobs: BTreeMap::from([
            (Digest::of(&payload), payload),
            (Digest::of(&config), config),
        ]),
    };
    let image: Digest = "sha256:57a654ace69ec02ba8973093b6a786faa15640575fbf0dbb603db55aca2ccec8"
        .parse()
        .expect("digest");
    (artifact, image, "ghcr.io/stefanprodan/podinfo")
}

const PODINFO_IDENTITY: &str =
    "https://github.com/stefanprodan/podinfo/.github/workflows/release.yml@refs/tags/6.4.0";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

#[test]
fn podinfo_keyless_signature_verifies_offline() {
    let (artifact, image, repo) = podinfo();
    let arts = [artifact];
    let rule = keyless_rule(exact(PODINFO_IDENTITY), exact(GITHUB_ISSUER));
    for root in [production_root(), pem_root()] {
        let ok = verify_image(&image, repo, &arts, &rule, Some(&root)).expect("podinfo");
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].rekor_log_index, Some(25064476));
        assert_eq!(ok[0].integrated_time, Some(1687773622));
        assert_eq!(
            ok[0].signer,
            Signer::Keyless {
                identity: PODINFO_IDENTITY.into(),
                issuer: GITHUB_ISSUER.into()
            }
        );
    }
    // Wrong identity (another tag's workflow), and another repository.
    let other = keyless_rule(
        exact(
            "https://github.com/stefanprodan/podinfo/.github/workflows/release.yml@refs/tags/6.3.0",
        ),
        exact(GITHUB_ISSUER),
    );
    let f = failures(verify_image(
        &image,
        repo,
        &arts,
        &other,
        Some(&production_root()),
    ));
    assert!(
        matches!(&f[..], [SignatureFailure::UntrustedIdentity { .. }]),
        "{f:?}"
    );
    let err = verify_image(
        &image,
        "ghcr.io/someone/podinfo",
        &arts,
        &rule,
        Some(&production_root()),
    );
    assert!(matches!(
        only_simple_signing_failure(err),
        SimpleSigningError::ReferenceMismatch { .. }
    ));
    // Keyless needs a trusted root.
    assert!(matches!(
        verify_image(&image, repo, &arts, &rule, None),
        Err(VerifyError::NoTrustedRoot { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Sigstore bundles outside the conformance suite.

#[test]
fn cosign_v3_blob_bundle_verifies_and_binds_the_artifact() {
    let dir = data().join("bundles/other");
    let bundle = read(&dir.join("cosign-v3-blob.sigstore.json"));
    let artifact = read(&dir.join("cosign-v3-blob.txt"));
    let v = sigstore_bundle::verify_bundle(
        &bundle,
        BundleArtifact::Bytes(&artifact),
        &production_root(),
        BundleSigner::Keyless,
    )
    .expect("cosign v3 blob bundle");
    assert_eq!(v.identity.as_deref(), Some("w.vollprecht@gmail.com"));
    assert_eq!(v.issuer.as_deref(), Some("https://github.com/login/oauth"));
    assert!(v.rekor_log_index.is_some());
    let mut changed = artifact.clone();
    changed.push(b'!');
    assert!(sigstore_bundle::verify_bundle(
        &bundle,
        BundleArtifact::Bytes(&changed),
        &production_root(),
        BundleSigner::Keyless,
    )
    .is_err());
}

/// The OCI attestation bundle as an OCI 1.1 referrer of its image.
fn attestation_referrer(bundle: &[u8]) -> SignatureArtifact {
    let config = b"{}".to_vec();
    let media_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": Digest::of(&config).to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": media_type,
            "digest": Digest::of(bundle).to_string(),
            "size": bundle.len(),
        }],
    });
    SignatureArtifact {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        manifest: serde_json::to_vec(&manifest).expect("json"),
        blobs: BTreeMap::from([
            (Digest::of(bundle), bundle.to_vec()),
            (Digest::of(&config), config),
        ]),
    }
}

#[test]
fn oci_attestation_bundle_as_referrer_binds_the_image_digest() {
    let dir = data().join("bundles/other");
    let bundle = read(&dir.join("cosign-oci-attestation.sigstore.json"));
    let root = TrustedRoot::load(&dir.join("cosign-trusted_root_pgi.json")).expect("root");
    let image: Digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
        .parse()
        .expect("digest");
    let arts = [attestation_referrer(&bundle)];
    let rule = keyless_rule(regex(".*"), regex(".*"));
    let ok = verify_image(&image, "127.0.0.1:60943/repo", &arts, &rule, Some(&root))
        .expect("attestation");
    assert_eq!(ok[0].kind, SignatureKind::SigstoreBundle);
    assert_eq!(
        ok[0].signer,
        Signer::Keyless {
            identity: "cody@soyland.com".into(),
            issuer: "https://github.com/login/oauth".into()
        }
    );
    // SubjectRegExp "wrong".
    let wrong = keyless_rule(regex("wrong"), regex(".*"));
    assert!(matches!(
        &failures(verify_image(
            &image,
            "127.0.0.1:60943/repo",
            &arts,
            &wrong,
            Some(&root)
        ))[..],
        [SignatureFailure::UntrustedIdentity { .. }]
    ));
    // Attached to another image.
    let other = Digest::of(b"another image");
    assert!(matches!(
        &failures(verify_image(
            &other,
            "127.0.0.1:60943/repo",
            &arts,
            &rule,
            Some(&root)
        ))[..],
        [SignatureFailure::Bundle { .. }]
    ));
    // A key rule does not accept a keyless bundle; and bundles need a trusted root.
    let key_only = key_rule(vec![key("cosign.pub")], 1, false);
    let f = failures(verify_image(
        &image,
        "127.0.0.1:60943/repo",
        &arts,
        &key_only,
        Some(&root),
    ));
    assert!(
        matches!(
            &f[..],
            [SignatureFailure::Bundle {
                source: BundleError::SignerKind { .. },
                ..
            }]
        ),
        "{f:?}"
    );
    let f = failures(verify_image(
        &image,
        "127.0.0.1:60943/repo",
        &arts,
        &key_only,
        None,
    ));
    assert!(
        matches!(
            &f[..],
            [SignatureFailure::Bundle {
                source: BundleError::NoTrustedRoot,
                ..
            }]
        ),
        "{f:?}"
    );
    // A blob that does not hash to its digest.
    let mut tampered = attestation_referrer(&bundle);
    if let Some(b) = tampered.blobs.get_mut(&Digest::of(&bundle)) {
        b.push(b' ');
    }
    assert!(matches!(
        &failures(verify_image(
            &image,
            "127.0.0.1:60943/repo",
            &[tampered],
            &rule,
            Some(&root)
        ))[..],
        [SignatureFailure::BlobDigest { .. }]
    ));
}

// ---------------------------------------------------------------------------------------------
// Bad inputs, each a clear error.

fn valid_layer() -> (Vec<u8>, BTreeMap<String, String>) {
    let dir = ci_dir().join("valid");
    (
        read(&dir.join("payload.json")),
        annotations(&dir.join("annotations.json")),
    )
}

#[test]
fn rejects_tampered_payload() {
    let (_, image, repo) = ci_case("valid");
    let (payload, ann) = valid_layer();
    // Same meaning, one more space: the signature no longer covers these bytes.
    let text =
        String::from_utf8(payload)
            .expect("utf8")
            .replacen("{\"critical\"", "{ \"critical\"", 1);
    let err = verify_image(
        &image,
        &repo,
        &[sig_artifact(text.as_bytes(), &ann)],
        &key_rule(vec![key("cosign.pub")], 1, false),
        None,
    );
    assert!(matches!(
        only_simple_signing_failure(err),
        SimpleSigningError::BadSignature { .. }
    ));
}

#[test]
fn rejects_malformed_base64_and_pem_and_bundle_annotations() {
    let (_, image, repo) = ci_case("valid");
    let (payload, mut ann) = valid_layer();
    ann.insert(
        "dev.cosignproject.cosign/signature".into(),
        "not*base64!".into(),
    );
    let err = verify_image(
        &image,
        &repo,
        &[sig_artifact(&payload, &ann)],
        &key_rule(vec![key("cosign.pub")], 1, false),
        None,
    );
    let e = only_simple_signing_failure(err);
    assert!(
        matches!(
            e,
            SimpleSigningError::MalformedAnnotation {
                annotation: "dev.cosignproject.cosign/signature",
                ..
            }
        ),
        "{e}"
    );

    let (_, image, repo) = ci_case("fulcio-rekor-valid");
    let dir = ci_dir().join("fulcio-rekor-valid");
    let payload = read(&dir.join("payload.json"));
    let rule = keyless_rule(
        exact("mitr@redhat.com"),
        exact("https://github.com/login/oauth"),
    );
    let mut ann = annotations(&dir.join("annotations.json"));
    ann.insert(
        "dev.sigstore.cosign/certificate".into(),
        "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n".into(),
    );
    let e = only_simple_signing_failure(verify_image(
        &image,
        &repo,
        &[sig_artifact(&payload, &ann)],
        &rule,
        Some(&pem_root()),
    ));
    assert!(
        matches!(
            e,
            SimpleSigningError::MalformedAnnotation {
                annotation: "dev.sigstore.cosign/certificate",
                ..
            }
        ),
        "{e}"
    );
    let mut ann = annotations(&dir.join("annotations.json"));
    ann.insert(
        "dev.sigstore.cosign/bundle".into(),
        "{\"SignedEntryTimestamp\":1}".into(),
    );
    let e = only_simple_signing_failure(verify_image(
        &image,
        &repo,
        &[sig_artifact(&payload, &ann)],
        &rule,
        Some(&pem_root()),
    ));
    assert!(
        matches!(
            e,
            SimpleSigningError::MalformedAnnotation {
                annotation: "dev.sigstore.cosign/bundle",
                ..
            }
        ),
        "{e}"
    );
    // A public key that is not PEM.
    assert!(
        PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n%%%\n-----END PUBLIC KEY-----\n").is_err()
    );
    // A trusted root that is not JSON.
    assert!(TrustedRoot::from_json("{not json").is_err());
}

#[test]
fn rejects_missing_required_signature() {
    let (_, image, repo) = ci_case("valid");
    let err = verify_image(
        &image,
        &repo,
        &[],
        &key_rule(vec![key("cosign.pub")], 1, false),
        None,
    )
    .expect_err("no signature");
    let message = err.to_string();
    assert!(
        matches!(&err, VerifyError::NotEnoughSigners { signatures: 0, valid: 0, required: 1, rule, image: i, .. } if rule == "test/*" && i == &image),
        "{err:?}"
    );
    assert!(
        message.contains(image.as_str()) && message.contains("test/*"),
        "{message}"
    );
}

#[test]
fn rejects_fewer_than_n_of_m_signers() {
    let (artifact, image, repo) = ci_case("valid");
    let rule = key_rule(vec![key("cosign.pub"), key("cosign2.pub")], 2, false);
    match verify_image(&image, &repo, std::slice::from_ref(&artifact), &rule, None) {
        Err(VerifyError::NotEnoughSigners {
            valid: 1,
            required: 2,
            verified,
            failures,
            ..
        }) => {
            assert_eq!(verified.len(), 1);
            assert!(
                matches!(&failures[..], [SignatureFailure::SimpleSigning { signer: Some(k), .. }] if k == key("cosign2.pub").key_id())
            );
        }
        other => panic!("expected 1 of 2, got {other:?}"),
    }
    // The same key's signature twice is still one signer.
    let (payload, ann) = valid_layer();
    let same_key_twice = [artifact.clone(), sig_artifact(&payload, &ann)];
    assert!(
        verify_image(&image, &repo, &same_key_twice, &rule, None).is_err(),
        "one signer twice is still one signer"
    );
    let one_of_two = key_rule(vec![key("cosign.pub"), key("cosign2.pub")], 1, false);
    assert_eq!(
        verify_image(&image, &repo, &[artifact], &one_of_two, None)
            .expect("1 of 2")
            .len(),
        1
    );
}

#[test]
fn rejects_expired_certificate_and_wrong_identity_in_bundles() {
    let dir = data().join("bundles/conformance");
    let artifact = read(&dir.join("a.txt"));
    // The certificate was no longer (or not yet) valid when the log integrated the entry.
    let case = dir.join("intoto-set-outside-signing-cert-validity_fail");
    let err = sigstore_bundle::verify_bundle(
        &read(&case.join("bundle.sigstore.json")),
        BundleArtifact::Bytes(&read(&case.join("artifact"))),
        &TrustedRoot::load(&case.join("trusted_root.json")).expect("root"),
        BundleSigner::Keyless,
    )
    .expect_err("certificate expired at signing time");
    assert!(
        matches!(
            err,
            BundleError::CertificateNotValidAtSigning {
                evidence: "the Rekor integrated time",
                ..
            }
        ),
        "{err}"
    );
    let ok = read(&dir.join("happy-path-v0.3/bundle.sigstore.json"));
    let v = sigstore_bundle::verify_bundle(
        &ok,
        BundleArtifact::Bytes(&artifact),
        &production_root(),
        BundleSigner::Keyless,
    )
    .expect("happy path");
    let wrong = KeylessIdentity {
        identity: exact("someone@example.com"),
        issuer: exact(GITHUB_ISSUER),
    };
    assert!(!wrong.matches(
        v.identity.as_deref().unwrap_or(""),
        v.issuer.as_deref().unwrap_or("")
    ));
}

// ---------------------------------------------------------------------------------------------
// The policy as the spec / `--policy FILE` carries it, end to end.

#[test]
fn policy_file_resolves_and_verifies_podinfo_and_a_key_signed_image() {
    use airlock::trust::policy::TrustPolicy;
    let yaml = format!(
        r#"
trusted_root: bundles/trusted_root.public-good.json
rules:
  - pattern: ghcr.io/stefanprodan/*
    keyless:
      - identity: {{ regex: "https://github\\.com/stefanprodan/podinfo/\\.github/workflows/release\\.yml@refs/tags/.*" }}
        issuer: {GITHUB_ISSUER}
  - pattern: "192.168.64.2:5000/**"
    keys: [simple-signing/containers-image/cosign.pub, simple-signing/containers-image/cosign2.pub]
    require: 1
"#
    );
    let policy = TrustPolicy::from_yaml(&yaml).expect("policy");
    let base = data();
    let root = policy
        .load_trusted_root(&base)
        .expect("root")
        .expect("some root");

    let (artifact, image, repo) = podinfo();
    let rule = policy
        .rule_for(repo)
        .expect("rule")
        .resolve(&base)
        .expect("resolve");
    let ok = verify_image(&image, repo, &[artifact], &rule, Some(&root)).expect("podinfo");
    assert_eq!(ok[0].rekor_log_index, Some(25064476));

    let (artifact, image, repo) = ci_case("valid");
    let rule = policy
        .rule_for(&repo)
        .expect("rule")
        .resolve(&base)
        .expect("resolve");
    assert_eq!(rule.pattern, "192.168.64.2:5000/**");
    verify_image(&image, &repo, &[artifact], &rule, Some(&root)).expect("valid");
    assert!(policy.rule_for("docker.io/library/nginx").is_none());

    // A key path that does not exist names the rule and the file.
    let broken =
        TrustPolicy::from_yaml("rules: [{pattern: a/b, keys: [missing.pub]}]").expect("policy");
    let err = broken.rules[0].resolve(&base).expect_err("missing key");
    assert!(err.to_string().contains("a/b"), "{err}");
}

#[test]
fn one_identity_or_key_counts_once_towards_the_threshold() {
    // Two keyless entries that both match mitr@redhat.com: one signer, not two.
    let (artifact, image, repo) = ci_case("fulcio-rekor-valid");
    let mut rule = keyless_rule(
        exact("mitr@redhat.com"),
        exact("https://github.com/login/oauth"),
    );
    rule.keyless.push(KeylessIdentity {
        identity: regex(".*@redhat\\.com"),
        issuer: regex(".*"),
    });
    rule.require = 2;
    match verify_image(
        &image,
        &repo,
        std::slice::from_ref(&artifact),
        &rule,
        Some(&pem_root()),
    ) {
        Err(VerifyError::NotEnoughSigners {
            valid: 1,
            required: 2,
            ..
        }) => {}
        other => panic!("expected 1 of 2, got {other:?}"),
    }
    // The same key listed twice: one signer.
    let (artifact, image, repo) = ci_case("valid");
    let rule = key_rule(vec![key("cosign.pub"), key("cosign.pub")], 2, false);
    match verify_image(&image, &repo, &[artifact], &rule, None) {
        Err(VerifyError::NotEnoughSigners {
            valid: 1,
            required: 2,
            ..
        }) => {}
        other => panic!("expected 1 of 2, got {other:?}"),
    }
}
