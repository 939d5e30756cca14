//! `twotower recommend` and `twotower similar` on a tiny trained run, run as
//! a binary: the output columns, exclusions and annotations.

mod common;

use common::{bin, run_ok, stderr, write, INTERACTIONS};
use std::path::Path;

/// The items of [`common::INTERACTIONS`]; item 7 is in the catalog with no
/// click (cold).
const ITEMS: &str = "item,genres,year,name\n1,Drama|Comedy,1995,One\n2,Action,1980,Two\n\
3,Drama,1994,Three\n4,Comedy,,Four\n5,Action|Drama,1971,\"Five, the\"\n6,Horror,1999,Six\n\
7,Drama,1990,Seven\n";

fn train(dir: &Path) {
    write(dir, "i.csv", INTERACTIONS);
    write(dir, "items.csv", ITEMS);
    let cfg = "[data.interactions]\nfile = \"i.csv\"\nuser = \"u\"\nitem = \"i\"\ntimestamp = \"t\"\n\
               [data.items]\nfile = \"items.csv\"\nkey = \"item\"\nlabel = \"name\"\n\
               [features.user_id]\nside = \"user\"\nkind = \"categorical\"\ncolumn = \"u\"\n\
               [features.item_id]\nside = \"item\"\nkind = \"categorical\"\ncolumn = \"item\"\n\
               [features.genres]\nside = \"item\"\nkind = \"multi_categorical\"\ncolumn = \"genres\"\n\
               [features.decade]\nside = \"item\"\nkind = \"bucketized\"\ncolumn = \"year\"\nboundaries = [1980, 1990]\n\
               [train]\nbatch_size = 4\nepochs = 2\nvalidation = false\nprogress = false\n";
    common::train(dir, cfg, "run");
}

/// Runs a serving command and splits its TSV output into rows of fields.
fn tsv(args: &[&str], run: &Path) -> Vec<Vec<String>> {
    run_ok(args, run)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn recommend_and_similar_print_ranked_items_with_popularity_and_features() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path());
    let run = dir.path().join("run");

    // user 1 has items 1-4 in train: only 5, 6, 7 are left
    let rows = tsv(&["recommend", "--user", "1", "-k", "5"], &run);
    let header = [
        "rank",
        "item",
        "name",
        "score",
        "train_clicks",
        "decade",
        "genres",
    ];
    assert_eq!(rows[0], header);
    assert_eq!(rows.len(), 1 + 3, "{rows:?}");
    let scores: Vec<f64> = rows[1..].iter().map(|r| r[3].parse().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    for (r, row) in rows[1..].iter().enumerate() {
        assert_eq!(row[0], (r + 1).to_string());
        // the label column, hand-counted clicks, decade bucket and genres
        let want = match row[1].as_str() {
            "5" => ["Five, the", "2", "<1980", "Action|Drama"],
            "6" => ["Six", "2", ">=1990", "Horror"],
            "7" => ["Seven", "0", ">=1990", "Drama"],
            other => panic!("unexpected item {other}"),
        };
        assert_eq!([&row[2], &row[4], &row[5], &row[6]], want);
    }

    // --include-seen ranks the whole catalog; item 4 has no year: "-"
    let rows = tsv(
        &["recommend", "--user", "1", "-k", "7", "--include-seen"],
        &run,
    );
    assert_eq!(rows.len(), 1 + 7);
    let four = rows.iter().find(|r| r[1] == "4").unwrap();
    assert_eq!(
        [&four[2], &four[4], &four[5], &four[6]],
        ["Four", "2", "-", "Comedy"]
    );
    let one = rows.iter().find(|r| r[1] == "1").unwrap();
    assert_eq!([&one[4], &one[5]], ["4", ">=1990"]);

    // similar never returns the query item; the neighbours of item 1 are the other 6
    let rows = tsv(&["similar", "--item", "1", "-k", "10"], &run);
    assert_eq!(rows[0], header);
    assert_eq!(rows.len(), 1 + 6);
    assert!(rows[1..].iter().all(|r| r[1] != "1"));
}

