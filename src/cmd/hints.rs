//! `hint:` lines: what to do next after a failure, printed under the `error:` line. The facts
//! come from the library's error types ([`airlock::registry::diagnose`]), never from message
//! text; only the advice is worded here.

use airlock::bundle::parts::{PartError, PartsError};
use airlock::registry::diagnose::{diagnose, Diagnosis};
use airlock::registry::RegistryError;

/// Hints for an error chain, most specific first; empty when there is nothing to add.
pub fn for_error(err: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<RegistryError>() {
            if let RegistryError::CaFile { .. } = e {
                out.push("--ca-file takes a PEM file of one or more CA certificates".into());
            }
            if let Some(d) = diagnose(e) {
                out.push(hint(&d));
            }
        }
        if let Some(e) = cause.downcast_ref::<PartsError>() {
            let parts = match e {
                PartsError::BadParts { .. } => true,
                PartsError::Part(p) => !matches!(p, PartError::WholeMismatch { .. }),
                _ => false,
            };
            if parts {
                out.push(
                    "carry the parts named above again (from the bundle's other copy, or split it again); the rest are good".into(),
                );
            }
        }
    }
    out.dedup();
    out
}

/// The advice for one diagnosis.
pub fn hint(d: &Diagnosis) -> String {
    match d {
        Diagnosis::PlainHttpRegistry { host } => format!(
            "`{host}` answered in plain HTTP, not TLS; if it really has no TLS (a lab), pass --insecure-registry {host}"
        ),
        Diagnosis::TlsRegistry { host } => format!(
            "`{host}` speaks TLS; drop --insecure-registry {host} (and pass --ca-file if its CA is private)"
        ),
        Diagnosis::UnknownCa { host } => format!(
            "the certificate of `{host}` is signed by a CA this machine does not trust; pass --ca-file CA.pem (the site's CA certificate)"
        ),
        Diagnosis::BadCertificate { host } => format!(
            "the certificate of `{host}` does not fit (another name, expired, or not for a server); check the registry's certificate"
        ),
        Diagnosis::ClientCertificateRequired { host } => format!(
            "`{host}` requires a client certificate (mutual TLS); put `client.cert` and `client.key` (and the registry's `ca.crt`) in /etc/docker/certs.d/{host}/ or /etc/containers/certs.d/{host}/, or in DIR/{host}/ with --certs-dir DIR"
        ),
        Diagnosis::Refused { host } => format!(
            "nothing listens on `{host}`; check the host and port, and that the registry is running"
        ),
        Diagnosis::NameNotResolved { host } => format!(
            "the name `{host}` does not resolve here; check its spelling, or use the registry's IP address"
        ),
        Diagnosis::Unauthorized { registry } => format!(
            "credentials for `{registry}` were looked for in --creds, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json and $DOCKER_CONFIG/config.json (or ~/.docker/config.json); pass --creds {registry}=USER:PASSWORD, or log in with `docker login`/`skopeo login`"
        ),
        Diagnosis::NotFound { url } => format!(
            "the registry has no such repository or tag ({url}); check the name, or list what it holds with `airlock receipt`"
        ),
    }
}
