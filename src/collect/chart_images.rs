//! The images a spec's charts deploy: `lock` fetches each chart it pins, renders it with the
//! built-in Helm engine (`crate::chart`) with the entry's `values:`/`set:`, and pins every image
//! found like a spec image. A chart that fails to render, or renders an `image` field that is
//! not a reference, stops `lock` (nothing a chart needs may be left behind unnoticed) unless the
//! entry says `images: none`.

use std::path::Path;

use crate::chart::{chart_images, ChartInput, RenderError, RenderOptions};
use crate::oci::{media, Digest, ManifestKind, ParsedManifest};
use crate::progress::NoProgress;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::spec::{ChartImages, ChartRender};

use super::{repo_of, CollectError};

/// Why a chart's images could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ChartImagesError {
    /// The chart does not render with these values (the error names the template).
    #[error("does not render: {0}")]
    Render(#[from] RenderError),
    /// A rendered `image` field is not a reference.
    #[error(
        "{template}: {kind}/{name} container {container}: image {raw:?} is not a reference \
         ({reason}); fix the values, or set `images: none` on the chart and list its images \
         in the spec"
    )]
    Unresolved {
        /// The template.
        template: String,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The container or field.
        container: String,
        /// The string as rendered.
        raw: String,
        /// Why it is not a reference.
        reason: String,
    },
    /// A `values:` file that cannot be read.
    #[error("values file: {0}")]
    Values(#[from] crate::io::ReadError),
    /// An OCI chart whose manifest has no chart layer, or one too large.
    #[error("{0}")]
    Layer(String),
}

/// The images one chart deploys, normalised the way container runtimes do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartImageSet {
    /// The chart as the spec wrote it.
    pub chart: String,
    /// Its images, sorted and unique.
    pub images: Vec<Reference>,
}

/// Renders a chart archive with a spec entry's values and returns the images it deploys.
/// `spec_dir` resolves the entry's `values:` paths.
pub fn discover(
    chart: &str,
    tgz: Vec<u8>,
    render: ChartRender<'_>,
    spec_dir: &Path,
) -> Result<ChartImageSet, CollectError> {
    let err = |source: ChartImagesError| CollectError::ChartImages {
        chart: chart.to_string(),
        source: Box::new(source),
    };
    let mut opts = RenderOptions {
        set_typed: render
            .set
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..RenderOptions::default()
    };
    if let Some(k) = render.kube_version {
        opts.kube_version = k.to_string();
    }
    for f in render.values {
        let path = spec_dir.join(f);
        let data =
            crate::io::read_capped(&path, crate::chart::archive::MAX_FILE_BYTES, "values file")
                .map_err(|e| err(e.into()))?;
        opts.values_files.push((path.display().to_string(), data));
    }
    let report = chart_images(
        ChartInput::Archive {
            bytes: tgz,
            label: chart.to_string(),
        },
        opts,
    )
    .map_err(|e| err(e.into()))?;
    if let Some(u) = report.unresolved.first() {
        return Err(err(ChartImagesError::Unresolved {
            template: u.template.clone(),
            kind: u.kind.clone(),
            name: u.name.clone(),
            container: u.container.clone(),
            raw: u.raw.clone(),
            reason: u.reason.clone(),
        }));
    }
    let mut images = Vec::with_capacity(report.images.len());
    for s in &report.images {
        let r: Reference = s.parse().map_err(|e| {
            err(ChartImagesError::Unresolved {
                template: String::new(),
                kind: "image".into(),
                name: s.clone(),
                container: String::new(),
                raw: s.clone(),
                reason: format!("{e}"),
            })
        })?;
        images.push(r);
    }
    images.sort_by_key(|r| r.to_string());
    images.dedup();
    Ok(ChartImageSet {
        chart: chart.to_string(),
        images,
    })
}

