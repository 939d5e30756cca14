//! Training configuration: the raw TOML sections `[model]`, `[loss]`, `[ssl]`,
//! `[train]` and `[eval]` (every key documented with its default), and the
//! checked [`Config`] the trainer accepts.
//!
//! The `[data]` and `[features]` sections belong to `twotower-data`
//! ([`twotower_data::DataConfig`], [`twotower_data::FeaturesConfig`]).
//! Unknown keys are errors that list the valid ones (serde's
//! `deny_unknown_fields`), so a typo in `--set loss.temprature=0.1` fails
//! loudly instead of being ignored.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use twotower_data::{DataConfig, FeaturesConfig};

/// Errors from reading or checking a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The data layer rejected the file, an override or the `[data]`/`[features]` sections.
    #[error(transparent)]
    Data(#[from] twotower_data::DataError),
    /// A section does not deserialize (unknown key, wrong type).
    #[error("config {path}: {message}")]
    Invalid {
        /// The config file, or `<built-in>`.
        path: String,
        /// serde's message, which names the key and the valid ones.
        message: String,
    },
    /// A value is out of its valid range.
    #[error("{location}: `{key}` = {got}: {expected}")]
    OutOfRange {
        /// Where the value came from: `FILE line N`, the `--set KEY=VALUE`
        /// flag, or the config's name.
        location: String,
        /// Dotted key, e.g. `loss.temperature`.
        key: &'static str,
        /// The value found.
        got: String,
        /// What is accepted.
        expected: &'static str,
    },
}

/// The whole config file. Every section is optional and defaults as documented.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[data]`: where the interactions and feature tables come from, and the split.
    #[serde(default)]
    pub data: Option<DataConfig>,
    /// `[features.<name>]`: the features of each tower.
    #[serde(default)]
    pub features: FeaturesConfig,
    /// `[model]`: tower sizes.
    #[serde(default)]
    pub model: ModelConfig,
    /// `[loss]`: in-batch softmax, logQ correction, negatives.
    #[serde(default)]
    pub loss: LossSection,
    /// `[ssl]`: self-supervised learning on the item tower.
    #[serde(default)]
    pub ssl: SslSection,
    /// `[train]`: optimisation and the training loop.
    #[serde(default)]
    pub train: TrainSection,
    /// `[eval]`: evaluation (EVALUATION.md).
    #[serde(default)]
    pub eval: EvalSection,
}

pub use crate::tower::MaskEmbedding;

/// `loss.frequency`: where the logQ correction's sampling probability
/// `p_j` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogqFrequency {
    /// Train counts: `p_j = c_j / N` (the default).
    #[default]
    Counts,
    /// Train counts as the probability of appearing in a batch of
    /// `train.batch_size`, brought to per-example scale:
    /// `(1 − (1 − c_j/N)^B) / B`.
    BatchInclusion,
    /// The streaming estimator of Yi et al. 2019, Algorithm 2 (multi-hash).
    Streaming,
}

/// `ssl.masking`: which features are masked in the two SSL views (Yao et
/// al. 2021, §3.3; `cold_start` is twotower's addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskingPattern {
    /// Each maskable feature masked independently with probability
    /// `mask_rate`, independently in each view (the views may overlap).
    Random,
    /// Random Feature Masking (RFM): the maskable features are split uniformly
    /// at random into two disjoint sets of sizes ⌈k/2⌉ (masked in view 1) and
    /// ⌊k/2⌋ (masked in view 2). The default.
    #[default]
    Complementary,
    /// Correlated Feature Masking (CFM): a seed feature drawn uniformly; view 1
    /// masks its precomputed group (seed + the ⌈k/2⌉ − 1 features sharing the
    /// most mutual information with it), view 2 masks the complement.
    Correlated,
    /// Cold-start views (in the spirit of content-to-collaborative alignment
    /// for cold start, e.g. CLCRec, Wei et al. 2021): view 1 masks every
    /// item-id feature — the item as a cold item is seen, its features only —
    /// and view 2 masks nothing (feature dropout still applies to both).
    /// InfoNCE over uniformly sampled items then pulls each item's
    /// features-only vector toward its full vector and away from the other
    /// items', which is the vector a cold item is scored with. Needs at least
    /// one id feature and one other feature; `ssl.mask_id` must be true.
    ColdStart,
}

/// `ssl.seed_scope`: whether the masking draw is made once per row or once
/// per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedScope {
    /// A fresh draw (seed feature, RFM split or Bernoulli masks) for every row (the default).
    #[default]
    PerExample,
    /// One draw for the whole batch, shared by all its rows.
    PerBatch,
}

/// `ssl.mi_weighting`: how the mutual information of correlated masking
/// counts items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MiWeighting {
    /// Every catalog item counts once (the default).
    #[default]
    Items,
    /// Every item counts once per train click.
    Clicks,
}

/// `ssl.mask_as`: how a masked feature reaches the item tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskAs {
    /// As a missing / out-of-vocabulary value is at inference: row 0 of a
    /// single-valued feature's table, an empty bag for a multi-valued one
    /// (the default), so SSL trains the path cold items take.
    #[default]
    Unknown,
    /// The `model.mask_embedding` vector (zero or learned), the paper's choice.
    MaskEmbedding,
}

/// `train.sparse_optimizer`: the optimizer of the embedding tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparseOptimizer {
    /// Lazy row-wise Adam: moments of the touched rows only, bias correction
    /// from the global step (the default).
    #[default]
    Adam,
    /// Adagrad, one accumulator per element.
    Adagrad,
    /// Adagrad with one accumulator per row (`G_r += mean(g²)`).
    AdagradRowwise,
}

