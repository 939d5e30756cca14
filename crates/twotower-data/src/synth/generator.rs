//! [`Generator`]: the model of the module documentation — topics, Zipf item
//! popularity and user activity (as [`Alias`] tables), the user and item
//! rows ([`UserRow`], [`ItemRow`]) and the interaction stream, each from its
//! own ChaCha8 stream of the seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SyntheticConfig;
use crate::error::DataError;

use super::{Alias, REGIONS, T0};

pub(super) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

fn zipf_weights(n: usize, s: f64, r: &mut ChaCha8Rng) -> Vec<f64> {
    // rank[i] = a random permutation of 0..n.
    let mut rank: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = r.gen_range(0..=i);
        rank.swap(i, j);
    }
    rank.iter().map(|&k| (k as f64 + 1.0).powf(-s)).collect()
}

/// A user row.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    /// `"F"` or `"M"`.
    pub gender: &'static str,
    /// Age in years.
    pub age: u32,
    /// Region index `< REGIONS`.
    pub region: u32,
    /// The (noisy) visible topic.
    pub interest: u32,
}

/// An item row.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    /// The (noisy) category = topic.
    pub category: u32,
    /// Distinct tag indices (1-3).
    pub tags: Vec<u32>,
    /// Release year.
    pub year: u32,
}

/// The generator state: topics and alias tables, O(users + items).
pub struct Generator {
    cfg: SyntheticConfig,
    user_topic: Vec<u32>,
    item_topic: Vec<u32>,
    items: Alias,
    users: Alias,
    /// Per topic: an activity alias over its users, returning user ids (None if empty).
    topic_users: Vec<Option<Alias>>,
}

/// Largest number of users or of items the generator accepts.
pub const MAX_ENTITIES: usize = 100_000_000;

impl Generator {
    /// Checks `cfg` and builds the topics and alias tables.
    ///
    /// # Errors
    /// [`DataError::Config`] for zero sizes, probabilities outside [0, 1] or
    /// a negative/non-finite exponent.
    pub fn new(cfg: &SyntheticConfig) -> Result<Generator, DataError> {
        let f = |k: &str| format!("data.synthetic.{k}");
        for (key, n) in [("users", cfg.users), ("items", cfg.items)] {
            if n == 0 {
                return Err(DataError::config(f(key), "must be ≥ 1"));
            }
            if n > MAX_ENTITIES {
                return Err(DataError::config(
                    f(key),
                    format!("{n} is more than {MAX_ENTITIES} (the generator keeps O(users + items) tables in memory)"),
                ));
            }
        }
        if cfg.topics == 0 || cfg.topics > 1 << 20 || cfg.tags_per_topic == 0 {
            return Err(DataError::config(
                f("topics"),
                "topics and tags_per_topic must be ≥ 1",
            ));
        }
        for (k, v) in [("affinity", cfg.affinity), ("noise", cfg.noise)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(DataError::config(f(k), "must be in [0, 1]"));
            }
        }
        for (k, v) in [("zipf", cfg.zipf), ("user_zipf", cfg.user_zipf)] {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return Err(DataError::config(
                    f(k),
                    "must be a finite exponent in [0, 10]",
                ));
            }
        }
        let mut r = rng(cfg.seed, 1);
        let t = cfg.topics as u32;
        let user_topic: Vec<u32> = (0..cfg.users).map(|_| r.gen_range(0..t)).collect();
        let item_topic: Vec<u32> = (0..cfg.items).map(|_| r.gen_range(0..t)).collect();
        let iw = zipf_weights(cfg.items, cfg.zipf, &mut r);
        let uw = zipf_weights(cfg.users, cfg.user_zipf, &mut r);
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); cfg.topics];
        for (u, &tp) in user_topic.iter().enumerate() {
            members[tp as usize].push(u as u32);
        }
        let topic_users = members
            .into_iter()
            .map(|m| {
                if m.is_empty() {
                    None
                } else {
                    let w: Vec<f64> = m.iter().map(|&u| uw[u as usize]).collect();
                    Some(Alias::with_values(&w, &m))
                }
            })
            .collect();
        Ok(Generator {
            cfg: cfg.clone(),
            user_topic,
            item_topic,
            items: Alias::new(&iw),
            users: Alias::new(&uw),
            topic_users,
        })
    }

    /// The latent topic of every user (`[users]`).
    pub fn user_topics(&self) -> &[u32] {
        &self.user_topic
    }

    /// The latent topic of every item (`[items]`).
    pub fn item_topics(&self) -> &[u32] {
        &self.item_topic
    }

    /// Calls `f(user, row)` for every user in order.
    pub fn for_each_user(
        &self,
        mut f: impl FnMut(u32, &UserRow) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut r = rng(self.cfg.seed, 2);
        let t = self.cfg.topics as u32;
        for (u, &tp) in self.user_topic.iter().enumerate() {
            let female = r.gen::<f64>()
                < if tp < t.div_ceil(2) && t > 1 {
                    0.8
                } else {
                    0.2
                };
            let age = 18 + (tp * 7) % 40 + r.gen_range(0..12);
            let region = r.gen_range(0..REGIONS);
            let interest = if r.gen::<f64>() < self.cfg.noise {
                r.gen_range(0..t)
            } else {
                tp
            };
            let row = UserRow {
                gender: if female { "F" } else { "M" },
                age,
                region,
                interest,
            };
            f(u as u32, &row)?;
        }
        Ok(())
    }

    /// Calls `f(item, row)` for every item in order.
    pub fn for_each_item(
        &self,
        mut f: impl FnMut(u32, &ItemRow) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut r = rng(self.cfg.seed, 3);
        let t = self.cfg.topics as u32;
        let tpt = self.cfg.tags_per_topic as u32;
        let mut row = ItemRow {
            category: 0,
            tags: Vec::with_capacity(3),
            year: 0,
        };
        for (i, &tp) in self.item_topic.iter().enumerate() {
            row.category = if r.gen::<f64>() < self.cfg.noise {
                r.gen_range(0..t)
            } else {
                tp
            };
            row.tags.clear();
            let n = r.gen_range(1..=3);
            for _ in 0..n {
                let g = if r.gen::<f64>() < self.cfg.noise {
                    r.gen_range(0..t * tpt)
                } else {
                    tp * tpt + r.gen_range(0..tpt)
                };
                if !row.tags.contains(&g) {
                    row.tags.push(g);
                }
            }
            row.year = r.gen_range(1960..2020);
            f(i as u32, &row)?;
        }
        Ok(())
    }

    /// Calls `f(user, item, timestamp)` for every interaction in time order.
    pub fn for_each_interaction(
        &self,
        mut f: impl FnMut(u32, u32, i64) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut r = rng(self.cfg.seed, 4);
        for k in 0..self.cfg.interactions {
            let i = self.items.sample(&mut r);
            let aff = r.gen::<f64>() < self.cfg.affinity;
            let u = match (&self.topic_users[self.item_topic[i as usize] as usize], aff) {
                (Some(a), true) => a.sample(&mut r),
                _ => self.users.sample(&mut r),
            };
            f(u, i, T0 + k as i64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_parameters_are_config_errors() {
        for cfg in [
            SyntheticConfig {
                items: 0,
                ..Default::default()
            },
            SyntheticConfig {
                affinity: 1.5,
                ..Default::default()
            },
            SyntheticConfig {
                zipf: f64::NAN,
                ..Default::default()
            },
            SyntheticConfig {
                topics: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                Generator::new(&cfg),
                Err(DataError::Config { .. })
            ));
        }
    }
}
