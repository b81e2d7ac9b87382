//! `/notifications/…` (events, settings, templates, dispatch methods, test and custom
//! notifications, messages) and `/users/{id}/notifications/preferences`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_application::ports::{CallerKey, MessageFilter};
use herald_application::{
    CustomContent, CustomRecipients, EnqueueResult, Error, Event, PreferenceUpdate, SkipReason,
    Skipped, TemplatePreference, TemplateRef, TemplateView,
};
use herald_domain::{
    ActionTemplate, DigestWindow, IdempotencyKey, Labels, Message, MessageId, MessageStatus,
    Method, Role, TemplateId, TemplateKind, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::json;
use crate::extract::{Caller, JsonBody, PathId, QueryPairs, UserRef};
use crate::{ApiError, State as ApiState, vocabulary};

/// The most events one batch may carry.
pub const MAX_BATCH_EVENTS: usize = 100;

// ---- events ----------------------------------------------------------------------------

/// One event: its template (by id or by name) and what the template's text needs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Event)]
pub(crate) struct EventBody {
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    template_id: Option<TemplateId>,
    #[serde(default)]
    template_name: Option<String>,
    /// The subject: required when the template's audience needs one.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    user_id: Option<UserId>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    initiator_id: Option<UserId>,
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    labels: Labels,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    #[serde(default)]
    targets: Vec<Uuid>,
    #[serde(default)]
    created_by: String,
    /// The caller's idempotency key (1 to 255 printable ASCII characters): the same key with
    /// the same event within 24 hours answers the first result again and queues nothing; with
    /// another event, 409. On a single event the `Idempotency-Key` header does the same.
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Not sent before this time (RFC 3339, at most 7 days ahead): the messages stay
    /// `pending`, with this time as their `next_retry_after`, and can be cancelled until then.
    #[serde(default)]
    send_after: Option<DateTime<Utc>>,
}

impl EventBody {
    /// The event, or why not, naming the event's own field (a batch's handler adds the index).
    fn into_event(self, caller: UserId) -> Result<Event, Error> {
        let idempotency = self
            .idempotency_key
            .as_deref()
            .map(IdempotencyKey::parse)
            .transpose()?
            .map(|key| CallerKey {
                caller: Some(caller),
                key,
            });
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
            idempotency,
            send_after: self.send_after,
        })
    }
}

/// Several events, enqueued in order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EventBatch)]
pub(crate) struct BatchBody {
    events: Vec<EventBody>,
}

/// What an enqueue did: the messages it created and the recipients it skipped.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EnqueueResult)]
pub(crate) struct EnqueueJson<'a> {
    #[schema(value_type = Vec<Uuid>)]
    message_ids: &'a [MessageId],
    skipped: Vec<SkippedJson>,
}

impl<'a> From<&'a EnqueueResult> for EnqueueJson<'a> {
    fn from(result: &'a EnqueueResult) -> Self {
        Self {
            message_ids: &result.message_ids,
            skipped: result.skipped.iter().map(SkippedJson::from).collect(),
        }
    }
}

/// A recipient who got no message, and why.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Skipped)]
pub(crate) struct SkippedJson {
    #[schema(value_type = Uuid)]
    user_id: UserId,
    reason: SkipReasonJson,
    /// The method skipped, when the recipient still gets the event by another method
    /// (absent when they get no message at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    method: Option<Method>,
}

impl From<&Skipped> for SkippedJson {
    fn from(skipped: &Skipped) -> Self {
        Self {
            user_id: skipped.user_id,
            method: skipped.method,
            reason: match skipped.reason {
                SkipReason::Disabled => SkipReasonJson::Disabled,
                SkipReason::Duplicate => SkipReasonJson::Duplicate,
                SkipReason::Deleted => SkipReasonJson::Deleted,
                SkipReason::Initiator => SkipReasonJson::Initiator,
                SkipReason::Unknown => SkipReasonJson::Unknown,
            },
        }
    }
}

/// Why a recipient got no message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SkipReason)]
pub(crate) enum SkipReasonJson {
    Disabled,
    Duplicate,
    Deleted,
    Initiator,
    Unknown,
}

