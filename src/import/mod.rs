//! The isolated side: stream a bundle, verify every byte, push blobs, then manifests by digest,
//! then tags. Nothing is tagged unless the whole bundle verified.

pub mod gate;
pub mod mapping;
pub mod record;
pub mod referrers;
pub mod replay;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::bundle::reader::{BlobVisitor, BundleContents};
use crate::bundle::{Artifact, ArtifactKind, BlobEntry, BundleError, BundleManifest};
use crate::oci::{Digest, ManifestKind, RepoName};
use crate::progress::Reporter;
use crate::registry::{Registry, RegistryError, Repo};

pub use mapping::{Mapping, MappingError, Target};

/// Upload chunk size: a blob up to this size is read whole and sent in one request; larger
/// ones go in chunks of this size. Bounds memory: see [`MAX_INFLIGHT`].
pub const CHUNK_SIZE: usize = 8 * 1024 * 1024;
/// Blob uploads in flight at once. With the channel depths below, at most about
/// `(MAX_INFLIGHT + 4) * CHUNK_SIZE` bytes of blob data are in memory.
pub const MAX_INFLIGHT: usize = 4;

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
    /// The isolated side's image policy refused the bundle before anything was pushed.
    #[error("refused: {0}")]
    Gate(#[from] gate::GateError),
    /// The bundle is older than one the ledger says was admitted.
    #[error("refused: {0}")]
    Replay(#[from] replay::ReplayError),
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
    /// Signatures verified at import against the isolated side's policy (`--policy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<crate::trust::verify::SignatureResult>,
    /// Why the artifact was left out (`--on-untrusted skip-artifact`); nothing of it was pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What the ledger records as the policy an import applied: the sha256 of the one policy file
/// given (`--policy` or `--scan-policy`), or with both, the sha256 of
/// `"<policy digest>\n<scan-policy digest>\n"`; `None` when neither was given.
pub fn policy_digest(opts: &ImportOptions) -> Option<Digest> {
    let image = opts.image_policy.as_ref().map(|p| p.digest.clone());
    let scan = opts.scan_gate.as_ref().map(|g| g.policy_digest.clone());
    match (image, scan) {
        (None, None) => None,
        (Some(d), None) | (None, Some(d)) => Some(d),
        (Some(i), Some(s)) => Some(Digest::of(format!("{i}\n{s}\n").as_bytes())),
    }
}

impl ImportedArtifact {
    fn new(
        a: &Artifact,
        repo: &Repo,
        derived_digest: Option<Digest>,
        signatures: Vec<crate::trust::verify::SignatureResult>,
        skipped: Option<String>,
    ) -> Self {
        ImportedArtifact {
            kind: a.kind,
            source: a.source.clone(),
            target: repo.to_string(),
            tag: a.tag.as_ref().map(|t| t.to_string()),
            digest: a.digest.clone(),
            derived_digest,
            signatures,
            skipped,
        }
    }
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
    /// The bundle signature gate's outcome.
    pub signature: Option<crate::bundle::signature::SignatureStatus>,
    /// Referrers fallback indexes (`sha256-<hex>` tags) created or extended.
    pub referrer_indexes_updated: usize,
    /// Referrers fallback indexes that already listed everything.
    pub referrer_indexes_unchanged: usize,
    /// Subjects whose referrers the target's referrers API lists by itself.
    pub referrers_via_api: usize,
}

/// Options for `import`.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// What the bundle's signatures must satisfy.
    pub signature: crate::bundle::signature::SignaturePolicy,
    /// The target registry and prefix.
    pub target: Target,
    /// How names map.
    pub mapping: Mapping,
    /// Concurrent registry checks.
    pub jobs: usize,
    /// The isolated side's scan gate, judged on the carried evidence before anything is
    /// pushed (none: no scan gate).
    pub scan_gate: Option<Arc<crate::scan::gate::ImportGate>>,
    /// The isolated side's image-signature policy, checked before anything is pushed.
    pub image_policy: Option<gate::ImagePolicy>,
    /// What the ledger says was admitted last; `None`: no replay check (no ledger, or
    /// `--allow-older`).
    pub replay: Option<replay::ReplayGuard>,
    /// Also write the bundle's plain files (`files:`) here, each verified before it appears.
    pub files_to: Option<std::path::PathBuf>,
}

fn reg<'e>(what: impl Into<String> + 'e) -> impl FnOnce(RegistryError) -> ImportError + 'e {
    move |source| ImportError::Registry {
        what: what.into(),
        source,
    }
}

