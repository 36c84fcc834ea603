//! Deterministic ledgers for the ledger benchmark and `examples/ledger_gen.rs`: one admitted
//! import of three signed, scanned images per entry (about 1.8 KB a line), one checkpoint per
//! entry.

use std::io::Write as _;
use std::path::Path;

use airlock::ledger::checkpoint::Checkpoint;
use airlock::ledger::merkle::{leaf_hash, Frontier};
use airlock::ledger::{
    self, ArtifactRecord, Entry, LedgerSigner, Outcome, SignatureResult, Verdict,
};
use sha2::Digest as _;

/// Makes the ledger `dir` (absent or empty) with entries `0..n` (password `bench`), as `n`
/// appends would leave it: the same bytes (canonical lines, one checkpoint per entry signed by
/// the ledger key) without the per-append file dance, so 100 000 entries take seconds, not the
/// many minutes of 100 000 appends. The caches (`tree-state`, the derived files) are left for
/// the first open to build, as for a ledger made before they existed.
pub fn write_ledger(dir: &Path, n: u64) {
    let origin = "bench.example/ledger";
    ledger::init(dir, origin, b"bench").expect("init (the directory must be absent or empty)");
    let signer = LedgerSigner::load(dir, b"bench").expect("key");
    let entries = std::fs::File::create(dir.join(ledger::ENTRIES)).expect("entries");
    let mut entries = std::io::BufWriter::new(entries);
    let mut frontier = Frontier::new();
    let mut note = String::new();
    for i in 0..n {
        let mut e = entry(i);
        e.index = i;
        let line = e.to_line().expect("entry");
        entries.write_all(&line).expect("write");
        entries.write_all(b"\n").expect("write");
        frontier.push(leaf_hash(&line));
        let cp = Checkpoint::new(origin, frontier.size(), frontier.root());
        note = signer.sign_note(&cp.body()).expect("sign");
        std::fs::write(
            dir.join(ledger::CHECKPOINTS).join((i + 1).to_string()),
            &note,
        )
        .expect("checkpoint");
    }
    entries.flush().expect("flush");
    if n > 0 {
        std::fs::write(dir.join(ledger::CHECKPOINT), &note).expect("checkpoint");
    }
    let _ = std::fs::remove_file(dir.join(ledger::STATE));
}

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
