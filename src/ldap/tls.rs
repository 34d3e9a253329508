//! TLS for LDAPS and StartTLS: the rustls server configuration, the
//! certificate (from PEM files, or self-signed and generated into the data
//! directory on first start) and its reload on SIGHUP.
//!
//! The `ServerConfig` is built once; its certificate resolver holds the
//! current certificate behind a lock, so a reload swaps it for new
//! handshakes while established connections keep theirs. TLS 1.2 and 1.3
//! only. This module knows files and rustls, not LDAP.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {err}", path.display())]
    Read { path: PathBuf, err: String },
    #[error("no certificate in {}", .0.display())]
    NoCertificate(PathBuf),
    #[error("the private key in {} is not usable: {err}", path.display())]
    Key { path: PathBuf, err: String },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {}: {err}", path.display())]
    Write { path: PathBuf, err: std::io::Error },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub struct CertSource {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertSource {
    /// The configured files, or the generated pair in `<data_dir>/tls/`
    /// (created now if missing).
    pub fn from_config(config: &Config) -> Result<CertSource, TlsError> {
        if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
            return Ok(CertSource {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        let dir = config.data_dir.join("tls");
        let source = CertSource {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        if !source.cert.exists() || !source.key.exists() {
            generate_self_signed(&dir, &source, &config.tls.hostname)?;
            tracing::info!(cert = %source.cert.display(), "generated a self-signed certificate");
        }
        Ok(source)
    }
}

/// The names a generated certificate is valid for.
fn subject_alt_names(hostname: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let host = hostname.trim();
    if !host.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
        names.push(host.to_string());
    }
    names
}

fn generate_self_signed(dir: &Path, source: &CertSource, hostname: &str) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|err| TlsError::Write {
        path: dir.to_path_buf(),
        err,
    })?;
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let now = time::OffsetDateTime::now_utc();
    // A one-off CA signs the server certificate and its key is thrown
    // away: clients (GnuTLS-based libldap among them) accept a trust anchor
    // that is a CA, while rustls refuses a CA certificate as the server's
    // own. cert.pem holds both, so it serves as the chain and as
    // LDAPTLS_CACERT.
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Portcullis local CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_key = rcgen::KeyPair::generate().map_err(generate)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(generate)?;

    let mut params =
        rcgen::CertificateParams::new(subject_alt_names(hostname)).map_err(generate)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let key = rcgen::KeyPair::generate().map_err(generate)?;
    let cert = params
        .signed_by(&key, &ca_cert, &ca_key)
        .map_err(generate)?;
    // The key first, created 0600 so it is never readable by others.
    write_file(&source.key, key.serialize_pem().as_bytes(), 0o600)?;
    let chain = format!("{}{}", cert.pem(), ca_cert.pem());
    write_file(&source.cert, chain.as_bytes(), 0o644)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let err = |err| TlsError::Write {
        path: path.to_path_buf(),
        err,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Reads a certificate chain and key and checks that they belong together.
fn load(source: &CertSource) -> Result<(Arc<CertifiedKey>, String), TlsError> {
    let read_err = |path: &Path, err: String| TlsError::Read {
        path: path.to_path_buf(),
        err,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&source.cert)
        .map_err(|e| read_err(&source.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(&source.cert, e.to_string()))?;
    let Some(leaf) = certs.first() else {
        return Err(TlsError::NoCertificate(source.cert.clone()));
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(&source.key)
        .map_err(|e| read_err(&source.key, e.to_string()))?;
    let key_err = |err: String| TlsError::Key {
        path: source.key.clone(),
        err,
    };
    let signing = provider::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_err(e.to_string()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|e| key_err(format!("it does not match the certificate ({e})")))?;
    Ok((Arc::new(certified), fingerprint))
}

/// SHA-256 of the certificate's DER, as colon-separated hex (the form
/// `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The current certificate, swapped on reload.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a valid certificate.
        let guard = match self.current.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        Some(guard.clone())
    }
}

/// TLS state shared by both listeners.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    source: CertSource,
}

impl Tls {
    /// Loads (or generates) the certificate and builds the configuration.
    pub fn new(config: &Config) -> Result<Tls, TlsError> {
        let source = CertSource::from_config(config)?;
        Tls::from_source(source)
    }

    pub fn from_source(source: CertSource) -> Result<Tls, TlsError> {
        let (certified, fingerprint) = load(&source)?;
        tracing::info!(cert = %source.cert.display(), sha256 = %fingerprint, "TLS certificate loaded");
        let resolver = Arc::new(Resolver {
            current: RwLock::new(certified),
        });
        let server = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            resolver,
            source,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    pub fn cert_path(&self) -> &Path {
        &self.source.cert
    }

    /// Reads the files again and, if they are valid, serves the new
    /// certificate to new handshakes. On error the old one stays.
    pub fn reload(&self) -> Result<String, TlsError> {
        let (certified, fingerprint) = load(&self.source)?;
        match self.resolver.current.write() {
            Ok(mut g) => *g = certified,
            Err(poisoned) => *poisoned.into_inner() = certified,
        }
        Ok(fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads_reloads_and_has_a_private_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = Config {
            data_dir: tmp.path().to_path_buf(),
            ..Config::default()
        };
        let tls = Tls::new(&config).expect("tls");
        let key = tmp.path().join("tls/key.pem");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let first = tls.reload().expect("reload");
        // A second start keeps the same certificate.
        let again = Tls::new(&config).expect("tls");
        assert_eq!(again.reload().expect("reload"), first);
        // A broken file on reload keeps the old certificate in service.
        std::fs::write(tmp.path().join("tls/cert.pem"), "garbage").expect("write");
        assert!(tls.reload().is_err());
    }

    #[test]
    fn names_include_loopback_and_the_configured_host() {
        assert_eq!(
            subject_alt_names(" ldap.example.com "),
            vec!["localhost", "127.0.0.1", "::1", "ldap.example.com"]
        );
        assert_eq!(subject_alt_names("").len(), 3);
    }
}
