//! `hostwright serve` terminating TLS itself, and the ops CLI reaching it
//! over HTTPS with `--ca-file`: a certificate from another CA is refused with
//! a clear error, and a renewed certificate is served without a restart.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hostwright_tls::testca::TestCa;

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    write_keys(dir, "test-ops-token");
    let cfg = format!(
        r#"
data_dir = "data"
playbooks = "{playbooks}"

[api]
listen = "127.0.0.1:{port}"
ops_token_file = "ops-token"

[api.tls]
cert_file = "api.crt"
key_file = "api.key"

[intake]
trusted_keys = "trusted-keys.toml"

[provisioning]
web_ipv4 = "192.0.2.10"

[adapters.scripted]
log = "calls.jsonl"
"#,
        playbooks = repo().join("playbooks").display(),
    );
    let path = dir.join("hostwright.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn jobs_list(dir: &Path, port: u16, ca: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostwright"));
    cmd.args(["jobs", "list", "--json", "--url"])
        .arg(format!("https://localhost:{port}"))
        .arg("--token-file")
        .arg(dir.join("ops-token"))
        .env_remove("HOSTWRIGHT_CA_FILE");
    if let Some(ca) = ca {
        cmd.arg("--ca-file").arg(ca);
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn serve_over_tls_with_the_cli_and_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("hostwright test CA");
    let ca_file = ca.write_ca(dir.path(), "ca.pem");
    ca.write_server(dir.path(), "api");
    let port = free_port();
    let config = write_config(dir.path(), port);
    let _serve = Serve::start(&config);

    let client = TestCa::client(&ca_file);
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "serve never answered over TLS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = jobs_list(dir.path(), port, Some(&ca_file));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["items"], serde_json::json!([]));

    // Plain HTTP to the TLS port gets nothing useful.
    assert!(
        hostwright_tls::client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    // Another CA: refused, and the error says why.
    let other = TestCa::new("renewal CA");
    let other_file = other.write_ca(dir.path(), "other.pem");
    let out = jobs_list(dir.path(), port, Some(&other_file));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not trusted") && err.contains("--ca-file"),
        "{err}"
    );

    // Renewal: new files in place, no restart, the next connection has them.
    let (cert, key) = other.server_pem();
    std::fs::write(dir.path().join("api.key"), key).unwrap();
    std::fs::write(dir.path().join("api.crt"), cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if jobs_list(dir.path(), port, Some(&other_file))
            .status
            .success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!jobs_list(dir.path(), port, Some(&ca_file)).status.success());
}
