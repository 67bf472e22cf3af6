//! An allow-list of what a peer may call: a message layer.
//!
//! [`AuthorizeLayer`] sits at the messages position of a peer's receive
//! stack ([`Peer::inbound_message_layer`](crate::peer::Peer::inbound_message_layer)).
//! A `Start` for an endpoint outside the allow-list is failed with a
//! `PermissionError`; the stack's error relay answers the caller with it
//! (a typed [`RemoteError`](crate::relay::RemoteError) on their side) and
//! the channel keeps serving. The actor cancel `self.cancel` is refused
//! unless the caller's name is trusted (or `self:cancel` is allowed); the
//! cancel of one's own context (`self._cancel_task`) is always allowed,
//! so a caller can always end what it started.
//!
//! ```
//! use scipp_layers::{authorize::AuthorizeLayer, peer::Peer, route::Endpoints};
//! use scipp_codecs::msgpack::MsgpackCodec;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! #[derive(serde::Deserialize)]
//! struct Add { a: i64, b: i64 }
//! let mut endpoints = Endpoints::new();
//! endpoints.rpc("math", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
//! endpoints.rpc("math", "secret", |_: Add| async move { Ok(42) });
//! let server = Peer::new("server", MsgpackCodec::new())
//!     .endpoints(endpoints)
//!     .inbound_message_layer(AuthorizeLayer::new().allow("math", "add").trust("admin"));
//! let client = Peer::new("guest", MsgpackCodec::new());
//! let (a, b) = tokio::io::duplex(4096);
//! let (_served, chan) = tokio::join!(server.accept(a), client.channel(b));
//! let chan = chan.unwrap();
//!
//! let kw = std::collections::BTreeMap::from([("a", 2), ("b", 3)]);
//! assert_eq!(chan.rpc::<_, i64>("math", "add", &kw).await.unwrap(), 5);
//! let refused = chan.rpc::<_, i64>("math", "secret", &kw).await.unwrap_err();
//! assert!(refused.to_string().contains("PermissionError"));
//! assert!(chan.cancel_actor().await.is_err()); // `guest` is not trusted
//! # }
//! ```

use crate::future::ResponseFuture;
use crate::relay::Raise;
use crate::{BoxError, Inbound};
use scipp_codecs::msg::{Msg, Start};
use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Lets a peer start only allow-listed endpoints; see the
/// [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeLayer {
    rules: Arc<Rules>,
}

#[derive(Debug, Clone, Default)]
struct Rules {
    /// `(ns, func)`; `func` `*` allows the whole namespace.
    allowed: HashSet<(String, String)>,
    /// Peer names that may cancel this actor.
    trusted: HashSet<String>,
}

impl Rules {
    fn refusal(&self, start: &Start) -> Option<Raise> {
        let place = format!("{}:{}", start.ns, start.func);
        let allowed = |ns: &str, func: &str| {
            self.allowed.contains(&(ns.to_owned(), func.to_owned()))
                || self.allowed.contains(&(ns.to_owned(), "*".to_owned()))
        };
        match (start.ns.as_str(), start.func.as_str()) {
            ("self", "_cancel_task") => None,
            ("self", "cancel") => {
                let ok = self.trusted.contains(&start.uid.name) || allowed("self", "cancel");
                (!ok).then(|| {
                    Raise::new(
                        "PermissionError",
                        format!(
                            "`{}` may not cancel this actor (not a trusted peer)",
                            start.uid.name
                        ),
                    )
                })
            }
            (ns, func) if allowed(ns, func) => None,
            _ => Some(Raise::new(
                "PermissionError",
                format!(
                    "`{}` may not call `{place}` (not on the allow-list)",
                    start.uid.name
                ),
            )),
        }
    }
}

impl AuthorizeLayer {
    /// Allows nothing yet (but `self._cancel_task`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `ns:func`; `func` `"*"` allows every endpoint of `ns`.
    pub fn allow(mut self, ns: &str, func: &str) -> Self {
        Arc::make_mut(&mut self.rules)
            .allowed
            .insert((ns.to_owned(), func.to_owned()));
        self
    }

    /// Allows `"ns:func"` (or `"ns:*"`).
    ///
    /// # Errors
    /// When `spec` has no `:`.
    pub fn allow_spec(self, spec: &str) -> Result<Self, BoxError> {
        let (ns, func) = spec
            .split_once(':')
            .ok_or_else(|| format!("`{spec}`: expected NS:FUNC"))?;
        Ok(self.allow(ns, func))
    }

    /// Lets the peer named `name` cancel this actor (`self.cancel`).
    pub fn trust(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.rules)
            .trusted
            .insert(name.to_owned());
        self
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The service of [`AuthorizeLayer`].
#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    rules: Arc<Rules>,
}

impl<S> Service<Inbound> for Authorize<S>
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
        if let Some(Msg::Start(start)) = item.as_msg() {
            if let Some(refusal) = self.rules.refusal(start) {
                tracing::warn!(peer = %start.uid, "refused: {refusal}");
                return ResponseFuture::ready(Err(refusal.into()));
            }
        }
        ResponseFuture::inner(self.inner.call(item))
    }
}
