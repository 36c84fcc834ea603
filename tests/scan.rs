//! Scanning tests on real upstream data (see tests/data/*/PROVENANCE.md).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use airlock::scan::version::{apk, dpkg};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("parsing {rel}: {e}"))
}

fn sign(o: Ordering) -> i64 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

#[test]
fn dpkg_version_corpus_every_case() {
    let v = json("versions/dpkg-version-compare.json");
    let mut n = 0;
    for c in v["comparisons"].as_array().expect("comparisons") {
        let (a, b) = (c["a"].as_str().unwrap(), c["b"].as_str().unwrap());
        let want = c["expected"].as_i64().unwrap();
        assert_eq!(sign(dpkg::compare(a, b)), want, "compare({a}, {b})");
        assert_eq!(sign(dpkg::compare(b, a)), -want, "compare({b}, {a})");
        n += 1;
    }
    assert_eq!(n, 43);
    let sorts = v["sorts"].as_array().expect("sorts");
    assert_eq!(sorts.len(), 3);
    let cmps: [fn(&str, &str) -> Ordering; 3] =
        [dpkg::compare, dpkg::compare_part, dpkg::compare_string];
    for (s, cmp) in sorts.iter().zip(cmps) {
        let mut list: Vec<&str> = s["unsorted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        list.sort_by(|a, b| cmp(a, b));
        let want: Vec<&str> = s["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(list, want, "{}", s["compare"]);
    }
    let validity = v["validity"].as_array().expect("validity");
    assert_eq!(validity.len(), 9);
    for c in validity {
        let ver = c["version"].as_str().unwrap();
        assert_eq!(
            dpkg::DebVersion::parse(ver).is_ok(),
            c["valid"].as_bool().unwrap(),
            "validity of `{ver}` ({})",
            c["note"]
        );
    }
    let er = v["has_epoch_revision"]
        .as_array()
        .expect("has_epoch_revision");
    assert_eq!(er.len(), 5);
    for c in er {
        let ver = c["version"].as_str().unwrap();
        let p = dpkg::DebVersion::parse(ver).unwrap_or_else(|e| panic!("{ver}: {e}"));
        assert_eq!(p.epoch.is_some(), c["epoch"].as_bool().unwrap(), "{ver}");
        assert_eq!(
            p.revision.is_some(),
            c["revision"].as_bool().unwrap(),
            "{ver}"
        );
    }
}

#[test]
fn apk_version_corpus_every_line() {
    let text = String::from_utf8(read("versions/apk-tools-version.data")).expect("utf-8");
    let (mut compares, mut validity) = (0, 0);
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            [a, op, b] => {
                let (invert, op) = match op.strip_prefix('!') {
                    Some(op) => (true, op),
                    None => (false, *op),
                };
                assert_eq!(apk::matches(a, op, b), !invert, "line {}: {line}", i + 1);
                compares += 1;
            }
            [v] => {
                let (invert, v) = match v.strip_prefix('!') {
                    Some(v) => (true, v),
                    None => (false, *v),
                };
                assert_eq!(apk::validate(v), !invert, "line {}: {line}", i + 1);
                validity += 1;
            }
            _ => panic!("line {}: unexpected shape {line}", i + 1),
        }
    }
    assert_eq!(compares + validity, 785);
    assert!(validity >= 30, "{validity}");
}
