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
    /// Ends with the murmur3 `fmix64` finalizer: the Fx multiply only
    /// propagates low input bits upwards, and hashbrown picks buckets from
    /// the low bits, so without it keys differing only in later bytes
    /// ("123456" / "123457") collide.
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
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

/// Streaming 64-bit FNV-1a: `write` calls in sequence hash like one
/// [`fnv1a64`] of the concatenated bytes. Used for content fingerprints
/// (stable across versions and machines; not collision-resistant against an
/// adversary, which a change detector does not need).
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a64 {
    /// Feeds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Feeds a length-prefixed byte string (so `["ab", "c"]` ≠ `["a", "bc"]`).
    pub fn write_str(&mut self, s: &str) {
        self.write(&(s.len() as u64).to_le_bytes());
        self.write(s.as_bytes());
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// Interns byte strings to dense `u32` codes in first-seen order without
/// allocating for keys already seen.
///
/// Three tiers, fastest first:
/// - canonical decimal keys (`"0"` or digits without a leading zero) below
///   [`DENSE_LIMIT`] index a direct two-level array (pages of 4096 slots
///   allocated on first use, so sparse ids cost little; slot = code + 1);
/// - other keys of at most 7 bytes are packed into a `u64` (bytes in the low
///   56 bits, length in the top 8) and looked up in an integer map, with no
///   pointer chasing or `memcmp`;
/// - longer keys go to a byte-string map.
///
/// The tiers are disjoint (a key belongs to exactly one), so codes are unique.
#[derive(Default)]
pub(crate) struct Interner {
    pages: Vec<Option<Box<[u32]>>>,
    n_dense: usize,
    small: FxHashMap<u64, u32>,
    large: FxHashMap<Box<[u8]>, u32>,
}

/// Decimal keys below this value use the direct array (≤ 128 MiB of `u32`
/// when every page is used).
pub(crate) const DENSE_LIMIT: u64 = 1 << 25;

const PAGE_BITS: usize = 12;
const PAGE_MASK: usize = (1 << PAGE_BITS) - 1;

/// The value of a canonical decimal key below [`DENSE_LIMIT`].
#[inline]
fn dense_value(key: &[u8]) -> Option<usize> {
    if key.is_empty() || key.len() > 8 || (key[0] == b'0' && key.len() > 1) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in key {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    (v < DENSE_LIMIT).then_some(v as usize)
}

#[inline]
fn pack(key: &[u8]) -> Option<u64> {
    if key.len() > 7 {
        return None;
    }
    let mut buf = [0u8; 8];
    buf[..key.len()].copy_from_slice(key);
    buf[7] = key.len() as u8;
    Some(u64::from_le_bytes(buf))
}

fn unpack(v: u64) -> Box<[u8]> {
    let b = v.to_le_bytes();
    b[..b[7] as usize].into()
}

impl Interner {
    fn next_code(&self) -> u32 {
        (self.n_dense + self.small.len() + self.large.len()) as u32
    }
    /// The code of `key`, if seen.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        if let Some(v) = dense_value(key) {
            return match self.pages.get(v >> PAGE_BITS) {
                Some(Some(p)) if p[v & PAGE_MASK] > 0 => Some(p[v & PAGE_MASK] - 1),
                _ => None,
            };
        }
        match pack(key) {
            Some(p) => self.small.get(&p).copied(),
            None => self.large.get(key).copied(),
        }
    }
    /// The code of the dense key of value `v` (< [`DENSE_LIMIT`]),
    /// inserting it if new.
    #[inline]
    fn intern_dense(&mut self, v: usize) -> u32 {
        let pi = v >> PAGE_BITS;
        if pi >= self.pages.len() {
            self.pages.resize(pi + 1, None);
        }
        let c = self.next_code();
        let page =
            self.pages[pi].get_or_insert_with(|| vec![0u32; PAGE_MASK + 1].into_boxed_slice());
        let slot = &mut page[v & PAGE_MASK];
        if *slot == 0 {
            *slot = c + 1;
            self.n_dense += 1;
        }
        *slot - 1
    }

    /// The code of `key`, inserting it if new.
    #[inline]
    pub fn intern(&mut self, key: &[u8]) -> u32 {
        if let Some(v) = dense_value(key) {
            return self.intern_dense(v);
        }
        let c = self.next_code();
        match pack(key) {
            Some(p) => *self.small.entry(p).or_insert(c),
            None => {
                if let Some(&c) = self.large.get(key) {
                    return c;
                }
                self.large.insert(key.into(), c);
                c
            }
        }
    }
    /// [`Interner::intern`] of the decimal text of `v` (the same code),
    /// without writing that text when `v` is a dense key.
    #[inline]
    pub fn intern_int(&mut self, v: i64) -> u32 {
        if (0..DENSE_LIMIT as i64).contains(&v) {
            self.intern_dense(v as usize)
        } else {
            self.intern(itoa::Buffer::new().format(v).as_bytes())
        }
    }

    /// [`Interner::get`] of the decimal text of `v`.
    #[inline]
    pub fn get_int(&self, v: i64) -> Option<u32> {
        if (0..DENSE_LIMIT as i64).contains(&v) {
            let v = v as usize;
            match self.pages.get(v >> PAGE_BITS) {
                Some(Some(p)) if p[v & PAGE_MASK] > 0 => Some(p[v & PAGE_MASK] - 1),
                _ => None,
            }
        } else {
            self.get(itoa::Buffer::new().format(v).as_bytes())
        }
    }

    /// The key of `code` (a scan: for error messages only).
    pub fn key_of(&self, code: u32) -> Option<Box<[u8]>> {
        for (pi, page) in self.pages.iter().enumerate() {
            for (k, &c) in page.iter().flat_map(|p| p.iter().enumerate()) {
                if c == code + 1 {
                    return Some(((pi << PAGE_BITS) | k).to_string().into_bytes().into());
                }
            }
        }
        if let Some((&k, _)) = self.small.iter().find(|(_, &c)| c == code) {
            return Some(unpack(k));
        }
        self.large
            .iter()
            .find(|(_, &c)| c == code)
            .map(|(k, _)| k.clone())
    }
    /// The keys in code order.
    /// Calls `f(code, key)` for every key, without allocating.
    pub fn for_each_key(&self, mut f: impl FnMut(u32, &[u8])) {
        let mut buf = itoa::Buffer::new();
        for (pi, page) in self.pages.iter().enumerate() {
            for (k, &c) in page.iter().flat_map(|p| p.iter().enumerate()) {
                if c > 0 {
                    f(c - 1, buf.format((pi << PAGE_BITS) | k).as_bytes());
                }
            }
        }
        for (&k, &c) in &self.small {
            let b = k.to_le_bytes();
            f(c, &b[..b[7] as usize]);
        }
        for (k, &c) in &self.large {
            f(c, k);
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.next_code() as usize
    }

    pub fn into_keys(self) -> Vec<Box<[u8]>> {
        let mut out: Vec<Box<[u8]>> = vec![Box::default(); self.next_code() as usize];
        let mut buf = itoa::Buffer::new();
        for (pi, page) in self.pages.iter().enumerate() {
            for (k, &c) in page.iter().flat_map(|p| p.iter().enumerate()) {
                if c > 0 {
                    // one exact allocation (`to_string` went through the
                    // formatter and could over-allocate, then shrink)
                    out[c as usize - 1] = buf.format((pi << PAGE_BITS) | k).as_bytes().into();
                }
            }
        }
        for (k, c) in self.small {
            out[c as usize] = unpack(k);
        }
        for (k, c) in self.large {
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
        let mut h = Fnv1a64::default();
        h.write(b"foo");
        h.write(b"bar");
        assert_eq!(h.finish(), fnv1a64(b"foobar"));
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn numeric_keys_spread_over_low_bits() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        // 4096 consecutive decimal ids must fill most of 4096 low-bit buckets
        // (a uniform hash fills 1 − 1/e ≈ 63% ≈ 2589 of them).
        let b = BuildHasherDefault::<FxHasher>::default();
        let mut used = std::collections::HashSet::new();
        for i in 100_000..104_096u32 {
            used.insert(b.hash_one(i.to_string().as_bytes()) & 4095);
        }
        assert!(used.len() > 2400, "{}", used.len());
    }

    #[test]
    fn interner_is_dense_in_first_seen_order() {
        let mut i = Interner::default();
        assert_eq!(i.intern(b"b"), 0);
        assert_eq!(i.intern(b"a"), 1);
        assert_eq!(i.intern(b"b"), 0);
        assert_eq!(i.get(b"a"), Some(1));
        assert_eq!(i.get(b"c"), None);
        // Long keys (> 7 bytes) and decimal keys share the code space;
        // "007" is not canonical decimal, so it stays distinct from "7".
        assert_eq!(i.intern(b"a-long-key"), 2);
        assert_eq!(i.intern(b""), 3);
        assert_eq!(i.intern(b"1234567"), 4);
        assert_eq!(i.intern(b"7"), 5);
        assert_eq!(i.intern(b"007"), 6);
        assert_eq!(i.intern(b"0"), 7);
        assert_eq!(i.intern(b"99999999"), 8); // ≥ DENSE_LIMIT: hashed
        assert_eq!(i.intern(b"7"), 5);
        assert_eq!(i.get(b"a-long-key"), Some(2));
        assert_eq!(i.get(b"1234567\0"), None);
        assert_eq!(i.get(b"8"), None);
        assert_eq!(i.get(b"007"), Some(6));
        let keys = i.into_keys();
        let want: Vec<&[u8]> = vec![
            b"b",
            b"a",
            b"a-long-key",
            b"",
            b"1234567",
            b"7",
            b"007",
            b"0",
            b"99999999",
        ];
        assert_eq!(keys.iter().map(|k| &k[..]).collect::<Vec<_>>(), want);
    }
}
