//! What an import leaves in the provenance ledger: one entry per import, admitted or rejected,
//! and the [`Recorder`] that makes sure it can be written before anything is pushed.
//!
//! "Record intent", the stage between the gate and the upload, is a preflight, not an entry:
//! [`Recorder::open`] loads the key, opens the ledger (repairing what a crash left), takes
//! its lock for the whole import, checks the committed entries against the signed checkpoint,
//! and proves a record can be written (a probe file written, synced and renamed where an
//! append writes; [`RECORD_ROOM`] bytes free). The admitted entry is appended after the
//! manifests and before the first tag; see `docs/ARCHITECTURE.md` for the crash windows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bundle::reader::BundleContents;
use crate::bundle::signature::SignatureStatus;
use crate::bundle::{BundleError, BundleSource};
use crate::ledger::{
    ArtifactRecord, Entry, EvidenceRef, Ledger, LedgerError, LedgerSigner, Match, OpenOptions,
    Outcome, Query, Recovery, SignatureResult, Verdict,
};
use crate::oci::Digest;

use super::replay::ReplayGuard;
use super::{ImportOptions, ImportReport};

/// Free space a record may need: one entry line (at most 256 KiB), the checkpoint written
/// twice with its temporary files (at most 64 KiB each), the tree-state cache, and slack.
pub const RECORD_ROOM: u64 = 1024 * 1024;

/// Why an import cannot be recorded. Each names the ledger directory.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The ledger cannot take a record (read-only, full, locked, damaged, wrong password):
    /// found before anything was read or pushed.
    #[error("ledger `{}` cannot record this import, so nothing was pushed", dir.display())]
    Preflight {
        /// The ledger directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LedgerError,
    },
    /// The committed entries do not match the signed checkpoint: replay state and the record
    /// would be built on a guess.
    #[error("ledger `{}` does not match its signed checkpoint ({why}): replay checks and the record would be a guess, so nothing was pushed; run `airlock ledger verify {}`", dir.display(), dir.display())]
    Unverified {
        /// The ledger directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The admitted entry could not be appended: nothing was tagged.
    #[error("ledger `{}`: cannot record the admitted import, so nothing was tagged (its blobs and manifests are in the target by digest only; run the import again once the ledger can be written)", dir.display())]
    Admitted {
        /// The ledger directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LedgerError,
    },
    /// The rejection could not be appended.
    #[error("ledger `{}`: cannot record the rejected import", dir.display())]
    Rejected {
        /// The ledger directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: LedgerError,
    },
    /// A bundle too broken for an `airlock.json` could not be hashed to name it.
    #[error("ledger `{}`: cannot name the rejected bundle", dir.display())]
    Bundle {
        /// The ledger directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: Box<BundleError>,
    },
}

/// One entry this import left (or found already there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Its index.
    pub index: u64,
    /// Admitted (or rejected).
    pub admitted: bool,
    /// False when the latest entry already recorded this very admission (a re-run after a
    /// crash between the record and the tags): nothing was appended.
    pub appended: bool,
}

/// The ledger side of an import: open, locked and checked before the first byte is pushed;
/// records the outcome. Dropping it releases the lock.
pub struct Recorder {
    ledger: Ledger,
    signer: LedgerSigner,
    operator: String,
    /// The latest committed entry, to recognise an admission already recorded.
    latest: Option<Match>,
    replay: ReplayGuard,
    recorded: Vec<Recorded>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dir", &self.ledger.dir())
            .field("operator", &self.operator)
            .field("recorded", &self.recorded)
            .finish_non_exhaustive()
    }
}

