//! Names from outside, parsed at the edge into types that follow the OCI distribution grammar
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests>):
//! a repository name is `/`-separated components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, a tag is
//! `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`. The registry client builds URL paths only from these
//! types and [`Digest`], so a name read from a bundle, a lock, a receipt or a registry's own
//! listing can never carry `..`, `/`, `?`, `#` or `%` into a request path.

use std::fmt;
use std::str::FromStr;

use crate::oci::Digest;

/// The longest repository name distribution accepts (host and path together, in practice).
pub const MAX_REPOSITORY_LEN: usize = 255;
/// The longest tag the grammar allows.
pub const MAX_TAG_LEN: usize = 128;

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a repository name.
    #[error("`{shown}` is not a valid repository name (lowercase components of letters and digits joined by `.`, `_`, `__` or `-`, separated by `/`, at most {MAX_REPOSITORY_LEN} characters)")]
    Repository {
        /// The input, escaped and shortened for display.
        shown: String,
    },
    /// Not a tag.
    #[error("`{shown}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most {MAX_TAG_LEN}; not starting with `.` or `-`)")]
    Tag {
        /// The input, escaped and shortened for display.
        shown: String,
    },
    /// Not a media type.
    #[error("`{shown}` is not a valid media type (type/subtype of RFC 6838 characters)")]
    MediaType {
        /// The input, escaped and shortened for display.
        shown: String,
    },
}

/// True for one repository path component.
pub fn valid_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// True for a tag.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// True for a repository path (no host).
pub fn valid_repository(r: &str) -> bool {
    !r.is_empty() && r.len() <= MAX_REPOSITORY_LEN && r.split('/').all(valid_component)
}

/// True for an RFC 6838 media type (`type/subtype`, restricted-name characters, optional
/// `+suffix`); parameters are not allowed where airlock uses one as a name or header.
pub fn valid_media_type(m: &str) -> bool {
    let name = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match m.split_once('/') {
        Some((t, s)) => name(t) && name(s),
        None => false,
    }
}

/// A validated repository path (`library/nginx`, `mirror/org/app`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

/// A validated tag.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

macro_rules! name_type {
    ($ty:ident, $check:expr, $err:ident) => {
        impl $ty {
            /// Parses and validates.
            pub fn parse(s: &str) -> Result<Self, NameError> {
                if $check(s) {
                    Ok($ty(s.to_string()))
                } else {
                    Err(NameError::$err {
                        shown: crate::untrusted::shorten(s),
                    })
                }
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $ty::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                if $check(&s) {
                    Ok($ty(s))
                } else {
                    Err(NameError::$err {
                        shown: crate::untrusted::shorten(&s),
                    })
                }
            }
        }

        impl From<$ty> for String {
            fn from(n: $ty) -> String {
                n.0
            }
        }

        impl std::ops::Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }
    };
}

name_type!(RepoName, valid_repository, Repository);
name_type!(Tag, valid_tag, Tag);

impl Tag {
    /// The tag schema's name for what is attached to `subject`: `sha256-<hex>` followed by
    /// `suffix` (`""` for the referrers fallback index, `.sig`, `.att`, `.sbom` for cosign).
    pub fn for_subject(subject: &Digest, suffix: &'static str) -> Tag {
        let t = format!("sha256-{}{suffix}", subject.hex());
        // A digest's algorithm and hex are lowercase letters and digits, and every suffix
        // airlock uses is `.` plus letters: always a tag.
        Tag::try_from(t).expect("sha256-<hex> plus a known suffix is a valid tag")
    }
}

/// What a manifest request names: a tag or a digest. The only way to put a reference into a
/// `/v2/<name>/manifests/<reference>` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManifestRef {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestRef::Tag(t) => f.write_str(t),
            ManifestRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

impl From<Tag> for ManifestRef {
    fn from(t: Tag) -> Self {
        ManifestRef::Tag(t)
    }
}

impl From<&Tag> for ManifestRef {
    fn from(t: &Tag) -> Self {
        ManifestRef::Tag(t.clone())
    }
}

impl From<&ManifestRef> for ManifestRef {
    fn from(r: &ManifestRef) -> Self {
        r.clone()
    }
}

impl From<Digest> for ManifestRef {
    fn from(d: Digest) -> Self {
        ManifestRef::Digest(d)
    }
}

impl From<&Digest> for ManifestRef {
    fn from(d: &Digest) -> Self {
        ManifestRef::Digest(d.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_that_would_change_a_url() {
        for bad in [
            "../../prod/app",
            "a/../b",
            "a/./b",
            "a//b",
            "/a",
            "a/",
            "a?x",
            "a#x",
            "a%2fb",
            "A",
            "a b",
            "a\nb",
            "é",
        ] {
            assert!(RepoName::parse(bad).is_err(), "accepted repository {bad:?}");
        }
        for bad in [
            "../../../../prod/app/manifests/pwned",
            "",
            ".x",
            "-x",
            "a/b",
            "a?b",
            "a%b",
            "a\u{1b}[2J",
        ] {
            assert!(Tag::parse(bad).is_err(), "accepted tag {bad:?}");
        }
        assert!(Tag::parse(&"a".repeat(129)).is_err());
        assert!(Tag::parse(&"a".repeat(128)).is_ok());
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
        for bad in ["", "x", "a/b/c", "a/b; x=y", "a/b\r\nX: y", "/b", "a/"] {
            assert!(!valid_media_type(bad), "accepted media type {bad:?}");
        }
    }

    #[test]
    fn accepts_the_grammar() {
        for ok in ["library/nginx", "a", "a.b/c_d/e__f/g---h", "0/1"] {
            assert_eq!(RepoName::parse(ok).expect(ok).as_str(), ok);
        }
        for ok in ["latest", "1.27", "_x", "sha256-abc.sig", "A-b_C.d"] {
            assert_eq!(Tag::parse(ok).expect(ok).as_str(), ok);
        }
        for ok in [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            "text/plain",
        ] {
            assert!(valid_media_type(ok), "{ok}");
        }
    }

    #[test]
    fn serde_refuses_bad_names_and_shortens_them_in_errors() {
        let long = format!("\"{}\"", "x/".repeat(300));
        let e = serde_json::from_str::<RepoName>(&long).expect_err("too long");
        assert!(e.to_string().len() < 400, "{e}");
        let e = serde_json::from_str::<Tag>("\"a\\u001b[2Jb\"").expect_err("escape");
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
    }
}
