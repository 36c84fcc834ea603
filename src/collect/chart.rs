//! Helm charts from HTTP chart repositories: find the `.tgz` in `index.yaml`, fetch it pinned by
//! sha256, and wrap it as an OCI Helm chart exactly as `helm push` lays it out.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::oci::digest::Hasher;
use crate::oci::{media, Digest};

/// The largest `index.yaml` accepted.
pub const MAX_INDEX_BYTES: usize = 64 * 1024 * 1024;
/// The largest chart archive airlock downloads (Helm itself refuses charts that decompress
/// past 100 MiB).
pub const MAX_CHART_BYTES: u64 = 256 * 1024 * 1024;
/// How long fetching `index.yaml` may take.
const INDEX_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);
/// The slowest download accepted (bytes per second over [`STALL_WINDOW`]).
const MIN_RATE: u64 = 16 * 1024;
/// The window [`MIN_RATE`] is measured over.
const STALL_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);
/// The largest `Chart.yaml` read from a chart archive.
pub const MAX_CHART_YAML: u64 = 1024 * 1024;

/// Errors fetching or packaging a chart.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// HTTP failure.
    #[error("GET {url}: {why}")]
    Http {
        /// URL.
        url: String,
        /// What happened.
        why: String,
    },
    /// `index.yaml` is unusable or lacks the chart.
    #[error("chart repository {repo}: {why}")]
    Index {
        /// Repository URL.
        repo: String,
        /// What is wrong.
        why: String,
    },
    /// The `.tgz` does not match its pin.
    #[error("chart {url}: sha256 mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// URL.
        url: String,
        /// Expected.
        expected: Digest,
        /// Actual.
        actual: Digest,
    },
    /// The archive is not a chart.
    #[error("chart archive {what}: {why}")]
    BadArchive {
        /// Which archive.
        what: String,
        /// What is wrong.
        why: String,
    },
    /// Local I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Finds `name`/`version` in a repository's `index.yaml`; returns the absolute `.tgz` URL and the
/// digest the index claims, if any.
pub async fn resolve(
    http: &reqwest::Client,
    repo: &str,
    name: &str,
    version: &str,
) -> Result<(String, Option<Digest>), ChartError> {
    let base = if repo.ends_with('/') {
        repo.to_string()
    } else {
        format!("{repo}/")
    };
    let index_url = format!("{base}index.yaml");
    let resp = http
        .get(&index_url)
        .timeout(INDEX_DEADLINE)
        .send()
        .await
        .map_err(|e| ChartError::Http {
            url: index_url.clone(),
            why: e.to_string(),
        })?;
    if !resp.status().is_success() {
        return Err(ChartError::Http {
            url: index_url,
            why: resp.status().to_string(),
        });
    }
    let body = crate::registry::http::read_capped(
        resp,
        MAX_INDEX_BYTES,
        &reqwest::Method::GET,
        &index_url,
        "index.yaml",
    )
    .await
    .map_err(|e| ChartError::Index {
        repo: repo.into(),
        why: e.to_string(),
    })?;
    let index: serde_yaml::Value =
        serde_yaml::from_slice(&body).map_err(|e| ChartError::Index {
            repo: repo.into(),
            why: format!("index.yaml: {e}"),
        })?;
    let versions = index
        .get("entries")
        .and_then(|e| e.get(name))
        .and_then(|v| v.as_sequence())
        .ok_or_else(|| ChartError::Index {
            repo: repo.into(),
            why: format!("no chart named `{name}`"),
        })?;
    let entry = versions
        .iter()
        .find(|v| v.get("version").and_then(|x| x.as_str()) == Some(version))
        .ok_or_else(|| ChartError::Index {
            repo: repo.into(),
            why: format!("chart `{name}` has no version `{version}`"),
        })?;
    let url = entry
        .get("urls")
        .and_then(|u| u.as_sequence())
        .and_then(|u| u.first())
        .and_then(|u| u.as_str())
        .ok_or_else(|| ChartError::Index {
            repo: repo.into(),
            why: format!("chart `{name}` {version} has no URL"),
        })?;
    let abs = url::Url::parse(&base)
        .and_then(|b| b.join(url))
        .map_err(|e| ChartError::Index {
            repo: repo.into(),
            why: format!("bad chart URL `{url}`: {e}"),
        })?;
    let digest = entry
        .get("digest")
        .and_then(|d| d.as_str())
        .and_then(|d| Digest::from_hex(d).ok());
    Ok((abs.to_string(), digest))
}

