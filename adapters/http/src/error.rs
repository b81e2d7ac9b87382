//! [`ApiError`]: every error the API answers, as JSON `{"message", "detail"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_application::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// An error response: its status and the JSON body `{"message", "detail", "field"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub detail: String,
    /// The input field at fault, for 400s.
    pub field: Option<String>,
}

/// Every error: what went wrong, in words, and the input field at fault for bad input.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct Body<'a> {
    message: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: detail.into(),
            field: None,
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
        };
        let mut response = json(self.status, &body);
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
