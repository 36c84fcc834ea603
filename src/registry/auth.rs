//! Credentials: where users already keep them (`--creds`, containers `auth.json`, docker
//! `config.json` and the credential helpers those name), looked up per registry host, and the
//! registry auth challenge (`WWW-Authenticate`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;

use super::auth_file::{self, AuthFile};
use super::cred_helper::{Helper, HelperError, DEFAULT_HELPER_TIMEOUT};

/// The user name docker's credential helpers and `config.json` use to say "the secret is an
/// identity token" (an OAuth2 refresh token), not a password.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

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

    /// An identity token (OAuth2 refresh token), as `docker login` stores for registries
    /// that issue one: it is traded at the token realm, never sent as a password.
    pub fn identity_token(token: impl Into<String>) -> Self {
        Credentials::new(IDENTITY_TOKEN_USER, token)
    }

    /// The identity token, when these credentials are one.
    pub fn identity_token_value(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.password.as_str())
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
    /// A credential helper failed, hung, or printed something unusable.
    #[error(transparent)]
    Helper(#[from] HelperError),
    /// The time limit for credential helpers is not a duration.
    #[error("AIRLOCK_CREDENTIAL_HELPER_TIMEOUT: `{0}` is not a duration (`30s`, `2m`)")]
    BadHelperTimeout(String),
    /// The configuration's `auth_file` is not there.
    #[error("credentials file `{}` (auth_file in the configuration) does not exist", .0.display())]
    MissingAuthFile(PathBuf),
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

/// Where credentials come from, per registry host, first answer wins: `--creds`; then each
/// credentials file in [`auth_file::lookup_order`]: the helper it names for the host
/// (`credHelpers`, else `credsStore`), then its `auths` entry. A helper that holds nothing for
/// the host passes to the next source; one that fails is an error. Helpers run only when a
/// registry asks for credentials, once per host.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    flags: HashMap<String, Credentials>,
    /// Credentials files for one registry each (`[registries."HOST"] auth_file` in the
    /// configuration), asked before the shared ones and only for their host.
    host_files: HashMap<String, AuthFile>,
    files: Vec<AuthFile>,
    helper_timeout: Duration,
    resolved: Arc<Mutex<HashMap<String, Option<Credentials>>>>,
}

impl Default for CredentialStore {
    fn default() -> Self {
        CredentialStore {
            flags: HashMap::new(),
            host_files: HashMap::new(),
            files: Vec::new(),
            helper_timeout: DEFAULT_HELPER_TIMEOUT,
            resolved: Arc::default(),
        }
    }
}

impl CredentialStore {
    /// An empty store (anonymous everywhere).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads the credentials files (a broken one fails here, before any request) and the
    /// helper time limit (`$AIRLOCK_CREDENTIAL_HELPER_TIMEOUT`, default 30 s), then applies
    /// `--creds` values on top. `default_host` receives a `--creds` without `HOST=`.
    pub fn load(flags: &[String], default_host: Option<&str>) -> Result<Self, AuthError> {
        Self::load_with(&[], flags, default_host)
    }

    /// [`CredentialStore::load`], reading `first` (the configuration's `auth_file`) before the
    /// usual files; a named file that is missing is an error, not anonymous access.
    pub fn load_with(
        first: &[PathBuf],
        flags: &[String],
        default_host: Option<&str>,
    ) -> Result<Self, AuthError> {
        let mut store = CredentialStore {
            helper_timeout: helper_timeout_from_env()?,
            ..Default::default()
        };
        for path in first {
            match AuthFile::read(path)? {
                Some(file) => store.files.push(file),
                None => return Err(AuthError::MissingAuthFile(path.clone())),
            }
        }
        for path in auth_file::lookup_order() {
            if let Some(file) = AuthFile::read(&path)? {
                store.files.push(file);
            }
        }
        for flag in flags {
            let (host, creds) = parse_creds_flag(flag)?;
            match host.or_else(|| default_host.map(str::to_string)) {
                Some(h) => {
                    store.flags.insert(h, creds);
                }
                None => return Err(AuthError::BadCredsFlag),
            }
        }
        Ok(store)
    }

