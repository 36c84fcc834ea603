//! The isolated side: stream a bundle, verify every byte, push blobs, then manifests by digest,
//! then tags. Nothing is tagged unless the whole bundle verified.

pub mod mapping;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::bundle::reader::{read_bundle, BlobVisitor, BundleContents};
use crate::bundle::{Artifact, ArtifactKind, BlobEntry, BundleError, BundleManifest};
use crate::oci::{Digest, ManifestKind};
use crate::progress::Reporter;
use crate::registry::{Registry, RegistryError, Repo};

pub use mapping::{Mapping, MappingError, Target};

/// Upload chunk size: the most of one blob held in memory at once.
pub const CHUNK_SIZE: usize = 16 * 1024 * 1024;

/// What can go wrong importing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bundle is bad; nothing was tagged.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The target registry failed; nothing was tagged unless the report says so.
    #[error("{what}: {source}")]
    Registry {
        /// What was being done.
        what: String,
        /// The error.
        source: RegistryError,
    },
    /// Path mapping.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The bundle was refused before any blob was read.
    #[error("refused: {0}")]
    Refused(String),
}

/// One artifact as imported.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedArtifact {
    /// Image or chart.
    pub kind: ArtifactKind,
    /// Where it came from.
    pub source: String,
    /// Target repository (`host/prefix/path`).
    pub target: String,
    /// Tag set, if any.
    pub tag: Option<String>,
    /// The original root digest (what signatures cover).
    pub digest: Digest,
    /// When the target refused an index with missing children: the derived index of the carried
    /// children that was pushed and tagged instead.
    pub derived_digest: Option<Digest>,
}

/// What `import` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ImportReport {
    /// Bundle name.
    pub bundle: String,
    /// Artifacts.
    pub artifacts: Vec<ImportedArtifact>,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Blobs mounted from another repository of the target.
    pub blobs_mounted: usize,
    /// Blobs the target already had.
    pub blobs_skipped: usize,
    /// Bytes uploaded.
    pub bytes_pushed: u64,
    /// Manifests pushed.
    pub manifests_pushed: usize,
    /// Manifests the target already had.
    pub manifests_skipped: usize,
    /// Tags set or moved.
    pub tags_set: usize,
    /// Tags that already pointed at the right digest.
    pub tags_unchanged: usize,
}

/// Options for `import`.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The target registry and prefix.
    pub target: Target,
    /// How names map.
    pub mapping: Mapping,
    /// Concurrent registry checks.
    pub jobs: usize,
}

struct Importer<'a> {
    registry: &'a Registry,
    opts: &'a ImportOptions,
    rt: tokio::runtime::Handle,
    repos: Vec<Repo>,
    /// Which target repositories need each blob.
    needs: HashMap<Digest, Vec<Repo>>,
    /// (repo, digest) pairs the target already has.
    present: HashSet<(Repo, Digest)>,
    report: ImportReport,
}

fn reg<'e>(what: impl Into<String> + 'e) -> impl FnOnce(RegistryError) -> ImportError + 'e {
    move |source| ImportError::Registry {
        what: what.into(),
        source,
    }
}

impl Importer<'_> {
    fn needs_of(contents: &BundleContents, artifact: &Artifact) -> Vec<Digest> {
        let mut out = Vec::new();
        let add_image = |d: &Digest, out: &mut Vec<Digest>| {
            if let Some((_, m)) = contents.manifests.get(d) {
                out.extend(m.blobs().map(|b| b.digest.clone()));
            }
        };
        add_image(&artifact.digest, &mut out);
        for c in artifact.children.iter().filter(|c| c.included) {
            add_image(&c.digest, &mut out);
        }
        out
    }

    /// Reads a blob into chunks and uploads it; the final PUT happens only after the reader
    /// reached the end, which is where the bundle reader checks the digest.
    fn upload(
        &mut self,
        repo: &Repo,
        entry: &BlobEntry,
        data: &mut dyn Read,
    ) -> Result<Option<Bytes>, ImportError> {
        let rt = self.rt.clone();
        let registry = self.registry;
        let mut upload = rt
            .block_on(registry.start_upload(repo))
            .map_err(reg(format!(
                "starting upload of {} to {repo}",
                entry.digest
            )))?;
        // One byte more than a small blob needs, so a blob that fits is sent in the final PUT.
        let mut buf = vec![0u8; CHUNK_SIZE.min(entry.size as usize) + 1];
        let mut filled = 0usize;
        let mut sent = 0u64;
        loop {
            if filled == buf.len() {
                let chunk = Bytes::copy_from_slice(&buf[..filled]);
                if let Err(e) = rt.block_on(upload.patch(chunk)) {
                    rt.block_on(upload.cancel());
                    return Err(reg(format!("uploading {} to {repo}", entry.digest))(e));
                }
                sent += filled as u64;
                filled = 0;
            }
            // The bundle reader checks the digest when the entry ends: a mismatch surfaces
            // here as an error, before the upload is completed.
            match data.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    rt.block_on(upload.cancel());
                    return Err(BundleError::Corrupt {
                        path: Default::default(),
                        where_: format!("blob {}", entry.digest),
                        why: e.to_string(),
                    }
                    .into());
                }
            }
        }
        let last = Bytes::copy_from_slice(&buf[..filled]);
        let kept = (sent == 0).then(|| last.clone());
        rt.block_on(upload.finish(last, &entry.digest))
            .map_err(reg(format!(
                "completing upload of {} to {repo}",
                entry.digest
            )))?;
        self.report.bytes_pushed += entry.size;
        Ok(kept)
    }
}

