//! `airlock.toml` end to end, against real registries: a TLS source whose CA and a plain-HTTP
//! target whose `insecure` come only from the configuration file, and the bundle's trusted key
//! and the request limit from it too. The same commands without the file fail to reach them,
//! so the file is what made them work.

mod common;

use airlock::registry::Repo;
use common::{airlock_env, fixtures, ok, rt, RegistryConfig, TestRegistry};

/// A small image pushed to `src` as `repo:1`, and a work dir whose `p.yaml` names it.
fn image_and_spec(
    src: &TestRegistry,
    repo: &str,
    seed: u64,
) -> (fixtures::Image, tempfile::TempDir) {
    let img = fixtures::small_image(seed, 3000);
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(&src.host, repo).expect("repo"),
        &img,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    std::fs::write(
        work.path().join("p.yaml"),
        format!("name: p\nimages:\n  - ref: {}/{repo}:1\n", src.host),
    )
    .expect("spec");
    (img, work)
}

#[test]
fn registries_and_trust_from_the_config_file_alone() {
    let src = TestRegistry::start_with(RegistryConfig {
        tls: true,
        ..Default::default()
    });
    let dst = TestRegistry::start();
    let (img, work) = image_and_spec(&src, "apps/web", 71);
    let dir = work.path();
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    let ca = src.tls.as_ref().expect("tls").ca_file.display().to_string();
    // Relative paths in the file are relative to the file: `keys/release.pub` is beside it.
    let site = dir.join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(
        site.join("airlock.toml"),
        format!(
            "max_requests = 2\n\n[trust]\nkeys = [\"keys/release.pub\"]\n\n[registries.\"{}\"]\nca_file = \"{ca}\"\n\n[registries.\"{}\"]\ninsecure = true\n",
            src.host, dst.host
        ),
    )
    .expect("config");
    let env = [("AIRLOCK_CONFIG", "site/airlock.toml")];
    let run = |args: &[&str]| airlock_env(dir, args, &env);
    ok(&run(&[
        "key",
        "generate",
        "-o",
        "site/keys/release",
        "--password-file",
        "pw",
    ]));

    // Without the file, the source's CA is unknown and the target speaks plain HTTP: exit 6.
    let bare = common::airlock(dir, &["lock", "p.yaml"]);
    assert_eq!(bare.status.code(), Some(6), "{bare:?}");

    ok(&run(&["lock", "p.yaml"]));
    ok(&run(&[
        "collect",
        "p.lock",
        "-o",
        "out/p.tar.zst",
        "--key",
        "site/keys/release.key",
        "--password-file",
        "pw",
    ]));
    let to = format!("{}/mirror", dst.host);
    let bare = common::airlock(
        dir,
        &[
            "import",
            "out/p.tar.zst",
            "--to",
            &to,
            "--trust",
            "site/keys/release.pub",
        ],
    );
    assert_eq!(
        bare.status.code(),
        Some(6),
        "plain HTTP needs the file: {bare:?}"
    );
    // No --trust, no --insecure-registry: both from the file.
    let out = ok(&run(&[
        "import",
        "out/p.tar.zst",
        "--to",
        &to,
        "--format",
        "json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(
        report["signature"].to_string().contains("verified"),
        "signature checked with the file's key: {report}"
    );
    assert_eq!(dst.tags("mirror/apps/web"), ["1"]);
    let got = dst.skopeo_raw("mirror/apps/web:1");
    assert_eq!(
        got,
        img.manifest.bytes.to_vec(),
        "the manifest arrives byte for byte"
    );

    // What `config show` says for this command line: the file's values, named as such.
    let shown = ok(&run(&["config", "show", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&shown).expect("json");
    let setting = |flag: &str| {
        v["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .find(|s| s["flag"] == flag)
            .cloned()
            .expect("setting")
    };
    assert_eq!(setting("max-requests")["values"], serde_json::json!(["2"]));
    assert_eq!(setting("max-requests")["from"], "file");
    assert_eq!(setting("trust")["from"], "file");
    assert_eq!(v["registries"][&dst.host]["insecure"], true);
}

/// `[registries."HOST"] auth_file`: that registry's credentials come from its own file
/// (relative to the configuration file), asked for that host only. A basic-auth registry
/// answers 401 without it (exit 6); with it, `lock` resolves; the same file named for another
/// host gives nothing to this one.
#[test]
fn a_registry_gets_its_credentials_from_its_own_file() {
    let src = TestRegistry::start_with(RegistryConfig {
        basic_auth: Some(("carol".into(), "per-registry-s3cret".into())),
        ..Default::default()
    });
    let (img, work) = image_and_spec(&src, "apps/auth", 72);
    let dir = work.path();
    let site = dir.join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("carol:per-registry-s3cret");
    std::fs::write(
        site.join("src-auth.json"),
        format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}",
            src.host
        ),
    )
    .expect("auth file");
    let insecure = format!("[registries.\"{}\"]\ninsecure = true\n", src.host);
    let config = |host: &str| match host == src.host {
        true => format!("{insecure}auth_file = \"src-auth.json\"\n"),
        false => format!("{insecure}\n[registries.\"{host}\"]\nauth_file = \"src-auth.json\"\n"),
    };
    let lock = |conf: &str| {
        std::fs::write(site.join("airlock.toml"), conf).expect("config");
        airlock_env(
            dir,
            &["lock", "p.yaml"],
            &[("AIRLOCK_CONFIG", "site/airlock.toml")],
        )
    };
    let out = lock(&insecure);
    assert_eq!(out.status.code(), Some(6), "no credentials: {out:?}");
    let out = lock(&config("other.example:5000"));
    assert_eq!(out.status.code(), Some(6), "another host's file: {out:?}");
    ok(&lock(&config(&src.host)));
    assert!(
        std::fs::read_to_string(dir.join("p.lock"))
            .expect("lock")
            .contains(&img.manifest.digest().to_string()),
        "the lock pins the image"
    );
}
