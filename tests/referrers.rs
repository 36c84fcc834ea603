//! Issue 11: cosign v3 signatures travel as OCI 1.1 referrers. `lock` finds them through the
//! referrers API (ferro-oci-server) or the `sha256-<hex>` fallback index (distribution 2.8),
//! with referrers of referrers; `collect` and `import --policy` verify the Sigstore bundles; the
//! target lists them (its referrers API, or a merged fallback index), checked with curl and
//! skopeo; the ledger shows the evidence. Bad inputs fail with one line and push nothing.

mod common;

use std::path::Path;

use airlock::oci::Digest;
use airlock::registry::Repo;
use airlock::trust::keys::SigningKey;
use common::cosign3::{self, FakeRekor, BUNDLE_V03};
use common::fixtures::{self, Blob, Image};
use common::{airlock, fails_with, ferro, ok, rt, TestRegistry};
use serde_json::{json, Value};

const REPO: &str = "app/web";

/// An image signed cosign-v3-style, with an SBOM referrer that is itself signed (a referrer
/// of a referrer).
struct Signed {
    img: Image,
    sig: Image,
    sbom: Image,
    sbom_sig: Image,
}

fn sbom_referrer(subject: &Blob) -> Image {
    let sbom = Blob::new(
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[]}"#.to_vec(),
        "application/vnd.cyclonedx+json",
    );
    let config = Blob::new(b"{}".to_vec(), airlock::oci::media::OCI_EMPTY);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": airlock::oci::media::OCI_MANIFEST,
        "artifactType": "application/vnd.cyclonedx+json",
        "config": config.descriptor(),
        "layers": [sbom.descriptor()],
        "subject": subject.descriptor(),
    });
    Image {
        manifest: Blob::new(
            serde_json::to_vec(&m).expect("json"),
            airlock::oci::media::OCI_MANIFEST,
        ),
        config,
        layers: vec![sbom],
        platform: (String::new(), String::new(), None),
    }
}

/// The referrers tag schema's index for `subject` listing `referrers`, as cosign writes it on a
/// registry without the referrers API.
async fn fallback_index(reg: &TestRegistry, subject: &Digest, referrers: &[&Image]) {
    let manifests: Vec<Value> = referrers
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.manifest.bytes).expect("json");
            let mut d = r.manifest.descriptor();
            d["artifactType"] = v["artifactType"].clone();
            d
        })
        .collect();
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": airlock::oci::media::OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("json");
    let repo = Repo::parse(&reg.host, REPO).expect("repo");
    reg.client()
        .put_manifest(
            &repo,
            &airlock::oci::Tag::for_subject(subject, ""),
            &bytes::Bytes::from(idx),
            airlock::oci::media::OCI_INDEX,
        )
        .await
        .expect("fallback index");
}

/// Pushes the signed image to `reg`; `fallback`: also write the referrers tag schema indexes
/// (for a registry without the referrers API).
fn push_signed(reg: &TestRegistry, key: &SigningKey, rekor: &FakeRekor, fallback: bool) -> Signed {
    let client = reg.client();
    let repo = Repo::parse(&reg.host, REPO).expect("repo");
    let img = fixtures::small_image(110, 2000);
    rt().block_on(async {
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        let sig = cosign3::push_signature(&client, &repo, &img.manifest, key, rekor).await;
        let sbom = sbom_referrer(&img.manifest);
        fixtures::push_image(&client, &repo, &sbom, None).await;
        let sbom_sig = cosign3::push_signature(&client, &repo, &sbom.manifest, key, rekor).await;
        if fallback {
            fallback_index(reg, &img.manifest.digest(), &[&sig, &sbom]).await;
            fallback_index(reg, &sbom.manifest.digest(), &[&sbom_sig]).await;
        }
        Signed {
            img,
            sig,
            sbom,
            sbom_sig,
        }
    })
}

