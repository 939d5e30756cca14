//! The checks of a [`Config`] beyond its types: ranges, combinations and
//! limits, each error naming the key (and, from [`Config::load`], the file
//! line or `--set` flag it came from).

use super::{
    monitor_is_computed, Config, ConfigError, Purpose, MAX_ANN_EF, MAX_EVAL_K, MAX_MIXED_NEGATIVES,
    MAX_THREADS,
};

impl Config {
    pub(super) fn check(&self, purpose: Purpose) -> Result<(), ConfigError> {
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
        if !(r.train.max_memory_gb.is_finite() && r.train.max_memory_gb >= 0.0) {
            return Err(bad(
                "train.max_memory_gb",
                r.train.max_memory_gb,
                "a number of GiB >= 0 (0 = no budget)",
            ));
        }
        if r.train.stream_window == 0 || r.train.stream_window > 1 << 31 {
            return Err(bad(
                "train.stream_window",
                r.train.stream_window,
                "in 1..=2147483648 rows",
            ));
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
        if purpose == Purpose::Train
            && r.train.validation
            && !monitor_is_computed(&r.train.monitor, &r.eval.ks)
        {
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
}
