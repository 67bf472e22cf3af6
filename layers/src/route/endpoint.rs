//! Endpoints: what a peer serves, registered by `(ns, func)`.

mod kwargs;

use crate::context::ChildContext;
use crate::payload::PldSpec;
use crate::relay::Raise;
use crate::BoxError;
use scipp_codecs::msg::{FuncType, RawPayload};
use scipp_codecs::Codec;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

/// One call of an endpoint: the child side of the new context, and the
/// raw keyword arguments of the `Start`.
///
/// An endpoint is a `tower::Service<Call<C>>` answering with the encoded
/// return value, so tower's middleware (`Timeout`, `ConcurrencyLimit`,
/// `LoadShed`, ...) wraps it unchanged; see [`Endpoints::service`].
#[derive(Debug)]
pub struct Call<C = crate::DefaultCodec> {
    /// The child side of the context (send `Started`, stream, ...).
    pub ctx: ChildContext<C>,
    /// The `Start.kwargs` map, undecoded.
    pub kwargs: RawPayload,
}

impl<C: Codec> Call<C> {
    /// Decodes the keyword arguments into `T`.
    ///
    /// # Errors
    /// A [`Raise`] of type `TypeError` (what Python reports for bad
    /// keyword arguments) when they do not fit `T`.
    pub fn kwargs<T: DeserializeOwned>(&self) -> Result<T, BoxError> {
        self.ctx
            .codec()
            .decode_payload(&self.kwargs)
            .map_err(|e| Box::new(Raise::new("TypeError", format!("bad kwargs: {e}"))) as BoxError)
    }
}

pub(crate) type EndpointService<C> = BoxCloneSyncService<Call<C>, RawPayload, BoxError>;

/// A registered endpoint.
pub(crate) struct Endpoint<C> {
    pub(crate) functype: FuncType,
    pub(crate) spec: PldSpec<C>,
    pub(crate) service: EndpointService<C>,
}

/// The endpoints a peer serves: only these are callable (tractor's
/// `enable_modules`); a `Start` for anything else is answered with an
/// `Error` and the channel goes on.
///
/// ```
/// use scipp_layers::route::Endpoints;
/// use scipp_codecs::msgpack::MsgpackCodec;
///
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// let mut endpoints = Endpoints::<MsgpackCodec>::new();
/// endpoints.rpc("scipp_peer", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
/// assert!(endpoints.contains("scipp_peer", "add"));
/// ```
pub struct Endpoints<C = crate::DefaultCodec> {
    /// By namespace, then function: a `Start`'s `&str`s look it up
    /// without building an owned key.
    map: HashMap<String, HashMap<String, Endpoint<C>>>,
}

impl<C> fmt::Debug for Endpoints<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self
            .map
            .iter()
            .flat_map(|(ns, funcs)| funcs.keys().map(move |func| format!("{ns}:{func}")))
            .collect();
        names.sort();
        f.debug_struct("Endpoints")
            .field("registered", &names)
            .finish()
    }
}

impl<C: Codec> Default for Endpoints<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Codec> Endpoints<C> {
    /// No endpoints.
    pub fn new() -> Self {
        Endpoints {
            map: HashMap::new(),
        }
    }

    /// Whether `ns:func` is registered.
    pub fn contains(&self, ns: &str, func: &str) -> bool {
        self.get(ns, func).is_some()
    }

    pub(crate) fn get(&self, ns: &str, func: &str) -> Option<&Endpoint<C>> {
        self.map.get(ns)?.get(func)
    }

