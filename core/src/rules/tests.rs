//! Every rule of `check`: at least one contract that passes it and one that
//! fails it with its rule id and article. Contracts start from a valid base
//! and are mutated one thing at a time.

use super::*;
use crate::calendar::is_business_day;
use crate::contract::{
    Administrator, CustomerKind, DnsOperation, Domain, OneTime, OneTimeItem, OptionLine,
    RegistryClass, SecureMx, ServiceType,
};
use rust_decimal_macros::dec;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn cat() -> Catalog {
    Catalog::builtin().unwrap()
}

/// A valid WWW contract: requested 2026-11-10, starting 2026-12-01.
fn www() -> Contract {
    Contract::from_json(
        br#"{
        "contract_id": "C-1001", "revision": 1, "requested_on": "2026-11-10",
        "customer": {"id": "CU-0001", "kind": "corporation", "name": "Sakura Trading K.K."},
        "service": "www", "service_start": "2026-12-01", "status": {"state": "active"},
        "options": [
            {"item": "ssl_hosting", "quantity": 1, "effective": "2026-12-01", "quoted_initial": "15000"},
            {"item": "ftp_account_extra", "quantity": 2, "effective": "2026-12-01"}
        ],
        "domains": [{"name": "sakura-trading.co.jp", "registry": "jprs_attribute", "custody": true, "dns_operation": "monthly"}]
    }"#,
    )
    .unwrap()
}

/// A valid Secure MX contract (10 base accounts + 5 extra, 15 mailboxes allowed).
fn mx() -> Contract {
    Contract::from_json(
        br#"{
        "contract_id": "C-2001", "revision": 1, "requested_on": "2026-11-10",
        "customer": {"id": "CU-0002", "kind": "corporation", "name": "Kaede Design LLC"},
        "service": "mail_secure_mx", "service_start": "2026-12-01", "status": {"state": "active"},
        "options": [
            {"item": "mx_account_extra", "quantity": 5, "effective": "2026-12-01"},
            {"item": "mx_disk_extra", "quantity": 2, "effective": "2026-12-01"},
            {"item": "mx_mailing_list", "quantity": 1, "effective": "2026-12-01", "quoted_monthly": "100"}
        ],
        "domains": [{"name": "kaede-design.jp", "registry": "jprs_generic", "dns_operation": "yearly"}],
        "secure_mx": {
            "target_domains": ["kaede-design.jp"], "target_ips": ["203.0.113.25"],
            "administrator": {"name": "Yamada Hanako", "email": "it-admin@kaede-design.jp"},
            "mailboxes": ["info", "sales"]
        }
    }"#,
    )
    .unwrap()
}

fn secure_mx_section(domain: &str) -> SecureMx {
    SecureMx {
        target_domains: vec![domain.into()],
        target_ips: vec!["203.0.113.9".parse().unwrap()],
        administrator: Administrator {
            name: "Admin".into(),
            email: format!("admin@{domain}"),
        },
        mailboxes: vec!["info".into()],
    }
}

/// The next revision of `c`, requested on `on`.
fn next(c: &Contract, on: NaiveDate) -> Contract {
    let mut n = c.clone();
    n.revision += 1;
    n.requested_on = on;
    n
}

fn line(item: OptionItem, quantity: u32, effective: NaiveDate) -> OptionLine {
    OptionLine {
        item,
        quantity,
        effective: Some(effective),
        quoted_monthly: None,
        quoted_initial: None,
    }
}

fn run_with(
    c: &Contract,
    previous: Option<&Contract>,
    others: &[OtherContract],
    catalog: &Catalog,
) -> Vec<Finding> {
    check(&CheckInput {
        contract: c,
        previous,
        others,
        catalog,
    })
}

fn run(c: &Contract, previous: Option<&Contract>) -> Vec<Finding> {
    run_with(c, previous, &[], &cat())
}

fn ids(f: &[Finding]) -> Vec<&'static str> {
    f.iter().map(|f| f.rule).collect()
}

#[track_caller]
fn assert_clean(c: &Contract, previous: Option<&Contract>) {
    let f = run(c, previous);
    assert!(f.is_empty(), "expected no findings, got {f:#?}");
}

/// Exactly one finding, with this rule, an article containing `article` and this path.
#[track_caller]
fn assert_only(f: &[Finding], rule: &str, article: &str, path: &str) {
    assert_eq!(
        f.len(),
        1,
        "expected exactly one `{rule}` finding, got {f:#?}"
    );
    assert_eq!(f[0].rule, rule, "{f:#?}");
    assert!(
        f[0].article.contains(article),
        "article `{}` should contain `{article}`",
        f[0].article
    );
    assert_eq!(f[0].path, path, "{f:#?}");
    assert!(!f[0].message.is_empty());
}

/// At least one finding of `rule` citing `article`.
#[track_caller]
fn assert_has(f: &[Finding], rule: &str, article: &str) {
    assert!(
        f.iter()
            .any(|x| x.rule == rule && x.article.contains(article)),
        "expected a `{rule}` finding citing `{article}`, got {f:#?}"
    );
}

#[test]
fn the_bases_are_clean() {
    assert_clean(&www(), None);
    assert_clean(&mx(), None);
    assert_eq!(judged_on(&www()), d(2026, 11, 10));
}

// --- revisions and the party ------------------------------------------------------------

#[test]
fn revision_increasing() {
    let p = www();
    assert_clean(&next(&p, d(2026, 11, 20)), Some(&p));
    let mut c = next(&p, d(2026, 11, 20));
    c.revision = p.revision;
    assert_only(&run(&c, Some(&p)), "revision-increasing", "—", "/revision");
}

#[test]
fn revision_jump() {
    let p = www();
    let mut c = next(&p, d(2026, 11, 20));
    c.revision = p.revision + MAX_REVISION_STEP;
    assert_clean(&c, Some(&p));
    c.revision += 1;
    assert_only(&run(&c, Some(&p)), "revision-jump", "—", "/revision");
    // The first revision of a contract may start anywhere up to the cap.
    c.revision = crate::contract::MAX_REVISION;
    assert_clean(&c, None);
}

#[test]
fn one_party() {
    let p = www();
    let mut c = next(&p, d(2026, 11, 20));
    c.customer.name = "Sakura Trading Co., Ltd.".into(); // 第19条: a name change is fine
    assert_clean(&c, Some(&p));
    c.customer.id = "CU-0099".into();
    assert_only(&run(&c, Some(&p)), "one-party", "第16条", "/customer");
    let mut c = next(&p, d(2026, 11, 20));
    c.customer.kind = CustomerKind::Individual;
    assert_only(&run(&c, Some(&p)), "one-party", "第11条2項", "/customer");
}

#[test]
fn terminated_is_final() {
    let mut p = www();
    p.status = Status::terminated(d(2027, 3, 31), d(2027, 2, 1));
    let mut c = next(&p, d(2027, 2, 2));
    c.status = Status::Active;
    assert_only(
        &run(&c, Some(&p)),
        "terminated-is-final",
        "第25条",
        "/status",
    );
    // A later revision after an active one is fine.
    assert_clean(&next(&www(), d(2027, 2, 2)), Some(&www()));
}

#[test]
fn service_start_fixed() {
    let p = www();
    let mut c = next(&p, d(2026, 11, 20));
    c.service_start = d(2026, 12, 2);
    assert_only(
        &run(&c, Some(&p)),
        "service-start-fixed",
        "第12条",
        "/service_start",
    );
}

