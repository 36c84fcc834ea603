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

/// Why a Trivy run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrivyRunError {
    /// Writing the OCI layout Trivy reads.
    #[error("{image}: writing the OCI layout for trivy at `{path}`: {source}")]
    Layout {
        /// The image.
        image: String,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Trivy could not be started or failed.
    #[error("{image}: trivy failed{}: {stderr}", status.map(|s| format!(" (exit {s})")).unwrap_or_default())]
    Failed {
        /// The image.
        image: String,
        /// Its exit status.
        status: Option<i32>,
        /// The last line of what it said.
        stderr: String,
    },
    /// Trivy's output is not JSON.
    #[error("{image}: trivy's output is not JSON: {why}")]
    BadOutput {
        /// The image.
        image: String,
        /// The parse error.
        why: String,
    },
}

/// Writes an OCI image layout of one image (manifest, config, layers hard-linked or copied from
/// `blob_path`) at `dir`, for `trivy image --input`.
pub fn write_layout(
    dir: &std::path::Path,
    target: &super::image::Target,
    blob_path: impl Fn(&crate::oci::Digest) -> PathBuf,
) -> Result<(), TrivyRunError> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        let image = target.name.clone();
        move |source| TrivyRunError::Layout {
            image,
            path,
            source,
        }
    };
    let blobs = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).map_err(io(&blobs))?;
    let write = |p: PathBuf, b: &[u8]| fs_err::write(&p, b).map_err(io(&p));
    write(dir.join("oci-layout"), crate::bundle::LAYOUT_CONTENT)?;
    let (bytes, media_type) = &target.manifest;
    write(blobs.join(target.digest.hex()), bytes)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::oci::media::OCI_INDEX,
        "manifests": [{"mediaType": media_type, "digest": target.digest, "size": bytes.len()}],
    });
    write(
        dir.join("index.json"),
        &serde_json::to_vec(&index).unwrap_or_default(),
    )?;
    for d in target.config.iter().chain(target.layers.iter()) {
        let from = blob_path(&d.digest);
        let to = blobs.join(d.digest.hex());
        if to.exists() {
            continue;
        }
        if fs_err::hard_link(&from, &to).is_err() {
            fs_err::copy(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}

/// Runs `trivy image --input LAYOUT --offline-scan --skip-db-update --skip-version-check
/// --disable-telemetry --format json --list-all-pkgs --quiet` and returns its JSON report.
/// The last two flags matter: without them Trivy 0.76 reaches for the network (update check,
/// telemetry) even with `--offline-scan`.
pub fn run(
    binary: &std::path::Path,
    layout: &std::path::Path,
    image: &str,
) -> Result<serde_json::Value, TrivyRunError> {
    let out = std::process::Command::new(binary)
        .args(["image", "--input"])
        .arg(layout)
        .args([
            "--offline-scan",
            "--skip-db-update",
            "--skip-version-check",
            "--disable-telemetry",
            "--format",
            "json",
            "--list-all-pkgs",
            "--quiet",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| TrivyRunError::Failed {
            image: image.to_string(),
            status: None,
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(TrivyRunError::Failed {
            image: image.to_string(),
            status: out.status.code(),
            stderr: stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(no output)")
                .to_string(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| TrivyRunError::BadOutput {
        image: image.to_string(),
        why: e.to_string(),
    })
}
