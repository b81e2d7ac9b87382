//! `/notifications/inbox…`: the caller's own in-app inbox.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_application::InboxFilter;
use herald_application::ports::ReadStatus;
use herald_domain::{InboxNotification, InboxNotificationId, TemplateId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::json;
use crate::extract::{Caller, JsonBody, PathId, QueryPairs};
use crate::{ApiError, State as ApiState};

#[derive(Debug, Serialize)]
struct Page<'a> {
    notifications: &'a [InboxNotification],
    unread_count: u64,
}

#[derive(Debug, Serialize)]
struct One<'a> {
    notification: &'a InboxNotification,
    unread_count: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadStatusBody {
    is_read: bool,
}

pub(crate) async fn list(
    State(api): State<ApiState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let read_status = match query.one("read_status") {
        None | Some("all") => ReadStatus::All,
        Some("unread") => ReadStatus::Unread,
        Some("read") => ReadStatus::Read,
        Some(other) => {
            return Err(ApiError::invalid(
                "read_status",
                format!("{other:?} is not one of all, unread, read"),
            ));
        }
    };
    let filter = InboxFilter {
        templates: query.parsed_many::<TemplateId>("templates", "a template UUID")?,
        targets: query.parsed_many::<Uuid>("targets", "a UUID")?,
        read_status,
        starting_before: query
            .parsed::<InboxNotificationId>("starting_before", "a notification UUID")?,
    };
    let page = api.services.inbox().list(caller.0.id, filter).await?;
    Ok(json(
        StatusCode::OK,
        &Page {
            notifications: &page.notifications,
            unread_count: page.unread_count,
        },
    ))
}

pub(crate) async fn set_read_status(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<InboxNotificationId>,
    JsonBody(body): JsonBody<ReadStatusBody>,
) -> Result<Response, ApiError> {
    let (notification, unread_count) = api
        .services
        .inbox()
        .set_read(caller.0.id, id, body.is_read)
        .await?;
    Ok(json(
        StatusCode::OK,
        &One {
            notification: &notification,
            unread_count,
        },
    ))
}

pub(crate) async fn mark_all_read(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    api.services.inbox().mark_all_read(caller.0.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
