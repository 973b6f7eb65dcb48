//! Fleets of web hosts (issue #13) on the real stores, with scripted
//! stand-ins for each host's adapters: placement by each policy, capacity
//! refusals and a rerun once capacity is added, a host that is down or
//! draining gets no new contracts, a quota increase that no longer fits is
//! refused naming the host and the shortfall, and every contract's web
//! resources and A records are on its one host. Each test ends with a
//! census of what every host holds.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use hostwright::engine::Engine;
use hostwright::engine::fleet::{FleetConfig, HostState};
use hostwright::engine::scripted::Script;
use hostwright::engine::store::JobState;
use serde_json::json;
use tokio::net::TcpListener;

/// A host's health-check port: up while the listener lives.
async fn port() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap().to_string();
    (l, a)
}

/// `[fleet]` with `hosts`: (name, accounts, disk GB, health address).
fn fleet(policy: &str, hosts: &[(&str, u32, u64, &str)]) -> FleetConfig {
    let mut t = format!("policy = \"{policy}\"\nhealth_timeout_ms = 500\n");
    for (i, (name, accounts, gb, health)) in hosts.iter().enumerate() {
        t.push_str(&format!(
            "[[hosts]]\nname = \"{name}\"\nipv4 = \"198.51.100.{}\"\nipv6 = \"2001:db8::{}\"\n\
             capacity_accounts = {accounts}\ncapacity_disk_gb = {gb}\nhealth_check = \"{health}\"\n\
             webhost = {{}}\nftp = {{}}\n",
            i + 1,
            i + 1
        ));
    }
    let f: FleetConfig = toml::from_str(&t).unwrap();
    hostwright::engine::fleet::validate(&f).unwrap();
    f
}

async fn fleet_engine(url: &str, script: &Script, f: FleetConfig) -> std::sync::Arc<Engine> {
    let e = engine_with_fleet(url, script, fast_settings(), Some(f)).await;
    e.fleet.as_ref().unwrap().check_health().await;
    e
}

/// Submits a WWW contract and runs its job to its end.
async fn provision(engine: &std::sync::Arc<Engine>, keys: &Keys, c: &serde_json::Value) -> String {
    let job = accepted(engine, &sign(keys, c)).await;
    let w = start_workers(engine, "w", 2);
    wait_final(engine, &job, 30).await;
    w.stop(Duration::from_secs(2)).await;
    job
}

/// Per host: the contracts whose web resources the store records there,
/// read from the resources' adapters (`webhost@HOST` / `ftp@HOST`), after
/// checking that each contract's resources are all on its placement's host
/// and its zone's A records carry that host's address.
async fn census(engine: &Engine, contracts: &[&str]) -> BTreeMap<String, Vec<String>> {
    let fleet = engine.fleet.as_ref().unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in contracts {
        let placement = engine.store.placement(c).await.unwrap();
        let resources = engine.store.resources(c).await.unwrap();
        let web: Vec<_> = resources
            .iter()
            .filter(|r| r.adapter.starts_with("webhost@") || r.adapter.starts_with("ftp@"))
            .collect();
        let Some(p) = placement else {
            assert!(web.is_empty(), "{c}: web resources without a placement");
            continue;
        };
        let kinds: Vec<&str> = web.iter().map(|r| r.kind.as_str()).collect();
        for kind in ["webspace", "vhost", "ftp_account"] {
            assert!(kinds.contains(&kind), "{c}: no {kind} in {kinds:?}");
        }
        for r in &web {
            assert_eq!(
                r.adapter.split_once('@').unwrap().1,
                p.host,
                "{c}: {}/{} is not on its host",
                r.kind,
                r.key
            );
        }
        let host = fleet.host(&p.host).unwrap();
        let zone = resources.iter().find(|r| r.kind == "dns_zone").unwrap();
        let records = zone.spec["records"].as_array().unwrap();
        let a: Vec<&str> = records
            .iter()
            .filter(|r| r["type"] == "A" || r["rtype"] == "A")
            .map(|r| r["data"].as_str().unwrap())
            .collect();
        let aaaa = records
            .iter()
            .filter(|r| r["type"] == "AAAA" || r["rtype"] == "AAAA")
            .count();
        assert_eq!(a, vec![host.ipv4.to_string(); 2], "{c}: A records");
        assert_eq!(aaaa, 2, "{c}: AAAA records");
        out.entry(p.host).or_default().push(c.to_string());
    }
    out
}

