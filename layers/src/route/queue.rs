//! A context's inbound queue: bounded, in order, and free while empty.
//!
//! tokio's mpsc channel allocates its first block (32 slots, 2 KiB of
//! `Inbound`s) when it is created; with thousands of mostly idle contexts
//! per channel that was half of what an open context cost (measured with
//! the throughput harness's counting allocator). This queue is a
//! `VecDeque` that allocates on the first message, behind a mutex, with
//! two `Notify`s for the reader and for senders waiting for room. Its
//! interface mirrors the mpsc one it replaces.
//!
//! Wake-ups and locks are the expensive part of a hand-off, so there are
//! few: a push wakes the reader only when it waits, and the reader takes
//! everything queued in one lock (swapping in its empty buffer), so a
//! busy stream costs it one lock and at most one wake-up per batch, and
//! senders waiting for room are woken once per batch, not per item.

use crate::Inbound;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio::sync::Notify;

struct Queue {
    state: Mutex<State>,
    senders: AtomicUsize,
    /// The reader waits here for an item or the end.
    readable: Notify,
    /// Senders wait here for room.
    writable: Notify,
    cap: usize,
}

#[derive(Default)]
struct State {
    items: VecDeque<Inbound>,
    /// No sender is left: once empty, the reader sees the end.
    no_senders: bool,
    /// The reader is gone: sends fail.
    no_reader: bool,
    /// The reader found the queue empty and waits on `readable`.
    reader_waits: bool,
    /// Some sender found the queue full and waits on `writable`.
    senders_wait: bool,
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, State> {
        // every critical section is one push, pop or flag update
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item`, or hands it back; `wait_for_room` marks a sender as
    /// waiting when the queue is full. Closed once the reader is gone, or
    /// once every counted sender is (for a [`Pusher`]).
    fn push(&self, item: Inbound, wait_for_room: bool) -> Result<(), TrySendError<Inbound>> {
        let mut state = self.state();
        if state.no_reader || state.no_senders {
            return Err(TrySendError::Closed(item));
        }
        if state.items.len() >= self.cap {
            state.senders_wait |= wait_for_room;
            return Err(TrySendError::Full(item));
        }
        state.items.push_back(item);
        let wake = std::mem::take(&mut state.reader_waits);
        drop(state);
        if wake {
            // stores a permit if the reader has not started waiting yet
            self.readable.notify_one();
        }
        Ok(())
    }
}

/// A bounded queue of `cap` items (at least 1).
pub(crate) fn channel(cap: usize) -> (Sender, Receiver) {
    let queue = Arc::new(Queue {
        state: Mutex::new(State::default()),
        senders: AtomicUsize::new(1),
        readable: Notify::new(),
        writable: Notify::new(),
        cap: cap.max(1),
    });
    (
        Sender(queue.clone()),
        Receiver {
            queue,
            batch: VecDeque::new(),
        },
    )
}

pub(crate) struct Sender(Arc<Queue>);

/// A queue handle that is not counted as a sender (see [`Sender::pusher`]).
pub(crate) struct Pusher(Arc<Queue>);

impl Pusher {
    /// Queues `item` if there is room and the queue still has a sender.
    pub(crate) fn try_send(&self, item: Inbound) -> Result<(), TrySendError<Inbound>> {
        self.0.push(item, false)
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::Relaxed);
        Sender(self.0.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.state().no_senders = true;
            self.0.readable.notify_one();
        }
    }
}

impl Sender {
    /// Queues `item` if there is room.
    pub(crate) fn try_send(&self, item: Inbound) -> Result<(), TrySendError<Inbound>> {
        self.0.push(item, false)
    }

    /// Queues `item`, or hands it back; `wait_for_room` marks this sender
    /// as waiting when the queue is full.
    fn push(&self, item: Inbound, wait_for_room: bool) -> Result<(), TrySendError<Inbound>> {
        self.0.push(item, wait_for_room)
    }

    /// A handle that queues like this sender without counting as one: the
    /// router caches it for the last context it delivered to. Once every
    /// sender is gone, its pushes fail as `Closed`, so a context whose
    /// slot was removed gets nothing more through a cached handle.
    pub(crate) fn pusher(&self) -> Pusher {
        Pusher(self.0.clone())
    }

    /// Queues `item`, waiting for room.
    pub(crate) async fn send(&self, mut item: Inbound) -> Result<(), SendError<Inbound>> {
        loop {
            let room = self.0.writable.notified();
            tokio::pin!(room);
            // listen before trying: `notify_waiters` reaches only
            // listeners, and room may be made right after the try
            room.as_mut().enable();
            match self.push(item, true) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => item = back,
            }
            room.await;
        }
    }
}

/// The reading end. It takes the whole queue at once (one lock per batch,
/// not per item) and hands the items out from its own buffer: the queue
/// and that buffer each hold at most `cap` items, so a context buffers at
/// most `2 * cap`.
pub(crate) struct Receiver {
    queue: Arc<Queue>,
    /// Items taken from the queue, not yet handed out.
    batch: VecDeque<Inbound>,
}

impl Receiver {
    /// The next item; `None` once every sender is gone and the queue is
    /// drained.
    pub(crate) async fn recv(&mut self) -> Option<Inbound> {
        if let Some(item) = self.batch.pop_front() {
            return Some(item);
        }
        loop {
            {
                let mut state = self.queue.state();
                if !state.items.is_empty() {
                    // the empty buffer (with its allocation) goes back
                    std::mem::swap(&mut state.items, &mut self.batch);
                    let room = std::mem::take(&mut state.senders_wait);
                    drop(state);
                    if room {
                        self.queue.writable.notify_waiters();
                    }
                    return self.batch.pop_front();
                }
                if state.no_senders {
                    return None;
                }
                // a push from now on wakes us (or leaves a permit)
                state.reader_waits = true;
            }
            self.queue.readable.notified().await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let dropped = {
            let mut state = self.queue.state();
            state.no_reader = true;
            std::mem::take(&mut state.items)
        };
        drop(dropped);
        self.queue.writable.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scipp_codecs::msg::{Msg, Stop};

    fn item(i: usize) -> Inbound {
        Inbound::Msg(Msg::Stop(Stop {
            cid: format!("c{i}").as_str().into(),
        }))
    }

    fn cid(item: &Inbound) -> String {
        item.cid().unwrap().to_string()
    }

    #[tokio::test]
    async fn in_order_bounded_and_ends_when_the_senders_go() {
        let (tx, mut rx) = channel(2);
        tx.try_send(item(0)).unwrap();
        tx.try_send(item(1)).unwrap();
        assert!(matches!(tx.try_send(item(2)), Err(TrySendError::Full(_))));
        let waiting = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(item(2)).await.is_ok() })
        };
        assert_eq!(cid(&rx.recv().await.unwrap()), "c0");
        assert!(waiting.await.unwrap(), "room made wakes a waiting sender");
        drop(tx);
        assert_eq!(cid(&rx.recv().await.unwrap()), "c1");
        assert_eq!(cid(&rx.recv().await.unwrap()), "c2");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn the_reader_takes_the_queue_as_a_batch_and_buffers_at_most_twice_its_room() {
        let (tx, mut rx) = channel(4);
        for i in 0..4 {
            tx.try_send(item(i)).unwrap();
        }
        let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
        let waiting = {
            let tx = tx.clone();
            tokio::spawn(async move {
                tx.send(item(4)).await.unwrap();
                sent_tx.send(()).unwrap();
            })
        };
        // let the sender find the queue full and wait
        while !rx.queue.state().senders_wait {
            tokio::task::yield_now().await;
        }
        // one recv takes all four: the queue is empty, the sender gets room
        assert_eq!(cid(&rx.recv().await.unwrap()), "c0");
        sent.recv().await.unwrap();
        waiting.await.unwrap();
        for i in 5..8 {
            tx.try_send(item(i)).unwrap();
        }
        assert!(
            matches!(tx.try_send(item(8)), Err(TrySendError::Full(_))),
            "the queue holds 4 (c4..c7) beside the reader's batch (c1..c3): bounded"
        );
        for i in 1..8 {
            assert_eq!(cid(&rx.recv().await.unwrap()), format!("c{i}"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_wakes_a_waiting_reader_and_a_permit_is_not_lost() {
        let (tx, mut rx) = channel(4);
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(item) = rx.recv().await {
                got.push(cid(&item));
            }
            got
        });
        for i in 0..10_000 {
            if i % 7 == 0 {
                tokio::task::yield_now().await; // let the reader catch up and wait
            }
            tx.send(item(i)).await.unwrap();
        }
        drop(tx);
        let got = reading.await.unwrap();
        let want: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn sends_fail_once_the_reader_is_gone() {
        let (tx, rx) = channel(1);
        tx.try_send(item(0)).unwrap();
        let blocked = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(item(1)).await.is_err() })
        };
        tokio::task::yield_now().await;
        drop(rx);
        assert!(blocked.await.unwrap());
        assert!(matches!(tx.try_send(item(2)), Err(TrySendError::Closed(_))));
    }

    #[tokio::test]
    async fn a_pusher_is_closed_once_the_senders_are_gone() {
        let (tx, mut rx) = channel(4);
        let pusher = tx.pusher();
        pusher.try_send(item(0)).unwrap();
        assert_eq!(cid(&rx.recv().await.unwrap()), "c0");
        drop(tx);
        // the context's slot (its sender) is gone: a cached handle must not
        // reach its reader any more
        assert!(matches!(
            pusher.try_send(item(1)),
            Err(TrySendError::Closed(_))
        ));
        assert!(rx.recv().await.is_none(), "the reader sees the end");
    }
}
