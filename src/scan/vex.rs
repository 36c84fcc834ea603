//! OpenVEX documents (<https://github.com/openvex/spec>, v0.2.0 and the older v0.0.x shape
//! with string vulnerabilities and products). A statement applies to a finding when it names
//! the vulnerability (ID or alias) and a product that is the package itself (by purl), or the
//! image (`pkg:oci/...@sha256:...`) with the package among its subcomponents (or no
//! subcomponents: the whole image). `not_affected` and `fixed` suppress; `affected` and
//! `under_investigation` do not. When several statements apply, the last one read wins
//! (documents in the order given, statements in document order).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::matcher::Finding;
use super::purl;
use crate::oci::Digest;

/// The largest VEX document read.
pub const MAX_VEX_BYTES: u64 = 16 * 1024 * 1024;

/// A statement's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexStatus {
    /// The product is not affected.
    NotAffected,
    /// The product is affected.
    Affected,
    /// The product contains a fix.
    Fixed,
    /// Still being investigated.
    UnderInvestigation,
}

impl VexStatus {
    /// Whether this status suppresses a finding.
    pub fn suppresses(self) -> bool {
        matches!(self, VexStatus::NotAffected | VexStatus::Fixed)
    }

    /// The OpenVEX spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VexStatus::NotAffected => "not_affected",
            VexStatus::Affected => "affected",
            VexStatus::Fixed => "fixed",
            VexStatus::UnderInvestigation => "under_investigation",
        }
    }
}

/// A product and its subcomponents, as purls (or other identifiers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VexProduct {
    /// The product's `@id`.
    pub id: String,
    /// Its subcomponents' `@id`s.
    pub subcomponents: Vec<String>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VexStatement {
    /// The vulnerability's name (`CVE-2023-3446`).
    pub vulnerability: String,
    /// Its aliases, if the document gives them.
    pub aliases: Vec<String>,
    /// The products it is about.
    pub products: Vec<VexProduct>,
    /// The status.
    pub status: VexStatus,
    /// The justification (for `not_affected`).
    pub justification: Option<String>,
    /// The impact statement (for `not_affected`).
    pub impact_statement: Option<String>,
}

/// A parsed OpenVEX document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VexDocument {
    /// Where it was read from (file path).
    pub source: String,
    /// Its `@id`.
    pub id: Option<String>,
    /// Its author.
    pub author: Option<String>,
    /// Its statements.
    pub statements: Vec<VexStatement>,
}

