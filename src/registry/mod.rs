//! Registry client over the OCI distribution API.
//!
//! Why not `oci-client`: airlock needs, per request, bounded retries that honour `Retry-After`
//! with bodies that can be re-sent; HEAD for blobs and tags; cross-repository mounts; chunked
//! uploads with bounded memory; and the raw bytes of every manifest with our own digest check.
//! `oci-client` has no retry hook and hides the request, so the handful of distribution calls
//! airlock makes are written here directly on `reqwest` (rustls).

pub mod auth;
pub mod auth_file;
pub mod cred_helper;
pub mod diagnose;
pub mod http;
pub mod limit;
pub mod login;
pub mod referrers;
pub mod tls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncWriteExt;

use crate::oci::digest::Hasher;
use crate::oci::name::valid_media_type;
use crate::oci::{media, Digest, ManifestRef, NameError, RepoName, Tag};
use crate::progress::Reporter;

pub use auth::{CredentialStore, Credentials};
pub use http::Origin;
use http::{deadline_for, follow, read_capped, read_prefix, RateFloor};

/// The largest manifest we read from a registry.
pub const MAX_MANIFEST_BYTES: usize = crate::oci::manifest::MAX_MANIFEST_BYTES;

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub attempts: u32,
    /// First back-off delay; doubles each time.
    pub base_delay: Duration,
    /// Longest single wait (also caps `Retry-After`).
    pub max_delay: Duration,
    /// How long one request may take in all, body included; a request that moves a large body
    /// gets this plus the body's size at `min_rate`.
    pub deadline: Duration,
    /// The slowest transfer accepted, in bytes per second, measured over `stall_window`: a
    /// peer trickling bytes slower than this is cut off instead of holding us forever.
    pub min_rate: u64,
    /// The window `min_rate` is measured over.
    pub stall_window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(120),
            min_rate: 16 * 1024,
            stall_window: Duration::from_secs(30),
        }
    }
}

/// How to reach registries: TLS roots, plain-HTTP exceptions, credentials, retries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `HOST:PORT` names that may be reached over plain HTTP (nothing else is, not even localhost).
    pub insecure: Vec<String>,
    /// Extra PEM CA bundles to trust.
    pub ca_files: Vec<PathBuf>,
    /// `certs.d` directories (`DIR/HOST[:PORT]/`: `*.crt` CAs, `client.cert` + `client.key`
    /// for mutual TLS), read for a registry the first time it is reached.
    pub certs_dirs: Vec<PathBuf>,
    /// TLS material for single registries, by `HOST[:PORT]` (from the configuration file).
    pub host_tls: std::collections::BTreeMap<String, tls::HostTls>,
    /// Credentials by host.
    pub credentials: CredentialStore,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// The most requests in flight at once (`None`: [`limit::DEFAULT_MAX_REQUESTS`]); below
    /// it the limit adapts to the registry's answers.
    pub max_requests: Option<usize>,
}

/// Everything that can go wrong talking to a registry. Each names the URL or registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Could not build the HTTP client (a bad CA file, usually).
    #[error("cannot use CA file `{path}`: {why}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Network-level failure after all retries.
    #[error("{method} {url}: {source} (after {attempts} attempt(s))")]
    Transport {
        /// HTTP method.
        method: Method,
        /// URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry refused the TLS handshake over our client certificate: it requires mutual
    /// TLS and none it accepts was offered.
    #[error(
        "{method} {url}: the registry requires a TLS client certificate (mutual TLS) and \
         refused the connection without one it accepts ({source})"
    )]
    ClientCertificateRequired {
        /// HTTP method.
        method: Method,
        /// URL.
        url: String,
        /// The TLS error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: {status}{detail}")]
    Status {
        /// HTTP method.
        method: Method,
        /// URL.
        url: String,
        /// Status.
        status: StatusCode,
        /// Error text from the registry, prefixed with ": " when present.
        detail: String,
    },
    /// The registry kept failing with 5xx/429.
    #[error(
        "{method} {url}: registry still answering {status} after {attempts} attempts; giving up"
    )]
    RetriesExhausted {
        /// HTTP method.
        method: Method,
        /// URL.
        url: String,
        /// Last status.
        status: StatusCode,
        /// Attempts made.
        attempts: u32,
    },
    /// Credentials could not be found: a broken credentials file, a credential helper that
    /// failed, hung or printed garbage.
    #[error(transparent)]
    Credentials(#[from] Box<auth::AuthError>),
    /// The token service refused the identity token (OAuth2 refresh token) the credentials
    /// hold for this registry: it expired or was revoked, and only a new login helps.
    #[error(
        "{registry}: the identity token stored for it was refused by token endpoint {realm} \
         ({status}); log in to {registry} again"
    )]
    IdentityTokenRefused {
        /// Registry host.
        registry: String,
        /// The token endpoint (shortened).
        realm: String,
        /// Its answer.
        status: reqwest::StatusCode,
    },
    /// Authentication required and refused or impossible.
    #[error("{registry}: authentication failed ({why})")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// What happened.
        why: String,
    },
    /// Content did not hash to what was asked for or announced.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// Expected digest.
        expected: Digest,
        /// Actual digest.
        actual: Digest,
    },
    /// Content was shorter or longer than its descriptor says.
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was fetched.
        what: String,
        /// Expected size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// A body over its size limit, refused before it was buffered.
    #[error("{url}: {what} larger than {limit} bytes; refused")]
    TooLarge {
        /// URL.
        url: String,
        /// What the body was (manifest, token response, list page, error page…).
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A referrers listing with more entries than airlock carries for one subject.
    #[error("{url}: the referrers of {subject} list more than {limit} entries; refused")]
    TooManyReferrers {
        /// URL of the page that went over.
        url: String,
        /// The subject.
        subject: Digest,
        /// The cap ([`referrers::MAX_REFERRERS`]).
        limit: usize,
    },
    /// A `Location` or `Link` that leaves the registry's origin: following it would hand our
    /// credentials and content to another host, or send them in clear text.
    #[error("refusing to follow {header} `{target}`: {why}")]
    ForeignLocation {
        /// The header (`Location`, `Link`).
        header: &'static str,
        /// The target, escaped and shortened.
        target: String,
        /// Why.
        why: String,
    },
    /// A token realm on another origin over plain HTTP would receive the password in clear.
    #[error("{registry}: refusing to send credentials to token realm `{realm}`: another origin over plain HTTP (a realm on another origin gets credentials only over https, or when named with --insecure-registry)")]
    InsecureRealm {
        /// Registry host.
        registry: String,
        /// The realm, escaped and shortened.
        realm: String,
    },
    /// A transfer slower than the floor rate.
    #[error("{url}: stalled: {bytes} bytes in {secs} s, under the floor of {floor} bytes/s")]
    Stalled {
        /// URL.
        url: String,
        /// Bytes that arrived in the window.
        bytes: u64,
        /// The window, in seconds.
        secs: u64,
        /// The floor rate.
        floor: u64,
    },
    /// A name the registry sent (a repository in `_catalog`, a tag in `tags/list`) or we were
    /// asked to send (a media type) that breaks the grammar.
    #[error("{url}: {source}")]
    InvalidName {
        /// URL.
        url: String,
        /// The name problem.
        source: NameError,
    },
    /// A response that breaks the protocol.
    #[error("{url}: {why}")]
    Protocol {
        /// URL.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// Local file trouble while downloading.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A manifest exactly as the registry served it.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The bytes, never re-serialized.
    pub bytes: Bytes,
    /// SHA-256 of the bytes.
    pub digest: Digest,
    /// The `Content-Type` the registry sent (the document's own `mediaType` wins when parsed).
    pub content_type: Option<String>,
}

/// A repository on a registry: where requests go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repo {
    /// Registry host (as users write it, `docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path, validated: URL paths are built only from it.
    pub name: RepoName,
}

