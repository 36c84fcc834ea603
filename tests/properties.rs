//! Property tests (issue 10, "the habit that finds the next ones"): every parser of outside
//! input, fed arbitrary bytes and mutated real samples, returns `Ok` or an error and never
//! panics; where a round trip exists (purl, reference, digest) it holds. `tests/hostile.rs`
//! cuts and flips every byte of a few samples exhaustively; here the inputs are random and
//! wider (insertions, splices, arbitrary text).
//!
//! Cases per property: `PROPTEST_CASES` (default 256). Failures are not persisted by proptest:
//! a crasher found here is kept by hand under `tests/data/regressions/<parser>/` and replayed by
//! [`regressions::replay_every_kept_crasher`].

mod common;

use std::path::Path;

use proptest::prelude::*;

/// 256 cases unless `PROPTEST_CASES` says otherwise; nothing written to the source tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn data(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One edit to a sample: flip, insert, delete or cut at a position (modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Cut(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Edit::Flip(i, x)),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => (any::<usize>(), 1..64usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<usize>().prop_map(Edit::Cut),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(), 1..6)
}

/// Applies `edits` to a copy of `sample`.
fn mutate(sample: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = sample.to_vec();
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match e {
            Edit::Flip(i, x) if !v.is_empty() => {
                let i = at(*i, v.len());
                v[i] ^= x;
            }
            Edit::Insert(i, b) => {
                let i = at(*i, v.len() + 1);
                v.splice(i..i, b.iter().copied());
            }
            Edit::Delete(i, n) if !v.is_empty() => {
                let i = at(*i, v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Edit::Cut(i) => {
                let i = at(*i, v.len() + 1);
                v.truncate(i);
            }
            _ => {}
        }
    }
    v
}

/// Arbitrary bytes, up to 4 KiB.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..4096)
}

/// One sample of `samples`, mutated.
fn mutated(samples: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (0..samples.len(), edits()).prop_map(move |(i, e)| mutate(&samples[i], &e))
}

/// The parser entry points, each fed whatever it takes from outside. A parser may accept or
/// refuse; reaching the end of each function without a panic is the property.
mod parse {
    use std::io::Cursor;
    use std::path::Path;

    pub fn text(b: &[u8]) -> Option<&str> {
        std::str::from_utf8(b).ok()
    }

    /// A bundle stream, read to the end with a visitor that only drains.
    pub fn bundle(b: &[u8]) {
        struct Drain;
        impl airlock::bundle::BlobVisitor for Drain {
            type Error = airlock::bundle::BundleError;
        }
        let p = Path::new("p.tar.zst");
        let _ = airlock::bundle::reader::read_bundle_from(
            Cursor::new(b),
            p,
            &mut Drain,
            &airlock::progress::NoProgress,
        );
        let _ = airlock::bundle::reader::read_table_of_contents_from(Cursor::new(b), p);
    }

    pub fn bundle_manifest(b: &[u8]) {
        if let Ok(m) = serde_json::from_slice::<airlock::bundle::BundleManifest>(b) {
            let _ = m.total_blob_bytes();
        }
    }

    pub fn parts_manifest(b: &[u8]) {
        let _ = airlock::bundle::parts::PartsManifest::from_slice(Path::new("p.parts.json"), b);
    }

    pub fn oci_manifest(b: &[u8]) {
        let _ = airlock::oci::ParsedManifest::parse(b, None);
        let _ = airlock::oci::ParsedManifest::parse(b, Some(airlock::oci::media::OCI_INDEX));
    }

    pub fn layer(b: &[u8]) {
        use airlock::scan::flatten::{Compression, Layer};
        let layer = |compression| Layer {
            name: "layer".into(),
            compression,
            reader: Cursor::new(b),
        };
        let _ = airlock::scan::flatten::flatten(
            [layer(Compression::None), layer(Compression::Gzip)],
            |_| true,
            airlock::scan::flatten::Limits::default(),
        );
    }

