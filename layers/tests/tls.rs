//! TLS between scipp peers: the matrix of certificates, in process.
//!
//! Each refusal is a typed error on the accepting side, raised by the TLS
//! handshake: the SCIPP handshake never starts, so no `Aid` and no `Start`
//! is read and nothing is routed (the endpoint counts its calls).
#![cfg(feature = "tls")]

mod pki;

use pki::Ca;
use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::peer::{Channel, Peer, PeerError};
use scipp_layers::route::Endpoints;
use scipp_layers::tls::{PeerIdentity, TlsAcceptor, TlsConnector, TlsError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::{CertificateError, Error as RustlsError};

const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

/// A server peer whose only endpoint counts its calls.
fn counting_server() -> (Peer<MsgpackCodec>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut endpoints = Endpoints::new();
    let counter = calls.clone();
    endpoints.rpc("svc", "count", move |_: BTreeMap<String, ()>| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(n) }
    });
    (
        Peer::new("scipp_svc", MsgpackCodec::new()).endpoints(endpoints),
        calls,
    )
}

type Accepted = Result<(Channel<MsgpackCodec>, Option<PeerIdentity>), TlsError>;
type Connected = Result<(Channel<MsgpackCodec>, PeerIdentity), TlsError>;

/// Runs both handshakes over an in-memory stream.
async fn handshake(acceptor: &TlsAcceptor, connector: &TlsConnector) -> (Accepted, Connected) {
    let (server, calls) = counting_server();
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let (a, b) = tokio::io::duplex(1 << 16);
    let (accepted, connected) = within(async {
        tokio::join!(
            acceptor.accept(&server, a),
            connector.channel(&client, b, "svc.test")
        )
    })
    .await;
    if let Ok((chan, _)) = &connected {
        let n: usize = within(chan.rpc("svc", "count", &BTreeMap::<String, ()>::new()))
            .await
            .unwrap();
        assert_eq!(n, 1);
    } else {
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing routed");
    }
    (accepted, connected)
}

fn rustls_error(e: &TlsError) -> &RustlsError {
    e.rustls_error()
        .unwrap_or_else(|| panic!("not a TLS handshake error: {e:?}"))
}

struct Pki {
    ca: Ca,
    server: pki::Pem,
}

fn pki() -> Pki {
    let ca = Ca::new("scipp test CA");
    let server = ca.leaf(&["svc.test", "127.0.0.1"]);
    Pki { ca, server }
}

impl Pki {
    fn acceptor(&self, client_ca: Option<&str>) -> TlsAcceptor {
        TlsAcceptor::from_pem(
            self.server.cert.as_bytes(),
            self.server.key.as_bytes(),
            client_ca.map(str::as_bytes),
        )
        .unwrap()
    }

    fn connector(&self, client: Option<&pki::Pem>) -> TlsConnector {
        TlsConnector::from_pem(
            self.ca.pem().as_bytes(),
            client.map(|c| (c.cert.as_bytes(), c.key.as_bytes())),
        )
        .unwrap()
    }
}

#[tokio::test]
async fn server_only_tls_carries_the_channel_and_names_the_server() {
    let pki = pki();
    let (accepted, connected) = handshake(&pki.acceptor(None), &pki.connector(None)).await;
    let (_served, client_identity) = accepted.unwrap();
    let (_chan, server_identity) = connected.unwrap();
    assert_eq!(client_identity, None);
    assert_eq!(server_identity.dns_names(), ["svc.test"]);
    assert!(server_identity.has_name("svc.test"));
}

