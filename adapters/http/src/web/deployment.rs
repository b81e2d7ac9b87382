//! `/deployment/notifications`, the owner's page (DESIGN §10.6): the catalogue by group with
//! each template's method (the deployment default, an override, or reset to the default),
//! the delivery settings ([`herald_application::Services::dispatcher_settings`]: a secret only
//! as set or not), the notifier's pause switch, a form sending the Test Notification to the
//! owner, and the troubleshooting list of messages (status filter, reason, attempts, next
//! retry), newest first, a page at a time ("Show more" lists [`PAGE_SIZE`] more, up to
//! [`MAX_LIMIT`]).
//!
//! Each form posts to its own path and returns to the page with a `?done=` notice
//! (post/redirect/get), so a reload never sends a form twice. Anyone but an owner gets a 403
//! page.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herald_application::TemplateView;
use herald_application::messages::MAX_LIMIT;
use herald_application::ports::MessageFilter;
use herald_domain::{Message, MessageStatus, Method, Role, TemplateId, TemplateKind};
use serde_json::{Value, json};

use super::{ApiState, Form, Page, Session, error_page, see_other};
use crate::extract::QueryPairs;

/// The page's path.
pub(crate) const PATH: &str = "/deployment/notifications";
/// Messages the troubleshooting list shows at first, and how many more each "Show more" adds.
pub(crate) const PAGE_SIZE: usize = 25;

/// The session of an owner, else a 403 page (a redirect to sign in without a session).
async fn owner(api: &ApiState, headers: &HeaderMap) -> Result<Session, Response> {
    let session = Session::require(api, headers).await?;
    if !session.user.roles.contains(&Role::Owner) {
        return Err(not_allowed());
    }
    Ok(session)
}

/// An owner's form: the session and its fields, refused without the CSRF token or the role.
async fn owner_form(
    api: &ApiState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Session, Form), Response> {
    let (session, form) = Session::form(api, headers, body).await?;
    if !session.user.roles.contains(&Role::Owner) {
        return Err(not_allowed());
    }
    Ok((session, form))
}

/// The 403 page of anyone but an owner.
fn not_allowed() -> Response {
    Page::message(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "The deployment's notification settings are for owners only.",
    )
}

