//! Issue #12: what intake accepts, every step can do. Generated contracts
//! that pass intake's checks (parsing, the rules, the planner's derivation)
//! produce only specs and keys their adapters accept; and the cases that once
//! slipped through (a mailbox `-info` or `a..b`, a 31-32 character contract
//! id with several FTP accounts) are refused at intake.

mod common;

use hostwright::catalog::Catalog;
use hostwright::contract::Contract;
use hostwright::engine::plan::{self, Desired};
use hostwright::engine::playbook::Playbooks;
use hostwright::engine::registry::Registry;
use hostwright::engine::scripted::{Script, ScriptedAdapter};
use hostwright::engine::server;
use hostwright::rules;
use hostwright_adapter::Spec;
use hostwright_adapter::validate;
use proptest::prelude::*;
use serde_json::{Value, json};

struct Planner {
    catalog: Catalog,
    playbooks: Playbooks,
}

fn planner() -> Planner {
    let mut reg = Registry::new();
    for a in ScriptedAdapter::all(&Script::new()) {
        reg.register(a);
    }
    let catalog = Catalog::builtin().unwrap();
    let playbooks =
        server::load_playbooks(&common::repo().join("playbooks"), &reg, &catalog).unwrap();
    Planner { catalog, playbooks }
}

/// Intake's pure judgement: `Some(resources)` when it would accept.
fn accepted(p: &Planner, doc: &Value) -> Option<Vec<Desired>> {
    let contract = Contract::from_json(&serde_json::to_vec(doc).unwrap()).ok()?;
    let findings = rules::check(&rules::CheckInput {
        contract: &contract,
        previous: None,
        others: &[],
        catalog: &p.catalog,
    });
    if !findings.is_empty() {
        return None;
    }
    let playbook = p.playbooks.for_service(contract.service.code())?;
    plan::desired(
        &contract,
        &p.catalog,
        playbook,
        &common::provisioning(),
        &common::web_target(),
        &[],
    )
    .ok()
}

/// What each adapter does first with a resource: its key's allow-list and
/// its typed spec (and, for a zone, the zone's own validation).
fn adapter_accepts(d: &Desired) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| format!("{} {}: {e}", d.kind, d.key);
    match d.kind.as_str() {
        "webspace" => {
            validate::user_name(&d.key).map_err(|x| e(&x))?;
            hostwright_webhost::WebspaceSpec::from_stored(&d.spec).map_err(|x| e(&x))?;
        }
        "vhost" => {
            validate::domain_name(&d.key).map_err(|x| e(&x))?;
            hostwright_webhost::VhostSpec::from_stored(&d.spec).map_err(|x| e(&x))?;
        }
        "ftp_account" => {
            validate::user_name(&d.key).map_err(|x| e(&x))?;
            hostwright_ftp::FtpAccountSpec::from_stored(&d.spec).map_err(|x| e(&x))?;
        }
        "dns_zone" => {
            let spec = hostwright_dns::spec::ZoneSpec::from_stored(&d.spec).map_err(|x| e(&x))?;
            hostwright_dns::spec::desired_zone(&d.key, &spec, &[]).map_err(|x| e(&x))?;
        }
        "mx_tenant" => {
            validate::contract_id(&d.key).map_err(|x| e(&x))?;
            hostwright_securemx::TenantSpec::from_stored(&d.spec).map_err(|x| e(&x))?;
        }
        "mx_mailboxes" => {
            validate::contract_id(&d.key).map_err(|x| e(&x))?;
            hostwright_securemx::MailboxesSpec::from_stored(&d.spec).map_err(|x| e(&x))?;
        }
        other => return Err(format!("no adapter knows {other}")),
    }
    Ok(())
}

fn contract(id: &str, service: &str, ftp_extra: u32, domain: &str, mailboxes: &[String]) -> Value {
    let mut options = vec![];
    if service != "mail_secure_mx" {
        options.push(json!({"item": "ssl_hosting", "quantity": 1, "effective": "2026-12-01", "quoted_initial": "15000"}));
        if ftp_extra > 0 {
            options.push(json!({"item": "ftp_account_extra", "quantity": ftp_extra, "effective": "2026-12-01"}));
        }
    } else {
        options
            .push(json!({"item": "mx_account_extra", "quantity": 20, "effective": "2026-12-01"}));
    }
    let mut c = json!({
        "contract_id": id,
        "revision": 1,
        "requested_on": "2026-11-01",
        "customer": {"id": "CU-PROP", "kind": "corporation", "name": "Prop K.K."},
        "service": service,
        "service_start": "2026-12-01",
        "status": {"state": "active"},
        "options": options,
        "domains": [{"name": domain, "registry": "jprs_generic", "dns_operation": "monthly"}],
    });
    if service != "www" {
        c["secure_mx"] = json!({
            "target_domains": [domain],
            "target_ips": ["203.0.113.25"],
            "administrator": {"name": "Admin", "email": format!("admin@{domain}")},
            "mailboxes": mailboxes,
        });
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn every_spec_of_an_accepted_contract_passes_its_adapter(
        id in "[A-Z][A-Z0-9-]{2,31}",
        service in prop::sample::select(vec!["www", "pack_secure_mx", "mail_secure_mx"]),
        ftp_extra in 0u32..4,
        label in "[a-z0-9][a-z0-9-]{0,20}[a-z0-9]",
        suffix in prop::sample::select(vec!["jp", "co.jp", "example", "com"]),
        mailboxes in prop::collection::vec("[a-z0-9._+-]{1,12}", 0..6),
    ) {
        let p = planner();
        let domain = format!("{label}.{suffix}");
        let mut mailboxes = mailboxes;
        mailboxes.sort();
        mailboxes.dedup();
        let doc = contract(&id, service, ftp_extra, &domain, &mailboxes);
        if let Some(resources) = accepted(&p, &doc) {
            prop_assert!(!resources.is_empty());
            for d in &resources {
                prop_assert!(adapter_accepts(d).is_ok(), "{:?}", adapter_accepts(d));
            }
        }
    }
}

#[test]
fn the_known_cases_are_refused_at_intake() {
    let p = planner();
    for bad in ["-info", "a..b"] {
        let doc = contract(
            "C-MBX",
            "mail_secure_mx",
            0,
            "mbx.jp",
            &["info".into(), bad.into()],
        );
        assert!(accepted(&p, &doc).is_none(), "mailbox {bad:?} accepted");
    }
    // 31 and 32 characters, with the included and two extra FTP accounts.
    for id in [
        "C-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
        "C-ABCDEFGHIJKLMNOPQRSTUVWXYZ012",
    ] {
        let doc = contract(id, "www", 2, "long.jp", &[]);
        assert!(accepted(&p, &doc).is_none(), "{id} ({}) accepted", id.len());
    }
    // A generous control: the same with a short id passes and plans.
    let doc = contract("C-OK", "www", 2, "long.jp", &[]);
    let resources = accepted(&p, &doc).expect("accepted");
    for d in &resources {
        adapter_accepts(d).unwrap();
    }
}
