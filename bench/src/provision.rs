//! Part 1: provisioning throughput on the real backends. A release
//! `hostwright serve` (SQLite store, real webhost/ftp/dns adapters) takes N
//! signed WWW contracts through `POST /v1/contracts`; each is a web space, an
//! nginx vhost, an FTP account and a DNS zone with its A records. Timed from
//! the first POST to the end of the last job (the store's own `updated_at`);
//! latencies are job created → ended from the API's job records. Afterwards
//! every contract is terminated through hostwright (timed too), and whatever
//! a failure left behind is swept.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::common::{self, Ctx, Signer};
use crate::report::{Figure, Target};
use crate::serve::{self, Serve, ServeConfig};

pub struct Opts {
    pub ns: Vec<usize>,
    /// Up to this N the contracts are terminated through hostwright (and
    /// that is timed); above it the bench removes what they created
    /// directly, which takes a minute instead of most of an hour at N=1000.
    pub terminate_max: usize,
    pub concurrency: usize,
    /// POSTs in flight at once.
    pub in_flight: usize,
    /// Fleet sizes to run each N on as well (`[fleet]` of loopback web
    /// hosts); empty: the single `[adapters.webhost]` only.
    pub fleet: Vec<u8>,
}

/// Writes `partial` after each N, so a long run that is stopped keeps the
/// figures of the N it finished.
pub async fn run(
    ctx: &Ctx,
    opts: &Opts,
    partial: &std::path::Path,
    figs: &mut Vec<Figure>,
) -> Result<Value> {
    let signer = Signer::new();
    let mut runs = Vec::new();
    for &n in &opts.ns {
        eprintln!("part 1: {n} WWW contract(s), {} workers", opts.concurrency);
        let r = one(ctx, &signer, n, opts, None).await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("part 1: N={n} failed: {e:#}");
                figs.push(
                    Figure::new("1", format!("WWW contracts N={n}"), f64::NAN, "contracts/s")
                        .note(format!("run failed: {e:#}")),
                );
                runs.push(json!({"n": n, "error": format!("{e:#}")}));
                continue;
            }
        };
        let rate = r["contracts_per_s"].as_f64().unwrap_or(f64::NAN);
        let mut note = format!(
            "{} workers; {} failed",
            opts.concurrency,
            r["failed"].as_u64().unwrap_or(0)
        );
        if let Some(e) = r["first_error"].as_str() {
            note.push_str(&format!(
                " (first: {})",
                e.chars().take(120).collect::<String>()
            ));
        }
        figs.push(Figure::new("1", format!("N={n}: contracts/s"), rate, "contracts/s").note(note));
        let total = r["total_s"].as_f64().unwrap_or(f64::NAN);
        let mut f = Figure::new("1", format!("N={n}: intake → last job done"), total, "s");
        if n == 100 {
            f = f.target(Target::Below(5.0));
        }
        figs.push(f);
        figs.push(Figure::new(
            "1",
            format!("N={n}: job latency p50"),
            r["latency_p50_s"].as_f64().unwrap_or(f64::NAN),
            "s",
        ));
        figs.push(Figure::new(
            "1",
            format!("N={n}: job latency p99"),
            r["latency_p99_s"].as_f64().unwrap_or(f64::NAN),
            "s",
        ));
        figs.push(Figure::new(
            "1",
            format!("N={n}: worker peak RSS"),
            r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            "MiB",
        ));
        let mut f = Figure::new(
            "1",
            format!("N={n}: drift scan (full)"),
            r["drift"]["scan_s"].as_f64().unwrap_or(f64::NAN),
            "s",
        )
        .note(format!(
            "{} resources, {} findings, {} errors; `hostwright drift` wall {:.2} s",
            r["drift"]["resources"],
            r["drift"]["findings"],
            r["drift"]["errors"],
            r["drift"]["wall_s"].as_f64().unwrap_or(f64::NAN)
        ));
        if n == 1000 {
            f = f.target(Target::Below(10.0));
        }
        figs.push(f);
        if r["termination"]["skipped"].is_null() {
            figs.push(
                Figure::new(
                    "1",
                    format!("N={n}: termination contracts/s"),
                    r["termination"]["contracts_per_s"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                    "contracts/s",
                )
                .note("cleanup through hostwright (archives each home)"),
            );
        }
        runs.push(r);
        let _ = crate::report::write_json(
            partial,
            &json!({"part": 1, "concurrency": opts.concurrency, "runs": runs, "partial": true}),
        );
        if !opts.fleet.is_empty() {
            fleet_runs(ctx, &signer, n, opts, figs, &mut runs).await;
        }
    }
    Ok(json!({"part": 1, "concurrency": opts.concurrency, "runs": runs}))
}

