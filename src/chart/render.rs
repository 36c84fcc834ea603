//! Helm's chart semantics around the template engine: loading a chart and its subcharts,
//! enabling dependencies (`condition`, `tags`, `alias`), `import-values`, coalescing values,
//! the `kubeVersion` check, and rendering every template the way `helm template` does.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::archive::{self, ArchiveError, Budget, Files};
use super::template::semver::{self, Version};
use super::template::{yaml, Exec, Map, Object, TemplateError, Templates, Value};
use super::values;

/// Helm v4.2.3's default Kubernetes version for `helm template`.
pub const DEFAULT_KUBE_VERSION: &str = "v1.36.0";

/// The API group versions Helm v4.2.3 advertises by default (client-go's scheme plus
/// apiextensions), as the real engine prints `.Capabilities.APIVersions`.
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha2",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];

/// What to render with: `helm template` flags.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// `--release` (Helm's default in the oracle: `rel`).
    pub release: String,
    /// `--namespace`.
    pub namespace: String,
    /// `--kube-version`, `v1.36.0` by default.
    pub kube_version: String,
    /// Extra `--api-versions`.
    pub api_versions: Vec<String>,
    /// `-f` files: (name for errors, contents), in order.
    pub values_files: Vec<(String, Vec<u8>)>,
    /// `--set` expressions, in order.
    pub set: Vec<String>,
    /// Typed `set:` entries from a spec (key path, YAML value), applied after `set`.
    pub set_typed: Vec<(String, serde_yaml::Value)>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            release: "release-name".into(),
            namespace: "default".into(),
            kube_version: DEFAULT_KUBE_VERSION.into(),
            api_versions: Vec::new(),
            values_files: Vec::new(),
            set: Vec::new(),
            set_typed: Vec::new(),
        }
    }
}

/// Why a chart could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Its files could not be read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// `Chart.yaml` missing or wrong.
    #[error("chart {chart}: Chart.yaml: {reason}")]
    Metadata {
        /// The chart.
        chart: String,
        /// What is wrong.
        reason: String,
    },
    /// `values.yaml` or a `-f` file is not a YAML map.
    #[error("{file}: not a YAML map of values: {reason}")]
    Values {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A bad `--set`.
    #[error(transparent)]
    Set(#[from] values::SetError),
    /// The chart does not support the Kubernetes version.
    #[error("chart {chart} requires kubeVersion {constraint}, which is incompatible with Kubernetes {kube} (set --kube-version)")]
    KubeVersion {
        /// The chart.
        chart: String,
        /// Its constraint.
        constraint: String,
        /// The version rendered for.
        kube: String,
    },
    /// A bad `--kube-version`.
    #[error("--kube-version `{0}` is not a version")]
    BadKubeVersion(String),
    /// A declared dependency is not in `charts/`.
    #[error(
        "chart {chart}: dependency {dependency} is declared in Chart.yaml but missing from charts/"
    )]
    MissingDependency {
        /// The chart.
        chart: String,
        /// The dependency.
        dependency: String,
    },
    /// A template failed.
    #[error("chart {chart}: {source}")]
    Template {
        /// The chart.
        chart: String,
        /// The failure.
        source: TemplateError,
    },
    /// A rendered manifest is not YAML (Helm refuses it too).
    #[error("chart {chart}: YAML parse error on {template}: {reason}")]
    Manifest {
        /// The chart.
        chart: String,
        /// The template.
        template: String,
        /// What is wrong.
        reason: String,
    },
}

/// A declared dependency.
#[derive(Debug, Clone, Default)]
pub struct Dependency {
    /// `name`.
    pub name: String,
    /// `version` range.
    pub version: String,
    /// `repository`.
    pub repository: String,
    /// `condition`.
    pub condition: String,
    /// `tags`.
    pub tags: Vec<String>,
    /// `alias`.
    pub alias: String,
    /// `import-values`.
    pub import_values: Vec<serde_yaml::Value>,
}

