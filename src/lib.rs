//! airlock: carry container images, Helm charts and files into air-gapped sites and prove what
//! crossed. The CLI in `src/main.rs` is a thin layer over this library; tests call it directly.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bundle;
pub mod collect;
pub mod import;
pub mod ledger;
pub mod lock;
pub mod oci;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod scan;
pub mod spec;
pub mod trust;
