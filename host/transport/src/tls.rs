//! TLS settings shared by every `mqtts` and `wss` listener.
//!
//! A [`TlsConfigHandle`] holds the rustls server configuration currently in
//! force. It is built once from a [`TlsSource`]: certificate files the
//! operator provides, or a CA and leaf generated into a directory on first
//! start (the `generated` submodule). [`TlsConfigHandle::reload`] re-reads
//! them later (the broker does it on SIGHUP): new handshakes use the new
//! certificate, existing connections keep the session they negotiated.
//!
//! This module reads and writes certificate files and builds configurations;
//! it does not accept connections (that is [`crate::listener`]).

mod generated;

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the server certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files provided by the operator: `cert` holds the leaf certificate
    /// followed by its chain, `key` the private key (PKCS#8, RSA or SEC1).
    Files { cert: PathBuf, key: PathBuf },
    /// A small CA and a leaf it signs, generated into `dir` on first start and
    /// reused afterwards. The leaf names `localhost`, `127.0.0.1`, `::1` and
    /// every entry of `names`; it is regenerated (same CA) when one is missing.
    Generated { dir: PathBuf, names: Vec<String> },
}

/// Why TLS settings could not be loaded or generated. Each names the file or
/// directory at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: no certificate found (expected PEM blocks \"BEGIN CERTIFICATE\")", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{}: no private key found (expected a PEM PKCS#8, RSA or SEC1 private key)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot use {} with {}: {source}", cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS name {name:?} is not a valid host name or IP address")]
    InvalidName { name: String },
    #[error("cannot generate a certificate for names {names:?}: {source}")]
    Generate {
        names: Vec<String>,
        source: rcgen::Error,
    },
    #[error(
        "{}: the generated certificate does not verify against ca.pem ({reason}); \
         remove the directory to generate a new CA",
        dir.display()
    )]
    GeneratedInvalid { dir: PathBuf, reason: String },
}

/// The server configurations currently in force: one per use, because only
/// websocket listeners advertise an ALPN protocol.
struct Current {
    mqtt: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
}

/// The TLS configuration shared by the listeners; swap it with
/// [`reload`](Self::reload).
pub struct TlsConfigHandle {
    source: TlsSource,
    current: RwLock<Arc<Current>>,
}

impl std::fmt::Debug for TlsConfigHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfigHandle")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TlsConfigHandle {
    /// Reads (or, for [`TlsSource::Generated`], creates or reuses) the
    /// certificate and key. Blocking file I/O: call it at start-up or from
    /// `spawn_blocking`.
    pub fn load(source: TlsSource) -> Result<TlsConfigHandle, TlsError> {
        let current = build(&source)?;
        Ok(TlsConfigHandle {
            source,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Re-reads the files and swaps the new configuration in for future
    /// handshakes; connections already established are unaffected. On error
    /// the previous configuration stays in force. Blocking file I/O.
    pub fn reload(&self) -> Result<(), TlsError> {
        let current = build(&self.source)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(current);
        tracing::info!(source = ?self.source, "TLS certificate reloaded");
        Ok(())
    }

    /// Where the certificate comes from.
    pub fn source(&self) -> &TlsSource {
        &self.source
    }

    /// The CA certificate clients should trust (`--cafile`), when the
    /// certificate is generated; `None` for operator-provided files.
    pub fn ca_path(&self) -> Option<PathBuf> {
        match &self.source {
            TlsSource::Generated { dir, .. } => Some(generated::ca_cert_path(dir)),
            TlsSource::Files { .. } => None,
        }
    }

    /// The configuration for MQTT over TLS (no ALPN).
    pub fn mqtt_config(&self) -> Arc<ServerConfig> {
        self.read().mqtt.clone()
    }

    /// The configuration for websocket over TLS (ALPN `http/1.1`).
    pub fn http_config(&self) -> Arc<ServerConfig> {
        self.read().http.clone()
    }

    fn read(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The ring provider, chosen explicitly so that the process-wide default
/// never matters.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(source: &TlsSource) -> Result<Current, TlsError> {
    let (cert, key) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::Generated { dir, names } => generated::ensure(dir, names)?,
    };
    let chain = read_certs(&cert)?;
    let private_key = read_key(&key)?;
    let mqtt = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private_key))
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: cert.clone(),
                key: key.clone(),
            },
            source => TlsError::Unusable {
                cert: cert.clone(),
                key: key.clone(),
                source,
            },
        })?;
    let mut http = mqtt.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Current {
        mqtt: Arc::new(mqtt),
        http: Arc::new(http),
    })
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

/// Every certificate in a PEM file, in order (leaf first, then its chain).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}
