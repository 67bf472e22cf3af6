//! `scipp tap`: a transparent proxy that forwards bytes unchanged and
//! prints every frame decoded, for debugging any two SCIPP peers.

use super::serve::CodecName;
use super::{render, CliError};
use bytes::BytesMut;
use scipp::framing::{FrameCodec, FramingLayer};
use scipp::{CborCodec, Codec, MsgpackCodec, ProtobufCodec};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

#[derive(Debug, clap::Args)]
pub(crate) struct TapArgs {
    /// Where clients connect: `HOST:PORT`.
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// The real peer: `HOST:PORT`.
    #[arg(long, value_name = "ADDR")]
    upstream: String,
    /// The codec to decode frames with (bytes are forwarded whatever it is).
    #[arg(long, value_enum, default_value = "msgpack")]
    codec: CodecName,
    /// Print one JSON object per frame instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: TapArgs) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.codec {
            CodecName::Msgpack => tap(MsgpackCodec::new(), &args).await,
            CodecName::Cbor => tap(CborCodec::new(), &args).await,
            CodecName::Protobuf => tap(ProtobufCodec::new(), &args).await,
        }
    })
}

async fn tap<C: Codec>(codec: C, args: &TapArgs) -> Result<(), CliError> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    out!(
        "listening on {}, forwarding to {}",
        listener.local_addr()?,
        args.upstream
    );
    std::io::stdout().flush()?;
    let conns = Arc::new(AtomicUsize::new(0));
    loop {
        let (client, from) = listener.accept().await?;
        let n = conns.fetch_add(1, Ordering::Relaxed) + 1;
        let upstream = args.upstream.clone();
        let codec = codec.clone();
        let json = args.json;
        tokio::spawn(async move {
            let server = match TcpStream::connect(&upstream).await {
                Ok(s) => s,
                Err(e) => {
                    out!("[{n}] {from}: cannot reach upstream {upstream}: {e}");
                    return;
                }
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            out!("[{n}] {from} <-> {upstream}");
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let c2s = pump(n, "c2s", cr, sw, codec.clone(), json);
            let s2c = pump(n, "s2c", sr, cw, codec, json);
            let _ = tokio::join!(c2s, s2c);
            out!("[{n}] closed");
        });
    }
}

/// Forwards every byte as soon as it is read, and prints each complete
/// frame seen on the way; a frame that does not decode is shown as hex
/// with the reason (and was forwarded all the same).
async fn pump<C: Codec>(
    n: usize,
    dir: &str,
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    codec: C,
    json: bool,
) {
    let mut framer: FrameCodec = FramingLayer::new().codec();
    let mut parse = BytesMut::new();
    let mut parsing = true;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let got = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        if to.write_all(&chunk[..got]).await.is_err() {
            break;
        }
        if !parsing {
            continue;
        }
        parse.extend_from_slice(&chunk[..got]);
        loop {
            match framer.decode(&mut parse) {
                Ok(Some(body)) => match codec.decode(body.clone()) {
                    Ok(msg) if json => {
                        let shown = render::msg(&codec, &msg);
                        let detail = shown
                            .split_whitespace()
                            .skip(2)
                            .collect::<Vec<_>>()
                            .join(" ");
                        let line = serde_json::json!({
                            "conn": n, "dir": dir, "len": body.len(), "msg_type": msg.kind().as_str(),
                            "cid": msg.cid().map(|c| c.as_str()), "detail": detail,
                        });
                        out!("{line}");
                    }
                    Ok(msg) => out!(
                        "[{n}] {dir} {:>7} B  {}",
                        body.len(),
                        render::msg(&codec, &msg)
                    ),
                    Err(e) if json => {
                        let line = serde_json::json!({
                            "conn": n, "dir": dir, "len": body.len(), "error": e.to_string(), "hex": hex_preview(&body),
                        });
                        out!("{line}");
                    }
                    Err(e) => out!(
                        "[{n}] {dir} {:>7} B  ! {e}: {}",
                        body.len(),
                        hex_preview(&body)
                    ),
                },
                Ok(None) => break,
                Err(e) => {
                    out!(
                        "[{n}] {dir} not SCIPP framing ({e}); forwarding without decoding: {}",
                        hex_preview(&parse)
                    );
                    parsing = false;
                    parse.clear();
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

fn hex_preview(b: &[u8]) -> String {
    let shown: String = b.iter().take(48).map(|x| format!("{x:02x}")).collect();
    if b.len() > 48 {
        format!("{shown}..")
    } else {
        shown
    }
}
