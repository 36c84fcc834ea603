//! Bad inputs and registry faults (issue 2). Every bad bundle, stale lock or misbehaving registry
//! must give exactly one clear `error:` line that names what and where, exit code 1, and leave
//! nothing tagged in the target; transient faults must be survived.
//!
//! Bad bundles are made from one good bundle by re-packing it with exactly one thing changed.

mod common;

use common::rt;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;

use airlock::oci::{media, Digest};
use airlock::registry::Repo;
use common::fixtures::{self, Blob, Compression, Image};
use common::proxy::{Fault, Proxy};
use common::tarball::{blob_entry, listed_blobs, pack, pack_seekable, position, unpack, Ent};
use common::{airlock, fails_with, ok, TestRegistry};

/// The layer both images share: the largest blob, the one cut mid-download. Big enough that the
/// proxy has flushed part of the body before the cut (hyper buffers up to ~400 KB), so the
/// client sees a body cut off mid-way rather than a connection closed before the headers.
const SHARED_LAYER_BYTES: usize = 2_000_000;
/// Where the proxy cuts blob bodies: inside the shared layer, above every other blob.
const CUT_AFTER: usize = 1_000_000;
/// Target repositories of the two images, under the import prefix.
const TARGET_REPOS: [&str; 2] = ["apps/a", "apps/b"];

/// A source registry holding two images that share a layer (otherwise a few KB each), and a
/// work directory.
struct Env {
    src: TestRegistry,
    work: tempfile::TempDir,
    a: Image,
    b: Image,
}

impl Env {
    fn start() -> Env {
        Env::with_layers([SHARED_LAYER_BYTES, 2000, 3000])
    }

