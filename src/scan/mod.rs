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
pub mod db;
pub mod dpkg;
pub mod evidence;
pub mod flatten;
pub mod gate;
pub mod image;
pub mod matcher;
pub mod os;
pub mod osv;
pub mod policy;
pub mod purl;
pub mod report;
pub mod run;
pub mod sbom;
pub mod source;
pub mod trivy;
pub mod version;
pub mod vex;

use std::io::Read;

use serde::Serialize;

use flatten::{FlattenError, Layer, Limits, RootFs};
use os::{Family, OsInfo};

/// Which package database a package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    /// dpkg (Debian, Ubuntu).
    Deb,
    /// apk (Alpine).
    Apk,
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
}

/// The files the detectors read: [`flatten::flatten`] keeps only these.
pub fn wanted(path: &str) -> bool {
    os::OS_FILES.contains(&path)
        || path == dpkg::STATUS_FILE
        || path == apk::INSTALLED_FILE
        || path == apk::INSTALLED_FILE_USR
        || path
            .strip_prefix(dpkg::STATUS_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| !r.is_empty() && !r.contains('/') && dpkg::is_status_d_entry(r))
}

/// Flattens an image's layers (bottom first) and inventories the result.
pub fn inventory_layers<R: Read>(
    layers: impl IntoIterator<Item = Layer<R>>,
    limits: Limits,
) -> Result<Inventory, InventoryError> {
    let fs = flatten::flatten(layers, wanted, limits)?;
    inventory(&fs)
}

/// Inventories a flattened filesystem: OS, dpkg and apk packages.
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
    packages.sort_by(|a, b| {
        (a.name.as_str(), a.version.as_str(), a.location.as_str()).cmp(&(
            b.name.as_str(),
            b.version.as_str(),
            b.location.as_str(),
        ))
    });
    Ok(Inventory { os, packages })
}
