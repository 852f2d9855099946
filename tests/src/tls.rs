//! Certificates made in the tests (rcgen): a certificate authority and a server certificate for
//! 127.0.0.1 and localhost, and HTTPS clients that trust only given authorities.

use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, PublicKeyData};
use sha2::Digest;

/// A test certificate authority and one server certificate for 127.0.0.1 and localhost.
pub struct Pki {
    /// The authority's certificate (DER).
    pub ca_der: Vec<u8>,
    /// The server certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
    /// base64 of the SHA-256 of the server key's SubjectPublicKeyInfo (Chromium's
    /// `--ignore-certificate-errors-spki-list`).
    pub spki_sha256: String,
}

impl Pki {
    /// A new authority named `name` and a certificate it signed.
    pub fn new(name: &str) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("session-log test CA {name}"));
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let spki = sha2::Sha256::digest(key.subject_public_key_info());
        Pki {
            ca_der: ca.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
        }
    }

    /// Writes the certificate and key as `cert.pem` and `key.pem` in `dir` (replacing them).
    pub fn install(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// An HTTPS client that trusts only the given authorities; a fresh connection per agent.
pub fn agent(cas: &[&[u8]]) -> ureq::Agent {
    let roots: Vec<ureq::tls::Certificate<'static>> =
        cas.iter().map(|der| ureq::tls::Certificate::from_der(der).to_owned()).collect();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .build();
    ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).build().into()
}
