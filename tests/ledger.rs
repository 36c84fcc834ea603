//! The provenance ledger: upstream vectors (RFC 6962 proofs, C2SP signed notes), tamper
//! detection with the exact index, crash recovery, locking, show/prove/consistency/cosign/export,
//! through the library and through the `airlock` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use airlock::ledger::{
    self, checkpoint::Checkpoint, merkle, note, ArtifactRecord, Entry, LedgerError, LedgerSigner,
    Outcome, Query, SignatureResult, Verdict, VerifyOptions, VerifyReport,
};
use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const ORIGIN: &str = "airlock.test/ledger";
const PASSWORD: &[u8] = b"ledger test password";

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/merkle")
        .join(rel)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    assert!(
        dir.is_dir(),
        "vector directory `{}` is missing",
        dir.display()
    );
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap_or_default())
        .expect("vector base64")
}

/// A 32-byte hash, or `None` when the vector holds something else (which must then fail).
fn hash(v: &Value) -> Option<merkle::Hash> {
    b64(v).try_into().ok()
}

fn proof_hashes(v: &Value) -> Option<Vec<merkle::Hash>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(a) => a.iter().map(hash).collect(),
        _ => None,
    }
}

fn testonly_tree() -> (Vec<Vec<u8>>, Value) {
    let c: Value = serde_json::from_slice(
        &std::fs::read(data("transparency-dev-testonly-constants.json")).unwrap(),
    )
    .unwrap();
    let leaves = c["leaf_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| hex::decode(l.as_str().unwrap()).unwrap())
        .collect();
    (leaves, c)
}

// ---------------------------------------------------------------------------------------------
// Upstream vectors
// ---------------------------------------------------------------------------------------------

#[test]
fn transparency_dev_inclusion_vectors_all_pass() {
    let (leaves, _) = testonly_tree();
    let tree = merkle::Tree::from_leaf_hashes(leaves.iter().map(|l| merkle::leaf_hash(l)));
    let files = json_files(&data("transparency-dev/inclusion"));
    assert_eq!(files.len(), 98, "expected all 98 inclusion vectors");
    let mut happy = 0;
    for f in files {
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let index = v["leafIdx"].as_u64().unwrap();
        let size = v["treeSize"].as_u64().unwrap();
        let root = b64(&v["root"]);
        let result = match (hash(&v["leafHash"]), proof_hashes(&v["proof"])) {
            (Some(leaf), Some(proof)) => {
                merkle::verify_inclusion(index, size, &leaf, &proof, &root).is_ok()
            }
            _ => false,
        };
        assert_eq!(result, !want_err, "{}: {}", f.display(), v["desc"]);
        // Our own proofs equal upstream's for the testonly tree.
        if !want_err && size <= 8 && tree.root_at(size).map(|r| r.to_vec()) == Some(root.clone()) {
            let ours = tree.inclusion_proof(index, size).unwrap();
            assert_eq!(Some(ours), proof_hashes(&v["proof"]), "{}", f.display());
            happy += 1;
        }
    }
    assert!(happy >= 5, "happy paths cross-checked: {happy}");
}

#[test]
fn transparency_dev_consistency_vectors_all_pass() {
    let (leaves, _) = testonly_tree();
    let tree = merkle::Tree::from_leaf_hashes(leaves.iter().map(|l| merkle::leaf_hash(l)));
    let files = json_files(&data("transparency-dev/consistency"));
    assert_eq!(files.len(), 98, "expected all 98 consistency vectors");
    let mut happy = 0;
    for f in files {
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let (s1, s2) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        let (r1, r2) = (b64(&v["root1"]), b64(&v["root2"]));
        let result = match proof_hashes(&v["proof"]) {
            Some(proof) => merkle::verify_consistency(s1, s2, &proof, &r1, &r2).is_ok(),
            None => false,
        };
        assert_eq!(result, !want_err, "{}: {}", f.display(), v["desc"]);
        if !want_err && s2 <= 8 && tree.root_at(s2).map(|r| r.to_vec()) == Some(r2.clone()) {
            assert_eq!(
                Some(tree.consistency_proof(s1, s2).unwrap()),
                proof_hashes(&v["proof"]),
                "{}",
                f.display()
            );
            happy += 1;
        }
    }
    assert!(happy >= 5, "happy paths cross-checked: {happy}");
}

#[test]
fn transparency_dev_testonly_roots_and_node_hashes() {
    let (leaves, c) = testonly_tree();
    assert_eq!(leaves.len(), 8);
    let hashes: Vec<merkle::Hash> = leaves.iter().map(|l| merkle::leaf_hash(l)).collect();
    let tree = merkle::Tree::from_leaf_hashes(hashes.iter().copied());
    let roots = c["root_hashes"].as_array().unwrap();
    assert_eq!(roots.len(), 9);
    for (size, r) in roots.iter().enumerate() {
        let want = hex::decode(r.as_str().unwrap()).unwrap();
        assert_eq!(
            tree.root_at(size as u64).unwrap().to_vec(),
            want,
            "root of size {size}"
        );
        let mut f = merkle::Frontier::new();
        hashes[..size].iter().for_each(|h| f.push(*h));
        assert_eq!(f.root().to_vec(), want, "frontier root of size {size}");
    }
    assert_eq!(
        hex::encode(merkle::empty_root()),
        c["empty_root_hash"].as_str().unwrap()
    );
    for (level, nodes) in c["node_hashes"].as_array().unwrap().iter().enumerate() {
        let width = 1usize << level;
        for (i, n) in nodes.as_array().unwrap().iter().enumerate() {
            let got = merkle::root_of(&hashes[i * width..(i + 1) * width]);
            assert_eq!(hex::encode(got), n.as_str().unwrap(), "node {level}/{i}");
        }
    }
}

fn note_bytes(case: &Value) -> Vec<u8> {
    match case.get("note_bytes_hex").and_then(Value::as_str) {
        Some(h) => hex::decode(h).unwrap(),
        None => case["note"].as_str().expect("note").as_bytes().to_vec(),
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn c2sp_and_go_signed_note_vectors_all_pass() {
    let v: Value =
        serde_json::from_slice(&std::fs::read(data("signed-notes.json")).unwrap()).unwrap();
    let cases = v["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 19, "expected all 19 signed-note cases");
    for case in cases {
        let src = case["source"].as_str().unwrap();
        let keys: Vec<note::VerifierKey> = strs(&case["verifier_keys"])
            .iter()
            .map(|k| note::VerifierKey::parse(k).expect(src))
            .collect();
        for k in strs(&case["verifier_keys"]) {
            assert_eq!(
                note::VerifierKey::parse(&k).unwrap().to_string(),
                k,
                "{src}: vkey round trip"
            );
        }
        let msg = note_bytes(case);
        let got = note::open(&msg, &keys);
        let exp = &case["expected"];
        let result = exp["result"].as_str().unwrap();
        if result == "ok" {
            let opened = got.unwrap_or_else(|e| panic!("{src}: {e}"));
            if let Some(text) = exp["text"].as_str() {
                assert_eq!(opened.text, text, "{src}");
            }
            if exp.get("verified").is_some() {
                let ids: Vec<String> = opened.verified.iter().map(|s| s.id()).collect();
                let want = strs(&exp["verified"]);
                assert_eq!(ids.len(), want.len(), "{src}");
                for (id, w) in ids.iter().zip(&want) {
                    assert!(
                        id == w || id.starts_with(&format!("{w}+")),
                        "{src}: {id} vs {w}"
                    );
                }
            }
            if exp.get("unverified").is_some() {
                let ids: Vec<String> = opened.unverified.iter().map(|s| s.id()).collect();
                assert_eq!(ids, strs(&exp["unverified"]), "{src}");
            }
            if let Some(n) = exp["unverified_count"].as_u64() {
                assert_eq!(opened.unverified.len() as u64, n, "{src}");
            }
            if let Some(signer) = case["signer_key"].as_str() {
                let s = note::NoteSigner::parse_go_private_key(signer).unwrap();
                assert_eq!(s.verifier(), keys[0], "{src}");
                let signed = note::sign(&opened.text, &[&s], 0).unwrap();
                assert_eq!(
                    signed.as_bytes(),
                    &msg[..],
                    "{src}: deterministic signature"
                );
            }
        } else if result == "error" {
            let err = got.expect_err(src);
            let want = exp["error"].as_str().unwrap();
            match &err {
                note::NoteError::Malformed(_) => assert_eq!(want, "malformed note", "{src}"),
                note::NoteError::AmbiguousKey(k) => {
                    assert_eq!(want, format!("ambiguous key {k}"), "{src}")
                }
                note::NoteError::InvalidSignature(k) => {
                    assert_eq!(want, format!("invalid signature for key {k}"), "{src}")
                }
                note::NoteError::NoVerifiableSignatures(ids) => {
                    assert_eq!(want, "note has no verifiable signatures", "{src}");
                    assert_eq!(*ids, strs(&exp["unverified"]), "{src}");
                }
                other => panic!("{src}: unexpected {other}"),
            }
        } else if result.starts_with("error: no verifiable signatures") {
            assert!(
                matches!(got, Err(note::NoteError::NoVerifiableSignatures(ref ids)) if ids.len() == 1),
                "{src}"
            );
            assert_eq!(note::Note::parse(&msg).unwrap().signatures.len(), 1);
        } else if result.starts_with("parse only") {
            let parsed = note::Note::parse(&msg).unwrap();
            let cp = Checkpoint::parse_body(&parsed.text).unwrap();
            assert_eq!(cp.origin, "example.com/behind-the-sofa");
            assert_eq!(cp.size, 20852163);
            assert_eq!(
                cp.root_base64(),
                "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
            );
            let w = &parsed.signatures[1];
            assert_eq!(w.name, "witness.example.com/w1");
            let raw = B64.decode(&w.base64).unwrap();
            assert_eq!(raw.len(), 4 + 8 + 64, "cosignature/v1 layout");
        } else {
            panic!("{src}: unknown expectation {result}");
        }
    }

    // TestNewVerifier: bad keys, every proper substring and every single-byte increment fail.
    for bad in strs(&v["invalid_verifier_keys"]) {
        assert!(note::VerifierKey::parse(&bad).is_err(), "{bad}");
    }
    let good = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    note::VerifierKey::parse(good).unwrap();
    let b = good.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i != 0 || j != b.len() {
                let s = String::from_utf8_lossy(&b[i..j]);
                assert!(note::VerifierKey::parse(&s).is_err(), "substring {s}");
            }
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] += 1;
        assert!(
            note::VerifierKey::parse(&String::from_utf8_lossy(&m)).is_err(),
            "increment at {i}"
        );
    }

    // sumdb/tlog tree note: the same three-line body as a checkpoint.
    let t = &v["sumdb_tree_note"];
    let cp = Checkpoint::parse_body(t["note_text"].as_str().unwrap()).unwrap();
    assert_eq!(cp.origin, "go.sum database tree");
    assert_eq!(cp.size, t["tree_size"].as_u64().unwrap());
    assert_eq!(hex::encode(cp.root), t["root_hash_hex"].as_str().unwrap());
    assert_eq!(cp.root, merkle::leaf_hash(b"hello world"));
    let bad = strs(&t["bad_trees"]);
    assert_eq!(bad.len(), 3);
    assert_ne!(
        Checkpoint::parse_body(&bad[0]).unwrap().origin,
        "go.sum database tree"
    );
    assert!(Checkpoint::parse_body(&bad[1]).is_err());
    assert!(Checkpoint::parse_body(&bad[2]).is_err());
    let with_junk = format!("{}extra line\n", t["note_text"].as_str().unwrap());
    assert_eq!(
        Checkpoint::parse_body(&with_junk).unwrap().extensions,
        vec!["extra line".to_owned()]
    );
}

#[test]
fn note_parser_rejects_every_truncation_of_a_signed_checkpoint() {
    let (_t, dir, signer) = new_ledger();
    let mut l = ledger::Ledger::open(&dir).unwrap();
    let r = l.append(&entry(0), &signer).unwrap();
    let bytes = r.checkpoint.note.as_bytes();
    for cut in 0..bytes.len() {
        assert!(
            ledger::SignedCheckpoint::open(&bytes[..cut], &signer.verifier(), &[]).is_err(),
            "cut at {cut}"
        );
    }
    // And every flipped bit of the signature line is rejected.
    let sig_start = r.checkpoint.note.rfind('\u{2014}').unwrap();
    for i in sig_start..bytes.len() - 1 {
        let mut m = bytes.to_vec();
        m[i] ^= 0x01;
        assert!(
            ledger::SignedCheckpoint::open(&m, &signer.verifier(), &[]).is_err(),
            "flip at {i}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for ledgers
// ---------------------------------------------------------------------------------------------

fn sha(s: &str) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(s.as_bytes())))
}

fn entry(n: u64) -> Entry {
    let mut e = Entry::new(
        "operator",
        &sha(&format!("bundle {n}")),
        "registry.internal:5000/mirror",
        Outcome::Admitted,
    );
    e.bundle.name = Some(format!("release-{n}"));
    e.bundle.signatures = vec![SignatureResult {
        signer: sha("release key"),
        verdict: Verdict::Verified,
        detail: None,
    }];
    e.policy_digest = Some(sha("policy"));
    e.artifacts = vec![ArtifactRecord {
        kind: "image".into(),
        source_ref: format!("registry.example/app:{n}"),
        target_ref: Some(format!("registry.internal:5000/mirror/app:{n}")),
        digest: sha(&format!("artifact {n}")),
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        signatures: vec![SignatureResult {
            signer: sha("app key"),
            verdict: Verdict::Verified,
            detail: None,
        }],
        scan: Some(serde_json::json!({"critical": 0, "high": n})),
    }];
    e
}

fn new_ledger() -> (tempfile::TempDir, PathBuf, LedgerSigner) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("ledger");
    ledger::init(&dir, ORIGIN, PASSWORD).unwrap();
    let signer = LedgerSigner::load(&dir, PASSWORD).unwrap();
    (t, dir, signer)
}

fn ledger_with(n: u64) -> (tempfile::TempDir, PathBuf, LedgerSigner) {
    let (t, dir, signer) = new_ledger();
    let mut l = ledger::Ledger::open(&dir).unwrap();
    for i in 0..n {
        let r = l.append(&entry(i), &signer).unwrap();
        assert_eq!(r.index, i);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }
    (t, dir, signer)
}

fn check(dir: &Path) -> VerifyReport {
    ledger::verify(dir, &VerifyOptions::default()).unwrap()
}

fn first(dir: &Path) -> LedgerError {
    let mut r = check(dir);
    assert!(!r.is_ok(), "tampering was not detected");
    r.problems.remove(0)
}

fn read_lines(dir: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(dir.join(ledger::ENTRIES)).unwrap();
    b.split_inclusive(|&c| c == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn write_lines(dir: &Path, lines: &[Vec<u8>]) {
    std::fs::write(dir.join(ledger::ENTRIES), lines.concat()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Appends and verification
// ---------------------------------------------------------------------------------------------

#[test]
fn appends_issue_checkpoints_that_verify() {
    let (_t, dir, _signer) = ledger_with(5);
    let r = check(&dir);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.entries, 5);
    assert_eq!(r.checkpoint_size, Some(5));
    assert_eq!(
        r.checkpoints_verified, 6,
        "checkpoints/0 through checkpoints/5"
    );
    for s in 0..=5 {
        assert!(dir.join("checkpoints").join(s.to_string()).is_file());
    }
    // Every line is canonical JSON and its bytes are the leaf.
    let lines = read_lines(&dir);
    let leaves: Vec<_> = lines
        .iter()
        .map(|l| merkle::leaf_hash(&l[..l.len() - 1]))
        .collect();
    let cp_text = std::fs::read_to_string(dir.join("checkpoint")).unwrap();
    let opened = note::open(
        cp_text.as_bytes(),
        &[ledger::read_vkey(&dir.join("ledger.vkey")).unwrap()],
    )
    .unwrap();
    let cp = Checkpoint::parse_body(&opened.text).unwrap();
    assert_eq!(cp.root, merkle::root_of(&leaves));
    assert_eq!(cp.origin, ORIGIN);
    // The verifier key is in signed-note form and its hash is the C2SP key hash.
    let vkey = std::fs::read_to_string(dir.join("ledger.vkey")).unwrap();
    let k = note::VerifierKey::parse(vkey.trim()).unwrap();
    assert_eq!(
        k.hash(),
        note::key_hash(ORIGIN, 0x01, k.public_key().as_bytes())
    );
}

#[test]
fn a_signer_that_is_not_the_ledger_key_is_refused() {
    let (_t, dir, _signer) = new_ledger();
    let other = LedgerSigner::generate(ORIGIN).unwrap();
    let mut l = ledger::Ledger::open(&dir).unwrap();
    assert!(matches!(
        l.append(&entry(0), &other),
        Err(LedgerError::SignerMismatch { .. })
    ));
    assert!(matches!(
        LedgerSigner::load(&dir, b"wrong"),
        Err(LedgerError::Seal { .. })
    ));
    let mut bad = entry(0);
    bad.artifacts[0].digest = "sha256:nothex".into();
    assert!(matches!(
        l.append(&bad, &_signer),
        Err(LedgerError::InvalidEntry(_))
    ));
    assert_eq!(l.size(), 0);
}

#[test]
fn tamper_flip_one_byte_in_entry_k_is_reported_at_k() {
    // A byte inside a digest: still canonical JSON, caught by the Merkle tree.
    let (_t, dir, _s) = ledger_with(6);
    let mut lines = read_lines(&dir);
    let text = String::from_utf8(lines[3].clone()).unwrap();
    let pos = text.find(&sha("artifact 3")[7..]).unwrap() + 5;
    let c = lines[3][pos];
    lines[3][pos] = if c == b'0' { b'1' } else { b'0' };
    write_lines(&dir, &lines);
    let p = first(&dir);
    assert!(
        matches!(
            p,
            LedgerError::EntryMismatch {
                index: 3,
                last: 3,
                checkpoint: 4
            }
        ),
        "{p}"
    );

    // A structural byte: the line is no longer an entry.
    let (_t, dir, _s) = ledger_with(6);
    let mut lines = read_lines(&dir);
    lines[3][0] = b'[';
    write_lines(&dir, &lines);
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::EntryMalformed { index: 3, .. }),
        "{p}"
    );

    // Whitespace added: same data, not canonical.
    let (_t, dir, _s) = ledger_with(6);
    let mut lines = read_lines(&dir);
    lines[3].insert(1, b' ');
    write_lines(&dir, &lines);
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::EntryNotCanonical { index: 3 }),
        "{p}"
    );
}

