//! Enqueue (DESIGN §4): an event becomes one message per recipient and method.
//!
//! [`Events::enqueue_batch`] plans a batch step by step over all its events (`Events::plan`),
//! so its store reads do not grow with its size: one per distinct template reference, one
//! `UserDirectory::get_many` for every subject and initiator, one `with_any_role` per distinct
//! role audience, one `PreferenceStore::lookup` for the named users (run alongside `get_many`,
//! their ids being known before it answers) and one for the role audiences' holders. Per
//! recipient only the user fields change: actions render from `Renderer::event_actions` and
//! hashes from `DedupeBasis`, both prepared once per event. A refused batch reports the first
//! bad event's error (`Refusal`), as if the events were planned one by one. The rows go to the
//! store in one `MessageQueue::enqueue` call, followed by `Wakeup::wake` unless the queue
//! wakes the notifiers itself (`MessageQueue::wakes_notifiers`).
//!
//! Single events ([`Events::enqueue`]) that arrive while an enqueue is being stored are stored
//! together afterwards, as one batch (`Group`, at most `MAX_GROUP` events). The caller that
//! finds no group running leads: a task of its own stores what is waiting, group after group,
//! until nothing is left, so a caller that hangs up loses no one's event and there is no
//! hand-over between groups. Every caller returns as soon as its own group is stored; a refused
//! group is retried event by event, so each caller gets its own answer; an event whose caller
//! went away before any group took it is dropped, never stored. Nothing waits when nothing else
//! runs, and one group is stored at a time: storing two at once, or planning the next while one
//! is inserted, makes groups smaller and the whole slower.
//!
//! At most [`MAX_BATCHES_AT_ONCE`] batches are planned and stored at once, a group counting as
//! one; the rest wait before planning, so memory does not grow with the number of concurrent
//! batch requests.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::catalogue::{CUSTOM_NOTIFICATION, TEST_NOTIFICATION};
use herald_domain::dedupe::DedupeBasis;
use herald_domain::{
    Audience, Labels, MessageId, Method, Payload, Role, Template, TemplateId, User, UserId,
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
use crate::rendering::{RenderError, Renderer};

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
    /// Single events waiting to be queued together (shared by every clone).
    group: Arc<Group>,
    /// Permits for the batches being planned and stored (shared by every clone).
    batches: Arc<tokio::sync::Semaphore>,
}

/// Group enqueue: single events that arrive while a group is being stored wait for it and are
/// then planned and stored together, as one batch: one read per kind of lookup and one insert
/// (one commit, one wake-up) for all of them instead of one each. An event that arrives when
/// nothing runs goes at once, alone, so grouping never adds a wait of its own.
///
/// The caller that finds no group running leads: a task of its own stores everything waiting,
/// group after group, until nothing is left waiting; the callers answered meanwhile return at
/// once. An event whose caller went away before any group took it is dropped unstored (its
/// caller was never answered); once taken, it is stored whatever its caller does.
#[derive(Debug, Default)]
struct Group {
    waiting: std::sync::Mutex<Vec<Waiting>>,
    /// Held by the task storing groups; a caller that gets it with its event still waiting
    /// starts that task.
    leader: Arc<tokio::sync::Mutex<()>>,
}

type Waiting = (
    Event,
    tokio::sync::oneshot::Sender<Result<EnqueueResult, Error>>,
);

/// The most single events stored in one group.
const MAX_GROUP: usize = 500;

/// The most batches planned and stored at once by one [`Events`] (a group of single events
/// counts as one). A batch holds its events, recipients and rows until its insert is done;
/// beyond a few at once they would only queue for a database connection while holding that
/// memory, so the server's memory would grow with the number of concurrent batch requests for
/// no gain in throughput.
pub const MAX_BATCHES_AT_ONCE: usize = 4;

/// A batch resolved to its rows, before they are stored: the rows of every event in event
/// order, and per event how many rows are its and whom it skipped.
struct Plan {
    rows: Vec<NewMessage>,
    events: Vec<EventPlan>,
}

