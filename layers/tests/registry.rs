//! Joining a tractor tree: wire-profile selection in the handshake, and the
//! registrar from both sides, scipp <-> scipp over loopback TCP.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use scipp_codecs::msg::{Addr, Aid, Msg};
use scipp_codecs::{msgpack::MsgpackCodec, Codec, WireProfile};
use scipp_layers::examples;
use scipp_layers::framing::FramingLayer;
use scipp_layers::peer::{Config, Peer};
use scipp_layers::registry::{Registrar, RegistryClient, RegistryError};
use scipp_layers::route::Endpoints;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::Layer;
#[path = "../../tests/support/transcripts.rs"]
mod support;
use support::unhex;

/// Bounds every wait that could hang: a hang fails the test.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

/// Serves `peer` on a loopback TCP port; its address.
async fn listen(peer: Peer<MsgpackCodec>) -> Addr {
    listen_on("127.0.0.1:0", peer).await
}

/// Serves `peer` on TCP at `bind`; the bound address (wildcards stay).
async fn listen_on(bind: &str, peer: Peer<MsgpackCodec>) -> Addr {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let peer = peer.clone();
            tokio::spawn(async move {
                if let Ok(chan) = peer.accept(tcp).await {
                    chan.closed().await;
                }
            });
        }
    });
    Addr::Tcp {
        host: addr.ip().to_string(),
        port: addr.port(),
    }
}

/// A scipp registrar on loopback TCP, registered in its own table as
/// tractor's is.
async fn registrar() -> (Registrar, Addr) {
    registrar_on("127.0.0.1:0").await
}

async fn registrar_on(bind: &str) -> (Registrar, Addr) {
    let registrar = Registrar::new();
    let mut endpoints = Endpoints::new();
    registrar.install(&mut endpoints);
    let peer = Peer::new("scipp_registrar", MsgpackCodec::new())
        .endpoints(endpoints)
        .is_registrar(true);
    let uid = peer.uid();
    let addr = listen_on(bind, peer).await;
    registrar.register(uid, addr.clone());
    (registrar, addr)
}

fn with_profile(peer: Peer<MsgpackCodec>, profile: WireProfile) -> Peer<MsgpackCodec> {
    peer.config(Config {
        profile: Some(profile),
        ..Config::default()
    })
}

#[tokio::test]
async fn register_find_connect_by_name_and_unregister() {
    let (registrar, registry_addr) = registrar().await;
    // a service registers itself
    let service = Peer::new("scipp_svc", MsgpackCodec::new()).endpoints(examples::scipp_peer());
    let service_addr = listen(service.clone()).await;
    let its_registry = within(RegistryClient::connect(&service, &registry_addr))
        .await
        .unwrap();
    let registration = within(its_registry.register_peer(&service, &service_addr))
        .await
        .unwrap();
    assert_eq!(
        registrar.find("scipp_svc"),
        Some(vec![service_addr.clone()])
    );

    // a client finds it by name and calls it
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let registry = within(RegistryClient::connect(&client, &registry_addr))
        .await
        .unwrap();
    assert_eq!(
        within(registry.find("scipp_svc")).await.unwrap(),
        vec![service_addr.clone()]
    );
    let by_uuid = within(registry.find(&service.uid().uuid)).await.unwrap();
    assert_eq!(
        by_uuid,
        vec![service_addr.clone()],
        "tractor matches the uuid too"
    );
    let chan = within(registry.connect_to(&client, "scipp_svc"))
        .await
        .unwrap();
    assert_eq!(chan.peer(), &service.uid());
    let by_name = within(client.connect_by_name(&registry_addr, "scipp_svc"))
        .await
        .unwrap();
    assert_eq!(by_name.peer(), &service.uid());
    let sum: i64 = within(chan.rpc(examples::NS, "add", &BTreeMap::from([("a", 2), ("b", 3)])))
        .await
        .unwrap();
    assert_eq!(sum, 5);
    let entries = within(registry.entries()).await.unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");

    // a clean shutdown unregisters
    within(registration.unregister()).await.unwrap();
    assert!(within(registry.find("scipp_svc")).await.unwrap().is_empty());
    let gone = within(registry.connect_to(&client, "scipp_svc")).await;
    assert!(
        matches!(gone, Err(RegistryError::NotFound(ref n)) if n == "scipp_svc"),
        "{gone:?}"
    );
    assert_eq!(registrar.entries().len(), 1, "only the registrar itself");
}

