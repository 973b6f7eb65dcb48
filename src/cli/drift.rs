//! `hostwright drift`: the scan runs in this process, from the config (as
//! `plan` does): the same adapters and store a `serve` with that config
//! uses, read only.

use std::path::PathBuf;
use std::process::ExitCode;

use hostwright::engine::config::Config;
use hostwright::engine::drift::{DriftError, DriftReport, RepairRun};
use hostwright::engine::store::repairs::RepairState;

use super::out::{self, note, say};

/// Scans and prints the drift; exit 2 when there is any. With `repair`:
/// queues a repair for each finding and runs the queued repairs; exit 0
/// when every repair run succeeded.
pub async fn drift(
    contracts: Vec<String>,
    config: PathBuf,
    json: bool,
    repair: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&config)?;
    let engine = hostwright::engine::server::build(&cfg).await?;
    let report = engine.drift(&contracts).await?;
    if !repair {
        if json {
            out::json(&report, true)?;
        } else {
            print_report(&report);
        }
        return Ok(exit_code(&report));
    }
    let actor = super::ops::local_actor();
    let (queued, already_queued) = engine.queue_repairs(&report.findings, &actor).await?;
    let (ran, deferred) = engine.run_repairs(&format!("cli:{actor}")).await?;
    let run = RepairRun {
        queued,
        already_queued,
        ran,
        deferred,
    };
    let failed = run
        .ran
        .iter()
        .filter(|r| r.state != RepairState::Succeeded)
        .count();
    if json {
        out::json(&serde_json::json!({"report": report, "repair": run}), true)?;
    } else {
        print_report(&report);
        for r in &run.ran {
            say!(
                "repair {}: {} {} of {}: {} after {} attempt(s){}",
                r.id,
                r.kind,
                r.key,
                r.contract_id,
                r.state.as_str(),
                r.attempts,
                r.last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
        for t in &run.already_queued {
            say!("not queued again: {t} (a repair is queued or running, or its contract has work)");
        }
        for id in &run.deferred {
            say!("repair {id} stays queued: its contract has a job with work");
        }
        say!(
            "repair: {} queued, {} run, {} failed (audited as {actor})",
            run.queued.len(),
            run.ran.len(),
            failed
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Removes one named orphan (audited); exit 1 when it is not one.
pub async fn delete_orphan(
    kind: &str,
    key: &str,
    config: PathBuf,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&config)?;
    let engine = hostwright::engine::server::build(&cfg).await?;
    let actor = super::ops::local_actor();
    match engine.delete_orphan(kind, key, &actor).await {
        Ok(o) => {
            if json {
                out::json(&serde_json::json!({"deleted": o}), true)?;
            } else {
                say!("deleted orphan {} (audited as {actor})", o.says);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(DriftError::NotAnOrphan { kind, key, why }) => {
            note!("not deleted: {kind} {key} is not an orphan: {why}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
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
