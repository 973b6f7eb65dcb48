//! `hostwright plan` (issue #12): judged exactly as intake judges a contract
//! (signature, the rules, the planner's names, ownership) before it shows any
//! step; a bad config creates no store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn signed(name: &str) -> String {
    root()
        .join("examples/signed")
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

/// A config over a fresh data folder with the scripted stand-ins.
fn config(dir: &Path, trusted_keys: &Path) -> PathBuf {
    let path = dir.join("hostwright.toml");
    std::fs::write(
        &path,
        format!(
            r#"data_dir = "{data}"
playbooks = "{playbooks}"
[intake]
trusted_keys = "{keys}"
[provisioning]
web_ipv4 = "192.0.2.10"
[adapters.scripted]
"#,
            data = dir.join("data").display(),
            playbooks = root().join("playbooks").display(),
            keys = trusted_keys.display(),
        ),
    )
    .unwrap();
    path
}

fn plan(config: &Path, file: &str, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostwright"));
    cmd.args(["plan", "--config"]).arg(config).arg(file);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("the hostwright binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn plan_refuses_what_intake_would_refuse_with_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &root().join("examples/keys/trusted-keys.toml"));
    let o = plan(&cfg, &signed("rejected-securemx-ssl"), false);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    for rule in [
        "option-service-type",
        "securemx-option-prerequisite",
        "securemx-administrator",
    ] {
        assert!(out.contains(rule), "{out}");
    }
    assert!(
        !out.contains("step(s)"),
        "no plan for a refused contract: {out}"
    );
    let o = plan(&cfg, &signed("rejected-securemx-ssl"), true);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["refused"]["outcome"], "rejected", "{v}");
    assert_eq!(v["steps"], serde_json::json!([]), "{v}");

    // A good one plans its steps, with the FTP logins intake derives.
    let o = plan(&cfg, &signed("www-ssl"), false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("7 step(s)"), "{out}");
    assert!(out.contains("c-1001_2"), "{out}");
    // --json: the same shape as a refusal, `refused` null.
    let o = plan(&cfg, &signed("www-ssl"), true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["refused"].is_null(), "{v}");
    assert_eq!(v["steps"].as_array().unwrap().len(), 7, "{v}");
}

#[test]
fn a_bad_config_creates_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dir.path().join("no-such-keys.toml"));
    let o = plan(&cfg, &signed("www-ssl"), false);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("no-such-keys.toml"), "{}", text(&o));
    assert!(
        !dir.path().join("data").exists(),
        "no data folder, store or key was made"
    );
}
