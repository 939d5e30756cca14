//! The config comparison of a resume: a checkpoint's config and the
//! current one, with every default filled in, key by key.

use std::path::PathBuf;

use crate::config::Config;

/// A config document with its `[model]`, `[loss]`, `[ssl]`, `[train]` and
/// `[eval]` sections replaced by their resolved values (every default filled
/// in), so that an unset key and its default compare equal. A document that
/// does not parse is returned as it is.
pub(super) fn resolved_doc(doc: &toml::Value) -> toml::Value {
    let mut v = doc.clone();
    let Ok(c) = Config::from_doc(doc.clone(), PathBuf::new(), "checkpoint") else {
        return v;
    };
    if let toml::Value::Table(t) = &mut v {
        let sections = [
            ("model", toml::Value::try_from(&c.raw.model)),
            ("loss", toml::Value::try_from(&c.raw.loss)),
            ("ssl", toml::Value::try_from(&c.raw.ssl)),
            ("train", toml::Value::try_from(&c.raw.train)),
            ("eval", toml::Value::try_from(&c.raw.eval)),
        ];
        for (k, s) in sections {
            if let Ok(s) = s {
                t.insert(k.to_string(), s);
            }
        }
    }
    v
}

/// Every dotted key where two config documents differ, with both values
/// (`checkpoint` = `a`, `now` = `b`), appended to `out` in key order.
pub(super) fn differences(a: &toml::Value, b: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    use toml::Value;
    match (a, b) {
        (Value::Table(x), Value::Table(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => differences(va, vb, &path, out),
                    (Some(va), None) => {
                        out.push(format!("{path} = {va} in the checkpoint, unset now"))
                    }
                    (None, Some(vb)) => {
                        out.push(format!("{path} unset in the checkpoint, {vb} now"))
                    }
                    (None, None) => {}
                }
            }
        }
        // an integer and a float of the same value are the same setting
        (Value::Integer(i), Value::Float(f)) | (Value::Float(f), Value::Integer(i))
            if *i as f64 == *f => {}
        _ if a != b => out.push(format!("{prefix} = {a} in the checkpoint, {b} now")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_every_key_and_both_values() {
        let diff = |a: &str, b: &str| {
            let (a, b): (toml::Value, toml::Value) =
                (toml::from_str(a).unwrap(), toml::from_str(b).unwrap());
            let mut out = Vec::new();
            differences(&a, &b, "", &mut out);
            out
        };
        let a = "[loss]\ntemperature = 0.1\n[train]\nseed = 1\n";
        assert!(diff(a, a).is_empty());
        assert_eq!(
            diff(
                a,
                "[loss]\ntemperature = 0.2\n[train]\nseed = 1\nepochs = 3\n"
            ),
            vec![
                "loss.temperature = 0.1 in the checkpoint, 0.2 now".to_string(),
                "train.epochs unset in the checkpoint, 3 now".to_string(),
            ]
        );
        // resolved: 3 and 3.0 are the same setting, an unset key equals its
        // default, a real change is still named
        let resolved = |a: &str, b: &str| {
            let (a, b): (toml::Value, toml::Value) =
                (toml::from_str(a).unwrap(), toml::from_str(b).unwrap());
            let mut out = Vec::new();
            differences(&resolved_doc(&a), &resolved_doc(&b), "", &mut out);
            out
        };
        let a = "[train]\nrecency_decay = 3.0\n";
        assert!(resolved(a, "[train]\nrecency_decay = 3\n").is_empty());
        assert!(resolved(
            a,
            "[train]\nrecency_decay = 3\n[loss]\nmask_false_negatives = false\n"
        )
        .is_empty());
        assert_eq!(
            resolved(a, "[train]\nrecency_decay = 1\n"),
            vec!["train.recency_decay = 3.0 in the checkpoint, 1.0 now".to_string()]
        );
    }
}
