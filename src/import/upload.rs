//! The upload stage: the bundle is read once, by a thread, through the reader's gates (the
//! signature, replay, policy and scan gates all run before any blob); then every blob the
//! target lacks is uploaded while it streams past, and mounted where else it is needed.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::bundle::reader::{BlobVisitor, BundleContents};
use crate::bundle::{Artifact, BlobEntry, BundleError};
use crate::oci::{Digest, RepoName};
use crate::registry::{Registry, Repo};

use super::{gate, reg, replay, ImportError, Mapping, Target, CHUNK_SIZE, MAX_INFLIGHT};

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
    /// The import's progress: a blob counts once the target has it.
    reporter: &'a dyn crate::progress::Reporter,
}

fn stopped() -> ImportError {
    ImportError::UploadStopped
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
                .map_err(ImportError::ScanGate)?;
            if !outcome.failures.is_empty() {
                return Err(ImportError::ScanFailed {
                    failures: outcome.failures,
                    evidence: super::record::carried_scan_evidence(contents)
                        .into_iter()
                        .map(|(r, b)| (r, b.to_vec()))
                        .collect(),
                });
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
            self.reporter.advance(entry.size);
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
pub(super) struct Pushed {
    pub pushed: usize,
    pub mounted: usize,
    pub bytes: u64,
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
            return Err(ImportError::MountRefused {
                repo: other.to_string(),
                digest: entry.digest.clone(),
                from: first.name.to_string(),
            });
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
    Err(ImportError::OmittedMissing { missing: lacking })
}

/// Uploads in flight at once at most (small blobs; the byte budget bounds large ones).
const MAX_UPLOAD_TASKS: usize = 64;

/// The upload side: answers the plan, then runs uploads concurrently within a byte budget of
/// [`MAX_INFLIGHT`] × [`CHUNK_SIZE`] (a whole blob counts its size, a streamed one a chunk)
/// and at most [`MAX_UPLOAD_TASKS`] at once: many small blobs fly together over a slow link,
/// while memory stays as bounded as with [`MAX_INFLIGHT`] large ones.
/// Runs the uploads the reader asks for. Each blob upload is a progress task (its own bar,
/// labelled with the blob, from its start to the registry's answer), so bars stay up while
/// uploads run after the reading is done.
async fn drive(
    registry: Arc<Registry>,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
    jobs: usize,
    reporter: &dyn crate::progress::Reporter,
) -> Result<Pushed, ImportError> {
    let budget = (MAX_INFLIGHT * CHUNK_SIZE) as u64;
    let mut in_flight = 0u64;
    let mut total = Pushed::default();
    // (memory cost, task id, blob size, outcome)
    type Task = (u64, String, u64, Result<Pushed, ImportError>);
    let mut tasks: tokio::task::JoinSet<Task> = tokio::task::JoinSet::new();
    let mut stream_tx: Option<tokio::sync::mpsc::Sender<Option<Bytes>>> = None;
    let mut stream_id = String::new();
    let mut add =
        |r: Result<Task, tokio::task::JoinError>, in_flight: &mut u64| -> Result<(), ImportError> {
            let (cost, id, size, p) = r.map_err(ImportError::UploadTask)?;
            *in_flight -= cost;
            if p.is_ok() {
                // A whole blob goes in one request: its bar fills when the registry answers
                // (a streamed one is full already; a task never passes its total).
                reporter.task_advance(&id, size);
            }
            reporter.task_done(&id);
            let p = p?;
            // In the target now: the import's bar counts it.
            reporter.advance(size);
            total.pushed += p.pushed;
            total.mounted += p.mounted;
            total.bytes += p.bytes;
            Ok(())
        };
    while let Some(msg) = rx.recv().await {
        while let Some(r) = tasks.try_join_next() {
            add(r, &mut in_flight)?;
        }
        let cost = match &msg {
            Msg::Whole { entry, .. } => entry.size.max(1),
            Msg::Start { .. } => CHUNK_SIZE as u64,
            _ => 0,
        };
        if cost > 0 {
            while tasks.len() >= MAX_UPLOAD_TASKS
                || (!tasks.is_empty() && in_flight + cost > budget)
            {
                if let Some(r) = tasks.join_next().await {
                    add(r, &mut in_flight)?;
                }
            }
            in_flight += cost;
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
                let id = format!("upload {}", entry.digest);
                reporter.task_start(&id, &format!("push {}", entry.digest.short()), entry.size);
                let size = entry.size;
                let task = upload_whole(registry.clone(), entry, repos, bytes);
                tasks.spawn(async move { (cost, id, size, task.await) });
            }
            Msg::Start { entry, repos } => {
                let (tx, chunks) = tokio::sync::mpsc::channel(2);
                stream_tx = Some(tx);
                let id = format!("upload {}", entry.digest);
                reporter.task_start(&id, &format!("push {}", entry.digest.short()), entry.size);
                stream_id.clone_from(&id);
                let size = entry.size;
                let task = upload_stream(registry.clone(), entry, repos, chunks);
                tasks.spawn(async move { (cost, id, size, task.await) });
            }
            Msg::Chunk(chunk) => {
                reporter.task_advance(&stream_id, chunk.len() as u64);
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
        add(r, &mut in_flight)?;
    }
    Ok(total)
}

/// What the upload stage leaves for the next: every manifest and piece of evidence read and
/// checked, every blob verified and in the target.
pub(super) struct Upload {
    /// The bundle's table of contents, manifests and evidence.
    pub contents: BundleContents,
    /// The target repository of each artifact.
    pub repos: Vec<Repo>,
    /// What the isolated side's policy decided.
    pub gate: gate::GateOutcome,
    /// The signature gate's outcome.
    pub status: Option<crate::bundle::signature::SignatureStatus>,
    /// Blobs uploaded, mounted and bytes sent.
    pub pushed: Pushed,
    /// Blobs the target already had.
    pub skipped: usize,
}

/// Reads the bundle once, on a thread, through the gates; uploads run concurrently.
pub(super) async fn upload(
    source: &crate::bundle::BundleSource,
    registry: Arc<Registry>,
    opts: &super::ImportOptions,
    replay: Option<&replay::ReplayGuard>,
    reporter: &dyn crate::progress::Reporter,
) -> Result<Upload, ImportError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(2);
    let mut feeder = Feeder {
        path: source.path(),
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
        replay,
        reporter,
    };
    // The bundle's bytes as read are not the import's progress (see `Feeder::reporter`).
    let reading = crate::progress::Unsettled(reporter);
    let reading = &reading;
    let rt = tokio::runtime::Handle::current();
    let (read, uploaded) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let summary = match &opts.files_to {
                    None => source.read(&opts.signature, &mut feeder, reading),
                    Some(dir) => {
                        let mut tee = crate::files::ExtractFiles::new(&mut feeder, dir);
                        source.read(&opts.signature, &mut tee, reading)
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
            let uploaded = rt.block_on(drive(registry.clone(), rx, opts.jobs, reporter));
            let read = reader.join().map_err(|_| ImportError::ReaderPanicked);
            (read, uploaded)
        })
    });
    let (summary, repos, skipped, status, gate) = read?;
    // A bundle error explains an upload side that stopped; otherwise the upload error stands.
    let (summary, pushed) = match (summary, uploaded) {
        (Err(e @ ImportError::Bundle(_)), _)
        | (Err(e @ ImportError::Mapping(_)), _)
        | (Err(e @ ImportError::Gate(_)), _)
        | (Err(e @ ImportError::Replay(_)), _)
        | (Err(e @ ImportError::ScanGate(_)), _)
        | (Err(e @ ImportError::ScanFailed { .. }), _) => return Err(e),
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e),
        (Ok(s), Ok(p)) => (s, p),
    };
    Ok(Upload {
        contents: summary.contents,
        repos,
        gate,
        status,
        pushed,
        skipped,
    })
}
