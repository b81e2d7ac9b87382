//! Where the notifier's work comes from: a bulk lease, then the facts each leased message's
//! decision needs (recipients, preferences, templates), read once per lease, and the decision.
//! It runs on a task of its own while earlier messages are dispatched.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::{Completion, Message, Method, Template, TemplateId};

use super::{Decision, Facts, NotifierPorts, UNKNOWN_TEMPLATE, bounded, decide};
use crate::limits::RateLimit;
use crate::ports::{Delivery, Dispatcher, LeaseRequest, SkipMethods, StoreError, ThrottledLease};
use crate::rendering::Renderer;

/// A leased message decided for dispatch, waiting for a free slot.
#[derive(Debug)]
pub(super) struct Ready {
    pub message: Message,
    /// The template's name (metric label).
    pub template: String,
    pub dispatcher: Arc<dyn Dispatcher>,
    pub delivery: Box<Delivery>,
}

impl Ready {
    pub fn method(&self) -> Method {
        self.message.method
    }
}

/// What one lease brought.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// How many messages the lease asked for (0: the pause switch was only read).
    pub requested: usize,
    /// How many messages were leased (those whose facts could not be read included).
    pub leased: usize,
    /// How many messages the throttle held back instead of leasing them.
    pub held_back: usize,
    pub ready: Vec<Ready>,
    /// Messages decided without a dispatch (inhibited, unknown template, render failure…),
    /// with their template's name.
    pub completed: Vec<(Message, String, Completion)>,
}

/// Leases and prepares batches; shared with the task that runs each lease.
#[derive(Debug)]
pub(super) struct Intake {
    pub name: Arc<str>,
    pub ports: NotifierPorts,
    pub dispatchers: HashMap<Method, Arc<dyn Dispatcher>>,
    pub renderer: Renderer,
    pub lease_period: chrono::Duration,
    pub max_attempts: u32,
    pub max_lease_expiries: u32,
    /// At most this many messages per recipient and method per window (`None`: no throttle).
    pub throttle: Option<RateLimit>,
    /// How long one store call may take ([`super::bounded`]).
    pub timeout: std::time::Duration,
}

impl Intake {
    /// Unless the pause switch is on (`None`), leases up to `count` messages, none of the
    /// methods `skip` holds, and prepares them. A `count` of 0 only reads the switch.
    pub async fn take(&self, count: usize, skip: SkipMethods) -> Result<Option<Batch>, StoreError> {
        let paused = self.ports.settings.notifier_paused();
        if bounded(self.timeout, "notifier_paused", paused).await? {
            return Ok(None);
        }
        if count == 0 {
            return Ok(Some(Batch::default()));
        }
        let now = self.ports.clock.now();
        let request = LeaseRequest {
            notifier: Arc::clone(&self.name),
            now,
            lease_period: self.lease_period,
            count,
            max_attempts: self.max_attempts,
            max_lease_expiries: self.max_lease_expiries,
            skip,
        };
        let ThrottledLease { leased, held_back } = match self.throttle {
            None => ThrottledLease {
                leased: bounded(self.timeout, "lease", self.ports.queue.lease(request)).await?,
                held_back: 0,
            },
            Some(limit) => {
                let throttle = limit.throttle_at(now);
                let leasing = self.ports.queue.lease_throttled(request, &throttle);
                bounded(self.timeout, "lease", leasing).await?
            }
        };
        if !leased.is_empty() || held_back > 0 {
            tracing::debug!(notifier = %self.name, count = leased.len(), held_back, "notifications: leased messages");
        }
        let mut batch = self.prepare(leased, now).await;
        batch.requested = count;
        batch.held_back = held_back;
        Ok(Some(batch))
    }

    /// Reads what the leased messages' decisions need and decides for each ([`decide`]). A
    /// message whose facts could not be read is left out: it stays leased and comes back when
    /// the lease expires, without an attempt counted.
    async fn prepare(&self, leased: Vec<Message>, now: DateTime<Utc>) -> Batch {
        let mut batch = Batch {
            leased: leased.len(),
            ..Batch::default()
        };
        if leased.is_empty() {
            return batch;
        }
        let recipients: Vec<_> = leased
            .iter()
            .map(|m| m.recipient)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let pairs: Vec<_> = leased
            .iter()
            .map(|m| (m.recipient, m.template_id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let (users, stored, templates) = tokio::join!(
            bounded(
                self.timeout,
                "get_many",
                self.ports.directory.get_many(&recipients)
            ),
            bounded(
                self.timeout,
                "lookup",
                self.ports.preferences.lookup(&pairs)
            ),
            bounded(self.timeout, "templates", self.templates_of(&leased))
        );
        let live: HashSet<_> = match users {
            Ok(users) => users
                .into_iter()
                .filter(|u| !u.deleted)
                .map(|u| u.id)
                .collect(),
            Err(err) => {
                tracing::warn!(notifier = %self.name, error = %err, "notifications: could not read recipients");
                return batch;
            }
        };
        let stored = match stored {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(notifier = %self.name, error = %err, "notifications: could not read preferences");
                return batch;
            }
        };
        let templates = match templates {
            Ok(templates) => templates,
            Err(err) => {
                tracing::warn!(notifier = %self.name, error = %err, "notifications: could not read templates");
                return batch;
            }
        };

        for message in leased {
            let template = templates.get(&message.template_id);
            let facts = Facts {
                template,
                recipient_live: live.contains(&message.recipient),
                stored: stored
                    .get(&(message.recipient, message.template_id))
                    .copied()
                    .unwrap_or_default(),
                method_configured: self.dispatchers.contains_key(&message.method),
            };
            let name = template
                .map_or(UNKNOWN_TEMPLATE, |t| t.name.as_str())
                .to_owned();
            match decide(&message, &facts, &self.renderer, now) {
                Decision::Complete(completion) => batch.completed.push((message, name, completion)),
                Decision::Dispatch(delivery) => {
                    if let Some(dispatcher) = self.dispatchers.get(&message.method) {
                        batch.ready.push(Ready {
                            message,
                            template: name,
                            dispatcher: Arc::clone(dispatcher),
                            delivery,
                        });
                    }
                }
            }
        }
        batch
    }

    /// The templates the messages name, from the shared template cache (`None` for one that
    /// does not exist).
    async fn templates_of(
        &self,
        messages: &[Message],
    ) -> Result<HashMap<TemplateId, Template>, StoreError> {
        let ids: HashSet<TemplateId> = messages.iter().map(|m| m.template_id).collect();
        let mut templates = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(template) = self.ports.templates.get(id).await? {
                templates.insert(id, template);
            }
        }
        Ok(templates)
    }
}
