//! `hostwright store backup | restore | prune | copy`: the store as an operator's
//! database (docs/schema.md, "Operating the store"). They work on the store
//! files or databases directly, not through the API: backup on a running
//! store, restore and copy only on a stopped one (refused otherwise).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use hostwright::engine::config::Config;
use hostwright::engine::retention;
use hostwright::engine::store::admin::{self, Snapshot};

use super::ops::ConfigArgs;
use super::out::{self, say};

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Write a consistent copy of the config's SQLite store to FILE (made
    /// 0600) while it runs. PostgreSQL: use pg_dump (docs/schema.md).
    Backup {
        file: PathBuf,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Replace the config's SQLite store with the backup FILE. Refused while
    /// a hostwright has the store open, and over a store with content unless
    /// --force. PostgreSQL: use pg_restore (docs/schema.md).
    Restore {
        file: PathBuf,
        /// Replace a store that has content.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Delete the history `[store.retention]` no longer keeps (serve does
    /// this on its own every `interval_minutes`); works on a running store.
    Prune {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Copy a stopped SQLite store into an empty PostgreSQL database and
    /// check the copy (rows and content digest of every table).
    Copy {
        /// The SQLite store: sqlite:PATH.
        #[arg(long)]
        from: String,
        /// The empty PostgreSQL database: postgres://...
        #[arg(long)]
        to: String,
        /// Print JSON for scripts instead of text for people.
        #[arg(long)]
        json: bool,
    },
}

fn sqlite_of(cfg: &Config, what: &str) -> anyhow::Result<PathBuf> {
    match admin::sqlite_path(&cfg.store.url) {
        Some(p) => Ok(p),
        None => bail!(
            "store {what} works on a SQLite store; this config's store is PostgreSQL: \
             use pg_dump / pg_restore (docs/schema.md, \"Backup and restore\")"
        ),
    }
}

fn print_snapshot(verb: &str, s: &Snapshot, json: bool) -> anyhow::Result<()> {
    if json {
        return out::json(s, true);
    }
    say!(
        "{verb} {} ({} bytes, {} tables)",
        s.file.display(),
        s.bytes,
        s.tables.len()
    );
    for (t, n) in &s.tables {
        say!("  {t:<24} {n:>10} rows");
    }
    Ok(())
}

pub async fn run(cmd: StoreCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCmd::Backup { file, cfg } => {
            let config = Config::load(&cfg.config)?;
            let db = sqlite_of(&config, "backup")?;
            let snap = tokio::task::spawn_blocking(move || admin::backup_sqlite(&db, &file))
                .await?
                .context("store backup")?;
            print_snapshot("backed up to", &snap, cfg.json)?;
        }
        StoreCmd::Restore { file, force, cfg } => {
            let config = Config::load(&cfg.config)?;
            let db = sqlite_of(&config, "restore")?;
            if let Some(dir) = db.parent() {
                hostwright::engine::server::private_dir(dir)?;
            }
            let snap =
                tokio::task::spawn_blocking(move || admin::restore_sqlite(&file, &db, force))
                    .await?
                    .context("store restore")?;
            print_snapshot("restored", &snap, cfg.json)?;
        }
        StoreCmd::Prune { cfg } => {
            let config = Config::load(&cfg.config)?;
            let store = hostwright::engine::server::open_configured_store(&config).await?;
            let policy = retention::Policy::new(
                &config.store.retention,
                config.intake.rejection_retention(),
            );
            let pruned = retention::prune(store.as_ref(), &policy, chrono::Utc::now())
                .await
                .context("store prune")?;
            if cfg.json {
                out::json(&pruned, false)?;
            } else {
                say!(
                    "deleted {} attempts of succeeded jobs, {} delivered reports, {} refusals",
                    pruned.attempts,
                    pruned.delivered_reports,
                    pruned.rejections
                );
            }
        }
        StoreCmd::Copy { from, to, json } => {
            let Some(path) = admin::sqlite_path(&from) else {
                bail!("--from must be sqlite:PATH (got {from:?})");
            };
            if !to.starts_with("postgres://") && !to.starts_with("postgresql://") {
                bail!("--to must be a postgres:// URL");
            }
            let report = admin::copy_sqlite_to_postgres(&path, &to)
                .await
                .context("store copy")?;
            if json {
                out::json(&report, true)?;
            } else {
                say!(
                    "copied {} tables into PostgreSQL; rows and content digests match",
                    report.tables.len()
                );
                for t in &report.tables {
                    say!("  {:<24} {:>10} rows  sha256 {}", t.table, t.rows, t.digest);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
