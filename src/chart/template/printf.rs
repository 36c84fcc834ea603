//! Go's `fmt.Sprintf` for the verbs templates use (`%s %v %d %q %f %g %e %x %X %t %c %o %b %T %%`).

use super::value::{format_float_g, Value};

/// Formats `args` with Go's `fmt` rules.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut ai = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "+-# 0".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width: Option<usize> = None;
        let mut prec: Option<usize> = None;
        let mut num = String::new();
        if chars.peek() == Some(&'*') {
            chars.next();
            width = args.get(ai).and_then(Value::as_f64).map(|f| f as usize);
            ai += 1;
        }
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() {
                num.push(d);
                chars.next();
            } else {
                break;
            }
        }
        if !num.is_empty() {
            width = num.parse().ok();
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            if chars.peek() == Some(&'*') {
                chars.next();
                prec = args.get(ai).and_then(Value::as_f64).map(|f| f as usize);
                ai += 1;
            } else {
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_digit() {
                        p.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                prec = Some(p.parse().unwrap_or(0));
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(ai) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        ai += 1;
        let s = one(verb, arg, &flags, prec);
        let w = width.unwrap_or(0);
        let len = s.chars().count();
        if len < w {
            let pad = w - len;
            if flags.contains('-') {
                out.push_str(&s);
                out.push_str(&" ".repeat(pad));
            } else if flags.contains('0') && matches!(verb, 'd' | 'f' | 'x' | 'X' | 'e' | 'g') {
                let (sign, rest) = if s.starts_with(['-', '+']) {
                    s.split_at(1)
                } else {
                    ("", s.as_str())
                };
                out.push_str(sign);
                out.push_str(&"0".repeat(pad));
                out.push_str(rest);
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&s);
            }
        } else {
            out.push_str(&s);
        }
    }
    if ai < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[ai..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.go_string()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn bad(verb: char, v: &Value) -> String {
    format!("%!{verb}({}={})", v.type_name(), v.go_string())
}

fn one(verb: char, v: &Value, flags: &str, prec: Option<usize>) -> String {
    let plus = flags.contains('+');
    match verb {
        'v' | 's' => {
            let s = match v {
                Value::Nil if verb == 's' => "%!s(<nil>)".to_string(),
                _ => v.go_string(),
            };
            match (verb, prec) {
                ('s', Some(p)) => s.chars().take(p).collect(),
                _ => s,
            }
        }
        'q' => match v {
            Value::Str(s) => go_quote(s),
            Value::Int(i) => {
                let c = char::from_u32(*i as u32).unwrap_or('\u{fffd}');
                format!("'{c}'")
            }
            _ => bad(verb, v),
        },
        'd' => match v {
            Value::Int(i) => {
                if plus && *i >= 0 {
                    format!("+{i}")
                } else {
                    i.to_string()
                }
            }
            Value::List(l) => {
                let items: Vec<String> = l.iter().map(|x| one('d', x, flags, prec)).collect();
                format!("[{}]", items.join(" "))
            }
            _ => bad(verb, v),
        },
        'f' | 'F' | 'e' | 'g' => match v.as_f64() {
            Some(f) if !matches!(v, Value::Int(_)) => {
                let s = match verb {
                    'e' => {
                        let s = format!("{:.*e}", prec.unwrap_or(6), f);
                        // Go writes a signed two-digit exponent.
                        match s.split_once('e') {
                            Some((m, e)) => {
                                let n: i32 = e.parse().unwrap_or(0);
                                format!("{m}e{}{:02}", if n < 0 { '-' } else { '+' }, n.abs())
                            }
                            None => s,
                        }
                    }
                    'g' => match prec {
                        None => format_float_g(f),
                        Some(p) => format!("{:.*}", p, f),
                    },
                    _ => format!("{:.*}", prec.unwrap_or(6), f),
                };
                if plus && f >= 0.0 {
                    format!("+{s}")
                } else {
                    s
                }
            }
            _ => bad(verb, v),
        },
        't' => match v {
            Value::Bool(b) => b.to_string(),
            _ => bad(verb, v),
        },
        'c' => match v {
            Value::Int(i) => char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
            _ => bad(verb, v),
        },
        'x' | 'X' => {
            let s = match v {
                Value::Int(i) => {
                    if *i < 0 {
                        format!("-{:x}", i.unsigned_abs())
                    } else {
                        format!("{i:x}")
                    }
                }
                Value::Str(s) => hex::encode(s.as_bytes()),
                _ => return bad(verb, v),
            };
            if verb == 'X' {
                s.to_uppercase()
            } else {
                s
            }
        }
        'o' => match v {
            Value::Int(i) => format!("{i:o}"),
            _ => bad(verb, v),
        },
        'b' => match v {
            Value::Int(i) => format!("{i:b}"),
            _ => bad(verb, v),
        },
        'T' => v.type_name().to_string(),
        _ => bad(verb, v),
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let a = [Value::str("x"), Value::Int(5), Value::Float(1.5)];
        assert_eq!(sprintf("%s-%d-%v", &a), "x-5-1.5");
        assert_eq!(sprintf("%q", &[Value::str("a\"b")]), "\"a\\\"b\"");
        assert_eq!(
            sprintf("%05d|%-3s|", &[Value::Int(42), Value::str("a")]),
            "00042|a  |"
        );
        assert_eq!(sprintf("%.2f", &[Value::Float(1.23456)]), "1.23");
        assert_eq!(sprintf("%d", &[Value::Float(1.0)]), "%!d(float64=1)");
        assert_eq!(sprintf("%s", &[]), "%!s(MISSING)");
    }
}
