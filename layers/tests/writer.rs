//! The writer task and its handles: many senders at once keep each
//! one's order, a reader that stops bounds what is taken, dropping every
//! handle writes what was queued, and a writer that dies wakes its
//! waiting senders with an error.

use bytes::Bytes;
use futures_util::StreamExt;
use scipp_layers::channel::Writer;
use scipp_layers::framing::{Frame, FrameCodec};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::codec::FramedRead;
use tower::{Service, ServiceExt};

/// A frame of `len` bytes: the sender's tag, its sequence number, filler.
fn tagged(tag: u8, seq: u32, len: usize) -> Bytes {
    let mut v = vec![tag; len.max(5)];
    v[1..5].copy_from_slice(&seq.to_le_bytes());
    Bytes::from(v)
}

fn size_of_item(seq: u32) -> usize {
    match seq % 50 {
        0 => 20_000, // past the direct-write mark: out from its own buffer
        7 => 17_000, // likewise, as a head and a tail
        _ => 5 + (seq as usize * 13) % 300,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_senders_each_keep_their_order_and_lose_nothing() {
    let (a, b) = tokio::io::duplex(8 * 1024);
    let (writer, task) = Writer::spawn(a, FrameCodec::new(1 << 20), 8);
    let (senders, per) = (32u8, 400u32);
    let sending: Vec<_> = (0..senders)
        .map(|tag| {
            let mut w = writer.clone().vectored();
            tokio::spawn(async move {
                for seq in 0..per {
                    let body = tagged(tag, seq, size_of_item(seq));
                    let frame = if seq % 50 == 7 {
                        Frame::with_tail(body.slice(..100), body.slice(100..))
                    } else {
                        Frame::new(body)
                    };
                    w.ready().await.unwrap().call(frame).await.unwrap();
                    if seq % 31 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    drop(writer);
    let mut rx = FramedRead::new(b, FrameCodec::new(1 << 20));
    let mut next = vec![0u32; senders as usize];
    while let Some(frame) = rx.next().await {
        let frame = frame.unwrap();
        let tag = frame[0];
        let seq = u32::from_le_bytes(frame[1..5].try_into().unwrap());
        assert_eq!(
            seq, next[tag as usize],
            "sender {tag}: out of order or lost"
        );
        assert_eq!(frame, tagged(tag, seq, size_of_item(seq)), "bytes");
        next[tag as usize] += 1;
    }
    assert!(next.iter().all(|&n| n == per), "every frame: {next:?}");
    for s in sending {
        s.await.unwrap();
    }
    task.await.unwrap().unwrap();
}

/// With the clock paused, the runtime advances it only when every task
/// waits: the long sleep returns once the senders are stuck.
#[tokio::test(start_paused = true)]
async fn a_reader_that_stops_bounds_what_the_senders_get_out() {
    let (a, b) = tokio::io::duplex(4 * 1024);
    let queue = 4;
    let (writer, task) = Writer::spawn(a, FrameCodec::new(1 << 20), queue);
    let sent = Arc::new(AtomicUsize::new(0));
    let n = 1_000;
    let sending: Vec<_> = (0..8u8)
        .map(|tag| {
            let (mut w, sent) = (writer.clone(), sent.clone());
            tokio::spawn(async move {
                for seq in 0..n {
                    w.ready()
                        .await
                        .unwrap()
                        .call(tagged(tag, seq, 1024))
                        .await
                        .unwrap();
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    drop(writer);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let stuck_at = sent.load(Ordering::SeqCst);
    // on the way: the pipe (4 KiB), the batch being written, the queue
    assert!(
        stuck_at <= 4 + 2 * queue,
        "{stuck_at} frames past a stopped reader"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(sent.load(Ordering::SeqCst), stuck_at, "and stays there");
    let mut rx = FramedRead::new(b, FrameCodec::new(1 << 20));
    let mut got = 0;
    while let Some(frame) = rx.next().await {
        assert_eq!(frame.unwrap().len(), 1024);
        got += 1;
    }
    assert_eq!(got, 8 * n as usize);
    for s in sending {
        s.await.unwrap();
    }
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn dropping_every_handle_writes_what_was_queued_then_closes() {
    let (a, b) = tokio::io::duplex(64);
    let (mut writer, task) = Writer::spawn(a, FrameCodec::new(1 << 20), 16);
    let mut other = writer.clone();
    for i in 0..8u8 {
        let w = if i % 2 == 0 { &mut writer } else { &mut other };
        w.ready()
            .await
            .unwrap()
            .call(Bytes::from(vec![i; 40]))
            .await
            .unwrap();
    }
    drop((writer, other));
    let mut rx = FramedRead::new(b, FrameCodec::new(1 << 20));
    for i in 0..8u8 {
        assert_eq!(rx.next().await.unwrap().unwrap(), vec![i; 40]);
    }
    assert!(rx.next().await.is_none(), "then the end of the stream");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_writer_that_fails_wakes_its_waiting_senders_with_an_error() {
    let (a, b) = tokio::io::duplex(16);
    let (mut writer, task) = Writer::spawn(a, FrameCodec::new(1 << 20), 1);
    let mut blocked = writer.clone();
    // the task takes the first frame and blocks writing it; the second
    // fills the queue, so `blocked` waits for room
    writer
        .ready()
        .await
        .unwrap()
        .call(Bytes::from(vec![1; 64]))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    writer
        .ready()
        .await
        .unwrap()
        .call(Bytes::from(vec![2; 64]))
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { blocked.ready().await.map(|_| ()) });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    drop(b); // the write fails
    assert!(task.await.unwrap().is_err());
    assert!(waiting.await.unwrap().is_err(), "woken, with an error");
    assert!(writer.ready().await.is_err(), "and new calls fail");
}

#[tokio::test]
async fn an_oversize_frame_fails_its_call_and_the_writer_goes_on() {
    let (a, b) = tokio::io::duplex(1024);
    let (mut writer, _task) = Writer::spawn(a, FrameCodec::new(8), 1);
    let err = writer
        .ready()
        .await
        .unwrap()
        .call(Bytes::from_static(b"123456789"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    // its room came back
    writer
        .ready()
        .await
        .unwrap()
        .call(Bytes::from_static(b"ok"))
        .await
        .unwrap();
    let mut rx = FramedRead::new(b, FrameCodec::new(8));
    assert_eq!(rx.next().await.unwrap().unwrap(), "ok");
}