    pub fn note(b: &[u8]) {
        let _ = airlock::ledger::note::Note::parse(b);
        if let Some(t) = text(b) {
            let _ = airlock::ledger::Checkpoint::parse_body(t);
            let _ = airlock::ledger::VerifierKey::parse(t);
        }
    }

    pub fn ledger_line(b: &[u8]) {
        let _ = airlock::ledger::entry::Entry::from_line(b);
    }

    pub fn receipt(b: &[u8]) {
        let _ = serde_json::from_slice::<airlock::receipt::Receipt>(b);
    }

    pub fn osv(b: &[u8]) {
        if let Ok(r) = airlock::scan::osv::parse_record(b, "r.json") {
            for a in r.affected.iter().flatten() {
                let _ = airlock::scan::osv::severity_of(&r, a);
            }
        }
    }

    pub fn vex(b: &[u8]) {
        let _ = airlock::scan::vex::parse(b, "v.json");
    }

    pub fn cyclonedx(b: &[u8]) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(b) {
            let _ = airlock::scan::sbom::inventory_from(&v);
        }
    }

    pub fn dpkg(b: &[u8]) {
        if let Some(t) = text(b) {
            let _ = airlock::scan::dpkg::parse_status(t, "status");
        }
    }

    pub fn apk(b: &[u8]) {
        if let Some(t) = text(b) {
            let _ = airlock::scan::apk::parse_installed(t, "installed");
        }
    }

    pub fn spec(b: &[u8]) {
        if let Some(t) = text(b) {
            let _ = airlock::spec::Spec::parse(t, "s.yaml");
        }
    }

    pub fn lock(b: &[u8]) {
        let _ = airlock::lock::Lock::parse(b, "s.lock");
    }

    pub fn policy(b: &[u8]) {
        if let Some(t) = text(b) {
            let _ = airlock::trust::policy::TrustPolicy::from_yaml(t);
            if let Ok(p) = serde_yaml::from_str::<airlock::scan::policy::ScanPolicy>(t) {
                let _ = p.validate();
            }
        }
    }

    pub fn database(b: &[u8]) {
        if let Ok(db) = airlock::scan::db::Database::from_bytes(b.to_vec(), Path::new("v.db")) {
            let keys: Vec<(String, String)> = db
                .keys()
                .map(|(e, p)| (e.to_string(), p.to_string()))
                .collect();
            for (e, p) in keys {
                let _ = db.lookup(&e, &p);
            }
        }
    }

    pub fn signatures(b: &[u8]) {
        let _ = airlock::trust::bundle_sig::SigFile::from_slice(b);
        let _ = airlock::trust::sigstore_bundle::parse_bundle(b);
        let _ = airlock::trust::simple_signing::parse_payload(b);
        if let Some(t) = text(b) {
            let _ = airlock::trust::keys::PublicKey::from_pem(t);
            let _ = airlock::trust::trusted_root::TrustedRoot::from_json(t);
        }
    }

    pub fn version(a: &str, b: &str) {
        let _ = airlock::scan::version::dpkg::compare(a, b);
        let _ = airlock::scan::version::apk::compare(a, b);
        let _ = airlock::scan::version::apk::validate(a);
        let _ = airlock::scan::version::dpkg::DebVersion::parse(a);
    }

    pub fn purl(s: &str) {
        let _ = airlock::scan::purl::core(s);
        let _ = airlock::scan::purl::decode(s);
    }

    pub fn os_release(s: &str) {
        let _ = airlock::scan::os::parse_os_release(s);
    }
}

/// Bundles: arbitrary bytes, and a real (hand-made, one image) bundle's tar mutated then
/// compressed, so the mutations reach the tar and JSON parsers past zstd.
mod bundle {
    use super::*;
    use common::tarball::offline_bundle;

