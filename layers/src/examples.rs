//! The example endpoints of ns `scipp_peer`, behaving as the tractor server
//! of the golden transcripts does (`vectors/tractor/README.md`). `scipp
//! serve` serves them; the transcript replay tests play against them.
//!
//! | func | kind | payload spec | behaviour |
//! |---|---|---|---|
//! | `echo` | context | Any | `started(first)`, echo each streamed value, return the count |
//! | `echo_int` | context | int | the same, for ints (`first` defaults to 0) |
//! | `echo_point` | context | `Point\|int\|None` | `started(Point(0, 0))`, echo, return the count |
//! | `bad_yield` | context | int | `started(0)`, `Yield(1)`, `Yield("not-an-int")`, then wait to be cancelled |
//! | `raises` | context | Any | `started("ready")`, then raise `ValueError('scipp_peer.raises: boom')` |
//! | `bad_started` | context | int | `started("not-an-int")`, refused by send-side validation |
//! | `sleep_forever` | context | Any | `started(None)`, then wait to be cancelled |
//! | `add` | asyncfunc | – | return `a + b` |
//!
//! ```
//! use scipp_layers::examples;
//! use scipp_codecs::msgpack::MsgpackCodec;
//! let endpoints = examples::scipp_peer::<MsgpackCodec>();
//! assert!(endpoints.contains("scipp_peer", "echo_point"));
//! ```

use crate::context::ChildContext;
use crate::payload::PldSpec;
use crate::relay::Raise;
use crate::route::Endpoints;
use crate::BoxError;
use scipp_codecs::Codec;
use serde::{Deserialize, Serialize};

/// The namespace of the example endpoints.
pub const NS: &str = "scipp_peer";

/// `Point = {x: int, y: int}`, a plain map on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// x
    pub x: i64,
    /// y
    pub y: i64,
}

/// `echo_point`'s payload spec, `Point|int|None`, as an untagged enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointOrInt {
    /// A point.
    Point(Point),
    /// An int.
    Int(i64),
    /// None.
    None(()),
}

/// The spec of `echo_point`.
pub fn point_spec<C: Codec>() -> PldSpec<C> {
    PldSpec::of::<PointOrInt>().named("Point|int|None")
}

#[derive(Deserialize)]
struct First<T> {
    first: Option<T>,
}

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// No keyword arguments: like the Python endpoints, any keyword is a
/// `TypeError` (an empty struct takes no field).
#[derive(Deserialize)]
struct NoKwargs {}

async fn echo_loop<C: Codec, T>(ctx: &mut ChildContext<C>) -> Result<u64, BoxError>
where
    T: Serialize + serde::de::DeserializeOwned + 'static,
{
    let mut n = 0;
    while let Some(v) = ctx.recv::<T>().await? {
        ctx.send(&v).await?;
        n += 1;
    }
    Ok(n)
}

/// All example endpoints, ns `scipp_peer`.
pub fn scipp_peer<C: Codec>() -> Endpoints<C> {
    let mut e = Endpoints::new();
    e.context(
        NS,
        "echo",
        PldSpec::any(),
        |mut ctx: ChildContext<C>, kw: First<rmpv::Value>| async move {
            ctx.started(&kw.first.unwrap_or(rmpv::Value::Nil)).await?;
            echo_loop::<C, rmpv::Value>(&mut ctx).await
        },
    );
    e.context(
        NS,
        "echo_int",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<C>, kw: First<i64>| async move {
            ctx.started(&kw.first.unwrap_or(0)).await?;
            echo_loop::<C, i64>(&mut ctx).await
        },
    );
    e.context(
        NS,
        "echo_point",
        point_spec(),
        |mut ctx: ChildContext<C>, _: NoKwargs| async move {
            ctx.started(&Point { x: 0, y: 0 }).await?;
            echo_loop::<C, PointOrInt>(&mut ctx).await
        },
    );
    e.context(
        NS,
        "bad_yield",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<C>, _: NoKwargs| async move {
            ctx.started(&0).await?;
            ctx.send(&1).await?;
            ctx.send("not-an-int").await?; // breaks its own spec: the parent catches it
            ctx.cancelled().await;
            Ok(())
        },
    );
    e.context(
        NS,
        "raises",
        PldSpec::any(),
        |mut ctx: ChildContext<C>, _: NoKwargs| async move {
            ctx.started("ready").await?;
            Err::<(), BoxError>(Box::new(Raise::new(
                "ValueError",
                "scipp_peer.raises: boom",
            )))
        },
    );
    e.context(
        NS,
        "bad_started",
        PldSpec::of::<i64>(),
        |mut ctx: ChildContext<C>, _: NoKwargs| async move {
            ctx.started("not-an-int").await?;
            Ok(())
        },
    );
    e.context(
        NS,
        "sleep_forever",
        PldSpec::any(),
        |mut ctx: ChildContext<C>, _: NoKwargs| async move {
            ctx.started(&()).await?;
            ctx.cancelled().await;
            Ok(())
        },
    );
    e.rpc(NS, "add", |kw: Add| async move { Ok(kw.a + kw.b) });
    e
}
