//! Helm charts' images: render a chart with a built-in Go-template/Helm engine and list every
//! image it deploys. `archive` reads chart files safely, `template` is the engine, `values`
//! and `render` are Helm's chart semantics, `images` walks what was rendered.

pub mod archive;
pub mod images;
pub mod render;
pub mod template;
pub mod values;

use std::path::PathBuf;

pub use images::{Found, ImageReport, Unresolved};
pub use render::{RenderError, RenderOptions};

/// Stack for the render thread: `include` may nest 1000 deep, as in Helm.
const RENDER_STACK: usize = 512 << 20;

/// Where a chart's files come from.
#[derive(Debug, Clone)]
pub enum ChartInput {
    /// A `.tgz` held in memory, with a label for errors (file name or reference).
    Archive {
        /// The archive.
        bytes: Vec<u8>,
        /// Its name.
        label: String,
    },
    /// A chart directory.
    Dir(PathBuf),
}

/// Renders a chart and finds its images. Runs on its own thread (the engine's values are not
/// `Send`, and deep `include` chains need a large stack).
pub fn chart_images(input: ChartInput, opts: RenderOptions) -> Result<ImageReport, RenderError> {
    let worker = std::thread::Builder::new()
        .name("chart-render".into())
        .stack_size(RENDER_STACK)
        .spawn(move || render_and_walk(&input, &opts));
    match worker {
        Ok(h) => match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(e) => Err(RenderError::Archive(archive::ArchiveError::Io {
            path: PathBuf::from("<render thread>"),
            source: e,
        })),
    }
}

fn render_and_walk(input: &ChartInput, opts: &RenderOptions) -> Result<ImageReport, RenderError> {
    let mut budget = archive::Budget::default();
    let (files, label) = match input {
        ChartInput::Archive { bytes, label } => {
            (archive::read_tgz(bytes, label, &mut budget)?, String::new())
        }
        ChartInput::Dir(d) => (archive::read_dir(d, &mut budget)?, String::new()),
    };
    let chart = render::load(files, &label, &mut budget, 0)?;
    let rendered = render::render(chart, opts)?;
    images::find_images(&rendered)
}
