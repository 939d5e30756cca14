//! Vocabularies (token ↔ index, index 0 = out-of-vocabulary/missing) and the
//! "by id" order of EVALUATION.md.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::hash::{fnv1a64, FxHasher};

/// The token of index 0.
pub const OOV_TOKEN: &str = "<oov>";

/// A feature's vocabulary.
///
/// Index 0 is reserved for out-of-vocabulary and missing values; real
/// values have indices `1..len()`. With `hash_buckets = Some(n)` there is
/// no token list: `lookup(t) = 1 + fnv1a64(t) % n` and `len() = n + 1`.
///
/// # Memory
/// The tokens live in one string arena (their bytes back to back, plus an
/// end offset each) and the lookup table holds only their indices: about
/// `len + 12` bytes a token. A `Vec<String>` plus a `HashMap<String, u32>`
/// held each token twice with two allocations and ~100 bytes of overhead:
/// 1 GB more for a 10M-item id vocabulary.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "VocabRepr", into = "VocabRepr")]
pub struct Vocab {
    /// The tokens of indices `1..`, concatenated.
    bytes: String,
    /// `ends[i]`: end in `bytes` of the token of index `i + 1`.
    ends: Vec<usize>,
    /// Indices (`1..`) keyed by their token's FxHash; the first of equal
    /// tokens only.
    index: hashbrown::HashTable<u32>,
    hash_buckets: Option<u32>,
}

impl PartialEq for Vocab {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
            && self.ends == other.ends
            && self.hash_buckets == other.hash_buckets
    }
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<&str> = self.iter_tokens().take(8).collect();
        f.debug_struct("Vocab")
            .field("len", &self.len())
            .field("hash_buckets", &self.hash_buckets)
            .field("first_tokens", &shown)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct VocabRepr {
    tokens: Vec<String>,
    hash_buckets: Option<u32>,
}

impl From<VocabRepr> for Vocab {
    fn from(r: VocabRepr) -> Self {
        match r.hash_buckets {
            Some(n) => Vocab::hashed(n),
            None => Vocab::from_tokens(r.tokens.into_iter().skip(1).collect()),
        }
    }
}

impl From<Vocab> for VocabRepr {
    fn from(v: Vocab) -> Self {
        let mut tokens = Vec::with_capacity(v.ends.len() + 1);
        tokens.push(OOV_TOKEN.to_string());
        tokens.extend(v.iter_tokens().map(str::to_string));
        VocabRepr {
            tokens,
            hash_buckets: v.hash_buckets,
        }
    }
}

fn fx(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

impl Vocab {
    /// Bytes this vocabulary holds on the heap: the token arena, the token
    /// ends and the hash table (its slots and control bytes).
    pub fn heap_bytes(&self) -> u64 {
        (self.bytes.capacity() + 8 * self.ends.capacity() + 5 * self.index.capacity()) as u64
    }

    /// A vocabulary whose index `i + 1` is `tokens[i]` (duplicates keep the first index).
    pub fn from_tokens(tokens: Vec<String>) -> Self {
        Self::from_strs(tokens.iter().map(String::as_str))
    }

    /// [`Vocab::from_tokens`] over borrowed tokens.
    pub fn from_strs<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let mut v = Vocab {
            bytes: String::new(),
            ends: Vec::new(),
            index: hashbrown::HashTable::new(),
            hash_buckets: None,
        };
        let tokens = tokens.into_iter();
        let n = tokens.size_hint().0;
        // room for every token up front: growing the table would hash
        // every token again at each doubling
        v.ends.reserve(n);
        v.index.reserve(n, |_| unreachable!("empty table"));
        for t in tokens {
            let i = v.ends.len() as u32 + 1;
            let (bytes, ends) = (&v.bytes, &v.ends);
            // one probe: the slot found empty is where a new token goes
            if let hashbrown::hash_table::Entry::Vacant(e) = v.index.entry(
                fx(t),
                |&j| slice(bytes, ends, j) == t,
                |&j| fx(slice(bytes, ends, j)),
            ) {
                e.insert(i);
            }
            v.bytes.push_str(t);
            v.ends.push(v.bytes.len());
        }
        v.bytes.shrink_to_fit();
        v.ends.shrink_to_fit();
        v.index.shrink_to_fit(|&j| fx(slice(&v.bytes, &v.ends, j)));
        v
    }

    /// A hashing vocabulary with `n` buckets (indices 1..=n).
    pub fn hashed(n: u32) -> Self {
        Vocab {
            bytes: String::new(),
            ends: Vec::new(),
            index: hashbrown::HashTable::new(),
            hash_buckets: Some(n.max(1)),
        }
    }

    /// Number of indices including index 0.
    pub fn len(&self) -> usize {
        match self.hash_buckets {
            Some(n) => n as usize + 1,
            None => self.ends.len() + 1,
        }
    }

    /// True when only index 0 exists.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }

    /// The token of index `i` (`"<oov>"` for 0; `None` out of range or for
    /// the buckets of a hashing vocabulary).
    pub fn token(&self, i: u32) -> Option<&str> {
        match i {
            0 => Some(OOV_TOKEN),
            i if (i as usize) <= self.ends.len() => Some(slice(&self.bytes, &self.ends, i)),
            _ => None,
        }
    }

    /// The index of `tok`, 0 if out of vocabulary.
    pub fn lookup(&self, tok: &str) -> u32 {
        match self.hash_buckets {
            Some(n) => 1 + (fnv1a64(tok.as_bytes()) % n as u64) as u32,
            None => self
                .index
                .find(fx(tok), |&j| slice(&self.bytes, &self.ends, j) == tok)
                .copied()
                .unwrap_or(0),
        }
    }

    /// Number of hash buckets, if this is a hashing vocabulary.
    pub fn hash_buckets(&self) -> Option<u32> {
        self.hash_buckets
    }

    /// The tokens of indices `1..len()` (empty for a hashing vocabulary).
    pub fn tokens(&self) -> Vec<&str> {
        self.iter_tokens().collect()
    }

    /// The tokens of indices `1..len()`, in order, without collecting them.
    pub fn iter_tokens(&self) -> impl Iterator<Item = &str> + '_ {
        (1..=self.ends.len() as u32).map(|i| slice(&self.bytes, &self.ends, i))
    }
}

