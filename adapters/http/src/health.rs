//! `/healthz` (the process answers) and `/readyz` (the database answers too).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiError;
use crate::State as ApiState;
use crate::error::json;

/// The process's health: `ok` (`/healthz`) or `ready` (`/readyz`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Health)]
pub(crate) struct HealthJson {
    status: &'static str,
}

pub(crate) async fn healthz() -> Response {
    json(StatusCode::OK, &HealthJson { status: "ok" })
}

pub(crate) async fn readyz(State(api): State<ApiState>) -> Result<Response, ApiError> {
    match api.readiness.check().await {
        Ok(()) => Ok(json(StatusCode::OK, &HealthJson { status: "ready" })),
        Err(why) => {
            tracing::warn!(error = %why, "http: not ready");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready.",
                "the database cannot be reached",
            ))
        }
    }
}
