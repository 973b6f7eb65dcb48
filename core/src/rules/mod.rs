//! The rules of the terms, checked on every contract revision before anything
//! is recorded or provisioned. `check` returns every finding at once; each
//! names a stable rule id and the article of the terms it enforces.
//!
//! Dates are judged by the revision's `requested_on` (the day the customer
//! asked), never by the day hostwright happens to process it.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use serde::Serialize;

use crate::calendar::{YearMonth, business_day_on_or_before};
use crate::catalog::{Catalog, FeeKind};
use crate::contract::{
    Contract, CustomerKind, LegalCapacity, MAX_REVISION_STEP, OneTimeItem, OptionItem,
    RepresentativeNamedBy, ServiceFamily, Status, SuccessionKind, TerminationGround,
};

/// One violation of the terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable kebab-case id, e.g. `option-service-type`.
    pub rule: &'static str,
    /// The article (and table note) enforced, e.g. `第6条2項`.
    pub article: String,
    /// JSON pointer into the contract.
    pub path: String,
    pub message: String,
}

/// Another contract of the same customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherContract {
    pub contract_id: String,
    pub service: String,
    pub active: bool,
}

pub struct CheckInput<'a> {
    pub contract: &'a Contract,
    /// The latest recorded revision of the same contract, if any.
    pub previous: Option<&'a Contract>,
    /// The customer's contracts (latest revision each), this one included or not.
    pub others: &'a [OtherContract],
    pub catalog: &'a Catalog,
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(
        &mut self,
        rule: &'static str,
        article: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(Finding {
            rule,
            article: dedup_articles(&article.into()),
            path: path.into(),
            message: message.into(),
        });
    }
}

/// An article list with each article once, in first-seen order: a rule that
/// prepends its own article to a catalog row's (which may name it already)
/// prints "第5条, 別表②1 ※2", not "第5条, 第5条, 別表②1 ※2".
pub fn dedup_articles(article: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for a in article.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        if !seen.contains(&a) {
            seen.push(a);
        }
    }
    seen.join(", ")
}

/// Checks a revision against every rule; empty means acceptable.
pub fn check(input: &CheckInput<'_>) -> Vec<Finding> {
    let mut f = Findings(Vec::new());
    let c = input.contract;
    revision_and_party(input, &mut f);
    consent(c, &mut f);
    lifecycle(input, &mut f);
    options(input, &mut f);
    secure_mx(c, input.catalog, &mut f);
    quotas(input, &mut f);
    notice_periods(input, &mut f);
    status(input, &mut f);
    succession(input, &mut f);
    service_change(input, &mut f);
    one_time(c, input.catalog, &mut f);
    domains(c, &mut f);
    f.0
}

fn revision_and_party(input: &CheckInput<'_>, f: &mut Findings) {
    let c = input.contract;
    if let Some(p) = input.previous {
        if c.revision <= p.revision {
            f.add(
                "revision-increasing",
                "—",
                "/revision",
                format!(
                    "revision {} must be greater than the latest recorded revision {}",
                    c.revision, p.revision
                ),
            );
        }
        if c.revision > p.revision.saturating_add(MAX_REVISION_STEP) {
            f.add(
                "revision-jump",
                "—",
                "/revision",
                format!(
                    "revision {} is more than {MAX_REVISION_STEP} past the latest recorded revision {}: recorded revisions are never taken back, so a jump that far would use up revision numbers for good",
                    c.revision, p.revision
                ),
            );
        }
        let party_changed = c.customer.id != p.customer.id || c.customer.kind != p.customer.kind;
        if party_changed && !records_new_succession(c, Some(p)) {
            f.add("one-party", "第11条2項, 第16条", "/customer", format!(
                "the contracting party cannot change (was {}, now {}): a contract belongs to one individual or corporation and cannot be transferred; only a succession (第18条) passes it on",
                p.customer.id, c.customer.id));
        }
        if matches!(p.status, Status::Terminated { .. }) {
            f.add("terminated-is-final", "第25条", "/status", format!(
                "contract {} was terminated in revision {}; a new application needs a new contract", c.contract_id, p.revision));
        }
        if c.service_start != p.service_start {
            f.add("service-start-fixed", "第12条, 第30条", "/service_start",
                "the service start date cannot change once recorded (it fixes the minimum period and billing)");
        }
    }
    // 第11条1項 is about concluding (締結) contracts: a successor takes over a
    // contract already concluded, even if it holds one of the same type.
    let succeeding = records_new_succession(c, input.previous);
    for o in input.others {
        if !succeeding
            && o.active
            && o.contract_id != c.contract_id.as_str()
            && o.service == c.service.code()
        {
            f.add("one-contract-per-service", "第11条1項", "/service", format!(
                "customer {} already holds contract {} for service type `{}`: one contract per service type",
                c.customer.id, o.contract_id, o.service));
        }
    }
}

