//! The resolve stage, `lock`: every reference of a spec pinned to digests, with what is
//! attached to each image.

use std::path::Path;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::{chart, chart_images, discover, now_rfc3339, reg_err, repo_of, CollectError};
use crate::lock::{Lock, LockedChart, LockedChild, LockedImage, LOCK_FORMAT};
use crate::oci::{Digest, ManifestKind, ParsedManifest, Platform};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::spec::{parse_oci_chart_ref, ChartSource, Spec};

pub(super) fn children_of(index: &ParsedManifest, wanted: &[Platform]) -> Vec<LockedChild> {
    index
        .manifests
        .iter()
        .map(|d| {
            let platform = d.platform.as_ref().map(|p| p.to_platform());
            let selected = wanted.is_empty()
                || platform
                    .as_ref()
                    .is_some_and(|p| wanted.iter().any(|w| p.selected_by(w)));
            LockedChild {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                platform,
                selected,
            }
        })
        .collect()
}

pub(super) async fn resolve_manifest(
    registry: &Registry,
    r: &Reference,
    wanted: &[Platform],
) -> Result<LockedImage, CollectError> {
    let name = r.to_string();
    let raw = registry
        .get_manifest(&repo_of(r), &r.reference_part())
        .await
        .map_err(reg_err(&name))?;
    let parsed =
        ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()).map_err(|source| {
            CollectError::Manifest {
                artifact: name.clone(),
                source,
            }
        })?;
    let children = if parsed.kind == ManifestKind::Index {
        let c = children_of(&parsed, wanted);
        if !c.iter().any(|c| c.selected) {
            let have: Vec<String> = c
                .iter()
                .filter_map(|c| c.platform.as_ref().map(|p| p.to_string()))
                .collect();
            return Err(CollectError::Mismatch {
                artifact: name,
                why: format!(
                    "no child matches platforms [{}]; the index has [{}]",
                    wanted
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    have.join(", ")
                ),
            });
        }
        c
    } else {
        Vec::new()
    };
    Ok(LockedImage {
        source: r.clone(),
        digest: raw.digest,
        media_type: parsed.media_type,
        platforms: wanted.to_vec(),
        children,
        attachments: Vec::new(),
        charts: Vec::new(),
    })
}

/// The policy with every key file replaced by its PEM text, so a lock pins the keys it was
/// made with and collect does not depend on files beside it.
pub(super) fn inline_keys(
    policy: &crate::trust::policy::TrustPolicy,
    dir: &Path,
) -> Result<crate::trust::policy::TrustPolicy, CollectError> {
    use crate::trust::policy::KeyRef;
    let mut p = policy.clone();
    for rule in &mut p.rules {
        for key in &mut rule.keys {
            if let KeyRef::Path(_) = key {
                let loaded = key
                    .load(dir)
                    .map_err(|e| CollectError::Policy(crate::error_chain(&e)))?;
                *key = KeyRef::Pem(loaded.to_pem());
            }
        }
    }
    Ok(p)
}

/// Locks one image: resolves its reference, then finds what is attached to it and to each
/// carried child. Everything per image is here, so the resolve stage can run many images at
/// once; `discovery` carries what earlier images taught about the registry.
pub async fn lock_image(
    discovery: &discover::Discovery,
    registry: &Registry,
    reference: &Reference,
    platforms: &[Platform],
) -> Result<LockedImage, CollectError> {
    let mut locked = resolve_manifest(registry, reference, platforms).await?;
    let subjects: Vec<Digest> = std::iter::once(locked.digest.clone())
        .chain(
            locked
                .children
                .iter()
                .filter(|c| c.selected)
                .map(|c| c.digest.clone()),
        )
        .collect();
    locked.attachments =
        discover::discover_attachments(discovery, registry, reference, &subjects).await?;
    Ok(locked)
}

