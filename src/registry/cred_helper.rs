//! Docker credential helpers: `docker-credential-NAME get|store|erase`, the protocol of
//! docker/docker-credential-helpers, run exactly as docker runs them (the server address on
//! stdin, JSON `{"ServerURL","Username","Secret"}` on stdout).
//!
//! A helper is an executable named by a config file and found on `PATH`: it runs with the
//! user's rights. So its name is checked (no path separators), it gets nothing but the host
//! (or, for `store`, the credentials being stored), its output is capped and parsed strictly,
//! and it has a time limit; nothing it prints is echoed back except its own error line,
//! escaped and shortened.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::auth::{Credentials, IDENTITY_TOKEN_USER};

/// The most a helper may print on stdout: credentials are a few kilobytes at most.
pub const MAX_HELPER_OUTPUT: usize = 64 * 1024;
/// The longest a helper may take by default (a keychain prompt can take a while).
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// What helpers print when they hold nothing for the host (docker-credential-helpers'
/// `credentials.NewErrCredentialsNotFound`): anonymous, not an error.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// How a helper failed. The error always names the helper and the host.
#[derive(Debug, thiserror::Error)]
#[error("credential helper `docker-credential-{helper}` ({action} {host}): {kind}")]
pub struct HelperError {
    /// The helper's name (the part after `docker-credential-`).
    pub helper: String,
    /// `get`, `store` or `erase`.
    pub action: &'static str,
    /// The registry host asked about.
    pub host: String,
    /// What went wrong.
    pub kind: HelperErrorKind,
}

/// What went wrong running a helper.
#[derive(Debug, thiserror::Error)]
pub enum HelperErrorKind {
    /// A name that would make a path: config files must not point at arbitrary executables.
    #[error("invalid helper name (letters, digits, `.`, `_` and `-` only)")]
    BadName,
    /// Not on `PATH`, or not executable.
    #[error("cannot run it: {0}")]
    Spawn(std::io::Error),
    /// Exited non-zero; the helper's own message, escaped and shortened.
    #[error("exited with {status}: {message}")]
    Failed {
        /// Exit status.
        status: String,
        /// Its first line of output.
        message: String,
    },
    /// Still running at the time limit: killed.
    #[error("no answer within {0:?}; killed")]
    TimedOut(Duration),
    /// More output than any credentials need: killed.
    #[error("printed more than {MAX_HELPER_OUTPUT} bytes; refused")]
    TooMuchOutput,
    /// Output that is not the credentials JSON (not shown: it may hold a secret).
    #[error("printed something that is not credentials JSON ({0})")]
    Garbage(String),
    /// Reading its output failed.
    #[error("reading its output: {0}")]
    Io(std::io::Error),
}

