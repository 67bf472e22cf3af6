//! `scipp call`: like grpcurl, for SCIPP. Opens a context (or a plain RPC)
//! on any SCIPP peer, tractor actors included, and prints what comes back.

use super::serve::{is_unix_path, CodecName};
use super::{render, CliError};
use scipp::context::ContextError;
use scipp::peer::{Channel, Peer};
use scipp::registry::RegistryClient;
use scipp::{CborCodec, Codec, MsgpackCodec, ProtobufCodec};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct CallArgs {
    /// The peer: `HOST:PORT`, a Unix socket path, or with `--registry`
    /// the actor's name.
    addr: String,
    /// The endpoint, `NS:FUNC` (e.g. `scipp_peer:echo`).
    target: String,
    /// Keyword arguments, a JSON object.
    #[arg(long, value_name = "JSON")]
    kwargs: Option<String>,
    /// A value to send on the stream (JSON); repeat for more.
    #[arg(long = "send", value_name = "JSON")]
    sends: Vec<String>,
    /// A plain RPC (`functype = "asyncfunc"`) instead of a context.
    #[arg(long)]
    rpc: bool,
    /// The codec to speak.
    #[arg(long, value_enum, default_value = "msgpack")]
    codec: CodecName,
    /// Give up after this many seconds (the remote task is cancelled).
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    timeout: f64,
    /// Our actor name.
    #[arg(long, default_value = "scipp_call")]
    name: String,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// Find the peer by name through the registrar at `ADDR` (tractor's
    /// `find_actor`); the first argument is then the actor's name.
    #[arg(long, value_name = "ADDR")]
    registry: Option<String>,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
    /// What to do with an invalid message from the peer.
    #[arg(long, value_enum, default_value = "deliver")]
    policy: super::policy::PolicyName,
}

