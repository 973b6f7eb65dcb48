//! Part 5: the core figures come from criterion (`benches/core.rs`, run by
//! `scripts/bench` as `cargo bench --bench core`); this reads the time per
//! iteration it wrote (the slope estimate, the figure criterion prints as
//! `time:`, else the mean) and turns it into operations per second.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::report::{Figure, Target};

/// (criterion id under target/criterion, figure, unit, target per second)
const BENCHES: &[(&str, &str, &str, f64)] = &[
    (
        "core/verify_and_check",
        "signed contracts verified + checked",
        "contracts/s",
        20_000.0,
    ),
    (
        "core/monthly_statement",
        "monthly statements",
        "statements/s",
        100_000.0,
    ),
];

pub fn run(root: &Path, figs: &mut Vec<Figure>) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for (id, name, unit, target) in BENCHES {
        let path = root
            .join("target/criterion")
            .join(id)
            .join("new/estimates.json");
        let read = || -> Result<(f64, f64, f64)> {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| {
                    format!("{} (run `cargo bench --bench core`)", path.display())
                })?)?;
            let est = if v["slope"].is_object() {
                &v["slope"]
            } else {
                &v["mean"]
            };
            let ci = |k: &str| est["confidence_interval"][k].as_f64().unwrap_or(f64::NAN);
            Ok((
                est["point_estimate"]
                    .as_f64()
                    .context("estimates.json has no slope or mean")?,
                ci("lower_bound"),
                ci("upper_bound"),
            ))
        };
        match read() {
            Ok((ns, lo, hi)) => {
                let per_s = 1e9 / ns;
                figs.push(
                    Figure::new("5", *name, per_s, unit)
                        .target(Target::AtLeast(*target))
                        .note(format!(
                            "criterion {:.2} µs/iter [{:.2}, {:.2}]",
                            ns / 1e3,
                            lo / 1e3,
                            hi / 1e3
                        )),
                );
                out.insert(
                    id.to_string(),
                    json!({"ns_per_iter": ns, "ci_low_ns": lo, "ci_high_ns": hi, "per_s": per_s}),
                );
            }
            Err(e) => {
                figs.push(Figure::new("5", *name, f64::NAN, unit).note(format!("{e:#}")));
                out.insert(id.to_string(), json!({"error": format!("{e:#}")}));
            }
        }
    }
    Ok(json!({"part": 5, "criterion": out}))
}
