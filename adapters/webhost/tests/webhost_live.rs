//! The web host adapter against the real sshd + nginx of the test web host.

mod common;

use std::sync::Arc;

use common::*;
use hostwright_adapter::{Adapter, Observation, testenv::var};

#[tokio::test]
async fn webspace_and_vhost_lifecycle() {
    let a = adapter();
    let user = unique_user();
    let _cleanup = Cleanup { user: user.clone() };
    let domain = format!("{user}.example.test");
    let alias = format!("www.{domain}");
    let root = var("HW_WEB_ROOT");

    // --- create ---------------------------------------------------------
    let ws = a
        .ensure(&ctx(), &webspace(&user, 20480, false))
        .await
        .unwrap();
    assert_eq!(ws.facts["created"], true, "{}", ws.facts);
    assert_eq!(ws.facts["quota_enforced"], false, "test fs has no quotas");
    assert!(ws.secrets.is_empty());
    let uid = ws.facts["uid"].as_u64().unwrap();
    assert!((61000..=61999).contains(&uid));
    let pw = getent("passwd", &user).expect("account exists");
    assert!(pw.contains(":hostwright K-TEST-1:"), "{pw}");
    assert!(pw.ends_with(":/usr/sbin/nologin"), "{pw}");
    let home = format!("{root}/home/{user}");
    assert!(std::path::Path::new(&format!("{home}/public_html/index.html")).exists());
    assert_eq!(
        std::fs::read_to_string(format!("{home}/.hostwright/quota"))
            .unwrap()
            .trim(),
        "20480"
    );

    // Idempotent: same account, nothing new.
    let ws2 = a
        .ensure(&ctx(), &webspace(&user, 20480, false))
        .await
        .unwrap();
    assert_eq!(ws2.facts["created"], false);
    assert_eq!(ws2.facts["uid"], ws.facts["uid"]);
    assert_eq!(
        std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .matches(&format!("\n{user}:"))
            .count(),
        1
    );

    let vh = a
        .ensure(&ctx(), &vhost(&domain, &user, &[&alias], true, false))
        .await
        .unwrap();
    assert_eq!(vh.facts["reloaded"], true, "{}", vh.facts);
    assert_eq!(vh.facts["cert_issued"], true);
    let page = wait_for(&domain, false, 200);
    assert!(page.contains("hostwright default page"), "{page}");
    assert!(wait_for(&alias, false, 200).contains("hostwright default page"));
    // HTTPS validates against the test CA for the domain and the alias.
    assert!(wait_for(&domain, true, 200).contains("hostwright default page"));
    assert!(wait_for(&alias, true, 200).contains("hostwright default page"));
    let key = format!("{root}/tls/{domain}.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Idempotent: no rewrite, no new certificate, no reload.
    let reloads = a.reload_count();
    let cert_before = std::fs::read(format!("{root}/tls/{domain}.crt")).unwrap();
    let vh2 = a
        .ensure(&ctx(), &vhost(&domain, &user, &[&alias], true, false))
        .await
        .unwrap();
    assert_eq!(vh2.facts["reloaded"], false);
    assert_eq!(vh2.facts["cert_issued"], false);
    assert_eq!(a.reload_count(), reloads);
    assert_eq!(
        std::fs::read(format!("{root}/tls/{domain}.crt")).unwrap(),
        cert_before
    );
    // A fresh adapter (another process) agrees: nothing to do.
    let b = adapter();
    let vh3 = b
        .ensure(&ctx(), &vhost(&domain, &user, &[&alias], true, false))
        .await
        .unwrap();
    assert_eq!(vh3.facts["reloaded"], false);
    assert_eq!(b.reload_count(), 0);

    match a
        .observe(&vhost(&domain, &user, &[], false, false))
        .await
        .unwrap()
    {
        Observation::Present { facts } => {
            assert_eq!(facts["tls"], true);
            assert_eq!(facts["suspended"], false);
            assert_eq!(facts["names"], serde_json::json!([domain, alias]));
        }
        o => panic!("{o:?}"),
    }

    // --- suspend (第20条) -------------------------------------------------
    a.ensure(&ctx(), &webspace(&user, 20480, true))
        .await
        .unwrap();
    let vs = a
        .ensure(&ctx(), &vhost(&domain, &user, &[&alias], true, true))
        .await
        .unwrap();
    assert_eq!(vs.facts["reloaded"], true);
    let body = wait_for(&domain, false, 503);
    assert!(body.contains("第20条"), "{body}");
    assert!(wait_for(&domain, true, 503).contains("第20条"));
    let shadow = getent("shadow", &user).unwrap();
    let f: Vec<&str> = shadow.split(':').collect();
    assert!(f[1].starts_with('!'), "password locked: {shadow}");
    assert_eq!(f[7], "1", "account expired: {shadow}");
    match a.observe(&webspace(&user, 0, false)).await.unwrap() {
        Observation::Present { facts } => {
            assert_eq!(facts["locked"], true);
            assert_eq!(facts["suspended"], true);
            assert_eq!(facts["managed"], true);
            assert_eq!(facts["quota_mb"], 20480);
        }
        o => panic!("{o:?}"),
    }
    // Suspending twice changes nothing.
    let r = a.reload_count();
    let vs2 = a
        .ensure(&ctx(), &vhost(&domain, &user, &[&alias], true, true))
        .await
        .unwrap();
    assert_eq!(vs2.facts["reloaded"], false);
    assert_eq!(a.reload_count(), r);

    // --- resume -----------------------------------------------------------
    a.ensure(&ctx(), &webspace(&user, 10240, false))
        .await
        .unwrap();
    a.ensure(&ctx(), &vhost(&domain, &user, &[&alias], true, false))
        .await
        .unwrap();
    assert!(wait_for(&domain, false, 200).contains("hostwright default page"));
    let shadow = getent("shadow", &user).unwrap();
    let f: Vec<&str> = shadow.split(':').collect();
    assert!(
        f[1].starts_with('!') && f[1].len() == 1,
        "no Unix password: {shadow}"
    );
    assert_eq!(f[7], "", "{shadow}");
    assert_eq!(
        std::fs::read_to_string(format!("{home}/.hostwright/quota"))
            .unwrap()
            .trim(),
        "10240"
    );

    // TLS off: the certificate goes away, HTTP still serves.
    let v = a
        .ensure(&ctx(), &vhost(&domain, &user, &[&alias], false, false))
        .await
        .unwrap();
    assert_eq!(v.facts["reloaded"], true);
    assert!(!std::path::Path::new(&key).exists());
    assert!(wait_for(&domain, false, 200).contains("hostwright default page"));

    // --- remove -----------------------------------------------------------
    let rv = a
        .remove(&ctx(), &vhost(&domain, &user, &[], false, false))
        .await
        .unwrap();
    assert_eq!(rv.facts["removed"], true);
    wait_for(&domain, false, 404); // the default server now
    assert!(!std::path::Path::new(&format!("{root}/sites/{domain}.conf")).exists());
    let rv2 = a
        .remove(&ctx(), &vhost(&domain, &user, &[], false, false))
        .await
        .unwrap();
    assert_eq!(rv2.facts["removed"], false);
    assert_eq!(
        a.observe(&vhost(&domain, &user, &[], false, false))
            .await
            .unwrap(),
        Observation::Absent
    );

    let rw = a.remove(&ctx(), &webspace(&user, 0, false)).await.unwrap();
    assert_eq!(rw.facts["removed"], true);
    let archive = rw.facts["archive"].as_str().unwrap().to_string();
    assert!(
        archive.starts_with(&format!("{root}/archive/{user}-")),
        "{archive}"
    );
    let listing = std::process::Command::new("tar")
        .args(["-tzf", &archive])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout)
            .contains(&format!("{user}/public_html/index.html"))
    );
    assert!(getent("passwd", &user).is_none());
    assert!(getent("group", &user).is_none());
    assert!(!std::path::Path::new(&home).exists());
    let rw2 = a.remove(&ctx(), &webspace(&user, 0, false)).await.unwrap();
    assert_eq!(rw2.facts["removed"], false);
    assert_eq!(
        a.observe(&webspace(&user, 0, false)).await.unwrap(),
        Observation::Absent
    );
    std::fs::remove_file(&archive).unwrap();
}

