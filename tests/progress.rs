//! Progress that tells the truth (issue 15): a collect's phase counts every blob of the bundle
//! once (not downloads plus packing), each download is its own task with the blob's real size,
//! started when it starts; and `RUST_LOG=debug` names airlock's own requests without colour
//! codes when stderr is a file. Against a real registry (distribution) on 127.0.0.1.

mod common;

use std::sync::Mutex;

use common::fixtures::{self, Compression};
use common::{airlock, ok, rt, TestRegistry};

use airlock::bundle::reader::read_table_of_contents;
use airlock::collect::{collect, CollectOptions};
use airlock::lock::Lock;
use airlock::progress::{Reporter, Tally};
use airlock::registry::Repo;

/// Everything a reporter hears: phases with their totals and the bytes advanced in each,
/// and the tasks in a [`Tally`] (the accounting the CLI's bars keep).
#[derive(Default)]
struct Recorder {
    phases: Mutex<Vec<(String, u64, u64)>>,
    tasks: Mutex<Tally>,
    /// Tasks started while another with the same id ran (would be a double count).
    restarted: Mutex<u32>,
}

impl Reporter for Recorder {
    fn phase(&self, name: &str, total: u64) {
        self.phases
            .lock()
            .expect("lock")
            .push((name.to_owned(), total, 0));
    }
    fn advance(&self, bytes: u64) {
        if let Some(p) = self.phases.lock().expect("lock").last_mut() {
            p.2 += bytes;
        }
    }
    fn rewind(&self, bytes: u64) {
        if let Some(p) = self.phases.lock().expect("lock").last_mut() {
            p.2 -= bytes;
        }
    }
    fn task_start(&self, id: &str, label: &str, total: u64) {
        if !self.tasks.lock().expect("lock").start(id, label, total) {
            *self.restarted.lock().expect("lock") += 1;
        }
    }
    fn task_advance(&self, id: &str, bytes: u64) {
        self.tasks.lock().expect("lock").advance(id, bytes);
    }
    fn task_rewind(&self, id: &str, bytes: u64) {
        self.tasks.lock().expect("lock").rewind(id, bytes);
    }
    fn task_done(&self, id: &str) {
        self.tasks.lock().expect("lock").finish(id);
    }
}

