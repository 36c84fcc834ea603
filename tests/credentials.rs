//! Credentials as users have them: docker credential helpers (`credsStore`, `credHelpers`)
//! run as docker runs them, against real registries that demand a bearer token.
//! The helper is `tests/data/cred-helper/docker-credential-test`, put on `PATH` per test.

mod common;

use std::path::{Path, PathBuf};

use airlock::registry::Repo;
use common::{airlock_env, fixtures, ok, rt, TestRegistry};

/// A `docker-credential-test` on `PATH`, a docker config naming it, and the helper's state.
struct Helper {
    env: Vec<(String, String)>,
    state: PathBuf,
}

impl Helper {
    /// `config` is the docker `config.json` written to `$DOCKER_CONFIG`.
    fn install(work: &Path, config: serde_json::Value) -> Helper {
        let bin = work.join("bin");
        let state = work.join("helper-state");
        let docker = work.join("docker-config");
        for d in [&bin, &state, &docker] {
            std::fs::create_dir_all(d).expect("dir");
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/cred-helper/docker-credential-test");
        std::fs::copy(&script, bin.join("docker-credential-test")).expect("copy helper");
        std::fs::write(docker.join("config.json"), config.to_string()).expect("config");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Helper {
            env: vec![
                ("PATH".into(), path),
                ("DOCKER_CONFIG".into(), docker.display().to_string()),
                (
                    "AIRLOCK_TEST_HELPER_DIR".into(),
                    state.display().to_string(),
                ),
                ("AIRLOCK_CREDENTIAL_HELPER_TIMEOUT".into(), "3s".into()),
            ],
            state,
        }
    }

    /// Puts credentials for `server` in the helper's store, as `docker login` would.
    fn holds(&self, server: &str, user: &str, secret: &str) {
        let store = self.state.join("store");
        std::fs::create_dir_all(&store).expect("store");
        std::fs::write(
            store.join(server.replace([':', '/'], "_")),
            serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret})
                .to_string(),
        )
        .expect("creds");
    }

    fn misbehave(&self, mode: &str) {
        std::fs::write(self.state.join("mode"), mode).expect("mode");
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.state.join("calls")).unwrap_or_default()
    }

    fn run(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        airlock_env(dir, args, &env)
    }
}

fn token_registry() -> TestRegistry {
    TestRegistry::start_with(common::RegistryConfig {
        token_auth: Some(("alice".into(), "helper-pw-9".into())),
        ..Default::default()
    })
}

/// Flags to reach a token-auth registry with no `--creds`: plain HTTP for the registry and
/// its token server.
fn reach(reg: &TestRegistry) -> Vec<String> {
    let token = reg.token.as_ref().expect("token server").host();
    vec![
        "--insecure-registry".into(),
        reg.host.clone(),
        "--insecure-registry".into(),
        token,
    ]
}

fn with<'a>(base: &[&'a str], extra: &'a [String]) -> Vec<&'a str> {
    base.iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect()
}

/// Pushes a small image to `host/repo:1` with `client`.
fn push_one(
    client: &airlock::registry::Registry,
    host: &str,
    repo: &str,
    seed: u64,
    size: usize,
) -> fixtures::Image {
    let img = fixtures::small_image(seed, size);
    rt().block_on(fixtures::push_image(
        client,
        &Repo::parse(host, repo).expect("repository"),
        &img,
        Some("1"),
    ));
    img
}

/// Writes the spec `NAME.yaml` carrying one image.
fn write_spec(dir: &Path, name: &str, reference: &str) {
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        format!("name: {name}\nimages:\n  - ref: {reference}\n"),
    )
    .expect("spec");
}

/// A registry demanding bearer tokens, holding one image at `app:1`, and a spec for it.
fn source_with_image(work: &Path) -> (TestRegistry, fixtures::Image) {
    let src = token_registry();
    let img = push_one(&src.client(), &src.host, "app", 31, 4000);
    write_spec(work, "s", &format!("{}/app:1", src.host));
    (src, img)
}

