//! Matching an inventory against the database, with OSV range semantics
//! (<https://ossf.github.io/osv-schema/#evaluation>): events sorted in the ecosystem's version
//! order, `introduced` opens a range (`0` from the start), `fixed` closes it at that version,
//! `last_affected` after it, `limit` bounds the whole range; `versions[]` lists affected
//! versions explicitly. Debian packages are matched by source package and source version,
//! Alpine packages by origin.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::db::{self, Advisory, Database, DbError};
use super::osv::{OsvEvent, Severity};
use super::version::VersionScheme;
use super::{Inventory, Package, PackageKind};

/// One vulnerable package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The advisory ID (`DLA-3008-1`, `ALPINE-CVE-2025-26519`).
    pub id: String,
    /// Its aliases (CVE numbers).
    pub aliases: Vec<String>,
    /// The affected package.
    pub package: Package,
    /// The lowest fixed version above the installed one; `None` when unfixed.
    pub fixed_version: Option<String>,
    /// Severity from the record (`Unknown` when it gives none).
    pub severity: Severity,
    /// The advisory's summary.
    pub summary: Option<String>,
    /// The vendor's status when the report came from another scanner (Trivy's `will_not_fix`,
    /// `fix_deferred`, `end_of_life`, ...); `None` for airlock's own findings, whose status is
    /// `fixed` or `affected` from the fixed version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_status: Option<String>,
}

impl Finding {
    /// The status to show: the vendor's when known, else `fixed` (a fixed version exists) or
    /// `affected`.
    pub fn status(&self) -> &str {
        match &self.vendor_status {
            Some(s) => s,
            None if self.is_unfixed() => "affected",
            None => "fixed",
        }
    }

    /// True when no fixed version exists yet.
    pub fn is_unfixed(&self) -> bool {
        self.fixed_version.is_none()
    }

    /// Whether `id` names this vulnerability (its ID or an alias).
    pub fn is_named(&self, id: &str) -> bool {
        self.id == id || self.aliases.iter().any(|a| a == id)
    }
}

/// The outcome of matching one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matches {
    /// The OSV ecosystem the image's packages belong to, if known.
    pub ecosystem: Option<String>,
    /// Whether the database has advisories for that ecosystem; when false, no finding means
    /// nothing (the report says so).
    pub covered: bool,
    /// Application ecosystems the image has packages of but the database has no advisories
    /// for (`PyPI`, `Go`, ...): those packages were not checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
    /// The findings, sorted by package then advisory.
    pub findings: Vec<Finding>,
}

fn event_version(e: &OsvEvent) -> Option<&str> {
    e.introduced
        .as_deref()
        .or(e.fixed.as_deref())
        .or(e.last_affected.as_deref())
        .or(e.limit.as_deref())
}

/// Whether `version` is inside one range; `Some(fixed)` when it is, with the lowest fixed
/// version above it (`None` inside = unfixed).
pub fn in_range(
    scheme: VersionScheme,
    version: &str,
    events: &[OsvEvent],
) -> Option<Option<String>> {
    let cmp = |a: &str, b: &str| scheme.compare(a, b);
    let limits: Vec<&str> = events.iter().filter_map(|e| e.limit.as_deref()).collect();
    if !limits.is_empty()
        && !limits
            .iter()
            .any(|l| *l == "*" || cmp(version, l) == Ordering::Less)
    {
        return None;
    }
    let mut sorted: Vec<&OsvEvent> = events.iter().filter(|e| e.limit.is_none()).collect();
    sorted.sort_by(|a, b| match (event_version(a), event_version(b)) {
        (Some("0"), Some("0")) => Ordering::Equal,
        (Some("0"), _) if a.introduced.is_some() => Ordering::Less,
        (_, Some("0")) if b.introduced.is_some() => Ordering::Greater,
        (Some(x), Some(y)) => cmp(x, y),
        _ => Ordering::Equal,
    });
    let mut affected = false;
    for e in sorted {
        if let Some(i) = &e.introduced {
            if i == "0" || cmp(version, i) != Ordering::Less {
                affected = true;
            }
        } else if let Some(f) = &e.fixed {
            if cmp(version, f) != Ordering::Less {
                affected = false;
            }
        } else if let Some(l) = &e.last_affected {
            if cmp(version, l) == Ordering::Greater {
                affected = false;
            }
        }
    }
    if !affected {
        return None;
    }
    let fixed = events
        .iter()
        .filter_map(|e| e.fixed.as_deref())
        .filter(|f| cmp(f, version) == Ordering::Greater)
        .min_by(|a, b| cmp(a, b))
        .map(str::to_string);
    Some(fixed)
}

