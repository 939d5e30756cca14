//! `[data.synthetic]`: [`SyntheticConfig`], the parameters of the synthetic
//! long-tail generator and their defaults.

use serde::{Deserialize, Serialize};

/// `[data.synthetic]`: parameters of the synthetic long-tail generator
/// (see [`crate::synth`] for the model). The defaults are the built-in
/// dataset of `twotower train` (5k users, 2k items, 200k interactions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of users. Default 5000.
    #[serde(default = "d_users")]
    pub users: usize,
    /// Number of items. Default 2000.
    #[serde(default = "d_items")]
    pub items: usize,
    /// Number of interactions. Default 200000.
    #[serde(default = "d_interactions")]
    pub interactions: usize,
    /// Zipf exponent `s` of item popularity: P(item of popularity rank r) ∝ r^-s. Default 1.0.
    #[serde(default = "d_zipf")]
    pub zipf: f64,
    /// Zipf exponent of user activity. Default 0.5.
    #[serde(default = "d_user_zipf")]
    pub user_zipf: f64,
    /// Number of latent topics. Default 20.
    #[serde(default = "d_topics")]
    pub topics: usize,
    /// Probability that an interaction's user is drawn among the users whose
    /// topic is the item's topic (else from all users). Default 0.7.
    #[serde(default = "d_affinity")]
    pub affinity: f64,
    /// Probability that a topic-revealing feature shows a random topic instead. Default 0.3.
    #[serde(default = "d_noise")]
    pub noise: f64,
    /// Tags per topic (item tag vocabulary = topics × this). Default 5.
    #[serde(default = "d_tags")]
    pub tags_per_topic: usize,
    /// RNG seed (ChaCha8). Default 42.
    #[serde(default = "d_seed")]
    pub seed: u64,
}

fn d_users() -> usize {
    5000
}
fn d_items() -> usize {
    2000
}
fn d_interactions() -> usize {
    200_000
}
fn d_zipf() -> f64 {
    1.0
}
fn d_user_zipf() -> f64 {
    0.5
}
fn d_topics() -> usize {
    20
}
fn d_affinity() -> f64 {
    0.7
}
fn d_noise() -> f64 {
    0.3
}
fn d_tags() -> usize {
    5
}
fn d_seed() -> u64 {
    42
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            users: d_users(),
            items: d_items(),
            interactions: d_interactions(),
            zipf: d_zipf(),
            user_zipf: d_user_zipf(),
            topics: d_topics(),
            affinity: d_affinity(),
            noise: d_noise(),
            tags_per_topic: d_tags(),
            seed: d_seed(),
        }
    }
}