#[test]
fn creds_store_helper_authenticates_a_token_pull() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let (src, img) = source_with_image(dir);
    let helper = Helper::install(dir, serde_json::json!({"credsStore": "test"}));
    helper.holds(&src.host, "alice", "helper-pw-9");
    ok(&helper.run(dir, &with(&["lock", "s.yaml"], &reach(&src))));
    let lock = std::fs::read_to_string(dir.join("s.lock")).expect("lock");
    assert!(
        lock.contains(&img.manifest.digest().to_string()),
        "lock pins the image: {lock}"
    );
    // Asked once, however many requests needed the credentials.
    assert_eq!(helper.calls(), "get\n");
}

#[test]
fn cred_helpers_entry_wins_over_creds_store_and_auths() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let (src, _img) = source_with_image(dir);
    // `credsStore` names a helper that does not exist and `auths` a wrong password: the
    // host's own `credHelpers` entry is what docker asks, and so do we.
    let wrong = base64_of("alice:wrong");
    let helper = Helper::install(
        dir,
        serde_json::json!({
            "credsStore": "missing-helper",
            "credHelpers": {src.host.clone(): "test"},
            "auths": {src.host.clone(): {"auth": wrong}},
        }),
    );
    helper.holds(&src.host, "alice", "helper-pw-9");
    ok(&helper.run(dir, &with(&["lock", "s.yaml"], &reach(&src))));
    assert_eq!(helper.calls(), "get\n");
}

#[test]
fn helper_without_credentials_means_anonymous() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let (src, _img) = source_with_image(dir);
    let helper = Helper::install(dir, serde_json::json!({"credsStore": "test"}));
    // Nothing stored: the helper says "credentials not found", which is an answer, not an
    // error; the request goes on anonymously and this token server refuses anonymous tokens.
    let out = helper.run(dir, &with(&["lock", "s.yaml"], &reach(&src)));
    let err = common::fails_with(&out, "token endpoint");
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("credential helper"), "{err}");
    assert_eq!(helper.calls(), "get\n");
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn helper_that_fails_hangs_or_prints_garbage_stops_the_import_with_nothing_pushed() {
    // A bundle from an open registry, imported into one that demands tokens: the target's
    // helper misbehaves each way, and each time the import stops on one clear line naming the
    // helper and the host before a single blob lands.
    let src = TestRegistry::start();
    let dst = token_registry();
    push_one(&src.client(), &src.host, "app", 32, 3000);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    write_spec(dir, "b", &format!("{}/app:1", src.host));
    let sflags = src.cli_flags();
    let helper = Helper::install(dir, serde_json::json!({"credsStore": "test"}));
    ok(&helper.run(dir, &with(&["lock", "b.yaml"], &sflags)));
    ok(&helper.run(
        dir,
        &with(&["collect", "b.lock", "-o", "b.tar.zst"], &sflags),
    ));
    helper.holds(&dst.host, "alice", "helper-pw-9");
    let to = format!("{}/m", dst.host);
    let import = ["import", "b.tar.zst", "--to", &to, "--allow-unsigned"];
    let dflags = reach(&dst);
    let named = format!(
        "credential helper `docker-credential-test` (get {})",
        dst.host
    );
    for (mode, says) in [
        (
            "fail",
            "exited with exit status: 1: error: the keychain is locked",
        ),
        ("garbage", "printed something that is not credentials JSON"),
        ("hang", "no answer within 3s; killed"),
        ("flood", "printed more than 65536 bytes; refused"),
    ] {
        helper.misbehave(mode);
        let started = std::time::Instant::now();
        let out = helper.run(dir, &with(&import, &dflags));
        let err = common::fails_with(&out, &named);
        assert!(err.contains(says), "{mode}: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{mode}: took {:?}",
            started.elapsed()
        );
        assert_eq!(dst.stored_blobs(), 0, "{mode}: something was pushed");
    }
    // The same helper, behaving: the import goes through with its credentials.
    helper.misbehave("normal");
    ok(&helper.run(dir, &with(&import, &dflags)));
    assert_eq!(dst.tags("m/app"), vec!["1".to_string()]);
}