/// From the bundle reader (a thread) to the uploaders (tasks).
enum Msg {
    /// All manifests are read: which repositories need which blob. Answered on `reply`
    /// with the ones the target lacks.
    Plan {
        needs: HashMap<Digest, Vec<Repo>>,
        /// A delta bundle's omitted blobs: never streamed, so mounted or refused here.
        omitted: Vec<crate::bundle::OmittedBlob>,
        reply: std::sync::mpsc::SyncSender<HashMap<Digest, Vec<Repo>>>,
    },
    /// A small blob, read whole and verified.
    Whole {
        entry: BlobEntry,
        repos: Vec<Repo>,
        bytes: Bytes,
    },
    /// A large blob starts; its chunks follow.
    Start { entry: BlobEntry, repos: Vec<Repo> },
    /// The next chunk of the large blob.
    Chunk(Bytes),
    /// The large blob ended; `verified` is false when the reader found it bad.
    End { verified: bool },
}

/// The reader side: maps names, then feeds blobs the target lacks to the uploaders.
struct Feeder<'a> {
    path: &'a Path,
    policy: &'a crate::bundle::signature::SignaturePolicy,
    status: Option<crate::bundle::signature::SignatureStatus>,
    mapping: &'a Mapping,
    target: &'a Target,
    tx: tokio::sync::mpsc::Sender<Msg>,
    repos: Vec<Repo>,
    missing: HashMap<Digest, Vec<Repo>>,
    skipped: usize,
    scan_gate: Option<&'a crate::scan::gate::ImportGate>,
    image_policy: Option<&'a gate::ImagePolicy>,
    gate: gate::GateOutcome,
    replay: Option<&'a replay::ReplayGuard>,
}

fn stopped() -> ImportError {
    ImportError::Refused("the upload side stopped".into())
}

fn read_error(entry: &BlobEntry, e: std::io::Error) -> ImportError {
    BundleError::Corrupt {
        path: Default::default(),
        where_: format!("blob {}", entry.digest),
        why: e.to_string(),
    }
    .into()
}

fn needs_of(contents: &BundleContents, artifact: &Artifact) -> Vec<Digest> {
    let mut out = Vec::new();
    let roots = std::iter::once(&artifact.digest).chain(
        artifact
            .children
            .iter()
            .filter(|c| c.included)
            .map(|c| &c.digest),
    );
    for d in roots {
        if let Some((_, m)) = contents.manifests.get(d) {
            out.extend(m.blobs().map(|b| b.digest.clone()));
        }
    }
    out
}