#[test]
fn one_contract_per_service() {
    let c = www();
    let other = |id: &str, service: &str, active: bool| OtherContract {
        contract_id: id.into(),
        service: service.into(),
        active,
    };
    let ok = [
        other("C-1001", "www", true),
        other("C-2001", "mail_secure_mx", true),
        other("C-0500", "www", false),
    ];
    assert!(run_with(&c, None, &ok, &cat()).is_empty());
    let f = run_with(&c, None, &[other("C-0900", "www", true)], &cat());
    assert_only(&f, "one-contract-per-service", "第11条1項", "/service");
}

// --- 第13条 consent ------------------------------------------------------------------------

#[test]
fn consent_required_for_minors_wards_and_curatorship() {
    for (cap, article) in [
        (LegalCapacity::Minor, "第13条2項"),
        (LegalCapacity::AdultWard, "第13条3項"),
        (LegalCapacity::PersonUnderCuratorship, "第13条3項"),
    ] {
        let mut c = www();
        c.customer.kind = CustomerKind::Individual;
        c.customer.legal_capacity = cap;
        assert_only(
            &run(&c, None),
            "consent-required",
            article,
            "/customer/guardian_consent",
        );
        c.customer.guardian_consent = true;
        assert_clean(&c, None);
    }
}

#[test]
fn legal_capacity_is_for_individuals() {
    let mut c = www();
    c.customer.legal_capacity = LegalCapacity::Minor;
    c.customer.guardian_consent = true;
    assert_only(
        &run(&c, None),
        "legal-capacity",
        "第13条",
        "/customer/legal_capacity",
    );
}

// --- 第5条 lifecycle -------------------------------------------------------------------------

fn legacy(service: ServiceType, requested: NaiveDate, start: NaiveDate) -> Contract {
    let mut c = www();
    c.service = service;
    c.requested_on = requested;
    c.service_start = start;
    c.options.clear();
    if !service.has_web() {
        c.domains.clear();
    }
    if service.has_secure_mx() {
        c.secure_mx = Some(secure_mx_section("sakura-trading.co.jp"));
    }
    c
}

#[test]
fn legacy_services_closed_to_new_applications() {
    for st in [
        ServiceType::MailStandard,
        ServiceType::MailSecure,
        ServiceType::PackStandard,
        ServiceType::PackSecure,
    ] {
        // Applied on the last day: accepted.
        assert_clean(&legacy(st, d(2023, 4, 30), d(2023, 5, 1)), None);
        // The day after: refused.
        let f = run(&legacy(st, d(2023, 5, 1), d(2023, 6, 1)), None);
        assert_only(&f, "service-closed-to-new", "第5条", "/service");
    }
    // ミニパック closed a month earlier (※4).
    assert_clean(
        &legacy(ServiceType::MiniPack, d(2023, 3, 30), d(2023, 3, 30)),
        None,
    );
    let f = run(
        &legacy(ServiceType::MiniPack, d(2023, 3, 31), d(2023, 4, 1)),
        None,
    );
    assert_only(&f, "service-closed-to-new", "※4", "/service");
}

#[test]
fn changing_to_a_closed_service_is_refused() {
    let p = www();
    let mut c = next(&p, d(2026, 11, 20));
    c.service = ServiceType::PackStandard;
    c.service_change = Some(change(ServiceType::Www, d(2026, 12, 15)));
    assert_has(&run(&c, Some(&p)), "service-closed-to-new", "第5条");
    // Changing *to* an open service is fine.
    let mut c = next(&p, d(2026, 11, 20));
    c.service = ServiceType::PackSecureMx;
    c.service_change = Some(change(ServiceType::Www, d(2026, 12, 15)));
    c.secure_mx = Some(secure_mx_section("sakura-trading.co.jp"));
    assert_clean(&c, Some(&p));
}

#[test]
fn legacy_services_closed_to_option_changes() {
    let p = legacy(ServiceType::PackSecure, d(2023, 1, 10), d(2023, 2, 1));
    // Before the closing date a change is accepted.
    let mut c = next(&p, d(2023, 4, 1));
    c.options
        .push(line(OptionItem::FtpAccountExtra, 1, d(2023, 4, 15)));
    assert_clean(&c, Some(&p));
    // After it, refused.
    let mut c = next(&p, d(2023, 5, 2));
    c.options
        .push(line(OptionItem::FtpAccountExtra, 1, d(2023, 6, 1)));
    assert_only(
        &run(&c, Some(&p)),
        "service-closed-to-change",
        "第5条",
        "/options/0",
    );
}

#[test]
fn legacy_services_ended_on_2024_03_30() {
    let p = legacy(ServiceType::MailSecure, d(2022, 1, 10), d(2022, 2, 1));
    // A revision on the last day is judged as before.
    assert_clean(&next(&p, d(2024, 3, 30)), Some(&p));
    // After it, a revision can only record the end (第25条3項).
    let c = next(&p, d(2024, 3, 31));
    assert_only(&run(&c, Some(&p)), "service-ended", "第25条3項", "/status");
    // ... on or before the abolition day: as 第25条3項 says, or as the
    // customer's notice had it.
    let mut c = next(&p, d(2024, 4, 10));
    c.status = abolished(d(2024, 3, 30), d(2023, 3, 30));
    assert_clean(&c, Some(&p));
    c.status = Status::terminated(d(2024, 2, 29), d(2024, 1, 31));
    assert_clean(&c, Some(&p));
    // Not after it: the contract had ended.
    c.status = Status::terminated(d(2024, 5, 31), d(2024, 4, 10));
    assert_only(
        &run(&c, Some(&p)),
        "service-ended",
        "第25条3項",
        "/status/effective",
    );
}

#[test]
fn mini_pack_continues_with_secure_mx_mail() {
    // 第5条 注: held on 2023-03-30, it may continue with its mail on Secure MX.
    let p = legacy(ServiceType::MiniPack, d(2022, 6, 1), d(2022, 7, 1));
    assert_clean(&next(&p, d(2026, 11, 10)), Some(&p));
    // ... and change its Secure MX options (with notice).
    let mut c = next(&p, d(2026, 11, 10));
    c.options
        .push(line(OptionItem::MxAccountExtra, 2, d(2026, 12, 1)));
    assert_clean(&c, Some(&p));
    // ... but not its other options.
    let mut c = next(&p, d(2026, 11, 10));
    c.options
        .push(line(OptionItem::FtpAccountExtra, 1, d(2026, 12, 1)));
    assert_only(
        &run(&c, Some(&p)),
        "service-closed-to-change",
        "※4",
        "/options/0",
    );
    // Without Secure MX mail it cannot continue after 2024-03-30.
    let mut c = next(&p, d(2026, 11, 10));
    c.secure_mx = None;
    let f = run(&c, Some(&p));
    assert_has(&f, "service-ended", "第5条 注");
    assert!(
        f.iter()
            .any(|x| x.rule == "service-ended" && x.path == "/secure_mx"),
        "{f:#?}"
    );
    // Not held on 2023-03-30: no exception. (Applied for on 03-20 and so accepted,
    // but the service only started on 04-01: the code keys the exception on the
    // service start date.)
    let late = legacy(ServiceType::MiniPack, d(2023, 3, 20), d(2023, 4, 1));
    assert_clean(&late, None);
    let f = run(&next(&late, d(2026, 11, 10)), Some(&late));
    assert_only(&f, "service-ended", "第5条", "/status");
}

