//! HTTPS from the binary: the certificate chain and private key (PEM files, `--tls-cert` and
//! `--tls-key`) served with rustls (the `ring` provider; TLS 1.2 and 1.3, HTTP/1.1), read again on
//! `SIGHUP` so a renewed certificate needs no restart.
//!
//! The certificate lives behind a [`CertResolver`] that rustls asks at every handshake: a reload
//! swaps it for the handshakes that follow, and connections already open keep theirs, so no
//! request in flight is cut. A reload that cannot read the files, or whose key does not match its
//! certificate, keeps the certificate in force and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The PEM files of the certificate chain (leaf first) and of its private key (PKCS#8, PKCS#1 or
/// SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Why a certificate or key could not be loaded; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable, or holds no usable PEM block.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The key is not the certificate's, or is of a kind rustls cannot sign with.
    #[error("{} and {}: {message}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads `files` into a certificate with its signing key.
///
/// Errors: [`TlsError::File`] for a missing or unreadable file, one without a certificate or key
/// block; [`TlsError::Pair`] for a key rustls cannot use or that does not match the certificate.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let file_error = |path: &Path, message: String| TlsError::File { path: path.to_owned(), message };
    std::fs::metadata(&files.cert).map_err(|e| file_error(&files.cert, e.to_string()))?;
    std::fs::metadata(&files.key).map_err(|e| file_error(&files.key, e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(&files.cert, "no CERTIFICATE block".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error(&files.key, format!("no PEM private key: {e}")))?;
    let pair_error = |message: String| TlsError::Pair { cert: files.cert.clone(), key: files.key.clone(), message };
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| pair_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| pair_error(format!("the key is not the certificate's ({e})")))?;
    Ok(Arc::new(certified))
}

/// The certificate in force, swapped by [`CertResolver::reload`].
#[derive(Debug)]
pub struct CertResolver {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// Loads `files`. Errors: as for [`load`].
    pub fn new(files: TlsFiles) -> Result<CertResolver, TlsError> {
        let current = RwLock::new(load(&files)?);
        Ok(CertResolver { files, current })
    }

    /// Reads the files again and serves them from the next handshake on. On an error the
    /// certificate in force stays, and the error says why. Errors: as for [`load`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.files)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The rustls server configuration that asks this resolver at every handshake (safe default
    /// protocol versions, no client certificates).
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let files = TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert, certified.cert.pem()).unwrap();
        std::fs::write(&files.key, certified.signing_key.serialize_pem()).unwrap();
        files
    }

    // A missing file, a file without PEM and a key of another certificate are refused, each
    // naming its file.
    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = pair(dir.path(), "a");
        let missing = TlsFiles { cert: dir.path().join("nope.crt"), key: good.key.clone() };
        assert!(load(&missing).unwrap_err().to_string().contains("nope.crt"));
        std::fs::write(dir.path().join("junk.key"), "not a key").unwrap();
        let junk = TlsFiles { cert: good.cert.clone(), key: dir.path().join("junk.key") };
        let message = load(&junk).unwrap_err().to_string();
        assert!(message.contains("junk.key") && message.contains("private key"), "{message}");
        let other = pair(dir.path(), "b");
        let mixed = TlsFiles { cert: good.cert.clone(), key: other.key };
        let message = load(&mixed).unwrap_err().to_string();
        assert!(message.contains("a.crt") && message.contains("not the certificate's"), "{message}");
        assert!(load(&good).is_ok());
    }

    // A reload serves the new certificate; a failed one keeps the one in force.
    #[test]
    fn reload_swaps_or_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "live");
        let resolver = CertResolver::new(files.clone()).unwrap();
        let served = |r: &CertResolver| r.current.read().unwrap().cert[0].clone();
        let before = served(&resolver);
        let renewed = pair(dir.path(), "renewed");
        std::fs::copy(&renewed.cert, &files.cert).unwrap();
        std::fs::copy(&renewed.key, &files.key).unwrap();
        resolver.reload().unwrap();
        let after = served(&resolver);
        assert_ne!(before, after, "the renewed certificate is served");
        std::fs::write(&files.key, "garbage").unwrap();
        assert!(resolver.reload().is_err());
        assert_eq!(served(&resolver), after, "a failed reload keeps the certificate in force");
    }
}
