//! The `ResourceStateStore` and `TaskStateStore` contracts: the host signals' last states,
//! moved atomically in the store every replica shares, so a crossing or a change is seen once.

use chrono::TimeDelta;
use herald_domain::signals::{Resource, TaskId, TaskState, WorkspaceId};
use herald_tests::fixture::Backend;
use herald_tests::sample;

fn volume(path: &str) -> Resource {
    Resource::Volume(path.to_owned())
}

async fn a_resource_is_returned_when_it_crosses_over_and_not_again_until_it_was_under(
    backend: Backend,
) {
    let workspace = WorkspaceId::random();
    let at = sample::t0();
    let record = |states: Vec<(Resource, bool)>| {
        let resources = backend.resources.clone();
        async move {
            let mut crossed = resources
                .record(workspace, "main", &states, at)
                .await
                .unwrap();
            crossed.sort();
            crossed
        }
    };

    // Never reported and under: nothing; never reported and over: crossed.
    assert_eq!(record(vec![(Resource::Memory, false)]).await, vec![]);
    assert_eq!(
        record(vec![(volume("/home"), true), (volume("/data"), false)]).await,
        vec![volume("/home")]
    );
    // Still over: not again.
    assert_eq!(
        record(vec![(volume("/home"), true), (volume("/data"), false)]).await,
        vec![]
    );
    // Memory and /data cross together; /home stays over.
    assert_eq!(
        record(vec![
            (Resource::Memory, true),
            (volume("/home"), true),
            (volume("/data"), true),
        ])
        .await,
        vec![Resource::Memory, volume("/data")]
    );
    // Back under, then over again: crossed again.
    assert_eq!(record(vec![(volume("/home"), false)]).await, vec![]);
    assert_eq!(
        record(vec![(volume("/home"), true)]).await,
        vec![volume("/home")]
    );
}

async fn resources_are_kept_apart_per_workspace_and_agent(backend: Backend) {
    let (one, two) = (WorkspaceId::random(), WorkspaceId::random());
    let at = sample::t0();
    let over = [(Resource::Memory, true)];
    let resources = &backend.resources;

    assert_eq!(
        resources.record(one, "main", &over, at).await.unwrap(),
        vec![Resource::Memory]
    );
    assert_eq!(
        resources.record(one, "gpu", &over, at).await.unwrap(),
        vec![Resource::Memory]
    );
    assert_eq!(
        resources.record(two, "main", &over, at).await.unwrap(),
        vec![Resource::Memory]
    );
    assert_eq!(
        resources.record(one, "main", &over, at).await.unwrap(),
        vec![]
    );
}

async fn concurrent_reports_over_the_threshold_see_the_crossing_once(backend: Backend) {
    let replica = backend.replica().await;
    let workspace = WorkspaceId::random();
    let at = sample::t0();
    let states = [(Resource::Memory, true), (volume("/home"), true)];

    let results = futures_util::future::join_all((0..16).map(|i| {
        let resources = if i % 2 == 0 {
            backend.resources.clone()
        } else {
            replica.resources.clone()
        };
        let states = states.clone();
        async move {
            resources
                .record(workspace, "main", &states, at)
                .await
                .unwrap()
        }
    }))
    .await;

    let mut crossed: Vec<Resource> = results.into_iter().flatten().collect();
    crossed.sort();
    assert_eq!(crossed, vec![Resource::Memory, volume("/home")]);
}

async fn a_task_transition_returns_the_state_it_held_before(backend: Backend) {
    let task = TaskId::random();
    let at = sample::t0();
    let tasks = &backend.tasks;

    assert_eq!(
        tasks
            .transition(task, TaskState::Working, at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tasks
            .transition(task, TaskState::Working, at + TimeDelta::seconds(1))
            .await
            .unwrap(),
        Some(TaskState::Working)
    );
    assert_eq!(
        tasks.transition(task, TaskState::Idle, at).await.unwrap(),
        Some(TaskState::Working)
    );
    assert_eq!(
        tasks
            .transition(task, TaskState::Complete, at)
            .await
            .unwrap(),
        Some(TaskState::Idle)
    );
    assert_eq!(
        tasks.transition(task, TaskState::Failed, at).await.unwrap(),
        Some(TaskState::Complete)
    );
    // Another task starts from nothing.
    assert_eq!(
        tasks
            .transition(TaskId::random(), TaskState::Idle, at)
            .await
            .unwrap(),
        None
    );
}

async fn concurrent_transitions_to_one_state_see_the_old_state_once(backend: Backend) {
    let replica = backend.replica().await;
    let at = sample::t0();
    for first in [None, Some(TaskState::Idle)] {
        let task = TaskId::random();
        if let Some(state) = first {
            backend.tasks.transition(task, state, at).await.unwrap();
        }

        let previous = futures_util::future::join_all((0..16).map(|i| {
            let tasks = if i % 2 == 0 {
                backend.tasks.clone()
            } else {
                replica.tasks.clone()
            };
            async move {
                tasks
                    .transition(task, TaskState::Working, at)
                    .await
                    .unwrap()
            }
        }))
        .await;

        let saw_the_old_state = previous.iter().filter(|held| **held == first).count();
        assert_eq!(saw_the_old_state, 1, "from {first:?}: {previous:?}");
        assert_eq!(
            previous
                .iter()
                .filter(|held| **held == Some(TaskState::Working))
                .count(),
            15,
            "from {first:?}: {previous:?}"
        );
    }
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_resource_is_returned_when_it_crosses_over_and_not_again_until_it_was_under,
    resources_are_kept_apart_per_workspace_and_agent,
    concurrent_reports_over_the_threshold_see_the_crossing_once,
    a_task_transition_returns_the_state_it_held_before,
    concurrent_transitions_to_one_state_see_the_old_state_once,
}

/// PostgreSQL's task moves, with the moves made to wait behind a row lock so they surely run
/// at once: each must read the state the one before it left, not the state its statement
/// began with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_task_moves_queued_behind_a_row_lock_each_read_the_state_left_before_them() {
    use std::time::Duration;

    use herald_application::ports::TaskStateStore as _;
    use herald_tests::postgres::TestDatabase;

    let database = TestDatabase::create().await;
    let store = database.store.clone();
    let task = TaskId::random();
    let at = sample::t0();
    store.transition(task, TaskState::Idle, at).await.unwrap();
    let mut holder = store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM task_states WHERE task_id = $1 FOR UPDATE")
        .bind(task.as_uuid())
        .execute(&mut *holder)
        .await
        .unwrap();

    let moves: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .transition(task, TaskState::Working, at)
                    .await
                    .unwrap()
            })
        })
        .collect();
    // Both moves wait for the lock before it is let go.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(store.pool())
            .await
            .unwrap();
            if waiting == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both moves should wait for the row lock");
    holder.commit().await.unwrap();

    let mut previous = Vec::new();
    for handle in moves {
        previous.push(handle.await.unwrap());
    }
    previous.sort_by_key(|state| state.map(TaskState::as_str));
    assert_eq!(
        previous,
        vec![Some(TaskState::Idle), Some(TaskState::Working)]
    );
}
