//! Hostile peers (issue 10, classes 1, 2, 5 and 6): a crafted bundle, a registry that points us
//! elsewhere, a registry that floods or trickles, and text meant for the terminal. Every case
//! runs the real binary against a real registry (behind the fault proxy where a real registry
//! would never misbehave) and checks what reached the registry, independently of airlock.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use airlock::registry::Repo;
use common::fixtures;
use common::proxy::{Fault, Proxy, Recorder};
use common::tarball::{pack, position, unpack};
use common::{airlock, airlock_peak, fails_with, ok, rt, TestRegistry, MAX_BAD_INPUT_RSS};

/// A registry holding `apps/a:1`, and a work directory.
struct Env {
    src: TestRegistry,
    work: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        Env::start_with(TestRegistry::start())
    }

    fn start_with(src: TestRegistry) -> Env {
        let img = fixtures::small_image(7, 3000);
        let client = src.client();
        rt().block_on(fixtures::push_image(
            &client,
            &Repo::parse(&src.host, "apps/a").expect("repository"),
            &img,
            Some("1"),
        ));
        Env {
            src,
            work: tempfile::tempdir().expect("tmp"),
        }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Writes `spec.yaml` naming `apps/a:1` as served by `host`.
    fn spec(&self, host: &str) {
        std::fs::write(
            self.dir().join("spec.yaml"),
            format!("name: small\nimages:\n  - ref: {host}/apps/a:1\n"),
        )
        .expect("spec");
    }

    /// Locks and collects an unsigned bundle straight from the registry.
    fn bundle(&self) -> PathBuf {
        let flags = self.src.cli_flags();
        self.spec(&self.src.host);
        ok(&run(self.dir(), &["lock", "spec.yaml"], &flags));
        ok(&run(
            self.dir(),
            &["collect", "spec.lock", "-o", "good.tar.zst"],
            &flags,
        ));
        self.dir().join("good.tar.zst")
    }

    /// `good.tar.zst` with `airlock.json` changed by `edit`, written as `name`.
    fn crafted(&self, name: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
        let mut entries = unpack(&self.dir().join("good.tar.zst"));
        let i = position(&entries, "airlock.json");
        let mut m: serde_json::Value = serde_json::from_slice(&entries[i].data).expect("json");
        edit(&mut m);
        entries[i].set_data(serde_json::to_vec(&m).expect("json"));
        std::fs::write(self.dir().join(name), pack(&entries)).expect("write");
        name.to_string()
    }
}

fn run(dir: &Path, base: &[&str], flags: &[String]) -> Output {
    let mut args: Vec<&str> = base.to_vec();
    if matches!(base.first(), Some(&"verify") | Some(&"import")) {
        args.push("--allow-unsigned");
    }
    args.extend(flags.iter().map(String::as_str));
    airlock(dir, &args)
}

/// [`run`] under `/usr/bin/time`; asserts the peak RSS bound and prints the figure.
fn run_bounded(case: &str, dir: &Path, base: &[&str], flags: &[String]) -> Output {
    let mut args: Vec<&str> = base.to_vec();
    if matches!(base.first(), Some(&"verify") | Some(&"import")) {
        args.push("--allow-unsigned");
    }
    args.extend(flags.iter().map(String::as_str));
    let (out, peak) = airlock_peak(dir, &args, &[]);
    eprintln!("peak RSS {case}: {} KiB", peak / 1024);
    assert!(
        peak < MAX_BAD_INPUT_RSS,
        "{case}: peak RSS {peak} bytes over {MAX_BAD_INPUT_RSS}"
    );
    out
}

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("error line")
}

/// Class 1: every name from a bundle is parsed into the distribution grammar before use, so a
/// crafted `airlock.json` cannot steer a push outside the target prefix, in `verify` or
/// `import`, and the refusal names the field without echoing a flood.
#[test]
fn names_from_a_bundle_never_leave_the_target_prefix() {
    let env = Env::start();
    env.bundle();
    let dst = TestRegistry::start();
    let escape = "../../../../prod/app/manifests/pwned";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "tag with dot-dot segments",
            env.crafted("dots.tar.zst", |m| m["artifacts"][0]["tag"] = escape.into()),
            "not a valid tag",
        ),
        (
            "300-character tag",
            env.crafted("long.tar.zst", |m| {
                m["artifacts"][0]["tag"] = "a".repeat(300).into()
            }),
            "(300 characters)",
        ),
        (
            "repository escaping the prefix",
            env.crafted("repo.tar.zst", |m| {
                m["artifacts"][0]["repository"] = "apps/../../../prod/app".into()
            }),
            "not a valid repository name",
        ),
        (
            "repository with a query",
            env.crafted("query.tar.zst", |m| {
                m["artifacts"][0]["repository"] = "apps/a?x=1".into()
            }),
            "not a valid repository name",
        ),
        (
            "media type with a header injection",
            env.crafted("media.tar.zst", |m| {
                m["artifacts"][0]["media_type"] =
                    "application/vnd.oci.image.manifest.v1+json\r\nX-Evil: 1".into()
            }),
            "not a valid media type",
        ),
    ];
    let to = format!("{}/mirror", dst.host);
    let mut flags = dst.cli_flags();
    flags.extend(["--to".to_string(), to]);
    for (case, bundle, needle) in &cases {
        eprintln!("--- {case}");
        let v = run_bounded(case, env.dir(), &["verify", bundle], &[]);
        let stderr = fails_with(&v, needle);
        let line = error_line(&stderr);
        eprintln!("{line}");
        assert!(line.contains("airlock.json"), "{case}: {line}");
        assert!(
            line.len() < 600,
            "{case}: error line of {} bytes",
            line.len()
        );
        let i = run(env.dir(), &["import", bundle], &flags);
        fails_with(&i, needle);
    }
    // Nothing at all reached the target: no repository, in or out of the prefix.
    for repo in ["prod/app", "mirror/apps/a", "mirror/test/app"] {
        assert!(dst.tags(repo).is_empty(), "{repo} has tags");
    }
    assert_eq!(dst.stored_blobs(), 0, "blobs reached the target");
    // The good bundle still imports: the checks refuse only what breaks the grammar.
    let good = run(env.dir(), &["import", "good.tar.zst"], &flags);
    ok(&good);
    assert_eq!(dst.tags("mirror/apps/a"), vec!["1".to_string()]);
}