#[test]
fn zuul_bearer_tokens_end_to_end_as_source_and_target() {
    // zuul-registry answers 401 to every request without a token: anonymous read tokens for
    // lock and collect, a scoped write token (from a credential helper) for import. One zuul
    // is both the source and the target; skopeo checks what landed.
    let zuul = common::zuul::Zuul::start();
    let mut creds = airlock::registry::CredentialStore::empty();
    creds.insert(
        &zuul.host,
        airlock::registry::Credentials::new(common::zuul::USER, common::zuul::PASSWORD),
    );
    let client = airlock::registry::Registry::new(airlock::registry::RegistryOptions {
        insecure: vec![zuul.host.clone()],
        credentials: creds,
        ..Default::default()
    })
    .expect("client");
    let img = push_one(&client, &zuul.host, "src/app", 33, 5000);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    write_spec(dir, "z", &format!("{}/src/app:1", zuul.host));
    let helper = Helper::install(dir, serde_json::json!({"credsStore": "test"}));
    let flags = vec!["--insecure-registry".to_string(), zuul.host.clone()];
    // Nothing stored for zuul: the helper says so, and pulls go on with anonymous tokens.
    ok(&helper.run(dir, &with(&["lock", "z.yaml"], &flags)));
    ok(&helper.run(
        dir,
        &with(&["collect", "z.lock", "-o", "z.tar.zst"], &flags),
    ));
    assert!(helper.calls().starts_with("get\n"), "{}", helper.calls());
    let to = format!("{}/mirror", zuul.host);
    let import = ["import", "z.tar.zst", "--to", &to, "--allow-unsigned"];
    // Anonymous push: zuul refuses a write token, and nothing lands.
    let out = helper.run(dir, &with(&import, &flags));
    let err = common::fails_with(&out, "authentication failed");
    assert!(err.contains(&zuul.host), "{err}");
    assert_eq!(zuul.skopeo_raw("mirror/src/app:1"), None);
    // The helper holds the writer's password: push tokens, then byte-exact manifests.
    helper.holds(&zuul.host, common::zuul::USER, common::zuul::PASSWORD);
    ok(&helper.run(dir, &with(&import, &flags)));
    assert_eq!(
        zuul.skopeo_raw("mirror/src/app:1").as_deref(),
        Some(&img.manifest.bytes[..])
    );
    let out = helper.run(dir, &with(&["lock", "z.yaml", "--check"], &flags));
    ok(&out);
}

/// Runs airlock with `stdin` as its standard input and the helper's environment.
fn run_with_stdin(helper: &Helper, dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .envs(helper.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run airlock");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn docker_config(dir: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(dir.join("docker-config/config.json")).expect("config"),
    )
    .expect("config json")
}

#[test]
fn login_checks_then_stores_in_auths_and_logout_removes_it() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let (src, _img) = source_with_image(dir);
    let other_keys = serde_json::json!({
        "auths": {"other.example:5000": {"auth": base64_of("bob:keep-me")}},
        "psFormat": "table {{.ID}}",
        "proxies": {"default": {"httpProxy": "http://proxy.example:3128"}},
    });
    let helper = Helper::install(dir, other_keys.clone());
    let flags = reach(&src);
    let login = with(
        &["login", &src.host, "-u", "alice", "--password-stdin"],
        &flags,
    );
    // A wrong password: the token server refuses it, and the file is not touched.
    let out = run_with_stdin(&helper, dir, &login, "wrong\n");
    common::fails_with(&out, "credentials not accepted, nothing stored");
    assert_eq!(docker_config(dir), other_keys);
    // The right one: stored as docker stores it, next to everything else.
    ok(&run_with_stdin(&helper, dir, &login, "helper-pw-9\n"));
    let mut expected = other_keys.clone();
    expected["auths"][&src.host] = serde_json::json!({"auth": base64_of("alice:helper-pw-9")});
    assert_eq!(docker_config(dir), expected);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(dir.join("docker-config/config.json")).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    // And used: no --creds needed any more.
    ok(&helper.run(dir, &with(&["lock", "s.yaml"], &reach(&src))));
    let out = ok(&helper.run(dir, &["logout", &src.host]));
    assert!(out.contains("Removed credentials"), "{out}");
    assert_eq!(docker_config(dir), other_keys);
    let out = ok(&helper.run(dir, &["logout", &src.host]));
    assert!(out.contains("No credentials were stored"), "{out}");
    // The helper was never involved: the config names none.
    assert_eq!(helper.calls(), "");
}

