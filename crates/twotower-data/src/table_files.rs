//! A table stored as a directory of part files — what Spark, DataFusion,
//! Hive or `twotower generate --parts` write: `interactions/part-00000.parquet`,
//! `interactions/part-00001.parquet`, … (any depth: `date=2024-01-01/part-0.parquet`).
//!
//! A table path (`file = "..."` of a `[data.*]` section) that names a
//! directory is read as the concatenation of its part files, in
//! lexicographic order of their paths relative to it (the order of Spark's
//! `part-NNNNN` numbering and of Hive partition folders). A part file is a
//! regular file whose name does not start with `.` or `_` (Spark's
//! `_SUCCESS`, `.part-00000.crc`, `_temporary/`, likewise folders), and
//! whose extension is its format's (`parquet`/`pq`, `csv`/`txt`,
//! `tsv`/`tab`/`txt`) or absent (Hadoop's `part-00000`). Other files are
//! left out. Hive partition values in folder names (`date=...`) are not
//! read as columns. Each part is read with the table's options (a CSV part
//! has its own header line); errors name the part file and its line.
//!
//! Leaf module: `config` (which infers a directory's format from its parts)
//! and `read` both use it.

use std::path::{Path, PathBuf};

use crate::config::Format;
use crate::error::DataError;

/// Is `name` a hidden or bookkeeping entry (`.x`, `_x`) rather than data?
fn hidden(name: &std::ffi::OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.first().is_some_and(|&c| c == b'.' || c == b'_')
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// Does a part file with this extension hold `format` data?
fn matches(format: Format, ext: Option<&str>) -> bool {
    match (format, ext) {
        (_, None) => true,
        (Format::Parquet, Some(e)) => matches!(e, "parquet" | "pq"),
        (Format::Csv, Some(e)) => matches!(e, "csv" | "txt"),
        (Format::Tsv, Some(e)) => matches!(e, "tsv" | "tab" | "txt"),
    }
}

/// The format an extension names without doubt (`txt` names none: it may
/// be CSV or TSV, or a note).
fn format_of(ext: Option<&str>) -> Option<Format> {
    match ext? {
        "parquet" | "pq" => Some(Format::Parquet),
        "tsv" | "tab" => Some(Format::Tsv),
        "csv" => Some(Format::Csv),
        _ => None,
    }
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Csv => "csv",
        Format::Tsv => "tsv",
        Format::Parquet => "parquet",
    }
}

/// Does the file start with Parquet's magic bytes `PAR1`?
pub(crate) fn is_parquet(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"PAR1"
}

/// Folder depth below a table directory beyond which the walk stops with
/// an error (a symbolic-link loop; Hive layouts nest a level a partition key).
const MAX_DEPTH: usize = 32;

