//! A single event whose role audience spans several pages (`Events::with_audience_page`),
//! over each backend: one message per recipient and method, every skip listed, dedupe across
//! pages, and all or nothing when a later page fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use herald_application::ports::{
    CallerKey, MessageFilter, PreferenceChange, StoreError, UserDirectory, UserRegistry,
};
use herald_application::{Error, Event, EventPorts, Events, SkipReason, Skipped};
use herald_domain::catalogue::{USER_ACCOUNT_SUSPENDED, WORKSPACE_MANUAL_BUILD_FAILED};
use herald_domain::{
    IdempotencyKey, Message, Method, PreferenceScope, Role, TemplateId, User, UserId,
};
use herald_memory::ManualClock;
use herald_tests::fixture::Backend;
use herald_tests::sample;

use super::support::Harness;

/// Holders planned and stored at a time: every audience here spans several pages.
const PAGE: usize = 2;

/// Enqueueing over the backend's ports (webhook and inbox, as [`Harness::new`] delivers),
/// `directory` in place of the backend's own.
fn events_over(backend: &Backend, directory: Arc<dyn UserDirectory>) -> Events {
    let h = Harness::new();
    Events::new(
        EventPorts {
            directory,
            preferences: backend.preferences.clone(),
            templates: backend.templates.clone(),
            queue: backend.queue.clone(),
            wakeup: backend.wakeup.clone(),
            clock: Arc::new(ManualClock::default()),
        },
        h.services.delivery().clone(),
        h.services.renderer().clone(),
    )
    .with_audience_page(PAGE)
}

fn events(backend: &Backend) -> Events {
    events_over(backend, backend.users.clone())
}

fn event(template: TemplateId, subject: UserId) -> Event {
    let mut event = Event::new(template);
    event.subject = Some(subject);
    event.created_by = "tests".into();
    event.labels.insert("name".into(), "ws-1".into());
    event
}

async fn users(backend: &Backend, prefix: &str, count: usize, roles: &[Role]) -> Vec<User> {
    let mut users = Vec::new();
    for i in 0..count {
        let user = sample::user(&format!("{prefix}{i}"), roles);
        backend.users.upsert(&user).await.unwrap();
        users.push(user);
    }
    users
}

async fn messages(backend: &Backend) -> Vec<Message> {
    backend
        .queue
        .list(&MessageFilter {
            limit: 10_000,
            ..MessageFilter::default()
        })
        .await
        .unwrap()
}

/// The methods each recipient got a message by.
fn methods_by_recipient(messages: &[Message]) -> BTreeMap<UserId, Vec<Method>> {
    let mut methods: BTreeMap<UserId, Vec<Method>> = BTreeMap::new();
    for message in messages {
        methods
            .entry(message.recipient)
            .or_default()
            .push(message.method);
    }
    for list in methods.values_mut() {
        list.sort_by_key(|method| method.as_str());
    }
    methods
}

fn webhook_and_inbox() -> Vec<Method> {
    let mut both = vec![Method::Webhook, Method::Inbox];
    both.sort_by_key(|method| method.as_str());
    both
}

async fn a_role_event_over_several_pages_queues_one_message_per_holder_and_method(
    backend: Backend,
) {
    let owners = users(&backend, "owner", 7, &[Role::Owner]).await;
    let gone = users(&backend, "gone", 1, &[Role::Owner]).await;
    backend.users.delete(gone[0].id).await.unwrap();
    let subject = users(&backend, "subject", 1, &[Role::Owner]).await;
    let opted_out = owners[3].id;
    backend
        .preferences
        .set(
            opted_out,
            &[PreferenceChange {
                template: USER_ACCOUNT_SUSPENDED,
                scope: PreferenceScope::AllMethods,
                disabled: Some(true),
            }],
            sample::t0(),
        )
        .await
        .unwrap();

    let result = events(&backend)
        .enqueue(event(USER_ACCOUNT_SUSPENDED, subject[0].id))
        .await
        .unwrap();

    let stored = messages(&backend).await;
    let expected: BTreeMap<UserId, Vec<Method>> = owners
        .iter()
        .filter(|owner| owner.id != opted_out)
        .map(|owner| (owner.id, webhook_and_inbox()))
        .collect();
    assert_eq!(methods_by_recipient(&stored), expected);
    let answered: BTreeSet<_> = result.message_ids.iter().copied().collect();
    let queued: BTreeSet<_> = stored.iter().map(|message| message.id).collect();
    assert_eq!(result.message_ids.len(), stored.len());
    assert_eq!(answered, queued);
    assert_eq!(
        result.skipped,
        [Skipped {
            user_id: opted_out,
            reason: SkipReason::Disabled,
            method: None,
        }]
    );
}

