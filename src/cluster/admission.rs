//! Admission policies from the site's own trust policy, for the **internal** names of what
//! crossed: Kyverno `ClusterPolicy` (`verifyImages`) and sigstore policy-controller
//! `ClusterImagePolicy` (+ a `TrustRoot` from the policy's `trusted_root.json`), each with a
//! rule that refuses any image not under the internal registry.
//!
//! Each rule's source pattern (`registry.example.com/org/*`) is mapped through the node mirror
//! mapping (`mirror_config::mirrors`) to the internal name (`registry.internal/mirror/org/*`).
//! No output names a source registry: a policy whose globs name the upstream would let the
//! mirrored images through unchecked.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

use super::mirror_config::{Mirror, OutFile};
use crate::trust::policy::{Matcher, TrustPolicy};

/// Which admission controller to write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionFormat {
    /// Kyverno `ClusterPolicy` (kyverno.io/v1).
    Kyverno,
    /// sigstore policy-controller `ClusterImagePolicy` (policy.sigstore.dev/v1beta1).
    PolicyController,
}

/// Why no policy could be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// A key or the trusted root of the policy could not be read.
    #[error("trust policy `{path}`: {detail}")]
    Material {
        /// The policy file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// policy-controller passes an image when any one authority verifies: N of M cannot be said.
    #[error(
        "trust rule `{pattern}` requires {require} signers; a ClusterImagePolicy accepts any one \
         authority, so it cannot require more (use --format kyverno)"
    )]
    Threshold {
        /// The rule's pattern.
        pattern: String,
        /// Its `require`.
        require: usize,
    },
    /// No rule of the policy covers any source registry that was imported.
    #[error("no rule of the trust policy matches a source registry the ledger admitted images from ({sources})")]
    NothingCovered {
        /// The admitted source registries.
        sources: String,
    },
}

/// One rule in internal names: the globs and who must have signed.
#[derive(Debug, Clone)]
struct InternalRule {
    pattern: String,
    globs: Vec<String>,
    keys: Vec<String>,
    keyless: Vec<(Matcher, Matcher)>,
    require: usize,
    require_tlog: bool,
}

/// The Sigstore material of `trusted_root.json`, as PEM.
#[derive(Debug, Clone, Default)]
struct RootPems {
    fulcio: Vec<(String, String)>,
    rekor: Vec<(String, String)>,
    ctlog: Vec<(String, String)>,
}

