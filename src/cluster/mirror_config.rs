//! Node configuration that sends pulls of the source registries to the internal one: which
//! source host maps to which internal host and prefix (from what import admitted), written in
//! the format of each container runtime.
//!
//! Every runtime tries the upstream after a mirror miss unless told not to. What each format
//! can do about it (checked against containerd 1.6 and podman 4.3):
//! - containerd: `server` is always tried after the `[host]`s and defaults to the upstream,
//!   so `server` names the mirror too: a miss is never sent upstream.
//! - CRI-O / podman: `blocked = true` on the upstream `location`; its mirrors are still used,
//!   so a miss fails naming the blocked registry.
//! - OpenShift: `mirrorSourcePolicy: NeverContactSource`.
//! - k3s/RKE2: `registries.yaml` cannot; the node needs `--disable-default-registry-endpoint`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::admitted::Admitted;

/// A format of node configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorFormat {
    /// containerd `hosts.toml`, one directory per source host (`config_path`, `ctr --hosts-dir`).
    Containerd,
    /// k3s / RKE2 `registries.yaml`.
    K3s,
    /// CRI-O / podman `registries.conf.d` drop-in.
    Crio,
    /// OpenShift `ImageDigestMirrorSet` and `ImageTagMirrorSet`.
    Idms,
}

/// Why no configuration could be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// A target repository is not the source repository under a prefix (rewrites, flatten).
    #[error(
        "{origin}: `{source_name}` was imported as `{target_name}`, which is not the source \
         repository under a prefix; node mirrors can only add a prefix (import without \
         --flatten or rewrites)"
    )]
    NotAPrefix {
        /// Where it was recorded.
        origin: String,
        /// Source repository name.
        source_name: String,
        /// Target repository name.
        target_name: String,
    },
    /// Two images of one source host went to different places.
    #[error(
        "source registry `{source_host}` was imported to both `{first}` and `{second}`; a node \
         mirror sends a source host to one place"
    )]
    Inconsistent {
        /// The source host.
        source_host: String,
        /// One target.
        first: String,
        /// The other.
        second: String,
    },
    /// The CA file is not a PEM certificate.
    #[error("CA file `{path}` holds no PEM certificate")]
    NotPem {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// One source registry and where its images live on the internal registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mirror {
    /// Source registry host (`registry.example.com`, `docker.io`).
    pub source: String,
    /// Internal registry host (`registry.internal:5000`).
    pub host: String,
    /// Path prefix under it (`mirror`), empty for none.
    pub prefix: String,
}

impl Mirror {
    /// `host/prefix`, or `host` without a prefix.
    pub fn location(&self) -> String {
        if self.prefix.is_empty() {
            self.host.clone()
        } else {
            format!("{}/{}", self.host, self.prefix)
        }
    }
}

/// How the configuration is written.
#[derive(Debug, Clone, Default)]
pub struct MirrorOptions {
    /// CA certificate (path and PEM bytes) the nodes trust for the internal registry.
    pub ca: Option<(PathBuf, Vec<u8>)>,
    /// The internal registry speaks plain HTTP (labs only).
    pub plain_http: bool,
    /// CRI-O: the mirror serves pulls by digest only (`pull-from-mirror = "digest-only"`).
    pub digest_only: bool,
}

/// One file to write, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    /// Path under the output directory.
    pub path: PathBuf,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// The source host → internal host and prefix mapping of everything admitted, sorted by
/// source host.
pub fn mirrors(admitted: &Admitted) -> Result<Vec<Mirror>, MirrorError> {
    let mut by_source: BTreeMap<String, (Mirror, String)> = BTreeMap::new();
    for img in &admitted.images {
        let src = &img.source.repository;
        let dst = &img.target.repository;
        let prefix = if dst == src {
            String::new()
        } else if let Some(p) = dst.strip_suffix(&format!("/{src}")) {
            p.to_string()
        } else {
            return Err(MirrorError::NotAPrefix {
                origin: img.origin.clone(),
                source_name: img.source.name(),
                target_name: img.target.name(),
            });
        };
        let m = Mirror {
            source: img.source.registry.clone(),
            host: img.target.registry.clone(),
            prefix,
        };
        match by_source.get(&m.source) {
            Some((prev, _)) if prev != &m => {
                return Err(MirrorError::Inconsistent {
                    source_host: m.source.clone(),
                    first: prev.location(),
                    second: m.location(),
                })
            }
            Some(_) => {}
            None => {
                by_source.insert(m.source.clone(), (m, img.origin.clone()));
            }
        }
    }
    Ok(by_source.into_values().map(|(m, _)| m).collect())
}

/// The files of `format` for `mirrors`.
pub fn render(
    format: MirrorFormat,
    mirrors: &[Mirror],
    opts: &MirrorOptions,
) -> Result<Vec<OutFile>, MirrorError> {
    if let Some((path, pem)) = &opts.ca {
        if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(MirrorError::NotPem { path: path.clone() });
        }
    }
    Ok(match format {
        MirrorFormat::Containerd => containerd(mirrors, opts),
        MirrorFormat::K3s => vec![k3s(mirrors, opts)],
        MirrorFormat::Crio => crio(mirrors, opts),
        MirrorFormat::Idms => idms(mirrors, opts),
    })
}

