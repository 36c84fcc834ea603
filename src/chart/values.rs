//! Helm's values rules: merging `-f` files and `--set`, coalescing chart defaults under user
//! values (a user `null` deletes a default), and `global` propagation to subcharts.

use std::rc::Rc;

use super::template::{Map, Value};

/// `CoalesceTables(dst, src)`: fills `dst` from `src` where `dst` has nothing; `dst` wins.
/// With `merge` false a `null` in `dst` deletes the key.
pub fn coalesce_tables(dst: &mut Map, src: &Map, merge: bool) {
    let nulls: Vec<String> = dst
        .iter()
        .filter(|(_, v)| matches!(v, Value::Nil))
        .map(|(k, _)| k.clone())
        .collect();
    for (k, sv) in src {
        match dst.get(k) {
            Some(Value::Nil) if !merge => {
                dst.remove(k);
            }
            None => {
                if !nulls.contains(k) {
                    dst.insert(k.clone(), sv.deep_copy());
                }
            }
            Some(Value::Map(dm)) => {
                if let Value::Map(sm) = sv {
                    if !Rc::ptr_eq(dm, sm) {
                        let sm = sm.borrow();
                        coalesce_tables(&mut dm.borrow_mut(), &sm, merge);
                    }
                }
            }
            Some(_) => {}
        }
    }
}

/// `coalesceValues`: the chart's defaults under `v`.
pub fn coalesce_defaults(defaults: &Map, v: &mut Map, merge: bool) {
    for (k, dv) in defaults {
        match v.get(k) {
            Some(Value::Nil) if !merge => {
                v.remove(k);
            }
            Some(Value::Map(um)) => {
                if let Value::Map(dm) = dv {
                    let dm = dm.borrow().clone();
                    coalesce_tables(&mut um.borrow_mut(), &dm, merge);
                }
            }
            Some(_) => {}
            None => {
                v.insert(k.clone(), dv.deep_copy());
            }
        }
    }
}

/// `coalesceGlobals`: the parent's `global` over the subchart's.
pub fn coalesce_globals(sub: &mut Map, parent: &Map) {
    let pg = match parent.get("global") {
        Some(Value::Map(m)) => m.borrow().clone(),
        None => Map::new(),
        Some(_) => return,
    };
    let mut dg = match sub.get("global") {
        Some(Value::Map(m)) => m.borrow().clone(),
        None => Map::new(),
        Some(_) => return,
    };
    for (k, pv) in &pg {
        match pv {
            Value::Map(pm) => {
                let vv = pv.deep_copy();
                match dg.get(k) {
                    None => {
                        dg.insert(k.clone(), vv);
                    }
                    Some(Value::Map(dm)) => {
                        let _ = pm;
                        if let Value::Map(vm) = &vv {
                            let dm = dm.borrow().clone();
                            coalesce_tables(&mut vm.borrow_mut(), &dm, true);
                        }
                        dg.insert(k.clone(), vv);
                    }
                    Some(_) => {}
                }
            }
            _ => {
                if !matches!(dg.get(k), Some(Value::Map(_))) {
                    dg.insert(k.clone(), pv.clone());
                }
            }
        }
    }
    sub.insert("global".into(), Value::map(dg));
}

/// `MergeTables`/`mergeMaps` for `-f` files: `src` over `dst`, maps merged deeply.
pub fn merge_maps(dst: &mut Map, src: &Map) {
    for (k, sv) in src {
        if let (Some(Value::Map(dm)), Value::Map(sm)) = (dst.get(k), sv) {
            let sm = sm.borrow().clone();
            merge_maps(&mut dm.borrow_mut(), &sm);
            continue;
        }
        dst.insert(k.clone(), sv.deep_copy());
    }
}

/// Why a `--set` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("--set `{expr}`: {reason}")]
pub struct SetError {
    /// The expression.
    pub expr: String,
    /// What is wrong.
    pub reason: String,
}

/// Applies one `--set a.b[0].c=v,x=y` expression (Helm's strvals: ints, bools and `null` typed,
/// `{a,b}` lists, `\,` and `\.` escapes).
pub fn apply_set(vals: &mut Map, expr: &str) -> Result<(), SetError> {
    let bad = |reason: &str| SetError {
        expr: expr.to_string(),
        reason: reason.to_string(),
    };
    for part in split_unescaped(expr, ',', true) {
        if part.is_empty() {
            continue;
        }
        let (key, val) = split_key_value(&part).ok_or_else(|| bad("expected key=value"))?;
        let value = if val.starts_with('{') && val.ends_with('}') {
            Value::list(
                split_unescaped(&val[1..val.len() - 1], ',', false)
                    .iter()
                    .map(|s| typed(s))
                    .collect(),
            )
        } else {
            typed(&unescape(&val))
        };
        let path = parse_key(&key).ok_or_else(|| bad("bad key"))?;
        set_path(vals, &path, value).map_err(|r| bad(&r))?;
    }
    Ok(())
}

