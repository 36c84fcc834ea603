//! The cluster side: node mirror configuration and manifests pinned by digest, from a ledger
//! filled by a real import. The runtimes (containerd 1.6, podman 4.3) pull through the
//! generated configuration inside a network namespace with only loopback, where the source
//! registry's name cannot resolve: a pull that succeeds came from the mirror.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use airlock::cluster::{mirror_config, Admitted, Mirror, MirrorFormat, MirrorOptions};
use airlock::registry::Repo;
use common::fixtures::{self, Image};
use common::{airlock, airlock_env, fails_with, ok, rt, which, TestRegistry};

/// The source registry's name as the cluster's manifests write it.
const SOURCE: &str = "registry.example.com";

/// A site after one import: the internal registry, a ledger that admitted
/// `registry.example.com/app:1.0`, and the import's JSON report.
struct Site {
    work: tempfile::TempDir,
    _src: TestRegistry,
    dst: TestRegistry,
    image: Image,
    to: String,
}

impl Site {
    fn dir(&self) -> &Path {
        self.work.path()
    }
}

/// Collects `registry.example.com/app:1.0` from a real registry reached as a plain-HTTP
/// forward proxy (the registry answers absolute-form requests by path), imports it into a
/// second registry under `mirror` with a ledger, and keeps the report.
fn site() -> Site {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let image = fixtures::small_image(7, 20_000);
    rt().block_on(fixtures::push_image(
        &src.client(),
        &Repo::parse(src.host.clone(), "app").expect("repository"),
        &image,
        Some("1.0"),
    ));
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    std::fs::write(
        dir.join("site.yaml"),
        format!("name: site\nimages:\n  - ref: {SOURCE}/app:1.0\n"),
    )
    .expect("spec");
    let proxy = format!("http://{}", src.host);
    let via_proxy = [
        ("HTTP_PROXY", proxy.as_str()),
        ("http_proxy", proxy.as_str()),
    ];
    for args in [
        vec!["lock", "site.yaml", "--insecure-registry", SOURCE],
        vec![
            "collect",
            "site.lock",
            "-o",
            "site.tar.zst",
            "--insecure-registry",
            SOURCE,
        ],
    ] {
        ok(&airlock_env(dir, &args, &via_proxy));
    }
    common::init_ledger(dir, "t.example/l");
    let to = format!("{}/mirror", dst.host);
    let mut args = vec![
        "import",
        "site.tar.zst",
        "--to",
        &to,
        "--allow-unsigned",
        "--ledger",
        "ledger",
        "--ledger-password-file",
        "pw",
        "--format",
        "json",
        "--quiet",
    ];
    let flags = dst.cli_flags();
    args.extend(flags.iter().map(String::as_str));
    let report = ok(&airlock(dir, &args));
    std::fs::write(dir.join("report.json"), report).expect("report");
    Site {
        work,
        _src: src,
        dst,
        image,
        to,
    }
}

