//! The benchmark's figures, each beside the baseline measured in the same run, and the
//! report written from them: JSON and markdown under `target/bench/`, and the bench section
//! of `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::servers_warm_up::WarmUp;
use crate::support::report::{Markers, write_benchmarks_section};
pub use crate::support::report::{machine, percentile, proc_status_kib};

use serde::Serialize;

/// One measured figure and what it is compared with.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Which part of the benchmark (e.g. "POST /api/orders").
    pub section: String,
    /// What was measured (e.g. "throughput").
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// The baseline measured in the same run, if this figure has one.
    pub baseline: Option<Baseline>,
    /// The target, if there is one for this figure.
    pub target: Option<Target>,
    /// How it was measured, in a few words.
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub name: String,
    pub value: f64,
    /// `value` of the figure divided by the baseline's.
    pub ratio: f64,
}

/// A target: either a ratio to the baseline or an absolute bound on the value.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub text: String,
    pub met: bool,
}

impl Figure {
    pub fn new(section: &str, name: &str, value: f64, unit: &str) -> Figure {
        Figure {
            section: section.into(),
            name: name.into(),
            value,
            unit: unit.into(),
            baseline: None,
            target: None,
            note: String::new(),
        }
    }

    pub fn against(mut self, baseline: &str, value: f64) -> Figure {
        let ratio = if value > 0.0 { self.value / value } else { 0.0 };
        self.baseline = Some(Baseline {
            name: baseline.into(),
            value,
            ratio,
        });
        self
    }

    /// Target: the ratio to the baseline is at least `min`.
    pub fn ratio_at_least(mut self, min: f64) -> Figure {
        let ratio = self.baseline.as_ref().map_or(0.0, |b| b.ratio);
        self.target = Some(Target {
            text: format!("≥ {min}× baseline"),
            met: ratio >= min,
        });
        self
    }

    /// Target: the value is at most `max` (in the figure's unit).
    pub fn at_most(mut self, max: f64) -> Figure {
        self.target = Some(Target {
            text: format!("≤ {max} {}", self.unit),
            met: self.value <= max,
        });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = note.into();
        self
    }
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: String,
    pub build: String,
    pub duration_s: f64,
    pub servers_warm_up: WarmUp,
    pub figures: Vec<Figure>,
}

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

impl Report {
    /// The markdown table: figure, value, baseline, ratio, target.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## Benchmark (`cargo xtask bench{}`)\n\nRun {} on {}; {} build; {:.0} s in all; {}. \
             Every figure is next to a baseline measured in the same run, on the same machine, \
             against the same local servers (ratios, because these machines are noisy).\n",
            if cfg!(debug_assertions) {
                ""
            } else {
                " --release"
            },
            self.date,
            self.machine,
            self.build,
            self.duration_s,
            self.servers_warm_up.summary()
        );
        let _ = writeln!(
            out,
            "| what | figure | baseline (same run) | ratio | target | met |\n|---|---|---|---|---|---|"
        );
        for f in &self.figures {
            let (baseline, ratio) = match &f.baseline {
                Some(b) => (
                    format!("{}: {} {}", b.name, number(b.value), f.unit),
                    format!("{:.2}×", b.ratio),
                ),
                None => ("-".into(), "-".into()),
            };
            let (target, met) = match &f.target {
                Some(t) => (
                    t.text.clone(),
                    if t.met { "yes" } else { "**no**" }.to_owned(),
                ),
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "| {} — {} | {} {} | {} | {} | {} | {} |",
                f.section,
                f.name,
                number(f.value),
                f.unit,
                baseline,
                ratio,
                target,
                met
            );
        }
        let notes: Vec<&Figure> = self.figures.iter().filter(|f| !f.note.is_empty()).collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\nHow each figure was measured:\n");
            for f in notes {
                let _ = writeln!(out, "- {} — {}: {}", f.section, f.name, f.note);
            }
        }
        out
    }

    /// Prints the table and writes `report.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join("report.json");
        let markdown = dir.join("report.md");
        std::fs::write(
            &json,
            serde_json::to_string_pretty(self).expect("report serializes"),
        )?;
        std::fs::write(&markdown, self.markdown())?;
        Ok((json, markdown))
    }
}

/// The dev-profile run (`cargo xtask bench`) and the release run (`--release`) each keep
/// their own section.
const MARKERS: Markers = if cfg!(debug_assertions) {
    Markers {
        begin: "<!-- bench:begin -->",
        end: "<!-- bench:end -->",
    }
} else {
    Markers {
        begin: "<!-- bench-release:begin -->",
        end: "<!-- bench-release:end -->",
    }
};

/// The median of a run's rounds (0 when there are none).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5).unwrap_or(0.0)
}

/// When a run started, to the minute, in UTC (as each report's first line gives it).
pub fn run_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Replaces this build profile's bench section of `BENCHMARKS.md`.
pub fn update_benchmarks_md(section: &str) -> std::io::Result<PathBuf> {
    write_benchmarks_section(&MARKERS, section)
}
