//! `airlock split BUNDLE --size 700MiB`: cut an existing bundle into media-sized parts plus a
//! signed `NAME.parts.json` (the same parts `collect --split` writes while packing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use airlock::bundle::parts::{self, SplitReport};
use airlock::trust::keys::SigningKey;

use super::{human_bytes, print_json, print_table, Format, Global};

/// Arguments of `airlock split`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`NAME.tar.zst`) to split.
    pub bundle: PathBuf,
    /// Size of each part (the last one may be shorter): `700MiB`, `4GiB`, `4.7GB`, or bytes.
    #[arg(long, value_name = "SIZE")]
    pub size: String,
    /// Directory for the parts and `NAME.parts.json` (default: the bundle's directory).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Sign `NAME.parts.json` with this key (cosign format). Repeatable: several signers.
    #[arg(long = "key", alias = "sign", value_name = "KEY")]
    pub sign: Vec<PathBuf>,
    /// File holding the signing keys' password (else `AIRLOCK_PASSWORD`, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Delete the bundle once its parts are written.
    #[arg(long)]
    pub remove_bundle: bool,
}

/// Loads signing keys, asking for the password once.
pub fn load_signers(
    keys: &[PathBuf],
    password_file: Option<&Path>,
) -> anyhow::Result<Vec<SigningKey>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let pw = airlock::trust::password::read_password(password_file, "signing key", false)?;
    keys.iter()
        .map(|k| Ok(SigningKey::load(k, pw.as_bytes())?))
        .collect()
}

/// Runs `airlock split`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let size = parts::parse_size(&args.size).context("--size")?;
    let signers = load_signers(&args.sign, args.password_file.as_deref())?;
    let out_dir = match &args.out_dir {
        Some(d) => d.clone(),
        None => bundle_dir(&args.bundle),
    };
    let bars = super::progress::Bars::new(g.quiet);
    let report = parts::split(&args.bundle, &out_dir, size, &signers, &bars)
        .with_context(|| format!("splitting `{}`", args.bundle.display()))?;
    if args.remove_bundle {
        fs_err::remove_file(&args.bundle)?;
    }
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => print_split(&report),
    }
    Ok(ExitCode::SUCCESS)
}

/// The directory a bundle file is in (`.` for a bare name).
pub fn bundle_dir(bundle: &Path) -> PathBuf {
    match bundle.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The human form of a split report.
pub fn print_split(report: &SplitReport) {
    let rows: Vec<Vec<String>> = report
        .manifest
        .parts
        .iter()
        .map(|p| vec![p.name.clone(), human_bytes(p.size), p.sha256.to_string()])
        .collect();
    print_table(&["PART", "SIZE", "SHA256"], &rows);
    outln!(
        "wrote {} ({} parts of up to {}, bundle {} sha256 {}){}",
        report.parts_json.display(),
        report.manifest.parts.len(),
        human_bytes(report.manifest.part_size),
        human_bytes(report.manifest.size),
        report.manifest.sha256,
        if report.signers.is_empty() {
            ", UNSIGNED".to_string()
        } else {
            format!(", signed by {}", report.signers.join(", "))
        }
    );
}