/// Runs `script` with bash inside a new network namespace whose only interface is loopback,
/// with a copy of the internal registry serving the same storage on the same address. The
/// registry (and a containerd whose pid the script puts in `CTD`) is stopped however the
/// script exits.
fn in_netns(site: &Site, script: &str) -> Output {
    let cfg = site.dst.dir.path().join("config.yml");
    let (host, port) = site.dst.host.split_once(':').expect("host:port");
    let full = format!(
        "set -u\nip link set lo up\n\
         CTD=\ndocker-registry serve {cfg} >{log} 2>&1 &\nREG=$!\n\
         trap 'kill $REG $CTD 2>/dev/null; wait 2>/dev/null' EXIT\n\
         for i in $(seq 100); do (echo >/dev/tcp/{host}/{port}) 2>/dev/null && break; sleep 0.1; done\n\
         {script}\n",
        cfg = cfg.display(),
        log = site.dir().join("netns-registry.log").display(),
    );
    Command::new("unshare")
        .args(["-n", "bash", "-c", &full])
        .current_dir(site.dir())
        .stdin(Stdio::null())
        .output()
        .expect("unshare")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn require_tools(tools: &[&str]) {
    for t in tools {
        assert!(
            which(t).is_some(),
            "`{t}` not found: scripts/test.sh installs it (Debian packages containerd, podman)"
        );
    }
}

#[test]
fn containerd_pulls_the_source_name_through_the_generated_hosts_toml_and_never_upstream() {
    require_tools(&["containerd", "ctr", "unshare", "ip"]);
    let site = site();
    let dir = site.dir();
    mirror_config_cli(
        dir,
        &[
            "--ledger",
            "ledger",
            "--runtime",
            "containerd",
            "--plain-http",
            "-o",
            "certs.d",
        ],
    );
    let hosts = std::fs::read_to_string(dir.join("certs.d").join(SOURCE).join("hosts.toml"))
        .expect("hosts.toml");
    assert!(
        hosts.contains(&format!("server = \"http://{}/v2/mirror\"", site.dst.host)),
        "{hosts}"
    );
    let ctd = dir.join("ctd");
    std::fs::create_dir_all(&ctd).expect("ctd");
    std::fs::write(
        ctd.join("config.toml"),
        format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\", \
             \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
             \"io.containerd.snapshotter.v1.aufs\"]\n[grpc]\n  address = \"{0}/c.sock\"\n",
            ctd.display()
        ),
    )
    .expect("containerd config");
    let sock = ctd.join("c.sock");
    let ctr = format!("ctr -a {} -n airlock-test", sock.display());
    let script = format!(
        "containerd --config {cfg} >{log} 2>&1 &\nCTD=$!\n\
         for i in $(seq 100); do [ -S {sock} ] && break; sleep 0.1; done\n\
         {ctr} image pull --snapshotter native --hosts-dir certs.d {SOURCE}/app:1.0 || exit 10\n\
         {ctr} image ls\n\
         echo MISS-BEGIN\n{ctr} image pull --snapshotter native --hosts-dir certs.d {SOURCE}/app:missing 2>&1 && exit 11\n\
         echo MISS-END\nexit 0",
        cfg = ctd.join("config.toml").display(),
        log = ctd.join("containerd.log").display(),
        sock = sock.display(),
    );
    let out = in_netns(&site, &script);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let digest = site.image.manifest.digest();
    assert!(
        stdout.contains(&format!("{SOURCE}/app:1.0")) && stdout.contains(digest.as_str()),
        "the pulled image is not listed with the imported digest {digest}: {all}"
    );
    let miss = stdout
        .split("MISS-BEGIN")
        .nth(1)
        .and_then(|s| s.split("MISS-END").next())
        .expect("miss output");
    assert!(
        miss.contains(&format!("host=\"{}\"", site.dst.host)) && miss.contains("not found"),
        "the miss was not asked of the mirror: {all}"
    );
    assert!(
        !miss.contains(&format!("host={SOURCE}")) && !miss.contains(&format!("https://{SOURCE}")),
        "a mirror miss was sent upstream: {miss}"
    );
}

/// Runs `airlock mirror-config ARGS…` in `dir`; it must succeed.
fn mirror_config_cli(dir: &Path, args: &[&str]) {
    let mut all = vec!["mirror-config"];
    all.extend_from_slice(args);
    ok(&airlock(dir, &all));
}

/// podman reading the drop-in `mirror-config -o containers` wrote, with its storage in `dir`.
fn podman_cmd(dir: &Path) -> String {
    format!(
        "CONTAINERS_REGISTRIES_CONF={d}/containers/registries.conf.d/50-airlock.conf podman \
         --root {d}/proot --runroot {d}/prun --storage-driver vfs --cgroup-manager cgroupfs \
         --events-backend file",
        d = dir.display()
    )
}

