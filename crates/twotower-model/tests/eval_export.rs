//! Vector export (export.rs): NumPy/safetensors/ids/manifest files, read back.

use std::fs;

use ndarray::{array, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors};
use twotower_model::export::{
    export_vectors, load_export, read_manifest, read_npy_f32, write_npy_f32, ExportError,
    ExportManifest, EXPORT_FORMAT_VERSION,
};

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// The header `numpy.save` (numpy 2.4.6) writes for a C-order float32 array
/// of shape (2, 3): 128 bytes in all = magic, version 1.0, header length
/// 0x76 = 118, the dict, spaces, '\n'.
fn numpy_header_2x3() -> Vec<u8> {
    let mut h = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
    h.extend_from_slice(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
    h.resize(127, b' ');
    h.push(b'\n');
    h
}

#[test]
fn export_hand_made_files_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    // unit rows: [0.6, 0.8, 0], [0, 0, 1]; users [1, 0, 0], [0, 0.6, 0.8], [0, 1, 0]
    let items = array![[0.6f32, 0.8, 0.0], [0.0, 0.0, 1.0]];
    let users = array![[1.0f32, 0.0, 0.0], [0.0, 0.6, 0.8], [0.0, 1.0, 0.0]];
    let item_ids = vec!["movie 7".to_string(), "007".to_string()];
    let user_ids = ids("u", 3);
    let m = export_vectors(
        &out,
        items.view(),
        &item_ids,
        users.view(),
        &user_ids,
        "run-1 epoch 3",
    )
    .unwrap();
    assert_eq!(
        (
            m.format_version,
            m.dim,
            m.n_items,
            m.n_users,
            m.normalized.as_str(),
            m.dtype.as_str()
        ),
        (1, 3, 2, 3, "l2", "float32")
    );
    assert_eq!(m.model_info, "run-1 epoch 3");

    // Exactly the six files, no temporary left behind.
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "item_ids.txt",
            "item_vectors.npy",
            "manifest.json",
            "user_ids.txt",
            "user_vectors.npy",
            "vectors.safetensors"
        ]
    );

    // .npy: numpy's exact header, then 6 little-endian f32 in C order.
    let bytes = fs::read(out.join("item_vectors.npy")).unwrap();
    assert_eq!(&bytes[..128], &numpy_header_2x3()[..]);
    let mut data = Vec::new();
    for x in [0.6f32, 0.8, 0.0, 0.0, 0.0, 1.0] {
        data.extend_from_slice(&x.to_le_bytes());
    }
    assert_eq!(&bytes[128..], &data[..]);
    assert_eq!(read_npy_f32(&out.join("item_vectors.npy")).unwrap(), items);
    assert_eq!(read_npy_f32(&out.join("user_vectors.npy")).unwrap(), users);

    // ids: one per line, row order, kept exactly as given ("007" stays "007").
    assert_eq!(
        fs::read_to_string(out.join("item_ids.txt")).unwrap(),
        "movie 7\n007\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("user_ids.txt")).unwrap(),
        "u0\nu1\nu2\n"
    );

    // safetensors: both tensors, F32, the same bytes; metadata.
    let st = fs::read(out.join("vectors.safetensors")).unwrap();
    let t = SafeTensors::deserialize(&st).unwrap();
    let iv = t.tensor("item_vectors").unwrap();
    assert_eq!((iv.dtype(), iv.shape()), (Dtype::F32, &[2usize, 3][..]));
    assert_eq!(iv.data(), &data[..]);
    assert_eq!(t.tensor("user_vectors").unwrap().shape(), &[3, 3]);
    let (_, meta) = SafeTensors::read_metadata(&st).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["normalized"], "l2");
    assert_eq!(meta["format_version"], "1");

    // manifest and the whole export read back.
    assert_eq!(read_manifest(&out).unwrap(), m);
    let back = load_export(&out).unwrap();
    assert_eq!(back.manifest, m);
    assert_eq!(back.item_vectors, items);
    assert_eq!(back.user_vectors, users);
    assert_eq!(back.item_ids, item_ids);
    assert_eq!(back.user_ids, user_ids);

    // Not unit-norm → "none".
    let m = export_vectors(
        &out,
        (&items * 2.0).view(),
        &item_ids,
        users.view(),
        &user_ids,
        "",
    )
    .unwrap();
    assert_eq!(m.normalized, "none");
}

