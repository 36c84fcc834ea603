//! The HTTP side: a hyper HTTP/1.1 server (optionally behind rustls) answering the read-only
//! distribution API from a [`Store`]. Connections and blob streams are bounded; a blob never
//! sits in memory (a few 256 KiB chunks per stream).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::oci::{media, ManifestRef};

use super::blob::{self, Sink};
use super::routes::{self, Route};
use super::{Log, ServeError, Store};

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// Blob streams decoded at once; more wait for a slot.
pub const MAX_BLOB_STREAMS: usize = 16;
/// Chunks buffered per blob stream.
const STREAM_DEPTH: usize = 4;
/// The longest a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

type Body = BoxBody<Bytes, io::Error>;

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Server {
    /// Binds `addr`, with TLS when a certificate and key are given.
    pub async fn bind(addr: &str, tls: Option<(&Path, &Path)>) -> Result<Server, ServeError> {
        let tls = tls.map(|(cert, key)| tls_acceptor(cert, key)).transpose()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        Ok(Server { listener, tls })
    }

    /// The address actually bound (the port, when `:0` was asked for).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until the task is dropped.
    pub async fn run(self, store: Arc<Store>, log: Arc<dyn Log>) -> io::Result<()> {
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let streams = Arc::new(Semaphore::new(MAX_BLOB_STREAMS));
        loop {
            let permit = Arc::clone(&connections)
                .acquire_owned()
                .await
                .map_err(io::Error::other)?;
            let (tcp, _) = match self.listener.accept().await {
                Ok(c) => c,
                // A failed accept (out of descriptors, a reset) must not stop the server.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let tls = self.tls.clone();
            let (store, log, streams) =
                (Arc::clone(&store), Arc::clone(&log), Arc::clone(&streams));
            tokio::spawn(async move {
                let _permit = permit;
                let svc = hyper::service::service_fn(move |req| {
                    let (store, log, streams) =
                        (Arc::clone(&store), Arc::clone(&log), Arc::clone(&streams));
                    async move { Ok::<_, Infallible>(handle(&store, &log, &streams, req).await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                match tls {
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                            .await;
                    }
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await
                        else {
                            return;
                        };
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    }
                }
            });
        }
    }
}

/// Loads a PEM certificate chain and private key into a TLS acceptor (HTTP/1.1 by ALPN).
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |path: &Path, why: String| ServeError::Tls {
        path: path.to_path_buf(),
        why,
    };
    let read = |p: &Path, what| {
        crate::io::read_capped(p, crate::io::MAX_CA_FILE_BYTES, what)
            .map_err(|e| tls_err(p, crate::error_chain(&e)))
    };
    let cert_pem = read(cert, "TLS certificate")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".into()));
    }
    let key_pem = read(key, "TLS key")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| tls_err(key, format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(key, format!("does not go with the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

fn empty() -> Body {
    full(Bytes::new())
}

/// A distribution error response: `{"errors":[{"code","message"}]}`.
fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn json(value: &serde_json::Value, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(full(value.to_string()));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn header(r: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// Answers one request.
async fn handle(
    store: &Arc<Store>,
    log: &Arc<dyn Log>,
    streams: &Arc<Semaphore>,
    req: Request<Incoming>,
) -> Response<Body> {
    let mut r = answer(store, log, streams, &req).await;
    header(&mut r, "Docker-Distribution-API-Version", "registry/2.0");
    if req.method() == Method::HEAD {
        // Headers as for GET (Content-Length included), no body.
        let (parts, _) = r.into_parts();
        return Response::from_parts(parts, empty());
    }
    r
}

async fn answer(
    store: &Arc<Store>,
    log: &Arc<dyn Log>,
    streams: &Arc<Semaphore>,
    req: &Request<Incoming>,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = error(
            405,
            "UNSUPPORTED",
            "this registry is read-only: it serves a bundle",
        );
        header(&mut r, "Allow", "GET, HEAD");
        return r;
    }
    let route = match routes::route(req.uri().path()) {
        Ok(r) => r,
        Err(e) => {
            let (code, status) = e.code();
            return error(status, code, &e.to_string());
        }
    };
    let query = routes::query(req.uri().query());
    let catalog = &store.catalog;
    let repo_of = |name: &crate::oci::RepoName| catalog.repositories.get(name);
    match route {
        Route::Base => json(&serde_json::json!({}), "application/json"),
        Route::Catalog => {
            let names: Vec<&str> = catalog.repositories.keys().map(|n| n.as_str()).collect();
            let (page, more) = paginate(&names, &query);
            let mut r = json(
                &serde_json::json!({"repositories": page}),
                "application/json",
            );
            if let (Some(last), true) = (page.last(), more) {
                link(&mut r, "/v2/_catalog", last, query.n);
            }
            r
        }
        Route::Tags(name) => {
            let Some(repo) = repo_of(&name) else {
                return error(404, "NAME_UNKNOWN", "repository not in this bundle");
            };
            let tags: Vec<&str> = repo.tags.keys().map(|t| t.as_str()).collect();
            let (page, more) = paginate(&tags, &query);
            let mut r = json(
                &serde_json::json!({"name": name.as_str(), "tags": page}),
                "application/json",
            );
            if let (Some(last), true) = (page.last(), more) {
                link(&mut r, &format!("/v2/{name}/tags/list"), last, query.n);
            }
            r
        }
        Route::Manifest(name, reference) => {
            let digest = repo_of(&name).and_then(|repo| match &reference {
                ManifestRef::Tag(t) => repo.tags.get(t.as_str()).cloned(),
                ManifestRef::Digest(d) => repo.digests.contains(d).then(|| d.clone()),
            });
            let Some(m) = digest.as_ref().and_then(|d| store.manifest(d)) else {
                return error(404, "MANIFEST_UNKNOWN", "manifest not in this bundle");
            };
            let mut r = Response::new(full(m.bytes.clone()));
            header(&mut r, "Content-Type", &m.media_type);
            header(&mut r, "Docker-Content-Digest", m.parsed.digest.as_str());
            header(&mut r, "Content-Length", &m.bytes.len().to_string());
            r
        }
        Route::Referrers(name, subject) => {
            let mut list: Vec<&super::catalog::ReferrerDescriptor> = repo_of(&name)
                .and_then(|repo| repo.referrers.get(&subject))
                .map(|l| l.iter().collect())
                .unwrap_or_default();
            if let Some(t) = &query.artifact_type {
                list.retain(|d| d.artifact_type.as_deref() == Some(t.as_str()));
            }
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media::OCI_INDEX,
                "manifests": list,
            });
            let mut r = json(&index, media::OCI_INDEX);
            if query.artifact_type.is_some() {
                header(&mut r, "OCI-Filters-Applied", "artifactType");
            }
            r
        }
        Route::Blob(name, digest) => {
            let scoped = repo_of(&name).is_some_and(|repo| repo.digests.contains(&digest));
            // A manifest is also a blob; it is held in memory, already checked.
            if let Some(m) = store.manifest(&digest).filter(|_| scoped) {
                return blob_response(req, &digest, m.bytes.len() as u64, |(a, b)| {
                    full(m.bytes.slice(a as usize..=b as usize))
                });
            }
            let Some(at) = store.blob(&digest).filter(|_| scoped) else {
                return error(404, "BLOB_UNKNOWN", "blob not in this bundle");
            };
            if req.method() == Method::HEAD {
                return blob_response(req, &digest, at.size, |_| empty());
            }
            let (store, log, streams) = (Arc::clone(store), Arc::clone(log), Arc::clone(streams));
            let d = digest.clone();
            blob_response(req, &digest, at.size, move |range| {
                let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(STREAM_DEPTH);
                tokio::spawn(async move {
                    let Ok(permit) = streams.acquire_owned().await else {
                        return;
                    };
                    let _ = tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        blob::stream(&store, &d, range, &mut ChannelSink(tx), log.as_ref());
                    })
                    .await;
                });
                let body = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item.map(Frame::data), rx))
                });
                StreamBody::new(body).boxed()
            })
        }
    }
}

