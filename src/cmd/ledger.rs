//! `airlock ledger …`: the provenance ledger (format in `docs/LEDGER.md`).
//!
//! Parses, calls `airlock::ledger`, prints. `verify` exits 1 when it finds a problem and
//! prints every problem, first bad index first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock::ledger::{self, LedgerSigner, Query, VerifierKey, VerifyOptions};
use airlock::trust::read_password;
use anyhow::Context as _;
use serde::Serialize;

use super::{Format, Global, EXIT_FAILURE, EXIT_LEDGER};

/// Arguments of `airlock ledger`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: LedgerCommand,
}

#[derive(clap::Subcommand, Debug)]
enum LedgerCommand {
    /// Make a new ledger directory and its Ed25519 key pair.
    ///
    /// The private key is encrypted with a password from --password-file, else
    /// AIRLOCK_PASSWORD (or COSIGN_PASSWORD), else a prompt (asked twice).
    Init(InitArgs),
    /// Recompute the tree from the entries and check every checkpoint against it.
    ///
    /// Reports every problem (edited, removed, reordered, truncated or torn entries, forged or
    /// edited checkpoints, an older checkpoint presented as the newest, forks), first bad index
    /// first, and exits 1 if there is any. Accepts a ledger directory or an export file.
    Verify(VerifyArgs),
    /// Where a digest, reference or bundle came from: source, bundle, signers, policy, when, who.
    Show(ShowArgs),
    /// Write an inclusion proof (C2SP tlog-proof) for one entry.
    Prove(ProveArgs),
    /// Check an inclusion proof with nothing but the proof and the log's key.
    VerifyProof(VerifyProofArgs),
    /// Prove the ledger grew append-only since an older checkpoint.
    Consistency(ConsistencyArgs),
    /// Cosign the latest checkpoint with a witness key, after checking it extends the last one
    /// this witness cosigned.
    Cosign(CosignArgs),
    /// Make a witness (cosignature/v1) key pair: OUT.key (encrypted) and OUT.vkey.
    WitnessKey(WitnessKeyArgs),
    /// Write one file an auditor takes away: entries, checkpoints, verifier keys.
    Export(ExportArgs),
    /// Write a self-contained HTML page for an auditor: the verification result, the
    /// checkpoint and every entry, searchable by digest.
    ///
    /// The ledger is verified first (as `ledger verify` does). The page is written even when
    /// verification fails, and then says FAILED at the top and marks the entries concerned;
    /// the command then exits 7. The page loads nothing from anywhere.
    #[command(
        after_help = "Examples:\n  airlock ledger report /var/lib/airlock/ledger -o report.html \\\n      --vkey ledger.vkey"
    )]
    Report(ReportArgs),
}

#[derive(clap::Args, Debug)]
struct InitArgs {
    /// The ledger directory to create (must not exist or be empty).
    dir: PathBuf,
    /// The log's name, a schema-less URL such as `registry.example/airlock-ledger`.
    #[arg(long)]
    origin: String,
    /// Read the password for the new private key from this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// Ledger directory, or a file made by `airlock ledger export`.
    path: PathBuf,
    /// The log's verifier key (a file or the `name+hash+base64` text) from a source you trust.
    #[arg(long, value_name = "KEY")]
    vkey: Option<String>,
    /// A checkpoint you kept earlier: the ledger must still extend it.
    #[arg(long, value_name = "FILE")]
    trusted_checkpoint: Option<PathBuf>,
    /// A witness verifier key whose cosignatures are checked (repeatable).
    #[arg(long, value_name = "KEY")]
    witness_vkey: Vec<String>,
    /// Also check the log signature of every stored checkpoint whose root the latest
    /// checkpoint already vouches for (slower: one signature check per append). Implies
    /// --every-checkpoint.
    #[arg(long)]
    every_signature: bool,
    /// Read every stored checkpoint, also those below the latest checkpoint's size that it
    /// vouches for, and check each against the entries (a full audit: one file per append).
    #[arg(long)]
    every_checkpoint: bool,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("query").multiple(false)))]
