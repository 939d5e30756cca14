//! Comparison reports: hand-computed popularity-bin recall, mean ± sample
//! std, the Markdown table's numbers, run-file parsing, variant parsing and
//! the plots (PNG header, SVG text).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use twotower::eval::{evaluate, EvalConfig, EvalError, EvalSet, Scorer};
use twotower_report::{
    build_report, mean_std, parse_variant, popularity_bin_counts, popularity_bins,
    recall_by_popularity_decile, render_markdown, BinCounts, EpochLoss, ReportError, ReportInput,
    RunBins, RunResult, Summary, VariantSpec,
};

/// A fixed `[n_users × n_items]` score matrix.
struct Fixed {
    n_items: usize,
    scores: Vec<Vec<f32>>,
}

impl Scorer for Fixed {
    fn n_items(&self) -> usize {
        self.n_items
    }
    fn n_users(&self) -> Option<usize> {
        Some(self.scores.len())
    }
    fn score_block(&self, users: &[u32], items: Range<usize>, out: &mut [f32]) {
        let n = items.len();
        for (r, &u) in users.iter().enumerate() {
            out[r * n..(r + 1) * n].copy_from_slice(&self.scores[u as usize][items.clone()]);
        }
    }
}

/// 3 users × 10 items, item id rank = item index.
///
/// Train rows: u0 {0,1,2}; u1 {0,1,3}; u2 {0,4,4 (duplicate row)}.
/// Popularity: item0 3, item1 2, item4 2, item2 1, item3 1, items 5..9 0.
/// Order (popularity desc, id asc): 0, 1, 4, 2, 3, 5, 6, 7, 8, 9, so with
/// 10 bins the bin of an item is its position: item0→1st … item4→3rd,
/// item2→4th, item3→5th, item5..9→6th..10th (0-based bins 0..9).
///
/// Test rows: u0 {1 (also in train), 3, 5, 5 (duplicate), 9}; u1 {4, 6};
/// u2 {2, 7, 8}: 9 distinct pairs.
///
/// Top-3 (train items removed, ties by id):
/// - u0 scores [.9 .8 .7 .1 .5 .6 0 0 .4 .2], minus {0,1,2} → 5 (.6), 4 (.5), 8 (.4).
///   Test {1,3,5,9}: only 5 hits (1 was removed with the train items).
/// - u1 scores [1 1 .3 1 .3 .2 .3 .3 .1 0], minus {0,1,3} → ties at .3 among
///   2,4,6,7 broken by id → 2, 4, 6. Test {4,6}: both hit (7 lost the tie).
/// - u2 scores [.5 .5 0 .5 .5 .5 .5 .9 0 .5], minus {0,4} → 7 (.9), then the
///   .5 ties by id → 1, 3. Test {2,7,8}: only 7 hits.
fn hand_case() -> (EvalSet, Fixed) {
    let train = [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 3),
        (2, 0),
        (2, 4),
        (2, 4),
    ];
    let test = [
        (0, 1),
        (0, 3),
        (0, 5),
        (0, 5),
        (0, 9),
        (1, 4),
        (1, 6),
        (2, 2),
        (2, 7),
        (2, 8),
    ];
    let rank: Vec<u32> = (0..10).collect();
    let set = EvalSet::new(3, 10, &train, &test, &rank).unwrap();
    let scorer = Fixed {
        n_items: 10,
        scores: vec![
            vec![0.9, 0.8, 0.7, 0.1, 0.5, 0.6, 0.0, 0.0, 0.4, 0.2],
            vec![1.0, 1.0, 0.3, 1.0, 0.3, 0.2, 0.3, 0.3, 0.1, 0.0],
            vec![0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5, 0.9, 0.0, 0.5],
        ],
    };
    (set, scorer)
}

#[test]
fn recall_by_decile_hand_case() {
    let (set, scorer) = hand_case();
    // Pairs by bin (= popularity position): item1 (u0) → bin 1, miss;
    // item4 (u1) → bin 2, hit; item2 (u2) → bin 3, miss; item3 (u0) → bin 4,
    // miss; item5 (u0) → bin 5, hit; item6 (u1) → bin 6, hit; item7 (u2) →
    // bin 7, hit; item8 (u2) → bin 8, miss; item9 (u0) → bin 9, miss;
    // bin 0 (item0) has no test pair → None.
    let r = recall_by_popularity_decile(&set, &scorer, 3, 10).unwrap();
    assert_eq!(
        r,
        vec![
            None,
            Some(0.0),
            Some(1.0),
            Some(0.0),
            Some(0.0),
            Some(1.0),
            Some(1.0),
            Some(1.0),
            Some(0.0),
            Some(0.0)
        ]
    );
}

