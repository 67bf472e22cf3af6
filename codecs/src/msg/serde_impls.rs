//! The ids and addresses as payload values, in tractor's shapes: a [`Uid`]
//! is `[name, uuid]`, an [`Addr`] is `[host, port]` or `[dir, file]`
//! (registry RPC arguments and results carry them).

use super::{Addr, Uid};
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeTuple, Serializer};
use std::fmt;
use std::str::FromStr;

impl Serialize for Uid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.name)?;
        t.serialize_element(&self.uuid)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Uid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (name, uuid) = <(String, String)>::deserialize(d)?;
        Ok(Uid { name, uuid })
    }
}

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        match self {
            Addr::Tcp { host, port } => {
                t.serialize_element(host)?;
                t.serialize_element(port)?;
            }
            Addr::Uds { dir, file } => {
                t.serialize_element(dir)?;
                t.serialize_element(file)?;
            }
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(AddrVisitor)
    }
}

struct AddrVisitor;

/// The second element of an address: a TCP port or a socket file name.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum PortOrFile {
    Port(u16),
    File(String),
}

impl<'de> Visitor<'de> for AddrVisitor {
    type Value = Addr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an address: [host, port] or [dir, file]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Addr, A::Error> {
        let first: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let second: PortOrFile = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(3, &self));
        }
        Ok(match second {
            PortOrFile::Port(port) => Addr::Tcp { host: first, port },
            PortOrFile::File(file) => Addr::Uds { dir: first, file },
        })
    }
}

/// `host:port`, or the socket's path.
///
/// ```
/// use scipp_codecs::msg::Addr;
/// let addr: Addr = "127.0.0.1:4242".parse().unwrap();
/// assert_eq!(addr.to_string(), "127.0.0.1:4242");
/// let uds: Addr = "/tmp/scipp/peer.sock".parse().unwrap();
/// assert_eq!(uds, Addr::Uds { dir: "/tmp/scipp".into(), file: "peer.sock".into() });
/// ```
impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "{host}:{port}"),
            Addr::Uds { dir, file } => write!(f, "{dir}/{file}"),
        }
    }
}

/// Why a string is not an [`Addr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither HOST:PORT nor a socket path")]
pub struct AddrParseError(String);

impl FromStr for Addr {
    type Err = AddrParseError;

    /// A path (anything with a `/`) is a Unix socket; otherwise `HOST:PORT`
    /// (`[v6]:port` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AddrParseError(s.to_owned());
        if s.contains('/') {
            let (dir, file) = s.rsplit_once('/').ok_or_else(bad)?;
            if file.is_empty() {
                return Err(bad());
            }
            let dir = if dir.is_empty() { "/" } else { dir };
            return Ok(Addr::Uds {
                dir: dir.to_owned(),
                file: file.to_owned(),
            });
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Addr::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}
