//! Certificates for vhosts, issued on the hostwright side by the configured
//! internal CA (`tls_ca_cert` + `tls_ca_key`) with `rcgen` (or, with
//! `[acme]`, by an ACME directory: [`crate::acme`], same `.meta` files).
//!
//! Only the issued certificate and its fresh key travel to the host. A small
//! metadata file next to them (`<domain>.meta`) records the names, the expiry
//! and the CA's fingerprint, so an `ensure` can tell without parsing X.509 on
//! the host whether the installed certificate still fits and is not re-issued
//! (and nginx not reloaded) on every run.

use chrono::{DateTime, Datelike, Duration, Utc};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use sha2::{Digest, Sha256};

/// Certificates live this long; re-issued when fewer than [`RENEW_DAYS`] remain.
pub const VALID_DAYS: i64 = 397;
pub const RENEW_DAYS: i64 = 30;

/// Why a certificate could not be issued (configuration: permanent).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA certificate or key is unusable: {0}")]
    Ca(rcgen::Error),
    #[error("cannot issue the certificate: {0}")]
    Issue(rcgen::Error),
}

/// A loaded CA.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    /// Hex SHA-256 of the CA certificate PEM, recorded in `.meta` files.
    pub fingerprint: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// An issued certificate. `key_pem` is a private key: never log it.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: DateTime<Utc>,
}

impl Ca {
    pub fn load(cert_path: &str, key_path: &str) -> Result<Ca, TlsError> {
        let read = |p: &str| {
            std::fs::read_to_string(p).map_err(|source| TlsError::Read {
                path: p.to_string(),
                source,
            })
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        // Fail early (at start-up) on an unusable pair.
        let key = KeyPair::from_pem(&key_pem).map_err(TlsError::Ca)?;
        Issuer::from_ca_cert_pem(&cert_pem, key).map_err(TlsError::Ca)?;
        let fingerprint = hex::encode(Sha256::digest(cert_pem.as_bytes()));
        Ok(Ca {
            cert_pem,
            key_pem,
            fingerprint,
        })
    }

    /// Issues a server certificate for `names` (the first is the CN).
    pub fn issue(&self, names: &[String], now: DateTime<Utc>) -> Result<Issued, TlsError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(TlsError::Ca)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key).map_err(TlsError::Ca)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(TlsError::Issue)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0].clone());
        params.distinguished_name = dn;
        let start = now - Duration::days(1);
        let end = now + Duration::days(VALID_DAYS);
        params.not_before = date_time_ymd(start.year(), start.month() as u8, start.day() as u8);
        params.not_after = date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(TlsError::Issue)?;
        let cert = params.signed_by(&key, &issuer).map_err(TlsError::Issue)?;
        let not_after = end
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }

    /// The `.meta` contents describing a certificate for `names`.
    pub fn meta(&self, names: &[String], not_after: DateTime<Utc>) -> String {
        meta_text(names, not_after, &self.fingerprint)
    }

    /// Whether an installed certificate described by `meta` still serves
    /// `names`, comes from this CA and has more than [`RENEW_DAYS`] left.
    pub fn meta_is_current(&self, meta: &str, names: &[String], now: DateTime<Utc>) -> bool {
        meta_fits(meta, names, &self.fingerprint, RENEW_DAYS, now)
    }
}

/// The `.meta` contents describing a certificate for `names` that expires
/// at `not_after`, issued by `source` (the internal CA's fingerprint, or
/// `acme:<directory URL>`).
pub fn meta_text(names: &[String], not_after: DateTime<Utc>, source: &str) -> String {
    format!(
        "names={}\nnot_after={}\nca={}\n",
        names.join(","),
        not_after.timestamp(),
        source
    )
}

/// Whether the certificate `meta` describes serves exactly `names`, comes
/// from `source` and has more than `renew_days` days left at `now`.
pub fn meta_fits(
    meta: &str,
    names: &[String],
    source: &str,
    renew_days: i64,
    now: DateTime<Utc>,
) -> bool {
    let mut got_names = None;
    let mut not_after = None;
    let mut ca = None;
    for line in meta.lines() {
        match line.split_once('=') {
            Some(("names", v)) => got_names = Some(v.to_string()),
            Some(("not_after", v)) => not_after = v.parse::<i64>().ok(),
            Some(("ca", v)) => ca = Some(v.to_string()),
            _ => {}
        }
    }
    got_names.as_deref() == Some(names.join(",").as_str())
        && ca.as_deref() == Some(source)
        && not_after.is_some_and(|t| t - now.timestamp() > renew_days * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_ca(dir: &std::path::Path) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "unit CA");
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("ca.key"), key.serialize_pem()).unwrap();
        Ca::load(
            dir.join("ca.crt").to_str().unwrap(),
            dir.join("ca.key").to_str().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn issues_and_tracks_currency() {
        let dir = tempfile::tempdir().unwrap();
        let ca = test_ca(dir.path());
        let names = vec!["example.jp".to_string(), "www.example.jp".to_string()];
        let now = Utc::now();
        let issued = ca.issue(&names, now).unwrap();
        assert!(issued.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(issued.key_pem.contains("PRIVATE KEY"));
        let meta = ca.meta(&names, issued.not_after);
        assert!(ca.meta_is_current(&meta, &names, now));
        assert!(!ca.meta_is_current(&meta, &names[..1], now));
        assert!(!ca.meta_is_current(&meta, &names, now + Duration::days(VALID_DAYS - 10)));
        assert!(!ca.meta_is_current("garbage", &names, now));
        // Another source (an ACME directory) is not this CA's; a wider
        // renewal window takes the same certificate in.
        let acme = meta_text(&names, issued.not_after, "acme:https://acme.example/dir");
        assert!(!ca.meta_is_current(&acme, &names, now));
        assert!(meta_fits(
            &acme,
            &names,
            "acme:https://acme.example/dir",
            30,
            now
        ));
        assert!(!meta_fits(
            &acme,
            &names,
            "acme:https://acme.example/dir",
            VALID_DAYS,
            now
        ));
    }

    #[test]
    fn missing_ca_files_are_reported() {
        assert!(matches!(
            Ca::load("/nonexistent/ca.crt", "/nonexistent/ca.key"),
            Err(TlsError::Read { .. })
        ));
    }
}
