//! Ownership of backend names: which contract may create, change and remove
//! which web account, virtual host, zone, FTP login, Secure MX tenant or mail
//! domain, and which customer holds which domain.
//!
//! Two contracts naming the same backend resource would let one customer's
//! revision change or delete another customer's live site. So every name a
//! revision's resources use is *claimed* for its contract in the store, in
//! the transaction that records the revision, under a uniqueness constraint
//! (`claims`), and a revision that needs a name held by another contract is
//! refused at intake. Domains are held per customer and by hierarchy
//! (`domain_claims`): a customer's `example.jp` keeps every other customer
//! off `example.jp`, `www.example.jp` and `shop.example.jp` alike (a zone for
//! `www.example.jp` on our name servers would hijack the owner's `www`), while
//! one customer's WWW and mail contracts may share their domain. Each
//! backend resource itself (the vhost, the zone, the mail domain) still has
//! exactly one owning contract.
//!
//! Claims are released only when the owning contract's job that no longer
//! needs them has succeeded (see `Store::finish_job`), so a name is never
//! free while the resource behind it may still exist; and a removal step only
//! runs when its contract owns the resource (checked in the transaction that
//! journals the attempt, before the adapter is called).
//!
//! This module is pure: it says which names a revision or a recorded
//! resource uses; the store enforces them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::Desired;
use super::store::RecordedResource;
use crate::contract::{Contract, Status};

/// A namespace of backend names, each owned by one contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// A Unix account on the web host (the web space).
    UnixUser,
    /// A pure-ftpd virtual user.
    FtpLogin,
    /// An nginx virtual host (its server name and file).
    Vhost,
    /// A zone on our name servers.
    DnsZone,
    /// A Secure MX tenant.
    MxTenant,
    /// A mail domain of a Secure MX tenant (its mailboxes live under it).
    MailDomain,
}

impl Space {
    pub const ALL: [Space; 6] = [
        Space::UnixUser,
        Space::FtpLogin,
        Space::Vhost,
        Space::DnsZone,
        Space::MxTenant,
        Space::MailDomain,
    ];

    /// The name stored in the `claims` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Space::UnixUser => "unix_user",
            Space::FtpLogin => "ftp_login",
            Space::Vhost => "vhost",
            Space::DnsZone => "dns_zone",
            Space::MxTenant => "mx_tenant",
            Space::MailDomain => "mail_domain",
        }
    }

    pub fn parse(s: &str) -> Option<Space> {
        Space::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// How a person reads it in a finding.
    pub fn describe(self) -> &'static str {
        match self {
            Space::UnixUser => "web space account",
            Space::FtpLogin => "FTP login",
            Space::Vhost => "web site (virtual host)",
            Space::DnsZone => "DNS zone",
            Space::MxTenant => "Secure MX tenant",
            Space::MailDomain => "mail domain",
        }
    }
}

/// One backend name of one namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Claim {
    pub space: Space,
    pub name: String,
}

impl Claim {
    pub fn new(space: Space, name: impl Into<String>) -> Claim {
        Claim {
            space,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.space.describe(), self.name)
    }
}

/// Everything one revision (or one set of recorded resources) holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Backend names, each exclusive to one contract.
    pub names: BTreeSet<Claim>,
    /// Domains the contract's customer holds (with everything below them).
    pub domains: BTreeSet<String>,
}

impl Claims {
    pub fn extend(&mut self, other: Claims) {
        self.names.extend(other.names);
        self.domains.extend(other.domains);
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.domains.is_empty()
    }
}