/// Class 2: a `Location` or `Link` to another origin is refused before anything (credentials,
/// blobs) is sent there; a token realm on another origin over plain HTTP never gets the
/// password.
#[test]
fn a_registry_cannot_send_credentials_or_content_elsewhere() {
    let user = ("alice".to_string(), "s3cret-pw".to_string());
    let env = Env::start_with(TestRegistry::start_with(common::RegistryConfig {
        basic_auth: Some(user.clone()),
        ..Default::default()
    }));
    env.bundle();
    let elsewhere = Recorder::start();
    let creds = format!("--creds={}:{}", user.0, user.1);

    // An upload session pointed at another origin: import refuses it, nothing goes there.
    let dst = TestRegistry::start_with(common::RegistryConfig {
        basic_auth: Some(user.clone()),
        ..Default::default()
    });
    let proxy = Proxy::start(
        &dst.host,
        Fault::ForeignLocation {
            other: elsewhere.host.clone(),
        },
    );
    let out = run(
        env.dir(),
        &[
            "import",
            "good.tar.zst",
            "--to",
            &format!("{}/mirror", proxy.host),
            "--insecure-registry",
            &proxy.host,
            &creds,
        ],
        &[],
    );
    let stderr = fails_with(&out, "refusing to follow Location");
    eprintln!("{}", error_line(&stderr));
    assert!(stderr.contains(&elsewhere.host), "{stderr}");
    assert!(
        !stderr.contains(&user.1),
        "the password is printed: {stderr}"
    );
    assert!(
        elsewhere.seen().is_empty(),
        "requests reached the other origin: {:?}",
        elsewhere.seen()
    );
    assert!(dst.tags("mirror/apps/a").is_empty());

    // A `Link` to the next page on another origin: the receipt walk refuses it.
    let proxy = Proxy::start(
        &env.src.host,
        Fault::ForeignLink {
            other: elsewhere.host.clone(),
        },
    );
    let out = run(
        env.dir(),
        &[
            "receipt",
            "--registry",
            &proxy.host,
            "-o",
            "receipt.json",
            "--insecure-registry",
            &proxy.host,
            &creds,
        ],
        &[],
    );
    eprintln!(
        "{}",
        error_line(&fails_with(&out, "refusing to follow Link"))
    );
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    assert!(!env.dir().join("receipt.json").exists());

    // A Bearer realm on another origin over plain HTTP: with credentials, refused before the
    // token request; without, the token request goes out anonymously.
    let proxy = Proxy::start(
        &env.src.host,
        Fault::ForeignRealm {
            realm: format!("http://{}/token", elsewhere.host),
        },
    );
    env.spec(&proxy.host);
    let insecure = ["--insecure-registry".to_string(), proxy.host.clone()];
    let host_creds = format!("--creds={}={}:{}", proxy.host, user.0, user.1);
    let out = run(env.dir(), &["lock", "spec.yaml", &host_creds], &insecure);
    eprintln!(
        "{}",
        error_line(&fails_with(
            &out,
            "refusing to send credentials to token realm"
        ))
    );
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    let out = run(env.dir(), &["lock", "spec.yaml"], &insecure);
    fails_with(&out, "not JSON");
    let seen = elsewhere.seen();
    assert!(
        !seen.is_empty(),
        "the anonymous token request did not go out"
    );
    assert!(
        seen.iter().all(|l| l.ends_with("auth=no")),
        "credentials reached the realm: {seen:?}"
    );
}