fn hosts_of(census: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    census.iter().map(|(h, c)| (h.clone(), c.len())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn least_used_spreads_contracts_and_each_lives_on_one_host() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let (_l1, a1) = port().await;
        let (_l2, a2) = port().await;
        let script = Script::new();
        let f = fleet(
            "least_used",
            &[("web1", 10, 100, &a1), ("web2", 10, 100, &a2)],
        );
        let engine = fleet_engine(&url, &script, f).await;
        let keys = keys();
        let ids = ["FL-A", "FL-B", "FL-C", "FL-D"];
        for id in ids {
            let job = provision(&engine, &keys, &www_contract(id, 1)).await;
            let j = engine.store.job(&job).await.unwrap().unwrap();
            assert_eq!(j.summary.state, JobState::Succeeded, "{backend:?} {id}");
        }
        let census = census(&engine, &ids).await;
        assert_eq!(
            census,
            BTreeMap::from([
                ("web1".into(), vec!["FL-A".into(), "FL-C".into()]),
                ("web2".into(), vec!["FL-B".into(), "FL-D".into()]),
            ]),
            "{backend:?}"
        );
        // The stand-ins were called on the host each contract lives on.
        for call in script.calls() {
            if call.kind == "webspace" {
                let host = if ["fl-a", "fl-c"].contains(&call.key.as_str()) {
                    "web1"
                } else {
                    "web2"
                };
                assert_eq!(call.adapter, format!("webhost@{host}"), "{backend:?}");
            }
        }
        let views = engine
            .fleet
            .as_ref()
            .unwrap()
            .views(&*engine.store)
            .await
            .unwrap();
        for v in &views {
            assert_eq!(v.accounts, 2, "{backend:?} {}", v.name);
            assert_eq!(v.disk_committed_mb, 2 * 10 * 1024, "{backend:?} {}", v.name);
            assert_eq!(v.healthy, Some(true));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fill_in_order_fills_then_refuses_naming_the_group_and_a_rerun_places_after_capacity_grows()
{
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let (_l1, a1) = port().await;
        let (_l2, a2) = port().await;
        let script = Script::new();
        let small = fleet(
            "fill_in_order",
            &[("web1", 2, 100, &a1), ("web2", 1, 100, &a2)],
        );
        let engine = fleet_engine(&url, &script, small).await;
        let keys = keys();
        let ids = ["FF-A", "FF-B", "FF-C", "FF-D"];
        let mut jobs = Vec::new();
        for id in ids {
            jobs.push(provision(&engine, &keys, &www_contract(id, 1)).await);
        }
        let last = engine.store.job(&jobs[3]).await.unwrap().unwrap();
        assert_eq!(last.summary.state, JobState::Failed, "{backend:?}");
        let err = last.summary.error.clone().unwrap();
        assert!(
            err.contains("no web host of the group `web` has room for 10240 MB")
                && err.contains("web1 has 2/2 accounts")
                && err.contains("web2 has 1/1 accounts"),
            "{backend:?}: {err}"
        );
        assert!(
            !script.calls().iter().any(|c| c.key.starts_with("ff-d")),
            "{backend:?}: nothing of the unplaced contract was touched"
        );
        assert_eq!(
            hosts_of(&census(&engine, &ids).await),
            BTreeMap::from([("web1".into(), 2), ("web2".into(), 1)]),
            "{backend:?}"
        );
        // Capacity added (a config change and a restart): the rerun places it.
        drop(engine);
        let grown = fleet(
            "fill_in_order",
            &[("web1", 2, 100, &a1), ("web2", 2, 100, &a2)],
        );
        let engine = fleet_engine(&url, &script, grown).await;
        engine.store.rerun(&jobs[3], "test").await.unwrap();
        let w = start_workers(&engine, "w2", 2);
        assert_eq!(
            wait_final(&engine, &jobs[3], 30).await,
            JobState::Succeeded,
            "{backend:?}"
        );
        w.stop(Duration::from_secs(2)).await;
        assert_eq!(
            hosts_of(&census(&engine, &ids).await),
            BTreeMap::from([("web1".into(), 2), ("web2".into(), 2)]),
            "{backend:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_down_or_draining_gets_no_new_contracts() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let (l1, a1) = port().await;
        let (_l2, a2) = port().await;
        let script = Script::new();
        let f = fleet(
            "fill_in_order",
            &[("web1", 10, 100, &a1), ("web2", 10, 100, &a2)],
        );
        let engine = fleet_engine(&url, &script, f).await;
        let keys = keys();
        provision(&engine, &keys, &www_contract("HD-A", 1)).await;
        // web1 stops answering: the next health check marks it down.
        drop(l1);
        let fleet = engine.fleet.as_ref().unwrap();
        fleet.check_health().await;
        let views = fleet.views(&*engine.store).await.unwrap();
        assert_eq!(views[0].healthy, Some(false), "{backend:?}");
        assert!(views[0].last_error.as_deref().unwrap().contains(&a1));
        provision(&engine, &keys, &www_contract("HD-B", 1)).await;
        // web1 is back but draining: still nothing new on it.
        let _l1 = TcpListener::bind(&a1).await.unwrap();
        fleet.check_health().await;
        engine
            .store
            .set_host_state("web1", HostState::Draining, "token:ops")
            .await
            .unwrap();
        provision(&engine, &keys, &www_contract("HD-C", 1)).await;
        assert_eq!(
            census(&engine, &["HD-A", "HD-B", "HD-C"]).await,
            BTreeMap::from([
                ("web1".into(), vec!["HD-A".into()]),
                ("web2".into(), vec!["HD-B".into(), "HD-C".into()]),
            ]),
            "{backend:?}"
        );
        let views = fleet.views(&*engine.store).await.unwrap();
        assert_eq!(views[0].state, HostState::Draining);
        assert_eq!(views[0].healthy, Some(true));
        // Activated again, it takes the next one (fill in order).
        engine
            .store
            .set_host_state("web1", HostState::Active, "token:ops")
            .await
            .unwrap();
        provision(&engine, &keys, &www_contract("HD-D", 1)).await;
        assert_eq!(
            engine.store.placement("HD-D").await.unwrap().unwrap().host,
            "web1",
            "{backend:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_increase_that_no_longer_fits_fails_naming_the_host_and_shortfall() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let (_l1, a1) = port().await;
        let script = Script::new();
        let f = fleet("least_used", &[("web1", 10, 25, &a1)]);
        let engine = fleet_engine(&url, &script, f).await;
        let keys = keys();
        provision(&engine, &keys, &www_contract("QF-A", 1)).await;
        provision(&engine, &keys, &www_contract("QF-B", 1)).await;
        let calls_before = script.calls().len();
        // 6 GB more for QF-A: 16 GB beside QF-B's 10 GB is over web1's 25 GB.
        let mut bigger = www_contract("QF-A", 2);
        bigger["options"]
            .as_array_mut()
            .unwrap()
            .push(json!({"item": "www_disk_extra", "quantity": 6, "effective": "2026-12-01"}));
        let job = provision(&engine, &keys, &bigger).await;
        let j = engine.store.job(&job).await.unwrap().unwrap();
        assert_eq!(j.summary.state, JobState::Failed, "{backend:?}");
        let err = j.summary.error.unwrap();
        assert!(
            err.contains("web host `web1`") && err.contains("1024 MB short"),
            "{backend:?}: {err}"
        );
        assert_eq!(script.calls().len(), calls_before, "no partial change");
        let p = engine.store.placement("QF-A").await.unwrap().unwrap();
        assert_eq!(
            p.disk_mb,
            10 * 1024,
            "{backend:?}: the commitment is unchanged"
        );
        // web1 grows to 26 GB (a config change and a restart): 16 + 10 fits
        // exactly, and the rerun applies the revision.
        drop(engine);
        let grown = fleet("least_used", &[("web1", 10, 26, &a1)]);
        let engine = fleet_engine(&url, &script, grown).await;
        engine.store.rerun(&job, "test").await.unwrap();
        let w = start_workers(&engine, "w2", 2);
        assert_eq!(
            wait_final(&engine, &job, 30).await,
            JobState::Succeeded,
            "{backend:?}"
        );
        w.stop(Duration::from_secs(2)).await;
        let p = engine.store.placement("QF-A").await.unwrap().unwrap();
        assert_eq!(p.disk_mb, 16 * 1024, "{backend:?}");
        assert_eq!(
            hosts_of(&census(&engine, &["QF-A", "QF-B"]).await),
            BTreeMap::from([("web1".into(), 2)])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_placements_never_overfill_a_host() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let (_l1, a1) = port().await;
        let (_l2, a2) = port().await;
        let script = Script::new();
        let f = fleet(
            "fill_in_order",
            &[("web1", 3, 100, &a1), ("web2", 3, 100, &a2)],
        );
        let engine = fleet_engine(&url, &script, f).await;
        let keys = keys();
        let ids: Vec<String> = (0..8).map(|i| format!("CP-{i}")).collect();
        let mut jobs = Vec::new();
        for id in &ids {
            jobs.push(accepted(&engine, &sign(&keys, &www_contract(id, 1))).await);
        }
        let w = start_workers(&engine, "w", 8);
        let mut states = BTreeMap::new();
        for j in &jobs {
            *states
                .entry(wait_final(&engine, j, 60).await.as_str())
                .or_insert(0) += 1;
        }
        w.stop(Duration::from_secs(2)).await;
        assert_eq!(
            states,
            BTreeMap::from([("failed", 2), ("succeeded", 6)]),
            "{backend:?}"
        );
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(
            hosts_of(&census(&engine, &refs).await),
            BTreeMap::from([("web1".into(), 3), ("web2".into(), 3)]),
            "{backend:?}"
        );
    }
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A real `hostwright serve` with a fleet: `hosts list` shows each host's
/// state, health and what it holds; `hosts drain` / `activate` change the
/// state through the API, are audited with the credential's actor, and a
/// drained host takes no new contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_list_drain_and_activate_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let (_l1, a1) = port().await;
    let api_port = free_port();
    let sections = format!(
        r#"
[workers]
poll_interval_ms = 20

[adapters.scripted]
log = "calls.jsonl"

[fleet]
policy = "fill_in_order"
health_interval_seconds = 1

[[fleet.hosts]]
name = "web1"
ipv4 = "198.51.100.1"
capacity_accounts = 5
capacity_disk_gb = 100
health_check = "{a1}"
webhost = {{}}
ftp = {{}}

[[fleet.hosts]]
name = "web2"
ipv4 = "198.51.100.2"
capacity_accounts = 5
capacity_disk_gb = 100
health_check = "127.0.0.1:1"
webhost = {{}}
ftp = {{}}
"#
    );
    let config = write_scripted_config(dir.path(), &url, api_port, "ops-secret", &sections);
    let _serve = Serve::start(&config);
    wait_http(api_port, "/readyz").await;
    let base = format!("http://127.0.0.1:{api_port}");
    let token = dir.path().join("ops-token");
    let api = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--url".into(),
            base.clone(),
            "--token-file".into(),
            token.display().to_string(),
        ]);
        v
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&refs)
    };

    let (ok, out, err) = run(api(&["hosts", "list", "--json"]));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["policy"], "fill_in_order");
    assert_eq!(v["hosts"][0]["name"], "web1");
    assert_eq!(v["hosts"][0]["healthy"], true);
    assert_eq!(v["hosts"][1]["healthy"], false, "nothing listens on port 1");
    assert!(
        v["hosts"][1]["last_error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1")
    );

    let (ok, out, err) = run(api(&["hosts", "drain", "web1"]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "web1: draining");
    let (ok, _, err) = run(api(&["hosts", "drain", "web9"]));
    assert!(!ok);
    assert!(err.contains("no web host named `web9`"), "{err}");

    // web1 drains and web2 is down: a new contract has nowhere to go.
    let keys = keys();
    let body = sign(&keys, &www_contract("HL-A", 1));
    let envelope = dir.path().join("hl-a.json");
    std::fs::write(&envelope, &body).unwrap();
    let (ok, _, err) = run(api(&["submit", envelope.to_str().unwrap()]));
    assert!(ok, "{err}");
    let job = wait_job_state(&base, "HL-A", "failed").await;
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("web1 is draining; web2 is down"),
        "{job}"
    );

    let (ok, out, err) = run(api(&["hosts", "activate", "web1"]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "web1: active");
    let (ok, _, err) = run(api(&["jobs", "rerun", "--failed"]));
    assert!(ok, "{err}");
    wait_job_state(&base, "HL-A", "succeeded").await;

    let (ok, out, _) = run(api(&["hosts", "list"]));
    assert!(ok);
    let web1 = out.lines().find(|l| l.starts_with("web1")).unwrap();
    assert!(
        web1.contains("active") && web1.contains("1/5") && web1.contains("10240/102400"),
        "{out}"
    );

    // Moves over the CLI: refused, each naming why (move-refused, 409;
    // host-not-found, 404), audited.
    let (ok, _, err) = run(api(&["contracts", "move", "HL-A", "--to", "web1"]));
    assert!(
        !ok && err.contains("is on web host `web1` already"),
        "{err}"
    );
    assert!(err.contains("409"), "{err}");
    let (ok, _, err) = run(api(&["contracts", "move", "HL-A", "--to", "web2"]));
    assert!(!ok && err.contains("web2 is down"), "{err}");
    let (ok, _, err) = run(api(&["contracts", "move", "HL-A", "--to", "web9"]));
    assert!(!ok && err.contains("no web host named `web9`"), "{err}");

    let (ok, out, err) = run(api(&["audit", "--json"]));
    assert!(ok, "{err}");
    let audit: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<(String, String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().contains("/v1/hosts/"))
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap_or("").to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        actions.contains(&(
            "POST /v1/hosts/{name}/drain".into(),
            "host:web1".into(),
            "ok".into()
        )) && actions.contains(&(
            "POST /v1/hosts/{name}/activate".into(),
            "host:web1".into(),
            "ok".into()
        )) && actions.contains(&(
            "POST /v1/hosts/{name}/drain".into(),
            "host:web9".into(),
            "refused 404".into()
        )),
        "{actions:?}"
    );
    let moves = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "POST /v1/contracts/{id}/move" && e["target"] == "HL-A")
        .count();
    assert_eq!(moves, 3, "{audit}");
}