/// A work directory with the release key, the fake Rekor's trusted root, and a spec whose
/// trust policy needs the release key on `host/app/web`.
fn workdir(host: &str, key: &SigningKey, rekor: &FakeRekor) -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::create_dir_all(dir.join("keys")).expect("keys");
    std::fs::write(dir.join("keys/release.pub"), key.public_key().to_pem()).expect("pub");
    std::fs::write(
        dir.join("root.json"),
        serde_json::to_vec(&rekor.trusted_root()).expect("json"),
    )
    .expect("root");
    let rules = format!(
        "trusted_root: root.json\nrules:\n  - pattern: {host}/{REPO}\n    keys: [keys/release.pub]\n    require_tlog: true\n"
    );
    std::fs::write(dir.join("policy.yaml"), &rules).expect("policy");
    let indented: String = rules.lines().map(|l| format!("  {l}\n")).collect();
    std::fs::write(
        dir.join("b.yaml"),
        format!("name: b\nimages:\n  - ref: {host}/{REPO}:1\ntrust:\n{indented}"),
    )
    .expect("spec");
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    common::init_ledger(dir, "test.invalid/l");
    work
}

fn run(dir: &Path, a: &[&str], flags: &[String]) -> String {
    let all: Vec<&str> = a
        .iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect();
    ok(&airlock(dir, &all))
}

fn lock_and_collect(dir: &Path, src: &TestRegistry) -> Value {
    run(dir, &["lock", "b.yaml"], &src.cli_flags());
    run(
        dir,
        &["collect", "b.lock", "-o", "b.tar.zst"],
        &src.cli_flags(),
    );
    serde_json::from_slice(&std::fs::read(dir.join("b.lock")).expect("lock")).expect("lock json")
}

fn import(dir: &Path, dst: &TestRegistry, extra: &[&str]) -> std::process::Output {
    let to = format!("{}/m", dst.host);
    let mut a = vec![
        "import",
        "b.tar.zst",
        "--to",
        &to,
        "--allow-unsigned",
        "--policy",
        "policy.yaml",
        "--format",
        "json",
    ];
    a.extend_from_slice(extra);
    let flags = dst.cli_flags();
    a.extend(flags.iter().map(String::as_str));
    airlock(dir, &a)
}

/// The referrers the target's API lists for `subject`, read with curl.
fn curl_referrers(reg: &TestRegistry, repo: &str, subject: &Digest) -> Vec<String> {
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json",
            &format!("http://{}/v2/{repo}/referrers/{subject}", reg.host),
        ])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl referrers of {subject}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("referrers json");
    v["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|d| d["digest"].as_str().map(str::to_string))
        .collect()
}

