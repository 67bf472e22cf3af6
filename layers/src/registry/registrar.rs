//! The registrar side: the name table and the `self:*` registry RPCs.

use super::client::is_wildcard;
use crate::relay::Raise;
use crate::route::{Call, Endpoints};
use crate::BoxError;
use scipp_codecs::msg::{Addr, FuncType, RawPayload, Uid};
use scipp_codecs::{Codec, WireProfile};
use serde::Deserialize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// A registrar's name table: actor uid → addresses, in registration order,
/// with waiters for names not registered yet.
///
/// Cloning shares the table. [`install`](Self::install) adds the registry
/// RPCs to a peer's endpoints; the methods here are the same operations
/// for local use (e.g. registering the registrar itself).
///
/// ```
/// use scipp_layers::registry::Registrar;
/// use scipp_codecs::msg::{Addr, Uid};
///
/// let registrar = Registrar::new();
/// let uid = Uid::new("scipp_fake", "00000000-0000-4000-8000-000000000001");
/// let addr: Addr = "127.0.0.1:4242".parse().unwrap();
/// registrar.register(uid.clone(), addr.clone());
/// assert_eq!(registrar.find("scipp_fake"), Some(vec![addr]));
/// assert!(registrar.unregister(&uid));
/// assert_eq!(registrar.find("scipp_fake"), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registrar {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    table: Mutex<Vec<(Uid, Vec<Addr>)>>,
    registered: Notify,
}

impl Registrar {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> MutexGuard<'_, Vec<(Uid, Vec<Addr>)>> {
        // every critical section leaves the table consistent
        self.inner
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `addr` to `uid`'s addresses (tractor HEAD's semantics: an
    /// address claimed by a *different* uid is taken from it first, as
    /// after an unclean restart), and wakes whoever waits for its name.
    pub fn register(&self, uid: Uid, addr: Addr) {
        self.register_with(uid, addr, false);
    }

    fn register_with(&self, uid: Uid, addr: Addr, replace: bool) {
        {
            let mut table = self.table();
            for (other, addrs) in table.iter_mut() {
                if *other != uid {
                    addrs.retain(|a| *a != addr);
                }
            }
            table.retain(|(other, addrs)| *other == uid || !addrs.is_empty());
            match table.iter_mut().find(|(u, _)| *u == uid) {
                Some((_, addrs)) if replace => *addrs = vec![addr],
                Some((_, addrs)) if !addrs.contains(&addr) => addrs.push(addr),
                Some(_) => {}
                None => table.push((uid, vec![addr])),
            }
        }
        self.inner.registered.notify_waiters();
    }

    /// Removes `uid`; whether it was registered.
    pub fn unregister(&self, uid: &Uid) -> bool {
        let mut table = self.table();
        let before = table.len();
        table.retain(|(u, _)| u != uid);
        table.len() != before
    }

    /// Removes `addr` from whichever uid holds it; that uid.
    pub fn delete_addr(&self, addr: &Addr) -> Option<Uid> {
        let mut table = self.table();
        let i = table.iter().position(|(_, addrs)| addrs.contains(addr))?;
        table[i].1.retain(|a| a != addr);
        let uid = table[i].0.clone();
        if table[i].1.is_empty() {
            table.remove(i);
        }
        Some(uid)
    }

    /// The addresses of the first actor whose name *or uuid* is `name`
    /// (tractor matches either element of the uid).
    pub fn find(&self, name: &str) -> Option<Vec<Addr>> {
        self.table()
            .iter()
            .find(|(uid, addrs)| (uid.name == name || uid.uuid == name) && !addrs.is_empty())
            .map(|(_, addrs)| addrs.clone())
    }

    /// The addresses of every actor named `name`, waiting until there is
    /// one.
    pub async fn wait_for(&self, name: &str) -> Vec<Addr> {
        loop {
            let registered = self.inner.registered.notified();
            tokio::pin!(registered);
            // listen before looking, so a registration in between is not missed
            registered.as_mut().enable();
            let addrs: Vec<Addr> = self
                .table()
                .iter()
                .filter(|(uid, _)| uid.name == name)
                .flat_map(|(_, addrs)| addrs.iter().cloned())
                .collect();
            if !addrs.is_empty() {
                return addrs;
            }
            registered.await;
        }
    }

    /// Every entry, in registration order.
    pub fn entries(&self) -> Vec<(Uid, Vec<Addr>)> {
        self.table().clone()
    }

