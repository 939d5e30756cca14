//! Run-directory checkpoints: tensors in safetensors, everything else in JSON.
//!
//! A run directory holds
//! - `checkpoint.safetensors`: the model's tensors (`model.<name>`), the
//!   optimizer state (`optim.<name>`) and, while early stopping searches, the
//!   best model so far (`best.<name>`), all f32 little-endian;
//! - `checkpoint.json`: [`CheckpointMeta`] (format version, the config
//!   document, the vocabularies' sizes, the training position and history).
//!
//! Both files are written atomically (temp file + rename), the tensors first,
//! so a crash leaves the previous complete checkpoint (a JSON whose
//! `tensors_sha` does not match the tensor file is rejected on load).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::util::atomic_write;
use twotower_model::tensor_file::{self, NamedTensor};

/// Version of the on-disk checkpoint format. Bump on incompatible changes and
/// keep a loader (and a test) for the old one.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// File name of the tensor file inside a run directory.
pub const TENSORS_FILE: &str = twotower_model::run::CHECKPOINT_TENSORS_FILE;
/// File name of the metadata file inside a run directory.
pub const META_FILE: &str = twotower_model::run::CHECKPOINT_META_FILE;

/// Errors reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid checkpoint.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Shape, row-major.
    pub shape: Vec<usize>,
    /// Values, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

/// Where training stands, and what it has seen; enough to resume exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointMeta {
    /// [`CHECKPOINT_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// twotower version that wrote it.
    pub twotower_version: String,
    /// The full config document (after `--set` overrides).
    pub config: toml::Value,
    /// Directory relative data paths resolve against.
    pub base_dir: PathBuf,
    /// Training phase: `"search"` (with validation, early stopping) or `"refit"`.
    pub phase: String,
    /// Epochs completed in this phase.
    pub epoch: usize,
    /// Batches completed in the current (unfinished) epoch.
    pub batch_in_epoch: usize,
    /// Optimizer steps done in this phase.
    pub global_step: u64,
    /// Best validation value so far and its epoch (1-based), search phase.
    pub best: Option<(f64, usize)>,
    /// Epochs since the last improvement.
    pub epochs_without_improvement: usize,
    /// Whether this phase is finished (early stopped or out of epochs).
    pub finished: bool,
    /// One record per completed epoch, all phases.
    pub history: Vec<serde_json::Value>,
    /// Number of rows of each embedding table, to check the data matches on resume.
    pub table_rows: BTreeMap<String, usize>,
    /// A hash of the tensor file's bytes.
    pub tensors_hash: String,
    /// Training wall seconds up to this checkpoint, earlier processes
    /// included (0 in checkpoints written before it existed).
    #[serde(default)]
    pub train_seconds: f64,
    /// Main-batch training examples up to this checkpoint (as above).
    #[serde(default)]
    pub examples: u64,
    /// `Dataset::fingerprint` of the data being trained on (absent in
    /// checkpoints written before it existed): `--resume` on changed data is
    /// refused.
    #[serde(default)]
    pub data_fingerprint: Option<String>,
}

/// Stable 64-bit FNV-1a hash of bytes, hex.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_update(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn fnv_hex(bytes: &[u8]) -> String {
    format!("{:016x}", fnv_update(FNV_OFFSET, bytes))
}

/// Writes `tensors` and `meta` into `dir` atomically (tensors first).
///
/// # Errors
/// [`CheckpointError::Io`] on any file-system failure.
pub fn save(
    dir: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    meta: &mut CheckpointMeta,
) -> Result<(), CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tpath = dir.join(TENSORS_FILE);
    // streamed through the hash: the model and optimizer state (9 GB at 10M
    // items) are never copied, nor held as a file-sized buffer
    let named = named_f32(tensors);
    let mut hash = String::new();
    atomic_write(&tpath, |w| {
        let mut hw = FnvWriter::new(w);
        tensor_file::write(&mut hw, &named, None)?;
        hash = hw.hex();
        Ok(())
    })
    .map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidInput => CheckpointError::Format {
            path: tpath.clone(),
            message: source.to_string(),
        },
        _ => CheckpointError::Io {
            path: tpath.clone(),
            source,
        },
    })?;
    meta.tensors_hash = hash;
    let mpath = dir.join(META_FILE);
    atomic_write(&mpath, |w| {
        serde_json::to_writer_pretty(&mut *w, meta).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })
    .map_err(io(&mpath))?;
    Ok(())
}

