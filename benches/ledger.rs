//! Ledger benchmark (not a test): append cost at 1 000 and 100 000 entries, `verify` and
//! `prove` on a 100 000-entry ledger with a checkpoint per entry (made by
//! `support/ledger_entries.rs`, as `examples/ledger_gen.rs` makes one for the CLI). Run with `cargo bench --bench ledger`;
//! prints a Markdown table. `LEDGER_BENCH_N` overrides the large size.

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "support/ledger_entries.rs"]
mod ledger_entries;

use airlock::ledger::{self, Durability, Ledger, LedgerSigner, OpenOptions, VerifyOptions};
use ledger_entries::{entry, write_ledger};

fn open(dir: &Path, durability: Durability) -> Ledger {
    Ledger::open_with(
        dir,
        &OpenOptions {
            durability,
            ..Default::default()
        },
    )
    .expect("open")
}

/// Mean time of `count` appends starting at the current size.
fn time_appends(dir: &Path, signer: &LedgerSigner, durability: Durability, count: u64) -> Duration {
    let mut l = open(dir, durability);
    let base = l.size();
    let start = Instant::now();
    for i in 0..count {
        l.append(&entry(base + i), signer).expect("append");
    }
    start.elapsed() / count as u32
}

fn main() {
    let big: u64 = std::env::var("LEDGER_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut signer = None;
    for size in [1_000, big] {
        let dir = tmp.path().join(format!("ledger-{size}"));
        let t = Instant::now();
        write_ledger(&dir, size);
        eprintln!("wrote {size} entries in {:.1?}", t.elapsed());
        let s = LedgerSigner::load(&dir, b"bench").expect("key");
        let t = Instant::now();
        drop(open(&dir, Durability::Full));
        rows.push((
            format!("first open at {size} (builds tree-state and the derived files, O(n) once)"),
            format!("{:.1?}", t.elapsed()),
        ));
        let cpu = time_appends(&dir, &s, Durability::DangerousNoSync, 200);
        let full = time_appends(&dir, &s, Durability::Full, 30);
        rows.push((
            format!("append at {size} entries, no fsync (CPU + page cache), mean of 200"),
            format!("{cpu:.1?}"),
        ));
        rows.push((
            format!("append at {size} entries, full fsync, mean of 30"),
            format!("{full:.1?}"),
        ));
        let t = Instant::now();
        drop(open(&dir, Durability::Full));
        rows.push((
            format!("open (lock, checkpoint, cached tree state, derived files checked) at {size}"),
            format!("{:.1?}", t.elapsed()),
        ));
        signer = Some(s);
    }
    let signer = signer.expect("a ledger was made");
    let dir = tmp.path().join(format!("ledger-{big}"));
    let t = Instant::now();
    let report = ledger::verify(
        &dir,
        &VerifyOptions {
            vkey: Some(signer.verifier()),
            ..Default::default()
        },
    )
    .expect("verify");
    let elapsed = t.elapsed();
    assert!(
        report.is_ok(),
        "{:?}",
        report.problems.first().map(|p| p.full_message())
    );
    rows.push((
        format!(
            "verify {} entries, {} checkpoints",
            report.entries, report.checkpoints_verified
        ),
        format!("{elapsed:.2?}"),
    ));
    let t = Instant::now();
    ledger::prove_inclusion(&dir, report.entries / 2, None).expect("prove");
    rows.push((
        format!(
            "prove inclusion at {} entries (tree-hashes and entry-offsets, checked against the signed root)",
            report.entries
        ),
        format!("{:.1?}", t.elapsed()),
    ));
    let t = Instant::now();
    let every = ledger::verify(
        &dir,
        &VerifyOptions {
            vkey: Some(signer.verifier()),
            every_signature: true,
            ..Default::default()
        },
    )
    .expect("verify");
    assert!(every.is_ok());
    rows.push((
        format!("verify --every-signature, {} entries", every.entries),
        format!("{:.2?}", t.elapsed()),
    ));
    let bytes = std::fs::metadata(dir.join("entries.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);

    println!("| measurement | time |");
    println!("|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    println!(
        "\nentries.jsonl: {bytes} bytes ({} bytes per entry)",
        bytes / report.entries.max(1)
    );
}