    fn tar_sample() -> Vec<u8> {
        let entries = offline_bundle(&[("etc/os-release", b"ID=alpine\n")]);
        let mut b = tar::Builder::new(Vec::new());
        for e in &entries {
            b.append(&e.header, &e.data[..]).expect("append");
        }
        b.into_inner().expect("tar")
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes_never_panic(b in bytes()) {
            parse::bundle(&b);
            parse::bundle(&zstd::encode_all(&b[..], 1).expect("zstd"));
        }

        #[test]
        fn mutated_bundles_never_panic(t in mutated(vec![tar_sample()])) {
            parse::bundle(&zstd::encode_all(&t[..], 1).expect("zstd"));
        }

        #[test]
        fn mutated_airlock_json_never_panics(j in mutated(vec![offline_bundle(&[])[0].data.clone()])) {
            parse::bundle_manifest(&j);
        }

        #[test]
        fn parts_manifests_never_panic(b in mutated(vec![br#"{"format":"airlock.parts/v1","name":"p","bundle":"p.tar.zst","size":8192,"sha256":"sha256:0000000000000000000000000000000000000000000000000000000000000000","part_size":4096,"parts":[{"name":"p.tar.zst.part-0001","size":4096,"sha256":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},{"name":"p.tar.zst.part-0002","size":4096,"sha256":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}"#.to_vec()])) {
            parse::parts_manifest(&b);
        }

        #[test]
        fn layers_never_panic(t in mutated(vec![common::fixtures::tar_of(&[
            ("etc/os-release", b"ID=alpine\n"),
            ("lib/apk/db/installed", b"P:musl\nV:1.2.4-r0\n\n"),
        ])])) {
            parse::layer(&t);
        }
    }
}

/// OCI manifests and indexes, references and digests.
mod oci {
    use super::*;
    use airlock::oci::Digest;
    use airlock::reference::Reference;

    fn samples() -> Vec<Vec<u8>> {
        [
            "oci-image-manifest.dockerhub-hello-world-amd64.json",
            "oci-image-index.dockerhub-hello-world.json",
            "docker-manifest-list-v2.dockerhub-hello-world.json",
            "oci-1.1-referrer-manifest.oras-artifactType.json",
            "cosign-sig-manifest.ghcr-podinfo.json",
        ]
        .iter()
        .map(|n| data(&format!("oci/{n}")))
        .collect()
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn manifests_never_panic(b in mutated(samples())) {
            parse::oci_manifest(&b);
        }

        #[test]
        fn arbitrary_manifests_never_panic(b in bytes()) {
            parse::oci_manifest(&b);
        }

        #[test]
        fn references_round_trip(s in "[a-z0-9.:/@_-]{0,80}|\\PC{0,40}") {
            if let Ok(r) = s.parse::<Reference>() {
                let again: Reference = r.to_string().parse().map_err(|e| {
                    TestCaseError::fail(format!("`{s}` displays as `{r}`, which does not parse: {e}"))
                })?;
                prop_assert_eq!(again.to_string(), r.to_string());
            }
        }

        #[test]
        fn digests_round_trip(s in "sha256:[0-9a-f]{64}|sha256:\\PC{0,70}|\\PC{0,80}") {
            if let Ok(d) = s.parse::<Digest>() {
                prop_assert_eq!(d.to_string(), s.clone());
                prop_assert_eq!(Digest::from_hex(d.hex()).ok(), Some(d));
            }
        }

        #[test]
        fn digest_of_bytes_parses_back(b in bytes()) {
            let d = Digest::of(&b);
            prop_assert_eq!(d.as_str().parse::<Digest>().ok(), Some(d));
        }
    }
}

/// Signed notes, checkpoints, ledger lines and receipts.
mod ledger {
    use super::*;

    fn notes() -> Vec<Vec<u8>> {
        let cases: serde_json::Value =
            serde_json::from_slice(&data("merkle/signed-notes.json")).expect("json");
        let mut out = Vec::new();
        collect_strings(&cases, &mut out);
        out.retain(|s| s.contains(&b'\n'));
        if out.is_empty() {
            out.push(b"example.com/log\n1\nAAAA\n\n\xe2\x80\x94 k AAAA\n".to_vec());
        }
        out
    }

    fn collect_strings(v: &serde_json::Value, out: &mut Vec<Vec<u8>>) {
        match v {
            serde_json::Value::String(s) => out.push(s.as_bytes().to_vec()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
            _ => {}
        }
    }

    const LINE: &[u8] = br#"{"index":0,"time":"2026-01-01T00:00:00Z","kind":"import","decision":"admitted","bundle":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","name":"p"},"artifacts":[],"evidence":[],"prev":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}"#;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn notes_and_checkpoints_never_panic(b in mutated(notes())) {
            parse::note(&b);
        }

        #[test]
        fn arbitrary_notes_never_panic(b in bytes()) {
            parse::note(&b);
        }

        #[test]
        fn ledger_lines_never_panic(b in mutated(vec![LINE.to_vec()])) {
            parse::ledger_line(&b);
        }

        #[test]
        fn receipts_never_panic(b in mutated(vec![br#"{"format":"airlock.receipt/v1","registry":"r:5000","prefix":"m","created":"2026-01-01T00:00:00Z","manifests":["sha256:0000000000000000000000000000000000000000000000000000000000000000"],"blobs":[{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1,"repositories":["m/a"]}]}"#.to_vec()])) {
            parse::receipt(&b);
        }
    }
}

/// Vulnerability data and what is matched against it: OSV, OpenVEX, CycloneDX, package
/// databases, versions, purls, the database file.
mod scan {
    use super::*;
    use airlock::scan::purl;

    fn osv_samples() -> Vec<Vec<u8>> {
        [
            "debian/DLA-3012-1.json",
            "debian/CVE-2024-3847.json",
            "alpine/CVE-2018-5407.json",
            "alpine/ALPINE-CVE-2025-26519.json",
        ]
        .iter()
        .map(|n| data(&format!("osv/{n}")))
        .collect()
    }

    const CYCLONEDX: &[u8] = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"component":{"name":"img","properties":[{"name":"aquasecurity:trivy:OS","value":"alpine 3.18.0"}]}},"components":[{"type":"operating-system","name":"alpine","version":"3.18.0"},{"type":"library","name":"musl","version":"1.2.4-r0","purl":"pkg:apk/alpine/musl@1.2.4-r0?arch=x86_64&distro=alpine-3.18.0"},{"type":"library","name":"libc6","version":"2.36-9","purl":"pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64"}]}"#;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn osv_records_never_panic(b in mutated(osv_samples())) {
            parse::osv(&b);
        }

