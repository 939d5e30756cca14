//! The self-contained model artifact of a run: everything `recommend`,
//! `similar`, `export` and `serve` need, so that a run directory copied to
//! another machine serves without the data it was trained on.
//!
//! Files in the run directory (written atomically, before `run.json`, which
//! marks a finished run):
//! - `artifact.json` ([`ArtifactDoc`]): format version, the data
//!   fingerprint, and both entity tables — ids as written in the data,
//!   labels, every feature's kind, vocabulary (index ↔ token, or hash
//!   buckets) and encoded rows. The feature configs (transforms,
//!   separators, bucket boundaries) are in `run.json`'s config document;
//!   together they are the feature encoder ([`twotower_data::encode`]).
//! - `artifact.safetensors`: the train split in split order —
//!   `train.user`, `train.item` (U32 `[n_train]`), `train.timestamp` (I64
//!   `[n_train]`), `train.weight` (F32, when the data has weights) — which
//!   gives a known user's seen items and history bag; and the final
//!   model's unit-norm vectors, `item_vectors` `[n_items × d]` and
//!   `user_vectors` `[n_users × d]` (F32).
//! - the weights stay in `model.safetensors` ([`crate::run::MODEL_FILE`]).
//!
//! Format version [`ARTIFACT_FORMAT_VERSION`]; a reader refuses other
//! versions with a message. Runs written before the artifact existed (run
//! format 1) still load through the data; `twotower artifact --run DIR`
//! writes their artifact.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use twotower_data::{Dataset, EncodedFeature, EntityIds, EntityTable, IngestReport, Interactions};

use crate::tensor_file::{self, row_major, NamedTensor, TensorData};
use crate::util::{atomic_write, atomic_write_bytes};

/// Why an artifact could not be written or read (the run loader wraps it
/// in its `RunError`, with the same message).
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// File-system failure on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `path` is not a valid artifact file (what is wrong in `message`).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Version of the artifact files.
pub const ARTIFACT_FORMAT_VERSION: u32 = 1;
/// The artifact's tables and metadata.
pub const ARTIFACT_FILE: &str = "artifact.json";
/// The artifact's arrays.
pub const ARTIFACT_TENSORS: &str = "artifact.safetensors";

/// One side's entities as stored (the id → index map is rebuilt on load).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableDoc {
    /// Entity ids as written in the data, in "by id" order (stored as a
    /// list of strings).
    pub ids: EntityIds,
    /// Position of each entity in "by id" order.
    pub id_rank: Vec<u32>,
    /// Encoded features with their vocabularies, in the tower's order.
    pub features: Vec<EncodedFeature>,
    /// The label column: (name, one text per entity).
    pub labels: Option<(String, Vec<String>)>,
}

impl TableDoc {
    fn of(t: &EntityTable) -> Self {
        Self {
            ids: t.ids.clone(),
            id_rank: t.id_rank.clone(),
            features: t.features.clone(),
            labels: t.labels.clone(),
        }
    }

    fn into_table(self) -> EntityTable {
        EntityTable {
            ids: self.ids,
            id_rank: self.id_rank,
            features: self.features,
            missing_feature_rows: 0,
            labels: self.labels,
        }
    }
}

/// `artifact.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactDoc {
    /// [`ARTIFACT_FORMAT_VERSION`].
    pub format_version: u32,
    /// twotower version that wrote it.
    pub twotower_version: String,
    /// [`Dataset::fingerprint`] of the data trained on.
    pub data_fingerprint: String,
    /// Output dimension of the towers (the vectors' width).
    pub dim: usize,
    /// Users.
    pub users: TableDoc,
    /// Items (the catalog).
    pub items: TableDoc,
}

/// What an artifact holds besides the weights.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The data the model serves from: both tables and the train split;
    /// the test split is empty (evaluation reads the data files).
    pub dataset: Dataset,
    /// The final model's item vectors, `[n_items × d]`, unit-norm rows.
    pub item_vectors: Array2<f32>,
    /// The final model's user vectors, `[n_users × d]`, unit-norm rows.
    pub user_vectors: Array2<f32>,
    /// The data fingerprint at training.
    pub data_fingerprint: String,
}

/// Whether `dir` holds an artifact.
pub fn exists(dir: &Path) -> bool {
    dir.join(ARTIFACT_FILE).is_file()
}

