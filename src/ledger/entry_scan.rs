//! `ledger verify`'s reading of an entry line in one pass: the canonical-form check and the
//! schema check of [`Entry::from_line`] done together over the bytes, keeping only what verify
//! uses (the index and the evidence references) and building nothing else, so a ledger of
//! 100 000 entries is read without a million small allocations.
//!
//! It only ever accepts. A line it is not sure of, valid or not (an escape in a member name,
//! a digest or an evidence kind, a `null` member, a shape entries are never written in), is
//! declined, and verify then takes [`Entry::from_line`], which accepts it or says why not. So
//! verify accepts and rejects exactly what `Entry::from_line` does; the tests check every
//! acceptance against the definition.
//!
//! [`Entry::from_line`]: super::entry::Entry::from_line

use super::entry::{
    is_digest, parse_rfc3339, EvidenceRef, Scan, ScannedString, ENTRY_SCHEMA, MAX_ENTRY_BYTES,
};

/// What verify needs of a valid entry line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ScannedEntry {
    /// The index the entry states.
    pub index: u64,
    /// The evidence it references.
    pub evidence: Vec<EvidenceRef>,
}

/// The index and evidence of `line` if it is surely a valid entry (canonical, of the schema,
/// every value allowed); `None` if it is not, or if this reading cannot tell.
pub(crate) fn scan_entry(line: &[u8]) -> Option<ScannedEntry> {
    if line.len() > MAX_ENTRY_BYTES {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let mut r = Reader {
        s: Scan::without_controls(text)?,
    };
    let entry = r.entry()?;
    r.s.at_end().then_some(entry)
}

/// Member names of an entry, a bundle, … in canonical order (all ASCII, so byte order is the
/// UTF-16 order RFC 8785 sorts by).
const ENTRY: [&str; 12] = [
    "artifacts",
    "bundle",
    "evidence",
    "importer",
    "index",
    "operator",
    "policy_digest",
    "rescan",
    "result",
    "schema",
    "target_registry",
    "time",
];
/// `bundle`, `importer`, `index`, `operator`, `result`, `schema`, `target_registry`, `time`.
const ENTRY_REQUIRED: u32 = 0b1111_0011_1010;
const BUNDLE: [&str; 4] = ["digest", "name", "sequence", "signatures"];
const SIGNATURE: [&str; 3] = ["detail", "signer", "verdict"];
const OUTCOME: [&str; 2] = ["reason", "status"];
const ARTIFACT: [&str; 7] = [
    "digest",
    "kind",
    "media_type",
    "scan",
    "signatures",
    "source_ref",
    "target_ref",
];
/// `digest`, `kind`, `source_ref`.
const ARTIFACT_REQUIRED: u32 = 0b10_0011;
const EVIDENCE: [&str; 5] = ["digest", "kind", "media_type", "size", "subject"];
/// `digest`, `kind`, `size`.
const EVIDENCE_REQUIRED: u32 = 0b1011;
const RESCAN: [&str; 8] = [
    "database_built_at",
    "failed",
    "findings",
    "fixed_findings",
    "from_sbom",
    "images",
    "new_findings",
    "previous",
];
/// All but `previous`.
const RESCAN_REQUIRED: u32 = 0b111_1111;
/// The `verdict` strings of a signature check.
const VERDICTS: [&[u8]; 4] = [b"verified", b"untrusted", b"invalid", b"missing"];

/// Reads the schema's shapes off a [`Scan`]; every method is `None` when it cannot accept.
struct Reader<'a> {
    s: Scan<'a>,
}

