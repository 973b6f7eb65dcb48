//! The catalog of the terms (別表 ①②③) as data: `playbooks/catalog/*.toml`,
//! loaded and validated at start. Nothing here knows a price by heart; the
//! code only knows the *shape* of the tables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::contract::{OneTimeItem, OptionItem, RegistryClass, ServiceType};

/// The catalog shipped with this build (revision 2024-03-01).
pub const BUILTIN: &str = include_str!("../../../playbooks/catalog/2024-03-01.toml");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("catalog does not parse: {0}")]
    Parse(String),
    #[error("catalog is invalid: {0}")]
    Invalid(String),
}

/// How a fee is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeKind {
    Initial,
    Monthly,
    Annual,
    Metered,
}

/// One priced row of a table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fee {
    /// Stable row id, printed on statement lines.
    pub row: String,
    pub name: String,
    pub kind: FeeKind,
    /// Whole yen per unit; `None` when `quoted`.
    #[serde(default)]
    pub amount: Option<Decimal>,
    /// The price is agreed per contract (the contract carries it).
    #[serde(default)]
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub code: String,
    pub name: String,
    pub article: String,
    #[serde(default)]
    pub initial: Option<Decimal>,
    pub monthly: Decimal,
    #[serde(default)]
    pub web_disk_gb: u32,
    #[serde(default)]
    pub ftp_accounts: u32,
    #[serde(default)]
    pub mail_accounts: u32,
    #[serde(default)]
    pub mx_disk_units: u32,
    /// 新規受付終了: no new applications nor changes after this date.
    #[serde(default)]
    pub closed_to_new: Option<NaiveDate>,
    /// サービス終了.
    #[serde(default)]
    pub service_end: Option<NaiveDate>,
    /// 第5条 注: customers holding the service on this date may continue it.
    #[serde(default)]
    pub continuation_for_customers_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionEntry {
    pub code: String,
    pub name: String,
    pub article: String,
    /// Service types the option may be held with (第6条2項).
    pub services: Vec<String>,
    /// Prerequisites of 第6条3項: `mailbox_plus`, `iij_id`, `dox`.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Another option that must be held too.
    #[serde(default)]
    pub requires_option: Option<String>,
    #[serde(default)]
    pub closed_to_new: Option<NaiveDate>,
    /// Whether the quantity may go down (別表③ 注2 says no for Secure MX disk).
    #[serde(default = "yes")]
    pub reducible: bool,
    /// Exempt from 第17条's two-week notice (別表に定めがある場合).
    #[serde(default)]
    pub notice_exempt: bool,
    /// The most units the 別表 allows: 1 for options priced per contract
    /// without a unit (held or not).
    #[serde(default)]
    pub max_quantity: Option<u32>,
    /// A limit of our own operations, not of the terms (docs/billing.md,
    /// "The catalog against the text"): refused under its own rule id.
    #[serde(default)]
    pub operational_max: Option<u32>,
    /// What one unit adds to the quotas.
    #[serde(default)]
    pub web_disk_gb: u32,
    #[serde(default)]
    pub ftp_accounts: u32,
    #[serde(default)]
    pub mail_accounts: u32,
    #[serde(default)]
    pub mx_disk_units: u32,
    pub fees: Vec<Fee>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneTimeEntry {
    pub code: String,
    pub name: String,
    pub article: String,
    pub amount: Decimal,
    #[serde(default)]
    pub closed_to_new: Option<NaiveDate>,
}

/// A registry class's domain custody and DNS operation table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainFees {
    pub registry: RegistryClass,
    pub table: String,
    pub registration: Option<Decimal>,
    pub name_change: Option<Decimal>,
    pub admin_transfer: Option<Decimal>,
    pub registrar_transfer: Option<Decimal>,
    pub transfer_expedited: Option<Decimal>,
    pub transfer_normal: Option<Decimal>,
    pub abolish_at_renewal: Option<Decimal>,
    pub abolish_early: Option<Decimal>,
    pub registration_change: Option<Decimal>,
    pub renewal: Option<Decimal>,
    pub host_name: Option<Decimal>,
    pub dns_monthly: Decimal,
    pub dns_yearly: Decimal,
    pub dns_forward_change: Decimal,
    pub dns_reverse_change: Decimal,
}

