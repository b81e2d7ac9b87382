//! Custom notifications (DESIGN §7, §10.3): free text from a user, to that user or, when
//! the caller names them, to other users and every holder of some roles.
//!
//! The Custom Notification template's audience is the caller, so a notification to others is
//! one event per recipient, each recipient the caller of its own event, stored together as one
//! batch: preferences, deleted users and rows are then handled exactly as for any event. The
//! sender is kept in each event's data (`sender_id`). Who may address others is the caller's
//! business (the HTTP API lets owners and user-admins); this module only resolves the names.

use std::collections::{BTreeSet, HashMap, HashSet};

use herald_domain::catalogue::CUSTOM_NOTIFICATION;
use herald_domain::{Role, UserId};
use serde_json::{Map, Value};

use super::event::CheckedEvent;
use super::planning::Refusal;
use super::{CustomContent, EnqueueResult, Event, Events, SkipReason, Skipped};
use crate::Error;

/// Whom a custom notification goes to: the users named and every live holder of any of the
/// roles. Both empty means the sender alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomRecipients {
    pub user_ids: Vec<UserId>,
    pub roles: BTreeSet<Role>,
}

impl CustomRecipients {
    /// The sender alone.
    pub fn sender_only() -> Self {
        Self::default()
    }

    /// Whether anyone besides `sender` is named (a role counts, whoever holds it).
    pub fn names_others(&self, sender: UserId) -> bool {
        !self.roles.is_empty() || self.user_ids.iter().any(|id| *id != sender)
    }
}

/// The most users one custom notification may name by id.
pub const MAX_CUSTOM_USER_IDS: usize = 1000;

impl Events {
    /// Sends a custom notification from `sender` to `to` (the sender alone when it names no
    /// one), within the sender's rate limit (see [`Events::with_custom_limit`]; one request
    /// counts once, however many it reaches). Users named that do not exist are skipped as
    /// [`SkipReason::Unknown`], deleted ones as [`SkipReason::Deleted`], those who turned custom
    /// notifications off as [`SkipReason::Disabled`]; the others still get it.
    ///
    /// # Errors
    /// [`Error::Invalid`] on `user_ids` when it names more than [`MAX_CUSTOM_USER_IDS`] users;
    /// [`Error::Limited`] when the sender sent their most custom notifications in this window
    /// (nothing queued); else as [`Events::enqueue`].
    pub async fn send_custom_to(
        &self,
        sender: UserId,
        content: CustomContent,
        to: CustomRecipients,
    ) -> Result<EnqueueResult, Error> {
        if to.user_ids.len() > MAX_CUSTOM_USER_IDS {
            return Err(Error::invalid(
                "user_ids",
                format!("at most {MAX_CUSTOM_USER_IDS} users"),
            ));
        }
        if let Some(limiter) = &self.custom_limit {
            limiter.admit(sender).await?;
        }
        let (recipients, mut skipped) = if to.user_ids.is_empty() && to.roles.is_empty() {
            (vec![sender], Vec::new())
        } else {
            self.custom_recipients(&to).await?
        };
        let mut events = Vec::with_capacity(recipients.len());
        let now = self.ports.clock.now();
        for recipient in recipients {
            let mut event = Event::new(CUSTOM_NOTIFICATION);
            event.initiator = Some(recipient);
            event.created_by = "custom".to_owned();
            event
                .labels
                .insert("custom_title".to_owned(), content.title.clone());
            event
                .labels
                .insert("custom_message".to_owned(), content.message.clone());
            event.data = Some(Value::Object(Map::from_iter([(
                "sender_id".to_owned(),
                Value::String(sender.to_string()),
            )])));
            events.push(CheckedEvent::check(event, now)?);
        }
        let results = self.store(events, Refusal::default(), |_, err| err).await?;
        let mut result = EnqueueResult::default();
        for one in results {
            result.message_ids.extend(one.message_ids);
            result.skipped.extend(one.skipped);
        }
        result.skipped.append(&mut skipped);
        Ok(result)
    }

    /// The live users `to` names, each once, in the order named (users by id, then role
    /// holders), and the named ids skipped as unknown or deleted.
    async fn custom_recipients(
        &self,
        to: &CustomRecipients,
    ) -> Result<(Vec<UserId>, Vec<Skipped>), Error> {
        let named: HashMap<UserId, bool> = if to.user_ids.is_empty() {
            HashMap::new()
        } else {
            self.ports
                .directory
                .get_many(&to.user_ids)
                .await?
                .into_iter()
                .map(|user| (user.id, user.deleted))
                .collect()
        };
        let mut seen = HashSet::new();
        let mut recipients = Vec::new();
        let mut skipped = Vec::new();
        for &id in &to.user_ids {
            if !seen.insert(id) {
                continue;
            }
            match named.get(&id) {
                Some(false) => recipients.push(id),
                Some(true) => skipped.push(Skipped {
                    user_id: id,
                    reason: SkipReason::Deleted,
                    method: None,
                }),
                None => skipped.push(Skipped {
                    user_id: id,
                    reason: SkipReason::Unknown,
                    method: None,
                }),
            }
        }
        if !to.roles.is_empty() {
            let holders = self.ports.directory.with_any_role(&to.roles).await?;
            for user in holders {
                if !user.deleted && user.has_any_role(&to.roles) && seen.insert(user.id) {
                    recipients.push(user.id);
                }
            }
        }
        Ok((recipients, skipped))
    }
}
