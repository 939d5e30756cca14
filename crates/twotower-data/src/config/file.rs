//! Reading a config file: the TOML document ([`load_config_doc`]), the
//! `--set key=value` overrides applied to it ([`apply_override`]; the other
//! crates reuse both for their own sections), and the `[data]` and
//! `[features]` sections deserialized from it ([`parse_data_sections`],
//! [`load_data_config`]).

use std::path::{Path, PathBuf};

use crate::error::DataError;

use super::{DataConfig, FeatureConfig, FeaturesConfig};

/// Reads a TOML config file and applies `--set key=value` overrides in order.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::ConfigParse`]
/// if it is not TOML, [`DataError::Override`] for a bad assignment.
pub fn load_config_doc(path: &Path, overrides: &[String]) -> Result<toml::Value, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut doc: toml::Value = toml::from_str::<toml::Table>(&text)
        .map(toml::Value::Table)
        .map_err(|e| DataError::ConfigParse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    for a in overrides {
        apply_override(&mut doc, a)?;
    }
    Ok(doc)
}

/// Applies one `a.b.c=value` assignment to a TOML document.
///
/// The value is parsed as a TOML value (number, bool, array, inline table,
/// quoted string); if that fails it is taken verbatim as a string
/// (`--set data.preset=movielens-100k`). Missing intermediate tables are
/// created.
///
/// # Errors
/// [`DataError::Override`] when there is no `=`, a key segment is empty, or
/// an intermediate key holds a non-table value.
pub fn apply_override(doc: &mut toml::Value, assignment: &str) -> Result<(), DataError> {
    let err = |m: &str| DataError::Override {
        assignment: assignment.to_string(),
        message: m.to_string(),
    };
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| err("expected key=value"))?;
    let keys: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(err("empty key segment"));
    }
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut cur = doc;
    for (i, k) in keys.iter().enumerate() {
        let table = cur
            .as_table_mut()
            .ok_or_else(|| err(&format!("`{}` is not a table", keys[..i].join("."))))?;
        if i + 1 == keys.len() {
            table.insert((*k).to_string(), value);
            return Ok(());
        }
        cur = table
            .entry((*k).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    Ok(())
}

/// Deserializes the `[data]` and `[features]` sections of a config document
/// (other sections are ignored). `origin` names the file in error messages.
///
/// # Errors
/// [`DataError::ConfigParse`] when `[data]` is missing or a section does not
/// match the schema (the message lists the valid keys of an unknown one).
pub fn parse_data_sections(
    doc: &toml::Value,
    origin: &Path,
) -> Result<(DataConfig, FeaturesConfig), DataError> {
    let perr = |section: &str, e: String| DataError::ConfigParse {
        path: origin.to_path_buf(),
        message: format!("[{section}]: {e}"),
    };
    let data = match doc.get("data") {
        Some(v) => v
            .clone()
            .try_into::<DataConfig>()
            .map_err(|e| perr("data", e.to_string()))?,
        None => return Err(perr("data", "missing section".into())),
    };
    let features = match doc.get("features") {
        Some(v) => {
            let t = v.as_table().ok_or_else(|| {
                perr(
                    "features",
                    "must be a table of [features.<name>] tables".into(),
                )
            })?;
            let mut out = FeaturesConfig::new();
            for (name, spec) in t {
                let f = spec
                    .clone()
                    .try_into::<FeatureConfig>()
                    .map_err(|e| perr(&format!("features.{name}"), e.to_string()))?;
                out.insert(name.clone(), f);
            }
            out
        }
        None => FeaturesConfig::new(),
    };
    Ok((data, features))
}

/// Loads `[data]` and `[features]` from a config file with overrides.
/// Returns them with the config file's directory (the `base_dir` of
/// [`crate::load_dataset`]).
pub fn load_data_config(
    path: &Path,
    overrides: &[String],
) -> Result<(DataConfig, FeaturesConfig, PathBuf), DataError> {
    let doc = load_config_doc(path, overrides)?;
    let (d, f) = parse_data_sections(&doc, path)?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok((d, f, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_parses_toml_values_and_creates_tables() {
        let mut doc = toml::Value::Table(toml::Table::new());
        apply_override(&mut doc, "features.genres.dim=16").unwrap();
        apply_override(&mut doc, "data.preset=movielens-100k").unwrap();
        apply_override(&mut doc, "data.split.test_fraction = 0.25").unwrap();
        apply_override(&mut doc, "a.list=[1, 2]").unwrap();
        apply_override(&mut doc, "a.s=\"x y\"").unwrap();
        assert_eq!(doc["features"]["genres"]["dim"].as_integer(), Some(16));
        assert_eq!(doc["data"]["preset"].as_str(), Some("movielens-100k"));
        assert_eq!(doc["data"]["split"]["test_fraction"].as_float(), Some(0.25));
        assert_eq!(doc["a"]["list"].as_array().unwrap().len(), 2);
        assert_eq!(doc["a"]["s"].as_str(), Some("x y"));
        // Assigning below a non-table is an error, not a panic.
        assert!(matches!(
            apply_override(&mut doc, "a.s.t=1"),
            Err(DataError::Override { .. })
        ));
        assert!(apply_override(&mut doc, "novalue").is_err());
        assert!(apply_override(&mut doc, "a..b=1").is_err());
    }

    #[test]
    fn unknown_key_lists_valid_ones() {
        let doc: toml::Value = toml::from_str("[data]\npaht = \"x\"\n").unwrap();
        let e = parse_data_sections(&doc, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("paht") && e.contains("preset"), "{e}");
        let doc: toml::Value =
            toml::from_str("[data]\n[features.g]\nside=\"user\"\nkind=\"categorical\"\ndimm=3\n")
                .unwrap();
        let e = parse_data_sections(&doc, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("features.g") && e.contains("dimm") && e.contains("hash_buckets"),
            "{e}"
        );
    }
}
