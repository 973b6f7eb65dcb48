//! `hostwright-bench`: the benchmarks of issue #6, run by `scripts/bench`
//! (which installs the packages, starts the loopback test environment, builds
//! the release binaries, installs Ansible and runs criterion first).
//!
//! Parts: 1 provisioning throughput on the real backends, 2 the web-space work
//! against Ansible and the single-script floor, 3 engine overhead with the
//! no-op (scripted) adapter, 4 Secure MX mailboxes, 5 the core (criterion).
//! Every figure is measured in this run; the table shows each target with
//! met/missed and `target/bench/results.json` holds all of it.

mod common;
mod core;
mod engine;
mod provision;
mod report;
mod securemx;
mod serve;
mod webspace;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "hostwright benchmarks (see docs/performance.md)")]
struct Args {
    /// Parts to run, comma separated (1-5).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    parts: Vec<u8>,
    /// Small N everywhere, for development (figures are not comparable to targets).
    #[arg(long)]
    quick: bool,
    /// Part 1: numbers of WWW contracts.
    #[arg(long, value_delimiter = ',')]
    n: Option<Vec<usize>>,
    /// Part 1: also run each N on a `[fleet]` of this many loopback web
    /// hosts (`--fleet 1,2`: one host, then two), and report the two-host
    /// to one-host throughput ratio (issue #13).
    #[arg(long, value_delimiter = ',')]
    fleet: Vec<u8>,
    /// Part 1: largest N whose contracts are terminated through hostwright
    /// (timed); larger runs are removed directly.
    #[arg(long, default_value_t = 100)]
    terminate_max: usize,
    /// Part 2: numbers of sites.
    #[arg(long, value_delimiter = ',')]
    sites: Option<Vec<usize>>,
    /// Part 2: skip the two Ansible variants (for quick A/B runs of
    /// hostwright against the floor while iterating; the full run has them).
    #[arg(long)]
    no_ansible: bool,
    /// Worker concurrency of `hostwright serve` in parts 1 and 2 (the
    /// production default of `[workers] concurrency` is 8).
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// POSTs in flight at once when submitting contracts (parts 1-3).
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Part 3: jobs per throughput run.
    #[arg(long)]
    engine_jobs: Option<usize>,
    /// Part 3: jobs queued for the peak-RSS run.
    #[arg(long)]
    queued: Option<usize>,
    /// Part 3: run only the run over a store with this many historical
    /// attempts (and `store prune` of them) instead of part 3's usual runs.
    #[arg(long, default_value_t = 0)]
    history: usize,
    /// Part 4: mailboxes.
    #[arg(long)]
    mailboxes: Option<usize>,
    /// The `hostwright` binary to measure (default: the release build of
    /// this tree), e.g. to compare a patched build against it.
    #[arg(long)]
    hostwright: Option<PathBuf>,
    /// Only remove what earlier (e.g. killed) bench runs left on the test
    /// backends, then exit. Every run does this first anyway.
    #[arg(long)]
    sweep: bool,
    /// Repository root.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    root: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let root = std::fs::canonicalize(&args.root)?;
    let _one_run = exclusive_run(&root)?;
    let out_dir = root.join("target/bench");
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let ctx = common::Ctx::new(
        &root,
        &args
            .hostwright
            .clone()
            .unwrap_or_else(|| root.join("target/release/hostwright")),
        &root.join(".hostwright/bench/runs").join(&stamp),
    )?;
    // A killed run leaves accounts, vhosts, zones and FTP logins behind:
    // start from a clean test host (and leave one with --sweep).
    let swept = common::sweep_all(&ctx)?;
    eprintln!("bench: swept leftovers of earlier runs: {swept}");
    if args.sweep {
        return Ok(());
    }
    let q = args.quick;
    let mut figs = Vec::new();
    let mut parts = serde_json::Map::new();
    let mut record = |name: &str, r: Result<Value>, figs: &mut Vec<report::Figure>| {
        let v = r.unwrap_or_else(|e| {
            eprintln!("{name}: {e:#}");
            figs.push(
                report::Figure::new(&name[4..], format!("{name} failed"), f64::NAN, "")
                    .note(format!("{e:#}")),
            );
            json!({"error": format!("{e:#}")})
        });
        let _ = report::write_json(&out_dir.join(format!("{name}.json")), &v);
        parts.insert(name.to_string(), v);
        // This part's rows now, so a long run shows its figures as it goes
        // (the whole table comes again at the end).
        let mine: Vec<_> = figs
            .iter()
            .filter(|f| f.part == name[4..])
            .cloned()
            .collect();
        report::print_table(&mine);
    };
    for part in &args.parts {
        match part {
            1 => {
                let opts = provision::Opts {
                    ns: args.n.clone().unwrap_or(if q {
                        vec![1, 10]
                    } else {
                        vec![1, 10, 100, 1000]
                    }),
                    concurrency: args.workers,
                    in_flight: args.in_flight,
                    terminate_max: args.terminate_max,
                    fleet: args.fleet.clone(),
                };
                let r = provision::run(&ctx, &opts, &out_dir.join("part1.json"), &mut figs).await;
                record("part1", r, &mut figs);
            }
            2 => {
                let opts = webspace::Opts {
                    ns: args
                        .sites
                        .clone()
                        .unwrap_or(if q { vec![10] } else { vec![10, 100] }),
                    concurrency: args.workers,
                    in_flight: args.in_flight,
                    venv: root.join(".hostwright/bench/venv"),
                    ansible: !args.no_ansible,
                };
                let r = webspace::run(&ctx, &opts, &mut figs).await;
                record("part2", r, &mut figs);
            }
            3 => {
                let opts = engine::Opts {
                    jobs: args.engine_jobs.unwrap_or(if q { 200 } else { 2000 }),
                    queued: args.queued.unwrap_or(if q { 1000 } else { 10_000 }),
                    history: args.history,
                    in_flight: args.in_flight,
                };
                let r = engine::run(&ctx, &opts, &mut figs).await;
                record("part3", r, &mut figs);
            }
            4 => {
                let n = args.mailboxes.unwrap_or(if q { 200 } else { 1000 });
                let r = securemx::run(&ctx, n, &mut figs).await;
                record("part4", r, &mut figs);
            }
            5 => {
                let r = core::run(&root, &mut figs);
                record("part5", r, &mut figs);
            }
            other => anyhow::bail!("no part {other} (parts are 1-5)"),
        }
    }
    report::print_table(&figs);
    let results = json!({
        "when": chrono::Utc::now().to_rfc3339(),
        "quick": q,
        "machine": machine(),
        "figures": figs,
        "parts": parts,
        "work_dir": ctx.work,
    });
    report::write_json(&out_dir.join("results.json"), &results)?;
    println!("results: {}", out_dir.join("results.json").display());
    if q {
        println!("(--quick: small N; the targets are for the full run)");
    }
    Ok(())
}

/// The machine the figures come from, and how busy it was.
fn machine() -> Value {
    let sh = |c: &str| {
        std::process::Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    json!({
        "nproc": sh("nproc"),
        "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        "mem": sh("free -g | awk '/^Mem:/ {print $2 \" GiB\"}'"),
        "kernel": sh("uname -r"),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "loadavg_at_end": sh("cat /proc/loadavg"),
    })
}

/// Holds an exclusive lock on `.hostwright/bench/lock` for the whole run.
/// Every run starts by sweeping what earlier runs left on the shared test
/// backends, which would delete the accounts of a run still in progress:
/// two runs at once must not happen.
fn exclusive_run(root: &std::path::Path) -> Result<std::fs::File> {
    let dir = root.join(".hostwright/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another hostwright-bench run holds {} (its start-up sweep would remove this run's accounts, and this one's would remove its); wait for it to end",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}