impl BlobVisitor for Feeder<'_> {
    type Error = ImportError;

    fn manifest(&mut self, contents: &BundleContents) -> Result<(), ImportError> {
        let status = crate::bundle::signature::check(self.path, contents, self.policy)?;
        if let (Some(guard), crate::bundle::signature::SignatureStatus::Verified { signers }) =
            (self.replay, &status)
        {
            guard.check(
                &contents.manifest,
                &Digest::of(&contents.manifest_bytes),
                signers,
            )?;
        }
        self.status = Some(status);
        let names = self.mapping.map_all(&contents.manifest.artifacts)?;
        self.repos = names
            .into_iter()
            .map(|n| Repo::new(self.target.registry.clone(), n))
            .collect();
        Ok(())
    }

    fn before_blobs(&mut self, contents: &BundleContents) -> Result<(), ImportError> {
        // Every manifest and all evidence is in; nothing is pushed yet.
        if let Some(policy) = self.image_policy {
            self.gate = gate::check(contents, policy)?;
        }
        // The scan gate runs on the evidence, in memory, before the uploaders get a plan:
        // a refusal here leaves nothing at the target.
        if let Some(scan_gate) = self.scan_gate {
            let outcome = scan_gate
                .check(
                    contents,
                    std::time::SystemTime::now(),
                    &self.gate.skipped.keys().copied().collect(),
                )
                .map_err(|e| {
                    ImportError::Refused(format!("scan gate: {}", crate::error_chain(&e)))
                })?;
            if !outcome.failures.is_empty() {
                return Err(ImportError::Refused(format!(
                    "scan gate failed, nothing pushed: {}",
                    outcome.failures.join("; ")
                )));
            }
        }
        let mut needs: HashMap<Digest, Vec<Repo>> = HashMap::new();
        for (i, (a, repo)) in contents
            .manifest
            .artifacts
            .iter()
            .zip(self.repos.iter())
            .enumerate()
        {
            if self.gate.skipped.contains_key(&i) {
                continue;
            }
            for d in needs_of(contents, a) {
                let v = needs.entry(d).or_default();
                if !v.contains(repo) {
                    v.push(repo.clone());
                }
            }
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.tx
            .blocking_send(Msg::Plan {
                needs,
                omitted: contents.manifest.omitted.clone(),
                reply,
            })
            .map_err(|_| stopped())?;
        self.missing = answer.recv().map_err(|_| stopped())?;
        Ok(())
    }

    fn blob(&mut self, entry: &BlobEntry, data: &mut dyn Read) -> Result<(), ImportError> {
        let Some(repos) = self.missing.get(&entry.digest).cloned() else {
            // The target has it everywhere it is needed; the reader still checks the bytes.
            self.skipped += 1;
            return Ok(());
        };
        if entry.size <= CHUNK_SIZE as u64 {
            let mut buf = Vec::with_capacity(entry.size as usize);
            // The reader checks the digest at the end of the entry: read_to_end fails on a
            // mismatch, so only verified bytes are sent.
            data.read_to_end(&mut buf)
                .map_err(|e| read_error(entry, e))?;
            let msg = Msg::Whole {
                entry: entry.clone(),
                repos,
                bytes: Bytes::from(buf),
            };
            return self.tx.blocking_send(msg).map_err(|_| stopped());
        }
        let start = Msg::Start {
            entry: entry.clone(),
            repos,
        };
        self.tx.blocking_send(start).map_err(|_| stopped())?;
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut filled = 0;
        loop {
            match data.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let _ = self.tx.blocking_send(Msg::End { verified: false });
                    return Err(read_error(entry, e));
                }
            }
            if filled == CHUNK_SIZE {
                let chunk = Bytes::copy_from_slice(&buf);
                self.tx
                    .blocking_send(Msg::Chunk(chunk))
                    .map_err(|_| stopped())?;
                filled = 0;
            }
        }
        if filled > 0 {
            let chunk = Bytes::copy_from_slice(&buf[..filled]);
            self.tx
                .blocking_send(Msg::Chunk(chunk))
                .map_err(|_| stopped())?;
        }
        self.tx
            .blocking_send(Msg::End { verified: true })
            .map_err(|_| stopped())
    }
}

/// What one blob upload did.
#[derive(Default)]
struct Pushed {
    pushed: usize,
    mounted: usize,
    bytes: u64,
}

/// Mounts a blob uploaded to `first` into the other repositories; uploads `bytes` where the
/// registry declines a mount and the bytes are at hand.
async fn spread(
    registry: &Registry,
    entry: &BlobEntry,
    first: &Repo,
    others: &[Repo],
    bytes: Option<&Bytes>,
    out: &mut Pushed,
) -> Result<(), ImportError> {
    for other in others {
        let mounted = registry
            .mount_blob(other, &entry.digest, &first.name)
            .await
            .map_err(reg(format!("mounting {} into {other}", entry.digest)))?;
        if mounted {
            out.mounted += 1;
            continue;
        }
        let Some(b) = bytes else {
            return Err(ImportError::Refused(format!(
                "{other}: the registry refused to mount blob {} from {}; re-run the import with a mapping that puts both artifacts in one repository",
                entry.digest, first.name
            )));
        };
        registry
            .push_blob_bytes(other, &entry.digest, b.clone())
            .await
            .map_err(reg(format!("uploading {} to {other}", entry.digest)))?;
        out.pushed += 1;
        out.bytes += entry.size;
    }
    Ok(())
}

