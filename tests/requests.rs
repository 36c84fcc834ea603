//! Requests per image at `lock` (issue #12), counted at a proxy in front of a real registry:
//! distribution 2.8 (no referrers API) and ferro-oci-server (the API). Lock asks each question
//! once — one tag listing per repository, the referrers API once per registry without it — and
//! still finds every attachment the discovery order of issue #11 finds: legacy `.sig` tags,
//! referrers in the `sha256-<hex>` fallback index, referrers listed by the API, and referrers
//! of referrers. A repository whose tag listing is over the cap is not read into memory: it
//! gets per-tag probes and its signature is still found.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;

use airlock::oci::Digest;
use airlock::registry::Repo;
use common::fixtures::{self, Image};
use common::proxy::{Fault, Proxy};
use common::{airlock_peak, ferro, ok, rt, TestRegistry};

/// A set pushed to a registry: the spec naming it through the proxy, how many images and
/// repositories it has, the digests its lock must pin as attachments, and the manifest reads
/// those attachments cost (each attachment tag and each listed referrer is one GET).
struct Set {
    spec: String,
    images: usize,
    attachments: BTreeSet<Digest>,
    attachment_reads: usize,
    /// Subjects asked about: each image, each carried child, each referrer (its own referrers).
    subjects: usize,
}

/// An SBOM referrer `n` of `subject`: on a registry with the API pushed by digest only; on one
/// without, also written into the fallback index `sha256-<hex>`, as cosign does. Returns what
/// the lock pins for it (the referrer itself, or the fallback index carrying it) and the reads
/// it costs (the referrer; plus the index).
async fn attach_referrer(
    set: &mut Set,
    client: &airlock::registry::Registry,
    repo: &Repo,
    subject: &fixtures::Blob,
    n: u32,
    api: bool,
) -> Image {
    set.subjects += 1;
    if api {
        let art = fixtures::sbom_numbered(subject, n);
        fixtures::push_image(client, repo, &art, None).await;
        set.attachments.insert(art.manifest.digest());
        set.attachment_reads += 1;
        art
    } else {
        let (art, idx) = fixtures::push_referrer_numbered(client, repo, subject, n).await;
        set.attachments.insert(idx.digest());
        set.attachment_reads += 2;
        art
    }
}

/// A legacy cosign `.sig` on `subject`.
async fn attach_sig(
    set: &mut Set,
    client: &airlock::registry::Registry,
    repo: &Repo,
    subject: &Digest,
) {
    let sig = fixtures::push_signature(client, repo, subject, None).await;
    set.attachments.insert(sig.manifest.digest());
    set.attachment_reads += 1;
}

/// Six single-platform images and two two-platform indexes, one repository each: a `.sig`
/// only; a referrer that has its own referrer; a `.sig` and a referrer; three bare; an index
/// with a `.sig` and a referrer on a child; a bare index.
fn push_set(reg: &TestRegistry, host: &str, api: bool) -> Set {
    let client = reg.client();
    let mut set = Set {
        spec: String::from("name: req\nimages:\n"),
        images: 0,
        attachments: BTreeSet::new(),
        attachment_reads: 0,
        subjects: 0,
    };
    rt().block_on(async {
        for i in 0..6u64 {
            let img = fixtures::small_image(300 + i, 1024);
            let repo = Repo::parse(&reg.host, &format!("req/img{i}")).expect("repository");
            fixtures::push_image(&client, &repo, &img, Some("1")).await;
            set.subjects += 1;
            if i == 0 || i == 2 {
                attach_sig(&mut set, &client, &repo, &img.manifest.digest()).await;
            }
            if i == 1 || i == 2 {
                let sbom = attach_referrer(&mut set, &client, &repo, &img.manifest, 1, api).await;
                if i == 1 {
                    attach_referrer(&mut set, &client, &repo, &sbom.manifest, 2, api).await;
                }
            }
            set.spec
                .push_str(&format!("  - ref: {host}/req/img{i}:1\n"));
            set.images += 1;
        }
        for i in 0..2u64 {
            let images: Vec<_> = ["linux/amd64", "linux/arm64/v8"]
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    fixtures::image(
                        vec![fixtures::layer(
                            400 + 2 * i + k as u64,
                            1024,
                            fixtures::Compression::Gzip,
                            false,
                        )],
                        p,
                        false,
                    )
                })
                .collect();
            let idx = fixtures::index(&images, false);
            let repo = Repo::parse(&reg.host, &format!("req/multi{i}")).expect("repository");
            fixtures::push_index(&client, &repo, &images, &idx, "1").await;
            set.subjects += 3;
            if i == 0 {
                attach_sig(&mut set, &client, &repo, &idx.digest()).await;
                attach_referrer(&mut set, &client, &repo, &images[0].manifest, 1, api).await;
            }
            set.spec
                .push_str(&format!("  - ref: {host}/req/multi{i}:1\n"));
            set.images += 1;
        }
    });
    set
}

/// Runs `airlock lock` of `spec` in `dir` through `host`; the lock's attachment digests.
fn lock(dir: &Path, spec: &str, host: &str) -> BTreeSet<Digest> {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("req.yaml"), spec).expect("spec");
    let (out, _) = airlock_peak(
        dir,
        &[
            "lock",
            "req.yaml",
            "--insecure-registry",
            host,
            "--max-requests",
            "4",
        ],
        &[],
    );
    ok(&out);
    attachments(&dir.join("req.lock"))
}