#[test]
fn login_and_logout_go_through_the_configured_helper() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let (src, _img) = source_with_image(dir);
    let config = serde_json::json!({"credHelpers": {src.host.clone(): "test"}});
    let helper = Helper::install(dir, config.clone());
    let flags = reach(&src);
    let login = with(
        &["login", &src.host, "-u", "alice", "--password-stdin"],
        &flags,
    );
    ok(&run_with_stdin(&helper, dir, &login, "helper-pw-9"));
    assert_eq!(docker_config(dir), config, "the file keeps no password");
    assert_eq!(helper.calls(), "store\n");
    let stored =
        std::fs::read_to_string(helper.state.join("store").join(src.host.replace(':', "_")))
            .expect("helper holds the credentials");
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(
        stored,
        serde_json::json!({"ServerURL": src.host, "Username": "alice", "Secret": "helper-pw-9"})
    );
    ok(&helper.run(dir, &with(&["lock", "s.yaml"], &reach(&src))));
    ok(&helper.run(dir, &["logout", &src.host]));
    assert_eq!(helper.calls(), "store\nget\nerase\n");
    let out = helper.run(dir, &with(&["lock", "s.yaml"], &reach(&src)));
    common::fails_with(&out, "token endpoint");
}

/// Runs openssl (installed by scripts/test.sh), panicking with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl not found: scripts/test.sh installs it");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn certs_dir_gives_each_registry_its_ca_and_client_certificate() {
    // A throwaway client CA and a client certificate made with openssl; the distribution
    // registry requires a certificate from that CA on every connection (http.tls.clientcas).
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).expect("pki");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &pki,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=airlock test client CA",
                "-days",
                "2",
            ],
        ]
        .concat(),
    );
    openssl(
        &pki,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
                "-subj",
                "/CN=airlock-client",
            ],
        ]
        .concat(),
    );
    // A v3 certificate for client authentication (webpki refuses v1 certificates).
    std::fs::write(
        pki.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .expect("ext");
    openssl(
        &pki,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "client.ext",
            "-out",
            "client.cert",
            "-days",
            "2",
        ],
    );
    let reg = TestRegistry::start_with(common::RegistryConfig {
        tls: true,
        client_ca: Some(pki.join("ca.pem")),
        ..Default::default()
    });
    let server_ca = reg.tls.as_ref().expect("tls").ca_file.clone();
    // certs.d/HOST:PORT/ with the server's CA and the client certificate, as docker reads it.
    let certs = dir.join("certs.d");
    let host_dir = certs.join(&reg.host);
    std::fs::create_dir_all(&host_dir).expect("certs dir");
    std::fs::copy(&server_ca, host_dir.join("ca.crt")).expect("ca");
    std::fs::copy(pki.join("client.cert"), host_dir.join("client.cert")).expect("cert");
    std::fs::copy(pki.join("client.key"), host_dir.join("client.key")).expect("key");
    let client = airlock::registry::Registry::new(airlock::registry::RegistryOptions {
        certs_dirs: vec![certs.clone()],
        ..Default::default()
    })
    .expect("client");
    let img = push_one(&client, &reg.host, "mtls/app", 34, 3000);
    write_spec(dir, "m", &format!("{}/mtls/app:1", reg.host));
    let certs_flag = certs.display().to_string();
    ok(&common::airlock(
        dir,
        &["lock", "m.yaml", "--certs-dir", &certs_flag],
    ));
    let lock = std::fs::read_to_string(dir.join("m.lock")).expect("lock");
    assert!(lock.contains(&img.manifest.digest().to_string()), "{lock}");
    // The same through the environment override.
    std::fs::remove_file(dir.join("m.lock")).expect("rm");
    ok(&common::airlock_env(
        dir,
        &["lock", "m.yaml"],
        &[("AIRLOCK_CERTS_DIR", &certs_flag)],
    ));
    // The CA alone: the TLS handshake fails for want of a client certificate.
    let ca_only = dir.join("ca-only");
    std::fs::create_dir_all(ca_only.join(&reg.host)).expect("dir");
    std::fs::copy(&server_ca, ca_only.join(&reg.host).join("ca.crt")).expect("ca");
    let out = common::airlock(
        dir,
        &[
            "lock",
            "m.yaml",
            "--certs-dir",
            &ca_only.display().to_string(),
        ],
    );
    // The server ends the handshake over the missing certificate: one error line that says so,
    // a hint naming certs.d and --certs-dir, and no retries (they cannot help).
    let err = common::fails_as(&out, 6, "requires a TLS client certificate (mutual TLS)");
    assert!(err.contains(&reg.host), "{err}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "hint: `{}` requires a client certificate",
            reg.host
        )) && stderr.contains("--certs-dir"),
        "{stderr}"
    );
    // A certificate without its key is named, not ignored.
    std::fs::remove_file(host_dir.join("client.key")).expect("rm key");
    let out = common::airlock(dir, &["lock", "m.yaml", "--certs-dir", &certs_flag]);
    common::fails_with(&out, "no `client.key` beside it");
}

