use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{ResourceStateStore, StoreError, TaskStateStore};
use herald_domain::signals::{Resource, TaskId, TaskState, WorkspaceId};

use super::MemoryStore;

/// The host signals' last states: per (workspace, agent, resource) whether it is over its
/// threshold, per task its state; each with when it was recorded.
#[derive(Debug, Default)]
pub(super) struct SignalStates {
    resources: HashMap<(WorkspaceId, String, Resource), (bool, DateTime<Utc>)>,
    tasks: HashMap<TaskId, (TaskState, DateTime<Utc>)>,
}

#[async_trait]
impl ResourceStateStore for MemoryStore {
    async fn record(
        &self,
        workspace: WorkspaceId,
        agent: &str,
        states: &[(Resource, bool)],
        at: DateTime<Utc>,
    ) -> Result<Vec<Resource>, StoreError> {
        self.with(|state| {
            let held = &mut state.signals.resources;
            let mut crossed = Vec::new();
            for (resource, over) in states {
                let key = (workspace, agent.to_owned(), resource.clone());
                let was_over = held.get(&key).is_some_and(|(over, _)| *over);
                if *over && !was_over {
                    crossed.push(resource.clone());
                }
                if held
                    .get(&key)
                    .is_none_or(|(held_over, _)| held_over != over)
                {
                    held.insert(key, (*over, at));
                }
            }
            crossed
        })
    }
}

#[async_trait]
impl TaskStateStore for MemoryStore {
    async fn transition(
        &self,
        task: TaskId,
        state: TaskState,
        at: DateTime<Utc>,
    ) -> Result<Option<TaskState>, StoreError> {
        self.with(|held| {
            held.signals
                .tasks
                .insert(task, (state, at))
                .map(|(previous, _)| previous)
        })
    }
}
