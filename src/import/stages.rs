//! The order of an import, as types. Each stage consumes the one before and is the only way to
//! make the next:
//!
//! ```text
//! Ready ──upload──▶ Uploaded ──push_manifests──▶ Manifested ──record──▶ Recorded ──tag──▶ report
//!         │
//!         └─ the blob stages (pipeline.rs), joined by bounded queues:
//!            read (read.rs, a thread: gates, then blobs in bundle order)
//!              ─▶ plan (plan.rs: HEADs, omitted mounts, drops what the target has)
//!              ─▶ upload (upload.rs: concurrent uploads, mounts)
//! ```
//!
//! [`Ready`] holds the ledger's [`Recorder`] whose preflight passed ("record intent": open,
//! locked for the whole import, verified, room checked). [`Ready::upload`] runs the blob
//! stages: the bundle is read through the gates (signature, replay, policy, scan: all before
//! any blob), and every blob the target lacks is uploaded. [`Uploaded::push_manifests`]
//! pushes manifests by digest and decides the tags (`push.rs`). [`Manifested::record`]
//! appends the admitted entry. Only [`Recorded::tag`] sets tags and referrers fallback
//! indexes, the commit point: an import that cannot be recorded is never pullable by tag.

use std::path::Path;
use std::sync::Arc;

use crate::bundle::reader::BundleContents;
use crate::bundle::{BundleError, BundleSource};
use crate::progress::Reporter;
use crate::registry::{Registry, Repo};

use super::pipeline;
use super::push::{self, TagPlan};
use super::record::{self, Recorder};
use super::{gate, ImportError, ImportOptions, ImportReport};

/// What every stage carries.
struct Ctx<'a> {
    source: &'a BundleSource,
    registry: Arc<Registry>,
    opts: &'a ImportOptions,
    recorder: Option<&'a mut Recorder>,
    reporter: &'a dyn Reporter,
}

/// The first stage: ready to read and push. With a ledger, its preflight passed.
pub struct Ready<'a> {
    ctx: Ctx<'a>,
}

/// Every blob verified and in the target; nothing pullable yet.
pub struct Uploaded<'a> {
    ctx: Ctx<'a>,
    contents: BundleContents,
    repos: Vec<Repo>,
    gate: gate::GateOutcome,
    report: ImportReport,
}

/// Every manifest pushed by digest; the tags decided but none set.
pub struct Manifested<'a> {
    ctx: Ctx<'a>,
    contents: BundleContents,
    plan: TagPlan,
    report: ImportReport,
}

/// The admission is in the ledger (or there is no ledger): tags may be set.
pub struct Recorded<'a> {
    registry: Arc<Registry>,
    ledger: Option<(&'a Path, record::Recorded)>,
    plan: TagPlan,
    report: ImportReport,
    reporter: &'a dyn Reporter,
    /// The bundle's manifest bytes: the last of the import's bar, counted once tagged.
    manifest_bytes: u64,
}

impl<'a> Ready<'a> {
    /// Starts an import of `source`. `recorder` is the ledger's, already through its
    /// preflight ([`Recorder::open`]); `None` imports without a record.
    pub fn new(
        source: &'a BundleSource,
        registry: Arc<Registry>,
        opts: &'a ImportOptions,
        recorder: Option<&'a mut Recorder>,
        reporter: &'a dyn Reporter,
    ) -> Self {
        Ready {
            ctx: Ctx {
                source,
                registry,
                opts,
                recorder,
                reporter,
            },
        }
    }