#[tokio::test]
async fn mutual_tls_names_the_client_to_the_layers_above() {
    let pki = pki();
    let client = pki.ca.leaf(&["client-a.test"]);
    let (accepted, connected) = handshake(
        &pki.acceptor(Some(&pki.ca.pem())),
        &pki.connector(Some(&client)),
    )
    .await;
    let (_served, client_identity) = accepted.unwrap();
    let client_identity = client_identity.expect("a client certificate");
    assert_eq!(client_identity.dns_names(), ["client-a.test"]);
    assert!(!client_identity.has_name("svc.test"));
    assert!(connected.unwrap().1.has_name("svc.test"));
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_by_the_client() {
    let pki = pki();
    let stranger = Ca::new("another CA");
    let connector = TlsConnector::from_pem(stranger.pem().as_bytes(), None).unwrap();
    let (accepted, connected) = handshake(&pki.acceptor(None), &connector).await;
    let refused = connected.expect_err("unknown issuer");
    assert!(
        matches!(
            rustls_error(&refused),
            RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{refused:?}"
    );
    let told = accepted.expect_err("the client hung up with an alert");
    assert!(
        matches!(rustls_error(&told), RustlsError::AlertReceived(_)),
        "{told:?}"
    );
}

#[tokio::test]
async fn a_server_certificate_for_another_name_is_refused() {
    let pki = pki();
    let (server, _) = counting_server();
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let (a, b) = tokio::io::duplex(1 << 16);
    let acceptor = pki.acceptor(None);
    let connector = pki.connector(None);
    let (_, connected) = within(async {
        tokio::join!(
            acceptor.accept(&server, a),
            connector.channel(&client, b, "other.test")
        )
    })
    .await;
    let refused = connected.expect_err("wrong name");
    assert!(
        matches!(
            rustls_error(&refused),
            RustlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{refused:?}"
    );
}

/// Under mutual TLS the server refuses the client's certificate during the
/// TLS handshake; the client (TLS 1.3) learns it from the alert that comes
/// instead of the server's `Aid`.
async fn refused_client(client: Option<&pki::Pem>, pki: &Pki) -> RustlsError {
    let (accepted, connected) =
        handshake(&pki.acceptor(Some(&pki.ca.pem())), &pki.connector(client)).await;
    let told = connected.expect_err("the server refused us");
    assert!(
        matches!(
            told,
            TlsError::Handshake(_) | TlsError::Peer(PeerError::Transport(_))
        ),
        "{told:?}"
    );
    let refused = accepted.expect_err("refused");
    rustls_error(&refused).clone()
}

#[tokio::test]
async fn a_missing_client_certificate_is_refused() {
    let pki = pki();
    let why = refused_client(None, &pki).await;
    assert!(
        matches!(why, RustlsError::NoCertificatesPresented),
        "{why:?}"
    );
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = pki();
    let stranger = Ca::new("another CA").leaf(&["client-a.test"]);
    let why = refused_client(Some(&stranger), &pki).await;
    assert!(
        matches!(
            why,
            RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{why:?}"
    );
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let pki = pki();
    let expired = pki.ca.expired_leaf(&["client-a.test"]);
    let why = refused_client(Some(&expired), &pki).await;
    assert!(
        matches!(
            why,
            RustlsError::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{why:?}"
    );
}

#[tokio::test]
async fn a_plain_scipp_peer_is_refused_by_a_tls_acceptor() {
    let pki = pki();
    let (server, calls) = counting_server();
    let plain = Peer::new("scipp_client", MsgpackCodec::new());
    let (a, b) = tokio::io::duplex(1 << 16);
    let acceptor = pki.acceptor(None);
    let (accepted, connected) =
        within(async { tokio::join!(acceptor.accept(&server, a), plain.channel(b)) }).await;
    let refused = accepted.expect_err("an Aid is no ClientHello");
    assert!(matches!(refused, TlsError::Handshake(_)), "{refused:?}");
    assert!(connected.is_err(), "no Aid comes back");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_silent_connection_ends_with_a_handshake_timeout() {
    let pki = pki();
    let (server, _) = counting_server();
    let (a, _silent) = tokio::io::duplex(1 << 16);
    let acceptor = pki
        .acceptor(None)
        .handshake_timeout(Duration::from_millis(100));
    let refused = within(acceptor.accept(&server, a))
        .await
        .expect_err("nothing arrives");
    assert!(
        matches!(refused, TlsError::HandshakeTimeout(d) if d == Duration::from_millis(100)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn tls_over_tcp_checks_the_address_it_dialed() {
    let pki = pki();
    let (server, _) = counting_server();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = pki.acceptor(None);
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (chan, _) = acceptor.accept(&server, tcp).await.unwrap();
        chan.closed().await;
    });
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    // the certificate lists 127.0.0.1: the dialed IP is the name checked
    let (chan, server_identity) = within(pki.connector(None).connect(&client, &addr, None))
        .await
        .unwrap();
    assert!(server_identity.has_name("svc.test"));
    let n: usize = within(chan.rpc("svc", "count", &BTreeMap::<String, ()>::new()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    drop(chan);
    within(serving).await.unwrap();
}

/// A server whose authorization trusts a certificate, not a name: over
/// mutual TLS, the client whose certificate names `admin.test` may cancel
/// the actor and call `svc:secret`; another client, claiming the very same
/// `Aid` name, is refused both with a typed `PermissionError` while its
/// allowed call succeeds on the same channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_by_certificate_identity_over_mutual_tls() {
    use scipp_layers::authorize::AuthorizeLayer;
    use scipp_layers::context::ContextError;
    use scipp_layers::server::ServeConfig;
    use std::sync::Mutex;

    let pki = pki();
    let mut endpoints = Endpoints::new();
    endpoints.rpc("svc", "count", |_: BTreeMap<String, ()>| async { Ok(1) });
    endpoints.rpc("svc", "secret", |_: BTreeMap<String, ()>| async { Ok(42) });
    let rules = AuthorizeLayer::new()
        .allow("svc", "count")
        .allow_for_identity("admin.test", "svc", "secret")
        .trust_identity("admin.test");
    // what each channel's layer was made from
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = Peer::new("scipp_svc", MsgpackCodec::new())
        .endpoints(endpoints)
        .inbound_message_layer_fn(move |info| {
            let names = info.identity().map(|id| id.dns_names().to_vec());
            record
                .lock()
                .unwrap()
                .push((names, info.remote_addr(), info.peer().name.clone()));
            rules.for_channel(info)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ServeConfig {
        tls: Some(Arc::new(pki.acceptor(Some(&pki.ca.pem())))),
        ..ServeConfig::default()
    };
    let served = server.serve_with(listener, config);
    let addr = served.local_addr().clone();
    let connect = |cert: pki::Pem| {
        let connector = pki.connector(Some(&cert));
        let addr = addr.clone();
        async move {
            // both claim the same name: only the certificate differs
            let me = Peer::new("scipp_client", MsgpackCodec::new());
            let (chan, _) = within(connector.connect(&me, &addr, Some("svc.test")))
                .await
                .unwrap();
            chan
        }
    };
    let no_kwargs = BTreeMap::<String, ()>::new();
    let refused = |result: Result<usize, ContextError>, what: &str| match result {
        Err(ContextError::Remote(err)) => {
            assert_eq!(err.boxed_type(), "PermissionError", "{err}");
            assert!(err.traceback().contains(what), "{err}");
            assert!(err.traceback().contains("guest.test"), "{err}");
        }
        other => panic!("expected a PermissionError, got {other:?}"),
    };

    let guest = connect(pki.ca.leaf(&["guest.test"])).await;
    let n: usize = within(guest.rpc("svc", "count", &no_kwargs)).await.unwrap();
    assert_eq!(n, 1);
    refused(
        within(guest.rpc("svc", "secret", &no_kwargs)).await,
        "may not call `svc:secret`",
    );
    refused(
        within(guest.cancel_actor()).await.map(|()| 0),
        "may not cancel this actor",
    );
    let n: usize = within(guest.rpc("svc", "count", &no_kwargs)).await.unwrap();
    assert_eq!(n, 1, "the channel keeps serving");
    use futures_util::FutureExt;
    assert!(
        served.cancel_requested().now_or_never().is_none(),
        "a refused cancel reached the actor"
    );

    let admin = connect(pki.ca.leaf(&["admin.test"])).await;
    let n: usize = within(admin.rpc("svc", "secret", &no_kwargs))
        .await
        .unwrap();
    assert_eq!(n, 42);
    within(admin.cancel_actor()).await.unwrap();
    within(served.cancel_requested()).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one layer per channel: {seen:?}");
    for ((names, from, peer), expected) in seen.iter().zip(["guest.test", "admin.test"]) {
        assert_eq!(names.as_deref(), Some(&[expected.to_owned()][..]));
        assert!(from.is_some_and(|a| a.ip().is_loopback()), "{from:?}");
        assert_eq!(peer, "scipp_client");
    }
    within(served.shutdown()).await.unwrap();
}

/// Per-identity rules on a layer that never saw its channel allow nothing
/// (fail closed), and the layer still applies its rules for everyone.
#[tokio::test]
async fn identity_rules_without_channel_info_allow_nothing() {
    use scipp_layers::authorize::AuthorizeLayer;
    let (server, _) = counting_server();
    let server = server.inbound_message_layer(
        AuthorizeLayer::new()
            .allow("svc", "count")
            .trust_identity("scipp_client"),
    );
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let (a, b) = tokio::io::duplex(1 << 16);
    let (_served, chan) = within(async { tokio::join!(server.accept(a), client.channel(b)) }).await;
    let chan = chan.unwrap();
    let n: usize = within(chan.rpc("svc", "count", &BTreeMap::<String, ()>::new()))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let err = within(chan.cancel_actor()).await.unwrap_err();
    assert!(err.to_string().contains("PermissionError"), "{err}");
}
