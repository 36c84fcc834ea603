//! `airlock ledger report`: the auditor's HTML page, rendered by a real browser (Debian's
//! headless Chromium, installed by `scripts/test.sh`) inside a network namespace with no
//! network, so the page cannot load anything. The checks read the text Chromium rendered, not
//! our HTML; a screenshot is kept in `target/test-output/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use airlock::ledger::{
    self, ArtifactRecord, Entry, LedgerSigner, Outcome, RescanRecord, SignatureResult, Verdict,
};
use sha2::Digest as _;

const ORIGIN: &str = "airlock.test/ledger";
const PASSWORD: &[u8] = b"ledger test password";
/// A bundle name is chosen by whoever made the bundle: it must stay text.
const HOSTILE_NAME: &str = "<script>document.title='pwned'</script><b id=injected>x</b>";

fn sha(s: &str) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(s.as_bytes())))
}

fn import_entry(n: u64) -> Entry {
    let result = if n == 2 {
        Outcome::Rejected {
            reason: "scan gate: 1 critical finding <img src=x onerror=alert(1)>".into(),
        }
    } else {
        Outcome::Admitted
    };
    let mut e = Entry::new(
        "operator",
        &sha(&format!("bundle {n}")),
        "registry.internal:5000/mirror",
        result,
    );
    e.bundle.name = Some(if n == 1 {
        HOSTILE_NAME.to_owned()
    } else {
        format!("release-{n}")
    });
    e.bundle.sequence = Some(n + 1);
    e.bundle.signatures = vec![SignatureResult {
        signer: sha("release key"),
        verdict: Verdict::Verified,
        detail: Some("rekor log index 4242".into()),
    }];
    e.policy_digest = Some(sha("policy"));
    e.artifacts = vec![ArtifactRecord {
        kind: "image".into(),
        source_ref: format!("registry.example/app:{n}"),
        target_ref: (n != 2).then(|| format!("registry.internal:5000/mirror/app:{n}")),
        digest: sha(&format!("artifact {n}")),
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        signatures: vec![SignatureResult {
            signer: "https://accounts.example|builder@example.com".into(),
            verdict: Verdict::Verified,
            detail: None,
        }],
        scan: Some(serde_json::json!({"critical": u64::from(n == 2), "high": 7})),
    }];
    e
}

fn rescan_entry() -> Entry {
    let mut e = Entry::new(
        "operator",
        &sha("database"),
        "registry.internal:5000/mirror",
        Outcome::Admitted,
    );
    e.rescan = Some(RescanRecord {
        database_built_at: "2026-11-01T00:00:00Z".into(),
        images: 3,
        from_sbom: 1,
        findings: 11,
        new_findings: 2,
        fixed_findings: 1,
        failed: 0,
        previous: None,
    });
    e
}

/// A ledger of three imports (one rejected, one with a hostile bundle name) and a rescan.
fn ledger(t: &Path) -> PathBuf {
    let dir = t.join("ledger");
    ledger::init(&dir, ORIGIN, PASSWORD).expect("init");
    let signer = LedgerSigner::load(&dir, PASSWORD).expect("signer");
    let mut l = ledger::Ledger::open(&dir).expect("open");
    for n in 0..3 {
        l.append(&import_entry(n), &signer).expect("append");
    }
    l.append(&rescan_entry(), &signer).expect("append rescan");
    dir
}

