//! The items a query ranks — the run's item table, or an item table that
//! grew after training encoded with the run's vocabularies — with their
//! vectors, and an index over them.

use std::path::Path;

use ndarray::Array2;
use twotower_data::{DataError, EntityTable, Side};
use twotower_model::index::{ann_recall_at_k, ExactIndex, IndexError, VectorIndex};
use twotower_model::inference::encode_items;

use crate::ann::{AnnConfig, AnnError, UsearchIndex};
use crate::served::Served;

/// The items to rank, with their vectors.
pub struct Catalog {
    /// The table read with [`Catalog::from_file`]; `None`: the run's own
    /// item table ([`Catalog::table`] gives either).
    grown: Option<EntityTable>,
    /// Unit-norm item vectors, `[n × d]`.
    pub vectors: Array2<f32>,
    /// Train interactions per catalog item (0 = cold, or new since training).
    pub clicks: Vec<u64>,
    /// The run's item index → catalog index (`None`: not in the catalog).
    pub from_run: Vec<Option<u32>>,
    /// New items (not in the training data).
    pub n_new: usize,
    /// Values that could not be encoded (or rows skipped) and count as missing.
    pub bad_values: usize,
}

fn run_clicks(served: &Served) -> Vec<u64> {
    let ds = &served.run.dataset;
    let mut clicks = vec![0u64; ds.items.len()];
    for &i in &ds.train.item {
        clicks[i as usize] += 1;
    }
    clicks
}

impl Catalog {
    /// The run's own items (their vectors from the artifact when it has
    /// them, else computed).
    pub fn of_run(served: &Served) -> Self {
        let run = &served.run;
        let n = run.dataset.items.len();
        Self {
            grown: None,
            vectors: match &run.vectors {
                Some((_, items)) => items.clone(),
                None => encode_items(&run.model, &run.dataset.items),
            },
            clicks: run_clicks(served),
            from_run: (0..n as u32).map(Some).collect(),
            n_new: 0,
            bad_values: 0,
        }
    }

    /// The item table in `file` (the layout of the config's `[data.items]`)
    /// encoded with the run's vocabularies ([`twotower_data::encode_table`]):
    /// items of the training data keep their trained rows, new ones are
    /// scored from their features with the id's out-of-vocabulary row, as
    /// a cold item is.
    ///
    /// # Errors
    /// [`DataError`] naming the file, line and column.
    pub fn from_file(served: &Served, file: &Path) -> Result<Self, DataError> {
        let run = &served.run;
        let ds = &run.dataset;
        let feats = twotower_data::effective_features(&run.config.data(), &run.config.raw.features);
        let (table, bad) =
            twotower_data::encode_table(&run.config.data(), &feats, Side::Item, file, &ds.items)?;
        if table.is_empty() {
            return Err(DataError::config(
                "--catalog",
                format!("{}: the table has no rows", file.display()),
            ));
        }
        let rc = run_clicks(served);
        let mut from_run = vec![None; ds.items.len()];
        let mut clicks = vec![0u64; table.len()];
        for (c, id) in table.ids.iter().enumerate() {
            if let Some(i) = ds.items.index_of(id) {
                from_run[i as usize] = Some(c as u32);
                clicks[c] = rc[i as usize];
            }
        }
        let known = from_run.iter().filter(|x| x.is_some()).count();
        Ok(Self {
            vectors: encode_items(&run.model, &table),
            n_new: table.len() - known,
            grown: Some(table),
            clicks,
            from_run,
            bad_values: bad,
        })
    }

    /// Ids, labels and encoded features of the catalog's items.
    pub fn table<'a>(&'a self, served: &'a Served) -> &'a EntityTable {
        self.grown.as_ref().unwrap_or(&served.run.dataset.items)
    }

    /// Whether this is a table read with [`Catalog::from_file`].
    pub fn is_grown(&self) -> bool {
        self.grown.is_some()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.vectors.nrows()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The catalog indices of run items (sorted, deduplicated; items not in
    /// the catalog are left out): what to exclude for a user's train items.
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

/// The index over a catalog's vectors: exact (ties by id rank), or HNSW
/// ([`crate::ann::UsearchIndex`]) with its recall@k against exact top-k
/// measured on `probe` queries (returned beside it). With `saved` naming an
/// existing index file of the run (`twotower index`), the HNSW index is
/// loaded from it instead of built (only for the run's own catalog).
///
/// # Errors
/// [`IndexError`] from building the exact index or measuring recall;
/// [`AnnError`] from building or loading the HNSW index.
pub fn build_index(
    catalog: &Catalog,
    served: &Served,
    ann: bool,
    probe: &Array2<f32>,
    k: usize,
    saved: Option<&Path>,
    cfg: &AnnConfig,
) -> Result<(Box<dyn VectorIndex>, Option<f64>), BuildError> {
    let rank = catalog.table(served).id_rank.clone();
    let exact = ExactIndex::with_tie_rank(catalog.vectors.clone(), rank.clone())?;
    if !ann {
        return Ok((Box::new(exact), None));
    }
    let hnsw = match saved.filter(|p| p.is_file() && catalog.grown.is_none()) {
        Some(p) => UsearchIndex::load(p, catalog.vectors.view(), rank, cfg)?,
        None => UsearchIndex::build(catalog.vectors.view(), rank, cfg)?,
    };
    let recall = ann_recall_at_k(&hnsw, &exact, probe.view(), k)?;
    Ok((Box::new(hnsw), Some(recall)))
}

/// Why an index could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The exact index or the recall measurement.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The HNSW index.
    #[error(transparent)]
    Ann(#[from] AnnError),
}
