//! A throw-away certificate authority for tests: a CA certificate written to
//! a PEM file (what a client's `ca_file` points at) and server certificates
//! for `localhost` and 127.0.0.1 signed by it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};

use crate::server::CertFiles;

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        let cert = p.self_signed(&key).expect("CA certificate");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A client trusting only the CA in `ca_file` (see [`TestCa::write_ca`]).
    pub fn client(ca_file: &Path) -> reqwest::Client {
        crate::client_builder(Some(ca_file))
            .expect("CA file readable")
            .build()
            .expect("client builds")
    }

    /// Writes the CA certificate to `dir/<file>` and returns the path.
    pub fn write_ca(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.cert_pem).expect("write CA file");
        path
    }

    /// A server certificate for `localhost` and 127.0.0.1 as (cert PEM, key PEM).
    pub fn server_pem(&self) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
        let cert = p.signed_by(&key, &self.issuer).expect("server certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a server certificate and key as `dir/<stem>.crt` and
    /// `dir/<stem>.key`.
    pub fn write_server(&self, dir: &Path, stem: &str) -> CertFiles {
        let (cert, key) = self.server_pem();
        let files = CertFiles {
            cert_file: dir.join(format!("{stem}.crt")),
            key_file: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert_file, cert).expect("write certificate");
        std::fs::write(&files.key_file, key).expect("write key");
        files
    }
}