/// N on a fleet of each size in `opts.fleet`, and the throughput of the
/// largest fleet against one host (issue #13: goal 1.7x with two hosts at
/// N=1000). Both hosts are on this machine (their own nginx and pure-ftpd,
/// one sshd): the ratio shows what the engine's per-host pipelines give,
/// on hardware the two hosts share.
async fn fleet_runs(
    ctx: &Ctx,
    signer: &Signer,
    n: usize,
    opts: &Opts,
    figs: &mut Vec<Figure>,
    runs: &mut Vec<Value>,
) {
    let mut rates: Vec<(u8, f64)> = Vec::new();
    for &hosts in &opts.fleet {
        eprintln!("part 1: {n} WWW contract(s) on a fleet of {hosts} web host(s)");
        match one(ctx, signer, n, opts, Some(hosts)).await {
            Ok(mut r) => {
                let rate = r["contracts_per_s"].as_f64().unwrap_or(f64::NAN);
                figs.push(
                    Figure::new(
                        "1",
                        format!("N={n}, fleet of {hosts}: contracts/s"),
                        rate,
                        "contracts/s",
                    )
                    .note(format!(
                        "{} workers; {} failed; placed {}",
                        opts.concurrency,
                        r["failed"].as_u64().unwrap_or(0),
                        r["placed"]
                    )),
                );
                rates.push((hosts, rate));
                r["fleet"] = json!(hosts);
                runs.push(r);
            }
            Err(e) => {
                eprintln!("part 1: N={n} on {hosts} host(s) failed: {e:#}");
                figs.push(
                    Figure::new(
                        "1",
                        format!("N={n}, fleet of {hosts}: contracts/s"),
                        f64::NAN,
                        "contracts/s",
                    )
                    .note(format!("run failed: {e:#}")),
                );
                runs.push(json!({"n": n, "fleet": hosts, "error": format!("{e:#}")}));
            }
        }
    }
    let one_host = rates.iter().find(|(h, _)| *h == 1).map(|(_, r)| *r);
    let most = rates.iter().filter(|(h, _)| *h > 1).max_by_key(|(h, _)| *h);
    if let (Some(base), Some((hosts, rate))) = (one_host, most) {
        let mut f = Figure::new(
            "1",
            format!("N={n}: {hosts} web hosts vs 1 (throughput ratio)"),
            rate / base,
            "x",
        )
        .note("both hosts on this machine: their own nginx and pure-ftpd, one sshd");
        if n == 1000 && *hosts == 2 {
            f = f.target(Target::AtLeast(1.7));
        }
        figs.push(f);
    }
}

async fn one(
    ctx: &Ctx,
    signer: &Signer,
    n: usize,
    opts: &Opts,
    fleet: Option<u8>,
) -> Result<Value> {
    let tag = common::tag();
    let dir = ctx.dir(&match fleet {
        None => format!("part1-n{n}"),
        Some(h) => format!("part1-n{n}-fleet{h}"),
    })?;
    let adapters = match fleet {
        None => serve::real_adapters(true)?,
        Some(h) => serve::fleet_adapters(h)?,
    };
    let config = serve::write_config(
        &dir,
        signer,
        &ServeConfig {
            store_url: "sqlite:jobs.db".into(),
            playbooks: ctx.root.join("playbooks"),
            concurrency: opts.concurrency,
            adapters: &adapters,
        },
    )?;
    let sites: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            let id = format!("C-B{tag}-{i:04}");
            let domain = format!("b{}-{i:04}.bench.example", tag.to_ascii_lowercase());
            (id.clone(), id.to_ascii_lowercase(), domain)
        })
        .collect();
    let envelopes: Vec<Vec<u8>> = sites
        .iter()
        .map(|(id, _, d)| signer.sign(&common::www_contract(id, d, true)))
        .collect();

    let serve = Serve::start(ctx, &config, &dir.join("serve.log")).await?;
    let mut result = measure(ctx, &serve, &config.config, signer, &sites, envelopes, opts).await;
    if let (Ok(r), Some(_)) = (&mut result, fleet) {
        r["placed"] = serve.placed().await.unwrap_or(Value::Null);
    }
    let _ = serve.stop();
    let leftovers = sweep(ctx, &tag, &sites);
    let mut r = result?;
    r["leftovers_swept"] = match leftovers {
        Ok(n) => json!(n),
        Err(e) => json!(format!("sweep failed: {e:#}")),
    };
    r["tag"] = json!(tag);
    Ok(r)
}

