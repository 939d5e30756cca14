//! Gradient checks (GRADIENTS.md): every hand-written backward pass against
//! central finite differences, in f64, through the same generic code that
//! trains in f32.
//!
//! Criterion: relative error `|g − ĝ| / max(1e-8, |g| + |ĝ|) < 1e-4` for every
//! checked entry. `ĝ` is the fourth-order central difference
//! `(−L(x+2h) + 8L(x+h) − 8L(x−h) + L(x−2h)) / 12h` with `h = 1e-3`
//! (truncation error O(h⁴) ≈ 1e-12, rounding ≈ 1e-13, so that even small
//! gradients are resolved).

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use twotower_model::embedding::{
    embedding_bag_backward, embedding_bag_forward, EmbeddingTable, SparseGrad,
};
use twotower_model::layers::{
    l2_normalize_backward, l2_normalize_forward, relu_backward, relu_forward, Linear, LinearGrad,
};
use twotower_model::loss::{
    in_batch_softmax, info_nce, info_nce_symmetric, CellMask, SoftmaxWorkspace,
};
use twotower_model::model::{LossConfig, MainBatch, ModelGrads, SslBatch, TwoTower, Workspace};
use twotower_model::tower::{
    FeatureColumn, FeatureSpec, MaskEmbedding, TowerBatch, TowerCache, TowerSpec,
};

const H: f64 = 1e-3;

/// Fourth-order central difference of `f` at 0.
fn fd(mut f: impl FnMut(f64) -> f64) -> f64 {
    (-f(2.0 * H) + 8.0 * f(H) - 8.0 * f(-H) + f(-2.0 * H)) / (12.0 * H)
}

fn rel_err(g: f64, n: f64) -> f64 {
    (g - n).abs() / (g.abs() + n.abs()).max(1e-8)
}

fn assert_close(label: &str, g: f64, n: f64) {
    let r = rel_err(g, n);
    assert!(
        r < 1e-4,
        "{label}: analytic {g:e} vs numeric {n:e} (relative error {r:e})"
    );
}

fn random(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || rng.gen_range(-1.0..1.0))
}

/// Checks every entry of `x` (perturbed in place) against `grad`.
fn check_entries(
    label: &str,
    x: &mut [f64],
    grad: &[f64],
    mut loss: impl FnMut(&[f64]) -> f64,
) -> usize {
    assert_eq!(x.len(), grad.len());
    for i in 0..x.len() {
        let orig = x[i];
        let n = fd(|d| {
            x[i] = orig + d;
            let l = loss(x);
            x[i] = orig;
            l
        });
        assert_close(&format!("{label}[{i}]"), grad[i], n);
    }
    x.len()
}

// ---------------------------------------------------------------- ops

/// Bags: repeated ids (1,1,2), an empty bag, a masked row, a long bag with a repeat.
const BAG_OFFSETS: [u32; 5] = [0, 3, 3, 4, 8];
const BAG_VALUES: [u32; 8] = [1, 1, 2, 3, 0, 4, 4, 4];

fn bag_loss(
    table: &EmbeddingTable<f64>,
    masked: &[bool],
    mask: Option<&[f64]>,
    r: &Array2<f64>,
) -> f64 {
    let mut out = Array2::zeros((4, table.dim));
    embedding_bag_forward(
        table,
        &BAG_OFFSETS,
        &BAG_VALUES,
        masked,
        mask,
        out.view_mut(),
    );
    (&out * r).sum()
}

