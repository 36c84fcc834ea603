//! The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`): what names a manifest as
//! its `subject` (cosign v3 signatures, attestations, SBOMs).
//!
//! A registry without the API answers 404, 400, 405, an HTML page or something that is not an
//! OCI index; all of those mean "no API" and the caller falls back to the referrers tag schema
//! (`sha256-<hex>`). Any other answer (401, 403, 429, 5xx) is an error, never "no API": a
//! caller may remember "no API" for the whole registry, and a passing refusal must not make
//! it skip the API for every image after. Pages linked by `Link: <…>; rel="next"` are followed on the registry's own
//! origin only, each page and the whole listing capped in bytes and in entries before anything
//! is buffered past the cap. The `artifactType` of a listed descriptor is the registry's word:
//! callers read the referrer's manifest before believing it.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;

use super::http::read_capped;
use super::{Registry, RegistryError, Repo};
use crate::oci::{media, Descriptor, Digest};

/// Most referrers accepted for one subject (all pages together).
pub const MAX_REFERRERS: usize = 256;
/// Most bytes of referrers listing read for one subject (all pages together).
pub const MAX_REFERRERS_BYTES: usize = 4 * 1024 * 1024;
/// Most pages followed for one subject.
const MAX_PAGES: usize = 64;

/// What the referrers API said about a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Referrers {
    /// The registry has no referrers API (404, 400, 405, HTML, not an OCI index): a definitive
    /// answer about the registry, not about this subject.
    NoApi,
    /// The API answered: these descriptors (possibly none).
    Listed(Vec<Descriptor>),
}

/// Reads one page of a referrers answer: `None` when it is not an OCI index (no API).
pub fn parse_page(body: &[u8]) -> Option<Vec<Descriptor>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Page {
        schema_version: u32,
        media_type: Option<String>,
        manifests: Vec<Descriptor>,
    }
    let page: Page = serde_json::from_slice(body).ok()?;
    let index = page.schema_version == 2
        && page
            .media_type
            .as_deref()
            .is_none_or(|m| m == media::OCI_INDEX);
    index.then_some(page.manifests)
}

/// A status by which a registry says it has no referrers API (it does not know the route).
fn no_api_status(status: reqwest::StatusCode) -> bool {
    use reqwest::StatusCode;
    matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED
    )
}

impl Registry {
    /// Lists the referrers of `subject` in `repo` through the referrers API, following `Link`
    /// pages on the registry's origin, within [`MAX_REFERRERS`] entries and
    /// [`MAX_REFERRERS_BYTES`] bytes.
    pub async fn list_referrers(
        &self,
        repo: &Repo,
        subject: &Digest,
    ) -> Result<Referrers, RegistryError> {
        let mut next = Some(self.url(repo, &format!("referrers/{subject}")));
        let mut out: Vec<Descriptor> = Vec::new();
        let mut budget = MAX_REFERRERS_BYTES;
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(RegistryError::Protocol {
                    url,
                    why: format!("more than {MAX_PAGES} pages of referrers of {subject}"),
                });
            }
            let resp = self
                .execute(
                    &repo.registry,
                    &Self::pull_scope(repo),
                    Method::GET,
                    &url,
                    &|r| r.header(ACCEPT, media::OCI_INDEX),
                )
                .await?;
            let status = resp.status();
            let is_index = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with(media::OCI_INDEX));
            if no_api_status(status) || (status.is_success() && !is_index) {
                if pages == 1 {
                    return Ok(Referrers::NoApi);
                }
                return Err(RegistryError::Protocol {
                    url,
                    why: format!("page {pages} of the referrers of {subject} answered {status} without an OCI index"),
                });
            }
            if !status.is_success() {
                return Err(Self::status_error(Method::GET, &url, resp).await);
            }
            next = self.next_page(&repo.registry, &url, &resp)?;
            let body = read_capped(resp, budget, &Method::GET, &url, "referrers listing").await?;
            budget -= body.len();
            let Some(list) = parse_page(&body) else {
                if pages == 1 {
                    return Ok(Referrers::NoApi);
                }
                return Err(RegistryError::Protocol {
                    url,
                    why: "a later referrers page is not an OCI index".into(),
                });
            };
            if out.len() + list.len() > MAX_REFERRERS {
                return Err(RegistryError::TooManyReferrers {
                    url,
                    subject: subject.clone(),
                    limit: MAX_REFERRERS,
                });
            }
            out.extend(list);
        }
        Ok(Referrers::Listed(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_index_page_and_refuses_what_is_not_one() {
        let d = format!("sha256:{}", "a".repeat(64));
        let page = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{d}","size":3,"artifactType":"x/y"}}]}}"#,
            media::OCI_INDEX,
            media::OCI_MANIFEST
        );
        let list = parse_page(page.as_bytes()).expect("index");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].artifact_type.as_deref(), Some("x/y"));
        assert!(parse_page(b"<html>no</html>").is_none());
        assert!(parse_page(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}"#).is_none());
        assert!(parse_page(br#"{"schemaVersion":1,"manifests":[]}"#).is_none());
        assert!(parse_page(br#"{"schemaVersion":2}"#).is_none());
    }
}
