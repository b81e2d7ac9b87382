//! `/inbox`: the signed-in user's notifications, newest first, a page at a time
//! ([`herald_application::inbox::PAGE_SIZE`]; "Load more" links to the next), all or unread
//! only, with forms to mark one read or unread and all read. `/inbox/events` is the live part:
//! Server-Sent Events of new notifications over the session (the inbox feed, as
//! `GET /api/v2/notifications/inbox/watch` has), which `assets/inbox.js` adds to the list.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_application::InboxFilter;
use herald_application::inbox::PAGE_SIZE;
use herald_application::ports::ReadStatus;
use herald_domain::{InboxNotification, InboxNotificationId};
use serde_json::{Value, json};

use super::{ApiState, Page, Session, error_page, see_other};
use crate::extract::QueryPairs;
use crate::watch;

pub(crate) async fn page(
    State(api): State<ApiState>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, Response> {
    let session = Session::require(&api, &headers).await?;
    let unread_only = query.one("filter") == Some("unread");
    let starting_before = match query.one("before") {
        None => None,
        Some(raw) => Some(raw.parse::<InboxNotificationId>().map_err(|_| {
            Page::message(
                StatusCode::BAD_REQUEST,
                "Invalid before",
                &format!("before: {raw:?} is not a notification UUID"),
            )
        })?),
    };
    let filter = InboxFilter {
        read_status: if unread_only {
            ReadStatus::Unread
        } else {
            ReadStatus::All
        },
        starting_before,
        ..InboxFilter::default()
    };
    let listed = api
        .services
        .inbox()
        .list(session.user.id, filter)
        .await
        .map_err(|err| error_page(&err.into()))?;
    let base = if unread_only {
        "/inbox?filter=unread&"
    } else {
        "/inbox?"
    };
    let more = (listed.notifications.len() >= PAGE_SIZE)
        .then(|| listed.notifications.last())
        .flatten()
        .map(|last| format!("{base}before={}", last.id));
    let back = if unread_only {
        "/inbox?filter=unread"
    } else {
        "/inbox"
    };
    Ok(Page::render(
        StatusCode::OK,
        "inbox",
        &json!({
            "title": "Inbox",
            "signed_in": true,
            "user_name": display_name(&session),
            "csrf": session.secret.csrf_token(),
            "unread_count": listed.unread_count,
            "unread_only": unread_only,
            "back": back,
            "more": more,
            "notifications": listed.notifications.iter().map(item).collect::<Vec<_>>(),
        }),
    ))
}

pub(super) fn display_name(session: &Session) -> String {
    if session.user.name.is_empty() {
        session.user.username.to_string()
    } else {
        session.user.name.clone()
    }
}

/// What the template shows of one notification.
fn item(notification: &InboxNotification) -> Value {
    json!({
        "id": notification.id.to_string(),
        "title": notification.title,
        "content": notification.content,
        "read": notification.read_at.is_some(),
        "created_at": notification.created_at.to_rfc3339(),
        "created_label": notification.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        "actions": notification.actions.iter().map(|a| json!({"label": a.label, "url": a.url})).collect::<Vec<_>>(),
    })
}

/// Where a form returns to: its `back` field when it is an inbox page, else `/inbox`.
fn back(form: &super::Form) -> &str {
    match form.get("back") {
        Some(back) if back == "/inbox" || back.starts_with("/inbox?") => back,
        _ => "/inbox",
    }
}

pub(crate) async fn set_read(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Response> {
    let (session, form) = Session::form(&api, &headers, body).await?;
    let id: InboxNotificationId = id.parse().map_err(|_| {
        Page::message(
            StatusCode::BAD_REQUEST,
            "Invalid id",
            &format!("id: {id:?} is not a notification UUID"),
        )
    })?;
    let is_read = match form.get("is_read") {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(Page::message(
                StatusCode::BAD_REQUEST,
                "Invalid is_read",
                "is_read: must be true or false",
            ));
        }
    };
    api.services
        .inbox()
        .set_read(session.user.id, id, is_read)
        .await
        .map_err(|err| error_page(&err.into()))?;
    Ok(see_other(back(&form)))
}

pub(crate) async fn mark_all_read(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let (session, form) = Session::form(&api, &headers, body).await?;
    api.services
        .inbox()
        .mark_all_read(session.user.id)
        .await
        .map_err(|err| error_page(&err.into()))?;
    Ok(see_other(back(&form)))
}

/// New notifications of the session's user as Server-Sent Events, while the session lasts.
pub(crate) async fn events(
    State(api): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let Some(session) = Session::of(&api, &headers).await? else {
        return Err(Page::message(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "Sign in again to see new notifications.",
        ));
    };
    let watch = api
        .services
        .watching()
        .open_session(
            session.user.id,
            api.services.web_sessions().clone(),
            session.secret.hash(),
        )
        .await
        .map_err(|err| error_page(&err.into()))?;
    Ok(watch::events(watch, api.services.inbox().clone()).into_response())
}
