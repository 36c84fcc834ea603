//! Delta bundles (issue #6): a receipt of what the isolated side's registry holds, a collect
//! that leaves those blobs out, and an import that checks they are there before it pushes.

mod common;

use common::rt;

use std::path::Path;

use airlock::registry::Repo;
use common::fixtures::{self, Compression, Image};
use common::{airlock, fails_with, ok, TestRegistry};

const BASE_LAYER: usize = 400_000;
const CHANGED_LAYER: usize = 100_000;

fn push(reg: &TestRegistry, repo: &str, img: &Image, tag: &str) {
    rt().block_on(fixtures::push_image(
        &reg.client(),
        &Repo::parse(&reg.host, repo).expect("repository"),
        img,
        Some(tag),
    ));
}

fn run(dir: &Path, base: &[&str], flags: &[String]) -> std::process::Output {
    let mut args: Vec<&str> = base.to_vec();
    args.extend(flags.iter().map(String::as_str));
    airlock(dir, &args)
}

/// Every blob of `reference` can be pulled from `reg` (skopeo copies the whole image).
fn pullable(reg: &TestRegistry, reference: &str, out: &Path) -> bool {
    common::skopeo(&[
        "copy".into(),
        "--src-tls-verify=false".into(),
        format!("docker://{}/{reference}", reg.host),
        format!("dir:{}", out.display()),
    ])
    .status
    .success()
}