/// `[model]`: the two towers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Embedding dimension of every feature without its own `dim` (default 32).
    pub embedding_dim: usize,
    /// Hidden layer sizes of each tower's MLP, ReLU after each (default `[128]`).
    pub hidden: Vec<usize>,
    /// Output dimension of both towers; outputs are L2-normalized (default 64).
    pub out_dim: usize,
    /// Default embedding of a masked feature in SSL views: `"zero"` (default) or `"learned"`.
    pub mask_embedding: MaskEmbedding,
    /// Standard deviation of the N(0, σ²) initialisation of embedding rows
    /// (default 0 = `1/√dim` per feature).
    pub embedding_init_std: f64,
    /// `[model.history]`: the user tower's history feature (off by default).
    pub history: HistoryConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            embedding_dim: 32,
            hidden: vec![128],
            out_dim: 64,
            mask_embedding: MaskEmbedding::Zero,
            embedding_init_std: 0.0,
            history: HistoryConfig::default(),
        }
    }
}

/// Pooling of the history bag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryPoolingKind {
    /// The mean of the items' embeddings (YouTube DNN).
    #[default]
    Mean,
    /// Weighted mean, the item `a` steps back from the newest weighing
    /// `exp(−recency_decay · a / max_len)`.
    Recency,
}

/// `[model.history]`: a user-tower feature whose values are the items the
/// user interacted with before (see [`crate::history_feature`] for what a
/// bag holds and why nothing leaks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Add the history feature to the user tower (default false).
    pub enabled: bool,
    /// The most recent `max_len` items form the bag (default 50, 1..=10000).
    pub max_len: usize,
    /// `"mean"` (default) or `"recency"`.
    pub pooling: HistoryPoolingKind,
    /// λ of `recency` pooling, ≥ 0 (default 2.0: the oldest of a full bag
    /// weighs e^−2 of the newest).
    pub recency_decay: f64,
    /// Read the item tower's item-id embedding table instead of a table of
    /// its own (default false): one row per item trained by both towers, so
    /// an item's history embedding starts from what the item tower learned.
    /// Needs an item-id feature of the same dim.
    pub share_item_table: bool,
    /// Embedding dimension (default 0 = `model.embedding_dim`; with
    /// `share_item_table` it is the item-id feature's).
    pub dim: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_len: 50,
            pooling: HistoryPoolingKind::Mean,
            recency_decay: 2.0,
            share_item_table: false,
            dim: 0,
        }
    }
}

/// `[loss]`: in-batch sampled softmax (Yi et al. 2019) with logQ correction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossSection {
    /// Softmax temperature τ: logits are `cos/τ` (default 0.05).
    pub temperature: f64,
    /// Subtract `log p_j` from every logit (default true).
    pub logq: bool,
    /// Where `p_j` comes from: `"counts"` (train counts `c_j/N`, default),
    /// `"batch_inclusion"` (train counts, probability of appearing in a batch
    /// of `train.batch_size`, brought to per-example scale:
    /// `(1 − (1 − c_j/N)^B)/B`) or `"streaming"` (Yi et al. 2019,
    /// Algorithm 2, multi-hash).
    pub frequency: LogqFrequency,
    /// Strength β of the correction: logits are `cos/τ − β·log p_j` (default
    /// 1.0, the unbiased correction; 0 is the same as `logq = false`).
    pub logq_weight: f64,
    /// Streaming estimator: learning rate α of the gap estimate (default 0.01).
    pub streaming_alpha: f64,
    /// Streaming estimator: buckets per hash array (default 1_048_576).
    pub streaming_buckets: usize,
    /// Streaming estimator: number of hash functions (default 2).
    pub streaming_hashes: usize,
    /// Mask accidental hits (the same item at another column of the row) (default true).
    pub mask_accidental_hits: bool,
    /// Mask false negatives: in-batch candidates that the row's user has
    /// interacted with in the training data (another of the user's clicks in
    /// the batch, or any item of the user's history) are set to −∞ before
    /// the softmax, like accidental hits (default false). Costs one sorted
    /// intersection of history and candidates per row (rows in parallel): on
    /// ML-100K at batch 256 on 2 cores training runs at ~0.75× the
    /// examples/s. See [`crate::history`].
    pub mask_false_negatives: bool,
    /// Mixed negative sampling (Yang et al. 2020): extra uniformly sampled items
    /// per batch, shared by all rows (default 0 = off; at most 65,536).
    pub mixed_negatives: usize,
    /// Multiply each row's loss by the interaction's weight column, if the data has one (default true).
    pub use_weights: bool,
}

impl Default for LossSection {
    fn default() -> Self {
        Self {
            temperature: 0.05,
            logq: true,
            frequency: LogqFrequency::Counts,
            logq_weight: 1.0,
            streaming_alpha: 0.01,
            streaming_buckets: 1 << 20,
            streaming_hashes: 2,
            mask_accidental_hits: true,
            mask_false_negatives: false,
            mixed_negatives: 0,
            use_weights: true,
        }
    }
}

