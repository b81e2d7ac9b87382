use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::signals::{Resource, WorkspaceId};

use super::StoreError;

/// Whether each watched resource of a workspace agent was over its threshold when last
/// reported, in the store every replica shares, so a crossing is announced once however the
/// reports spread over replicas.
///
/// Implementations MUST keep one state per (`workspace`, `agent`, resource). `record` MUST set
/// each resource's state to the one given and return the resources that it moved to over
/// from not over or from unknown (never reported), in any order; a resource already over stays
/// over and is not returned. Each resource's move MUST be atomic: of concurrent calls
/// recording the same resource over, on any replicas, exactly one returns it.
///
/// Callers MUST NOT name one resource twice in one call.
///
/// # Errors
/// [`StoreError`] when the store fails; nothing was recorded then.
#[async_trait]
pub trait ResourceStateStore: Send + Sync + std::fmt::Debug {
    /// Records `states` (each resource and whether it is now over its threshold) for
    /// `workspace`'s `agent` at `at`; returns the resources that crossed over with this call.
    async fn record(
        &self,
        workspace: WorkspaceId,
        agent: &str,
        states: &[(Resource, bool)],
        at: DateTime<Utc>,
    ) -> Result<Vec<Resource>, StoreError>;
}
