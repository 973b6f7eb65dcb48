//! Shared harness for the engine's integration tests: an engine with scripted
//! stand-in adapters over a real store (a SQLite file, or a fresh database on
//! the test PostgreSQL server), and signed contracts made on the fly.

#![allow(dead_code)]

mod process;
#[allow(unused_imports)]
pub use process::*;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hostwright::catalog::Catalog;
use hostwright::engine::config::{ProvisioningConfig, WorkerSettings};
use hostwright::engine::intake::IntakeResult;
use hostwright::engine::metrics::Metrics;
use hostwright::engine::registry::Registry;
use hostwright::engine::scripted::{Behavior, Rule, Script, ScriptedAdapter};
use hostwright::engine::store::{JobState, Store};
use hostwright::engine::{Engine, server};
use hostwright::signing::{self, TrustedKeys};
use hostwright_adapter::retry::RetryPolicy;
use tokio::sync::{Notify, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A store on `backend`, fresh for this test. For PostgreSQL, a new database
/// on the server `scripts/testenv/up.sh` started (a missing server fails the
/// test). Returns the URL too, so a second engine can share the store.
pub async fn fresh_store_url(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite:{}", dir.join("jobs.db").display()),
        Backend::Postgres => {
            let admin = hostwright_adapter::testenv::var("HW_TEST_PG_URL");
            let name = format!("hw_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("test PostgreSQL reachable (scripts/testenv/up.sh)");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').expect("url has a database").0;
            format!("{base}/{name}")
        }
    }
}

pub struct Keys {
    pub key_id: String,
    pub signing: ed25519_dalek::SigningKey,
    pub trusted: TrustedKeys,
}

pub fn keys() -> Keys {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let key_id = "test-2026".to_string();
    let toml = format!(
        "[[key]]\nid = \"{key_id}\"\npublic_key = \"{}\"\nnot_before = \"2020-01-01T00:00:00Z\"\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            signing.verifying_key().as_bytes()
        )
    );
    let trusted = TrustedKeys::from_toml(&toml).expect("trusted keys parse");
    Keys {
        key_id,
        signing,
        trusted,
    }
}

pub fn sign(keys: &Keys, contract: &serde_json::Value) -> Vec<u8> {
    let bytes = serde_json::to_vec_pretty(contract).unwrap();
    signing::sign(&bytes, &keys.key_id, &keys.signing)
}

pub fn provisioning() -> ProvisioningConfig {
    toml::from_str("web_ipv4 = \"192.0.2.10\"").unwrap()
}

/// The one web host of a config without a fleet, as the planner takes it.
pub fn web_target() -> hostwright::engine::fleet::WebTarget {
    hostwright::engine::fleet::WebTarget {
        host: None,
        ipv4: provisioning().web_ipv4.expect("web_ipv4 set"),
        ipv6: None,
    }
}

pub fn fast_settings() -> WorkerSettings {
    WorkerSettings {
        concurrency: 4,
        lease_seconds: 2,
        poll_interval_ms: 20,
        step_timeout_seconds: 10,
        shutdown_grace_seconds: 2,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 10,
            max_delay_ms: 50,
        },
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The secrets key of the test store at `url`: one per store, so engines
/// sharing a store share its key.
pub fn secrets_key_for(url: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut h);
    std::env::temp_dir()
        .join("hostwright-test-keys")
        .join(format!("{:016x}.key", h.finish()))
}

/// An engine over `store_url` whose adapters are scripted stand-ins.
pub async fn engine(store_url: &str, script: &Script, settings: WorkerSettings) -> Arc<Engine> {
    engine_full(store_url, script, settings, Default::default(), None).await
}

/// [`engine`] that queues the `notifier`'s events.
pub async fn engine_notifying(
    store_url: &str,
    script: &Script,
    settings: WorkerSettings,
    notifier: hostwright::engine::notify::Notifier,
) -> Arc<Engine> {
    engine_full(store_url, script, settings, notifier, None).await
}

/// As [`engine`], with a fleet of web hosts whose adapters are scripted
/// stand-ins too (`webhost@HOST`, `ftp@HOST` in the call log).
pub async fn engine_with_fleet(
    store_url: &str,
    script: &Script,
    settings: WorkerSettings,
    fleet: Option<hostwright::engine::fleet::FleetConfig>,
) -> Arc<Engine> {
    engine_full(store_url, script, settings, Default::default(), fleet).await
}