/// Class 5 (network): every body from a registry is capped before it is buffered, whatever
/// `Content-Length` says or does not say, and a peer that trickles is cut off by the request
/// deadline.
#[test]
fn floods_and_trickles_from_a_registry_are_bounded() {
    let env = Env::start();
    let endless = |needle: &str, status: u16, declared: Option<u64>| Fault::Endless {
        needle: needle.to_string(),
        status,
        declared,
    };
    let cases: Vec<(&str, Fault, Vec<&str>, &str)> = vec![
        (
            "endless manifest",
            endless("/manifests/", 200, None),
            vec!["lock", "spec.yaml"],
            "manifest larger than",
        ),
        (
            "manifest declaring 10 GiB",
            endless("/manifests/", 200, Some(10 << 30)),
            vec!["lock", "spec.yaml"],
            "manifest larger than",
        ),
        (
            "endless error page",
            endless("/manifests/", 404, None),
            vec!["lock", "spec.yaml"],
            "404",
        ),
        (
            "endless 401 page",
            endless("/manifests/", 401, None),
            vec!["lock", "spec.yaml"],
            "authentication failed",
        ),
        (
            "endless catalog page",
            endless("/_catalog", 200, None),
            vec!["receipt", "-o", "r.json", "--registry"],
            "list page larger than",
        ),
        (
            "endless tag list",
            endless("/tags/list", 200, None),
            vec!["receipt", "-o", "r.json", "--registry"],
            "list page larger than",
        ),
    ];
    for (case, fault, args, needle) in cases {
        eprintln!("--- {case}");
        let proxy = Proxy::start(&env.src.host, fault);
        env.spec(&proxy.host);
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if args.last().map(String::as_str) == Some("--registry") {
            args.push(proxy.host.clone());
        }
        args.extend([
            "--insecure-registry".to_string(),
            proxy.host.clone(),
            "--retries".to_string(),
            "1".to_string(),
        ]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_bounded(case, env.dir(), &argv, &[]);
        let stderr = fails_with(&out, needle);
        eprintln!("{}", error_line(&stderr));
        assert!(error_line(&stderr).len() < 1000, "{case}: {stderr}");
    }

    // A registry that sends the headers, then one byte a second: cut off at the deadline,
    // for a manifest (lock) and for a blob (collect).
    for (case, needle, command) in [
        ("trickled manifest", "/manifests/", "lock"),
        ("trickled blob", "/blobs/sha256:", "collect"),
    ] {
        eprintln!("--- {case}");
        let proxy = Proxy::start(
            &env.src.host,
            Fault::Trickle {
                needle: needle.to_string(),
                every: std::time::Duration::from_secs(1),
                max: 600,
            },
        );
        env.spec(&proxy.host);
        let flags = [
            "--insecure-registry".to_string(),
            proxy.host.clone(),
            "--retries".to_string(),
            "1".to_string(),
            "--timeout".to_string(),
            "3s".to_string(),
        ];
        let argv: Vec<&str> = if command == "lock" {
            vec!["lock", "spec.yaml"]
        } else {
            ok(&run(env.dir(), &["lock", "spec.yaml"], &flags));
            vec![
                "collect",
                "spec.lock",
                "-o",
                "t.tar.zst",
                "--cache",
                "trickle-cache",
            ]
        };
        let started = std::time::Instant::now();
        let out = run_bounded(case, env.dir(), &argv, &flags);
        let stderr = fails_with(&out, "timed out");
        eprintln!("{}", error_line(&stderr));
        // Bounded: far below the 600 s the trickle would last (not a speed check).
        assert!(started.elapsed() < std::time::Duration::from_secs(120));
        assert!(!env.dir().join("t.tar.zst").exists());
    }
}

/// Class 6: names from an unsigned bundle reach the terminal escaped, in error lines and in
/// `inspect`'s table, so a bundle cannot erase a line and print a fake "OK".
#[test]
fn untrusted_text_reaches_the_terminal_escaped() {
    let env = Env::start();
    env.bundle();
    let fake = "x\u{1b}[2K\r\u{1b}[32mOK: verified\u{1b}[0m\u{202e}";
    let b = env.crafted("fake.tar.zst", |m| {
        m["artifacts"][0]["source"] = fake.into();
        m["name"] = fake.into();
        m["artifacts"][0]["tag"] = fake.into();
    });
    for args in [vec!["verify", b.as_str()], vec!["inspect", b.as_str()]] {
        let out = run(env.dir(), &args, &[]);
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(
                !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{202e}'),
                "{args:?} printed raw control characters: {text:?}"
            );
        }
    }
    // The tag breaks the grammar, so verify refuses, naming it escaped.
    let out = run(env.dir(), &["verify", &b], &[]);
    let stderr = fails_with(&out, "not a valid tag");
    assert!(stderr.contains("\\u{001b}[2K"), "{stderr}");
    // A bundle whose only oddity is its display name: inspect shows it escaped.
    let shown = env.crafted("name.tar.zst", |m| {
        m["artifacts"][0]["source"] = fake.into();
    });
    let out = ok(&run(env.dir(), &["inspect", &shown], &[]));
    assert!(out.contains("\\u{001b}[32mOK: verified"), "{out}");
}
