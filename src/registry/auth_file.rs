//! The credentials files users already have: docker's `config.json` and containers'
//! `auth.json` (the same format), where they are looked up, how they are read, and how
//! `login`/`logout` change one without touching anything else in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::auth::{normalize_host, AuthError, Credentials};

/// One parsed credentials file.
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// `auths`: credentials by host (exact host keys before `host/namespace` keys).
    auths: Vec<(String, Credentials)>,
    /// `credHelpers`: a helper per host.
    cred_helpers: HashMap<String, String>,
    /// `credsStore`: the helper for every host without its own.
    creds_store: Option<String>,
}

/// The credentials files, in the order podman and skopeo (containers/image) read them:
/// `$REGISTRY_AUTH_FILE` if set, else `$XDG_RUNTIME_DIR/containers/auth.json`; then
/// `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config`); then
/// `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`).
pub fn lookup_order() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut files = Vec::new();
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        files.push(p);
    } else if let Some(p) = env("XDG_RUNTIME_DIR") {
        files.push(p.join("containers/auth.json"));
    }
    if let Some(p) = env("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config"))) {
        files.push(p.join("containers/auth.json"));
    }
    files.extend(docker_config_path());
    files
}

/// Docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. This is
/// where `login` stores and `logout` erases, as docker and oras do.
pub fn docker_config_path() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("DOCKER_CONFIG")
        .map(|d| d.join("config.json"))
        .or_else(|| env("HOME").map(|h| h.join(".docker/config.json")))
}

fn bad(path: &Path, why: String) -> AuthError {
    AuthError::BadAuthFile {
        path: path.to_path_buf(),
        why,
    }
}

/// Reads a file as a JSON object (capped); a missing file is `None`.
fn read_doc(path: &Path) -> Result<Option<serde_json::Map<String, serde_json::Value>>, AuthError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = crate::io::read_text_capped(path, crate::io::MAX_AUTH_FILE_BYTES, "auth file")
        .map_err(|e| bad(path, e.to_string()))?;
    if text.trim().is_empty() {
        return Ok(Some(serde_json::Map::new()));
    }
    match serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))? {
        serde_json::Value::Object(m) => Ok(Some(m)),
        _ => Err(bad(path, "not a JSON object".into())),
    }
}

fn helper_name(path: &Path, field: &str, v: &serde_json::Value) -> Result<String, AuthError> {
    let name = v
        .as_str()
        .ok_or_else(|| bad(path, format!("`{field}` is not a string")))?;
    if !super::cred_helper::valid_name(name) {
        return Err(bad(
            path,
            format!(
                "`{field}` names `{}`, not a credential helper name",
                crate::untrusted::shorten(name)
            ),
        ));
    }
    Ok(name.to_string())
}

impl AuthFile {
    /// Reads `auths`, `credHelpers` and `credsStore` of a file; `None` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<AuthFile>, AuthError> {
        let Some(doc) = read_doc(path)? else {
            return Ok(None);
        };
        let mut file = AuthFile {
            path: path.to_path_buf(),
            ..Default::default()
        };
        if let Some(store) = doc.get("credsStore").filter(|v| v.as_str() != Some("")) {
            file.creds_store = Some(helper_name(path, "credsStore", store)?);
        }
        if let Some(helpers) = doc.get("credHelpers") {
            let helpers = helpers
                .as_object()
                .ok_or_else(|| bad(path, "`credHelpers` is not an object".into()))?;
            for (host, name) in helpers {
                let name = helper_name(path, &format!("credHelpers.{host}"), name)?;
                file.cred_helpers.insert(normalize_host(host), name);
            }
        }
        let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
            return Ok(Some(file));
        };
        // Exact host keys first so that a `host/namespace` key never shadows them.
        let mut keys: Vec<&String> = auths.keys().collect();
        keys.sort_by_key(|k| !is_host_key(k));
        for key in keys {
            if let Some(creds) = entry_credentials(path, key, &auths[key.as_str()])? {
                file.auths.push((normalize_host(key), creds));
            }
        }
        Ok(Some(file))
    }

    /// The helper this file names for `host`: its `credHelpers` entry, else `credsStore`.
    pub fn helper_for(&self, host: &str) -> Option<&str> {
        self.cred_helpers
            .get(host)
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }

    /// The `auths` entry for `host`, if it holds credentials.
    pub fn credentials_for(&self, host: &str) -> Option<&Credentials> {
        self.auths.iter().find(|(h, _)| h == host).map(|(_, c)| c)
    }

    /// Every `(host, credentials)` pair of `auths`.
    pub fn entries(&self) -> &[(String, Credentials)] {
        &self.auths
    }
}

