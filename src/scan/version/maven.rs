//! Maven version order, as Maven's `ComparableVersion` defines it (the rules its
//! `ComparableVersionTest` vectors check): the version (lower case) is split into items at `.`,
//! `-` and every change between digits and letters, `-` followed by a digit opening a sub-list; numbers compare numerically and above qualifiers; the known
//! qualifiers order `alpha` < `beta` < `milestone` < `rc` = `cr` < `snapshot` < (release: `""`,
//! `ga`, `final`, `release`) < `sp`, unknown ones after `sp` alphabetically; `a1`, `b1`, `m1` are
//! alpha, beta and milestone when a digit follows; trailing zeros and release qualifiers of
//! each list are dropped, so `1` = `1.0` = `1-0` = `1ga`.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Int(String),
    Str(String),
    List(Vec<Item>),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const RELEASE_INDEX: &str = "5";

fn comparable_qualifier(q: &str) -> String {
    match QUALIFIERS.iter().position(|x| *x == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", QUALIFIERS.len()),
    }
}

fn string_item(v: &str, followed_by_digit: bool) -> Item {
    let v = match v {
        "a" if followed_by_digit => "alpha",
        "b" if followed_by_digit => "beta",
        "m" if followed_by_digit => "milestone",
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        v => v,
    };
    Item::Str(v.to_string())
}

fn int_item(v: &str) -> Item {
    let t = v.trim_start_matches('0');
    Item::Int(t.to_string())
}

fn parse_item(digit: bool, v: &str) -> Item {
    if digit {
        int_item(v)
    } else {
        string_item(v, false)
    }
}

fn is_null(i: &Item) -> bool {
    match i {
        Item::Int(v) => v.is_empty(),
        Item::Str(v) => comparable_qualifier(v) == RELEASE_INDEX,
        Item::List(l) => l.is_empty(),
    }
}

fn normalize(list: &mut Vec<Item>) {
    while let Some(last) = list.last() {
        if is_null(last) {
            list.pop();
        } else {
            break;
        }
    }
}

/// Parses into nested lists (`ComparableVersion.parseVersion`): `.` separates items, `-`
/// separates too and, after digits, drops the current list's trailing zeros (`1.0-x` =
/// `1-x`) and opens a sub-list when a digit follows (`1.1` differs from `1-1`); a change
/// between digits and letters separates items without opening a list.
fn parse(version: &str) -> Item {
    let v = version.to_ascii_lowercase();
    let b = v.as_bytes();
    // The open lists, outermost first; each nests in the one before it.
    let mut lists: Vec<Vec<Item>> = vec![Vec::new()];
    let mut digit = false;
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let cur = lists.len() - 1;
        if c == b'.' || c == b'-' {
            let item = if i == start {
                Item::Int(String::new())
            } else {
                parse_item(digit, &v[start..i])
            };
            lists[cur].push(item);
            start = i + 1;
            if c == b'-' && digit {
                normalize(&mut lists[cur]);
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    lists.push(Vec::new());
                }
            }
        } else if c.is_ascii_digit() {
            if !digit && i > start {
                lists[cur].push(string_item(&v[start..i], true));
                start = i;
            }
            digit = true;
        } else {
            if digit && i > start {
                lists[cur].push(parse_item(true, &v[start..i]));
                start = i;
            }
            digit = false;
        }
    }
    if b.len() > start {
        let cur = lists.len() - 1;
        lists[cur].push(parse_item(digit, &v[start..]));
    }
    while lists.len() > 1 {
        let mut l = lists.pop().unwrap_or_default();
        normalize(&mut l);
        if let Some(parent) = lists.last_mut() {
            parent.push(Item::List(l));
        }
    }
    let mut root = lists.pop().unwrap_or_default();
    normalize(&mut root);
    Item::List(root)
}

fn cmp_null(a: &Item) -> Ordering {
    match a {
        Item::Int(v) => {
            if v.is_empty() {
                Ordering::Equal
            } else {
                Ordering::Greater
            }
        }
        Item::Str(v) => comparable_qualifier(v).as_str().cmp(RELEASE_INDEX),
        Item::List(l) => l.first().map_or(Ordering::Equal, cmp_null),
    }
}

fn cmp(a: &Item, b: &Item) -> Ordering {
    match (a, b) {
        (Item::Int(x), Item::Int(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        (Item::Int(_), _) => Ordering::Greater,
        (Item::Str(_), Item::Int(_)) => Ordering::Less,
        (Item::Str(x), Item::Str(y)) => comparable_qualifier(x).cmp(&comparable_qualifier(y)),
        (Item::Str(_), Item::List(_)) => Ordering::Less,
        (Item::List(_), Item::Int(_)) => Ordering::Less,
        (Item::List(_), Item::Str(_)) => Ordering::Greater,
        (Item::List(x), Item::List(y)) => {
            for i in 0..x.len().max(y.len()) {
                let o = match (x.get(i), y.get(i)) {
                    (None, None) => Ordering::Equal,
                    (None, Some(r)) => cmp_null(r).reverse(),
                    (Some(l), None) => cmp_null(l),
                    (Some(l), Some(r)) => cmp(l, r),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        }
    }
}

/// Compares two Maven versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    cmp(&parse(a), &parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert_eq!(compare("1", "1.0.0"), Ordering::Equal);
        assert_eq!(compare("1.0-SNAPSHOT", "1.0"), Ordering::Less);
        assert_eq!(compare("2.0.1", "2.0.1-xyz"), Ordering::Less);
        assert_eq!(compare("1a1", "1alpha1"), Ordering::Equal);
    }
}
