//! Statements against the terms, with the arithmetic done by hand from the 別表
//! prices: initial fees in the start month (第29条), monthly fees from the month
//! after (第30条3項), tax at the rate of the statement date (第36条), every
//! fraction of a yen truncated (第28条3項), outage credits (第37条), late-payment
//! damages (第35条), and properties that hold for any contract.

use super::*;
use crate::contract::{OptionLine, Outage, ServiceType};
use proptest::prelude::*;
use rust_decimal_macros::dec;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn ym(s: &str) -> YearMonth {
    YearMonth::parse(s).unwrap()
}

fn cat() -> Catalog {
    Catalog::builtin().unwrap()
}

fn load(bytes: &[u8]) -> Contract {
    Contract::from_json(bytes).unwrap()
}

fn www_ssl() -> Contract {
    load(include_bytes!("../../../examples/contracts/www-ssl.json"))
}
fn www_ssl_more_ftp() -> Contract {
    load(include_bytes!(
        "../../../examples/contracts/www-ssl-more-ftp.json"
    ))
}
fn securemx() -> Contract {
    load(include_bytes!("../../../examples/contracts/securemx.json"))
}
fn pack_history() -> Vec<Contract> {
    vec![
        load(include_bytes!("../../../examples/contracts/pack-dns.json")),
        load(include_bytes!(
            "../../../examples/contracts/pack-dns-suspend.json"
        )),
        load(include_bytes!(
            "../../../examples/contracts/pack-dns-resume.json"
        )),
        load(include_bytes!(
            "../../../examples/contracts/pack-dns-terminate.json"
        )),
    ]
}

fn securemx_to_pack() -> Contract {
    load(include_bytes!(
        "../../../examples/contracts/securemx-to-pack.json"
    ))
}
fn kobo_history() -> Vec<Contract> {
    vec![
        load(include_bytes!("../../../examples/contracts/www-kobo.json")),
        load(include_bytes!(
            "../../../examples/contracts/www-kobo-inherit.json"
        )),
        load(include_bytes!(
            "../../../examples/contracts/www-kobo-suspend.json"
        )),
        load(include_bytes!(
            "../../../examples/contracts/www-kobo-terminate.json"
        )),
    ]
}

/// A Mail (スタンダード) contract since 2022-02, no options (5,000 a month).
fn mail_standard() -> Contract {
    let mut c = securemx();
    c.service = ServiceType::MailStandard;
    c.requested_on = d(2022, 1, 10);
    c.service_start = d(2022, 2, 1);
    c.options.clear();
    c.usage.clear();
    c.domains.clear();
    c.secure_mx = None;
    c
}

fn st(history: &[Contract], month: &str) -> Statement {
    statement(history, &cat(), ym(month)).unwrap()
}

/// (row, quantity, amount) of every line.
fn rows(s: &Statement) -> Vec<(&str, u32, Decimal)> {
    s.lines
        .iter()
        .map(|l| (l.row.as_str(), l.quantity, l.amount))
        .collect()
}

#[track_caller]
fn totals(s: &Statement, subtotal: Decimal, tax: Decimal, total: Decimal) {
    assert_eq!(
        (s.subtotal, s.tax, s.total),
        (subtotal, tax, total),
        "{s:#?}"
    );
}

// --- the examples -------------------------------------------------------------------------

#[test]
fn www_ssl_first_month() {
    let s = st(&[www_ssl()], "2026-12");
    // Start month: 加入料 (別表①) and the SSL annual fees (別表③1 年間費用), the
    // ※17 custody renewal in the month of the request and the registration.
    // No monthly fee yet (第30条3項: from the month after the start).
    assert_eq!(
        rows(&s),
        [
            ("service_initial:www", 1, dec!(20000)),   // 別表① 20,000
            ("ssl_digital_id_agency", 1, dec!(20000)), // 取得代行手数料 20,000
            ("ssl_server_setup", 1, dec!(10000)),      // サーバ設定料 10,000
            ("ssl_digital_id_application", 1, dec!(15000)), // 申請料 実費 (quoted 15,000)
            ("domain_renewal:jprsattribute", 1, dec!(10000)), // 属性型 登録更新 10,000
            ("domain_registration:jprsattribute", 1, dec!(10000)), // 属性型 新規取得 10,000
        ]
    );
    // 85,000 × 10% = 8,500.
    totals(&s, dec!(85000), dec!(8500), dec!(93500));
    assert_eq!(s.tax_rate, dec!(0.10));
}