#[test]
fn tamper_delete_a_line_is_reported_at_its_index() {
    let (_t, dir, _s) = ledger_with(6);
    let mut lines = read_lines(&dir);
    lines.remove(2);
    write_lines(&dir, &lines);
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::EntryRemoved { index: 2, found: 3 }),
        "{p}"
    );
    assert!(check(&dir).problems.iter().any(|p| matches!(
        p,
        LedgerError::Truncated {
            index: 5,
            expected: 6
        }
    )));
}

#[test]
fn tamper_swap_two_lines_is_reported_at_the_first() {
    let (_t, dir, _s) = ledger_with(6);
    let mut lines = read_lines(&dir);
    lines.swap(1, 4);
    write_lines(&dir, &lines);
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::EntriesReordered { index: 1, line: 4 }),
        "{p}"
    );
}

#[test]
fn tamper_truncate_is_reported_at_the_first_missing_index() {
    let (_t, dir, _s) = ledger_with(6);
    let lines = read_lines(&dir);
    write_lines(&dir, &lines[..4]);
    let p = first(&dir);
    assert!(
        matches!(
            p,
            LedgerError::Truncated {
                index: 4,
                expected: 6
            }
        ),
        "{p}"
    );

    // Cut inside a line: the torn line comes first, at the same index.
    let (_t, dir, _s) = ledger_with(6);
    let bytes = std::fs::read(dir.join("entries.jsonl")).unwrap();
    let cut = read_lines(&dir)[..4].concat().len() + 10;
    std::fs::write(dir.join("entries.jsonl"), &bytes[..cut]).unwrap();
    let p = first(&dir);
    assert!(
        matches!(
            p,
            LedgerError::TornLine {
                index: 4,
                len: 10,
                ..
            }
        ),
        "{p}"
    );
}