#[test]
fn legacy_options_closed_to_new() {
    // A legacy option added after 2023-04-30 (on a contract still in its grace period).
    let p = legacy(ServiceType::PackSecure, d(2023, 1, 10), d(2023, 2, 1));
    let mut c = next(&p, d(2023, 5, 2));
    c.options
        .push(line(OptionItem::MailAccountExtraSecure, 1, d(2023, 6, 1)));
    let f = run(&c, Some(&p));
    assert_has(&f, "option-closed-to-new", "別表③2");
    // Added before the date: accepted.
    let mut c = next(&p, d(2023, 4, 10));
    c.options
        .push(line(OptionItem::MailAccountExtraSecure, 1, d(2023, 4, 30)));
    assert_clean(&c, Some(&p));
    // 迷惑メールスキャン設定 (※6): a one-time item closed 2023-04-30.
    let mut c = www();
    c.one_time.push(OneTime {
        item: OneTimeItem::SpamScanSetting,
        date: d(2023, 5, 1),
        quantity: 1,
        domain: None,
        primary_and_secondary: false,
    });
    assert_only(&run(&c, None), "option-closed-to-new", "※6", "/one_time/0");
    c.one_time[0].date = d(2023, 4, 30);
    assert_clean(&c, None);
}

// --- 第6条 options ---------------------------------------------------------------------------

#[test]
fn option_listed_once() {
    let mut c = www();
    c.options
        .push(line(OptionItem::FtpAccountExtra, 1, d(2026, 12, 1)));
    assert_only(
        &run(&c, None),
        "option-listed-once",
        "第6条1項",
        "/options/2",
    );
}

#[test]
fn option_in_catalog() {
    // A catalog without the IPS row: the contract model knows it, the catalog not.
    let start = crate::catalog::BUILTIN
        .find("[[option]]\ncode = \"ips\"")
        .unwrap();
    let end = start + crate::catalog::BUILTIN[start..].find("# ---").unwrap();
    let text = format!(
        "{}{}",
        &crate::catalog::BUILTIN[..start],
        &crate::catalog::BUILTIN[end..]
    );
    let catalog = Catalog::parse(&text).unwrap();
    assert!(run_with(&www(), None, &[], &catalog).is_empty());
    let mut c = www();
    c.options.push(line(OptionItem::Ips, 1, d(2026, 12, 1)));
    assert!(run_with(&c, None, &[], &cat()).is_empty());
    let f = run_with(&c, None, &[], &catalog);
    assert_only(&f, "option-in-catalog", "第6条1項", "/options/2");
}

#[test]
fn option_service_type() {
    // 第6条2項: SSL cannot be held with a mail-only service, nor alone.
    let mut c = mx();
    c.options.push(OptionLine {
        quoted_initial: Some(dec!(0)),
        ..line(OptionItem::SslHosting, 1, d(2026, 12, 1))
    });
    assert_only(
        &run(&c, None),
        "option-service-type",
        "第6条2項",
        "/options/3",
    );
    // A Secure MX option on WWW.
    let mut c = www();
    c.options
        .push(line(OptionItem::MxAccountExtra, 1, d(2026, 12, 1)));
    assert_only(
        &run(&c, None),
        "option-service-type",
        "第6条1項",
        "/options/2",
    );
    // Quantity 0 (a cancelled line) is not held.
    c.options[2].quantity = 0;
    assert_clean(&c, None);
}

#[test]
fn option_quantity() {
    let mut c = www();
    c.options[0].quantity = 2; // SSL: at most one
    assert_only(
        &run(&c, None),
        "option-quantity",
        "別表③1",
        "/options/0/quantity",
    );
    // The 99 FTP accounts are our operational limit, not a term: its own rule,
    // and an article that says so.
    let mut c = www();
    c.options[1].quantity = 99;
    assert_clean(&c, None);
    c.options[1].quantity = 100;
    let f = run(&c, None);
    assert_only(&f, "operational-limit", "not a term", "/options/1/quantity");
    assert!(!f[0].article.contains("別表"), "{f:?}");
}

#[test]
fn option_requires_option() {
    // 追加 SSL サーバ容量 needs the SSL option.
    let mut c = www();
    c.options
        .push(line(OptionItem::SslDiskExtra, 1, d(2026, 12, 1)));
    assert_clean(&c, None);
    c.options.remove(0);
    assert_only(
        &run(&c, None),
        "option-requires-option",
        "別表③1",
        "/options/1",
    );
}

#[test]
fn quoted_price_required() {
    // SSL's デジタル ID 申請料 is 実費: the agreed amount is needed.
    let mut c = www();
    c.options[0].quoted_initial = None;
    assert_only(
        &run(&c, None),
        "quoted-price-required",
        "別表③1",
        "/options/0/quoted_initial",
    );
    // The mailing list option's metered lists are quoted monthly.
    let mut c = mx();
    c.options[2].quoted_monthly = None;
    assert_only(
        &run(&c, None),
        "quoted-price-required",
        "※13",
        "/options/2/quoted_monthly",
    );
    // WEB ディテクト is priced by its own terms.
    let mut c = www();
    c.options
        .push(line(OptionItem::WebDetect100, 1, d(2026, 12, 1)));
    assert_only(
        &run(&c, None),
        "quoted-price-required",
        "第52条",
        "/options/2/quoted_monthly",
    );
    c.options[2].quoted_monthly = Some(dec!(2000));
    assert_clean(&c, None);
}

#[test]
fn whole_yen() {
    let mut c = www();
    c.options[0].quoted_initial = Some(dec!(15000.5));
    assert_only(
        &run(&c, None),
        "whole-yen",
        "第28条3項",
        "/options/0/quoted_initial",
    );
    let mut c = mx();
    c.options[2].quoted_monthly = Some(dec!(-100));
    assert_only(
        &run(&c, None),
        "whole-yen",
        "第28条3項",
        "/options/2/quoted_monthly",
    );
    c.options[2].quoted_monthly = Some(dec!(0));
    assert_clean(&c, None);
}

// --- 第6条3項, 第8条, 第9条: Secure MX -------------------------------------------------------

#[test]
fn securemx_option_prerequisite() {
    // (1)(2) Mailbox Plus is part of the Secure MX basic service: fine with mail_secure_mx.
    let mut c = mx();
    c.options.push(OptionLine {
        quoted_monthly: Some(dec!(500)),
        ..line(OptionItem::MxPrivateRelay, 1, d(2026, 12, 1))
    });
    assert_clean(&c, None);
    // (3) IIJ ID 連携 needs an IIJ ID subscription.
    let mut c = mx();
    c.options
        .push(line(OptionItem::MxIijIdLink, 1, d(2026, 12, 1)));
    assert_only(
        &run(&c, None),
        "securemx-option-prerequisite",
        "第6条3項(3)",
        "/options/3",
    );
    c.external.iij_id = Some("   ".into());
    assert_only(
        &run(&c, None),
        "securemx-option-prerequisite",
        "第6条3項(3)",
        "/options/3",
    );
    c.external.iij_id = Some("IIJ-ID-123".into());
    assert_clean(&c, None);
    // (4) DOX 連携 needs an IIJ DOX subscription.
    let mut c = mx();
    c.options
        .push(line(OptionItem::MxDoxLink, 1, d(2026, 12, 1)));
    assert_only(
        &run(&c, None),
        "securemx-option-prerequisite",
        "第6条3項(4)",
        "/options/3",
    );
    c.external.dox = Some("DOX-9".into());
    assert_clean(&c, None);
    // (1) on a service without Secure MX: no Mailbox Plus (and the wrong service type).
    let mut c = www();
    c.options.push(OptionLine {
        quoted_monthly: Some(dec!(100)),
        ..line(OptionItem::MxMailingList, 1, d(2026, 12, 1))
    });
    let f = run(&c, None);
    assert_has(&f, "securemx-option-prerequisite", "第6条3項");
    assert_has(&f, "option-service-type", "第6条");
    assert_eq!(f.len(), 2, "{f:#?}");
}

