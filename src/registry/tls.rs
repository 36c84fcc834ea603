//! TLS material per registry: the CA files every client trusts (`--ca-file`), and the
//! `certs.d` directories docker and podman read (`DIR/HOST[:PORT]/*.crt` as extra CAs for that
//! host, `client.cert` + `client.key` as its client certificate for mutual TLS).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RegistryError;

/// Where docker and podman keep per-registry certificates, in the order read.
pub const SYSTEM_CERTS_DIRS: &[&str] = &["/etc/docker/certs.d", "/etc/containers/certs.d"];

/// The `certs.d` directories to use when no `--certs-dir` is given: `$AIRLOCK_CERTS_DIR`
/// (colon-separated) if set, else [`SYSTEM_CERTS_DIRS`].
pub fn default_certs_dirs() -> Vec<PathBuf> {
    match std::env::var_os("AIRLOCK_CERTS_DIR").filter(|v| !v.is_empty()) {
        Some(v) => std::env::split_paths(&v).collect(),
        None => SYSTEM_CERTS_DIRS.iter().map(PathBuf::from).collect(),
    }
}

fn bad(path: &Path, why: impl std::fmt::Display) -> RegistryError {
    RegistryError::CaFile {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// An error with its causes (reqwest's own says only "builder error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// The common client settings plus every `--ca-file`.
pub fn base_builder(ca_files: &[PathBuf]) -> Result<reqwest::ClientBuilder, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(16)
        .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
        .redirect(super::redirect_policy());
    for path in ca_files {
        builder = add_roots(builder, path)?;
    }
    Ok(builder)
}

fn add_roots(
    mut builder: reqwest::ClientBuilder,
    path: &Path,
) -> Result<reqwest::ClientBuilder, RegistryError> {
    let pem = crate::io::read_capped(path, crate::io::MAX_CA_FILE_BYTES, "CA file")
        .map_err(|e| bad(path, e))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no PEM certificate in the file"));
    }
    for c in certs {
        builder = builder.add_root_certificate(c);
    }
    Ok(builder)
}

/// TLS material for one registry only (from the configuration file): CA files, and
/// directories laid out like a `certs.d/HOST[:PORT]` subdirectory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostTls {
    /// CA files (PEM) trusted for this registry.
    pub ca_files: Vec<PathBuf>,
    /// Directories holding `*.crt` CAs and `client.cert` + `client.key`.
    pub dirs: Vec<PathBuf>,
}

/// The client for one registry when a `certs.d` directory has a subdirectory for it
/// (`HOST:PORT`, as docker names it) or `own` gives it TLS material, `None` when neither does.
/// Every `*.crt` is a CA; `client.cert` with `client.key` is the client certificate (one
/// without the other is an error, not a silent fallback to no client certificate).
pub fn host_client(
    ca_files: &[PathBuf],
    certs_dirs: &[PathBuf],
    own: Option<&HostTls>,
    host: &str,
) -> Result<Option<reqwest::Client>, RegistryError> {
    host_builder(ca_files, certs_dirs, own, host)?
        .map(|(b, first)| b.build().map_err(|e| bad(&first, chain(&e))))
        .transpose()
}

/// A one-off HTTP/1.1 client with the TLS settings `host` gets: an HTTP/2 connection that the
/// server ends during the handshake reports no cause to the request, HTTP/1.1 does (see
/// `Registry::probe_client_certificate`).
pub fn probe_client(
    ca_files: &[PathBuf],
    certs_dirs: &[PathBuf],
    own: Option<&HostTls>,
    host: &str,
) -> Result<reqwest::Client, RegistryError> {
    let builder = match host_builder(ca_files, certs_dirs, own, host)? {
        Some((b, _)) => b,
        None => base_builder(ca_files)?,
    };
    builder
        .http1_only()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| bad(Path::new(host), e))
}

/// The client settings for `host` from its `certs.d` subdirectories and its own TLS material
/// (and the first file or directory, to name in errors), `None` when it has none.
fn host_builder(
    ca_files: &[PathBuf],
    certs_dirs: &[PathBuf],
    own: Option<&HostTls>,
    host: &str,
) -> Result<Option<(reqwest::ClientBuilder, PathBuf)>, RegistryError> {
    let mut dirs: Vec<PathBuf> = certs_dirs
        .iter()
        .map(|d| d.join(host))
        .filter(|d| d.is_dir())
        .collect();
    let own_cas = own.map(|o| o.ca_files.as_slice()).unwrap_or_default();
    if let Some(o) = own {
        for d in &o.dirs {
            if !d.is_dir() {
                return Err(bad(d, "not a directory"));
            }
        }
        dirs.extend(o.dirs.iter().cloned());
    }
    if dirs.is_empty() && own_cas.is_empty() {
        return Ok(None);
    }
    let mut builder = base_builder(ca_files)?;
    for path in own_cas {
        builder = add_roots(builder, path)?;
    }
    let mut identity = false;
    for dir in &dirs {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| bad(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        {
            builder = add_roots(builder, path)?;
        }
        let (cert, key) = (dir.join("client.cert"), dir.join("client.key"));
        match (cert.is_file(), key.is_file()) {
            (false, false) => {}
            (true, false) => return Err(bad(&cert, "no `client.key` beside it")),
            (false, true) => return Err(bad(&key, "no `client.cert` beside it")),
            (true, true) if identity => {}
            (true, true) => {
                let read = |p: &Path| {
                    crate::io::read_capped(p, crate::io::MAX_CA_FILE_BYTES, "client certificate")
                        .map_err(|e| bad(p, e))
                };
                let mut pem = read(&cert)?;
                pem.push(b'\n');
                pem.extend(read(&key)?);
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| bad(&cert, format!("with `client.key`: {e}")))?;
                builder = builder.identity(id);
                identity = true;
            }
        }
    }
    let first = dirs
        .first()
        .or(own_cas.first())
        .cloned()
        .unwrap_or_default();
    Ok(Some((builder, first)))
}
