//! `/notifications/…` (events, settings, templates, dispatch methods, test and custom
//! notifications, messages) and `/users/{id}/notifications/preferences`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_application::ports::MessageFilter;
use herald_application::{CustomContent, Error, Event, TemplateRef, TemplateView};
use herald_domain::{
    ActionTemplate, Labels, Message, MessageId, MessageStatus, Method, Role, TemplateId,
    TemplateKind, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::json;
use crate::extract::{Caller, JsonBody, PathId, QueryPairs, UserRef};
use crate::{ApiError, State as ApiState};

/// The most events one batch may carry.
pub const MAX_BATCH_EVENTS: usize = 100;

// ---- events ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    #[serde(default)]
    template_id: Option<TemplateId>,
    #[serde(default)]
    template_name: Option<String>,
    #[serde(default)]
    user_id: Option<UserId>,
    #[serde(default)]
    initiator_id: Option<UserId>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    targets: Vec<Uuid>,
    #[serde(default)]
    created_by: String,
}

impl EventBody {
    /// The event, or why not, naming the event's own field (a batch's handler adds the index).
    fn into_event(self) -> Result<Event, Error> {
        let template = match (self.template_id, self.template_name) {
            (Some(id), None) => TemplateRef::Id(id),
            (None, Some(name)) => TemplateRef::Name(name),
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "template_id",
                    "give template_id or template_name, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "template_id",
                    "template_id or template_name is required",
                ));
            }
        };
        Ok(Event {
            template,
            subject: self.user_id,
            initiator: self.initiator_id,
            labels: self.labels,
            data: self.data,
            targets: self.targets,
            created_by: self.created_by,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchBody {
    events: Vec<EventBody>,
}

pub(crate) async fn enqueue(
    State(api): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<EventBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    let result = api.services.events().enqueue(body.into_event()?).await?;
    Ok(json(StatusCode::ACCEPTED, &result))
}

pub(crate) async fn enqueue_batch(
    State(api): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    if body.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::invalid(
            "events",
            format!("at most {MAX_BATCH_EVENTS} events per batch"),
        ));
    }
    let events = body
        .events
        .into_iter()
        .enumerate()
        .map(|(index, event)| event.into_event().map_err(|err| err.in_event(index)))
        .collect::<Result<Vec<_>, _>>()?;
    let results = api.services.events().enqueue_batch(events).await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "results": results }),
    ))
}

// ---- settings --------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsBody {
    notifier_paused: bool,
}

pub(crate) async fn get_settings(
    State(api): State<ApiState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let notifier_paused = api.services.settings().notifier_paused().await?;
    Ok(json(StatusCode::OK, &SettingsBody { notifier_paused }))
}

pub(crate) async fn put_settings(
    State(api): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<SettingsBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    if !api
        .services
        .settings()
        .set_notifier_paused(body.notifier_paused)
        .await?
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(json(StatusCode::OK, &body))
}

// ---- templates -------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct TemplateJson<'a> {
    id: TemplateId,
    name: &'a str,
    group: &'a str,
    kind: TemplateKind,
    title_template: &'a str,
    body_template: &'a str,
    actions: &'a [ActionTemplate],
    enabled_by_default: bool,
    /// The admin's override, `""` when the deployment default applies.
    method: &'static str,
    /// The methods events of this template go out by now.
    methods: Vec<&'static str>,
}

impl<'a> From<&'a TemplateView> for TemplateJson<'a> {
    fn from(view: &'a TemplateView) -> Self {
        let t = &view.template;
        Self {
            id: t.id,
            name: &t.name,
            group: &t.group,
            kind: t.kind,
            title_template: &t.title,
            body_template: &t.body,
            actions: &t.actions,
            enabled_by_default: t.enabled_by_default,
            method: t.method_override.map_or("", Method::as_str),
            methods: view.methods.iter().map(|m| m.as_str()).collect(),
        }
    }
}

async fn templates(api: &ApiState, kind: TemplateKind) -> Result<Response, ApiError> {
    let views = api.services.templates().list(kind).await?;
    let listed: Vec<_> = views.iter().map(TemplateJson::from).collect();
    Ok(json(StatusCode::OK, &listed))
}

