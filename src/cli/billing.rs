//! `hostwright billing close | export`: the monthly close for billing and
//! the month's export for accounting, on the store the config names (the
//! same store a running `serve` uses; its reporter delivers what a close
//! enqueues).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use hostwright::calendar::YearMonth;
use hostwright::engine::close;
use hostwright::engine::config::Config;
use hostwright::engine::server;

use super::out::{self, say};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// The engine's config file, which names the store and the catalog.
#[derive(Debug, Args)]
pub struct ConfigFile {
    #[arg(
        long,
        short,
        env = "HOSTWRIGHT_CONFIG",
        default_value = "hostwright.toml"
    )]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum BillingCmd {
    /// Close a month: every contract's statement, reported to billing once;
    /// a rerun sends only corrections of contracts revised since.
    Close {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        #[command(flatten)]
        config: ConfigFile,
        #[arg(long)]
        json: bool,
    },
    /// The closed month for accounting: one line per statement line (with its
    /// article) of each contract's latest version, and its tax.
    Export {
        #[arg(long)]
        month: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        #[command(flatten)]
        config: ConfigFile,
    },
}

fn month(s: &str) -> anyhow::Result<YearMonth> {
    YearMonth::parse(s).with_context(|| format!("--month {s:?} is not YYYY-MM"))
}

pub async fn run(cmd: BillingCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        BillingCmd::Close {
            month: m,
            config,
            json,
        } => {
            let m = month(&m)?;
            let cfg = Config::load(&config.config)?;
            let store = server::open_configured_store(&cfg).await?;
            let catalog = server::load_catalog(&cfg)?;
            let s = close::close_month(store.as_ref(), &catalog, m).await?;
            if json {
                out::json(&s, true)?;
            } else {
                say!(
                    "close {}: {} contract(s): {} closed, {} corrected, {} unchanged, {} with nothing to bill, {} failed",
                    s.month,
                    s.contracts,
                    s.closed,
                    s.corrected,
                    s.unchanged,
                    s.skipped,
                    s.failed.len()
                );
                for (cid, e) in &s.failed {
                    say!("  {cid}: {e}");
                }
            }
            Ok(if s.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        BillingCmd::Export {
            month: m,
            format,
            config,
        } => {
            let m = month(&m)?;
            let cfg = Config::load(&config.config)?;
            let store = server::open_configured_store(&cfg).await?;
            let latest = close::latest_versions(store.statements_of_month(&m.to_string()).await?);
            let lines = close::export_lines(&latest)?;
            match format {
                Format::Csv => out::csv(&close::export_csv(&lines)),
                Format::Json => out::json(&lines, true)?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
