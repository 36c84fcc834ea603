//! CLI snapshots (STYLE.md §9): every subcommand's `--help`, and the one-line errors people see
//! for bad input, with exit codes. A change to what users read shows up as a snapshot diff.
//! Accept intended changes with `INSTA_UPDATE=always cargo test --test cli` and review the diff.

mod common;

use std::path::Path;
use std::process::Output;

/// Exit code, stdout and stderr, with the work dir replaced by `[TMP]`.
fn render(out: &Output, dir: &Path) -> String {
    let clean = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .replace(&dir.display().to_string(), "[TMP]")
            .trim_end()
            .to_string()
    };
    format!(
        "exit: {}\n--- stdout\n{}\n--- stderr\n{}\n",
        out.status.code().unwrap_or(-1),
        clean(&out.stdout),
        clean(&out.stderr)
    )
}

fn run(dir: &Path, args: &[&str]) -> String {
    render(&common::airlock(dir, args), dir)
}

/// Every command path airlock has, nested ones included.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["lock"],
    &["collect"],
    &["inspect"],
    &["verify"],
    &["import"],
    &["receipt"],
    &["split"],
    &["verify-parts"],
    &["key"],
    &["key", "generate"],
    &["db"],
    &["db", "build"],
    &["scan"],
    &["rescan"],
    &["ledger"],
    &["ledger", "report"],
    &["mirror-config"],
    &["pin"],
    &["admission-policy"],
    &["chart"],
    &["chart", "images"],
    &["serve"],
    &["login"],
    &["logout"],
    &["config"],
    &["config", "show"],
    &["completions"],
    &["man"],
];

#[test]
fn every_help_page() {
    let work = tempfile::tempdir().expect("tmp");
    for cmd in COMMANDS {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push("--help");
        let name = if cmd.is_empty() {
            "help".to_string()
        } else {
            format!("help-{}", cmd.join("-"))
        };
        insta::assert_snapshot!(name, run(work.path(), &args));
    }
}