#[test]
fn embedding_bag_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let r = random(&mut rng, (4, 3));
    for (masked, learned) in [
        (vec![], false),
        (vec![false, false, true, false], false),
        (vec![false, false, true, false], true),
    ] {
        let table = EmbeddingTable::<f64>::normal(5, 3, 0.5, &mut rng);
        let mut mask: Vec<f64> = (0..3).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut g = SparseGrad::new(3);
        let mut mg = vec![0.0; 3];
        embedding_bag_backward(
            &BAG_OFFSETS,
            &BAG_VALUES,
            &masked,
            r.view(),
            &mut g,
            learned.then_some(&mut mg[..]),
        );
        // Dense view of the sparse gradient (rows not held are 0).
        let mut dense = vec![0.0; 15];
        for (row, vals) in g.iter() {
            dense[row as usize * 3..row as usize * 3 + 3].copy_from_slice(vals);
        }
        // Row 1 occurs twice in bag 0 and is summed into one slot.
        assert_eq!(g.rows.iter().filter(|&&x| x == 1).count(), 1);
        if !masked.is_empty() {
            // Row 3 only occurs in the masked row: the table gets nothing.
            assert!(g.get(3).is_none());
        }
        let label = format!(
            "bag table (masked {}, learned {learned})",
            !masked.is_empty()
        );
        let m = mask.clone();
        let data = &mut table.data.clone();
        check_entries(&label, data, &dense, |x| {
            let t = EmbeddingTable {
                rows: 5,
                dim: 3,
                data: x.to_vec(),
            };
            bag_loss(&t, &masked, learned.then_some(&m[..]), &r)
        });
        if learned {
            check_entries("bag mask vector", &mut mask, &mg, |x| {
                bag_loss(&table, &masked, Some(x), &r)
            });
        }
    }
}

#[test]
fn linear_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut layer = Linear::<f64>::glorot_uniform(3, 2, &mut rng);
    layer.b = Array1::from(vec![0.3, -0.2]);
    let mut x = random(&mut rng, (4, 3));
    let r = random(&mut rng, (4, 2));
    let mut g = LinearGrad::zeros(3, 2);
    let mut dx = Array2::zeros((4, 3));
    layer.backward(x.view(), r.view(), Some(dx.view_mut()), &mut g);
    let loss = |l: &Linear<f64>, x: &Array2<f64>| {
        let mut y = Array2::zeros((4, 2));
        l.forward(x.view(), y.view_mut());
        (&y * &r).sum()
    };
    let l0 = layer.clone();
    check_entries(
        "linear dX",
        x.as_slice_mut().unwrap(),
        dx.as_slice().unwrap(),
        |v| loss(&l0, &Array2::from_shape_vec((4, 3), v.to_vec()).unwrap()),
    );
    let xx = x.clone();
    let mut w = layer.w.clone();
    check_entries(
        "linear dW",
        w.as_slice_mut().unwrap(),
        g.dw.as_slice().unwrap(),
        |v| {
            let l = Linear {
                w: Array2::from_shape_vec((3, 2), v.to_vec()).unwrap(),
                b: l0.b.clone(),
            };
            loss(&l, &xx)
        },
    );
    let mut b = layer.b.clone();
    check_entries(
        "linear db",
        b.as_slice_mut().unwrap(),
        g.db.as_slice().unwrap(),
        |v| {
            let l = Linear {
                w: l0.w.clone(),
                b: Array1::from(v.to_vec()),
            };
            loss(&l, &xx)
        },
    );
}

#[test]
fn relu_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Keep inputs away from the kink (|x| ≥ 0.1 ≫ 2h).
    let mut x = random(&mut rng, (3, 4)).mapv(|v| if v.abs() < 0.1 { v + 0.2 } else { v });
    let r = random(&mut rng, (3, 4));
    let mut y = x.clone();
    relu_forward(y.view_mut());
    let mut d = r.clone();
    relu_backward(y.view(), d.view_mut());
    assert!(d.iter().any(|&v| v == 0.0) && d.iter().any(|&v| v != 0.0));
    check_entries(
        "relu",
        x.as_slice_mut().unwrap(),
        d.as_slice().unwrap(),
        |v| {
            let mut y = Array2::from_shape_vec((3, 4), v.to_vec()).unwrap();
            relu_forward(y.view_mut());
            (&y * &r).sum()
        },
    );
}

