//! The error taxonomy: every image that cannot be processed ends with one of these kinds.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an image failed, as stored in its metadata record and counted in metrics.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The bytes claim a supported format but are malformed or truncated.
    Corrupt,
    /// The bytes are not an image format this deployment accepts.
    Unsupported,
    /// The image is over a size limit: input bytes, pixels or a side.
    TooLarge,
    /// Decoding needed more of a resource than allowed: memory, frames, metadata.
    Limits,
    /// A fault of ours, not of the image; retrying may help.
    Internal,
}

impl ErrorKind {
    /// Every kind, in a stable order (for metrics and reports).
    pub const ALL: [ErrorKind; 5] =
        [ErrorKind::Corrupt, ErrorKind::Unsupported, ErrorKind::TooLarge, ErrorKind::Limits, ErrorKind::Internal];

    /// The stable snake_case name used in JSON, metrics and the corpus manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Limits => "limits",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed image: what kind of failure, and a message a user understands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ImageError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// What went wrong, for a person.
    pub message: String,
}

impl ImageError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// Malformed or truncated input.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// A format this deployment does not accept.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// Over a size limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, message)
    }

    /// Over a resource limit while decoding.
    pub fn limits(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limits, message)
    }

    /// Our fault, not the image's.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_stable_names() {
        for kind in ErrorKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ErrorKind>(&json).unwrap(), kind);
        }
    }
}