async fn upload_whole(
    registry: Arc<Registry>,
    entry: BlobEntry,
    repos: Vec<Repo>,
    bytes: Bytes,
) -> Result<Pushed, ImportError> {
    let mut out = Pushed::default();
    let Some((first, others)) = repos.split_first() else {
        return Ok(out);
    };
    registry
        .push_blob_bytes(first, &entry.digest, bytes.clone())
        .await
        .map_err(reg(format!("uploading {} to {first}", entry.digest)))?;
    out.pushed += 1;
    out.bytes += entry.size;
    spread(&registry, &entry, first, others, Some(&bytes), &mut out).await?;
    Ok(out)
}

/// Streams a large blob in one request; the final `PUT` is sent only once the reader says the
/// whole blob verified.
async fn upload_stream(
    registry: Arc<Registry>,
    entry: BlobEntry,
    repos: Vec<Repo>,
    chunks: tokio::sync::mpsc::Receiver<Option<Bytes>>,
) -> Result<Pushed, ImportError> {
    let mut out = Pushed::default();
    let Some((first, others)) = repos.split_first() else {
        return Ok(out);
    };
    let what = || format!("uploading {} to {first}", entry.digest);
    let mut upload = registry.start_upload(first).await.map_err(reg(what()))?;
    // The body ends cleanly only when the reader has verified the whole blob; otherwise it
    // fails, which aborts the request, and the upload is cancelled.
    let body = futures_util::stream::unfold(Some(chunks), |state| async move {
        let mut chunks = state?;
        match chunks.recv().await {
            Some(Some(chunk)) => Some((Ok(chunk), Some(chunks))),
            Some(None) => None,
            None => Some((Err(std::io::Error::other("blob did not verify")), None)),
        }
    });
    if let Err(e) = upload.patch_stream(body, entry.size).await {
        upload.cancel().await;
        return Err(reg(what())(e));
    }
    upload
        .finish(Bytes::new(), &entry.digest)
        .await
        .map_err(reg(format!(
            "completing upload of {} to {first}",
            entry.digest
        )))?;
    out.pushed += 1;
    out.bytes += entry.size;
    spread(&registry, &entry, first, others, None, &mut out).await?;
    Ok(out)
}

async fn head_missing(
    registry: &Registry,
    needs: HashMap<Digest, Vec<Repo>>,
    jobs: usize,
) -> Result<HashMap<Digest, Vec<Repo>>, ImportError> {
    let pairs: Vec<(Repo, Digest)> = needs
        .iter()
        .flat_map(|(d, repos)| repos.iter().map(move |r| (r.clone(), d.clone())))
        .collect();
    let present: HashSet<(Repo, Digest)> =
        stream::iter(pairs.into_iter().map(|(repo, d)| async move {
            let has = registry
                .blob_exists(&repo, &d)
                .await
                .map_err(reg(format!("checking {d} in {repo}")))?;
            Ok::<_, ImportError>(has.then_some((repo, d)))
        }))
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    Ok(needs
        .into_iter()
        .filter_map(|(d, repos)| {
            let lacking: Vec<Repo> = repos
                .into_iter()
                .filter(|r| !present.contains(&(r.clone(), d.clone())))
                .collect();
            (!lacking.is_empty()).then_some((d, lacking))
        })
        .collect())
}