impl<'a> Reader<'a> {
    /// An object whose members are among `names` and in their order (so none is unknown or
    /// repeated, and the order is canonical); `member(self, k)` reads the value of
    /// `names[k]`. Returns which members were present, bit `k` for `names[k]`.
    fn object(
        &mut self,
        names: &[&str],
        mut member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<u32> {
        if !self.s.eat(b'{') {
            return None;
        }
        let mut seen = 0u32;
        if self.s.eat(b'}') {
            return Some(seen);
        }
        let mut next = 0;
        loop {
            let key = self.plain()?;
            let k = next
                + names
                    .get(next..)?
                    .iter()
                    .position(|n| n.as_bytes() == key)?;
            next = k + 1;
            seen |= 1 << k;
            if !self.s.eat(b':') {
                return None;
            }
            member(self, k)?;
            if self.s.eat(b'}') {
                return Some(seen);
            }
            if !self.s.eat(b',') {
                return None;
            }
        }
    }

    /// An object with at least the members `required` names (bits as [`Reader::object`]).
    fn record(
        &mut self,
        names: &[&str],
        required: u32,
        member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        let seen = self.object(names, member)?;
        (seen & required == required).then_some(())
    }

    /// An array, `item` reading each element.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if !self.s.eat(b'[') {
            return None;
        }
        if self.s.eat(b']') {
            return Some(());
        }
        loop {
            item(self)?;
            if self.s.eat(b']') {
                return Some(());
            }
            if !self.s.eat(b',') {
                return None;
            }
        }
    }

    /// Any string.
    fn string(&mut self) -> Option<ScannedString<'a>> {
        self.s.string()
    }

    /// A string that is not empty.
    fn non_empty(&mut self) -> Option<()> {
        (!self.string()?.body.is_empty()).then_some(())
    }

    /// A string without escapes: its text.
    fn plain(&mut self) -> Option<&'a [u8]> {
        self.string().filter(|s| !s.escaped).map(|s| s.body)
    }

    /// A string without escapes, owned.
    fn owned(&mut self) -> Option<String> {
        std::str::from_utf8(self.plain()?).ok().map(str::to_owned)
    }

    /// A `sha256:<hex>` or `sha512:<hex>` digest.
    fn digest(&mut self) -> Option<&'a [u8]> {
        self.plain().filter(|d| is_digest(d))
    }

    /// A digest, owned.
    fn owned_digest(&mut self) -> Option<String> {
        self.owned().filter(|d| is_digest(d.as_bytes()))
    }

    /// An integer from 0 to 2^53 − 1.
    fn uint(&mut self) -> Option<u64> {
        self.s.uint()
    }

    fn entry(&mut self) -> Option<ScannedEntry> {
        let mut index = 0;
        let mut evidence = Vec::new();
        self.record(&ENTRY, ENTRY_REQUIRED, |r, k| match k {
            0 => r.array(Self::artifact),
            1 => r.bundle(),
            2 => r.array(|r| {
                evidence.push(r.evidence()?);
                Some(())
            }),
            3 | 5 | 10 => r.non_empty(),
            4 => r.uint().map(|i| index = i),
            6 => r.digest().map(drop),
            7 => r.rescan(),
            8 => r.outcome(),
            9 => (r.plain()? == ENTRY_SCHEMA.as_bytes()).then_some(()),
            _ => parse_rfc3339(std::str::from_utf8(r.plain()?).ok()?).map(drop),
        })?;
        Some(ScannedEntry { index, evidence })
    }

    fn bundle(&mut self) -> Option<()> {
        self.record(&BUNDLE, 1, |r, k| match k {
            0 => r.digest().map(drop),
            1 => r.string().map(drop),
            2 => r.uint().map(drop),
            _ => r.array(Self::signature),
        })
    }

    fn signature(&mut self) -> Option<()> {
        self.record(&SIGNATURE, 0b110, |r, k| match k {
            0 | 1 => r.string().map(drop),
            _ => r.plain().filter(|v| VERDICTS.contains(v)).map(drop),
        })
    }

    /// `{"status":"admitted"}` or `{"reason":"<not empty>","status":"rejected"}`.
    fn outcome(&mut self) -> Option<()> {
        let mut status: &[u8] = b"";
        let seen = self.object(&OUTCOME, |r, k| match k {
            0 => r.non_empty(),
            _ => r.plain().map(|s| status = s),
        })?;
        match (seen, status) {
            (0b10, b"admitted") | (0b11, b"rejected") => Some(()),
            _ => None,
        }
    }

    fn artifact(&mut self) -> Option<()> {
        self.record(&ARTIFACT, ARTIFACT_REQUIRED, |r, k| match k {
            0 => r.digest().map(drop),
            1 | 5 => r.non_empty(),
            2 | 6 => r.string().map(drop),
            // Any value (a scan summary): nested as deep as the definition's scan sees it.
            3 => r.s.value(3).then_some(()),
            _ => r.array(Self::signature),
        })
    }

    fn evidence(&mut self) -> Option<EvidenceRef> {
        let (mut digest, mut kind, mut media_type, mut size, mut subject) =
            (String::new(), String::new(), None, 0, None);
        self.record(&EVIDENCE, EVIDENCE_REQUIRED, |r, k| {
            match k {
                0 => digest = r.owned_digest()?,
                1 => kind = r.owned()?,
                2 => media_type = Some(r.owned()?),
                3 => size = r.uint()?,
                _ => subject = Some(r.owned_digest()?),
            }
            Some(())
        })?;
        Some(EvidenceRef {
            kind,
            digest,
            size,
            media_type,
            subject,
        })
    }

    fn rescan(&mut self) -> Option<()> {
        self.record(&RESCAN, RESCAN_REQUIRED, |r, k| match k {
            0 => r.string().map(drop),
            _ => r.uint().map(drop),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::{
        single_byte_edits, ArtifactRecord, Entry, EntryError, Outcome, RescanRecord,
        SignatureResult, Verdict,
    };
    use serde_json::json;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// An entry with every member the schema has, each present.
    fn full_entry() -> Entry {
        let mut e = Entry::new(
            "op \u{1}\"é\u{1f600}",
            &digest('a'),
            "reg",
            Outcome::Rejected {
                reason: "tab\there\\".into(),
            },
        );
        e.index = 7;
        e.time = "2026-01-02T03:04:05Z".into();
        e.bundle.name = Some("b\n".into());
        e.bundle.sequence = Some(9_007_199_254_740_991);
        e.bundle.signatures = vec![SignatureResult {
            signer: "issuer|subject".into(),
            verdict: Verdict::Untrusted,
            detail: Some("rekor 12".into()),
        }];
        e.policy_digest = Some(format!("sha512:{}", "c".repeat(128)));
        e.artifacts.push(ArtifactRecord {
            kind: "image".into(),
            source_ref: "r/x:1".into(),
            target_ref: Some("t/x:1".into()),
            digest: digest('b'),
            media_type: Some("application/vnd.oci.image.index.v1+json".into()),
            signatures: vec![SignatureResult {
                signer: digest('d'),
                verdict: Verdict::Missing,
                detail: None,
            }],
            scan: Some(json!({"\u{e000}": -12, "\u{1f600}": [0, null, true], "a": {}})),
        });
        e.evidence.push(EvidenceRef {
            kind: "sbom".into(),
            digest: digest('e'),
            size: 12,
            media_type: Some("application/spdx+json".into()),
            subject: Some(digest('f')),
        });
        e.rescan = Some(RescanRecord {
            database_built_at: "2026-01-01T00:00:00Z".into(),
            images: 1,
            from_sbom: 2,
            findings: 3,
            new_findings: 4,
            fixed_findings: 5,
            failed: 6,
            previous: Some(3),
        });
        e
    }

    /// Entries as they are written: admitted with the least, and with every member.
    fn written() -> Vec<Entry> {
        let mut least = Entry::new("ops", &digest('a'), "reg", Outcome::Admitted);
        least.time = "2026-01-02T03:04:05Z".into();
        let mut signed = least.clone();
        signed.bundle.signatures = full_entry().bundle.signatures;
        signed.artifacts = full_entry().artifacts;
        signed.index = 123_456;
        vec![least, signed, full_entry()]
    }

    /// What verify makes of a line: this reading, else [`Entry::from_line`].
    fn by_scan(line: &[u8]) -> Result<(u64, Vec<EvidenceRef>), EntryError> {
        match scan_entry(line) {
            Some(s) => Ok((s.index, s.evidence)),
            None => Entry::from_line(line).map(|e| (e.index, e.evidence)),
        }
    }

    /// What the definition (parse to a value, re-encode, compare, read) makes of it.
    fn by_definition(line: &[u8]) -> Result<(u64, Vec<EvidenceRef>), EntryError> {
        Entry::from_line_by_value(line).map(|e| (e.index, e.evidence))
    }

    #[test]
    fn written_entries_are_read_in_one_pass() {
        for e in written() {
            let line = e.to_line().unwrap();
            assert_eq!(
                scan_entry(&line),
                Some(ScannedEntry {
                    index: e.index,
                    evidence: e.evidence.clone()
                }),
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
    }

    /// Every single-byte deletion, duplication and substitution of written entries: the one
    /// pass never accepts what the definition refuses, and what it accepts reads the same.
    #[test]
    fn one_pass_never_accepts_what_the_definition_refuses() {
        let subs = [
            b'"', b'\\', b'0', b'1', b'9', b'-', b'.', b'e', b' ', b'{', b'}', b'[', b']', b',',
            b':', b'u', b'A', b'n', 0x1f, 0xc3,
        ];
        let mut accepted = 0;
        for e in written() {
            let line = e.to_line().unwrap();
            for m in single_byte_edits(&line, &subs) {
                if let Some(s) = scan_entry(&m) {
                    accepted += 1;
                    assert_eq!(
                        by_definition(&m),
                        Ok((s.index, s.evidence)),
                        "{}",
                        String::from_utf8_lossy(&m)
                    );
                }
            }
        }
        // Edits inside free text (operator, refs, reasons) keep a line valid: those were read.
        assert!(accepted > 1000, "{accepted}");
    }

    /// Dropping each member of each object in turn: the one pass accepts exactly when the
    /// definition does (which members are required), and with the same result.
    #[test]
    fn each_member_dropped_is_judged_as_the_definition_does() {
        let line = full_entry().to_line().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let mut paths: Vec<Vec<String>> = Vec::new();
        fn walk(v: &serde_json::Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            match v {
                serde_json::Value::Object(m) if at.last().is_none_or(|k| k != "scan") => {
                    for (k, v) in m {
                        at.push(k.clone());
                        out.push(at.clone());
                        walk(v, at, out);
                        at.pop();
                    }
                }
                serde_json::Value::Array(items) if !items.is_empty() => {
                    at.push("0".into());
                    walk(&items[0], at, out);
                    at.pop();
                }
                _ => {}
            }
        }
        walk(&value, &mut Vec::new(), &mut paths);
        assert!(paths.len() > 40, "{}", paths.len());
        for path in paths {
            let mut v = value.clone();
            let (last, parents) = path.split_last().unwrap();
            let mut at = &mut v;
            for p in parents {
                at = match at {
                    serde_json::Value::Array(items) => &mut items[0],
                    other => &mut other[p.as_str()],
                };
            }
            at.as_object_mut().unwrap().remove(last);
            let m = crate::ledger::entry::canonicalize(&v).unwrap();
            let def = by_definition(&m);
            assert_eq!(scan_entry(&m).is_some(), def.is_ok(), "without {path:?}");
            assert_eq!(by_scan(&m), def, "without {path:?}");
        }
    }

    /// Lines the one pass declines although they may be valid, and lines it must refuse:
    /// verify (the one pass, else `Entry::from_line`) decides each as the definition does.
    #[test]
    fn declined_and_refused_lines_are_decided_by_the_definition() {
        let good = String::from_utf8(full_entry().to_line().unwrap()).unwrap();
        let least = String::from_utf8(written()[0].to_line().unwrap()).unwrap();
        let sub = |from: &str, to: &str| {
            assert!(good.contains(from), "{from}");
            good.replacen(from, to, 1)
        };
        let set = |path: &[&str], to: Option<serde_json::Value>| {
            let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
            let (last, parents) = path.split_last().unwrap();
            let mut at = &mut v;
            for p in parents {
                at = match at {
                    serde_json::Value::Array(items) => &mut items[p.parse::<usize>().unwrap()],
                    other => &mut other[*p],
                };
            }
            let obj = at.as_object_mut().unwrap();
            match to {
                Some(to) => obj.insert((*last).to_owned(), to),
                None => obj.remove(*last),
            };
            String::from_utf8(crate::ledger::entry::canonicalize(&v).unwrap()).unwrap()
        };
        let null = Some(serde_json::Value::Null);
        let rows: Vec<(&str, String, bool)> = vec![
            ("the line", good.clone(), true),
            ("admitted", least.clone(), true),
            (
                "policy_digest null",
                set(&["policy_digest"], null.clone()),
                false,
            ),
            (
                "media_type null",
                set(&["artifacts", "0", "media_type"], null.clone()),
                false,
            ),
            (
                "scan null",
                set(&["artifacts", "0", "scan"], null.clone()),
                true,
            ),
            (
                "signatures null",
                set(&["artifacts", "0", "signatures"], null.clone()),
                false,
            ),
            ("rescan null", set(&["rescan"], null.clone()), false),
            (
                "escaped evidence kind",
                set(&["evidence", "0", "kind"], Some(json!("sb\u{1}om"))),
                false,
            ),
            (
                "escape in a digest",
                sub(&digest('e'), &format!("sha256:\\n{}", "e".repeat(63))),
                false,
            ),
            (
                "escape in a member name",
                sub("\"kind\":\"sbom\"", "\"k\\u0001ind\":\"sbom\""),
                false,
            ),
            ("unknown member", sub("\"index\":7", "\"indey\":7"), false),
            ("unknown member last", set(&["zzz"], Some(json!(1))), false),
            (
                "unknown member of an artifact",
                set(&["artifacts", "0", "size"], Some(json!(1))),
                false,
            ),
            (
                "duplicate member",
                sub("\"index\":7", "\"index\":7,\"index\":7"),
                false,
            ),
            (
                "members out of order",
                sub("\"index\":7,", "").replacen(
                    "\"policy_digest\"",
                    "\"index\":7,\"policy_digest\"",
                    1,
                ),
                false,
            ),
            ("negative index", set(&["index"], Some(json!(-7))), false),
            (
                "negative size",
                set(&["evidence", "0", "size"], Some(json!(-12))),
                false,
            ),
            (
                "index as a string",
                set(&["index"], Some(json!("7"))),
                false,
            ),
            (
                "index 2^53",
                sub("\"index\":7", "\"index\":9007199254740992"),
                false,
            ),
            ("empty operator", set(&["operator"], Some(json!(""))), false),
            (
                "empty reason",
                set(&["result", "reason"], Some(json!(""))),
                false,
            ),
            (
                "rejected without a reason",
                set(&["result", "reason"], None),
                false,
            ),
            (
                "admitted with a reason",
                set(&["result", "status"], Some(json!("admitted"))),
                false,
            ),
            (
                "unknown status",
                least.replacen("admitted", "accepted", 1),
                false,
            ),
            (
                "unknown verdict",
                set(
                    &["bundle", "signatures", "0", "verdict"],
                    Some(json!("trusted")),
                ),
                false,
            ),
            (
                "escaped verdict",
                set(
                    &["bundle", "signatures", "0", "verdict"],
                    Some(json!("missing\n")),
                ),
                false,
            ),
            (
                "February 30th",
                set(&["time"], Some(json!("2026-02-30T03:04:05Z"))),
                false,
            ),
            (
                "time with an offset",
                set(&["time"], Some(json!("2026-01-02T03:04:05+00:00"))),
                false,
            ),
            ("upper-case digest", sub(&digest('b'), &digest('B')), false),
            ("short digest", sub(&digest('b'), &digest('b')[..70]), false),
            (
                "sha1 digest",
                sub(&digest('b'), &format!("sha1:{}", "b".repeat(40))),
                false,
            ),
            ("other schema", sub("entry/v1", "entry/v2"), false),
            (
                "empty artifact kind",
                set(&["artifacts", "0", "kind"], Some(json!(""))),
                false,
            ),
            (
                "empty evidence kind",
                set(&["evidence", "0", "kind"], Some(json!(""))),
                true,
            ),
            (
                "evidence subject not a digest",
                set(&["evidence", "0", "subject"], Some(json!("f"))),
                false,
            ),
            ("scan with a fraction", sub("-12", "-1.5"), false),
            (
                "scan nested deep",
                sub(
                    "\"a\":{}",
                    &format!("\"a\":{}{}", "[".repeat(70), "]".repeat(70)),
                ),
                false,
            ),
            (
                "scan nested to the limit",
                sub(
                    "\"a\":{}",
                    &format!("\"a\":{}{}", "[".repeat(60), "]".repeat(60)),
                ),
                true,
            ),
            (
                "bundle as an array",
                set(&["bundle"], Some(json!([{"digest": digest('a')}]))),
                false,
            ),
            (
                "rescan without images",
                set(&["rescan", "images"], None),
                false,
            ),
            ("raw control byte", sub("b\\n", "b\n"), false),
            ("trailing byte", format!("{good} "), false),
            ("two values", format!("{good}{good}"), false),
            ("empty object", "{}".into(), false),
            ("empty line", String::new(), false),
        ];
        for (what, line, accepted) in rows {
            let line = line.as_bytes();
            let def = by_definition(line);
            assert_eq!(scan_entry(line).is_some(), accepted, "{what}: the one pass");
            assert_eq!(
                by_scan(line),
                def,
                "{what}: verify's reading and the definition"
            );
        }
    }
}
