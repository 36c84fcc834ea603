//! The manifest stage and the tag stage: manifests byte-exact by digest (children before their
//! index), then — only once the import is recorded — the tags and referrers fallback indexes
//! decided while the manifests were pushed.

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};

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

fn included(a: &Artifact) -> HashSet<&Digest> {
    a.children
        .iter()
        .filter(|c| c.included)
        .map(|c| &c.digest)
        .collect()
}

/// What the manifest stage did for one artifact.
struct ArtifactPush {
    pushed: usize,
    skipped: usize,
    /// The derived index pushed instead of a refused original, with its bytes.
    derived: Option<(Digest, Bytes)>,
}

/// Pushes one artifact's manifests: its carried children first, then its root (or, when the
/// registry refuses an index with missing children, the index of the carried ones).
async fn push_artifact(
    registry: &Registry,
    contents: &BundleContents,
    a: &Artifact,
    repo: &Repo,
    reporter: &dyn Reporter,
) -> Result<ArtifactPush, ImportError> {
    let mut out = ArtifactPush {
        pushed: 0,
        skipped: 0,
        derived: None,
    };
    let mut count = |pushed: bool| {
        if pushed {
            out.pushed += 1;
        } else {
            out.skipped += 1;
        }
    };
    for c in a.children.iter().filter(|c| c.included) {
        let (bytes, parsed) = &contents.manifests[&c.digest];
        let pushed = ensure_manifest(registry, repo, &c.digest, bytes, &parsed.media_type)
            .await
            .map_err(reg(format!("{}: pushing manifest {}", a.source, c.digest)))?;
        count(pushed);
    }
    let (bytes, parsed) = &contents.manifests[&a.digest];
    match ensure_manifest(registry, repo, &a.digest, bytes, &parsed.media_type).await {
        Ok(pushed) => count(pushed),
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
            count(pushed);
            out.derived = Some((d, d_bytes));
        }
        Err(e) => {
            return Err(reg(format!("{}: pushing manifest {}", a.source, a.digest))(
                e,
            ))
        }
    }
    Ok(out)
}

