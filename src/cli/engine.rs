//! `hostwright serve | submit | plan | jobs ...`: the engine's commands. All
//! but `serve` and `plan` talk to a running engine over its HTTP API, so ops
//! use the same paths as any other client.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use hostwright::engine::config::Config;
use hostwright::engine::intake::DryRun;
use hostwright::engine::store::{JobDetail, JobSummary, MAX_LIST_JOBS};
use hostwright::input::{MAX_SECRET_FILE_BYTES, read_file, read_text};
use hostwright::signing::MAX_ENVELOPE_BYTES;

use super::out::{self, note, say};

/// Where the API is and how to authenticate as ops.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of a running `hostwright serve` (`http://` or `https://`).
    #[arg(long, env = "HOSTWRIGHT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// PEM file of the CA that signed the API's certificate, trusted instead
    /// of the system's trust store (an API behind a private CA).
    #[arg(long, env = "HOSTWRIGHT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// File holding the ops bearer token.
    #[arg(long, env = "HOSTWRIGHT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Print JSON for scripts instead of tables for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// List jobs, newest first.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        contract: Option<String>,
        /// At most this many (1 to 10,000, the API's maximum).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIST_JOBS)))]
        limit: u32,
        /// Continue after a page (the `next_cursor` of the previous one).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one job: plan, steps, attempts, errors, timings, ops log.
    Show {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Put a failed job back in the queue (finished steps are not redone);
    /// `--failed` reruns every failed job.
    Rerun {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        failed: bool,
        /// Wait until the jobs end, showing progress (a bar on a terminal,
        /// a line per change otherwise); exit 1 if any did not succeed.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds (exit 2; the jobs go on).
        #[arg(long, requires = "wait", value_name = "SECONDS")]
        timeout: Option<u64>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel a queued, failed or running job.
    Cancel {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Hand back (once) the credentials a job created.
    Secrets {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub(crate) struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(api: &ApiArgs) -> anyhow::Result<Client> {
        let token = match &api.token_file {
            Some(p) => Some(
                read_text(p, MAX_SECRET_FILE_BYTES, "an ops token file")
                    .context("reading the ops token")?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Client {
            http: hostwright_tls::client_builder(api.ca_file.as_deref())?
                .timeout(Duration::from_secs(30))
                .build()?,
            url: api.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// A request to the API. Who asks is the token's name: the server
    /// takes the actor from the credential, never from the request.
    pub(crate) fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub(crate) async fn json(&self, r: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = r
            .send()
            .await
            .map_err(|e| match hostwright_tls::certificate_error(&e) {
                Some(tls) => anyhow::anyhow!("calling {}: {tls} (--ca-file)", self.url),
                None => anyhow::Error::new(e).context(format!("calling {}", self.url)),
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // Problem details (RFC 9457): `detail` says why.
            bail!(
                "{status}: {}",
                body.get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or(&body.to_string())
            );
        }
        Ok(body)
    }
}

pub async fn serve(config: PathBuf) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&config)?;
    hostwright::logging::init(cfg.log.format);
    hostwright::engine::server::serve(cfg).await?;
    Ok(ExitCode::SUCCESS)
}

/// Posts signed contracts; exit 1 if any was refused.
pub async fn submit(files: Vec<PathBuf>, api: ApiArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&api)?;
    let mut refused = 0;
    for f in files {
        let body = read_file(&f, MAX_ENVELOPE_BYTES, "a signed contract envelope")?;
        let resp = client
            .req(reqwest::Method::POST, "/v1/contracts")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("posting {}", f.display()))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if api.json {
            out::json(
                &serde_json::json!({"file": f, "status": status.as_u16(), "response": v}),
                false,
            )?;
        } else {
            print_intake_answer(&f.display().to_string(), &status.to_string(), &v);
        }
        if !status.is_success() {
            refused += 1;
        }
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One intake answer (the API's JSON) for a person: the job, or every
/// finding with its rule and article.
fn print_intake_answer(label: &str, status: &str, v: &Value) {
    match v.get("outcome").and_then(Value::as_str) {
        Some("accepted") | Some("existing") => say!(
            "{label}: {} job {} ({} rev {})",
            v["outcome"].as_str().unwrap_or_default(),
            v["job_id"].as_str().unwrap_or_default(),
            v["contract_id"].as_str().unwrap_or_default(),
            v["revision"]
        ),
        Some("rejected") => {
            say!("{label}: rejected ({status})");
            for fd in v["findings"].as_array().into_iter().flatten() {
                say!(
                    "  [{}] {} {}: {}",
                    fd["rule"].as_str().unwrap_or_default(),
                    fd["article"].as_str().unwrap_or_default(),
                    fd["path"].as_str().unwrap_or_default(),
                    fd["message"].as_str().unwrap_or_default()
                );
            }
        }
        _ => say!("{label}: {status} {v}"),
    }
}

/// Prints the steps a signed contract would take now, applying nothing.
pub async fn plan(
    file: PathBuf,
    config: PathBuf,
    json: bool,
    observe: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&config)?;
    let body = read_file(&file, MAX_ENVELOPE_BYTES, "a signed contract envelope")?;
    let engine = hostwright::engine::server::build(&cfg).await?;
    // Judged exactly as intake judges it: what intake would refuse, plan
    // refuses too (exit 1), with the same findings.
    let (contract, steps) = match engine.dry_run(&body, chrono::Utc::now()).await? {
        DryRun::Refused(answer) => {
            let v = serde_json::to_value(&answer)?;
            if json {
                // One shape either way: `refused` is intake's answer or null.
                out::json(&serde_json::json!({"refused": v, "steps": []}), true)?;
            } else {
                print_intake_answer(&file.display().to_string(), "intake would refuse it", &v);
            }
            return Ok(ExitCode::from(1));
        }
        DryRun::Planned { contract, steps } => (contract, steps),
    };
    // The same judgement, then the steps against what the backends hold.
    let steps = if observe {
        engine.plan_observed(&contract).await?
    } else {
        steps
    };
    let against = if observe {
        "compared with the real backends"
    } else {
        "compared with the recorded state"
    };
    if json {
        out::json(&serde_json::json!({"refused": null, "steps": steps}), true)?;
    } else if steps.is_empty() {
        say!(
            "{} rev {}: nothing to do ({})",
            contract.contract_id.as_str(),
            contract.revision,
            if observe {
                "the backends already match"
            } else {
                "the recorded state already matches; the backends were not asked (--observe asks them)"
            }
        );
    } else {
        say!(
            "{} rev {}: {} step(s), {against}",
            contract.contract_id.as_str(),
            contract.revision,
            steps.len()
        );
        for (i, s) in steps.iter().enumerate() {
            say!(
                "{:>3}. {:<8} {:<13} {:<32} via {}",
                i + 1,
                s.action.as_str(),
                s.resource.kind,
                s.resource.key,
                s.adapter
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn jobs(cmd: JobsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCmd::List {
            state,
            contract,
            limit,
            cursor,
            api,
        } => {
            let c = Client::new(&api)?;
            let mut q = vec![("limit", limit.to_string())];
            if let Some(cur) = cursor {
                q.push(("cursor", cur));
            }
            if let Some(s) = state {
                q.push(("state", s));
            }
            if let Some(ct) = contract {
                q.push(("contract", ct));
            }
            let v = c
                .json(c.req(reqwest::Method::GET, "/v1/jobs").query(&q))
                .await?;
            if api.json {
                out::json(&v, true)?;
            } else {
                let jobs: Vec<JobSummary> = serde_json::from_value(v["items"].clone())?;
                print_jobs(&jobs);
                if let Some(next) = v["next_cursor"].as_str() {
                    eprintln!("more: --cursor {next}");
                }
            }
        }
        JobsCmd::Show { id, api } => {
            let c = Client::new(&api)?;
            let v = c
                .json(c.req(reqwest::Method::GET, &format!("/v1/jobs/{id}")))
                .await?;
            if api.json {
                out::json(&v, true)?;
            } else {
                print_job(&serde_json::from_value(v)?);
            }
        }
        JobsCmd::Rerun {
            id,
            failed,
            wait,
            timeout,
            api,
        } => {
            let c = Client::new(&api)?;
            let path = match (&id, failed) {
                (Some(id), false) => format!("/v1/jobs/{id}/rerun"),
                (None, true) => "/v1/jobs/rerun-failed".to_string(),
                _ => bail!("give a job id or --failed"),
            };
            let v = c.json(c.req(reqwest::Method::POST, &path)).await?;
            let ids: Vec<String> = serde_json::from_value(v["rerun"].clone())?;
            if !api.json {
                say!("rerun: {} job(s) queued {}", ids.len(), ids.join(" "));
            }
            if !wait {
                if api.json {
                    // One shape with or without --wait: `jobs` is null
                    // when not waited for.
                    out::json(&serde_json::json!({"rerun": ids, "jobs": null}), false)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let timeout = timeout.map(Duration::from_secs);
            let jobs = wait_jobs(&c, &ids, api.json, timeout).await?;
            if api.json {
                out::json(&serde_json::json!({"rerun": ids, "jobs": jobs}), true)?;
            } else {
                print_jobs(&jobs);
            }
            let ok = jobs
                .iter()
                .all(|j| j.state == hostwright::engine::store::JobState::Succeeded);
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        JobsCmd::Cancel { id, api } => {
            let c = Client::new(&api)?;
            let v = c
                .json(c.req(reqwest::Method::POST, &format!("/v1/jobs/{id}/cancel")))
                .await?;
            if api.json {
                out::json(&v, false)?;
            } else {
                say!("cancelled {id}");
            }
        }
        JobsCmd::Secrets { id, api } => {
            let c = Client::new(&api)?;
            let v = c
                .json(c.req(reqwest::Method::POST, &format!("/v1/jobs/{id}/secrets")))
                .await?;
            out::json(&v, true)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls until every job ended: one list request per poll (per 1,000
/// jobs), the jobs by id. Progress goes to stderr: a bar on a terminal, a
/// plain line whenever it changes otherwise, nothing with `--json`.
pub(crate) async fn wait_jobs(
    c: &Client,
    ids: &[String],
    json: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<JobSummary>> {
    use std::io::IsTerminal;
    let started = std::time::Instant::now();
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(ids.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} jobs ended  {msg}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut last = String::new();
    loop {
        let mut jobs: Vec<JobSummary> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_LIST_JOBS as usize) {
            let q = [
                ("ids", chunk.join(",")),
                ("limit", chunk.len().max(1).to_string()),
            ];
            let v = c
                .json(c.req(reqwest::Method::GET, "/v1/jobs").query(&q))
                .await?;
            jobs.extend(serde_json::from_value::<Vec<JobSummary>>(
                v["items"].clone(),
            )?);
        }
        // In the order asked for; a job the API no longer knows is an error.
        let mut by_id: std::collections::BTreeMap<String, JobSummary> =
            jobs.into_iter().map(|j| (j.job_id.clone(), j)).collect();
        let jobs: Vec<JobSummary> = ids
            .iter()
            .map(|id| {
                by_id
                    .remove(id)
                    .with_context(|| format!("job {id} is gone"))
            })
            .collect::<anyhow::Result<_>>()?;
        let done = jobs.iter().filter(|j| j.state.is_final()).count();
        let steps: u32 = jobs.iter().map(|j| j.steps_done).sum();
        let total: u32 = jobs.iter().map(|j| j.steps_total).sum();
        let failed = jobs
            .iter()
            .filter(|j| j.state == hostwright::engine::store::JobState::Failed)
            .count();
        let msg = format!("{steps}/{total} steps done, {failed} failed");
        match &bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(msg);
            }
            None if !json => {
                let line = format!("{done}/{} jobs ended, {msg}", ids.len());
                if line != last {
                    note!("{line}");
                    last = line;
                }
            }
            None => {}
        }
        if done == ids.len() {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return Ok(jobs);
        }
        if let Some(t) = timeout
            && started.elapsed() >= t
        {
            if let Some(bar) = bar {
                bar.abandon();
            }
            bail!(
                "gave up waiting after {} s: {} of {} job(s) have not ended (they go on; `jobs list` shows them)",
                t.as_secs(),
                ids.len() - done,
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub(crate) fn print_jobs(jobs: &[JobSummary]) {
    say!(
        "{:<36}  {:<14} {:>4}  {:<10} {:>7}  {:<20}  ERROR",
        "JOB",
        "CONTRACT",
        "REV",
        "STATE",
        "STEPS",
        "UPDATED"
    );
    for j in jobs {
        say!(
            "{:<36}  {:<14} {:>4}  {:<10} {:>3}/{:<3}  {:<20}  {}",
            j.job_id,
            j.contract_id,
            j.revision,
            j.state.as_str(),
            j.steps_done,
            j.steps_total,
            j.updated_at.format("%Y-%m-%d %H:%M:%S"),
            match &j.move_to {
                Some(to) => format!("(move to {to}) {}", j.error.as_deref().unwrap_or("")),
                None => j.error.clone().unwrap_or_default(),
            }
        );
    }
}

fn print_job(d: &JobDetail) {
    let s = &d.summary;
    say!("job       {}", s.job_id);
    say!("contract  {} rev {}", s.contract_id, s.revision);
    say!("state     {}", s.state.as_str());
    say!("created   {}", s.created_at);
    say!("updated   {}", s.updated_at);
    if let Some(w) = &d.lease_owner {
        say!("worker    {w}");
    }
    if let Some(e) = &s.error {
        say!("error     {e}");
    }
    say!("steps");
    for st in &d.steps {
        say!(
            "  {:>2}. {:<9} {:<8} {:<13} {:<30} attempts {}{}",
            st.index + 1,
            st.state.as_str(),
            st.step.action.as_str(),
            st.step.resource.kind,
            st.step.resource.key,
            st.attempts,
            st.last_error
                .as_ref()
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default()
        );
    }
    say!("attempts");
    for a in &d.attempts {
        let outcome = match &a.outcome {
            None => "running/abandoned".to_string(),
            Some(o) => serde_json::to_value(o)
                .ok()
                .and_then(|v| {
                    v.as_str().map(str::to_string).or_else(|| {
                        v.as_object().and_then(|m| {
                            m.iter()
                                .next()
                                .map(|(k, v)| format!("{k}: {}", v["error"].as_str().unwrap_or("")))
                        })
                    })
                })
                .unwrap_or_default(),
        };
        say!(
            "  step {:>2} #{:<2} {}  {:>6} ms  {:<28} {}",
            a.step_index + 1,
            a.attempt,
            a.started_at.format("%H:%M:%S%.3f"),
            a.duration_ms
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            a.worker,
            outcome
        );
    }
    if !d.ops.is_empty() {
        say!("ops");
        for o in &d.ops {
            say!("  {} {} by {}", o.at, o.action, o.actor);
        }
    }
}
