//! The DNS adapter: `dns_zone` resources on a BIND 9 primary.
//!
//! * Zones are created and deleted with `rndc addzone` / `rndc delzone` (zone
//!   creation is outside RFC 2136). BIND 9.18 has no `initial-file`, and a
//!   dynamic primary needs its own zone file before `addzone`, so a new zone
//!   is *seeded* without touching the BIND host's file system: the zone is
//!   first served from the shared read-only template in a `seed` view, pulled
//!   into the `main` view by one zone transfer (which writes the zone's own
//!   file), and re-added there as a dynamic primary. See `docs/dns.md`.
//! * Records are kept with RFC 2136 UPDATEs signed with TSIG (HMAC-SHA256):
//!   for every managed (name, type) the rrset is replaced when it differs, all
//!   in one update message per zone, and then read back from the
//!   authoritative server (no recursion, AA bit checked).
//!
//! Errors are classified for the engine: an unreachable or failing server is
//! [`AdapterError::Transient`]; a refused or unverifiable update, a rejected
//! rndc key, or a spec that fails validation is [`AdapterError::Permanent`].
//! The TSIG secret is never logged or put in an error.

pub mod keyfile;
pub mod rndc;
pub mod spec;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::rdata::PTR;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};
use hostwright_adapter::{
    Adapter, AdapterError, Comparison, Difference, Marked, Observation, Outcome, Resource,
    StepContext, validate,
};
use serde::Deserialize;
use serde_json::json;

use crate::rndc::{Rndc, RndcError};
use crate::spec::{DesiredZone, RType, RrSet, ZoneSpec};
use crate::wire::{Conn, WireError};

/// The resource kind this adapter manages.
pub const KIND: &str = "dns_zone";

/// Configuration (the `[adapters.dns]` table of the hostwright config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The primary, for UPDATEs and verification queries (TCP).
    pub server: SocketAddr,
    /// The rndc control channel.
    pub rndc_host: String,
    pub rndc_port: u16,
    /// The rndc key, as `tsig-keygen` / `rndc-confgen -a` write it.
    pub rndc_key_file: PathBuf,
    /// Name of the TSIG key BIND accepts updates from (`allow-update`).
    pub tsig_key_name: String,
    /// The file `tsig-keygen -a hmac-sha256 NAME` wrote; the secret is read
    /// from it.
    pub tsig_secret_file: PathBuf,
    /// The zones' nameserver (SOA MNAME/NS in the template), e.g.
    /// `ns1.hostwright.test.`; its own in-zone name is never managed.
    pub nameserver: String,
    /// Path ON THE BIND HOST of the template zone file (SOA and NS written
    /// with a relative `@`).
    pub initial_file: String,
    /// Directory ON THE BIND HOST for the per-zone files (`DIR/ZONE.db`);
    /// relative paths are relative to named's `directory`.
    pub zone_file_dir: String,
    /// Seconds for one DNS exchange or rndc call; 5 when 0 or absent.
    #[serde(default)]
    pub timeout_secs: u64,
    /// The view hostwright's zones live in.
    #[serde(default = "default_view")]
    pub view: String,
    /// The view that serves a new zone from the template while it is seeded.
    #[serde(default = "default_seed_view")]
    pub seed_view: String,
    /// The TSIG key (known to BIND; its secret is not needed here) that
    /// selects the seed view for the seeding transfer.
    #[serde(default = "default_seed_key")]
    pub seed_key_name: String,
    /// BIND's own address as BIND itself reaches it, for the seeding
    /// transfer; `server` when absent.
    #[serde(default)]
    pub seed_primary: Option<SocketAddr>,
    /// The rndc program; `rndc` on the PATH when absent.
    #[serde(default)]
    pub rndc_program: Option<PathBuf>,
    /// Every name server of the group, the primary (`nameserver`) first:
    /// each zone's apex NS records. Empty: the template's NS stays alone.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// The catalog zone (RFC 9432) on the primary that secondaries follow:
    /// each zone hostwright creates is a member, so every secondary serves it
    /// without anyone touching the secondary; a removed zone leaves the
    /// catalog and the secondaries drop it. None: no secondaries to tell.
    #[serde(default)]
    pub catalog_zone: Option<String>,
}

fn default_view() -> String {
    "main".into()
}
fn default_seed_view() -> String {
    "seed".into()
}
fn default_seed_key() -> String {
    "hostwright-seed".into()
}

/// Why the adapter could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A key file is missing, unreadable or not in `tsig-keygen` format. The
    /// message names the file, never its contents.
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// A configuration value that would be unsafe or meaningless in a BIND
    /// zone statement.
    #[error("dns config {field}: {reason}")]
    Config { field: &'static str, reason: String },
}

/// The `dns` adapter.
pub struct DnsAdapter {
    cfg: DnsConfig,
    signer: TSigner,
    rndc: Rndc,
    timeout: Duration,
    /// `nameserver` without the trailing dot, lower case.
    nameserver: String,
    /// `nameservers`, the same way.
    nameservers: Vec<String>,
    /// The catalog zone's origin.
    catalog: Option<Name>,
}

