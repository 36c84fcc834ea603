//! The values a template works on, with Go's `text/template` rules for truth and printing.
//!
//! Maps are shared and mutable (`Rc<RefCell<…>>`) because Go maps are references: sprig's
//! `set`, `unset` and `merge` change a map every holder sees, and charts rely on it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

/// A Go map: keys iterate sorted, as `text/template` ranges and `toYaml` print them.
pub type Map = BTreeMap<String, Value>;

/// One template value.
#[derive(Clone, Debug)]
pub enum Value {
    /// Go's nil / a missing key.
    Nil,
    /// A bool.
    Bool(bool),
    /// An integer (template literals, `len`, sprig arithmetic, `--set` numbers).
    Int(i64),
    /// A float64 (every number read from YAML or JSON, as Go's decoders give them).
    Float(f64),
    /// A string.
    Str(Rc<str>),
    /// A slice.
    List(Rc<Vec<Value>>),
    /// A map, shared by reference.
    Map(Rc<RefCell<Map>>),
    /// One of Helm's objects with methods (`.Files`, `.Capabilities.APIVersions`, …).
    Obj(Rc<Object>),
}

/// Helm objects that have methods or print specially.
#[derive(Debug)]
pub enum Object {
    /// `.Files` (or a `Glob` result): path → contents.
    Files(BTreeMap<String, Rc<[u8]>>),
    /// `.Capabilities.APIVersions`.
    ApiVersions(Vec<String>),
    /// `.Capabilities.KubeVersion`: prints as its version.
    KubeVersion {
        /// `v1.36.0`.
        version: String,
        /// `1`.
        major: String,
        /// `36`.
        minor: String,
    },
    /// A parsed semantic version (sprig `semver`).
    Semver(super::semver::Version),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }
    /// A new map value.
    pub fn map(m: Map) -> Value {
        Value::Map(Rc::new(RefCell::new(m)))
    }
    /// A new list value.
    pub fn list(v: Vec<Value>) -> Value {
        Value::List(Rc::new(v))
    }

    /// Go template truth: false, 0, nil, empty string, slice or map are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().is_empty(),
            Value::Obj(o) => match &**o {
                Object::Files(f) => !f.is_empty(),
                Object::ApiVersions(v) => !v.is_empty(),
                _ => true,
            },
        }
    }

    /// sprig's `empty`: the same as not truthy.
    pub fn is_empty(&self) -> bool {
        !self.truthy()
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A deep copy (sprig `deepCopy`, Helm's copy of chart defaults).
    pub fn deep_copy(&self) -> Value {
        match self {
            Value::Map(m) => Value::map(
                m.borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.deep_copy()))
                    .collect(),
            ),
            Value::List(l) => Value::list(l.iter().map(Value::deep_copy).collect()),
            v => v.clone(),
        }
    }

    /// Go's `%T`-like type name as sprig's `typeOf` prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Obj(o) => match &**o {
                Object::Files(_) => "engine.files",
                Object::ApiVersions(_) => "common.VersionSet",
                Object::KubeVersion { .. } => "*common.KubeVersion",
                Object::Semver(_) => "*semver.Version",
            },
        }
    }

    /// Go's reflect kind as sprig's `kindOf` prints it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Obj(o) => match &**o {
                Object::Files(_) => "map",
                Object::ApiVersions(_) => "slice",
                _ => "ptr",
            },
        }
    }

    /// Text the way `fmt.Sprint` gives it, `<nil>` for nil inside collections.
    pub fn go_string(&self) -> String {
        let mut s = String::new();
        self.write_go(&mut s, false);
        s
    }

    /// Text as `{{ . }}` prints it: a nil is `<no value>` (Helm strips that from output).
    pub fn template_string(&self) -> String {
        match self {
            Value::Nil => "<no value>".to_string(),
            v => v.go_string(),
        }
    }

    fn write_go(&self, out: &mut String, nested: bool) {
        let _ = nested;
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&format_float_g(*f)),
            Value::Str(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_go(out, true);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out, true);
                }
                out.push(']');
            }
            Value::Obj(o) => match &**o {
                Object::KubeVersion { version, .. } => out.push_str(version),
                Object::ApiVersions(v) => {
                    out.push('[');
                    out.push_str(&v.join(" "));
                    out.push(']');
                }
                Object::Files(f) => {
                    out.push_str("map[");
                    let names: Vec<&str> = f.keys().map(String::as_str).collect();
                    out.push_str(&names.join(" "));
                    out.push(']');
                }
                Object::Semver(v) => out.push_str(&v.to_string()),
            },
        }
    }

    /// A number as f64, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// A float64 as Go's `fmt` prints it for `%v`: shortest digits, exponent form when the exponent
/// is below -4 or at least 6 (so Helm prints a values-file `1000000` as `1e+06`).
pub fn format_float_g(f: f64) -> String {
    format_float(f, 6)
}

/// A float64 as Go's `encoding/json` writes it: exponent form only below 1e-6 or from 1e21.
pub fn format_float_json(f: f64) -> String {
    if f != 0.0 && f.abs() < 1e-6 {
        return format_float(f, 0).replace("e-0", "e-");
    }
    format_float(f, 21)
}

fn format_float(f: f64, max_exp: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits via Rust's `{:e}` formatting.
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if !(-4..max_exp).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    if exp < 0 {
        format!("{sign}0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{}{}", digits, "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float_g(1.0), "1");
        assert_eq!(format_float_g(1.5), "1.5");
        assert_eq!(format_float_g(1e6), "1e+06");
        assert_eq!(format_float_g(100000.0), "100000");
        assert_eq!(format_float_g(0.0001), "0.0001");
        assert_eq!(format_float_g(0.00001), "1e-05");
        assert_eq!(format_float_g(-2.25), "-2.25");
    }
}