fn consent(c: &Contract, f: &mut Findings) {
    let (needs, who, art) = match c.customer.legal_capacity {
        LegalCapacity::Adult => return,
        LegalCapacity::Minor => (
            true,
            "a minor needs the consent of a guardian (保護者)",
            "第13条2項",
        ),
        LegalCapacity::AdultWard => (
            true,
            "an adult ward needs the consent of the guardian (成年後見人)",
            "第13条3項",
        ),
        LegalCapacity::PersonUnderCuratorship => (
            true,
            "a person under curatorship needs the curator's consent (保佐人)",
            "第13条3項",
        ),
    };
    if c.customer.kind == crate::contract::CustomerKind::Corporation {
        f.add(
            "legal-capacity",
            art,
            "/customer/legal_capacity",
            "legal capacity restrictions apply to individuals; a corporation must be `adult`",
        );
    } else if needs && !c.customer.guardian_consent {
        f.add("consent-required", art, "/customer/guardian_consent", who);
    }
}

fn is_new_application(input: &CheckInput<'_>) -> bool {
    input.previous.is_none()
}

/// What changed between two revisions, as (item, old, new) quantities.
fn option_changes(prev: Option<&Contract>, c: &Contract) -> Vec<(OptionItem, u32, u32)> {
    let mut q: BTreeMap<OptionItem, (u32, u32)> = BTreeMap::new();
    if let Some(p) = prev {
        for o in &p.options {
            q.entry(o.item).or_default().0 += o.quantity;
        }
    }
    for o in &c.options {
        q.entry(o.item).or_default().1 += o.quantity;
    }
    q.into_iter()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i, a, b))
        .collect()
}

fn option_path(c: &Contract, item: OptionItem) -> String {
    c.options
        .iter()
        .position(|o| o.item == item)
        .map(|i| format!("/options/{i}"))
        .unwrap_or_else(|| "/options".into())
}

/// Whether `service` goes on past its end for this contract under 第5条 注
/// (the Mini pack of customers who held it on 2023-03-30, with its mail on
/// Secure MX).
fn continuing(catalog: &Catalog, service: crate::contract::ServiceType, c: &Contract) -> bool {
    catalog
        .service(service)
        .continuation_for_customers_on
        .is_some_and(|d| c.service_start <= d)
}

fn lifecycle(input: &CheckInput<'_>, f: &mut Findings) {
    let c = input.contract;
    let catalog = input.catalog;
    let svc = catalog.service(c.service);
    let on = c.requested_on;
    let changes = option_changes(input.previous, c);
    let terminating = c.status.termination().is_some();
    // The type the contract had before this revision: a change of type is
    // judged against the type it leaves as well as the one it takes.
    let prior = input.previous.map_or(c.service, |p| p.service);
    let prior_svc = catalog.service(prior);
    if let Some(closed) = svc.closed_to_new {
        if is_new_application(input) && on > closed && !continuing(catalog, c.service, c) {
            f.add(
                "service-closed-to-new",
                format!("第5条, {}", svc.article),
                "/service",
                format!(
                    "{} has not accepted new applications since {closed}",
                    svc.name
                ),
            );
        }
        if prior != c.service && on > closed {
            f.add(
                "service-closed-to-new",
                format!("第5条, {}", svc.article),
                "/service",
                format!(
                    "changes to {} have not been accepted since {closed}",
                    svc.name
                ),
            );
        }
    }
    // "新たな申し込みの受付および変更の承諾は行いません": no new options nor
    // changes on a closed type, but a cancellation (第17条2項 解約, any
    // decrease) is not a change and stays open, as does a termination.
    if let Some(closed) = prior_svc.closed_to_new
        && !is_new_application(input)
        && on > closed
        && !terminating
    {
        let prior_continues = continuing(catalog, prior, c);
        for (item, old, new) in &changes {
            if new < old {
                continue;
            }
            let mx_only = item.code().starts_with("mx_");
            if !(prior_continues && mx_only) {
                f.add(
                    "service-closed-to-change",
                    format!("第5条, {}", prior_svc.article),
                    option_path(c, *item),
                    format!(
                        "{} has not accepted changes since {closed} (option `{}`; a cancellation would be accepted)",
                        prior_svc.name,
                        item.code()
                    ),
                );
            }
        }
    }
    // 第25条3項: the contracts of an abolished type end on its abolition day.
    // After it, a revision can only record that end.
    if let Some(end) = prior_svc.service_end
        && on > end
    {
        if continuing(catalog, prior, c) {
            if c.secure_mx.is_none() && !terminating {
                f.add("service-ended", format!("第5条 注, {}", prior_svc.article), "/secure_mx", format!(
                    "{} ended on {end}; customers of {} may continue only with their mail on Secure MX (secure_mx is required)",
                    prior_svc.name, prior_svc.continuation_for_customers_on.map(|d| d.to_string()).unwrap_or_default()));
            }
        } else {
            let article = format!("第5条, 第25条3項, {}", prior_svc.article);
            match c.status.termination() {
                Some(t) if prior == c.service && t.effective <= end => {}
                Some(t) if prior == c.service => f.add(
                    "service-ended",
                    article,
                    "/status/effective",
                    format!(
                        "{} ended on {end} and its contracts with it; the end recorded must be on or before {end} (asked {})",
                        prior_svc.name, t.effective
                    ),
                ),
                _ => f.add(
                    "service-ended",
                    article,
                    if prior == c.service { "/status" } else { "/service" },
                    format!(
                        "{} ended on {end} and its contracts with it; a revision requested after that ({on}) can only record the contract's end",
                        prior_svc.name
                    ),
                ),
            }
        }
    }
    for (item, old, new) in &changes {
        if new > old
            && let Some(entry) = catalog.option(*item)
            && let Some(closed) = entry.closed_to_new
            && on > closed
        {
            f.add(
                "option-closed-to-new",
                entry.article.clone(),
                option_path(c, *item),
                format!(
                    "{} has not accepted new applications or changes since {closed}",
                    entry.name
                ),
            );
        }
    }
    for (i, t) in c.one_time.iter().enumerate() {
        if let Some(entry) = catalog.one_time(t.item)
            && let Some(closed) = entry.closed_to_new
            && t.date > closed
        {
            f.add(
                "option-closed-to-new",
                entry.article.clone(),
                format!("/one_time/{i}"),
                format!("{} has not been accepted since {closed}", entry.name),
            );
        }
    }
}

