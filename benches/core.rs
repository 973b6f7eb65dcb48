//! Core throughput (criterion): signed contracts verified and checked against
//! the terms' rules, and monthly statements. `scripts/bench` runs this and
//! `hostwright-bench` turns the mean times into per-second figures.
//! Targets (printed, never asserted): 20,000 contracts/s verified + checked,
//! 100,000 statements/s.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hostwright::calendar::YearMonth;
use hostwright::catalog::Catalog;
use hostwright::contract::Contract;
use hostwright::signing::{self, TrustedKeys};
use hostwright::{billing, rules};

/// A WWW contract with SSL hosting and an extra FTP account.
fn contract_json() -> serde_json::Value {
    serde_json::json!({
        "contract_id": "C-2001",
        "revision": 1,
        "requested_on": "2026-11-01",
        "customer": {
            "id": "CU-2001", "kind": "corporation", "name": "Example K.K.",
            "legal_capacity": "adult", "guardian_consent": false
        },
        "service": "www",
        "service_start": "2026-12-01",
        "status": {"state": "active"},
        "options": [
            {"item": "ssl_hosting", "quantity": 1, "effective": "2026-12-01", "quoted_initial": "15000"},
            {"item": "ftp_account_extra", "quantity": 1, "effective": "2026-12-01"}
        ],
        "domains": [
            {"name": "example.jp", "registry": "jprs_attribute", "dns_operation": "monthly"}
        ],
        "external": {}
    })
}

fn core(c: &mut Criterion) {
    let catalog = Catalog::builtin().expect("builtin catalog");
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let trusted = TrustedKeys::from_toml(&format!(
        "[[key]]\nid = \"bench\"\npublic_key = \"{}\"\nnot_before = \"2020-01-01T00:00:00Z\"\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            key.verifying_key().as_bytes()
        )
    ))
    .expect("trusted keys");
    let payload = serde_json::to_vec_pretty(&contract_json()).unwrap();
    let envelope = signing::sign(&payload, "bench", &key);
    let now = Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap();

    // The benchmark must measure the success path: prove it once.
    let v = signing::verify(&envelope, &trusted, now).expect("envelope verifies");
    let findings = rules::check(&rules::CheckInput {
        contract: &v.contract,
        previous: None,
        others: &[],
        catalog: &catalog,
    });
    assert!(
        findings.is_empty(),
        "benchmark contract is refused: {findings:?}"
    );

    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_and_check", |b| {
        b.iter(|| {
            let v = signing::verify(black_box(&envelope), &trusted, now).unwrap();
            let f = rules::check(&rules::CheckInput {
                contract: &v.contract,
                previous: None,
                others: &[],
                catalog: &catalog,
            });
            black_box(f)
        })
    });

    let history: Vec<Contract> = vec![Contract::from_json(&payload).unwrap()];
    let month = YearMonth {
        year: 2027,
        month: 1,
    };
    let st = billing::statement(&history, &catalog, month).expect("statement");
    black_box(&st);
    g.bench_function("monthly_statement", |b| {
        b.iter(|| black_box(billing::statement(black_box(&history), &catalog, month).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