/// Every regular, non-hidden file under `dir`, sorted by path.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(DataError::io(
                &d,
                std::io::Error::other(format!(
                    "more than {MAX_DEPTH} folders deep below the table directory {} \
                     (a symbolic-link loop?)",
                    dir.display()
                )),
            ));
        }
        for e in std::fs::read_dir(&d).map_err(|e| DataError::io(&d, e))? {
            let e = e.map_err(|e| DataError::io(&d, e))?;
            if hidden(&e.file_name()) {
                continue;
            }
            let p = e.path();
            // follows symbolic links, as opening a file would
            let meta = std::fs::metadata(&p).map_err(|e| DataError::io(&p, e))?;
            if meta.is_dir() {
                stack.push((p, depth + 1));
            } else if meta.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files of the table at `path`: `[path]` for a file (or a path that
/// does not exist: opening it reports that), the part files of a directory
/// (see the module docs) in order.
///
/// # Errors
/// [`DataError::Io`] when the directory cannot be listed;
/// [`DataError::EmptyTable`] for a directory without a `format` part file.
pub(crate) fn table_files(path: &Path, format: Format) -> Result<Vec<PathBuf>, DataError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for p in walk(path)? {
        let ext = extension(&p);
        if matches(format, ext.as_deref()) {
            files.push(p);
        } else if let Some(other) = format_of(ext.as_deref()) {
            // data of another format in the table: reading around it would
            // silently drop its rows
            return Err(DataError::PartFormat {
                path: p,
                part_format: format_name(other),
                format: format_name(format),
            });
        }
    }
    if files.is_empty() {
        return Err(DataError::NoPartFiles {
            path: path.to_path_buf(),
            format: format_name(format).to_string(),
        });
    }
    Ok(files)
}

/// The format of a directory's part files: the one their extensions name
/// (`parquet`/`pq`, `csv`, `tsv`/`tab`), or, when none names one, Parquet
/// if the first extension-less part starts with Parquet's magic bytes
/// (Hadoop's `part-00000`). `Ok(None)`: nothing tells (the caller's default
/// applies), or `dir` is no directory.
///
/// # Errors
/// [`DataError::MixedPartFormats`] when the extensions name two formats
/// (a stray `notes.csv` among Parquet parts would otherwise decide the
/// format and drop the parts); [`DataError::Io`] when it cannot be listed.
pub(crate) fn dir_format(dir: &Path) -> Result<Option<Format>, DataError> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let files = walk(dir)?;
    let mut found: Option<(Format, &PathBuf)> = None;
    for p in &files {
        let Some(f) = format_of(extension(p).as_deref()) else {
            continue;
        };
        match found {
            None => found = Some((f, p)),
            Some((g, first)) if g != f => {
                return Err(DataError::MixedPartFormats {
                    path: dir.to_path_buf(),
                    first: first.clone(),
                    first_format: format_name(g),
                    other: p.clone(),
                    other_format: format_name(f),
                })
            }
            Some(_) => {}
        }
    }
    if let Some((f, _)) = found {
        return Ok(Some(f));
    }
    let bare = files.iter().find(|p| extension(p).is_none());
    Ok(bare.filter(|p| is_parquet(p)).map(|_| Format::Parquet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_listed_in_path_order_without_bookkeeping_files() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        for f in [
            "part-00001.parquet",
            "part-00000.parquet",
            "_SUCCESS",
            ".part-00000.parquet.crc",
            "README.md",
            "date=2024-01-02/part-0.parquet",
            "date=2024-01-01/part-0.parquet",
            "_temporary/part-9.parquet",
            "part-00002",
        ] {
            let p = t.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        let got: Vec<String> = table_files(t, Format::Parquet)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(t).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "date=2024-01-01/part-0.parquet",
                "date=2024-01-02/part-0.parquet",
                "part-00000.parquet",
                "part-00001.parquet",
                "part-00002",
            ]
        );
        assert_eq!(dir_format(t).unwrap(), Some(Format::Parquet));
        // read as CSV, the Parquet parts would be dropped: an error naming one
        match table_files(t, Format::Csv) {
            Err(DataError::PartFormat {
                path,
                part_format,
                format,
            }) => {
                assert_eq!(path, t.join("date=2024-01-01/part-0.parquet"));
                assert_eq!((part_format, format), ("parquet", "csv"));
            }
            other => panic!("expected PartFormat, got {other:?}"),
        }
    }

    /// Regression (trial of 2026-12-08): one stray `a-part.csv` among
    /// Parquet parts decided the format of a directory without a `format`
    /// key, and the Parquet parts were silently left out.
    #[test]
    fn parts_of_two_formats_are_an_error_without_a_format_key() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        for f in ["a-part.csv", "part-00000.parquet", "part-00001.parquet"] {
            std::fs::write(t.join(f), b"x").unwrap();
        }
        let e = dir_format(t).unwrap_err();
        assert!(
            matches!(&e, DataError::MixedPartFormats { first, other, .. }
                if *first == t.join("a-part.csv") && *other == t.join("part-00000.parquet")),
            "{e:?}"
        );
        assert!(e.to_string().contains("set the table's `format`"), "{e}");
        // notes that name no format are left out, not a second format
        std::fs::remove_file(t.join("a-part.csv")).unwrap();
        std::fs::write(t.join("notes.txt"), b"x").unwrap();
        assert_eq!(dir_format(t).unwrap(), Some(Format::Parquet));
        assert_eq!(table_files(t, Format::Parquet).unwrap().len(), 2);
    }

    /// Hadoop's extension-less `part-00000` files: Parquet when they start
    /// with its magic bytes, else nothing tells (the CSV default applies).
    #[test]
    fn extensionless_parts_are_parquet_by_their_magic_bytes() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        std::fs::write(t.join("part-00000"), b"user,item\n1,2\n").unwrap();
        assert_eq!(dir_format(t).unwrap(), None);
        std::fs::write(t.join("part-00000"), b"PAR1 and the rest").unwrap();
        assert_eq!(dir_format(t).unwrap(), Some(Format::Parquet));
        assert!(is_parquet(&t.join("part-00000")));
        assert!(!is_parquet(&t.join("missing")));
        assert_eq!(dir_format(&t.join("part-00000")).unwrap(), None);
    }

    #[test]
    fn a_directory_without_parts_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("_SUCCESS"), b"").unwrap();
        let e = table_files(d.path(), Format::Parquet)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&d.path().display().to_string()), "{e}");
        assert!(e.contains("no parquet part files"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_loop_is_an_error_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("part-0.csv"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("loop")).unwrap();
        let e = table_files(d.path(), Format::Csv).unwrap_err().to_string();
        assert!(e.contains("symbolic-link loop"), "{e}");
    }

    #[test]
    fn a_file_is_its_own_single_part() {
        let p = Path::new("no/such/file.csv");
        assert_eq!(table_files(p, Format::Csv).unwrap(), vec![p.to_path_buf()]);
    }
}
