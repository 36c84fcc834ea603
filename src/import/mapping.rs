//! Where each artifact lands in the target registry.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::bundle::Artifact;
use crate::oci::{RepoName, Tag};

/// The target: a registry host and an optional path prefix (`registry.local:5000/mirror`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Registry host[:port].
    pub registry: String,
    /// Path prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl std::fmt::Display for Target {
    /// `HOST[:PORT][/PREFIX]`, as the ledger records it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.as_str() {
            "" => f.write_str(&self.registry),
            p => write!(f, "{}/{p}", self.registry),
        }
    }
}

/// A bad `--to` value or mapping file.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// `--to` does not parse.
    #[error("`{0}`: expected HOST[:PORT][/PREFIX], e.g. registry.local:5000/mirror")]
    BadTarget(String),
    /// The mapping file cannot be read or parsed.
    #[error("mapping file `{path}`: {why}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A mapped name is not a valid repository.
    #[error("{source_ref} maps to `{target}`, which is not a valid repository name")]
    BadName {
        /// The artifact.
        source_ref: String,
        /// The mapped name.
        target: String,
    },
    /// Two different artifacts would land on the same name.
    #[error("{a} and {b} both map to `{target}`; give one a different name with a mapping file (`--mapping`), or drop --flatten if set")]
    Collision {
        /// First artifact.
        a: String,
        /// Second artifact.
        b: String,
        /// The shared target.
        target: String,
    },
}

impl FromStr for Target {
    type Err = MappingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim_end_matches('/');
        let (registry, prefix) = s.split_once('/').unwrap_or((s, ""));
        let probe = format!("{registry}/x");
        match probe.parse::<crate::reference::Reference>() {
            Ok(r) if r.registry == registry => {}
            _ => return Err(MappingError::BadTarget(s.to_string())),
        }
        if !prefix.is_empty()
            && format!("{registry}/{prefix}")
                .parse::<crate::reference::Reference>()
                .is_err()
        {
            return Err(MappingError::BadTarget(s.to_string()));
        }
        Ok(Target {
            registry: registry.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// One explicit rewrite: a source name (or name prefix) and the target path it becomes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Source `registry/repository` (or a prefix of it at a `/` boundary). HTTP charts are
    /// named `charts/<name>`.
    pub from: String,
    /// Target repository path, under the target registry (the prefix is not added).
    pub to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    rewrites: Vec<Rewrite>,
}

/// How source repositories become target repositories.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Prefix under the target registry.
    pub prefix: String,
    /// Keep the source registry host as a path component (`:` becomes `_`).
    pub keep_source_host: bool,
    /// Join the path with `-` into one component under the prefix, for registries that limit
    /// nesting.
    pub flatten: bool,
    /// Explicit rewrites; the first that matches wins over everything else.
    pub rewrites: Vec<Rewrite>,
}

impl Mapping {
    /// Reads a YAML mapping file: `rewrites: [{from: …, to: …}]`.
    pub fn load_rewrites(path: &Path) -> Result<Vec<Rewrite>, MappingError> {
        let bad = |why: String| MappingError::BadFile {
            path: path.display().to_string(),
            why,
        };
        let bytes = crate::io::read_capped(path, 4 * 1024 * 1024, "mapping")
            .map_err(|e| bad(e.to_string()))?;
        let f: MappingFile = serde_yaml::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        Ok(f.rewrites)
    }

    /// The target repository path for an artifact, validated: it becomes a request path.
    pub fn repository_for(&self, a: &Artifact) -> Result<RepoName, MappingError> {
        let source_name = match &a.registry {
            Some(r) => format!("{r}/{}", a.repository),
            None => a.repository.to_string(),
        };
        for rw in &self.rewrites {
            let from = rw.from.trim_end_matches('/');
            if source_name == from {
                return self.checked(a, rw.to.clone());
            }
            if let Some(rest) = source_name.strip_prefix(&format!("{from}/")) {
                return self.checked(a, format!("{}/{rest}", rw.to.trim_end_matches('/')));
            }
        }
        let mut path = String::new();
        if self.keep_source_host {
            if let Some(r) = &a.registry {
                path.push_str(&r.replace(':', "_").to_ascii_lowercase());
                path.push('/');
            }
        }
        path.push_str(&a.repository);
        if self.flatten {
            path = path.replace('/', "-");
        }
        let full = if self.prefix.is_empty() {
            path
        } else {
            format!("{}/{path}", self.prefix)
        };
        self.checked(a, full)
    }