impl BlobVisitor for Importer<'_> {
    type Error = ImportError;

    fn manifest(&mut self, contents: &BundleContents) -> Result<(), ImportError> {
        let names = self.opts.mapping.map_all(&contents.manifest.artifacts)?;
        self.repos = names
            .into_iter()
            .map(|n| Repo::new(self.opts.target.registry.clone(), n))
            .collect();
        Ok(())
    }

    fn before_blobs(&mut self, contents: &BundleContents) -> Result<(), ImportError> {
        for (a, repo) in contents.manifest.artifacts.iter().zip(self.repos.iter()) {
            for d in Self::needs_of(contents, a) {
                let v = self.needs.entry(d).or_default();
                if !v.contains(repo) {
                    v.push(repo.clone());
                }
            }
        }
        let pairs: Vec<(Repo, Digest)> = self
            .needs
            .iter()
            .flat_map(|(d, repos)| repos.iter().map(move |r| (r.clone(), d.clone())))
            .collect();
        let registry = self.registry;
        let jobs = self.opts.jobs.max(1);
        let present = self.rt.block_on(async move {
            stream::iter(pairs.into_iter().map(|(repo, d)| async move {
                let has = registry
                    .blob_exists(&repo, &d)
                    .await
                    .map_err(reg(format!("checking {d} in {repo}")))?;
                Ok::<_, ImportError>(has.then_some((repo, d)))
            }))
            .buffer_unordered(jobs)
            .try_collect::<Vec<_>>()
            .await
        })?;
        self.present = present.into_iter().flatten().collect();
        Ok(())
    }

    fn blob(&mut self, entry: &BlobEntry, data: &mut dyn Read) -> Result<(), ImportError> {
        let repos = self.needs.get(&entry.digest).cloned().unwrap_or_default();
        let missing: Vec<Repo> = repos
            .into_iter()
            .filter(|r| !self.present.contains(&(r.clone(), entry.digest.clone())))
            .collect();
        let Some(first) = missing.first() else {
            self.report.blobs_skipped += 1;
            return Ok(());
        };
        let kept = self.upload(first, entry, data)?;
        self.report.blobs_pushed += 1;
        for other in &missing[1..] {
            let mounted = self
                .rt
                .block_on(self.registry.mount_blob(other, &entry.digest, &first.name))
                .map_err(reg(format!("mounting {} into {other}", entry.digest)))?;
            if mounted {
                self.report.blobs_mounted += 1;
            } else if let Some(bytes) = &kept {
                self.rt
                    .block_on(
                        self.registry
                            .push_blob_bytes(other, &entry.digest, bytes.clone()),
                    )
                    .map_err(reg(format!("uploading {} to {other}", entry.digest)))?;
                self.report.blobs_pushed += 1;
            } else {
                return Err(ImportError::Refused(format!(
                    "{other}: the registry refused to mount blob {} from {}; re-run the import with a mapping that puts both artifacts in one repository",
                    entry.digest, first.name
                )));
            }
        }
        Ok(())
    }
}

/// Pushes a manifest unless the target has it. Returns true when pushed.
async fn ensure_manifest(
    registry: &Registry,
    repo: &Repo,
    digest: &Digest,
    bytes: &Bytes,
    media_type: &str,
) -> Result<bool, RegistryError> {
    if registry.head_manifest(repo, digest.as_str()).await? == Some(digest.clone()) {
        return Ok(false);
    }
    registry
        .put_manifest(repo, digest.as_str(), bytes, media_type)
        .await?;
    Ok(true)
}

