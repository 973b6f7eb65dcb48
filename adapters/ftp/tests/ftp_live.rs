//! The FTP adapter against the real pure-ftpd of the test web host, with a
//! web space made by the webhost adapter and logins by a real FTP client
//! (curl).

use std::process::Command as Proc;
use std::time::{Duration, Instant};

use hostwright_adapter::testenv::var;
use hostwright_adapter::{Adapter, Observation, Resource, StepContext};
use hostwright_ftp::{FtpAdapter, FtpConfig};
use hostwright_ssh::SshConfig;
use hostwright_webhost::{WebhostAdapter, WebhostConfig};
use rand::Rng;
use serde_json::json;

fn ssh() -> SshConfig {
    SshConfig {
        host: var("HW_WEB_SSH_HOST"),
        port: var("HW_WEB_SSH_PORT").parse().unwrap(),
        user: var("HW_WEB_SSH_USER"),
        private_key_file: var("HW_WEB_SSH_KEY").into(),
        known_hosts_file: var("HW_WEB_KNOWN_HOSTS").into(),
        accept_unknown_host_key: false,
        connect_timeout_secs: 5,
        command_timeout_secs: 60,
        pool_size: 4,
    }
}

fn ftp_adapter() -> FtpAdapter {
    FtpAdapter::new(FtpConfig {
        ssh: ssh(),
        home_root: format!("{}/home", var("HW_WEB_ROOT")),
        passwd_file: var("HW_FTP_PASSWD"),
        pdb_file: var("HW_FTP_PDB"),
        pure_pw: "pure-pw".into(),
        chroot_public_html: false,
    })
    .unwrap()
}

fn web_adapter() -> WebhostAdapter {
    let root = var("HW_WEB_ROOT");
    WebhostAdapter::new(WebhostConfig {
        ssh: ssh(),
        home_root: format!("{root}/home"),
        sites_dir: format!("{root}/sites"),
        tls_dir: format!("{root}/tls"),
        archive_dir: format!("{root}/archive"),
        suspended_root: format!("{root}/suspended"),
        nginx_bin: "nginx".into(),
        nginx_conf: var("HW_WEB_NGINX_CONF"),
        reload_command: None,
        http_port: var("HW_WEB_HTTP_PORT").parse().unwrap(),
        https_port: var("HW_WEB_HTTPS_PORT").parse().unwrap(),
        listen_address: Some("127.0.0.1".parse().unwrap()),
        uid_min: 61000,
        uid_max: 61999,
        tls_ca_cert: None,
        tls_ca_key: None,
        acme: None,
        reload_coalesce_ms: 100,
    })
    .unwrap()
}

fn ctx() -> StepContext {
    StepContext {
        job_id: "job-ftp".into(),
        step_id: "step".into(),
        attempt: 1,
    }
}

fn webspace(user: &str) -> Resource {
    Resource {
        kind: "webspace".into(),
        key: user.into(),
        contract_id: "K-FTP-1".into(),
        spec: json!({"user": user, "quota_mb": 100, "suspended": false}),
    }
}

fn account(login: &str, user: &str, quota_mb: u64, suspended: bool) -> Resource {
    Resource {
        kind: "ftp_account".into(),
        key: login.into(),
        contract_id: "K-FTP-1".into(),
        spec: json!({"login": login, "user": user, "quota_mb": quota_mb, "suspended": suspended}),
    }
}

/// Runs curl against the test pure-ftpd; returns (exit code, stdout).
fn curl(login: &str, password: &str, path: &str, extra: &[&str]) -> (i32, String) {
    let out = Proc::new("curl")
        .args(["-sS", "-m", "20", "--user", &format!("{login}:{password}")])
        .args(extra)
        .arg(format!("ftp://127.0.0.1:{}/{path}", var("HW_FTP_PORT")))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Removes the test web space even when the test fails halfway.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Proc::new("userdel").args(["-r", &self.0]).output();
    }
}

