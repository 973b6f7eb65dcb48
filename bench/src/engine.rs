//! Part 3: the engine's own overhead. A release `hostwright serve` with
//! `[adapters.scripted]` (every adapter replaced by the in-memory scripted
//! stand-in, `src/engine/scripted.rs`: no I/O in the steps) and the real
//! playbooks, so a WWW contract is 4 steps (dns_zone, webspace, vhost,
//! ftp_account), each journaled. Jobs/s from the first POST through intake
//! (signature, terms), plan, journal and job end to the last job's end, on
//! SQLite and on PostgreSQL (the test server), with 1 and 4 workers.
//! Then the worker's peak RSS while it drains 10,000 jobs already queued.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::common::{self, Ctx, Signer};
use crate::report::{Figure, Target};
use crate::serve::{self, Serve, ServeConfig};

pub struct Opts {
    pub jobs: usize,
    pub queued: usize,
    /// Historical attempts put in the store for the history run (0: none).
    pub history: usize,
    /// POSTs in flight at once.
    pub in_flight: usize,
}

const SCRIPTED: &str = "[adapters.scripted]\n";
const HISTORY_KEPT: &str =
    "[adapters.scripted]\n\n[store.retention]\nsucceeded_attempts_days = 0\n";

pub async fn run(ctx: &Ctx, opts: &Opts, figs: &mut Vec<Figure>) -> Result<Value> {
    let signer = Signer::new();
    let mut runs = Vec::new();
    // --history runs the history run alone.
    let backends: &[&str] = if opts.history > 0 {
        &[]
    } else {
        &["sqlite", "postgres"]
    };
    for backend in backends.iter().copied() {
        for workers in [1usize, 4] {
            eprintln!("part 3: {} jobs, {backend}, {workers} worker(s)", opts.jobs);
            let r = match throughput(ctx, &signer, backend, workers, opts).await {
                Ok(r) => r,
                Err(e) => {
                    json!({"backend": backend, "workers": workers, "error": format!("{e:#}")})
                }
            };
            let rate = r["jobs_per_s"].as_f64().unwrap_or(f64::NAN);
            let target = if backend == "sqlite" { 2000.0 } else { 1000.0 };
            let note = r["error"]
                .as_str()
                .map(|e| format!("FAILED: {e}"))
                .unwrap_or_else(|| {
                    format!(
                        "{} jobs × 4 steps; peak RSS {:.1} MiB",
                        opts.jobs,
                        r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
                    )
                });
            figs.push(
                Figure::new(
                    "3",
                    format!("no-op jobs/s, {backend}, {workers} worker(s)"),
                    rate,
                    "jobs/s",
                )
                .target(Target::AtLeast(target))
                .note(note),
            );
            runs.push(r);
        }
    }
    let mut q = Value::Null;
    if opts.history == 0 {
        eprintln!("part 3: peak RSS with {} queued jobs", opts.queued);
        q = match queued_rss(ctx, &signer, opts.queued).await {
            Ok(q) => q,
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        figs.push(
            Figure::new(
                "3",
                format!("worker peak RSS, {} queued jobs", opts.queued),
                q["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
                "MiB",
            )
            .target(Target::Below(64.0))
            .note(
                q["error"]
                    .as_str()
                    .map(|e| format!("FAILED: {e}"))
                    .unwrap_or_else(|| {
                        format!(
                            "sqlite, 4 workers; drained at {:.0} jobs/s",
                            q["drain_jobs_per_s"].as_f64().unwrap_or(f64::NAN)
                        )
                    }),
            ),
        );
    }
    let mut hist = Value::Null;
    if opts.history > 0 {
        eprintln!(
            "part 3: {} jobs over a store with {} historical attempts",
            opts.jobs, opts.history
        );
        hist = match with_history(ctx, &signer, opts).await {
            Ok(h) => h,
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        let note = |what: &str| {
            hist["error"]
                .as_str()
                .map(|e| format!("FAILED: {e}"))
                .unwrap_or_else(|| what.to_string())
        };
        let h = opts.history;
        figs.push(
            Figure::new(
                "3",
                format!("no-op jobs/s, sqlite, 4 workers, {h} historical attempts"),
                hist["jobs_per_s"].as_f64().unwrap_or(f64::NAN),
                "jobs/s",
            )
            .note(note(&format!(
                "{} jobs; peak RSS {:.1} MiB",
                opts.jobs,
                hist["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
            ))),
        );
        figs.push(
            Figure::new(
                "3",
                format!("jobs list (first page of 50), {h} historical attempts"),
                hist["jobs_list_ms"].as_f64().unwrap_or(f64::NAN),
                "ms",
            )
            .note(note("GET /v1/jobs?limit=50, mean of 20")),
        );
        figs.push(
            Figure::new(
                "3",
                format!("store prune of {h} historical attempts"),
                hist["prune_s"].as_f64().unwrap_or(f64::NAN),
                "s",
            )
            .note(note(&format!(
                "hostwright store prune, serve stopped; {} attempts deleted",
                hist["pruned_attempts"]
            ))),
        );
    }
    Ok(json!({"part": 3, "runs": runs, "queued": q, "history": hist}))
}

/// Throughput over a SQLite store that already holds `opts.history`
/// attempts of succeeded jobs (a quarter as many jobs, 4 steps each, ended
/// 200 days ago, written straight into the tables), then the time of a
/// first page of `jobs list`, then `hostwright store prune` of that history
/// (serve stopped), as a child process.
async fn with_history(ctx: &Ctx, signer: &Signer, opts: &Opts) -> Result<Value> {
    use sqlx::Connection;
    let n = opts.jobs;
    let old_jobs = opts.history.div_ceil(4);
    let dir = ctx.dir("part3-history")?;
    let files = serve::write_config(
        &dir,
        signer,
        &ServeConfig {
            store_url: "sqlite:jobs.db".into(),
            playbooks: ctx.root.join("playbooks"),
            concurrency: 4,
            // The history stays for the run (serve would prune it at
            // start); `store prune` below gets the default 90 days.
            adapters: HISTORY_KEPT,
        },
    )?;
    let cfg = hostwright::engine::config::Config::load(&files.config)?;
    drop(hostwright::engine::server::build(&cfg).await?);
    let db = cfg
        .store
        .url
        .strip_prefix("sqlite:")
        .context("sqlite url")?;
    let old = chrono::Utc::now().timestamp_millis() - 200 * 86_400_000;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await?;
    let fill = format!(
        "BEGIN; \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO jobs (id, contract_id, revision, state, planned, created_at, updated_at) \
         SELECT printf('H-%09d', i), printf('C-H%09d', i), 1, 'succeeded', 1, {old}, {old} FROM n; \
         INSERT INTO steps (job_id, idx, step, state, attempts) \
         SELECT j.id, k.k, '{{}}', 'succeeded', 1 FROM jobs j, \
         (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) k; \
         INSERT INTO attempts (job_id, idx, attempt, worker, started_at, finished_at, outcome, duration_ms) \
         SELECT job_id, idx, 1, 'bench-history', {old}, {old}, '\"succeeded\"', 1 FROM steps; \
         COMMIT;",
        last = old_jobs - 1
    );
    let clock = Instant::now();
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill))
        .execute(&mut conn)
        .await?;
    let fill_s = clock.elapsed().as_secs_f64();
    conn.close().await?;

    let env = envelopes(signer, n);
    let serve = Serve::start(ctx, &files, &dir.join("serve.log")).await?;
    let res = async {
        let b = serve
            .run_batch(
                env,
                opts.in_flight,
                (n + old_jobs) as u64,
                Duration::from_secs(900),
            )
            .await?;
        b.all_succeeded()?;
        let mut list_ms = 0.0;
        for _ in 0..20 {
            let clock = Instant::now();
            serve
                .http
                .get(format!("{}/v1/jobs?limit=50", serve.base))
                .bearer_auth(serve::OPS_TOKEN)
                .send()
                .await?
                .error_for_status()?;
            list_ms += clock.elapsed().as_secs_f64() * 1000.0 / 20.0;
        }
        Ok::<_, anyhow::Error>(json!({
            "history_attempts": old_jobs * 4,
            "fill_s": fill_s,
            "jobs": n,
            "seconds": b.seconds,
            "jobs_per_s": n as f64 / b.seconds,
            "peak_rss_mib": b.peak_rss_mib,
            "jobs_list_ms": list_ms,
        }))
    }
    .await;
    let _ = serve.stop();
    let mut v = res?;
    let text = std::fs::read_to_string(&files.config)?;
    std::fs::write(
        &files.config,
        text.replace(
            "succeeded_attempts_days = 0",
            "succeeded_attempts_days = 90",
        ),
    )?;
    let clock = Instant::now();
    let out = std::process::Command::new(&ctx.hostwright)
        .args(["store", "prune", "--json", "--config"])
        .arg(&files.config)
        .output()?;
    if !out.status.success() {
        bail!("store prune: {}", String::from_utf8_lossy(&out.stderr));
    }
    v["prune_s"] = json!(clock.elapsed().as_secs_f64());
    let pruned: Value = serde_json::from_slice(&out.stdout)?;
    v["pruned_attempts"] = pruned["attempts"].clone();
    Ok(v)
}

/// A fresh database on the test PostgreSQL server; dropped by [`drop_pg`].
async fn fresh_pg(ctx: &Ctx) -> Result<(String, String)> {
    let admin = ctx.var("HW_TEST_PG_URL")?;
    let name = format!("hw_bench_{}", common::tag().to_ascii_lowercase());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .context("test PostgreSQL reachable (scripts/testenv/up.sh)")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let base = admin.rsplit_once('/').context("url has a database")?.0;
    Ok((format!("{base}/{name}"), name))
}

async fn drop_pg(ctx: &Ctx, name: &str) -> Result<()> {
    let admin = ctx.var("HW_TEST_PG_URL")?;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

fn envelopes(signer: &Signer, n: usize) -> Vec<Vec<u8>> {
    let tag = common::tag();
    (0..n)
        .map(|i| {
            let id = format!("C-E{tag}-{i:05}");
            let d = format!("e{}-{i:05}.bench.example", tag.to_ascii_lowercase());
            signer.sign(&common::www_contract(&id, &d, true))
        })
        .collect()
}

async fn throughput(
    ctx: &Ctx,
    signer: &Signer,
    backend: &str,
    workers: usize,
    opts: &Opts,
) -> Result<Value> {
    let n = opts.jobs;
    let dir = ctx.dir(&format!("part3-{backend}-w{workers}"))?;
    let (store_url, pg) = match backend {
        "sqlite" => ("sqlite:jobs.db".to_string(), None),
        _ => {
            let (url, name) = fresh_pg(ctx).await?;
            (url, Some(name))
        }
    };
    let config = serve::write_config(
        &dir,
        signer,
        &ServeConfig {
            store_url,
            playbooks: ctx.root.join("playbooks"),
            concurrency: workers,
            adapters: SCRIPTED,
        },
    )?;
    let env = envelopes(signer, n);
    let serve = Serve::start(ctx, &config, &dir.join("serve.log")).await?;
    let res = async {
        let b = serve
            .run_batch(env, opts.in_flight, n as u64, Duration::from_secs(900))
            .await?;
        b.all_succeeded()?;
        let (p50, p99) = b.latency();
        Ok(json!({
            "backend": backend,
            "workers": workers,
            "jobs": n,
            "seconds": b.seconds,
            "intake_s": b.intake_s,
            "jobs_per_s": n as f64 / b.seconds,
            "latency_p50_s": p50,
            "latency_p99_s": p99,
            "peak_rss_mib": b.peak_rss_mib,
        }))
    }
    .await;
    let _ = serve.stop();
    if let Some(name) = pg {
        drop_pg(ctx, &name).await?;
    }
    res
}

/// Queues `n` jobs in a fresh SQLite store through the engine's own intake
/// (the library, no server running), then starts `hostwright serve` on that
/// store and reads its VmHWM once every job has ended.
async fn queued_rss(ctx: &Ctx, signer: &Signer, n: usize) -> Result<Value> {
    let dir = ctx.dir("part3-queued")?;
    let config = serve::write_config(
        &dir,
        signer,
        &ServeConfig {
            store_url: "sqlite:jobs.db".into(),
            playbooks: ctx.root.join("playbooks"),
            concurrency: 4,
            adapters: SCRIPTED,
        },
    )?;
    let intake_s = {
        let cfg = hostwright::engine::config::Config::load(&config.config)?;
        let engine = hostwright::engine::server::build(&cfg).await?;
        let env = envelopes(signer, n);
        let clock = Instant::now();
        for body in env {
            let r = engine.intake(&body, chrono::Utc::now()).await?;
            let v = serde_json::to_value(&r)?;
            if v["outcome"] != "accepted" {
                bail!("intake refused a bench contract: {v}");
            }
        }
        clock.elapsed().as_secs_f64()
    };
    let serve = Serve::start(ctx, &config, &dir.join("serve.log")).await?;
    let res = async {
        let clock = Instant::now();
        serve
            .wait_ended(
                n as u64,
                Duration::from_secs(1800),
                Duration::from_millis(50),
            )
            .await?;
        let drain_s = clock.elapsed().as_secs_f64();
        let rss = serve.peak_rss_mib()?;
        let jobs = serve.jobs().await?;
        let ok = jobs.iter().filter(|j| j.state == "succeeded").count();
        if ok != n {
            bail!("{ok}/{n} queued jobs succeeded");
        }
        Ok(json!({
            "queued": n,
            "intake_in_process_s": intake_s,
            "drain_s": drain_s,
            "drain_jobs_per_s": n as f64 / drain_s,
            "peak_rss_mib": rss,
            "workers": 4,
        }))
    }
    .await;
    let _ = serve.stop();
    res
}
