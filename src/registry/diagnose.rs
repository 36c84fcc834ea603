//! Why a registry request failed, told from the error types underneath reqwest (rustls, the
//! socket's `io::ErrorKind`) and the HTTP status, never from message text: the CLI words a
//! `hint:` for each, and the client stops retrying what retrying cannot fix.

use std::error::Error;

use reqwest::StatusCode;

use super::RegistryError;

/// A failure a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// An `https://` request got bytes that are not TLS: the registry speaks plain HTTP.
    PlainHttpRegistry {
        /// The registry's origin, as in the URL.
        host: String,
    },
    /// An `http://` request was answered 400: the registry speaks TLS on that port.
    TlsRegistry {
        /// The registry's origin, as in the URL.
        host: String,
    },
    /// The registry's certificate chains to no CA we trust.
    UnknownCa {
        /// The registry's origin, as in the URL.
        host: String,
    },
    /// The certificate is for another name, expired, or otherwise unusable.
    BadCertificate {
        /// The registry's origin, as in the URL.
        host: String,
    },
    /// The registry ended the TLS handshake with an alert about our client certificate: it
    /// requires mutual TLS and we offered none it accepts.
    ClientCertificateRequired {
        /// The registry's origin, as in the URL.
        host: String,
    },
    /// The connection was refused: nothing listens on that port.
    Refused {
        /// The registry's origin, as in the URL.
        host: String,
    },
    /// The host name does not resolve.
    NameNotResolved {
        /// The host name.
        host: String,
    },
    /// 401/403 after offering what credentials we had.
    Unauthorized {
        /// The registry.
        registry: String,
    },
    /// 404 on a manifest or tag list: no such repository or tag.
    NotFound {
        /// The URL that answered 404.
        url: String,
    },
}

/// What went wrong, when the error says.
pub fn diagnose(err: &RegistryError) -> Option<Diagnosis> {
    match err {
        RegistryError::Transport { url, source, .. }
        | RegistryError::ClientCertificateRequired { url, source, .. } => {
            let host = origin_of(url);
            transport(source, url, host)
        }
        RegistryError::Status { url, status, .. } => {
            if *status == StatusCode::BAD_REQUEST && url.starts_with("http://") {
                Some(Diagnosis::TlsRegistry {
                    host: origin_of(url),
                })
            } else if *status == StatusCode::NOT_FOUND {
                Some(Diagnosis::NotFound { url: url.clone() })
            } else {
                None
            }
        }
        RegistryError::Unauthorized { registry, .. } => Some(Diagnosis::Unauthorized {
            registry: registry.clone(),
        }),
        _ => None,
    }
}

/// Whether a transport error is one a retry cannot fix (TLS spoken to plain HTTP, an unknown
/// CA, a bad certificate): the client gives up at once instead of backing off five times.
pub fn is_permanent(err: &reqwest::Error) -> bool {
    rustls_error(err).is_some()
}

/// Whether the registry ended the handshake over our client certificate (none, or one it does
/// not accept): what a registry requiring mutual TLS answers a client without `client.cert`.
pub fn client_certificate_refused(err: &reqwest::Error) -> bool {
    rustls_error(err).is_some_and(refuses_client_certificate)
}

/// The alerts a TLS server sends about the client's certificate (RFC 8446 §6.2: a missing
/// certificate is `certificate_required`; TLS 1.2 servers, and Go's before 1.21, say
/// `bad_certificate`; a certificate from a CA it does not trust is `unknown_ca`).
fn refuses_client_certificate(e: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        e,
        rustls::Error::AlertReceived(
            A::CertificateRequired | A::BadCertificate | A::UnknownCA | A::CertificateUnknown
        )
    )
}

/// Whether the host of `url` resolves; a name that does not is not retried.
pub async fn resolves(url: &str) -> bool {
    let Some((host, port)) = url::Url::parse(url)
        .ok()
        .and_then(|u| Some((u.host_str()?.to_string(), u.port_or_known_default()?)))
    else {
        return true;
    };
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .map(|mut a| a.next().is_some())
        .unwrap_or(false)
}

