use crate::{BoxError, Inbound};
use pin_project_lite::pin_project;
use scipp_codecs::msg::{Cid, Msg, Uid};
use scipp_codecs::WireProfile;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// Boxes a failure of the services above it into an `Error` for the peer,
/// per dialog: when the inner service fails an item that has a `cid`, the
/// failure is packed as tractor does ([`pack_as`](super::pack_as): a
/// [`Raise`](super::Raise) in the chain names the Python type, anything
/// else is a `RuntimeError`), sent through `outbound` for that `cid`, and
/// the item counts as handled: the channel goes on. A failure of an item
/// without a `cid` is returned as it is (it ends a channel's read loop).
///
/// A [`Peer`](crate::peer::Peer) puts it between payload validation and
/// your message layers, so a layer of yours refuses a message by failing
/// it:
///
/// ```
/// use scipp_layers::{relay::{ErrorRelayLayer, Raise}, Inbound, BoxError};
/// use scipp_codecs::msg::{Cid, Msg, Stop, Uid};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
/// let outbound = tower::service_fn(move |m: Msg| {
///     let tx = tx.clone();
///     async move { tx.send(m).map_err(|_| BoxError::from("closed")) }
/// });
/// let me = Uid::new("server", "659aea7d-8870-4c70-8c64-345c54084a49");
/// let refuse_all = tower::service_fn(|_: Inbound| async {
///     Err::<(), BoxError>(Raise::new("PermissionError", "not for you").into())
/// });
/// let svc = ServiceBuilder::new().layer(ErrorRelayLayer::new(outbound, me)).service(refuse_all);
/// let stop = Inbound::from(Msg::Stop(Stop { cid: Cid::from("c1") }));
/// svc.oneshot(stop).await.unwrap(); // handled: the peer was told
/// match sent.recv().await.unwrap() {
///     Msg::Error(e) => assert_eq!(e.boxed_type_str, "PermissionError"),
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ErrorRelayLayer<O> {
    shared: Arc<Relay<O>>,
}

#[derive(Debug)]
struct Relay<O> {
    outbound: O,
    me: Uid,
    profile: WireProfile,
}

impl<O> ErrorRelayLayer<O> {
    /// Relays through `outbound` (a channel's send stack), signed by `me`.
    pub fn new(outbound: O, me: Uid) -> Self {
        Self::with_profile(outbound, me, WireProfile::V978691c6)
    }

    /// As [`new`](Self::new), worded for tractor version `profile`.
    pub fn with_profile(outbound: O, me: Uid, profile: WireProfile) -> Self {
        ErrorRelayLayer {
            shared: Arc::new(Relay {
                outbound,
                me,
                profile,
            }),
        }
    }
}

impl<S, O> Layer<S> for ErrorRelayLayer<O> {
    type Service = ErrorRelay<S, O>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorRelay {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`ErrorRelayLayer`].
#[derive(Debug)]
pub struct ErrorRelay<S, O> {
    inner: S,
    shared: Arc<Relay<O>>,
}

impl<S: Clone, O> Clone for ErrorRelay<S, O> {
    fn clone(&self) -> Self {
        ErrorRelay {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, O> Service<Inbound> for ErrorRelay<S, O>
where
    S: Service<Inbound, Response = ()>,
    S::Error: Into<BoxError>,
    O: Service<Msg, Response = ()> + Clone + Send + 'static,
    O::Error: Into<BoxError>,
    O::Future: Send,
{
    type Response = ();
    type Error = BoxError;
    type Future = RelayFuture<S::Future, O>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, item: Inbound) -> Self::Future {
        // only the rare failing path needs these; a cid clone is a
        // reference count
        let cid = item.cid().cloned();
        let place = match item.as_msg() {
            Some(Msg::Start(start)) => Some(crate::route::place(&start.ns, &start.func)),
            _ => None,
        };
        RelayFuture {
            state: State::Inner {
                fut: self.inner.call(item),
                failed: Some(Failed {
                    cid,
                    place,
                    relay: self.shared.clone(),
                }),
            },
        }
    }
}

/// What a failure needs to be relayed.
struct Failed<O> {
    cid: Option<Cid>,
    place: Option<String>,
    relay: Arc<Relay<O>>,
}

type Sending = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

pin_project! {
    /// The future of [`ErrorRelay`].
    pub struct RelayFuture<F, O> {
        #[pin]
        state: State<F, O>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, O> {
        Inner { #[pin] fut: F, failed: Option<Failed<O>> },
        Sending { fut: Sending },
    }
}

impl<F, O> std::fmt::Debug for RelayFuture<F, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayFuture")
    }
}

impl<F, E, O> Future for RelayFuture<F, O>
where
    F: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
    O: Service<Msg, Response = ()> + Clone + Send + 'static,
    O::Error: Into<BoxError>,
    O::Future: Send,
{
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let sending = match self.as_mut().project().state.project() {
                StateProj::Sending { fut } => return fut.as_mut().poll(cx),
                StateProj::Inner { fut, failed } => match fut.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                    Poll::Ready(Err(e)) => {
                        let err: BoxError = e.into();
                        match failed.take() {
                            Some(Failed {
                                cid: Some(cid),
                                place,
                                relay,
                            }) => relay_failure(err, cid, place, &relay),
                            _ => return Poll::Ready(Err(err)),
                        }
                    }
                },
            };
            self.as_mut()
                .project()
                .state
                .set(State::Sending { fut: sending });
        }
    }
}

/// Sends `err` to the peer as the `Error` of dialog `cid`; when that send
/// fails too, the original failure is returned.
fn relay_failure<O>(err: BoxError, cid: Cid, place: Option<String>, relay: &Relay<O>) -> Sending
where
    O: Service<Msg, Response = ()> + Clone + Send + 'static,
    O::Error: Into<BoxError>,
    O::Future: Send,
{
    let place = place.unwrap_or_else(|| format!("a receive layer of {}", relay.me.name));
    tracing::warn!(
        cid = cid.as_str(),
        at = place.as_str(),
        "a message was refused; telling the peer: {err}"
    );
    let wire = super::pack_as(&*err, &relay.me, Some(cid), &place, relay.profile);
    let outbound = relay.outbound.clone();
    Box::pin(async move {
        match outbound.oneshot(Msg::from(wire)).await {
            Ok(()) => Ok(()),
            Err(send) => {
                tracing::debug!("could not relay a refusal: {}", send.into());
                Err(err)
            }
        }
    })
}
