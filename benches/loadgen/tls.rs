//! The TLS client of ldaps:// runs.
//!
//! TLS 1.3 only (what both servers are compared on), trusting only the
//! certificates of `--tls-ca`, built once and shared by every connection.
//!
//! On a 2-core machine the load generator's CPU is taken from the servers
//! it measures, and a TLS client pays more per connection than the server:
//! besides its key exchange it checks two ECDSA signatures, the CA's on the
//! server's certificate and the server's on the handshake. The second
//! proves the server holds the key and is checked on every connection; the
//! first is the same for every connection to the same server, so by
//! default its verdict is kept per distinct chain and name, as a browser's
//! certificate verifier caches it. `--tls-verify-every-chain` checks it
//! every time, as libldap does. Neither changes what a server does.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The client configuration: only `ca` trusted, TLS 1.3, session
/// resumption only with `resume` (off: a full handshake per connection, as
/// a pool-less application's libldap makes), the chain verified once per
/// distinct chain unless `verify_every_chain`.
pub fn tls_client_config(
    ca: &Path,
    resume: bool,
    verify_every_chain: bool,
) -> Result<Arc<ClientConfig>, String> {
    let read = |e: &dyn std::fmt::Display| format!("reading {}: {e}", ca.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| read(&e))? {
        roots
            .add(cert.map_err(|e| read(&e))?)
            .map_err(|e| read(&e))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS client setup: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if verify_every_chain {
        webpki
    } else {
        Arc::new(OncePerChain {
            inner: webpki,
            verified: Mutex::new(HashSet::new()),
        })
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS client setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// WebPKI verification whose chain verdicts are kept: a chain and name
/// that passed once pass again without their signatures being checked.
/// Only passes are kept, so a bad chain fails every time. The runs last
/// minutes, against certificates valid for days.
#[derive(Debug)]
struct OncePerChain {
    inner: Arc<WebPkiServerVerifier>,
    /// Name, leaf and intermediates, length-prefixed, of chains that passed.
    verified: Mutex<HashSet<Vec<u8>>>,
}

fn chain_key(name: &ServerName<'_>, leaf: &[u8], intermediates: &[CertificateDer<'_>]) -> Vec<u8> {
    let name = name.to_str();
    let mut key = Vec::new();
    for part in [name.as_bytes(), leaf]
        .into_iter()
        .chain(intermediates.iter().map(|c| c.as_ref()))
    {
        key.extend_from_slice(&(part.len() as u32).to_be_bytes());
        key.extend_from_slice(part);
    }
    key
}

impl ServerCertVerifier for OncePerChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let key = chain_key(server_name, end_entity, intermediates);
        let known = |v: &Mutex<HashSet<Vec<u8>>>| {
            v.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .contains(&key)
        };
        if known(&self.verified) {
            return Ok(ServerCertVerified::assertion());
        }
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key);
        Ok(verdict)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA, and a server certificate for 127.0.0.1 it signed.
    fn ca_and_leaf() -> (rcgen::Certificate, rcgen::Certificate) {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::default();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("leaf");
        (ca_cert, leaf)
    }

    fn verifier(ca: &rcgen::Certificate) -> OncePerChain {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        OncePerChain {
            inner: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier"),
            verified: Mutex::new(HashSet::new()),
        }
    }

    #[test]
    fn a_chain_passes_once_checked_and_a_bad_one_never() {
        let (ca, leaf) = ca_and_leaf();
        let (_, stranger) = ca_and_leaf();
        let v = verifier(&ca);
        let ip = ServerName::try_from("127.0.0.1").expect("name");
        let other = ServerName::try_from("ldap.example.com").expect("name");
        let check = |cert: &rcgen::Certificate, name: &ServerName<'_>| {
            v.verify_server_cert(cert.der(), &[], name, &[], UnixTime::now())
                .is_ok()
        };
        assert!(check(&leaf, &ip));
        assert!(check(&leaf, &ip), "a kept verdict");
        assert_eq!(v.verified.lock().expect("lock").len(), 1);
        // Another name, or a certificate the CA did not sign, is checked
        // and refused, every time.
        assert!(!check(&leaf, &other));
        assert!(!check(&stranger, &ip));
        assert!(!check(&stranger, &ip));
        assert_eq!(v.verified.lock().expect("lock").len(), 1);
    }

    #[test]
    fn the_config_trusts_the_given_file_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, _) = ca_and_leaf();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write");
        assert!(tls_client_config(&ca_file, false, false).is_ok());
        assert!(tls_client_config(&ca_file, true, true).is_ok());
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        assert!(tls_client_config(&empty, false, false).is_err());
        assert!(tls_client_config(&dir.path().join("missing.pem"), false, false).is_err());
    }
}
