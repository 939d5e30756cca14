//! Vectors out: item and user embeddings in formats other tools read.
//!
//! An export directory holds (every file written atomically: temp file +
//! rename, the manifest last, so that a fresh directory with a manifest is a
//! complete export; re-exporting into the same directory replaces the files
//! one by one):
//!
//! | file | content |
//! |---|---|
//! | `item_vectors.npy` | `[n_items × d]` f32, little-endian, C order, NumPy format 1.0 |
//! | `user_vectors.npy` | `[n_users × d]` idem |
//! | `item_ids.txt` | one item id per line, in row order (`\n` after each) |
//! | `user_ids.txt` | one user id per line, in row order |
//! | `vectors.safetensors` | tensors `item_vectors`, `user_vectors` (F32) |
//! | `manifest.json` | [`ExportManifest`] |
//!
//! NumPy reads the vectors with `numpy.load("item_vectors.npy")`; the format
//! is the one of `numpy/lib/format.py` (magic `\x93NUMPY`, version 1.0, a
//! Python-literal header dict padded with spaces to a multiple of 64 bytes
//! and ended by `\n`), and the files are byte-identical to what `numpy.save`
//! writes for the same float32 array (checked against numpy 2.4.6 for shapes
//! (2, 3), (7, 1), (0, 8), (1682, 64), (123456, 5); the safetensors file was
//! read back by the Python `safetensors` package). The writer and
//! [`read_npy_f32`] are implemented here (the `ndarray-npy` release of the
//! time required ndarray 0.17; the workspace pins 0.16).

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2, ShapeBuilder};
use serde::{Deserialize, Serialize};

use crate::tensor_file::{self, row_major, NamedTensor};
use crate::util::{atomic_write, atomic_write_bytes};

/// Version of the export layout written by this library. Readers accept
/// every version up to this one.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// Tolerance on `|‖v‖ − 1|` for the manifest to say `normalized: "l2"`.
pub const NORM_TOL: f32 = 1e-3;

/// File names inside an export directory.
pub const ITEM_VECTORS_NPY: &str = "item_vectors.npy";
/// See [`ITEM_VECTORS_NPY`].
pub const USER_VECTORS_NPY: &str = "user_vectors.npy";
/// See [`ITEM_VECTORS_NPY`].
pub const ITEM_IDS_TXT: &str = "item_ids.txt";
/// See [`ITEM_VECTORS_NPY`].
pub const USER_IDS_TXT: &str = "user_ids.txt";
/// See [`ITEM_VECTORS_NPY`].
pub const VECTORS_SAFETENSORS: &str = "vectors.safetensors";
/// See [`ITEM_VECTORS_NPY`].
pub const MANIFEST_JSON: &str = "manifest.json";

/// Errors of the export module.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Rows of vectors and ids disagree.
    #[error("{side}: {rows} vectors but {ids} ids")]
    IdCount {
        /// `"item"` or `"user"`.
        side: &'static str,
        /// Vector rows.
        rows: usize,
        /// Ids given.
        ids: usize,
    },
    /// An id cannot be written one per line, or is repeated.
    #[error("{side} id #{index} {id:?}: {problem}")]
    BadId {
        /// `"item"` or `"user"`.
        side: &'static str,
        /// Row of the id.
        index: usize,
        /// The id.
        id: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Item and user vectors have different dimensions.
    #[error("item vectors have dimension {item_dim}, user vectors {user_dim}")]
    DimMismatch {
        /// Columns of the item matrix.
        item_dim: usize,
        /// Columns of the user matrix.
        user_dim: usize,
    },
    /// A vector holds NaN or ±∞.
    #[error("{side} vector {row} has a non-finite value at column {col}")]
    NonFinite {
        /// `"item"` or `"user"`.
        side: &'static str,
        /// Row.
        row: usize,
        /// Column.
        col: usize,
    },
    /// A `.npy` file is malformed or not a 2-D little-endian f32 array.
    #[error("{path}: {problem}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong, with what was expected.
        problem: String,
    },
    /// The safetensors file could not be built or read.
    #[error("{path}: safetensors: {problem}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The crate's message.
        problem: String,
    },
    /// The manifest is not valid JSON for [`ExportManifest`].
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error (line and column inside).
        source: serde_json::Error,
    },
    /// The export was written by a newer format.
    #[error("{path}: export format version {got}, this library reads up to {supported}")]
    Version {
        /// The manifest.
        path: PathBuf,
        /// Its `format_version`.
        got: u32,
        /// [`EXPORT_FORMAT_VERSION`].
        supported: u32,
    },
    /// The files of an export disagree with its manifest.
    #[error("{path}: {problem}")]
    Inconsistent {
        /// The file that disagrees.
        path: PathBuf,
        /// How.
        problem: String,
    },
}

