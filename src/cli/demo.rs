//! `scipp demo`: the guided tour.
//!
//! Today it shows the wire end to end: two endpoints in one process talk
//! over loopback TCP through the framing layer and tractor's msgpack codec,
//! one typed context dialog, printed frame by frame; then what a bad frame
//! and a bad payload look like to a user.

use super::{render, CliError};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use scipp::framing::FramingLayer;
use scipp::msg::*;
use scipp::{Codec, MsgpackCodec};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_util_framed::Framed;
use tower::Layer;

mod tokio_util_framed {
    pub(crate) type Framed =
        tokio_util::codec::Framed<tokio::net::TcpStream, scipp::framing::FrameCodec>;
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Point {
    x: i64,
    y: i64,
}

pub(crate) fn run() -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tour())
}

async fn tour() -> Result<(), CliError> {
    out!("scipp demo: tractor's SCIPP wire, end to end\n");
    let codec = MsgpackCodec::new();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let peer =
            scipp::peer::Peer::new("scipp_peer", codec).endpoints(scipp::examples::scipp_peer());
        let chan = peer.channel(tcp).await?;
        chan.closed().await;
        Ok::<_, CliError>(())
    });

    out!("1. A typed context dialog over loopback TCP {addr} (msgpack, tractor's wire)\n");
    out!("   dir    size   kind      cid       detail");
    let me = Aid::new("scipp_client", "e6c23380-01c1-472d-a24d-7e06a1f1cbe5");
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut chan = Chan {
        io: FramingLayer::new().layer(tcp),
        codec,
    };
    chan.send(Msg::from(me.clone())).await?;
    let Msg::Aid(peer) = chan.recv().await? else {
        return Err("peer did not start with its Aid".into());
    };
    let cid = Cid::from("f3ae7fac-3352-4cf5-b26f-b29198be782c");
    chan.send(Msg::from(Start {
        cid: cid.clone(),
        ns: "scipp_peer".into(),
        func: "echo".into(),
        kwargs: codec.encode_payload(&serde_json_map("first", "hello"))?,
        uid: me.uid(),
        pld_spec: Start::DEFAULT_PLD_SPEC.into(),
    }))
    .await?;
    chan.recv().await?; // StartAck
    let Msg::Started(first) = chan.recv().await? else {
        return Err("expected Started".into());
    };
    let first: String = codec.decode_payload(&first.pld)?;
    let point = Point { x: 3, y: -4 };
    chan.send(Msg::Yield(Yield {
        cid: cid.clone(),
        pld: codec.encode_payload(&point)?,
    }))
    .await?;
    let Msg::Yield(echo) = chan.recv().await? else {
        return Err("expected a Yield".into());
    };
    let echoed: Point = codec.decode_payload(&echo.pld)?;
    let blob = serde_bytes::ByteBuf::from(vec![0xab; 300]);
    chan.send(Msg::Yield(Yield {
        cid: cid.clone(),
        pld: codec.encode_payload(&blob)?,
    }))
    .await?;
    chan.recv().await?;
    chan.send(Msg::Stop(Stop { cid: cid.clone() })).await?;
    let Msg::Return(ret) = chan.recv().await? else {
        return Err("expected Return".into());
    };
    let count: u64 = codec.decode_payload(&ret.pld)?;
    drop(chan); // EOF ends the peer's loop, as in tractor
    server.await??;
    out!(
        "\n   {} answered: first = {first:?}, echoed {echoed:?}, returned {count}\n",
        peer.name
    );

    typed_dialogs().await?;
    policies(codec).await?;
    cancel_and_errors().await?;

    out!("5. Bad input gets a typed error, never a panic\n");
    let bad_tag = Bytes::from_static(b"\x82\xa8msg_type\xa4Yeld\xa3cid\xa2c1");
    let err = codec.decode(bad_tag).unwrap_err();
    out!("   a frame with msg_type \"Yeld\":   {err}");
    let no_cid = Bytes::from_static(b"\x82\xa8msg_type\xa5Yield\xa3pld\x01");
    out!(
        "   a Yield without a cid:          {}",
        codec.decode(no_cid).unwrap_err()
    );
    let bad = Msg::Yield(Yield {
        cid: Cid::from("c1"),
        pld: codec.encode_payload("not-an-int")?,
    });
    let spec = scipp::payload::PldSpec::<MsgpackCodec>::of::<i64>();
    let err = spec.validate(&codec, &bad, Some(&me.uid())).unwrap_err();
    out!("   a Yield(\"not-an-int\") in an `int` context, as a MsgTypeError:\n");
    for line in err.to_string().lines() {
        out!("     | {line}");
    }

    out!("\n6. The codecs compared (Yield of each payload; encode = payload + envelope)\n");
    let rows = super::codecs::builtin(std::time::Duration::from_millis(40))?;
    super::codecs::print_table(&rows);
    out!("\n   Your own payloads: scipp codecs --payloads FILE.jsonl");
    supervised_tree().await
}