fn read_key(path: &PathBuf) -> Result<keyfile::TsigKey, DnsError> {
    let text = std::fs::read_to_string(path).map_err(|e| DnsError::KeyFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    keyfile::parse(&text).map_err(|reason| DnsError::KeyFile {
        path: path.clone(),
        reason,
    })
}

/// A value that goes inside a BIND configuration string between double
/// quotes: no quote, brace, semicolon, backslash or control character.
fn bind_string(field: &'static str, value: &str) -> Result<(), DnsError> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '{' | '}' | ';' | '\\'))
    {
        return Err(DnsError::Config {
            field,
            reason: "must be non-empty, without quotes, braces, ';', '\\' or control characters"
                .into(),
        });
    }
    Ok(())
}

/// A key or view name: `[A-Za-z0-9._-]`, 1-63 characters.
fn bind_word(field: &'static str, value: &str) -> Result<(), DnsError> {
    if value.is_empty()
        || value.len() > 63
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(DnsError::Config {
            field,
            reason: "must be 1-63 characters of [A-Za-z0-9._-]".into(),
        });
    }
    Ok(())
}

impl DnsAdapter {
    /// Reads and checks both key files and the configuration.
    pub fn new(cfg: DnsConfig) -> Result<Self, DnsError> {
        let tsig = read_key(&cfg.tsig_secret_file)?;
        if tsig.name.trim_end_matches('.') != cfg.tsig_key_name.trim_end_matches('.') {
            return Err(DnsError::KeyFile {
                path: cfg.tsig_secret_file.clone(),
                reason: format!(
                    "holds key {:?}, but tsig_key_name is {:?}",
                    tsig.name, cfg.tsig_key_name
                ),
            });
        }
        if tsig.algorithm != "hmac-sha256" {
            return Err(DnsError::KeyFile {
                path: cfg.tsig_secret_file.clone(),
                reason: format!("algorithm {:?}, expected hmac-sha256", tsig.algorithm),
            });
        }
        read_key(&cfg.rndc_key_file)?;

        bind_word("tsig_key_name", &cfg.tsig_key_name)?;
        bind_word("view", &cfg.view)?;
        bind_word("seed_view", &cfg.seed_view)?;
        bind_word("seed_key_name", &cfg.seed_key_name)?;
        bind_string("initial_file", &cfg.initial_file)?;
        bind_string("zone_file_dir", &cfg.zone_file_dir)?;
        bind_string("rndc_host", &cfg.rndc_host)?;
        let nameserver = cfg.nameserver.trim_end_matches('.').to_ascii_lowercase();
        validate::domain_name(&nameserver).map_err(|e| DnsError::Config {
            field: "nameserver",
            reason: e.to_string(),
        })?;

        let mut nameservers = Vec::new();
        for ns in &cfg.nameservers {
            let n = ns.trim_end_matches('.').to_ascii_lowercase();
            validate::domain_name(&n).map_err(|e| DnsError::Config {
                field: "nameservers",
                reason: e.to_string(),
            })?;
            nameservers.push(n);
        }
        if !nameservers.is_empty() && nameservers[0] != nameserver {
            return Err(DnsError::Config {
                field: "nameservers",
                reason: format!(
                    "must list the primary `nameserver` ({nameserver}) first, then the secondaries"
                ),
            });
        }
        let catalog = match &cfg.catalog_zone {
            Some(c) => {
                let c = c.trim_end_matches('.').to_ascii_lowercase();
                validate::domain_name(&c).map_err(|e| DnsError::Config {
                    field: "catalog_zone",
                    reason: e.to_string(),
                })?;
                Some(
                    Name::from_ascii(format!("{c}.")).map_err(|e| DnsError::Config {
                        field: "catalog_zone",
                        reason: e.to_string(),
                    })?,
                )
            }
            None => None,
        };

        let key_name = Name::from_ascii(&cfg.tsig_key_name).map_err(|e| DnsError::Config {
            field: "tsig_key_name",
            reason: e.to_string(),
        })?;
        let signer = TSigner::new(
            tsig.secret_bytes(),
            TsigAlgorithm::HmacSha256,
            key_name,
            300,
        )
        .map_err(|e| DnsError::KeyFile {
            path: cfg.tsig_secret_file.clone(),
            reason: format!("unusable key: {e}"),
        })?;

        let timeout = Duration::from_secs(if cfg.timeout_secs == 0 {
            5
        } else {
            cfg.timeout_secs
        });
        let rndc = Rndc {
            program: cfg.rndc_program.clone().unwrap_or_else(|| "rndc".into()),
            host: cfg.rndc_host.clone(),
            port: cfg.rndc_port,
            key_file: cfg.rndc_key_file.clone(),
            timeout,
        };
        Ok(DnsAdapter {
            cfg,
            signer,
            rndc,
            timeout,
            nameserver,
            nameservers,
            catalog,
        })
    }