#[test]
fn random_export_round_trips_bit_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let items = Array2::from_shape_fn((1000, 64), |_| rng.gen_range(-3.0f32..3.0));
    let users = Array2::from_shape_fn((257, 64), |_| rng.gen_range(-3.0f32..3.0));
    let dir = tempfile::tempdir().unwrap();
    // A transposed (non-contiguous) view is written in logical row order.
    let users_t = users.t().to_owned();
    let m = export_vectors(
        dir.path(),
        items.view(),
        &ids("i", 1000),
        users_t.t(),
        &ids("u", 257),
        "x",
    )
    .unwrap();
    assert_eq!((m.n_items, m.n_users, m.dim), (1000, 257, 64));
    let back = load_export(dir.path()).unwrap();
    assert_eq!(back.item_vectors, items);
    assert_eq!(back.user_vectors, users);
    // Header for a 4-digit first axis: 21 − 4 spare spaces, still 128 bytes in all.
    let bytes = fs::read(dir.path().join("item_vectors.npy")).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 118);
    assert!(bytes[10..128]
        .starts_with(b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 64), }"));
    assert_eq!(bytes.len(), 128 + 1000 * 64 * 4);
}

#[test]
fn bad_input_is_rejected_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e");
    let v = array![[1.0f32, 0.0], [0.0, 1.0]];
    let two = ids("a", 2);
    let err = export_vectors(&out, v.view(), &ids("a", 3), v.view(), &two, "").unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::IdCount {
                side: "item",
                rows: 2,
                ids: 3
            }
        ),
        "{err}"
    );
    let err = export_vectors(
        &out,
        v.view(),
        &two,
        v.view(),
        &["x".into(), "y\nz".into()],
        "",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::BadId {
                side: "user",
                index: 1,
                problem: "contains a line break",
                ..
            }
        ),
        "{err}"
    );
    let err = export_vectors(
        &out,
        v.view(),
        &["k".into(), "k".into()],
        v.view(),
        &two,
        "",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::BadId {
                side: "item",
                index: 1,
                problem: "is repeated",
                ..
            }
        ),
        "{err}"
    );
    let err =
        export_vectors(&out, v.view(), &["".into(), "k".into()], v.view(), &two, "").unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::BadId {
                index: 0,
                problem: "is empty",
                ..
            }
        ),
        "{err}"
    );
    let mut nan = v.clone();
    nan[[1, 1]] = f32::NAN;
    let err = export_vectors(&out, v.view(), &two, nan.view(), &two, "").unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::NonFinite {
                side: "user",
                row: 1,
                col: 1
            }
        ),
        "{err}"
    );
    let wide = Array2::<f32>::zeros((2, 3));
    let err = export_vectors(&out, v.view(), &two, wide.view(), &two, "").unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::DimMismatch {
                item_dim: 2,
                user_dim: 3
            }
        ),
        "{err}"
    );
    assert!(!out.exists(), "nothing written for rejected input");
}

