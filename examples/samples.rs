//! Builds sample content for `scripts/demo.sh` and the benchmark: deterministic images pushed to
//! a registry, and an HTTP Helm chart repository written to a directory.
//!
//! `cargo run --example samples -- demo REGISTRY CHART_DIR VENDOR_PUB`
//! `cargo run --example samples -- bench REGISTRY [BIG_LAYER_MIB]`
//! `cargo run --example samples -- many REGISTRY [N (default 120)]` (the many-image set; prints
//! one reference a line)

#[path = "../tests/common/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use airlock::registry::{Registry, RegistryOptions, Repo};
use fixtures::Compression;

fn client(host: &str) -> Registry {
    Registry::new(RegistryOptions {
        insecure: vec![host.to_string()],
        ..Default::default()
    })
    .expect("client")
}

/// Pushes the demo content; the images are signed, cosign-style, by a "vendor" key whose
/// public half is written to `vendor_pub` (the private half is thrown away).
async fn demo(host: &str, chart_dir: &str, vendor_pub: &str) {
    let reg = client(host);
    let vendor = airlock::trust::keys::SigningKey::generate().expect("key");
    if let Some(dir) = std::path::Path::new(vendor_pub).parent() {
        std::fs::create_dir_all(dir).expect("key dir");
    }
    std::fs::write(vendor_pub, vendor.public_key().to_pem()).expect("vendor key");
    let web = vec![
        fixtures::image(
            vec![
                fixtures::layer(1, 2 << 20, Compression::Gzip, false),
                fixtures::layer(2, 512 << 10, Compression::Gzip, false),
            ],
            "linux/amd64",
            false,
        ),
        fixtures::image(
            vec![
                fixtures::layer(3, 2 << 20, Compression::Gzip, false),
                fixtures::layer(2, 512 << 10, Compression::Gzip, false),
            ],
            "linux/arm64/v8",
            false,
        ),
    ];
    let idx = fixtures::index(&web, false);
    let web_repo = Repo::parse(host, "platform/web").expect("repository");
    fixtures::push_index(&reg, &web_repo, &web, &idx, "1.0").await;
    fixtures::push_signed(&reg, &web_repo, &idx.digest(), None, Some(&vendor)).await;
    let api = fixtures::image(
        vec![
            fixtures::layer(2, 512 << 10, Compression::Gzip, false),
            fixtures::layer(4, 1 << 20, Compression::Zstd, false),
        ],
        "linux/amd64",
        false,
    );
    let api_repo = Repo::parse(host, "platform/api").expect("repository");
    fixtures::push_image(&reg, &api_repo, &api, Some("2.3")).await;
    fixtures::push_signed(&reg, &api_repo, &api.manifest.digest(), None, Some(&vendor)).await;
    fixtures::push_oci_chart(
        &reg,
        &Repo::parse(host, "charts/web").expect("repository"),
        "web",
        "1.0.0",
    )
    .await;
    fixtures::write_chart_repo(std::path::Path::new(chart_dir), "podinfo", "6.4.0");
    println!("pushed platform/web:1.0 (amd64+arm64), platform/api:2.3 (both signed by the vendor key {vendor_pub}), charts/web:1.0.0; chart repo in {chart_dir}");
}

/// 20 images, about 1 GiB in all, layers from 1 KiB to 300 MiB, some shared.
async fn bench(host: &str, big_mib: usize) {
    let reg = client(host);
    let shared = fixtures::layer(1000, 8 << 20, Compression::None, false);
    let mut total = 0usize;
    for i in 0..20u64 {
        let mut layers = vec![
            shared.clone(),
            fixtures::layer(2000 + i, 1 << 10, Compression::None, false),
        ];
        let size = match i {
            0 => big_mib << 20,
            1 => 150 << 20,
            2..=5 => 64 << 20,
            6..=11 => 24 << 20,
            _ => 4 << 20,
        };
        layers.push(fixtures::layer(3000 + i, size, Compression::None, false));
        total += layers.iter().map(|(b, _)| b.bytes.len()).sum::<usize>();
        let img = fixtures::image(layers, "linux/amd64", false);
        fixtures::push_image(
            &reg,
            &Repo::parse(host, &format!("bench/img{i:02}")).expect("repository"),
            &img,
            Some("1"),
        )
        .await;
    }
    println!("{total}");
}

/// The many-image set of the WAN and memory benchmarks, the same bytes on every run for a
/// given `n`: a sixth of them two-platform indexes, the rest single-platform images
/// (`many/imgNNN:1`, `many/multiNN:1`; n = 120 is the WAN set: 100 and 20), every image a
/// shared 256 KiB base layer plus a small layer of its own; every fourth single-platform
/// image and every other index is signed cosign-style (30 of 120). Pushed a few at a time.
async fn many(host: &str, n: u64) {
    use futures_util::StreamExt;
    let reg = &client(host);
    let multi_count = n / 6;
    let base = fixtures::layer(5000, 256 << 10, Compression::Gzip, false);
    // Layer seeds: singles from 6000, index children from 6000 + max(n, 1000) (7000 for the
    // WAN set, as before), so none collide at any n.
    let singles = futures_util::stream::iter((0..n - multi_count).map(|i| {
        let base = base.clone();
        async move {
            let img = fixtures::image(
                vec![
                    base,
                    fixtures::layer(6000 + i, 16 << 10, Compression::Gzip, false),
                ],
                "linux/amd64",
                false,
            );
            let repo = Repo::parse(host, &format!("many/img{i:03}")).expect("repository");
            fixtures::push_image(reg, &repo, &img, Some("1")).await;
            if i % 4 == 0 {
                fixtures::push_signature(reg, &repo, &img.manifest.digest(), None).await;
            }
            format!("{repo}:1")
        }
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let multis = futures_util::stream::iter((0..multi_count).map(|i| {
        let base = base.clone();
        async move {
            let images: Vec<_> = ["linux/amd64", "linux/arm64/v8"]
                .iter()
                .enumerate()
                .map(|(k, platform)| {
                    fixtures::image(
                        vec![
                            base.clone(),
                            fixtures::layer(
                                6000 + n.max(1000) + 2 * i + k as u64,
                                16 << 10,
                                Compression::Gzip,
                                false,
                            ),
                        ],
                        platform,
                        false,
                    )
                })
                .collect();
            let idx = fixtures::index(&images, false);
            let repo = Repo::parse(host, &format!("many/multi{i:02}")).expect("repository");
            fixtures::push_index(reg, &repo, &images, &idx, "1").await;
            if i % 2 == 0 {
                fixtures::push_signature(reg, &repo, &idx.digest(), None).await;
            }
            format!("{repo}:1")
        }
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    for r in singles.iter().chain(&multis) {
        println!("{r}");
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("demo") if args.len() == 5 => demo(&args[2], &args[3], &args[4]).await,
        Some("bench") if args.len() >= 3 => {
            let big = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(300);
            bench(&args[2], big).await
        }
        Some("many") if (3..=4).contains(&args.len()) => {
            let n = match args.get(3).map(|s| s.parse::<u64>()) {
                None => 120,
                Some(Ok(n)) if n > 0 => n,
                Some(_) => {
                    eprintln!("samples many: N must be a positive whole number");
                    std::process::exit(2);
                }
            };
            many(&args[2], n).await
        }
        _ => {
            eprintln!(
                "usage: samples demo REGISTRY CHART_DIR VENDOR_PUB | samples bench REGISTRY [BIG_LAYER_MIB] | samples many REGISTRY [N]"
            );
            std::process::exit(2);
        }
    }
}