impl Repo {
    /// Builds a repo.
    pub fn new(registry: impl Into<String>, name: RepoName) -> Self {
        Repo {
            registry: registry.into(),
            name,
        }
    }

    /// Builds a repo from a name that still has to be checked.
    pub fn parse(registry: impl Into<String>, name: &str) -> Result<Self, NameError> {
        Ok(Repo::new(registry, RepoName::parse(name)?))
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostAuth {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A bearer token and when its lifetime (`expires_in`, 60 s when the token service does not
/// say, as distribution's token specification defines) runs out.
struct Token {
    value: String,
    lifetime: Duration,
    expires: std::time::Instant,
}

impl Token {
    /// Whether too little of the token's lifetime is left to start a request that cannot be
    /// re-sent: less than half of it, or 30 s, whichever is less.
    fn expiring(&self) -> bool {
        let margin = (self.lifetime / 2).min(Duration::from_secs(30));
        self.expires
            .saturating_duration_since(std::time::Instant::now())
            < margin
    }
}

/// How much of a paginated list to read before giving up on it.
#[derive(Debug, Clone, Copy)]
struct ListBudget {
    pages: usize,
    bytes: usize,
}

/// The registry client. Cheap to share behind an `Arc`; tokens are cached per host and scope.
pub struct Registry {
    http: reqwest::Client,
    options: RegistryOptions,
    hosts: Mutex<HashMap<String, HostAuth>>,
    tokens: Mutex<HashMap<(String, String), Token>>,
    /// Clients for registries with a `certs.d` directory (their own CAs, a client certificate).
    host_clients: Mutex<HashMap<String, reqwest::Client>>,
    /// Shared by every request of every stage, so the registry sees one adaptive load.
    limit: limit::Limit,
}

/// An upload session for one blob.
pub struct BlobUpload<'a> {
    registry: &'a Registry,
    repo: Repo,
    location: String,
    offset: u64,
}

/// The most of an error body we read: enough for the registry's message, never a flood.
const MAX_ERROR_BODY: usize = 8 * 1024;

/// The registry's own words from an error body (`errors[].code message`, else its first line),
/// escaped and shortened: it is untrusted text on its way to a terminal.
fn error_detail(body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errs
                .iter()
                .take(5)
                .map(|e| {
                    format!(
                        "{} {}",
                        e.get("code").and_then(|c| c.as_str()).unwrap_or(""),
                        e.get("message").and_then(|c| c.as_str()).unwrap_or("")
                    )
                    .trim()
                    .to_string()
                })
                .collect();
            return format!(" ({})", crate::untrusted::shorten(&parts.join("; ")));
        }
    }
    format!(
        " ({})",
        crate::untrusted::shorten(body.lines().next().unwrap_or(""))
    )
}

/// Redirects (blob downloads go to storage hosts) are followed at most five times and never
/// from https down to plain http. reqwest drops `Authorization` when the host or port changes,
/// so credentials stay on the registry's origin.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        let downgrade = attempt.url().scheme() == "http"
            && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            let to = crate::untrusted::shorten(attempt.url().as_str());
            attempt.error(format!(
                "refusing a redirect from https to plain http ({to})"
            ))
        } else {
            attempt.follow()
        }
    })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// How many times [`Registry::probe_client_certificate`] asks before giving up on a diagnosis.
const PROBE_ATTEMPTS: usize = 3;

impl Registry {
    /// Builds a client. CA files are read here so a bad one fails early and clearly.
    pub fn new(options: RegistryOptions) -> Result<Registry, RegistryError> {
        let builder = tls::base_builder(&options.ca_files)?;
        let http = builder.build().map_err(|e| RegistryError::CaFile {
            path: options.ca_files.first().cloned().unwrap_or_default(),
            why: e.to_string(),
        })?;
        Ok(Registry {
            http,
            hosts: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            host_clients: Mutex::new(HashMap::new()),
            limit: limit::Limit::new(options.max_requests.unwrap_or(limit::DEFAULT_MAX_REQUESTS)),
            options,
        })
    }

    /// The HTTP client, for plain downloads (chart repositories) with the same TLS roots.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The HTTP client for one registry: its own when a `certs.d` directory names it (built
    /// once; a bad certificate there is an error naming the file), else the shared one.
    fn client(&self, registry: &str) -> Result<reqwest::Client, RegistryError> {
        if self.options.certs_dirs.is_empty() && self.options.host_tls.is_empty() {
            return Ok(self.http.clone());
        }
        if let Some(c) = self
            .host_clients
            .lock()
            .ok()
            .and_then(|m| m.get(registry).cloned())
        {
            return Ok(c);
        }
        let client = tls::host_client(
            &self.options.ca_files,
            &self.options.certs_dirs,
            self.options.host_tls.get(registry),
            registry,
        )?
        .unwrap_or_else(|| self.http.clone());
        if let Ok(mut m) = self.host_clients.lock() {
            m.insert(registry.to_string(), client.clone());
        }
        Ok(client)
    }

