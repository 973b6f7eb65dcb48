//! The `dns_zone` spec and its validation into DNS records.
//!
//! Every string here comes from a contract, so each is checked against a narrow
//! allow-list before it becomes a DNS name or record data: owner names are `@`
//! or lower-case labels, targets are validated domain names, addresses must
//! parse, TXT is printable ASCII. A spec that fails is a permanent error that
//! names the zone, the record and the rule.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use hostwright_adapter::validate;
use serde::{Deserialize, Serialize};

/// The spec the planner hands over for a `dns_zone` resource; the key is the
/// zone (A-label form, no trailing dot). [`desired_zone`] is its validation,
/// which the planner runs too, before anything is recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// The records hostwright manages in the zone.
    #[serde(default)]
    pub records: Vec<RecordSpec>,
    /// Carried by every spec of a suspended contract; ignored on purpose:
    /// zones keep answering while a site is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
}

impl hostwright_adapter::Spec for ZoneSpec {
    const KIND: &'static str = crate::KIND;
    const LEGACY_FIELDS: &'static [&'static str] = &["zone"];
}

/// One record as the contract states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// `@` for the apex or a relative owner name (`www`, `_dmarc`, `*.cdn`).
    pub name: String,
    /// A, AAAA, MX, TXT or CNAME.
    #[serde(rename = "type")]
    pub rtype: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Presentation form: an address, `PREF HOST` for MX, the target for
    /// CNAME, the raw text (no surrounding quotes) for TXT.
    pub data: String,
}

fn default_ttl() -> u32 {
    300
}

/// Lowest and highest TTL accepted: below a minute only adds load, above a
/// week makes mistakes stick.
pub const MIN_TTL: u32 = 30;
pub const MAX_TTL: u32 = 604_800;
/// Longest TXT text accepted (split into 255-octet strings on the wire).
pub const MAX_TXT: usize = 2048;

/// The record types hostwright manages. SOA belongs to the server; NS only
/// at the apex and only from the adapter's config (the group's name
/// servers), never from a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RType {
    // Order matters: address records are added first in an update, so that an
    // MX or CNAME pointing at an in-zone name never precedes its target.
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Ns,
}

impl RType {
    /// The types a spec may hold.
    pub const ALL: [RType; 5] = [RType::A, RType::Aaaa, RType::Cname, RType::Mx, RType::Txt];

    pub fn parse(s: &str) -> Option<RType> {
        match s {
            "A" => Some(RType::A),
            "AAAA" => Some(RType::Aaaa),
            "CNAME" => Some(RType::Cname),
            "MX" => Some(RType::Mx),
            "TXT" => Some(RType::Txt),
            _ => None,
        }
    }

    pub fn record_type(self) -> RecordType {
        match self {
            RType::A => RecordType::A,
            RType::Aaaa => RecordType::AAAA,
            RType::Cname => RecordType::CNAME,
            RType::Mx => RecordType::MX,
            RType::Txt => RecordType::TXT,
            RType::Ns => RecordType::NS,
        }
    }
}

impl fmt::Display for RType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RType::A => "A",
            RType::Aaaa => "AAAA",
            RType::Cname => "CNAME",
            RType::Mx => "MX",
            RType::Txt => "TXT",
            RType::Ns => "NS",
        })
    }
}

/// One rrset: the records of one (owner, type), with one TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrSet {
    pub ttl: u32,
    /// Sorted and free of duplicates, so two rrsets compare by content.
    pub data: Vec<RData>,
}

impl RrSet {
    pub fn new(ttl: u32, mut data: Vec<RData>) -> Self {
        data.sort_by_key(rdata_sort_key);
        data.dedup();
        RrSet { ttl, data }
    }
}

/// A stable order for record data (RData has no `Ord`).
fn rdata_sort_key(r: &RData) -> String {
    r.to_string().to_ascii_lowercase()
}

/// The zone as hostwright wants it: owner (relative, `@` for the apex) and type
/// to rrset.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredZone {
    /// The zone name, validated, without trailing dot.
    pub zone: String,
    /// The zone name as an absolute DNS name.
    pub origin: Name,
    pub rrsets: BTreeMap<(String, RType), RrSet>,
}

/// The owner name of the record that says which contract a zone belongs
/// to (`_hostwright-owner.ZONE. TXT "CONTRACT_ID"`): written with the
/// zone's records, checked before the zone is changed or removed.
pub const OWNER_LABEL: &str = "_hostwright-owner";

