//! The DNS adapter against the real BIND started by
//! `scripts/testenv/services/bind.sh` (coordinates from `testenv::var`; a
//! missing backend fails these tests). What the server serves is checked
//! with `dig +norec` against it directly, independently of the adapter's
//! own client.

use std::path::PathBuf;
use std::process::Command;

use hostwright_adapter::testenv::var;
use hostwright_adapter::{Adapter, AdapterError, Observation, Resource, StepContext};
use hostwright_dns::{DnsAdapter, DnsConfig};
use serde_json::{Value, json};

fn config() -> DnsConfig {
    DnsConfig {
        server: var("HW_DNS_SERVER").parse().expect("HW_DNS_SERVER"),
        rndc_host: var("HW_DNS_RNDC_HOST"),
        rndc_port: var("HW_DNS_RNDC_PORT").parse().expect("HW_DNS_RNDC_PORT"),
        rndc_key_file: var("HW_DNS_RNDC_KEY").into(),
        tsig_key_name: var("HW_DNS_TSIG_NAME"),
        tsig_secret_file: var("HW_DNS_TSIG_FILE").into(),
        nameserver: var("HW_DNS_NAMESERVER"),
        initial_file: var("HW_DNS_INITIAL_FILE"),
        zone_file_dir: var("HW_DNS_ZONE_DIR"),
        timeout_secs: 3,
        view: "main".into(),
        seed_view: "seed".into(),
        seed_key_name: "hostwright-seed".into(),
        seed_primary: None,
        rndc_program: None,
        nameservers: vec![],
        catalog_zone: None,
    }
}

fn adapter() -> DnsAdapter {
    DnsAdapter::new(config()).expect("adapter from the test environment")
}

fn unique_zone(tag: &str) -> String {
    format!("{tag}-{:016x}.test", rand::random::<u64>())
}

fn ctx() -> StepContext {
    StepContext {
        job_id: "job-dns-test".into(),
        step_id: "step-1".into(),
        attempt: 1,
    }
}

fn resource(zone: &str, records: Value) -> Resource {
    Resource {
        kind: "dns_zone".into(),
        key: zone.into(),
        contract_id: "C-DNS-TEST".into(),
        spec: json!({"zone": zone, "records": records}),
    }
}

fn v1() -> Value {
    json!([
        {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.10"},
        {"name": "www", "type": "A", "ttl": 300, "data": "192.0.2.10"},
        {"name": "@", "type": "MX", "ttl": 300, "data": "10 mx1.securemx.example."},
        {"name": "@", "type": "TXT", "ttl": 300, "data": "v=spf1 include:spf.securemx.example ~all"},
    ])
}

/// What `dig +norec` sees: status, AA flag, answer lines (type, data) for
/// exactly the asked name.
struct Dig {
    status: String,
    aa: bool,
    answers: Vec<(String, String)>,
}

fn dig(name: &str, rtype: &str) -> Dig {
    dig_at(&var("HW_DNS_SERVER"), name, rtype)
}

/// [`dig`] against the server at `server` (`host:port`).
fn dig_at(server: &str, name: &str, rtype: &str) -> Dig {
    let (host, port) = server.rsplit_once(':').unwrap();
    let out = Command::new("dig")
        .args([
            &format!("@{host}"),
            "-p",
            port,
            "+norec",
            "+noall",
            "+comments",
            "+answer",
            "+time=2",
            "+tries=1",
            name,
            rtype,
        ])
        .output()
        .expect("dig runs (bind9-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no status in dig output:\n{text}"));
    let aa = text
        .lines()
        .find_map(|l| l.strip_prefix(";; flags:"))
        .map(|f| {
            f.split(';')
                .next()
                .unwrap()
                .split_whitespace()
                .any(|w| w == "aa")
        })
        .unwrap_or(false);
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5 && f[0].trim_end_matches('.') == name)
                .then(|| (f[3].to_string(), f[4..].join(" ")))
        })
        .filter(|(t, _)| t == rtype)
        .collect();
    Dig {
        status,
        aa,
        answers,
    }
}

