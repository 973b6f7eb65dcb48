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
    p.status = Status::Terminated {
        effective: d(2027, 3, 31),
        notified_on: d(2027, 2, 1),
    };
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
    assert_has(&run(&c, Some(&p)), "service-closed-to-new", "第5条");
    // Changing *to* an open service is fine.
    let mut c = next(&p, d(2026, 11, 20));
    c.service = ServiceType::PackSecureMx;
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
    let c = next(&p, d(2024, 3, 31));
    assert_only(&run(&c, Some(&p)), "service-ended", "第5条", "/service");
    // Terminating it is always possible.
    let mut c = next(&p, d(2024, 4, 10));
    c.status = Status::Terminated {
        effective: d(2024, 5, 31),
        notified_on: d(2024, 4, 10),
    };
    assert_clean(&c, Some(&p));
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
    assert_only(&f, "service-ended", "第5条", "/service");
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
    let mut c = www();
    c.options[1].quantity = 99;
    assert_clean(&c, None);
    c.options[1].quantity = 100;
    assert_only(
        &run(&c, None),
        "option-quantity",
        "別表③1",
        "/options/1/quantity",
    );
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

fn terminate(p: &Contract, effective: NaiveDate, notified_on: NaiveDate) -> Contract {
    let mut c = next(p, notified_on);
    c.status = Status::Terminated {
        effective,
        notified_on,
    };
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
        "termination-month-end",
        "第25条1項",
        "/status/effective",
    );
}

#[test]
fn termination_notice_moves_back_to_a_business_day() {
    let p = www();
    // Ending 2027-03-31: notice by 2027-02-28, a Sunday, so by Friday 02-26.
    assert!(!is_business_day(d(2027, 2, 28)));
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
    assert!(!is_business_day(d(2026, 11, 23)));
    assert_eq!(business_day_on_or_before(d(2026, 11, 23)), d(2026, 11, 20));
    // Golden week 2026: 05-06 (振替休日) back to Friday 05-01 (04-29 is a holiday too,
    // but 04-30 and 05-01 are business days).
    assert_eq!(business_day_on_or_before(d(2026, 5, 6)), d(2026, 5, 1));
    // 2027-01-03 (closure) and 2027-01-01 (元日) back to Monday 2026-12-28.
    assert_eq!(business_day_on_or_before(d(2027, 1, 3)), d(2026, 12, 28));
    assert!(is_business_day(d(2027, 1, 4)));
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
    let bytes = include_bytes!("../../examples/contracts/rejected-securemx-ssl.json");
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
    let www1 = load(include_bytes!("../../examples/contracts/www-ssl.json"));
    let www2 = load(include_bytes!(
        "../../examples/contracts/www-ssl-more-ftp.json"
    ));
    let mx1 = load(include_bytes!("../../examples/contracts/securemx.json"));
    let p1 = load(include_bytes!("../../examples/contracts/pack-dns.json"));
    let p2 = load(include_bytes!(
        "../../examples/contracts/pack-dns-suspend.json"
    ));
    let p3 = load(include_bytes!(
        "../../examples/contracts/pack-dns-resume.json"
    ));
    let p4 = load(include_bytes!(
        "../../examples/contracts/pack-dns-terminate.json"
    ));
    for (c, prev) in [
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
