//! Finds every `image:` value in block-style YAML text with its byte position, so `pin` can
//! replace just those scalars and keep comments and formatting. The scan follows indentation
//! only; `pin` checks what it found against a real YAML parse of the same text.

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// Plain.
    Plain,
    /// `'single'`.
    Single,
    /// `"double"`.
    Double,
}

/// A scalar value in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    /// 1-based line.
    pub line: usize,
    /// Byte range of the token (quotes included) in the text; empty for a missing value.
    pub range: std::ops::Range<usize>,
    /// The value, unquoted.
    pub value: String,
    /// How it was written.
    pub quote: Quote,
}

/// One `image:` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSite {
    /// `image: REF`.
    Ref(Scalar),
    /// `image:` with a nested mapping (Helm: registry, repository, tag, digest).
    Map {
        /// Line of the `image:` key.
        line: usize,
        /// The fields found, by name.
        fields: Vec<(String, Scalar)>,
    },
}

/// The keys of a Helm image mapping that `pin` reads and writes.
pub const IMAGE_FIELDS: [&str; 4] = ["registry", "repository", "tag", "digest"];

/// Scans `text` for `image:` entries, in document order.
pub fn scan(text: &str) -> Vec<ImageSite> {
    let mut sites: Vec<ImageSite> = Vec::new();
    // (column of the key, key, index into `sites` when it is an `image:` mapping)
    let mut stack: Vec<(usize, String, Option<usize>)> = Vec::new();
    let mut block_scalar_above: Option<usize> = None;
    let mut offset = 0usize;
    for (n, raw) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if let Some(limit) = block_scalar_above {
            if rest.is_empty() || indent > limit {
                continue;
            }
            block_scalar_above = None;
        }
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if indent == 0 && (rest == "---" || rest.starts_with("--- ") || rest == "...") {
            stack.clear();
            continue;
        }
        // Sequence dashes: the content starts after them.
        let mut col = indent;
        let mut content = rest;
        while content == "-" || content.starts_with("- ") {
            let after = content[1..].trim_start_matches(' ');
            col += content.len() - after.len();
            content = after;
        }
        if content.starts_with('|') || content.starts_with('>') {
            block_scalar_above = Some(indent); // `- |`: a block scalar as a sequence item
            continue;
        }
        let Some((key, value_col)) = split_key(content) else {
            continue;
        };
        let key_col = col;
        while stack.last().is_some_and(|(c, _, _)| *c >= key_col) {
            stack.pop();
        }
        let value_start = col + value_col;
        let value_text = &line[value_start..];
        let trimmed = value_text.trim_start_matches(' ');
        let vstart = line_start + value_start + (value_text.len() - trimmed.len());
        let empty = trimmed.is_empty() || trimmed.starts_with('#');
        if trimmed.starts_with('|') || trimmed.starts_with('>') {
            block_scalar_above = Some(key_col);
            continue;
        }
        let parent_image = stack.last().and_then(|(_, _, site)| *site);
        if key == "image" {
            if empty {
                sites.push(ImageSite::Map {
                    line: n + 1,
                    fields: Vec::new(),
                });
                stack.push((key_col, key, Some(sites.len() - 1)));
            } else if let Some(s) = scalar(trimmed, vstart, n + 1) {
                sites.push(ImageSite::Ref(s));
            }
            continue;
        }
        if let Some(i) = parent_image {
            if IMAGE_FIELDS.contains(&key.as_str()) {
                let s = if empty {
                    let at = line_start + line.len();
                    Some(Scalar {
                        line: n + 1,
                        range: at..at,
                        value: String::new(),
                        quote: Quote::Plain,
                    })
                } else {
                    scalar(trimmed, vstart, n + 1)
                };
                if let (Some(s), Some(ImageSite::Map { fields, .. })) = (s, sites.get_mut(i)) {
                    fields.push((key.clone(), s));
                }
            }
        }
        if empty {
            stack.push((key_col, key, None));
        }
    }
    sites
}