/// The sorted data of `name`/`rtype`, asserting an authoritative answer.
fn served(name: &str, rtype: &str) -> Vec<String> {
    let d = dig(name, rtype);
    assert_eq!(d.status, "NOERROR", "{name} {rtype}");
    assert!(d.aa, "{name} {rtype}: answer is not authoritative");
    let mut v: Vec<String> = d.answers.into_iter().map(|(_, data)| data).collect();
    v.sort();
    v
}

fn permanent(e: &AdapterError) -> &str {
    match e {
        AdapterError::Permanent { message } => message,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

fn transient(e: &AdapterError) -> &str {
    match e {
        AdapterError::Transient { message, .. } => message,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn ensure_creates_the_zone_and_serves_the_records_authoritatively() {
    let template_before = std::fs::read(var("HW_DNS_INITIAL_FILE")).unwrap();
    let a = adapter();
    let zone = unique_zone("create");
    let r = resource(&zone, v1());
    assert_eq!(a.observe(&r).await.unwrap(), Observation::Absent);

    let out = a.ensure(&ctx(), &r).await.expect("ensure");
    assert_eq!(out.facts["zone"], json!(zone));
    assert_eq!(out.facts["records"], json!(4));
    assert!(out.facts["serial"].as_u64().unwrap() >= 2, "{}", out.facts);
    assert!(out.secrets.is_empty());

    assert_eq!(served(&zone, "A"), vec!["192.0.2.10"]);
    assert_eq!(served(&format!("www.{zone}"), "A"), vec!["192.0.2.10"]);
    assert_eq!(served(&zone, "MX"), vec!["10 mx1.securemx.example."]);
    assert_eq!(
        served(&zone, "TXT"),
        vec!["\"v=spf1 include:spf.securemx.example ~all\""]
    );
    assert_eq!(served(&zone, "NS"), vec!["ns1.hostwright.test."]);
    match a.observe(&r).await.unwrap() {
        Observation::Present { facts } => assert_eq!(facts["serial"], out.facts["serial"]),
        Observation::Absent => panic!("zone not observed"),
    }
    // The zone got a file of its own; the shared template is untouched.
    let file = PathBuf::from(var("HW_DNS_ZONE_DIR")).join(format!("{zone}.db"));
    assert!(file.exists(), "{} missing", file.display());
    assert_eq!(
        std::fs::read(var("HW_DNS_INITIAL_FILE")).unwrap(),
        template_before
    );
    a.remove(&ctx(), &r).await.unwrap();
}

#[tokio::test]
async fn ensure_twice_changes_nothing_the_second_time() {
    let a = adapter();
    let zone = unique_zone("twice");
    let r = resource(&zone, v1());
    let first = a.ensure(&ctx(), &r).await.unwrap();
    let second = a.ensure(&ctx(), &r).await.unwrap();
    // No update was sent: the serial did not move.
    assert_eq!(first.facts, second.facts);
    assert_eq!(served(&zone, "A"), vec!["192.0.2.10"]);
    // `suspended` is tolerated and changes nothing either.
    let mut suspended = r.clone();
    suspended.spec["suspended"] = json!(true);
    let third = a.ensure(&ctx(), &suspended).await.unwrap();
    assert_eq!(first.facts, third.facts);
    a.remove(&ctx(), &r).await.unwrap();
}

#[tokio::test]
async fn a_changed_spec_changes_the_records() {
    let a = adapter();
    let zone = unique_zone("change");
    a.ensure(&ctx(), &resource(&zone, v1())).await.unwrap();
    let v2 = json!([
        {"name": "@", "type": "A", "ttl": 600, "data": "192.0.2.20"},
        {"name": "@", "type": "A", "ttl": 600, "data": "192.0.2.21"},
        {"name": "www", "type": "CNAME", "ttl": 300, "data": "@" },
        {"name": "@", "type": "TXT", "ttl": 300, "data": "v=spf1 -all"},
        {"name": "@", "type": "AAAA", "ttl": 300, "data": "2001:db8::20"},
        {"name": "mail", "type": "A", "ttl": 300, "data": "192.0.2.25"},
    ]);
    // '@' is not a CNAME target: refused, nothing changes.
    let e = a
        .ensure(&ctx(), &resource(&zone, v2.clone()))
        .await
        .unwrap_err();
    assert!(permanent(&e).contains(&zone), "{e}");
    assert_eq!(served(&zone, "MX"), vec!["10 mx1.securemx.example."]);

    let mut v2 = v2;
    v2[2]["data"] = json!(format!("{zone}."));
    let out = a
        .ensure(&ctx(), &resource(&zone, v2.clone()))
        .await
        .unwrap();
    assert_eq!(out.facts["records"], json!(6));
    assert_eq!(served(&zone, "A"), vec!["192.0.2.20", "192.0.2.21"]);
    assert!(
        served(&zone, "MX").is_empty(),
        "the removed MX is still served"
    );
    assert_eq!(served(&zone, "TXT"), vec!["\"v=spf1 -all\""]);
    assert_eq!(served(&zone, "AAAA"), vec!["2001:db8::20"]);
    assert_eq!(served(&format!("mail.{zone}"), "A"), vec!["192.0.2.25"]);
    assert_eq!(
        served(&format!("www.{zone}"), "CNAME"),
        vec![format!("{zone}.")]
    );
    let d = dig(&zone, "A");
    assert!(d.answers.iter().all(|(t, _)| t == "A"));
    let ttl_line = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            var("HW_DNS_SERVER").rsplit_once(':').unwrap().1,
        ])
        .args(["+norec", "+noall", "+answer", &zone, "A"])
        .output()
        .unwrap();
    let ttl_text = String::from_utf8_lossy(&ttl_line.stdout);
    let ttls: Vec<&str> = ttl_text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(ttls, vec!["600", "600"], "ttl not changed: {ttl_text:?}");
    // And back: the dropped names' records go, the MX comes back.
    let again = a.ensure(&ctx(), &resource(&zone, v1())).await.unwrap();
    assert_eq!(again.facts["records"], json!(4));
    assert_eq!(served(&format!("www.{zone}"), "A"), vec!["192.0.2.10"]);
    assert!(served(&format!("www.{zone}"), "CNAME").is_empty());
    assert!(served(&zone, "AAAA").is_empty());
    assert_eq!(served(&zone, "MX"), vec!["10 mx1.securemx.example."]);
    a.remove(&ctx(), &resource(&zone, v1())).await.unwrap();
}

#[tokio::test]
async fn remove_deletes_the_zone_and_a_second_remove_succeeds() {
    let a = adapter();
    let zone = unique_zone("remove");
    let r = resource(&zone, v1());
    a.ensure(&ctx(), &r).await.unwrap();
    let out = a.remove(&ctx(), &r).await.unwrap();
    assert_eq!(out.facts["zone"], json!(zone));
    let d = dig(&zone, "SOA");
    assert!(
        d.status == "REFUSED" || d.status == "NOTAUTH" || !d.aa,
        "zone still served: {} aa={}",
        d.status,
        d.aa
    );
    assert_eq!(a.observe(&r).await.unwrap(), Observation::Absent);
    let file = PathBuf::from(var("HW_DNS_ZONE_DIR")).join(format!("{zone}.db"));
    assert!(!file.exists(), "delzone -clean left {}", file.display());
    a.remove(&ctx(), &r).await.expect("second remove");
    // Removing a zone that never existed succeeds too.
    a.remove(&ctx(), &resource(&unique_zone("never"), json!([])))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_zone_names_its_owner_and_another_contract_can_neither_change_nor_remove_it() {
    let a = adapter();
    let zone = unique_zone("owned");
    let r = resource(&zone, v1());
    a.ensure(&ctx(), &r).await.unwrap();
    let owner = dig(&format!("_hostwright-owner.{zone}"), "TXT");
    assert!(owner.aa, "authoritative");
    assert_eq!(
        owner.answers,
        [("TXT".to_string(), "\"C-DNS-TEST\"".to_string())],
        "the owner record names the contract"
    );
    let mut theirs = resource(
        &zone,
        json!([{"name": "@", "type": "A", "ttl": 300, "data": "203.0.113.66"}]),
    );
    theirs.contract_id = "C-DNS-OTHER".into();
    for e in [
        a.ensure(&ctx(), &theirs).await.unwrap_err(),
        a.remove(&ctx(), &theirs).await.unwrap_err(),
    ] {
        assert!(!e.is_transient(), "{e}");
        assert!(e.to_string().contains("another contract"), "{e}");
    }
    // Still served, still the owner's records.
    let apex = dig(&zone, "A");
    assert!(apex.aa);
    assert_eq!(apex.answers, [("A".to_string(), "192.0.2.10".to_string())]);
    a.remove(&ctx(), &r).await.unwrap();
}

#[tokio::test]
async fn an_update_signed_with_a_wrong_secret_is_refused_and_changes_nothing() {
    let good = adapter();
    let zone = unique_zone("badkey");
    good.ensure(&ctx(), &resource(&zone, v1())).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.key");
    std::fs::write(
        &wrong,
        format!(
            "key \"{}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"q6GftUMq9Ym1BvWKNsSmrZKWmlbZL/AvD8vHNuGu5lY=\";\n}};\n",
            var("HW_DNS_TSIG_NAME")
        ),
    )
    .unwrap();
    let bad = DnsAdapter::new(DnsConfig {
        tsig_secret_file: wrong,
        ..config()
    })
    .unwrap();
    let v2 = json!([{"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.99"}]);
    let e = bad.ensure(&ctx(), &resource(&zone, v2)).await.unwrap_err();
    let msg = permanent(&e);
    assert!(msg.contains(&zone), "{msg}");
    assert!(!msg.contains("q6Gf"), "secret leaked: {msg}");
    assert_eq!(served(&zone, "A"), vec!["192.0.2.10"]);
    assert_eq!(served(&zone, "MX"), vec!["10 mx1.securemx.example."]);

    // A key the server does not know at all is refused the same way.
    let unknown = dir.path().join("unknown.key");
    std::fs::write(
        &unknown,
        "key \"not-a-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"q6GftUMq9Ym1BvWKNsSmrZKWmlbZL/AvD8vHNuGu5lY=\";\n};\n",
    )
    .unwrap();
    let stranger = DnsAdapter::new(DnsConfig {
        tsig_secret_file: unknown,
        tsig_key_name: "not-a-key".into(),
        ..config()
    })
    .unwrap();
    let v3 = json!([{"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.98"}]);
    let e = stranger
        .ensure(&ctx(), &resource(&zone, v3))
        .await
        .unwrap_err();
    permanent(&e);
    assert_eq!(served(&zone, "A"), vec!["192.0.2.10"]);
    good.remove(&ctx(), &resource(&zone, v1())).await.unwrap();
}

#[tokio::test]
async fn a_server_that_is_down_is_a_transient_error() {
    let zone = unique_zone("down");
    let r = resource(&zone, v1());
    // Nothing listens on these ports.
    let dead: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let all_down = DnsAdapter::new(DnsConfig {
        server: dead,
        rndc_port: 1,
        ..config()
    })
    .unwrap();
    transient(&all_down.ensure(&ctx(), &r).await.unwrap_err());
    transient(&all_down.remove(&ctx(), &r).await.unwrap_err());
    transient(&all_down.observe(&r).await.unwrap_err());

    // rndc answers but DNS does not: the zone is created, the records wait.
    let dns_down = DnsAdapter::new(DnsConfig {
        server: dead,
        seed_primary: Some(var("HW_DNS_SERVER").parse().unwrap()),
        ..config()
    })
    .unwrap();
    let e = dns_down.ensure(&ctx(), &r).await.unwrap_err();
    assert!(transient(&e).contains(&zone), "{e}");
    // A retry against the live server finishes the job.
    let a = adapter();
    a.ensure(&ctx(), &r).await.unwrap();
    assert_eq!(served(&zone, "A"), vec!["192.0.2.10"]);
    a.remove(&ctx(), &r).await.unwrap();
}

#[tokio::test]
async fn hostile_specs_are_refused_before_anything_reaches_the_server() {
    let a = adapter();
    let zone = unique_zone("hostile");
    for (name, rtype, data) in [
        ("a;b", "A", "192.0.2.1"),
        ("www\n@ 300 A 192.0.2.66", "A", "192.0.2.1"),
        ("$(id)", "A", "192.0.2.1"),
        ("a..b", "A", "192.0.2.1"),
        ("www", "A", "192.0.2.1; rm -rf /"),
        ("@", "TXT", "a\nb"),
        ("@", "NS", "evil.example."),
    ] {
        let r = resource(
            &zone,
            json!([{"name": name, "type": rtype, "ttl": 300, "data": data}]),
        );
        let e = a.ensure(&ctx(), &r).await.unwrap_err();
        assert!(permanent(&e).contains(&zone), "{e}");
    }
    let mut bad_zone = resource("x;y.test", json!([]));
    bad_zone.spec["zone"] = json!("x;y.test");
    permanent(&a.ensure(&ctx(), &bad_zone).await.unwrap_err());
    permanent(&a.remove(&ctx(), &bad_zone).await.unwrap_err());
    let mut unknown = resource(&zone, json!([]));
    unknown.spec["owner"] = json!("x");
    permanent(&a.ensure(&ctx(), &unknown).await.unwrap_err());
    // None of that created the zone.
    assert_eq!(dig(&zone, "SOA").status, "REFUSED");
}

/// A crash in the middle of seeding (secondary added, not yet promoted)
/// is finished by the next ensure.
#[tokio::test]
async fn an_interrupted_seeding_is_completed_by_the_next_ensure() {
    let zone = unique_zone("resume");
    let dir = var("HW_DNS_ZONE_DIR");
    let rndc = |args: &[&str]| {
        let out = Command::new("rndc")
            .args([
                "-s",
                &var("HW_DNS_RNDC_HOST"),
                "-p",
                &var("HW_DNS_RNDC_PORT"),
            ])
            .args(["-k", &var("HW_DNS_RNDC_KEY")])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "rndc {args:?}: {out:?}");
    };
    rndc(&[
        "addzone",
        &zone,
        "IN",
        "seed",
        &format!(
            "{{ type primary; file \"{}\"; allow-transfer {{ key \"hostwright-seed\"; }}; }};",
            var("HW_DNS_INITIAL_FILE")
        ),
    ]);
    let server: std::net::SocketAddr = var("HW_DNS_SERVER").parse().unwrap();
    rndc(&[
        "addzone",
        &zone,
        "IN",
        "main",
        &format!(
            "{{ type secondary; masterfile-format text; primaries {{ {} port {} key \"hostwright-seed\"; }}; file \"{dir}/{zone}.db\"; }};",
            server.ip(),
            server.port()
        ),
    ]);
    let a = adapter();
    let r = resource(&zone, v1());
    a.ensure(&ctx(), &r)
        .await
        .expect("ensure resumes the seeding");
    assert_eq!(served(&zone, "MX"), vec!["10 mx1.securemx.example."]);
    a.remove(&ctx(), &r).await.unwrap();
    // The seed copy is gone too.
    let out = Command::new("rndc")
        .args([
            "-s",
            &var("HW_DNS_RNDC_HOST"),
            "-p",
            &var("HW_DNS_RNDC_PORT"),
        ])
        .args(["-k", &var("HW_DNS_RNDC_KEY")])
        .args(["zonestatus", &zone, "IN", "seed"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The group's adapter: apex NS lists every name server, and each zone is
/// a member of the catalog zone the secondary follows.
fn group_adapter() -> DnsAdapter {
    DnsAdapter::new(DnsConfig {
        nameservers: var("HW_DNS_NAMESERVERS")
            .split(',')
            .map(str::to_string)
            .collect(),
        catalog_zone: Some(var("HW_DNS_CATALOG")),
        ..config()
    })
    .expect("group adapter")
}

/// Polls the secondary until `check` holds of what it answers for
/// `name`/`rtype`; returns how long that took.
fn on_secondary(name: &str, rtype: &str, what: &str, check: impl Fn(&Dig) -> bool) -> f64 {
    let secondary = var("HW_DNS_SECONDARY");
    let start = std::time::Instant::now();
    loop {
        let d = dig_at(&secondary, name, rtype);
        if check(&d) {
            return start.elapsed().as_secs_f64();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the secondary {secondary} never {what}: {} aa={} {:?}",
            d.status,
            d.aa,
            d.answers
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[tokio::test]
async fn every_name_server_of_the_group_serves_a_zone_from_creation_to_removal() {
    let a = group_adapter();
    let zone = unique_zone("group");
    let www = format!("www.{zone}");
    a.ensure(&ctx(), &resource(&zone, v1())).await.unwrap();
    // The primary: both name servers at the apex, the spec's records.
    assert_eq!(
        served(&zone, "NS"),
        ["ns1.hostwright.test.", "ns2.hostwright.test."]
    );
    // The secondary learned of the zone from the catalog alone.
    let t_new = on_secondary(&www, "A", "served the new zone", |d| {
        d.aa && d.answers.iter().any(|(_, v)| v == "192.0.2.10")
    });
    let sec = var("HW_DNS_SECONDARY");
    let mut ns: Vec<String> = dig_at(&sec, &zone, "NS")
        .answers
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    ns.sort();
    assert_eq!(ns, ["ns1.hostwright.test.", "ns2.hostwright.test."]);
    // A changed record reaches the secondary by NOTIFY.
    let changed = json!([
        {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.20"},
        {"name": "www", "type": "A", "ttl": 300, "data": "192.0.2.20"},
    ]);
    a.ensure(&ctx(), &resource(&zone, changed)).await.unwrap();
    let t_change = on_secondary(&www, "A", "served the changed record", |d| {
        d.aa && d.answers.iter().map(|(_, v)| v.as_str()).eq(["192.0.2.20"])
    });
    // Ensuring again changes nothing, the catalog membership included.
    a.ensure(
        &ctx(),
        &resource(
            &zone,
            json!([
                {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.20"},
                {"name": "www", "type": "A", "ttl": 300, "data": "192.0.2.20"},
            ]),
        ),
    )
    .await
    .unwrap();
    // The catalog lists the zone with its owner: drift's inventory.
    let marked = a.inventory().await.unwrap().expect("a catalog lists zones");
    assert!(
        marked
            .iter()
            .any(|m| m.kind == "dns_zone" && m.key == zone && m.owner == "C-DNS-TEST"),
        "{zone} not in {marked:?}"
    );
    // Removed: gone from the primary and, through the catalog, the secondary.
    a.remove(&ctx(), &resource(&zone, json!([]))).await.unwrap();
    assert!(!dig(&zone, "SOA").aa, "the primary still serves {zone}");
    let t_gone = on_secondary(&zone, "SOA", "dropped the removed zone", |d| !d.aa);
    a.remove(&ctx(), &resource(&zone, json!([]))).await.unwrap();
    let marked = a.inventory().await.unwrap().expect("a catalog lists zones");
    assert!(!marked.iter().any(|m| m.key == zone), "{zone} still listed");
    // Without a catalog the server cannot list hostwright's zones.
    assert!(adapter().inventory().await.unwrap().is_none());
    println!(
        "secondary: new zone after {t_new:.1}s, changed record after {t_change:.1}s, removal after {t_gone:.1}s"
    );
}

#[test]
fn a_group_whose_first_name_server_is_not_the_primary_is_refused() {
    let e = DnsAdapter::new(DnsConfig {
        nameservers: vec!["ns2.hostwright.test.".into()],
        ..config()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("must list the primary"), "{e}");
}