/// Who runs the import: the one given, else `$USER`, else `unknown`.
pub fn operator(given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Recorder {
    /// The preflight: loads the ledger key with `password`, opens the ledger in `dir` (waiting
    /// up to `lock_timeout` for its lock, repairing a crash), checks the committed entries
    /// against the signed checkpoint, reads the replay state, and proves a record can be
    /// written. Fails, before the bundle is read, when any of it does not hold.
    pub fn open(
        dir: &Path,
        password: &[u8],
        operator: String,
        lock_timeout: Duration,
    ) -> Result<Recorder, RecordError> {
        let pre = |source| RecordError::Preflight {
            dir: dir.to_path_buf(),
            source,
        };
        let signer = LedgerSigner::load(dir, password).map_err(pre)?;
        let ledger = Ledger::open_with(
            dir,
            &OpenOptions {
                lock_timeout,
                ..OpenOptions::default()
            },
        )
        .map_err(pre)?;
        let found = ledger.find(&Query::All).map_err(pre)?;
        if let Some(why) = found.unverified_reason.clone() {
            return Err(RecordError::Unverified {
                dir: dir.to_path_buf(),
                why,
            });
        }
        ledger.check_writable(RECORD_ROOM).map_err(pre)?;
        let replay = ReplayGuard::from_found(dir, &found);
        Ok(Recorder {
            latest: found.matches.last().cloned(),
            ledger,
            signer,
            operator,
            replay,
            recorded: Vec::new(),
        })
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        self.ledger.dir()
    }

    /// What the open repaired after a crash, if anything.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.ledger.recovery()
    }

    /// What the ledger says was admitted last (read under the lock this import holds).
    pub fn replay_guard(&self) -> &ReplayGuard {
        &self.replay
    }

    /// The entries this import left, in order.
    pub fn recorded(&self) -> &[Recorded] {
        &self.recorded
    }

    /// Appends the admitted entry, unless the latest entry already records this same
    /// admission (same bundle, target, policy, artifacts and signatures: an import re-run
    /// after a crash between its record and its tags).
    pub(super) fn record_admitted(
        &mut self,
        source: &BundleSource,
        contents: &BundleContents,
        opts: &ImportOptions,
        report: &ImportReport,
    ) -> Result<Recorded, RecordError> {
        let dir = self.ledger.dir().to_path_buf();
        let entry = self
            .entry(source, Some(contents), opts, Ok(report))
            .map_err(|source| RecordError::Bundle {
                dir: dir.clone(),
                source: Box::new(source),
            })?;
        if let Some(last) = self.latest.as_ref().filter(|m| same_admission(m, &entry)) {
            let r = Recorded {
                index: last.index,
                admitted: true,
                appended: false,
            };
            self.recorded.push(r.clone());
            return Ok(r);
        }
        let mut entry = entry;
        // Stored before the entry that references them, so an entry never names evidence
        // that a crash kept from being written.
        for (r, bytes) in carried_scan_evidence(contents) {
            self.ledger
                .put_evidence(bytes)
                .map_err(|source| RecordError::Admitted {
                    dir: dir.clone(),
                    source,
                })?;
            entry.evidence.push(r);
        }
        self.append(entry, true)
            .map_err(|source| RecordError::Admitted { dir, source })
    }

    /// Appends a rejected entry: `reason` is the one-line error. `toc` is the bundle's table
    /// of contents when it could be read; `evidence` what a refusing gate judged (the carried
    /// SBOMs and reports), stored like an admission's so the rejection can be re-examined.
    pub fn record_rejected(
        &mut self,
        source: &BundleSource,
        toc: Option<&BundleContents>,
        opts: &ImportOptions,
        reason: String,
        evidence: &[(EvidenceRef, Vec<u8>)],
    ) -> Result<Recorded, RecordError> {
        let dir = self.ledger.dir().to_path_buf();
        let mut entry = self
            .entry(source, toc, opts, Err(reason))
            .map_err(|source| RecordError::Bundle {
                dir: dir.clone(),
                source: Box::new(source),
            })?;
        for (r, bytes) in evidence {
            self.ledger
                .put_evidence(bytes)
                .map_err(|source| RecordError::Rejected {
                    dir: dir.clone(),
                    source,
                })?;
            entry.evidence.push(r.clone());
        }
        self.append(entry, false)
            .map_err(|source| RecordError::Rejected { dir, source })
    }

    fn entry(
        &self,
        source: &BundleSource,
        toc: Option<&BundleContents>,
        opts: &ImportOptions,
        outcome: Result<&ImportReport, String>,
    ) -> Result<Entry, BundleError> {
        let mut entry = ledger_entry_for(
            source,
            toc,
            &opts.target.to_string(),
            &self.operator,
            outcome,
        )?;
        entry.policy_digest = super::policy_digest(opts).map(|d| d.to_string());
        Ok(entry)
    }

    fn append(&mut self, entry: Entry, admitted: bool) -> Result<Recorded, LedgerError> {
        let receipt = self.ledger.append(&entry, &self.signer)?;
        let r = Recorded {
            index: receipt.index,
            admitted,
            appended: true,
        };
        self.latest = None;
        self.recorded.push(r.clone());
        Ok(r)
    }
}

