//! The functions templates call: Go's builtins, the sprig functions charts use, Helm's own
//! (`include`, `tpl`, `required`, `fail`, `toYaml`, `lookup`, …) and the methods of Helm's
//! objects (`.Files.Get`, `.Capabilities.APIVersions.Has`, …).
//!
//! Functions that would make output depend on the moment or on chance (`randAlphaNum`,
//! `genCA`, `now`, `uuidv4`) return fixed placeholders: no image reference depends on them,
//! and the same chart must give the same answer every time.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;
use sha2::Digest as _;

use super::exec::{Exec, MAX_STRING};
use super::parse::Arg;
use super::printf::{go_quote, sprintf};
use super::semver;
use super::value::{Map, Object, Value};
use super::yaml;
use super::TemplateError;

type R = Result<Value, TemplateError>;

/// Calls the function `name` with unevaluated `args` (and the piped value `fin` last).
pub fn call(ex: &mut Exec, name: &str, args: &[Arg], dot: &Value, fin: Option<Value>) -> R {
    // Short-circuit builtins evaluate lazily.
    match name {
        "and" | "or" => {
            let want = name == "or";
            let n = args.len() + usize::from(fin.is_some());
            if n == 0 {
                return Err(ex.err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                )));
            }
            let mut last = Value::Nil;
            for a in args {
                last = ex.arg(a, dot)?;
                if last.truthy() == want {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        _ => {}
    }
    let mut v = Vec::with_capacity(args.len() + 1);
    for a in args {
        v.push(ex.arg(a, dot)?);
    }
    if let Some(f) = fin {
        v.push(f);
    }
    let r = apply(ex, name, v, dot)?;
    if let Value::Str(s) = &r {
        if s.len() > MAX_STRING {
            return Err(ex.err(format!("{name}: result larger than 64 MiB")));
        }
    }
    Ok(r)
}

fn s(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        Value::Str(s) => s.to_string(),
        v => v.go_string(),
    }
}

/// sprig's `strval`: fmt's `%v`, except nil is `<nil>`... as `toString` prints it.
fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        v => v.go_string(),
    }
}

/// sprig's `toInt64` (cast.ToInt64 leniency: strings parse, garbage is 0).
fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            let t = s.trim();
            t.parse::<i64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
                .unwrap_or(0)
        }
        _ => 0,
    }
}

fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn list_of(v: &Value) -> Vec<Value> {
    match v {
        Value::List(l) => (**l).clone(),
        Value::Obj(o) => match &**o {
            Object::ApiVersions(a) => a.iter().map(|s| Value::str(s.as_str())).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn arg(v: &[Value], i: usize) -> Value {
    v.get(i).cloned().unwrap_or(Value::Nil)
}

fn need(ex: &Exec, name: &str, v: &[Value], n: usize) -> Result<(), TemplateError> {
    if v.len() < n {
        return Err(ex.err(format!(
            "wrong number of args for {name}: want {n} got {}",
            v.len()
        )));
    }
    Ok(())
}

fn map_of(ex: &Exec, name: &str, v: &Value) -> Result<Rc<RefCell<Map>>, TemplateError> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        other => Err(ex.err(format!("{name}: expected a map, got {}", other.type_name()))),
    }
}

/// Go's `eq` for two basic values (numbers compare across int and float).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (x, y) if x.as_f64().is_some() && y.as_f64().is_some() => x.as_f64() == y.as_f64(),
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| values_equal(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && values_equal(v1, v2))
        }
        _ => false,
    }
}

fn compare(ex: &Exec, a: &Value, b: &Value) -> Result<std::cmp::Ordering, TemplateError> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (x, y) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p
                .partial_cmp(&q)
                .ok_or_else(|| ex.err("incomparable numbers")),
            _ => Err(ex.err(format!(
                "incompatible types for comparison: {} and {}",
                x.type_name(),
                y.type_name()
            ))),
        },
    }
}

fn indent(n: i64, text: &str) -> String {
    let pad = " ".repeat(n.max(0) as usize);
    let mut out = String::with_capacity(text.len() + pad.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&pad);
        out.push_str(line);
    }
    out
}

fn regex(ex: &Exec, pat: &str) -> Result<regex::Regex, TemplateError> {
    regex::RegexBuilder::new(pat)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ex.err(format!("bad regular expression {pat:?}: {e}")))
}

/// Merges `src` into `dst` like mergo: `overwrite` replaces non-empty values.
fn merge_into(dst: &mut Map, src: &Map, overwrite: bool) {
    for (k, sv) in src {
        match dst.get_mut(k) {
            None => {
                dst.insert(k.clone(), sv.clone());
            }
            Some(dv) => {
                if let (Value::Map(dm), Value::Map(sm)) = (&*dv, sv) {
                    if !Rc::ptr_eq(dm, sm) {
                        let sm = sm.borrow().clone();
                        merge_into(&mut dm.borrow_mut(), &sm, overwrite);
                    }
                    continue;
                }
                if (overwrite && !sv.is_empty()) || (!overwrite && dv.is_empty()) {
                    *dv = sv.clone();
                }
            }
        }
    }
}

