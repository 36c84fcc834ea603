//! Ledger entries: what one import did, as one RFC 8785 canonical JSON object per line.
//!
//! The canonical form ([RFC 8785], JSON Canonicalization Scheme) is: no whitespace, object
//! members sorted by their names compared as UTF-16 code units, strings escaped minimally
//! (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00xx` in lower
//! case, everything else literal). Entries hold integers only (no fractions or exponents),
//! within ±(2^53 − 1), so the number rules of RFC 8785 reduce to plain decimal integers.
//! A line read back must be byte-identical to the canonical form of what it parses to, which
//! rejects duplicate member names, whitespace, reordered members and other re-encodings.
//!
//! [RFC 8785]: https://www.rfc-editor.org/rfc/rfc8785.html

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Schema id written in every entry's `schema` member.
pub const ENTRY_SCHEMA: &str = "https://airlock.dev/ledger/entry/v1";
/// Largest entry line accepted, in bytes. Large evidence goes to `evidence/sha256/<hex>`.
/// An import entry lists every artifact (about 500 bytes each) and a rescan every finding
/// line (about 800): 4 MiB holds a bundle of several thousand images; 256 KiB, the cap
/// until 2026-11-28, refused a single 540-image import.
pub const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;
/// Largest integer magnitude allowed in an entry (I-JSON / RFC 8785 exact range).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a value has no canonical form in a ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// A number with a fraction or exponent, or outside ±(2^53 − 1).
    #[error("number {0} is not an integer within ±(2^53 - 1); ledger entries hold integers only")]
    Number(String),
}

/// Serializes `value` in RFC 8785 canonical form (integers only).
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(512);
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let ok = if let Some(u) = n.as_u64() {
                u <= MAX_SAFE_INTEGER
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_SAFE_INTEGER
            } else {
                false
            };
            let text = n.to_string();
            if !ok || text.contains(['.', 'e', 'E']) {
                return Err(CanonicalError::Number(text));
            }
            out.extend_from_slice(text.as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Whether `line` is byte for byte the canonical form ([`canonicalize`]) of the JSON value it
/// encodes, decided in one pass over the bytes without building the value. It accepts only
/// what `canonicalize(parse(line)) == line` accepts (it may refuse rarer canonical lines,
/// e.g. member names with escapes, which callers then check the slow way).
pub fn is_canonical(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(is_canonical_text)
}

/// [`is_canonical`] for a line already known to be UTF-8 (outside strings a canonical line is
/// ASCII, so only string bodies could hold anything else, and `text` is valid there too).
fn is_canonical_text(text: &str) -> bool {
    let mut s = Scan::new(text);
    s.value(0) && s.at_end()
}

/// Nesting deeper than this is left to the slow path (serde_json stops at 128).
const SCAN_MAX_DEPTH: usize = 64;

/// The cursor of [`is_canonical`] (and of `ledger verify`'s typed reading of a line).
pub(super) struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// Whether the whole text is known to hold no control byte (then strings need not be
    /// searched for one).
    no_controls: bool,
}

