//! A vhost file nginx rejects is moved aside and fails only its own step;
//! the rest of the batch is reloaded and served. (Own test binary: the broken
//! file exists for a moment, which would upset other tests' reloads.)

mod common;

use std::sync::Arc;

use common::*;
use hostwright_adapter::{Adapter, testenv::var};

#[tokio::test]
async fn a_rejected_vhost_is_moved_aside_and_the_batch_still_reloads() {
    let a = Arc::new(adapter());
    let user = unique_user();
    let _cleanup = Cleanup { user: user.clone() };
    let root = var("HW_WEB_ROOT");
    a.ensure(&ctx(), &webspace(&user, 100, false))
        .await
        .unwrap();

    let bad = format!("bad.{user}.example.test");
    let good: Vec<String> = (0..3)
        .map(|i| format!("g{i}.{user}.example.test"))
        .collect();
    let before = a.reload_count();
    let mut tasks = Vec::new();
    for d in &good {
        let (a, d, user) = (a.clone(), d.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            a.ensure(&ctx(), &vhost(&d, &user, &[], false, false)).await
        }));
    }
    let bad_task = {
        let (a, bad) = (a.clone(), bad.clone());
        tokio::spawn(async move {
            a.install_site(
                &bad,
                "server {\n    hostwright_bogus_directive on;\n}\n",
                false,
            )
            .await
        })
    };
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().facts["reloaded"], true);
    }
    let err = bad_task.await.unwrap().unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string().contains("hostwright_bogus_directive"),
        "{err}"
    );
    assert_eq!(a.reload_count() - before, 1);

    let conf = format!("{root}/sites/{bad}.conf");
    assert!(
        !std::path::Path::new(&conf).exists(),
        "broken file left in place"
    );
    assert!(std::path::Path::new(&format!("{conf}.rejected")).exists());
    assert!(nginx_t_ok(), "nginx -t must pass after the batch");
    for d in &good {
        assert!(wait_for(d, false, 200).contains("hostwright default page"));
    }

    // The next change reloads normally.
    let r = a
        .ensure(&ctx(), &vhost(&good[0], &user, &[], false, true))
        .await
        .unwrap();
    assert_eq!(r.facts["reloaded"], true);
    wait_for(&good[0], false, 503);

    // Clean up through the adapter (also removes the .rejected file).
    for d in good.iter().chain([&bad]) {
        a.remove(&ctx(), &vhost(d, &user, &[], false, false))
            .await
            .unwrap();
    }
    assert!(!std::path::Path::new(&format!("{conf}.rejected")).exists());
    let rw = a.remove(&ctx(), &webspace(&user, 0, false)).await.unwrap();
    std::fs::remove_file(rw.facts["archive"].as_str().unwrap()).unwrap();
}
