use crate::future::ResponseFuture;
use crate::{BoxError, Inbound};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Logs each invalid item as a `tracing` warning and drops it; valid items
/// pass. The stream goes on as if the bad message had never come.
///
/// ```
/// use scipp_layers::{policy, Inbound, BoxError};
/// use tower::ServiceBuilder;
/// let app = tower::service_fn(|_: Inbound| async { Ok::<_, BoxError>(()) });
/// let svc = ServiceBuilder::new().layer(policy::ignore_and_warn()).service(app);
/// # drop(svc);
/// ```
pub fn ignore_and_warn() -> IgnoreAndWarnLayer {
    IgnoreAndWarnLayer { _priv: () }
}

/// The layer of [`ignore_and_warn`].
#[derive(Debug, Clone, Copy)]
pub struct IgnoreAndWarnLayer {
    _priv: (),
}

impl<S> Layer<S> for IgnoreAndWarnLayer {
    type Service = IgnoreAndWarn<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IgnoreAndWarn { inner }
    }
}

/// The service of [`ignore_and_warn`].
#[derive(Debug, Clone)]
pub struct IgnoreAndWarn<S> {
    inner: S,
}

impl<S> Service<Inbound> for IgnoreAndWarn<S>
where
    S: Service<Inbound, Response = ()>,
    S::Error: Into<BoxError>,
{
    type Response = ();
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, item: Inbound) -> Self::Future {
        match item {
            Inbound::Invalid(err) => {
                tracing::warn!(
                    cid = err.cid().map(|c| c.as_str()),
                    peer = err.src_uid().map(|u| u.name.as_str()),
                    kind = err.kind().map(|k| k.as_str()),
                    "dropping an invalid message: {}",
                    err.summary()
                );
                ResponseFuture::ready(Ok(()))
            }
            valid => ResponseFuture::inner(self.inner.call(valid)),
        }
    }
}
