//! Fleets of web hosts (issue #13): which host a contract's web space lives
//! on, chosen once by a named policy among the hosts that are active,
//! healthy and have room, and kept in the store.
//!
//! A fleet is the `[fleet]` section of the config: a policy and a list of
//! hosts, each with its own `webhost` and `ftp` adapter sections, its
//! public addresses and its capacity. Each host's adapters are registered
//! as `webhost@NAME` and `ftp@NAME`; a placed contract's web steps name
//! those, so its account, vhosts, TLS and FTP accounts all go to its host,
//! and its zone's A/AAAA records carry that host's addresses. The first
//! host is also registered under the plain names: resources recorded by a
//! single-host installation (adapter `webhost`) are on it.
//!
//! Without `[fleet]` there is one implicit host (the `[adapters.*]`
//! sections and `provisioning.web_ipv4`) and nothing is placed.
//!
//! Placement is recorded with a capacity guard in one statement (the
//! store's [`FleetStore::place`]), so two contracts placed at the same
//! moment cannot both take a host's last room. It happens when a job is
//! planned, so the plan's steps and records already name the host; a
//! failure to place fails the planning (permanently, naming the group and
//! the need) and a rerun plans, and places, again.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::store::fleet::{FleetStore, Placement};
use super::store::{RecordedResource, StoreError};

/// The adapters whose resources live on a contract's web host.
pub const PLACED_ADAPTERS: [&str; 2] = ["webhost", "ftp"];

/// The name of the one group of web hosts (the config has one group; the
/// name is what errors and `hosts list` call it).
pub const WEB_GROUP: &str = "web";

/// `[fleet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    #[serde(default)]
    pub policy: Policy,
    /// How often each host's health check runs.
    #[serde(default = "default_health_interval")]
    pub health_interval_seconds: u64,
    /// A health check slower than this is a failed one.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_ms: u64,
    pub hosts: Vec<HostConfig>,
}

fn default_health_interval() -> u64 {
    15
}
fn default_health_timeout() -> u64 {
    2000
}

/// How a new contract's host is chosen among those with room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The host with the least committed disk (then fewest accounts, then
    /// config order): spreads contracts.
    #[default]
    LeastUsed,
    /// The first host in config order that has room: fills one host before
    /// the next.
    FillInOrder,
}

/// Whether a host takes new contracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Takes new contracts.
    #[default]
    Active,
    /// Keeps its contracts, takes no new ones.
    Draining,
    /// Takes no new contracts (its contracts' jobs still run against it).
    Disabled,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Active => "active",
            HostState::Draining => "draining",
            HostState::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Option<HostState> {
        Some(match s {
            "active" => HostState::Active,
            "draining" => HostState::Draining,
            "disabled" => HostState::Disabled,
            _ => return None,
        })
    }
}

/// `[[fleet.hosts]]`: one web host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Lower-case letters, digits and `-`, at most 32: it is part of
    /// adapter names (`webhost@NAME`) and of the store.
    pub name: String,
    /// Where the customers' sites on this host answer (their A records).
    pub ipv4: Ipv4Addr,
    /// Their AAAA records, when the host has one.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// Most contracts (web accounts) placed on the host.
    pub capacity_accounts: u32,
    /// Most disk committed to the contracts placed on the host (the sum of
    /// their quotas: base plus additional capacity).
    pub capacity_disk_gb: u64,
    /// The state the config gives; `hosts drain` / `hosts activate`
    /// override it in the store.
    #[serde(default)]
    pub state: HostState,
    /// `host:port` whose TCP answer says the host is up; the SSH address
    /// of its `webhost` section when absent.
    #[serde(default)]
    pub health_check: Option<String>,
    /// The host's `[adapters.webhost]` section.
    pub webhost: toml::Value,
    /// The host's `[adapters.ftp]` section.
    pub ftp: toml::Value,
}

impl HostConfig {
    pub fn capacity_disk_mb(&self) -> u64 {
        self.capacity_disk_gb.saturating_mul(1024)
    }