/// The token of index `i ≥ 1`.
fn slice<'a>(bytes: &'a str, ends: &[usize], i: u32) -> &'a str {
    let i = i as usize;
    let start = if i == 1 { 0 } else { ends[i - 2] };
    &bytes[start..ends[i - 1]]
}

/// Parses an id as an integer for the "by id" order (`str::parse::<i64>`).
fn as_int(s: &str) -> Option<i64> {
    s.parse::<i64>().ok()
}

/// The "by id" order of EVALUATION.md: numeric when every id parses as an
/// integer, else byte-wise. Returns the permutation that sorts `ids`
/// (ties between numerically equal ids such as "007" and "7" break
/// byte-wise, and equal ids by position, so the order is total and
/// deterministic; the sort runs in parallel and does not depend on the
/// thread count).
pub fn id_order<S: AsRef<str> + Sync>(ids: &[S]) -> Vec<u32> {
    id_order_as(ids, true)
}

/// Every id's integer value, `None` when one is not an integer.
pub(crate) fn int_values<S: AsRef<str> + Sync>(ids: &[S]) -> Option<Vec<i64>> {
    use rayon::prelude::*;
    ids.par_iter().map(|s| as_int(s.as_ref())).collect()
}

/// The numeric "by id" order of `ids` whose values are `nums`
/// ([`int_values`]): [`id_order_as`]`(ids, true)` without parsing again.
pub(crate) fn id_order_of_ints<S: AsRef<str> + Sync>(ids: &[S], nums: &[i64]) -> Vec<u32> {
    use rayon::prelude::*;
    let bytes = |i: u32| ids[i as usize].as_ref().as_bytes();
    let mut n: Vec<(i64, u32)> = nums
        .iter()
        .enumerate()
        .map(|(i, &x)| (x, i as u32))
        .collect();
    n.par_sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| bytes(a.1).cmp(bytes(b.1)))
            .then(a.1.cmp(&b.1))
    });
    n.into_iter().map(|(_, i)| i).collect()
}

/// [`id_order`], byte-wise unless `numeric` and every id is an integer.
pub(crate) fn id_order_as<S: AsRef<str> + Sync>(ids: &[S], numeric: bool) -> Vec<u32> {
    use rayon::prelude::*;
    let bytes = |i: u32| ids[i as usize].as_ref().as_bytes();
    let nums: Option<Vec<(i64, u32)>> = if numeric {
        ids.par_iter()
            .enumerate()
            .map(|(i, s)| as_int(s.as_ref()).map(|n| (n, i as u32)))
            .collect()
    } else {
        None
    };
    match nums {
        Some(mut n) => {
            n.par_sort_unstable_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| bytes(a.1).cmp(bytes(b.1)))
                    .then(a.1.cmp(&b.1))
            });
            n.into_iter().map(|(_, i)| i).collect()
        }
        None => {
            let mut perm: Vec<u32> = (0..ids.len() as u32).collect();
            perm.par_sort_unstable_by(|&a, &b| bytes(a).cmp(bytes(b)).then(a.cmp(&b)));
            perm
        }
    }
}