/// Writes the artifact of a model trained on `ds` with vectors `users`,
/// `items` (from [`crate::inference::encode_all`]).
///
/// # Errors
/// [`ArtifactError::Io`] / [`ArtifactError::Format`] on write failure.
pub fn write(
    dir: &Path,
    ds: &Dataset,
    users: &Array2<f32>,
    items: &Array2<f32>,
) -> Result<(), ArtifactError> {
    let tpath = dir.join(ARTIFACT_TENSORS);
    let fmt = |path: &Path, message: String| ArtifactError::Format {
        path: path.to_path_buf(),
        message,
    };
    let n = ds.train.len();
    // streamed (crate::tensor_file): no little-endian copies of the train
    // split or the vectors, no file-sized buffer
    let (iv, uv) = (row_major(items.view()), row_major(users.view()));
    // a streamed train split is written column by column, one pass each
    let column = |which: usize| {
        move |w: &mut dyn std::io::Write| -> std::io::Result<()> {
            let stream = ds.train_stream.as_ref().expect("a streamed split");
            let mut buf = Vec::new();
            stream
                .for_each_chunk(&ds.users.ids, &ds.items.ids, 1 << 16, |c| {
                    buf.clear();
                    match which {
                        0 => c.user.iter().for_each(|v| buf.extend(v.to_le_bytes())),
                        1 => c.item.iter().for_each(|v| buf.extend(v.to_le_bytes())),
                        2 => c.timestamp.iter().for_each(|v| buf.extend(v.to_le_bytes())),
                        _ => c
                            .weight
                            .iter()
                            .flatten()
                            .for_each(|v| buf.extend(v.to_le_bytes())),
                    }
                    w.write_all(&buf)
                        .map_err(|e| twotower_data::DataError::io(&stream.dir, e))
                })
                .map_err(std::io::Error::other)
        }
    };
    let cols = [column(0), column(1), column(2), column(3)];
    let mut tensors = match &ds.train_stream {
        Some(s) => {
            let n = s.n_rows as usize;
            let gen = |name: &str, dtype, k: usize| NamedTensor {
                name: name.into(),
                shape: vec![n],
                data: TensorData::Generated {
                    dtype,
                    len: n,
                    write: &cols[k],
                },
            };
            let mut t = vec![
                gen("train.user", Dtype::U32, 0),
                gen("train.item", Dtype::U32, 1),
                gen("train.timestamp", Dtype::I64, 2),
            ];
            if s.weighted {
                t.push(gen("train.weight", Dtype::F32, 3));
            }
            t
        }
        None => vec![
            NamedTensor {
                name: "train.user".into(),
                shape: vec![n],
                data: TensorData::U32(&ds.train.user),
            },
            NamedTensor {
                name: "train.item".into(),
                shape: vec![n],
                data: TensorData::U32(&ds.train.item),
            },
            NamedTensor {
                name: "train.timestamp".into(),
                shape: vec![n],
                data: TensorData::I64(&ds.train.timestamp),
            },
        ],
    };
    if let (None, Some(w)) = (&ds.train_stream, &ds.train.weight) {
        tensors.push(NamedTensor::f32("train.weight", vec![n], w));
    }
    tensors.push(NamedTensor::f32(
        "item_vectors",
        vec![items.nrows(), items.ncols()],
        &iv,
    ));
    tensors.push(NamedTensor::f32(
        "user_vectors",
        vec![users.nrows(), users.ncols()],
        &uv,
    ));
    atomic_write(&tpath, |w| {
        tensor_file::write(w, &tensors, None).map(|_| ())
    })
    .map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidInput => fmt(&tpath, source.to_string()),
        _ => ArtifactError::Io {
            path: tpath.clone(),
            source,
        },
    })?;
    let doc = ArtifactDoc {
        format_version: ARTIFACT_FORMAT_VERSION,
        twotower_version: env!("CARGO_PKG_VERSION").to_string(),
        data_fingerprint: ds.fingerprint(),
        dim: items.ncols(),
        users: TableDoc::of(&ds.users),
        items: TableDoc::of(&ds.items),
    };
    let jpath = dir.join(ARTIFACT_FILE);
    let json = serde_json::to_vec(&doc).map_err(|e| fmt(&jpath, e.to_string()))?;
    atomic_write_bytes(&jpath, &json).map_err(|source| ArtifactError::Io {
        path: jpath.clone(),
        source,
    })
}