/// The names one resource of `kind` / `key` with `spec` uses on its backend.
/// Kinds without names of their own (the mailbox list lives in its tenant's
/// mail domain) claim nothing.
pub fn of_resource(kind: &str, key: &str, spec: &Value) -> Claims {
    let mut c = Claims::default();
    let strings = |field: &str| -> Vec<String> {
        spec.get(field)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    match kind {
        "webspace" => {
            c.names.insert(Claim::new(Space::UnixUser, key));
        }
        "ftp_account" => {
            c.names.insert(Claim::new(Space::FtpLogin, key));
        }
        "vhost" => {
            c.names.insert(Claim::new(Space::Vhost, key));
            c.domains.insert(key.to_string());
            // Aliases (www.) lie under the domain: held by hierarchy.
        }
        "dns_zone" => {
            c.names.insert(Claim::new(Space::DnsZone, key));
            c.domains.insert(key.to_string());
        }
        "mx_tenant" => {
            c.names.insert(Claim::new(Space::MxTenant, key));
            for d in strings("domains") {
                c.names.insert(Claim::new(Space::MailDomain, d.clone()));
                c.domains.insert(d);
            }
        }
        _ => {}
    }
    c
}

/// What a revision needs: the names of every resource the planner derived
/// for it, and every domain the contract lists (held by the customer even
/// where no resource is made for it, e.g. a domain in custody only). A
/// terminated contract needs nothing: its names are released once its
/// resources are removed.
pub fn of_revision(contract: &Contract, desired: &[Desired]) -> Claims {
    let mut c = Claims::default();
    if matches!(contract.status, Status::Terminated { .. }) {
        return c;
    }
    for d in desired {
        c.extend(of_resource(&d.kind, &d.key, &d.spec));
    }
    c.domains
        .extend(contract.domains.iter().map(|d| d.name.clone()));
    if let Some(mx) = &contract.secure_mx {
        c.domains.extend(mx.target_domains.iter().cloned());
    }
    c
}

/// What recorded resources hold (they keep their names until removed).
pub fn of_recorded(resources: &[RecordedResource]) -> Claims {
    let mut c = Claims::default();
    for r in resources {
        c.extend(of_resource(&r.kind, &r.key, &r.spec));
    }
    c
}

/// The registrable domain `domain` lies in (`shop.example.co.jp` →
/// `example.co.jp`), by the Public Suffix List: every claim under one
/// registrable domain is judged together. `None` for a public suffix itself
/// (`co.jp`), which no customer can hold.
pub fn registrable(domain: &str) -> Option<&str> {
    psl::domain_str(domain)
}

/// Whether two domains collide: the same, or one below the other.
pub fn overlaps(a: &str, b: &str) -> bool {
    let below = |x: &str, y: &str| {
        x.len() > y.len() && x.ends_with(y) && x[..x.len() - y.len()].ends_with('.')
    };
    a == b || below(a, b) || below(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_claims_its_backend_names() {
        let v = of_resource(
            "vhost",
            "example.jp",
            &json!({"aliases": ["www.example.jp"]}),
        );
        assert!(v.names.contains(&Claim::new(Space::Vhost, "example.jp")));
        assert!(v.domains.contains("example.jp"));
        let t = of_resource(
            "mx_tenant",
            "C-1",
            &json!({"tenant": "C-1", "domains": ["a.jp", "b.jp"]}),
        );
        assert!(t.names.contains(&Claim::new(Space::MxTenant, "C-1")));
        assert!(t.names.contains(&Claim::new(Space::MailDomain, "b.jp")));
        assert_eq!(t.domains.len(), 2);
        assert!(of_resource("mx_mailboxes", "C-1", &json!({})).is_empty());
        assert_eq!(
            of_resource("ftp_account", "c-1_2", &json!({})).names,
            BTreeSet::from([Claim::new(Space::FtpLogin, "c-1_2")])
        );
    }

    #[test]
    fn overlap_is_equality_or_hierarchy_on_label_boundaries() {
        assert!(overlaps("example.jp", "example.jp"));
        assert!(overlaps("www.example.jp", "example.jp"));
        assert!(overlaps("example.jp", "a.b.example.jp"));
        assert!(!overlaps("myexample.jp", "example.jp"));
        assert!(!overlaps("a.example.jp", "b.example.jp"));
    }

    #[test]
    fn public_suffixes_are_not_registrable() {
        assert_eq!(registrable("shop.example.co.jp"), Some("example.co.jp"));
        assert_eq!(
            registrable("sakura-trading.co.jp"),
            Some("sakura-trading.co.jp")
        );
        assert_eq!(registrable("co.jp"), None);
        assert_eq!(registrable("tokyo.jp"), None);
    }

    #[test]
    fn spaces_round_trip() {
        for s in Space::ALL {
            assert_eq!(Space::parse(s.as_str()), Some(s));
        }
    }
}
