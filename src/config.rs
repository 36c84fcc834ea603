//! `airlock.toml`: the settings a site would otherwise repeat on every command (its registries,
//! trusted keys, ledger, cache), and the one rule that decides between a flag, an `AIRLOCK_*`
//! variable, the file and the built-in default: **flag > environment > file > default**.
//!
//! The file is found at `--config FILE` / `$AIRLOCK_CONFIG`, else
//! `$XDG_CONFIG_HOME/airlock/airlock.toml`, else `~/.config/airlock/airlock.toml`; a missing
//! default file is no configuration, a missing named one is an error. Unknown keys are refused
//! (a typo must not silently leave a registry secure-by-default or a key untrusted).
//!
//! Every flag `--long-name` can also be set by `AIRLOCK_LONG_NAME` ([`env_var_for`]); a
//! repeatable flag's variable holds one value (`AIRLOCK_CERTS_DIR` a colon-separated list, as
//! before). [`apply`] puts both onto the clap definition, so clap itself applies the order.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error_kind::{Classify, ErrorKind};

/// The file's name inside the `airlock` config directory.
pub const FILE_NAME: &str = "airlock.toml";
/// The variable naming the file (as `--config` does).
pub const ENV_CONFIG: &str = "AIRLOCK_CONFIG";
/// The largest configuration file read (it is a few lines; this bounds a wrong path).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Flags whose variable holds a colon-separated list of paths (kept from before variables were
/// generated: `AIRLOCK_CERTS_DIR=/a:/b`).
const PATH_LIST_FLAGS: &[&str] = &["certs-dir"];

/// Flags the file's value does not reach, by command: `receipt --ledger` is a filter (only
/// what that ledger admitted), not where the site's ledger is, so it stays explicit.
/// `scan`'s and `rescan`'s `--policy` is a scan policy (the file's `scan_policy` is import's
/// `--scan-policy`), not the trust policy the file's `policy` names. Import's and collect's
/// `--db` serve only a scan policy (`--scan-policy`, the lock's `scan:`), so a site-wide `db`
/// must not make them fail without one. `ledger cosign --key` is a witness key, not a signing
/// key of bundles.
const NOT_FROM_FILE: &[(&str, &str)] = &[
    ("receipt", "ledger"),
    ("scan", "policy"),
    ("rescan", "policy"),
    ("import", "db"),
    ("collect", "db"),
    ("cosign", "key"),
];

/// Flags that mean nothing without another, by command path: `(command, flag, needs)`.
/// Checked by [`check_requires`] once the file and the variables are merged, not by clap's
/// `requires`: clap counts a file value (a default to it) neither as giving the flag nor as
/// giving its partner, so `import --ledger-wait` with the ledger in the file was refused, and
/// without any ledger silently ignored.
pub const REQUIRES: &[(&str, &str, &str)] = &[
    ("import", "ledger-wait", "ledger"),
    ("import", "db", "scan-policy"),
    ("import", "on-untrusted", "policy"),
    ("collect", "trust-receipt", "have"),
    ("receipt", "sign-with-ledger", "ledger"),
    ("receipt", "ledger-password-file", "sign-with-ledger"),
    ("chart images", "repo", "version"),
    ("chart images", "version", "repo"),
    ("serve", "tls-cert", "tls-key"),
    ("serve", "tls-key", "tls-cert"),
];

