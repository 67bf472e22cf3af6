//! A Rust client of a Python tractor actor: a plain RPC (`Portal.run`), a
//! typed context (`Portal.open_context` from the other side), and a remote
//! exception, against the endpoints of module `scipp_peer`.
//!
//! ```sh
//! cargo run --example tractor_client -- 127.0.0.1:4243   # a running tractor actor
//! cargo run --example tractor_client                     # a scipp stand-in (CI runs this)
//! ```
//!
//! With no address it serves [`scipp::examples`] (the endpoints of
//! `scipp_peer`, behaving as the recorded tractor actor does, texts
//! included) on a loopback port and calls that instead.
//!
//! # The Python side
//!
//! A sketch of the tractor actor (tractor at commit `978691c6`, the one the
//! golden transcripts in `vectors/` were recorded against), **not run in
//! CI** (no Python or tractor here): the endpoints this example calls,
//! as the transcripts' actor defines them. Save it as `scipp_peer.py` (the
//! module name is the namespace a caller names) and run
//! `python scipp_peer.py`:
//!
//! ```python
//! import trio
//! import tractor
//!
//!
//! async def add(a: int, b: int) -> int:
//!     return a + b
//!
//!
//! @tractor.context(pld_spec=int)
//! async def echo_int(ctx: tractor.Context, first: int = 0) -> int:
//!     await ctx.started(first)
//!     n = 0
//!     async with ctx.open_stream() as stream:
//!         async for value in stream:
//!             await stream.send(value)
//!             n += 1
//!     return n
//!
//!
//! @tractor.context
//! async def raises(ctx: tractor.Context) -> None:
//!     await ctx.started('ready')
//!     raise ValueError('scipp_peer.raises: boom')
//!
//!
//! async def main() -> None:
//!     # the first root actor on an address binds it and is the registrar
//!     # there too; it serves the modules in `enable_modules`
//!     async with tractor.open_root_actor(
//!         name='scipp_peer',
//!         registry_addrs=[('127.0.0.1', 4243)],
//!         enable_modules=['scipp_peer'],
//!     ):
//!         await trio.sleep_forever()
//!
//!
//! if __name__ == '__main__':
//!     trio.run(main)
//! ```
//!
//! Output (against either side):
//!
//! ```text
//! connected to scipp_peer at 127.0.0.1:4243
//! add(a=2, b=3) = 5
//! echo_int started: 7
//! echo_int yielded 1
//! echo_int yielded 2
//! echo_int yielded 3
//! echo_int returned 3
//! raises: ValueError from scipp_peer
//! ```

use scipp::prelude::*;
use serde::{Deserialize, Serialize};

/// `scipp_peer.echo_int`, declared once: int payloads in every phase.
struct EchoInt;

/// `echo_int(first=...)`.
#[derive(Serialize, Deserialize)]
struct First {
    first: i64,
}

impl Dialog for EchoInt {
    const NS: &'static str = "scipp_peer";
    const FUNC: &'static str = "echo_int";
    type Kwargs = First;
    type Started = i64; // `first`
    type Item = i64; // echoed
    type Return = u64; // how many
}

/// `scipp_peer.add(a, b)`.
#[derive(Serialize)]
struct Add {
    a: i64,
    b: i64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // the actor's address, or a scipp stand-in serving the same endpoints
    let (addr, stand_in) = match std::env::args().nth(1) {
        Some(addr) => (addr, None),
        None => {
            let server = Peer::named("scipp_peer")
                .endpoints(scipp::examples::scipp_peer())
                .serve_tcp("127.0.0.1:0")
                .await?;
            (server.local_addr().to_string(), Some(server))
        }
    };

    let chan = Peer::named("scipp_client")
        .connect_tcp(addr.as_str())
        .await?;
    println!("connected to {} at {addr}", chan.peer().name);

    // Portal.run(add, a=2, b=3) on the Python side
    let sum: i64 = chan.rpc("scipp_peer", "add", &Add { a: 2, b: 3 }).await?;
    println!("add(a=2, b=3) = {sum}");

    // Portal.open_context(echo_int, first=7) + ctx.open_stream()
    let (mut ctx, first) = chan.dialog(EchoInt, First { first: 7 }).await?;
    println!("echo_int started: {first}");
    for v in 1..=3 {
        ctx.send(v).await?;
        let back = ctx.recv().await?.ok_or("the stream ended early")?;
        println!("echo_int yielded {back}");
    }
    ctx.close().await?; // leaves `open_stream`: the actor's loop ends
    println!("echo_int returned {}", ctx.result().await?);

    // a Python exception arrives as a typed RemoteError
    let (ctx, _ready) = chan
        .open_context("scipp_peer", "raises")
        .start::<String>()
        .await?;
    match ctx.result::<()>().await {
        Err(ContextError::Remote(e)) => {
            println!("raises: {} from {}", e.src_type(), e.src_uid().name)
        }
        other => return Err(format!("expected the actor's ValueError, got {other:?}").into()),
    }

    chan.close().await?;
    if let Some(server) = stand_in {
        server.shutdown().await?;
    }
    Ok(())
}
