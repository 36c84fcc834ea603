//! The lock pins the files a scan policy names (the vulnerability database, the VEX
//! documents) by digest, not only by path: a database rebuilt or a VEX statement edited after
//! `airlock lock` changes what crosses, so `collect` refuses it as drift and `lock --check`
//! reports it, like a moved image tag.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::policy::ScanPolicy;
use super::vex::{self, VexDocument, VexError};
use crate::oci::{Digest, DigestWriter};

/// Which of the policy's files a pin is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinnedKind {
    /// The policy's `db:`.
    Database,
    /// One of the policy's `vex:` files.
    Vex,
}

impl PinnedKind {
    fn label(self) -> &'static str {
        match self {
            PinnedKind::Database => "scan database",
            PinnedKind::Vex => "VEX file",
        }
    }
}

/// One scan policy file as the lock pins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedFile {
    /// Database or VEX.
    pub kind: PinnedKind,
    /// The path as the policy writes it (relative to the lock's directory).
    pub path: PathBuf,
    /// The digest of its content when the lock was made.
    pub sha256: Digest,
}

impl PinnedFile {
    /// How `lock` names it among the pins (`scan database vuln.db`).
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.label(), self.path.display())
    }
}

/// A scan policy file that cannot be pinned, or differs from its pin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The file cannot be read.
    #[error("{what} `{path}`: {source}")]
    Io {
        /// Database or VEX file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file's content is not what the lock pinned.
    #[error("{what} `{path}` is {actual}, the lock pins {expected}: it changed since `airlock lock` (lock again to accept it)")]
    Drift {
        /// Database or VEX file.
        what: &'static str,
        /// The file used.
        path: PathBuf,
        /// The lock's digest.
        expected: Digest,
        /// The file's digest now.
        actual: Digest,
    },
    /// The policy names a file the lock has no digest for (a lock made before pins existed,
    /// or edited by hand).
    #[error("{what} `{path}` is not pinned by the lock: run `airlock lock` again")]
    Unpinned {
        /// Database or VEX file.
        what: &'static str,
        /// The file as the policy names it.
        path: PathBuf,
    },
    /// A VEX file that does not parse.
    #[error(transparent)]
    Vex(#[from] VexError),
}

impl crate::error_kind::Classify for PinError {
    fn kind(&self) -> crate::error_kind::ErrorKind {
        use crate::error_kind::ErrorKind;
        match self {
            PinError::Drift { .. } | PinError::Unpinned { .. } => ErrorKind::Drift,
            _ => ErrorKind::Other,
        }
    }
}

/// The digest of a file, streamed (a database can be hundreds of MiB).
pub fn file_digest(path: &Path) -> std::io::Result<Digest> {
    let mut f = fs_err::File::open(path)?;
    let mut w = DigestWriter::new(std::io::sink());
    std::io::copy(&mut f, &mut w)?;
    Ok(w.finish().1)
}

/// Pins the policy's database and VEX files, read relative to `base` (the spec's directory).
pub fn pin(policy: &ScanPolicy, base: &Path) -> Result<Vec<PinnedFile>, PinError> {
    let files = policy
        .db
        .iter()
        .map(|p| (PinnedKind::Database, p))
        .chain(policy.vex.iter().map(|p| (PinnedKind::Vex, p)));
    files
        .map(|(kind, path)| {
            let sha256 = file_digest(&base.join(path)).map_err(|source| PinError::Io {
                what: kind.label(),
                path: path.clone(),
                source,
            })?;
            Ok(PinnedFile {
                kind,
                path: path.clone(),
                sha256,
            })
        })
        .collect()
}

/// Checks the database a collect uses against the lock: when the lock pins one, whatever
/// database is used (the policy's, or `--db`) must have that digest; a policy `db:` the lock
/// has no pin for is refused.
pub fn check_database(
    pins: &[PinnedFile],
    policy: &ScanPolicy,
    used: &Path,
    digest: &Digest,
) -> Result<(), PinError> {
    let what = PinnedKind::Database.label();
    match pins.iter().find(|p| p.kind == PinnedKind::Database) {
        Some(p) if &p.sha256 == digest => Ok(()),
        Some(p) => Err(PinError::Drift {
            what,
            path: used.to_path_buf(),
            expected: p.sha256.clone(),
            actual: digest.clone(),
        }),
        None => match &policy.db {
            Some(path) => Err(PinError::Unpinned {
                what,
                path: path.clone(),
            }),
            None => Ok(()),
        },
    }
}

/// Reads the policy's VEX files (relative to `base`), each checked against its pin before it
/// is parsed: the bytes hashed are the bytes used.
pub fn load_vex(
    pins: &[PinnedFile],
    policy: &ScanPolicy,
    base: &Path,
) -> Result<Vec<VexDocument>, PinError> {
    let what = PinnedKind::Vex.label();
    policy
        .vex
        .iter()
        .map(|path| {
            let pin = pins
                .iter()
                .find(|p| p.kind == PinnedKind::Vex && &p.path == path)
                .ok_or_else(|| PinError::Unpinned {
                    what,
                    path: path.clone(),
                })?;
            let full = base.join(path);
            let bytes = vex::read(&full)?;
            let actual = Digest::of(&bytes);
            if actual != pin.sha256 {
                return Err(PinError::Drift {
                    what,
                    path: full,
                    expected: pin.sha256.clone(),
                    actual,
                });
            }
            Ok(vex::parse(&bytes, &full.display().to_string())?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(db: Option<&str>, vex: &[&str]) -> ScanPolicy {
        ScanPolicy {
            db: db.map(PathBuf::from),
            vex: vex.iter().map(PathBuf::from).collect(),
            ..ScanPolicy::default()
        }
    }

    const VEX: &str = r#"{"@context":"https://openvex.dev/ns/v0.2.0","@id":"x","author":"a","timestamp":"2026-01-01T00:00:00Z","version":1,"statements":[]}"#;

    #[test]
    fn pins_each_file_and_refuses_a_changed_one() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("vuln.db"), b"database bytes").expect("db");
        std::fs::write(dir.path().join("a.json"), VEX).expect("vex");
        let p = policy(Some("vuln.db"), &["a.json"]);
        let pins = pin(&p, dir.path()).expect("pin");
        assert_eq!(pins.len(), 2);
        assert_eq!(pins[0].kind, PinnedKind::Database);
        assert_eq!(pins[0].sha256, Digest::of(b"database bytes"));
        assert_eq!(pins[1].label(), "VEX file a.json");
        assert_eq!(pins[1].sha256, Digest::of(VEX.as_bytes()));

        let db = dir.path().join("vuln.db");
        check_database(&pins, &p, &db, &Digest::of(b"database bytes")).expect("same");
        let err = check_database(&pins, &p, &db, &Digest::of(b"other")).expect_err("drift");
        assert_eq!(
            crate::error_kind::Classify::kind(&err),
            crate::error_kind::ErrorKind::Drift
        );
        assert!(err.to_string().contains("the lock pins sha256:"), "{err}");
        assert_eq!(load_vex(&pins, &p, dir.path()).expect("vex").len(), 1);

        std::fs::write(dir.path().join("a.json"), VEX.replace("\"a\"", "\"b\"")).expect("vex");
        let err = load_vex(&pins, &p, dir.path()).expect_err("drift");
        assert!(matches!(err, PinError::Drift { .. }), "{err}");
        assert!(err.to_string().starts_with("VEX file `"), "{err}");
    }

    #[test]
    fn refuses_a_policy_file_without_a_pin_and_a_missing_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = policy(Some("vuln.db"), &["a.json"]);
        let err = check_database(&[], &p, Path::new("x"), &Digest::of(b"x")).expect_err("unpinned");
        assert!(matches!(err, PinError::Unpinned { .. }), "{err}");
        // `--db` with a policy that names none and a lock that pins none: nothing to check.
        check_database(&[], &policy(None, &[]), Path::new("x"), &Digest::of(b"x")).expect("free");
        let err = load_vex(&[], &p, dir.path()).expect_err("unpinned");
        assert!(err.to_string().contains("not pinned by the lock"), "{err}");
        let err = pin(&p, dir.path()).expect_err("missing");
        assert!(
            err.to_string().starts_with("scan database `vuln.db`: "),
            "{err}"
        );
    }
}
