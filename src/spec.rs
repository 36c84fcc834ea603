//! The spec (`bundles/*.yaml`): what a release engineer wants carried, by tag or digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::oci::{Digest, Platform};
use crate::reference::Reference;

/// The largest spec file accepted.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

/// A spec as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Bundle name (used for the bundle and in reports).
    pub name: String,
    /// Container images.
    #[serde(default)]
    pub images: Vec<ImageSpec>,
    /// Helm charts.
    #[serde(default)]
    pub charts: Vec<ChartSpec>,
    /// Which signatures images must carry, by repository pattern (checked at collect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::trust::policy::TrustPolicy>,
    /// The vulnerability gate collect applies to every image (see `docs/SCAN.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<crate::scan::policy::ScanPolicy>,
    /// Plain files (local path or URL, pinned by sha256), carried as OCI artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::files::FileSpec>,
}

/// One image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Image reference, by tag and/or digest.
    #[serde(rename = "ref")]
    pub reference: Reference,
    /// Platforms to carry from an index; empty means all.
    #[serde(default)]
    pub platforms: Vec<Platform>,
}

/// One Helm chart entry: where the chart comes from, and how `lock` renders it to find the
/// images it deploys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "ChartEntry", into = "ChartEntry")]
pub struct ChartSpec {
    /// Where the chart comes from.
    pub source: ChartSource,
    /// Values files, relative to the spec, as `helm -f` (later files win).
    pub values: Vec<PathBuf>,
    /// Values set on top of the files, as a spec-side `helm --set` with typed YAML values.
    pub set: BTreeMap<String, serde_yaml::Value>,
    /// Whether `lock` renders the chart and pins the images it deploys.
    pub images: ChartImages,
    /// The Kubernetes version the templates see (`.Capabilities.KubeVersion`).
    pub kube_version: Option<String>,
}

/// Where a chart comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartSource {
    /// `ref: oci://host/repo:version[@digest]`
    Oci {
        /// The `oci://` reference as written.
        reference: String,
    },
    /// `repo:`, `name:`, `version:` (and optionally `sha256:`): an HTTP chart repository.
    Http {
        /// Chart repository URL (the directory holding `index.yaml`).
        repo: String,
        /// Chart name.
        name: String,
        /// Exact chart version.
        version: String,
        /// Optional pin: sha256 of the `.tgz`.
        sha256: Option<String>,
    },
}

/// A chart entry as written: one flat map, so a misspelt key is named (an untagged enum would
/// only say that no variant matched) and the render fields are declared once.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChartEntry {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    set: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    images: ChartImages,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kube_version: Option<String>,
}

impl TryFrom<ChartEntry> for ChartSpec {
    type Error = String;

    fn try_from(e: ChartEntry) -> Result<Self, String> {
        let source = match (e.reference, e.repo) {
            (Some(_), Some(_)) => {
                return Err("a chart entry takes `ref:` (OCI) or `repo:` (HTTP), not both".into())
            }
            (None, None) => {
                return Err(
                    "a chart entry needs `ref: oci://…` or `repo:`, `name:` and `version:`".into(),
                )
            }
            (Some(reference), None) => {
                let extra: Vec<&str> = [
                    ("name", e.name.is_some()),
                    ("version", e.version.is_some()),
                    ("sha256", e.sha256.is_some()),
                ]
                .iter()
                .filter(|(_, set)| *set)
                .map(|(k, _)| *k)
                .collect();
                if !extra.is_empty() {
                    return Err(format!(
                        "chart `{reference}`: `{}` belongs to `repo:` charts; an OCI chart is \
                         named and pinned by its `ref`",
                        extra.join("`, `")
                    ));
                }
                ChartSource::Oci { reference }
            }
            (None, Some(repo)) => {
                let (Some(name), Some(version)) = (e.name, e.version) else {
                    return Err(format!(
                        "chart from `{repo}` needs both `name:` and `version:`"
                    ));
                };
                ChartSource::Http {
                    repo,
                    name,
                    version,
                    sha256: e.sha256,
                }
            }
        };
        Ok(ChartSpec {
            source,
            values: e.values,
            set: e.set,
            images: e.images,
            kube_version: e.kube_version,
        })
    }
}

impl From<ChartSpec> for ChartEntry {
    fn from(c: ChartSpec) -> Self {
        let (reference, repo, name, version, sha256) = match c.source {
            ChartSource::Oci { reference } => (Some(reference), None, None, None, None),
            ChartSource::Http {
                repo,
                name,
                version,
                sha256,
            } => (None, Some(repo), Some(name), Some(version), sha256),
        };
        ChartEntry {
            reference,
            repo,
            name,
            version,
            sha256,
            values: c.values,
            set: c.set,
            images: c.images,
            kube_version: c.kube_version,
        }
    }
}

