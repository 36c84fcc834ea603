//! The isolated side's own signature check (issue 3): `import --policy` verifies every image
//! offline on the signatures the bundle carries, before anything is pushed;
//! `--on-untrusted skip-artifact` leaves out only what fails. Evidence must come before layers.

mod common;

use std::path::Path;

use airlock::oci::Digest;
use airlock::registry::Repo;
use airlock::trust::keys::SigningKey;
use common::fixtures::{self, Image};
use common::tarball::{blob_entry, pack, position, unpack};
use common::{airlock, fails_with, ok, TestRegistry};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

struct World {
    src: TestRegistry,
    work: tempfile::TempDir,
    release: SigningKey,
    signed: Image,
    rogue_signed: Image,
}

impl World {
    /// `signed/app:1` signed by the release key (and with an SBOM referrer), `rogue/app:1`
    /// signed by a key nobody trusts; one bundle collected with no policy of its own.
    fn start() -> World {
        let src = TestRegistry::start();
        let client = src.client();
        let release = SigningKey::generate().expect("key");
        let rogue = SigningKey::generate().expect("key");
        let signed = fixtures::small_image(80, 3000);
        let rogue_signed = fixtures::small_image(81, 3000);
        rt().block_on(async {
            let repo = Repo::parse(&src.host, "signed/app").expect("repository");
            fixtures::push_image(&client, &repo, &signed, Some("1")).await;
            fixtures::push_signed(
                &client,
                &repo,
                &signed.manifest.digest(),
                None,
                Some(&release),
            )
            .await;
            fixtures::push_referrer(&client, &repo, &signed.manifest).await;
            let repo = Repo::parse(&src.host, "rogue/app").expect("repository");
            fixtures::push_image(&client, &repo, &rogue_signed, Some("1")).await;
            fixtures::push_signed(
                &client,
                &repo,
                &rogue_signed.manifest.digest(),
                None,
                Some(&rogue),
            )
            .await;
        });
        let work = tempfile::tempdir().expect("tmp");
        let dir = work.path();
        std::fs::create_dir_all(dir.join("keys")).expect("keys");
        std::fs::write(dir.join("keys/isolated.pub"), release.public_key().to_pem()).expect("pub");
        std::fs::write(dir.join("keys/rogue.pub"), rogue.public_key().to_pem()).expect("pub");
        // The connected side's policy trusts both keys: collect verifies and records both.
        std::fs::write(
            dir.join("b.yaml"),
            format!(
                "name: b\nimages:\n  - ref: {h}/signed/app:1\n  - ref: {h}/rogue/app:1\ntrust:\n  rules:\n    - pattern: {h}/*/app\n      keys: [keys/isolated.pub, keys/rogue.pub]\n",
                h = src.host
            ),
        )
        .expect("spec");
        let flags = src.cli_flags();
        let run = |a: &[&str]| {
            let all: Vec<&str> = a
                .iter()
                .copied()
                .chain(flags.iter().map(String::as_str))
                .collect();
            ok(&airlock(dir, &all));
        };
        run(&["lock", "b.yaml"]);
        run(&["collect", "b.lock", "-o", "b.tar.zst"]);
        let out = airlock(dir, &["inspect", "b.tar.zst", "--format", "json"]);
        let inspect: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
        let images: Vec<&serde_json::Value> = inspect["manifest"]["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .filter(|a| a["kind"] == "image")
            .collect();
        assert_eq!(images.len(), 2);
        for a in images {
            assert!(
                a["verification"][0]["signer"]["key"]["key_id"].is_string(),
                "collect verified {}: {inspect}",
                a["source"]
            );
        }
        World {
            src,
            work,
            release,
            signed,
            rogue_signed,
        }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    fn policy(&self, name: &str, pattern: &str) {
        std::fs::write(
            self.dir().join(name),
            format!("rules:\n  - pattern: {pattern}\n    keys: [keys/isolated.pub]\n"),
        )
        .expect("policy");
    }

    fn import(&self, dst: &TestRegistry, bundle: &str, extra: &[&str]) -> std::process::Output {
        let to = format!("{}/m", dst.host);
        let mut a = vec!["import", bundle, "--to", &to, "--allow-unsigned"];
        a.extend_from_slice(extra);
        let flags = dst.cli_flags();
        a.extend(flags.iter().map(String::as_str));
        airlock(self.dir(), &a)
    }
}

#[test]
fn import_policy_rejects_or_skips_untrusted_images_before_pushing() {
    let w = World::start();
    let h = w.src.host.clone();
    w.policy("policy.yaml", &format!("{h}/*/app"));

    // Default: one untrusted image refuses the bundle, and nothing at all reaches the target.
    let dst = TestRegistry::start();
    let out = w.import(&dst, "b.tar.zst", &["--policy", "policy.yaml"]);
    let err = fails_with(&out, "fails the isolated side's policy");
    assert!(
        err.contains("rogue/app")
            && err.contains("policy.yaml")
            && err.contains("nothing was pushed"),
        "{err}"
    );
    assert_eq!(dst.stored_blobs(), 0, "a refused bundle pushed something");

    // A policy that does not speak for an image fails it too (fail closed).
    w.policy("narrow.yaml", &format!("{h}/signed/*"));
    let out = w.import(&dst, "b.tar.zst", &["--policy", "narrow.yaml"]);
    let err = fails_with(&out, "no rule covers");
    assert!(err.contains(&format!("{h}/rogue/app")), "{err}");
    assert_eq!(dst.stored_blobs(), 0);

    // A key the policy names that does not exist: a clear error, nothing pushed.
    std::fs::write(
        w.dir().join("nokey.yaml"),
        format!("rules:\n  - pattern: {h}/**\n    keys: [keys/absent.pub]\n"),
    )
    .expect("policy");
    let out = w.import(&dst, "b.tar.zst", &["--policy", "nokey.yaml"]);
    let err = fails_with(&out, "absent.pub");
    assert!(err.contains("nokey.yaml"), "{err}");
    assert_eq!(dst.stored_blobs(), 0);

    // skip-artifact: the trusted image, its signature and its SBOM land; the rogue one and its
    // signature do not.
    std::fs::write(w.dir().join("pw"), "pw\n").expect("pw");
    common::init_ledger(w.dir(), "test.invalid/l");
    let out = w.import(
        &dst,
        "b.tar.zst",
        &[
            "--policy",
            "policy.yaml",
            "--on-untrusted",
            "skip-artifact",
            "--format",
            "json",
            "--ledger",
            "ledger",
            "--ledger-password-file",
            "pw",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    let arts = report["artifacts"].as_array().expect("artifacts");
    let find = |suffix: &str| {
        arts.iter()
            .find(|a| a["source"].as_str().is_some_and(|s| s.ends_with(suffix)))
            .unwrap_or_else(|| panic!("{suffix} in {report}"))
    };
    let signed = find("/signed/app:1");
    assert_eq!(
        signed["signatures"][0]["signer"]["key"]["key_id"],
        w.release.key_id().to_string(),
        "{report}"
    );
    assert!(signed.get("skipped").is_none(), "{report}");
    let rogue = find("/rogue/app:1");
    assert!(
        rogue["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("0 of 1")),
        "{report}"
    );
    let rogue_sig = format!(
        "/rogue/app:sha256-{}.sig",
        w.rogue_signed.manifest.digest().hex()
    );
    assert!(find(&rogue_sig)["skipped"]
        .as_str()
        .is_some_and(|s| s.contains("left out")));

    assert!(dst.stored_blobs() > 0, "the blob counter counts");
    assert_eq!(dst.skopeo_raw("m/signed/app:1"), w.signed.manifest.bytes);
    let hex = w.signed.manifest.digest().hex().to_string();
    let tags = dst.tags("m/signed/app");
    assert!(tags.contains(&format!("sha256-{hex}.sig")), "{tags:?}");
    assert!(tags.contains(&format!("sha256-{hex}")), "{tags:?}");
    assert!(dst.tags("m/rogue/app").is_empty(), "rogue image tagged");
    let rogue_manifest = format!("m/rogue/app@{}", w.rogue_signed.manifest.digest());
    let out = common::skopeo(
        &[
            &["inspect".to_string(), "--raw".to_string()][..],
            &dst.skopeo_flags(),
            &[format!("docker://{}/{rogue_manifest}", dst.host)],
        ]
        .concat(),
    );
    assert!(!out.status.success(), "the rogue manifest was pushed");

    // The ledger says who signed what crossed, and what was left out and why.
    let entries = std::fs::read_to_string(w.dir().join("ledger/entries.jsonl")).expect("ledger");
    assert!(
        entries.contains("verified at import against --policy"),
        "{entries}"
    );
    assert!(entries.contains(w.release.key_id().as_str()), "{entries}");
    assert!(entries.contains("left out at import"), "{entries}");
    let policy_digest = Digest::of(&std::fs::read(w.dir().join("policy.yaml")).expect("policy"));
    assert!(
        entries.contains(&format!(r#""policy_digest":"{policy_digest}""#)),
        "the ledger names the policy applied: {entries}"
    );
    ok(&airlock(w.dir(), &["ledger", "verify", "ledger"]));
}

#[test]
fn evidence_listed_after_a_layer_is_refused() {
    let w = World::start();
    let good = unpack(&w.dir().join("b.tar.zst"));
    let mut m: serde_json::Value = serde_json::from_slice(&good[0].data).expect("airlock.json");
    // The signature's payload layer: move it to the end of the list (and of the tar).
    let sig_layer: Digest = {
        let blobs = m["blobs"].as_array().expect("blobs");
        let p = blobs
            .iter()
            .find(|b| b["media_type"] == "application/vnd.dev.cosign.simplesigning.v1+json")
            .expect("a simple-signing layer");
        p["digest"]
            .as_str()
            .expect("digest")
            .parse()
            .expect("digest")
    };
    let blobs = m["blobs"].as_array_mut().expect("blobs");
    let i = blobs
        .iter()
        .position(|b| b["digest"] == sig_layer.to_string())
        .expect("listed");
    let moved = blobs.remove(i);
    blobs.push(moved);
    let mut entries = good.clone();
    entries[0].set_data(serde_json::to_vec_pretty(&m).expect("json"));
    let at = position(&entries, &blob_entry(&sig_layer));
    let e = entries.remove(at);
    entries.push(e);
    std::fs::write(w.dir().join("reordered.tar.zst"), pack(&entries)).expect("write");
    let out = airlock(
        w.dir(),
        &["verify", "reordered.tar.zst", "--allow-unsigned"],
    );
    let err = fails_with(&out, "must be listed right after the manifests");
    assert!(err.contains(sig_layer.as_str()), "{err}");
    let dst = TestRegistry::start();
    let out = w.import(&dst, "reordered.tar.zst", &[]);
    fails_with(&out, "must be listed right after the manifests");
    assert_eq!(dst.stored_blobs(), 0);
}

#[test]
fn ledger_refuses_an_older_bundle_from_the_same_signer() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let img = fixtures::small_image(90, 2000);
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(&src.host, "apps/r").expect("repository"),
        &img,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(
        dir.join("r.yaml"),
        format!("name: r\nimages:\n  - ref: {}/apps/r:1\n", src.host),
    )
    .expect("spec");
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    let run = |a: &[&str], flags: &[String]| {
        let all: Vec<&str> = a
            .iter()
            .copied()
            .chain(flags.iter().map(String::as_str))
            .collect();
        airlock(dir, &all)
    };
    ok(&run(
        &[
            "key",
            "generate",
            "--output",
            "keys/rel",
            "--password-file",
            "pw",
        ],
        &[],
    ));
    ok(&run(
        &[
            "ledger",
            "init",
            "ledger",
            "--origin",
            "test.invalid/r",
            "--password-file",
            "pw",
        ],
        &[],
    ));
    let sflags = src.cli_flags();
    ok(&run(&["lock", "r.yaml"], &sflags));
    for seq in ["5", "7"] {
        let out = format!("r{seq}.tar.zst");
        ok(&run(
            &[
                "collect",
                "r.lock",
                "-o",
                &out,
                "--sequence",
                seq,
                "--key",
                "keys/rel.key",
                "--password-file",
                "pw",
            ],
            &sflags,
        ));
    }
    let to = format!("{}/m", dst.host);
    let dflags = dst.cli_flags();
    let import = |bundle: &str, extra: &[&str]| {
        let mut a = vec![
            "import",
            bundle,
            "--to",
            &to,
            "--trust",
            "keys/rel.pub",
            "--ledger",
            "ledger",
            "--ledger-password-file",
            "pw",
        ];
        a.extend_from_slice(extra);
        run(&a, &dflags)
    };
    ok(&import("r7.tar.zst", &[]));
    // The older bundle: refused before any blob, recorded as rejected.
    let err = fails_with(&import("r5.tar.zst", &[]), "sequence 5, lower than");
    assert!(
        err.contains("sequence 7")
            && err.contains("ledger entry 0")
            && err.contains("--allow-older"),
        "{err}"
    );
    // The same bundle again is not a replay; a deliberate rollback passes with --allow-older.
    ok(&import("r7.tar.zst", &[]));
    ok(&import("r5.tar.zst", &["--allow-older"]));
    let entries = std::fs::read_to_string(dir.join("ledger/entries.jsonl")).expect("ledger");
    let lines: Vec<&str> = entries.lines().collect();
    assert_eq!(lines.len(), 4, "{entries}");
    assert!(lines[1].contains("rejected") && lines[1].contains("lower than"));
    assert!(lines[3].contains("admitted") && lines[3].contains(r#""sequence":5"#));
    // A ledger that does not verify cannot vouch for replay state: the import stops.
    let tampered = entries.replacen("admitted", "admitteD", 1);
    std::fs::write(dir.join("ledger/entries.jsonl"), tampered).expect("tamper");
    let err = fails_with(
        &import("r7.tar.zst", &[]),
        "does not match its signed checkpoint",
    );
    assert!(err.contains("replay checks"), "{err}");
    assert!(err.contains("ledger verify"), "{err}");
}
