//! The certificate Firehose makes for itself when the operator gives none.
//!
//! On first start it creates, in a private directory (mode 0700), a small CA
//! (`ca.pem`, `ca.key`) and a leaf it signs (`server.pem`, `server.key`; key
//! files mode 0600). The leaf is CA:FALSE with the serverAuth usage and names
//! `localhost`, `127.0.0.1`, `::1` plus the configured names; `server.pem`
//! holds the leaf then the CA. Both kinds of client accept that pair: rustls
//! refuses a CA certificate presented as the leaf, OpenSSL accepts a
//! self-signed leaf, and clients verify with `--cafile ca.pem`.
//!
//! Later starts reuse the files. The leaf is made anew (same CA, so clients
//! keep trusting it) when it is missing, does not match its key, has expired
//! or lacks a configured name. A fresh CA is made only when `ca.pem` or
//! `ca.key` is missing.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::sign::CertifiedKey;

use super::{TlsError, provider, read_certs, read_key};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const LEAF_CERT: &str = "server.pem";
const LEAF_KEY: &str = "server.key";

/// Names every generated leaf carries, before the configured ones.
const BUILTIN_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

pub(super) fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join(CA_CERT)
}

/// Makes sure `dir` holds a CA and a valid leaf for `names`; returns the paths
/// of the leaf's certificate chain and key.
pub(super) fn ensure(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let wanted = wanted_names(names);
    for name in &wanted {
        ServerName::try_from(probe_name(name).as_str())
            .map_err(|_| TlsError::InvalidName { name: name.clone() })?;
    }
    create_private_dir(dir)?;
    let ca_cert = dir.join(CA_CERT);
    let ca_key = dir.join(CA_KEY);
    let leaf_cert = dir.join(LEAF_CERT);
    let leaf_key = dir.join(LEAF_KEY);

    let (ca_key_pair, new_ca) = if ca_cert.exists() && ca_key.exists() {
        check_pair(&ca_cert, &ca_key)?;
        (load_key_pair(&ca_key)?, false)
    } else {
        if ca_cert.exists() || ca_key.exists() {
            tracing::warn!(
                dir = %dir.display(),
                "ca.pem or ca.key is missing: generating a new CA; clients must trust the new ca.pem"
            );
        }
        let key_pair = generate_key(&wanted)?;
        let cert = ca_params()
            .self_signed(&key_pair)
            .map_err(|source| generate_error(&wanted, source))?;
        write_file(&ca_key, &key_pair.serialize_pem(), 0o600)?;
        write_file(&ca_cert, &cert.pem(), 0o644)?;
        tracing::info!(ca = %ca_cert.display(), "generated a TLS certificate authority");
        (key_pair, true)
    };

    if !new_ca {
        match verify_leaf(&ca_cert, &leaf_cert, &leaf_key, &wanted) {
            Ok(()) => return Ok((leaf_cert, leaf_key)),
            Err(reason) => {
                tracing::info!(cert = %leaf_cert.display(), %reason, "generating a new server certificate")
            }
        }
    }

    let issuer = Issuer::new(ca_params(), ca_key_pair);
    let key_pair = generate_key(&wanted)?;
    let cert = leaf_params(&wanted)?
        .signed_by(&key_pair, &issuer)
        .map_err(|source| generate_error(&wanted, source))?;
    let ca_pem = fs::read_to_string(&ca_cert).map_err(|source| TlsError::Read {
        path: ca_cert.clone(),
        source,
    })?;
    write_file(&leaf_key, &key_pair.serialize_pem(), 0o600)?;
    write_file(&leaf_cert, &format!("{}{}", cert.pem(), ca_pem), 0o644)?;
    verify_leaf(&ca_cert, &leaf_cert, &leaf_key, &wanted).map_err(|reason| {
        TlsError::GeneratedInvalid {
            dir: dir.to_owned(),
            reason,
        }
    })?;
    tracing::info!(cert = %leaf_cert.display(), names = ?wanted, "generated a TLS server certificate");
    Ok((leaf_cert, leaf_key))
}

/// The built-in names followed by the configured ones, without duplicates.
fn wanted_names(names: &[String]) -> Vec<String> {
    let mut wanted: Vec<String> = BUILTIN_NAMES.iter().map(|n| n.to_string()).collect();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !wanted.iter().any(|w| w.eq_ignore_ascii_case(name)) {
            wanted.push(name.to_owned());
        }
    }
    wanted
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name("Firehose local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(names: &[String]) -> Result<CertificateParams, TlsError> {
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|source| generate_error(names, source))?;
    let common_name = names.get(BUILTIN_NAMES.len()).map_or("localhost", |n| n);
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Firehose");
    name.push(DnType::CommonName, common_name);
    name
}

fn generate_key(names: &[String]) -> Result<KeyPair, TlsError> {
    KeyPair::generate().map_err(|source| generate_error(names, source))
}

fn generate_error(names: &[String], source: rcgen::Error) -> TlsError {
    TlsError::Generate {
        names: names.to_vec(),
        source,
    }
}

fn load_key_pair(path: &Path) -> Result<KeyPair, TlsError> {
    let pem = fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    KeyPair::from_pem(&pem).map_err(|_| TlsError::NoKey {
        path: path.to_owned(),
    })
}

/// Fails when the key in `key` is not the one certified by `cert`.
fn check_pair(cert: &Path, key: &Path) -> Result<(), TlsError> {
    CertifiedKey::from_der(read_certs(cert)?, read_key(key)?, &provider())
        .map(drop)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            source => TlsError::Unusable {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            },
        })
}

/// Checks the leaf as a rustls client trusting only `ca.pem` would, for every
/// wanted name, and that its key matches. Returns why it is unfit.
fn verify_leaf(ca: &Path, cert: &Path, key: &Path, names: &[String]) -> Result<(), String> {
    check_pair(cert, key).map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    for ca_cert in read_certs(ca).map_err(|e| e.to_string())? {
        roots
            .add(ca_cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| e.to_string())?;
    let chain = read_certs(cert).map_err(|e| e.to_string())?;
    let now = UnixTime::now();
    for name in names {
        let probe = probe_name(name);
        let server_name = ServerName::try_from(probe.as_str())
            .map_err(|e| format!("{name:?} is not a valid host name: {e}"))?;
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], now)
            .map_err(|e| format!("not valid for {name}: {e}"))?;
    }
    Ok(())
}

/// The name a client would connect with: a wildcard is checked through a
/// name it covers.
fn probe_name(name: &str) -> String {
    match name.strip_prefix("*.") {
        Some(rest) => format!("wildcard-probe.{rest}"),
        None => name.to_owned(),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let write_error = |source| TlsError::Write {
        path: dir.to_owned(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir).map_err(write_error)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(write_error)
    }
    #[cfg(not(unix))]
    builder.create(dir).map_err(write_error)
}

/// Writes through a temporary file and a rename, so that a crash never leaves
/// a half-written certificate or key behind.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let write = || -> io::Result<()> {
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_names_follow_the_builtin_ones_once() {
        let names = wanted_names(&["LOCALHOST".into(), " mqtt.example.org ".into(), "".into()]);
        assert_eq!(names, ["localhost", "127.0.0.1", "::1", "mqtt.example.org"]);
    }
}
