//! tonic, as its users write it, without `protoc`: the prost messages
//! derived by hand and the service written out as `tonic-build` would
//! generate it (a `Service<http::Request>` routing on the path to
//! `tonic::server::Grpc`).

use crate::{p50, Sample, CALLERS};
use bytes::Bytes;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{http, Body, BoxFuture, BoxStream, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, ServerStreamingService, StreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// A stream request: `n` items of `len` bytes (0: `Int`s).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StreamRequest {
    #[prost(uint64, tag = "1")]
    n: u64,
    #[prost(uint64, tag = "2")]
    len: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Int {
    #[prost(int64, tag = "1")]
    v: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Blob {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
}

const UNARY: &str = "/bench.Bench/Unary";
const STREAM_INTS: &str = "/bench.Bench/StreamInts";
const STREAM_BLOBS: &str = "/bench.Bench/StreamBlobs";
const ECHO: &str = "/bench.Bench/Echo";

struct UnarySvc;

impl UnaryService<Int> for UnarySvc {
    type Response = Int;
    type Future = BoxFuture<Response<Int>, Status>;
    fn call(&mut self, request: Request<Int>) -> Self::Future {
        let v = request.into_inner().v;
        Box::pin(async move { Ok(Response::new(Int { v: v + 1 })) })
    }
}

/// A server stream is fed by a producer task through a channel, as in
/// tonic's own examples (and as a scipp endpoint sends item by item).
const QUEUE: usize = 128;

struct StreamIntsSvc;

impl ServerStreamingService<StreamRequest> for StreamIntsSvc {
    type Response = Int;
    type ResponseStream = BoxStream<Int>;
    type Future = BoxFuture<Response<BoxStream<Int>>, Status>;
    fn call(&mut self, request: Request<StreamRequest>) -> Self::Future {
        let n = request.into_inner().n as i64;
        Box::pin(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
            tokio::spawn(async move {
                for v in 0..n {
                    if tx.send(Ok(Int { v })).await.is_err() {
                        break;
                    }
                }
            });
            Ok(Response::new(
                Box::pin(ReceiverStream::new(rx)) as BoxStream<Int>
            ))
        })
    }
}

struct StreamBlobsSvc;

impl ServerStreamingService<StreamRequest> for StreamBlobsSvc {
    type Response = Blob;
    type ResponseStream = BoxStream<Blob>;
    type Future = BoxFuture<Response<BoxStream<Blob>>, Status>;
    fn call(&mut self, request: Request<StreamRequest>) -> Self::Future {
        let req = request.into_inner();
        let data = Bytes::from(vec![7u8; req.len as usize]);
        Box::pin(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
            tokio::spawn(async move {
                for _ in 0..req.n {
                    if tx.send(Ok(Blob { data: data.clone() })).await.is_err() {
                        break;
                    }
                }
            });
            Ok(Response::new(
                Box::pin(ReceiverStream::new(rx)) as BoxStream<Blob>
            ))
        })
    }
}

struct EchoSvc;

impl StreamingService<Int> for EchoSvc {
    type Response = Int;
    type ResponseStream = BoxStream<Int>;
    type Future = BoxFuture<Response<BoxStream<Int>>, Status>;
    fn call(&mut self, request: Request<Streaming<Int>>) -> Self::Future {
        let incoming = request.into_inner();
        Box::pin(async move { Ok(Response::new(Box::pin(incoming) as BoxStream<Int>)) })
    }
}

/// The service, routing on the path as generated code does.
#[derive(Clone)]
struct BenchServer;

impl NamedService for BenchServer {
    const NAME: &'static str = "bench.Bench";
}

impl<B> Service<http::Request<B>> for BenchServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.uri().path() {
            UNARY => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<Int, Int>::default());
                Ok(grpc.unary(UnarySvc, req).await)
            }),
            STREAM_INTS => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<Int, StreamRequest>::default());
                Ok(grpc.server_streaming(StreamIntsSvc, req).await)
            }),
            STREAM_BLOBS => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<Blob, StreamRequest>::default());
                Ok(grpc.server_streaming(StreamBlobsSvc, req).await)
            }),
            ECHO => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<Int, Int>::default());
                Ok(grpc.streaming(EchoSvc, req).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

pub(crate) async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .serve_with_incoming(BenchServer, incoming)
            .await
            .unwrap();
    });
    addr
}

