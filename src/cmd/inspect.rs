//! `airlock inspect BUNDLE|NAME.parts.json|DIR`: what a bundle holds, from its table of
//! contents alone (for parts, the first part suffices). With `--trust` the signature is
//! checked as `verify` checks it (the parts manifest's too); without, it is only said to be
//! present, never called good.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use airlock::bundle::signature::{check, SignatureStatus};
use airlock::bundle::{BundleManifest, BundleSource};

use super::{human_bytes, print_json, print_table, Format, Global, TrustArgs};

/// Arguments of `airlock inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`.tar.zst`), or its split parts: `NAME.parts.json` or a directory holding one.
    pub bundle: PathBuf,
    /// Without --trust the signature is not checked (inspect says so); with it, a signature
    /// that does not verify fails as in `verify`.
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    bundle: &'a PathBuf,
    /// Whether `airlock.json.sig` is present.
    signed: bool,
    /// The check's outcome; `null` when no key was given (nothing was checked).
    signature: Option<SignatureStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts_signature: Option<SignatureStatus>,
    total_bytes: u64,
    manifest: &'a BundleManifest,
}

/// Runs `airlock inspect`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let source = BundleSource::resolve(&args.bundle)?;
    let checking = !args.trust.trust.is_empty() || args.trust.allow_unsigned;
    let policy = args.trust.policy()?;
    let parts_signature = if checking {
        source.check_parts_signature(&policy)?
    } else {
        None
    };
    let c = source.table_of_contents()?;
    let signature = if checking {
        Some(check(source.path(), &c, &policy)?)
    } else {
        None
    };
    super::warn_unsigned(&signature);
    let m = &c.manifest;
    let parts = match &source {
        BundleSource::Parts(s) => Some(s.manifest.parts.len()),
        BundleSource::File(_) => None,
    };
    match g.format {
        Format::Json => print_json(&Report {
            bundle: &args.bundle,
            signed: c.signature.is_some(),
            signature,
            parts,
            parts_signature,
            total_bytes: m.total_blob_bytes(),
            manifest: m,
        })?,
        Format::Table => {
            outln!("bundle   {} ({})", m.name, args.bundle.display());
            if let Some(n) = parts {
                outln!("parts    {n}");
            }
            outln!("created  {} by {}", m.created, m.tool);
            outln!("lock     {}", m.lock_digest);
            outln!(
                "signed   {}",
                signed_line(c.signature.is_some(), signature.as_ref())
            );
            outln!(
                "content  {} blobs, {}",
                m.blobs.len(),
                human_bytes(m.total_blob_bytes())
            );
            outln!();
            let rows: Vec<Vec<String>> = m
                .artifacts
                .iter()
                .map(|a| {
                    let platforms: Vec<String> = a
                        .children
                        .iter()
                        .filter(|c| c.included)
                        .map(|c| {
                            c.platform
                                .as_ref()
                                .map(|p| p.to_string())
                                .unwrap_or_else(|| "?".into())
                        })
                        .collect();
                    vec![
                        format!("{:?}", a.kind).to_lowercase(),
                        a.source.clone(),
                        a.digest.short().to_string(),
                        if platforms.is_empty() {
                            "-".into()
                        } else {
                            platforms.join(",")
                        },
                        human_bytes(a.size),
                    ]
                })
                .collect();
            print_table(&["KIND", "SOURCE", "DIGEST", "PLATFORMS", "SIZE"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `signed` line: what was checked, and nothing more.
fn signed_line(present: bool, status: Option<&SignatureStatus>) -> String {
    match (present, status) {
        (_, Some(SignatureStatus::Verified { signers })) => {
            format!("yes, verified: signed by {}", signers.join(", "))
        }
        (true, Some(SignatureStatus::UncheckedAllowed)) => {
            "present, NOT checked (--allow-unsigned)".to_owned()
        }
        (true, None) => "present, not checked (pass --trust KEY.pub to check it)".to_owned(),
        (false, _) => "no".to_owned(),
    }
}