/// A registry holding `apps/a:1` (two layers), and a work dir with `p.lock` for it.
fn setup() -> (TestRegistry, tempfile::TempDir) {
    let src = TestRegistry::start();
    let img = fixtures::image(
        vec![
            fixtures::layer(1, 300_000, Compression::Gzip, false),
            fixtures::layer(2, 200_000, Compression::Gzip, false),
        ],
        "linux/amd64",
        false,
    );
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(&src.host, "apps/a").expect("repository"),
        &img,
        Some("1"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    std::fs::write(
        work.path().join("p.yaml"),
        format!("name: p\nimages:\n  - ref: {}/apps/a:1\n", src.host),
    )
    .expect("spec");
    (src, work)
}

#[test]
fn a_collect_counts_each_blob_once_and_each_download_as_its_own_task() {
    let (src, work) = setup();
    let dir = work.path();
    let mut args = vec!["lock".to_owned(), "p.yaml".to_owned()];
    args.extend(src.cli_flags());
    ok(&airlock(
        dir,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let (lock, lock_digest) = Lock::load(&dir.join("p.lock")).expect("lock");
    let registry = src.client();
    let run = |out: &str| {
        let opts = CollectOptions {
            output: dir.join(out),
            cache: dir.join("cache"),
            jobs: 4,
            signers: Vec::new(),
            base_dir: dir.to_owned(),
            sequence: None,
            scan_db: None,
            carry_db: false,
            scanner: Default::default(),
            have: None,
            split: None,
        };
        let rec = Recorder::default();
        let report = rt()
            .block_on(collect(&lock, &lock_digest, &registry, &opts, &rec))
            .expect("collect");
        (rec, report)
    };

    // Cold cache: every registry blob is downloaded once, as a task of its own size.
    let (rec, report) = run("cold.tar.zst");
    let toc = read_table_of_contents(&dir.join("cold.tar.zst")).expect("bundle");
    let bundle_bytes = toc.manifest.total_blob_bytes();
    let phases = rec.phases.lock().expect("lock").clone();
    let collect_phase: Vec<_> = phases.iter().filter(|p| p.0 == "collect").collect();
    assert_eq!(collect_phase.len(), 1, "{phases:?}");
    let (_, total, done) = collect_phase[0];
    assert_eq!(
        *total, bundle_bytes,
        "the phase is the bundle's blob bytes, once"
    );
    assert_eq!(*done, bundle_bytes, "and it advanced by exactly that");
    let tasks = rec.tasks.lock().expect("lock");
    assert!(
        report.downloaded_bytes > 500_000,
        "{}",
        report.downloaded_bytes
    );
    assert_eq!(
        tasks.total(),
        report.downloaded_bytes,
        "downloads counted once"
    );
    assert_eq!(tasks.done(), tasks.total(), "every download ran to its end");
    assert!(tasks.running().is_empty(), "{:?}", tasks.running());
    assert_eq!(*rec.restarted.lock().expect("lock"), 0);
    for b in &toc.manifest.blobs {
        if let Some(t) = tasks.get(b.digest.as_str()) {
            assert_eq!(t.total, b.size, "task of {} has the blob's size", b.digest);
            assert!(t.label.contains(b.digest.short()), "{}", t.label);
        }
    }
    drop(tasks);

    // Warm cache: nothing downloads, so no task; the phase is still the bundle, once.
    let (rec, report) = run("warm.tar.zst");
    assert_eq!(report.downloaded_bytes, 0);
    assert_eq!(rec.tasks.lock().expect("lock").total(), 0);
    let phases = rec.phases.lock().expect("lock").clone();
    assert!(
        phases
            .iter()
            .any(|p| p.0 == "collect" && p.1 == bundle_bytes && p.2 == bundle_bytes),
        "{phases:?}"
    );
}

/// `airlock lock p.yaml` against `src` with `RUST_LOG=level`, stderr a pipe (as a file is).
fn lock_logged(src: &TestRegistry, dir: &std::path::Path, level: &str) -> std::process::Output {
    let mut args = vec!["lock".to_owned(), "p.yaml".to_owned()];
    args.extend(src.cli_flags());
    common::airlock_env(
        dir,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("RUST_LOG", level)],
    )
}

#[test]
fn rust_log_debug_names_each_request_and_writes_no_colour_into_a_file() {
    let (src, work) = setup();
    let out = lock_logged(&src, work.path(), "debug");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let wanted = format!("GET http://{}/v2/apps/a/manifests/1 -> 200 in ", src.host);
    assert!(log.contains(&wanted), "no request line `{wanted}`:\n{log}");
    assert!(log.contains("airlock::registry"), "{log}");
    assert!(!log.contains("\x1b["), "colour codes in a file:\n{log}");
}

#[test]
fn request_lines_carry_no_credentials() {
    let src = TestRegistry::start_with(common::RegistryConfig {
        basic_auth: Some(("alice".into(), "progress-s3cret".into())),
        ..Default::default()
    });
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(
        dir.join("p.yaml"),
        format!("name: p\nimages:\n  - ref: {}/apps/none:1\n", src.host),
    )
    .expect("spec");
    let out = lock_logged(&src, dir, "trace");
    let log = String::from_utf8_lossy(&out.stderr);
    // The tag does not exist: the request is still logged, with its 404.
    assert!(
        log.contains(&format!(
            "GET http://{}/v2/apps/none/manifests/1 -> ",
            src.host
        )),
        "{log}"
    );
    assert!(
        !log.contains("progress-s3cret"),
        "password in the log:\n{log}"
    );
    assert!(
        !log.contains("YWxpY2U6cHJvZ3Jlc3MtczNjcmV0"),
        "basic auth in the log"
    );
}

#[test]
fn urls_are_logged_without_user_info_or_query() {
    use airlock::registry::url_for_log;
    assert_eq!(
        url_for_log("https://u:p@r.example/v2/a/blobs/uploads/x?_state=abc&digest=sha256:1"),
        "https://r.example/v2/a/blobs/uploads/x?…"
    );
    assert_eq!(
        url_for_log("http://127.0.0.1:5000/v2/"),
        "http://127.0.0.1:5000/v2/"
    );
    assert_eq!(url_for_log("not a url"), "<unparsable url>");
}
