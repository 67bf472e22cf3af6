//! A closure as a peer's receive policy: count and drop the bad payloads
//! of a lenient telemetry stream, fail a control dialog on its first one.
//!
//! The closure (`policy::from_fn`) is asked about every invalid item of
//! every context that has no policy of its own, and answers per message.
//! Here it drops what belongs to a context registered as lenient and
//! delivers the rest (the context's next receive fails with it).
//!
//! ```sh
//! cargo run --example closure_policy
//! ```

use scipp::context::{ChildContext, ContextError};
use scipp::msg::Cid;
use scipp::payload::PldSpec;
use scipp::peer::Peer;
use scipp::policy::{self, Action};
use scipp::route::Endpoints;
use scipp::{BoxError, MsgTypeError, MsgpackCodec};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A sensor that sometimes sends garbage instead of a reading.
fn sensor_endpoints() -> Endpoints<MsgpackCodec> {
    let mut endpoints = Endpoints::new();
    endpoints.context(
        "sensor",
        "readings",
        PldSpec::any(),
        |mut ctx: ChildContext<MsgpackCodec>, _: BTreeMap<String, i64>| async move {
            ctx.started(&0.0).await?;
            for i in 0..10 {
                if i % 3 == 2 {
                    ctx.send(&"sensor glitch").await?; // not a reading
                } else {
                    ctx.send(&(20.0 + f64::from(i) / 10.0)).await?;
                }
            }
            ctx.close().await?;
            Ok::<_, BoxError>(10)
        },
    );
    endpoints
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let lenient: Arc<Mutex<HashSet<Cid>>> = Arc::default();
    let dropped = Arc::new(AtomicU64::new(0));
    let decide = {
        let (lenient, dropped) = (lenient.clone(), dropped.clone());
        move |err: &MsgTypeError| {
            let is_lenient = err
                .cid()
                .is_some_and(|cid| lenient.lock().unwrap().contains(cid));
            if is_lenient {
                dropped.fetch_add(1, Ordering::Relaxed);
                Action::Drop
            } else {
                Action::Deliver
            }
        }
    };

    let server = Peer::new("sensor", MsgpackCodec::new())
        .endpoints(sensor_endpoints())
        .serve_tcp("127.0.0.1:0")
        .await?;
    let client = Peer::new("monitor", MsgpackCodec::new()).policy(policy::from_fn(decide));
    let chan = client.connect_addr(server.local_addr()).await?;
    println!("peer policy: {}", chan.stack().receive().last().unwrap());

    // telemetry: lenient, bad readings are counted and dropped
    let (mut telemetry, _): (_, f64) = chan
        .open_context("sensor", "readings")
        .spec(PldSpec::of::<f64>())
        .start()
        .await?;
    lenient.lock().unwrap().insert(telemetry.cid().clone());
    let mut readings = Vec::new();
    while let Some(r) = telemetry.recv::<f64>().await? {
        readings.push(r);
    }
    telemetry.result::<i64>().await?;
    println!(
        "telemetry: {} readings kept, {} bad payloads dropped",
        readings.len(),
        dropped.load(Ordering::Relaxed)
    );

    // control: the same bad payload fails the dialog
    let (mut control, _): (_, f64) = chan
        .open_context("sensor", "readings")
        .spec(PldSpec::of::<f64>())
        .start()
        .await?;
    let mut good = 0;
    loop {
        match control.recv::<f64>().await {
            Ok(Some(_)) => good += 1,
            Ok(None) => break,
            Err(ContextError::MsgType(err)) => {
                println!("control: failed after {good} readings: {}", err.summary());
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    control.cancel().await?;
    chan.close().await?;
    server.shutdown().await?;
    Ok(())
}
