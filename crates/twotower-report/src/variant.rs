//! The config variants of a comparison: [`parse_variant`]
//! (`NAME=KEY=VALUE[,KEY=VALUE...]`), [`override_key`], and the
//! [`resolved_config`] a report shows.

use serde::{Deserialize, Serialize};

use crate::ReportError;

/// A named list of `--set` overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantSpec {
    /// Name (also the run sub-directory): ASCII letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// `key=value` overrides, applied after the global ones.
    pub overrides: Vec<String>,
}

/// Parses `NAME=KEY=VALUE[,KEY=VALUE...]` (or `NAME=` for no override).
/// Commas inside brackets, braces or quotes do not split
/// (`big=model.hidden=[256,128],loss.temperature=0.1` is two overrides).
///
/// # Errors
/// [`ReportError::Variant`]: no `=`, an empty or non-portable name, an
/// override without `=` or with an empty key, unbalanced brackets/quotes.
pub fn parse_variant(spec: &str) -> Result<VariantSpec, ReportError> {
    let bad = |m: &str| ReportError::Variant {
        spec: spec.to_string(),
        message: m.to_string(),
    };
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=KEY=VALUE[,KEY=VALUE...]"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("empty variant name"));
    }
    if name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(bad(
            "a variant name may only hold ASCII letters, digits, '_', '-' and '.' (it names a directory)",
        ));
    }
    let mut overrides = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut cur = String::new();
    for c in rest.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                cur.push(c);
            }
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '[' | '{' => {
                    depth += 1;
                    cur.push(c);
                }
                ']' | '}' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(bad("unbalanced closing bracket"));
                    }
                    cur.push(c);
                }
                ',' if depth == 0 => {
                    overrides.push(std::mem::take(&mut cur));
                }
                _ => cur.push(c),
            },
        }
    }
    if quote.is_some() {
        return Err(bad("unterminated quote"));
    }
    if depth != 0 {
        return Err(bad("unbalanced brackets"));
    }
    overrides.push(cur);
    let overrides: Vec<String> = overrides
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut keys: Vec<&str> = Vec::new();
    for o in &overrides {
        match o.split_once('=') {
            Some((k, _)) if !k.trim().is_empty() => {
                let k = k.trim();
                if keys.contains(&k) {
                    return Err(bad(&format!("key `{k}` is set twice; give each key once")));
                }
                keys.push(k);
            }
            _ => return Err(bad(&format!("override `{o}` is not KEY=VALUE"))),
        }
    }
    Ok(VariantSpec {
        name: name.to_string(),
        overrides,
    })
}

/// The config document with every default filled in for the sections this
/// crate owns (`[model]`, `[loss]`, `[ssl]`, `[train]`, `[eval]`); `[data]`
/// and `[features]` stay as written (a preset or generator fills the rest
/// when the data loads). This is the "full configuration" a report shows.
pub fn resolved_config(cfg: &twotower::config::Config) -> toml::Value {
    let mut doc = cfg.doc.clone();
    let r = &cfg.raw;
    if let Some(t) = doc.as_table_mut() {
        let sections: [(&str, Result<toml::Value, toml::ser::Error>); 5] = [
            ("model", toml::Value::try_from(&r.model)),
            ("loss", toml::Value::try_from(&r.loss)),
            ("ssl", toml::Value::try_from(&r.ssl)),
            ("train", toml::Value::try_from(&r.train)),
            ("eval", toml::Value::try_from(&r.eval)),
        ];
        for (name, v) in sections {
            if let Ok(v) = v {
                t.insert(name.to_string(), v);
            }
        }
    }
    doc
}

/// The dotted key of a `key=value` override, trimmed.
pub fn override_key(o: &str) -> &str {
    o.split_once('=').map(|(k, _)| k.trim()).unwrap_or(o.trim())
}
