//! The import gate: the isolated side's own scan policy, applied to the evidence a bundle
//! carries before anything is pushed. For every image platform the bundle carries, the SBOM
//! made at collect is matched again against the isolated side's (usually newer) database; with
//! no database, the carried report's findings are judged instead (the connected side's
//! suppressions are ignored: only the isolated side's VEX and allow entries count). Evidence is
//! only what collect made itself ([`super::evidence::collected`]), never an SBOM the publisher
//! attached upstream. An image platform without it fails the gate: nothing unscanned crosses.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::db::Database;
use super::evidence::{REPORT_EVIDENCE, SBOM_EVIDENCE};
use super::image::{evaluate_inventory, ScanContext, Target};
use super::matcher::{Finding, Matches};
use super::osv::Severity;
use super::policy::{self, PolicyError, ScanPolicy};
use super::run::{open_database, RunError};
use super::vex::{ImageContext, VexDocument};
use super::{Package, PackageKind};
use crate::bundle::reader::BundleContents;
use crate::bundle::ArtifactKind;
use crate::oci::{Digest, ManifestKind};

/// Why the gate itself cannot run (a failing gate is a [`GateOutcome`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The policy or database cannot be used.
    #[error(transparent)]
    Setup(#[from] RunError),
    /// The policy cannot be applied.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The isolated side's scan gate, loaded once.
#[derive(Debug)]
pub struct ImportGate {
    policy: ScanPolicy,
    vex: Vec<VexDocument>,
    db: Option<Database>,
    /// The policy file's SHA-256 (for the ledger).
    pub policy_digest: Digest,
}

/// What the gate decided.
#[derive(Debug, Clone, Default)]
pub struct GateOutcome {
    /// `image (platform): reason` for everything that fails the gate; empty: it passed.
    pub failures: Vec<String>,
    /// Image platforms checked.
    pub checked: usize,
}

impl ImportGate {
    /// Loads the policy file (its `vex` and `db` relative to it) and the database (`db`, else
    /// the policy's, else none: judge the carried reports).
    pub fn load(policy_path: &Path, db: Option<&Path>) -> Result<ImportGate, GateError> {
        let policy = ScanPolicy::load(policy_path)?;
        let dir = policy_path.parent().unwrap_or(Path::new(""));
        let db = match (db, &policy.db) {
            (None, None) => None,
            _ => Some(open_database(db, &policy, dir)?),
        };
        let vex = policy.load_vex(dir)?;
        let bytes = crate::io::read_capped(
            policy_path,
            crate::scan::policy::MAX_POLICY_BYTES,
            "scan policy",
        )
        .map_err(|e| PolicyError::Load {
            path: policy_path.to_path_buf(),
            why: e.to_string(),
        })?;
        Ok(ImportGate {
            policy,
            vex,
            db,
            policy_digest: Digest::of(&bytes),
        })
    }

    /// Judges every image platform of a bundle from its carried evidence at time `now`,
    /// except the artifacts (by index in `airlock.json`) in `left_out`: those an earlier gate
    /// already dropped are not pushed, so they are not judged.
    pub fn check(
        &self,
        contents: &BundleContents,
        now: SystemTime,
        left_out: &std::collections::BTreeSet<usize>,
    ) -> Result<GateOutcome, GateError> {
        let mut out = GateOutcome::default();
        for (target, sbom, report) in evidence(contents, left_out) {
            out.checked += 1;
            let image = match &target.platform {
                Some(p) => format!("{} ({p})", target.name),
                None => target.name.clone(),
            };
            let reasons = match (&self.db, sbom, report) {
                (Some(db), Some(sbom), _) => self.rematch(&target, &sbom, db, now)?,
                (None, _, Some(report)) => {
                    judge_report(&self.policy, &self.vex, &target, &report, now)?.reasons
                }
                (Some(_), None, _) => vec![format!(
                    "no SBOM carried for {} that collect made (a publisher's own does not count): collect it with a `scan:` policy",
                    target.digest
                )],
                (None, _, None) => vec![format!(
                    "no scan report carried for {} that collect made (give --db to re-match a carried SBOM)",
                    target.digest
                )],
            };
            out.failures
                .extend(reasons.into_iter().map(|r| format!("{image}: {r}")));
        }
        Ok(out)
    }

    fn rematch(
        &self,
        target: &Target,
        sbom: &Value,
        db: &Database,
        now: SystemTime,
    ) -> Result<Vec<String>, GateError> {
        let inventory = match super::sbom::inventory_from(sbom) {
            Ok(i) => i,
            Err(why) => return Ok(vec![format!("carried SBOM unusable: {why}")]),
        };
        let ctx = ScanContext {
            policy: &self.policy,
            vex: &self.vex,
            db,
            now,
            sbom_time: now,
            limits: Default::default(),
        };
        match evaluate_inventory(target, inventory, &ctx) {
            Ok(s) => Ok(s.verdict.reasons),
            Err(e) => Ok(vec![crate::error_chain(&e)]),
        }
    }
}

/// The package kind a finding's purl names (a report carries no other type); OS packages
/// without a known type are taken as dpkg, as before application packages were reported.
fn kind_of_purl(purl: &str) -> PackageKind {
    let ptype = purl
        .strip_prefix("pkg:")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    match ptype {
        "apk" => PackageKind::Apk,
        "rpm" => PackageKind::Rpm,
        "golang" => PackageKind::GoModule,
        "pypi" => PackageKind::Python,
        "npm" => PackageKind::Npm,
        "maven" => PackageKind::Java,
        "nuget" => PackageKind::Nuget,
        "cargo" => PackageKind::Cargo,
        _ => PackageKind::Deb,
    }
}

/// Judges a Trivy-shaped report (airlock's carried report, or Trivy's own JSON) against a
/// policy: every finding in it, active or suppressed where it was made, is decided again with
/// this policy's VEX and allow entries; `max_db_age` applies to the report's database build
/// time when it gives one (`Airlock.Database.BuiltAt`).
pub fn judge_report(
    policy: &ScanPolicy,
    vex: &[VexDocument],
    target: &Target,
    report: &Value,
    now: SystemTime,
) -> Result<policy::Verdict, PolicyError> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut findings = Vec::new();
    let mut malformed = false;
    for r in report
        .get("Results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let active = r.get("Vulnerabilities").and_then(Value::as_array);
        let suppressed = r
            .get("ExperimentalModifiedFindings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("Finding"));
        for v in active.into_iter().flatten().chain(suppressed) {
            let (Some(id), Some(name), Some(version)) = (
                s(v, "VulnerabilityID"),
                s(v, "PkgName"),
                s(v, "InstalledVersion"),
            ) else {
                malformed = true;
                continue;
            };
            let purl = v
                .pointer("/PkgIdentifier/PURL")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            findings.push(Finding {
                aliases: v
                    .get("VendorIDs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect(),
                package: Package {
                    kind: kind_of_purl(&purl),
                    source_name: s(v, "SrcName").unwrap_or_else(|| name.clone()),
                    source_version: version.clone(),
                    arch: None,
                    maintainer: None,
                    license: None,
                    location: String::new(),
                    purl,
                    name,
                    version,
                },
                fixed_version: s(v, "FixedVersion").filter(|f| !f.is_empty()),
                severity: s(v, "Severity")
                    .and_then(|w| Severity::from_word(&w))
                    .unwrap_or_default(),
                summary: s(v, "Title"),
                // Trivy's `Status` (`will_not_fix`, `fix_deferred`, ...) is kept as it said it;
                // `fixed`/`affected` are what airlock derives anyway.
                vendor_status: s(v, "Status").filter(|st| st != "fixed" && st != "affected"),
                id,
            });
        }
    }
    let airlock = report.get("Airlock");
    // Trivy's own JSON has no `Airlock`: it covers the OS when it names one in Metadata.OS.
    let covered = match airlock {
        Some(a) => a.get("Covered").and_then(Value::as_bool).unwrap_or(false),
        None => report.pointer("/Metadata/OS/Family").is_some(),
    };
    let matches = Matches {
        unchecked: Vec::new(),
        ecosystem: airlock.and_then(|a| s(a, "Ecosystem")).or_else(|| {
            report
                .pointer("/Metadata/OS/Family")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        covered,
        findings,
    };
    let image = ImageContext {
        digests: std::iter::once(target.digest.clone())
            .chain(target.index.clone())
            .collect(),
        name: target
            .name
            .split('@')
            .next()
            .and_then(|n| n.rsplit('/').next())
            .and_then(|n| n.split(':').next())
            .map(str::to_string),
    };
    let mut verdict = policy::evaluate(&matches, policy, vex, &image, None, now)?;
    if malformed {
        verdict.reasons.push(
            "the report has a finding without VulnerabilityID, PkgName or InstalledVersion".into(),
        );
    }
    if let (Some(max), Some(a)) = (policy.max_db_age()?, airlock) {
        let built = a.pointer("/Database/BuiltAt").and_then(Value::as_str);
        match built.and_then(|b| humantime::parse_rfc3339(b).ok()) {
            Some(t) => {
                let age = now.duration_since(t).unwrap_or_default();
                if age > max {
                    verdict.reasons.push(format!(
                        "the report was made with a database built {} ago ({}), older than max_db_age {}",
                        humantime::format_duration(Duration::from_secs(age.as_secs())),
                        built.unwrap_or_default(),
                        humantime::format_duration(max)
                    ));
                }
            }
            None => verdict
                .reasons
                .push("the report does not say when its database was built (max_db_age)".into()),
        }
    }
    verdict.passed = verdict.reasons.is_empty();
    Ok(verdict)
}

/// Every image platform of a bundle with its carried SBOM and report (parsed), if any.
fn evidence(
    contents: &BundleContents,
    left_out: &std::collections::BTreeSet<usize>,
) -> Vec<(Target, Option<Value>, Option<Value>)> {
    let arts = &contents.manifest.artifacts;
    // Only what collect made: a publisher's own SBOM referrer must not stand in for it.
    let blob_of = |kind: &str, subject: &Digest| -> Option<Value> {
        let c = super::evidence::collected_for(contents, subject, kind)?;
        serde_json::from_slice(c.bytes).ok()
    };
    let mut out = Vec::new();
    for (i, a) in arts.iter().enumerate() {
        if a.kind != ArtifactKind::Image || a.artifact_type.is_some() || left_out.contains(&i) {
            continue;
        }
        let Some((_, root)) = contents.manifests.get(&a.digest) else {
            continue;
        };
        let mut platforms: Vec<(Digest, Option<Digest>, Option<crate::oci::Platform>)> = Vec::new();
        if root.kind == ManifestKind::Index {
            for c in a.children.iter().filter(|c| c.included) {
                if super::source::is_scannable_child(c.platform.as_ref(), &c.media_type) {
                    platforms.push((c.digest.clone(), Some(a.digest.clone()), c.platform.clone()));
                }
            }
        } else {
            platforms.push((a.digest.clone(), None, None));
        }
        for (digest, index, platform) in platforms {
            let target = Target {
                name: a.source.clone(),
                digest: digest.clone(),
                index,
                platform,
                layers: Vec::new(),
                config: None,
                manifest: Default::default(),
            };
            let sbom = blob_of(SBOM_EVIDENCE, &digest);
            let report = blob_of(REPORT_EVIDENCE, &digest);
            out.push((target, sbom, report));
        }
    }
    out
}
