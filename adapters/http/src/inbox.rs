//! `/notifications/inbox…`: the caller's own in-app inbox.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_application::InboxFilter;
use herald_application::ports::ReadStatus;
use herald_domain::{Action, InboxNotification, InboxNotificationId, TemplateId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::json;
use crate::extract::{Caller, JsonBody, PathId, QueryPairs};
use crate::{ApiError, State as ApiState};

/// A notification in the caller's inbox.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = InboxNotification)]
pub(crate) struct NotificationJson<'a> {
    #[schema(value_type = Uuid)]
    id: InboxNotificationId,
    #[schema(value_type = Uuid)]
    user_id: UserId,
    #[schema(value_type = Uuid)]
    template_id: TemplateId,
    targets: &'a [Uuid],
    /// Plain text (Markdown when a watcher asked for `format=markdown`).
    title: &'a str,
    /// Plain text (Markdown when a watcher asked for `format=markdown`).
    content: &'a str,
    title_markdown: &'a str,
    content_markdown: &'a str,
    actions: Vec<ActionJson<'a>>,
    read_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl<'a> From<&'a InboxNotification> for NotificationJson<'a> {
    fn from(n: &'a InboxNotification) -> Self {
        Self {
            id: n.id,
            user_id: n.user_id,
            template_id: n.template_id,
            targets: &n.targets,
            title: &n.title,
            content: &n.content,
            title_markdown: &n.title_markdown,
            content_markdown: &n.content_markdown,
            actions: n.actions.iter().map(ActionJson::from).collect(),
            read_at: n.read_at,
            created_at: n.created_at,
        }
    }
}

/// A call-to-action: a label and an absolute URL.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Action)]
pub(crate) struct ActionJson<'a> {
    label: &'a str,
    url: &'a str,
}

impl<'a> From<&'a Action> for ActionJson<'a> {
    fn from(action: &'a Action) -> Self {
        Self {
            label: &action.label,
            url: &action.url,
        }
    }
}

/// A page of the caller's inbox (newest first) and how many notifications are unread.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = InboxPage)]
pub(crate) struct PageJson<'a> {
    notifications: Vec<NotificationJson<'a>>,
    unread_count: u64,
}

/// One inbox notification and how many are unread now.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = InboxUpdate)]
pub(crate) struct UpdateJson<'a> {
    notification: NotificationJson<'a>,
    unread_count: u64,
}

impl<'a> UpdateJson<'a> {
    pub(crate) fn new(notification: &'a InboxNotification, unread_count: u64) -> Self {
        Self {
            notification: NotificationJson::from(notification),
            unread_count,
        }
    }
}

/// Read (`true`) or unread.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReadStatus)]
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
        &PageJson {
            notifications: page
                .notifications
                .iter()
                .map(NotificationJson::from)
                .collect(),
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
        &UpdateJson::new(&notification, unread_count),
    ))
}

pub(crate) async fn mark_all_read(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    api.services.inbox().mark_all_read(caller.0.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
