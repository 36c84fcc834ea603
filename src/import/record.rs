//! What an import leaves in the provenance ledger: one entry per import, admitted or rejected.

use std::path::Path;

use crate::bundle::reader::BundleContents;
use crate::bundle::signature::SignatureStatus;
use crate::bundle::{BundleError, BundleSource};
use crate::ledger::{ArtifactRecord, Entry, Outcome, SignatureResult, Verdict};
use crate::oci::Digest;

use super::ImportReport;

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
    if let Some(n) = v["rekor_log_index"].as_u64() {
        detail.push_str(&format!("; rekor log index {n}"));
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
