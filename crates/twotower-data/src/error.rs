//! The data crate's single error type.
//!
//! Every variant that comes from reading a file names the file; row-level
//! variants also name the line (1-based, counting the header line when the
//! table has one; for Parquet the "line" is the 1-based row number) and the
//! column.

use std::path::PathBuf;

/// Errors of the data layer: configuration, reading, parsing and encoding.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or does not match the schema
    /// (unknown keys are reported with the list of valid ones).
    #[error("config {path}: {message}")]
    ConfigParse {
        /// The config file (or `<overrides>`).
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A `--set key=value` assignment is malformed or collides with a non-table value.
    #[error("override `{assignment}`: {message}")]
    Override {
        /// The assignment as given.
        assignment: String,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration is syntactically valid but inconsistent.
    #[error("invalid config: {field}: {message}")]
    Config {
        /// Dotted path of the offending key (e.g. `features.age.boundaries`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A file read more than once (a streamed train split) no longer holds
    /// what it held when it was first read.
    #[error("{}: {message}", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// What no longer matches.
        message: String,
    },
    /// A column named in the config does not exist in the table.
    #[error("{}", unknown_column(path, *header_line, column, available))]
    UnknownColumn {
        /// The table file.
        path: PathBuf,
        /// 1-based line of the header the names were read from (`None`:
        /// the names come from the config's `columns`, or the table has
        /// no names).
        header_line: Option<u64>,
        /// The column reference as written in the config.
        column: String,
        /// The table's column names (or positions) that exist.
        available: Vec<String>,
    },
    /// A row has a different number of fields than the table's header.
    #[error("{path}:{line}: expected {expected} fields, got {got}")]
    FieldCount {
        /// The table file.
        path: PathBuf,
        /// 1-based line, counting the header.
        line: u64,
        /// Expected number of fields.
        expected: usize,
        /// Number of fields found.
        got: usize,
    },
    /// A field could not be parsed as the expected type.
    #[error("{path}:{line}: column `{column}`: expected {expected}, got {got:?}")]
    Parse {
        /// The table file.
        path: PathBuf,
        /// 1-based line, counting the header.
        line: u64,
        /// The column name (or position).
        column: String,
        /// What was expected (e.g. "integer timestamp").
        expected: &'static str,
        /// The text found (truncated to 64 bytes).
        got: String,
    },
    /// A field is not valid in the configured text encoding.
    #[error("{path}:{line}: column `{column}`: invalid UTF-8 (set encoding = \"latin1\" if the file is Latin-1)")]
    Encoding {
        /// The table file.
        path: PathBuf,
        /// 1-based line, counting the header.
        line: u64,
        /// The column name (or position).
        column: String,
    },
    /// A malformed record (e.g. an unterminated quote) reported by the CSV parser.
    #[error("{path}:{line}: malformed record: {message}")]
    Malformed {
        /// The table file.
        path: PathBuf,
        /// 1-based line, counting the header.
        line: u64,
        /// The parser's message.
        message: String,
    },
    /// The table at `path` is missing its key column (a feature table's
    /// `key`, or the item table of `--catalog`).
    #[error("{}: the key column `{column}` is missing; columns found: {available:?}", at_header(path, *header_line))]
    MissingKeyColumn {
        /// The table file.
        path: PathBuf,
        /// 1-based line of the header (`None` as in `UnknownColumn`).
        header_line: Option<u64>,
        /// The key column as written in the config.
        column: String,
        /// The table's column names (or positions).
        available: Vec<String>,
    },
    /// A file holds no bytes at all (not even a header line).
    #[error("{path}:1: the file is empty (0 bytes; expected a header line or data rows)")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// A table stored as a directory holds no part file of its format
    /// (see the `file` key of `[data.interactions]` in the README).
    #[error(
        "{path}: directory has no {format} part files (a part is a file named like \
         `part-00000.{format}` or without extension; names starting with `.` or `_` are skipped)"
    )]
    NoPartFiles {
        /// The directory.
        path: PathBuf,
        /// The table's format.
        format: String,
    },
    /// A table directory holds a part file whose extension names another
    /// format than the table's.
    #[error(
        "{path}: a {part_format} part file in a table read as {format}: its rows would be left out; \
         move it out of the table directory (or start its name with `_` or `.` to have it skipped), \
         or set the table's `format`"
    )]
    PartFormat {
        /// The part file.
        path: PathBuf,
        /// The format its extension names.
        part_format: &'static str,
        /// The table's format.
        format: &'static str,
    },
    /// A table directory without a `format` key holds part files of two
    /// formats.
    #[error(
        "{path}: the directory holds part files of two formats, {first} ({first_format}) and \
         {other} ({other_format}); set the table's `format` and move the other files out"
    )]
    MixedPartFormats {
        /// The table directory.
        path: PathBuf,
        /// The first part file (in path order) with a known extension.
        first: PathBuf,
        /// Its format.
        first_format: &'static str,
        /// The first part file of another format.
        other: PathBuf,
        /// Its format.
        other_format: &'static str,
    },
    /// A table has no data rows.
    #[error("{path}: table has no data rows")]
    EmptyTable {
        /// The table file.
        path: PathBuf,
    },
    /// The same key appears twice in a feature table with different values.
    #[error("{path}:{line}: key `{key}` already defined at {0} with a different value in column `{column}`: {first_value:?} at {0}, {value:?} at line {line}", first_place(path, first_path, *first_line))]
    ConflictingRow {
        /// The feature table file (a directory's part file) of the second
        /// occurrence.
        path: PathBuf,
        /// 1-based line of the second occurrence.
        line: u64,
        /// The file of the first occurrence (another part of a directory,
        /// or `path`).
        first_path: Box<std::path::Path>,
        /// 1-based line of the first occurrence.
        first_line: u64,
        /// The duplicated key.
        key: Box<str>,
        /// The first column whose values differ.
        column: Box<str>,
        /// That column's value at `first_line` (boxed: keeps `DataError` small).
        first_value: Box<str>,
        /// That column's value at `line`.
        value: Box<str>,
    },
    /// A Parquet file could not be read or has an unsupported column type.
    #[error("{path}: parquet: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Writing generated data failed.
    #[error("{path}: write: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl DataError {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A configuration error on the dotted key `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        DataError::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `path`, or `path:LINE (header line)`.
fn at_header(path: &std::path::Path, header_line: Option<u64>) -> String {
    match header_line {
        Some(l) => format!("{}:{l} (header line)", path.display()),
        None => path.display().to_string(),
    }
}

fn unknown_column(
    path: &std::path::Path,
    header_line: Option<u64>,
    column: &str,
    available: &[String],
) -> String {
    match header_line {
        Some(_) => format!(
            "{}: no column `{column}`; columns found: {available:?}",
            at_header(path, header_line)
        ),
        None => format!(
            "{}: unknown column `{column}`; available columns: {available:?}",
            path.display()
        ),
    }
}

/// Shortens a raw field for an error message (at most 64 bytes, lossy UTF-8).
pub(crate) fn snippet(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(64)];
    String::from_utf8_lossy(cut).into_owned()
}

/// `line N` in the same file, `FILE:N` in another part of a directory.
fn first_place(path: &std::path::Path, first: &std::path::Path, line: u64) -> String {
    if first == path || first.as_os_str().is_empty() {
        format!("line {line}")
    } else {
        format!("{}:{line}", first.display())
    }
}
