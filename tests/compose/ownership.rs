//! Ownership on the whole stack (issue #11): two customers' contracts for
//! one domain, sent at the same moment. Exactly one is accepted; the other
//! is refused at intake, queues nothing and leaves no trace on any backend;
//! what exists carries the winner's markers.

use crate::census::{Expect, assert_exact, ftp_users, unix_accounts};
use crate::clients::{Api, dig};
use crate::contracts::{names, sign, www_plain};
use crate::stack::stack;

/// 12. Two contracts race for one domain; the loser touches nothing.
pub async fn race_for_a_domain() {
    let api = Api::main();
    let winner_a = names("own", 1);
    let mut winner_b = names("own", 2);
    // The same domain, another customer (`www_plain` derives the customer
    // from the contract id).
    winner_b.domain = winner_a.domain.clone();
    let (a, b) = (www_plain(&winner_a), www_plain(&winner_b));
    let (ea, eb) = (sign(&a), sign(&b));
    let jobs_before = api.jobs().await.len();
    let ((sa, ba), (sb, bb)) = tokio::join!(api.submit_raw(&ea), api.submit_raw(&eb));
    let accepted: Vec<bool> = [sa, sb].iter().map(|s| *s == 202).collect();
    assert_eq!(
        accepted.iter().filter(|x| **x).count(),
        1,
        "exactly one holder: {sa} {ba:#} / {sb} {bb:#}"
    );
    let (winner, loser, job, refusal, loser_status) = if accepted[0] {
        (&winner_a, &winner_b, ba, bb, sb)
    } else {
        (&winner_b, &winner_a, bb, ba, sa)
    };
    assert_eq!(loser_status, 422, "{refusal:#}");
    let rules: Vec<&str> = refusal["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(rules.contains(&"domain-taken"), "{refusal:#}");
    assert!(
        !refusal.to_string().contains(&winner.id),
        "the refusal does not say who holds it: {refusal:#}"
    );
    let job_id = job["job_id"]
        .as_str()
        .expect("the winner's job")
        .to_string();
    api.wait_succeeded(std::slice::from_ref(&job_id), 120).await;
    assert_eq!(
        api.jobs().await.len(),
        jobs_before + 1,
        "one job, the winner's"
    );

    // The winner has exactly its resources; the loser nothing of its own.
    assert_exact(&[Expect::www(winner, 1)]).await;
    assert!(
        !unix_accounts().iter().any(|a| a.contract == loser.id),
        "no account of the loser"
    );
    assert!(
        !ftp_users()
            .iter()
            .any(|u| u.login == loser.user || u.login.starts_with(&format!("{}_", loser.user))),
        "no FTP login of the loser"
    );
    // The vhost file (on the winner's web host) and the zone name the
    // winner.
    let host = api.placed(&winner.id).await;
    let conf = stack().exec_ok(
        &host.service,
        &[
            "head",
            "-n",
            "1",
            &format!("{}/{}.conf", host.sites_dir, winner.domain),
        ],
    );
    assert!(
        conf.contains(&format!("(contract {},", winner.id)),
        "{conf}"
    );
    let (status, owner) = dig(&format!("_hostwright-owner.{}", winner.domain), "TXT");
    assert_eq!(status, "NOERROR");
    assert_eq!(owner, [format!("\"{}\"", winner.id)]);
    let rej = api.rejections().await;
    assert!(
        rej.iter()
            .any(|r| r["contract_id"] == loser.id.as_str() && r["kind"] == "rules"),
        "the refusal is recorded: {rej:#?}"
    );
}
