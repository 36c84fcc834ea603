//! The rules every response from outside goes through: which origin a URL belongs to (and so
//! whether credentials may go with it), bodies read with a cap checked before buffering, and a
//! floor rate below which a transfer counts as stalled. Plain functions, used by the registry
//! client and the chart and file downloads alike.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use url::Url;

use super::RegistryError;

/// Scheme, host and port: the unit credentials belong to (as docker and containerd scope
/// them). Two URLs share an origin only when all three agree, with default ports made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `https` or `http`.
    pub scheme: String,
    /// Host name or address, lowercase.
    pub host: String,
    /// Port, the scheme's default when none is written.
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute URL; `None` when it has no host.
    pub fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// The origin of a URL string; `None` when it does not parse or has no host.
    pub fn of_str(url: &str) -> Option<Origin> {
        Origin::of(&Url::parse(url).ok()?)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Resolves a `Location` or `Link` target against the URL it came from and checks it stays
/// on `origin`. A registry that points elsewhere (another host, another port, or plain HTTP
/// for an HTTPS registry) would receive our credentials and our blobs: refused.
pub fn follow(
    origin: &Origin,
    base: &str,
    header: &'static str,
    target: &str,
) -> Result<String, RegistryError> {
    let refused = |why: String| RegistryError::ForeignLocation {
        header,
        target: crate::untrusted::shorten(target),
        why,
    };
    let base = Url::parse(base).map_err(|e| refused(format!("base URL `{base}`: {e}")))?;
    let url = base
        .join(target)
        .map_err(|e| refused(format!("not a URL: {e}")))?;
    match Origin::of(&url) {
        Some(o) if &o == origin => Ok(url.to_string()),
        Some(o) => Err(refused(format!(
            "it points to {o}, not the registry's own origin {origin}"
        ))),
        None => Err(refused("it has no host".into())),
    }
}

/// Reads a whole body, refusing it as soon as it is known to exceed `cap`: from
/// `Content-Length` before a byte is read, else while streaming, never buffering past the cap.
pub async fn read_capped(
    resp: reqwest::Response,
    cap: usize,
    method: &Method,
    url: &str,
    what: &'static str,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        url: url.to_string(),
        what,
        limit: cap,
    };
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(64 * 1024) as usize);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| RegistryError::Transport {
            method: method.clone(),
            url: url.to_string(),
            attempts: 1,
            source,
        })?;
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first `cap` bytes of a body (an error page, say); the rest is never read.
pub async fn read_prefix(resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
}

/// Watches a transfer's rate: over each window, at least `floor` bytes per second must arrive,
/// or the transfer is stalled. A per-read timeout alone lets a peer trickle one byte every few
/// seconds forever; this bounds a transfer of `n` bytes to about `n / floor` plus one window.
#[derive(Debug)]
pub struct RateFloor {
    floor: u64,
    window: Duration,
    start: Instant,
    bytes: u64,
}

impl RateFloor {
    /// A watchdog that starts now.
    pub fn new(floor: u64, window: Duration) -> Self {
        RateFloor {
            floor,
            window,
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `n` bytes that arrived; `Err((bytes, elapsed))` when the window closed under the
    /// floor.
    pub fn advance(&mut self, n: u64) -> Result<(), (u64, Duration)> {
        self.advance_at(n, Instant::now())
    }

    fn advance_at(&mut self, n: u64, now: Instant) -> Result<(), (u64, Duration)> {
        self.bytes += n;
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < self.window {
            return Ok(());
        }
        let needed = (self.floor as f64 * elapsed.as_secs_f64()) as u64;
        if self.bytes < needed {
            return Err((self.bytes, elapsed));
        }
        self.start = now;
        self.bytes = 0;
        Ok(())
    }
}

/// How long a request that moves `bytes` may take in all: the base deadline plus the time
/// the body needs at the floor rate.
pub fn deadline_for(base: Duration, bytes: u64, floor: u64) -> Duration {
    base + Duration::from_secs(bytes / floor.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> Origin {
        Origin::of_str(s).expect(s)
    }

    #[test]
    fn follows_only_within_the_origin() {
        let o = origin("https://reg.example:443");
        let base = "https://reg.example/v2/a/blobs/uploads/";
        assert_eq!(
            follow(&o, base, "Location", "/v2/a/blobs/uploads/x?s=1").expect("relative"),
            "https://reg.example/v2/a/blobs/uploads/x?s=1"
        );
        assert!(follow(&o, base, "Location", "https://reg.example:443/v2/x").is_ok());
        for bad in [
            "http://reg.example/v2/x",
            "https://other.example/v2/x",
            "https://reg.example:8443/v2/x",
            "//other.example/v2/x",
            "https://reg.example@other.example/v2/x",
            "file:///etc/passwd",
        ] {
            let e = follow(&o, base, "Location", bad).expect_err(bad);
            assert!(
                matches!(e, RegistryError::ForeignLocation { .. }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn origins_make_default_ports_explicit() {
        assert_eq!(origin("https://a.b/x"), origin("https://A.b:443/y"));
        assert_ne!(origin("https://a.b/x"), origin("http://a.b/x"));
        assert_ne!(origin("http://a.b:80/x"), origin("http://a.b:8080/x"));
    }

    #[test]
    fn a_trickle_is_stalled_and_a_steady_flow_is_not() {
        let t0 = Instant::now();
        let mut w = RateFloor {
            floor: 1024,
            window: Duration::from_secs(30),
            start: t0,
            bytes: 0,
        };
        for s in (5..30).step_by(5) {
            assert!(w.advance_at(1, t0 + Duration::from_secs(s)).is_ok());
        }
        assert!(w.advance_at(1, t0 + Duration::from_secs(30)).is_err());
        let mut w = RateFloor {
            floor: 1024,
            window: Duration::from_secs(30),
            start: t0,
            bytes: 0,
        };
        for s in 1..=90 {
            assert!(w.advance_at(2048, t0 + Duration::from_secs(s)).is_ok());
        }
    }

    #[test]
    fn deadlines_grow_with_size_at_the_floor() {
        assert_eq!(
            deadline_for(Duration::from_secs(60), 10 * 1024 * 1024, 1024 * 1024),
            Duration::from_secs(70)
        );
    }
}