fn attachments(lock: &Path) -> BTreeSet<Digest> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lock).expect("lock")).expect("json");
    v["images"]
        .as_array()
        .expect("images")
        .iter()
        .flat_map(|i| i["attachments"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            a["digest"]
                .as_str()
                .expect("digest")
                .parse()
                .expect("digest")
        })
        .collect()
}

/// Locks the set through a counting proxy; checks every attachment is pinned and the requests
/// stay within `bound` (computed by the caller from the set); returns requests per image.
fn locks_within(reg: &TestRegistry, api: bool, bound: impl Fn(&Set) -> usize) -> f64 {
    let proxy = Proxy::start(&reg.host, Fault::None);
    let set = push_set(reg, &proxy.host, api);
    let work = tempfile::tempdir().expect("tmp");
    let found = lock(work.path(), &set.spec, &proxy.host);
    assert_eq!(
        found, set.attachments,
        "the lock does not pin exactly the attachments pushed"
    );
    let requests = proxy.requests.load(Ordering::SeqCst);
    let per_image = requests as f64 / set.images as f64;
    let bound = bound(&set);
    eprintln!(
        "{}: {requests} requests for {} images ({per_image:.2} per image; bound {bound})",
        if api { "ferro" } else { "distribution" },
        set.images
    );
    assert!(
        requests <= bound,
        "{requests} requests, over the bound of {bound}: {:#?}",
        proxy.log.lock().expect("log")
    );
    per_image
}

/// On a registry without the referrers API: per image its manifest and one tag listing (one
/// image per repository), the referrers API asked once for the whole registry, and one GET per
/// attachment tag or listed referrer that exists. No probe for a tag that does not exist.
#[test]
fn lock_on_a_registry_without_the_referrers_api_asks_each_question_once() {
    let reg = TestRegistry::start();
    let per_image = locks_within(&reg, false, |s| 2 * s.images + 1 + s.attachment_reads);
    // 8 images: 8 manifests + 8 listings + 1 + 11 reads = 28, where probing each candidate
    // tag of each of the 16 subjects cost 99.
    assert!(per_image < 4.0, "{per_image} requests per image");
}

/// On a registry with the referrers API: per image its manifest and one tag listing (for
/// legacy `.sig` tags), the API asked once per subject (it is per subject), and one GET per
/// attachment.
#[test]
fn lock_on_a_registry_with_the_referrers_api_asks_each_question_once() {
    let reg = ferro::start();
    let per_image = locks_within(&reg, true, |s| {
        2 * s.images + s.subjects + s.attachment_reads
    });
    // 8 images: 8 manifests + 8 listings + 16 subjects + 7 reads = 39, where a HEAD per
    // candidate tag of each subject cost 79.
    assert!(per_image < 5.0, "{per_image} requests per image");
}

/// A repository whose tag listing is longer than lock reads (9 000 tags of 128 characters,
/// 1.2 MB of listing, over the 1 MiB cap; seeded into distribution's own storage, which lists
/// a tag per directory): lock stops reading at the cap — so 100 000 tags cost no more memory
/// than 9 000 — falls back to asking for each candidate tag, and still pins the `.sig`.
#[test]
fn a_tag_listing_over_the_cap_gets_probes_and_the_signature_is_found() {
    let reg = TestRegistry::start();
    let proxy = Proxy::start(&reg.host, Fault::None);
    let client = reg.client();
    let repo = Repo::parse(&reg.host, "req/big").expect("repository");
    let img = fixtures::small_image(500, 1024);
    let sig = rt().block_on(async {
        fixtures::push_image(&client, &repo, &img, Some("1")).await;
        fixtures::push_signature(&client, &repo, &img.manifest.digest(), None).await
    });
    let tags = reg
        .dir
        .path()
        .join("storage/docker/registry/v2/repositories/req/big/_manifests/tags");
    for i in 0..9_000 {
        std::fs::create_dir(tags.join(format!("build-{i:0>122}"))).expect("seed a tag");
    }
    let listed = reg.tags("req/big");
    assert!(listed.len() > 9_000, "{} tags", listed.len());
    let before = proxy.requests.load(Ordering::SeqCst);
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path();
    std::fs::write(
        dir.join("req.yaml"),
        format!("name: req\nimages:\n  - ref: {}/req/big:1\n", proxy.host),
    )
    .expect("spec");
    let (out, peak) = airlock_peak(
        dir,
        &["lock", "req.yaml", "--insecure-registry", &proxy.host],
        &[],
    );
    ok(&out);
    assert_eq!(
        attachments(&dir.join("req.lock")),
        BTreeSet::from([sig.manifest.digest()])
    );
    // The manifest, the capped listing, the referrers API, a HEAD for the fallback tag and
    // each of `.sig`, `.att`, `.sbom`, and the GET of the `.sig`.
    let requests = proxy.requests.load(Ordering::SeqCst) - before;
    assert_eq!(requests, 8, "{:#?}", proxy.log.lock().expect("log"));
    assert!(
        peak < 96 * 1024 * 1024,
        "lock of a repository listing over the cap peaked at {peak} bytes"
    );
}