/// Names of the files of an export, relative to its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFiles {
    /// `item_vectors.npy`.
    pub item_vectors: String,
    /// `user_vectors.npy`.
    pub user_vectors: String,
    /// `item_ids.txt`.
    pub item_ids: String,
    /// `user_ids.txt`.
    pub user_ids: String,
    /// `vectors.safetensors`.
    pub safetensors: String,
}

impl Default for ExportFiles {
    fn default() -> Self {
        Self {
            item_vectors: ITEM_VECTORS_NPY.into(),
            user_vectors: USER_VECTORS_NPY.into(),
            item_ids: ITEM_IDS_TXT.into(),
            user_ids: USER_IDS_TXT.into(),
            safetensors: VECTORS_SAFETENSORS.into(),
        }
    }
}

/// `manifest.json` of an export directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// [`EXPORT_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Vector dimension d.
    pub dim: usize,
    /// Element type: `"float32"` (little-endian).
    pub dtype: String,
    /// `"l2"` when every row has unit L2 norm (within [`NORM_TOL`]) — then
    /// the inner product is the cosine — else `"none"`.
    pub normalized: String,
    /// Rows of `item_vectors` (= lines of `item_ids.txt`).
    pub n_items: usize,
    /// Rows of `user_vectors` (= lines of `user_ids.txt`).
    pub n_users: usize,
    /// Free text from the caller: model version, run directory, config hash…
    pub model_info: String,
    /// twotower version that wrote the export.
    pub library_version: String,
    /// File names.
    pub files: ExportFiles,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_ids(side: &'static str, rows: usize, ids: &[String]) -> Result<(), ExportError> {
    if rows != ids.len() {
        return Err(ExportError::IdCount {
            side,
            rows,
            ids: ids.len(),
        });
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let problem = if id.is_empty() {
            Some("is empty")
        } else if id.contains(['\n', '\r']) {
            Some("contains a line break")
        } else if !seen.insert(id.as_str()) {
            Some("is repeated")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ExportError::BadId {
                side,
                index,
                id: id.clone(),
                problem,
            });
        }
    }
    Ok(())
}

/// Checks finiteness; returns whether every row is unit-norm.
fn check_vectors(side: &'static str, v: ArrayView2<f32>) -> Result<bool, ExportError> {
    let mut unit = true;
    for (row, r) in v.rows().into_iter().enumerate() {
        if let Some(col) = r.iter().position(|x| !x.is_finite()) {
            return Err(ExportError::NonFinite { side, row, col });
        }
        let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        unit &= (norm - 1.0).abs() <= NORM_TOL;
    }
    Ok(unit)
}

/// The NumPy format-1.0 header of a C-order `<f4` array `[rows × cols]`,
/// byte for byte as `numpy.save` writes it (numpy/lib/format.py, 1.24+ and
/// 2.x): the dict, `21 − len(str(rows))` spare spaces (room to grow the
/// first axis in place), then spaces and `\n` up to a multiple of 64 bytes
/// (a full 64 more when already aligned, as numpy does).
fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    const ARRAY_ALIGN: usize = 64;
    const GROWTH_AXIS_MAX_DIGITS: usize = 21;
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let digits = rows.to_string().len();
    header.extend(std::iter::repeat_n(
        ' ',
        GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits),
    ));
    let hlen = header.len() + 1; // + '\n'
    let padlen = ARRAY_ALIGN - ((6 + 2 + 2 + hlen) % ARRAY_ALIGN);
    let header_len = hlen + padlen;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    // A 2-D f32 header is < 200 bytes: always fits format 1.0's u16.
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.resize(10 + header_len - 1, b' ');
    out.push(b'\n');
    out
}