#[test]
fn www_ssl_monthly() {
    let s = st(&[www_ssl()], "2027-01");
    assert_eq!(
        rows(&s),
        [
            ("service:www", 1, dec!(10000)),      // 別表② 10,000
            ("ssl_service", 1, dec!(1000)),       // SSL 月額 1,000
            ("ftp_account_extra", 2, dec!(2000)), // 2 × 1,000
            ("www_disk_extra", 1, dec!(10000)),   // 1 GB × 10,000
            ("dns_operation_monthly:jprsattribute", 1, dec!(1000)), // DNS 月額 1,000
        ]
    );
    // 24,000 × 10% = 2,400.
    totals(&s, dec!(24000), dec!(2400), dec!(26400));
    // Annual SSL fees come back twelve months after the start month.
    let s = st(&[www_ssl()], "2027-12");
    // 24,000 + 20,000 + 10,000 + 15,000 + the ※17 renewal 10,000 = 79,000.
    totals(&s, dec!(79000), dec!(7900), dec!(86900));
}

#[test]
fn more_ftp_keeps_billing_the_accounts_held_until_the_change() {
    // Revision 2 (requested 2027-01-05) raises the FTP accounts from 2 to 3 from
    // 2027-02-01. January and February still bill the 2 held; the third is billed
    // from March (第30条3項: the month after it takes effect).
    let h = [www_ssl(), www_ssl_more_ftp()];
    for (month, ftp) in [("2027-01", 2), ("2027-02", 2), ("2027-03", 3)] {
        let s = st(&h, month);
        assert_eq!(s.revision, 2, "{month}");
        let l = s
            .lines
            .iter()
            .find(|l| l.row == "ftp_account_extra")
            .expect(month);
        assert_eq!(
            (l.quantity, l.amount),
            (ftp, Decimal::from(ftp * 1000)),
            "{month}"
        );
    }
    // 10,000 + 1,000 + 2,000 + 10,000 + 1,000 = 24,000 in Feb; 25,000 in March.
    totals(&st(&h, "2027-02"), dec!(24000), dec!(2400), dec!(26400));
    totals(&st(&h, "2027-03"), dec!(25000), dec!(2500), dec!(27500));
    // The first month is still revision 1's.
    totals(&st(&h, "2026-12"), dec!(85000), dec!(8500), dec!(93500));
}

#[test]
fn securemx_statements() {
    let h = [securemx()];
    // 2026-12: 加入料 20,000 + メーリングリスト 初期費用 10,000 + DNS 年額 (汎用) 5,000.
    let s = st(&h, "2026-12");
    assert_eq!(
        rows(&s),
        [
            ("service_initial:mail_secure_mx", 1, dec!(20000)),
            ("mx_mailing_list_initial", 1, dec!(10000)),
            ("dns_operation_yearly:jprsgeneric", 1, dec!(5000)),
        ]
    );
    totals(&s, dec!(35000), dec!(3500), dec!(38500));
    // 2027-01: 4,500 + 5 × 300 + 2 × 200 + 1,000 + ※13 lists 4 × 100 (quoted) = 7,800.
    let s = st(&h, "2027-01");
    assert_eq!(
        rows(&s),
        [
            ("service:mail_secure_mx", 1, dec!(4500)),
            ("mx_account_extra", 5, dec!(1500)),
            ("mx_disk_extra", 2, dec!(400)),
            ("mx_mailing_list", 1, dec!(1000)),
            ("mx_mailing_list_lists", 4, dec!(400)),
        ]
    );
    totals(&s, dec!(7800), dec!(780), dec!(8580));
    // 2027-02: no usage reported, 7,400.
    totals(&st(&h, "2027-02"), dec!(7400), dec!(740), dec!(8140));
    // 2027-12: the DNS year again, 7,400 + 5,000.
    totals(&st(&h, "2027-12"), dec!(12400), dec!(1240), dec!(13640));
}

#[test]
fn pack_history_suspend_resume_terminate() {
    let h = pack_history();
    // 2026-12: 加入料 20,000 + gTLD 登録更新 10,000 (※17).
    let s = st(&h, "2026-12");
    assert_eq!(s.revision, 1);
    totals(&s, dec!(30000), dec!(3000), dec!(33000));
    // 2027-01, suspended (revision 2): billed as provided (第27条2項):
    // 13,000 + 1,000 (FTP) + 1,000 (DNS 月額) = 15,000.
    let s = st(&h, "2027-01");
    assert_eq!(s.revision, 2);
    totals(&s, dec!(15000), dec!(1500), dec!(16500));
    assert!(
        s.notes.iter().any(|n| n.contains("第27条2項")),
        "{:?}",
        s.notes
    );
    // 2027-02: revision 4 (terminating at 2027-03-31) is in force; the minimum
    // period (2026-12-01 .. 2027-02-28) is over, so no 第33条 line.
    let s = st(&h, "2027-02");
    assert_eq!(s.revision, 4);
    totals(&s, dec!(15000), dec!(1500), dec!(16500));
    let s = st(&h, "2027-03");
    assert!(s.lines.iter().all(|l| l.row != "early_termination"));
    totals(&s, dec!(15000), dec!(1500), dec!(16500));
    // After the end: nothing.
    let s = st(&h, "2027-04");
    assert!(s.lines.is_empty());
    totals(&s, dec!(0), dec!(0), dec!(0));
    // Before any revision was requested: an error, not an empty statement.
    assert_eq!(
        statement(&h, &cat(), ym("2026-10")),
        Err(BillingError::NotYetRequested(ym("2026-10")))
    );
}

