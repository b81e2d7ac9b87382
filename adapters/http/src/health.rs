//! `/healthz` (the process answers) and `/readyz` (the database answers too).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

use crate::ApiError;
use crate::State as ApiState;
use crate::error::json;

/// The process's health: `ok` (`/healthz`) or `ready` (`/readyz`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Health)]
pub(crate) struct HealthJson {
    #[schema(schema_with = health_status)]
    status: &'static str,
}

fn health_status() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["ok", "ready"]))
}

pub(crate) async fn healthz() -> Response {
    json(StatusCode::OK, &HealthJson { status: "ok" })
}

pub(crate) async fn readyz(State(api): State<ApiState>) -> Result<Response, ApiError> {
    match api.readiness.check().await {
        Ok(()) => Ok(json(StatusCode::OK, &HealthJson { status: "ready" })),
        Err(why) => {
            tracing::warn!(reason = %why, "http: not ready");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready.",
                why,
            ))
        }
    }
}
