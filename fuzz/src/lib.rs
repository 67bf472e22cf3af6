//! What every decoder target checks, whatever the codec.

use scipp_codecs::Codec;

/// Decodes `data`; whatever decodes must re-encode, decode again to the
/// same message, and its payload must decode as `Any`. Never panics on
/// peer input: only a broken invariant does.
pub fn decode_roundtrip<C: Codec>(codec: &C, data: &[u8]) {
    let Ok(msg) = codec.decode(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let again = codec
        .encode_to_bytes(&msg)
        .expect("a decoded message encodes");
    assert_eq!(codec.decode(again).expect("and decodes again"), msg);
    if let Some(pld) = msg.pld() {
        let _ = codec.decode_payload::<rmpv::Value>(pld);
    }
}

use bytes::Bytes;
use scipp_codecs::msg::{Cid, Msg, RawPayload, Uid, Yield};
use scipp_layers::codec::CodecLayer;
use scipp_layers::msg_type::EnforceMsgTypeLayer;
use scipp_layers::payload::{PayloadSpecs, PldSpec, ValidatePayloadLayer};
use scipp_layers::{BoxError, Inbound};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use tower::{Layer, Service};

/// Polls a future that the layers complete without waiting (every service
/// here is ready at once); a future that would wait is a broken invariant.
fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a layer waited on an always-ready service"),
    }
}

/// Splits `data` into `(sent_by_us, frame body)` records:
/// `[direction: u8][len: u16 LE][body]`, the last one cut short if the
/// data ends early.
pub fn records(mut data: &[u8]) -> Vec<(bool, &[u8])> {
    let mut out = Vec::new();
    while let [dir, lo, hi, rest @ ..] = data {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
        out.push((dir & 1 == 1, &rest[..len]));
        data = &rest[len..];
    }
    out
}

/// A sequence of frames, each either received from the peer (through the
/// codec, message-type and payload layers of the receive stack) or sent by
/// us (through the same layer values' send side).
///
/// Checks: nothing panics; every received frame comes out of the stack as
/// exactly one item (a message or a typed error, never lost or doubled);
/// every error renders and packs into a wire `Error` that encodes; the
/// number of live dialogs never exceeds the `Start`s accepted.
pub fn dialog<C: scipp_codecs::Codec + Clone + 'static>(codec: C, data: &[u8]) {
    let me = Uid::new("fuzz", "00000000-0000-0000-0000-000000000000");
    let enforce = EnforceMsgTypeLayer::expecting_handshake();
    let validate = ValidatePayloadLayer::new(codec.clone(), PayloadSpecs::new(PldSpec::any()));
    let delivered: Rc<RefCell<Vec<Inbound>>> = Rc::default();
    let sink = delivered.clone();
    let app = tower::service_fn(move |item: Inbound| {
        sink.borrow_mut().push(item);
        std::future::ready(Ok::<_, BoxError>(()))
    });
    let mut receive = CodecLayer::new(codec.clone())
        .layer(enforce.layer(validate.layer(app)));
    let wire = tower::service_fn(|_: Msg| std::future::ready(Ok::<_, BoxError>(())));
    let mut send = enforce.layer(validate.layer(wire));

    let (mut received, mut starts) = (0, 0);
    for (sent_by_us, body) in records(data) {
        if sent_by_us {
            let Ok(msg) = codec.decode(Bytes::copy_from_slice(body)) else {
                continue;
            };
            let is_start = matches!(msg, Msg::Start(_));
            if now(Service::<Msg>::call(&mut send, msg)).is_ok() && is_start {
                starts += 1;
            }
        } else {
            let frame = Bytes::copy_from_slice(body);
            let before = delivered.borrow().len();
            now(Service::<Bytes>::call(&mut receive, frame)).expect("the app never fails");
            received += 1;
            let items = delivered.borrow();
            assert_eq!(items.len(), before + 1, "one item per received frame");
            match &items[before] {
                Inbound::Msg(Msg::Start(_)) => starts += 1,
                Inbound::Msg(_) => {}
                Inbound::Invalid(err) => {
                    let _ = (err.tractor_message(), err.summary(), err.to_string());
                    let wire = Msg::Error(Box::new(err.to_wire(&me)));
                    codec.encode_to_bytes(&wire).expect("a packed error encodes");
                }
            }
        }
        assert!(enforce.live_dialogs() <= starts);
    }
    assert_eq!(delivered.borrow().len(), received);
}

/// Arbitrary bytes as the payload of a `Yield` in a context whose spec is
/// `Any`: whatever the codec accepts passes the spec, decodes as a dynamic
/// value within the depth bound, renders for an error message, and
/// re-encodes to a fixpoint. A typed spec that refuses it gives a typed
/// error, never a panic.
pub fn payload_any<C: scipp_codecs::Codec>(codec: &C, data: &[u8]) {
    let cid = Cid::from("fuzz");
    let msg = Msg::Yield(Yield {
        cid,
        pld: RawPayload::new(Bytes::copy_from_slice(data)),
    });
    let Ok(frame) = codec.encode_to_bytes(&msg) else {
        return;
    };
    let Ok(msg) = codec.decode(frame) else {
        return;
    };
    PldSpec::<C>::any()
        .validate(codec, &msg, None)
        .expect("Any accepts every well-formed payload");
    let typed = PldSpec::<C>::of::<Option<i64>>().validate(codec, &msg, None);
    if let Err(err) = typed {
        let _ = err.tractor_message();
    }
    let pld = msg.pld().expect("a Yield has a payload");
    if let Ok(value) = codec.decode_payload::<rmpv::Value>(pld) {
        let once = codec.encode_payload(&value).expect("a decoded value encodes");
        let back: rmpv::Value = codec.decode_payload(&once).expect("and decodes");
        let twice = codec.encode_payload(&back).expect("encodes again");
        assert_eq!(once.as_bytes(), twice.as_bytes());
    }
}
