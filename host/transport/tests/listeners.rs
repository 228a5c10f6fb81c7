//! Plain TCP and TLS listeners, proved with real clients: binding errors,
//! TCP echo, the generated CA and leaf (rustls and OpenSSL views), reuse and
//! regeneration of generated files, reload, and certificate file errors.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{
    TempDir, accept_one, bind, client_config, presented_cert, round_trip, spawn_echo, tls_connect,
};
use firehose_transport::{
    Listener, ListenerKind, ListenerSpec, MqttStream, NotFound, TlsConfigHandle, TlsError,
    TlsSource, TransportError,
};
use tokio::net::TcpStream;

fn generated(dir: &Path, names: &[&str]) -> Arc<TlsConfigHandle> {
    let source = TlsSource::Generated {
        dir: dir.to_owned(),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    Arc::new(TlsConfigHandle::load(source).unwrap())
}

#[tokio::test]
async fn binding_a_used_address_names_the_listener_and_address() {
    let first = bind(ListenerKind::Mqtt, None, None).await;
    let spec = ListenerSpec {
        name: "second".into(),
        kind: ListenerKind::Mqtt,
        address: first.local_addr(),
    };
    let error = Listener::bind(spec, None, Arc::new(NotFound))
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Bind { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("listener second"), "{message}");
    assert!(
        message.contains(&first.local_addr().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn tls_kinds_without_tls_settings_are_refused() {
    let spec = ListenerSpec {
        name: "secure".into(),
        kind: ListenerKind::Wss,
        address: "127.0.0.1:0".parse().unwrap(),
    };
    let error = Listener::bind(spec, None, Arc::new(NotFound))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "listener secure: kind wss needs TLS settings"
    );
}

#[tokio::test]
async fn plain_tcp_connection_carries_bytes_both_ways() {
    let listener = bind(ListenerKind::Mqtt, None, None).await;
    let addr = listener.local_addr();
    let accepted = accept_one(listener);
    let mut client = TcpStream::connect(addr).await.unwrap();
    let connection = accepted.await.unwrap().unwrap().unwrap();
    assert_eq!(connection.remote_addr, client.local_addr().unwrap());
    assert_eq!(connection.ws_path, None);
    let MqttStream::Tcp(mut server) = connection.stream else {
        panic!("expected a TCP stream");
    };
    assert!(server.nodelay().unwrap());
    let sent = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00";
    tokio::io::AsyncWriteExt::write_all(&mut client, sent)
        .await
        .unwrap();
    let mut received = [0u8; 14];
    tokio::io::AsyncReadExt::read_exact(&mut server, &mut received)
        .await
        .unwrap();
    assert_eq!(&received, sent);
}

#[tokio::test]
async fn idle_plain_tcp_stream_stays_small() {
    // The broker holds 10,000+ idle connections: TLS and websocket states
    // are boxed so the common case stays a socket.
    let tcp = std::mem::size_of::<TcpStream>();
    assert!(std::mem::size_of::<MqttStream>() <= tcp + 8, "{tcp}");
}

#[tokio::test]
async fn generated_certificate_verifies_for_ip_and_localhost_with_rustls() {
    let dir = TempDir::new("generated");
    let tls_dir = dir.path().join("tls");
    let tls = generated(&tls_dir, &["broker.test"]);
    let ca = tls.ca_path().unwrap();
    assert_eq!(ca, tls_dir.join("ca.pem"));
    let addr = spawn_echo(bind(ListenerKind::Mqtts, Some(tls), None).await);
    let config = client_config(&[&ca], &[]);
    for name in ["127.0.0.1", "localhost", "broker.test"] {
        let mut client = tls_connect(addr, name, config.clone()).await.unwrap();
        assert_eq!(
            round_trip(&mut client, b"hello over tls").await,
            b"hello over tls"
        );
    }
    let error = tls_connect(addr, "elsewhere.test", config)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not valid for name"), "{error}");
}

#[cfg(unix)]
#[tokio::test]
async fn generated_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("modes");
    let tls_dir = dir.path().join("tls");
    generated(&tls_dir, &[]);
    let mode = |name: &str| {
        std::fs::metadata(tls_dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("."), 0o700);
    assert_eq!(mode("ca.key"), 0o600);
    assert_eq!(mode("server.key"), 0o600);
    assert_eq!(mode("ca.pem"), 0o644);
    assert_eq!(mode("server.pem"), 0o644);
}

#[tokio::test]
async fn generated_files_are_reused_and_the_leaf_renewed_for_a_new_name() {
    let dir = TempDir::new("reuse");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    generated(dir.path(), &["a.test"]);
    let (ca, leaf) = (read("ca.pem"), read("server.pem"));

    generated(dir.path(), &["a.test"]);
    assert_eq!(read("ca.pem"), ca);
    assert_eq!(read("server.pem"), leaf, "an adequate leaf is reused");

    let tls = generated(dir.path(), &["a.test", "b.test"]);
    assert_eq!(read("ca.pem"), ca, "the CA survives a leaf renewal");
    assert_ne!(read("server.pem"), leaf);
    assert!(
        read("server.pem").ends_with(&ca),
        "the chain is leaf then CA"
    );

    let addr = spawn_echo(bind(ListenerKind::Mqtts, Some(tls), None).await);
    let config = client_config(&[&dir.path().join("ca.pem")], &[]);
    let mut client = tls_connect(addr, "b.test", config).await.unwrap();
    assert_eq!(round_trip(&mut client, b"renewed").await, b"renewed");
}

#[tokio::test]
async fn generated_certificate_covers_wildcard_names_and_refuses_invalid_ones() {
    let dir = TempDir::new("wildcard");
    let tls = generated(dir.path(), &["*.example.test"]);
    let addr = spawn_echo(bind(ListenerKind::Mqtts, Some(tls), None).await);
    let config = client_config(&[&dir.path().join("ca.pem")], &[]);
    let mut client = tls_connect(addr, "mqtt.example.test", config)
        .await
        .unwrap();
    assert_eq!(round_trip(&mut client, b"wild").await, b"wild");

    let error = TlsConfigHandle::load(TlsSource::Generated {
        dir: dir.path().to_owned(),
        names: vec!["bad name".into()],
    })
    .unwrap_err();
    assert!(matches!(error, TlsError::InvalidName { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "TLS name \"bad name\" is not a valid host name or IP address"
    );
}

#[tokio::test]
async fn generated_certificate_passes_openssl_verify_and_s_client() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let dir = TempDir::new("openssl");
    let tls = generated(dir.path(), &["broker.test"]);
    // `openssl verify` checks the first certificate of the file: the leaf.
    let ca = dir.path().join("ca.pem");
    let leaf = dir.path().join("server.pem");
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl").args(args).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let ca_arg = ca.to_str().unwrap();
    let leaf_arg = leaf.to_str().unwrap();
    for check in [
        vec!["-purpose", "sslserver"],
        vec!["-verify_hostname", "localhost"],
        vec!["-verify_hostname", "broker.test"],
        vec!["-verify_ip", "127.0.0.1"],
        vec!["-verify_ip", "::1"],
    ] {
        let mut args = vec!["verify", "-CAfile", ca_arg];
        args.extend(check);
        args.push(leaf_arg);
        let (ok, text) = openssl(&args);
        assert!(ok && text.contains(": OK"), "openssl {args:?}: {text}");
    }
    let (ok, text) = openssl(&["x509", "-in", leaf_arg, "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    let (ok, text) = openssl(&["x509", "-in", ca_arg, "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign"), "{text}");

    // An OpenSSL client (as mosquitto_sub --cafile is) accepts the served chain.
    let addr = spawn_echo(bind(ListenerKind::Mqtts, Some(tls), None).await);
    let connect = addr.to_string();
    let ca_arg = ca_arg.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args(["s_client", "-connect", &connect, "-CAfile", &ca_arg])
            .args([
                "-verify_return_error",
                "-verify_hostname",
                "localhost",
                "-brief",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("Verification: OK"), "{text}");
}

/// Writes a self-signed certificate for `localhost` and its key.
fn write_self_signed(cert: &Path, key: &Path) -> Vec<u8> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(cert, generated.cert.pem()).unwrap();
    std::fs::write(key, generated.signing_key.serialize_pem()).unwrap();
    generated.cert.der().to_vec()
}

#[tokio::test]
async fn reload_swaps_the_certificate_for_new_handshakes_only() {
    let dir = TempDir::new("reload");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first_copy, second_copy) = (dir.path().join("first.pem"), dir.path().join("second.pem"));
    let first = write_self_signed(&cert, &key);
    std::fs::copy(&cert, &first_copy).unwrap();
    let tls = Arc::new(
        TlsConfigHandle::load(TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap(),
    );
    assert_eq!(tls.ca_path(), None);
    let addr = spawn_echo(bind(ListenerKind::Mqtts, Some(tls.clone()), None).await);

    let second = write_self_signed(&cert, &key);
    std::fs::copy(&cert, &second_copy).unwrap();
    let config = client_config(&[&first_copy, &second_copy], &[]);
    // Files changed, not yet reloaded: still the first certificate.
    let mut old = tls_connect(addr, "localhost", config.clone())
        .await
        .unwrap();
    assert_eq!(presented_cert(&old), first);

    tls.reload().unwrap();
    let mut new = tls_connect(addr, "localhost", config.clone())
        .await
        .unwrap();
    assert_eq!(presented_cert(&new), second);
    assert_eq!(round_trip(&mut old, b"old session").await, b"old session");
    assert_eq!(round_trip(&mut new, b"new session").await, b"new session");

    // A failed reload keeps the configuration in force.
    std::fs::write(&key, "not a key").unwrap();
    assert!(matches!(tls.reload(), Err(TlsError::NoKey { .. })));
    let newest = tls_connect(addr, "localhost", config).await.unwrap();
    assert_eq!(presented_cert(&newest), second);
}

#[test]
fn certificate_file_errors_name_the_file_and_the_problem() {
    let dir = TempDir::new("errors");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let load = || {
        TlsConfigHandle::load(TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap_err()
        .to_string()
    };

    let message = load();
    assert!(
        message.starts_with(&format!("cannot read {}", cert.display())),
        "{message}"
    );

    std::fs::write(&cert, "hello\n").unwrap();
    let message = load();
    assert!(message.contains(&cert.display().to_string()), "{message}");
    assert!(message.contains("no certificate found"), "{message}");

    write_self_signed(&cert, &key);
    let other_key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(&key, other_key.serialize_pem()).unwrap();
    let message = load();
    assert_eq!(
        message,
        format!(
            "the private key in {} does not match the certificate in {}",
            key.display(),
            cert.display()
        )
    );
}