/// Section 2: the same bad `Yield` under each receive policy, through the
/// real stack (codec, msg-type, payload spec `int`, policy) over TCP.
async fn policies(codec: MsgpackCodec) -> Result<(), CliError> {
    out!("3. One bad payload under each policy (context spec: int)\n");
    out!("   the parent streams Yield(1), Yield(\"not-an-int\"), Yield(2) to an `echo_int` endpoint\n");
    for name in ["ignore-and-warn", "fail-fast", "relay-to-sender"] {
        let (delivered, relayed) = one_policy(codec, name).await?;
        out!("   {name:<16} endpoint got: {}", delivered.join(", "));
        if let Some(text) = relayed {
            out!("   {:<16} parent got back an Error:", "");
            for line in text.lines() {
                out!("   {:<18}| {line}", "");
            }
        }
    }
    out!();
    Ok(())
}

async fn one_policy(
    codec: MsgpackCodec,
    policy: &str,
) -> Result<(Vec<String>, Option<String>), CliError> {
    use scipp::payload::{PayloadSpecs, PldSpec, ValidatePayloadLayer};
    use scipp::{channel, codec::CodecLayer, msg_type::EnforceMsgTypeLayer, BoxError, Inbound};
    use tower::util::BoxCloneService;
    use tower::{ServiceBuilder, ServiceExt};

    let parent = Aid::new("scipp_client", "e6c23380-01c1-472d-a24d-7e06a1f1cbe5");
    let child = Aid::new("scipp_peer", "659aea7d-8870-4c70-8c64-345c54084a49");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut client = FramingLayer::new().layer(TcpStream::connect(listener.local_addr()?).await?);
    let (server, _) = listener.accept().await?;
    let (read, write) = server.into_split();

    // The endpoint's side: the stack, with the chosen policy on top.
    let (writer, _task) = channel::Writer::spawn(write, FramingLayer::new().codec(), 16);
    let enforce = EnforceMsgTypeLayer::new().peer(parent.uid());
    let specs = PayloadSpecs::new(PldSpec::<MsgpackCodec>::of::<i64>());
    let send = ServiceBuilder::new()
        .layer(ValidatePayloadLayer::new(codec, specs.clone()))
        .layer(enforce.clone())
        .layer(CodecLayer::new(codec))
        .service(writer);
    let (tx, mut got) = tokio::sync::mpsc::unbounded_channel::<Inbound>();
    let app = tower::service_fn(move |item: Inbound| {
        let tx = tx.clone();
        async move { tx.send(item).map_err(|_| BoxError::from("endpoint gone")) }
    });
    let checks = ServiceBuilder::new()
        .layer(CodecLayer::new(codec).peer(parent.uid()))
        .layer(enforce)
        .layer(ValidatePayloadLayer::new(codec, specs).peer(parent.uid()));
    let stack: BoxCloneService<bytes::Bytes, (), BoxError> = match policy {
        "ignore-and-warn" => {
            BoxCloneService::new(checks.layer(scipp::policy::ignore_and_warn()).service(app))
        }
        "fail-fast" => BoxCloneService::new(checks.layer(scipp::policy::fail_fast()).service(app)),
        _ => BoxCloneService::new(
            checks
                .layer(scipp::policy::relay_to_sender(send.clone(), child.uid()))
                .service(app),
        ),
    };
    let reader = tokio::spawn(channel::drive(
        tokio_util::codec::FramedRead::new(read, FramingLayer::new().codec()),
        stack,
    ));

    // The parent's side, by hand: Start, then (after our Started) a stream.
    let cid = Cid::from("5f1c0f7e-6a3b-4d0e-9a51-1f0e2a3b4c5d");
    let kwargs = codec.encode_payload(&std::collections::BTreeMap::<String, i64>::new())?;
    let start = Start {
        cid: cid.clone(),
        ns: "scipp_peer".into(),
        func: "echo_int".into(),
        kwargs,
        uid: parent.uid(),
        pld_spec: Start::DEFAULT_PLD_SPEC.into(),
    };
    client
        .send(codec.encode_to_bytes(&Msg::from(start))?)
        .await?;
    got.recv().await.ok_or("no Start")?;
    let started = Msg::Started(Started {
        cid: cid.clone(),
        pld: codec.encode_payload(&0)?,
    });
    send.clone().oneshot(started).await?;
    client.next().await.ok_or("no Started")??;
    for v in [
        rmpv::Value::from(1),
        rmpv::Value::from("not-an-int"),
        rmpv::Value::from(2),
    ] {
        let y = Msg::Yield(Yield {
            cid: cid.clone(),
            pld: codec.encode_payload(&v)?,
        });
        client.send(codec.encode_to_bytes(&y)?).await?;
    }
    client
        .send(codec.encode_to_bytes(&Msg::Stop(Stop { cid: cid.clone() }))?)
        .await?;

    let mut delivered = Vec::new();
    loop {
        match got.recv().await {
            Some(Inbound::Msg(Msg::Yield(y))) => delivered.push(render::payload(&codec, &y.pld)),
            Some(Inbound::Msg(Msg::Stop(_))) => {
                delivered.push("Stop".into());
                break;
            }
            Some(Inbound::Msg(_)) => {}
            Some(Inbound::Invalid(e)) => {
                delivered.push(format!("MsgTypeError({})", e.value().unwrap_or("?")))
            }
            None => break,
        }
        if policy == "fail-fast" && delivered.len() == 2 {
            break; // nothing more of this context will come
        }
    }
    let relayed = if policy == "relay-to-sender" {
        match codec.decode(client.next().await.ok_or("no relayed Error")??)? {
            Msg::Error(e) => e.message,
            other => return Err(format!("expected an Error, got {:?}", other.kind()).into()),
        }
    } else {
        None
    };
    drop(client);
    reader.await??;
    Ok((delivered, relayed))
}

