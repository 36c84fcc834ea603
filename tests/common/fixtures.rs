//! Deterministic fixture content: layers, configs, manifests, indexes and Helm charts built by
//! our own code, byte-identical on every run.

use std::io::Write;

use airlock::oci::{media, Digest};
use airlock::registry::{Registry, Repo};
use bytes::Bytes;
use serde_json::json;

/// Pseudo-random bytes from a seed (xorshift), so layers are incompressible but reproducible.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An uncompressed tar holding the given files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).expect("path");
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

/// A blob with its descriptor fields.
#[derive(Clone, Debug)]
pub struct Blob {
    pub bytes: Bytes,
    pub media_type: String,
}

impl Blob {
    pub fn new(bytes: Vec<u8>, media_type: &str) -> Blob {
        Blob {
            bytes: Bytes::from(bytes),
            media_type: media_type.to_string(),
        }
    }
    pub fn digest(&self) -> Digest {
        Digest::of(&self.bytes)
    }
    pub fn descriptor(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len()})
    }
}

/// How a layer is compressed.
#[derive(Clone, Copy)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// A layer holding one file of `size` noise bytes.
pub fn layer(seed: u64, size: usize, c: Compression, docker: bool) -> (Blob, Digest) {
    let tar = tar_of(&[(&format!("data/file-{seed}"), &noise(seed, size))]);
    let diff_id = Digest::of(&tar);
    let blob = match (c, docker) {
        (Compression::Gzip, true) => Blob::new(gzip(&tar), media::DOCKER_LAYER_GZIP),
        (Compression::Gzip, false) => Blob::new(gzip(&tar), media::OCI_LAYER_GZIP),
        (Compression::Zstd, _) => Blob::new(zstd(&tar), media::OCI_LAYER_ZSTD),
        (Compression::None, _) => Blob::new(tar, media::OCI_LAYER_TAR),
    };
    (blob, diff_id)
}

/// An image: config, layers and the manifest bytes.
#[derive(Clone, Debug)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Blob,
    pub platform: (String, String, Option<String>),
}

/// Builds an image from layers for a platform (`linux/amd64`, `linux/arm64/v8`).
pub fn image(layers: Vec<(Blob, Digest)>, platform: &str, docker: bool) -> Image {
    let parts: Vec<&str> = platform.split('/').collect();
    let (os, arch, variant) = (
        parts[0].to_string(),
        parts[1].to_string(),
        parts.get(2).map(|v| v.to_string()),
    );
    let diff_ids: Vec<Digest> = layers.iter().map(|(_, d)| d.clone()).collect();
    let mut cfg = json!({
        "architecture": arch,
        "os": os,
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "created": "1970-01-01T00:00:00Z",
    });
    if let Some(v) = &variant {
        cfg["variant"] = json!(v);
    }
    let config = Blob::new(
        serde_json::to_vec(&cfg).expect("json"),
        if docker {
            media::DOCKER_CONFIG
        } else {
            media::OCI_CONFIG
        },
    );
    let layer_blobs: Vec<Blob> = layers.into_iter().map(|(b, _)| b).collect();
    let mt = if docker {
        media::DOCKER_MANIFEST
    } else {
        media::OCI_MANIFEST
    };
    let m = json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": config.descriptor(),
        "layers": layer_blobs.iter().map(|l| l.descriptor()).collect::<Vec<_>>(),
    });
    Image {
        manifest: Blob::new(serde_json::to_vec_pretty(&m).expect("json"), mt),
        config,
        layers: layer_blobs,
        platform: (os, arch, variant),
    }
}

/// A linux/amd64 OCI image of one gzip layer of `size` noise bytes from `seed`.
pub fn small_image(seed: u64, size: usize) -> Image {
    image(
        vec![layer(seed, size, Compression::Gzip, false)],
        "linux/amd64",
        false,
    )
}

