//! examples/hostwright.toml loads with the real config loader, each of its
//! adapter sections parses with that adapter's own config type, and
//! docs/config.md names every key it has.

mod common;

use hostwright::engine::config::Config;

fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(_) => keys(&path, v, out),
                _ => out.push(path),
            }
        }
    }
}

#[test]
fn the_example_config_loads_and_every_key_is_documented() {
    let path = common::repo().join("examples/hostwright.toml");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.notify.len(), 4);
    assert!(cfg.api.tls.is_some() && cfg.billing.is_some() && cfg.close.enabled);

    let section = |name: &str| {
        cfg.adapters
            .get(name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    section("webhost")
        .try_into::<hostwright_webhost::WebhostConfig>()
        .unwrap();
    section("ftp")
        .try_into::<hostwright_ftp::FtpConfig>()
        .unwrap();
    section("dns")
        .try_into::<hostwright_dns::DnsConfig>()
        .unwrap();
    section("securemx")
        .try_into::<hostwright_securemx::SecureMxConfig>()
        .unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    let mut all = Vec::new();
    keys("", &value, &mut all);
    assert!(all.len() > 90, "{}", all.len());
    let doc = std::fs::read_to_string(common::repo().join("docs/config.md")).unwrap();
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| {
            let leaf = k.rsplit('.').next().unwrap();
            !doc.contains(&format!("`{leaf}`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/config.md does not name {missing:?}"
    );
    // Every section of the example has its heading.
    for k in &all {
        if let Some((table, _)) = k.rsplit_once('.') {
            let table = table
                .replace("notify.job_failed", "notify.<event>")
                .replace("notify.job_recovered", "notify.<event>")
                .replace("notify.contract_refused", "notify.<event>")
                .replace("notify.drift_found", "notify.<event>");
            assert!(
                doc.contains(&format!("[{table}]")),
                "docs/config.md has no [{table}]"
            );
        }
    }
}

#[test]
fn an_unknown_key_is_refused_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::repo().join("examples/hostwright.toml"))
        .unwrap()
        .replace(
            "[close]\nenabled = true",
            "[close]\nenabled = true\nenabeld = true",
        );
    let path = dir.path().join("hostwright.toml");
    std::fs::write(&path, text).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("hostwright.toml") && e.contains("enabeld"),
        "{e}"
    );
    assert!(e.contains("line"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn a_wrong_key_in_an_adapter_section_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::repo().join("examples/hostwright.toml"))
        .unwrap()
        .replacen("pool_size = 8", "pool_sise = 8", 1);
    let line = text.lines().position(|l| l == "pool_sise = 8").unwrap() + 1;
    let path = dir.path().join("hostwright.toml");
    std::fs::write(&path, text).unwrap();
    // The loader takes the sections as they are; building the adapters
    // refuses the key, naming the file and the line.
    let cfg = Config::load(&path).unwrap();
    let e = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(hostwright::engine::server::build_registry(&cfg))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("hostwright.toml"), "{e}");
    assert!(e.contains(&format!("line {line}")), "{e}");
    assert!(e.contains("pool_sise"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

/// examples/hostwright-fleet.toml: a fleet of two web hosts and a DNS
/// group loads; each host's sections parse with the adapters' own types;
/// every key is named in docs/config.md.
#[test]
fn the_fleet_example_loads_and_every_key_is_documented() {
    let path = common::repo().join("examples/hostwright-fleet.toml");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let fleet = cfg.fleet.as_ref().expect("a fleet");
    assert_eq!(
        fleet
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>(),
        ["web1", "web2"]
    );
    for h in &fleet.hosts {
        h.webhost
            .clone()
            .try_into::<hostwright_webhost::WebhostConfig>()
            .unwrap_or_else(|e| panic!("{}: webhost: {e}", h.name));
        h.ftp
            .clone()
            .try_into::<hostwright_ftp::FtpConfig>()
            .unwrap_or_else(|e| panic!("{}: ftp: {e}", h.name));
        assert!(h.health_address().is_some());
    }
    assert_eq!(fleet.hosts[1].health_address().unwrap(), "web2.internal:22");
    let dns: hostwright_dns::DnsConfig = cfg.adapters["dns"].clone().try_into().unwrap();
    assert_eq!(dns.nameservers.len(), 2);
    assert!(dns.catalog_zone.is_some());

    let text = std::fs::read_to_string(&path).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    let mut all = Vec::new();
    keys("", &value, &mut all);
    // [[fleet.hosts]] is an array of tables: its keys are read one level down.
    for host in value["fleet"]["hosts"].as_array().unwrap() {
        keys("fleet.hosts", host, &mut all);
    }
    let doc = std::fs::read_to_string(common::repo().join("docs/config.md")).unwrap();
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{}`", k.rsplit('.').next().unwrap())))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/config.md does not name {missing:?}"
    );
}

/// The compose stack's config (deploy/hostwright/.../hostwright.toml.in,
/// with the password the entrypoint fills in) loads: its fleet of two web
/// hosts, each host's sections parse with the adapters' own types, the
/// first host is the stack's first web host, and the DNS adapter names both
/// name servers and the catalog the secondary follows. Caught here, a
/// mistake does not wait for the compose suite.
#[test]
fn the_compose_config_loads_with_its_fleet_and_dns_group() {
    let text = std::fs::read_to_string(
        common::repo().join("deploy/hostwright/rootfs/etc/hostwright/hostwright.toml.in"),
    )
    .unwrap()
    .replace("@PG_PASSWORD@", "not-a-secret");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostwright.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let fleet = cfg.fleet.as_ref().expect("a fleet");
    let hosts: Vec<(&str, String)> = fleet
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.ipv4.to_string()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("web1", "172.28.0.20".to_string()),
            ("web2", "172.28.0.21".to_string())
        ]
    );
    for h in &fleet.hosts {
        h.webhost
            .clone()
            .try_into::<hostwright_webhost::WebhostConfig>()
            .unwrap_or_else(|e| panic!("{}: webhost: {e}", h.name));
        h.ftp
            .clone()
            .try_into::<hostwright_ftp::FtpConfig>()
            .unwrap_or_else(|e| panic!("{}: ftp: {e}", h.name));
        // Both adapters of a host reach the same machine, the one its
        // sites' A records name.
        let ssh = |v: &toml::Value| v["ssh"]["host"].as_str().unwrap().to_string();
        assert_eq!(ssh(&h.webhost), h.ipv4.to_string());
        assert_eq!(ssh(&h.ftp), h.ipv4.to_string());
    }
    assert!(cfg.provisioning.web_ipv4.is_none());
    let dns: hostwright_dns::DnsConfig = cfg.adapters["dns"].clone().try_into().unwrap();
    assert_eq!(dns.nameservers.len(), 2);
    assert_eq!(dns.catalog_zone.as_deref(), Some("catalog.hostwright.test"));
}