#[test]
fn five_bins_hand_case_and_head_tail_agree_with_evaluate() {
    let (set, scorer) = hand_case();
    // 5 bins of 2 items: {0,1} {4,2} {3,5} {6,7} {8,9}.
    // bin 0: item1 (u0) miss → 0/1; bin 1: item4 (u1) hit, item2 (u2) miss → 1/2;
    // bin 2: item3 (u0) miss, item5 (u0) hit → 1/2; bin 3: item6 (u1) hit,
    // item7 (u2) hit → 2/2; bin 4: item8 (u2) miss, item9 (u0) miss → 0/2.
    let c = popularity_bin_counts(&set, &scorer, 3, 5).unwrap();
    assert_eq!(
        c,
        BinCounts {
            hits: vec![0, 1, 1, 2, 0],
            pairs: vec![1, 2, 2, 2, 2],
            items: vec![2, 2, 2, 2, 2],
        }
    );
    assert_eq!(
        c.recall(),
        vec![Some(0.0), Some(0.5), Some(0.5), Some(1.0), Some(0.0)]
    );
    // The head slice is the first ⌊0.2·10⌋ = 2 items = bin 0, the tail the
    // rest: evaluate() must give head_recall@3 = 0/1 and tail_recall@3 = 4/8.
    let m = evaluate(
        &scorer,
        &set,
        &EvalConfig {
            ks: vec![3],
            ..EvalConfig::default()
        },
    )
    .unwrap();
    let tail_hits: u64 = c.hits[1..].iter().sum();
    let tail_pairs: u64 = c.pairs[1..].iter().sum();
    assert_eq!(m.get("head_recall@3"), Some(0.0));
    assert_eq!(
        m.get("tail_recall@3"),
        Some(tail_hits as f64 / tail_pairs as f64)
    );
    assert_eq!(m.get("tail_recall@3"), Some(0.5));
}

#[test]
fn decile_sizes_of_the_ml100k_catalog() {
    // 1682 items, 10 bins: position p goes to ⌊10p/1682⌋; bin b spans
    // ⌈168.2 b⌉ .. ⌈168.2 (b+1)⌉: 169, 168, 168, 168, 168, 169, 168, 168, 168, 168.
    let rank: Vec<u32> = (0..1682).collect();
    let set = EvalSet::new(1, 1682, &[], &[], &rank).unwrap();
    let bins = popularity_bins(&set, 10).unwrap();
    let mut sizes = [0usize; 10];
    for b in bins {
        sizes[b as usize] += 1;
    }
    assert_eq!(sizes, [169, 168, 168, 168, 168, 169, 168, 168, 168, 168]);
}

#[test]
fn bad_arguments_are_errors() {
    let (set, scorer) = hand_case();
    assert!(matches!(
        recall_by_popularity_decile(&set, &scorer, 3, 0),
        Err(ReportError::InvalidArgument { name: "n_bins", .. })
    ));
    assert!(matches!(
        recall_by_popularity_decile(&set, &scorer, 0, 10),
        Err(ReportError::InvalidArgument { name: "k", .. })
    ));
    let small = Fixed {
        n_items: 9,
        scores: vec![vec![0.0; 9]; 3],
    };
    assert!(matches!(
        recall_by_popularity_decile(&set, &small, 3, 10),
        Err(ReportError::Eval(EvalError::ScorerItems {
            expected: 10,
            got: 9
        }))
    ));
    let mut nan = Fixed {
        n_items: 10,
        scores: vec![vec![0.0; 10]; 3],
    };
    nan.scores[1][6] = f32::NAN;
    assert!(matches!(
        recall_by_popularity_decile(&set, &nan, 3, 10),
        Err(ReportError::Eval(EvalError::NanScore {
            user: Some(1),
            item: 6
        }))
    ));
}