/// The batch's results, one per event, in order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EnqueueBatchResult)]
pub(crate) struct EnqueueBatchJson<'a> {
    results: Vec<EnqueueJson<'a>>,
}

/// The header naming a single event's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

pub(crate) async fn enqueue(
    State(api): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(mut body): JsonBody<EventBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    if let Some(key) = headers.get(IDEMPOTENCY_KEY_HEADER) {
        if body.idempotency_key.is_some() {
            return Err(ApiError::invalid(
                IDEMPOTENCY_KEY_HEADER,
                "give the header or the body's idempotency_key, not both",
            ));
        }
        let key = key
            .to_str()
            .ok()
            .and_then(|key| IdempotencyKey::parse(key).ok().map(|_| key))
            .ok_or_else(|| {
                ApiError::invalid(
                    IDEMPOTENCY_KEY_HEADER,
                    format!(
                        "must be 1 to {} printable ASCII characters",
                        IdempotencyKey::MAX_CHARS
                    ),
                )
            })?;
        body.idempotency_key = Some(key.to_owned());
    }
    let result = api
        .services
        .events()
        .enqueue(body.into_event(caller.0.id)?)
        .await?;
    Ok(json(StatusCode::ACCEPTED, &EnqueueJson::from(&result)))
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
        .map(|(index, event)| {
            event
                .into_event(caller.0.id)
                .map_err(|err| err.in_event(index))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = api.services.events().enqueue_batch(events).await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &EnqueueBatchJson {
            results: results.iter().map(EnqueueJson::from).collect(),
        },
    ))
}

// ---- settings --------------------------------------------------------------------------

/// The notifier's settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Settings)]
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

/// A template of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Template)]
pub(crate) struct TemplateJson<'a> {
    #[schema(value_type = Uuid)]
    id: TemplateId,
    name: &'a str,
    group: &'a str,
    kind: KindJson,
    title_template: &'a str,
    body_template: &'a str,
    actions: Vec<ActionTemplateJson<'a>>,
    enabled_by_default: bool,
    /// The admin's override, `""` when the deployment default applies.
    #[schema(schema_with = vocabulary::method_or_default)]
    method: &'static str,
    /// The methods events of this template go out by now.
    #[schema(schema_with = vocabulary::methods)]
    methods: Vec<&'static str>,
    /// The digest window (e.g. `1h`), `""` when each event is a message of its own.
    #[schema(example = "1h")]
    digest_window: String,
}

impl<'a> From<&'a TemplateView> for TemplateJson<'a> {
    fn from(view: &'a TemplateView) -> Self {
        let t = &view.template;
        Self {
            id: t.id,
            name: &t.name,
            group: &t.group,
            kind: match t.kind {
                TemplateKind::System => KindJson::System,
                TemplateKind::Custom => KindJson::Custom,
            },
            title_template: &t.title,
            body_template: &t.body,
            actions: t.actions.iter().map(ActionTemplateJson::from).collect(),
            enabled_by_default: t.enabled_by_default,
            method: t.method_override.map_or("", Method::as_str),
            methods: view.methods.iter().map(|m| m.as_str()).collect(),
            digest_window: t
                .digest_window
                .map(|window| window.to_string())
                .unwrap_or_default(),
        }
    }
}

/// Whether a template ships with Herald or is the host's custom notification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TemplateKind)]
pub(crate) enum KindJson {
    System,
    Custom,
}

/// A call-to-action of a template: a Handlebars label and path.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ActionTemplate)]
pub(crate) struct ActionTemplateJson<'a> {
    label: &'a str,
    url: &'a str,
}

impl<'a> From<&'a ActionTemplate> for ActionTemplateJson<'a> {
    fn from(action: &'a ActionTemplate) -> Self {
        Self {
            label: &action.label,
            url: &action.url,
        }
    }
}

/// Templates of one kind.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(as = TemplateList)]
pub(crate) struct TemplateListJson<'a>(Vec<TemplateJson<'a>>);