fn transport(err: &reqwest::Error, url: &str, host: String) -> Option<Diagnosis> {
    if let Some(e) = rustls_error(err) {
        return Some(match e {
            rustls::Error::InvalidMessage(_) if url.starts_with("https://") => {
                Diagnosis::PlainHttpRegistry { host }
            }
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                Diagnosis::UnknownCa { host }
            }
            rustls::Error::InvalidCertificate(_) => Diagnosis::BadCertificate { host },
            e if refuses_client_certificate(e) => Diagnosis::ClientCertificateRequired { host },
            _ => return None,
        });
    }
    if !err.is_connect() {
        return None;
    }
    let io = sources(err).find_map(|e| e.downcast_ref::<std::io::Error>());
    if io.is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused) {
        return Some(Diagnosis::Refused { host });
    }
    // A connect error that is neither refused nor TLS: ask the resolver whether the name exists.
    let name = url::Url::parse(url).ok()?.host_str()?.to_string();
    let resolves = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 0))
        .map(|mut a| a.next().is_some())
        .unwrap_or(false);
    (!resolves).then_some(Diagnosis::NameNotResolved { host: name })
}

fn sources<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn Error + 'static)| (*e).source())
}

/// The rustls error under a reqwest error. The connector wraps it in an `io::Error` inside
/// another `io::Error`, `io::Error::source` skips the error it wraps, and an HTTP/2
/// connection error (`h2::Error`) has no `source` at all, so those are unwrapped by hand.
fn rustls_error(err: &reqwest::Error) -> Option<&rustls::Error> {
    sources(err).find_map(|e| {
        let mut cur: &(dyn Error + 'static) = e;
        loop {
            if let Some(r) = cur.downcast_ref::<rustls::Error>() {
                return Some(r);
            }
            if let Some(io) = cur.downcast_ref::<h2::Error>().and_then(h2::Error::get_io) {
                cur = io;
                continue;
            }
            cur = cur.downcast_ref::<std::io::Error>()?.get_ref()?;
        }
    })
}

/// `HOST[:PORT]` of a URL, for messages (the URL itself when it does not parse).
fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_400_to_plain_http_means_the_registry_speaks_tls() {
        let e = RegistryError::Status {
            method: reqwest::Method::GET,
            url: "http://127.0.0.1:5000/v2/".into(),
            status: StatusCode::BAD_REQUEST,
            detail: String::new(),
        };
        assert_eq!(
            diagnose(&e),
            Some(Diagnosis::TlsRegistry {
                host: "127.0.0.1:5000".into()
            })
        );
    }

    #[test]
    fn a_404_names_the_url() {
        let e = RegistryError::Status {
            method: reqwest::Method::GET,
            url: "https://r.example/v2/app/manifests/1.0".into(),
            status: StatusCode::NOT_FOUND,
            detail: String::new(),
        };
        assert!(matches!(diagnose(&e), Some(Diagnosis::NotFound { .. })));
    }
}

#[cfg(test)]
mod live {
    use super::*;

    /// A TCP server that answers every connection with a plain-HTTP 400, as a registry without
    /// TLS answers a TLS ClientHello.
    async fn plain_http_server() -> std::net::SocketAddr {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn tls_to_a_plain_http_server_is_diagnosed_and_not_retried() {
        let addr = plain_http_server().await;
        let client = reqwest::Client::builder().build().expect("client");
        let url = format!("https://{addr}/v2/");
        let err = client.get(&url).send().await.expect_err("no TLS there");
        assert!(is_permanent(&err), "{err:?}");
        let e = RegistryError::Transport {
            method: reqwest::Method::GET,
            url,
            attempts: 1,
            source: err,
        };
        assert_eq!(
            diagnose(&e),
            Some(Diagnosis::PlainHttpRegistry {
                host: addr.to_string()
            })
        );
    }
}
