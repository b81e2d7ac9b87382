use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::signals::{TaskId, TaskState};

use super::StoreError;

/// The last reported state of each task, in the store every replica shares, so a change of
/// state is announced once however the reports spread over replicas.
///
/// `transition` MUST set the task's state to `state` and return the state it held before
/// (`None` for a task never reported; `Some(state)` when it was already in it, which changes
/// nothing but the time). Transitions of one task MUST be atomic and serialized: each call,
/// on any replica, returns the state the call serialized before it left, so of concurrent
/// calls moving a task to the same new state exactly one sees the old state.
///
/// # Errors
/// [`StoreError`] when the store fails; nothing was recorded then.
#[async_trait]
pub trait TaskStateStore: Send + Sync + std::fmt::Debug {
    /// Moves `task` to `state` at `at`; returns the state it was in before.
    async fn transition(
        &self,
        task: TaskId,
        state: TaskState,
        at: DateTime<Utc>,
    ) -> Result<Option<TaskState>, StoreError>;
}