#[test]
fn delta_bundle_carries_only_the_changed_layer() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let base = fixtures::layer(1, BASE_LAYER, Compression::Gzip, false);
    let v1 = fixtures::image(
        vec![
            base.clone(),
            fixtures::layer(2, CHANGED_LAYER, Compression::Gzip, false),
        ],
        "linux/amd64",
        false,
    );
    let changed = fixtures::layer(3, CHANGED_LAYER, Compression::Gzip, false);
    let changed_size = changed.0.bytes.len() as u64;
    let v2 = fixtures::image(vec![base.clone(), changed.clone()], "linux/amd64", false);
    let other = fixtures::small_image(9, 50_000);
    push(&src, "apps/a", &v1, "1");
    push(&src, "apps/a", &v2, "2");
    push(&src, "apps/b", &other, "1");

    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    for k in ["keys/site", "keys/other"] {
        ok(&airlock(
            dir,
            &["key", "generate", "--output", k, "--password-file", "pw"],
        ));
    }
    for (name, tag) in [("v1", "1"), ("v2", "2")] {
        std::fs::write(
            dir.join(format!("{name}.yaml")),
            format!(
                "name: {name}\nimages:\n  - ref: {0}/apps/a:{tag}\n  - ref: {0}/apps/b:1\n",
                src.host
            ),
        )
        .expect("spec");
        ok(&run(
            dir,
            &["lock", &format!("{name}.yaml")],
            &src.cli_flags(),
        ));
    }
    let sflags = src.cli_flags();
    let dflags = dst.cli_flags();
    let to = format!("{}/mirror", dst.host);
    ok(&run(
        dir,
        &["collect", "v1.lock", "-o", "v1.tar.zst"],
        &sflags,
    ));
    ok(&run(
        dir,
        &[
            "ledger",
            "init",
            "ledger",
            "--origin",
            "t.example/l",
            "--password-file",
            "pw",
        ],
        &[],
    ));
    ok(&run(
        dir,
        &[
            "import",
            "v1.tar.zst",
            "--to",
            &to,
            "--allow-unsigned",
            "--ledger",
            "ledger",
            "--ledger-password-file",
            "pw",
        ],
        &dflags,
    ));

    // The isolated side takes a signed receipt of what it holds under the prefix.
    let out = run(
        dir,
        &[
            "receipt",
            "--registry",
            &dst.host,
            "--prefix",
            "mirror",
            "-o",
            "receipt.json",
            "--key",
            "keys/site.key",
            "--password-file",
            "pw",
            "--format",
            "json",
        ],
        &dflags,
    );
    let r: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(r["manifests"], 2, "{r}");
    assert_eq!(r["blobs"], 5, "two configs, three layers: {r}");
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("receipt.json")).expect("read"))
            .expect("json");
    let held: Vec<&str> = receipt["blobs"]
        .as_array()
        .expect("blobs")
        .iter()
        .filter_map(|b| b["digest"].as_str())
        .collect();
    assert!(held.contains(&base.0.digest().as_str()));

    // With --ledger, only repositories airlock imported into count: an image pushed by
    // someone else under the same prefix is in the prefix receipt but not in the ledger one.
    let stranger = fixtures::small_image(77, 30_000);
    push(&dst, "mirror/unmanaged", &stranger, "1");
    let blobs_of = |extra: &[&str]| {
        let mut a = vec![
            "receipt",
            "--registry",
            &dst.host,
            "--prefix",
            "mirror",
            "-o",
            "r2.json",
            "--format",
            "json",
        ];
        a.extend_from_slice(extra);
        let v: serde_json::Value = serde_json::from_str(&ok(&run(dir, &a, &dflags))).expect("json");
        v["blobs"].as_u64().expect("blobs")
    };
    assert_eq!(
        blobs_of(&[]),
        7,
        "the stranger's config and layer are under the prefix"
    );
    assert_eq!(
        blobs_of(&["--ledger", "ledger"]),
        5,
        "only what the ledger records"
    );

    // A receipt signed by another key is refused when the connected side asks for the site's.
    let out = run(
        dir,
        &[
            "collect",
            "v2.lock",
            "-o",
            "bad.tar.zst",
            "--have",
            "receipt.json",
            "--trust-receipt",
            "keys/other.pub",
        ],
        &sflags,
    );
    fails_with(&out, "refused");
    assert!(!dir.join("bad.tar.zst").exists());

    // Signed with the site's ledger key instead: checked against the ledger's verifier key.
    ok(&run(
        dir,
        &[
            "receipt",
            "--registry",
            &dst.host,
            "--prefix",
            "mirror",
            "--ledger",
            "ledger",
            "--sign-with-ledger",
            "--ledger-password-file",
            "pw",
            "-o",
            "lr.json",
        ],
        &dflags,
    ));
    let note = std::fs::read_to_string(dir.join("lr.json.note")).expect("ledger signature");
    assert!(note.starts_with("airlock receipt v1\nsha256:"), "{note}");
    let with_ledger = |trust: &str, out: &str| {
        run(
            dir,
            &[
                "collect",
                "v2.lock",
                "-o",
                out,
                "--have",
                "lr.json",
                "--trust-receipt",
                trust,
            ],
            &sflags,
        )
    };
    ok(&with_ledger("ledger/ledger.vkey", "lv2.tar.zst"));
    ok(&run(
        dir,
        &[
            "ledger",
            "init",
            "other-ledger",
            "--origin",
            "elsewhere.example/l",
            "--password-file",
            "pw",
        ],
        &[],
    ));
    let err = fails_with(
        &with_ledger("other-ledger/ledger.vkey", "x.tar.zst"),
        "refused",
    );
    assert!(err.contains("lr.json.note"), "{err}");
    // A receipt edited after signing: the note no longer covers it.
    let mut edited = std::fs::read(dir.join("lr.json")).expect("receipt");
    edited.extend_from_slice(b" ");
    std::fs::write(dir.join("lr.json"), edited).expect("edit");
    fails_with(
        &with_ledger("ledger/ledger.vkey", "y.tar.zst"),
        "covers another receipt",
    );
    assert!(!dir.join("x.tar.zst").exists() && !dir.join("y.tar.zst").exists());

    // v2 against the receipt: only the changed layer (and small metadata) travels.
    let out = run(
        dir,
        &[
            "collect",
            "v2.lock",
            "-o",
            "v2.tar.zst",
            "--have",
            "receipt.json",
            "--trust-receipt",
            "keys/site.pub",
            "--format",
            "json",
        ],
        &sflags,
    );
    let c: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    let size = std::fs::metadata(dir.join("v2.tar.zst"))
        .expect("bundle")
        .len();
    // The fixed overhead: airlock.json, index.json, two new manifests and a config, tar headers.
    let overhead = 16 * 1024;
    eprintln!(
        "delta bundle: {size} bytes for a changed layer of {changed_size} bytes (full v2 content: {} bytes)",
        BASE_LAYER + 2 * CHANGED_LAYER
    );
    assert!(size >= changed_size, "{size}");
    assert!(
        size <= changed_size + changed_size / 10 + overhead,
        "delta bundle of {size} bytes for a {changed_size}-byte change; report: {c}"
    );
    let toc =
        airlock::bundle::reader::read_table_of_contents(&dir.join("v2.tar.zst")).expect("toc");
    let omitted: Vec<String> = toc
        .manifest
        .omitted
        .iter()
        .map(|o| o.digest.to_string())
        .collect();
    assert!(
        omitted.contains(&base.0.digest().to_string()),
        "{omitted:?}"
    );
    assert!(!omitted.contains(&changed.0.digest().to_string()));
    assert_eq!(
        toc.manifest.receipt,
        Some(airlock::oci::Digest::of(
            &std::fs::read(dir.join("receipt.json")).expect("read")
        ))
    );
    ok(&run(
        dir,
        &["verify", "v2.tar.zst", "--allow-unsigned"],
        &[],
    ));

    // Into an empty registry: refused before anything is tagged, every missing blob named.
    let empty = TestRegistry::start();
    let to_empty = format!("{}/mirror", empty.host);
    let out = run(
        dir,
        &[
            "import",
            "v2.tar.zst",
            "--to",
            &to_empty,
            "--allow-unsigned",
        ],
        &empty.cli_flags(),
    );
    let err = fails_with(&out, "delta bundle");
    assert!(err.contains(&base.0.digest().to_string()), "{err}");
    assert!(err.contains("not in the target registry"), "{err}");
    assert!(empty.tags("mirror/apps/a").is_empty());
    assert!(empty.tags("mirror/apps/b").is_empty());

    // Into the site that holds v1: imports, and the image is whole (skopeo pulls every blob).
    ok(&run(
        dir,
        &["import", "v2.tar.zst", "--to", &to, "--allow-unsigned"],
        &dflags,
    ));
    assert_eq!(dst.skopeo_raw("mirror/apps/a:2"), v2.manifest.bytes);
    assert_eq!(dst.skopeo_raw("mirror/apps/b:1"), other.manifest.bytes);
    assert!(pullable(&dst, "mirror/apps/a:2", &dir.join("pulled")));

    // A delta imported under another prefix mounts the omitted blobs from where the receipt
    // says they are.
    let to_other = format!("{}/elsewhere", dst.host);
    ok(&run(
        dir,
        &[
            "import",
            "v2.tar.zst",
            "--to",
            &to_other,
            "--allow-unsigned",
        ],
        &dflags,
    ));
    assert!(pullable(&dst, "elsewhere/apps/a:2", &dir.join("pulled2")));
}

