//! Writing the generated dataset: [`write_dataset`] streams the users,
//! items and interactions tables to CSV or Parquet (Snappy) files,
//! replaced whole or not at all, with the `dataset.toml` that describes
//! them ([`dataset_toml`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::config::{
    Encoding, EntityTableSpec, FeaturesConfig, Format, InteractionsSpec, SyntheticConfig,
};
use crate::error::DataError;

use super::{synthetic_features, tags_text, Generator};

/// File format of [`write_dataset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    /// Comma-separated with a header, unquoted.
    Csv,
    /// Parquet (Snappy), integer ids.
    Parquet,
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteSummary {
    /// Files written (tables and `dataset.toml`).
    pub files: Vec<PathBuf>,
    /// Rows per table: users, items, interactions.
    pub rows: [usize; 3],
}

struct Csv {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Csv {
    /// Streams to `tmp_of(path)`.
    fn create(path: PathBuf, header: &str) -> Result<Csv, DataError> {
        Csv::create_at(&tmp_of(&path), path, header)
    }
    /// Streams to `file` (errors name `path`).
    fn create_at(file: &Path, path: PathBuf, header: &str) -> Result<Csv, DataError> {
        let f = File::create(file).map_err(|e| DataError::io(&path, e))?;
        let mut c = Csv {
            w: BufWriter::with_capacity(1 << 20, f),
            path,
        };
        c.w.write_all(header.as_bytes())
            .map_err(|e| DataError::io(&c.path, e))?;
        Ok(c)
    }
    /// Flushes and syncs the temporary file; returns the final path (the
    /// rename happens once every table is written).
    fn finish(mut self) -> Result<PathBuf, DataError> {
        self.w.flush().map_err(|e| DataError::io(&self.path, e))?;
        self.w
            .get_ref()
            .sync_all()
            .map_err(|e| DataError::io(&self.path, e))?;
        Ok(self.path)
    }
}

/// Streams Parquet batches of `BATCH` rows.
struct Pq {
    path: PathBuf,
    w: parquet::arrow::ArrowWriter<File>,
    schema: arrow_schema::SchemaRef,
}

const BATCH: usize = 1 << 16;

impl Pq {
    /// Streams to `tmp_of(path)`.
    fn create(path: PathBuf, cols: &[(&str, arrow_schema::DataType)]) -> Result<Pq, DataError> {
        Pq::create_at(&tmp_of(&path), path, cols)
    }
    /// Streams to `file` (errors name `path`).
    fn create_at(
        file: &Path,
        path: PathBuf,
        cols: &[(&str, arrow_schema::DataType)],
    ) -> Result<Pq, DataError> {
        use arrow_schema::{Field, Schema};
        let schema = Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        ));
        let f = File::create(file).map_err(|e| DataError::io(&path, e))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_max_row_group_size(1 << 20)
            .build();
        let w =
            parquet::arrow::ArrowWriter::try_new(f, schema.clone(), Some(props)).map_err(|e| {
                DataError::Write {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
        Ok(Pq { path, w, schema })
    }
    fn write(&mut self, cols: Vec<arrow_array::ArrayRef>) -> Result<(), DataError> {
        let b = arrow_array::RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| {
            DataError::Write {
                path: self.path.clone(),
                message: e.to_string(),
            }
        })?;
        self.w.write(&b).map_err(|e| DataError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
    fn finish(self) -> Result<PathBuf, DataError> {
        self.w.close().map_err(|e| DataError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        Ok(self.path)
    }
}

/// The temporary file a table is streamed to before [`write_dataset`]
/// renames every table into place: `dir/.name.tmp<pid>`.
fn tmp_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

fn ioe(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |e| DataError::io(path, e)
}

/// Writes `users`, `items` and `interactions` tables (CSV or Parquet) and a
/// ready-to-use `dataset.toml` describing them into `out` (created if
/// needed). Interactions are streamed: memory is O(users + items).
///
/// Nothing is replaced until everything is written: the tables stream to
/// hidden temporary files that are renamed into place at the end,
/// `dataset.toml` last, so an interrupted or failed run leaves a previous
/// dataset in `out` whole (on an error the temporaries are removed; those
/// of a killed run are removed by the next run into the same folder).
///
/// # Errors
/// [`DataError::Config`] for an invalid `cfg`, [`DataError::Io`] /
/// [`DataError::Write`] when a file cannot be written.
pub fn write_dataset(
    cfg: &SyntheticConfig,
    out: &Path,
    format: OutFormat,
) -> Result<WriteSummary, DataError> {
    write_dataset_parts(cfg, out, format, 1)
}

/// [`write_dataset`] with the interactions table in `parts` part files
/// when `parts > 1`: the directory `out/interactions/` holding
/// `part-00000.<ext>`, `part-00001.<ext>`, … (the layout a Spark or
/// DataFusion job writes, read back as one table in path order), each a
/// consecutive run of about `interactions / parts` rows (a CSV part has
/// its own header line). `parts = 1` is [`write_dataset`]'s single file.
///
/// # Errors
/// As [`write_dataset`]; [`DataError::Config`] (field
/// `data.synthetic.parts`) when `parts` is 0 or exceeds the interactions.
pub fn write_dataset_parts(
    cfg: &SyntheticConfig,
    out: &Path,
    format: OutFormat,
    parts: usize,
) -> Result<WriteSummary, DataError> {
    let g = Generator::new(cfg)?;
    if parts == 0 || parts > cfg.interactions.max(1) {
        return Err(DataError::config(
            "data.synthetic.parts",
            format!(
                "must be between 1 and the number of interactions ({}), got {parts}",
                cfg.interactions
            ),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let ext = match format {
        OutFormat::Csv => "csv",
        OutFormat::Parquet => "parquet",
    };
    let paths = [
        out.join(format!("users.{ext}")),
        out.join(format!("items.{ext}")),
        out.join(interactions_file(format, parts)),
        out.join("dataset.toml"),
    ];
    // hidden temporaries of earlier interrupted runs (any pid) of these tables
    if let Ok(entries) = std::fs::read_dir(out) {
        let stems: Vec<String> = paths
            .iter()
            .filter_map(|p| {
                p.file_name()
                    .map(|n| format!(".{}.tmp", n.to_string_lossy()))
            })
            .collect();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = stems.iter().find_map(|s| name.strip_prefix(s.as_str())) {
                if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                    remove_any(&e.path());
                }
            }
        }
    }
    for (k, p) in paths.iter().enumerate() {
        let parted = k == 2 && parts > 1;
        if p.is_dir() != parted && p.exists() {
            let what = if parted {
                "is a file; the interactions' part files would be written in a directory here"
            } else {
                "is a directory; the dataset would be written here"
            };
            return Err(DataError::io(p, std::io::Error::other(what)));
        }
    }
    let result = write_tables(&g, cfg, format, &paths, parts).and_then(|()| {
        for p in &paths {
            replace(&tmp_of(p), p)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        for p in &paths {
            remove_any(&tmp_of(p));
        }
        return Err(e);
    }
    Ok(WriteSummary {
        files: paths.to_vec(),
        rows: [cfg.users, cfg.items, cfg.interactions],
    })
}

/// The interactions table's name in the dataset folder: a file, or the
/// directory of its part files.
fn interactions_file(format: OutFormat, parts: usize) -> String {
    let ext = match format {
        OutFormat::Csv => "csv",
        OutFormat::Parquet => "parquet",
    };
    if parts > 1 {
        "interactions".into()
    } else {
        format!("interactions.{ext}")
    }
}

/// Removes a file or a directory tree, if there.
fn remove_any(p: &Path) {
    if p.is_dir() {
        let _ = std::fs::remove_dir_all(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

/// Moves `tmp` to `path`; a directory already at `path` (an earlier
/// partitioned table) is moved aside first and removed once `tmp` is in place.
fn replace(tmp: &Path, path: &Path) -> Result<(), DataError> {
    if tmp.is_dir() && path.is_dir() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let old = path.with_file_name(format!(".{name}.old{}", std::process::id()));
        std::fs::rename(path, &old).map_err(|e| DataError::io(path, e))?;
        std::fs::rename(tmp, path).map_err(|e| DataError::io(path, e))?;
        let _ = std::fs::remove_dir_all(old);
        return Ok(());
    }
    std::fs::rename(tmp, path).map_err(|e| DataError::io(path, e))
}

/// Where part `k` of `parts` of the interactions is streamed, and the path
/// its errors name: the temporary file of a single table, or
/// `part-NNNNN.<ext>` in the table's temporary directory.
fn part_target(xp: &Path, ext: &str, parts: usize, k: usize) -> (PathBuf, PathBuf) {
    if parts == 1 {
        return (tmp_of(xp), xp.to_path_buf());
    }
    let name = format!("part-{k:05}.{ext}");
    (tmp_of(xp).join(&name), xp.join(name))
}

/// The first row of part `k` of `parts` over `n` rows.
fn part_start(n: usize, parts: usize, k: usize) -> usize {
    (n as u128 * k as u128 / parts as u128) as usize
}

/// Streams the three tables and `dataset.toml` of [`write_dataset`] to
/// the temporary files of `paths` (users, items, interactions, toml); the
/// interactions in `parts` part files when `parts > 1`.
fn write_tables(
    g: &Generator,
    cfg: &SyntheticConfig,
    format: OutFormat,
    paths: &[PathBuf; 4],
    parts: usize,
) -> Result<(), DataError> {
    use arrow_array::builder::{Int64Builder, StringBuilder};
    use arrow_schema::DataType::{Int64, Utf8};
    let [up, ip, xp, toml_path] = paths.clone();
    let mut files = Vec::new();
    let mut tag_buf = String::new();
    match format {
        OutFormat::Csv => {
            let mut c = Csv::create(up, "user,gender,age,region,interest\n")?;
            g.for_each_user(|u, r| {
                writeln!(
                    c.w,
                    "{u},{},{},r{},t{}",
                    r.gender, r.age, r.region, r.interest
                )
                .map_err(ioe(&c.path))
            })?;
            files.push(c.finish()?);
            let mut c = Csv::create(ip, "item,category,tags,year\n")?;
            g.for_each_item(|i, r| {
                tags_text(&r.tags, &mut tag_buf);
                writeln!(c.w, "{i},c{},{},{}", r.category, tag_buf, r.year).map_err(ioe(&c.path))
            })?;
            files.push(c.finish()?);
            const HEADER: &str = "user,item,timestamp\n";
            if parts > 1 {
                std::fs::create_dir(tmp_of(&xp)).map_err(ioe(&xp))?;
            }
            let open = |k: usize| {
                let (file, shown) = part_target(&xp, "csv", parts, k);
                Csv::create_at(&file, shown, HEADER)
            };
            let mut c = open(0)?;
            let (mut k, mut row) = (0, 0);
            let mut next = part_start(cfg.interactions, parts, 1);
            let mut line: Vec<u8> = Vec::with_capacity(48);
            let (mut b1, mut b2, mut b3) = (
                itoa::Buffer::new(),
                itoa::Buffer::new(),
                itoa::Buffer::new(),
            );
            g.for_each_interaction(|u, i, t| {
                if row == next && k + 1 < parts {
                    std::mem::replace(&mut c, open(k + 1)?).finish()?;
                    k += 1;
                    next = part_start(cfg.interactions, parts, k + 1);
                }
                row += 1;
                line.clear();
                line.extend_from_slice(b1.format(u).as_bytes());
                line.push(b',');
                line.extend_from_slice(b2.format(i).as_bytes());
                line.push(b',');
                line.extend_from_slice(b3.format(t).as_bytes());
                line.push(b'\n');
                c.w.write_all(&line).map_err(ioe(&c.path))
            })?;
            c.finish()?;
            files.push(xp.clone());
        }
        OutFormat::Parquet => {
            // Users.
            let mut p = Pq::create(
                up,
                &[
                    ("user", Int64),
                    ("gender", Utf8),
                    ("age", Int64),
                    ("region", Utf8),
                    ("interest", Utf8),
                ],
            )?;
            let mut b = (
                Int64Builder::new(),
                StringBuilder::new(),
                Int64Builder::new(),
                StringBuilder::new(),
                StringBuilder::new(),
            );
            let mut n = 0;
            let flush_u = |b: &mut (
                Int64Builder,
                StringBuilder,
                Int64Builder,
                StringBuilder,
                StringBuilder,
            ),
                           p: &mut Pq|
             -> Result<(), DataError> {
                p.write(vec![
                    Arc::new(b.0.finish()),
                    Arc::new(b.1.finish()),
                    Arc::new(b.2.finish()),
                    Arc::new(b.3.finish()),
                    Arc::new(b.4.finish()),
                ])
            };
            g.for_each_user(|u, r| {
                b.0.append_value(u as i64);
                b.1.append_value(r.gender);
                b.2.append_value(r.age as i64);
                b.3.append_value(format!("r{}", r.region));
                b.4.append_value(format!("t{}", r.interest));
                n += 1;
                if n % BATCH == 0 {
                    flush_u(&mut b, &mut p)?;
                }
                Ok(())
            })?;
            if n % BATCH != 0 {
                flush_u(&mut b, &mut p)?;
            }
            files.push(p.finish()?);
            // Items.
            let mut p = Pq::create(
                ip,
                &[
                    ("item", Int64),
                    ("category", Utf8),
                    ("tags", Utf8),
                    ("year", Int64),
                ],
            )?;
            let mut b = (
                Int64Builder::new(),
                StringBuilder::new(),
                StringBuilder::new(),
                Int64Builder::new(),
            );
            let mut n = 0;
            let flush_i = |b: &mut (Int64Builder, StringBuilder, StringBuilder, Int64Builder),
                           p: &mut Pq| {
                p.write(vec![
                    Arc::new(b.0.finish()),
                    Arc::new(b.1.finish()),
                    Arc::new(b.2.finish()),
                    Arc::new(b.3.finish()),
                ])
            };
            g.for_each_item(|i, r| {
                b.0.append_value(i as i64);
                b.1.append_value(format!("c{}", r.category));
                tags_text(&r.tags, &mut tag_buf);
                b.2.append_value(&tag_buf);
                b.3.append_value(r.year as i64);
                n += 1;
                if n % BATCH == 0 {
                    flush_i(&mut b, &mut p)?;
                }
                Ok(())
            })?;
            if n % BATCH != 0 {
                flush_i(&mut b, &mut p)?;
            }
            files.push(p.finish()?);
            // Interactions.
            if parts > 1 {
                std::fs::create_dir(tmp_of(&xp)).map_err(ioe(&xp))?;
            }
            let open = |k: usize| {
                let (file, shown) = part_target(&xp, "parquet", parts, k);
                Pq::create_at(
                    &file,
                    shown,
                    &[("user", Int64), ("item", Int64), ("timestamp", Int64)],
                )
            };
            let mut p = open(0)?;
            let (mut k, mut row) = (0, 0);
            let mut next = part_start(cfg.interactions, parts, 1);
            let mut b = (
                Int64Builder::with_capacity(BATCH),
                Int64Builder::with_capacity(BATCH),
                Int64Builder::with_capacity(BATCH),
            );
            let mut n = 0;
            let flush_x = |b: &mut (Int64Builder, Int64Builder, Int64Builder), p: &mut Pq| {
                p.write(vec![
                    Arc::new(b.0.finish()),
                    Arc::new(b.1.finish()),
                    Arc::new(b.2.finish()),
                ])
            };
            g.for_each_interaction(|u, i, t| {
                if row == next && k + 1 < parts {
                    if n > 0 {
                        flush_x(&mut b, &mut p)?;
                    }
                    n = 0;
                    std::mem::replace(&mut p, open(k + 1)?).finish()?;
                    k += 1;
                    next = part_start(cfg.interactions, parts, k + 1);
                }
                row += 1;
                b.0.append_value(u as i64);
                b.1.append_value(i as i64);
                b.2.append_value(t);
                n += 1;
                if n % BATCH == 0 {
                    flush_x(&mut b, &mut p)?;
                }
                Ok(())
            })?;
            if n % BATCH != 0 || n == 0 {
                flush_x(&mut b, &mut p)?;
            }
            p.finish()?;
            files.push(xp.clone());
        }
    }
    std::fs::write(
        tmp_of(&toml_path),
        dataset_toml_for(cfg, format, &interactions_file(format, parts))?,
    )
    .map_err(|e| DataError::io(&toml_path, e))?;
    files.push(toml_path);
    Ok(())
}

/// The `dataset.toml` describing the files of [`write_dataset`].
///
/// # Errors
/// [`DataError::Config`] if the config cannot be written as TOML.
pub fn dataset_toml(cfg: &SyntheticConfig, format: OutFormat) -> Result<String, DataError> {
    dataset_toml_for(cfg, format, &interactions_file(format, 1))
}

/// [`dataset_toml`] with the interactions table at `interactions` (a file
/// or a directory of part files, relative to the dataset folder).
fn dataset_toml_for(
    cfg: &SyntheticConfig,
    format: OutFormat,
    interactions: &str,
) -> Result<String, DataError> {
    let (ext, fmt, quoting) = match format {
        OutFormat::Csv => ("csv", Format::Csv, Some(false)),
        OutFormat::Parquet => ("parquet", Format::Parquet, None),
    };
    let table = |name: &str, key: &str| EntityTableSpec {
        file: format!("{name}.{ext}").into(),
        format: Some(fmt),
        delimiter: None,
        header: None,
        quoting,
        encoding: Encoding::Utf8,
        columns: None,
        key: key.into(),
        label: None,
    };
    #[derive(Serialize)]
    struct Data {
        path: String,
        interactions: InteractionsSpec,
        users: EntityTableSpec,
        items: EntityTableSpec,
    }
    #[derive(Serialize)]
    struct Doc {
        data: Data,
        features: FeaturesConfig,
    }
    let doc = Doc {
        data: Data {
            path: ".".into(),
            interactions: InteractionsSpec {
                file: interactions.into(),
                format: Some(fmt),
                delimiter: None,
                header: None,
                quoting,
                encoding: Encoding::Utf8,
                columns: None,
                user: "user".into(),
                item: "item".into(),
                timestamp: Some("timestamp".into()),
                weight: None,
            },
            users: table("users", "user"),
            items: table("items", "item"),
        },
        features: synthetic_features(),
    };
    let body =
        toml::to_string(&doc).map_err(|e| DataError::config("dataset.toml", e.to_string()))?;
    let params =
        toml::to_string(cfg).map_err(|e| DataError::config("dataset.toml", e.to_string()))?;
    let mut head = String::from("# Written by `twotower generate`; paths are relative to this file.\n# Generator parameters:\n");
    for l in params.lines() {
        head.push_str("#   ");
        head.push_str(l);
        head.push('\n');
    }
    Ok(head + &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_dataset_replaces_a_dataset_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let small = |users, seed| SyntheticConfig {
            users,
            items: 20,
            interactions: 300,
            seed,
            ..SyntheticConfig::default()
        };
        let listing = || {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        // a temporary left by an interrupted earlier run is cleaned up; other files stay
        std::fs::write(dir.path().join(".interactions.csv.tmp99999"), "stale").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        write_dataset(&small(30, 1), dir.path(), OutFormat::Csv).unwrap();
        std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
        let want = ["dataset.toml", "interactions.csv", "items.csv", "users.csv"];
        assert_eq!(listing(), want, "no temporary file is left");
        let users = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
        assert_eq!(users.lines().count(), 1 + 30);
        // a second write that cannot finish changes nothing and leaves nothing
        std::fs::remove_file(dir.path().join("interactions.csv")).unwrap();
        std::fs::create_dir(dir.path().join("interactions.csv")).unwrap();
        let err = write_dataset(&small(40, 2), dir.path(), OutFormat::Csv).unwrap_err();
        assert!(err.to_string().contains("interactions.csv"), "{err}");
        assert_eq!(listing(), want);
        let after = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
        assert_eq!(after, users);
        // once writable, the whole new dataset replaces the old one
        std::fs::remove_dir(dir.path().join("interactions.csv")).unwrap();
        write_dataset(&small(40, 2), dir.path(), OutFormat::Csv).unwrap();
        assert_eq!(listing(), want);
        let users = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
        assert_eq!(users.lines().count(), 1 + 40);
    }
}