/// An engine over `store_url` with scripted stand-ins, a notifier and,
/// when given, a fleet.
pub async fn engine_full(
    store_url: &str,
    script: &Script,
    settings: WorkerSettings,
    notifier: hostwright::engine::notify::Notifier,
    fleet: Option<hostwright::engine::fleet::FleetConfig>,
) -> Arc<Engine> {
    let store: Arc<dyn Store> = server::open_store(store_url, 8, &secrets_key_for(store_url))
        .await
        .expect("store opens");
    let mut reg = Registry::new();
    for a in ScriptedAdapter::all(script) {
        reg.register(a);
    }
    for host in fleet.iter().flat_map(|f| f.hosts.iter()) {
        for (name, a) in ScriptedAdapter::on_host(script, &host.name) {
            reg.register_as(name, a);
        }
    }
    let catalog = Catalog::builtin().expect("builtin catalog");
    let playbooks =
        server::load_playbooks(&repo().join("playbooks"), &reg, &catalog).expect("playbooks load");
    Arc::new(Engine {
        store,
        adapters: reg,
        playbooks,
        catalog: Arc::new(catalog),
        trusted_keys: keys().trusted,
        settings,
        provisioning: provisioning(),
        fleet: fleet.map(|f| Arc::new(hostwright::engine::fleet::Fleet::new(f))),
        metrics: Metrics::new(),
        refusals: Default::default(),
        wake: Notify::new(),
        report_wake: Notify::new(),
        notifier,
        notify_wake: Notify::new(),
        reconciler: Default::default(),
    })
}

pub fn rule(kind: &str, behavior: Behavior, times: Option<u32>) -> Rule {
    Rule {
        kind: Some(kind.into()),
        key: None,
        op: None,
        behavior,
        times,
    }
}

/// A fresh store on `backend` (its folder lives as long as the first value)
/// and an engine over it whose stand-in adapters follow `rules`.
pub async fn fixture(
    backend: Backend,
    rules: Vec<Rule>,
) -> (tempfile::TempDir, Script, Arc<hostwright::engine::Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(backend, dir.path()).await;
    let script = Script::new();
    for r in rules {
        script.push(r);
    }
    let engine = engine(&url, &script, fast_settings()).await;
    (dir, script, engine)
}

pub async fn accepted(engine: &hostwright::engine::Engine, body: &[u8]) -> String {
    match engine.intake(body, chrono::Utc::now()).await.unwrap() {
        IntakeResult::Accepted { job_id, .. } => job_id,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

/// Workers running on an engine until dropped or stopped.
pub struct Workers {
    pub shutdown: watch::Sender<bool>,
    pub hard: watch::Sender<bool>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub fn start_workers(engine: &Arc<Engine>, name: &str, n: usize) -> Workers {
    let (shutdown, srx) = watch::channel(false);
    let (hard, hrx) = watch::channel(false);
    let tasks = (0..n)
        .map(|i| {
            tokio::spawn(hostwright::engine::worker::run(
                engine.clone(),
                format!("{name}-{i}"),
                srx.clone(),
                hrx.clone(),
            ))
        })
        .collect();
    Workers {
        shutdown,
        hard,
        tasks,
    }
}

impl Workers {
    /// Graceful stop: no new jobs; running steps may finish within `grace`.
    pub async fn stop(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                let _ = self.hard.send(true);
                let _ = t.await;
            }
        }
    }
    /// A crash: the tasks vanish mid-whatever, leases left to expire.
    pub fn kill(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Waits until the job reaches a final state (or panics after `secs`).
pub async fn wait_final(engine: &Engine, job_id: &str, secs: u64) -> JobState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let j = engine.store.job(job_id).await.unwrap().expect("job exists");
        if j.summary.state.is_final() {
            return j.summary.state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id} still {} after {secs}s",
            j.summary.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A WWW contract with SSL and one extra FTP account.
pub fn www_contract(id: &str, revision: u32) -> serde_json::Value {
    serde_json::json!({
        "contract_id": id,
        "revision": revision,
        "requested_on": "2026-11-01",
        "customer": {
            "id": format!("CU-{id}"),
            "kind": "corporation",
            "name": "Example K.K.",
            "legal_capacity": "adult",
            "guardian_consent": false
        },
        "service": "www",
        "service_start": "2026-12-01",
        "status": {"state": "active"},
        "options": [
            {"item": "ssl_hosting", "quantity": 1, "effective": "2026-12-01", "quoted_initial": "15000"},
            {"item": "ftp_account_extra", "quantity": 1, "effective": "2026-12-01"}
        ],
        "domains": [
            {"name": format!("{}.example.jp", id.to_ascii_lowercase()), "registry": "jprs_attribute", "dns_operation": "monthly"}
        ],
        "external": {}
    })
}
