//! Hostile input for every parser that sees outside bytes (STYLE.md §12): each real sample is cut
//! at every length and has every byte flipped. A parser may accept or refuse, never panic; where
//! bytes are protected (a digest, a signature, a MAC), every change must be refused.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use airlock::oci::{Digest, ParsedManifest};

fn data(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every prefix of `sample`, and `sample` with each byte XORed with 0x01, 0x80 and 0xff.
fn mutations(sample: &[u8]) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let cuts = (0..sample.len()).map(move |n| (format!("cut at {n}"), sample[..n].to_vec()));
    let flips = (0..sample.len()).flat_map(move |i| {
        [0x01u8, 0x80, 0xff].into_iter().map(move |x| {
            let mut v = sample.to_vec();
            v[i] ^= x;
            (format!("byte {i} ^ {x:#04x}"), v)
        })
    });
    cuts.chain(flips)
}

/// Runs `f` on every mutation; fails on a panic, and on an acceptance when `must_refuse`.
fn hammer(what: &str, sample: &[u8], must_refuse: bool, f: impl Fn(&[u8]) -> bool) {
    assert!(f(sample), "{what}: the untouched sample must be accepted");
    let mut accepted = 0usize;
    for (how, input) in mutations(sample) {
        let ok = catch_unwind(AssertUnwindSafe(|| f(&input)))
            .unwrap_or_else(|_| panic!("{what}: panicked on {how}"));
        if ok {
            assert!(!must_refuse, "{what}: accepted {how}");
            accepted += 1;
        }
    }
    if must_refuse {
        assert_eq!(accepted, 0);
    }
}

#[test]
fn manifests_by_digest_refuse_every_change_and_never_panic() {
    for name in [
        "oci-image-manifest.dockerhub-hello-world-amd64.json",
        "oci-image-index.dockerhub-hello-world.json",
        "docker-manifest-list-v2.dockerhub-hello-world.json",
        "docker-schema2-manifest.dockerhub-hello-world-amd64.json",
        "oci-1.1-referrer-manifest.oras-artifactType.json",
        "helm-chart-oci-manifest.ghcr-podinfo-6.4.0.json",
        "cosign-sig-manifest.ghcr-podinfo.json",
    ] {
        let sample = data(&format!("oci/{name}"));
        let digest = Digest::of(&sample);
        // Parsing alone: anything but a panic.
        hammer(name, &sample, false, |b| {
            ParsedManifest::parse(b, None).is_ok()
        });
        // Fetched by digest (as collect and import do): every change is refused.
        hammer(name, &sample, true, |b| {
            Digest::of(b) == digest && ParsedManifest::parse(b, None).is_ok()
        });
    }
}

#[test]
fn digests_and_references_cut_or_flipped_never_panic() {
    let d = Digest::of(b"airlock");
    hammer("digest", d.as_str().as_bytes(), true, |b| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<Digest>().ok())
            .is_some_and(|p| p == d)
    });
    for r in [
        "docker.io/library/nginx:1.27",
        "ghcr.io/org/app:2.3@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "[::1]:5000/a/b/c:tag",
        "localhost:5000/x@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    ] {
        hammer(r, r.as_bytes(), false, |b| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<airlock::reference::Reference>().ok())
                .is_some()
        });
    }
}

#[test]
fn bundle_signatures_refuse_every_change_to_manifest_or_signature() {
    use airlock::trust::bundle_sig::{sign_manifest, verify_manifest, SigFile};
    use airlock::trust::keys::SigningKey;
    let key = SigningKey::generate().expect("key");
    let manifest = br#"{"format":"airlock.bundle/v1","name":"x","artifacts":[]}"#.to_vec();
    let sig = sign_manifest(&manifest, std::slice::from_ref(&key)).to_vec();
    let trusted = [key.public_key().clone()];
    let verifies = |m: &[u8], s: &[u8]| {
        SigFile::from_slice(s)
            .ok()
            .is_some_and(|f| verify_manifest(m, &f, &trusted, 1).is_ok())
    };
    hammer("airlock.json under its signature", &manifest, true, |m| {
        verifies(m, &sig)
    });
    // The signature file: JSON around base64 DER (its trailing newline dropped: removing that
    // is harmless). Every flip lands in syntax, the key id or the signature, so each must fail.
    hammer("airlock.json.sig", sig.trim_ascii_end(), true, |s| {
        verifies(&manifest, s)
    });
}