#[test]
fn mean_std_by_hand() {
    // [2,4,4,4,5,5,7,9]: mean 40/8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32;
    // sample variance 32/7; std = sqrt(32/7) = 2.1380899352993950.
    let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
    assert_eq!(m, 5.0);
    assert!((s - 2.138_089_935_299_395).abs() < 1e-12, "{s}");
    // [1,2,3]: mean 2, variance (1+0+1)/2 = 1.
    assert_eq!(mean_std(&[1.0, 2.0, 3.0]), (2.0, 1.0));
    // one value: no spread to estimate, reported as 0.
    assert_eq!(mean_std(&[0.3]), (0.3, 0.0));
    let (m, s) = mean_std(&[]);
    assert!(m.is_nan() && s.is_nan());
    // Summary skips undefined values: [0.1, _, 0.3] → mean 0.2,
    // std sqrt((0.01 + 0.01)/1) = 0.1414213562, n 2.
    let sm = Summary::of(&[Some(0.1), None, Some(0.3)]).unwrap();
    assert!((sm.mean - 0.2).abs() < 1e-15);
    assert!((sm.std - 0.141_421_356_237_309_5).abs() < 1e-12);
    assert_eq!(sm.n, 2);
    assert_eq!(Summary::of(&[None, None]), None);
}

#[test]
fn variants_parse() {
    let v = parse_variant("big=model.hidden=[256,128],loss.temperature=0.1").unwrap();
    assert_eq!(v.name, "big");
    assert_eq!(
        v.overrides,
        vec!["model.hidden=[256,128]", "loss.temperature=0.1"]
    );
    let v = parse_variant("logq_ssl=loss.logq=true, ssl.enabled=true").unwrap();
    assert_eq!(v.overrides, vec!["loss.logq=true", "ssl.enabled=true"]);
    let v = parse_variant("q=data.path=\"a,b\"").unwrap();
    assert_eq!(v.overrides, vec!["data.path=\"a,b\""]);
    assert_eq!(
        parse_variant("base=").unwrap().overrides,
        Vec::<String>::new()
    );
    for bad in [
        "nothing",
        "=loss.logq=true",
        "a/b=loss.logq=true",
        "..=x=1",
        "a=loss.logq",
        "a=x=[1,2",
        "a=x=\"open",
        "a=train.epochs=1,train.epochs=2",
        "a=train.epochs=1, train.epochs =2",
    ] {
        assert!(
            matches!(parse_variant(bad), Err(ReportError::Variant { .. })),
            "{bad} should not parse"
        );
    }
}

