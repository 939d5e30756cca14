//! JSON files of a report: pretty-printed and written atomically; read
//! with errors naming file, line and column.

use std::path::Path;

use serde::{Deserialize, Serialize};
use twotower::util::atomic_write;

use crate::error::io_err;
use crate::ReportError;

pub(crate) fn write_json_file<T: Serialize>(path: &Path, value: &T) -> Result<(), ReportError> {
    atomic_write(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, b"\n")
    })
    .map_err(io_err(path))
}

pub(crate) fn read_json_file<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ReportError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| ReportError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}