#[test]
fn the_list_of_commands_is_complete() {
    // A new subcommand must get a help snapshot: compare with what `airlock --help` lists.
    let work = tempfile::tempdir().expect("tmp");
    let out = common::airlock(work.path(), &["--help"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(!listed.is_empty(), "{text}");
    for c in listed {
        assert!(
            COMMANDS.iter().any(|p| p.first() == Some(&c)),
            "`airlock {c}` has no help snapshot: add it to COMMANDS"
        );
    }
}

#[test]
fn errors_people_see() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(dir.join("not-a-bundle.tar.zst"), b"hello").expect("write");
    std::fs::write(
        dir.join("typo.yaml"),
        "name: p\nimages:\n  - ref: docker.io/library/nginx:1.27\n    platform: [linux/amd64]\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("badref.yaml"),
        "name: p\nimages:\n  - ref: \"Docker.io/UPPER/case::1\"\n",
    )
    .expect("write");
    std::fs::write(dir.join("empty.lock"), b"{}").expect("write");
    std::fs::write(
        dir.join("ok.lock"),
        r#"{"format":"airlock.lock/v1","name":"p","spec_digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","created":"2026-11-23T00:00:00Z","images":[],"charts":[]}"#,
    )
    .expect("write");
    std::fs::write(dir.join("report.json"), b"{\"artifacts\": 3}").expect("write");
    let cases: &[(&str, &[&str])] = &[
        (
            "mirror-config-missing-ledger",
            &[
                "mirror-config",
                "--ledger",
                "no-such-ledger",
                "--runtime",
                "containerd",
                "-o",
                "out",
            ],
        ),
        (
            "mirror-config-bad-report",
            &[
                "mirror-config",
                "--from-report",
                "report.json",
                "--runtime",
                "k3s",
                "-o",
                "out",
            ],
        ),
        (
            "mirror-config-bad-format",
            &[
                "mirror-config",
                "--ledger",
                "l",
                "--runtime",
                "docker",
                "-o",
                "out",
            ],
        ),
        ("pin-no-output-choice", &["pin", "a.yaml", "--ledger", "l"]),
        (
            "pin-missing-ledger",
            &[
                "pin",
                "typo.yaml",
                "--ledger",
                "no-such-ledger",
                "--in-place",
            ],
        ),
        (
            "admission-policy-bad-policy",
            &[
                "admission-policy",
                "--policy",
                "typo.yaml",
                "--ledger",
                "l",
                "--controller",
                "kyverno",
                "-o",
                "out",
            ],
        ),
        ("verify-missing-file", &["verify", "absent.tar.zst"]),
        (
            "verify-not-a-bundle",
            &["verify", "not-a-bundle.tar.zst", "--allow-unsigned"],
        ),
        ("verify-no-trust", &["verify", "not-a-bundle.tar.zst"]),
        ("serve-missing-file", &["serve", "absent.tar.zst"]),
        (
            "serve-not-a-bundle",
            &["serve", "not-a-bundle.tar.zst", "--allow-unsigned"],
        ),
        ("serve-no-trust", &["serve", "not-a-bundle.tar.zst"]),
        (
            "serve-cert-without-key",
            &["serve", "x.tar.zst", "--tls-cert", "c.pem"],
        ),
        ("lock-unknown-field", &["lock", "typo.yaml"]),
        ("lock-bad-reference", &["lock", "badref.yaml"]),
        (
            "collect-malformed-lock",
            &["collect", "empty.lock", "-o", "x.tar.zst"],
        ),
        (
            "import-bad-target",
            &["import", "not-a-bundle.tar.zst", "--to", "http://reg"],
        ),
        (
            "import-on-untrusted-without-policy",
            &[
                "import",
                "x.tar.zst",
                "--to",
                "reg.example",
                "--on-untrusted",
                "skip-artifact",
            ],
        ),
        (
            "split-bad-size",
            &["split", "not-a-bundle.tar.zst", "--size", "0"],
        ),
        (
            "ledger-verify-missing",
            &["ledger", "verify", "no-such-ledger"],
        ),
        (
            "ledger-report-missing",
            &["ledger", "report", "no-such-ledger", "-o", "r.html"],
        ),
        ("ledger-report-no-output", &["ledger", "report", "l"]),
        ("scan-no-database", &["scan", "not-a-bundle.tar.zst"]),
        (
            "scan-missing-bundle",
            &["scan", "absent.tar.zst", "--db", "vuln.db"],
        ),
        (
            "scan-not-a-database",
            &[
                "scan",
                "not-a-bundle.tar.zst",
                "--db",
                "not-a-bundle.tar.zst",
            ],
        ),
        (
            "import-db-without-scan-policy",
            &[
                "import",
                "x.tar.zst",
                "--to",
                "reg.example",
                "--db",
                "vuln.db",
            ],
        ),
        (
            "rescan-missing-arguments",
            &["rescan", "--ledger", "ledger"],
        ),
        (
            "rescan-not-a-database",
            &[
                "rescan",
                "--ledger",
                "no-such-ledger",
                "--registry",
                "reg.example/m",
                "--db",
                "not-a-bundle.tar.zst",
            ],
        ),
    ];
    for (name, args) in cases {
        let out = run(dir, args);
        assert!(!out.starts_with("exit: 0"), "{name} must fail: {out}");
        insta::assert_snapshot!(*name, out);
    }
}

#[test]
fn login_and_logout_errors() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::create_dir_all(dir.join("bad-config")).expect("dir");
    std::fs::write(
        dir.join("bad-config/config.json"),
        r#"{"credsStore": "../../bin/sh"}"#,
    )
    .expect("write");
    let bad_config = dir.join("bad-config").display().to_string();
    std::fs::write(
        dir.join("p.yaml"),
        "name: p\nimages:\n  - ref: reg.example:5000/app:1\n",
    )
    .expect("write");
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("login-no-user", &["login", "reg.example:5000"], &[]),
        (
            "login-no-password",
            &["login", "reg.example:5000", "-u", "alice"],
            &[],
        ),
        (
            "login-empty-password",
            &[
                "login",
                "reg.example:5000",
                "-u",
                "alice",
                "--password-stdin",
            ],
            &[],
        ),
        (
            "logout-helper-path-in-config",
            &["logout", "reg.example:5000"],
            &[("DOCKER_CONFIG", &bad_config)],
        ),
        (
            "lock-helper-path-in-config",
            &["lock", "p.yaml"],
            &[("DOCKER_CONFIG", &bad_config)],
        ),
    ];
    for (name, args, env) in cases {
        let out = render(&common::airlock_env(dir, args, env), dir);
        assert!(!out.starts_with("exit: 0"), "{name} must fail: {out}");
        insta::assert_snapshot!(*name, out);
    }
}

#[path = "common/chart_fixtures.rs"]
mod chart_fixtures;

#[test]
fn chart_images_errors_and_output() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let chart = chart_fixtures::CHART_YAML.as_bytes();
    std::fs::write(
        dir.join("escape.tgz"),
        chart_fixtures::tgz(&[
            ("c/Chart.yaml", b'0', chart, ""),
            ("c/../../evil", b'0', b"x", ""),
        ]),
    )
    .expect("write");
    std::fs::write(
        dir.join("link.tgz"),
        chart_fixtures::tgz(&[
            ("c/Chart.yaml", b'0', chart, ""),
            ("c/templates/x.yaml", b'2', b"", "/etc/passwd"),
        ]),
    )
    .expect("write");
    chart_fixtures::chart_dir(&dir.join("recurse"), chart_fixtures::RECURSE);
    chart_fixtures::chart_dir(&dir.join("fail"), chart_fixtures::FAIL);
    chart_fixtures::chart_dir(&dir.join("pod"), chart_fixtures::POD);
    std::fs::write(dir.join("bad-values.yaml"), "image: [unclosed\n").expect("write");
    let cases: &[(&str, &[&str])] = &[
        ("chart-images-escape", &["chart", "images", "escape.tgz"]),
        ("chart-images-link", &["chart", "images", "link.tgz"]),
        ("chart-images-recurse", &["chart", "images", "recurse"]),
        ("chart-images-fail", &["chart", "images", "fail"]),
        (
            "chart-images-bad-values",
            &["chart", "images", "pod", "-f", "bad-values.yaml"],
        ),
        ("chart-images-missing", &["chart", "images", "absent.tgz"]),
        (
            "chart-images-kube-version",
            &["chart", "images", "pod", "--kube-version", "latest"],
        ),
        (
            "chart-images-pod",
            &["chart", "images", "pod", "--set", "image=Bad:ref"],
        ),
        (
            "chart-images-pod-json",
            &["chart", "images", "pod", "--format", "json"],
        ),
    ];
    for (name, args) in cases {
        insta::assert_snapshot!(*name, run(dir, args));
    }
}

