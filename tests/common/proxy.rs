//! A fault-injecting HTTP proxy in front of a real registry, for what real registries never do:
//! bursts of 503, bodies cut off, lying digest headers, odd content types; and, for the WAN
//! benchmark, a fixed delay on every request (a registry one round trip away).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

/// What the proxy does wrong.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// A registry under load: while more than `max_in_flight` requests are in flight, answer
    /// the newcomers 429 (every other one with `Retry-After: 1`) or 503, alternating.
    Overload { max_in_flight: usize },
    /// Hold each request a different time, up to `max_ms` (a fixed pseudo-random sequence), so
    /// answers come back in another order than the requests went out.
    Jitter { max_ms: u64 },
    /// Answer the first `n` requests with 503 (with `Retry-After: 0`), then pass through.
    Fail503 { n: usize },
    /// Answer every request with 503.
    Always503,
    /// Cut the body of the first `n` blob GETs after `after` bytes.
    CutBlobBody { n: usize, after: usize },
    /// Replace `Docker-Content-Digest` on manifest GETs with a wrong digest.
    LieDigest,
    /// Replace `Content-Type` on manifest GETs.
    ContentType(String),
    /// Pass through, then answer 503 to every request after the first `n` blob uploads
    /// (`PUT .../blobs/uploads/...`) have gone through.
    DieAfterUploads { n: usize },
    /// Pass the first `n` requests whose line (`METHOD path`) contains `needle`; hold later
    /// ones until [`Proxy::release`] (or two minutes): a client stuck mid-transfer, to be
    /// killed.
    StallAfter { n: usize, needle: String },
    /// Answer 401 with a Bearer challenge for `realm` and `service` to a request whose bearer
    /// token this proxy first saw `ttl` or longer ago: a registry enforcing short-lived tokens
    /// (`ttl` zero: one that refuses every token). Counted in [`Proxy::rejected`].
    ExpireTokens {
        ttl: std::time::Duration,
        realm: String,
        service: String,
    },
    /// Point every `Location` header at another origin (`http://OTHER/…`, same path): a
    /// registry handing our credentials and blobs to someone else.
    ForeignLocation { other: String },
    /// Add `Link: <http://OTHER/…>; rel="next"` to every list response (`_catalog`,
    /// `tags/list`).
    ForeignLink { other: String },
    /// Answer every request without `Authorization` with a Bearer challenge whose realm is
    /// `REALM` (another origin, plain HTTP).
    ForeignRealm { realm: String },
    /// For requests whose line contains `needle`: send the headers, then one byte every
    /// `every` (at most `max` bytes), a peer that never finishes.
    Trickle {
        needle: String,
        every: std::time::Duration,
        max: usize,
    },
    /// For requests whose line contains `needle`: answer `status` with an endless body
    /// (no Content-Length), or one declaring `declared` bytes when given.
    Endless {
        needle: String,
        status: u16,
        declared: Option<u64>,
    },
}

/// A running proxy; `host` is what clients use instead of the registry's.
pub struct Proxy {
    pub host: String,
    pub requests: Arc<AtomicUsize>,
    /// Requests answered 429/503 by [`Fault::Overload`].
    pub rejected: Arc<AtomicUsize>,
    /// The most requests in flight at once (counted until the response headers).
    pub peak_in_flight: Arc<AtomicUsize>,
    pub log: Arc<Mutex<Vec<String>>>,
    released: Arc<AtomicBool>,
    rt: tokio::runtime::Runtime,
}

use super::{full, Body};

impl Proxy {
    pub fn start(upstream: &str, fault: Fault) -> Proxy {
        Proxy::start_delayed(upstream, fault, std::time::Duration::ZERO)
    }

    /// [`Proxy::start`] that waits `delay` before forwarding each request: every request
    /// costs one extra round trip, as to a registry across a WAN.
    pub fn start_delayed(upstream: &str, fault: Fault, delay: std::time::Duration) -> Proxy {
        let requests = Arc::new(AtomicUsize::new(0));
        let rejected = Arc::new(AtomicUsize::new(0));
        let peak_in_flight = Arc::new(AtomicUsize::new(0));
        let (rj, pk) = (rejected.clone(), peak_in_flight.clone());
        let log = Arc::new(Mutex::new(Vec::new()));
        let released = Arc::new(AtomicBool::new(false));
        let (r, l, rel) = (requests.clone(), log.clone(), released.clone());
        let upstream = upstream.to_string();
        let (addr, rt) = super::serve_http(move |addr| {
            let state = Arc::new(State {
                upstream: format!("http://{upstream}"),
                fault,
                delay,
                requests: r,
                rejected: rj,
                in_flight: AtomicUsize::new(0),
                peak_in_flight: pk,
                cuts: AtomicUsize::new(0),
                uploads: AtomicUsize::new(0),
                matched: AtomicUsize::new(0),
                tokens: Mutex::new(std::collections::HashMap::new()),
                released: rel.clone(),
                log: l,
                client: reqwest::Client::new(),
                proxy_host: addr.to_string(),
                upstream_host: upstream,
            });
            move |req| {
                let state = state.clone();
                async move { state.handle(req).await }
            }
        });
        Proxy {
            host: addr.to_string(),
            requests,
            rejected,
            peak_in_flight,
            log,
            released,
            rt,
        }
    }

