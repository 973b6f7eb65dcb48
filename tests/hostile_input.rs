//! Hostile and oversized input against a real `hostwright serve` (issue 11,
//! part 4): absurd list limits.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const TOKEN: &str = "test-ops-token";

/// A serve config on SQLite with scripted adapters; `intake_extra` is added
/// to `[intake]`.
fn write_config(dir: &Path, port: u16, intake_extra: &str) -> PathBuf {
    write_keys(dir, TOKEN);
    let cfg = format!(
        r#"
data_dir = "{data}"
playbooks = "{playbooks}"

[store]
url = "sqlite:jobs.db"

[api]
listen = "127.0.0.1:{port}"
ops_token_file = "ops-token"

[intake]
trusted_keys = "trusted-keys.toml"
{intake_extra}

[workers]
concurrency = 2
poll_interval_ms = 50

[provisioning]
web_ipv4 = "192.0.2.10"

[adapters.scripted]
"#,
        data = dir.join("data").display(),
        playbooks = repo().join("playbooks").display(),
    );
    let path = dir.join("hostwright.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

async fn start(dir: &Path, intake_extra: &str) -> (Serve, u16) {
    let port = free_port();
    let serve = Serve::start(&write_config(dir, port, intake_extra));
    wait_http(port, "/healthz").await;
    (serve, port)
}

async fn ops_get(port: u16, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn job_listings_are_capped_with_an_error_naming_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, port) = start(dir.path(), "").await;
    for bad in [
        "4294967295",
        "99999999999999999999",
        "0",
        "10001",
        "-1",
        "ten",
    ] {
        let r = ops_get(port, &format!("/v1/jobs?limit={bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("from 1 to 10000"),
            "{bad}: {v}"
        );
    }
    for good in ["1", "10000"] {
        assert_eq!(
            ops_get(port, &format!("/v1/jobs?limit={good}"))
                .await
                .status(),
            200
        );
    }
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(["jobs", "list", "--limit", "4294967295", "--url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(2));
    let err = String::from_utf8_lossy(&cli.stderr);
    assert!(err.contains("1..=10000"), "{err}");
}