/// Why a VEX document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VexError {
    /// The file cannot be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not JSON or not the shape of an OpenVEX document.
    #[error("{file}: not a valid OpenVEX document: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Larger than [`MAX_VEX_BYTES`].
    #[error("{file}: larger than the {MAX_VEX_BYTES} byte limit for a VEX document")]
    TooLarge {
        /// The file.
        file: String,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawVuln {
    Name(String),
    Object {
        #[serde(default)]
        name: Option<String>,
        #[serde(rename = "@id", default)]
        id: Option<String>,
        #[serde(default)]
        aliases: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawComponent {
    Id(String),
    Object {
        #[serde(rename = "@id", default)]
        id: Option<String>,
        #[serde(default)]
        identifiers: Option<serde_json::Map<String, serde_json::Value>>,
        #[serde(default)]
        subcomponents: Vec<RawComponent>,
    },
}

impl RawComponent {
    fn id(&self) -> Option<String> {
        match self {
            RawComponent::Id(s) => Some(s.clone()),
            RawComponent::Object {
                id, identifiers, ..
            } => id.clone().or_else(|| {
                identifiers
                    .as_ref()
                    .and_then(|m| m.get("purl"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            }),
        }
    }
}

#[derive(Deserialize)]
struct RawStatement {
    vulnerability: RawVuln,
    #[serde(default)]
    products: Vec<RawComponent>,
    #[serde(default)]
    subcomponents: Vec<RawComponent>,
    status: VexStatus,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    impact_statement: Option<String>,
}

#[derive(Deserialize)]
struct RawDoc {
    #[serde(rename = "@context")]
    context: String,
    #[serde(rename = "@id", default)]
    id: Option<String>,
    #[serde(default)]
    author: Option<String>,
    statements: Vec<RawStatement>,
}

/// Parses an OpenVEX document; `file` names it in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<VexDocument, VexError> {
    let malformed = |reason: String| VexError::Malformed {
        file: file.to_string(),
        reason,
    };
    let raw: RawDoc = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    if !raw.context.starts_with("https://openvex.dev/ns") {
        return Err(malformed(format!(
            "@context `{}` is not an OpenVEX context",
            raw.context
        )));
    }
    let mut statements = Vec::new();
    for (i, s) in raw.statements.into_iter().enumerate() {
        let (name, aliases) = match s.vulnerability {
            RawVuln::Name(n) => (Some(n), Vec::new()),
            RawVuln::Object { name, id, aliases } => (name.or(id), aliases),
        };
        let Some(vulnerability) = name.filter(|n| !n.is_empty()) else {
            return Err(malformed(format!("statement {i} names no vulnerability")));
        };
        let top_subs: Vec<String> = s
            .subcomponents
            .iter()
            .filter_map(RawComponent::id)
            .collect();
        let products = s
            .products
            .iter()
            .filter_map(|p| {
                let id = p.id()?;
                let mut subcomponents: Vec<String> = match p {
                    RawComponent::Object { subcomponents, .. } => {
                        subcomponents.iter().filter_map(RawComponent::id).collect()
                    }
                    RawComponent::Id(_) => Vec::new(),
                };
                subcomponents.extend(top_subs.iter().cloned());
                Some(VexProduct { id, subcomponents })
            })
            .collect();
        statements.push(VexStatement {
            vulnerability,
            aliases,
            products,
            status: s.status,
            justification: s.justification,
            impact_statement: s.impact_statement,
        });
    }
    Ok(VexDocument {
        source: file.to_string(),
        id: raw.id,
        author: raw.author,
        statements,
    })
}

/// Reads and parses an OpenVEX file.
pub fn load(path: &Path) -> Result<VexDocument, VexError> {
    parse(&read(path)?, &path.display().to_string())
}

/// Reads an OpenVEX file's bytes (at most [`MAX_VEX_BYTES`]), for a caller that checks their
/// digest before [`parse`].
pub fn read(path: &Path) -> Result<Vec<u8>, VexError> {
    let file = path.display().to_string();
    match crate::io::read_capped(path, MAX_VEX_BYTES, "VEX document") {
        Ok(b) => Ok(b),
        Err(e) if e.is_too_large() => Err(VexError::TooLarge { file }),
        Err(e) => Err(VexError::Io {
            file,
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// The image a finding was found in, for matching `pkg:oci` products.
#[derive(Debug, Clone, Default)]
pub struct ImageContext {
    /// The image's digests (manifest, and index if any).
    pub digests: Vec<Digest>,
    /// The repository's last path component (`alpine` for `docker.io/library/alpine`).
    pub name: Option<String>,
}

/// What suppressed a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VexMatch {
    /// The document it came from.
    pub source: String,
    /// The statement's status.
    pub status: VexStatus,
    /// The justification, if any.
    pub justification: Option<String>,
    /// The impact statement, if any.
    pub impact_statement: Option<String>,
}

fn same_package(id: &str, package_purl: &str) -> bool {
    match (purl::core(id), purl::core(package_purl)) {
        (Some((a, av)), Some((b, bv))) => a == b && (av.is_none() || av == bv),
        _ => false,
    }
}

fn is_image(id: &str, image: &ImageContext) -> bool {
    let Some((core, version)) = purl::core(id) else {
        return false;
    };
    let Some(name) = core.strip_prefix("pkg:oci/") else {
        return false;
    };
    match version {
        Some(v) => image.digests.iter().any(|d| d.as_str() == v),
        None => image
            .name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(name)),
    }
}

/// The statement (if any) that decides a finding, over all documents: the last applicable
/// one. Returned whether or not it suppresses; see [`VexStatus::suppresses`].
pub fn decide(docs: &[VexDocument], finding: &Finding, image: &ImageContext) -> Option<VexMatch> {
    let mut out = None;
    for doc in docs {
        for s in &doc.statements {
            let named =
                finding.is_named(&s.vulnerability) || s.aliases.iter().any(|a| finding.is_named(a));
            if !named {
                continue;
            }
            let applies = s.products.iter().any(|p| {
                same_package(&p.id, &finding.package.purl)
                    || (is_image(&p.id, image)
                        && (p.subcomponents.is_empty()
                            || p.subcomponents
                                .iter()
                                .any(|c| same_package(c, &finding.package.purl))))
            });
            if applies {
                out = Some(VexMatch {
                    source: doc.source.clone(),
                    status: s.status,
                    justification: s.justification.clone(),
                    impact_statement: s.impact_statement.clone(),
                });
            }
        }
    }
    out
}