#[test]
fn an_out_path_that_is_a_file_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, "x").unwrap();
    for (args, want) in [
        (
            vec!["export", "--run", "nowhere", "--out"],
            "is a file, expected a directory",
        ),
        (
            vec!["train", "-q", "--out"],
            "is a file, expected a directory",
        ),
    ] {
        let out = bin().args(&args).arg(&file).output().unwrap();
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let out = bin()
        .args(["export", "--run", "nowhere", "--out"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("is a file, so the directory cannot be created"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

/// A catalog that grew after training: ITEMS plus item 8 (the features of
/// cold item 7) and item 9 (a genre the model never saw, and Action).
const GROWN: &str = "8,Drama,1990,Eight\n9,Western|Action,2005,Nine\n";

#[test]
fn a_grown_catalog_is_scored_from_features_by_export_similar_and_recommend() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path());
    let run = dir.path().join("run");
    let catalog = dir.path().join("catalog.csv");
    std::fs::write(&catalog, format!("{ITEMS}{GROWN}")).unwrap();

    let export = |out: &str, with_catalog: bool| {
        let mut c = bin();
        c.args(["export", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(dir.path().join(out));
        if with_catalog {
            c.arg("--catalog").arg(&catalog);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let ids = std::fs::read_to_string(dir.path().join(out).join("item_ids.txt")).unwrap();
        let v =
            twotower::export::read_npy_f32(&dir.path().join(out).join("item_vectors.npy")).unwrap();
        (ids.lines().map(str::to_string).collect::<Vec<_>>(), v)
    };
    let (ids0, v0) = export("plain", false);
    let (ids1, v1) = export("grown", true);
    assert_eq!(ids0, ["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(ids1, ["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    // the trained items keep their vectors bit for bit
    assert_eq!(v1.slice(ndarray::s![..7, ..]), v0);
    // a new item reads the id's out-of-vocabulary row, as cold item 7 does:
    // the same features give the same vector
    assert_eq!(v1.row(7), v1.row(6));
    assert_ne!(v1.row(8), v1.row(6));

    // similar to the new item 8: item 7 (cosine 1)
    let rows = tsv(
        &[
            "similar",
            "--item",
            "8",
            "-k",
            "2",
            "--catalog",
            catalog.to_str().unwrap(),
        ],
        &run,
    );
    assert_eq!(rows[1][1], "7", "{rows:?}");
    assert_eq!(rows[1][3], "1.0000");
    // user 1 has items 1-4 in train: 5, 6, 7 and the new 8, 9 are left
    let rows = tsv(
        &[
            "recommend",
            "--user",
            "1",
            "-k",
            "9",
            "--catalog",
            catalog.to_str().unwrap(),
        ],
        &run,
    );
    let mut got: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, ["5", "6", "7", "8", "9"]);
    let nine = rows.iter().find(|r| r[1] == "9").unwrap();
    assert_eq!(nine[2], "Nine");
    assert_eq!(nine[4], "0", "a new item has no train clicks");
    assert_eq!(nine[6], "Action", "the unseen genre is out of vocabulary");
}

#[test]
fn a_bad_catalog_is_refused_naming_the_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path());
    let run = dir.path().join("run");
    let catalog = dir.path().join("catalog.csv");
    std::fs::write(&catalog, "item,year,name\n1,1995,One\n").unwrap();
    let out = bin()
        .args(["recommend", "--user", "1", "--run"])
        .arg(&run)
        .arg("--catalog")
        .arg(&catalog)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("catalog.csv") && err.contains("genres"),
        "{err}"
    );

    // a value that cannot be encoded counts as missing and is reported
    std::fs::write(&catalog, format!("{ITEMS}8,Drama,soon,Eight\n")).unwrap();
    let out = bin()
        .args(["recommend", "--user", "1", "--run"])
        .arg(&run)
        .arg("--catalog")
        .arg(&catalog)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("1 values could not be encoded"), "{err}");
}

#[test]
fn ann_answers_equal_exact_on_a_tiny_catalog_with_a_saved_index_and_ef() {
    // 7 items: an HNSW search at any ef visits them all, so --ann must give
    // the exact answer; `index` saves the graph, which --ann then loads, and
    // --ef is echoed in the recall line; a bad --ef is refused by name.
    let dir = tempfile::tempdir().unwrap();
    train(dir.path());
    let run = dir.path().join("run");
    let exact = tsv(&["recommend", "--user", "2", "-k", "3"], &run);
    let built = tsv(&["recommend", "--user", "2", "-k", "3", "--ann"], &run);
    let out = bin().args(["index", "--run"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("7 items (7 distinct vectors)") && said.contains("at ef 128"),
        "{said}"
    );
    assert!(run.join("index.usearch").is_file());
    let out = bin()
        .args([
            "recommend",
            "--user",
            "2",
            "-k",
            "3",
            "--ann",
            "--ef",
            "16",
            "--run",
        ])
        .arg(&run)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("(loaded from") && err.contains("at ef 16"),
        "{err}"
    );
    let loaded: Vec<Vec<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    // same items, ranks and features; scores agree to printed precision
    for got in [&built, &loaded] {
        assert_eq!(got.len(), exact.len());
        for (a, b) in got.iter().zip(&exact) {
            assert_eq!(
                (&a[..3], &a[4..]),
                (&b[..3], &b[4..]),
                "{got:?} vs {exact:?}"
            );
            if a[3] != "score" {
                let (x, y): (f64, f64) = (a[3].parse().unwrap(), b[3].parse().unwrap());
                assert!((x - y).abs() < 1e-3, "{x} vs {y}");
            }
        }
    }
    let out = bin()
        .args(["recommend", "--user", "2", "--ann", "--ef", "0", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("--ef"), "{err}");
}