async fn measure(
    ctx: &Ctx,
    serve: &Serve,
    config: &std::path::Path,
    signer: &Signer,
    sites: &[(String, String, String)],
    envelopes: Vec<Vec<u8>>,
    opts: &Opts,
) -> Result<Value> {
    let in_flight = opts.in_flight;
    let n = sites.len();
    let timeout = Duration::from_secs(120 + 3 * n as u64);
    let clock = Instant::now();
    let batch = serve
        .run_batch(envelopes, in_flight, n as u64, timeout)
        .await?;
    let observed_s = clock.elapsed().as_secs_f64();
    let (p50, p99) = batch.latency();
    let jobs = &batch.jobs;
    let ids = &batch.job_ids;
    let failed: Vec<_> = jobs.iter().filter(|j| j.state != "succeeded").collect();

    // Where the time goes: mean successful attempt per step kind, over up
    // to 100 jobs' journals.
    let sample: Vec<String> = ids.iter().take(100).cloned().collect();
    let breakdown = serve::step_breakdown(serve, &sample).await?;

    // The work really happened: the first and the last site answer.
    let mut http = Vec::new();
    for (_, _, d) in [sites.first(), sites.last()].into_iter().flatten() {
        http.push(json!({"host": d, "status": common::http_status(ctx, d)?}));
    }

    let drift = drift_scan(ctx, config, n)?;

    let termination = if n > opts.terminate_max {
        json!({"skipped": format!("N > {}: removed directly by the sweep", opts.terminate_max)})
    } else {
        terminate(serve, signer, sites, &failed, in_flight, timeout).await?
    };

    if failed.len() == n {
        bail!(
            "every job failed; first error: {}",
            failed[0].error.clone().unwrap_or_default()
        );
    }
    Ok(json!({
        "n": n,
        "peak_rss_mib": batch.peak_rss_mib,
        "intake_s": batch.intake_s,
        "total_s": batch.seconds,
        "observed_s": observed_s,
        "contracts_per_s": n as f64 / batch.seconds,
        "latency_p50_s": p50,
        "latency_p99_s": p99,
        "failed": failed.len(),
        "first_error": failed.first().and_then(|j| j.error.clone()),
        "mean_attempt_ms_by_step": serve::breakdown_json(&breakdown),
        "http_check": http,
        "drift": drift,
        "termination": termination,
    }))
}