#[test]
fn tamper_older_checkpoint_presented_as_newest_is_a_rollback() {
    let (_t, dir, _s) = ledger_with(6);
    std::fs::copy(dir.join("checkpoints/3"), dir.join("checkpoint")).unwrap();
    let p = first(&dir);
    assert!(
        matches!(
            p,
            LedgerError::Rollback {
                presented: 3,
                newest: 6,
                ..
            }
        ),
        "{p}"
    );
    // An appender refuses to continue from the older checkpoint (it would sign a fork).
    assert!(matches!(
        ledger::Ledger::open(&dir),
        Err(LedgerError::Rollback {
            presented: 3,
            newest: 4,
            ..
        })
    ));

    // Even with the later checkpoints deleted, the entries after 3 are unsigned.
    for s in 4..=6 {
        std::fs::remove_file(dir.join(format!("checkpoints/{s}"))).unwrap();
    }
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::UncommittedEntries { index: 3, count: 3 }),
        "{p}"
    );
}

#[test]
fn tamper_checkpoint_forged_with_another_key_is_reported_with_its_size() {
    let (_t, dir, _s) = ledger_with(6);
    let lines = read_lines(&dir);
    let leaves: Vec<_> = lines[..4]
        .iter()
        .map(|l| merkle::leaf_hash(&l[..l.len() - 1]))
        .collect();
    let cp = Checkpoint::new(ORIGIN, 4, merkle::root_of(&leaves));
    let forged = note::sign(
        &cp.body(),
        &[
            &note::NoteSigner::ed25519(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[42; 32]))
                .unwrap(),
        ],
        0,
    )
    .unwrap();
    std::fs::write(dir.join("checkpoints/4"), &forged).unwrap();
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::ForgedCheckpoint { size: Some(4), .. }),
        "{p}"
    );

    // The latest checkpoint forged too (with a bigger size claiming more entries).
    let (_t, dir, _s) = ledger_with(3);
    let fake = Checkpoint::new(ORIGIN, 9, [7; 32]);
    let forged = note::sign(
        &fake.body(),
        &[
            &note::NoteSigner::ed25519(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[43; 32]))
                .unwrap(),
        ],
        0,
    )
    .unwrap();
    std::fs::write(dir.join("checkpoint"), &forged).unwrap();
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::ForgedCheckpoint { size: Some(9), .. }),
        "{p}"
    );
    assert!(matches!(
        ledger::Ledger::open(&dir),
        Err(LedgerError::ForgedCheckpoint { size: Some(9), .. })
    ));
}