/// Polls the API until the newest job of `contract` is in `state`.
async fn wait_job_state(base: &str, contract: &str, state: &str) -> serde_json::Value {
    let http = hostwright_tls::client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = http
            .get(format!("{base}/v1/jobs?contract={contract}"))
            .bearer_auth("ops-secret")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(j) = v["items"].as_array().and_then(|a| a.first())
            && j["state"] == state
        {
            return j.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{contract} never {state}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A drift scan compares each contract on the host it is placed on: the
/// zone of a contract on web2 carries web2's address, and its web
/// resources are read through web2's adapters, so a fleet in step with its
/// contracts shows no drift (deriving on the first host, as intake judges,
/// would find web2's zone changed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_compares_each_contract_on_its_own_host() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let (_l1, a1) = port().await;
        let (_l2, a2) = port().await;
        let script = Script::new();
        let f = fleet(
            "least_used",
            &[("web1", 10, 100, &a1), ("web2", 10, 100, &a2)],
        );
        let engine = fleet_engine(&url, &script, f).await;
        let keys = keys();
        for id in ["DR-A", "DR-B"] {
            provision(&engine, &keys, &www_contract(id, 1)).await;
        }
        assert_eq!(
            hosts_of(&census(&engine, &["DR-A", "DR-B"]).await),
            BTreeMap::from([("web1".into(), 1), ("web2".into(), 1)])
        );
        let report = engine.drift(&[]).await.unwrap();
        assert!(report.errors.is_empty(), "{backend:?}: {:?}", report.errors);
        assert!(
            report.findings.is_empty(),
            "{backend:?}: a fleet in step has no drift: {:?}",
            report.findings
        );
        assert_eq!(report.contracts, 2, "{backend:?}");
    }
}

