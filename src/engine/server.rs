//! Assembling and running an engine: store, adapters, playbooks, catalog and
//! keys from the config; then the API, the workers and the billing reporter in
//! one process until SIGTERM/SIGINT.
//!
//! Shutdown: the first signal stops claiming new jobs and lets running steps
//! finish for `workers.shutdown_grace_seconds`; a job between steps is released
//! at once; a step still running after the grace period is abandoned and its
//! job released, to be resumed by another worker.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use super::auth::{Authenticator, FailureLimit};
use super::claims;
use super::config::Config;
use super::metrics::Metrics;
use super::playbook::{Known, Playbooks};
use super::registry::Registry;
use super::scripted::Script;
use super::store::sql::SqlStore;
use super::store::sqlite::SqliteStore;
use super::store::{SecretKeys, Store, StoreError};
use super::{Engine, api, outbox, worker};
use crate::catalog::Catalog;
use crate::contract::Contract;
use crate::signing::TrustedKeys;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] super::store::StoreError),
    #[error(transparent)]
    Adapter(#[from] super::adapters::AdapterConfigError),
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error("playbook {0}")]
    Playbook(#[from] super::playbook::PlaybookError),
    #[error("catalog: {0}")]
    Catalog(String),
    #[error("trusted keys: {0}")]
    Keys(String),
    #[error("{0}")]
    Secret(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn read_secret_file(path: &Path) -> Result<String, StartError> {
    crate::input::read_text(path, crate::input::MAX_SECRET_FILE_BYTES, "a secret file")
        .map(|s| s.trim().to_string())
        .map_err(|e| StartError::Secret(e.to_string()))
}

/// Opens the job store named by a URL (`sqlite:PATH` or `postgres://...`),
/// with the key that seals its secrets (made at first start).
pub async fn open_store(
    url: &str,
    max_connections: u32,
    secrets_key: &Path,
) -> Result<Arc<dyn Store>, StartError> {
    let keys = SecretKeys::load_or_create(secrets_key).map_err(StoreError::from)?;
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = Path::new(path.trim_start_matches("//"));
        if let Some(dir) = path.parent() {
            private_dir(dir)?;
        }
        Ok(Arc::new(SqliteStore::open(path, keys).await?))
    } else {
        Ok(Arc::new(
            SqlStore::connect_postgres(url, max_connections, keys).await?,
        ))
    }
}

/// The store a config file names, its data folder made private first.
pub async fn open_configured_store(cfg: &Config) -> Result<Arc<dyn Store>, StartError> {
    private_dir(&cfg.data_dir)?;
    open_store(
        &cfg.store.url,
        cfg.store.max_connections,
        &cfg.store.secrets_key_path(&cfg.data_dir),
    )
    .await
}

/// Creates `dir` (and its parents) if needed; the folder itself is made
/// (or narrowed to) 0700: it holds the store and the secrets key.
pub fn private_dir(dir: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| StartError::Io {
        path: dir.display().to_string(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// The adapters named in `[adapters.*]` (see [`super::adapters::registry`]).
pub async fn build_registry(cfg: &Config) -> Result<(Registry, Option<Script>), StartError> {
    super::adapters::registry(&cfg.adapters, cfg.fleet.as_ref()).map_err(|e| {
        match cfg.adapter_error_at_line() {
            // The same refusal, with the file and line.
            Some(at_line) => StartError::Config(at_line),
            None => StartError::Adapter(e),
        }
    })
}

/// The catalog the config names, or the built-in one.
pub fn load_catalog(cfg: &Config) -> Result<Catalog, StartError> {
    match &cfg.catalog {
        Some(p) => Catalog::load(p),
        None => Catalog::builtin(),
    }
    .map_err(|e| StartError::Catalog(e.to_string()))
}

/// Builds an engine from a config file's settings. Everything the config
/// names is read and checked before the store is opened: a bad config
/// creates no data folder, store or key.
pub async fn build(cfg: &Config) -> Result<Arc<Engine>, StartError> {
    let (adapters, _) = build_registry(cfg).await?;
    let catalog = load_catalog(cfg)?;
    let playbooks = load_playbooks(&cfg.playbooks, &adapters, &catalog)?;
    let trusted_keys =
        TrustedKeys::load(&cfg.intake.trusted_keys).map_err(|e| StartError::Keys(e.to_string()))?;
    let store = open_configured_store(cfg).await?;
    let engine = Arc::new(Engine {
        store,
        adapters,
        playbooks,
        catalog: Arc::new(catalog),
        trusted_keys,
        settings: cfg.workers,
        provisioning: cfg.provisioning.clone(),
        fleet: cfg
            .fleet
            .clone()
            .map(|f| Arc::new(super::fleet::Fleet::new(f))),
        metrics: Metrics::new(),
        refusals: super::guard::RefusalLimiter::new(cfg.intake.refusal_budget()),
        wake: Notify::new(),
        report_wake: Notify::new(),
        notifier: super::notify::Notifier::new(cfg.notify.keys().copied()),
        notify_wake: Notify::new(),
        reconciler: Default::default(),
    });
    adopt_legacy_claims(&engine).await?;
    if let Some(fleet) = &engine.fleet {
        // Placement starts from what is true now, not from "unknown".
        fleet.check_health().await;
    }
    Ok(engine)
}

/// The `hw_meta` mark of [`adopt_legacy_claims`].
const CLAIMS_ADOPTED: &str = "claims_adopted";

/// Once per store written before ownership existed (migration 0003): every
/// contract, oldest first, claims the names its recorded resources and its
/// latest revision use. A name two contracts used (possible before claims)
/// goes to the older contract; the other is logged, and its steps will
/// refuse to touch that name (`StoreError::NotOwner`) until ops resolve it.
pub async fn adopt_legacy_claims(engine: &Engine) -> Result<(), StartError> {
    let store = &engine.store;
    if store.meta(CLAIMS_ADOPTED).await?.is_some() {
        return Ok(());
    }
    let mut conflicts = 0usize;
    for rev in store.latest_revisions().await? {
        let contract = Contract::from_json(&rev.payload).map_err(|e| {
            StoreError::Corrupt(format!(
                "recorded revision {} of {}: {e}",
                rev.revision, rev.contract_id
            ))
        })?;
        let recorded = store.resources(&rev.contract_id).await?;
        let mut claims = claims::of_recorded(&recorded);
        if let Ok(desired) = engine.derive_with(&contract, &recorded) {
            claims.extend(claims::of_revision(&contract, &desired));
        }
        let (names, domains) = store
            .adopt_claims(
                &rev.contract_id,
                &contract.customer.id,
                rev.revision,
                &claims,
            )
            .await?;
        for n in &names {
            warn!(contract_id = %rev.contract_id, name = %n, "already owned by an older contract; this contract's steps will not touch it");
        }
        for d in &domains {
            warn!(contract_id = %rev.contract_id, domain = %d, "held by another customer's older contract; this contract keeps it unclaimed");
        }
        conflicts += names.len() + domains.len();
    }
    store
        .set_meta(CLAIMS_ADOPTED, &chrono::Utc::now().to_rfc3339())
        .await?;
    info!(
        conflicts,
        "claims adopted for the contracts recorded before ownership"
    );
    Ok(())
}

/// Loads and validates the playbooks against the registered adapters and the
/// catalog's service types.
pub fn load_playbooks(
    dir: &Path,
    adapters: &Registry,
    catalog: &Catalog,
) -> Result<Playbooks, StartError> {
    let kinds = adapters.kinds();
    let services = catalog.service_codes();
    Ok(Playbooks::load_dir(
        dir,
        &Known {
            adapters: &kinds,
            services: &services,
        },
    )?)
}

/// The API's credentials from the config: the legacy shared ops token, the
/// intake credential, the failed-authentication limit.
pub fn authenticator(cfg: &Config) -> Result<Arc<Authenticator>, StartError> {
    let legacy = match &cfg.api.ops_token_file {
        Some(p) => {
            warn!(
                "api.ops_token_file: a shared ops token (actor `ops-token-file`); prefer per-person tokens (hostwright tokens create)"
            );
            Some(read_secret_file(p)?)
        }
        None => None,
    };
    let intake = match &cfg.intake.credential_file {
        Some(p) => Some(read_secret_file(p)?),
        None => {
            warn!(
                "no intake.credential_file: anyone may POST /v1/contracts (the signature is the only check)"
            );
            None
        }
    };
    let nz = |n: u32| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
    Ok(Authenticator::new(
        legacy,
        intake,
        FailureLimit {
            per_minute: nz(cfg.api.auth_failures_per_minute),
            burst: nz(cfg.api.auth_failure_burst),
        },
    ))
}

/// Runs API, workers and reporter until a termination signal.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    // Webhook secrets and CA files are read before anything starts.
    let hooks = if cfg.notify.is_empty() {
        None
    } else {
        Some(Arc::new(super::notify::Webhooks::new(&cfg.notify)?))
    };
    let engine = build(&cfg).await?;
    let auth = authenticator(&cfg)?;
    let sink: Option<Arc<dyn outbox::ReportSink>> = match &cfg.billing {
        Some(b) => Some(Arc::new(
            hostwright_billing::Reporter::new(
                b.endpoint.clone(),
                hostwright_adapter::Secret::new(read_secret_file(&b.secret_file)?),
                std::time::Duration::from_secs(b.timeout_seconds),
                b.ca_file.as_deref(),
            )
            .map_err(|e| anyhow::anyhow!("billing: {e}"))?,
        )),
        None => {
            warn!("no [billing] section: billable-state reports stay in the outbox");
            None
        }
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (hard_tx, hard_rx) = watch::channel(false);
    let worker_name = format!("{}-{}", hostname(), std::process::id());
    let mut tasks = Vec::new();
    for i in 0..engine.settings.concurrency {
        tasks.push(tokio::spawn(worker::run(
            engine.clone(),
            format!("{worker_name}-{i}"),
            shutdown_rx.clone(),
            hard_rx.clone(),
        )));
    }
    let reporter =
        sink.map(|s| tokio::spawn(outbox::run_reporter(engine.clone(), s, shutdown_rx.clone())));
    let notifier = hooks.map(|h| {
        let events: Vec<&str> = h.events().map(|e| e.as_str()).collect();
        info!(events = ?events, "webhook notifications on");
        tokio::spawn(outbox::run_notifier(engine.clone(), h, shutdown_rx.clone()))
    });
    let closer = if cfg.close.enabled {
        Some(tokio::spawn(run_close_schedule(
            engine.clone(),
            cfg.close,
            shutdown_rx.clone(),
        )))
    } else {
        warn!(
            "[close] is not enabled: months are closed for billing only by `hostwright billing close`"
        );
        None
    };
    let health = engine
        .fleet
        .clone()
        .map(|f| tokio::spawn(f.health_loop(shutdown_rx.clone())));
    let reconcile = cfg.drift.enabled.then(|| {
        tokio::spawn(super::drift::run_schedule(
            engine.clone(),
            cfg.drift,
            shutdown_rx.clone(),
        ))
    });
    let housekeeping = tokio::spawn(super::guard::run_housekeeping(
        engine.clone(),
        cfg.intake.rejection_retention(),
        shutdown_rx.clone(),
    ));
    let retention = tokio::spawn(super::retention::run_schedule(
        engine.clone(),
        super::retention::Policy::new(&cfg.store.retention, cfg.intake.rejection_retention()),
        std::time::Duration::from_secs(cfg.store.retention.interval_minutes.max(1) * 60),
        shutdown_rx.clone(),
    ));

    let tls = match cfg.api.tls.clone() {
        Some(files) => Some(
            hostwright_tls::server::tls_config(files)
                .map_err(|e| anyhow::anyhow!("api.tls: {e}"))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.api.listen).await?;
    info!(listen = %cfg.api.listen, tls = tls.is_some(), store = engine.store.backend(), workers = engine.settings.concurrency, "hostwright serving");
    let app = api::router(engine.clone(), auth);
    let mut api_shutdown = shutdown_rx.clone();
    let http = tokio::spawn(async move {
        // Serves with the peer's address (ConnectInfo): the key of the
        // refusal budget and of the failed-authentication limit.
        hostwright_tls::server::serve(listener, app, tls, async move {
            let _ = api_shutdown.wait_for(|v| *v).await;
        })
        .await
    });

    hostwright_tls::server::termination_signal().await;
    info!(
        grace_s = engine.settings.shutdown_grace().as_secs(),
        "shutting down: no new jobs; running steps may finish"
    );
    let _ = shutdown_tx.send(true);
    engine.wake_workers();
    let deadline = tokio::time::Instant::now() + engine.settings.shutdown_grace();
    for t in tasks.iter_mut() {
        if tokio::time::timeout_at(deadline, &mut *t).await.is_err() {
            if !*hard_tx.borrow() {
                warn!("grace period over: abandoning running steps and releasing their jobs");
                let _ = hard_tx.send(true);
            }
            let _ = t.await;
        }
    }
    if let Some(r) = reporter {
        let _ = r.await;
    }
    if let Some(n) = notifier {
        let _ = n.await;
    }
    if let Some(c) = closer {
        let _ = c.await;
    }
    if let Some(r) = reconcile {
        let _ = r.await;
    }
    let _ = housekeeping.await;
    let _ = retention.await;
    if let Some(h) = health {
        let _ = h.await;
    }
    if let Err(e) = http.await {
        error!(error = %e, "http server task failed");
    }
    info!("stopped");
    Ok(())
}

/// The monthly close on a schedule: every `interval_minutes`, the previous
/// month in Japan and the `recheck_months` before it (corrections), until
/// shutdown. Each run sends only what is new.
pub async fn run_close_schedule(
    engine: Arc<Engine>,
    cfg: super::config::CloseConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = std::time::Duration::from_secs(cfg.interval_minutes.max(1) * 60);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let last = super::close::month_to_close(chrono::Utc::now());
        for back in (0..=cfg.recheck_months as i32).rev() {
            let month = last.plus_months(-back);
            match super::close::close_month(engine.store.as_ref(), &engine.catalog, month).await {
                Ok(s) => {
                    if s.closed + s.corrected > 0 {
                        engine.wake_reporter();
                    }
                    for (cid, e) in &s.failed {
                        warn!(month = %month, contract_id = %cid, error = %e, "monthly close: statement not computed");
                    }
                    info!(month = %month, closed = s.closed, corrected = s.corrected, unchanged = s.unchanged, "monthly close");
                }
                Err(e) => {
                    warn!(month = %month, error = %e, "monthly close failed; next run retries")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "worker".into())
}
