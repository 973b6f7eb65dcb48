//! TLS for hostwright's HTTP clients and servers, in one place so every
//! endpoint behaves the same way.
//!
//! - Clients ([`client_builder`]): reqwest over rustls with the `ring`
//!   provider. Without a CA file the system's trust store is used (through
//!   rustls-platform-verifier); with one, *only* that file's certificates are
//!   trusted, which is what a private CA wants (a public CA can then not be
//!   used to impersonate the endpoint). A certificate the client does not
//!   trust is a configuration problem, never a passing outage:
//!   [`certificate_error`] finds it in a reqwest error so callers can report
//!   it as permanent.
//! - Servers ([`server`]): an axum router served over TLS from a certificate
//!   and key file that are re-read when they change, so a renewed
//!   certificate is picked up without a restart.

use std::path::{Path, PathBuf};
use std::sync::Once;

pub mod server;
#[cfg(feature = "test-ca")]
pub mod testca;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path}: {message}")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("URL {url:?}: {message}")]
    Url { url: String, message: String },
}

/// The TLS settings of one outgoing endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// PEM file with the CA certificate(s) to trust for this endpoint
    /// instead of the system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

static PROVIDER: Once = Once::new();

/// Makes `ring` the process's rustls crypto provider (once; a provider
/// installed earlier by someone else is kept).
pub fn install_crypto_provider() {
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads every certificate of a PEM file (a CA bundle may hold several).
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        what: "CA file",
        path: path.to_path_buf(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| TlsError::Invalid {
        what: "CA file",
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            what: "CA file",
            path: path.to_path_buf(),
            message: "holds no PEM certificate".into(),
        });
    }
    Ok(certs)
}

/// A reqwest client builder that speaks HTTPS through rustls, trusting only
/// `ca_file`'s certificates when one is given.
pub fn client_builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, TlsError> {
    install_crypto_provider();
    let builder = reqwest::Client::builder();
    Ok(match ca_file {
        Some(path) => builder.tls_certs_only(read_ca_file(path)?),
        None => builder,
    })
}

/// A client with the system's trust store and default settings. Use this
/// (or [`client_builder`]) instead of `reqwest::Client::new()`: reqwest is
/// built without a crypto provider of its own and panics without one.
pub fn client() -> reqwest::Client {
    client_builder(None)
        .expect("no CA file to read")
        .build()
        .expect("a default HTTP client builds")
}

/// Checks that `url` is an absolute `http://` or `https://` URL that can
/// carry a path.
pub fn check_url(url: &str) -> Result<reqwest::Url, TlsError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| TlsError::Url {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
        return Err(TlsError::Url {
            url: url.to_string(),
            message: "must be an http:// or https:// URL".into(),
        });
    }
    Ok(parsed)
}

/// When `err` failed because the peer's certificate was refused (unknown
/// issuer, wrong name, expired, ...), a sentence saying so. Retrying cannot
/// fix that: callers report it as a permanent error.
pub fn certificate_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(msg) = rustls_refusal(e) {
            return Some(msg);
        }
        // io::Error::source() skips the error it wraps: step into it instead.
        cur = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn rustls_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    match e.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(why) => Some(format!(
            "TLS: the server's certificate is not trusted ({why:?}); check the endpoint's ca_file"
        )),
        rustls::Error::NoCertificatesPresented => {
            Some("TLS: the server presented no certificate".into())
        }
        rustls::Error::AlertReceived(alert) => {
            Some(format!("TLS: the server refused the handshake ({alert:?})"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_or_https() {
        assert!(check_url("https://mx.example/v1").is_ok());
        assert!(check_url("http://127.0.0.1:1").is_ok());
        let e = check_url("ftp://x").unwrap_err().to_string();
        assert!(e.contains("http:// or https://"), "{e}");
        assert!(check_url("mailto:a@b").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not pem").unwrap();
        let e = read_ca_file(&p).unwrap_err().to_string();
        assert!(e.contains("CA file") && e.contains("ca.pem"), "{e}");
        let e = read_ca_file(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("reading CA file"), "{e}");
    }
}
