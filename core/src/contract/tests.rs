//! The contract document: strict parsing (unknown fields and values refused),
//! IDNA normalisation of every domain, ids and revisions.

use super::*;
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "contract_id": "C-2001", "revision": 1, "requested_on": "2026-11-10",
        "customer": {"id": "CU-0002", "kind": "corporation", "name": "Kaede Design LLC", "legal_capacity": "adult"},
        "service": "pack_secure_mx", "service_start": "2026-12-01", "status": {"state": "active"},
        "options": [{"item": "mx_account_extra", "quantity": 5, "effective": "2026-12-01"}],
        "domains": [{"name": "kaede-design.jp", "registry": "jprs_generic", "dns_operation": "yearly"}],
        "secure_mx": {
            "target_domains": ["kaede-design.jp"], "target_ips": ["203.0.113.25", "2001:db8::1"],
            "administrator": {"name": "Yamada Hanako", "email": "it-admin@kaede-design.jp"},
            "mailboxes": ["info", "hanako.yamada"]
        },
        "external": {"iij_id": "IIJ-1"},
        "one_time": [{"item": "dns_forward_change", "date": "2026-12-10", "domain": "kaede-design.jp"}],
        "usage": [{"month": "2027-01", "item": "mx_mailing_list", "max_count": 4}],
        "outages": [{"started": "2027-01-10", "hours": 30, "claimed_on": "2027-01-20"}]
    })
}

fn parse(v: &Value) -> Result<Contract, ContractError> {
    Contract::from_json(&serde_json::to_vec(v).unwrap())
}

#[track_caller]
fn refused(v: &Value, needle: &str) -> String {
    let e = parse(v).expect_err("must be refused").to_string();
    assert!(e.contains(needle), "`{e}` should contain `{needle}`");
    e
}

