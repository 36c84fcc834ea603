//! A token server for the distribution registry's bearer-token auth: it checks basic
//! credentials and issues ES256 JWTs (x5c chain to a certificate the registry trusts) for the
//! scopes asked, as Docker Hub's and Harbor's token services do.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;

pub struct TokenServer {
    pub realm: String,
    pub service: String,
    pub issuer: String,
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
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl TokenServer {
    /// Starts the server; writes the signing certificate to `cert_path` for the registry's
    /// `rootcertbundle`. Only `user:password` gets a token, valid for five minutes.
    pub fn start(cert_path: &Path, user: &str, password: &str) -> TokenServer {
        Self::start_with_ttl(cert_path, user, password, 300)
    }

    /// [`TokenServer::start`] issuing tokens that expire after `ttl` seconds (`expires_in`).
    pub fn start_with_ttl(cert_path: &Path, user: &str, password: &str, ttl: u64) -> TokenServer {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["token-issuer".to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "airlock test token issuer");
        let cert = params.self_signed(&key).expect("cert");
        std::fs::write(cert_path, cert.pem()).expect("write cert");
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let pkcs8 = key.serialize_der();
        let signing: p256::ecdsa::SigningKey =
            p256::pkcs8::DecodePrivateKey::from_pkcs8_der(&pkcs8).expect("p256 key");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let service = "airlock-test-registry".to_string();
        let issuer = "airlock-test-issuer".to_string();
        let (svc_name, iss) = (service.clone(), issuer.clone());
        let (addr, rt) = super::serve_http(move |_| {
            move |req: hyper::Request<hyper::body::Incoming>| {
                let ok = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v == expected);
                let query: HashMap<String, Vec<String>> = req
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .fold(HashMap::new(), |mut m, (k, v)| {
                        let v = url::form_urlencoded::parse(format!("x={v}").as_bytes())
                            .next()
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default();
                        m.entry(k.to_string()).or_default().push(v);
                        m
                    });
                let body = if ok {
                    let access: Vec<serde_json::Value> = query
                                .get("scope")
                                .into_iter()
                                .flatten()
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
                    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
                    let claims = serde_json::json!({
                        "iss": iss, "sub": "alice", "aud": svc_name,
                        "exp": now + ttl, "nbf": now - 10, "iat": now,
                        "jti": format!("{now}-{}", access.len()), "access": access,
                    });
                    let input = format!(
                        "{}.{}",
                        b64url(header.to_string().as_bytes()),
                        b64url(claims.to_string().as_bytes())
                    );
                    let sig: p256::ecdsa::Signature = signing.sign(input.as_bytes());
                    let token = format!("{input}.{}", b64url(&sig.to_bytes()));
                    Some(serde_json::json!({"token": token, "expires_in": ttl}).to_string())
                } else {
                    None
                };
                let resp = match body {
                    Some(b) => hyper::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(super::full(bytes::Bytes::from(b))),
                    None => hyper::Response::builder()
                        .status(401)
                        .body(super::full(bytes::Bytes::new())),
                };
                async move { resp.expect("response") }
            }
        });
        TokenServer {
            realm: format!("http://{addr}/token"),
            service,
            issuer,
            rt,
        }
    }
}