/// Writes the admission policy files for `policy` (read from `policy_path`, keys relative to
/// it) over the internal names in `mirrors`.
pub fn render(
    format: AdmissionFormat,
    policy: &TrustPolicy,
    policy_path: &Path,
    mirrors: &[Mirror],
) -> Result<Vec<OutFile>, AdmissionError> {
    let base = policy_path.parent().unwrap_or(Path::new("."));
    let material = |detail: String| AdmissionError::Material {
        path: policy_path.to_path_buf(),
        detail,
    };
    let rules = internal_rules(policy, base, mirrors).map_err(material)?;
    if rules.is_empty() {
        return Err(AdmissionError::NothingCovered {
            sources: mirrors
                .iter()
                .map(|m| m.source.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let roots = match &policy.trusted_root {
        Some(p) => root_pems(&base.join(p)).map_err(material)?,
        None => RootPems::default(),
    };
    let internal: Vec<String> = {
        let mut v: Vec<String> = mirrors.iter().map(Mirror::location).collect();
        v.sort();
        v.dedup();
        v
    };
    match format {
        AdmissionFormat::Kyverno => Ok(vec![OutFile {
            path: PathBuf::from("kyverno-clusterpolicy.yaml"),
            contents: yaml(&kyverno(&rules, &roots, &internal)),
        }]),
        AdmissionFormat::PolicyController => policy_controller(&rules, &roots, &internal),
    }
}

/// Maps each rule's pattern through the mirrors; rules for registries nothing came from are
/// left out (the deny rule refuses those registries anyway).
fn internal_rules(
    policy: &TrustPolicy,
    base: &Path,
    mirrors: &[Mirror],
) -> Result<Vec<InternalRule>, String> {
    let mut out = Vec::new();
    for rule in &policy.rules {
        let (host, rest) = rule
            .pattern
            .split_once('/')
            .unwrap_or((rule.pattern.as_str(), "**"));
        let globs: Vec<String> = mirrors
            .iter()
            .filter(|m| segment_matches(host, &m.source))
            .map(|m| format!("{}/{}", m.location(), rest))
            .collect();
        if globs.is_empty() {
            continue;
        }
        let keys = rule
            .keys
            .iter()
            .map(|k| {
                k.load(base)
                    .map(|k| k.to_pem())
                    .map_err(|e| format!("rule `{}`: {e}", rule.pattern))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(InternalRule {
            pattern: rule.pattern.clone(),
            globs,
            keys,
            keyless: rule
                .keyless
                .iter()
                .map(|k| (k.identity.clone(), k.issuer.clone()))
                .collect(),
            require: rule.require,
            require_tlog: rule.require_tlog,
        });
    }
    Ok(out)
}

/// Whether a host pattern segment (`*` allowed) matches a host.
fn segment_matches(pattern: &str, host: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == host,
        Some((pre, post)) => {
            host.len() >= pre.len() + post.len() && host.starts_with(pre) && host.ends_with(post)
        }
    }
}

fn root_pems(path: &Path) -> Result<RootPems, String> {
    let text = crate::io::read_text_capped(
        path,
        crate::trust::trusted_root::MAX_TRUSTED_ROOT_BYTES as u64,
        "trusted root",
    )
    .map_err(|e| e.to_string())?;
    // The same checks every verification applies: a root that would not verify is refused.
    crate::trust::trusted_root::TrustedRoot::from_json(&text).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let pem = |label: &str, b64: &str| -> String {
        let mut s = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            s.push_str(&String::from_utf8_lossy(chunk));
            s.push('\n');
        }
        let _ = writeln!(s, "-----END {label}-----");
        s
    };
    let mut out = RootPems::default();
    for ca in v["certificateAuthorities"].as_array().into_iter().flatten() {
        let chain: String = ca["certChain"]["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["rawBytes"].as_str())
            .map(|b| pem("CERTIFICATE", b))
            .collect();
        out.fulcio
            .push((ca["uri"].as_str().unwrap_or_default().to_string(), chain));
    }
    for (list, dest) in [("tlogs", &mut out.rekor), ("ctlogs", &mut out.ctlog)] {
        for log in v[list].as_array().into_iter().flatten() {
            if let Some(raw) = log["publicKey"]["rawBytes"].as_str() {
                dest.push((
                    log["baseUrl"].as_str().unwrap_or_default().to_string(),
                    pem("PUBLIC KEY", raw),
                ));
            }
        }
    }
    Ok(out)
}

fn matcher(m: &Matcher, exact: &str, regex: &str) -> (String, Value) {
    match m {
        Matcher::Exact(s) => (exact.to_string(), json!(s)),
        Matcher::Regex(r) => (regex.to_string(), json!(format!("^(?:{})$", r.as_str()))),
    }
}

/// Pods (and what the pod controllers create) are what Kyverno checks.
fn match_pods() -> Value {
    json!({"any": [{"resources": {"kinds": ["Pod"]}}]})
}

fn kyverno(rules: &[InternalRule], roots: &RootPems, internal: &[String]) -> Value {
    let rekor = |tlog: bool| -> Value {
        match (tlog, roots.rekor.first()) {
            (true, Some((url, key))) => json!({"url": url, "pubkey": key}),
            _ => json!({"ignoreTlog": true}),
        }
    };
    let ctlog = || -> Value {
        match roots.ctlog.first() {
            Some((_, key)) => json!({"pubkey": key}),
            None => json!({"ignoreSCT": true}),
        }
    };
    let fulcio: String = roots.fulcio.iter().map(|(_, c)| c.as_str()).collect();
    let mut out_rules: Vec<Value> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut entries: Vec<Value> = r
                .keys
                .iter()
                .map(|k| {
                    json!({"keys": {"publicKeys": k, "rekor": rekor(r.require_tlog), "ctlog": {"ignoreSCT": true}}})
                })
                .collect();
            for (identity, issuer) in &r.keyless {
                let mut k = serde_json::Map::new();
                let (ik, iv) = matcher(identity, "subject", "subjectRegExp");
                let (sk, sv) = matcher(issuer, "issuer", "issuerRegExp");
                k.insert(ik, iv);
                k.insert(sk, sv);
                k.insert("roots".into(), json!(fulcio));
                k.insert("rekor".into(), rekor(true));
                k.insert("ctlog".into(), ctlog());
                entries.push(json!({ "keyless": k }));
            }
            json!({
                "name": format!("verify-{}", i + 1),
                "match": match_pods(),
                "verifyImages": [{
                    "imageReferences": r.globs.iter().flat_map(|g| kyverno_globs(g)).collect::<Vec<_>>(),
                    "failureAction": "Enforce",
                    "mutateDigest": true,
                    "verifyDigest": true,
                    "required": true,
                    "attestors": [{"count": r.require, "entries": entries}],
                }],
            })
        })
        .collect();
    let allowed = internal
        .iter()
        .map(|h| format!("{h}/*"))
        .collect::<Vec<_>>()
        .join(" | ");
    let only = json!([{"image": allowed}]);
    out_rules.push(json!({
        "name": "only-the-internal-registry",
        "match": match_pods(),
        "validate": {
            "failureAction": "Enforce",
            "message": format!("images must come from the internal registry ({})", internal.join(", ")),
            "pattern": {"spec": {
                "=(initContainers)": only,
                "=(ephemeralContainers)": only,
                "containers": only,
            }},
        },
    }));
    let sources: Vec<&str> = rules.iter().map(|r| r.pattern.as_str()).collect();
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": "airlock-verify-images",
            "annotations": {
                "airlock.dev/trust-rules": sources.len().to_string(),
            },
        },
        "spec": {
            "background": false,
            "webhookTimeoutSeconds": 30,
            "rules": out_rules,
        },
    })
}

