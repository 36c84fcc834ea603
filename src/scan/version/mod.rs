//! Package version order for the ecosystems airlock scans: dpkg (Debian, Ubuntu), apk
//! (Alpine), rpm, semver (npm, Go, crates.io, NuGet), PEP 440 (PyPI) and Maven. dpkg, apk and rpm are
//! tested against the complete upstream corpora.

pub mod apk;
pub mod dpkg;
pub mod maven;
pub mod pep440;
pub mod rpm;
pub mod semver;

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
    /// rpm `rpmvercmp` order on `[EPOCH:]VERSION-RELEASE`.
    Rpm,
    /// Semantic Versioning precedence (npm, Go, crates.io, NuGet).
    Semver,
    /// PEP 440 (PyPI).
    Pep440,
    /// Maven `ComparableVersion`.
    Maven,
}

impl VersionScheme {
    /// Compares two versions in this scheme. Never fails: malformed versions are ordered the
    /// way the upstream tool orders them.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            VersionScheme::Dpkg => dpkg::compare(a, b),
            VersionScheme::Apk => apk::compare(a, b),
            VersionScheme::Rpm => rpm::compare(a, b),
            VersionScheme::Semver => semver::compare(a, b),
            VersionScheme::Pep440 => pep440::compare(a, b),
            VersionScheme::Maven => maven::compare(a, b),
        }
    }

    /// True when `v` is a well-formed version in this scheme.
    pub fn is_valid(self, v: &str) -> bool {
        match self {
            VersionScheme::Dpkg => dpkg::DebVersion::parse(v).is_ok(),
            VersionScheme::Apk => apk::validate(v),
            VersionScheme::Rpm => !v.is_empty(),
            VersionScheme::Semver => semver::is_valid(v),
            VersionScheme::Pep440 => pep440::Pep440::parse(v).is_some(),
            VersionScheme::Maven => !v.is_empty(),
        }
    }
}