#[test]
fn the_base_parses_with_defaults() {
    let c = parse(&base()).unwrap();
    assert_eq!(c.contract_id.as_str(), "C-2001");
    assert_eq!(c.service, ServiceType::PackSecureMx);
    assert_eq!(c.customer.legal_capacity, LegalCapacity::Adult);
    assert!(!c.customer.guardian_consent);
    assert_eq!(c.domains[0].dns_operation, DnsOperation::Yearly);
    assert!(!c.domains[0].custody);
    assert_eq!(c.one_time[0].quantity, 1);
    assert_eq!(c.quantity(OptionItem::MxAccountExtra), 5);
    assert!(!c.has_option(OptionItem::SslHosting));
    // Round trip through serde gives the same contract.
    let again = parse(&serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(again, c);
    // Every example contract parses.
    for (name, bytes) in [
        (
            "www-ssl",
            &include_bytes!("../../../examples/contracts/www-ssl.json")[..],
        ),
        (
            "www-ssl-more-ftp",
            include_bytes!("../../../examples/contracts/www-ssl-more-ftp.json"),
        ),
        (
            "securemx",
            include_bytes!("../../../examples/contracts/securemx.json"),
        ),
        (
            "pack-dns",
            include_bytes!("../../../examples/contracts/pack-dns.json"),
        ),
        (
            "pack-dns-suspend",
            include_bytes!("../../../examples/contracts/pack-dns-suspend.json"),
        ),
        (
            "pack-dns-resume",
            include_bytes!("../../../examples/contracts/pack-dns-resume.json"),
        ),
        (
            "pack-dns-terminate",
            include_bytes!("../../../examples/contracts/pack-dns-terminate.json"),
        ),
        (
            "rejected-securemx-ssl",
            include_bytes!("../../../examples/contracts/rejected-securemx-ssl.json"),
        ),
    ] {
        Contract::from_json(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let cases: [(&str, &[&str]); 12] = [
        ("", &["discount"]),
        ("customer", &["email"]),
        ("status", &["note"]),
        ("options/0", &["price"]),
        ("domains/0", &["ttl"]),
        ("secure_mx", &["quota"]),
        ("secure_mx/administrator", &["phone"]),
        ("external", &["sso"]),
        ("one_time/0", &["note"]),
        ("usage/0", &["min_count"]),
        ("outages/0", &["minutes"]),
        ("", &["Contract_id"]),
    ];
    for (at, fields) in cases {
        let mut v = base();
        let target = if at.is_empty() {
            &mut v
        } else {
            v.pointer_mut(&format!("/{at}")).unwrap()
        };
        target[fields[0]] = json!(1);
        let e = parse(&v)
            .err()
            .unwrap_or_else(|| panic!("unknown field {} at /{at} must be refused", fields[0]));
        assert!(
            e.to_string()
                .contains(&format!("unknown field `{}`", fields[0])),
            "{e}"
        );
    }
}

#[test]
fn enums_are_strict() {
    for (pointer, value, needle) in [
        ("/service", json!("WWW"), "unknown variant `WWW`"),
        ("/service", json!("mail"), "unknown variant `mail`"),
        ("/customer/kind", json!("company"), "unknown variant"),
        (
            "/customer/legal_capacity",
            json!("child"),
            "unknown variant",
        ),
        (
            "/status",
            json!({"state": "paused"}),
            "unknown variant `paused`",
        ),
        (
            "/options/0/item",
            json!("mx_account"),
            "unknown variant `mx_account`",
        ),
        ("/domains/0/registry", json!("jp"), "unknown variant `jp`"),
        (
            "/domains/0/dns_operation",
            json!("weekly"),
            "unknown variant",
        ),
        (
            "/one_time/0/item",
            json!("domain_transfer"),
            "unknown variant",
        ),
    ] {
        let mut v = base();
        *v.pointer_mut(pointer).unwrap() = value;
        refused(&v, needle);
    }
    // The status variants carry their fields, and only theirs.
    let mut v = base();
    v["status"] = json!({"state": "suspended", "since": "2027-01-20"});
    refused(&v, "missing field `reason`");
    v["status"] = json!({"state": "terminated", "effective": "2027-03-31", "notified_on": "2027-02-26", "since": "2027-01-01"});
    refused(&v, "unknown field `since`");
    v["status"] = json!({"state": "terminated", "effective": "2027-03-31", "notified_on": "2027-02-26", "ground": "customer_whim"});
    refused(&v, "unknown variant `customer_whim`");
    v["status"] =
        json!({"state": "terminated", "effective": "2027-03-31", "notified_on": "2027-02-26"});
    // Without `ground`, the customer's 第25条1項 notice.
    let st = parse(&v).unwrap().status;
    assert_eq!(
        st.termination().map(|t| t.ground),
        Some(crate::contract::TerminationGround::CustomerNotice)
    );
    v["status"] = json!({"state": "terminated", "effective": "2027-03-15", "notified_on": "2027-03-15",
        "ground": "customer_unusable", "cause": "equipment_failure", "reason": "3 日間の障害"});
    let t = parse(&v).unwrap().status.termination().cloned().unwrap();
    assert_eq!(
        t.cause,
        Some(crate::contract::UnusableCause::EquipmentFailure)
    );
    assert_eq!(t.ground.article(), "第25条2項");
    // A succession and a service change parse strictly too.
    let mut v = base();
    v["succession"] = json!({"kind": "merger", "occurred_on": "2027-01-01", "reported_on": "2027-01-05",
        "predecessor": {"id": "CU-9", "kind": "corporation", "name": "Old K.K."}, "extra": 1});
    refused(&v, "unknown field `extra`");
    v["succession"] = json!({"kind": "adoption", "occurred_on": "2027-01-01", "reported_on": "2027-01-05",
        "predecessor": {"id": "CU-9", "kind": "corporation", "name": "Old K.K."}});
    refused(&v, "unknown variant `adoption`");
    let mut v = base();
    v["service_change"] = json!({"from": "www", "effective": "2027-01-01", "fee": "10000"});
    refused(&v, "unknown field `fee`");
}

#[test]
fn types_are_strict() {
    for (pointer, value) in [
        ("/revision", json!(-1)),
        ("/revision", json!("2")),
        ("/requested_on", json!("2026-13-01")),
        ("/requested_on", json!("10/11/2026")),
        ("/options/0/quantity", json!(1.5)),
        ("/secure_mx/target_ips/0", json!("203.0.113")),
        ("/options/0/effective", json!("2026-02-30")),
    ] {
        let mut v = base();
        *v.pointer_mut(pointer).unwrap() = value.clone();
        assert!(parse(&v).is_err(), "{pointer} = {value} must be refused");
    }
    // Quoted prices are decimal strings, never floats.
    let mut v = base();
    v["options"][0]["quoted_monthly"] = json!("1234");
    assert_eq!(
        parse(&v).unwrap().options[0].quoted_monthly,
        Some(rust_decimal::Decimal::from(1234))
    );
    v["options"][0]["quoted_monthly"] = json!(1234.5);
    assert!(parse(&v).is_err());
}

#[test]
fn required_fields() {
    for field in [
        "contract_id",
        "revision",
        "requested_on",
        "customer",
        "service",
        "service_start",
        "status",
    ] {
        let mut v = base();
        v.as_object_mut().unwrap().remove(field);
        refused(&v, &format!("missing field `{field}`"));
    }
    // Optional sections default to empty.
    let mut v = base();
    for field in [
        "options", "domains", "external", "one_time", "usage", "outages",
    ] {
        v.as_object_mut().unwrap().remove(field);
    }
    v.as_object_mut().unwrap().remove("secure_mx");
    let c = parse(&v).unwrap();
    assert!(c.options.is_empty() && c.domains.is_empty() && c.secure_mx.is_none());
    assert_eq!(c.external, External::default());
}

#[test]
fn contract_ids() {
    for ok in [
        "C-2001",
        "ABC",
        "A1-2-3",
        "Z2345678901234567890123456789012",
    ] {
        assert!(ContractId::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "AB",
        "c-2001",
        "1ABC",
        "-ABC",
        "C_2001",
        "C 2001",
        "C-2001/..",
        "Z23456789012345678901234567890123",
        "Ｃ-2001",
    ] {
        assert!(ContractId::parse(bad).is_err(), "{bad}");
        let mut v = base();
        v["contract_id"] = json!(bad);
        refused(&v, "must match [A-Z][A-Z0-9-]{2,31}");
    }
}

#[test]
fn revisions_start_at_one_and_customer_ids_are_not_empty() {
    let mut v = base();
    v["revision"] = json!(0);
    let e = parse(&v).unwrap_err();
    assert!(
        matches!(&e, ContractError::Invalid { field, .. } if field == "/revision"),
        "{e}"
    );
    let mut v = base();
    v["customer"]["id"] = json!("  ");
    let e = parse(&v).unwrap_err();
    assert!(
        matches!(&e, ContractError::Invalid { field, .. } if field == "/customer/id"),
        "{e}"
    );
}

#[test]
fn revisions_are_capped_so_a_later_one_is_always_possible() {
    let mut v = base();
    v["revision"] = json!(MAX_REVISION);
    assert_eq!(parse(&v).unwrap().revision, 1_000_000);
    for too_high in [u64::from(MAX_REVISION) + 1, u64::from(u32::MAX)] {
        v["revision"] = json!(too_high);
        let e = parse(&v).unwrap_err();
        assert!(
            matches!(&e, ContractError::Invalid { field, message } if field == "/revision" && message.contains("at most 1000000")),
            "{e}"
        );
    }
}

#[test]
fn customer_ids_are_identifiers() {
    for good in [
        "CU-0001",
        "cu_0001",
        "12345",
        "A",
        "acme.co.jp-42",
        &"x".repeat(64),
    ] {
        let mut v = base();
        v["customer"]["id"] = json!(good);
        assert_eq!(parse(&v).unwrap().customer.id, good);
    }
    for bad in [
        "",
        " CU-1",
        "-CU",
        ".CU",
        "CU 1",
        "CU-1\n2026-12-01 INFO accepted",
        "CU\u{1b}[32m",
        "CU-1\u{9b}2K",
        "ＣＵ-1",
        "CU/1",
        "CU;1",
        &"x".repeat(65),
    ] {
        let mut v = base();
        v["customer"]["id"] = json!(bad);
        let e = parse(&v).unwrap_err();
        assert!(
            matches!(&e, ContractError::Invalid { field, message }
                if field == "/customer/id" && message.contains("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn an_ip_address_is_not_a_domain_even_in_full_width() {
    for ip in ["127.0.0.1", "１２７.０.０.１", "127.0.0.1.", "10.1"] {
        assert!(normalize_domain(ip).is_err(), "{ip:?} must be refused");
        let mut v = base();
        v["domains"][0]["name"] = json!(ip);
        let e = parse(&v).unwrap_err();
        assert!(
            matches!(&e, ContractError::Invalid { field, .. } if field == "/domains/0/name"),
            "{ip:?}: {e}"
        );
        let mut v = base();
        v["secure_mx"]["target_domains"][0] = json!(ip);
        assert!(parse(&v).is_err(), "{ip:?} as a Secure MX target");
    }
}

#[test]
fn domains_become_a_labels() {
    for (input, want) in [
        ("kaede-design.jp", "kaede-design.jp"),
        ("Kaede-Design.JP", "kaede-design.jp"),
        ("kaede-design.jp.", "kaede-design.jp"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("日本語.jp", "xn--wgv71a119e.jp"),
        // Full-width letters map to ASCII (UTS 46).
        ("ｋａｅｄｅ.jp", "kaede.jp"),
    ] {
        assert_eq!(normalize_domain(input).as_deref(), Ok(want), "{input}");
    }
    // Everywhere a domain appears.
    let mut v = base();
    v["domains"][0]["name"] = json!("Bücher.example");
    v["secure_mx"]["target_domains"][0] = json!("bücher.example.");
    v["one_time"][0]["domain"] = json!("BÜCHER.example");
    let c = parse(&v).unwrap();
    assert_eq!(c.domains[0].name, "xn--bcher-kva.example");
    assert_eq!(
        c.secure_mx.as_ref().unwrap().target_domains[0],
        "xn--bcher-kva.example"
    );
    assert_eq!(
        c.one_time[0].domain.as_deref(),
        Some("xn--bcher-kva.example")
    );
}

#[test]
fn look_alikes_never_pass_as_ascii() {
    // Cyrillic "а" (U+0430) in place of Latin "a": a different domain, in A-label form.
    let fake = normalize_domain("k\u{0430}ede-design.jp").unwrap();
    assert_ne!(fake, "kaede-design.jp");
    assert!(fake.starts_with("xn--"), "{fake}");
    assert!(fake.is_ascii());
    // Greek omicron for "o".
    let fake = normalize_domain("g\u{03bf}\u{03bf}gle.com").unwrap();
    assert!(fake.starts_with("xn--") && fake.is_ascii(), "{fake}");
}

#[test]
fn invalid_domains_are_refused_with_their_path() {
    for bad in [
        "exa mple.jp",
        "-kaede.jp",
        "kaede..jp",
        "kaede_design.jp",
        "",
        "a/b.jp",
        "kaede.jp;rm -rf /",
        "xn--zz.jp",
        "..",
        "*.kaede.jp",
    ] {
        assert!(normalize_domain(bad).is_err(), "{bad:?} must be refused");
    }
    for (pointer, field) in [
        ("/domains/0/name", "/domains/0/name"),
        ("/secure_mx/target_domains/0", "/secure_mx/target_domains/0"),
        ("/one_time/0/domain", "/one_time/0/domain"),
    ] {
        let mut v = base();
        *v.pointer_mut(pointer).unwrap() = json!("bad domain.jp");
        let e = parse(&v).unwrap_err();
        assert!(
            matches!(&e, ContractError::Invalid { field: f, .. } if f == field),
            "{e}"
        );
    }
}

#[test]
fn mailboxes_and_administrator_email() {
    for bad in [
        "Info",
        "",
        ".info",
        "info.",
        // The provider's rule (issue #12): accepted once, refused at the step.
        "-info",
        "a..b",
        "in fo",
        "info@x",
        "ｉｎｆｏ",
        &"a".repeat(65),
    ] {
        let mut v = base();
        v["secure_mx"]["mailboxes"][1] = json!(bad);
        let e = parse(&v).unwrap_err();
        assert!(
            matches!(&e, ContractError::Invalid { field, .. } if field == "/secure_mx/mailboxes/1"),
            "{bad:?}: {e}"
        );
    }
    for ok in ["info", "hanako.yamada", "a+b", "x_y-z", &"a".repeat(64)] {
        let mut v = base();
        v["secure_mx"]["mailboxes"][1] = json!(ok);
        assert!(parse(&v).is_ok(), "{ok}");
    }
    for bad in [
        "it-admin",
        "@kaede-design.jp",
        "it-admin@",
        "it-admin@bad domain",
    ] {
        let mut v = base();
        v["secure_mx"]["administrator"]["email"] = json!(bad);
        let e = parse(&v).unwrap_err();
        assert!(
            matches!(&e, ContractError::Invalid { field, .. } if field == "/secure_mx/administrator/email"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn usage_months() {
    for bad in ["2027-1", "2027-13", "27-01", "2027/01"] {
        let mut v = base();
        v["usage"][0]["month"] = json!(bad);
        let e = parse(&v).unwrap_err();
        assert!(
            matches!(&e, ContractError::Invalid { field, .. } if field == "/usage/0/month"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn renewal_month_is_a_month() {
    for (month, ok) in [(0, false), (1, true), (12, true), (13, false)] {
        let mut v = base();
        v["domains"][0]["renewal_month"] = json!(month);
        let r = parse(&v);
        if ok {
            assert!(r.is_ok(), "{month}: {r:?}");
        } else {
            let e = r.unwrap_err();
            assert!(
                matches!(&e, ContractError::Invalid { field, .. } if field == "/domains/0/renewal_month"),
                "{month}: {e}"
            );
        }
    }
}

#[test]
fn size_limit() {
    let mut v = base();
    v["customer"]["name"] = json!("x".repeat(MAX_CONTRACT_BYTES));
    assert!(matches!(parse(&v), Err(ContractError::TooLarge)));
    // Just under the limit parses (the rest of the document is small).
    let small = serde_json::to_vec(&base()).unwrap().len();
    let mut v = base();
    v["customer"]["name"] = json!("x".repeat(MAX_CONTRACT_BYTES - small - 16));
    assert!(parse(&v).is_ok());
    assert!(matches!(
        Contract::from_json(b"{not json"),
        Err(ContractError::Json(_))
    ));
}

#[test]
fn service_type_codes_round_trip() {
    for st in ServiceType::ALL {
        assert_eq!(ServiceType::from_code(st.code()), Some(st));
        assert_eq!(serde_json::to_value(st).unwrap(), json!(st.code()));
        // Web and mail flags are consistent with the catalog's inclusions.
        let svc = crate::catalog::Catalog::builtin()
            .unwrap()
            .service(st)
            .clone();
        assert_eq!(st.has_web(), svc.web_disk_gb > 0, "{}", st.code());
        assert!(
            !(st.has_legacy_mail() && st.has_secure_mx()),
            "{}",
            st.code()
        );
    }
    assert_eq!(ServiceType::from_code("ftp"), None);
}

#[test]
fn entitlements_from_the_catalog() {
    let c = parse(&base()).unwrap();
    let e = c.entitlements(&crate::catalog::Catalog::builtin().unwrap());
    // pack_secure_mx: 10 GB web, 1 FTP (※1), 10 + 5 mail accounts, 1 disk unit.
    assert_eq!(e.web_disk_mb, 10 * 1024);
    assert_eq!(e.ftp_accounts, 1);
    assert!(!e.tls);
    assert_eq!(e.mail_accounts_limit, 15);
    assert_eq!(e.mx_disk_units, 1);
    // The target domain is hosted here: it gets a zone.
    assert_eq!(e.dns_zones, ["kaede-design.jp"]);
    // SSL adds TLS and one FTP account; extra FTP accounts add theirs.
    let mut v = base();
    v["options"] = json!([
        {"item": "ssl_hosting", "quantity": 1, "effective": "2026-12-01", "quoted_initial": "0"},
        {"item": "ftp_account_extra", "quantity": 3, "effective": "2026-12-01"},
        {"item": "www_disk_extra", "quantity": 2, "effective": "2026-12-01"},
        {"item": "mx_disk_extra", "quantity": 2, "effective": "2026-12-01"},
        {"item": "mx_archive", "quantity": 1, "effective": "2026-12-01", "quoted_monthly": "50"}
    ]);
    let e = parse(&v)
        .unwrap()
        .entitlements(&crate::catalog::Catalog::builtin().unwrap());
    assert!(e.tls);
    assert_eq!(e.ftp_accounts, 1 + 1 + 3);
    assert_eq!(e.web_disk_mb, 12 * 1024);
    assert_eq!(e.mx_disk_units, 3);
    assert_eq!(e.mx_options, ["archive"]);
}

#[test]
fn one_time_codes_are_the_contract_format_names() {
    // Every item the published schema allows, parsed, gives its own name back.
    let schema: Value =
        serde_json::from_str(include_str!("../../../docs/contract.schema.json")).unwrap();
    let names = schema
        .pointer("/$defs/one_time/properties/item/enum")
        .and_then(Value::as_array)
        .expect("the schema lists the one-time items");
    assert_eq!(names.len(), 15);
    for name in names {
        let item: OneTimeItem = serde_json::from_value(name.clone()).unwrap();
        assert_eq!(json!(item.code()), *name);
        assert!(!item.name_ja().is_ascii(), "{item:?} has its 別表 name");
    }
}