/// A loaded chart.
pub struct Chart {
    /// `Chart.yaml` as `.Chart` shows it (Go field names).
    pub meta: Map,
    /// Its name (the alias once aliased).
    pub name: String,
    /// `kubeVersion`.
    pub kube_version: String,
    /// Declared dependencies.
    pub deps: Vec<Dependency>,
    /// Chart.yaml annotations.
    pub annotations: BTreeMap<String, String>,
    /// `values.yaml`.
    pub values: Map,
    /// `templates/…` files.
    pub templates: Vec<(String, String)>,
    /// Other files (`.Files`).
    pub files: BTreeMap<String, Rc<[u8]>>,
    /// Subcharts.
    pub subcharts: Vec<Chart>,
}

fn yaml_scalar_string(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn parse_deps(v: Option<&serde_yaml::Value>) -> Vec<Dependency> {
    let Some(serde_yaml::Value::Sequence(seq)) = v else {
        return Vec::new();
    };
    seq.iter()
        .map(|d| {
            let g = |k: &str| d.get(k).map(yaml_scalar_string).unwrap_or_default();
            Dependency {
                name: g("name"),
                version: g("version"),
                repository: g("repository"),
                condition: g("condition"),
                alias: g("alias"),
                tags: match d.get("tags") {
                    Some(serde_yaml::Value::Sequence(t)) => {
                        t.iter().map(yaml_scalar_string).collect()
                    }
                    _ => Vec::new(),
                },
                import_values: match d.get("import-values") {
                    Some(serde_yaml::Value::Sequence(t)) => t.clone(),
                    _ => Vec::new(),
                },
            }
        })
        .collect()
}

/// Loads a chart (and its subcharts) from its files.
pub fn load(
    files: Files,
    label: &str,
    budget: &mut Budget,
    depth: usize,
) -> Result<Chart, RenderError> {
    let meta_err = |reason: String| RenderError::Metadata {
        chart: label.to_string(),
        reason,
    };
    let mut chart_yaml = None;
    let mut values_yaml = None;
    let mut requirements = None;
    let mut templates = Vec::new();
    let mut other = BTreeMap::new();
    let mut sub_files: BTreeMap<String, Files> = BTreeMap::new();
    for (path, data) in files {
        match path.as_str() {
            "Chart.yaml" => chart_yaml = Some(data),
            "values.yaml" => values_yaml = Some(data),
            "requirements.yaml" => requirements = Some(data),
            "values.schema.json" | "Chart.lock" | "requirements.lock" => {}
            p if p.starts_with("templates/") => {
                templates.push((path.clone(), String::from_utf8_lossy(&data).into_owned()))
            }
            p if p.starts_with("charts/") && !p.ends_with(".prov") => {
                let rest = &p["charts/".len()..];
                let (cname, inner) = match rest.split_once('/') {
                    Some((c, i)) => (c.to_string(), i.to_string()),
                    None => (rest.to_string(), String::new()),
                };
                sub_files.entry(cname).or_default().push((inner, data));
            }
            _ => {
                other.insert(path.clone(), Rc::from(data.into_boxed_slice()));
            }
        }
    }
    let chart_yaml = chart_yaml.ok_or_else(|| meta_err("Chart.yaml file is missing".into()))?;
    let cy: serde_yaml::Value =
        serde_yaml::from_slice(&chart_yaml).map_err(|e| meta_err(yaml::yaml_error_line(&e)))?;
    if !cy.is_mapping() {
        return Err(meta_err("not a YAML map".into()));
    }
    let name = cy.get("name").map(yaml_scalar_string).unwrap_or_default();
    if name.is_empty() {
        return Err(meta_err("name is required".into()));
    }
    let label = if label.is_empty() {
        name.clone()
    } else {
        label.to_string()
    };
    let mut deps = parse_deps(cy.get("dependencies"));
    if let Some(req) = requirements {
        if let Ok(r) = serde_yaml::from_slice::<serde_yaml::Value>(&req) {
            deps.extend(parse_deps(r.get("dependencies")));
        }
    }
    let annotations: BTreeMap<String, String> = match cy.get("annotations") {
        Some(serde_yaml::Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| (yaml_scalar_string(k), yaml_scalar_string(v)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let meta = chart_meta(&cy);
    let values = match values_yaml {
        Some(v) => parse_values_map(&v, &format!("{label}/values.yaml"))?,
        None => Map::new(),
    };
    let mut subcharts = Vec::new();
    for (cname, files) in sub_files {
        if cname.starts_with(['_', '.']) {
            continue;
        }
        if depth >= archive::MAX_NESTING {
            return Err(ArchiveError::TooDeep {
                archive: label.clone(),
                limit: archive::MAX_NESTING,
            }
            .into());
        }
        let sub_label = format!("{label}/charts/{cname}");
        let files = if cname.ends_with(".tgz") {
            let Some((_, data)) = files.into_iter().find(|(inner, _)| inner.is_empty()) else {
                continue;
            };
            archive::read_tgz(&data, &sub_label, budget)?
        } else {
            let f: Files = files
                .into_iter()
                .filter(|(inner, _)| !inner.is_empty())
                .collect();
            if f.is_empty() {
                continue;
            }
            f
        };
        subcharts.push(load(files, &sub_label, budget, depth + 1)?);
    }
    Ok(Chart {
        meta,
        kube_version: cy
            .get("kubeVersion")
            .map(yaml_scalar_string)
            .unwrap_or_default(),
        name,
        deps,
        annotations,
        values,
        templates,
        files: other,
        subcharts,
    })
}

/// Parses a values file: it must be a YAML map (an empty file is an empty map).
pub fn parse_values_map(data: &[u8], file: &str) -> Result<Map, RenderError> {
    let text = std::str::from_utf8(data).map_err(|_| RenderError::Values {
        file: file.to_string(),
        reason: "not UTF-8 text".into(),
    })?;
    match yaml::from_yaml(text) {
        Ok(Value::Map(m)) => Ok(m.borrow().clone()),
        Ok(Value::Nil) => Ok(Map::new()),
        Ok(other) => Err(RenderError::Values {
            file: file.to_string(),
            reason: format!("the document is a {}", other.kind_name()),
        }),
        Err(e) => Err(RenderError::Values {
            file: file.to_string(),
            reason: yaml::yaml_error_line(&e),
        }),
    }
}

fn chart_meta(cy: &serde_yaml::Value) -> Map {
    let mut m = Map::new();
    let fields = [
        ("name", "Name"),
        ("home", "Home"),
        ("version", "Version"),
        ("description", "Description"),
        ("icon", "Icon"),
        ("apiVersion", "APIVersion"),
        ("condition", "Condition"),
        ("tags", "Tags"),
        ("appVersion", "AppVersion"),
        ("kubeVersion", "KubeVersion"),
        ("type", "Type"),
    ];
    for (k, go) in fields {
        m.insert(
            go.into(),
            Value::str(cy.get(k).map(yaml_scalar_string).unwrap_or_default()),
        );
    }
    m.insert(
        "Deprecated".into(),
        Value::Bool(
            cy.get("deprecated")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        ),
    );
    for (k, go) in [
        ("sources", "Sources"),
        ("keywords", "Keywords"),
        ("maintainers", "Maintainers"),
        ("dependencies", "Dependencies"),
        ("annotations", "Annotations"),
    ] {
        m.insert(
            go.into(),
            cy.get(k).map(yaml::from_serde_yaml).unwrap_or(Value::Nil),
        );
    }
    m
}

/// `processDependencyEnabled`: applies aliases, drops disabled subcharts, recursively.
fn process_enabled(c: &mut Chart, v: &Map, path: &str) -> Result<(), RenderError> {
    let mut pool: Vec<Chart> = std::mem::take(&mut c.subcharts);
    let mut kept: Vec<(Chart, Option<usize>)> = Vec::new();
    // Subcharts not declared stay, always enabled.
    let declared: Vec<String> = c.deps.iter().map(|d| d.name.clone()).collect();
    let mut i = 0;
    while i < pool.len() {
        if !declared.contains(&pool[i].name) {
            kept.push((pool.remove(i), None));
        } else {
            i += 1;
        }
    }
    for (di, d) in c.deps.iter().enumerate() {
        let pos = pool.iter().position(|ch| {
            ch.name == d.name
                && (d.version.is_empty()
                    || Version::parse(ch.meta.get("Version").and_then(Value::as_str).unwrap_or(""))
                        .map(|v| semver::matches(&d.version, &v).unwrap_or(true))
                        .unwrap_or(true))
        });
        let ch = match pos {
            // Several dependencies may alias one chart: each gets its own copy.
            Some(p) => clone_chart(&pool[p]),
            None => {
                return Err(RenderError::MissingDependency {
                    chart: c.name.clone(),
                    dependency: d.name.clone(),
                })
            }
        };
        let mut ch = ch;
        if !d.alias.is_empty() {
            ch.name = d.alias.clone();
            ch.meta.insert("Name".into(), Value::str(d.alias.as_str()));
        }
        kept.push((ch, Some(di)));
    }
    // Evaluate tags and conditions against the coalesced values.
    let mut cvals = deep_map(v);
    c.subcharts = kept.iter().map(|(ch, _)| clone_chart(ch)).collect();
    coalesce_chart(c, &mut cvals, false);
    let tags = match cvals.get("tags") {
        Some(Value::Map(m)) => m.borrow().clone(),
        _ => Map::new(),
    };
    let mut out = Vec::new();
    for (ch, di) in kept {
        let mut enabled = true;
        if let Some(di) = di {
            let d = &c.deps[di];
            let (mut t, mut f) = (false, false);
            for tag in &d.tags {
                if let Some(Value::Bool(b)) = tags.get(tag) {
                    if *b {
                        t = true
                    } else {
                        f = true
                    }
                }
            }
            if !t && f {
                enabled = false;
            }
            for cond in d
                .condition
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if let Some(Value::Bool(b)) = path_value(&cvals, &format!("{path}{cond}")) {
                    enabled = b;
                    break;
                }
            }
        }
        if enabled {
            out.push(ch);
        }
    }
    for ch in &mut out {
        let sub = format!("{path}{}.", ch.name);
        process_enabled(ch, &cvals, &sub)?;
    }
    c.subcharts = out;
    Ok(())
}

fn clone_chart(c: &Chart) -> Chart {
    Chart {
        meta: deep_map(&c.meta),
        name: c.name.clone(),
        kube_version: c.kube_version.clone(),
        deps: c.deps.clone(),
        annotations: c.annotations.clone(),
        values: deep_map(&c.values),
        templates: c.templates.clone(),
        files: c.files.clone(),
        subcharts: c.subcharts.iter().map(clone_chart).collect(),
    }
}

fn deep_map(m: &Map) -> Map {
    m.iter().map(|(k, v)| (k.clone(), v.deep_copy())).collect()
}

fn path_value(m: &Map, path: &str) -> Option<Value> {
    let mut cur = Value::map(m.clone());
    for p in path.split('.') {
        cur = match &cur {
            Value::Map(mm) => mm.borrow().get(p).cloned()?,
            _ => return None,
        };
    }
    Some(cur)
}

/// `coalesce(chart, dest)`: the chart's defaults under `dest`, then each subchart's.
fn coalesce_chart(c: &Chart, dest: &mut Map, merge: bool) {
    values::coalesce_defaults(&c.values, dest, merge);
    for sub in &c.subcharts {
        let entry = dest
            .entry(sub.name.clone())
            .or_insert_with(|| Value::map(Map::new()));
        if !matches!(entry, Value::Map(_)) {
            continue;
        }
        let Value::Map(sm) = entry.clone() else {
            continue;
        };
        let parent_snapshot = dest.clone();
        let mut subvals = sm.borrow().clone();
        values::coalesce_globals(&mut subvals, &parent_snapshot);
        coalesce_chart(sub, &mut subvals, merge);
        *sm.borrow_mut() = subvals;
    }
}

/// `processDependencyImportValues`, children first.
fn process_imports(c: &mut Chart) {
    for s in &mut c.subcharts {
        process_imports(s);
    }
    let has_imports = c.deps.iter().any(|d| !d.import_values.is_empty());
    if !has_imports {
        return;
    }
    let mut cvals = Map::new();
    coalesce_chart(c, &mut cvals, true);
    let mut b = Map::new();
    for d in &c.deps {
        let dname = if d.alias.is_empty() {
            &d.name
        } else {
            &d.alias
        };
        for iv in &d.import_values {
            let (child, parent) = match iv {
                serde_yaml::Value::String(s) => (format!("exports.{s}"), String::new()),
                serde_yaml::Value::Mapping(_) => (
                    iv.get("child").map(yaml_scalar_string).unwrap_or_default(),
                    iv.get("parent").map(yaml_scalar_string).unwrap_or_default(),
                ),
                _ => continue,
            };
            let Some(Value::Map(t)) = path_value(&cvals, &format!("{dname}.{child}")) else {
                continue;
            };
            let mut piece = t.borrow().clone();
            let parent = parent.trim_matches('.');
            if !parent.is_empty() {
                for seg in parent.split('.').rev() {
                    let mut m = Map::new();
                    m.insert(seg.to_string(), Value::map(piece));
                    piece = m;
                }
            }
            values::merge_maps(&mut b, &piece);
        }
    }
    // The parent's own values win over what it imports.
    let mut merged = b;
    values::merge_maps(&mut merged, &cvals);
    c.values = merged;
}

/// A rendered chart: template path → manifest text, plus what the walk needs to know.
pub struct Rendered {
    /// Template path → rendered text (NOTES.txt and partials left out).
    pub manifests: BTreeMap<String, String>,
    /// Every chart's name and its Chart.yaml annotations (root first).
    pub annotations: Vec<(String, BTreeMap<String, String>)>,
    /// The coalesced values of the root chart.
    pub values: Value,
    /// The root chart's name.
    pub chart: String,
}

/// Renders a chart the way `helm template` does.
pub fn render(mut root: Chart, opts: &RenderOptions) -> Result<Rendered, RenderError> {
    let kube = Version::parse(&opts.kube_version)
        .ok_or_else(|| RenderError::BadKubeVersion(opts.kube_version.clone()))?;
    if !root.kube_version.is_empty() && !semver::matches(&root.kube_version, &kube).unwrap_or(false)
    {
        return Err(RenderError::KubeVersion {
            chart: root.name.clone(),
            constraint: root.kube_version.clone(),
            kube: opts.kube_version.clone(),
        });
    }
    // User values: -f files in order, then --set.
    let mut user = Map::new();
    for (name, data) in &opts.values_files {
        let m = parse_values_map(data, name)?;
        values::merge_maps(&mut user, &m);
    }
    for s in &opts.set {
        values::apply_set(&mut user, s)?;
    }
    for (k, v) in &opts.set_typed {
        values::set_value(&mut user, k, yaml::from_serde_yaml(v))?;
    }
    process_enabled(&mut root, &user, "")?;
    process_imports(&mut root);
    let mut vals = deep_map(&user);
    coalesce_chart(&root, &mut vals, false);
    let vals = Value::map(vals);

    let kv = format!("v{}.{}.{}", kube.major, kube.minor, kube.patch);
    let mut caps = Map::new();
    caps.insert(
        "KubeVersion".into(),
        Value::Obj(Rc::new(Object::KubeVersion {
            version: kv,
            major: kube.major.to_string(),
            minor: kube.minor.to_string(),
        })),
    );
    let mut apis: Vec<String> = DEFAULT_API_VERSIONS.iter().map(|s| s.to_string()).collect();
    apis.extend(opts.api_versions.iter().cloned());
    caps.insert(
        "APIVersions".into(),
        Value::Obj(Rc::new(Object::ApiVersions(apis))),
    );
    let mut hv = Map::new();
    hv.insert("Version".into(), Value::str("v4.2.3"));
    caps.insert("HelmVersion".into(), Value::map(hv));
    let caps = Value::map(caps);
    let mut rel = Map::new();
    rel.insert("Name".into(), Value::str(opts.release.as_str()));
    rel.insert("Namespace".into(), Value::str(opts.namespace.as_str()));
    rel.insert("IsInstall".into(), Value::Bool(true));
    rel.insert("IsUpgrade".into(), Value::Bool(false));
    rel.insert("Revision".into(), Value::Int(1));
    rel.insert("Service".into(), Value::str("Helm"));
    let rel = Value::map(rel);

    // Every chart's templates, with the top-level object its templates see.
    struct Tpl {
        path: String,
        src: String,
        top: Rc<Map>,
    }
    let mut tpls: Vec<Tpl> = Vec::new();
    let mut annotations = Vec::new();
    fn walk(
        c: &Chart,
        full: &str,
        vals: Value,
        is_root: bool,
        (rel, caps): (&Value, &Value),
        tpls: &mut Vec<Tpl>,
        ann: &mut Vec<(String, BTreeMap<String, String>)>,
    ) -> Value {
        // Subcharts first: `.Subcharts` holds their top-level objects.
        let mut subs = Map::new();
        for s in &c.subcharts {
            let sv = match &vals {
                Value::Map(m) => match m.borrow().get(&s.name) {
                    Some(v @ Value::Map(_)) => v.clone(),
                    _ => Value::map(Map::new()),
                },
                _ => Value::map(Map::new()),
            };
            let sub_top = walk(
                s,
                &format!("{full}/charts/{}", s.name),
                sv,
                false,
                (rel, caps),
                tpls,
                ann,
            );
            subs.insert(s.name.clone(), sub_top);
        }
        let mut meta = c.meta.clone();
        meta.insert("IsRoot".into(), Value::Bool(is_root));
        let mut top = Map::new();
        top.insert("Values".into(), vals.clone());
        top.insert("Chart".into(), Value::map(meta));
        top.insert("Release".into(), rel.clone());
        top.insert("Capabilities".into(), caps.clone());
        top.insert(
            "Files".into(),
            Value::Obj(Rc::new(Object::Files(c.files.clone()))),
        );
        top.insert("Subcharts".into(), Value::map(subs));
        let top = Rc::new(top);
        ann.push((full.to_string(), c.annotations.clone()));
        for (p, src) in &c.templates {
            tpls.push(Tpl {
                path: format!("{full}/{p}"),
                src: src.clone(),
                top: top.clone(),
            });
        }
        Value::map((*top).clone())
    }
    let _ = walk(
        &root,
        &root.name,
        vals.clone(),
        true,
        (&rel, &caps),
        &mut tpls,
        &mut annotations,
    );
    // Helm's order: deeper paths first, then reverse lexical; later definitions win.
    tpls.sort_by(|a, b| {
        let (ca, cb) = (a.path.matches('/').count(), b.path.matches('/').count());
        cb.cmp(&ca).then_with(|| b.path.cmp(&a.path))
    });
    let chart_err = |source| RenderError::Template {
        chart: root.name.clone(),
        source,
    };
    let mut set = Templates::default();
    for t in &tpls {
        set.add(&t.path, &t.src).map_err(chart_err)?;
    }
    let mut manifests = BTreeMap::new();
    let mut ex = Exec::new(&set, super::template::exec::DEFAULT_STEP_BUDGET);
    for t in &tpls {
        let base = t.path.rsplit('/').next().unwrap_or("");
        if base.starts_with('_') {
            continue;
        }
        let mut top = (*t.top).clone();
        let mut tm = Map::new();
        tm.insert("Name".into(), Value::str(t.path.as_str()));
        let bp = t
            .path
            .rsplit_once("/templates/")
            .map(|(a, _)| format!("{a}/templates"))
            .unwrap_or_default();
        tm.insert("BasePath".into(), Value::str(bp));
        top.insert("Template".into(), Value::map(tm));
        ex.template_name = t.path.clone();
        let out = ex
            .render_named(&t.path, &Value::map(top))
            .map_err(chart_err)?;
        if base == "NOTES.txt" {
            continue;
        }
        manifests.insert(t.path.clone(), out.replace("<no value>", ""));
    }
    Ok(Rendered {
        manifests,
        annotations,
        values: vals,
        chart: root.name.clone(),
    })
}