#[test]
fn tamper_edited_stored_checkpoint_is_reported_with_its_size() {
    let (_t, dir, _s) = ledger_with(6);
    let text = std::fs::read_to_string(dir.join("checkpoints/2")).unwrap();
    let root_line = text.lines().nth(2).unwrap().to_owned();
    let mut root = B64.decode(&root_line).unwrap();
    root[0] ^= 1;
    std::fs::write(
        dir.join("checkpoints/2"),
        text.replace(&root_line, &B64.encode(root)),
    )
    .unwrap();
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::BadCheckpointSignature { size: Some(2), .. }),
        "{p}"
    );

    // A checkpoint copied under another size's name.
    let (_t, dir, _s) = ledger_with(6);
    std::fs::copy(dir.join("checkpoints/2"), dir.join("checkpoints/5")).unwrap();
    let p = first(&dir);
    assert!(
        matches!(
            p,
            LedgerError::CheckpointSizeMismatch {
                name: 5,
                body: 2,
                ..
            }
        ),
        "{p}"
    );
}

#[test]
fn a_trusted_checkpoint_detects_a_rewritten_or_rolled_back_ledger() {
    let (t, dir, signer) = ledger_with(4);
    // The auditor keeps checkpoint 4; the operator then rewrites history with the real key:
    // a copy at size 2 that continues differently.
    let kept = std::fs::read(dir.join("checkpoint")).unwrap();
    let fork = t.path().join("fork");
    copy_dir(&dir, &fork);
    let lines = read_lines(&fork);
    write_lines(&fork, &lines[..2]);
    std::fs::copy(fork.join("checkpoints/2"), fork.join("checkpoint")).unwrap();
    for s in 3..=4 {
        std::fs::remove_file(fork.join(format!("checkpoints/{s}"))).unwrap();
    }
    {
        let mut l = ledger::Ledger::open(&fork).unwrap();
        for i in 0..3 {
            let mut e = entry(100 + i);
            e.operator = "mallory".into();
            l.append(&e, &signer).unwrap();
        }
    }
    assert!(
        check(&fork).is_ok(),
        "the rewritten ledger is self-consistent"
    );
    let opts = VerifyOptions {
        trusted_checkpoint: Some((PathBuf::from("kept"), kept.clone())),
        ..Default::default()
    };
    let r = ledger::verify(&fork, &opts).unwrap();
    assert!(
        matches!(r.problems.first(), Some(LedgerError::Fork { size: 4, .. })),
        "{:?}",
        r.problems
    );
    assert!(matches!(
        ledger::prove_consistency(&fork, Path::new("kept"), &kept, None),
        Err(LedgerError::Fork { size: 4, .. })
    ));

    // Rolled back to size 2: the trusted checkpoint covers entries that are gone.
    let back = t.path().join("back");
    copy_dir(&dir, &back);
    write_lines(&back, &read_lines(&back)[..2]);
    std::fs::copy(back.join("checkpoints/2"), back.join("checkpoint")).unwrap();
    for s in 3..=4 {
        std::fs::remove_file(back.join(format!("checkpoints/{s}"))).unwrap();
    }
    assert!(
        check(&back).is_ok(),
        "without the trusted checkpoint the rollback is invisible"
    );
    let r = ledger::verify(&back, &opts).unwrap();
    assert!(
        matches!(
            r.problems.first(),
            Some(LedgerError::Rollback {
                presented: 2,
                newest: 4,
                ..
            })
        ),
        "{:?}",
        r.problems
    );
    assert!(r.problems.iter().any(|p| matches!(
        p,
        LedgerError::Truncated {
            index: 2,
            expected: 4
        }
    )));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Crashes and concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn crash_partial_last_line_is_reported_then_repaired_on_open() {
    let (_t, dir, signer) = ledger_with(3);
    let committed = std::fs::read(dir.join("entries.jsonl")).unwrap();
    let torn = &entry(3).to_line().unwrap()[..40];
    let mut bytes = committed.clone();
    bytes.extend_from_slice(torn);
    std::fs::write(dir.join("entries.jsonl"), &bytes).unwrap();

    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::TornLine { index: 3, offset, len: 40 } if offset == committed.len() as u64),
        "{p}"
    );

    let mut l = ledger::Ledger::open(&dir).unwrap();
    let rec = l.recovery().cloned().expect("recovery reported");
    assert!(rec.torn);
    assert_eq!(rec.bytes, 40);
    assert_eq!(rec.complete_lines, 0);
    assert_eq!(rec.offset, committed.len() as u64);
    assert_eq!(
        std::fs::read(rec.saved_to.unwrap()).unwrap(),
        torn,
        "torn bytes kept aside"
    );
    assert_eq!(std::fs::read(dir.join("entries.jsonl")).unwrap(), committed);
    assert_eq!(l.append(&entry(3), &signer).unwrap().index, 3);
    drop(l);
    assert!(check(&dir).is_ok());
}