fn options(input: &CheckInput<'_>, f: &mut Findings) {
    let c = input.contract;
    let mut seen = BTreeMap::new();
    for (i, o) in c.options.iter().enumerate() {
        let path = format!("/options/{i}");
        if seen.insert(o.item, i).is_some() {
            f.add(
                "option-listed-once",
                "第6条1項",
                &path,
                format!("option `{}` is listed more than once", o.item.code()),
            );
        }
        let Some(entry) = input.catalog.option(o.item) else {
            f.add(
                "option-in-catalog",
                "第6条1項",
                &path,
                format!("option `{}` is not in the catalog", o.item.code()),
            );
            continue;
        };
        if o.quantity > 0 && !entry.services.iter().any(|s| s == c.service.code()) {
            let article = if entry.article.contains("第6条") {
                entry.article.clone()
            } else {
                format!("第6条1項, {}", entry.article)
            };
            f.add(
                "option-service-type",
                article,
                &path,
                format!(
                    "{} can only be held with {} (not `{}`)",
                    entry.name,
                    entry.services.join(", "),
                    c.service.code()
                ),
            );
        }
        if let Some(max) = entry.max_quantity
            && o.quantity > max
        {
            f.add(
                "option-quantity",
                entry.article.clone(),
                format!("{path}/quantity"),
                format!("{} allows at most {max}, got {}", entry.name, o.quantity),
            );
        }
        if let Some(max) = entry.operational_max
            && o.quantity > max
        {
            f.add(
                "operational-limit",
                "— (運用上の制限, not a term)",
                format!("{path}/quantity"),
                format!(
                    "{}: at most {max} by our operations (the terms set no limit), got {}",
                    entry.name, o.quantity
                ),
            );
        }
        if let Some(req) = &entry.requires_option
            && o.quantity > 0
            && !c
                .options
                .iter()
                .any(|x| &x.item.code() == req && x.quantity > 0)
        {
            f.add(
                "option-requires-option",
                entry.article.clone(),
                &path,
                format!("{} needs the option `{req}`", entry.name),
            );
        }
        let needs = |kinds: &[FeeKind]| {
            entry
                .fees
                .iter()
                .any(|fee| fee.quoted && kinds.contains(&fee.kind))
        };
        if o.quantity > 0
            && needs(&[FeeKind::Monthly, FeeKind::Metered])
            && o.quoted_monthly.is_none()
        {
            f.add("quoted-price-required", entry.article.clone(), format!("{path}/quoted_monthly"), format!(
                "{} is priced per contract (当社が別途示す金額): give the agreed quoted_monthly", entry.name));
        }
        if o.quantity > 0
            && needs(&[FeeKind::Initial, FeeKind::Annual])
            && o.quoted_initial.is_none()
        {
            f.add(
                "quoted-price-required",
                entry.article.clone(),
                format!("{path}/quoted_initial"),
                format!(
                    "{} has a fee at cost (実費): give the agreed quoted_initial",
                    entry.name
                ),
            );
        }
        for (field, v) in [
            ("quoted_monthly", o.quoted_monthly),
            ("quoted_initial", o.quoted_initial),
        ] {
            if let Some(v) = v
                && (v.is_sign_negative() || v.fract() != rust_decimal::Decimal::ZERO)
            {
                f.add(
                    "whole-yen",
                    "第28条3項",
                    format!("{path}/{field}"),
                    format!("{v} is not a whole, non-negative yen amount"),
                );
            }
        }
    }
}