/// A library client for `proxy_host` with `reg`'s credentials, allowed plain HTTP to the proxy
/// and to `reg`'s token server.
fn token_client(reg: &TestRegistry, proxy_host: &str) -> airlock::registry::Registry {
    use airlock::registry::{CredentialStore, Credentials, RegistryOptions, RetryPolicy};
    let mut credentials = CredentialStore::empty();
    let (user, password) = reg.auth.clone().expect("credentials");
    credentials.insert(proxy_host, Credentials::new(user, password));
    airlock::registry::Registry::new(RegistryOptions {
        insecure: vec![
            proxy_host.to_string(),
            reg.token.as_ref().expect("token server").host(),
        ],
        ca_files: Vec::new(),
        certs_dirs: Vec::new(),
        credentials,
        retry: RetryPolicy::default(),
        max_requests: None,
        ..Default::default()
    })
    .expect("client")
}

/// The proxy's fault for `reg`'s token server: tokens older than `ttl` are refused with 401.
fn expire_tokens(reg: &TestRegistry, ttl: std::time::Duration) -> common::proxy::Fault {
    let t = reg.token.as_ref().expect("token server");
    common::proxy::Fault::ExpireTokens {
        ttl,
        realm: t.realm.clone(),
        service: t.service.clone(),
    }
}

#[test]
fn expired_tokens_are_renewed_including_before_a_streamed_upload() {
    use common::proxy::Proxy;
    use std::time::Duration;
    // Tokens live one second; every request takes 1.1 s through the proxy, which refuses a
    // token it first saw a second or more ago: each token serves one request.
    let reg = TestRegistry::start_with(common::RegistryConfig {
        token_auth: Some(("alice".into(), "s3cret".into())),
        token_ttl: Some(1),
        ..Default::default()
    });
    let proxy = Proxy::start_delayed(
        &reg.host,
        expire_tokens(&reg, Duration::from_secs(1)),
        Duration::from_millis(1100),
    );
    let client = token_client(&reg, &proxy.host);
    let repo = Repo::parse(&proxy.host, "app/big").expect("repo");
    let data = bytes::Bytes::from(fixtures::noise(7, 3 << 20));
    let digest = airlock::oci::Digest::of(&data);
    rt().block_on(async {
        let mut upload = client.start_upload(&repo).await.expect("start upload");
        // The streamed PATCH: one attempt, its body cannot be re-sent.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
            .chunks(256 << 10)
            .map(|c| Ok(data.slice_ref(c)))
            .collect();
        upload
            .patch_stream(futures_util::stream::iter(chunks), data.len() as u64)
            .await
            .expect("streamed PATCH with a renewed token");
        upload
            .finish(bytes::Bytes::new(), &digest)
            .await
            .expect("finish after a 401 and a renewed token");
        assert!(
            client
                .blob_exists(&repo, &digest)
                .await
                .expect("HEAD the blob"),
            "the blob is stored"
        );
    });
    assert_eq!(
        proxy.count("PATCH "),
        1,
        "the stream went once and was accepted"
    );
    assert!(
        proxy.rejected.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "some request met an expired token and was renewed: {:?}",
        proxy.log.lock().expect("log")
    );
}

