//! TLS to the database: `sslmode` (and `sslrootcert`) in the URL, with
//! libpq's meanings, over rustls (the server's own TLS library, with the
//! ring provider).
//!
//! - `disable`: no TLS.
//! - `prefer` (the default, as in libpq) and `require`: TLS when the
//!   server offers it (`prefer`) or always (`require`), the certificate
//!   unchecked: encryption against eavesdroppers, not against a
//!   machine in the middle. As in libpq, `require` with an `sslrootcert`
//!   checks the chain like `verify-ca`.
//! - `verify-ca`: TLS, and the server's certificate must chain to a
//!   certificate of `sslrootcert` (a PEM file); its name is not checked.
//! - `verify-full`: also the host name (or IP address) of the URL must
//!   be one the certificate names. What an operator should use.
//!
//! `verify-ca` and `verify-full` need `sslrootcert`. tokio-postgres
//! knows only disable/prefer/require and no `sslrootcert`, so
//! [`split`] takes both out of the URL (either form: `postgres://…?…` or
//! `key=value …`) and hands the driver `require` for the verifying
//! modes. No error here repeats the URL.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::{Result, StoreError};

/// What the URL asks of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS part of a URL: its mode and root certificate file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsOptions {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

fn invalid(what: &str) -> StoreError {
    StoreError::Backend(format!("invalid PostgreSQL URL: {what}"))
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(invalid(
                    "sslmode must be disable, prefer, require, verify-ca or verify-full",
                ))
            }
        })
    }

    /// What tokio-postgres is told: it encrypts; the checks are ours.
    fn driver(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
        }
    }
}

/// Takes `sslmode` and `sslrootcert` out of `url`: the URL for
/// tokio-postgres (with the driver's `sslmode`) and the options.
pub(super) fn split(url: &str) -> Result<(String, TlsOptions)> {
    let mut options = TlsOptions {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let mut take = |key: &str, value: &str| -> Result<bool> {
        match key {
            "sslmode" => options.mode = SslMode::parse(value)?,
            "sslrootcert" => options.root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|_| invalid("unreadable parameters"))?;
        let mut kept = Vec::new();
        for (k, v) in pairs {
            if !take(&k, &v)? {
                kept.push((k, v));
            }
        }
        let kept = serde_urlencoded::to_string(&kept).map_err(|_| invalid("parameters"))?;
        match kept.is_empty() {
            true => format!("{base}?"),
            false => format!("{base}?{kept}&"),
        }
    } else {
        let mut kept = String::new();
        for (k, v) in key_values(url)? {
            if !take(&k, &v)? {
                kept.push_str(&format!(
                    "{k}='{}' ",
                    v.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        kept
    };
    if options.root_cert.is_none()
        && matches!(options.mode, SslMode::VerifyCa | SslMode::VerifyFull)
    {
        return Err(invalid(
            "sslmode=verify-ca and verify-full need sslrootcert=FILE (the CA certificates, PEM)",
        ));
    }
    Ok((format!("{rest}sslmode={}", options.mode.driver()), options))
}

/// The pairs of a `key=value …` connection string, as libpq reads them:
/// spaces around `=` allowed, values in single quotes with `\` escapes.
fn key_values(s: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(invalid("a key without `=value`"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.push(chars.next().ok_or_else(|| invalid("a trailing `\\`"))?),
                Some('\'') if quoted => break,
                Some(c) if !quoted && c.is_whitespace() => break,
                Some(c) => value.push(c),
                None if quoted => return Err(invalid("an unterminated quote")),
                None => break,
            }
        }
        pairs.push((key, value));
    }
}

/// The connector for `options` (also for `disable`: tokio-postgres then
/// never starts TLS).
pub(super) fn connector(options: &TlsOptions) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(ring::default_provider());
    let chain = match &options.root_cert {
        // libpq's prefer/require without a root: encrypt, check nothing.
        None => None,
        Some(path) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots(path)?), provider.clone())
                .build()
                .map_err(|e| StoreError::Backend(format!("PostgreSQL TLS: {e}")))?,
        ),
    };
    let verifier = Verifier {
        chain,
        check_name: options.mode == SslMode::VerifyFull,
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("PostgreSQL TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates of `sslrootcert`.
fn roots(path: &std::path::Path) -> Result<RootCertStore> {
    let unreadable = |e: &dyn std::fmt::Display| {
        StoreError::Backend(format!("PostgreSQL sslrootcert {}: {e}", path.display()))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
        roots
            .add(cert.map_err(|e| unreadable(&e))?)
            .map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no certificate in it"));
    }
    Ok(roots)
}

/// The certificate check of a mode: none (`prefer`, `require` without a
/// root), the chain (`verify-ca`, `require` with a root), or the chain
/// and the name (`verify-full`). The handshake's signatures are always
/// checked.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> (String, SslMode, Option<PathBuf>) {
        let (rest, o) = split(url).expect("split");
        (rest, o.mode, o.root_cert)
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_either_form() {
        assert_eq!(
            mode("postgres://u:p@h:5/db"),
            (
                "postgres://u:p@h:5/db?sslmode=prefer".into(),
                SslMode::Prefer,
                None
            )
        );
        assert_eq!(
            mode("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x"),
            (
                "postgres://u@h/db?application_name=x&sslmode=require".into(),
                SslMode::VerifyFull,
                Some(PathBuf::from("/etc/ca.pem"))
            )
        );
        assert_eq!(
            mode("host=h user=u sslmode = verify-ca sslrootcert='/a b/c\\'a.pem' password=x\\ y"),
            (
                "host='h' user='u' password='x y' sslmode=require".into(),
                SslMode::VerifyCa,
                Some(PathBuf::from("/a b/c'a.pem"))
            )
        );
        assert_eq!(mode("host=h sslmode=disable").1, SslMode::Disable);
        // The driver takes what is left.
        for url in [
            "postgres://u:p@h:5/db?sslmode=verify-full&sslrootcert=/x",
            "host=h user=u sslmode = verify-ca sslrootcert='/a b/c\\'a.pem' password=x\\ y",
        ] {
            let (rest, _) = split(url).expect("split");
            rest.parse::<tokio_postgres::Config>().expect(&rest);
        }
    }

    #[test]
    fn bad_tls_options_are_refused_without_repeating_the_url() {
        for url in [
            "postgres://u:secret@h/db?sslmode=verify-full",
            "postgres://u:secret@h/db?sslmode=sometimes",
            "host=h password=secret sslmode=verify-ca",
            "host=h password='secret",
        ] {
            let e = split(url).expect_err(url).to_string();
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
