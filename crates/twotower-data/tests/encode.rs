//! One feature encoder: every item row of the shared datasets, re-read from
//! its file and encoded by [`twotower_data::encode_table`] with the trained
//! vocabularies, gets exactly the indices the loader gave it at training —
//! for categorical, bucketized, multi-valued, flag-column (ML-100K genres),
//! transformed (decade) and id features.

use std::path::PathBuf;

use twotower_data::{
    data_dir, effective_features, effective_tables, encode_table, load_data_config, load_dataset,
    Side,
};

fn config(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs")).join(name)
}

fn check_same_ids(cfg: &str) -> usize {
    let (data, features, base) = load_data_config(&config(cfg), &[]).unwrap();
    let ds = load_dataset(&data, &features, &base).unwrap();
    let feats = effective_features(&data, &features);
    let (_, _, items) = effective_tables(&data).unwrap();
    let file = data_dir(&data, &base).join(items.unwrap().file);
    let (table, bad) = encode_table(&data, &feats, Side::Item, &file, &ds.items).unwrap();
    assert_eq!(bad, 0, "{cfg}: no value should fail to encode");
    let mut compared = 0;
    for (row, id) in table.ids.iter().enumerate() {
        let e = ds.items.index_of(id).unwrap() as usize;
        for (tf, nf) in ds.items.features.iter().zip(&table.features) {
            assert_eq!(tf.name, nf.name);
            assert_eq!(
                tf.row(e),
                nf.row(row),
                "{cfg}: item {id}, feature {}: loader vs encoder",
                tf.name
            );
            compared += 1;
        }
        if let (Some((_, a)), Some((_, b))) = (&ds.items.labels, &table.labels) {
            assert_eq!(a[e], b[row], "{cfg}: item {id}: label");
        }
    }
    compared
}

#[test]
fn steam_items_encode_as_loaded() {
    // 3,682 items × 9 features (id, genres, tags, specs, developer,
    // publisher, price, year, early_access)
    assert_eq!(check_same_ids("steam.toml"), 3682 * 9);
}

#[test]
fn amazon_beauty_items_encode_as_loaded() {
    assert_eq!(check_same_ids("amazon-beauty.toml"), 12101 * 2);
}

#[test]
fn ml100k_items_encode_as_loaded() {
    // u.item: id, genres (19 flag columns), decade (release date transform)
    assert_eq!(check_same_ids("ml-100k.toml"), 1682 * 3);
}

#[test]
fn a_catalog_that_grew_gets_oov_ids_and_encoded_features() {
    // Steam's catalog.csv holds every store game: the reviewed ones keep
    // their trained rows, the others get id 0 and their own features.
    let (data, features, base) = load_data_config(&config("steam.toml"), &[]).unwrap();
    let ds = load_dataset(&data, &features, &base).unwrap();
    let feats = effective_features(&data, &features);
    let file = data_dir(&data, &base).join("catalog.csv");
    let (table, _) = encode_table(&data, &feats, Side::Item, &file, &ds.items).unwrap();
    assert_eq!(table.len(), 32619);
    let id = table.feature("item_id").unwrap();
    let tags = table.feature("tags").unwrap();
    let known = table
        .ids
        .iter()
        .filter(|i| ds.items.ids.contains(i))
        .count();
    assert_eq!(known, 3682);
    let new_with_tags = (0..table.len())
        .filter(|&r| !ds.items.ids.contains(&table.ids[r]))
        .inspect(|&r| assert_eq!(id.row(r), &[0], "a new item's id is out of vocabulary"))
        .filter(|&r| !tags.row(r).is_empty())
        .count();
    assert!(
        new_with_tags > 20_000,
        "{new_with_tags} new items with known tags"
    );
}
