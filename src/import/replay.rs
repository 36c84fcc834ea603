//! Replay protection: a signed bundle stays valid forever, so an attacker (or a mistake) could
//! carry an old one across again and roll the site back to software with known holes. The
//! ledger remembers the sequence of every admitted bundle, by signer and bundle name; an import
//! refuses one lower than the last admitted, unless the operator says `--allow-older`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bundle::BundleManifest;
use crate::ledger::entry::{Outcome, Verdict};
use crate::ledger::{find, FindResult, Query};
use crate::oci::Digest;

/// The last admitted bundle for one (signer key id, bundle name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastAdmitted {
    /// Its sequence.
    pub sequence: u64,
    /// Its `airlock.json` digest.
    pub digest: String,
    /// Its ledger entry index.
    pub index: u64,
}

/// What the ledger says was admitted last.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    /// The ledger it came from, for messages.
    pub ledger: PathBuf,
    /// By (signer key id, bundle name).
    pub last: BTreeMap<(String, String), LastAdmitted>,
}

/// Why a bundle was refused as a replay, or the state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The ledger cannot be read or does not verify: replay state would be a guess.
    #[error(
        "ledger `{ledger}`: cannot check for replays: {why}; run `airlock ledger verify {ledger}`"
    )]
    Ledger {
        /// The ledger.
        ledger: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The bundle is older than one already admitted from the same signer.
    #[error("bundle `{name}` has sequence {sequence}, {relation} bundle {last_digest} (sequence {last_sequence}) admitted from signer {signer} at ledger entry {index}; a replayed or rolled-back bundle? pass --allow-older to import it anyway")]
    Older {
        /// Bundle name.
        name: String,
        /// Its sequence.
        sequence: u64,
        /// "lower than" or "equal to, but different from,".
        relation: &'static str,
        /// The signer.
        signer: String,
        /// The newer admitted bundle.
        last_digest: String,
        /// Its sequence.
        last_sequence: u64,
        /// Its ledger index.
        index: u64,
    },
}

impl ReplayGuard {
    /// Reads every admitted entry of the ledger at `dir`; refuses a ledger that does not verify.
    pub fn load(dir: &Path) -> Result<ReplayGuard, ReplayError> {
        let err = |why: String| ReplayError::Ledger {
            ledger: dir.to_path_buf(),
            why,
        };
        let found = find(dir, &Query::All).map_err(|e| err(e.to_string()))?;
        if let Some(why) = found.unverified_reason {
            return Err(err(why));
        }
        Ok(Self::from_found(dir, &found))
    }

    /// The replay state of the committed entries `found` of the ledger at `dir` (which the
    /// caller verified).
    pub fn from_found(dir: &Path, found: &FindResult) -> ReplayGuard {
        let mut guard = ReplayGuard {
            ledger: dir.to_path_buf(),
            last: BTreeMap::new(),
        };
        for m in &found.matches {
            let (Outcome::Admitted, Some(name), Some(sequence)) =
                (&m.result, &m.bundle_name, m.bundle_sequence)
            else {
                continue;
            };
            for s in m
                .bundle_signatures
                .iter()
                .filter(|s| s.verdict == Verdict::Verified)
            {
                let key = (s.signer.clone(), name.clone());
                let newer = guard.last.get(&key).is_none_or(|l| sequence >= l.sequence);
                if newer {
                    guard.last.insert(
                        key,
                        LastAdmitted {
                            sequence,
                            digest: m.bundle.clone(),
                            index: m.index,
                        },
                    );
                }
            }
        }
        guard
    }

    /// Checks a bundle whose signature verified for `signers`. The same bundle again (same
    /// digest) passes: re-running an import is not a replay.
    pub fn check(
        &self,
        manifest: &BundleManifest,
        digest: &Digest,
        signers: &[String],
    ) -> Result<(), ReplayError> {
        for signer in signers {
            let Some(last) = self.last.get(&(signer.clone(), manifest.name.clone())) else {
                continue;
            };
            let relation = if manifest.sequence < last.sequence {
                "lower than that of"
            } else if manifest.sequence == last.sequence && last.digest != digest.as_str() {
                "equal to, but different from, that of"
            } else {
                continue;
            };
            return Err(ReplayError::Older {
                name: manifest.name.clone(),
                sequence: manifest.sequence,
                relation,
                signer: signer.clone(),
                last_digest: last.digest.clone(),
                last_sequence: last.sequence,
                index: last.index,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, sequence: u64) -> BundleManifest {
        BundleManifest {
            format: crate::bundle::BUNDLE_FORMAT.into(),
            name: name.into(),
            created: "2026-11-23T00:00:00Z".into(),
            sequence,
            tool: "airlock test".into(),
            lock_digest: Digest::of(b"lock"),
            artifacts: Vec::new(),
            blobs: Vec::new(),
            receipt: None,
            omitted: Vec::new(),
        }
    }

    fn guard() -> ReplayGuard {
        let mut g = ReplayGuard::default();
        g.last.insert(
            ("key-a".into(), "platform".into()),
            LastAdmitted {
                sequence: 7,
                digest: Digest::of(b"seven").to_string(),
                index: 3,
            },
        );
        g
    }

    #[test]
    fn refuses_lower_and_equal_but_different() {
        let g = guard();
        let signers = ["key-a".to_string()];
        let err = g
            .check(&manifest("platform", 5), &Digest::of(b"five"), &signers)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sequence 5, lower than") && err.contains("entry 3"),
            "{err}"
        );
        let err = g
            .check(&manifest("platform", 7), &Digest::of(b"other"), &signers)
            .unwrap_err()
            .to_string();
        assert!(err.contains("equal to, but different from"), "{err}");
    }

    #[test]
    fn accepts_newer_the_same_again_other_names_and_other_signers() {
        let g = guard();
        let a = ["key-a".to_string()];
        g.check(&manifest("platform", 8), &Digest::of(b"eight"), &a)
            .unwrap();
        g.check(&manifest("platform", 7), &Digest::of(b"seven"), &a)
            .unwrap();
        g.check(&manifest("monitoring", 1), &Digest::of(b"m"), &a)
            .unwrap();
        g.check(
            &manifest("platform", 1),
            &Digest::of(b"one"),
            &["key-b".to_string()],
        )
        .unwrap();
    }
}
