//! Receipts: what the isolated side's registry already holds, so the connected side can leave
//! those blobs out of the next bundle (a delta bundle).
//!
//! `airlock receipt` walks the internal registry (`_catalog`, then every tag's manifest, down
//! through indexes) and lists every manifest digest and every blob (config, layer) with its size
//! and the repositories holding it. `collect --have receipt.json` omits every listed blob (never
//! a manifest: manifests are small and their bytes are what gets pushed) and records the
//! omissions in `airlock.json`; `import` checks each omitted blob is in the target (or mountable
//! from a repository the receipt names) before it pushes anything. A receipt that lies can
//! therefore only make an import fail, never let unverified content in; signing it
//! (`receipt.json.sig`, the format of `airlock.json.sig`, with cosign keys; or
//! `receipt.json.note`, a C2SP signed note by the site's ledger key over
//! `airlock receipt v1\n<sha256 of receipt.json>\n`) lets the connected side check it came
//! from the site.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::oci::{Digest, ManifestKind, ManifestRef, ParsedManifest, RepoName};
use crate::registry::{Registry, RegistryError, Repo};
use crate::trust::bundle_sig::{sign_manifest, verify_manifest, SigFile};
use crate::trust::keys::{PublicKey, SigningKey};

/// Format identifier of a receipt.
pub const RECEIPT_FORMAT: &str = "airlock.receipt/v1";
/// The largest receipt read (about 300,000 blobs; it is parsed whole, so it must stay far
/// below a command's memory budget).
pub const MAX_RECEIPT_BYTES: u64 = 64 * 1024 * 1024;
/// The largest receipt signature (`.sig`, `.note`) read.
const MAX_RECEIPT_SIG_BYTES: u64 = crate::trust::bundle_sig::MAX_SIG_FILE_BYTES as u64;
/// How deep indexes may nest while walking.
const MAX_DEPTH: usize = 4;

/// What can go wrong taking or reading a receipt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// A receipt or signature file that cannot be read or is over its cap.
    #[error(transparent)]
    Read(#[from] crate::io::ReadError),
    /// The registry failed.
    #[error("{what}: {source}")]
    Registry {
        /// What was being done.
        what: String,
        /// The error.
        source: RegistryError,
    },
    /// A file could not be read or written.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The receipt does not parse or breaks a rule.
    #[error("receipt `{}`: {why}", path.display())]
    Bad {
        /// The receipt.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The receipt's signature does not satisfy the trusted keys.
    #[error("receipt `{}`: refused: {why}", path.display())]
    Untrusted {
        /// The receipt.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// A blob the registry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Repositories (paths on the registry, without host) that hold it; import mounts from
    /// these when the target repository lacks it.
    pub repositories: Vec<RepoName>,
}

/// `receipt.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    /// The registry walked (`HOST[:PORT]`).
    pub registry: String,
    /// The repository prefix the walk was limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// When it was taken (RFC 3339).
    pub created: String,
    /// Every manifest digest seen, sorted.
    pub manifests: Vec<Digest>,
    /// Every config and layer blob seen, sorted by digest.
    pub blobs: Vec<HeldBlob>,
}

fn reg(what: String) -> impl FnOnce(RegistryError) -> ReceiptError {
    move |source| ReceiptError::Registry { what, source }
}

fn in_prefix(repo: &str, prefix: Option<&str>) -> bool {
    match prefix.map(|p| p.trim_matches('/')) {
        None | Some("") => true,
        Some(p) => repo == p || repo.starts_with(&format!("{p}/")),
    }
}

/// The repositories on `registry_host` that admitted imports recorded in the ledger in `dir`
/// pushed to (from each artifact's `target_ref`). The ledger must match its signed checkpoint.
pub fn ledger_repositories(
    dir: &Path,
    registry_host: &str,
) -> Result<BTreeSet<String>, ReceiptError> {
    let bad = |why: String| ReceiptError::Bad {
        path: dir.to_path_buf(),
        why,
    };
    let found = crate::ledger::find(dir, &crate::ledger::Query::All)
        .map_err(|e| bad(format!("reading the ledger: {}", crate::error_chain(&e))))?;
    if let Some(why) = found.unverified_reason {
        return Err(bad(format!(
            "the ledger does not match its signed checkpoint ({why}); run `airlock ledger verify`"
        )));
    }
    let mut out = BTreeSet::new();
    for m in found
        .matches
        .iter()
        .filter(|m| matches!(m.result, crate::ledger::Outcome::Admitted))
    {
        for a in &m.artifacts {
            let Some(target) = &a.target_ref else {
                continue;
            };
            let no_digest = target.split('@').next().unwrap_or(target);
            let no_tag = match no_digest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo,
                _ => no_digest,
            };
            if let Some(path) = no_tag
                .strip_prefix(registry_host)
                .and_then(|p| p.strip_prefix('/'))
            {
                out.insert(path.to_string());
            }
        }
    }
    Ok(out)
}