/// Moving a contract to another host (issue #13): its web resources are
/// taken over on the new host, then its zone's A records switch to that
/// host, then each is retired from the old host, in that order, as one
/// `move` job. A move cut short after the switch (the old host refuses a
/// removal) leaves the contract whole on the new host, and a rerun
/// finishes it without doing any step twice. A second move while one is
/// open, and a move to where the contract is, are refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_takes_over_switches_the_zone_then_retires_and_a_rerun_finishes_it() {
    use hostwright::engine::moves::MoveError;
    use hostwright::engine::scripted::{Behavior, Rule};
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let (_l1, a1) = port().await;
        let (_l2, a2) = port().await;
        let (_l3, a3) = port().await;
        let script = Script::new();
        let f = fleet(
            "fill_in_order",
            &[
                ("web1", 10, 100, &a1),
                ("web2", 10, 100, &a2),
                ("web3", 10, 100, &a3),
            ],
        );
        let engine = fleet_engine(&url, &script, f).await;
        let keys = keys();
        provision(&engine, &keys, &www_contract("MV-A", 1)).await;
        assert_eq!(
            hosts_of(&census(&engine, &["MV-A"]).await),
            BTreeMap::from([("web1".into(), 1)]),
            "{backend:?}"
        );
        let before = script.calls().len();

        assert!(
            matches!(
                engine.queue_move("MV-A", "web1", "token:ops").await,
                Err(MoveError::AlreadyThere { .. })
            ),
            "{backend:?}"
        );
        // The old host refuses the vhost's removal once: the move fails
        // after the switch.
        script.push(Rule {
            kind: Some("vhost".into()),
            key: None,
            op: Some("remove".into()),
            behavior: Behavior::Permanent,
            times: Some(1),
        });
        let m = engine
            .queue_move("MV-A", "web2", "token:ops")
            .await
            .unwrap();
        assert_eq!((m.from.as_str(), m.to.as_str()), ("web1", "web2"));
        let open = engine.queue_move("MV-A", "web3", "token:ops").await;
        assert!(
            matches!(&open, Err(MoveError::AlreadyOpen { job, .. }) if *job == m.job_id),
            "{backend:?}: {open:?}"
        );

        let w = start_workers(&engine, "w", 2);
        wait_final(&engine, &m.job_id, 30).await;
        let j = engine.store.job(&m.job_id).await.unwrap().unwrap();
        assert_eq!(j.summary.state, JobState::Failed, "{backend:?}");
        assert!(
            j.summary
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("vhost"),
            "{backend:?}: {:?}",
            j.summary.error
        );
        // Already whole on web2: placement, resources and A records.
        assert_eq!(
            hosts_of(&census(&engine, &["MV-A"]).await),
            BTreeMap::from([("web2".into(), 1)]),
            "{backend:?}"
        );
        engine.store.rerun(&m.job_id, "token:ops").await.unwrap();
        engine.wake_workers();
        wait_final(&engine, &m.job_id, 30).await;
        w.stop(Duration::from_secs(2)).await;
        let j = engine.store.job(&m.job_id).await.unwrap().unwrap();
        assert_eq!(j.summary.state, JobState::Succeeded, "{backend:?}");
        assert_eq!(j.summary.move_to.as_deref(), Some("web2"));
        let actions: Vec<(String, String)> = j
            .steps
            .iter()
            .map(|s| {
                (
                    s.step.action.as_str().to_string(),
                    s.step.resource.kind.clone(),
                )
            })
            .collect();
        for kind in ["webspace", "vhost", "ftp_account"] {
            assert!(
                actions.contains(&("relocate".into(), kind.into())),
                "{actions:?}"
            );
            assert!(
                actions.contains(&("retire".into(), kind.into())),
                "{actions:?}"
            );
        }
        assert!(
            actions.contains(&("update".into(), "dns_zone".into())),
            "{actions:?}"
        );
        assert!(
            j.ops
                .iter()
                .any(|o| o.action == "move" && o.actor == "token:ops")
        );

        // Each step ran once (the refused removal twice), in the order of a
        // move: every take-over on web2, then the zone, then every removal
        // from web1.
        let calls: Vec<_> = script.calls().into_iter().skip(before).collect();
        let seq: Vec<String> = calls
            .iter()
            .filter(|c| c.job_id == m.job_id)
            .map(|c| format!("{} {} {}", c.op, c.adapter, c.kind))
            .collect();
        let count = |s: &str| seq.iter().filter(|x| *x == s).count();
        // One web space, one vhost, three FTP accounts (two of 別表② ※1
        // and one additional); the refused vhost removal ran twice.
        for (base, kind, n, removals) in [
            ("webhost", "webspace", 1, 1),
            ("webhost", "vhost", 1, 2),
            ("ftp", "ftp_account", 3, 3),
        ] {
            assert_eq!(count(&format!("ensure {base}@web2 {kind}")), n, "{seq:?}");
            assert_eq!(
                count(&format!("remove {base}@web1 {kind}")),
                removals,
                "{seq:?}"
            );
        }
        let zone = seq.iter().position(|s| s.ends_with("dns_zone")).unwrap();
        assert_eq!(count("ensure dns dns_zone"), 1, "{seq:?}");
        assert!(
            seq[..zone]
                .iter()
                .all(|s| s.starts_with("ensure") && s.contains("@web2")),
            "{seq:?}"
        );
        assert!(
            seq[zone + 1..]
                .iter()
                .all(|s| s.starts_with("remove") && s.contains("@web1")),
            "{seq:?}"
        );
        let views = engine
            .fleet
            .as_ref()
            .unwrap()
            .views(&*engine.store)
            .await
            .unwrap();
        let held: BTreeMap<String, u64> =
            views.iter().map(|v| (v.name.clone(), v.accounts)).collect();
        assert_eq!(
            held,
            BTreeMap::from([("web1".into(), 0), ("web2".into(), 1), ("web3".into(), 0)]),
            "{backend:?}"
        );
    }
}

