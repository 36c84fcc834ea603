//! The manifest stage and the tag stage: manifests byte-exact by digest (children before their
//! index), then — only once the import is recorded — the tags and referrers fallback indexes
//! decided while the manifests were pushed.

use std::collections::HashSet;

use bytes::Bytes;

use crate::bundle::reader::BundleContents;
use crate::bundle::{Artifact, BundleManifest};
use crate::oci::{Digest, ManifestKind, Tag};
use crate::progress::Reporter;
use crate::registry::{Registry, RegistryError, Repo};

use super::{gate, referrers, reg, ImportError, ImportReport, ImportedArtifact};

/// Everything the tag stage writes, decided before the record: after the record, the import
/// only writes. Tags of manifests, then the merged referrers fallback indexes.
#[derive(Debug, Default)]
pub(super) struct TagPlan {
    /// (repository, tag, manifest bytes, media type) for each tag to set or move.
    tags: Vec<(Repo, Tag, Bytes, String)>,
    /// (repository, fallback tag, referrers to list) for each fallback index to merge into.
    indexes: Vec<(Repo, Tag, referrers::Wanted)>,
}

/// Pushes a manifest unless the target has it. Returns true when pushed.
async fn ensure_manifest(
    registry: &Registry,
    repo: &Repo,
    digest: &Digest,
    bytes: &Bytes,
    media_type: &str,
) -> Result<bool, RegistryError> {
    if registry.head_manifest(repo, digest).await? == Some(digest.clone()) {
        return Ok(false);
    }
    registry
        .put_manifest(repo, digest, bytes, media_type)
        .await?;
    Ok(true)
}

fn count(report: &mut ImportReport, pushed: bool) {
    if pushed {
        report.manifests_pushed += 1;
    } else {
        report.manifests_skipped += 1;
    }
}

fn included(a: &Artifact) -> HashSet<&Digest> {
    a.children
        .iter()
        .filter(|c| c.included)
        .map(|c| &c.digest)
        .collect()
}

/// Pushes every manifest of the artifacts the gate kept (children first), fills
/// `report.artifacts`, and decides the tags. Nothing here is pullable by tag.
pub(super) async fn push_manifests(
    registry: &Registry,
    contents: &BundleContents,
    repos: &[Repo],
    gate: &mut gate::GateOutcome,
    report: &mut ImportReport,
    reporter: &dyn Reporter,
) -> Result<TagPlan, ImportError> {
    // The derived index pushed for an artifact, by artifact index: tagged as pushed.
    let mut derived_bytes: Vec<Option<Bytes>> = vec![None; contents.manifest.artifacts.len()];
    for (i, (a, repo)) in contents
        .manifest
        .artifacts
        .iter()
        .zip(repos.iter())
        .enumerate()
    {
        let signatures = gate.verified.remove(&i).unwrap_or_default();
        if let Some(why) = gate.skipped.get(&i) {
            reporter.warn(&format!("{}: left out: {why}", a.source));
            report.artifacts.push(ImportedArtifact::new(
                a,
                repo,
                None,
                signatures,
                Some(why.clone()),
            ));
            continue;
        }
        for c in a.children.iter().filter(|c| c.included) {
            let (bytes, parsed) = &contents.manifests[&c.digest];
            let pushed = ensure_manifest(registry, repo, &c.digest, bytes, &parsed.media_type)
                .await
                .map_err(reg(format!("{}: pushing manifest {}", a.source, c.digest)))?;
            count(report, pushed);
        }
        let (bytes, parsed) = &contents.manifests[&a.digest];
        let mut derived = None;
        match ensure_manifest(registry, repo, &a.digest, bytes, &parsed.media_type).await {
            Ok(pushed) => count(report, pushed),
            Err(RegistryError::Status { status, .. })
                if parsed.kind == ManifestKind::Index
                    && BundleManifest::is_subset(a)
                    && status.is_client_error() =>
            {
                let Some(d_bytes) = super::derived_index(bytes, &included(a)) else {
                    return Err(ImportError::DeriveIndex {
                        source_ref: a.source.clone(),
                        digest: a.digest.clone(),
                    });
                };
                let d = Digest::of(&d_bytes);
                reporter.warn(&format!(
                    "{repo}: the registry refused index {} with missing children; pushed derived index {d} of the carried platforms",
                    a.digest
                ));
                let pushed = ensure_manifest(registry, repo, &d, &d_bytes, &parsed.media_type)
                    .await
                    .map_err(reg(format!("{}: pushing derived index {d}", a.source)))?;
                count(report, pushed);
                derived = Some(d);
                derived_bytes[i] = Some(d_bytes);
            }
            Err(e) => {
                return Err(reg(format!("{}: pushing manifest {}", a.source, a.digest))(
                    e,
                ))
            }
        }
        report
            .artifacts
            .push(ImportedArtifact::new(a, repo, derived, signatures, None));
    }
    plan_tags(registry, contents, repos, gate, report, derived_bytes).await
}

