//! The ids of one side's entities, each held once ([`EntityIds`]): what
//! an entity table and a streamed train split look ids up in.

use serde::{Deserialize, Serialize};

use crate::vocab::Vocab;

/// The ids of one side's entities, each held once: entity `e`'s id is
/// `ids[e]`, and [`EntityIds::index_of`] maps an id back to `e`.
///
/// # Memory
/// A [`Vocab`] underneath (one string arena plus an index-only hash
/// table, about `len + 12` bytes an id), where a `Vec<String>` plus a
/// `HashMap<String, u32>` held each id twice with two allocations and
/// ~100 bytes of overhead. Serialized as the list of ids, as before.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct EntityIds(Vocab);

impl EntityIds {
    /// Bytes held on the heap (the ids' arena and index).
    pub fn heap_bytes(&self) -> u64 {
        self.0.heap_bytes()
    }

    /// The ids `ids` in that order; a repeated id keeps its first index
    /// (entity ids are unique, so callers pass distinct ids).
    pub fn from_strs<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        EntityIds(Vocab::from_strs(ids))
    }

    /// Number of entities.
    pub fn len(&self) -> usize {
        self.0.len() - 1
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entity `e`'s id, `None` out of range.
    pub fn get(&self, e: usize) -> Option<&str> {
        u32::try_from(e + 1).ok().and_then(|i| self.0.token(i))
    }

    /// The entity whose id is `id`.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.0.lookup(id).checked_sub(1)
    }

    /// Whether `id` is an entity's id.
    pub fn contains(&self, id: &str) -> bool {
        self.index_of(id).is_some()
    }

    /// The ids in entity order.
    pub fn iter(&self) -> EntityIdsIter<'_> {
        EntityIdsIter {
            ids: self,
            range: 0..self.len(),
        }
    }

    /// The ids as owned strings, in entity order.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl Default for EntityIds {
    fn default() -> Self {
        Self::from_strs([])
    }
}

impl From<Vec<String>> for EntityIds {
    fn from(ids: Vec<String>) -> Self {
        Self::from_strs(ids.iter().map(String::as_str))
    }
}

impl From<EntityIds> for Vec<String> {
    fn from(ids: EntityIds) -> Self {
        ids.to_vec()
    }
}

impl std::ops::Index<usize> for EntityIds {
    type Output = str;
    /// Entity `e`'s id.
    ///
    /// # Panics
    /// When `e >= len()`, as a slice does.
    fn index(&self, e: usize) -> &str {
        match self.get(e) {
            Some(id) => id,
            None => panic!("entity {e} out of range for {} ids", self.len()),
        }
    }
}

impl std::fmt::Debug for EntityIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for EntityIds {
    fn eq(&self, other: &Vec<S>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for EntityIds {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

/// The ids of an [`EntityIds`] in entity order.
#[derive(Clone)]
pub struct EntityIdsIter<'a> {
    ids: &'a EntityIds,
    range: std::ops::Range<usize>,
}

impl<'a> Iterator for EntityIdsIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        self.range.next().map(|e| &self.ids[e])
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl DoubleEndedIterator for EntityIdsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.range.next_back().map(|e| &self.ids[e])
    }
}

impl ExactSizeIterator for EntityIdsIter<'_> {}

impl<'a> IntoIterator for &'a EntityIds {
    type Item = &'a str;
    type IntoIter = EntityIdsIter<'a>;
    fn into_iter(self) -> EntityIdsIter<'a> {
        self.iter()
    }
}
