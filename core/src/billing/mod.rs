//! Billing: a contract's monthly statement and its billable state, computed
//! exactly in `Decimal` whole yen.
//!
//! What is billed when (each line names its catalog row and article):
//! - initial fees in the month the service (or option) takes effect (第29条);
//! - monthly fees from the month *after* that month (第30条3項) up to and
//!   including the month the contract ends;
//! - annual fees in the month the item takes effect and every twelfth month after;
//! - one-time fees (change fees, domain operations) in their month (第31条3項);
//! - metered options at the month's maximum count (別表③ ※13 ※14 ※15);
//! - suspended months as if provided (第27条2項);
//! - an end inside the 3-month minimum period: the remaining months in one sum
//!   in the last month (第12条, 第33条);
//! - outage credits of floor(hours/24) × monthly/30 claimed within 3 months (第37条);
//! - consumption tax at the rate in force on the statement date (第36条);
//! - every fraction of a yen truncated (第28条3項).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::calendar::{YearMonth, add_months};
use crate::catalog::{Catalog, FeeKind};
use crate::contract::{
    Contract, DnsOperation, OneTimeItem, OptionItem, ServiceFamily, ServiceType, Status,
};
use crate::money::truncate_yen;

/// One line of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Catalog row id.
    pub row: String,
    pub article: String,
    pub description: String,
    pub quantity: u32,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

/// A month's statement for one contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub contract_id: String,
    /// The revision in force for the month.
    pub revision: u32,
    pub month: YearMonth,
    pub lines: Vec<Line>,
    pub subtotal: Decimal,
    pub tax_rate: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    pub notes: Vec<String>,
}

/// One billable item of the contract as it stands (for billing's records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillableItem {
    pub row: String,
    pub article: String,
    pub description: String,
    pub kind: &'static str,
    pub quantity: u32,
    /// `None` for items whose price is quoted but not yet agreed.
    pub unit_price: Option<Decimal>,
}

/// What hostwright reports to billing after a job succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillableState {
    pub items: Vec<BillableItem>,
    pub this_month: Statement,
    pub next_month: Statement,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BillingError {
    #[error("no revision of the contract was requested by the end of {0}")]
    NotYetRequested(YearMonth),
    #[error("the history mixes contracts {0} and {1}")]
    MixedHistory(String, String),
    #[error("the history is empty")]
    Empty,
}

fn kind_name(k: FeeKind) -> &'static str {
    match k {
        FeeKind::Initial => "initial",
        FeeKind::Monthly => "monthly",
        FeeKind::Annual => "annual",
        FeeKind::Metered => "metered",
    }
}

/// The revision in force for `month`: the latest one requested by its end.
fn in_force(history: &[Contract], month: YearMonth) -> Result<&Contract, BillingError> {
    let first = history.first().ok_or(BillingError::Empty)?;
    for c in history {
        if c.contract_id != first.contract_id {
            return Err(BillingError::MixedHistory(
                first.contract_id.to_string(),
                c.contract_id.to_string(),
            ));
        }
    }
    history
        .iter()
        .filter(|c| c.requested_on <= month.last_day())
        .max_by_key(|c| c.revision)
        .ok_or(BillingError::NotYetRequested(month))
}

/// The last month the contract is provided (None while it runs): the month
/// of its last day, whoever ended it. 第30条2項 counts the monthly fee "毎月1日
/// から当月末日までの1ヶ月分": the terms divide no month, so a contract that
/// ends mid-month is billed for that whole month.
fn end_month(c: &Contract) -> Option<YearMonth> {
    c.status.termination().map(|t| YearMonth::of(t.effective))
}

/// The revisions requested by `month`'s end, in revision order.
fn requested_by(history: &[Contract], month: YearMonth) -> Vec<&Contract> {
    let mut revs: Vec<&Contract> = history
        .iter()
        .filter(|c| c.requested_on <= month.last_day())
        .collect();
    revs.sort_by_key(|c| c.revision);
    revs
}

