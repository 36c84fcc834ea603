//! YAML and JSON in and out of template values, as Helm's `toYaml`/`fromYaml`/`toJson` give
//! them (sigs.k8s.io/yaml: through JSON, so numbers read as float64 and keys print sorted).

use std::rc::Rc;

use super::value::{format_float_g, format_float_json, Map, Object, Value};

/// A YAML error's message on one line.
pub fn yaml_error_line(e: &serde_yaml::Error) -> String {
    e.to_string().replace('\n', " ")
}

/// Parses one YAML document into a value (`{}` for an empty document).
pub fn from_yaml(text: &str) -> Result<Value, serde_yaml::Error> {
    Ok(from_serde_yaml(&parse_lenient(text)?))
}

/// Parses one YAML document as Go's yaml.v2 reads it: a repeated key keeps its last value
/// (serde_yaml refuses it, Helm and Kubernetes tooling accept it); merge keys applied.
pub fn parse_lenient(text: &str) -> Result<serde_yaml::Value, serde_yaml::Error> {
    let Lenient(mut v) = serde_yaml::from_str(text)?;
    v.apply_merge()?;
    Ok(v)
}

struct Lenient(serde_yaml::Value);

impl<'de> serde::Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor).map(Lenient)
    }
}

struct LenientVisitor;

impl<'de> serde::de::Visitor<'de> for LenientVisitor {
    type Value = serde_yaml::Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(serde_yaml::Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(serde_yaml::Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(serde_yaml::Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_yaml::Value::Number(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(serde_yaml::Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(serde_yaml::Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_yaml::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_yaml::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Lenient(v)) = a.next_element()? {
            out.push(v);
        }
        Ok(serde_yaml::Value::Sequence(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_yaml::Mapping::new();
        while let Some((Lenient(k), Lenient(v))) = a.next_entry()? {
            out.insert(k, v);
        }
        Ok(serde_yaml::Value::Mapping(out))
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        use serde::de::VariantAccess as _;
        let (_tag, variant): (String, _) = a.variant()?;
        variant.newtype_variant::<Lenient>().map(|Lenient(v)| v)
    }
}

/// Converts a parsed YAML value.
pub fn from_serde_yaml(v: &serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Nil,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        Y::String(s) => Value::str(s.as_str()),
        Y::Sequence(s) => Value::list(s.iter().map(from_serde_yaml).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(yaml_key(k), from_serde_yaml(v));
            }
            Value::map(out)
        }
        Y::Tagged(t) => from_serde_yaml(&t.value),
    }
}

fn yaml_key(k: &serde_yaml::Value) -> String {
    use serde_yaml::Value as Y;
    match k {
        Y::String(s) => s.clone(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format_float_g(f),
            _ => n.to_string(),
        },
        Y::Null => "null".into(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Parses JSON into a value (numbers as float64, as Go's decoder gives them).
pub fn from_json(text: &str) -> Result<Value, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    Ok(from_serde_json(&v))
}

fn from_serde_json(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::str(s.as_str()),
        J::Array(a) => Value::list(a.iter().map(from_serde_json).collect()),
        J::Object(o) => Value::map(
            o.iter()
                .map(|(k, v)| (k.clone(), from_serde_json(v)))
                .collect(),
        ),
    }
}

/// Go `encoding/json` output (sorted keys, `<>&` escaped), compact or indented.
pub fn to_json(v: &Value, pretty: bool, escape_html: bool) -> String {
    let mut out = String::new();
    write_json(v, &mut out, pretty, escape_html, 0);
    out
}

fn json_str(s: &str, out: &mut String, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(v: &Value, out: &mut String, pretty: bool, esc: bool, ind: usize) {
    let nl = |out: &mut String, n: usize| {
        if pretty {
            out.push('\n');
            out.push_str(&"  ".repeat(n));
        }
    };
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_json(*f)),
        Value::Str(s) => json_str(s, out, esc),
        Value::List(l) => {
            if l.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, ind + 1);
                write_json(x, out, pretty, esc, ind + 1);
            }
            nl(out, ind);
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.borrow();
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, ind + 1);
                json_str(k, out, esc);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_json(x, out, pretty, esc, ind + 1);
            }
            nl(out, ind);
            out.push('}');
        }
        Value::Obj(o) => match &**o {
            Object::ApiVersions(a) => {
                let l = Value::list(a.iter().map(|s| Value::str(s.as_str())).collect());
                write_json(&l, out, pretty, esc, ind)
            }
            Object::Files(f) => {
                let m: Map = f
                    .iter()
                    .map(|(k, b)| {
                        use base64::Engine as _;
                        (
                            k.clone(),
                            Value::str(base64::engine::general_purpose::STANDARD.encode(b)),
                        )
                    })
                    .collect();
                write_json(&Value::map(m), out, pretty, esc, ind)
            }
            other => json_str(&Value::Obj(Rc::new(clone_obj(other))).go_string(), out, esc),
        },
    }
}

fn clone_obj(o: &Object) -> Object {
    match o {
        Object::KubeVersion {
            version,
            major,
            minor,
        } => Object::KubeVersion {
            version: version.clone(),
            major: major.clone(),
            minor: minor.clone(),
        },
        Object::Semver(v) => Object::Semver(v.clone()),
        Object::ApiVersions(a) => Object::ApiVersions(a.clone()),
        Object::Files(f) => Object::Files(f.clone()),
    }
}

/// YAML as sigs.k8s.io/yaml writes it (block style, sorted keys, sequences not indented under
/// their key), with the final newline (Helm's `toYaml` trims it).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Map(m) if !m.borrow().is_empty() => write_map(&m.borrow(), &mut out, 0),
        Value::List(l) if !l.is_empty() => write_list(l, &mut out, 0),
        other => {
            // A top-level block scalar's lines are indented by 2, as yaml.v2 writes them.
            write_scalar(other, &mut out, 2);
            out.push('\n');
        }
    }
    out
}

