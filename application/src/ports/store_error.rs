use thiserror::Error;

/// What a storage port reports. Adapters translate their driver's errors into these; driver
/// types never cross a port.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (the message names what clashed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store could not be reached or did not answer; the operation may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else the store refused; not expected to succeed on retry.
    #[error("storage error: {0}")]
    Other(String),
}