impl<'a> Scan<'a> {
    /// A cursor at the start of `text`.
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            b: text.as_bytes(),
            i: 0,
            no_controls: false,
        }
    }

    /// A cursor at the start of `text`, which holds no byte below 0x20 (checked).
    pub(super) fn without_controls(text: &'a str) -> Option<Self> {
        // A fold, not `any`, so that it is vectorised: most lines are clean.
        let controls = text.bytes().fold(false, |seen, c| seen | (c < 0x20));
        (!controls).then(|| Self {
            no_controls: true,
            ..Self::new(text)
        })
    }

    /// Whether the whole text has been read.
    pub(super) fn at_end(&self) -> bool {
        self.i == self.b.len()
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(super) fn eat(&mut self, c: u8) -> bool {
        let ok = self.peek() == Some(c);
        self.i += usize::from(ok);
        ok
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let ok = self.b[self.i..].starts_with(word);
        if ok {
            self.i += word.len();
        }
        ok
    }

    /// Any canonical value, nested at `depth`.
    pub(super) fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => depth < SCAN_MAX_DEPTH && self.object(depth),
            Some(b'[') => depth < SCAN_MAX_DEPTH && self.array(depth),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth + 1) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut prev: Option<&'a [u8]> = None;
        loop {
            // Member names with escapes are left to the slow path: their order is that of
            // the unescaped text.
            let Some(key) = self.string().filter(|k| !k.escaped) else {
                return false;
            };
            let key = key.body;
            if prev.is_some_and(|p| !key_before(p, key)) {
                return false;
            }
            prev = Some(key);
            if !self.eat(b':') || !self.value(depth + 1) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A string with exactly the escapes [`write_string`] writes: its body (between the
    /// quotes, as written) and whether it holds an escape. Runs of plain bytes are skipped by
    /// searching for the next quote or backslash, then checked for control bytes in bulk.
    pub(super) fn string(&mut self) -> Option<ScannedString<'a>> {
        let b: &'a [u8] = self.b;
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let mut escaped = false;
        loop {
            let rest = &b[self.i..];
            let stop = memchr::memchr2(b'"', b'\\', rest)?;
            if !self.no_controls && rest[..stop].iter().any(|&c| c < 0x20) {
                return None;
            }
            self.i += stop;
            if b[self.i] == b'"' {
                self.i += 1;
                return Some(ScannedString {
                    body: &b[start..self.i - 1],
                    escaped,
                });
            }
            escaped = true;
            let ok = match b.get(self.i + 1) {
                Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => {
                    self.i += 2;
                    true
                }
                Some(b'u') => {
                    let v = b.get(self.i + 2..self.i + 6).and_then(|h| {
                        h.iter().try_fold(0u32, |acc, &c| match c {
                            b'0'..=b'9' => Some(acc * 16 + u32::from(c - b'0')),
                            b'a'..=b'f' => Some(acc * 16 + u32::from(c - b'a' + 10)),
                            _ => None,
                        })
                    });
                    self.i += 6;
                    // Only control characters without a short escape.
                    v.is_some_and(|v| v < 0x20 && ![8, 9, 10, 12, 13].contains(&v))
                }
                _ => false,
            };
            if !ok {
                return None;
            }
        }
    }

    /// An integer within ±(2^53 − 1), no leading zeros, no `-0`, no fraction or exponent.
    fn number(&mut self) -> bool {
        let neg = self.eat(b'-');
        self.magnitude(neg).is_some()
    }

    /// A canonical integer from 0 to 2^53 − 1.
    pub(super) fn uint(&mut self) -> Option<u64> {
        self.magnitude(false)
    }

    /// The digits of a canonical integer (after its sign, if `neg`) and their value.
    fn magnitude(&mut self, neg: bool) -> Option<u64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = &self.b[start..self.i];
        if digits.is_empty()
            || digits.len() > 16
            || (digits[0] == b'0' && (digits.len() > 1 || neg))
        {
            return None;
        }
        let v = digits
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        (v <= MAX_SAFE_INTEGER && !matches!(self.peek(), Some(b'.' | b'e' | b'E'))).then_some(v)
    }
}

/// A string [`Scan::string`] accepted.
pub(super) struct ScannedString<'a> {
    /// The bytes between the quotes, escapes as written.
    pub body: &'a [u8],
    /// Whether it holds an escape.
    pub escaped: bool,
}

