//! The table files of `[data]`: `[data.interactions]` ([`InteractionsSpec`]),
//! `[data.users]`/`[data.items]` ([`EntityTableSpec`]) and the long
//! (key, value) tables of multi-valued features ([`LongTableSpec`]); their
//! columns ([`ColumnRef`]), [`Format`] and [`Encoding`]; and
//! [`ReadOptions`], how a file is read once resolved against `data.path`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// A column given by name (header or `columns` list) or 0-based position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    /// 0-based position in the row.
    Index(usize),
    /// Column name from the header line, the `columns` list, or the Parquet schema.
    Name(String),
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnRef::Index(i) => write!(f, "#{i}"),
            ColumnRef::Name(n) => f.write_str(n),
        }
    }
}

impl From<&str> for ColumnRef {
    fn from(s: &str) -> Self {
        ColumnRef::Name(s.to_string())
    }
}

/// File format of a table. Default: from the file extension (`.parquet`/`.pq`
/// → parquet, `.tsv`/`.tab` → tsv, anything else → csv).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text; default delimiter `,`, default `quoting = true`.
    Csv,
    /// Delimited text; default delimiter `\t`, default `quoting = false`.
    Tsv,
    /// Apache Parquet (string, integer, float and boolean columns).
    Parquet,
}

/// Text encoding of a delimited file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Encoding {
    /// UTF-8 (default); invalid bytes are an error naming file, line and column.
    #[default]
    #[serde(rename = "utf8", alias = "utf-8")]
    Utf8,
    /// ISO-8859-1: each byte is the code point U+00XX.
    #[serde(rename = "latin1", alias = "latin-1", alias = "iso-8859-1")]
    Latin1,
}

/// `[data.interactions]`: one row per (user, item) event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteractionsSpec {
    /// The file, relative to `data.path`.
    pub file: PathBuf,
    /// Format; default from the extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Field delimiter, any string (`","`, `"\t"`, `"|"`, `"::"`); default by format.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether the first line is a header of column names. Default `true`.
    #[serde(default)]
    pub header: Option<bool>,
    /// Whether `"`-quoted fields are recognised (single-byte delimiters only).
    /// Default `true` for csv, `false` for tsv.
    #[serde(default)]
    pub quoting: Option<bool>,
    /// Text encoding. Default `utf8`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Column names for a headerless file (so columns can be referenced by name).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The user key column.
    pub user: ColumnRef,
    /// The item key column.
    pub item: ColumnRef,
    /// Integer timestamp column (any unit). Absent: the row number is used.
    #[serde(default)]
    pub timestamp: Option<ColumnRef>,
    /// Optional numeric weight column (kept, not used by the split).
    #[serde(default)]
    pub weight: Option<ColumnRef>,
}

/// `[data.users]` / `[data.items]`: a feature table with one row per entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityTableSpec {
    /// The file, relative to `data.path`.
    pub file: PathBuf,
    /// Format; default from the extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Field delimiter; default by format.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether the first line is a header. Default `true`.
    #[serde(default)]
    pub header: Option<bool>,
    /// Whether quoted fields are recognised. Default `true` for csv, `false` for tsv.
    #[serde(default)]
    pub quoting: Option<bool>,
    /// Text encoding. Default `utf8`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Column names for a headerless file.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The entity key column (matches the interactions' user/item column).
    pub key: ColumnRef,
    /// `[data.items]` only: a column shown beside each item by `recommend`
    /// and `similar` (a title, a name); read as text, not a model feature.
    /// Default none (the MovieLens presets: the title). On `[data.users]`
    /// it is an error.
    #[serde(default)]
    pub label: Option<ColumnRef>,
}

/// A long (key, value) table for a multi-categorical feature: one row per
/// (entity, value) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongTableSpec {
    /// The file, relative to `data.path`.
    pub file: PathBuf,
    /// Format; default from the extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// Field delimiter; default by format.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether the first line is a header. Default `true`.
    #[serde(default)]
    pub header: Option<bool>,
    /// Whether quoted fields are recognised.
    #[serde(default)]
    pub quoting: Option<bool>,
    /// Text encoding. Default `utf8`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Column names for a headerless file.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The entity key column.
    pub key: ColumnRef,
    /// The value column.
    pub value: ColumnRef,
}