/// Walks `registry_host` (limited to repositories under `prefix`, and to `only` when given)
/// and lists what it holds.
pub async fn take(
    registry: &Registry,
    registry_host: &str,
    prefix: Option<&str>,
    only: Option<&BTreeSet<String>>,
    progress: &dyn crate::progress::Reporter,
) -> Result<Receipt, ReceiptError> {
    let repos = registry
        .list_repositories(registry_host)
        .await
        .map_err(reg(format!("listing repositories of {registry_host}")))?;
    let mut manifests = BTreeSet::new();
    let mut blobs: BTreeMap<Digest, (u64, BTreeSet<RepoName>)> = BTreeMap::new();
    for name in repos
        .iter()
        .filter(|r| in_prefix(r, prefix) && only.is_none_or(|o| o.contains(r.as_str())))
    {
        progress.item(name);
        let repo = Repo::new(registry_host, name.clone());
        let tags = registry
            .list_tags(&repo)
            .await
            .map_err(reg(format!("listing tags of {repo}")))?;
        let mut seen = HashSet::new();
        let mut todo: Vec<(ManifestRef, usize)> =
            tags.into_iter().map(|t| (ManifestRef::Tag(t), 0)).collect();
        while let Some((reference, depth)) = todo.pop() {
            if depth > MAX_DEPTH || !seen.insert(reference.clone()) {
                continue;
            }
            let raw = match registry.get_manifest(&repo, &reference).await {
                Ok(r) => r,
                // A child of an index the registry does not hold (a platform subset): skip.
                Err(RegistryError::Status { status, .. }) if status.as_u16() == 404 => continue,
                Err(e) => return Err(reg(format!("reading {repo}:{reference}"))(e)),
            };
            seen.insert(ManifestRef::Digest(raw.digest.clone()));
            manifests.insert(raw.digest.clone());
            // Manifests airlock cannot parse (schema 1, unknown types) hold nothing to omit.
            let Ok(parsed) = ParsedManifest::parse(&raw.bytes, raw.content_type.as_deref()) else {
                continue;
            };
            match parsed.kind {
                ManifestKind::Index => {
                    for c in &parsed.manifests {
                        todo.push((ManifestRef::Digest(c.digest.clone()), depth + 1));
                    }
                }
                ManifestKind::Image => {
                    for d in parsed.blobs() {
                        let e = blobs
                            .entry(d.digest.clone())
                            .or_insert((d.size, BTreeSet::new()));
                        e.1.insert(name.clone());
                    }
                }
            }
        }
    }
    Ok(Receipt {
        format: RECEIPT_FORMAT.into(),
        registry: registry_host.to_string(),
        prefix: prefix.map(str::to_string),
        created: crate::collect::now_rfc3339(),
        manifests: manifests.into_iter().collect(),
        blobs: blobs
            .into_iter()
            .map(|(digest, (size, repos))| HeldBlob {
                digest,
                size,
                repositories: repos.into_iter().collect(),
            })
            .collect(),
    })
}

/// What the connected side trusts a receipt's signature from: cosign public keys
/// (`receipt.json.sig`) and ledger verifier keys (`receipt.json.note`). Any one valid
/// signature suffices; with none trusted, the receipt is read unchecked.
#[derive(Debug, Default)]
pub struct ReceiptTrust {
    /// Cosign public keys.
    pub keys: Vec<PublicKey>,
    /// Ledger verifier keys (`ledger.vkey`).
    pub ledgers: Vec<crate::ledger::VerifierKey>,
}

/// The signed-note text a ledger signature on a receipt covers.
pub fn note_text(digest: &Digest) -> String {
    format!("airlock receipt v1\n{digest}\n")
}

/// The ledger signature (signed note) beside a receipt.
pub fn note_path_for(receipt: &Path) -> PathBuf {
    let mut s = receipt.as_os_str().to_owned();
    s.push(".note");
    PathBuf::from(s)
}

