//! A task's state → Task Working / Task Idle, on a change of state only (the rules:
//! `herald_domain::signals::task_notice`). `complete` and `failed` are recorded and announce
//! nothing: the catalogue, like the reference's, has no template for them.

use herald_domain::signals::{TaskId, TaskQuiet, TaskState, task_notice};
use herald_domain::{Labels, UserId};
use serde::Serialize;
use serde_json::json;

use super::{Notice, Signals, name};
use crate::Error;
use crate::events::Event;

/// A task's state as the host sends it, unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInput {
    pub owner_id: UserId,
    pub task_name: String,
    pub workspace_name: String,
    pub state: String,
}

/// A checked task report. Only [`TaskReport::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    task: TaskId,
    owner: UserId,
    task_name: String,
    workspace_name: String,
    state: TaskState,
}

impl TaskReport {
    /// # Errors
    /// [`Error::Invalid`] on `task_name`, `workspace_name` or `state` (not one of `working`,
    /// `idle`, `complete`, `failed`).
    pub fn parse(task: TaskId, input: TaskInput) -> Result<Self, Error> {
        Ok(Self {
            task,
            owner: input.owner_id,
            task_name: name("task_name", &input.task_name)?,
            workspace_name: name("workspace_name", &input.workspace_name)?,
            state: input.state.parse()?,
        })
    }
}

/// What a task report did: the state before and now, and the notification queued or why none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskOutcome {
    /// `None`: the task's first report.
    pub previous: Option<TaskState>,
    pub state: TaskState,
    pub notification: Option<Notice>,
    /// Why no notification, when there is none.
    pub quiet: Option<TaskQuiet>,
}

impl Signals {
    /// Records the task's state and, on a change that is announced, queues Task Working or
    /// Task Idle to its owner (both off by default: only owners who opted in get them).
    ///
    /// # Errors
    /// [`Error::Invalid`] on `owner_id` for an owner the directory does not know (nothing
    /// recorded); [`Error::Unavailable`] when a store is down.
    pub async fn set_task_state(&self, report: TaskReport) -> Result<TaskOutcome, Error> {
        self.known_owner(report.owner).await?;
        let previous = self
            .ports
            .tasks
            .transition(report.task, report.state, self.ports.clock.now())
            .await?;
        let template = match task_notice(previous, report.state) {
            Ok(template) => template,
            Err(quiet) => {
                return Ok(TaskOutcome {
                    previous,
                    state: report.state,
                    notification: None,
                    quiet: Some(quiet),
                });
            }
        };
        let mut event = Event::new(template);
        event.subject = Some(report.owner);
        event.labels = Labels::from([
            ("task".to_owned(), report.task_name),
            ("workspace".to_owned(), report.workspace_name),
        ]);
        event.data = Some(json!({
            "task_id": report.task,
            "state": report.state,
            "previous_state": previous,
        }));
        event.created_by = "task_state".to_owned();
        let result = self.events.enqueue(event).await?;
        Ok(TaskOutcome {
            previous,
            state: report.state,
            notification: Some(Notice {
                template_id: template,
                result,
            }),
            quiet: None,
        })
    }
}
