//! Playing the client side of a recorded transcript against one of our
//! peers: shared by the root crate's `replay.rs` and `layers/`'s
//! `examples.rs` (included with `#[path]`, as `transcripts.rs` is).

use crate::support::unhex;
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

/// Sends the recorded client frames of `path`'s transcript over `client`
/// (framed, towards our peer) byte for byte, and hands each frame our peer
/// sends, with the recorded one, to `check`. `serving` is our peer's
/// accept: our `Aid` only follows the client's, so it is awaited once that
/// is out, and its channel is kept to the end. Returns how many frames
/// were compared.
pub(crate) async fn play<F, E, T, P>(
    path: &Path,
    frames: &[serde_json::Value],
    mut client: F,
    serving: tokio::task::JoinHandle<Result<T, P>>,
    mut check: impl FnMut(&str, &Bytes, &Bytes),
) -> usize
where
    F: Sink<Bytes> + Stream<Item = Result<Bytes, E>> + Unpin,
    <F as Sink<Bytes>>::Error: Debug,
    E: Debug,
    P: Debug,
{
    let mut serving = Some(serving);
    let mut channel = None;
    let mut compared = 0;
    for f in frames {
        let at = format!("{} seq {}", path.display(), f["seq"]);
        let body = Bytes::from(unhex(f["hex"].as_str().unwrap())).slice(4..);
        if f["dir"] == "c2s" {
            client
                .send(body)
                .await
                .unwrap_or_else(|e| panic!("{at}: send: {e:?}"));
            if f["msg_type"] == "Aid" {
                channel = Some(serving.take().unwrap().await.unwrap().unwrap());
            }
            continue;
        }
        let ours = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .unwrap_or_else(|_| panic!("{at}: our peer sent nothing (expected {})", f["msg_type"]))
            .unwrap_or_else(|| panic!("{at}: our peer closed"))
            .unwrap();
        check(&at, &ours, &body);
        compared += 1;
    }
    drop(channel);
    compared
}