#[test]
fn l2_normalize_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut x = random(&mut rng, (3, 4));
    let r = random(&mut rng, (3, 4));
    let mut y = Array2::zeros((3, 4));
    let mut n = vec![0.0; 3];
    l2_normalize_forward(x.view(), y.view_mut(), &mut n);
    let mut dx = Array2::zeros((3, 4));
    l2_normalize_backward(y.view(), &n, r.view(), dx.view_mut());
    check_entries(
        "l2 normalize",
        x.as_slice_mut().unwrap(),
        dx.as_slice().unwrap(),
        |v| {
            let x = Array2::from_shape_vec((3, 4), v.to_vec()).unwrap();
            let mut y = Array2::zeros((3, 4));
            let mut n = vec![0.0; 3];
            l2_normalize_forward(x.view(), y.view_mut(), &mut n);
            (&y * &r).sum()
        },
    );
}

#[test]
fn in_batch_softmax_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // B = 4 rows, C = 6 columns (2 mixed negatives). Items: row 0 and row 2 share
    // item 1 (accidental hit both ways); mixed negative column 4 is item 3 = row
    // 1's positive; column 5 is a fresh item.
    let ids = [1u32, 3, 1, 5, 3, 9];
    let log_q: Vec<f64> = [0.3, 0.1, 0.3, 0.05, 0.1, 0.01]
        .iter()
        .map(|p: &f64| p.ln())
        .collect();
    let weights = [1.0, 0.5, 2.0, 1.0];
    // False negatives: row 0 masks column 3, row 2 masks columns 1 and 5, row
    // 3 lists its own positive (ignored: the positive is never masked).
    let fn_offsets = [0u32, 1, 1, 3, 4];
    let fn_cols = [3u32, 1, 5, 3];
    let fneg = CellMask {
        offsets: &fn_offsets,
        cols: &fn_cols,
    };
    for (mask, lq, w, tau, cells) in [
        (true, &log_q[..], &weights[..], 0.5, CellMask::NONE),
        (false, &log_q[..], &[][..], 1.0, CellMask::NONE),
        (true, &[][..], &weights[..], 0.2, CellMask::NONE),
        (true, &log_q[..], &weights[..], 0.5, fneg),
    ] {
        let mut u = random(&mut rng, (4, 3));
        let mut v = random(&mut rng, (6, 3));
        let mut ws = SoftmaxWorkspace::new();
        let mut du = Array2::zeros((4, 3));
        let mut dv = Array2::zeros((6, 3));
        in_batch_softmax(
            u.view(),
            v.view(),
            &ids,
            lq,
            w,
            tau,
            mask,
            cells,
            du.view_mut(),
            dv.view_mut(),
            &mut ws,
        );
        let label = format!(
            "softmax (mask {mask}, false negatives {}, logq {}, weights {}, τ {tau})",
            !cells.offsets.is_empty(),
            !lq.is_empty(),
            !w.is_empty()
        );
        let v0 = v.clone();
        check_entries(
            &format!("{label} du"),
            u.as_slice_mut().unwrap(),
            du.as_slice().unwrap(),
            |x| {
                let u = Array2::from_shape_vec((4, 3), x.to_vec()).unwrap();
                let (mut a, mut b) = (Array2::zeros((4, 3)), Array2::zeros((6, 3)));
                in_batch_softmax(
                    u.view(),
                    v0.view(),
                    &ids,
                    lq,
                    w,
                    tau,
                    mask,
                    cells,
                    a.view_mut(),
                    b.view_mut(),
                    &mut SoftmaxWorkspace::new(),
                )
            },
        );
        let u0 = u.clone();
        check_entries(
            &format!("{label} dv"),
            v.as_slice_mut().unwrap(),
            dv.as_slice().unwrap(),
            |x| {
                let v = Array2::from_shape_vec((6, 3), x.to_vec()).unwrap();
                let (mut a, mut b) = (Array2::zeros((4, 3)), Array2::zeros((6, 3)));
                in_batch_softmax(
                    u0.view(),
                    v.view(),
                    &ids,
                    lq,
                    w,
                    tau,
                    mask,
                    cells,
                    a.view_mut(),
                    b.view_mut(),
                    &mut SoftmaxWorkspace::new(),
                )
            },
        );
    }
}

