//! Vocabularies (token ↔ index, index 0 = out-of-vocabulary/missing) and the
//! "by id" order of EVALUATION.md.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::hash::{fnv1a64, FxHashMap};

/// The token of index 0.
pub const OOV_TOKEN: &str = "<oov>";

/// A feature's vocabulary.
///
/// Index 0 is reserved for out-of-vocabulary and missing values; real
/// values have indices `1..len()`. With `hash_buckets = Some(n)` there is
/// no token list: `lookup(t) = 1 + fnv1a64(t) % n` and `len() = n + 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "VocabRepr", into = "VocabRepr")]
pub struct Vocab {
    tokens: Vec<String>,
    index: FxHashMap<String, u32>,
    hash_buckets: Option<u32>,
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
        VocabRepr {
            tokens: v.tokens,
            hash_buckets: v.hash_buckets,
        }
    }
}

impl Vocab {
    /// A vocabulary whose index `i + 1` is `tokens[i]` (duplicates keep the first index).
    pub fn from_tokens(tokens: Vec<String>) -> Self {
        let mut all = Vec::with_capacity(tokens.len() + 1);
        all.push(OOV_TOKEN.to_string());
        all.extend(tokens);
        let mut index = FxHashMap::default();
        index.reserve(all.len());
        for (i, t) in all.iter().enumerate().skip(1) {
            index.entry(t.clone()).or_insert(i as u32);
        }
        Vocab {
            tokens: all,
            index,
            hash_buckets: None,
        }
    }

    /// A hashing vocabulary with `n` buckets (indices 1..=n).
    pub fn hashed(n: u32) -> Self {
        Vocab {
            tokens: vec![OOV_TOKEN.to_string()],
            index: FxHashMap::default(),
            hash_buckets: Some(n.max(1)),
        }
    }

    /// Number of indices including index 0.
    pub fn len(&self) -> usize {
        match self.hash_buckets {
            Some(n) => n as usize + 1,
            None => self.tokens.len(),
        }
    }

    /// True when only index 0 exists.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }

    /// The token of index `i` (`"<oov>"` for 0; `None` out of range or for
    /// the buckets of a hashing vocabulary).
    pub fn token(&self, i: u32) -> Option<&str> {
        self.tokens.get(i as usize).map(String::as_str)
    }

    /// The index of `tok`, 0 if out of vocabulary.
    pub fn lookup(&self, tok: &str) -> u32 {
        match self.hash_buckets {
            Some(n) => 1 + (fnv1a64(tok.as_bytes()) % n as u64) as u32,
            None => self.index.get(tok).copied().unwrap_or(0),
        }
    }

    /// Number of hash buckets, if this is a hashing vocabulary.
    pub fn hash_buckets(&self) -> Option<u32> {
        self.hash_buckets
    }

    /// The tokens of indices `1..len()` (empty for a hashing vocabulary).
    pub fn tokens(&self) -> &[String] {
        &self.tokens[1..]
    }
}

/// Parses an id as an integer for the "by id" order (`str::parse::<i64>`).
fn as_int(s: &str) -> Option<i64> {
    s.parse::<i64>().ok()
}

/// The "by id" order of EVALUATION.md: numeric when every id parses as an
/// integer, else byte-wise. Returns the permutation that sorts `ids`
/// (ties between numerically equal ids such as "007" and "7" break
/// byte-wise, so the order is total and deterministic).
pub fn id_order<S: AsRef<str>>(ids: &[S]) -> Vec<u32> {
    let mut perm: Vec<u32> = (0..ids.len() as u32).collect();
    let nums: Option<Vec<i64>> = ids.iter().map(|s| as_int(s.as_ref())).collect();
    match nums {
        Some(n) => perm.sort_unstable_by(|&a, &b| {
            n[a as usize].cmp(&n[b as usize]).then_with(|| {
                ids[a as usize]
                    .as_ref()
                    .as_bytes()
                    .cmp(ids[b as usize].as_ref().as_bytes())
            })
        }),
        None => perm.sort_unstable_by(|&a, &b| {
            ids[a as usize]
                .as_ref()
                .as_bytes()
                .cmp(ids[b as usize].as_ref().as_bytes())
        }),
    }
    perm
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
        let back: Vocab = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }
}
