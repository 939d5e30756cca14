//! MovieLens 100K through `configs/ml-100k.toml` (the preset): exact counts
//! and the EVALUATION.md split, checked against an independent
//! implementation written here from the raw `u.data` file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twotower_data::{fingerprints_differ, load_data_config, load_dataset, preset, stats, Preset};

fn ml100k_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/ml-100k"
    ))
}

fn config(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs")).join(name)
}

/// Independent reference: parse u.data, group by user, sort by (timestamp,
/// numeric item id), last ceil(n/5) (= (n + 4) / 5 in integers) to test when n ≥ 5.
/// Returns (train, test) as sorted lists of (user, item, timestamp).
type Row = (u32, u32, i64);
fn reference_split(dir: &Path) -> (Vec<Row>, Vec<Row>) {
    let text = std::fs::read_to_string(dir.join("u.data")).unwrap();
    let mut by_user: BTreeMap<u32, Vec<(i64, u32)>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4);
        by_user
            .entry(f[0].parse().unwrap())
            .or_default()
            .push((f[3].parse().unwrap(), f[1].parse().unwrap()));
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (u, mut v) in by_user {
        v.sort();
        let n = v.len();
        let t = if n >= 5 { n.div_ceil(5) } else { 0 };
        for (k, (ts, i)) in v.into_iter().enumerate() {
            if k >= n - t {
                test.push((u, i, ts));
            } else {
                train.push((u, i, ts));
            }
        }
    }
    train.sort();
    test.sort();
    (train, test)
}

