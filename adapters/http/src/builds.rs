//! `POST /builds`: a host reports a workspace build (DESIGN §10.5); kept 7 days for the weekly
//! failed-builds report.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_domain::{Build, BuildInput, Role, UserId};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extract::{Caller, JsonBody};
use crate::{ApiError, State as ApiState};

/// A workspace build as a host reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WorkspaceBuild)]
pub(crate) struct BuildBody {
    workspace_id: Uuid,
    workspace_name: String,
    /// The workspace owner (a directory user).
    owner_id: Uuid,
    /// The host's workspace template.
    template_id: Uuid,
    template_name: String,
    /// Empty or absent: the template's name.
    #[serde(default)]
    template_display_name: String,
    template_version: String,
    /// From 1.
    build_number: i64,
    #[schema(pattern = "^(start|stop|delete)$")]
    transition: String,
    #[schema(pattern = "^(succeeded|failed)$")]
    status: String,
    #[schema(pattern = "^(manual|autostart)$")]
    initiator: String,
    created_at: DateTime<Utc>,
}

pub(crate) async fn record_build(
    State(api): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<BuildBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    let build = Build::parse(&BuildInput {
        workspace_id: body.workspace_id,
        workspace_name: &body.workspace_name,
        owner_id: UserId::from(body.owner_id),
        template_id: body.template_id,
        template_name: &body.template_name,
        template_display_name: &body.template_display_name,
        template_version: &body.template_version,
        build_number: body.build_number,
        transition: &body.transition,
        status: &body.status,
        initiator: &body.initiator,
        created_at: body.created_at,
    })
    .map_err(herald_application::Error::from)?;
    api.services.reports().record_build(&build).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