#[test]
fn securemx_targets() {
    let mut c = mx();
    c.secure_mx.as_mut().unwrap().target_domains.clear();
    assert_only(
        &run(&c, None),
        "securemx-targets",
        "第8条1項",
        "/secure_mx/target_domains",
    );
    let mut c = mx();
    c.secure_mx.as_mut().unwrap().target_ips.clear();
    assert_only(
        &run(&c, None),
        "securemx-targets",
        "第8条1項",
        "/secure_mx/target_ips",
    );
    let mut c = mx();
    c.secure_mx
        .as_mut()
        .unwrap()
        .target_domains
        .push("kaede-design.jp".into());
    assert_only(
        &run(&c, None),
        "securemx-targets",
        "第8条2項",
        "/secure_mx/target_domains/1",
    );
    for ip in ["127.0.0.1", "0.0.0.0", "224.0.0.1", "::1"] {
        let mut c = mx();
        c.secure_mx
            .as_mut()
            .unwrap()
            .target_ips
            .push(ip.parse().unwrap());
        assert_only(
            &run(&c, None),
            "securemx-targets",
            "第8条1項",
            "/secure_mx/target_ips/1",
        );
    }
    let mut c = mx();
    c.secure_mx
        .as_mut()
        .unwrap()
        .target_ips
        .push("2001:db8::25".parse().unwrap());
    assert_clean(&c, None);
}

#[test]
fn securemx_section_missing_names_targets_and_administrator() {
    let mut c = mx();
    c.secure_mx = None;
    let f = run(&c, None);
    assert_eq!(
        ids(&f),
        ["securemx-targets", "securemx-administrator"],
        "{f:#?}"
    );
    assert_eq!(f[0].article, "第8条1項");
    assert_eq!(f[1].article, "第9条1項");
}

#[test]
fn securemx_administrator() {
    let mut c = mx();
    c.secure_mx.as_mut().unwrap().administrator.name = "  ".into();
    assert_only(
        &run(&c, None),
        "securemx-administrator",
        "第9条1項",
        "/secure_mx/administrator/name",
    );
}

#[test]
fn securemx_section() {
    let mut c = www();
    c.secure_mx = Some(secure_mx_section("sakura-trading.co.jp"));
    c.secure_mx.as_mut().unwrap().mailboxes.clear(); // (www has no mail accounts either)
    assert_only(&run(&c, None), "securemx-section", "第8条", "/secure_mx");
}

#[test]
fn securemx_mailboxes() {
    let mut c = mx();
    c.secure_mx.as_mut().unwrap().mailboxes.push("info".into());
    assert_only(
        &run(&c, None),
        "securemx-mailboxes",
        "第8条2項",
        "/secure_mx/mailboxes/2",
    );
}

// --- quotas ----------------------------------------------------------------------------------

#[test]
fn quota_mail_accounts() {
    // mail_secure_mx: 10 base accounts (別表②1) + 5 added (別表③ ① 注1) = 15.
    let mut c = mx();
    let mbs = &mut c.secure_mx.as_mut().unwrap().mailboxes;
    mbs.clear();
    mbs.extend((0..15).map(|i| format!("user{i}")));
    assert_clean(&c, None);
    c.secure_mx
        .as_mut()
        .unwrap()
        .mailboxes
        .push("user15".into());
    assert_only(
        &run(&c, None),
        "quota-mail-accounts",
        "別表②1",
        "/secure_mx/mailboxes",
    );
    // Without extra accounts only 10.
    let mut c = mx();
    c.options.remove(0);
    c.secure_mx.as_mut().unwrap().mailboxes = (0..11).map(|i| format!("user{i}")).collect();
    assert_only(
        &run(&c, None),
        "quota-mail-accounts",
        "別表③ セキュア MX ① 注1",
        "/secure_mx/mailboxes",
    );
}

#[test]
fn not_reducible() {
    // 別表③ ① 注2: added Secure MX disk cannot be reduced.
    let p = mx();
    let mut c = next(&p, d(2026, 12, 1));
    c.options[1].quantity = 3;
    c.options[1].effective = Some(d(2026, 12, 2)); // notice exempt: next day is fine
    assert_clean(&c, Some(&p));
    let mut c = next(&p, d(2026, 12, 1));
    c.options[1].quantity = 1;
    c.options[1].effective = Some(d(2027, 3, 1));
    assert_only(&run(&c, Some(&p)), "not-reducible", "注2", "/options/1");
}

// --- 第17条 notice periods ---------------------------------------------------------------

#[test]
fn option_change_date() {
    let p = www();
    let mut c = next(&p, d(2027, 1, 5));
    c.options[1].quantity = 3;
    c.options[1].effective = None;
    assert_only(
        &run(&c, Some(&p)),
        "option-change-date",
        "第17条",
        "/options/1/effective",
    );
}

#[test]
fn option_change_notice_is_two_weeks() {
    // 第17条1項: 契約変更希望日の2週間前までに.
    let p = www();
    let mut c = next(&p, d(2027, 1, 5));
    c.options[1].quantity = 3;
    c.options[1].effective = Some(d(2027, 1, 19)); // exactly 14 days later
    assert_clean(&c, Some(&p));
    c.options[1].effective = Some(d(2027, 1, 18)); // 13 days
    assert_only(
        &run(&c, Some(&p)),
        "option-change-notice",
        "第17条1項",
        "/options/1/effective",
    );
    // A new option counts the same way.
    let mut c = next(&p, d(2027, 1, 5));
    c.options
        .push(line(OptionItem::AccessLog, 1, d(2027, 1, 10)));
    assert_only(
        &run(&c, Some(&p)),
        "option-change-notice",
        "第17条1項",
        "/options/2/effective",
    );
}

#[test]
fn option_cancellation_date_is_the_first() {
    // 第17条2項: オプションサービスの解約日を毎月1日.
    let p = www();
    let mut c = next(&p, d(2027, 1, 5));
    c.options[1].quantity = 0;
    c.options[1].effective = Some(d(2027, 4, 1));
    assert_clean(&c, Some(&p));
    c.options[1].effective = Some(d(2027, 4, 2));
    assert_only(
        &run(&c, Some(&p)),
        "option-cancellation-date",
        "第17条2項",
        "/options/1/effective",
    );
}

#[test]
fn option_cancellation_notice_by_end_of_month_before_last() {
    // 第17条2項: 解約希望日の属する月の前々月末日までに. Cancelling on 2027-04-01:
    // request by 2027-02-28.
    let p = www();
    let mut c = next(&p, d(2027, 2, 28));
    c.options[1].quantity = 1;
    c.options[1].effective = Some(d(2027, 4, 1));
    assert_clean(&c, Some(&p));
    c.requested_on = d(2027, 3, 1);
    assert_only(
        &run(&c, Some(&p)),
        "option-cancellation-notice",
        "第17条2項",
        "/options/1/effective",
    );
    // Across the year: cancelling on 2027-02-01 needs a request by 2026-12-31.
    let mut c = next(&p, d(2026, 12, 31));
    c.options[1].quantity = 0;
    c.options[1].effective = Some(d(2027, 2, 1));
    assert_clean(&c, Some(&p));
    c.requested_on = d(2027, 1, 1);
    assert_only(
        &run(&c, Some(&p)),
        "option-cancellation-notice",
        "第17条2項",
        "/options/1/effective",
    );
}

// --- 第20条 / 第25条 status ---------------------------------------------------------------

#[test]
fn suspension_reason() {
    let p = www();
    let mut c = next(&p, d(2027, 1, 20));
    c.status = Status::Suspended {
        since: d(2027, 1, 20),
        reason: "料金未払い (第20条1項1号)".into(),
    };
    assert_clean(&c, Some(&p));
    c.status = Status::Suspended {
        since: d(2027, 1, 20),
        reason: " ".into(),
    };
    assert_only(
        &run(&c, Some(&p)),
        "suspension-reason",
        "第20条2項",
        "/status/reason",
    );
}