type Client_ = tonic::client::Grpc<tonic::transport::Channel>;

pub(crate) struct Client(Client_);

fn path(p: &'static str) -> http::uri::PathAndQuery {
    http::uri::PathAndQuery::from_static(p)
}

impl Client {
    /// One HTTP/2 connection; clones share it.
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        Client(tonic::client::Grpc::new(channel))
    }

    pub(crate) async fn stream(&self, n: usize, len: usize) -> Sample {
        let mut grpc = self.0.clone();
        let start = Instant::now();
        grpc.ready().await.unwrap();
        let req = Request::new(StreamRequest {
            n: n as u64,
            len: len as u64,
        });
        let mut count = 0;
        if len == 0 {
            let mut items = grpc
                .server_streaming(
                    req,
                    path(STREAM_INTS),
                    ProstCodec::<StreamRequest, Int>::default(),
                )
                .await
                .unwrap()
                .into_inner();
            while let Some(item) = items.message().await.unwrap() {
                assert_eq!(item.v, count as i64, "in order");
                count += 1;
            }
        } else {
            let mut items = grpc
                .server_streaming(
                    req,
                    path(STREAM_BLOBS),
                    ProstCodec::<StreamRequest, Blob>::default(),
                )
                .await
                .unwrap()
                .into_inner();
            while let Some(item) = items.message().await.unwrap() {
                assert_eq!(item.data.len(), len);
                count += 1;
            }
        }
        Sample {
            count,
            took: start.elapsed(),
        }
    }

    async fn unary(grpc: &mut Client_, v: i64) -> i64 {
        grpc.ready().await.unwrap();
        grpc.unary(
            Request::new(Int { v }),
            path(UNARY),
            ProstCodec::<Int, Int>::default(),
        )
        .await
        .unwrap()
        .into_inner()
        .v
    }

    pub(crate) async fn unary_seq(&self, n: usize) -> Sample {
        let mut grpc = self.0.clone();
        let start = Instant::now();
        let mut count = 0;
        for i in 0..n as i64 {
            assert_eq!(Self::unary(&mut grpc, i).await, i + 1);
            count += 1;
        }
        Sample {
            count,
            took: start.elapsed(),
        }
    }

    pub(crate) async fn unary_concurrent(&self, n: usize) -> Sample {
        let start = Instant::now();
        let callers: Vec<_> = (0..CALLERS)
            .map(|c| {
                let mut grpc = self.0.clone();
                tokio::spawn(async move {
                    let mut count = 0;
                    for i in 0..(n / CALLERS) as i64 {
                        let x = i * CALLERS as i64 + c as i64;
                        assert_eq!(Self::unary(&mut grpc, x).await, x + 1);
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        let mut count = 0;
        for caller in callers {
            count += caller.await.unwrap();
        }
        Sample {
            count,
            took: start.elapsed(),
        }
    }

    pub(crate) async fn ping_pong(&self, n: usize) -> Sample {
        let mut grpc = self.0.clone();
        grpc.ready().await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel::<Int>(16);
        let outgoing = ReceiverStream::new(rx);
        let mut incoming = grpc
            .streaming(
                Request::new(outgoing),
                path(ECHO),
                ProstCodec::<Int, Int>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        let mut rounds = Vec::with_capacity(n);
        for v in 0..n as i64 {
            let t = Instant::now();
            tx.send(Int { v }).await.unwrap();
            assert_eq!(incoming.message().await.unwrap().map(|i| i.v), Some(v));
            rounds.push(t.elapsed());
        }
        drop(tx);
        assert!(incoming.message().await.unwrap().is_none());
        Sample {
            count: rounds.len(),
            took: p50(rounds),
        }
    }
}
