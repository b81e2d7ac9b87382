//! Enqueue (DESIGN §4): an event becomes one message per recipient and method.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::catalogue::{CUSTOM_NOTIFICATION, TEST_NOTIFICATION};
use herald_domain::{
    Audience, DedupeHash, Labels, MessageId, Payload, Template, TemplateId, User, UserId,
    is_enabled,
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::Error;
use crate::config::DeliveryConfig;
use crate::ports::{
    Clock, EnqueueOutcome, MessageQueue, NewMessage, PreferenceStore, TemplateStore, UserDirectory,
    Wakeup,
};
use crate::rendering::Renderer;

/// Which template an event is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRef {
    Id(TemplateId),
    Name(String),
}

/// Something that happened in the host application.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub template: TemplateRef,
    /// The user the event is about; required when the audience needs one.
    pub subject: Option<UserId>,
    /// The user who made it happen (the recipient of caller-audience events).
    pub initiator: Option<UserId>,
    pub labels: Labels,
    /// A JSON object or null.
    pub data: Option<Value>,
    pub targets: Vec<Uuid>,
    pub created_by: String,
}

impl Event {
    /// An event of `template` with nothing else set.
    pub fn new(template: TemplateId) -> Self {
        Self {
            template: TemplateRef::Id(template),
            subject: None,
            initiator: None,
            labels: Labels::new(),
            data: None,
            targets: Vec::new(),
            created_by: String::new(),
        }
    }
}

/// Why a recipient got no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The recipient opted out of the template (or did not opt in to an off-by-default one).
    Disabled,
    /// An identical message was already queued today.
    Duplicate,
    /// The recipient is deleted.
    Deleted,
    /// The recipient caused the event and is not told of their own act.
    Initiator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub user_id: UserId,
    pub reason: SkipReason,
}

/// What an enqueue did: the messages it created and the recipients it skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct EnqueueResult {
    pub message_ids: Vec<MessageId>,
    pub skipped: Vec<Skipped>,
}

/// A custom notification's content, checked: trimmed, non-empty, title ≤ 120 and message ≤
/// 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomContent {
    title: String,
    message: String,
}

impl CustomContent {
    pub const MAX_TITLE_CHARS: usize = 120;
    pub const MAX_MESSAGE_CHARS: usize = 2000;

    /// # Errors
    /// [`Error::Invalid`] on `content.title` or `content.message`.
    pub fn parse(title: &str, message: &str) -> Result<Self, Error> {
        let check = |field: &str, value: &str, max: usize| {
            let value = value.trim();
            if value.is_empty() {
                return Err(Error::invalid(field, "must not be empty"));
            }
            let chars = value.chars().count();
            if chars > max {
                return Err(Error::invalid(
                    field,
                    format!("must be at most {max} characters (got {chars})"),
                ));
            }
            Ok(value.to_owned())
        };
        Ok(Self {
            title: check("content.title", title, Self::MAX_TITLE_CHARS)?,
            message: check("content.message", message, Self::MAX_MESSAGE_CHARS)?,
        })
    }
}

/// Limits on what an event may carry.
const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY_CHARS: usize = 128;
const MAX_LABEL_VALUE_CHARS: usize = 4096;
const MAX_TARGETS: usize = 32;

/// The ports enqueueing drives.
#[derive(Debug, Clone)]
pub struct EventPorts {
    pub directory: Arc<dyn UserDirectory>,
    pub preferences: Arc<dyn PreferenceStore>,
    pub templates: Arc<dyn TemplateStore>,
    pub queue: Arc<dyn MessageQueue>,
    pub wakeup: Arc<dyn Wakeup>,
    pub clock: Arc<dyn Clock>,
}

/// The enqueue use cases.
#[derive(Debug, Clone)]
pub struct Events {
    ports: EventPorts,
    delivery: DeliveryConfig,
    renderer: Renderer,
}

/// One event resolved to its rows, before they are stored.
struct Plan {
    messages: Vec<NewMessage>,
    skipped: Vec<Skipped>,
}

impl Events {
    pub fn new(ports: EventPorts, delivery: DeliveryConfig, renderer: Renderer) -> Self {
        Self {
            ports,
            delivery,
            renderer,
        }
    }

    pub fn delivery(&self) -> &DeliveryConfig {
        &self.delivery
    }

    /// Queues one message per recipient and method of the event, in one batch, and wakes the
    /// notifiers.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field for an unknown template, a missing or unknown
    /// subject or initiator, or bad labels, data or targets; [`Error::Unavailable`] when a
    /// store is down (nothing was queued).
    pub async fn enqueue(&self, event: Event) -> Result<EnqueueResult, Error> {
        let mut results = self
            .enqueue_batch(vec![event])
            .await
            .map_err(|err| match err {
                Error::Invalid { field, reason } => Error::Invalid {
                    field: field.trim_start_matches("events[0].").to_owned(),
                    reason,
                },
                other => other,
            })?;
        Ok(results.pop().unwrap_or_default())
    }