fn secure_mx(c: &Contract, catalog: &Catalog, f: &mut Findings) {
    let has_mx = c.service.has_secure_mx();
    for (i, o) in c.options.iter().enumerate() {
        let Some(entry) = catalog.option(o.item) else {
            continue;
        };
        if o.quantity == 0 {
            continue;
        }
        for req in &entry.requires {
            let (ok, what, art) = match req.as_str() {
                // メールボックスプラス is part of the Secure MX basic service.
                "mailbox_plus" => (
                    has_mx,
                    "the Mailbox Plus option (part of the Secure MX basic service)",
                    "第6条3項",
                ),
                "iij_id" => (
                    c.external
                        .iij_id
                        .as_deref()
                        .is_some_and(|s| !s.trim().is_empty()),
                    "an IIJ ID service subscription (external.iij_id)",
                    "第6条3項(3)",
                ),
                "dox" => (
                    c.external
                        .dox
                        .as_deref()
                        .is_some_and(|s| !s.trim().is_empty()),
                    "an IIJ DOX subscription (external.dox)",
                    "第6条3項(4)",
                ),
                _ => (true, "", ""),
            };
            if !ok {
                f.add(
                    "securemx-option-prerequisite",
                    art,
                    format!("/options/{i}"),
                    format!("{} needs {what}", entry.name),
                );
            }
        }
    }
    match (&c.secure_mx, has_mx) {
        (None, true) => {
            f.add(
                "securemx-targets",
                "第8条1項",
                "/secure_mx",
                "a Secure MX contract must name its target domains and IP addresses",
            );
            f.add(
                "securemx-administrator",
                "第9条1項",
                "/secure_mx/administrator",
                "a Secure MX contract must name its operations administrator",
            );
        }
        (Some(_), false) => f.add(
            "securemx-section",
            "第8条",
            "/secure_mx",
            format!(
                "service `{}` has no Secure MX mail; remove the secure_mx section",
                c.service.code()
            ),
        ),
        (Some(mx), true) => {
            if mx.target_domains.is_empty() {
                f.add(
                    "securemx-targets",
                    "第8条1項",
                    "/secure_mx/target_domains",
                    "at least one target domain is required",
                );
            }
            if mx.target_ips.is_empty() {
                f.add(
                    "securemx-targets",
                    "第8条1項",
                    "/secure_mx/target_ips",
                    "at least one target IP address is required",
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, d) in mx.target_domains.iter().enumerate() {
                if !seen.insert(d) {
                    f.add(
                        "securemx-targets",
                        "第8条2項",
                        format!("/secure_mx/target_domains/{i}"),
                        format!("{d} is listed twice"),
                    );
                }
            }
            for (i, ip) in mx.target_ips.iter().enumerate() {
                if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
                    f.add(
                        "securemx-targets",
                        "第8条1項",
                        format!("/secure_mx/target_ips/{i}"),
                        format!("{ip} cannot be a sending address"),
                    );
                }
            }
            if mx.administrator.name.trim().is_empty() {
                f.add(
                    "securemx-administrator",
                    "第9条1項",
                    "/secure_mx/administrator/name",
                    "the operations administrator must be named",
                );
            }
            let mut mb = std::collections::BTreeSet::new();
            for (i, m) in mx.mailboxes.iter().enumerate() {
                if !mb.insert(m) {
                    f.add(
                        "securemx-mailboxes",
                        "第8条2項",
                        format!("/secure_mx/mailboxes/{i}"),
                        format!("mailbox {m} is listed twice"),
                    );
                }
            }
        }
        (None, false) => {}
    }
}

fn quotas(input: &CheckInput<'_>, f: &mut Findings) {
    let c = input.contract;
    let ent = c.entitlements(input.catalog);
    if let Some(mx) = &c.secure_mx
        && mx.mailboxes.len() as u64 > u64::from(ent.mail_accounts_limit)
    {
        f.add("quota-mail-accounts", "別表②1, 別表③ セキュア MX ① 注1", "/secure_mx/mailboxes", format!(
            "{} mailboxes exceed the {} accounts of the contract (base plus additional accounts)",
            mx.mailboxes.len(), ent.mail_accounts_limit));
    }
    if let Some(p) = input.previous {
        for (item, old, new) in option_changes(Some(p), c) {
            if new < old
                && let Some(entry) = input.catalog.option(item)
                && !entry.reducible
            {
                f.add(
                    "not-reducible",
                    entry.article.clone(),
                    option_path(c, item),
                    format!("{} cannot be reduced (was {old}, asked {new})", entry.name),
                );
            }
        }
    }
}

