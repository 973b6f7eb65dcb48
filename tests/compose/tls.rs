//! HTTPS inside the stack: the Secure MX mock and the billing sink serve
//! certificates from the stack's own CA (made by the init service), which
//! hostwright trusts through each endpoint's `ca_file`. Here the same
//! services are reached from the host with the real clients: trusting the
//! stack's CA works; the system trust store, or another CA, is refused as a
//! permanent certificate error, and nothing reaches the service.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hostwright_adapter::{Adapter, Resource, Secret};
use hostwright_billing::{DeliveryError, Reporter};
use hostwright_securemx::{SecureMxAdapter, SecureMxConfig};

use crate::clients::billing_records;
use crate::stack::stack;

fn mx_adapter(ca_file: Option<PathBuf>) -> SecureMxAdapter {
    SecureMxAdapter::new(SecureMxConfig {
        base_url: stack().var("HW_COMPOSE_SECUREMX_URL").to_string(),
        ca_file,
        api_key_file: stack().var("HW_COMPOSE_SECUREMX_KEY_FILE").into(),
        concurrency: None,
        timeout_secs: Some(5),
        rate_limit_per_s: None,
        burst: None,
    })
    .expect("adapter config")
}

fn reporter(ca_file: Option<&Path>) -> Reporter {
    let secret = std::fs::read_to_string(stack().var("HW_COMPOSE_BILLING_SECRET_FILE"))
        .expect("billing secret");
    Reporter::new(
        format!(
            "{}/v1/billable-states",
            stack().var("HW_COMPOSE_BILLING_URL").trim_end_matches('/')
        ),
        Secret::new(secret.trim()),
        Duration::from_secs(5),
        ca_file,
    )
    .expect("reporter config")
}

pub async fn https_with_the_stack_ca() {
    assert!(
        stack()
            .var("HW_COMPOSE_SECUREMX_URL")
            .starts_with("https://")
    );
    assert!(
        stack()
            .var("HW_COMPOSE_BILLING_URL")
            .starts_with("https://")
    );
    let dir = tempfile::tempdir().unwrap();
    let other =
        hostwright_tls::testca::TestCa::new("not the stack's CA").write_ca(dir.path(), "other.pem");
    let stack_ca = PathBuf::from(stack().var("HW_COMPOSE_CA"));
    let nobody = Resource {
        kind: "mx_tenant".into(),
        key: "C-TLSPROBE".into(),
        contract_id: "C-TLSPROBE".into(),
        spec: serde_json::json!({
            "tenant": "C-TLSPROBE",
            "domains": ["tlsprobe.example"],
            "administrator": {"name": "probe", "email": "probe@tlsprobe.example"},
            "accounts_limit": 1,
            "disk_units": 1
        }),
    };

    // Trusting the stack's CA: a real answer (the tenant does not exist).
    let obs = mx_adapter(Some(stack_ca.clone())).observe(&nobody).await;
    assert!(
        obs.is_ok(),
        "Secure MX over HTTPS with the stack CA: {obs:?}"
    );

    for ca in [None, Some(other.clone())] {
        let e = mx_adapter(ca.clone()).observe(&nobody).await.unwrap_err();
        assert!(!e.is_transient(), "{ca:?}: {e:?}");
        assert!(e.to_string().contains("not trusted"), "{ca:?}: {e}");
    }

    let before = billing_records().await.len();
    for ca in [None, Some(other.as_path())] {
        let e = reporter(ca)
            .deliver("tls-probe", b"{\"contract_id\":\"C-TLSPROBE\"}")
            .await
            .unwrap_err();
        assert!(matches!(e, DeliveryError::Certificate(_)), "{ca:?}: {e}");
        assert!(!e.is_transient());
    }
    assert_eq!(billing_records().await.len(), before, "nothing got through");
    // hostwright's own reports reach billing over HTTPS with the stack's CA:
    // t01 and t09 count them there.
}
