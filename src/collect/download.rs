//! The download stage of `collect`: blobs the cache lacks, many at once within a byte budget
//! ahead of the pack stage, handed to it in pack order through a bounded queue.

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::stream::StreamExt;

use super::{cache_path, CollectError};
use crate::bundle::writer::WriteError;
use crate::oci::{Descriptor, Digest};
use crate::progress::Reporter;
use crate::registry::{Registry, Repo};

/// Bytes the download stage may hold ahead of the pack stage (downloaded or downloading, not
/// yet taken by the writer): what keeps a slow writer from letting downloads run without
/// bound. A blob larger than this still goes, alone.
pub(super) const DOWNLOAD_AHEAD_BYTES: u64 = 256 << 20;
/// The unit of [`DOWNLOAD_AHEAD_BYTES`] as semaphore permits.
pub(super) const AHEAD_UNIT: u64 = 64 << 10;

/// Permits of the download-ahead budget for a blob of `size` bytes (at least one, at most the
/// whole budget).
pub(super) fn ahead_permits(size: u64) -> u32 {
    let all = DOWNLOAD_AHEAD_BYTES / AHEAD_UNIT;
    u32::try_from(size.div_ceil(AHEAD_UNIT).clamp(1, all)).unwrap_or(u32::MAX)
}

/// A downloaded blob handed to the pack stage, with its share of the download-ahead budget
/// (released when the writer takes it).
pub(super) type Arrival = (Digest, tokio::sync::OwnedSemaphorePermit);

/// The download stage: blobs the cache lacks, started in pack order, `jobs` at a time and
/// within [`DOWNLOAD_AHEAD_BYTES`] of the pack stage, finishing in any order (a slow blob
/// holds only its own slot); each is handed to the pack stage in pack order through the
/// queue, as soon as every blob before it has been.
pub(super) async fn download_stage(
    registry: &Registry,
    cache: &Path,
    missing: Vec<(Digest, Descriptor, Repo)>,
    jobs: usize,
    arrived: tokio::sync::mpsc::Sender<Arrival>,
    reporter: &dyn Reporter,
) -> Result<(), CollectError> {
    let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(
        usize::try_from(DOWNLOAD_AHEAD_BYTES / AHEAD_UNIT).unwrap_or(1),
    ));
    let download = |i: usize, digest: Digest, desc: Descriptor, repo: Repo, permit| {
        let dest = cache_path(cache, &digest);
        async move {
            // Its own bar, labelled with what is downloading now; the phase counts the blob
            // once, when it is packed.
            let id = digest.to_string();
            reporter.task_start(&id, &format!("{repo} {}", digest.short()), desc.size);
            let task = crate::progress::Task {
                parent: reporter,
                id: &id,
            };
            let got = registry
                .download_blob(&repo, &digest, desc.size, &dest, &task)
                .await;
            reporter.task_done(&id);
            got.map_err(|source| CollectError::Registry {
                artifact: format!("{repo}"),
                source,
            })?;
            Ok::<_, CollectError>((i, (digest, permit)))
        }
    };
    let mut queue = missing.into_iter().enumerate().peekable();
    let mut running = futures_util::stream::FuturesUnordered::new();
    // Finished out of order, waiting for the blobs before them.
    let mut done: BTreeMap<usize, Arrival> = BTreeMap::new();
    let mut next = 0;
    loop {
        while running.len() < jobs.max(1) {
            let Some((_, (_, desc, _))) = queue.peek() else {
                break;
            };
            let want = ahead_permits(desc.size);
            let permit = match budget.clone().try_acquire_many_owned(want) {
                Ok(p) => p,
                // Nothing running: what holds the budget is with the writer; wait for it.
                Err(_) if running.is_empty() => budget
                    .clone()
                    .acquire_many_owned(want)
                    .await
                    .map_err(|_| WriteError::Aborted("download budget closed".into()))?,
                Err(_) => break,
            };
            let Some((i, (digest, desc, repo))) = queue.next() else {
                break;
            };
            running.push(download(i, digest, desc, repo, permit));
        }
        let Some(finished) = running.next().await else {
            break;
        };
        let (i, arrival) = finished?;
        done.insert(i, arrival);
        while let Some(arrival) = done.remove(&next) {
            // The queue holds every blob (see `collect`): this never waits on the writer.
            if arrived.send(arrival).await.is_err() {
                return Err(CollectError::Write(WriteError::Aborted(
                    "the bundle writer stopped".into(),
                )));
            }
            next += 1;
        }
    }
    Ok(())
}

/// The pack stage's side of the queue: before packing a blob this run downloads, takes the
/// next arrival, which is that very blob (the download stage hands them over in pack order),
/// and releases its share of the download-ahead budget.
pub(super) fn await_arrival(
    arrivals: &std::sync::Mutex<tokio::sync::mpsc::Receiver<Arrival>>,
    d: &Digest,
    downloading: &std::collections::HashSet<Digest>,
) -> Result<(), WriteError> {
    if !downloading.contains(d) {
        return Ok(());
    }
    let mut rx = arrivals
        .lock()
        .map_err(|_| WriteError::Aborted("download queue poisoned".into()))?;
    match rx.blocking_recv() {
        Some((got, _permit)) if &got == d => Ok(()),
        Some((got, _)) => Err(WriteError::Aborted(format!(
            "blob {got} arrived where {d} was expected"
        ))),
        None => Err(WriteError::Aborted(format!("blob {d} was not downloaded"))),
    }
}