    /// Two images: a shared layer of `sizes[0]` bytes, then one of their own each.
    fn with_layers(sizes: [usize; 3]) -> Env {
        let src = TestRegistry::start();
        let shared = fixtures::layer(1, sizes[0], Compression::Gzip, false);
        let a = fixtures::image(
            vec![
                shared.clone(),
                fixtures::layer(2, sizes[1], Compression::Gzip, false),
            ],
            "linux/amd64",
            false,
        );
        let b = fixtures::image(
            vec![
                shared,
                fixtures::layer(3, sizes[2], Compression::Gzip, false),
            ],
            "linux/amd64",
            false,
        );
        push(&src, "apps/a", &a);
        push(&src, "apps/b", &b);
        Env {
            src,
            work: tempfile::tempdir().expect("tmp"),
            a,
            b,
        }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Writes a spec for both images as served by `host`, pinned by digest or by tag only.
    fn spec(&self, file: &str, host: &str, pinned: bool) -> PathBuf {
        let pin = |img: &Image| {
            if pinned {
                format!("@{}", img.manifest.digest())
            } else {
                String::new()
            }
        };
        let path = self.dir().join(file);
        std::fs::write(
            &path,
            format!(
                "name: small\nimages:\n  - ref: {host}/apps/a:1{}\n  - ref: {host}/apps/b:1{}\n",
                pin(&self.a),
                pin(&self.b)
            ),
        )
        .expect("spec");
        path
    }

    /// Locks and collects the good bundle through the CLI, as a release engineer would.
    fn collect_good(&self, name: &str) -> PathBuf {
        let flags = self.src.cli_flags();
        self.spec("small.yaml", &self.src.host, false);
        ok(&run(self.dir(), &["lock", "small.yaml"], &flags));
        let out = self.dir().join(name);
        let o = out.to_str().expect("utf-8");
        ok(&run(
            self.dir(),
            &["collect", "small.lock", "-o", o, "--cache", "cache-good"],
            &flags,
        ));
        ok(&run(self.dir(), &["verify", o], &[]));
        out
    }

    /// The shared layer's digest and its position in pull order (collect pulls by digest).
    fn shared_layer(&self) -> (Digest, usize) {
        let shared = self.a.layers[0].digest();
        // Collect downloads in pack order: by (size, digest).
        let mut blobs: Vec<(usize, String)> = [&self.a, &self.b]
            .iter()
            .flat_map(|i| std::iter::once(&i.config).chain(i.layers.iter()))
            .map(|b| (b.bytes.len(), b.digest().to_string()))
            .collect();
        blobs.sort();
        blobs.dedup();
        let pos = blobs
            .iter()
            .position(|(_, d)| *d == shared.to_string())
            .expect("shared layer");
        (shared, pos)
    }
}

fn push(reg: &TestRegistry, repo: &str, img: &Image) {
    let client = reg.client();
    rt().block_on(fixtures::push_image(
        &client,
        &Repo::parse(&reg.host, repo).expect("repository"),
        img,
        Some("1"),
    ));
}

/// Runs the CLI with `base` then `flags`.
/// Runs airlock. These bundles are unsigned: the cases here are about structure and
/// registries, so `verify` and `import` get `--allow-unsigned` (the signature gate has its
/// own tests in tests/mirror.rs).
fn run(dir: &Path, base: &[&str], flags: &[String]) -> Output {
    let mut args: Vec<&str> = base.to_vec();
    if matches!(base.first(), Some(&"verify") | Some(&"import")) {
        args.push("--allow-unsigned");
    }
    args.extend(flags.iter().map(String::as_str));
    airlock(dir, &args)
}

/// `fails_with` the first needle, then the single error line must contain every other needle.
fn fails_naming(case: &str, out: &Output, needles: &[String]) {
    eprintln!("--- case: {case}");
    let stderr = fails_with(out, &needles[0]);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("error line");
    eprintln!("{line}");
    for n in &needles[1..] {
        assert!(
            line.contains(n.as_str()),
            "{case}: error line lacks `{n}`: {line}"
        );
    }
}

fn assert_untagged(dst: &TestRegistry, prefix: &str, case: &str) {
    for repo in TARGET_REPOS {
        let repo = format!("{prefix}/{repo}");
        let tags = dst.tags(&repo);
        assert!(
            tags.is_empty(),
            "{case}: {repo} has tags {tags:?} after a failed import"
        );
    }
}

fn assert_tagged(dst: &TestRegistry, prefix: &str, case: &str) {
    for repo in TARGET_REPOS {
        let repo = format!("{prefix}/{repo}");
        assert_eq!(
            dst.tags(&repo),
            vec!["1".to_string()],
            "{case}: tags of {repo}"
        );
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

// ---------------------------------------------------------------------------------------------
// Re-packing a bundle.

/// Replaces the manifest blob `old` by `bytes`, fixing its entry name and every digest and size
/// airlock.json lists for it, so only the content itself is wrong.
fn replace_manifest(entries: &mut [Ent], old: &Digest, bytes: &[u8]) -> Digest {
    let new = Digest::of(bytes);
    let i = position(entries, &blob_entry(old));
    entries[i].header.set_path(blob_entry(&new)).expect("path");
    entries[i].set_data(bytes.to_vec());
    let mut m: serde_json::Value = serde_json::from_slice(&entries[0].data).expect("json");
    for b in m["blobs"].as_array_mut().expect("blobs") {
        if b["digest"] == old.to_string() {
            b["digest"] = new.to_string().into();
            b["size"] = bytes.len().into();
        }
    }
    for a in m["artifacts"].as_array_mut().expect("artifacts") {
        if a["digest"] == old.to_string() {
            a["digest"] = new.to_string().into();
        }
    }
    entries[0].set_data(serde_json::to_vec_pretty(&m).expect("json"));
    new
}

type EditEntries = Box<dyn Fn(&mut Vec<Ent>)>;
type EditFile = Box<dyn Fn(&mut Vec<u8>)>;

/// How a case breaks the good bundle.
enum Break {
    /// Edit the tar entries, then re-pack.
    Entries(EditEntries),
    /// Edit the compressed file.
    File(EditFile),
}

struct BadBundle {
    name: &'static str,
    how: Break,
    /// The first is handed to `fails_with`; the error line must contain all.
    needles: Vec<String>,
}

fn bad_bundles(good: &[Ent]) -> Vec<BadBundle> {
    let blobs = listed_blobs(good);
    let manifests: Vec<Digest> = blobs
        .iter()
        .filter(|(_, m)| *m)
        .map(|(d, _)| d.clone())
        .collect();
    let rest: Vec<Digest> = blobs
        .iter()
        .filter(|(_, m)| !*m)
        .map(|(d, _)| d.clone())
        .collect();
    let largest = rest.last().expect("blobs").clone();
    let second = rest[1].clone();
    let third = rest[2].clone();
    let first_manifest = manifests[0].clone();
    let not_json = Digest::of(b"not json");

    let flip = largest.clone();
    let flip2 = second.clone();
    let drop_mid = second.clone();
    let drop_last = largest.clone();
    let dup = third.clone();
    let mfst = first_manifest.clone();
    vec![
        BadBundle {
            name: "a flipped byte in the largest layer",
            how: Break::Entries(Box::new(move |e| {
                let i = position(e, &blob_entry(&flip));
                let mid = e[i].data.len() / 2;
                e[i].data[mid] ^= 0x01;
            })),
            needles: vec![
                s("digest mismatch"),
                format!("entry `{}`", blob_entry(&largest)),
                format!("expected {largest}"),
            ],
        },
        BadBundle {
            // verify hashes blobs on several threads and import in line: both name the first.
            name: "flipped bytes in two layers",
            how: Break::Entries(Box::new({
                let (a, b) = (flip2.clone(), largest.clone());
                move |e| {
                    for d in [&a, &b] {
                        let i = position(e, &blob_entry(d));
                        let last = e[i].data.len() - 1;
                        e[i].data[last] ^= 0x80;
                    }
                }
            })),
            needles: vec![
                s("digest mismatch"),
                format!("entry `{}`", blob_entry(&flip2)),
                format!("expected {flip2}"),
            ],
        },
        BadBundle {
            name: "a bundle truncated at half its length",
            how: Break::File(Box::new(|f| f.truncate(f.len() / 2))),
            needles: vec![s("truncated"), format!("entry `{}`", blob_entry(&largest))],
        },
        BadBundle {
            name: "a bundle cut inside its first entry",
            how: Break::File(Box::new(|f| f.truncate(100))),
            needles: vec![s("truncated")],
        },
        BadBundle {
            name: "a bundle missing its last 10 bytes",
            how: Break::File(Box::new(|f| f.truncate(f.len() - 10))),
            // Depending on where zstd's last block starts, the cut lands in the last entry or
            // after it: either way the message names that entry.
            needles: vec![s("truncated"), blob_entry(&largest)],
        },
        BadBundle {
            name: "a bundle with bytes appended",
            how: Break::File(Box::new(|f| f.extend_from_slice(b"appended"))),
            needles: vec![
                s("corrupt"),
                format!("after the last entry `{}`", blob_entry(&largest)),
            ],
        },
        BadBundle {
            name: "a blob missing in the middle",
            how: Break::Entries(Box::new(move |e| {
                let i = position(e, &blob_entry(&drop_mid));
                e.remove(i);
            })),
            needles: vec![s("missing"), format!("blob {second} (listed at position")],
        },
        BadBundle {
            name: "the last blob missing",
            how: Break::Entries(Box::new(move |e| {
                let i = position(e, &blob_entry(&drop_last));
                e.remove(i);
            })),
            needles: vec![s("missing"), format!("blob {largest}")],
        },
        BadBundle {
            name: "an entry `../evil` right after airlock.json",
            how: Break::Entries(Box::new(|e| {
                e.insert(1, Ent::raw("../evil", tar::EntryType::Regular, None, b"x"))
            })),
            needles: vec![s("contains `..`"), s("entry 1 `../evil`")],
        },
        BadBundle {
            name: "an absolute entry `/abs` at the end",
            how: Break::Entries(Box::new(|e| {
                e.push(Ent::raw("/abs", tar::EntryType::Regular, None, b"x"))
            })),
            needles: vec![s("absolute path"), s("`/abs`")],
        },
        BadBundle {
            name: "a symlink entry after index.json",
            how: Break::Entries(Box::new(|e| {
                let i = position(e, "index.json");
                let link = Ent::raw(
                    "evil-link",
                    tar::EntryType::Symlink,
                    Some("../../etc/passwd"),
                    b"",
                );
                e.insert(i + 1, link);
            })),
            needles: vec![s("symlink"), s("`evil-link`")],
        },
        BadBundle {
            name: "a hard link entry at the end",
            how: Break::Entries(Box::new(|e| {
                e.push(Ent::raw(
                    "evil-hardlink",
                    tar::EntryType::Link,
                    Some("airlock.json"),
                    b"",
                ))
            })),
            needles: vec![s("hard link"), s("`evil-hardlink`")],
        },
        BadBundle {
            name: "a blob entry twice",
            how: Break::Entries(Box::new(move |e| {
                let i = position(e, &blob_entry(&dup));
                let copy = e[i].clone();
                e.insert(i + 1, copy);
            })),
            needles: vec![s("duplicate"), format!("`{}`", blob_entry(&third))],
        },
        BadBundle {
            name: "an unknown top-level file at the end",
            how: Break::Entries(Box::new(|e| {
                e.push(Ent::raw(
                    "extra.txt",
                    tar::EntryType::Regular,
                    None,
                    b"hello\n",
                ))
            })),
            needles: vec![s("unknown entry"), s("`extra.txt`")],
        },
        BadBundle {
            name: "a manifest blob that is not JSON",
            how: Break::Entries(Box::new(move |e| {
                replace_manifest(e, &mfst, b"not json");
            })),
            needles: vec![s("not valid JSON"), format!("manifest {not_json}")],
        },
        BadBundle {
            name: "an airlock.json that is not JSON",
            how: Break::Entries(Box::new(|e| e[0].set_data(b"not json".to_vec()))),
            needles: vec![s("not valid JSON"), s("airlock.json")],
        },
    ]
}

#[test]
fn rejects_bad_bundles_without_tagging() {
    let env = Env::start();
    let dst = TestRegistry::start();
    let good_path = env.collect_good("good.tar.zst");
    let good_file = std::fs::read(&good_path).expect("bundle");
    let good = unpack(&good_path);
    assert!(
        listed_blobs(&good).iter().filter(|(_, m)| !*m).count() >= 4,
        "the fixture needs at least four non-manifest blobs"
    );
    let to = format!("{}/mirror", dst.host);
    let dflags = dst.cli_flags();
    let dir = env.dir();
    // Re-packing alone changes nothing that matters: each failure below is its one change.
    std::fs::write(dir.join("repacked.tar.zst"), pack(&good)).expect("write");
    ok(&run(dir, &["verify", "repacked.tar.zst"], &[]));

    let cases = bad_bundles(&good);
    for (n, case) in cases.iter().enumerate() {
        let file = format!("bad-{n}.tar.zst");
        let bytes = match &case.how {
            Break::Entries(edit) => {
                let mut e = good.clone();
                edit(&mut e);
                pack(&e)
            }
            Break::File(edit) => {
                let mut f = good_file.clone();
                edit(&mut f);
                f
            }
        };
        std::fs::write(dir.join(&file), bytes).expect("write bad bundle");
        // Every message also names the bundle file.
        let mut needles = case.needles.clone();
        needles.push(file.clone());

        let out = run(dir, &["verify", &file], &[]);
        fails_naming(&format!("verify: {}", case.name), &out, &needles);
        let out = run(dir, &["import", &file, "--to", &to], &dflags);
        fails_naming(&format!("import: {}", case.name), &out, &needles);
        assert_untagged(&dst, "mirror", case.name);
    }

    // The good bundle still imports into the same target, and its tags are seen: the checks
    // above would have seen a tag too.
    let out = run(dir, &["import", "good.tar.zst", "--to", &to], &dflags);
    ok(&out);
    assert_tagged(&dst, "mirror", "good bundle");
}

/// Blobs over 8 MiB are read from the bundle by offset, several at once, after the read stage
/// passed over them unhashed: a changed byte that keeps every zstd frame checksum good (only
/// the digest catches it) must still fail the import naming the blob, leave nothing tagged and
/// never put the bad blob in the target; the same when the target already has that blob, and
/// from split parts.
#[test]
fn rejects_bad_large_blobs_read_by_offset() {
    const MIB: usize = 1 << 20;
    let env = Env::with_layers([9 * MIB, 10 * MIB, 11 * MIB]);
    let dst = TestRegistry::start();
    let dflags = dst.cli_flags();
    let dir = env.dir();
    let good = unpack(&env.collect_good("good.tar.zst"));
    std::fs::write(dir.join("seekable.tar.zst"), pack_seekable(&good)).expect("write");
    let largest = env.b.layers[1].digest();
    let mut bad = good.clone();
    let i = position(&bad, &blob_entry(&largest));
    let mid = bad[i].data.len() / 2;
    bad[i].data[mid] ^= 0x01;
    std::fs::write(dir.join("bad.tar.zst"), pack_seekable(&bad)).expect("write");
    let needles = |file: &str| {
        vec![
            s("digest mismatch"),
            format!("entry `{}`", blob_entry(&largest)),
            format!("expected {largest}"),
            s(file),
        ]
    };
    let import = |source: &str, prefix: &str| {
        let to = format!("{}/{prefix}", dst.host);
        run(dir, &["import", source, "--to", &to], &dflags)
    };
    let holds = |prefix: &str| -> bool {
        let repo = Repo::parse(&dst.host, &format!("{prefix}/apps/b")).expect("repository");
        rt().block_on(dst.client().blob_exists(&repo, &largest))
            .expect("HEAD")
    };

    // Into an empty target: refused, untagged, the bad blob not uploaded.
    let out = import("bad.tar.zst", "bad");
    fails_naming(
        "import: a flipped byte in a large layer",
        &out,
        &needles("bad.tar.zst"),
    );
    assert_untagged(&dst, "bad", "a flipped byte in a large layer");
    assert!(!holds("bad"), "the bad blob reached the target");

    // Cut inside the large layers: refused as truncated, untagged, the cut blob not uploaded.
    let seekable = std::fs::read(dir.join("seekable.tar.zst")).expect("read");
    std::fs::write(dir.join("cut.tar.zst"), &seekable[..seekable.len() * 3 / 5]).expect("write");
    let out = import("cut.tar.zst", "cut");
    fails_naming(
        "import: cut inside a large layer",
        &out,
        &[s("truncated"), s("cut.tar.zst")],
    );
    assert_untagged(&dst, "cut", "cut inside a large layer");
    assert!(!holds("cut"), "the cut blob reached the target");

    // From split parts (sound parts of a bad bundle): the same error, naming the parts.
    ok(&run(
        dir,
        &[
            "split",
            "bad.tar.zst",
            "--size",
            "4MiB",
            "--out-dir",
            "bad-parts",
        ],
        &[],
    ));
    let out = import("bad-parts", "parts");
    let mut from_parts = needles("bad.tar.zst");
    from_parts.pop();
    from_parts.push(s("bad-parts"));
    fails_naming(
        "import from parts: a flipped byte in a large layer",
        &out,
        &from_parts,
    );
    assert_untagged(&dst, "parts", "parts with a flipped byte in a large layer");
    assert!(
        !holds("parts"),
        "the bad blob reached the target from parts"
    );

    // The seekable good bundle imports; the same bad bundle into a target that has every blob
    // already is still refused (each blob is checked even when nothing needs uploading).
    ok(&import("seekable.tar.zst", "mirror"));
    assert_tagged(&dst, "mirror", "the seekable good bundle");
    assert!(holds("mirror"));
    let out = import("bad.tar.zst", "mirror");
    fails_naming(
        "import into a target that has it: a flipped byte in a large layer",
        &out,
        &needles("bad.tar.zst"),
    );
}

// ---------------------------------------------------------------------------------------------
// Locks and registries that do not match or lie.

#[test]
fn refuses_lock_that_the_registry_does_not_match() {
    let env = Env::start();
    let dir = env.dir();
    let flags = env.src.cli_flags();
    // A third image, whose stored manifest is replaced after locking.
    let c = fixtures::image(
        vec![fixtures::layer(4, 1500, Compression::Gzip, false)],
        "linux/amd64",
        false,
    );
    push(&env.src, "apps/c", &c);
    std::fs::write(
        dir.join("ac.yaml"),
        format!(
            "name: ac\nimages:\n  - ref: {h}/apps/a:1\n  - ref: {h}/apps/c:1\n",
            h = env.src.host
        ),
    )
    .expect("spec");
    ok(&run(dir, &["lock", "ac.yaml"], &flags));
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("ac.lock")).expect("lock")).expect("json");
    let a = env.a.manifest.digest();
    let cd = c.manifest.digest();
    assert_eq!(lock["images"][0]["digest"], a.to_string());
    assert_eq!(lock["images"][1]["digest"], cd.to_string());

    // The registry now serves other bytes under c's digest (its storage was tampered with).
    let data = env
        .src
        .dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&cd.hex()[..2])
        .join(cd.hex())
        .join("data");
    assert!(
        data.is_file(),
        "registry storage layout: {}",
        data.display()
    );
    std::fs::write(&data, &env.a.manifest.bytes).expect("tamper");