fn metrics(pairs: &[(&str, Option<f64>)]) -> BTreeMap<String, Option<f64>> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn epoch(phase: &str, epoch: usize, loss: f64) -> EpochLoss {
    EpochLoss {
        phase: phase.into(),
        epoch,
        loss,
        loss_main: loss - 0.5,
        loss_ssl: 0.0,
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    dir: &str,
    recall: f64,
    tail: Option<f64>,
    secs: f64,
    eps: f64,
    hits: Vec<u64>,
    baseline_recall: f64,
    epochs: Vec<EpochLoss>,
) -> RunResult {
    RunResult {
        dir: PathBuf::from(dir),
        metrics: metrics(&[
            ("recall@50", Some(recall)),
            ("tail_recall@50", tail),
            ("cold_recall@50", None),
        ]),
        baseline: metrics(&[
            ("recall@50", Some(baseline_recall)),
            ("tail_recall@50", Some(0.05)),
            ("cold_recall@50", None),
        ]),
        train_seconds: secs,
        examples_per_second: eps,
        bins: Some(RunBins {
            format_version: twotower_report::REPORT_FORMAT_VERSION,
            k: 50,
            n_bins: 2,
            model: BinCounts {
                hits,
                pairs: vec![2, 2],
                items: vec![5, 5],
            },
            most_popular: BinCounts {
                hits: vec![2, 0],
                pairs: vec![2, 2],
                items: vec![5, 5],
            },
        }),
        epochs,
    }
}

/// Variant A: recall@50 0.30, 0.34 → mean 0.32, std sqrt((0.02² + 0.02²)/1)
/// = 0.028284 → "0.3200 ± 0.0283"; tail_recall@50 0.1 and undefined → one
/// value, "0.1000 ± 0.0000 (n=1)"; cold_recall@50 undefined twice → "–";
/// train seconds 10, 14 → "12.0 ± 2.8"; examples/s 1000, 1200 → mean 1100,
/// std sqrt(2·100²) = 141.4 → "1100 ± 141"; bins: recalls [1/2, 0/2] and
/// [2/2, 1/2] → [0.75 ± 0.3536, 0.25 ± 0.3536]; refit losses 5.0/6.0 at
/// epoch 1 → 5.5 ± 0.7071.
/// Variant B: recall@50 0.40 twice → "0.4000 ± 0.0000".
/// Baseline: recall@50 0.25 → "0.2500 ± 0.0000"; bins 2/2, 0/2 → 1.0, 0.0.
fn input() -> ReportInput {
    let a = vec![
        run(
            "runs/A/seed1",
            0.30,
            Some(0.1),
            10.0,
            1000.0,
            vec![1, 0],
            0.25,
            vec![
                epoch("search", 1, 9.0),
                epoch("search", 2, 8.0),
                epoch("search", 3, 8.5),
                epoch("refit", 1, 5.0),
                epoch("refit", 2, 4.0),
            ],
        ),
        run(
            "runs/A/seed2",
            0.34,
            None,
            14.0,
            1200.0,
            vec![2, 1],
            0.25,
            vec![epoch("search", 1, 9.0), epoch("refit", 1, 6.0)],
        ),
    ];
    let b = vec![
        run(
            "runs/B/seed1",
            0.40,
            Some(0.2),
            20.0,
            500.0,
            vec![0, 0],
            0.25,
            vec![epoch("search", 1, 3.0)],
        ),
        run(
            "runs/B/seed2",
            0.40,
            Some(0.2),
            20.0,
            500.0,
            vec![0, 0],
            0.25,
            vec![epoch("search", 1, 2.0)],
        ),
    ];
    let doc: toml::Value = toml::from_str("[train]\nepochs = 3\n").unwrap();
    ReportInput {
        config_file: Some(PathBuf::from("configs/x.toml")),
        global_overrides: vec!["train.epochs=3".into()],
        base_config: doc.clone(),
        seeds: vec![1, 2],
        variants: vec![
            (
                VariantSpec {
                    name: "A".into(),
                    overrides: vec!["loss.logq=false".into()],
                },
                doc.clone(),
                a,
            ),
            (
                VariantSpec {
                    name: "B".into(),
                    overrides: vec!["loss.logq=true".into(), "ssl.enabled=true".into()],
                },
                doc,
                b,
            ),
        ],
        total_seconds: 66.0,
        split: "test".into(),
    }
}

#[test]
fn report_numbers_and_markdown_table() {
    let r = build_report(&input()).unwrap();
    assert_eq!(
        r.metric_names,
        vec!["recall@50", "tail_recall@50", "cold_recall@50"]
    );
    assert_eq!(r.ks, vec![50]);
    let a = &r.variants[0];
    let rec = a.metrics["recall@50"].unwrap();
    assert!((rec.mean - 0.32).abs() < 1e-12);
    assert!((rec.std - 0.000_8f64.sqrt()).abs() < 1e-12);
    assert_eq!(a.metrics["cold_recall@50"], None);
    assert_eq!(a.metrics["tail_recall@50"].unwrap().n, 1);
    assert_eq!(a.final_epochs, vec![2, 1]);
    let bins: Vec<(f64, f64)> = a
        .recall_by_bin
        .iter()
        .map(|s| (s.unwrap().mean, s.unwrap().std))
        .collect();
    assert!((bins[0].0 - 0.75).abs() < 1e-12 && (bins[0].1 - 0.125f64.sqrt()).abs() < 1e-12);
    assert!((bins[1].0 - 0.25).abs() < 1e-12 && (bins[1].1 - 0.125f64.sqrt()).abs() < 1e-12);
    let loss = a.loss.as_ref().unwrap();
    assert_eq!(loss.phase, "refit");
    assert_eq!(loss.epochs.len(), 2);
    assert!((loss.epochs[0].loss.mean - 5.5).abs() < 1e-12);
    assert!((loss.epochs[0].loss.std - 0.5f64.sqrt()).abs() < 1e-12);
    assert_eq!(loss.epochs[1].loss.n, 1); // only seed 1 ran a second refit epoch
    assert_eq!(r.variants[1].loss.as_ref().unwrap().phase, "search");
    assert_eq!(r.baselines.len(), 1);
    assert_eq!(r.baselines[0].variants, vec!["A", "B"]);
    assert_eq!(
        r.baselines[0].recall_by_bin[0],
        Some(Summary {
            mean: 1.0,
            std: 0.0,
            n: 1
        })
    );
    assert!(r
        .notes
        .iter()
        .any(|n| n.contains("tail_recall@50 is undefined") && n.contains("1 of 2")));

    let md = render_markdown(&r);
    for line in [
        "| variant | recall@50 | tail_recall@50 | cold_recall@50 |",
        "| A | 0.3200 ± 0.0283 | 0.1000 ± 0.0000 (n=1) | – |",
        "| B | 0.4000 ± 0.0000 | 0.2000 ± 0.0000 | – |",
        "| most_popular | 0.2500 ± 0.0000 | 0.0500 ± 0.0000 | – |",
        "| A | 12.0 ± 2.8 | 1100 ± 141 | 2, 1 (refit) |",
        "| A | 0.7500 ± 0.3536 | 0.2500 ± 0.3536 |",
        "| most_popular | 1.0000 ± 0.0000 | 0.0000 ± 0.0000 |",
        "| test pairs | 2 | 2 |",
        "| A | `loss.logq=false` | runs/A/seed1, runs/A/seed2 |",
        "| B | `loss.logq=true`, `ssl.enabled=true` | runs/B/seed1, runs/B/seed2 |",
    ] {
        assert!(
            md.lines().any(|l| l == line),
            "missing line {line:?} in\n{md}"
        );
    }
    assert!(md.contains("sample standard deviation over seeds (n − 1 denominator)"));
    assert!(md.contains("[train]\nepochs = 3\n"));
}

#[test]
fn different_data_gives_one_baseline_row_per_dataset() {
    let mut inp = input();
    for r in &mut inp.variants[1].2 {
        r.baseline.insert("recall@50".into(), Some(0.5));
    }
    let r = build_report(&inp).unwrap();
    assert_eq!(r.baselines.len(), 2);
    let md = render_markdown(&r);
    assert!(
        md.lines()
            .any(|l| l == "| most_popular (A) | 0.2500 ± 0.0000 | 0.0500 ± 0.0000 | – |"),
        "{md}"
    );
    assert!(
        md.lines()
            .any(|l| l == "| most_popular (B) | 0.5000 ± 0.0000 | 0.0500 ± 0.0000 | – |"),
        "{md}"
    );
}

#[test]
fn empty_variant_is_an_error() {
    let mut inp = input();
    inp.variants[0].2.clear();
    assert!(matches!(
        build_report(&inp),
        Err(ReportError::Inconsistent(_))
    ));
}

fn png_dims(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    )
}