/// Whether an advisory affects `version`: `Some(fixed)` when it does.
pub fn affects(
    scheme: VersionScheme,
    version: &str,
    advisory: &Advisory,
) -> Option<Option<String>> {
    let mut hit: Option<Option<String>> = None;
    for r in &advisory.ranges {
        if let Some(fixed) = in_range(scheme, version, r) {
            hit = match (hit, fixed) {
                (Some(Some(a)), Some(b)) => {
                    Some(Some(if scheme.compare(&a, &b) == Ordering::Greater {
                        b
                    } else {
                        a
                    }))
                }
                (Some(None), _) | (_, None) => Some(None),
                (None, f) => Some(f),
            };
        }
    }
    if hit.is_none()
        && advisory
            .versions
            .iter()
            .any(|v| v == version || scheme.compare(v, version) == Ordering::Equal)
    {
        // Listed explicitly; a fixed version, if any, comes from the ranges (none matched).
        let fixed = advisory
            .ranges
            .iter()
            .flatten()
            .filter_map(|e| e.fixed.as_deref())
            .filter(|f| scheme.compare(f, version) == Ordering::Greater)
            .min_by(|a, b| scheme.compare(a, b))
            .map(str::to_string);
        hit = Some(fixed);
    }
    hit
}

/// The CVE a record ID stands for: `CVE-X`, `DEBIAN-CVE-X` and `ALPINE-CVE-X` all name `CVE-X`.
fn cve_of(id: &str) -> Option<&str> {
    let id = id
        .strip_prefix("DEBIAN-")
        .or_else(|| id.strip_prefix("ALPINE-"))
        .unwrap_or(id);
    id.starts_with("CVE-").then_some(id)
}

/// One finding per vulnerability and package: the same CVE often comes both as a per-CVE
/// record (`DEBIAN-CVE-…`, `ALPINE-CVE-…`, `CVE-…`) and inside a distribution advisory
/// (`DLA-…`, `DSA-…`) that lists it as upstream. An advisory whose CVEs are all reported by
/// per-CVE findings of the same package is folded into them (its ID becomes an alias, so allow
/// entries and VEX statements naming it still apply); per-CVE duplicates are folded likewise,
/// the distribution-specific record kept.
fn merge_aliases(findings: Vec<Finding>) -> Vec<Finding> {
    // Folding only ever happens between findings of one package version in one file: merge
    // each such group on its own (linear in the number of packages, not quadratic in findings).
    let mut groups: BTreeMap<(String, String, String), Vec<Finding>> = BTreeMap::new();
    for f in findings {
        groups
            .entry((
                f.package.name.clone(),
                f.package.version.clone(),
                f.package.location.clone(),
            ))
            .or_default()
            .push(f);
    }
    let mut out: Vec<Finding> = groups.into_values().flat_map(merge_group).collect();
    out.sort_by(|a, b| {
        (a.package.name.as_str(), a.id.as_str()).cmp(&(b.package.name.as_str(), b.id.as_str()))
    });
    out
}

fn merge_group(findings: Vec<Finding>) -> Vec<Finding> {
    let key = |f: &Finding| (f.package.name.clone(), f.package.version.clone());
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    // Per-CVE findings first (distribution-specific before bare CVE), then advisories.
    let mut order: Vec<Finding> = findings;
    order.sort_by_key(|f| match cve_of(&f.id) {
        Some(_) if f.id.starts_with("CVE-") => 1,
        Some(_) => 0,
        None => 2,
    });
    for f in order {
        let cves: BTreeSet<&str> = std::iter::once(f.id.as_str())
            .chain(f.aliases.iter().map(String::as_str))
            .filter_map(cve_of)
            .collect();
        let own = cve_of(&f.id);
        let claimed =
            |o: &Finding| key(o) == key(&f) && cve_of(&o.id).is_some_and(|c| cves.contains(c));
        let fold = match own {
            Some(c) => out
                .iter()
                .any(|o| key(o) == key(&f) && cve_of(&o.id) == Some(c)),
            None => {
                !cves.is_empty()
                    && cves.iter().all(|c| {
                        out.iter()
                            .any(|o| key(o) == key(&f) && cve_of(&o.id) == Some(*c))
                    })
            }
        };
        if !fold {
            out.push(f);
            continue;
        }
        for o in out.iter_mut().filter(|o| claimed(o)) {
            for id in std::iter::once(&f.id).chain(f.aliases.iter()) {
                if *id != o.id && !o.aliases.contains(id) {
                    o.aliases.push(id.clone());
                }
            }
            o.aliases.sort();
        }
    }
    out
}

/// The OSV ecosystem an application package's advisories are filed under.
pub fn app_ecosystem(kind: PackageKind) -> Option<&'static str> {
    Some(match kind {
        PackageKind::GoModule => "Go",
        PackageKind::Python => "PyPI",
        PackageKind::Npm => "npm",
        PackageKind::Java => "Maven",
        PackageKind::Nuget => "NuGet",
        PackageKind::Cargo => "crates.io",
        PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm => return None,
    })
}