#[test]
fn a_registry_that_refuses_every_token_fails_after_one_renewal() {
    use common::proxy::Proxy;
    let reg = token_registry();
    let proxy = Proxy::start(&reg.host, expire_tokens(&reg, std::time::Duration::ZERO));
    let client = token_client(&reg, &proxy.host);
    let repo = Repo::parse(&proxy.host, "app/web").expect("repo");
    let err = rt()
        .block_on(client.start_upload(&repo))
        .map(|_| ())
        .expect_err("every token refused");
    let msg = err.to_string();
    assert!(msg.contains("401"), "{msg}");
    assert_eq!(msg.lines().count(), 1, "{msg}");
    // Anonymous, then once with a token: no loop.
    assert_eq!(
        proxy.count("POST "),
        2,
        "{:?}",
        proxy.log.lock().expect("log")
    );
}

/// A registry demanding tokens whose token service also trades `refresh` (an OAuth2 refresh
/// token, docker's `identitytoken`), and a bundle from an open registry carrying one image,
/// collected in `dir` as `b.tar.zst`.
fn refresh_token_target(
    dir: &Path,
    refresh: &str,
) -> (TestRegistry, TestRegistry, fixtures::Image) {
    let src = TestRegistry::start();
    let dst = TestRegistry::start_with(common::RegistryConfig {
        token_auth: Some(("alice".into(), "pw-never-given-to-airlock".into())),
        refresh_token: Some(refresh.into()),
        ..Default::default()
    });
    let img = push_one(&src.client(), &src.host, "app", 34, 3000);
    write_spec(dir, "b", &format!("{}/app:1", src.host));
    let sflags = src.cli_flags();
    ok(&common::airlock(dir, &with(&["lock", "b.yaml"], &sflags)));
    ok(&common::airlock(
        dir,
        &with(&["collect", "b.lock", "-o", "b.tar.zst"], &sflags),
    ));
    (src, dst, img)
}

