//! rustls client configurations with libpq's `sslmode` semantics, for the sources whose
//! drivers take a rustls `ClientConfig` (PostgreSQL through `tokio-postgres-rustls`, ClickHouse
//! through `hyper-rustls`):
//!
//! - `prefer`, `require`: encrypt without checking the certificate (libpq does the same); with
//!   an `sslrootcert`, `require` verifies the chain, as libpq's does;
//! - `verify-ca`: the chain must end at a trusted CA; the name is not checked;
//! - `verify-full`: the chain, and the certificate must carry the host's name (or IP address).
//!
//! Trusted CAs are those of `sslrootcert` (a PEM file; `system` for the machine's own), or
//! without it the machine's (rustls-native-certs) plus Mozilla's (webpki-roots). `sslcert`
//! and `sslkey` present a client certificate; the key is a secret reference and is read only
//! here, never shown. Whether `disable` means no TLS at all is the caller's business.

use std::sync::Arc;

use dataloader_core::secret::SecretRef;
use dataloader_core::tls::{client_cert, SslMode, SSLCERT, SSLKEY, SSLROOTCERT};
use dataloader_core::{ConnectionConfig, Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The rustls configuration `config`'s options ask for, for a connection in `mode`. Fails on an
/// unreadable or empty certificate file or key, naming the option and the file (never the
/// key's content).
pub async fn client_config(config: &ConnectionConfig, mode: SslMode) -> Result<ClientConfig> {
    let rootcert = config.options.get(SSLROOTCERT);
    // libpq: `require` with a root certificate file verifies the chain.
    let checks = match mode {
        SslMode::Require if rootcert.is_some() => SslMode::VerifyCa,
        m => m,
    };
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(SSLMODE_KEY, format!("TLS set-up failed: {e}")))?;
    let builder = if checks.verifies_chain() {
        let roots = Arc::new(roots(rootcert.map(String::as_str))?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| Error::config(SSLROOTCERT, format!("TLS set-up failed: {e}")))?;
        if checks == SslMode::VerifyFull {
            builder.with_webpki_verifier(webpki)
        } else {
            let verifier = Verifier {
                chain: Some(webpki),
                provider,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
    } else {
        let verifier = Verifier {
            chain: None,
            provider,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    match client_cert(&config.options)? {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(SSLCERT, cert)?, private_key(key).await?)
            .map_err(|e| {
                Error::config(
                    SSLCERT,
                    format!("sslcert and sslkey do not go together: {e}"),
                )
            }),
        None => Ok(builder.with_no_client_auth()),
    }
}

const SSLMODE_KEY: &str = dataloader_core::tls::SSLMODE;

/// The process's rustls provider if `main` installed one, else aws-lc-rs (as `main` does).
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// The CAs of `sslrootcert` (`system`: the machine's), or the machine's and Mozilla's.
fn roots(rootcert: Option<&str>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match rootcert {
        Some(path) if path != "system" => {
            let (added, _) = roots.add_parsable_certificates(certificates(SSLROOTCERT, path)?);
            if added == 0 {
                return Err(Error::config(
                    SSLROOTCERT,
                    format!("{path} holds no CA certificate rustls can use"),
                ));
            }
        }
        _ => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if rootcert.is_none() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    Ok(roots)
}

/// The PEM certificates in the file `path` (option `key`'s value).
fn certificates(key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::config(key, format!("cannot read {key} file {path}: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config(key, format!("{path} is not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config(
            key,
            format!("{path} holds no PEM certificate"),
        ));
    }
    Ok(certs)
}

/// The private key `sslkey` refers to. Errors name the reference, never the key.
async fn private_key(reference: &str) -> Result<PrivateKeyDer<'static>> {
    let pem = SecretRef::parse(reference)?.resolve().await?;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        Error::config(
            SSLKEY,
            format!("{reference} is not a PEM private key (PKCS#8, PKCS#1 or SEC1, unencrypted)"),
        )
    })
}

/// `verify-ca` (`chain`: the chain as `verify-full` checks it, any name), or `prefer` and
/// `require` (no `chain`: any certificate). Either way the handshake's signatures are checked,
/// so the connection is encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name after the chain: a name error means the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_that_is_not_one_is_refused_without_showing_it() {
        let dir = std::env::temp_dir().join(format!("dl-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("bad.key");
        std::fs::write(&key, "hunter2-not-a-key").unwrap();
        let err = private_key(&format!("file:{}", key.display()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a PEM private key"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
