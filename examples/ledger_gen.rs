//! Makes a ledger of N entries with one checkpoint per entry, as N imports would leave it,
//! for timing the CLI (password `bench`; see `benches/support/ledger_entries.rs`):
//!
//! `cargo run --release --example ledger_gen -- DIR N`
//!
//! then e.g. `/usr/bin/time -v target/release/airlock ledger verify DIR` or
//! `airlock ledger prove DIR --index 50000`.

#[path = "../benches/support/ledger_entries.rs"]
mod ledger_entries;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: ledger_gen DIR N");
        std::process::exit(2);
    };
    let n: u64 = n.parse().expect("N is a number");
    ledger_entries::write_ledger(std::path::Path::new(&dir), n);
    eprintln!("{dir}: {n} entries");
}
