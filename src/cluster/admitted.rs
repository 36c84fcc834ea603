//! What import admitted, as source reference → target reference by digest: read from the
//! ledger (every admitted entry, in log order) or from one import's `--output json` report.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ledger::{find, LedgerError, Query};
use crate::oci::Digest;
use crate::reference::Reference;

/// Largest import report read, in bytes.
const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;

/// Why the admitted images could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmittedError {
    /// The ledger could not be read.
    #[error("ledger `{path}`")]
    Ledger {
        /// The ledger directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: LedgerError,
    },
    /// The ledger's entries do not match its signed checkpoint.
    #[error("ledger `{path}` does not match its signed checkpoint ({reason}); run `airlock ledger verify`")]
    Unverified {
        /// The ledger directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The report file could not be read.
    #[error("import report `{path}`: {reason}")]
    Report {
        /// The report file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A recorded reference does not parse.
    #[error("{origin}: recorded reference `{reference}` is not an image reference: {source}")]
    BadReference {
        /// Ledger entry or report that holds it.
        origin: String,
        /// The reference.
        reference: String,
        /// The parser's complaint.
        #[source]
        source: crate::reference::ReferenceError,
    },
    /// Nothing admitted to map.
    #[error("{0}: no admitted image to map")]
    Empty(String),
}

/// One admitted image (or chart, attachment…): where it came from and where it lives now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmittedImage {
    /// Source reference as collected (normalized; tag when it had one).
    pub source: Reference,
    /// Target reference: registry host and repository inside it; tag when one was set.
    pub target: Reference,
    /// The digest pushed and tagged.
    pub digest: Digest,
    /// Where this was recorded (`ledger entry 3`, `report.json`).
    pub origin: String,
}

/// Everything admitted, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// The images, in ledger order (a later entry for the same tag wins).
    pub images: Vec<AdmittedImage>,
}

#[derive(Deserialize)]
struct ReportFile {
    artifacts: Vec<ReportArtifact>,
}

#[derive(Deserialize)]
struct ReportArtifact {
    kind: String,
    source: String,
    target: String,
    tag: Option<String>,
    digest: Digest,
    derived_digest: Option<Digest>,
    #[serde(default)]
    skipped: Option<String>,
}

/// Whether an artifact's source may be an image reference: a file's is a path or URL that
/// can look like one (`certs/ca.pem`).
fn is_reference_kind(kind: &str) -> bool {
    !matches!(kind, "file")
}

impl Admitted {
    /// Reads every admitted entry of the ledger in `dir`, refusing a ledger whose entries do
    /// not match its signed checkpoint.
    pub fn from_ledger(dir: &Path) -> Result<Self, AdmittedError> {
        let found = find(dir, &Query::All).map_err(|source| AdmittedError::Ledger {
            path: dir.to_path_buf(),
            source,
        })?;
        if let Some(reason) = found.unverified_reason {
            return Err(AdmittedError::Unverified {
                path: dir.to_path_buf(),
                reason,
            });
        }
        let mut images = Vec::new();
        for m in found
            .matches
            .iter()
            .filter(|m| matches!(m.result, crate::ledger::Outcome::Admitted))
        {
            let origin = format!("ledger entry {}", m.index);
            for a in &m.artifacts {
                let Some(target) = &a.target_ref else {
                    continue;
                };
                if !is_reference_kind(&a.kind) {
                    continue;
                }
                // HTTP charts (a URL), scan evidence ("SBOM of …") and a carried database
                // have no source image name: nothing pulls them by it.
                let Ok(source) = parse(&origin, &a.source_ref) else {
                    continue;
                };
                let mut target = parse(&origin, target)?;
                let Some(digest) = target.digest.take() else {
                    continue;
                };
                images.push(AdmittedImage {
                    source: Reference {
                        digest: None,
                        ..source
                    },
                    target,
                    digest,
                    origin: origin.clone(),
                });
            }
        }
        if images.is_empty() {
            return Err(AdmittedError::Empty(format!("ledger `{}`", dir.display())));
        }
        Ok(Self { images })
    }