#[test]
fn podman_pulls_through_the_registries_conf_drop_in_and_the_upstream_is_blocked() {
    require_tools(&["podman", "unshare", "ip"]);
    let site = site();
    let dir = site.dir();
    let digest = site.image.manifest.digest();
    let podman = podman_cmd(dir);
    let mut args = vec!["--from-report", "report.json"];
    args.extend(["--runtime", "crio", "--plain-http", "-o", "containers"]);
    mirror_config_cli(dir, &args);
    let script = format!(
        "export HOME={d}\n{podman} pull -q {SOURCE}/app:1.0 || exit 10\n\
         {podman} image inspect --format '{{{{.Digest}}}}' {SOURCE}/app:1.0\n\
         echo MISS-BEGIN\n{podman} pull -q {SOURCE}/app:missing 2>&1 && exit 11\necho MISS-END\nexit 0",
        d = dir.display()
    );
    let out = in_netns(&site, &script);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(digest.as_str()), "{all}");
    let miss = stdout.split("MISS-BEGIN").nth(1).expect("miss");
    assert!(
        miss.contains(&format!("registry {SOURCE} is blocked")),
        "a miss must fail on the blocked upstream: {all}"
    );

    // --digest-only: the mirror serves pulls by digest; a pull by tag is refused.
    args[..2].copy_from_slice(&["--ledger", "ledger"]);
    args.push("--digest-only");
    mirror_config_cli(dir, &args);
    let script = format!(
        "export HOME={d}\n{podman} rmi -a -f >/dev/null\n\
         {podman} pull -q {SOURCE}/app@{digest} || exit 10\n\
         {podman} pull -q {SOURCE}/app:1.0 2>&1 && exit 11\nexit 0",
        d = dir.display()
    );
    let out = in_netns(&site, &script);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains(&format!("registry {SOURCE} is blocked")),
        "{all}"
    );
}

#[test]
fn mirror_config_from_the_ledger_and_from_the_report_agree() {
    let site = site();
    let dir = site.dir();
    let from_ledger = Admitted::from_ledger(&dir.join("ledger")).expect("ledger");
    let from_report = Admitted::from_report(&dir.join("report.json")).expect("report");
    let expected = vec![Mirror {
        source: SOURCE.into(),
        host: site.dst.host.clone(),
        prefix: "mirror".into(),
    }];
    assert_eq!(mirror_config::mirrors(&from_ledger).expect("m"), expected);
    assert_eq!(mirror_config::mirrors(&from_report).expect("m"), expected);
    assert_eq!(from_ledger.images[0].digest, site.image.manifest.digest());
    assert_eq!(site.to, format!("{}/mirror", site.dst.host));
}

fn golden_mirrors() -> Vec<Mirror> {
    vec![
        Mirror {
            source: "docker.io".into(),
            host: "registry.internal:5000".into(),
            prefix: "mirror/hub".into(),
        },
        Mirror {
            source: "registry.example.com".into(),
            host: "registry.internal:5000".into(),
            prefix: String::new(),
        },
    ]
}

