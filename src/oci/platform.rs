//! Platforms (`os/arch[/variant]`) for choosing children of an index.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A platform as written by users (`linux/arm64/v8`) and as found in indexes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Variant, e.g. `v8`; empty when none.
    pub variant: String,
}

/// A platform string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a platform (expected os/arch or os/arch/variant, e.g. linux/arm64/v8)")]
pub struct PlatformError(pub String);

impl Platform {
    /// The variant a platform implies when none is written: `arm64` means `v8`.
    fn normalized_variant(&self) -> &str {
        match (self.architecture.as_str(), self.variant.as_str()) {
            ("arm64", "") => "v8",
            (_, v) => v,
        }
    }

    /// Whether a wanted platform (from the spec) selects this one (from an index). A wanted
    /// platform without variant matches every variant of its architecture, except that
    /// `arm64` and `arm64/v8` are the same.
    pub fn selected_by(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_empty()
                || self.normalized_variant() == wanted.normalized_variant())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: String::new(),
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: variant.to_string(),
            }),
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.variant.is_empty() {
            write!(f, "{}/{}", self.os, self.architecture)
        } else {
            write!(f, "{}/{}/{}", self.os, self.architecture, self.variant)
        }
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({self})")
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().expect("platform")
    }

    #[test]
    fn arm64_and_arm64_v8_are_the_same() {
        assert!(p("linux/arm64/v8").selected_by(&p("linux/arm64")));
        assert!(p("linux/arm64").selected_by(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v7").selected_by(&p("linux/arm/v6")));
        assert!(p("linux/arm/v7").selected_by(&p("linux/arm")));
        assert!(!p("linux/amd64").selected_by(&p("linux/arm64")));
    }

    #[test]
    fn rejects_bad_platforms() {
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
    }
}
