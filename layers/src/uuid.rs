//! Fresh uuid4-shaped ids for cids and actor uuids.
//!
//! Uniqueness, not secrecy, is what matters here: 122 bits mixed from a
//! process-wide counter and the clock, keyed with random words drawn once
//! per process. No extra dependency for it.

use scipp_codecs::msg::Cid;
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
    let text = uuid_text();
    std::str::from_utf8(&text)
        .expect("hex digits and dashes")
        .to_owned()
}

/// A fresh cid: a uuid4 string, allocated once (straight into the cid's
/// shared string).
pub(crate) fn new_cid() -> Cid {
    let text = uuid_text();
    Cid::from(std::str::from_utf8(&text).expect("hex digits and dashes"))
}

/// The 36 bytes of a new uuid4 string.
///
/// Written by hand rather than with `format!` and two SipHashes: every
/// `rpc` and context opens with a fresh cid, and that was ~7 000
/// instructions an id (callgrind, 64 concurrent unary callers,
/// `benches/peers`); this is a few hundred.
fn uuid_text() -> [u8; 36] {
    // random per process (std's keyed hasher draws them from the OS)
    static KEYS: OnceLock<(u64, u64)> = OnceLock::new();
    let (k1, k2) = *KEYS.get_or_init(|| {
        let state = RandomState::new();
        let key = |salt: u64| {
            let mut h = state.build_hasher();
            h.write_u64(salt);
            h.finish()
        };
        (key(1), key(2))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // the clock tells apart a process forked without exec (same keys,
    // same counter)
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // splitmix64's finalizer is a bijection: distinct counters give
    // distinct low words, so ids of one process never repeat
    let (hi, lo) = (mix(nanos ^ k2), mix(n ^ k1));
    // version 4 in the 13th digit, variant 10xx in the 17th
    let bits = ((u128::from(hi) << 64) | u128::from(lo)) & !(0xf << 76) & !(0x3 << 62);
    let bits = bits | (0x4 << 76) | (0x2 << 62);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in bits.to_be_bytes().into_iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1; // the dash
        }
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
        at += 2;
    }
    out
}

/// splitmix64's output function (Steele, Lea, Flood 2014): a bijection
/// of `u64` that spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid4_shape() {
        for _ in 0..1000 {
            let id = new_uuid();
            let b = id.as_bytes();
            assert_eq!(b.len(), 36);
            for (i, &c) in b.iter().enumerate() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    assert_eq!(c, b'-', "{id}");
                } else {
                    assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{id}");
                }
            }
            assert_eq!(b[14], b'4', "version 4: {id}");
            assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'), "variant: {id}");
        }
    }

    #[test]
    fn cids_are_distinct() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_cid().as_str().to_owned()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
