//! Progress of a long process run: a live bar with counters on a terminal (indicatif, on
//! stderr), plain periodic lines when stderr is not a terminal (CI logs), nothing when the run
//! is short. Finished (cleared) when dropped.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// Plain lines are printed this often when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// A progress display; see the module docs.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: &'static str,
    total: u64,
    start: Instant,
    last_plain: Instant,
}

impl Progress {
    /// Progress towards `total` units of `label` (kills, values, ...).
    pub fn new(label: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(label);
            b
        });
        Progress {
            bar,
            label,
            total,
            start: Instant::now(),
            last_plain: Instant::now(),
        }
    }

    /// Sets the position and an extra counter text (`faults`, `commits`, ...).
    pub fn set(&mut self, pos: u64, extra: impl FnOnce() -> String) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
                b.set_message(format!("{} ({})", self.label, extra()));
            }
            None if self.last_plain.elapsed() >= PLAIN_EVERY => {
                self.last_plain = Instant::now();
                crate::out::warn!(
                    "  ... {pos}/{} {} after {:.0} s ({})",
                    self.total,
                    self.label,
                    self.start.elapsed().as_secs_f64(),
                    extra()
                );
            }
            None => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
