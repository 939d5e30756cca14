//! Training configuration: the raw TOML sections `[model]`, `[loss]`, `[ssl]`,
//! `[train]` and `[eval]` (every key documented with its default), and the
//! checked [`Config`] the trainer accepts. One file per section (`model`,
//! `loss`, `ssl`, `train`, `eval`; their types are re-exported here), the
//! range checks in `check`; this file holds the whole config, its loading
//! (file, `--set` overrides, the line of a bad key) and the errors.
//!
//! The `[data]` and `[features]` sections belong to `twotower-data`
//! ([`twotower_data::DataConfig`], [`twotower_data::FeaturesConfig`]).
//! Unknown keys are errors that list the valid ones (serde's
//! `deny_unknown_fields`), so a typo in `--set loss.temprature=0.1` fails
//! loudly instead of being ignored.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use twotower_data::{DataConfig, FeaturesConfig};

mod check;
mod eval;
mod loss;
mod model;
mod ssl;
mod train;

use eval::monitor_is_computed;
pub use eval::{EvalSection, Retrieval, MAX_ANN_EF, MAX_EVAL_K, METRIC_PREFIXES};
pub use loss::{LogqFrequency, LossSection, MAX_MIXED_NEGATIVES};
pub use model::{HistoryConfig, HistoryPoolingKind, MaskEmbedding, ModelConfig};
pub use ssl::{MaskAs, MaskingPattern, MiWeighting, SeedScope, SslSection};
pub use train::{SparseOptimizer, TrainSection};

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

/// The most worker threads `train.threads` may ask for.
pub const MAX_THREADS: usize = 256;

/// What a config is checked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Training (every check).
    Train,
    /// Evaluating a trained run (`train.monitor` need not be computed).
    Eval,
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

    /// Checks a TOML document (already overridden).
    ///
    /// # Errors
    /// [`ConfigError`] naming `name` and the offending key.
    pub fn from_doc(doc: toml::Value, base_dir: PathBuf, name: &str) -> Result<Self, ConfigError> {
        Self::from_doc_for(doc, base_dir, name, Purpose::Train)
    }

    fn from_doc_for(
        doc: toml::Value,
        base_dir: PathBuf,
        name: &str,
        purpose: Purpose,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            doc.clone()
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: name.to_string(),
                    message: e.to_string().trim().to_string(),
                })?;
        let c = Self { raw, doc, base_dir };
        c.check(purpose).map_err(|e| match e {
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
        // a trained run's eval.ks need not hold train.monitor any more:
        // early stopping is over
        Self::from_doc_for(
            doc,
            self.base_dir.clone(),
            "the run's config",
            Purpose::Eval,
        )
        .map_err(|e| match e {
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
        // early stopping is over: eval.ks need not hold train.monitor
        let c = base.with_eval_overrides(&["eval.ks=[10]".into()]).unwrap();
        assert_eq!(c.raw.eval.ks, vec![10]);
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
        assert!(!c.raw.ssl.stop_gradient && !c.raw.ssl.symmetric);
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
                "ssl.stop_gradient=true".into(),
                "ssl.symmetric=true".into(),
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
        assert!(c.raw.ssl.stop_gradient && c.raw.ssl.symmetric);
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
