//! A Rust service that Python tractor actors call, by address and by name
//! through a registrar.
//!
//! ```sh
//! cargo run --example tractor_service                    # CI: serve, call ourselves, exit
//! cargo run --example tractor_service -- --wait          # serve until Ctrl-C / self.cancel
//! cargo run --example tractor_service -- --wait --registry 127.0.0.1:1616
//! ```
//!
//! It serves actor `scipp_svc` (ns `scipp_svc`: an RPC `add(a, b)` and a
//! context `total()` that streams the running total of the ints it is
//! sent and returns their sum) and registers it with a registrar: the one
//! at `--registry` (a tractor root actor or `scipp serve --registrar`), or
//! one it starts itself on `127.0.0.1:1616` (with `--wait`; on a free port
//! otherwise). Without `--wait` it then plays the caller itself, in Rust,
//! by address and by name, and exits: that is what CI runs.
//!
//! # The Python side
//!
//! A sketch of the tractor code that calls this service (tractor at commit
//! `978691c6`, the one the golden transcripts in `vectors/` were recorded
//! against), **not run in CI** (no Python or tractor here). tractor names
//! a remote function by a Python function object (its module is the
//! `ns`, its name the `func`), so the caller imports stubs from a module
//! named after the Rust namespace, `scipp_svc.py`:
//!
//! ```python
//! # scipp_svc.py: names of the endpoints the Rust service serves
//! import tractor
//!
//!
//! async def add(a: int, b: int) -> int:
//!     raise NotImplementedError('served by the Rust actor scipp_svc')
//!
//!
//! @tractor.context
//! async def total(ctx: tractor.Context) -> int:
//!     raise NotImplementedError('served by the Rust actor scipp_svc')
//! ```
//!
//! ```python
//! # call_scipp.py: python call_scipp.py 127.0.0.1 <port printed by --wait>
//! import sys
//! import trio
//! import tractor
//! import scipp_svc
//!
//!
//! async def use(portal: tractor.Portal) -> None:
//!     print(await portal.run(scipp_svc.add, a=2, b=3))  # 5
//!     # no stub needed for a plain RPC:
//!     print(await portal.run_from_ns('scipp_svc', 'add', a=2, b=3))
//!     async with portal.open_context(scipp_svc.total) as (ctx, hint):
//!         print(hint)  # 'send me ints'
//!         async with ctx.open_stream() as stream:
//!             for v in (1, 2, 3):
//!                 await stream.send(v)
//!                 print(await stream.receive())  # 1, 3, 6
//!         print(await ctx.result())  # 6
//!
//!
//! async def main(host: str, port: int) -> None:
//!     # the registrar the Rust service registered with
//!     async with tractor.open_root_actor(
//!         name='py_caller',
//!         registry_addrs=[('127.0.0.1', 1616)],
//!     ):
//!         # by name, through the registrar (`self:find_actor`)
//!         async with tractor.find_actor('scipp_svc') as portal:
//!             await use(portal)
//!         # by name, waiting until it registers (`self:wait_for_actor`)
//!         async with tractor.wait_for_actor('scipp_svc') as portal:
//!             await use(portal)
//!         # by address: `get_registry` opens a portal to whichever actor
//!         # listens at (host, port), the service itself here
//!         async with tractor.get_registry(host, port) as portal:
//!             await use(portal)
//!
//!
//! if __name__ == '__main__':
//!     trio.run(main, sys.argv[1], int(sys.argv[2]))
//! ```
//!
//! Output of the CI run (ports differ):
//!
//! ```text
//! registrar: started on 127.0.0.1:40001
//! service: scipp_svc listening on 127.0.0.1:40002, registered as 127.0.0.1:40002
//! by address: add(a=2, b=3) = 5
//! by address: total started: "send me ints"
//! by address: running totals [1, 3, 6], total returned 6
//! by name: scipp_svc is at [127.0.0.1:40002]
//! by name: add(a=2, b=3) = 5
//! by name: total started: "send me ints"
//! by name: running totals [1, 3, 6], total returned 6
//! service: unregistered and shut down
//! ```

use scipp::prelude::*;
use serde::{Deserialize, Serialize};

/// The actor's name and the endpoints' namespace.
const NAME: &str = "scipp_svc";

/// `scipp_svc.total`: the running total of the ints it is sent.
struct Total;