/// The changes of service type the revisions record: (from, to, effective),
/// each once, by effective date.
fn service_changes(revs: &[&Contract]) -> Vec<(ServiceType, ServiceType, NaiveDate)> {
    let mut out: Vec<(ServiceType, ServiceType, NaiveDate)> = Vec::new();
    for r in revs {
        if let Some(sc) = &r.service_change {
            let ch = (sc.from, r.service, sc.effective);
            if !out.contains(&ch) {
                out.push(ch);
            }
        }
    }
    out.sort_by_key(|ch| ch.2);
    out
}

/// The service type in force on `date`, from the revisions of `revs`: the
/// first revision's type, changed by each recorded change that took effect by
/// then (別表②2: monthly fees switch at the change's effective date, not
/// from the month it was requested).
fn service_on(revs: &[&Contract], date: NaiveDate) -> Option<ServiceType> {
    let first = revs.first()?;
    let mut svc = first.service_on(first.service_start);
    for (_, to, effective) in service_changes(revs) {
        if effective <= date {
            svc = to;
        }
    }
    Some(svc)
}

/// Whether the contract goes on past its service type's end under 第5条 注
/// (a Mini pack held on 2023-03-30, continued with Secure MX mail).
fn continues_past_end(catalog: &Catalog, service: ServiceType, c: &Contract) -> bool {
    catalog
        .service(service)
        .continuation_for_customers_on
        .is_some_and(|d| c.service_start <= d)
        && c.secure_mx.is_some()
}

/// The month custody of `domain` was requested (※17 "ご依頼のあった月"):
/// the revision that first asked for it, since it was last without custody.
/// Custody asked for with the application is read as requested with the
/// service, in its start month (nothing is billed before the start month).
fn custody_requested(revs: &[&Contract], domain: &str) -> Option<YearMonth> {
    let mut since: Option<YearMonth> = None;
    for r in revs {
        let held = r.domains.iter().any(|d| d.name == domain && d.custody);
        since = match (held, since) {
            (false, _) => None,
            (true, Some(s)) => Some(s),
            (true, None) => Some(YearMonth::of(r.requested_on.max(r.service_start))),
        };
    }
    since
}

/// What of an option is billed in a month.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    /// Units billed monthly this month.
    monthly: u32,
    /// Units added with effect this month (their initial fee is due).
    added: u32,
}

/// Per option, from the revisions requested by the month's end in revision
/// order: an increase is billed from the month after it takes effect (第30条3項)
/// and its initial fee in the month it takes effect (第29条); a decrease stops
/// being billed from the month it takes effect (第17条2項: the 1st of a month).
fn option_quantities(history: &[Contract], month: YearMonth) -> BTreeMap<OptionItem, Held> {
    let mut revs: Vec<&Contract> = history
        .iter()
        .filter(|c| c.requested_on <= month.last_day())
        .collect();
    revs.sort_by_key(|c| c.revision);
    let mut out: BTreeMap<OptionItem, Held> = BTreeMap::new();
    let mut contracted: BTreeMap<OptionItem, u32> = BTreeMap::new();
    for r in revs {
        let start = YearMonth::of(r.service_start);
        let items: Vec<OptionItem> = r
            .options
            .iter()
            .map(|o| o.item)
            .chain(contracted.keys().copied())
            .collect();
        for item in items {
            let before = contracted.get(&item).copied().unwrap_or(0);
            let now = r.quantity(item);
            if now == before {
                continue;
            }
            let from = r
                .options
                .iter()
                .find(|o| o.item == item)
                .and_then(|o| o.effective)
                .map(YearMonth::of)
                .unwrap_or(start)
                .max(start);
            let held = out.entry(item).or_default();
            let applies = if now > before { from.next() } else { from };
            if applies <= month {
                held.monthly = now;
            }
            if now > before && from == month {
                held.added += now - before;
            }
            contracted.insert(item, now);
        }
    }
    out
}