fn change(from: ServiceType, effective: NaiveDate) -> crate::contract::ServiceChange {
    crate::contract::ServiceChange { from, effective }
}

fn abolished(effective: NaiveDate, notified_on: NaiveDate) -> Status {
    let mut t = crate::contract::Termination::notice(effective, notified_on);
    t.ground = crate::contract::TerminationGround::ServiceTypeAbolished;
    Status::Terminated(t)
}

fn terminate(p: &Contract, effective: NaiveDate, notified_on: NaiveDate) -> Contract {
    let mut c = next(p, notified_on);
    c.status = Status::terminated(effective, notified_on);
    c
}

#[test]
fn termination_month_end() {
    let p = www();
    assert_clean(&terminate(&p, d(2027, 3, 31), d(2027, 2, 1)), Some(&p));
    let c = terminate(&p, d(2027, 3, 30), d(2027, 2, 1));
    assert_only(
        &run(&c, Some(&p)),
        "termination-month-end",
        "第25条1項",
        "/status/effective",
    );
    // Not before the service starts (2026-12-01).
    let mut p2 = www();
    p2.service_start = d(2027, 2, 1);
    let c = terminate(&p2, d(2027, 1, 31), d(2026, 12, 1));
    assert_only(
        &run(&c, Some(&p2)),
        "termination-date",
        "第25条1項",
        "/status/effective",
    );
}

#[test]
fn termination_notice_moves_back_to_a_business_day() {
    let p = www();
    // Ending 2027-03-31: notice by 2027-02-28, a Sunday, so by Friday 02-26.
    assert_eq!(is_business_day(d(2027, 2, 28)), Ok(false));
    assert_clean(&terminate(&p, d(2027, 3, 31), d(2027, 2, 26)), Some(&p));
    let c = terminate(&p, d(2027, 3, 31), d(2027, 2, 27));
    assert_only(
        &run(&c, Some(&p)),
        "termination-notice",
        "第25条1項",
        "/status/notified_on",
    );
    // Ending 2027-01-31: notice by 2026-12-31, in the year-end closure (12/29-1/3),
    // so by Monday 2026-12-28.
    assert_clean(&terminate(&p, d(2027, 1, 31), d(2026, 12, 28)), Some(&p));
    let c = terminate(&p, d(2027, 1, 31), d(2026, 12, 29));
    assert_only(
        &run(&c, Some(&p)),
        "termination-notice",
        "第25条1項",
        "/status/notified_on",
    );
    // Ending 2026-12-31: 2026-11-30 is a Monday and a business day.
    assert_clean(&terminate(&p, d(2026, 12, 31), d(2026, 11, 30)), Some(&p));
    let c = terminate(&p, d(2026, 12, 31), d(2026, 12, 1));
    assert_only(
        &run(&c, Some(&p)),
        "termination-notice",
        "第25条1項",
        "/status/notified_on",
    );
}

#[test]
fn business_days_skip_japanese_holidays() {
    use crate::calendar::business_day_on_or_before;
    // 勤労感謝の日 2026-11-23 is a Monday: the business day on or before it is Friday 11-20.
    assert_eq!(is_business_day(d(2026, 11, 23)), Ok(false));
    assert_eq!(
        business_day_on_or_before(d(2026, 11, 23)),
        Ok(d(2026, 11, 20))
    );
    // Golden week 2026: 05-06 (振替休日) back to Friday 05-01 (04-29 is a holiday too,
    // but 04-30 and 05-01 are business days).
    assert_eq!(business_day_on_or_before(d(2026, 5, 6)), Ok(d(2026, 5, 1)));
    // 2027-01-03 (closure) and 2027-01-01 (元日) back to Monday 2026-12-28.
    assert_eq!(
        business_day_on_or_before(d(2027, 1, 3)),
        Ok(d(2026, 12, 28))
    );
    assert_eq!(is_business_day(d(2027, 1, 4)), Ok(true));
}

#[test]
fn early_termination_within_the_minimum_period_is_allowed() {
    // 第25条1項 ただし書: the minimum period does not forbid ending (第33条 bills it).
    let p = www();
    assert_clean(&terminate(&p, d(2026, 12, 31), d(2026, 11, 20)), Some(&p));
}

// --- 第5条 domains ---------------------------------------------------------------------------

#[test]
fn domain_required() {
    let mut c = www();
    c.domains.clear();
    assert_only(&run(&c, None), "domain-required", "第5条", "/domains");
    // A mail-only service needs none in /domains (its targets are in secure_mx).
    let mut c = mx();
    c.domains.clear();
    assert_clean(&c, None);
}

#[test]
fn domain_listed_once() {
    let mut c = www();
    c.domains.push(Domain {
        name: "sakura-trading.co.jp".into(),
        registry: RegistryClass::JprsAttribute,
        custody: false,
        dns_operation: DnsOperation::None,
        renewal_month: None,
    });
    assert_only(
        &run(&c, None),
        "domain-listed-once",
        "第5条",
        "/domains/1/name",
    );
    // The same name in Unicode and A-label form is the same domain after parsing.
    let mut v: serde_json::Value = serde_json::to_value(www()).unwrap();
    v["domains"] = serde_json::json!([
        {"name": "bücher.example", "registry": "gtld"},
        {"name": "xn--bcher-kva.example", "registry": "gtld"}
    ]);
    let c = Contract::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_only(
        &run(&c, None),
        "domain-listed-once",
        "第5条",
        "/domains/1/name",
    );
}

// --- all at once -----------------------------------------------------------------------------

#[test]
fn one_finding_per_violation_and_all_at_once() {
    let p = www();
    let mut c = next(&p, d(2027, 1, 5));
    c.revision = 1; // revision-increasing
    c.customer.id = "CU-0777".into(); // one-party
    c.options[0].quantity = 2; // option-quantity
    c.options[0].effective = Some(d(2027, 2, 1)); // (with notice, so only the quantity is wrong)
    c.options
        .push(line(OptionItem::MxDiskExtra, 1, d(2027, 2, 1))); // option-service-type
    c.domains.clear(); // domain-required
    c.status = Status::Suspended {
        since: d(2027, 1, 5),
        reason: String::new(),
    }; // suspension-reason
    let f = run(&c, Some(&p));
    let mut got = ids(&f);
    got.sort();
    assert_eq!(
        got,
        [
            "domain-required",
            "one-party",
            "option-quantity",
            "option-service-type",
            "revision-increasing",
            "suspension-reason"
        ],
        "{f:#?}"
    );
    // Every finding has an article and a JSON pointer.
    for x in &f {
        assert!(!x.article.is_empty() && x.path.starts_with('/'), "{x:?}");
    }
}

#[test]
fn the_rejected_example_has_its_three_findings() {
    let bytes = include_bytes!("../../../examples/contracts/rejected-securemx-ssl.json");
    let c = Contract::from_json(bytes).unwrap();
    let f = run(&c, None);
    assert_eq!(
        ids(&f),
        [
            "option-service-type",
            "securemx-option-prerequisite",
            "securemx-administrator"
        ],
        "{f:#?}"
    );
    assert_eq!(f[0].article, "第6条2項, 別表③1");
    assert_eq!(f[1].article, "第6条3項(4)");
    assert_eq!(f[2].article, "第9条1項");
}

