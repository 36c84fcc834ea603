//! The scan report: a Trivy-compatible subset (`SchemaVersion` 2, `Results[].Vulnerabilities[]`
//! with `VulnerabilityID`, `PkgName`, `InstalledVersion`, `FixedVersion`, `Status`, `Severity`),
//! so tools that read Trivy JSON read ours. Suppressed findings go to
//! `Results[].ExperimentalModifiedFindings[]` as Trivy writes them (status, statement,
//! source); airlock's own facts (database, gate) live under the extra key `Airlock`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::db::Database;
use super::matcher::{Finding, Matches};
use super::os::Family;
use super::policy::{Suppression, Verdict};
use super::{Inventory, PackageKind};

/// The whole report for one image (one platform).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    /// Always 2 (Trivy's current schema).
    pub schema_version: u32,
    /// The image reference.
    pub artifact_name: String,
    /// Always `container_image`.
    pub artifact_type: String,
    /// The OS.
    pub metadata: Metadata,
    /// One result per package database.
    pub results: Vec<ResultEntry>,
    /// airlock's additions.
    pub airlock: AirlockInfo,
}

/// `Metadata`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Metadata {
    /// `OS`.
    #[serde(rename = "OS", skip_serializing_if = "Option::is_none")]
    pub os: Option<OsMeta>,
}

/// `Metadata.OS`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OsMeta {
    /// `debian`, `alpine`, `ubuntu`.
    pub family: String,
    /// The version (`12`, `3.18.0`).
    pub name: String,
}

/// `Results[]`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultEntry {
    /// `<image> (<family> <version>)`.
    pub target: String,
    /// `os-pkgs`.
    pub class: String,
    /// The OS family.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Active findings.
    pub vulnerabilities: Vec<Vulnerability>,
    /// Suppressed findings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub experimental_modified_findings: Vec<ModifiedFinding>,
}

/// `Results[].Vulnerabilities[]`.
#[derive(Debug, Clone, Serialize)]
pub struct Vulnerability {
    /// The advisory ID.
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    /// Aliases (CVE numbers).
    #[serde(rename = "VendorIDs", skip_serializing_if = "Vec::is_empty")]
    pub vendor_ids: Vec<String>,
    /// `name@version`.
    #[serde(rename = "PkgID")]
    pub pkg_id: String,
    /// The binary package.
    #[serde(rename = "PkgName")]
    pub pkg_name: String,
    /// The package's purl.
    #[serde(rename = "PkgIdentifier")]
    pub pkg_identifier: PkgIdentifier,
    /// The installed version.
    #[serde(rename = "InstalledVersion")]
    pub installed_version: String,
    /// The fixed version (omitted when there is none).
    #[serde(rename = "FixedVersion", skip_serializing_if = "String::is_empty")]
    pub fixed_version: String,
    /// `fixed` (a fix exists) or `affected` (no fix yet).
    #[serde(rename = "Status")]
    pub status: String,
    /// `CRITICAL` ... `LOW`, or `UNKNOWN`.
    #[serde(rename = "Severity")]
    pub severity: String,
    /// The advisory summary.
    #[serde(rename = "Title", skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// `PkgIdentifier`.
#[derive(Debug, Clone, Serialize)]
pub struct PkgIdentifier {
    /// The purl.
    #[serde(rename = "PURL")]
    pub purl: String,
}

/// `ExperimentalModifiedFindings[]`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifiedFinding {
    /// Always `vulnerability`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The VEX status, or `ignored` for an allow entry.
    pub status: String,
    /// The justification or the allow entry's reason.
    pub statement: String,
    /// The VEX file, or `policy allow entry (expires ...)`.
    pub source: String,
    /// The finding as it would have been reported.
    pub finding: Vulnerability,
}

/// `Airlock`: what Trivy has no place for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AirlockInfo {
    /// The OSV ecosystem matched against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecosystem: Option<String>,
    /// Whether the database covers it.
    pub covered: bool,
    /// The database used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseInfo>,
    /// Whether the gate passed.
    pub passed: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Warnings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Per-finding notes (expired allow entries, non-suppressing VEX statements).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The database a report was made with.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseInfo {
    /// SHA-256 of the file.
    pub digest: String,
    /// Its build time.
    pub built_at: String,
}

