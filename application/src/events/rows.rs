//! Building an event's rows: one [`NewMessage`] per enabled recipient and method, each with
//! its payload (the event's fields and the recipient's), its rendered actions and, for a
//! template that deduplicates, its dedupe hash.
//!
//! What is the same for every recipient is built once per event: the payload's event fields,
//! the actions prepared for the event
//! ([`Renderer::event_actions`](crate::rendering::Renderer::event_actions)) and the dedupe
//! basis ([`DedupeBasis`]). Per recipient only the user fields, the rendered actions and the
//! hashes are built, so a role audience's fan-out does not re-serialise the event's labels and
//! data for each recipient. Events of templates that never deduplicate get the enqueue time in
//! their data, so that two of them always differ.
//!
//! A template with a digest window makes digest rows instead (see
//! [`herald_domain::digest`]): the event's labels and data become the one item of the row's
//! `data.items`, the row waits for the window's close, and the queue appends it to the
//! recipient's open digest when there is one. A throttle folding held-back messages into a
//! digest would build its rows here too.

use chrono::{DateTime, Utc};
use herald_domain::dedupe::DedupeBasis;
use herald_domain::{Labels, MessageId, Method, Payload, Template, User, UserId, digest};
use serde_json::Value;
use uuid::Uuid;

use super::Events;
use super::event::CheckedEvent;
use crate::Error;
use crate::ports::NewMessage;
use crate::rendering::RenderError;

impl Events {
    /// Appends the event's rows: one per enabled recipient and each method they receive the
    /// event by, with the payload, its actions and dedupe hashes built for the event once and
    /// per recipient only for what differs.
    pub(super) fn rows(
        &self,
        event: CheckedEvent,
        template: &Template,
        recipients: &[(&User, Vec<Method>)],
        now: DateTime<Utc>,
        rows: &mut Vec<NewMessage>,
    ) -> Result<(), Error> {
        if recipients.iter().all(|(_, methods)| methods.is_empty()) {
            return Ok(());
        }
        let event = event.into_event();
        let data = if template.deduplicate {
            event.data
        } else {
            Some(with_timestamp(event.data, now))
        };
        // The event's payload; each recipient's differs only in the user fields and actions.
        let mut shared = Payload {
            version: Payload::VERSION.to_owned(),
            notification_name: template.name.clone(),
            notification_template_id: template.id,
            user_id: UserId::from_uuid(Uuid::nil()),
            user_email: String::new(),
            user_name: String::new(),
            user_username: String::new(),
            actions: Vec::new(),
            labels: event.labels,
            data,
            targets: event.targets,
        };
        let mut send_after = event.send_after;
        let internal = |err: RenderError| Error::Internal(err.to_string());
        let (mut actions, dedupe) = if let Some(window) = template.digest_window {
            // A digest row: the event is its one item; the window opens when the event is due.
            // A digest has no actions (each item's would name one event) and no dedupe hash.
            let item = digest::item(&shared.labels, shared.data.as_ref());
            shared.data = Some(digest::data(vec![item]));
            shared.labels = Labels::new();
            send_after = Some(send_after.unwrap_or(now) + window.duration());
            (None, None)
        } else {
            let actions = self
                .renderer
                .event_actions(template, &shared, now)
                .map_err(internal)?;
            let dedupe = template
                .deduplicate
                .then(|| DedupeBasis::new(template.id, &shared, &shared.targets, now.date_naive()));
            (Some(actions), dedupe)
        };
        rows.reserve(recipients.iter().map(|(_, methods)| methods.len()).sum());
        for (user, methods) in recipients {
            let Some((&last_method, other_methods)) = methods.split_last() else {
                continue;
            };
            let mut payload = Payload {
                user_id: user.id,
                user_email: user.email.to_string(),
                user_name: user.display_name().to_owned(),
                user_username: user.username.to_string(),
                ..shared.clone()
            };
            if let Some(actions) = &mut actions {
                payload.actions = actions.render(&payload).map_err(internal)?;
            }
            let mut hashes = dedupe
                .as_ref()
                .map(|basis| basis.hashes(user.id, &payload, methods).into_iter());
            let mut row = |method: Method, payload: Payload| NewMessage {
                id: MessageId::time_ordered(),
                template_id: template.id,
                recipient: user.id,
                method,
                payload,
                targets: shared.targets.clone(),
                created_by: event.created_by.clone(),
                created_at: now,
                dedupe_hash: hashes.as_mut().and_then(Iterator::next),
                send_after,
                digest: template.digest_window.is_some(),
            };
            for &method in other_methods {
                rows.push(row(method, payload.clone()));
            }
            rows.push(row(last_method, payload));
        }
        Ok(())
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