/// The digests the fallback index for `subject` lists, read with skopeo.
fn skopeo_fallback(reg: &TestRegistry, repo: &str, subject: &Digest) -> Vec<String> {
    let raw = reg.skopeo_raw(&format!("{repo}:sha256-{}", subject.hex()));
    let v: Value = serde_json::from_slice(&raw).expect("index json");
    v["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|d| d["digest"].as_str().map(str::to_string))
        .collect()
}

fn assert_lists(listed: &[String], want: &[&Image], what: &str) {
    for w in want {
        let d = w.manifest.digest().to_string();
        assert!(listed.contains(&d), "{what}: {d} not in {listed:?}");
    }
}

/// What the import verified and the ledger shows, for the signed image.
fn check_evidence(dir: &Path, s: &Signed, key: &SigningKey, report: &Value, host: &str) {
    let img = report["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == "image")
        .expect("image");
    let sig = &img["signatures"][0];
    assert_eq!(
        sig["signer"]["key"]["key_id"],
        key.key_id().as_str(),
        "{img}"
    );
    assert_eq!(sig["kind"], "sigstore_bundle", "{img}");
    assert_eq!(sig["rekor_log_index"], 0, "{img}");
    assert_eq!(
        sig["artifact"],
        s.sig.manifest.digest().to_string(),
        "{img}"
    );
    assert_eq!(sig["bundle"], s.sig.layers[0].digest().to_string(), "{img}");
    assert_eq!(sig["rule"], format!("{host}/{REPO}"), "{img}");
    let shown = ok(&airlock(
        dir,
        &[
            "ledger",
            "show",
            "ledger",
            "--digest",
            s.img.manifest.digest().as_str(),
        ],
    ));
    for needle in [
        key.key_id().as_str(),
        "sigstore_bundle",
        "rekor log index 0",
        s.sig.layers[0].digest().as_str(),
        &format!("rule `{host}/{REPO}`"),
    ] {
        assert!(
            shown.contains(needle),
            "ledger show lacks `{needle}`:\n{shown}"
        );
    }
}

#[test]
fn cosign_v3_referrer_from_a_referrers_api_registry_lands_on_both_kinds_of_target() {
    let src = ferro::start();
    let key = SigningKey::generate().expect("key");
    let rekor = FakeRekor::default();
    let s = push_signed(&src, &key, &rekor, false);
    let work = workdir(&src.host, &key, &rekor);
    let dir = work.path();

    // lock pins each referrer by digest with its artifact type, the SBOM's signature too.
    let lock = lock_and_collect(dir, &src);
    let atts = lock["images"][0]["attachments"]
        .as_array()
        .expect("attachments");
    let find = |d: &Digest| {
        atts.iter()
            .find(|a| a["digest"] == d.to_string())
            .unwrap_or_else(|| panic!("{d} not pinned: {lock}"))
    };
    let sig = find(&s.sig.manifest.digest());
    assert_eq!(sig["artifact_type"], BUNDLE_V03);
    assert_eq!(sig["subject"], s.img.manifest.digest().to_string());
    assert!(sig.get("tag").is_none(), "a referrer has no tag: {sig}");
    assert_eq!(
        find(&s.sbom_sig.manifest.digest())["subject"],
        s.sbom.manifest.digest().to_string()
    );
    assert_eq!(atts.len(), 3, "{lock}");

    // collect verified the bundle.
    let out = airlock(dir, &["inspect", "b.tar.zst", "--format", "json"]);
    let inspect: Value = serde_json::from_str(&ok(&out)).expect("json");
    let image = inspect["manifest"]["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == "image")
        .expect("image")
        .clone();
    assert_eq!(
        image["verification"][0]["kind"], "sigstore_bundle",
        "{image}"
    );

    // Into distribution (no referrers API): pushed by digest, listed in merged fallback indexes.
    let dist = TestRegistry::start();
    let report: Value = serde_json::from_str(&ok(&import(
        dir,
        &dist,
        &["--ledger", "ledger", "--ledger-password-file", "pw"],
    )))
    .expect("json");
    let target = format!("m/{REPO}");
    assert_lists(
        &skopeo_fallback(&dist, &target, &s.img.manifest.digest()),
        &[&s.sig, &s.sbom],
        "distribution fallback index of the image",
    );
    assert_lists(
        &skopeo_fallback(&dist, &target, &s.sbom.manifest.digest()),
        &[&s.sbom_sig],
        "distribution fallback index of the SBOM",
    );
    assert_eq!(
        dist.skopeo_raw(&format!("{target}@{}", s.sig.manifest.digest())),
        s.sig.manifest.bytes,
        "the signature crossed byte-exact"
    );
    check_evidence(dir, &s, &key, &report, &src.host);

    // Into ferro (referrers API): the target's API lists them.
    let fer = ferro::start();
    let report: Value = serde_json::from_str(&ok(&import(dir, &fer, &[]))).expect("json");
    assert!(report["referrers_via_api"].as_u64() >= Some(2), "{report}");
    assert_lists(
        &curl_referrers(&fer, &target, &s.img.manifest.digest()),
        &[&s.sig, &s.sbom],
        "ferro referrers of the image",
    );
    assert_lists(
        &curl_referrers(&fer, &target, &s.sbom.manifest.digest()),
        &[&s.sbom_sig],
        "ferro referrers of the SBOM",
    );
}

#[test]
fn cosign_v3_referrer_from_a_fallback_index_registry_lands_on_ferro() {
    let src = TestRegistry::start();
    let key = SigningKey::generate().expect("key");
    let rekor = FakeRekor::default();
    let s = push_signed(&src, &key, &rekor, true);
    let work = workdir(&src.host, &key, &rekor);
    let dir = work.path();
    let lock = lock_and_collect(dir, &src);
    let atts = lock["images"][0]["attachments"]
        .as_array()
        .expect("attachments");
    // The image's fallback index and the SBOM's, carried whole.
    assert_eq!(atts.len(), 2, "{lock}");
    let fer = ferro::start();
    let report: Value = serde_json::from_str(&ok(&import(dir, &fer, &[]))).expect("json");
    let target = format!("m/{REPO}");
    assert_lists(
        &curl_referrers(&fer, &target, &s.img.manifest.digest()),
        &[&s.sig, &s.sbom],
        "ferro referrers of the image",
    );
    assert_lists(
        &curl_referrers(&fer, &target, &s.sbom.manifest.digest()),
        &[&s.sbom_sig],
        "ferro referrers of the SBOM",
    );
    let img = report["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == "image")
        .expect("image");
    assert_eq!(img["signatures"][0]["kind"], "sigstore_bundle", "{img}");
}

#[test]
fn a_referrer_listed_for_another_subject_is_refused_at_lock() {
    let src = TestRegistry::start();
    let key = SigningKey::generate().expect("key");
    let rekor = FakeRekor::default();
    let client = src.client();
    let repo = Repo::parse(&src.host, REPO).expect("repo");
    let img = fixtures::small_image(111, 1000);
    let other = fixtures::small_image(112, 1000);
    let sig = rt().block_on(async {
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        fixtures::push_image(&client, &repo, &other, None).await;
        let sig = cosign3::push_signature(&client, &repo, &other.manifest, &key, &rekor).await;
        // Listed for `img`, but its subject is `other`.
        fallback_index(&src, &img.manifest.digest(), &[&sig]).await;
        sig
    });
    let work = workdir(&src.host, &key, &rekor);
    let out = airlock(
        work.path(),
        &[
            &["lock", "b.yaml"][..],
            &src.cli_flags()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ]
        .concat(),
    );
    let err = fails_with(&out, "is listed for");
    assert!(
        err.contains(&sig.manifest.digest().to_string())
            && err.contains(&img.manifest.digest().to_string())
            && err.contains(&other.manifest.digest().to_string()),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!work.path().join("b.lock").exists());
}

#[test]
fn a_referrers_listing_over_its_cap_is_refused_at_lock() {
    let src = ferro::start();
    let key = SigningKey::generate().expect("key");
    let rekor = FakeRekor::default();
    let client = src.client();
    let repo = Repo::parse(&src.host, REPO).expect("repo");
    let img = fixtures::small_image(113, 1000);
    rt().block_on(async {
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        let sbom = sbom_referrer(&img.manifest);
        fixtures::push_image(&client, &repo, &sbom, None).await;
        let mut m: Value = serde_json::from_slice(&sbom.manifest.bytes).expect("json");
        for n in 0..airlock::registry::referrers::MAX_REFERRERS {
            m["annotations"] = json!({"n": n.to_string()});
            let bytes = bytes::Bytes::from(serde_json::to_vec(&m).expect("json"));
            client
                .put_manifest(
                    &repo,
                    &Digest::of(&bytes),
                    &bytes,
                    airlock::oci::media::OCI_MANIFEST,
                )
                .await
                .expect("push referrer");
        }
    });
    let work = workdir(&src.host, &key, &rekor);
    let out = airlock(
        work.path(),
        &[
            &["lock", "b.yaml"][..],
            &src.cli_flags()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ]
        .concat(),
    );
    let err = fails_with(&out, "more than 256 entries");
    assert!(err.contains(&img.manifest.digest().to_string()), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_bundle_for_another_digest_fails_collect_and_import_with_nothing_pushed() {
    let src = ferro::start();
    let key = SigningKey::generate().expect("key");
    let rekor = FakeRekor::default();
    let client = src.client();
    let repo = Repo::parse(&src.host, REPO).expect("repo");
    let img = fixtures::small_image(114, 1000);
    let other = fixtures::small_image(115, 1000);
    rt().block_on(async {
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        // A valid bundle over `other`, attached to `img`.
        let b = cosign3::bundle(&key, &rekor, &repo.to_string(), &other.manifest.digest());
        let r = cosign3::referrer(&b, &img.manifest);
        fixtures::push_image(&client, &repo, &r, None).await;
    });
    let work = workdir(&src.host, &key, &rekor);
    let dir = work.path();
    let flags = src.cli_flags();
    run(dir, &["lock", "b.yaml"], &flags);
    let out = airlock(
        dir,
        &[
            &["collect", "b.lock", "-o", "b.tar.zst"][..],
            &flags.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
    );
    let err = fails_with(&out, "fails trust rule");
    assert!(err.contains(&img.manifest.digest().to_string()), "{err}");
    assert!(!dir.join("b.tar.zst").exists());
    // Collected without a policy, the isolated side refuses it before pushing anything.
    let spec = std::fs::read_to_string(dir.join("b.yaml")).expect("spec");
    let spec = spec.split("trust:").next().expect("head").to_string();
    std::fs::write(dir.join("b.yaml"), spec).expect("spec");
    run(dir, &["lock", "b.yaml"], &flags);
    run(dir, &["collect", "b.lock", "-o", "b.tar.zst"], &flags);
    let dst = TestRegistry::start();
    let err = fails_with(&import(dir, &dst, &[]), "fails the isolated side's policy");
    assert!(
        err.contains("verification failed") || err.contains("subject"),
        "{err}"
    );
    assert_eq!(dst.stored_blobs(), 0, "a refused bundle pushed something");
}

/// Turns on `require_children` in the spec's and the site's rule.
fn require_children(dir: &Path) {
    for f in ["b.yaml", "policy.yaml"] {
        let text = std::fs::read_to_string(dir.join(f)).expect("read");
        let text: String = text
            .lines()
            .map(|l| match l.strip_suffix("require_tlog: true") {
                Some(indent) => format!("{l}\n{indent}require_children: true\n"),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(dir.join(f), text).expect("write");
    }
}

#[test]
fn require_children_refuses_an_index_signed_only_at_the_index_then_passes_signed_per_child() {
    use fixtures::Compression;
    let src = ferro::start();
    let key = SigningKey::generate().expect("key");
    let rekor = FakeRekor::default();
    let client = src.client();
    let repo = Repo::parse(&src.host, REPO).expect("repo");
    let children = vec![
        fixtures::image(
            vec![fixtures::layer(130, 1000, Compression::Gzip, false)],
            "linux/amd64",
            false,
        ),
        fixtures::image(
            vec![fixtures::layer(131, 1000, Compression::Gzip, false)],
            "linux/arm64",
            false,
        ),
    ];
    let idx = fixtures::index(&children, false);
    rt().block_on(async {
        fixtures::push_index(&client, &repo, &children, &idx, "1").await;
        cosign3::push_signature(&client, &repo, &idx, &key, &rekor).await;
    });
    let work = workdir(&src.host, &key, &rekor);
    let dir = work.path();
    require_children(dir);
    let flags = src.cli_flags();
    run(dir, &["lock", "b.yaml"], &flags);
    let collect = |dir: &Path| {
        airlock(
            dir,
            &[
                &["collect", "b.lock", "-o", "b.tar.zst"][..],
                &flags.iter().map(String::as_str).collect::<Vec<_>>(),
            ]
            .concat(),
        )
    };
    // The index verifies; its first platform has no signature of its own.
    let unsigned = children[0].manifest.digest().to_string();
    let err = common::fails_as(&collect(dir), 5, "0 signature(s) found");
    assert!(
        err.contains(&format!("image {unsigned} fails trust rule")),
        "{err}"
    );
    assert!(!dir.join("b.tar.zst").exists());

    // Collected without a policy, the site's `require_children` refuses it before any push.
    let spec = std::fs::read_to_string(dir.join("b.yaml")).expect("spec");
    let head = spec.split("trust:").next().expect("head").to_string();
    std::fs::write(dir.join("b.yaml"), &head).expect("spec");
    run(dir, &["lock", "b.yaml"], &flags);
    ok(&collect(dir));
    let dst = TestRegistry::start();
    let err = common::fails_as(
        &import(dir, &dst, &[]),
        5,
        "fails the isolated side's policy",
    );
    assert!(
        err.contains(&format!("image {unsigned} fails trust rule")),
        "{err}"
    );
    assert_eq!(dst.stored_blobs(), 0, "a refused bundle pushed something");

    // Each platform signed on its own: collect (policy back on) and import pass.
    rt().block_on(async {
        for c in &children {
            cosign3::push_signature(&client, &repo, &c.manifest, &key, &rekor).await;
        }
    });
    std::fs::write(dir.join("b.yaml"), &spec).expect("spec");
    run(dir, &["lock", "b.yaml"], &flags);
    ok(&collect(dir));
    let report: Value = serde_json::from_str(&ok(&import(dir, &dst, &[]))).expect("json");
    let img = report["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == "image")
        .expect("image")
        .clone();
    // One signer: the index's signature and each child's all verified, recorded once each.
    let sigs = img["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 3, "index + 2 children: {img}");
}

/// Polls `cond` for up to 30 s.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn interleaved_fallback_index_writers_keep_each_others_entries() {
    use airlock::import::referrers::{self as target, Wanted};
    use airlock::oci::media;
    use common::proxy::{Fault, Proxy};
    // distribution 2.8 has no referrers API: the `sha256-<hex>` index is the only list, and it
    // has no conditional write. Another tool's entry X is there already.
    let dist = TestRegistry::start();
    let client = dist.client();
    let repo = Repo::parse(&dist.host, REPO).expect("repo");
    let img = fixtures::small_image(140, 1000);
    let (x, a, b) = rt().block_on(async {
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        let (x, _) = fixtures::push_referrer_numbered(&client, &repo, &img.manifest, 1).await;
        let a = fixtures::sbom_numbered(&img.manifest, 2);
        let b = fixtures::sbom_numbered(&img.manifest, 3);
        fixtures::push_image(&client, &repo, &a, None).await;
        fixtures::push_image(&client, &repo, &b, None).await;
        (x, a, b)
    });
    let wanted = |i: &Image| Wanted {
        descriptors: vec![
            target::referrer_descriptor(&i.manifest.bytes, media::OCI_MANIFEST).expect("desc"),
        ],
        carried: None,
    };
    let tag = target::fallback_tag(&img.manifest.digest());

    // Writer A reads the index ({X}), merges its entry, and is slow to write it.
    let stale = rt()
        .block_on(client.get_manifest(&repo, &tag))
        .expect("index")
        .bytes;
    let a_index = target::merge_index(Some(&stale), &wanted(&a))
        .expect("merge")
        .expect("A's entry is new");

    // Writer B (airlock's `write`) goes through a proxy that holds its read-back (its second
    // HEAD of the tag) until A has written.
    let head = format!("HEAD /v2/{REPO}/manifests/{tag}");
    let put = format!("PUT /v2/{REPO}/manifests/{tag}");
    let proxy = Proxy::start(
        &dist.host,
        Fault::StallAfter {
            n: 1,
            needle: head.clone(),
        },
    );
    let b_client = common::client_at(&proxy.host);
    let b_repo = Repo::parse(&proxy.host, REPO).expect("repo");
    let (b_tag, b_wanted) = (tag.clone(), wanted(&b));
    let b_rt = rt();
    let b_writer =
        b_rt.spawn(async move { target::write(&b_client, &b_repo, &b_tag, &b_wanted).await });
    wait_for("B's write and read-back", || proxy.count(&head) >= 2);
    assert_eq!(proxy.count(&put), 1, "B wrote once before A");

    // A writes its stale merge ({X, A}): B's entry is gone from the registry now.
    rt().block_on(client.put_manifest(&repo, &tag, &a_index, media::OCI_INDEX))
        .expect("A's write");
    proxy.release();
    b_rt.block_on(b_writer)
        .expect("join")
        .expect("B's write settles");

    // B saw its entry missing on read-back and merged again with what A left.
    assert_eq!(proxy.count(&put), 2, "B merged and wrote again");
    let listed = skopeo_fallback(&dist, REPO, &img.manifest.digest());
    assert_lists(
        &listed,
        &[&x, &a, &b],
        "the fallback index after both writers",
    );
    assert_eq!(listed.len(), 3, "{listed:?}");
    // A's own read-back (what `write` does after its PUT) finds its entry: it is done too.
    let now = rt()
        .block_on(client.get_manifest(&repo, &tag))
        .expect("index")
        .bytes;
    assert!(matches!(
        target::merge_index(Some(&now), &wanted(&a)),
        Ok(None)
    ));
}