#[test]
fn the_good_examples_are_clean_in_sequence() {
    let load = |b: &[u8]| Contract::from_json(b).unwrap();
    let www1 = load(include_bytes!("../../../examples/contracts/www-ssl.json"));
    let www2 = load(include_bytes!(
        "../../../examples/contracts/www-ssl-more-ftp.json"
    ));
    let mx1 = load(include_bytes!("../../../examples/contracts/securemx.json"));
    let p1 = load(include_bytes!("../../../examples/contracts/pack-dns.json"));
    let p2 = load(include_bytes!(
        "../../../examples/contracts/pack-dns-suspend.json"
    ));
    let p3 = load(include_bytes!(
        "../../../examples/contracts/pack-dns-resume.json"
    ));
    let p4 = load(include_bytes!(
        "../../../examples/contracts/pack-dns-terminate.json"
    ));
    let mx2 = load(include_bytes!(
        "../../../examples/contracts/securemx-to-pack.json"
    ));
    let k1 = load(include_bytes!("../../../examples/contracts/www-kobo.json"));
    let k2 = load(include_bytes!(
        "../../../examples/contracts/www-kobo-inherit.json"
    ));
    let k3 = load(include_bytes!(
        "../../../examples/contracts/www-kobo-suspend.json"
    ));
    let k4 = load(include_bytes!(
        "../../../examples/contracts/www-kobo-terminate.json"
    ));
    for (c, prev) in [
        (&mx2, Some(&mx1)),
        (&k1, None),
        (&k2, Some(&k1)),
        (&k3, Some(&k2)),
        (&k4, Some(&k3)),
        (&www1, None),
        (&www2, Some(&www1)),
        (&mx1, None),
        (&p1, None),
        (&p2, Some(&p1)),
        (&p3, Some(&p2)),
        (&p4, Some(&p3)),
    ] {
        assert_clean(c, prev);
    }
    // Rules never depend on the day they run: judged by requested_on only.
    assert_eq!(
        run(&www2, Some(&www1)),
        run(&www2.clone(), Some(&www1.clone()))
    );
}

// --- 第5条 注, ※2 ※3 ※4: what stays open on a closed type -------------------------------

#[test]
fn a_closed_service_still_takes_cancellations() {
    // "新たな申し込みの受付および変更の承諾は行いません" stops applications and
    // changes, not 第17条2項 cancellations: a Pack (セキュア) customer cancels
    // an extra FTP account after 2023-04-30 (on the 1st, two months ahead).
    let mut p = legacy(ServiceType::PackSecure, d(2023, 1, 10), d(2023, 2, 1));
    p.options
        .push(line(OptionItem::FtpAccountExtra, 2, d(2023, 2, 1)));
    let mut c = next(&p, d(2023, 6, 20));
    c.options[0] = line(OptionItem::FtpAccountExtra, 0, d(2023, 9, 1));
    assert_clean(&c, Some(&p));
    // Down by one is a cancellation of that unit too.
    c.options[0] = line(OptionItem::FtpAccountExtra, 1, d(2023, 9, 1));
    assert_clean(&c, Some(&p));
    // Up is a change: refused.
    c.options[0] = line(OptionItem::FtpAccountExtra, 3, d(2023, 9, 1));
    assert_only(
        &run(&c, Some(&p)),
        "service-closed-to-change",
        "※3",
        "/options/0",
    );
    // The Mini pack continued under 第5条 注 cancels a non-Secure MX option.
    let mut p = legacy(ServiceType::MiniPack, d(2022, 6, 1), d(2022, 7, 1));
    p.options
        .push(line(OptionItem::FtpAccountExtra, 1, d(2022, 7, 1)));
    let mut c = next(&p, d(2026, 11, 10));
    c.options[0] = line(OptionItem::FtpAccountExtra, 0, d(2027, 1, 1));
    assert_clean(&c, Some(&p));
}

#[test]
fn an_article_is_printed_once() {
    // The catalog row names 第5条 already; the rule does not repeat it.
    let f = run(
        &legacy(ServiceType::MailStandard, d(2023, 5, 1), d(2023, 6, 1)),
        None,
    );
    let closed = f
        .iter()
        .find(|x| x.rule == "service-closed-to-new")
        .unwrap();
    assert_eq!(closed.article, "第5条, 別表②1 ※2");
    assert_eq!(
        dedup_articles("第5条, 第5条 注, 第5条,  別表①"),
        "第5条, 第5条 注, 別表①"
    );
    // No finding anywhere names an article twice.
    for x in &f {
        let parts: Vec<&str> = x.article.split(", ").collect();
        let mut uniq = parts.clone();
        uniq.dedup();
        assert_eq!(parts.len(), uniq.len(), "{x:?}");
    }
}

// --- one-time operations: refused, not dropped --------------------------------------------

fn op(item: OneTimeItem, domain: Option<&str>) -> OneTime {
    OneTime {
        item,
        date: d(2026, 12, 10),
        quantity: 1,
        domain: domain.map(str::to_string),
        primary_and_secondary: false,
    }
}

#[test]
fn one_time_domain_operations_name_a_held_domain_and_an_offered_item() {
    let mut c = www();
    c.one_time = vec![op(
        OneTimeItem::DomainRegistration,
        Some("sakura-trading.co.jp"),
    )];
    assert_clean(&c, None);
    // A domain the contract does not hold.
    c.one_time = vec![op(OneTimeItem::DomainRegistration, Some("other.co.jp"))];
    assert_only(
        &run(&c, None),
        "one-time-domain",
        "別表③",
        "/one_time/0/domain",
    );
    // No domain at all.
    c.one_time = vec![op(OneTimeItem::DnsForwardChange, None)];
    assert_only(
        &run(&c, None),
        "one-time-domain",
        "別表③",
        "/one_time/0/domain",
    );
    // Host names exist in the gTLD table only; a name change not for JPRS 汎用.
    c.one_time = vec![op(OneTimeItem::HostName, Some("sakura-trading.co.jp"))];
    assert_only(
        &run(&c, None),
        "one-time-not-offered",
        "JPRS <属性型・地域型ドメイン>",
        "/one_time/0/item",
    );
    let mut m = mx();
    m.one_time = vec![op(OneTimeItem::DomainNameChange, Some("kaede-design.jp"))];
    assert_only(
        &run(&m, None),
        "one-time-not-offered",
        "JPRS <汎用ドメイン>",
        "/one_time/0/item",
    );
    // The change fee of 別表②2 comes from service_change, never listed by hand.
    c.one_time = vec![op(OneTimeItem::ServiceTypeChange, None)];
    assert_only(
        &run(&c, None),
        "service-change-fee",
        "別表②2",
        "/one_time/0",
    );
}

// --- 第24条, 第25条, 第46条, 第47条: how a contract ends ---------------------------------------

fn ended(
    p: &Contract,
    ground: crate::contract::TerminationGround,
    effective: NaiveDate,
    notified_on: NaiveDate,
) -> Contract {
    let mut c = next(p, notified_on);
    let mut t = crate::contract::Termination::notice(effective, notified_on);
    t.ground = ground;
    c.status = Status::Terminated(t);
    c
}

fn set(c: &mut Contract, f: impl FnOnce(&mut crate::contract::Termination)) {
    if let Status::Terminated(t) = &mut c.status {
        f(t)
    }
}

#[test]
fn customer_unusable_ends_the_day_the_notice_arrives() {
    use crate::contract::{TerminationGround::CustomerUnusable, UnusableCause};
    let p = www();
    // Mid-month, no month-end or previous-month notice rule (第25条2項).
    let mut c = ended(&p, CustomerUnusable, d(2027, 1, 13), d(2027, 1, 13));
    set(&mut c, |t| t.cause = Some(UnusableCause::EquipmentFailure));
    assert_clean(&c, Some(&p));
    set(&mut c, |t| t.effective = d(2027, 1, 31));
    assert_only(
        &run(&c, Some(&p)),
        "termination-immediate",
        "第25条2項",
        "/status/effective",
    );
    let c = ended(&p, CustomerUnusable, d(2027, 1, 13), d(2027, 1, 13));
    assert_only(
        &run(&c, Some(&p)),
        "termination-cause",
        "第25条2項",
        "/status/cause",
    );
}

