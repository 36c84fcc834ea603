//! The report page's HTML: plain functions from report data to text.
//!
//! The page loads nothing: styles are inline, and its one script (the digest search box) is
//! allowed by its hash in a `Content-Security-Policy` that forbids everything else, so even a
//! value that slipped past escaping could not run a script or fetch anything. Every value from
//! the ledger goes through [`escape`]; bundle names, references, reasons and details are
//! chosen by whoever made the bundle.

use std::collections::HashSet;
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;

use super::{ReportEntry, ReportHeader};
use crate::ledger::entry::{Entry, Outcome, SignatureResult, Verdict};

/// The search box: hides every entry whose text does not contain the query and jumps to a
/// digest's anchor when the query is one; `report.html?q=…` opens with a query filled in.
const SCRIPT: &str = r#"
const q = document.getElementById('q');
const count = document.getElementById('count');
q.addEventListener('input', () => {
  const v = q.value.trim().toLowerCase();
  let shown = 0;
  for (const e of document.querySelectorAll('section.entry')) {
    const hit = v === '' || e.textContent.toLowerCase().includes(v);
    e.hidden = !hit;
    if (hit) shown++;
  }
  count.textContent = v === '' ? '' : shown + ' matching';
  const a = v && document.getElementById(v);
  if (a) a.scrollIntoView();
});
const given = new URLSearchParams(location.search).get('q');
if (given) { q.value = given; q.dispatchEvent(new Event('input')); }
"#;