/// Signs the receipt at `path` with the site's ledger key, into `path.note`.
pub fn sign_with_ledger(
    path: &Path,
    signer: &crate::ledger::LedgerSigner,
) -> Result<(), ReceiptError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ReceiptError::Io { path: p, source }
    };
    let bytes = crate::io::read_capped(path, MAX_RECEIPT_BYTES, "receipt")?;
    let note = signer
        .sign_note(&note_text(&Digest::of(&bytes)))
        .map_err(|e| ReceiptError::Bad {
            path: path.to_path_buf(),
            why: format!("cannot sign with the ledger key: {e}"),
        })?;
    let out = note_path_for(path);
    let tmp = out.with_extension("note.partial");
    fs_err::write(&tmp, note).map_err(io(&tmp))?;
    fs_err::rename(&tmp, &out).map_err(io(&out))
}

/// The signature file beside a receipt.
pub fn sig_path_for(receipt: &Path) -> PathBuf {
    let mut s = receipt.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

impl Receipt {
    /// The receipt's bytes (pretty JSON, trailing newline): what signatures cover.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing strings and numbers into a Vec cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Writes the receipt to `path` and, with `signers`, its signature to `path.sig`.
    pub fn write(&self, path: &Path, signers: &[SigningKey]) -> Result<Vec<String>, ReceiptError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| ReceiptError::Io { path: p, source }
        };
        let bytes = self.to_vec();
        let tmp = path.with_extension("json.partial");
        fs_err::write(&tmp, &bytes).map_err(io(&tmp))?;
        let mut ids = Vec::new();
        let sig = sig_path_for(path);
        if signers.is_empty() {
            let _ = fs_err::remove_file(&sig);
        } else {
            let s = sign_manifest(&bytes, signers);
            ids = s
                .signatures()
                .iter()
                .map(|e| e.key_id.to_string())
                .collect();
            fs_err::write(&sig, s.to_vec()).map_err(io(&sig))?;
        }
        fs_err::rename(&tmp, path).map_err(io(path))?;
        Ok(ids)
    }

    /// Reads a receipt and its digest. With anything in `trust`, one of its signature files
    /// must carry a valid signature by a trusted key or ledger; without, it is read unchecked
    /// (a false receipt can only make the import of the delta bundle fail, which import
    /// reports).
    pub fn load(path: &Path, trust: &ReceiptTrust) -> Result<(Receipt, Digest), ReceiptError> {
        let bad = |why: String| ReceiptError::Bad {
            path: path.to_path_buf(),
            why,
        };
        let bytes = crate::io::read_capped(path, MAX_RECEIPT_BYTES, "receipt")?;
        if !trust.keys.is_empty() || !trust.ledgers.is_empty() {
            check_signatures(path, &bytes, trust).map_err(|why| ReceiptError::Untrusted {
                path: path.to_path_buf(),
                why,
            })?;
        }
        let r: Receipt = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if r.format != RECEIPT_FORMAT {
            return Err(bad(format!(
                "format `{}` is not `{RECEIPT_FORMAT}`",
                r.format
            )));
        }
        Ok((r, Digest::of(&bytes)))
    }
}

/// Passes when a cosign signature (`.sig`) by a trusted key or a signed note (`.note`) by a
/// trusted ledger covers `bytes`; otherwise says why each failed.
fn check_signatures(path: &Path, bytes: &[u8], trust: &ReceiptTrust) -> Result<(), String> {
    let mut why = Vec::new();
    if !trust.keys.is_empty() {
        let sig_path = sig_path_for(path);
        match crate::io::read_capped(&sig_path, MAX_RECEIPT_SIG_BYTES, "receipt signature") {
            Err(e) if !e.is_too_large() => {
                why.push(format!("no signature file `{}`", sig_path.display()))
            }
            Err(e) => why.push(e.to_string()),
            Ok(sig) => match SigFile::from_slice(&sig)
                .map_err(|e| crate::error_chain(&e))
                .and_then(|s| {
                    verify_manifest(bytes, &s, &trust.keys, 1).map_err(|e| crate::error_chain(&e))
                }) {
                Ok(_) => return Ok(()),
                Err(e) => why.push(e),
            },
        }
    }
    if !trust.ledgers.is_empty() {
        let note_path = note_path_for(path);
        match crate::io::read_capped(&note_path, MAX_RECEIPT_SIG_BYTES, "receipt signature") {
            Err(e) if !e.is_too_large() => {
                why.push(format!("no ledger signature `{}`", note_path.display()))
            }
            Err(e) => why.push(e.to_string()),
            Ok(note) => match crate::ledger::note::open(&note, &trust.ledgers) {
                Err(e) => why.push(format!("`{}`: {e}", note_path.display())),
                Ok(opened) if opened.text == note_text(&Digest::of(bytes)) => return Ok(()),
                Ok(_) => why.push(format!(
                    "`{}` is signed by a trusted ledger but covers another receipt",
                    note_path.display()
                )),
            },
        }
    }
    Err(why.join("; "))
}