#[test]
fn signed_notes_refuse_every_change() {
    let cases: serde_json::Value =
        serde_json::from_slice(&data("merkle/signed-notes.json")).expect("json");
    let case = &cases["cases"][0];
    assert_eq!(case["expected"]["result"], "ok");
    let keys: Vec<airlock::ledger::VerifierKey> = case["verifier_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| airlock::ledger::VerifierKey::parse(k.as_str().expect("key")).expect("vkey"))
        .collect();
    let note = case["note"].as_str().expect("note").as_bytes().to_vec();
    hammer("signed note", &note, true, |b| {
        airlock::ledger::note::open(b, &keys).is_ok()
    });
}

#[test]
fn sealed_cosign_keys_refuse_changed_ciphertext() {
    // scrypt makes each attempt slow, so flip a spread of ciphertext positions, not all.
    let pem = String::from_utf8(data("sigstore/keys/zarf-layout-cosign.key")).expect("utf-8");
    assert!(airlock::trust::sealed::open(&pem, b"test").is_ok());
    let body_start = pem.find('\n').expect("header line") + 1;
    let body_end = pem.rfind("-----END").expect("footer");
    let positions: Vec<usize> = (body_start..body_end)
        .step_by(((body_end - body_start) / 12).max(1))
        .filter(|&i| pem.as_bytes()[i].is_ascii_alphanumeric())
        .collect();
    assert!(positions.len() >= 8);
    for i in positions {
        let mut b = pem.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(b).expect("ascii");
        assert!(
            airlock::trust::sealed::open(&changed, b"test").is_err(),
            "accepted a key with byte {i} changed"
        );
    }
    // Cut anywhere: refused, never a panic.
    for n in (0..pem.len()).step_by(7) {
        let cut = &pem[..n];
        let r = catch_unwind(|| airlock::trust::sealed::open(cut, b"test").is_ok());
        assert_eq!(r.ok(), Some(false), "cut at {n}");
    }
}

#[test]
fn specs_locks_and_policies_cut_or_flipped_never_panic() {
    let spec = b"name: p\nimages:\n  - ref: docker.io/library/nginx:1.27\n    platforms: [linux/amd64]\ncharts:\n  - ref: oci://ghcr.io/org/charts/web:1.0.0\ntrust:\n  rules:\n    - pattern: ghcr.io/org/*\n      keys: [k.pub]\n";
    hammer("spec", spec, false, |b| {
        std::str::from_utf8(b)
            .ok()
            .is_some_and(|s| airlock::spec::Spec::parse(s, "p.yaml").is_ok())
    });
    let policy = b"trusted_root: root.json\nrules:\n  - pattern: ghcr.io/**\n    keyless: [{identity: a, issuer: b}]\n    require: 1\n";
    hammer("policy", policy, false, |b| {
        std::str::from_utf8(b)
            .ok()
            .is_some_and(|s| airlock::trust::policy::TrustPolicy::from_yaml(s).is_ok())
    });
    let d = Digest::of(b"x");
    let lock = format!(
        r#"{{"format":"airlock.lock/v1","name":"p","spec_digest":"{d}","created":"2026-11-23T00:00:00Z","images":[{{"source":"docker.io/library/nginx:1.27","digest":"{d}","media_type":"application/vnd.oci.image.manifest.v1+json","platforms":[],"children":[],"attachments":[]}}],"charts":[]}}"#
    );
    hammer("lock", lock.as_bytes(), false, |b| {
        airlock::lock::Lock::parse(b, "p.lock").is_ok()
    });
    // A lock cut short is never taken for a whole one.
    for n in 0..lock.len() {
        assert!(
            airlock::lock::Lock::parse(&lock.as_bytes()[..n], "p.lock").is_err(),
            "lock cut at {n} accepted"
        );
    }
}