/// Whether member name `a` sorts strictly before `b` (UTF-16 code units, as RFC 8785 says);
/// both are names without escapes.
fn key_before(a: &[u8], b: &[u8]) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a < b;
    }
    match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(a), Ok(b)) => a.encode_utf16().lt(b.encode_utf16()),
        _ => false,
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Why an entry was rejected, when written or when read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The line is longer than [`MAX_ENTRY_BYTES`].
    #[error("entry is {size} bytes, the limit is {max}")]
    TooLarge {
        /// Size of the line.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The line is not JSON, or not an entry of the known schema.
    #[error("not a ledger entry: {0}")]
    Malformed(String),
    /// The line is JSON but not in canonical form.
    #[error("entry is not in RFC 8785 canonical form")]
    NotCanonical,
    /// A member has a value the schema forbids.
    #[error("entry member `{field}` {reason}")]
    Invalid {
        /// JSON path of the member.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A number cannot be written canonically.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

/// Outcome of one signature check, as the importer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A valid signature by a key or identity the policy trusts.
    Verified,
    /// A valid signature by a key or identity the policy does not trust.
    Untrusted,
    /// A signature that does not verify.
    Invalid,
    /// A signature the policy requires was not found.
    Missing,
}

/// One signature check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureResult {
    /// Key id (e.g. `sha256:<hex>` of the public key) or keyless identity (`issuer|subject`).
    pub signer: String,
    /// What the check found.
    pub verdict: Verdict,
    /// Optional detail (e.g. Rekor log index, why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The bundle an import read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    /// Digest of the bundle manifest (`airlock.json`), `sha256:<hex>`.
    pub digest: String,
    /// Bundle name from its manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The bundle's signatures and their check results; the signer key ids are their
    /// `signer` members.
    #[serde(default)]
    pub signatures: Vec<SignatureResult>,
    /// The bundle's replay sequence (`airlock.json` `sequence`), what replay protection
    /// compares against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// Whether the import was admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Everything verified and was pushed.
    Admitted,
    /// The import was refused; nothing was tagged.
    Rejected {
        /// Why, in one sentence.
        reason: String,
    },
}

/// One artifact of the import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRecord {
    /// `image`, `index`, `chart`, `file`, …
    pub kind: String,
    /// Reference it was collected from on the connected side.
    pub source_ref: String,
    /// Reference it was pushed to (absent when not pushed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<String>,
    /// Content digest, `sha256:<hex>`.
    pub digest: String,
    /// Media type of the manifest or file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Signature checks made on this artifact.
    #[serde(default)]
    pub signatures: Vec<SignatureResult>,
    /// Scan summary (shape owned by the scanner; integers only), when scanning ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Value>,
}

/// Large evidence kept outside the entry, at `evidence/sha256/<hex>` in the ledger directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRef {
    /// What it is (`sbom`, `scan-report`, `verification-report`, …).
    pub kind: String,
    /// `sha256:<hex>` of the stored bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type of the stored bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifest it describes (`sha256:<hex>`): for an SBOM or scan report carried in a
    /// bundle, the image platform manifest, so `rescan` finds the SBOM by image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// What a rescan (`airlock rescan`) found: every image the ledger admitted re-judged against a
/// newer database. A rescan entry reads no bundle: its `bundle.digest` is the database's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescanRecord {
    /// The database's build time, RFC 3339.
    pub database_built_at: String,
    /// Image platforms re-judged.
    pub images: u64,
    /// Of those, judged from the SBOM carried at import.
    pub from_sbom: u64,
    /// Active findings (not suppressed by VEX or allow entries), all images.
    pub findings: u64,
    /// Active findings the previous rescan did not have.
    pub new_findings: u64,
    /// Findings of the previous rescan that are gone.
    pub fixed_findings: u64,
    /// Image platforms the policy now fails.
    pub failed: u64,
    /// Index of the previous rescan entry, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
}

/// One ledger entry: one import, admitted or rejected, or one rescan.
///
/// Build one with [`Entry::new`] and fill the public fields; [`Ledger::append`] assigns
/// `index`. Digests are `sha256:<64 hex>`; `time` is RFC 3339 UTC (`2026-01-02T03:04:05Z`).
///
/// [`Ledger::append`]: super::Ledger::append
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Schema id, [`ENTRY_SCHEMA`].
    pub schema: String,
    /// Position in the log, from 0; set by [`Ledger::append`](super::Ledger::append).
    pub index: u64,
    /// When the import finished, RFC 3339 UTC with seconds.
    pub time: String,
    /// Who ran the import (user name, or what `--operator` said).
    pub operator: String,
    /// Tool and version that imported (`airlock/0.1.0`).
    pub importer: String,
    /// The bundle read.
    pub bundle: BundleRecord,
    /// Digest of the policy applied, `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
    /// Registry (and prefix) the import pushed to.
    pub target_registry: String,
    /// Admitted or rejected, and why.
    pub result: Outcome,
    /// Every artifact of the bundle.
    #[serde(default)]
    pub artifacts: Vec<ArtifactRecord>,
    /// Large evidence stored by digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceRef>,
    /// Present on rescan entries only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescan: Option<RescanRecord>,
}

