use herald_domain::InvalidValue;

use crate::ports::StoreError;

/// What a use case reports. Variants are the ones callers branch on (the HTTP adapter maps
/// them to 400, 404, 409 and 503); `Internal` is the opaque rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bad input: which field, and why.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// Bad input in one event of a batch: which event (its index, from 0), which of its fields,
    /// and why.
    #[error("event {index}: {field}: {reason}")]
    InvalidEvent {
        index: usize,
        field: String,
        reason: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller reached a limit of their own (open watchers, custom notifications): the
    /// limit's configuration key, why, and how long until trying again can succeed (`None`:
    /// once the caller has let go of something).
    #[error("{limit}: {reason}")]
    Limited {
        limit: &'static str,
        reason: String,
        retry_after: Option<std::time::Duration>,
    },
    /// This replica is at a limit it holds for everyone (open watchers): the limit's
    /// configuration key and why; trying again later, or another replica, may succeed.
    #[error("{limit}: {reason}")]
    AtCapacity { limit: &'static str, reason: String },
    /// A store could not be reached; the same request may succeed later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// This error as event `index` of a batch caused it: [`Error::Invalid`] becomes
    /// [`Error::InvalidEvent`]; any other error is the batch's as it is.
    #[must_use]
    pub fn in_event(self, index: usize) -> Self {
        match self {
            Error::Invalid { field, reason } => Error::InvalidEvent {
                index,
                field,
                reason,
            },
            other => other,
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => Error::Conflict(what),
            StoreError::Unavailable(why) => Error::Unavailable(why),
            StoreError::Other(why) => Error::Internal(why),
        }
    }
}

impl From<InvalidValue> for Error {
    fn from(err: InvalidValue) -> Self {
        Error::Invalid {
            field: err.field.to_owned(),
            reason: err.reason,
        }
    }
}
