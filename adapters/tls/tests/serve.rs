//! A real TLS server and client on loopback: the CA file is trusted, another
//! CA is refused as a certificate error, a renewed certificate is served
//! without a restart, and the peer address reaches the handler.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use hostwright_tls::server::{self, CertFiles};
use hostwright_tls::testca::TestCa;

async fn start(files: CertFiles) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    );
    let tls = server::tls_config(files).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, app, Some(tls), async {
        let _ = rx.await;
    }));
    (addr, tx)
}

async fn get_peer(addr: SocketAddr, ca: &std::path::Path) -> Result<String, reqwest::Error> {
    TestCa::client(ca)
        .get(format!("https://localhost:{}/peer", addr.port()))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

#[tokio::test]
async fn trusted_ca_works_other_ca_is_a_certificate_error_and_renewal_needs_no_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("hostwright test CA");
    let other = TestCa::new("someone else's CA");
    let ca_file = ca.write_ca(dir.path(), "ca.pem");
    let other_file = other.write_ca(dir.path(), "other.pem");
    let files = ca.write_server(dir.path(), "server");
    let (addr, stop) = start(files.clone()).await;

    assert_eq!(get_peer(addr, &ca_file).await.unwrap(), "127.0.0.1");

    let err = get_peer(addr, &other_file).await.unwrap_err();
    let msg = hostwright_tls::certificate_error(&err).expect("a certificate error");
    assert!(
        msg.contains("not trusted") && msg.contains("ca_file"),
        "{msg}"
    );

    // Renew with the other CA's certificate: the next connection shows it.
    let (cert, key) = other.server_pem();
    std::fs::write(&files.key_file, key).unwrap();
    std::fs::write(&files.cert_file, cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if get_peer(addr, &other_file).await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "renewed certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(get_peer(addr, &ca_file).await.is_err());
    let _ = stop.send(());
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let a = ca.write_server(dir.path(), "a");
    let b = ca.write_server(dir.path(), "b");
    let mixed = CertFiles {
        cert_file: a.cert_file,
        key_file: b.key_file,
    };
    let e = server::tls_config(mixed).unwrap_err().to_string();
    assert!(e.contains("does not belong to the certificate"), "{e}");
    let e = server::tls_config(CertFiles {
        cert_file: dir.path().join("nope.crt"),
        key_file: dir.path().join("nope.key"),
    })
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("reading certificate file"), "{e}");
}