/// A delta bundle leaves out blobs the site's receipt listed. Each must already be in every
/// target repository that needs it, or be mounted there from a repository that has it (another
/// target repository, or one the receipt names). Runs before any blob is uploaded and any
/// manifest pushed; refuses the import listing every omitted blob the target lacks.
async fn mount_omitted(
    registry: &Registry,
    needs: &HashMap<Digest, Vec<Repo>>,
    missing: &mut HashMap<Digest, Vec<Repo>>,
    omitted: &[crate::bundle::OmittedBlob],
) -> Result<(), ImportError> {
    let mut lacking = Vec::new();
    for o in omitted {
        let Some(repos) = missing.remove(&o.digest) else {
            continue;
        };
        let have: Vec<&Repo> = needs
            .get(&o.digest)
            .map(|all| all.iter().filter(|r| !repos.contains(r)).collect())
            .unwrap_or_default();
        for repo in &repos {
            let mut sources: Vec<RepoName> = have.iter().map(|r| r.name.clone()).collect();
            sources.extend(o.repositories.iter().cloned());
            let mut mounted = false;
            for from in sources.iter().filter(|f| **f != repo.name) {
                // Mount only from where the blob really is: a registry may open an upload
                // instead, or (with some configurations) mount what it should not.
                let there = Repo::new(repo.registry.clone(), from.clone());
                if !registry
                    .blob_exists(&there, &o.digest)
                    .await
                    .map_err(reg(format!("checking {} in {there}", o.digest)))?
                {
                    continue;
                }
                if registry
                    .mount_blob(repo, &o.digest, from)
                    .await
                    .map_err(reg(format!("mounting {} into {repo}", o.digest)))?
                {
                    mounted = true;
                    break;
                }
            }
            if !mounted {
                lacking.push(format!("{} ({} bytes) for {repo}", o.digest, o.size));
            }
        }
    }
    if lacking.is_empty() {
        return Ok(());
    }
    Err(ImportError::Refused(format!(
        "delta bundle: {} blob(s) it leaves out are not in the target registry: {}; import the bundle the receipt was taken after first, or collect without --have",
        lacking.len(),
        lacking.join(", ")
    )))
}

