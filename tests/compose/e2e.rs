//! The life of contracts on the whole stack, checked from outside with real
//! clients: provisioning of a WWW, a Secure MX and a Pack contract, an option
//! change, suspension and resume (第20条), termination (第25条), and a contract
//! the rules refuse.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::census::{self, Expect, assert_exact, shadow_locked, snapshot, unix_accounts};
use crate::clients::{
    Api, dig, ftp_list, ftp_upload, http_get, http_get_on, https_get, mailboxes, tenant,
    zone_exists,
};
use crate::contracts::{Names, names, pack, renamed, revised, securemx, sign, www_ssl};
use crate::stack::{WebHost, stack};

/// The billable items of a report: row → (quantity, unit price).
fn items(report: &Value) -> BTreeMap<String, (u64, Option<String>)> {
    report["body"]["billable"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("report without items: {report:#}"))
        .iter()
        .map(|i| {
            (
                i["row"].as_str().unwrap_or_default().to_string(),
                (
                    i["quantity"].as_u64().unwrap_or_default(),
                    i["unit_price"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

/// The items billing must receive, from the price tables of the terms
/// (別表①②③), written out here rather than computed by hostwright.
fn want_items(rows: &[(&str, u64, &str)]) -> BTreeMap<String, (u64, Option<String>)> {
    rows.iter()
        .map(|(row, q, price)| (row.to_string(), (*q, Some(price.to_string()))))
        .collect()
}

/// The report's billable items are exactly `rows` (row, quantity, price).
fn assert_items(report: &Value, rows: &[(&str, u64, &str)]) {
    assert_eq!(items(report), want_items(rows), "{:#}", report["body"]);
}

/// A statement must add up: lines, subtotal, tax, total.
fn check_statement(s: &Value) {
    let num = |v: &Value| -> i64 {
        v.as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("not whole yen: {v}"))
    };
    let lines: i64 = s["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            assert_eq!(
                num(&l["amount"]),
                num(&l["unit_price"]) * l["quantity"].as_i64().unwrap(),
                "{l:#}"
            );
            num(&l["amount"])
        })
        .sum();
    assert_eq!(num(&s["subtotal"]), lines, "{s:#}");
    assert_eq!(num(&s["total"]), lines + num(&s["tax"]), "{s:#}");
}

/// FTP passwords a job handed back, by login.
pub fn ftp_passwords(secrets: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    secrets
        .iter()
        .filter_map(|(k, v)| {
            let login = k.strip_prefix("ftp_account/")?.strip_suffix("/password")?;
            Some((login.to_string(), v.clone()))
        })
        .collect()
}

fn logins(n: &Names, count: usize) -> Vec<String> {
    (1..=count)
        .map(|i| {
            if i == 1 {
                n.user.clone()
            } else {
                format!("{}_{i}", n.user)
            }
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn want_mx() -> Vec<String> {
    sorted(stack().layout.mx.clone())
}

fn want_spf() -> Vec<String> {
    vec![format!("\"{}\"", stack().layout.spf)]
}

/// The A record of a site on web host `host`.
fn ip(host: &WebHost) -> Vec<String> {
    vec![host.ipv4.clone()]
}

/// The FTP root and quota of `login` from pure-ftpd's passwd file on `host`.
pub fn ftp_entry(host: &WebHost, login: &str) -> census::FtpUser {
    census::ftp_users_on(host)
        .into_iter()
        .find(|u| u.login == login)
        .unwrap_or_else(|| panic!("FTP user {login} not in {}'s passwd file", host.name))
}

fn file_exists_on(host: &WebHost, path: &str) -> bool {
    stack().exec(&host.service, &["test", "-e", path]).ok
}

/// An upload that would take the account over its quota is refused, and the
/// refusal is the quota's: the same upload passes once space is freed.
///
/// Filling 11 GB for real is out of a test's budget, so the account is
/// brought close to its quota with a sparse file, and pure-ftpd's own
/// `pure-quotacheck` records the usage, as an administrator would after
/// files arrived other than over FTP.
fn check_quota_refusal(host: &WebHost, login: &str, password: &str, user: &str) {
    let entry = ftp_entry(host, login);
    let quota = entry.quota_bytes.expect("the FTP account has a size quota");
    let dir = entry.dir.clone();
    let filler = format!("{dir}/.e2e-filler");
    let quotacheck = r#"pure-quotacheck -u "$1" -d "$2""#;
    stack().exec_ok(
        &host.service,
        &[
            "sh",
            "-c",
            &format!(r#"truncate -s "$3" "$4" && {quotacheck}"#),
            "sh",
            user,
            &dir,
            &(quota - 16 * 1024).to_string(),
            &filler,
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("big.bin");
    std::fs::write(&local, vec![b'q'; 256 * 1024]).unwrap();
    let refused = ftp_upload(host, login, password, &local, "public_html/over-quota.bin");
    let landed = file_exists_on(host, &format!("{dir}/public_html/over-quota.bin"));
    stack().exec_ok(
        &host.service,
        &[
            "sh",
            "-c",
            &format!(r#"rm -f "$3" && {quotacheck}"#),
            "sh",
            user,
            &dir,
            &filler,
        ],
    );
    assert!(
        !refused.ok,
        "an upload over the {quota}-byte quota was accepted"
    );
    eprintln!("over-quota upload refused: {}", refused.stderr.trim());
    // curl's 70 is CURLE_REMOTE_DISK_FULL: the server's 552.
    assert_eq!(
        refused.code, 70,
        "refused for another reason than the quota (552): {}",
        refused.stderr
    );
    assert!(!landed, "the refused upload was left on the web host");
    let again = ftp_upload(host, login, password, &local, "public_html/over-quota.bin");
    assert!(
        again.ok,
        "the same upload within the quota failed: {}",
        again.stderr
    );
}

async fn submit_all(api: &Api, contracts: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for c in contracts {
        ids.push(api.submit(&sign(c)).await);
    }
    ids
}

/// 1. A WWW contract (SSL, extra FTP), a Secure MX contract (extra accounts
///    and disk) and a Pack contract with DNS operation, provisioned and seen
///    from outside.
pub async fn provision() {
    let api = Api::main();
    let (w, m, p) = (names("w", 1), names("m", 1), names("p", 1));
    let jobs = submit_all(
        &api,
        &[www_ssl(&w), securemx(&m), pack("pack-dns.json", &p)],
    )
    .await;
    api.wait_succeeded(&jobs, 240).await;
    // Each site lives on the web host it was placed on; its DNS says so.
    let (wh, ph) = (api.placed(&w.id).await, api.placed(&p.id).await);
    eprintln!("placed: {} on {}, {} on {}", w.id, wh.name, p.id, ph.name);

    // Web: both sites over HTTP, the SSL one over HTTPS with the test CA.
    for n in [&w, &p] {
        for host in [n.domain.clone(), format!("www.{}", n.domain)] {
            let (code, body) = http_get(&host, "/");
            assert_eq!(code, "200", "http://{host}/: {body}");
        }
    }
    for host in [w.domain.clone(), format!("www.{}", w.domain)] {
        let (code, body) = https_get(&host, "/");
        assert_eq!(code, "200", "https://{host}/ with the test CA: {body}");
    }

    // FTP: WWW 1 + SSL 1 + 2 extra = 4 accounts, each logs in; a wrong
    // password is refused; an upload lands on the site; over quota refused.
    let secrets = api.secrets(&jobs[0]).await;
    let pw = ftp_passwords(&secrets);
    assert_eq!(
        pw.keys().cloned().collect::<Vec<_>>(),
        sorted(logins(&w, 4)),
        "FTP passwords handed back: {secrets:?}"
    );
    for (login, password) in &pw {
        let out = ftp_list(wh, login, password);
        assert!(out.ok, "FTP login {login}: {}", out.stderr);
        assert!(out.stdout.contains("public_html"), "{}", out.stdout);
    }
    assert_eq!(ftp_list(wh, &w.user, "wrong-password").code, 67);
    assert!(
        api.secrets(&jobs[0]).await.is_empty(),
        "secrets are handed back once"
    );
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("hello.html");
    let marker = format!("<p>uploaded over FTP to {}</p>\n", w.id);
    std::fs::write(&page, &marker).unwrap();
    let up = ftp_upload(wh, &w.user, &pw[&w.user], &page, "public_html/hello.html");
    assert!(up.ok, "FTP upload: {}", up.stderr);
    assert_eq!(
        http_get(&w.domain, "/hello.html"),
        ("200".into(), marker.clone())
    );
    // On the web host the file belongs to the web space's account.
    let home = &unix_accounts()
        .into_iter()
        .find(|a| a.contract == w.id)
        .expect("the web space's account")
        .home;
    let manifest = census::tree_manifest(wh, home);
    let line = manifest
        .iter()
        .find(|l| l.starts_with("public_html/hello.html "))
        .unwrap_or_else(|| panic!("hello.html not in {}'s home: {manifest:#?}", w.user));
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(marker.as_bytes()))
    };
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(
        (f[2], f[3], f[4]),
        (
            format!("{0}:{0}", w.user).as_str(),
            marker.len().to_string().as_str(),
            sha.as_str()
        ),
        "{line}"
    );
    assert_eq!(https_get(&w.domain, "/hello.html"), ("200".into(), marker));
    check_quota_refusal(
        wh,
        &format!("{}_2", w.user),
        &pw[&format!("{}_2", w.user)],
        &w.user,
    );

    // DNS: web records for the sites, mail records where mail is hosted.
    assert_eq!(dig(&w.domain, "A"), ("NOERROR".into(), ip(wh)));
    assert_eq!(dig(&format!("www.{}", w.domain), "A").1, ip(wh));
    assert_eq!(dig(&w.domain, "MX"), ("NOERROR".into(), vec![]));
    assert_eq!(dig(&m.domain, "A"), ("NOERROR".into(), vec![]));
    assert_eq!(sorted(dig(&m.domain, "MX").1), want_mx());
    assert_eq!(dig(&m.domain, "TXT").1, want_spf());
    assert_eq!(dig(&p.domain, "A").1, ip(ph));
    assert_eq!(dig(&format!("www.{}", p.domain), "A").1, ip(ph));
    assert_eq!(sorted(dig(&p.domain, "MX").1), want_mx());
    assert_eq!(dig(&p.domain, "TXT").1, want_spf());

    // Mail: the tenants with the entitlements, and their mailboxes.
    let (status, t) = tenant(&m.id).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["accounts_limit"], 15, "10 + 5 extra: {t:#}");
    assert_eq!(t["disk_units"], 3, "1 + 2 extra: {t:#}");
    assert_eq!(t["options"], json!(["mailing_list"]), "{t:#}");
    assert_eq!(t["domains"], json!([m.domain]), "{t:#}");
    assert_eq!(t["suspended"], false);
    let want: Vec<String> = ["hanako.yamada", "info", "sales", "support", "taro.suzuki"]
        .iter()
        .map(|l| format!("{l}@{}", m.domain))
        .collect();
    assert_eq!(mailboxes(&m.id).await, (200, want));
    let (status, t) = tenant(&p.id).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["accounts_limit"], 10, "{t:#}");
    assert_eq!(t["disk_units"], 1, "{t:#}");
    assert_eq!(
        mailboxes(&p.id).await,
        (
            200,
            vec![
                format!("info@{}", p.domain),
                format!("reception@{}", p.domain)
            ]
        )
    );

    // Billing: one report per job with the terms' prices.
    let by_job: BTreeMap<String, String> = jobs
        .iter()
        .cloned()
        .zip([w.id.clone(), m.id.clone(), p.id.clone()])
        .collect();
    let reports = census::wait_reports(&by_job, 60).await;
    assert_items(
        &reports[&jobs[0]],
        &[
            ("service_initial:www", 1, "20000"),
            ("service:www", 1, "10000"),
            ("ssl_digital_id_agency", 1, "20000"),
            ("ssl_server_setup", 1, "10000"),
            ("ssl_digital_id_application", 1, "15000"),
            ("ssl_service", 1, "1000"),
            ("ftp_account_extra", 2, "1000"),
            ("www_disk_extra", 1, "10000"),
            ("dns_operation_monthly:jprsattribute", 1, "1000"),
        ],
    );
    assert_items(
        &reports[&jobs[1]],
        &[
            ("service_initial:mail_secure_mx", 1, "20000"),
            ("service:mail_secure_mx", 1, "4500"),
            ("mx_account_extra", 5, "300"),
            ("mx_disk_extra", 2, "200"),
            ("mx_mailing_list_initial", 1, "10000"),
            ("mx_mailing_list", 1, "1000"),
            ("mx_mailing_list_lists", 1, "100"),
            ("dns_operation_yearly:jprsgeneric", 1, "5000"),
        ],
    );
    assert_items(
        &reports[&jobs[2]],
        &[
            ("service_initial:pack_secure_mx", 1, "20000"),
            ("service:pack_secure_mx", 1, "13000"),
            ("ftp_account_extra", 1, "1000"),
            ("dns_operation_monthly:gtld", 1, "1000"),
        ],
    );
    for r in reports.values() {
        assert_eq!(r["body"]["revision"], 1);
        assert_eq!(r["body"]["status"]["state"], "active");
        check_statement(&r["body"]["billable"]["this_month"]);
        check_statement(&r["body"]["billable"]["next_month"]);
    }

    assert_exact(&[
        Expect::www(&w, 4),
        Expect::mail(&m, 5),
        Expect::pack(&p, 2, 2),
    ])
    .await;
}

/// 2. An option change: a new revision with more disk, FTP and mail
///    accounts, applied and observed.
pub async fn option_change() {
    let api = Api::main();
    let p = names("o", 1);
    let rev1 = pack("pack-dns.json", &p);
    let job1 = api.submit(&sign(&rev1)).await;
    api.wait_succeeded(std::slice::from_ref(&job1), 120).await;
    let pw1 = ftp_passwords(&api.secrets(&job1).await);
    assert_eq!(pw1.len(), 2);

    let mut rev2 = revised(rev1, 2, "2027-01-05");
    rev2["options"] = json!([
        {"item": "ftp_account_extra", "quantity": 3, "effective": "2027-02-01"},
        {"item": "www_disk_extra", "quantity": 1, "effective": "2027-02-01"},
        {"item": "mx_account_extra", "quantity": 5, "effective": "2027-02-01"}
    ]);
    rev2["secure_mx"]["mailboxes"] = json!(["info", "reception", "sales", "support"]);
    let job2 = api.submit(&sign(&rev2)).await;
    api.wait_succeeded(std::slice::from_ref(&job2), 120).await;

    // FTP: 1 + 3 extra; only the two new accounts get (new) passwords, the
    // old ones keep theirs; every account has the larger quota.
    let pw2 = ftp_passwords(&api.secrets(&job2).await);
    let host = api.placed(&p.id).await;
    assert_eq!(
        pw2.keys().cloned().collect::<Vec<_>>(),
        sorted(logins(&p, 4)[2..].to_vec())
    );
    let all: BTreeMap<String, String> = pw1.into_iter().chain(pw2).collect();
    for (login, password) in &all {
        let out = ftp_list(host, login, password);
        assert!(out.ok, "FTP login {login} after the change: {}", out.stderr);
        let quota = ftp_entry(host, login).quota_bytes;
        assert_eq!(
            quota,
            Some(11 * 1024 * 1024 * 1024),
            "{login}: 10 GB + 1 GB"
        );
    }

    // Web space: the recorded quota.
    let home = unix_accounts()
        .into_iter()
        .find(|a| a.contract == p.id)
        .expect("the web space's account")
        .home;
    let quota = stack().exec_ok(
        &host.service,
        &["cat", &format!("{home}/.hostwright/quota")],
    );
    assert_eq!(quota.trim(), (11 * 1024).to_string());

    // Mail: a larger account limit and the two new mailboxes.
    let (_, t) = tenant(&p.id).await;
    assert_eq!(t["accounts_limit"], 15, "{t:#}");
    let (status, boxes) = mailboxes(&p.id).await;
    assert_eq!(status, 200);
    assert_eq!(
        boxes,
        ["info", "reception", "sales", "support"]
            .iter()
            .map(|l| format!("{l}@{}", p.domain))
            .collect::<Vec<_>>()
    );

    let by_job = BTreeMap::from([(job1, p.id.clone()), (job2.clone(), p.id.clone())]);
    let reports = census::wait_reports(&by_job, 60).await;
    assert_eq!(reports[&job2]["body"]["revision"], 2);
    assert_items(
        &reports[&job2],
        &[
            ("service_initial:pack_secure_mx", 1, "20000"),
            ("service:pack_secure_mx", 1, "13000"),
            ("ftp_account_extra", 3, "1000"),
            ("www_disk_extra", 1, "10000"),
            ("mx_account_extra", 5, "300"),
            ("dns_operation_monthly:gtld", 1, "1000"),
        ],
    );
    assert_exact(&[Expect::pack(&p, 4, 4)]).await;
}

/// 3. Suspension (第20条) and resume: the suspended page, logins locked, the
///    zone and the mail kept; then everything as before.
pub async fn suspend_resume() {
    let api = Api::main();
    let p = names("s", 1);
    let job1 = api.submit(&sign(&pack("pack-dns.json", &p))).await;
    api.wait_succeeded(std::slice::from_ref(&job1), 120).await;
    let pw = ftp_passwords(&api.secrets(&job1).await);
    assert_eq!(pw.len(), 2);
    let host = api.placed(&p.id).await;
    assert_eq!(http_get(&p.domain, "/").0, "200");
    assert_eq!(
        shadow_locked(host, &p.user),
        (true, false),
        "active: not expired"
    );

    let job2 = api.submit(&sign(&pack("pack-dns-suspend.json", &p))).await;
    api.wait_succeeded(std::slice::from_ref(&job2), 120).await;
    let (code, body) = http_get(&p.domain, "/");
    assert_eq!(code, "503", "{body}");
    assert!(
        body.contains("第20条"),
        "the suspended page names 第20条: {body}"
    );
    assert_eq!(http_get(&format!("www.{}", p.domain), "/").0, "503");
    for (login, password) in &pw {
        assert_eq!(
            ftp_list(host, login, password).code,
            67,
            "FTP login {login} must be refused while suspended"
        );
    }
    assert!(
        census::ftp_users_on(host)
            .iter()
            .filter(|u| pw.contains_key(&u.login))
            .all(|u| u.locked)
    );
    assert_eq!(
        shadow_locked(host, &p.user),
        (true, true),
        "suspended: expired"
    );
    let (_, t) = tenant(&p.id).await;
    assert_eq!(t["suspended"], true, "{t:#}");
    assert_eq!(dig(&p.domain, "A").1, ip(host), "the zone keeps answering");
    assert_eq!(mailboxes(&p.id).await.1.len(), 2, "mailboxes are kept");

    let job3 = api.submit(&sign(&pack("pack-dns-resume.json", &p))).await;
    api.wait_succeeded(std::slice::from_ref(&job3), 120).await;
    assert!(
        api.secrets(&job3).await.is_empty(),
        "resume hands out no new passwords"
    );
    assert_eq!(http_get(&p.domain, "/").0, "200");
    for (login, password) in &pw {
        let out = ftp_list(host, login, password);
        assert!(
            out.ok,
            "FTP {login} with its old password after resume: {}",
            out.stderr
        );
    }
    assert_eq!(
        shadow_locked(host, &p.user),
        (true, false),
        "resumed: not expired"
    );
    let (_, t) = tenant(&p.id).await;
    assert_eq!(t["suspended"], false, "{t:#}");

    let by_job = BTreeMap::from([
        (job1.clone(), p.id.clone()),
        (job2.clone(), p.id.clone()),
        (job3.clone(), p.id.clone()),
    ]);
    let reports = census::wait_reports(&by_job, 60).await;
    assert_eq!(reports[&job1]["body"]["status"]["state"], "active");
    assert_eq!(reports[&job2]["body"]["status"]["state"], "suspended");
    assert_eq!(reports[&job3]["body"]["status"]["state"], "active");
    assert_exact(&[Expect::pack(&p, 2, 2)]).await;
}

/// 4. Termination (第25条) removes everything, counted on the backends.
pub async fn terminate() {
    let api = Api::main();
    let (w, p) = (names("tw", 1), names("tp", 1));
    let www = www_ssl(&w);
    let jobs = submit_all(&api, &[www.clone(), pack("pack-dns.json", &p)]).await;
    api.wait_succeeded(&jobs, 180).await;
    assert_exact(&[Expect::www(&w, 4), Expect::pack(&p, 2, 2)]).await;
    let (wh, ph) = (api.placed(&w.id).await, api.placed(&p.id).await);
    let cert = format!("{}/{}.crt", wh.tls_dir, w.domain);
    assert!(file_exists_on(wh, &cert), "the site's certificate {cert}");
    let archives_before = [archives(wh), archives(ph)];

    let mut www_end = revised(www, 2, "2027-02-26");
    www_end["status"] =
        json!({"state": "terminated", "effective": "2027-03-31", "notified_on": "2027-02-26"});
    let mut pack_end = pack("pack-dns-terminate.json", &p);
    pack_end["revision"] = json!(2);
    let ends = submit_all(&api, &[www_end, pack_end]).await;
    api.wait_succeeded(&ends, 180).await;

    assert_exact(&[Expect::nothing(&w), Expect::nothing(&p)]).await;
    assert!(!file_exists_on(wh, &cert), "certificate {cert} removed");
    assert!(!file_exists_on(
        wh,
        &format!("{}/{}.key", wh.tls_dir, w.domain)
    ));
    for n in [&w, &p] {
        for h in stack().web_hosts() {
            assert_ne!(
                http_get_on(h, &n.domain, "/").0,
                "200",
                "{} still served by {}",
                n.domain,
                h.name
            );
        }
        assert!(!zone_exists(&n.domain));
        assert_eq!(
            dig(&n.domain, "A").0,
            "REFUSED",
            "BIND no longer serves {}",
            n.domain
        );
    }
    // The homes were archived before removal (one archive each, new), on
    // the host each lived on.
    for (n, h, before) in [(&w, wh, &archives_before[0]), (&p, ph, &archives_before[1])] {
        let new: Vec<String> = archives(h)
            .into_iter()
            .filter(|a| !before.contains(a))
            .collect();
        assert_eq!(
            new.iter()
                .filter(|a| a.starts_with(&format!("{}-", n.user)))
                .count(),
            1,
            "one archive of {}'s home on {}: {new:?}",
            n.user,
            h.name
        );
    }
    let by_job: BTreeMap<String, String> = jobs
        .iter()
        .chain(&ends)
        .cloned()
        .zip([w.id.clone(), p.id.clone(), w.id.clone(), p.id.clone()])
        .collect();
    let reports = census::wait_reports(&by_job, 60).await;
    for j in &ends {
        assert_eq!(reports[j]["body"]["status"]["state"], "terminated");
        assert_eq!(reports[j]["body"]["provisioned"], json!([]));
    }
}

fn archives(host: &WebHost) -> BTreeSet<String> {
    stack()
        .exec_ok(&host.service, &["ls", "-1", "-A", &host.archive_dir])
        .lines()
        .map(str::to_string)
        .collect()
}

/// 5. A contract the rules refuse answers 422 with its findings and leaves
///    every backend as it was.
pub async fn rejected() {
    let api = Api::main();
    let n = names("r", 1);
    let contract = renamed("rejected-securemx-ssl.json", &n);
    // Earlier tests' reports must be in before counting.
    api.wait_outbox_empty(60).await;
    let before = snapshot().await;
    let jobs_before = api.jobs().await.len();

    let (status, body) = api.submit_raw(&sign(&contract)).await;
    assert_eq!(status, 422, "{body:#}");
    assert_eq!(body["outcome"], "rejected", "{body:#}");
    assert_eq!(body["contract_id"], n.id.as_str());
    let rules: BTreeSet<&str> = body["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert_eq!(
        rules,
        BTreeSet::from([
            "option-service-type",
            "securemx-option-prerequisite",
            "securemx-administrator"
        ]),
        "{body:#}"
    );
    for f in body["findings"].as_array().unwrap() {
        assert!(
            f["article"].as_str().is_some_and(|a| a.contains('条')),
            "every finding names its article: {f}"
        );
    }

    // Nothing queued, nothing created, nothing billed.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(api.jobs().await.len(), jobs_before, "no job was queued");
    assert_eq!(snapshot().await, before, "the backends changed");
    assert_exact(&[Expect::nothing(&n)]).await;
    let rej = api.rejections().await;
    assert!(
        rej.iter()
            .any(|r| r["contract_id"] == n.id.as_str() && r["kind"] == "rules"),
        "the refusal is recorded: {rej:#?}"
    );
}
