//! `tls`: turns the checked [`TlsSettings`] of `config` into rustls server and client
//! configurations (aws-lc-rs provider), for the secure client port (`server`) and the peer
//! transport (`consensus::network`). Reads the PEM key and trust stores; every error names
//! the zoo.cfg key and line of the file at fault. It must not know about sockets.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use tokio_rustls::rustls;

use crate::config::{ClientAuth, PemFile, TlsSettings, TlsVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed, e.g. `zoo.cfg:12: ssl.keyStore.location: ...`.
    #[error("line {line}: {key}: {path}: {reason}")]
    File {
        key: String,
        line: u32,
        path: String,
        reason: String,
    },
    #[error("{0} is required for this listener")]
    Missing(&'static str),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS client verification setup: {0}")]
    Verifier(String),
}

/// Builds the provider with only the configured cipher suites (all of its own when none).
fn provider(settings: &TlsSettings) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !settings.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|suite| {
            let name = rustls_name_to_java(&format!("{:?}", suite.suite()));
            settings.cipher_suites.contains(&name)
        });
    }
    Arc::new(provider)
}

/// rustls names TLS 1.3 suites `TLS13_*`; Java (and IANA) name them `TLS_*`.
fn rustls_name_to_java(name: &str) -> String {
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_owned(),
    }
}

fn versions(settings: &TlsSettings) -> Vec<&'static SupportedProtocolVersion> {
    settings
        .protocols
        .iter()
        .map(|version| match version {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

fn file_error(file: &PemFile, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        key: file.key.clone(),
        line: file.line,
        path: file.path.display().to_string(),
        reason: reason.into(),
    }
}

/// The certificate chain and private key of a PEM key store.
pub fn load_key_store(
    file: &PemFile,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = CertificateDer::pem_file_iter(&file.path)
        .map_err(|error| file_error(file, error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(file, error.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(file, "holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&file.path)
        .map_err(|error| file_error(file, format!("no usable private key: {error}")))?;
    Ok((certs, key))
}

/// The CA certificates of a PEM trust store.
pub fn load_trust_store(file: &PemFile) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&file.path)
        .map_err(|error| file_error(file, error.to_string()))?
    {
        let cert = cert.map_err(|error| file_error(file, error.to_string()))?;
        roots
            .add(cert)
            .map_err(|error| file_error(file, format!("bad CA certificate: {error}")))?;
    }
    if roots.is_empty() {
        return Err(file_error(file, "holds no CA certificate"));
    }
    Ok(roots)
}

/// The server side: the secure client port, or the quorum port's acceptor.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let key_store = settings
        .key_store
        .as_ref()
        .ok_or(TlsError::Missing("keyStore.location"))?;
    let (certs, key) = load_key_store(key_store)?;
    let provider = provider(settings);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions(settings))?;
    let builder = match (&settings.trust_store, settings.client_auth) {
        (Some(trust_store), ClientAuth::Want | ClientAuth::Need) => {
            let roots = Arc::new(load_trust_store(trust_store)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if settings.client_auth == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|error| TlsError::Verifier(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|error| file_error(key_store, error.to_string()))?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The client side of the quorum: presents the key store and verifies the peer against the
/// trust store (and its host name unless hostnameVerification=false).
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let key_store = settings
        .key_store
        .as_ref()
        .ok_or(TlsError::Missing("keyStore.location"))?;
    let trust_store = settings
        .trust_store
        .as_ref()
        .ok_or(TlsError::Missing("trustStore.location"))?;
    let (certs, key) = load_key_store(key_store)?;
    let roots = Arc::new(load_trust_store(trust_store)?);
    let provider = provider(settings);
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions(settings))?;
    let builder = if settings.hostname_verification {
        builder.with_root_certificates(roots)
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|error| TlsError::Verifier(error.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyHostName { inner }))
    };
    let config = builder
        .with_client_auth_cert(certs, key)
        .map_err(|error| file_error(key_store, error.to_string()))?;
    Ok(Arc::new(config))
}

/// `hostnameVerification=false`: the chain must still lead to the trust store; only the
/// certificate's names are not compared with the host dialled.
#[derive(Debug)]
struct AnyHostName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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

    #[test]
    fn java_names_of_every_provider_suite_are_the_supported_list() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let mut names: Vec<String> = provider
            .cipher_suites
            .iter()
            .map(|suite| rustls_name_to_java(&format!("{:?}", suite.suite())))
            .collect();
        names.sort();
        let mut supported: Vec<String> = crate::config::TLS_CIPHER_SUITES_SUPPORTED
            .iter()
            .map(|name| (*name).to_owned())
            .collect();
        supported.sort();
        assert_eq!(names, supported);
    }
}