async fn the_subject_of_a_subject_and_roles_event_over_several_pages_is_told_once(
    backend: Backend,
) {
    let admins = users(&backend, "admin", 5, &[Role::TemplateAdmin]).await;
    let subject = admins[2].id;

    let result = events(&backend)
        .enqueue(event(WORKSPACE_MANUAL_BUILD_FAILED, subject))
        .await
        .unwrap();

    let stored = messages(&backend).await;
    let expected: BTreeMap<UserId, Vec<Method>> = admins
        .iter()
        .map(|admin| (admin.id, webhook_and_inbox()))
        .collect();
    assert_eq!(methods_by_recipient(&stored), expected);
    assert_eq!(result.message_ids.len(), stored.len());
    assert_eq!(result.skipped, []);
}

async fn the_same_role_event_again_is_a_duplicate_for_every_holder_on_every_page(backend: Backend) {
    let owners = users(&backend, "owner", 5, &[Role::Owner]).await;
    let subject = users(&backend, "subject", 1, &[]).await[0].id;
    let events = events(&backend);
    events
        .enqueue(event(USER_ACCOUNT_SUSPENDED, subject))
        .await
        .unwrap();

    let again = events
        .enqueue(event(USER_ACCOUNT_SUSPENDED, subject))
        .await
        .unwrap();

    assert!(again.message_ids.is_empty(), "{:?}", again.message_ids);
    let duplicates: BTreeSet<UserId> = again
        .skipped
        .iter()
        .map(|skipped| {
            assert_eq!(skipped.reason, SkipReason::Duplicate);
            skipped.user_id
        })
        .collect();
    assert_eq!(again.skipped.len(), owners.len());
    assert_eq!(
        duplicates,
        owners.iter().map(|owner| owner.id).collect::<BTreeSet<_>>()
    );
    assert_eq!(messages(&backend).await.len(), owners.len() * 2);
}

async fn a_directory_failing_on_a_later_page_queues_nothing(backend: Backend) {
    users(&backend, "owner", 5, &[Role::Owner]).await;
    let subject = users(&backend, "subject", 1, &[]).await[0].id;
    let directory = Arc::new(FailingAfterFirstPage(backend.users.clone()));

    let result = events_over(&backend, directory)
        .enqueue(event(USER_ACCOUNT_SUSPENDED, subject))
        .await;

    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    assert_eq!(messages(&backend).await, []);
}

async fn a_keyed_role_event_over_several_pages_answers_a_replay_alike(backend: Backend) {
    users(&backend, "owner", 5, &[Role::Owner]).await;
    let subject = users(&backend, "subject", 1, &[]).await[0].id;
    let events = events(&backend);
    let mut keyed = event(USER_ACCOUNT_SUSPENDED, subject);
    keyed.idempotency = Some(CallerKey {
        caller: None,
        key: IdempotencyKey::parse("suspension-1").unwrap(),
    });

    let first = events.enqueue(keyed.clone()).await.unwrap();
    let replay = events.enqueue(keyed).await.unwrap();

    assert_eq!(first.message_ids.len(), 10);
    assert_eq!(replay, first);
    assert_eq!(messages(&backend).await.len(), 10);
}

/// A directory whose pages after the first cannot be read.
#[derive(Debug)]
struct FailingAfterFirstPage(Arc<dyn UserRegistry>);

#[async_trait]
impl UserDirectory for FailingAfterFirstPage {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.0.get(id).await
    }

    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        self.0.get_many(ids).await
    }

    async fn with_any_role(&self, roles: &BTreeSet<Role>) -> Result<Vec<User>, StoreError> {
        self.0.with_any_role(roles).await
    }

    async fn with_any_role_page(
        &self,
        roles: &BTreeSet<Role>,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        if after.is_some() {
            return Err(StoreError::Unavailable("the directory went away".into()));
        }
        self.0.with_any_role_page(roles, None, limit).await
    }
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_role_event_over_several_pages_queues_one_message_per_holder_and_method,
    the_subject_of_a_subject_and_roles_event_over_several_pages_is_told_once,
    the_same_role_event_again_is_a_duplicate_for_every_holder_on_every_page,
    a_directory_failing_on_a_later_page_queues_nothing,
    a_keyed_role_event_over_several_pages_answers_a_replay_alike,
}
