//! The scan policy gate:
//!
//! ```yaml
//! scan:
//!   fail_on: high            # critical | high | medium | low
//!   ignore_unfixed: true     # unfixed findings are reported but never fail the gate
//!   max_db_age: 72h          # an older database fails the gate
//!   allow:
//!     - {id: CVE-2025-26519, package: musl, expires: 2026-12-31, reason: "not reachable"}
//!   vex: [vex/alpine.openvex.json]
//!   db: vuln.db              # the database (a command's --db wins)
//!   unknown_os: fail         # fail (default) | warn: an image whose packages cannot be checked
//! ```
//!
//! A finding suppressed by VEX (`not_affected`, `fixed`) or by an allow entry stays in the
//! result with what suppressed it. An allow entry is valid through its `expires` day (UTC;
//! or until an RFC 3339 instant); once expired it suppresses nothing and the result says so.
//! Unknown severities never reach a `fail_on` level unless `fail_on_unknown` is set.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize};

use super::db::{Database, DbError};
use super::matcher::{Finding, Matches};
use super::osv::Severity;
use super::vex::{self, ImageContext, VexDocument, VexError, VexMatch};

/// The largest scan policy file read: a policy is a few keys and allow entries.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// The `scan:` section of a spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScanPolicy {
    /// The lowest severity that fails the gate; `None`: findings never fail it.
    #[serde(
        default,
        deserialize_with = "de_level",
        skip_serializing_if = "Option::is_none"
    )]
    pub fail_on: Option<Severity>,
    /// Unfixed findings never fail the gate.
    #[serde(default)]
    pub ignore_unfixed: bool,
    /// Findings of unknown severity fail the gate when `fail_on` is set.
    #[serde(default)]
    pub fail_on_unknown: bool,
    /// The oldest database accepted, e.g. `72h` (humantime syntax).
    #[serde(default)]
    pub max_db_age: Option<String>,
    /// Accepted findings.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
    /// OpenVEX files (relative to the spec's directory).
    #[serde(default)]
    pub vex: Vec<PathBuf>,
    /// The vulnerability database file (relative to the spec's directory); a command's `--db`
    /// wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
    /// What an image whose packages cannot be checked does to the gate (no supported OS, or an
    /// ecosystem the database has no advisories for): `fail` (the default: fail closed) or
    /// `warn`.
    #[serde(default)]
    pub unknown_os: UnknownOs,
}

/// What an image whose packages were not checked does to the gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownOs {
    /// The gate fails: nothing unchecked crosses unless the policy says so.
    #[default]
    Fail,
    /// The gate passes with a warning.
    Warn,
}

fn de_level<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Severity>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => match Severity::from_word(&s) {
            Some(l) if l != Severity::Unknown => Ok(Some(l)),
            _ => Err(serde::de::Error::custom(format!(
                "fail_on `{s}` is not one of critical, high, medium, low"
            ))),
        },
    }
}

/// One accepted vulnerability.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// The vulnerability ID or alias (`CVE-2025-26519`, `DLA-3008-1`).
    pub id: String,
    /// Only for this package (binary or source name); all packages when absent.
    #[serde(default)]
    pub package: Option<String>,
    /// `YYYY-MM-DD` (valid through that day, UTC) or an RFC 3339 instant.
    pub expires: String,
    /// Why it is accepted.
    pub reason: String,
}

impl AllowEntry {
    /// The instant from which the entry no longer suppresses.
    pub fn expiry(&self) -> Result<SystemTime, PolicyError> {
        let bad = || PolicyError::BadExpiry {
            id: self.id.clone(),
            value: self.expires.clone(),
        };
        let e = self.expires.trim();
        if e.len() == 10 {
            let start = humantime::parse_rfc3339(&format!("{e}T00:00:00Z")).map_err(|_| bad())?;
            return Ok(start + Duration::from_secs(86_400));
        }
        humantime::parse_rfc3339_weak(e)
            .or_else(|_| humantime::parse_rfc3339(e))
            .map_err(|_| bad())
    }

    fn applies_to(&self, f: &Finding) -> bool {
        f.is_named(&self.id)
            && self
                .package
                .as_deref()
                .is_none_or(|p| p == f.package.name || p == f.package.source_name)
    }
}

