//! `airlock logout HOST`: forget the credentials `login` (or `docker login`) stored.

use std::process::ExitCode;

use serde::Serialize;

use super::{print_json, Format, Global};

/// Arguments of `airlock logout`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The registry (`HOST[:PORT]`; `docker.io` for Docker Hub).
    pub host: String,
}

#[derive(Serialize)]
struct Report<'a> {
    registry: &'a str,
    removed_from: Option<&'a airlock::registry::login::Place>,
}

/// Runs `airlock logout`.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let host = airlock::registry::auth::normalize_host(&args.host);
    let place = airlock::registry::login::logout(&host)?;
    match g.format {
        Format::Json => print_json(&Report {
            registry: &host,
            removed_from: place.as_ref(),
        })?,
        Format::Table => match &place {
            Some(p) => outln!("Removed credentials for {host} from {p}"),
            None => outln!("No credentials were stored for {host}"),
        },
    }
    Ok(ExitCode::SUCCESS)
}
