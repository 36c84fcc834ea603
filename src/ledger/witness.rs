//! An offline witness: a second key that cosigns a ledger's checkpoint (C2SP
//! `cosignature/v1`) only after checking that it extends the last checkpoint it cosigned.
//!
//! The witness keeps its own state file (by default beside its key, `<key>.state`): for each
//! log origin, the log's verifier key (pinned on first use) and the size and root it last
//! cosigned. It refuses a smaller size (rollback) and a tree that does not extend the one it
//! cosigned (fork), so a ledger rewritten after a cosignature can never be cosigned again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::LedgerSigner;
use super::merkle::{consistency_proof, empty_root, verify_consistency, Hash};
use super::note::{self, VerifierKey, ALG_COSIGNATURE_V1};
use super::proof::on_signed_tree;
use super::store::{read_capped, write_atomic, Ledger};
use super::LedgerError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The default state file of the witness key at `key`: the same path with extension `state`.
pub fn default_state_path(key: &Path) -> PathBuf {
    key.with_extension("state")
}

/// Makes a witness key pair: `key` (sealed private key, 0600) and `vkey` (the
/// `cosignature/v1` verifier key, type 0x04, to give to auditors).
pub fn generate(
    name: &str,
    key: &Path,
    vkey: &Path,
    password: &[u8],
) -> Result<VerifierKey, LedgerError> {
    let signer = LedgerSigner::generate_witness(name)?;
    signer.save_pair(key, vkey, password)?;
    Ok(signer.verifier())
}

#[derive(Serialize, Deserialize, Default)]
struct State {
    logs: BTreeMap<String, LogState>,
}

#[derive(Serialize, Deserialize, Clone)]
struct LogState {
    vkey: String,
    size: u64,
    root: String,
}

/// What [`cosign`] did.
#[derive(Debug, Clone, Serialize)]
pub struct CosignReport {
    /// Log origin.
    pub origin: String,
    /// Size cosigned.
    pub size: u64,
    /// Root cosigned (base64).
    pub root: String,
    /// Size cosigned before, if this witness had seen the log.
    pub previous_size: Option<u64>,
    /// The witness key id.
    pub witness: String,
    /// Cosignature time (seconds since the epoch).
    pub timestamp: u64,
    /// Whether the log key was pinned now (first cosignature for this log).
    pub pinned_log_key: bool,
    /// The cosigned checkpoint note.
    pub checkpoint: String,
}

/// Cosigns the latest checkpoint of the ledger in `dir` with `witness` after checking it is
/// consistent with the last checkpoint this witness cosigned (recorded in `state_path`).
/// `log_vkey` pins the log key on first use; later it must match the pinned key.
pub fn cosign(
    dir: &Path,
    witness: &LedgerSigner,
    state_path: &Path,
    log_vkey: Option<&VerifierKey>,
) -> Result<CosignReport, LedgerError> {
    if witness.verifier().alg() != ALG_COSIGNATURE_V1 {
        return Err(LedgerError::Key {
            path: PathBuf::from(witness.name()),
            reason:
                "is not a witness (cosignature/v1) key; make one with `airlock ledger witness-key`"
                    .into(),
        });
    }
    let mut state = read_state(state_path)?;
    let mut ledger = Ledger::open(dir)?;
    let origin = ledger.origin().to_owned();
    let prev = state.logs.get(&origin).cloned();
    let pinned_log_key = prev.is_none();
    let expected_key = match (&prev, log_vkey) {
        (Some(p), _) => VerifierKey::parse(&p.vkey).map_err(|e| LedgerError::WitnessState {
            path: state_path.to_owned(),
            reason: e.to_string(),
        })?,
        (None, Some(k)) => k.clone(),
        (None, None) => ledger.vkey().clone(),
    };
    if let Some(k) = log_vkey {
        if *k != expected_key {
            return Err(LedgerError::SignerMismatch {
                expected: expected_key.id(),
                found: k.id(),
            });
        }
    }
    if *ledger.vkey() != expected_key {
        return Err(LedgerError::SignerMismatch {
            expected: expected_key.id(),
            found: ledger.vkey().id(),
        });
    }
    let latest = ledger.latest().clone();
    let new = &latest.checkpoint;
    let previous_size = prev.as_ref().map(|p| p.size);
    if let Some(p) = &prev {
        let old_root: Hash = B64
            .decode(&p.root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| LedgerError::WitnessState {
                path: state_path.to_owned(),
                reason: "bad root".into(),
            })?;
        if new.size < p.size {
            return Err(LedgerError::WitnessRollback {
                origin,
                cosigned: p.size,
                presented: new.size,
            });
        }
        let fork = |source| LedgerError::WitnessFork {
            origin: origin.clone(),
            cosigned: p.size,
            presented: new.size,
            source,
        };
        let checked = on_signed_tree(dir, new, |tree| {
            if p.size == 0 {
                return if old_root == empty_root() {
                    Ok(())
                } else {
                    Err(fork(None))
                };
            }
            let proof = consistency_proof(tree, p.size, new.size).map_err(|e| fork(Some(e)))?;
            verify_consistency(p.size, new.size, &proof, &old_root, &new.root)
                .map_err(|e| fork(Some(e)))
        });
        match checked {
            // The entries do not give the checkpoint's root: not a tree that extends.
            Err(LedgerError::EntryMismatch { .. } | LedgerError::Truncated { .. }) => {
                return Err(fork(None))
            }
            other => other?,
        }
    }
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cosigned =
        note::add_signature(latest.note.as_bytes(), &witness.note, timestamp).map_err(|e| {
            LedgerError::Key {
                path: PathBuf::from(witness.name()),
                reason: e.to_string(),
            }
        })?;
    state.logs.insert(
        origin.clone(),
        LogState {
            vkey: expected_key.to_string(),
            size: new.size,
            root: new.root_base64(),
        },
    );
    // Record first: a witness that crashes after recording but before writing merely
    // cosigns again next time; the other order could let it cosign a rollback.
    write_state(state_path, &state)?;
    ledger.replace_latest_note(cosigned.clone())?;
    Ok(CosignReport {
        origin,
        size: new.size,
        root: new.root_base64(),
        previous_size,
        witness: witness.verifier().id(),
        timestamp,
        pinned_log_key,
        checkpoint: cosigned,
    })
}

fn read_state(path: &Path) -> Result<State, LedgerError> {
    if !path.exists() {
        return Ok(State::default());
    }
    let bytes = read_capped(path, 16 * 1024 * 1024)?;
    serde_json::from_slice(&bytes).map_err(|e| LedgerError::WitnessState {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn write_state(path: &Path, state: &State) -> Result<(), LedgerError> {
    let json = serde_json::to_vec_pretty(state).map_err(|e| LedgerError::WitnessState {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &json, true)
}