    /// Reads an import's `--output json` report.
    pub fn from_report(path: &Path) -> Result<Self, AdmittedError> {
        let bad = |reason: String| AdmittedError::Report {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = crate::io::read_capped(path, MAX_REPORT_BYTES, "import report")
            .map_err(|e| bad(e.to_string()))?;
        let report: ReportFile = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not an import report: {e}")))?;
        let origin = path.display().to_string();
        let mut images = Vec::new();
        for a in report
            .artifacts
            .iter()
            .filter(|a| a.skipped.is_none() && is_reference_kind(&a.kind))
        {
            let Ok(source) = parse(&origin, &a.source) else {
                continue; // files, HTTP charts, scan evidence: no source image name
            };
            let target = parse(&origin, &a.target)?;
            images.push(AdmittedImage {
                source: Reference {
                    digest: None,
                    ..source
                },
                target: Reference {
                    tag: a.tag.as_deref().and_then(|t| t.parse().ok()),
                    digest: None,
                    ..target
                },
                digest: a.derived_digest.clone().unwrap_or_else(|| a.digest.clone()),
                origin: origin.clone(),
            });
        }
        if images.is_empty() {
            return Err(AdmittedError::Empty(format!("import report `{origin}`")));
        }
        Ok(Self { images })
    }

    /// Replaces the recorded target registry (and prefix) `from` by `to` in every target: the
    /// name the cluster pulls from when it differs from the one import pushed to.
    pub fn with_registry(mut self, from: &str, to: &str) -> Self {
        let from = from.trim_end_matches('/');
        let to = to.trim_end_matches('/');
        for img in &mut self.images {
            let name = img.target.name();
            let rest = if name == from {
                Some(String::new())
            } else {
                name.strip_prefix(&format!("{from}/"))
                    .map(|r| format!("/{r}"))
            };
            if let Some(rest) = rest {
                let new_name = format!("{to}{rest}");
                let parsed = new_name
                    .split_once('/')
                    .and_then(|(host, repo)| Some((host, repo.parse().ok()?)));
                if let Some((host, repo)) = parsed {
                    img.target.registry = host.to_string();
                    img.target.repository = repo;
                }
            }
        }
        self
    }
}

fn parse(origin: &str, reference: &str) -> Result<Reference, AdmittedError> {
    reference
        .parse::<Reference>()
        .map_err(|source| AdmittedError::BadReference {
            origin: origin.to_string(),
            reference: reference.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_maps_images_and_leaves_out_files_evidence_and_skipped_images() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let report = serde_json::json!({"bundle": "b", "artifacts": [
            {"kind": "image", "source": "registry.example.com/app:1.0", "target": "reg.internal/m/app",
             "tag": "1.0", "digest": d('a'), "derived_digest": null},
            {"kind": "file", "source": "certs/ca.pem", "target": "reg.internal/m/files/ca.pem",
             "tag": "latest", "digest": d('b'), "derived_digest": null},
            {"kind": "referrer", "source": "SBOM of registry.example.com/app:1.0 linux/amd64",
             "target": "reg.internal/m/app", "tag": null, "digest": d('c'), "derived_digest": null},
            {"kind": "image", "source": "registry.example.com/bad:1", "target": "reg.internal/m/bad",
             "tag": "1", "digest": d('e'), "derived_digest": null, "skipped": "untrusted"},
        ]});
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("report.json");
        fs_err::write(&path, report.to_string()).expect("write");
        let a = Admitted::from_report(&path).expect("report");
        assert_eq!(a.images.len(), 1, "{a:?}");
        assert_eq!(a.images[0].source.name(), "registry.example.com/app");
        assert_eq!(a.images[0].target.to_string(), "reg.internal/m/app:1.0");
        assert_eq!(a.images[0].digest.as_str(), d('a'));
        fs_err::write(&path, b"{\"artifacts\": []}").expect("write");
        assert!(matches!(
            Admitted::from_report(&path),
            Err(AdmittedError::Empty(_))
        ));
    }
}
