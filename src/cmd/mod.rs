//! Subcommands, one file each. Every command builds a result struct from the library and prints
//! it either as a table for people or as JSON (`--output json`); errors leave from `main` once.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// `println!` for people: the line is escaped, since names in it may come from a bundle or a
/// registry. JSON goes through [`print_json`] instead (serde escapes it).
macro_rules! outln {
    () => { println!() };
    ($($t:tt)*) => { println!("{}", airlock::untrusted::escape_lines(&format!($($t)*))) };
}

/// `eprintln!` for people, escaped like [`outln!`].
macro_rules! errln {
    () => { eprintln!() };
    ($($t:tt)*) => { eprintln!("{}", airlock::untrusted::escape_lines(&format!($($t)*))) };
}

pub mod admission_policy;
pub mod chart;
pub mod collect;
pub mod completions;
pub mod config;
pub mod db;
pub mod hints;
pub mod import;
pub mod inspect;
pub mod key;
pub mod ledger;
pub mod lock;
pub mod login;
pub mod logout;
pub mod man;
pub mod mirror_config;
pub mod pin;
pub mod progress;
pub mod receipt;
pub mod rescan;
pub mod scan;
pub mod serve;
pub mod split;
pub mod verify;
pub mod verify_parts;

/// A report's exit code when what it reports is a failure by policy (a scan gate that fails,
/// a rescan that now fails): the same code as an error of that kind.
pub const EXIT_POLICY: u8 = 5;
/// `lock --check` found drift.
pub const EXIT_DRIFT: u8 = 3;
/// `ledger verify` found the ledger broken or tampered with.
pub const EXIT_LEDGER: u8 = 7;
/// Other failures reported as a result rather than an error (`chart images` with unresolved
/// images, `verify-parts` with bad parts).
pub const EXIT_FAILURE: u8 = 1;

/// The version line: the crate version, the commit and the build date (from `build.rs`); the
/// ledger records the same string as the importer.
pub const VERSION: &str = airlock::VERSION;

/// The `--help` footer: exit codes, one per error class, from [`airlock::error_kind`].
fn exit_codes_help() -> String {
    let mut s = String::from("Exit codes:\n  0  success\n");
    for k in airlock::error_kind::ErrorKind::ALL {
        s.push_str(&format!(
            "  {}  {} ({})\n",
            k.exit_code(),
            k.meaning(),
            k.name()
        ));
    }
    s.push_str("With --format json, a failure prints {\"error\": {\"kind\", \"message\", \"artifact\"}} on stdout.\n\n");
    s.push_str(SETTINGS_HELP);
    s
}

/// How settings are found, for the `--help` footer and the man page.
pub const SETTINGS_HELP: &str = "\
Settings: a flag wins over its AIRLOCK_* variable, which wins over the configuration file,
which wins over the built-in default. Every flag --long-name can be set by AIRLOCK_LONG_NAME
(a repeatable flag's variable holds one value; AIRLOCK_CERTS_DIR a colon-separated list).
The file is --config FILE, else $AIRLOCK_CONFIG, else $XDG_CONFIG_HOME/airlock/airlock.toml
(default ~/.config/airlock/airlock.toml); `airlock config show` prints what is in force.";

/// airlock carries container images, Helm charts and files into air-gapped sites and proves
/// what crossed.
#[derive(Parser, Debug)]
#[command(name = "airlock", version = VERSION, about, long_about, after_help = exit_codes_help())]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Format of reports (and errors) on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table, env = "AIRLOCK_FORMAT", help_heading = "Output")]
    pub format: Format,
    /// No progress bars and no informational messages on stderr.
    #[arg(
        long,
        short,
        global = true,
        env = "AIRLOCK_QUIET",
        help_heading = "Output"
    )]
    pub quiet: bool,
    /// The configuration file (default: `$XDG_CONFIG_HOME/airlock/airlock.toml`).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "AIRLOCK_CONFIG",
        help_heading = "Output"
    )]
    pub config: Option<PathBuf>,
    /// The configuration file read (`None`: there was none), for what it says beyond flag
    /// defaults (per-registry settings, the credentials file).
    #[arg(skip)]
    pub site: Option<Arc<airlock::config::Config>>,
    /// Every configurable flag of the command run, with its value and where it came from.
    #[arg(skip)]
    pub settings: Vec<airlock::config::Setting>,
}

