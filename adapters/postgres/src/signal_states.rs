//! The host signals' last states (`ResourceStateStore`, `TaskStateStore`): each move is one
//! atomic statement under the row's lock, so replicas reporting at once announce a crossing
//! or a change of state once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{ResourceStateStore, StoreError, TaskStateStore};
use herald_domain::signals::{Resource, TaskId, TaskState, WorkspaceId};

use crate::PgStore;
use crate::error::store_error;

/// Records every resource of a report in one upsert. A row changes only when its state does
/// (`WHERE held.over IS DISTINCT FROM excluded.over`), and only inserted or changed rows are
/// returned: those returned over crossed with this statement. A concurrent upsert of the same
/// row waits for this one and re-checks the `WHERE` on the row this one left, so it finds the
/// resource already over and returns nothing.
const RECORD_RESOURCES_STATEMENT: &str = "\
INSERT INTO resource_states AS held (workspace_id, agent, kind, path, over, changed_at) \
SELECT $1, $2, reported.kind, reported.path, reported.over, $6 \
FROM UNNEST($3::text[], $4::text[], $5::boolean[]) AS reported (kind, path, over) \
ON CONFLICT ON CONSTRAINT resource_states_pkey DO UPDATE SET \
    over = excluded.over, changed_at = excluded.changed_at \
WHERE held.over IS DISTINCT FROM excluded.over \
RETURNING kind, path, over";

/// A task's first report: inserted unless a row exists (then `transition` moves it).
const FIRST_TASK_STATE_STATEMENT: &str = "\
INSERT INTO task_states (task_id, state, reported_at) VALUES ($1, $2, $3) \
ON CONFLICT ON CONSTRAINT task_states_pkey DO NOTHING";

/// Moves a known task and returns the state it held: the subquery locks the row `FOR UPDATE`
/// (waiting for a concurrent move, then reading the row that move left), so each move reads
/// the state the move before it wrote.
const MOVE_TASK_STATE_STATEMENT: &str = "\
UPDATE task_states AS task SET state = $2, reported_at = $3 \
FROM (SELECT task_id, state FROM task_states WHERE task_id = $1 FOR UPDATE) AS held \
WHERE task.task_id = held.task_id \
RETURNING held.state";

const MEMORY: &str = "memory";
const VOLUME: &str = "volume";

#[async_trait]
impl ResourceStateStore for PgStore {
    async fn record(
        &self,
        workspace: WorkspaceId,
        agent: &str,
        states: &[(Resource, bool)],
        at: DateTime<Utc>,
    ) -> Result<Vec<Resource>, StoreError> {
        let mut kinds = Vec::with_capacity(states.len());
        let mut paths = Vec::with_capacity(states.len());
        let mut overs = Vec::with_capacity(states.len());
        for (resource, over) in states {
            let (kind, path) = match resource {
                Resource::Memory => (MEMORY, ""),
                Resource::Volume(path) => (VOLUME, path.as_str()),
            };
            kinds.push(kind);
            paths.push(path);
            overs.push(*over);
        }
        let rows: Vec<(String, String, bool)> = sqlx::query_as(RECORD_RESOURCES_STATEMENT)
            .bind(workspace.as_uuid())
            .bind(agent)
            .bind(&kinds)
            .bind(&paths)
            .bind(&overs)
            .bind(at)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.into_iter()
            .filter(|(_, _, over)| *over)
            .map(|(kind, path, _)| match kind.as_str() {
                MEMORY => Ok(Resource::Memory),
                VOLUME => Ok(Resource::Volume(path)),
                other => Err(StoreError::Other(format!(
                    "resource_states holds an unknown kind {other:?}"
                ))),
            })
            .collect()
    }
}

#[async_trait]
impl TaskStateStore for PgStore {
    async fn transition(
        &self,
        task: TaskId,
        state: TaskState,
        at: DateTime<Utc>,
    ) -> Result<Option<TaskState>, StoreError> {
        let inserted = sqlx::query(FIRST_TASK_STATE_STATEMENT)
            .bind(task.as_uuid())
            .bind(state.as_str())
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?
            .rows_affected();
        if inserted == 1 {
            return Ok(None);
        }
        let held: Option<String> = sqlx::query_scalar(MOVE_TASK_STATE_STATEMENT)
            .bind(task.as_uuid())
            .bind(state.as_str())
            .bind(at)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        match held {
            Some(held) => held
                .parse()
                .map(Some)
                .map_err(|err| StoreError::Other(format!("task_states holds {err}"))),
            // Rows are never deleted: one the insert found is still there.
            None => Err(StoreError::Other(format!(
                "task {task} vanished between its insert and its move"
            ))),
        }
    }
}
