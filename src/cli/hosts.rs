//! `hostwright hosts list | drain | activate`: the fleet's web hosts, over
//! the API of a running engine (its health checks and the store's
//! placements are there); state changes are audited ops actions.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::engine::{ApiArgs, Client};
use super::out::{self, say};

#[derive(Debug, Subcommand)]
pub enum HostsCmd {
    /// Every web host: state, health, accounts placed, disk committed
    /// against capacity, and the last health-check error.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Take no new contracts on the host (its contracts stay); needs the
    /// `operate` scope.
    Drain {
        name: String,
        /// Also move every contract on the host (a move job each) to the
        /// host the policy chooses among the others.
        #[arg(long)]
        move_all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Take new contracts on the host again; needs the `operate` scope.
    Activate {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn hosts(cmd: HostsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        HostsCmd::List { api } => {
            let c = Client::new(&api)?;
            let v = c.json(c.req(reqwest::Method::GET, "/v1/hosts")).await?;
            if api.json {
                out::json(&v, true)?;
            } else {
                print_hosts(&v);
            }
        }
        HostsCmd::Drain {
            name,
            move_all,
            api,
        } => set_state(&name, "drain", move_all, &api).await?,
        HostsCmd::Activate { name, api } => set_state(&name, "activate", false, &api).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_state(name: &str, verb: &str, move_all: bool, api: &ApiArgs) -> anyhow::Result<()> {
    let c = Client::new(api)?;
    let mut req = c.req(reqwest::Method::POST, &format!("/v1/hosts/{name}/{verb}"));
    if move_all {
        req = req.query(&[("move_all", "true")]);
    }
    let v = c.json(req).await?;
    if api.json {
        out::json(&v, false)?;
        return Ok(());
    }
    say!("{}: {}", name, v["state"].as_str().unwrap_or("?"));
    let ev = &v["evacuation"];
    for m in ev["moved"].as_array().into_iter().flatten() {
        say!(
            "  {} -> {}: move queued, job {}",
            m["contract_id"].as_str().unwrap_or("?"),
            m["to"].as_str().unwrap_or("?"),
            m["job_id"].as_str().unwrap_or("?")
        );
    }
    for n in ev["not_moved"].as_array().into_iter().flatten() {
        say!(
            "  {}: not moved: {}",
            n["contract_id"].as_str().unwrap_or("?"),
            n["reason"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

fn print_hosts(v: &Value) {
    say!(
        "group {} (policy {})",
        v["group"].as_str().unwrap_or("?"),
        v["policy"].as_str().unwrap_or("?")
    );
    say!(
        "{:<16} {:<9} {:<7} {:>13} {:>21}  last error",
        "HOST",
        "STATE",
        "HEALTH",
        "ACCOUNTS",
        "DISK MB"
    );
    for h in v["hosts"].as_array().into_iter().flatten() {
        let health = match h["healthy"].as_bool() {
            Some(true) => "up",
            Some(false) => "down",
            None => "unknown",
        };
        let n = |k: &str| h[k].as_u64().unwrap_or(0);
        say!(
            "{:<16} {:<9} {:<7} {:>13} {:>21}  {}",
            h["name"].as_str().unwrap_or("?"),
            h["state"].as_str().unwrap_or("?"),
            health,
            format!("{}/{}", n("accounts"), n("capacity_accounts")),
            format!("{}/{}", n("disk_committed_mb"), n("capacity_disk_mb")),
            h["last_error"].as_str().unwrap_or("-"),
        );
    }
}