#[test]
fn history_errors() {
    assert_eq!(
        statement(&[], &cat(), ym("2027-01")),
        Err(BillingError::Empty)
    );
    let e = statement(&[www_ssl(), securemx()], &cat(), ym("2027-01")).unwrap_err();
    assert_eq!(
        e,
        BillingError::MixedHistory("C-1001".into(), "C-2001".into())
    );
}

// --- 第12条, 第33条: ending inside the minimum period ------------------------------------

#[test]
fn early_termination_bills_the_rest_of_the_minimum_period() {
    // Start 2026-12-15: the minimum period runs to 2027-03-14. Ending on
    // 2027-01-31 leaves February and March: 2 × 10,000 in January, besides
    // January's own 10,000.
    let mut c = www_ssl();
    c.options.clear();
    c.domains[0].dns_operation = DnsOperation::None;
    c.domains[0].custody = false;
    c.one_time.clear();
    c.service_start = d(2026, 12, 15);
    c.status = Status::terminated(d(2027, 1, 31), d(2026, 12, 28));
    let s = st(&[c.clone()], "2027-01");
    assert_eq!(
        rows(&s),
        [
            ("service:www", 1, dec!(10000)),
            ("early_termination", 2, dec!(20000))
        ]
    );
    assert!(s.lines[1].article.contains("第33条"));
    totals(&s, dec!(30000), dec!(3000), dec!(33000));
    // Ending at the end of the period's last month: nothing extra.
    c.status = Status::terminated(d(2027, 3, 31), d(2027, 2, 26));
    assert!(
        st(&[c], "2027-03")
            .lines
            .iter()
            .all(|l| l.row != "early_termination")
    );
}

// --- 第37条 outage credit -------------------------------------------------------------------

#[test]
fn outage_credit_formula() {
    // floor(hours / 24) × monthly / 30, truncated once at the end.
    assert_eq!(outage_credit(23, dec!(13000)), dec!(0));
    assert_eq!(outage_credit(24, dec!(13000)), dec!(433)); // 433.33…
    assert_eq!(outage_credit(47, dec!(13000)), dec!(433));
    assert_eq!(outage_credit(48, dec!(13000)), dec!(866)); // 866.66…
    assert_eq!(outage_credit(72, dec!(13000)), dec!(1300)); // exactly 3 × 13,000 / 30
    assert_eq!(outage_credit(720, dec!(4500)), dec!(4500)); // 30 days = a month
}

fn with_outage(started: NaiveDate, hours: u32, claimed_on: NaiveDate) -> Vec<Contract> {
    let mut h = pack_history();
    h.truncate(1);
    h[0].outages.push(Outage {
        started,
        hours,
        claimed_on,
    });
    h
}

#[test]
fn outage_credit_on_the_statement() {
    // 3 days out in January, claimed in February: February's 15,000 less 1,300.
    let h = with_outage(d(2027, 1, 10), 80, d(2027, 2, 3));
    let s = st(&h, "2027-02");
    let l = s.lines.iter().find(|l| l.row == "outage_credit").unwrap();
    assert_eq!(
        (l.quantity, l.amount, l.article.as_str()),
        (3, dec!(-1300), "第37条")
    );
    // 13,700 × 10% = 1,370.
    totals(&s, dec!(13700), dec!(1370), dec!(15070));
    // Nothing in the month it happened.
    totals(&st(&h, "2027-01"), dec!(15000), dec!(1500), dec!(16500));
    // Under 24 hours: no credit line.
    let h = with_outage(d(2027, 1, 10), 23, d(2027, 2, 3));
    assert!(
        st(&h, "2027-02")
            .lines
            .iter()
            .all(|l| l.row != "outage_credit")
    );
}