/// `[ssl]`: self-supervised learning on the item tower (Yao et al. 2021).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SslSection {
    /// Switch SSL on (default false).
    pub enabled: bool,
    /// Weight α of the SSL loss: `L = L_main + α·L_self` (default 0.1).
    ///
    /// What α does to an embedding row depends on the sparse optimizer.
    /// Every row's gradient is `g_main + α·g_self`. Under `adagrad` and in
    /// the dense MLP weights the SSL part of a step scales with α. Under lazy
    /// row-wise `adam` (the default) a row's step is `lr · m̂/√v̂`, invariant
    /// to the scale of that row's gradients: for rows the main task also
    /// touches, α sets the *mix* of the two gradients; a row that only SSL
    /// touches (an item never clicked in a batch so far) moves at the full
    /// learning rate whatever α > 0 is. So under Adam, α is the relative
    /// weight of the SSL task where both tasks meet, not a step size.
    pub weight: f64,
    /// InfoNCE temperature τ_ssl (default 0.1).
    pub temperature: f64,
    /// m, items per SSL batch, sampled uniformly from the catalog (default 0 = main batch size).
    pub batch_size: usize,
    /// Masking pattern: `"random"`, `"complementary"` (default), `"correlated"`
    /// or `"cold_start"` (view 1 = the item's features without its id, view 2
    /// = the whole item; see `twotower::augment::MaskingPattern::ColdStart`).
    pub masking: MaskingPattern,
    /// Masking probability p of the `random` pattern (default 0.5).
    pub mask_rate: f64,
    /// Feature dropout probability q of each value of a multi-valued feature (default 0.0).
    pub dropout_rate: f64,
    /// Correlated masking: seed feature drawn `"per_example"` (default) or `"per_batch"`.
    pub seed_scope: SeedScope,
    /// Whether the item-id feature may be masked (default true).
    pub mask_id: bool,
    /// Correlated masking: whether the item id may be chosen as a seed's
    /// partner (default true, the paper's MI ranking). MI(id, X) = H(X) for
    /// every feature X, so with true every group pairs its seed with the id;
    /// false groups the content features by their MI among themselves.
    pub cfm_id_partner: bool,
    /// Mutual information counted once per item (`"items"`, default) or per click (`"clicks"`).
    pub mi_weighting: MiWeighting,
    /// How a masked feature reaches the item tower: `"unknown"` — as a
    /// missing / out-of-vocabulary value is at inference (row 0 of a
    /// single-valued feature's table, an empty bag for a multi-valued one),
    /// so SSL trains the path cold items take — or `"mask_embedding"` (the
    /// `model.mask_embedding` vector: zero or learned, the paper's choice).
    /// Default `"unknown"`: on Amazon Beauty the mask embedding left every
    /// cold test item behind (cold_recall@50 0 with correlated masking),
    /// unknown raised it above no SSL (README "SSL on Amazon Beauty").
    pub mask_as: MaskAs,
}

impl Default for SslSection {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 0.1,
            temperature: 0.1,
            batch_size: 0,
            masking: MaskingPattern::Complementary,
            mask_rate: 0.5,
            dropout_rate: 0.0,
            seed_scope: SeedScope::PerExample,
            mask_id: true,
            cfm_id_partner: true,
            mi_weighting: MiWeighting::Items,
            mask_as: MaskAs::Unknown,
        }
    }
}

/// Largest `loss.mixed_negatives`: the scores of a step are `B × (B + M)`.
pub const MAX_MIXED_NEGATIVES: usize = 65_536;

/// `[train]`: the optimisation loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Maximum number of epochs (default 30).
    pub epochs: usize,
    /// Main batch size N (default 256).
    pub batch_size: usize,
    /// Sparse optimizer of the embedding tables: `"adam"` (lazy row-wise moments, default),
    /// `"adagrad"` or `"adagrad_rowwise"`.
    pub sparse_optimizer: SparseOptimizer,
    /// Learning rate of the embedding tables (default 0.01).
    pub lr_sparse: f64,
    /// Learning rate of the dense MLP weights (Adam/AdamW) (default 0.001).
    pub lr_dense: f64,
    /// Decoupled (AdamW) weight decay of the dense weights (default 0.0).
    pub weight_decay: f64,
    /// Recency weighting λ of each user's training interactions (time-decayed
    /// sample weights): the k-th of a user's n interactions in time order
    /// weighs `exp(−λ·(n−1−k)/(n−1))` in the loss — newest 1, oldest `e^−λ`;
    /// λ in [0, 50] (default 0.0 = off, every interaction 1). See
    /// [`crate::history::recency_weights`].
    pub recency_decay: f64,
    /// Epoch-level weight averaging: after each epoch the evaluated (and
    /// final) weights are `avg ← γ·avg + (1 − γ)·w` with γ = `epoch_average`
    /// in [0, 0.999], starting from the weights after epoch 1 (default 0.0 =
    /// off, the raw weights). O(parameters) once per epoch,
    /// never per step.
    pub epoch_average: f64,
    /// Learning-rate decay per epoch: both learning rates of epoch e (0-based)
    /// are `lr · lr_decay^e` (default 1.0 = constant).
    pub lr_decay: f64,
    /// Clip the global gradient norm to this value (default 0 = off).
    pub clip_grad_norm: f64,
    /// Worker threads (default 2; 0 = all cores).
    pub threads: usize,
    /// Seed of every random choice (default 42).
    pub seed: u64,
    /// Early stopping: epochs without a better validation recall@50 before stopping (default 3; 0 = off).
    pub patience: usize,
    /// Carve a temporal validation split from train for early stopping (default true).
    pub validation: bool,
    /// After early stopping, retrain from scratch on the full train split for the
    /// best number of epochs (default true), so the final model sees the most
    /// recent interactions too. The test split is never used.
    pub refit: bool,
    /// Validation metric that drives early stopping (default `"recall@50"`).
    pub monitor: String,
    /// Show training progress (default true): a bar when stderr is a
    /// terminal, otherwise a line every `progress_seconds`.
    pub progress: bool,
    /// Seconds between two progress lines when stderr is not a terminal
    /// (a log file or a pipe) (default 30; 0 = no lines).
    pub progress_seconds: f64,
    /// Refuse to start when the optimizer state and weight copies cannot
    /// fit in the memory available (default true; see `twotower::memory`).
    pub check_memory: bool,
    /// Item-id dropout of the main task: each candidate row's item-id value
    /// is replaced by row 0 (out of vocabulary, what a cold item reads) with
    /// this probability, in [0, 1) (default 0 = off). It trains the
    /// cold-start path from the item's other features; the baseline SSL
    /// must beat.
    pub item_id_dropout: f64,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 256,
            sparse_optimizer: SparseOptimizer::Adam,
            lr_sparse: 0.01,
            lr_dense: 0.001,
            weight_decay: 0.0,
            recency_decay: 0.0,
            lr_decay: 1.0,
            epoch_average: 0.0,
            clip_grad_norm: 0.0,
            threads: 2,
            seed: 42,
            patience: 3,
            validation: true,
            refit: true,
            monitor: "recall@50".into(),
            progress: true,
            progress_seconds: 30.0,
            check_memory: true,
            item_id_dropout: 0.0,
        }
    }
}