/// Month-by-month recurring amounts of a revision: (row, article, description,
/// quantity, unit price, first month, option) per monthly item.
#[allow(clippy::type_complexity)]
fn monthly_items(
    c: &Contract,
    service: ServiceType,
    catalog: &Catalog,
) -> Vec<(
    String,
    String,
    String,
    u32,
    Decimal,
    YearMonth,
    Option<OptionItem>,
)> {
    let start = YearMonth::of(c.service_start);
    let svc = catalog.service(service);
    let mut out = vec![(
        format!("service:{}", service.code()),
        svc.article.clone(),
        format!("{} 利用料 (月額)", svc.name),
        1,
        svc.monthly,
        start,
        None,
    )];
    // Lines with quantity 0 too: a cancellation may still be billed until it
    // takes effect (the statement takes option quantities from the history).
    for o in &c.options {
        let Some(entry) = catalog.option(o.item) else {
            continue;
        };
        let from = o.effective.map(YearMonth::of).unwrap_or(start).max(start);
        for fee in entry.fees.iter().filter(|f| f.kind == FeeKind::Monthly) {
            let price = if fee.quoted {
                o.quoted_monthly.unwrap_or_default()
            } else {
                fee.amount.unwrap_or_default()
            };
            out.push((
                fee.row.clone(),
                entry.article.clone(),
                fee.name.clone(),
                o.quantity,
                price,
                from,
                Some(o.item),
            ));
        }
    }
    for d in c
        .domains
        .iter()
        .filter(|d| d.dns_operation == DnsOperation::Monthly)
    {
        let t = catalog.domain_fees(d.registry);
        out.push((
            format!("dns_operation_monthly:{}", d.registry.billing_code()),
            t.table.clone(),
            format!("DNS 運用サービス (月額) {}", d.name),
            1,
            t.dns_monthly,
            start,
            None,
        ));
    }
    out
}

