//! TLS for IMAPS and STARTTLS: rustls (with ring) run by the component
//! itself over its granted TCP connection, as decision D2 of
//! docs/decisions.md says. Compiled with the crate's `tls` feature.
//!
//! The server certificate is verified against the CA certificates of the
//! config key `ca_pem` (PEM text: a source has no files), or, without it,
//! against the Mozilla roots compiled in (`webpki-roots`). The name
//! checked is `tls_server_name`, or the host of `address` (an IP address
//! is checked against the certificate's IP SANs).

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use imap_client::Transport;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// What a TLS connection needs: the client config and the name to verify.
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// Where the trusted roots come from, for log lines.
    pub roots: String,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Builds the client config: roots from `ca_pem` (or the compiled-in
    /// Mozilla roots), the name to verify. Errors name the config key.
    pub fn new(server_name: &str, ca_pem: Option<&str>) -> Result<Self, String> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            format!("config `tls_server_name`: {server_name:?} is not a DNS name or IP address")
        })?;
        let mut roots = RootCertStore::empty();
        let described = match ca_pem {
            Some(pem) => {
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(pem.as_bytes())
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("config `ca_pem`: not PEM certificates: {e}"))?;
                if certs.is_empty() {
                    return Err("config `ca_pem`: no CERTIFICATE block in it".into());
                }
                let (added, ignored) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "config `ca_pem`: none of its {ignored} certificates can be used as a CA"
                    ));
                }
                format!("{added} CA certificate(s) from ca_pem")
            }
            None => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                "the compiled-in Mozilla roots".to_owned()
            }
        };
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            server_name: name,
            roots: described,
        })
    }
}

/// A TLS stream over a [`Transport`]; read timeouts go to the transport.
pub struct TlsStream<T: Transport>(StreamOwned<ClientConnection, T>);

/// Runs the TLS handshake over `transport` (within the transport's read
/// timeout, `timeout`); the error says why it failed (e.g. `invalid peer
/// certificate: UnknownIssuer`).
pub fn handshake<T: Transport>(
    mut transport: T,
    settings: &TlsSettings,
    timeout: Duration,
) -> io::Result<TlsStream<T>> {
    let mut connection =
        ClientConnection::new(settings.config.clone(), settings.server_name.clone())
            .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
    transport.set_read_timeout(Some(timeout))?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut transport)
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
    }
    Ok(TlsStream(StreamOwned::new(connection, transport)))
}

impl<T: Transport> Read for TlsStream<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<T: Transport> Write for TlsStream<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<T: Transport> Transport for TlsStream<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_read_timeout(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_named() {
        let e = TlsSettings::new("bad name!", None).unwrap_err();
        assert!(e.starts_with("config `tls_server_name`"), "{e}");
        let e = TlsSettings::new("imap.example.org", Some("not pem")).unwrap_err();
        assert_eq!(e, "config `ca_pem`: no CERTIFICATE block in it");
        let s = TlsSettings::new("127.0.0.1", None).unwrap();
        assert_eq!(s.roots, "the compiled-in Mozilla roots");
    }
}