/// Kyverno matches `imageReferences` against the whole reference, tag or digest included,
/// and its `*` matches across `/`: `*` and `**` of airlock patterns both become `*` (a pattern
/// can only match more images, never fewer), and an exact repository gets `:*` and `@*`.
fn kyverno_globs(g: &str) -> Vec<String> {
    let g = g.replace("**", "*");
    if g.ends_with('*') {
        vec![g]
    } else {
        vec![format!("{g}:*"), format!("{g}@*")]
    }
}

fn policy_controller(
    rules: &[InternalRule],
    roots: &RootPems,
    internal: &[String],
) -> Result<Vec<OutFile>, AdmissionError> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut files = Vec::new();
    let has_root = !roots.fulcio.is_empty() || !roots.rekor.is_empty();
    if has_root {
        let trust_root = json!({
            "apiVersion": "policy.sigstore.dev/v1alpha1",
            "kind": "TrustRoot",
            "metadata": {"name": "airlock"},
            "spec": {"sigstoreKeys": {
                "certificateAuthorities": roots.fulcio.iter().map(|(uri, chain)| json!({
                    "uri": uri, "certChain": b64(chain),
                })).collect::<Vec<_>>(),
                "tLogs": roots.rekor.iter().map(|(url, key)| json!({
                    "baseURL": url, "hashAlgorithm": "sha-256", "publicKey": b64(key),
                })).collect::<Vec<_>>(),
                "ctLogs": roots.ctlog.iter().map(|(url, key)| json!({
                    "baseURL": url, "hashAlgorithm": "sha-256", "publicKey": b64(key),
                })).collect::<Vec<_>>(),
            }},
        });
        files.push(OutFile {
            path: PathBuf::from("trustroot.yaml"),
            contents: yaml(&trust_root),
        });
    }
    let mut docs = String::new();
    for (i, r) in rules.iter().enumerate() {
        if r.require > 1 {
            return Err(AdmissionError::Threshold {
                pattern: r.pattern.clone(),
                require: r.require,
            });
        }
        let mut authorities: Vec<Value> = r
            .keys
            .iter()
            .enumerate()
            .map(|(k, pem)| {
                let mut a = json!({"name": format!("key-{}", k + 1), "key": {"data": pem, "hashAlgorithm": "sha256"}});
                if r.require_tlog && has_root {
                    a["ctlog"] = json!({"url": roots.rekor.first().map(|x| x.0.clone()).unwrap_or_default(), "trustRootRef": "airlock"});
                }
                a
            })
            .collect();
        for (k, (identity, issuer)) in r.keyless.iter().enumerate() {
            let mut id = serde_json::Map::new();
            let (ik, iv) = matcher(identity, "subject", "subjectRegExp");
            let (sk, sv) = matcher(issuer, "issuer", "issuerRegExp");
            id.insert(ik, iv);
            id.insert(sk, sv);
            authorities.push(json!({
                "name": format!("keyless-{}", k + 1),
                "keyless": {"trustRootRef": "airlock", "identities": [id]},
                "ctlog": {"url": roots.rekor.first().map(|x| x.0.clone()).unwrap_or_default(), "trustRootRef": "airlock"},
            }));
        }
        let cip = json!({
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": format!("airlock-verify-{}", i + 1)},
            "spec": {
                "images": r.globs.iter().map(|g| json!({"glob": g})).collect::<Vec<_>>(),
                "authorities": authorities,
                "mode": "enforce",
            },
        });
        docs.push_str("---\n");
        docs.push_str(&String::from_utf8_lossy(&yaml(&cip)));
    }
    files.push(OutFile {
        path: PathBuf::from("clusterimagepolicies.yaml"),
        contents: docs.into_bytes(),
    });
    // An image no ClusterImagePolicy matches is refused: images outside the internal
    // registry, and internal ones no trust rule covers (as import refuses them).
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-policy-controller", "namespace": "cosign-system"},
        "data": {"no-match-policy": "deny"},
    });
    let mut deny = format!(
        "# Internal registry: {}\n# policy-controller refuses any image no ClusterImagePolicy matches.\n",
        internal.join(", ")
    );
    deny.push_str(&String::from_utf8_lossy(&yaml(&cm)));
    files.push(OutFile {
        path: PathBuf::from("config-policy-controller.yaml"),
        contents: deny.into_bytes(),
    });
    Ok(files)
}

fn yaml(v: &Value) -> Vec<u8> {
    // serde_json values always serialize to YAML.
    serde_yaml::to_string(v).unwrap_or_default().into_bytes()
}
