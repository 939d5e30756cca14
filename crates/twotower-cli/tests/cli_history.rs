//! `twotower recommend --items` / `--queries` on a tiny run with the history
//! feature, run as a binary: a user served from a list of items gets the
//! vector training and evaluation give them, unknown ids are reported, and a
//! model without the feature refuses the flags.

mod common;

use common::{bin, stderr, write, INTERACTIONS};
use std::path::Path;
use std::process::Output;

/// The items of [`common::INTERACTIONS`] (user 1's, in time order: 1, 2, 3, 4).
const ITEMS: &str = "item,genres\n1,Drama|Comedy\n2,Action\n3,Drama\n4,Comedy\n5,Action|Drama\n\
6,Horror\n7,Drama\n";

fn train(dir: &Path, history: bool) -> std::path::PathBuf {
    write(dir, "i.csv", INTERACTIONS);
    write(dir, "items.csv", ITEMS);
    let cfg = format!(
        "[data.interactions]\nfile = \"i.csv\"\nuser = \"u\"\nitem = \"i\"\ntimestamp = \"t\"\n\
         [data.items]\nfile = \"items.csv\"\nkey = \"item\"\n\
         [features.user_id]\nside = \"user\"\nkind = \"categorical\"\ncolumn = \"u\"\n\
         [features.item_id]\nside = \"item\"\nkind = \"categorical\"\ncolumn = \"item\"\n\
         [features.genres]\nside = \"item\"\nkind = \"multi_categorical\"\ncolumn = \"genres\"\n\
         [model.history]\nenabled = {history}\npooling = \"recency\"\nmax_len = 3\n\
         [train]\nbatch_size = 4\nepochs = 2\nvalidation = false\nprogress = false\n"
    );
    common::train(dir, &cfg, if history { "run" } else { "run-plain" })
}

fn recommend(run: &Path, args: &[&str]) -> Output {
    bin()
        .arg("recommend")
        .arg("--run")
        .arg(run)
        .args(args)
        .output()
        .unwrap()
}

/// (item, score) of each ranked row of `recommend`'s TSV (item column 1,
/// score column 2 of the default layout; `--queries` rows: 2 and 3).
fn ranked(out: &Output, item_col: usize, score_col: usize) -> Vec<(String, String)> {
    assert!(out.status.success(), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[item_col].to_string(), f[score_col].to_string())
        })
        .collect()
}

/// (item, score) of the `--queries` rows of input line `n`.
fn query_rows(text: &str, n: usize) -> Vec<(String, String)> {
    text.lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[0] == n.to_string())
        .map(|f| (f[2].to_string(), f[3].to_string()))
        .collect()
}

#[test]
fn items_give_the_users_own_vector_and_queries_match_items() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path(), true);

    // user 1 named with exactly their train history (oldest first) is user 1:
    // the serving bag is the evaluation bag (the last max_len = 3, recency-weighted)
    let own = ranked(&recommend(&run, &["--user", "1", "-k", "3"]), 1, 2);
    let named = ranked(
        &recommend(&run, &["--user", "1", "--items", "1,2,3,4", "-k", "3"]),
        1,
        2,
    );
    assert_eq!(own, named);
    assert_eq!(own.len(), 3, "items 5, 6, 7 are left: {own:?}");
    // only the last 3 count: dropping the oldest item changes nothing ...
    let last3 = ranked(
        &recommend(&run, &["--user", "1", "--items", "2,3,4", "-k", "3"]),
        1,
        2,
    );
    // ... except that item 1 is no longer excluded as seen
    assert!(last3.iter().any(|(i, _)| i == "1"), "{last3:?}");
    let scores_wo_1: Vec<_> = last3.iter().filter(|(i, _)| i != "1").cloned().collect();
    assert_eq!(&scores_wo_1[..], &own[..scores_wo_1.len()]);

    // a user the model has never seen, from items only
    let new_user = ranked(&recommend(&run, &["--items", "5,6", "-k", "4"]), 1, 2);
    assert_eq!(new_user.len(), 4);
    assert!(new_user.iter().all(|(i, _)| i != "5" && i != "6"));

    // --queries: one new user per line, the same rankings as --items
    let q = dir.path().join("q.txt");
    std::fs::write(&q, "5,6\n\n1,2,3,4\n").unwrap();
    let out = recommend(&run, &["--queries", q.to_str().unwrap(), "-k", "4"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("query\trank\titem\tscore\n"), "{text}");
    assert!(out.status.success());
    assert_eq!(query_rows(&text, 1), new_user);
    let plain_new = ranked(&recommend(&run, &["--items", "1,2,3,4", "-k", "4"]), 1, 2);
    assert!(query_rows(&text, 2).is_empty(), "blank line 2 is skipped");
    let line3 = query_rows(&text, 3);
    assert_eq!(line3, plain_new, "line 3 (after a blank line 2)");

    // regression: a UTF-8 byte-order mark (a spreadsheet's CSV export) was
    // read as part of line 1's first id, which then was "not in the catalog"
    std::fs::write(&q, "\u{feff}5,6\n").unwrap();
    let out = recommend(&run, &["--queries", q.to_str().unwrap(), "-k", "4"]);
    let err = stderr(&out).to_string();
    assert!(
        out.status.success() && !err.contains("not in the catalog"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(query_rows(&text, 1), new_user);
}

#[test]
fn unknown_items_are_reported_and_flags_need_a_history_model() {
    let dir = tempfile::tempdir().unwrap();
    let run = train(dir.path(), true);

    let out = recommend(&run, &["--items", "5,nope,6", "-k", "2"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("1 of 3 ids are not in the catalog") && err.contains("nope"),
        "{err}"
    );

    let out = recommend(&run, &["--items", "nope,zilch"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("none of the given item ids"), "{err}");

    let q = dir.path().join("bad.txt");
    std::fs::write(&q, "5\nnope\n6\n").unwrap();
    let out = recommend(&run, &["--queries", q.to_str().unwrap(), "-k", "2"]);
    // regression: one line without a known item used to abort the batch
    // after partial output; it is skipped and reported, the others answered
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bad.txt line 2") && err.contains("skipped"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(query_rows(&text, 1).len(), 2, "{text}");
    assert!(query_rows(&text, 2).is_empty(), "{text}");
    assert_eq!(query_rows(&text, 3).len(), 2, "{text}");

    let plain = train(dir.path(), false);
    for args in [&["--items", "5"][..], &["--user", "1", "--items", "5"][..]] {
        let out = recommend(&plain, args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("model.history.enabled"), "{err}");
    }
    std::fs::write(&q, "5\n").unwrap();
    let out = recommend(&plain, &["--queries", q.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("model.history.enabled"));
}
