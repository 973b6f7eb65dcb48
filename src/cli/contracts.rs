//! `hostwright contracts move CONTRACT --to HOST`: moves a contract's web
//! space to another web host of the fleet, as a job of a running engine
//! (queued through its API, audited; `--wait` follows it to its end).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::engine::{ApiArgs, Client, print_jobs, wait_jobs};
use super::out::{self, say};

#[derive(Debug, Subcommand)]
pub enum ContractsCmd {
    /// Move the contract's web space (home, vhosts, TLS, FTP accounts) to
    /// another web host, switch its DNS records once the site answers
    /// there, then remove it from the old host; needs the `operate` scope.
    Move {
        contract: String,
        /// The web host to move to (a name in `[fleet]`).
        #[arg(long)]
        to: String,
        /// Wait until the move job ends; exit 1 if it did not succeed.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds (exit 2; the job goes on).
        #[arg(long, requires = "wait", value_name = "SECONDS")]
        timeout: Option<u64>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn contracts(cmd: ContractsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ContractsCmd::Move {
            contract,
            to,
            wait,
            timeout,
            api,
        } => {
            let c = Client::new(&api)?;
            let body = serde_json::to_vec(&serde_json::json!({ "to": to }))?;
            let v = c
                .json(
                    c.req(
                        reqwest::Method::POST,
                        &format!("/v1/contracts/{contract}/move"),
                    )
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body),
                )
                .await?;
            let job = v["job_id"].as_str().unwrap_or_default().to_string();
            if !wait {
                if api.json {
                    out::json(&v, false)?;
                } else {
                    say!(
                        "move of {} from {} to {} queued: job {}",
                        contract,
                        v["from"].as_str().unwrap_or("?"),
                        to,
                        job
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let jobs = wait_jobs(&c, &[job], api.json, timeout.map(Duration::from_secs)).await?;
            if api.json {
                out::json(&serde_json::json!({"move": v, "jobs": jobs}), true)?;
            } else {
                print_jobs(&jobs);
            }
            let ok = jobs
                .iter()
                .all(|j| j.state == hostwright::engine::store::JobState::Succeeded);
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
