//! Issue 10, class 3: an import that cannot be recorded pushes and tags nothing. With
//! `--ledger` on a read-only mount, a full filesystem or a ledger locked by another process,
//! import stops before the first byte is pushed; when the record fails at the end (the
//! filesystem filled during the import), nothing is tagged. And a crash between the record and
//! the tags is finished by a re-run without a second entry. The target registry is checked with
//! skopeo and its own storage, not through airlock. Peak RSS of every refused run is measured.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock::registry::Repo;
use common::fixtures::{self, Image};
use common::proxy::{Fault, Proxy};
use common::{
    airlock, airlock_peak, fails_with, ok, spawn_airlock, wait_for, ReadOnlyBind, TestRegistry,
    Tmpfs, MAX_BAD_INPUT_RSS,
};

/// Two images in the source (`apps/a:1`, `apps/b:2`), collected into `w.tar.zst` (unsigned).
struct Setup {
    _src: TestRegistry,
    dst: TestRegistry,
    work: tempfile::TempDir,
    images: Vec<Image>,
}

impl Setup {
    fn new() -> Setup {
        let src = TestRegistry::start();
        let dst = TestRegistry::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let images = vec![
            fixtures::small_image(31, 40_000),
            fixtures::small_image(32, 50_000),
        ];
        for (img, (repo, tag)) in images.iter().zip([("apps/a", "1"), ("apps/b", "2")]) {
            rt.block_on(fixtures::push_image(
                &src.client(),
                &Repo::parse(&src.host, repo).expect("repository"),
                img,
                Some(tag),
            ));
        }
        let work = tempfile::tempdir().expect("tmp");
        let refs = [(&images[0], "apps/a:1"), (&images[1], "apps/b:2")];
        common::collect_with_ledger(&src, work.path(), "w", &refs, "l");
        Setup {
            _src: src,
            dst,
            work,
            images,
        }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Moves the ledger `l` made at setup to `to` (relative to the work directory).
    fn move_ledger(&self, to: &str) {
        let to = self.dir().join(to);
        std::fs::create_dir_all(&to).expect("mkdir");
        for e in std::fs::read_dir(self.dir().join("l"))
            .expect("ls")
            .flatten()
        {
            let target = to.join(e.file_name());
            if e.path().is_dir() {
                std::fs::create_dir_all(&target).expect("mkdir");
                for f in std::fs::read_dir(e.path()).expect("ls").flatten() {
                    std::fs::copy(f.path(), target.join(f.file_name())).expect("copy");
                }
            } else {
                std::fs::copy(e.path(), &target).expect("copy");
            }
        }
        std::fs::remove_dir_all(self.dir().join("l")).expect("rm");
    }

    /// `airlock import w.tar.zst --to HOST/m --ledger LEDGER …` against `host`.
    fn import_args(&self, host: &str, ledger: &str, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "import",
            "w.tar.zst",
            "--to",
            &format!("{host}/m"),
            "--insecure-registry",
            host,
            "--allow-unsigned",
            "--ledger",
            ledger,
            "--ledger-password-file",
            "pw",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Runs a refused import, returns its stderr, and checks its peak RSS.
    fn refused(&self, ledger: &str, extra: &[&str], needle: &str) -> String {
        let args = self.import_args(&self.dst.host, ledger, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, rss) = airlock_peak(self.dir(), &args, &[]);
        let err = fails_with(&out, needle);
        eprintln!(
            "peak RSS of the refused import ({needle}): {} KiB",
            rss / 1024
        );
        assert!(rss < MAX_BAD_INPUT_RSS, "{rss} bytes");
        err
    }

    /// The target has nothing of the bundle: no blob or manifest in its storage, no tag.
    fn assert_target_untouched(&self) {
        assert_eq!(self.dst.stored_blobs(), 0, "something was pushed");
        self.assert_untagged();
    }

    /// No tag in either target repository (skopeo list-tags).
    fn assert_untagged(&self) {
        for repo in ["m/apps/a", "m/apps/b"] {
            assert!(self.dst.tags(repo).is_empty(), "{repo} was tagged");
        }
    }

    fn entries(&self, ledger: &Path) -> Vec<String> {
        std::fs::read_to_string(ledger.join("entries.jsonl"))
            .expect("entries")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
}

#[test]
fn import_on_a_read_only_ledger_pushes_nothing() {
    let s = Setup::new();
    let _ro = ReadOnlyBind::mount(&s.dir().join("l"), &s.dir().join("ro"));
    let err = s.refused(
        "ro",
        &[],
        "ledger `ro` cannot record this import, so nothing was pushed",
    );
    assert!(error_line(&err).contains("Read-only file system"), "{err}");
    s.assert_target_untouched();
    assert!(s.entries(&s.dir().join("l")).is_empty());
}

#[test]
fn import_on_a_full_ledger_filesystem_pushes_nothing() {
    let s = Setup::new();
    let fs = Tmpfs::mount(&s.dir().join("t"), "4m").expect("mount a tmpfs (CI runs as root)");
    s.move_ledger("t/l");
    // Full: the write probe fails.
    fs.fill(0);
    let err = s.refused(
        "t/l",
        &[],
        "ledger `t/l` cannot record this import, so nothing was pushed",
    );
    assert!(
        error_line(&err).contains("No space left on device"),
        "{err}"
    );
    s.assert_target_untouched();
    // Nearly full: less room than a record may need.
    fs.unfill();
    fs.fill(256 * 1024);
    let err = s.refused("t/l", &[], "a record needs up to 1048576");
    assert!(error_line(&err).contains("ledger `t/l`"), "{err}");
    s.assert_target_untouched();
    assert!(s.entries(&s.dir().join("t/l")).is_empty());
}

#[test]
fn import_on_a_ledger_locked_past_the_wait_pushes_nothing() {
    let s = Setup::new();
    // Another process (util-linux flock) holds the ledger lock.
    let mut holder = Command::new("flock")
        .arg("--no-fork")
        .arg(s.dir().join("l/lock"))
        .args(["sleep", "120"])
        .stdout(Stdio::null())
        .spawn()
        .expect("flock(1)");
    let start = Instant::now();
    while Command::new("flock")
        .args(["--nonblock", "--conflict-exit-code", "7"])
        .arg(s.dir().join("l/lock"))
        .arg("true")
        .status()
        .expect("flock")
        .success()
    {
        assert!(start.elapsed() < Duration::from_secs(10), "lock not taken");
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = s.refused(
        "l",
        &["--ledger-wait", "1"],
        "ledger `l` cannot record this import, so nothing was pushed",
    );
    assert!(
        error_line(&err).contains("is locked by another process (waited 1"),
        "{err}"
    );
    s.assert_target_untouched();
    holder.kill().expect("kill");
    holder.wait().expect("reap");
    // Released: the same import goes through and is recorded.
    let args = s.import_args(&s.dst.host, "l", &[]);
    ok(&airlock(
        s.dir(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(s.entries(&s.dir().join("l")).len(), 1);
}

#[test]
fn a_record_that_fails_after_the_manifests_leaves_no_tag() {
    let s = Setup::new();
    let fs = Tmpfs::mount(&s.dir().join("t"), "4m").expect("mount a tmpfs (CI runs as root)");
    s.move_ledger("t/l");
    // The first manifest PUT waits until the filesystem is full: the preflight passed, the
    // record comes after the manifests.
    let proxy = Proxy::start(
        &s.dst.host,
        Fault::StallAfter {
            n: 0,
            needle: "/manifests/sha256:".into(),
        },
    );
    let args = s.import_args(&proxy.host, "t/l", &["--jobs", "1"]);
    let stderr = s.dir().join("import.err");
    let mut child = spawn_airlock(s.dir(), &args, Some(&stderr));
    wait_for("a manifest PUT", || proxy.count("/manifests/sha256:") >= 1);
    fs.fill(0);
    proxy.release();
    let status = child.wait().expect("wait");
    let err = std::fs::read_to_string(&stderr).expect("stderr");
    assert_eq!(
        status.code(),
        Some(7),
        "a ledger that cannot record is exit 7: {err}"
    );
    let line = error_line(&err);
    assert!(
        line.contains("ledger `t/l`: cannot record the admitted import, so nothing was tagged")
            && line.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1);
    s.assert_untagged();
    // The manifests are in the target by digest only.
    for (img, repo) in s.images.iter().zip(["m/apps/a", "m/apps/b"]) {
        assert_eq!(
            s.dst
                .skopeo_raw(&format!("{repo}@{}", img.manifest.digest())),
            img.manifest.bytes
        );
    }
    let ledger = s.dir().join("t/l");
    assert!(s.entries(&ledger).is_empty());
    assert_eq!(
        std::fs::metadata(ledger.join("entries.jsonl"))
            .expect("stat")
            .len(),
        0,
        "a torn line was left"
    );

    // Room again: the re-run records and tags.
    fs.unfill();
    let args = s.import_args(&s.dst.host, "t/l", &[]);
    ok(&airlock(
        s.dir(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let e = s.entries(&ledger);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("\"status\":\"admitted\""), "{}", e[0]);
    assert_eq!(s.dst.tags("m/apps/a"), vec!["1".to_string()]);
    assert_eq!(s.dst.tags("m/apps/b"), vec!["2".to_string()]);
    ok(&airlock(s.dir(), &["ledger", "verify", "t/l"]));
}

#[test]
fn a_crash_between_record_and_tags_is_finished_by_a_rerun_without_a_second_entry() {
    let s = Setup::new();
    // The first tag PUT (by tag, not digest) hangs: the import is recorded by then. One
    // request at a time, so no other tag is set beside it.
    let proxy = Proxy::start(
        &s.dst.host,
        Fault::StallAfter {
            n: 0,
            needle: "PUT /v2/m/apps/a/manifests/1".into(),
        },
    );
    let args = s.import_args(&proxy.host, "l", &["--jobs", "1", "--max-requests", "1"]);
    let stderr = s.dir().join("import.err");
    let mut child = spawn_airlock(s.dir(), &args, Some(&stderr));
    wait_for("the tag PUT", || {
        proxy.count("PUT /v2/m/apps/a/manifests/1") >= 1
    });
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    proxy.release();
    let ledger: PathBuf = s.dir().join("l");
    let e = s.entries(&ledger);
    assert_eq!(e.len(), 1, "recorded before the first tag: {e:?}");
    assert!(e[0].contains("\"status\":\"admitted\""));
    s.assert_untagged();

    // The same import again (through the released proxy: the same target).
    let args = s.import_args(&proxy.host, "l", &[]);
    let out = airlock(
        s.dir(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("ledger: entry 0 of `l` already records this import; not appended again"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.entries(&ledger),
        e,
        "a second entry for the same admission"
    );
    assert_eq!(s.dst.tags("m/apps/a"), vec!["1".to_string()]);
    assert_eq!(s.dst.tags("m/apps/b"), vec!["2".to_string()]);
}

#[test]
fn an_uncommitted_line_does_not_stop_receipt_or_import() {
    let s = Setup::new();
    let args = s.import_args(&s.dst.host, "l", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&airlock(s.dir(), &args));
    // A writer killed after its line and before its checkpoint: a whole line, uncommitted.
    let ledger = s.dir().join("l");
    let committed = s.entries(&ledger);
    let mut uncommitted = committed[0].replace("\"index\":0", "\"index\":1");
    uncommitted.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(ledger.join("entries.jsonl"))
        .expect("open");
    std::io::Write::write_all(&mut f, uncommitted.as_bytes()).expect("write");
    drop(f);
    let receipt = [
        "receipt",
        "--registry",
        &s.dst.host,
        "--insecure-registry",
        &s.dst.host,
        "--ledger",
        "l",
        "-o",
        "r.json",
    ];
    ok(&airlock(s.dir(), &receipt));
    let out = airlock(s.dir(), &args);
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("was repaired on open"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&airlock(s.dir(), &["ledger", "verify", "l"]));
    ok(&airlock(s.dir(), &receipt));
    assert_eq!(s.entries(&ledger), committed, "the committed entry changed");
}