/// Whether an `auths` key names a whole registry (`host`, `https://host`,
/// `https://index.docker.io/v1/`) rather than a namespace in it (`host/org`).
fn is_host_key(key: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k
        .strip_suffix("/v1/")
        .or(k.strip_suffix("/v2/"))
        .unwrap_or(k);
    !k.trim_end_matches('/').contains('/')
}

/// The credentials of one `auths` entry: `auth` (base64 `user:password`), `username` and
/// `password`, or `identitytoken`; `None` for an entry docker leaves empty next to a helper.
fn entry_credentials(
    path: &Path,
    key: &str,
    entry: &serde_json::Value,
) -> Result<Option<Credentials>, AuthError> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credentials::identity_token(token)));
    }
    if let Some(auth) = field("auth") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(path, format!("`auths.{key}.auth` is not base64: {e}")))?;
        let raw = String::from_utf8(raw)
            .map_err(|_| bad(path, format!("`auths.{key}.auth` is not UTF-8")))?;
        let (u, p) = raw
            .split_once(':')
            .ok_or_else(|| bad(path, format!("`auths.{key}.auth` is not user:password")))?;
        return Ok(Some(Credentials::new(u, p)));
    }
    Ok(match (field("username"), field("password")) {
        (Some(u), Some(p)) => Some(Credentials::new(u, p)),
        _ => None,
    })
}

/// The `auths` key docker writes for a host.
fn auths_key(host: &str) -> String {
    super::cred_helper::Helper::server_address(host)
}

/// Rewrites the file with `edit` applied to its `auths` object, every other key kept
/// (created 0600 with its directory when missing; replaced atomically, never half-written).
fn edit_auths(
    path: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<bool, AuthError> {
    let mut doc = read_doc(path)?.unwrap_or_default();
    let auths = doc
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let Some(auths) = auths.as_object_mut() else {
        return Err(bad(path, "`auths` is not an object".into()));
    };
    if !edit(auths) {
        return Ok(false);
    }
    let mut text = serde_json::to_string_pretty(&serde_json::Value::Object(doc))
        .map_err(|e| bad(path, e.to_string()))?;
    text.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| bad(path, format!("creating its directory: {e}")))?;
    }
    crate::io::write_atomically(path, text.as_bytes()).map_err(|e| bad(path, e.to_string()))?;
    Ok(true)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Stores credentials for `host` in the file's `auths` (replacing any entry for the same
/// host however it was spelled), as `docker login` does without a helper.
pub fn store(path: &Path, host: &str, creds: &Credentials) -> Result<(), AuthError> {
    let entry = if let Some(token) = creds.identity_token_value() {
        serde_json::json!({ "identitytoken": token })
    } else {
        let raw = format!("{}:{}", creds.username, creds.password());
        serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) })
    };
    edit_auths(path, |auths| {
        auths.retain(|k, _| !same_host(k, host));
        auths.insert(auths_key(host), entry);
        true
    })?;
    Ok(())
}

