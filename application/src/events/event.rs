//! What a caller hands to enqueue, and the one check that makes it acceptable.
//!
//! An [`Event`] is the caller's request as given: the HTTP adapter maps its JSON onto one, and
//! hosts and tests build one field by field. [`CheckedEvent::check`] is the only place its
//! limits are checked (data an object or null; how many labels, their names' and values'
//! lengths; how many targets, none repeated). It runs once per event, when the event enters
//! [`Events`](super::Events); grouping, planning and building rows take a [`CheckedEvent`] and
//! trust it, so an event retried alone after its group was refused is not checked again.

use std::collections::HashSet;
use std::ops::Deref;

use herald_domain::{Labels, TemplateId, UserId};
use serde_json::Value;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::Error;
use crate::ports::CallerKey;
use crate::purge::RETENTION;

/// Which template an event is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// The caller's idempotency key: a second event with the same key and content within
    /// [`IDEMPOTENCY_WINDOW`](crate::ports::IDEMPOTENCY_WINDOW) gets the first one's result
    /// and queues nothing; with other content it is refused ([`Error::Conflict`]).
    pub idempotency: Option<CallerKey>,
    /// Not sent before this time: its messages stay `pending` until then (at most
    /// [`RETENTION`](crate::purge::RETENTION) ahead, as a message is kept no longer).
    pub send_after: Option<DateTime<Utc>>,
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
            idempotency: None,
            send_after: None,
        }
    }
}

/// Limits on what an event may carry.
const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY_CHARS: usize = 128;
const MAX_LABEL_VALUE_CHARS: usize = 4096;
const MAX_TARGETS: usize = 32;

/// An event within the limits: sent within 7 days, its data is a JSON object or null, its labels and targets are
/// within bounds and no target repeats. Only [`CheckedEvent::check`] makes one.
#[derive(Debug, Clone)]
pub(super) struct CheckedEvent(Event);

impl CheckedEvent {
    /// # Errors
    /// [`Error::Invalid`] on `data`, `labels`, `labels.<name>` or `targets`.
    pub(super) fn check(event: Event, now: DateTime<Utc>) -> Result<Self, Error> {
        if let Some(send_after) = event.send_after
            && send_after > now + RETENTION
        {
            return Err(Error::invalid(
                "send_after",
                "must be at most 7 days ahead (messages are kept 7 days)",
            ));
        }
        if let TemplateRef::Name(name) = &event.template {
            storable("template_name", name)?;
        }
        storable("created_by", &event.created_by)?;
        match &event.data {
            None | Some(Value::Null | Value::Object(_)) => {}
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
            storable("labels", key)?;
            storable(&format!("labels.{key}"), value)?;
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
        let mut distinct = HashSet::with_capacity(event.targets.len());
        if !event.targets.iter().all(|target| distinct.insert(target)) {
            return Err(Error::invalid("targets", "must not repeat a target"));
        }
        Ok(Self(event))
    }

    /// The event, for building its rows.
    pub(super) fn into_event(self) -> Event {
        self.0
    }
}

impl Deref for CheckedEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.0
    }
}

/// Refuses text PostgreSQL cannot store (a NUL character): refused here as bad input, it
/// would otherwise fail the insert, or leave a message no inbox can ever hold.
fn storable(field: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::invalid(field, "must not contain a NUL character"));
    }
    Ok(())
}

/// A custom notification's content, checked: trimmed, non-empty, title ≤ 120 and message ≤
/// 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomContent {
    pub(super) title: String,
    pub(super) message: String,
}

impl CustomContent {
    pub const MAX_TITLE_CHARS: usize = 120;
    pub const MAX_MESSAGE_CHARS: usize = 2000;

    /// # Errors
    /// [`Error::Invalid`] on `content.title` or `content.message`.
    pub fn parse(title: &str, message: &str) -> Result<Self, Error> {
        let check = |field: &str, value: &str, max: usize| {
            let value = value.trim();
            storable(field, value)?;
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
