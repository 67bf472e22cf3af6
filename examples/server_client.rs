//! A server and a client in Rust, over TCP: `Peer::serve_tcp`, a plain RPC,
//! a typed dialog, a remote error, and a graceful shutdown.
//!
//! ```sh
//! cargo run --example server_client
//! ```
//!
//! prints (the port differs):
//!
//! ```text
//! server: listening on 127.0.0.1:40123
//! client: add(a=2, b=3) = 5
//! client: add(a=2) failed: TypeError: add() missing 1 required positional argument: 'b'
//! client: shout started: "shouting back"
//! client: shout yielded "HELLO"
//! client: shout yielded "SCIPP"
//! client: shout returned 2
//! server: 1 live channel(s)
//! server: shut down gracefully
//! client: the server closed the channel
//! ```

use scipp::prelude::*;

/// Shouts back every string it is sent; returns how many.
struct Shout;

impl Dialog for Shout {
    const NS: &'static str = "demo";
    const FUNC: &'static str = "shout";
    type Kwargs = (); // none: sent as `{}`, as tractor does
    type Started = String;
    type Item = String;
    type Return = u64;
}

/// The kwargs of `demo:add`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// Only half of them: the server answers Python's `TypeError`.
#[derive(serde::Serialize)]
struct OnlyA {
    a: i64,
}

fn endpoints() -> Endpoints {
    let mut endpoints = Endpoints::new();
    endpoints.rpc("demo", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
    endpoints.dialog(Shout, |mut ctx, ()| async move {
        ctx.started("shouting back".to_owned()).await?;
        let mut n = 0;
        while let Some(s) = ctx.recv().await? {
            ctx.send(s.to_uppercase()).await?;
            n += 1;
        }
        Ok(n)
    });
    endpoints
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server = Peer::named("server")
        .endpoints(endpoints())
        .serve_tcp("127.0.0.1:0")
        .await?;
    println!("server: listening on {}", server.local_addr());

    let client = Peer::named("client");
    let chan = client.connect_tcp(server.local_addr().to_string()).await?;

    let sum: i64 = chan.rpc("demo", "add", &Add { a: 2, b: 3 }).await?;
    println!("client: add(a=2, b=3) = {sum}");

    match chan.rpc::<_, i64>("demo", "add", &OnlyA { a: 2 }).await {
        Err(ContextError::Remote(e)) => {
            // as in Python, the text is the traceback's last line
            let last = e.traceback().lines().last().unwrap_or_default();
            println!("client: add(a=2) failed: {}", last.trim())
        }
        other => return Err(format!("expected a remote TypeError, got {other:?}").into()),
    }

    let (mut ctx, started) = chan.dialog(Shout, ()).await?;
    println!("client: shout started: {started:?}");
    for word in ["hello", "scipp"] {
        ctx.send(word.to_owned()).await?;
        let back = ctx.recv().await?.ok_or("the stream ended early")?;
        println!("client: shout yielded {back:?}");
    }
    ctx.close().await?;
    println!("client: shout returned {}", ctx.result().await?);

    println!("server: {} live channel(s)", server.channels().len());
    // stop accepting, let every channel write what it queued, hang up
    server.shutdown().await?;
    println!("server: shut down gracefully");
    chan.closed().await;
    println!("client: the server closed the channel");
    Ok(())
}
