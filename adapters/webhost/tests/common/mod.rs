//! Shared helpers for the live web host tests (servers from
//! `scripts/testenv/services/webhost.sh`).
#![allow(dead_code)]

use std::process::Command as Proc;
use std::time::{Duration, Instant};

use hostwright_adapter::testenv::var;
use hostwright_adapter::{Resource, StepContext};
use hostwright_ssh::SshConfig;
use hostwright_webhost::{WebhostAdapter, WebhostConfig};
use rand::Rng;
use serde_json::{Value, json};

pub fn config() -> WebhostConfig {
    let root = var("HW_WEB_ROOT");
    WebhostConfig {
        ssh: SshConfig {
            host: var("HW_WEB_SSH_HOST"),
            port: var("HW_WEB_SSH_PORT").parse().unwrap(),
            user: var("HW_WEB_SSH_USER"),
            private_key_file: var("HW_WEB_SSH_KEY").into(),
            known_hosts_file: var("HW_WEB_KNOWN_HOSTS").into(),
            accept_unknown_host_key: false,
            connect_timeout_secs: 5,
            command_timeout_secs: 60,
            pool_size: 4,
        },
        home_root: format!("{root}/home"),
        sites_dir: format!("{root}/sites"),
        tls_dir: format!("{root}/tls"),
        archive_dir: format!("{root}/archive"),
        suspended_root: format!("{root}/suspended"),
        nginx_bin: "nginx".into(),
        nginx_conf: var("HW_WEB_NGINX_CONF"),
        reload_command: None,
        http_port: var("HW_WEB_HTTP_PORT").parse().unwrap(),
        https_port: var("HW_WEB_HTTPS_PORT").parse().unwrap(),
        listen_address: Some("127.0.0.1".parse().unwrap()),
        uid_min: 61000,
        uid_max: 61999,
        tls_ca_cert: Some(var("HW_TLS_CA_CERT").into()),
        tls_ca_key: Some(var("HW_TLS_CA_KEY").into()),
        acme: None,
        reload_coalesce_ms: 100,
    }
}

pub fn adapter() -> WebhostAdapter {
    WebhostAdapter::new(config()).unwrap()
}

pub fn ctx() -> StepContext {
    StepContext {
        job_id: "job-test".into(),
        step_id: "step".into(),
        attempt: 1,
    }
}

/// A fresh, unused user name like `hwt3kq9xz`.
pub fn unique_user() -> String {
    let mut rng = rand::rng();
    let s: String = (0..6)
        .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
        .collect();
    format!("hwt{s}")
}

pub fn webspace(user: &str, quota_mb: u64, suspended: bool) -> Resource {
    Resource {
        kind: "webspace".into(),
        key: user.into(),
        contract_id: "K-TEST-1".into(),
        spec: json!({"user": user, "quota_mb": quota_mb, "suspended": suspended}),
    }
}

pub fn vhost(domain: &str, user: &str, aliases: &[&str], tls: bool, suspended: bool) -> Resource {
    Resource {
        kind: "vhost".into(),
        key: domain.into(),
        contract_id: "K-TEST-1".into(),
        spec: json!({"user": user, "domain": domain, "aliases": aliases, "tls": tls, "suspended": suspended}),
    }
}

/// (status, body) of an HTTP(S) GET for `host`, through curl.
pub fn get(host: &str, https: bool) -> (u16, String) {
    let out = if https {
        let port = var("HW_WEB_HTTPS_PORT");
        Proc::new("curl")
            .args(["-sS", "-m", "5", "-w", "\n%{http_code}", "--cacert"])
            .arg(var("HW_TLS_CA_CERT"))
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
            .arg(format!("https://{host}:{port}/"))
            .output()
            .unwrap()
    } else {
        Proc::new("curl")
            .args(["-sS", "-m", "5", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Host: {host}"))
            .arg(format!("http://127.0.0.1:{}/", var("HW_WEB_HTTP_PORT")))
            .output()
            .unwrap()
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Polls until `get` returns `status` (nginx reloads asynchronously).
pub fn wait_for(host: &str, https: bool, status: u16) -> String {
    let t = Instant::now();
    loop {
        let (code, body) = get(host, https);
        if code == status {
            return body;
        }
        if t.elapsed() > Duration::from_secs(10) {
            panic!("{host} (https={https}) kept answering {code}, wanted {status}: {body}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The local shadow/passwd view (the test web host is this machine).
pub fn getent(db: &str, key: &str) -> Option<String> {
    let out = Proc::new("getent").args([db, key]).output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn fact<'a>(v: &'a Value, k: &str) -> &'a Value {
    &v[k]
}

pub fn nginx_t_ok() -> bool {
    Proc::new("nginx")
        .args(["-t", "-q", "-c", &var("HW_WEB_NGINX_CONF")])
        .status()
        .unwrap()
        .success()
}

/// Removes a test user and its vhost files even when a test fails halfway
/// (the test web host is this machine).
pub struct Cleanup {
    pub user: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let root = var("HW_WEB_ROOT");
        if getent("passwd", &self.user).is_some() {
            let _ = Proc::new("userdel").args(["-r", &self.user]).output();
        }
        for dir in ["sites", "tls"] {
            if let Ok(rd) = std::fs::read_dir(format!("{root}/{dir}")) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.contains(&format!("{}.example.test", self.user)) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
}
