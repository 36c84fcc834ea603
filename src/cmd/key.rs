//! `airlock key …`: make the signing keys bundles are signed with.
//!
//! `airlock key generate` writes a cosign-compatible ECDSA P-256 pair: `NAME.key` (encrypted,
//! mode 0600; `cosign sign-blob --key NAME.key` uses it) and `NAME.pub` (PKIX PEM; what sites pass
//! to `airlock verify --trust`). It prints the key id, the hex SHA-256 of the DER public key, which
//! is how signatures and the ledger name the key.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock::trust::keys::{KeyPairPaths, SigningKey};
use airlock::trust::read_password;
use anyhow::Context as _;
use serde::Serialize;

use super::{Format, Global};

/// Arguments of `airlock key`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KeyCommand {
    /// Make a new ECDSA P-256 key pair in cosign's format: NAME.key (encrypted) and NAME.pub.
    ///
    /// The password comes from --password-file, else AIRLOCK_PASSWORD (or COSIGN_PASSWORD), else
    /// a prompt on the terminal (asked twice).
    Generate(GenerateArgs),
}

#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// Path and name of the pair: writes OUT.key and OUT.pub (a trailing .key or .pub is dropped).
    #[arg(
        short = 'o',
        long = "output",
        alias = "out",
        value_name = "keys/NAME",
        default_value = "airlock"
    )]
    out: PathBuf,
    /// Read the password for the new private key from this file (one trailing newline removed).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Replace existing NAME.key / NAME.pub.
    #[arg(long)]
    force: bool,
}

/// What `airlock key generate` made; printed as a table or as JSON.
#[derive(Serialize, Debug)]
struct Generated {
    private_key: PathBuf,
    public_key: PathBuf,
    key_id: String,
    algorithm: &'static str,
}

/// Runs `airlock key`.
pub fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        KeyCommand::Generate(args) => generate(args, global),
    }
}

fn generate(args: GenerateArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let paths = KeyPairPaths::new(&args.out);
    // Before the password prompt: do not ask for a password we cannot use.
    paths.check_free(args.force)?;
    let purpose = format!("the new private key `{}`", paths.private_key.display());
    let password = read_password(args.password_file.as_deref(), &purpose, true)?;
    // Only once the key can be written: a refused command leaves nothing behind.
    super::create_parent_dir(&args.out)?;
    if password.is_empty() && !global.quiet {
        errln!(
            "warning: `{}` is encrypted with an empty password",
            paths.private_key.display()
        );
    }
    let key = SigningKey::generate().context("cannot generate a key")?;
    airlock::trust::keys::write_key_pair(&key, password.as_bytes(), &paths, args.force)?;

    let report = Generated {
        private_key: paths.private_key.clone(),
        public_key: paths.public_key.clone(),
        key_id: key.key_id().to_string(),
        algorithm: "ecdsa-p256-sha256",
    };
    match global.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => {
            outln!("private key  {}", report.private_key.display());
            outln!("public key   {}", report.public_key.display());
            outln!("key id       {}", report.key_id);
            if !global.quiet {
                errln!();
                errln!(
                    "hint: keep `{}` and its password secret; give `{}` to the sites that verify",
                    report.private_key.display(),
                    report.public_key.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
