//! The upload stage of an import: every blob the plan stage passes on is uploaded to the first
//! repository that lacks it, concurrently within a memory budget, and mounted into the others.
//! Small blobs go in one retryable request; a large one streams in one `PATCH` whose body ends
//! cleanly only once the read stage has verified the whole blob.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::bundle::BlobEntry;
use crate::registry::{Registry, Repo};

use super::located::{self, Located};
use super::{reg, ImportError, CHUNK_SIZE, MAX_INFLIGHT};

/// A blob to upload, from the plan stage, in bundle order.
pub(super) enum Upload {
    /// A small blob, read whole and verified, and where it goes.
    Whole {
        entry: BlobEntry,
        repos: Vec<Repo>,
        bytes: Bytes,
    },
    /// A large blob starts, and where it goes; its chunks follow.
    Start { entry: BlobEntry, repos: Vec<Repo> },
    /// The next chunk of the large blob.
    Chunk(Bytes),
    /// The large blob ended; `verified` is false when the reader found it bad.
    End { verified: bool },
    /// A large blob to read from the bundle at `offset` and upload (see [`located`]).
    Located {
        entry: BlobEntry,
        repos: Vec<Repo>,
        offset: u64,
    },
    /// A large blob the target has: read from the bundle at `offset` and checked only.
    Check { entry: BlobEntry, offset: u64 },
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

/// Reads a large blob from the bundle (on a blocking thread) and streams it to the first
/// repository that lacks it; the upload ends cleanly only once the blob matched its digest.
/// A read error (the bundle is bad) stands over the upload's error it causes.
async fn upload_located(
    registry: Arc<Registry>,
    located: Arc<Located>,
    entry: BlobEntry,
    repos: Vec<Repo>,
    offset: u64,
    read: Arc<AtomicU64>,
) -> Result<Pushed, ImportError> {
    let (tx, chunks) = tokio::sync::mpsc::channel(located::QUEUE);
    let read_entry = entry.clone();
    let read = tokio::task::spawn_blocking(move || located.send(&read_entry, offset, &tx, &read));
    let uploaded = upload_stream(registry, entry, repos, chunks).await;
    match read.await {
        Ok(Ok(())) => uploaded,
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ImportError::UploadTask(e)),
    }
}

/// An upload task's outcome: (memory cost, task id, blob size, what it did).
type Task = (u64, String, u64, Result<Pushed, ImportError>);

/// How often the bars of blobs read by offset are brought up to date.
const PROGRESS_TICK: std::time::Duration = std::time::Duration::from_millis(200);

/// A blob being read by offset on a blocking thread, and how much of it its bar shows.
struct Reading {
    id: String,
    read: Arc<AtomicU64>,
    shown: u64,
}

impl Reading {
    /// Starts tracking task `id` in `reading`; returns the counter its reading thread advances.
    fn track(reading: &mut Vec<Reading>, id: &str) -> Arc<AtomicU64> {
        let read = Arc::new(AtomicU64::new(0));
        reading.push(Reading {
            id: id.to_owned(),
            read: read.clone(),
            shown: 0,
        });
        read
    }
}

/// Advances each located read's bar by what its thread read since.
fn show(reading: &mut [Reading], reporter: &dyn crate::progress::Reporter) {
    for r in reading {
        let now = r.read.load(Ordering::Relaxed);
        if now > r.shown {
            reporter.task_advance(&r.id, now - r.shown);
            r.shown = now;
        }
    }
}

/// The next upload task to end; the located reads' bars move meanwhile.
async fn next_done(
    tasks: &mut tokio::task::JoinSet<Task>,
    reading: &mut [Reading],
    reporter: &dyn crate::progress::Reporter,
) -> Option<Result<Task, tokio::task::JoinError>> {
    loop {
        tokio::select! {
            r = tasks.join_next() => return r,
            () = tokio::time::sleep(PROGRESS_TICK) => show(reading, reporter),
        }
    }
}

/// Uploads in flight at once at most (small blobs; the byte budget bounds large ones).
const MAX_UPLOAD_TASKS: usize = 64;