#[test]
fn outage_claim_must_come_within_three_months() {
    let h = with_outage(d(2027, 1, 10), 48, d(2027, 4, 10));
    let s = st(&h, "2027-04");
    assert!(s.lines.iter().any(|l| l.row == "outage_credit"));
    let h = with_outage(d(2027, 1, 10), 48, d(2027, 4, 11));
    let s = st(&h, "2027-04");
    assert!(s.lines.iter().all(|l| l.row != "outage_credit"));
    assert!(
        s.notes.iter().any(|n| n.contains("right is lost")),
        "{:?}",
        s.notes
    );
}

#[test]
fn outage_credit_never_makes_a_month_negative() {
    // Three month-long outages claimed in one month: 3 × 13,000 against 15,000.
    let mut h = with_outage(d(2027, 1, 1), 720, d(2027, 2, 10));
    h[0].outages.push(Outage {
        started: d(2027, 1, 2),
        hours: 720,
        claimed_on: d(2027, 2, 10),
    });
    h[0].outages.push(Outage {
        started: d(2027, 1, 3),
        hours: 720,
        claimed_on: d(2027, 2, 10),
    });
    let s = st(&h, "2027-02");
    totals(&s, dec!(0), dec!(0), dec!(0));
    // No credit line turns into a charge.
    let credits: Vec<Decimal> = s
        .lines
        .iter()
        .filter(|l| l.row == "outage_credit")
        .map(|l| l.amount)
        .collect();
    assert_eq!(credits.len(), 3);
    assert!(credits.iter().all(|a| *a <= Decimal::ZERO), "{credits:?}");
    assert_eq!(credits.iter().copied().sum::<Decimal>(), dec!(-15000));
    assert!(s.notes.iter().any(|n| n.contains("capped")));
}

// --- 第35条, 第34条, 第36条 -----------------------------------------------------------------

#[test]
fn late_payment_damages_at_14_6_percent_a_year() {
    // 100,000 × 0.146 × 30 / 365 = 1,200 exactly.
    assert_eq!(late_payment_damages(dec!(100000), 30), dec!(1200));
    // 10,000 × 0.146 / 365 = 4.
    assert_eq!(late_payment_damages(dec!(10000), 1), dec!(4));
    // 12,345 × 0.146 × 17 / 365 = 83.946 → 83 (第28条3項).
    assert_eq!(late_payment_damages(dec!(12345), 17), dec!(83));
    // A full year is 14.6 %.
    assert_eq!(late_payment_damages(dec!(16500), 365), dec!(2409));
    assert_eq!(late_payment_damages(dec!(16500), 0), dec!(0));
}

#[test]
fn surcharge_is_twice_the_evaded_amount() {
    assert_eq!(surcharge(dec!(15000)), dec!(30000));
}

#[test]
fn tax_follows_the_rate_of_the_date_and_truncates() {
    let catalog = cat();
    // 11,234 × 10% = 1,123.4 → 1,123; × 8% = 898.72 → 898.
    assert_eq!(
        consumption_tax(&catalog, dec!(11234), d(2019, 10, 1)),
        dec!(1123)
    );
    assert_eq!(
        consumption_tax(&catalog, dec!(11234), d(2019, 9, 30)),
        dec!(898)
    );
    assert_eq!(
        consumption_tax(&catalog, dec!(11234), d(2014, 3, 31)),
        dec!(561)
    ); // 5%: 561.7
    // On a statement: a WWW contract with a quoted WEB ディテクト 100 at 1,234.
    let mut c = www_ssl();
    c.options = vec![OptionLine {
        item: OptionItem::WebDetect100,
        quantity: 1,
        effective: Some(d(2019, 8, 1)),
        quoted_monthly: Some(dec!(1234)),
        quoted_initial: None,
    }];
    c.domains[0].dns_operation = DnsOperation::None;
    c.domains[0].custody = false;
    c.one_time.clear();
    c.requested_on = d(2019, 7, 1);
    c.service_start = d(2019, 8, 1);
    // September 2019 (8%): 11,234 × 0.08 = 898.72 → 898.
    let s = st(&[c.clone()], "2019-09");
    assert_eq!(s.tax_rate, dec!(0.08));
    totals(&s, dec!(11234), dec!(898), dec!(12132));
    // October 2019 (10%): 1,123.4 → 1,123.
    let s = st(&[c], "2019-10");
    assert_eq!(s.tax_rate, dec!(0.10));
    totals(&s, dec!(11234), dec!(1123), dec!(12357));
}

// --- billable state --------------------------------------------------------------------------

