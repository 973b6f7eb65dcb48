//! The fleet on the stack (issue #13): two web hosts and a BIND primary with
//! its secondary. Where contracts land by the policy, a web host stopped in
//! the middle of a batch, and the secondary following every zone by itself.
//! Each test ends with the exact census of every host
//! ([`crate::census::assert_exact`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hostwright::engine::store::{AttemptOutcome, JobState, JobSummary};
use serde_json::{Value, json};

use crate::census::{Expect, assert_exact, catalog_members, wait_reports};
use crate::clients::{Api, dig_many, ftp_list, http_get, site};
use crate::contracts::{Names, names, revised, securemx, sign, www_plain};
use crate::faults::{on_host, rerun_failed, start_service};
use crate::guard::Restore;
use crate::stack::{NameServer, stack};

/// 10 GB: the web disk of every WWW contract (別表①), before additional
/// capacity.
const BASE_MB: u64 = 10 * 1024;
/// One `www_disk_extra` unit: 1 GB (別表②).
const EXTRA_MB: u64 = 1024;

/// A small WWW contract with `extra_gb` units of additional capacity.
fn www_sized(n: &Names, extra_gb: u64) -> Value {
    let mut c = www_plain(n);
    if extra_gb > 0 {
        let start = c["service_start"].clone();
        c["options"] = json!([
            {"item": "www_disk_extra", "quantity": extra_gb, "effective": start}
        ]);
    }
    c
}

/// The fleet as placement sees it, read from `GET /v1/hosts`, and the
/// policy's choice written out here (docs/fleet.md) rather than asked of
/// hostwright.
#[derive(Debug, Clone)]
struct Model {
    policy: String,
    hosts: Vec<HostModel>,
}

#[derive(Debug, Clone, PartialEq)]
struct HostModel {
    name: String,
    active: bool,
    healthy: bool,
    accounts: u64,
    capacity_accounts: u64,
    disk_mb: u64,
    capacity_disk_mb: u64,
}

impl Model {
    async fn read(api: &Api) -> Model {
        let v = api.hosts().await;
        let hosts = v["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .map(|h| HostModel {
                name: h["name"].as_str().unwrap().to_string(),
                active: h["state"] == "active",
                // A host never checked counts as up.
                healthy: h["healthy"].as_bool() != Some(false),
                accounts: h["accounts"].as_u64().unwrap(),
                capacity_accounts: h["capacity_accounts"].as_u64().unwrap(),
                disk_mb: h["disk_committed_mb"].as_u64().unwrap(),
                capacity_disk_mb: h["capacity_disk_mb"].as_u64().unwrap(),
            })
            .collect();
        Model {
            policy: v["policy"].as_str().expect("policy").to_string(),
            hosts,
        }
    }

    /// The host the policy picks for a contract of `mb`: among active,
    /// healthy hosts with room, `least_used` takes the least committed disk
    /// (then fewest accounts, then config order), `fill_in_order` the first.
    fn choose(&self, mb: u64) -> String {
        let room = self.hosts.iter().enumerate().filter(|(_, h)| {
            h.active
                && h.healthy
                && h.accounts < h.capacity_accounts
                && h.disk_mb + mb <= h.capacity_disk_mb
        });
        let pick = match self.policy.as_str() {
            "least_used" => room.min_by_key(|(i, h)| (h.disk_mb, h.accounts, *i)),
            "fill_in_order" => room.min_by_key(|(i, _)| *i),
            p => panic!("a policy this test does not know: {p}"),
        };
        pick.map(|(_, h)| h.name.clone())
            .unwrap_or_else(|| panic!("no host has room for {mb} MB: {self:?}"))
    }

    fn place(&mut self, host: &str, mb: u64) {
        let h = self.hosts.iter_mut().find(|h| h.name == host).unwrap();
        h.accounts += 1;
        h.disk_mb += mb;
    }

    fn host_mut(&mut self, name: &str) -> &mut HostModel {
        self.hosts.iter_mut().find(|h| h.name == name).unwrap()
    }

    /// Accounts and disk per host, to compare with hostwright's.
    fn usage(&self) -> BTreeMap<String, (u64, u64)> {
        self.hosts
            .iter()
            .map(|h| (h.name.clone(), (h.accounts, h.disk_mb)))
            .collect()
    }
}