struct ShowArgs {
    /// Ledger directory.
    dir: PathBuf,
    /// An artifact or bundle digest, `sha256:<hex>`.
    #[arg(long, group = "query")]
    digest: Option<String>,
    /// A source or target reference, as recorded.
    #[arg(long = "ref", group = "query", value_name = "REF")]
    reference: Option<String>,
    /// A bundle digest or name.
    #[arg(long, group = "query")]
    bundle: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ProveArgs {
    /// Ledger directory.
    dir: PathBuf,
    /// Entry index.
    #[arg(long)]
    index: u64,
    /// Write the proof here (default: stdout).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Check the ledger's checkpoint with this key instead of the directory's own.
    #[arg(long, value_name = "KEY")]
    vkey: Option<String>,
}

#[derive(clap::Args, Debug)]
struct VerifyProofArgs {
    /// The proof file.
    proof: PathBuf,
    /// The log's verifier key (file or text).
    #[arg(long, value_name = "KEY")]
    vkey: String,
    /// A witness verifier key whose cosignature must verify if present (repeatable).
    #[arg(long, value_name = "KEY")]
    witness_vkey: Vec<String>,
    /// The entry line, when the proof carries none.
    #[arg(long, value_name = "FILE")]
    entry: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ConsistencyArgs {
    /// Ledger directory.
    dir: PathBuf,
    /// The older checkpoint (a signed note).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The log's verifier key (file or text); default: the directory's own.
    #[arg(long, value_name = "KEY")]
    vkey: Option<String>,
    /// Write the proof (`old N`, hashes, the new checkpoint) here.
    #[arg(short = 'o', long = "output", alias = "out", value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct CosignArgs {
    /// Ledger directory.
    dir: PathBuf,
    /// The witness private key (its verifier key is read from the same path with `.vkey`).
    #[arg(long, value_name = "WITNESS.key")]
    key: PathBuf,
    /// The witness state file (default: the key path with `.state`).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// The log key to pin on first use (default: the ledger directory's, trusted on first use).
    #[arg(long, value_name = "KEY")]
    log_vkey: Option<String>,
    /// Read the witness key password from this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct WitnessKeyArgs {
    /// The witness name, e.g. `witness.example/w1`.
    #[arg(long)]
    name: String,
    /// Path without extension: writes OUT.key and OUT.vkey.
    #[arg(short = 'o', long = "output", alias = "out", value_name = "OUT")]
    out: PathBuf,
    /// Read the password for the new private key from this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ExportArgs {
    /// Ledger directory.
    dir: PathBuf,
    /// The export file (a tar).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "FILE")]
    out: PathBuf,
    /// Include the evidence store.
    #[arg(long)]
    with_evidence: bool,
    /// Witness verifier keys to include (repeatable).
    #[arg(long, value_name = "KEY")]
    witness_vkey: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// Ledger directory, or a file made by `airlock ledger export`.
    path: PathBuf,
    /// The HTML file to write (its directory is created when missing).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    out: PathBuf,
    /// The log's verifier key (a file or the `name+hash+base64` text) from a source you trust.
    #[arg(long, value_name = "KEY")]
    vkey: Option<String>,
}

/// Runs `airlock ledger`.
pub fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        LedgerCommand::Init(a) => init(a, global),
        LedgerCommand::Verify(a) => verify(a, global),
        LedgerCommand::Show(a) => show(a, global),
        LedgerCommand::Prove(a) => prove(a, global),
        LedgerCommand::VerifyProof(a) => verify_proof(a, global),
        LedgerCommand::Consistency(a) => consistency(a, global),
        LedgerCommand::Cosign(a) => cosign(a, global),
        LedgerCommand::WitnessKey(a) => witness_key(a, global),
        LedgerCommand::Export(a) => export(a, global),
        LedgerCommand::Report(a) => report(a, global),
    }
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn vkeys(args: &[String]) -> anyhow::Result<Vec<VerifierKey>> {
    args.iter()
        .map(|a| ledger::vkey_from_arg(a).map_err(anyhow::Error::from))
        .collect()
}

fn opt_vkey(arg: Option<&String>) -> anyhow::Result<Option<VerifierKey>> {
    arg.map(|a| ledger::vkey_from_arg(a))
        .transpose()
        .map_err(Into::into)
}

fn init(a: InitArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let purpose = format!("the new ledger key `{}`", a.dir.join(ledger::KEY).display());
    let password = read_password(a.password_file.as_deref(), &purpose, true)?;
    let report = ledger::init(&a.dir, &a.origin, password.as_bytes())
        .with_context(|| format!("cannot make ledger `{}`", a.dir.display()))?;
    match global.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            outln!("ledger       {}", report.dir.display());
            outln!("origin       {}", report.origin);
            outln!("verifier key {}", report.vkey);
            outln!("private key  {}", report.key.display());
            if !global.quiet {
                errln!();
                errln!(
                    "hint: give the verifier key to auditors (`airlock ledger verify --vkey`); \
                     keep `{}` and its password secret",
                    report.key.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(a: VerifyArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let mut opts = VerifyOptions {
        vkey: opt_vkey(a.vkey.as_ref())?,
        trusted_checkpoint: None,
        witnesses: vkeys(&a.witness_vkey)?,
        every_signature: a.every_signature,
        every_checkpoint: a.every_checkpoint,
    };
    if let Some(p) = &a.trusted_checkpoint {
        let bytes = airlock::io::read_capped(p, ledger::MAX_CHECKPOINT_BYTES, "checkpoint")?;
        opts.trusted_checkpoint = Some((p.clone(), bytes));
    }
    let opened = open_ledger_or_export(&a.path, &mut opts)?;
    let mut report = ledger::verify(opened.dir(), &opts)
        .with_context(|| format!("cannot verify ledger `{}`", a.path.display()))?;
    report.dir = a.path.clone();
    match global.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            outln!("ledger       {}", report.dir.display());
            outln!("origin       {}", report.origin);
            outln!(
                "key          {} ({})",
                report.vkey,
                if report.vkey_given {
                    "given"
                } else {
                    "from the ledger directory"
                }
            );
            outln!("entries      {}", report.entries);
            outln!("root         {}", report.root);
            outln!("checkpoint   {}", latest_line(report.checkpoint_size));
            outln!("stored       {}", stored_line(&report));
            if !report.cosigned_by.is_empty() {
                outln!("cosigned by  {}", report.cosigned_by.join(", "));
            }
            if let Some(t) = report.trusted_checkpoint {
                outln!("trusted      checkpoint of size {t}");
            }
            if report.is_ok() {
                outln!("OK: the ledger verifies");
            } else {
                outln!("FAIL: {} problem(s)", report.problems.len());
                for p in &report.problems {
                    outln!("  {}", p.full_message());
                }
            }
            if !global.quiet {
                for w in &report.warnings {
                    errln!("warning: {w}");
                }
            }
        }
    }
    if let Some(first) = report.first_problem() {
        errln!(
            "error: ledger `{}` does not verify: {}",
            a.path.display(),
            first.full_message()
        );
        return Ok(ExitCode::from(EXIT_LEDGER));
    }
    Ok(ExitCode::SUCCESS)
}

/// A ledger directory, or an export file unpacked into a temporary one (kept while this
/// lives). An export's witness keys are used when `opts` names none.
enum Opened {
    Dir(PathBuf),
    Export(tempfile::TempDir),
}

impl Opened {
    fn dir(&self) -> &Path {
        match self {
            Opened::Dir(d) => d,
            Opened::Export(t) => t.path(),
        }
    }
}

fn open_ledger_or_export(path: &Path, opts: &mut VerifyOptions) -> anyhow::Result<Opened> {
    if !path.is_file() {
        return Ok(Opened::Dir(path.to_owned()));
    }
    let tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
    let carried = ledger::import_export(path, tmp.path())?;
    if opts.witnesses.is_empty() {
        opts.witnesses = carried;
    }
    Ok(Opened::Export(tmp))
}

fn report(a: ReportArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let mut opts = VerifyOptions {
        vkey: opt_vkey(a.vkey.as_ref())?,
        ..VerifyOptions::default()
    };
    let opened = open_ledger_or_export(&a.path, &mut opts)?;
    super::create_parent_dir(&a.out)?;
    let label = a.path.display().to_string();
    let r = ledger::write_report(opened.dir(), &label, &opts, &a.out)
        .with_context(|| format!("cannot report on ledger `{}`", a.path.display()))?;
    match global.format {
        Format::Json => print_json(&r)?,
        Format::Table => {
            let verdict = if r.verified {
                "verification OK"
            } else {
                "verification FAILED"
            };
            outln!(
                "wrote `{}`: {} entries, {verdict}",
                r.file.display(),
                r.entries
            );
        }
    }
    if let Some(first) = &r.first_problem {
        errln!(
            "error: ledger `{}` does not verify: {first} (the report shows every problem)",
            a.path.display()
        );
        return Ok(ExitCode::from(EXIT_LEDGER));
    }
    Ok(ExitCode::SUCCESS)
}

fn show(a: ShowArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let query = match (a.digest, a.reference, a.bundle) {
        (Some(d), _, _) => Query::Digest(d),
        (_, Some(r), _) => Query::Ref(r),
        (_, _, Some(b)) => Query::Bundle(b),
        _ => Query::All,
    };
    let found = ledger::find(&a.dir, &query)
        .with_context(|| format!("cannot read ledger `{}`", a.dir.display()))?;
    match global.format {
        Format::Json => print_json(&found)?,
        Format::Table => {
            for m in &found.matches {
                let result = match &m.result {
                    ledger::Outcome::Admitted => "admitted".to_owned(),
                    ledger::Outcome::Rejected { reason } => format!("rejected: {reason}"),
                };
                outln!(
                    "entry {}  {}  by {}  ({})",
                    m.index,
                    m.time,
                    m.operator,
                    m.importer
                );
                outln!(
                    "  bundle   {}{}",
                    m.bundle,
                    m.bundle_name
                        .as_ref()
                        .map_or_else(String::new, |n| format!(" ({n})"))
                );
                for s in &m.bundle_signatures {
                    outln!("  signer   {} {:?}", s.signer, s.verdict);
                }
                if let Some(p) = &m.policy_digest {
                    outln!("  policy   {p}");
                }
                outln!("  target   {}", m.target_registry);
                outln!("  result   {result}");
                for art in &m.artifacts {
                    outln!(
                        "  {} {} -> {} {}",
                        art.kind,
                        art.source_ref,
                        art.target_ref.as_deref().unwrap_or("-"),
                        art.digest
                    );
                    for s in &art.signatures {
                        outln!(
                            "      signature {} {:?}{}",
                            s.signer,
                            s.verdict,
                            s.detail
                                .as_ref()
                                .map_or_else(String::new, |d| format!(" ({d})"))
                        );
                    }
                }
            }
            if found.matches.is_empty() {
                outln!("no entry matches");
            }
            if !global.quiet {
                if let Some(r) = &found.unverified_reason {
                    errln!("warning: the entries do not match the latest checkpoint: {r}");
                    errln!();
                    errln!("hint: run `airlock ledger verify {}`", a.dir.display());
                }
                if found.uncommitted > 0 {
                    eprintln!(
                        "warning: {} line(s) after the latest checkpoint were left out: an append was interrupted; the next import moves them to `recovered/`",
                        found.uncommitted
                    );
                }
            }
        }
    }
    Ok(if found.matches.is_empty() {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_or_print(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            super::create_parent_dir(p)?;
            fs_err::write(p, text)?
        }
        None => print!("{}", airlock::untrusted::escape_lines(text)),
    }
    Ok(())
}

#[derive(Serialize)]
struct Written<'a> {
    file: Option<&'a Path>,
    index: u64,
    tree_size: u64,
    proof: &'a str,
}

fn prove(a: ProveArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let vkey = opt_vkey(a.vkey.as_ref())?;
    let proof = ledger::prove_inclusion(&a.dir, a.index, vkey.as_ref())
        .with_context(|| format!("cannot prove entry {} of `{}`", a.index, a.dir.display()))?;
    let text = proof.to_text();
    let size = proof.tree_size().unwrap_or(0);
    match global.format {
        Format::Json => {
            if let Some(p) = &a.out {
                fs_err::write(p, &text)?;
            }
            print_json(&Written {
                file: a.out.as_deref(),
                index: a.index,
                tree_size: size,
                proof: &text,
            })?;
        }
        Format::Table => {
            write_or_print(a.out.as_deref(), &text)?;
            if let (Some(p), false) = (&a.out, global.quiet) {
                errln!(
                    "wrote inclusion proof of entry {} in tree of size {size} to `{}`",
                    a.index,
                    p.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_proof(a: VerifyProofArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let vkey = ledger::vkey_from_arg(&a.vkey)?;
    let witnesses = vkeys(&a.witness_vkey)?;
    let text = airlock::io::read_capped(&a.proof, ledger::MAX_PROOF_BYTES, "proof")?;
    let entry = a
        .entry
        .as_ref()
        .map(|e| {
            let cap = airlock::ledger::entry::MAX_ENTRY_BYTES as u64 + 1;
            airlock::io::read_capped(e, cap, "ledger entry")
        })
        .transpose()?;
    let entry = entry.as_deref().map(|e| e.strip_suffix(b"\n").unwrap_or(e));
    let v = ledger::verify_inclusion_proof(&a.proof, &text, &vkey, &witnesses, entry)
        .with_context(|| format!("proof `{}` does not verify", a.proof.display()))?;
    match global.format {
        Format::Json => print_json(&v)?,
        Format::Table => {
            outln!(
                "OK: entry {} is in {} at tree size {} (root {})",
                v.index,
                v.origin,
                v.tree_size,
                v.root
            );
            if !v.cosigned_by.is_empty() {
                outln!("cosigned by {}", v.cosigned_by.join(", "));
            }
            if let Some(e) = &v.entry {
                println!("{}", serde_json::to_string_pretty(e)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn consistency(a: ConsistencyArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let vkey = opt_vkey(a.vkey.as_ref())?;
    let old = airlock::io::read_capped(&a.from, ledger::MAX_CHECKPOINT_BYTES, "checkpoint")?;
    let p = ledger::prove_consistency(&a.dir, &a.from, &old, vkey.as_ref()).with_context(|| {
        format!(
            "ledger `{}` does not extend `{}`",
            a.dir.display(),
            a.from.display()
        )
    })?;
    if let Some(out) = &a.out {
        fs_err::write(out, p.to_text())?;
    }
    match global.format {
        Format::Json => print_json(&p)?,
        Format::Table => {
            outln!(
                "OK: the ledger grew append-only from size {} to {} ({} proof hashes)",
                p.old_size,
                p.new_size,
                p.proof.len()
            );
            if a.out.is_none() {
                print!("{}", airlock::untrusted::escape_lines(&p.to_text()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cosign(a: CosignArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let vkey_path = a.key.with_extension("vkey");
    let state = a
        .state
        .clone()
        .unwrap_or_else(|| ledger::witness::default_state_path(&a.key));
    let log_vkey = opt_vkey(a.log_vkey.as_ref())?;
    let purpose = format!("the witness key `{}`", a.key.display());
    let password = read_password(a.password_file.as_deref(), &purpose, false)?;
    let witness = LedgerSigner::load_pair(&a.key, &vkey_path, password.as_bytes())?;
    let r = ledger::witness::cosign(&a.dir, &witness, &state, log_vkey.as_ref()).with_context(
        || {
            format!(
                "witness {} refuses to cosign `{}`",
                witness.name(),
                a.dir.display()
            )
        },
    )?;
    match global.format {
        Format::Json => print_json(&r)?,
        Format::Table => {
            outln!("cosigned     {} size {} root {}", r.origin, r.size, r.root);
            outln!("witness      {}", r.witness);
            match r.previous_size {
                Some(p) => outln!("previous     size {p} (consistent)"),
                None => outln!("previous     none: first cosignature, log key pinned"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn witness_key(a: WitnessKeyArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let key = a.out.with_extension("key");
    let vkey = a.out.with_extension("vkey");
    let purpose = format!("the new witness key `{}`", key.display());
    let password = read_password(a.password_file.as_deref(), &purpose, true)?;
    let v = ledger::witness::generate(&a.name, &key, &vkey, password.as_bytes())?;
    #[derive(Serialize)]
    struct Made {
        private_key: PathBuf,
        verifier_key_file: PathBuf,
        verifier_key: String,
    }
    let made = Made {
        private_key: key,
        verifier_key_file: vkey,
        verifier_key: v.to_string(),
    };
    match global.format {
        Format::Json => print_json(&made)?,
        Format::Table => {
            outln!("private key  {}", made.private_key.display());
            outln!("verifier key {}", made.verifier_key);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn export(a: ExportArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let witnesses = vkeys(&a.witness_vkey)?;
    let r = ledger::export(&a.dir, &a.out, &witnesses, a.with_evidence)
        .with_context(|| format!("cannot export ledger `{}`", a.dir.display()))?;
    match global.format {
        Format::Json => print_json(&r)?,
        Format::Table => outln!(
            "wrote `{}`: {} entries, {} checkpoints, {} evidence files, {} bytes",
            r.file.display(),
            r.entries,
            r.checkpoints,
            r.evidence,
            r.bytes
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The latest checkpoint: its size once its log signature verified.
fn latest_line(size: Option<u64>) -> String {
    match size {
        Some(n) => format!("size {n}, log signature verified"),
        None => "none verified".to_owned(),
    }
}

/// What the stored checkpoints (one per append) showed: each read one is sound when its own
/// log signature verifies, or when it states the root of the entries at its size that the
/// latest checkpoint signs; older ones the latest vouches for are not read by default.
fn stored_line(r: &airlock::ledger::VerifyReport) -> String {
    let read = r.checkpoints_verified;
    let own = r.checkpoint_signatures_checked.min(read);
    let vouched = read - own;
    let total = read + r.checkpoints_not_read;
    let mut how = Vec::new();
    if own > 0 {
        how.push(format!("{own} with their own log signature verified"));
    }
    if vouched > 0 {
        how.push(format!(
            "{vouched} matching the entries the latest checkpoint signs"
        ));
    }
    if r.checkpoints_not_read > 0 {
        how.push(format!(
            "{} older not read, the latest vouches for them (--every-checkpoint reads them)",
            r.checkpoints_not_read
        ));
    }
    if own < total {
        how.push("--every-signature checks each one's own signature".to_owned());
    }
    let noun = if total == 1 {
        "checkpoint"
    } else {
        "checkpoints"
    };
    match how.is_empty() {
        true => format!("{total} {noun}"),
        false => format!("{total} {noun} (one per append): {}", how.join("; ")),
    }
}
