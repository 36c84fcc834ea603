//! `ledger report`: one self-contained HTML page an auditor opens in a browser.
//!
//! [`write_report`] runs the full [`verify`](super::verify()) first, so the page states whether
//! the ledger verifies (and every problem when it does not) before it lists anything, then
//! streams every entry line into the page: the page is written whatever the verdict, because
//! a report that shows the failure is what an auditor needs. The entries are read one line at
//! a time (memory bounded by the longest entry and the set of digests seen, for their anchors).
//! The layout is [`html`], a plain function of the data gathered here.

pub mod html;

use std::collections::HashSet;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use super::checkpoint::Checkpoint;
use super::entry::Entry;
use super::lines::{Line, LineReader};
use super::note::Note;
use super::store::{read_capped, CHECKPOINT, ENTRIES, MAX_CHECKPOINT_BYTES};
use super::verify::{verify, VerifyOptions, VerifyReport};
use super::LedgerError;

/// What the page says about the ledger as a whole, above the entries.
#[derive(Debug, Clone, Serialize)]
pub struct ReportHeader {
    /// The ledger as the caller named it (a directory or an export file).
    pub ledger: String,
    /// The log origin.
    pub origin: String,
    /// The verifier key used, `name+hash+base64`.
    pub vkey: String,
    /// Whether the caller gave that key (`--vkey`) or it came from the ledger directory.
    pub vkey_given: bool,
    /// Whether verification found no problem.
    pub verified: bool,
    /// Every problem verification found, first bad index first.
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not failures.
    pub warnings: Vec<String>,
    /// Complete entry lines.
    pub entries: u64,
    /// Root of the tree of all complete lines (base64).
    pub root: String,
    /// The latest checkpoint as its file states it (its signature is checked by `verify`).
    pub checkpoint: Option<CheckpointView>,
    /// Witness key ids with a verified cosignature on the latest checkpoint.
    pub cosigned_by: Vec<String>,
}

/// One verification problem.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Short stable name (`entry_edited`, `forged_checkpoint`, …).
    pub kind: String,
    /// The entry index (or checkpoint size) it points at.
    pub index: Option<u64>,
    /// The full message.
    pub message: String,
}

/// The latest checkpoint file, as stated.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointView {
    /// Tree size.
    pub size: u64,
    /// Root hash, base64 as in the note.
    pub root: String,
    /// Root hash, hex.
    pub root_hex: String,
    /// Key ids (`name+hash`) of the signature lines in the note.
    pub signers: Vec<String>,
    /// Whether the log key's signature on it verified.
    pub signature_verified: bool,
    /// Whether the tree of the entry lines has its size and root.
    pub matches_entries: bool,
}

/// One line of `entries.jsonl` on the page.
#[derive(Debug, Clone)]
pub enum ReportEntry {
    /// A line that parses as an entry.
    Entry(Box<Entry>),
    /// A line that is not an entry (edited, too long): shown as such, by position.
    Unreadable {
        /// Position of the line.
        position: u64,
        /// Why it is not an entry.
        reason: String,
    },
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    /// The HTML file.
    pub file: std::path::PathBuf,
    /// Entry lines on the page.
    pub entries: u64,
    /// Whether the ledger verified.
    pub verified: bool,
    /// How many problems verification found.
    pub problems: usize,
    /// The first problem, if any.
    pub first_problem: Option<String>,
}

impl ReportHeader {
    /// The header for a finished verification of the ledger in `dir`.
    pub fn new(ledger: &str, dir: &Path, report: &VerifyReport) -> Self {
        let checkpoint = stated_checkpoint(dir).map(|(cp, signers)| CheckpointView {
            size: cp.size,
            root: cp.root_base64(),
            root_hex: hex::encode(cp.root),
            signers,
            signature_verified: report.checkpoint_size == Some(cp.size),
            matches_entries: cp.size == report.entries && cp.root_base64() == report.root,
        });
        Self {
            ledger: ledger.to_owned(),
            origin: report.origin.clone(),
            vkey: report.vkey.clone(),
            vkey_given: report.vkey_given,
            verified: report.is_ok(),
            problems: report
                .problems
                .iter()
                .map(|p| Problem {
                    kind: p.kind().to_owned(),
                    index: p.index(),
                    message: p.full_message(),
                })
                .collect(),
            warnings: report.warnings.clone(),
            entries: report.entries,
            root: report.root.clone(),
            checkpoint,
            cosigned_by: report.cosigned_by.clone(),
        }
    }

    /// Entry indexes a problem points at (highlighted on the page).
    fn problem_indexes(&self) -> HashSet<u64> {
        self.problems.iter().filter_map(|p| p.index).collect()
    }
}

/// The `checkpoint` file's body and signature key ids, unverified (verification judged it);
/// `None` when it is missing or unreadable.
fn stated_checkpoint(dir: &Path) -> Option<(Checkpoint, Vec<String>)> {
    let bytes = read_capped(&dir.join(CHECKPOINT), MAX_CHECKPOINT_BYTES).ok()?;
    let note = Note::parse(&bytes).ok()?;
    let cp = Checkpoint::parse_body(&note.text).ok()?;
    Some((cp, note.signatures.iter().map(|s| s.id()).collect()))
}

/// Verifies the ledger in `dir` with `opts` and writes the report page to `out` (through a
/// temporary file renamed into place, so a reader never sees half a page). `label` is how the
/// page names the ledger. The page is written also when verification fails; the summary says
/// so and the caller decides the exit status.
pub fn write_report(
    dir: &Path,
    label: &str,
    opts: &VerifyOptions,
    out: &Path,
) -> Result<ReportSummary, LedgerError> {
    let report = verify(dir, opts)?;
    let header = ReportHeader::new(label, dir, &report);
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let wr = |e| LedgerError::io("write", out, e);
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(wr)?;
    let mut w = std::io::BufWriter::new(tmp);
    w.write_all(html::head(&header).as_bytes()).map_err(wr)?;
    let problems = header.problem_indexes();
    let mut seen = HashSet::new();
    let mut written = 0u64;
    let mut lines = LineReader::open(&dir.join(ENTRIES))?;
    // Only the lines verification counted: an append racing this read is left off.
    while written < header.entries {
        let item = match lines.next_line()? {
            Some(Line::Whole { bytes, .. }) => match Entry::from_line(bytes) {
                Ok(e) => ReportEntry::Entry(Box::new(e)),
                Err(err) => ReportEntry::Unreadable {
                    position: written,
                    reason: err.to_string(),
                },
            },
            Some(Line::Long { len, .. }) => ReportEntry::Unreadable {
                position: written,
                reason: format!(
                    "line of {len} bytes, longer than any entry ({} bytes)",
                    super::entry::MAX_ENTRY_BYTES
                ),
            },
            Some(Line::Torn { .. }) | None => break,
        };
        w.write_all(html::entry(&item, written, &problems, &mut seen).as_bytes())
            .map_err(wr)?;
        written += 1;
    }
    w.write_all(html::tail().as_bytes()).map_err(wr)?;
    let tmp = w.into_inner().map_err(|e| wr(e.into_error()))?;
    tmp.as_file().sync_all().map_err(wr)?;
    tmp.persist(out).map_err(|e| wr(e.error))?;
    Ok(ReportSummary {
        file: out.to_owned(),
        entries: written,
        verified: header.verified,
        problems: header.problems.len(),
        first_problem: header.problems.first().map(|p| p.message.clone()),
    })
}