#[test]
fn crash_after_the_line_but_before_the_checkpoint_is_rolled_back() {
    let (_t, dir, signer) = ledger_with(3);
    let mut e = entry(3);
    e.index = 3;
    let mut line = e.to_line().unwrap();
    line.push(b'\n');
    let mut bytes = std::fs::read(dir.join("entries.jsonl")).unwrap();
    bytes.extend_from_slice(&line);
    std::fs::write(dir.join("entries.jsonl"), &bytes).unwrap();
    let p = first(&dir);
    assert!(
        matches!(p, LedgerError::UncommittedEntries { index: 3, count: 1 }),
        "{p}"
    );

    let mut l = ledger::Ledger::open(&dir).unwrap();
    let rec = l.recovery().cloned().unwrap();
    assert_eq!((rec.complete_lines, rec.torn), (1, false));
    l.append(&entry(3), &signer).unwrap();
    drop(l);
    assert!(check(&dir).is_ok());
}

#[test]
fn crash_before_checkpoints_copy_and_lost_tree_state_are_repaired() {
    let (_t, dir, signer) = ledger_with(3);
    std::fs::remove_file(dir.join("checkpoints/3")).unwrap();
    std::fs::write(dir.join("tree-state"), b"garbage").unwrap();
    let mut l = ledger::Ledger::open(&dir).unwrap();
    assert!(l.recovery().unwrap().restored_checkpoint);
    assert!(dir.join("checkpoints/3").is_file());
    l.append(&entry(3), &signer).unwrap();
    drop(l);
    std::fs::remove_file(dir.join("tree-state")).unwrap();
    let mut l = ledger::Ledger::open(&dir).unwrap();
    assert!(l.recovery().is_none());
    l.append(&entry(4), &signer).unwrap();
    drop(l);
    let r = check(&dir);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.entries, 5);
}

