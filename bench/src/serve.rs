//! A release `hostwright serve` child process driven over its HTTP API, the
//! way the contract system and ops drive it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::common::{Ctx, Signer};

pub const OPS_TOKEN: &str = "bench-ops-token";

/// What differs between the configs the parts use.
pub struct ServeConfig<'a> {
    pub store_url: String,
    pub playbooks: PathBuf,
    pub concurrency: usize,
    /// The `[adapters.*]` sections, TOML.
    pub adapters: &'a str,
}

/// `[adapters.*]` for the real backends of the test environment (as
/// `tests/full_stack.rs` configures them): the web host only, or every
/// adapter (the repository's playbooks name them all). UIDs come from a range
/// of their own so the bench never meets the tests' accounts.
pub fn real_adapters(all: bool) -> Result<String> {
    hostwright_adapter::testenv::adapters_toml(&hostwright_adapter::testenv::Sections {
        uids: (70000, 74999),
        ftp_and_dns: all,
        securemx: all,
    })
    .map_err(anyhow::Error::msg)
}

/// `[fleet]` of `hosts` loopback web hosts (least used first) and the
/// other real adapters (issue #13's two-host figure).
pub fn fleet_adapters(hosts: u8) -> Result<String> {
    hostwright_adapter::testenv::fleet_toml(
        &hostwright_adapter::testenv::Sections {
            uids: (70000, 74999),
            ftp_and_dns: true,
            securemx: true,
        },
        hosts,
        "least_used",
    )
    .map_err(anyhow::Error::msg)
}

/// Writes keys, token and `hostwright.toml` into `dir`; returns the config path.
/// No `[billing]`: reports stay in the outbox (they are written in the job's
/// end transaction, so the engine's share of that work is measured; only the
/// HTTP delivery to billing is left out, and the shared test billing sink is
/// not flooded with bench reports).
/// A written serve config and the API port it listens on (picked free).
pub struct ServeFiles {
    pub config: PathBuf,
    pub port: u16,
}