#[test]
fn a_delta_never_leaves_out_evidence() {
    // Both images have an SBOM referrer whose config is the same empty `{}` blob: the site
    // holds it after v1, yet v2 must carry it, since evidence is checked before the target is.
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let (one, two) = (
        fixtures::small_image(31, 20_000),
        fixtures::small_image(32, 20_000),
    );
    push(&src, "apps/s", &one, "1");
    push(&src, "apps/s", &two, "2");
    let repo = Repo::parse(&src.host, "apps/s").expect("repository");
    let (sbom1, _) = rt().block_on(fixtures::push_referrer(&src.client(), &repo, &one.manifest));
    rt().block_on(fixtures::push_referrer_numbered(
        &src.client(),
        &repo,
        &two.manifest,
        2,
    ));
    let empty = sbom1.config.digest().to_string();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let (sflags, dflags) = (src.cli_flags(), dst.cli_flags());
    let to = format!("{}/m", dst.host);
    for (name, tag) in [("s1", "1"), ("s2", "2")] {
        std::fs::write(
            dir.join(format!("{name}.yaml")),
            format!(
                "name: {name}\nimages:\n  - ref: {}/apps/s:{tag}\n",
                src.host
            ),
        )
        .expect("spec");
        ok(&run(dir, &["lock", &format!("{name}.yaml")], &sflags));
    }
    ok(&run(
        dir,
        &["collect", "s1.lock", "-o", "s1.tar.zst"],
        &sflags,
    ));
    ok(&run(
        dir,
        &["import", "s1.tar.zst", "--to", &to, "--allow-unsigned"],
        &dflags,
    ));
    ok(&run(
        dir,
        &[
            "receipt",
            "--registry",
            &dst.host,
            "--prefix",
            "m",
            "-o",
            "r.json",
        ],
        &dflags,
    ));
    let receipt = std::fs::read_to_string(dir.join("r.json")).expect("receipt");
    assert!(receipt.contains(&empty), "the site holds the empty config");
    ok(&run(
        dir,
        &["collect", "s2.lock", "-o", "s2.tar.zst", "--have", "r.json"],
        &sflags,
    ));
    let out = airlock(dir, &["inspect", "s2.tar.zst", "--format", "json"]);
    let inspect: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    let listed = |key: &str| -> Vec<String> {
        inspect["manifest"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| b["digest"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(listed("blobs").contains(&empty), "{inspect}");
    assert!(!listed("omitted").contains(&empty), "{inspect}");
    ok(&airlock(dir, &["verify", "s2.tar.zst", "--allow-unsigned"]));
    ok(&run(
        dir,
        &["import", "s2.tar.zst", "--to", &to, "--allow-unsigned"],
        &dflags,
    ));
    assert_eq!(dst.skopeo_raw("m/apps/s:2"), two.manifest.bytes);
}
