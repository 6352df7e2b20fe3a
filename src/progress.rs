//! The one progress factory: a bar per VM and spinners for long steps, drawn on stderr when it
//! is a terminal. Elsewhere (CI, pipes) each bar reports only how it finished, as a plain line
//! on stderr (stdout stays for results, e.g. JSON).

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Output;

/// Progress for one run of k0slab.
pub struct Progress {
    multi: MultiProgress,
    out: Output,
    drawn: bool,
}

impl Progress {
    pub fn new(out: &Output) -> Self {
        let drawn = out.interactive();
        let target = if drawn {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            out: out.clone(),
            drawn,
        }
    }

    /// A bar of `steps` steps for machine or task `name`.
    pub fn bar(&self, name: &str, width: usize, steps: u64) -> Bar {
        let pb = self.multi.add(ProgressBar::new(steps));
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner:.cyan}} {{prefix:<{width}.bold}} [{{bar:12.cyan/blue}}] {{elapsed:>4}} {{wide_msg}}"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.finish_setup(pb, name)
    }

    /// A bar in bytes for machine `name` (a transfer of `total` bytes, if known).
    pub fn bytes_bar(&self, name: &str, width: usize, total: Option<u64>) -> Bar {
        let pb = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        let bar = if total.is_some() {
            "[{bar:12.cyan/blue}] {bytes:>9}/{total_bytes:<9}"
        } else {
            "{bytes:>9}"
        };
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner:.cyan}} {{prefix:<{width}.bold}} {bar} {{binary_bytes_per_sec:>11}} {{wide_msg}}"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.finish_setup(pb, name)
    }

    /// A spinner for a step without known length.
    pub fn spinner(&self, name: &str) -> Bar {
        let pb = self.multi.add(ProgressBar::new_spinner());
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner:.cyan} {prefix:<15.bold} {elapsed:>4} {wide_msg}",
            )
            .expect("valid template"),
        );
        self.finish_setup(pb, name)
    }

    fn finish_setup(&self, pb: ProgressBar, name: &str) -> Bar {
        pb.set_prefix(name.to_string());
        if self.drawn {
            pb.enable_steady_tick(Duration::from_millis(120));
        }
        Bar {
            pb,
            name: name.to_string(),
            out: self.out.clone(),
            drawn: self.drawn,
            started: Instant::now(),
        }
    }
}

/// One bar or spinner.
pub struct Bar {
    pb: ProgressBar,
    name: String,
    out: Output,
    drawn: bool,
    started: Instant,
}

impl Bar {
    /// Moves to step `position` with a message.
    pub fn step(&self, position: u64, message: &str) {
        self.pb.set_position(position.max(self.pb.position()));
        self.pb.set_message(message.to_string());
    }

    /// Adds `n` to the position (bytes of a bytes bar).
    pub fn advance(&self, n: u64) {
        self.pb.inc(n);
    }

    pub fn message(&self, message: &str) {
        self.pb.set_message(message.to_string());
    }

    fn elapsed(&self) -> String {
        format_duration(self.started.elapsed())
    }

    /// Removes the bar without a word (it was not needed after all).
    pub fn clear(&self) {
        self.pb.finish_and_clear();
    }

    /// Finishes successfully.
    pub fn done(&self, message: &str) {
        if self.drawn {
            if let Some(len) = self.pb.length() {
                self.pb.set_position(len);
            }
            self.pb.finish_with_message(format!("✓ {message}"));
        } else {
            self.plain('✓', message);
        }
    }

    /// Finishes with a failure.
    pub fn failed(&self, message: &str) {
        if self.drawn {
            self.pb.abandon_with_message(format!("✗ {message}"));
        } else {
            self.plain('✗', message);
        }
    }

    /// Where nothing is drawn: one line saying how the bar finished.
    fn plain(&self, mark: char, message: &str) {
        self.pb.finish_and_clear();
        self.out.progress(&format!(
            "  {mark} {:<16} {message} ({})",
            self.name,
            self.elapsed()
        ));
    }
}

/// `1m05s`, `42s`, `0.4s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if secs >= 10 {
        format!("{secs}s")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m05s");
    }
}