/// A single-host installation that becomes a fleet (its host listed
/// first): its contracts' resources, recorded under the plain adapter
/// names, are the first host's. The next revision relocates nothing (a
/// relocation onto the same host would copy a home onto itself); a move
/// to the second host takes them over from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adopted_resources_stay_put_and_move_from_the_first_host() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = Script::new();
        let keys = keys();
        {
            let single = engine(&url, &script, fast_settings()).await;
            provision(&single, &keys, &www_contract("AD-A", 1)).await;
            let rec = single.store.resources("AD-A").await.unwrap();
            assert!(rec.iter().any(|r| r.adapter == "webhost"), "{rec:?}");
        }
        let (_l1, a1) = port().await;
        let (_l2, a2) = port().await;
        let f = fleet(
            "least_used",
            &[("web1", 10, 100, &a1), ("web2", 10, 100, &a2)],
        );
        let engine = fleet_engine(&url, &script, f).await;
        let job = provision(&engine, &keys, &www_contract("AD-A", 2)).await;
        let j = engine.store.job(&job).await.unwrap().unwrap();
        assert_eq!(j.summary.state, JobState::Succeeded, "{backend:?}");
        assert!(
            j.steps
                .iter()
                .all(|s| !s.step.action.removes() && s.step.action.as_str() != "relocate"),
            "{backend:?}: {:?}",
            j.steps.iter().map(|s| &s.step.id).collect::<Vec<_>>()
        );
        assert_eq!(
            engine.store.placement("AD-A").await.unwrap().unwrap().host,
            "web1"
        );

        let m = engine
            .queue_move("AD-A", "web2", "token:ops")
            .await
            .unwrap();
        let w = start_workers(&engine, "w", 2);
        assert_eq!(
            wait_final(&engine, &m.job_id, 30).await,
            JobState::Succeeded
        );
        w.stop(Duration::from_secs(2)).await;
        let j = engine.store.job(&m.job_id).await.unwrap().unwrap();
        let from: Vec<&str> = j
            .steps
            .iter()
            .filter_map(|s| s.step.from.as_deref())
            .collect();
        assert!(
            !from.is_empty() && from.iter().all(|f| f.ends_with("@web1")),
            "{from:?}"
        );
        assert_eq!(
            hosts_of(&census(&engine, &["AD-A"]).await),
            BTreeMap::from([("web2".into(), 1)]),
            "{backend:?}"
        );
    }
}

