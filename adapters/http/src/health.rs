//! `/healthz` (the process answers) and `/readyz` (the database answers too).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json as value;

use crate::ApiError;
use crate::State as ApiState;
use crate::error::json;

pub(crate) async fn healthz() -> Response {
    json(StatusCode::OK, &value!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(api): State<ApiState>) -> Result<Response, ApiError> {
    match api.readiness.check().await {
        Ok(()) => Ok(json(StatusCode::OK, &value!({ "status": "ready" }))),
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
