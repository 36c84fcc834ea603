//! `airlock verify-parts DIR|NAME.parts.json`: check the parts manifest's signature, then every
//! part on its own (size, sha256), naming every part that is missing, short or damaged so only
//! those need to be carried again. Exits as `verify` would: 4 when a part is damaged (or the
//! parts do not join to the bundle), 1 when parts are only missing.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use airlock::bundle::parts::{check_parts, PartStatus, PartsSet};
use airlock::bundle::signature::SignatureStatus;
use airlock::bundle::BundleSource;

use super::{human_bytes, print_json, print_table, Format, Global, TrustArgs};

/// Arguments of `airlock verify-parts`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// `NAME.parts.json`, or the directory holding it and the parts.
    pub parts: PathBuf,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    parts_json: &'a PathBuf,
    name: &'a str,
    bundle: &'a str,
    size: u64,
    sha256: &'a airlock::oci::Digest,
    ok: bool,
    signature: Option<SignatureStatus>,
    bundle_ok: Option<bool>,
    bad: usize,
    parts: &'a [PartStatus],
}

/// Runs `airlock verify-parts`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let set = PartsSet::load(&args.parts)?;
    let policy = args.trust.policy()?;
    let signature = BundleSource::Parts(Box::new(set.clone())).check_parts_signature(&policy)?;
    let set = &set;
    let bars = super::progress::Bars::new(g.quiet);
    airlock::progress::Reporter::phase(&bars, "check", set.manifest.size);
    let check = check_parts(set, &bars);
    airlock::progress::Reporter::finish_phase(&bars);
    let bad: Vec<&PartStatus> = check.bad().collect();
    let ok = bad.is_empty() && check.bundle_ok == Some(true);
    let report = Report {
        parts_json: &set.path,
        name: &set.manifest.name,
        bundle: &set.manifest.bundle,
        size: set.manifest.size,
        sha256: &set.manifest.sha256,
        ok,
        signature: signature.clone(),
        bundle_ok: check.bundle_ok,
        bad: bad.len(),
        parts: &check.parts,
    };
    super::warn_unsigned(&signature);
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = check
                .parts
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        human_bytes(p.size),
                        p.status.replace('_', " "),
                        p.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["PART", "SIZE", "STATUS", "PROBLEM"], &rows);
            if ok {
                outln!(
                    "{}: OK — {} parts, bundle {} ({}) sha256 {}",
                    set.path.display(),
                    check.parts.len(),
                    set.manifest.bundle,
                    human_bytes(set.manifest.size),
                    set.manifest.sha256
                );
            }
        }
    }
    if let Some(err) = check.error(&set.manifest) {
        let err = anyhow::Error::new(err).context(format!("`{}`", set.path.display()));
        if g.format == Format::Json {
            // The report on stdout already lists the bad parts: one JSON document, not two.
            errln!("error: {}", super::error_line(&err));
            for hint in super::hints::for_error(&err) {
                errln!("hint: {hint}");
            }
            return Ok(super::exit_code_for(&err));
        }
        return Err(err);
    }
    Ok(ExitCode::SUCCESS)
}