/// How reports are printed.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables and sentences for people.
    #[value(alias = "human")]
    Table,
    /// One JSON document on stdout.
    Json,
}

/// How to reach registries; shared by every command that talks to one.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Registry access")]
pub struct RegistryArgs {
    /// Registry (HOST:PORT) that may be reached over plain HTTP. Repeatable. Nothing else is,
    /// not even localhost.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) to trust for registries and chart repositories. Repeatable.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
    /// A `certs.d` directory: `DIR/HOST[:PORT]/*.crt` are CAs for that registry,
    /// `client.cert` + `client.key` its client certificate (mutual TLS). Repeatable. Default:
    /// `$AIRLOCK_CERTS_DIR`, else `/etc/docker/certs.d` and `/etc/containers/certs.d`.
    #[arg(long = "certs-dir", value_name = "DIR")]
    pub certs_dirs: Vec<PathBuf>,
    /// Credentials: USER:PASSWORD or HOST=USER:PASSWORD. Repeatable. Otherwise
    /// `$REGISTRY_AUTH_FILE`, containers `auth.json` and `~/.docker/config.json` are used,
    /// with the credential helpers they name (`credHelpers`, `credsStore`).
    #[arg(long, value_name = "[HOST=]USER:PASSWORD")]
    pub creds: Vec<String>,
    /// Attempts per request on connection errors, 5xx and 429 (with back-off, honouring
    /// Retry-After).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: u32,
    /// How long one registry request may take, body included (`30s`, `2m`). A request that
    /// moves a blob gets this plus the blob's size at 16 KiB/s, and a transfer slower than
    /// that over 30 s is cut off, so a peer that trickles cannot hold a command forever.
    #[arg(long, default_value = "2m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// The most registry requests in flight at once. Below it the limit adapts: it grows while
    /// requests succeed and halves on 429, 503 and connection errors (honouring Retry-After).
    /// 1 makes every request wait for the one before.
    #[arg(long, default_value_t = airlock::registry::limit::DEFAULT_MAX_REQUESTS, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub max_requests: usize,
}

impl RegistryArgs {
    /// Builds the registry client. `default_host` receives `--creds` without `HOST=`.
    /// The configuration's credentials file comes first.
    pub fn client(
        &self,
        g: &Global,
        default_host: Option<&str>,
    ) -> anyhow::Result<airlock::registry::Registry> {
        let first: Vec<PathBuf> = g
            .site
            .iter()
            .filter_map(|c| c.file.auth_file.clone())
            .collect();
        let mut credentials =
            airlock::registry::CredentialStore::load_with(&first, &self.creds, default_host)?;
        for (host, file) in g.site.iter().flat_map(|c| c.host_auth_files()) {
            credentials = credentials.with_host_file(host, file)?;
        }
        Ok(airlock::registry::Registry::new(
            self.options(g, credentials),
        )?)
    }

    /// The client options these flags give, with `credentials`, plus the configuration's
    /// per-registry settings (its `insecure` registries are added to `--insecure-registry`).
    pub fn options(
        &self,
        g: &Global,
        credentials: airlock::registry::CredentialStore,
    ) -> airlock::registry::RegistryOptions {
        let mut insecure = self.insecure.clone();
        if let Some(c) = &g.site {
            insecure.extend(c.insecure_hosts());
        }
        airlock::registry::RegistryOptions {
            insecure,
            host_tls: g.site.as_ref().map(|c| c.host_tls()).unwrap_or_default(),
            ca_files: self.ca_files.clone(),
            certs_dirs: if self.certs_dirs.is_empty() {
                airlock::registry::tls::default_certs_dirs()
            } else {
                self.certs_dirs.clone()
            },
            credentials,
            retry: airlock::registry::RetryPolicy {
                attempts: self.retries.max(1),
                deadline: self.timeout,
                stall_window: self.timeout.min(std::time::Duration::from_secs(30)),
                ..Default::default()
            },
            max_requests: Some(self.max_requests),
        }
    }
}