/// A policy that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// `max_db_age` is not a duration.
    #[error("scan policy: max_db_age `{value}` is not a duration (e.g. 72h, 3days)")]
    BadDuration {
        /// The value.
        value: String,
    },
    /// An allow entry's `expires` is not a date.
    #[error(
        "scan policy: allow entry {id}: expires `{value}` is not a date (YYYY-MM-DD or RFC 3339)"
    )]
    BadExpiry {
        /// The entry's ID.
        id: String,
        /// The value.
        value: String,
    },
    /// A VEX file cannot be used.
    #[error(transparent)]
    Vex(#[from] VexError),
    /// The database's header is unusable.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A policy file that cannot be read or parsed.
    #[error("scan policy `{path}`: {why}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl ScanPolicy {
    /// `max_db_age` as a duration.
    pub fn max_db_age(&self) -> Result<Option<Duration>, PolicyError> {
        self.max_db_age
            .as_deref()
            .map(|v| {
                humantime::parse_duration(v).map_err(|_| PolicyError::BadDuration {
                    value: v.to_string(),
                })
            })
            .transpose()
    }

    /// Reads a policy file (YAML, the keys of a spec's `scan:` section) and checks its values.
    pub fn load(path: &Path) -> Result<ScanPolicy, PolicyError> {
        let bad = |why: String| PolicyError::Load {
            path: path.to_path_buf(),
            why,
        };
        let text = crate::io::read_text_capped(path, MAX_POLICY_BYTES, "scan policy")
            .map_err(|e| bad(e.to_string()))?;
        let p: ScanPolicy = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// Checks every value (durations, dates) without evaluating anything.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.max_db_age()?;
        for a in &self.allow {
            a.expiry()?;
        }
        Ok(())
    }

    /// Reads the VEX files, relative to `base` (the spec's directory).
    pub fn load_vex(&self, base: &Path) -> Result<Vec<VexDocument>, PolicyError> {
        self.vex
            .iter()
            .map(|p| vex::load(&base.join(p)).map_err(PolicyError::from))
            .collect()
    }
}

/// What suppressed a finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Suppression {
    /// A VEX statement.
    Vex(VexMatch),
    /// An allow entry.
    Allow(AllowEntry),
}

/// One finding with the policy's view of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The finding.
    pub finding: Finding,
    /// What suppressed it, if anything.
    pub suppressed: Option<Suppression>,
    /// True when this finding fails the gate.
    pub fails_gate: bool,
    /// Notes, e.g. an allow entry that expired.
    pub notes: Vec<String>,
}

/// The gate's outcome for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// True when the image may pass.
    pub passed: bool,
    /// Why it did not (empty when it passed).
    pub reasons: Vec<String>,
    /// Things worth knowing that did not fail it.
    pub warnings: Vec<String>,
    /// Every finding with its decision.
    pub decisions: Vec<Decision>,
}

/// Applies the policy to one image's matches at time `now`.
pub fn evaluate(
    matches: &Matches,
    policy: &ScanPolicy,
    vex_docs: &[VexDocument],
    image: &ImageContext,
    db: Option<&Database>,
    now: SystemTime,
) -> Result<Verdict, PolicyError> {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    if let (Some(max), Some(db)) = (policy.max_db_age()?, db) {
        let age = db.age(now)?;
        if age > max {
            reasons.push(format!(
                "vulnerability database {} was built {} ago ({}), older than max_db_age {}",
                db.path().display(),
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                db.header().built_at,
                humantime::format_duration(max),
            ));
        }
    }
    if !matches.covered {
        let why = match &matches.ecosystem {
            Some(e) => format!(
                "the vulnerability database has no advisories for {e}: packages were not checked"
            ),
            None => "no supported OS detected: packages were not checked".to_string(),
        };
        match policy.unknown_os {
            UnknownOs::Warn => warnings.push(why),
            UnknownOs::Fail => reasons.push(format!("{why} (policy unknown_os: fail)")),
        }
    }
    for eco in &matches.unchecked {
        warnings.push(format!(
            "the vulnerability database has no {eco} advisories: {eco} packages were not checked"
        ));
    }
    let mut decisions = Vec::new();
    for f in &matches.findings {
        let mut notes = Vec::new();
        let mut suppressed = None;
        if let Some(m) = vex::decide(vex_docs, f, image) {
            if m.status.suppresses() {
                suppressed = Some(Suppression::Vex(m));
            } else {
                notes.push(format!("VEX {} says {}", m.source, m.status.as_str()));
            }
        }
        if suppressed.is_none() {
            for a in policy.allow.iter().filter(|a| a.applies_to(f)) {
                let expiry = a.expiry()?;
                if now < expiry {
                    suppressed = Some(Suppression::Allow(a.clone()));
                    break;
                }
                notes.push(format!(
                    "allow entry for {} expired on {}: it no longer suppresses this finding",
                    a.id, a.expires
                ));
            }
        }
        let severe = match policy.fail_on {
            Some(level) => {
                f.severity >= level || (policy.fail_on_unknown && f.severity == Severity::Unknown)
            }
            None => false,
        };
        let fails_gate =
            suppressed.is_none() && severe && !(policy.ignore_unfixed && f.is_unfixed());
        if fails_gate {
            reasons.push(format!(
                "{} in {} {} ({}{})",
                f.id,
                f.package.name,
                f.package.version,
                f.severity,
                match &f.fixed_version {
                    Some(v) => format!(", fixed in {v}"),
                    None => ", no fix yet".to_string(),
                }
            ));
        }
        decisions.push(Decision {
            finding: f.clone(),
            suppressed,
            fails_gate,
            notes,
        });
    }
    Ok(Verdict {
        passed: reasons.is_empty(),
        reasons,
        warnings,
        decisions,
    })
}
