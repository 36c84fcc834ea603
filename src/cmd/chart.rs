//! `airlock chart images SOURCE`: render a Helm chart with the built-in engine and list every
//! image it deploys, where each was found, and what could not be resolved.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock::chart::{chart_images, ChartInput, ImageReport, RenderOptions};
use airlock::collect::chart_images::{fetch_remote_chart, RemoteChart};

use super::{print_json, print_table, Format, Global, RegistryArgs, EXIT_FAILURE};

/// Arguments of `airlock chart`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to do with the chart.
    #[command(subcommand)]
    pub command: ChartCommand,
}

/// `chart` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ChartCommand {
    /// Render a chart (built-in Helm engine, offline) and list every image it deploys.
    ///
    /// Exit 1 when the chart fails to render or an `image` field is not a valid reference.
    Images(ImagesArgs),
}

/// Arguments of `airlock chart images`.
#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// The chart: a `.tgz` archive, a chart directory, `oci://HOST/REPO:VERSION[@DIGEST]`, or
    /// a chart name with `--repo URL --version V`.
    pub source: String,
    /// An HTTP chart repository (the URL holding `index.yaml`); SOURCE is then the chart's name.
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// The chart version to take from `--repo`.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// A values file, as `helm -f`. Repeatable; later files win.
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// A value, as `helm --set` (`a.b=1,c={x,y}`). Repeatable; applied after the files.
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The Kubernetes version templates see (`.Capabilities.KubeVersion`).
    #[arg(long, value_name = "VERSION", default_value = airlock::chart::render::DEFAULT_KUBE_VERSION)]
    pub kube_version: String,
    /// An extra API version templates see in `.Capabilities.APIVersions`. Repeatable.
    #[arg(long = "api-versions", value_name = "GROUP/VERSION")]
    pub api_versions: Vec<String>,
    /// The release namespace (`.Release.Namespace`).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// The release name (`.Release.Name`).
    #[arg(long, default_value = "release-name")]
    pub release: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `airlock chart`.
pub async fn run(args: Args, g: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        ChartCommand::Images(a) => images(a, g).await,
    }
}

async fn images(a: ImagesArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let mut opts = RenderOptions {
        release: a.release,
        namespace: a.namespace,
        kube_version: a.kube_version,
        api_versions: a.api_versions,
        set: a.set,
        ..RenderOptions::default()
    };
    for f in &a.values {
        let data =
            airlock::io::read_capped(f, airlock::chart::archive::MAX_FILE_BYTES, "values file")?;
        opts.values_files.push((f.display().to_string(), data));
    }
    let remote = match (&a.repo, &a.version) {
        (Some(repo), Some(version)) => Some(RemoteChart::Repo {
            repo: repo.clone(),
            name: a.source.clone(),
            version: version.clone(),
        }),
        _ if a.source.starts_with("oci://") => Some(RemoteChart::Oci(
            airlock::spec::parse_oci_chart_ref(&a.source)
                .map_err(|why| anyhow::anyhow!("chart `{}`: {why}", a.source))?,
        )),
        _ => None,
    };
    let input = match remote {
        Some(chart) => {
            let registry = a.registry.client(g, None)?;
            let tmp = tempfile::tempdir()?;
            let bytes = fetch_remote_chart(&registry, &chart, tmp.path()).await?;
            ChartInput::Archive {
                bytes,
                label: chart.label(),
            }
        }
        None => {
            let path = PathBuf::from(&a.source);
            if path.is_dir() {
                ChartInput::Dir(path)
            } else {
                let bytes = airlock::io::read_capped(
                    &path,
                    airlock::chart::archive::MAX_CHART_BYTES,
                    "chart",
                )?;
                ChartInput::Archive {
                    bytes,
                    label: a.source.clone(),
                }
            }
        }
    };
    // The engine runs on its own thread; keep the runtime's workers free meanwhile.
    let report = tokio::task::spawn_blocking(move || chart_images(input, opts)).await??;
    match g.format {
        Format::Json => print_json(&report)?,
        Format::Table => print_human(&report),
    }
    Ok(if report.unresolved.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

fn print_human(r: &ImageReport) {
    let rows: Vec<Vec<String>> = r
        .found
        .iter()
        .filter(|f| f.kind != "values")
        .map(|f| {
            vec![
                f.image.clone(),
                f.template.clone(),
                format!("{}/{}", f.kind, f.name),
                f.container.clone(),
            ]
        })
        .collect();
    print_table(&["IMAGE", "TEMPLATE", "OBJECT", "CONTAINER"], &rows);
    println!("{} image(s)", r.images.len());
    let values: Vec<Vec<String>> = r
        .found
        .iter()
        .filter(|f| f.kind == "values")
        .map(|f| vec![f.image.clone(), f.name.clone()])
        .collect();
    if !values.is_empty() {
        println!("\nimage-shaped values (an operator may deploy these at run time; not rendered):");
        print_table(&["IMAGE", "VALUE"], &values);
    }
    for u in &r.unresolved {
        println!(
            "unresolved: {:?} in {} {}/{} {}: {}",
            u.raw, u.template, u.kind, u.name, u.container, u.reason
        );
    }
}
