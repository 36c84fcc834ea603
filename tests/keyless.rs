//! Issue 11: keyless cosign v3 signatures through the real CLI. A throwaway Sigstore
//! ([`common::cosign3::FakeSigstore`]: a Fulcio-like CA, a Rekor log, an RFC 3161 TSA, and the
//! `trusted_root.json` naming them) signs an image the way cosign v3 does; the bundle referrer
//! is verified at `collect` (spec `trust:` with an identity and issuer) and again at
//! `import --policy` against the site's own root, and `ledger show --digest` prints the
//! evidence. Bad bundles fail at collect and at import with one line, the documented exit code,
//! and nothing pushed (checked with curl on the target's `_catalog`).

mod common;

use std::path::Path;

use airlock::oci::Digest;
use airlock::registry::Repo;
use common::cosign3::{Evidence, FakeSigstore, Keyless};
use common::fixtures::{self, Image};
use common::{airlock, fails_as, ferro, ok, rt, TestRegistry};
use serde_json::Value;

const REPO: &str = "app/web";
const ISSUER: &str = "https://token.actions.example";
const IDENTITY: &str = "https://ci.example/org/app/.github/workflows/release.yml@refs/heads/main";

/// Pushes a small image tagged `1` to `src` and a keyless signature of it made with `k`.
fn push_signed(
    src: &TestRegistry,
    sigstore: &FakeSigstore,
    k: &Keyless,
    seed: u64,
) -> (Image, Image) {
    let client = src.client();
    let repo = Repo::parse(&src.host, REPO).expect("repo");
    let img = fixtures::small_image(seed, 1500);
    let sig = rt().block_on(async {
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        sigstore
            .push_signature(&client, &repo, &img.manifest, k)
            .await
    });
    (img, sig)
}

/// A policy of one keyless rule on `host/app/web`; `identity` is YAML (a string or a
/// `{regex: …}` map).
fn policy(host: &str, identity: &str) -> String {
    format!(
        "trusted_root: root.json\nrules:\n  - pattern: {host}/{REPO}\n    keyless:\n      - identity: {identity}\n        issuer: {ISSUER}\n"
    )
}

/// A work directory with `root` as `root.json`, the spec (its `trust:` = `spec_policy`, or none)
/// and a ledger.
fn workdir(host: &str, root: &Value, spec_policy: Option<&str>) -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(
        dir.join("root.json"),
        serde_json::to_vec(root).expect("json"),
    )
    .expect("root");
    let trust = spec_policy
        .map(|p| {
            let indented: String = p.lines().map(|l| format!("  {l}\n")).collect();
            format!("trust:\n{indented}")
        })
        .unwrap_or_default();
    std::fs::write(
        dir.join("b.yaml"),
        format!("name: b\nimages:\n  - ref: {host}/{REPO}:1\n{trust}"),
    )
    .expect("spec");
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    common::init_ledger(dir, "test.invalid/l");
    work
}

fn with_flags<'a>(a: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    a.iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect()
}

fn lock(dir: &Path, src: &TestRegistry) {
    ok(&airlock(
        dir,
        &with_flags(&["lock", "b.yaml"], &src.cli_flags()),
    ));
}

fn collect(dir: &Path, src: &TestRegistry) -> std::process::Output {
    airlock(
        dir,
        &with_flags(&["collect", "b.lock", "-o", "b.tar.zst"], &src.cli_flags()),
    )
}

fn import(dir: &Path, dst: &TestRegistry, policy_file: &str) -> std::process::Output {
    let to = format!("{}/m", dst.host);
    let flags = dst.cli_flags();
    airlock(
        dir,
        &with_flags(
            &[
                "import",
                "b.tar.zst",
                "--to",
                &to,
                "--allow-unsigned",
                "--policy",
                policy_file,
                "--ledger",
                "ledger",
                "--ledger-password-file",
                "pw",
                "--format",
                "json",
            ],
            &flags,
        ),
    )
}