/// The index of only the carried children, for registries that refuse an index whose children
/// are not all present. Everything else in the original index is kept.
pub fn derived_index(original: &[u8], included: &HashSet<&Digest>) -> Option<Bytes> {
    let mut v: serde_json::Value = serde_json::from_slice(original).ok()?;
    let list = v.get_mut("manifests")?.as_array_mut()?;
    list.retain(|m| {
        m.get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse::<Digest>().ok())
            .is_some_and(|d| included.contains(&d))
    });
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// Imports a bundle into the target registry.
pub async fn import(
    bundle: &Path,
    registry: &Registry,
    opts: &ImportOptions,
    reporter: &dyn Reporter,
) -> Result<ImportReport, ImportError> {
    let mut importer = Importer {
        registry,
        opts,
        rt: tokio::runtime::Handle::current(),
        repos: Vec::new(),
        needs: HashMap::new(),
        present: HashSet::new(),
        report: ImportReport::default(),
    };
    let summary = tokio::task::block_in_place(|| read_bundle(bundle, &mut importer, reporter))?;
    let contents = summary.contents;
    let mut report = importer.report;
    let repos = importer.repos;
    report.bundle = contents.manifest.name.clone();

    // Every blob is verified and present. Manifests next, children before their index.
    for (a, repo) in contents.manifest.artifacts.iter().zip(repos.iter()) {
        for c in a.children.iter().filter(|c| c.included) {
            let (bytes, parsed) = &contents.manifests[&c.digest];
            let pushed = ensure_manifest(registry, repo, &c.digest, bytes, &parsed.media_type)
                .await
                .map_err(reg(format!("{}: pushing manifest {}", a.source, c.digest)))?;
            count(&mut report, pushed);
        }
        let (bytes, parsed) = &contents.manifests[&a.digest];
        let mut tagged = a.digest.clone();
        let mut derived = None;
        match ensure_manifest(registry, repo, &a.digest, bytes, &parsed.media_type).await {
            Ok(pushed) => count(&mut report, pushed),
            Err(RegistryError::Status { status, .. })
                if parsed.kind == ManifestKind::Index
                    && BundleManifest::is_subset(a)
                    && status.is_client_error() =>
            {
                let included: HashSet<&Digest> = a
                    .children
                    .iter()
                    .filter(|c| c.included)
                    .map(|c| &c.digest)
                    .collect();
                let Some(d_bytes) = derived_index(bytes, &included) else {
                    return Err(ImportError::Refused(format!(
                        "{}: cannot derive an index from {}",
                        a.source, a.digest
                    )));
                };
                let d = Digest::of(&d_bytes);
                reporter.warn(&format!(
                    "{repo}: the registry refused index {} with missing children; pushed derived index {d} of the carried platforms",
                    a.digest
                ));
                let pushed = ensure_manifest(registry, repo, &d, &d_bytes, &parsed.media_type)
                    .await
                    .map_err(reg(format!("{}: pushing derived index {d}", a.source)))?;
                count(&mut report, pushed);
                tagged = d.clone();
                derived = Some(d);
            }
            Err(e) => {
                return Err(reg(format!("{}: pushing manifest {}", a.source, a.digest))(
                    e,
                ))
            }
        }
        report.artifacts.push(ImportedArtifact {
            kind: a.kind,
            source: a.source.clone(),
            target: repo.to_string(),
            tag: a.tag.clone(),
            digest: a.digest.clone(),
            derived_digest: derived,
        });
        let _ = tagged;
    }

    // Tags last.
    let mut tag_plan: BTreeMap<usize, Digest> = BTreeMap::new();
    for (i, art) in report.artifacts.iter().enumerate() {
        tag_plan.insert(
            i,
            art.derived_digest
                .clone()
                .unwrap_or_else(|| art.digest.clone()),
        );
    }
    for (i, digest) in tag_plan {
        let art = &report.artifacts[i];
        let Some(tag) = art.tag.clone() else { continue };
        let repo = &repos[i];
        let current = registry
            .head_manifest(repo, &tag)
            .await
            .map_err(reg(format!("{repo}:{tag}: reading tag")))?;
        if current.as_ref() == Some(&digest) {
            report.tags_unchanged += 1;
            continue;
        }
        let a = &contents.manifest.artifacts[i];
        let (bytes, media_type) = if Some(&digest) == art.derived_digest.as_ref() {
            let included: HashSet<&Digest> = a
                .children
                .iter()
                .filter(|c| c.included)
                .map(|c| &c.digest)
                .collect();
            let (orig, parsed) = &contents.manifests[&a.digest];
            (
                derived_index(orig, &included).unwrap_or_default(),
                parsed.media_type.clone(),
            )
        } else {
            let (b, parsed) = &contents.manifests[&digest];
            (b.clone(), parsed.media_type.clone())
        };
        registry
            .put_manifest(repo, &tag, &bytes, &media_type)
            .await
            .map_err(reg(format!("{repo}:{tag}: setting tag")))?;
        report.tags_set += 1;
    }
    Ok(report)
}

fn count(report: &mut ImportReport, pushed: bool) {
    if pushed {
        report.manifests_pushed += 1;
    } else {
        report.manifests_skipped += 1;
    }
}