/// Exit codes by class (README "Exit codes"), each with its `--format json` error on stdout:
/// real bundles made from a local file (no registry needed), then damaged, unsigned, signed by
/// a key nobody trusts; a registry port nothing listens on; a ledger that is not one.
#[test]
fn exit_codes_by_class_and_json_errors() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::create_dir_all(dir.join("local")).expect("mkdir");
    let data = b"the file that crosses\n";
    std::fs::write(dir.join("local/tool.txt"), data).expect("write");
    let sha = common::sha256_file(&dir.join("local/tool.txt"));
    let spec = |sha: &str| {
        format!("name: f\nfiles:\n  - path: local/tool.txt\n    sha256: {sha}\n    name: tool\n")
    };
    std::fs::write(dir.join("f.yaml"), spec(&sha)).expect("write");
    std::fs::write(dir.join("pw"), b"pw\n").expect("write");
    common::ok(&common::airlock(dir, &["lock", "f.yaml"]));
    for k in ["keys/release", "keys/stranger"] {
        common::ok(&common::airlock(
            dir,
            &["key", "generate", "-o", k, "--password-file", "pw"],
        ));
    }
    // `-o` creates the bundle's directory when it is missing.
    common::ok(&common::airlock(
        dir,
        &["collect", "f.lock", "-o", "out/u.tar.zst", "--cache", "c"],
    ));
    common::ok(&common::airlock(
        dir,
        &[
            "collect",
            "f.lock",
            "-o",
            "out/s.tar.zst",
            "--cache",
            "c",
            "--key",
            "keys/release.key",
            "--password-file",
            "pw",
        ],
    ));
    let mut damaged = std::fs::read(dir.join("out/s.tar.zst")).expect("read");
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x55;
    std::fs::write(dir.join("damaged.tar.zst"), damaged).expect("write");
    // Split parts (of a bundle big enough for three 4 KiB parts): one set with a part left
    // behind, one with a part damaged.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..10_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(dir.join("local/noise.bin"), &noise).expect("write");
    let noise_sha = common::sha256_file(&dir.join("local/noise.bin"));
    std::fs::write(
        dir.join("n.yaml"),
        format!("name: n\nfiles:\n  - path: local/noise.bin\n    sha256: {noise_sha}\n    name: noise\n"),
    )
    .expect("write");
    common::ok(&common::airlock(dir, &["lock", "n.yaml"]));
    common::ok(&common::airlock(
        dir,
        &[
            "collect",
            "n.lock",
            "-o",
            "out/n.tar.zst",
            "--cache",
            "c",
            "--key",
            "keys/release.key",
            "--password-file",
            "pw",
        ],
    ));
    // Three parts whatever the bundle compresses to (its bytes move with the clock; parts are
    // at least 4 KiB); their sizes are redacted in the snapshots below.
    let bundle_len = std::fs::metadata(dir.join("out/n.tar.zst"))
        .expect("bundle")
        .len();
    let part_size = bundle_len.div_ceil(3).max(4096);
    assert_eq!(bundle_len.div_ceil(part_size), 3, "{bundle_len} bytes");
    let part_size = part_size.to_string();
    for set in ["parts-missing", "parts-damaged"] {
        common::ok(&common::airlock(
            dir,
            &[
                "split",
                "out/n.tar.zst",
                "--size",
                &part_size,
                "--out-dir",
                set,
                "--key",
                "keys/release.key",
                "--password-file",
                "pw",
            ],
        ));
    }
    std::fs::remove_file(dir.join("parts-missing/n.tar.zst.part-0002")).expect("rm part");
    let part = dir.join("parts-damaged/n.tar.zst.part-0001");
    let mut bytes = std::fs::read(&part).expect("read part");
    bytes[100] ^= 0x55;
    std::fs::write(&part, bytes).expect("write part");
    // Drift: the spec now pins another file.
    std::fs::write(dir.join("g.yaml"), spec(&sha)).expect("write");
    common::ok(&common::airlock(dir, &["lock", "g.yaml"]));
    std::fs::write(dir.join("local/tool.txt"), b"changed\n").expect("write");
    let sha2 = common::sha256_file(&dir.join("local/tool.txt"));
    std::fs::write(dir.join("g.yaml"), spec(&sha2)).expect("write");

    let trust = ["--trust", "keys/release.pub"];
    let cases: &[(&str, i32, Vec<&str>)] = &[
        (
            "exit-0-verified",
            0,
            [&["verify", "out/s.tar.zst"][..], &trust].concat(),
        ),
        (
            "exit-1-missing-file",
            1,
            [&["verify", "absent.tar.zst"][..], &trust].concat(),
        ),
        ("exit-2-usage", 2, vec!["verify", "--no-such-flag"]),
        ("exit-3-drift", 3, vec!["lock", "g.yaml", "--check"]),
        (
            "exit-4-damaged",
            4,
            [&["verify", "damaged.tar.zst"][..], &trust].concat(),
        ),
        (
            "exit-4-untrusted-signer",
            4,
            vec!["verify", "out/s.tar.zst", "--trust", "keys/stranger.pub"],
        ),
        (
            "exit-5-unsigned",
            5,
            [&["verify", "out/u.tar.zst"][..], &trust].concat(),
        ),
        (
            "exit-6-registry-down",
            6,
            vec![
                "receipt",
                "--registry",
                "127.0.0.1:9",
                "--insecure-registry",
                "127.0.0.1:9",
                "--retries",
                "1",
                "-o",
                "r.json",
            ],
        ),
        ("exit-7-not-a-ledger", 7, vec!["ledger", "verify", "local"]),
        (
            "exit-1-part-missing",
            1,
            [&["verify-parts", "parts-missing"][..], &trust].concat(),
        ),
        (
            "exit-4-part-damaged",
            4,
            [&["verify-parts", "parts-damaged"][..], &trust].concat(),
        ),
    ];
    // Digests of a damaged part move with the bundle's bytes: shown as [DIGEST].
    let digests = regex::Regex::new("sha256:[0-9a-f]{64}").expect("regex");
    // So do the sizes of its parts: a size cell and its padding become `[SIZE]  `.
    let sizes = regex::Regex::new(r"\d+(\.\d+)? (B|KiB|MiB) +").expect("regex");
    for (name, code, args) in cases {
        let out = common::airlock(dir, args);
        assert_eq!(out.status.code(), Some(*code), "{name}: {}", run(dir, args));
        // A fresh key id and a bundle whose bytes move with the clock are not snapshotted.
        let stable = !matches!(*name, "exit-0-verified" | "exit-4-damaged");
        let render = |out: &Output, dir: &Path| {
            let text = digests
                .replace_all(&render(out, dir), "[DIGEST]")
                .into_owned();
            if args[0] == "verify-parts" {
                sizes.replace_all(&text, "[SIZE]  ").into_owned()
            } else {
                text
            }
        };
        if stable {
            insta::assert_snapshot!(*name, render(&out, dir));
        }
        if *code == 0 || *code == 2 || *code == 3 {
            continue;
        }
        // The same failure with --format json: one document on stdout naming the class.
        let mut json_args = args.clone();
        json_args.extend(["--format", "json"]);
        let out = common::airlock(dir, &json_args);
        assert_eq!(out.status.code(), Some(*code), "{name} (json)");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
        if args[0] == "verify-parts" {
            // Its report is the one document: every part with its status.
            assert_eq!(v["ok"], false, "{name}: {v}");
            assert_eq!(v["bad"], 1, "{name}: {v}");
            continue;
        }
        assert_eq!(v["error"]["exit_code"], *code, "{name}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if stable {
            insta::assert_snapshot!(format!("{name}-json"), render(&out, dir));
        }
    }
    assert!(
        !dir.join("r.json").exists(),
        "no receipt is written when the registry cannot be reached"
    );
}

