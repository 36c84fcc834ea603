//! The distribution API's paths and query parameters, parsed into typed requests: every name
//! through `oci::name` (so `..`, `%2e`, upper case and over-long names never reach a lookup).

use crate::oci::{Digest, ManifestRef, RepoName, Tag};

/// A request the registry answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(RepoName),
    /// `/v2/<name>/manifests/<tag|digest>`.
    Manifest(RepoName, ManifestRef),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepoName, Digest),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(RepoName, Digest),
}

/// Why a path is not a request the registry answers; each maps to the distribution error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Not an API path at all.
    #[error("no such API path")]
    NotFound,
    /// The repository name breaks the distribution grammar.
    #[error("invalid repository name")]
    NameInvalid,
    /// The digest is not `sha256:<64 hex>`.
    #[error("invalid digest")]
    DigestInvalid,
    /// The tag breaks the distribution grammar.
    #[error("invalid tag")]
    TagInvalid,
}

impl RouteError {
    /// The distribution error code (`NAME_INVALID`…) and HTTP status.
    pub fn code(&self) -> (&'static str, u16) {
        match self {
            RouteError::NotFound => ("NOT_FOUND", 404),
            RouteError::NameInvalid => ("NAME_INVALID", 400),
            RouteError::DigestInvalid => ("DIGEST_INVALID", 400),
            RouteError::TagInvalid => ("TAG_INVALID", 400),
        }
    }
}

/// Parses a request path (without its query).
pub fn route(path: &str) -> Result<Route, RouteError> {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Ok(Route::Base)
        } else {
            Err(RouteError::NotFound)
        };
    };
    if rest.is_empty() {
        return Ok(Route::Base);
    }
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let name = |n: &str| RepoName::parse(n).map_err(|_| RouteError::NameInvalid);
    let digest = |d: &str| d.parse::<Digest>().map_err(|_| RouteError::DigestInvalid);
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags(name(n)?));
    }
    // The repository name may hold slashes: the last `/<kind>/` splits it from the reference.
    for kind in ["manifests", "blobs", "referrers"] {
        let marker = format!("/{kind}/");
        let Some(i) = rest.rfind(&marker) else {
            continue;
        };
        let (n, reference) = (&rest[..i], &rest[i + marker.len()..]);
        if reference.contains('/') {
            continue;
        }
        let repo = name(n)?;
        return match kind {
            "manifests" if reference.contains(':') => Ok(Route::Manifest(
                repo,
                ManifestRef::Digest(digest(reference)?),
            )),
            "manifests" => Ok(Route::Manifest(
                repo,
                ManifestRef::Tag(Tag::parse(reference).map_err(|_| RouteError::TagInvalid)?),
            )),
            "blobs" => Ok(Route::Blob(repo, digest(reference)?)),
            _ => Ok(Route::Referrers(repo, digest(reference)?)),
        };
    }
    Err(RouteError::NotFound)
}

/// `n` and `last` of a list request, and `artifactType` of a referrers request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    /// At most this many entries.
    pub n: Option<usize>,
    /// Only entries after this one.
    pub last: Option<String>,
    /// Only referrers of this artifact type.
    pub artifact_type: Option<String>,
}

/// Parses the query string (unknown keys are ignored, as registries do).
pub fn query(q: Option<&str>) -> Query {
    let mut out = Query::default();
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "n" => out.n = v.parse().ok(),
            "last" => out.last = Some(v.into_owned()),
            "artifactType" => out.artifact_type = Some(v.into_owned()),
            _ => {}
        }
    }
    out
}

/// A `Range: bytes=…` header resolved against a blob of `size` bytes: the inclusive byte range,
/// `Ok(None)` for no header, `Err(())` for one that cannot be satisfied (answered with 416).
/// Only single ranges are served.
#[allow(clippy::result_unit_err)]
pub fn range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(h) = header else {
        return Ok(None);
    };
    let spec = h.trim().strip_prefix("bytes=").ok_or(())?.trim();
    if spec.contains(',') {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let num = |s: &str| -> Result<u64, ()> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(());
        }
        s.parse().map_err(|_| ())
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n = num(suffix)?;
            if n == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (a, "") => (num(a)?, size.saturating_sub(1)),
        (a, b) => (num(a)?, num(b)?.min(size.saturating_sub(1))),
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_api_paths() {
        assert_eq!(route("/v2/"), Ok(Route::Base));
        assert_eq!(route("/v2/_catalog"), Ok(Route::Catalog));
        let repo = RepoName::parse("library/nginx").expect("name");
        assert_eq!(
            route("/v2/library/nginx/tags/list"),
            Ok(Route::Tags(repo.clone()))
        );
        assert_eq!(
            route(&format!("/v2/library/nginx/blobs/{D}")),
            Ok(Route::Blob(repo.clone(), D.parse().expect("digest")))
        );
        assert_eq!(
            route("/v2/library/nginx/manifests/1.27"),
            Ok(Route::Manifest(
                repo.clone(),
                ManifestRef::Tag(Tag::parse("1.27").expect("tag"))
            ))
        );
        assert_eq!(
            route(&format!("/v2/library/nginx/referrers/{D}")),
            Ok(Route::Referrers(repo, D.parse().expect("digest")))
        );
        // A repository may itself be called `blobs`.
        assert!(matches!(
            route(&format!("/v2/a/blobs/blobs/{D}")),
            Ok(Route::Blob(r, _)) if r.as_str() == "a/blobs"
        ));
    }

    #[test]
    fn refuses_traversal_and_bad_names() {
        for p in [
            "/v2/../etc/manifests/latest",
            "/v2/a/../../b/manifests/latest",
            "/v2/%2e%2e/manifests/latest",
            "/v2/UPPER/manifests/latest",
            "/v2//manifests/latest",
        ] {
            assert_eq!(route(p), Err(RouteError::NameInvalid), "{p}");
        }
        assert_eq!(
            route("/v2/a/blobs/sha256:..%2f..%2fx"),
            Err(RouteError::DigestInvalid)
        );
        // A reference never holds a slash: such a path is no API path at all.
        assert_eq!(
            route("/v2/a/blobs/sha256:../../x"),
            Err(RouteError::NotFound)
        );
        assert_eq!(route("/v2/a/manifests/..%2f"), Err(RouteError::TagInvalid));
        assert_eq!(route("/etc/passwd"), Err(RouteError::NotFound));
        assert_eq!(route("/v2/a/uploads/"), Err(RouteError::NotFound));
    }

    #[test]
    fn resolves_ranges() {
        assert_eq!(range(None, 10), Ok(None));
        assert_eq!(range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(range(Some("bytes=-4"), 10), Ok(Some((6, 9))));
        assert_eq!(range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        for bad in [
            "bytes=10-",
            "bytes=5-2",
            "bytes=-0",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=+1-2",
        ] {
            assert_eq!(range(Some(bad), 10), Err(()), "{bad}");
        }
        assert_eq!(range(Some("bytes=0-0"), 0), Err(()));
    }

    #[test]
    fn reads_list_queries() {
        let q = query(Some("n=2&last=b&artifactType=application%2Fspdx%2Bjson"));
        assert_eq!(q.n, Some(2));
        assert_eq!(q.last.as_deref(), Some("b"));
        assert_eq!(q.artifact_type.as_deref(), Some("application/spdx+json"));
    }
}
