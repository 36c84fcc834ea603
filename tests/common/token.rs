//! A token server for the distribution registry's bearer-token auth: it checks basic
//! credentials (`GET`) or an OAuth2 refresh token (`POST`, `grant_type=refresh_token`, what
//! docker sends for the `identitytoken` `docker login` stored) and issues ES256 JWTs (x5c chain
//! to a certificate the registry trusts) for the scopes asked, as Docker Hub's and Harbor's
//! token services do. Every request is logged (`GET basic`, `POST refresh_token`, …).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;

/// What the token server accepts and how long its tokens live.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The user name for basic credentials.
    pub user: String,
    /// The password for basic credentials.
    pub password: String,
    /// Tokens' lifetime in seconds (`expires_in`).
    pub ttl: u64,
    /// The one refresh token the OAuth2 endpoint accepts, when it has one.
    pub refresh_token: Option<String>,
}

pub struct TokenServer {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// One line per request: `METHOD GRANT -> STATUS` (`GET basic -> 200`,
    /// `POST refresh_token -> 401`).
    pub log: Arc<Mutex<Vec<String>>>,
    rt: tokio::runtime::Runtime,
}

impl TokenServer {
    /// `HOST:PORT` of the token endpoint.
    pub fn host(&self) -> String {
        self.realm
            .trim_start_matches("http://")
            .trim_end_matches("/token")
            .to_string()
    }

    /// The requests so far, one line each.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("token log").clone()
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// `a=b&c=d` (a query or a form body) as a multimap, values decoded.
fn form(s: &str) -> HashMap<String, Vec<String>> {
    url::form_urlencoded::parse(s.as_bytes()).fold(HashMap::new(), |mut m, (k, v)| {
        m.entry(k.into_owned()).or_default().push(v.into_owned());
        m
    })
}

/// Signs tokens for what a request is allowed.
struct Issuer {
    cfg: TokenConfig,
    signing: p256::ecdsa::SigningKey,
    x5c: String,
    service: String,
    issuer: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Issuer {
    /// A JWT granting `scopes` (`repository:NAME:ACTIONS`), valid for the configured lifetime.
    fn token<'a>(&self, scopes: impl Iterator<Item = &'a str>) -> String {
        let access: Vec<serde_json::Value> = scopes
            .filter_map(|s| {
                let mut p = s.splitn(3, ':');
                let (t, name, actions) = (p.next()?, p.next()?, p.next()?);
                Some(serde_json::json!({"type": t, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": self.cfg.user, "aud": self.service,
            "exp": now + self.cfg.ttl, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", access.len()), "access": access,
        });
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig: p256::ecdsa::Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", b64url(&sig.to_bytes()))
    }

    /// Answers one request: `GET` with basic credentials (the token spec), or `POST` with a
    /// form (the OAuth2 spec; only `grant_type=refresh_token` is served).
    async fn answer(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<super::Body> {
        use http_body_util::BodyExt as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.cfg.user, self.cfg.password))
        );
        let basic_ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == expected);
        let (what, body) = if req.method() == hyper::Method::POST {
            let limited = http_body_util::Limited::new(req.into_body(), 64 << 10);
            let bytes = limited
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let f = form(&String::from_utf8_lossy(&bytes));
            let one = |k: &str| f.get(k).and_then(|v| v.first()).map(String::as_str);
            let grant = one("grant_type").unwrap_or("none").to_string();
            let granted = grant == "refresh_token"
                && self.cfg.refresh_token.is_some()
                && one("refresh_token") == self.cfg.refresh_token.as_deref()
                && one("service") == Some(self.service.as_str());
            let body = granted.then(|| {
                let scope = one("scope").unwrap_or("");
                serde_json::json!({
                    "access_token": self.token(scope.split(' ')),
                    "scope": scope,
                    "expires_in": self.cfg.ttl,
                    "issued_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                })
            });
            (format!("POST {grant}"), body)
        } else {
            let query = form(req.uri().query().unwrap_or(""));
            let body = basic_ok.then(|| {
                let scopes = query.get("scope").into_iter().flatten().map(String::as_str);
                serde_json::json!({"token": self.token(scopes), "expires_in": self.cfg.ttl})
            });
            let how = if req.headers().contains_key("authorization") {
                "basic"
            } else {
                "anonymous"
            };
            (format!("GET {how}"), body)
        };
        let status = if body.is_some() { 200 } else { 401 };
        self.log
            .lock()
            .expect("token log")
            .push(format!("{what} -> {status}"));
        let b = body.map(|b| b.to_string()).unwrap_or_else(|| {
            r#"{"error":"invalid_grant","error_description":"credentials refused"}"#.into()
        });
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(super::full(bytes::Bytes::from(b)))
            .expect("response")
    }
}

impl TokenServer {
    /// Starts the server; writes the signing certificate to `cert_path` for the registry's
    /// `rootcertbundle`. Only `user:password` gets a token, valid for five minutes.
    pub fn start(cert_path: &Path, user: &str, password: &str) -> TokenServer {
        Self::start_with(
            cert_path,
            TokenConfig {
                user: user.into(),
                password: password.into(),
                ttl: 300,
                refresh_token: None,
            },
        )
    }

    /// Starts the server accepting what `cfg` says.
    pub fn start_with(cert_path: &Path, cfg: TokenConfig) -> TokenServer {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["token-issuer".to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "airlock test token issuer");
        let cert = params.self_signed(&key).expect("cert");
        std::fs::write(cert_path, cert.pem()).expect("write cert");
        let signing: p256::ecdsa::SigningKey =
            p256::pkcs8::DecodePrivateKey::from_pkcs8_der(&key.serialize_der()).expect("p256 key");
        let log = Arc::new(Mutex::new(Vec::new()));
        let issuer = Arc::new(Issuer {
            cfg,
            signing,
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.der()),
            service: "airlock-test-registry".to_string(),
            issuer: "airlock-test-issuer".to_string(),
            log: log.clone(),
        });
        let (service, iss) = (issuer.service.clone(), issuer.issuer.clone());
        let (addr, rt) = super::serve_http(move |_| {
            move |req: hyper::Request<hyper::body::Incoming>| {
                let issuer = issuer.clone();
                async move { issuer.answer(req).await }
            }
        });
        TokenServer {
            realm: format!("http://{addr}/token"),
            service,
            issuer: iss,
            log,
            rt,
        }
    }
}
