//! One field's bytes: decoding (UTF-8 or Latin-1), trimming, strict
//! integer and float parsing, and the parse error naming file, line and
//! column.

use std::borrow::Cow;
use std::path::Path;

use crate::config::Encoding;
use crate::error::{snippet, DataError};

/// Decodes a field in the file's encoding.
pub(crate) fn decode(bytes: &[u8], enc: Encoding) -> Option<Cow<'_, str>> {
    match enc {
        Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        Encoding::Latin1 => {
            if bytes.is_ascii() {
                // SAFETY-free fast path: ASCII is valid UTF-8.
                std::str::from_utf8(bytes).ok().map(Cow::Borrowed)
            } else {
                Some(Cow::Owned(bytes.iter().map(|&b| b as char).collect()))
            }
        }
    }
}

/// Whether `bytes` is valid in `enc` (Latin-1: always).
#[inline]
pub(crate) fn valid(bytes: &[u8], enc: Encoding) -> bool {
    match enc {
        Encoding::Utf8 => bytes.is_ascii() || std::str::from_utf8(bytes).is_ok(),
        Encoding::Latin1 => true,
    }
}

/// Trims ASCII spaces/tabs (not the delimiter) from both ends.
#[inline]
pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let mut s = 0;
    let mut e = b.len();
    while s < e && (b[s] == b' ' || b[s] == b'\t') {
        s += 1;
    }
    while e > s && (b[e - 1] == b' ' || b[e - 1] == b'\t') {
        e -= 1;
    }
    &b[s..e]
}

/// Parses a (trimmed) decimal integer.
#[inline]
pub(crate) fn parse_i64(b: &[u8]) -> Option<i64> {
    let b = trim(b);
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as i64)?;
    }
    Some(if neg { -v } else { v })
}

/// Parses a (trimmed) float.
pub(crate) fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(trim(b)).ok()?;
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A parse error for `column` at `line`.
pub(crate) fn parse_err(
    path: &Path,
    line: u64,
    column: &str,
    expected: &'static str,
    got: &[u8],
) -> DataError {
    DataError::Parse {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
        expected,
        got: snippet(got),
    }
}
