//! airlock: carry container images, Helm charts and files into air-gapped sites and prove what
//! crossed. The CLI in `src/main.rs` is a thin layer over this library; tests call it directly.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bundle;
pub mod chart;
pub mod cluster;
pub mod collect;
pub mod config;
pub mod disk;
pub mod error_kind;
pub mod files;
pub mod import;
pub mod io;
pub mod ledger;
pub mod lock;
pub mod oci;
pub mod progress;
pub mod receipt;
pub mod reference;
pub mod registry;
pub mod scan;
pub mod serve;
pub mod spec;
pub mod tarstream;
pub mod trust;
pub mod untrusted;

/// `VERSION (commit COMMIT, built DATE)`: what `airlock --version` prints and what the ledger
/// records as the importer, so two builds of one version can be told apart.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AIRLOCK_COMMIT"),
    ", built ",
    env!("AIRLOCK_BUILD_DATE"),
    ")"
);

/// An error and its causes on one line (`what: why: why`), for errors that are embedded as text
/// in another error's message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A byte count for people, in binary units (`1.5 GiB`); exact below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
