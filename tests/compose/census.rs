//! The census: what exists on every backend host, read from the hosts
//! themselves (never from hostwright's records): on every web host of the
//! fleet, the Unix accounts carrying hostwright's GECOS marker, the nginx
//! vhost files and the pure-ftpd logins; on every name server (the primary
//! and the secondary), the zones it answers, by real queries; the Secure MX
//! tenants and mailboxes, and billing's received reports. Every test ends
//! with [`assert_exact`]: each of its contracts has exactly its resources,
//! on the host it is placed on and on no other, its zone on every name
//! server; and across the whole stack no contract lives on two web hosts,
//! no FTP login is without its account, and the secondary answers exactly
//! the zones the primary answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::clients::{Api, billing_records, dig_many, mailboxes, tenant};
use crate::contracts::Names;
use crate::stack::{NameServer, WebHost, stack};

/// A Unix account with hostwright's GECOS marker (`hostwright <contract>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Account {
    /// The web host (fleet name) it is on.
    pub host: String,
    pub user: String,
    pub contract: String,
    pub home: String,
}

/// hostwright's accounts on one web host.
pub fn unix_accounts_on(host: &WebHost) -> Vec<Account> {
    let out = stack().exec_ok(&host.service, &["getent", "passwd"]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let contract = f.get(4)?.strip_prefix("hostwright")?.trim().to_string();
            Some(Account {
                host: host.name.clone(),
                user: f[0].to_string(),
                contract,
                home: f.get(5).copied().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// hostwright's accounts on every web host.
pub fn unix_accounts() -> Vec<Account> {
    stack()
        .web_hosts()
        .iter()
        .flat_map(unix_accounts_on)
        .collect()
}

/// The shadow entry of `user` on web host `host`: (password locked,
/// account expired), i.e. whether logins are refused.
pub fn shadow_locked(host: &WebHost, user: &str) -> (bool, bool) {
    let out = stack().exec_ok(&host.service, &["getent", "shadow", user]);
    let f: Vec<&str> = out.trim().split(':').collect();
    let locked = f.get(1).is_some_and(|p| p.starts_with('!'));
    // Field 8: days since 1970 the account expires; 1 = long expired.
    let expired = f.get(7).is_some_and(|e| e.trim() == "1");
    (locked, expired)
}

/// File names in nginx's vhost folder on web host `host`.
pub fn vhost_files_on(host: &WebHost) -> Vec<String> {
    let out = stack().exec_ok(&host.service, &["ls", "-1", "-A", &host.sites_dir]);
    out.lines().map(str::to_string).collect()
}

/// A pure-ftpd virtual user, from the passwd file pure-pw reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FtpUser {
    /// The web host (fleet name) it is on.
    pub host: String,
    pub login: String,
    pub locked: bool,
    pub dir: String,
    pub quota_bytes: Option<u64>,
}

impl FtpUser {
    /// The Unix user the login belongs to: the first login is the user
    /// itself, the others `{user}_{n}`.
    pub fn owner(&self) -> &str {
        match self.login.rsplit_once('_') {
            Some((user, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => user,
            _ => &self.login,
        }
    }
}

/// pure-ftpd's users on web host `host`.
pub fn ftp_users_on(host: &WebHost) -> Vec<FtpUser> {
    let out = stack().exec_ok(&host.service, &["cat", &host.ftp_passwd]);
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            FtpUser {
                host: host.name.clone(),
                login: f[0].to_string(),
                locked: f.get(1).is_some_and(|h| h.starts_with('!')),
                dir: f
                    .get(5)
                    .map(|d| d.trim_end_matches("/./").trim_end_matches('/').to_string())
                    .unwrap_or_default(),
                quota_bytes: f.get(12).and_then(|q| q.parse().ok()),
            }
        })
        .collect()
}

/// pure-ftpd's users on every web host.
pub fn ftp_users() -> Vec<FtpUser> {
    stack().web_hosts().iter().flat_map(ftp_users_on).collect()
}

/// Every entry under `dir` on web host `host`, one line each, sorted:
/// relative path, raw mode (type and permissions, hex), owner:group, size,
/// and the SHA-256 of a regular file's content. Equal manifests on two
/// hosts mean equal content, ownership and modes.
pub fn tree_manifest(host: &WebHost, dir: &str) -> Vec<String> {
    let script = r#"cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r p; do
        p=${p#./}
        if [ -f "$p" ] && [ ! -L "$p" ]; then h=$(sha256sum <"$p" | cut -d' ' -f1); else h=-; fi
        printf '%s %s\n' "$(stat -c '%n %f %U:%G %s' "$p")" "$h"
    done"#;
    let out = stack().exec_ok(&host.service, &["sh", "-c", script, "sh", dir]);
    out.lines().map(str::to_string).collect()
}

/// Zone files on the BIND primary (one `<zone>.db` per zone hostwright
/// added, with its journal beside it).
pub fn zone_files() -> Vec<String> {
    let dir = &stack().layout.zone_file_dir;
    assert!(dir.starts_with('/'), "zone_file_dir {dir} is not absolute");
    let out = stack().exec_ok(&stack().primary().service, &["ls", "-1", "-A", dir]);
    out.lines().map(str::to_string).collect()
}

/// The zones the primary's catalog lists (RFC 9432 member PTRs at
/// `<label>.zones.CATALOG`), read by a zone transfer inside the primary's
/// container.
pub fn catalog_members() -> BTreeSet<String> {
    let catalog = stack()
        .layout
        .catalog_zone
        .trim_end_matches('.')
        .to_string();
    let out = stack().exec_ok(
        &stack().primary().service,
        &[
            "dig",
            "@127.0.0.1",
            "-p",
            "53",
            "+norec",
            "+noall",
            "+answer",
            &catalog,
            "AXFR",
        ],
    );
    let suffix = format!(".zones.{catalog}.");
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let label = f.first()?.to_ascii_lowercase();
            let label = label.strip_suffix(&suffix)?;
            (f.len() == 5 && f[3] == "PTR" && !label.contains('.'))
                .then(|| f[4].trim_end_matches('.').to_ascii_lowercase())
        })
        .collect()
}

/// Which of `zones` name server `server` answers authoritatively (SOA with
/// the AA bit), by one query each.
pub fn zones_answered(server: &NameServer, zones: &BTreeSet<String>) -> BTreeSet<String> {
    let queries: Vec<(String, String)> = zones
        .iter()
        .map(|z| (z.clone(), "SOA".to_string()))
        .collect();
    dig_many(server, &queries)
        .into_iter()
        .filter(|a| a.status == "NOERROR" && a.aa && a.answers.len() == 1)
        .map(|a| a.name)
        .collect()
}

/// What one web host holds of hostwright's.
#[derive(Debug, Clone, PartialEq)]
pub struct WebHostCensus {
    pub host: String,
    pub accounts: Vec<Account>,
    pub vhosts: Vec<String>,
    pub ftp: Vec<FtpUser>,
}

/// The zones one name server answers.
#[derive(Debug, Clone, PartialEq)]
pub struct NameServerCensus {
    pub server: String,
    pub zones: BTreeSet<String>,
}

/// Every web host and every name server at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Census {
    pub web: Vec<WebHostCensus>,
    pub dns: Vec<NameServerCensus>,
}

impl Census {
    pub fn web_host(&self, name: &str) -> &WebHostCensus {
        self.web
            .iter()
            .find(|w| w.host == name)
            .unwrap_or_else(|| panic!("no web host {name} in the census"))
    }

    /// The web hosts that hold an account of `contract`.
    pub fn hosts_of(&self, contract: &str) -> Vec<&str> {
        self.web
            .iter()
            .filter(|w| w.accounts.iter().any(|a| a.contract == contract))
            .map(|w| w.host.as_str())
            .collect()
    }

    /// One line per host: what it holds of `names`' contracts (for
    /// failure messages and test logs).
    pub fn describe(&self, names: &[&Names]) -> String {
        let mut out = String::new();
        for w in &self.web {
            let mine = |user: &str| names.iter().any(|n| n.user == user);
            let acc: Vec<&str> = w
                .accounts
                .iter()
                .filter(|a| mine(&a.user))
                .map(|a| a.user.as_str())
                .collect();
            let vh = w
                .vhosts
                .iter()
                .filter(|f| names.iter().any(|n| f.starts_with(&n.domain)))
                .count();
            let ftp = w.ftp.iter().filter(|u| mine(u.owner())).count();
            out.push_str(&format!(
                "  {}: {} account(s) {acc:?}, {vh} vhost file(s), {ftp} FTP login(s)\n",
                w.host,
                acc.len()
            ));
        }
        for d in &self.dns {
            let z: Vec<&String> = d
                .zones
                .iter()
                .filter(|z| names.iter().any(|n| **z == n.domain))
                .collect();
            out.push_str(&format!("  {}: answers {z:?}\n", d.server));
        }
        out
    }
}

/// Counts every web host and every name server. The zones asked about are
/// every zone any source knows of: the primary's zone files, its catalog's
/// members, and `zones` (those a test expects, or expects gone).
pub fn census(zones: &[&str]) -> Census {
    let web = stack()
        .web_hosts()
        .iter()
        .map(|h| {
            let mut accounts = unix_accounts_on(h);
            accounts.sort();
            let mut vhosts = vhost_files_on(h);
            vhosts.sort();
            let mut ftp = ftp_users_on(h);
            ftp.sort();
            WebHostCensus {
                host: h.name.clone(),
                accounts,
                vhosts,
                ftp,
            }
        })
        .collect();
    let mut universe: BTreeSet<String> = zone_files()
        .iter()
        .filter_map(|f| f.strip_suffix(".db"))
        .map(str::to_string)
        .collect();
    universe.extend(catalog_members());
    universe.extend(zones.iter().map(|z| z.to_ascii_lowercase()));
    let dns = stack()
        .name_servers()
        .iter()
        .map(|s| NameServerCensus {
            server: s.service.clone(),
            zones: zones_answered(s, &universe),
        })
        .collect();
    Census { web, dns }
}

/// Everything counted at once, for "nothing changed" comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub census: Census,
    pub zone_files: Vec<String>,
    pub billing: usize,
}

