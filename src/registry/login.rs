//! `login` and `logout`: check credentials against a registry's `/v2/` with the full auth
//! flow, then keep them where docker and oras do (the helper docker's `config.json` names for
//! the host, else its `auths`), so every other tool that reads that file sees them too.

use std::path::PathBuf;

use super::auth::{AuthError, CredentialStore, Credentials};
use super::auth_file::{self, AuthFile};
use super::cred_helper::Helper;
use super::{Registry, RegistryError, RegistryOptions};

/// Where credentials were stored or erased.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// A credential helper, by name (`docker-credential-NAME`).
    Helper(String),
    /// The `auths` of docker's config file.
    File(PathBuf),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Helper(name) => write!(f, "credential helper `docker-credential-{name}`"),
            Place::File(path) => write!(f, "`{}`", path.display()),
        }
    }
}

/// Why `login` or `logout` failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Neither `$DOCKER_CONFIG` nor `$HOME` is set: nowhere to keep credentials.
    #[error("nowhere to store credentials: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir,
    /// A user name docker would misread (`<token>` means an identity token; `:` splits
    /// `user:password` in `auths`).
    #[error(
        "user name `{0}` cannot be stored (it must not be empty, contain `:` or be `<token>`)"
    )]
    BadUsername(String),
    /// The registry refused the credentials, or could not be reached.
    #[error("{registry}: credentials not accepted, nothing stored: {source}")]
    Verify {
        /// Registry host.
        registry: String,
        /// What the registry said.
        #[source]
        source: Box<RegistryError>,
    },
    /// Reading or writing the config file, or running the helper, failed.
    #[error(transparent)]
    Store(#[from] AuthError),
}

/// The config file `login` and `logout` use, and what it says about `host`.
fn config_for(host: &str) -> Result<(PathBuf, Option<Helper>), LoginError> {
    let path = auth_file::docker_config_path().ok_or(LoginError::NoConfigDir)?;
    let timeout = super::auth::helper_timeout_from_env()?;
    let helper = AuthFile::read(&path)?
        .and_then(|f| f.helper_for(host).map(|name| Helper::new(name, timeout)));
    Ok((path, helper))
}

/// Checks `creds` against `host` (`GET /v2/`, following a token challenge with them), then
/// stores them: with the helper docker's config names for the host (`store`), else in its
/// `auths` (0600, written atomically, every other key kept). Nothing is stored unless the
/// registry accepted them.
pub async fn login(
    mut options: RegistryOptions,
    host: &str,
    creds: Credentials,
) -> Result<Place, LoginError> {
    if creds.username.is_empty()
        || creds.username.contains(':')
        || creds.identity_token_value().is_some()
    {
        return Err(LoginError::BadUsername(crate::untrusted::shorten(
            &creds.username,
        )));
    }
    let (path, helper) = config_for(host)?;
    let mut store = CredentialStore::empty();
    store.insert(host, creds.clone());
    options.credentials = store;
    let verify = |source: RegistryError| LoginError::Verify {
        registry: host.to_string(),
        source: Box::new(source),
    };
    let registry = Registry::new(options).map_err(verify)?;
    registry.check_login(host).await.map_err(verify)?;
    match helper {
        Some(helper) => {
            helper.store(host, &creds).map_err(AuthError::from)?;
            Ok(Place::Helper(helper.name().to_string()))
        }
        None => {
            auth_file::store(&path, host, &creds)?;
            Ok(Place::File(path))
        }
    }
}

/// Forgets `host`: the helper docker's config names for it (`erase`), else its `auths` entry.
/// Returns where it was, or `None` when nothing was stored for it.
pub fn logout(host: &str) -> Result<Option<Place>, LoginError> {
    let (path, helper) = config_for(host)?;
    if let Some(helper) = helper {
        let had = helper.erase(host).map_err(AuthError::from)?;
        return Ok(had.then(|| Place::Helper(helper.name().to_string())));
    }
    Ok(auth_file::erase(&path, host)?.then_some(Place::File(path)))
}