fn vulnerability(f: &Finding) -> Vulnerability {
    Vulnerability {
        vulnerability_id: f.id.clone(),
        vendor_ids: f.aliases.clone(),
        pkg_id: format!("{}@{}", f.package.name, f.package.version),
        pkg_name: f.package.name.clone(),
        pkg_identifier: PkgIdentifier {
            purl: f.package.purl.clone(),
        },
        installed_version: f.package.version.clone(),
        fixed_version: f.fixed_version.clone().unwrap_or_default(),
        status: f.status().to_string(),
        severity: f.severity.as_str().to_string(),
        title: f.summary.clone(),
    }
}

/// Builds the report for one image from its inventory, matches and verdict.
pub fn build(
    artifact_name: &str,
    inventory: &Inventory,
    matches: &Matches,
    verdict: &Verdict,
    db: Option<&Database>,
) -> Report {
    let os = inventory.os.as_ref().map(|o| OsMeta {
        family: o.id.clone(),
        name: o
            .version_id
            .clone()
            .or(o.release.clone())
            .unwrap_or_default(),
    });
    let kind = match inventory.os.as_ref().map(|o| o.family) {
        Some(Family::Debian) => "debian",
        Some(Family::Ubuntu) => "ubuntu",
        Some(Family::Alpine) => "alpine",
        Some(Family::RedHat) => inventory.os.as_ref().map_or("redhat", |o| o.id.as_str()),
        _ => "unknown",
    };
    let target = match &os {
        Some(o) => format!("{artifact_name} ({} {})", o.family, o.name),
        None => artifact_name.to_string(),
    };
    // One result for the OS packages, one per application package type (Trivy's
    // `lang-pkgs` results, whose `Type` names the ecosystem).
    let mut results: BTreeMap<Option<PackageKind>, ResultEntry> = BTreeMap::new();
    let entry = |k: Option<PackageKind>| match k {
        None => ResultEntry {
            target: target.clone(),
            class: "os-pkgs".into(),
            kind: kind.into(),
            vulnerabilities: Vec::new(),
            experimental_modified_findings: Vec::new(),
        },
        Some(k) => ResultEntry {
            target: format!("{} packages", k.as_str()),
            class: "lang-pkgs".into(),
            kind: k.as_str().into(),
            vulnerabilities: Vec::new(),
            experimental_modified_findings: Vec::new(),
        },
    };
    let result_of = |p: &crate::scan::Package| (!p.kind.is_os()).then_some(p.kind);
    for p in &inventory.packages {
        let k = result_of(p);
        results.entry(k).or_insert_with(|| entry(k));
    }
    let mut notes = Vec::new();
    for d in &verdict.decisions {
        notes.extend(
            d.notes
                .iter()
                .map(|n| format!("{} in {}: {n}", d.finding.id, d.finding.package.name)),
        );
        let v = vulnerability(&d.finding);
        let k = result_of(&d.finding.package);
        let r = results.entry(k).or_insert_with(|| entry(k));
        match &d.suppressed {
            None => r.vulnerabilities.push(v),
            Some(Suppression::Vex(m)) => r.experimental_modified_findings.push(ModifiedFinding {
                kind: "vulnerability".into(),
                status: m.status.as_str().to_string(),
                statement: m
                    .justification
                    .clone()
                    .or(m.impact_statement.clone())
                    .unwrap_or_default(),
                source: m.source.clone(),
                finding: v,
            }),
            Some(Suppression::Allow(a)) => r.experimental_modified_findings.push(ModifiedFinding {
                kind: "vulnerability".into(),
                status: "ignored".into(),
                statement: a.reason.clone(),
                source: format!("policy allow entry (expires {})", a.expires),
                finding: v,
            }),
        }
    }
    let results: Vec<ResultEntry> = results.into_values().collect();
    let mut warnings = verdict.warnings.clone();
    warnings.extend(inventory.warnings.iter().cloned());
    Report {
        schema_version: 2,
        artifact_name: artifact_name.to_string(),
        artifact_type: "container_image".into(),
        metadata: Metadata { os },
        results,
        airlock: AirlockInfo {
            ecosystem: matches.ecosystem.clone(),
            covered: matches.covered,
            database: db.map(|d| DatabaseInfo {
                digest: d.digest().to_string(),
                built_at: d.header().built_at.clone(),
            }),
            passed: verdict.passed,
            reasons: verdict.reasons.clone(),
            warnings,
            notes,
        },
    }
}
