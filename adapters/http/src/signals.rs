//! Host signals (DESIGN §10.5): `POST /resources/usage` (a workspace agent's memory and
//! volumes) and `PUT /tasks/{id}/state` (a task's state). The host reports facts; the answer
//! says where each resource or task now stands and what was queued, or why nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use herald_application::signals::{
    Notice, ResourceOutcome, TaskInput, TaskOutcome, TaskReport, UsageInput, UsageOutcome,
    UsageReport, VolumeInput,
};
use herald_domain::signals::{TaskId, TaskQuiet, TaskState, WorkspaceId};
use herald_domain::{MessageId, Role, TemplateId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::error::json;
use crate::extract::{Caller, JsonBody, PathId};
use crate::notifications::SkippedJson;
use crate::{ApiError, State as ApiState};

// ---- resource usage ----------------------------------------------------------------------

/// A workspace agent's resource usage: its memory and/or its volumes.
///
/// Required fields are read as optional so that a missing one is refused naming it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResourceUsage)]
pub(crate) struct UsageBody {
    #[serde(default)]
    #[schema(value_type = Uuid, required = true)]
    workspace_id: Option<WorkspaceId>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    workspace_name: Option<String>,
    /// The workspace's owner, who is told.
    #[serde(default)]
    #[schema(value_type = Uuid, required = true)]
    owner_id: Option<UserId>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    agent: Option<String>,
    #[serde(default)]
    memory: Option<AmountBody>,
    #[serde(default)]
    volumes: Vec<VolumeBody>,
}

/// How much memory is used, of how much, and the share (0–100) at which the owner is told.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = MemoryUsage)]
pub(crate) struct AmountBody {
    #[serde(default)]
    #[schema(value_type = u64, required = true)]
    used: Option<u64>,
    #[serde(default)]
    #[schema(value_type = u64, required = true)]
    total: Option<u64>,
    #[serde(default)]
    #[schema(value_type = u64, required = true)]
    threshold_percent: Option<u64>,
}

/// One volume, by its mount path: used, total, and the share (0–100) at which the owner is told.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VolumeUsage)]
pub(crate) struct VolumeBody {
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    path: Option<String>,
    #[serde(default)]
    #[schema(value_type = u64, required = true)]
    used: Option<u64>,
    #[serde(default)]
    #[schema(value_type = u64, required = true)]
    total: Option<u64>,
    #[serde(default)]
    #[schema(value_type = u64, required = true)]
    threshold_percent: Option<u64>,
}

impl UsageBody {
    fn into_input(self) -> Result<UsageInput, ApiError> {
        let memory = self
            .memory
            .map(|memory| {
                Ok::<_, ApiError>((
                    required("memory.used", memory.used)?,
                    required("memory.total", memory.total)?,
                    required("memory.threshold_percent", memory.threshold_percent)?,
                ))
            })
            .transpose()?;
        let volumes = self
            .volumes
            .into_iter()
            .enumerate()
            .map(|(index, volume)| {
                let field = |name: &str| format!("volumes[{index}].{name}");
                Ok(VolumeInput {
                    path: required(&field("path"), volume.path)?,
                    used: required(&field("used"), volume.used)?,
                    total: required(&field("total"), volume.total)?,
                    threshold_percent: required(
                        &field("threshold_percent"),
                        volume.threshold_percent,
                    )?,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(UsageInput {
            workspace_id: required("workspace_id", self.workspace_id)?,
            workspace_name: required("workspace_name", self.workspace_name)?,
            owner_id: required("owner_id", self.owner_id)?,
            agent: required("agent", self.agent)?,
            memory,
            volumes,
        })
    }
}

/// A required field's value, or a 400 naming it.
fn required<T>(field: &str, value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(field, "is required"))
}

/// Where a resource stands after the report: `under` its threshold, `crossed` it now
/// (announced), or `still_over` (announced before; not again until it has been under).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ResourceState)]
pub(crate) enum ResourceStateJson {
    Under,
    Crossed,
    StillOver,
}

impl From<ResourceOutcome> for ResourceStateJson {
    fn from(outcome: ResourceOutcome) -> Self {
        match outcome {
            ResourceOutcome::Under => ResourceStateJson::Under,
            ResourceOutcome::Crossed => ResourceStateJson::Crossed,
            ResourceOutcome::StillOver => ResourceStateJson::StillOver,
        }
    }
}

/// A volume after the report.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = VolumeState)]
pub(crate) struct VolumeStateJson {
    path: String,
    state: ResourceStateJson,
}

/// A notification a signal queued: its template, the messages created and the recipients
/// skipped.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SignalNotification)]
pub(crate) struct NoticeJson {
    #[schema(value_type = Uuid)]
    template_id: TemplateId,
    #[schema(value_type = Vec<Uuid>)]
    message_ids: Vec<MessageId>,
    skipped: Vec<SkippedJson>,
}

impl From<Notice> for NoticeJson {
    fn from(notice: Notice) -> Self {
        Self {
            template_id: notice.template_id,
            skipped: notice
                .result
                .skipped
                .iter()
                .map(SkippedJson::from)
                .collect(),
            message_ids: notice.result.message_ids,
        }
    }
}

/// What a usage report did: where each resource stands and the notifications queued (none
/// when nothing crossed its threshold).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ResourceUsageResult)]
pub(crate) struct UsageJson {
    memory: Option<ResourceStateJson>,
    volumes: Vec<VolumeStateJson>,
    notifications: Vec<NoticeJson>,
}

impl From<UsageOutcome> for UsageJson {
    fn from(outcome: UsageOutcome) -> Self {
        Self {
            memory: outcome.memory.map(ResourceStateJson::from),
            volumes: outcome
                .volumes
                .into_iter()
                .map(|volume| VolumeStateJson {
                    path: volume.path,
                    state: volume.state.into(),
                })
                .collect(),
            notifications: outcome
                .notifications
                .into_iter()
                .map(NoticeJson::from)
                .collect(),
        }
    }
}

pub(crate) async fn report_usage(
    State(api): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<UsageBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    let report = UsageReport::parse(body.into_input()?)?;
    let outcome = api.services.signals().report_usage(report).await?;
    Ok(json(StatusCode::ACCEPTED, &UsageJson::from(outcome)))
}

// ---- task state --------------------------------------------------------------------------

/// A task's state, reported by the host.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TaskStateReport)]
pub(crate) struct TaskBody {
    /// The workspace's owner, who is told.
    #[serde(default)]
    #[schema(value_type = Uuid, required = true)]
    owner_id: Option<UserId>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    task_name: Option<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    workspace_name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = task_state, required = true)]
    state: Option<String>,
}

/// Why a task's new state told nobody: its `first_working` (it just started), `unchanged`
/// (the same state twice), or `not_announced` (`complete` and `failed` are recorded only).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TaskQuiet)]
pub(crate) enum TaskQuietJson {
    FirstWorking,
    Unchanged,
    NotAnnounced,
}

impl From<TaskQuiet> for TaskQuietJson {
    fn from(quiet: TaskQuiet) -> Self {
        match quiet {
            TaskQuiet::FirstWorking => TaskQuietJson::FirstWorking,
            TaskQuiet::Unchanged => TaskQuietJson::Unchanged,
            TaskQuiet::NotAnnounced => TaskQuietJson::NotAnnounced,
        }
    }
}

/// What a task report did: the state before (`null`: its first report) and now, and the
/// notification queued or why none.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TaskStateResult)]
pub(crate) struct TaskJson {
    #[schema(schema_with = optional_task_state)]
    previous: Option<&'static str>,
    #[schema(schema_with = task_state)]
    state: &'static str,
    notification: Option<NoticeJson>,
    quiet: Option<TaskQuietJson>,
}

impl From<TaskOutcome> for TaskJson {
    fn from(outcome: TaskOutcome) -> Self {
        Self {
            previous: outcome.previous.map(TaskState::as_str),
            state: outcome.state.as_str(),
            notification: outcome.notification.map(NoticeJson::from),
            quiet: outcome.quiet.map(TaskQuietJson::from),
        }
    }
}

fn task_states() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(TaskState::ALL.map(TaskState::as_str)))
}

/// A task's state.
fn task_state() -> RefOr<Schema> {
    task_states().into()
}

/// A task's state, or `null`.
fn optional_task_state() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(
            TaskState::ALL
                .map(|state| serde_json::Value::from(state.as_str()))
                .into_iter()
                .chain(std::iter::once(serde_json::Value::Null)),
        ))
        .into()
}

pub(crate) async fn set_task_state(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(task): PathId<TaskId>,
    JsonBody(body): JsonBody<TaskBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    let report = TaskReport::parse(
        task,
        TaskInput {
            owner_id: required("owner_id", body.owner_id)?,
            task_name: required("task_name", body.task_name)?,
            workspace_name: required("workspace_name", body.workspace_name)?,
            state: required("state", body.state)?,
        },
    )?;
    let outcome = api.services.signals().set_task_state(report).await?;
    Ok(json(StatusCode::OK, &TaskJson::from(outcome)))
}
