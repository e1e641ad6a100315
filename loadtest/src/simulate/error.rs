//! Why a simulation could not run.

use crate::files::WriteError;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulateError {
    /// A parameter out of range.
    #[error("{0}")]
    Parameter(String),
    /// The report could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}
