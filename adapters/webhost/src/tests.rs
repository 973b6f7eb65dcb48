//! Unit tests: validation happens before any command is sent.

use super::*;

/// A config whose SSH host does not exist: any command would fail with a
/// *transient* connect error, so a permanent error proves nothing was sent.
fn unreachable_config() -> WebhostConfig {
    serde_json::from_value(json!({
        "ssh": {
            "host": "127.0.0.1", "port": 1, "user": "root",
            "private_key_file": "/nonexistent/key",
            "known_hosts_file": "/nonexistent/known_hosts",
            "connect_timeout_secs": 1
        },
        "home_root": "/srv/hw/home",
        "sites_dir": "/srv/hw/sites",
        "tls_dir": "/srv/hw/tls",
        "archive_dir": "/srv/hw/archive",
        "suspended_root": "/srv/hw/suspended",
        "nginx_conf": "/etc/nginx/nginx.conf"
    }))
    .unwrap()
}

fn ctx() -> StepContext {
    StepContext {
        job_id: "j".into(),
        step_id: "s".into(),
        attempt: 1,
    }
}

const HOSTILE: &[&str] = &[
    "a;id",
    "$(id)",
    "`id`",
    "a\nb",
    "..",
    "../etc",
    "a b",
    "exаmple.jp", // Cyrillic а
    "Example.jp",
    "ａｄｍｉｎ",
    "x'y",
    "",
];

#[tokio::test]
async fn hostile_names_are_rejected_before_any_command_runs() {
    let a = WebhostAdapter::new(unreachable_config()).unwrap();
    let long_label = format!("{}.jp", "a".repeat(64));
    let mut names: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    names.push(long_label);
    for bad in &names {
        let cases = [
            Resource {
                kind: KIND_WEBSPACE.into(),
                key: bad.clone(),
                contract_id: "K-1".into(),
                spec: json!({"user": bad, "quota_mb": 10}),
            },
            Resource {
                kind: KIND_VHOST.into(),
                key: bad.clone(),
                contract_id: "K-1".into(),
                spec: json!({"user": "c1001", "domain": bad}),
            },
            Resource {
                kind: KIND_VHOST.into(),
                key: "example.jp".into(),
                contract_id: "K-1".into(),
                spec: json!({"user": bad, "domain": "example.jp"}),
            },
            Resource {
                kind: KIND_VHOST.into(),
                key: "example.jp".into(),
                contract_id: "K-1".into(),
                spec: json!({"user": "c1001", "aliases": [bad]}),
            },
            Resource {
                kind: KIND_WEBSPACE.into(),
                key: "c1001".into(),
                contract_id: bad.clone(),
                spec: json!({"user": "c1001", "quota_mb": 10}),
            },
        ];
        for r in cases {
            if r.contract_id == *bad && bad == "Example.jp" {
                continue; // upper case is fine in a contract id
            }
            let e = a.ensure(&ctx(), &r).await.unwrap_err();
            assert!(!e.is_transient(), "{bad:?} in {r:?}: {e}");
        }
        for kind in [KIND_WEBSPACE, KIND_VHOST] {
            let r = Resource {
                kind: kind.into(),
                key: bad.clone(),
                contract_id: "K-1".into(),
                spec: json!({}),
            };
            assert!(!a.remove(&ctx(), &r).await.unwrap_err().is_transient());
            assert!(!a.observe(&r).await.unwrap_err().is_transient());
        }
    }
    assert!(
        !a.install_site("a;b.jp", "x", false)
            .await
            .unwrap_err()
            .is_transient()
    );
    assert_eq!(a.pool().sessions_created(), 0);

    // Control: a valid resource does reach the (unreachable) host.
    let ok = Resource {
        kind: KIND_WEBSPACE.into(),
        key: "c1001".into(),
        contract_id: "K-1".into(),
        spec: json!({"user": "c1001", "quota_mb": 10}),
    };
    assert!(a.ensure(&ctx(), &ok).await.unwrap_err().is_transient());
}

#[tokio::test]
async fn malformed_specs_and_missing_ca_are_permanent() {
    let a = WebhostAdapter::new(unreachable_config()).unwrap();
    for r in [
        Resource {
            kind: KIND_WEBSPACE.into(),
            key: "c1001".into(),
            contract_id: "K-1".into(),
            spec: json!({"quota_mb": 10, "owner": "someone"}),
        },
        Resource {
            kind: KIND_VHOST.into(),
            key: "example.jp".into(),
            contract_id: "K-1".into(),
            spec: json!({"domain": "example.jp"}),
        },
        Resource {
            kind: KIND_VHOST.into(),
            key: "example.jp".into(),
            contract_id: "K-1".into(),
            spec: json!({"user": "c1001", "tls": true}),
        },
        Resource {
            kind: "mailbox".into(),
            key: "x".into(),
            contract_id: "K-1".into(),
            spec: json!({}),
        },
    ] {
        assert!(!a.ensure(&ctx(), &r).await.unwrap_err().is_transient());
    }
    assert_eq!(a.pool().sessions_created(), 0);
}

#[test]
fn config_paths_are_checked() {
    let mut c = unreachable_config();
    c.sites_dir = "/srv/hw/sites; include /etc".into();
    assert!(matches!(
        WebhostAdapter::new(c),
        Err(ConfigError::Path { .. })
    ));
    let mut c = unreachable_config();
    c.home_root = "relative/home".into();
    assert!(WebhostAdapter::new(c).is_err());
    let mut c = unreachable_config();
    c.uid_min = 0;
    assert!(matches!(
        WebhostAdapter::new(c),
        Err(ConfigError::UidRange { .. })
    ));
    let mut c = unreachable_config();
    c.tls_ca_cert = Some("/x".into());
    assert!(matches!(WebhostAdapter::new(c), Err(ConfigError::CaPair)));
}

#[test]
fn a_vhost_file_is_only_ours_to_change_with_our_contracts_marker() {
    let mine = render::marker_line("C-1", "c-1") + "\nserver {}\n";
    assert!(render::check_owner("/s/a.conf", mine.as_bytes(), "C-1").is_ok());
    // C-1 is a prefix of C-10: the marker's comma keeps them apart.
    let e = render::check_owner("/s/a.conf", mine.as_bytes(), "C-10").unwrap_err();
    assert!(e.contains("another contract"), "{e}");
    let by_hand = render::check_owner("/s/a.conf", b"server {}\n", "C-1").unwrap_err();
    assert!(by_hand.contains("not made by hostwright"), "{by_hand}");
    // What vhost_conf writes carries the marker check_owner reads.
    let listen = render::Listen {
        address: None,
        http_port: 80,
        https_port: 443,
    };
    let conf = render::vhost_conf(
        "C-7",
        "c-7",
        &["c7.example.jp".into()],
        &listen,
        None,
        None,
        &render::Serve::Site { root: "/r".into() },
    );
    assert!(render::check_owner("/s/c7.conf", conf.as_bytes(), "C-7").is_ok());
}