pub async fn snapshot() -> Snapshot {
    let mut zone_files = zone_files();
    zone_files.sort();
    Snapshot {
        census: census(&[]),
        zone_files,
        billing: billing_records().await.len(),
    }
}

/// What one contract should have on the backends.
#[derive(Debug, Clone)]
pub struct Expect {
    pub names: Names,
    /// A web space (Unix account) and a vhost for the domain.
    pub web: bool,
    pub ftp: usize,
    pub zone: bool,
    /// `Some(n)`: a tenant with n mailboxes; `None`: no tenant.
    pub mailboxes: Option<usize>,
    /// The web host it must be on; `None`: wherever hostwright placed it
    /// (`GET /v1/contracts/{id}`), which must then be the one host that
    /// holds it.
    pub host: Option<String>,
}

impl Expect {
    /// Nothing at all (a terminated or refused contract).
    pub fn nothing(names: &Names) -> Expect {
        Expect {
            names: names.clone(),
            web: false,
            ftp: 0,
            zone: false,
            mailboxes: None,
            host: None,
        }
    }

    /// A WWW contract with DNS operation: web space, vhost, `ftp` accounts,
    /// the zone.
    pub fn www(names: &Names, ftp: usize) -> Expect {
        Expect {
            web: true,
            ftp,
            zone: true,
            ..Expect::nothing(names)
        }
    }