    /// After a transport failure on `https://`: whether the registry refuses us for want of a
    /// client certificate. Over HTTP/2 the request only sees the connection close (the TLS
    /// alert goes to the connection task), so one `GET /v2/` over HTTP/1.1, with the same TLS
    /// settings, asks again; its error carries the alert. Returns that error when it is one.
    async fn probe_client_certificate(&self, registry: &str, url: &str) -> Option<reqwest::Error> {
        if !url.starts_with("https://") {
            return None;
        }
        let client = tls::probe_client(
            &self.options.ca_files,
            &self.options.certs_dirs,
            self.options.host_tls.get(registry),
            registry,
        )
        .ok()?;
        // Under TLS 1.3 the server's alert comes after the client's handshake is done, and
        // can lose the race with the request write (a reset instead of the alert): ask a few
        // times before concluding it is something else.
        for _ in 0..PROBE_ATTEMPTS {
            let err = client
                .get(format!("https://{registry}/v2/"))
                .timeout(self.options.retry.deadline.min(Duration::from_secs(10)))
                .send()
                .await
                .err()?;
            if diagnose::client_certificate_refused(&err) {
                return Some(err);
            }
        }
        None
    }

    /// The adaptive limit on requests in flight: stages size their concurrency by its
    /// ceiling and leave the rest to it.
    pub fn limit(&self) -> &limit::Limit {
        &self.limit
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.options.retry
    }

