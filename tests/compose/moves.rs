//! Moving a contract between the stack's web hosts (issue #13), on the real
//! hosts: its home's files (uploaded over FTP), account, vhost with TLS and
//! FTP logins go to the other host, the zone switches to it on both name
//! servers, nothing stays on the old host, and the FTP passwords keep
//! working. Each test ends with the exact census of every host.

use std::time::{Duration, Instant};

use hostwright::engine::store::StepState;

use crate::census::{
    Expect, assert_exact, ftp_users_on, tree_manifest, unix_accounts_on, vhost_files_on,
};
use crate::clients::{Api, dig_at, ftp_list, ftp_upload, https_get_on};
use crate::contracts::{Names, names, sign, www_ssl};
use crate::e2e::{ftp_entry, ftp_passwords};
use crate::faults::{assert_steps_once, start_service};
use crate::guard::Restore;
use crate::stack::{WebHost, stack};

/// The size of the file each move carries (the bench figure of issue #13:
/// the time to move one contract with 100 MB of files).
const BIG_MB: usize = 100;

/// A provisioned WWW contract with TLS and files uploaded over FTP: its
/// names, host, FTP passwords by login, and its home's manifest there.
struct Moving {
    n: Names,
    from: &'static WebHost,
    passwords: std::collections::BTreeMap<String, String>,
    home: String,
}

async fn provision_with_files(api: &Api, group: &str) -> Moving {
    let n = names(group, 1);
    let job = api.submit(&sign(&www_ssl(&n))).await;
    api.wait_succeeded(std::slice::from_ref(&job), 120).await;
    let from = api.placed(&n.id).await;
    let passwords = ftp_passwords(&api.secrets(&job).await);
    let password = &passwords[&n.user];
    let home = ftp_entry(from, &n.user).dir;

    // A page, a nested file and 100 MB, through the customer's FTP login.
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("page.html");
    std::fs::write(&page, format!("<h1>{} moved</h1>\n", n.id)).unwrap();
    let big = tmp.path().join("big.bin");
    // Not all one byte: a copy that dropped or reordered blocks must differ.
    let block: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut data = Vec::with_capacity(BIG_MB * block.len());
    for i in 0..BIG_MB {
        data.extend_from_slice(&block);
        let at = data.len() - 8;
        data[at..].copy_from_slice(&(i as u64).to_le_bytes());
    }
    std::fs::write(&big, &data).unwrap();
    for (local, remote) in [
        (&page, "public_html/page.html"),
        (&big, "public_html/data/big.bin"),
    ] {
        let up = ftp_upload(from, &n.user, password, local, remote);
        assert!(up.ok, "uploading {remote} to {}: {}", from.name, up.stderr);
    }
    Moving {
        n,
        from,
        passwords,
        home,
    }
}

/// The other web host of the two.
fn other(host: &WebHost) -> &'static WebHost {
    stack()
        .web_hosts()
        .iter()
        .find(|h| h.name != host.name)
        .expect("the stack has two web hosts")
}

/// Checks the contract now lives on `to`, whole: the same files, owners and
/// modes; its site over HTTPS; every FTP password; its zone on both name
/// servers; nothing left on the old host.
async fn assert_moved(m: &Moving, to: &WebHost, before: &[String]) {
    let api = Api::main();
    assert_eq!(
        api.placement(&m.n.id).await.as_deref(),
        Some(to.name.as_str())
    );
    let after = tree_manifest(to, &m.home);
    assert_eq!(
        after, before,
        "the home on {} differs from the one that left {}",
        to.name, m.from.name
    );
    let (status, body) = https_get_on(to, &m.n.domain, "/page.html");
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("moved"), "{body}");
    for (login, password) in &m.passwords {
        let ls = ftp_list(to, login, password);
        assert!(
            ls.ok,
            "FTP login {login} on {} with its old password: {}",
            to.name, ls.stderr
        );
    }
    assert!(
        ftp_list(to, &m.n.user, &m.passwords[&m.n.user])
            .stdout
            .contains("public_html")
    );
    // Nothing of it is left on the old host.
    assert!(!unix_accounts_on(m.from).iter().any(|a| a.user == m.n.user));
    assert!(
        !vhost_files_on(m.from)
            .iter()
            .any(|f| f.contains(&m.n.domain))
    );
    assert!(!ftp_users_on(m.from).iter().any(|u| u.owner() == m.n.user));
    // Both name servers answer the new address.
    let deadline = Instant::now() + Duration::from_secs(20);
    for ns in [stack().primary(), stack().secondary()] {
        loop {
            let (_, a) = dig_at(ns, &m.n.domain, "A");
            if a == vec![to.ipv4.clone()] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} answers {a:?} for {}, not {}",
                ns.service,
                m.n.domain,
                to.ipv4
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_exact(&[Expect::www(&m.n, m.passwords.len()).on(&to.name)]).await;
}