/// Reads the tags and referrers indexes at the target and decides what the tag stage writes;
/// a fallback index that cannot be merged (a non-index at its tag) fails here, before the
/// record.
async fn plan_tags(
    registry: &Registry,
    contents: &BundleContents,
    repos: &[Repo],
    gate: &gate::GateOutcome,
    report: &mut ImportReport,
    derived_bytes: Vec<Option<Bytes>>,
) -> Result<TagPlan, ImportError> {
    let mut plan = TagPlan::default();
    for (i, (art, derived)) in report.artifacts.iter().zip(derived_bytes).enumerate() {
        let a = &contents.manifest.artifacts[i];
        let Some(tag) = a.tag.clone() else { continue };
        if art.skipped.is_some() {
            continue;
        }
        if referrers::carried_fallback_subject(a, contents).is_some() {
            // A referrers index: merged with what the target has, below.
            continue;
        }
        let digest = art.derived_digest.as_ref().unwrap_or(&art.digest);
        let repo = &repos[i];
        let current = registry
            .head_manifest(repo, &tag)
            .await
            .map_err(reg(format!("{repo}:{tag}: reading tag")))?;
        if current.as_ref() == Some(digest) {
            report.tags_unchanged += 1;
            continue;
        }
        let (bytes, media_type) = match derived {
            Some(b) => (b, contents.manifests[&a.digest].1.media_type.clone()),
            None => {
                let (b, parsed) = &contents.manifests[digest];
                (b.clone(), parsed.media_type.clone())
            }
        };
        plan.tags.push((repo.clone(), tag, bytes, media_type));
    }

    let kept: Vec<Option<&Repo>> = repos
        .iter()
        .enumerate()
        .map(|(i, r)| (!gate.skipped.contains_key(&i)).then_some(r))
        .collect();
    for ((repo, subject), wanted) in referrers::wanted(contents, &kept) {
        match referrers::plan(registry, &repo, &subject, &wanted).await? {
            referrers::Plan::Api => report.referrers_via_api += 1,
            referrers::Plan::Unchanged => report.referrer_indexes_unchanged += 1,
            referrers::Plan::Write { tag } => plan.indexes.push((repo, tag, wanted)),
        }
    }
    Ok(plan)
}

/// Sets the planned tags, then writes the referrers fallback indexes: the commit point of an
/// import.
pub(super) async fn set_tags(
    registry: &Registry,
    plan: TagPlan,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    for (repo, tag, bytes, media_type) in plan.tags {
        registry
            .put_manifest(&repo, &tag, &bytes, &media_type)
            .await
            .map_err(reg(format!("{repo}:{tag}: setting tag")))?;
        report.tags_set += 1;
    }
    for (repo, tag, wanted) in plan.indexes {
        referrers::write(registry, &repo, &tag, &wanted).await?;
        report.referrer_indexes_updated += 1;
    }
    Ok(())
}
