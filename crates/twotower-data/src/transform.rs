//! Value transforms: one raw cell → the token a feature sees (`transform`,
//! `non_digit`), bucket names, and 0/1 flags. Shared by the loader and the
//! serving-time [`crate::encode::FeatureEncoder`].

use crate::config::{FeatureConfig, Transform};

/// Applies a feature's transform to one raw value; `None` = missing.
pub fn transform_value(raw: &str, f: &FeatureConfig) -> Option<String> {
    let v = raw.trim();
    if v.is_empty() {
        return None;
    }
    match f.transform {
        None => Some(v.to_string()),
        Some(Transform::Lowercase) => Some(v.to_ascii_lowercase()),
        Some(Transform::FirstChar) => {
            let c = v.chars().next()?;
            match &f.non_digit {
                Some(o) if !c.is_ascii_digit() => Some(o.clone()),
                _ => Some(c.to_string()),
            }
        }
        Some(Transform::Year) => last_year(v).map(|y| y.to_string()),
        Some(Transform::Decade) => last_year(v).map(|y| format!("{}s", y / 10 * 10)),
    }
}

/// The last run of exactly four ASCII digits in `s`.
fn last_year(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    let mut i = b.len();
    while i > 0 {
        if b[i - 1].is_ascii_digit() {
            let end = i;
            while i > 0 && b[i - 1].is_ascii_digit() {
                i -= 1;
            }
            if end - i == 4 {
                return std::str::from_utf8(&b[i..end]).ok()?.parse().ok();
            }
        } else {
            i -= 1;
        }
    }
    None
}

pub(crate) fn bucket_tokens(b: &[f64]) -> Vec<String> {
    let mut t = Vec::with_capacity(b.len() + 1);
    t.push(format!("<{}", b[0]));
    for w in b.windows(2) {
        t.push(format!("[{},{})", w[0], w[1]));
    }
    t.push(format!(">={}", b[b.len() - 1]));
    t
}

/// Parses a 0/1 flag: `Some(true)` for a non-zero number or true/yes,
/// `Some(false)` for 0/false/no/empty, `None` if unparsable.
pub(crate) fn parse_flag(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.is_empty() {
        return Some(false);
    }
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "t" => return Some(true),
        "false" | "no" | "n" | "f" => return Some(false),
        _ => {}
    }
    s.parse::<f64>().ok().map(|x| x != 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FeatureKind, Side};

    #[test]
    fn year_and_first_char_transforms() {
        let mut f = FeatureConfig::new(Side::Item, FeatureKind::Bucketized, None);
        f.transform = Some(Transform::Year);
        assert_eq!(transform_value("01-Jan-1995", &f).as_deref(), Some("1995"));
        assert_eq!(
            transform_value("2001: A Space Odyssey (1968)", &f).as_deref(),
            Some("1968")
        );
        assert_eq!(transform_value("", &f), None);
        assert_eq!(transform_value("12345", &f), None);
        f.transform = Some(Transform::Decade);
        assert_eq!(transform_value("Heat (1995)", &f).as_deref(), Some("1990s"));
        f.transform = Some(Transform::FirstChar);
        f.non_digit = Some("other".into());
        assert_eq!(transform_value("85711", &f).as_deref(), Some("8"));
        assert_eq!(transform_value("E2A4H", &f).as_deref(), Some("other"));
    }

    #[test]
    fn bucket_names_and_flags() {
        assert_eq!(bucket_tokens(&[18.0, 25.0]), vec!["<18", "[18,25)", ">=25"]);
        assert_eq!(parse_flag("1"), Some(true));
        assert_eq!(parse_flag("0"), Some(false));
        assert_eq!(parse_flag("x"), None);
    }
}