fn t_code(item: OneTimeItem) -> String {
    serde_json::to_value(item)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl DomainFees {
    /// Every amount of the table, named, for validation.
    fn amounts(&self) -> Vec<(&'static str, Decimal)> {
        let optional = [
            ("registration", self.registration),
            ("name_change", self.name_change),
            ("admin_transfer", self.admin_transfer),
            ("registrar_transfer", self.registrar_transfer),
            ("transfer_expedited", self.transfer_expedited),
            ("transfer_normal", self.transfer_normal),
            ("abolish_at_renewal", self.abolish_at_renewal),
            ("abolish_early", self.abolish_early),
            ("registration_change", self.registration_change),
            ("renewal", self.renewal),
            ("host_name", self.host_name),
        ];
        let mut out: Vec<_> = optional
            .into_iter()
            .filter_map(|(n, a)| a.map(|a| (n, a)))
            .collect();
        out.extend([
            ("dns_monthly", self.dns_monthly),
            ("dns_yearly", self.dns_yearly),
            ("dns_forward_change", self.dns_forward_change),
            ("dns_reverse_change", self.dns_reverse_change),
        ]);
        out
    }

    /// The price of a domain operation for this registry class, if offered.
    pub fn one_time(&self, item: OneTimeItem) -> Option<Decimal> {
        use OneTimeItem::*;
        match item {
            DomainRegistration => self.registration,
            DomainNameChange => self.name_change,
            DomainAdminTransfer => self.admin_transfer,
            DomainRegistrarTransfer => self.registrar_transfer,
            DomainTransferExpedited => self.transfer_expedited,
            DomainTransferNormal => self.transfer_normal,
            DomainAbolishAtRenewal => self.abolish_at_renewal,
            DomainAbolishEarly => self.abolish_early,
            RegistrationChange => self.registration_change,
            RegistrationRenewal => self.renewal,
            HostName => self.host_name,
            DnsForwardChange => Some(self.dns_forward_change),
            DnsReverseChange => Some(self.dns_reverse_change),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxRate {
    pub from: NaiveDate,
    pub rate: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    revision: String,
    title: String,
    service: Vec<ServiceEntry>,
    option: Vec<OptionEntry>,
    one_time: Vec<OneTimeEntry>,
    domain_fee: Vec<DomainFees>,
    tax_rate: Vec<TaxRate>,
}

/// The validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub revision: String,
    pub title: String,
    services: BTreeMap<ServiceType, ServiceEntry>,
    options: BTreeMap<OptionItem, OptionEntry>,
    one_time: BTreeMap<OneTimeItem, OneTimeEntry>,
    domains: BTreeMap<RegistryClass, DomainFees>,
    tax_rates: Vec<TaxRate>,
}

fn whole_yen(what: &str, d: Decimal) -> Result<(), CatalogError> {
    if d.is_sign_negative() || d.fract() != Decimal::ZERO {
        return Err(CatalogError::Invalid(format!(
            "{what}: {d} is not a whole, non-negative yen amount"
        )));
    }
    Ok(())
}

impl Catalog {
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::parse(BUILTIN)
    }

    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Catalog::parse(&text)
    }

    /// Parses and validates: every service type, option and one-time item the
    /// contract model knows has exactly one row; every amount is whole yen;
    /// every fee is either priced or quoted.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog =
            toml::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        let inv = |m: String| CatalogError::Invalid(m);
        let mut services = BTreeMap::new();
        for s in raw.service {
            let st = ServiceType::from_code(&s.code)
                .ok_or_else(|| inv(format!("unknown service type `{}`", s.code)))?;
            whole_yen(&s.code, s.monthly)?;
            if let Some(i) = s.initial {
                whole_yen(&s.code, i)?;
            }
            if services.insert(st, s).is_some() {
                return Err(inv(format!("service type `{}` listed twice", st.code())));
            }
        }
        for st in ServiceType::ALL {
            if !services.contains_key(&st) {
                return Err(inv(format!("service type `{}` has no row", st.code())));
            }
        }
        let mut options = BTreeMap::new();
        for o in raw.option {
            let item: OptionItem =
                serde_json::from_value(serde_json::Value::String(o.code.clone()))
                    .map_err(|_| inv(format!("unknown option `{}`", o.code)))?;
            for s in &o.services {
                if ServiceType::from_code(s).is_none() {
                    return Err(inv(format!(
                        "option `{}`: unknown service type `{s}`",
                        o.code
                    )));
                }
            }
            for r in &o.requires {
                if !["mailbox_plus", "iij_id", "dox"].contains(&r.as_str()) {
                    return Err(inv(format!(
                        "option `{}`: unknown prerequisite `{r}`",
                        o.code
                    )));
                }
            }
            for f in &o.fees {
                match (f.amount, f.quoted) {
                    (Some(a), false) => whole_yen(&f.row, a)?,
                    (None, true) => {}
                    _ => {
                        return Err(inv(format!(
                            "fee `{}`: give either an amount or quoted = true",
                            f.row
                        )));
                    }
                }
            }
            if options.insert(item, o).is_some() {
                return Err(inv(format!("option `{}` listed twice", item.code())));
            }
        }
        for (item, o) in &options {
            if let Some(req) = &o.requires_option
                && !options.keys().any(|k| &k.code() == req)
            {
                return Err(inv(format!(
                    "option `{}` requires unknown option `{req}`",
                    item.code()
                )));
            }
        }
        let mut one_time = BTreeMap::new();
        for t in raw.one_time {
            let item: OneTimeItem =
                serde_json::from_value(serde_json::Value::String(t.code.clone()))
                    .map_err(|_| inv(format!("unknown one-time item `{}`", t.code)))?;
            whole_yen(&t.code, t.amount)?;
            if one_time.insert(item, t).is_some() {
                return Err(inv(format!(
                    "one-time item `{}` listed twice",
                    t_code(item)
                )));
            }
        }
        let mut domains = BTreeMap::new();
        for d in raw.domain_fee {
            for (what, amount) in d.amounts() {
                whole_yen(&format!("{}: {what}", d.table), amount)?;
            }
            let r = d.registry;
            if domains.insert(r, d).is_some() {
                return Err(inv(format!(
                    "registry class {r:?} has a domain fee table listed twice"
                )));
            }
        }
        for r in [
            RegistryClass::JprsAttribute,
            RegistryClass::JprsGeneric,
            RegistryClass::Gtld,
        ] {
            if !domains.contains_key(&r) {
                return Err(inv(format!("registry class {r:?} has no domain fee table")));
            }
        }
        let mut tax_rates = raw.tax_rate;
        tax_rates.sort_by_key(|t| t.from);
        if tax_rates.is_empty() {
            return Err(inv("no consumption tax rate".into()));
        }
        for t in &tax_rates {
            if t.rate < Decimal::ZERO || t.rate >= Decimal::ONE {
                return Err(inv(format!("tax rate {} is not between 0 and 1", t.rate)));
            }
        }
        Ok(Catalog {
            revision: raw.revision,
            title: raw.title,
            services,
            options,
            one_time,
            domains,
            tax_rates,
        })
    }

    pub fn service(&self, st: ServiceType) -> &ServiceEntry {
        &self.services[&st]
    }

    pub fn option(&self, item: OptionItem) -> Option<&OptionEntry> {
        self.options.get(&item)
    }

    pub fn options(&self) -> impl Iterator<Item = (&OptionItem, &OptionEntry)> {
        self.options.iter()
    }

    pub fn one_time(&self, item: OneTimeItem) -> Option<&OneTimeEntry> {
        self.one_time.get(&item)
    }

    pub fn domain_fees(&self, r: RegistryClass) -> &DomainFees {
        &self.domains[&r]
    }

    /// The service type codes, for playbook validation.
    pub fn service_codes(&self) -> BTreeSet<String> {
        self.services.keys().map(|s| s.code().to_string()).collect()
    }

    /// 第36条: the consumption tax rate in force on `date`.
    pub fn tax_rate(&self, date: NaiveDate) -> Decimal {
        self.tax_rates
            .iter()
            .rev()
            .find(|t| t.from <= date)
            .map(|t| t.rate)
            .unwrap_or(Decimal::ZERO)
    }
}

#[cfg(test)]
mod tests;