struct ChannelSink(mpsc::Sender<io::Result<Bytes>>);

impl Sink for ChannelSink {
    fn send(&mut self, item: io::Result<Bytes>) -> bool {
        self.0.blocking_send(item).is_ok()
    }
}

/// A blob's response: 200 with the whole body, 206 with `Content-Range` for a range, 416 for a
/// range that cannot be satisfied. `body` makes the body for an inclusive byte range.
fn blob_response(
    req: &Request<Incoming>,
    digest: &crate::oci::Digest,
    size: u64,
    body: impl FnOnce((u64, u64)) -> Body,
) -> Response<Body> {
    let range_header = req
        .headers()
        .get(hyper::header::RANGE)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let range = match routes::range(range_header, size) {
        Ok(r) => r,
        Err(()) => {
            let mut r = error(416, "RANGE_INVALID", "the requested range cannot be served");
            header(&mut r, "Content-Range", &format!("bytes */{size}"));
            return r;
        }
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut r = Response::new(if size == 0 {
        empty()
    } else {
        body((start, end))
    });
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        header(
            &mut r,
            "Content-Range",
            &format!("bytes {start}-{end}/{size}"),
        );
    }
    header(&mut r, "Content-Type", "application/octet-stream");
    header(&mut r, "Docker-Content-Digest", digest.as_str());
    header(&mut r, "Accept-Ranges", "bytes");
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// One page of a sorted list: entries after `last`, at most `n`; and whether more follow.
fn paginate<'a>(all: &[&'a str], q: &routes::Query) -> (Vec<&'a str>, bool) {
    let after: Vec<&str> = match &q.last {
        Some(last) => all.iter().copied().filter(|s| *s > last.as_str()).collect(),
        None => all.to_vec(),
    };
    match q.n {
        Some(n) if n < after.len() => (after[..n].to_vec(), true),
        _ => (after, false),
    }
}

/// The `Link` header to the next page.
fn link(r: &mut Response<Body>, path: &str, last: &str, n: Option<usize>) {
    let last: String = url::form_urlencoded::byte_serialize(last.as_bytes()).collect();
    let n = n.map(|n| format!("n={n}&")).unwrap_or_default();
    header(r, "Link", &format!("<{path}?{n}last={last}>; rel=\"next\""));
}
