//! Image references (`[registry/]repository[:tag][@digest]`): parsed and normalized the way
//! docker/distribution's `reference` package does (docker.io, `library/`, ports, digests).

use std::fmt;
use std::str::FromStr;

use crate::oci::{Digest, DigestError};

/// The registry name Docker Hub images get when none is written.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed, normalized image reference.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host with optional port, normalized (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path within the registry (`library/nginx`).
    pub repository: RepoName,
    /// Tag, when written.
    pub tag: Option<Tag>,
    /// Digest, when written (pinned).
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Empty input.
    #[error("empty image reference")]
    Empty,
    /// Uppercase letters in the repository.
    #[error("`{0}`: repository name must be lowercase")]
    Uppercase(String),
    /// Bad characters or structure in the repository path.
    #[error("`{0}`: invalid repository name")]
    BadName(String),
    /// Bad tag.
    #[error("`{0}`: invalid tag (letters, digits, `_`, `.`, `-`, at most 128, not starting with `.` or `-`)")]
    BadTag(String),
    /// Bad registry host.
    #[error("`{0}`: invalid registry host")]
    BadHost(String),
    /// Bad digest.
    #[error("`{input}`: {source}")]
    BadDigest {
        /// The whole reference.
        input: String,
        /// Why the digest part is bad.
        source: DigestError,
    },
    /// Name longer than 255 characters.
    #[error("`{0}`: repository name longer than 255 characters")]
    TooLong(String),
}

use crate::oci::name::{valid_component, valid_tag};
use crate::oci::{RepoName, Tag};

/// True for `host[:port]` or `[ipv6][:port]`.
pub fn valid_host(h: &str) -> bool {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        // IPv6 literal
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        ("x", after.strip_prefix(':'))
    } else {
        match h.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (
                n,
                Some(
                    d.parse::<Digest>()
                        .map_err(|source| ReferenceError::BadDigest {
                            input: crate::untrusted::shorten(input),
                            source,
                        })?,
                ),
            ),
            None => (input, None),
        };
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&name_tag[..colon], Some(&name_tag[colon + 1..]))
            }
            _ => (name_tag, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::BadTag(crate::untrusted::shorten(input)));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                if !valid_host(first) {
                    return Err(ReferenceError::BadHost(crate::untrusted::shorten(input)));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if repository.is_empty() {
            return Err(ReferenceError::BadName(crate::untrusted::shorten(input)));
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(crate::untrusted::shorten(input)));
        }
        if !repository.split('/').all(valid_component) {
            return Err(ReferenceError::BadName(crate::untrusted::shorten(input)));
        }
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if registry.len() + 1 + repository.len() > 255 {
            return Err(ReferenceError::TooLong(crate::untrusted::shorten(input)));
        }
        let repository = RepoName::try_from(repository)
            .map_err(|_| ReferenceError::BadName(crate::untrusted::shorten(input)))?;
        let tag = match tag {
            Some(t) => Some(
                Tag::parse(t)
                    .map_err(|_| ReferenceError::BadTag(crate::untrusted::shorten(input)))?,
            ),
            None => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag or digest to ask the registry for: the digest when pinned, else the tag, else
    /// `latest`.
    pub fn reference_part(&self) -> crate::oci::ManifestRef {
        use crate::oci::ManifestRef;
        match (&self.digest, &self.tag) {
            (Some(d), _) => ManifestRef::Digest(d.clone()),
            (None, Some(t)) => ManifestRef::Tag(t.clone()),
            (None, None) => ManifestRef::Tag(Tag::parse("latest").expect("`latest` is a tag")),
        }
    }

    /// The registry client's repository handle for this reference.
    pub fn repo(&self) -> crate::registry::Repo {
        crate::registry::Repo::new(self.registry.clone(), self.repository.clone())
    }

    /// The same repository, pinned at `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// True when a digest pins it.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    // Cases follow docker/distribution reference/normalize_test.go and reference_test.go.
    #[test]
    fn normalizes_like_distribution() {
        let cases = [
            ("ubuntu", "docker.io/library/ubuntu"),
            ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
            ("docker.io/ubuntu", "docker.io/library/ubuntu"),
            ("index.docker.io/library/ubuntu", "docker.io/library/ubuntu"),
            ("foo/bar", "docker.io/foo/bar"),
            ("localhost/foo", "localhost/foo"),
            ("localhost:5000/foo/bar:tag", "localhost:5000/foo/bar:tag"),
            ("127.0.0.1:5000/a/b/c:1.0", "127.0.0.1:5000/a/b/c:1.0"),
            ("ghcr.io/org/app", "ghcr.io/org/app"),
            ("[::1]:5000/foo", "[::1]:5000/foo"),
            ("foo_bar.com:8080/x__y", "foo_bar.com:8080/x__y"),
            ("a/b-----c", "docker.io/a/b-----c"),
        ];
        for (input, want) in cases {
            let r: Reference = match input.parse() {
                Ok(r) => r,
                Err(e) if input.starts_with("foo_bar") => {
                    // underscore is not valid in a hostname label; distribution agrees.
                    assert!(matches!(e, ReferenceError::BadHost(_)));
                    continue;
                }
                Err(e) => panic!("{input}: {e}"),
            };
            assert_eq!(r.to_string(), want, "{input}");
        }
        let pinned: Reference = format!("nginx:1.27@{D}").parse().expect("pinned");
        assert_eq!(pinned.tag.as_deref(), Some("1.27"));
        assert_eq!(pinned.reference_part().to_string(), D);
        assert!(pinned.is_pinned());
    }

    #[test]
    fn rejects_bad_references() {
        let bad = [
            "",
            "Uppercase/foo",
            "foo/Bar",
            "foo:",
            "foo:-bad",
            "foo/../bar",
            "foo//bar",
            "-foo",
            "foo-",
            "host:port:x/foo",
            "foo@sha256:abc",
            "foo@md5:abc",
            "a:b/c:d:e",
            "127.0.0.1:/foo",
        ];
        for b in bad {
            assert!(b.parse::<Reference>().is_err(), "accepted {b:?}");
        }
        let long = "a".repeat(256);
        assert!(matches!(
            long.parse::<Reference>(),
            Err(ReferenceError::TooLong(_))
        ));
    }
}
