//! Figures, their targets, the printed table and the JSON files.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

/// A target a figure is held against (issue #6).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    AtLeast(f64),
    Below(f64),
}

impl Target {
    fn met(self, v: f64) -> bool {
        match self {
            Target::AtLeast(t) => v >= t,
            Target::Below(t) => v < t,
        }
    }
    fn show(self, unit: &str) -> String {
        match self {
            Target::AtLeast(t) => format!(">= {} {unit}", num(t)),
            Target::Below(t) => format!("< {} {unit}", num(t)),
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub part: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub target: Option<Target>,
    /// `met` / `missed` (`n/a` when the figure was not measured), or
    /// absent without a target.
    pub verdict: Option<&'static str>,
    /// Conditions worth knowing next to the number.
    pub note: String,
}

impl Figure {
    pub fn new(part: &str, name: impl Into<String>, value: f64, unit: &str) -> Figure {
        Figure {
            part: part.to_string(),
            name: name.into(),
            value,
            unit: unit.to_string(),
            target: None,
            verdict: None,
            note: String::new(),
        }
    }
    pub fn target(mut self, t: Target) -> Figure {
        // A figure that was not measured (a failed or skipped run) has no
        // verdict to claim either way.
        self.verdict = Some(if !self.value.is_finite() {
            "n/a"
        } else if t.met(self.value) {
            "met"
        } else {
            "missed"
        });
        self.target = Some(t);
        self
    }
    pub fn note(mut self, n: impl Into<String>) -> Figure {
        self.note = n.into();
        self
    }
}

/// A human number: thousands separated, few decimals.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(a, b)| (a, b));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if frac.is_empty() {
        format!("{sign}{out}")
    } else {
        format!("{sign}{out}.{frac}")
    }
}

pub fn print_table(figs: &[Figure]) {
    let w_name = figs
        .iter()
        .map(|f| f.name.chars().count())
        .max()
        .unwrap_or(10)
        .max(6);
    println!();
    println!(
        "{:<4} {:<w_name$} {:>14} {:<12} {:<20} {:<7} note",
        "part", "figure", "value", "unit", "target", "verdict"
    );
    println!("{}", "-".repeat(w_name + 70));
    for f in figs {
        println!(
            "{:<4} {:<w_name$} {:>14} {:<12} {:<20} {:<7} {}",
            f.part,
            f.name,
            num(f.value),
            f.unit,
            f.target.map(|t| t.show(&f.unit)).unwrap_or_default(),
            f.verdict.unwrap_or(""),
            f.note
        );
    }
    println!();
}

pub fn write_json(path: &Path, v: &Value) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_not_measured_is_neither_met_nor_missed() {
        let f = |v: f64| Figure::new("3", "x", v, "jobs/s").target(Target::AtLeast(2000.0));
        assert_eq!(f(f64::NAN).verdict, Some("n/a"));
        assert_eq!(f(2500.0).verdict, Some("met"));
        assert_eq!(f(1500.0).verdict, Some("missed"));
        let below = Figure::new("3", "rss", 19.3, "MiB").target(Target::Below(64.0));
        assert_eq!(below.verdict, Some("met"));
    }
}