    let gone = Digest::of(b"gone");
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut l = lock.clone();
        f(&mut l);
        serde_json::to_vec_pretty(&l).expect("json")
    };
    let cases: Vec<(&str, Vec<u8>, Vec<String>)> = vec![
        (
            "a locked digest the registry does not serve",
            edit(&|l| l["images"][0]["digest"] = gone.to_string().into()),
            vec![s("404"), format!("manifests/{gone}"), s("apps/a:1")],
        ),
        (
            "a locked media type the registry does not serve",
            edit(&|l| l["images"][0]["media_type"] = media::DOCKER_MANIFEST.into()),
            vec![
                format!("but the lock says `{}`", media::DOCKER_MANIFEST),
                format!("manifest {a}"),
            ],
        ),
        (
            "bytes served under the locked digest that hash to another",
            edit(&|_| {}),
            vec![
                format!("digest mismatch: expected {cd}, got {a}"),
                s("apps/c"),
            ],
        ),
    ];
    for (n, (case, lock_bytes, needles)) in cases.iter().enumerate() {
        let lock_file = format!("case-{n}.lock");
        let out_file = format!("case-{n}.tar.zst");
        std::fs::write(dir.join(&lock_file), lock_bytes).expect("lock");
        let cache = format!("cache-{n}");
        let out = run(
            dir,
            &["collect", &lock_file, "-o", &out_file, "--cache", &cache],
            &flags,
        );
        fails_naming(case, &out, needles);
        assert!(
            !dir.join(&out_file).exists(),
            "{case}: a bundle was written"
        );
    }

    // Locking again by tag sees the registry's Docker-Content-Digest disagree with the bytes.
    let out = run(dir, &["lock", "ac.yaml", "-o", "again.lock"], &flags);
    fails_naming(
        "lock against tampered storage",
        &out,
        &[
            format!("digest mismatch: expected {cd}, got {a}"),
            s("Docker-Content-Digest"),
            s("apps/c:1"),
        ],
    );
    assert!(!dir.join("again.lock").exists());
}