async fn templates(api: &ApiState, kind: TemplateKind) -> Result<Response, ApiError> {
    let views = api.services.templates().list(kind).await?;
    let listed = TemplateListJson(views.iter().map(TemplateJson::from).collect());
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

/// A template's delivery method: `smtp`, `webhook`, `inbox`, or `""` for the default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TemplateMethod)]
pub(crate) struct MethodBody {
    #[schema(schema_with = vocabulary::method_or_default)]
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

/// A template's digest window: a duration such as `30m`, `1h` or `1h30m` (at most `7d`), or
/// `""` to send each event at once again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TemplateDigest)]
pub(crate) struct DigestBody {
    #[schema(example = "1h")]
    window: String,
}

pub(crate) async fn put_template_digest(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<TemplateId>,
    JsonBody(body): JsonBody<DigestBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    let window = match body.window.trim() {
        "" => None,
        text => Some(
            DigestWindow::parse(text).map_err(|err| ApiError::invalid(err.field, err.reason))?,
        ),
    };
    if !api.services.templates().set_digest(id, window).await? {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let view = api.services.templates().get(id).await?;
    Ok(json(StatusCode::OK, &TemplateJson::from(&view)))
}

/// The configured delivery methods and the default one.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DispatchMethods)]
pub(crate) struct DispatchMethodsJson {
    #[schema(schema_with = vocabulary::methods)]
    available: Vec<&'static str>,
    #[schema(schema_with = vocabulary::method)]
    default: &'static str,
}

pub(crate) async fn dispatch_methods(State(api): State<ApiState>, _caller: Caller) -> Response {
    let available = api
        .services
        .delivery()
        .available()
        .iter()
        .map(|m| m.as_str())
        .collect();
    json(
        StatusCode::OK,
        &DispatchMethodsJson {
            available,
            default: api.services.delivery().default_method().as_str(),
        },
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

/// A custom notification: to the caller, or to the users and role holders it names.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CustomNotification)]
pub(crate) struct CustomBody {
    content: CustomContentBody,
    /// Users to send it to (owners and user-admins; anyone may name themselves).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Uuid>>)]
    user_ids: Option<Vec<UserId>>,
    /// Roles whose every holder gets it (owners and user-admins).
    #[serde(default)]
    #[schema(schema_with = vocabulary::roles)]
    roles: Option<Vec<String>>,
}

/// A custom notification's text: trimmed non-empty, title ≤ 120, message ≤ 2000 characters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CustomContent)]
pub(crate) struct CustomContentBody {
    title: String,
    message: String,
}

/// Who may send a custom notification to other users.
const CUSTOM_TO_OTHERS: &[Role] = &[Role::Owner, Role::UserAdmin];

/// To the caller alone (no `user_ids` or `roles`): 204. To the users and roles named: 202 with
/// the messages queued and whom it skipped (unknown, deleted, opted out).
pub(crate) async fn send_custom(
    State(api): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<CustomBody>,
) -> Result<Response, ApiError> {
    let content = CustomContent::parse(&body.content.title, &body.content.message)?;
    let addressed = body.user_ids.is_some() || body.roles.is_some();
    let to = CustomRecipients {
        user_ids: body.user_ids.unwrap_or_default(),
        roles: body
            .roles
            .unwrap_or_default()
            .iter()
            .map(|role| role.parse())
            .collect::<Result<_, _>>()
            .map_err(Error::from)?,
    };
    if addressed && to.user_ids.is_empty() && to.roles.is_empty() {
        return Err(Error::invalid("user_ids", "name at least one user or role").into());
    }
    if to.names_others(caller.0.id) {
        caller.require(CUSTOM_TO_OTHERS).map_err(|err| {
            ApiError::forbidden(format!(
                "sending to other users: {} (anyone may send to themselves)",
                err.detail
            ))
        })?;
    }
    let result = api
        .services
        .events()
        .send_custom_to(caller.0.id, content, to)
        .await?;
    if addressed {
        Ok(json(StatusCode::ACCEPTED, &EnqueueJson::from(&result)))
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

// ---- preferences -----------------------------------------------------------------------

/// A change to a user's notification preferences: templates turned off (or on) for every
/// method, and per method.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PreferencesUpdate)]
pub(crate) struct PreferencesBody {
    /// Template id → disabled for every method (replacing the template's per-method values).
    #[serde(default)]
    #[schema(value_type = BTreeMap<Uuid, bool>)]
    template_disabled_map: BTreeMap<TemplateId, bool>,
    /// Template id → method (`smtp`, `webhook`, `inbox`) → disabled for that method.
    #[serde(default)]
    #[schema(value_type = BTreeMap<Uuid, BTreeMap<String, bool>>)]
    method_disabled_map: BTreeMap<TemplateId, BTreeMap<Method, bool>>,
}

/// One template's preferences for a user (true = disabled).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TemplatePreference)]
pub(crate) struct PreferenceJson {
    /// The template's id.
    #[schema(value_type = Uuid)]
    id: TemplateId,
    /// The template's switch for every method: its all-methods value, else the opposite of
    /// its default.
    disabled: bool,
    /// Per method, whether the user does not receive the template by it.
    #[schema(value_type = BTreeMap<String, bool>)]
    methods: BTreeMap<Method, bool>,
    /// When the template's latest preference was written.
    updated_at: DateTime<Utc>,
}

/// Every template the user has a stored preference for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(as = PreferenceList)]
pub(crate) struct PreferenceListJson(Vec<PreferenceJson>);

impl From<Vec<TemplatePreference>> for PreferenceListJson {
    fn from(list: Vec<TemplatePreference>) -> Self {
        Self(
            list.into_iter()
                .map(|preference| PreferenceJson {
                    id: preference.template,
                    disabled: preference.disabled,
                    methods: preference.methods,
                    updated_at: preference.updated_at,
                })
                .collect(),
        )
    }
}

const PREFERENCE_ADMINS: &[Role] = &[Role::Owner, Role::UserAdmin];

pub(crate) async fn get_preferences(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(user): PathId<UserRef>,
) -> Result<Response, ApiError> {
    let user = caller.resolve(user);
    caller.require_self_or(user, PREFERENCE_ADMINS)?;
    let list = api.services.preferences().get(user).await?;
    Ok(json(StatusCode::OK, &PreferenceListJson::from(list)))
}

pub(crate) async fn put_preferences(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(user): PathId<UserRef>,
    JsonBody(body): JsonBody<PreferencesBody>,
) -> Result<Response, ApiError> {
    let user = caller.resolve(user);
    caller.require_self_or(user, PREFERENCE_ADMINS)?;
    let update = PreferenceUpdate {
        templates: body.template_disabled_map,
        methods: body.method_disabled_map,
    };
    let list = api.services.preferences().update(user, update).await?;
    Ok(json(StatusCode::OK, &PreferenceListJson::from(list)))
}

// ---- messages --------------------------------------------------------------------------

/// A queued message, for troubleshooting.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Message)]
pub(crate) struct MessageJson<'a> {
    #[schema(value_type = Uuid)]
    id: MessageId,
    #[schema(value_type = Uuid)]
    template_id: TemplateId,
    #[schema(value_type = Uuid)]
    user_id: UserId,
    #[schema(schema_with = vocabulary::method)]
    method: &'static str,
    #[schema(schema_with = vocabulary::message_status)]
    status: &'static str,
    status_reason: Option<&'a str>,
    attempt_count: u32,
    /// How many times a lease of the message expired without its dispatch reporting back (a
    /// crashed replica, a failed write-back); at the configured maximum it fails permanently.
    lease_expiries: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    next_retry_after: Option<DateTime<Utc>>,
    leased_until: Option<DateTime<Utc>>,
    /// For a digest, how many events it gathers (its window closes at `next_retry_after`);
    /// absent for other messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    digest_items: Option<usize>,
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
            lease_expiries: m.lease_expiries,
            created_at: m.created_at,
            updated_at: m.updated_at,
            next_retry_after: m.next_retry_after,
            leased_until: m.leased_until,
            digest_items: m
                .digest
                .then(|| herald_domain::digest::items(m.payload.data.as_ref()).len()),
        }
    }
}

pub(crate) async fn cancel_message(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<MessageId>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Owner])?;
    api.services.messages().cancel(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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
    let listed = MessageListJson {
        messages: messages.iter().map(MessageJson::from).collect(),
    };
    Ok(json(StatusCode::OK, &listed))
}

/// Queued messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessageList)]
pub(crate) struct MessageListJson<'a> {
    messages: Vec<MessageJson<'a>>,
}