/// 13. Placement follows the policy: contracts of several sizes submitted
///     one at a time land where the policy (computed here from the hosts'
///     usage) says; a batch of equal contracts submitted at once spreads
///     into the predicted counts per host; a drained host receives nothing
///     (the next choice lands on the other); hostwright's accounting of
///     accounts and disk per host ends equal to the model; every contract
///     exactly on its host.
pub async fn placement_follows_the_policy() {
    let api = Api::main();
    let mut model = Model::read(&api).await;
    eprintln!("fleet before: {model:?}");
    let mut want: Vec<(Names, String)> = Vec::new();
    let mut jobs = BTreeMap::new();

    // One at a time, sizes that make least_used look at the disk.
    for (i, extra) in [5u64, 0, 0, 0, 2, 0].into_iter().enumerate() {
        let n = names("pl", i + 1);
        let mb = BASE_MB + extra * EXTRA_MB;
        let host = model.choose(mb);
        jobs.insert(api.submit(&sign(&www_sized(&n, extra))).await, n.id.clone());
        let placed = api.wait_placed(&n.id, 60).await;
        assert_eq!(
            placed, host,
            "{} ({mb} MB) placed on {placed}, the policy says {host}: {model:?}",
            n.id
        );
        let (_, c) = api.contract(&n.id).await;
        assert_eq!(
            c["placement"]["disk_mb"].as_u64(),
            Some(mb),
            "the placement commits the contract's quota: {}",
            c["placement"]
        );
        model.place(&host, mb);
        want.push((n, host));
    }

    // A batch of equal contracts at once: placed concurrently, each under
    // the capacity check's lock, so the counts per host are the policy's.
    let mut predicted: BTreeMap<String, usize> = BTreeMap::new();
    let mut sim = model.clone();
    for _ in 0..6 {
        let h = sim.choose(BASE_MB);
        sim.place(&h, BASE_MB);
        *predicted.entry(h).or_default() += 1;
    }
    let batch: Vec<Names> = (7..=12).map(|i| names("pl", i)).collect();
    for n in &batch {
        jobs.insert(api.submit(&sign(&www_plain(n))).await, n.id.clone());
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for n in &batch {
        let h = api.wait_placed(&n.id, 60).await;
        *got.entry(h.clone()).or_default() += 1;
        model.place(&h, BASE_MB);
        want.push((n.clone(), h));
    }
    assert_eq!(got, predicted, "the batch's spread over the hosts");

    // A drained host takes nothing, even when the policy would pick it.
    let drained = model.choose(BASE_MB);
    let guard = {
        let d = drained.clone();
        Restore::new("activate the drained host", move || {
            let out = stack().cli(&["hosts", "activate", &d]);
            if out.ok { Ok(()) } else { Err(out.stderr) }
        })
    };
    api.set_host(&drained, "drain").await;
    model.host_mut(&drained).active = false;
    let other = model.choose(BASE_MB);
    let n = names("pl", 13);
    jobs.insert(api.submit(&sign(&www_plain(&n))).await, n.id.clone());
    let placed = api.wait_placed(&n.id, 60).await;
    assert_eq!(placed, other, "{drained} is draining");
    model.place(&other, BASE_MB);
    want.push((n, other));
    guard.restore();
    model.host_mut(&drained).active = true;
    assert_eq!(api.host(&drained).await["state"], "active");

    let ids: Vec<String> = jobs.keys().cloned().collect();
    api.wait_succeeded(&ids, 240).await;
    let after = Model::read(&api).await;
    assert_eq!(
        after.usage(),
        model.usage(),
        "hostwright's accounts and disk per host"
    );
    let mut per_host: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, h) in &want {
        *per_host.entry(h.as_str()).or_default() += 1;
    }
    eprintln!("this test's contracts per host: {per_host:?}; fleet after: {after:?}");
    assert_eq!(
        per_host.len(),
        stack().web_hosts().len(),
        "every web host received contracts: {per_host:?}"
    );
    let expect: Vec<Expect> = want.iter().map(|(n, h)| Expect::www(n, 1).on(h)).collect();
    let census = assert_exact(&expect).await;
    for (host, count) in per_host {
        let here = census
            .web_host(host)
            .accounts
            .iter()
            .filter(|a| want.iter().any(|(n, _)| n.id == a.contract))
            .count();
        assert_eq!(here, count, "this test's accounts on {host}");
    }
    wait_reports(&jobs, 60).await;
}