pub(crate) async fn system_templates(
    State(api): State<ApiState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    templates(&api, TemplateKind::System).await
}

pub(crate) async fn custom_templates(
    State(api): State<ApiState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    templates(&api, TemplateKind::Custom).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MethodBody {
    method: String,
}

pub(crate) async fn put_template_method(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<TemplateId>,
    JsonBody(body): JsonBody<MethodBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    let method = match body.method.trim() {
        "" => None,
        name => Some(
            name.parse::<Method>()
                .map_err(|err| ApiError::invalid("method", err.reason))?,
        ),
    };
    if !api.services.templates().set_method(id, method).await? {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let view = api.services.templates().get(id).await?;
    Ok(json(StatusCode::OK, &TemplateJson::from(&view)))
}

pub(crate) async fn dispatch_methods(State(api): State<ApiState>, _caller: Caller) -> Response {
    let available: Vec<_> = api
        .services
        .delivery()
        .available()
        .iter()
        .map(|m| m.as_str())
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "available": available,
            "default": api.services.delivery().default_method().as_str(),
        }),
    )
}

// ---- test and custom notifications -----------------------------------------------------

pub(crate) async fn send_test(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    api.services.events().send_test(caller.0.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomBody {
    content: CustomContentBody,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomContentBody {
    title: String,
    message: String,
}

pub(crate) async fn send_custom(
    State(api): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<CustomBody>,
) -> Result<Response, ApiError> {
    let content = CustomContent::parse(&body.content.title, &body.content.message)?;
    api.services
        .events()
        .send_custom(caller.0.id, content)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- preferences -----------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreferencesBody {
    template_disabled_map: BTreeMap<TemplateId, bool>,
}

const PREFERENCE_ADMINS: &[Role] = &[Role::Owner, Role::UserAdmin];

pub(crate) async fn get_preferences(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(user): PathId<UserRef>,
) -> Result<Response, ApiError> {
    let user = caller.resolve(user);
    caller.require_self_or(user, PREFERENCE_ADMINS)?;
    let template_disabled_map = api.services.preferences().get(user).await?;
    Ok(json(
        StatusCode::OK,
        &PreferencesBody {
            template_disabled_map,
        },
    ))
}

pub(crate) async fn put_preferences(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(user): PathId<UserRef>,
    JsonBody(body): JsonBody<PreferencesBody>,
) -> Result<Response, ApiError> {
    let user = caller.resolve(user);
    caller.require_self_or(user, PREFERENCE_ADMINS)?;
    let template_disabled_map = api
        .services
        .preferences()
        .update(user, body.template_disabled_map)
        .await?;
    Ok(json(
        StatusCode::OK,
        &PreferencesBody {
            template_disabled_map,
        },
    ))
}

// ---- messages --------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct MessageJson<'a> {
    id: MessageId,
    template_id: TemplateId,
    user_id: UserId,
    method: &'static str,
    status: &'static str,
    status_reason: Option<&'a str>,
    attempt_count: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    next_retry_after: Option<DateTime<Utc>>,
    leased_until: Option<DateTime<Utc>>,
}

impl<'a> From<&'a Message> for MessageJson<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            id: m.id,
            template_id: m.template_id,
            user_id: m.recipient,
            method: m.method.as_str(),
            status: m.status.as_str(),
            status_reason: m.status_reason.as_deref(),
            attempt_count: m.attempt_count,
            created_at: m.created_at,
            updated_at: m.updated_at,
            next_retry_after: m.next_retry_after,
            leased_until: m.leased_until,
        }
    }
}

pub(crate) async fn messages(
    State(api): State<ApiState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    let status = match query.one("status") {
        None => None,
        Some(raw) => Some(
            raw.parse::<MessageStatus>()
                .map_err(|err| ApiError::invalid("status", err.reason))?,
        ),
    };
    let filter = MessageFilter {
        status,
        recipient: query.parsed::<UserId>("user_id", "a user UUID")?,
        template_id: query.parsed::<TemplateId>("template_id", "a template UUID")?,
        limit: query
            .parsed::<usize>("limit", "a whole number")?
            .unwrap_or(0),
    };
    let messages = api.services.messages().list(filter).await?;
    let listed: Vec<_> = messages.iter().map(MessageJson::from).collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "messages": listed }),
    ))
}