/// Encodes named f32 tensors `(name, shape, values)` as a safetensors file
/// (little-endian). Shared by checkpoints and run directories.
///
/// # Errors
/// safetensors' message (e.g. a shape that does not match its values).
pub fn encode_f32_safetensors(tensors: &[(String, Vec<usize>, &[f32])]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    tensor_file::write(&mut out, &named_f32(tensors), None).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `(name, shape, values)` triples as [`NamedTensor`]s (borrowing the values).
pub fn named_f32<'a>(tensors: &'a [(String, Vec<usize>, &'a [f32])]) -> Vec<NamedTensor<'a>> {
    tensors
        .iter()
        .map(|(name, shape, data)| NamedTensor::f32(name.clone(), shape.clone(), data))
        .collect()
}

/// A writer that passes bytes on and keeps their FNV-1a 64 hash (the hash
/// [`fnv_hex`] computes of the whole file at load).
struct FnvWriter<W> {
    inner: W,
    h: u64,
}

impl<W: std::io::Write> FnvWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            h: FNV_OFFSET,
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.h)
    }
}

impl<W: std::io::Write> std::io::Write for FnvWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.h = fnv_update(self.h, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `dir` holds a checkpoint.
pub fn exists(dir: &Path) -> bool {
    twotower_model::run::checkpoint_exists(dir)
}

/// Reads a checkpoint: its metadata and every tensor by name.
///
/// # Errors
/// [`CheckpointError`] if a file is missing, unreadable, of another format
/// version, or the tensor file does not match the metadata.
pub fn load(dir: &Path) -> Result<(CheckpointMeta, BTreeMap<String, Tensor>), CheckpointError> {
    let mpath = dir.join(META_FILE);
    let text = std::fs::read_to_string(&mpath).map_err(|source| CheckpointError::Io {
        path: mpath.clone(),
        source,
    })?;
    let meta: CheckpointMeta =
        serde_json::from_str(&text).map_err(|e| CheckpointError::Format {
            path: mpath.clone(),
            message: format!("not a twotower checkpoint: {e}"),
        })?;
    if meta.format_version != CHECKPOINT_FORMAT_VERSION {
        return Err(CheckpointError::Format {
            path: mpath,
            message: format!(
                "checkpoint format version {} is not supported (this build reads {})",
                meta.format_version, CHECKPOINT_FORMAT_VERSION
            ),
        });
    }
    let tpath = dir.join(TENSORS_FILE);
    let bytes = std::fs::read(&tpath).map_err(|source| CheckpointError::Io {
        path: tpath.clone(),
        source,
    })?;
    if fnv_hex(&bytes) != meta.tensors_hash {
        return Err(CheckpointError::Format {
            path: tpath,
            message: "tensor file does not match checkpoint.json (interrupted write?)".into(),
        });
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| CheckpointError::Format {
        path: tpath.clone(),
        message: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::Format {
                path: tpath.clone(),
                message: format!("tensor {name}: dtype {:?}, expected F32", view.dtype()),
            });
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((meta, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CheckpointMeta {
        CheckpointMeta {
            format_version: CHECKPOINT_FORMAT_VERSION,
            twotower_version: "test".into(),
            config: toml::Value::Table(Default::default()),
            base_dir: PathBuf::from("."),
            phase: "search".into(),
            epoch: 2,
            batch_in_epoch: 0,
            global_step: 10,
            best: Some((0.25, 2)),
            epochs_without_improvement: 0,
            finished: false,
            history: vec![],
            table_rows: BTreeMap::new(),
            tensors_hash: String::new(),
            train_seconds: 1.5,
            examples: 640,
            data_fingerprint: Some("0123456789abcdef".into()),
        }
    }

    #[test]
    fn roundtrip_keeps_values_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let a = [1.5f32, -0.0, f32::MIN_POSITIVE, 3.25e-7];
        let b = [7.0f32; 6];
        let mut m = meta();
        save(
            dir.path(),
            &[
                ("model.a".into(), vec![2, 2], &a[..]),
                ("optim.b".into(), vec![3, 2], &b[..]),
            ],
            &mut m,
        )
        .unwrap();
        let (m2, t) = load(dir.path()).unwrap();
        assert_eq!(m2, m);
        assert_eq!(t["model.a"].shape, vec![2, 2]);
        let bits: Vec<u32> = t["model.a"].data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, a.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert_eq!(t["optim.b"].data, b.to_vec());
    }

    #[test]
    fn mismatched_tensor_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = meta();
        save(dir.path(), &[("x".into(), vec![1], &[1.0f32][..])], &mut m).unwrap();
        // Simulate a crash between the two renames: new tensors, old JSON.
        let mut m_other = meta();
        let other = tempfile::tempdir().unwrap();
        save(
            other.path(),
            &[("x".into(), vec![1], &[2.0f32][..])],
            &mut m_other,
        )
        .unwrap();
        std::fs::copy(
            other.path().join(TENSORS_FILE),
            dir.path().join(TENSORS_FILE),
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn other_format_version_is_rejected_with_both_versions_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = meta();
        save(dir.path(), &[("x".into(), vec![1], &[1.0f32][..])], &mut m).unwrap();
        let p = dir.path().join(META_FILE);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"format_version\": 1", "\"format_version\": 99");
        std::fs::write(&p, text).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("99") && err.contains("reads 1"), "{err}");
    }
}