    fn checked(&self, a: &Artifact, target: String) -> Result<RepoName, MappingError> {
        RepoName::parse(&target).map_err(|_| MappingError::BadName {
            source_ref: crate::untrusted::shorten(&a.source),
            target: crate::untrusted::shorten(&target),
        })
    }

    /// Maps every artifact, refusing two different digests on one `repository:tag`.
    pub fn map_all(&self, artifacts: &[Artifact]) -> Result<Vec<RepoName>, MappingError> {
        let mut seen: HashMap<(RepoName, Option<Tag>), &Artifact> = HashMap::new();
        let mut out = Vec::new();
        for a in artifacts {
            let repo = self.repository_for(a)?;
            if let Some(prev) = seen.get(&(repo.clone(), a.tag.clone())) {
                if prev.digest != a.digest && a.tag.is_some() {
                    return Err(MappingError::Collision {
                        a: prev.source.clone(),
                        b: a.source.clone(),
                        target: format!(
                            "{repo}:{}",
                            a.tag.as_ref().map(|t| t.as_str()).unwrap_or_default()
                        ),
                    });
                }
            }
            seen.insert((repo.clone(), a.tag.clone()), a);
            out.push(repo);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::ArtifactKind;
    use crate::oci::Digest;

    fn art(registry: Option<&str>, repo: &str, tag: &str, d: u8) -> Artifact {
        Artifact {
            kind: ArtifactKind::Image,
            source: format!("{}/{repo}:{tag}", registry.unwrap_or("")),
            registry: registry.map(str::to_string),
            repository: repo.parse().expect("repository"),
            tag: Some(tag.parse().expect("tag")),
            digest: Digest::of(&[d]),
            media_type: crate::oci::media::OCI_MANIFEST.into(),
            platforms: vec![],
            children: vec![],
            size: 0,
            verification: vec![],
            subject: None,
            artifact_type: None,
            scan: None,
            origin: crate::bundle::Origin::Upstream,
        }
    }

    #[test]
    fn maps_by_default_keep_host_flatten_and_rewrite() {
        let a = art(Some("127.0.0.1:5000"), "library/app", "1", 1);
        let m = Mapping {
            prefix: "mirror".into(),
            ..Default::default()
        };
        assert_eq!(m.repository_for(&a).expect("map"), "mirror/library/app");
        let m2 = Mapping {
            keep_source_host: true,
            ..m.clone()
        };
        assert_eq!(
            m2.repository_for(&a).expect("map"),
            "mirror/127.0.0.1_5000/library/app"
        );
        let m3 = Mapping {
            flatten: true,
            ..m.clone()
        };
        assert_eq!(m3.repository_for(&a).expect("map"), "mirror/library-app");
        let m4 = Mapping {
            rewrites: vec![Rewrite {
                from: "127.0.0.1:5000/library".into(),
                to: "platform/base".into(),
            }],
            ..m.clone()
        };
        assert_eq!(m4.repository_for(&a).expect("map"), "platform/base/app");
        let m5 = Mapping {
            rewrites: vec![Rewrite {
                from: "127.0.0.1:5000/library/app".into(),
                to: "Bad Name".into(),
            }],
            ..m
        };
        assert!(matches!(
            m5.repository_for(&a),
            Err(MappingError::BadName { .. })
        ));
    }

    #[test]
    fn refuses_collisions() {
        let m = Mapping {
            flatten: true,
            ..Default::default()
        };
        let a = art(Some("r.io"), "a/b-c", "1", 1);
        let b = art(Some("r.io"), "a-b/c", "1", 2);
        assert!(matches!(
            m.map_all(&[a, b]),
            Err(MappingError::Collision { .. })
        ));
    }

    #[test]
    fn parses_targets() {
        let t: Target = "127.0.0.1:5000/mirror/x".parse().expect("target");
        assert_eq!(t.registry, "127.0.0.1:5000");
        assert_eq!(t.prefix, "mirror/x");
        let t: Target = "registry.local".parse().expect("target");
        assert_eq!(t.prefix, "");
        assert!("not a host/x".parse::<Target>().is_err());
        assert!("reg.local/UPPER".parse::<Target>().is_err());
        assert!("nodots/x".parse::<Target>().is_err());
    }
}
