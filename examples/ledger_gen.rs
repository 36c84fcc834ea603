//! Makes a ledger of N entries with one checkpoint per entry, as N imports would leave it,
//! for timing the CLI (password `bench`):
//!
//! `cargo run --release --example ledger_gen -- DIR N`
//!
//! then e.g. `/usr/bin/time -v target/release/airlock ledger verify DIR` or
//! `airlock ledger prove DIR --index 50000`. It writes the files an append writes (the same
//! bytes: canonical lines, checkpoints signed by the ledger key) without the per-append file
//! dance, so 100 000 entries take seconds, not the many minutes of 100 000 real appends; the
//! caches (`tree-state` and the derived files) are left for the first open to build, as for a
//! ledger made before they existed.

#[path = "../benches/support/ledger_entries.rs"]
mod ledger_entries;

use std::io::Write as _;
use std::path::PathBuf;

use airlock::ledger::checkpoint::Checkpoint;
use airlock::ledger::merkle::{leaf_hash, Frontier};
use airlock::ledger::{self, LedgerSigner};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: ledger_gen DIR N");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let n: u64 = n.parse().expect("N is a number");
    let origin = "bench.example/ledger";
    ledger::init(&dir, origin, b"bench").expect("init (DIR must be absent or empty)");
    let signer = LedgerSigner::load(&dir, b"bench").expect("key");
    let entries = std::fs::File::create(dir.join(ledger::ENTRIES)).expect("entries");
    let mut entries = std::io::BufWriter::new(entries);
    let mut frontier = Frontier::new();
    let mut note = String::new();
    for i in 0..n {
        let mut e = ledger_entries::entry(i);
        e.index = i;
        let line = e.to_line().expect("entry");
        entries.write_all(&line).expect("write");
        entries.write_all(b"\n").expect("write");
        frontier.push(leaf_hash(&line));
        let cp = Checkpoint::new(origin, frontier.size(), frontier.root());
        note = signer.sign_note(&cp.body()).expect("sign");
        std::fs::write(
            dir.join(ledger::CHECKPOINTS).join((i + 1).to_string()),
            &note,
        )
        .expect("checkpoint");
    }
    entries.flush().expect("flush");
    if n > 0 {
        std::fs::write(dir.join(ledger::CHECKPOINT), &note).expect("checkpoint");
    }
    let _ = std::fs::remove_file(dir.join(ledger::STATE));
    eprintln!("{}: {n} entries", dir.display());
}
