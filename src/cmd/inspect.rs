//! `airlock inspect BUNDLE`: what a bundle holds, from its table of contents alone.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use airlock::bundle::reader::read_table_of_contents;
use airlock::bundle::BundleManifest;

use super::{human_bytes, print_json, print_table, Format, Global};

/// Arguments of `airlock inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`.tar.zst`).
    pub bundle: PathBuf,
}

#[derive(Serialize)]
struct Report<'a> {
    bundle: &'a PathBuf,
    signed: bool,
    total_bytes: u64,
    manifest: &'a BundleManifest,
}

/// Runs `airlock inspect`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let c = read_table_of_contents(&args.bundle)?;
    let m = &c.manifest;
    match g.format {
        Format::Json => print_json(&Report {
            bundle: &args.bundle,
            signed: c.signature.is_some(),
            total_bytes: m.total_blob_bytes(),
            manifest: m,
        })?,
        Format::Table => {
            outln!("bundle   {} ({})", m.name, args.bundle.display());
            outln!("created  {} by {}", m.created, m.tool);
            outln!("lock     {}", m.lock_digest);
            outln!(
                "signed   {}",
                if c.signature.is_some() { "yes" } else { "no" }
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