/// Writes `v` as a NumPy `.npy` file (format 1.0, `<f4`, C order), atomically.
///
/// # Shapes
/// `v`: `[rows × cols]`, any strides (written in logical row-major order).
///
/// # Errors
/// [`ExportError::Io`].
pub fn write_npy_f32(path: &Path, v: ArrayView2<f32>) -> Result<(), ExportError> {
    atomic_write(path, |w| {
        w.write_all(&npy_header(v.nrows(), v.ncols()))?;
        let mut buf = Vec::with_capacity(v.ncols() * 4);
        for row in v.rows() {
            buf.clear();
            for x in row.iter() {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
    .map_err(io_err(path))
}

fn write_ids(path: &Path, ids: &[String]) -> Result<(), ExportError> {
    atomic_write(path, |w| {
        for id in ids {
            w.write_all(id.as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
    .map_err(io_err(path))
}

/// Writes an export directory (see the module docs) and returns its manifest.
///
/// # Shapes
/// `item_vecs`: `[n_items × d]`, `item_ids`: `[n_items]`;
/// `user_vecs`: `[n_users × d]`, `user_ids`: `[n_users]`.
///
/// # Errors
/// [`ExportError::IdCount`], [`ExportError::BadId`] (empty, line break,
/// repeated), [`ExportError::DimMismatch`], [`ExportError::NonFinite`],
/// [`ExportError::Io`], [`ExportError::Safetensors`]. Nothing is written
/// when the input is rejected.
pub fn export_vectors(
    dir: &Path,
    item_vecs: ArrayView2<f32>,
    item_ids: &[String],
    user_vecs: ArrayView2<f32>,
    user_ids: &[String],
    model_info: &str,
) -> Result<ExportManifest, ExportError> {
    if item_vecs.ncols() != user_vecs.ncols() {
        return Err(ExportError::DimMismatch {
            item_dim: item_vecs.ncols(),
            user_dim: user_vecs.ncols(),
        });
    }
    check_ids("item", item_vecs.nrows(), item_ids)?;
    check_ids("user", user_vecs.nrows(), user_ids)?;
    let items_unit = check_vectors("item", item_vecs)?;
    let users_unit = check_vectors("user", user_vecs)?;

    let files = ExportFiles::default();
    let manifest = ExportManifest {
        format_version: EXPORT_FORMAT_VERSION,
        dim: item_vecs.ncols(),
        dtype: "float32".into(),
        normalized: if items_unit && users_unit {
            "l2"
        } else {
            "none"
        }
        .into(),
        n_items: item_vecs.nrows(),
        n_users: user_vecs.nrows(),
        model_info: model_info.into(),
        library_version: env!("CARGO_PKG_VERSION").into(),
        files: files.clone(),
    };

    write_npy_f32(&dir.join(&files.item_vectors), item_vecs)?;
    write_npy_f32(&dir.join(&files.user_vectors), user_vecs)?;
    write_ids(&dir.join(&files.item_ids), item_ids)?;
    write_ids(&dir.join(&files.user_ids), user_ids)?;

    let st_path = dir.join(&files.safetensors);
    // streamed: no little-endian copy of the vectors, no file-sized buffer
    let (items_c, users_c) = (row_major(item_vecs), row_major(user_vecs));
    let tensors = [
        NamedTensor::f32(
            "item_vectors",
            vec![item_vecs.nrows(), item_vecs.ncols()],
            &items_c,
        ),
        NamedTensor::f32(
            "user_vectors",
            vec![user_vecs.nrows(), user_vecs.ncols()],
            &users_c,
        ),
    ];
    let meta: std::collections::BTreeMap<String, String> = [
        (
            "format_version".to_string(),
            EXPORT_FORMAT_VERSION.to_string(),
        ),
        ("normalized".to_string(), manifest.normalized.clone()),
        ("model_info".to_string(), model_info.to_string()),
    ]
    .into_iter()
    .collect();
    atomic_write(&st_path, |w| {
        tensor_file::write(w, &tensors, Some(&meta)).map(|_| ())
    })
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => ExportError::Safetensors {
            path: st_path.clone(),
            problem: e.to_string(),
        },
        _ => io_err(&st_path)(e),
    })?;

    let m_path = dir.join(MANIFEST_JSON);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|source| ExportError::Json {
        path: m_path.clone(),
        source,
    })?;
    atomic_write_bytes(&m_path, &json).map_err(io_err(&m_path))?;
    Ok(manifest)
}

/// Finds `'key':` (or `"key":`) in a NumPy header dict; returns the rest.
fn npy_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    for q in ['\'', '"'] {
        let pat = format!("{q}{key}{q}");
        if let Some(p) = dict.find(&pat) {
            let rest = dict[p + pat.len()..].trim_start();
            return rest.strip_prefix(':').map(str::trim_start);
        }
    }
    None
}

/// Reads a 2-D `<f4` `.npy` file (format 1.0, 2.0 or 3.0; C or Fortran
/// order) into a row-major `[rows × cols]` array.
///
/// # Errors
/// [`ExportError::Io`]; [`ExportError::Npy`] naming what is wrong: magic,
/// version, header, dtype other than `<f4`, a shape that is not 2-D, or a
/// data length different from `rows · cols · 4` bytes.
pub fn read_npy_f32(path: &Path) -> Result<Array2<f32>, ExportError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let bad = |problem: String| ExportError::Npy {
        path: path.to_path_buf(),
        problem,
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(
            "not a .npy file: expected the magic bytes \\x93NUMPY".into()
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => {
            return Err(bad(format!(
                "format version {major}.{minor}, expected 1.0, 2.0 or 3.0"
            )))
        }
    };
    let data_start = start + header_len;
    if bytes.len() < data_start {
        return Err(bad(format!(
            "header of {header_len} bytes announced, file has {} bytes",
            bytes.len()
        )));
    }
    let dict = std::str::from_utf8(&bytes[start..data_start])
        .map_err(|_| bad("header is not UTF-8/ASCII".into()))?;

    let descr =
        npy_value(dict, "descr").ok_or_else(|| bad(format!("header has no 'descr': {dict:?}")))?;
    let descr = descr
        .trim_start_matches(['\'', '"'])
        .split(['\'', '"'])
        .next()
        .unwrap_or("");
    if descr != "<f4" {
        return Err(bad(format!(
            "dtype {descr:?}, expected '<f4' (little-endian float32)"
        )));
    }
    let fortran = npy_value(dict, "fortran_order")
        .ok_or_else(|| bad(format!("header has no 'fortran_order': {dict:?}")))?;
    let fortran = if fortran.starts_with("True") {
        true
    } else if fortran.starts_with("False") {
        false
    } else {
        return Err(bad(format!(
            "fortran_order is neither True nor False in {dict:?}"
        )));
    };
    let shape =
        npy_value(dict, "shape").ok_or_else(|| bad(format!("header has no 'shape': {dict:?}")))?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(format!("shape is not a tuple in {dict:?}")))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(format!("shape ({inner}) is not a tuple of integers")))?;
    let [rows, cols] = dims[..] else {
        return Err(bad(format!(
            "shape ({inner}) has {} dimensions, expected 2",
            dims.len()
        )));
    };
    let data = &bytes[data_start..];
    let want = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| bad(format!("shape ({rows}, {cols}) overflows")))?;
    if data.len() != want {
        return Err(bad(format!(
            "{} data bytes, expected {want} for shape ({rows}, {cols}) of float32",
            data.len()
        )));
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let arr = if fortran {
        Array2::from_shape_vec((rows, cols).f(), values)
            .map(|a| a.as_standard_layout().into_owned())
    } else {
        Array2::from_shape_vec((rows, cols), values)
    };
    arr.map_err(|e| bad(format!("shape ({rows}, {cols}): {e}")))
}

/// Reads and version-checks `dir/manifest.json`.
///
/// # Errors
/// [`ExportError::Io`], [`ExportError::Json`], [`ExportError::Version`]
/// (written by a newer format).
pub fn read_manifest(dir: &Path) -> Result<ExportManifest, ExportError> {
    let path = dir.join(MANIFEST_JSON);
    let text = std::fs::read(&path).map_err(io_err(&path))?;
    let m: ExportManifest = serde_json::from_slice(&text).map_err(|source| ExportError::Json {
        path: path.clone(),
        source,
    })?;
    if m.format_version > EXPORT_FORMAT_VERSION || m.format_version == 0 {
        return Err(ExportError::Version {
            path,
            got: m.format_version,
            supported: EXPORT_FORMAT_VERSION,
        });
    }
    Ok(m)
}

/// An export read back: vectors and ids in row order.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedExport {
    /// The manifest.
    pub manifest: ExportManifest,
    /// `[n_items × d]`.
    pub item_vectors: Array2<f32>,
    /// `[n_items]`.
    pub item_ids: Vec<String>,
    /// `[n_users × d]`.
    pub user_vectors: Array2<f32>,
    /// `[n_users]`.
    pub user_ids: Vec<String>,
}

fn read_ids(path: &Path) -> Result<Vec<String>, ExportError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// Loads an export directory (the `.npy` files and ids) and checks it
/// against its manifest.
///
/// # Errors
/// Those of [`read_manifest`] and [`read_npy_f32`];
/// [`ExportError::Inconsistent`] when shapes or id counts disagree with the
/// manifest.
pub fn load_export(dir: &Path) -> Result<LoadedExport, ExportError> {
    let manifest = read_manifest(dir)?;
    let f = &manifest.files;
    let item_vectors = read_npy_f32(&dir.join(&f.item_vectors))?;
    let user_vectors = read_npy_f32(&dir.join(&f.user_vectors))?;
    let item_ids = read_ids(&dir.join(&f.item_ids))?;
    let user_ids = read_ids(&dir.join(&f.user_ids))?;
    let checks = [
        (
            &f.item_vectors,
            item_vectors.dim(),
            (manifest.n_items, manifest.dim),
        ),
        (
            &f.user_vectors,
            user_vectors.dim(),
            (manifest.n_users, manifest.dim),
        ),
        (
            &f.item_ids,
            (item_ids.len(), manifest.dim),
            (manifest.n_items, manifest.dim),
        ),
        (
            &f.user_ids,
            (user_ids.len(), manifest.dim),
            (manifest.n_users, manifest.dim),
        ),
    ];
    for (file, got, want) in checks {
        if got != want {
            return Err(ExportError::Inconsistent {
                path: dir.join(file),
                problem: format!("shape/rows {got:?}, the manifest says {want:?}"),
            });
        }
    }
    Ok(LoadedExport {
        manifest,
        item_vectors,
        item_ids,
        user_vectors,
        user_ids,
    })
}