/// The repositories the target lists, read with curl: empty when nothing was pushed.
fn catalog(reg: &TestRegistry) -> Vec<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("http://{}/v2/_catalog", reg.host)])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl _catalog");
    let v: Value = serde_json::from_slice(&out.stdout).expect("catalog json");
    v["repositories"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn ledger_show(dir: &Path, digest: &Digest) -> String {
    ok(&airlock(
        dir,
        &["ledger", "show", "ledger", "--digest", digest.as_str()],
    ))
}

fn assert_shows(shown: &str, needles: &[&str]) {
    for n in needles {
        assert!(shown.contains(n), "ledger show lacks `{n}`:\n{shown}");
    }
}

fn rfc3339(unix: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64),
    )
    .to_string()
}

fn the_image(report: &Value) -> Value {
    report["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == "image")
        .expect("image")
        .clone()
}

#[test]
fn keyless_rekor_v1_bundle_is_verified_at_collect_and_import_and_shown_in_the_ledger() {
    let src = ferro::start();
    let sigstore = FakeSigstore::default();
    let k = Keyless::fresh(IDENTITY, ISSUER, false);
    let Evidence::RekorV1 { integrated } = k.evidence else {
        unreachable!("fresh(.., false) is a Rekor v1 signature")
    };
    let (img, sig) = push_signed(&src, &sigstore, &k, 120);
    // Collect with the exact identity; import with a regular expression.
    let exact = policy(&src.host, &format!("\"{IDENTITY}\""));
    let work = workdir(&src.host, &sigstore.trusted_root(), Some(&exact));
    let dir = work.path();
    lock(dir, &src);
    ok(&collect(dir, &src));
    let inspect: Value = serde_json::from_str(&ok(&airlock(
        dir,
        &["inspect", "b.tar.zst", "--format", "json"],
    )))
    .expect("json");
    let at_collect = inspect["manifest"]["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == "image")
        .expect("image")["verification"][0]
        .clone();
    assert_eq!(
        at_collect["signer"]["keyless"]["identity"], IDENTITY,
        "{at_collect}"
    );
    assert_eq!(at_collect["integrated_time"], integrated, "{at_collect}");

    std::fs::write(
        dir.join("site.yaml"),
        policy(
            &src.host,
            r#"{ regex: "https://ci\\.example/org/.*@refs/heads/main" }"#,
        ),
    )
    .expect("policy");
    let dst = TestRegistry::start();
    let report: Value = serde_json::from_str(&ok(&import(dir, &dst, "site.yaml"))).expect("json");
    let s = &the_image(&report)["signatures"][0];
    assert_eq!(s["signer"]["keyless"]["identity"], IDENTITY, "{s}");
    assert_eq!(s["signer"]["keyless"]["issuer"], ISSUER, "{s}");
    assert_eq!(s["rekor_log_index"], 0, "{s}");
    assert_eq!(s["integrated_time"], integrated, "{s}");
    assert_eq!(s["bundle"], sig.layers[0].digest().to_string(), "{s}");
    assert_shows(
        &ledger_show(dir, &img.manifest.digest()),
        &[
            IDENTITY,
            ISSUER,
            "rekor log index 0",
            &format!("integrated {}", rfc3339(integrated)),
            sig.layers[0].digest().as_str(),
        ],
    );
}

#[test]
fn keyless_rekor_v2_bundle_with_a_tsa_timestamp_is_verified_at_collect_and_import() {
    let src = ferro::start();
    let sigstore = FakeSigstore::default();
    let k = Keyless::fresh("release@example.com", ISSUER, true);
    let Evidence::RekorV2Tsa { tsa_time } = k.evidence else {
        unreachable!("fresh(.., true) is a Rekor v2 signature")
    };
    let (img, sig) = push_signed(&src, &sigstore, &k, 121);
    let rule = policy(&src.host, r#"{ regex: ".*@example\\.com" }"#);
    let work = workdir(&src.host, &sigstore.trusted_root(), Some(&rule));
    let dir = work.path();
    std::fs::write(
        dir.join("site.yaml"),
        policy(&src.host, "release@example.com"),
    )
    .expect("policy");
    lock(dir, &src);
    ok(&collect(dir, &src));
    let dst = TestRegistry::start();
    let report: Value = serde_json::from_str(&ok(&import(dir, &dst, "site.yaml"))).expect("json");
    let s = &the_image(&report)["signatures"][0];
    assert_eq!(
        s["signer"]["keyless"]["identity"], "release@example.com",
        "{s}"
    );
    assert_eq!(s["timestamp"], tsa_time, "{s}");
    assert!(
        s["integrated_time"].is_null(),
        "Rekor v2 has no integrated time: {s}"
    );
    assert_eq!(s["rekor_log_index"], 0, "{s}");
    let shown = ledger_show(dir, &img.manifest.digest());
    assert_shows(
        &shown,
        &[
            "release@example.com",
            ISSUER,
            sig.layers[0].digest().as_str(),
        ],
    );
    assert_shows(&shown, &[&format!("timestamp {}", rfc3339(tsa_time))]);
    assert!(!shown.contains("; integrated "), "{shown}");
}

#[test]
fn keyless_rekor_v2_dsse_entry_is_verified_at_collect_and_import_and_shown_in_the_ledger() {
    // Rekor v2 logs a DSSE attestation as a `dsse` 0.0.2 entry: its body binds the payload
    // hash and the signature with its certificate, and a checkpoint signed by the log holds it.
    let src = ferro::start();
    let sigstore = FakeSigstore::default();
    let tsa_time = common::cosign3::now() - 60;
    let k = Keyless {
        evidence: Evidence::RekorV2DsseTsa {
            tsa_time,
            other_payload: false,
        },
        ..Keyless::fresh(IDENTITY, ISSUER, true)
    };
    let (img, sig) = push_signed(&src, &sigstore, &k, 126);
    let rule = policy(&src.host, &format!("\"{IDENTITY}\""));
    let work = workdir(&src.host, &sigstore.trusted_root(), Some(&rule));
    let dir = work.path();
    std::fs::write(dir.join("site.yaml"), &rule).expect("policy");
    lock(dir, &src);
    ok(&collect(dir, &src));
    let dst = TestRegistry::start();
    let report: Value = serde_json::from_str(&ok(&import(dir, &dst, "site.yaml"))).expect("json");
    let s = &the_image(&report)["signatures"][0];
    assert_eq!(s["signer"]["keyless"]["identity"], IDENTITY, "{s}");
    assert_eq!(s["rekor_entry"], "dsse 0.0.2", "{s}");
    assert_eq!(s["rekor_log_index"], 0, "{s}");
    assert_eq!(s["timestamp"], tsa_time, "{s}");
    assert!(s["integrated_time"].is_null(), "{s}");
    assert_shows(
        &ledger_show(dir, &img.manifest.digest()),
        &[
            IDENTITY,
            ISSUER,
            "rekor log index 0 (dsse 0.0.2)",
            &format!("timestamp {}", rfc3339(tsa_time)),
            sig.layers[0].digest().as_str(),
        ],
    );
    assert_eq!(catalog(&dst), vec!["m/app/web".to_string()]);
}

/// A bad keyless bundle: collect with a policy fails with `code` and `needle`, writes no bundle;
/// collected without a policy, `import --policy` fails the same way and pushes nothing.
fn refused_at_collect_and_import(
    sigstore: &FakeSigstore,
    k: &Keyless,
    root: &Value,
    identity: &str,
    code: i32,
    needle: &str,
    seed: u64,
) {
    let src = ferro::start();
    let (img, _) = push_signed(&src, sigstore, k, seed);
    let rule = policy(&src.host, identity);
    let work = workdir(&src.host, root, Some(&rule));
    let dir = work.path();
    lock(dir, &src);
    let err = fails_as(&collect(dir, &src), code, needle);
    assert!(err.contains(&img.manifest.digest().to_string()), "{err}");
    assert!(
        !dir.join("b.tar.zst").exists(),
        "a refused collect wrote a bundle"
    );

    // The connected side did not check: the isolated side does.
    let work = workdir(&src.host, root, None);
    let dir = work.path();
    std::fs::write(dir.join("site.yaml"), &rule).expect("policy");
    lock(dir, &src);
    ok(&collect(dir, &src));
    let dst = TestRegistry::start();
    let err = fails_as(&import(dir, &dst, "site.yaml"), code, needle);
    assert!(err.contains(&img.manifest.digest().to_string()), "{err}");
    assert_eq!(
        catalog(&dst),
        Vec::<String>::new(),
        "a refused import pushed something"
    );
}

#[test]
fn signing_times_outside_the_certificate_or_a_dsse_entry_for_another_payload_are_refused() {
    // Each case: a certificate valid ten to twenty minutes before the evidence's time, or a
    // fresh one whose Rekor v2 dsse entry logs another payload's hash. Refused at collect and
    // at import (exit 5), nothing written or pushed.
    let sigstore = FakeSigstore::default();
    let t = common::cosign3::now() - 60;
    let expired = |evidence| Keyless {
        identity: IDENTITY.into(),
        issuer: ISSUER.into(),
        valid: (t - 1200, t - 600),
        evidence,
    };
    let fresh = Keyless::fresh(IDENTITY, ISSUER, true);
    let cases = [
        (
            "an expired certificate with no timestamp",
            expired(Evidence::RekorV1 { integrated: t }),
            "the Rekor integrated time is",
        ),
        (
            "a TSA time outside the certificate's validity",
            expired(Evidence::RekorV2Tsa { tsa_time: t }),
            "the RFC 3161 timestamp is",
        ),
        (
            "a Rekor v2 dsse entry for another payload",
            Keyless {
                evidence: Evidence::RekorV2DsseTsa {
                    tsa_time: t,
                    other_payload: true,
                },
                ..fresh
            },
            "Rekor v2 dsse entry (log index 0): the entry logs payload sha256:",
        ),
    ];
    let root = sigstore.trusted_root();
    let exact = format!("\"{IDENTITY}\"");
    for (seed, (case, k, needle)) in (122..).zip(cases) {
        eprintln!("case: {case}");
        refused_at_collect_and_import(&sigstore, &k, &root, &exact, 5, needle, seed);
    }
}

#[test]
fn an_identity_the_rule_does_not_name_is_refused() {
    let sigstore = FakeSigstore::default();
    let k = Keyless::fresh(
        "https://ci.example/evil/app/.github/workflows/x.yml@refs/heads/main",
        ISSUER,
        false,
    );
    let root = sigstore.trusted_root();
    let regex = r#"{ regex: "https://ci\\.example/org/.*" }"#;
    refused_at_collect_and_import(
        &sigstore,
        &k,
        &root,
        regex,
        5,
        "which no keyless entry of the rule accepts",
        124,
    );
}

#[test]
fn a_bundle_whose_trusted_root_is_not_the_sites_is_refused_at_import() {
    // Signed under one Sigstore, which the connected side trusts and checks at collect; the
    // site trusts another root only, so the same bundle fails at import, before any push.
    let sigstore = FakeSigstore::default();
    let k = Keyless::fresh(IDENTITY, ISSUER, true);
    let src = ferro::start();
    let (img, _) = push_signed(&src, &sigstore, &k, 125);
    let rule = policy(&src.host, &format!("\"{IDENTITY}\""));
    let work = workdir(&src.host, &sigstore.trusted_root(), Some(&rule));
    let dir = work.path();
    std::fs::write(
        dir.join("site-root.json"),
        serde_json::to_vec(&FakeSigstore::default().trusted_root()).expect("json"),
    )
    .expect("root");
    std::fs::write(
        dir.join("site.yaml"),
        rule.replace("root.json", "site-root.json"),
    )
    .expect("policy");
    lock(dir, &src);
    ok(&collect(dir, &src));
    let dst = TestRegistry::start();
    let err = fails_as(
        &import(dir, &dst, "site.yaml"),
        5,
        "fails the isolated side's policy",
    );
    assert!(err.contains(&img.manifest.digest().to_string()), "{err}");
    assert!(
        err.contains("site-root.json"),
        "the error names the root used: {err}"
    );
    assert_eq!(
        catalog(&dst),
        Vec::<String>::new(),
        "a refused import pushed something"
    );
}
