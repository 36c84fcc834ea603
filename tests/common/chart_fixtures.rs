//! Hostile and broken chart fixtures for `chart images` tests, built byte by byte (the `tar`
//! crate's builder refuses to write `..` paths, which is the point of one of them).
// Shared by two test crates, each using a part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

/// A tar header for `path` of type `kind` (`b'0'` file, `b'1'` hard link, `b'2'` symlink).
fn header(path: &str, kind: u8, size: u64, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..path.len()].copy_from_slice(path.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    let sz = format!("{size:011o}");
    h[124..135].copy_from_slice(sz.as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// A gzipped tar of `(path, kind, data, link)` entries.
pub fn tgz(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for (path, kind, data, link) in entries {
        gz.write_all(&header(path, *kind, data.len() as u64, link))
            .unwrap();
        gz.write_all(data).unwrap();
        let pad = (512 - data.len() % 512) % 512;
        gz.write_all(&vec![0u8; pad]).unwrap();
    }
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
}

/// A chart whose `templates/big.yaml` is 1 GiB of zeros (about 1 MiB compressed).
pub fn gzip_bomb() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&header("c/Chart.yaml", b'0', CHART_YAML.len() as u64, ""))
        .unwrap();
    let mut first = CHART_YAML.as_bytes().to_vec();
    first.resize(512, 0);
    gz.write_all(&first).unwrap();
    let size = 1u64 << 30;
    gz.write_all(&header("c/templates/big.yaml", b'0', size, ""))
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        gz.write_all(&zeros).unwrap();
    }
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
}

/// A minimal Chart.yaml.
pub const CHART_YAML: &str = "apiVersion: v2\nname: c\nversion: 0.1.0\n";

/// Writes a chart directory with one template.
pub fn chart_dir(dir: &Path, template: &str) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("Chart.yaml"), CHART_YAML).unwrap();
    std::fs::write(dir.join("values.yaml"), "image: nginx:1.27\n").unwrap();
    std::fs::write(dir.join("templates/t.yaml"), template).unwrap();
}

/// A template that includes itself forever.
pub const RECURSE: &str =
    "{{ define \"loop\" }}{{ include \"loop\" . }}{{ end }}{{ include \"loop\" . }}\n";
/// A template that loops for a long time without output.
pub const SPIN: &str = "{{ range until 1000000 }}{{ range until 1000000 }}{{ end }}{{ end }}\n";
/// A template that calls `fail`.
pub const FAIL: &str = "{{ fail \"set .Values.password\" }}\n";
/// A Pod with one image from values.
pub const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: app\n      image: {{ .Values.image }}\n";

/// Renders a chart archive as the expected lists and the oracle were made: release `rel`,
/// namespace `ns`, an optional values file.
pub fn render_rel_ns(
    tgz: &Path,
    values: Option<&Path>,
) -> Result<airlock::chart::ImageReport, String> {
    let mut opts = airlock::chart::RenderOptions {
        release: "rel".into(),
        namespace: "ns".into(),
        ..airlock::chart::RenderOptions::default()
    };
    if let Some(v) = values {
        opts.values_files
            .push((v.display().to_string(), std::fs::read(v).unwrap()));
    }
    let input = airlock::chart::ChartInput::Archive {
        bytes: std::fs::read(tgz).unwrap(),
        label: tgz.display().to_string(),
    };
    airlock::chart::chart_images(input, opts).map_err(|e| format!("{}: {e}", tgz.display()))
}

/// The images of rendered objects only (not annotations, not image-shaped values): what Helm's
/// rendered manifests hold.
pub fn rendered_images(r: &airlock::chart::ImageReport) -> std::collections::BTreeSet<String> {
    r.found
        .iter()
        .filter(|f| f.kind != "annotation" && f.kind != "values")
        .map(|f| f.image.clone())
        .collect()
}
