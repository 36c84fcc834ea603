//! Issue 10, class 4: `kill -9` during a ledger append, at many points and repeatedly, never
//! leaves the ledger unusable and never loses an entry whose append was reported.
//!
//! Two cases, each killing a real process with SIGKILL after a delay that varies round by
//! round:
//! * a direct append loop (this binary run as `--append-loop DIR`, the library in a child
//!   process), 30 rounds: after each, readers still answer and the next writer recovers;
//! * `airlock import --ledger` against a real registry, 12 rounds, half spread over the time a
//!   whole import takes, half the moment the entry's line appears in `entries.jsonl`:
//!   afterwards `import --ledger`, `receipt --ledger` and `ledger verify` succeed.
//!
//! A test target without the libtest harness, so that the same binary is the child.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use airlock::ledger::{self, Entry, Ledger, LedgerSigner, Outcome, Query, VerifyOptions};
use airlock::registry::Repo;
use common::{airlock, fixtures, ok, TestRegistry};

const PASSWORD: &[u8] = b"pw";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--append-loop") {
        append_loop(Path::new(&args[2]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("sigkill_during_direct_appends_never_loses_a_reported_entry: test");
        println!("sigkill_during_import_leaves_import_receipt_and_verify_working: test");
        return;
    }
    // libtest flags that take a value; anything else not starting with `-` is a filter.
    let with_value = [
        "--test-threads",
        "--skip",
        "--format",
        "--color",
        "--logfile",
        "-Z",
    ];
    let mut filters = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if with_value.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            filters.push(a.clone());
        }
    }
    let cases: [(&str, fn()); 2] = [
        (
            "sigkill_during_direct_appends_never_loses_a_reported_entry",
            sigkill_during_direct_appends_never_loses_a_reported_entry,
        ),
        (
            "sigkill_during_import_leaves_import_receipt_and_verify_working",
            sigkill_during_import_leaves_import_receipt_and_verify_working,
        ),
    ];
    for (name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        case();
        println!(
            "test {name} ... ok ({:.1} s)",
            start.elapsed().as_secs_f64()
        );
    }
}

/// The child: appends entries for ever, printing `appended <index> <operator>` once each append
/// returned, reopening the ledger every third entry (so opens are killed too).
fn append_loop(dir: &Path) {
    let signer = LedgerSigner::load(dir, PASSWORD).expect("ledger key");
    let pid = std::process::id();
    let mut out = std::io::stdout().lock();
    let mut i = 0u64;
    loop {
        let mut l = Ledger::open(dir).expect("open");
        if i == 0 {
            writeln!(out, "ready")
                .and_then(|_| out.flush())
                .expect("stdout");
        }
        for _ in 0..3 {
            let operator = format!("loop-{pid}-{i}");
            let e = Entry::new(
                &operator,
                &format!("sha256:{:064x}", i),
                "reg.test/m",
                Outcome::Admitted,
            );
            let r = l.append(&e, &signer).expect("append");
            writeln!(out, "appended {} {operator}", r.index)
                .and_then(|_| out.flush())
                .expect("stdout");
            i += 1;
        }
    }
}

/// Reads a child's stdout lines on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Entries the ledger's readers see (committed only); panics when they do not verify.
fn committed(dir: &Path) -> Vec<ledger::Match> {
    let found = ledger::find(dir, &Query::All).expect("find");
    assert_eq!(found.unverified_reason, None, "readers refuse the ledger");
    found.matches
}

fn sigkill_during_direct_appends_never_loses_a_reported_entry() {
    let t = tempfile::tempdir().expect("tmp");
    let dir = t.path().join("l");
    ledger::init(&dir, "test.example/crash", PASSWORD).expect("init");
    let mut reported: Vec<(u64, String)> = Vec::new();
    let mut repaired = 0;
    for round in 0..30u64 {
        let mut child = Command::new(std::env::current_exe().expect("self"))
            .arg("--append-loop")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the append loop");
        let lines = lines_of(&mut child);
        let ready = lines.recv_timeout(Duration::from_secs(60));
        assert_eq!(ready.as_deref(), Ok("ready"), "round {round}");
        // 0 to 87 ms in steps of 3 ms, in an order that mixes short and long.
        std::thread::sleep(Duration::from_millis(round * 7 % 30 * 3));
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        for line in lines.iter() {
            let mut w = line.split(' ');
            if let (Some("appended"), Some(i), Some(op)) = (w.next(), w.next(), w.next()) {
                reported.push((i.parse().expect("index"), op.to_string()));
            }
        }
        // Readers answer whatever the kill left.
        committed(&dir);
        // Every other round the next child meets the torn state itself.
        if round % 2 == 1 {
            let l = Ledger::open(&dir).expect("open after kill -9");
            repaired += usize::from(l.recovery().is_some());
        }
    }
    let l = Ledger::open(&dir).expect("open");
    drop(l);
    let all = committed(&dir);
    for (index, op) in &reported {
        let m = all
            .get(*index as usize)
            .unwrap_or_else(|| panic!("reported entry {index} ({op}) is gone"));
        assert_eq!(&m.operator, op, "entry {index} was replaced");
    }
    let report = ledger::verify(&dir, &VerifyOptions::default()).expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
    let recovered = std::fs::read_dir(dir.join("recovered"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!(
        "direct appends: 30 kills, {} appends reported, {} entries, {repaired} opens by the test repaired a torn state, {recovered} tails saved in recovered/",
        reported.len(),
        all.len()
    );
    assert!(!reported.is_empty(), "no append finished in 30 rounds");
    assert!(
        recovered > 0,
        "no kill landed inside an append: nothing was tested"
    );
}

/// `(index, target registry)` of every `ledger: entry N (…) appended` line in `stderr`.
fn appended(stderr: &str, target: &str) -> Vec<(u64, String)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("ledger: entry "))
        .filter(|l| l.contains(") appended to"))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .map(|i| (i, target.to_string()))
        .collect()
}

