//! Fresh uuid4-shaped ids for cids and actor uuids.
//!
//! Uniqueness, not secrecy, is what matters here: 122 bits from std's
//! randomly keyed SipHash over a process-wide counter and the clock. No
//! extra dependency for it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new random uuid4 string, e.g. `"3c9a7cee-6137-464c-86f3-1299c4202646"`.
///
/// ```
/// let a = scipp_layers::new_uuid();
/// assert_eq!(a.len(), 36);
/// assert_ne!(a, scipp_layers::new_uuid());
/// ```
pub fn new_uuid() -> String {
    static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
    let (k1, k2) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let word = |k: &RandomState| {
        let mut h = k.build_hasher();
        h.write_u64(n);
        h.write_u128(nanos);
        h.finish()
    };
    let (hi, lo) = (word(k1), word(k2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        ((lo >> 48) & 0x3fff) | 0x8000,
        lo & 0xffff_ffff_ffff
    )
}
