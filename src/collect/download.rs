//! The download stage of `collect`: blobs the cache lacks, many at once within a byte budget
//! ahead of the next stage (pack, or scan), handed to it as each is done through a bounded
//! queue.

use std::path::{Path, PathBuf};

use futures_util::stream::StreamExt;

use super::{cache_path, CollectError};
use crate::bundle::writer::{BlobData, InPlace, WriteError};
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

/// A blob the download stage has put in the cache and checked against its digest: what it
/// hands on, in the order downloads finish. It holds its share of the download-ahead budget
/// until the next stage drops it.
#[derive(Debug)]
pub(super) struct Downloaded {
    /// The blob.
    pub(super) digest: Digest,
    /// Its file in the cache.
    pub(super) path: PathBuf,
    _budget: tokio::sync::OwnedSemaphorePermit,
}

impl Downloaded {
    /// `digest`, now at `path` in the cache, holding `budget` until the next stage drops it.
    pub(super) fn new(
        digest: Digest,
        path: PathBuf,
        budget: tokio::sync::OwnedSemaphorePermit,
    ) -> Self {
        Downloaded {
            digest,
            path,
            _budget: budget,
        }
    }

    /// The blob as the bundle writer takes it: a cache file already checked in this run.
    pub(super) fn in_place(self) -> InPlace {
        InPlace {
            digest: self.digest,
            data: BlobData::File {
                path: self.path,
                verified: true,
            },
        }
    }
}

/// The queue from the download stage to the next one. Each value in it (or held by the next
/// stage) holds at least one permit of the download-ahead budget, so it never holds more than
/// the budget has permits: the download stage never waits on it.
pub(super) fn queue(
    blobs: usize,
) -> (
    tokio::sync::mpsc::Sender<Downloaded>,
    tokio::sync::mpsc::Receiver<Downloaded>,
) {
    let permits = usize::try_from(DOWNLOAD_AHEAD_BYTES / AHEAD_UNIT).unwrap_or(usize::MAX);
    tokio::sync::mpsc::channel(blobs.clamp(1, permits))
}

/// The download stage: blobs the cache lacks, started in pack order, `jobs` at a time and
/// within [`DOWNLOAD_AHEAD_BYTES`] of the next stage, each handed on through `done` as soon as
/// it is in the cache (a slow blob holds only its own slot). Stops, without an error of its
/// own, when the next stage drops its end of the queue.
pub(super) async fn download_stage(
    registry: &Registry,
    cache: &Path,
    missing: Vec<(Digest, Descriptor, Repo)>,
    jobs: usize,
    done: tokio::sync::mpsc::Sender<Downloaded>,
    reporter: &dyn Reporter,
) -> Result<(), CollectError> {
    let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(
        usize::try_from(DOWNLOAD_AHEAD_BYTES / AHEAD_UNIT).unwrap_or(1),
    ));
    let download = |digest: Digest, desc: Descriptor, repo: Repo, permit| {
        let path = cache_path(cache, &digest);
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
                .download_blob(&repo, &digest, desc.size, &path, &task)
                .await;
            reporter.task_done(&id);
            got.map_err(|source| CollectError::Registry {
                artifact: format!("{repo}"),
                source,
            })?;
            Ok::<_, CollectError>(Downloaded::new(digest, path, permit))
        }
    };
    let mut queue = missing.into_iter().peekable();
    let mut running = futures_util::stream::FuturesUnordered::new();
    loop {
        while running.len() < jobs.max(1) {
            let Some((_, desc, _)) = queue.peek() else {
                break;
            };
            let want = ahead_permits(desc.size);
            let permit = match budget.clone().try_acquire_many_owned(want) {
                Ok(p) => p,
                // Nothing running: what holds the budget is with the next stage; wait for it.
                Err(_) if running.is_empty() => budget
                    .clone()
                    .acquire_many_owned(want)
                    .await
                    .map_err(|_| WriteError::Aborted("download budget closed".into()))?,
                Err(_) => break,
            };
            let Some((digest, desc, repo)) = queue.next() else {
                break;
            };
            running.push(download(digest, desc, repo, permit));
        }
        let Some(finished) = running.next().await else {
            break;
        };
        // The queue has room for every value the budget allows (see `queue`): this never
        // waits on the next stage. A closed queue means that stage stopped; its own result
        // says why.
        if done.send(finished?).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