pub(crate) async fn page(
    State(api): State<ApiState>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, Response> {
    let session = owner(&api, &headers).await?;
    let status = match query.one("status").filter(|raw| !raw.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse::<MessageStatus>().map_err(|err| {
            Page::message(
                StatusCode::BAD_REQUEST,
                "Invalid status",
                &format!("status: {}", err.reason),
            )
        })?),
    };
    let limit = match query.one("limit") {
        None => PAGE_SIZE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                Page::message(
                    StatusCode::BAD_REQUEST,
                    "Invalid limit",
                    &format!("limit: {raw:?} is not a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let services = &api.services;
    let failed = |err: herald_application::Error| error_page(&err.into());
    let mut templates = services
        .templates()
        .list(TemplateKind::System)
        .await
        .map_err(failed)?;
    templates.extend(
        services
            .templates()
            .list(TemplateKind::Custom)
            .await
            .map_err(failed)?,
    );
    let paused = services
        .settings()
        .notifier_paused()
        .await
        .map_err(failed)?;
    let messages = services
        .messages()
        .list(MessageFilter {
            status,
            limit,
            ..MessageFilter::default()
        })
        .await
        .map_err(failed)?;
    let more = (messages.len() >= limit && limit < MAX_LIMIT).then(|| {
        let next = (limit + PAGE_SIZE).min(MAX_LIMIT);
        match status {
            Some(status) => format!("{PATH}?status={}&limit={next}#messages", status.as_str()),
            None => format!("{PATH}?limit={next}#messages"),
        }
    });
    let available = services.delivery().available();
    Ok(Page::render(
        StatusCode::OK,
        "deployment",
        &json!({
            "title": "Deployment notifications",
            "signed_in": true,
            "owner": true,
            "wide": true,
            "user_name": super::inbox::display_name(&session),
            "csrf": session.secret.csrf_token(),
            "notice": query.one("done").and_then(notice),
            "paused": paused,
            "groups": groups(&templates, &available),
            "delivery": delivery(&api),
            "statuses": MessageStatus::ALL.iter().map(|s| json!({
                "value": s.as_str(),
                "selected": Some(*s) == status,
            })).collect::<Vec<_>>(),
            "status": status.map(MessageStatus::as_str),
            "messages": messages.iter().map(|m| message(m, &templates)).collect::<Vec<_>>(),
            "more": more,
        }),
    ))
}

/// The notice a form's redirect names (`?done=`), if it is one of the page's.
fn notice(done: &str) -> Option<String> {
    let text = match done {
        "method" => "Method saved.".to_owned(),
        "method-unchanged" => "Nothing changed: the template already had that method.".to_owned(),
        "paused" => "Delivery paused: messages wait in the queue until it is resumed.".to_owned(),
        "resumed" => "Delivery resumed.".to_owned(),
        _ => {
            let (sent, skipped) = done.strip_prefix("test-")?.split_once('-')?;
            let (sent, skipped): (usize, usize) = (sent.parse().ok()?, skipped.parse().ok()?);
            format!(
                "Test notification queued: {sent} message{} to you{}. It is at the top of the \
                 messages below.",
                if sent == 1 { "" } else { "s" },
                if skipped > 0 {
                    format!(" ({skipped} skipped)")
                } else {
                    String::new()
                }
            )
        }
    };
    Some(text)
}

/// The templates by catalogue group, in catalogue order, each with a method form.
fn groups(templates: &[TemplateView], available: &std::collections::BTreeSet<Method>) -> Value {
    let mut groups: Vec<(&str, Vec<Value>)> = Vec::new();
    for view in templates {
        let t = &view.template;
        let current = t.method_override;
        let mut options = vec![json!({
            "value": "",
            "label": "Deployment default",
            "selected": current.is_none(),
        })];
        options.extend(
            Method::ALL
                .iter()
                .filter(|m| available.contains(m) || Some(**m) == current)
                .filter(|m| t.allows(**m))
                .map(|m| {
                    json!({
                        "value": m.as_str(),
                        "label": method_label(*m),
                        "selected": Some(*m) == current,
                    })
                }),
        );
        let item = json!({
            "id": t.id.to_string(),
            "name": t.name,
            "overridden": current.is_some(),
            "methods": if view.methods.is_empty() {
                "none".to_owned()
            } else {
                view.methods.iter().map(|m| method_label(*m)).collect::<Vec<_>>().join(", ")
            },
            "options": options,
        });
        match groups.iter_mut().find(|(name, _)| *name == t.group) {
            Some((_, items)) => items.push(item),
            None => groups.push((&t.group, vec![item])),
        }
    }
    groups
        .into_iter()
        .map(|(name, templates)| json!({ "name": name, "templates": templates }))
        .collect()
}

fn method_label(method: Method) -> &'static str {
    match method {
        Method::Smtp => "Email (smtp)",
        Method::Webhook => "Webhook",
        Method::Inbox => "Inbox",
    }
}

/// The delivery settings: the default method, and each dispatcher's own (secrets only as set).
fn delivery(api: &ApiState) -> Value {
    let services = &api.services;
    let delivery = services.delivery();
    let notifier = services.notifier_settings().config();
    json!({
        "default_method": method_label(delivery.default_method()),
        "default_configured": delivery.default_is_configured(),
        "inbox_enabled": delivery.inbox_enabled(),
        "methods": services.dispatcher_settings().into_iter().map(|(method, settings)| json!({
            "name": method_label(method),
            "settings": settings.into_iter().map(|s| json!({"name": s.name, "value": s.value})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "notifier": [
            {"name": "Send attempts", "value": notifier.max_send_attempts.to_string()},
            {"name": "Retry interval", "value": duration_label(notifier.retry_interval)},
            {"name": "Lease period", "value": duration_label(notifier.lease_period)},
            {"name": "Dispatch timeout", "value": duration_label(notifier.dispatch_timeout)},
        ],
    })
}

/// A duration in the largest whole unit it is a multiple of (`5m`, `90s`).
fn duration_label(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() != 0 || seconds == 0 {
        format!("{}ms", duration.as_millis())
    } else if seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// One row of the troubleshooting list.
fn message(m: &Message, templates: &[TemplateView]) -> Value {
    let template = templates
        .iter()
        .find(|view| view.template.id == m.template_id)
        .map_or_else(
            || m.template_id.to_string(),
            |view| view.template.name.clone(),
        );
    let time = |t: chrono::DateTime<chrono::Utc>| json!({ "iso": t.to_rfc3339(), "label": t.format("%Y-%m-%d %H:%M:%S UTC").to_string() });
    json!({
        "id": m.id.to_string(),
        "template": template,
        "recipient": m.recipient.to_string(),
        "recipient_short": m.recipient.to_string().chars().take(8).collect::<String>(),
        "method": m.method.as_str(),
        "status": m.status.as_str(),
        "status_reason": m.status_reason,
        "attempts": m.attempt_count,
        "created": time(m.created_at),
        "next_retry": m.next_retry_after.map(time),
    })
}

pub(crate) async fn set_method(
    State(api): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Response> {
    let (_, form) = owner_form(&api, &headers, body).await?;
    let id: TemplateId = id.parse().map_err(|_| {
        Page::message(
            StatusCode::BAD_REQUEST,
            "Invalid template",
            &format!("id: {id:?} is not a template UUID"),
        )
    })?;
    let method = if form.get("reset").is_some() {
        None
    } else {
        match form.get("method").map(str::trim) {
            None => {
                return Err(Page::message(
                    StatusCode::BAD_REQUEST,
                    "Invalid method",
                    "method: required (smtp, webhook, inbox, or empty for the default)",
                ));
            }
            Some("") => None,
            Some(name) => Some(name.parse::<Method>().map_err(|err| {
                Page::message(
                    StatusCode::BAD_REQUEST,
                    "Invalid method",
                    &format!("method: {}", err.reason),
                )
            })?),
        }
    };
    let changed = api
        .services
        .templates()
        .set_method(id, method)
        .await
        .map_err(|err| error_page(&err.into()))?;
    let done = if changed {
        "method"
    } else {
        "method-unchanged"
    };
    Ok(see_other(&format!("{PATH}?done={done}#template-{id}")))
}

pub(crate) async fn set_paused(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let (_, form) = owner_form(&api, &headers, body).await?;
    let paused = match form.get("paused") {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(Page::message(
                StatusCode::BAD_REQUEST,
                "Invalid paused",
                "paused: must be true or false",
            ));
        }
    };
    api.services
        .settings()
        .set_notifier_paused(paused)
        .await
        .map_err(|err| error_page(&err.into()))?;
    let done = if paused { "paused" } else { "resumed" };
    Ok(see_other(&format!("{PATH}?done={done}#delivery")))
}

pub(crate) async fn send_test(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let (session, _) = owner_form(&api, &headers, body).await?;
    let result = api
        .services
        .events()
        .send_test(session.user.id)
        .await
        .map_err(|err| error_page(&err.into()))?;
    Ok(see_other(&format!(
        "{PATH}?done=test-{}-{}#messages",
        result.message_ids.len(),
        result.skipped.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_name_what_a_form_did_and_ignore_anything_else() {
        assert_eq!(notice("method").as_deref(), Some("Method saved."));
        let test = notice("test-2-0").unwrap();
        assert!(
            test.starts_with("Test notification queued: 2 messages"),
            "{test}"
        );
        assert!(notice("test-1-1").unwrap().contains("1 skipped"));
        assert_eq!(notice("<script>"), None);
        assert_eq!(notice("test-x-0"), None);
    }

    #[test]
    fn durations_show_in_their_largest_whole_unit() {
        use std::time::Duration;
        assert_eq!(duration_label(Duration::from_secs(300)), "5m");
        assert_eq!(duration_label(Duration::from_secs(7200)), "2h");
        assert_eq!(duration_label(Duration::from_secs(90)), "90s");
        assert_eq!(duration_label(Duration::from_millis(1500)), "1500ms");
    }
}