#[tokio::test]
async fn ftp_accounts_lifecycle_with_a_real_client() {
    let web = web_adapter();
    let ftp = ftp_adapter();
    let mut rng = rand::rng();
    let user: String = format!(
        "hwf{}",
        (0..6)
            .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
            .collect::<String>()
    );
    let _cleanup = Cleanup(user.clone());
    let home = format!("{}/home/{user}", var("HW_WEB_ROOT"));
    let ws = web.ensure(&ctx(), &webspace(&user)).await.unwrap();
    let uid = ws.facts["uid"].as_u64().unwrap();
    let l1 = format!("{user}-1");
    let l2 = format!("{user}-2");

    // --- create two accounts ---------------------------------------------
    let o1 = ftp
        .ensure(&ctx(), &account(&l1, &user, 20480, false))
        .await
        .unwrap();
    let p1 = o1
        .secrets
        .get("password")
        .expect("password returned once")
        .clone();
    assert!(p1.expose().len() >= 20);
    let facts = o1.facts.to_string();
    assert!(!facts.contains(p1.expose()), "password in facts: {facts}");
    assert!(!facts.contains("$6$"), "hash in facts: {facts}");
    assert_eq!(o1.facts["uid"], uid);
    assert_eq!(o1.facts["created"], true);
    let o2 = ftp
        .ensure(&ctx(), &account(&l2, &user, 1, false))
        .await
        .unwrap();
    let p2 = o2.secrets.get("password").unwrap().clone();
    assert_ne!(p1, p2);
    // Only a SHA-512 crypt hash reached the server.
    // This user's own lines: other tests and benchmarks share the file.
    let own_lines = || {
        std::fs::read_to_string(var("HW_FTP_PASSWD"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with(&format!("{user}-")))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let passwd = std::fs::read_to_string(var("HW_FTP_PASSWD")).unwrap();
    assert!(!passwd.contains(p1.expose()));
    assert!(
        passwd.lines().any(|l| l.starts_with(&format!("{l1}:$6$"))),
        "{passwd}"
    );

    // --- log in and upload into the web space ------------------------------
    let t = Instant::now();
    let (code, _) = curl(&l1, p1.expose(), "", &["-l"]);
    assert_eq!(code, 0);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "login took {:?}",
        t.elapsed()
    );
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("hello.html");
    std::fs::write(&small, "<p>uploaded by ftp</p>\n").unwrap();
    let (code, _) = curl(
        &l1,
        p1.expose(),
        "public_html/hello.html",
        &["-T", small.to_str().unwrap()],
    );
    assert_eq!(code, 0, "upload failed");
    let landed = format!("{home}/public_html/hello.html");
    assert_eq!(
        std::fs::read_to_string(&landed).unwrap(),
        "<p>uploaded by ftp</p>\n"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&landed).unwrap().uid() as u64, uid);

    // --- chroot holds --------------------------------------------------------
    let (_, root_listing) = curl(&l1, p1.expose(), "", &["-l"]);
    assert!(root_listing.contains("public_html"), "{root_listing}");
    let (_, up_listing) = curl(&l1, p1.expose(), "../../../", &["-l"]);
    assert_eq!(up_listing, root_listing, "'..' escaped the chroot");
    let (code, body) = curl(&l1, p1.expose(), "etc/passwd", &[]);
    assert_ne!(code, 0, "read a file outside the chroot: {body}");
    let (code, _) = curl(&l1, p1.expose(), "%2E%2E/%2E%2E/ftp/pureftpd.passwd", &[]);
    assert_ne!(code, 0);

    // --- quota ---------------------------------------------------------------
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 3 * 1024 * 1024]).unwrap();
    let (code, _) = curl(
        &l2,
        p2.expose(),
        "public_html/big.bin",
        &["-T", big.to_str().unwrap()],
    );
    assert_ne!(code, 0, "an upload over the 1 MB quota was accepted");
    // pure-ftpd deletes the partial file once the aborted transfer is torn
    // down, which can be a moment after the client saw the refusal.
    let partial = format!("{home}/public_html/big.bin");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&partial).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !std::path::Path::new(&partial).exists(),
        "the partial upload over quota was left on disk"
    );

    // --- idempotent ensure: same password, no secret -----------------------
    let before_again = own_lines();
    let again = ftp
        .ensure(&ctx(), &account(&l1, &user, 20480, false))
        .await
        .unwrap();
    assert!(again.secrets.is_empty());
    assert_eq!(again.facts["changed"], false);
    assert_eq!(again.facts["created"], false);
    assert_eq!(own_lines(), before_again);
    // A quota change is applied, still without a new secret.
    let q = ftp
        .ensure(&ctx(), &account(&l1, &user, 10240, false))
        .await
        .unwrap();
    assert!(q.secrets.is_empty());
    assert_eq!(q.facts["changed"], true);
    assert_eq!(q.facts["quota_mb"], 10240);

    // --- suspend / resume ------------------------------------------------------
    let s = ftp
        .ensure(&ctx(), &account(&l1, &user, 10240, true))
        .await
        .unwrap();
    assert!(s.secrets.is_empty());
    assert_eq!(s.facts["suspended"], true);
    let (code, _) = curl(&l1, p1.expose(), "", &["-l"]);
    assert_eq!(code, 67, "a suspended login must be refused");
    match ftp.observe(&account(&l1, &user, 0, false)).await.unwrap() {
        Observation::Present { facts } => assert_eq!(facts["suspended"], true),
        o => panic!("{o:?}"),
    }
    // The other account is unaffected.
    assert_eq!(curl(&l2, p2.expose(), "", &["-l"]).0, 0);
    let r = ftp
        .ensure(&ctx(), &account(&l1, &user, 10240, false))
        .await
        .unwrap();
    assert!(r.secrets.is_empty());
    assert_eq!(
        curl(&l1, p1.expose(), "", &["-l"]).0,
        0,
        "same password after resume"
    );
    // A wrong password is refused (the check above can fail).
    assert_eq!(curl(&l1, "wrong-password", "", &["-l"]).0, 67);

    // --- remove ----------------------------------------------------------------
    for l in [&l1, &l2] {
        let rm = ftp
            .remove(&ctx(), &account(l, &user, 0, false))
            .await
            .unwrap();
        assert_eq!(rm.facts["removed"], true);
    }
    assert_eq!(curl(&l1, p1.expose(), "", &["-l"]).0, 67);
    assert_eq!(curl(&l2, p2.expose(), "", &["-l"]).0, 67);
    let rm = ftp
        .remove(&ctx(), &account(&l1, &user, 0, false))
        .await
        .unwrap();
    assert_eq!(rm.facts["removed"], false);
    assert_eq!(
        ftp.observe(&account(&l1, &user, 0, false)).await.unwrap(),
        Observation::Absent
    );
    assert!(
        !std::fs::read_to_string(var("HW_FTP_PASSWD"))
            .unwrap()
            .contains(&user)
    );

    let rw = web.remove(&ctx(), &webspace(&user)).await.unwrap();
    std::fs::remove_file(rw.facts["archive"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn an_account_needs_a_hostwright_web_space() {
    let ftp = ftp_adapter();
    for user in ["daemon", "hwfnosuchuser"] {
        let e = ftp
            .ensure(&ctx(), &account("hwfx-1", user, 1, false))
            .await
            .unwrap_err();
        assert!(!e.is_transient(), "{e}");
    }
    assert!(
        !std::fs::read_to_string(var("HW_FTP_PASSWD"))
            .unwrap()
            .contains("hwfx-1")
    );
}

#[tokio::test]
async fn concurrent_ensures_are_batched_and_a_bad_one_fails_alone() {
    let web = web_adapter();
    let ftp = std::sync::Arc::new(ftp_adapter());
    let mut rng = rand::rng();
    let user: String = format!(
        "hwb{}",
        (0..6)
            .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
            .collect::<String>()
    );
    let _cleanup = Cleanup(user.clone());
    let uid = web.ensure(&ctx(), &webspace(&user)).await.unwrap().facts["uid"]
        .as_u64()
        .unwrap();
    let logins: Vec<String> = (0..24).map(|i| format!("{user}-{i}")).collect();
    let bad = format!("{user}-bad");
    let batches_before = ftp.batches();

    // 24 good accounts and one for a web space that does not exist, at once.
    let mut tasks = Vec::new();
    for l in logins.iter().chain([&bad]) {
        let owner = if *l == bad {
            format!("{user}nosuch")
        } else {
            user.clone()
        };
        let (ftp, l) = (ftp.clone(), l.clone());
        tasks.push(tokio::spawn(async move {
            ftp.ensure(&ctx(), &account(&l, &owner, 5, false)).await
        }));
    }
    let mut passwords = Vec::new();
    for (t, l) in tasks.into_iter().zip(logins.iter().chain([&bad])) {
        let r = t.await.unwrap();
        if *l == bad {
            let e = r.unwrap_err();
            assert!(!e.is_transient(), "{e}");
            assert!(e.to_string().contains("does not exist"), "{e}");
        } else {
            let o = r.unwrap();
            assert_eq!(o.facts["created"], true, "{l}");
            assert_eq!(o.facts["uid"], uid);
            passwords.push(o.secrets.get("password").expect("new password").clone());
        }
    }
    let batches = ftp.batches() - batches_before;
    eprintln!("25 concurrent ftp ensures: {batches} batch(es)");
    assert!(
        (1..25).contains(&batches),
        "25 concurrent edits took {batches} batches"
    );
    let passwd = std::fs::read_to_string(var("HW_FTP_PASSWD")).unwrap();
    for l in &logins {
        assert_eq!(
            passwd
                .lines()
                .filter(|x| x.starts_with(&format!("{l}:")))
                .count(),
            1,
            "{l} in passwd"
        );
    }
    assert!(!passwd.contains(&bad));
    // Every account logs in with its own password (the PureDB was rebuilt
    // after the last batch), and not with another's.
    for (l, p) in logins.iter().zip(&passwords).step_by(6) {
        assert_eq!(curl(l, p.expose(), "", &["-l"]).0, 0, "{l}");
    }
    assert_eq!(curl(&logins[0], passwords[1].expose(), "", &["-l"]).0, 67);

    // A concurrent rerun changes nothing and hands out no secret.
    let mut tasks = Vec::new();
    for l in &logins {
        let (ftp, l, user) = (ftp.clone(), l.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            ftp.ensure(&ctx(), &account(&l, &user, 5, false)).await
        }));
    }
    for t in tasks {
        let o = t.await.unwrap().unwrap();
        assert!(o.secrets.is_empty());
        assert_eq!(o.facts["changed"], false);
        assert_eq!(o.facts["created"], false);
    }
    assert_eq!(
        std::fs::read_to_string(var("HW_FTP_PASSWD"))
            .unwrap()
            .lines()
            .filter(|x| x.starts_with(&format!("{user}-")))
            .count(),
        logins.len()
    );

    // Concurrent removals, twice: all gone, the second time nothing existed.
    for expect in [true, false] {
        let mut tasks = Vec::new();
        for l in &logins {
            let (ftp, l, user) = (ftp.clone(), l.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                ftp.remove(&ctx(), &account(&l, &user, 0, false)).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().facts["removed"], expect);
        }
    }
    assert!(
        !std::fs::read_to_string(var("HW_FTP_PASSWD"))
            .unwrap()
            .contains(&format!("{user}-"))
    );
    assert_eq!(curl(&logins[0], passwords[0].expose(), "", &["-l"]).0, 67);
    let rw = web.remove(&ctx(), &webspace(&user)).await.unwrap();
    std::fs::remove_file(rw.facts["archive"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn another_contracts_login_is_never_changed_or_removed() {
    let web = web_adapter();
    let ftp = ftp_adapter();
    let mut rng = rand::rng();
    let user: String = format!(
        "hwo{}",
        (0..6)
            .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
            .collect::<String>()
    );
    let _cleanup = Cleanup(user.clone());
    web.ensure(&ctx(), &webspace(&user)).await.unwrap();
    let login = format!("{user}_2");
    let made = ftp
        .ensure(&ctx(), &account(&login, &user, 10, false))
        .await
        .unwrap();
    let password = made.secrets["password"].clone();
    let line = || {
        std::fs::read_to_string(var("HW_FTP_PASSWD"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with(&format!("{login}:")))
            .map(str::to_string)
    };
    let before = line().expect("the login exists");
    let mut theirs = account(&login, &user, 99, true);
    theirs.contract_id = "K-FTP-2".into();
    for e in [
        ftp.ensure(&ctx(), &theirs).await.unwrap_err(),
        ftp.remove(&ctx(), &theirs).await.unwrap_err(),
    ] {
        assert!(!e.is_transient(), "{e}");
        assert!(e.to_string().contains("another contract"), "{e}");
    }
    assert_eq!(line().as_deref(), Some(before.as_str()), "untouched");
    let (code, _) = curl(&login, password.expose(), "", &["-l"]);
    assert_eq!(code, 0, "the owner's password still logs in");
    // The owner removes it.
    ftp.remove(&ctx(), &account(&login, &user, 10, false))
        .await
        .unwrap();
    assert!(line().is_none());
    web.remove(&ctx(), &webspace(&user)).await.unwrap();
}