fn serde_json_map(key: &str, value: &str) -> std::collections::BTreeMap<String, String> {
    [(key.to_owned(), value.to_owned())].into_iter().collect()
}

struct Chan {
    io: Framed,
    codec: MsgpackCodec,
}

impl Chan {
    async fn send(&mut self, msg: Msg) -> Result<(), CliError> {
        let body = self.codec.encode_to_bytes(&msg)?;
        out!(
            "   c2s {:>6} B  {}",
            body.len(),
            render::msg(&self.codec, &msg)
        );
        self.io.send(body).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Msg, CliError> {
        let body = self.io.next().await.ok_or("peer closed the connection")??;
        let msg = self.codec.decode(body.clone())?;
        out!(
            "   s2c {:>6} B  {}",
            body.len(),
            render::msg(&self.codec, &msg)
        );
        Ok(msg)
    }
}

/// Two real peers over loopback TCP, speaking `codec`.
async fn peers<C: Codec>(
    codec: C,
) -> Result<(scipp::peer::Channel<C>, scipp::peer::Channel<C>), CliError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server = scipp::peer::Peer::new("scipp_peer", codec.clone())
        .endpoints(scipp::examples::scipp_peer());
    let client = scipp::peer::Peer::new("scipp_client", codec);
    let connect = TcpStream::connect(listener.local_addr()?);
    let (accepted, connected) = tokio::join!(listener.accept(), connect);
    let (accepted, connected) = (accepted?.0, connected?);
    // Small request/response messages: no Nagle delay.
    accepted.set_nodelay(true)?;
    connected.set_nodelay(true)?;
    let (served, chan) = tokio::join!(server.channel(accepted), client.channel(connected));
    Ok((served?, chan?))
}

/// Section 2: the same typed dialog (`Point|int|None` spec) on each codec.
async fn typed_dialogs() -> Result<(), CliError> {
    out!("2. A typed context on each codec (two peers, loopback TCP, spec Point|int|None)\n");
    out!(
        "   {:<9} {:<18} {:<26} {:<8} {:>9}",
        "codec",
        "Started",
        "stream (sent → echoed)",
        "Return",
        "time"
    );
    dialog_on(MsgpackCodec::new()).await?;
    dialog_on(scipp::CborCodec::new()).await?;
    dialog_on(scipp::ProtobufCodec::new()).await?;
    out!();
    Ok(())
}

