//! Serving an axum router over HTTP or HTTPS.
//!
//! With TLS, the certificate chain and key come from PEM files that are
//! checked for changes (size and modification time) at most once a second,
//! on a handshake: a renewed certificate is served from the next connection
//! on, without a restart. A file that is mid-write or broken is reported and
//! the previous certificate kept.
//!
//! Every request carries the peer address as
//! `axum::extract::ConnectInfo<SocketAddr>`, with or without TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::TlsError;

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the files are looked at, at most.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// The certificate chain and private key files of a TLS server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    /// PEM: the server's certificate first, then intermediates.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: (Stamp, Stamp),
    checked: Instant,
}

/// Resolves every handshake to the current certificate, re-reading the
/// files when they changed.
pub struct ReloadingCert {
    files: CertFiles,
    current: Mutex<Loaded>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish()
    }
}

/// Reads and checks a certificate chain and its key.
pub fn load_certified_key(files: &CertFiles) -> Result<CertifiedKey, TlsError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let invalid = |what: &'static str, path: &Path, message: String| TlsError::Invalid {
        what,
        path: path.to_path_buf(),
        message,
    };
    let cert_pem = read("certificate file", &files.cert_file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("certificate file", &files.cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(invalid(
            "certificate file",
            &files.cert_file,
            "holds no PEM certificate".into(),
        ));
    }
    let key_pem = read("key file", &files.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            "key file",
            &files.key_file,
            format!("no usable private key: {e}"),
        )
    })?;
    super::install_crypto_provider();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid("key file", &files.key_file, e.to_string()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        invalid(
            "key file",
            &files.key_file,
            format!(
                "does not belong to the certificate in {}: {e}",
                files.cert_file.display()
            ),
        )
    })?;
    Ok(ck)
}

impl ReloadingCert {
    /// Loads the files once; an error here stops the server from starting.
    pub fn new(files: CertFiles) -> Result<Arc<ReloadingCert>, TlsError> {
        let stamps = (stamp(&files.cert_file), stamp(&files.key_file));
        let key = Arc::new(load_certified_key(&files)?);
        Ok(Arc::new(ReloadingCert {
            files,
            current: Mutex::new(Loaded {
                key,
                stamps,
                checked: Instant::now(),
            }),
        }))
    }

    /// The certificate to present now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().expect("certificate lock");
        if cur.checked.elapsed() >= RELOAD_CHECK {
            cur.checked = Instant::now();
            let stamps = (stamp(&self.files.cert_file), stamp(&self.files.key_file));
            if stamps != cur.stamps {
                match load_certified_key(&self.files) {
                    Ok(k) => {
                        tracing::info!(cert = %self.files.cert_file.display(), "TLS certificate reloaded");
                        cur.key = Arc::new(k);
                        cur.stamps = stamps;
                    }
                    // Often a file half-written: try again on a later check.
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate not reloaded; serving the previous one")
                    }
                }
            }
        }
        cur.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server config presenting `cert`'s certificate, speaking HTTP/2
/// and HTTP/1.1.
pub fn server_config(cert: Arc<ReloadingCert>) -> Arc<rustls::ServerConfig> {
    super::install_crypto_provider();
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Loads `files` and builds the server config in one go.
pub fn tls_config(files: CertFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(server_config(ReloadingCert::new(files)?))
}

/// Serves `app` on `listener` until `shutdown` completes, over TLS when
/// `tls` is given. Connections still open then get a few seconds to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                // Out of file descriptors and the like: pause, don't spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let svc = app.map_request(move |mut req: axum::http::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(svc),
            );
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout were dropped");
    }
    Ok(())
}

/// The TLS config for an optional pair of files (a server's `--tls-cert` and
/// `--tls-key`); `None` serves plain HTTP.
pub fn optional_tls(
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    match (cert_file, key_file) {
        (Some(cert_file), Some(key_file)) => Ok(Some(tls_config(CertFiles {
            cert_file,
            key_file,
        })?)),
        (None, None) => Ok(None),
        (Some(p), None) | (None, Some(p)) => Err(TlsError::Invalid {
            what: "TLS file",
            path: p,
            message: "a certificate needs its key and a key its certificate".into(),
        }),
    }
}

/// Completes on SIGTERM or SIGINT: the shutdown future of a server binary.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