    /// Queues several events in one batch (all or nothing); results in event order.
    ///
    /// # Errors
    /// As [`Events::enqueue`], with fields named `events[i].field`.
    pub async fn enqueue_batch(&self, events: Vec<Event>) -> Result<Vec<EnqueueResult>, Error> {
        let now = self.ports.clock.now();
        let mut plans = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            let plan = self.plan(event, now).await.map_err(|err| match err {
                Error::Invalid { field, reason } => Error::Invalid {
                    field: format!("events[{index}].{field}"),
                    reason,
                },
                other => other,
            })?;
            plans.push(plan);
        }
        let rows: Vec<NewMessage> = plans
            .iter()
            .flat_map(|p| p.messages.iter().cloned())
            .collect();
        let outcomes = if rows.is_empty() {
            Vec::new()
        } else {
            self.ports.queue.enqueue(&rows).await?
        };
        if outcomes.len() != rows.len() {
            return Err(Error::Internal(format!(
                "the queue answered {} outcomes for {} messages",
                outcomes.len(),
                rows.len()
            )));
        }
        let mut outcomes = outcomes.into_iter();
        let mut queued_any = false;
        let results = plans
            .into_iter()
            .map(|plan| {
                let mut result = EnqueueResult {
                    message_ids: Vec::with_capacity(plan.messages.len()),
                    skipped: plan.skipped,
                };
                for message in &plan.messages {
                    match outcomes.next() {
                        Some(EnqueueOutcome::Queued(id)) => {
                            queued_any = true;
                            result.message_ids.push(id);
                        }
                        Some(EnqueueOutcome::Duplicate) | None => {
                            let skip = Skipped {
                                user_id: message.recipient,
                                reason: SkipReason::Duplicate,
                            };
                            if !result.skipped.contains(&skip) {
                                result.skipped.push(skip);
                            }
                        }
                    }
                }
                result
            })
            .collect();
        if queued_any && let Err(err) = self.ports.wakeup.wake().await {
            tracing::warn!(error = %err, "notifications: could not wake the notifiers; they will poll");
        }
        Ok(results)
    }

    /// Sends the Test Notification to the caller.
    ///
    /// # Errors
    /// As [`Events::enqueue`].
    pub async fn send_test(&self, caller: UserId) -> Result<EnqueueResult, Error> {
        let mut event = Event::new(TEST_NOTIFICATION);
        event.initiator = Some(caller);
        event.created_by = "test".to_owned();
        self.enqueue(event).await
    }

    /// Sends a custom notification to the caller.
    ///
    /// # Errors
    /// As [`Events::enqueue`].
    pub async fn send_custom(
        &self,
        caller: UserId,
        content: CustomContent,
    ) -> Result<EnqueueResult, Error> {
        let mut event = Event::new(CUSTOM_NOTIFICATION);
        event.initiator = Some(caller);
        event.created_by = "custom".to_owned();
        event
            .labels
            .insert("custom_title".to_owned(), content.title);
        event
            .labels
            .insert("custom_message".to_owned(), content.message);
        self.enqueue(event).await
    }

    async fn plan(&self, event: Event, now: DateTime<Utc>) -> Result<Plan, Error> {
        validate_shape(&event)?;
        let template = self.template(&event.template).await?;
        let mut skipped = Vec::new();
        let recipients = self.recipients(&template, &event, &mut skipped).await?;
        let methods = self.delivery.methods_for(&template);
        if recipients.is_empty() || methods.is_empty() {
            return Ok(Plan {
                messages: Vec::new(),
                skipped,
            });
        }

        let pairs: Vec<_> = recipients.iter().map(|u| (u.id, template.id)).collect();
        let stored = self.ports.preferences.lookup(&pairs).await?;
        let data = if template.deduplicate {
            event.data
        } else {
            Some(with_timestamp(event.data, now))
        };
        let day = now.date_naive();
        let mut messages = Vec::with_capacity(recipients.len() * methods.len());
        for user in recipients {
            let stored_disabled = stored.get(&(user.id, template.id)).copied();
            if !is_enabled(template.enabled_by_default, stored_disabled) {
                skipped.push(Skipped {
                    user_id: user.id,
                    reason: SkipReason::Disabled,
                });
                continue;
            }
            let mut payload = Payload {
                version: Payload::VERSION.to_owned(),
                notification_name: template.name.clone(),
                notification_template_id: template.id,
                user_id: user.id,
                user_email: user.email.to_string(),
                user_name: user.display_name().to_owned(),
                user_username: user.username.to_string(),
                actions: Vec::new(),
                labels: event.labels.clone(),
                data: data.clone(),
                targets: event.targets.clone(),
            };
            payload.actions = self
                .renderer
                .render_actions(&template, &payload, now)
                .map_err(|err| Error::Internal(err.to_string()))?;
            for &method in &methods {
                let dedupe_hash = template.deduplicate.then(|| {
                    DedupeHash::compute(template.id, user.id, method, &payload, &event.targets, day)
                });
                messages.push(NewMessage {
                    id: MessageId::random(),
                    template_id: template.id,
                    recipient: user.id,
                    method,
                    payload: payload.clone(),
                    targets: event.targets.clone(),
                    created_by: event.created_by.clone(),
                    created_at: now,
                    dedupe_hash,
                });
            }
        }
        Ok(Plan { messages, skipped })
    }

    async fn template(&self, template: &TemplateRef) -> Result<Template, Error> {
        match template {
            TemplateRef::Id(id) => self
                .ports
                .templates
                .get(*id)
                .await?
                .ok_or_else(|| Error::invalid("template_id", format!("unknown template {id}"))),
            TemplateRef::Name(name) => {
                self.ports
                    .templates
                    .find_by_name(name)
                    .await?
                    .ok_or_else(|| {
                        Error::invalid("template_name", format!("unknown template {name:?}"))
                    })
            }
        }
    }

    async fn recipients(
        &self,
        template: &Template,
        event: &Event,
        skipped: &mut Vec<Skipped>,
    ) -> Result<Vec<User>, Error> {
        match &template.audience {
            Audience::Subject { not_when_initiator } => {
                let subject = event.subject.ok_or_else(|| {
                    Error::invalid(
                        "user_id",
                        format!(
                            "{:?} is sent to the user it is about: user_id is required",
                            template.name
                        ),
                    )
                })?;
                let user = self.known_user("user_id", subject).await?;
                if *not_when_initiator && event.initiator == Some(subject) {
                    skipped.push(Skipped {
                        user_id: subject,
                        reason: SkipReason::Initiator,
                    });
                    return Ok(Vec::new());
                }
                Ok(live(user, skipped))
            }
            Audience::Caller => {
                let caller = event.initiator.ok_or_else(|| {
                    Error::invalid(
                        "initiator_id",
                        format!(
                            "{:?} is sent to the caller: initiator_id is required",
                            template.name
                        ),
                    )
                })?;
                let user = self.known_user("initiator_id", caller).await?;
                Ok(live(user, skipped))
            }
            Audience::Roles {
                roles,
                exclude_subject,
            } => {
                let mut users = self.ports.directory.with_any_role(roles).await?;
                users.retain(|u| !u.deleted && u.has_any_role(roles));
                if *exclude_subject && let Some(subject) = event.subject {
                    users.retain(|u| u.id != subject);
                }
                // One message per user even if a directory returns someone twice.
                let mut seen = BTreeSet::new();
                users.retain(|u| seen.insert(u.id));
                Ok(users)
            }
        }
    }

    async fn known_user(&self, field: &str, id: UserId) -> Result<User, Error> {
        self.ports
            .directory
            .get(id)
            .await?
            .ok_or_else(|| Error::invalid(field, format!("unknown user {id}")))
    }
}

