//! The end-to-end and fault suite on the docker compose stack (issue #5).
//!
//! Everything is driven and checked from outside the stack with real
//! clients: hostwright's HTTP API and CLI, curl (HTTP, HTTPS, FTP), dig, the
//! Secure MX mock's and the billing sink's APIs, `docker exec` for counting
//! on the backends, and docker itself for the faults. The stack has two web
//! hosts and two name servers: every test ends with the exact census of
//! each (`census::assert_exact`), its contracts on the hosts they were
//! placed on.
//!
//! The tests share one stack and must run one at a time:
//! `scripts/compose-test.sh` brings the stack up, runs
//! `cargo test --features compose-tests --test compose -- --test-threads=1`
//! and takes the stack down. Every test uses contract ids and domains unique
//! to the run, so a second run on the same stack never meets the first.
//! Names are numbered so that libtest's alphabetical order is the order below.

mod census;
mod clients;
mod contracts;
mod e2e;
mod faults;
mod fleet;
mod guard;
mod moves;
mod ownership;
mod stack;
mod tls;

macro_rules! compose_test {
    ($name:ident, $body:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let started = std::time::Instant::now();
            $body().await;
            eprintln!(
                "{} took {:.1}s",
                stringify!($name),
                started.elapsed().as_secs_f64()
            );
        }
    };
}

compose_test!(t01_www_securemx_and_pack_are_provisioned, e2e::provision);
compose_test!(t02_an_option_change_is_applied, e2e::option_change);
compose_test!(t03_suspension_and_resume, e2e::suspend_resume);
compose_test!(t04_termination_removes_everything, e2e::terminate);
compose_test!(t05_a_rejected_contract_touches_nothing, e2e::rejected);
compose_test!(
    t06_hostwright_killed_mid_batch_of_50,
    faults::kill_hostwright
);
compose_test!(t07_dns_stopped_then_rerun_failed, faults::dns_stopped);
compose_test!(
    t08_webhost_cut_from_the_network,
    faults::webhost_disconnected
);
compose_test!(t09_billing_down_while_jobs_finish, faults::billing_down);
compose_test!(t10_two_workers_share_a_batch, faults::two_workers);
compose_test!(
    t11_https_to_securemx_and_billing,
    tls::https_with_the_stack_ca
);
compose_test!(
    t12_two_contracts_race_for_one_domain,
    ownership::race_for_a_domain
);
compose_test!(
    t13_placement_follows_the_policy,
    fleet::placement_follows_the_policy
);
compose_test!(
    t14_web_host_stopped_mid_batch,
    fleet::web_host_stopped_mid_batch
);
compose_test!(
    t15_secondary_follows_the_primary,
    fleet::secondary_follows_the_primary
);
compose_test!(
    t16_drain_then_move_with_ftp_files,
    moves::drain_then_move_with_ftp_files
);
compose_test!(t17_hostwright_killed_mid_move, moves::killed_mid_move);