    /// Reads `path` as the credentials file of `host` alone: asked for that host before the
    /// shared files, never for another.
    pub fn with_host_file(mut self, host: &str, path: &Path) -> Result<Self, AuthError> {
        match AuthFile::read(path)? {
            Some(file) => {
                self.host_files.insert(normalize_host(host), file);
                Ok(self)
            }
            None => Err(AuthError::MissingAuthFile(path.to_path_buf())),
        }
    }

    /// Adds or replaces credentials for a host (as `--creds HOST=…` does).
    pub fn insert(&mut self, host: &str, creds: Credentials) {
        self.flags.insert(normalize_host(host), creds);
    }

    /// Credentials for a registry host, running a credential helper the first time a host
    /// needs one (it blocks: call it off the async threads). `None` is anonymous.
    pub fn resolve(&self, host: &str) -> Result<Option<Credentials>, AuthError> {
        if let Some(c) = self.flags.get(host) {
            return Ok(Some(c.clone()));
        }
        if let Some(known) = self.resolved.lock().ok().and_then(|m| m.get(host).cloned()) {
            return Ok(known);
        }
        let found = self.lookup_files(host)?;
        if let Ok(mut m) = self.resolved.lock() {
            m.insert(host.to_string(), found.clone());
        }
        Ok(found)
    }

    /// Credentials already known for a host (`--creds`, or resolved before), without running
    /// anything.
    pub fn known(&self, host: &str) -> Option<Credentials> {
        self.flags.get(host).cloned().or_else(|| {
            self.resolved
                .lock()
                .ok()
                .and_then(|m| m.get(host).cloned().flatten())
        })
    }

    fn lookup_files(&self, host: &str) -> Result<Option<Credentials>, AuthError> {
        let own = self.host_files.get(host).into_iter();
        for file in own.chain(&self.files) {
            if let Some(name) = file.helper_for(host) {
                if let Some(c) = Helper::new(name, self.helper_timeout).get(host)? {
                    return Ok(Some(c));
                }
            }
            if let Some(c) = file.credentials_for(host) {
                return Ok(Some(c.clone()));
            }
        }
        Ok(None)
    }
}

/// How long a credential helper may take: `$AIRLOCK_CREDENTIAL_HELPER_TIMEOUT`, default 30 s.
pub fn helper_timeout_from_env() -> Result<Duration, AuthError> {
    match std::env::var_os("AIRLOCK_CREDENTIAL_HELPER_TIMEOUT") {
        None => Ok(DEFAULT_HELPER_TIMEOUT),
        Some(t) => {
            let t = t.to_string_lossy();
            humantime::parse_duration(t.trim())
                .map_err(|_| AuthError::BadHelperTimeout(crate::untrusted::shorten(&t)))
        }
    }
}

/// The request for a bearer token for `scope` (space-separated) at `realm`. An identity token
/// is an OAuth2 refresh token: traded by `POST` with `grant_type=refresh_token` (the
/// distribution token spec's "OAuth2" section), as docker does, never sent as a password.
/// Other credentials go as basic auth on a `GET` (the token spec); none asks anonymously.
pub fn token_request(
    client: &reqwest::Client,
    realm: url::Url,
    service: Option<&str>,
    scope: &str,
    creds: Option<&Credentials>,
) -> reqwest::RequestBuilder {
    let scopes = scope.split(' ').filter(|s| !s.is_empty());
    if let Some(refresh) = creds.and_then(Credentials::identity_token_value) {
        let joined = scopes.collect::<Vec<_>>().join(" ");
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", "airlock"),
            ("refresh_token", refresh),
        ];
        form.extend(service.map(|s| ("service", s)));
        if !joined.is_empty() {
            form.push(("scope", joined.as_str()));
        }
        return client.post(realm).form(&form);
    }
    let mut query: Vec<(&str, &str)> = service.map(|s| ("service", s)).into_iter().collect();
    query.extend(scopes.map(|s| ("scope", s)));
    let req = client.get(realm).query(&query);
    match creds {
        Some(c) => req.basic_auth(&c.username, Some(c.password())),
        None => req,
    }
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
}