/// Applies `key=value` from a YAML `set:` map entry (value already typed).
pub fn set_value(vals: &mut Map, key: &str, value: Value) -> Result<(), SetError> {
    let path = parse_key(key).ok_or_else(|| SetError {
        expr: key.to_string(),
        reason: "bad key".into(),
    })?;
    set_path(vals, &path, value).map_err(|reason| SetError {
        expr: key.to_string(),
        reason,
    })
}

fn split_key_value(s: &str) -> Option<(String, String)> {
    let mut esc = false;
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        if c == '\\' {
            esc = true;
        } else if c == '=' {
            return Some((s[..i].to_string(), s[i + 1..].to_string()));
        }
    }
    None
}

fn split_unescaped(s: &str, sep: char, braces: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    let mut depth = 0;
    for c in s.chars() {
        if esc {
            cur.push('\\');
            cur.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '{' if braces => {
                depth += 1;
                cur.push(c)
            }
            '}' if braces => {
                depth -= 1;
                cur.push(c)
            }
            c if c == sep && depth == 0 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc || c != '\\' {
            out.push(c);
            esc = false;
        } else {
            esc = true;
        }
    }
    out
}

fn typed(s: &str) -> Value {
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Nil,
        "0" => Value::Int(0),
        _ => {
            // strvals types an integer only without a leading zero.
            if !s.starts_with('0') && !s.starts_with("-0") {
                if let Ok(i) = s.parse::<i64>() {
                    return Value::Int(i);
                }
            }
            Value::str(s)
        }
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

fn parse_key(key: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    for part in split_unescaped(key, '.', false) {
        let part = part.as_str();
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Seg::Key(unescape(name)));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let idx: usize = r[..end].parse().ok()?;
            if idx > 65_536 {
                return None;
            }
            out.push(Seg::Index(idx));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    if out.is_empty() {
        return None;
    }
    Some(out)
}

fn set_path(vals: &mut Map, path: &[Seg], value: Value) -> Result<(), String> {
    let Seg::Key(first) = &path[0] else {
        return Err("a key must start with a name".into());
    };
    let mut slot = vals.remove(first).unwrap_or(Value::Nil);
    set_in(&mut slot, &path[1..], value)?;
    vals.insert(first.clone(), slot);
    Ok(())
}

fn set_in(slot: &mut Value, path: &[Seg], value: Value) -> Result<(), String> {
    let Some(seg) = path.first() else {
        *slot = value;
        return Ok(());
    };
    match seg {
        Seg::Key(k) => {
            if !matches!(slot, Value::Map(_)) {
                *slot = Value::map(Map::new());
            }
            let Value::Map(m) = slot else { unreachable!() };
            let mut child = m.borrow_mut().remove(k).unwrap_or(Value::Nil);
            set_in(&mut child, &path[1..], value)?;
            m.borrow_mut().insert(k.clone(), child);
        }
        Seg::Index(i) => {
            let mut l: Vec<Value> = match slot {
                Value::List(l) => (**l).clone(),
                _ => Vec::new(),
            };
            while l.len() <= *i {
                l.push(Value::Nil);
            }
            set_in(&mut l[*i], &path[1..], value)?;
            *slot = Value::list(l);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::template::yaml::{from_yaml, to_json};
    use super::*;

    fn m(y: &str) -> Map {
        match from_yaml(y).unwrap() {
            Value::Map(m) => m.borrow().clone(),
            _ => Map::new(),
        }
    }
    fn j(m: Map) -> String {
        to_json(&Value::map(m), false, false)
    }

    #[test]
    fn set_expressions() {
        let mut v = Map::new();
        apply_set(&mut v, "a.b=1,c=true,d={x,y},e[1].f=z,g=007,h=a\\,b,n=null").unwrap();
        assert_eq!(
            j(v),
            r#"{"a":{"b":1},"c":true,"d":["x","y"],"e":[null,{"f":"z"}],"g":"007","h":"a,b","n":null}"#
        );
        assert!(apply_set(&mut Map::new(), "novalue").is_err());
    }

    #[test]
    fn user_null_deletes_default() {
        let mut user = m("a: null\nb: {c: 2}\n");
        coalesce_defaults(&m("a: 1\nb: {c: 1, d: 1}\ne: 3\n"), &mut user, false);
        assert_eq!(j(user), r#"{"b":{"c":2,"d":1},"e":3}"#);
    }

    #[test]
    fn parent_globals_win() {
        let mut sub = m("global: {a: sub, t: {x: 1}}\n");
        coalesce_globals(&mut sub, &m("global: {a: parent, t: {y: 2}}\n"));
        assert_eq!(j(sub), r#"{"global":{"a":"parent","t":{"x":1,"y":2}}}"#);
    }
}