/// `hint:` lines for the registry failures people hit first, against real registries: TLS
/// spoken to a plain-HTTP registry and the reverse, a private CA, 401, no such tag, a name that
/// does not resolve. None of them is retried (each says "after 1 attempt(s)"); all exit 6.
#[test]
fn registry_failures_say_what_to_do_next() {
    let plain = common::TestRegistry::start();
    let tls = common::TestRegistry::start_with(common::RegistryConfig {
        tls: true,
        basic_auth: Some(("alice".into(), "s3cret".into())),
        ..Default::default()
    });
    let ca = tls.tls.as_ref().expect("tls").ca_file.clone();
    let ca = ca.to_str().expect("utf8");
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(
        dir.join("missing.yaml"),
        format!("name: m\nimages:\n  - ref: {}/app:nope\n", plain.host),
    )
    .expect("write");
    let render = |out: &Output| {
        render(out, dir)
            .replace(&plain.host, "[PLAIN]")
            .replace(&tls.host, "[TLS]")
            .replace(ca, "[CA]")
    };
    let receipt = |host: &str, extra: &[&str]| {
        let mut args = vec!["receipt", "--registry", host, "-o", "r.json"];
        args.extend_from_slice(extra);
        common::airlock(dir, &args)
    };
    let cases: Vec<(&str, Output)> = vec![
        ("hint-https-to-plain-http", receipt(&plain.host, &[])),
        (
            "hint-http-to-tls",
            receipt(&tls.host, &["--insecure-registry", &tls.host]),
        ),
        ("hint-unknown-ca", receipt(&tls.host, &[])),
        ("hint-unauthorized", receipt(&tls.host, &["--ca-file", ca])),
        (
            "hint-name-does-not-resolve",
            receipt("registry.airlock-test.invalid", &[]),
        ),
        (
            "hint-no-such-tag",
            common::airlock(
                dir,
                &["lock", "missing.yaml", "--insecure-registry", &plain.host],
            ),
        ),
    ];
    for (name, out) in &cases {
        let text = render(out);
        assert_eq!(out.status.code(), Some(6), "{name}: {text}");
        assert!(text.contains("\nhint: "), "{name} has no hint: {text}");
        // The resolver's own words differ between machines; the hint line does not.
        if *name == "hint-name-does-not-resolve" {
            assert!(
                text.contains("hint: the name `registry.airlock-test.invalid` does not resolve")
            );
        } else {
            insta::assert_snapshot!(*name, text);
        }
    }
    for (name, out) in &cases[..5] {
        let text = render(out);
        assert!(
            text.contains("after 1 attempt(s)")
                || name.contains("unauthorized")
                || name.contains("http-to-tls"),
            "{name} was retried: {text}"
        );
    }
    assert!(!dir.join("r.json").exists(), "no receipt written");
}