#[test]
fn info_nce_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for symmetric in [false, true] {
        let f = if symmetric {
            info_nce_symmetric::<f64>
        } else {
            info_nce::<f64>
        };
        let mut z1 = random(&mut rng, (3, 4));
        let mut z2 = random(&mut rng, (3, 4));
        let tau = 0.3;
        let (mut d1, mut d2) = (Array2::zeros((3, 4)), Array2::zeros((3, 4)));
        f(
            z1.view(),
            z2.view(),
            tau,
            d1.view_mut(),
            d2.view_mut(),
            &mut SoftmaxWorkspace::new(),
        );
        let z20 = z2.clone();
        check_entries(
            &format!("info_nce (symmetric {symmetric}) dz1"),
            z1.as_slice_mut().unwrap(),
            d1.as_slice().unwrap(),
            |x| {
                let z = Array2::from_shape_vec((3, 4), x.to_vec()).unwrap();
                let (mut a, mut b) = (Array2::zeros((3, 4)), Array2::zeros((3, 4)));
                f(
                    z.view(),
                    z20.view(),
                    tau,
                    a.view_mut(),
                    b.view_mut(),
                    &mut SoftmaxWorkspace::new(),
                )
            },
        );
        let z10 = z1.clone();
        check_entries(
            &format!("info_nce (symmetric {symmetric}) dz2"),
            z2.as_slice_mut().unwrap(),
            d2.as_slice().unwrap(),
            |x| {
                let z = Array2::from_shape_vec((3, 4), x.to_vec()).unwrap();
                let (mut a, mut b) = (Array2::zeros((3, 4)), Array2::zeros((3, 4)));
                f(
                    z10.view(),
                    z.view(),
                    tau,
                    a.view_mut(),
                    b.view_mut(),
                    &mut SoftmaxWorkspace::new(),
                )
            },
        );
    }
}

// ---------------------------------------------------------------- full model

struct Columns {
    offsets: Vec<Vec<u32>>,
    values: Vec<Vec<u32>>,
}

impl Columns {
    fn cols(&self) -> Vec<FeatureColumn<'_>> {
        self.offsets
            .iter()
            .zip(&self.values)
            .map(|(o, v)| FeatureColumn {
                offsets: o,
                values: v,
                weights: &[],
            })
            .collect()
    }
}

/// CSR column from per-entity bags.
fn csr(bags: &[&[u32]]) -> (Vec<u32>, Vec<u32>) {
    let mut off = vec![0u32];
    let mut val = Vec::new();
    for b in bags {
        val.extend_from_slice(b);
        off.push(val.len() as u32);
    }
    (off, val)
}