/// What the file may hold. Paths in it are relative to the file's directory (`~/` is the home
/// directory).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The provenance ledger (`--ledger`).
    pub ledger: Option<PathBuf>,
    /// The blob cache (`--cache`).
    pub cache: Option<PathBuf>,
    /// The most registry requests in flight (`--max-requests`).
    pub max_requests: Option<usize>,
    /// Attempts per registry request (`--retries`).
    pub retries: Option<u32>,
    /// Time limit of one registry request, `30s`, `2m` (`--timeout`).
    pub timeout: Option<String>,
    /// CA files trusted for every registry (`--ca-file`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_files: Vec<PathBuf>,
    /// `certs.d` directories (`--certs-dir`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certs_dirs: Vec<PathBuf>,
    /// A credentials file (containers `auth.json` / docker `config.json` format) read before
    /// the usual ones.
    pub auth_file: Option<PathBuf>,
    /// The vulnerability database (`--db` of scan and rescan).
    pub db: Option<PathBuf>,
    /// The site's image-signature trust policy (`import --policy`, `admission-policy
    /// --policy`).
    pub policy: Option<PathBuf>,
    /// The site's scan policy (`import --scan-policy`).
    pub scan_policy: Option<PathBuf>,
    /// Signing keys (`--key` of collect, split, receipt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<PathBuf>,
    /// Bundle signatures.
    #[serde(default)]
    pub trust: TrustSection,
    /// Per-registry settings, by `HOST[:PORT]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registries: BTreeMap<String, RegistrySection>,
}

/// `[trust]`: whose signatures on a bundle count.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// Public keys (`--trust`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<PathBuf>,
    /// How many of them must have signed (`--require`).
    pub require: Option<usize>,
}

/// `[registries."HOST:PORT"]`: how to reach one registry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Plain HTTP (as `--insecure-registry HOST:PORT`).
    #[serde(default)]
    pub insecure: bool,
    /// A CA (PEM) trusted for this registry only.
    pub ca_file: Option<PathBuf>,
    /// A `certs.d`-style directory for this registry only: `*.crt` CAs, `client.cert` +
    /// `client.key` for mutual TLS.
    pub certs_dir: Option<PathBuf>,
    /// A credentials file (`auth.json` / `config.json` format) asked for this registry alone,
    /// before the shared ones.
    pub auth_file: Option<PathBuf>,
}

/// A configuration file, read and checked, with its paths made absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// What it says.
    pub file: ConfigFile,
}

/// A configuration file that cannot be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by `--config` or `$AIRLOCK_CONFIG` is not there.
    #[error("config file `{}` (from {from}) does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// `--config` or `$AIRLOCK_CONFIG`.
        from: &'static str,
    },
    /// It cannot be read, is over [`MAX_CONFIG_BYTES`] or is not UTF-8 (the message names
    /// the file).
    #[error(transparent)]
    Read(#[from] crate::io::ReadError),
    /// Not TOML, an unknown key, a value of the wrong type.
    #[error("config file `{}` line {line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A value of the right type that is still wrong (`timeout = "soon"`).
    #[error("config file `{}`: `{key}`: {why}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

/// A flag given (on the command line, by its variable or by the file) without the flag it
/// needs; a usage error naming where the value came from.
#[derive(Debug, thiserror::Error)]
#[error("{given} requires --{needs}")]
pub struct RequiresError {
    /// The flag as the user gave it: `--db`, `AIRLOCK_LEDGER_WAIT=10 (--ledger-wait)`,
    /// `--db from config file `…``.
    pub given: String,
    /// The flag it needs (long name).
    pub needs: String,
}

impl Classify for RequiresError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

impl Classify for ConfigError {
    /// A file that cannot be read is like any missing input (1); a wrong file (too large, not
    /// UTF-8 text, not the format) is a usage error (2), as a wrong flag is.
    fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::Read(crate::io::ReadError::Io { .. }) => ErrorKind::Other,
            _ => ErrorKind::Usage,
        }
    }
}

/// The variable that sets `--long`: `AIRLOCK_` and the name in capitals, `-` as `_`
/// (`--max-requests` is `AIRLOCK_MAX_REQUESTS`).
pub fn env_var_for(long: &str) -> String {
    format!("AIRLOCK_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// The value of `--long VALUE` or `--long=VALUE` in raw arguments (before `--`), for what must
/// be known before the command line is parsed (the config file, the error format). The last
/// one given wins, as clap's does.
pub fn raw_flag(args: &[OsString], long: &str) -> Option<OsString> {
    let flag = format!("--{long}");
    let prefix = format!("--{long}=");
    let mut found = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            break;
        }
        if s == flag {
            found = it.next().cloned();
        } else if let Some(v) = s.strip_prefix(&prefix) {
            found = Some(OsString::from(v));
        }
    }
    found
}