#[test]
fn a_second_importer_waits_then_fails_clearly() {
    let (_t, dir, _s) = new_ledger();
    let held = ledger::Ledger::open(&dir).unwrap();
    let opts = ledger::OpenOptions {
        lock_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let err = ledger::Ledger::open_with(&dir, &opts).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked by another process"));
    drop(held);
    ledger::Ledger::open_with(&dir, &opts).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Show, proofs, witness, export
// ---------------------------------------------------------------------------------------------

#[test]
fn show_finds_where_a_digest_came_from() {
    let (_t, dir, signer) = new_ledger();
    let mut l = ledger::Ledger::open(&dir).unwrap();
    l.append(&entry(0), &signer).unwrap();
    let mut rejected = entry(1);
    rejected.result = Outcome::Rejected {
        reason: "signature by untrusted key".into(),
    };
    rejected.bundle.signatures[0].verdict = Verdict::Untrusted;
    l.append(&rejected, &signer).unwrap();
    drop(l);

    let found = ledger::find(&dir, &Query::Digest(sha("artifact 1"))).unwrap();
    assert_eq!(found.checkpoint_size, Some(2));
    assert_eq!(found.matches.len(), 1);
    let m = &found.matches[0];
    assert_eq!(m.index, 1);
    assert_eq!(m.bundle, sha("bundle 1"));
    assert_eq!(m.artifacts[0].source_ref, "registry.example/app:1");
    assert_eq!(m.bundle_signatures[0].verdict, Verdict::Untrusted);
    assert!(matches!(&m.result, Outcome::Rejected { reason } if reason.contains("untrusted")));

    let by_ref = ledger::find(
        &dir,
        &Query::Ref("registry.internal:5000/mirror/app:0".into()),
    )
    .unwrap();
    assert_eq!(
        by_ref.matches.iter().map(|m| m.index).collect::<Vec<_>>(),
        vec![0]
    );
    let by_bundle = ledger::find(&dir, &Query::Bundle("release-1".into())).unwrap();
    assert_eq!(by_bundle.matches.len(), 1);
    assert!(ledger::find(&dir, &Query::Digest(sha("nothing")))
        .unwrap()
        .matches
        .is_empty());
}

#[test]
fn inclusion_proofs_verify_with_the_key_alone_and_reject_tampering() {
    let (_t, dir, signer) = ledger_with(7);
    let vkey = signer.verifier();
    for i in 0..7 {
        let p = ledger::prove_inclusion(&dir, i, None).unwrap();
        let text = p.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
        let v = ledger::verify_inclusion_proof(Path::new("p"), text.as_bytes(), &vkey, &[], None)
            .unwrap();
        assert_eq!((v.index, v.tree_size), (i, 7));
    }
    let text = ledger::prove_inclusion(&dir, 3, None).unwrap().to_text();
    assert!(matches!(
        ledger::prove_inclusion(&dir, 7, None),
        Err(LedgerError::IndexOutOfRange { index: 7, size: 7 })
    ));
    // Another key.
    let other = LedgerSigner::generate(ORIGIN).unwrap().verifier();
    assert!(matches!(
        ledger::verify_inclusion_proof(Path::new("p"), text.as_bytes(), &other, &[], None),
        Err(LedgerError::ForgedCheckpoint { .. })
    ));
    // Every byte of the proof part flipped is rejected (or fails to parse).
    let split = text.find("\n\n").unwrap();
    for i in "c2sp.org/tlog-proof@v1\n".len()..split {
        let mut m = text.clone().into_bytes();
        m[i] ^= 0x01;
        assert!(
            ledger::verify_inclusion_proof(Path::new("p"), &m, &vkey, &[], None).is_err(),
            "flip at {i}: {:?}",
            String::from_utf8_lossy(&m[i.saturating_sub(5)..i + 5])
        );
    }
    // A proof without the entry needs it from the caller.
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("extra ")).collect();
    let bare = format!("{}\n", lines.join("\n"));
    assert!(
        ledger::verify_inclusion_proof(Path::new("p"), bare.as_bytes(), &vkey, &[], None).is_err()
    );
    let line = entry_line(&dir, 3);
    ledger::verify_inclusion_proof(Path::new("p"), bare.as_bytes(), &vkey, &[], Some(&line))
        .unwrap();
    let other_line = entry_line(&dir, 2);
    assert!(ledger::verify_inclusion_proof(
        Path::new("p"),
        bare.as_bytes(),
        &vkey,
        &[],
        Some(&other_line)
    )
    .is_err());
}

fn entry_line(dir: &Path, i: usize) -> Vec<u8> {
    let l = &read_lines(dir)[i];
    l[..l.len() - 1].to_vec()
}

#[test]
fn consistency_from_an_older_checkpoint() {
    let (_t, dir, signer) = ledger_with(3);
    let old = std::fs::read(dir.join("checkpoint")).unwrap();
    let empty = std::fs::read(dir.join("checkpoints/0")).unwrap();
    {
        let mut l = ledger::Ledger::open(&dir).unwrap();
        for i in 3..9 {
            l.append(&entry(i), &signer).unwrap();
        }
    }
    let p = ledger::prove_consistency(&dir, Path::new("old"), &old, None).unwrap();
    assert_eq!((p.old_size, p.new_size), (3, 9));
    let proof: Vec<merkle::Hash> = p
        .proof
        .iter()
        .map(|h| B64.decode(h).unwrap().try_into().unwrap())
        .collect();
    merkle::verify_consistency(
        3,
        9,
        &proof,
        &B64.decode(&p.old_root).unwrap(),
        &B64.decode(&p.new_root).unwrap(),
    )
    .unwrap();
    assert!(p.to_text().starts_with("old 3\n"));
    ledger::prove_consistency(&dir, Path::new("empty"), &empty, None).unwrap();
    // A checkpoint from another log is refused.
    let (_t2, other, _s2) = ledger_with(1);
    let foreign = std::fs::read(other.join("checkpoint")).unwrap();
    assert!(matches!(
        ledger::prove_consistency(&dir, Path::new("foreign"), &foreign, None),
        Err(LedgerError::ForgedCheckpoint { .. })
    ));
}

#[test]
fn witness_cosigns_only_consistent_growth() {
    let (t, dir, signer) = ledger_with(2);
    let wkey = t.path().join("w.key");
    let wvkey = t.path().join("w.vkey");
    let wv = ledger::witness::generate("witness.test/w1", &wkey, &wvkey, b"wpw").unwrap();
    let witness = LedgerSigner::load_pair(&wkey, &wvkey, b"wpw").unwrap();
    let state = ledger::witness::default_state_path(&wkey);
    let r = ledger::witness::cosign(&dir, &witness, &state, Some(&signer.verifier())).unwrap();
    assert_eq!((r.size, r.previous_size, r.pinned_log_key), (2, None, true));
    let snapshot = t.path().join("snapshot");
    copy_dir(&dir, &snapshot);
    {
        let mut l = ledger::Ledger::open(&dir).unwrap();
        l.append(&entry(2), &signer).unwrap();
        l.append(&entry(3), &signer).unwrap();
    }
    let r = ledger::witness::cosign(&dir, &witness, &state, None).unwrap();
    assert_eq!((r.size, r.previous_size), (4, Some(2)));
    let opts = VerifyOptions {
        witnesses: vec![wv.clone()],
        ..Default::default()
    };
    let rep = ledger::verify(&dir, &opts).unwrap();
    assert!(rep.is_ok(), "{:?}", rep.problems);
    assert_eq!(rep.cosigned_by, vec![wv.id()]);

    // The snapshot (size 2) is a rollback for this witness.
    let err = ledger::witness::cosign(&snapshot, &witness, &state, None).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::WitnessRollback {
                cosigned: 4,
                presented: 2,
                ..
            }
        ),
        "{err}"
    );
    // A fork of the snapshot that grows past 4 with other entries is refused too.
    {
        let mut l = ledger::Ledger::open(&snapshot).unwrap();
        for i in 0..3 {
            let mut e = entry(50 + i);
            e.operator = "mallory".into();
            l.append(&e, &signer).unwrap();
        }
    }
    let err = ledger::witness::cosign(&snapshot, &witness, &state, None).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::WitnessFork {
                cosigned: 4,
                presented: 5,
                ..
            }
        ),
        "{err}"
    );
    // Another ledger with the same origin but another key is refused: the log key is pinned.
    let (_t3, other, _s3) = ledger_with(1);
    let err = ledger::witness::cosign(&other, &witness, &state, None).unwrap_err();
    assert!(matches!(err, LedgerError::SignerMismatch { .. }), "{err}");
}

