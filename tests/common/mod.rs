//! Test harness: real registries (the CNCF distribution registry, Debian's `docker-registry`)
//! started per test on 127.0.0.1 with a random port and their own storage; a static HTTP server
//! for chart repositories; a fault-injecting proxy for what real registries never do; and
//! deterministic fixture images.
#![allow(dead_code)]

pub mod cosign3;
pub mod der;
pub mod ferro;
pub mod fixtures;
pub mod peers;
pub mod proxy;
mod serve;
pub mod tarball;
pub mod token;
pub mod trivydb;
pub mod zuul;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use serve::{full, serve_http, Body};

use airlock::registry::{CredentialStore, Credentials, Registry, RegistryOptions, RetryPolicy};

/// A free port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// TLS material made for one test: a throwaway CA and a server certificate for 127.0.0.1.
pub struct Tls {
    /// CA certificate PEM file.
    pub ca_file: PathBuf,
    /// Server certificate PEM file.
    pub cert_file: PathBuf,
    /// Server key PEM file.
    pub key_file: PathBuf,
}

impl Tls {
    pub fn new(dir: &Path) -> Tls {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "airlock test CA");
        let ca_key = KeyPair::generate().expect("ca key");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
        let ca_file = dir.join("ca.pem");
        let cert_file = dir.join("server.pem");
        let key_file = dir.join("server.key");
        std::fs::write(&ca_file, ca.pem()).expect("write ca");
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        Tls {
            ca_file,
            cert_file,
            key_file,
        }
    }
}

/// How to start a registry.
#[derive(Default)]
pub struct RegistryConfig {
    pub tls: bool,
    pub basic_auth: Option<(String, String)>,
    /// Bearer-token auth through a token server that accepts these credentials.
    pub token_auth: Option<(String, String)>,
    /// With `token_auth`: the tokens' lifetime in seconds (default 300).
    pub token_ttl: Option<u64>,
    /// With `token_auth`: the refresh token (docker's `identitytoken`) the token server's
    /// OAuth2 endpoint also accepts.
    pub refresh_token: Option<String>,
    /// With `tls`: a CA (PEM file) whose client certificates the registry requires (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// A running `docker-registry`, killed on drop.
pub struct TestRegistry {
    child: Child,
    pub host: String,
    pub dir: tempfile::TempDir,
    pub tls: Option<Tls>,
    pub auth: Option<(String, String)>,
    pub token: Option<token::TokenServer>,
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        Self::start_with(RegistryConfig::default())
    }

