//! `hostwright tokens` (per-person ops credentials, straight in the store
//! named by the config, so they work on a running system without a
//! restart) and `hostwright audit` (the audit log, over the API).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use hostwright::engine::auth;
use hostwright::engine::config::Config;
use hostwright::engine::store::ops::{AuditEntry, NewAuditEntry, TokenRecord};

use super::engine::{ApiArgs, Client};

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The engine's config file: its store holds the tokens.
    #[arg(
        long,
        short,
        env = "HOSTWRIGHT_CONFIG",
        default_value = "hostwright.toml"
    )]
    pub config: PathBuf,
    /// Print JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Make a token for one person; it is printed once and kept only hashed.
    Create {
        /// Who holds it (the actor of everything done with it), e.g. tanaka.
        name: String,
        /// Comma-separated: read, operate (rerun, cancel), secrets.
        #[arg(long, default_value = "read")]
        scope: String,
        /// Lifetime, e.g. 90d, 12h, 30m; no expiry when absent.
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Every token, revoked and expired ones included (never the secret).
    List {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Revoke a token by name; refused from its next request on.
    Revoke {
        name: String,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

/// `30d`, `12h`, `45m` as a duration.
fn parse_lifetime(s: &str) -> anyhow::Result<chrono::Duration> {
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().ok().filter(|n| *n > 0).with_context(|| {
        format!("--expires-in {s:?}: a positive number then d, h or m (e.g. 90d)")
    })?;
    Ok(match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        _ => bail!("--expires-in {s:?}: the unit must be d, h or m (e.g. 90d)"),
    })
}

fn token_json(t: &TokenRecord) -> serde_json::Value {
    serde_json::to_value(t).expect("token record serializes")
}

fn token_state(t: &TokenRecord) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

pub async fn tokens(cmd: TokensCmd) -> anyhow::Result<ExitCode> {
    let cfg_args = match &cmd {
        TokensCmd::Create { cfg, .. } | TokensCmd::List { cfg } | TokensCmd::Revoke { cfg, .. } => {
            cfg.clone()
        }
    };
    let cfg = Config::load(&cfg_args.config)?;
    let store = hostwright::engine::server::open_configured_store(&cfg).await?;
    let me = local_actor();
    match cmd {
        TokensCmd::Create {
            name,
            scope,
            expires_in,
            ..
        } => {
            let scopes = auth::parse_scopes(&scope)?;
            let expires_at = match expires_in {
                Some(s) => Some(chrono::Utc::now() + parse_lifetime(&s)?),
                None => None,
            };
            let (record, token) =
                auth::create_token(&*store, &name, &scopes, expires_at, &me).await?;
            auth::audit(
                &*store,
                NewAuditEntry {
                    actor: me,
                    action: "tokens create".into(),
                    target: Some(format!("token:{name}")),
                    outcome: "ok".into(),
                    detail: Some(format!("scopes {}", record.scopes.join(","))),
                    ..Default::default()
                },
            )
            .await;
            if cfg_args.json {
                let mut v = token_json(&record);
                v["token"] = json!(token);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{token}");
                eprintln!(
                    "token `{}` ({}){}: shown once, keep it in a file for --token-file",
                    record.name,
                    record.scopes.join(","),
                    record
                        .expires_at
                        .map(|e| format!(", expires {}", e.format("%Y-%m-%d %H:%M UTC")))
                        .unwrap_or_default()
                );
            }
        }
        TokensCmd::List { .. } => {
            let all = store.tokens().await?;
            if cfg_args.json {
                let v: Vec<_> = all.iter().map(token_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<24} {:<22} {:<8} {:<17} {:<17} CREATED BY",
                    "NAME", "SCOPES", "STATE", "CREATED", "EXPIRES"
                );
                for t in &all {
                    println!(
                        "{:<24} {:<22} {:<8} {:<17} {:<17} {}",
                        t.name,
                        t.scopes.join(","),
                        token_state(t),
                        t.created_at.format("%Y-%m-%d %H:%M"),
                        t.expires_at
                            .map(|e| e.format("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_else(|| "-".into()),
                        t.created_by
                    );
                }
            }
        }
        TokensCmd::Revoke { name, .. } => {
            let revoked = store.revoke_token(&name).await?;
            auth::audit(
                &*store,
                NewAuditEntry {
                    actor: me,
                    action: "tokens revoke".into(),
                    target: Some(format!("token:{name}")),
                    outcome: if revoked { "ok" } else { "refused" }.into(),
                    detail: (!revoked).then(|| "no live token by that name".to_string()),
                    ..Default::default()
                },
            )
            .await;
            if cfg_args.json {
                println!("{}", json!({"name": name, "revoked": revoked}));
            } else if revoked {
                println!("revoked `{name}`");
            }
            if !revoked {
                if !cfg_args.json {
                    eprintln!("error: no live token named `{name}`");
                }
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this actor (`token:tanaka`, `anonymous`, `ops-token-file`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this job, contract or token.
    #[arg(long)]
    pub target: Option<String>,
    /// Entries per page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue after a page (the `next_cursor` of the previous one).
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.api)?;
    let mut q = vec![("limit", args.limit.to_string())];
    for (k, v) in [
        ("actor", args.actor),
        ("target", args.target),
        ("cursor", args.cursor),
    ] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    let v = c
        .json(c.req(reqwest::Method::GET, "/v1/audit").query(&q))
        .await?;
    if args.api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let items: Vec<AuditEntry> = serde_json::from_value(v["items"].clone())?;
    println!(
        "{:<23} {:<24} {:<34} {:<38} {:<16} OUTCOME",
        "AT", "ACTOR", "ACTION", "TARGET", "ADDRESS"
    );
    for e in &items {
        println!(
            "{:<23} {:<24} {:<34} {:<38} {:<16} {}{}",
            e.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            e.actor,
            e.action,
            e.target.as_deref().unwrap_or("-"),
            e.address.as_deref().unwrap_or("-"),
            e.outcome,
            e.detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
    }
    if let Some(next) = v["next_cursor"].as_str() {
        eprintln!("more: --cursor {next}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `user@host` of whoever runs a local command (`hostwright tokens`), for
/// the audit log.
pub(crate) fn local_actor() -> String {
    // USER/LOGNAME are unset under cron and some sudo setups: fall back to
    // the numeric uid, which still says who asked.
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|l| l.split_whitespace().next().map(|u| format!("uid{u}")))
                })
                .unwrap_or_else(|| "unknown".into())
        });
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("local:{user}@{host}")
}
