//! [`ReportError`]: the one error type of reading, building and writing a
//! report.

use std::path::{Path, PathBuf};

use twotower::eval::EvalError;

/// Errors of report building and writing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter is out of its valid range.
    #[error("invalid {name} = {got}: expected {expected}")]
    InvalidArgument {
        /// The parameter.
        name: &'static str,
        /// The value given.
        got: String,
        /// What is accepted.
        expected: String,
    },
    /// A `NAME=KEY=VALUE[,KEY=VALUE...]` variant does not parse.
    #[error("variant `{spec}`: {message}")]
    Variant {
        /// The variant as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// Evaluation (scorer size, NaN score).
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file (or a line of a JSON-lines file) does not parse.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde's message.
        message: String,
    },
    /// A field of a run file is missing or has the wrong type.
    #[error("{path}{}: field `{field}`: expected {expected}, got {got}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Field {
        /// The file.
        path: PathBuf,
        /// 1-based line (JSON-lines files).
        line: Option<usize>,
        /// The field.
        field: String,
        /// What is accepted.
        expected: &'static str,
        /// What was found.
        got: String,
    },
    /// The inputs cannot be reported together.
    #[error("{0}")]
    Inconsistent(String),
    /// plotters failed.
    #[error("plot {path}: {message}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}
