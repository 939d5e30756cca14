//! The loader runs in parallel (Parquet row groups, tables side by side,
//! per-user sorts, features): its result must not depend on the thread
//! count, and a Parquet file cut into many row groups must load exactly as
//! the same rows written as CSV.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use arrow_select::concat as arrow;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use twotower_data::{
    load_data_config, load_dataset, read_interactions, write_dataset, Dataset, InteractionsSpec,
    OnBadRow, OutFormat, SyntheticConfig,
};

fn cfg() -> SyntheticConfig {
    SyntheticConfig {
        users: 1500,
        items: 3000,
        interactions: 40_000,
        seed: 7,
        ..Default::default()
    }
}

/// Rewrites `dir/interactions.parquet` with row groups of `rows` rows,
/// letting `edit` change the columns (user, item, timestamp) first.
fn regroup(dir: &Path, rows: usize, edit: impl Fn(&mut Vec<Option<i64>>, &mut Vec<i64>)) {
    let path = dir.join("interactions.parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let (mut u, mut i, mut t) = (Vec::new(), Vec::new(), Vec::new());
    for b in reader {
        let b = b.unwrap();
        let col = |k: usize| {
            b.column(k)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        u.extend(col(0).iter());
        i.extend(col(1).values().iter().copied());
        t.extend(col(2).values().iter().copied());
    }
    edit(&mut u, &mut i);
    let schema = Arc::new(Schema::new(
        ["user", "item", "timestamp"]
            .map(|n| Field::new(n, DataType::Int64, true))
            .to_vec(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(u)),
            Arc::new(Int64Array::from(i)),
            Arc::new(Int64Array::from(t)),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_size(rows)
        .build();
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Rewrites a Parquet file with row groups of `rows` rows, appending a
/// copy of row `dup` with its second (string) column set to `value`.
fn regroup_file(path: &Path, rows: usize, dup: Option<(usize, &str)>) {
    use arrow_array::{Array, ArrayRef, StringArray};
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for c in 0..schema.fields().len() {
        let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
        let mut col = arrow::concat(&parts).unwrap();
        if let Some((r, value)) = dup {
            let extra: ArrayRef = if c == 1 {
                Arc::new(StringArray::from(vec![value]))
            } else {
                col.slice(r, 1)
            };
            col = arrow::concat(&[col.as_ref(), extra.as_ref()]).unwrap();
        }
        cols.push(col);
    }
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_size(rows)
        .build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn load(dir: &Path) -> Dataset {
    let (d, f, base) = load_data_config(&dir.join("dataset.toml"), &[]).unwrap();
    load_dataset(&d, &f, &base).unwrap()
}

fn with_threads<T: Send>(n: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn thread_count_and_row_groups_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (pq, csv) = (tmp.path().join("pq"), tmp.path().join("csv"));
    write_dataset(&cfg(), &pq, OutFormat::Parquet).unwrap();
    write_dataset(&cfg(), &csv, OutFormat::Csv).unwrap();
    // 40 row groups of 1,000 rows (uneven parts for 3 threads); the user
    // and item tables in row groups of 97 rows
    regroup(&pq, 1000, |_, _| {});
    regroup_file(&pq.join("users.parquet"), 97, None);
    regroup_file(&pq.join("items.parquet"), 97, None);
    let one = with_threads(1, || load(&pq));
    for n in [2, 3, 4] {
        let many = with_threads(n, || load(&pq));
        assert_eq!(one.fingerprint(), many.fingerprint(), "{n} threads");
        assert!(one == many, "{n} threads: a different dataset");
    }
    // the CSV file (about 0.8 MB) is read as up to 3 byte ranges
    assert!(
        std::fs::metadata(csv.join("interactions.csv"))
            .unwrap()
            .len()
            > 3 * (256 << 10)
    );
    for n in [1, 2, 3, 4] {
        let from_csv = with_threads(n, || load(&csv));
        assert_eq!(
            one.fingerprint(),
            from_csv.fingerprint(),
            "CSV, {n} threads"
        );
        assert!(
            one == from_csv,
            "CSV with {n} threads and Parquet load differently"
        );
    }
    assert_eq!(one.train.len() + one.test.len(), 40_000);

    // the raw table too: keys in first-seen order, as one pass reads them
    let spec = |file: &str| -> InteractionsSpec {
        toml::from_str(&format!(
            "file = \"{file}\"\nuser = \"user\"\nitem = \"item\"\ntimestamp = \"timestamp\"\n"
        ))
        .unwrap()
    };
    let mut skipped = 0;
    let a = with_threads(4, || {
        read_interactions(
            &spec("interactions.parquet"),
            &pq,
            OnBadRow::Error,
            &mut skipped,
        )
    })
    .unwrap();
    let b = read_interactions(
        &spec("interactions.csv"),
        &csv,
        OnBadRow::Error,
        &mut skipped,
    )
    .unwrap();
    assert!(a == b, "row groups read in parallel differ from one pass");
    assert_eq!(skipped, 0);
}

#[test]
fn first_bad_row_in_file_order_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let pq = tmp.path().join("pq");
    write_dataset(&cfg(), &pq, OutFormat::Parquet).unwrap();
    // missing user ids in row groups 3 and 30 (rows 2,501 and 29,001)
    regroup(&pq, 1000, |u, _| {
        u[2500] = None;
        u[29_000] = None;
    });
    let (d, f, base) = load_data_config(&pq.join("dataset.toml"), &[]).unwrap();
    for n in [1, 2, 4] {
        let err = with_threads(n, || load_dataset(&d, &f, &base))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interactions.parquet") && err.contains("2501") && err.contains("user"),
            "{n} threads: {err}"
        );
        assert!(!err.contains("29001"), "{err}");
    }
    // skipped instead: both rows, the rest as without them
    let mut d2 = d.clone();
    d2.on_bad_row = OnBadRow::Skip;
    let one = with_threads(1, || load_dataset(&d2, &f, &base)).unwrap();
    let four = with_threads(4, || load_dataset(&d2, &f, &base)).unwrap();
    assert_eq!(one.report.skipped_rows, 2);
    assert!(one == four);
    assert_eq!(one.train.len() + one.test.len(), 40_000 - 2);
}

#[test]
fn csv_errors_name_the_first_bad_line_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("csv");
    write_dataset(&cfg(), &csv, OutFormat::Csv).unwrap();
    let path = csv.join("interactions.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // line 30,001 (in the last quarter) and line 5,001: a bad timestamp, a
    // blank line before the second one (line numbers count it)
    lines[30_000] = lines[30_000].replace(',', ",x");
    lines[5_000] = format!("{},notatime", lines[5_000].rsplit_once(',').unwrap().0);
    lines.insert(4_000, String::new());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (d, f, base) = load_data_config(&csv.join("dataset.toml"), &[]).unwrap();
    for n in [1, 4] {
        let err = with_threads(n, || load_dataset(&d, &f, &base))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interactions.csv:5002:") && err.contains("timestamp"),
            "{n} threads: {err}"
        );
    }
    let mut d2 = d.clone();
    d2.on_bad_row = OnBadRow::Skip;
    let one = with_threads(1, || load_dataset(&d2, &f, &base)).unwrap();
    let four = with_threads(4, || load_dataset(&d2, &f, &base)).unwrap();
    assert_eq!(one.report.skipped_rows, 2);
    assert!(one == four);
}

#[test]
fn a_key_repeated_across_row_groups_is_found_as_in_one_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let pq = tmp.path().join("pq");
    write_dataset(&cfg(), &pq, OutFormat::Parquet).unwrap();
    let items = pq.join("items.parquet");
    // item row 5 again as the last row (row 3,001), another category
    regroup_file(&items, 97, Some((5, "another")));
    let (d, f, base) = load_data_config(&pq.join("dataset.toml"), &[]).unwrap();
    for n in [1, 4] {
        let err = with_threads(n, || load_dataset(&d, &f, &base))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("items.parquet") && err.contains("3001") && err.contains("another"),
            "{n} threads: {err}"
        );
    }
}

/// Parquet integer ids are interned as integers, typed, a record batch at
/// a time: every kind of id (dense, negative, long, above `i64`'s text
/// range of the dense tier, 32-bit columns) must get the codes its decimal
/// text gets from the CSV reader, and a timestamp the row path rejects
/// (i64::MIN: its text does not parse back) must give that row's error.
#[test]
fn typed_parquet_ids_read_as_their_text() {
    use arrow_array::{ArrayRef, Int32Array};
    let tmp = tempfile::tempdir().unwrap();
    let n = 150_000usize; // three record batches of up to 65,536 rows
    let user: Vec<i64> = (0..n as i64)
        .map(|r| match r % 7 {
            0 => -(r % 1000),
            1 => 33_554_432 + r % 50, // the first key above the dense tier
            2 => 99_999_999,
            3 => i64::MAX - r % 3,
            _ => (r * 7919) % 20_000,
        })
        .collect();
    let item: Vec<i32> = (0..n as i32)
        .map(|r| {
            if r % 11 == 0 {
                -r % 500
            } else {
                (r * 31) % 40_000
            }
        })
        .collect();
    let ts: Vec<i64> = (0..n as i64).map(|r| 1_000_000 - r % 5000).collect();
    let write = |dir: &Path, ts: &[i64]| {
        std::fs::create_dir_all(dir).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", DataType::Int64, false),
            Field::new("item", DataType::Int32, false),
            Field::new("timestamp", DataType::Int64, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(user.clone())),
            Arc::new(Int32Array::from(item.clone())),
            Arc::new(Int64Array::from(ts.to_vec())),
        ];
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_size(40_000)
            .build();
        let f = File::create(dir.join("interactions.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(f, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let mut csv = String::from("user,item,timestamp\n");
        for r in 0..n {
            csv.push_str(&format!("{},{},{}\n", user[r], item[r], ts[r]));
        }
        std::fs::write(dir.join("interactions.csv"), csv).unwrap();
    };
    let spec = |file: &str| -> InteractionsSpec {
        toml::from_str(&format!(
            "file = \"{file}\"\nuser = \"user\"\nitem = \"item\"\ntimestamp = \"timestamp\"\n"
        ))
        .unwrap()
    };
    let read = |dir: &Path, file: &str, threads: usize| {
        let mut skipped = 0;
        with_threads(threads, || {
            read_interactions(&spec(file), dir, OnBadRow::Error, &mut skipped)
        })
    };
    let ok = tmp.path().join("ok");
    write(&ok, &ts);
    let want = read(&ok, "interactions.csv", 1).unwrap();
    assert!(want.user_keys.iter().any(|k| k == "-999"));
    assert!(want.user_keys.iter().any(|k| k == "99999999"));
    assert!(want.user_keys.iter().any(|k| k == &i64::MAX.to_string()));
    for threads in [1, 2, 3] {
        let got = read(&ok, "interactions.parquet", threads).unwrap();
        assert!(got == want, "{threads} threads: typed ids differ from text");
    }

    let mut bad_ts = ts.clone();
    bad_ts[100_000] = i64::MIN;
    let bad = tmp.path().join("bad");
    write(&bad, &bad_ts);
    for threads in [1, 2] {
        let err = read(&bad, "interactions.parquet", threads)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interactions.parquet")
                && err.contains("100001")
                && err.contains("timestamp")
                && err.contains("-9223372036854775808"),
            "{threads} threads: {err}"
        );
    }
}

/// Spark writes event times as Parquet TIMESTAMP (INT64 or INT96) or DATE
/// columns: each is read as its stored integer (in its own unit), so the
/// same values as a TIMESTAMP load exactly as the integer column did.
#[test]
fn parquet_timestamp_and_date_columns_read_as_their_integers() {
    use arrow_array::{ArrayRef, Int32Array};
    use arrow_schema::TimeUnit;
    let tmp = tempfile::tempdir().unwrap();
    let pq = tmp.path().join("pq");
    write_dataset(&cfg(), &pq, OutFormat::Parquet).unwrap();
    let want = load(&pq);
    let path = pq.join("interactions.parquet");
    let batches: Vec<RecordBatch> =
        ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
    let parts: Vec<&dyn arrow_array::Array> =
        batches.iter().map(|b| b.column(2).as_ref()).collect();
    let ts = arrow::concat(&parts).unwrap();
    let users: Vec<&dyn arrow_array::Array> =
        batches.iter().map(|b| b.column(0).as_ref()).collect();
    let items: Vec<&dyn arrow_array::Array> =
        batches.iter().map(|b| b.column(1).as_ref()).collect();
    let (u, i) = (
        arrow::concat(&users).unwrap(),
        arrow::concat(&items).unwrap(),
    );
    let max = ts
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .iter()
        .copied()
        .max()
        .unwrap();
    let mut types = vec![
        DataType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        DataType::Date64,
    ];
    if max <= i32::MAX as i64 {
        types.push(DataType::Date32);
    }
    for ty in types {
        let t: ArrayRef = if ty == DataType::Date32 {
            let v: Int32Array = ts
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .iter()
                .map(|x| x.map(|x| x as i32))
                .collect();
            arrow_cast::cast(&v, &ty).unwrap()
        } else {
            arrow_cast::cast(&ts, &ty).unwrap()
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", u.data_type().clone(), true),
            Field::new("item", i.data_type().clone(), true),
            Field::new("timestamp", ty.clone(), true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![u.clone(), i.clone(), t]).unwrap();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let got = load(&pq);
        assert_eq!(got.train, want.train, "{ty}");
        assert_eq!(got.test, want.test, "{ty}");
        assert_eq!(got.fingerprint(), want.fingerprint(), "{ty}");
    }
}