/// Reads the artifact in `dir`.
///
/// # Errors
/// [`ArtifactError::Io`] for a missing or unreadable file; [`ArtifactError::Format`]
/// naming the file for another format version, a missing or mistyped
/// tensor, shapes that disagree with the tables, or an index out of range.
pub fn read(dir: &Path) -> Result<Artifact, ArtifactError> {
    let jpath = dir.join(ARTIFACT_FILE);
    let tpath = dir.join(ARTIFACT_TENSORS);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArtifactError::Io { path, source }
    };
    let fmt = |path: &Path, message: String| ArtifactError::Format {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read(&jpath).map_err(io(&jpath))?;
    let version: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| fmt(&jpath, format!("not a twotower artifact: {e}")))?;
    match version.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == ARTIFACT_FORMAT_VERSION as u64 => {}
        Some(v) => {
            return Err(fmt(
                &jpath,
                format!(
                    "artifact format version {v} is not supported (this build reads \
                     {ARTIFACT_FORMAT_VERSION}); rewrite it with this build's \
                     `twotower artifact --run DIR` (needs the data) or use the twotower \
                     version that wrote it"
                ),
            ))
        }
        None => {
            return Err(fmt(
                &jpath,
                "no format_version: not a twotower artifact".into(),
            ))
        }
    }
    let doc: ArtifactDoc = serde_json::from_value(version)
        .map_err(|e| fmt(&jpath, format!("not a twotower artifact: {e}")))?;
    let bytes = std::fs::read(&tpath).map_err(io(&tpath))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        fmt(
            &tpath,
            format!("not a readable safetensors file (truncated or corrupt?): {e}"),
        )
    })?;
    let tensor = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<&[u8], ArtifactError> {
        let v = st
            .tensor(name)
            .map_err(|_| fmt(&tpath, format!("tensor {name} missing")))?;
        if v.dtype() != dtype || v.shape() != shape {
            return Err(fmt(
                &tpath,
                format!(
                    "tensor {name} is {:?} {:?}, expected {dtype:?} {shape:?}",
                    v.dtype(),
                    v.shape()
                ),
            ));
        }
        Ok(v.data())
    };
    let n_users = doc.users.ids.len();
    let n_items = doc.items.ids.len();
    let n = st
        .tensor("train.user")
        .map_err(|_| fmt(&tpath, "tensor train.user missing".into()))?
        .shape()
        .first()
        .copied()
        .unwrap_or(0);
    let u32s = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let user = u32s(tensor("train.user", Dtype::U32, &[n])?);
    let item = u32s(tensor("train.item", Dtype::U32, &[n])?);
    if user.iter().any(|&u| u as usize >= n_users) || item.iter().any(|&i| i as usize >= n_items) {
        return Err(fmt(
            &tpath,
            "a train interaction names a user or item outside the tables".into(),
        ));
    }
    let timestamp: Vec<i64> = tensor("train.timestamp", Dtype::I64, &[n])?
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let weight = match st.tensor("train.weight") {
        Ok(_) => Some(f32s(tensor("train.weight", Dtype::F32, &[n])?)),
        Err(_) => None,
    };
    let d = doc.dim;
    let item_vectors = Array2::from_shape_vec(
        (n_items, d),
        f32s(tensor("item_vectors", Dtype::F32, &[n_items, d])?),
    )
    .expect("shape checked");
    let user_vectors = Array2::from_shape_vec(
        (n_users, d),
        f32s(tensor("user_vectors", Dtype::F32, &[n_users, d])?),
    )
    .expect("shape checked");
    for (side, t) in [("users", &doc.users), ("items", &doc.items)] {
        let len = t.ids.len();
        if t.id_rank.len() != len {
            return Err(fmt(&jpath, format!("{side}: id_rank has the wrong length")));
        }
        for f in &t.features {
            let bad_offsets = f.offsets.len() != len + 1
                || f.offsets.windows(2).any(|w| w[0] > w[1])
                || f.offsets.last().copied().unwrap_or(0) as usize != f.values.len();
            if bad_offsets || f.values.iter().any(|&v| v as usize >= f.vocab.len().max(1)) {
                return Err(fmt(
                    &jpath,
                    format!("{side}: feature {} has malformed rows", f.name),
                ));
            }
        }
    }
    let dataset = Dataset {
        users: doc.users.into_table(),
        items: doc.items.into_table(),
        train: Interactions {
            user,
            item,
            timestamp,
            weight,
        },
        test: Interactions::default(),
        report: IngestReport::default(),
        train_stream: None,
    };
    Ok(Artifact {
        dataset,
        item_vectors,
        user_vectors,
        data_fingerprint: doc.data_fingerprint,
    })
}