/// A helper named by a config file (`credsStore` or `credHelpers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    name: String,
    timeout: Duration,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperCreds {
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

impl Helper {
    /// A helper by name (`osxkeychain`, `pass`, `ecr-login`…) with a time limit per call.
    pub fn new(name: &str, timeout: Duration) -> Helper {
        Helper {
            name: name.to_string(),
            timeout,
        }
    }

    /// The helper's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server address docker hands helpers for a host: Docker Hub keeps its legacy URL.
    pub fn server_address(host: &str) -> String {
        if host == crate::reference::DOCKER_HUB {
            "https://index.docker.io/v1/".to_string()
        } else {
            host.to_string()
        }
    }

    fn error(&self, action: &'static str, host: &str, kind: HelperErrorKind) -> HelperError {
        HelperError {
            helper: self.name.clone(),
            action,
            host: host.to_string(),
            kind,
        }
    }

    /// `get`: the credentials the helper holds for `host`, `None` when it holds none.
    pub fn get(&self, host: &str) -> Result<Option<Credentials>, HelperError> {
        let server = Self::server_address(host);
        let out = self.run("get", host, server.as_bytes())?;
        let out = match out {
            Ok(stdout) => stdout,
            Err(failure) if failure.message == NOT_FOUND => return Ok(None),
            Err(failure) => return Err(self.error("get", host, failure.into_kind())),
        };
        let creds: HelperCreds = serde_json::from_slice(&out).map_err(|e| {
            // serde's message says where, not what: no secret leaks through it.
            self.error("get", host, HelperErrorKind::Garbage(e.to_string()))
        })?;
        if creds.username.is_empty() && creds.secret.is_empty() {
            return Ok(None);
        }
        if creds.secret.is_empty() {
            return Err(self.error("get", host, HelperErrorKind::Garbage("no `Secret`".into())));
        }
        Ok(Some(if creds.username == IDENTITY_TOKEN_USER {
            Credentials::identity_token(creds.secret)
        } else {
            Credentials::new(creds.username, creds.secret)
        }))
    }

    /// `store`: hands the helper credentials for `host`.
    pub fn store(&self, host: &str, creds: &Credentials) -> Result<(), HelperError> {
        let body = serde_json::json!({
            "ServerURL": Self::server_address(host),
            "Username": creds.username,
            "Secret": creds.password(),
        })
        .to_string();
        match self.run("store", host, body.as_bytes())? {
            Ok(_) => Ok(()),
            Err(failure) => Err(self.error("store", host, failure.into_kind())),
        }
    }

    /// `erase`: forgets `host`. Returns whether the helper held anything.
    pub fn erase(&self, host: &str) -> Result<bool, HelperError> {
        let server = Self::server_address(host);
        match self.run("erase", host, server.as_bytes())? {
            Ok(_) => Ok(true),
            Err(failure) if failure.message == NOT_FOUND => Ok(false),
            Err(failure) => Err(self.error("erase", host, failure.into_kind())),
        }
    }

    /// Runs `docker-credential-NAME ACTION` with `input` on stdin, within the time limit and
    /// the output cap. `Ok(Err(_))` is a helper that exited non-zero (its message kept, since
    /// "not found" is an answer, not an error).
    fn run(
        &self,
        action: &'static str,
        host: &str,
        input: &[u8],
    ) -> Result<Result<Vec<u8>, Failure>, HelperError> {
        let err = |kind| self.error(action, host, kind);
        if !valid_name(&self.name) {
            return Err(err(HelperErrorKind::BadName));
        }
        let deadline = Instant::now() + self.timeout;
        let mut child = Command::new(format!("docker-credential-{}", self.name))
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(HelperErrorKind::Spawn(e)))?;
        // Each pipe has its own thread, so a helper that fills one while we wait on another
        // cannot stall us; a hung helper is killed and its threads left to end with its pipes.
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(err(HelperErrorKind::Io(std::io::Error::other(
                "no pipes to the helper",
            ))));
        };
        let input = input.to_vec();
        std::thread::spawn(move || {
            // A helper that exits without reading closes the pipe: its exit status tells.
            let _ = stdin.write_all(&input);
        });
        let out_rx = capped_reader(stdout);
        let err_rx = capped_reader(stderr);
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let stdout = match out_rx.recv_timeout(remaining()) {
            Ok(Ok(b)) if b.len() > MAX_HELPER_OUTPUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(HelperErrorKind::TooMuchOutput));
            }
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(HelperErrorKind::Io(e)));
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(HelperErrorKind::TimedOut(self.timeout)));
            }
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if remaining().is_zero() => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err(HelperErrorKind::TimedOut(self.timeout)));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(err(HelperErrorKind::Io(e))),
            }
        };
        if status.success() {
            return Ok(Ok(stdout));
        }
        // Helpers print their error on stdout (docker reads it there); stderr as a fallback.
        let stderr = err_rx
            .recv_timeout(Duration::from_millis(100))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let text = if stdout.iter().any(|b| !b.is_ascii_whitespace()) {
            stdout
        } else {
            stderr
        };
        let text = String::from_utf8_lossy(&text);
        let first = text.trim().lines().next().unwrap_or("").trim();
        Ok(Err(Failure {
            status: status.to_string(),
            message: crate::untrusted::shorten(first),
        }))
    }
}

/// A helper that exited non-zero, with the first line it printed.
struct Failure {
    status: String,
    message: String,
}

impl Failure {
    fn into_kind(self) -> HelperErrorKind {
        HelperErrorKind::Failed {
            status: self.status,
            message: if self.message.is_empty() {
                "(no message)".into()
            } else {
                self.message
            },
        }
    }
}

/// Reads a pipe to its end on a thread, keeping at most one byte over the cap (so an
/// overflow shows) and draining the rest so the writer never blocks on us.
fn capped_reader<R: Read + Send + 'static>(
    pipe: R,
) -> mpsc::Receiver<Result<Vec<u8>, std::io::Error>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut limited = pipe.take(MAX_HELPER_OUTPUT as u64 + 1);
        let res = limited.read_to_end(&mut buf).map(|_| buf);
        let over = res.as_ref().is_ok_and(|b| b.len() > MAX_HELPER_OUTPUT);
        let _ = tx.send(res);
        if !over {
            let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
        }
    });
    rx
}

/// Helper names as docker-credential-helpers ships them (`osxkeychain`, `ecr-login`,
/// `gcloud`…): never a path.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_make_paths() {
        assert!(valid_name("osxkeychain"));
        assert!(valid_name("ecr-login"));
        assert!(!valid_name(""));
        assert!(!valid_name("../../bin/sh"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("a b"));
    }

    #[test]
    fn docker_hub_keeps_its_legacy_address() {
        assert_eq!(
            Helper::server_address("docker.io"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(Helper::server_address("reg:5000"), "reg:5000");
    }

    #[test]
    fn refuses_a_path_as_helper_name() {
        let err = Helper::new("../x", DEFAULT_HELPER_TIMEOUT)
            .get("reg:5000")
            .expect_err("bad name");
        assert!(matches!(err.kind, HelperErrorKind::BadName), "{err}");
        assert!(err.to_string().contains("docker-credential-../x"), "{err}");
    }
}