#[test]
fn export_round_trips_into_a_verifiable_directory() {
    let (t, dir, signer) = ledger_with(3);
    {
        let l = ledger::Ledger::open(&dir).unwrap();
        let d = l.put_evidence(b"a large scan report").unwrap();
        assert_eq!(d, sha("a large scan report"));
    }
    let mut e = entry(3);
    e.evidence = vec![ledger::EvidenceRef {
        kind: "scan-report".into(),
        digest: sha("a large scan report"),
        size: 19,
        media_type: None,
        subject: None,
    }];
    ledger::Ledger::open(&dir)
        .unwrap()
        .append(&e, &signer)
        .unwrap();
    let out = t.path().join("ledger.tar");
    let r = ledger::export(&dir, &out, &[], true).unwrap();
    assert_eq!((r.entries, r.checkpoints, r.evidence), (4, 5, 1));
    let again = t.path().join("again.tar");
    ledger::export(&dir, &again, &[], true).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&again).unwrap(),
        "deterministic"
    );
    let into = t.path().join("audit");
    std::fs::create_dir(&into).unwrap();
    ledger::import_export(&out, &into).unwrap();
    let rep = ledger::verify(
        &into,
        &VerifyOptions {
            vkey: Some(signer.verifier()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(rep.is_ok(), "{:?}", rep.problems);
    assert!(
        !into.join("ledger.key").exists(),
        "the private key is never exported"
    );
    // Tampered evidence is caught.
    let ev = into
        .join("evidence/sha256")
        .join(&sha("a large scan report")[7..]);
    std::fs::write(&ev, b"something else").unwrap();
    let p = first(&into);
    assert!(
        matches!(p, LedgerError::EvidenceMismatch { index: 3, .. }),
        "{p}"
    );
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

fn airlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .env("AIRLOCK_PASSWORD", std::str::from_utf8(PASSWORD).unwrap())
        .env_remove("COSIGN_PASSWORD")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

#[test]
fn cli_init_verify_show_prove_consistency_cosign_export() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    let d = dir.to_str().unwrap();
    let init = ok(&airlock(&[
        "ledger", "init", d, "--origin", ORIGIN, "--format", "json",
    ]));
    let vkey = init["vkey"].as_str().unwrap().to_owned();
    assert!(vkey.starts_with(&format!("{ORIGIN}+")));
    assert!(
        !airlock(&["ledger", "init", d, "--origin", ORIGIN])
            .status
            .success(),
        "refuses to overwrite"
    );

    let signer = LedgerSigner::load(&dir, PASSWORD).unwrap();
    {
        let mut l = ledger::Ledger::open(&dir).unwrap();
        for i in 0..4 {
            l.append(&entry(i), &signer).unwrap();
        }
    }
    let kept = t.path().join("kept");
    std::fs::copy(dir.join("checkpoint"), &kept).unwrap();
    ledger::Ledger::open(&dir)
        .unwrap()
        .append(&entry(4), &signer)
        .unwrap();

    let v = ok(&airlock(&[
        "ledger",
        "verify",
        d,
        "--vkey",
        &vkey,
        "--trusted-checkpoint",
        kept.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(v["entries"], 5);
    assert_eq!(v["problems"], serde_json::json!([]));
    let human = airlock(&["ledger", "verify", d]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("OK: the ledger verifies"));

    let s = ok(&airlock(&[
        "ledger",
        "show",
        d,
        "--digest",
        &sha("artifact 2"),
        "--format",
        "json",
    ]));
    assert_eq!(s["matches"][0]["index"], 2);
    assert_eq!(
        s["matches"][0]["artifacts"][0]["source_ref"],
        "registry.example/app:2"
    );
    assert_eq!(s["matches"][0]["bundle"], sha("bundle 2").as_str());
    let human = airlock(&["ledger", "show", d, "--ref", "registry.example/app:1"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains(&sha("bundle 1")));
    assert!(!airlock(&["ledger", "show", d, "--digest", &sha("none")])
        .status
        .success());

    let proof = t.path().join("e2.tlog-proof");
    ok(&airlock(&[
        "ledger",
        "prove",
        d,
        "--index",
        "2",
        "-o",
        proof.to_str().unwrap(),
        "--format",
        "json",
    ]));
    let vp = ok(&airlock(&[
        "ledger",
        "verify-proof",
        proof.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--format",
        "json",
    ]));
    assert_eq!(vp["index"], 2);
    assert_eq!(
        vp["entry"]["artifacts"][0]["digest"],
        sha("artifact 2").as_str()
    );
    let vkey_file = dir.join("ledger.vkey");
    ok(&airlock(&[
        "ledger",
        "verify-proof",
        proof.to_str().unwrap(),
        "--vkey",
        vkey_file.to_str().unwrap(),
    ]));
    let mut bad = std::fs::read(&proof).unwrap();
    let pos = bad.iter().position(|&b| b == b'\n').unwrap() + 10;
    bad[pos] ^= 1;
    let bad_proof = t.path().join("bad.tlog-proof");
    std::fs::write(&bad_proof, bad).unwrap();
    assert!(!airlock(&[
        "ledger",
        "verify-proof",
        bad_proof.to_str().unwrap(),
        "--vkey",
        &vkey
    ])
    .status
    .success());

    let c = ok(&airlock(&[
        "ledger",
        "consistency",
        d,
        "--from",
        kept.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(
        (c["old_size"].as_u64(), c["new_size"].as_u64()),
        (Some(4), Some(5))
    );

    let w = t.path().join("w");
    ok(&airlock(&[
        "ledger",
        "witness-key",
        "--name",
        "witness.test/w",
        "--output",
        w.to_str().unwrap(),
    ]));
    let wkey = w.with_extension("key");
    let cs = ok(&airlock(&[
        "ledger",
        "cosign",
        d,
        "--key",
        wkey.to_str().unwrap(),
        "--log-vkey",
        &vkey,
        "--format",
        "json",
    ]));
    assert_eq!(cs["size"], 5);
    let wvkey = w.with_extension("vkey");
    let v = ok(&airlock(&[
        "ledger",
        "verify",
        d,
        "--witness-vkey",
        wvkey.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(v["cosigned_by"].as_array().unwrap().len(), 1);

    let tar = t.path().join("audit.tar");
    ok(&airlock(&[
        "ledger",
        "export",
        d,
        "-o",
        tar.to_str().unwrap(),
        "--witness-vkey",
        wvkey.to_str().unwrap(),
    ]));
    let v = ok(&airlock(&[
        "ledger",
        "verify",
        tar.to_str().unwrap(),
        "--vkey",
        &vkey,
        "--format",
        "json",
    ]));
    assert_eq!(v["entries"], 5);
    assert_eq!(v["cosigned_by"].as_array().unwrap().len(), 1);

    // Tampering: exit 7 (ledger), the first problem names the index, in JSON and on stderr.
    let mut lines = read_lines(&dir);
    lines.swap(1, 3);
    write_lines(&dir, &lines);
    let o = airlock(&["ledger", "verify", d, "--vkey", &vkey, "--format", "json"]);
    assert_eq!(o.status.code(), Some(7));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["problems"][0]["kind"], "entries_reordered");
    assert_eq!(v["problems"][0]["index"], 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("entry 1 is on line 3"));
}

#[test]
fn the_example_entry_in_the_spec_is_a_valid_canonical_entry() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/LEDGER.md"))
        .unwrap();
    let after = doc
        .split("<!-- ledger-example-entry -->")
        .nth(1)
        .expect("example marker in docs/LEDGER.md");
    let line = after
        .split("```json\n")
        .nth(1)
        .unwrap()
        .split('\n')
        .next()
        .unwrap();
    let e = Entry::from_line(line.as_bytes()).unwrap();
    assert_eq!(e.to_line().unwrap(), line.as_bytes());
    assert_eq!(e.index, 0);
}

// ---------------------------------------------------------------------------------------------
// Scale: derived files, streaming verify
// ---------------------------------------------------------------------------------------------

/// A stored checkpoint whose body states the entries' root but whose signature is broken is
/// vouched for by the latest checkpoint in a default verify, and caught by its own signature
/// with `every_signature`; one whose root differs is always checked.
#[test]
fn every_signature_checks_the_checkpoints_the_latest_vouches_for() {
    let (_t, dir, _s) = ledger_with(5);
    let path = dir.join("checkpoints/3");
    let text = std::fs::read_to_string(&path).unwrap();
    let sig_line = text.lines().last().unwrap().to_owned();
    let (head, sig) = sig_line.rsplit_once(' ').unwrap();
    let mut raw = B64.decode(sig).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    std::fs::write(
        &path,
        text.replace(&sig_line, &format!("{head} {}", B64.encode(raw))),
    )
    .unwrap();
    let r = check(&dir);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(
        (r.checkpoints_verified, r.checkpoint_signatures_checked),
        (6, 0)
    );
    let every = VerifyOptions {
        every_signature: true,
        ..Default::default()
    };
    let r = ledger::verify(&dir, &every).unwrap();
    assert!(
        matches!(
            r.problems.first(),
            Some(LedgerError::BadCheckpointSignature { size: Some(3), .. })
        ),
        "{:?}",
        r.problems
    );
    assert_eq!(r.checkpoint_signatures_checked, 5);
}

/// `tree-hashes` and `entry-offsets` are derived: an old ledger without them gets them at the
/// next open; a damaged one is caught (open rebuilds one whose right edge disagrees; a proof
/// falls back to the entries when one inside disagrees) and never changes a proof.
#[test]
fn derived_files_are_rebuilt_or_bypassed_never_trusted() {
    let (_t, dir, signer) = ledger_with(9);
    let hashes = dir.join("tree-hashes");
    let offsets = dir.join("entry-offsets");
    let good = std::fs::read(&hashes).unwrap();
    assert_eq!(good.len(), 32 * merkle::stored_hash_count(9) as usize);
    assert_eq!(std::fs::read(&offsets).unwrap().len(), 8 * 9);
    let proof = |i| {
        let p = ledger::prove_inclusion(&dir, i, None).unwrap();
        ledger::verify_inclusion_proof(
            Path::new("p"),
            p.to_text().as_bytes(),
            &signer.verifier(),
            &[],
            None,
        )
        .unwrap();
        p.to_text()
    };
    let before: Vec<String> = (0..9).map(proof).collect();

    // An old ledger: no derived files. Proofs still work (from the entries); open adds them.
    std::fs::remove_file(&hashes).unwrap();
    std::fs::remove_file(&offsets).unwrap();
    assert!(check(&dir)
        .warnings
        .iter()
        .any(|w| w.contains("tree-hashes")));
    assert_eq!((0..9).map(proof).collect::<Vec<_>>(), before);
    drop(ledger::Ledger::open(&dir).unwrap());
    assert_eq!(std::fs::read(&hashes).unwrap(), good);

    // A hash inside the tree flipped: verify names the file, proofs stay right.
    let mut bad = good.clone();
    bad[32 * 2] ^= 1; // hash 2: the parent of leaves 0 and 1
    std::fs::write(&hashes, &bad).unwrap();
    let r = check(&dir);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("`tree-hashes` disagrees with entries.jsonl at hash 2")),
        "{:?}",
        r.warnings
    );
    assert_eq!((0..9).map(proof).collect::<Vec<_>>(), before);

    // An offset pointing at another entry: the proof still carries the right entry.
    let mut offs = std::fs::read(&offsets).unwrap();
    let (a, b) = (offs[8..16].to_vec(), offs[16..24].to_vec());
    offs[8..16].copy_from_slice(&b);
    offs[16..24].copy_from_slice(&a);
    std::fs::write(&offsets, &offs).unwrap();
    assert_eq!((0..9).map(proof).collect::<Vec<_>>(), before);

    // The right edge disagrees (the last hash): open rebuilds both.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    std::fs::write(&hashes, &bad).unwrap();
    let mut l = ledger::Ledger::open(&dir).unwrap();
    assert_eq!(std::fs::read(&hashes).unwrap(), good);
    l.append(&entry(9), &signer).unwrap();
    drop(l);
    let r = check(&dir);
    assert!(
        r.is_ok() && r.warnings.iter().all(|w| !w.contains("derived")),
        "{r:?}"
    );
    proof(9);
}

/// A ledger of 100 000 entries (ten checkpoints): an entry edited in the middle is named by
/// its line when the edit breaks canonical form, and pinned between two checkpoints when it
/// does not; nothing else is reported.
#[test]
fn tamper_in_the_middle_of_100k_entries_is_named() {
    let (_t, dir, signer) = new_ledger();
    let mut l = ledger::Ledger::open_with(
        &dir,
        &ledger::OpenOptions {
            durability: ledger::Durability::DangerousNoSync,
            ..Default::default()
        },
    )
    .unwrap();
    let template = entry(0);
    for chunk in 0..10u64 {
        let batch: Vec<Entry> = (0..10_000u64)
            .map(|i| {
                let mut e = template.clone();
                e.operator = format!("op-{}", chunk * 10_000 + i);
                e
            })
            .collect();
        l.append_all(&batch, &signer).unwrap();
    }
    drop(l);
    let r = check(&dir);
    assert!(r.is_ok(), "{:?}", r.problems.first());
    assert_eq!(r.entries, 100_000);

    let path = dir.join(ledger::ENTRIES);
    let good = std::fs::read(&path).unwrap();
    let at = |needle: &str| {
        good.windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap()
    };
    // Not canonical: a space after a colon in entry 54 321.
    let i = at("\"op-54321\"");
    let mut bad = good.clone();
    bad.insert(i, b' ');
    std::fs::write(&path, &bad).unwrap();
    let r = check(&dir);
    assert!(
        matches!(
            r.problems.as_slice(),
            [
                LedgerError::EntryMismatch {
                    index: 50_000,
                    last: 59_999,
                    ..
                },
                LedgerError::EntryNotCanonical { index: 54_321 }
            ]
        ),
        "{:?}",
        r.problems
    );
    // Canonical but changed: pinned to the checkpoints around it.
    let mut bad = good.clone();
    bad[i + 4] = b'9';
    std::fs::write(&path, &bad).unwrap();
    let r = check(&dir);
    assert!(
        matches!(
            r.problems.as_slice(),
            [LedgerError::EntryMismatch {
                index: 50_000,
                last: 59_999,
                checkpoint: 60_000
            }]
        ),
        "{:?}",
        r.problems
    );
}