/// 16. Drain the contract's host, then move it with `hostwright contracts
///     move --wait`: files uploaded over FTP arrive identical (content,
///     owner, modes), the site answers over HTTPS on the new host, every FTP
///     password still works there, both name servers answer the new A
///     record, and nothing is left on the old host. Prints the move's time
///     with its 100 MB.
pub async fn drain_then_move_with_ftp_files() {
    let api = Api::main();
    let m = provision_with_files(&api, "mv").await;
    let to = other(m.from);
    let before = tree_manifest(m.from, &m.home);
    assert!(before.iter().any(|l| l.contains("big.bin")), "{before:?}");

    let from_name = m.from.name.clone();
    let guard = Restore::new("activate the drained host", move || {
        let out = stack().cli(&["hosts", "activate", &from_name]);
        if out.ok { Ok(()) } else { Err(out.stderr) }
    });
    let drained = stack().cli(&["hosts", "drain", &m.from.name]);
    assert!(drained.ok, "{}", drained.stderr);
    // The site, as a visitor reaches it (the A record the primary answers,
    // then that host), polled all through the move: it must keep answering.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (stop, domain) = (stop.clone(), m.n.domain.clone());
        std::thread::spawn(move || {
            let (mut ok, mut bad) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (_, a) = dig_at(stack().primary(), &domain, "A");
                let host = stack()
                    .web_hosts()
                    .iter()
                    .find(|h| a == vec![h.ipv4.clone()]);
                match host.map(|h| (h.name.clone(), https_get_on(h, &domain, "/page.html"))) {
                    Some((_, (status, _))) if status == "200" => ok += 1,
                    other => bad.push(format!("{a:?}: {other:?}")),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (ok, bad)
        })
    };
    let clock = Instant::now();
    let moved = stack().cli(&[
        "contracts",
        "move",
        &m.n.id,
        "--to",
        &to.name,
        "--wait",
        "--timeout",
        "300",
    ]);
    let took = clock.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, failed) = poller.join().unwrap();
    eprintln!(
        "the site answered {answered} times during the move, failed {}",
        failed.len()
    );
    assert!(
        answered > 0 && failed.is_empty(),
        "the site stopped answering during the move: {failed:?}"
    );
    assert!(
        moved.ok,
        "the move failed: {}\n{}",
        moved.stdout, moved.stderr
    );
    eprintln!(
        "FIGURE move of one contract with {BIG_MB} MB of files from {} to {}: {:.1} s",
        m.from.name,
        to.name,
        took.as_secs_f64()
    );
    guard.restore();

    let jobs = api.jobs().await;
    let job = jobs
        .values()
        .find(|j| j.contract_id == m.n.id && j.move_to.as_deref() == Some(to.name.as_str()))
        .expect("the move is a job of its contract");
    let d = api.job(&job.job_id).await;
    assert_steps_once(&d);
    assert!(d.ops.iter().any(|o| o.action == "move"), "{:?}", d.ops);
    assert_moved(&m, to, &before).await;
}

/// 17. hostwright killed in the middle of a move (while the 100 MB travel):
///     after the restart the job resumes, each step succeeds exactly once,
///     and the contract ends whole on the new host with nothing left on the
///     old one.
pub async fn killed_mid_move() {
    let api = Api::main();
    let m = provision_with_files(&api, "mk").await;
    let to = other(m.from);
    let before = tree_manifest(m.from, &m.home);
    let moved = stack().cli(&["contracts", "move", &m.n.id, "--to", &to.name, "--json"]);
    assert!(moved.ok, "{}", moved.stderr);
    let v: serde_json::Value = serde_json::from_str(&moved.stdout).unwrap();
    let job = v["job_id"].as_str().unwrap().to_string();

    // Kill once the home is on its way: the relocation of the web space
    // has started and not ended.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = api.job(&job).await;
        let space = d
            .steps
            .iter()
            .find(|s| s.step.id.starts_with("relocate:webspace"));
        if space.is_some_and(|s| s.state == StepState::Running) {
            break;
        }
        assert!(
            space.is_none_or(|s| s.state != StepState::Succeeded) && Instant::now() < deadline,
            "the home's relocation ended before the kill: the test would prove nothing ({:?})",
            d.steps
                .iter()
                .map(|s| (&s.step.id, s.state))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let guard = Restore::new("start hostwright", || start_service("hostwright"));
    stack().compose_ok(&["kill", "-s", "KILL", "hostwright"]);
    assert!(!api.ready().await, "hostwright still answers after SIGKILL");
    guard.restore();
    api.wait_ready(60).await;
    api.wait_succeeded(std::slice::from_ref(&job), 300).await;
    let d = api.job(&job).await;
    assert_steps_once(&d);
    let cut = d
        .attempts
        .iter()
        .filter(|a| {
            a.outcome.is_none()
                || matches!(
                    a.outcome,
                    Some(hostwright::engine::store::AttemptOutcome::Abandoned { .. })
                )
        })
        .count();
    assert!(
        cut >= 1,
        "no attempt was cut by the kill: {:#?}",
        d.attempts
    );
    assert_moved(&m, to, &before).await;
}