/// `hosts drain NAME --move-all` (issue #13): every contract on the drained
/// host is moved to the host the policy chooses among the others, counting
/// the moves it queued before; what no host has room for is listed with
/// the reason and stays, and a second drain once room appears moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_move_all_moves_what_fits_and_names_what_does_not() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let (_l1, a1) = port().await;
        let (_l2, a2) = port().await;
        let script = Script::new();
        let f = fleet(
            "fill_in_order",
            &[("web1", 10, 100, &a1), ("web2", 2, 100, &a2)],
        );
        let engine = fleet_engine(&url, &script, f).await;
        let keys = keys();
        let ids = ["DR-A", "DR-B", "DR-C"];
        for id in ids {
            provision(&engine, &keys, &www_contract(id, 1)).await;
        }
        assert_eq!(
            hosts_of(&census(&engine, &ids).await),
            BTreeMap::from([("web1".into(), 3)])
        );
        engine
            .store
            .set_host_state("web1", HostState::Draining, "token:ops")
            .await
            .unwrap();
        let ev = engine.evacuate("web1", "token:ops").await.unwrap();
        let moved: Vec<(&str, &str)> = ev
            .moved
            .iter()
            .map(|m| (m.contract_id.as_str(), m.to.as_str()))
            .collect();
        assert_eq!(
            moved,
            vec![("DR-A", "web2"), ("DR-B", "web2")],
            "{backend:?}"
        );
        assert_eq!(ev.not_moved.len(), 1, "{backend:?}");
        assert_eq!(ev.not_moved[0].contract_id, "DR-C");
        assert!(
            ev.not_moved[0].reason.contains("web2 has 2/2 accounts")
                && !ev.not_moved[0].reason.contains("web1 is"),
            "{}",
            ev.not_moved[0].reason
        );
        let w = start_workers(&engine, "w", 2);
        for m in &ev.moved {
            assert_eq!(
                wait_final(&engine, &m.job_id, 30).await,
                JobState::Succeeded,
                "{backend:?}"
            );
        }
        w.stop(Duration::from_secs(2)).await;
        assert_eq!(
            hosts_of(&census(&engine, &ids).await),
            BTreeMap::from([("web1".into(), 1), ("web2".into(), 2)]),
            "{backend:?}"
        );
        // Nothing more fits: a second drain moves nothing and says why again.
        let again = engine.evacuate("web1", "token:ops").await.unwrap();
        assert!(again.moved.is_empty() && again.not_moved.len() == 1);
    }
}