    fn base_url(&self, registry: &str) -> String {
        let host = if registry == crate::reference::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            registry
        };
        if self.options.insecure.iter().any(|h| h == registry) {
            format!("http://{host}")
        } else {
            format!("https://{host}")
        }
    }

    fn url(&self, repo: &Repo, tail: &str) -> String {
        format!(
            "{}/v2/{}/{}",
            self.base_url(&repo.registry),
            repo.name,
            tail
        )
    }

    fn manifest_url(&self, repo: &Repo, reference: &ManifestRef) -> String {
        self.url(repo, &format!("manifests/{reference}"))
    }

    fn blob_url(&self, repo: &Repo, digest: &Digest) -> String {
        self.url(repo, &format!("blobs/{digest}"))
    }

    /// The origin requests to `registry` go to: the only one its credentials are sent to.
    pub fn origin(&self, registry: &str) -> Origin {
        let base = self.base_url(registry);
        // The base URL is built from a validated host, so it always parses; the fallback keeps
        // this total without an `expect`.
        Origin::of_str(&base).unwrap_or(Origin {
            scheme: "https".into(),
            host: registry.to_ascii_lowercase(),
            port: 443,
        })
    }

    /// Resolves a `Location` or `Link` the registry sent, refusing one that leaves its origin.
    fn follow(
        &self,
        registry: &str,
        base: &str,
        header: &'static str,
        target: &str,
    ) -> Result<String, RegistryError> {
        follow(&self.origin(registry), base, header, target)
    }

    /// The next page of a paginated answer to `url`: its `Link: <…>; rel="next"`, resolved on
    /// the registry's origin (a page that points elsewhere is refused).
    fn next_page(
        &self,
        registry: &str,
        url: &str,
        resp: &reqwest::Response,
    ) -> Result<Option<String>, RegistryError> {
        resp.headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)
            .map(|target| self.follow(registry, url, "Link", &target))
            .transpose()
    }

    /// The `Authorization` header for a request to `url`, only when `url` is on the registry's
    /// own origin: credentials and tokens never travel to another host, port or scheme.
    fn auth_header(&self, registry: &str, scope: &str, url: &str) -> Option<String> {
        if Origin::of_str(url)? != self.origin(registry) {
            return None;
        }
        let hosts = self.hosts.lock().ok()?;
        match hosts.get(registry)? {
            HostAuth::Basic => self
                .options
                .credentials
                .known(registry)
                .map(|c| c.basic_header()),
            HostAuth::Bearer { .. } => {
                let tokens = self.tokens.lock().ok()?;
                tokens
                    .get(&(registry.to_string(), scope.to_string()))
                    .map(|t| format!("Bearer {}", t.value))
            }
        }
    }

    async fn authenticate(
        &self,
        registry: &str,
        scope: &str,
        headers: &HeaderMap,
    ) -> Result<(), RegistryError> {
        let unauthorized = |why: String| RegistryError::Unauthorized {
            registry: registry.to_string(),
            why,
        };
        let challenge = headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge)
            .ok_or_else(|| {
                unauthorized("401 without a usable WWW-Authenticate challenge".into())
            })?;
        let creds = self.credentials_for(registry).await?;
        let creds = creds.as_ref();
        match challenge {
            auth::Challenge::Basic => {
                if creds.is_none() {
                    return Err(unauthorized(
                        "registry asks for basic auth and no credentials are known".into(),
                    ));
                }
                if creds.is_some_and(|c| c.identity_token_value().is_some()) {
                    return Err(unauthorized(
                        "registry asks for basic auth and only an identity token is known".into(),
                    ));
                }
                if let Ok(mut h) = self.hosts.lock() {
                    h.insert(registry.to_string(), HostAuth::Basic);
                }
                Ok(())
            }
            auth::Challenge::Bearer { realm, service } => {
                self.bearer_token(registry, scope, realm, service, creds)
                    .await
            }
        }
    }

    /// Before a request whose body cannot be re-sent (a streamed upload): renews the bearer
    /// token for `scope` when too little of its lifetime is left (see [`Token::expiring`]), so
    /// the one attempt does not meet a 401 for a token that expired on the way.
    async fn renew_expiring_token(&self, registry: &str, scope: &str) -> Result<(), RegistryError> {
        let bearer = match self
            .hosts
            .lock()
            .ok()
            .and_then(|h| h.get(registry).cloned())
        {
            Some(HostAuth::Bearer { realm, service }) => (realm, service),
            _ => return Ok(()),
        };
        let expiring = self
            .tokens
            .lock()
            .ok()
            .and_then(|t| {
                t.get(&(registry.to_string(), scope.to_string()))
                    .map(Token::expiring)
            })
            .unwrap_or(true);
        if !expiring {
            return Ok(());
        }
        let creds = self.credentials_for(registry).await?;
        self.bearer_token(registry, scope, bearer.0, bearer.1, creds.as_ref())
            .await
    }

    /// Asks the token service at `realm` for a token for `scope` and caches it.
    async fn bearer_token(
        &self,
        registry: &str,
        scope: &str,
        realm: String,
        service: Option<String>,
        creds: Option<&Credentials>,
    ) -> Result<(), RegistryError> {
        const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;
        let unauthorized = |why: String| RegistryError::Unauthorized {
            registry: registry.to_string(),
            why,
        };
        let shown = crate::untrusted::shorten(&realm);
        let realm_url = url::Url::parse(&realm)
            .map_err(|e| unauthorized(format!("token realm `{shown}` is not a URL: {e}")))?;
        let realm_origin = Origin::of(&realm_url)
            .ok_or_else(|| unauthorized(format!("token realm `{shown}` has no host")))?;
        if !matches!(realm_origin.scheme.as_str(), "https" | "http") {
            return Err(unauthorized(format!(
                "token realm `{shown}` is not an http(s) URL"
            )));
        }
        // Credentials go to the realm only on the registry's own origin, over https, or
        // to a host the user named with `--insecure-registry` (plain HTTP on purpose).
        let named_insecure = self.options.insecure.iter().any(|h| {
            realm_url
                .host_str()
                .zip(realm_url.port())
                .is_some_and(|(host, port)| h == &format!("{host}:{port}"))
        });
        let send_creds = creds.is_some()
            && (realm_origin == self.origin(registry)
                || realm_origin.scheme == "https"
                || named_insecure);
        if creds.is_some() && !send_creds {
            return Err(RegistryError::InsecureRealm {
                registry: registry.to_string(),
                realm: shown,
            });
        }
        let sent = creds.filter(|_| send_creds);
        let req = auth::token_request(
            &self.client(registry)?,
            realm_url.clone(),
            service.as_deref(),
            scope,
            sent,
        );
        let req = req.timeout(self.options.retry.deadline);
        let asked = std::time::Instant::now();
        let resp = req
            .send()
            .await
            .map_err(|e| unauthorized(format!("token request to {shown}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            if sent.is_some_and(|c| c.identity_token_value().is_some()) {
                return Err(RegistryError::IdentityTokenRefused {
                    registry: registry.to_string(),
                    realm: shown,
                    status,
                });
            }
            return Err(unauthorized(format!(
                "token endpoint {shown} answered {status}"
            )));
        }
        let bytes = read_capped(
            resp,
            MAX_TOKEN_RESPONSE,
            &Method::GET,
            realm_url.as_str(),
            "token response",
        )
        .await?;
        let body: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| unauthorized(format!("token endpoint {shown}: not JSON: {e}")))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).is_ok())
            .ok_or_else(|| unauthorized(format!("token endpoint {shown} sent no usable token")))?;
        if let Ok(mut h) = self.hosts.lock() {
            h.insert(registry.to_string(), HostAuth::Bearer { realm, service });
        }
        // The lifetime counts from when the token was asked for: never later than the
        // token service's clock started it.
        let lifetime = Duration::from_secs(
            body.get("expires_in")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(60)
                .max(1),
        );
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(
                (registry.to_string(), scope.to_string()),
                Token {
                    value: token.to_string(),
                    lifetime,
                    expires: asked + lifetime,
                },
            );
        }
        Ok(())
    }

    /// The credentials for a registry host; a credential helper runs on a blocking thread.
    async fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = self.options.credentials.known(registry) {
            return Ok(Some(c));
        }
        let store = self.options.credentials.clone();
        let host = registry.to_string();
        tokio::task::spawn_blocking(move || store.resolve(&host))
            .await
            .map_err(|e| RegistryError::Unauthorized {
                registry: registry.to_string(),
                why: format!("credential lookup did not finish: {e}"),
            })?
            .map_err(|e| RegistryError::from(Box::new(e)))
    }

    /// Sends a request with auth and retries. `make` rebuilds the request for each attempt, so
    /// bodies must be cheap to clone (`Bytes`). Every attempt has the policy's deadline unless
    /// `make` sets a longer one for a large body. Returns any non-retryable response; the
    /// caller judges its status.
    async fn execute(
        &self,
        registry: &str,
        scope: &str,
        method: Method,
        url: &str,
        make: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
    ) -> Result<reqwest::Response, RegistryError> {
        let attempts = self.options.retry.attempts;
        self.execute_within(registry, scope, method, url, make, 0, attempts)
            .await
            .map(|(resp, _)| resp)
    }

    /// [`Self::execute`] for callers that retry on their own too (a body cut off mid-download):
    /// `used` attempts are already spent, at most `attempts` are made in all, and the total
    /// spent is returned with the response, so the retries never multiply.
    #[allow(clippy::too_many_arguments)]
    async fn execute_within(
        &self,
        registry: &str,
        scope: &str,
        method: Method,
        url: &str,
        make: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
        used: u32,
        attempts: u32,
    ) -> Result<(reqwest::Response, u32), RegistryError> {
        let policy = RetryPolicy {
            attempts,
            ..self.options.retry.clone()
        };
        let policy = &policy;
        let mut attempt = used;
        let mut authed = false;
        let client = self.client(registry)?;
        loop {
            attempt += 1;
            let mut req = make(client.request(method.clone(), url).timeout(policy.deadline));
            if let Some(h) = self.auth_header(registry, scope, url) {
                req = req.header(AUTHORIZATION, h);
            }
            let delay = policy
                .base_delay
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(policy.max_delay);
            let permit = self.limit.acquire().await;
            let started = std::time::Instant::now();
            let sent = req.send().await;
            log_request(&method, url, &sent, started.elapsed(), attempt);
            match &sent {
                Err(e) if e.is_connect() || e.is_timeout() => {
                    permit.finish(limit::Outcome::Overloaded, None)
                }
                Ok(r)
                    if r.status() == StatusCode::TOO_MANY_REQUESTS
                        || r.status().is_server_error() =>
                {
                    permit.finish(limit::Outcome::Overloaded, retry_after(r.headers()))
                }
                _ => permit.finish(limit::Outcome::Success, None),
            }
            drop(permit);
            match sent {
                Err(source) => {
                    // A TLS mismatch, an unknown CA or a name that does not resolve stays so.
                    let transient = source.is_connect()
                        || source.is_timeout()
                        || source.is_request()
                        || source.is_body();
                    let unresolved = source.is_connect() && !diagnose::resolves(url).await;
                    let retryable = transient && !unresolved && !diagnose::is_permanent(&source);
                    if retryable && attempt < policy.attempts {
                        tracing::debug!(%url, %source, attempt, "retrying after transport error");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let refused = if diagnose::client_certificate_refused(&source) {
                        Ok(source)
                    } else if source.is_connect() || source.is_timeout() {
                        // Not a connection the server ended mid-request: nothing to probe.
                        Err(source)
                    } else {
                        self.probe_client_certificate(registry, url)
                            .await
                            .ok_or(source)
                    };
                    return Err(match refused {
                        Ok(source) => RegistryError::ClientCertificateRequired {
                            method,
                            url: url.to_string(),
                            source,
                        },
                        Err(source) => RegistryError::Transport {
                            method,
                            url: url.to_string(),
                            attempts: attempt,
                            source,
                        },
                    });
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED && !authed {
                        authed = true;
                        attempt -= 1;
                        self.authenticate(registry, scope, resp.headers()).await?;
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        let detail = error_detail(&read_prefix(resp, MAX_ERROR_BODY).await);
                        return Err(RegistryError::Unauthorized {
                            registry: registry.to_string(),
                            why: format!("{method} {url} answered {status}{detail}"),
                        });
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        if attempt < policy.attempts {
                            let wait = retry_after(resp.headers())
                                .map(|d| d.min(policy.max_delay))
                                .unwrap_or(delay);
                            tracing::debug!(%url, %status, attempt, ?wait, "retrying");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        return Err(RegistryError::RetriesExhausted {
                            method,
                            url: url.to_string(),
                            status,
                            attempts: attempt,
                        });
                    }
                    return Ok((resp, attempt));
                }
            }
        }
    }

    async fn status_error(method: Method, url: &str, resp: reqwest::Response) -> RegistryError {
        let status = resp.status();
        let detail = error_detail(&read_prefix(resp, MAX_ERROR_BODY).await);
        RegistryError::Status {
            method,
            url: url.to_string(),
            status,
            detail,
        }
    }

    fn pull_scope(repo: &Repo) -> String {
        format!("repository:{}:pull", repo.name)
    }

    fn push_scope(repo: &Repo) -> String {
        format!("repository:{}:pull,push", repo.name)
    }

    /// `GET /v2/` through the whole auth flow (a token asked for no scope, as `docker login`
    /// does): whether the registry accepts the credentials it was given.
    pub async fn check_login(&self, registry: &str) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base_url(registry));
        let resp = self
            .execute(registry, "", Method::GET, &url, &|r| r)
            .await?;
        if !resp.status().is_success() {
            return Err(Self::status_error(Method::GET, &url, resp).await);
        }
        Ok(())
    }

    /// Every repository the registry lists (`GET /v2/_catalog`, following `Link` pages).
    /// Used on the isolated side to take a receipt of what the internal registry holds. A
    /// name that breaks the grammar is an error: it would become a request path later.
    pub async fn list_repositories(&self, registry: &str) -> Result<Vec<RepoName>, RegistryError> {
        let first = format!("{}/v2/_catalog?n=1000", self.base_url(registry));
        self.list_pages(registry, "registry:catalog:*", first, "repositories")
            .await
    }

    /// Every tag of a repository (`GET /v2/<name>/tags/list`, following `Link` pages); empty
    /// when the repository does not exist.
    pub async fn list_tags(&self, repo: &Repo) -> Result<Vec<Tag>, RegistryError> {
        let first = self.url(repo, "tags/list?n=1000");
        match self
            .list_pages(&repo.registry, &Self::pull_scope(repo), first, "tags")
            .await
        {
            Err(RegistryError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                Ok(Vec::new())
            }
            other => other,
        }
    }

    /// The tags of `repo` that `keep` accepts, from a listing read within `max_pages` pages and
    /// `max_bytes` bytes (all pages together), kept as they stream past so only the accepted
    /// ones are held. `None` when the listing is longer than that, or when the registry will
    /// not list (a 4xx: some registries let a client pull what it may not list): the caller
    /// asks for each tag it wants instead. A tag `keep` accepts must be a valid tag.
    pub async fn list_tags_within(
        &self,
        repo: &Repo,
        max_pages: usize,
        max_bytes: usize,
        keep: impl Fn(&str) -> bool + Send + Sync,
    ) -> Result<Option<Vec<Tag>>, RegistryError> {
        let first = self.url(repo, "tags/list?n=1000");
        let budget = ListBudget {
            pages: max_pages,
            bytes: max_bytes,
        };
        let scope = Self::pull_scope(repo);
        match self
            .walk_pages::<Tag>(&repo.registry, &scope, first, "tags", budget, keep)
            .await
        {
            Err(RegistryError::Status { status, .. })
                if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS =>
            {
                Ok(None)
            }
            other => other,
        }
    }

    /// Reads a paginated list (`{"<field>": [...]}` pages linked by `Link: <…>; rel="next"`),
    /// each page capped before it is buffered, the whole list capped in entries, every entry
    /// parsed into `T` (a repository name or a tag).
    async fn list_pages<T>(
        &self,
        registry: &str,
        scope: &str,
        first: String,
        field: &str,
    ) -> Result<Vec<T>, RegistryError>
    where
        T: std::str::FromStr<Err = NameError> + Send,
    {
        const MAX_PAGES: usize = 10_000;
        let budget = ListBudget {
            pages: MAX_PAGES,
            bytes: usize::MAX,
        };
        self.walk_pages(registry, scope, first.clone(), field, budget, |_| true)
            .await?
            .ok_or_else(|| RegistryError::Protocol {
                url: first,
                why: format!("more than {MAX_PAGES} pages"),
            })
    }

    /// Walks the pages of a paginated list and keeps the entries of `field` that `keep`
    /// accepts, each parsed into `T` as it streams past (a name that breaks the grammar is an
    /// error naming its page), so only the accepted ones are held. `None` when the list is
    /// longer than `budget` (the rest is not read); each page is capped at 4 MiB and the whole
    /// list at a million entries either way.
    async fn walk_pages<T>(
        &self,
        registry: &str,
        scope: &str,
        first: String,
        field: &str,
        budget: ListBudget,
        keep: impl Fn(&str) -> bool + Send + Sync,
    ) -> Result<Option<Vec<T>>, RegistryError>
    where
        T: std::str::FromStr<Err = NameError> + Send,
    {
        const MAX_PAGE: usize = 4 * 1024 * 1024;
        const MAX_ENTRIES: usize = 1_000_000;
        let mut entries = 0;
        let mut out = Vec::new();
        let mut bytes_left = budget.bytes;
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > budget.pages {
                return Ok(None);
            }
            let resp = self
                .execute(registry, scope, Method::GET, &url, &|r| r)
                .await?;
            if !resp.status().is_success() {
                return Err(Self::status_error(Method::GET, &url, resp).await);
            }
            next = self.next_page(registry, &url, &resp)?;
            let cap = MAX_PAGE.min(bytes_left);
            let bytes = match read_capped(resp, cap, &Method::GET, &url, "list page").await {
                Err(RegistryError::TooLarge { .. }) if cap < MAX_PAGE => return Ok(None),
                other => other?,
            };
            bytes_left -= bytes.len();
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                    url: url.clone(),
                    why: format!("not a JSON list: {e}"),
                })?;
            match v.get(field) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Array(items)) => {
                    entries += items.len();
                    if entries > MAX_ENTRIES {
                        return Err(RegistryError::Protocol {
                            url,
                            why: format!("more than {MAX_ENTRIES} entries in `{field}`"),
                        });
                    }
                    for i in items {
                        let Some(s) = i.as_str() else {
                            return Err(RegistryError::Protocol {
                                url,
                                why: format!("`{field}` holds a non-string"),
                            });
                        };
                        if keep(s) {
                            out.push(s.parse::<T>().map_err(|source| {
                                RegistryError::InvalidName {
                                    url: url.clone(),
                                    source,
                                }
                            })?);
                        }
                    }
                }
                Some(_) => {
                    return Err(RegistryError::Protocol {
                        url,
                        why: format!("`{field}` is not a list"),
                    })
                }
            }
        }
        Ok(Some(out))
    }

    /// Checks that the registry answers the API at all (`GET /v2/`).
    pub async fn ping(&self, registry: &str) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base_url(registry));
        let resp = self
            .execute(registry, "", Method::GET, &url, &|r| r)
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Self::status_error(Method::GET, &url, resp).await)
        }
    }

    /// Fetches a manifest by tag or digest, byte-exact. When asked by digest, the bytes must hash
    /// to it; when the registry sends `Docker-Content-Digest`, the bytes must hash to that too.
    pub async fn get_manifest(
        &self,
        repo: &Repo,
        reference: impl Into<ManifestRef>,
    ) -> Result<RawManifest, RegistryError> {
        let reference = &reference.into();
        let url = self.manifest_url(repo, reference);
        let accept = media::MANIFEST_ACCEPT.join(", ");
        let resp = self
            .execute(
                &repo.registry,
                &Self::pull_scope(repo),
                Method::GET,
                &url,
                &|r| r.header(ACCEPT, accept.as_str()),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(Self::status_error(Method::GET, &url, resp).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let announced = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_capped(resp, MAX_MANIFEST_BYTES, &Method::GET, &url, "manifest").await?;
        let digest = Digest::of(&body);
        if let ManifestRef::Digest(expected) = reference {
            if expected != &digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest {repo}@{expected}"),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        if let Some(announced) = announced {
            let announced: Digest = announced.parse().map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                why: format!("bad Docker-Content-Digest header: {e}"),
            })?;
            if announced != digest {
                return Err(RegistryError::DigestMismatch {
                    // `repo@digest` or `repo:tag`, as users write references.
                    what: format!(
                        "manifest {repo}{}{reference} (Docker-Content-Digest header)",
                        match reference {
                            ManifestRef::Digest(_) => '@',
                            ManifestRef::Tag(_) => ':',
                        }
                    ),
                    expected: announced,
                    actual: digest,
                });
            }
        }
        Ok(RawManifest {
            bytes: Bytes::from(body),
            digest,
            content_type,
        })
    }

    /// The digest a tag points at, or `None` when the tag does not exist.
    pub async fn head_manifest(
        &self,
        repo: &Repo,
        reference: impl Into<ManifestRef>,
    ) -> Result<Option<Digest>, RegistryError> {
        let reference = &reference.into();
        let url = self.manifest_url(repo, reference);
        let accept = media::MANIFEST_ACCEPT.join(", ");
        let resp = self
            .execute(
                &repo.registry,
                &Self::pull_scope(repo),
                Method::HEAD,
                &url,
                &|r| r.header(ACCEPT, accept.as_str()),
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let d = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<Digest>().ok());
                match d {
                    Some(d) => Ok(Some(d)),
                    // No header: fall back to fetching and hashing.
                    None => Ok(Some(self.get_manifest(repo, reference).await?.digest)),
                }
            }
            _ => Err(Self::status_error(Method::HEAD, &url, resp).await),
        }
    }

    /// Pushes manifest bytes exactly as given under `reference` (a digest or a tag). Checks that
    /// the registry computed the same digest. The media type becomes a header, so it must be
    /// one.
    pub async fn put_manifest(
        &self,
        repo: &Repo,
        reference: impl Into<ManifestRef>,
        bytes: &Bytes,
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let reference = &reference.into();
        let url = self.manifest_url(repo, reference);
        if !valid_media_type(media_type) {
            return Err(RegistryError::InvalidName {
                url,
                source: NameError::MediaType {
                    shown: crate::untrusted::shorten(media_type),
                },
            });
        }
        let digest = Digest::of(bytes);
        let resp = self
            .execute(
                &repo.registry,
                &Self::push_scope(repo),
                Method::PUT,
                &url,
                &|r| r.header(CONTENT_TYPE, media_type).body(bytes.clone()),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(Self::status_error(Method::PUT, &url, resp).await);
        }
        if let Some(got) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
        {
            if got != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest pushed to {repo}:{reference} (registry's digest)"),
                    expected: digest,
                    actual: got,
                });
            }
        }
        Ok(digest)
    }

    /// Whether the repository holds a blob.
    pub async fn blob_exists(&self, repo: &Repo, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.blob_url(repo, digest);
        let resp = self
            .execute(
                &repo.registry,
                &Self::pull_scope(repo),
                Method::HEAD,
                &url,
                &|r| r,
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::status_error(Method::HEAD, &url, resp).await),
        }
    }

    /// Downloads a blob into `dest`, hashing while writing; the file is written as
    /// `dest.partial` and renamed only when size and digest match. A body cut short is retried
    /// from the start within the retry policy; one slower than the floor rate is stalled.
    pub async fn download_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        dest: &Path,
        reporter: &dyn Reporter,
    ) -> Result<(), RegistryError> {
        let url = self.blob_url(repo, digest);
        let partial = dest.with_extension("partial");
        let io_err = |source| RegistryError::Io {
            path: partial.clone(),
            source,
        };
        let policy = &self.options.retry;
        let deadline = deadline_for(policy.deadline, size, policy.min_rate);
        // One budget for the whole download: the request's own retries (connection errors,
        // 5xx) and the re-downloads after a body cut off count against the same attempts.
        let attempts = policy.attempts.max(1);
        let mut attempt = 0u32;
        let mut last_err = None;
        while attempt < attempts {
            let (resp, used) = self
                .execute_within(
                    &repo.registry,
                    &Self::pull_scope(repo),
                    Method::GET,
                    &url,
                    &|r| r.timeout(deadline),
                    attempt,
                    attempts,
                )
                .await?;
            attempt = used;
            if !resp.status().is_success() {
                return Err(Self::status_error(Method::GET, &url, resp).await);
            }
            let mut file = tokio::fs::File::create(&partial).await.map_err(io_err)?;
            let mut hasher = Hasher::new();
            let mut floor = RateFloor::new(policy.min_rate, policy.stall_window);
            let mut stream = resp.bytes_stream();
            let mut failed = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => {
                        if hasher.len() + chunk.len() as u64 > size {
                            // Longer than the descriptor: never write past what was promised.
                            hasher.update(&chunk);
                            break;
                        }
                        hasher.update(&chunk);
                        file.write_all(&chunk).await.map_err(io_err)?;
                        reporter.advance(chunk.len() as u64);
                        if let Err((bytes, elapsed)) = floor.advance(chunk.len() as u64) {
                            let _ = tokio::fs::remove_file(&partial).await;
                            reporter.rewind(hasher.len().min(size));
                            return Err(RegistryError::Stalled {
                                url,
                                bytes,
                                secs: elapsed.as_secs(),
                                floor: policy.min_rate,
                            });
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            file.flush().await.map_err(io_err)?;
            drop(file);
            let got = hasher.len();
            if let Some(e) = failed {
                reporter.rewind(got.min(size));
                last_err = Some(RegistryError::Transport {
                    method: Method::GET,
                    url: url.clone(),
                    attempts: attempt,
                    source: e,
                });
                if attempt < attempts {
                    tokio::time::sleep(policy.base_delay * attempt).await;
                }
                continue;
            }
            if got != size {
                reporter.rewind(got.min(size));
                last_err = Some(RegistryError::SizeMismatch {
                    what: format!("blob {repo}@{digest}"),
                    expected: size,
                    actual: got,
                });
                if got < size {
                    if attempt < attempts {
                        tokio::time::sleep(policy.base_delay * attempt).await;
                    }
                    continue;
                }
                break;
            }
            let actual = hasher.finish();
            if &actual != digest {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(RegistryError::DigestMismatch {
                    what: format!("blob {repo}@{digest}"),
                    expected: digest.clone(),
                    actual,
                });
            }
            tokio::fs::rename(&partial, dest)
                .await
                .map_err(|source| RegistryError::Io {
                    path: dest.to_path_buf(),
                    source,
                })?;
            return Ok(());
        }
        let _ = tokio::fs::remove_file(&partial).await;
        Err(last_err.unwrap_or(RegistryError::Protocol {
            url,
            why: "download failed".into(),
        }))
    }

    /// Asks the registry to mount a blob from another repository of the same registry. Returns
    /// true when mounted; false when the registry declined (the caller uploads instead).
    pub async fn mount_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool, RegistryError> {
        let url = self.url(repo, "blobs/uploads/");
        let scope = format!("{} repository:{from}:pull", Self::push_scope(repo));
        let q = [("mount", digest.as_str()), ("from", from.as_str())];
        let resp = self
            .execute(&repo.registry, &scope, Method::POST, &url, &|r| {
                r.query(&q).header(CONTENT_LENGTH, "0")
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an upload instead; cancel it so it does not linger.
                if let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                    let loc = self.follow(&repo.registry, &url, "Location", loc)?;
                    let _ = self
                        .execute(
                            &repo.registry,
                            &Self::push_scope(repo),
                            Method::DELETE,
                            &loc,
                            &|r| r,
                        )
                        .await;
                }
                Ok(false)
            }
            _ => Err(Self::status_error(Method::POST, &url, resp).await),
        }
    }

    /// Opens an upload session. The session's `Location` must stay on the registry's origin.
    pub async fn start_upload(&self, repo: &Repo) -> Result<BlobUpload<'_>, RegistryError> {
        let url = self.url(repo, "blobs/uploads/");
        let resp = self
            .execute(
                &repo.registry,
                &Self::push_scope(repo),
                Method::POST,
                &url,
                &|r| r.header(CONTENT_LENGTH, "0"),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Self::status_error(Method::POST, &url, resp).await);
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                url: url.clone(),
                why: "upload started without a Location header".into(),
            })?;
        Ok(BlobUpload {
            registry: self,
            location: self.follow(&repo.registry, &url, "Location", location)?,
            repo: repo.clone(),
            offset: 0,
        })
    }

    /// Uploads a blob held in memory (small blobs and fixtures).
    pub async fn push_blob_bytes(
        &self,
        repo: &Repo,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        self.start_upload(repo).await?.finish(bytes, digest).await
    }
}