#[test]
fn company_termination_after_an_uncured_suspension() {
    use crate::contract::TerminationGround::CompanyAfterSuspension;
    let mut p = next(&www(), d(2027, 2, 5));
    p.status = Status::Suspended {
        since: d(2027, 2, 5),
        reason: "第20条1項(1) 料金未払".into(),
    };
    // Mid-month, notified in writing beforehand (第24条4項).
    let c = ended(&p, CompanyAfterSuspension, d(2027, 2, 26), d(2027, 2, 19));
    assert_clean(&c, Some(&p));
    // Notified after the end: refused.
    let mut late = c.clone();
    set(&mut late, |t| t.notified_on = d(2027, 2, 27));
    late.requested_on = d(2027, 2, 27);
    assert_only(
        &run(&late, Some(&p)),
        "termination-prior-notice",
        "第24条4項",
        "/status/notified_on",
    );
    // Not suspended before: 第24条1項 does not apply.
    let c = ended(
        &www(),
        CompanyAfterSuspension,
        d(2027, 2, 26),
        d(2027, 2, 19),
    );
    assert_only(
        &run(&c, Some(&www())),
        "termination-after-suspension",
        "第24条1項",
        "/status/ground",
    );
}

#[test]
fn company_termination_without_suspension_names_its_ground() {
    use crate::contract::TerminationGround::{CompanyUnsuitable, CompanyWithoutSuspension};
    let p = www();
    let mut c = ended(&p, CompanyWithoutSuspension, d(2027, 3, 10), d(2027, 3, 1));
    let f = run(&c, Some(&p));
    assert_eq!(
        ids(&f),
        ["termination-reason", "termination-reason"],
        "{f:#?}"
    );
    assert!(f.iter().all(|x| x.article == "第24条2項"));
    set(&mut c, |t| {
        t.article_20_item = Some(3);
        t.reason = Some("著作権侵害のコンテンツを公開".into())
    });
    assert_clean(&c, Some(&p));
    set(&mut c, |t| t.article_20_item = Some(12));
    assert_only(
        &run(&c, Some(&p)),
        "termination-reason",
        "第24条2項",
        "/status/article_20_item",
    );
    // 第24条3項 states its reason; an item of 第20条 belongs to 2項 only.
    let mut c = ended(&p, CompanyUnsuitable, d(2027, 3, 10), d(2027, 3, 1));
    assert_only(
        &run(&c, Some(&p)),
        "termination-reason",
        "第24条3項",
        "/status/reason",
    );
    set(&mut c, |t| {
        t.reason = Some("x".into());
        t.article_20_item = Some(1)
    });
    assert_only(
        &run(&c, Some(&p)),
        "termination-fields",
        "第24条3項",
        "/status/article_20_item",
    );
}

#[test]
fn antisocial_forces_end_without_notice() {
    use crate::contract::TerminationGround::CompanyAntisocial;
    let p = www();
    // "催告をすることなく": the same day is fine.
    let mut c = ended(&p, CompanyAntisocial, d(2027, 1, 20), d(2027, 1, 20));
    assert_only(
        &run(&c, Some(&p)),
        "termination-reason",
        "第46条2項",
        "/status/reason",
    );
    set(&mut c, |t| {
        t.reason = Some("第46条1項の表明に反することが判明".into())
    });
    assert_clean(&c, Some(&p));
}

#[test]
fn abolition_needs_three_months_notice_and_its_day() {
    use crate::contract::TerminationGround::{ServiceAbolished, ServiceTypeAbolished};
    let p = www();
    // 第47条: notified 2027-01-31 for 2027-04-30 is exactly three months.
    assert_clean(
        &ended(&p, ServiceAbolished, d(2027, 4, 30), d(2027, 1, 30)),
        Some(&p),
    );
    let mut c = ended(&p, ServiceAbolished, d(2027, 4, 30), d(2027, 2, 1));
    assert_only(
        &run(&c, Some(&p)),
        "abolition-notice",
        "第47条2項",
        "/status/notified_on",
    );
    // 第25条3項: the type's abolition day from the catalog, and only for a type
    // that is abolished.
    c = ended(&p, ServiceTypeAbolished, d(2027, 4, 30), d(2027, 1, 30));
    assert_only(
        &run(&c, Some(&p)),
        "abolition-date",
        "第25条3項",
        "/status/ground",
    );
    let q = legacy(ServiceType::PackStandard, d(2023, 1, 10), d(2023, 2, 1));
    let c = ended(&q, ServiceTypeAbolished, d(2024, 3, 30), d(2023, 3, 30));
    assert_clean(&c, Some(&q));
    let c = ended(&q, ServiceTypeAbolished, d(2024, 3, 29), d(2023, 3, 30));
    assert_only(
        &run(&c, Some(&q)),
        "abolition-date",
        "第25条3項",
        "/status/effective",
    );
}

#[test]
fn calendar_limits_are_findings_not_guesses() {
    let mut p = www();
    p.service_start = d(2099, 12, 1);
    p.requested_on = d(2099, 11, 1);
    // Ending 2100-01-31: its notice deadline (2099-12-31) walks back through
    // the year-end closure, inside the calendar; ending 2100-02-29 does not.
    let c = terminate(&p, d(2100, 1, 31), d(2099, 12, 1));
    assert_clean(&c, Some(&p));
    let c = terminate(&p, d(2100, 2, 28), d(2100, 1, 5));
    assert_only(
        &run(&c, Some(&p)),
        "calendar-unknown",
        "第25条1項",
        "/status/notified_on",
    );
}

// --- 第18条 succession ------------------------------------------------------------------

fn inherited(p: &Contract, occurred: NaiveDate, reported: NaiveDate) -> Contract {
    let mut c = next(p, reported);
    c.customer.id = "CU-0099".into();
    c.customer.name = "Heir".into();
    c.succession = Some(crate::contract::Succession {
        kind: crate::contract::SuccessionKind::Inheritance,
        occurred_on: occurred,
        reported_on: reported,
        predecessor: crate::contract::Predecessor {
            id: p.customer.id.clone(),
            kind: p.customer.kind,
            name: p.customer.name.clone(),
        },
        heirs: 1,
        representative_named_by: None,
    });
    c
}

#[test]
fn succession_by_inheritance_within_two_weeks() {
    let mut p = www();
    p.customer.kind = CustomerKind::Individual;
    // 相続開始 2027-01-05: "2週間を経過する日" is 2027-01-19.
    let c = inherited(&p, d(2027, 1, 5), d(2027, 1, 19));
    assert_clean(&c, Some(&p));
    let late = inherited(&p, d(2027, 1, 5), d(2027, 1, 20));
    assert_only(
        &run(&late, Some(&p)),
        "succession-report-deadline",
        "第18条3項",
        "/succession/reported_on",
    );
    // Later revisions keep the record and the successor as the party.
    let mut later = next(&c, d(2027, 2, 1));
    later.options[1].quantity = 3;
    later.options[1].effective = Some(d(2027, 3, 1));
    assert_clean(&later, Some(&c));
    // Several heirs name a representative (第18条4項) or the company does (5項).
    let mut many = c.clone();
    many.succession.as_mut().unwrap().heirs = 3;
    assert_only(
        &run(&many, Some(&p)),
        "succession-representative",
        "第18条4項5項",
        "/succession/representative_named_by",
    );
    many.succession.as_mut().unwrap().representative_named_by =
        Some(crate::contract::RepresentativeNamedBy::Company);
    assert_clean(&many, Some(&p));
    // The one-contract-per-service rule is about concluding contracts: the heir
    // may hold a WWW contract already.
    let others = [OtherContract {
        contract_id: "C-7777".into(),
        service: "www".into(),
        active: true,
    }];
    assert!(run_with(&c, Some(&p), &others, &cat()).is_empty());
}