    /// Relative owner names inside `zone` that belong to the nameserver.
    fn protected_owners(&self, zone: &str) -> Vec<String> {
        match self.nameserver.strip_suffix(&format!(".{zone}")) {
            Some(rel) => vec![rel.to_string()],
            None if self.nameserver == zone => vec!["@".to_string()],
            None => vec![],
        }
    }

    fn rndc_error(&self, zone: &str, what: &str, e: RndcError) -> AdapterError {
        match e {
            RndcError::Unreachable(m) => {
                AdapterError::transient(format!("zone {zone}: rndc {what}: {m}"))
            }
            // Retried: a named going down under the call closes the
            // channel just as a refused key does; a key that stays refused
            // fails once the retries are spent, with this message.
            RndcError::Closed(m) => AdapterError::transient(format!(
                "zone {zone}: rndc {what}: the control channel closed the connection: \
                 named is shutting down, or it refused the rndc key ({}): {m}",
                self.cfg.rndc_key_file.display()
            )),
            RndcError::AuthFailed(m) => AdapterError::permanent(format!(
                "zone {zone}: rndc {what}: the control channel refused the rndc key ({}): {m}",
                self.cfg.rndc_key_file.display()
            )),
            RndcError::Failed(m) => {
                AdapterError::permanent(format!("zone {zone}: rndc {what} failed: {m}"))
            }
            other => AdapterError::permanent(format!("zone {zone}: rndc {what}: {other:?}")),
        }
    }

    /// Makes `zone` exist as a dynamic primary in the main view. Idempotent,
    /// and resumable after a crash at any point of the seeding.
    async fn create_zone(&self, zone: &str) -> Result<(), AdapterError> {
        let view = self.cfg.view.as_str();
        let file = format!("{}/{zone}.db", self.cfg.zone_file_dir.trim_end_matches('/'));
        let primary = format!(
            "{{ type primary; file \"{file}\"; allow-update {{ key \"{}\"; }}; }};",
            self.cfg.tsig_key_name
        );
        match self
            .rndc
            .run(&["addzone", zone, "IN", view, &primary])
            .await
        {
            Ok(_) => return Ok(()),
            Err(RndcError::AlreadyExists) => {
                if self.zone_type(zone).await?.as_deref() == Some("primary") {
                    return Ok(());
                }
                // A seeding interrupted after the secondary was added.
            }
            Err(RndcError::FileNotFound) => self.seed(zone, &file).await?,
            Err(e) => return Err(self.rndc_error(zone, "addzone", e)),
        }
        self.promote(zone, &primary).await
    }

    /// `type: X` from `rndc zonestatus`, or None while the zone is not loaded.
    async fn zone_type(&self, zone: &str) -> Result<Option<String>, AdapterError> {
        match self
            .rndc
            .run(&["zonestatus", zone, "IN", &self.cfg.view])
            .await
        {
            Ok(out) => Ok(out
                .lines()
                .find_map(|l| l.trim().strip_prefix("type:"))
                .map(|t| t.trim().to_string())),
            Err(RndcError::NotFound) => Ok(None),
            Err(RndcError::Failed(m)) if m.contains("not loaded") => Ok(None),
            Err(e) => Err(self.rndc_error(zone, "zonestatus", e)),
        }
    }

    /// Serves `zone` from the template in the seed view and pulls it into the
    /// main view as a secondary, which writes the zone's own file.
    async fn seed(&self, zone: &str, file: &str) -> Result<(), AdapterError> {
        let seed_key = &self.cfg.seed_key_name;
        let template = format!(
            "{{ type primary; file \"{}\"; allow-transfer {{ key \"{seed_key}\"; }}; }};",
            self.cfg.initial_file
        );
        match self
            .rndc
            .run(&["addzone", zone, "IN", &self.cfg.seed_view, &template])
            .await
        {
            Ok(_) | Err(RndcError::AlreadyExists) => {}
            Err(e) => return Err(self.rndc_error(zone, "addzone (seed view)", e)),
        }
        let from = self.cfg.seed_primary.unwrap_or(self.cfg.server);
        let secondary = format!(
            "{{ type secondary; masterfile-format text; primaries {{ {} port {} key \"{seed_key}\"; }}; file \"{file}\"; }};",
            from.ip(),
            from.port()
        );
        match self
            .rndc
            .run(&["addzone", zone, "IN", &self.cfg.view, &secondary])
            .await
        {
            Ok(_) | Err(RndcError::AlreadyExists) => Ok(()),
            Err(e) => Err(self.rndc_error(zone, "addzone (seeding secondary)", e)),
        }
    }

