//! Progress: one line per host showing its current phase (hidden when stderr is not a terminal).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    bars: Vec<(String, ProgressBar)>,
}

impl Progress {
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Progress {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{spinner} {prefix:<16} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = hosts
            .into_iter()
            .map(|h| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(h.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                (h.to_string(), bar)
            })
            .collect();
        Progress { multi, bars }
    }

    pub fn set(&self, host: &str, phase: &str) {
        if let Some((_, bar)) = self.bars.iter().find(|(h, _)| h == host) {
            bar.set_message(phase.to_string());
        }
    }

    pub fn finish(&self, host: &str, word: &str) {
        if let Some((_, bar)) = self.bars.iter().find(|(h, _)| h == host) {
            bar.finish_with_message(word.to_string());
        }
    }

    /// Print a line above the bars (or plainly when hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    pub fn clear(&self) {
        for (_, bar) in &self.bars {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
