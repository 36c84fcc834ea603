//! `ledger export`: one tar file an auditor takes away, and its safe extraction for `verify`.
//!
//! The tar holds `entries.jsonl`, `checkpoint`, `checkpoints/<size>` for every checkpoint,
//! `ledger.vkey`, optionally `witnesses.vkey` (one witness verifier key per line) and
//! `evidence/sha256/<hex>`. Headers are deterministic (mode 0644, uid/gid 0, mtime 0), so the
//! same ledger exports to the same bytes. Untar it anywhere and run `airlock ledger verify` on
//! the directory, or pass the file itself.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::note::VerifierKey;
use super::store::{acquire_lock, CHECKPOINT, CHECKPOINTS, ENTRIES, EVIDENCE, LOCK, VKEY};
use super::LedgerError;

/// Name of the witness key list inside an export.
pub const WITNESSES: &str = "witnesses.vkey";

/// What [`export`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The tar file.
    pub file: PathBuf,
    /// Entries exported (complete lines).
    pub entries: u64,
    /// Checkpoint files exported.
    pub checkpoints: u64,
    /// Evidence files exported.
    pub evidence: u64,
    /// Total bytes of the tar.
    pub bytes: u64,
}

fn tar_err(path: &Path) -> impl Fn(std::io::Error) -> LedgerError + '_ {
    move |e| LedgerError::io("write", path, e)
}

/// Writes the ledger in `dir` to the tar file `out` (entries, checkpoints, verifier keys,
/// and the evidence store when `with_evidence`).
pub fn export(
    dir: &Path,
    out: &Path,
    witnesses: &[VerifierKey],
    with_evidence: bool,
) -> Result<ExportReport, LedgerError> {
    for f in [ENTRIES, CHECKPOINT, VKEY] {
        if !dir.join(f).is_file() {
            return Err(LedgerError::NotALedger {
                path: dir.to_owned(),
                missing: f,
            });
        }
    }
    let _lock = acquire_lock(&dir.join(LOCK), false, Duration::from_secs(30))?;
    let file = fs_err::File::create(out).map_err(|e| LedgerError::io("create", out, e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.mode(tar::HeaderMode::Deterministic);
    let err = tar_err(out);
    let mut add = |name: &str, src: &Path| -> Result<(), LedgerError> {
        let bytes = fs_err::read(src).map_err(|e| LedgerError::io("read", src, e))?;
        add_bytes(&mut tar, name, &bytes).map_err(&err)
    };
    add(VKEY, &dir.join(VKEY))?;
    add(CHECKPOINT, &dir.join(CHECKPOINT))?;
    let mut sizes: Vec<(u64, PathBuf)> = Vec::new();
    let cps = dir.join(CHECKPOINTS);
    if cps.is_dir() {
        for ent in fs_err::read_dir(&cps).map_err(|e| LedgerError::io("read", &cps, e))? {
            let ent = ent.map_err(|e| LedgerError::io("read", &cps, e))?;
            if let Some(s) = super::checkpoint::parse_decimal(&ent.file_name().to_string_lossy()) {
                sizes.push((s, ent.path()));
            }
        }
    }
    sizes.sort();
    for (s, p) in &sizes {
        add(&format!("{CHECKPOINTS}/{s}"), p)?;
    }
    let mut evidence = 0u64;
    if with_evidence && dir.join(EVIDENCE).is_dir() {
        let ev = dir.join(EVIDENCE);
        let mut names: Vec<String> = fs_err::read_dir(&ev)
            .map_err(|e| LedgerError::io("read", &ev, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| is_hex64(n))
            .collect();
        names.sort();
        for n in names {
            add(&format!("{EVIDENCE}/{n}"), &ev.join(&n))?;
            evidence += 1;
        }
    }
    if !witnesses.is_empty() {
        let text: String = witnesses.iter().map(|w| format!("{w}\n")).collect();
        add_bytes(&mut tar, WITNESSES, text.as_bytes()).map_err(&err)?;
    }
    // Entries last: only complete lines (a torn tail is not exported).
    let entries = fs_err::read(dir.join(ENTRIES))
        .map_err(|e| LedgerError::io("read", dir.join(ENTRIES), e))?;
    let complete = entries
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    add_bytes(&mut tar, ENTRIES, &entries[..complete]).map_err(&err)?;
    let mut w = tar.into_inner().map_err(&err)?;
    w.flush().map_err(&err)?;
    let f = w
        .into_inner()
        .map_err(|e| LedgerError::io("write", out, e.into_error()))?;
    f.sync_all().map_err(&err)?;
    let bytes = f.metadata().map_err(&err)?.len();
    Ok(ExportReport {
        file: out.to_owned(),
        entries: entries[..complete].iter().filter(|&&b| b == b'\n').count() as u64,
        checkpoints: sizes.len() as u64,
        evidence,
        bytes,
    })
}

fn add_bytes<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, bytes)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn allowed(name: &str) -> bool {
    match name {
        ENTRIES | CHECKPOINT | VKEY | WITNESSES => true,
        _ => {
            if let Some(s) = name.strip_prefix("checkpoints/") {
                super::checkpoint::parse_decimal(s).is_some()
            } else if let Some(h) = name.strip_prefix("evidence/sha256/") {
                is_hex64(h)
            } else {
                false
            }
        }
    }
}

/// Extracts an export made by [`export`] into the existing empty directory `dest`, accepting
/// only the names an export holds (no links, no `..`, no duplicates); returns the witness keys
/// it carried.
pub fn import_export(file: &Path, dest: &Path) -> Result<Vec<VerifierKey>, LedgerError> {
    let bad = |reason: String| LedgerError::Export {
        path: file.to_owned(),
        reason,
    };
    let f = fs_err::File::open(file).map_err(|e| LedgerError::io("read", file, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let mut seen = std::collections::BTreeSet::new();
    let mut witnesses = Vec::new();
    // An export never holds a long-name or PAX header: refused before its data is read.
    let entries = crate::tarstream::entries(&mut archive, crate::tarstream::Extensions::Refuse)
        .map_err(|e| bad(e.to_string()))?;
    for ent in entries {
        let ent = ent.map_err(|e| bad(e.to_string()))?;
        let name = String::from_utf8(ent.path).map_err(|_| bad("a name is not UTF-8".into()))?;
        let mut ent = ent.inner;
        if ent.header().entry_type() != tar::EntryType::Regular {
            return Err(bad("holds something other than a regular file".into()));
        }
        if !allowed(&name) {
            return Err(bad(format!(
                "unexpected member \"{}\"",
                crate::untrusted::shorten(&name)
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(bad(format!("member {name:?} appears twice")));
        }
        let target = dest.join(&name);
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent).map_err(|e| LedgerError::io("create", parent, e))?;
        }
        if name == WITNESSES {
            let mut text = String::new();
            ent.by_ref()
                .take(1 << 20)
                .read_to_string(&mut text)
                .map_err(|e| bad(e.to_string()))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                witnesses.push(
                    VerifierKey::parse(line.trim())
                        .map_err(|e| bad(format!("witness key: {e}")))?,
                );
            }
            fs_err::write(&target, text.as_bytes())
                .map_err(|e| LedgerError::io("write", &target, e))?;
            continue;
        }
        let mut out =
            fs_err::File::create(&target).map_err(|e| LedgerError::io("create", &target, e))?;
        std::io::copy(&mut ent, &mut out).map_err(|e| LedgerError::io("write", &target, e))?;
    }
    for f in [ENTRIES, CHECKPOINT, VKEY] {
        if !seen.contains(f) {
            return Err(bad(format!("has no {f}")));
        }
    }
    Ok(witnesses)
}
