//! Credentials: where users already keep them (docker `config.json`, containers `auth.json`,
//! `--creds`), and the registry auth challenge (`WWW-Authenticate`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// A user name and password (or token). `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    password: String,
}

impl Credentials {
    /// Builds credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The password, for building an `Authorization` header and nothing else.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `Basic base64(user:pass)`.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}:<redacted>)", self.username)
    }
}

/// Why credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `--creds` not of the form `[HOST=]USER:PASSWORD`.
    #[error("--creds must be USER:PASSWORD or HOST=USER:PASSWORD (got a value without `:`)")]
    BadCredsFlag,
    /// An auth file that exists but cannot be read or parsed.
    #[error("cannot read credentials from `{path}`: {why}")]
    BadAuthFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Parses one `--creds` value: `USER:PASSWORD` or `HOST=USER:PASSWORD`.
pub fn parse_creds_flag(value: &str) -> Result<(Option<String>, Credentials), AuthError> {
    let (host, rest) = match value.split_once('=') {
        Some((h, rest)) if !h.contains(':') || h.contains('.') || h.starts_with("localhost") => {
            // `HOST=` prefix: hosts may contain ':' for the port, user names rarely contain '='.
            (Some(normalize_host(h)), rest)
        }
        _ => (None, value),
    };
    let (user, pass) = rest.split_once(':').ok_or(AuthError::BadCredsFlag)?;
    Ok((host, Credentials::new(user, pass)))
}

/// Maps the many spellings of a registry in auth files to the host airlock uses.
pub fn normalize_host(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            crate::reference::DOCKER_HUB.to_string()
        }
        h => h.to_string(),
    }
}

/// Where credentials come from, in precedence order: `--creds`, then the auth files.
#[derive(Debug, Default, Clone)]
pub struct CredentialStore {
    by_host: HashMap<String, Credentials>,
}

impl CredentialStore {
    /// An empty store (anonymous everywhere).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` and the docker
    /// config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), first file wins per host,
    /// then applies `--creds` values on top. `default_host` receives a `--creds` without `HOST=`.
    pub fn load(flags: &[String], default_host: Option<&str>) -> Result<Self, AuthError> {
        let mut store = CredentialStore::default();
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(PathBuf::from(p));
        }
        if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
            files.push(Path::new(&p).join("containers/auth.json"));
        }
        if let Some(p) = std::env::var_os("DOCKER_CONFIG") {
            files.push(Path::new(&p).join("config.json"));
        } else if let Some(home) = std::env::var_os("HOME") {
            files.push(Path::new(&home).join(".docker/config.json"));
        }
        for f in files {
            if f.is_file() {
                for (host, c) in read_auth_file(&f)? {
                    store.by_host.entry(host).or_insert(c);
                }
            }
        }
        for flag in flags {
            let (host, creds) = parse_creds_flag(flag)?;
            match host.or_else(|| default_host.map(str::to_string)) {
                Some(h) => {
                    store.by_host.insert(h, creds);
                }
                None => return Err(AuthError::BadCredsFlag),
            }
        }
        Ok(store)
    }

    /// Adds or replaces credentials for a host.
    pub fn insert(&mut self, host: &str, creds: Credentials) {
        self.by_host.insert(normalize_host(host), creds);
    }

    /// Credentials for a registry host, if any.
    pub fn get(&self, host: &str) -> Option<&Credentials> {
        self.by_host.get(host)
    }
}

/// Reads the `auths` map of a docker `config.json` or containers `auth.json`.
pub fn read_auth_file(path: &Path) -> Result<Vec<(String, Credentials)>, AuthError> {
    let bad = |why: String| AuthError::BadAuthFile {
        path: path.to_path_buf(),
        why,
    };
    let text = crate::io::read_text_capped(path, crate::io::MAX_AUTH_FILE_BYTES, "auth file")
        .map_err(|e| bad(e.to_string()))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return Ok(out);
    };
    // Exact host keys first so that a `host/namespace` key never shadows them.
    let mut keys: Vec<&String> = auths.keys().collect();
    keys.sort_by_key(|k| k.trim_start_matches("https://").contains('/'));
    for key in keys {
        let entry = &auths[key.as_str()];
        let creds = if let Some(auth) = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| bad(format!("`auths.{key}.auth` is not base64: {e}")))?;
            let raw = String::from_utf8(raw)
                .map_err(|_| bad(format!("`auths.{key}.auth` is not UTF-8")))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| bad(format!("`auths.{key}.auth` is not user:password")))?;
            Credentials::new(u, p)
        } else if let (Some(u), Some(p)) = (
            entry.get("username").and_then(|v| v.as_str()),
            entry.get("password").and_then(|v| v.as_str()),
        ) {
            Credentials::new(u, p)
        } else {
            continue;
        };
        out.push((normalize_host(key), creds));
    }
    Ok(out)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Token auth: fetch a bearer token from `realm`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter.
        service: Option<String>,
    },
    /// HTTP basic auth.
    Basic,
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, after)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, remaining) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(k, v.to_string());
        s = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn creds_flag_forms() {
        let (h, c) = parse_creds_flag("alice:s3cr:et").expect("plain");
        assert_eq!(h, None);
        assert_eq!(c.username, "alice");
        assert_eq!(c.password(), "s3cr:et");
        let (h, c) = parse_creds_flag("127.0.0.1:5000=bob:pw").expect("host");
        assert_eq!(h.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(c.username, "bob");
        assert!(parse_creds_flag("nocolon").is_err());
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn reads_docker_config() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("config.json");
        fs_err::write(
            &p,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"reg.example:5000":{"username":"a","password":"b"},"broken":{}}}"#,
        )
        .expect("write");
        let got = read_auth_file(&p).expect("read");
        assert!(got.contains(&("docker.io".to_string(), Credentials::new("u", "p"))));
        assert!(got.contains(&("reg.example:5000".to_string(), Credentials::new("a", "b"))));
        fs_err::write(&p, r#"{"auths":{"x":{"auth":"!!!"}}}"#).expect("write");
        let err = read_auth_file(&p).expect_err("bad base64");
        assert!(err.to_string().contains("not base64"), "{err}");
    }
}
