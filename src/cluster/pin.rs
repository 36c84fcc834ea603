//! `pin`: rewrite the image references of Kubernetes manifests and Helm values files to the
//! internal registry by digest, as the ledger admitted them. Only the scalars change: the text
//! around them (comments, order, quoting) is kept byte for byte.

use serde::Serialize;
use serde_yaml::Value;

use super::admitted::{Admitted, AdmittedImage};
use super::yaml_scan::{self, ImageSite, Quote, Scalar};
use crate::reference::Reference;

/// Why a file could not be pinned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The file is not YAML.
    #[error("{file}: not YAML: {detail}")]
    Yaml {
        /// The file.
        file: String,
        /// The parser's message.
        detail: String,
    },
    /// An `image` the text scan could not place (flow style, multi-line scalar, anchor).
    #[error(
        "{file}: an `image` value is written in a form pin cannot edit in place (flow style, \
         anchor or multi-line scalar); write it as `image: REF` in block style"
    )]
    Unscannable {
        /// The file.
        file: String,
    },
    /// A value is not an image reference.
    #[error("{file}:{line}: `{reference}` is not an image reference: {source}")]
    BadReference {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The value.
        reference: String,
        /// The parser's complaint.
        #[source]
        source: crate::reference::ReferenceError,
    },
    /// The ledger never admitted this reference.
    #[error("{file}:{line}: image `{reference}` was never admitted (not in the ledger)")]
    NotAdmitted {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The reference.
        reference: String,
    },
    /// A Helm image mapping with no repository, or neither tag nor digest.
    #[error(
        "{file}:{line}: image mapping needs `repository` and a `tag` or `digest` to be pinned"
    )]
    IncompleteMapping {
        /// The file.
        file: String,
        /// 1-based line of `image:`.
        line: usize,
    },
}

/// One reference rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pinned {
    /// 1-based line.
    pub line: usize,
    /// The reference as written.
    pub from: String,
    /// The internal reference by digest.
    pub to: String,
}

/// What `pin` did to one file.
#[derive(Debug, Clone, Serialize)]
pub struct PinReport {
    /// The file.
    pub file: String,
    /// The references rewritten.
    pub pinned: Vec<Pinned>,
}

/// Rewrites every `image` of `text` (named `file` in errors); returns the new text.
pub fn pin_text(
    file: &str,
    text: &str,
    admitted: &Admitted,
) -> Result<(String, PinReport), PinError> {
    let sites = yaml_scan::scan(text);
    check_against_parse(file, text, &sites)?;
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut pinned = Vec::new();
    for site in &sites {
        match site {
            ImageSite::Ref(s) => {
                let img = lookup(file, s.line, &s.value, admitted)?;
                let to = internal_ref(img);
                edits.push((s.range.clone(), token(s, &to)));
                pinned.push(Pinned {
                    line: s.line,
                    from: s.value.clone(),
                    to,
                });
            }
            ImageSite::Map { line, fields } => {
                let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, s)| s);
                let (Some(repo), tag, digest) =
                    (field("repository"), field("tag"), field("digest"))
                else {
                    return Err(PinError::IncompleteMapping {
                        file: file.into(),
                        line: *line,
                    });
                };
                let registry = field("registry").filter(|s| !s.value.is_empty());
                let tag = tag.filter(|s| !s.value.is_empty());
                let digest_value = digest.map(|s| s.value.as_str()).unwrap_or("");
                if tag.is_none() && digest_value.is_empty() {
                    return Err(PinError::IncompleteMapping {
                        file: file.into(),
                        line: *line,
                    });
                }
                let mut written = match registry {
                    Some(r) => format!("{}/{}", r.value, repo.value),
                    None => repo.value.clone(),
                };
                if let Some(t) = tag {
                    written.push(':');
                    written.push_str(&t.value);
                }
                if !digest_value.is_empty() {
                    written.push('@');
                    written.push_str(digest_value.trim_start_matches('@'));
                }
                let img = lookup(file, *line, &written, admitted)?;
                match registry.or(field("registry")) {
                    Some(r) => {
                        edits.push((r.range.clone(), token(r, &img.target.registry)));
                        edits.push((repo.range.clone(), token(repo, &img.target.repository)));
                    }
                    None => edits.push((repo.range.clone(), token(repo, &img.target.name()))),
                }
                match (digest, tag) {
                    (Some(d), _) => edits.push((d.range.clone(), token(d, img.digest.as_str()))),
                    (None, Some(t)) => edits.push((
                        t.range.clone(),
                        token(t, &format!("{}@{}", t.value, img.digest)),
                    )),
                    (None, None) => {}
                }
                pinned.push(Pinned {
                    line: *line,
                    from: written,
                    to: internal_ref(img),
                });
            }
        }
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_string();
    for (range, new) in edits {
        out.replace_range(range, &new);
    }
    Ok((
        out,
        PinReport {
            file: file.into(),
            pinned,
        },
    ))
}