#[test]
fn billable_state_lists_items_and_two_statements() {
    let c = securemx();
    let b = billable_state(&c, &cat(), d(2027, 1, 15));
    let find = |row: &str| {
        b.items
            .iter()
            .find(|i| i.row == row)
            .unwrap_or_else(|| panic!("{row}"))
    };
    assert_eq!(
        find("service_initial:mail_secure_mx").unit_price,
        Some(dec!(20000))
    );
    assert_eq!(find("service:mail_secure_mx").unit_price, Some(dec!(4500)));
    assert_eq!(find("mx_account_extra").quantity, 5);
    assert_eq!(find("mx_mailing_list_lists").unit_price, Some(dec!(100)));
    assert_eq!(find("mx_mailing_list_lists").kind, "metered");
    assert_eq!(
        find("dns_operation_yearly:jprsgeneric").unit_price,
        Some(dec!(5000))
    );
    assert_eq!(b.this_month.month, ym("2027-01"));
    assert_eq!(b.this_month.total, dec!(8580));
    assert_eq!(b.next_month.month, ym("2027-02"));
    assert_eq!(b.next_month.total, dec!(8140));
    // Before the first revision was requested: empty statements, not a failure.
    let b = billable_state(&c, &cat(), d(2026, 10, 1));
    assert_eq!(b.this_month.total, dec!(0));
    assert_eq!(b.this_month.notes, ["no revision in force yet"]);
}

// --- properties ------------------------------------------------------------------------------

fn arb_contract() -> impl Strategy<Value = (Contract, YearMonth)> {
    let items = [
        OptionItem::SslHosting,
        OptionItem::WwwDiskExtra,
        OptionItem::FtpAccountExtra,
        OptionItem::AccessLog,
        OptionItem::WebDetect100,
        OptionItem::Ips,
        OptionItem::MxAccountExtra,
        OptionItem::MxDiskExtra,
        OptionItem::MxMailingList,
        OptionItem::MxArchive,
        OptionItem::FletsIsdn,
    ];
    (
        0usize..3,
        proptest::collection::vec(
            (0usize..items.len(), 0u32..5, 0u32..24, 0u32..100_000),
            0..6,
        ),
        proptest::collection::vec((0u32..2000, 0u32..120, 0u32..120), 0..4),
        0u32..36,
        0u32..30,
        any::<bool>(),
        proptest::collection::vec((0u32..36, 0u32..50), 0..4),
    )
        .prop_map(
            move |(svc, opts, outages, month_off, start_day, terminate, usage)| {
                let mut c = match svc {
                    0 => www_ssl(),
                    1 => securemx(),
                    _ => pack_history().remove(0),
                };
                c.service_start = d(2026, 1, 1) + chrono::Days::new(u64::from(start_day) * 11);
                c.requested_on = d(2025, 12, 1);
                c.options = opts
                    .into_iter()
                    .map(|(i, q, eff, price)| OptionLine {
                        item: items[i],
                        quantity: q,
                        effective: Some(add_months(d(2026, 1, 1), eff)),
                        quoted_monthly: Some(Decimal::from(price)),
                        quoted_initial: Some(Decimal::from(price / 3)),
                    })
                    .collect();
                c.outages = outages
                    .into_iter()
                    .map(|(hours, started, claimed)| {
                        let started = d(2026, 1, 1) + chrono::Days::new(u64::from(started) * 5);
                        Outage {
                            started,
                            hours,
                            claimed_on: started + chrono::Days::new(u64::from(claimed)),
                        }
                    })
                    .collect();
                c.usage = usage
                    .into_iter()
                    .map(|(m, n)| crate::contract::Usage {
                        month: YearMonth::of(d(2026, 1, 1))
                            .plus_months(m as i32)
                            .to_string(),
                        item: OptionItem::MxMailingList,
                        max_count: n,
                    })
                    .collect();
                let month = YearMonth::of(d(2026, 1, 1)).plus_months(month_off as i32);
                if terminate {
                    let end = month.plus_months(-1).last_day().max(c.service_start);
                    c.status = Status::terminated(YearMonth::of(end).last_day(), end);
                }
                (c, month)
            },
        )
}

fn whole(v: Decimal) -> bool {
    v.fract().is_zero()
}