/// `[eval]`: the evaluation protocol (EVALUATION.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Cut-offs K (default `[10, 50, 100]`).
    pub ks: Vec<usize>,
    /// Users scored per block (memory = block × catalog × 4 bytes per thread) (default 256).
    pub block_users: usize,
    /// Evaluate on at most this many users with a held-out pair, drawn
    /// uniformly without replacement by a seeded shuffle (`sample_seed`);
    /// 0 = every such user (default 0, the protocol's full evaluation).
    /// Applies to the validation and the test split; the metrics record
    /// the sample (`n_test_users` of `sampled_from`).
    pub max_users: usize,
    /// Seed of the user sample of `max_users` (default 0). Independent of
    /// `train.seed`, so runs with different training seeds are evaluated
    /// on the same users.
    pub sample_seed: u64,
    /// How the test evaluation (`twotower train`'s final one and `twotower
    /// eval`) ranks the catalog: `"exact"` (brute force, EVALUATION.md's
    /// reference; the default) or `"hnsw"` (through the usearch HNSW index
    /// of [`crate::ann`]; the metrics are labelled approximate and the
    /// index's recall against exact top-K is reported beside them).
    /// Validation during training is always exact.
    pub retrieval: Retrieval,
    /// Search breadth `ef` of the HNSW index when `retrieval = "hnsw"`
    /// (default 256; at least 1 and at most 100000; usearch searches with
    /// `max(ef, K)`).
    pub ann_ef: usize,
    /// Users (a seeded sample of the evaluated ones, `sample_seed`) on which
    /// the HNSW ranking is compared with the exact one when `retrieval =
    /// "hnsw"`: its recall@K against exact top-K (default 1000; at least 1).
    pub ann_recall_users: usize,
}

/// `eval.retrieval`: how the test evaluation ranks the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retrieval {
    /// Brute-force scores of every item (the reference of EVALUATION.md).
    #[default]
    Exact,
    /// The HNSW graph of Malkov & Yashunin 2018 ("Efficient and robust
    /// approximate nearest neighbor search using Hierarchical Navigable
    /// Small World graphs"), usearch's implementation, over the centred
    /// distinct item vectors ([`crate::ann::UsearchIndex`]); seen items are
    /// skipped inside the graph walk.
    Hnsw,
}

impl Retrieval {
    /// The config value (`"exact"`, `"hnsw"`).
    pub fn name(self) -> &'static str {
        match self {
            Retrieval::Exact => "exact",
            Retrieval::Hnsw => "hnsw",
        }
    }
}

/// Largest `eval.ann_ef`.
pub const MAX_ANN_EF: usize = 100_000;

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            ks: vec![10, 50, 100],
            block_users: 256,
            max_users: 0,
            sample_seed: 0,
            retrieval: Retrieval::Exact,
            ann_ef: 256,
            ann_recall_users: 1000,
        }
    }
}

/// A checked configuration, with the raw TOML document it came from (kept in
/// the checkpoint so a run can be reproduced and reloaded).
#[derive(Debug, Clone)]
pub struct Config {
    /// The parsed sections.
    pub raw: RawConfig,
    /// The TOML document after `--set` overrides.
    pub doc: toml::Value,
    /// Directory relative data paths are resolved against (the config file's directory).
    pub base_dir: PathBuf,
}

/// The built-in default: synthetic long-tail data (see `twotower generate`).
pub const DEFAULT_CONFIG: &str = r#"
[data]
source = "synthetic"
"#;