/// Pushes every manifest of the artifacts the gate kept (children first), fills
/// `report.artifacts`, and decides the tags. Nothing here is pullable by tag. Artifacts are
/// pushed concurrently (the registry's adaptive limit paces them); the report keeps bundle
/// order.
pub(super) async fn push_manifests(
    registry: &Registry,
    contents: &BundleContents,
    repos: &[Repo],
    gate: &mut gate::GateOutcome,
    report: &mut ImportReport,
    reporter: &dyn Reporter,
) -> Result<TagPlan, ImportError> {
    let artifacts = &contents.manifest.artifacts;
    // A count bar: artifacts whose manifests are in the target (or left out by the gate).
    reporter.count_start(MANIFESTS_TASK, "manifests", artifacts.len() as u64);
    let results: Result<Vec<Option<ArtifactPush>>, ImportError> = stream::iter(
        artifacts
            .iter()
            .zip(repos.iter())
            .enumerate()
            .map(|(i, (a, repo))| {
                let skipped = gate.skipped.contains_key(&i);
                async move {
                    let pushed = match skipped {
                        true => None,
                        false => Some(push_artifact(registry, contents, a, repo, reporter).await?),
                    };
                    reporter.task_advance(MANIFESTS_TASK, 1);
                    Ok(pushed)
                }
            }),
    )
    .buffered(registry.limit().max())
    .try_collect()
    .await;
    reporter.task_done(MANIFESTS_TASK);
    let results = results?;
    // The derived index pushed for an artifact, by artifact index: tagged as pushed.
    let mut derived_bytes: Vec<Option<Bytes>> = vec![None; artifacts.len()];
    for (i, ((a, repo), result)) in artifacts.iter().zip(repos).zip(results).enumerate() {
        let signatures = gate.verified.remove(&i).unwrap_or_default();
        let Some(pushed) = result else {
            let why = gate.skipped.get(&i).cloned().unwrap_or_default();
            reporter.warn(&format!("{}: left out: {why}", a.source));
            report
                .artifacts
                .push(ImportedArtifact::new(a, repo, None, signatures, Some(why)));
            continue;
        };
        report.manifests_pushed += pushed.pushed;
        report.manifests_skipped += pushed.skipped;
        let derived = pushed.derived.map(|(d, b)| {
            derived_bytes[i] = Some(b);
            d
        });
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
    // Each tag to set: (artifact index, tag, digest it should name, derived bytes).
    let mut candidates = Vec::new();
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
        let digest = art
            .derived_digest
            .clone()
            .unwrap_or_else(|| art.digest.clone());
        candidates.push((i, tag, digest, derived));
    }
    // Where each tag points now, read concurrently, in order.
    let current: Vec<Option<Digest>> = stream::iter(candidates.iter().map(|(i, tag, _, _)| {
        let repo = &repos[*i];
        async move {
            registry
                .head_manifest(repo, tag)
                .await
                .map_err(reg(format!("{repo}:{tag}: reading tag")))
        }
    }))
    .buffered(registry.limit().max())
    .try_collect()
    .await?;
    for ((i, tag, digest, derived), current) in candidates.into_iter().zip(current) {
        if current.as_ref() == Some(&digest) {
            report.tags_unchanged += 1;
            continue;
        }
        let a = &contents.manifest.artifacts[i];
        let (bytes, media_type) = match derived {
            Some(b) => (b, contents.manifests[&a.digest].1.media_type.clone()),
            None => {
                let (b, parsed) = &contents.manifests[&digest];
                (b.clone(), parsed.media_type.clone())
            }
        };
        plan.tags.push((repos[i].clone(), tag, bytes, media_type));
    }

    let kept: Vec<Option<&Repo>> = repos
        .iter()
        .enumerate()
        .map(|(i, r)| (!gate.skipped.contains_key(&i)).then_some(r))
        .collect();
    let wanted = referrers::wanted(contents, &kept);
    let planned: Vec<referrers::Plan> = stream::iter(
        wanted
            .iter()
            .map(|((repo, subject), wanted)| referrers::plan(registry, repo, subject, wanted)),
    )
    .buffered(registry.limit().max())
    .try_collect()
    .await?;
    for (((repo, _), w), p) in wanted.into_iter().zip(planned) {
        match p {
            referrers::Plan::Api => report.referrers_via_api += 1,
            referrers::Plan::Unchanged => report.referrer_indexes_unchanged += 1,
            referrers::Plan::Write { tag } => plan.indexes.push((repo, tag, w)),
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
    reporter: &dyn Reporter,
) -> Result<(), ImportError> {
    // A count bar: tags and referrers fallback indexes written.
    reporter.count_start(
        TAGS_TASK,
        "tags",
        (plan.tags.len() + plan.indexes.len()) as u64,
    );
    let set = set_tags_counted(registry, plan, report, reporter).await;
    reporter.task_done(TAGS_TASK);
    set
}

async fn set_tags_counted(
    registry: &Registry,
    plan: TagPlan,
    report: &mut ImportReport,
    reporter: &dyn Reporter,
) -> Result<(), ImportError> {
    let jobs = registry.limit().max();
    report.tags_set += stream::iter(plan.tags.iter().map(
        |(repo, tag, bytes, media_type)| async move {
            registry
                .put_manifest(repo, tag, bytes, media_type)
                .await
                .map_err(reg(format!("{repo}:{tag}: setting tag")))?;
            reporter.task_advance(TAGS_TASK, 1);
            Ok::<_, ImportError>(())
        },
    ))
    .buffer_unordered(jobs)
    .try_collect::<Vec<_>>()
    .await?
    .len();
    report.referrer_indexes_updated += stream::iter(plan.indexes.into_iter().map(
        |(repo, tag, index)| async move {
            referrers::write(registry, &repo, &tag, &index).await?;
            reporter.task_advance(TAGS_TASK, 1);
            Ok::<_, ImportError>(())
        },
    ))
    .buffer_unordered(jobs)
    .try_collect::<Vec<()>>()
    .await?
    .len();
    Ok(())
}

/// The id of the manifests count bar.
pub const MANIFESTS_TASK: &str = "import manifests";
/// The id of the tags count bar.
pub const TAGS_TASK: &str = "import tags";