/// A full drift scan of the provisioned contracts (`hostwright drift
/// --json`, the CLI as an operator runs it, beside the running serve): the
/// scan's own duration and the command's wall time (process start, config,
/// store, adapters). Every backend is read; nothing may have drifted.
fn drift_scan(ctx: &Ctx, config: &std::path::Path, n: usize) -> Result<Value> {
    let clock = Instant::now();
    let out = std::process::Command::new(&ctx.hostwright)
        .args(["drift", "--json", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .output()?;
    let wall_s = clock.elapsed().as_secs_f64();
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow::anyhow!(
            "drift printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let findings = v["findings"].as_array().map(Vec::len).unwrap_or(0);
    let errors = v["errors"].as_array().map(Vec::len).unwrap_or(0);
    if v["contracts"].as_u64() != Some(n as u64) {
        bail!("drift compared {} contracts, not {n}", v["contracts"]);
    }
    Ok(json!({
        "scan_s": v["duration_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        "wall_s": wall_s,
        "resources": v["resources"],
        "findings": findings,
        "orphans": v["orphans"].as_array().map(Vec::len).unwrap_or(0),
        "errors": errors,
        "by_kind": v["by_kind"],
        "first_findings": v["findings"].as_array().map(|f| f.iter().take(5).cloned().collect::<Vec<_>>()),
        "first_errors": v["errors"].as_array().map(|f| f.iter().take(5).cloned().collect::<Vec<_>>()),
    }))
}

/// Cleanup through hostwright: every contract terminated (第25条), timed.
async fn terminate(
    serve: &Serve,
    signer: &Signer,
    sites: &[(String, String, String)],
    failed: &[&crate::serve::JobSummary],
    in_flight: usize,
    timeout: Duration,
) -> Result<Value> {
    let n = sites.len();
    // A failed job would hold its contract's termination back (revisions of
    // a contract run in order): cancel it first, as ops would.
    for j in failed.iter().filter(|j| j.state == "failed") {
        serve.cancel(&j.job_id).await?;
    }
    let term: Vec<Vec<u8>> = sites
        .iter()
        .map(|(id, _, d)| signer.sign(&common::www_termination(id, d, true)))
        .collect();
    Ok(
        match serve
            .run_batch(term, in_flight, 2 * n as u64, timeout)
            .await
        {
            Ok(t) => {
                let bad = t.jobs.iter().filter(|j| j.state != "succeeded").count();
                json!({"seconds": t.seconds, "contracts_per_s": n as f64 / t.seconds, "failed": bad})
            }
            Err(e) => json!({"error": format!("{e:#}")}),
        },
    )
}

/// Removes what termination did not (after a failure): accounts with this
/// run's GECOS marker, vhost files, zones, FTP logins, archives. Returns how
/// many accounts were left over.
fn sweep(ctx: &Ctx, tag: &str, sites: &[(String, String, String)]) -> Result<usize> {
    let marker = format!("hostwright C-B{tag}-");
    let left = common::users_with_gecos(&marker)?;
    let pairs: Vec<(String, String)> = sites
        .iter()
        .map(|(_, u, d)| (u.clone(), d.clone()))
        .collect();
    for host in common::web_hosts(ctx) {
        common::clean_web(ctx, &host, &pairs)?;
        // FTP logins and zones of this run (missing ones are fine).
        let mut args = vec![
            ctx.var(&host.var("FTP", "PASSWD"))?,
            ctx.var(&host.var("FTP", "PDB"))?,
            ctx.var("HW_DNS_RNDC_HOST")?,
            ctx.var("HW_DNS_RNDC_PORT")?,
            ctx.var("HW_DNS_RNDC_KEY")?,
        ];
        args.extend(sites.iter().map(|(_, u, d)| format!("{u}:{d}")));
        common::local_script(CLEAN_FTP_DNS, &args)?;
    }
    Ok(left.len())
}

/// $1 passwd, $2 pdb, $3 rndc host, $4 rndc port, $5 rndc key, then
/// `login:zone` pairs. Drops the logins from pure-ftpd's passwd file (one
/// rebuild of the puredb) and deletes zones BIND still has.
const CLEAN_FTP_DNS: &str = r#"set -u
passwd=$1 pdb=$2 host=$3 port=$4 key=$5; shift 5
logins=""
for pair in "$@"; do
  l=${pair%%:*} z=${pair#*:}
  logins="$logins $l"
  if rndc -s "$host" -p "$port" -k "$key" zonestatus "$z" >/dev/null 2>&1; then
    rndc -s "$host" -p "$port" -k "$key" delzone -clean "$z" >/dev/null 2>&1 || true
  fi
done
exec 9>>"$passwd.lock"
flock -w 30 9 || exit 22
tmp=$(mktemp "$passwd.XXXXXX")
awk -F: -v drop="$logins" 'BEGIN { n = split(drop, a, " "); for (i = 1; i <= n; i++) d[a[i]] = 1 } !($1 in d)' "$passwd" >"$tmp"
if cmp -s "$tmp" "$passwd"; then rm -f "$tmp"; exit 0; fi
chmod 0600 "$tmp"
mv -f -- "$tmp" "$passwd"
pure-pw mkdb "$pdb" -f "$passwd"
"#;
