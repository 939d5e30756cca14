//! Writing safetensors files as a stream, without a copy of the tensors.
//!
//! `safetensors::tensor::serialize` needs every tensor as a byte slice and
//! returns the whole file as one `Vec<u8>`: written that way, a model of
//! 9 GB (a 10M-item embedding table with its Adam moments) needs 9 GB of
//! little-endian copies plus a 9 GB file buffer on top of itself — the
//! out-of-memory kill after the first epoch at 10M items. [`write()`] produces
//! the same bytes (checked against the crate in the tests below) while
//! holding only a 64 KiB conversion buffer: the header first, then each
//! tensor converted to little-endian in chunks, straight into the writer
//! (an [`crate::util::atomic_write`] temp file, or a hashing writer).
//!
//! # Format (safetensors, <https://github.com/huggingface/safetensors>)
//! `u64` little-endian header length N, N bytes of JSON (`{"__metadata__":
//! {...}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [a, b]},
//! ...}` padded with spaces to a multiple of 8), then the tensors' bytes,
//! back to back, in the order of the header: dtype alignment descending,
//! then name ascending (the crate's order). Metadata keys are written in
//! ascending order (the crate writes a `HashMap`'s order, which varies
//! from run to run when there is more than one key).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

use ndarray::ArrayView2;
use safetensors::tensor::TensorInfo;
use safetensors::Dtype;

/// Writes a tensor's values, little-endian, to the writer it is given.
pub type WriteValues<'a> = &'a (dyn Fn(&mut dyn Write) -> io::Result<()> + Sync);

/// The values of one tensor, borrowed, in row-major order.
#[derive(Clone, Copy)]
pub enum TensorData<'a> {
    /// `F32` values.
    F32(&'a [f32]),
    /// `U32` values.
    U32(&'a [u32]),
    /// `I64` values.
    I64(&'a [i64]),
    /// `len` values of type `dtype` (`F32`, `U32` or `I64`) produced by a
    /// callback that writes exactly their little-endian bytes — values that
    /// are never in memory at once (a streamed train split). A callback
    /// writing another number of bytes is an `InvalidData` error.
    Generated {
        /// The element type.
        dtype: Dtype,
        /// Number of values.
        len: usize,
        /// Writes them.
        write: WriteValues<'a>,
    },
}

impl std::fmt::Debug for TensorData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}[{}]", self.dtype(), self.len())
    }
}

impl TensorData<'_> {
    fn dtype(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::U32(_) => Dtype::U32,
            TensorData::I64(_) => Dtype::I64,
            TensorData::Generated { dtype, .. } => *dtype,
        }
    }

    fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::U32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Generated { len, .. } => *len,
        }
    }

    fn byte_len(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// Writes the values little-endian through a fixed buffer.
    fn write_le<W: Write>(&self, w: &mut W, buf: &mut Vec<u8>) -> io::Result<()> {
        fn chunked<T: Copy, const N: usize, W: Write>(
            v: &[T],
            w: &mut W,
            buf: &mut Vec<u8>,
            le: impl Fn(T) -> [u8; N],
        ) -> io::Result<()> {
            for chunk in v.chunks(CHUNK_BYTES / N) {
                buf.clear();
                for &x in chunk {
                    buf.extend_from_slice(&le(x));
                }
                w.write_all(buf)?;
            }
            Ok(())
        }
        match self {
            TensorData::F32(v) => chunked(v, w, buf, f32::to_le_bytes),
            TensorData::U32(v) => chunked(v, w, buf, u32::to_le_bytes),
            TensorData::I64(v) => chunked(v, w, buf, i64::to_le_bytes),
            TensorData::Generated { write, .. } => {
                let mut counted = Counted { inner: w, bytes: 0 };
                write(&mut counted)?;
                if counted.bytes != self.byte_len() as u64 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "a generated tensor wrote {} bytes, its {} values are {} bytes",
                            counted.bytes,
                            self.len(),
                            self.byte_len()
                        ),
                    ));
                }
                Ok(())
            }
        }
    }
}

const CHUNK_BYTES: usize = 64 * 1024;

/// A writer that counts the bytes through it.
struct Counted<'w, W: Write> {
    inner: &'w mut W,
    bytes: u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One named tensor: `shape`'s product must equal the number of values.
#[derive(Debug, Clone)]
pub struct NamedTensor<'a> {
    /// Its name in the file.
    pub name: String,
    /// Its shape (row-major).
    pub shape: Vec<usize>,
    /// Its values.
    pub data: TensorData<'a>,
}

