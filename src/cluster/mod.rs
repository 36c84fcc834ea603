//! Making the cluster run only what crossed: node mirror configuration (`mirror_config`),
//! manifests pinned by digest (`pin`) and admission policies (`admission`), all from what
//! import admitted (`admitted`).

pub mod admission;
pub mod admitted;
pub mod mirror_config;
pub mod pin;
mod yaml_scan;

pub use admitted::{Admitted, AdmittedError, AdmittedImage};
pub use mirror_config::{Mirror, MirrorError, MirrorFormat, MirrorOptions};
pub use pin::{pin_text, PinError, PinReport};