/// Resolves every reference of a spec to digests. `previous` keeps the creation time when
/// nothing changed, so re-locking an unchanged spec gives the same lockfile.
pub async fn lock_spec(
    spec: &Spec,
    spec_digest: Digest,
    spec_dir: &Path,
    registry: &Registry,
    previous: Option<&Lock>,
    reporter: &dyn Reporter,
) -> Result<Lock, CollectError> {
    let trust = spec
        .trust
        .as_ref()
        .map(|t| inline_keys(t, spec_dir))
        .transpose()?;
    // The resolve stage: images locked concurrently (the registry's adaptive limit paces the
    // requests), collected in spec order whatever order they finish in.
    // Counted in references resolved: one per image and chart of the spec.
    reporter.phase_items("lock", (spec.images.len() + spec.charts.len()) as u64);
    let discovery = &discover::Discovery::default();
    let mut images: Vec<LockedImage> = stream::iter(spec.images.iter().map(|img| async move {
        let locked = lock_image(discovery, registry, &img.reference, &img.platforms).await?;
        reporter.item(&format!("resolved {}", img.reference));
        reporter.advance(1);
        Ok::<_, CollectError>(locked)
    }))
    .buffered(registry.limit().max())
    .try_collect()
    .await?;
    let mut charts = Vec::new();
    let tmp = tempfile::tempdir().map_err(|source| CollectError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut chart_sets = Vec::new();
    for c in &spec.charts {
        let render = c.render();
        let discover = chart_images::wants_discovery(&render);
        let (locked, tgz) = match &c.source {
            ChartSource::Oci { reference } => {
                let r = parse_oci_chart_ref(reference).map_err(|why| CollectError::Mismatch {
                    artifact: reference.clone(),
                    why,
                })?;
                let locked = resolve_manifest(registry, &r, &[]).await?;
                let tgz = if discover {
                    Some(
                        chart_images::fetch_oci_chart(registry, &r, &locked.digest, tmp.path())
                            .await?,
                    )
                } else {
                    None
                };
                let chart = LockedChart::Oci {
                    source: r,
                    digest: locked.digest,
                    media_type: locked.media_type,
                };
                (chart, tgz)
            }
            ChartSource::Http {
                repo,
                name,
                version,
                sha256,
            } => {
                let artifact = format!("{repo} {name}:{version}");
                let chart_err = |source| CollectError::Chart {
                    artifact: artifact.clone(),
                    source,
                };
                let (url, claimed) = chart::resolve(registry.http(), repo, name, version)
                    .await
                    .map_err(chart_err)?;
                let pinned = sha256.as_deref().and_then(|s| Digest::from_hex(s).ok());
                let expected = pinned.as_ref().or(claimed.as_ref());
                let path = tmp.path().join("chart.tgz");
                let (digest, _) = chart::download(
                    registry.http(),
                    &url,
                    &path,
                    expected,
                    chart::MAX_CHART_BYTES,
                )
                .await
                .map_err(chart_err)?;
                let tgz = if discover {
                    Some(
                        crate::io::read_capped(
                            &path,
                            crate::chart::archive::MAX_CHART_BYTES,
                            "chart",
                        )
                        .map_err(|e| CollectError::ChartImages {
                            chart: c.label(),
                            source: Box::new(e.into()),
                        })?,
                    )
                } else {
                    None
                };
                let chart = LockedChart::Http {
                    repo: repo.clone(),
                    name: name.clone(),
                    version: version.clone(),
                    url,
                    sha256: digest,
                };
                (chart, tgz)
            }
        };
        charts.push(locked);
        if let Some(tgz) = tgz {
            chart_sets.push(chart_images::discover(&c.label(), tgz, render, spec_dir)?);
        }
        reporter.item(&format!("resolved {}", c.label()));
        reporter.advance(1);
    }
    reporter.finish_phase();
    // Images the charts deploy: one already in the spec gains the chart's name; a new one is
    // pinned like a spec image (all platforms), concurrently, in the order the charts list them.
    let mut new_images: Vec<(Reference, Vec<String>)> = Vec::new();
    for set in &chart_sets {
        for r in &set.images {
            let name = r.to_string();
            if let Some(i) = images.iter_mut().find(|i| i.source.to_string() == name) {
                if !i.charts.contains(&set.chart) {
                    i.charts.push(set.chart.clone());
                }
            } else if let Some((_, charts)) = new_images.iter_mut().find(|(n, _)| n == r) {
                charts.push(set.chart.clone());
            } else {
                new_images.push((r.clone(), vec![set.chart.clone()]));
            }
        }
    }
    if !new_images.is_empty() {
        reporter.phase_items("images", new_images.len() as u64);
    }
    let from_charts: Vec<LockedImage> =
        stream::iter(new_images.into_iter().map(|(r, charts)| async move {
            let mut locked = lock_image(discovery, registry, &r, &[]).await?;
            locked.charts = charts;
            reporter.item(&format!("resolved {r}"));
            reporter.advance(1);
            Ok::<_, CollectError>(locked)
        }))
        .buffered(registry.limit().max())
        .try_collect()
        .await?;
    reporter.finish_phase();
    images.extend(from_charts);
    let files = spec
        .files
        .iter()
        .map(crate::files::lock_file)
        .collect::<Result<Vec<_>, _>>()?;
    let scan_files = match &spec.scan {
        Some(p) => crate::scan::pins::pin(p, spec_dir)?,
        None => Vec::new(),
    };
    let mut lock = Lock {
        format: LOCK_FORMAT.to_string(),
        name: spec.name.clone(),
        spec_digest,
        created: now_rfc3339(),
        images,
        charts,
        trust,
        scan: spec.scan.clone(),
        scan_files,
        files,
    };
    if let Some(prev) = previous {
        if prev.same_content(&lock) {
            lock.created = prev.created.clone();
        }
    }
    Ok(lock)
}

/// Refuses a spec with unpinned references and turns a fully pinned one into a lock, so that
/// `collect SPEC` works only when the spec itself pins everything.
pub async fn lock_pinned_spec(
    spec: &Spec,
    spec_digest: Digest,
    spec_dir: &Path,
    registry: &Registry,
    reporter: &dyn Reporter,
) -> Result<Lock, CollectError> {
    for img in &spec.images {
        if !img.reference.is_pinned() {
            return Err(CollectError::Unpinned {
                reference: img.reference.to_string(),
            });
        }
    }
    for c in &spec.charts {
        match &c.source {
            ChartSource::Oci { reference } if !reference.contains('@') => {
                return Err(CollectError::Unpinned {
                    reference: reference.clone(),
                })
            }
            ChartSource::Http {
                sha256: None,
                name,
                version,
                ..
            } => {
                return Err(CollectError::Unpinned {
                    reference: format!("chart {name}:{version} (no sha256)"),
                })
            }
            _ => {}
        }
    }
    let mut lock = lock_spec(spec, spec_digest, spec_dir, registry, None, reporter).await?;
    // A chart's templates may name images by tag: those are not pinned by this spec.
    if let Some(i) = lock.images.iter().find(|i| !i.source.is_pinned()) {
        return Err(CollectError::Unpinned {
            reference: format!("{} (deployed by chart {})", i.source, i.charts.join(", ")),
        });
    }
    // A pinned spec is its own source of truth: the creation time comes from the environment
    // (SOURCE_DATE_EPOCH) or the epoch, never the clock, so the bundle is reproducible.
    if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
        lock.created = "1970-01-01T00:00:00Z".into();
    }
    Ok(lock)
}