impl<'a> NamedTensor<'a> {
    /// An `F32` tensor.
    pub fn f32(name: impl Into<String>, shape: Vec<usize>, data: &'a [f32]) -> Self {
        Self {
            name: name.into(),
            shape,
            data: TensorData::F32(data),
        }
    }
}

/// The values of `v` in row-major order, for a [`TensorData::F32`]:
/// borrowed when `v` is laid out so (as `encode_all`'s arrays are), copied
/// otherwise.
pub fn row_major(v: ArrayView2<'_, f32>) -> Cow<'_, [f32]> {
    match v.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(v.iter().copied().collect()),
    }
}

/// Writes `tensors` (and `metadata`, if any) to `w` as a safetensors file
/// and returns the number of bytes written.
///
/// # Errors
/// `InvalidInput` naming the tensor when a shape does not match its
/// values or two tensors share a name; the writer's own errors.
pub fn write<W: Write>(
    w: &mut W,
    tensors: &[NamedTensor<'_>],
    metadata: Option<&BTreeMap<String, String>>,
) -> io::Result<u64> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    for t in tensors {
        let values: usize = t.shape.iter().product();
        if values != t.data.len() {
            return Err(invalid(format!(
                "tensor {}: shape {:?} holds {values} values, data has {}",
                t.name,
                t.shape,
                t.data.len()
            )));
        }
    }
    let mut order: Vec<&NamedTensor> = tensors.iter().collect();
    order.sort_by(|a, b| {
        b.data
            .dtype()
            .cmp(&a.data.dtype())
            .then(a.name.cmp(&b.name))
    });
    if let Some(pair) = order.windows(2).find(|p| p[0].name == p[1].name) {
        return Err(invalid(format!("tensor {}: name used twice", pair[0].name)));
    }
    let json = |e: serde_json::Error| invalid(e.to_string());
    let mut header = String::from("{");
    if let Some(m) = metadata {
        header.push_str("\"__metadata__\":");
        header.push_str(&serde_json::to_string(m).map_err(json)?);
    }
    let mut offset = 0usize;
    for (i, t) in order.iter().enumerate() {
        if i > 0 || metadata.is_some() {
            header.push(',');
        }
        let n = t.data.byte_len();
        let info = TensorInfo {
            dtype: t.data.dtype(),
            shape: t.shape.clone(),
            data_offsets: (offset, offset + n),
        };
        offset += n;
        header.push_str(&serde_json::to_string(&t.name).map_err(json)?);
        header.push(':');
        header.push_str(&serde_json::to_string(&info).map_err(json)?);
    }
    header.push('}');
    let mut header = header.into_bytes();
    header.resize(header.len().div_ceil(8) * 8, b' ');
    w.write_all(&(header.len() as u64).to_le_bytes())?;
    w.write_all(&header)?;
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    for t in &order {
        t.data.write_le(w, &mut buf)?;
    }
    Ok((8 + header.len() + offset) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use std::collections::HashMap;

    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }

    /// The crate's `serialize` of the same tensors: the bytes to match.
    fn reference(tensors: &[NamedTensor<'_>], meta: Option<&BTreeMap<String, String>>) -> Vec<u8> {
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|t| match t.data {
                TensorData::F32(v) => le(v, f32::to_le_bytes),
                TensorData::U32(v) => le(v, u32::to_le_bytes),
                TensorData::I64(v) => le(v, i64::to_le_bytes),
                TensorData::Generated { write, .. } => {
                    let mut b = Vec::new();
                    write(&mut b).unwrap();
                    b
                }
            })
            .collect();
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .zip(&bytes)
            .map(|(t, b)| {
                (
                    t.name.clone(),
                    TensorView::new(t.data.dtype(), t.shape.clone(), b).unwrap(),
                )
            })
            .collect();
        let meta: Option<HashMap<String, String>> =
            meta.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        safetensors::tensor::serialize(views, &meta).unwrap()
    }

    fn ours(tensors: &[NamedTensor<'_>], meta: Option<&BTreeMap<String, String>>) -> Vec<u8> {
        let mut out = Vec::new();
        let n = write(&mut out, tensors, meta).unwrap();
        assert_eq!(n as usize, out.len());
        out
    }

    #[test]
    fn same_bytes_as_the_crate() {
        // names out of order, three dtypes, an empty tensor, a chunk boundary
        // crossed (20_000 f32 = 80 kB > 64 KiB), header lengths that need
        // padding and one that does not
        let big: Vec<f32> = (0..20_000).map(|i| (i as f32).sin()).collect();
        let small = [1.5f32, -0.0, f32::MIN_POSITIVE, 3.25e7, -1e-8, 0.1];
        let ids = [7u32, 0, u32::MAX];
        let ts = [-1i64, 0, i64::MAX, 1_700_000_000];
        let cases: Vec<Vec<NamedTensor>> = vec![
            vec![NamedTensor::f32("w", vec![2, 3], &small)],
            vec![
                NamedTensor::f32("user.b", vec![6], &small),
                NamedTensor::f32("item.emb", vec![10_000, 2], &big),
                NamedTensor {
                    name: "train.item".into(),
                    shape: vec![3],
                    data: TensorData::U32(&ids),
                },
                NamedTensor {
                    name: "train.timestamp".into(),
                    shape: vec![4],
                    data: TensorData::I64(&ts),
                },
                NamedTensor::f32("a.empty", vec![0, 4], &[]),
                NamedTensor::f32("name with \"quotes\" and é", vec![1, 6], &small),
            ],
            vec![],
        ];
        for tensors in &cases {
            assert_eq!(ours(tensors, None), reference(tensors, None));
            // one metadata key: the crate's order is then fixed too
            let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
            assert_eq!(ours(tensors, Some(&meta)), reference(tensors, Some(&meta)));
        }
        // the file reads back with the crate
        let bytes = ours(&cases[1], None);
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            st.tensor("item.emb").unwrap().data(),
            le(&big, f32::to_le_bytes)
        );
        assert_eq!(st.tensor("train.timestamp").unwrap().dtype(), Dtype::I64);
    }

    #[test]
    fn metadata_keys_are_sorted() {
        let meta: BTreeMap<String, String> = [("b", "2"), ("a", "1"), ("c", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bytes = ours(&[NamedTensor::f32("x", vec![1], &[1.0])], Some(&meta));
        let text = String::from_utf8_lossy(&bytes[8..]);
        assert!(
            text.starts_with(r#"{"__metadata__":{"a":"1","b":"2","c":"3"},"x":"#),
            "{text}"
        );
        let st = safetensors::SafeTensors::read_metadata(&bytes).unwrap().1;
        assert_eq!(st.metadata().as_ref().unwrap().len(), 3);
    }

    #[test]
    fn bad_shapes_and_names_are_refused() {
        let e = write(
            &mut Vec::new(),
            &[NamedTensor::f32("emb", vec![2, 2], &[1.0, 2.0, 3.0])],
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            "tensor emb: shape [2, 2] holds 4 values, data has 3"
        );
        let e = write(
            &mut Vec::new(),
            &[
                NamedTensor::f32("w", vec![1], &[1.0]),
                NamedTensor::f32("w", vec![1], &[2.0]),
            ],
            None,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "tensor w: name used twice");
    }

    #[test]
    fn row_major_borrows_standard_layout_and_copies_others() {
        let a =
            ndarray::Array2::from_shape_vec((2, 3), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert!(matches!(row_major(a.view()), Cow::Borrowed(_)));
        // the transpose is column-major in memory: copied in logical row order
        let t = row_major(a.t());
        assert!(matches!(t, Cow::Owned(_)));
        assert_eq!(&*t, &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn generated_values_write_the_bytes_of_their_slice() {
        let (users, stamps) = ([3u32, 1, 4, 1, 5], [-9i64, 0, 7]);
        let slices = [
            NamedTensor {
                name: "u".into(),
                shape: vec![5],
                data: TensorData::U32(&users),
            },
            NamedTensor {
                name: "t".into(),
                shape: vec![3],
                data: TensorData::I64(&stamps),
            },
        ];
        // the callbacks write their values in pieces, as a stream would
        let wu = |w: &mut dyn Write| -> io::Result<()> {
            for c in users.chunks(2) {
                w.write_all(&le(c, u32::to_le_bytes))?;
            }
            Ok(())
        };
        let wt = |w: &mut dyn Write| w.write_all(&le(&stamps, i64::to_le_bytes));
        let generated = [
            NamedTensor {
                name: "u".into(),
                shape: vec![5],
                data: TensorData::Generated {
                    dtype: Dtype::U32,
                    len: 5,
                    write: &wu,
                },
            },
            NamedTensor {
                name: "t".into(),
                shape: vec![3],
                data: TensorData::Generated {
                    dtype: Dtype::I64,
                    len: 3,
                    write: &wt,
                },
            },
        ];
        assert_eq!(ours(&generated, None), reference(&slices, None));
        // a callback that writes too little is an error, not a short file
        let short = |w: &mut dyn Write| w.write_all(&[0u8; 4]);
        let e = write(
            &mut Vec::new(),
            &[NamedTensor {
                name: "u".into(),
                shape: vec![2],
                data: TensorData::Generated {
                    dtype: Dtype::U32,
                    len: 2,
                    write: &short,
                },
            }],
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("wrote 4 bytes"), "{e}");
    }
}