fn rendered(format: MirrorFormat, opts: &MirrorOptions) -> String {
    let files = mirror_config::render(format, &golden_mirrors(), opts).expect("render");
    files
        .iter()
        .map(|f| {
            format!(
                "==> {}\n{}",
                f.path.display(),
                String::from_utf8_lossy(&f.contents)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

#[test]
fn golden_mirror_configs() {
    let ca = MirrorOptions {
        ca: Some(("/etc/airlock/ca.pem".into(), CA.as_bytes().to_vec())),
        ..Default::default()
    };
    insta::assert_snapshot!("mirror-containerd", rendered(MirrorFormat::Containerd, &ca));
    insta::assert_snapshot!("mirror-k3s", rendered(MirrorFormat::K3s, &ca));
    insta::assert_snapshot!("mirror-crio", rendered(MirrorFormat::Crio, &ca));
    insta::assert_snapshot!(
        "mirror-crio-digest-only",
        rendered(
            MirrorFormat::Crio,
            &MirrorOptions {
                digest_only: true,
                plain_http: true,
                ..Default::default()
            }
        )
    );
    insta::assert_snapshot!("mirror-idms", rendered(MirrorFormat::Idms, &ca));
    // Every YAML output parses, and every TOML output is read by the runtimes above.
    for f in mirror_config::render(MirrorFormat::Idms, &golden_mirrors(), &ca)
        .expect("render")
        .into_iter()
        .chain(mirror_config::render(MirrorFormat::K3s, &golden_mirrors(), &ca).expect("k3s"))
    {
        let v: serde_yaml::Value = serde_yaml::from_slice(&f.contents).expect("yaml");
        assert!(v.is_mapping(), "{}", f.path.display());
    }
}

#[test]
fn mirror_config_refuses_a_ca_file_that_is_not_pem_and_a_missing_ledger() {
    let site = site();
    let dir = site.dir();
    std::fs::write(dir.join("not-a-ca.pem"), "hello").expect("write");
    fails_with(
        &airlock(
            dir,
            &[
                "mirror-config",
                "--ledger",
                "ledger",
                "--runtime",
                "k3s",
                "--ca-file",
                "not-a-ca.pem",
                "-o",
                "out",
            ],
        ),
        "holds no PEM certificate",
    );
    assert!(!dir.join("out").exists(), "nothing is written on error");
    fails_with(
        &airlock(
            dir,
            &[
                "mirror-config",
                "--ledger",
                "nope",
                "--runtime",
                "k3s",
                "-o",
                "out",
            ],
        ),
        "nope",
    );
}

const MANIFESTS: &str = "# the app\n\
apiVersion: apps/v1\n\
kind: Deployment\n\
metadata:\n  name: app\n\
spec:\n  template:\n    spec:\n\
      initContainers:\n      - name: init\n        image: registry.example.com/app:1.0   # init\n\
      containers:\n      - name: app\n        image: \"registry.example.com/app:1.0\"\n        args:\n        - |\n          image: registry.example.com/not-an-image:0\n\
---\n\
apiVersion: batch/v1\n\
kind: CronJob\n\
metadata:\n  name: nightly\n\
spec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - image: 'registry.example.com/app:1.0'\n              name: job\n\
---\n\
apiVersion: v1\n\
kind: Pod\n\
metadata:\n  name: debug\n\
spec:\n  ephemeralContainers:\n  - name: dbg\n    image: registry.example.com/app:1.0\n";

const VALUES: &str = "# Helm values\n\
image:\n  registry: registry.example.com\n  repository: app\n  tag: \"1.0\"\n  digest: \"\"  # set by pin\n  pullPolicy: IfNotPresent\n\
sidecar:\n  image:\n    repository: registry.example.com/app\n    tag: \"1.0\"\n\
plain:\n  image: registry.example.com/app:1.0\n";

#[test]
fn pin_rewrites_every_image_by_digest_and_keeps_the_text_around_it() {
    let site = site();
    let dir = site.dir();
    std::fs::write(dir.join("app.yaml"), MANIFESTS).expect("write");
    std::fs::write(dir.join("values.yaml"), VALUES).expect("write");
    let out = ok(&airlock(
        dir,
        &[
            "pin",
            "app.yaml",
            "values.yaml",
            "--ledger",
            "ledger",
            "--registry",
            &format!("{}=registry.internal/mirror", site.to),
            "-o",
            "pinned",
        ],
    ));
    let digest = site.image.manifest.digest();
    let pinned_ref = format!("registry.internal/mirror/app:1.0@{digest}");
    let app = std::fs::read_to_string(dir.join("pinned/app.yaml")).expect("pinned");
    assert_eq!(
        app,
        MANIFESTS.replace("registry.example.com/app:1.0", &pinned_ref),
        "only the image scalars change"
    );
    assert_eq!(app.matches(&pinned_ref).count(), 4, "{out}");
    let values = std::fs::read_to_string(dir.join("pinned/values.yaml")).expect("pinned");
    let expected = VALUES
        .replace(
            "  registry: registry.example.com\n  repository: app\n  tag: \"1.0\"\n  digest: \"\"",
            &format!(
                "  registry: registry.internal\n  repository: mirror/app\n  tag: \"1.0\"\n  digest: \"{digest}\""
            ),
        )
        .replace(
            "    repository: registry.example.com/app\n    tag: \"1.0\"",
            &format!("    repository: registry.internal/mirror/app\n    tag: \"1.0@{digest}\""),
        )
        .replace("registry.example.com/app:1.0", &pinned_ref);
    assert_eq!(values, expected);
    assert_eq!(
        std::fs::read_to_string(dir.join("app.yaml")).expect("orig"),
        MANIFESTS,
        "-o leaves the originals alone"
    );
}

#[test]
fn pin_refuses_an_image_the_ledger_never_admitted_naming_file_and_line() {
    let site = site();
    let dir = site.dir();
    let bad = MANIFESTS.replace(
        "'registry.example.com/app:1.0'",
        "'registry.example.com/app:2.0'",
    );
    std::fs::write(dir.join("app.yaml"), &bad).expect("write");
    std::fs::write(dir.join("ok.yaml"), "image: registry.example.com/app:1.0\n").expect("write");
    fails_with(
        &airlock(
            dir,
            &[
                "pin",
                "ok.yaml",
                "app.yaml",
                "--ledger",
                "ledger",
                "--in-place",
            ],
        ),
        "app.yaml:29: image `registry.example.com/app:2.0` was never admitted",
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("app.yaml")).expect("read"),
        bad,
        "a refused file is untouched"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("ok.yaml")).expect("read"),
        "image: registry.example.com/app:1.0\n",
        "nothing is written when any file is refused"
    );
    // A digest that is not the admitted one is refused too.
    std::fs::write(
        dir.join("d.yaml"),
        format!(
            "image: registry.example.com/app@sha256:{}\n",
            "0".repeat(64)
        ),
    )
    .expect("write");
    fails_with(
        &airlock(dir, &["pin", "d.yaml", "--ledger", "ledger", "--in-place"]),
        "d.yaml:1: image",
    );
    // Flow style cannot be edited in place: refused, not skipped.
    std::fs::write(
        dir.join("f.yaml"),
        "containers: [{image: registry.example.com/app:1.0}]\n",
    )
    .expect("write");
    fails_with(
        &airlock(dir, &["pin", "f.yaml", "--ledger", "ledger", "--in-place"]),
        "f.yaml: an `image` value is written in a form pin cannot edit",
    );
    // In place, an admitted reference is rewritten.
    ok(&airlock(
        dir,
        &["pin", "ok.yaml", "--ledger", "ledger", "--in-place"],
    ));
    assert_eq!(
        std::fs::read_to_string(dir.join("ok.yaml")).expect("read"),
        format!(
            "image: {}/app:1.0@{}\n",
            site.to,
            site.image.manifest.digest()
        )
    );
}

// ---- admission policies, validated against the projects' published CRD schemas ----

/// Structural check of `v` against an `openAPIV3Schema`: types, required, properties,
/// unknown fields (which the API server would silently prune), enums, lengths, items and
/// additionalProperties. CEL rules (`x-kubernetes-validations`) are not evaluated.
fn check(schema: &serde_json::Value, v: &serde_json::Value, at: &str, errs: &mut Vec<String>) {
    use serde_json::Value as J;
    if schema["x-kubernetes-int-or-string"] == J::Bool(true) {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            errs.push(format!("{at}: not an int or string"));
        }
        return;
    }
    let ok_type = match schema["type"].as_str() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !ok_type {
        errs.push(format!("{at}: expected {}, got {v}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            errs.push(format!("{at}: {v} not in {allowed:?}"));
        }
    }
    if let (Some(s), Some(max)) = (v.as_str(), schema["maxLength"].as_u64()) {
        if s.chars().count() as u64 > max {
            errs.push(format!("{at}: longer than {max}"));
        }
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        check(sub, v, at, errs);
    }
    match v {
        J::Object(map) => {
            for req in schema["required"].as_array().into_iter().flatten() {
                let key = req.as_str().unwrap_or_default();
                if !map.contains_key(key) {
                    errs.push(format!("{at}: missing required `{key}`"));
                }
            }
            let props = schema["properties"].as_object();
            let preserve = schema["x-kubernetes-preserve-unknown-fields"] == J::Bool(true);
            for (k, val) in map {
                let here = format!("{at}.{k}");
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    check(p, val, &here, errs);
                } else if schema["additionalProperties"].is_object() {
                    check(&schema["additionalProperties"], val, &here, errs);
                } else if !preserve
                    && (props.is_some() || schema["additionalProperties"] == J::Bool(false))
                {
                    errs.push(format!("{here}: unknown field"));
                }
            }
        }
        J::Array(items) => {
            if let Some(min) = schema["minItems"].as_u64() {
                if (items.len() as u64) < min {
                    errs.push(format!("{at}: fewer than {min} items"));
                }
            }
            for (i, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{at}[{i}]"), errs);
            }
        }
        _ => {}
    }
}

/// Validates every document of `yaml` whose kind one of the CRDs in `tests/data/crds` defines;
/// returns the errors and how many documents were checked.
fn validate_against_crds(yaml: &str) -> (Vec<String>, usize) {
    let crds: Vec<serde_json::Value> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crds"))
            .expect("crds")
            .filter_map(|e| {
                let p = e.expect("entry").path();
                (p.extension()? == "yaml").then(|| {
                    serde_yaml::from_str(&std::fs::read_to_string(&p).expect("read"))
                        .expect("crd yaml")
                })
            })
            .collect();
    let mut errs = Vec::new();
    let mut checked = 0;
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("doc");
        if v.is_null() {
            continue;
        }
        let (api, kind) = (
            v["apiVersion"].as_str().unwrap_or_default(),
            v["kind"].as_str().unwrap_or_default(),
        );
        let Some((group, version)) = api.split_once('/') else {
            continue; // core kinds (ConfigMap)
        };
        let crd = crds
            .iter()
            .find(|c| c["spec"]["names"]["kind"] == kind && c["spec"]["group"] == group)
            .unwrap_or_else(|| panic!("no CRD for {api} {kind}"));
        let schema = crd["spec"]["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .find(|x| x["name"] == version)
            .unwrap_or_else(|| panic!("CRD {kind} has no version {version}"));
        let schema = &schema["schema"]["openAPIV3Schema"];
        // The API server always accepts these, whether the CRD lists them or not.
        let mut v = v.clone();
        if let Some(obj) = v.as_object_mut() {
            for k in ["apiVersion", "kind", "metadata"] {
                if schema["properties"].get(k).is_none() {
                    obj.remove(k);
                }
            }
        }
        check(schema, &v, kind, &mut errs);
        checked += 1;
    }
    (errs, checked)
}

const TRUSTED_ROOT: &str = "tests/data/sigstore/bundles/trusted_root.public-good.json";
const KEY: &str = "tests/data/sigstore/keys/oc-mirror-cosign.pub";

/// A site trust policy beside its key and trusted root; `require` for the keyless rule.
fn write_policy(dir: &Path, require: usize) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join(TRUSTED_ROOT), dir.join("trusted_root.json")).expect("root");
    std::fs::copy(root.join(KEY), dir.join("release.pub")).expect("key");
    let p = dir.join("site-policy.yaml");
    std::fs::write(
        &p,
        format!(
            "trusted_root: trusted_root.json\nrules:\n  - pattern: {SOURCE}/app\n    keys: [release.pub]\n  \
             - pattern: {SOURCE}/**\n    keyless:\n      - identity: https://github.com/org/app/.github/workflows/release.yml@refs/heads/main\n        \
             issuer: https://token.actions.githubusercontent.com\n      - identity: {{regex: \"https://github\\\\.com/org/.*\"}}\n        \
             issuer: https://token.actions.githubusercontent.com\n    require: {require}\n  \
             - pattern: ghcr.io/elsewhere/*\n    keys: [release.pub]\n"
        ),
    )
    .expect("policy");
    p
}