fn write_map(m: &Map, out: &mut String, ind: usize) {
    for (k, v) in m {
        out.push_str(&" ".repeat(ind));
        write_plain_or_quoted(k, out);
        out.push(':');
        write_child(v, out, ind, false);
    }
}

fn write_list(l: &[Value], out: &mut String, ind: usize) {
    for v in l {
        out.push_str(&" ".repeat(ind));
        out.push('-');
        write_child(v, out, ind, true);
    }
}

/// Writes what follows `key:` or `-`.
fn write_child(v: &Value, out: &mut String, ind: usize, in_list: bool) {
    match v {
        Value::Map(m) if !m.borrow().is_empty() => {
            if in_list {
                // `- a: 1` then the other keys under it.
                let mut sub = String::new();
                write_map(&m.borrow(), &mut sub, ind + 2);
                out.push(' ');
                out.push_str(&sub[ind + 2..]);
            } else {
                out.push('\n');
                write_map(&m.borrow(), out, ind + 2);
            }
        }
        Value::List(l) if !l.is_empty() => {
            if in_list {
                let mut sub = String::new();
                write_list(l, &mut sub, ind + 2);
                out.push(' ');
                out.push_str(&sub[ind + 2..]);
            } else {
                out.push('\n');
                write_list(l, out, ind);
            }
        }
        other => {
            out.push(' ');
            write_scalar(other, out, ind + 2);
            out.push('\n');
        }
    }
}

fn write_scalar(v: &Value, out: &mut String, ind: usize) {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e21 {
                out.push_str(&format!("{}", *f as i128));
            } else {
                out.push_str(&format_float_g(*f));
            }
        }
        Value::Str(s) => write_string(s, out, ind),
        Value::Map(_) => out.push_str("{}"),
        Value::List(_) => out.push_str("[]"),
        Value::Obj(_) => {
            let mut j = String::new();
            write_json(v, &mut j, false, false, 0);
            out.push_str(&j);
        }
    }
}

fn write_string(s: &str, out: &mut String, ind: usize) {
    if s.contains('\n') && literal_ok(s) {
        let body = s.trim_end_matches('\n');
        let trailing = s.len() - body.len();
        out.push('|');
        match trailing {
            0 => out.push('-'),
            1 => {}
            _ => out.push('+'),
        }
        for line in s[..if trailing > 1 {
            s.len() - 1
        } else {
            body.len()
        }]
            .split('\n')
        {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&" ".repeat(ind));
                out.push_str(line);
            }
        }
        return;
    }
    write_plain_or_quoted(s, out);
}

fn literal_ok(s: &str) -> bool {
    !s.starts_with([' ', '\t', '\n'])
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
        && !s.split('\n').any(|l| l.ends_with([' ', '\t']))
}

/// yaml.v2's choice: plain when it reads back the same; double quotes for what would read as
/// another type (`"yes"`, `"1"`, `""`) or has control characters; single quotes otherwise
/// (so `{{ include "x" . }}` in a value stays usable by `tpl`).
fn write_plain_or_quoted(s: &str, out: &mut String) {
    if plain_ok(s) {
        out.push_str(s);
    } else if s.is_empty()
        || resolves_non_string(s)
        || s.chars()
            .any(|c| (c.is_control() && c != '\t') || c == '\u{feff}')
    {
        json_str(s, out, false);
    } else {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    }
}

fn resolves_non_string(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | "null"
            | "~"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | ".nan"
    ) {
        return true;
    }
    let t = s.trim_start_matches(['-', '+']);
    t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && t.chars()
            .all(|c| c.is_ascii_hexdigit() || "._:xXoOeE+-".contains(c))
}

/// Whether a string can be written without quotes and still read back as the same string
/// (YAML 1.1 resolution, as yaml.v2 applies it).
fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s.len() > 1000 || resolves_non_string(s) {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first.is_whitespace() {
        return false;
    }
    if s.ends_with([' ', ':', '\t']) || s.contains(": ") || s.contains(" #") || s.contains(":\t") {
        return false;
    }
    if s.chars().any(|c| c.is_control() || c == '\u{feff}') {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_keep_the_last() {
        let v = from_yaml("a: 1\na: 2\nb: {c: x, c: y}\n").unwrap();
        assert_eq!(to_json(&v, false, false), r#"{"a":2,"b":{"c":"y"}}"#);
    }

    #[test]
    fn yaml_round_trips_tricky_strings() {
        let mut m = Map::new();
        for s in [
            "yes",
            "1",
            "",
            "n",
            "a: b",
            "- x",
            "multi\nline\n",
            "x #y",
            "1e3",
            "0x1f",
            "ok",
        ] {
            m.insert(format!("k{s}"), Value::str(s));
        }
        m.insert(
            "list".into(),
            Value::list(vec![Value::str("a"), Value::map(Map::new())]),
        );
        let v = Value::map(m);
        let text = to_yaml(&v);
        let back = from_yaml(&text).unwrap();
        assert_eq!(
            to_json(&back, false, false),
            to_json(&v, false, false),
            "{text}"
        );
    }
}
