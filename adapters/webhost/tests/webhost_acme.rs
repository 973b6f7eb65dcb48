//! vhost certificates from an ACME directory: Debian's `pebble` on loopback
//! (`scripts/testenv/services/pebble.sh`), its HTTP-01 challenges fetched
//! from the test web host's nginx through the vhost itself, the result
//! checked over a real TLS connection to that nginx.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use hostwright_adapter::{Adapter, Comparison, testenv::var};
use hostwright_webhost::acme::AcmeConfig;
use hostwright_webhost::{WebhostAdapter, WebhostConfig};

fn acme_config(account_dir: &std::path::Path, renew_days: u32) -> WebhostConfig {
    let mut cfg = config();
    cfg.tls_ca_cert = None;
    cfg.tls_ca_key = None;
    cfg.acme = Some(AcmeConfig {
        directory: var("HW_ACME_DIRECTORY"),
        contact: vec!["mailto:ops@hostwright.test".into()],
        account_file: account_dir.join("acme-account.json"),
        ca_file: Some(var("HW_ACME_CA_FILE").into()),
        renew_days,
        challenge_dir: format!("{}/acme-challenge", var("HW_WEB_ROOT")),
        timeout_seconds: 60,
    });
    cfg
}

/// Pebble's root of this run (it makes a new one at every start).
async fn pebble_root() -> rustls::pki_types::CertificateDer<'static> {
    let client =
        hostwright_tls::client_builder(Some(std::path::Path::new(&var("HW_ACME_CA_FILE"))))
            .unwrap()
            .build()
            .unwrap();
    let pem = client
        .get(format!("{}/roots/0", var("HW_ACME_MANAGEMENT")))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    rustls::pki_types::CertificateDer::from(p.contents)
}

/// What the test nginx presents for `name` on its HTTPS port, verified
/// against pebble's root only (the handshake fails otherwise): the leaf's
/// DER.
async fn served_leaf(name: &str, root: &rustls::pki_types::CertificateDer<'static>) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{}", var("HW_WEB_HTTPS_PORT")))
        .await
        .unwrap();
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let tls = connector
        .connect(server_name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS to {name} verified by pebble's root: {e}"));
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// (issuer CN, DNS names, serial) of a certificate.
fn describe(der: &[u8]) -> (String, Vec<String>, String) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let issuer = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    (issuer, names, cert.raw_serial_as_string())
}

#[tokio::test]
async fn a_tls_vhost_gets_its_certificate_from_the_acme_directory_and_renews_it() {
    let started = Instant::now();
    let accounts = tempfile::tempdir().unwrap();
    let a = WebhostAdapter::new(acme_config(accounts.path(), 30)).unwrap();
    let user = unique_user();
    let _cleanup = Cleanup { user: user.clone() };
    let domain = format!("{user}.example.test");
    let alias = format!("www.{domain}");
    let root = var("HW_WEB_ROOT");
    a.ensure(&ctx(), &webspace(&user, 100, false))
        .await
        .unwrap();

    // --- issuance: a new vhost, its challenges answered by itself ----------
    let spec = vhost(&domain, &user, &[&alias], true, false);
    let vh = a.ensure(&ctx(), &spec).await.unwrap();
    assert_eq!(vh.facts["cert_issued"], true, "{}", vh.facts);
    assert_eq!(vh.facts["cert_issuer"], "acme", "{}", vh.facts);
    let conf = std::fs::read_to_string(format!("{root}/sites/{domain}.conf")).unwrap();
    assert!(
        conf.contains(&format!(
            "location ^~ /.well-known/acme-challenge/ {{\n        alias {root}/acme-challenge/;"
        )),
        "{conf}"
    );
    // The account was made and kept 0600; no challenge token is left.
    use std::os::unix::fs::PermissionsExt;
    let account = accounts.path().join("acme-account.json");
    assert_eq!(
        std::fs::metadata(&account).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = format!("{root}/tls/{domain}.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let left: Vec<_> = std::fs::read_dir(format!("{root}/acme-challenge"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "tokens left behind: {left:?}");

    // nginx serves it, for both names, chained to pebble's root.
    let pebble = pebble_root().await;
    let leaf = served_leaf(&domain, &pebble).await;
    let (issuer, names, serial) = describe(&leaf);
    assert!(issuer.starts_with("Pebble Intermediate CA"), "{issuer}");
    let mut want = vec![domain.clone(), alias.clone()];
    want.sort();
    assert_eq!(names, want);
    assert_eq!(describe(&served_leaf(&alias, &pebble).await).2, serial);
    assert!(wait_for(&domain, false, 200).contains("hostwright default page"));

    // --- kept: a valid certificate for the same names outside the window ---
    let cert_file = format!("{root}/tls/{domain}.crt");
    let before = std::fs::read(&cert_file).unwrap();
    let vh2 = a.ensure(&ctx(), &spec).await.unwrap();
    assert_eq!(vh2.facts["cert_issued"], false, "{}", vh2.facts);
    assert_eq!(std::fs::read(&cert_file).unwrap(), before);
    assert_eq!(
        a.compare(std::slice::from_ref(&spec)).await[0],
        Ok(Comparison::Matches)
    );

    // --- renewal: the same certificate seen with a window wider than its
    // life (pebble's certificates last five years) is drift, and `ensure`
    // (what a repair runs) renews it from the directory, on the same account.
    let wide = WebhostAdapter::new(acme_config(accounts.path(), 3650)).unwrap();
    match &wide.compare(std::slice::from_ref(&spec)).await[0] {
        Ok(Comparison::Differs(d)) => {
            assert_eq!(d.len(), 1, "{d:?}");
            assert_eq!(d[0].field, "certificate");
            assert!(
                d[0].says.contains("renewal window (3650 days)"),
                "{}",
                d[0].says
            );
        }
        other => panic!("want the certificate as drift, got {other:?}"),
    }
    let renewed = wide.ensure(&ctx(), &spec).await.unwrap();
    assert_eq!(renewed.facts["cert_issued"], true, "{}", renewed.facts);
    assert_eq!(renewed.facts["reloaded"], true, "{}", renewed.facts);
    assert_ne!(std::fs::read(&cert_file).unwrap(), before);
    let (issuer2, names2, serial2) = describe(&served_leaf(&domain, &pebble).await);
    assert!(issuer2.starts_with("Pebble Intermediate CA"), "{issuer2}");
    assert_eq!(names2, want);
    assert_ne!(serial2, serial, "nginx serves the renewed certificate");
    // The usual window finds nothing to do.
    assert_eq!(
        a.compare(std::slice::from_ref(&spec)).await[0],
        Ok(Comparison::Matches)
    );

    a.remove(&ctx(), &spec).await.unwrap();
    eprintln!("ACME issuance, keep and renewal: {:?}", started.elapsed());
}

#[tokio::test]
async fn an_internal_ca_and_acme_together_are_refused() {
    let accounts = tempfile::tempdir().unwrap();
    let mut cfg = acme_config(accounts.path(), 30);
    cfg.tls_ca_cert = Some(var("HW_TLS_CA_CERT").into());
    cfg.tls_ca_key = Some(var("HW_TLS_CA_KEY").into());
    let e = WebhostAdapter::new(cfg).unwrap_err().to_string();
    assert!(e.contains("keep one"), "{e}");
}
