//! Makes a ledger of N entries with one checkpoint per entry, as N imports would leave it,
//! for timing the CLI (password `bench`; see `benches/support/ledger_entries.rs`):
//!
//! `cargo run --release --example ledger_gen -- DIR N`
//!
//! then e.g. `/usr/bin/time -v target/release/airlock ledger verify DIR` or
//! `airlock ledger prove DIR --index 50000`. With `--open` after N, the ledger is opened once
//! as an importer would (building `tree-state` and the derived files a ledger made by appends
//! has), so `prove` takes its O(log n) path.

#[path = "../benches/support/ledger_entries.rs"]
mod ledger_entries;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: ledger_gen DIR N [--open]");
        std::process::exit(2);
    };
    let n: u64 = n.parse().expect("N is a number");
    let open = args.next().is_some_and(|a| a == "--open");
    ledger_entries::write_ledger(std::path::Path::new(&dir), n);
    if open {
        airlock::ledger::Ledger::open(std::path::Path::new(&dir)).expect("open");
    }
    eprintln!("{dir}: {n} entries{}", if open { ", opened" } else { "" });
}