fn all_files(dir: &Path) -> String {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("out")
        .map(|e| e.expect("e").path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Runs `airlock admission-policy` for the site's ledger.
fn admission_cli(dir: &Path, policy: &Path, format: &str, out: &str) -> Output {
    let policy = policy.to_str().expect("utf8");
    let args = ["admission-policy", "--policy", policy, "--ledger", "ledger"];
    let mut all = args.to_vec();
    all.extend(["--controller", format, "-o", out]);
    airlock(dir, &all)
}

#[test]
fn admission_policies_name_only_the_internal_registry_and_fit_the_published_crds() {
    let site = site();
    let dir = site.dir();
    let policy = write_policy(dir, 1);
    for (format, out) in [("kyverno", "ky"), ("policy-controller", "pc")] {
        ok(&admission_cli(dir, &policy, format, out));
        let text = all_files(&dir.join(out));
        assert!(
            !text.contains(SOURCE) && !text.contains("ghcr.io"),
            "{format}: a glob names an upstream registry:\n{text}"
        );
        assert!(
            text.contains(&format!("{}/app", site.to)),
            "{format}: {text}"
        );
        let (errs, checked) = validate_against_crds(&text);
        assert!(errs.is_empty(), "{format}: {errs:#?}\n{text}");
        assert!(checked >= 1, "{format}: nothing validated");
    }
    let ky = std::fs::read_to_string(dir.join("ky/kyverno-clusterpolicy.yaml")).expect("ky");
    let v: serde_json::Value = serde_yaml::from_str(&ky).expect("yaml");
    let rules = v["spec"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 3, "two trust rules and the deny rule: {ky}");
    let vi = &rules[0]["verifyImages"][0];
    assert_eq!(
        vi["imageReferences"],
        serde_json::json!([format!("{}/app:*", site.to), format!("{}/app@*", site.to)])
    );
    assert_eq!(
        rules[1]["verifyImages"][0]["imageReferences"],
        serde_json::json!([format!("{}/*", site.to)])
    );
    for k in ["mutateDigest", "verifyDigest", "required"] {
        assert_eq!(vi[k], true, "{k}");
    }
    let keyless = &rules[1]["verifyImages"][0]["attestors"][0]["entries"][1]["keyless"];
    assert_eq!(
        keyless["subjectRegExp"],
        "^(?:https://github\\.com/org/.*)$"
    );
    assert!(keyless["roots"]
        .as_str()
        .expect("roots")
        .contains("BEGIN CERTIFICATE"));
    assert!(keyless["rekor"]["pubkey"]
        .as_str()
        .expect("rekor")
        .contains("PUBLIC KEY"));
    assert_eq!(
        rules[2]["validate"]["pattern"]["spec"]["containers"][0]["image"],
        format!("{}/*", site.to)
    );
    let tr = std::fs::read_to_string(dir.join("pc/trustroot.yaml")).expect("trustroot");
    assert!(
        tr.contains("kind: TrustRoot") && tr.contains("certChain"),
        "{tr}"
    );
}

#[test]
fn the_crd_check_catches_unknown_fields_wrong_enums_and_types() {
    let good = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: x}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: [\"a/*\"]\n      failureAction: Enforce\n";
    assert_eq!(validate_against_crds(good), (vec![], 1));
    for (bad, needle) in [
        (
            good.replace("failureAction: Enforce", "failureAction: Deny"),
            "not in",
        ),
        (
            good.replace("failureAction: Enforce", "failureActoin: Enforce"),
            "unknown field",
        ),
        (
            good.replace("imageReferences: [\"a/*\"]", "imageReferences: \"a/*\""),
            "expected \"array\"",
        ),
    ] {
        let (errs, _) = validate_against_crds(&bad);
        assert!(
            errs.iter().any(|e| e.contains(needle)),
            "{needle}: {errs:?}"
        );
    }
}

#[test]
fn policy_controller_refuses_a_rule_needing_two_signers() {
    let site = site();
    let dir = site.dir();
    let policy = write_policy(dir, 2);
    fails_with(
        &admission_cli(dir, &policy, "policy-controller", "pc"),
        "requires 2 signers",
    );
    // Kyverno says it with `count`.
    ok(&admission_cli(dir, &policy, "kyverno", "ky"));
    let ky = std::fs::read_to_string(dir.join("ky/kyverno-clusterpolicy.yaml")).expect("ky");
    let v: serde_json::Value = serde_yaml::from_str(&ky).expect("yaml");
    assert_eq!(
        v["spec"]["rules"][1]["verifyImages"][0]["attestors"][0]["count"],
        2
    );
}

#[test]
fn golden_admission_policies() {
    use airlock::cluster::admission::{self, AdmissionFormat};
    let work = tempfile::tempdir().expect("tmp");
    let path = write_policy(work.path(), 1);
    let policy = airlock::trust::policy::TrustPolicy::from_yaml(
        &std::fs::read_to_string(&path).expect("policy"),
    )
    .expect("parse");
    for (name, format) in [
        ("admission-kyverno", AdmissionFormat::Kyverno),
        (
            "admission-policy-controller",
            AdmissionFormat::PolicyController,
        ),
    ] {
        let files = admission::render(format, &policy, &path, &golden_mirrors()).expect("render");
        let text = files
            .iter()
            .map(|f| {
                format!(
                    "==> {}\n{}",
                    f.path.display(),
                    String::from_utf8_lossy(&f.contents)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let (errs, checked) = validate_against_crds(
            &files
                .iter()
                .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
                .collect::<Vec<_>>()
                .join("\n---\n"),
        );
        assert!(errs.is_empty() && checked >= 1, "{name}: {errs:?}");
        insta::assert_snapshot!(name, text);
    }
}
