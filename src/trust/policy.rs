//! The image trust policy: which signers must have signed which images.
//!
//! It lives in the spec under `trust:` and, on the isolated side, in a `--policy FILE` of the
//! same shape:
//!
//! ```yaml
//! trusted_root: sigstore/trusted_root.json   # for keyless rules and Rekor checks (offline)
//! rules:
//!   - pattern: registry.example/org/*         # `*` = one path segment, `**` = any depth
//!     keys: [keys/release.pub]                # a path (relative to the policy file) or PEM
//!     keyless:
//!       - identity: https://github.com/org/app/.github/workflows/release.yml@refs/heads/main
//!         issuer: https://token.actions.githubusercontent.com
//!       - identity: { regex: "https://github\\.com/org/.*" }
//!         issuer: https://token.actions.githubusercontent.com
//!     require: 2                              # N of the M signers above; default 1
//!     require_tlog: true                      # key signatures need a Rekor entry too
//!     require_children: true                  # each carried platform signed on its own too
//! ```
//!
//! Each key and each keyless entry is one *signer*; an image passes a rule when at least
//! `require` distinct signers have a valid signature on it. Keyless signatures always need a
//! verified Rekor entry (the certificate is only valid for minutes). The first rule whose
//! pattern matches the normalized repository (`docker.io/library/nginx`) applies.
//!
//! Regular expressions must match the *whole* identity or issuer (they are anchored), unlike
//! cosign's `--certificate-identity-regexp`: `https://github\.com/org/.*` does not accept
//! `https://evil.example/?https://github.com/org/x`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::trusted_root::{TrustedRoot, TrustedRootError};
use super::{PublicKey, TrustError};

/// The largest trust policy file read (`import --policy`): a policy is a few rules.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Why a policy is invalid or its material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The YAML does not parse or has unknown fields.
    #[error("invalid trust policy: {detail}")]
    Parse {
        /// What the parser said.
        detail: String,
    },
    /// A rule's pattern is empty or malformed.
    #[error("trust rule `{pattern}`: invalid pattern: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A rule names no signer, or requires more signers than it names, or zero.
    #[error(
        "trust rule `{pattern}` requires {required} signer(s) but names {signers}: \
         the threshold must be between 1 and the number of keys plus keyless identities"
    )]
    Threshold {
        /// The rule's pattern.
        pattern: String,
        /// Its `require`.
        required: usize,
        /// Keys plus keyless entries.
        signers: usize,
    },
    /// A key of a rule could not be loaded.
    #[error("trust rule `{pattern}`: cannot load key")]
    Key {
        /// The rule's pattern.
        pattern: String,
        /// The key file error.
        #[source]
        source: TrustError,
    },
    /// A rule has keyless signers but the policy has no trusted root.
    #[error(
        "trust rule `{pattern}` has keyless signers or requires Rekor entries, but the policy \
         names no `trusted_root`"
    )]
    NoTrustedRoot {
        /// The rule's pattern.
        pattern: String,
    },
    /// The trusted root could not be loaded.
    #[error(transparent)]
    TrustedRoot(#[from] TrustedRootError),
}

/// The trust policy: rules by repository pattern, and the Sigstore trusted root.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    /// `trusted_root.json` (Fulcio CAs, Rekor and CT log keys), relative to the policy file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<PathBuf>,
    /// The rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule: the signers an image whose repository matches `pattern` needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `registry/repository`, exact or with `*` (one path segment) and `**` (any depth).
    pub pattern: String,
    /// Public keys (cosign `.pub` paths relative to the policy file, or inline PEM).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyRef>,
    /// Keyless signers: certificate identity and OIDC issuer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyless: Vec<KeylessIdentity>,
    /// How many distinct signers must have signed (default 1).
    #[serde(default = "one")]
    pub require: usize,
    /// Key signatures must carry a verified Rekor entry too (keyless ones always must).
    #[serde(default)]
    pub require_tlog: bool,
    /// Every carried child of an index must carry its own valid signature too (cosign signs
    /// each platform's manifest when asked with `--recursive`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_children: bool,
}

fn one() -> usize {
    1
}

/// A public key named by a rule: a file path, or the PEM text itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "String", into = "String")]
pub enum KeyRef {
    /// A `.pub` file, relative to the policy file's directory.
    Path(PathBuf),
    /// PEM `PUBLIC KEY` text.
    Pem(String),
}

impl From<String> for KeyRef {
    fn from(s: String) -> Self {
        if s.trim_start().starts_with("-----BEGIN") {
            KeyRef::Pem(s)
        } else {
            KeyRef::Path(PathBuf::from(s))
        }
    }
}