/// Which signatures a bundle must carry (verify, import).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Bundle signature")]
pub struct TrustArgs {
    /// Public key (PEM) whose signature on a bundle counts. Repeatable.
    #[arg(long, value_name = "KEY.pub")]
    pub trust: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed (M of N).
    #[arg(long, default_value_t = 1, value_name = "M")]
    pub require: usize,
    /// Accept a bundle with no (checked) signature. For labs only: said loudly in output and
    /// recorded in the ledger.
    #[arg(long)]
    pub allow_unsigned: bool,
}

impl TrustArgs {
    /// Loads the keys into a policy.
    pub fn policy(&self) -> anyhow::Result<airlock::bundle::signature::SignaturePolicy> {
        let trusted = self
            .trust
            .iter()
            .map(|p| airlock::trust::keys::PublicKey::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(airlock::bundle::signature::SignaturePolicy {
            trusted,
            require: self.require,
            allow_unsigned: self.allow_unsigned,
        })
    }
}

/// Says loudly that a bundle was accepted without a signature check.
pub fn warn_unsigned(status: &Option<airlock::bundle::signature::SignatureStatus>) {
    if matches!(
        status,
        Some(airlock::bundle::signature::SignatureStatus::UncheckedAllowed)
    ) {
        errln!("WARNING: the bundle's signature was NOT checked (--allow-unsigned); its origin is unproven");
    }
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Resolve a spec's tags to digests and write the lockfile.
    Lock(lock::Args),
    /// Pull everything a lockfile pins and write a bundle.
    Collect(collect::Args),
    /// Show what a bundle holds (reads only its table of contents).
    Inspect(inspect::Args),
    /// Check a bundle: structure, completeness and every digest.
    Verify(verify::Args),
    /// Verify a bundle and push it into a registry: blobs, then manifests, then tags.
    Import(import::Args),
    /// List what a registry holds (for delta bundles: `collect --have`).
    Receipt(receipt::Args),
    /// Cut a bundle into media-sized parts plus a signed NAME.parts.json.
    Split(split::Args),
    /// Check split parts one by one: name every part that is missing, short or damaged.
    VerifyParts(verify_parts::Args),
    /// Signing keys (cosign-compatible ECDSA P-256).
    Key(key::Args),
    /// The offline vulnerability database.
    Db(db::Args),
    /// Scan an image in a registry, or every image of a bundle: packages, vulnerabilities and
    /// the policy gate (exit 5 when it fails).
    Scan(scan::Args),
    /// Re-judge every image the ledger admitted against a newer database: what changed since
    /// the last rescan, a ledger entry, Prometheus metrics (exit 5 when the policy now fails).
    Rescan(rescan::Args),
    /// The provenance ledger: init, verify, show, prove, consistency, cosign, export.
    Ledger(ledger::Args),
    /// Node configuration (containerd, k3s, CRI-O, OpenShift) that sends pulls of the source
    /// registries to the internal registry, from what the ledger admitted.
    MirrorConfig(mirror_config::Args),
    /// Rewrite image references in manifests and Helm values to the internal registry by
    /// digest, as the ledger admitted them; refuse any it never admitted.
    Pin(pin::Args),
    /// Kyverno or policy-controller admission policies from the site's trust policy, for the
    /// internal registry names, plus a rule refusing images from anywhere else.
    AdmissionPolicy(admission_policy::Args),
    /// Helm charts: `chart images` lists every image a chart deploys.
    Chart(chart::Args),
    /// Serve a bundle (or its parts) as a read-only OCI registry: signature checked first,
    /// every blob checked against its digest as it is served.
    Serve(serve::Args),
    /// Check credentials against a registry and store them where docker does (its credential
    /// helper, else `auths` in `$DOCKER_CONFIG/config.json`).
    Login(login::Args),
    /// Remove the credentials stored for a registry (helper `erase`, or the `auths` entry).
    Logout(logout::Args),
    /// The configuration in force: `config show` prints every setting and where it came from.
    Config(config::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(completions::Args),
    /// Print the man page, or write one page per command into a directory.
    Man(man::Args),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Lock(a) => runtime()?.block_on(lock::run(a, g)),
        Command::Collect(a) => runtime()?.block_on(collect::run(a, g)),
        Command::Inspect(a) => inspect::run(a, g),
        Command::Verify(a) => verify::run(a, g),
        Command::Import(a) => runtime()?.block_on(import::run(a, g)),
        Command::Receipt(a) => runtime()?.block_on(receipt::run(a, g)),
        Command::Split(a) => split::run(a, g),
        Command::VerifyParts(a) => verify_parts::run(a, g),
        Command::Key(a) => key::run(a, g),
        Command::Db(a) => db::run(a, g),
        Command::Scan(a) => runtime()?.block_on(scan::run(a, g)),
        Command::Rescan(a) => runtime()?.block_on(rescan::run(a, g)),
        Command::Ledger(a) => ledger::run(a, g),
        Command::MirrorConfig(a) => mirror_config::run(a, g),
        Command::Pin(a) => pin::run(a, g),
        Command::AdmissionPolicy(a) => admission_policy::run(a, g),
        Command::Chart(a) => runtime()?.block_on(chart::run(a, g)),
        Command::Serve(a) => serve::run(a, g),
        Command::Login(a) => runtime()?.block_on(login::run(a, g)),
        Command::Logout(a) => logout::run(a, g),
        Command::Config(a) => config::run(a, g),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Prints a report as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Human-readable byte count (binary units).
pub fn human_bytes(n: u64) -> String {
    airlock::human_bytes(n)
}

/// Prints rows as an aligned table. Cells are escaped: names in them come from bundles and
/// registries, and must not reach the terminal as control sequences.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| airlock::untrusted::escape(c)).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        outln!("{}", s.trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// `RUST_LOG` drives tracing on stderr; off by default so output stays clean.
pub fn init_tracing(_global: &Global) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    // Colour only on a terminal: a log redirected to a file gets no escape codes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The error chain on one line, the way users read it: what failed, then why (a cause
/// already quoted by the one before it is not repeated).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(&format!(": {c}"));
        }
    }
    msg
}

