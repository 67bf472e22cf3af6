//! tarpc, as its users write it: `#[tarpc::service]`, its serde transport
//! with bincode (its fastest format) over one TCP connection.

use crate::{Sample, CALLERS};
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::time::Instant;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::LengthDelimitedCodec;

#[tarpc::service]
pub(crate) trait Bench {
    async fn unary(x: i64) -> i64;
}

#[derive(Clone)]
struct BenchServer;

impl Bench for BenchServer {
    async fn unary(self, _: tarpc::context::Context, x: i64) -> i64 {
        x + 1
    }
}

fn transport<Item, SinkItem>(
    tcp: tokio::net::TcpStream,
) -> tarpc::serde_transport::Transport<tokio::net::TcpStream, Item, SinkItem, Bincode<Item, SinkItem>>
where
    Item: for<'de> serde::Deserialize<'de>,
    SinkItem: serde::Serialize,
{
    tcp.set_nodelay(true).unwrap();
    let framed = LengthDelimitedCodec::builder()
        .max_frame_length(usize::MAX)
        .new_framed(tcp);
    tarpc::serde_transport::new(framed, Bincode::default())
}

pub(crate) async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let channel = BaseChannel::with_defaults(transport(tcp));
            tokio::spawn(
                channel
                    .execute(BenchServer.serve())
                    .for_each(|response| async {
                        tokio::spawn(response);
                    }),
            );
        }
    });
    addr
}

pub(crate) struct Client(BenchClient);

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        Client(BenchClient::new(tarpc::client::Config::default(), transport(tcp)).spawn())
    }

    pub(crate) async fn unary_seq(&self, n: usize) -> Sample {
        let start = Instant::now();
        let mut count = 0;
        for i in 0..n as i64 {
            let r = self.0.unary(tarpc::context::current(), i).await.unwrap();
            assert_eq!(r, i + 1);
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
                let client = self.0.clone();
                tokio::spawn(async move {
                    let mut count = 0;
                    for i in 0..(n / CALLERS) as i64 {
                        let x = i * CALLERS as i64 + c as i64;
                        let r = client.unary(tarpc::context::current(), x).await.unwrap();
                        assert_eq!(r, x + 1);
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
}
