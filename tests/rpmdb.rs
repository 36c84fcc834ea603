//! The Berkeley DB (`Packages`) and ndb (`Packages.db`) rpm databases, read from real files
//! of go-rpmdb's test data and checked against its expected package lists
//! (tests/data/packages/PROVENANCE.md), and damaged copies of them.

use std::path::{Path, PathBuf};

use airlock::scan::flatten::RootFs;
use airlock::scan::rpm::{self, RpmPackage};
use airlock::scan::{self, PackageKind};

const BDB: &str = "packages/rpm/go-rpmdb-libuuid-bdb";
const NDB: &str = "packages/rpm/go-rpmdb-sle15-ndb";
const BDB_FILE: &str = "var/lib/rpm/Packages";
const NDB_FILE: &str = "var/lib/rpm/Packages.db";
const PAGE: usize = 4096;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The upstream-expected packages, as (epoch, name, version, release, arch, sourcerpm,
/// license, vendor).
fn expected(dir: &str) -> Vec<RpmPackage> {
    let v: serde_json::Value =
        serde_json::from_slice(&read(&format!("{dir}/expected-packages.json"))).expect("json");
    let s = |p: &serde_json::Value, k: &str| p[k].as_str().expect(k).to_string();
    v["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| RpmPackage {
            name: s(p, "name"),
            version: s(p, "version"),
            release: s(p, "release"),
            epoch: p["epoch"].as_u64().map(|e| e as u32),
            arch: Some(s(p, "arch")),
            source_rpm: Some(s(p, "source_rpm")),
            license: Some(s(p, "license")),
            vendor: Some(s(p, "vendor")),
        })
        .collect()
}

#[test]
fn bdb_libuuid_matches_go_rpmdb_expectation() {
    let got = rpm::read_bdb(&read(&format!("{BDB}/{BDB_FILE}")), BDB_FILE).expect("reads");
    assert_eq!(got, expected(BDB));
}

#[test]
fn ndb_sle15_matches_go_rpmdb_expectation() {
    let got = rpm::read_ndb(&read(&format!("{NDB}/{NDB_FILE}")), NDB_FILE).expect("reads");
    let want = expected(NDB);
    assert_eq!(want.len(), 35);
    assert_eq!(got, want);
}

#[test]
fn inventory_reads_each_format_where_rpm_keeps_it() {
    for (dir, file, n) in [(BDB, BDB_FILE, 1), (NDB, NDB_FILE, 35)] {
        let bytes = read(&format!("{dir}/{file}"));
        for place in [
            file.to_string(),
            file.replace("var/lib/rpm", "usr/lib/sysimage/rpm"),
        ] {
            assert!(scan::wanted(&place), "{place}");
            let fs = RootFs::from_files(vec![(place.clone(), bytes.clone())]);
            let inv = scan::inventory(&fs).expect("inventory");
            assert_eq!(inv.packages.len(), n, "{place}");
            for p in &inv.packages {
                assert_eq!(p.kind, PackageKind::Rpm);
                assert_eq!(p.location, place);
                assert!(p.purl.starts_with("pkg:rpm/redhat/"), "{}", p.purl);
            }
        }
    }
}

fn bdb_error(bytes: &[u8]) -> String {
    rpm::read_bdb(bytes, BDB_FILE)
        .expect_err("damaged file read")
        .to_string()
}

fn ndb_error(bytes: &[u8]) -> String {
    rpm::read_ndb(bytes, NDB_FILE)
        .expect_err("damaged file read")
        .to_string()
}

