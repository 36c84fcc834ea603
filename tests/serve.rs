//! `airlock serve` (issue 16, part 1): a read-only registry straight from a signed bundle, read
//! by real clients (skopeo, curl, containerd's ctr, airlock's own lock/collect) and refused or
//! cut short on bad input.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use airlock::oci::Digest;
use airlock::registry::Repo;
use common::fixtures::{self, Blob, Compression, Image};
use common::{airlock, fails_with, ok, rt, which, TestRegistry};

/// Size of the big layer: more than two seekable frames, so ranges start mid-blob.
const BIG: usize = 9 * 1024 * 1024 + 12_345;

/// A signed bundle of `apps/a:1` (a two-platform index with an SBOM referrer on the index) and
/// `apps/b:1` (one image whose uncompressed layer spans three frames).
struct Env {
    work: tempfile::TempDir,
    src: TestRegistry,
    index: Blob,
    platforms: Vec<Image>,
    sbom: Image,
    big: Image,
}

impl Env {
    fn start() -> Env {
        let src = TestRegistry::start();
        let client = src.client();
        let repo = |r: &str| Repo::parse(&src.host, r).expect("repository");
        let platforms = vec![
            fixtures::image(
                vec![fixtures::layer(1, 30_000, Compression::Gzip, false)],
                "linux/amd64",
                false,
            ),
            fixtures::image(
                vec![fixtures::layer(2, 30_000, Compression::Gzip, false)],
                "linux/arm64",
                false,
            ),
        ];
        let index = fixtures::index(&platforms, false);
        let big = fixtures::image(
            vec![fixtures::layer(3, BIG, Compression::None, false)],
            "linux/amd64",
            false,
        );
        let sbom = rt().block_on(async {
            fixtures::push_index(&client, &repo("apps/a"), &platforms, &index, "1").await;
            fixtures::push_image(&client, &repo("apps/b"), &big, Some("1")).await;
            fixtures::push_referrer(&client, &repo("apps/a"), &index)
                .await
                .0
        });
        let work = tempfile::tempdir().expect("tmp");
        let dir = work.path();
        std::fs::write(dir.join("pw"), "correct horse\n").expect("pw");
        for k in ["keys/release", "keys/other"] {
            ok(&airlock(
                dir,
                &["key", "generate", "--out", k, "--password-file", "pw"],
            ));
        }
        std::fs::write(
            dir.join("p.yaml"),
            format!(
                "name: p\nimages:\n  - ref: {0}/apps/a:1\n  - ref: {0}/apps/b:1\n",
                src.host
            ),
        )
        .expect("spec");
        let flags = src.cli_flags();
        let with = |base: &[&str]| {
            let mut a: Vec<&str> = base.to_vec();
            a.extend(flags.iter().map(String::as_str));
            ok(&airlock(dir, &a));
        };
        with(&["lock", "p.yaml"]);
        with(&[
            "collect",
            "p.lock",
            "-o",
            "p.tar.zst",
            "--sign",
            "keys/release.key",
            "--password-file",
            "pw",
        ]);
        Env {
            work,
            src,
            index,
            platforms,
            sbom,
            big,
        }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }
}

/// A running `airlock serve`, killed on drop.
struct Served {
    child: Child,
    addr: String,
    stderr: PathBuf,
}