/// How a table file is read, resolved from a spec (paths absolute).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Resolved path: a file, or a directory of part files (`crate::table_files`).
    pub path: PathBuf,
    /// Resolved format.
    pub format: Format,
    /// Delimiter bytes (in the file's encoding).
    pub delimiter: Vec<u8>,
    /// First line is a header.
    pub header: bool,
    /// `"`-quoting recognised.
    pub quoting: bool,
    /// Text encoding.
    pub encoding: Encoding,
    /// Column names for a headerless file.
    pub columns: Option<Vec<String>>,
}

#[allow(clippy::too_many_arguments)]
fn resolve_read(
    field: &str,
    dir: &Path,
    file: &Path,
    format: Option<Format>,
    delimiter: &Option<String>,
    header: Option<bool>,
    quoting: Option<bool>,
    encoding: Encoding,
    columns: &Option<Vec<String>>,
) -> Result<ReadOptions, DataError> {
    let path = dir.join(file);
    // a directory of part files: the format of its parts' extension
    let format = match format {
        Some(f) => f,
        None => match crate::table_files::dir_format(&path)? {
            Some(f) => f,
            // a file: its extension, or Parquet's magic bytes without one
            None if path.extension().is_none() && crate::table_files::is_parquet(&path) => {
                Format::Parquet
            }
            None => format_from_extension(&path),
        },
    };
    let delimiter = match delimiter.as_deref() {
        Some("") => {
            return Err(DataError::config(
                format!("{field}.delimiter"),
                "must not be empty",
            ))
        }
        Some("tab") | Some("\\t") => b"\t".to_vec(),
        Some(d) => match encoding {
            Encoding::Utf8 => d.as_bytes().to_vec(),
            Encoding::Latin1 => {
                let mut out = Vec::new();
                for c in d.chars() {
                    let c = c as u32;
                    if c > 0xFF {
                        return Err(DataError::config(
                            format!("{field}.delimiter"),
                            "a latin1 file's delimiter must be Latin-1 characters",
                        ));
                    }
                    out.push(c as u8);
                }
                out
            }
        },
        None => match format {
            Format::Tsv => b"\t".to_vec(),
            _ => b",".to_vec(),
        },
    };
    if delimiter.contains(&b'\n') || delimiter.contains(&b'\r') {
        return Err(DataError::config(
            format!("{field}.delimiter"),
            "must not contain a line break",
        ));
    }
    let quoting = quoting.unwrap_or(format == Format::Csv && delimiter.len() == 1);
    if quoting && delimiter.len() != 1 {
        return Err(DataError::config(
            format!("{field}.quoting"),
            "quoting is only supported with a single-byte delimiter",
        ));
    }
    Ok(ReadOptions {
        path,
        format,
        delimiter,
        header: header.unwrap_or(true),
        quoting,
        encoding,
        columns: columns.clone(),
    })
}

/// Format implied by a file name: `.parquet`/`.pq` → parquet, `.tsv`/`.tab` → tsv, else csv.
pub fn format_from_extension(path: &Path) -> Format {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("parquet") | Some("pq") => Format::Parquet,
        Some("tsv") | Some("tab") => Format::Tsv,
        _ => Format::Csv,
    }
}

impl InteractionsSpec {
    /// Resolves the reading options against the data directory.
    pub fn read_options(&self, dir: &Path) -> Result<ReadOptions, DataError> {
        resolve_read(
            "data.interactions",
            dir,
            &self.file,
            self.format,
            &self.delimiter,
            self.header,
            self.quoting,
            self.encoding,
            &self.columns,
        )
    }
}

impl EntityTableSpec {
    /// Resolves the reading options against the data directory.
    pub fn read_options(&self, dir: &Path, field: &str) -> Result<ReadOptions, DataError> {
        resolve_read(
            field,
            dir,
            &self.file,
            self.format,
            &self.delimiter,
            self.header,
            self.quoting,
            self.encoding,
            &self.columns,
        )
    }
}

impl LongTableSpec {
    /// Resolves the reading options against the data directory.
    pub fn read_options(&self, dir: &Path, field: &str) -> Result<ReadOptions, DataError> {
        resolve_read(
            field,
            dir,
            &self.file,
            self.format,
            &self.delimiter,
            self.header,
            self.quoting,
            self.encoding,
            &self.columns,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_data_sections;

    #[test]
    fn column_refs_by_name_or_position() {
        let doc: toml::Value =
            toml::from_str("[data.interactions]\nfile=\"a.csv\"\nuser=0\nitem=\"movie\"\n")
                .unwrap();
        let (d, _) = parse_data_sections(&doc, Path::new("c.toml")).unwrap();
        let i = d.interactions.unwrap();
        assert_eq!(i.user, ColumnRef::Index(0));
        assert_eq!(i.item, ColumnRef::Name("movie".into()));
    }
}
