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
//! Across a network, a name in an `Aid` is only a claim. Over (mutual)
//! TLS the peer's certificate *proves* an identity: rules per identity
//! ([`trust_identity`](AuthorizeLayer::trust_identity),
//! [`allow_for_identity`](AuthorizeLayer::allow_for_identity)) apply to a
//! layer bound to its channel, which
//! [`Peer::inbound_message_layer_fn`](crate::peer::Peer::inbound_message_layer_fn)
//! does once per channel:
//! `.inbound_message_layer_fn(move |info| rules.for_channel(info))`.
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
use crate::peer::ChannelInfo;
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
    /// The names of the channel's certificate identity, once bound to a
    /// channel ([`for_channel`](Self::for_channel)); empty without one.
    identity: Option<Arc<[String]>>,
}

#[derive(Debug, Clone, Default)]
struct Rules {
    /// `(ns, func)`; `func` `*` allows the whole namespace.
    allowed: HashSet<(String, String)>,
    /// Peer names (from their `Aid`) that may cancel this actor.
    trusted: HashSet<String>,
    /// `(identity name, ns, func)`: allowed to peers whose certificate
    /// has that name; `func` `*` allows the whole namespace.
    allowed_for_identity: HashSet<(String, String, String)>,
    /// Certificate names that may cancel this actor.
    trusted_identities: HashSet<String>,
}

impl Rules {
    fn has_identity_rules(&self) -> bool {
        !self.allowed_for_identity.is_empty() || !self.trusted_identities.is_empty()
    }

    fn refusal(&self, start: &Start, identity: &[String]) -> Option<Raise> {
        let place = format!("{}:{}", start.ns, start.func);
        let allowed = |ns: &str, func: &str| {
            let key = |f: &str| (ns.to_owned(), f.to_owned());
            self.allowed.contains(&key(func))
                || self.allowed.contains(&key("*"))
                || identity.iter().any(|name| {
                    let key = |f: &str| (name.clone(), ns.to_owned(), f.to_owned());
                    self.allowed_for_identity.contains(&key(func))
                        || self.allowed_for_identity.contains(&key("*"))
                })
        };
        let who = match identity {
            [] => format!("`{}`", start.uid.name),
            names => format!("`{}` (certificate: {})", start.uid.name, names.join(", ")),
        };
        match (start.ns.as_str(), start.func.as_str()) {
            ("self", "_cancel_task") => None,
            ("self", "cancel") => {
                let ok = self.trusted.contains(&start.uid.name)
                    || identity.iter().any(|n| self.trusted_identities.contains(n))
                    || allowed("self", "cancel");
                (!ok).then(|| {
                    Raise::new(
                        "PermissionError",
                        format!("{who} may not cancel this actor (not a trusted peer)"),
                    )
                })
            }
            (ns, func) if allowed(ns, func) => None,
            _ => Some(Raise::new(
                "PermissionError",
                format!("{who} may not call `{place}` (not on the allow-list)"),
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
    ///
    /// The name is the one the peer *claims* in its `Aid`; across a
    /// network, trust a certificate instead
    /// ([`trust_identity`](Self::trust_identity)).
    pub fn trust(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.rules)
            .trusted
            .insert(name.to_owned());
        self
    }

    /// Lets a peer whose TLS certificate names `name` (a DNS name or URI
    /// of its subject alternative names, as `tls::PeerIdentity::has_name`
    /// matches them) cancel this actor. Takes effect on a layer bound to its channel
    /// ([`for_channel`](Self::for_channel)).
    pub fn trust_identity(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.rules)
            .trusted_identities
            .insert(name.to_owned());
        self
    }

    /// Allows `ns:func` (`func` `"*"`: all of `ns`) to peers whose TLS
    /// certificate names `name`. Takes effect on a layer bound to its
    /// channel ([`for_channel`](Self::for_channel)).
    pub fn allow_for_identity(mut self, name: &str, ns: &str, func: &str) -> Self {
        Arc::make_mut(&mut self.rules).allowed_for_identity.insert((
            name.to_owned(),
            ns.to_owned(),
            func.to_owned(),
        ));
        self
    }

    /// These rules, for one channel: the per-identity rules apply to the
    /// certificate identity of its peer (none on a plain channel: then
    /// only the rules for everyone apply). Use it with
    /// [`Peer::inbound_message_layer_fn`](crate::peer::Peer::inbound_message_layer_fn),
    /// which calls it once per channel:
    ///
    /// ```
    /// use scipp_layers::{authorize::AuthorizeLayer, peer::Peer};
    /// use scipp_codecs::msgpack::MsgpackCodec;
    ///
    /// let rules = AuthorizeLayer::new()
    ///     .allow("math", "add")
    ///     .allow_for_identity("ops.example", "math", "*")
    ///     .trust_identity("admin.example");
    /// let peer = Peer::new("server", MsgpackCodec::new())
    ///     .inbound_message_layer_fn(move |info| rules.for_channel(info));
    /// # drop(peer);
    /// ```
    ///
    /// A layer not bound to a channel knows no identity, so its
    /// per-identity rules never allow anything (it warns once per channel).
    pub fn for_channel(&self, info: &ChannelInfo) -> Self {
        #[cfg(feature = "tls")]
        let names: Vec<String> = info
            .identity()
            .map(|id| {
                id.dns_names()
                    .iter()
                    .chain(id.uri_names())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        #[cfg(not(feature = "tls"))]
        let names: Vec<String> = {
            let _ = info;
            Vec::new()
        };
        AuthorizeLayer {
            rules: self.rules.clone(),
            identity: Some(names.into()),
        }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        if self.identity.is_none() && self.rules.has_identity_rules() {
            tracing::warn!(
                "AuthorizeLayer has per-identity rules but was not bound to its channel \
                 (use `inbound_message_layer_fn(move |info| rules.for_channel(info))`): \
                 they allow nothing"
            );
        }
        Authorize {
            inner,
            rules: self.rules.clone(),
            identity: self.identity.clone().unwrap_or_else(|| Arc::from([])),
        }
    }
}

/// The service of [`AuthorizeLayer`].
#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    rules: Arc<Rules>,
    identity: Arc<[String]>,
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
            if let Some(refusal) = self.rules.refusal(start, &self.identity) {
                tracing::warn!(peer = %start.uid, "refused: {refusal}");
                return ResponseFuture::ready(Err(refusal.into()));
            }
        }
        ResponseFuture::inner(self.inner.call(item))
    }
}