#[test]
fn identity_token_is_traded_by_post_at_the_token_realm_and_a_refused_one_stops_the_import() {
    // `docker login` to a registry whose token service issues refresh tokens stores
    // `auths.HOST.identitytoken`; docker then asks for access tokens by POST
    // grant_type=refresh_token, never with a password. Ours does the same.
    const REFRESH: &str = "rt-3f9c0b-airlock-test";
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    let (_src, dst, img) = refresh_token_target(dir, REFRESH);
    let token = dst.token.as_ref().expect("token server");
    let to = format!("{}/m", dst.host);
    let import = ["import", "b.tar.zst", "--to", &to, "--allow-unsigned"];
    let dflags = reach(&dst);
    let config = |rt: &str| serde_json::json!({"auths": {dst.host.clone(): {"identitytoken": rt}}});

    // A revoked refresh token: one line naming the host, exit 6, nothing pushed.
    let revoked = Helper::install(dir, config("rt-revoked"));
    let out = revoked.run(dir, &with(&import, &dflags));
    let asked = token.requests();
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r == "POST refresh_token -> 401"),
        "only refresh-token grants, all refused: {asked:?}"
    );
    let err = common::fails_as(&out, 6, "identity token stored for it was refused");
    assert!(err.contains(&format!("{}: ", dst.host)), "{err}");
    assert!(
        !err.contains("rt-revoked"),
        "the token is never printed: {err}"
    );
    assert_eq!(dst.stored_blobs(), 0, "something was pushed");

    // The stored token: traded by POST, never basic auth; the image lands byte-exact.
    let stored = Helper::install(dir, config(REFRESH));
    ok(&stored.run(dir, &with(&import, &dflags)));
    let asked = token.requests();
    assert!(
        asked.iter().any(|r| r == "POST refresh_token -> 200")
            && !asked.iter().any(|r| r.starts_with("GET")),
        "{asked:?}"
    );
    assert_eq!(dst.skopeo_raw("m/app:1"), img.manifest.bytes);

    // From a credential helper (user `<token>`, as docker-credential-* return identity
    // tokens): the same grant, here for a pull.
    let helper = Helper::install(dir, serde_json::json!({"credsStore": "test"}));
    helper.holds(&dst.host, "<token>", REFRESH);
    write_spec(dir, "d", &format!("{}/m/app:1", dst.host));
    let before = token.requests().len();
    ok(&helper.run(dir, &with(&["lock", "d.yaml"], &dflags)));
    let lock = std::fs::read_to_string(dir.join("d.lock")).expect("lock");
    assert!(lock.contains(&img.manifest.digest().to_string()), "{lock}");
    let asked = &token.requests()[before..];
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r == "POST refresh_token -> 200"),
        "{asked:?}"
    );
}

#[test]
fn an_import_whose_tokens_expire_mid_run_renews_them_and_lands_byte_exact() {
    use common::proxy::Proxy;
    use std::time::Duration;
    // The whole CLI, not the library: tokens live one second and every request through the
    // proxy takes 1.1 s, so each token outlives at most one request and the proxy refuses it
    // after that (401 with the registry's own challenge), as a registry does with an expired
    // token. The import must renew its way through, blobs and manifests alike.
    let src = TestRegistry::start();
    let dst = TestRegistry::start_with(common::RegistryConfig {
        token_auth: Some(("alice".into(), "s3cret".into())),
        token_ttl: Some(1),
        ..Default::default()
    });
    let proxy = Proxy::start_delayed(
        &dst.host,
        expire_tokens(&dst, Duration::from_secs(1)),
        Duration::from_millis(1100),
    );
    let img = push_one(&src.client(), &src.host, "app", 35, 600 << 10);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    write_spec(dir, "b", &format!("{}/app:1", src.host));
    let sflags = src.cli_flags();
    ok(&common::airlock(dir, &with(&["lock", "b.yaml"], &sflags)));
    ok(&common::airlock(
        dir,
        &with(&["collect", "b.lock", "-o", "b.tar.zst"], &sflags),
    ));
    let to = format!("{}/m", proxy.host);
    let creds = format!("{}=alice:s3cret", proxy.host);
    let token_host = dst.token.as_ref().expect("token server").host();
    let out = common::airlock(
        dir,
        &[
            "import",
            "b.tar.zst",
            "--to",
            &to,
            "--allow-unsigned",
            "--insecure-registry",
            &proxy.host,
            "--insecure-registry",
            &token_host,
            "--creds",
            &creds,
        ],
    );
    ok(&out);
    assert!(
        proxy.rejected.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "some request met an expired token: {:?}",
        proxy.log.lock().expect("log")
    );
    // An independent client, straight to the registry: the manifest byte-exact, every blob
    // there.
    assert_eq!(dst.skopeo_raw("m/app:1"), img.manifest.bytes);
    let copied = dir.join("copied");
    // skopeo checks every blob against its digest as it copies.
    let out = common::skopeo(&[
        "copy".into(),
        "--src-tls-verify=false".into(),
        "--src-creds".into(),
        "alice:s3cret".into(),
        format!("docker://{}/m/app:1", dst.host),
        format!("dir:{}", copied.display()),
    ]);
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
