//! Planning a batch: its events resolved to the rows to insert, with a number of store reads
//! that does not grow with the batch: one per distinct template reference, one
//! `UserDirectory::get_many` for every subject and initiator, one `with_any_role` per distinct
//! role audience, one `PreferenceStore::lookup` for the users the events name (run alongside
//! `get_many`, as their ids are known before it answers) and one for role audiences' holders.
//! Along the way, the refusal bookkeeping keeps the answer the same as if the events were
//! planned one after another.
//!
//! A batch is planned step by step over all its events (templates, then users, then role
//! audiences, then preferences, then rows), each step covering only the events before the first
//! one refused so far ([`Refusal`]). The batch thus fails with the error its first bad event
//! gives. A refusal is the event's index and its error as that event alone would have it; the
//! caller decides how to name it (a batch's caller is told the index, a single event's is not).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::{
    Audience, Method, Role, StoredPreference, Template, TemplateId, User, UserId, receives,
};

use super::event::{CheckedEvent, TemplateRef};
use super::{Events, SkipReason, Skipped};
use crate::Error;
use crate::ports::{NewMessage, StoreError};

/// A batch resolved to its rows, before they are stored: the rows of every event in event
/// order, and per event how many rows are its and whom it skipped.
pub(super) struct Plan {
    pub(super) rows: Vec<NewMessage>,
    pub(super) events: Vec<EventPlan>,
    /// When a page of role holders came back full ([`Holders::Page`]), the last holder's id:
    /// the next page starts after it.
    pub(super) next_page: Option<UserId>,
}

/// Which holders of the role audiences a plan covers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Holders {
    /// Every holder, read at once.
    All,
    /// One page: at most `limit` holders, those with the lowest ids above `after`. Only the
    /// first page (`after` is `None`) also plans the subject of a subject-and-roles audience,
    /// so the subject gets one message however many pages follow.
    Page { after: Option<UserId>, limit: usize },
}

pub(super) struct EventPlan {
    pub(super) rows: usize,
    pub(super) skipped: Vec<Skipped>,
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
    /// The subject (named by `user_id`) and every holder of any of these roles, each once.
    SubjectAndRoles {
        id: UserId,
        roles: &'a BTreeSet<Role>,
    },
}

impl<'a> Wanted<'a> {
    /// The user the event names, and the field naming it.
    fn named(&self) -> Option<(&'static str, UserId)> {
        match self {
            Wanted::User { field, id } => Some((field, *id)),
            Wanted::SubjectAndRoles { id, .. } => Some(("user_id", *id)),
            Wanted::Roles { .. } => None,
        }
    }

    /// The roles whose holders the event goes to.
    fn roles(&self) -> Option<&'a BTreeSet<Role>> {
        match *self {
            Wanted::Roles { roles, .. } | Wanted::SubjectAndRoles { roles, .. } => Some(roles),
            Wanted::User { .. } => None,
        }
    }
}

/// The preferences read for the users events name, before their audiences are known.
struct NamedPreferences {
    pairs: HashSet<(UserId, TemplateId)>,
    stored: Result<HashMap<(UserId, TemplateId), StoredPreference>, StoreError>,
}

/// The first refused event of a batch being planned: its index and its error.
#[derive(Default)]
pub(super) struct Refusal(Option<(usize, Error)>);

impl Refusal {
    /// How many events, from the first, are still planned.
    fn planned(&self, events: usize) -> usize {
        self.0
            .as_ref()
            .map_or(events, |(index, _)| (*index).min(events))
    }

    /// The refused event's index, if any.
    pub(super) fn index(&self) -> Option<usize> {
        self.0.as_ref().map(|(index, _)| *index)
    }

    /// The same refusal, its index moved by `move_index`.
    pub(super) fn moved(self, move_index: impl FnOnce(usize) -> usize) -> Self {
        Self(self.0.map(|(index, err)| (move_index(index), err)))
    }

    /// Refuses event `index`, unless an earlier one is refused already.
    pub(super) fn refuse(&mut self, index: usize, err: Error) {
        if self.0.as_ref().is_none_or(|(first, _)| index < *first) {
            self.0 = Some((index, err));
        }
    }
}

