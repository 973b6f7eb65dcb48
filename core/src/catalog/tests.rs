//! The catalog against the terms (/work/shared/terms/itscom-hosting-terms.ja.txt):
//! every 別表 row with its price as the terms print it, the quotas and
//! inclusions, the lifecycle dates of 第5条, and the validation of a broken
//! catalog file.

use super::*;
use rust_decimal_macros::dec;

fn cat() -> Catalog {
    Catalog::builtin().expect("the built-in catalog loads")
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// The fee of `row` in option `item`: (kind, amount, quoted).
fn fee(c: &Catalog, item: OptionItem, row: &str) -> (FeeKind, Option<Decimal>, bool) {
    let o = c
        .option(item)
        .unwrap_or_else(|| panic!("option {item:?} missing"));
    let f = o
        .fees
        .iter()
        .find(|f| f.row == row)
        .unwrap_or_else(|| panic!("option {item:?} has no fee row `{row}`"));
    (f.kind, f.amount, f.quoted)
}

// --- 別表① 初期費用 and 別表② 1. 利用料金 (月額) -----------------------------------

#[test]
fn service_types_initial_and_monthly_as_printed() {
    use ServiceType::*;
    // (service, 別表① 加入料, 別表② 利用料 (月額))
    let table = [
        (Www, Some(dec!(20000)), dec!(10000)),
        (MailSecureMx, Some(dec!(20000)), dec!(4500)),
        (PackSecureMx, Some(dec!(20000)), dec!(13000)),
        // 別表① lists no 加入料 for the legacy types (closed to new applications).
        (MailStandard, None, dec!(5000)),
        (MailSecure, None, dec!(5000)),
        (PackStandard, None, dec!(13500)),
        (PackSecure, None, dec!(13500)),
        (MiniPack, None, dec!(5000)),
    ];
    let c = cat();
    assert_eq!(
        table.len(),
        ServiceType::ALL.len(),
        "every service type of 第5条 is in the table"
    );
    for (st, initial, monthly) in table {
        let s = c.service(st);
        assert_eq!(s.code, st.code());
        assert_eq!(s.initial, initial, "{} 加入料", st.code());
        assert_eq!(s.monthly, monthly, "{} 利用料 (月額)", st.code());
        assert!(s.article.contains("第5条"), "{}: {}", st.code(), s.article);
    }
    assert_eq!(c.revision, "2024-03-01");
    assert_eq!(c.service_codes().len(), 8);
}

#[test]
fn base_quotas_and_inclusions() {
    use ServiceType::*;
    // (service, web disk GB, FTP accounts (別表② ※1), mail accounts)
    let table = [
        (Www, 10, 1, 0),
        (MailSecureMx, 0, 0, 10),
        (PackSecureMx, 10, 1, 10),
        (MailStandard, 0, 0, 50),
        (MailSecure, 0, 0, 10),
        (PackStandard, 10, 1, 50),
        (PackSecure, 10, 1, 10),
        (MiniPack, 10, 1, 5),
    ];
    let c = cat();
    for (st, disk, ftp, mail) in table {
        let s = c.service(st);
        assert_eq!(s.web_disk_gb, disk, "{} ディスク容量", st.code());
        assert_eq!(s.ftp_accounts, ftp, "{} FTP (※1)", st.code());
        assert_eq!(s.mail_accounts, mail, "{} メールアカウント", st.code());
        // Every service with a web site gets its one FTP account, and only those.
        assert_eq!(st.has_web(), ftp == 1, "{}", st.code());
    }
    // Secure MX: 基本ディスク容量 10GB = one 10 GB unit.
    assert_eq!(c.service(MailSecureMx).mx_disk_units, 1);
    assert_eq!(c.service(PackSecureMx).mx_disk_units, 1);
    assert_eq!(c.service(Www).mx_disk_units, 0);
}

#[test]
fn ssl_adds_one_ftp_account_per_note_1() {
    // 別表② ※1: SSL サーバホスティング にも FTP アカウントを 1 つ発行.
    let c = cat();
    let ssl = c.option(OptionItem::SslHosting).unwrap();
    assert_eq!(ssl.ftp_accounts, 1);
    assert_eq!(ssl.max_quantity, Some(1));
    let ftp = c.option(OptionItem::FtpAccountExtra).unwrap();
    assert_eq!(ftp.ftp_accounts, 1);
    // Per-unit quota additions of the other quantity options.
    assert_eq!(c.option(OptionItem::WwwDiskExtra).unwrap().web_disk_gb, 1);
    assert_eq!(c.option(OptionItem::SslDiskExtra).unwrap().web_disk_gb, 1);
    assert_eq!(
        c.option(OptionItem::MailAccountExtraStandard)
            .unwrap()
            .mail_accounts,
        10
    );
    assert_eq!(
        c.option(OptionItem::MailAccountExtraSecure)
            .unwrap()
            .mail_accounts,
        1
    );
    assert_eq!(
        c.option(OptionItem::MxAccountExtra).unwrap().mail_accounts,
        1
    );
    assert_eq!(c.option(OptionItem::MxDiskExtra).unwrap().mx_disk_units, 1);
}

// --- 別表③ オプションサービス費用 --------------------------------------------------

#[test]
fn option_fees_as_printed() {
    use FeeKind::*;
    use OptionItem::*;
    let p = |v: Decimal| Some(v);
    // (option, row, kind, amount as printed, quoted)
    let table: &[(OptionItem, &str, FeeKind, Option<Decimal>, bool)] = &[
        // ■SSL サーバホスティングサービス: 年間費用 / 月額費用.
        (
            SslHosting,
            "ssl_digital_id_agency",
            Annual,
            p(dec!(20000)),
            false,
        ),
        (
            SslHosting,
            "ssl_server_setup",
            Annual,
            p(dec!(10000)),
            false,
        ),
        (SslHosting, "ssl_digital_id_application", Annual, None, true), // 実費
        (SslHosting, "ssl_service", Monthly, p(dec!(1000)), false),
        // ■WWW サーバホスティングサービス用オプションサービス.
        (
            WwwDiskExtra,
            "www_disk_extra",
            Monthly,
            p(dec!(10000)),
            false,
        ),
        (
            SslDiskExtra,
            "ssl_disk_extra",
            Monthly,
            p(dec!(5000)),
            false,
        ),
        (
            FtpAccountExtra,
            "ftp_account_extra",
            Monthly,
            p(dec!(1000)),
            false,
        ),
        (
            AccessLog,
            "access_log_initial",
            Initial,
            p(dec!(3000)),
            false,
        ),
        (AccessLog, "access_log", Monthly, p(dec!(3000)), false),
        (WebDetect100, "web_detect100", Monthly, None, true), // WEB ディテクト約款
        (WebDetect300, "web_detect300", Monthly, None, true),
        (Ips, "ips_initial", Initial, p(dec!(10000)), false),
        (Ips, "ips", Monthly, p(dec!(10000)), false),
        // ■Mail サーバホスティングサービス (スタンダード、セキュア) 専用.
        (
            MailingListStandard,
            "mailing_list_standard_initial",
            Initial,
            p(dec!(10000)),
            false,
        ),
        (
            MailingListStandard,
            "mailing_list_standard",
            Monthly,
            p(dec!(1000)),
            false,
        ),
        (
            MailingListSecure,
            "mailing_list_secure_initial",
            Initial,
            p(dec!(10000)),
            false,
        ),
        (
            MailingListSecure,
            "mailing_list_secure",
            Monthly,
            p(dec!(1500)),
            false,
        ),
        (
            MailAccountExtraStandard,
            "mail_account_extra_standard",
            Monthly,
            p(dec!(1000)),
            false,
        ),
        (
            MailAccountExtraSecure,
            "mail_account_extra_secure",
            Monthly,
            p(dec!(300)),
            false,
        ),
        (MailAudit, "mail_audit_initial", Initial, None, true), // 実費
        (MailAudit, "mail_audit", Monthly, p(dec!(30000)), false),
        // ■セキュア MX 専用オプションサービス①.
        (
            MxAccountExtra,
            "mx_account_extra",
            Monthly,
            p(dec!(300)),
            false,
        ),
        (MxDiskExtra, "mx_disk_extra", Monthly, p(dec!(200)), false),
        // ■セキュア MX 専用オプションサービス (その他).
        (
            MxMailingList,
            "mx_mailing_list_initial",
            Initial,
            p(dec!(10000)),
            false,
        ),
        (
            MxMailingList,
            "mx_mailing_list",
            Monthly,
            p(dec!(1000)),
            false,
        ),
        (MxMailingList, "mx_mailing_list_lists", Metered, None, true), // ※13
        (MxArchive, "mx_archive", Metered, None, true),                // ※14
        (MxAudit, "mx_audit", Metered, None, true),                    // ※14
        (MxSpareMail, "mx_spare_mail", Metered, None, true),           // ※15
        (MxSandbox, "mx_sandbox", Metered, None, true),                // ※14
        (MxPrivateRelay, "mx_private_relay", Monthly, None, true),     // 当社が別途示す金額
        // ■インターネット接続オプションサービス.
        (FletsIsdn, "flets_isdn", Monthly, p(dec!(1500)), false),
        (FletsHikari, "flets_hikari", Monthly, None, true),
    ];
    let c = cat();
    for &(item, row, kind, amount, quoted) in table {
        assert_eq!(
            fee(&c, item, row),
            (kind, amount, quoted),
            "{item:?} / {row}"
        );
    }
    // No option carries a fee the table above does not list.
    let listed: usize = c.options().map(|(_, o)| o.fees.len()).sum();
    assert_eq!(
        listed,
        table.len(),
        "a fee row is in the catalog but not in this test's table"
    );
    // IIJ ID / DOX 連携: 別表 lists no fee.
    assert!(c.option(MxIijIdLink).unwrap().fees.is_empty());
    assert!(c.option(MxDoxLink).unwrap().fees.is_empty());
}

#[test]
fn every_option_item_has_a_catalog_row() {
    let c = cat();
    let all = [
        "ssl_hosting",
        "www_disk_extra",
        "ssl_disk_extra",
        "ftp_account_extra",
        "access_log",
        "web_detect100",
        "web_detect300",
        "ips",
        "mailing_list_standard",
        "mailing_list_secure",
        "mail_account_extra_standard",
        "mail_account_extra_secure",
        "mail_audit",
        "mx_account_extra",
        "mx_disk_extra",
        "mx_mailing_list",
        "mx_archive",
        "mx_audit",
        "mx_spare_mail",
        "mx_sandbox",
        "mx_private_relay",
        "mx_iij_id_link",
        "mx_dox_link",
        "mx_account_api",
        "flets_isdn",
        "flets_hikari",
    ];
    assert_eq!(c.options().count(), all.len());
    for code in all {
        let item: OptionItem = serde_json::from_value(serde_json::json!(code)).unwrap();
        assert_eq!(item.code(), code);
        assert!(c.option(item).is_some(), "{code}");
    }
}

#[test]
fn option_service_types_follow_article_6() {
    use OptionItem::*;
    let c = cat();
    let services = |i: OptionItem| -> BTreeSet<String> {
        c.option(i).unwrap().services.iter().cloned().collect()
    };
    let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
    // 第6条2項: SSL only with WWW, the packs and the (secure) Mini pack; never alone
    // and never with a mail-only service.
    assert_eq!(
        services(SslHosting),
        set(&[
            "www",
            "pack_secure_mx",
            "pack_standard",
            "pack_secure",
            "mini_pack"
        ])
    );
    // 第6条2項: mailing lists only with Mail (スタンダード、セキュア), パック
    // (スタンダード、セキュア) and ミニパック (セキュア): the Mini pack takes
    // the secure list only.
    assert_eq!(
        services(MailingListStandard),
        set(&["mail_standard", "pack_standard"])
    );
    assert_eq!(
        services(MailingListSecure),
        set(&["mail_secure", "pack_secure", "mini_pack"])
    );
    // Secure MX options only with services whose mail is on Secure MX.
    for item in [
        MxAccountExtra,
        MxDiskExtra,
        MxMailingList,
        MxArchive,
        MxAudit,
        MxSpareMail,
        MxSandbox,
        MxPrivateRelay,
        MxIijIdLink,
        MxDoxLink,
        MxAccountApi,
    ] {
        for s in services(item) {
            assert!(
                ServiceType::from_code(&s).unwrap().has_secure_mx(),
                "{item:?} with {s}"
            );
        }
    }
    // 第6条3項 prerequisites.
    let req = |i: OptionItem| c.option(i).unwrap().requires.clone();
    assert_eq!(req(MxMailingList), ["mailbox_plus"]); // (1)
    assert_eq!(req(MxPrivateRelay), ["mailbox_plus"]); // (2)
    assert_eq!(req(MxIijIdLink), ["iij_id"]); // (3)
    assert_eq!(req(MxDoxLink), ["dox"]); // (4)
    assert!(req(MxArchive).is_empty());
    assert_eq!(
        c.option(SslDiskExtra).unwrap().requires_option.as_deref(),
        Some("ssl_hosting")
    );
    // 別表③ 注2: Secure MX disk can never be reduced, and is added online by the
    // administrator (no 第17条 notice).
    let disk = c.option(MxDiskExtra).unwrap();
    assert!(!disk.reducible);
    assert!(disk.notice_exempt);
    let others_reducible = c
        .options()
        .filter(|(i, _)| **i != MxDiskExtra)
        .all(|(_, o)| o.reducible && !o.notice_exempt);
    assert!(others_reducible);
}

#[test]
fn the_account_api_option_is_listed_without_a_fee() {
    // 別表③ "Mail サーバホスティングサービス（セキュア MX）オプションサービス内容"
    // lists アカウント管理 API オプション; no price table has a row for it.
    let c = cat();
    let o = c.option(OptionItem::MxAccountApi).unwrap();
    assert!(o.fees.is_empty());
    assert_eq!(o.max_quantity, Some(1));
    assert_eq!(
        o.services,
        ["mail_secure_mx", "pack_secure_mx", "mini_pack"]
    );
}

#[test]
fn limits_the_terms_do_not_state_are_operational() {
    // 別表③1 prices 追加 FTP アカウント "1 アカウント毎" with no upper limit:
    // the 99 is ours, kept apart from the terms' quantities.
    let c = cat();
    let ftp = c.option(OptionItem::FtpAccountExtra).unwrap();
    assert_eq!(ftp.max_quantity, None);
    assert_eq!(ftp.operational_max, Some(99));
    // Every max_quantity of the terms is the 1 of an option priced per
    // contract without a unit.
    for (item, o) in c.options() {
        assert!(o.max_quantity.is_none_or(|m| m == 1), "{item:?}");
        if *item != OptionItem::FtpAccountExtra {
            assert_eq!(o.operational_max, None, "{item:?}");
        }
    }
}

// --- 別表② 2. 変更料金 ------------------------------------------------------------

#[test]
fn change_fees_as_printed() {
    let c = cat();
    let t = c.one_time(OneTimeItem::ServiceTypeChange).unwrap();
    assert_eq!(t.amount, dec!(10000));
    assert_eq!(t.closed_to_new, None);
    let s = c.one_time(OneTimeItem::SpamScanSetting).unwrap();
    assert_eq!(s.amount, dec!(3000));
    // ※6: closed 2023-04-30.
    assert_eq!(s.closed_to_new, Some(d(2023, 4, 30)));
    // Domain operations are priced by their registry table, not here.
    assert!(c.one_time(OneTimeItem::DomainRegistration).is_none());
}

/// (item, JPRS 属性型・地域型, JPRS 汎用, gTLD).
type DomainRow = (
    OneTimeItem,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
);

// --- 別表③ ドメインお預かり DNS 運用サービス -----------------------------------------

#[test]
fn domain_fee_tables_as_printed() {
    use OneTimeItem::*;
    let c = cat();
    let y = |v: i64| Some(Decimal::from(v));
    // (item, JPRS 属性型・地域型, JPRS 汎用, gTLD); None = not offered for that class.
    let table: &[DomainRow] = &[
        (DomainRegistration, y(10000), y(5000), y(10000)), // 新規取得
        (DomainNameChange, y(10000), None, None),          // ドメイン名変更申請
        (DomainAdminTransfer, y(10000), y(5000), None),    // ドメイン管理者移転申請
        (DomainRegistrarTransfer, None, None, y(10000)),   // レジストラ移転申請
        (DomainTransferExpedited, None, None, y(30000)),   // 申請完了期間をお約束する場合
        (DomainTransferNormal, None, None, y(10000)),      // 通常の譲渡申請
        (DomainAbolishAtRenewal, y(0), y(0), y(0)),        // 更新時に廃止: 無料
        (DomainAbolishEarly, y(3000), y(3000), y(10000)),  // 有効期限内の廃止
        (RegistrationChange, y(3000), y(3000), y(10000)),  // 記載事項変更届 ※16
        (RegistrationRenewal, y(10000), y(5000), y(10000)), // 登録更新 ※17
        (HostName, None, None, y(5000)),                   // ホスト名 登録、変更、削除
        (DnsForwardChange, y(3000), y(3000), y(3000)),     // 設定変更 (正引き) ※18
        (DnsReverseChange, y(3000), y(3000), y(3000)),     // 逆引きは設定毎
        // Not domain operations at all.
        (ServiceTypeChange, None, None, None),
        (SpamScanSetting, None, None, None),
    ];
    let attr = c.domain_fees(RegistryClass::JprsAttribute);
    let gen_ = c.domain_fees(RegistryClass::JprsGeneric);
    let gtld = c.domain_fees(RegistryClass::Gtld);
    for &(item, a, g, t) in table {
        assert_eq!(attr.one_time(item), a, "属性型・地域型 {item:?}");
        assert_eq!(gen_.one_time(item), g, "汎用 {item:?}");
        assert_eq!(gtld.one_time(item), t, "gTLD {item:?}");
    }
    // DNS 運用サービス: 1,000 円 (月額); 年額の場合 10,000 / 5,000 / 10,000 円.
    for (t, yearly) in [(attr, dec!(10000)), (gen_, dec!(5000)), (gtld, dec!(10000))] {
        assert_eq!(t.dns_monthly, dec!(1000), "{}", t.table);
        assert_eq!(t.dns_yearly, yearly, "{}", t.table);
    }
    assert!(attr.table.contains("属性型"));
    assert!(gen_.table.contains("汎用"));
    assert!(gtld.table.contains("gTLD"));
}

// --- 第36条 消費税 -------------------------------------------------------------------

#[test]
fn tax_rate_by_date() {
    let c = cat();
    assert_eq!(c.tax_rate(d(1989, 3, 31)), dec!(0));
    assert_eq!(c.tax_rate(d(1989, 4, 1)), dec!(0.03));
    assert_eq!(c.tax_rate(d(1997, 3, 31)), dec!(0.03));
    assert_eq!(c.tax_rate(d(1997, 4, 1)), dec!(0.05));
    assert_eq!(c.tax_rate(d(2014, 3, 31)), dec!(0.05));
    assert_eq!(c.tax_rate(d(2014, 4, 1)), dec!(0.08));
    assert_eq!(c.tax_rate(d(2019, 9, 30)), dec!(0.08));
    assert_eq!(c.tax_rate(d(2019, 10, 1)), dec!(0.10));
    assert_eq!(c.tax_rate(d(2027, 1, 31)), dec!(0.10));
}

// --- 第5条 lifecycle ------------------------------------------------------------------

#[test]
fn lifecycle_dates_of_article_5() {
    use ServiceType::*;
    let c = cat();
    // Open services have no dates.
    for st in [Www, MailSecureMx, PackSecureMx] {
        let s = c.service(st);
        assert_eq!(
            (s.closed_to_new, s.service_end),
            (None, None),
            "{}",
            st.code()
        );
        assert_eq!(s.continuation_for_customers_on, None);
    }
    // Mail / pack (スタンダード、セキュア): 2023-04-30 受付終了, 2024-03-30 サービス終了.
    for st in [MailStandard, MailSecure, PackStandard, PackSecure] {
        let s = c.service(st);
        assert_eq!(s.closed_to_new, Some(d(2023, 4, 30)), "{}", st.code());
        assert_eq!(s.service_end, Some(d(2024, 3, 30)), "{}", st.code());
        assert_eq!(s.continuation_for_customers_on, None, "{}", st.code());
    }
    // ミニパック: 2023-03-30 受付終了, 2024-03-30 終了, and the 第5条 注 exception for
    // customers holding it on 2023-03-30.
    let m = c.service(MiniPack);
    assert_eq!(m.closed_to_new, Some(d(2023, 3, 30)));
    assert_eq!(m.service_end, Some(d(2024, 3, 30)));
    assert_eq!(m.continuation_for_customers_on, Some(d(2023, 3, 30)));
    // Legacy options: ※11 ※2 ※12 close 2023-04-30 too.
    for item in [
        OptionItem::MailingListStandard,
        OptionItem::MailingListSecure,
        OptionItem::MailAccountExtraStandard,
        OptionItem::MailAccountExtraSecure,
        OptionItem::MailAudit,
    ] {
        assert_eq!(
            c.option(item).unwrap().closed_to_new,
            Some(d(2023, 4, 30)),
            "{item:?}"
        );
    }
    assert_eq!(
        c.option(OptionItem::SslHosting).unwrap().closed_to_new,
        None
    );
}

// --- validation of a broken catalog ---------------------------------------------------

fn broken(from: &str, to: &str) -> CatalogError {
    assert!(
        BUILTIN.contains(from),
        "test setup: `{from}` not in the catalog"
    );
    let text = BUILTIN.replacen(from, to, 1);
    Catalog::parse(&text).expect_err("the broken catalog must be refused")
}

fn appended(extra: &str) -> CatalogError {
    Catalog::parse(&format!("{BUILTIN}\n{extra}")).expect_err("the broken catalog must be refused")
}

fn assert_invalid(e: CatalogError, needle: &str) {
    match &e {
        CatalogError::Invalid(m) => assert!(m.contains(needle), "`{m}` should name `{needle}`"),
        other => panic!("expected Invalid naming `{needle}`, got {other:?}"),
    }
}

#[test]
fn unknown_prerequisite_is_named() {
    assert_invalid(
        broken(r#"requires = ["dox"]"#, r#"requires = ["doxx"]"#),
        "unknown prerequisite `doxx`",
    );
    assert_invalid(
        broken(
            r#"requires_option = "ssl_hosting""#,
            r#"requires_option = "ssl_hostingz""#,
        ),
        "requires unknown option `ssl_hostingz`",
    );
}

#[test]
fn unknown_codes_are_named() {
    assert_invalid(
        broken(r#"code = "www""#, r#"code = "web""#),
        "unknown service type `web`",
    );
    assert_invalid(
        broken(r#"code = "ips""#, r#"code = "ipz""#),
        "unknown option `ipz`",
    );
    assert_invalid(
        broken(r#"code = "spam_scan_setting""#, r#"code = "spam_scan""#),
        "unknown one-time item `spam_scan`",
    );
    assert_invalid(
        broken(
            r#"services = ["www", "pack_secure_mx","#,
            r#"services = ["wwww", "pack_secure_mx","#,
        ),
        "unknown service type `wwww`",
    );
}

#[test]
fn duplicate_codes_are_named() {
    assert_invalid(
        appended("[[service]]\ncode = \"www\"\nname = \"x\"\narticle = \"x\"\nmonthly = \"1\"\n"),
        "service type `www` listed twice",
    );
    assert_invalid(
        appended(
            "[[option]]\ncode = \"ips\"\nname = \"x\"\narticle = \"x\"\nservices = [\"www\"]\nfees = []\n",
        ),
        "option `ips` listed twice",
    );
    assert_invalid(
        appended(
            "[[one_time]]\ncode = \"spam_scan_setting\"\nname = \"x\"\narticle = \"x\"\namount = \"1\"\n",
        ),
        "one-time item `spam_scan_setting` listed twice",
    );
    assert_invalid(
        appended(
            "[[domain_fee]]\nregistry = \"gtld\"\ntable = \"x\"\ndns_monthly = \"1\"\ndns_yearly = \"1\"\n\
             dns_forward_change = \"1\"\ndns_reverse_change = \"1\"\n",
        ),
        "listed twice",
    );
}

#[test]
fn negative_or_fractional_fees_are_named() {
    assert_invalid(
        broken(r#"monthly = "4500""#, r#"monthly = "-4500""#),
        "-4500 is not a whole, non-negative yen",
    );
    assert_invalid(
        broken(r#"initial = "20000""#, r#"initial = "19999.5""#),
        "19999.5 is not a whole",
    );
    assert_invalid(
        broken(
            r#"kind = "monthly", amount = "10000" }]"#,
            r#"kind = "monthly", amount = "-10000" }]"#,
        ),
        "www_disk_extra: -10000",
    );
    assert_invalid(
        broken(
            r#"amount = "3000"
closed_to_new"#,
            "amount = \"-3000\"\nclosed_to_new",
        ),
        "spam_scan_setting: -3000",
    );
    assert_invalid(
        broken(r#"registration = "5000""#, r#"registration = "-5000""#),
        "-5000",
    );
    assert_invalid(
        broken(r#"dns_yearly = "5000""#, r#"dns_yearly = "5000.5""#),
        "5000.5",
    );
}

#[test]
fn fees_must_be_priced_or_quoted() {
    assert_invalid(
        broken(
            r#"kind = "monthly", quoted = true }]"#,
            r#"kind = "monthly" }]"#,
        ),
        "give either an amount or quoted = true",
    );
    assert_invalid(
        broken(
            r#"kind = "monthly", amount = "1500" }]"#,
            r#"kind = "monthly", amount = "1500", quoted = true }]"#,
        ),
        "fee `flets_isdn`: give either an amount or quoted = true",
    );
}

#[test]
fn missing_rows_and_bad_tax_are_named() {
    // Drop the Mini pack row: every service type needs one.
    let start = BUILTIN.find("[[service]]\ncode = \"mini_pack\"").unwrap();
    let end = start + BUILTIN[start..].find("# ---").unwrap();
    let text = format!("{}{}", &BUILTIN[..start], &BUILTIN[end..]);
    assert_invalid(
        Catalog::parse(&text).unwrap_err(),
        "service type `mini_pack` has no row",
    );
    // A gTLD table is required.
    let start = BUILTIN.find("[[domain_fee]]\nregistry = \"gtld\"").unwrap();
    let end = start + BUILTIN[start..].find("# ---").unwrap();
    let text = format!("{}{}", &BUILTIN[..start], &BUILTIN[end..]);
    assert_invalid(
        Catalog::parse(&text).unwrap_err(),
        "Gtld has no domain fee table",
    );
    assert_invalid(
        broken(r#"rate = "0.10""#, r#"rate = "1.10""#),
        "tax rate 1.10 is not between 0 and 1",
    );
}

#[test]
fn unknown_fields_and_syntax_do_not_parse() {
    let e = broken(
        "web_disk_gb = 10\nftp_accounts = 1          # 別表② ※1\nmail_accounts = 0",
        "web_disk_gb = 10\nftp_accounts = 1\nmail_accounts = 0\nmailboxes = 3",
    );
    assert!(
        matches!(&e, CatalogError::Parse(m) if m.contains("unknown field `mailboxes`")),
        "{e}"
    );
    let e = Catalog::parse("revision = ").unwrap_err();
    assert!(matches!(e, CatalogError::Parse(_)), "{e}");
    let e = Catalog::load(Path::new("/nonexistent/catalog.toml")).unwrap_err();
    assert!(
        matches!(&e, CatalogError::Read { path, .. } if path == "/nonexistent/catalog.toml"),
        "{e}"
    );
}