#[tokio::test]
async fn a_dropped_registration_unregisters_in_the_background() {
    let (registrar, registry_addr) = registrar().await;
    let service = Peer::new("scipp_svc", MsgpackCodec::new());
    let registry = within(RegistryClient::connect(&service, &registry_addr))
        .await
        .unwrap();
    let addr: Addr = "127.0.0.1:4242".parse().unwrap();
    let registration = within(registry.register_peer(&service, &addr))
        .await
        .unwrap();
    drop(registration);
    // no sleeping: round trips on the same channel until the background
    // unregister (spawned by the drop) has been served
    within(async {
        while registrar.find("scipp_svc").is_some() {
            registry.entries().await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn wait_for_actor_blocks_until_the_name_registers() {
    let (_registrar, registry_addr) = registrar().await;
    let waiter = Peer::new("scipp_waiter", MsgpackCodec::new());
    let waiting = within(RegistryClient::connect(&waiter, &registry_addr))
        .await
        .unwrap();
    let pending = {
        let waiting = waiting.clone();
        tokio::spawn(async move { waiting.wait_for("scipp_late").await })
    };
    // a round trip on the same channel: the wait's Start is served by now
    within(waiting.entries()).await.unwrap();
    assert!(!pending.is_finished(), "nothing named scipp_late yet");

    let late = Peer::new("scipp_late", MsgpackCodec::new());
    let registry = within(RegistryClient::connect(&late, &registry_addr))
        .await
        .unwrap();
    let addr: Addr = "127.0.0.1:4243".parse().unwrap();
    within(registry.register(&late.uid(), &addr)).await.unwrap();
    assert_eq!(within(pending).await.unwrap().unwrap(), [addr]);
}

#[tokio::test]
async fn registry_shapes_follow_the_callers_profile() {
    let (_registrar, registry_addr) = registrar().await;
    let head = with_profile(
        Peer::new("scipp_head", MsgpackCodec::new()),
        WireProfile::Head,
    );
    let old = with_profile(
        Peer::new("scipp_old", MsgpackCodec::new()),
        WireProfile::V978691c6,
    );
    let head_reg = within(RegistryClient::connect(&head, &registry_addr))
        .await
        .unwrap();
    let old_reg = within(RegistryClient::connect(&old, &registry_addr))
        .await
        .unwrap();
    assert_eq!(head_reg.channel().profile(), WireProfile::Head);
    assert_eq!(old_reg.channel().profile(), WireProfile::V978691c6);

    // HEAD registers `addr=`: an actor may hold several addresses
    let (a, b): (Addr, Addr) = (
        "127.0.0.1:5001".parse().unwrap(),
        "127.0.0.1:5002".parse().unwrap(),
    );
    within(head_reg.register(&head.uid(), &a)).await.unwrap();
    within(head_reg.register(&head.uid(), &b)).await.unwrap();
    assert_eq!(
        within(head_reg.find("scipp_head")).await.unwrap(),
        [a.clone(), b]
    );
    // a 978691c6 caller gets tractor 978691c6's single `[host, port]`
    assert_eq!(
        within(old_reg.find("scipp_head")).await.unwrap(),
        vec![a.clone()]
    );
    // and its `sockaddr=` registration replaces
    within(old_reg.register(&old.uid(), &a)).await.unwrap();
    let c: Addr = "127.0.0.1:5003".parse().unwrap();
    within(old_reg.register(&old.uid(), &c)).await.unwrap();
    assert_eq!(within(old_reg.find("scipp_old")).await.unwrap(), [c]);
    // the address `a` moved to scipp_old: HEAD evicts it from scipp_head
    let head_now = within(head_reg.find("scipp_head")).await.unwrap();
    assert_eq!(head_now, ["127.0.0.1:5002".parse::<Addr>().unwrap()]);
}

/// The recorded client `Aid` frame body of `set/handshake.json`.
fn recorded_client_aid(set: &str) -> Bytes {
    let path = format!(
        "{}/../vectors/{set}/handshake.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let hex = file["frames"][0]["hex"].as_str().unwrap();
    Bytes::from(unhex(hex)).slice(4..)
}

/// What our accepting side answers to the recorded client `Aid` of `set`:
/// our `Aid` frame's keys, and the decoded `Aid`.
async fn answer_to(set: &str, peer: Peer<MsgpackCodec>) -> (Vec<String>, Aid, WireProfile) {
    let (ours, theirs) = tokio::io::duplex(4096);
    let mut raw = FramingLayer::new().layer(theirs);
    raw.send(recorded_client_aid(set)).await.unwrap();
    let chan = within(peer.accept(ours)).await.unwrap();
    let body = within(raw.next()).await.unwrap().unwrap();
    let value = rmpv::decode::read_value(&mut &body[..]).unwrap();
    let keys = value
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap().to_owned())
        .collect();
    let Msg::Aid(aid) = MsgpackCodec::new().decode(body).unwrap() else {
        panic!("not an Aid")
    };
    (keys, *aid, chan.profile())
}

#[tokio::test]
async fn the_accepting_side_answers_in_the_peers_profile() {
    let peer = Peer::new("scipp_peer", MsgpackCodec::new());
    let (keys, aid, profile) = answer_to("tractor-head", peer.clone()).await;
    assert_eq!(profile, WireProfile::Head);
    assert_eq!(
        keys,
        [
            "msg_type",
            "name",
            "uuid",
            "pid",
            "is_registrar",
            "is_probe"
        ]
    );
    assert_eq!(aid.pid, Some(u64::from(std::process::id())));
    assert_eq!(
        aid.is_registrar,
        Some(false),
        "HEAD reads nil as a registrar"
    );

    let (keys, _, profile) = answer_to("tractor", peer).await;
    assert_eq!(profile, WireProfile::V978691c6);
    assert_eq!(keys, ["msg_type", "name", "uuid"]);

    let registrar = Peer::new("scipp_registrar", MsgpackCodec::new()).is_registrar(true);
    let (_, aid, _) = answer_to("tractor-head", registrar).await;
    assert_eq!(aid.is_registrar, Some(true));
}

#[tokio::test]
async fn a_fixed_profile_wins_over_the_peers() {
    let peer = with_profile(
        Peer::new("scipp_peer", MsgpackCodec::new()),
        WireProfile::V978691c6,
    );
    let (keys, _, profile) = answer_to("tractor-head", peer).await;
    assert_eq!(profile, WireProfile::V978691c6);
    assert_eq!(keys, ["msg_type", "name", "uuid"]);
}

/// A service listening on every interface registers the address of the
/// interface that reaches the registrar, and a client reaches it there.
async fn wildcard_listener_registers_a_routable_address(wildcard: &str, registrar_bind: &str) {
    let (registrar, registry_addr) = registrar_on(registrar_bind).await;
    let service = Peer::new("scipp_svc", MsgpackCodec::new()).endpoints(examples::scipp_peer());
    let listening = listen_on(wildcard, service.clone()).await;
    assert!(
        scipp_layers::registry::is_wildcard(&listening),
        "{listening}"
    );
    let its_registry = within(RegistryClient::connect(&service, &registry_addr))
        .await
        .unwrap();
    let registration = within(its_registry.register_peer(&service, &listening))
        .await
        .unwrap();
    let (Addr::Tcp { host, .. }, Addr::Tcp { port, .. }) = (&registry_addr, &listening) else {
        unreachable!("TCP both")
    };
    let expected = Addr::Tcp {
        host: host.clone(),
        port: *port,
    };
    assert_eq!(registration.addr(), &expected);
    assert_eq!(registrar.find("scipp_svc"), Some(vec![expected]));

    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let chan = within(client.connect_by_name(&registry_addr, "scipp_svc"))
        .await
        .unwrap();
    let sum: i64 = within(chan.rpc(examples::NS, "add", &BTreeMap::from([("a", 2), ("b", 3)])))
        .await
        .unwrap();
    assert_eq!(sum, 5);
}

#[tokio::test]
async fn a_wildcard_ipv4_listener_registers_the_interface_that_reaches_the_registrar() {
    wildcard_listener_registers_a_routable_address("0.0.0.0:0", "127.0.0.1:0").await;
}

#[tokio::test]
async fn a_wildcard_ipv6_listener_registers_the_interface_that_reaches_the_registrar() {
    wildcard_listener_registers_a_routable_address("[::]:0", "[::1]:0").await;
}

#[tokio::test]
async fn an_advertised_address_is_registered_as_given() {
    let (registrar, registry_addr) = registrar().await;
    let service = Peer::new("scipp_svc", MsgpackCodec::new());
    let registry = within(RegistryClient::connect(&service, &registry_addr))
        .await
        .unwrap();
    let advertised: Addr = "[2001:db8::7]:4242".parse().unwrap();
    let registration = within(registry.register_peer(&service, &advertised))
        .await
        .unwrap();
    assert_eq!(registration.addr(), &advertised);
    assert_eq!(registrar.find("scipp_svc"), Some(vec![advertised]));
}

#[tokio::test]
async fn a_wildcard_registration_is_refused_on_both_sides() {
    let (registrar, registry_addr) = registrar().await;
    let service = Peer::new("scipp_svc", MsgpackCodec::new());
    let wildcard: Addr = "0.0.0.0:4242".parse().unwrap();

    // the client refuses to send it
    let registry = within(RegistryClient::connect(&service, &registry_addr))
        .await
        .unwrap();
    let refused = within(registry.register(&service.uid(), &wildcard)).await;
    assert!(
        matches!(refused, Err(RegistryError::Unroutable(ref a)) if *a == wildcard),
        "{refused:?}"
    );
    // a client that does not know its end of the connection cannot make it routable
    let chan = within(service.connect_addr(&registry_addr)).await.unwrap();
    let blind = RegistryClient::new(chan);
    let refused = within(blind.register_peer(&service, &wildcard)).await;
    assert!(
        matches!(refused, Err(RegistryError::Unroutable(_))),
        "{refused:?}"
    );

    // the registrar refuses it from anyone else (a tractor actor, say)
    #[derive(serde::Serialize)]
    struct Register<'a> {
        uid: &'a scipp_codecs::msg::Uid,
        addr: &'a Addr,
    }
    let raw = blind.channel();
    for wildcard in ["0.0.0.0:4242", "[::]:4242"] {
        let wildcard: Addr = wildcard.parse().unwrap();
        let answer: Result<(), _> = within(raw.rpc(
            "self",
            "register_actor",
            &Register {
                uid: &service.uid(),
                addr: &wildcard,
            },
        ))
        .await;
        let err = answer.expect_err("a wildcard registration is refused");
        assert!(err.to_string().contains("wildcard"), "{err}");
    }
    assert_eq!(registrar.find("scipp_svc"), None);
}