/// The upload stage: runs the uploads the plan stage passes on, concurrently within a byte
/// budget of [`MAX_INFLIGHT`] × [`CHUNK_SIZE`] (a whole blob counts its size, a streamed one
/// a chunk) and at most [`MAX_UPLOAD_TASKS`] at once: many small blobs fly together over a
/// slow link, while memory stays as bounded as with [`MAX_INFLIGHT`] large ones. Each blob
/// upload is a progress task (its own bar, labelled with the blob, from its start to the
/// registry's answer), so bars stay up while uploads run after the reading is done; a blob
/// counts on the import's bar once the registry answered.
pub(super) async fn run(
    registry: Arc<Registry>,
    located: Option<Arc<Located>>,
    mut rx: tokio::sync::mpsc::Receiver<Upload>,
    reporter: &dyn crate::progress::Reporter,
) -> Result<Pushed, ImportError> {
    let budget = (MAX_INFLIGHT * CHUNK_SIZE) as u64;
    let mut in_flight = 0u64;
    let mut total = Pushed::default();
    let mut tasks: tokio::task::JoinSet<Task> = tokio::task::JoinSet::new();
    let mut stream_tx: Option<tokio::sync::mpsc::Sender<Option<Bytes>>> = None;
    let mut stream_id = String::new();
    let mut reading: Vec<Reading> = Vec::new();
    let mut add = |r: Result<Task, tokio::task::JoinError>,
                   in_flight: &mut u64,
                   reading: &mut Vec<Reading>|
     -> Result<(), ImportError> {
        let (cost, id, size, p) = r.map_err(ImportError::UploadTask)?;
        *in_flight -= cost;
        reading.retain(|r| r.id != id);
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
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = tokio::time::sleep(PROGRESS_TICK) => {
                show(&mut reading, reporter);
                continue;
            }
        };
        let Some(msg) = msg else { break };
        while let Some(r) = tasks.try_join_next() {
            add(r, &mut in_flight, &mut reading)?;
        }
        let cost = match &msg {
            Upload::Whole { entry, .. } => entry.size.max(1),
            Upload::Start { .. } => CHUNK_SIZE as u64,
            Upload::Located { .. } | Upload::Check { .. } => located::COST,
            _ => 0,
        };
        if cost > 0 {
            while tasks.len() >= MAX_UPLOAD_TASKS
                || (!tasks.is_empty() && in_flight + cost > budget)
            {
                if let Some(r) = next_done(&mut tasks, &mut reading, reporter).await {
                    add(r, &mut in_flight, &mut reading)?;
                }
            }
            in_flight += cost;
        }
        match msg {
            Upload::Whole {
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
            Upload::Start { entry, repos } => {
                let (tx, chunks) = tokio::sync::mpsc::channel(2);
                stream_tx = Some(tx);
                let id = format!("upload {}", entry.digest);
                reporter.task_start(&id, &format!("push {}", entry.digest.short()), entry.size);
                stream_id.clone_from(&id);
                let size = entry.size;
                let task = upload_stream(registry.clone(), entry, repos, chunks);
                tasks.spawn(async move { (cost, id, size, task.await) });
            }
            Upload::Located {
                entry,
                repos,
                offset,
            } => {
                let located = located.clone().ok_or(ImportError::UploadStopped)?;
                let id = format!("upload {}", entry.digest);
                reporter.task_start(&id, &format!("push {}", entry.digest.short()), entry.size);
                let size = entry.size;
                let read = Reading::track(&mut reading, &id);
                let task = upload_located(registry.clone(), located, entry, repos, offset, read);
                tasks.spawn(async move { (cost, id, size, task.await) });
            }
            Upload::Check { entry, offset } => {
                let located = located.clone().ok_or(ImportError::UploadStopped)?;
                let id = format!("check {}", entry.digest);
                reporter.task_start(&id, &format!("check {}", entry.digest.short()), entry.size);
                let size = entry.size;
                let read = Reading::track(&mut reading, &id);
                let task = tokio::task::spawn_blocking(move || {
                    located
                        .check(&entry, offset, &read)
                        .map(|()| Pushed::default())
                });
                tasks.spawn(async move {
                    let checked = task.await.map_err(ImportError::UploadTask);
                    (cost, id, size, checked.and_then(|c| c))
                });
            }
            Upload::Chunk(chunk) => {
                reporter.task_advance(&stream_id, chunk.len() as u64);
                if let Some(tx) = &stream_tx {
                    if tx.send(Some(chunk)).await.is_err() {
                        // The upload failed; its error comes out of the join below.
                        stream_tx = None;
                    }
                }
            }
            Upload::End { verified } => {
                if let Some(tx) = stream_tx.take() {
                    if verified {
                        let _ = tx.send(None).await;
                    }
                }
            }
        }
    }
    drop(stream_tx);
    while let Some(r) = next_done(&mut tasks, &mut reading, reporter).await {
        add(r, &mut in_flight, &mut reading)?;
    }
    Ok(total)
}