/// Sorts tokens in place in "by id" order (numeric if all are integers).
pub fn sort_ids(ids: &mut [String]) {
    let all_int = ids.iter().all(|s| as_int(s).is_some());
    if all_int {
        ids.sort_unstable_by(|a, b| {
            let (x, y) = (as_int(a).unwrap_or(0), as_int(b).unwrap_or(0));
            x.cmp(&y).then_with(|| a.as_bytes().cmp(b.as_bytes()))
        });
    } else {
        ids.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    }
}

/// Compares two ids given whether the id set is numeric.
pub fn cmp_ids(a: &str, b: &str, numeric: bool) -> Ordering {
    if numeric {
        let (x, y) = (as_int(a).unwrap_or(0), as_int(b).unwrap_or(0));
        x.cmp(&y).then_with(|| a.as_bytes().cmp(b.as_bytes()))
    } else {
        a.as_bytes().cmp(b.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_order_only_when_all_ids_are_integers() {
        let ids = ["10", "9", "100", "007", "7"];
        let p = id_order(&ids);
        let sorted: Vec<&str> = p.iter().map(|&i| ids[i as usize]).collect();
        // 7 == 7 numerically: "007" < "7" byte-wise breaks the tie.
        assert_eq!(sorted, vec!["007", "7", "9", "10", "100"]);
        let ids = ["10", "9", "a"];
        let p = id_order(&ids);
        let sorted: Vec<&str> = p.iter().map(|&i| ids[i as usize]).collect();
        assert_eq!(sorted, vec!["10", "9", "a"]);
    }

    #[test]
    fn vocab_reserves_zero() {
        let v = Vocab::from_tokens(vec!["F".into(), "M".into()]);
        assert_eq!(v.len(), 3);
        assert_eq!(v.token(0), Some(OOV_TOKEN));
        assert_eq!(v.lookup("M"), 2);
        assert_eq!(v.lookup("X"), 0);
        assert_eq!(v.token(3), None);
        let h = Vocab::hashed(10);
        assert_eq!(h.len(), 11);
        // fnv1a64("a") = 0xaf63dc4c8601ec8c = 12638187200555641996; % 10 = 6 → index 7.
        assert_eq!(h.lookup("a"), 7);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"tokens":["<oov>","F","M"],"hash_buckets":null}"#);
        let back: Vocab = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn compact_vocab_keeps_every_token_and_the_first_index() {
        // duplicates keep the first index; the empty token is a token
        let toks = ["b", "a", "", "b", "ab", "ba", "a"];
        let v = Vocab::from_strs(toks);
        assert_eq!(v.len(), 8);
        assert_eq!(v.tokens(), toks.to_vec());
        for (i, t) in toks.iter().enumerate() {
            assert_eq!(v.token(i as u32 + 1), Some(*t));
        }
        assert_eq!(
            ["b", "a", "", "ab", "ba", "abc", "B"].map(|t| v.lookup(t)),
            [1, 2, 3, 5, 6, 0, 0]
        );
        // a large one against a HashMap oracle
        let many: Vec<String> = (0..20_000)
            .map(|i| format!("item{}", i * 7 % 13_001))
            .collect();
        let v = Vocab::from_tokens(many.clone());
        let mut oracle = std::collections::HashMap::new();
        for (i, t) in many.iter().enumerate() {
            oracle.entry(t.as_str()).or_insert(i as u32 + 1);
        }
        for t in many.iter().map(String::as_str).chain(["item13001", "x"]) {
            assert_eq!(v.lookup(t), oracle.get(t).copied().unwrap_or(0), "{t}");
        }
        assert_eq!(v.token(20_000), Some(many[19_999].as_str()));
        assert_eq!(v.token(20_001), None);
        // what the memory plan counts: 13,001 distinct tokens of 5–9 bytes
        // (about 115 KB), an end each (8 B) and a table slot each (4 B + a
        // control byte) — at least that, and not more than twice it
        let floor: u64 = (0..13_001u64)
            .map(|i| 4 + i.to_string().len() as u64 + 13)
            .sum();
        let b = v.heap_bytes();
        assert!(b >= floor && b <= 2 * floor + 4096, "{b} vs {floor}");
    }
}
