//! scipp, as a user writes it: endpoints, `Peer::serve`, a channel.

use crate::{p50, Sample, CALLERS};
use scipp::context::ChildContext;
use scipp::payload::PldSpec;
use scipp::peer::{Channel, Peer};
use scipp::route::Endpoints;
use scipp::{Blob, BoxError, MsgpackCodec};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::net::SocketAddr;
use std::time::Instant;

/// `bench:stream`'s kwargs: `n` items, each an `i64` (`len` 0) or `len` bytes.
#[derive(Serialize, Deserialize)]
struct StreamKwargs {
    n: usize,
    len: usize,
}

/// A stream's `Return`: its item count, in the stream's type.
#[derive(Serialize)]
#[serde(untagged)]
enum Item {
    Int(i64),
    Bytes(ByteBuf),
}

/// `bench:unary`'s kwargs.
#[derive(Serialize, Deserialize)]
struct UnaryKwargs {
    x: i64,
}

fn endpoints() -> Endpoints<MsgpackCodec> {
    let mut e = Endpoints::new();
    e.context(
        "bench",
        "stream",
        PldSpec::any(),
        |mut ctx: ChildContext<MsgpackCodec>, kw: StreamKwargs| async move {
            // the context's spec covers `Started` and `Return` too: they
            // carry a value of the stream's type
            if kw.len == 0 {
                ctx.started(&0i64).await?;
                for i in 0..kw.n as i64 {
                    ctx.send(&i).await?;
                }
                ctx.close().await?;
                Ok::<_, BoxError>(Item::Int(kw.n as i64))
            } else {
                // shared, not copied: each send hands the writer this buffer
                let blob = Blob::from(vec![7u8; kw.len]);
                ctx.started(&Blob::default()).await?;
                for _ in 0..kw.n {
                    ctx.send(&blob).await?;
                }
                ctx.close().await?;
                Ok(Item::Bytes(ByteBuf::from(kw.n.to_le_bytes().to_vec())))
            }
        },
    );
    e.context(
        "bench",
        "echo",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<MsgpackCodec>, _: serde::de::IgnoredAny| async move {
            ctx.started(&0i64).await?;
            let mut n = 0i64;
            while let Some(v) = ctx.recv::<i64>().await? {
                ctx.send(&v).await?;
                n += 1;
            }
            Ok::<_, BoxError>(n)
        },
    );
    e.rpc("bench", "unary", |kw: UnaryKwargs| async move {
        Ok::<_, BoxError>(kw.x + 1)
    });
    e
}

pub(crate) async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Peer::new("bench_server", MsgpackCodec::new())
        .endpoints(endpoints())
        .serve(listener);
    // serves until the process exits
    std::mem::forget(server);
    addr
}

pub(crate) struct Client(Channel<MsgpackCodec>);

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let chan = Peer::new("bench_client", MsgpackCodec::new())
            .connect_tcp(addr)
            .await
            .unwrap();
        Client(chan)
    }

    pub(crate) async fn stream(&self, n: usize, len: usize) -> Sample {
        let start = Instant::now();
        let mut count = 0;
        if len == 0 {
            let (mut ctx, _): (_, i64) = self
                .0
                .open_context("bench", "stream")
                .kwargs(&StreamKwargs { n, len })
                .spec(PldSpec::of::<i64>())
                .start()
                .await
                .unwrap();
            while let Some(v) = ctx.recv::<i64>().await.unwrap() {
                assert_eq!(v, count as i64, "in order");
                count += 1;
            }
            assert_eq!(ctx.result::<i64>().await.unwrap(), n as i64);
        } else {
            // `Blob`: each item is a slice of the received frame, no copy
            let (mut ctx, _): (_, Blob) = self
                .0
                .open_context("bench", "stream")
                .kwargs(&StreamKwargs { n, len })
                .spec(PldSpec::of::<Blob>())
                .start()
                .await
                .unwrap();
            while let Some(v) = ctx.recv::<Blob>().await.unwrap() {
                assert_eq!(v.len(), len);
                count += 1;
            }
            let ret = ctx.result::<Blob>().await.unwrap();
            assert_eq!(&ret[..], n.to_le_bytes());
        }
        Sample {
            count,
            took: start.elapsed(),
        }
    }

    pub(crate) async fn unary_seq(&self, n: usize) -> Sample {
        let start = Instant::now();
        let mut count = 0;
        for i in 0..n as i64 {
            let r: i64 = self
                .0
                .rpc("bench", "unary", &UnaryKwargs { x: i })
                .await
                .unwrap();
            assert_eq!(r, i + 1);
            count += 1;
        }
        Sample {
            count,
            took: start.elapsed(),
        }
    }

    pub(crate) async fn unary_concurrent(&self, n: usize) -> Sample {
        let start = Instant::now();
        let callers: Vec<_> = (0..CALLERS)
            .map(|c| {
                let chan = self.0.clone();
                tokio::spawn(async move {
                    let mut count = 0;
                    for i in 0..(n / CALLERS) as i64 {
                        let x = i * CALLERS as i64 + c as i64;
                        let r: i64 = chan
                            .rpc("bench", "unary", &UnaryKwargs { x })
                            .await
                            .unwrap();
                        assert_eq!(r, x + 1);
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        let mut count = 0;
        for caller in callers {
            count += caller.await.unwrap();
        }
        Sample {
            count,
            took: start.elapsed(),
        }
    }

    pub(crate) async fn ping_pong(&self, n: usize) -> Sample {
        let (mut ctx, _): (_, i64) = self
            .0
            .open_context("bench", "echo")
            .spec(PldSpec::of::<i64>())
            .start()
            .await
            .unwrap();
        let mut rounds = Vec::with_capacity(n);
        for i in 0..n as i64 {
            let t = Instant::now();
            ctx.send(&i).await.unwrap();
            assert_eq!(ctx.recv::<i64>().await.unwrap(), Some(i));
            rounds.push(t.elapsed());
        }
        ctx.close().await.unwrap();
        assert_eq!(ctx.result::<i64>().await.unwrap(), n as i64);
        Sample {
            count: rounds.len(),
            took: p50(rounds),
        }
    }
}
