//! `hostwright serve` as a real child process, for the tests that kill it or
//! drive it over HTTP like the contract system and ops do.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `hostwright serve` child that is killed when the test ends, pass or
/// fail, so a failing run leaves no stray servers behind.
pub struct Serve(Child);

impl Serve {
    pub fn start(config: &Path) -> Serve {
        Serve(
            Command::new(env!("CARGO_BIN_EXE_hostwright"))
                .args(["serve", "--config"])
                .arg(config)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("hostwright serve starts"),
        )
    }

    /// Like [`Serve::start`], with the log (stderr) written to `log` and
    /// `RUST_LOG` set to `rust_log`.
    pub fn start_logging(config: &Path, log: &Path, rust_log: &str) -> Serve {
        Serve(
            Command::new(env!("CARGO_BIN_EXE_hostwright"))
                .args(["serve", "--config"])
                .arg(config)
                .env("RUST_LOG", rust_log)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log).expect("log file"))
                .spawn()
                .expect("hostwright serve starts"),
        )
    }

    /// SIGKILL, like a crashed machine: no grace, no cleanup.
    pub fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the server on `port` answers `path` (`/healthz`, `/readyz`).
pub async fn wait_http(port: u16, path: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = hostwright_tls::client()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve on port {port} never answered {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /v1/jobs/{job}` of the server at `base` (`http://127.0.0.1:PORT`)
/// with the ops `token`: the job's detail as JSON.
pub async fn job_detail(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    job: &str,
) -> serde_json::Value {
    client
        .get(format!("{base}/v1/jobs/{job}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Writes the trusted keys of the test signing key and an ops token into
/// `dir`, for a config that names `trusted-keys.toml` and `ops-token`.
pub fn write_keys(dir: &Path, ops_token: &str) {
    std::fs::write(
        dir.join("trusted-keys.toml"),
        super::keys().trusted.to_toml(),
    )
    .unwrap();
    std::fs::write(dir.join("ops-token"), format!("{ops_token}\n")).unwrap();
}

/// Writes `dir/hostwright.toml` for a `hostwright serve` with scripted
/// stand-in adapters on `store_url`, listening on `port`, with the test keys
/// and `ops_token` (see [`write_keys`]). `sections` is TOML added after the
/// fixed part: `[intake]` keys first (it ends inside `[intake]`), then
/// `[workers]` and `[adapters.scripted]` settings as the test needs.
pub fn write_scripted_config(
    dir: &Path,
    store_url: &str,
    port: u16,
    ops_token: &str,
    sections: &str,
) -> std::path::PathBuf {
    write_keys(dir, ops_token);
    let cfg = format!(
        r#"
data_dir = "{data}"
playbooks = "{playbooks}"

[provisioning]
web_ipv4 = "192.0.2.10"

[store]
url = "{store_url}"

[api]
listen = "127.0.0.1:{port}"
ops_token_file = "ops-token"

[intake]
trusted_keys = "trusted-keys.toml"
{sections}
"#,
        data = dir.join("data").display(),
        playbooks = super::repo().join("playbooks").display(),
    );
    let path = dir.join("hostwright.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}