/// 14. The second web host stopped (`docker stop`) while a batch is placed
///     on both: once hostwright's health check sees it down, new contracts
///     land on the first; the stopped host's jobs fail after their
///     transient retries (and only they); after `docker start` and `jobs
///     rerun --failed --wait` every job succeeded, each contract exactly on
///     its host.
pub async fn web_host_stopped_mid_batch() {
    let api = Api::main();
    let (web1, web2) = (&stack().web_hosts()[0], &stack().web_hosts()[1]);
    let wave1: Vec<Names> = (1..=8).map(|i| names("hs", i)).collect();
    let mut jobs: BTreeMap<String, String> = BTreeMap::new();
    for n in &wave1 {
        jobs.insert(api.submit(&sign(&www_plain(n))).await, n.id.clone());
    }
    let ids1: Vec<String> = jobs.keys().cloned().collect();

    // Stop web2 as soon as a job placed there is under way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    'wait: loop {
        let states = api.states(&ids1).await;
        for j in states.iter().filter(|j| !j.state.is_final()) {
            if api.placement(&j.contract_id).await.as_deref() == Some(web2.name.as_str()) {
                break 'wait;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job of the wave under way on {} within 60s",
            web2.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let service = web2.service.clone();
    let guard = Restore::new("start webhost2", move || start_service(&service));
    stack().compose_ok(&["stop", &web2.service]);
    let at_stop = api.states(&ids1).await;
    eprintln!(
        "stopped {}: {} of the wave's {} jobs ended",
        web2.service,
        at_stop.iter().filter(|j| j.state.is_final()).count(),
        ids1.len()
    );
    api.wait_host_health(&web2.name, false, 30).await;

    // New contracts land on the host that is up.
    let wave2: Vec<Names> = (9..=12).map(|i| names("hs", i)).collect();
    for n in &wave2 {
        jobs.insert(api.submit(&sign(&www_plain(n))).await, n.id.clone());
    }
    for n in &wave2 {
        assert_eq!(
            api.wait_placed(&n.id, 60).await,
            web1.name,
            "{} placed while {} is down",
            n.id,
            web2.name
        );
    }

    let ids: Vec<String> = jobs.keys().cloned().collect();
    let done = api.wait_final(&ids, 300).await;
    let mut placed: BTreeMap<String, String> = BTreeMap::new();
    for n in wave1.iter().chain(&wave2) {
        placed.insert(
            n.id.clone(),
            api.placement(&n.id).await.expect("every contract placed"),
        );
    }
    let failed: Vec<&JobSummary> = done
        .iter()
        .filter(|j| j.state != JobState::Succeeded)
        .collect();
    eprintln!(
        "with {} stopped: {} succeeded, {} failed; placements {:?}",
        web2.name,
        done.len() - failed.len(),
        failed.len(),
        placed
            .values()
            .fold(BTreeMap::<&str, usize>::new(), |mut m, h| {
                *m.entry(h.as_str()).or_default() += 1;
                m
            })
    );
    assert!(
        !failed.is_empty(),
        "no job failed while {} was stopped: the test proved nothing",
        web2.name
    );
    let attempts = stack().layout.max_attempts;
    for j in &failed {
        assert_eq!(j.state, JobState::Failed, "{j:?}");
        assert_eq!(
            placed[&j.contract_id], web2.name,
            "only contracts on the stopped host fail: {j:?}"
        );
        let d = api.job(&j.job_id).await;
        let step = d
            .steps
            .iter()
            .find(|s| s.state != hostwright::engine::store::StepState::Succeeded)
            .expect("a failed step");
        assert!(
            on_host(&step.step.adapter, &web2.name),
            "job {} failed at {} instead of a step on {}",
            j.job_id,
            step.step.adapter,
            web2.name
        );
        let tries: Vec<&AttemptOutcome> = d
            .attempts
            .iter()
            .filter(|a| a.step_index == step.index)
            .filter_map(|a| a.outcome.as_ref())
            .collect();
        assert!(
            tries
                .iter()
                .all(|o| matches!(o, AttemptOutcome::Transient { .. })),
            "job {}: a stopped host is a transient failure: {tries:?}",
            j.job_id
        );
        assert!(
            j.error
                .as_deref()
                .is_some_and(|e| e.contains(&format!("gave up after {attempts} attempts"))),
            "{:?}",
            j.error
        );
    }

    guard.restore();
    api.wait_host_health(&web2.name, true, 30).await;
    let out = rerun_failed();
    assert!(out.ok, "rerun --failed did not finish them");
    for j in &failed {
        assert!(
            out.stdout.contains(&j.job_id),
            "job {} was rerun: {}",
            j.job_id,
            out.stdout
        );
    }
    api.wait_succeeded(&ids, 60).await;

    // A rerun contract on web2 serves its site and its FTP login works.
    let n = wave1
        .iter()
        .find(|n| failed.iter().any(|j| j.contract_id == n.id))
        .expect("a failed contract");
    let job = jobs.iter().find(|(_, c)| **c == n.id).unwrap().0;
    assert_eq!(site(&n.domain).name, web2.name);
    let (code, body) = http_get(&n.domain, "/");
    assert_eq!(code, "200", "http://{}/ on {}: {body}", n.domain, web2.name);
    let secrets = api.secrets(job).await;
    let pw = secrets
        .get(&format!("ftp_account/{}/password", n.user))
        .unwrap_or_else(|| panic!("FTP password of {}: {secrets:?}", n.user));
    let login = ftp_list(web2, &n.user, pw);
    assert!(
        login.ok,
        "FTP login {} on {}: {}",
        n.user, web2.name, login.stderr
    );

    let expect: Vec<Expect> = wave1
        .iter()
        .chain(&wave2)
        .map(|n| Expect::www(n, 1).on(&placed[&n.id]))
        .collect();
    assert_exact(&expect).await;
    wait_reports(&jobs, 60).await;
}

/// The SOA serial, A and NS records of `zone` on `server`: what a
/// secondary must agree on with the primary.
fn zone_view(server: &NameServer, zone: &str) -> Option<(String, Vec<String>, Vec<String>)> {
    let q = |t: &str| (zone.to_string(), t.to_string());
    let a = dig_many(server, &[q("SOA"), q("A"), q("NS")]);
    if a[0].status != "NOERROR" || !a[0].aa || a[0].answers.len() != 1 {
        return None;
    }
    // SOA data: mname rname serial refresh retry expire minimum.
    let serial = a[0].answers[0].split_whitespace().nth(2)?.to_string();
    let mut ns = a[2].answers.clone();
    ns.sort();
    Some((serial, a[1].answers.clone(), ns))
}

/// Waits until `check` holds; how long that took.
async fn within(secs: u64, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 15. The secondary (dns2) follows the primary with nobody touching it:
///     every zone hostwright creates answers there within seconds with the
///     primary's serial, A and NS records (the group's two name servers);
///     a zone removed by a termination disappears from it within seconds
///     and leaves the catalog.
pub async fn secondary_follows_the_primary() {
    let api = Api::main();
    let (primary, secondary) = (stack().primary(), stack().secondary());
    let (a, b, m) = (names("sec", 1), names("sec", 2), names("secm", 1));
    let www_a = www_plain(&a);
    let mut jobs = BTreeMap::new();
    for (c, n) in [(&www_a, &a), (&www_plain(&b), &b), (&securemx(&m), &m)] {
        jobs.insert(api.submit(&sign(c)).await, n.id.clone());
    }
    let ids: Vec<String> = jobs.keys().cloned().collect();
    api.wait_succeeded(&ids, 180).await;

    let mut want_ns = stack().layout.nameservers.clone();
    want_ns.sort();
    for n in [&a, &b, &m] {
        let on_primary = zone_view(primary, &n.domain).expect("the zone on the primary");
        assert_eq!(on_primary.2, want_ns, "{}: apex NS", n.domain);
        let took = within(10, &format!("{} on the secondary", n.domain), || {
            zone_view(secondary, &n.domain).as_ref() == Some(&on_primary)
        })
        .await;
        eprintln!(
            "{} answers on {} {:.1}s after its job ended (serial {}, A {:?})",
            n.domain,
            secondary.service,
            took.as_secs_f64(),
            on_primary.0,
            on_primary.1
        );
    }
    let members = catalog_members();
    for n in [&a, &b, &m] {
        assert!(members.contains(&n.domain), "{} in the catalog", n.domain);
    }

    // Termination removes the zone from the primary and the catalog; the
    // secondary lets it go.
    let mut end = revised(www_a, 2, "2027-02-26");
    end["status"] =
        json!({"state": "terminated", "effective": "2027-03-31", "notified_on": "2027-02-26"});
    let job = api.submit(&sign(&end)).await;
    jobs.insert(job.clone(), a.id.clone());
    api.wait_succeeded(std::slice::from_ref(&job), 120).await;
    assert!(
        zone_view(primary, &a.domain).is_none(),
        "gone from the primary"
    );
    let took = within(10, &format!("{} gone from the secondary", a.domain), || {
        let r = dig_many(secondary, &[(a.domain.clone(), "SOA".to_string())]);
        r[0].status == "REFUSED"
    })
    .await;
    eprintln!(
        "{} gone from {} {:.1}s after its removal",
        a.domain,
        secondary.service,
        took.as_secs_f64()
    );
    assert!(!catalog_members().contains(&a.domain));

    assert_exact(&[Expect::nothing(&a), Expect::www(&b, 1), Expect::mail(&m, 5)]).await;
    wait_reports(&jobs, 60).await;
}