/// An index (or Docker manifest list) over images.
pub fn index(images: &[Image], docker: bool) -> Blob {
    let mt = if docker {
        media::DOCKER_MANIFEST_LIST
    } else {
        media::OCI_INDEX
    };
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|i| {
            let mut d = i.manifest.descriptor();
            let mut p = json!({"os": i.platform.0, "architecture": i.platform.1});
            if let Some(v) = &i.platform.2 {
                p["variant"] = json!(v);
            }
            d["platform"] = p;
            d
        })
        .collect();
    Blob::new(
        serde_json::to_vec_pretty(
            &json!({"schemaVersion": 2, "mediaType": mt, "manifests": manifests}),
        )
        .expect("json"),
        mt,
    )
}

/// Pushes an image's blobs and manifest (by digest, then by `tag` if given).
pub async fn push_image(reg: &Registry, repo: &Repo, img: &Image, tag: Option<&str>) {
    for b in std::iter::once(&img.config).chain(img.layers.iter()) {
        if !reg.blob_exists(repo, &b.digest()).await.expect("head") {
            reg.push_blob_bytes(repo, &b.digest(), b.bytes.clone())
                .await
                .expect("push blob");
        }
    }
    let d = img.manifest.digest();
    reg.put_manifest(repo, &d, &img.manifest.bytes, &img.manifest.media_type)
        .await
        .expect("push manifest");
    if let Some(t) = tag {
        let t: airlock::oci::Tag = t.parse().expect("tag");
        reg.put_manifest(repo, &t, &img.manifest.bytes, &img.manifest.media_type)
            .await
            .expect("tag");
    }
}

/// Pushes an index with all its images.
pub async fn push_index(reg: &Registry, repo: &Repo, images: &[Image], idx: &Blob, tag: &str) {
    for i in images {
        push_image(reg, repo, i, None).await;
    }
    reg.put_manifest(repo, idx.digest(), &idx.bytes, &idx.media_type)
        .await
        .expect("push index");
    let tag: airlock::oci::Tag = tag.parse().expect("tag");
    reg.put_manifest(repo, &tag, &idx.bytes, &idx.media_type)
        .await
        .expect("tag index");
}

/// A Helm chart `.tgz` (`NAME/Chart.yaml`, `values.yaml`, a template).
pub fn chart_tgz(name: &str, version: &str) -> Vec<u8> {
    let chart_yaml = format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: test chart\ntype: application\nappVersion: \"1.0\"\n");
    let tar = tar_of(&[
        (&format!("{name}/Chart.yaml"), chart_yaml.as_bytes()),
        (&format!("{name}/values.yaml"), b"replicaCount: 1\n"),
        (
            &format!("{name}/templates/configmap.yaml"),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        ),
    ]);
    gzip(&tar)
}

/// Writes an HTTP chart repository (`index.yaml` + `.tgz`) into `dir`.
pub fn write_chart_repo(dir: &std::path::Path, name: &str, version: &str) -> Digest {
    write_chart_repo_tgz(dir, name, version, &chart_tgz(name, version))
}

/// Writes an HTTP chart repository serving the given chart archive.
pub fn write_chart_repo_tgz(
    dir: &std::path::Path,
    name: &str,
    version: &str,
    tgz: &[u8],
) -> Digest {
    let d = Digest::of(tgz);
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join(format!("{name}-{version}.tgz")), tgz).expect("write tgz");
    let index = format!(
        "apiVersion: v1\nentries:\n  {name}:\n  - name: {name}\n    version: {version}\n    digest: {}\n    urls:\n    - {name}-{version}.tgz\n  - name: {name}\n    version: 0.0.1\n    urls:\n    - {name}-0.0.1.tgz\ngenerated: \"2026-01-01T00:00:00Z\"\n",
        d.hex()
    );
    std::fs::write(dir.join("index.yaml"), index).expect("write index");
    d
}

/// An OCI Helm chart pushed to a registry, as `helm push` lays it out.
pub async fn push_oci_chart(reg: &Registry, repo: &Repo, name: &str, version: &str) -> Digest {
    push_oci_chart_tgz(reg, repo, name, version, chart_tgz(name, version)).await
}