/// Prints a failure once: on stderr as `error: …` plus `hint:` lines, and with `--format json`
/// also `{"error": {kind, message, artifact}}` on stdout, so a script reading stdout gets an
/// answer either way. The line is escaped as a whole: names from a bundle or a registry can
/// hold escape sequences that would erase it and print a fake "OK" instead.
pub fn print_error(err: &anyhow::Error, format: Format) {
    let message = error_line(err);
    eprintln!(
        "{}",
        airlock::untrusted::escape(&format!("error: {message}"))
    );
    for hint in hints::for_error(err) {
        eprintln!("{}", airlock::untrusted::escape(&format!("hint: {hint}")));
    }
    if format == Format::Json {
        let kind = airlock::error_kind::of(err.as_ref());
        print_json_error(kind, &message, airlock::error_kind::artifact(err.as_ref()));
    }
}

/// The `{"error": {kind, exit_code, message, artifact}}` document on stdout.
fn print_json_error(kind: airlock::error_kind::ErrorKind, message: &str, artifact: Option<String>) {
    let doc = serde_json::json!({
        "error": {
            "kind": kind.name(),
            "exit_code": kind.exit_code(),
            "message": message,
            "artifact": artifact,
        }
    });
    println!("{doc:#}");
}

/// Parses the command line the way the rest of airlock sees it: the configuration file and
/// the `AIRLOCK_*` variables applied ([`airlock::config::apply`]). A failure is printed here
/// (as JSON too when `--format json` or `AIRLOCK_FORMAT=json` is in force, even when clap
/// itself refused the line) and its exit code returned.
pub fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    let json = match airlock::config::raw_flag(&args, "format") {
        Some(v) => v == "json",
        None => std::env::var_os("AIRLOCK_FORMAT").is_some_and(|v| v == "json"),
    };
    let format = if json { Format::Json } else { Format::Table };
    let site = match airlock::config::discover(&args) {
        Ok(c) => c,
        Err(e) => {
            let e = anyhow::Error::new(e);
            print_error(&e, format);
            return Err(exit_code_for(&e));
        }
    };
    let command = airlock::config::apply(Cli::command(), site.as_ref());
    let matches = command
        .clone()
        .try_get_matches_from(&args)
        .map_err(|e| clap_failure(e, &args, format))?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| clap_failure(e, &args, format))?;
    // The command that runs: its flags, and where each configurable one's value came from.
    let (mut cmd, mut m) = (&command, &matches);
    let mut path: Vec<&str> = Vec::new();
    while let Some((name, sub)) = m.subcommand() {
        match cmd.find_subcommand(name) {
            Some(c) => (cmd, m) = (c, sub),
            None => break,
        }
        path.push(name);
    }
    if let Err(e) = airlock::config::check_requires(&path.join(" "), cmd, m, site.as_ref()) {
        let e = anyhow::Error::new(e);
        print_error(&e, format);
        return Err(exit_code_for(&e));
    }
    cli.global.settings = airlock::config::settings(cmd, m, site.as_ref());
    cli.global.site = site.map(Arc::new);
    Ok(cli)
}

