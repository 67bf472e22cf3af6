use crate::future::ResponseFuture;
use crate::{BoxError, Inbound};
use scipp_codecs::msg::Cid;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// How many failed contexts a [`FailFast`] remembers (oldest forgotten
/// first), so a peer cannot grow it without bound.
const REMEMBERED: usize = 4096;

/// The first invalid item of a context is delivered (so its consumer sees
/// the error) and fails that context: nothing after it on that `cid` is
/// delivered as valid. Other contexts go on. An invalid item with no
/// context fails the whole channel (the service returns the error).
///
/// Clones of one service share the set of failed contexts, so a router or
/// buffer that clones it still sees one consistent policy.
///
/// ```
/// use scipp_layers::{policy, Inbound, BoxError};
/// use tower::ServiceBuilder;
/// let app = tower::service_fn(|_: Inbound| async { Ok::<_, BoxError>(()) });
/// let svc = ServiceBuilder::new().layer(policy::fail_fast()).service(app);
/// # drop(svc);
/// ```
pub fn fail_fast() -> FailFastLayer {
    FailFastLayer { _priv: () }
}

/// The layer of [`fail_fast`].
#[derive(Debug, Clone, Copy)]
pub struct FailFastLayer {
    _priv: (),
}

impl<S> Layer<S> for FailFastLayer {
    type Service = FailFast<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FailFast {
            inner,
            failed: Arc::new(Failed::default()),
        }
    }
}

/// The service of [`fail_fast`].
#[derive(Debug, Clone)]
pub struct FailFast<S> {
    inner: S,
    failed: Arc<Failed>,
}

/// The failed contexts, oldest first; `any` spares the lock until one fails.
#[derive(Debug, Default)]
struct Failed {
    any: AtomicBool,
    set: Mutex<(HashSet<Cid>, VecDeque<Cid>)>,
}

impl Failed {
    fn contains(&self, cid: &Cid) -> bool {
        self.any.load(Ordering::Acquire)
            && self
                .set
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .0
                .contains(cid)
    }

    fn insert(&self, cid: Cid) {
        let mut guard = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if set.insert(cid.clone()) {
            order.push_back(cid);
            if order.len() > REMEMBERED {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
        self.any.store(true, Ordering::Release);
    }
}

impl<S> FailFast<S> {
    /// Whether context `cid` has failed.
    pub fn has_failed(&self, cid: &Cid) -> bool {
        self.failed.contains(cid)
    }
}

impl<S> Service<Inbound> for FailFast<S>
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
        match item.cid().cloned() {
            Some(cid) if self.failed.contains(&cid) => {
                tracing::debug!(cid = cid.as_str(), "dropping a message of a failed context");
                ResponseFuture::ready(Ok(()))
            }
            Some(cid) if item.as_invalid().is_some() => {
                self.failed.insert(cid);
                ResponseFuture::inner(self.inner.call(item))
            }
            None => match item {
                Inbound::Invalid(err) => ResponseFuture::ready(Err(Box::new(err))),
                valid => ResponseFuture::inner(self.inner.call(valid)),
            },
            Some(_) => ResponseFuture::inner(self.inner.call(item)),
        }
    }
}