/// The target of `Link: <…>; rel="next"`, if the header has one.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

impl BlobUpload<'_> {
    /// Moves to the session URL the registry gave, if it gave one (on its own origin only).
    fn relocate(&mut self, resp: &reqwest::Response, url: &str) -> Result<(), RegistryError> {
        if let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            self.location = self
                .registry
                .follow(&self.repo.registry, url, "Location", loc)?;
        }
        Ok(())
    }

    /// Sends one chunk (`PATCH` with `Content-Range`). Bodies are `Bytes` so a retry re-sends the
    /// same chunk; the registry's digest check at `finish` catches any duplication.
    pub async fn patch(&mut self, chunk: Bytes) -> Result<(), RegistryError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let end = self.offset + chunk.len() as u64 - 1;
        let range = format!("{}-{}", self.offset, end);
        let url = self.location.clone();
        let scope = Registry::push_scope(&self.repo);
        let retry = &self.registry.options.retry;
        let deadline = deadline_for(retry.deadline, chunk.len() as u64, retry.min_rate);
        let resp = self
            .registry
            .execute(&self.repo.registry, &scope, Method::PATCH, &url, &|r| {
                r.header(CONTENT_TYPE, "application/octet-stream")
                    .header("Content-Range", range.as_str())
                    .header(CONTENT_LENGTH, chunk.len().to_string())
                    .body(chunk.clone())
                    .timeout(deadline)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Registry::status_error(Method::PATCH, &url, resp).await);
        }
        self.relocate(&resp, &url)?;
        self.offset = end + 1;
        Ok(())
    }

    /// Sends `len` bytes from a stream in one `PATCH`. One request per large blob keeps the
    /// registry ingesting at full speed (per-chunk requests cost it a hash-state round trip
    /// each), but a stream cannot be re-sent: a failure here fails the blob, and a re-run of
    /// the import resumes from the blobs already present. If the stream yields an error, the
    /// request is aborted and nothing is committed.
    pub async fn patch_stream<S>(&mut self, stream: S, len: u64) -> Result<(), RegistryError>
    where
        S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
    {
        if len == 0 {
            return Ok(());
        }
        let end = self.offset + len - 1;
        let url = self.location.clone();
        let scope = Registry::push_scope(&self.repo);
        self.registry
            .renew_expiring_token(&self.repo.registry, &scope)
            .await?;
        let retry = &self.registry.options.retry;
        let mut req = self
            .registry
            .client(&self.repo.registry)?
            .request(Method::PATCH, &url)
            .timeout(deadline_for(retry.deadline, len, retry.min_rate))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("Content-Range", format!("{}-{}", self.offset, end))
            .header(CONTENT_LENGTH, len.to_string())
            .body(reqwest::Body::wrap_stream(stream));
        if let Some(h) = self.registry.auth_header(&self.repo.registry, &scope, &url) {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                method: Method::PATCH,
                url: url.clone(),
                attempts: 1,
                source,
            })?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            // The stream is spent: renew the token for what follows (a re-run, the next blob)
            // and fail this blob.
            self.registry
                .authenticate(&self.repo.registry, &scope, resp.headers())
                .await?;
            return Err(RegistryError::Unauthorized {
                registry: self.repo.registry.clone(),
                why: format!(
                    "PATCH {url} answered 401 to a streamed upload (the token was refused on \
                     the way); the token is renewed, but a stream cannot be re-sent: run the \
                     import again to resume"
                ),
            });
        }
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Registry::status_error(Method::PATCH, &url, resp).await);
        }
        self.relocate(&resp, &url)?;
        self.offset = end + 1;
        Ok(())
    }

    /// Completes the upload with the last bytes; the registry checks the digest.
    pub async fn finish(self, last: Bytes, digest: &Digest) -> Result<(), RegistryError> {
        let sep = if self.location.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{sep}digest={}", self.location, digest);
        let scope = Registry::push_scope(&self.repo);
        let retry = &self.registry.options.retry;
        let deadline = deadline_for(retry.deadline, last.len() as u64, retry.min_rate);
        let resp = self
            .registry
            .execute(&self.repo.registry, &scope, Method::PUT, &url, &|r| {
                r.header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, last.len().to_string())
                    .body(last.clone())
                    .timeout(deadline)
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            let err = Registry::status_error(Method::PUT, &url, resp).await;
            return Err(err);
        }
        Ok(())
    }

    /// Abandons the upload (best effort).
    pub async fn cancel(self) {
        let scope = Registry::push_scope(&self.repo);
        let _ = self
            .registry
            .execute(
                &self.repo.registry,
                &scope,
                Method::DELETE,
                &self.location,
                &|r| r,
            )
            .await;
    }
}

/// One `debug` event per request airlock sends (`RUST_LOG=airlock=debug`): method, URL without
/// credentials or query, status (or the transport error), time to the response headers.
fn log_request(
    method: &Method,
    url: &str,
    sent: &Result<reqwest::Response, reqwest::Error>,
    elapsed: std::time::Duration,
    attempt: u32,
) {
    let shown = url_for_log(url);
    let ms = elapsed.as_millis();
    match sent {
        Ok(r) => tracing::debug!(
            target: "airlock::registry",
            "{method} {shown} -> {} in {ms} ms (attempt {attempt})",
            r.status().as_u16()
        ),
        Err(e) => tracing::debug!(
            target: "airlock::registry",
            "{method} {shown} -> error after {ms} ms (attempt {attempt}): {e}"
        ),
    }
}

/// `url` without user info and without its query (upload locations carry state there).
pub fn url_for_log(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return "<unparsable url>".to_owned();
    };
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let had_query = u.query().is_some();
    u.set_query(None);
    u.set_fragment(None);
    let mut s = u.to_string();
    if had_query {
        s.push_str("?…");
    }
    s
}
