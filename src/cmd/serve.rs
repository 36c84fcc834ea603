//! `airlock serve BUNDLE|PARTS`: a read-only registry straight from a bundle.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use airlock::bundle::BundleSource;
use airlock::serve::{http::Server, Incident, Log, Store};

use super::{Global, TrustArgs};

/// Arguments of `airlock serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`.tar.zst`), or its split parts: `NAME.parts.json` or a directory holding one.
    pub bundle: PathBuf,
    /// Address to listen on (`:0` picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "HOST:PORT")]
    pub listen: String,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Prints incidents (digest mismatches, read failures) on stderr.
struct StderrLog;

impl Log for StderrLog {
    fn incident(&self, incident: &Incident) {
        errln!("error: {incident}");
    }
}

/// Runs `airlock serve` until interrupted.
pub fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    let source = BundleSource::resolve(&args.bundle)?;
    let policy = args.trust.policy()?;
    let store = Store::open(&source, &policy)?;
    super::warn_unsigned(&Some(store.signature.clone()));
    super::warn_unsigned(&store.parts_signature);
    if !store.seekable && !g.quiet {
        errln!("note: this bundle predates seekable frames: every blob read decodes from the start of its frame (collect or split it again for fast random access)");
    }
    let tls = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
    super::runtime()?.block_on(async {
        let server = Server::bind(&args.listen, tls).await?;
        let addr = server.local_addr()?;
        let scheme = if server.is_tls() { "https" } else { "http" };
        outln!(
            "serving `{}` ({} artifacts, {} repositories) on {scheme}://{addr}",
            store.manifest.name,
            store.manifest.artifacts.len(),
            store.catalog.repositories.len()
        );
        server.run(Arc::new(store), Arc::new(StderrLog)).await?;
        Ok(ExitCode::SUCCESS)
    })
}