impl Served {
    /// Starts `airlock serve BUNDLE --listen 127.0.0.1:0 EXTRA...` and reads the address it
    /// prints; `Err` with the output if it exits instead.
    fn start(dir: &Path, bundle: &str, extra: &[&str]) -> Result<Served, Output> {
        let stderr = dir.join(format!("serve-{}.log", common::free_port()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .current_dir(dir)
            .env("HOME", dir)
            .args(["serve", bundle, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("log"))
            .spawn()
            .expect("spawn serve");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read");
        let Some(url) = line.trim().rsplit(' ').next().filter(|_| !line.is_empty()) else {
            let status = child.wait().expect("wait");
            return Err(Output {
                status,
                stdout: Vec::new(),
                stderr: std::fs::read(&stderr).expect("log"),
            });
        };
        let addr = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string();
        Ok(Served {
            child,
            addr,
            stderr,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -s` with `args`: (exit code, headers, body).
fn curl(args: &[&str]) -> (i32, String, Vec<u8>) {
    let out = Command::new(which("curl").expect("curl (Debian package `curl`)"))
        .args(["-s", "-D", "/dev/stderr", "--path-as-is"])
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_lowercase(),
        out.stdout,
    )
}

fn status(headers: &str) -> u16 {
    headers
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn skopeo(args: &[&str]) -> Output {
    common::skopeo(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

#[test]
fn skopeo_and_curl_read_the_bundle_byte_exact() {
    let env = Env::start();
    let dir = env.dir();
    let s = Served::start(dir, "p.tar.zst", &["--trust", "keys/release.pub"]).expect("serve");
    let base = format!("http://{}", s.addr);

    let (_, h, _) = curl(&[&format!("{base}/v2/")]);
    assert_eq!(status(&h), 200, "{h}");
    assert!(
        h.contains("docker-distribution-api-version: registry/2.0"),
        "{h}"
    );

    // Manifests by tag and digest: the exact bytes the source registry held.
    for (reference, blob) in [
        ("apps/a:1".to_string(), &env.index),
        (
            format!("apps/a@{}", env.platforms[1].manifest.digest()),
            &env.platforms[1].manifest,
        ),
        ("apps/b:1".to_string(), &env.big.manifest),
    ] {
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{reference}", s.addr),
        ]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, blob.bytes.as_ref(), "{reference}");
    }
    let (_, h, _) = curl(&["-I", &format!("{base}/v2/apps/a/manifests/1")]);
    assert!(
        h.contains(&format!("docker-content-digest: {}", env.index.digest())),
        "{h}"
    );
    assert!(
        h.contains("content-type: application/vnd.oci.image.index.v1+json"),
        "{h}"
    );
    assert!(
        h.contains(&format!("content-length: {}", env.index.bytes.len())),
        "{h}"
    );

    // Whole images through skopeo: the index with every platform into an OCI layout, and the
    // image with the uncompressed layer into a `dir:` (an OCI layout would recompress it).
    let out = skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}/apps/a:1", s.addr),
        &format!("oci:{}:a", dir.join("copy-a").display()),
    ]);
    assert!(out.status.success(), "{out:?}");
    for blob in std::iter::once(&env.index).chain(
        env.platforms
            .iter()
            .flat_map(|i| [&i.manifest, &i.config].into_iter().chain(i.layers.iter())),
    ) {
        let copied = std::fs::read(dir.join("copy-a/blobs/sha256").join(blob.digest().hex()))
            .expect("copied blob");
        assert_eq!(copied, blob.bytes.as_ref(), "{}", blob.digest());
    }
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/apps/b:1", s.addr),
        &format!("dir:{}", dir.join("copy-b").display()),
    ]);
    assert!(out.status.success(), "{out:?}");
    let layer = &env.big.layers[0];
    let copied = std::fs::read(dir.join("copy-b").join(layer.digest().hex())).expect("layer");
    assert_eq!(copied, layer.bytes.as_ref());

    // Ranges: on the big layer of apps/a's amd64 image, not yet read (verified first), then on
    // the big layer (read whole by skopeo: decoded from the nearest frame).
    let small = &env.platforms[0].layers[0];
    for (blob, repo) in [(small, "apps/a"), (layer, "apps/b")] {
        let url = format!("{base}/v2/{repo}/blobs/{}", blob.digest());
        let n = blob.bytes.len();
        for (range, from, to) in [
            (format!("bytes={}-{}", n / 2, n / 2 + 99), n / 2, n / 2 + 99),
            ("bytes=-10".to_string(), n - 10, n - 1),
            (format!("bytes={}-", n - 5), n - 5, n - 1),
            ("bytes=0-0".to_string(), 0, 0),
        ] {
            let (code, h, body) = curl(&["-H", &format!("Range: {range}"), &url]);
            assert_eq!(code, 0);
            assert_eq!(status(&h), 206, "{range}: {h}");
            assert!(
                h.contains(&format!("content-range: bytes {from}-{to}/{n}")),
                "{h}"
            );
            assert_eq!(body, blob.bytes[from..=to], "{repo} {range}");
        }
        let (_, h, _) = curl(&["-H", &format!("Range: bytes={n}-"), &url]);
        assert_eq!(status(&h), 416, "{h}");
        assert!(h.contains(&format!("content-range: bytes */{n}")), "{h}");
        let (_, h, body) = curl(&[&url]);
        assert_eq!(status(&h), 200);
        assert_eq!(body, blob.bytes.as_ref());
    }

    // Lists, with paging.
    let (_, _, body) = curl(&[&format!("{base}/v2/_catalog")]);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["repositories"], serde_json::json!(["apps/a", "apps/b"]));
    let (_, h, body) = curl(&[&format!("{base}/v2/_catalog?n=1")]);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["repositories"], serde_json::json!(["apps/a"]));
    assert!(
        h.contains("link: </v2/_catalog?n=1&last=apps%2fa>; rel=\"next\""),
        "{h}"
    );
    let (_, _, body) = curl(&[&format!("{base}/v2/_catalog?n=1&last=apps/a")]);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["repositories"], serde_json::json!(["apps/b"]));
    let (_, _, body) = curl(&[&format!("{base}/v2/apps/a/tags/list")]);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let fallback = format!("sha256-{}", env.index.digest().hex());
    assert_eq!(v["tags"], serde_json::json!(["1", fallback]));
    let (_, _, body) = curl(&[&format!("{base}/v2/apps/a/tags/list?n=1&last=1")]);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["tags"], serde_json::json!([fallback]));

    // Referrers of the index: the SBOM, filtered by artifact type.
    let url = format!("{base}/v2/apps/a/referrers/{}", env.index.digest());
    let (_, h, body) = curl(&[&url]);
    assert!(
        h.contains("content-type: application/vnd.oci.image.index.v1+json"),
        "{h}"
    );
    assert!(!h.contains("oci-filters-applied"), "{h}");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["manifests"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        v["manifests"][0]["digest"],
        env.sbom.manifest.digest().as_str()
    );
    assert_eq!(
        v["manifests"][0]["artifactType"],
        "application/vnd.cyclonedx+json"
    );
    let (_, h, body) = curl(&[&format!(
        "{url}?artifactType=application/vnd.cyclonedx%2Bjson"
    )]);
    assert!(h.contains("oci-filters-applied: artifacttype"), "{h}");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["manifests"].as_array().map(Vec::len), Some(1), "{v}");
    let (_, _, body) = curl(&[&format!("{url}?artifactType=text/plain")]);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["manifests"], serde_json::json!([]));

    // Unknown digests, blobs outside their repository, writes, traversal.
    let unknown = Digest::of(b"not in the bundle");
    for (path, code, want) in [
        (format!("/v2/apps/a/blobs/{unknown}"), 404, "BLOB_UNKNOWN"),
        (
            format!("/v2/apps/a/blobs/{}", layer.digest()),
            404,
            "BLOB_UNKNOWN",
        ),
        (
            format!("/v2/apps/a/manifests/{unknown}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/apps/a/manifests/2".to_string(),
            404,
            "MANIFEST_UNKNOWN",
        ),
        ("/v2/apps/c/tags/list".to_string(), 404, "NAME_UNKNOWN"),
        ("/v2/../../etc/manifests/1".to_string(), 400, "NAME_INVALID"),
        (
            "/v2/apps/%2e%2e/a/manifests/1".to_string(),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/apps/a/blobs/sha256:..%2f..%2fx".to_string(),
            400,
            "DIGEST_INVALID",
        ),
    ] {
        let (_, h, body) = curl(&[&format!("{base}{path}")]);
        assert_eq!(status(&h), code, "{path}: {h}");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["errors"][0]["code"], want, "{path}");
    }
    for method in ["PUT", "POST", "PATCH", "DELETE"] {
        for path in [
            "/v2/apps/a/manifests/1".to_string(),
            "/v2/apps/a/blobs/uploads/".to_string(),
            format!("/v2/apps/a/blobs/{}", small.digest()),
        ] {
            let (_, h, body) = curl(&["-X", method, &format!("{base}{path}")]);
            assert_eq!(status(&h), 405, "{method} {path}: {h}");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["errors"][0]["code"], "UNSUPPORTED");
        }
    }
    // Still serving, byte-exact.
    let (_, _, body) = curl(&[&format!("{base}/v2/apps/a/manifests/1")]);
    assert_eq!(body, env.index.bytes.as_ref());
    assert!(!s.log().contains("error"), "{}", s.log());
}

#[test]
fn serves_split_parts_and_over_tls() {
    let env = Env::start();
    let dir = env.dir();
    ok(&airlock(
        dir,
        &[
            "split",
            "p.tar.zst",
            "--size",
            "1MiB",
            "--sign",
            "keys/release.key",
            "--password-file",
            "pw",
            "--out-dir",
            "parts",
        ],
    ));
    let tls = common::Tls::new(dir);
    let cert = tls.cert_file.display().to_string();
    let key = tls.key_file.display().to_string();
    let s = Served::start(
        dir,
        "parts",
        &[
            "--trust",
            "keys/release.pub",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    )
    .expect("serve parts");
    let out = skopeo(&[
        "copy",
        "--src-cert-dir",
        &dir.join("certs").display().to_string(),
        &format!("docker://{}/apps/b:1", s.addr),
        &format!("dir:{}", dir.join("copy").display()),
    ]);
    // skopeo wants the CA as `ca.crt` in a directory.
    assert!(!out.status.success(), "no CA given yet: {out:?}");
    std::fs::create_dir_all(dir.join("certs")).expect("certs");
    std::fs::copy(&tls.ca_file, dir.join("certs/ca.crt")).expect("ca");
    let out = skopeo(&[
        "copy",
        "--src-cert-dir",
        &dir.join("certs").display().to_string(),
        &format!("docker://{}/apps/b:1", s.addr),
        &format!("dir:{}", dir.join("copy").display()),
    ]);
    assert!(out.status.success(), "{out:?}");
    let layer = &env.big.layers[0];
    let copied = std::fs::read(dir.join("copy").join(layer.digest().hex())).expect("layer");
    assert_eq!(copied, layer.bytes.as_ref());
    let (code, h, body) = curl(&[
        "--cacert",
        &tls.ca_file.display().to_string(),
        "-H",
        "Range: bytes=5000000-5000999",
        &format!("https://{}/v2/apps/b/blobs/{}", s.addr, layer.digest()),
    ]);
    assert_eq!((code, status(&h)), (0, 206), "{h}");
    assert_eq!(body, layer.bytes[5_000_000..=5_000_999]);
}

#[test]
fn airlock_locks_and_collects_from_serve_the_same_content() {
    let env = Env::start();
    let dir = env.dir();
    let s = Served::start(dir, "p.tar.zst", &["--trust", "keys/release.pub"]).expect("serve");
    std::fs::write(
        dir.join("again.yaml"),
        format!(
            "name: p\nimages:\n  - ref: {0}/apps/a:1\n  - ref: {0}/apps/b:1\n",
            s.addr
        ),
    )
    .expect("spec");
    let insecure = ["--insecure-registry", s.addr.as_str()];
    ok(&airlock(
        dir,
        &[&["lock", "again.yaml"][..], &insecure].concat(),
    ));
    ok(&airlock(
        dir,
        &[
            &["collect", "again.lock", "-o", "again.tar.zst"][..],
            &insecure,
        ]
        .concat(),
    ));
    ok(&airlock(
        dir,
        &["verify", "again.tar.zst", "--allow-unsigned"],
    ));
    let blobs = |bundle: &str| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&airlock(dir, &["inspect", bundle, "--format", "json"])))
                .expect("json");
        let mut d: Vec<String> = v["manifest"]["blobs"]
            .as_array()
            .expect("blobs")
            .iter()
            .map(|b| b["digest"].as_str().expect("digest").to_string())
            .collect();
        d.sort();
        d
    };
    // `serve` answers the referrers API, so `lock` finds the SBOM there and carries it by
    // digest; the referrers tag-schema index the first bundle carried (its source had no API)
    // is the only thing not carried again.
    let first: serde_json::Value = serde_json::from_str(&ok(&airlock(
        dir,
        &["inspect", "p.tar.zst", "--format", "json"],
    )))
    .expect("json");
    let fallback_indexes: Vec<String> = first["manifest"]["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter(|a| {
            a["tag"]
                .as_str()
                .is_some_and(|t| t.starts_with("sha256-") && !t.contains('.'))
        })
        .map(|a| a["digest"].as_str().expect("digest").to_string())
        .collect();
    let (again, before) = (blobs("again.tar.zst"), blobs("p.tar.zst"));
    assert!(
        again.iter().all(|d| before.contains(d)),
        "{again:?} vs {before:?}"
    );
    let missing: Vec<&String> = before.iter().filter(|d| !again.contains(d)).collect();
    assert!(
        missing.iter().all(|d| fallback_indexes.contains(d)),
        "{missing:?} not carried again (fallback indexes: {fallback_indexes:?})"
    );
    assert!(again.contains(&env.sbom.manifest.digest().to_string()));
}

#[test]
fn refuses_unsigned_untrusted_and_altered_bundles() {
    let env = Env::start();
    let dir = env.dir();
    // Unsigned: a collect without --sign.
    let flags = env.src.cli_flags();
    let mut args = vec!["collect", "p.lock", "-o", "unsigned.tar.zst"];
    args.extend(flags.iter().map(String::as_str));
    ok(&airlock(dir, &args));
    let refused = |bundle: &str, extra: &[&str], needle: &str| {
        let out = Served::start(dir, bundle, extra)
            .err()
            .expect("serve must refuse");
        fails_with(&out, needle);
    };
    refused(
        "unsigned.tar.zst",
        &["--trust", "keys/release.pub"],
        "the bundle is not signed",
    );
    refused(
        "p.tar.zst",
        &["--trust", "keys/other.pub"],
        "refused before reading any blob",
    );
    refused("p.tar.zst", &[], "no trusted key given");

    // A manifest altered inside a re-compressed bundle: refused at start.
    let tar = zstd::decode_all(&std::fs::read(dir.join("p.tar.zst")).expect("bundle")[..])
        .expect("decode");
    let write = |name: &str, tar: &[u8]| {
        std::fs::write(dir.join(name), zstd::encode_all(tar, 1).expect("encode")).expect("write")
    };
    let at = |needle: &[u8]| {
        tar.windows(needle.len())
            .position(|w| w == needle)
            .expect("content in the bundle")
    };
    let mut bad = tar.clone();
    let i = at(&env.platforms[0].manifest.bytes[..]);
    bad[i + 10] ^= 1;
    write("bad-manifest.tar.zst", &bad);
    refused(
        "bad-manifest.tar.zst",
        &["--trust", "keys/release.pub"],
        &format!(
            "manifest {}: digest mismatch",
            env.platforms[0].manifest.digest()
        ),
    );

    // A layer altered: the bundle is served, but that blob's responses are cut short, whole or
    // ranged, and the operator is told; the untouched blobs are served.
    let mut bad = tar.clone();
    let layer = &env.big.layers[0];
    let i = at(&layer.bytes[..4096]);
    bad[i + layer.bytes.len() - 3] ^= 1;
    write("bad-layer.tar.zst", &bad);
    let s =
        Served::start(dir, "bad-layer.tar.zst", &["--trust", "keys/release.pub"]).expect("serve");
    let url = format!("http://{}/v2/apps/b/blobs/{}", s.addr, layer.digest());
    for (range, len) in [
        (None, layer.bytes.len()),
        (Some("Range: bytes=0-99"), 100),
        (Some("Range: bytes=-10"), 10),
    ] {
        let mut args = vec![url.as_str()];
        if let Some(r) = range {
            args.splice(0..0, ["-H", r]);
        }
        let (code, h, body) = curl(&args);
        assert_ne!(
            code, 0,
            "{range:?}: curl must see the response cut short ({h})"
        );
        assert!(
            h.contains(&format!("content-length: {len}")),
            "{range:?}: {h}"
        );
        assert!(body.len() < len, "{range:?}: {} of {len} bytes", body.len());
    }
    assert!(
        s.log()
            .contains(&format!("blob {}: digest mismatch", layer.digest())),
        "{}",
        s.log()
    );
    let (code, _, body) = curl(&[&format!(
        "http://{}/v2/apps/b/blobs/{}",
        s.addr,
        env.big.config.digest()
    )]);
    assert_eq!((code, body), (0, env.big.config.bytes.to_vec()));
    // This bundle is one plain zstd frame (as bundles written before seekable frames are).
    assert!(s.log().contains("predates seekable frames"), "{}", s.log());
}

/// containerd's `ctr` pulls an image from `airlock serve` inside a network namespace with only
/// loopback.
#[test]
fn containerd_pulls_from_serve() {
    for t in ["containerd", "ctr", "unshare", "ip"] {
        assert!(
            which(t).is_some(),
            "`{t}` not found: scripts/test.sh installs it"
        );
    }
    let env = Env::start();
    let dir = env.dir();
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
    let port = common::free_port();
    let sock = ctd.join("c.sock");
    let ctr = format!("ctr -a {} -n airlock-test", sock.display());
    let script = format!(
        "set -u\nip link set lo up\n\
         {airlock} serve p.tar.zst --trust keys/release.pub --listen 127.0.0.1:{port} >serve.out 2>serve.err &\nSRV=$!\n\
         containerd --config {cfg} >ctd.log 2>&1 &\nCTD=$!\n\
         trap 'kill $SRV $CTD 2>/dev/null; wait 2>/dev/null' EXIT\n\
         for i in $(seq 100); do [ -S {sock} ] && (echo >/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done\n\
         {ctr} image pull --plain-http --snapshotter native --platform linux/arm64 127.0.0.1:{port}/apps/a:1 || exit 10\n\
         {ctr} image pull --plain-http --snapshotter native 127.0.0.1:{port}/apps/b:1 || exit 11\n\
         {ctr} image ls\n",
        airlock = env!("CARGO_BIN_EXE_airlock"),
        cfg = ctd.join("config.toml").display(),
        sock = sock.display(),
    );
    let out = Command::new("unshare")
        .args(["-n", "bash", "-c", &script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let text = format!(
        "exit {:?}\nstdout: {}\nstderr: {}\nserve: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("serve.err")).unwrap_or_default()
    );
    assert!(out.status.success(), "{text}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&format!("127.0.0.1:{port}/apps/a:1"))
            && listed.contains(env.index.digest().as_str()),
        "{text}"
    );
    assert!(
        listed.contains(env.big.manifest.digest().as_str()),
        "{text}"
    );
}
