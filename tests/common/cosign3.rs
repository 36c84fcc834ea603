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

use super::der;
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
        self.entry_v1(payload, sig, &signer.public_key().to_pem(), time)
    }

    /// The Rekor v1 entry (kind `dsse` 0.0.1, signed entry timestamp and inclusion proof) for
    /// an envelope whose signature `verifier` is a public key or certificate PEM.
    pub fn entry_v1(&self, payload: &[u8], sig: &[u8], verifier: &str, time: i64) -> Value {
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex::encode(sha256(payload))},
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(sha256(payload))},
                "signatures": [{
                    "signature": b64(sig),
                    "verifier": b64(verifier.as_bytes())
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
        let (root, checkpoint) = self.checkpoint(&body);
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

    /// The Rekor v2 entry for a DSSE envelope signed with the key of `cert_der`: kind
    /// `hashedrekord` 0.0.2 over the digest of the envelope's pre-authentication encoding (as
    /// Rekor v2 logs cosign v3 signatures), an inclusion proof to a signed checkpoint, and no
    /// integrated time or signed entry timestamp (Rekor v2 has neither: the time comes from a
    /// TSA).
    pub fn entry_v2(&self, pae: &[u8], sig: &[u8], cert_der: &[u8]) -> Value {
        let body = serde_json::to_vec(&json!({
            "apiVersion": "0.0.2",
            "kind": "hashedrekord",
            "spec": {"hashedRekordV002": {
                "data": {"algorithm": "SHA2_256", "digest": b64(&sha256(pae))},
                "signature": {
                    "content": b64(sig),
                    "verifier": {
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "x509Certificate": {"rawBytes": b64(cert_der)}
                    }
                }
            }}
        }))
        .expect("json");
        let (root, checkpoint) = self.checkpoint(&body);
        json!({
            "logIndex": "0",
            "logId": {"keyId": b64(&self.log_id())},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
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

    /// The Rekor v2 entry of kind `dsse` 0.0.2 (protobuf-specs `rekor/v2/dsse.proto`) for a
    /// DSSE envelope over `payload` signed with the key of `cert_der`: the payload's hash, the
    /// signature with its verifier, an inclusion proof to a signed checkpoint, no integrated
    /// time. `logged_payload` is what the entry claims was signed (`payload`, unless a test
    /// wants an entry for something else).
    pub fn entry_v2_dsse(&self, logged_payload: &[u8], sig: &[u8], cert_der: &[u8]) -> Value {
        let body = serde_json::to_vec(&json!({
            "apiVersion": "0.0.2",
            "kind": "dsse",
            "spec": {"dsseV002": {
                "payloadHash": {"algorithm": "SHA2_256", "digest": b64(&sha256(logged_payload))},
                "signatures": [{
                    "content": b64(sig),
                    "verifier": {
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "x509Certificate": {"rawBytes": b64(cert_der)}
                    }
                }]
            }}
        }))
        .expect("json");
        let (root, checkpoint) = self.checkpoint(&body);
        json!({
            "logIndex": "0",
            "logId": {"keyId": b64(&self.log_id())},
            "kindVersion": {"kind": "dsse", "version": "0.0.2"},
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

    /// The root of a tree whose only leaf is `body`, and the log's signed checkpoint of it.
    fn checkpoint(&self, body: &[u8]) -> ([u8; 32], String) {
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(body);
        let root = sha256(&leaf);
        let note = format!("rekor.test.invalid - 1\n1\n{}\n", b64(&root));
        let mut signed = self.log_id()[..4].to_vec();
        signed.extend_from_slice(&self.key.sign(note.as_bytes()));
        let checkpoint = format!("{note}\n\u{2014} rekor.test.invalid {}\n", b64(&signed));
        (root, checkpoint)
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
    let sig = key.sign(&pae(&payload));
    let time = now() - 60;
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "publicKey": {"hint": key.key_id().as_str()},
            "tlogEntries": [rekor.entry(&payload, &sig, key, time)]
        },
        "dsseEnvelope": envelope(&payload, &sig)
    }))
    .expect("json")
}

/// The payload type of an in-toto statement in a DSSE envelope.
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The DSSE pre-authentication encoding of an in-toto `payload`: the bytes actually signed.
fn pae(payload: &[u8]) -> Vec<u8> {
    let mut message = format!("DSSEv1 {} {IN_TOTO} {} ", IN_TOTO.len(), payload.len()).into_bytes();
    message.extend_from_slice(payload);
    message
}

/// A bundle's `dsseEnvelope` for `payload` signed with `sig`.
fn envelope(payload: &[u8], sig: &[u8]) -> Value {
    json!({
        "payload": b64(payload),
        "payloadType": IN_TOTO,
        "signatures": [{"sig": b64(sig), "keyid": ""}]
    })
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
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

/// A throwaway Sigstore for keyless signatures: a Fulcio-like CA issuing short-lived code-signing
/// certificates (SAN identity, OIDC issuer in extension 1.3.6.1.4.1.57264.1.8), the
/// [`FakeRekor`] log (v1 entries with a signed entry timestamp, v2 entries with a checkpoint),
/// and an RFC 3161 timestamp authority, all named by [`FakeSigstore::trusted_root`]. The
/// bundles it makes are what cosign v3 writes, so airlock's verifier checks them unchanged.
pub struct FakeSigstore {
    /// The transparency log.
    pub rekor: FakeRekor,
    fulcio: rcgen::Certificate,
    fulcio_key: rcgen::KeyPair,
    tsa_root: rcgen::Certificate,
    tsa_leaf: rcgen::Certificate,
    tsa_key: p256::ecdsa::SigningKey,
}

/// The transparency and time evidence of a keyless bundle.
#[derive(Debug, Clone, Copy)]
pub enum Evidence {
    /// A Rekor v1 entry integrated at this time (its signed entry timestamp is the signing
    /// time), no timestamp.
    RekorV1 {
        /// Unix seconds.
        integrated: i64,
    },
    /// A Rekor v2 entry (no integrated time) and an RFC 3161 timestamp at this time.
    RekorV2Tsa {
        /// Unix seconds.
        tsa_time: i64,
    },
    /// A Rekor v2 `dsse` 0.0.2 entry (as Rekor v2 logs DSSE attestations) and an RFC 3161
    /// timestamp at this time.
    RekorV2DsseTsa {
        /// Unix seconds.
        tsa_time: i64,
        /// The entry logs the hash of another payload than the envelope's.
        other_payload: bool,
    },
}

/// What a keyless signature claims and when.
#[derive(Debug, Clone)]
pub struct Keyless {
    /// The certificate's SAN (an email or a URI).
    pub identity: String,
    /// The OIDC issuer.
    pub issuer: String,
    /// The certificate's validity, Unix seconds (not before, not after).
    pub valid: (i64, i64),
    /// The log entry and timestamp.
    pub evidence: Evidence,
}

impl Keyless {
    /// A certificate valid for ten minutes around a signature made a minute ago, with `evidence`
    /// at that minute.
    pub fn fresh(identity: &str, issuer: &str, rekor_v2: bool) -> Keyless {
        let t = now() - 60;
        Keyless {
            identity: identity.into(),
            issuer: issuer.into(),
            valid: (t - 300, t + 300),
            evidence: if rekor_v2 {
                Evidence::RekorV2Tsa { tsa_time: t }
            } else {
                Evidence::RekorV1 { integrated: t }
            },
        }
    }
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("ca key");
    let cert = params.self_signed(&key).expect("ca cert");
    (cert, key)
}

/// An ECDSA P-256 key usable both by rcgen (to certify) and by p256 (to sign).
fn leaf_key() -> (rcgen::KeyPair, p256::ecdsa::SigningKey) {
    use p256::pkcs8::DecodePrivateKey as _;
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let signer = p256::ecdsa::SigningKey::from_pkcs8_der(&key.serialize_der()).expect("pkcs8");
    (key, signer)
}

fn p256_sign(key: &p256::ecdsa::SigningKey, message: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::Signer as _;
    let sig: p256::ecdsa::DerSignature = key.sign(message);
    sig.as_bytes().to_vec()
}

impl Default for FakeSigstore {
    fn default() -> Self {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose};
        let (fulcio, fulcio_key) = ca("airlock test fulcio");
        let (tsa_root, tsa_root_key) = ca("airlock test tsa root");
        let (key, tsa_key) = leaf_key();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("tsa params");
        params
            .distinguished_name
            .push(DnType::CommonName, "airlock test tsa");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::TimeStamping];
        let tsa_leaf = params
            .signed_by(&key, &tsa_root, &tsa_root_key)
            .expect("tsa cert");
        FakeSigstore {
            rekor: FakeRekor::default(),
            fulcio,
            fulcio_key,
            tsa_root,
            tsa_leaf,
            tsa_key,
        }
    }
}

impl FakeSigstore {
    /// The `trusted_root.json` naming this Sigstore's log, CA and TSA (no CT log: Fulcio
    /// certificates here carry no SCT, and airlock checks SCTs only when the root lists CT logs).
    pub fn trusted_root(&self) -> Value {
        let mut root = self.rekor.trusted_root();
        root["certificateAuthorities"] = json!([{
            "subject": {"organization": "airlock", "commonName": "airlock test fulcio"},
            "uri": "https://fulcio.test.invalid",
            "certChain": {"certificates": [{"rawBytes": b64(self.fulcio.der())}]},
            "validFor": {"start": "2020-01-01T00:00:00Z"}
        }]);
        root["timestampAuthorities"] = json!([{
            "subject": {"organization": "airlock", "commonName": "airlock test tsa"},
            "uri": "https://tsa.test.invalid",
            "certChain": {"certificates": [
                {"rawBytes": b64(self.tsa_leaf.der())},
                {"rawBytes": b64(self.tsa_root.der())}
            ]},
            "validFor": {"start": "2020-01-01T00:00:00Z"}
        }]);
        root
    }

    /// A code-signing certificate for `k.identity` from `k.issuer`, valid over `k.valid`.
    fn certificate(&self, k: &Keyless) -> (Vec<u8>, p256::ecdsa::SigningKey) {
        use rcgen::{CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, SanType};
        let (key, signer) = leaf_key();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        let san = k.identity.clone().try_into().expect("ia5 identity");
        params.subject_alt_names = vec![if k.identity.contains("://") {
            SanType::URI(san)
        } else {
            SanType::Rfc822Name(san)
        }];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + std::time::Duration::from_secs(k.valid.0 as u64);
        params.not_after = epoch + std::time::Duration::from_secs(k.valid.1 as u64);
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
            der::tlv(0x0c, k.issuer.as_bytes()),
        )];
        let cert = params
            .signed_by(&key, &self.fulcio, &self.fulcio_key)
            .expect("leaf cert");
        (cert.der().to_vec(), signer)
    }

    /// An RFC 3161 time-stamp response (status granted, a CMS SignedData over a TSTInfo) at
    /// `time` over `signature`, signed by this TSA.
    pub fn timestamp(&self, signature: &[u8], time: i64) -> Vec<u8> {
        let sha256_alg = der::seq(&[&der::oid(&[2, 16, 840, 1, 101, 3, 4, 2, 1])]);
        let tst_info_oid = der::oid(&[1, 2, 840, 113549, 1, 9, 16, 1, 4]);
        let tst_info = der::seq(&[
            &der::int(1),
            &der::oid(&[1, 3, 6, 1, 4, 1, 57264, 2]),
            &der::seq(&[&sha256_alg, &der::octets(&sha256(signature))]),
            &der::int(time as u64),
            &der::generalized_time(time),
        ]);
        let content_type = der::seq(&[
            &der::oid(&[1, 2, 840, 113549, 1, 9, 3]),
            &der::set(&[&tst_info_oid]),
        ]);
        let message_digest = der::seq(&[
            &der::oid(&[1, 2, 840, 113549, 1, 9, 4]),
            &der::set(&[&der::octets(&sha256(&tst_info))]),
        ]);
        let attrs = der::set(&[&content_type, &message_digest]);
        let signature_value = p256_sign(&self.tsa_key, &attrs);
        let (issuer, serial) = der::issuer_and_serial(self.tsa_leaf.der());
        let signer_info = der::seq(&[
            &der::int(1),
            &der::seq(&[&issuer, &serial]),
            &sha256_alg,
            // [0] IMPLICIT: the same attributes, SET tag replaced.
            &der::tlv(0xa0, &attrs[2..]),
            &der::seq(&[&der::oid(&[1, 2, 840, 10045, 4, 3, 2])]),
            &der::octets(&signature_value),
        ]);
        let signed_data = der::seq(&[
            &der::int(3),
            &der::set(&[&sha256_alg]),
            &der::seq(&[&tst_info_oid, &der::tlv(0xa0, &der::octets(&tst_info))]),
            &der::set(&[&signer_info]),
        ]);
        let token = der::seq(&[
            &der::oid(&[1, 2, 840, 113549, 1, 7, 2]),
            &der::tlv(0xa0, &signed_data),
        ]);
        der::seq(&[&der::seq(&[&der::int(0)]), &token])
    }

    /// A keyless Sigstore bundle v0.3 signing `subject` as cosign v3 does.
    pub fn bundle(&self, k: &Keyless, repo: &str, subject: &Digest) -> Vec<u8> {
        let payload = statement(repo, subject);
        let (cert, signer) = self.certificate(k);
        let message = pae(&payload);
        let sig = p256_sign(&signer, &message);
        let (tlog, timestamps) = match k.evidence {
            Evidence::RekorV1 { integrated } => {
                let pem = format!(
                    "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                    b64(&cert)
                );
                (
                    self.rekor.entry_v1(&payload, &sig, &pem, integrated),
                    json!([]),
                )
            }
            Evidence::RekorV2Tsa { tsa_time } => (
                self.rekor.entry_v2(&message, &sig, &cert),
                json!([{"signedTimestamp": b64(&self.timestamp(&sig, tsa_time))}]),
            ),
            Evidence::RekorV2DsseTsa {
                tsa_time,
                other_payload,
            } => {
                let other = statement(repo, &Digest::of(b"another image"));
                let logged = if other_payload { &other } else { &payload };
                (
                    self.rekor.entry_v2_dsse(logged, &sig, &cert),
                    json!([{"signedTimestamp": b64(&self.timestamp(&sig, tsa_time))}]),
                )
            }
        };
        serde_json::to_vec(&json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(&cert)},
                "tlogEntries": [tlog],
                "timestampVerificationData": {"rfc3161Timestamps": timestamps}
            },
            "dsseEnvelope": envelope(&payload, &sig)
        }))
        .expect("json")
    }

    /// Signs `subject` keyless and pushes the referrer by digest, with no tag.
    pub async fn push_signature(
        &self,
        reg: &Registry,
        repo: &Repo,
        subject: &Blob,
        k: &Keyless,
    ) -> Image {
        let r = referrer(
            &self.bundle(k, &repo.to_string(), &subject.digest()),
            subject,
        );
        push_image(reg, repo, &r, None).await;
        r
    }
}