impl Entry {
    /// A new entry with the schema id, the current time, `airlock/<version>` as importer, and
    /// no artifacts; `index` is 0 until appended.
    pub fn new(
        operator: &str,
        bundle_digest: &str,
        target_registry: &str,
        result: Outcome,
    ) -> Self {
        Self {
            schema: ENTRY_SCHEMA.to_owned(),
            index: 0,
            time: now_rfc3339(),
            operator: operator.to_owned(),
            importer: format!("airlock/{}", crate::VERSION),
            bundle: BundleRecord {
                digest: bundle_digest.to_owned(),
                name: None,
                signatures: Vec::new(),
                sequence: None,
            },
            policy_digest: None,
            target_registry: target_registry.to_owned(),
            result,
            artifacts: Vec::new(),
            evidence: Vec::new(),
            rescan: None,
        }
    }

    /// The canonical line (without newline) for this entry; checks it first.
    pub fn to_line(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        let value = serde_json::to_value(self).map_err(|e| EntryError::Malformed(e.to_string()))?;
        let line = canonicalize(&value)?;
        if line.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge {
                size: line.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        Ok(line)
    }

    /// Parses a line (without newline): size limit, JSON, canonical form, schema, values.
    ///
    /// A line that [`is_canonical`] is parsed straight into an entry; any other line, or one
    /// that fails later, takes the full path (parse to a value, re-encode, compare), which
    /// decides the error. The result is the same either way; only a bad line costs more.
    pub fn from_line(line: &[u8]) -> Result<Self, EntryError> {
        // Checked as UTF-8 once: the scan and the parser (`from_str`) then take it as read.
        if let Ok(text) = std::str::from_utf8(line) {
            if line.len() <= MAX_ENTRY_BYTES && is_canonical_text(text) {
                if let Ok(e) = serde_json::from_str::<Entry>(text) {
                    // Canonical, so every number in it is an integer in range already.
                    if e.check_values(false).is_ok() {
                        return Ok(e);
                    }
                }
            }
        }
        Self::from_line_by_value(line)
    }

    /// [`Entry::from_line`] by the definition: parse to a value, re-encode canonically,
    /// compare bytes, then read the entry from the value.
    pub(super) fn from_line_by_value(line: &[u8]) -> Result<Self, EntryError> {
        if line.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge {
                size: line.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        let value: Value =
            serde_json::from_slice(line).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if canonicalize(&value)? != line {
            return Err(EntryError::NotCanonical);
        }
        let entry: Entry =
            serde_json::from_value(value).map_err(|e| EntryError::Malformed(e.to_string()))?;
        entry.validate()?;
        Ok(entry)
    }

    /// Checks the values the schema constrains.
    pub fn validate(&self) -> Result<(), EntryError> {
        self.check_values(true)
    }

    /// [`Entry::validate`]; `numbers` says whether to check that each scan summary's numbers
    /// can be written canonically (known already for an entry read from a canonical line).
    fn check_values(&self, numbers: bool) -> Result<(), EntryError> {
        let invalid = |field: &str, reason: &str| {
            Err(EntryError::Invalid {
                field: field.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if self.schema != ENTRY_SCHEMA {
            return invalid("schema", &format!("is not {ENTRY_SCHEMA}"));
        }
        if self.index > MAX_SAFE_INTEGER {
            return invalid("index", "is too large");
        }
        if parse_rfc3339(&self.time).is_none() {
            return invalid("time", "is not RFC 3339 UTC like 2026-01-02T03:04:05Z");
        }
        for (field, v) in [
            ("operator", &self.operator),
            ("importer", &self.importer),
            ("target_registry", &self.target_registry),
        ] {
            if v.is_empty() {
                return invalid(field, "is empty");
            }
        }
        check_digest("bundle.digest", &self.bundle.digest)?;
        if let Some(d) = &self.policy_digest {
            check_digest("policy_digest", d)?;
        }
        if let Outcome::Rejected { reason } = &self.result {
            if reason.is_empty() {
                return invalid("result.reason", "is empty");
            }
        }
        for (i, a) in self.artifacts.iter().enumerate() {
            need_digest(|| format!("artifacts[{i}].digest"), &a.digest)?;
            if a.kind.is_empty() || a.source_ref.is_empty() {
                return invalid(&format!("artifacts[{i}]"), "needs a kind and a source_ref");
            }
            if let Some(scan) = a.scan.as_ref().filter(|_| numbers) {
                canonicalize(scan)?;
            }
        }
        for (i, e) in self.evidence.iter().enumerate() {
            need_digest(|| format!("evidence[{i}].digest"), &e.digest)?;
            if let Some(s) = &e.subject {
                need_digest(|| format!("evidence[{i}].subject"), s)?;
            }
        }
        Ok(())
    }

    /// Whether the bundle was admitted (false for a rescan entry, which admits nothing).
    pub fn admitted(&self) -> bool {
        matches!(self.result, Outcome::Admitted) && self.rescan.is_none()
    }
}

/// Checks a `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>` digest.
pub fn check_digest(field: &str, d: &str) -> Result<(), EntryError> {
    need_digest(|| field.to_owned(), d)
}

/// [`check_digest`] naming the field only when it fails (entries are checked by the hundred
/// thousand when a ledger is verified).
fn need_digest(field: impl FnOnce() -> String, d: &str) -> Result<(), EntryError> {
    if is_digest(d.as_bytes()) {
        Ok(())
    } else {
        Err(EntryError::Invalid {
            field: field(),
            reason: format!("{d:?} is not a sha256:<hex> digest"),
        })
    }
}

/// Whether `d` is a `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>` digest.
pub(super) fn is_digest(d: &[u8]) -> bool {
    match d {
        [b's', b'h', b'a', b'2', b'5', b'6', b':', hex @ ..] => {
            hex.len() == 64 && is_lower_hex(hex)
        }
        [b's', b'h', b'a', b'5', b'1', b'2', b':', hex @ ..] => {
            hex.len() == 128 && is_lower_hex(hex)
        }
        _ => false,
    }
}

fn is_lower_hex(s: &[u8]) -> bool {
    s.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The current time as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_rfc3339(secs as i64)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (UTC, no fraction) into seconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if civil_from_days(days) != (y, mo, d) {
        return None; // e.g. February 30th
    }
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

// Howard Hinnant's civil calendar algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Every deletion and duplication of one byte of `line`, and every replacement of one byte by
/// one of `subs`: the edits the one-pass readers are checked against the definition on.
#[cfg(test)]
pub(super) fn single_byte_edits<'a>(
    line: &'a [u8],
    subs: &'a [u8],
) -> impl Iterator<Item = Vec<u8>> + 'a {
    (0..line.len()).flat_map(move |i| {
        let mut del = line.to_vec();
        del.remove(i);
        let mut dup = line.to_vec();
        dup.insert(i, line[i]);
        let replaced = subs.iter().map(move |&c| {
            let mut m = line.to_vec();
            m[i] = c;
            m
        });
        [del, dup].into_iter().chain(replaced)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_by_utf16_and_escapes_minimally() {
        // RFC 8785 §3.2.3: sorting is by UTF-16 code units, so U+1F600 (D83D DE00) sorts
        // before U+E000 although its UTF-8 encoding is larger.
        let v = json!({"\u{e000}": 1, "\u{1f600}": 2, "b": [true, false, null], "a": "x"});
        assert_eq!(
            String::from_utf8(canonicalize(&v).unwrap()).unwrap(),
            "{\"a\":\"x\",\"b\":[true,false,null],\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
        // RFC 8785 §3.2.2.2 string escaping, including lower-case \u00xx and literal U+2028,
        // DEL, "/" and non-ASCII.
        let v = json!("\u{0}\u{8}\t\n\u{c}\r\u{1f}\"\\/\u{7f}\u{2028}é");
        assert_eq!(
            String::from_utf8(canonicalize(&v).unwrap()).unwrap(),
            "\"\\u0000\\b\\t\\n\\f\\r\\u001f\\\"\\\\/\u{7f}\u{2028}é\""
        );
        assert_eq!(
            canonicalize(&json!(-9007199254740991i64)).unwrap(),
            b"-9007199254740991"
        );
        assert!(canonicalize(&json!(9007199254740992u64)).is_err());
        assert!(canonicalize(&json!(1.5)).is_err());
    }

    /// The one-pass check never accepts a line the definition refuses, and accepts the
    /// canonical lines entries are written as; checked on entries with every member kind and
    /// on every single-byte deletion, duplication and substitution of them.
    #[test]
    fn one_pass_check_agrees_with_the_definition() {
        let by_definition = |l: &[u8]| {
            serde_json::from_slice::<Value>(l)
                .ok()
                .and_then(|v| canonicalize(&v).ok())
                .is_some_and(|c| c == l)
        };
        let mut e = Entry::new(
            "op \u{1}\"é\u{1f600}",
            &format!("sha256:{}", "a".repeat(64)),
            "reg",
            Outcome::Rejected {
                reason: "tab\there\\".into(),
            },
        );
        e.artifacts.push(ArtifactRecord {
            kind: "image".into(),
            source_ref: "r/x:1".into(),
            target_ref: None,
            digest: format!("sha256:{}", "b".repeat(64)),
            media_type: None,
            signatures: vec![],
            scan: Some(json!({"\u{e000}": -12, "\u{1f600}": [0, 9007199254740991i64, null, true, false], "a": {}})),
        });
        let line = e.to_line().unwrap();
        assert!(is_canonical(&line));
        assert_eq!(Entry::from_line(&line).unwrap(), e);
        let subs = [
            b'"', b'\\', b'0', b'1', b'-', b'.', b'e', b' ', b'{', b'}', b'[', b']', b',', b':',
            b'u', b'A', 0x1f, 0xc3,
        ];
        for m in single_byte_edits(&line, &subs) {
            if is_canonical(&m) {
                assert!(by_definition(&m), "{}", String::from_utf8_lossy(&m));
            }
        }
    }

    /// The fast path (one-pass scan, then a typed parse) and the definition (parse to a value,
    /// re-encode, compare) decide every line alike, and the scan never accepts a line the
    /// definition refuses; each row says whether the line is canonical JSON.
    #[test]
    fn fast_path_and_definition_reject_the_same_lines() {
        let mut e = Entry::new(
            "ops",
            &format!("sha256:{}", "a".repeat(64)),
            "reg",
            Outcome::Admitted,
        );
        e.time = "2026-01-02T03:04:05Z".into();
        let good = String::from_utf8(e.to_line().unwrap()).unwrap();
        let with_op = |op: &[u8]| {
            let mut l = good.as_bytes().to_vec();
            let at = good.find("\"ops\"").unwrap();
            l.splice(at..at + 5, op.iter().copied());
            l
        };
        let rows: Vec<(&str, Vec<u8>, bool)> = vec![
            ("the canonical line", good.clone().into_bytes(), true),
            (
                "space after a colon",
                good.replacen(':', ": ", 1).into_bytes(),
                false,
            ),
            (
                "space before a comma",
                good.replacen(',', " ,", 1).into_bytes(),
                false,
            ),
            ("leading space", format!(" {good}").into_bytes(), false),
            ("trailing space", format!("{good} ").into_bytes(), false),
            (
                "tab between members",
                good.replacen(',', ",\t", 1).into_bytes(),
                false,
            ),
            ("trailing newline", format!("{good}\n").into_bytes(), false),
            (
                "members out of order",
                good.replacen("{\"artifacts\":[],", "{", 1)
                    .replacen("}", "},\"artifacts\":[]", 1)
                    .into_bytes(),
                false,
            ),
            (
                "duplicate member",
                good.replacen('{', "{\"artifacts\":[],", 1).into_bytes(),
                false,
            ),
            ("escaped solidus", with_op(b"\"o\\/s\""), false),
            ("upper-case hex escape", with_op(b"\"o\\u001Fs\""), false),
            ("lower-case control escape", with_op(b"\"o\\u001fs\""), true),
            ("escape of a plain letter", with_op(b"\"o\\u0041s\""), false),
            ("long escape of a newline", with_op(b"\"o\\u000as\""), false),
            ("short escape of a newline", with_op(b"\"o\\ns\""), true),
            (
                "short escapes of quote and backslash",
                with_op(b"\"o\\\"\\\\s\""),
                true,
            ),
            ("raw control byte", with_op(b"\"o\x01s\""), false),
            ("raw tab", with_op(b"\"o\ts\""), false),
            ("raw DEL", with_op(b"\"o\x7fs\""), true),
            (
                "escaped surrogate pair",
                with_op(b"\"\\ud83d\\ude00\""),
                false,
            ),
            ("lone escaped surrogate", with_op(b"\"\\ud800\""), false),
            ("two-byte UTF-8", with_op("\"\u{e9}\"".as_bytes()), true),
            ("four-byte UTF-8", with_op("\"\u{1f600}\"".as_bytes()), true),
            ("invalid UTF-8 byte", with_op(b"\"o\xffs\""), false),
            ("truncated UTF-8 sequence", with_op(b"\"o\xc3\""), false),
            ("overlong UTF-8", with_op(b"\"o\xc0\xafs\""), false),
            ("UTF-8 surrogate", with_op(b"\"o\xed\xa0\x80s\""), false),
            ("unterminated escape", with_op(b"\"o\\"), false),
            ("unknown escape", with_op(b"\"o\\xs\""), false),
            ("short unicode escape", with_op(b"\"o\\u01\""), false),
            (
                "leading zero",
                good.replacen("\"index\":0", "\"index\":00", 1).into_bytes(),
                false,
            ),
            (
                "negative zero",
                good.replacen("\"index\":0", "\"index\":-0", 1).into_bytes(),
                false,
            ),
            (
                "fraction",
                good.replacen("\"index\":0", "\"index\":0.0", 1)
                    .into_bytes(),
                false,
            ),
            (
                "exponent",
                good.replacen("\"index\":0", "\"index\":1e2", 1)
                    .into_bytes(),
                false,
            ),
            (
                "2^53 - 1",
                good.replacen("\"index\":0", "\"index\":9007199254740991", 1)
                    .into_bytes(),
                true,
            ),
            (
                "2^53",
                good.replacen("\"index\":0", "\"index\":9007199254740992", 1)
                    .into_bytes(),
                false,
            ),
            (
                "unclosed object",
                good.as_bytes()[..good.len() - 1].to_vec(),
                false,
            ),
            ("two values", format!("{good}{good}").into_bytes(), false),
        ];
        let by_definition = |l: &[u8]| {
            serde_json::from_slice::<Value>(l)
                .ok()
                .and_then(|v| canonicalize(&v).ok())
                .is_some_and(|c| c == l)
        };
        for (what, line, canonical) in rows {
            assert_eq!(by_definition(&line), canonical, "{what}: the definition");
            assert_eq!(is_canonical(&line), canonical, "{what}: the scan");
            assert_eq!(
                Entry::from_line(&line),
                Entry::from_line_by_value(&line),
                "{what}: the two paths"
            );
            if !canonical {
                assert!(Entry::from_line(&line).is_err(), "{what}");
            }
        }
    }

    #[test]
    fn lines_must_be_canonical() {
        let mut e = Entry::new(
            "ops",
            &format!("sha256:{}", "a".repeat(64)),
            "reg",
            Outcome::Admitted,
        );
        e.time = "2026-01-02T03:04:05Z".into();
        let line = e.to_line().unwrap();
        assert_eq!(Entry::from_line(&line).unwrap(), e);
        let text = String::from_utf8(line).unwrap();
        let spaced = text.replacen(':', ": ", 1);
        assert_eq!(
            Entry::from_line(spaced.as_bytes()),
            Err(EntryError::NotCanonical)
        );
        let dup = text.replacen('{', "{\"index\":0,", 1);
        assert_eq!(
            Entry::from_line(dup.as_bytes()),
            Err(EntryError::NotCanonical)
        );
        let float = text.replace("\"index\":0", "\"index\":0.0");
        assert!(Entry::from_line(float.as_bytes()).is_err());
        let unknown = text.replace("\"importer\"", "\"importex\"");
        assert!(matches!(
            Entry::from_line(unknown.as_bytes()),
            Err(EntryError::Malformed(_))
        ));
    }

    #[test]
    fn times_round_trip() {
        for (s, t) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T23:59:59Z", 951_868_799),
            ("2026-08-21T10:00:22Z", 1_787_306_422),
        ] {
            assert_eq!(parse_rfc3339(s), Some(t));
            assert_eq!(format_rfc3339(t), s);
        }
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00+00:00",
            "2026-1-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
