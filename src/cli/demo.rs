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
    println!("scipp demo: tractor's SCIPP wire, end to end\n");
    let codec = MsgpackCodec::new();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(echo_peer(listener, codec));

    println!("1. A typed context dialog over loopback TCP {addr} (msgpack, tractor's wire)\n");
    println!("   dir    size   kind      cid       detail");
    let me = Aid::new("scipp_client", "e6c23380-01c1-472d-a24d-7e06a1f1cbe5");
    let mut chan = Chan {
        io: FramingLayer::new().layer(TcpStream::connect(addr).await?),
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
    println!(
        "\n   {} answered: first = {first:?}, echoed {echoed:?}, returned {count}\n",
        peer.name
    );

    println!("2. Bad input gets a typed error, never a panic\n");
    let bad_tag = Bytes::from_static(b"\x82\xa8msg_type\xa4Yeld\xa3cid\xa2c1");
    let err = codec.decode(bad_tag).unwrap_err();
    println!("   a frame with msg_type \"Yeld\":   {err}");
    let no_cid = Bytes::from_static(b"\x82\xa8msg_type\xa5Yield\xa3pld\x01");
    println!(
        "   a Yield without a cid:          {}",
        codec.decode(no_cid).unwrap_err()
    );
    let raw = codec.encode_payload("not-an-int")?;
    let err = codec.decode_payload::<i64>(&raw).unwrap_err();
    println!("   \"not-an-int\" decoded as an int: {err}");
    Ok(())
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
        println!(
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
        println!(
            "   s2c {:>6} B  {}",
            body.len(),
            render::msg(&self.codec, &msg)
        );
        Ok(msg)
    }
}

/// The other end: an `echo` context endpoint as `scipp_peer` serves it.
async fn echo_peer(listener: TcpListener, codec: MsgpackCodec) -> Result<(), CliError> {
    let (tcp, _) = listener.accept().await?;
    let mut io = FramingLayer::new().layer(tcp);
    let me = Aid::new("scipp_peer", "659aea7d-8870-4c70-8c64-345c54084a49");
    io.send(codec.encode_to_bytes(&Msg::from(me))?).await?;
    let mut count = 0u64;
    while let Some(frame) = io.next().await {
        let reply = match codec.decode(frame?)? {
            Msg::Start(start) => {
                let ack = Msg::StartAck(StartAck {
                    cid: start.cid.clone(),
                    functype: FuncType::Context,
                });
                io.send(codec.encode_to_bytes(&ack)?).await?;
                let kwargs: std::collections::BTreeMap<String, rmpv::Value> =
                    codec.decode_payload(&start.kwargs)?;
                let first = kwargs.get("first").cloned().unwrap_or(rmpv::Value::Nil);
                Msg::Started(Started {
                    cid: start.cid,
                    pld: codec.encode_payload(&first)?,
                })
            }
            Msg::Yield(y) => {
                count += 1;
                Msg::Yield(y)
            }
            Msg::Stop(stop) => Msg::Return(Return {
                cid: stop.cid,
                pld: codec.encode_payload(&count)?,
            }),
            _ => continue,
        };
        io.send(codec.encode_to_bytes(&reply)?).await?;
    }
    Ok(())
}