        #[test]
        fn openvex_never_panics(b in mutated(vec![data("vex/openvex-v0.2.0-alpine-openssl.json")])) {
            parse::vex(&b);
        }

        #[test]
        fn cyclonedx_never_panics(b in mutated(vec![CYCLONEDX.to_vec()])) {
            parse::cyclonedx(&b);
        }

        #[test]
        fn dpkg_status_never_panics(b in mutated(vec![
            data("packages/debian/osv-scalibr-debian12/var/lib/dpkg/status"),
            data("packages/debian/syft-distroless/var/lib/dpkg/status.d/libsqlite3-0"),
        ])) {
            parse::dpkg(&b);
        }

        #[test]
        fn apk_installed_never_panics(b in mutated(vec![
            data("packages/alpine/osv-scalibr-alpine-3.18/lib/apk/db/installed"),
        ])) {
            parse::apk(&b);
        }

        #[test]
        fn os_release_never_panics(s in "\\PC{0,200}") {
            parse::os_release(&s);
        }

        #[test]
        fn versions_compare_without_panic(a in "[0-9a-z.:~+_-]{0,24}|\\PC{0,24}", b in "[0-9a-z.:~+_-]{0,24}") {
            parse::version(&a, &b);
            parse::version(&b, &a);
        }

        #[test]
        fn purls_never_panic(s in "pkg:[a-z]{1,5}/[a-z%]{0,10}/[a-zé%0-9]{1,10}@[0-9a-fé%.]{0,12}|\\PC{0,60}") {
            parse::purl(&s);
        }

