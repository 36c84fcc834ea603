//! Finds the images in rendered manifests: every `image` string field (containers,
//! initContainers, ephemeralContainers of any pod template, custom resources), the
//! `helm.sh/images` and `artifacthub.io/images` annotations, and image-shaped values.

use std::collections::BTreeSet;

use serde::Serialize;

use super::render::{RenderError, Rendered};
use crate::reference::Reference;

/// One place an image was found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// The normalised reference.
    pub image: String,
    /// The template (`chart/templates/x.yaml`), `Chart.yaml` for annotations, `values` for
    /// image-shaped values.
    pub template: String,
    /// The object's kind (`Deployment`), `annotation`, or `values`.
    pub kind: String,
    /// The object's name, the annotation's key, or the value's path.
    pub name: String,
    /// The container's name, or the field's path for other `image` fields.
    pub container: String,
}

/// An `image` field that is not a valid reference.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unresolved {
    /// The string as rendered.
    pub raw: String,
    /// Why it is not a reference.
    pub reason: String,
    /// The template.
    pub template: String,
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The container or field.
    pub container: String,
}

/// Everything `chart images` reports.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ImageReport {
    /// The images the chart deploys with these values (rendered objects and annotations),
    /// normalised, sorted, unique.
    pub images: Vec<String>,
    /// Where each was found; image-shaped values (kind `values`) too, which are not in `images`.
    pub found: Vec<Found>,
    /// `image` fields that are not references.
    pub unresolved: Vec<Unresolved>,
}

/// A reference normalised the way container runtimes do (`docker.io/library/`, `:latest`
/// when neither tag nor digest is written).
pub fn normalise(raw: &str) -> Result<String, crate::reference::ReferenceError> {
    let r: Reference = raw.trim().parse()?;
    let mut s = r.to_string();
    if r.tag.is_none() && r.digest.is_none() {
        s.push_str(":latest");
    }
    Ok(s)
}

/// Splits a rendered file into manifests as Helm does (`---` separators).
pub fn split_manifests(text: &str) -> Vec<&str> {
    let re = regex::Regex::new(r"(?:^|\s*\n)---\s*").expect("static regex");
    re.split(text.trim())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Walks every rendered manifest and the charts' annotations.
pub fn find_images(r: &Rendered) -> Result<ImageReport, RenderError> {
    let mut found = Vec::new();
    let mut unresolved = Vec::new();
    for (template, text) in &r.manifests {
        for doc in split_manifests(text) {
            let v: serde_yaml::Value =
                super::template::yaml::parse_lenient(doc).map_err(|e| RenderError::Manifest {
                    chart: r.chart.clone(),
                    template: template.clone(),
                    reason: e.to_string().replace('\n', " "),
                })?;
            if !(v.is_mapping() || v.is_null()) {
                return Err(RenderError::Manifest {
                    chart: r.chart.clone(),
                    template: template.clone(),
                    reason: "a manifest is not a YAML map".into(),
                });
            }
            let kind = v
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("")
                .to_string();
            let name = v
                .get("metadata")
                .and_then(|m| m.get("name"))
                .map(|n| match n {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                })
                .unwrap_or_default();
            let mut ctx = Walk {
                template,
                kind: &kind,
                name: &name,
                found: &mut found,
                unresolved: &mut unresolved,
            };
            ctx.walk(&v, "", None);
        }
    }
    for (chart, ann) in &r.annotations {
        for key in ["helm.sh/images", "artifacthub.io/images"] {
            let Some(text) = ann.get(key) else { continue };
            let Ok(serde_yaml::Value::Sequence(items)) =
                serde_yaml::from_str::<serde_yaml::Value>(text)
            else {
                continue;
            };
            for it in items {
                let Some(img) = it.get("image").and_then(|i| i.as_str()) else {
                    continue;
                };
                let entry_name = it
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_string();
                match normalise(img) {
                    Ok(image) => found.push(Found {
                        image,
                        template: format!("{chart}/Chart.yaml"),
                        kind: "annotation".into(),
                        name: key.into(),
                        container: entry_name,
                    }),
                    Err(e) => unresolved.push(Unresolved {
                        raw: img.to_string(),
                        reason: e.to_string(),
                        template: format!("{chart}/Chart.yaml"),
                        kind: "annotation".into(),
                        name: key.into(),
                        container: entry_name,
                    }),
                }
            }
        }
    }
    let images: BTreeSet<String> = found.iter().map(|f| f.image.clone()).collect();
    let global_registry = match &r.values {
        super::template::Value::Map(m) => match m.borrow().get("global") {
            Some(super::template::Value::Map(g)) => g
                .borrow()
                .get("imageRegistry")
                .and_then(|x| x.as_str().filter(|s| !s.is_empty()).map(str::to_string)),
            _ => None,
        },
        _ => None,
    };
    value_images(&r.values, "", global_registry.as_deref(), &mut found);
    found.sort();
    found.dedup();
    unresolved.sort();
    unresolved.dedup();
    Ok(ImageReport {
        images: images.into_iter().collect(),
        found,
        unresolved,
    })
}

struct Walk<'a> {
    template: &'a str,
    kind: &'a str,
    name: &'a str,
    found: &'a mut Vec<Found>,
    unresolved: &'a mut Vec<Unresolved>,
}