/// `images:` of a chart entry.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChartImages {
    /// Render the chart at `lock` and pin every image it deploys (the default): nothing a chart
    /// needs is left behind unnoticed.
    #[default]
    Discover,
    /// Carry the chart only; its images are the spec's business.
    None,
}

/// How a chart entry asks to be rendered.
#[derive(Debug, Clone, Copy)]
pub struct ChartRender<'a> {
    /// Values files, relative to the spec.
    pub values: &'a [PathBuf],
    /// Typed `set:` values.
    pub set: &'a BTreeMap<String, serde_yaml::Value>,
    /// Discover or not.
    pub images: ChartImages,
    /// `.Capabilities.KubeVersion`, when not the engine's default.
    pub kube_version: Option<&'a str>,
}

impl ChartSpec {
    /// The chart as written, for messages: `oci://…` or `REPO NAME:VERSION`.
    pub fn label(&self) -> String {
        match &self.source {
            ChartSource::Oci { reference } => reference.clone(),
            ChartSource::Http {
                repo,
                name,
                version,
                ..
            } => format!("{repo} {name}:{version}"),
        }
    }

    /// How this chart is rendered to find its images.
    pub fn render(&self) -> ChartRender<'_> {
        ChartRender {
            values: &self.values,
            set: &self.set,
            images: self.images,
            kube_version: self.kube_version.as_deref(),
        }
    }
}

/// Why a spec is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Cannot read the file, or it is over [`MAX_SPEC_BYTES`].
    #[error(transparent)]
    Read(#[from] crate::io::ReadError),
    /// YAML or schema error (serde_yaml's message carries line and column).
    #[error("spec `{path}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with its location.
        message: String,
    },
}

impl Spec {
    /// Parses spec text. `path` is only for messages.
    pub fn parse(text: &str, path: &str) -> Result<Spec, SpecError> {
        let invalid = |message: String| SpecError::Invalid {
            path: path.to_string(),
            message,
        };
        let spec: Spec = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if spec.name.is_empty()
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(format!(
                "name `{}` must be non-empty and use only letters, digits, `.`, `_`, `-`",
                spec.name
            )));
        }
        if let Some(t) = &spec.trust {
            t.validate().map_err(|e| invalid(format!("trust: {e}")))?;
        }
        if let Some(s) = &spec.scan {
            s.validate().map_err(|e| invalid(format!("scan: {e}")))?;
        }
        if spec.images.is_empty() && spec.charts.is_empty() && spec.files.is_empty() {
            return Err(invalid("lists no images, no charts and no files".into()));
        }
        let mut names = std::collections::HashSet::new();
        for f in &spec.files {
            let l = crate::files::lock_file(f).map_err(|e| invalid(e.to_string()))?;
            if !names.insert((l.name.clone(), l.version.clone())) {
                return Err(invalid(format!(
                    "file `{}`: another file is also named `{}:{}`",
                    l.source, l.name, l.version
                )));
            }
        }
        for c in &spec.charts {
            match &c.source {
                ChartSource::Oci { reference } => {
                    parse_oci_chart_ref(reference)
                        .map_err(|e| invalid(format!("chart `{reference}`: {e}")))?;
                }
                ChartSource::Http {
                    repo,
                    name,
                    version,
                    sha256,
                } => {
                    let u = url::Url::parse(repo)
                        .map_err(|e| invalid(format!("chart repo `{repo}`: {e}")))?;
                    if u.scheme() != "http" && u.scheme() != "https" {
                        return Err(invalid(format!(
                            "chart repo `{repo}` must be an http(s) URL"
                        )));
                    }
                    if name.is_empty() || version.is_empty() || name.contains('/') {
                        return Err(invalid(format!(
                            "chart `{name}` in `{repo}` needs a plain name and a version"
                        )));
                    }
                    if let Some(s) = sha256 {
                        Digest::from_hex(s)
                            .map_err(|e| invalid(format!("chart `{name}` sha256: {e}")))?;
                    }
                }
            }
        }
        Ok(spec)
    }

    /// Reads and parses a spec file.
    pub fn load(path: &Path) -> Result<(Spec, Digest), SpecError> {
        let p = path.display().to_string();
        let bytes = crate::io::read_capped(path, MAX_SPEC_BYTES, "spec")?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| SpecError::Invalid {
            path: p.clone(),
            message: "not UTF-8".into(),
        })?;
        Ok((Spec::parse(&text, &p)?, Digest::of(&bytes)))
    }
}