/// The statement of `month` for a contract, from its revision history.
pub fn statement(
    history: &[Contract],
    catalog: &Catalog,
    month: YearMonth,
) -> Result<Statement, BillingError> {
    let c = in_force(history, month)?;
    let start = YearMonth::of(c.service_start);
    let end = end_month(c);
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let revs = requested_by(history, month);
    // The type in force on the month's first day bills the month (別表②2: a
    // change switches the monthly fee at its effective date).
    let service = service_on(&revs, month.first_day()).unwrap_or(c.service);
    // 第25条3項: a type's contracts end on its abolition day; nothing is billed
    // after that month, whether or not a revision recorded the end (a Mini
    // pack continued under 第5条 注 goes on).
    let abolished = catalog
        .service(service)
        .service_end
        .filter(|_| !continues_past_end(catalog, service, c))
        .map(YearMonth::of)
        .filter(|e| month > *e);
    if let Some(e) = abolished {
        notes.push(format!(
            "{} ended in {e} and its contracts with it (第25条3項): nothing billed after {e}",
            catalog.service(service).name
        ));
    }
    let provided = month >= start && end.is_none_or(|e| month <= e) && abolished.is_none();
    let line =
        |row: String, article: String, description: String, quantity: u32, unit: Decimal| Line {
            amount: truncate_yen(unit * Decimal::from(quantity)),
            row,
            article,
            description,
            quantity,
            unit_price: unit,
        };

    if provided {
        // 加入料 (第26条: paid "利用契約締結の際") of the type the contract was
        // concluded for; a later change of type pays 別表②2's fee instead.
        let first = service_on(&revs, c.service_start).unwrap_or(c.service);
        let svc = catalog.service(first);
        if month == start
            && let Some(initial) = svc.initial
        {
            lines.push(line(
                format!("service_initial:{}", first.code()),
                format!("第29条, {}", svc.article),
                format!("{} 加入料", svc.name),
                1,
                initial,
            ));
        }
        // Option quantities come from the whole history, not only the revision
        // in force: a revision that changes an option from a later date leaves
        // the quantity held until then billed as before.
        let held = option_quantities(history, month);
        for (row, article, desc, q, unit, from, item) in monthly_items(c, service, catalog) {
            let q = match item {
                Some(item) => held.get(&item).map_or(0, |h| h.monthly),
                None if month > from => q,
                None => 0,
            };
            if q > 0 {
                lines.push(line(row, format!("第30条, {article}"), desc, q, unit));
            }
        }
        for o in c.options.iter().filter(|o| o.quantity > 0) {
            let Some(entry) = catalog.option(o.item) else {
                continue;
            };
            let from = o.effective.map(YearMonth::of).unwrap_or(start).max(start);
            let added = held.get(&o.item).map_or(0, |h| h.added);
            for fee in &entry.fees {
                let quoted_initial = o.quoted_initial.unwrap_or_default();
                match fee.kind {
                    FeeKind::Initial if added > 0 => {
                        let unit = if fee.quoted {
                            quoted_initial
                        } else {
                            fee.amount.unwrap_or_default()
                        };
                        lines.push(line(
                            fee.row.clone(),
                            entry.article.clone(),
                            fee.name.clone(),
                            added,
                            unit,
                        ));
                    }
                    FeeKind::Annual if month >= from && from.months_until(month) % 12 == 0 => {
                        let unit = if fee.quoted {
                            quoted_initial
                        } else {
                            fee.amount.unwrap_or_default()
                        };
                        lines.push(line(
                            fee.row.clone(),
                            format!("{} (年間費用)", entry.article),
                            fee.name.clone(),
                            o.quantity,
                            unit,
                        ));
                    }
                    FeeKind::Metered => {
                        let max = c
                            .usage
                            .iter()
                            .filter(|u| {
                                u.item == o.item && YearMonth::parse(&u.month) == Some(month)
                            })
                            .map(|u| u.max_count)
                            .max();
                        if let Some(max) = max {
                            lines.push(line(
                                fee.row.clone(),
                                entry.article.clone(),
                                format!("{} ({month} 最大 {max})", fee.name),
                                max,
                                o.quoted_monthly.unwrap_or_default(),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        for d in &c.domains {
            let t = catalog.domain_fees(d.registry);
            if d.dns_operation == DnsOperation::Yearly && start.months_until(month) % 12 == 0 {
                lines.push(line(
                    format!("dns_operation_yearly:{}", d.registry.billing_code()),
                    t.table.clone(),
                    format!("DNS 運用サービス (年額) {}", d.name),
                    1,
                    t.dns_yearly,
                ));
            }
            if d.custody
                && let Some(renewal) = t.renewal
            {
                let requested = custody_requested(&revs, &d.name).unwrap_or(start);
                let renewal_month = d.renewal_month.unwrap_or(requested.month);
                if month.month == renewal_month && month >= requested {
                    lines.push(line(
                        format!("domain_renewal:{}", d.registry.billing_code()),
                        format!("{} ※17", t.table),
                        format!("登録更新 {}", d.name),
                        1,
                        renewal,
                    ));
                }
            }
        }
        if matches!(c.status, Status::Suspended { .. }) {
            notes.push("suspended: billed as provided (第27条2項)".into());
        }
    }

    // 別表②2: the fee of a change of service type, in the month it takes effect.
    for (from, to, effective) in service_changes(&revs) {
        if YearMonth::of(effective) != month {
            continue;
        }
        let change = format!("{} → {} ({effective})", from.code(), to.code());
        match catalog.one_time(OneTimeItem::ServiceTypeChange) {
            Some(entry) if ServiceFamily::change_listed(from.family(), to.family()) => {
                lines.push(line(
                    entry.code.clone(),
                    entry.article.clone(),
                    format!("{} {change}", entry.name),
                    1,
                    entry.amount,
                ));
            }
            _ => notes.push(format!(
                "service type change {change}: not one 別表②2 備考 lists, no change fee (第23条3項 substitution)"
            )),
        }
    }
    // 第18条: a succession keeps the contract and its billing.
    if let Some(s) = &c.succession
        && YearMonth::of(s.occurred_on) == month
    {
        notes.push(format!(
            "the customer's position passed from {} to {} by {} on {} (第18条): the contract and its billing continue",
            s.predecessor.id,
            c.customer.id,
            s.kind.name_ja(),
            s.occurred_on
        ));
    }

    // One-time fees, in their month, whatever the status.
    for t in c.one_time.iter().filter(|t| YearMonth::of(t.date) == month) {
        if let Some(entry) = catalog.one_time(t.item) {
            lines.push(line(
                entry.code.clone(),
                entry.article.clone(),
                entry.name.clone(),
                t.quantity,
                entry.amount,
            ));
            continue;
        }
        let registry = t
            .domain
            .as_ref()
            .and_then(|n| c.domains.iter().find(|d| &d.name == n))
            .map(|d| d.registry);
        let Some(registry) = registry else {
            notes.push(format!(
                "one-time {} on {} names no domain of the contract; not billed",
                t.item.code(),
                t.date
            ));
            continue;
        };
        let table = catalog.domain_fees(registry);
        match table.one_time(t.item) {
            Some(unit) => {
                let q = if t.item == OneTimeItem::HostName && t.primary_and_secondary {
                    t.quantity * 2
                } else {
                    t.quantity
                };
                lines.push(line(
                    format!("{}:{}", t.item.code(), registry.billing_code()),
                    table.table.clone(),
                    format!("{} {}", t.item.name_ja(), t.domain.as_deref().unwrap_or("")),
                    q,
                    unit,
                ));
            }
            None => notes.push(format!(
                "{} is not offered for {}; not billed",
                t.item.code(),
                table.table
            )),
        }
    }

    // 第12条, 第33条: ending inside the minimum period.
    if let Some(e) = end
        && month == e
        && let Some(t) = c.status.termination()
    {
        notes.push(format!(
            "ended on {} ({}, {}): billed through {e}, the month not divided (第30条2項)",
            t.effective,
            t.ground.code(),
            t.ground.article()
        ));
        let min_end = YearMonth::of(add_months(c.service_start, 3) - chrono::Days::new(1));
        let remaining = e.months_until(min_end);
        if remaining > 0 && !t.ground.owes_minimum_period() {
            notes.push(format!(
                "ended by abolition inside the minimum period: 第33条 does not apply ({} months not billed)",
                remaining
            ));
        }
        if remaining > 0 && provided && t.ground.owes_minimum_period() {
            let per_month: Decimal = monthly_items(c, service, catalog)
                .iter()
                .map(|(_, _, _, q, unit, _, _)| truncate_yen(*unit * Decimal::from(*q)))
                .sum();
            lines.push(line(
                "early_termination".into(),
                "第12条, 第33条".into(),
                format!("最低利用期間の残余期間 ({remaining} ヶ月分)"),
                remaining as u32,
                per_month,
            ));
        }
    }

    // 第37条: outage credits claimed this month, within 3 months.
    let svc_monthly = catalog.service(service).monthly;
    let mut credit = Decimal::ZERO;
    for o in c
        .outages
        .iter()
        .filter(|o| YearMonth::of(o.claimed_on) == month)
    {
        if o.claimed_on > add_months(o.started, 3) {
            notes.push(format!(
                "outage of {} claimed on {}: more than 3 months later, the right is lost (第37条)",
                o.started, o.claimed_on
            ));
            continue;
        }
        let c = outage_credit(o.hours, svc_monthly);
        if c > Decimal::ZERO {
            credit += c;
            lines.push(Line {
                row: "outage_credit".into(),
                article: "第37条".into(),
                description: format!(
                    "利用不能時間 {} 時間 ({} 日分) の減額",
                    o.hours,
                    o.hours / 24
                ),
                quantity: o.hours / 24,
                unit_price: -truncate_yen(svc_monthly / Decimal::from(30)),
                amount: -c,
            });
        }
    }
    let charges: Decimal = lines
        .iter()
        .filter(|l| l.amount > Decimal::ZERO)
        .map(|l| l.amount)
        .sum();
    if credit > charges {
        // A credit reduces what is owed; it never makes the month negative.
        let excess = credit - charges;
        // Take the excess back from the credit lines, last first, so that no
        // credit line turns into a charge.
        let mut left = excess;
        for l in lines.iter_mut().rev().filter(|l| l.row == "outage_credit") {
            let back = left.min(-l.amount);
            l.amount += back;
            left -= back;
        }
        notes.push(format!(
            "outage credit capped at the month's charges ({excess} yen not applied)"
        ));
    }

    let subtotal: Decimal = lines.iter().map(|l| l.amount).sum();
    let tax_rate = catalog.tax_rate(month.last_day());
    let tax = truncate_yen(subtotal * tax_rate);
    Ok(Statement {
        contract_id: c.contract_id.to_string(),
        revision: c.revision,
        month,
        lines,
        subtotal,
        tax_rate,
        tax,
        total: subtotal + tax,
        notes,
    })
}

/// 第37条: floor(hours / 24) × (monthly / 30), truncated; nothing under 24 h.
pub fn outage_credit(hours: u32, monthly: Decimal) -> Decimal {
    let days = Decimal::from(hours / 24);
    truncate_yen(days * monthly / Decimal::from(30))
}

/// 第35条: late-payment damages at 14.6 % a year for `days_late` days.
pub fn late_payment_damages(amount: Decimal, days_late: u32) -> Decimal {
    truncate_yen(amount * Decimal::new(146, 3) * Decimal::from(days_late) / Decimal::from(365))
}

/// 第34条: the surcharge on an evaded amount (tax excluded) is twice it.
pub fn surcharge(evaded_excluding_tax: Decimal) -> Decimal {
    truncate_yen(evaded_excluding_tax * Decimal::from(2))
}

/// 第36条: the tax on an amount at the rate in force on `date`.
pub fn consumption_tax(catalog: &Catalog, amount: Decimal, date: NaiveDate) -> Decimal {
    truncate_yen(amount * catalog.tax_rate(date))
}

/// The billable state of a contract revision as of `today`.
pub fn billable_state(c: &Contract, catalog: &Catalog, today: NaiveDate) -> BillableState {
    let mut items = Vec::new();
    let svc = catalog.service(c.service);
    if let Some(i) = svc.initial {
        items.push(BillableItem {
            row: format!("service_initial:{}", c.service.code()),
            article: svc.article.clone(),
            description: format!("{} 加入料", svc.name),
            kind: "initial",
            quantity: 1,
            unit_price: Some(i),
        });
    }
    items.push(BillableItem {
        row: format!("service:{}", c.service.code()),
        article: svc.article.clone(),
        description: format!("{} 利用料 (月額)", svc.name),
        kind: "monthly",
        quantity: 1,
        unit_price: Some(svc.monthly),
    });
    for o in c.options.iter().filter(|o| o.quantity > 0) {
        let Some(entry) = catalog.option(o.item) else {
            continue;
        };
        for fee in &entry.fees {
            let price = match (fee.quoted, fee.kind) {
                (false, _) => fee.amount,
                (true, FeeKind::Monthly | FeeKind::Metered) => o.quoted_monthly,
                (true, _) => o.quoted_initial,
            };
            items.push(BillableItem {
                row: fee.row.clone(),
                article: entry.article.clone(),
                description: fee.name.clone(),
                kind: kind_name(fee.kind),
                quantity: o.quantity,
                unit_price: price,
            });
        }
    }
    for d in &c.domains {
        let t = catalog.domain_fees(d.registry);
        match d.dns_operation {
            DnsOperation::None => {}
            DnsOperation::Monthly => items.push(BillableItem {
                row: format!("dns_operation_monthly:{}", d.registry.billing_code()),
                article: t.table.clone(),
                description: format!("DNS 運用サービス (月額) {}", d.name),
                kind: "monthly",
                quantity: 1,
                unit_price: Some(t.dns_monthly),
            }),
            DnsOperation::Yearly => items.push(BillableItem {
                row: format!("dns_operation_yearly:{}", d.registry.billing_code()),
                article: t.table.clone(),
                description: format!("DNS 運用サービス (年額) {}", d.name),
                kind: "annual",
                quantity: 1,
                unit_price: Some(t.dns_yearly),
            }),
        }
    }
    let history = std::slice::from_ref(c);
    let this = YearMonth::of(today);
    let empty = |month: YearMonth| Statement {
        contract_id: c.contract_id.to_string(),
        revision: c.revision,
        month,
        lines: Vec::new(),
        subtotal: Decimal::ZERO,
        tax_rate: catalog.tax_rate(month.last_day()),
        tax: Decimal::ZERO,
        total: Decimal::ZERO,
        notes: vec!["no revision in force yet".into()],
    };
    BillableState {
        items,
        this_month: statement(history, catalog, this).unwrap_or_else(|_| empty(this)),
        next_month: statement(history, catalog, this.next()).unwrap_or_else(|_| empty(this.next())),
    }
}

#[cfg(test)]
mod tests;
