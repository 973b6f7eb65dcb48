//! The `hostwright` binary: a thin layer that parses the command line, runs
//! the command and maps its outcome to an exit code (0 ok, 1 the command's
//! own "no", 2 an error).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hostwright",
    version,
    about = "Hosting provisioning orchestrator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API, the workers and the billing reporter.
    Serve {
        #[arg(
            long,
            short,
            env = "HOSTWRIGHT_CONFIG",
            default_value = "hostwright.toml"
        )]
        config: PathBuf,
    },
    /// Post signed contracts to a running engine (the approval webhook).
    Submit {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        api: cli::engine::ApiArgs,
    },
    /// Print the steps a signed contract would take now, applying nothing.
    /// Compared with the recorded state, or with `--observe` with the real
    /// backends.
    Plan {
        file: PathBuf,
        #[arg(
            long,
            short,
            env = "HOSTWRIGHT_CONFIG",
            default_value = "hostwright.toml"
        )]
        config: PathBuf,
        #[arg(long)]
        json: bool,
        /// Compare with what the backends hold now (each resource observed),
        /// not with the state hostwright recorded.
        #[arg(long)]
        observe: bool,
    },
    /// Compare the real backends with every contract's latest revision:
    /// missing and changed resources, and orphans (hostwright's marker, no
    /// owning contract). Runs the scan itself from the config, as `plan`
    /// does. Exit 0: no drift; 2: drift found; 1: an error.
    Drift {
        /// Only these contracts (no orphan search then); every one when absent.
        contracts: Vec<String>,
        #[arg(
            long,
            short,
            env = "HOSTWRIGHT_CONFIG",
            default_value = "hostwright.toml"
        )]
        config: PathBuf,
        #[arg(long)]
        json: bool,
        /// Queue a repair job for each missing or changed resource (its
        /// adapter's `ensure` to the contract's desired spec), audited with
        /// who asked, then run them. Orphans are never touched.
        #[arg(long, conflicts_with = "delete_orphan")]
        repair: bool,
        /// Remove one orphan, named by its kind and key (e.g. `webspace
        /// c-old`): checked to be an orphan now, then removed through its
        /// adapter (a web space is archived first), audited.
        #[arg(long, num_args = 2, value_names = ["KIND", "NAME"])]
        delete_orphan: Option<Vec<String>>,
    },
    /// Watch, rerun and cancel jobs.
    #[command(subcommand)]
    Jobs(cli::engine::JobsCmd),
    /// The fleet's web hosts: list, drain, activate.
    #[command(subcommand)]
    Hosts(cli::hosts::HostsCmd),
    /// Contracts on a running engine: move one to another web host.
    #[command(subcommand)]
    Contracts(cli::contracts::ContractsCmd),
    /// Per-person ops tokens: create, list, revoke (in the config's store;
    /// effective at once on a running system).
    #[command(subcommand)]
    Tokens(cli::ops::TokensCmd),
    /// The store as a database: backup, restore, copy to PostgreSQL.
    #[command(subcommand)]
    Store(cli::store::StoreCmd),
    /// The audit log: every ops action and every refused attempt.
    Audit(cli::ops::AuditArgs),
    /// Contract-signing keys.
    #[command(subcommand)]
    Keys(cli::terms::KeysCmd),
    /// Sign, verify and check contracts against the terms.
    #[command(subcommand)]
    Contract(cli::terms::ContractCmd),
    /// A month's statement for a contract (and its revisions).
    Bill(cli::terms::BillArgs),
    /// The monthly close for billing and its export for accounting.
    #[command(subcommand)]
    Billing(cli::billing::BillingCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `hostwright man > hostwright.1`.
    Man,
    /// Print the API's OpenAPI 3.1 document (as served at /v1/openapi.json).
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The terms commands are pure and need no runtime.
    let result = match cli.command {
        Command::Keys(cmd) => cli::terms::keys(cmd),
        Command::Contract(cmd) => cli::terms::contract(cmd),
        Command::Bill(args) => cli::terms::bill(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hostwright",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map(|_| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
        Command::Openapi => {
            print!("{}", hostwright::engine::openapi::document());
            Ok(ExitCode::SUCCESS)
        }
        other => return run_async(other),
    };
    finish(result)
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            cli::out::note!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once: many of our
/// errors already print their source in their own message (`{path}:
/// {source}`), and `{:#}` would then repeat it ("No such file or directory
/// (os error 2): No such file or directory (os error 2)").
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn run_async(command: Command) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            cli::out::note!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async move {
        match command {
            Command::Serve { config } => cli::engine::serve(config).await,
            Command::Submit { files, api } => cli::engine::submit(files, api).await,
            Command::Plan {
                file,
                config,
                json,
                observe,
            } => cli::engine::plan(file, config, json, observe).await,
            Command::Drift {
                contracts,
                config,
                json,
                repair,
                delete_orphan,
            } => match delete_orphan {
                Some(what) => cli::drift::delete_orphan(&what[0], &what[1], config, json).await,
                None => cli::drift::drift(contracts, config, json, repair).await,
            },
            Command::Jobs(cmd) => cli::engine::jobs(cmd).await,
            Command::Billing(cmd) => cli::billing::run(cmd).await,
            Command::Hosts(cmd) => cli::hosts::hosts(cmd).await,
            Command::Contracts(cmd) => cli::contracts::contracts(cmd).await,
            Command::Tokens(cmd) => cli::ops::tokens(cmd).await,
            Command::Audit(args) => cli::ops::audit(args).await,
            Command::Store(cmd) => cli::store::run(cmd).await,
            Command::Keys(_)
            | Command::Contract(_)
            | Command::Bill(_)
            | Command::Completions { .. }
            | Command::Man
            | Command::Openapi => {
                unreachable!("synchronous commands run before the runtime starts")
            }
        }
    });
    finish(result)
}