pub fn write_config(dir: &Path, signer: &Signer, c: &ServeConfig) -> Result<ServeFiles> {
    let port = free_port()?;
    std::fs::write(dir.join("trusted-keys.toml"), signer.trusted_keys_toml())?;
    std::fs::write(dir.join("ops-token"), format!("{OPS_TOKEN}\n"))?;
    let cfg = format!(
        r#"data_dir = "data"
playbooks = "{playbooks}"

[store]
url = "{store}"

[api]
listen = "127.0.0.1:{port}"
ops_token_file = "ops-token"

[intake]
trusted_keys = "trusted-keys.toml"

[workers]
concurrency = {concurrency}

[provisioning]
web_ipv4 = "192.0.2.80"
ttl = 300

{adapters}
"#,
        playbooks = c.playbooks.display(),
        store = c.store_url,
        concurrency = c.concurrency,
        adapters = c.adapters,
    );
    let config = dir.join("hostwright.toml");
    std::fs::write(&config, cfg)?;
    Ok(ServeFiles { config, port })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A job as `GET /v1/jobs` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct JobSummary {
    pub job_id: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub error: Option<String>,
}

impl JobSummary {
    /// Job created → ended, from the store's own records.
    pub fn latency_s(&self) -> f64 {
        (self.updated_at - self.created_at)
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1e6
    }
}

/// What one timed batch of contracts gave.
pub struct Batch {
    pub job_ids: Vec<String>,
    /// This batch's jobs as `GET /v1/jobs` lists them.
    pub jobs: Vec<JobSummary>,
    pub seconds: f64,
    pub intake_s: f64,
    pub peak_rss_mib: f64,
}

impl Batch {
    /// The first job that did not succeed, as an error.
    pub fn all_succeeded(&self) -> Result<()> {
        match self.jobs.iter().find(|j| j.state != "succeeded") {
            Some(bad) => bail!(
                "job {} {}: {}",
                bad.job_id,
                bad.state,
                bad.error.clone().unwrap_or_default()
            ),
            None => Ok(()),
        }
    }

    /// p50 and p99 of job created → ended.
    pub fn latency(&self) -> (f64, f64) {
        let lat: Vec<f64> = self.jobs.iter().map(|j| j.latency_s()).collect();
        (
            crate::common::percentile(&lat, 50.0),
            crate::common::percentile(&lat, 99.0),
        )
    }
}

/// Mean attempt per step kind as JSON (see [`step_breakdown`]).
pub fn breakdown_json(b: &std::collections::BTreeMap<String, (f64, u64)>) -> Value {
    b.iter()
        .map(|(k, (ms, c))| (k.clone(), serde_json::json!({"mean_ms": ms, "attempts": c})))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A running `hostwright serve`, killed when dropped.
pub struct Serve {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

impl Serve {
    pub async fn start(ctx: &Ctx, files: &ServeFiles, log: &Path) -> Result<Serve> {
        let ServeFiles { config, port } = files;
        let log_file = std::fs::File::create(log)?;
        let child = Command::new(&ctx.hostwright)
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", ctx.hostwright.display()))?;
        let mut s = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: hostwright_tls::client_builder(None)
                .expect("no CA file")
                .pool_max_idle_per_host(64)
                .build()?,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = s.http.get(format!("{}/readyz", s.base)).send().await
                && r.status().is_success()
            {
                return Ok(s);
            }
            if let Some(st) = s.child.try_wait()? {
                bail!("hostwright serve exited ({st}); log: {}", log.display());
            }
            if Instant::now() > deadline {
                bail!(
                    "hostwright serve not ready after 30 s; log: {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set of the serve process so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        peak_rss_mib(self.pid())
    }

    /// Posts every envelope, `in_flight` at a time; returns the job ids in order.
    pub async fn submit_all(
        &self,
        envelopes: Vec<Vec<u8>>,
        in_flight: usize,
    ) -> Result<Vec<String>> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let url = format!("{}/v1/contracts", self.base);
        stream::iter(envelopes)
            .map(|body| {
                let url = url.clone();
                async move {
                    let resp = self.http.post(&url).body(body).send().await?;
                    let status = resp.status();
                    let v: Value = resp.json().await?;
                    if status.as_u16() != 202 {
                        bail!("intake answered {status}: {v}");
                    }
                    Ok(v["job_id"].as_str().unwrap_or_default().to_string())
                }
            })
            .buffered(in_flight)
            .try_collect()
            .await
    }

    /// Jobs per state, from `/metrics` (one cheap COUNT per poll).
    pub async fn job_counts(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix("hostwright_jobs{state=\""))
            .filter_map(|l| {
                let (state, rest) = l.split_once('"')?;
                let n = rest.rsplit(' ').next()?.parse().ok()?;
                Some((state.to_string(), n))
            })
            .collect())
    }

    /// Waits until `total` jobs have ended (succeeded, failed or cancelled).
    pub async fn wait_ended(&self, total: u64, timeout: Duration, poll: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.job_counts().await?;
            let ended: u64 = ["succeeded", "failed", "cancelled"]
                .iter()
                .map(|s| c.get(*s).copied().unwrap_or(0))
                .sum();
            if ended >= total {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {ended}/{total} jobs ended after {timeout:?}: {c:?}");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Every job in the store (the bench gives each serve its own store).
    pub async fn jobs(&self) -> Result<Vec<JobSummary>> {
        let mut out = Vec::new();
        let mut path = "/v1/jobs?limit=1000".to_string();
        loop {
            let page: Value = self.ops_get(&path).await?;
            out.extend(serde_json::from_value::<Vec<JobSummary>>(
                page["items"].clone(),
            )?);
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/v1/jobs?limit=1000&cursor={c}"),
                None => return Ok(out),
            }
        }
    }

    /// One job with its steps and journal (`GET /v1/jobs/{id}`).
    pub async fn job(&self, id: &str) -> Result<Value> {
        self.ops_get(&format!("/v1/jobs/{id}")).await
    }

    /// `POST /v1/jobs/{id}/cancel`: a failed job blocks the later revisions
    /// of its contract until ops rerun or cancel it.
    pub async fn cancel(&self, id: &str) -> Result<()> {
        self.http
            .post(format!("{}/v1/jobs/{id}/cancel", self.base))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Accounts placed per web host (`GET /v1/hosts`), for a fleet run.
    pub async fn placed(&self) -> Result<Value> {
        let v: Value = self.ops_get("/v1/hosts").await?;
        Ok(v["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h["name"].as_str().unwrap_or("?").to_string(),
                    h["accounts"].clone(),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into())
    }

    async fn ops_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// POSTs every envelope and waits until `ended_total` jobs of the store
    /// have ended. The time is the first POST → the last job's end as the
    /// store recorded it (`updated_at`), so polling adds nothing to it.
    pub async fn run_batch(
        &self,
        envelopes: Vec<Vec<u8>>,
        in_flight: usize,
        ended_total: u64,
        timeout: Duration,
    ) -> Result<Batch> {
        let t0 = chrono::Utc::now();
        let clock = Instant::now();
        let job_ids = self.submit_all(envelopes, in_flight).await?;
        let intake_s = clock.elapsed().as_secs_f64();
        self.wait_ended(ended_total, timeout, Duration::from_millis(20))
            .await?;
        // Before the job listing below, whose answer would count in it.
        let peak_rss_mib = self.peak_rss_mib()?;
        let jobs = self.jobs().await?;
        let end = jobs.iter().map(|j| j.updated_at).max().unwrap_or(t0);
        Ok(Batch {
            seconds: (end - t0).num_microseconds().unwrap_or(0) as f64 / 1e6,
            intake_s,
            peak_rss_mib,
            jobs: jobs
                .into_iter()
                .filter(|j| job_ids.contains(&j.job_id))
                .collect(),
            job_ids,
        })
    }

    /// Graceful stop (SIGTERM), so the store is left consistent; SIGKILL
    /// after 20 s.
    pub fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// VmHWM of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM missing from /proc status")?;
    Ok(kib / 1024.0)
}

/// Mean duration of the successful attempts per resource kind, in ms, and
/// their count, over the jobs `ids` (from the job journal).
pub async fn step_breakdown(
    serve: &Serve,
    ids: &[String],
) -> Result<std::collections::BTreeMap<String, (f64, u64)>> {
    let mut sum: std::collections::BTreeMap<String, (f64, u64)> = Default::default();
    for id in ids {
        let d = serve.job(id).await?;
        let steps = d["steps"].as_array().cloned().unwrap_or_default();
        for a in d["attempts"].as_array().cloned().unwrap_or_default() {
            let Some(i) = a["step_index"].as_u64() else {
                continue;
            };
            let kind = steps
                .get(i as usize)
                .and_then(|s| s["step"]["resource"]["kind"].as_str())
                .unwrap_or("?");
            let action = steps
                .get(i as usize)
                .and_then(|s| s["step"]["action"].as_str())
                .unwrap_or("?");
            if let Some(ms) = a["duration_ms"].as_u64() {
                let e = sum.entry(format!("{action} {kind}")).or_default();
                e.0 += ms as f64;
                e.1 += 1;
            }
        }
    }
    for v in sum.values_mut() {
        v.0 /= v.1.max(1) as f64;
    }
    Ok(sum)
}