#[tokio::test]
async fn twenty_concurrent_vhosts_share_a_reload() {
    let a = Arc::new(adapter());
    let user = unique_user();
    let _cleanup = Cleanup { user: user.clone() };
    a.ensure(&ctx(), &webspace(&user, 100, false))
        .await
        .unwrap();
    let domains: Vec<String> = (0..20)
        .map(|i| format!("s{i}.{user}.example.test"))
        .collect();
    let before = a.reload_count();
    let mut tasks = Vec::new();
    for (i, d) in domains.iter().enumerate() {
        let (a, d, user) = (a.clone(), d.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            a.ensure(&ctx(), &vhost(&d, &user, &[], i % 4 == 0, false))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().facts["reloaded"], true);
    }
    let reloads = a.reload_count() - before;
    eprintln!("20 concurrent vhosts: {reloads} reload(s)");
    assert!(
        (1..=3).contains(&reloads),
        "20 vhosts took {reloads} reloads"
    );
    for (i, d) in domains.iter().enumerate() {
        assert!(wait_for(d, false, 200).contains("hostwright default page"));
        if i % 4 == 0 {
            wait_for(d, true, 200);
        }
    }
    // Removing them all concurrently also coalesces.
    let before = a.reload_count();
    let mut tasks = Vec::new();
    for d in &domains {
        let (a, d, user) = (a.clone(), d.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            a.remove(&ctx(), &vhost(&d, &user, &[], false, false))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!((1..=3).contains(&(a.reload_count() - before)));
    wait_for(&domains[0], false, 404);
    let rw = a.remove(&ctx(), &webspace(&user, 0, false)).await.unwrap();
    std::fs::remove_file(rw.facts["archive"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn accounts_not_made_by_hostwright_are_never_touched() {
    let a = adapter();
    for user in ["daemon", "nobody", "root"] {
        let before = getent("passwd", user);
        let e = a
            .ensure(&ctx(), &webspace(user, 10, true))
            .await
            .unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert!(e.to_string().contains("not managed by hostwright"), "{e}");
        let e = a
            .remove(&ctx(), &webspace(user, 10, false))
            .await
            .unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert_eq!(getent("passwd", user), before);
    }
    // A vhost for a web space that does not exist is refused.
    let e = a
        .ensure(
            &ctx(),
            &vhost("nouser.example.test", &unique_user(), &[], false, false),
        )
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(
        !std::path::Path::new(&format!(
            "{}/sites/nouser.example.test.conf",
            var("HW_WEB_ROOT")
        ))
        .exists()
    );
}

#[tokio::test]
async fn another_contracts_account_and_vhost_are_never_touched() {
    let a = adapter();
    let user = unique_user();
    let _cleanup = Cleanup { user: user.clone() };
    let domain = format!("{user}.example.test");
    a.ensure(&ctx(), &webspace(&user, 10, false)).await.unwrap();
    a.ensure(&ctx(), &vhost(&domain, &user, &[], true, false))
        .await
        .unwrap();
    let site = format!("{}/sites/{domain}.conf", var("HW_WEB_ROOT"));
    let conf_before = std::fs::read_to_string(&site).unwrap();
    let cert = format!("{}/tls/{domain}.crt", var("HW_WEB_ROOT"));
    let cert_before = std::fs::read(&cert).ok();
    let passwd_before = getent("passwd", &user);
    // The same names, asked for by another contract.
    let theirs = |mut r: hostwright_adapter::Resource| {
        r.contract_id = "K-TEST-2".into();
        r
    };
    for r in [
        theirs(webspace(&user, 99, true)),
        theirs(vhost(&domain, &user, &[], true, true)),
    ] {
        let e = a.ensure(&ctx(), &r).await.unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert!(e.to_string().contains("another contract"), "{e}");
        let e = a.remove(&ctx(), &r).await.unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert!(e.to_string().contains("another contract"), "{e}");
    }
    assert_eq!(getent("passwd", &user), passwd_before, "account untouched");
    assert_eq!(
        std::fs::read_to_string(&site).unwrap(),
        conf_before,
        "vhost untouched"
    );
    assert_eq!(
        std::fs::read(&cert).ok(),
        cert_before,
        "certificate untouched"
    );
    // Its own contract still removes both.
    a.remove(&ctx(), &vhost(&domain, &user, &[], true, false))
        .await
        .unwrap();
    a.remove(&ctx(), &webspace(&user, 10, false)).await.unwrap();
    assert!(getent("passwd", &user).is_none());
}