    /// Registers any `tower::Service` as the endpoint `ns:func`, of kind
    /// `functype`, with payload spec `spec`. Wrap it in tower middleware
    /// first if you like:
    ///
    /// ```
    /// use std::time::Duration;
    /// use scipp_layers::route::{Call, Endpoints};
    /// use scipp_layers::payload::PldSpec;
    /// use scipp_codecs::{msg::FuncType, msgpack::MsgpackCodec, Codec};
    /// use tower::ServiceBuilder;
    ///
    /// let slow = tower::service_fn(|call: Call<MsgpackCodec>| async move {
    ///     Ok::<_, scipp_layers::BoxError>(call.ctx.codec().encode_payload(&1)?)
    /// });
    /// let mut endpoints = Endpoints::<MsgpackCodec>::new();
    /// endpoints.service(
    ///     "scipp_peer",
    ///     "slow",
    ///     FuncType::AsyncFunc,
    ///     PldSpec::any(),
    ///     ServiceBuilder::new()
    ///         .map_err(scipp_layers::BoxError::from)
    ///         .timeout(Duration::from_secs(1))
    ///         .concurrency_limit(4)
    ///         .service(slow),
    /// );
    /// ```
    pub fn service<S>(
        &mut self,
        ns: &str,
        func: &str,
        functype: FuncType,
        spec: PldSpec<C>,
        service: S,
    ) -> &mut Self
    where
        S: tower::Service<Call<C>, Response = RawPayload> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let service = BoxCloneSyncService::new(service.map_err(Into::into));
        self.map.entry(ns.to_owned()).or_default().insert(
            func.to_owned(),
            Endpoint {
                functype,
                spec,
                service,
            },
        );
        self
    }

    /// Registers a context endpoint (`functype = "context"`): an async fn
    /// of the child context and typed kwargs. It must call
    /// [`started`](ChildContext::started) once; its return value is sent as
    /// `Return`, its error as a boxed `Error`.
    ///
    /// The kwargs are checked as Python checks a call, see
    /// [`rpc`](Self::rpc) ("Keyword arguments as Python checks them").
    pub fn context<K, R, F, Fut>(
        &mut self,
        ns: &str,
        func: &str,
        spec: PldSpec<C>,
        f: F,
    ) -> &mut Self
    where
        K: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(ChildContext<C>, K) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, BoxError>> + Send + 'static,
    {
        let accepted = kwargs::Accepted::of::<K>();
        // shared: the service (and so this) is cloned per call
        let name: std::sync::Arc<str> = func.into();
        let svc = tower::service_fn(move |call: Call<C>| {
            let f = f.clone();
            let kwargs = kwargs::decode::<C, K>(call.ctx.codec(), &call.kwargs, &name, &accepted);
            async move {
                let kwargs = kwargs?;
                let codec = call.ctx.codec().clone();
                let out = f(call.ctx, kwargs).await?;
                Ok::<_, BoxError>(codec.encode_payload(&out)?)
            }
        });
        self.service(ns, func, FuncType::Context, spec, svc)
    }

    /// Registers a plain RPC (`functype = "asyncfunc"`): `Start → StartAck
    /// → Return`.
    ///
    /// # Keyword arguments as Python checks them
    ///
    /// `K` is decoded from the `Start`'s kwargs map. A struct takes exactly
    /// its (serde) field names: a caller passing another keyword gets a
    /// boxed `TypeError` worded like Python's,
    /// `add() got an unexpected keyword argument 'c'`, and one leaving out a
    /// required field gets `add() missing 1 required positional argument:
    /// 'b'` (serde reports the first missing field only). To accept extra
    /// keywords, take a map (`BTreeMap<String, V>`), or collect them in a
    /// `#[serde(flatten)]` map field.
    ///
    /// ```
    /// use scipp_layers::route::Endpoints;
    /// use scipp_codecs::msgpack::MsgpackCodec;
    /// use std::collections::BTreeMap;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Add { a: i64, b: i64 } // add(a=1, b=2, c=3) is a TypeError
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Sum {
    ///     a: i64,
    ///     #[serde(flatten)]
    ///     rest: BTreeMap<String, i64>, // sum(a=1, b=2, c=3) is fine
    /// }
    ///
    /// let mut endpoints = Endpoints::<MsgpackCodec>::new();
    /// endpoints.rpc("math", "add", |kw: Add| async move { Ok(kw.a + kw.b) });
    /// endpoints.rpc("math", "sum", |kw: Sum| async move { Ok(kw.a + kw.rest.values().sum::<i64>()) });
    /// ```
    pub fn rpc<K, R, F, Fut>(&mut self, ns: &str, func: &str, f: F) -> &mut Self
    where
        K: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(K) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, BoxError>> + Send + 'static,
    {
        let accepted = kwargs::Accepted::of::<K>();
        // shared: the service (and so this) is cloned per call
        let name: std::sync::Arc<str> = func.into();
        let svc = tower::service_fn(move |call: Call<C>| {
            let f = f.clone();
            let kwargs = kwargs::decode::<C, K>(call.ctx.codec(), &call.kwargs, &name, &accepted);
            async move {
                let kwargs = kwargs?;
                let out = f(kwargs).await?;
                Ok::<_, BoxError>(call.ctx.codec().encode_payload(&out)?)
            }
        });
        self.service(ns, func, FuncType::AsyncFunc, PldSpec::any(), svc)
    }

    /// Keeps only the endpoints whose namespace passes `keep` (a spawned
    /// child serves only the modules its parent enabled, as tractor's
    /// `enable_modules` does).
    ///
    /// ```
    /// use scipp_layers::{examples, route::Endpoints};
    /// use scipp_codecs::msgpack::MsgpackCodec;
    /// let mut endpoints: Endpoints<MsgpackCodec> = examples::scipp_peer();
    /// endpoints.retain_namespaces(|ns| ns == "other");
    /// assert!(!endpoints.contains("scipp_peer", "add"));
    /// ```
    pub fn retain_namespaces(&mut self, mut keep: impl FnMut(&str) -> bool) -> &mut Self {
        self.map.retain(|ns, _| keep(ns));
        self
    }
}