/// Fetches the chart archive of an OCI Helm chart pinned at `digest`: the manifest's one
/// `application/vnd.cncf.helm.chart.content.v1.tar+gzip` layer, downloaded into `dir` (checked
/// against its digest on the way) and read back, capped at the engine's chart limit.
pub async fn fetch_oci_chart(
    registry: &Registry,
    source: &Reference,
    digest: &Digest,
    dir: &Path,
) -> Result<Vec<u8>, CollectError> {
    let label = format!("oci://{source}");
    let layer_err = |why: String| CollectError::ChartImages {
        chart: label.clone(),
        source: Box::new(ChartImagesError::Layer(why)),
    };
    let repo = repo_of(source);
    let raw = registry
        .get_manifest(&repo, digest.clone())
        .await
        .map_err(super::reg_err(&label))?;
    let parsed =
        ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(|source| {
            CollectError::Manifest {
                artifact: label.clone(),
                source,
            }
        })?;
    if parsed.kind != ManifestKind::Image {
        return Err(layer_err("is an index, not a Helm chart manifest".into()));
    }
    let layer = parsed
        .layers
        .iter()
        .find(|l| l.media_type == media::HELM_CHART)
        .ok_or_else(|| layer_err(format!("has no `{}` layer", media::HELM_CHART)))?;
    let max = crate::chart::archive::MAX_CHART_BYTES;
    if layer.size > max {
        return Err(layer_err(format!(
            "chart layer is {} bytes, more than the {max} the renderer reads",
            layer.size
        )));
    }
    let dest = dir.join(format!("{}.tgz", layer.digest.hex()));
    registry
        .download_blob(&repo, &layer.digest, layer.size, &dest, &NoProgress)
        .await
        .map_err(super::reg_err(&label))?;
    crate::io::read_capped(&dest, max, "chart").map_err(|e| CollectError::ChartImages {
        chart: label.clone(),
        source: Box::new(e.into()),
    })
}

/// True when the entry asks `lock` to find its images.
pub fn wants_discovery(render: &ChartRender<'_>) -> bool {
    render.images == ChartImages::Discover
}

/// Where `airlock chart images` takes a chart from, besides a local archive or directory.
#[derive(Debug, Clone)]
pub enum RemoteChart {
    /// `oci://host/repo:version[@digest]`.
    Oci(Reference),
    /// `--repo URL NAME --version V`: an HTTP chart repository.
    Repo {
        /// The repository URL (the directory holding `index.yaml`).
        repo: String,
        /// The chart's name.
        name: String,
        /// Its exact version.
        version: String,
    },
}

impl RemoteChart {
    /// The chart as a user would write it, for messages.
    pub fn label(&self) -> String {
        match self {
            RemoteChart::Oci(r) => format!("oci://{r}"),
            RemoteChart::Repo {
                repo,
                name,
                version,
            } => format!("{repo} {name}:{version}"),
        }
    }
}

/// Fetches a remote chart's archive into memory (through `dir`, checked against its digest on
/// the way: the manifest's layer digest, or the digest the repository's `index.yaml` gives).
pub async fn fetch_remote_chart(
    registry: &Registry,
    chart: &RemoteChart,
    dir: &Path,
) -> Result<Vec<u8>, CollectError> {
    let label = chart.label();
    match chart {
        RemoteChart::Oci(r) => {
            let digest = match &r.digest {
                Some(d) => d.clone(),
                None => {
                    registry
                        .get_manifest(&repo_of(r), r.reference_part())
                        .await
                        .map_err(super::reg_err(&label))?
                        .digest
                }
            };
            fetch_oci_chart(registry, r, &digest, dir).await
        }
        RemoteChart::Repo {
            repo,
            name,
            version,
        } => {
            let chart_err = |source| CollectError::Chart {
                artifact: label.clone(),
                source,
            };
            let (url, claimed) = super::chart::resolve(registry.http(), repo, name, version)
                .await
                .map_err(chart_err)?;
            let path = dir.join("chart.tgz");
            super::chart::download(
                registry.http(),
                &url,
                &path,
                claimed.as_ref(),
                crate::chart::archive::MAX_CHART_BYTES,
            )
            .await
            .map_err(chart_err)?;
            crate::io::read_capped(&path, crate::chart::archive::MAX_CHART_BYTES, "chart").map_err(
                |e| CollectError::ChartImages {
                    chart: label.clone(),
                    source: Box::new(e.into()),
                },
            )
        }
    }
}