    /// Waits for the seeding transfer, then re-adds the zone as a dynamic
    /// primary over the file the transfer wrote, and drops the seed copy.
    async fn promote(&self, zone: &str, primary: &str) -> Result<(), AdapterError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.zone_type(zone).await?.as_deref() {
                Some("primary") => break,
                Some(_) => {
                    match self
                        .rndc
                        .run(&["delzone", zone, "IN", &self.cfg.view])
                        .await
                    {
                        Ok(_) | Err(RndcError::NotFound) => {}
                        Err(e) => return Err(self.rndc_error(zone, "delzone (seeding)", e)),
                    }
                    match self
                        .rndc
                        .run(&["addzone", zone, "IN", &self.cfg.view, primary])
                        .await
                    {
                        Ok(_) | Err(RndcError::AlreadyExists) => break,
                        // Seen under load (1 zone in 1,000): BIND reported the
                        // seed loaded before it had written the file. The seed
                        // copy is gone now, so a retry seeds the zone again.
                        Err(RndcError::FileNotFound) => {
                            return Err(AdapterError::transient(format!(
                                "zone {zone}: the seeded zone file was not written yet at promotion; seeding again"
                            )));
                        }
                        Err(e) => return Err(self.rndc_error(zone, "addzone (promote)", e)),
                    }
                }
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                None => {
                    return Err(AdapterError::transient(format!(
                        "zone {zone}: the seeding transfer did not finish within {:?}",
                        self.timeout
                    )));
                }
            }
        }
        match self
            .rndc
            .run(&["delzone", zone, "IN", &self.cfg.seed_view])
            .await
        {
            Ok(_) | Err(RndcError::NotFound) => Ok(()),
            Err(e) => Err(self.rndc_error(zone, "delzone (seed view)", e)),
        }
    }

    /// `Err` when the zone's owner record names another contract.
    fn check_owner(
        &self,
        zone: &str,
        current: &BTreeMap<(String, RType), RrSet>,
        contract_id: &str,
    ) -> Result<(), AdapterError> {
        match DesiredZone::owner_in(current) {
            Some(owner) if owner != contract_id => Err(AdapterError::permanent(format!(
                "zone {zone} belongs to another contract (its {} record): not touched",
                spec::OWNER_LABEL
            ))),
            _ => Ok(()),
        }
    }

    fn wire_error(&self, zone: &str, what: &str, e: WireError) -> AdapterError {
        match e {
            WireError::Unreachable(m) => {
                AdapterError::transient(format!("zone {zone}: {what} to {}: {m}", self.cfg.server))
            }
            WireError::Protocol(m) => AdapterError::permanent(format!(
                "zone {zone}: {what} to {} failed verification (TSIG key {:?} wrong or unknown to the server?): {m}",
                self.cfg.server, self.cfg.tsig_key_name
            )),
        }
    }

    async fn connect(&self, zone: &str, signed: bool) -> Result<Conn, AdapterError> {
        let signer = signed.then(|| self.signer.clone());
        Conn::connect(self.cfg.server, self.timeout, signer)
            .await
            .map_err(|e| self.wire_error(zone, "connect", e))
    }

    /// An authoritative answer for (name, type), or the reason there is none.
    async fn authoritative(
        &self,
        conn: &Conn,
        zone: &str,
        name: Name,
        rtype: RecordType,
    ) -> Result<DnsResponse, AdapterError> {
        let resp = conn.query(name.clone(), rtype).await.map_err(|e| match e {
            WireError::Protocol(m) => {
                AdapterError::transient(format!("zone {zone}: query {name} {rtype}: {m}"))
            }
            other => self.wire_error(zone, "query", other),
        })?;
        let code = resp.metadata.response_code;
        match code {
            ResponseCode::NoError | ResponseCode::NXDomain if resp.metadata.authoritative => {
                Ok(resp)
            }
            ResponseCode::NoError | ResponseCode::NXDomain => {
                Err(AdapterError::transient(format!(
                    "zone {zone}: {} is not authoritative for {name}",
                    self.cfg.server
                )))
            }
            other => Err(AdapterError::transient(format!(
                "zone {zone}: query {name} {rtype}: {other}"
            ))),
        }
    }

    /// Adds `zone` to the catalog zone (`add`) or takes it out: one PTR at
    /// `<label>.zones.<catalog>` naming the zone, the label a digest of the
    /// zone's name (RFC 9432's unique member label). Adding what is there and
    /// deleting what is not are no-ops, so both are idempotent; the result
    /// is read back from the primary.
    async fn catalog_member(&self, zone: &str, add: bool) -> Result<(), AdapterError> {
        let Some(catalog) = &self.catalog else {
            return Ok(());
        };
        let cat = catalog.to_ascii();
        let cat = cat.trim_end_matches('.');
        let owner = spec::catalog_member_name(catalog, zone)
            .map_err(|e| AdapterError::permanent(format!("zone {zone}: catalog member: {e}")))?;
        let target = Name::from_ascii(format!("{zone}."))
            .map_err(|e| AdapterError::permanent(format!("zone {zone}: {e}")))?;
        let update = if add {
            Record::from_rdata(owner.clone(), 0, RData::PTR(PTR(target.clone())))
        } else {
            wire::delete_rrset(owner.clone(), RecordType::PTR)
        };
        let signed = self.connect(cat, true).await?;
        let resp = signed
            .send(wire::update_message(catalog, vec![update]))
            .await
            .map_err(|e| self.wire_error(cat, "catalog update", e))?;
        match resp.metadata.response_code {
            ResponseCode::NoError => {}
            ResponseCode::ServFail => {
                return Err(AdapterError::transient(format!(
                    "zone {zone}: catalog {cat}: SERVFAIL from {}",
                    self.cfg.server
                )));
            }
            code => {
                return Err(AdapterError::permanent(format!(
                    "zone {zone}: catalog {cat}: update {code} by {} (does the primary serve the \
                     catalog zone, and may key {:?} update it?)",
                    self.cfg.server, self.cfg.tsig_key_name
                )));
            }
        }
        let conn = self.connect(cat, false).await?;
        let resp = self
            .authoritative(&conn, cat, owner.clone(), RecordType::PTR)
            .await?;
        let present = resp
            .answers
            .iter()
            .any(|r| r.name == owner && r.data == RData::PTR(PTR(target.clone())));
        if present != add {
            return Err(AdapterError::permanent(format!(
                "zone {zone}: catalog {cat} does not {} the member after the update",
                if add { "hold" } else { "drop" }
            )));
        }
        Ok(())
    }

    /// The managed rrsets as the server has them now.
    async fn current(
        &self,
        conn: &Conn,
        desired: &DesiredZone,
    ) -> Result<BTreeMap<(String, RType), RrSet>, AdapterError> {
        let mut out = BTreeMap::new();
        for owner in desired.managed_owners() {
            let name = desired.absolute(&owner);
            for rtype in desired.managed_types(&owner) {
                let resp = self
                    .authoritative(conn, &desired.zone, name.clone(), rtype.record_type())
                    .await?;
                let records: Vec<&Record> = resp
                    .answers
                    .iter()
                    .filter(|r| r.name == name && r.record_type() == rtype.record_type())
                    .collect();
                if let Some(first) = records.first() {
                    let set =
                        RrSet::new(first.ttl, records.iter().map(|r| r.data.clone()).collect());
                    out.insert((owner.clone(), rtype), set);
                }
            }
        }
        Ok(out)
    }

    /// The SOA serial of `zone`, or None when the server is not authoritative
    /// for it.
    async fn serial(&self, conn: &Conn, zone: &str) -> Result<Option<u32>, AdapterError> {
        let origin = Name::from_ascii(format!("{zone}."))
            .map_err(|e| AdapterError::permanent(format!("zone {zone}: not a DNS name: {e}")))?;
        let resp = conn
            .query(origin.clone(), RecordType::SOA)
            .await
            .map_err(|e| self.wire_error(zone, "SOA query", e))?;
        match resp.metadata.response_code {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain | ResponseCode::Refused | ResponseCode::NotAuth => {
                return Ok(None);
            }
            other => {
                return Err(AdapterError::transient(format!(
                    "zone {zone}: SOA query: {other}"
                )));
            }
        }
        if !resp.metadata.authoritative {
            return Ok(None);
        }
        Ok(resp.answers.iter().find_map(|r| match &r.data {
            RData::SOA(soa) if r.name == origin => Some(soa.serial),
            _ => None,
        }))
    }
}