/// Whether the committed entry `m` records the admission `e` describes (time and operator
/// aside).
/// Carried SBOMs and scan reports with their bytes, owned (kept by a refusal until recorded).
pub type CarriedEvidence = Vec<(EvidenceRef, Vec<u8>)>;

/// The SBOMs and scan reports collect made for the bundle's images
/// ([`crate::scan::evidence::collected`]: never a publisher's own), each with its content blob
/// (already checked against its digest by the reader), as evidence of the admitted entry:
/// `subject` is the image platform manifest they describe.
pub fn carried_scan_evidence(contents: &BundleContents) -> Vec<(EvidenceRef, &[u8])> {
    crate::scan::evidence::collected(contents)
        .map(|c| {
            (
                EvidenceRef {
                    kind: c.kind.into(),
                    digest: c.blob.digest.to_string(),
                    size: c.bytes.len() as u64,
                    media_type: Some(c.blob.media_type.clone()),
                    subject: Some(c.subject.to_string()),
                },
                c.bytes,
            )
        })
        .collect()
}

fn same_admission(m: &Match, e: &Entry) -> bool {
    m.result == Outcome::Admitted
        && e.result == Outcome::Admitted
        && m.bundle == e.bundle.digest
        && m.bundle_name == e.bundle.name
        && m.bundle_sequence == e.bundle.sequence
        && m.bundle_signatures == e.bundle.signatures
        && m.policy_digest == e.policy_digest
        && m.target_registry == e.target_registry
        && m.artifacts == e.artifacts
}

/// Builds the ledger entry for an import of `bundle`, whose table of contents is `toc` when it
/// could be read. `outcome` is the report of an admitted import or the one-line reason it was
/// refused. The bundle digest is that of its `airlock.json`; for a bundle too broken to have
/// one, the sha256 of the whole file, so even that rejection names what was offered.
pub fn ledger_entry(
    bundle: &Path,
    toc: Option<&BundleContents>,
    target: &str,
    operator: &str,
    outcome: Result<&ImportReport, String>,
) -> Result<Entry, std::io::Error> {
    let source = BundleSource::File(bundle.to_path_buf());
    ledger_entry_for(&source, toc, target, operator, outcome).map_err(|e| match e {
        BundleError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })
}

/// [`ledger_entry`] for a bundle file or split parts. For parts too broken to yield an
/// `airlock.json`, the bundle digest recorded is the whole-bundle sha256 that the parts
/// manifest lists (what the file would hash to, had it been carried whole).
pub fn ledger_entry_for(
    source: &BundleSource,
    toc: Option<&BundleContents>,
    target: &str,
    operator: &str,
    outcome: Result<&ImportReport, String>,
) -> Result<Entry, BundleError> {
    let bundle_digest = match toc {
        Some(t) => Digest::of(&t.manifest_bytes),
        None => source.sha256()?,
    };
    let result = match &outcome {
        Ok(_) => Outcome::Admitted,
        Err(reason) => Outcome::Rejected {
            reason: reason.clone(),
        },
    };
    let mut entry = Entry::new(operator, bundle_digest.as_str(), target, result);
    let Some(toc) = toc else {
        return Ok(entry);
    };
    entry.bundle.name = Some(toc.manifest.name.clone());
    entry.bundle.sequence = Some(toc.manifest.sequence);
    if let Ok(report) = &outcome {
        entry.bundle.signatures = match &report.signature {
            Some(SignatureStatus::Verified { signers }) => signers
                .iter()
                .map(|s| SignatureResult {
                    signer: s.clone(),
                    verdict: Verdict::Verified,
                    detail: None,
                })
                .collect(),
            Some(SignatureStatus::UncheckedAllowed) | None => vec![SignatureResult {
                signer: "none".into(),
                verdict: Verdict::Missing,
                detail: Some("imported with --allow-unsigned".into()),
            }],
        };
    }
    let report = outcome.ok();
    entry.artifacts = toc
        .manifest
        .artifacts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let target_ref = report
                .and_then(|r| r.artifacts.get(i))
                .filter(|t| t.skipped.is_none())
                .map(|t| {
                    let digest = t.derived_digest.as_ref().unwrap_or(&t.digest);
                    match &t.tag {
                        Some(tag) => format!("{}:{tag}@{digest}", t.target),
                        None => format!("{}@{digest}", t.target),
                    }
                });
            ArtifactRecord {
                kind: format!("{:?}", a.kind).to_lowercase(),
                source_ref: a.source.clone(),
                target_ref,
                digest: a.digest.to_string(),
                media_type: Some(a.media_type.clone()),
                signatures: signature_records(a, report.and_then(|r| r.artifacts.get(i))),
                scan: scan_record(&toc.manifest.artifacts, a),
            }
        })
        .collect();
    Ok(entry)
}