/// The upload side: answers the plan, runs up to [`MAX_INFLIGHT`] uploads at once.
async fn drive(
    registry: Arc<Registry>,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
    jobs: usize,
) -> Result<Pushed, ImportError> {
    let mut total = Pushed::default();
    let mut tasks: tokio::task::JoinSet<Result<Pushed, ImportError>> = tokio::task::JoinSet::new();
    let mut stream_tx: Option<tokio::sync::mpsc::Sender<Option<Bytes>>> = None;
    let mut add = |r: Result<Result<Pushed, ImportError>, tokio::task::JoinError>| -> Result<(), ImportError> {
        let p = r.map_err(|e| ImportError::Refused(format!("upload task failed: {e}")))??;
        total.pushed += p.pushed;
        total.mounted += p.mounted;
        total.bytes += p.bytes;
        Ok(())
    };
    while let Some(msg) = rx.recv().await {
        while let Some(r) = tasks.try_join_next() {
            add(r)?;
        }
        match msg {
            Msg::Plan {
                needs,
                omitted,
                reply,
            } => {
                let mut missing = head_missing(&registry, needs.clone(), jobs).await?;
                mount_omitted(&registry, &needs, &mut missing, &omitted).await?;
                reply.send(missing).map_err(|_| stopped())?;
            }
            Msg::Whole {
                entry,
                repos,
                bytes,
            } => {
                while tasks.len() >= MAX_INFLIGHT {
                    if let Some(r) = tasks.join_next().await {
                        add(r)?;
                    }
                }
                tasks.spawn(upload_whole(registry.clone(), entry, repos, bytes));
            }
            Msg::Start { entry, repos } => {
                while tasks.len() >= MAX_INFLIGHT {
                    if let Some(r) = tasks.join_next().await {
                        add(r)?;
                    }
                }
                let (tx, chunks) = tokio::sync::mpsc::channel(2);
                stream_tx = Some(tx);
                tasks.spawn(upload_stream(registry.clone(), entry, repos, chunks));
            }
            Msg::Chunk(chunk) => {
                if let Some(tx) = &stream_tx {
                    if tx.send(Some(chunk)).await.is_err() {
                        // The upload failed; its error comes out of the join below.
                        stream_tx = None;
                    }
                }
            }
            Msg::End { verified } => {
                if let Some(tx) = stream_tx.take() {
                    if verified {
                        let _ = tx.send(None).await;
                    }
                }
            }
        }
    }
    drop(stream_tx);
    while let Some(r) = tasks.join_next().await {
        add(r)?;
    }
    Ok(total)
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

/// Imports a bundle into the target registry. The bundle is read once, by a thread, while
/// uploads run concurrently; manifests and tags follow only once every blob verified.
pub async fn import(
    bundle: &Path,
    registry: Arc<Registry>,
    opts: &ImportOptions,
    reporter: &dyn Reporter,
) -> Result<ImportReport, ImportError> {
    let source = crate::bundle::BundleSource::File(bundle.to_path_buf());
    import_from(&source, registry, opts, reporter).await
}

/// [`import`] from a bundle file or split parts (read in sequence, each part checked as it
/// passes; a split bundle's parts manifest signature is checked first, with the same policy).
pub async fn import_from(
    source: &crate::bundle::BundleSource,
    registry: Arc<Registry>,
    opts: &ImportOptions,
    reporter: &dyn Reporter,
) -> Result<ImportReport, ImportError> {
    let bundle = source.path();
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(2);
    let mut feeder = Feeder {
        path: bundle,
        policy: &opts.signature,
        status: None,
        mapping: &opts.mapping,
        target: &opts.target,
        tx,
        repos: Vec::new(),
        missing: HashMap::new(),
        skipped: 0,
        scan_gate: opts.scan_gate.as_deref(),
        image_policy: opts.image_policy.as_ref(),
        gate: gate::GateOutcome::default(),
        replay: opts.replay.as_ref(),
    };
    let rt = tokio::runtime::Handle::current();
    let (read, uploaded) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let summary = match &opts.files_to {
                    None => source.read(&opts.signature, &mut feeder, reporter),
                    Some(dir) => {
                        let mut tee = crate::files::ExtractFiles::new(&mut feeder, dir);
                        source.read(&opts.signature, &mut tee, reporter)
                    }
                };
                (
                    summary,
                    feeder.repos,
                    feeder.skipped,
                    feeder.status,
                    feeder.gate,
                )
            });
            let uploaded = rt.block_on(drive(registry.clone(), rx, opts.jobs));
            let read = reader
                .join()
                .map_err(|_| ImportError::Refused("the bundle reader panicked".into()));
            (read, uploaded)
        })
    });
    let (summary, repos, skipped, status, mut gate) = read?;
    // A bundle error explains an upload side that stopped; otherwise the upload error stands.
    let summary = match (summary, uploaded) {
        (Err(e @ ImportError::Bundle(_)), _)
        | (Err(e @ ImportError::Mapping(_)), _)
        | (Err(e @ ImportError::Gate(_)), _)
        | (Err(e @ ImportError::Replay(_)), _) => return Err(e),
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e),
        (Ok(s), Ok(p)) => (s, p),
    };
    let (summary, pushed) = summary;
    let contents = summary.contents;
    let mut report = ImportReport {
        blobs_pushed: pushed.pushed,
        blobs_mounted: pushed.mounted,
        blobs_skipped: skipped,
        bytes_pushed: pushed.bytes,
        signature: status,
        ..Default::default()
    };
    let registry: &Registry = &registry;
    report.bundle = contents.manifest.name.clone();

    // Every blob is verified and present. Manifests next, children before their index.
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
            count(&mut report, pushed);
        }
        let (bytes, parsed) = &contents.manifests[&a.digest];
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
                derived = Some(d);
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
        let Some(tag) = contents.manifest.artifacts[i].tag.clone() else {
            continue;
        };
        if art.skipped.is_some() {
            continue;
        }
        if referrers::carried_fallback_subject(&contents.manifest.artifacts[i], &contents).is_some()
        {
            // A referrers index: merged with what the target has, below.
            continue;
        }
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

    // Referrers: listed through the API, or merged into the fallback index.
    let kept: Vec<Option<&Repo>> = repos
        .iter()
        .enumerate()
        .map(|(i, r)| (!gate.skipped.contains_key(&i)).then_some(r))
        .collect();
    for ((repo, subject), wanted) in referrers::wanted(&contents, &kept) {
        match referrers::update(registry, &repo, &subject, &wanted).await? {
            referrers::Outcome::Api => report.referrers_via_api += 1,
            referrers::Outcome::Updated => report.referrer_indexes_updated += 1,
            referrers::Outcome::Unchanged => report.referrer_indexes_unchanged += 1,
        }
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