/// The absolute name of `zone`'s owner record (`_hostwright-owner.ZONE.`).
fn owner_record_name(zone: &str) -> Result<Name, AdapterError> {
    Name::from_ascii(format!("{}.{zone}.", spec::OWNER_LABEL))
        .map_err(|e| AdapterError::permanent(format!("zone {zone}: {e}")))
}

/// The owner record of an answer to `name TXT`, keyed as the zone's
/// managed rrsets are (empty when the zone has none).
fn owner_rrset(resp: &DnsResponse, name: &Name) -> BTreeMap<(String, RType), RrSet> {
    let records: Vec<RData> = resp
        .answers
        .iter()
        .filter(|r| &r.name == name && r.record_type() == RecordType::TXT)
        .map(|r| r.data.clone())
        .collect();
    let mut current = BTreeMap::new();
    if !records.is_empty() {
        current.insert(
            (spec::OWNER_LABEL.to_string(), RType::Txt),
            RrSet::new(0, records),
        );
    }
    current
}

/// The update records that turn `current` into `desired`: rrset deletions
/// first, then additions with address records before the names that point
/// at them.
pub fn diff(desired: &DesiredZone, current: &BTreeMap<(String, RType), RrSet>) -> Vec<Record> {
    let mut deletes = Vec::new();
    let mut adds: Vec<(RType, Record)> = Vec::new();
    for owner in desired.managed_owners() {
        let name = desired.absolute(&owner);
        for rtype in desired.managed_types(&owner) {
            let key = (owner.clone(), rtype);
            let want = desired.rrsets.get(&key);
            let have = current.get(&key);
            if want == have {
                continue;
            }
            if rtype == RType::Ns {
                // The apex NS rrset cannot be deleted whole (RFC 2136
                // 3.4.2.3): records are deleted one by one, the ones kept
                // stay, and the added ones are added.
                for data in have.into_iter().flat_map(|s| s.data.iter()) {
                    if want.is_none_or(|w| !w.data.contains(data)) {
                        deletes.push(wire::delete_record(name.clone(), data.clone()));
                    }
                }
            } else if have.is_some() {
                deletes.push(wire::delete_rrset(name.clone(), rtype.record_type()));
            }
            if let Some(set) = want {
                for data in &set.data {
                    adds.push((
                        rtype,
                        Record::from_rdata(name.clone(), set.ttl, data.clone()),
                    ));
                }
            }
        }
    }
    adds.sort_by_key(|(t, _)| *t);
    deletes.extend(adds.into_iter().map(|(_, r)| r));
    deletes
}