/// Downloads a URL to `dest`, hashing while writing; renames into place only when the sha256
/// matches `expected` (when given). Returns the digest and size. More than `max` bytes, or a
/// transfer slower than the floor rate, is refused and the partial file removed.
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    dest: &Path,
    expected: Option<&Digest>,
    max: u64,
) -> Result<(Digest, u64), ChartError> {
    let partial = dest.with_extension("partial");
    let io_err = |source| ChartError::Io {
        path: partial.display().to_string(),
        source,
    };
    let resp = http.get(url).send().await.map_err(|e| ChartError::Http {
        url: url.into(),
        why: e.to_string(),
    })?;
    if !resp.status().is_success() {
        return Err(ChartError::Http {
            url: url.into(),
            why: resp.status().to_string(),
        });
    }
    let mut f = tokio::fs::File::create(&partial).await.map_err(io_err)?;
    let mut hasher = Hasher::new();
    let mut floor = crate::registry::http::RateFloor::new(MIN_RATE, STALL_WINDOW);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let refused = |why: String| ChartError::Http {
            url: url.into(),
            why,
        };
        let chunk = chunk.map_err(|e| refused(e.to_string()));
        let chunk = match chunk {
            Ok(c) if hasher.len() + c.len() as u64 > max => {
                Err(refused(format!("larger than {max} bytes; refused")))
            }
            Ok(c) => match floor.advance(c.len() as u64) {
                Ok(()) => Ok(c),
                Err((bytes, secs)) => Err(refused(format!(
                    "stalled: {bytes} bytes in {} s, under the floor of {MIN_RATE} bytes/s",
                    secs.as_secs()
                ))),
            },
            Err(e) => Err(e),
        };
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                drop(f);
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        hasher.update(&chunk);
        f.write_all(&chunk).await.map_err(io_err)?;
    }
    f.flush().await.map_err(io_err)?;
    drop(f);
    let size = hasher.len();
    let actual = hasher.finish();
    if let Some(e) = expected {
        if e != &actual {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(ChartError::Mismatch {
                url: url.into(),
                expected: e.clone(),
                actual,
            });
        }
    }
    tokio::fs::rename(&partial, dest)
        .await
        .map_err(|source| ChartError::Io {
            path: dest.display().to_string(),
            source,
        })?;
    Ok((actual, size))
}

/// Reads `<name>/Chart.yaml` from a chart `.tgz` and returns it as JSON (keys sorted), the
/// content of the Helm config blob.
pub fn chart_config(tgz: &Path, name: &str, version: &str) -> Result<Vec<u8>, ChartError> {
    let what = tgz.display().to_string();
    let bad = |why: String| ChartError::BadArchive {
        what: what.clone(),
        why,
    };
    let f = fs_err::File::open(tgz).map_err(|source| ChartError::Io {
        path: what.clone(),
        source,
    })?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let want = format!("{name}/Chart.yaml");
    let entries = crate::tarstream::entries(&mut ar, crate::tarstream::Extensions::Apply)
        .map_err(|e| bad(e.to_string()))?;
    for e in entries {
        let e = e.map_err(|e| bad(e.to_string()))?;
        let path = e.path_lossy();
        let mut e = e.inner;
        if path != want {
            continue;
        }
        let mut text = String::new();
        (&mut e)
            .take(MAX_CHART_YAML)
            .read_to_string(&mut text)
            .map_err(|e| bad(e.to_string()))?;
        let meta: serde_json::Value =
            serde_yaml::from_str(&text).map_err(|e| bad(format!("Chart.yaml: {e}")))?;
        let got_name = meta.get("name").and_then(|v| v.as_str()).unwrap_or("");
        let got_version = meta.get("version").and_then(|v| v.as_str()).unwrap_or("");
        if got_name != name || got_version != version {
            return Err(bad(format!(
                "Chart.yaml says {got_name} {got_version}, expected {name} {version}"
            )));
        }
        return serde_json::to_vec(&meta).map_err(|e| bad(e.to_string()));
    }
    Err(bad(format!("no `{want}` inside")))
}

/// The OCI manifest `helm push` would write for a chart: config + one chart layer, with the
/// title and version annotations. Deterministic: no creation time.
pub fn chart_manifest(
    config: &Bytes,
    chart_digest: &Digest,
    chart_size: u64,
    name: &str,
    version: &str,
) -> Bytes {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": media::HELM_CONFIG,
            "digest": Digest::of(config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": media::HELM_CHART,
            "digest": chart_digest,
            "size": chart_size,
        }],
        "annotations": {
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
        }
    });
    Bytes::from(serde_json::to_vec(&m).unwrap_or_default())
}
