//! TLS for registry hosts: rustls with the `ring` provider, the platform's trust store plus
//! a host's extra CAs, optional client certificates, and `skip_verify` for hosts configured
//! so.
//!
//! One reqwest client exists per distinct TLS setup (most registries share the default one),
//! so connections are pooled per setup.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::error::RemoteError;
use crate::hosts::RegistryHost;

/// What distinguishes one TLS setup from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TlsKey {
    ca: Vec<PathBuf>,
    client_certs: Vec<(PathBuf, Option<PathBuf>)>,
    skip_verify: bool,
}

impl TlsKey {
    pub(crate) fn of(host: &RegistryHost) -> TlsKey {
        if !host.has_custom_tls() {
            return TlsKey {
                ca: Vec::new(),
                client_certs: Vec::new(),
                skip_verify: false,
            };
        }
        TlsKey {
            ca: host.ca.clone(),
            client_certs: host.client_certs.clone(),
            skip_verify: host.skip_verify,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `host`.
pub(crate) fn client_config(host: &RegistryHost) -> Result<ClientConfig, RemoteError> {
    let tls_err = |message: String| RemoteError::Tls {
        host: host.host.clone(),
        message,
    };
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if host.skip_verify {
        Arc::new(NoVerifier(provider.signature_verification_algorithms))
    } else {
        let mut extra = Vec::new();
        for path in &host.ca {
            let pem = std::fs::read(path).map_err(RemoteError::io("reading CA file", path))?;
            let before = extra.len();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                extra.push(cert.map_err(|e| tls_err(format!("{}: {e}", path.display())))?);
            }
            if extra.len() == before {
                return Err(tls_err(format!(
                    "{}: no PEM certificate in the file",
                    path.display()
                )));
            }
        }
        let v = if extra.is_empty() {
            rustls_platform_verifier::Verifier::new(provider.clone())
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
        }
        .map_err(|e| tls_err(e.to_string()))?;
        Arc::new(v)
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match host.client_certs.first() {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let pem = std::fs::read(cert_path)
                .map_err(RemoteError::io("reading client cert", cert_path))?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| tls_err(format!("{}: {e}", cert_path.display())))?;
            let key_pem = match key_path {
                Some(p) => std::fs::read(p).map_err(RemoteError::io("reading client key", p))?,
                None => pem.clone(),
            };
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                tls_err(format!(
                    "{}: {e}",
                    key_path.as_ref().unwrap_or(cert_path).display()
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_err(e.to_string()))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts any certificate (`skip_verify = true`), still checking handshake signatures.
#[derive(Debug)]
struct NoVerifier(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hosts_share_a_key() {
        let a = RegistryHost::default_for("a.io");
        let b = RegistryHost::default_for("localhost:5000");
        assert_eq!(TlsKey::of(&a), TlsKey::of(&b));
        let mut c = RegistryHost::default_for("c.io");
        c.skip_verify = true;
        assert_ne!(TlsKey::of(&a), TlsKey::of(&c));
        client_config(&a).unwrap();
        client_config(&c).unwrap();
    }

    #[test]
    fn bad_ca_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = RegistryHost::default_for("x.io");
        h.ca.push(dir.path().join("missing.pem"));
        let e = client_config(&h).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a cert").unwrap();
        h.ca = vec![empty];
        let e = client_config(&h).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
