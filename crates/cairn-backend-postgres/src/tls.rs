//! TLS for `sslmode=require`: rustls (no OpenSSL to link), trusting the system's roots and,
//! as libpq does with `PGSSLROOTCERT`, the certificates of one PEM file.

use std::path::Path;
use std::sync::Arc;

use cairn_state::BackendError;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

pub fn connector(root_cert: Option<&Path>) -> Result<MakeRustlsConnect, BackendError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: the explicit root may be all that is needed.
    for certificate in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(certificate);
    }
    if let Some(path) = root_cert {
        let certificates = CertificateDer::pem_file_iter(path).map_err(|error| {
            BackendError::database(format!(
                "reading root certificates `{}`: {error}",
                path.display()
            ))
        })?;
        for certificate in certificates {
            let certificate = certificate.map_err(|error| {
                BackendError::database(format!(
                    "reading root certificates `{}`: {error}",
                    path.display()
                ))
            })?;
            roots.add(certificate).map_err(|error| {
                BackendError::database(format!("root certificate in `{}`: {error}", path.display()))
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| BackendError::database_from(format!("setting up TLS: {error}"), error))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
