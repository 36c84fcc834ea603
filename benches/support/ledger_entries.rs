//! Deterministic ledger entries for the ledger benchmark and `examples/ledger_gen.rs`: one
//! admitted import of three signed, scanned images per entry (about 1.8 KB a line).

use airlock::ledger::{ArtifactRecord, Entry, Outcome, SignatureResult, Verdict};
use sha2::Digest as _;

fn sha(s: &str) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(s.as_bytes())))
}

/// Entry number `n` (its `index` is set by the append).
pub fn entry(n: u64) -> Entry {
    let mut e = Entry::new(
        "bench",
        &sha(&format!("bundle {n}")),
        "registry.internal/mirror",
        Outcome::Admitted,
    );
    e.bundle.signatures = vec![SignatureResult {
        signer: sha("key"),
        verdict: Verdict::Verified,
        detail: None,
    }];
    e.policy_digest = Some(sha("policy"));
    e.artifacts = (0..3)
        .map(|a| ArtifactRecord {
            kind: "image".into(),
            source_ref: format!("registry.example/team/app-{a}:1.{n}"),
            target_ref: Some(format!("registry.internal/mirror/team/app-{a}:1.{n}")),
            digest: sha(&format!("artifact {n} {a}")),
            media_type: Some("application/vnd.oci.image.index.v1+json".into()),
            signatures: vec![SignatureResult {
                signer: sha("key"),
                verdict: Verdict::Verified,
                detail: None,
            }],
            scan: Some(serde_json::json!({"critical": 0, "high": 1, "medium": 4})),
        })
        .collect();
    e
}