struct EventPlan {
    rows: usize,
    skipped: Vec<Skipped>,
}

/// An event's recipients and methods, and whom it skipped on the way.
struct Recipients<'u> {
    users: Vec<&'u User>,
    methods: Vec<Method>,
    skipped: Vec<Skipped>,
}

/// Whom an event's audience asks the directory for.
enum Wanted<'a> {
    /// One user, named by the event's `field` (`user_id` or `initiator_id`).
    User { field: &'static str, id: UserId },
    /// Every holder of any of these roles (and whether to leave the subject out).
    Roles {
        roles: &'a BTreeSet<Role>,
        exclude_subject: bool,
    },
}

/// The preferences read for the users events name, before their audiences are known.
struct NamedPreferences {
    pairs: HashSet<(UserId, TemplateId)>,
    stored: Result<HashMap<(UserId, TemplateId), bool>, crate::ports::StoreError>,
}

/// The first refused event of a batch being planned.
///
/// A batch is planned step by step over all its events (templates, then users, then role
/// audiences, then preferences, then rows), each step covering only the events before the first
/// one refused so far. The batch thus fails with the error its first bad event gives, exactly
/// as if the events were planned one after another.
#[derive(Default)]
struct Refusal(Option<(usize, Error)>);

impl Refusal {
    /// How many events, from the first, are still planned.
    fn planned(&self, events: usize) -> usize {
        self.0
            .as_ref()
            .map_or(events, |(index, _)| (*index).min(events))
    }

    /// Refuses event `index`, unless an earlier one is refused already.
    fn refuse(&mut self, index: usize, err: Error) {
        if self.0.as_ref().is_none_or(|(first, _)| index < *first) {
            self.0 = Some((index, err));
        }
    }

    /// The batch's error: an invalid field is named `events[i].field`.
    fn into_error(self) -> Option<Error> {
        self.0.map(|(index, err)| match err {
            Error::Invalid { field, reason } => Error::Invalid {
                field: format!("events[{index}].{field}"),
                reason,
            },
            other => other,
        })
    }
}