impl Walk<'_> {
    fn walk(&mut self, v: &serde_yaml::Value, path: &str, container: Option<&str>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                // A container: a map with `name` inside a containers-style list.
                for (k, x) in m {
                    let Some(k) = k.as_str() else { continue };
                    let p = if path.is_empty() {
                        k.to_string()
                    } else {
                        format!("{path}.{k}")
                    };
                    if k == "image" {
                        if let Some(raw) = x.as_str() {
                            let where_ = container.map(str::to_string).unwrap_or(p.clone());
                            self.record(raw, &where_);
                            continue;
                        }
                    }
                    if matches!(k, "containers" | "initContainers" | "ephemeralContainers") {
                        if let serde_yaml::Value::Sequence(items) = x {
                            for (i, c) in items.iter().enumerate() {
                                let cname =
                                    c.get("name").and_then(|n| n.as_str()).map(str::to_string);
                                let label = cname.unwrap_or_else(|| format!("{p}[{i}]"));
                                self.walk(c, &format!("{p}[{i}]"), Some(&label));
                            }
                            continue;
                        }
                    }
                    self.walk(x, &p, None);
                }
            }
            serde_yaml::Value::Sequence(items) => {
                for (i, x) in items.iter().enumerate() {
                    self.walk(x, &format!("{path}[{i}]"), None);
                }
            }
            serde_yaml::Value::Tagged(t) => self.walk(&t.value, path, container),
            _ => {}
        }
    }

    fn record(&mut self, raw: &str, container: &str) {
        match normalise(raw) {
            Ok(image) => self.found.push(Found {
                image,
                template: self.template.to_string(),
                kind: self.kind.to_string(),
                name: self.name.to_string(),
                container: container.to_string(),
            }),
            Err(e) => self.unresolved.push(Unresolved {
                raw: raw.to_string(),
                reason: e.to_string(),
                template: self.template.to_string(),
                kind: self.kind.to_string(),
                name: self.name.to_string(),
                container: container.to_string(),
            }),
        }
    }
}

/// Image-shaped values (`image: {registry, repository, tag, digest}`, `global.imageRegistry`
/// replacing the registry as Bitnami-style charts do): what an operator may deploy at run time,
/// reported with kind `values` and kept out of `images`.
fn value_images(
    v: &super::template::Value,
    path: &str,
    global_registry: Option<&str>,
    found: &mut Vec<Found>,
) {
    use super::template::Value;
    let Value::Map(m) = v else { return };
    let m = m.borrow();
    if let Some(Value::Str(repo)) = m.get("repository") {
        let get = |k: &str| match m.get(k) {
            Some(Value::Str(s)) if !s.is_empty() => Some(s.to_string()),
            Some(Value::Float(f)) => Some(super::template::value::format_float_g(*f)),
            _ => None,
        };
        let looks_like_image = path
            .rsplit('.')
            .next()
            .is_some_and(|k| k.to_ascii_lowercase().ends_with("image"));
        // Without a tag or digest the template fills one in (often the appVersion): only values
        // that name a version are reported, rather than a guessed `:latest`.
        let versioned = get("tag").is_some() || get("digest").is_some();
        if looks_like_image && !repo.is_empty() && versioned {
            let mut raw = match global_registry
                .map(str::to_string)
                .or_else(|| get("registry"))
            {
                Some(r) => format!("{r}/{repo}"),
                None => repo.to_string(),
            };
            if let Some(t) = get("tag") {
                raw.push(':');
                raw.push_str(&t);
            }
            if let Some(d) = get("digest") {
                raw.push('@');
                raw.push_str(&d);
            }
            if let Ok(image) = normalise(&raw) {
                found.push(Found {
                    image,
                    template: "values".into(),
                    kind: "values".into(),
                    name: path.to_string(),
                    container: String::new(),
                });
            }
        }
    }
    for (k, x) in m.iter() {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        value_images(x, &p, global_registry, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_runtimes() {
        assert_eq!(
            normalise("nginx").unwrap(),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(
            normalise("registry:3.0.0").unwrap(),
            "docker.io/library/registry:3.0.0"
        );
        assert_eq!(
            normalise("alpine/socat:1.0.5").unwrap(),
            "docker.io/alpine/socat:1.0.5"
        );
        assert_eq!(
            normalise("index.docker.io/x/y:1").unwrap(),
            "docker.io/x/y:1"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            normalise(&format!("q.io/x:1@{d}")).unwrap(),
            format!("q.io/x:1@{d}")
        );
        assert!(normalise("").is_err());
    }

    #[test]
    fn splits_like_helm() {
        assert_eq!(
            split_manifests("\n---\na: 1\n---  \n\nb: 2\n---\n"),
            vec!["a: 1", "b: 2"]
        );
    }
}
