//! Counting what exists on the backends, read from the backends themselves
//! (never from hostwright's records): Unix accounts carrying hostwright's
//! GECOS marker, nginx vhost files, pure-ftpd users, BIND zones, Secure MX
//! tenants and mailboxes, and billing's received reports. The fault tests
//! compare these counts with the contracts they submitted: nothing lost,
//! nothing duplicated.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::clients::{billing_records, mailboxes, tenant, zone_exists};
use crate::contracts::Names;
use crate::stack::stack;

/// A Unix account with hostwright's GECOS marker (`hostwright <contract>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Account {
    pub user: String,
    pub contract: String,
    pub home: String,
}

pub fn unix_accounts() -> Vec<Account> {
    let out = stack().exec_ok("webhost", &["getent", "passwd"]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let contract = f.get(4)?.strip_prefix("hostwright")?.trim().to_string();
            Some(Account {
                user: f[0].to_string(),
                contract,
                home: f.get(5).copied().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// The shadow entry of `user` on the web host: (password locked, account
/// expired), i.e. whether logins are refused.
pub fn shadow_locked(user: &str) -> (bool, bool) {
    let out = stack().exec_ok("webhost", &["getent", "shadow", user]);
    let f: Vec<&str> = out.trim().split(':').collect();
    let locked = f.get(1).is_some_and(|p| p.starts_with('!'));
    // Field 8: days since 1970 the account expires; 1 = long expired.
    let expired = f.get(7).is_some_and(|e| e.trim() == "1");
    (locked, expired)
}

/// File names in nginx's vhost folder on the web host.
pub fn vhost_files() -> Vec<String> {
    let dir = &stack().layout.sites_dir;
    let out = stack().exec_ok("webhost", &["ls", "-1", "-A", dir]);
    out.lines().map(str::to_string).collect()
}

/// A pure-ftpd virtual user, from the passwd file pure-pw reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FtpUser {
    pub login: String,
    pub locked: bool,
    pub dir: String,
    pub quota_bytes: Option<u64>,
}

pub fn ftp_users() -> Vec<FtpUser> {
    let file = &stack().layout.ftp_passwd;
    let out = stack().exec_ok("webhost", &["cat", file]);
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            FtpUser {
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

/// Zone files on the BIND host (one `<zone>.db` per zone hostwright added,
/// with its journal beside it).
pub fn zone_files() -> Vec<String> {
    let dir = &stack().layout.zone_file_dir;
    assert!(dir.starts_with('/'), "zone_file_dir {dir} is not absolute");
    let out = stack().exec_ok("dns", &["ls", "-1", "-A", dir]);
    out.lines().map(str::to_string).collect()
}

/// Everything counted at once, for "nothing changed" comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub accounts: Vec<Account>,
    pub vhosts: Vec<String>,
    pub ftp: Vec<FtpUser>,
    pub zones: Vec<String>,
    pub billing: usize,
}

pub async fn snapshot() -> Snapshot {
    let mut accounts = unix_accounts();
    accounts.sort();
    let mut vhosts = vhost_files();
    vhosts.sort();
    let mut ftp = ftp_users();
    ftp.sort();
    let mut zones = zone_files();
    zones.sort();
    Snapshot {
        accounts,
        vhosts,
        ftp,
        zones,
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
}

/// Counts every backend for the contracts in `want` and fails unless each
/// has exactly what it should: one Unix account and one vhost file when it has
/// web space, exactly `ftp` FTP users, its zone, its tenant with exactly that
/// many mailboxes, and nothing of what it should not have.
pub async fn assert_exact(want: &[Expect]) {
    let accounts = unix_accounts();
    let vhosts = vhost_files();
    let ftp = ftp_users();
    let zones = zone_files();
    let mut problems = Vec::new();
    for e in want {
        let n = &e.names;
        let acc: Vec<&Account> = accounts.iter().filter(|a| a.contract == n.id).collect();
        let want_acc = usize::from(e.web);
        if acc.len() != want_acc || acc.iter().any(|a| a.user != n.user) {
            problems.push(format!(
                "{}: {} Unix account(s) {acc:?}, want {want_acc}",
                n.id,
                acc.len()
            ));
        }
        let conf = format!("{}.conf", n.domain);
        let v = vhosts
            .iter()
            .filter(|f| **f == conf || f.starts_with(&format!("{}.conf.", n.domain)))
            .count();
        if v != want_acc {
            problems.push(format!(
                "{}: {v} vhost file(s) for {}, want {want_acc}",
                n.id, n.domain
            ));
        }
        let f: Vec<&FtpUser> = ftp
            .iter()
            .filter(|u| {
                // The first login is the user, the others `{user}_{n}`.
                u.login == n.user
                    || u.login
                        .strip_prefix(&format!("{}_", n.user))
                        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
            })
            .collect();
        if f.len() != e.ftp {
            problems.push(format!("{}: {} FTP user(s), want {}", n.id, f.len(), e.ftp));
        }
        let logins: BTreeSet<&str> = f.iter().map(|u| u.login.as_str()).collect();
        if logins.len() != f.len() {
            problems.push(format!("{}: duplicated FTP logins {f:?}", n.id));
        }
        let zf = zones
            .iter()
            .filter(|z| z.strip_suffix(".db").unwrap_or(z) == n.domain)
            .count();
        if zf != usize::from(e.zone) {
            problems.push(format!("{}: {zf} zone file(s) for {}", n.id, n.domain));
        }
        if zone_exists(&n.domain) != e.zone {
            problems.push(format!(
                "{}: zone {} answers: {}, want {}",
                n.id, n.domain, !e.zone, e.zone
            ));
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
    assert!(
        problems.is_empty(),
        "{} problem(s) on the backends:\n{}",
        problems.len(),
        problems.join("\n")
    );
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