/// Bytes of `entries.jsonl` in its first `size` lines (what a checkpoint of `size` covers).
fn committed_len(dir: &Path, size: u64) -> u64 {
    let size = size as usize;
    let bytes = std::fs::read(dir.join("entries.jsonl")).expect("entries");
    bytes
        .split_inclusive(|&b| b == b'\n')
        .take(size)
        .map(|l| l.len() as u64)
        .sum()
}

fn sigkill_during_import_leaves_import_receipt_and_verify_working() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let img = fixtures::small_image(41, 300_000);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(fixtures::push_image(
            &src.client(),
            &Repo::parse(&src.host, "apps/a").expect("repository"),
            &img,
            Some("1"),
        ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    common::collect_with_ledger(&src, dir, "k", &[(&img, "apps/a:1")], "l");
    // A prefix per round, so that every import that reaches its record appends an entry.
    let import = |n: u64| -> (Vec<String>, String) {
        let to = format!("{}/m{n}", dst.host);
        let args = [
            "import",
            "k.tar.zst",
            "--to",
            &to,
            "--insecure-registry",
            &dst.host,
            "--allow-unsigned",
            "--ledger",
            "l",
            "--ledger-password-file",
            "pw",
        ]
        .map(str::to_string)
        .to_vec();
        (args, to)
    };
    let ledger_dir: PathBuf = dir.join("l");
    let mut reported: Vec<(u64, String)> = Vec::new();
    let mut repaired = 0;
    let mut torn_left = 0;

    // How long a whole import takes here: the kills are spread over it.
    let (args, to) = import(0);
    let start = Instant::now();
    let out = airlock(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let whole = start.elapsed();
    ok(&out);
    reported.extend(appended(&String::from_utf8_lossy(&out.stderr), &to));

    let rounds = 12u64;
    for round in 1..=rounds {
        let (args, to) = import(round);
        let err = dir.join(format!("import-{round}.err"));
        let entries = ledger_dir.join("entries.jsonl");
        let len = || std::fs::metadata(&entries).map_or(0, |m| m.len());
        let before = len();
        let mut child = common::spawn_airlock(dir, &args, Some(&err));
        if round % 2 == 0 {
            // From 40% to 106% of a whole import, in a mixed order.
            std::thread::sleep(whole.mul_f64(0.40 + 0.06 * ((round * 5) % rounds) as f64));
        } else {
            // The moment the entry's line lands, before its checkpoint is committed (or soon
            // after): the append's own window.
            let start = Instant::now();
            while len() == before && start.elapsed() < whole * 3 {
                std::hint::spin_loop();
            }
        }
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let stderr = std::fs::read_to_string(&err).expect("stderr");
        reported.extend(appended(&stderr, &to));
        repaired += usize::from(stderr.contains("was repaired on open"));
        // Readers answer whatever the kill left.
        committed(&ledger_dir);
        let found = ledger::find(&ledger_dir, &Query::All).expect("find");
        let size = found.checkpoint_size.expect("verified");
        torn_left += usize::from(len() > committed_len(&ledger_dir, size));
    }

    let (args, to) = import(rounds + 1);
    let out = airlock(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&out);
    repaired += usize::from(String::from_utf8_lossy(&out.stderr).contains("was repaired on open"));
    reported.extend(appended(&String::from_utf8_lossy(&out.stderr), &to));
    ok(&airlock(
        dir,
        &[
            "receipt",
            "--registry",
            &dst.host,
            "--insecure-registry",
            &dst.host,
            "--ledger",
            "l",
            "-o",
            "r.json",
        ],
    ));
    ok(&airlock(dir, &["ledger", "verify", "l"]));
    let all = committed(&ledger_dir);
    for (index, target) in &reported {
        let m = all
            .get(*index as usize)
            .unwrap_or_else(|| panic!("reported entry {index} is gone"));
        assert_eq!(&m.target_registry, target, "entry {index} was replaced");
        assert_eq!(m.result, Outcome::Admitted);
    }
    assert!(
        torn_left > 0,
        "no kill landed inside an append: nothing was tested"
    );
    assert_eq!(
        dst.skopeo_raw(&format!("m{}/apps/a:1", rounds + 1)),
        img.manifest.bytes
    );
    println!(
        "imports: {rounds} kills over {:?}..{:?}, {} appends reported, {} entries, {torn_left} kills left an uncommitted or torn line, {repaired} imports repaired what a killed one left",
        whole.mul_f64(0.4),
        whole.mul_f64(1.06),
        reported.len(),
        all.len()
    );
}