    /// Reads the bundle once through the gates (the replay check against the ledger's
    /// admitted bundles unless `allow_older`) and uploads every blob the target lacks.
    pub async fn upload(self) -> Result<Uploaded<'a>, ImportError> {
        let ctx = self.ctx;
        let replay = match (&ctx.recorder, ctx.opts.allow_older) {
            (Some(r), false) => Some(r.replay_guard()),
            _ => None,
        };
        let up = pipeline::run(
            ctx.source,
            ctx.registry.clone(),
            ctx.opts,
            replay,
            ctx.reporter,
        )
        .await?;
        let report = ImportReport {
            bundle: up.contents.manifest.name.clone(),
            blobs_pushed: up.pushed.pushed,
            blobs_mounted: up.pushed.mounted,
            blobs_skipped: up.skipped,
            bytes_pushed: up.pushed.bytes,
            signature: up.status,
            ..Default::default()
        };
        Ok(Uploaded {
            ctx,
            contents: up.contents,
            repos: up.repos,
            gate: up.gate,
            report,
        })
    }
}

impl<'a> Uploaded<'a> {
    /// Pushes every manifest (children before their index) and decides the tags.
    pub async fn push_manifests(mut self) -> Result<Manifested<'a>, ImportError> {
        let plan = push::push_manifests(
            &self.ctx.registry,
            &self.contents,
            &self.repos,
            &mut self.gate,
            &mut self.report,
            self.ctx.reporter,
        )
        .await?;
        Ok(Manifested {
            ctx: self.ctx,
            contents: self.contents,
            plan,
            report: self.report,
        })
    }
}

impl<'a> Manifested<'a> {
    /// Appends the admitted entry (or finds this admission already recorded). On failure
    /// nothing is tagged.
    pub fn record(self) -> Result<Recorded<'a>, ImportError> {
        let Ctx {
            source,
            registry,
            opts,
            recorder,
            reporter,
        } = self.ctx;
        let manifest_bytes = manifest_bytes(&self.contents);
        let ledger = match recorder {
            Some(r) => {
                let entry = r.record_admitted(source, &self.contents, opts, &self.report)?;
                Some((r.dir(), entry))
            }
            None => None,
        };
        Ok(Recorded {
            registry,
            ledger,
            plan: self.plan,
            report: self.report,
            reporter,
            manifest_bytes,
        })
    }
}

impl Recorded<'_> {
    /// The entry recorded, if there is a ledger.
    pub fn entry(&self) -> Option<&record::Recorded> {
        self.ledger.as_ref().map(|(_, e)| e)
    }

    /// Sets the tags and referrers fallback indexes: the import's commit point.
    pub async fn tag(self) -> Result<ImportReport, ImportError> {
        let mut report = self.report;
        let set = push::set_tags(&self.registry, self.plan, &mut report, self.reporter).await;
        match (set, self.ledger) {
            (Ok(()), _) => {
                // Pullable now: the manifests are the last bytes of the import's bar.
                self.reporter.advance(self.manifest_bytes);
                Ok(report)
            }
            (Err(e), None) => Err(e),
            (Err(e), Some((dir, entry))) => Err(ImportError::TagsAfterRecord {
                index: entry.index,
                ledger: dir.to_path_buf(),
                source: Box::new(e),
            }),
        }
    }
}

/// Opens what `bundle` names (a file, a parts manifest or its directory) and reads its table
/// of contents. A parts manifest too broken to use is still returned as the file offered (so
/// a ledger names it by its sha256), with the error as its table of contents.
pub fn open_bundle(
    bundle: &Path,
) -> Result<(BundleSource, Result<BundleContents, BundleError>), BundleError> {
    match BundleSource::resolve(bundle) {
        Ok(s) => {
            let toc = s.table_of_contents();
            Ok((s, toc))
        }
        Err(e) => match crate::bundle::parts::PartsSet::find(bundle) {
            Ok(file) if file.is_file() => Ok((BundleSource::File(file), Err(e))),
            _ => Err(e),
        },
    }
}