impl Dialog for Total {
    const NS: &'static str = NAME;
    const FUNC: &'static str = "total";
    type Kwargs = ();
    type Started = String;
    type Item = i64;
    type Return = i64;
}

/// `scipp_svc.add(a, b)`.
#[derive(Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn endpoints() -> Endpoints {
    let mut endpoints = Endpoints::new();
    endpoints.rpc(NAME, "add", |kw: Add| async move { Ok(kw.a + kw.b) });
    endpoints.dialog(Total, |mut ctx, ()| async move {
        ctx.started("send me ints".to_owned()).await?;
        let mut total = 0;
        while let Some(v) = ctx.recv().await? {
            total += v;
            ctx.send(total).await?;
        }
        Ok(total)
    });
    endpoints
}

/// What a Python caller does, in Rust: an RPC, then the `total` context.
async fn call(chan: &Channel, how: &str) -> Result<(), BoxError> {
    let sum: i64 = chan.rpc(NAME, "add", &Add { a: 2, b: 3 }).await?;
    println!("{how}: add(a=2, b=3) = {sum}");
    let (mut ctx, hint) = chan.dialog(Total, ()).await?;
    println!("{how}: total started: {hint:?}");
    let mut running = Vec::new();
    for v in [1, 2, 3] {
        ctx.send(v).await?;
        running.push(ctx.recv().await?.ok_or("the stream ended early")?);
    }
    ctx.close().await?;
    println!(
        "{how}: running totals {running:?}, total returned {}",
        ctx.result().await?
    );
    Ok(())
}

/// The command line: `[--wait] [--registry HOST:PORT]`.
struct Args {
    wait: bool,
    registry: Option<Addr>,
}

fn args() -> Result<Args, BoxError> {
    let mut args = Args {
        wait: false,
        registry: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--wait" => args.wait = true,
            "--registry" => {
                let addr = it.next().ok_or("--registry needs HOST:PORT")?;
                args.registry = Some(
                    addr.parse()
                        .map_err(|e| format!("--registry {addr}: {e}"))?,
                );
            }
            other => {
                return Err(format!("unknown argument {other:?}; see the example's docs").into())
            }
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;

    // a registrar: the given one, or our own
    let (registry, own_registrar) = match args.registry {
        Some(addr) => (addr, None),
        None => {
            let registrar = Registrar::new();
            let mut endpoints = Endpoints::new();
            registrar.install(&mut endpoints);
            let at = if args.wait {
                "127.0.0.1:1616"
            } else {
                "127.0.0.1:0"
            };
            let server = Peer::named("scipp_registrar")
                .is_registrar(true)
                .endpoints(endpoints)
                .serve_tcp(at)
                .await?;
            println!("registrar: started on {}", server.local_addr());
            (server.local_addr().clone(), Some(server))
        }
    };

    // the service, registered under its name
    let service = Peer::named(NAME).endpoints(endpoints());
    let server = service.serve_tcp("127.0.0.1:0").await?;
    let registration = RegistryClient::connect(&service, &registry)
        .await?
        .register_peer(&service, server.local_addr())
        .await?;
    println!(
        "service: {NAME} listening on {}, registered as {}",
        server.local_addr(),
        registration.addr()
    );

    if args.wait {
        println!("waiting for callers (Ctrl-C or a self.cancel ends it)");
        tokio::select! {
            ctrl_c = tokio::signal::ctrl_c() => ctrl_c?,
            () = server.cancel_requested() => {}
        }
    } else {
        let caller = Peer::named("rust_caller");
        // by address
        let chan = caller.connect_tcp(server.local_addr().to_string()).await?;
        call(&chan, "by address").await?;
        chan.close().await?;
        // by name, through the registrar
        let registry_client = RegistryClient::connect(&caller, &registry).await?;
        let found = registry_client.wait_for(NAME).await?;
        let found: Vec<String> = found.iter().map(ToString::to_string).collect();
        println!("by name: {NAME} is at [{}]", found.join(", "));
        let chan = registry_client.connect_to(&caller, NAME).await?;
        call(&chan, "by name").await?;
        chan.close().await?;
    }

    registration.unregister().await?;
    server.shutdown().await?;
    if let Some(registrar) = own_registrar {
        registrar.shutdown().await?;
    }
    println!("service: unregistered and shut down");
    Ok(())
}
