//! Progress that tells the truth (issue 15): a collect's phase counts every blob of the bundle
//! once (not downloads plus packing), each download is its own task with the blob's real size,
//! started when it starts; and `RUST_LOG=debug` names airlock's own requests without colour
//! codes when stderr is a file. Against a real registry (distribution) on 127.0.0.1.

mod common;

use std::sync::Mutex;

use common::fixtures::{self, Compression};
use common::{airlock, ok, rt, TestRegistry};

use airlock::bundle::reader::read_table_of_contents;
use airlock::collect::collect;
use airlock::lock::Lock;
use airlock::progress::{Reporter, Tally};
use airlock::registry::Repo;

/// Everything a reporter hears: phases with their totals and the bytes advanced in each,
/// the byte tasks and the count tasks each in a [`Tally`] (the accounting the CLI's bars
/// keep), and the order of events with the phase's position at each.
#[derive(Default)]
struct Recorder {
    phases: Mutex<Vec<(String, u64, u64)>>,
    tasks: Mutex<Tally>,
    counts: Mutex<Tally>,
    /// Tasks started while another with the same id ran (would be a double count).
    restarted: Mutex<u32>,
    /// `(event, id, phase position after it)`, in order.
    events: Mutex<Vec<(&'static str, String, u64)>>,
}

impl Recorder {
    fn log(&self, event: &'static str, id: &str) {
        let at = self.phases.lock().expect("lock").last().map_or(0, |p| p.2);
        self.events
            .lock()
            .expect("lock")
            .push((event, id.to_owned(), at));
    }
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
        self.log("advance", "");
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
    fn count_start(&self, id: &str, label: &str, total: u64) {
        if !self.counts.lock().expect("lock").start(id, label, total) {
            *self.restarted.lock().expect("lock") += 1;
        }
        self.log("count_start", id);
    }
    fn task_advance(&self, id: &str, n: u64) {
        if self.counts.lock().expect("lock").advance(id, n).is_none() {
            self.tasks.lock().expect("lock").advance(id, n);
        }
    }
    fn task_rewind(&self, id: &str, bytes: u64) {
        self.tasks.lock().expect("lock").rewind(id, bytes);
    }
    fn task_done(&self, id: &str) {
        self.tasks.lock().expect("lock").finish(id);
        self.counts.lock().expect("lock").finish(id);
        self.log("task_done", id);
    }
    fn finish_phase(&self) {
        self.log("finish_phase", "");
    }
}

/// A registry holding `apps/a:1` (two layers), and a work dir with `p.lock` for it.
fn setup() -> (TestRegistry, tempfile::TempDir) {
    let (src, work, _) = setup_with(vec![
        fixtures::layer(1, 300_000, Compression::Gzip, false),
        fixtures::layer(2, 200_000, Compression::Gzip, false),
    ]);
    (src, work)
}

/// A registry holding `apps/a:1` made of `layers`, a work dir with `p.yaml` naming it, and
/// the image.
fn setup_with(
    layers: Vec<(fixtures::Blob, airlock::oci::Digest)>,
) -> (TestRegistry, tempfile::TempDir, fixtures::Image) {
    let src = TestRegistry::start();
    let img = fixtures::image(layers, "linux/amd64", false);
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
    (src, work, img)
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
        let opts = common::collect_options(dir, out, Vec::new());
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

/// A bundle of `apps/a:1` collected from `src` into `dir/b.tar.zst` through the library.
fn bundle(src: &TestRegistry, dir: &std::path::Path) -> std::path::PathBuf {
    let mut args = vec!["lock".to_owned(), "p.yaml".to_owned()];
    args.extend(src.cli_flags());
    ok(&airlock(
        dir,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let mut args = vec!["collect", "p.lock", "-o", "b.tar.zst", "--cache", "cache"];
    let flags = src.cli_flags();
    args.extend(flags.iter().map(String::as_str));
    ok(&airlock(dir, &args));
    dir.join("b.tar.zst")
}

/// An import's bar is the bundle's bytes, and it is full only when the import is: a blob
/// counts when the registry has it (not when it was read), the manifests once the tags are
/// set. Each upload is a task of the blob's size; manifests and tags are count bars whose
/// totals are the artifacts and the tags written. Imported twice: the second time every blob
/// is already there, and the bar still ends at the total, after the tags.
#[test]
fn an_import_bar_is_full_only_when_uploads_manifests_and_tags_are_done() {
    let (src, work) = setup();
    let dir = work.path();
    let path = bundle(&src, dir);
    let toc = read_table_of_contents(&path).expect("bundle");
    let total = toc.manifest.total_blob_bytes();
    let manifest_bytes: u64 = toc
        .manifest
        .blobs
        .iter()
        .filter(|b| b.media_type.contains("manifest") || b.media_type.contains("index"))
        .map(|b| b.size)
        .sum();
    assert!(manifest_bytes > 0 && manifest_bytes < total);
    let dst = TestRegistry::start();
    let opts = common::import_options(
        &dst.host,
        airlock::bundle::signature::SignaturePolicy {
            trusted: Vec::new(),
            require: 0,
            allow_unsigned: true,
        },
    );
    let registry = std::sync::Arc::new(dst.client());
    for round in ["first", "again"] {
        let rec = Recorder::default();
        let report = rt()
            .block_on(airlock::import::import(
                &path,
                registry.clone(),
                &opts,
                &rec,
            ))
            .expect("import");
        let phases = rec.phases.lock().expect("lock").clone();
        assert_eq!(
            phases,
            [("import".to_owned(), total, total)],
            "{round}: one bar, the bundle's bytes, full at the end"
        );
        let events = rec.events.lock().expect("lock").clone();
        let at = |event: &str, id: &str| {
            events
                .iter()
                .position(|(e, i, _)| *e == event && i == id)
                .unwrap_or_else(|| panic!("{round}: no {event} {id} in {events:?}"))
        };
        let tags_done = at("task_done", airlock::import::TAGS_TASK);
        let manifests_done = at("task_done", airlock::import::MANIFESTS_TASK);
        assert!(manifests_done < tags_done, "{round}: manifests, then tags");
        // Until the tags are set the bar is short of its total by exactly the manifests.
        assert_eq!(
            events[tags_done].2,
            total - manifest_bytes,
            "{round}: {events:?}"
        );
        assert_eq!(
            events.iter().filter(|(_, _, at)| *at == total).count(),
            2,
            "{round}: full only at the last advance and the finish: {events:?}"
        );
        assert_eq!(events.last().map(|e| e.0), Some("finish_phase"));
        let counts = rec.counts.lock().expect("lock");
        let manifests = counts
            .get(airlock::import::MANIFESTS_TASK)
            .expect("manifests bar");
        assert_eq!(manifests.total, toc.manifest.artifacts.len() as u64);
        assert_eq!(manifests.done, manifests.total, "{round}");
        let tags = counts.get(airlock::import::TAGS_TASK).expect("tags bar");
        assert_eq!(
            tags.total,
            (report.tags_set + report.referrer_indexes_updated) as u64,
            "{round}"
        );
        // The first time the tag `1` is written; again, it already points there.
        assert_eq!(tags.total >= 1, round == "first", "{round}: {}", tags.total);
        assert_eq!(tags.done, tags.total, "{round}");
        let tasks = rec.tasks.lock().expect("lock");
        assert!(tasks.running().is_empty(), "{:?}", tasks.running());
        assert_eq!(*rec.restarted.lock().expect("lock"), 0);
        if round == "first" {
            // Every blob but the manifests was uploaded, each a task of its own size, and the
            // bar moved only as each finished.
            assert_eq!(report.blobs_mounted, 0);
            assert_eq!(tasks.total(), total - manifest_bytes);
            assert_eq!(tasks.done(), tasks.total());
            for b in &toc.manifest.blobs {
                if let Some(t) = tasks.get(&format!("upload {}", b.digest)) {
                    assert_eq!(t.total, b.size, "upload task of {}", b.digest);
                }
            }
            let uploads_done: Vec<u64> = events
                .iter()
                .filter(|(e, i, _)| *e == "task_done" && i.starts_with("upload "))
                .map(|e| e.2)
                .collect();
            assert_eq!(uploads_done.len(), report.blobs_pushed, "{events:?}");
            assert!(
                uploads_done.iter().all(|at| *at < total - manifest_bytes),
                "a blob counts after its upload ends, not when read: {events:?}"
            );
        } else {
            assert_eq!(report.blobs_pushed, 0, "already there");
            assert_eq!(tasks.total(), 0, "no upload, no task");
        }
    }
}

/// `verify`'s bar (the phase `airlock verify` starts) ends at the bundle's total, manifests
/// included, and each blob is a task of its own size while it is read.
#[test]
fn a_verify_reads_every_blob_as_a_task_and_ends_at_the_total() {
    let (src, work) = setup();
    let path = bundle(&src, work.path());
    let source = airlock::bundle::BundleSource::resolve(&path).expect("source");
    let toc = source.table_of_contents().expect("toc");
    let total = toc.manifest.total_blob_bytes();
    let rec = Recorder::default();
    rec.phase("verify", total);
    let policy = airlock::bundle::signature::SignaturePolicy {
        trusted: Vec::new(),
        require: 0,
        allow_unsigned: true,
    };
    struct Nothing;
    impl airlock::bundle::reader::BlobVisitor for Nothing {
        type Error = airlock::bundle::BundleError;
    }
    source
        .read(&policy, &mut Nothing, &rec)
        .expect("the bundle verifies");
    let phases = rec.phases.lock().expect("lock").clone();
    assert_eq!(phases, [("verify".to_owned(), total, total)]);
    let tasks = rec.tasks.lock().expect("lock");
    let layers: Vec<_> = toc
        .manifest
        .blobs
        .iter()
        .filter(|b| b.media_type.contains("layer"))
        .collect();
    assert_eq!(layers.len(), 2);
    for b in layers {
        let t = tasks
            .get(&format!("read {}", b.digest))
            .unwrap_or_else(|| panic!("no task for {}", b.digest));
        assert_eq!((t.total, t.done, t.finished), (b.size, b.size, true));
        assert!(t.label.contains(b.digest.short()), "{}", t.label);
    }
    assert!(tasks.running().is_empty());
}

/// `scan`'s bar is the layer bytes of every image scanned, and each image (platform) is a task
/// of its own layers' bytes, full when its scan is: an index of Alpine 3.18 and Debian 9 built
/// from real package databases, matched against a database compiled from real OSV records.
#[test]
fn a_scan_shows_each_image_as_a_task_of_its_layers() {
    let reg = TestRegistry::start();
    let alpine = fixtures::files_image(&[fixtures::alpine_318_files()], "linux/amd64");
    let debian = fixtures::files_image(&[fixtures::debian9_files()], "linux/arm64");
    let idx = fixtures::index(&[alpine.clone(), debian.clone()], false);
    rt().block_on(fixtures::push_index(
        &reg.client(),
        &Repo::parse(reg.host.clone(), "scan/multi").expect("repository"),
        &[alpine.clone(), debian.clone()],
        &idx,
        "1",
    ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    common::build_vuln_db(dir);
    let req = airlock::scan::run::ScanRequest {
        scanner: Default::default(),
        input: airlock::scan::run::ScanInput::Registry(
            format!("{}/scan/multi:1", reg.host).parse().expect("ref"),
        ),
        platforms: Vec::new(),
        db: Some(dir.join("vuln.db")),
        policy: Default::default(),
        policy_dir: dir.to_owned(),
        cache: dir.join("cache"),
        spool_parent: dir.to_owned(),
        now: std::time::SystemTime::now(),
    };
    let rec = Recorder::default();
    let outcome = rt()
        .block_on(airlock::scan::run::run(&req, &reg.client(), &rec))
        .expect("scan");
    assert_eq!(outcome.images.len(), 2);
    let layer_bytes = |i: &fixtures::Image| i.layers.iter().map(|l| l.bytes.len() as u64).sum();
    let (a, d): (u64, u64) = (layer_bytes(&alpine), layer_bytes(&debian));
    let phases = rec.phases.lock().expect("lock").clone();
    let scan: Vec<_> = phases.iter().filter(|p| p.0 == "scan").collect();
    assert_eq!(scan, [&("scan".to_owned(), a + d, a + d)], "{phases:?}");
    let tasks = rec.tasks.lock().expect("lock");
    for (image, bytes) in [(&alpine, a), (&debian, d)] {
        let id = format!("scan {}/scan/multi:1 {}", reg.host, image.manifest.digest());
        let t = tasks
            .get(&id)
            .unwrap_or_else(|| panic!("no task {id}: {:?}", tasks.running()));
        assert_eq!((t.total, t.done, t.finished), (bytes, bytes, true), "{id}");
    }
    assert!(tasks.running().is_empty(), "{:?}", tasks.running());
}

/// A blob over 8 MiB is read from the bundle by offset on a thread of its own
/// (`import/located.rs`); its bar still moves while it uploads, not only at its end: with its
/// `PATCH` held at a proxy, the bar shows part of the blob, and all of it once it is through.
#[test]
fn a_large_blob_read_by_offset_moves_its_bar_while_it_uploads() {
    use common::proxy::{Fault, Proxy};
    let (src, work, img) = setup_with(vec![fixtures::layer(
        400,
        32 << 20,
        Compression::None,
        false,
    )]);
    let dir = work.path();
    let path = bundle(&src, dir);
    let dst = TestRegistry::start();
    let stall = Proxy::start(
        &dst.host,
        Fault::StallAfter {
            n: 0,
            needle: "PATCH".into(),
        },
    );
    let opts = common::import_options(
        &stall.host,
        airlock::bundle::signature::SignaturePolicy {
            trusted: Vec::new(),
            require: 0,
            allow_unsigned: true,
        },
    );
    let registry = std::sync::Arc::new(common::client_at(&stall.host));
    let rec = Recorder::default();
    let id = format!("upload {}", img.layers[0].digest());
    let blob = img.layers[0].bytes.len() as u64;
    let shown = |rec: &Recorder| {
        let tasks = rec.tasks.lock().expect("lock");
        tasks.get(&id).map(|t| (t.done, t.finished))
    };
    std::thread::scope(|s| {
        let import =
            s.spawn(|| rt().block_on(airlock::import::import(&path, registry, &opts, &rec)));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut partial = None;
        while std::time::Instant::now() < deadline && !import.is_finished() {
            if let Some((done, false)) = shown(&rec).filter(|(done, _)| *done > 0) {
                partial = Some(done);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stall.release();
        import.join().expect("import thread").expect("import");
        let partial = partial.expect("the bar did not move while the upload was held");
        assert!(partial < blob, "{partial} of {blob} shown while held");
        assert_eq!(shown(&rec), Some((blob, true)));
    });
}