/// Where the configuration file is: `explicit` (`--config`, else `$AIRLOCK_CONFIG`, with which
/// one named it), else the XDG location; `None` when there is none to read.
pub fn locate(
    explicit: Option<(PathBuf, &'static str)>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<PathBuf>, ConfigError> {
    if let Some((path, from)) = explicit {
        if !path.is_file() {
            return Err(ConfigError::Missing { path, from });
        }
        return Ok(Some(path));
    }
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = nonempty("XDG_CONFIG_HOME").or_else(|| nonempty("HOME").map(|h| h.join(".config")));
    Ok(dir
        .map(|d| d.join("airlock").join(FILE_NAME))
        .filter(|p| p.is_file()))
}

/// Finds and reads the configuration for a command line (`--config`, `$AIRLOCK_CONFIG`, the
/// XDG location), `None` when there is none.
pub fn discover(args: &[OsString]) -> Result<Option<Config>, ConfigError> {
    let explicit = match raw_flag(args, "config") {
        Some(p) => Some((PathBuf::from(p), "--config")),
        None => std::env::var_os(ENV_CONFIG)
            .filter(|v| !v.is_empty())
            .map(|p| (PathBuf::from(p), "$AIRLOCK_CONFIG")),
    };
    match locate(explicit, |k| std::env::var_os(k))? {
        Some(path) => Config::load(&path).map(Some),
        None => Ok(None),
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::io::read_text_capped(path, MAX_CONFIG_BYTES, "config file")?;
        Config::parse(&text, path)
    }

    /// Parses the text of a configuration file read from `path` (relative paths in it are made
    /// relative to its directory).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim().to_string(),
        })?;
        let bad = |key: &str, why: String| ConfigError::BadValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            why,
        };
        if let Some(t) = &file.timeout {
            humantime::parse_duration(t).map_err(|e| bad("timeout", e.to_string()))?;
        }
        if let Some(n) = file.max_requests {
            if !(1..=1024).contains(&n) {
                return Err(bad("max_requests", format!("{n} is not in 1..=1024")));
            }
        }
        if file.trust.require == Some(0) {
            return Err(bad("trust.require", "must be at least 1".into()));
        }
        for host in file.registries.keys() {
            if host.is_empty() || host.contains('/') || host.contains("://") {
                return Err(bad(
                    &format!("registries.\"{host}\""),
                    "a registry is named HOST[:PORT], without scheme or path".into(),
                ));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| *p = resolve_path(base, p);
        file.ledger.iter_mut().for_each(fix);
        file.cache.iter_mut().for_each(fix);
        file.auth_file.iter_mut().for_each(fix);
        file.db.iter_mut().for_each(fix);
        file.policy.iter_mut().for_each(fix);
        file.scan_policy.iter_mut().for_each(fix);
        file.keys.iter_mut().for_each(fix);
        file.ca_files.iter_mut().for_each(fix);
        file.certs_dirs.iter_mut().for_each(fix);
        file.trust.keys.iter_mut().for_each(fix);
        for r in file.registries.values_mut() {
            r.ca_file.iter_mut().for_each(fix);
            r.certs_dir.iter_mut().for_each(fix);
            r.auth_file.iter_mut().for_each(fix);
        }
        Ok(Config {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The values the file gives flags, by the flag's long name: these become the flags'
    /// defaults, below the command line and the environment.
    pub fn flag_values(&self) -> Vec<(&'static str, Vec<OsString>)> {
        let f = &self.file;
        let one = |p: &Path| vec![p.as_os_str().to_os_string()];
        let many = |v: &[PathBuf]| v.iter().map(|p| p.as_os_str().to_os_string()).collect();
        let mut out: Vec<(&'static str, Vec<OsString>)> = Vec::new();
        if let Some(p) = &f.ledger {
            out.push(("ledger", one(p)));
        }
        if let Some(p) = &f.cache {
            out.push(("cache", one(p)));
        }
        if let Some(n) = f.max_requests {
            out.push(("max-requests", vec![n.to_string().into()]));
        }
        if let Some(n) = f.retries {
            out.push(("retries", vec![n.to_string().into()]));
        }
        if let Some(t) = &f.timeout {
            out.push(("timeout", vec![t.into()]));
        }
        if !f.ca_files.is_empty() {
            out.push(("ca-file", many(&f.ca_files)));
        }
        if !f.certs_dirs.is_empty() {
            out.push(("certs-dir", many(&f.certs_dirs)));
        }
        if let Some(p) = &f.db {
            out.push(("db", one(p)));
        }
        if let Some(p) = &f.policy {
            out.push(("policy", one(p)));
        }
        if let Some(p) = &f.scan_policy {
            out.push(("scan-policy", one(p)));
        }
        if !f.keys.is_empty() {
            out.push(("key", many(&f.keys)));
        }
        if !f.trust.keys.is_empty() {
            out.push(("trust", many(&f.trust.keys)));
        }
        if let Some(n) = f.trust.require {
            out.push(("require", vec![n.to_string().into()]));
        }
        out
    }

    /// Registries the file marks `insecure` (plain HTTP); added to `--insecure-registry`.
    pub fn insecure_hosts(&self) -> Vec<String> {
        let hosts = self.file.registries.iter();
        hosts
            .filter(|(_, r)| r.insecure)
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// Per-registry credentials files, by host.
    pub fn host_auth_files(&self) -> Vec<(&str, &Path)> {
        let hosts = self.file.registries.iter();
        hosts
            .filter_map(|(h, r)| Some((h.as_str(), r.auth_file.as_deref()?)))
            .collect()
    }

    /// Per-registry TLS material from the file: CA files and `certs.d`-style directories, by
    /// host.
    pub fn host_tls(&self) -> BTreeMap<String, crate::registry::tls::HostTls> {
        self.file
            .registries
            .iter()
            .filter(|(_, r)| r.ca_file.is_some() || r.certs_dir.is_some())
            .map(|(h, r)| {
                let tls = crate::registry::tls::HostTls {
                    ca_files: r.ca_file.iter().cloned().collect(),
                    dirs: r.certs_dir.iter().cloned().collect(),
                };
                (h.clone(), tls)
            })
            .collect()
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(home).join(rest);
        }
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Puts the precedence onto a clap definition, in every subcommand: each flag gets its
/// `AIRLOCK_*` variable ([`env_var_for`], hidden in `--help`, whose footer states the rule), and
/// a flag the file sets gets the file's value as its default (no longer required then).
pub fn apply(cmd: clap::Command, config: Option<&Config>) -> clap::Command {
    let values = config.map(Config::flag_values).unwrap_or_default();
    apply_inner(cmd, &values)
}

fn apply_inner(mut cmd: clap::Command, values: &[(&'static str, Vec<OsString>)]) -> clap::Command {
    let name = cmd.get_name().to_string();
    let skip = |long: &str| NOT_FROM_FILE.contains(&(name.as_str(), long));
    let ids: Vec<(clap::Id, String)> = cmd
        .get_arguments()
        .filter_map(|a| Some((a.get_id().clone(), a.get_long()?.to_string())))
        .collect();
    for (id, long) in ids {
        cmd = cmd.mut_arg(id, |mut a| {
            if matches!(a.get_action(), clap::ArgAction::SetTrue) {
                // A switch's variable reads like one: 1/0, true/false, yes/no, on/off.
                a = a.value_parser(clap::builder::BoolishValueParser::new());
            }
            if a.get_env().is_none() {
                a = a.env(env_var_for(&long)).hide_env(true);
                if PATH_LIST_FLAGS.contains(&long.as_str()) {
                    a = a.value_delimiter(':');
                }
            }
            let takes_value = a.get_num_args().is_none_or(|n| n.takes_values());
            match values.iter().find(|(l, _)| *l == long) {
                Some((_, v)) if takes_value && !skip(&long) => {
                    a.default_values(v.clone()).required(false)
                }
                _ => a,
            }
        });
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subs {
        cmd = cmd.mut_subcommand(name, |s| apply_inner(s, values));
    }
    cmd
}

/// Where a setting's value came from, in precedence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "lowercase")]
pub enum Origin {
    /// The command line.
    Flag,
    /// An `AIRLOCK_*` variable.
    Env {
        /// The variable.
        var: String,
    },
    /// The configuration file.
    File {
        /// The file.
        path: PathBuf,
    },
    /// The built-in default (or nothing).
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag => f.write_str("flag"),
            Origin::Env { var } => write!(f, "env {var}"),
            Origin::File { path } => write!(f, "file {}", path.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// One flag's merged value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// The flag's long name.
    pub flag: String,
    /// Its values (empty: not set).
    pub values: Vec<String>,
    /// Where they came from.
    #[serde(flatten)]
    pub origin: Origin,
}

/// The merged value and origin of every flag of `cmd` the file could set, from `matches` (the
/// parse of `cmd` after [`apply`]).
pub fn settings(
    cmd: &clap::Command,
    matches: &clap::ArgMatches,
    config: Option<&Config>,
) -> Vec<Setting> {
    let from_file: Vec<&'static str> = config
        .map(|c| c.flag_values().into_iter().map(|(l, _)| l).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if !CONFIGURABLE.contains(&long) {
            continue;
        }
        let id = arg.get_id().as_str();
        let values = matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let origin = origin(
            matches.value_source(id),
            long,
            config.filter(|_| from_file.contains(&long)),
        );
        out.push(Setting {
            flag: long.to_string(),
            values,
            origin,
        });
    }
    out
}

/// The flags the file can set (keys of [`ConfigFile`] by their flag name).
pub const CONFIGURABLE: &[&str] = &[
    "ledger",
    "cache",
    "max-requests",
    "retries",
    "timeout",
    "ca-file",
    "certs-dir",
    "db",
    "policy",
    "scan-policy",
    "key",
    "trust",
    "require",
];

/// Where a value came from, given clap's answer: a default is the file's when the file set
/// that flag (`file`), else the built-in one.
pub fn origin(
    source: Option<clap::parser::ValueSource>,
    long: &str,
    file: Option<&Config>,
) -> Origin {
    use clap::parser::ValueSource;
    match (source, file) {
        (Some(ValueSource::CommandLine), _) => Origin::Flag,
        (Some(ValueSource::EnvVariable), _) => Origin::Env {
            var: env_var_for(long),
        },
        (Some(ValueSource::DefaultValue), Some(c)) => Origin::File {
            path: c.path.clone(),
        },
        _ => Origin::Default,
    }
}

/// Enforces [`REQUIRES`] for the command at `path` (`"chart images"`), parsed as `matches` from
/// `cmd` (after [`apply`]): a flag whose value came from the command line, its variable or the
/// file needs its partner from any of those; a built-in default needs nothing.
pub fn check_requires(
    path: &str,
    cmd: &clap::Command,
    matches: &clap::ArgMatches,
    config: Option<&Config>,
) -> Result<(), RequiresError> {
    check_requires_in(REQUIRES, path, cmd, matches, config)
}

fn check_requires_in(
    table: &[(&str, &str, &str)],
    path: &str,
    cmd: &clap::Command,
    matches: &clap::ArgMatches,
    config: Option<&Config>,
) -> Result<(), RequiresError> {
    for (_, long, needs) in table.iter().filter(|(c, _, _)| *c == path) {
        let Some(origin) = given(cmd, matches, long, config) else {
            continue;
        };
        if given(cmd, matches, needs, config).is_some() {
            continue;
        }
        let shown = match origin {
            Origin::Env { var } => {
                let value = std::env::var_os(&var).unwrap_or_default();
                format!("{var}={} (--{long})", value.to_string_lossy())
            }
            Origin::File { path } => format!("--{long} from config file `{}`", path.display()),
            Origin::Flag | Origin::Default => format!("--{long}"),
        };
        return Err(RequiresError {
            given: shown,
            needs: needs.to_string(),
        });
    }
    Ok(())
}

/// Where flag `--long` of `cmd` got its value, `None` when it was not given (absent, a switch
/// left off, or only its built-in default).
fn given(
    cmd: &clap::Command,
    matches: &clap::ArgMatches,
    long: &str,
    config: Option<&Config>,
) -> Option<Origin> {
    let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long))?;
    let id = arg.get_id().as_str();
    if matches!(arg.get_action(), clap::ArgAction::SetTrue)
        && !matches.get_one::<bool>(id).copied().unwrap_or(false)
    {
        return None;
    }
    let from_file = config.filter(|c| c.flag_values().iter().any(|(l, _)| *l == long));
    match origin(matches.value_source(id), long, from_file) {
        Origin::Default => None,
        o => Some(o),
    }
}

/// `AIRLOCK_LONG=VALUE` when `--long` is absent from the raw command line and its variable is
/// set: the value a clap error about `--long` actually came from, so the message can name the
/// variable the user must fix rather than a flag they never typed.
pub fn env_culprit(args: &[OsString], long: &str) -> Option<String> {
    if raw_flag(args, long).is_some() || args.iter().any(|a| a == OsStr::new(&format!("--{long}")))
    {
        return None;
    }
    let var = env_var_for(long);
    let value = std::env::var_os(&var)?;
    Some(format!("{var}={}", value.to_string_lossy()))
}

/// Whether `value` (raw) asks for JSON output; for errors found before clap has parsed.
pub fn is_json(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| v == "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/airlock/airlock.toml"))
    }

    #[test]
    fn parses_every_key_and_resolves_paths_against_the_file() {
        let c = parse(
            r#"
ledger = "ledger"
cache = "/var/cache/airlock"
max_requests = 4
retries = 2
timeout = "30s"
ca_files = ["ca.pem"]
certs_dirs = ["/etc/docker/certs.d"]
auth_file = "auth.json"
db = "vuln.db"
policy = "site-trust.yaml"
scan_policy = "/srv/scan.yaml"
keys = ["keys/site.key"]

[trust]
keys = ["keys/release.pub"]
require = 1

[registries."registry.internal:5000"]
insecure = true

[registries."tls.internal"]
ca_file = "internal-ca.pem"
auth_file = "tls-auth.json"
"#,
        )
        .expect("parse");
        let f = &c.file;
        assert_eq!(f.ledger.as_deref(), Some(Path::new("/etc/airlock/ledger")));
        assert_eq!(f.cache.as_deref(), Some(Path::new("/var/cache/airlock")));
        assert_eq!(
            f.trust.keys,
            [PathBuf::from("/etc/airlock/keys/release.pub")]
        );
        assert_eq!(f.db.as_deref(), Some(Path::new("/etc/airlock/vuln.db")));
        assert_eq!(
            f.policy.as_deref(),
            Some(Path::new("/etc/airlock/site-trust.yaml"))
        );
        assert_eq!(f.scan_policy.as_deref(), Some(Path::new("/srv/scan.yaml")));
        assert_eq!(f.keys, [PathBuf::from("/etc/airlock/keys/site.key")]);
        assert_eq!(c.insecure_hosts(), ["registry.internal:5000"]);
        let tls = c.host_tls();
        assert_eq!(tls.len(), 1);
        assert_eq!(
            tls["tls.internal"].ca_files,
            [PathBuf::from("/etc/airlock/internal-ca.pem")]
        );
        assert_eq!(
            c.host_auth_files(),
            [("tls.internal", Path::new("/etc/airlock/tls-auth.json"))]
        );
        let flags: Vec<&str> = c.flag_values().iter().map(|(l, _)| *l).collect();
        assert_eq!(
            flags,
            [
                "ledger",
                "cache",
                "max-requests",
                "retries",
                "timeout",
                "ca-file",
                "certs-dir",
                "db",
                "policy",
                "scan-policy",
                "key",
                "trust",
                "require"
            ]
        );
        assert!(flags.iter().all(|f| CONFIGURABLE.contains(f)));
    }

    #[test]
    fn an_unknown_key_names_the_file_line_and_key() {
        let e = parse("ledger = \"l\"\n\n[registries.\"r:5000\"]\ninsecur = true\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "config file `/etc/airlock/airlock.toml` line 4: unknown field `insecur`"
            ),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert_eq!(e.kind(), ErrorKind::Usage);
        let e = parse("max_requests = \"many\"\n").unwrap_err();
        assert!(e.to_string().contains("line 1: invalid type"), "{e}");
        let e = parse("[trust]\nkey = []\n").unwrap_err();
        assert!(e.to_string().contains("line 2: unknown field `key`"), "{e}");
        let e = parse("not toml at all").unwrap_err();
        assert!(e.to_string().contains("line 1:"), "{e}");
    }

    #[test]
    fn refuses_values_of_the_right_type_that_are_wrong() {
        for (text, key) in [
            ("timeout = \"soon\"", "timeout"),
            ("max_requests = 0", "max_requests"),
            ("[trust]\nrequire = 0", "trust.require"),
            ("[registries.\"https://r\"]\ninsecure = true", "registries"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                matches!(&e, ConfigError::BadValue { key: k, .. } if k.starts_with(key)),
                "{text}: {e}"
            );
        }
    }

    /// A switch's variable reads 1/0, yes/no, on/off too (the name is this test's own).
    #[test]
    fn a_switch_variable_reads_like_a_switch() {
        let cmd = || {
            apply(
                clap::Command::new("t").arg(
                    clap::Arg::new("s")
                        .long("test-only-switch")
                        .action(clap::ArgAction::SetTrue),
                ),
                None,
            )
        };
        let var = env_var_for("test-only-switch");
        let mut seen = Vec::new();
        for v in ["1", "yes", "on", "true", "0", "no", "off", "false"] {
            std::env::set_var(&var, v);
            let m = cmd().try_get_matches_from(["t"]).expect("parse");
            seen.push(m.get_flag("s"));
        }
        std::env::set_var(&var, "maybe");
        let bad = cmd().try_get_matches_from(["t"]);
        std::env::remove_var(&var);
        assert_eq!(seen, [true, true, true, true, false, false, false, false]);
        assert!(bad.is_err(), "an unclear value is refused");
    }

    /// A dependent flag set by the file (none of [`REQUIRES`] is today: `import --db` is kept
    /// from it) is reported with the file's path; a partner from the file satisfies it.
    #[test]
    fn a_dependency_names_the_file_a_value_came_from() {
        let cmd = || {
            apply(
                clap::Command::new("t")
                    .arg(clap::Arg::new("db").long("db"))
                    .arg(clap::Arg::new("scan_policy").long("scan-policy")),
                Some(&parse("db = \"v.db\"\n").expect("parse")),
            )
        };
        let table = &[("t", "db", "scan-policy")];
        let check = |c: &Config, args: &[&str]| {
            let m = cmd().try_get_matches_from(args).expect("parse");
            check_requires_in(table, "t", &cmd(), &m, Some(c))
        };
        let file = parse("db = \"v.db\"\n").expect("parse");
        let e = check(&file, &["t"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--db from config file `/etc/airlock/airlock.toml` requires --scan-policy"
        );
        assert_eq!(e.kind(), ErrorKind::Usage);
        check(&file, &["t", "--scan-policy", "s.yaml"]).expect("partner given");
        let both = parse("db = \"v.db\"\nscan_policy = \"s.yaml\"\n").expect("parse");
        let cmd_both = apply(
            clap::Command::new("t")
                .arg(clap::Arg::new("db").long("db"))
                .arg(clap::Arg::new("scan_policy").long("scan-policy")),
            Some(&both),
        );
        let m = cmd_both.clone().try_get_matches_from(["t"]).expect("parse");
        check_requires_in(table, "t", &cmd_both, &m, Some(&both)).expect("both from the file");
    }

    #[test]
    fn the_variable_rule() {
        assert_eq!(env_var_for("max-requests"), "AIRLOCK_MAX_REQUESTS");
        assert_eq!(
            env_var_for("insecure-registry"),
            "AIRLOCK_INSECURE_REGISTRY"
        );
        assert_eq!(env_var_for("to"), "AIRLOCK_TO");
    }

    #[test]
    fn raw_flag_reads_both_spellings_and_stops_at_double_dash() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let a = args(&["airlock", "--config", "a.toml", "verify", "--config=b.toml"]);
        assert_eq!(raw_flag(&a, "config"), Some("b.toml".into()));
        let a = args(&["airlock", "verify", "--", "--config", "x"]);
        assert_eq!(raw_flag(&a, "config"), None);
        let a = args(&["airlock", "--format"]);
        assert_eq!(raw_flag(&a, "format"), None);
        assert!(is_json(
            raw_flag(&args(&["a", "--format=json"]), "format").as_deref()
        ));
    }

    #[test]
    fn locate_prefers_the_named_file_then_xdg_then_home() {
        let dir = tempfile::tempdir().expect("tmp");
        let xdg = dir.path().join("xdg");
        let home = dir.path().join("home");
        for d in [&xdg, &home.join(".config")] {
            std::fs::create_dir_all(d.join("airlock")).expect("mkdir");
            std::fs::write(d.join("airlock").join(FILE_NAME), "").expect("write");
        }
        let env = |xdg_set: bool| {
            let (xdg, home) = (xdg.clone(), home.clone());
            move |k: &str| match k {
                "XDG_CONFIG_HOME" if xdg_set => Some(xdg.clone().into_os_string()),
                "HOME" => Some(home.clone().into_os_string()),
                _ => None,
            }
        };
        assert_eq!(
            locate(None, env(true)).expect("ok"),
            Some(xdg.join("airlock/airlock.toml"))
        );
        assert_eq!(
            locate(None, env(false)).expect("ok"),
            Some(home.join(".config/airlock/airlock.toml"))
        );
        let named = dir.path().join("none.toml");
        let e = locate(Some((named, "--config")), env(true)).unwrap_err();
        assert!(matches!(e, ConfigError::Missing { .. }), "{e}");
        assert_eq!(
            locate(None, |_| Some(dir.path().join("empty").into_os_string())).expect("ok"),
            None,
            "no file in the default place is no configuration"
        );
    }

    /// Flag > environment > file > default, through clap with [`apply`]. The flag names are
    /// the real ones; the variable is set for this test only (no other test reads it).
    #[test]
    fn precedence_flag_then_env_then_file_then_default() {
        let cmd = || {
            clap::Command::new("t").subcommand(
                clap::Command::new("sub")
                    .arg(clap::Arg::new("retries").long("retries").default_value("5"))
                    .arg(
                        clap::Arg::new("timeout")
                            .long("timeout")
                            .default_value("2m"),
                    ),
            )
        };
        let file = parse("retries = 2\n").expect("parse");
        let run = |args: &[&str], config: Option<&Config>| {
            let m = apply(cmd(), config)
                .try_get_matches_from(args)
                .expect("parse");
            let (_, sub) = m.subcommand().expect("sub");
            let retries = sub.get_one::<String>("retries").cloned();
            let timeout = sub.get_one::<String>("timeout").cloned();
            let origins = (
                origin(sub.value_source("retries"), "retries", config),
                origin(sub.value_source("timeout"), "timeout", None),
            );
            (retries, timeout, origins)
        };
        let (r, t, (o, ot)) = run(&["t", "sub"], None);
        assert_eq!((r.as_deref(), o), (Some("5"), Origin::Default));
        assert_eq!((t.as_deref(), ot), (Some("2m"), Origin::Default));
        let (r, _, (o, _)) = run(&["t", "sub"], Some(&file));
        assert_eq!(r.as_deref(), Some("2"));
        assert_eq!(
            o,
            Origin::File {
                path: PathBuf::from("/etc/airlock/airlock.toml")
            }
        );
        std::env::set_var("AIRLOCK_RETRIES", "3");
        let (r, _, (o, _)) = run(&["t", "sub"], Some(&file));
        let (r2, _, (o2, _)) = run(&["t", "sub", "--retries", "4"], Some(&file));
        std::env::remove_var("AIRLOCK_RETRIES");
        assert_eq!(r.as_deref(), Some("3"));
        assert_eq!(
            o,
            Origin::Env {
                var: "AIRLOCK_RETRIES".into()
            }
        );
        assert_eq!((r2.as_deref(), o2), (Some("4"), Origin::Flag));
    }
}