/// clap refused the command line (or was asked for help): its own text on stderr (help and
/// version on stdout, exit 0), and with JSON output the usage error on stdout, exit 2. A bad
/// value that came from an `AIRLOCK_*` variable is reported under the variable's name.
fn clap_failure(e: clap::Error, args: &[OsString], format: Format) -> ExitCode {
    use clap::error::ErrorKind as K;
    let is_help = matches!(e.kind(), K::DisplayHelp | K::DisplayVersion);
    if let Some(culprit) = env_culprit(&e, args) {
        let e = anyhow::Error::new(airlock::error_kind::UsageError(format!(
            "{culprit}: {}",
            first_paragraph(&e)
        )));
        print_error(&e, format);
        return exit_code_for(&e);
    }
    let _ = e.print();
    if format != Format::Json || is_help {
        return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
    }
    let message = match e.kind() {
        K::DisplayHelpOnMissingArgumentOrSubcommand => {
            "a command is required (see `airlock --help`)".to_string()
        }
        _ => first_paragraph(&e),
    };
    let kind = airlock::error_kind::ErrorKind::Usage;
    print_json_error(kind, &message, None);
    ExitCode::from(kind.exit_code())
}

/// clap's message, its first paragraph on one line (a missing-argument error lists them below).
fn first_paragraph(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let para: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = para.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

/// `AIRLOCK_X=VALUE` when clap refused a value the user never typed: it came from the flag's
/// variable.
fn env_culprit(e: &clap::Error, args: &[OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind as K};
    if !matches!(e.kind(), K::InvalidValue | K::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    airlock::config::env_culprit(args, long)
}

/// Maps an error to the documented exit code of its class ([`airlock::error_kind::of`]).
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(airlock::error_kind::of(err.as_ref()).exit_code())
}

/// Creates the directory an output file goes into, as most tools do (`-o out/b.tar.zst`).
pub fn create_parent_dir(file: &std::path::Path) -> anyhow::Result<()> {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(fs_err::create_dir_all(p)?),
        _ => Ok(()),
    }
}

/// The default blob cache: `$XDG_CACHE_HOME/airlock` or `~/.cache/airlock`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("airlock");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/airlock");
    }
    std::env::temp_dir().join("airlock-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag dependency names a command and two flags that exist: a renamed flag must
    /// not leave its dependency silently unchecked.
    #[test]
    fn every_flag_dependency_names_real_flags() {
        let root = Cli::command();
        for (path, flag, needs) in airlock::config::REQUIRES {
            let mut cmd = &root;
            for name in path.split(' ') {
                cmd = cmd
                    .find_subcommand(name)
                    .unwrap_or_else(|| panic!("no command `{path}`"));
            }
            for long in [flag, needs] {
                assert!(
                    cmd.get_arguments().any(|a| a.get_long() == Some(long)),
                    "`{path}` has no --{long}"
                );
            }
        }
    }
}