/// A given chart archive pushed as an OCI Helm chart, as `helm push` lays it out.
pub async fn push_oci_chart_tgz(
    reg: &Registry,
    repo: &Repo,
    name: &str,
    version: &str,
    tgz: Vec<u8>,
) -> Digest {
    push_oci_chart_claiming(reg, repo, name, version, tgz, None).await
}

/// [`push_oci_chart_tgz`] whose manifest declares `claimed_size` for the chart layer (the blob
/// pushed is the real one), to test limits applied before download.
pub async fn push_oci_chart_claiming(
    reg: &Registry,
    repo: &Repo,
    name: &str,
    version: &str,
    tgz: Vec<u8>,
    claimed_size: Option<u64>,
) -> Digest {
    let tgz = Blob::new(tgz, media::HELM_CHART);
    let mut layer = tgz.descriptor();
    if let Some(n) = claimed_size {
        layer["size"] = json!(n);
    }
    let config = Blob::new(
        serde_json::to_vec(&json!({"apiVersion": "v2", "name": name, "version": version}))
            .expect("json"),
        media::HELM_CONFIG,
    );
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer],
        "annotations": {"org.opencontainers.image.title": name, "org.opencontainers.image.version": version},
    });
    let img = Image {
        manifest: Blob::new(serde_json::to_vec(&m).expect("json"), media::OCI_MANIFEST),
        config,
        layers: vec![tgz],
        platform: ("".into(), "".into(), None),
    };
    push_image(reg, repo, &img, Some(version)).await;
    img.manifest.digest()
}

/// A cosign-style signature manifest for `subject` (simple-signing payload layer with the
/// signature annotation), pushed under the tag `sha256-<hex>.sig`. `claimed_size` overrides the
/// layer size the manifest declares (to test limits on signature material).
pub async fn push_signature(
    reg: &Registry,
    repo: &Repo,
    subject: &Digest,
    claimed_size: Option<u64>,
) -> Image {
    push_signed(reg, repo, subject, claimed_size, None).await
}

/// [`push_signature`] with a real ECDSA signature over the payload when `key` is given.
pub async fn push_signed(
    reg: &Registry,
    repo: &Repo,
    subject: &Digest,
    claimed_size: Option<u64>,
    key: Option<&airlock::trust::keys::SigningKey>,
) -> Image {
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": format!("{repo}")},
            "image": {"docker-manifest-digest": subject},
            "type": "cosign container image signature"
        },
        "optional": null
    });
    let layer = Blob::new(
        serde_json::to_vec(&payload).expect("json"),
        "application/vnd.dev.cosign.simplesigning.v1+json",
    );
    let config = Blob::new(
        br#"{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
        media::OCI_CONFIG,
    );
    let mut layer_desc = layer.descriptor();
    if let Some(n) = claimed_size {
        layer_desc["size"] = json!(n);
    }
    let sig = match key {
        Some(k) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(k.sign(&layer.bytes))
        }
        None => "MEUCIQDtest".to_string(),
    };
    layer_desc["annotations"] = json!({"dev.cosignproject.cosign/signature": sig});
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer_desc],
    });
    let img = Image {
        manifest: Blob::new(serde_json::to_vec(&m).expect("json"), media::OCI_MANIFEST),
        config,
        layers: vec![layer],
        platform: ("".into(), "".into(), None),
    };
    let tag = format!("sha256-{}.sig", subject.hex());
    push_image(reg, repo, &img, Some(&tag)).await;
    img
}

/// An OCI 1.1 referrer (an SBOM artifact whose `subject` is `subject`) and the referrers tag
/// schema's fallback index `sha256-<hex>` listing it, as registries without the referrers API
/// hold them.
pub async fn push_referrer(reg: &Registry, repo: &Repo, subject: &Blob) -> (Image, Blob) {
    push_referrer_numbered(reg, repo, subject, 1).await
}