/// Imports `bundle` through every stage. With a `recorder`, the import is recorded: a failure
/// before the record (a bad bundle, a gate, the registry) as rejected, with its one-line
/// reason; success as admitted, before the first tag.
pub async fn run(
    bundle: &Path,
    registry: Arc<Registry>,
    opts: &ImportOptions,
    recorder: Option<&mut Recorder>,
    reporter: &dyn Reporter,
) -> Result<ImportReport, ImportError> {
    let (source, toc) = open_bundle(bundle)?;
    let total = toc.as_ref().map_or(0, |t| t.manifest.total_blob_bytes());
    reporter.phase(PHASE, total);
    let result = stages(bundle, &source, toc, registry, opts, recorder, reporter).await;
    reporter.finish_phase();
    result
}

/// The import's bar, in the bundle's bytes: a blob counts once the target has it (uploaded,
/// mounted or already there), the manifests once the tags are set, so it is full only when
/// the import is; uploads, manifests and tags have bars of their own meanwhile.
pub const PHASE: &str = "import";

/// The bytes of the bundle's manifests (stored among its blobs).
fn manifest_bytes(contents: &BundleContents) -> u64 {
    contents
        .manifest
        .blobs
        .iter()
        .filter(|b| crate::oci::media::is_manifest(&b.media_type))
        .map(|b| b.size)
        .sum()
}

async fn stages(
    bundle: &Path,
    source: &BundleSource,
    toc: Result<BundleContents, BundleError>,
    registry: Arc<Registry>,
    opts: &ImportOptions,
    mut recorder: Option<&mut Recorder>,
    reporter: &dyn Reporter,
) -> Result<ImportReport, ImportError> {
    let (toc, until_record) = match toc {
        Ok(toc) => {
            let ready = Ready::new(source, registry, opts, recorder.as_deref_mut(), reporter);
            (Some(toc), through_record(ready).await)
        }
        Err(e) => (None, Err(ImportError::Bundle(e))),
    };
    match until_record {
        Ok(recorded) => recorded.tag().await,
        // The record itself failed: a second append would fail the same way.
        Err(e @ ImportError::Record(_)) => Err(e),
        Err(e) => {
            if let Some(r) = recorder {
                let reason = format!(
                    "importing `{}` into {}: {}",
                    bundle.display(),
                    opts.target,
                    crate::error_chain(&e)
                );
                let evidence = match &e {
                    ImportError::ScanFailed { evidence, .. } => &evidence[..],
                    _ => &[],
                };
                match r.record_rejected(source, toc.as_ref(), opts, reason, evidence) {
                    // Nothing readable was offered (no such file): nothing to name.
                    Ok(_) | Err(record::RecordError::Bundle { .. }) => {}
                    Err(record) => {
                        return Err(ImportError::RejectionUnrecorded {
                            error: Box::new(e),
                            record: crate::error_chain(&record),
                        })
                    }
                }
            }
            Err(e)
        }
    }
}

async fn through_record(ready: Ready<'_>) -> Result<Recorded<'_>, ImportError> {
    ready.upload().await?.push_manifests().await?.record()
}

/// Imports a bundle file without a ledger (see [`run`]).
pub async fn import(
    bundle: &Path,
    registry: Arc<Registry>,
    opts: &ImportOptions,
    reporter: &dyn Reporter,
) -> Result<ImportReport, ImportError> {
    let source = BundleSource::File(bundle.to_path_buf());
    import_from(&source, registry, opts, reporter).await
}

/// [`import`] from a bundle file or split parts (read in sequence, each part checked as it
/// passes; a split bundle's parts manifest signature is checked first, with the same policy).
pub async fn import_from(
    source: &BundleSource,
    registry: Arc<Registry>,
    opts: &ImportOptions,
    reporter: &dyn Reporter,
) -> Result<ImportReport, ImportError> {
    let total = source.table_of_contents()?.manifest.total_blob_bytes();
    reporter.phase(PHASE, total);
    let ready = Ready::new(source, registry, opts, None, reporter);
    let result = match through_record(ready).await {
        Ok(recorded) => recorded.tag().await,
        Err(e) => Err(e),
    };
    reporter.finish_phase();
    result
}
