//! The map type of every per-`cid` table (dialog states, payload specs,
//! context queues).

use scipp_codecs::msg::Cid;
use std::collections::HashMap;

/// A map keyed by `cid`, hashed with foldhash instead of std's SipHash.
///
/// Every received message is looked up in three of these, and SipHash of
/// a 36-byte cid was ~10 % of the receive path's instructions (callgrind,
/// `BENCHMARKS.md`). Cids are chosen by the peer, so the hasher stays
/// keyed: `quality::RandomState` draws a random seed per map, and a peer
/// cannot aim collisions at a seed it never sees. The tables are also
/// bounded by `Config::max_contexts`.
pub(crate) type CidMap<V> = HashMap<Cid, V, foldhash::quality::RandomState>;