#[test]
fn write_report_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = build_report(&input()).unwrap();
    twotower_report::write_report(dir.path(), &r).unwrap();
    for f in [
        "report.md",
        "report.json",
        "recall_by_popularity_decile.png",
        "recall_by_popularity_decile.svg",
        "training_loss.png",
        "training_loss.svg",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    for f in ["recall_by_popularity_decile.png", "training_loss.png"] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap();
        assert_eq!(png_dims(&bytes), twotower_report::CHART_SIZE);
        // Text was rendered: the caption row holds dark anti-aliased pixels.
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let row = info.line_size;
        let dark_in_title = (0..50)
            .flat_map(|y| (0..info.width as usize).map(move |x| (y, x)))
            .filter(|&(y, x)| buf[y * row + 3 * x] < 100)
            .count();
        assert!(
            dark_in_title > 50,
            "{f}: no title text drawn ({dark_in_title} dark pixels)"
        );
    }
    let svg = std::fs::read_to_string(dir.path().join("recall_by_popularity_decile.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    // plotters writes each <text> element's content on its own line
    for text in [
        "A",
        "B",
        "most_popular",
        "recall@50 by item-popularity bin (mean over seeds)",
    ] {
        assert!(
            svg.contains(&format!(">\n{text}\n</text>")),
            "svg lacks {text}"
        );
    }
    let back: twotower_report::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(back.variants.len(), 2);
    assert_eq!(back.variants[0].metrics["recall@50"].unwrap().n, 2);
    assert_eq!(back.variants[0].metrics["cold_recall@50"], None);
    assert_eq!(back.split, "test");
    // a report.json written before `split` existed reads as the test split
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    old.as_object_mut().unwrap().remove("split").unwrap();
    let back: twotower_report::Report = serde_json::from_value(old).unwrap();
    assert_eq!(back.split, "test");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("evaluated on the test split"), "{md}");
}

