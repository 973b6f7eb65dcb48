//! `hostwright drift`: the scan runs in this process, from the config (as
//! `plan` does): the same adapters and store a `serve` with that config
//! uses, read only.

use std::path::PathBuf;
use std::process::ExitCode;

use hostwright::engine::config::Config;
use hostwright::engine::drift::DriftReport;

use super::out::{self, say};

/// Scans and prints the drift; exit 2 when there is any.
pub async fn drift(
    contracts: Vec<String>,
    config: PathBuf,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&config)?;
    let engine = hostwright::engine::server::build(&cfg).await?;
    let report = engine.drift(&contracts).await?;
    if json {
        out::json(&report, true)?;
    } else {
        print_report(&report);
    }
    Ok(exit_code(&report))
}

/// 0 when the backends match, 2 when something drifted, 1 when something
/// could not be read (and nothing drifted).
pub fn exit_code(report: &DriftReport) -> ExitCode {
    if !report.is_clean() {
        ExitCode::from(2)
    } else if !report.errors.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn print_report(r: &DriftReport) {
    for f in &r.findings {
        say!(
            "{} rev {}: {} {} on {}: {}",
            f.contract_id,
            f.revision,
            f.kind,
            f.key,
            f.host,
            f.state.as_str()
        );
        for d in &f.differences {
            say!("    {}", d.says);
        }
    }
    for o in &r.orphans {
        say!("orphan: {}", o.says);
    }
    for p in &r.pending {
        say!(
            "{}: not compared, job {} is {}",
            p.contract_id,
            p.job_id,
            p.state.as_str()
        );
    }
    for e in &r.errors {
        let what = match (&e.contract_id, &e.kind, &e.key) {
            (Some(c), Some(k), Some(key)) => format!("{c} {k} {key}"),
            (Some(c), _, _) => c.clone(),
            _ => e.adapter.clone(),
        };
        say!("error: {what}: {}", e.error);
    }
    if r.full && !r.unlisted.is_empty() {
        say!(
            "orphans not searched on {} (the backend cannot list what it holds)",
            r.unlisted.join(", ")
        );
    }
    let missing = r
        .findings
        .iter()
        .filter(|f| f.state == hostwright::engine::drift::DriftState::Missing)
        .count();
    say!(
        "drift: {} resource(s) of {} contract(s) compared in {} ms: {} missing, {} changed, {} orphan(s){}",
        r.resources,
        r.contracts,
        r.duration_ms,
        missing,
        r.findings.len() - missing,
        r.orphans.len(),
        if r.is_clean() && r.errors.is_empty() {
            "; the backends match the contracts"
        } else {
            ""
        }
    );
}