#[test]
fn refuses_lying_headers_and_unknown_media_types() {
    let env = Env::start();
    let dir = env.dir();
    // An OCI image manifest without `mediaType`: its type comes from Content-Type alone.
    let u = fixtures::image(
        vec![fixtures::layer(5, 1000, Compression::Gzip, false)],
        "linux/amd64",
        false,
    );
    let mut doc: serde_json::Value = serde_json::from_slice(&u.manifest.bytes).expect("json");
    doc.as_object_mut().expect("object").remove("mediaType");
    let u = Image {
        manifest: Blob::new(serde_json::to_vec(&doc).expect("json"), media::OCI_MANIFEST),
        ..u
    };
    push(&env.src, "apps/u", &u);
    let (a, ud) = (env.a.manifest.digest(), u.manifest.digest());
    let lie = Digest::of(b"a lie");
    let unknown = "application/x-unknown";

    /// A spec of `repo:1` images on `host`, pinned by digest or not.
    fn spec(host: &str, images: &[(&str, &Digest)], pinned: bool) -> String {
        let mut text = String::from("name: x\nimages:\n");
        for (repo, d) in images {
            let pin = if pinned {
                format!("@{d}")
            } else {
                String::new()
            };
            text.push_str(&format!("  - ref: {host}/{repo}:1{pin}\n"));
        }
        text
    }
    let images = [("apps/a", &a), ("apps/u", &ud)];

    // Control: through an honest proxy both images are collected.
    let proxy = Proxy::start(&env.src.host, Fault::None);
    let flags = vec![s("--insecure-registry"), proxy.host.clone()];
    std::fs::write(dir.join("control.yaml"), spec(&proxy.host, &images, true)).expect("spec");
    ok(&run(
        dir,
        &[
            "collect",
            "control.yaml",
            "-o",
            "control.tar.zst",
            "--cache",
            "cache-control",
        ],
        &flags,
    ));

    // (name, fault, image, needles: the first also for `lock` by tag)
    let cases = [
        (
            "a lying Docker-Content-Digest header",
            Fault::LieDigest,
            images[0],
            vec![
                s("Docker-Content-Digest"),
                format!("expected {lie}, got {a}"),
                format!("/apps/a@{a} (Docker-Content-Digest header)"),
            ],
        ),
        (
            "an unknown manifest media type",
            Fault::ContentType(unknown.into()),
            images[1],
            vec![
                format!("unknown media type `{unknown}`"),
                format!("manifest {ud}"),
                s("apps/u:1"),
            ],
        ),
    ];
    for (n, (case, fault, image, needles)) in cases.into_iter().enumerate() {
        let proxy = Proxy::start(&env.src.host, fault);
        let flags = vec![s("--insecure-registry"), proxy.host.clone()];
        let pinned = format!("case-{n}.yaml");
        std::fs::write(dir.join(&pinned), spec(&proxy.host, &[image], true)).expect("spec");
        let out_file = format!("case-{n}.tar.zst");
        let cache = format!("cache-{n}");
        let out = run(
            dir,
            &["collect", &pinned, "-o", &out_file, "--cache", &cache],
            &flags,
        );
        fails_naming(&format!("collect: {case}"), &out, &needles);
        assert!(!dir.join(&out_file).exists(), "{case}: bundle written");
        // Locking by tag through the same registry fails the same way.
        let by_tag = format!("case-{n}-tags.yaml");
        std::fs::write(dir.join(&by_tag), spec(&proxy.host, &[image], false)).expect("spec");
        let out = run(dir, &["lock", &by_tag], &flags);
        fails_naming(&format!("lock: {case}"), &out, &needles[..1]);
        assert!(!dir.join(format!("case-{n}-tags.lock")).exists());
    }
}