/// Matches every package of an inventory against the database: OS packages in the OS's
/// ecosystem, application packages in their own.
pub fn match_inventory(inventory: &Inventory, db: &Database) -> Result<Matches, DbError> {
    let ecosystem = inventory.os.as_ref().and_then(|o| o.osv_ecosystem());
    let os_eco = ecosystem.clone().filter(|e| db::kept_ecosystem(e));
    let covered = os_eco.as_deref().is_some_and(|e| db.covers(e));
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    let mut unchecked: BTreeSet<String> = BTreeSet::new();
    for pkg in &inventory.packages {
        let (eco, scheme, key, version) = match (pkg.kind, app_ecosystem(pkg.kind)) {
            (PackageKind::Deb, _) => (
                os_eco.as_deref(),
                VersionScheme::Dpkg,
                pkg.source_name.clone(),
                pkg.source_version.as_str(),
            ),
            (PackageKind::Apk, _) => (
                os_eco.as_deref(),
                VersionScheme::Apk,
                pkg.source_name.clone(),
                pkg.version.as_str(),
            ),
            (PackageKind::Rpm, _) => (
                os_eco.as_deref(),
                VersionScheme::Rpm,
                pkg.name.clone(),
                pkg.version.as_str(),
            ),
            (_, Some(eco)) => {
                if !db.covers(eco) {
                    unchecked.insert(eco.to_string());
                    continue;
                }
                let scheme = db::scheme_of(eco).unwrap_or(VersionScheme::Semver);
                (
                    Some(eco),
                    scheme,
                    db::package_key(eco, &pkg.name),
                    pkg.version.as_str(),
                )
            }
            (_, None) => continue,
        };
        let Some(eco) = eco else {
            continue;
        };
        for adv in db.lookup(eco, &key)? {
            let Some(fixed) = affects(scheme, version, &adv) else {
                continue;
            };
            // The same package in two files (Go's stdlib in two binaries) is two findings: each
            // file needs its own fix.
            if !seen.insert((adv.id.clone(), &pkg.name, &pkg.version, &pkg.location)) {
                continue;
            }
            findings.push(Finding {
                id: adv.id,
                aliases: adv.aliases,
                package: pkg.clone(),
                fixed_version: fixed,
                severity: adv.severity,
                summary: adv.summary,
                vendor_status: None,
            });
        }
    }
    findings.sort_by(|a, b| {
        (a.package.name.as_str(), a.id.as_str()).cmp(&(b.package.name.as_str(), b.id.as_str()))
    });
    let findings = merge_aliases(findings);
    Ok(Matches {
        ecosystem: os_eco.or(ecosystem),
        covered,
        unchecked: unchecked.into_iter().collect(),
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(k: &str, v: &str) -> OsvEvent {
        let mut e = OsvEvent::default();
        let v = Some(v.to_string());
        match k {
            "introduced" => e.introduced = v,
            "fixed" => e.fixed = v,
            "last_affected" => e.last_affected = v,
            _ => e.limit = v,
        }
        e
    }

    #[test]
    fn range_semantics() {
        let d = VersionScheme::Dpkg;
        let r = [ev("introduced", "0"), ev("fixed", "1.2-1")];
        assert_eq!(in_range(d, "1.1-1", &r), Some(Some("1.2-1".into())));
        assert_eq!(in_range(d, "1.2-1", &r), None);
        assert_eq!(in_range(d, "1.2~rc1-1", &r), Some(Some("1.2-1".into())));
        let r = [ev("introduced", "1.0"), ev("last_affected", "1.5")];
        assert_eq!(in_range(d, "1.5", &r), Some(None));
        assert_eq!(in_range(d, "1.6", &r), None);
        assert_eq!(in_range(d, "0.9", &r), None);
        let r = [ev("introduced", "1.0")];
        assert_eq!(in_range(d, "9.0", &r), Some(None));
        let r = [ev("introduced", "0"), ev("limit", "2.0")];
        assert_eq!(in_range(d, "1.0", &r), Some(None));
        assert_eq!(in_range(d, "2.0", &r), None);
        // Two windows in one range.
        let r = [
            ev("introduced", "1.0"),
            ev("fixed", "1.2"),
            ev("introduced", "2.0"),
            ev("fixed", "2.3"),
        ];
        assert_eq!(in_range(d, "1.5", &r), None);
        assert_eq!(in_range(d, "1.1", &r), Some(Some("1.2".into())));
        assert_eq!(in_range(d, "2.1", &r), Some(Some("2.3".into())));
        assert_eq!(in_range(d, "1.3", &r), None);
    }

    #[test]
    fn listed_versions_outside_ranges() {
        let adv = Advisory {
            id: "X-1".into(),
            aliases: vec!["CVE-1".into()],
            summary: None,
            severity: Severity::Unknown,
            ranges: vec![vec![ev("introduced", "2.0"), ev("fixed", "2.5")]],
            versions: vec!["1.0-1".into()],
        };
        let d = VersionScheme::Dpkg;
        assert_eq!(affects(d, "1.0-1", &adv), Some(Some("2.5".into())));
        assert_eq!(affects(d, "1.0-2", &adv), None);
        assert_eq!(affects(d, "2.1", &adv), Some(Some("2.5".into())));
        let unfixed = Advisory {
            ranges: vec![vec![ev("introduced", "0")]],
            versions: vec![],
            ..adv
        };
        assert_eq!(
            affects(VersionScheme::Apk, "1.2.4-r0", &unfixed),
            Some(None)
        );
    }
}