#[test]
fn read_run_reads_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("metrics.json"),
        r#"{"recall@50": 0.3, "cold_recall@50": null, "n_items": 10, "train_seconds": 2.5,
            "examples_per_second": 400.0, "most_popular": {"recall@50": 0.2, "cold_recall@50": null}}"#,
    )
    .unwrap();
    std::fs::write(
        d.join("epochs.jsonl"),
        "{\"phase\":\"search\",\"epoch\":1,\"loss\":3.0,\"loss_main\":3.0,\"loss_ssl\":0.0,\"seconds\":1}\n\n{\"phase\":\"refit\",\"epoch\":1,\"loss\":2.0,\"loss_main\":2.0,\"loss_ssl\":0.0}\n",
    )
    .unwrap();
    let r = twotower_report::read_run(d).unwrap();
    assert_eq!(
        r.metrics,
        metrics(&[("recall@50", Some(0.3)), ("cold_recall@50", None)])
    );
    assert_eq!(
        r.baseline,
        metrics(&[("recall@50", Some(0.2)), ("cold_recall@50", None)])
    );
    assert_eq!((r.train_seconds, r.examples_per_second), (2.5, 400.0));
    assert_eq!(r.epochs.len(), 2);
    assert_eq!(twotower_report::final_phase(&r.epochs), Some("refit"));
    assert!(r.bins.is_none());

    std::fs::write(d.join("epochs.jsonl"), "{\"phase\":\"search\",\"epoch\":1,\"loss\":3.0,\"loss_main\":3.0,\"loss_ssl\":0.0}\n{\"phase\":\"search\",\"epoch\":2}\n").unwrap();
    match twotower_report::read_run(d) {
        Err(ReportError::Json { line: 2, path, .. }) => assert!(path.ends_with("epochs.jsonl")),
        other => panic!("expected a JSON error at line 2, got {other:?}"),
    }
    std::fs::remove_file(d.join("epochs.jsonl")).unwrap();
    std::fs::write(
        d.join("metrics.json"),
        r#"{"recall@50": "high", "most_popular": {}}"#,
    )
    .unwrap();
    match twotower_report::read_run(d) {
        Err(ReportError::Field {
            field, expected, ..
        }) => {
            assert_eq!(field, "recall@50");
            assert_eq!(expected, "a number in [0, 1] or null");
        }
        other => panic!("expected a field error, got {other:?}"),
    }
    // a metric outside [0, 1] (hand-edited or corrupt) is refused, not reported
    for (text, want) in [
        (r#"{"recall@50": 7.5, "most_popular": {}}"#, "recall@50"),
        (
            r#"{"recall@50": 0.3, "most_popular": {"recall@50": -1}}"#,
            "most_popular.recall@50",
        ),
        (
            r#"{"recall@50": 0.3, "most_popular": {}, "train_seconds": -2, "examples_per_second": 1}"#,
            "train_seconds",
        ),
    ] {
        std::fs::write(d.join("metrics.json"), text).unwrap();
        match twotower_report::read_run(d) {
            Err(ReportError::Field { field, .. }) => assert_eq!(field, want),
            other => panic!("{text}: expected a field error, got {other:?}"),
        }
    }
    std::fs::write(
        d.join("metrics.json"),
        r#"{"recall@50": 0.3, "train_seconds": 1, "examples_per_second": 1}"#,
    )
    .unwrap();
    match twotower_report::read_run(d) {
        Err(ReportError::Field { field, .. }) => assert_eq!(field, "most_popular"),
        other => panic!("expected a field error, got {other:?}"),
    }
    assert!(matches!(
        twotower_report::read_run(&d.join("nope")),
        Err(ReportError::Io { .. })
    ));
}