/// An SBOM referrer of `subject` whose `version` is `n`: distinct referrers of one subject, as
/// several tools would leave them.
pub fn sbom_numbered(subject: &Blob, n: u32) -> Image {
    sbom_referrer(
        subject,
        format!(r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","version":{n},"components":[]}}"#)
            .into_bytes(),
    )
}

/// A CycloneDX SBOM artifact of content `sbom` whose `subject` is `subject`, as a publisher
/// would attach it (`oras attach --artifact-type application/vnd.cyclonedx+json`).
pub fn sbom_referrer(subject: &Blob, sbom: Vec<u8>) -> Image {
    let sbom = Blob::new(sbom, "application/vnd.cyclonedx+json");
    let config = Blob::new(b"{}".to_vec(), media::OCI_EMPTY);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": "application/vnd.cyclonedx+json",
        "config": config.descriptor(),
        "layers": [sbom.descriptor()],
        "subject": subject.descriptor(),
    });
    Image {
        manifest: Blob::new(serde_json::to_vec(&m).expect("json"), media::OCI_MANIFEST),
        config,
        layers: vec![sbom],
        platform: ("".into(), "".into(), None),
    }
}

/// Like [`push_referrer`], with [`sbom_numbered`]`(subject, n)`.
pub async fn push_referrer_numbered(
    reg: &Registry,
    repo: &Repo,
    subject: &Blob,
    n: u32,
) -> (Image, Blob) {
    let art = sbom_numbered(subject, n);
    push_image(reg, repo, &art, None).await;
    let mut d = art.manifest.descriptor();
    d["artifactType"] = json!("application/vnd.cyclonedx+json");
    let idx = Blob::new(
        serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [d]}),
        )
        .expect("json"),
        media::OCI_INDEX,
    );
    let tag = airlock::oci::Tag::for_subject(&subject.digest(), "");
    reg.put_manifest(repo, &tag, &idx.bytes, &idx.media_type)
        .await
        .expect("push referrers index");
    (art, idx)
}

/// A file of the real test data (`tests/data/REL`).
pub fn test_data(rel: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// An image whose layers (bottom first, gzip) hold the given files, for scanning.
pub fn files_image(layers: &[Vec<(&str, Vec<u8>)>], platform: &str) -> Image {
    let built: Vec<(Blob, Digest)> = layers
        .iter()
        .map(|files| {
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, &b[..])).collect();
            let tar = tar_of(&refs);
            let diff_id = Digest::of(&tar);
            (Blob::new(gzip(&tar), media::OCI_LAYER_GZIP), diff_id)
        })
        .collect();
    image(built, platform, false)
}

const ALPINE_318: &str = "packages/alpine/osv-scalibr-alpine-3.18";

/// The files of an Alpine 3.18.0 root with osv-scalibr's real apk database (15 packages,
/// musl 1.2.4-r0: ALPINE-CVE-2025-26519, HIGH, fixed in 1.2.4-r3).
pub fn alpine_318_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "etc/os-release",
            test_data(&format!("{ALPINE_318}/etc/os-release")),
        ),
        ("etc/alpine-release", b"3.18.0\n".to_vec()),
        (
            "etc/apk/repositories",
            b"https://dl-cdn.alpinelinux.org/alpine/v3.18/main\n".to_vec(),
        ),
        (
            "lib/apk/db/installed",
            test_data(&format!("{ALPINE_318}/lib/apk/db/installed")),
        ),
    ]
}

/// The files of a distroless-style Debian 9 root: `libssl1.1` (source openssl
/// 1.1.0l-1~deb9u5: DLA-3008-1, severity unknown, fixed in 1.1.0l-1~deb9u6) and `tzdata`, one
/// `status.d` file each.
pub fn debian9_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "etc/os-release",
            b"ID=debian\nVERSION_ID=\"9\"\nVERSION_CODENAME=stretch\n".to_vec(),
        ),
        (
            "var/lib/dpkg/status.d/libssl1.1",
            b"Package: libssl1.1\nArchitecture: arm64\nSource: openssl\nVersion: 1.1.0l-1~deb9u5\n"
                .to_vec(),
        ),
        (
            "var/lib/dpkg/status.d/tzdata",
            b"Package: tzdata\nArchitecture: all\nVersion: 2021a-0+deb9u4\n".to_vec(),
        ),
    ]
}
