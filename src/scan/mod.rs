//! Image scanning: package inventory from an image's layers (streamed, never unpacked), a
//! CycloneDX SBOM, an offline vulnerability database compiled from OSV records, matching with
//! each ecosystem's version order, and the policy gate with VEX and allow-list suppression.
//!
//! The pieces, in the order a scan uses them: [`flatten`] the layers into the few files the
//! detectors read, [`inventory`] them ([`os`], [`dpkg`], [`apk`], [`purl`]), write an
//! [`sbom`], [`matcher::match_inventory`] against a [`db::Database`] built from [`osv`]
//! records, then [`policy::evaluate`] (with [`vex`]) and render a [`report`].
//! [`image::scan_image`] runs all of it for one image whose layers are files; [`source`] finds
//! the images of a registry reference or a bundle and puts their layers in files.

pub mod apk;
pub mod bdb;
pub mod db;
pub mod dpkg;
pub mod evidence;
pub mod flatten;
pub mod gate;
pub mod image;
pub mod lang;
pub mod matcher;
pub mod ndb;
pub mod os;
pub mod osv;
pub mod pins;
pub mod policy;
pub mod purl;
pub mod report;
pub mod rescan;
pub mod rpm;
pub mod run;
pub mod sbom;
pub mod source;
pub mod sqlite;
pub mod trivy;
pub mod version;
pub mod vex;

use std::io::Read;

use serde::Serialize;

use flatten::{FlattenError, Layer, Limits, RootFs};
use os::{Family, OsInfo};

/// Which package database or ecosystem a package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageKind {
    /// dpkg (Debian, Ubuntu).
    Deb,
    /// apk (Alpine).
    Apk,
    /// rpm (Red Hat, Fedora, Rocky, AlmaLinux, ...).
    Rpm,
    /// A Go module (or the Go standard library, `stdlib`) compiled into a binary.
    GoModule,
    /// A Python distribution (`*.dist-info`, `*.egg-info`).
    Python,
    /// An npm package under `node_modules`.
    Npm,
    /// A Java archive (Maven coordinates).
    Java,
    /// A .NET package from a `*.deps.json`.
    Nuget,
    /// A Rust crate compiled into a binary (cargo-auditable).
    Cargo,
}

impl PackageKind {
    /// Every kind, in report order.
    pub const ALL: [PackageKind; 9] = [
        PackageKind::Deb,
        PackageKind::Apk,
        PackageKind::Rpm,
        PackageKind::GoModule,
        PackageKind::Python,
        PackageKind::Npm,
        PackageKind::Java,
        PackageKind::Nuget,
        PackageKind::Cargo,
    ];

    /// The name used in SBOM properties and reports (`deb`, `go-module`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Deb => "deb",
            PackageKind::Apk => "apk",
            PackageKind::Rpm => "rpm",
            PackageKind::GoModule => "go-module",
            PackageKind::Python => "python",
            PackageKind::Npm => "npm",
            PackageKind::Java => "java",
            PackageKind::Nuget => "nuget",
            PackageKind::Cargo => "cargo",
        }
    }

    /// The kind [`PackageKind::as_str`] names.
    pub fn parse(s: &str) -> Option<PackageKind> {
        PackageKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// True for OS packages (matched in the OS's ecosystem), false for application packages.
    pub fn is_os(self) -> bool {
        matches!(self, PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm)
    }
}

/// One installed OS package, whatever database it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The database it came from.
    pub kind: PackageKind,
    /// Binary package name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// The source package advisories are keyed by (dpkg `Source`, apk origin).
    pub source_name: String,
    /// The source package's version (the one advisories' ranges are written in).
    pub source_version: String,
    /// Architecture.
    pub arch: Option<String>,
    /// Maintainer.
    pub maintainer: Option<String>,
    /// License expression (apk).
    pub license: Option<String>,
    /// The database file it was read from.
    pub location: String,
    /// Its package URL.
    pub purl: String,
}

/// What an image holds: its OS and its packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// The detected OS, if any.
    pub os: Option<OsInfo>,
    /// Installed packages, sorted by name then version.
    pub packages: Vec<Package>,
    /// Files skipped (over a cap, malformed, a format not read), one line each naming the file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Inventory {
    /// How many packages of each kind, for tables and comparisons.
    pub fn counts(&self) -> std::collections::BTreeMap<PackageKind, usize> {
        let mut out = std::collections::BTreeMap::new();
        for p in &self.packages {
            *out.entry(p.kind).or_default() += 1;
        }
        out
    }
}