#[test]
fn succession_rules() {
    let mut p = www();
    p.customer.kind = CustomerKind::Individual;
    // The predecessor is the recorded customer.
    let mut c = inherited(&p, d(2027, 1, 5), d(2027, 1, 10));
    c.succession.as_mut().unwrap().predecessor.id = "CU-4242".into();
    let f = run(&c, Some(&p));
    assert_eq!(ids(&f), ["succession-predecessor"], "{f:#?}");
    // A corporation has no heirs; a merger is between corporations.
    let corp = www();
    let mut c = inherited(&corp, d(2027, 1, 5), d(2027, 1, 10));
    c.customer.kind = CustomerKind::Individual;
    assert_has(&run(&c, Some(&corp)), "succession-kind", "第18条1項3項");
    let mut m = inherited(&corp, d(2027, 1, 5), d(2027, 3, 10));
    m.succession.as_mut().unwrap().kind = crate::contract::SuccessionKind::Merger;
    // 第18条2項 "速やかに": no fixed deadline for corporations.
    assert_clean(&m, Some(&corp));
    m.customer.kind = CustomerKind::Individual;
    assert_has(&run(&m, Some(&corp)), "succession-kind", "第18条1項2項");
    // The same party is no succession.
    let mut same = inherited(&p, d(2027, 1, 5), d(2027, 1, 10));
    same.customer.id = p.customer.id.clone();
    assert_has(&run(&same, Some(&p)), "succession-party", "第18条1項");
    // Reported before it happened, or after the revision's request.
    let mut c = inherited(&p, d(2027, 1, 5), d(2027, 1, 10));
    c.succession.as_mut().unwrap().reported_on = d(2027, 1, 4);
    assert_has(&run(&c, Some(&p)), "succession-dates", "第18条");
    // Without a succession, the one-party rule still refuses a new customer.
    let mut c = inherited(&p, d(2027, 1, 5), d(2027, 1, 10));
    c.succession = None;
    assert_only(&run(&c, Some(&p)), "one-party", "第16条", "/customer");
}

// --- 別表②2 service type change -----------------------------------------------------------

fn to_pack(p: &Contract, requested: NaiveDate, effective: NaiveDate) -> Contract {
    let mut c = next(p, requested);
    c.service = ServiceType::PackSecureMx;
    c.service_change = Some(change(p.service, effective));
    c.secure_mx = Some(secure_mx_section("sakura-trading.co.jp"));
    c
}

#[test]
fn service_type_changes_listed_in_the_note_are_accepted() {
    // www → パック (セキュア MX): an addition, 2 weeks' notice (第17条1項).
    let p = www();
    let c = to_pack(&p, d(2027, 1, 10), d(2027, 1, 24));
    assert_clean(&c, Some(&p));
    let c = to_pack(&p, d(2027, 1, 10), d(2027, 1, 23));
    assert_only(
        &run(&c, Some(&p)),
        "service-change-notice",
        "第17条1項",
        "/service_change/effective",
    );
    // Mail → パック.
    let m = mx();
    let mut c = next(&m, d(2027, 1, 10));
    c.service = ServiceType::PackSecureMx;
    c.service_change = Some(change(ServiceType::MailSecureMx, d(2027, 2, 1)));
    c.domains[0].dns_operation = DnsOperation::Yearly;
    assert_clean(&c, Some(&m));
    // パック → www drops the mail: on the 1st, by the end of the month two
    // months before (第17条2項), and the Secure MX parts go.
    let pack = to_pack(&p, d(2027, 1, 10), d(2027, 1, 24));
    let mut back = next(&pack, d(2027, 3, 31));
    back.service = ServiceType::Www;
    back.service_change = Some(change(ServiceType::PackSecureMx, d(2027, 5, 1)));
    back.secure_mx = None;
    assert_clean(&back, Some(&pack));
    back.requested_on = d(2027, 4, 1);
    assert_only(
        &run(&back, Some(&pack)),
        "service-change-notice",
        "第17条2項",
        "/service_change/effective",
    );
    back.requested_on = d(2027, 3, 1);
    back.service_change = Some(change(ServiceType::PackSecureMx, d(2027, 5, 15)));
    assert_only(
        &run(&back, Some(&pack)),
        "service-change-date",
        "第17条2項",
        "/service_change/effective",
    );
}

#[test]
fn service_type_changes_not_listed_are_refused() {
    // www → Mail is not in 別表②2 備考.
    let p = www();
    let mut c = next(&p, d(2027, 1, 10));
    c.service = ServiceType::MailSecureMx;
    c.service_change = Some(change(ServiceType::Www, d(2027, 3, 1)));
    c.options.clear();
    c.secure_mx = Some(secure_mx_section("sakura-trading.co.jp"));
    assert_has(&run(&c, Some(&p)), "service-change-allowed", "別表②2");
    // Mail (スタンダード) → Mail (セキュア MX) is not listed either, but before
    // 2024-03-30 it replaces a type being abolished (第23条3項).
    let q = legacy(ServiceType::MailStandard, d(2022, 1, 10), d(2022, 2, 1));
    let mut c = next(&q, d(2024, 1, 10));
    c.service = ServiceType::MailSecureMx;
    c.service_change = Some(change(ServiceType::MailStandard, d(2024, 2, 1)));
    c.secure_mx = Some(secure_mx_section("sakura-trading.co.jp"));
    assert_clean(&c, Some(&q));
    // After the end the contract had ended: nothing to change.
    c.requested_on = d(2024, 4, 2);
    c.service_change = Some(change(ServiceType::MailStandard, d(2024, 5, 1)));
    let f = run(&c, Some(&q));
    assert_has(&f, "service-ended", "第25条3項");
    assert_has(&f, "service-change-allowed", "別表②2");
}

#[test]
fn the_service_change_record() {
    let p = www();
    // A change of service without a record, or from another type.
    let mut c = to_pack(&p, d(2027, 1, 10), d(2027, 2, 1));
    c.service_change = None;
    assert_only(
        &run(&c, Some(&p)),
        "service-change-record",
        "別表②2",
        "/service_change",
    );
    let mut c = to_pack(&p, d(2027, 1, 10), d(2027, 2, 1));
    c.service_change = Some(change(ServiceType::MailSecureMx, d(2027, 2, 1)));
    assert_only(
        &run(&c, Some(&p)),
        "service-change-record",
        "別表②2",
        "/service_change/from",
    );
    // Later revisions keep it; dropping or editing it is refused.
    let c = to_pack(&p, d(2027, 1, 10), d(2027, 2, 1));
    let keep = next(&c, d(2027, 3, 1));
    assert_clean(&keep, Some(&c));
    let mut edit = next(&c, d(2027, 3, 1));
    edit.service_change = Some(change(ServiceType::Www, d(2027, 2, 15)));
    assert_only(
        &run(&edit, Some(&c)),
        "service-change-record",
        "別表②2",
        "/service_change",
    );
    // A second change while the first is pending.
    let mut again = next(&c, d(2027, 1, 20));
    again.service = ServiceType::Www;
    again.secure_mx = None;
    again.service_change = Some(change(ServiceType::PackSecureMx, d(2027, 5, 1)));
    assert_has(&run(&again, Some(&c)), "service-change-pending", "別表②2");
    // A new application changes nothing.
    let mut first = www();
    first.service_change = Some(change(ServiceType::MailSecureMx, d(2026, 12, 1)));
    assert_only(
        &run(&first, None),
        "service-change-record",
        "別表②2",
        "/service_change",
    );
}
