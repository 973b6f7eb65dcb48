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
use crate::contract::{Contract, LegalCapacity, MAX_REVISION_STEP, OptionItem, Status};

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
            article: article.into(),
            path: path.into(),
            message: message.into(),
        });
    }
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
        if c.customer.id != p.customer.id || c.customer.kind != p.customer.kind {
            f.add("one-party", "第11条2項, 第16条", "/customer", format!(
                "the contracting party cannot change (was {}, now {}): a contract belongs to one individual or corporation and cannot be transferred",
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
    for o in input.others {
        if o.active && o.contract_id != c.contract_id.as_str() && o.service == c.service.code() {
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

fn lifecycle(input: &CheckInput<'_>, f: &mut Findings) {
    let c = input.contract;
    let svc = input.catalog.service(c.service);
    let on = c.requested_on;
    let changes = option_changes(input.previous, c);
    let terminating = matches!(c.status, Status::Terminated { .. });
    // The Mini pack exception (第5条 注): customers holding it on the date may
    // continue it with Secure MX mail.
    let continuing = svc
        .continuation_for_customers_on
        .is_some_and(|d| c.service_start <= d);
    if let Some(closed) = svc.closed_to_new {
        if is_new_application(input) && on > closed && !continuing {
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
        if let Some(p) = input.previous
            && p.service != c.service
            && on > closed
        {
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
        if !is_new_application(input) && on > closed && !terminating {
            for (item, _, _) in &changes {
                let mx_only = item.code().starts_with("mx_");
                if !(continuing && mx_only) {
                    f.add(
                        "service-closed-to-change",
                        format!("第5条, {}", svc.article),
                        option_path(c, *item),
                        format!(
                            "{} has not accepted changes since {closed} (option `{}`)",
                            svc.name,
                            item.code()
                        ),
                    );
                }
            }
        }
    }
    if let Some(end) = svc.service_end
        && on > end
        && !terminating
    {
        if continuing {
            if c.secure_mx.is_none() {
                f.add("service-ended", format!("第5条 注, {}", svc.article), "/secure_mx", format!(
                    "{} ended on {end}; customers of {} may continue only with their mail on Secure MX (secure_mx is required)",
                    svc.name, svc.continuation_for_customers_on.map(|d| d.to_string()).unwrap_or_default()));
            }
        } else {
            f.add(
                "service-ended",
                format!("第5条, {}", svc.article),
                "/service",
                format!("{} ended on {end}", svc.name),
            );
        }
    }
    for (item, old, new) in &changes {
        if new > old
            && let Some(entry) = input.catalog.option(*item)
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
        if let Some(entry) = input.catalog.one_time(t.item)
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
        Status::Terminated {
            effective,
            notified_on,
        } => {
            let month = YearMonth::of(*effective);
            if *effective != month.last_day() {
                f.add("termination-month-end", "第25条1項", "/status/effective", format!(
                    "a contract ends on the last day of a month ({} for that month, asked {effective})", month.last_day()));
            }
            let deadline = business_day_on_or_before(month.prev().last_day());
            if *notified_on > deadline {
                f.add("termination-notice", "第25条1項", "/status/notified_on", format!(
                    "ending on {effective} had to be notified by {deadline} (the end of the previous month, moved back to a business day); notified {notified_on}"));
            }
            if *effective < c.service_start {
                f.add(
                    "termination-month-end",
                    "第25条1項",
                    "/status/effective",
                    "a contract cannot end before its service starts",
                );
            }
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

/// The date rules are judged on, exposed for tests and tools.
pub fn judged_on(c: &Contract) -> NaiveDate {
    c.requested_on
}

#[cfg(test)]
mod tests;
