//! Progress bars on stderr (indicatif), hidden with `--quiet` or when stderr is not a terminal.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use airlock::progress::Reporter;

/// Draws one bar per phase.
pub struct Bars {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// A reporter; `quiet` hides bars (warnings still print).
    pub fn new(quiet: bool) -> Self {
        Bars {
            quiet,
            bar: Mutex::new(None),
        }
    }

    fn with<F: FnOnce(&ProgressBar)>(&self, f: F) {
        if let Ok(g) = self.bar.lock() {
            if let Some(b) = g.as_ref() {
                f(b);
            }
        }
    }
}

impl Reporter for Bars {
    fn phase(&self, name: &str, total_bytes: u64) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut g) = self.bar.lock() {
            if let Some(old) = g.take() {
                old.finish_and_clear();
            }
            *g = Some(bar);
        }
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
        let mut printed = false;
        self.with(|b| {
            b.suspend(|| errln!("warning: {message}"));
            printed = true;
        });
        if !printed {
            errln!("warning: {message}");
        }
    }

    fn finish_phase(&self) {
        if let Ok(mut g) = self.bar.lock() {
            if let Some(b) = g.take() {
                b.finish_and_clear();
            }
        }
    }
}