fn first_difference(
    desired: &DesiredZone,
    current: &BTreeMap<(String, RType), RrSet>,
) -> Option<String> {
    differences(desired, current)
        .into_iter()
        .next()
        .map(|d| d.says)
}

/// Every managed rrset whose records differ from the desired ones, as drift
/// findings (field `OWNER TYPE`, want and have as TTL and records).
fn differences(
    desired: &DesiredZone,
    current: &BTreeMap<(String, RType), RrSet>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for owner in desired.managed_owners() {
        for rtype in desired.managed_types(&owner) {
            let key = (owner.clone(), rtype);
            let (want, have) = (desired.rrsets.get(&key), current.get(&key));
            if want != have {
                let show = |s: Option<&RrSet>| match s {
                    None => "nothing".to_string(),
                    Some(s) => format!(
                        "ttl {} [{}]",
                        s.ttl,
                        s.data
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let field = |s: Option<&RrSet>| {
                    s.map(|s| {
                        json!({
                            "ttl": s.ttl,
                            "data": s.data.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                        })
                    })
                };
                out.push(
                    Difference::of(format!("{owner} {rtype}"), field(want), field(have)).says(
                        format!(
                            "{owner} {rtype}: want {}, server has {}",
                            show(want),
                            show(have)
                        ),
                    ),
                );
            }
        }
    }
    out
}

#[async_trait::async_trait]
impl Adapter for DnsAdapter {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[KIND]
    }

    async fn ensure(
        &self,
        ctx: &StepContext,
        resource: &Resource,
    ) -> Result<Outcome, AdapterError> {
        let spec: ZoneSpec = resource.spec()?;
        let contract_id = validate::contract_id(&resource.contract_id)
            .map_err(|e| AdapterError::permanent(format!("dns_zone: {e}")))?;
        let protected = self.protected_owners(&resource.key);
        let desired = spec::desired_zone(&resource.key, &spec, &protected)
            .map_err(|e| AdapterError::permanent(e.to_string()))?
            .with_owner(contract_id)
            .with_nameservers(&self.nameservers);
        let zone = desired.zone.as_str();

        self.create_zone(zone).await?;

        let conn = self.connect(zone, false).await?;
        let current = self.current(&conn, &desired).await?;
        self.check_owner(zone, &current, contract_id)?;
        let updates = diff(&desired, &current);
        if !updates.is_empty() {
            tracing::info!(
                zone,
                step = %ctx.step_id,
                changes = updates.len(),
                "dns: sending update"
            );
            let signed = self.connect(zone, true).await?;
            let message = wire::update_message(&desired.origin, updates);
            let resp = signed
                .send(message)
                .await
                .map_err(|e| self.wire_error(zone, "update", e))?;
            match resp.metadata.response_code {
                ResponseCode::NoError => {}
                ResponseCode::ServFail => {
                    return Err(AdapterError::transient(format!(
                        "zone {zone}: update: SERVFAIL from {}",
                        self.cfg.server
                    )));
                }
                code @ (ResponseCode::Refused | ResponseCode::NotAuth) => {
                    return Err(AdapterError::permanent(format!(
                        "zone {zone}: update {code} by {} (is key {:?} allowed to update the zone?)",
                        self.cfg.server, self.cfg.tsig_key_name
                    )));
                }
                code => {
                    return Err(AdapterError::permanent(format!(
                        "zone {zone}: update rejected by {}: {code}",
                        self.cfg.server
                    )));
                }
            }
        }

        let after = self.current(&conn, &desired).await?;
        if let Some(diff) = first_difference(&desired, &after) {
            return Err(AdapterError::permanent(format!(
                "zone {zone}: the server does not hold the records after the update: {diff}"
            )));
        }
        let serial = self.serial(&conn, zone).await?.ok_or_else(|| {
            AdapterError::transient(format!(
                "zone {zone}: no authoritative SOA after the update"
            ))
        })?;
        // Last, once the zone is whole: secondaries transfer what they learn of.
        self.catalog_member(zone, true).await?;
        // The spec's records (the owner record is the adapter's own).
        let records: usize = desired
            .rrsets
            .iter()
            .filter(|((owner, _), _)| owner != spec::OWNER_LABEL)
            .map(|(_, s)| s.data.len())
            .sum();
        Ok(Outcome::with_facts(json!({
            "zone": zone,
            "serial": serial,
            "records": records,
        })))
    }

    async fn remove(
        &self,
        _ctx: &StepContext,
        resource: &Resource,
    ) -> Result<Outcome, AdapterError> {
        let zone = validate::domain_name(&resource.key)
            .map_err(|e| AdapterError::permanent(format!("dns_zone: {e}")))?;
        let contract_id = validate::contract_id(&resource.contract_id)
            .map_err(|e| AdapterError::permanent(format!("dns_zone: {e}")))?;
        // Only the owner's zone is removed (a zone without an owner record,
        // made before there were any, or not there at all, is not refused).
        let conn = self.connect(zone, false).await?;
        if self.serial(&conn, zone).await?.is_some() {
            let name = owner_record_name(zone)?;
            let resp = self
                .authoritative(&conn, zone, name.clone(), RecordType::TXT)
                .await?;
            self.check_owner(zone, &owner_rrset(&resp, &name), contract_id)?;
        }
        // First: the secondaries stop serving it before the primary does.
        self.catalog_member(zone, false).await?;
        for (args, what) in [
            (
                vec!["delzone", "-clean", zone, "IN", self.cfg.view.as_str()],
                "delzone",
            ),
            (
                vec!["delzone", zone, "IN", self.cfg.seed_view.as_str()],
                "delzone (seed view)",
            ),
        ] {
            match self.rndc.run(&args).await {
                Ok(_) | Err(RndcError::NotFound) => {}
                Err(e) => return Err(self.rndc_error(zone, what, e)),
            }
        }
        Ok(Outcome::with_facts(
            json!({ "zone": zone, "removed": true }),
        ))
    }

    /// hostwright's zones, listed through the catalog zone (one transfer
    /// of it), each with the contract its owner record names. Without a
    /// catalog the server has no list of hostwright's zones to give: `None`.
    async fn inventory(&self) -> Result<Option<Vec<Marked>>, AdapterError> {
        let Some(catalog) = &self.catalog else {
            return Ok(None);
        };
        let cat = catalog.to_ascii();
        let cat = cat.trim_end_matches('.');
        let members = Name::from_ascii("zones")
            .and_then(|z| z.append_domain(catalog))
            .map_err(|e| AdapterError::permanent(format!("catalog {cat}: {e}")))?;
        let conn = self.connect(cat, false).await?;
        let records = conn
            .transfer(catalog.clone())
            .await
            .map_err(|e| self.wire_error(cat, "catalog transfer", e))?;
        let zones: std::collections::BTreeSet<String> = records
            .iter()
            .filter(|r| members.zone_of(&r.name) && r.name != members)
            .filter_map(|r| match &r.data {
                RData::PTR(p) => Some(p.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for zone in zones {
            let name = owner_record_name(&zone)?;
            // A member the primary does not serve (any more) holds nothing.
            let resp = match conn.query(name.clone(), RecordType::TXT).await {
                Ok(r) if r.metadata.authoritative => r,
                Ok(_) => continue,
                Err(e) => return Err(self.wire_error(&zone, "owner query", e)),
            };
            // A member without an owner record was not made by hostwright.
            if let Some(owner) = DesiredZone::owner_in(&owner_rrset(&resp, &name)) {
                out.push(Marked {
                    kind: "dns_zone".into(),
                    key: zone,
                    owner,
                });
            }
        }
        Ok(Some(out))
    }

    async fn observe(&self, resource: &Resource) -> Result<Observation, AdapterError> {
        let zone = validate::domain_name(&resource.key)
            .map_err(|e| AdapterError::permanent(format!("dns_zone: {e}")))?;
        let conn = self.connect(zone, false).await?;
        Ok(match self.serial(&conn, zone).await? {
            Some(serial) => Observation::Present {
                facts: json!({ "zone": zone, "serial": serial }),
            },
            None => Observation::Absent,
        })
    }

    /// Each zone read with one batch of queries (its SOA, then every managed
    /// owner and type), [`DRIFT_PARALLEL`] zones at a time.
    async fn compare(&self, resources: &[Resource]) -> Vec<Result<Comparison, AdapterError>> {
        use futures_util::stream::{self, StreamExt};
        // Owned items: a borrowed one trips the async-trait future's
        // lifetime inference.
        stream::iter(resources.iter().cloned())
            .map(|r| async move { self.compare_zone(&r).await })
            .buffered(DRIFT_PARALLEL)
            .collect()
            .await
    }

    fn location(&self) -> String {
        self.cfg.server.to_string()
    }
}

/// Zones compared at once by a drift scan.
const DRIFT_PARALLEL: usize = 16;

impl DnsAdapter {
    async fn compare_zone(&self, resource: &Resource) -> Result<Comparison, AdapterError> {
        let spec: ZoneSpec = resource.spec()?;
        let contract_id = validate::contract_id(&resource.contract_id)
            .map_err(|e| AdapterError::permanent(format!("dns_zone: {e}")))?;
        let protected = self.protected_owners(&resource.key);
        let desired = spec::desired_zone(&resource.key, &spec, &protected)
            .map_err(|e| AdapterError::permanent(e.to_string()))?
            .with_owner(contract_id);
        let zone = desired.zone.as_str();
        let conn = self.connect(zone, false).await?;
        if self.serial(&conn, zone).await?.is_none() {
            return Ok(Comparison::Missing);
        }
        let current = self.current(&conn, &desired).await?;
        Ok(Comparison::from_differences(differences(
            &desired, &current,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zone(records: serde_json::Value) -> DesiredZone {
        let s: ZoneSpec = <ZoneSpec as hostwright_adapter::Spec>::from_stored(
            &json!({"zone": "example.jp", "records": records}),
        )
        .unwrap();
        spec::desired_zone("example.jp", &s, &[]).unwrap()
    }

    #[test]
    fn diff_is_empty_when_the_server_matches() {
        let z = zone(json!([
            {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.1"},
            {"name": "@", "type": "MX", "ttl": 300, "data": "10 mx.example."},
        ]));
        assert!(diff(&z, &z.rrsets).is_empty());
        assert!(first_difference(&z, &z.rrsets).is_none());
    }

    #[test]
    fn diff_replaces_changed_rrsets_and_deletes_dropped_ones_addresses_first() {
        let old = zone(json!([
            {"name": "@", "type": "A", "ttl": 300, "data": "192.0.2.1"},
            {"name": "@", "type": "MX", "ttl": 300, "data": "10 mx.example."},
            {"name": "www", "type": "A", "ttl": 300, "data": "192.0.2.1"},
        ]));
        let new = zone(json!([
            {"name": "@", "type": "MX", "ttl": 300, "data": "10 mail"},
            {"name": "mail", "type": "A", "ttl": 300, "data": "192.0.2.9"},
            {"name": "www", "type": "A", "ttl": 300, "data": "192.0.2.1"},
        ]));
        let updates = diff(&new, &old.rrsets);
        let shown: Vec<String> = updates
            .iter()
            .map(|r| format!("{} {} {} {}", r.name, r.dns_class, r.record_type(), r.ttl))
            .collect();
        assert_eq!(
            shown,
            vec![
                "example.jp. ANY A 0",
                "example.jp. ANY MX 0",
                "mail.example.jp. IN A 300",
                "example.jp. IN MX 300",
            ]
        );
    }

    #[test]
    fn protected_owner_is_the_in_zone_nameserver() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        std::fs::write(
            &key,
            "key \"hostwright-update\" {\n\talgorithm hmac-sha256;\n\tsecret \"q6GftUMq9Ym1BvWKNsSmrZKWmlbZL/AvD8vHNuGu5lY=\";\n};\n",
        )
        .unwrap();
        let cfg = DnsConfig {
            server: "127.0.0.1:53".parse().unwrap(),
            rndc_host: "127.0.0.1".into(),
            rndc_port: 953,
            rndc_key_file: key.clone(),
            tsig_key_name: "hostwright-update".into(),
            tsig_secret_file: key.clone(),
            nameserver: "ns1.example.jp.".into(),
            initial_file: "/t.db".into(),
            zone_file_dir: "zones".into(),
            timeout_secs: 0,
            view: default_view(),
            seed_view: default_seed_view(),
            seed_key_name: default_seed_key(),
            seed_primary: None,
            rndc_program: None,
            nameservers: vec![],
            catalog_zone: None,
        };
        let a = DnsAdapter::new(cfg.clone()).unwrap();
        assert_eq!(a.protected_owners("example.jp"), vec!["ns1"]);
        assert!(a.protected_owners("other.jp").is_empty());
        assert_eq!(a.timeout, Duration::from_secs(5));

        let missing = DnsConfig {
            tsig_secret_file: dir.path().join("nope.key"),
            ..cfg.clone()
        };
        let e = DnsAdapter::new(missing).err().unwrap().to_string();
        assert!(e.contains("nope.key"), "{e}");

        let garbled = dir.path().join("garbled.key");
        std::fs::write(
            &garbled,
            "key \"hostwright-update\" { algorithm hmac-sha256; };",
        )
        .unwrap();
        let e = DnsAdapter::new(DnsConfig {
            rndc_key_file: garbled,
            ..cfg.clone()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("garbled.key") && e.contains("secret"), "{e}");

        let e = DnsAdapter::new(DnsConfig {
            tsig_key_name: "other".into(),
            ..cfg.clone()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("holds key"), "{e}");

        let e = DnsAdapter::new(DnsConfig {
            zone_file_dir: "zones\"; allow-update { any; }; \"".into(),
            ..cfg
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("zone_file_dir"), "{e}");
    }
}