/// `key: …` → the key and the column just after the colon.
fn split_key(content: &str) -> Option<(String, usize)> {
    let (key, after) = match content.as_bytes().first()? {
        q @ (b'"' | b'\'') => {
            let end = content[1..].find(*q as char)? + 1;
            (content[1..end].to_string(), end + 1)
        }
        _ => {
            let end = content.find(':')?;
            let k = &content[..end];
            if k.is_empty() || k.contains([' ', '{', '[', '#']) {
                return None;
            }
            (k.to_string(), end)
        }
    };
    let rest = &content[after..];
    if rest == ":" || rest.starts_with(": ") {
        Some((key, after + 1))
    } else {
        None
    }
}

/// A one-line scalar at the start of `t` (which begins at byte `at`); `None` for what this
/// scan does not read (flow collections, anchors, tags, multi-line quotes).
fn scalar(t: &str, at: usize, line: usize) -> Option<Scalar> {
    let (value, len, quote) = match t.as_bytes().first()? {
        b'"' => {
            let mut out = String::new();
            let mut chars = t[1..].char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 2);
                        break;
                    }
                    '\\' => out.push(chars.next()?.1),
                    c => out.push(c),
                }
            }
            (out, end?, Quote::Double)
        }
        b'\'' => {
            let mut out = String::new();
            let b = t.as_bytes();
            let mut i = 1;
            loop {
                match b.get(i)? {
                    b'\'' if b.get(i + 1) == Some(&b'\'') => {
                        out.push('\'');
                        i += 2;
                    }
                    b'\'' => break,
                    _ => {
                        let c = t[i..].chars().next()?;
                        out.push(c);
                        i += c.len_utf8();
                    }
                }
            }
            (out, i + 1, Quote::Single)
        }
        b'{' | b'[' | b'&' | b'*' | b'!' | b'|' | b'>' => return None,
        _ => {
            let end = t.find(" #").unwrap_or(t.len());
            let v = t[..end].trim_end();
            (v.to_string(), v.len(), Quote::Plain)
        }
    };
    Some(Scalar {
        line,
        range: at..at + len,
        value,
        quote,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> Vec<(usize, String)> {
        scan(text)
            .into_iter()
            .filter_map(|s| match s {
                ImageSite::Ref(s) => {
                    assert_eq!(
                        &text[s.range.clone()].trim_matches(['"', '\'']),
                        &s.value.as_str()
                    );
                    Some((s.line, s.value))
                }
                ImageSite::Map { .. } => None,
            })
            .collect()
    }

    #[test]
    fn finds_images_in_compact_and_indented_sequences_and_skips_block_scalars() {
        let text = "spec:\n  containers:\n  - name: a\n    image: reg.example/a:1 # note\n    args:\n    - |\n      image: not-me\n  initContainers:\n    - image: \"reg.example/b:2\"\n      name: b\n---\nimage: 'reg.example/c:3'\n";
        assert_eq!(
            refs(text),
            vec![
                (4, "reg.example/a:1".to_string()),
                (9, "reg.example/b:2".to_string()),
                (12, "reg.example/c:3".to_string())
            ]
        );
    }

    #[test]
    fn reads_helm_image_mappings_and_ignores_flow_style() {
        let text = "image:\n  registry: docker.io\n  repository: bitnami/nginx\n  tag: \"1.25\"\n  digest: \"\"\n  pullPolicy: IfNotPresent\nother: {image: x}\n";
        let sites = scan(text);
        assert_eq!(sites.len(), 1);
        let ImageSite::Map { line, fields } = &sites[0] else {
            panic!("not a map: {sites:?}")
        };
        assert_eq!(*line, 1);
        let names: Vec<_> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("registry", "docker.io"),
                ("repository", "bitnami/nginx"),
                ("tag", "1.25"),
                ("digest", "")
            ]
        );
    }
}