fn notice_periods(input: &CheckInput<'_>, f: &mut Findings) {
    let Some(p) = input.previous else { return };
    let c = input.contract;
    if matches!(c.status, Status::Terminated { .. }) {
        return;
    }
    for (item, old, new) in option_changes(Some(p), c) {
        let Some(entry) = input.catalog.option(item) else {
            continue;
        };
        let path = option_path(c, item);
        let effective = c
            .options
            .iter()
            .find(|o| o.item == item)
            .and_then(|o| o.effective);
        let Some(effective) = effective else {
            f.add(
                "option-change-date",
                "第17条",
                format!("{path}/effective"),
                format!("a change of {} needs its effective date", entry.name),
            );
            continue;
        };
        if new > old {
            let earliest = c.requested_on + Days::new(14);
            if !entry.notice_exempt && effective < earliest {
                f.add("option-change-notice", "第17条1項", format!("{path}/effective"), format!(
                    "{} must be requested 2 weeks before the change date: requested {}, so {earliest} at the earliest (asked {effective})",
                    entry.name, c.requested_on));
            }
        } else if entry.reducible {
            if effective.format("%d").to_string() != "01" {
                f.add(
                    "option-cancellation-date",
                    "第17条2項",
                    format!("{path}/effective"),
                    format!("an option is cancelled on the 1st of a month (asked {effective})"),
                );
            } else {
                let deadline = YearMonth::of(effective).plus_months(-2).last_day();
                if c.requested_on > deadline {
                    f.add("option-cancellation-notice", "第17条2項", format!("{path}/effective"), format!(
                        "cancelling {} on {effective} had to be requested by {deadline} (the end of the month two months before); requested {}",
                        entry.name, c.requested_on));
                }
            }
        }
    }
}

fn status(input: &CheckInput<'_>, f: &mut Findings) {
    let c = input.contract;
    match &c.status {
        Status::Active => {}
        Status::Suspended { reason, .. } => {
            if reason.trim().is_empty() {
                f.add(
                    "suspension-reason",
                    "第20条2項",
                    "/status/reason",
                    "a suspension states its reason",
                );
            }
        }
        Status::Terminated(t) => termination(input, t, f),
    }
}

/// Each way a contract ends has its own rules (docs/contract-format.md,
/// "Lifecycles").
fn termination(input: &CheckInput<'_>, t: &crate::contract::Termination, f: &mut Findings) {
    use TerminationGround::*;
    let c = input.contract;
    let (effective, notified_on) = (t.effective, t.notified_on);
    let art = t.ground.article();
    if effective < c.service_start {
        f.add(
            "termination-date",
            art,
            "/status/effective",
            "a contract cannot end before its service starts",
        );
    }
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    // Fields that belong to another ground are refused, not ignored.
    if t.cause.is_some() && t.ground != CustomerUnusable {
        f.add(
            "termination-fields",
            art,
            "/status/cause",
            format!(
                "`cause` belongs to a 第25条2項 termination, not `{}`",
                t.ground.code()
            ),
        );
    }
    if t.article_20_item.is_some() && t.ground != CompanyWithoutSuspension {
        f.add(
            "termination-fields",
            art,
            "/status/article_20_item",
            format!(
                "`article_20_item` belongs to a 第24条2項 termination, not `{}`",
                t.ground.code()
            ),
        );
    }
    match t.ground {
        CustomerNotice => {
            let month = YearMonth::of(effective);
            if effective != month.last_day() {
                f.add("termination-month-end", art, "/status/effective", format!(
                    "a contract ends on the last day of a month ({} for that month, asked {effective})", month.last_day()));
            }
            match business_day_on_or_before(month.prev().last_day()) {
                Ok(deadline) if notified_on > deadline => f.add("termination-notice", art, "/status/notified_on", format!(
                    "ending on {effective} had to be notified by {deadline} (the end of the previous month, moved back to a business day); notified {notified_on}")),
                Ok(_) => {}
                Err(e) => f.add("calendar-unknown", art, "/status/notified_on", e.to_string()),
            }
        }
        CustomerUnusable => {
            // "解除通知が当社に到着した日に利用契約は終了します".
            if effective != notified_on {
                f.add("termination-immediate", art, "/status/effective", format!(
                    "a 第25条2項 termination ends the day the notice arrives ({notified_on}), not {effective}"));
            }
            if t.cause.is_none() {
                f.add("termination-cause", art, "/status/cause",
                    "name the event that made the service unusable: maintenance, equipment_failure, carrier_suspension (第21条1項(1)-(3)) or restriction (第22条1項)");
            }
        }
        CompanyAfterSuspension | CompanyWithoutSuspension | CompanyUnsuitable => {
            // 第24条4項: "あらかじめ書面により契約者にその旨を通知します".
            if notified_on > effective {
                f.add("termination-prior-notice", format!("第24条4項, {art}"), "/status/notified_on", format!(
                    "the company notifies its termination in writing beforehand: notified {notified_on}, after the end on {effective}"));
            }
            match t.ground {
                CompanyAfterSuspension => {
                    // "第20条の規定により本サービスの利用を停止された契約者が、なおその事実を解消しない場合".
                    let suspended_since = input.previous.and_then(|p| match &p.status {
                        Status::Suspended { since, .. } => Some(*since),
                        _ => None,
                    });
                    match (input.previous, suspended_since) {
                        (Some(_), Some(since)) if effective < since => f.add("termination-after-suspension", art, "/status/effective", format!(
                            "the termination ({effective}) cannot come before the suspension it follows ({since})")),
                        (Some(_), Some(_)) => {}
                        (Some(_), None) => f.add("termination-after-suspension", art, "/status/ground",
                            "第24条1項 ends a contract suspended under 第20条 whose cause was not cured; the latest revision is not suspended (第24条2項 ends one without suspension)"),
                        // Checked without the previous revision (the CLI without --previous).
                        (None, _) => {}
                    }
                }
                CompanyWithoutSuspension => {
                    if !t.article_20_item.is_some_and(|i| (1..=11).contains(&i)) {
                        f.add(
                            "termination-reason",
                            art,
                            "/status/article_20_item",
                            "第24条2項 needs the item of 第20条1項 (1-11) the customer falls under",
                        );
                    }
                    if blank(&t.reason) {
                        f.add("termination-reason", art, "/status/reason",
                            "state the facts and how they hinder the company's business (第24条2項)");
                    }
                }
                _ => {
                    if blank(&t.reason) {
                        f.add(
                            "termination-reason",
                            art,
                            "/status/reason",
                            "state why continued use is unsuitable (第24条3項)",
                        );
                    }
                }
            }
        }
        CompanyAntisocial => {
            // "催告をすることなく": no demand or prior notice is needed.
            if blank(&t.reason) {
                f.add(
                    "termination-reason",
                    art,
                    "/status/reason",
                    "state the finding of 第46条1項 the termination rests on",
                );
            }
            if notified_on > effective {
                f.add("termination-date", art, "/status/notified_on", format!(
                    "a termination takes effect when declared: notified {notified_on}, after the end on {effective}"));
            }
        }
        ServiceAbolished | ServiceTypeAbolished => {
            // 第47条2項, 第23条2項: "廃止する3ヶ月前までに...通知".
            let notice_art = if t.ground == ServiceAbolished {
                "第47条2項"
            } else {
                "第23条2項, 第25条3項"
            };
            if crate::calendar::add_months(notified_on, 3) > effective {
                f.add("abolition-notice", notice_art, "/status/notified_on", format!(
                    "an abolition is notified 3 months before it: ending on {effective} needed notice by {}; notified {notified_on}",
                    sub_months(effective, 3)));
            }
            if t.ground == ServiceTypeAbolished {
                let svc = input.catalog.service(c.service);
                match svc.service_end {
                    Some(end) if end == effective => {}
                    Some(end) => f.add("abolition-date", format!("第25条3項, {}", svc.article), "/status/effective", format!(
                        "{} is abolished on {end}: its contracts end that day (asked {effective})", svc.name)),
                    None => f.add("abolition-date", "第25条3項, 第23条1項", "/status/ground", format!(
                        "the catalog records no abolition of {}", svc.name)),
                }
            }
        }
    }
}

