//! Shared pieces of the serving commands (`recommend`, `similar`, `export`):
//! loading a run's vectors, the catalog of items to rank (the run's, or an
//! item table that grew after training) and an index over its vectors.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use ndarray::Array2;
use twotower::history_feature::{item_rows, HistoryFeature};
use twotower::index::{ExactIndex, HnswConfig, HnswIndex, VectorIndex};
use twotower::run::LoadedRun;
use twotower::train::{encode_items, encode_user_table, history_feature};
use twotower_data::{EntityTable, FeatureKind, Side};

/// The items a serving command ranks, with their vectors.
pub struct Catalog<'a> {
    /// Ids, labels and encoded features.
    pub table: Cow<'a, EntityTable>,
    /// Unit-norm item vectors, `[n × d]`.
    pub vectors: Array2<f32>,
    /// Train interactions per catalog item (0 = cold, or new since training).
    pub clicks: Vec<u64>,
    /// The run's item index → catalog index (`None`: not in the catalog).
    pub from_run: Vec<Option<u32>>,
}

impl<'a> Catalog<'a> {
    /// The run's own items, or the item table in `file` (the layout of the
    /// config's `[data.items]`) encoded with the run's vocabularies: items
    /// of the training data keep their trained rows, new ones are scored
    /// from their features with the id's out-of-vocabulary row, as a cold
    /// item is.
    pub fn load(run: &'a LoadedRun, file: Option<&Path>) -> anyhow::Result<Self> {
        let ds = &run.dataset;
        let mut run_clicks = vec![0u64; ds.items.len()];
        for &i in &ds.train.item {
            run_clicks[i as usize] += 1;
        }
        let Some(file) = file else {
            return Ok(Self {
                vectors: match &run.vectors {
                    Some((_, items)) => items.clone(),
                    None => encode_items(&run.model, &ds.items),
                },
                table: Cow::Borrowed(&ds.items),
                clicks: run_clicks,
                from_run: (0..ds.items.len() as u32).map(Some).collect(),
            });
        };
        let feats = twotower_data::effective_features(&run.config.data(), &run.config.raw.features);
        let (table, bad) =
            twotower_data::encode_table(&run.config.data(), &feats, Side::Item, file, &ds.items)
                .context("--catalog")?;
        if table.is_empty() {
            bail!("--catalog {}: the table has no rows", file.display());
        }
        let mut from_run = vec![None; ds.items.len()];
        let mut clicks = vec![0u64; table.len()];
        for (c, id) in table.ids.iter().enumerate() {
            if let Some(&i) = ds.items.index.get(id) {
                from_run[i as usize] = Some(c as u32);
                clicks[c] = run_clicks[i as usize];
            }
        }
        let known = from_run.iter().filter(|x| x.is_some()).count();
        eprintln!(
            "catalog {}: {} items, {} of them in the training data, {} new (scored from their features){}",
            file.display(),
            table.len(),
            known,
            table.len() - known,
            if bad > 0 {
                format!("; {bad} values could not be encoded (or rows were skipped) and count as missing")
            } else {
                String::new()
            }
        );
        Ok(Self {
            vectors: encode_items(&run.model, &table),
            table: Cow::Owned(table),
            clicks,
            from_run,
        })
    }