/// Builds a .npy file by hand: format `major`, a header dict, raw data.
fn handmade_npy(major: u8, dict: &str, data: &[f32]) -> Vec<u8> {
    let mut h = dict.to_string();
    h.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(h.as_bytes());
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

#[test]
fn npy_reader_accepts_fortran_order_and_v2_and_names_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    // Fortran order, shape (2, 3), data column by column: 1 4 | 2 5 | 3 6
    // → rows [1, 2, 3], [4, 5, 6].
    fs::write(
        &p,
        handmade_npy(
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            &[1., 4., 2., 5., 3., 6.],
        ),
    )
    .unwrap();
    assert_eq!(
        read_npy_f32(&p).unwrap(),
        array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]
    );
    // Format 2.0 (u32 header length), double-quoted keys.
    fs::write(
        &p,
        handmade_npy(
            2,
            r#"{"descr": "<f4", "fortran_order": False, "shape": (1, 2)}"#,
            &[7., 8.],
        ),
    )
    .unwrap();
    assert_eq!(read_npy_f32(&p).unwrap(), array![[7.0f32, 8.0]]);

    let expect_err = |bytes: Vec<u8>, needle: &str| {
        fs::write(&p, bytes).unwrap();
        let e = read_npy_f32(&p).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ExportError::Npy { .. }), "{msg}");
        assert!(
            msg.contains("a.npy") && msg.contains(needle),
            "{msg} lacks {needle:?}"
        );
    };
    expect_err(b"PK\x03\x04 not numpy".to_vec(), "magic");
    expect_err(
        handmade_npy(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }",
            &[0., 0.],
        ),
        "'<f4'",
    );
    expect_err(
        handmade_npy(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
            &[0.; 4],
        ),
        "expected 2",
    );
    expect_err(
        handmade_npy(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
            &[0.; 3],
        ),
        "12 data bytes, expected 16",
    );
    expect_err(handmade_npy(4, "{}", &[]), "version 4.0");
    let missing = dir.path().join("missing.npy");
    assert!(matches!(
        read_npy_f32(&missing).unwrap_err(),
        ExportError::Io { .. }
    ));
    // write_npy_f32 + read_npy_f32 of an empty matrix
    write_npy_f32(&p, Array2::<f32>::zeros((0, 4)).view()).unwrap();
    assert_eq!(read_npy_f32(&p).unwrap().dim(), (0, 4));
}

/// Compatibility: a manifest exactly as format version 1 writes it must keep
/// loading; a newer version is refused with a clear error.
#[test]
fn manifest_v1_still_loads_and_newer_versions_are_refused() {
    const V1: &str = r#"{
  "format_version": 1,
  "dim": 2,
  "dtype": "float32",
  "normalized": "l2",
  "n_items": 2,
  "n_users": 1,
  "model_info": "frozen v1 fixture",
  "library_version": "0.1.0",
  "files": {
    "item_vectors": "item_vectors.npy",
    "user_vectors": "user_vectors.npy",
    "item_ids": "item_ids.txt",
    "user_ids": "user_ids.txt",
    "safetensors": "vectors.safetensors"
  }
}"#;
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("manifest.json"), V1).unwrap();
    write_npy_f32(
        &dir.path().join("item_vectors.npy"),
        array![[1.0f32, 0.0], [0.0, 1.0]].view(),
    )
    .unwrap();
    write_npy_f32(
        &dir.path().join("user_vectors.npy"),
        array![[0.6f32, 0.8]].view(),
    )
    .unwrap();
    fs::write(dir.path().join("item_ids.txt"), "a\nb\n").unwrap();
    fs::write(dir.path().join("user_ids.txt"), "u\n").unwrap();
    let m: ExportManifest = read_manifest(dir.path()).unwrap();
    assert_eq!(
        (m.format_version, m.model_info.as_str()),
        (1, "frozen v1 fixture")
    );
    let e = load_export(dir.path()).unwrap();
    assert_eq!(e.item_ids, ["a", "b"]);
    assert_eq!(e.user_vectors, array![[0.6f32, 0.8]]);

    // ids disagreeing with the manifest
    fs::write(dir.path().join("user_ids.txt"), "u\nv\n").unwrap();
    assert!(matches!(
        load_export(dir.path()).unwrap_err(),
        ExportError::Inconsistent { .. }
    ));

    let newer = V1.replace(
        "\"format_version\": 1",
        &format!("\"format_version\": {}", EXPORT_FORMAT_VERSION + 1),
    );
    fs::write(dir.path().join("manifest.json"), newer).unwrap();
    assert!(matches!(
        read_manifest(dir.path()).unwrap_err(),
        ExportError::Version {
            got: 2,
            supported: 1,
            ..
        }
    ));
    fs::write(dir.path().join("manifest.json"), "{\"format_version\": 1,").unwrap();
    assert!(matches!(
        read_manifest(dir.path()).unwrap_err(),
        ExportError::Json { .. }
    ));
}