impl From<KeyRef> for String {
    fn from(k: KeyRef) -> Self {
        match k {
            KeyRef::Path(p) => p.display().to_string(),
            KeyRef::Pem(s) => s,
        }
    }
}

impl KeyRef {
    /// Loads the key; a path is taken relative to `base_dir`.
    pub fn load(&self, base_dir: &Path) -> Result<PublicKey, TrustError> {
        match self {
            KeyRef::Path(p) => PublicKey::load(&base_dir.join(p)),
            KeyRef::Pem(text) => {
                PublicKey::from_pem(text).map_err(|source| TrustError::PublicKey {
                    path: PathBuf::from("<inline PEM in the trust policy>"),
                    source,
                })
            }
        }
    }
}

/// A keyless signer: who (certificate SAN) and vouched for by whom (OIDC issuer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeylessIdentity {
    /// The certificate's subject alternative name (email or URI).
    pub identity: Matcher,
    /// The OIDC issuer recorded by Fulcio in the certificate.
    pub issuer: Matcher,
}

impl KeylessIdentity {
    /// True when both the identity and the issuer match.
    pub fn matches(&self, identity: &str, issuer: &str) -> bool {
        self.identity.matches(identity) && self.issuer.matches(issuer)
    }
}

impl fmt::Display for KeylessIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (issuer {})", self.identity, self.issuer)
    }
}

/// A string matcher: exact text, or an anchored regular expression.
#[derive(Clone)]
pub enum Matcher {
    /// Equal to this string.
    Exact(String),
    /// The whole string matches this expression (compiled as `^(?:…)$`).
    Regex(RegexMatcher),
}

/// A compiled, anchored regular expression with its source text.
#[derive(Clone)]
pub struct RegexMatcher {
    source: String,
    regex: regex::Regex,
}

impl RegexMatcher {
    /// Compiles `source`, anchored at both ends.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()?;
        Ok(RegexMatcher {
            source: source.to_owned(),
            regex,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl Matcher {
    /// True when `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex(r) => r.regex.is_match(value),
        }
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "`{s}`"),
            Matcher::Regex(r) => write!(f, "regex `{}`", r.source),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Matcher::Exact(a), Matcher::Exact(b)) => a == b,
            (Matcher::Regex(a), Matcher::Regex(b)) => a.source == b.source,
            _ => false,
        }
    }
}

impl Eq for Matcher {}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum MatcherRepr {
    Exact(String),
    Regex {
        #[serde(rename = "regex")]
        regex: String,
    },
}

impl serde::Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Matcher::Exact(s) => MatcherRepr::Exact(s.clone()),
            Matcher::Regex(r) => MatcherRepr::Regex {
                regex: r.source.clone(),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match MatcherRepr::deserialize(deserializer)? {
            MatcherRepr::Exact(s) => Ok(Matcher::Exact(s)),
            MatcherRepr::Regex { regex } => RegexMatcher::new(&regex)
                .map(Matcher::Regex)
                .map_err(|e| serde::de::Error::custom(format!("invalid regex `{regex}`: {e}"))),
        }
    }
}

impl TrustPolicy {
    /// Parses a policy from YAML (the `--policy FILE` form) and checks it.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        let policy: TrustPolicy = serde_yaml::from_str(text).map_err(|e| PolicyError::Parse {
            detail: e.to_string(),
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every rule: pattern well formed, 1 ≤ `require` ≤ signers, a trusted root when
    /// keyless signers or Rekor entries are needed.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for rule in &self.rules {
            rule.validate()?;
            if (!rule.keyless.is_empty() || rule.require_tlog) && self.trusted_root.is_none() {
                return Err(PolicyError::NoTrustedRoot {
                    pattern: rule.pattern.clone(),
                });
            }
        }
        Ok(())
    }

    /// The first rule whose pattern matches `repository` (normalized `registry/path`).
    pub fn rule_for(&self, repository: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(repository))
    }

    /// Loads the trusted root, relative to `base_dir`; `None` when the policy names none.
    pub fn load_trusted_root(&self, base_dir: &Path) -> Result<Option<TrustedRoot>, PolicyError> {
        match &self.trusted_root {
            None => Ok(None),
            Some(p) => Ok(Some(TrustedRoot::load(&base_dir.join(p))?)),
        }
    }
}