/// Writes `files` under `dir` (created if needed), each through a temporary name.
pub fn write(dir: &Path, files: &[OutFile]) -> Result<(), MirrorError> {
    for f in files {
        let path = dir.join(&f.path);
        let io = |source| MirrorError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).map_err(io)?;
        }
        let tmp = path.with_extension("airlock-partial");
        fs_err::write(&tmp, &f.contents).map_err(io)?;
        fs_err::rename(&tmp, &path).map_err(io)?;
    }
    Ok(())
}

fn header(comment: &str, m: &[Mirror]) -> String {
    let mut s = format!("{comment} Written by airlock mirror-config from what import admitted:\n");
    for x in m {
        let _ = writeln!(s, "{comment}   {} -> {}", x.source, x.location());
    }
    s
}

fn scheme(opts: &MirrorOptions) -> &'static str {
    if opts.plain_http {
        "http"
    } else {
        "https"
    }
}

fn toml_str(s: &str) -> String {
    // Host names and paths only: no quotes or backslashes can occur, but escape anyway.
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn containerd(mirrors: &[Mirror], opts: &MirrorOptions) -> Vec<OutFile> {
    let mut out = Vec::new();
    for m in mirrors {
        let mut s = header("#", std::slice::from_ref(m));
        s.push_str(
            "# `server` is the mirror too: containerd tries `server` (by default the upstream)\n\
             # after every [host], so naming the mirror there means a miss never goes upstream.\n",
        );
        let path = if m.prefix.is_empty() {
            String::new()
        } else {
            format!("/v2/{}", m.prefix)
        };
        let url = toml_str(&format!("{}://{}{path}", scheme(opts), m.host));
        let _ = writeln!(s, "server = {url}");
        // The same settings for `server` and the one [host] (containerd 1.6 requires a [host]).
        let mut settings = String::from("capabilities = [\"pull\", \"resolve\"]\n");
        if !m.prefix.is_empty() {
            settings.push_str("override_path = true\n");
        }
        if opts.ca.is_some() {
            settings.push_str("ca = \"ca.pem\"\n");
        }
        s.push_str(&settings);
        let _ = writeln!(s, "\n[host.{url}]");
        for line in settings.lines() {
            let _ = writeln!(s, "  {line}");
        }
        if let Some((_, pem)) = &opts.ca {
            out.push(OutFile {
                path: PathBuf::from(&m.source).join("ca.pem"),
                contents: pem.clone(),
            });
        }
        out.push(OutFile {
            path: PathBuf::from(&m.source).join("hosts.toml"),
            contents: s.into_bytes(),
        });
    }
    out
}

fn yaml_str(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::Value::String(s.to_string()).to_string()
}

fn k3s(mirrors: &[Mirror], opts: &MirrorOptions) -> OutFile {
    let mut s = header("#", mirrors);
    s.push_str(
        "# k3s/RKE2 still try the upstream after a miss unless the node runs with\n\
         # --disable-default-registry-endpoint.\nmirrors:\n",
    );
    for m in mirrors {
        let _ = writeln!(s, "  {}:", yaml_str(&m.source));
        let _ = writeln!(
            s,
            "    endpoint:\n      - {}",
            yaml_str(&format!("{}://{}", scheme(opts), m.host))
        );
        if !m.prefix.is_empty() {
            let _ = writeln!(
                s,
                "    rewrite:\n      \"^(.*)$\": {}",
                yaml_str(&format!("{}/$1", m.prefix))
            );
        }
    }
    if let Some((path, _)) = &opts.ca {
        s.push_str("configs:\n");
        let mut hosts: Vec<&str> = mirrors.iter().map(|m| m.host.as_str()).collect();
        hosts.sort();
        hosts.dedup();
        for h in hosts {
            let _ = writeln!(
                s,
                "  {}:\n    tls:\n      ca_file: {}",
                yaml_str(h),
                yaml_str(&path.display().to_string())
            );
        }
    }
    OutFile {
        path: PathBuf::from("registries.yaml"),
        contents: s.into_bytes(),
    }
}

fn crio(mirrors: &[Mirror], opts: &MirrorOptions) -> Vec<OutFile> {
    let mut s = header("#", mirrors);
    s.push_str(
        "# `blocked = true` refuses the upstream itself; the mirror is still used, so a miss\n\
         # fails instead of going upstream.\n",
    );
    if opts.digest_only {
        s.push_str("# digest-only: only pulls by digest are served (pulls by tag fail).\n");
    }
    for m in mirrors {
        s.push_str("\n[[registry]]\n");
        let _ = writeln!(s, "prefix = {}", toml_str(&m.source));
        let _ = writeln!(s, "location = {}", toml_str(&m.source));
        s.push_str("blocked = true\n\n[[registry.mirror]]\n");
        let _ = writeln!(s, "location = {}", toml_str(&m.location()));
        if opts.plain_http {
            s.push_str("insecure = true\n");
        }
        if opts.digest_only {
            s.push_str("pull-from-mirror = \"digest-only\"\n");
        }
    }
    let mut out = vec![OutFile {
        path: PathBuf::from("registries.conf.d/50-airlock.conf"),
        contents: s.into_bytes(),
    }];
    if let Some((_, pem)) = &opts.ca {
        let mut hosts: Vec<&str> = mirrors.iter().map(|m| m.host.as_str()).collect();
        hosts.sort();
        hosts.dedup();
        for h in hosts {
            out.push(OutFile {
                path: PathBuf::from("certs.d").join(h).join("ca.crt"),
                contents: pem.clone(),
            });
        }
    }
    out
}

fn idms(mirrors: &[Mirror], opts: &MirrorOptions) -> Vec<OutFile> {
    let set = |kind: &str, list: &str| {
        let mut s = header("#", mirrors);
        let _ = write!(
            s,
            "apiVersion: config.openshift.io/v1\nkind: {kind}\nmetadata:\n  name: airlock\nspec:\n  {list}:\n"
        );
        for m in mirrors {
            let _ = writeln!(
                s,
                "    - source: {}\n      mirrors:\n        - {}\n      mirrorSourcePolicy: NeverContactSource",
                yaml_str(&m.source),
                yaml_str(&m.location())
            );
        }
        s.into_bytes()
    };
    let mut out = vec![
        OutFile {
            path: PathBuf::from("imagedigestmirrorset.yaml"),
            contents: set("ImageDigestMirrorSet", "imageDigestMirrors"),
        },
        OutFile {
            path: PathBuf::from("imagetagmirrorset.yaml"),
            contents: set("ImageTagMirrorSet", "imageTagMirrors"),
        },
    ];
    if let Some((_, pem)) = &opts.ca {
        // image.config.openshift.io/cluster `additionalTrustedCA` names this ConfigMap; its
        // keys are hosts with `..` for the port's colon.
        let mut s = String::from(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: airlock-registry-ca\n  namespace: openshift-config\ndata:\n",
        );
        let mut hosts: Vec<&str> = mirrors.iter().map(|m| m.host.as_str()).collect();
        hosts.sort();
        hosts.dedup();
        for h in hosts {
            let _ = writeln!(s, "  {}: |", yaml_str(&h.replace(':', "..")));
            for line in String::from_utf8_lossy(pem).lines() {
                let _ = writeln!(s, "    {line}");
            }
        }
        out.push(OutFile {
            path: PathBuf::from("registry-ca-configmap.yaml"),
            contents: s.into_bytes(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::AdmittedImage;

    fn admitted(pairs: &[(&str, &str)]) -> Admitted {
        Admitted {
            images: pairs
                .iter()
                .enumerate()
                .map(|(i, (s, t))| AdmittedImage {
                    source: s.parse().expect("source"),
                    target: t.parse().expect("target"),
                    digest: crate::oci::Digest::of(s.as_bytes()),
                    origin: format!("ledger entry {i}"),
                })
                .collect(),
        }
    }

    #[test]
    fn maps_source_hosts_to_internal_prefixes() {
        let m = mirrors(&admitted(&[
            ("nginx:1.27", "reg.internal:5000/mirror/library/nginx:1.27"),
            (
                "registry.example.com/a/b:1",
                "reg.internal:5000/b-side/a/b:1",
            ),
            ("registry.example.com/c:2", "reg.internal:5000/b-side/c:2"),
        ]))
        .expect("mirrors");
        let got: Vec<(String, String)> =
            m.iter().map(|m| (m.source.clone(), m.location())).collect();
        assert_eq!(
            got,
            vec![
                (
                    "docker.io".to_string(),
                    "reg.internal:5000/mirror".to_string()
                ),
                (
                    "registry.example.com".to_string(),
                    "reg.internal:5000/b-side".to_string()
                ),
            ]
        );
    }

    #[test]
    fn refuses_flattened_names_and_one_host_sent_to_two_places() {
        let flat = mirrors(&admitted(&[(
            "registry.example.com/a/b:1",
            "reg.internal/m/a-b:1",
        )]));
        assert!(
            matches!(&flat, Err(MirrorError::NotAPrefix { origin, .. }) if origin == "ledger entry 0"),
            "{flat:?}"
        );
        let split = mirrors(&admitted(&[
            ("registry.example.com/a:1", "reg.internal/one/a:1"),
            ("registry.example.com/b:1", "reg.internal/two/b:1"),
        ]));
        assert!(
            matches!(&split, Err(MirrorError::Inconsistent { first, second, .. })
                if first == "reg.internal/one" && second == "reg.internal/two"),
            "{split:?}"
        );
    }

    #[test]
    fn renames_the_recorded_registry_for_the_nodes() {
        let a = admitted(&[("registry.example.com/a:1", "127.0.0.1:5000/mirror/a:1")])
            .with_registry("127.0.0.1:5000/mirror", "registry.internal/site");
        assert_eq!(a.images[0].target.name(), "registry.internal/site/a");
        let m = mirrors(&a).expect("mirrors");
        assert_eq!(m[0].location(), "registry.internal/site");
    }
}