proptest! {
    #[test]
    fn statements_are_whole_non_negative_and_add_up((c, month) in arb_contract()) {
        let catalog = cat();
        let s = statement(std::slice::from_ref(&c), &catalog, month).unwrap();
        // Totals never negative.
        prop_assert!(s.subtotal >= Decimal::ZERO, "{s:#?}");
        prop_assert!(s.total >= Decimal::ZERO);
        // The statement is the sum of its lines.
        prop_assert_eq!(s.subtotal, s.lines.iter().map(|l| l.amount).sum::<Decimal>());
        prop_assert_eq!(s.total, s.subtotal + s.tax);
        // Tax is whole yen, at most rate × base, and less than a yen below it (truncated).
        prop_assert!(whole(s.tax));
        prop_assert!(s.tax <= s.tax_rate * s.subtotal);
        prop_assert!(s.tax_rate * s.subtotal - s.tax < Decimal::ONE);
        prop_assert_eq!(s.tax_rate, catalog.tax_rate(month.last_day()));
        // Money stays whole yen everywhere.
        for l in &s.lines {
            prop_assert!(whole(l.amount), "{l:?}");
            if l.row == "outage_credit" {
                prop_assert!(l.amount <= Decimal::ZERO, "{l:?}");
            } else {
                prop_assert!(l.amount >= Decimal::ZERO, "{l:?}");
                prop_assert_eq!(l.amount, truncate_yen(l.unit_price * Decimal::from(l.quantity)));
            }
        }
        prop_assert!(whole(s.subtotal) && whole(s.total));
    }

    #[test]
    fn damages_and_credits_are_whole_and_bounded(amount in 0i64..100_000_000, days in 0u32..2000,
        hours in 0u32..10_000, monthly in 0i64..1_000_000) {
        let amount = Decimal::from(amount);
        let dmg = late_payment_damages(amount, days);
        prop_assert!(whole(dmg) && dmg >= Decimal::ZERO);
        prop_assert!(dmg <= amount * dec!(0.146) * Decimal::from(days) / dec!(365));
        let monthly = Decimal::from(monthly);
        let cr = outage_credit(hours, monthly);
        prop_assert!(whole(cr) && cr >= Decimal::ZERO);
        prop_assert!(cr <= monthly * Decimal::from(hours / 24) / dec!(30));
        prop_assert!(monthly * Decimal::from(hours / 24) / dec!(30) - cr < Decimal::ONE);
    }

    #[test]
    fn a_revision_split_never_changes_what_is_held((c, month) in arb_contract()) {
        // The same contract recorded twice (revision 2 identical to 1) bills the same.
        let mut c2 = c.clone();
        c2.revision = 2;
        let catalog = cat();
        let one = statement(std::slice::from_ref(&c), &catalog, month).unwrap();
        let two = statement(&[c, c2], &catalog, month).unwrap();
        prop_assert_eq!(one.lines, two.lines);
        prop_assert_eq!(one.total, two.total);
    }
}

#[test]
fn service_type_codes_on_lines() {
    // Every service's monthly line names its service code and 第30条.
    for stype in ServiceType::ALL {
        let mut c = pack_history().remove(0);
        c.service = stype;
        let s = st(std::slice::from_ref(&c), "2027-01");
        if let Some(end) = cat().service(stype).service_end {
            // Types that ended (2024-03-30) bill nothing after their month.
            assert!(s.lines.is_empty(), "{stype:?}: {s:#?}");
            assert!(
                s.notes.iter().any(|n| n.contains("第25条3項")),
                "{:?}",
                s.notes
            );
            c.requested_on = d(2023, 1, 10);
            c.service_start = d(2023, 2, 1);
            let s = st(&[c], &YearMonth::of(end).to_string());
            let l = s
                .lines
                .iter()
                .find(|l| l.row.starts_with("service:"))
                .unwrap();
            assert_eq!(l.amount, cat().service(stype).monthly);
            continue;
        }
        let l = s
            .lines
            .iter()
            .find(|l| l.row.starts_with("service:"))
            .unwrap();
        assert_eq!(l.row, format!("service:{}", stype.code()));
        assert_eq!(l.amount, cat().service(stype).monthly);
        assert!(l.article.starts_with("第30条"));
    }
}

// --- 別表②2 service type change ----------------------------------------------------------

#[test]
fn service_type_change_switches_the_monthly_fee_at_its_date() {
    // securemx-to-pack: revision 2, requested 2027-01-12, Mail (セキュア MX) →
    // パック (セキュア MX) from 2027-02-01.
    let h = [securemx(), securemx_to_pack()];
    // January: revision 2 is in force, but the change is not: still 4,500
    // (not the pack's 13,000 for the month of the request). 7,800 as before.
    let s = st(&h, "2027-01");
    assert_eq!(s.revision, 2);
    assert_eq!(rows(&s)[0], ("service:mail_secure_mx", 1, dec!(4500)));
    totals(&s, dec!(7800), dec!(780), dec!(8580));
    // February: パック 13,000 + 5 × 300 + 2 × 200 + 1,000 and the change fee
    // 10,000 (別表②2) = 25,900; tax 2,590. No 加入料 (a change concludes no
    // new contract).
    let s = st(&h, "2027-02");
    assert_eq!(
        rows(&s),
        [
            ("service:pack_secure_mx", 1, dec!(13000)),
            ("mx_account_extra", 5, dec!(1500)),
            ("mx_disk_extra", 2, dec!(400)),
            ("mx_mailing_list", 1, dec!(1000)),
            ("service_type_change", 1, dec!(10000)),
        ]
    );
    assert!(s.lines[4].article.contains("別表②2"));
    totals(&s, dec!(25900), dec!(2590), dec!(28490));
    // March: 15,900 (no fee); December: the DNS year again (汎用 5,000) = 20,900.
    totals(&st(&h, "2027-03"), dec!(15900), dec!(1590), dec!(17490));
    totals(&st(&h, "2027-12"), dec!(20900), dec!(2090), dec!(22990));
    // The start month keeps the type the contract was concluded for.
    assert_eq!(
        rows(&st(&h, "2026-12"))[0],
        ("service_initial:mail_secure_mx", 1, dec!(20000))
    );
    // Revision 2 alone knows the type before the change from its record.
    assert_eq!(
        st(&[securemx_to_pack()], "2027-01").lines[0].row,
        "service:mail_secure_mx"
    );
}

