//! Package version order for the ecosystems airlock scans: dpkg (Debian, Ubuntu) and apk
//! (Alpine). Both are tested against the complete upstream corpora.

pub mod apk;
pub mod dpkg;

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// Which version order a package ecosystem uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionScheme {
    /// Debian `dpkg --compare-versions` order.
    Dpkg,
    /// Alpine `apk version` order.
    Apk,
}

impl VersionScheme {
    /// Compares two versions in this scheme. Never fails: malformed versions are ordered the
    /// way the upstream tool orders them.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            VersionScheme::Dpkg => dpkg::compare(a, b),
            VersionScheme::Apk => apk::compare(a, b),
        }
    }

    /// True when `v` is a well-formed version in this scheme.
    pub fn is_valid(self, v: &str) -> bool {
        match self {
            VersionScheme::Dpkg => dpkg::DebVersion::parse(v).is_ok(),
            VersionScheme::Apk => apk::validate(v),
        }
    }
}
