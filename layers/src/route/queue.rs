//! A context's inbound queue: bounded, in order, and free while empty.
//!
//! tokio's mpsc channel allocates its first block (32 slots, 2 KiB of
//! `Inbound`s) when it is created; with thousands of mostly idle contexts
//! per channel that was half of what an open context cost (measured with
//! the throughput harness's counting allocator). This queue is a
//! `VecDeque` that allocates on the first message, behind a mutex, with
//! two `Notify`s for the reader and for senders waiting for room. Its
//! interface mirrors the mpsc one it replaces.

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
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, State> {
        // every critical section is one push, pop or flag update
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
    (Sender(queue.clone()), Receiver(queue))
}

pub(crate) struct Sender(Arc<Queue>);

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
        let mut state = self.0.state();
        if state.no_reader {
            return Err(TrySendError::Closed(item));
        }
        if state.items.len() >= self.0.cap {
            return Err(TrySendError::Full(item));
        }
        state.items.push_back(item);
        drop(state);
        self.0.readable.notify_one();
        Ok(())
    }

    /// Queues `item`, waiting for room.
    pub(crate) async fn send(&self, mut item: Inbound) -> Result<(), SendError<Inbound>> {
        loop {
            let room = self.0.writable.notified();
            tokio::pin!(room);
            // listen before trying, so room made in between is not missed
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => item = back,
            }
            room.await;
        }
    }
}

pub(crate) struct Receiver(Arc<Queue>);

impl Receiver {
    /// The next item; `None` once every sender is gone and the queue is
    /// drained.
    pub(crate) async fn recv(&mut self) -> Option<Inbound> {
        loop {
            let ready = self.0.readable.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut state = self.0.state();
                if let Some(item) = state.items.pop_front() {
                    let more = !state.items.is_empty();
                    drop(state);
                    self.0.writable.notify_one();
                    if more {
                        // leave the permit for the next call
                        self.0.readable.notify_one();
                    }
                    return Some(item);
                }
                if state.no_senders {
                    return None;
                }
            }
            ready.await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let dropped = {
            let mut state = self.0.state();
            state.no_reader = true;
            std::mem::take(&mut state.items)
        };
        drop(dropped);
        self.0.writable.notify_waiters();
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
}