/// Why an image could not be inventoried.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The layers could not be read.
    #[error(transparent)]
    Flatten(#[from] FlattenError),
    /// The dpkg database is malformed.
    #[error(transparent)]
    Dpkg(#[from] dpkg::DpkgError),
    /// The apk database is malformed.
    #[error(transparent)]
    Apk(#[from] apk::ApkError),
    /// The rpm database is unreadable (truncated, corrupt).
    #[error(transparent)]
    Rpm(#[from] rpm::RpmError),
}

/// The files the detectors read: [`flatten::flatten`] keeps only these.
pub fn wanted(path: &str) -> bool {
    os::OS_FILES.contains(&path)
        || path == dpkg::STATUS_FILE
        || path == apk::INSTALLED_FILE
        || path == apk::INSTALLED_FILE_USR
        || rpm::is_db_file(path)
        || path
            .strip_prefix(dpkg::STATUS_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| !r.is_empty() && !r.contains('/') && dpkg::is_status_d_entry(r))
}

/// Flattens an image's layers (bottom first), reading application packages on the way
/// ([`lang::LangAnalyzer`]), and inventories the result.
pub fn inventory_layers<R: Read>(
    layers: impl IntoIterator<Item = Layer<R>>,
    limits: Limits,
) -> Result<Inventory, InventoryError> {
    let fs = flatten::flatten_with(layers, wanted, &lang::LangAnalyzer, limits)?;
    inventory(&fs)
}

/// Inventories a flattened filesystem: OS, dpkg, apk and rpm packages, and what the
/// analyzer found while flattening.
pub fn inventory(fs: &RootFs) -> Result<Inventory, InventoryError> {
    let os = os::detect(fs);
    let distro = os
        .as_ref()
        .and_then(OsInfo::purl_distro)
        .unwrap_or_default();
    let mut packages = Vec::new();
    let deb_namespace = match os.as_ref().map(|o| o.family) {
        Some(Family::Ubuntu) => "ubuntu",
        _ => "debian",
    };
    let mut dpkg_files: Vec<(String, &[u8])> = Vec::new();
    if let Some(b) = fs.read(dpkg::STATUS_FILE) {
        dpkg_files.push((dpkg::STATUS_FILE.to_string(), b));
    }
    for (p, b) in fs.files_in(dpkg::STATUS_DIR) {
        if dpkg::is_status_d_entry(p) {
            dpkg_files.push((p.to_string(), b));
        }
    }
    for (file, bytes) in dpkg_files {
        let text = String::from_utf8_lossy(bytes);
        for p in dpkg::parse_status(&text, &file)? {
            let upstream = if p.source_name != p.name || p.source_version != p.version {
                if p.source_version != p.version {
                    format!("{}@{}", p.source_name, p.source_version)
                } else {
                    p.source_name.clone()
                }
            } else {
                String::new()
            };
            let purl = purl::build(
                "deb",
                deb_namespace,
                &p.name,
                &p.version,
                &[
                    ("arch", p.architecture.as_deref().unwrap_or("")),
                    ("distro", &distro),
                    ("upstream", &upstream),
                ],
            );
            packages.push(Package {
                kind: PackageKind::Deb,
                name: p.name,
                version: p.version,
                source_name: p.source_name,
                source_version: p.source_version,
                arch: p.architecture,
                maintainer: p.maintainer,
                license: None,
                location: file.clone(),
                purl,
            });
        }
    }
    let apk_db = [apk::INSTALLED_FILE, apk::INSTALLED_FILE_USR]
        .into_iter()
        .find_map(|f| fs.read(f).map(|b| (f, b)));
    if let Some((file, b)) = apk_db {
        let text = String::from_utf8_lossy(b);
        for p in apk::parse_installed(&text, file)? {
            let upstream = if p.origin != p.name {
                p.origin.as_str()
            } else {
                ""
            };
            let purl = purl::build(
                "apk",
                "alpine",
                &p.name,
                &p.version,
                &[
                    ("arch", p.arch.as_deref().unwrap_or("")),
                    ("distro", &distro),
                    ("upstream", upstream),
                ],
            );
            packages.push(Package {
                kind: PackageKind::Apk,
                source_version: p.version.clone(),
                source_name: p.origin,
                name: p.name,
                version: p.version,
                arch: p.arch,
                maintainer: p.maintainer,
                license: p.license,
                location: file.to_string(),
                purl,
            });
        }
    }
    let rpm_db = rpm::DB_FILES
        .iter()
        .find_map(|(f, format)| fs.read(f).map(|b| (*f, b, *format)));
    if let Some((file, b, format)) = rpm_db {
        let namespace = os.as_ref().map(OsInfo::purl_namespace).unwrap_or("redhat");
        for p in rpm::read_db(b, file, format)? {
            if p.name == "gpg-pubkey" {
                continue; // an imported signing key, not software
            }
            let (source_name, source_version) = p.source();
            let epoch = p.epoch.map(|e| e.to_string()).unwrap_or_default();
            let purl = purl::build(
                "rpm",
                namespace,
                &p.name,
                &format!("{}-{}", p.version, p.release),
                &[
                    ("arch", p.arch.as_deref().unwrap_or("")),
                    ("distro", &distro),
                    ("epoch", &epoch),
                    ("upstream", p.source_rpm.as_deref().unwrap_or("")),
                ],
            );
            packages.push(Package {
                kind: PackageKind::Rpm,
                version: p.evr(),
                name: p.name,
                source_name,
                source_version,
                arch: p.arch,
                maintainer: p.vendor,
                license: p.license,
                location: file.to_string(),
                purl,
            });
        }
    }
    let mut warnings = Vec::new();
    for (_, found) in fs.found() {
        packages.extend(found.packages.iter().cloned());
        warnings.extend(found.warnings.iter().cloned());
    }
    packages.sort_by(|a, b| {
        (a.name.as_str(), a.version.as_str(), a.location.as_str()).cmp(&(
            b.name.as_str(),
            b.version.as_str(),
            b.location.as_str(),
        ))
    });
    Ok(Inventory {
        os,
        packages,
        warnings,
    })
}