    pub fn start_with(cfg: RegistryConfig) -> TestRegistry {
        let bin = which("docker-registry").expect(
            "docker-registry not found: install the Debian package `docker-registry` (scripts/test.sh does)",
        );
        // A port picked free may be taken before the registry binds it: try a few.
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().expect("tmp");
            let tls = cfg.tls.then(|| Tls::new(dir.path()));
            let host = format!("127.0.0.1:{}", free_port());
            let mut config = format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                dir.path().join("storage").display()
            );
            if let Some(t) = &tls {
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    t.cert_file.display(),
                    t.key_file.display()
                ));
                if let Some(ca) = &cfg.client_ca {
                    config.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
                }
            }
            if let Some((user, pass)) = &cfg.basic_auth {
                let hash = bcrypt::hash(pass, 4).expect("bcrypt");
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: airlock-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            let mut token_server = None;
            if let Some((user, pass)) = &cfg.token_auth {
                let cert = dir.path().join("token-issuer.pem");
                let t = token::TokenServer::start_with(
                    &cert,
                    token::TokenConfig {
                        user: user.clone(),
                        password: pass.clone(),
                        ttl: cfg.token_ttl.unwrap_or(300),
                        refresh_token: cfg.refresh_token.clone(),
                    },
                );
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.realm,
                    t.service,
                    t.issuer,
                    cert.display()
                ));
                token_server = Some(t);
            }
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, config).expect("config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&cfg_path)
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut reg = TestRegistry {
                child,
                host,
                dir,
                tls,
                auth: cfg.basic_auth.clone().or_else(|| cfg.token_auth.clone()),
                token: token_server,
            };
            if reg.wait_ready() {
                return reg;
            }
        }
        panic!("docker-registry did not start after 5 attempts");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The registry's access log (for request counting).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Registry flags for the airlock CLI to reach this registry.
    pub fn cli_flags(&self) -> Vec<String> {
        let mut v = Vec::new();
        match &self.tls {
            Some(t) => {
                v.push("--ca-file".into());
                v.push(t.ca_file.display().to_string());
            }
            None => {
                v.push("--insecure-registry".into());
                v.push(self.host.clone());
            }
        }
        if let Some((u, p)) = &self.auth {
            v.push("--creds".into());
            v.push(format!("{}={u}:{p}", self.host));
        }
        // The token server is plain HTTP on another port: named, so credentials may go there.
        if let Some(t) = &self.token {
            v.push("--insecure-registry".into());
            v.push(t.host());
        }
        v
    }

    /// skopeo flags for this registry.
    pub fn skopeo_flags(&self) -> Vec<String> {
        let mut v = Vec::new();
        match &self.tls {
            Some(t) => {
                let certs = self.dir.path().join("skopeo-certs");
                std::fs::create_dir_all(&certs).expect("certs dir");
                std::fs::copy(&t.ca_file, certs.join("ca.crt")).expect("copy ca");
                v.push("--cert-dir".into());
                v.push(certs.display().to_string());
            }
            None => v.push("--tls-verify=false".into()),
        }
        if let Some((u, p)) = &self.auth {
            v.push("--creds".into());
            v.push(format!("{u}:{p}"));
        }
        v
    }

    /// A library client for this registry.
    pub fn client(&self) -> Registry {
        client_for(self, RetryPolicy::default())
    }

    /// The tags of a repository (empty when the repository does not exist).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let out = skopeo(
            &[
                &["list-tags".to_string()][..],
                &self.skopeo_flags(),
                &[format!("docker://{}/{repo}", self.host)],
            ]
            .concat(),
        );
        if !out.status.success() {
            return Vec::new();
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tags json");
        v["Tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many blobs (manifests included) the registry holds in its storage: zero means
    /// nothing at all was pushed.
    pub fn stored_blobs(&self) -> usize {
        fn count(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| {
                            let p = e.path();
                            if p.is_dir() {
                                count(&p)
                            } else {
                                usize::from(e.file_name() == "data")
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        count(&self.dir.path().join("storage/docker/registry/v2/blobs"))
    }

    /// Raw manifest bytes as skopeo (an independent client) reads them.
    pub fn skopeo_raw(&self, reference: &str) -> Vec<u8> {
        let out = skopeo(
            &[
                &["inspect".to_string(), "--raw".to_string()][..],
                &self.skopeo_flags(),
                &[format!("docker://{}/{reference}", self.host)],
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "skopeo inspect --raw {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A library client for a plain-HTTP, anonymous `host` (a [`proxy::Proxy`] in front of a
/// registry).
pub fn client_at(host: &str) -> Registry {
    Registry::new(RegistryOptions {
        insecure: vec![host.to_string()],
        ca_files: Vec::new(),
        certs_dirs: Vec::new(),
        credentials: CredentialStore::empty(),
        retry: RetryPolicy::default(),
        max_requests: None,
        ..Default::default()
    })
    .expect("client")
}

pub fn client_for(reg: &TestRegistry, retry: RetryPolicy) -> Registry {
    let mut credentials = CredentialStore::empty();
    if let Some((u, p)) = &reg.auth {
        credentials.insert(&reg.host, Credentials::new(u.clone(), p.clone()));
    }
    let mut insecure = if reg.tls.is_none() {
        vec![reg.host.clone()]
    } else {
        vec![]
    };
    insecure.extend(reg.token.as_ref().map(|t| t.host()));
    Registry::new(RegistryOptions {
        insecure,
        ca_files: reg.tls.iter().map(|t| t.ca_file.clone()).collect(),
        certs_dirs: Vec::new(),
        credentials,
        retry,
        max_requests: None,
        ..Default::default()
    })
    .expect("client")
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs skopeo (an independent OCI client); panics with a clear message if it is not installed.
pub fn skopeo(args: &[String]) -> Output {
    let bin = which("skopeo")
        .expect("skopeo not found: install the Debian package `skopeo` (scripts/test.sh does)");
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo")
}

/// The airlock binary set up to run in `dir`, with no credentials or cache leaking from the
/// host.
fn airlock_command(program: &Path, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir)
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("SOURCE_DATE_EPOCH")
        // Every flag has an `AIRLOCK_*` variable: none leaks in from the host, nor its
        // `airlock.toml` (XDG_CONFIG_HOME falls back to `$HOME/.config`, inside the work dir).
        .env_remove("XDG_CONFIG_HOME")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AIRLOCK_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs the airlock binary with `args` in `dir`, with no credentials leaking from the host.
pub fn airlock(dir: &Path, args: &[&str]) -> Output {
    airlock_env(dir, args, &[])
}

/// [`airlock`] with extra environment variables (e.g. a `PATH` without some tool).
pub fn airlock_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    airlock_command(Path::new(env!("CARGO_BIN_EXE_airlock")), dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run airlock")
}

/// [`airlock`] started in the background (stdout and stderr piped), for watching what it does
/// while it runs.
pub fn airlock_spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    airlock_command(Path::new(env!("CARGO_BIN_EXE_airlock")), dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start airlock")
}

/// A multi-threaded runtime of one worker, for the async library calls tests make.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt")
}

/// In-process collect options: `dir/OUTPUT` from the cache `dir/cache`, four jobs, signed by
/// `signers`, nothing else.
pub fn collect_options(
    dir: &Path,
    output: &str,
    signers: Vec<airlock::trust::keys::SigningKey>,
) -> airlock::collect::CollectOptions {
    airlock::collect::CollectOptions {
        output: dir.join(output),
        cache: dir.join("cache"),
        jobs: 4,
        signers,
        base_dir: dir.to_owned(),
        sequence: None,
        scan_db: None,
        carry_db: false,
        scanner: Default::default(),
        have: None,
        split: None,
    }
}

/// In-process import options: everything to `host` under its own names, four jobs, no gates.
pub fn import_options(
    host: &str,
    signature: airlock::bundle::signature::SignaturePolicy,
) -> airlock::import::ImportOptions {
    airlock::import::ImportOptions {
        signature,
        target: host.parse().expect("target"),
        mapping: airlock::import::Mapping {
            prefix: String::new(),
            keep_source_host: false,
            flatten: false,
            rewrites: Vec::new(),
        },
        jobs: 4,
        scan_gate: None,
        image_policy: None,
        allow_older: false,
        files_to: None,
    }
}

/// Compiles the real OSV records of `tests/data/osv` (Debian and Alpine) with the CLI into
/// `dir/vuln.db`.
pub fn build_vuln_db(dir: &Path) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    ok(&airlock(
        dir,
        &[
            "db",
            "build",
            "--osv",
            &data.join("debian").display().to_string(),
            "--osv",
            &data.join("alpine").display().to_string(),
            "-o",
            "vuln.db",
        ],
    ));
}

/// Asserts success and returns stdout.
/// `airlock ledger init ledger --origin ORIGIN` in `dir`, its key protected by the password
/// the test wrote to `dir/pw`.
pub fn init_ledger(dir: &Path, origin: &str) {
    ok(&airlock(
        dir,
        &[
            "ledger",
            "init",
            "ledger",
            "--origin",
            origin,
            "--password-file",
            "pw",
        ],
    ));
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "airlock failed ({:?})\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a failure (a documented failure class: exit 1, or 4 to 7; not usage or drift) with a
/// one-line error containing `needle`; returns stderr. [`fails_as`] pins the class too.
pub fn fails_with(out: &Output, needle: &str) -> String {
    assert!(
        matches!(out.status.code(), Some(1 | 4..=7)),
        "expected a failure exit code (1, 4-7), got {:?}; stdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    one_error_line(out, needle)
}

/// Asserts exit `code` (README "Exit codes": 1 other, 2 usage, 4 verification, 5 policy,
/// 6 registry, 7 ledger) with a one-line error containing `needle`; returns stderr.
pub fn fails_as(out: &Output, code: i32, needle: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "wrong exit code; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    one_error_line(out, needle)
}

fn one_error_line(out: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    assert!(
        errors[0].contains(needle),
        "error line lacks `{needle}`: {}",
        errors[0]
    );
    stderr
}

/// A static HTTP file server (for chart repositories), stopped on drop.
pub struct FileServer {
    pub url: String,
    rt: tokio::runtime::Runtime,
}

impl FileServer {
    pub fn serve(root: PathBuf) -> FileServer {
        let (addr, rt) = serve_http(move |_| {
            move |req: hyper::Request<hyper::body::Incoming>| {
                let path = req.uri().path().trim_start_matches('/').to_string();
                let found = (!path.contains(".."))
                    .then(|| std::fs::read(root.join(&path)).ok())
                    .flatten();
                let resp = match found {
                    Some(b) => hyper::Response::builder()
                        .status(200)
                        .body(full(bytes::Bytes::from(b))),
                    None => hyper::Response::builder()
                        .status(404)
                        .body(full(bytes::Bytes::new())),
                };
                async move { resp.expect("response") }
            }
        });
        FileServer {
            url: format!("http://{addr}"),
            rt,
        }
    }
}

/// sha256 hex of a file.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).expect("hash");
    hex::encode(h.finalize())
}

/// [`airlock_env`], run under `/usr/bin/time` (Debian's `time`, installed by scripts/test.sh):
/// the output and the command's peak resident memory in bytes, for the bounds bad inputs must
/// stay within.
pub fn airlock_peak(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, u64) {
    let rss_file = dir.join(format!(".peak-rss-{}", std::process::id()));
    let out = airlock_command(Path::new("/usr/bin/time"), dir)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run airlock under /usr/bin/time");
    let text = std::fs::read_to_string(&rss_file).expect("peak RSS file");
    let _ = std::fs::remove_file(&rss_file);
    // `time` writes "Command exited with non-zero status N" before the figure on failure.
    let kib: u64 = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .expect("peak RSS figure");
    (out, kib * 1024)
}

/// The most memory any bad-input run may use (issue 10).
pub const MAX_BAD_INPUT_RSS: u64 = 256 * 1024 * 1024;

/// Starts [`airlock`] in the background (to be killed), stdout dropped, stderr to `stderr` or
/// dropped.
pub fn spawn_airlock<S: AsRef<std::ffi::OsStr>>(
    dir: &Path,
    args: &[S],
    stderr: Option<&Path>,
) -> Child {
    let err = match stderr {
        Some(p) => Stdio::from(std::fs::File::create(p).expect("stderr file")),
        None => Stdio::null(),
    };
    airlock_command(Path::new(env!("CARGO_BIN_EXE_airlock")), dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn airlock")
}

/// Waits (up to a minute) for `cond`; panics naming `what` otherwise.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes `dir/NAME.yaml` pinning each `(image, reference)` (`src.host/REPO:TAG`), collects it
/// into `dir/NAME.tar.zst` (unsigned, cache `dir/c`), and makes the ledger `dir/LEDGER` with
/// the password in `dir/pw`.
pub fn collect_with_ledger(
    src: &TestRegistry,
    dir: &Path,
    name: &str,
    images: &[(&fixtures::Image, &str)],
    ledger: &str,
) {
    let mut spec = format!("name: {name}\nimages:\n");
    for (img, reference) in images {
        spec.push_str(&format!(
            "  - ref: {}/{reference}@{}\n",
            src.host,
            img.manifest.digest()
        ));
    }
    std::fs::write(dir.join(format!("{name}.yaml")), spec).expect("spec");
    std::fs::write(dir.join("pw"), "pw\n").expect("pw");
    let (spec, bundle) = (format!("{name}.yaml"), format!("{name}.tar.zst"));
    let mut args = vec!["collect", &spec, "-o", &bundle, "--cache", "c"];
    let flags = src.cli_flags();
    args.extend(flags.iter().map(String::as_str));
    ok(&airlock(dir, &args));
    let init = [
        "ledger",
        "init",
        ledger,
        "--origin",
        "test.example/l",
        "--password-file",
        "pw",
    ];
    ok(&airlock(dir, &init));
}

/// A tmpfs mounted for the test, unmounted on drop (needs root, as CI runs).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("dir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Fills the filesystem until fewer than `leave` bytes are free (0: until a write fails).
    pub fn fill(&self, leave: u64) {
        use std::io::Write as _;
        let mut n = 0;
        let mut f = loop {
            let p = self.0.join(format!("fill-{n}"));
            if !p.exists() {
                break std::fs::File::create(p).expect("fill file");
            }
            n += 1;
        };
        let chunk = vec![0x5a_u8; 4096];
        while airlock::disk::available_bytes(&self.0).expect("statvfs") > leave {
            if f.write_all(&chunk).and_then(|_| f.sync_data()).is_err() {
                break;
            }
        }
    }

    /// Removes what [`Tmpfs::fill`] wrote.
    pub fn unfill(&self) {
        for e in std::fs::read_dir(&self.0).expect("ls").flatten() {
            if e.file_name().to_string_lossy().starts_with("fill-") {
                std::fs::remove_file(e.path()).expect("rm fill");
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `dir` bind-mounted read-only at `at` (root ignores permission bits, not a read-only
/// mount), unmounted on drop.
pub struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    pub fn mount(dir: &Path, at: &Path) -> ReadOnlyBind {
        std::fs::create_dir_all(at).expect("dir");
        let run = |args: &[&str]| {
            let st = Command::new("mount")
                .args(args)
                .status()
                .expect("run mount");
            assert!(
                st.success(),
                "mount {args:?} (the tests run as root, as CI does)"
            );
        };
        let (d, a) = (dir.display().to_string(), at.display().to_string());
        run(&["--bind", &d, &a]);
        let bind = ReadOnlyBind(at.to_path_buf());
        run(&["-o", "remount,ro,bind", &a]);
        bind
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
