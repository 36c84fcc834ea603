//! An import's blobs go through three stages, each joined to the next by a bounded queue and
//! passing typed values forward only:
//!
//! ```text
//! read (thread, read.rs) ──Needs (once)──▶ plan (plan.rs) ──Upload──▶ upload (upload.rs)
//!   gates, then blobs    ──Blob (queue)──▶  HEADs, omitted     (queue)    concurrent uploads,
//!   in bundle order                         mounts, filter                mounts; large blobs
//!                                                                         read by offset
//!                                                                         (located.rs)
//! ```
//!
//! The read stage runs the gates and sends [`Needs`](super::plan::Needs) before its first
//! blob, so nothing reaches the target from a refused bundle; the plan stage makes the plan
//! before it lets the first blob through. A blob over [`CHUNK_SIZE`](super::CHUNK_SIZE) in a
//! bundle with seekable frames goes on as its offset only ([`located`]): the read stage passes
//! over its bytes and the upload stage reads and checks it from the bundle, several at once,
//! so large uploads do not wait for each other. Every byte is hashed once, by the read stage
//! or by the located read; memory is bounded by the queues and the upload stage's budget
//! (see [`MAX_INFLIGHT`](super::MAX_INFLIGHT)).

use std::sync::Arc;

use crate::bundle::reader::BundleContents;
use crate::bundle::signature::SignatureStatus;
use crate::bundle::BundleSource;
use crate::registry::{Registry, Repo};

use super::upload::Pushed;
use super::{gate, located, plan, read, replay, upload, ImportError, ImportOptions};

/// Blobs (or chunks) queued from the read stage to the plan stage.
const READ_QUEUE: usize = 1;
/// Blobs (or chunks) queued from the plan stage to the upload stage.
const UPLOAD_QUEUE: usize = 1;

/// What the blob stages leave for the manifests: every manifest and piece of evidence read
/// and checked, every blob verified and in the target.
pub(super) struct Transferred {
    /// The bundle's table of contents, manifests and evidence.
    pub contents: BundleContents,
    /// The target repository of each artifact.
    pub repos: Vec<Repo>,
    /// What the isolated side's policy decided.
    pub gate: gate::GateOutcome,
    /// The signature gate's outcome.
    pub status: Option<SignatureStatus>,
    /// Blobs uploaded, mounted and bytes sent.
    pub pushed: Pushed,
    /// Blobs the target already had.
    pub skipped: usize,
}

/// Runs read → plan → upload: the read stage on a thread of its own, the plan and upload
/// stages concurrently on this task. A stage that stops closes its queues, which stops the
/// others; the error reported is the one that caused it (see [`first_cause`]).
pub(super) async fn run(
    source: &BundleSource,
    registry: Arc<Registry>,
    opts: &ImportOptions,
    replay: Option<&replay::ReplayGuard>,
    reporter: &dyn crate::progress::Reporter,
) -> Result<Transferred, ImportError> {
    let (needs_tx, needs_rx) = tokio::sync::oneshot::channel();
    let (blobs_tx, blobs_rx) = tokio::sync::mpsc::channel(READ_QUEUE);
    let (upload_tx, upload_rx) = tokio::sync::mpsc::channel(UPLOAD_QUEUE);
    // The bundle's bytes as read are not the import's progress (see `stages::PHASE`).
    let reading = crate::progress::Unsettled(reporter);
    let reading = &reading;
    // Large blobs are read by offset, several at once, when the bundle's frames allow it.
    let located = located::Located::open(source).map(Arc::new);
    let has_located = located.is_some();
    let rt = tokio::runtime::Handle::current();
    let (read, planned, uploaded) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                read::run(
                    source,
                    opts,
                    replay,
                    needs_tx,
                    blobs_tx,
                    has_located,
                    reading,
                )
            });
            let (planned, uploaded) = rt.block_on(async {
                tokio::join!(
                    plan::run(&registry, needs_rx, blobs_rx, upload_tx, opts.jobs, reporter),
                    upload::run(registry.clone(), located, upload_rx, reporter),
                )
            });
            let read = reader.join().unwrap_or(Err(ImportError::ReaderPanicked));
            (read, planned, uploaded)
        })
    });
    let (read, skipped, pushed) = first_cause(read, planned, uploaded)?;
    Ok(Transferred {
        contents: read.contents,
        repos: read.repos,
        gate: read.gate,
        status: read.status,
        pushed,
        skipped,
    })
}

/// The error that stopped the stages: a stage whose neighbour stopped fails with
/// [`ImportError::UploadStopped`], which only names the cause when nothing else does. The
/// read stage's error (the bundle or a gate) comes first, then the upload stage's, then the
/// plan's.
fn first_cause<R, P, U>(
    read: Result<R, ImportError>,
    planned: Result<P, ImportError>,
    uploaded: Result<U, ImportError>,
) -> Result<(R, P, U), ImportError> {
    let errors = match (read, planned, uploaded) {
        (Ok(r), Ok(p), Ok(u)) => return Ok((r, p, u)),
        (r, p, u) => [r.err(), u.err(), p.err()],
    };
    // The first of the errors that is not a mere stop (`min_by_key` keeps the first of equals).
    Err(errors
        .into_iter()
        .flatten()
        .min_by_key(|e| matches!(e, ImportError::UploadStopped))
        .unwrap_or(ImportError::UploadStopped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_error() -> ImportError {
        ImportError::Bundle(crate::bundle::BundleError::Incomplete {
            path: "b.tar.zst".into(),
            why: "cut".into(),
        })
    }

    fn omitted() -> ImportError {
        ImportError::OmittedMissing {
            missing: vec!["sha256:00 (1 bytes) for r/a".into()],
        }
    }

    fn refused_mount() -> ImportError {
        ImportError::MountRefused {
            repo: "r/b".into(),
            digest: crate::oci::Digest::of(b"x"),
            from: "r/a".into(),
        }
    }

    #[test]
    fn the_stage_that_caused_a_stop_names_the_error() {
        type Stage = Result<(), ImportError>;
        let stop = || ImportError::UploadStopped;
        let cases: Vec<(Stage, Stage, Stage, &str)> = vec![
            // The bundle is bad: the read stage's error stands over the stops it caused.
            (Err(bundle_error()), Err(stop()), Ok(()), "Bundle"),
            // The bundle's error stands even when an upload also failed.
            (
                Err(bundle_error()),
                Err(stop()),
                Err(refused_mount()),
                "Bundle",
            ),
            // An upload failed: the reader and the plan only saw their queues close.
            (
                Err(stop()),
                Err(stop()),
                Err(refused_mount()),
                "MountRefused",
            ),
            // The plan refused: the reader stopped, the upload stage ended cleanly.
            (Err(stop()), Err(omitted()), Ok(()), "OmittedMissing"),
            // Only stops: that is what is reported.
            (Err(stop()), Ok(()), Ok(()), "UploadStopped"),
        ];
        for (read, planned, uploaded, want) in cases {
            let got = first_cause(read, planned, uploaded).expect_err("an error");
            assert!(format!("{got:?}").starts_with(want), "{want}: got {got:?}");
        }
        assert!(first_cause::<u8, u8, u8>(Ok(1), Ok(2), Ok(3)).is_ok_and(|t| t == (1, 2, 3)));
    }
}
