use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::Build;

use super::StoreError;

/// Where the workspace builds a host reports are kept, for the weekly failed-builds report.
///
/// Implementations MUST:
/// - in `record`, keep one build per (`workspace_id`, `build_number`): recording it again
///   replaces what was kept (a host retrying its report is not counted twice);
/// - in `since`, return every kept build whose `created_at` is at or after `since`, in any
///   order;
/// - in `purge`, delete the builds whose `created_at` is before `cutoff`, and return how many.
///
/// # Errors
/// [`StoreError::Unavailable`] when the store cannot be reached (nothing was written);
/// [`StoreError::Other`] for anything else it refused.
#[async_trait]
pub trait BuildStore: Send + Sync + std::fmt::Debug {
    async fn record(&self, build: &Build) -> Result<(), StoreError>;

    async fn since(&self, since: DateTime<Utc>) -> Result<Vec<Build>, StoreError>;

    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
}