/// `d` less `months` calendar months (the day clamped to the month's end).
fn sub_months(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_sub_months(chrono::Months::new(months))
        .expect("date in range")
}

/// Whether this revision records a succession the previous one did not.
fn records_new_succession(c: &Contract, previous: Option<&Contract>) -> bool {
    match (&c.succession, previous) {
        (None, _) => false,
        (Some(s), Some(p)) => p.succession.as_ref() != Some(s),
        (Some(_), None) => true,
    }
}

/// 第18条: a succession passes the contract, its resources and its billing
/// history to the successor.
fn succession(input: &CheckInput<'_>, f: &mut Findings) {
    let c = input.contract;
    let Some(s) = &c.succession else { return };
    if !records_new_succession(c, input.previous) {
        return;
    }
    let p = &s.predecessor;
    if let Some(prev) = input.previous
        && (prev.customer.id != p.id || prev.customer.kind != p.kind)
    {
        f.add("succession-predecessor", "第18条1項", "/succession/predecessor", format!(
            "the predecessor must be the customer of the latest revision ({} {:?}), not {} {:?}",
            prev.customer.id, prev.customer.kind, p.id, p.kind));
    }
    if c.customer.id == p.id {
        f.add("succession-party", "第18条1項", "/customer/id",
            "a succession passes the contract to another party: the successor's id must differ from the predecessor's");
    }
    let (art, ok) = match s.kind {
        // Only an individual dies and has heirs, who are individuals.
        SuccessionKind::Inheritance => (
            "第18条1項3項",
            p.kind == CustomerKind::Individual && c.customer.kind == CustomerKind::Individual,
        ),
        SuccessionKind::Merger => (
            "第18条1項2項",
            p.kind == CustomerKind::Corporation && c.customer.kind == CustomerKind::Corporation,
        ),
        SuccessionKind::CompanySplit => (
            "第18条2項",
            p.kind == CustomerKind::Corporation && c.customer.kind == CustomerKind::Corporation,
        ),
    };
    if !ok {
        f.add(
            "succession-kind",
            art,
            "/succession/kind",
            format!(
                "{} passes an {} position to an {}; here {:?} to {:?}",
                s.kind.name_ja(),
                if s.kind == SuccessionKind::Inheritance {
                    "individual's"
                } else {
                    "corporation's"
                },
                if s.kind == SuccessionKind::Inheritance {
                    "individual heir"
                } else {
                    "corporation"
                },
                p.kind,
                c.customer.kind
            ),
        );
    }
    if s.reported_on < s.occurred_on {
        f.add(
            "succession-dates",
            art,
            "/succession/reported_on",
            "a succession is reported after it happened",
        );
    }
    if s.occurred_on > c.requested_on || s.reported_on > c.requested_on {
        f.add(
            "succession-dates",
            art,
            "/succession",
            "a revision records a succession that happened and was reported by its requested_on",
        );
    }
    if s.kind == SuccessionKind::Inheritance {
        // "相続開始の日から2週間を経過する日までに": the period starts the next
        // day (民法140条), so it ends 14 days after the inheritance.
        let deadline = s.occurred_on + Days::new(14);
        if s.reported_on > deadline {
            f.add(
                "succession-report-deadline",
                "第18条3項",
                "/succession/reported_on",
                format!(
                    "an inheritance on {} is reported by {deadline} (2 weeks); reported {}",
                    s.occurred_on, s.reported_on
                ),
            );
        }
        if s.heirs == 0 {
            f.add(
                "succession-representative",
                "第18条4項",
                "/succession/heirs",
                "at least one heir",
            );
        }
        if s.heirs > 1 && s.representative_named_by.is_none() {
            f.add("succession-representative", "第18条4項5項", "/succession/representative_named_by",
                "several heirs name one representative in writing (第18条4項) or the company names one (5項); say which");
        }
    } else if s.heirs != 1 || s.representative_named_by.is_some() {
        f.add(
            "succession-representative",
            "第18条4項",
            "/succession/heirs",
            "heirs and their representative belong to an inheritance",
        );
    }
    if s.representative_named_by == Some(RepresentativeNamedBy::Heirs) && s.heirs < 2 {
        f.add(
            "succession-representative",
            "第18条4項",
            "/succession/representative_named_by",
            "a representative is named among two or more heirs",
        );
    }
}

