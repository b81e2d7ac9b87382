use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::UserId;

use super::StoreError;

/// Counts a user's requests of one kind in fixed windows of time, in the store every replica
/// shares, so a rate limit holds however a user's requests spread over replicas.
///
/// Implementations MUST keep one window per (`scope`, user): counting with a `window_start`
/// later than the one held starts that window at 1; counting with the same or an earlier one
/// (another replica's clock behind) adds 1 to the window held. Two replicas counting at once
/// MUST both be counted.
///
/// # Errors
/// [`StoreError`] when the store fails; nothing was counted then.
#[async_trait]
pub trait RateCounter: Send + Sync + std::fmt::Debug {
    /// Counts one request of kind `scope` by `user` in the window starting at
    /// `window_start`; returns how many the window now held has counted, this one included.
    async fn count(
        &self,
        scope: &str,
        user: UserId,
        window_start: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
