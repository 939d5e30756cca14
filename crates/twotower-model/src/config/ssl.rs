//! `[ssl]`: self-supervised learning on the item tower (Yao et al. 2021) —
//! the masking pattern, what a masked feature becomes, feature dropout, the
//! InfoNCE weight and temperature.

use serde::{Deserialize, Serialize};

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
    /// Stop-gradient on view 2 (default false): view 2's vectors are
    /// InfoNCE's fixed targets and only view 1 is trained toward them (a
    /// stop-gradient target as in BYOL, Grill et al. 2020, and SimSiam, Chen
    /// & He 2021, kept with InfoNCE's negatives). With `masking =
    /// "cold_start"` the whole item teaches its features-only vector
    /// (CLCRec's content-to-collaborative direction): the item's own id row
    /// gets no SSL gradient, the content rows and MLP still do through the
    /// first view. With `symmetric` both directions stop at view 2. On
    /// Amazon Beauty's validation split it lowered recall, tail and cold
    /// recall at α 0.3 and 1 (README "SSL on Amazon Beauty").
    pub stop_gradient: bool,
    /// Symmetric InfoNCE (default false): the mean of the view 1 → view 2
    /// and view 2 → view 1 losses (CLIP's loss, Radford et al. 2021), so
    /// each view's vectors are also keys the other view's queries must find.
    /// On Amazon Beauty's validation split it did not help cold-start views:
    /// within the seeds' spread at α 0.1, lower tail and cold recall at α 0.3
    /// (README "SSL on Amazon Beauty").
    pub symmetric: bool,
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
            stop_gradient: false,
            symmetric: false,
        }
    }
}
