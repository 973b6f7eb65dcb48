//! Drift against the real backends (issue #14): a `hostwright serve`
//! provisions a Pack contract on the loopback backends (web host over SSH
//! with nginx and pure-ftpd, BIND, the Secure MX mock); then, for each kind
//! of resource, the test makes drift by hand with the backend's own tool,
//! and `hostwright drift` must report exactly that finding, `drift --repair`
//! must restore it, and a second `drift` must report nothing. An account
//! carrying hostwright's marker made by hand is reported as an orphan and
//! left alone until it is deleted by name.
//!
//! Run under the shared backend lock:
//! `flock /tmp/hw-backends.lock cargo test -p hostwright --test drift`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use hostwright_adapter::testenv::{Sections, adapters_toml, var};
use serde_json::Value;

const TOKEN: &str = "drift-token";

fn write_config(dir: &Path, port: u16) -> PathBuf {
    write_keys(dir, TOKEN);
    let cfg = format!(
        r#"
data_dir = "data"
playbooks = "{playbooks}"

[store]
url = "sqlite:jobs.db"

[api]
listen = "127.0.0.1:{port}"
ops_token_file = "ops-token"

[intake]
trusted_keys = "trusted-keys.toml"

[workers]
concurrency = 4
lease_seconds = 30
poll_interval_ms = 50
step_timeout_seconds = 120
shutdown_grace_seconds = 5

[provisioning]
web_ipv4 = "192.0.2.80"
mx = ["10 mx1.securemx.example."]
spf = "v=spf1 include:spf.securemx.example ~all"
ttl = 300

{adapters}
"#,
        playbooks = repo().join("playbooks").display(),
        adapters = adapters_toml(&Sections {
            uids: (63000, 63999),
            ftp_and_dns: true,
            securemx: true,
        })
        .unwrap(),
    );
    let path = dir.join("hostwright.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// The example Pack contract (web, 2 FTP logins, zone, tenant, mailboxes)
/// renamed to this run's id and domain.
fn contract(id: &str, domain: &str) -> Value {
    contract_file("pack-dns.json", id, domain)
}

fn contract_file(file: &str, id: &str, domain: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("examples/contracts").join(file)).unwrap();
    let text = text
        .replace("C-3001", id)
        .replace("CU-0003", &format!("CU-{id}"))
        .replace("tanaka-clinic.com", domain);
    serde_json::from_str(&text).unwrap()
}

/// Runs a command; panics with its output when it fails.
fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `hostwright drift ARGS --json`: its exit code and JSON.
fn drift(config: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .arg("drift")
        .args(args)
        .args(["--json", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .expect("hostwright drift runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("drift printed no JSON ({e}): {text}"));
    (out.status.code().unwrap_or(-1), v)
}

/// The findings of a drift of `id` as `kind key state [fields]`.
fn findings(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let fields: Vec<&str> = f["differences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["field"].as_str().unwrap())
                .collect();
            format!(
                "{} {} {} [{}]",
                f["kind"].as_str().unwrap(),
                f["key"].as_str().unwrap(),
                f["state"].as_str().unwrap(),
                fields.join(",")
            )
        })
        .collect()
}

/// Drift of `id` reports exactly `want`; `--repair` fixes it; a second
/// drift reports nothing.
/// Returns the repair as `drift --repair` reported it.
fn expect_then_repair(config: &Path, id: &str, want: &str) -> Value {
    let (code, v) = drift(config, &[id]);
    assert_eq!(findings(&v), vec![want.to_string()], "{v:#}");
    assert_eq!(code, 2, "drift found exits 2");
    let f = &v["findings"][0];
    assert_eq!(f["contract_id"], id);
    assert!(!f["host"].as_str().unwrap().is_empty());
    assert!(
        f["says"]
            .as_str()
            .unwrap()
            .contains(f["key"].as_str().unwrap())
    );

    let (code, r) = drift(config, &[id, "--repair"]);
    assert_eq!(code, 0, "{r:#}");
    let ran = r["repair"]["ran"].as_array().unwrap();
    assert_eq!(ran.len(), 1, "{r:#}");
    assert_eq!(ran[0]["state"], "succeeded", "{r:#}");
    assert!(
        ran[0]["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("local:"),
        "{r:#}"
    );

    let repair = ran[0].clone();
    let (code, v) = drift(config, &[id]);
    assert_eq!(findings(&v), Vec::<String>::new(), "{v:#}");
    assert_eq!(code, 0, "{v:#}");
    repair
}

fn nginx_reload() {
    sh(Command::new("nginx").args(["-c", &var("HW_WEB_NGINX_CONF"), "-s", "reload"]));
}

fn http(host: &str) -> String {
    sh(Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "-w",
            "%{http_code}",
            "-H",
        ])
        .arg(format!("Host: {host}"))
        .arg(format!("http://127.0.0.1:{}/", var("HW_WEB_HTTP_PORT"))))
}

async fn wait_job(client: &reqwest::Client, base: &str, job: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let d = job_detail(client, base, TOKEN, job).await;
        match d["summary"]["state"].as_str() {
            Some("succeeded") => return,
            Some("failed") | Some("cancelled") => panic!("job {job} ended badly: {d:#}"),
            _ => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "job {job}: {d:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_of_each_kind_is_found_repaired_and_gone() {
    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let id = format!("C-DR{}", tag.to_uppercase());
    let user = id.to_ascii_lowercase();
    let domain = format!("dr-{tag}.example");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let serve = Serve::start(&config);
    wait_http(port, "/readyz").await;
    let base = format!("http://127.0.0.1:{port}");
    let client = hostwright_tls::client();
    let resp = client
        .post(format!("{base}/v1/contracts"))
        .body(sign(&keys(), &contract(&id, &domain)))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    wait_job(&client, &base, body["job_id"].as_str().unwrap()).await;
    // The scans and repairs below run from the config, as an operator's
    // `hostwright drift` does, beside the running serve.

    // serve answers GET /v1/drift (read scope) with a full scan, and
    // exports it as metrics.
    let resp = client.get(format!("{base}/v1/drift")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client
        .get(format!("{base}/v1/drift"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let served: Value = resp.json().await.unwrap();
    assert_eq!(served["full"], true, "{served:#}");
    assert_eq!(findings(&served), Vec::<String>::new(), "{served:#}");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"hostwright_drift_resources{kind="vhost",state="in_sync"} 1"#),
        "{metrics}"
    );

    // Freshly provisioned: nothing drifted.
    let (code, v) = drift(&config, &[&id]);
    assert_eq!(findings(&v), Vec::<String>::new(), "{v:#}");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(
        v["resources"], 7,
        "web space, vhost, 2 FTP, zone, tenant, mailboxes: {v:#}"
    );

    let root = var("HW_WEB_ROOT");
    let site = format!("{root}/sites/{domain}.conf");

    // 1. The vhost file deleted and nginx reloaded.
    std::fs::remove_file(&site).unwrap();
    nginx_reload();
    // `plan` of an unchanged next revision: nothing against the recorded
    // state; the missing vhost created against the real backends.
    let mut next = contract(&id, &domain);
    next["revision"] = 2.into();
    let signed = dir.path().join("rev2.json");
    std::fs::write(&signed, sign(&keys(), &next)).unwrap();
    let plan = |observe: bool| -> Vec<String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostwright"));
        cmd.arg("plan")
            .arg(&signed)
            .args(["--json", "--config"])
            .arg(&config);
        if observe {
            cmd.arg("--observe");
        }
        let answer: Value = serde_json::from_str(&sh(&mut cmd)).unwrap();
        assert!(answer["refused"].is_null(), "{answer}");
        answer["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(plan(false), Vec::<String>::new());
    assert_eq!(plan(true), vec![format!("create:vhost:{domain}")]);
    expect_then_repair(&config, &id, &format!("vhost {domain} missing []"));
    assert_eq!(
        plan(true),
        Vec::<String>::new(),
        "repaired: the backends match"
    );
    assert_eq!(http(&domain), "200", "the site is served again");

    // 2. The vhost file edited by hand (its root changed) and reloaded.
    let conf = std::fs::read_to_string(&site).unwrap();
    let edited = conf.replace("/public_html", "/elsewhere");
    assert_ne!(conf, edited);
    std::fs::write(&site, edited).unwrap();
    nginx_reload();
    expect_then_repair(&config, &id, &format!("vhost {domain} changed [content]"));
    assert_eq!(std::fs::read_to_string(&site).unwrap(), conf);

    // 3. The home's mode changed on the web host.
    let home = format!("{root}/home/{user}");
    sh(Command::new("chmod").args(["0755", &home]));
    expect_then_repair(
        &config,
        &id,
        &format!("webspace {user} changed [home_mode]"),
    );
    let mode = sh(Command::new("stat").args(["-c", "%a", &home]));
    assert_eq!(mode.trim(), "711");

    // 4. An FTP login deleted with pure-pw.
    let login = format!("{user}_2");
    sh(Command::new("pure-pw").args([
        "userdel",
        &login,
        "-f",
        &var("HW_FTP_PASSWD"),
        "-F",
        &var("HW_FTP_PDB"),
        "-m",
    ]));
    let repair = expect_then_repair(&config, &id, &format!("ftp_account {login} missing []"));
    let passwd = std::fs::read_to_string(var("HW_FTP_PASSWD")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with(&format!("{login}:"))));
    // Its new password is kept for ops to hand out once, and logs in.
    let name = format!("ftp_account/{login}/password");
    assert_eq!(
        repair["facts"]["new_secrets"],
        serde_json::json!(["password"]),
        "{repair:#}"
    );
    let rid = repair["id"].as_str().unwrap();
    let take = || {
        client
            .post(format!("{base}/v1/jobs/{rid}/secrets"))
            .bearer_auth(TOKEN)
            .send()
    };
    let secrets: Value = take().await.unwrap().json().await.unwrap();
    let password = secrets[&name]
        .as_str()
        .unwrap_or_else(|| panic!("{secrets:#}"));
    let ls = Command::new("curl")
        .args(["-sS", "-m", "10", "--list-only", "-u"])
        .arg(format!("{login}:{password}"))
        .arg(format!("ftp://127.0.0.1:{}/", var("HW_FTP_PORT")))
        .output()
        .unwrap();
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let again: Value = take().await.unwrap().json().await.unwrap();
    assert!(again.get(&name).is_none(), "handed out once: {again:#}");

    // 5. A record changed with nsupdate and the TSIG key.
    let server = var("HW_DNS_SERVER");
    let (addr, dns_port) = server.rsplit_once(':').unwrap();
    let script = format!(
        "server {addr} {dns_port}\nzone {domain}\nupdate delete {domain}. A\n\
         update add {domain}. 300 A 192.0.2.99\nsend\n"
    );
    let mut ns = Command::new("nsupdate")
        .args(["-k", &var("HW_DNS_TSIG_FILE")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(ns.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    assert!(ns.wait().unwrap().success(), "nsupdate");
    expect_then_repair(&config, &id, &format!("dns_zone {domain} changed [@ A]"));
    let a = sh(Command::new("dig")
        .args(["+short", "+norec", "-p", dns_port])
        .arg(format!("@{addr}"))
        .args([&domain, "A"]));
    assert_eq!(a.trim(), "192.0.2.80");

    // 6. A mailbox deleted through the Secure MX API.
    let key = std::fs::read_to_string(var("HW_SECUREMX_API_KEY_FILE")).unwrap();
    let resp = client
        .delete(format!(
            "{}/v1/tenants/{id}/mailboxes/reception@{domain}",
            var("HW_SECUREMX_URL")
        ))
        .bearer_auth(key.trim())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    expect_then_repair(
        &config,
        &id,
        &format!("mx_mailboxes {id} changed [mailboxes]"),
    );

    // 7. An account with hostwright's marker made by hand: an orphan,
    //    reported by a full scan, left alone by --repair, deleted only
    //    when named.
    let orphan = format!("orph{tag}");
    let orphan_home = format!("{root}/home/{orphan}");
    sh(Command::new("useradd")
        .args(["-M", "-d", &orphan_home, "-s", "/usr/sbin/nologin", "-c"])
        .arg(format!("hostwright C-ORPH{}", tag.to_uppercase()))
        .arg(&orphan));
    let (code, v) = drift(&config, &[]);
    let orphans: Vec<&Value> = v["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["key"] == orphan.as_str())
        .collect();
    assert_eq!(orphans.len(), 1, "{v:#}");
    assert_eq!(orphans[0]["kind"], "webspace");
    assert_eq!(
        orphans[0]["marker"],
        format!("C-ORPH{}", tag.to_uppercase())
    );
    assert_eq!(code, 2);
    assert_eq!(findings(&v), Vec::<String>::new(), "{v:#}");
    let (_, r) = drift(&config, &["--repair"]);
    assert_eq!(r["repair"]["ran"].as_array().unwrap().len(), 0, "{r:#}");
    let getent = |u: &str| {
        Command::new("getent")
            .args(["passwd", u])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(getent(&orphan), "the orphan is left alone");
    // The contract's own account is no orphan, and cannot be deleted as one.
    let out = Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(["drift", "--delete-orphan", "webspace", &user, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(getent(&user));
    let out = Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(["drift", "--delete-orphan", "webspace", &orphan, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let deleted = out.status.success();
    if !deleted {
        let _ = Command::new("userdel").arg(&orphan).status();
    }
    assert!(
        deleted,
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!getent(&orphan), "deleted when named");

    // Who asked is in the audit log.
    let out = sh(Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(["audit", "--json", "--url", &base, "--token-file"])
        .arg(dir.path().join("ops-token")));
    assert!(out.contains("drift repair"), "{out}");
    assert!(out.contains("drift delete-orphan"), "{out}");

    // The contract ends: its resources go, so no run leaves orphans behind.
    let resp = client
        .post(format!("{base}/v1/contracts"))
        .body(sign(
            &keys(),
            &contract_file("pack-dns-terminate.json", &id, &domain),
        ))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    wait_job(&client, &base, body["job_id"].as_str().unwrap()).await;
    let (code, v) = drift(&config, &[&id]);
    assert_eq!((code, v["resources"].as_u64()), (0, Some(0)), "{v:#}");
    drop(serve);
}

/// A certificate within the renewal window is drift of its vhost, and the
/// repair renews it. (The adapter knows its certificates by the `.meta`
/// file it writes beside each; here that file is set to a near expiry, as
/// a certificate issued 89 days ago would have it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_near_its_expiry_is_drift_and_repair_renews_it() {
    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let id = format!("C-DT{}", tag.to_uppercase());
    let domain = format!("dt{tag}.co.jp");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let serve = Serve::start(&config);
    wait_http(port, "/readyz").await;
    let base = format!("http://127.0.0.1:{port}");
    let client = hostwright_tls::client();
    let text = std::fs::read_to_string(repo().join("examples/contracts/www-ssl.json")).unwrap();
    let text = text
        .replace("C-1001", &id)
        .replace("CU-0001", &format!("CU-{id}"))
        .replace("sakura-trading.co.jp", &domain);
    let mut c: Value = serde_json::from_str(&text).unwrap();
    let submit = |c: Value| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let resp = client
                .post(format!("{base}/v1/contracts"))
                .body(sign(&keys(), &c))
                .send()
                .await
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            let job = body["job_id"].as_str().unwrap_or_else(|| panic!("{body}"));
            wait_job(&client, &base, job).await;
        }
    };
    submit(c.clone()).await;
    let (code, v) = drift(&config, &[&id]);
    assert_eq!((code, findings(&v)), (0, vec![]), "{v:#}");

    let meta_file = format!("{}/tls/{domain}.meta", var("HW_WEB_ROOT"));
    let cert_file = format!("{}/tls/{domain}.crt", var("HW_WEB_ROOT"));
    let meta = std::fs::read_to_string(&meta_file).unwrap();
    let cert = std::fs::read_to_string(&cert_file).unwrap();
    let soon = chrono::Utc::now().timestamp() + 86_400;
    let near: String = meta
        .lines()
        .map(|l| {
            if l.starts_with("not_after=") {
                format!("not_after={soon}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&meta_file, near).unwrap();
    expect_then_repair(
        &config,
        &id,
        &format!("vhost {domain} changed [certificate]"),
    );
    assert_ne!(
        std::fs::read_to_string(&cert_file).unwrap(),
        cert,
        "renewed"
    );

    // The contract ends; nothing is left behind.
    c["revision"] = 2.into();
    c["status"] = serde_json::json!({
        "state": "terminated", "effective": "2026-12-31", "notified_on": "2026-11-20"
    });
    c["requested_on"] = "2026-11-20".into();
    submit(c).await;
    drop(serve);
}