async fn dialog_on<C: Codec>(codec: C) -> Result<(), CliError> {
    use scipp::examples::{point_spec, Point, PointOrInt};
    let name = codec.name();
    let (_served, chan) = peers(codec).await?;
    let t0 = std::time::Instant::now();
    let (mut ctx, first): (_, PointOrInt) = chan
        .open_context("scipp_peer", "echo_point")
        .spec(point_spec())
        .start()
        .await?;
    let sent = [Point { x: 1, y: 2 }, Point { x: -3, y: 4 }];
    let mut echoed = 0;
    for p in &sent {
        ctx.send(&PointOrInt::Point(*p)).await?;
        if ctx.recv::<PointOrInt>().await? == Some(PointOrInt::Point(*p)) {
            echoed += 1;
        }
    }
    ctx.close().await?;
    let count: i64 = ctx.result().await?;
    let first = match first {
        PointOrInt::Point(p) => format!("Point({}, {})", p.x, p.y),
        other => format!("{other:?}"),
    };
    out!(
        "   {:<9} {:<18} {:<26} {:<8} {:>7.2}ms",
        name,
        first,
        format!("{} points → {} echoed", sent.len(), echoed),
        count,
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// Section 4: a cancelled context and a remote error with its trace.
async fn cancel_and_errors() -> Result<(), CliError> {
    out!("4. Cancellation and remote errors\n");
    let (_served, chan) = peers(MsgpackCodec::new()).await?;
    let (ctx, ()) = chan
        .open_context("scipp_peer", "sleep_forever")
        .start()
        .await?;
    let t0 = std::time::Instant::now();
    ctx.cancel().await?;
    out!(
        "   cancelled `sleep_forever`: self._cancel_task sent, ContextCancelled acked in {:.2} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    {
        let (_dropped, ()) = chan
            .open_context("scipp_peer", "sleep_forever")
            .start()
            .await?;
        // leaving the scope without a result cancels the remote task too
    }
    let (ctx, _ready): (_, String) = chan.open_context("scipp_peer", "raises").start().await?;
    match ctx.result::<()>().await {
        Err(scipp::context::ContextError::Remote(err)) => {
            out!("   `raises` failed remotely; the error as the caller sees it:\n");
            for line in err.to_string().lines() {
                out!("     | {line}");
            }
        }
        other => return Err(format!("expected a remote error, got {other:?}").into()),
    }
    out!();
    Ok(())
}

/// Section 7: an actor tree. This binary spawns two `scipp child`
/// processes in a nursery; one fails, its sibling is cancelled, both are
/// reaped.
async fn supervised_tree() -> Result<(), CliError> {
    use scipp::spawn::Nursery;
    use std::collections::BTreeMap;
    use std::time::Instant;

    out!("\n7. A supervised actor tree: two `scipp child` processes in a nursery\n");
    let nursery = Nursery::builder("scipp_demo", MsgpackCodec::new())
        .open()
        .await?;
    let t0 = Instant::now();
    let steady = nursery.start_actor(super::child::spec("steady")?).await?;
    let spawned = t0.elapsed();
    let sum: i64 = steady
        .rpc("scipp_peer", "add", &BTreeMap::from([("a", 2), ("b", 3)]))
        .await?;
    out!(
        "   started `steady` (pid {}) in {:.1} ms: spawn, connect back, SpawnSpec, register; add(2, 3) = {sum}",
        steady.pid(),
        spawned.as_secs_f64() * 1e3
    );
    let busy = {
        let steady = steady.clone();
        tokio::spawn(async move {
            let kwargs = BTreeMap::from([("secs", 3600.0)]);
            steady.rpc::<_, f64>("scipp_child", "sleep", &kwargs).await
        })
    };
    let t1 = Instant::now();
    let failed = nursery
        .run_in_actor::<_, ()>(
            super::child::spec("failing")?,
            "scipp_child",
            "fails",
            &BTreeMap::<String, ()>::new(),
        )
        .await;
    let failed_after = t1.elapsed();
    let t_failed = Instant::now();
    let status = steady.exited().await;
    let sibling_gone = t_failed.elapsed();
    let sleeping = busy.await?;
    out!(
        "   `failing` was spawned and raised within {:.1} ms; one cancels all: `steady`'s call ended ({}),",
        failed_after.as_secs_f64() * 1e3,
        if sleeping.is_err() { "cancelled" } else { "returned?!" },
    );
    out!(
        "   and `steady` exited ({status}) {:.1} ms after the error reached us",
        sibling_gone.as_secs_f64() * 1e3
    );
    if let Err(e) = failed {
        out!("   the nursery's error, naming the child:");
        for line in e.to_string().lines() {
            out!("     | {line}");
        }
    }
    let pids = nursery.all_pids();
    let t2 = Instant::now();
    let closed = nursery.close().await;
    let left = pids
        .iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .count();
    out!(
        "   closed in {:.1} ms ({}); child processes left: {left} of {}",
        t2.elapsed().as_secs_f64() * 1e3,
        match &closed {
            Ok(()) => "no failure".to_owned(),
            Err(e) => format!("{} failure(s) reported", e.failures().len()),
        },
        pids.len()
    );
    Ok(())
}