    /// A Secure MX contract: the zone and a tenant with `mailboxes`.
    pub fn mail(names: &Names, mailboxes: usize) -> Expect {
        Expect {
            zone: true,
            mailboxes: Some(mailboxes),
            ..Expect::nothing(names)
        }
    }

    /// A Pack contract: both.
    pub fn pack(names: &Names, ftp: usize, mailboxes: usize) -> Expect {
        Expect {
            mailboxes: Some(mailboxes),
            ..Expect::www(names, ftp)
        }
    }

    /// On web host `host` (a fleet name), whatever hostwright says.
    pub fn on(mut self, host: &str) -> Expect {
        self.host = Some(host.to_string());
        self
    }
}

/// How long the census waits for the stack to agree with the expectation:
/// the secondary follows the primary by NOTIFY and zone transfers, within
/// a few seconds.
const SETTLE: Duration = Duration::from_secs(20);

/// The exact census: counts every web host and every name server for the
/// contracts in `want` and fails unless each has exactly what it should —
/// on the web host it is placed on (and on no other), one Unix account and
/// one vhost file when it has web space and exactly `ftp` FTP logins; its
/// zone file on the primary and its zone answering on every name server
/// with the apex NS of the group and its A record pointing at its web host
/// (none without web space); its tenant with exactly that many mailboxes —
/// and nothing of what it should not have. Across the whole stack: no
/// contract has accounts on two web hosts, every FTP login's account is on
/// its host, and the secondary answers exactly the primary's zones.
/// Waits up to [`SETTLE`] for the secondary to catch up.
pub async fn assert_exact(want: &[Expect]) -> Census {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let (census, problems) = check(want).await;
        if problems.is_empty() {
            return census;
        }
        if tokio::time::Instant::now() >= deadline {
            let names: Vec<&Names> = want.iter().map(|e| &e.names).collect();
            panic!(
                "{} problem(s) on the backends (after {}s):\n{}\ncensus of these contracts:\n{}",
                problems.len(),
                SETTLE.as_secs(),
                problems.join("\n"),
                census.describe(&names)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn check(want: &[Expect]) -> (Census, Vec<String>) {
    let api = Api::main();
    let mut problems = Vec::new();
    // Where each contract with web space must be.
    let mut home: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for e in want.iter().filter(|e| e.web) {
        let placed = api.placement(&e.names.id).await;
        let host = match (&e.host, placed) {
            (Some(want), Some(p)) if *want != p => {
                problems.push(format!("{}: placed on {p}, want {want}", e.names.id));
                Some(want.clone())
            }
            (Some(want), _) => Some(want.clone()),
            (None, Some(p)) => Some(p),
            (None, None) => {
                problems.push(format!("{}: not placed on any web host", e.names.id));
                None
            }
        };
        home.insert(&e.names.id, host);
    }
    let domains: Vec<&str> = want.iter().map(|e| e.names.domain.as_str()).collect();
    let census = census(&domains);
    let files = zone_files();

    for e in want {
        let n = &e.names;
        let at = home.get(n.id.as_str()).cloned().flatten();
        for w in &census.web {
            let here = e.web && at.as_deref() == Some(w.host.as_str());
            let want_acc = usize::from(here);
            let acc: Vec<&Account> = w.accounts.iter().filter(|a| a.contract == n.id).collect();
            if acc.len() != want_acc || acc.iter().any(|a| a.user != n.user) {
                problems.push(format!(
                    "{} on {}: {} Unix account(s) {acc:?}, want {want_acc}",
                    n.id,
                    w.host,
                    acc.len()
                ));
            }
            let conf = format!("{}.conf", n.domain);
            let v = w
                .vhosts
                .iter()
                .filter(|f| **f == conf || f.starts_with(&format!("{}.conf.", n.domain)))
                .count();
            if v != want_acc {
                problems.push(format!(
                    "{} on {}: {v} vhost file(s) for {}, want {want_acc}",
                    n.id, w.host, n.domain
                ));
            }
            let f: Vec<&FtpUser> = w.ftp.iter().filter(|u| u.owner() == n.user).collect();
            let want_ftp = if here { e.ftp } else { 0 };
            if f.len() != want_ftp {
                problems.push(format!(
                    "{} on {}: {} FTP user(s), want {want_ftp}",
                    n.id,
                    w.host,
                    f.len()
                ));
            }
            let logins: BTreeSet<&str> = f.iter().map(|u| u.login.as_str()).collect();
            if logins.len() != f.len() {
                problems.push(format!(
                    "{} on {}: duplicated FTP logins {f:?}",
                    n.id, w.host
                ));
            }
        }
        let zf = files
            .iter()
            .filter(|z| z.strip_suffix(".db").unwrap_or(z) == n.domain)
            .count();
        if zf != usize::from(e.zone) {
            problems.push(format!("{}: {zf} zone file(s) for {}", n.id, n.domain));
        }
        for d in &census.dns {
            if d.zones.contains(&n.domain) != e.zone {
                problems.push(format!(
                    "{}: zone {} answers on {}: {}, want {}",
                    n.id, n.domain, d.server, !e.zone, e.zone
                ));
            }
        }
        if e.zone {
            let want_a: Vec<String> = at
                .as_deref()
                .filter(|_| e.web)
                .map(|h| vec![stack().web_host(h).ipv4.clone()])
                .unwrap_or_default();
            let mut want_ns: Vec<String> = stack().layout.nameservers.clone();
            want_ns.sort();
            for s in stack().name_servers() {
                let a = dig_many(
                    s,
                    &[
                        (n.domain.clone(), "A".to_string()),
                        (n.domain.clone(), "NS".to_string()),
                    ],
                );
                if a[0].answers != want_a {
                    problems.push(format!(
                        "{}: A of {} on {} is {:?}, want {want_a:?}",
                        n.id, n.domain, s.service, a[0].answers
                    ));
                }
                let mut ns = a[1].answers.clone();
                ns.sort();
                if ns != want_ns {
                    problems.push(format!(
                        "{}: NS of {} on {} is {ns:?}, want {want_ns:?}",
                        n.id, n.domain, s.service
                    ));
                }
            }
        }
        let (status, boxes) = mailboxes(&n.id).await;
        match e.mailboxes {
            Some(want) => {
                let distinct: BTreeSet<&String> = boxes.iter().collect();
                if status != 200 || boxes.len() != want || distinct.len() != want {
                    problems.push(format!(
                        "{}: tenant answers {status} with {} mailbox(es), want {want}",
                        n.id,
                        boxes.len()
                    ));
                }
            }
            None => {
                let (t, _) = tenant(&n.id).await;
                if t != 404 {
                    problems.push(format!("{}: tenant answers {t}, want 404", n.id));
                }
            }
        }
    }
    problems.extend(whole_stack_problems(&census));
    (census, problems)
}

/// What must hold across the whole stack, whichever test made it: no
/// contract on two web hosts, no FTP login without its account on its
/// host, and every name server answering the same zones.
pub fn whole_stack_problems(census: &Census) -> Vec<String> {
    let mut problems = Vec::new();
    let contracts: BTreeSet<&str> = census
        .web
        .iter()
        .flat_map(|w| w.accounts.iter().map(|a| a.contract.as_str()))
        .collect();
    for contract in contracts {
        let hosts = census.hosts_of(contract);
        if hosts.len() > 1 {
            problems.push(format!("contract {contract} has accounts on {hosts:?}"));
        }
    }
    for w in &census.web {
        let users: BTreeSet<&str> = w.accounts.iter().map(|a| a.user.as_str()).collect();
        for u in &w.ftp {
            if !users.contains(u.owner()) {
                problems.push(format!(
                    "FTP login {} on {} has no account {} there",
                    u.login,
                    w.host,
                    u.owner()
                ));
            }
        }
    }
    if let Some((primary, rest)) = census.dns.split_first() {
        for d in rest {
            let missing: Vec<&String> = primary.zones.difference(&d.zones).collect();
            let extra: Vec<&String> = d.zones.difference(&primary.zones).collect();
            if !missing.is_empty() || !extra.is_empty() {
                problems.push(format!(
                    "{} does not follow {}: missing {missing:?}, extra {extra:?}",
                    d.server, primary.server
                ));
            }
        }
    }
    problems
}

/// Billing's records for `jobs` (job id → contract id): exactly one record
/// per job, none for any other job of these contracts, no idempotency key
/// twice. Returns the records by job id.
pub async fn assert_reports_once(jobs: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    let contracts: BTreeSet<&String> = jobs.values().collect();
    let records: Vec<Value> = billing_records()
        .await
        .into_iter()
        .filter(|r| {
            r["body"]["contract_id"]
                .as_str()
                .is_some_and(|c| contracts.iter().any(|x| *x == c))
        })
        .collect();
    let mut by_job: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for r in &records {
        let job = r["body"]["job_id"].as_str().unwrap_or_default().to_string();
        assert!(
            keys.insert(
                r["idempotency_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            ),
            "an idempotency key recorded twice: {r:#}"
        );
        by_job.entry(job).or_default().push(r.clone());
    }
    let mut problems = Vec::new();
    for (job, contract) in jobs {
        match by_job.get(job).map(Vec::len) {
            Some(1) => {}
            n => problems.push(format!(
                "{contract} job {job}: {} report(s)",
                n.unwrap_or(0)
            )),
        }
    }
    for job in by_job.keys() {
        if !jobs.contains_key(job) {
            problems.push(format!("a report for an unexpected job {job}"));
        }
    }
    assert!(
        problems.is_empty(),
        "billing reports wrong:\n{}",
        problems.join("\n")
    );
    by_job
        .into_iter()
        .map(|(k, mut v)| (k, v.remove(0)))
        .collect()
}

/// Waits until billing holds one report for each of `jobs` (the reporter
/// delivers after the job ends), then checks exactly-once.
pub async fn wait_reports(jobs: &BTreeMap<String, String>, secs: u64) -> BTreeMap<String, Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let have: BTreeSet<String> = billing_records()
            .await
            .iter()
            .filter_map(|r| r["body"]["job_id"].as_str().map(str::to_string))
            .collect();
        let missing = jobs.keys().filter(|j| !have.contains(*j)).count();
        if missing == 0 {
            return assert_reports_once(jobs).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "billing is missing {missing} of {} report(s) after {secs}s",
            jobs.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