/// The admitted image a reference names: by digest when it has one (which must be the
/// admitted digest), else the latest admission of its tag (`latest` when it has none). The
/// name may be the source name or the internal one.
fn lookup<'a>(
    file: &str,
    line: usize,
    written: &str,
    admitted: &'a Admitted,
) -> Result<&'a AdmittedImage, PinError> {
    let r: Reference = written.parse().map_err(|source| PinError::BadReference {
        file: file.into(),
        line,
        reference: written.into(),
        source,
    })?;
    let name = r.name();
    let tag = r.tag.as_ref().map_or("latest", |t| t.as_str());
    admitted
        .images
        .iter()
        .rev()
        .filter(|i| i.source.name() == name || i.target.name() == name)
        .find(|i| match &r.digest {
            Some(d) => &i.digest == d,
            None => i.source.tag.as_deref() == Some(tag) || i.target.tag.as_deref() == Some(tag),
        })
        .ok_or_else(|| PinError::NotAdmitted {
            file: file.into(),
            line,
            reference: written.into(),
        })
}

/// `host/repo:tag@digest` (the tag kept for people; the digest is what is pulled).
fn internal_ref(img: &AdmittedImage) -> String {
    match &img.target.tag {
        Some(t) => format!("{}:{t}@{}", img.target.name(), img.digest),
        None => format!("{}@{}", img.target.name(), img.digest),
    }
}

/// `value` written the way `s` was (references need no escaping).
fn token(s: &Scalar, value: &str) -> String {
    match s.quote {
        Quote::Plain if s.range.is_empty() => format!(" {value}"),
        Quote::Plain => value.to_string(),
        Quote::Single => format!("'{value}'"),
        Quote::Double => format!("\"{value}\""),
    }
}

/// Every `image` a YAML parser sees must be one the text scan placed, with the same value.
fn check_against_parse(file: &str, text: &str, sites: &[ImageSite]) -> Result<(), PinError> {
    let mut parsed: Vec<Vec<(String, String)>> = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = <Value as serde::Deserialize>::deserialize(doc).map_err(|e| PinError::Yaml {
            file: file.into(),
            detail: e.to_string(),
        })?;
        collect(&v, &mut parsed);
    }
    let scanned: Vec<Vec<(String, String)>> = sites
        .iter()
        .map(|s| match s {
            ImageSite::Ref(s) => vec![(String::new(), s.value.clone())],
            ImageSite::Map { fields, .. } => {
                let mut f: Vec<(String, String)> = fields
                    .iter()
                    .map(|(k, s)| (k.clone(), s.value.clone()))
                    .collect();
                f.sort();
                f
            }
        })
        .collect();
    if parsed != scanned {
        return Err(PinError::Unscannable { file: file.into() });
    }
    Ok(())
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn collect(v: &Value, out: &mut Vec<Vec<(String, String)>>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                if k.as_str() == Some("image") {
                    match v {
                        Value::String(s) => out.push(vec![(String::new(), s.clone())]),
                        Value::Mapping(fields) => {
                            let mut f: Vec<(String, String)> = fields
                                .iter()
                                .filter_map(|(k, v)| {
                                    let k = k.as_str()?;
                                    yaml_scan::IMAGE_FIELDS
                                        .contains(&k)
                                        .then(|| Some((k.to_string(), scalar_text(v)?)))
                                        .flatten()
                                })
                                .collect();
                            f.sort();
                            out.push(f);
                            collect(v, out);
                        }
                        other => collect(other, out),
                    }
                } else {
                    collect(v, out);
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| collect(x, out)),
        Value::Tagged(t) => collect(&t.value, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::AdmittedImage;

    fn one() -> Admitted {
        Admitted {
            images: vec![AdmittedImage {
                source: "registry.example.com/app:1.0".parse().expect("source"),
                target: "reg.internal/m/app:1.0".parse().expect("target"),
                digest: crate::oci::Digest::of(b"app"),
                origin: "ledger entry 0".into(),
            }],
        }
    }

    #[test]
    fn refuses_a_helm_mapping_without_tag_or_digest() {
        let text = "image:\n  repository: registry.example.com/app\n  pullPolicy: Always\n";
        let err = pin_text("v.yaml", text, &one()).expect_err("no tag");
        assert!(
            matches!(err, PinError::IncompleteMapping { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_tag_resolves_to_the_admitted_digest_and_an_untagged_name_means_latest() {
        let (out, report) =
            pin_text("a.yaml", "image: registry.example.com/app:1.0\n", &one()).expect("pin");
        assert_eq!(
            out,
            format!(
                "image: reg.internal/m/app:1.0@{}\n",
                crate::oci::Digest::of(b"app")
            )
        );
        assert_eq!(report.pinned.len(), 1);
        let err =
            pin_text("a.yaml", "image: registry.example.com/app\n", &one()).expect_err("latest");
        assert!(
            err.to_string()
                .starts_with("a.yaml:1: image `registry.example.com/app`"),
            "{err}"
        );
    }
}
