//! `airlock verify BUNDLE|NAME.parts.json|DIR`: structure, completeness and every digest,
//! streaming; split parts are read in sequence, each checked as it passes.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use airlock::bundle::reader::VerifyOnly;
use airlock::bundle::BundleSource;

use super::{human_bytes, print_json, Format, Global, TrustArgs};

/// Arguments of `airlock verify`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  airlock verify app.tar.zst --trust release.pub
  airlock verify usb/ --trust release.pub          # split parts: NAME.parts.json or its directory
  airlock verify app.tar.zst --trust release.pub --files-to /srv/files")]
pub struct Args {
    /// The bundle (`.tar.zst`), or its split parts: `NAME.parts.json` or a directory holding one.
    pub bundle: PathBuf,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Also write the bundle's plain files (`files:` in the spec) into this directory, each
    /// renamed into place only once verified.
    #[arg(long, value_name = "DIR")]
    pub files_to: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    bundle: &'a PathBuf,
    name: String,
    ok: bool,
    artifacts: usize,
    blobs: usize,
    bytes: u64,
    signed: bool,
    signature: Option<airlock::bundle::signature::SignatureStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<usize>,
    /// Blobs a delta bundle leaves out (the site holds them, per its receipt).
    #[serde(skip_serializing_if = "is_zero")]
    omitted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts_signature: Option<airlock::bundle::signature::SignatureStatus>,
}

/// Runs `airlock verify`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let bars = super::progress::Bars::new(g.quiet);
    let source = BundleSource::resolve(&args.bundle)?;
    let policy = args.trust.policy()?;
    let parts_signature = source.check_parts_signature(&policy)?;
    let toc = source.table_of_contents()?;
    airlock::progress::Reporter::phase(&bars, "verify", toc.manifest.total_blob_bytes());
    let mut visitor = VerifyOnly {
        path: &args.bundle,
        policy: &policy,
        status: None,
    };
    let summary = match &args.files_to {
        None => source.read(&policy, &mut visitor, &bars),
        Some(dir) => source.read(
            &policy,
            &mut airlock::files::ExtractFiles::new(&mut visitor, dir),
            &bars,
        ),
    };
    airlock::progress::Reporter::finish_phase(&bars);
    let summary = summary?;
    let m = &summary.contents.manifest;
    let report = Report {
        bundle: &args.bundle,
        name: m.name.clone(),
        ok: true,
        artifacts: m.artifacts.len(),
        blobs: summary.blobs,
        bytes: summary.blob_bytes,
        signed: summary.contents.signature.is_some(),
        signature: visitor.status.clone(),
        parts: match &source {
            BundleSource::Parts(s) => Some(s.manifest.parts.len()),
            BundleSource::File(_) => None,
        },
        parts_signature,
        omitted: m.omitted.len(),
    };
    super::warn_unsigned(&visitor.status);
    super::warn_unsigned(&report.parts_signature);
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let signed = match &report.signature {
                Some(airlock::bundle::signature::SignatureStatus::Verified { signers }) => {
                    format!("signed by {}", signers.join(", "))
                }
                _ => "signature NOT checked".to_string(),
            };
            let delta = match report.omitted {
                0 => String::new(),
                n => format!(" (delta: {n} blobs left out, expected at the target)"),
            };
            let parts = match report.parts {
                Some(n) => format!(" from {n} parts"),
                None => String::new(),
            };
            outln!(
                "{}: OK — {} artifacts, {} blobs, {} verified{parts}{delta}; {signed}",
                args.bundle.display(),
                report.artifacts,
                report.blobs,
                human_bytes(report.bytes)
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
