//! `securemx-mock`: a local stand-in for the Secure MX provider's cloud API,
//! for tests, the quickstart and the compose stack. See docs/securemx-api.md.

#[path = "../mock/mod.rs"]
mod mock;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Mock Secure MX API (tenants and mailboxes)")]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:55380.
    #[arg(long)]
    listen: SocketAddr,
    /// JSON state file, replaced atomically after each change.
    #[arg(long)]
    state: PathBuf,
    /// File with the accepted API keys, one per line.
    #[arg(long)]
    api_key_file: PathBuf,
    /// Requests per API key: `N/s` or `N/m`.
    #[arg(long, default_value = "200/s")]
    rate_limit: String,
    /// Bucket size (requests allowed at once); default min(rate per second, 100).
    #[arg(long)]
    burst: Option<u32>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); the
    /// files are re-read when they change.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let rate =
        mock::limit::RateLimit::parse(&args.rate_limit, args.burst).map_err(anyhow::Error::msg)?;
    let keys = mock::read_api_keys(&args.api_key_file)?;
    let app = mock::App::open(&args.state, keys, rate)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let tls = hostwright_tls::server::optional_tls(args.tls_cert, args.tls_key)?;
    tracing::info!(listen = %args.listen, state = %args.state.display(), tls = tls.is_some(),
        rate_per_s = rate.per_second, burst = rate.burst, "securemx-mock listening");
    hostwright_tls::server::serve(
        listener,
        mock::router(app.clone()),
        tls,
        hostwright_tls::server::termination_signal(),
    )
    .await?;
    // Changes are written behind the answers: make sure the last ones are in.
    app.flush().await?;
    tracing::info!("securemx-mock stopped; state flushed");
    Ok(())
}
