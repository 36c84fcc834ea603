//! A CycloneDX 1.5 JSON SBOM per image and platform: the image as the metadata component,
//! the OS as an `operating-system` component and every package as a `library` with its purl.
//! Deterministic: the serial number derives from the image digest and platform, the timestamp
//! is the caller's (e.g. `SOURCE_DATE_EPOCH`), components are sorted.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::Inventory;
use crate::oci::{Digest, Platform};

/// What the SBOM describes.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The image reference (`docker.io/library/alpine:3.18`).
    pub name: &'a str,
    /// The image manifest digest.
    pub digest: &'a Digest,
    /// Its platform.
    pub platform: Option<&'a Platform>,
}

/// A deterministic RFC 4122 (version 5 style) UUID from bytes.
fn uuid_from(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// Builds the SBOM document.
pub fn cyclonedx(subject: &Subject<'_>, inventory: &Inventory, timestamp: SystemTime) -> Value {
    let platform = subject.platform.map(|p| p.to_string()).unwrap_or_default();
    let serial = uuid_from(format!("{}\n{}", subject.digest, platform).as_bytes());
    let mut components = Vec::new();
    if let Some(os) = &inventory.os {
        let mut c = json!({
            "type": "operating-system",
            "bom-ref": format!("os:{}@{}", os.id, os.version_id.clone().unwrap_or_default()),
            "name": os.id,
        });
        if let Some(v) = &os.version_id {
            c["version"] = json!(v);
        }
        if let Some(p) = &os.pretty_name {
            c["description"] = json!(p);
        }
        // What matching needs to re-match from the SBOM alone (`scan::gate` at import).
        let mut props = Vec::new();
        if let Some(r) = &os.release {
            props.push(json!({"name": "airlock:os:release", "value": r}));
        }
        if let Some(c) = &os.codename {
            props.push(json!({"name": "airlock:os:codename", "value": c}));
        }
        if !props.is_empty() {
            c["properties"] = json!(props);
        }
        components.push(c);
    }
    let mut refs = BTreeSet::new();
    for p in &inventory.packages {
        let mut bom_ref = p.purl.clone();
        let mut n = 1;
        while !refs.insert(bom_ref.clone()) {
            n += 1;
            bom_ref = format!("{}#{n}", p.purl);
        }
        let mut props = vec![
            json!({"name": "airlock:package:type", "value": p.kind.as_str()}),
            json!({"name": "airlock:package:source-name", "value": p.source_name}),
            json!({"name": "airlock:package:source-version", "value": p.source_version}),
            json!({"name": "airlock:package:location", "value": p.location}),
        ];
        if let Some(a) = &p.arch {
            props.push(json!({"name": "airlock:package:arch", "value": a}));
        }
        let mut c = json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
            "properties": props,
        });
        if let Some(m) = &p.maintainer {
            c["publisher"] = json!(m);
        }
        if let Some(l) = &p.license {
            c["licenses"] = json!([{"license": {"name": l}}]);
        }
        components.push(c);
    }
    let mut image = json!({
        "type": "container",
        "bom-ref": subject.digest.to_string(),
        "name": subject.name,
        "version": subject.digest.to_string(),
    });
    if !platform.is_empty() {
        image["properties"] = json!([{"name": "airlock:image:platform", "value": platform}]);
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{serial}"),
        "version": 1,
        "metadata": {
            "timestamp": humantime::format_rfc3339_seconds(timestamp).to_string(),
            "tools": {"components": [{
                "type": "application",
                "name": "airlock",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": image,
        },
        "components": components,
    })
}

fn prop<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c.get("properties")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get("value")?
        .as_str()
}

/// Reads back the inventory of an SBOM [`cyclonedx`] wrote, so packages can be matched again
/// against another (newer) database without the image. Fails, naming what is missing, on an
/// SBOM that does not carry what matching needs.
pub fn inventory_from(sbom: &Value) -> Result<Inventory, String> {
    use super::os::OsInfo;
    use super::{Package, PackageKind};
    if sbom.get("bomFormat").and_then(Value::as_str) != Some("CycloneDX") {
        return Err("not a CycloneDX document".into());
    }
    let comps = sbom
        .get("components")
        .and_then(Value::as_array)
        .ok_or("no `components`")?;
    let s = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    let mut inv = Inventory::default();
    for c in comps {
        match c.get("type").and_then(Value::as_str) {
            Some("operating-system") => {
                let id = s(c, "name").ok_or("operating-system component without `name`")?;
                let family = super::os::family_of(&id);
                inv.os = Some(OsInfo {
                    family,
                    id,
                    version_id: s(c, "version"),
                    release: prop(c, "airlock:os:release").map(str::to_string),
                    codename: prop(c, "airlock:os:codename").map(str::to_string),
                    pretty_name: s(c, "description"),
                });
            }
            Some("library") => {
                let name = s(c, "name").ok_or("library component without `name`")?;
                let missing = |what: &str| format!("package `{name}`: no {what}");
                let kind = prop(c, "airlock:package:type")
                    .and_then(PackageKind::parse)
                    .ok_or_else(|| missing("airlock:package:type property"))?;
                let version = s(c, "version").ok_or_else(|| missing("version"))?;
                inv.packages.push(Package {
                    kind,
                    source_name: prop(c, "airlock:package:source-name")
                        .map(str::to_string)
                        .ok_or_else(|| missing("airlock:package:source-name property"))?,
                    source_version: prop(c, "airlock:package:source-version")
                        .map(str::to_string)
                        .ok_or_else(|| missing("airlock:package:source-version property"))?,
                    arch: prop(c, "airlock:package:arch").map(str::to_string),
                    maintainer: s(c, "publisher"),
                    license: c
                        .pointer("/licenses/0/license/name")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    location: prop(c, "airlock:package:location")
                        .unwrap_or_default()
                        .to_string(),
                    purl: s(c, "purl").ok_or_else(|| missing("purl"))?,
                    name,
                    version,
                });
            }
            _ => {}
        }
    }
    Ok(inv)
}
