//! Typed identifiers: context ids and actor uids.

use std::fmt;
use std::sync::Arc;

/// A context id: the `cid` string that names one dialog on a channel.
///
/// tractor uses a fresh `str(uuid4())` per `Start`; any string is accepted
/// on the wire. Cloning is cheap (the string is shared).
///
/// ```
/// use scipp_codecs::msg::Cid;
/// let cid = Cid::from("f3ae7fac-3352-4cf5-b26f-b29198be782c");
/// assert_eq!(cid.as_str().len(), 36);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid(Arc<str>);

impl Cid {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cid whose UTF-8 bytes are `bytes`, sharing the string of the
    /// last cid decoded on this thread when it is the same. A stream's
    /// messages all carry one cid: a match saves an allocation and a free
    /// per received message (measured: ~5 % of the receive path's
    /// instructions with callgrind), and skips the UTF-8 check, since the
    /// bytes equal a string that is valid already. Fails if not UTF-8.
    #[cfg(any(feature = "msgpack", feature = "cbor"))]
    pub(crate) fn reuse_bytes(bytes: &[u8]) -> Result<Cid, std::str::Utf8Error> {
        thread_local! {
            static LAST: std::cell::RefCell<Option<Cid>> = const { std::cell::RefCell::new(None) };
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some(cid) if cid.as_str().as_bytes() == bytes => Ok(cid.clone()),
                _ => {
                    let cid = Cid::from(std::str::from_utf8(bytes)?);
                    *last = Some(cid.clone());
                    Ok(cid)
                }
            }
        })
    }
}

impl From<&str> for Cid {
    fn from(s: &str) -> Self {
        Cid(Arc::from(s))
    }
}

impl From<String> for Cid {
    fn from(s: String) -> Self {
        Cid(Arc::from(s))
    }
}

impl std::borrow::Borrow<str> for Cid {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An actor uid: the pair `(name, uuid)`, a 2-element array on the wire.
///
/// ```
/// use scipp_codecs::msg::Uid;
/// let uid = Uid::new("scipp_peer", "659aea7d-8870-4c70-8c64-345c54084a49");
/// assert_eq!(uid.to_string(), "('scipp_peer', '659aea7d-8870-4c70-8c64-345c54084a49')");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid {
    /// The actor's name, e.g. `"scipp_peer"`.
    pub name: String,
    /// The actor's uuid string.
    pub uuid: String,
}

impl Uid {
    /// Builds a uid from its two parts.
    pub fn new(name: impl Into<String>, uuid: impl Into<String>) -> Self {
        Uid {
            name: name.into(),
            uuid: uuid.into(),
        }
    }
}

/// Renders like the Python tuple repr tractor prints in its messages.
impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "('{}', '{}')", self.name, self.uuid)
    }
}