/// `receipt --registry HOST/PREFIX` takes the prefix from the registry value, and refuses a
/// second, different `--prefix` as a usage error (exit 2) before any request.
#[test]
fn receipt_registry_takes_a_prefix() {
    let plain = common::TestRegistry::start();
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let with_prefix = format!("{}/mirror", plain.host);
    let args = [
        "receipt",
        "--registry",
        &with_prefix,
        "--insecure-registry",
        &plain.host,
        "-o",
        "out/r.json",
        "--format",
        "json",
    ];
    let stdout = common::ok(&common::airlock(dir, &args));
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["manifests"], 0, "{v}");
    let receipt = std::fs::read_to_string(dir.join("out/r.json")).expect("receipt written");
    let r: serde_json::Value = serde_json::from_str(&receipt).expect("receipt json");
    assert_eq!(r["registry"], plain.host.as_str(), "{r}");
    let mut both = args.to_vec();
    both.extend(["--prefix", "other"]);
    let out = common::airlock(dir, &both);
    let text = render(&out, dir).replace(&plain.host, "[PLAIN]");
    assert_eq!(out.status.code(), Some(2), "{text}");
    insta::assert_snapshot!("receipt-two-prefixes", text);
}

/// `inspect` takes what `verify` takes (a bundle, `NAME.parts.json`, their directory) and
/// checks the signature only when given `--trust`: without, it says the signature is present
/// but not checked; a key that did not sign fails as `verify` does (exit 4), an unsigned
/// bundle with `--trust` is refused by policy (exit 5).
#[test]
fn inspect_reads_parts_and_checks_the_signature_only_with_trust() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::create_dir_all(dir.join("local")).expect("mkdir");
    std::fs::write(dir.join("local/tool.txt"), b"the file that crosses\n").expect("write");
    let sha = common::sha256_file(&dir.join("local/tool.txt"));
    std::fs::write(
        dir.join("f.yaml"),
        format!("name: f\nfiles:\n  - path: local/tool.txt\n    sha256: {sha}\n    name: tool\n"),
    )
    .expect("write");
    std::fs::write(dir.join("pw"), b"pw\n").expect("write");
    common::ok(&common::airlock(dir, &["lock", "f.yaml"]));
    for k in ["keys/release", "keys/stranger"] {
        common::ok(&common::airlock(
            dir,
            &["key", "generate", "-o", k, "--password-file", "pw"],
        ));
    }
    let sign = ["--key", "keys/release.key", "--password-file", "pw"];
    let collect = ["collect", "f.lock", "--cache", "c", "-o"];
    common::ok(&common::airlock(
        dir,
        &[&collect[..], &["s.tar.zst"], &sign].concat(),
    ));
    common::ok(&common::airlock(
        dir,
        &[&collect[..], &["u.tar.zst"]].concat(),
    ));
    common::ok(&common::airlock(
        dir,
        &[
            &["split", "s.tar.zst", "--size", "4KiB", "--out-dir", "parts"][..],
            &sign,
        ]
        .concat(),
    ));

    // What moves from run to run (key id, times, digests over them) is named, not snapshotted.
    let json = common::airlock(
        dir,
        &[
            "inspect",
            "s.tar.zst",
            "--trust",
            "keys/release.pub",
            "--format",
            "json",
        ],
    );
    common::ok(&json);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["signed"], true, "{v}");
    assert_eq!(v["signature"]["status"], "verified", "{v}");
    let moving = [
        (v["signature"]["signers"][0].as_str(), "[KEY-ID]"),
        (v["manifest"]["created"].as_str(), "[CREATED]"),
        (v["manifest"]["lock_digest"].as_str(), "[LOCK]"),
        (
            v["manifest"]["artifacts"][0]["digest"]
                .as_str()
                .map(|d| &d[..19]),
            "[ARTIFACT]",
        ),
    ];
    let stable = |out: &Output| {
        moving.iter().fold(render(out, dir), |s, (from, to)| {
            s.replace(from.expect("value in inspect's JSON"), to)
        })
    };
    let trust = ["--trust", "keys/release.pub"];
    let stranger = ["--trust", "keys/stranger.pub"];
    let cases: &[(&str, i32, Vec<&str>)] = &[
        ("inspect-unchecked", 0, vec!["inspect", "s.tar.zst"]),
        (
            "inspect-verified",
            0,
            [&["inspect", "s.tar.zst"][..], &trust].concat(),
        ),
        (
            "inspect-wrong-key",
            4,
            [&["inspect", "s.tar.zst"][..], &stranger].concat(),
        ),
        ("inspect-unsigned", 0, vec!["inspect", "u.tar.zst"]),
        (
            "inspect-unsigned-trust",
            5,
            [&["inspect", "u.tar.zst"][..], &trust].concat(),
        ),
        (
            "inspect-parts-verified",
            0,
            [&["inspect", "parts/s.parts.json"][..], &trust].concat(),
        ),
        ("inspect-parts-dir-unchecked", 0, vec!["inspect", "parts"]),
        (
            "inspect-parts-wrong-key",
            4,
            [&["inspect", "parts"][..], &stranger].concat(),
        ),
    ];
    for (name, code, args) in cases {
        let out = common::airlock(dir, args);
        assert_eq!(out.status.code(), Some(*code), "{name}: {}", run(dir, args));
        insta::assert_snapshot!(*name, stable(&out));
    }
    // JSON says when nothing was checked.
    let out = common::airlock(dir, &["inspect", "parts", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["signed"], true, "{v}");
    assert!(v["signature"].is_null(), "{v}");
    assert_eq!(v["parts"], 1, "{v}");
}