fn airlock(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run airlock")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs headless Chromium on `url` with `extra` flags, without any network (`unshare -n`).
fn chromium(url: &str, extra: &[&str], cwd: &Path) -> Output {
    for t in ["chromium", "unshare"] {
        assert!(
            which(t),
            "`{t}` not found: scripts/test.sh installs it (apt package chromium / util-linux)"
        );
    }
    let profile = cwd.join("chromium-profile");
    let mut args = vec![
        "-n".to_owned(),
        "chromium".to_owned(),
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(url.to_owned());
    let out = Command::new("unshare")
        .args(&args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium: {}", text(&out));
    out
}

fn which(t: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
        .unwrap_or(false)
}

/// The DOM Chromium built (scripts run), as text.
fn rendered(file: &Path, query: &str, cwd: &Path) -> String {
    let url = format!("file://{}{query}", file.display());
    let out = chromium(&url, &["--dump-dom"], cwd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn output_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
    std::fs::create_dir_all(&d).expect("test-output dir");
    d
}

/// The `<section>` of entry `n` in a dumped DOM.
fn section(dom: &str, n: u64) -> &str {
    let start = dom
        .find(&format!("id=\"entry-{n}\""))
        .unwrap_or_else(|| panic!("entry {n} not on the page"));
    let open = dom[..start].rfind("<section").expect("section start");
    let end = dom[start..].find("</section>").expect("section end") + start;
    &dom[open..end]
}

#[test]
fn report_of_a_sound_ledger_renders_every_entry_in_chromium() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = ledger(t.path());
    let vkey = std::fs::read_to_string(dir.join(ledger::VKEY)).expect("vkey");
    let out = airlock(
        &[
            "ledger",
            "report",
            "ledger",
            "-o",
            "out/report.html",
            "--vkey",
            vkey.trim(),
        ],
        t.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 entries, verification OK"),
        "{}",
        text(&out)
    );
    let file = t.path().join("out/report.html");
    let html = std::fs::read_to_string(&file).expect("report written, out/ created");

    // Self-contained: nothing on the page points anywhere but at itself.
    for needle in ["http://", "https://", "src=", "<link", "@import", "url("] {
        let hits: Vec<_> = html
            .match_indices(needle)
            .map(|(i, _)| &html[i.saturating_sub(40)..(i + 60).min(html.len())])
            .filter(|ctx| !ctx.contains("accounts.example|builder")) // an identity, escaped text
            .filter(|ctx| !ctx.contains("&lt;img src=x")) // the escaped hostile reason
            .collect();
        assert!(hits.is_empty(), "{needle} on the page: {hits:?}");
    }
    // The hostile name is escaped in the file itself.
    assert!(!html.contains("<script>document.title"), "unescaped name");

    let dom = rendered(&file, "", t.path());
    assert!(dom.contains("Verification OK: all 4 entries"), "{dom}");
    let cp = ledger::SignedCheckpoint::open(
        &std::fs::read(dir.join(ledger::CHECKPOINT)).expect("checkpoint"),
        &ledger::VerifierKey::parse(vkey.trim()).expect("vkey"),
        &[],
    )
    .expect("checkpoint verifies");
    assert_eq!(cp.checkpoint.size, 4);
    assert!(dom.contains(&cp.checkpoint.root_base64()), "root missing");
    assert!(dom.contains("size 4"), "checkpoint size missing");
    assert!(
        dom.contains("signature verified") && dom.contains("matches the entries"),
        "{dom}"
    );
    assert!(
        dom.contains("airlock.test/ledger+"),
        "signer key id missing"
    );
    for n in 0..3u64 {
        let s = section(&dom, n);
        for want in [
            sha(&format!("bundle {n}")),
            sha(&format!("artifact {n}")),
            sha("release key"),
            sha("policy"),
            format!("registry.example/app:{n}"),
            "rekor log index 4242".to_owned(),
            "builder@example.com".to_owned(),
            "high 7".to_owned(),
        ] {
            assert!(s.contains(&want), "entry {n} lacks {want}: {s}");
        }
        // Each digest is an anchor at its first appearance.
        assert!(s.contains(&format!("id=\"{}\"", sha(&format!("artifact {n}")))));
    }
    assert!(section(&dom, 0).contains("registry.internal:5000/mirror/app:0"));
    let rejected = section(&dom, 2);
    assert!(
        rejected.contains("rejected") && rejected.contains("not pushed"),
        "{rejected}"
    );
    assert!(rejected.contains("critical 1"), "{rejected}");
    let rescan = section(&dom, 3);
    assert!(
        rescan.contains("rescan") && rescan.contains("11 findings (2 new, 1 fixed)"),
        "{rescan}"
    );
    // The hostile name and reason are text in the rendered DOM: no element, no script ran.
    assert!(
        !dom.contains("<b id=\"injected\">"),
        "markup injected: {dom}"
    );
    assert!(!dom.contains("<img src=\"x\""), "markup injected");
    assert!(!dom.contains("<title>pwned"), "script ran");
    assert!(
        section(&dom, 1).contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{}",
        section(&dom, 1)
    );

    // The search box (run by Chromium): a digest query hides every other entry.
    let wanted = sha("artifact 1");
    let dom = rendered(&file, &format!("?q={wanted}"), t.path());
    assert!(dom.contains("1 matching"), "search did not run: {dom}");
    for n in [0u64, 2, 3] {
        assert!(section(&dom, n).contains("hidden"), "entry {n} not hidden");
    }
    assert!(!section(&dom, 1).contains("hidden"), "entry 1 hidden");

    let shot = output_dir().join("ledger-report.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &format!("file://{}", file.display()),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
        ],
        t.path(),
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "not a real screenshot"
    );
    println!("screenshot: {}", shot.display());
}

#[test]
fn report_of_a_tampered_ledger_says_failed_and_exits_7() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = ledger(t.path());
    // Edit entry 0 in place, keeping it a valid canonical entry: only the tree shows it.
    let entries = dir.join(ledger::ENTRIES);
    let lines = std::fs::read_to_string(&entries).expect("entries");
    let edited = lines.replacen("release-0", "release-9", 1);
    assert_ne!(edited, lines);
    std::fs::write(&entries, edited).expect("write");

    let out = airlock(&["ledger", "report", "ledger", "-o", "r.html"], t.path());
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not verify"), "{err}");
    let file = t.path().join("r.html");
    let dom = rendered(&file, "", t.path());
    assert!(dom.contains("Verification FAILED"), "{dom}");
    assert!(dom.contains("entry_edited"), "problem kind missing");
    assert!(section(&dom, 0).contains("verification problem"));
    assert!(dom.contains("release-9"), "the entries are still listed");
    assert!(dom.contains("does NOT match the entries"), "{dom}");
    assert!(
        dom.contains("signature verified"),
        "the signature itself is sound"
    );

    // A verifier key that did not sign the checkpoint: a forgery, also FAILED.
    let other = t.path().join("other");
    ledger::init(&other, ORIGIN, PASSWORD).expect("init other");
    let wrong = std::fs::read_to_string(other.join(ledger::VKEY)).expect("vkey");
    std::fs::write(&entries, lines).expect("restore");
    let out = airlock(
        &[
            "ledger",
            "report",
            "ledger",
            "-o",
            "r2.html",
            "--vkey",
            wrong.trim(),
        ],
        t.path(),
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let dom = rendered(&t.path().join("r2.html"), "", t.path());
    assert!(dom.contains("Verification FAILED"), "{dom}");
    assert!(dom.contains("forged_checkpoint"), "{dom}");
    assert!(
        dom.contains("signature NOT verified with this key"),
        "{dom}"
    );
}

#[test]
fn report_refuses_a_directory_that_is_not_a_ledger() {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(t.path().join("empty")).expect("mkdir");
    let out = airlock(&["ledger", "report", "empty", "-o", "r.html"], t.path());
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a ledger"),
        "{}",
        text(&out)
    );
    assert!(!t.path().join("r.html").exists(), "no page for no ledger");
}

/// `ledger report` takes what `ledger export` writes, as `ledger verify` does, and with
/// `--format json` prints its summary as one document; an export edited in transit still gets
/// its page, marked FAILED, and exits 7 with the JSON saying so.
#[test]
fn report_of_an_export_file_and_its_json_summary() {
    let t = tempfile::tempdir().expect("tempdir");
    ledger(t.path());
    let out = airlock(&["ledger", "export", "ledger", "-o", "l.tar"], t.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = airlock(
        &[
            "ledger",
            "report",
            "l.tar",
            "-o",
            "out/r.html",
            "--format",
            "json",
        ],
        t.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["entries"], 4, "{v}");
    assert_eq!(v["problems"], 0, "{v}");
    assert!(v["first_problem"].is_null(), "{v}");
    let html = std::fs::read_to_string(t.path().join("out/r.html")).expect("page written");
    assert!(html.contains("release-2"), "every entry is on the page");
    assert!(html.contains("l.tar"), "the page names what it reports on");

    // The same export with entry 0 edited inside the tar (same length, so the tar still
    // reads): the tree no longer matches the signed checkpoint.
    let bytes = std::fs::read(t.path().join("l.tar")).expect("export");
    let at = bytes
        .windows(b"release-0".len())
        .position(|w| w == b"release-0")
        .expect("entry 0 in the export");
    let mut edited = bytes.clone();
    edited[at + b"release-".len()] = b'9';
    std::fs::write(t.path().join("edited.tar"), edited).expect("write");
    let out = airlock(
        &[
            "ledger",
            "report",
            "edited.tar",
            "-o",
            "e.html",
            "--format",
            "json",
        ],
        t.path(),
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["verified"], false, "{v}");
    assert!(v["problems"].as_u64().is_some_and(|n| n >= 1), "{v}");
    assert!(
        v["first_problem"]
            .as_str()
            .is_some_and(|p| p.contains("entry 0")),
        "{v}"
    );
    let html = std::fs::read_to_string(t.path().join("e.html")).expect("page written");
    assert!(html.contains("FAILED"), "the page says so");
    assert!(html.contains("release-9"), "the edited entry is listed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`edited.tar` does not verify"), "{err}");
}

/// What `ledger verify` says about checkpoints, in words (the demo used to print "3 verified
/// (0 by their own signature)"): the latest checkpoint's signature, then how each stored one
/// was found sound. The key and root move with every run and are redacted.
#[test]
fn ledger_verify_says_how_each_checkpoint_was_checked() {
    let t = tempfile::tempdir().expect("tempdir");
    ledger(t.path());
    let redact = |o: &Output| {
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        let s = regex::Regex::new(r"(?m)^(key|root)( +)\S+")
            .expect("regex")
            .replace_all(&s, "$1$2[REDACTED]")
            .into_owned();
        format!("exit: {:?}\n{s}", o.status.code())
    };
    let out = airlock(&["ledger", "verify", "ledger"], t.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    insta::assert_snapshot!("ledger-verify-vouched", redact(&out));
    let out = airlock(
        &["ledger", "verify", "ledger", "--every-signature"],
        t.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    insta::assert_snapshot!("ledger-verify-every-signature", redact(&out));
}
