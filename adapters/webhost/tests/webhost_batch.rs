//! Batching of web spaces and vhost files against the real sshd + nginx of
//! the test web host: concurrent steps share batches, a bad change fails
//! only its own step, reruns change nothing.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;

use common::*;
use hostwright_adapter::{Adapter, Outcome, Resource, testenv::var};
use hostwright_webhost::WebhostAdapter;

/// Runs `op` on every resource at once; results in the same order.
async fn all_at_once(
    a: &Arc<WebhostAdapter>,
    remove: bool,
    rs: Vec<Resource>,
) -> Vec<Result<Outcome, hostwright_adapter::AdapterError>> {
    let tasks: Vec<_> = rs
        .into_iter()
        .map(|r| {
            let a = a.clone();
            tokio::spawn(async move {
                if remove {
                    a.remove(&ctx(), &r).await
                } else {
                    a.ensure(&ctx(), &r).await
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn concurrent_webspaces_share_batches_and_a_bad_one_fails_alone() {
    let a = Arc::new(adapter());
    let root = var("HW_WEB_ROOT");
    let users: Vec<String> = (0..12).map(|_| unique_user()).collect();
    let _cleanup: Vec<Cleanup> = users.iter().map(|u| Cleanup { user: u.clone() }).collect();
    let spaces = |suspended: bool| -> Vec<Resource> {
        users.iter().map(|u| webspace(u, 50, suspended)).collect()
    };

    // 12 new accounts and one that is not ours ("daemon"), all at once.
    let before = a.webspace_batches();
    let mut rs = spaces(false);
    rs.insert(5, webspace("daemon", 10, false));
    let mut res = all_at_once(&a, false, rs).await;
    let daemon = res.remove(5).unwrap_err();
    assert!(!daemon.is_transient(), "{daemon}");
    assert!(
        daemon.to_string().contains("not managed by hostwright"),
        "{daemon}"
    );
    let batches = a.webspace_batches() - before;
    eprintln!("13 concurrent web spaces: {batches} batch(es)");
    assert!(
        (1..=3).contains(&batches),
        "13 web spaces took {batches} batches"
    );
    let mut uids = Vec::new();
    for (u, r) in users.iter().zip(res) {
        let o = r.unwrap();
        assert_eq!(o.facts["created"], true, "{}", o.facts);
        let uid = o.facts["uid"].as_u64().unwrap();
        assert!((61000..=61999).contains(&uid));
        assert_eq!(o.facts["gid"], o.facts["uid"]);
        uids.push(uid);
        let home = format!("{root}/home/{u}");
        let meta = std::fs::metadata(&home).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o711);
        assert_eq!(u64::from(meta.uid()), uid);
        let page = std::fs::read_to_string(format!("{home}/public_html/index.html")).unwrap();
        assert!(page.contains(&format!("({u})")), "{page}");
    }
    let mut distinct = uids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), uids.len(), "one uid per account: {uids:?}");

    // A rerun changes nothing: same uids, no second account, the index page
    // (customer content from now on) is not rewritten.
    let mtimes: Vec<i64> = users
        .iter()
        .map(|u| {
            std::fs::metadata(format!("{root}/home/{u}/public_html/index.html"))
                .unwrap()
                .mtime_nsec()
        })
        .collect();
    let res = all_at_once(&a, false, spaces(false)).await;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    for (i, (u, r)) in users.iter().zip(res).enumerate() {
        let o = r.unwrap();
        assert_eq!(o.facts["created"], false);
        assert_eq!(o.facts["uid"].as_u64(), Some(uids[i]));
        assert_eq!(passwd.matches(&format!("\n{u}:")).count(), 1);
        let m = std::fs::metadata(format!("{root}/home/{u}/public_html/index.html")).unwrap();
        assert_eq!(m.mtime_nsec(), mtimes[i]);
    }

    // Suspension and resumption, all at once.
    for r in all_at_once(&a, false, spaces(true)).await {
        assert_eq!(r.unwrap().facts["suspended"], true);
    }
    for u in &users {
        let sh = getent("shadow", u).unwrap();
        assert_eq!(sh.split(':').nth(7), Some("1"), "expired: {sh}");
        assert!(std::path::Path::new(&format!("{root}/home/{u}/.hostwright/suspended")).exists());
    }
    for r in all_at_once(&a, false, spaces(false)).await {
        assert_eq!(r.unwrap().facts["suspended"], false);
    }
    for u in &users {
        let sh = getent("shadow", u).unwrap();
        assert_eq!(sh.split(':').nth(7), Some(""), "not expired: {sh}");
        assert!(
            sh.split(':').nth(1).unwrap().starts_with('!'),
            "no password: {sh}"
        );
        assert!(!std::path::Path::new(&format!("{root}/home/{u}/.hostwright/suspended")).exists());
    }

    // Removal, all at once, with an account that is already gone.
    let before = a.webspace_batches();
    let mut rs = spaces(false);
    rs.push(webspace(&unique_user(), 0, false));
    let res = all_at_once(&a, true, rs).await;
    assert!(a.webspace_batches() - before <= 3);
    for (i, r) in res.into_iter().enumerate() {
        let o = r.unwrap();
        if i < users.len() {
            assert_eq!(o.facts["removed"], true, "{}", o.facts);
            let archive = o.facts["archive"].as_str().unwrap().to_string();
            assert!(archive.ends_with(".tar.gz"));
            std::fs::remove_file(&archive).unwrap();
            assert!(getent("passwd", &users[i]).is_none());
            assert!(getent("group", &users[i]).is_none());
            assert!(!std::path::Path::new(&format!("{root}/home/{}", users[i])).exists());
        } else {
            assert_eq!(o.facts["removed"], false);
            assert!(o.facts["archive"].is_null());
        }
    }
}

#[tokio::test]
async fn a_vhost_batch_with_one_bad_site() {
    let a = Arc::new(adapter());
    let root = var("HW_WEB_ROOT");
    let user = unique_user();
    let _cleanup = Cleanup { user: user.clone() };
    a.ensure(&ctx(), &webspace(&user, 100, false))
        .await
        .unwrap();
    let good: Vec<String> = (0..8)
        .map(|i| format!("b{i}.{user}.example.test"))
        .collect();
    let vhosts = || -> Vec<Resource> {
        good.iter()
            .map(|d| vhost(d, &user, &[], false, false))
            .collect()
    };
    // A site whose web space does not exist, and one whose account lives
    // elsewhere ("daemon"): each fails alone, nothing written for them.
    let missing = format!("missing.{user}.example.test");
    let foreign = format!("foreign.{user}.example.test");
    let mut rs = vhosts();
    rs.insert(2, vhost(&missing, &unique_user(), &[], false, false));
    rs.insert(6, vhost(&foreign, "daemon", &[], false, false));
    let (b0, r0) = (a.vhost_batches(), a.reload_count());
    let mut res = all_at_once(&a, false, rs).await;
    let e_foreign = res.remove(6).unwrap_err();
    let e_missing = res.remove(2).unwrap_err();
    assert!(!e_missing.is_transient() && e_missing.to_string().contains("does not exist"));
    assert!(!e_foreign.is_transient() && e_foreign.to_string().contains("does not live"));
    for d in [&missing, &foreign] {
        assert!(!std::path::Path::new(&format!("{root}/sites/{d}.conf")).exists());
    }
    for r in res {
        assert_eq!(r.unwrap().facts["reloaded"], true);
    }
    let (batches, reloads) = (a.vhost_batches() - b0, a.reload_count() - r0);
    eprintln!("10 concurrent vhosts: {batches} batch(es), {reloads} reload(s)");
    assert!((1..=2).contains(&batches), "{batches} batches");
    assert_eq!(reloads, batches);
    // Served as soon as the steps end: the batch waits for nginx to apply
    // the reload (no polling here, unlike nginx's asynchronous reload alone).
    for d in &good {
        let (code, body) = get(d, false);
        assert_eq!(code, 200, "{d}: {body}");
        assert!(body.contains("hostwright default page"));
    }

    // A rerun writes nothing and reloads nothing.
    let mtimes: Vec<i64> = good
        .iter()
        .map(|d| {
            std::fs::metadata(format!("{root}/sites/{d}.conf"))
                .unwrap()
                .mtime_nsec()
        })
        .collect();
    let r0 = a.reload_count();
    for r in all_at_once(&a, false, vhosts()).await {
        assert_eq!(r.unwrap().facts["reloaded"], false);
    }
    assert_eq!(a.reload_count(), r0);
    for (d, m) in good.iter().zip(mtimes) {
        let now = std::fs::metadata(format!("{root}/sites/{d}.conf")).unwrap();
        assert_eq!(now.mtime_nsec(), m, "{d} rewritten");
    }

    // Removal, all at once, with one that is already gone.
    let mut rs = vhosts();
    rs.push(vhost(&missing, &user, &[], false, false));
    let res = all_at_once(&a, true, rs).await;
    for (i, r) in res.into_iter().enumerate() {
        let o = r.unwrap();
        assert_eq!(o.facts["removed"], i < good.len(), "{}", o.facts);
    }
    for d in &good {
        assert!(!std::path::Path::new(&format!("{root}/sites/{d}.conf")).exists());
    }
    assert!(nginx_t_ok());
    assert_eq!(get(&good[0], false).0, 404, "gone as soon as the step ends");
    let rw = a.remove(&ctx(), &webspace(&user, 0, false)).await.unwrap();
    std::fs::remove_file(rw.facts["archive"].as_str().unwrap()).unwrap();
}