const STYLE: &str = r#"
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em;color:#222}
h1{font-size:1.4em}
code,.d{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}
.status{padding:.8em 1em;border-radius:6px;font-size:1.2em;font-weight:bold;margin:1em 0}
.ok{background:#e3f6e3;border:2px solid #2a7d2a}
.fail{background:#fde2e2;border:3px solid #b00020;color:#b00020}
table{border-collapse:collapse;width:100%;margin:.4em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
section.entry{border:1px solid #bbb;border-radius:6px;margin:1em 0;padding:.5em 1em}
section.problem{border:3px solid #b00020}
.tag{display:inline-block;padding:0 .4em;border-radius:4px;font-size:.85em;font-weight:bold}
.admitted,.verified{background:#e3f6e3}
.rejected,.invalid,.missing,.bad{background:#fde2e2;color:#b00020}
.untrusted,.rescan{background:#fff3cd}
:target{background:#ffff8c}
#search{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc}
#q{width:60%;font-size:1em;padding:.3em}
"#;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's start: title, verification status, checkpoint, search box.
pub fn head(h: &ReportHeader) -> String {
    let script_hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()));
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'\">\
         <title>airlock ledger report: {origin}</title><style>{STYLE}</style></head><body>\n\
         <h1>Provenance ledger <code>{origin}</code></h1>\n",
        origin = escape(&h.origin),
    );
    if h.verified {
        let _ = writeln!(
            s,
            "<div class=\"status ok\" id=\"status\">Verification OK: all {} entries match \
             the signed checkpoint</div>",
            h.entries
        );
    } else {
        let _ = write!(
            s,
            "<div class=\"status fail\" id=\"status\">Verification FAILED: {} problem(s); \
             do not trust the entries below</div>\n<ol class=\"problems\">",
            h.problems.len()
        );
        for p in &h.problems {
            let _ = write!(
                s,
                "<li><span class=\"tag bad\">{}</span> {}</li>",
                escape(&p.kind),
                escape(&p.message)
            );
        }
        s.push_str("</ol>\n");
    }
    s.push_str("<table class=\"summary\">");
    row(&mut s, "Ledger", &code(&h.ledger));
    row(&mut s, "Origin", &code(&h.origin));
    let from = if h.vkey_given {
        "given by the auditor"
    } else {
        "from the ledger directory itself: pass --vkey from a source you trust"
    };
    row(
        &mut s,
        "Verifier key",
        &format!("{} ({})", code(&h.vkey), escape(from)),
    );
    row(&mut s, "Entry lines", &h.entries.to_string());
    row(&mut s, "Root of all lines", &code(&h.root));
    match &h.checkpoint {
        Some(cp) => {
            let signature = if cp.signature_verified {
                tag("verified", "signature verified")
            } else {
                tag("bad", "signature NOT verified with this key")
            };
            let entries = if cp.matches_entries {
                tag("verified", "matches the entries")
            } else {
                tag("bad", "does NOT match the entries")
            };
            let state = format!("{signature} {entries}");
            row(
                &mut s,
                "Checkpoint",
                &format!(
                    "size {} {state}<br>root <code>{}</code> (hex <code>{}</code>)<br>signed by {}",
                    cp.size,
                    escape(&cp.root),
                    escape(&cp.root_hex),
                    list(&cp.signers)
                ),
            );
        }
        None => row(&mut s, "Checkpoint", &tag("bad", "missing or unreadable")),
    }
    if !h.cosigned_by.is_empty() {
        row(&mut s, "Cosigned by", &list(&h.cosigned_by));
    }
    for w in &h.warnings {
        row(&mut s, "Warning", &escape(w));
    }
    s.push_str("</table>\n");
    let _ = write!(
        s,
        "<div id=\"search\"><label for=\"q\">Search by digest, reference or name: </label>\
         <input id=\"q\" type=\"search\" placeholder=\"sha256:…\" autocomplete=\"off\"> \
         <span id=\"count\"></span></div>\n<main>\n"
    );
    s
}

/// One entry line. `position` is the line's place in the file; `problems` are the indexes
/// verification complained about; `seen` holds the digests already given an anchor, so each
/// digest's `id` is its first appearance.
pub fn entry(
    item: &ReportEntry,
    position: u64,
    problems: &HashSet<u64>,
    seen: &mut HashSet<String>,
) -> String {
    let flagged = problems.contains(&position);
    let class = if flagged { "entry problem" } else { "entry" };
    let mut s = format!("<section class=\"{class}\" id=\"entry-{position}\">");
    match item {
        ReportEntry::Unreadable { reason, .. } => {
            let _ = write!(
                s,
                "<h2>Line {position} {}</h2><p>{}</p>",
                tag("bad", "not an entry"),
                escape(reason)
            );
        }
        ReportEntry::Entry(e) => entry_body(&mut s, e, position, flagged, seen),
    }
    s.push_str("</section>\n");
    s
}

fn entry_body(s: &mut String, e: &Entry, position: u64, flagged: bool, seen: &mut HashSet<String>) {
    let result = match (&e.result, &e.rescan) {
        (_, Some(_)) => tag("rescan", "rescan"),
        (Outcome::Admitted, None) => tag("admitted", "admitted"),
        (Outcome::Rejected { reason }, None) => {
            format!("{} {}", tag("rejected", "rejected"), escape(reason))
        }
    };
    let _ = write!(s, "<h2>Entry {} {result}", e.index);
    if flagged {
        s.push_str(&tag("bad", "verification problem"));
    }
    if e.index != position {
        let _ = write!(s, " {}", tag("bad", &format!("found at line {position}")));
    }
    s.push_str("</h2><table>");
    row(s, "Time", &escape(&e.time));
    row(s, "Operator", &escape(&e.operator));
    row(s, "Importer", &escape(&e.importer));
    let label = if e.rescan.is_some() {
        "Database"
    } else {
        "Bundle"
    };
    let mut bundle = anchor(&e.bundle.digest, seen);
    if let Some(n) = &e.bundle.name {
        let _ = write!(bundle, " name <code>{}</code>", escape(n));
    }
    if let Some(q) = e.bundle.sequence {
        let _ = write!(bundle, " sequence {q}");
    }
    row(s, label, &bundle);
    if !e.bundle.signatures.is_empty() {
        row(s, "Bundle signers", &signatures(&e.bundle.signatures));
    }
    if let Some(p) = &e.policy_digest {
        row(s, "Policy", &code(p));
    }
    row(s, "Target", &code(&e.target_registry));
    if let Some(r) = &e.rescan {
        let prev = r
            .previous
            .map_or_else(|| "none".to_owned(), |p| p.to_string());
        row(
            s,
            "Rescan",
            &format!(
                "database built {} · {} images ({} from SBOM) · {} findings ({} new, {} fixed) \
                 · {} failing the policy · previous rescan {prev}",
                escape(&r.database_built_at),
                r.images,
                r.from_sbom,
                r.findings,
                r.new_findings,
                r.fixed_findings,
                r.failed
            ),
        );
    }
    s.push_str("</table>");
    if !e.artifacts.is_empty() {
        s.push_str(
            "<table class=\"artifacts\"><tr><th>Kind</th><th>Source → target</th>\
             <th>Digest</th><th>Signatures</th><th>Scan</th></tr>",
        );
        for a in &e.artifacts {
            let target = a.target_ref.as_deref().map_or_else(
                || "<em>not pushed</em>".to_owned(),
                |t| format!("<code>{}</code>", escape(t)),
            );
            let media = a
                .media_type
                .as_deref()
                .map_or_else(String::new, |m| format!("<br><small>{}</small>", escape(m)));
            let _ = write!(
                s,
                "<tr><td>{}</td><td><code>{}</code><br>→ {target}</td><td>{}{media}</td>\
                 <td>{}</td><td>{}</td></tr>",
                escape(&a.kind),
                escape(&a.source_ref),
                anchor(&a.digest, seen),
                signatures(&a.signatures),
                a.scan.as_ref().map_or_else(|| "-".to_owned(), scan_counts)
            );
        }
        s.push_str("</table>");
    }
    if !e.evidence.is_empty() {
        s.push_str(
            "<table class=\"evidence\"><tr><th>Evidence</th><th>Digest</th><th>Size</th></tr>",
        );
        for ev in &e.evidence {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&ev.kind),
                anchor(&ev.digest, seen),
                ev.size
            );
        }
        s.push_str("</table>");
    }
}

/// The page's end (and the search script).
pub fn tail() -> String {
    format!("</main>\n<script>{SCRIPT}</script>\n</body></html>\n")
}

fn row(s: &mut String, name: &str, value_html: &str) {
    let _ = write!(s, "<tr><th>{}</th><td>{value_html}</td></tr>", escape(name));
}

fn code(v: &str) -> String {
    format!("<code>{}</code>", escape(v))
}

fn tag(class: &str, text: &str) -> String {
    format!("<span class=\"tag {class}\">{}</span>", escape(text))
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "nobody".to_owned();
    }
    items.iter().map(|i| code(i)).collect::<Vec<_>>().join(", ")
}

/// A digest, with its `id` anchor at its first appearance on the page.
fn anchor(digest: &str, seen: &mut HashSet<String>) -> String {
    if seen.insert(digest.to_owned()) {
        format!(
            "<code class=\"d\" id=\"{0}\"><a href=\"#{0}\">{0}</a></code>",
            escape(digest)
        )
    } else {
        format!(
            "<code class=\"d\"><a href=\"#{0}\">{0}</a></code>",
            escape(digest)
        )
    }
}

fn signatures(sigs: &[SignatureResult]) -> String {
    if sigs.is_empty() {
        return "-".to_owned();
    }
    sigs.iter()
        .map(|g| {
            let (class, word) = match g.verdict {
                Verdict::Verified => ("verified", "verified"),
                Verdict::Untrusted => ("untrusted", "untrusted"),
                Verdict::Invalid => ("invalid", "invalid"),
                Verdict::Missing => ("missing", "missing"),
            };
            let detail = g
                .detail
                .as_deref()
                .map_or_else(String::new, |d| format!(" ({})", escape(d)));
            format!(
                "{} <code>{}</code>{detail}",
                tag(class, word),
                escape(&g.signer)
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// A scan summary (its shape is the scanner's): scalars as `name value`, nested objects with
/// dotted names, one line per array element.
fn scan_counts(v: &Value) -> String {
    fn flat(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flat(&name, x, out);
                }
            }
            Value::String(t) => out.push(format!("{} {}", escape(prefix), escape(t))),
            other => out.push(format!("{} {}", escape(prefix), escape(&other.to_string()))),
        }
    }
    match v {
        Value::Array(items) => items
            .iter()
            .map(scan_counts)
            .collect::<Vec<_>>()
            .join("<br>"),
        v => {
            let mut parts = Vec::new();
            flat("", v, &mut parts);
            parts.join(" · ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn scan_counts_flatten_objects_and_arrays() {
        let v = serde_json::json!([{"critical": 1, "high": 2, "subject": "<b>"}, {"low": 3}]);
        assert_eq!(
            scan_counts(&v),
            "critical 1 · high 2 · subject &lt;b&gt;<br>low 3"
        );
    }

    #[test]
    fn a_digest_gets_one_anchor() {
        let mut seen = HashSet::new();
        let a = anchor("sha256:ab", &mut seen);
        let b = anchor("sha256:ab", &mut seen);
        assert!(a.contains("id=\"sha256:ab\""), "{a}");
        assert!(!b.contains("id="), "{b}");
    }
}
