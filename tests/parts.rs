//! Split bundles (issue #6): parts made by `collect --split` and `airlock split`, checked part
//! by part with `verify-parts`, and read in sequence by `verify` and `import` against real
//! registries, checked with skopeo.

mod common;

use common::rt;

use std::path::{Path, PathBuf};

use airlock::registry::Repo;
use common::fixtures::{self, Compression, Image};
use common::{airlock, fails_as, fails_with, ok, TestRegistry};

const LAYER_BYTES: usize = 120_000;

/// A source registry with two images (incompressible layers, so parts are many), a work dir
/// with two signing keys (`keys/release`, `keys/other`, password in `pw`) and the lock.
struct Env {
    src: TestRegistry,
    work: tempfile::TempDir,
    images: Vec<(&'static str, Image)>,
}

impl Env {
    fn start() -> Env {
        let src = TestRegistry::start();
        let mk = |seed: u64| {
            fixtures::image(
                vec![
                    fixtures::layer(seed, LAYER_BYTES, Compression::Gzip, false),
                    fixtures::layer(seed + 1, LAYER_BYTES / 2, Compression::Gzip, false),
                ],
                "linux/amd64",
                false,
            )
        };
        let images = vec![("apps/a", mk(10)), ("apps/b", mk(20))];
        for (repo, img) in &images {
            rt().block_on(fixtures::push_image(
                &src.client(),
                &Repo::parse(&src.host, repo).expect("repository"),
                img,
                Some("1"),
            ));
        }
        let work = tempfile::tempdir().expect("tmp");
        let dir = work.path();
        std::fs::write(dir.join("pw"), "correct horse\n").expect("pw");
        for k in ["keys/release", "keys/other"] {
            ok(&airlock(
                dir,
                &["key", "generate", "--output", k, "--password-file", "pw"],
            ));
        }
        std::fs::write(
            dir.join("p.yaml"),
            format!(
                "name: p\nimages:\n  - ref: {0}/apps/a:1\n  - ref: {0}/apps/b:1\n",
                src.host
            ),
        )
        .expect("spec");
        let env = Env { src, work, images };
        ok(&env.run(&["lock", "p.yaml"], &env.src.cli_flags()));
        env
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    fn run(&self, base: &[&str], flags: &[String]) -> std::process::Output {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(flags.iter().map(String::as_str));
        airlock(self.dir(), &args)
    }

    /// Collects the signed bundle to `out` (extra args, e.g. `--split`).
    fn collect(&self, out: &str, extra: &[&str]) -> String {
        let mut a = vec![
            "collect",
            "p.lock",
            "-o",
            out,
            "--key",
            "keys/release.key",
            "--password-file",
            "pw",
            "--cache",
            "cache",
        ];
        a.extend_from_slice(extra);
        ok(&self.run(&a, &self.src.cli_flags()))
    }

    fn import(
        &self,
        from: &str,
        dst: &TestRegistry,
        prefix: &str,
        extra: &[&str],
    ) -> std::process::Output {
        let to = format!("{}/{prefix}", dst.host);
        let mut a = vec!["import", from, "--to", &to];
        a.extend_from_slice(extra);
        self.run(&a, &dst.cli_flags())
    }
}

fn part(dir: &Path, bundle: &str, n: usize) -> PathBuf {
    dir.join(format!("{bundle}.part-{n:04}"))
}

fn concat_parts(dir: &Path, bundle: &str) -> Vec<u8> {
    let mut all = Vec::new();
    let mut n = 1;
    while part(dir, bundle, n).exists() {
        all.extend(std::fs::read(part(dir, bundle, n)).expect("part"));
        n += 1;
    }
    all
}

fn nothing_pushed(dst: &TestRegistry) -> bool {
    !dst.dir
        .path()
        .join("storage/docker/registry/v2/repositories")
        .exists()
}

const TRUST: [&str; 2] = ["--trust", "keys/release.pub"];

/// Bytes of the regular files in `dir` and whether one of them is a whole bundle being
/// written (`.NAME.partial`, not a part's `.NAME.part-NNNN.partial`).
fn dir_usage(dir: &Path, bundle: &str) -> (u64, bool) {
    let whole_tmp = format!(".{bundle}.partial");
    let mut bytes = 0;
    let mut whole = false;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        whole |= name == whole_tmp || name == bundle;
        // A file can vanish (renamed) between the listing and its metadata.
        bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    (bytes, whole)
}

#[test]
fn collect_split_writes_the_parts_split_cuts_and_never_the_whole_file() {
    let env = Env::start();
    let dir = env.dir();
    std::fs::create_dir_all(dir.join("whole")).expect("dir");
    env.collect("whole/p.tar.zst", &[]);
    let bundle_len = std::fs::metadata(dir.join("whole/p.tar.zst"))
        .expect("bundle")
        .len();
    ok(&env.run(
        &[
            "split",
            "whole/p.tar.zst",
            "--size",
            "48KiB",
            "--out-dir",
            "cut",
            "--key",
            "keys/release.key",
            "--password-file",
            "pw",
        ],
        &[],
    ));

    // collect --split, watched while it runs: the directory never holds more than the one
    // copy of the bundle, and never the whole file (collected from the warm cache, so the
    // time is all packing).
    std::fs::create_dir_all(dir.join("direct")).expect("dir");
    let mut args = vec![
        "collect",
        "p.lock",
        "-o",
        "direct/p.tar.zst",
        "--split",
        "48KiB",
        "--cache",
        "cache",
        "--key",
        "keys/release.key",
        "--password-file",
        "pw",
    ];
    let flags = env.src.cli_flags();
    args.extend(flags.iter().map(String::as_str));
    let mut child = common::airlock_spawn(dir, &args);
    let (mut peak, mut saw_whole, mut polls) = (0u64, false, 0u32);
    let status = loop {
        let (bytes, whole) = dir_usage(&dir.join("direct"), "p.tar.zst");
        peak = peak.max(bytes);
        saw_whole |= whole;
        polls += 1;
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    };
    let out = child.wait_with_output().expect("output");
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(polls > 1, "collect was never watched while running");
    assert!(!saw_whole, "the whole bundle file was written");
    let (end, _) = dir_usage(&dir.join("direct"), "p.tar.zst");
    assert!(
        peak <= end,
        "peak {peak} bytes in the directory, more than the {end} it ends with"
    );

    // The parts and parts manifest are byte for byte what splitting the one file gives.
    let names = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(dir.join(d))
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("direct"), names("cut"));
    assert!(names("cut").len() > 4, "{:?}", names("cut"));
    for n in names("cut") {
        let direct = std::fs::read(dir.join("direct").join(&n)).expect("direct");
        let cut = std::fs::read(dir.join("cut").join(&n)).expect("cut");
        assert!(direct == cut, "{n} differs");
    }
    let parts_total: u64 = names("direct")
        .iter()
        .filter(|n| n.contains(".part-"))
        .map(|n| {
            std::fs::metadata(dir.join("direct").join(n))
                .expect("part")
                .len()
        })
        .sum();
    assert_eq!(parts_total, bundle_len);
}

#[test]
fn parts_verify_and_import_exactly_like_the_whole_bundle() {
    let env = Env::start();
    let dir = env.dir();
    env.collect("whole.tar.zst", &[]);
    let whole = std::fs::read(dir.join("whole.tar.zst")).expect("bundle");

    // collect --split writes parts and a signed parts manifest instead of the bundle; the
    // parts join to the very bytes collect writes unsplit (collect is reproducible).
    std::fs::create_dir_all(dir.join("dvd")).expect("dir");
    let out = env.collect("dvd/p.tar.zst", &["--split", "64KiB", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    let n_parts = report["parts"]["manifest"]["parts"]
        .as_array()
        .expect("parts")
        .len();
    assert_eq!(n_parts, whole.len().div_ceil(64 * 1024));
    assert!(n_parts >= 4, "{n_parts} parts");
    assert!(
        !dir.join("dvd/p.tar.zst").exists(),
        "the whole bundle is removed"
    );
    assert!(dir.join("dvd/p.parts.json.sig").exists());
    assert_eq!(concat_parts(&dir.join("dvd"), "p.tar.zst"), whole);
    let pj: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dvd/p.parts.json")).expect("read"))
            .expect("json");
    assert_eq!(pj["format"], "airlock.parts/v1");
    assert_eq!(pj["name"], "p");
    assert_eq!(pj["size"], whole.len() as u64);
    assert_eq!(
        pj["sha256"],
        format!("{}", airlock::oci::Digest::of(&whole))
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("dvd"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // airlock split does the same for an existing bundle, into another directory.
    let out = env.run(
        &[
            "split",
            "whole.tar.zst",
            "--size",
            "100KiB",
            "--out-dir",
            "usb",
            "--key",
            "keys/release.key",
            "--password-file",
            "pw",
        ],
        &[],
    );
    let stdout = ok(&out);
    assert!(stdout.contains("whole.tar.zst.part-0001"), "{stdout}");
    assert_eq!(concat_parts(&dir.join("usb"), "whole.tar.zst"), whole);
    assert!(
        dir.join("whole.tar.zst").exists(),
        "split keeps the bundle unless asked"
    );

    // verify-parts: every part good, the whole digest too.
    let out = env.run(
        &["verify-parts", "usb", "--format", "json"],
        &TRUST.map(String::from),
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(v["ok"], true);
    assert_eq!(v["bundle_ok"], true);
    assert_eq!(v["bad"], 0);
    assert_eq!(v["signature"]["status"], "verified");

    // verify reads the parts as one stream: by directory and by parts manifest.
    for src in ["dvd", "usb/whole.parts.json"] {
        let stdout = ok(&env.run(&["verify", src], &TRUST.map(String::from)));
        assert!(
            stdout.contains("parts;") && stdout.contains("signed by"),
            "{stdout}"
        );
    }

    // import from parts lands exactly what import from the whole file lands.
    let dst = TestRegistry::start();
    std::fs::create_dir_all(dir.join("ledger-parent")).expect("dir");
    ok(&env.run(
        &[
            "ledger",
            "init",
            "ledger",
            "--origin",
            "test.example/ledger",
            "--password-file",
            "pw",
        ],
        &[],
    ));
    let ledger = [
        "--trust",
        "keys/release.pub",
        "--ledger",
        "ledger",
        "--ledger-password-file",
        "pw",
    ];
    ok(&env.import("dvd/p.parts.json", &dst, "fromparts", &ledger));
    ok(&env.import("whole.tar.zst", &dst, "fromwhole", &ledger));
    for (repo, img) in &env.images {
        let a = dst.skopeo_raw(&format!("fromparts/{repo}:1"));
        let b = dst.skopeo_raw(&format!("fromwhole/{repo}:1"));
        assert_eq!(a, img.manifest.bytes, "{repo}");
        assert_eq!(a, b, "{repo}");
    }
    let entries = std::fs::read_to_string(dir.join("ledger/entries.jsonl")).expect("ledger");
    let lines: Vec<serde_json::Value> = entries
        .lines()
        .map(|l| serde_json::from_str(l).expect("entry"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["bundle"], lines[1]["bundle"],
        "same bundle recorded"
    );
}

#[test]
fn bad_parts_are_named_and_nothing_is_pushed() {
    let env = Env::start();
    let dir = env.dir();
    std::fs::create_dir_all(dir.join("m")).expect("dir");
    env.collect("m/p.tar.zst", &["--split", "48KiB"]);
    let m = dir.join("m");
    let n = 4;
    let keep = |i: usize| std::fs::read(part(&m, "p.tar.zst", i)).expect("part");
    let originals: Vec<Vec<u8>> = (1..=n).map(keep).collect();
    let restore = || {
        for (i, bytes) in originals.iter().enumerate() {
            std::fs::write(part(&m, "p.tar.zst", i + 1), bytes).expect("restore");
        }
    };
    let trust = TRUST.map(String::from);
    let dst = TestRegistry::start();

    // One part lost, another damaged: verify-parts names both (not just the first), exit 4
    // (a damaged part is what `verify` calls tampering or damage).
    std::fs::remove_file(part(&m, "p.tar.zst", 2)).expect("rm");
    let mut damaged = originals[3].clone();
    damaged[1000] ^= 0x40;
    std::fs::write(part(&m, "p.tar.zst", 4), &damaged).expect("write");
    let out = env.run(&["verify-parts", "m"], &trust);
    let err = common::fails_as(&out, 4, "2 of");
    assert!(
        err.contains("p.tar.zst.part-0002` is missing")
            && err.contains("p.tar.zst.part-0004`: sha256 mismatch"),
        "{err}"
    );
    let out = env.run(&["verify-parts", "m", "--format", "json"], &trust);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let bad: Vec<(String, String)> = v["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["status"] != "ok")
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").into(),
                p["status"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        bad,
        [
            ("p.tar.zst.part-0002".to_string(), "missing".to_string()),
            ("p.tar.zst.part-0004".to_string(), "bad_digest".to_string())
        ]
    );
    // import refuses before reading: the missing part is named, nothing pushed.
    let out = env.import("m", &dst, "x", &TRUST);
    fails_with(&out, "part-0002` is missing");
    assert!(nothing_pushed(&dst));

    // The lost part found again: the damaged one is named while streaming; nothing tagged.
    std::fs::write(part(&m, "p.tar.zst", 2), &originals[1]).expect("write");
    let out = env.import("m", &dst, "x", &TRUST);
    fails_with(&out, "part `");
    let line = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        line.contains("p.tar.zst.part-0004") && line.contains("sha256 mismatch"),
        "{line}"
    );
    for (repo, _) in &env.images {
        assert!(dst.tags(&format!("x/{repo}")).is_empty(), "{repo} tagged");
    }
    let out = env.run(&["verify", "m"], &trust);
    fails_with(&out, "p.tar.zst.part-0004");
    restore();

    // A part with a truncated tail.
    std::fs::write(
        part(&m, "p.tar.zst", 3),
        &originals[2][..originals[2].len() - 7],
    )
    .expect("cut");
    let out = env.run(&["verify", "m"], &trust);
    let err = fails_with(&out, "p.tar.zst.part-0003");
    assert!(err.contains("bytes, but the parts manifest lists"), "{err}");
    restore();

    // Two parts swapped (same size): the first out of place is named.
    std::fs::write(part(&m, "p.tar.zst", 1), &originals[1]).expect("swap");
    std::fs::write(part(&m, "p.tar.zst", 2), &originals[0]).expect("swap");
    let out = env.run(&["verify", "m"], &trust);
    let err = fails_with(&out, "p.tar.zst.part-0001");
    assert!(err.contains("sha256 mismatch"), "{err}");
    restore();
    ok(&env.run(&["verify", "m"], &trust));

    // The parts manifest's signature: wrong key, missing, tampered → refused, nothing pushed.
    let out = env.run(&["verify-parts", "m", "--trust", "keys/other.pub"], &[]);
    fails_with(&out, "refused");
    let out = env.import("m", &dst, "y", &["--trust", "keys/other.pub"]);
    fails_with(&out, "refused");
    let pj = m.join("p.parts.json");
    let original = std::fs::read_to_string(&pj).expect("read");
    let tampered = original.replacen("\"name\": \"p\"", "\"name\": \"q\"", 1);
    assert_ne!(tampered, original);
    std::fs::write(&pj, &tampered).expect("tamper");
    let out = env.run(&["verify-parts", "m"], &trust);
    fails_with(&out, "does not verify");
    let out = env.import("m", &dst, "y", &TRUST);
    fails_with(&out, "refused");
    // A malformed parts manifest is refused too, and still recorded in the ledger as offered.
    std::fs::write(&pj, "{not json").expect("garble");
    ok(&env.run(
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
    let out = env.import(
        "m",
        &dst,
        "y",
        &[
            "--trust",
            "keys/release.pub",
            "--ledger",
            "ledger",
            "--ledger-password-file",
            "pw",
        ],
    );
    fails_with(&out, "not valid JSON");
    let entries = std::fs::read_to_string(dir.join("ledger/entries.jsonl")).expect("ledger");
    assert_eq!(entries.lines().count(), 1, "{entries}");
    let e: serde_json::Value = serde_json::from_str(entries.trim()).expect("entry");
    assert_eq!(
        e["bundle"]["digest"],
        airlock::oci::Digest::of(b"{not json").to_string(),
        "{e}"
    );
    std::fs::write(&pj, &original).expect("restore");
    std::fs::rename(m.join("p.parts.json.sig"), dir.join("sig")).expect("mv");
    let out = env.import("m", &dst, "y", &TRUST);
    fails_with(&out, "not signed (no p.parts.json.sig)");
    for (repo, _) in &env.images {
        assert!(dst.tags(&format!("y/{repo}")).is_empty(), "{repo} tagged");
    }
    std::fs::rename(dir.join("sig"), m.join("p.parts.json.sig")).expect("mv");

    // Bad sizes are refused with a clear error before anything is written.
    let out = env.run(&["split", "x.tar.zst", "--size", "0"], &[]);
    fails_as(&out, 2, "invalid size `0`");
    let out = env.run(
        &[
            "collect",
            "p.lock",
            "-o",
            "z.tar.zst",
            "--split",
            "4 parsecs",
        ],
        &[],
    );
    fails_as(&out, 2, "invalid size `4 parsecs`");
    assert!(!dir.join("z.tar.zst").exists());
}