// ---------------------------------------------------------------------------------------------
// Transient and permanent registry faults.

#[test]
fn survives_transient_registry_faults() {
    let env = Env::start();
    let dst = TestRegistry::start();
    let dir = env.dir();
    let (shared, pos) = env.shared_layer();
    let a = env.a.manifest.digest();

    // (name, fault, request that must have been retried, at least how often it was sent)
    let cases = vec![
        (
            "503 three times, then served",
            Fault::Fail503 { n: 3 },
            format!("GET /v2/apps/a/manifests/{a}"),
            4,
        ),
        (
            // Collect pulls one blob at a time in pack order (`--jobs 1`): the first `pos`
            // blob GETs are other blobs, the next is the shared layer, cut once mid-body.
            "the shared layer's body cut off once",
            Fault::CutBlobBody {
                n: pos + 1,
                after: CUT_AFTER,
            },
            format!("GET /v2/apps/a/blobs/{shared}"),
            2,
        ),
    ];
    for (n, (case, fault, retried, at_least)) in cases.into_iter().enumerate() {
        eprintln!("--- case: {case}");
        let proxy = Proxy::start(&env.src.host, fault);
        // One request in flight: the faults hit the request named, not whichever ran first.
        let flags = vec![
            s("--insecure-registry"),
            proxy.host.clone(),
            s("--max-requests"),
            s("1"),
        ];
        let spec = env.spec(&format!("case-{n}.yaml"), &proxy.host, true);
        let spec = spec.to_str().expect("utf-8");
        let out_file = format!("case-{n}.tar.zst");
        let cache = format!("cache-{n}");
        let out = run(
            dir,
            &[
                "collect", spec, "-o", &out_file, "--cache", &cache, "--jobs", "1",
            ],
            &flags,
        );
        ok(&out);
        let sent = proxy.count(&retried);
        assert!(
            sent >= at_least,
            "{case}: `{retried}` sent {sent} times, expected a retry"
        );
        ok(&run(dir, &["verify", &out_file], &[]));
    }

    // An import through a registry that answers 503 three times completes and tags.
    let good = env.collect_good("good.tar.zst");
    let proxy = Proxy::start(&dst.host, Fault::Fail503 { n: 3 });
    let to = format!("{}/mirror", proxy.host);
    let out = run(
        dir,
        &[
            "import",
            good.to_str().expect("utf-8"),
            "--to",
            &to,
            "--insecure-registry",
            &proxy.host,
        ],
        &[],
    );
    ok(&out);
    assert_tagged(&dst, "mirror", "import through 503s");
}