/// The 1-based line of `section.key = ...` in a TOML text (tracking
/// `[section]` headers; also `key` inside `[section.sub]` is not matched),
/// or `None`. A locator for error messages, not a parser.
fn key_line(text: &str, dotted: &str) -> Option<usize> {
    // `model.history.max_len`: section `model.history`, key `max_len`
    let (section, key) = dotted.rsplit_once('.')?;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[') {
            // `[section]  # comment`
            let h = h.split('#').next().unwrap_or("").trim();
            current = h.trim_end_matches(']').trim().to_string();
            continue;
        }
        if current == section {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == key {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

/// Checks that a `--set` key names a section and, in the sections this crate
/// owns (`model`, `loss`, `ssl`, `train`, `eval`), an existing key, so that a
/// typo is reported against the `--set` flag rather than the config file.
/// (`data` and `features` keys are checked by the data crate when parsed.)
fn check_override_key(o: &str) -> Result<(), ConfigError> {
    let Some((key, _)) = o.split_once('=') else {
        return Ok(()); // apply_override reports the missing `=`
    };
    let mut parts = key.trim().split('.');
    let section = parts.next().unwrap_or("");
    let field = parts.next();
    let defaults = match section {
        "data" | "features" => return Ok(()),
        "model" => toml::Value::try_from(ModelConfig::default()),
        "loss" => toml::Value::try_from(LossSection::default()),
        "ssl" => toml::Value::try_from(SslSection::default()),
        "train" => toml::Value::try_from(TrainSection::default()),
        "eval" => toml::Value::try_from(EvalSection::default()),
        other => {
            return Err(ConfigError::Invalid {
                path: format!("--set {o}"),
                message: format!(
                    "unknown section `{other}`; the sections are data, features, model, loss, ssl, train, eval"
                ),
            })
        }
    };
    let (Ok(toml::Value::Table(t)), Some(field)) = (defaults, field) else {
        return Ok(());
    };
    if !t.contains_key(field) {
        let valid: Vec<&str> = t.keys().map(String::as_str).collect();
        return Err(ConfigError::Invalid {
            path: format!("--set {o}"),
            message: format!(
                "unknown key `{field}` in [{section}]; the keys are {}",
                valid.join(", ")
            ),
        });
    }
    // the value's type, checked on the flag alone so that a wrong type is
    // blamed on the flag, not on the config file it overrides
    let mut probe = toml::Value::Table(Default::default());
    twotower_data::apply_override(&mut probe, o)?;
    let sec = probe
        .get(section)
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    let typed = match section {
        "model" => sec.try_into::<ModelConfig>().map(drop),
        "loss" => sec.try_into::<LossSection>().map(drop),
        "ssl" => sec.try_into::<SslSection>().map(drop),
        "train" => sec.try_into::<TrainSection>().map(drop),
        _ => sec.try_into::<EvalSection>().map(drop),
    };
    typed.map_err(|e| ConfigError::Invalid {
        path: format!("--set {o}"),
        message: format!("{} (in [{section}])", e.to_string().trim()),
    })
}

/// Metric families of EVALUATION.md (`<family>@K` for every K of
/// `eval.ks`), in report order: what `train.monitor` may name and what the
/// reports and the CLI print.
pub const METRIC_PREFIXES: [&str; 6] = [
    "recall",
    "ndcg",
    "head_recall",
    "tail_recall",
    "cold_recall",
    "coverage",
];

/// The largest K of `eval.ks` (a top-K list per user is allocated).
pub const MAX_EVAL_K: usize = 1_000_000;
/// The most worker threads `train.threads` may ask for.
pub const MAX_THREADS: usize = 256;

/// Whether `monitor` names a metric the evaluation computes for `ks`.
fn monitor_is_computed(monitor: &str, ks: &[usize]) -> bool {
    let Some((name, k)) = monitor.split_once('@') else {
        return false;
    };
    METRIC_PREFIXES.contains(&name) && k.parse::<usize>().is_ok_and(|k| ks.contains(&k))
}

impl Config {
    /// Reads a config file (or the built-in default when `path` is `None`),
    /// applies `key=value` overrides, and checks every section.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and key.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let (mut doc, base_dir, name) = match path {
            Some(p) => {
                let doc = twotower_data::load_config_doc(p, &[])?;
                let base = p
                    .parent()
                    .map(|d| {
                        if d.as_os_str().is_empty() {
                            PathBuf::from(".")
                        } else {
                            d.to_path_buf()
                        }
                    })
                    .unwrap_or_else(|| PathBuf::from("."));
                let base = base.canonicalize().unwrap_or(base);
                (doc, base, p.display().to_string())
            }
            None => {
                let doc: toml::Value =
                    toml::from_str(DEFAULT_CONFIG).expect("built-in config is valid TOML");
                (doc, PathBuf::from("."), "<built-in>".to_string())
            }
        };
        for o in overrides {
            check_override_key(o)?;
            twotower_data::apply_override(&mut doc, o)?;
        }
        if path.is_none() {
            // The built-in data is synthetic: a --set that points [data] at files
            // would be silently ignored, so it must come with data.source="files".
            let data = doc.get("data").and_then(|d| d.as_table());
            let files = data
                .and_then(|d| d.get("source"))
                .and_then(|s| s.as_str())
                .is_some_and(|s| s == "files");
            let file_keys: Vec<&String> = data
                .map(|d| {
                    d.keys()
                        .filter(|k| {
                            matches!(
                                k.as_str(),
                                "path" | "preset" | "interactions" | "users" | "items"
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !files && !file_keys.is_empty() {
                return Err(ConfigError::Invalid {
                    path: name,
                    message: format!(
                        "--set data.{} has no effect on the built-in synthetic data; give a dataset with \
                         --config FILE (or add --set data.source=\"files\")",
                        file_keys[0]
                    ),
                });
            }
        }
        Self::from_doc(doc, base_dir, &name).map_err(|e| match e {
            ConfigError::OutOfRange {
                location,
                key,
                got,
                expected,
            } => {
                // the last --set of this key wins; else the file's line
                let flag = overrides
                    .iter()
                    .rev()
                    .find(|o| o.split_once('=').is_some_and(|(k, _)| k.trim() == key));
                let location = match (flag, path) {
                    (Some(o), _) => format!("--set {o}"),
                    (None, Some(p)) => match std::fs::read_to_string(p)
                        .ok()
                        .and_then(|text| key_line(&text, key))
                    {
                        Some(line) => format!("config {} line {line}", p.display()),
                        None => format!("config {}", p.display()),
                    },
                    (None, None) => location,
                };
                ConfigError::OutOfRange {
                    location,
                    key,
                    got,
                    expected,
                }
            }
            // serde names the key as "in `section.key`": add the file's line
            ConfigError::Invalid {
                path: p_name,
                message,
            } => {
                let line = path.and_then(|p| {
                    let key = message.split("in `").nth(1)?.split('`').next()?;
                    key_line(&std::fs::read_to_string(p).ok()?, key)
                });
                ConfigError::Invalid {
                    path: match line {
                        Some(l) => format!("{p_name} line {l}"),
                        None => p_name,
                    },
                    message,
                }
            }
            other => other,
        })
    }

    /// This config with `eval.*` overrides applied (`twotower eval --run
    /// DIR --set eval.retrieval=hnsw`): a trained run is evaluated another
    /// way without retraining. Only `[eval]` keys may change; the rest of
    /// the config is the model's.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a key outside `[eval]` or an unknown
    /// one, [`ConfigError::OutOfRange`] naming the `--set` flag.
    pub fn with_eval_overrides(&self, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut doc = self.doc.clone();
        for o in overrides {
            let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k).trim();
            if !key.starts_with("eval.") {
                return Err(ConfigError::Invalid {
                    path: format!("--set {o}"),
                    message: "only [eval] keys (eval.retrieval, eval.ann_ef, eval.max_users, ...) \
                              can change after training; retrain for the others"
                        .into(),
                });
            }
            check_override_key(o)?;
            twotower_data::apply_override(&mut doc, o)?;
        }
        Self::from_doc(doc, self.base_dir.clone(), "the run's config").map_err(|e| match e {
            ConfigError::OutOfRange {
                location,
                key,
                got,
                expected,
            } => {
                let flag = overrides
                    .iter()
                    .rev()
                    .find(|o| o.split_once('=').is_some_and(|(k, _)| k.trim() == key));
                ConfigError::OutOfRange {
                    location: flag.map_or(location, |o| format!("--set {o}")),
                    key,
                    got,
                    expected,
                }
            }
            other => other,
        })
    }

    /// Checks a TOML document (already overridden).
    ///
    /// # Errors
    /// [`ConfigError`] naming `name` and the offending key.
    pub fn from_doc(doc: toml::Value, base_dir: PathBuf, name: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            doc.clone()
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: name.to_string(),
                    message: e.to_string().trim().to_string(),
                })?;
        let c = Self { raw, doc, base_dir };
        c.check().map_err(|e| match e {
            ConfigError::OutOfRange {
                key, got, expected, ..
            } => ConfigError::OutOfRange {
                location: name.to_string(),
                key,
                got,
                expected,
            },
            other => other,
        })?;
        Ok(c)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let r = &self.raw;
        fn bad(key: &'static str, got: impl ToString, expected: &'static str) -> ConfigError {
            ConfigError::OutOfRange {
                location: String::new(),
                key,
                got: got.to_string(),
                expected,
            }
        }
        if !(r.loss.temperature.is_finite() && r.loss.temperature > 0.0) {
            return Err(bad(
                "loss.temperature",
                r.loss.temperature,
                "a finite number > 0",
            ));
        }
        if !(r.loss.logq_weight.is_finite() && r.loss.logq_weight >= 0.0) {
            return Err(bad(
                "loss.logq_weight",
                r.loss.logq_weight,
                "a finite number >= 0",
            ));
        }
        if !(r.loss.streaming_alpha > 0.0 && r.loss.streaming_alpha <= 1.0) {
            return Err(bad(
                "loss.streaming_alpha",
                r.loss.streaming_alpha,
                "in (0, 1]",
            ));
        }
        if r.loss.streaming_buckets == 0 || r.loss.streaming_hashes == 0 {
            return Err(bad(
                "loss.streaming_buckets",
                format!(
                    "{} buckets × {} hashes",
                    r.loss.streaming_buckets, r.loss.streaming_hashes
                ),
                "at least 1 bucket and 1 hash",
            ));
        }
        if r.model.embedding_dim == 0 {
            return Err(bad("model.embedding_dim", 0, "at least 1"));
        }
        if !(r.model.embedding_init_std.is_finite() && r.model.embedding_init_std >= 0.0) {
            return Err(bad(
                "model.embedding_init_std",
                r.model.embedding_init_std,
                "a finite number >= 0 (0 = 1/sqrt(dim))",
            ));
        }
        if r.model.out_dim == 0 {
            return Err(bad("model.out_dim", 0, "at least 1"));
        }
        if r.model.hidden.contains(&0) {
            return Err(bad(
                "model.hidden",
                format!("{:?}", r.model.hidden),
                "sizes of at least 1",
            ));
        }
        let h = &r.model.history;
        if !(1..=10_000).contains(&h.max_len) {
            return Err(bad("model.history.max_len", h.max_len, "in 1..=10000"));
        }
        if !(h.recency_decay.is_finite() && (0.0..=50.0).contains(&h.recency_decay)) {
            return Err(bad(
                "model.history.recency_decay",
                h.recency_decay,
                "a number in [0, 50]",
            ));
        }
        if !(r.ssl.weight.is_finite() && r.ssl.weight >= 0.0) {
            return Err(bad("ssl.weight", r.ssl.weight, "a finite number >= 0"));
        }
        if !(r.ssl.temperature.is_finite() && r.ssl.temperature > 0.0) {
            return Err(bad(
                "ssl.temperature",
                r.ssl.temperature,
                "a finite number > 0",
            ));
        }
        if !(0.0..=1.0).contains(&r.ssl.mask_rate) {
            return Err(bad("ssl.mask_rate", r.ssl.mask_rate, "in [0, 1]"));
        }
        if !(0.0..=1.0).contains(&r.ssl.dropout_rate) {
            return Err(bad("ssl.dropout_rate", r.ssl.dropout_rate, "in [0, 1]"));
        }
        if !(r.train.progress_seconds.is_finite() && r.train.progress_seconds >= 0.0) {
            return Err(bad(
                "train.progress_seconds",
                r.train.progress_seconds,
                "a finite number of seconds >= 0 (0 = no progress lines)",
            ));
        }
        if !(0.0..1.0).contains(&r.train.item_id_dropout) {
            return Err(bad(
                "train.item_id_dropout",
                r.train.item_id_dropout,
                "in [0, 1)",
            ));
        }
        if r.train.batch_size < 2 {
            return Err(bad(
                "train.batch_size",
                r.train.batch_size,
                "at least 2 (in-batch negatives)",
            ));
        }
        if r.train.epochs == 0 {
            return Err(bad("train.epochs", 0, "at least 1"));
        }
        for (key, v) in [
            ("train.lr_sparse", r.train.lr_sparse),
            ("train.lr_dense", r.train.lr_dense),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(
                    if key == "train.lr_sparse" {
                        "train.lr_sparse"
                    } else {
                        "train.lr_dense"
                    },
                    v,
                    "a finite number > 0",
                ));
            }
        }
        // the score matrix is B × (B + M): bound M before it is allocated
        if r.loss.mixed_negatives > MAX_MIXED_NEGATIVES {
            return Err(bad(
                "loss.mixed_negatives",
                r.loss.mixed_negatives,
                "at most 65536",
            ));
        }
        // the average is kept in f32: 1 − γ must stay representable
        if !(0.0..=0.999).contains(&r.train.epoch_average) {
            return Err(bad(
                "train.epoch_average",
                r.train.epoch_average,
                "in [0, 0.999]",
            ));
        }
        if !(r.train.lr_decay > 0.0 && r.train.lr_decay <= 1.0) {
            return Err(bad("train.lr_decay", r.train.lr_decay, "in (0, 1]"));
        }
        if !(r.train.weight_decay.is_finite() && r.train.weight_decay >= 0.0) {
            return Err(bad(
                "train.weight_decay",
                r.train.weight_decay,
                "a finite number >= 0",
            ));
        }
        // above ~87 the oldest weights e^−λ underflow f32 to 0
        if !(0.0..=50.0).contains(&r.train.recency_decay) {
            return Err(bad(
                "train.recency_decay",
                r.train.recency_decay,
                "in [0, 50] (0 = off; the oldest interaction weighs e^-λ)",
            ));
        }
        if !(r.train.clip_grad_norm.is_finite() && r.train.clip_grad_norm >= 0.0) {
            return Err(bad(
                "train.clip_grad_norm",
                r.train.clip_grad_norm,
                "a finite number >= 0 (0 = off)",
            ));
        }
        if r.eval.ks.is_empty() || r.eval.ks.contains(&0) {
            return Err(bad(
                "eval.ks",
                format!("{:?}", r.eval.ks),
                "a non-empty list of K >= 1",
            ));
        }
        if let Some(&k) = r.eval.ks.iter().find(|&&k| k > MAX_EVAL_K) {
            return Err(bad("eval.ks", k, "values of K in 1..=1000000 (MAX_EVAL_K)"));
        }
        if r.train.validation && !monitor_is_computed(&r.train.monitor, &r.eval.ks) {
            return Err(bad(
                "train.monitor",
                &r.train.monitor,
                "a metric computed for one of eval.ks: recall@K, ndcg@K, head_recall@K, tail_recall@K, \
                 cold_recall@K or coverage@K with K in eval.ks (the default recall@50 needs 50 in eval.ks)",
            ));
        }
        if r.train.threads > MAX_THREADS {
            return Err(bad(
                "train.threads",
                r.train.threads,
                "in 0..=256 (MAX_THREADS; 0 = all cores)",
            ));
        }
        if r.eval.block_users == 0 {
            return Err(bad("eval.block_users", 0, "at least 1"));
        }
        if !(1..=MAX_ANN_EF).contains(&r.eval.ann_ef) {
            return Err(bad(
                "eval.ann_ef",
                r.eval.ann_ef,
                "in 1..=100000 (MAX_ANN_EF; the HNSW search breadth)",
            ));
        }
        if r.eval.ann_recall_users == 0 {
            return Err(bad(
                "eval.ann_recall_users",
                0,
                "at least 1 (EVALUATION.md: an approximate index reports its recall against exact top-K)",
            ));
        }
        Ok(())
    }

    /// The `[data]` section, or the built-in synthetic default when absent.
    pub fn data(&self) -> DataConfig {
        self.raw.data.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of loading the defaults with one `--set` override.
    fn set_err(set: &str) -> String {
        Config::load(None, &[set.into()]).unwrap_err().to_string()
    }

    #[test]
    fn monitor_threads_and_ks_are_checked_before_training() {
        // found by a bad-input trial: each trained to the end, then failed
        // (an unloadable run), hung, or panicked
        for set in [
            "train.monitor=recall@20",
            "train.monitor=loss",
            "train.monitor=bogus",
        ] {
            let err = set_err(set);
            assert!(err.contains("train.monitor"), "{set}: {err}");
            assert!(err.contains("K in eval.ks"), "{set}: {err}");
        }
        for ok in ["ndcg@10", "tail_recall@100", "coverage@50", "recall@50"] {
            Config::load(None, &[format!("train.monitor={ok}")]).unwrap();
        }
        // no validation: the monitor is not read
        Config::load(
            None,
            &[
                "train.monitor=bogus".into(),
                "train.validation=false".into(),
            ],
        )
        .unwrap();
        let err = set_err("train.threads=100000");
        assert!(
            err.contains("train.threads") && err.contains("0..=256"),
            "{err}"
        );
        let err = set_err("eval.ks=[10, 4611686018427387904]");
        assert!(err.contains("eval.ks") && err.contains("1000000"), "{err}");
    }

    #[test]
    fn eval_retrieval_keys_are_checked_and_named() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c.raw.eval.retrieval, Retrieval::Exact);
        let c = Config::load(
            None,
            &["eval.retrieval=\"hnsw\"".into(), "eval.ann_ef=64".into()],
        )
        .unwrap();
        assert_eq!(c.raw.eval.retrieval, Retrieval::Hnsw);
        assert_eq!(c.raw.eval.ann_ef, 64);
        let err = set_err("eval.retrieval=\"ivf\"");
        assert!(
            err.contains("eval.retrieval") && err.contains("hnsw"),
            "{err}"
        );
        for (set, key) in [
            ("eval.ann_ef=0", "eval.ann_ef"),
            ("eval.ann_ef=100001", "eval.ann_ef"),
            ("eval.ann_recall_users=0", "eval.ann_recall_users"),
        ] {
            let err = set_err(set);
            assert!(
                err.contains(key) && err.contains(&format!("--set {set}")),
                "{set}: {err}"
            );
        }
        // after training: eval keys only, blamed on the flag
        let base = Config::load(None, &[]).unwrap();
        let c = base
            .with_eval_overrides(&["eval.retrieval=hnsw".into()])
            .unwrap();
        assert_eq!(c.raw.eval.retrieval, Retrieval::Hnsw);
        let err = base
            .with_eval_overrides(&["train.seed=3".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--set train.seed=3") && err.contains("[eval]"),
            "{err}"
        );
        let err = base
            .with_eval_overrides(&["eval.ann_ef=0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--set eval.ann_ef=0"), "{err}");
        let err = base
            .with_eval_overrides(&["eval.retrieval=ivf".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eval.retrieval") && err.contains("exact"),
            "{err}"
        );
    }

    #[test]
    fn set_typos_are_blamed_on_the_flag_with_the_valid_keys() {
        let err = set_err("ssl.cfm_partner=false");
        assert!(err.contains("--set ssl.cfm_partner=false"), "{err}");
        assert!(err.contains("unknown key `cfm_partner` in [ssl]"), "{err}");
        assert!(err.contains("cfm_id_partner"), "{err}");
        let err = set_err("trian.seed=1");
        assert!(err.contains("unknown section `trian`"), "{err}");
        // valid keys pass, and their values are applied
        let c = Config::load(
            None,
            &["ssl.cfm_id_partner=false".into(), "train.seed=7".into()],
        )
        .unwrap();
        assert!(!c.raw.ssl.cfm_id_partner);
        assert_eq!(c.raw.train.seed, 7);
    }

    #[test]
    fn choice_fields_are_enums_whose_errors_list_the_choices() {
        // every choice field, with a bad value from a flag: the flag is blamed
        // and serde lists the valid values
        for (set, choices) in [
            (
                "loss.frequency=count",
                "`counts`, `batch_inclusion`, `streaming`",
            ),
            ("model.mask_embedding=zeros", "`zero` or `learned`"),
            (
                "ssl.masking=corelated",
                "`random`, `complementary`, `correlated`, `cold_start`",
            ),
            ("ssl.seed_scope=batch", "`per_example` or `per_batch`"),
            ("ssl.mi_weighting=click", "`items` or `clicks`"),
            ("ssl.mask_as=zero", "`unknown` or `mask_embedding`"),
            (
                "train.sparse_optimizer=sgd",
                "`adam`, `adagrad`, `adagrad_rowwise`",
            ),
        ] {
            let err = set_err(set);
            assert!(err.contains(&format!("--set {set}")), "{err}");
            assert!(err.contains("unknown variant"), "{err}");
            assert!(err.contains(choices), "{set}: {err}");
        }
        // from a file: the file's line
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[ssl]\nenabled = true\nmasking = \"cfm\"\n").unwrap();
        let err = Config::load(Some(&p), &[]).unwrap_err().to_string();
        assert!(err.contains("c.toml line 3"), "{err}");
        assert!(err.contains("unknown variant `cfm`"), "{err}");
        // the defaults, and every value parses to its variant
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c.raw.loss.frequency, LogqFrequency::Counts);
        assert_eq!(c.raw.model.mask_embedding, MaskEmbedding::Zero);
        assert_eq!(c.raw.ssl.masking, MaskingPattern::Complementary);
        assert_eq!(c.raw.ssl.seed_scope, SeedScope::PerExample);
        assert_eq!(c.raw.ssl.mi_weighting, MiWeighting::Items);
        assert_eq!(c.raw.ssl.mask_as, MaskAs::Unknown);
        assert_eq!(c.raw.train.sparse_optimizer, SparseOptimizer::Adam);
        let c = Config::load(
            None,
            &[
                "loss.frequency=batch_inclusion".into(),
                "model.mask_embedding=learned".into(),
                "ssl.masking=cold_start".into(),
                "ssl.seed_scope=per_batch".into(),
                "ssl.mi_weighting=clicks".into(),
                "ssl.mask_as=mask_embedding".into(),
                "train.sparse_optimizer=adagrad_rowwise".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.raw.loss.frequency, LogqFrequency::BatchInclusion);
        assert_eq!(c.raw.model.mask_embedding, MaskEmbedding::Learned);
        assert_eq!(c.raw.ssl.masking, MaskingPattern::ColdStart);
        assert_eq!(c.raw.ssl.seed_scope, SeedScope::PerBatch);
        assert_eq!(c.raw.ssl.mi_weighting, MiWeighting::Clicks);
        assert_eq!(c.raw.ssl.mask_as, MaskAs::MaskEmbedding);
        assert_eq!(
            c.raw.train.sparse_optimizer,
            SparseOptimizer::AdagradRowwise
        );
        // the defaults serialize to the strings the TOML uses (checkpoints
        // and `--set` key checks read them)
        let v = toml::Value::try_from(SslSection::default()).unwrap();
        assert_eq!(v["masking"].as_str(), Some("complementary"));
        assert_eq!(v["mask_as"].as_str(), Some("unknown"));
    }

    #[test]
    fn out_of_range_values_name_their_file_line_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "# comment\n[loss]\nlogq = true\ntemperature = -1\n").unwrap();
        let err = Config::load(Some(&p), &[]).unwrap_err().to_string();
        assert!(err.contains("c.toml line 4"), "{err}");
        assert!(err.contains("`loss.temperature` = -1"), "{err}");
        // the same value from a flag blames the flag
        let err = set_err("loss.temperature=0");
        assert!(err.starts_with("--set loss.temperature=0:"), "{err}");
        let err = set_err("train.recency_decay=-0.5");
        assert!(
            err.starts_with("--set train.recency_decay=-0.5:") && err.contains("[0, 50]"),
            "{err}"
        );
        for bad_set in [
            "train.recency_decay=1e6",
            "train.epoch_average=0.99999999",
            "loss.mixed_negatives=100000000000",
        ] {
            let err = set_err(bad_set);
            assert!(err.starts_with(&format!("--set {bad_set}:")), "{err}");
        }
        // a wrong type from a flag blames the flag; from a file, its line
        let err = set_err("train.recency_decay=abc");
        assert!(
            err.contains("--set train.recency_decay=abc") && err.contains("f64"),
            "{err}"
        );
        std::fs::write(
            &p,
            "[train]  # trailing comment\nseed = 1\nrecency_decay = \"abc\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&p), &[]).unwrap_err().to_string();
        assert!(err.contains("c.toml line 3"), "{err}");
        let ok = Config::load(None, &["train.recency_decay=3".into()]).unwrap();
        assert_eq!(ok.raw.train.recency_decay, 3.0);
        assert_eq!(key_line("[a]\nx = 1\n[b]\nx = 2\n", "b.x"), Some(4));
        assert_eq!(key_line("[a]\nx = 1\n", "b.x"), None);
    }
}