    /// The catalog indices of run items (sorted, deduplicated; items not
    /// in the catalog are left out): what to exclude for a user's train items.
    pub fn map_run_items(&self, run_items: &[u32]) -> Vec<u32> {
        let mut out: Vec<u32> = run_items
            .iter()
            .filter_map(|&i| self.from_run[i as usize])
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The item index of a catalog: exact, or HNSW with its recall@k against
/// exact measured on `probe` queries and printed.
pub fn item_index(
    catalog: &Catalog,
    ann: bool,
    probe: &Array2<f32>,
    k: usize,
    n_exclude: usize,
) -> anyhow::Result<Box<dyn VectorIndex>> {
    let items = &catalog.vectors;
    let rank = catalog.table.id_rank.clone();
    let exact = ExactIndex::with_tie_rank(items.clone(), rank.clone())?;
    if !ann {
        return Ok(Box::new(exact));
    }
    let cfg = HnswConfig {
        // instant-distance fixes ef at build time and a search returns at most
        // ef candidates before exclusion: leave room for the excluded items.
        ef_search: k.saturating_mul(4).max(100).saturating_add(n_exclude),
        ..HnswConfig::default()
    };
    let hnsw = HnswIndex::build_with_tie_rank(items.view(), rank, &cfg)?;
    let recall = twotower::index::ann_recall_at_k(&hnsw, &exact, probe.view(), k)?;
    eprintln!(
        "HNSW index over {} items: recall@{k} against exact top-{k} = {recall:.4} ({} probe queries)",
        items.nrows(),
        probe.nrows()
    );
    Ok(Box::new(hnsw))
}

/// The user vectors of a run, `[n_users × d]`.
pub fn user_vectors(run: &LoadedRun) -> Array2<f32> {
    if let Some((users, _)) = &run.vectors {
        return users.clone();
    }
    let history = history_feature(&run.config, &run.dataset, &run.dataset.train);
    encode_user_table(&run.model, &run.dataset, history.as_ref())
}

/// Resolves item ids as written in the data to catalog indices, in the
/// order given. Unknown ids are reported on stderr (never dropped
/// silently); none known is an error.
pub fn resolve_items(run: &LoadedRun, ids: &[String]) -> anyhow::Result<Vec<u32>> {
    resolve_items_at(run, ids, "--items")
}

/// [`resolve_items`] with `what` naming the source in messages (a flag, or
/// a file and line).
pub fn resolve_items_at(run: &LoadedRun, ids: &[String], what: &str) -> anyhow::Result<Vec<u32>> {
    let index = &run.dataset.items.index;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for id in ids.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match index.get(id) {
            Some(&i) => known.push(i),
            None => unknown.push(id),
        }
    }
    if !unknown.is_empty() {
        eprintln!(
            "warning: {what}: {} of {} ids are not in the catalog and are left out of the history: {}",
            unknown.len(),
            unknown.len() + known.len(),
            unknown.iter().take(20).copied().collect::<Vec<_>>().join(", ")
                + if unknown.len() > 20 { ", ..." } else { "" }
        );
    }
    if known.is_empty() {
        bail!("{what}: none of the given item ids is in the catalog");
    }
    // items without a trained id row (no train click, or below min_count)
    // read the out-of-vocabulary row: they say nothing about the user
    let (rows, _) = item_rows(&run.dataset.items);
    let untrained: Vec<&str> = known
        .iter()
        .filter(|&&i| rows[i as usize] == 0)
        .map(|&i| run.dataset.items.ids[i as usize].as_str())
        .collect();
    if !untrained.is_empty() {
        let shown: Vec<&str> = untrained.iter().take(20).copied().collect();
        eprintln!(
            "warning: {what}: {} of {} items have no trained embedding (no train interaction, or \
             below the item id's min_count) and read the out-of-vocabulary row: {}{}",
            untrained.len(),
            known.len(),
            shown.join(", "),
            if untrained.len() > 20 { ", ..." } else { "" }
        );
    }
    Ok(known)
}

/// The user vector of `user` (a dataset id, or unknown), with feature
/// overrides `name=value` (raw values, transformed and bucketized as the
/// config says; multi-valued features take `a|b|c`).
///
/// With a history feature, the bag is `history_items` (catalog indices,
/// oldest first) when given, else a known user's train items, else empty.
///
/// `history`: the run's history feature over its train split
/// ([`history_feature`]; build it once for many queries), `None` when the
/// model has none.
pub fn user_vector(
    run: &LoadedRun,
    history: Option<&HistoryFeature>,
    user: &str,
    overrides: &[String],
    history_items: Option<&[u32]>,
) -> anyhow::Result<(Vec<f32>, Option<u32>)> {
    let ds = &run.dataset;
    let idx = ds.users.index.get(user).copied();
    let feats = &ds.users.features;
    let effective = twotower_data::effective_features(&run.config.data(), &run.config.raw.features);
    // one entity's CSR per feature
    let mut per_feature: Vec<Vec<u32>> = feats
        .iter()
        .map(|f| match idx {
            Some(u) => f.row(u as usize).to_vec(),
            None => {
                if f.is_id {
                    vec![0]
                } else {
                    match f.kind {
                        FeatureKind::MultiCategorical => vec![],
                        _ => vec![0],
                    }
                }
            }
        })
        .collect();
    let mut given: Vec<&str> = Vec::new();
    for o in overrides {
        let (name, value) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("--feature {o:?}: expected NAME=VALUE"))?;
        if given.contains(&name) {
            bail!("--feature {name} is given twice; give each feature once (a multi-valued one as A|B|C)");
        }
        given.push(name);
        let pos = feats.iter().position(|f| f.name == name).ok_or_else(|| {
            anyhow!(
                "--feature {name}: not a user feature; user features: {}",
                feats
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let f = &feats[pos];
        let fc = effective
            .get(name)
            .filter(|c| c.side == Side::User)
            .ok_or_else(|| anyhow!("--feature {name}: no config for this feature"))?;
        per_feature[pos] = match f.kind {
            FeatureKind::MultiCategorical => value
                .split('|')
                .filter_map(|v| twotower_data::dataset::transform_value(v, fc))
                .map(|t| f.vocab.lookup(&t))
                .collect(),
            FeatureKind::Categorical => {
                vec![twotower_data::dataset::transform_value(value, fc)
                    .map(|t| f.vocab.lookup(&t))
                    .unwrap_or(0)]
            }
            FeatureKind::Bucketized => {
                let b = fc.boundaries.as_deref().unwrap_or(&[]);
                let t = twotower_data::dataset::transform_value(value, fc)
                    .with_context(|| format!("--feature {name}={value}: empty value"))?;
                let x: f64 = t
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite())
                    .ok_or_else(|| anyhow!("--feature {name}={value}: not a number"))?;
                vec![b.partition_point(|&q| q <= x) as u32 + 1]
            }
        };
        if f.kind != FeatureKind::Bucketized
            && f.vocab.hash_buckets().is_none()
            && (per_feature[pos].is_empty() || per_feature[pos].contains(&0))
        {
            eprintln!(
                "warning: --feature {name}={value}: not (all) in the training vocabulary of {name}; \
                 using its out-of-vocabulary embedding"
            );
        }
    }
    if history_items.is_some() && history.is_none() {
        bail!(
            "--items needs a model with a history feature (model.history.enabled = true); \
             this run's user tower has none"
        );
    }
    if idx.is_none() && overrides.is_empty() && history_items.is_none() {
        bail!(
            "user {user:?} is not in the data; give its features with --feature NAME=VALUE (user features: {}){}",
            feats.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
            if history.is_some() { ", or the items it interacted with as --items ID,ID,..." } else { "" }
        );
    }
    if idx.is_none() {
        let missing: Vec<&str> = feats
            .iter()
            .filter(|f| !f.is_id && !given.contains(&f.name.as_str()))
            .map(|f| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "note: user {user:?} is not in the data; features not given ({}) use their \
                 out-of-vocabulary (missing) embedding",
                missing.join(", ")
            );
        }
    }
    let mut offsets: Vec<Vec<u32>> = per_feature
        .iter()
        .map(|v| vec![0, v.len() as u32])
        .collect();
    let mut weights: Vec<Vec<f32>> = vec![Vec::new(); per_feature.len()];
    if let Some(h) = history {
        // the same bag training builds: the last max_len items, pooled alike
        let (item_row, _) = item_rows(&run.dataset.items);
        let rows: Vec<u32> = match (history_items, idx) {
            (Some(items), _) => items.iter().map(|&i| item_row[i as usize]).collect(),
            (None, Some(u)) => h.user_rows(u).to_vec(),
            (None, None) => Vec::new(),
        };
        let mut bag = twotower::tower::BatchFeature::default();
        h.bag_of(&rows, &mut bag);
        per_feature.push(bag.values);
        offsets.push(bag.offsets);
        weights.push(bag.weights);
    }
    let cols: Vec<twotower::tower::FeatureColumn<'_>> = per_feature
        .iter()
        .zip(&offsets)
        .zip(&weights)
        .map(|((v, o), w)| twotower::tower::FeatureColumn {
            offsets: o,
            values: v,
            weights: w,
        })
        .collect();
    let mut out = Array2::zeros((1, run.model.user.spec.out_dim));
    run.model.encode_users(&cols, &[0], &mut out);
    Ok((out.row(0).to_vec(), idx))
}

/// Prints ranked items as TSV: `rank`, `item` (id as written in the data),
/// the item table's `label` column when the config names one (the title for
/// the MovieLens presets), `score` (cosine), `train_clicks` (the item's train interactions: its
/// popularity, 0 = cold) and one column per non-id item feature with the
/// item's values as the model saw them (multi-valued joined by `|`; `-` =
/// missing or out of vocabulary).
pub fn print_items(catalog: &Catalog, hits: &[(u32, f32)]) {
    let items = &*catalog.table;
    let feats: Vec<_> = items.features.iter().filter(|f| !f.is_id).collect();
    let clicks = &catalog.clicks;
    let labels = items.labels.as_ref();
    let mut header = String::from("rank\titem");
    if let Some((name, _)) = labels {
        header.push('\t');
        header.push_str(name);
    }
    header.push_str("\tscore\ttrain_clicks");
    for f in &feats {
        header.push('\t');
        header.push_str(&f.name);
    }
    println!("{header}");
    for (r, &(i, s)) in hits.iter().enumerate() {
        let i = i as usize;
        let mut line = format!("{}\t{}", r + 1, items.ids[i]);
        if let Some((_, text)) = labels {
            push_field(&mut line, &text[i]);
        }
        line.push_str(&format!("\t{s:.4}\t{}", clicks[i]));
        for f in &feats {
            let vals: Vec<&str> = f
                .row(i)
                .iter()
                .filter(|&&v| v != 0)
                .filter_map(|&v| f.vocab.token(v))
                .collect();
            let joined = vals.join("|");
            push_field(&mut line, if vals.is_empty() { "-" } else { &joined });
        }
        println!("{line}");
    }
}

/// Appends a tab and `text` as one TSV field: a tab or line break inside it
/// would shift the columns, so control characters become spaces.
fn push_field(line: &mut String, text: &str) {
    line.push('\t');
    line.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
}