#[test]
fn refuses_registry_that_never_recovers() {
    let env = Env::start();
    let dst = TestRegistry::start();
    let dir = env.dir();
    let (shared, _) = env.shared_layer();
    let a = env.a.manifest.digest();

    // (name, fault, extra flags, needles, request counted, exactly how often it was sent)
    let cases = vec![
        (
            "503 forever",
            Fault::Always503,
            vec![],
            vec![
                s("giving up"),
                s("503"),
                s("after 5 attempts"),
                format!("manifests/{a}"),
            ],
            s("GET /v2/"),
            5,
        ),
        (
            "503 forever, --retries 2",
            Fault::Always503,
            vec![s("--retries"), s("2")],
            vec![s("giving up"), s("after 2 attempts")],
            s("GET /v2/"),
            2,
        ),
        (
            "the shared layer's body always cut off",
            Fault::CutBlobBody {
                n: usize::MAX,
                after: CUT_AFTER,
            },
            vec![],
            vec![format!("blobs/{shared}"), s("after 5 attempt(s)")],
            format!("GET /v2/apps/a/blobs/{shared}"),
            5,
        ),
    ];
    for (n, (case, fault, extra, needles, counted, times)) in cases.into_iter().enumerate() {
        let proxy = Proxy::start(&env.src.host, fault);
        // One request in flight, so the count is exactly one request's attempts (concurrent
        // requests each have their own bounded attempts; tests/concurrency.rs covers those).
        let mut flags = vec![
            s("--insecure-registry"),
            proxy.host.clone(),
            s("--max-requests"),
            s("1"),
        ];
        flags.extend(extra);
        let spec = env.spec(&format!("case-{n}.yaml"), &proxy.host, true);
        let spec = spec.to_str().expect("utf-8");
        let out_file = format!("case-{n}.tar.zst");
        let cache = format!("cache-{n}");
        let started = std::time::Instant::now();
        let out = run(
            dir,
            &["collect", spec, "-o", &out_file, "--cache", &cache],
            &flags,
        );
        fails_naming(case, &out, &needles);
        assert_eq!(proxy.count(&counted), times, "{case}: `{counted}` sent");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{case}: took {:?}",
            started.elapsed()
        );
        assert!(!dir.join(&out_file).exists(), "{case}: bundle written");
    }

    // An import into a registry that never recovers fails after bounded retries, untagged.
    let good = env.collect_good("good.tar.zst");
    let proxy = Proxy::start(&dst.host, Fault::Always503);
    let to = format!("{}/mirror", proxy.host);
    let out = run(
        dir,
        &[
            "import",
            good.to_str().expect("utf-8"),
            "--to",
            &to,
            "--insecure-registry",
            &proxy.host,
            "--jobs",
            "1",
            "--max-requests",
            "1",
        ],
        &[],
    );
    fails_naming(
        "import into 503 forever",
        &out,
        &[s("giving up"), s("after 5 attempts")],
    );
    let sent = proxy.requests.load(Ordering::SeqCst);
    assert_eq!(sent, 5, "one request, five attempts, then stop");
    assert_untagged(&dst, "mirror", "import into 503 forever");
}

