//! [`ApiError`]: every error the API answers, as JSON `{"message", "detail"}`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_application::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// An error response: its status and the JSON body `{"message", "detail", "field"?,
/// "limit"?}`, with `Retry-After` when trying again later can succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub detail: String,
    /// The input field at fault, for 400s.
    pub field: Option<String>,
    /// The limit reached (its configuration key), for 429s and 503s at a limit.
    pub limit: Option<String>,
    /// When trying again can succeed, sent as `Retry-After` (whole seconds).
    pub retry_after: Option<Duration>,
}

/// Every error: what went wrong, in words, the input field at fault for bad input, and the
/// limit reached for a refusal at a limit.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct Body<'a> {
    message: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: detail.into(),
            field: None,
            limit: None,
            retry_after: None,
        }
    }

    /// 400 naming the field and saying why.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("Invalid {field}."),
            detail: format!("{field}: {}", reason.into()),
            field: Some(field),
            limit: None,
            retry_after: None,
        }
    }

    /// A refusal at `limit` (a configuration key): 429 for a limit of the caller's own, 503 for
    /// one the server holds for everyone.
    pub fn limited(
        status: StatusCode,
        limit: &str,
        reason: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let message = if status == StatusCode::TOO_MANY_REQUESTS {
            "Too many requests."
        } else {
            "Service unavailable."
        };
        Self {
            limit: Some(limit.to_owned()),
            retry_after,
            ..Self::new(status, message, reason)
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized.", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden.", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found.", detail)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::Invalid { field, reason } => Self::invalid(field, reason),
            Error::InvalidEvent {
                index,
                field,
                reason,
            } => Self::invalid(format!("events[{index}].{field}"), reason),
            Error::NotFound(what) => Self::not_found(format!("{what} not found")),
            Error::Conflict(what) => Self::new(StatusCode::CONFLICT, "Conflict.", what),
            Error::Limited {
                limit,
                reason,
                retry_after,
            } => Self::limited(StatusCode::TOO_MANY_REQUESTS, limit, reason, retry_after),
            Error::AtCapacity { limit, reason } => {
                Self::limited(StatusCode::SERVICE_UNAVAILABLE, limit, reason, None)
            }
            Error::Unavailable(why) => {
                tracing::warn!(error = %why, "http: a store is unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service unavailable.",
                    "the database cannot be reached; try again later",
                )
            }
            Error::Internal(why) => {
                tracing::error!(error = %why, "http: internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error.",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            message: &self.message,
            detail: &self.detail,
            field: self.field.as_deref(),
            limit: self.limit.as_deref(),
        };
        let mut response = json(self.status, &body);
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(err) => ApiError::from(Error::Internal(format!("serializing a response: {err}")))
            .into_response(),
    }
}

pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed.",
        "this route does not answer that method",
    )
}
