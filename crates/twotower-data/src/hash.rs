//! Deterministic hashing: an Fx-style hasher for in-memory maps (never
//! std's randomly seeded `RandomState`, so runs are reproducible) and
//! 64-bit FNV-1a for `hash_buckets` (a stable, documented function: the
//! bucket of a token never changes between versions or machines).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The Fx hash (as in rustc): fast, deterministic, not DoS-resistant.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with the deterministic Fx hasher.
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// 64-bit FNV-1a of `bytes` (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Interns byte strings to dense `u32` codes in first-seen order without
/// allocating for keys already seen.
#[derive(Default)]
pub(crate) struct Interner {
    map: FxHashMap<Box<[u8]>, u32>,
}

impl Interner {
    /// The code of `key`, if seen.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        self.map.get(key).copied()
    }
    /// The code of `key`, inserting it if new.
    #[inline]
    pub fn intern(&mut self, key: &[u8]) -> u32 {
        if let Some(&c) = self.map.get(key) {
            return c;
        }
        let c = self.map.len() as u32;
        self.map.insert(key.into(), c);
        c
    }
    /// The keys in code order.
    pub fn into_keys(self) -> Vec<Box<[u8]>> {
        let mut out: Vec<Box<[u8]>> = vec![Box::default(); self.map.len()];
        for (k, c) in self.map {
            out[c as usize] = k;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn interner_is_dense_in_first_seen_order() {
        let mut i = Interner::default();
        assert_eq!(i.intern(b"b"), 0);
        assert_eq!(i.intern(b"a"), 1);
        assert_eq!(i.intern(b"b"), 0);
        assert_eq!(i.get(b"a"), Some(1));
        assert_eq!(i.get(b"c"), None);
        let keys = i.into_keys();
        assert_eq!(keys, vec![Box::from(&b"b"[..]), Box::from(&b"a"[..])]);
    }
}