#[test]
fn ml100k_counts_and_split_match_reference() {
    let (data, features, base) = load_data_config(&config("ml-100k.toml"), &[]).unwrap();
    let ds = load_dataset(&data, &features, &base).unwrap();
    let s = stats(&ds);
    assert_eq!(s.users, 943);
    assert_eq!(s.items, 1682);
    assert_eq!(s.interactions, 100_000);

    let (rtrain, rtest) = reference_split(&ml100k_dir());
    assert_eq!(rtrain.len() + rtest.len(), 100_000);
    assert_eq!(s.train_interactions, rtrain.len());
    assert_eq!(s.test_interactions, rtest.len());
    // Every ML-100K user has ≥ 20 ratings, so all 943 users have test items.
    assert_eq!(s.test_users, 943);

    // The exact same rows, not only the same sizes.
    let rows = |it: &twotower_data::Interactions| -> Vec<Row> {
        let mut v: Vec<Row> = (0..it.len())
            .map(|k| {
                (
                    ds.users.ids[it.user[k] as usize].parse().unwrap(),
                    ds.items.ids[it.item[k] as usize].parse().unwrap(),
                    it.timestamp[k],
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows(&ds.test), rtest);
    assert_eq!(rows(&ds.train), rtrain);

    // Cold items: catalog items with no train interaction, computed from the reference.
    let train_items: std::collections::HashSet<u32> = rtrain.iter().map(|r| r.1).collect();
    assert_eq!(s.cold_items, 1682 - train_items.len());
    assert_eq!(ds.report.items_without_feature_row, 0);
    assert_eq!(ds.report.users_without_feature_row, 0);
}

#[test]
fn ml100k_features_are_the_evaluation_features() {
    let (data, features, base) = load_data_config(&config("ml-100k.toml"), &[]).unwrap();
    // The config file spells out exactly the preset's features.
    assert_eq!(features, preset::preset_features(Preset::MovieLens100k));
    let ds = load_dataset(&data, &features, &base).unwrap();
    let names = |t: &twotower_data::EntityTable| -> Vec<String> {
        t.features.iter().map(|f| f.name.clone()).collect()
    };
    assert_eq!(
        names(&ds.users),
        vec!["age", "gender", "occupation", "user_id", "zip1"]
    );
    assert_eq!(names(&ds.items), vec!["decade", "genres", "item_id"]);

    let u = &ds.users;
    let e1 = u.index_of("1").unwrap() as usize; // 1|24|M|technician|85711
    let age = u.feature("age").unwrap();
    // 24: boundaries ≤ 24 are {18} → bucket 1 → index 2 "[18,25)".
    assert_eq!(age.row(e1), &[2]);
    assert_eq!(age.vocab.token(2), Some("[18,25)"));
    assert_eq!(age.vocab.len(), 8); // <oov> + 7 buckets
    let g = u.feature("gender").unwrap();
    assert_eq!(g.vocab.tokens(), &["F".to_string(), "M".to_string()]);
    assert_eq!(g.row(e1), &[2]);
    let zip = u.feature("zip1").unwrap();
    assert_eq!(zip.vocab.token(zip.row(e1)[0]), Some("8"));
    // Digits 0-9 plus "other" (zips like "E2A4H", "T8H1N").
    assert_eq!(zip.vocab.len(), 12);
    let occ = u.feature("occupation").unwrap();
    assert_eq!(occ.vocab.len(), 22); // 21 occupations in u.occupation + <oov>
    assert_eq!(occ.vocab.token(occ.row(e1)[0]), Some("technician"));
    let uid = u.feature("user_id").unwrap();
    assert!(uid.is_id);
    assert_eq!(uid.vocab.len(), 944);

    let it = &ds.items;
    let toy = it.index_of("1").unwrap() as usize; // Toy Story: 01-Jan-1995, Animation|Children's|Comedy
    let genres = it.feature("genres").unwrap();
    let toks: Vec<&str> = genres
        .row(toy)
        .iter()
        .map(|&i| genres.vocab.token(i).unwrap())
        .collect();
    assert_eq!(toks, vec!["Animation", "Children's", "Comedy"]);
    assert_eq!(genres.vocab.len(), 20);
    let dec = it.feature("decade").unwrap();
    assert_eq!(dec.vocab.token(dec.row(toy)[0]), Some("[1990,2000)"));
    // Item 267 "unknown" has no release date → decade 0 (unknown).
    assert_eq!(dec.row(it.index_of("267").unwrap() as usize), &[0]);
    assert_eq!(
        ds.report
            .features
            .iter()
            .find(|f| f.name == "decade")
            .unwrap()
            .missing,
        1
    );
    // Item ids: vocabulary = items with a train interaction.
    let iid = it.feature("item_id").unwrap();
    let s = stats(&ds);
    assert_eq!(iid.vocab.len(), 1 + 1682 - s.cold_items);
    let offsets_ok = it.features.iter().all(|f| f.offsets.len() == 1683);
    assert!(offsets_ok);
    // Entities are in numeric id order.
    assert_eq!(it.ids.iter().take(3).collect::<Vec<_>>(), ["1", "2", "3"]);
}

#[test]
fn generic_config_encodes_exactly_like_the_preset() {
    let (d1, f1, b1) = load_data_config(&config("ml-100k.toml"), &[]).unwrap();
    let (d2, f2, b2) = load_data_config(&config("ml-100k-generic.toml"), &[]).unwrap();
    assert!(d1.preset.is_some() && d2.preset.is_none() && d2.interactions.is_some());
    let a = load_dataset(&d1, &f1, &b1).unwrap();
    let b = load_dataset(&d2, &f2, &b2).unwrap();
    for (ta, tb) in [(&a.users, &b.users), (&a.items, &b.items)] {
        assert_eq!(ta.ids, tb.ids);
        assert_eq!(ta.features.len(), tb.features.len());
        for (fa, fb) in ta.features.iter().zip(&tb.features) {
            assert_eq!(fa.name, fb.name);
            assert_eq!(fa.vocab, fb.vocab, "{}", fa.name);
            assert_eq!(fa.offsets, fb.offsets, "{}", fa.name);
            assert_eq!(fa.values, fb.values, "{}", fa.name);
            assert_eq!(
                (fa.kind, fa.side, fa.is_id, fa.dim),
                (fb.kind, fb.side, fb.is_id, fb.dim)
            );
        }
    }
    // And everything else (split, report) too.
    assert_eq!(a, b);
    // the title is kept for display (Latin-1 decoded), not as a feature
    let (col, titles) = a.items.labels.as_ref().expect("the preset labels items");
    assert_eq!((col.as_str(), titles.len()), ("title", 1682));
    assert_eq!(titles[0], "Toy Story (1995)");
    assert!(a.items.feature("title").is_none());
    // The fingerprint depends on content, not on how the files are described;
    // one moved timestamp, one dropped test row or one feature value changes it.
    let fp = a.fingerprint();
    assert!(fp.starts_with("v1:") && fp.len() == 19, "{fp}");
    assert!(!fingerprints_differ(&fp, &a.fingerprint()));
    // another algorithm version proves nothing: not a difference
    assert!(!fingerprints_differ("v0:0000000000000000", &fp));
    assert!(!fingerprints_differ("0000000000000000", &fp));
    assert_eq!(fp, b.fingerprint());
    let mut c = a.clone();
    c.train.timestamp[0] += 1;
    assert_ne!(c.fingerprint(), fp);
    assert!(fingerprints_differ(&fp, &c.fingerprint()));
    // rows in another order are the same data
    let mut c = a.clone();
    for col in [&mut c.train.user, &mut c.train.item] {
        col.swap(0, 1);
    }
    c.train.timestamp.swap(0, 1);
    assert_eq!(c.fingerprint(), fp);
    let mut c = a.clone();
    c.test.user.pop();
    c.test.item.pop();
    c.test.timestamp.pop();
    assert_ne!(c.fingerprint(), fp);
    let mut c = a.clone();
    let genres = c
        .items
        .features
        .iter_mut()
        .find(|f| f.name == "genres")
        .unwrap();
    genres.values[0] += 1;
    assert_ne!(c.fingerprint(), fp);
}

#[test]
fn overrides_reach_feature_specs() {
    let (d, f, b) = load_data_config(
        &config("ml-100k.toml"),
        &[
            "features.genres.dim=16".into(),
            "features.occupation.min_count=30".into(),
        ],
    )
    .unwrap();
    assert_eq!(f["genres"].dim, Some(16));
    let ds = load_dataset(&d, &f, &b).unwrap();
    assert_eq!(ds.items.feature("genres").unwrap().dim, Some(16));
    // Occupations held by ≥ 30 of the 943 users, counted independently from u.user.
    let text = std::fs::read_to_string(ml100k_dir().join("u.user")).unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in text.lines() {
        *counts.entry(l.split('|').nth(3).unwrap()).or_default() += 1;
    }
    let kept = counts.values().filter(|&&c| c >= 30).count();
    assert_eq!(
        ds.users.feature("occupation").unwrap().vocab.len(),
        kept + 1
    );
}
