//! `airlock login HOST -u USER [--password-stdin]`: check credentials against the registry and
//! store them where docker and oras do.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use super::{print_json, Format, Global, RegistryArgs};

/// The most read from stdin for a password: tokens are long, but not this long.
const MAX_PASSWORD_BYTES: u64 = 64 * 1024;

/// Arguments of `airlock login`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The registry (`HOST[:PORT]`; `docker.io` for Docker Hub).
    pub host: String,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: String,
    /// Read the password (or token) from stdin, one line; without it, a prompt on a terminal.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    registry: &'a str,
    stored_in: &'a airlock::registry::login::Place,
}

/// Runs `airlock login`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let host = airlock::registry::auth::normalize_host(&args.host);
    let password = read_password(args.password_stdin)?;
    let creds = airlock::registry::Credentials::new(args.username.clone(), password);
    let options = args
        .registry_args
        .options(g, airlock::registry::CredentialStore::empty());
    let place = airlock::registry::login::login(options, &host, creds).await?;
    match g.format {
        Format::Json => print_json(&Report {
            registry: &host,
            stored_in: &place,
        })?,
        Format::Table => outln!("Login succeeded for {host}: stored in {place}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let raw = if from_stdin {
        let bytes = airlock::io::read_stream_capped(stdin.lock(), MAX_PASSWORD_BYTES, 0)
            .context("reading the password from stdin")?;
        String::from_utf8(bytes).context("the password on stdin is not UTF-8")?
    } else if stdin.is_terminal() {
        rpassword::prompt_password("Password: ").context("reading the password")?
    } else {
        anyhow::bail!("no password: pass --password-stdin, or run on a terminal to be asked");
    };
    let password = raw.strip_suffix('\n').unwrap_or(&raw);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    Ok(password.to_string())
}