        #[test]
        fn purl_percent_encoding_round_trips(s in "\\PC{0,60}") {
            prop_assert_eq!(purl::decode(&purl::encode(&s)), s.clone());
            let built = purl::build("deb", "debian", &s, &s, &[("arch", "amd64")]);
            if !s.is_empty() {
                let (_, version) = purl::core(&built).expect("a purl");
                prop_assert_eq!(version, Some(s.clone()));
            }
        }

        #[test]
        fn databases_never_panic(b in bytes()) {
            let mut v = airlock::scan::db::MAGIC.to_vec();
            v.extend_from_slice(&b);
            parse::database(&v);
            parse::database(&b);
        }
    }
}

/// The operator's files: spec, lock, trust and scan policies, keys and signatures.
mod files {
    use super::*;

    const SPEC: &[u8] = b"name: p\nimages:\n  - ref: docker.io/library/nginx:1.27\n    platforms: [linux/amd64]\ncharts:\n  - ref: oci://ghcr.io/org/charts/web:1.0.0\n  - repo: https://charts.example.com\n    name: podinfo\n    version: 6.4.0\nfiles:\n  - path: a/b.bin\n    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\ntrust:\n  rules:\n    - pattern: ghcr.io/org/*\n      keys: [k.pub]\nscan:\n  fail_on: high\n  max_db_age: 72h\n  allow:\n    - {id: CVE-1, package: musl, expires: 2026-12-31, reason: x}\n";
    const LOCK: &[u8] = br#"{"format":"airlock.lock/v1","name":"p","spec_digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","created":"2026-11-23T00:00:00Z","images":[{"source":"docker.io/library/nginx:1.27","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","media_type":"application/vnd.oci.image.manifest.v1+json","platforms":[],"children":[],"attachments":[]}],"charts":[]}"#;
    const POLICY: &[u8] = b"trusted_root: root.json\nrules:\n  - pattern: ghcr.io/**\n    keyless: [{identity: a, issuer: b}]\n    require: 1\nfail_on: high\nignore_unfixed: true\nmax_db_age: 72h\n";

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn specs_never_panic(b in mutated(vec![SPEC.to_vec()])) {
            parse::spec(&b);
        }

        #[test]
        fn locks_never_panic(b in mutated(vec![LOCK.to_vec()])) {
            parse::lock(&b);
        }

        #[test]
        fn policies_never_panic(b in mutated(vec![POLICY.to_vec(), SPEC.to_vec()])) {
            parse::policy(&b);
        }

        #[test]
        fn signature_material_never_panics(b in mutated(vec![
            data("sigstore/bundles/other/cosign-v3-blob.sigstore.json"),
            data("sigstore/bundles/trusted_root.public-good.json"),
        ])) {
            parse::signatures(&b);
        }
    }
}

/// Crashers found by the properties above (or reported), kept as files and replayed through
/// the parser named by their directory.
mod regressions {
    use super::*;

    #[test]
    fn replay_every_kept_crasher() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/regressions");
        let mut replayed = 0;
        for dir in std::fs::read_dir(&root).expect("regressions dir") {
            let dir = dir.expect("entry").path();
            if !dir.is_dir() {
                continue;
            }
            let name = dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            for f in std::fs::read_dir(&dir).expect("dir") {
                let f = f.expect("entry").path();
                let b = std::fs::read(&f).expect("read");
                let t = String::from_utf8_lossy(&b);
                match name.as_str() {
                    "purl" => parse::purl(t.trim_end_matches('\n')),
                    "bundle" => parse::bundle(&b),
                    "bundle-manifest" => parse::bundle_manifest(&b),
                    "layer" => parse::layer(&b),
                    "vex" => parse::vex(&b),
                    "cyclonedx" => parse::cyclonedx(&b),
                    "database" => parse::database(&b),
                    other => panic!("no parser for regressions/{other}"),
                }
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no regression input under {}", root.display());
    }
}