/// Removes the `auths` entry for `host`. Returns whether there was one; a missing file is
/// left missing.
pub fn erase(path: &Path, host: &str) -> Result<bool, AuthError> {
    if !path.exists() {
        return Ok(false);
    }
    edit_auths(path, |auths| {
        let before = auths.len();
        auths.retain(|k, _| !same_host(k, host));
        auths.len() != before
    })
}

fn same_host(key: &str, host: &str) -> bool {
    is_host_key(key) && normalize_host(key) == host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("config.json");
        fs_err::write(
            &p,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"reg.example:5000":{"username":"a","password":"b"},"tok.example":{"identitytoken":"rt"},"broken":{}},"credsStore":"pass","credHelpers":{"gcr.io":"gcloud"}}"#,
        )
        .expect("write");
        let got = AuthFile::read(&p).expect("read").expect("exists");
        assert_eq!(
            got.credentials_for("docker.io"),
            Some(&Credentials::new("u", "p"))
        );
        assert_eq!(
            got.credentials_for("reg.example:5000"),
            Some(&Credentials::new("a", "b"))
        );
        assert_eq!(
            got.credentials_for("tok.example")
                .and_then(|c| c.identity_token_value()),
            Some("rt")
        );
        assert_eq!(got.credentials_for("broken"), None);
        assert_eq!(got.helper_for("gcr.io"), Some("gcloud"));
        assert_eq!(got.helper_for("other"), Some("pass"));
        fs_err::write(&p, r#"{"auths":{"x":{"auth":"!!!"}}}"#).expect("write");
        let err = AuthFile::read(&p).expect_err("bad base64");
        assert!(err.to_string().contains("not base64"), "{err}");
        fs_err::write(&p, r#"{"credsStore":"../../bin/sh"}"#).expect("write");
        let err = AuthFile::read(&p).expect_err("path as helper");
        assert!(
            err.to_string().contains("not a credential helper name"),
            "{err}"
        );
        assert!(AuthFile::read(&dir.path().join("none.json"))
            .expect("missing is fine")
            .is_none());
    }

    #[test]
    fn namespace_keys_never_shadow_host_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("auth.json");
        fs_err::write(
            &p,
            r#"{"auths":{"reg.example/org":{"auth":"bnM6MQ=="},"reg.example":{"auth":"aG9zdDoy"}}}"#,
        )
        .expect("write");
        let got = AuthFile::read(&p).expect("read").expect("exists");
        assert_eq!(
            got.credentials_for("reg.example"),
            Some(&Credentials::new("host", "2"))
        );
    }

    #[test]
    fn store_and_erase_keep_every_other_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("docker/config.json");
        store(&p, "reg:5000", &Credentials::new("a", "b")).expect("store in a new file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs_err::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs_err::write(
            &p,
            r#"{"auths":{"https://reg:5000":{"auth":"b2xkOm9sZA=="},"other:1":{"auth":"bzpw"}},"psFormat":"table {{.ID}}","proxies":{"default":{"httpProxy":"http://p:3128"}},"credHelpers":{}}"#,
        )
        .expect("write");
        store(&p, "reg:5000", &Credentials::new("a", "b")).expect("store");
        let v: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(&p).expect("read")).expect("json");
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert_eq!(v["proxies"]["default"]["httpProxy"], "http://p:3128");
        assert_eq!(v["credHelpers"], serde_json::json!({}));
        assert_eq!(v["auths"]["other:1"]["auth"], "bzpw");
        assert_eq!(v["auths"]["reg:5000"]["auth"], "YTpi");
        assert!(v["auths"].get("https://reg:5000").is_none());
        assert!(erase(&p, "reg:5000").expect("erase"));
        assert!(!erase(&p, "reg:5000").expect("erase again"));
        let v: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(&p).expect("read")).expect("json");
        assert!(v["auths"].get("reg:5000").is_none());
        assert_eq!(v["auths"]["other:1"]["auth"], "bzpw");
        assert_eq!(v["psFormat"], "table {{.ID}}");
    }
}