#[test]
fn a_mid_month_change_bills_the_month_at_the_type_held_on_its_first_day() {
    // www → パック (セキュア MX) from 2027-02-15: February stays www (10,000)
    // with the fee 10,000; March is the pack (13,000).
    let mut base = www_ssl();
    base.options.clear();
    base.one_time.clear();
    base.domains[0].custody = false;
    base.domains[0].dns_operation = DnsOperation::None;
    let mut c = base.clone();
    c.revision = 2;
    c.requested_on = d(2027, 1, 20);
    c.service = ServiceType::PackSecureMx;
    c.service_change = Some(crate::contract::ServiceChange {
        from: ServiceType::Www,
        effective: d(2027, 2, 15),
    });
    let h = [base, c];
    let s = st(&h, "2027-02");
    assert_eq!(
        rows(&s),
        [
            ("service:www", 1, dec!(10000)),
            ("service_type_change", 1, dec!(10000)),
        ]
    );
    totals(&s, dec!(20000), dec!(2000), dec!(22000));
    totals(&st(&h, "2027-03"), dec!(13000), dec!(1300), dec!(14300));
}

#[test]
fn a_substitution_outside_the_note_has_no_change_fee() {
    // 第23条3項: Mail (スタンダード) replaced by Mail (セキュア MX) before its
    // abolition; 別表②2 備考 does not list it, so no 10,000.
    let c = mail_standard();
    let mut c2 = c.clone();
    c2.revision = 2;
    c2.requested_on = d(2024, 1, 10);
    c2.service = ServiceType::MailSecureMx;
    c2.secure_mx = securemx().secure_mx;
    c2.service_change = Some(crate::contract::ServiceChange {
        from: ServiceType::MailStandard,
        effective: d(2024, 2, 1),
    });
    let h = [c, c2];
    let s = st(&h, "2024-02");
    assert_eq!(rows(&s), [("service:mail_secure_mx", 1, dec!(4500))]);
    assert!(
        s.notes.iter().any(|n| n.contains("no change fee")),
        "{:?}",
        s.notes
    );
    // It goes on after 2024-03-30: it is no longer the abolished type.
    totals(&st(&h, "2024-05"), dec!(4500), dec!(450), dec!(4950));
}

// --- how a contract ends, and 第33条 -----------------------------------------------------------

#[test]
fn company_termination_after_suspension_with_the_minimum_period() {
    // www-kobo: start 2027-01-01 (minimum period to 2027-03-31), inherited
    // 2027-01-20, suspended 2027-02-05, ended by the company (第24条1項) on
    // 2027-02-26.
    let h = kobo_history();
    // January: 加入料 20,000 only (start month); the succession is noted and
    // changes nothing billed.
    let s = st(&h, "2027-01");
    assert_eq!(s.revision, 2);
    assert_eq!(rows(&s), [("service_initial:www", 1, dec!(20000))]);
    assert!(
        s.notes.iter().any(|n| n.contains("第18条")),
        "{:?}",
        s.notes
    );
    totals(&s, dec!(20000), dec!(2000), dec!(22000));
    // February, the end month, whole (第30条2項): 10,000 + DNS 1,000; and
    // March, the rest of the minimum period (第33条 applies to a 解除 by the
    // company): 1 × 11,000. 22,000 + 2,200.
    let s = st(&h, "2027-02");
    assert_eq!(
        rows(&s),
        [
            ("service:www", 1, dec!(10000)),
            ("dns_operation_monthly:jprsgeneric", 1, dec!(1000)),
            ("early_termination", 1, dec!(11000)),
        ]
    );
    assert!(
        s.notes.iter().any(|n| n.contains("第24条1項")),
        "{:?}",
        s.notes
    );
    totals(&s, dec!(22000), dec!(2200), dec!(24200));
    // March: nothing.
    totals(&st(&h, "2027-03"), dec!(0), dec!(0), dec!(0));
}

