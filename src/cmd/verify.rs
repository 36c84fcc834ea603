//! `airlock verify BUNDLE`: structure, completeness and every digest, streaming.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use airlock::bundle::reader::{read_bundle, VerifyOnly};

use super::{human_bytes, print_json, Global, Output, TrustArgs};

/// Arguments of `airlock verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`.tar.zst`).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub trust: TrustArgs,
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
}

/// Runs `airlock verify`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let bars = super::progress::Bars::new(g.quiet);
    let toc = airlock::bundle::reader::read_table_of_contents(&args.bundle)?;
    airlock::progress::Reporter::phase(&bars, "verify", toc.manifest.total_blob_bytes());
    let policy = args.trust.policy()?;
    let mut visitor = VerifyOnly {
        path: &args.bundle,
        policy: &policy,
        status: None,
    };
    let summary = read_bundle(&args.bundle, &mut visitor, &bars);
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
    };
    super::warn_unsigned(&visitor.status);
    match g.output {
        Output::Json => print_json(&report)?,
        Output::Human => {
            let signed = match &report.signature {
                Some(airlock::bundle::signature::SignatureStatus::Verified { signers }) => {
                    format!("signed by {}", signers.join(", "))
                }
                _ => "signature NOT checked".to_string(),
            };
            println!(
                "{}: OK — {} artifacts, {} blobs, {} verified; {signed}",
                args.bundle.display(),
                report.artifacts,
                report.blobs,
                human_bytes(report.bytes)
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}
