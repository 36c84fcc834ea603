//! Signatures made the way cosign v3 makes them, with keys made in the test: a Sigstore bundle
//! v0.3 (a DSSE envelope over an in-toto statement, predicate type
//! `https://sigstore.dev/cosign/sign/v1`, subject = the image digest, signed with an ECDSA P-256
//! key, verification material a public-key hint) pushed as an OCI 1.1 referrer of the image:
//! empty config, one bundle layer, the same `artifactType`, `subject` = the signed manifest.
//!
//! cosign logs every signature in Rekor; the bundle carries the entry. [`FakeRekor`] is a
//! one-entry transparency log with its own key, so the entry (DSSE v0.0.1 body, signed entry
//! timestamp, inclusion proof to a signed checkpoint) verifies against a `trusted_root.json`
//! naming that key, and against nothing else.

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;

use airlock::oci::{media, Digest};
use airlock::registry::{Registry, Repo};
use airlock::trust::keys::SigningKey;

use super::fixtures::{push_image, Blob, Image};

/// The bundle media type cosign v3 uses, as layer and `artifactType`.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of a cosign v3 image signature.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// A transparency log of one entry per call, with its own ECDSA P-256 key.
pub struct FakeRekor {
    key: SigningKey,
}

impl Default for FakeRekor {
    fn default() -> Self {
        FakeRekor {
            key: SigningKey::generate().expect("rekor key"),
        }
    }
}

impl FakeRekor {
    fn log_id(&self) -> [u8; 32] {
        sha256(self.key.public_key().spki_der())
    }

    /// A `trusted_root.json` naming this log (no Fulcio, no CT log, no TSA).
    pub fn trusted_root(&self) -> Value {
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.test.invalid",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(self.key.public_key().spki_der()),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"}
                },
                "logId": {"keyId": b64(&self.log_id())}
            }],
            "certificateAuthorities": [],
            "ctlogs": [],
            "timestampAuthorities": []
        })
    }

    /// The Rekor v1 entry (kind `dsse` 0.0.1) for an envelope signed by `signer`, integrated
    /// at `time` (Unix seconds) as the only leaf of the log.
    pub fn entry(&self, payload: &[u8], sig: &[u8], signer: &SigningKey, time: i64) -> Value {
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex::encode(sha256(payload))},
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(sha256(payload))},
                "signatures": [{
                    "signature": b64(sig),
                    "verifier": b64(signer.public_key().to_pem().as_bytes())
                }]
            }
        });
        let body = serde_json::to_vec(&body).expect("json");
        let log_id = self.log_id();
        // The signed entry timestamp: canonical JSON, keys in order.
        let set_payload = format!(
            r#"{{"body":"{}","integratedTime":{time},"logID":"{}","logIndex":0}}"#,
            b64(&body),
            hex::encode(log_id)
        );
        let set = self.key.sign(set_payload.as_bytes());
        // A tree of one leaf: the root is the leaf hash.
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(&body);
        let root = sha256(&leaf);
        let note = format!("rekor.test.invalid - 1\n1\n{}\n", b64(&root));
        let mut signed = log_id[..4].to_vec();
        signed.extend_from_slice(&self.key.sign(note.as_bytes()));
        let checkpoint = format!("{note}\n\u{2014} rekor.test.invalid {}\n", b64(&signed));
        json!({
            "logIndex": "0",
            "logId": {"keyId": b64(&log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": b64(&set)},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": b64(&root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint}
            },
            "canonicalizedBody": b64(&body)
        })
    }
}

/// The in-toto statement cosign v3 signs for an image.
pub fn statement(repo: &str, subject: &Digest) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repo, "digest": {"sha256": subject.hex()}}],
        "predicateType": SIGN_PREDICATE,
        "predicate": {}
    }))
    .expect("json")
}

/// A Sigstore bundle v0.3 signing `subject` with `key`, logged in `rekor`.
pub fn bundle(key: &SigningKey, rekor: &FakeRekor, repo: &str, subject: &Digest) -> Vec<u8> {
    let payload = statement(repo, subject);
    let payload_type = "application/vnd.in-toto+json";
    let pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    );
    let mut message = pae.into_bytes();
    message.extend_from_slice(&payload);
    let sig = key.sign(&message);
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        - 60;
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "publicKey": {"hint": key.key_id().as_str()},
            "tlogEntries": [rekor.entry(&payload, &sig, key, time)]
        },
        "dsseEnvelope": {
            "payload": b64(&payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(&sig), "keyid": ""}]
        }
    }))
    .expect("json")
}

/// The referrer manifest cosign v3 pushes for `bundle` on the manifest `subject`.
pub fn referrer(bundle: &[u8], subject: &Blob) -> Image {
    let layer = Blob::new(bundle.to_vec(), BUNDLE_V03);
    let config = Blob::new(b"{}".to_vec(), media::OCI_EMPTY);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "subject": subject.descriptor(),
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": SIGN_PREDICATE
        }
    });
    Image {
        manifest: Blob::new(serde_json::to_vec(&m).expect("json"), media::OCI_MANIFEST),
        config,
        layers: vec![layer],
        platform: (String::new(), String::new(), None),
    }
}

/// Signs `subject` cosign-v3-style and pushes the referrer by digest, with no tag (as cosign v3
/// does on a registry with the referrers API).
pub async fn push_signature(
    reg: &Registry,
    repo: &Repo,
    subject: &Blob,
    key: &SigningKey,
    rekor: &FakeRekor,
) -> Image {
    let b = bundle(key, rekor, &repo.to_string(), &subject.digest());
    let r = referrer(&b, subject);
    push_image(reg, repo, &r, None).await;
    r
}