/// Every signature check on an artifact: at collect (from `airlock.json`), at import against
/// the isolated side's policy, and the refusal that left it out.
fn signature_records(
    a: &crate::bundle::Artifact,
    imported: Option<&super::ImportedArtifact>,
) -> Vec<SignatureResult> {
    let mut out: Vec<SignatureResult> = a
        .verification
        .iter()
        .map(|v| check_result(v, "verified at collect"))
        .collect();
    if let Some(imp) = imported {
        out.extend(imp.signatures.iter().filter_map(|r| {
            let v = serde_json::to_value(r).ok()?;
            Some(check_result(&v, "verified at import against --policy"))
        }));
        if let Some(why) = &imp.skipped {
            out.push(SignatureResult {
                signer: "policy".into(),
                verdict: Verdict::Untrusted,
                detail: Some(format!("left out at import: {why}")),
            });
        }
    }
    out
}

/// A verified signature check (recorded as JSON) as a ledger result: the signer (key id, or
/// identity from issuer) and where the check happened.
fn check_result(v: &serde_json::Value, place: &str) -> SignatureResult {
    let signer = &v["signer"];
    let who = if let Some(k) = signer["key"]["key_id"].as_str() {
        k.to_string()
    } else if let (Some(i), Some(iss)) = (
        signer["keyless"]["identity"].as_str(),
        signer["keyless"]["issuer"].as_str(),
    ) {
        format!("{iss}|{i}")
    } else {
        "unknown".to_string()
    };
    let mut detail = place.to_string();
    if let Some(rule) = v["rule"].as_str() {
        detail.push_str(&format!("; rule `{rule}`"));
    }
    if let Some(kind) = v["kind"].as_str() {
        detail.push_str(&format!("; {kind}"));
    }
    if let Some(n) = v["rekor_log_index"].as_u64() {
        detail.push_str(&format!("; rekor log index {n}"));
        if let Some(entry) = v["rekor_entry"].as_str() {
            detail.push_str(&format!(" ({entry})"));
        }
    }
    let time = |secs: i64| {
        u64::try_from(secs)
            .ok()
            .map(|s| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
                )
                .to_string()
            })
            .unwrap_or_else(|| secs.to_string())
    };
    if let Some(t) = v["integrated_time"].as_i64() {
        detail.push_str(&format!("; integrated {}", time(t)));
    }
    if let Some(t) = v["timestamp"].as_i64() {
        detail.push_str(&format!("; timestamp {}", time(t)));
    }
    if let Some(b) = v["bundle"].as_str() {
        detail.push_str(&format!("; bundle {b}"));
    }
    SignatureResult {
        signer: who,
        verdict: Verdict::Verified,
        detail: Some(detail),
    }
}

/// What the scans made at collect found for an artifact: for a scan report, its own counts;
/// for an image, the counts of every report whose subject is the image or one of its carried
/// children (`[{subject, os, packages, findings, suppressed, passed, database}]`).
fn scan_record(
    all: &[crate::bundle::Artifact],
    a: &crate::bundle::Artifact,
) -> Option<serde_json::Value> {
    if let Some(s) = &a.scan {
        return serde_json::to_value(s).ok();
    }
    if a.kind != crate::bundle::ArtifactKind::Image {
        return None;
    }
    let subjects: Vec<&Digest> = std::iter::once(&a.digest)
        .chain(a.children.iter().filter(|c| c.included).map(|c| &c.digest))
        .collect();
    let found: Vec<serde_json::Value> = all
        .iter()
        .filter_map(|r| {
            let subject = r.subject.as_ref().filter(|s| subjects.contains(s))?;
            let mut v = serde_json::to_value(r.scan.as_ref()?).ok()?;
            v["subject"] = serde_json::json!(subject);
            Some(v)
        })
        .collect();
    (!found.is_empty()).then_some(serde_json::Value::Array(found))
}