fn ending(ground: crate::contract::TerminationGround, effective: NaiveDate) -> Vec<Contract> {
    let mut h = kobo_history();
    h.truncate(1);
    let mut t = crate::contract::Termination::notice(effective, effective);
    t.ground = ground;
    let mut c = h[0].clone();
    c.revision = 2;
    c.requested_on = effective;
    c.status = Status::Terminated(t);
    h.push(c);
    h
}

#[test]
fn each_ground_bills_its_end_month_and_33_only_where_it_applies() {
    use crate::contract::TerminationGround::*;
    // Ending 2027-02-10 (minimum period to 2027-03-31): February whole, and
    // 第33条's March (11,000) for every 解約・解除; not for an abolition.
    for (ground, owes) in [
        (CustomerUnusable, true),
        (CompanyWithoutSuspension, true),
        (CompanyUnsuitable, true),
        (CompanyAntisocial, true),
        (ServiceAbolished, false),
        (ServiceTypeAbolished, false),
    ] {
        let h = ending(ground, d(2027, 2, 10));
        let s = st(&h, "2027-02");
        let early = s.lines.iter().find(|l| l.row == "early_termination");
        assert_eq!(
            early.map(|l| l.amount),
            owes.then_some(dec!(11000)),
            "{ground:?}"
        );
        let want = if owes { dec!(22000) } else { dec!(11000) };
        assert_eq!(s.subtotal, want, "{ground:?}");
        if !owes {
            assert!(
                s.notes.iter().any(|n| n.contains("第33条 does not apply")),
                "{:?}",
                s.notes
            );
        }
        assert!(st(&h, "2027-03").lines.is_empty(), "{ground:?}");
    }
}

// --- legacy types: nothing after their end --------------------------------------------------

#[test]
fn nothing_is_billed_after_a_legacy_type_ended() {
    // Mail (スタンダード) since 2022-02: 5,000 a month through March 2024
    // (ended 2024-03-30, the month whole), nothing in 2024-04, 2024-05, 2027.
    let h = [mail_standard()];
    totals(&st(&h, "2024-03"), dec!(5000), dec!(500), dec!(5500));
    for m in ["2024-04", "2024-05", "2027-01"] {
        let s = st(&h, m);
        assert!(s.lines.is_empty(), "{m}: {s:#?}");
        assert!(s.notes.iter().any(|n| n.contains("第25条3項")), "{m}");
    }
    // The Mini pack held on 2023-03-30 and continued with Secure MX mail
    // goes on: 5,000 in 2027.
    let mut m = pack_history().remove(0);
    m.service = ServiceType::MiniPack;
    m.requested_on = d(2022, 6, 1);
    m.service_start = d(2022, 7, 1);
    m.options.clear();
    m.domains[0].custody = false;
    m.domains[0].dns_operation = DnsOperation::None;
    totals(
        &st(&[m.clone()], "2027-01"),
        dec!(5000),
        dec!(500),
        dec!(5500),
    );
    // Without Secure MX mail it did not continue.
    m.secure_mx = None;
    assert!(st(&[m], "2027-01").lines.is_empty());
}

// --- ※17 custody renewal month ---------------------------------------------------------------

#[test]
fn custody_added_later_renews_in_the_month_it_was_requested() {
    // securemx (start 2026-12, JPRS 汎用, no custody) asks for custody in a
    // revision requested 2027-05-10: 登録更新 5,000 in 2027-05 and every May,
    // not in December (the start month).
    let c1 = securemx();
    let mut c2 = c1.clone();
    c2.revision = 2;
    c2.requested_on = d(2027, 5, 10);
    c2.usage.clear();
    c2.domains[0].custody = true;
    let h = [c1, c2];
    let renewal = |m: &str| {
        st(&h, m)
            .lines
            .iter()
            .filter(|l| l.row == "domain_renewal:jprsgeneric")
            .map(|l| l.amount)
            .sum::<Decimal>()
    };
    assert_eq!(renewal("2027-05"), dec!(5000));
    assert_eq!(renewal("2028-05"), dec!(5000));
    assert_eq!(renewal("2027-12"), dec!(0));
    assert_eq!(renewal("2028-04"), dec!(0));
    // Custody with the application renews in the start month (www-ssl: 12).
    let w = [www_ssl()];
    let r = |m: &str| {
        st(&w, m)
            .lines
            .iter()
            .any(|l| l.row == "domain_renewal:jprsattribute")
    };
    assert!(r("2026-12") && r("2027-12") && !r("2027-05"));
}