/// Parses `oci://host/repo:version[@digest]` into a reference.
pub fn parse_oci_chart_ref(s: &str) -> Result<Reference, String> {
    let rest = s
        .strip_prefix("oci://")
        .ok_or_else(|| "OCI chart references start with oci://".to_string())?;
    let r: Reference = rest
        .parse()
        .map_err(|e: crate::reference::ReferenceError| e.to_string())?;
    if r.tag.is_none() && r.digest.is_none() {
        return Err("needs a version tag or a digest".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_spec() {
        let s = Spec::parse(
            "name: platform\nimages:\n  - ref: 127.0.0.1:5000/app:1.0\n    platforms: [linux/amd64, linux/arm64/v8]\ncharts:\n  - ref: oci://127.0.0.1:5000/charts/web:1.2.3\n  - repo: http://127.0.0.1:8080/charts\n    name: podinfo\n    version: 6.4.0\n",
            "t.yaml",
        )
        .expect("parse");
        assert_eq!(s.images[0].platforms.len(), 2);
        assert_eq!(s.charts.len(), 2);
        assert!(matches!(s.charts[1].source, ChartSource::Http { .. }));
    }

    #[test]
    fn scan_section_parses_every_key() {
        let s = Spec::parse(
            "name: x\nimages:\n  - ref: a\nscan:\n  fail_on: high\n  ignore_unfixed: true\n  max_db_age: 72h\n  allow:\n    - {id: CVE-2025-26519, package: musl, expires: 2026-12-31, reason: unused}\n  vex: [vex/a.json]\n  db: vuln.db\n  unknown_os: warn\n",
            "t.yaml",
        )
        .expect("parse");
        let p = s.scan.expect("scan");
        assert_eq!(p.fail_on, Some(crate::scan::osv::Severity::High));
        assert!(p.ignore_unfixed);
        assert_eq!(
            p.max_db_age().expect("age").map(|d| d.as_secs()),
            Some(72 * 3600)
        );
        assert_eq!(p.allow[0].package.as_deref(), Some("musl"));
        assert_eq!(p.vex, [std::path::PathBuf::from("vex/a.json")]);
        assert_eq!(p.db.as_deref(), Some(Path::new("vuln.db")));
        assert_eq!(p.unknown_os, crate::scan::policy::UnknownOs::Warn);
        // What the lock stores reads back the same.
        let again: crate::scan::policy::ScanPolicy =
            serde_json::from_slice(&serde_json::to_vec(&p).expect("json")).expect("back");
        assert_eq!(again, p);
    }

    #[test]
    fn rejects_bad_specs_with_location() {
        let cases = [
            ("name: x\nimages:\n  - ref: UPPER/x\n", "lowercase"),
            (
                "name: x\nimages:\n  - ref: a\n    platform: [linux/amd64]\n",
                "unknown field",
            ),
            (
                "name: x\nimages:\n  - ref: a\n    platforms: [linux]\n",
                "not a platform",
            ),
            ("name: x\n", "no images"),
            ("name: 'a b'\nimages:\n  - ref: a\n", "name"),
            ("name: x\ncharts:\n  - ref: 127.0.0.1:5000/c:1\n", "oci://"),
            (
                "name: x\ncharts:\n  - ref: oci://h/c:1\n    valuse: [v.yaml]\n",
                "unknown field `valuse`",
            ),
            (
                "name: x\ncharts:\n  - ref: oci://h/c:1\n    repo: http://h\n",
                "not both",
            ),
            (
                "name: x\ncharts:\n  - ref: oci://h/c:1\n    version: '1'\n",
                "`version` belongs to `repo:` charts",
            ),
            (
                "name: x\ncharts:\n  - repo: http://h\n    name: c\n",
                "needs both `name:` and `version:`",
            ),
            ("name: x\ncharts:\n  - images: none\n", "needs `ref: oci://…`"),
            (
                "name: x\ncharts:\n  - repo: ftp://x\n    name: a\n    version: '1'\n",
                "http(s)",
            ),
            ("name: x\nimages: {", "t.yaml"),
            (
                "name: x\nimages:\n  - ref: a\ntrust:\n  rules:\n    - pattern: a/*\n      keys: [k.pub]\n      require: 0\n",
                "trust",
            ),
            ("name: x\nimages:\n  - ref: a\ntrust:\n  rulez: []\n", "unknown field"),
            ("name: x\nimages:\n  - ref: a\nscan:\n  fail_on: urgent\n", "fail_on `urgent`"),
            ("name: x\nimages:\n  - ref: a\nscan:\n  max_db_age: soon\n", "scan: scan policy: max_db_age `soon`"),
            (
                "name: x\nimages:\n  - ref: a\nscan:\n  allow: [{id: CVE-1, expires: tomorrow, reason: r}]\n",
                "allow entry CVE-1: expires `tomorrow`",
            ),
            ("name: x\nimages:\n  - ref: a\nscan:\n  unknown_os: maybe\n", "unknown variant `maybe`"),
            ("name: x\nimages:\n  - ref: a\nscan:\n  fail_onn: high\n", "unknown field `fail_onn`"),
            ("name: x\nimages:\n  - ref: a\nscan:\n  allow: [{id: CVE-1, expires: 2026-01-01}]\n", "missing field `reason`"),
        ];
        for (text, want) in cases {
            let err = Spec::parse(text, "t.yaml").expect_err(text).to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.starts_with("spec `t.yaml`"), "{err}");
        }
    }
}