#[test]
fn survives_interrupted_import_and_resumes() {
    let env = Env::start();
    let dst = TestRegistry::start();
    let dir = env.dir();
    let good = env.collect_good("good.tar.zst");
    let good = good.to_str().expect("utf-8");

    // Blobs stream smallest first (two configs, two small layers, then the shared layer,
    // uploaded to apps/a and mounted into apps/b), several uploads in flight at once. The target
    // dies after `uploads` uploads have completed: mid-way, and at the very end.
    for uploads in [2usize, 5] {
        let case = format!("import dying after {uploads} uploads");
        // A prefix per case: each starts from an empty target.
        let prefix = format!("mirror{uploads}");
        let proxy = Proxy::start(&dst.host, Fault::DieAfterUploads { n: uploads });
        let to = format!("{}/{prefix}", proxy.host);
        let out = run(
            dir,
            &[
                "import",
                good,
                "--to",
                &to,
                "--insecure-registry",
                &proxy.host,
            ],
            &[],
        );
        fails_naming(&case, &out, &[s("giving up"), s("503"), s(&proxy.host)]);
        // Completed uploads plus the retried ones the dead target refused.
        assert!(proxy.count("PUT /v2/") >= uploads, "{case}: blob uploads");
        assert_untagged(&dst, &prefix, &case);

        // The re-run completes and skips what is already there.
        let to = format!("{}/{prefix}", dst.host);
        let out = run(
            dir,
            &["import", good, "--to", &to, "--format", "json"],
            &dst.cli_flags(),
        );
        let report: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
        let got = report["blobs_skipped"].as_u64().expect("blobs_skipped");
        // Every upload that completed before the target died is found in place (uploads in
        // flight when it died may have completed too); what was missing is pushed now.
        assert!(got > 0, "{case}: nothing skipped on re-run: {report}");
        // Uploads in flight when the target died may all have landed (several run at once),
        // but nothing after them did: the re-run pushes blobs, manifests, or both.
        let pushed_now = report["blobs_pushed"].as_u64().expect("pushed")
            + report["blobs_mounted"].as_u64().expect("mounted")
            + report["manifests_pushed"].as_u64().expect("manifests");
        assert!(
            pushed_now > 0,
            "{case}: the interrupted import left nothing to do: {report}"
        );
        assert_eq!(
            got + report["blobs_pushed"].as_u64().expect("pushed"),
            5,
            "{case}: every blob is either found or pushed: {report}"
        );
        assert_eq!(report["tags_set"], 2, "{case}: {report}");
        assert_tagged(&dst, &prefix, &case);
    }
}