impl Events {
    /// Resolves a batch to its rows. `refusal` holds what was refused before planning (an event
    /// failing its checks, which the events before it are still planned against).
    ///
    /// # Errors
    /// The first refused event's index and error.
    pub(super) async fn plan(
        &self,
        events: Vec<CheckedEvent>,
        mut refusal: Refusal,
        now: DateTime<Utc>,
        holders: Holders,
    ) -> Result<Plan, (usize, Error)> {
        let templates = self.templates(&events, &mut refusal).await;
        let mut wanted = wanted(&events, &templates, &mut refusal);
        if let Holders::Page { after: Some(_), .. } = holders {
            // A later page: the subject was planned with the first, and is left out here too.
            for want in &mut wanted {
                if let Wanted::SubjectAndRoles { roles, .. } = *want {
                    *want = Wanted::Roles {
                        roles,
                        exclude_subject: true,
                    };
                }
            }
        }
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
        let (role_holders, next_page) = self.role_holders(&wanted, holders, &mut refusal).await;

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
                Wanted::SubjectAndRoles { id, roles } => {
                    let mut users = match users.get(id) {
                        Some(user) => recipient(template, event, user, &mut skipped),
                        None => Vec::new(),
                    };
                    if let Some((_, holders)) = role_holders.iter().find(|(held, _)| held == roles)
                    {
                        // One message per person: the subject is not told twice.
                        users.extend(holders.iter().filter(|u| u.id != *id));
                    }
                    users
                }
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
            next_page,
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
                    let wanted = wanted_methods(
                        template,
                        stored.get(&(user.id, template.id)),
                        &methods,
                        user.id,
                        &mut skipped,
                    );
                    if !wanted.is_empty() {
                        enabled.push((user, wanted));
                    }
                }
            }
            let before = plan.rows.len();
            if let Err(err) = self.rows(event, template, &enabled, now, &mut plan.rows) {
                refusal.refuse(index, err);
                break;
            }
            plan.events.push(EventPlan {
                rows: plan.rows.len() - before,
                skipped,
            });
        }
        match refusal.0 {
            Some(refused) => Err(refused),
            None => Ok(plan),
        }
    }

    /// Each planned event's template, reading each distinct reference once.
    async fn templates(
        &self,
        events: &[CheckedEvent],
        refusal: &mut Refusal,
    ) -> Vec<Arc<Template>> {
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
    ) -> HashMap<(UserId, TemplateId), StoredPreference> {
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
            .filter_map(|(index, want)| want.named().map(|(field, id)| (index, field, id)))
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
    /// read each), once per user, all of them or one page (`page`); and, when a page came
    /// back full, the id the next page starts after.
    async fn role_holders<'a>(
        &self,
        wanted: &[Wanted<'a>],
        page: Holders,
        refusal: &mut Refusal,
    ) -> (Vec<(&'a BTreeSet<Role>, Vec<User>)>, Option<UserId>) {
        let mut holders: Vec<(&BTreeSet<Role>, Vec<User>)> = Vec::new();
        let mut next_page = None;
        for (index, want) in wanted.iter().enumerate() {
            if index >= refusal.planned(wanted.len()) {
                break;
            }
            let Some(roles) = want.roles() else {
                continue;
            };
            if holders.iter().any(|(held, _)| *held == roles) {
                continue;
            }
            let read = match page {
                Holders::All => self.ports.directory.with_any_role(roles).await,
                Holders::Page { after, limit } => {
                    let read = self
                        .ports
                        .directory
                        .with_any_role_page(roles, after, limit)
                        .await;
                    if let Ok(users) = &read
                        && users.len() >= limit
                    {
                        next_page = next_page.max(users.last().map(|user| user.id));
                    }
                    read
                }
            };
            match read {
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
        (holders, next_page)
    }
}

/// Whom each planned event's audience asks for; an event lacking the subject or initiator its
/// audience needs is refused.
fn wanted<'a>(
    events: &[CheckedEvent],
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
            Audience::SubjectAndRoles { roles } => event
                .subject
                .map(|id| Wanted::SubjectAndRoles { id, roles })
                .ok_or_else(|| {
                    Error::invalid(
                        "user_id",
                        format!(
                            "{:?} is sent to the user it is about: user_id is required",
                            template.name
                        ),
                    )
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
        .filter_map(|(want, (template, methods))| {
            let (_, id) = want.named()?;
            (!methods.is_empty()).then_some((id, template.id))
        })
        .collect()
}

/// The recipient of a subject or caller event: none when the subject caused an event that is
/// not sent to them, or when the user is deleted.
fn recipient<'u>(
    template: &Template,
    event: &CheckedEvent,
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
            method: None,
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
            method: None,
        });
        Vec::new()
    } else {
        vec![user]
    }
}

/// The event's methods the user receives the template by, given their stored rows (DESIGN
/// §10.2). The others are reported skipped as disabled: each with its method when the user
/// still gets some, once without a method when they get none.
fn wanted_methods(
    template: &Template,
    stored: Option<&StoredPreference>,
    methods: &[Method],
    user: UserId,
    skipped: &mut Vec<Skipped>,
) -> Vec<Method> {
    let stored = stored.copied().unwrap_or_default();
    let (wanted, unwanted): (Vec<Method>, Vec<Method>) = methods
        .iter()
        .partition(|&&method| receives(template, &stored, method));
    if wanted.is_empty() {
        skipped.push(Skipped {
            user_id: user,
            reason: SkipReason::Disabled,
            method: None,
        });
    } else {
        skipped.extend(unwanted.into_iter().map(|method| Skipped {
            user_id: user,
            reason: SkipReason::Disabled,
            method: Some(method),
        }));
    }
    wanted
}