/// 別表②2: changing the service type.
fn service_change(input: &CheckInput<'_>, f: &mut Findings) {
    let c = input.contract;
    let catalog = input.catalog;
    let Some(p) = input.previous else {
        if c.revision == 1 && c.service_change.is_some() {
            f.add(
                "service-change-record",
                "別表②2",
                "/service_change",
                "a new application has no service type to change from",
            );
        }
        return;
    };
    if p.service == c.service {
        if c.service_change != p.service_change {
            f.add(
                "service-change-record",
                "別表②2",
                "/service_change",
                "the service type did not change: keep the recorded service_change as it was",
            );
        }
        return;
    }
    let Some(sc) = &c.service_change else {
        f.add("service-change-record", "別表②2", "/service_change", format!(
            "changing the service type from `{}` to `{}` needs a service_change record (from, effective)",
            p.service.code(), c.service.code()));
        return;
    };
    if sc.from != p.service {
        f.add(
            "service-change-record",
            "別表②2",
            "/service_change/from",
            format!(
                "the change is from the type of the latest revision, `{}` (not `{}`)",
                p.service.code(),
                sc.from.code()
            ),
        );
    }
    if let Some(prev) = &p.service_change
        && prev.effective > c.requested_on
    {
        f.add("service-change-pending", "別表②2", "/service_change", format!(
            "the change to `{}` takes effect on {}; a further change can be requested from then",
            p.service.code(), prev.effective));
    }
    if c.status.termination().is_some() {
        f.add(
            "service-change-record",
            "別表②2",
            "/service",
            "a terminating revision does not change the service type",
        );
    }
    let (from, to) = (p.service, c.service);
    let listed = ServiceFamily::change_listed(from.family(), to.family());
    // 第23条3項: a type being abolished may be replaced by another before its end.
    let from_svc = catalog.service(from);
    let substitution = from_svc
        .service_end
        .is_some_and(|end| c.requested_on <= end && sc.effective <= end);
    if !listed && !substitution {
        f.add("service-change-allowed", "別表②2", "/service", format!(
            "changing `{}` to `{}` is not a change 別表②2 備考 lists (Mail → パック, www → パック, パック or ミニパック → Mail or www)",
            from.code(), to.code()));
    }
    if sc.effective < c.service_start {
        f.add(
            "service-change-date",
            "別表②2",
            "/service_change/effective",
            "a service type changes after the service started",
        );
    }
    // 第17条, applied to changes of type as 第23条3項 does ("第17条の規定を
    // 準用"): a change that drops a side (削除: パック → www drops mail) is a
    // cancellation (2項: the 1st of a month, by the end of the month two
    // months before); any other is a change or addition (1項: 2 weeks).
    let drops = (from.has_web() && !to.has_web()) || (from.has_mail() && !to.has_mail());
    if drops {
        if sc.effective.format("%d").to_string() != "01" {
            f.add("service-change-date", "第17条2項, 別表②2", "/service_change/effective", format!(
                "a change that drops part of the service (`{}` → `{}`) takes effect on the 1st of a month (asked {})",
                from.code(), to.code(), sc.effective));
        } else {
            let deadline = YearMonth::of(sc.effective).plus_months(-2).last_day();
            if c.requested_on > deadline {
                f.add("service-change-notice", "第17条2項, 別表②2", "/service_change/effective", format!(
                    "dropping part of the service on {} had to be requested by {deadline} (the end of the month two months before); requested {}",
                    sc.effective, c.requested_on));
            }
        }
    } else {
        let earliest = c.requested_on + Days::new(14);
        if sc.effective < earliest {
            f.add("service-change-notice", "第17条1項, 別表②2", "/service_change/effective", format!(
                "a change of service type is requested 2 weeks before it: requested {}, so {earliest} at the earliest (asked {})",
                c.requested_on, sc.effective));
        }
    }
}

