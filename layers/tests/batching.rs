//! The receive path hands items over in batches (a context takes its whole
//! queue at once): every item still arrives exactly once and in order, on
//! many contexts at a time, and a reader that stops still bounds what the
//! sender gets out.

use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::context::ChildContext;
use scipp_layers::payload::PldSpec;
use scipp_layers::peer::{Config, Peer};
use scipp_layers::route::Endpoints;
use scipp_layers::BoxError;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

type C = MsgpackCodec;

#[derive(Serialize, Deserialize)]
struct Kw {
    n: u64,
    tag: u64,
}

/// `t:tagged` streams `n` items `(tag, seq)`; `t:blobs` streams `n` 1 KiB
/// blobs, counting each one it got out in `sent`.
fn endpoints(sent: Arc<AtomicUsize>) -> Endpoints<C> {
    let mut e = Endpoints::<C>::new();
    e.context(
        "t",
        "tagged",
        PldSpec::of::<(u64, u64)>(),
        |mut ctx: ChildContext<C>, kw: Kw| async move {
            ctx.started(&(kw.tag, 0u64)).await?;
            for seq in 0..kw.n {
                ctx.send(&(kw.tag, seq)).await?;
            }
            ctx.close().await?;
            Ok::<_, BoxError>((kw.tag, kw.n))
        },
    );
    e.context(
        "t",
        "blobs",
        PldSpec::of::<ByteBuf>(),
        move |mut ctx: ChildContext<C>, kw: Kw| {
            let sent = sent.clone();
            async move {
                let blob = ByteBuf::from(vec![1u8; 1024]);
                ctx.started(&ByteBuf::new()).await?;
                for _ in 0..kw.n {
                    ctx.send(&blob).await?;
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                ctx.close().await?;
                Ok::<_, BoxError>(ByteBuf::new())
            }
        },
    );
    e
}

fn small_queues() -> Config {
    Config {
        queue: 4,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_contexts_at_once_each_get_every_item_once_and_in_order() {
    let server = Peer::new("server", C::new())
        .endpoints(endpoints(Arc::default()))
        .config(small_queues());
    let client = Peer::new("client", C::new()).config(small_queues());
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
    let (_served, chan) = (served.unwrap(), chan.unwrap());
    let n = 2_000u64;
    let readers: Vec<_> = (0..64u64)
        .map(|tag| {
            let chan = chan.clone();
            tokio::spawn(async move {
                let (mut ctx, first): (_, (u64, u64)) = chan
                    .open_context("t", "tagged")
                    .kwargs(&Kw { n, tag })
                    .spec(PldSpec::of::<(u64, u64)>())
                    .start()
                    .await
                    .unwrap();
                assert_eq!(first, (tag, 0));
                let mut next = 0;
                while let Some((got_tag, seq)) = ctx.recv::<(u64, u64)>().await.unwrap() {
                    assert_eq!(got_tag, tag, "an item of another context");
                    assert_eq!(seq, next, "context {tag}: out of order or twice");
                    next += 1;
                    if seq % 97 == 0 {
                        // let the queue fill up behind a slow reader
                        tokio::task::yield_now().await;
                    }
                }
                assert_eq!(next, n, "context {tag}: every item");
                assert_eq!(ctx.result::<(u64, u64)>().await.unwrap(), (tag, n));
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
}

/// With the clock paused, the runtime advances it only when every task
/// waits: the long sleep returns once the sender is stuck.
#[tokio::test(start_paused = true)]
async fn a_reader_that_stops_bounds_what_the_sender_gets_out() {
    let sent = Arc::new(AtomicUsize::new(0));
    let server = Peer::new("server", C::new())
        .endpoints(endpoints(sent.clone()))
        .config(small_queues());
    let client = Peer::new("client", C::new()).config(small_queues());
    let (a, b) = tokio::io::duplex(16 * 1024);
    let (served, chan) = tokio::join!(server.accept(a), client.channel(b));
    let (_served, chan) = (served.unwrap(), chan.unwrap());
    let n = 20_000u64;
    let (mut ctx, _): (_, ByteBuf) = chan
        .open_context("t", "blobs")
        .kwargs(&Kw { n, tag: 0 })
        .spec(PldSpec::of::<ByteBuf>())
        .start()
        .await
        .unwrap();
    assert_eq!(ctx.recv::<ByteBuf>().await.unwrap().unwrap().len(), 1024);
    // the reader stops: the sender fills what is on the way, then waits
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let stuck_at = sent.load(Ordering::SeqCst);
    // on the way: both context queues and batches (4 + 4 each), the
    // writer's queue, the duplex (16 KiB), the reader's buffer
    assert!(
        stuck_at < 400,
        "the sender got {stuck_at} KiB out past a reader that stopped"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sent.load(Ordering::SeqCst), stuck_at, "and stays there");
    // reading again lets it finish, nothing lost
    let mut got = 1;
    while let Some(blob) = ctx.recv::<ByteBuf>().await.unwrap() {
        assert_eq!(blob.len(), 1024);
        got += 1;
    }
    assert_eq!(got, n);
    assert_eq!(sent.load(Ordering::SeqCst), n as usize);
}