fn live(user: User, skipped: &mut Vec<Skipped>) -> Vec<User> {
    if user.deleted {
        skipped.push(Skipped {
            user_id: user.id,
            reason: SkipReason::Deleted,
        });
        Vec::new()
    } else {
        vec![user]
    }
}

/// Adds the enqueue time to the event's data so events that are never deduplicated differ.
fn with_timestamp(data: Option<Value>, now: DateTime<Utc>) -> Value {
    let stamp = Value::String(now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
    match data {
        Some(Value::Object(mut map)) => {
            map.entry("timestamp").or_insert(stamp);
            Value::Object(map)
        }
        _ => Value::Object(serde_json::Map::from_iter([(
            "timestamp".to_owned(),
            stamp,
        )])),
    }
}

fn validate_shape(event: &Event) -> Result<(), Error> {
    match &event.data {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(_) => return Err(Error::invalid("data", "must be a JSON object or null")),
    }
    if event.labels.len() > MAX_LABELS {
        return Err(Error::invalid(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (key, value) in &event.labels {
        if key.is_empty() || key.chars().count() > MAX_LABEL_KEY_CHARS {
            return Err(Error::invalid(
                "labels",
                format!("label names must be 1 to {MAX_LABEL_KEY_CHARS} characters"),
            ));
        }
        if value.chars().count() > MAX_LABEL_VALUE_CHARS {
            return Err(Error::invalid(
                format!("labels.{key}"),
                format!("must be at most {MAX_LABEL_VALUE_CHARS} characters"),
            ));
        }
    }
    if event.targets.len() > MAX_TARGETS {
        return Err(Error::invalid(
            "targets",
            format!("at most {MAX_TARGETS} targets"),
        ));
    }
    let distinct: HashMap<_, ()> = event.targets.iter().map(|t| (t, ())).collect();
    if distinct.len() != event.targets.len() {
        return Err(Error::invalid("targets", "must not repeat a target"));
    }
    Ok(())
}
