//! `--scanner trivy`: an installed Trivy run offline as the scanner, its JSON kept as the
//! evidence. airlock never downloads Trivy or its database; a missing binary is an error, never
//! a silent pass.

use std::path::PathBuf;

/// Why Trivy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrivyError {
    /// No `trivy` on `PATH`.
    #[error("--scanner trivy: no `trivy` executable on PATH ({path}); install Trivy with its offline database, or use the built-in scanner (--scanner airlock)")]
    NotFound {
        /// The `PATH` searched.
        path: String,
    },
}

/// Finds the `trivy` executable on `PATH`.
pub fn find() -> Result<PathBuf, TrivyError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("trivy");
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(TrivyError::NotFound {
        path: path.to_string_lossy().into_owned(),
    })
}

#[cfg(unix)]
fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &std::path::Path) -> bool {
    p.is_file()
}