impl Events {
    pub fn new(ports: EventPorts, delivery: DeliveryConfig, renderer: Renderer) -> Self {
        Self {
            ports,
            delivery,
            renderer,
            group: Arc::default(),
            batches: Arc::new(tokio::sync::Semaphore::new(MAX_BATCHES_AT_ONCE)),
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
    ///
    /// Concurrent calls are stored together (see [`Group`]); each still gets its own result or
    /// error, exactly as if it had been queued alone.
    pub async fn enqueue(&self, event: Event) -> Result<EnqueueResult, Error> {
        let (sender, mut result) = tokio::sync::oneshot::channel();
        self.group
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((event, sender));
        // Either a group takes this event and answers it while this caller waits to lead, or
        // this caller leads, its own event still waiting.
        let leader = tokio::select! {
            biased;
            answer = &mut result => return answered(answer),
            leader = Arc::clone(&self.group.leader).lock_owned() => leader,
        };
        let waiting = self.take_waiting();
        if !waiting.is_empty() {
            // On a task of its own: a caller that goes away (its client hung up) must not
            // take the other callers' events down with it.
            let events = self.clone();
            tokio::spawn(async move {
                let mut waiting = waiting;
                while !waiting.is_empty() {
                    let mut groups = waiting.into_iter().peekable();
                    while groups.peek().is_some() {
                        events
                            .enqueue_group(groups.by_ref().take(MAX_GROUP).collect())
                            .await;
                    }
                    waiting = events.take_waiting();
                }
                drop(leader);
            });
        }
        answered(result.await)
    }

    /// Every event waiting to be stored whose caller still waits for it.
    fn take_waiting(&self) -> Vec<Waiting> {
        let mut waiting = std::mem::take(
            &mut *self
                .group
                .waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        waiting.retain(|(_, answer)| !answer.is_closed());
        waiting
    }

    /// Stores a group of single events as one batch and answers each. A batch is all or
    /// nothing, so when it is refused (one event is bad, or a store failed), each event is
    /// queued alone instead and gets its own answer.
    async fn enqueue_group(&self, group: Vec<Waiting>) {
        let (events, senders): (Vec<Event>, Vec<_>) = group.into_iter().unzip();
        if events.len() > 1
            && let Ok(results) = self.enqueue_batch(events.clone()).await
        {
            for (sender, result) in senders.into_iter().zip(results) {
                let _ = sender.send(Ok(result));
            }
            return;
        }
        for (event, sender) in events.into_iter().zip(senders) {
            let _ = sender.send(self.enqueue_alone(event).await);
        }
    }

    async fn enqueue_alone(&self, event: Event) -> Result<EnqueueResult, Error> {
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

    /// Queues several events in one batch (all or nothing); results in event order. At most
    /// [`MAX_BATCHES_AT_ONCE`] batches are planned and stored at once; others wait their turn.
    ///
    /// # Errors
    /// As [`Events::enqueue`], with fields named `events[i].field`.
    pub async fn enqueue_batch(&self, events: Vec<Event>) -> Result<Vec<EnqueueResult>, Error> {
        let _storing = self
            .batches
            .acquire()
            .await
            .map_err(|_| Error::Internal("the enqueue permits were closed".to_owned()))?;
        let now = self.ports.clock.now();
        let Plan { rows, events } = self.plan(events, now).await?;
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
        let mut stored = rows.iter().zip(outcomes);
        let mut queued_any = false;
        let results = events
            .into_iter()
            .map(|plan| {
                let mut result = EnqueueResult {
                    message_ids: Vec::with_capacity(plan.rows),
                    skipped: plan.skipped,
                };
                // Planning skips no one as a duplicate; report each recipient once.
                let mut duplicates = HashSet::new();
                for (row, outcome) in stored.by_ref().take(plan.rows) {
                    match outcome {
                        EnqueueOutcome::Queued(id) => {
                            queued_any = true;
                            result.message_ids.push(id);
                        }
                        EnqueueOutcome::Duplicate => {
                            if duplicates.insert(row.recipient) {
                                result.skipped.push(Skipped {
                                    user_id: row.recipient,
                                    reason: SkipReason::Duplicate,
                                });
                            }
                        }
                    }
                }
                result
            })
            .collect();
        // A queue that wakes the notifiers in its own transaction already did.
        if queued_any
            && !self.ports.queue.wakes_notifiers()
            && let Err(err) = self.ports.wakeup.wake().await
        {
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

    /// Resolves a batch to its rows with a fixed number of store calls, however many events it
    /// holds: one template read per distinct template, one directory read for every subject and
    /// initiator, one per distinct role audience, and one preference lookup.
    async fn plan(&self, events: Vec<Event>, now: DateTime<Utc>) -> Result<Plan, Error> {
        let mut refusal = Refusal::default();
        if let Some((index, err)) = events
            .iter()
            .enumerate()
            .find_map(|(index, event)| validate_shape(event).err().map(|err| (index, err)))
        {
            refusal.refuse(index, err);
        }
        let templates = self.templates(&events, &mut refusal).await;
        let wanted = wanted(&events, &templates, &mut refusal);
        // The preferences of the users the events name are read alongside the users
        // themselves: the pairs are known before the directory answers.
        let mut methods: Vec<Vec<Method>> = templates
            .iter()
            .map(|template| self.delivery.methods_for(template))
            .collect();
        let named = named_pairs(&wanted, &templates, &methods);
        let (users, named) = tokio::join!(self.users(&wanted), self.lookup_preferences(named));
        let users = users.unwrap_or_else(|(index, err)| {
            refusal.refuse(index, err);
            HashMap::new()
        });
        let role_holders = self.role_holders(&wanted, &mut refusal).await;

        let mut audiences = Vec::with_capacity(refusal.planned(events.len()));
        for (index, want) in wanted
            .iter()
            .enumerate()
            .take(refusal.planned(events.len()))
        {
            let (event, template) = (&events[index], &templates[index]);
            let mut skipped = Vec::new();
            let users = match want {
                Wanted::User { id, .. } => match users.get(id) {
                    Some(user) => recipient(template, event, user, &mut skipped),
                    // Refused when the directory answered; only events before that are here.
                    None => Vec::new(),
                },
                Wanted::Roles {
                    roles,
                    exclude_subject,
                } => role_holders
                    .iter()
                    .find(|(held, _)| held == roles)
                    .map(|(_, holders)| {
                        holders
                            .iter()
                            .filter(|u| !(*exclude_subject && event.subject == Some(u.id)))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            audiences.push(Recipients {
                users,
                methods: std::mem::take(&mut methods[index]),
                skipped,
            });
        }
        let stored = self
            .stored_preferences(&audiences, &templates, named, &mut refusal)
            .await;

        let mut plan = Plan {
            rows: Vec::new(),
            events: Vec::with_capacity(events.len()),
        };
        let planned = refusal.planned(events.len());
        for (index, (event, audience)) in
            events.into_iter().zip(audiences).take(planned).enumerate()
        {
            let template = &templates[index];
            let Recipients {
                users,
                methods,
                mut skipped,
            } = audience;
            let mut enabled = Vec::new();
            if !methods.is_empty() {
                for user in users {
                    let stored_disabled = stored.get(&(user.id, template.id)).copied();
                    if is_enabled(template.enabled_by_default, stored_disabled) {
                        enabled.push(user);
                    } else {
                        skipped.push(Skipped {
                            user_id: user.id,
                            reason: SkipReason::Disabled,
                        });
                    }
                }
            }
            let before = plan.rows.len();
            if let Err(err) = self.rows(event, template, &enabled, &methods, now, &mut plan.rows) {
                refusal.refuse(index, err);
                break;
            }
            plan.events.push(EventPlan {
                rows: plan.rows.len() - before,
                skipped,
            });
        }
        match refusal.into_error() {
            Some(err) => Err(err),
            None => Ok(plan),
        }
    }

    /// Each planned event's template, reading each distinct reference once.
    async fn templates(&self, events: &[Event], refusal: &mut Refusal) -> Vec<Arc<Template>> {
        let mut read: HashMap<&TemplateRef, Arc<Template>> = HashMap::new();
        let mut templates = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            if index >= refusal.planned(events.len()) {
                break;
            }
            let template = match read.get(&event.template) {
                Some(template) => Arc::clone(template),
                None => match self.template(&event.template).await {
                    Ok(template) => Arc::clone(
                        read.entry(&event.template)
                            .or_insert_with(|| Arc::new(template)),
                    ),
                    Err(err) => {
                        refusal.refuse(index, err);
                        break;
                    }
                },
            };
            templates.push(template);
        }
        templates
    }

    /// The stored preferences of every (recipient, template) pair of the planned events: those
    /// `named` read already, the rest (role audiences') in one more lookup, if any.
    async fn stored_preferences(
        &self,
        audiences: &[Recipients<'_>],
        templates: &[Arc<Template>],
        named: NamedPreferences,
        refusal: &mut Refusal,
    ) -> HashMap<(UserId, TemplateId), bool> {
        let mut pairs = Vec::new();
        let mut seen = HashSet::new();
        let mut first_asking = None;
        let mut first_named = None;
        for (index, audience) in audiences.iter().enumerate() {
            if audience.methods.is_empty() {
                continue;
            }
            for user in &audience.users {
                let pair = (user.id, templates[index].id);
                if named.pairs.contains(&pair) {
                    first_named.get_or_insert(index);
                } else {
                    first_asking.get_or_insert(index);
                    if seen.insert(pair) {
                        pairs.push(pair);
                    }
                }
            }
        }
        let mut stored = match (named.stored, first_named) {
            (Ok(stored), _) => stored,
            (Err(err), Some(index)) => {
                refusal.refuse(index, err.into());
                HashMap::new()
            }
            // No planned recipient needed what could not be read.
            (Err(_), None) => HashMap::new(),
        };
        if let Some(index) = first_asking {
            match self.ports.preferences.lookup(&pairs).await {
                Ok(more) => stored.extend(more),
                Err(err) => refusal.refuse(index, err.into()),
            }
        }
        stored
    }

    /// The stored preferences of `pairs` (no lookup when there are none).
    async fn lookup_preferences(&self, pairs: HashSet<(UserId, TemplateId)>) -> NamedPreferences {
        let stored = if pairs.is_empty() {
            Ok(HashMap::new())
        } else {
            let asked: Vec<_> = pairs.iter().copied().collect();
            self.ports.preferences.lookup(&asked).await
        };
        NamedPreferences { pairs, stored }
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

    /// The subjects and initiators the planned events name, read in one call; an event naming
    /// an unknown user is refused (the error: the first such event's index and why).
    async fn users(&self, wanted: &[Wanted<'_>]) -> Result<HashMap<UserId, User>, (usize, Error)> {
        let asked: Vec<(usize, &'static str, UserId)> = wanted
            .iter()
            .enumerate()
            .filter_map(|(index, want)| match want {
                Wanted::User { field, id } => Some((index, *field, *id)),
                Wanted::Roles { .. } => None,
            })
            .collect();
        let Some(&(first, _, _)) = asked.first() else {
            return Ok(HashMap::new());
        };
        let mut ids: Vec<UserId> = asked.iter().map(|(_, _, id)| *id).collect();
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(*id));
        let users: HashMap<UserId, User> = match self.ports.directory.get_many(&ids).await {
            Ok(users) => users.into_iter().map(|user| (user.id, user)).collect(),
            Err(err) => return Err((first, err.into())),
        };
        match asked.iter().find(|(_, _, id)| !users.contains_key(id)) {
            Some(&(index, field, id)) => {
                Err((index, Error::invalid(field, format!("unknown user {id}"))))
            }
            None => Ok(users),
        }
    }

    /// The live holders of each distinct role audience of the planned events (one directory
    /// read each), once per user.
    async fn role_holders<'a>(
        &self,
        wanted: &[Wanted<'a>],
        refusal: &mut Refusal,
    ) -> Vec<(&'a BTreeSet<Role>, Vec<User>)> {
        let mut holders: Vec<(&BTreeSet<Role>, Vec<User>)> = Vec::new();
        for (index, want) in wanted.iter().enumerate() {
            if index >= refusal.planned(wanted.len()) {
                break;
            }
            let Wanted::Roles { roles, .. } = want else {
                continue;
            };
            if holders.iter().any(|(held, _)| held == roles) {
                continue;
            }
            match self.ports.directory.with_any_role(roles).await {
                Ok(mut users) => {
                    users.retain(|u| !u.deleted && u.has_any_role(roles));
                    // One message per user even if a directory returns someone twice.
                    let mut seen = BTreeSet::new();
                    users.retain(|u| seen.insert(u.id));
                    holders.push((roles, users));
                }
                Err(err) => {
                    refusal.refuse(index, err.into());
                    break;
                }
            }
        }
        holders
    }

    /// Appends the event's rows: one per enabled recipient and method, with the payload, its
    /// actions and dedupe hashes built for the event once and per recipient only for what
    /// differs.
    fn rows(
        &self,
        event: Event,
        template: &Template,
        recipients: &[&User],
        methods: &[Method],
        now: DateTime<Utc>,
        rows: &mut Vec<NewMessage>,
    ) -> Result<(), Error> {
        let Some((&last_method, other_methods)) = methods.split_last() else {
            return Ok(());
        };
        if recipients.is_empty() {
            return Ok(());
        }
        let data = if template.deduplicate {
            event.data
        } else {
            Some(with_timestamp(event.data, now))
        };
        // The event's payload; each recipient's differs only in the user fields and actions.
        let shared = Payload {
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
        let internal = |err: RenderError| Error::Internal(err.to_string());
        let mut actions = self
            .renderer
            .event_actions(template, &shared, now)
            .map_err(internal)?;
        let dedupe = template
            .deduplicate
            .then(|| DedupeBasis::new(template.id, &shared, &shared.targets, now.date_naive()));
        rows.reserve(recipients.len() * methods.len());
        for user in recipients {
            let mut payload = Payload {
                user_id: user.id,
                user_email: user.email.to_string(),
                user_name: user.display_name().to_owned(),
                user_username: user.username.to_string(),
                ..shared.clone()
            };
            payload.actions = actions.render(&payload).map_err(internal)?;
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
            };
            for &method in other_methods {
                rows.push(row(method, payload.clone()));
            }
            rows.push(row(last_method, payload));
        }
        Ok(())
    }
}

/// Whom each planned event's audience asks for; an event lacking the subject or initiator its
/// audience needs is refused.
fn wanted<'a>(
    events: &[Event],
    templates: &'a [Arc<Template>],
    refusal: &mut Refusal,
) -> Vec<Wanted<'a>> {
    let mut wanted = Vec::with_capacity(templates.len());
    for (index, (event, template)) in events.iter().zip(templates).enumerate() {
        if index >= refusal.planned(events.len()) {
            break;
        }
        let required = |field: &'static str, id: Option<UserId>, what: &str| {
            id.map(|id| Wanted::User { field, id }).ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("{:?} is sent to {what}: {field} is required", template.name),
                )
            })
        };
        let want = match &template.audience {
            Audience::Subject { .. } => required("user_id", event.subject, "the user it is about"),
            Audience::Caller => required("initiator_id", event.initiator, "the caller"),
            Audience::Roles {
                roles,
                exclude_subject,
            } => Ok(Wanted::Roles {
                roles,
                exclude_subject: *exclude_subject,
            }),
        };
        match want {
            Ok(want) => wanted.push(want),
            Err(err) => {
                refusal.refuse(index, err);
                break;
            }
        }
    }
    wanted
}

/// The (user, template) pairs of the users the events name, for events that have methods to
/// send by (`methods`, per event).
fn named_pairs(
    wanted: &[Wanted<'_>],
    templates: &[Arc<Template>],
    methods: &[Vec<Method>],
) -> HashSet<(UserId, TemplateId)> {
    wanted
        .iter()
        .zip(templates.iter().zip(methods))
        .filter_map(|(want, (template, methods))| match want {
            Wanted::User { id, .. } if !methods.is_empty() => Some((*id, template.id)),
            _ => None,
        })
        .collect()
}

/// The recipient of a subject or caller event: none when the subject caused an event that is
/// not sent to them, or when the user is deleted.
fn recipient<'u>(
    template: &Template,
    event: &Event,
    user: &'u User,
    skipped: &mut Vec<Skipped>,
) -> Vec<&'u User> {
    if let Audience::Subject {
        not_when_initiator: true,
    } = template.audience
        && event.initiator == Some(user.id)
    {
        skipped.push(Skipped {
            user_id: user.id,
            reason: SkipReason::Initiator,
        });
        return Vec::new();
    }
    live(user, skipped)
}

fn live<'u>(user: &'u User, skipped: &mut Vec<Skipped>) -> Vec<&'u User> {
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

/// A grouped event's answer; a group that ended without answering (it cannot, short of a
/// panic) is an internal error.
fn answered(
    answer: Result<Result<EnqueueResult, Error>, tokio::sync::oneshot::error::RecvError>,
) -> Result<EnqueueResult, Error> {
    answer.unwrap_or_else(|_| {
        Err(Error::Internal(
            "the group enqueue ended without a result".to_owned(),
        ))
    })
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