/// The configuration file and `AIRLOCK_*` variables: `config show` with the file alone, with a
/// variable over it, with a flag over both; a misspelt key (exit 2, naming file, line and key),
/// in text and JSON; a `--config` that does not exist.
#[test]
fn config_show_and_precedence() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let conf = dir.join(".config/airlock");
    std::fs::create_dir_all(&conf).expect("mkdir");
    std::fs::write(
        conf.join("airlock.toml"),
        "# the site's settings\nledger = \"/srv/airlock/ledger\"\nmax_requests = 4\ntimeout = \"30s\"\ndb = \"vuln.db\"\npolicy = \"policies/trust.yaml\"\nkeys = [\"keys/site.key\"]\n\n[trust]\nkeys = [\"keys/release.pub\"]\n\n[registries.\"registry.internal:5000\"]\ninsecure = true\n\n[registries.\"tls.internal\"]\nca_file = \"/etc/airlock/internal-ca.pem\"\n",
    )
    .expect("write");
    std::fs::write(dir.join("empty.toml"), "").expect("write");
    // One byte over the cap: refused by its size, before it is read.
    let big = "# padding\n".repeat(1024 * 1024 / 10 + 1);
    assert!(big.len() as u64 > airlock::config::MAX_CONFIG_BYTES);
    std::fs::write(dir.join("big.toml"), big).expect("write");
    std::fs::write(dir.join("latin1.toml"), b"# caf\xe9\nretries = 2\n").expect("write");
    std::fs::write(
        dir.join("typo.toml"),
        "ledger = \"/srv/l\"\n\n[registries.\"r:5000\"]\ninsecur = true\n",
    )
    .expect("write");
    type Case<'a> = (&'a str, i32, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("config-show-file", 0, &["config", "show"], &[]),
        (
            "config-show-env-over-file",
            0,
            &["config", "show"],
            &[
                ("AIRLOCK_MAX_REQUESTS", "7"),
                ("AIRLOCK_CACHE", "/var/cache/a"),
            ],
        ),
        (
            "config-show-flag-over-env",
            0,
            &["config", "show", "--max-requests", "9"],
            &[("AIRLOCK_MAX_REQUESTS", "7")],
        ),
        (
            "config-show-empty-file",
            0,
            &["config", "show", "--config", "empty.toml"],
            &[],
        ),
        (
            "config-bad-key",
            2,
            &["--config", "typo.toml", "verify", "x.tar.zst"],
            &[],
        ),
        (
            "config-bad-key-json",
            2,
            &["verify", "x.tar.zst", "--format", "json"],
            &[("AIRLOCK_CONFIG", "typo.toml")],
        ),
        (
            "config-missing-file",
            2,
            &["--config", "absent.toml", "config", "show"],
            &[],
        ),
        (
            "config-env-bad-value",
            2,
            &["config", "show"],
            &[("AIRLOCK_MAX_REQUESTS", "lots")],
        ),
        (
            "config-env-bad-value-import",
            2,
            &["import", "b.tar.zst", "--to", "r:5000", "--format", "json"],
            &[("AIRLOCK_JOBS", "abc")],
        ),
        (
            "config-env-bad-choice",
            2,
            &[
                "import",
                "b.tar.zst",
                "--to",
                "r:5000",
                "--policy",
                "p.yaml",
            ],
            &[("AIRLOCK_ON_UNTRUSTED", "maybe")],
        ),
        (
            "config-flag-bad-value-despite-env",
            2,
            &["config", "show", "--max-requests", "many"],
            &[("AIRLOCK_MAX_REQUESTS", "4")],
        ),
        (
            "config-file-too-large",
            2,
            &["--config", "big.toml", "config", "show"],
            &[],
        ),
        (
            "config-file-not-utf8",
            2,
            &["config", "show"],
            &[("AIRLOCK_CONFIG", "latin1.toml")],
        ),
    ];
    for (name, code, args, env) in cases {
        let out = common::airlock_env(dir, args, env);
        let text = render(&out, dir);
        assert_eq!(out.status.code(), Some(*code), "{name}: {text}");
        insta::assert_snapshot!(*name, text);
    }
    // The JSON form names each origin.
    let out = common::airlock_env(
        dir,
        &["config", "show", "--format", "json", "--retries", "2"],
        &[("AIRLOCK_MAX_REQUESTS", "7")],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let from = |flag: &str| {
        let s = v["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .find(|s| s["flag"] == flag)
            .unwrap_or_else(|| panic!("{flag} in {v}"));
        (s["from"].clone(), s["values"].clone())
    };
    assert_eq!(from("retries"), ("flag".into(), serde_json::json!(["2"])));
    assert_eq!(
        from("max-requests"),
        ("env".into(), serde_json::json!(["7"]))
    );
    assert_eq!(from("timeout"), ("file".into(), serde_json::json!(["30s"])));
    assert_eq!(
        from("require"),
        ("default".into(), serde_json::json!(["1"]))
    );
    assert_eq!(v["registries"]["registry.internal:5000"]["insecure"], true);
}

/// A flag that means nothing without another (`import --ledger-wait` without a ledger) is a
/// one-line usage error, exit 2, whether it came from the command line or its `AIRLOCK_*`
/// variable (named then), checked after the file is merged: a partner from the file counts.
#[test]
fn flag_dependencies_are_checked_after_the_config_is_merged() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(dir.join("ledger.toml"), "ledger = \"site-ledger\"\n").expect("write");
    std::fs::write(dir.join("policy.toml"), "policy = \"trust.yaml\"\n").expect("write");
    std::fs::write(dir.join("db.toml"), "db = \"vuln.db\"\n").expect("write");
    let import = ["import", "b.tar.zst", "--to", "registry.internal:5000"];
    type Case<'a> = (&'a str, Vec<&'a str>, &'a [(&'a str, &'a str)]);
    let cases: Vec<Case> = vec![
        (
            "requires-ledger-wait",
            [&import[..], &["--ledger-wait", "5"]].concat(),
            &[],
        ),
        (
            "requires-ledger-wait-json",
            [&import[..], &["--ledger-wait", "5", "--format", "json"]].concat(),
            &[],
        ),
        (
            "requires-ledger-wait-env",
            import.to_vec(),
            &[("AIRLOCK_LEDGER_WAIT", "10")],
        ),
        (
            "requires-on-untrusted",
            [&import[..], &["--on-untrusted", "skip-artifact"]].concat(),
            &[],
        ),
        (
            "requires-db",
            [&import[..], &["--db", "vuln.db"]].concat(),
            &[],
        ),
        (
            "requires-trust-receipt",
            vec![
                "collect",
                "app.lock",
                "-o",
                "b.tar.zst",
                "--trust-receipt",
                "r.pub",
            ],
            &[],
        ),
        (
            "requires-sign-with-ledger",
            vec!["receipt", "--registry", "r:5000", "-o", "r.json"],
            &[("AIRLOCK_SIGN_WITH_LEDGER", "yes")],
        ),
        (
            "requires-chart-version",
            vec!["chart", "images", "app", "--repo", "https://charts.example"],
            &[],
        ),
    ];
    for (name, args, env) in &cases {
        let out = common::airlock_env(dir, args, env);
        let text = render(&out, dir);
        assert_eq!(out.status.code(), Some(2), "{name}: {text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        insta::assert_snapshot!(*name, text);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&common::airlock(dir, &cases[1].1).stdout).expect("json");
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert_eq!(
        v["error"]["message"], "--ledger-wait requires --ledger",
        "{v}"
    );
    // The partner from the file (or its variable) satisfies the dependency: the import gets as
    // far as the missing bundle (exit 1), no usage error.
    for (args, env) in [
        (
            [
                &["--config", "ledger.toml"][..],
                &import,
                &["--ledger-wait", "5"],
            ]
            .concat(),
            &[][..],
        ),
        (
            [&import[..], &["--ledger-wait", "5"]].concat(),
            &[("AIRLOCK_LEDGER", "site-ledger")][..],
        ),
        (
            [
                &["--config", "policy.toml"][..],
                &import,
                &["--on-untrusted", "skip-artifact"],
            ]
            .concat(),
            &[][..],
        ),
        // A site-wide database is for scan and rescan: it does not reach `import --db`.
        ([&["--config", "db.toml"][..], &import].concat(), &[][..]),
    ] {
        let out = common::airlock_env(dir, &args, env);
        let text = render(&out, dir);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(!text.contains("requires"), "{args:?}: {text}");
    }
}

/// clap's own refusals (before airlock runs) are JSON too when JSON is asked for, by flag or
/// by `AIRLOCK_FORMAT`: one document on stdout, exit 2; clap's text stays on stderr.
#[test]
fn usage_errors_as_json() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (
            "usage-json-unknown-flag",
            &["verify", "b.tar.zst", "--no-such-flag", "--format", "json"],
            &[],
        ),
        (
            "usage-json-missing-argument",
            &["import", "b.tar.zst"],
            &[("AIRLOCK_FORMAT", "json")],
        ),
        (
            "usage-json-bad-value",
            &["--format=json", "scan", "x", "--max-requests", "0"],
            &[],
        ),
        ("usage-json-no-command", &["--format", "json"], &[]),
    ];
    for (name, args, env) in cases {
        let out = common::airlock_env(dir, args, env);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        assert_eq!(v["error"]["kind"], "usage", "{name}: {v}");
        assert_eq!(v["error"]["exit_code"], 2, "{name}: {v}");
        insta::assert_snapshot!(*name, render(&out, dir));
    }
    // Help and version are not errors, JSON or not.
    let out = common::airlock(dir, &["--format", "json", "--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("airlock "));
}

/// The bash completion script parses, and completing `airlock imp` offers `import` (the
/// completion function run with COMP_WORDS, as bash runs it on TAB). Every shell's script is
/// generated.
#[test]
fn completion_scripts() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = common::airlock(dir, &["completions", shell]);
        let script = common::ok(&out);
        assert!(script.contains("airlock"), "{shell}: {script}");
        std::fs::write(dir.join(format!("airlock.{shell}")), script).expect("write");
    }
    let out = render(&common::airlock(dir, &["completions", "tcsh"]), dir);
    insta::assert_snapshot!("completions-unknown-shell", out);
    let bash = |script: &str| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .expect("bash")
    };
    let syntax = bash("bash -n airlock.bash");
    assert!(syntax.status.success(), "{syntax:?}");
    let complete = |words: &str, cword: usize| {
        let out = bash(&format!(
            "source airlock.bash; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; _airlock airlock \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ));
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let words: Vec<String> = complete("airlock imp", 1)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(words, ["import"]);
    let flags = complete("airlock import --insecure-reg", 2);
    assert_eq!(flags.trim(), "--insecure-registry");
}

/// `airlock man` renders with groff (as `man` would) and has the exit-status section;
/// `-o DIR` writes one page per command.
#[test]
fn man_pages() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let page = common::ok(&common::airlock(dir, &["man"]));
    let version = common::ok(&common::airlock(dir, &["--version"]));
    let version = version.trim().trim_start_matches("airlock ");
    let head: String = page
        .replace(version, "[VERSION]")
        .lines()
        .take(12)
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("man-head", head);
    std::fs::write(dir.join("airlock.1"), &page).expect("write");
    let groff = common::which("groff").expect("groff (scripts/test.sh installs it)");
    let out = std::process::Command::new(groff)
        .args(["-man", "-Tutf8", "-P-cbou", "airlock.1"])
        .current_dir(dir)
        .output()
        .expect("groff");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // -P-cbou: plain text, no overstriking for bold or underline.
    let text = text.replace('\u{2010}', "-");
    for needle in [
        "EXIT STATUS",
        "verification failed",
        "ENVIRONMENT",
        "AIRLOCK_LONG_NAME",
        "airlock.toml",
        "import",
    ] {
        assert!(
            text.contains(needle),
            "{needle} not in the rendered page:\n{text}"
        );
    }
    let out = common::airlock(dir, &["man", "-o", "pages/man1"]);
    common::ok(&out);
    for name in [
        "airlock.1",
        "airlock-import.1",
        "airlock-ledger-verify.1",
        "airlock-config-show.1",
    ] {
        let p = dir.join("pages/man1").join(name);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".SH \"EXIT STATUS\""), "{name}");
    }
}