    /// The address the health check connects to.
    pub fn health_address(&self) -> Option<String> {
        if let Some(a) = &self.health_check {
            return Some(a.clone());
        }
        let ssh = self.webhost.get("ssh")?;
        let host = ssh.get("host")?.as_str()?;
        let port = ssh.get("port").and_then(|p| p.as_integer()).unwrap_or(22);
        Some(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    }
}

/// Checks a `[fleet]` section for what serde cannot say.
pub fn validate(fleet: &FleetConfig) -> Result<(), String> {
    if fleet.hosts.is_empty() {
        return Err("fleet.hosts: a fleet needs at least one host".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, h) in fleet.hosts.iter().enumerate() {
        let ok = !h.name.is_empty()
            && h.name.len() <= 32
            && h.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !h.name.starts_with('-');
        if !ok {
            return Err(format!(
                "fleet.hosts[{i}].name {:?}: lower-case letters, digits and `-`, at most 32, not starting with `-`",
                h.name
            ));
        }
        if !seen.insert(h.name.as_str()) {
            return Err(format!(
                "fleet.hosts[{i}].name `{}`: two hosts have this name",
                h.name
            ));
        }
        if h.capacity_accounts == 0 || h.capacity_disk_gb == 0 {
            return Err(format!(
                "fleet.hosts[{i}] `{}`: capacity_accounts and capacity_disk_gb must be at least 1",
                h.name
            ));
        }
        if h.health_address().is_none() {
            return Err(format!(
                "fleet.hosts[{i}] `{}`: no health_check and no webhost.ssh.host to check",
                h.name
            ));
        }
    }
    if fleet.health_interval_seconds == 0 || fleet.health_timeout_ms == 0 {
        return Err(
            "fleet.health_interval_seconds and health_timeout_ms must be at least 1".into(),
        );
    }
    Ok(())
}

/// Where a contract's web resources go: the adapter names of its steps and
/// the addresses of its zone's A/AAAA records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTarget {
    /// The host's name; `None` for the one implicit host of a config
    /// without `[fleet]` (plain adapter names).
    pub host: Option<String>,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

impl WebTarget {
    /// The adapter a playbook's `base` adapter means on this target.
    pub fn adapter(&self, base: &str) -> String {
        match &self.host {
            Some(h) if PLACED_ADAPTERS.contains(&base) => host_adapter(base, h),
            _ => base.to_string(),
        }
    }
}

/// The registry name of `base` on host `host`.
pub fn host_adapter(base: &str, host: &str) -> String {
    format!("{base}@{host}")
}

/// The host a recorded resource's adapter name says it lives on:
/// `webhost@web2` → `web2`; a plain `webhost` → the fleet's first host.
pub fn host_of_adapter<'a>(adapter: &'a str, first: &'a str) -> Option<&'a str> {
    let (base, host) = match adapter.split_once('@') {
        Some((b, h)) => (b, h),
        None => (adapter, first),
    };
    PLACED_ADAPTERS.contains(&base).then_some(host)
}

/// Why a contract could not be placed, or its placement cannot hold it.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "no web host of the group `{group}` has room for {need_mb} MB of disk and one account \
         (hosts: {hosts}); add capacity or activate a host, then rerun the job"
    )]
    NoRoom {
        group: &'static str,
        need_mb: u64,
        /// Each host and why it was passed over.
        hosts: String,
    },
    #[error(
        "the quota of {need_mb} MB does not fit on web host `{host}`: {free_mb} MB of its {capacity_mb} MB \
         are free besides this contract's {had_mb} MB, {shortfall_mb} MB short; move the contract or add capacity"
    )]
    QuotaDoesNotFit {
        host: String,
        need_mb: u64,
        had_mb: u64,
        free_mb: u64,
        capacity_mb: u64,
        shortfall_mb: u64,
    },
    #[error(
        "the contract is placed on web host `{0}`, which the config no longer lists; put the host back in [fleet]"
    )]
    UnknownHost(String),
    #[error("the contract cannot move to web host `{host}`: {why}")]
    MoveRefused { host: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A host as placement sees it: its config, its state (the store's
/// override first), its health and what is placed on it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostView {
    pub name: String,
    pub state: HostState,
    /// `None` until the first check.
    pub healthy: Option<bool>,
    pub last_error: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    pub accounts: u64,
    pub capacity_accounts: u32,
    pub disk_committed_mb: u64,
    pub capacity_disk_mb: u64,
    #[schema(value_type = String)]
    pub ipv4: Ipv4Addr,
    #[schema(value_type = Option<String>)]
    pub ipv6: Option<Ipv6Addr>,
}

impl HostView {
    /// Why the host cannot take a contract needing `need_mb`, if it cannot.
    pub(crate) fn refusal(&self, need_mb: u64) -> Option<String> {
        if self.state != HostState::Active {
            return Some(format!("{} is {}", self.name, self.state.as_str()));
        }
        if self.healthy == Some(false) {
            return Some(format!("{} is down", self.name));
        }
        if self.accounts + 1 > u64::from(self.capacity_accounts) {
            return Some(format!(
                "{} has {}/{} accounts",
                self.name, self.accounts, self.capacity_accounts
            ));
        }
        if self.disk_committed_mb + need_mb > self.capacity_disk_mb {
            return Some(format!(
                "{} has {} MB free",
                self.name,
                self.capacity_disk_mb.saturating_sub(self.disk_committed_mb)
            ));
        }
        None
    }
}

/// The policy's choice among `hosts` (config order) for a contract that
/// needs `need_mb`; `Err` lists why each host was passed over.
pub fn choose(policy: Policy, hosts: &[HostView], need_mb: u64) -> Result<&HostView, String> {
    let mut refused = Vec::new();
    let mut open = Vec::new();
    for h in hosts {
        match h.refusal(need_mb) {
            Some(why) => refused.push(why),
            None => open.push(h),
        }
    }
    let pick = match policy {
        Policy::FillInOrder => open.first().copied(),
        Policy::LeastUsed => open
            .iter()
            .enumerate()
            .min_by_key(|(i, h)| (h.disk_committed_mb, h.accounts, *i))
            .map(|(_, h)| *h),
    };
    pick.ok_or_else(|| refused.join("; "))
}

/// Health of one host, from the periodic check.
#[derive(Debug, Clone, Default)]
struct Health {
    healthy: Option<bool>,
    last_error: Option<String>,
    checked_at: Option<DateTime<Utc>>,
}

/// A running engine's fleet: the config's hosts and their health.
#[derive(Debug)]
pub struct Fleet {
    pub config: FleetConfig,
    health: Mutex<BTreeMap<String, Health>>,
}

impl Fleet {
    pub fn new(config: FleetConfig) -> Self {
        Fleet {
            config,
            health: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.config.hosts.iter().find(|h| h.name == name)
    }

    /// The instance name of a recorded adapter: a plain `webhost` / `ftp`
    /// (recorded before the installation had a fleet) is the first host's
    /// `webhost@FIRST`; any other name is itself.
    pub fn canonical_adapter(&self, adapter: &str) -> String {
        match host_of_adapter(adapter, &self.first().name) {
            Some(host) if !adapter.contains('@') => host_adapter(adapter, host),
            _ => adapter.to_string(),
        }
    }

    pub fn first(&self) -> &HostConfig {
        &self.config.hosts[0]
    }

    pub fn target(&self, host: &HostConfig) -> WebTarget {
        WebTarget {
            host: Some(host.name.clone()),
            ipv4: host.ipv4,
            ipv6: host.ipv6,
        }
    }

    /// Checks every host once, at the same time: a TCP connect to its
    /// health address within the timeout. Cheap enough to run every few
    /// seconds; a job's failure never marks a host down.
    pub async fn check_health(&self) {
        let timeout = Duration::from_millis(self.config.health_timeout_ms);
        let mut checks = tokio::task::JoinSet::new();
        for h in &self.config.hosts {
            let (name, addr) = (h.name.clone(), h.health_address().unwrap_or_default());
            checks.spawn(async move {
                let result = match tokio::time::timeout(
                    timeout,
                    tokio::net::TcpStream::connect(&addr),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("{addr}: {e}")),
                    Err(_) => Err(format!("{addr}: no answer within {timeout:?}")),
                };
                (name, result)
            });
        }
        let results = checks.join_all().await;
        let now = Utc::now();
        let mut health = self.health.lock().expect("health lock");
        for (name, result) in results {
            let was = health.get(&name).and_then(|h| h.healthy);
            let entry = health.entry(name.clone()).or_default();
            entry.checked_at = Some(now);
            match result {
                Ok(()) => {
                    if was == Some(false) {
                        tracing::info!(host = %name, "web host is up again");
                    }
                    entry.healthy = Some(true);
                }
                Err(e) => {
                    if was != Some(false) {
                        tracing::warn!(host = %name, error = %e, "web host is down");
                    }
                    entry.healthy = Some(false);
                    entry.last_error = Some(e);
                }
            }
        }
    }

    /// Runs [`Fleet::check_health`] on the config's interval until shutdown.
    pub async fn health_loop(
        self: std::sync::Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let every = Duration::from_secs(self.config.health_interval_seconds);
        loop {
            self.check_health().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Every host as placement sees it now.
    pub async fn views(&self, store: &dyn FleetStore) -> Result<Vec<HostView>, StoreError> {
        let usage = store.host_usage().await?;
        let states = store.host_states().await?;
        let health = self.health.lock().expect("health lock").clone();
        Ok(self
            .config
            .hosts
            .iter()
            .map(|h| {
                let u = usage.get(&h.name).copied().unwrap_or_default();
                let hl = health.get(&h.name).cloned().unwrap_or_default();
                HostView {
                    name: h.name.clone(),
                    state: states.get(&h.name).copied().unwrap_or(h.state),
                    healthy: hl.healthy,
                    last_error: hl.last_error,
                    checked_at: hl.checked_at,
                    accounts: u.accounts,
                    capacity_accounts: h.capacity_accounts,
                    disk_committed_mb: u.disk_mb,
                    capacity_disk_mb: h.capacity_disk_mb(),
                    ipv4: h.ipv4,
                    ipv6: h.ipv6,
                }
            })
            .collect())
    }

    /// The host of `contract_id`'s web resources, placing it now when it
    /// has none (`record` false: only say where it would go, as `plan`
    /// does). `need_mb`: its web quota now; a recorded placement whose quota
    /// changed is resized within the host's capacity or refused.
    pub async fn place(
        &self,
        store: &dyn FleetStore,
        contract_id: &str,
        need_mb: u64,
        recorded: &[RecordedResource],
        record: bool,
    ) -> Result<WebTarget, PlacementError> {
        if let Some(p) = store.placement(contract_id).await? {
            let host = self
                .host(&p.host)
                .ok_or_else(|| PlacementError::UnknownHost(p.host.clone()))?;
            if p.disk_mb != need_mb && record {
                self.resize(store, &p, host, need_mb).await?;
            } else if p.disk_mb < need_mb {
                self.check_resize(store, &p, host, need_mb).await?;
            }
            return Ok(self.target(host));
        }
        // Web resources recorded before the contract had a placement (a
        // single-host installation that became a fleet) stay where they are.
        let first = self.first().name.clone();
        if let Some(host) = recorded
            .iter()
            .find_map(|r| host_of_adapter(&r.adapter, &first))
        {
            let host = self
                .host(host)
                .ok_or_else(|| PlacementError::UnknownHost(host.to_string()))?;
            if record {
                store.place(contract_id, &host.name, need_mb, None).await?;
            }
            return Ok(self.target(host));
        }
        // A new contract: the policy's choice; a lost race for a host's last
        // room chooses again with the usage that beat it.
        for _ in 0..8 {
            let views = self.views(store).await?;
            let pick = choose(self.config.policy, &views, need_mb).map_err(|hosts| {
                PlacementError::NoRoom {
                    group: WEB_GROUP,
                    need_mb,
                    hosts,
                }
            })?;
            let host = self
                .host(&pick.name)
                .expect("a view is of a configured host");
            if !record {
                return Ok(self.target(host));
            }
            let limit = (host.capacity_accounts, host.capacity_disk_mb());
            if store
                .place(contract_id, &host.name, need_mb, Some(limit))
                .await?
            {
                tracing::info!(contract_id, host = %host.name, need_mb, "placed");
                return Ok(self.target(host));
            }
        }
        Err(PlacementError::NoRoom {
            group: WEB_GROUP,
            need_mb,
            hosts: "every host with room was taken by contracts placed at the same time".into(),
        })
    }

    /// Moves `contract_id`'s placement to `to` (a move job's planning):
    /// only onto an active, healthy host of the fleet with room for its
    /// quota, checked with the update in one statement. A contract still on
    /// the host it was adopted from is placed there first; one already on
    /// `to` stays.
    pub async fn move_to(
        &self,
        store: &dyn FleetStore,
        contract_id: &str,
        to: &str,
        need_mb: u64,
        recorded: &[RecordedResource],
    ) -> Result<WebTarget, PlacementError> {
        let refused = |why: String| PlacementError::MoveRefused {
            host: to.to_string(),
            why,
        };
        let host = self
            .host(to)
            .ok_or_else(|| refused("the fleet has no such host".into()))?;
        let from = self
            .place(store, contract_id, need_mb, recorded, true)
            .await?;
        if from.host.as_deref() == Some(to) {
            return Ok(self.target(host));
        }
        let views = self.views(store).await?;
        let view = views
            .iter()
            .find(|v| v.name == to)
            .expect("a configured host has a view");
        if let Some(why) = view.refusal(need_mb) {
            return Err(refused(format!("{why} (the contract needs {need_mb} MB)")));
        }
        let limit = (host.capacity_accounts, host.capacity_disk_mb());
        if !store
            .move_placement(contract_id, to, need_mb, limit)
            .await?
        {
            return Err(refused(format!(
                "contracts placed at the same time took its room for {need_mb} MB"
            )));
        }
        tracing::info!(contract_id, from = ?from.host, to, "placement moved");
        Ok(self.target(host))
    }

    async fn check_resize(
        &self,
        store: &dyn FleetStore,
        p: &Placement,
        host: &HostConfig,
        need_mb: u64,
    ) -> Result<(), PlacementError> {
        let used = store
            .host_usage()
            .await?
            .get(&host.name)
            .copied()
            .unwrap_or_default();
        let others = used.disk_mb.saturating_sub(p.disk_mb);
        let cap = host.capacity_disk_mb();
        if others + need_mb > cap {
            let free = cap.saturating_sub(others);
            return Err(PlacementError::QuotaDoesNotFit {
                host: host.name.clone(),
                need_mb,
                had_mb: p.disk_mb,
                free_mb: free,
                capacity_mb: cap,
                shortfall_mb: need_mb - free,
            });
        }
        Ok(())
    }

    /// Changes the disk the placement commits, within the host's capacity:
    /// the guarded update, and when it did not fit, the shortfall read
    /// back (room that appeared in between gets another try).
    async fn resize(
        &self,
        store: &dyn FleetStore,
        p: &Placement,
        host: &HostConfig,
        need_mb: u64,
    ) -> Result<(), PlacementError> {
        for _ in 0..3 {
            if store
                .resize_placement(&p.contract_id, need_mb, host.capacity_disk_mb())
                .await?
            {
                return Ok(());
            }
            self.check_resize(store, p, host, need_mb).await?;
        }
        Err(PlacementError::Store(StoreError::Database(format!(
            "the placement of {} on {} could not be resized: the host's usage kept changing",
            p.contract_id, host.name
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, accounts: u64, disk: u64, cap_gb: u64) -> HostView {
        HostView {
            name: name.into(),
            state: HostState::Active,
            healthy: Some(true),
            last_error: None,
            checked_at: None,
            accounts,
            capacity_accounts: 3,
            disk_committed_mb: disk,
            capacity_disk_mb: cap_gb * 1024,
            ipv4: Ipv4Addr::new(192, 0, 2, 1),
            ipv6: None,
        }
    }

    #[test]
    fn least_used_takes_the_host_with_least_committed_disk() {
        let hosts = [view("a", 2, 3000, 10), view("b", 1, 1000, 10)];
        assert_eq!(choose(Policy::LeastUsed, &hosts, 500).unwrap().name, "b");
        // Ties go to config order.
        let hosts = [view("a", 0, 0, 10), view("b", 0, 0, 10)];
        assert_eq!(choose(Policy::LeastUsed, &hosts, 500).unwrap().name, "a");
    }

    #[test]
    fn fill_in_order_fills_the_first_host_with_room() {
        let hosts = [view("a", 2, 9000, 10), view("b", 0, 0, 10)];
        assert_eq!(choose(Policy::FillInOrder, &hosts, 500).unwrap().name, "a");
        // 9000 + 2000 MB is over a's 10240 MB: b.
        assert_eq!(choose(Policy::FillInOrder, &hosts, 2000).unwrap().name, "b");
    }

    #[test]
    fn hosts_not_active_down_or_full_are_passed_over_and_named() {
        let mut draining = view("a", 0, 0, 10);
        draining.state = HostState::Draining;
        let mut down = view("b", 0, 0, 10);
        down.healthy = Some(false);
        let full = view("c", 3, 0, 10);
        let small = view("d", 0, 10000, 10);
        let hosts = [draining, down, full, small];
        let e = choose(Policy::LeastUsed, &hosts, 500).unwrap_err();
        assert_eq!(
            e,
            "a is draining; b is down; c has 3/3 accounts; d has 240 MB free"
        );
        // A host never checked yet counts as up.
        let mut unknown = view("e", 0, 0, 10);
        unknown.healthy = None;
        assert_eq!(
            choose(Policy::LeastUsed, &[unknown], 500).unwrap().name,
            "e"
        );
    }

    #[test]
    fn adapters_of_a_placed_target_name_the_host() {
        let t = WebTarget {
            host: Some("web2".into()),
            ipv4: Ipv4Addr::new(192, 0, 2, 2),
            ipv6: None,
        };
        assert_eq!(t.adapter("webhost"), "webhost@web2");
        assert_eq!(t.adapter("ftp"), "ftp@web2");
        assert_eq!(t.adapter("dns"), "dns");
        assert_eq!(host_of_adapter("webhost@web2", "web1"), Some("web2"));
        assert_eq!(host_of_adapter("ftp", "web1"), Some("web1"));
        assert_eq!(host_of_adapter("dns", "web1"), None);
    }

    #[test]
    fn a_fleet_config_is_checked() {
        let parse = |s: &str| -> FleetConfig { toml::from_str(s).unwrap() };
        let base = r#"
[[hosts]]
name = "web1"
ipv4 = "192.0.2.1"
capacity_accounts = 10
capacity_disk_gb = 100
webhost = { ssh = { host = "10.0.0.1", port = 2222 } }
ftp = {}
"#;
        let f = parse(base);
        validate(&f).unwrap();
        assert_eq!(f.hosts[0].health_address().unwrap(), "10.0.0.1:2222");
        assert_eq!(f.policy, Policy::LeastUsed);
        let twice = format!("{base}{}", &base[1..]);
        assert!(validate(&parse(&twice)).unwrap_err().contains("two hosts"));
        let bad = base.replace("web1", "Web_1");
        assert!(validate(&parse(&bad)).unwrap_err().contains("lower-case"));
    }
}
