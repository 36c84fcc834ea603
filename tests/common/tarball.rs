//! Re-packing a bundle: its tar entries, headers kept byte for byte, so a test can change
//! exactly one thing and pack it again.

use std::path::Path;

use airlock::oci::{media, Digest};

/// One tar entry of a bundle, header kept byte for byte.
#[derive(Clone)]
pub struct Ent {
    pub header: tar::Header,
    pub data: Vec<u8>,
}

impl Ent {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.header.path_bytes()).into_owned()
    }

    /// An entry with `name` written raw into the header, so names `tar` would refuse to write
    /// (`../evil`, `/abs`) can be made.
    pub fn raw(name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Ent {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().expect("gnu header");
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(kind);
        if let Some(l) = link {
            header.set_link_name(l).expect("link name");
        }
        header.set_cksum();
        Ent {
            header,
            data: data.to_vec(),
        }
    }

    pub fn set_data(&mut self, data: Vec<u8>) {
        self.header.set_size(data.len() as u64);
        self.header.set_cksum();
        self.data = data;
    }
}

pub fn unpack(bundle: &Path) -> Vec<Ent> {
    let file = std::fs::File::open(bundle).expect("open bundle");
    let dec = zstd::stream::read::Decoder::new(file).expect("zstd");
    let mut archive = tar::Archive::new(dec);
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).expect("read entry");
            Ent {
                header: e.header().clone(),
                data,
            }
        })
        .collect()
}

pub fn pack(entries: &[Ent]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        b.append(&e.header, &e.data[..]).expect("append");
    }
    zstd::encode_all(&b.into_inner().expect("tar")[..], 3).expect("zstd")
}

/// [`pack`] with seekable frames, as airlock writes bundles (a frame ended before every entry
/// and every 4 MiB, each frame's size and checksum recorded): what `import` reads large blobs
/// from by offset. A changed byte gets a good frame checksum, so only a digest catches it.
pub fn pack_seekable(entries: &[Ent]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = airlock::bundle::seekable::FrameWriter::new(Vec::new(), 1, 0).expect("writer");
    for e in entries {
        w.end_frame().expect("frame");
        w.write_all(e.header.as_bytes()).expect("header");
        w.write_all(&e.data).expect("data");
        let pad = (512 - e.data.len() % 512) % 512;
        w.write_all(&vec![0u8; pad]).expect("padding");
    }
    w.end_frame().expect("frame");
    w.write_all(&[0u8; 1024]).expect("end of archive");
    w.finish().expect("finish")
}

pub fn position(entries: &[Ent], name: &str) -> usize {
    entries
        .iter()
        .position(|e| e.name() == name)
        .unwrap_or_else(|| panic!("no entry `{name}`"))
}

pub fn blob_entry(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// The blobs `airlock.json` lists, in entry order: (digest, is a manifest).
pub fn listed_blobs(entries: &[Ent]) -> Vec<(Digest, bool)> {
    let m: serde_json::Value = serde_json::from_slice(&entries[0].data).expect("airlock.json");
    m["blobs"]
        .as_array()
        .expect("blobs")
        .iter()
        .map(|b| {
            (
                b["digest"]
                    .as_str()
                    .expect("digest")
                    .parse()
                    .expect("digest"),
                media::is_manifest(b["media_type"].as_str().expect("media type")),
            )
        })
        .collect()
}

/// A one-image bundle made by hand, no registry needed: `airlock.json`, `oci-layout`,
/// `index.json`, the image manifest, its config and one uncompressed tar layer of `files`.
pub fn offline_bundle(files: &[(&str, &[u8])]) -> Vec<Ent> {
    use serde_json::json;
    let layer = super::fixtures::tar_of(files);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer)]},
    }))
    .expect("json");
    let config_type = "application/vnd.oci.image.config.v1+json";
    let layer_type = "application/vnd.oci.image.layer.v1.tar";
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": Digest::of(&config), "size": config.len()},
        "layers": [{"mediaType": layer_type, "digest": Digest::of(&layer), "size": layer.len()}],
    }))
    .expect("json");
    let mdigest = Digest::of(&manifest);
    let mut others = [(config, config_type), (layer, layer_type)];
    others.sort_by_key(|(b, _)| (b.len(), Digest::of(b)));
    let entry =
        |b: &[u8], t: &str| json!({"digest": Digest::of(b), "size": b.len(), "media_type": t});
    let mut blobs = vec![entry(&manifest, media::OCI_MANIFEST)];
    blobs.extend(others.iter().map(|(b, t)| entry(b, t)));
    let airlock_json = serde_json::to_vec_pretty(&json!({
        "format": "airlock.bundle/v1", "name": "offline", "created": "2026-01-01T00:00:00Z",
        "sequence": 1, "tool": "test", "lock_digest": Digest::of(b"lock"),
        "artifacts": [{"kind": "image", "source": "r.example/app:1", "registry": "r.example",
                       "repository": "app", "tag": "1", "digest": mdigest,
                       "media_type": media::OCI_MANIFEST, "size": manifest.len()}],
        "blobs": blobs,
    }))
    .expect("json");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": media::OCI_MANIFEST, "digest": mdigest, "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "r.example/app:1"}}],
    }))
    .expect("json");
    let reg = tar::EntryType::Regular;
    let mut out = vec![
        Ent::raw("airlock.json", reg, None, &airlock_json),
        Ent::raw(
            "oci-layout",
            reg,
            None,
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        ),
        Ent::raw("index.json", reg, None, &index),
        Ent::raw(&blob_entry(&mdigest), reg, None, &manifest),
    ];
    for (b, _) in &others {
        out.push(Ent::raw(&blob_entry(&Digest::of(b)), reg, None, b));
    }
    out
}