/// One-time fees: the fee of a service type change comes from the change
/// itself; a domain operation names a domain the contract holds, and one its
/// registry's table offers (別表③), or it is refused rather than dropped.
fn one_time(c: &Contract, catalog: &Catalog, f: &mut Findings) {
    for (i, t) in c.one_time.iter().enumerate() {
        let path = format!("/one_time/{i}");
        if t.item == OneTimeItem::ServiceTypeChange {
            f.add("service-change-fee", "別表②2", &path,
                "the サービス種別の変更 fee is billed from service_change in the month it takes effect; do not list it");
            continue;
        }
        if catalog.one_time(t.item).is_some() {
            if t.domain.is_some() {
                f.add(
                    "one-time-domain",
                    "別表②2",
                    format!("{path}/domain"),
                    format!(
                        "`{}` is not a domain operation: it names no domain",
                        t.item.code()
                    ),
                );
            }
            continue;
        }
        let Some(name) = &t.domain else {
            f.add(
                "one-time-domain",
                "別表③ ドメインお預かり DNS 運用サービス",
                format!("{path}/domain"),
                format!(
                    "`{}` is priced by the domain's registry table: name the domain",
                    t.item.code()
                ),
            );
            continue;
        };
        let Some(d) = c.domains.iter().find(|d| &d.name == name) else {
            f.add(
                "one-time-domain",
                "別表③ ドメインお預かり DNS 運用サービス",
                format!("{path}/domain"),
                format!("{name} is not a domain of this contract (domains[])"),
            );
            continue;
        };
        let table = catalog.domain_fees(d.registry);
        if table.one_time(t.item).is_none() {
            f.add(
                "one-time-not-offered",
                table.table.clone(),
                format!("{path}/item"),
                format!(
                    "`{}` is not offered for {} ({name})",
                    t.item.code(),
                    table.table
                ),
            );
        }
    }
}

fn domains(c: &Contract, f: &mut Findings) {
    if c.service.has_web() && c.domains.is_empty() {
        f.add(
            "domain-required",
            "第5条",
            "/domains",
            "a web site is opened on a domain the customer holds: list at least one",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, d) in c.domains.iter().enumerate() {
        if !seen.insert(&d.name) {
            f.add(
                "domain-listed-once",
                "第5条",
                format!("/domains/{i}/name"),
                format!("{} is listed twice", d.name),
            );
        }
    }
}

/// What a revision records about the contract's life, in words, for `contract
/// check`: a succession, a change of service type, its end.
pub fn events(c: &Contract, previous: Option<&Contract>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = &c.succession
        && records_new_succession(c, previous)
    {
        out.push(format!(
            "succession (第18条, {}): {} {} → {} {}, on {}, reported {}",
            s.kind.name_ja(),
            s.predecessor.id,
            s.predecessor.name,
            c.customer.id,
            c.customer.name,
            s.occurred_on,
            s.reported_on
        ));
    }
    if let Some(sc) = &c.service_change
        && previous.is_none_or(|p| p.service_change.as_ref() != Some(sc))
    {
        let listed = ServiceFamily::change_listed(sc.from.family(), c.service.family());
        out.push(format!(
            "service type change (別表②2): {} → {} from {}{}",
            sc.from.code(),
            c.service.code(),
            sc.effective,
            if listed {
                ", change fee in that month"
            } else {
                " (第23条3項 substitution, no change fee)"
            }
        ));
    }
    if let Some(t) = c.status.termination()
        && previous.is_none_or(|p| p.status != c.status)
    {
        out.push(format!(
            "termination ({}, {}): ends {}, notified {}; billed through {}{}",
            t.ground.code(),
            t.ground.article(),
            t.effective,
            t.notified_on,
            YearMonth::of(t.effective),
            if t.ground.owes_minimum_period() {
                "; 第33条 applies inside the minimum period"
            } else {
                "; 第33条 does not apply"
            }
        ));
    }
    out
}

/// The date rules are judged on, exposed for tests and tools.
pub fn judged_on(c: &Contract) -> NaiveDate {
    c.requested_on
}

#[cfg(test)]
mod tests;
