//! A loopback proxy that adds a fixed delay to every request, in front of a real registry: the
//! registry of the WAN benchmark, one round trip away. It counts the requests it forwards and
//! keeps the count in a file, so `scripts/bench.sh` can report requests per image.
//!
//! `cargo run --example wanproxy -- UPSTREAM_HOST:PORT DELAY_MS COUNT_FILE`
//! prints the proxy's `127.0.0.1:PORT` on stdout, then runs until killed.

// The test harness's proxy and its server loop, without the rest of the harness.
#[path = "../tests/common/serve.rs"]
mod serve;
use serve::{full, serve_http, Body};
#[path = "../tests/common/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(upstream), Some(delay), Some(count_file)) = (
        args.get(1),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
        args.get(3),
    ) else {
        eprintln!("usage: wanproxy UPSTREAM_HOST:PORT DELAY_MS COUNT_FILE");
        std::process::exit(2);
    };
    let proxy =
        proxy::Proxy::start_delayed(upstream, proxy::Fault::None, Duration::from_millis(delay));
    println!("{}", proxy.host);
    std::io::stdout().flush().expect("stdout");
    let tmp = format!("{count_file}.tmp");
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let n = proxy.requests.load(Ordering::SeqCst);
        // Written then renamed, so a reader never sees half a number.
        if std::fs::write(&tmp, format!("{n}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, count_file);
        }
    }
}