    /// Adds the registry RPCs (`self:register_actor`, `unregister_actor`,
    /// `find_actor`, `wait_for_actor`, `get_registry`, `delete_addr`) to
    /// `endpoints`, answering each caller in its channel's wire profile.
    pub fn install<C: Codec>(&self, endpoints: &mut Endpoints<C>) {
        for func in FUNCS {
            let registrar = self.clone();
            let service = tower::service_fn(move |call: Call<C>| {
                let registrar = registrar.clone();
                async move { registrar.serve(func, call).await }
            });
            endpoints.service(
                "self",
                func,
                FuncType::AsyncFunc,
                crate::payload::PldSpec::any(),
                service,
            );
        }
    }

    async fn serve<C: Codec>(&self, func: &str, call: Call<C>) -> Result<RawPayload, BoxError> {
        let head = call.ctx.profile() == WireProfile::Head;
        let codec = call.ctx.codec().clone();
        match func {
            "register_actor" => {
                let kw: RegisterKwargs = call.kwargs()?;
                let (addr, replace) = match (kw.addr, kw.sockaddr) {
                    (Some(addr), _) => (addr, false),
                    (None, Some(addr)) => (addr, true),
                    (None, None) => {
                        return Err(type_error("register_actor() needs `addr` or `sockaddr`"))
                    }
                };
                if matches!(addr, Addr::Tcp { port: 0, .. }) {
                    return Err(type_error("register_actor(): port 0 is not an address"));
                }
                if is_wildcard(&addr) {
                    // no other host could connect to it: refuse rather
                    // than hand it out to every finder
                    tracing::warn!(uid = %kw.uid, %addr, "register_actor: wildcard address refused");
                    return Err(Box::new(Raise::new(
                        "ValueError",
                        format!(
                            "register_actor(): {addr} is a wildcard address that no other host \
                             can connect to; register a routable one (scipp: --advertise)"
                        ),
                    )));
                }
                tracing::debug!(uid = %kw.uid, %addr, "register_actor");
                self.register_with(kw.uid, addr, replace);
                encode(&codec, &())
            }
            "unregister_actor" => {
                let kw: UidKwargs = call.kwargs()?;
                if !self.unregister(&kw.uid) {
                    tracing::debug!(uid = %kw.uid, "unregister_actor: not registered");
                }
                encode(&codec, &())
            }
            "delete_addr" => {
                let kw: AddrKwargs = call.kwargs()?;
                encode(&codec, &self.delete_addr(&kw.addr))
            }
            "find_actor" => {
                let kw: NameKwargs = call.kwargs()?;
                match self.find(&kw.name) {
                    Some(addrs) if head => encode(&codec, &addrs),
                    Some(addrs) => encode(&codec, &addrs.first()),
                    None => encode(&codec, &()),
                }
            }
            "wait_for_actor" => {
                let kw: NameKwargs = call.kwargs()?;
                encode(&codec, &self.wait_for(&kw.name).await)
            }
            "get_registry" => {
                let entries = self.entries();
                let keyed = entries
                    .iter()
                    .map(|(uid, addrs)| (format!("{}.{}", uid.name, uid.uuid), addrs));
                if head {
                    encode(&codec, &OrderedMap(keyed.collect()))
                } else {
                    encode(
                        &codec,
                        &OrderedMap(keyed.filter_map(|(k, a)| Some((k, a.first()?))).collect()),
                    )
                }
            }
            other => Err(type_error(&format!("no registry method {other}"))),
        }
    }
}

const FUNCS: [&str; 6] = [
    "register_actor",
    "unregister_actor",
    "delete_addr",
    "find_actor",
    "wait_for_actor",
    "get_registry",
];

fn type_error(why: &str) -> BoxError {
    Box::new(Raise::new("TypeError", why))
}

#[derive(Deserialize)]
struct RegisterKwargs {
    uid: Uid,
    #[serde(default)]
    sockaddr: Option<Addr>,
    #[serde(default)]
    addr: Option<Addr>,
}

#[derive(Deserialize)]
struct UidKwargs {
    uid: Uid,
}

#[derive(Deserialize)]
struct AddrKwargs {
    addr: Addr,
}

#[derive(Deserialize)]
struct NameKwargs {
    name: String,
}

/// A map in insertion order (a Python dict), from pairs.
struct OrderedMap<K, V>(Vec<(K, V)>);

impl<K: serde::Serialize, V: serde::Serialize> serde::Serialize for OrderedMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

fn encode<C: Codec, T: serde::Serialize + ?Sized>(
    codec: &C,
    value: &T,
) -> Result<RawPayload, BoxError> {
    Ok(codec.encode_payload(value)?)
}
