//! `airlock config show`: the settings in force and where each came from (flag, `AIRLOCK_*`
//! variable, configuration file, default). The merging is `airlock::config`'s; this prints.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::{print_json, print_table, Format, Global, RegistryArgs, TrustArgs};

/// Arguments of `airlock config`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Sub,
}

/// `airlock config` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Print every setting the configuration file can give, its value and where it came from;
    /// flags given here show how they would override it.
    #[command(after_help = "Examples:
  airlock config show
  AIRLOCK_MAX_REQUESTS=4 airlock config show --format json
  airlock --config site.toml config show --ledger /srv/ledger")]
    Show(ShowArgs),
}

/// The flags the file can set, so `config show` can show a flag overriding it.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The provenance ledger.
    #[arg(long, value_name = "DIR")]
    pub ledger: Option<PathBuf>,
    /// The blob cache.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// The vulnerability database (scan, rescan).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The site's image-signature trust policy (import, admission-policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The site's scan policy (import).
    #[arg(long, value_name = "FILE")]
    pub scan_policy: Option<PathBuf>,
    /// Signing keys (collect, split, receipt).
    #[arg(long, value_name = "KEY")]
    pub key: Vec<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    config_file: Option<&'a PathBuf>,
    settings: &'a [airlock::config::Setting],
    auth_file: Option<&'a PathBuf>,
    registries: Option<&'a std::collections::BTreeMap<String, airlock::config::RegistrySection>>,
}

/// Runs `airlock config`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let Sub::Show(_) = args.command;
    let file = g.site.as_deref();
    let report = Report {
        config_file: file.map(|c| &c.path),
        settings: &g.settings,
        auth_file: file.and_then(|c| c.file.auth_file.as_ref()),
        registries: file.map(|c| &c.file.registries).filter(|r| !r.is_empty()),
    };
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            match file {
                Some(c) => outln!("config file: {}", c.path.display()),
                None => outln!("config file: none"),
            }
            let rows: Vec<Vec<String>> = g
                .settings
                .iter()
                .map(|s| {
                    let value = if s.values.is_empty() {
                        "-".to_string()
                    } else {
                        s.values.join(", ")
                    };
                    vec![format!("--{}", s.flag), value, s.origin.to_string()]
                })
                .collect();
            print_table(&["SETTING", "VALUE", "FROM"], &rows);
            if let Some(c) = file {
                if let Some(a) = &c.file.auth_file {
                    outln!(
                        "credentials: {} (read first), from {}",
                        a.display(),
                        c.path.display()
                    );
                }
                let path = |p: &Option<PathBuf>| {
                    p.as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or("-".into())
                };
                let rows: Vec<Vec<String>> = c
                    .file
                    .registries
                    .iter()
                    .map(|(h, r)| {
                        vec![
                            h.clone(),
                            if r.insecure { "plain HTTP" } else { "TLS" }.to_string(),
                            path(&r.ca_file),
                            path(&r.certs_dir),
                            path(&r.auth_file),
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    outln!();
                    outln!("registries (from {}):", c.path.display());
                    print_table(
                        &["REGISTRY", "TRANSPORT", "CA FILE", "CERTS DIR", "AUTH FILE"],
                        &rows,
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