impl DesiredZone {
    /// Adds the owner record naming `contract_id`.
    pub fn with_owner(mut self, contract_id: &str) -> Self {
        let txt = RData::TXT(TXT::new(vec![contract_id.to_string()]));
        self.rrsets.insert(
            (OWNER_LABEL.to_string(), RType::Txt),
            RrSet::new(3600, vec![txt]),
        );
        self
    }

    /// Adds the apex NS rrset listing `nameservers` (the group's, without
    /// trailing dots); none when the list is empty.
    pub fn with_nameservers(mut self, nameservers: &[String]) -> Self {
        let data: Vec<RData> = nameservers
            .iter()
            .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
            .map(|n| RData::NS(NS(n)))
            .collect();
        if !data.is_empty() {
            self.rrsets
                .insert(("@".to_string(), RType::Ns), RrSet::new(3600, data));
        }
        self
    }

    /// The types managed at `owner`: a spec's, and NS at the apex when
    /// the group's name servers are managed.
    pub fn managed_types(&self, owner: &str) -> Vec<RType> {
        let mut types = RType::ALL.to_vec();
        if owner == "@" && self.rrsets.contains_key(&("@".to_string(), RType::Ns)) {
            types.push(RType::Ns);
        }
        types
    }

    /// The contract the owner record of `current` names, if there is one.
    pub fn owner_in(current: &BTreeMap<(String, RType), RrSet>) -> Option<String> {
        current
            .get(&(OWNER_LABEL.to_string(), RType::Txt))
            .and_then(|set| set.data.first())
            .and_then(|d| match d {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
    }

    /// Every owner name the spec uses, plus `@` and `www` (the names a
    /// hosting zone always had, so that a record dropped from the spec there
    /// is still found and removed).
    pub fn managed_owners(&self) -> Vec<String> {
        let mut owners: Vec<String> = vec!["@".into(), "www".into()];
        for (owner, _) in self.rrsets.keys() {
            if !owners.contains(owner) {
                owners.push(owner.clone());
            }
        }
        owners
    }

    /// The absolute name of a relative owner.
    pub fn absolute(&self, owner: &str) -> Name {
        absolute(&self.origin, owner)
    }
}

/// The absolute name of `owner` (`@` or relative labels, already validated)
/// in the zone `origin`.
pub fn absolute(origin: &Name, owner: &str) -> Name {
    if owner == "@" {
        return origin.clone();
    }
    // Validated labels always form a valid name.
    Name::from_ascii(owner)
        .and_then(|n| n.append_domain(origin))
        .unwrap_or_else(|_| origin.clone())
}

/// Why a spec was refused. Every message names the offending record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("zone {zone:?}: {source}")]
    Zone {
        zone: String,
        source: validate::Invalid,
    },
    #[error("zone {zone}: record #{index} ({name:?} {rtype:?}): {reason}")]
    Record {
        zone: String,
        index: usize,
        name: String,
        rtype: String,
        reason: String,
    },
    #[error("zone {zone}: owner {owner:?}: {reason}")]
    Conflict {
        zone: String,
        owner: String,
        reason: String,
    },
}

/// Validates a spec for the resource `key` and turns it into rrsets.
/// `protected` lists relative owner names the adapter must never manage (the
/// nameserver's own in-zone name, whose address records are glue).
pub fn desired_zone(
    key: &str,
    spec: &ZoneSpec,
    protected: &[String],
) -> Result<DesiredZone, SpecError> {
    let zone = validate::domain_name(key)
        .map_err(|source| SpecError::Zone {
            zone: key.chars().take(80).collect(),
            source,
        })?
        .to_string();
    let origin = Name::from_ascii(format!("{zone}.")).map_err(|e| SpecError::Conflict {
        zone: zone.clone(),
        owner: "@".into(),
        reason: format!("not a DNS name: {e}"),
    })?;

    let mut sets: BTreeMap<(String, RType), (u32, Vec<RData>)> = BTreeMap::new();
    for (index, r) in spec.records.iter().enumerate() {
        let fail = |reason: String| SpecError::Record {
            zone: zone.clone(),
            index,
            name: r.name.chars().take(80).collect(),
            rtype: r.rtype.chars().take(16).collect(),
            reason,
        };
        let owner = owner_name(&r.name, &zone).map_err(&fail)?;
        if protected.contains(&owner) {
            return Err(fail(
                "this name is the zone's nameserver; its records are not managed by contracts"
                    .into(),
            ));
        }
        let rtype = RType::parse(&r.rtype)
            .ok_or_else(|| fail("type must be one of A, AAAA, MX, TXT, CNAME".into()))?;
        if !(MIN_TTL..=MAX_TTL).contains(&r.ttl) {
            return Err(fail(format!(
                "ttl {} is outside {MIN_TTL}..={MAX_TTL}",
                r.ttl
            )));
        }
        let data = record_data(rtype, &r.data, &origin).map_err(&fail)?;
        let entry = sets
            .entry((owner.clone(), rtype))
            .or_insert((r.ttl, Vec::new()));
        if entry.0 != r.ttl {
            return Err(fail(format!(
                "ttl {} differs from the ttl {} of the other {rtype} records of this name",
                r.ttl, entry.0
            )));
        }
        entry.1.push(data);
    }

    let rrsets: BTreeMap<(String, RType), RrSet> = sets
        .into_iter()
        .map(|(k, (ttl, data))| (k, RrSet::new(ttl, data)))
        .collect();

    // CNAME rules (RFC 1034 3.6.2, RFC 2181 10.1): never at the apex, alone
    // at its name, one target only.
    for ((owner, rtype), set) in &rrsets {
        if *rtype != RType::Cname {
            continue;
        }
        let conflict = |reason: &str| SpecError::Conflict {
            zone: zone.clone(),
            owner: owner.clone(),
            reason: reason.into(),
        };
        if owner == "@" {
            return Err(conflict("a CNAME cannot be at the zone apex"));
        }
        if set.data.len() > 1 {
            return Err(conflict("a name can have only one CNAME target"));
        }
        if rrsets.keys().any(|(o, t)| o == owner && *t != RType::Cname) {
            return Err(conflict("a CNAME cannot share its name with other records"));
        }
    }

    Ok(DesiredZone {
        zone,
        origin,
        rrsets,
    })
}

/// An owner name: `@`, or relative labels of `[a-z0-9_-]` (1-63 octets, no
/// leading or trailing hyphen), optionally starting with a `*` wildcard label;
/// the whole name with the zone must fit 253 octets.
pub fn owner_name(name: &str, zone: &str) -> Result<String, String> {
    const RULE: &str =
        "name must be '@' or lower-case labels of [a-z0-9_-] (1-63 octets), relative to the zone";
    if name == "@" {
        return Ok("@".into());
    }
    if name.is_empty() || !name.is_ascii() || name.ends_with('.') {
        return Err(RULE.into());
    }
    if name.len() + 1 + zone.len() > 253 {
        return Err("name with the zone is longer than 253 octets".into());
    }
    for (i, label) in name.split('.').enumerate() {
        if i == 0 && label == "*" {
            continue;
        }
        if !label_ok(label) {
            return Err(RULE.into());
        }
    }
    Ok(name.to_string())
}

fn label_ok(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// A target host (MX exchange, CNAME target): absolute with a trailing dot
/// (checked with [`validate::domain_name`]) or relative to the zone (owner
/// rules, no wildcard).
fn target_name(value: &str, origin: &Name, zone: &str) -> Result<Name, String> {
    if let Some(abs) = value.strip_suffix('.') {
        validate::domain_name(abs).map_err(|e| e.to_string())?;
        return Name::from_ascii(value).map_err(|e| format!("target {value:?}: {e}"));
    }
    if value.starts_with('*') || value == "@" {
        return Err(format!("target {value:?} must be a host name"));
    }
    let rel = owner_name(value, zone).map_err(|e| format!("target {value:?}: {e}"))?;
    Ok(absolute(origin, &rel))
}

/// Parses record data in its presentation form for `rtype`.
pub fn record_data(rtype: RType, data: &str, origin: &Name) -> Result<RData, String> {
    let zone = origin.to_ascii();
    let zone = zone.trim_end_matches('.');
    match rtype {
        RType::A => data
            .parse::<Ipv4Addr>()
            .map(|a| RData::A(A(a)))
            .map_err(|_| format!("data {:?} is not an IPv4 address", clip(data))),
        RType::Aaaa => data
            .parse::<Ipv6Addr>()
            .map(|a| RData::AAAA(AAAA(a)))
            .map_err(|_| format!("data {:?} is not an IPv6 address", clip(data))),
        RType::Cname => Ok(RData::CNAME(CNAME(target_name(data, origin, zone)?))),
        RType::Mx => {
            let mut parts = data.split(' ');
            let (Some(pref), Some(host), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!(
                    "MX data {:?} must be 'PREFERENCE HOST' separated by one space",
                    clip(data)
                ));
            };
            let pref: u16 = pref
                .parse()
                .map_err(|_| format!("MX preference {:?} is not 0-65535", clip(pref)))?;
            Ok(RData::MX(MX::new(pref, target_name(host, origin, zone)?)))
        }
        RType::Txt => {
            if data.is_empty() || data.len() > MAX_TXT {
                return Err(format!("TXT data must be 1-{MAX_TXT} octets"));
            }
            if !data.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                return Err(
                    "TXT data must be printable ASCII (no control characters or newlines)".into(),
                );
            }
            // Character strings are at most 255 octets (RFC 1035 3.3.14).
            let chunks = data
                .as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            Ok(RData::TXT(TXT::new(chunks)))
        }
        RType::Ns => {
            Err("NS records are the name servers of the adapter's config, not a spec's".into())
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The owner of `zone`'s member record in the catalog zone `catalog`
/// (RFC 9432 4.1): `<label>.zones.<catalog>`, the label the hex of a
/// 64-bit FNV-1a digest of the zone's lower-case name: unique per member,
/// stable across runs and releases.
pub fn catalog_member_name(catalog: &Name, zone: &str) -> Result<Name, String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in zone.trim_end_matches('.').to_ascii_lowercase().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Name::from_ascii(format!("{h:016x}.zones"))
        .and_then(|n| n.append_domain(catalog))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(records: serde_json::Value) -> ZoneSpec {
        <ZoneSpec as hostwright_adapter::Spec>::from_stored(
            &json!({"zone": "example.jp", "records": records}),
        )
        .unwrap()
    }

    fn one(name: &str, rtype: &str, data: &str) -> Result<DesiredZone, SpecError> {
        desired_zone(
            "example.jp",
            &spec(json!([{"name": name, "type": rtype, "ttl": 300, "data": data}])),
            &[],
        )
    }

    #[test]
    fn the_briefs_example_parses() {
        let s = spec(json!([
            {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.10"},
            {"name": "www", "type": "A", "ttl": 300, "data": "192.0.2.10"},
            {"name": "@", "type": "MX", "ttl": 300, "data": "10 mx1.securemx.example."},
            {"name": "@", "type": "TXT", "ttl": 300, "data": "v=spf1 include:spf.securemx.example ~all"},
            {"name": "@", "type": "AAAA", "ttl": 300, "data": "2001:db8::1"},
            {"name": "blog", "type": "CNAME", "ttl": 300, "data": "www"},
        ]));
        let z = desired_zone("example.jp", &s, &[]).unwrap();
        assert_eq!(z.rrsets.len(), 6);
        let mx = &z.rrsets[&("@".to_string(), RType::Mx)];
        assert_eq!(mx.data[0].to_string(), "10 mx1.securemx.example.");
        let cname = &z.rrsets[&("blog".to_string(), RType::Cname)];
        assert_eq!(cname.data[0].to_string(), "www.example.jp.");
        assert_eq!(z.absolute("www").to_ascii(), "www.example.jp.");
        assert_eq!(z.managed_owners(), vec!["@", "www", "blog"]);
    }

    #[test]
    fn suspended_is_tolerated_and_unknown_fields_are_not() {
        let s: ZoneSpec = <ZoneSpec as hostwright_adapter::Spec>::from_stored(
            &json!({"zone": "example.jp", "records": [], "suspended": true}),
        )
        .unwrap();
        assert_eq!(s.suspended, Some(true));
        assert!(
            serde_json::from_value::<ZoneSpec>(json!({"zone": "example.jp", "extra": 1})).is_err()
        );
        assert!(
            serde_json::from_value::<ZoneSpec>(json!({"zone": "example.jp", "records": [
                {"name": "@", "type": "A", "data": "192.0.2.1", "weight": 1}
            ]}))
            .is_err()
        );
    }

    #[test]
    fn hostile_owner_names_are_rejected() {
        let long = "a".repeat(64);
        for bad in [
            "a;b",
            "a b",
            " www",
            "$(id)",
            "`id`",
            "www\nevil 300 A 192.0.2.66",
            "a..b",
            "..",
            ".",
            "",
            "www.",
            "WWW",
            "-www",
            "a\"b",
            "a/b",
            "ａ",
            "a\0b",
            "a.*",
            long.as_str(),
        ] {
            let err = one(bad, "A", "192.0.2.1").expect_err(bad);
            let msg = err.to_string();
            assert!(
                msg.contains("example.jp") && msg.contains("name must be"),
                "{bad:?}: {msg}"
            );
        }
        assert!(one(&"a".repeat(63), "A", "192.0.2.1").is_ok());
        assert!(one("_dmarc", "TXT", "v=DMARC1; p=none").is_ok());
        assert!(one("*.cdn", "A", "192.0.2.1").is_ok());
        // 245 octets of owner + ".example.jp" exceed 253.
        let too_long = [
            "a".repeat(60),
            "b".repeat(60),
            "c".repeat(60),
            "d".repeat(62),
        ]
        .join(".");
        assert!(one(&too_long, "A", "192.0.2.1").is_err());
    }

    #[test]
    fn hostile_record_data_is_rejected() {
        for (t, bad) in [
            ("A", "192.0.2.1; rm -rf /"),
            ("A", "192.0.2.256"),
            ("A", "$(id)"),
            ("A", " 192.0.2.1"),
            ("AAAA", "192.0.2.1"),
            ("AAAA", "2001:db8::1\n"),
            ("MX", "10"),
            ("MX", "ten mx.example."),
            ("MX", "10  mx.example."),
            ("MX", "10 mx.example. extra"),
            ("MX", "10 $(id).example."),
            ("MX", "10 mx..example."),
            ("MX", "10 mx;evil.example."),
            ("CNAME", "a b"),
            ("CNAME", "@"),
            ("CNAME", "*.example."),
            ("CNAME", "evil.\nexample."),
            ("TXT", "line1\nline2"),
            ("TXT", "nul\0"),
            ("TXT", "tab\there"),
            ("TXT", ""),
            ("TXT", "ü"),
        ] {
            let err = one("www", t, bad).expect_err(bad);
            assert!(err.to_string().contains("example.jp"), "{err}");
        }
        let big = "x".repeat(MAX_TXT + 1);
        assert!(one("@", "TXT", &big).is_err());
    }

    #[test]
    fn types_ttls_and_conflicts() {
        assert!(one("@", "NS", "ns.example.").is_err());
        assert!(one("@", "SOA", "x").is_err());
        assert!(one("@", "a", "192.0.2.1").is_err());
        assert!(one("@", "CNAME", "www").is_err(), "CNAME at apex");
        let bad_ttl = spec(json!([{"name": "@", "type": "A", "ttl": 5, "data": "192.0.2.1"}]));
        assert!(desired_zone("example.jp", &bad_ttl, &[]).is_err());
        let mixed = spec(json!([
            {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.1"},
            {"name": "@", "type": "A", "ttl": 600, "data": "192.0.2.2"},
        ]));
        assert!(desired_zone("example.jp", &mixed, &[]).is_err());
        let cname_and_a = spec(json!([
            {"name": "www", "type": "CNAME", "ttl": 300, "data": "example.jp."},
            {"name": "www", "type": "A", "ttl": 300, "data": "192.0.2.2"},
        ]));
        assert!(desired_zone("example.jp", &cname_and_a, &[]).is_err());
        let ns = spec(json!([{"name": "ns1", "type": "A", "ttl": 300, "data": "192.0.2.1"}]));
        assert!(desired_zone("example.jp", &ns, &["ns1".to_string()]).is_err());
    }

    #[test]
    fn the_zone_must_be_valid() {
        let s = spec(json!([]));
        for bad in [
            "example.jp;",
            "a b.jp",
            "$(id).jp",
            "ex..jp",
            "EXAMPLE.jp",
            "jp",
        ] {
            assert!(desired_zone(bad, &s, &[]).is_err(), "{bad}");
        }
        let long = format!("{}.jp", "a".repeat(64));
        let e = desired_zone(&long, &s, &[]).unwrap_err();
        assert!(e.to_string().contains("1-63 octets"), "{e}");
    }

    #[test]
    fn duplicates_collapse_and_long_txt_splits() {
        let s = spec(json!([
            {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.2"},
            {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.1"},
            {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.2"},
        ]));
        let z = desired_zone("example.jp", &s, &[]).unwrap();
        let a = &z.rrsets[&("@".to_string(), RType::A)];
        assert_eq!(a.data.len(), 2);
        let txt = record_data(RType::Txt, &"y".repeat(600), &z.origin).unwrap();
        let RData::TXT(txt) = txt else { panic!() };
        assert_eq!(
            txt.txt_data.iter().map(|s| s.len()).collect::<Vec<_>>(),
            vec![255, 255, 90]
        );
    }
}
