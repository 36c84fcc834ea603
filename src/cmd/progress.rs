//! Progress bars on stderr (indicatif): one for the phase and one per running task (a blob
//! download), labelled with what runs now. None with `--quiet` or when stderr is not a
//! terminal (warnings still print).

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use airlock::progress::{Reporter, Tally};

const BYTES: &str = "{prefix:>8} [{bar:30}] {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4} {msg}";
const ITEMS: &str = "{prefix:>8} [{bar:30}] {pos:>5}/{len:<5} {msg}";
const TASK: &str = "  {bar:20} {binary_bytes:>10}/{binary_total_bytes:<10} {msg}";
const COUNT: &str = "  {bar:20} {pos:>10}/{len:<10} {msg}";

/// The phase bar and the task bars.
pub struct Bars {
    /// `None` when nothing is drawn.
    multi: Option<MultiProgress>,
    bar: Mutex<Option<ProgressBar>>,
    tasks: Mutex<(Tally, HashMap<String, ProgressBar>)>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Bars {
    /// A reporter; `quiet` hides bars (warnings still print), and so does a stderr that is
    /// not a terminal.
    pub fn new(quiet: bool) -> Self {
        let draw = !quiet && std::io::stderr().is_terminal();
        Bars {
            multi: draw.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bar: Mutex::new(None),
            tasks: Mutex::new((Tally::default(), HashMap::new())),
        }
    }

    fn with<F: FnOnce(&ProgressBar)>(&self, f: F) {
        if let Ok(g) = self.bar.lock() {
            if let Some(b) = g.as_ref() {
                f(b);
            }
        }
    }

    /// A bar below the phase's for task `id` (bytes or items, by `template`).
    fn add_task(&self, id: &str, label: &str, total: u64, template: &str) {
        let Ok(mut g) = self.tasks.lock() else {
            return;
        };
        let (tally, bars) = &mut *g;
        if !tally.start(id, label, total) {
            return;
        }
        if let Some(multi) = &self.multi {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(style(template));
            bar.set_message(airlock::untrusted::shorten(label));
            bars.insert(id.to_owned(), bar);
        }
    }

    fn start_phase(&self, name: &str, total: u64, template: &str) {
        let Some(multi) = &self.multi else {
            return;
        };
        let bar = multi.add(ProgressBar::new(total));
        bar.set_style(style(template));
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut g) = self.bar.lock() {
            if let Some(old) = g.take() {
                old.finish_and_clear();
            }
            *g = Some(bar);
        }
    }
}

impl Reporter for Bars {
    fn phase(&self, name: &str, total_bytes: u64) {
        self.start_phase(name, total_bytes, BYTES);
    }

    fn phase_items(&self, name: &str, total_items: u64) {
        self.start_phase(name, total_items, ITEMS);
    }

    fn advance(&self, bytes: u64) {
        self.with(|b| b.inc(bytes));
    }

    fn rewind(&self, bytes: u64) {
        self.with(|b| b.set_position(b.position().saturating_sub(bytes)));
    }

    fn item(&self, label: &str) {
        self.with(|b| b.set_message(airlock::untrusted::shorten(label)));
    }

    fn warn(&self, message: &str) {
        let message = airlock::untrusted::escape(message);
        match &self.multi {
            Some(m) => m.suspend(|| errln!("warning: {message}")),
            None => errln!("warning: {message}"),
        }
    }

    fn finish_phase(&self) {
        if let Ok(mut g) = self.bar.lock() {
            if let Some(b) = g.take() {
                b.finish_and_clear();
            }
        }
    }

    fn task_start(&self, id: &str, label: &str, total: u64) {
        self.add_task(id, label, total, TASK);
    }

    fn count_start(&self, id: &str, label: &str, total: u64) {
        self.add_task(id, label, total, COUNT);
    }

    fn task_advance(&self, id: &str, bytes: u64) {
        if let Ok(mut g) = self.tasks.lock() {
            let (tally, bars) = &mut *g;
            if let (Some(done), Some(b)) = (tally.advance(id, bytes), bars.get(id)) {
                b.set_position(done);
            }
        }
    }

    fn task_rewind(&self, id: &str, bytes: u64) {
        if let Ok(mut g) = self.tasks.lock() {
            let (tally, bars) = &mut *g;
            if let (Some(done), Some(b)) = (tally.rewind(id, bytes), bars.get(id)) {
                b.set_position(done);
            }
        }
    }

    fn task_done(&self, id: &str) {
        if let Ok(mut g) = self.tasks.lock() {
            let (tally, bars) = &mut *g;
            tally.finish(id);
            if let Some(b) = bars.remove(id) {
                b.finish_and_clear();
            }
        }
    }
}
