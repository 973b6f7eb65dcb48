//! What a contract entitles its customer to, from the catalog's quotas and
//! inclusions: the numbers the planner provisions and the rules check.

use serde::Serialize;

use super::{Contract, DnsOperation};
use crate::catalog::Catalog;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entitlements {
    /// Base disk plus additional WWW and SSL capacity, in MiB.
    pub web_disk_mb: u64,
    /// Accounts included with the service and SSL (別表② ※1) plus additional ones.
    pub ftp_accounts: u32,
    /// HTTPS for the customer's domains (SSL サーバホスティング).
    pub tls: bool,
    /// Mail accounts: base plus additional.
    pub mail_accounts_limit: u32,
    /// Secure MX disk in 10 GB units: base plus additional.
    pub mx_disk_units: u32,
    /// Secure MX option codes held (mailbox plus is part of the basic service).
    pub mx_options: Vec<String>,
    /// Domains that get a zone on our DNS: DNS operation contracted, or the
    /// web site / mail hosted with us.
    pub dns_zones: Vec<String>,
}

impl Contract {
    pub fn entitlements(&self, catalog: &Catalog) -> Entitlements {
        let svc = catalog.service(self.service);
        let mut web_gb = u64::from(svc.web_disk_gb);
        let mut ftp = svc.ftp_accounts;
        let mut mail = svc.mail_accounts;
        let mut disk = svc.mx_disk_units;
        let mut mx_options = Vec::new();
        for line in &self.options {
            let Some(entry) = catalog.option(line.item) else {
                continue;
            };
            let q = line.quantity;
            web_gb += u64::from(entry.web_disk_gb) * u64::from(q);
            ftp += entry.ftp_accounts * q;
            mail += entry.mail_accounts * q;
            disk += entry.mx_disk_units * q;
            let code = line.item.code();
            if q > 0
                && code.starts_with("mx_")
                && !matches!(code.as_str(), "mx_account_extra" | "mx_disk_extra")
            {
                mx_options.push(code.trim_start_matches("mx_").to_string());
            }
        }
        mx_options.sort();
        mx_options.dedup();
        let hosted_mail: Vec<&str> = self
            .secure_mx
            .as_ref()
            .map(|m| m.target_domains.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let mut dns_zones: Vec<String> = self
            .domains
            .iter()
            .filter(|d| {
                d.dns_operation != DnsOperation::None || hosted_mail.contains(&d.name.as_str())
            })
            .map(|d| d.name.clone())
            .collect();
        dns_zones.sort();
        dns_zones.dedup();
        Entitlements {
            web_disk_mb: web_gb * 1024,
            ftp_accounts: if self.service.has_web() { ftp } else { 0 },
            tls: self.has_option(crate::contract::OptionItem::SslHosting),
            mail_accounts_limit: mail,
            mx_disk_units: if self.service.has_secure_mx() {
                disk
            } else {
                0
            },
            mx_options,
            dns_zones,
        }
    }
}