#[test]
fn damaged_berkeley_db_files_name_file_and_offset() {
    let db = read(&format!("{BDB}/{BDB_FILE}"));
    assert_eq!(db.len() % PAGE, 0);
    let pages = db.len() / PAGE;

    // Truncated: the metadata names a last page the file no longer has.
    let cut = &db[..db.len() - PAGE - 100];
    assert_eq!(
        bdb_error(cut),
        format!(
            "{BDB_FILE}: page {} (offset {}) is past the end of the file ({} pages): truncated?",
            pages - 1,
            (pages - 1) * PAGE,
            pages - 2
        )
    );
    assert_eq!(
        bdb_error(&db[..100]), // the metadata is whole, the pages it names are not
        format!(
            "{BDB_FILE}: page {} (offset {}) is past the end of the file (0 pages): truncated?",
            pages - 1,
            (pages - 1) * PAGE
        )
    );

    // A cyclic overflow chain: the last page of the first header's chain links back to its
    // first page.
    let item = find_offpage_item(&db);
    let word = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let first = word(&db, item + 4) as usize;
    let mut last = first;
    while word(&db, last * PAGE + 16) != 0 {
        last = word(&db, last * PAGE + 16) as usize;
    }
    assert_ne!(first, last, "the header spans several pages");
    let mut cyclic = db.clone();
    cyclic[last * PAGE + 16..last * PAGE + 20].copy_from_slice(&(first as u32).to_le_bytes());
    // The item's total length says more is to come, so the chain is followed back to `first`.
    let tlen = word(&cyclic, item + 8);
    cyclic[item + 8..item + 12].copy_from_slice(&(tlen + 1).to_le_bytes());
    assert_eq!(
        bdb_error(&cyclic),
        format!(
            "{BDB_FILE}: corrupt at offset {} (page {first}): overflow page already read (cyclic or shared chain)",
            first * PAGE
        )
    );

    // An oversize header: the item claims 1 GiB.
    let mut huge = db.clone();
    huge[item + 8..item + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    assert_eq!(
        bdb_error(&huge),
        format!(
            "{BDB_FILE}: corrupt at offset {} (page {}): value longer than the 32 MiB limit",
            item + 8,
            item / PAGE
        )
    );

    // A chain that ends early: the item claims more than the chain holds.
    let mut short = db.clone();
    short[item + 8..item + 12].copy_from_slice(&(tlen + 1).to_le_bytes());
    assert!(
        bdb_error(&short).contains("overflow chain ends before the value's length"),
        "{}",
        bdb_error(&short)
    );

    // Not a Berkeley DB file at all (the ndb file), and a zeroed header blob.
    assert_eq!(
        bdb_error(&read(&format!("{NDB}/{NDB_FILE}"))),
        format!("{BDB_FILE}: not a Berkeley DB hash database (no hash magic at offset 12)")
    );
    let mut zeroed = db.clone();
    zeroed[first * PAGE + 26..first * PAGE + 34].fill(0xff);
    assert!(
        bdb_error(&zeroed).starts_with(&format!(
            "{BDB_FILE}: package header at offset {item}: malformed rpm header"
        )),
        "{}",
        bdb_error(&zeroed)
    );
}

/// The file offset of the first off-page item of the real file's hash pages.
fn find_offpage_item(db: &[u8]) -> usize {
    for n in 1..db.len() / PAGE {
        let p = &db[n * PAGE..(n + 1) * PAGE];
        if p[25] != 13 && p[25] != 2 {
            continue;
        }
        let entries = u16::from_le_bytes([p[20], p[21]]) as usize;
        for i in (1..entries).step_by(2) {
            let at = u16::from_le_bytes([p[26 + 2 * i], p[27 + 2 * i]]) as usize;
            if p[at] == 3 {
                return n * PAGE + at;
            }
        }
    }
    panic!("no off-page item")
}

#[test]
fn damaged_ndb_files_name_file_and_offset() {
    let db = read(&format!("{NDB}/{NDB_FILE}"));
    let slot = |i: usize| {
        let o = 32 + 16 * i;
        let w = |k: usize| u32::from_le_bytes(db[o + k..o + k + 4].try_into().unwrap()) as usize;
        (w(8) * 16, w(12) * 16)
    };
    let (start, run) = slot(0);

    // Truncated inside the last package's blocks.
    let (last_start, _) = (0..35).map(slot).max().expect("slots");
    assert_eq!(
        ndb_error(&db[..last_start + 100]),
        format!(
            "{NDB_FILE}: a package's blocks at offset {last_start} ends past the end of the file ({} bytes): truncated?",
            last_start + 100
        )
    );
    assert_eq!(
        ndb_error(&db[..2000]),
        format!("{NDB_FILE}: the slot pages at offset 32 ends past the end of the file (2000 bytes): truncated?")
    );

    // One flipped bit inside the first package's header.
    let mut flipped = db.clone();
    flipped[start + 100] ^= 1;
    assert_eq!(
        ndb_error(&flipped),
        format!(
            "{NDB_FILE}: corrupt at offset {}: blob checksum does not match",
            start + run - 12
        )
    );

    // A slot whose run claims 4 GiB of blocks, and a slot page count of 2^32 - 1.
    let mut huge = db.clone();
    huge[32 + 12..32 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(ndb_error(&huge).contains(&format!("a package's blocks at offset {start}")));
    let mut pages = db.clone();
    pages[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(ndb_error(&pages).contains("the slot pages at offset 32 ends past the end"));

    // A slot without its magic, and a Berkeley DB file.
    let mut bad = db.clone();
    bad[48] = b'X';
    assert_eq!(
        ndb_error(&bad),
        format!("{NDB_FILE}: corrupt at offset 48: slot without its `Slot` magic")
    );
    assert_eq!(
        ndb_error(&read(&format!("{BDB}/{BDB_FILE}"))),
        format!("{NDB_FILE}: not an rpm ndb database (no `RpmP` version 0 header)")
    );
}

#[test]
fn a_damaged_rpm_database_fails_the_inventory_naming_it() {
    let db = read(&format!("{NDB}/{NDB_FILE}"));
    let fs = RootFs::from_files(vec![(NDB_FILE.to_string(), db[..20_000].to_vec())]);
    let e = scan::inventory(&fs).expect_err("truncated");
    assert!(e.to_string().starts_with(NDB_FILE), "{e}");
}