fn tiny_model(item_mask: MaskEmbedding, seed: u64) -> TwoTower<f64> {
    let user = TowerSpec {
        features: vec![
            FeatureSpec {
                name: "user_id".into(),
                vocab_size: 6,
                dim: 3,
            },
            FeatureSpec {
                name: "occupation".into(),
                vocab_size: 3,
                dim: 2,
            },
        ],
        hidden: vec![5, 4],
        out_dim: 3,
        mask_embedding: MaskEmbedding::Zero,
    };
    let item = TowerSpec {
        features: vec![
            FeatureSpec {
                name: "item_id".into(),
                vocab_size: 8,
                dim: 3,
            },
            FeatureSpec {
                name: "genres".into(),
                vocab_size: 5,
                dim: 2,
            },
        ],
        hidden: vec![4],
        out_dim: 3,
        mask_embedding: item_mask,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = TwoTower::new(user, item, &mut rng).unwrap();
    // Non-zero biases and mask vectors so that their gradients are exercised off zero.
    for l in m.user.layers.iter_mut().chain(m.item.layers.iter_mut()) {
        l.b.mapv_inplace(|_| rng.gen_range(-0.1..0.1));
    }
    for v in m.item.mask_vectors.iter_mut() {
        v.iter_mut().for_each(|x| *x = rng.gen_range(-0.5..0.5));
    }
    m
}

struct Fixture {
    main: MainBatch<f64>,
    ssl: SslBatch,
}

fn fixture() -> Fixture {
    // Users: id column (entity e → row e+1; entity 4 → OOV row 0), occupation.
    let (uo0, uv0) = csr(&[&[1], &[2], &[3], &[4], &[0]]);
    let (uo1, uv1) = csr(&[&[1], &[2], &[1], &[0], &[2]]);
    let users = Columns {
        offsets: vec![uo0, uo1],
        values: vec![uv0, uv1],
    };
    // Items: id column, multi-valued genres (item 2 has none; item 5 repeats genre 3).
    let (io0, iv0) = csr(&[&[1], &[2], &[3], &[4], &[5], &[6], &[7]]);
    let (io1, iv1) = csr(&[&[1, 2], &[3], &[], &[1, 4], &[2], &[3, 3, 1], &[4]]);
    let items = Columns {
        offsets: vec![io0, io1],
        values: vec![iv0, iv1],
    };

    let mut main = MainBatch::<f64>::default();
    main.users.gather(&users.cols(), &[0, 1, 2, 4]);
    // Positives [1, 3, 1, 5] (item 1 twice: accidental hit), mixed negatives [3, 6]
    // (3 = row 1's positive: masked for row 1).
    let cand = [1u32, 3, 1, 5, 3, 6];
    main.items.gather(&items.cols(), &cand);
    main.item_ids = cand.to_vec();
    main.log_q = [0.2, 0.1, 0.2, 0.05, 0.1, 0.02]
        .iter()
        .map(|p: &f64| p.ln())
        .collect();
    main.weights = vec![1.0, 0.5, 2.0, 1.5];

    // SSL: items [0, 2, 5]; view 1 masks item_id of row 0 and drops a genre of
    // row 2; view 2 masks genres of row 1 and row 2's item_id.
    let mut ssl = SslBatch::default();
    ssl.view1.gather(&items.cols(), &[0, 2, 5]);
    ssl.view2.gather(&items.cols(), &[0, 2, 5]);
    ssl.view1.features[0].masked = vec![true, false, false];
    ssl.view1.features[0].offsets = vec![0, 0, 1, 2];
    ssl.view1.features[0].values = vec![3, 6];
    // genres of view 1: [1,2] | [] | [3,1] (one of the two 3s dropped)
    ssl.view1.features[1].offsets = vec![0, 2, 2, 4];
    ssl.view1.features[1].values = vec![1, 2, 3, 1];
    ssl.view2.features[1].masked = vec![false, true, false];
    ssl.view2.features[0].masked = vec![false, false, true];
    Fixture { main, ssl }
}

fn cfg() -> LossConfig<f64> {
    LossConfig {
        temperature: 0.5,
        mask_accidental_hits: true,
        ssl_temperature: 0.3,
        ssl_weight: 0.7,
        ssl_stop_gradient: false,
        ssl_symmetric: false,
    }
}

fn total_loss(model: &TwoTower<f64>, fx: &Fixture, with_ssl: bool, cfg: &LossConfig<f64>) -> f64 {
    let mut ws = Workspace::default();
    let mut g = ModelGrads::new(model);
    model
        .loss_and_grads(&fx.main, with_ssl.then_some(&fx.ssl), cfg, &mut ws, &mut g)
        .total
}

/// The analytic gradient of tensor `name` in the layout of `named_tensors`
/// (embedding tables dense, rows not held by the sparse gradient = 0).
fn analytic(model: &TwoTower<f64>, grads: &ModelGrads<f64>, name: &str) -> Vec<f64> {
    let (side, rest) = name.split_once('.').unwrap();
    let (tower, g) = if side == "user" {
        (&model.user, &grads.user)
    } else {
        (&model.item, &grads.item)
    };
    let fidx = |f: &str| {
        tower
            .spec
            .features
            .iter()
            .position(|s| s.name == f)
            .unwrap()
    };
    if let Some(f) = rest.strip_prefix("emb.") {
        let i = fidx(f);
        let t = &tower.tables[i];
        let mut d = vec![0.0; t.rows * t.dim];
        for (r, v) in g.tables[i].iter() {
            d[r as usize * t.dim..(r as usize + 1) * t.dim].copy_from_slice(v);
        }
        d
    } else if let Some(f) = rest.strip_prefix("mask.") {
        g.mask_vectors[fidx(f)].clone()
    } else {
        let (i, which) = rest.strip_prefix("mlp.").unwrap().split_once('.').unwrap();
        let l = &g.layers[i.parse::<usize>().unwrap()];
        if which == "w" {
            l.dw.as_slice().unwrap().to_vec()
        } else {
            l.db.as_slice().unwrap().to_vec()
        }
    }
}

/// Checks every entry of every parameter tensor of the model; returns
/// (entries checked, embedding entries with a non-zero gradient).
fn check_model(model: TwoTower<f64>, fx: &Fixture, with_ssl: bool, label: &str) -> (usize, usize) {
    check_model_with(model, fx, with_ssl, label, &cfg())
}

/// [`check_model`] under the loss configuration `cfg` (α must be 0.7).
fn check_model_with(
    mut model: TwoTower<f64>,
    fx: &Fixture,
    with_ssl: bool,
    label: &str,
    cfg: &LossConfig<f64>,
) -> (usize, usize) {
    let cfg = *cfg;
    let mut ws = Workspace::default();
    let mut grads = ModelGrads::new(&model);
    // Run twice with the same workspace: buffers reused, grads re-zeroed.
    model.loss_and_grads(
        &fx.main,
        with_ssl.then_some(&fx.ssl),
        &cfg,
        &mut ws,
        &mut grads,
    );
    let parts = model.loss_and_grads(
        &fx.main,
        with_ssl.then_some(&fx.ssl),
        &cfg,
        &mut ws,
        &mut grads,
    );
    assert!((parts.total - (parts.main + 0.7 * parts.ssl)).abs() < 1e-12);
    assert_eq!(parts.ssl == 0.0, !with_ssl);
    let names: Vec<String> = model
        .named_tensors()
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    let (mut checked, mut nonzero_emb) = (0, 0);
    for name in names {
        let g = analytic(&model, &grads, &name);
        if name.contains(".emb.") {
            nonzero_emb += g.iter().filter(|&&x| x != 0.0).count();
        }
        for (i, &gi) in g.iter().enumerate() {
            let orig = model.tensor_mut(&name).unwrap()[i];
            let n = fd(|d| {
                model.tensor_mut(&name).unwrap()[i] = orig + d;
                let l = total_loss(&model, fx, with_ssl, &cfg);
                model.tensor_mut(&name).unwrap()[i] = orig;
                l
            });
            assert_close(&format!("{label}: {name}[{i}]"), gi, n);
            checked += 1;
        }
    }
    (checked, nonzero_emb)
}

#[test]
fn full_loss_main_only() {
    let fx = fixture();
    let (checked, nonzero) =
        check_model(tiny_model(MaskEmbedding::Zero, 11), &fx, false, "main only");
    // user: 6·3 + 3·2 + (5·5+5) + (5·4+4) + (4·3+3) = 18+6+30+24+15 = 93;
    // item: 8·3 + 5·2 + (5·4+4) + (4·3+3) = 24+10+24+15 = 73
    assert_eq!(checked, 166);
    assert!(nonzero > 20, "{nonzero}");
}

#[test]
fn full_loss_with_ssl_zero_mask() {
    let fx = fixture();
    let (checked, _) = check_model(
        tiny_model(MaskEmbedding::Zero, 12),
        &fx,
        true,
        "ssl, zero mask",
    );
    assert_eq!(checked, 166);
}

#[test]
fn full_loss_with_ssl_learned_mask() {
    let fx = fixture();
    let (checked, _) = check_model(
        tiny_model(MaskEmbedding::Learned, 13),
        &fx,
        true,
        "ssl, learned mask",
    );
    // + item mask vectors 3 + 2
    assert_eq!(checked, 171);
}

#[test]
fn full_loss_with_symmetric_ssl() {
    // `ssl_symmetric` routes the views through `info_nce_symmetric`: every
    // entry against finite differences, and the SSL loss is the mean of the
    // two directions, each computed here on the tower outputs.
    let fx = fixture();
    let sym = LossConfig {
        ssl_symmetric: true,
        ..cfg()
    };
    let model = tiny_model(MaskEmbedding::Learned, 16);
    let mut ws = Workspace::default();
    let mut g = ModelGrads::new(&model);
    let p = model.loss_and_grads(&fx.main, Some(&fx.ssl), &sym, &mut ws, &mut g);
    let (z1, z2) = (ws.ssl1.output().to_owned(), ws.ssl2.output().to_owned());
    let mut d = (Array2::zeros(z1.dim()), Array2::zeros(z1.dim()));
    let mut sw = SoftmaxWorkspace::default();
    let l12 = info_nce(
        z1.view(),
        z2.view(),
        0.3,
        d.0.view_mut(),
        d.1.view_mut(),
        &mut sw,
    );
    let l21 = info_nce(
        z2.view(),
        z1.view(),
        0.3,
        d.0.view_mut(),
        d.1.view_mut(),
        &mut sw,
    );
    assert!(
        (p.ssl - 0.5 * (l12 + l21)).abs() < 1e-12,
        "{} vs {l12}, {l21}",
        p.ssl
    );
    assert!(
        (l12 - l21).abs() > 1e-6,
        "the two directions must differ here"
    );
    let (checked, _) = check_model_with(model, &fx, true, "ssl, symmetric", &sym);
    assert_eq!(checked, 171);
}

#[test]
fn ssl_gradient_is_weighted_sum_of_passes() {
    // grads(main + α·ssl) − grads(main) = α · grads(ssl alone) on the item tower:
    // compare α = 0.7 against α = 1.4 (the SSL part doubles, the main part stays).
    let fx = fixture();
    let model = tiny_model(MaskEmbedding::Learned, 14);
    let run = |alpha: f64| {
        let c = LossConfig {
            ssl_weight: alpha,
            ..cfg()
        };
        let mut ws = Workspace::default();
        let mut g = ModelGrads::new(&model);
        let p = model.loss_and_grads(&fx.main, Some(&fx.ssl), &c, &mut ws, &mut g);
        (p, g.item.layers[0].dw.clone(), g.user.layers[0].dw.clone())
    };
    let (p0, i0, u0) = run(0.0);
    let (p1, i1, u1) = run(0.7);
    let (p2, i2, u2) = run(1.4);
    assert_eq!(u0, u1);
    assert_eq!(u1, u2);
    assert!((p1.ssl - p2.ssl).abs() < 1e-15 && (p0.main - p2.main).abs() < 1e-15);
    assert!((p2.total - (p2.main + 1.4 * p2.ssl)).abs() < 1e-12);
    let lhs = &i2 - &i0;
    let rhs = (&i1 - &i0) * 2.0;
    assert!((&lhs - &rhs).iter().all(|x| x.abs() < 1e-12));
    assert!(lhs.iter().any(|x| x.abs() > 1e-6));
}

#[test]
fn ssl_stop_gradient_treats_view_2_as_a_constant_target() {
    // With `ssl_stop_gradient` the item tower's gradient is that of
    // L_sg(θ) = L_main(θ) + α · InfoNCE(z′(θ), z″(θ₀)): view 2's vectors are
    // computed once at θ₀ and held fixed. Every item-tower entry is checked
    // against finite differences of exactly that function, and the user
    // tower is unchanged.
    let fx = fixture();
    let mut model = tiny_model(MaskEmbedding::Learned, 15);
    let c = LossConfig {
        ssl_stop_gradient: true,
        ..cfg()
    };
    let mut ws = Workspace::default();
    let mut grads = ModelGrads::new(&model);
    let parts = model.loss_and_grads(&fx.main, Some(&fx.ssl), &c, &mut ws, &mut grads);
    let mut full = ModelGrads::new(&model);
    let full_parts = model.loss_and_grads(&fx.main, Some(&fx.ssl), &cfg(), &mut ws, &mut full);
    // the loss value does not depend on where the gradient stops
    assert_eq!(parts, full_parts);
    assert_eq!(grads.user.layers[0].dw, full.user.layers[0].dw);

    let mut cache = TowerCache::default();
    model.item.forward(&fx.ssl.view2, &mut cache);
    let z2 = cache.output().to_owned();
    let l_sg = |m: &TwoTower<f64>| {
        let mut ws = Workspace::default();
        let mut g = ModelGrads::new(m);
        let main = m.loss_and_grads(&fx.main, None, &c, &mut ws, &mut g).main;
        let mut c1 = TowerCache::default();
        m.item.forward(&fx.ssl.view1, &mut c1);
        let (n, d) = z2.dim();
        let (mut d1, mut d2) = (Array2::zeros((n, d)), Array2::zeros((n, d)));
        let l = info_nce(
            c1.output(),
            z2.view(),
            c.ssl_temperature,
            d1.view_mut(),
            d2.view_mut(),
            &mut SoftmaxWorkspace::default(),
        );
        main + c.ssl_weight * l
    };
    assert!((l_sg(&model) - parts.total).abs() < 1e-12);
    let names: Vec<String> = model
        .named_tensors()
        .into_iter()
        .map(|(n, _, _)| n)
        .filter(|n| n.starts_with("item."))
        .collect();
    let (mut checked, mut differs) = (0, 0);
    for name in names {
        let g = analytic(&model, &grads, &name);
        let g_full = analytic(&model, &full, &name);
        for (i, &gi) in g.iter().enumerate() {
            let orig = model.tensor_mut(&name).unwrap()[i];
            let n = fd(|d| {
                model.tensor_mut(&name).unwrap()[i] = orig + d;
                let l = l_sg(&model);
                model.tensor_mut(&name).unwrap()[i] = orig;
                l
            });
            assert_close(&format!("stop-gradient: {name}[{i}]"), gi, n);
            differs += usize::from((gi - g_full[i]).abs() > 1e-6);
            checked += 1;
        }
    }
    // item: 8·3 + 5·2 + (5·4+4) + (4·3+3) + mask vectors 3 + 2
    assert_eq!(checked, 78);
    // item 0's id row (row 1) is read by view 2 only (view 1 masks it, the
    // main batch never holds item 0): its SSL gradient is gone, not smaller
    let item_id = analytic(&model, &grads, "item.emb.item_id");
    assert!(item_id[3..6].iter().all(|&x| x == 0.0), "{item_id:?}");
    assert!(analytic(&model, &full, "item.emb.item_id")[3..6]
        .iter()
        .any(|&x| x.abs() > 1e-6));
    assert!(differs > 10, "{differs}");
}

#[test]
fn gather_rejects_nothing_silently_and_tower_batch_len() {
    let (o, v) = csr(&[&[1], &[2, 3]]);
    let cols = [FeatureColumn {
        offsets: &o,
        values: &v,
        weights: &[],
    }];
    let mut b = TowerBatch::default();
    b.gather(&cols, &[1, 1, 0]);
    assert_eq!(b.len(), 3);
    assert_eq!(b.features[0].offsets, vec![0, 2, 4, 5]);
    assert_eq!(b.features[0].values, vec![2, 3, 2, 3, 1]);
}
