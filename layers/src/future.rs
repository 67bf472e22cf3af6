//! The response future shared by the stack's services.

use crate::BoxError;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

pin_project! {
    /// The future a layer's service returns: the inner service's future on
    /// the usual path, a ready result when the layer answered itself, or a
    /// boxed future on a rare path that needs to do I/O of its own (e.g.
    /// relaying an error to the peer).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] fut: F },
        Ready { result: Option<Result<(), BoxError>> },
        Boxed { fut: BoxFuture },
    }
}

impl<F> std::fmt::Debug for State<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Inner { .. } => "Inner",
            State::Ready { .. } => "Ready",
            State::Boxed { .. } => "Boxed",
        })
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(fut: F) -> Self {
        ResponseFuture {
            state: State::Inner { fut },
        }
    }

    pub(crate) fn ready(result: Result<(), BoxError>) -> Self {
        ResponseFuture {
            state: State::Ready {
                result: Some(result),
            },
        }
    }

    pub(crate) fn boxed(fut: impl Future<Output = Result<(), BoxError>> + Send + 'static) -> Self {
        ResponseFuture {
            state: State::Boxed { fut: Box::pin(fut) },
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { fut } => fut.poll(cx).map_err(Into::into),
            // `unwrap_or_else`: with `unwrap_or`, the error for a misuse
            // was built (a `String` and a box) and dropped on every poll,
            // two allocations per received message (dhat, `BENCHMARKS.md`)
            StateProj::Ready { result } => Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err("response future polled after completion".into())),
            ),
            StateProj::Boxed { fut } => fut.as_mut().poll(cx),
        }
    }
}