pub(crate) fn run(args: CallArgs) -> Result<(), CliError> {
    let (ns, func) = args
        .target
        .split_once(':')
        .filter(|(ns, func)| !ns.is_empty() && !func.is_empty())
        .ok_or_else(|| format!("{:?} is not NS:FUNC", args.target))?;
    let kwargs: serde_json::Map<String, serde_json::Value> = match &args.kwargs {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err("--kwargs must be a JSON object".into()),
            Err(e) => return Err(format!("--kwargs is not valid JSON: {e}").into()),
        },
    };
    let sends: Vec<serde_json::Value> = args
        .sends
        .iter()
        .map(|s| {
            serde_json::from_str(s).map_err(|e| format!("--send {s:?} is not valid JSON: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let limit = Duration::from_secs_f64(args.timeout.max(0.001));
    let job = async {
        match args.codec {
            CodecName::Msgpack => call(MsgpackCodec::new(), &args, ns, func, &kwargs, &sends).await,
            CodecName::Cbor => call(CborCodec::new(), &args, ns, func, &kwargs, &sends).await,
            CodecName::Protobuf => {
                call(ProtobufCodec::new(), &args, ns, func, &kwargs, &sends).await
            }
        }
    };
    let _ = limit;
    rt.block_on(job)
}

async fn connect<C: Codec>(
    peer: &Peer<C>,
    addr: &str,
    tls: Option<&super::tls::Connector>,
) -> Result<Channel<C>, CliError> {
    if tls.is_some() {
        let parsed: scipp::msg::Addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        return super::tls::connect(peer, &parsed, tls)
            .await
            .map_err(|e| format!("cannot reach {addr}: {e}").into());
    }
    let chan = if is_unix_path(addr) {
        #[cfg(unix)]
        {
            peer.connect_unix(addr).await
        }
        #[cfg(not(unix))]
        return Err("Unix sockets are not supported here".into());
    } else {
        peer.connect_tcp(addr).await
    };
    chan.map_err(|e| format!("cannot reach {addr}: {e}").into())
}

/// Asks the registrar at `registry` where `name` is, and connects there.
async fn connect_by_name<C: Codec>(
    peer: &Peer<C>,
    registry: &str,
    name: &str,
    tls: Option<&super::tls::Connector>,
) -> Result<Channel<C>, CliError> {
    let registrar = connect(peer, registry, tls).await?;
    let found = RegistryClient::new(registrar)
        .find(name)
        .await
        .map_err(|e| format!("registry {registry}: {e}"))?;
    let addr = found
        .first()
        .ok_or_else(|| format!("registry {registry}: no actor named {name:?} is registered"))?;
    tracing::info!("{name} is at {addr}");
    super::tls::connect(peer, addr, tls)
        .await
        .map_err(|e| format!("cannot reach {name} at {addr}: {e}").into())
}

struct Out {
    json: bool,
}

impl Out {
    fn value(&self, label: &str, v: &rmpv::Value) {
        if self.json {
            out!("{}", serde_json::json!({ label: to_json(v) }));
        } else {
            out!("{label}: {}", render::value(v));
        }
    }
}

fn to_json(v: &rmpv::Value) -> serde_json::Value {
    use rmpv::Value as V;
    match v {
        V::Nil => serde_json::Value::Null,
        V::Boolean(b) => (*b).into(),
        V::Integer(i) => i
            .as_i64()
            .map(Into::into)
            .or_else(|| i.as_u64().map(Into::into))
            .unwrap_or_default(),
        V::F32(f) => f64::from(*f).into(),
        V::F64(f) => (*f).into(),
        V::String(s) => s.as_str().unwrap_or_default().into(),
        V::Binary(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
        V::Array(a) => a.iter().map(to_json).collect(),
        V::Map(m) => m
            .iter()
            .map(|(k, v)| (render::value(k).trim_matches('\'').to_owned(), to_json(v)))
            .collect(),
        V::Ext(t, d) => serde_json::json!({ "ext": t, "len": d.len() }),
    }
}

/// The remote error as the user should see it: one summary line, then the
/// whole tractor-like box (type, source, relay path, message, trace).
fn remote(e: ContextError) -> CliError {
    match e {
        ContextError::Remote(r) => {
            let why = [r.message(), r.traceback()]
                .iter()
                .flat_map(|t| t.lines().rev())
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_owned();
            format!(
                "{} from {}: {why}\n{}",
                r.boxed_type(),
                r.src_uid().name,
                r.to_string().trim_end()
            )
            .into()
        }
        other => other.to_string().into(),
    }
}

async fn call<C: Codec>(
    codec: C,
    args: &CallArgs,
    ns: &str,
    func: &str,
    kwargs: &serde_json::Map<String, serde_json::Value>,
    sends: &[serde_json::Value],
) -> Result<(), CliError> {
    let out = Out { json: args.json };
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.timeout.max(0.001));
    let timed_out = || -> CliError { format!("timed out after {} s", args.timeout).into() };
    let peer = Peer::new(&args.name, codec).policy(args.policy);
    let tls = args.tls.connector()?;
    let reach = async {
        match &args.registry {
            Some(registry) => connect_by_name(&peer, registry, &args.addr, tls.as_ref()).await,
            None => connect(&peer, &args.addr, tls.as_ref()).await,
        }
    };
    let chan = tokio::time::timeout_at(deadline, reach)
        .await
        .map_err(|_| timed_out())??;
    if args.rpc {
        let value: rmpv::Value = tokio::time::timeout_at(deadline, chan.rpc(ns, func, kwargs))
            .await
            .map_err(|_| timed_out())?
            .map_err(remote)?;
        out.value("return", &value);
        return Ok(());
    }
    let open = chan
        .open_context(ns, func)
        .kwargs(kwargs)
        .start::<rmpv::Value>();
    let (mut ctx, first) = tokio::time::timeout_at(deadline, open)
        .await
        .map_err(|_| timed_out())?
        .map_err(remote)?;
    out.value("started", &first);
    let dialog = async {
        for v in sends {
            ctx.send(v).await?;
        }
        ctx.close().await?;
        while let Some(v) = ctx.recv::<rmpv::Value>().await? {
            out.value("received", &v);
        }
        Ok::<_, ContextError>(())
    };
    match tokio::time::timeout_at(deadline, dialog).await {
        Ok(done) => done.map_err(remote)?,
        Err(_) => {
            // Structured concurrency: cancel the remote task before leaving.
            let _ = ctx.cancel().await;
            return Err(timed_out());
        }
    }
    let ret = match tokio::time::timeout_at(deadline, ctx.result::<rmpv::Value>()).await {
        Ok(ret) => ret.map_err(remote)?,
        Err(_) => return Err(timed_out()),
    };
    out.value("return", &ret);
    Ok(())
}