fn placeholder(n: usize) -> String {
    "x".repeat(n)
}

fn cert_pair() -> Value {
    let mut m = Map::new();
    m.insert(
        "Cert".into(),
        Value::str("-----BEGIN CERTIFICATE-----\nPLACEHOLDER\n-----END CERTIFICATE-----\n"),
    );
    m.insert(
        "Key".into(),
        Value::str("-----BEGIN RSA PRIVATE KEY-----\nPLACEHOLDER\n-----END RSA PRIVATE KEY-----\n"),
    );
    Value::map(m)
}

fn sha1_hex(data: &[u8]) -> String {
    // SHA-1 (FIPS 180-4), for sprig's `sha1sum` checksum annotations.
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = !(c.is_whitespace() || c.is_ascii_punctuation() && c != '\'' && c != '_');
        if c.is_whitespace() {
            prev_letter = false;
        }
    }
    out
}

fn glob_regex(pattern: &str) -> String {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    let mut in_alt = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    re.push_str(".*");
                } else {
                    re.push_str("[^/]*");
                }
            }
            '?' => re.push_str("[^/]"),
            '{' => {
                in_alt += 1;
                re.push('(');
            }
            '}' if in_alt > 0 => {
                in_alt -= 1;
                re.push(')');
            }
            ',' if in_alt > 0 => re.push('|'),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
            }
            ']' => re.push(']'),
            '\\' => {
                if let Some(n) = chars.next() {
                    re.push_str(&regex::escape(&n.to_string()));
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

fn files_value(f: BTreeMap<String, Rc<[u8]>>) -> Value {
    Value::Obj(Rc::new(Object::Files(f)))
}

/// A method or field of one of Helm's objects (`.Files.Get`, `.KubeVersion.Minor`, …).
pub fn method(ex: &mut Exec, recv: &Value, name: &str, args: Vec<Value>) -> R {
    let Value::Obj(o) = recv else {
        return match recv {
            Value::Map(_) | Value::Nil if args.is_empty() => ex.field(recv, name),
            _ => Err(ex.err(format!(
                "can't evaluate field {name} in type {}",
                recv.type_name()
            ))),
        };
    };
    match (&**o, name) {
        (Object::Files(f), "Get") => Ok(Value::str(
            f.get(&s(&arg(&args, 0)))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        )),
        (Object::Files(f), "GetBytes") => Ok(Value::str(
            f.get(&s(&arg(&args, 0)))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        )),
        (Object::Files(f), "Lines") => {
            let text = f
                .get(&s(&arg(&args, 0)))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if text.is_empty() {
                return Ok(Value::list(Vec::new()));
            }
            Ok(Value::list(text.split('\n').map(Value::str).collect()))
        }
        (Object::Files(f), "Glob") => {
            let re = regex(ex, &glob_regex(&s(&arg(&args, 0))))?;
            Ok(files_value(
                f.iter()
                    .filter(|(k, _)| re.is_match(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }
        (Object::Files(f), "AsConfig" | "AsSecrets") => {
            if f.is_empty() {
                return Ok(Value::str(""));
            }
            let m: Map = f
                .iter()
                .map(|(k, v)| {
                    let base = k.rsplit('/').next().unwrap_or(k).to_string();
                    let val = if name == "AsSecrets" {
                        base64::engine::general_purpose::STANDARD.encode(v)
                    } else {
                        String::from_utf8_lossy(v).into_owned()
                    };
                    (base, Value::str(val))
                })
                .collect();
            Ok(Value::str(
                yaml::to_yaml(&Value::map(m)).trim_end_matches('\n'),
            ))
        }
        (Object::ApiVersions(a), "Has") => {
            let want = s(&arg(&args, 0));
            Ok(Value::Bool(a.contains(&want)))
        }
        (Object::KubeVersion { version, .. }, "Version" | "GitVersion" | "String") => {
            Ok(Value::str(version.as_str()))
        }
        (Object::KubeVersion { major, .. }, "Major") => Ok(Value::str(major.as_str())),
        (Object::KubeVersion { minor, .. }, "Minor") => Ok(Value::str(minor.as_str())),
        (Object::Semver(v), f) => Ok(match f {
            "Major" => Value::Int(v.major as i64),
            "Minor" => Value::Int(v.minor as i64),
            "Patch" => Value::Int(v.patch as i64),
            "Prerelease" => Value::str(v.pre.as_str()),
            "Metadata" => Value::str(v.meta.as_str()),
            "Original" => Value::str(v.original.as_str()),
            "String" => Value::str(v.to_string()),
            _ => return Err(ex.err(format!("can't evaluate field {f} in type *semver.Version"))),
        }),
        (o, f) => Err(ex.err(format!(
            "can't evaluate field {f} in type {}",
            Value::Obj(Rc::new(match o {
                Object::Files(_) => Object::Files(BTreeMap::new()),
                Object::ApiVersions(_) => Object::ApiVersions(Vec::new()),
                Object::KubeVersion { .. } => Object::KubeVersion {
                    version: String::new(),
                    major: String::new(),
                    minor: String::new(),
                },
                Object::Semver(v) => Object::Semver(v.clone()),
            }))
            .type_name()
        ))),
    }
}

fn apply(ex: &mut Exec, name: &str, v: Vec<Value>, dot: &Value) -> R {
    let a0 = || arg(&v, 0);
    let a1 = || arg(&v, 1);
    let last = || v.last().cloned().unwrap_or(Value::Nil);
    Ok(match name {
        // ---- Go builtins
        "not" => {
            need(ex, name, &v, 1)?;
            Value::Bool(!a0().truthy())
        }
        "eq" => {
            need(ex, name, &v, 2)?;
            let first = a0();
            Value::Bool(v[1..].iter().any(|x| values_equal(&first, x)))
        }
        "ne" => {
            need(ex, name, &v, 2)?;
            Value::Bool(!values_equal(&a0(), &a1()))
        }
        "lt" | "le" | "gt" | "ge" => {
            need(ex, name, &v, 2)?;
            let o = compare(ex, &a0(), &a1())?;
            use std::cmp::Ordering::*;
            Value::Bool(match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "len" => {
            need(ex, name, &v, 1)?;
            Value::Int(match &v[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.borrow().len(),
                Value::Obj(o) => match &**o {
                    Object::Files(f) => f.len(),
                    Object::ApiVersions(a) => a.len(),
                    _ => return Err(ex.err("len of unsupported type")),
                },
                Value::Nil => return Err(ex.err("error calling len: len of nil pointer")),
                x => {
                    return Err(ex.err(format!("error calling len: len of type {}", x.type_name())))
                }
            } as i64)
        }
        "index" => {
            need(ex, name, &v, 1)?;
            let mut cur = a0();
            for k in &v[1..] {
                cur = match &cur {
                    Value::Map(m) => m.borrow().get(&s(k)).cloned().unwrap_or(Value::Nil),
                    Value::List(l) => {
                        let i = to_i64(k);
                        if i < 0 || i as usize >= l.len() {
                            return Err(
                                ex.err(format!("error calling index: index out of range: {i}"))
                            );
                        }
                        l[i as usize].clone()
                    }
                    Value::Str(st) => {
                        let i = to_i64(k);
                        match st.as_bytes().get(i.max(0) as usize) {
                            Some(b) if i >= 0 => Value::Int(i64::from(*b)),
                            _ => {
                                return Err(
                                    ex.err(format!("error calling index: index out of range: {i}"))
                                )
                            }
                        }
                    }
                    Value::Nil => return Err(ex.err("error calling index: index of untyped nil")),
                    x => {
                        return Err(ex.err(format!(
                            "error calling index: can't index item of type {}",
                            x.type_name()
                        )))
                    }
                };
            }
            cur
        }
        "print" => {
            let mut out = String::new();
            for (i, x) in v.iter().enumerate() {
                let is_str = matches!(x, Value::Str(_));
                if i > 0 && !is_str && !matches!(v[i - 1], Value::Str(_)) {
                    out.push(' ');
                }
                out.push_str(&x.go_string());
            }
            Value::str(out)
        }
        "println" => {
            let parts: Vec<String> = v.iter().map(Value::go_string).collect();
            Value::str(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            need(ex, name, &v, 1)?;
            Value::str(sprintf(&s(&a0()), &v[1..]))
        }
        "html" => Value::str(
            s(&a0())
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;"),
        ),
        "js" => {
            let mut out = String::new();
            for c in s(&a0()).chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '"' => out.push_str("\\\""),
                    '<' => out.push_str("\\u003C"),
                    '>' => out.push_str("\\u003E"),
                    '&' => out.push_str("\\u0026"),
                    '=' => out.push_str("\\u003D"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c => out.push(c),
                }
            }
            Value::str(out)
        }
        "urlquery" => {
            let joined: String = v.iter().map(s).collect();
            Value::str(url::form_urlencoded::byte_serialize(joined.as_bytes()).collect::<String>())
        }
        "call" => return Err(ex.err("error calling call: templates here have no function values")),

        // ---- Helm
        "include" => {
            need(ex, name, &v, 1)?;
            let n = s(&a0());
            Value::str(ex.render_named(&n, &a1())?)
        }
        "tpl" => {
            need(ex, name, &v, 2)?;
            let text = s(&a0());
            let parsed = super::parse::parse(&ex.template_name, &text)?;
            // Defines in the text join the namespace for this call only.
            if parsed.defines.is_empty() {
                Value::str(ex.run_list(&parsed.root, &a1())?)
            } else {
                let mut t = super::exec::Templates {
                    named: ex.templates.named.clone(),
                };
                for (k, b) in parsed.defines {
                    t.named.insert(k, b);
                }
                let mut sub = Exec::new(&t, 10_000_000);
                sub.template_name = ex.template_name.clone();
                Value::str(sub.run_list(&parsed.root, &a1())?)
            }
        }
        "required" => {
            need(ex, name, &v, 2)?;
            let val = a1();
            let missing =
                matches!(&val, Value::Nil) || matches!(&val, Value::Str(s) if s.is_empty());
            if missing {
                return Err(TemplateError::Fail {
                    template: ex.template_name.clone(),
                    message: s(&a0()),
                });
            }
            val
        }
        "fail" => {
            return Err(TemplateError::Fail {
                template: ex.template_name.clone(),
                message: s(&a0()),
            })
        }
        "toYaml" | "mustToYaml" | "toYamlPretty" => {
            Value::str(yaml::to_yaml(&a0()).trim_end_matches('\n'))
        }
        "fromYaml" => match yaml::from_yaml(&s(&a0())) {
            Ok(Value::Map(m)) => Value::Map(m),
            Ok(Value::Nil) => Value::map(Map::new()),
            Ok(_) => {
                let mut m = Map::new();
                m.insert("Error".into(), Value::str("error unmarshaling JSON: json: cannot unmarshal into Go value of type map[string]interface {}"));
                Value::map(m)
            }
            Err(e) => {
                let mut m = Map::new();
                m.insert("Error".into(), Value::str(yaml::yaml_error_line(&e)));
                Value::map(m)
            }
        },
        "fromYamlArray" => match yaml::from_yaml(&s(&a0())) {
            Ok(Value::List(l)) => Value::List(l),
            Ok(Value::Nil) => Value::list(Vec::new()),
            Ok(_) => Value::list(vec![Value::str("error unmarshaling JSON: not an array")]),
            Err(e) => Value::list(vec![Value::str(yaml::yaml_error_line(&e))]),
        },
        "toJson" | "mustToJson" => Value::str(yaml::to_json(&a0(), false, true)),
        "toRawJson" | "mustToRawJson" => Value::str(yaml::to_json(&a0(), false, false)),
        "toPrettyJson" | "mustToPrettyJson" => Value::str(yaml::to_json(&a0(), true, true)),
        "fromJson" | "mustFromJson" => match yaml::from_json(&s(&a0())) {
            Ok(Value::Map(m)) => Value::Map(m),
            Ok(_) | Err(_) => {
                let mut m = Map::new();
                m.insert("Error".into(), Value::str("error unmarshaling JSON"));
                Value::map(m)
            }
        },
        "fromJsonArray" => match yaml::from_json(&s(&a0())) {
            Ok(Value::List(l)) => Value::List(l),
            _ => Value::list(vec![Value::str("error unmarshaling JSON")]),
        },
        "lookup" => Value::map(Map::new()),

        // ---- sprig: defaults and logic
        "default" => {
            need(ex, name, &v, 1)?;
            if v.len() < 2 || v[1].is_empty() {
                a0()
            } else {
                a1()
            }
        }
        "empty" => Value::Bool(a0().is_empty()),
        "coalesce" => v
            .iter()
            .find(|x| !x.is_empty())
            .cloned()
            .unwrap_or(Value::Nil),
        "all" => Value::Bool(v.iter().all(Value::truthy)),
        "any" => Value::Bool(v.iter().any(Value::truthy)),
        "ternary" => {
            need(ex, name, &v, 3)?;
            if v[2].truthy() {
                a0()
            } else {
                a1()
            }
        }

        // ---- dicts
        "dict" => {
            let mut m = Map::new();
            for pair in v.chunks(2) {
                m.insert(
                    strval(&pair[0]),
                    pair.get(1).cloned().unwrap_or(Value::str("")),
                );
            }
            Value::map(m)
        }
        "get" => {
            need(ex, name, &v, 2)?;
            let m = map_of(ex, name, &a0())?;
            let r = m.borrow().get(&s(&a1())).cloned().unwrap_or(Value::str(""));
            r
        }
        "set" => {
            need(ex, name, &v, 3)?;
            let m = map_of(ex, name, &a0())?;
            m.borrow_mut().insert(s(&a1()), v[2].clone());
            Value::Map(m)
        }
        "unset" => {
            need(ex, name, &v, 2)?;
            let m = map_of(ex, name, &a0())?;
            m.borrow_mut().remove(&s(&a1()));
            Value::Map(m)
        }
        "hasKey" => {
            need(ex, name, &v, 2)?;
            let m = map_of(ex, name, &a0())?;
            let r = m.borrow().contains_key(&s(&a1()));
            Value::Bool(r)
        }
        "pluck" => {
            let key = s(&a0());
            Value::list(
                v[1..]
                    .iter()
                    .filter_map(|d| match d {
                        Value::Map(m) => m.borrow().get(&key).cloned(),
                        _ => None,
                    })
                    .collect(),
            )
        }
        "keys" => {
            let mut out = Vec::new();
            for d in &v {
                if let Value::Map(m) = d {
                    out.extend(m.borrow().keys().map(|k| Value::str(k.as_str())));
                }
            }
            Value::list(out)
        }
        "values" => {
            let m = map_of(ex, name, &a0())?;
            let r = m.borrow().values().cloned().collect();
            Value::list(r)
        }
        "pick" | "omit" => {
            let m = map_of(ex, name, &a0())?;
            let ks: Vec<String> = v[1..].iter().map(s).collect();
            let keep = name == "pick";
            let r = m
                .borrow()
                .iter()
                .filter(|(k, _)| ks.contains(k) == keep)
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect();
            Value::map(r)
        }
        "dig" => {
            need(ex, name, &v, 3)?;
            let m = map_of(ex, name, &last())?;
            let default = v[v.len() - 2].clone();
            let keys = &v[..v.len() - 2];
            let mut cur = Value::Map(m);
            for k in keys {
                cur = match &cur {
                    Value::Map(m) => match m.borrow().get(&s(k)) {
                        Some(x) => x.clone(),
                        None => return Ok(default),
                    },
                    _ => return Ok(default),
                };
            }
            cur
        }
        "merge" | "mustMerge" | "mergeOverwrite" | "mustMergeOverwrite" => {
            need(ex, name, &v, 1)?;
            let dst = map_of(ex, name, &a0())?;
            let overwrite = name.ends_with("verwrite");
            for src in &v[1..] {
                if let Value::Map(sm) = src {
                    if Rc::ptr_eq(sm, &dst) {
                        continue;
                    }
                    let sm = sm.borrow().clone();
                    merge_into(&mut dst.borrow_mut(), &sm, overwrite);
                }
            }
            Value::Map(dst)
        }
        "deepCopy" | "mustDeepCopy" => a0().deep_copy(),

        // ---- lists
        "list" | "tuple" => Value::list(v),
        "first" => list_of(&a0()).first().cloned().unwrap_or(Value::Nil),
        "last" => list_of(&a0()).last().cloned().unwrap_or(Value::Nil),
        "rest" => Value::list(list_of(&a0()).into_iter().skip(1).collect()),
        "initial" => {
            let mut l = list_of(&a0());
            l.pop();
            Value::list(l)
        }
        "append" | "push" => {
            let mut l = list_of(&a0());
            l.push(a1());
            Value::list(l)
        }
        "prepend" => {
            let mut l = list_of(&a0());
            l.insert(0, a1());
            Value::list(l)
        }
        "concat" => Value::list(v.iter().flat_map(list_of).collect()),
        "uniq" => {
            let mut out: Vec<Value> = Vec::new();
            for x in list_of(&a0()) {
                if !out.iter().any(|y| values_equal(&x, y)) {
                    out.push(x);
                }
            }
            Value::list(out)
        }
        "without" => {
            let drop = &v[1..];
            Value::list(
                list_of(&a0())
                    .into_iter()
                    .filter(|x| !drop.iter().any(|d| values_equal(x, d)))
                    .collect(),
            )
        }
        "has" => {
            need(ex, name, &v, 2)?;
            let needle = a0();
            Value::Bool(list_of(&a1()).iter().any(|x| values_equal(x, &needle)))
        }
        "compact" => Value::list(list_of(&a0()).into_iter().filter(Value::truthy).collect()),
        "sortAlpha" => {
            let mut l: Vec<String> = list_of(&a0()).iter().map(strval).collect();
            l.sort();
            Value::list(l.into_iter().map(Value::str).collect())
        }
        "reverse" => {
            let mut l = list_of(&a0());
            l.reverse();
            Value::list(l)
        }
        "until" | "untilStep" | "seq" => {
            let (start, stop, step) = match name {
                "until" => (0, to_i64(&a0()), 1),
                "untilStep" => (to_i64(&a0()), to_i64(&a1()), to_i64(&arg(&v, 2))),
                _ => match v.len() {
                    1 => (1, to_i64(&a0()) + 1, 1),
                    2 => (to_i64(&a0()), to_i64(&a1()) + 1, 1),
                    _ => (to_i64(&a0()), to_i64(&arg(&v, 2)) + 1, to_i64(&a1())),
                },
            };
            if step == 0 {
                return Ok(Value::list(Vec::new()));
            }
            let n = (stop - start) / step;
            if n > 1_000_000 {
                return Err(ex.err(format!("{name}: list of {n} elements is too large")));
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i < stop) || (step < 0 && i > stop) {
                out.push(Value::Int(i));
                i += step;
            }
            if name == "seq" {
                let parts: Vec<String> = out.iter().map(Value::go_string).collect();
                return Ok(Value::str(parts.join(" ")));
            }
            Value::list(out)
        }
        "slice" | "mustSlice" => {
            let base = a0();
            let idx: Vec<i64> = v[1..].iter().map(to_i64).collect();
            match &base {
                Value::Str(st) => {
                    let from = idx.first().copied().unwrap_or(0).max(0) as usize;
                    let to = idx.get(1).map(|x| *x as usize).unwrap_or(st.len());
                    match st.get(from..to.min(st.len())) {
                        Some(x) if from <= to => Value::str(x),
                        _ => return Err(ex.err("error calling slice: index out of range")),
                    }
                }
                _ => {
                    let l = list_of(&base);
                    let from = idx.first().copied().unwrap_or(0).max(0) as usize;
                    let to = idx.get(1).map(|x| *x as usize).unwrap_or(l.len());
                    if from > to || to > l.len() {
                        return Err(ex.err("error calling slice: index out of range"));
                    }
                    Value::list(l[from..to].to_vec())
                }
            }
        }
        "join" => {
            let sep = s(&a0());
            let parts: Vec<String> = match &a1() {
                Value::List(l) => l
                    .iter()
                    .filter(|x| !matches!(x, Value::Nil))
                    .map(strval)
                    .collect(),
                Value::Str(st) => vec![st.to_string()],
                other => vec![strval(other)],
            };
            Value::str(parts.join(&sep))
        }
        "splitList" => Value::list(s(&a1()).split(&s(&a0())).map(Value::str).collect()),
        "split" => {
            let m: Map = s(&a1())
                .split(&s(&a0()))
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::str(p)))
                .collect();
            Value::map(m)
        }
        "splitn" => {
            let n = to_i64(&a1()).max(0) as usize;
            let m: Map = s(&arg(&v, 2))
                .splitn(n, &s(&a0()))
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::str(p)))
                .collect();
            Value::map(m)
        }
        "toStrings" => Value::list(
            list_of(&a0())
                .iter()
                .map(|x| Value::str(strval(x)))
                .collect(),
        ),

        // ---- strings
        "toString" => Value::str(strval(&a0())),
        "trim" => Value::str(s(&a0()).trim()),
        "trimAll" => {
            let cut: Vec<char> = s(&a0()).chars().collect();
            Value::str(s(&a1()).trim_matches(cut.as_slice()))
        }
        "trimPrefix" => {
            let st = s(&a1());
            Value::str(st.strip_prefix(s(&a0()).as_str()).unwrap_or(&st))
        }
        "trimSuffix" => {
            let st = s(&a1());
            Value::str(st.strip_suffix(s(&a0()).as_str()).unwrap_or(&st))
        }
        "upper" => Value::str(s(&a0()).to_uppercase()),
        "lower" => Value::str(s(&a0()).to_lowercase()),
        "title" => Value::str(title(&s(&a0()))),
        "untitle" => {
            let st = s(&a0());
            let mut c = st.chars();
            Value::str(match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect::<String>(),
                None => String::new(),
            })
        }
        "replace" => {
            need(ex, name, &v, 3)?;
            Value::str(s(&arg(&v, 2)).replace(&s(&a0()), &s(&a1())))
        }
        "contains" => Value::Bool(s(&a1()).contains(&s(&a0()))),
        "hasPrefix" => Value::Bool(s(&a1()).starts_with(&s(&a0()))),
        "hasSuffix" => Value::Bool(s(&a1()).ends_with(&s(&a0()))),
        "repeat" => {
            let n = to_i64(&a0()).max(0) as usize;
            let st = s(&a1());
            if n.saturating_mul(st.len()) > MAX_STRING {
                return Err(ex.err("repeat: result larger than 64 MiB"));
            }
            Value::str(st.repeat(n))
        }
        "substr" => {
            let st = s(&arg(&v, 2));
            let (mut a, mut b) = (to_i64(&a0()), to_i64(&a1()));
            let len = st.len() as i64;
            if a < 0 {
                a = 0;
            }
            if b < 0 || b > len {
                b = len;
            }
            Value::str(st.get(a.min(b) as usize..b as usize).unwrap_or(""))
        }
        "trunc" => {
            let n = to_i64(&a0());
            let st = s(&a1());
            let len = st.len() as i64;
            Value::str(if n < 0 {
                if -n < len {
                    st.get((len + n) as usize..).unwrap_or(&st).to_string()
                } else {
                    st
                }
            } else if n < len {
                st.get(..n as usize).unwrap_or(&st).to_string()
            } else {
                st
            })
        }
        "abbrev" => {
            let w = to_i64(&a0()).max(0) as usize;
            let st = s(&a1());
            if w < 4 || st.len() <= w {
                Value::str(st)
            } else {
                Value::str(format!("{}...", &st[..w - 3]))
            }
        }
        "nospace" => Value::str(
            s(&a0())
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>(),
        ),
        "cat" => {
            let parts: Vec<String> = v
                .iter()
                .filter(|x| !matches!(x, Value::Nil))
                .map(strval)
                .collect();
            Value::str(parts.join(" "))
        }
        "indent" => Value::str(indent(to_i64(&a0()), &s(&a1()))),
        "nindent" => Value::str(format!("\n{}", indent(to_i64(&a0()), &s(&a1())))),
        "quote" => {
            let parts: Vec<String> = v
                .iter()
                .filter(|x| !matches!(x, Value::Nil))
                .map(|x| go_quote(&strval(x)))
                .collect();
            Value::str(parts.join(" "))
        }
        "squote" => {
            let parts: Vec<String> = v
                .iter()
                .filter(|x| !matches!(x, Value::Nil))
                .map(|x| format!("'{}'", strval(x)))
                .collect();
            Value::str(parts.join(" "))
        }
        "plural" => {
            if to_i64(&arg(&v, 2)) == 1 {
                a0()
            } else {
                a1()
            }
        }
        "snakecase" | "kebabcase" | "camelcase" => {
            let st = s(&a0());
            let sep = if name == "kebabcase" { '-' } else { '_' };
            if name == "camelcase" {
                Value::str(st.split(['_', '-', ' ']).map(title).collect::<String>())
            } else {
                let mut out = String::new();
                for (i, c) in st.chars().enumerate() {
                    if c.is_uppercase() && i > 0 {
                        out.push(sep);
                    }
                    if c == '_' || c == '-' || c == ' ' {
                        out.push(sep);
                    } else {
                        out.extend(c.to_lowercase());
                    }
                }
                Value::str(out)
            }
        }
        "wrap" | "wrapWith" => a1(),
        "initials" => Value::str(
            s(&a0())
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .collect::<String>(),
        ),
        "shuffle" => a0(),
        "regexMatch" | "mustRegexMatch" => Value::Bool(regex(ex, &s(&a0()))?.is_match(&s(&a1()))),
        "regexFind" | "mustRegexFind" => Value::str(
            regex(ex, &s(&a0()))?
                .find(&s(&a1()))
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
        ),
        "regexFindAll" | "mustRegexFindAll" => {
            let n = to_i64(&arg(&v, 2));
            let st = s(&a1());
            let re = regex(ex, &s(&a0()))?;
            let it = re.find_iter(&st).map(|m| Value::str(m.as_str()));
            Value::list(if n < 0 {
                it.collect()
            } else {
                it.take(n as usize).collect()
            })
        }
        "regexReplaceAll" | "mustRegexReplaceAll" => Value::str(
            regex(ex, &s(&a0()))?
                .replace_all(&s(&a1()), s(&arg(&v, 2)).as_str())
                .into_owned(),
        ),
        "regexReplaceAllLiteral" | "mustRegexReplaceAllLiteral" => Value::str(
            regex(ex, &s(&a0()))?
                .replace_all(&s(&a1()), regex::NoExpand(&s(&arg(&v, 2))))
                .into_owned(),
        ),
        "regexSplit" | "mustRegexSplit" => {
            let n = to_i64(&arg(&v, 2));
            let st = s(&a1());
            let re = regex(ex, &s(&a0()))?;
            let parts: Vec<Value> = if n < 0 {
                re.split(&st).map(Value::str).collect()
            } else {
                re.splitn(&st, n as usize).map(Value::str).collect()
            };
            Value::list(parts)
        }
        "regexQuoteMeta" => Value::str(regex::escape(&s(&a0()))),

        // ---- encodings and hashes
        "b64enc" => Value::str(base64::engine::general_purpose::STANDARD.encode(s(&a0()))),
        "b64dec" => Value::str(
            base64::engine::general_purpose::STANDARD
                .decode(s(&a0()))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| e.to_string()),
        ),
        "b32enc" | "b32dec" => {
            return Err(ex.err(format!("{name} is not supported by this renderer")))
        }
        "sha256sum" => Value::str(hex::encode(sha2::Sha256::digest(s(&a0()).as_bytes()))),
        "sha512sum" => Value::str(hex::encode(sha2::Sha512::digest(s(&a0()).as_bytes()))),
        "sha1sum" => Value::str(sha1_hex(s(&a0()).as_bytes())),
        "adler32sum" => {
            let (mut a, mut b) = (1u32, 0u32);
            for byte in s(&a0()).bytes() {
                a = (a + u32::from(byte)) % 65521;
                b = (b + a) % 65521;
            }
            Value::str(((b << 16) | a).to_string())
        }

        // ---- numbers
        "int" | "int64" | "toDecimal" => Value::Int(to_i64(&a0())),
        "float64" => Value::Float(to_f64(&a0())),
        "atoi" => Value::Int(s(&a0()).trim().parse().unwrap_or(0)),
        "add" => Value::Int(v.iter().map(to_i64).fold(0i64, i64::wrapping_add)),
        "add1" => Value::Int(to_i64(&a0()).wrapping_add(1)),
        "sub" => Value::Int(to_i64(&a0()).wrapping_sub(to_i64(&a1()))),
        "mul" => Value::Int(v.iter().map(to_i64).fold(1i64, i64::wrapping_mul)),
        "div" | "mod" => {
            let d = to_i64(&a1());
            if d == 0 {
                return Err(ex.err(format!("error calling {name}: integer divide by zero")));
            }
            Value::Int(if name == "div" {
                to_i64(&a0()).wrapping_div(d)
            } else {
                to_i64(&a0()).wrapping_rem(d)
            })
        }
        "max" | "biggest" => Value::Int(v.iter().map(to_i64).max().unwrap_or(0)),
        "min" => Value::Int(v.iter().map(to_i64).min().unwrap_or(0)),
        "addf" => Value::Float(v.iter().map(to_f64).sum()),
        "add1f" => Value::Float(to_f64(&a0()) + 1.0),
        "subf" => Value::Float(v.iter().skip(1).fold(to_f64(&a0()), |a, b| a - to_f64(b))),
        "mulf" => Value::Float(v.iter().map(to_f64).product()),
        "divf" => Value::Float(v.iter().skip(1).fold(to_f64(&a0()), |a, b| a / to_f64(b))),
        "maxf" => Value::Float(v.iter().map(to_f64).fold(f64::MIN, f64::max)),
        "minf" => Value::Float(v.iter().map(to_f64).fold(f64::MAX, f64::min)),
        "floor" => Value::Float(to_f64(&a0()).floor()),
        "ceil" => Value::Float(to_f64(&a0()).ceil()),
        "round" => {
            let p = 10f64.powi(to_i64(&a1()) as i32);
            Value::Float((to_f64(&a0()) * p).round() / p)
        }

        // ---- types
        "kindOf" => Value::str(a0().kind_name()),
        "kindIs" => Value::Bool(a1().kind_name() == s(&a0())),
        "typeOf" => Value::str(a0().type_name()),
        "typeIs" => Value::Bool(a1().type_name() == s(&a0())),
        "typeIsLike" => {
            let t = s(&a0());
            let n = a1().type_name();
            Value::Bool(n == t || format!("*{n}") == t)
        }
        "deepEqual" => Value::Bool(values_equal(&a0(), &a1())),

        // ---- versions
        "semver" | "mustSemver" => match semver::Version::parse(&s(&a0())) {
            Some(ver) => Value::Obj(Rc::new(Object::Semver(ver))),
            None => {
                return Err(ex.err(format!(
                    "error calling semver: invalid semantic version {:?}",
                    s(&a0())
                )))
            }
        },
        "semverCompare" | "mustSemverCompare" => {
            let ver = semver::Version::parse(&s(&a1())).ok_or_else(|| {
                ex.err(format!(
                    "error calling semverCompare: invalid semantic version {:?}",
                    s(&a1())
                ))
            })?;
            Value::Bool(
                semver::matches(&s(&a0()), &ver)
                    .map_err(|e| ex.err(format!("error calling semverCompare: {e}")))?,
            )
        }

        // ---- paths and URLs
        "base" => Value::str(s(&a0()).rsplit('/').next().unwrap_or("").to_string()),
        "dir" => {
            let st = s(&a0());
            Value::str(match st.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => st[..i].to_string(),
                None => ".".to_string(),
            })
        }
        "ext" => {
            let st = s(&a0());
            let b = st.rsplit('/').next().unwrap_or("");
            Value::str(b.rfind('.').map(|i| b[i..].to_string()).unwrap_or_default())
        }
        "clean" => a0(),
        "isAbs" => Value::Bool(s(&a0()).starts_with('/')),

        // ---- placeholders for what depends on chance or the clock
        "randAlphaNum" | "randAlpha" | "randNumeric" | "randAscii" => {
            let n = to_i64(&a0()).clamp(0, 4096) as usize;
            Value::str(placeholder(n))
        }
        "randBytes" => Value::str(base64::engine::general_purpose::STANDARD.encode(vec![
                0u8;
                to_i64(&a0()).clamp(0, 4096)
                    as usize
            ])),
        "randInt" => a0(),
        "uuidv4" => Value::str("00000000-0000-4000-8000-000000000000"),
        "genCA"
        | "genSelfSignedCert"
        | "genSignedCert"
        | "genCAWithKey"
        | "genSelfSignedCertWithKey"
        | "genSignedCertWithKey"
        | "buildCustomCert" => cert_pair(),
        "genPrivateKey" => Value::str(
            "-----BEGIN RSA PRIVATE KEY-----\nPLACEHOLDER\n-----END RSA PRIVATE KEY-----\n",
        ),
        "derivePassword" | "htpasswd" | "encryptAES" | "decryptAES" | "bcrypt" => {
            Value::str(placeholder(16))
        }
        "now" => Value::str("1970-01-01 00:00:00 +0000 UTC"),
        "date" | "dateInZone" | "htmlDate" | "htmlDateInZone" | "dateModify" | "toDate"
        | "mustToDate" | "ago" | "duration" | "durationRound" => Value::str("1970-01-01"),
        "unixEpoch" => Value::str("0"),
        "getHostByName" => Value::str(""),
        _ => {
            if let Some(rest) = name.strip_prefix("must") {
                let mut c = rest.chars();
                if let Some(f) = c.next() {
                    let plain: String = f.to_lowercase().chain(c).collect();
                    let _ = dot;
                    return apply(ex, &plain, v, dot);
                }
            }
            return Err(ex.err(format!("function {name:?} not defined")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_known_vector() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn glob_translates() {
        let re = regex::Regex::new(&glob_regex("files/*.conf")).unwrap();
        assert!(re.is_match("files/a.conf"));
        assert!(!re.is_match("files/x/a.conf"));
        let re = regex::Regex::new(&glob_regex("dashboards/**.json")).unwrap();
        assert!(re.is_match("dashboards/a/b.json"));
    }
}