    /// Lets stalled requests through (`Fault::StallAfter`).
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Requests seen whose line contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The runtime is dropped with the proxy; nothing else to stop.
        let _ = &self.rt;
    }
}

struct State {
    upstream: String,
    fault: Fault,
    delay: std::time::Duration,
    requests: Arc<AtomicUsize>,
    rejected: Arc<AtomicUsize>,
    in_flight: AtomicUsize,
    peak_in_flight: Arc<AtomicUsize>,
    cuts: AtomicUsize,
    uploads: AtomicUsize,
    matched: AtomicUsize,
    /// When each bearer token was first seen (`Fault::ExpireTokens`).
    tokens: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    released: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
    proxy_host: String,
    upstream_host: String,
}

fn unavailable() -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(503)
        .header("Retry-After", "0")
        .body(full(Bytes::from_static(
            b"{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"injected\"}]}",
        )))
        .expect("response")
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl State {
    /// How long ago this proxy first saw the request's bearer token, if it carries one.
    fn token_age<B>(&self, req: &hyper::Request<B>) -> Option<std::time::Duration> {
        let token = req
            .headers()
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .to_string();
        let mut seen = self.tokens.lock().expect("tokens");
        Some(
            seen.entry(token)
                .or_insert_with(std::time::Instant::now)
                .elapsed(),
        )
    }

    async fn handle(&self, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Body> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _in_flight = InFlight(&self.in_flight);
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let method = req.method().clone();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        self.log
            .lock()
            .expect("log")
            .push(format!("{method} {path}"));
        if let Fault::Jitter { max_ms } = self.fault {
            let spread = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            tokio::time::sleep(std::time::Duration::from_millis(spread % max_ms.max(1))).await;
        }
        match &self.fault {
            Fault::Overload { max_in_flight } if now > *max_in_flight => {
                let k = self.rejected.fetch_add(1, Ordering::SeqCst);
                let b = hyper::Response::builder();
                let b = match k % 4 {
                    0 => b.status(429).header("Retry-After", "1"),
                    2 => b.status(429),
                    _ => b.status(503),
                };
                return b
                    .body(full(Bytes::from_static(
                        b"{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"injected\"}]}",
                    )))
                    .expect("response");
            }
            Fault::Fail503 { n: k } if n < *k => return unavailable(),
            Fault::Always503 => return unavailable(),
            Fault::DieAfterUploads { n: k } if self.uploads.load(Ordering::SeqCst) >= *k => {
                return unavailable()
            }
            // Counts every matching request; holds those past the first `k`.
            Fault::StallAfter { n: k, needle }
                if format!("{method} {path}").contains(needle)
                    && self.matched.fetch_add(1, Ordering::SeqCst) >= *k =>
            {
                for _ in 0..2400 {
                    if self.released.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            Fault::ExpireTokens {
                ttl,
                realm,
                service,
            } if self.token_age(&req).is_some_and(|age| age >= *ttl) => {
                self.rejected.fetch_add(1, Ordering::SeqCst);
                return hyper::Response::builder()
                    .status(401)
                    .header(
                        "WWW-Authenticate",
                        format!("Bearer realm=\"{realm}\",service=\"{service}\""),
                    )
                    .body(full(Bytes::from_static(
                        b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"token expired\"}]}",
                    )))
                    .expect("response");
            }
            Fault::ForeignRealm { realm } if !req.headers().contains_key("authorization") => {
                return hyper::Response::builder()
                    .status(401)
                    .header(
                        "WWW-Authenticate",
                        format!("Bearer realm=\"{realm}\",service=\"test\""),
                    )
                    .body(full(Bytes::from_static(b"{\"errors\":[]}")))
                    .expect("response");
            }
            Fault::Trickle { needle, every, max }
                if format!("{method} {path}").contains(needle) =>
            {
                let (every, max) = (*every, *max);
                let s = futures_util::stream::unfold(0usize, move |sent| async move {
                    if sent >= max {
                        return None;
                    }
                    tokio::time::sleep(every).await;
                    Some((
                        Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b" "))),
                        sent + 1,
                    ))
                });
                return hyper::Response::builder()
                    .status(200)
                    .header("Content-Type", "application/json")
                    .body(BodyExt::boxed(StreamBody::new(s)))
                    .expect("response");
            }
            Fault::Endless {
                needle,
                status,
                declared,
            } if format!("{method} {path}").contains(needle) => {
                let chunk = Bytes::from(vec![b' '; 64 * 1024]);
                let s = futures_util::stream::repeat_with(move || {
                    Ok::<_, std::io::Error>(Frame::data(chunk.clone()))
                });
                let mut b = hyper::Response::builder()
                    .status(*status)
                    .header("Content-Type", "application/json")
                    .header("WWW-Authenticate", "Basic realm=\"x\"");
                if let Some(n) = declared {
                    b = b.header("Content-Length", n.to_string());
                }
                return b
                    .body(BodyExt::boxed(StreamBody::new(s)))
                    .expect("response");
            }
            _ => {}
        }
        let is_upload_put = method == hyper::Method::PUT && path.contains("/blobs/uploads/");
        let mut rb = self
            .client
            .request(method.clone(), format!("{}{path}", self.upstream));
        for (k, v) in req.headers() {
            if k != hyper::header::HOST {
                rb = rb.header(k, v);
            }
        }
        let body_stream = req
            .into_body()
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other));
        rb = rb.body(reqwest::Body::wrap_stream(body_stream));
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(_) => return unavailable(),
        };
        if is_upload_put && resp.status().as_u16() == 201 {
            self.uploads.fetch_add(1, Ordering::SeqCst);
        }
        let mut out = hyper::Response::builder().status(resp.status().as_u16());
        let is_manifest_get = method == hyper::Method::GET && path.contains("/manifests/");
        let is_blob_get = method == hyper::Method::GET && path.contains("/blobs/sha256:");
        for (k, v) in resp.headers() {
            let mut v = v.to_str().unwrap_or("").to_string();
            if k == "location" {
                v = v.replace(&self.upstream_host, &self.proxy_host);
                if let Fault::ForeignLocation { other } = &self.fault {
                    let path = match v.find("/v2/") {
                        Some(i) => v[i..].to_string(),
                        None => v.clone(),
                    };
                    v = format!("http://{other}{path}");
                }
            }
            if is_manifest_get && k == "docker-content-digest" {
                if let Fault::LieDigest = self.fault {
                    v = airlock::oci::Digest::of(b"a lie").to_string();
                }
            }
            if is_manifest_get && k == "content-type" {
                if let Fault::ContentType(ct) = &self.fault {
                    v = ct.clone();
                }
            }
            out = out.header(k.as_str(), v);
        }
        if let Fault::ForeignLink { other } = &self.fault {
            if path.contains("/_catalog") || path.contains("/tags/list") {
                out = out.header(
                    "Link",
                    format!("<http://{other}/v2/_catalog?n=1&last=z>; rel=\"next\""),
                );
            }
        }
        let cut = match self.fault {
            Fault::CutBlobBody { n: k, after }
                if is_blob_get && self.cuts.fetch_add(1, Ordering::SeqCst) < k =>
            {
                Some(after)
            }
            _ => None,
        };
        let stream = resp
            .bytes_stream()
            .map(|r| r.map_err(std::io::Error::other));
        let body: Body = match cut {
            None => BodyExt::boxed(StreamBody::new(stream.map(|r| r.map(Frame::data)))),
            Some(after) => {
                let mut sent = 0usize;
                let s = stream.map(move |r| {
                    let chunk = r?;
                    if sent + chunk.len() > after {
                        return Err(std::io::Error::other("injected cut"));
                    }
                    sent += chunk.len();
                    Ok(Frame::data(chunk))
                });
                BodyExt::boxed(StreamBody::new(s))
            }
        };
        out.body(body).expect("response")
    }
}

/// Another origin that only records what reaches it (`METHOD path auth=yes|no`) and answers
/// 202: where a hostile registry points our client, to prove nothing arrived.
pub struct Recorder {
    pub host: String,
    pub log: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl Recorder {
    pub fn start() -> Recorder {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let (addr, rt) = super::serve_http(move |_| {
            move |req: hyper::Request<hyper::body::Incoming>| {
                let l = l.clone();
                async move {
                    let auth = req.headers().contains_key("authorization");
                    l.lock().expect("log").push(format!(
                        "{} {} auth={}",
                        req.method(),
                        req.uri(),
                        if auth { "yes" } else { "no" }
                    ));
                    hyper::Response::builder()
                        .status(202)
                        .body(full(Bytes::from_static(b"ok")))
                        .expect("response")
                }
            }
        });
        Recorder {
            host: addr.to_string(),
            log,
            _rt: rt,
        }
    }

    /// Everything that reached it.
    pub fn seen(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}