impl Rule {
    /// Checks the pattern and the threshold.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |reason| PolicyError::Pattern {
            pattern: self.pattern.clone(),
            reason,
        };
        if self.pattern.is_empty() {
            return Err(bad("empty"));
        }
        if self.pattern.chars().any(|c| c.is_whitespace()) {
            return Err(bad("contains whitespace"));
        }
        if self.pattern.contains('@') || self.pattern.split('/').any(str::is_empty) {
            return Err(bad(
                "must be `registry/repository` without tag, digest or empty parts",
            ));
        }
        let signers = self.keys.len() + self.keyless.len();
        if self.require == 0 || self.require > signers {
            return Err(PolicyError::Threshold {
                pattern: self.pattern.clone(),
                required: self.require,
                signers,
            });
        }
        Ok(())
    }

    /// True when `repository` (normalized `registry/path`, no tag) matches the pattern.
    pub fn matches(&self, repository: &str) -> bool {
        glob_match(self.pattern.as_bytes(), repository.as_bytes())
    }

    /// Loads the keys (paths relative to `base_dir`) and checks the rule.
    pub fn resolve(&self, base_dir: &Path) -> Result<ResolvedRule, PolicyError> {
        self.validate()?;
        let keys = self
            .keys
            .iter()
            .map(|k| {
                k.load(base_dir).map_err(|source| PolicyError::Key {
                    pattern: self.pattern.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResolvedRule {
            pattern: self.pattern.clone(),
            keys,
            keyless: self.keyless.clone(),
            require: self.require,
            require_tlog: self.require_tlog,
        })
    }
}

/// A rule with its keys loaded: what [`super::verify::verify_image`] checks against.
#[derive(Debug, Clone)]
pub struct ResolvedRule {
    /// The rule's pattern (names the rule in errors and results).
    pub pattern: String,
    /// The trusted keys.
    pub keys: Vec<PublicKey>,
    /// The keyless signers.
    pub keyless: Vec<KeylessIdentity>,
    /// How many distinct signers are required.
    pub require: usize,
    /// Key signatures need a verified Rekor entry.
    pub require_tlog: bool,
}

/// `*` matches within one path segment, `**` across segments; everything else literally.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') if pattern.get(1) == Some(&b'*') => {
            let rest = &pattern[2..];
            (0..=text.len()).any(|i| glob_match(rest, &text[i..]))
        }
        Some(b'*') => {
            let rest = &pattern[1..];
            let segment = text.iter().position(|&c| c == b'/').unwrap_or(text.len());
            (0..=segment).any(|i| glob_match(rest, &text[i..]))
        }
        Some(&c) => text.first() == Some(&c) && glob_match(&pattern[1..], &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_segments() {
        assert!(glob_match(b"r.example/org/*", b"r.example/org/app"));
        assert!(!glob_match(b"r.example/org/*", b"r.example/org/app/sub"));
        assert!(glob_match(b"r.example/org/**", b"r.example/org/app/sub"));
        assert!(glob_match(b"r.example/org/app", b"r.example/org/app"));
        assert!(!glob_match(b"r.example/org/app", b"r.example/org/apps"));
        assert!(glob_match(b"*/org/a*", b"r:5000/org/abc"));
    }

    #[test]
    fn parses_yaml_and_rejects_bad_thresholds_and_regexes() {
        let yaml = r#"
trusted_root: root.json
rules:
  - pattern: r.example/org/*
    keys: [a.pub]
    keyless:
      - identity: { regex: "https://github\\.com/org/.*" }
        issuer: https://token.actions.githubusercontent.com
    require: 2
"#;
        let p = TrustPolicy::from_yaml(yaml).expect("policy");
        let rule = p.rule_for("r.example/org/app").expect("rule");
        assert!(rule.keyless[0].matches(
            "https://github.com/org/x",
            "https://token.actions.githubusercontent.com"
        ));
        assert!(!rule.keyless[0].matches(
            "https://evil.example/?https://github.com/org/x",
            "https://token.actions.githubusercontent.com"
        ));
        let back = serde_yaml::to_string(&p).expect("yaml");
        assert_eq!(TrustPolicy::from_yaml(&back).expect("round trip"), p);
        assert!(matches!(
            TrustPolicy::from_yaml("rules: [{pattern: a/b, keys: [k.pub], require: 2}]"),
            Err(PolicyError::Threshold { .. })
        ));
        assert!(matches!(
            TrustPolicy::from_yaml(
                "trusted_root: r\nrules: [{pattern: a/b, keyless: [{identity: {regex: '('}, issuer: x}]}]"
            ),
            Err(PolicyError::Parse { .. })
        ));
        assert!(matches!(
            TrustPolicy::from_yaml("rules: [{pattern: a/b, keyless: [{identity: x, issuer: y}]}]"),
            Err(PolicyError::NoTrustedRoot { .. })
        ));
    }
}
