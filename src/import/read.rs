//! The read stage of an import: the bundle is read once, on its own thread, through the
//! reader's gates (signature, replay, policy and scan all run before the first blob). Once
//! they passed it sends the plan stage the [`Needs`](super::plan::Needs) (a one-shot value),
//! then every blob's verified bytes in bundle order through a bounded queue. It never waits
//! for an answer: what the target lacks is the plan stage's business.

use std::path::Path;

use bytes::Bytes;

use crate::bundle::reader::{BlobVisitor, BundleContents, ReadSummary};
use crate::bundle::signature::SignatureStatus;
use crate::bundle::{BlobEntry, BundleError, BundleSource};
use crate::oci::Digest;
use crate::registry::Repo;

use super::plan::{self, Needs};
use super::{gate, replay, ImportError, ImportOptions, CHUNK_SIZE};

/// A blob's bytes as the read stage sends them: small blobs whole, large ones in chunks.
pub(super) enum Blob {
    /// A blob up to [`CHUNK_SIZE`], read whole and verified.
    Whole { entry: BlobEntry, bytes: Bytes },
    /// A larger blob starts; its chunks follow.
    Start { entry: BlobEntry },
    /// The next chunk of the larger blob (not verified until its `End`).
    Chunk(Bytes),
    /// The larger blob ended; `verified` is false when its bytes did not match its digest.
    End { verified: bool },
    /// A larger blob the read stage passed over: the upload stage reads and checks it from the
    /// bundle at `offset` (uncompressed), several such at once.
    Located { entry: BlobEntry, offset: u64 },
}

/// What the read stage leaves: the bundle's small contents and what the gates decided.
pub(super) struct BundleRead {
    /// The bundle's table of contents, manifests and evidence.
    pub contents: BundleContents,
    /// The target repository of each artifact.
    pub repos: Vec<Repo>,
    /// What the isolated side's policy decided.
    pub gate: gate::GateOutcome,
    /// The signature gate's outcome.
    pub status: Option<SignatureStatus>,
}

/// The bundle reader's visitor: runs the gates, maps names, then sends forward.
struct ReadStage<'a> {
    path: &'a Path,
    opts: &'a ImportOptions,
    replay: Option<&'a replay::ReplayGuard>,
    status: Option<SignatureStatus>,
    repos: Vec<Repo>,
    gate: gate::GateOutcome,
    /// Taken when the gates passed.
    needs: Option<tokio::sync::oneshot::Sender<Needs>>,
    blobs: tokio::sync::mpsc::Sender<Blob>,
    /// Whether the upload stage can read blobs from the bundle by offset: large blobs are
    /// then left to it ([`Blob::Located`]).
    located: bool,
}

fn read_error(entry: &BlobEntry, e: std::io::Error) -> ImportError {
    BundleError::Corrupt {
        path: Default::default(),
        where_: format!("blob {}", entry.digest),
        why: e.to_string(),
    }
    .into()
}

impl ReadStage<'_> {
    /// Sends `blob` on, waiting while the queue is full.
    fn send(&self, blob: Blob) -> Result<(), ImportError> {
        self.blobs
            .blocking_send(blob)
            .map_err(|_| ImportError::UploadStopped)
    }
}

impl BlobVisitor for ReadStage<'_> {
    type Error = ImportError;

    fn manifest(&mut self, contents: &BundleContents) -> Result<(), ImportError> {
        let status = crate::bundle::signature::check(self.path, contents, &self.opts.signature)?;
        if let (Some(guard), SignatureStatus::Verified { signers }) = (self.replay, &status) {
            guard.check(
                &contents.manifest,
                &Digest::of(&contents.manifest_bytes),
                signers,
            )?;
        }
        self.status = Some(status);
        let names = self.opts.mapping.map_all(&contents.manifest.artifacts)?;
        self.repos = names
            .into_iter()
            .map(|n| Repo::new(self.opts.target.registry.clone(), n))
            .collect();
        Ok(())
    }

    fn before_blobs(&mut self, contents: &BundleContents) -> Result<(), ImportError> {
        // Every manifest and all evidence is in; nothing is pushed yet.
        if let Some(policy) = &self.opts.image_policy {
            self.gate = gate::check(contents, policy)?;
        }
        // The scan gate runs on the evidence, in memory, before the plan stage gets its
        // input: a refusal here leaves nothing at the target.
        if let Some(scan_gate) = &self.opts.scan_gate {
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
        let needs = plan::needs(contents, &self.repos, &self.gate.skipped);
        self.needs
            .take()
            .ok_or(ImportError::UploadStopped)?
            .send(needs)
            .map_err(|_| ImportError::UploadStopped)
    }

    fn defer(&mut self, entry: &BlobEntry, offset: u64) -> Result<bool, ImportError> {
        if !self.located || !super::located::is_large(entry) {
            return Ok(false);
        }
        self.send(Blob::Located {
            entry: entry.clone(),
            offset,
        })?;
        Ok(true)
    }

    fn blob(&mut self, entry: &BlobEntry, data: &mut dyn std::io::Read) -> Result<(), ImportError> {
        if entry.size <= CHUNK_SIZE as u64 {
            let mut buf = Vec::with_capacity(entry.size as usize);
            // The reader checks the digest at the end of the entry: read_to_end fails on a
            // mismatch, so only verified bytes are sent.
            data.read_to_end(&mut buf)
                .map_err(|e| read_error(entry, e))?;
            return self.send(Blob::Whole {
                entry: entry.clone(),
                bytes: Bytes::from(buf),
            });
        }
        self.send(Blob::Start {
            entry: entry.clone(),
        })?;
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut filled = 0;
        loop {
            match data.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let _ = self.send(Blob::End { verified: false });
                    return Err(read_error(entry, e));
                }
            }
            if filled == CHUNK_SIZE {
                self.send(Blob::Chunk(Bytes::copy_from_slice(&buf)))?;
                filled = 0;
            }
        }
        if filled > 0 {
            self.send(Blob::Chunk(Bytes::copy_from_slice(&buf[..filled])))?;
        }
        self.send(Blob::End { verified: true })
    }
}

/// Reads `source` once on the calling thread (plain files also written to `--files-to`),
/// sending the plan stage its [`Needs`] on `needs` and then the blobs on `blobs`; with
/// `located`, blobs over [`CHUNK_SIZE`] go as [`Blob::Located`], their bytes passed over. The
/// bytes read report to `reading`, which is not the import's bar (see `import::stages::PHASE`).
pub(super) fn run(
    source: &BundleSource,
    opts: &ImportOptions,
    replay: Option<&replay::ReplayGuard>,
    needs: tokio::sync::oneshot::Sender<Needs>,
    blobs: tokio::sync::mpsc::Sender<Blob>,
    located: bool,
    reading: &dyn crate::progress::Reporter,
) -> Result<BundleRead, ImportError> {
    let mut stage = ReadStage {
        path: source.path(),
        opts,
        replay,
        status: None,
        repos: Vec::new(),
        gate: gate::GateOutcome::default(),
        needs: Some(needs),
        blobs,
        located,
    };
    let summary: ReadSummary = match &opts.files_to {
        None => source.read(&opts.signature, &mut stage, reading)?,
        Some(dir) => {
            let mut tee = crate::files::ExtractFiles::new(&mut stage, dir);
            source.read(&opts.signature, &mut tee, reading)?
        }
    };
    Ok(BundleRead {
        contents: summary.contents,
        repos: stage.repos,
        gate: stage.gate,
        status: stage.status,
    })
}
